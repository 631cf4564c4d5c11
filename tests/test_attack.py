"""Issue 11, item 6: the attack suite. The mutation fuzzer over every reader of outside
bytes (tests/fuzz_readers.py) in a subprocess under a memory limit, and the readers'
error types at the edges the attack found."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from chainrule import data

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, os.pardir, "src")
BUGS = ("crash", "changed", "timeout", "memory")


def _fuzz(cases, seed):
    env = dict(os.environ, PYTHONPATH=SRC, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_readers.py"),
                          "--cases", str(cases), "--seed", str(seed), "--memory-mb", "2048"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _check(table, cases):
    assert set(table) == {"model", "checkpoint", "journal", "csv", "npz", "idx"}
    for reader, counts in table.items():
        assert sum(counts.get(k, 0) for k in ("loaded", "refused") + BUGS) == cases, reader
        bugs = {k: counts[k] for k in BUGS if counts.get(k)}
        assert not bugs, f"{reader}: {bugs} {counts['failures']}"
        assert counts.get("refused", 0) > 0, reader    # the mutations do reach the checks


def test_fuzz_every_reader_quickly():
    _check(_fuzz(40, seed=1), 40)


@pytest.mark.slow
def test_fuzz_every_reader():
    _check(_fuzz(300, seed=2), 300)


def test_the_fuzzer_reports_a_crash(monkeypatch):
    # The harness itself can fail: a reader raising another type is counted as a crash.
    sys.path.insert(0, HERE)
    try:
        import fuzz_readers
    finally:
        sys.path.remove(HERE)

    def broken(path, expected):
        raise KeyError("a bug")

    seed, _, target = fuzz_readers.READERS["csv"]
    monkeypatch.setitem(fuzz_readers.READERS, "csv", (seed, broken, target))
    counts = fuzz_readers.fuzz("csv", 3)
    assert counts["crash"] == 3 and "KeyError" in counts["failures"][0]


# -- the edges the attack found: each a documented error naming the file ---------------

def test_a_csv_field_over_the_csv_module_limit_is_read_and_judged_as_a_number(tmp_path):
    # The csv module's 128 KiB cell limit once refused it; now the cell is read (as
    # pandas reads it) and refused as a number that overflows, the message cut short.
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1,2\n3," + "4" * 200_000 + "\n")
    with pytest.raises(ValueError, match=r"big\.csv, line 3, column 'b': feature values must "
                                         r"be finite, got '4{40}'\.\.\. \(200000 characters\)$"):
        data.load_csv(path)
    (path.parent / "wide.csv").write_text("a,note\n1,x\n2," + "y" * 200_000 + "\n")
    X = data.load_csv(path.parent / "wide.csv", feature_columns=["a"])[0]
    assert X.tolist() == [[1.0], [2.0]]


def test_a_bare_cr_inside_a_csv_field_names_the_file(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"a,b\n1,x\rb,3\n")
    with pytest.raises(ValueError, match=r"cr\.csv, line 2"):
        data.load_csv(path)


def test_load_npz_with_an_unknown_compression_method_is_a_value_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((2, 2)), y=np.array([0, 1]))
    raw = bytearray(path.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):      # local and central headers alike
        at = raw.find(sig)
        while at != -1:
            raw[at + (8 if sig == b"PK\x03\x04" else 10)] = 99
            at = raw.find(sig, at + 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"d\.npz: not a readable \.npz archive"):
        data.load_npz(path)


def test_holdout_split_of_none_is_a_type_error_naming_x():
    with pytest.raises(TypeError, match="X must be an array"):
        data.holdout_split(None, np.arange(4))


def test_idx_with_more_dimensions_than_numpy_names_the_file(tmp_path):
    path = tmp_path / "many-idx"
    path.write_bytes(struct.pack(">HBB", 0, 8, 70) + struct.pack(">70I", *[1] * 70) + b"\0")
    with pytest.raises(ValueError, match=r"many-idx: the IDX header declares 70 dim"):
        data.load_idx(path)

