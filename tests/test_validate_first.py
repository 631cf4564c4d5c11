"""Issue 11, item 4: validate, then change. fit refuses a bad checkpoint destination
and a checkpoint holding impossible values before any parameter changes; step refuses
a non-finite loss or gradient before updating; fit removes dead writers' temporaries."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule._fileformat import ModelFileError, read_archive, write_archive


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 4))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    return X, Y


def _params(model):
    return {k: p.copy() for k, p in model.params.items()}


def _assert_unchanged(model, before):
    for k, p in before.items():
        np.testing.assert_array_equal(model.params[k], p, err_msg=k)


def _fit(model, X, Y, **kwargs):
    return cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=2, batch_size=8, rng=0,
                  progress=False, **kwargs)


def _bad_destination(tmp_path, kind):
    if kind == "empty":
        return ""
    if kind == "directory":
        return tmp_path
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        return tmp_path / "pipe"
    path = tmp_path / "ro.npz"
    path.write_bytes(b"keep")
    os.chmod(path, 0o444)
    return path


@pytest.mark.parametrize("kind, error", [("empty", ValueError),
                                         ("directory", IsADirectoryError),
                                         ("fifo", ValueError),
                                         ("read-only", PermissionError)])
def test_fit_refuses_a_bad_checkpoint_before_training(tmp_path, kind, error):
    X, Y = _problem()
    model = cr.MLP([4, 5, 3], rng=0)
    before = _params(model)
    with pytest.raises(error):
        _fit(model, X, Y, checkpoint=_bad_destination(tmp_path, kind))
    _assert_unchanged(model, before)


def _resigned(path, change):
    """The checkpoint at ``path`` with ``change(arrays)`` applied, re-signed (a valid
    checksum: only chainrule's value checks can notice)."""
    arrays, meta = read_archive(path)
    change(arrays)
    write_archive(path, arrays, meta)


@pytest.mark.parametrize("change, message", [
    (lambda a: a["params/W1"].__setitem__((0, 0), np.nan), "'params/W1' holds NaN"),
    (lambda a: a["optim/state/b2/exp_avg"].__setitem__(0, np.inf), "holds NaN or infinite"),
    (lambda a: a["optim/state/W2/exp_avg_sq"].__setitem__((0, 0), -1.0),
     "'optim/state/W2/exp_avg_sq' holds negative"),
])
def test_a_checkpoint_with_impossible_values_is_refused_before_install(tmp_path, change,
                                                                        message):
    X, Y = _problem()
    path = tmp_path / "run.npz"
    _fit(cr.MLP([4, 5, 3], rng=0), X, Y, checkpoint=path)
    _resigned(path, change)
    model = cr.MLP([4, 5, 3], rng=0)
    before = _params(model)
    with pytest.raises(ModelFileError, match=message):
        cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=4, batch_size=8, rng=0,
               progress=False, checkpoint=path, resume=True)
    _assert_unchanged(model, before)


def _overflowing_homework_model():
    model = cr.LogisticRegression(num_features=2, num_classes=2, learning_rate=1.0)
    X, Y = np.array([[1e308, 1e308]]), np.array([[1.0, 0.0]])
    model.step(X, Y)          # finite loss ln 2; the weights become ~5e307
    return model, X, Y


def test_step_refuses_a_non_finite_loss_before_updating():
    model, X, Y = _overflowing_homework_model()
    before = _params(model)
    with np.errstate(all="ignore"), pytest.raises(cr.TrainingDivergedError,
                                                  match="the loss is") as info:
        model.step(X, Y)
    assert info.value.layer == "loss"
    _assert_unchanged(model, before)


def test_step_refuses_a_non_finite_gradient_before_updating(monkeypatch):
    model = cr.MLP([4, 5, 3], rng=0)
    X, Y = _problem()

    def inf_gradient(*args, **kwargs):
        grads = {k: np.zeros_like(p) for k, p in model.params.items()}
        grads["b1"][0] = np.inf
        return 1.0, grads

    # (step runs the checked loss and gradients inside its one thread choice)
    monkeypatch.setattr(model, "_check_loss_and_grads", inf_gradient)
    before = _params(model)
    with pytest.raises(cr.TrainingDivergedError, match="gradient of b1") as info:
        model.step(X, Y, optimizer=cr.SGD(lr=0.1))
    assert info.value.layer == "b1"
    _assert_unchanged(model, before)


def test_fit_removes_temporaries_of_killed_runs_at_start(tmp_path, monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".run.npz.{proc.pid}.zz.tmp"
    stale.write_bytes(b"half a checkpoint")
    X, Y = _problem()
    # With no checkpoint written, only fit's own start-up can remove it.
    monkeypatch.setattr(cr.train, "write_checkpoint", lambda *args: None)
    cr.fit(cr.MLP([4, 5, 3], rng=0), X, Y, optimizer=cr.SGD(lr=0.1), epochs=1, rng=0,
           progress=False, checkpoint=tmp_path / "run.npz")
    assert not stale.exists()


def test_a_model_file_with_an_unknown_init_name_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    cr.io.save(cr.MLP([4, 5, 3], rng=0), path)
    arrays, meta = read_archive(path)
    meta["config"]["init"] = "rm -rf /"
    write_archive(path, arrays, meta)          # re-signed: only the allow-list can refuse
    with pytest.raises(ModelFileError, match="init must be one of"):
        cr.io.load(path)

