"""Issue 11, item 3: checkpoints cost the same at every epoch (the History goes to an
append-only journal), resume stays bit-identical, and a killed run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import chainrule as cr
from chainrule._fileformat import ModelFileError, read_archive, write_archive

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")


def _problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    return X, np.eye(3)[rng.integers(0, 3, 30)]


def _fit(path, epochs, resume=False, model=None):
    X, Y = _problem()
    model = model if model is not None else cr.MLP([4, 6, 3], rng=0)
    h = cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=epochs, batch_size=8, rng=1,
               validation_fraction=0.2, checkpoint=path, resume=resume, progress=False)
    return model, h


def _journal(path):
    state = read_archive(path)[1]["history"]["journal"]
    return f"{os.fspath(path)}.{state['token']}.history", state


def test_the_checkpoint_file_does_not_grow_with_the_epochs(tmp_path):
    sizes = {}
    for epochs in (2, 40):
        path = tmp_path / f"e{epochs}.npz"
        _fit(path, epochs)
        sizes[epochs] = os.path.getsize(path)
    # Same arrays, same metadata but for a few digits: the History is not in it.
    assert abs(sizes[40] - sizes[2]) < 64


def test_the_journal_is_appended_not_rewritten(tmp_path):
    path = tmp_path / "run.npz"
    _fit(path, 3)
    journal, state = _journal(path)
    first = open(journal, "rb").read()
    _fit(path, 7, resume=True)
    journal2, state2 = _journal(path)
    assert journal2 == journal and state2["epochs"] == 7
    assert open(journal, "rb").read()[:len(first)] == first


def test_resume_from_the_journal_is_bit_identical(tmp_path):
    whole, h_whole = _fit(tmp_path / "whole.npz", 8)
    _fit(tmp_path / "part.npz", 3)
    part, h_part = _fit(tmp_path / "part.npz", 8, resume=True)
    for k in whole.params:
        np.testing.assert_array_equal(part.params[k], whole.params[k])
    assert h_part.as_dict() == {**h_whole.as_dict(),
                                "history": {**h_whole.history, "time": h_part["time"]}}


def test_lines_beyond_the_checkpoint_count_are_ignored_and_cut(tmp_path):
    # A writer killed between appending to the journal and renaming the checkpoint.
    path = tmp_path / "run.npz"
    _fit(path, 3)
    journal, _ = _journal(path)
    with open(journal, "ab") as fh:
        fh.write(b'{"logs": {"loss": 123.0}, "diagnostics": {}}\n{"half')
    model, h = _fit(path, 5, resume=True)
    assert h.epochs == 5 and 123.0 not in h["loss"]
    assert len(open(journal, "rb").read().splitlines()) == 5


def _flip_a_digit(data: bytes) -> bytes:
    i = data.index(b'"loss":') + len(b'"loss":')
    while not data[i:i + 1].isdigit():
        i += 1
    return data[:i] + str((int(data[i:i + 1]) + 1) % 10).encode() + data[i + 1:]


@pytest.mark.parametrize("damage, message", [
    (_flip_a_digit, "modified"),
    (lambda data: data[:-5], "bytes, the checkpoint counts"),
    (lambda data: None, "cannot be read"),
])
def test_a_damaged_journal_is_refused_before_anything_changes(tmp_path, damage, message):
    path = tmp_path / "run.npz"
    _fit(path, 3)
    journal, _ = _journal(path)
    data = damage(open(journal, "rb").read())
    if data is None:
        os.unlink(journal)
    else:
        open(journal, "wb").write(data)
    model = cr.MLP([4, 6, 3], rng=0)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(ModelFileError, match=message):
        _fit(path, 5, resume=True, model=model)
    for k, p in before.items():
        np.testing.assert_array_equal(model.params[k], p)


def test_a_forged_journal_state_is_refused(tmp_path):
    path = tmp_path / "run.npz"
    _fit(path, 2)
    arrays, meta = read_archive(path)
    meta["history"]["journal"]["token"] = "../../etc/passwd"
    write_archive(path, arrays, meta)
    with pytest.raises(ModelFileError, match="journal state"):
        _fit(path, 4, resume=True)


def test_a_new_run_keeps_the_old_journal_until_its_first_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    _fit(path, 2)
    old_journal, _ = _journal(path)
    _fit(path, 2)                        # a new run (no resume) over the same file
    new_journal, _ = _journal(path)
    assert new_journal != old_journal
    assert not os.path.exists(old_journal) and os.path.exists(new_journal)


_FIT = """
import sys, numpy as np, chainrule as cr
rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 8)); Y = np.eye(3)[rng.integers(0, 3, 1000)]
model = cr.MLP([8, 64, 3], rng=0)
cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-3), epochs=int(sys.argv[2]), batch_size=16,
       rng=1, checkpoint=sys.argv[1], resume=True, progress=False)
np.save(sys.argv[1] + ".W1.npy", model.params["W1"])
"""


def _epoch_of(path):
    try:  # the file may be replaced while it is read: that is not a result yet
        return read_archive(path)[1]["epoch"]
    except Exception:  # noqa: BLE001
        return 0


@pytest.mark.slow
def test_killed_fits_resume_to_the_uninterrupted_result(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    args = [sys.executable, "-c", _FIT]
    path, epochs, kills = tmp_path / "k.npz", 300, 6
    subprocess.run(args + [os.fspath(tmp_path / "whole.npz"), str(epochs)], env=env,
                   check=True)
    rng = np.random.default_rng(0)
    done = []
    for _ in range(kills):
        proc = subprocess.Popen(args + [os.fspath(path), str(epochs)], env=env)
        # Kill once this run has committed an epoch of its own (however slow the machine
        # is), at a random moment after that: mid-epoch or mid-write.
        before = done[-1] if done else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and _epoch_of(path) > before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():      # what the kill left is a whole, resumable checkpoint
            done.append(read_archive(path)[1]["epoch"])
    assert done and done[-1] < epochs           # the kills did interrupt the run
    assert done == sorted(done)                 # each run resumed, none restarted
    subprocess.run(args + [os.fspath(path), str(epochs)], env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "k.npz.W1.npy"),
                                  np.load(tmp_path / "whole.npz.W1.npy"))
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
