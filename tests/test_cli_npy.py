"""``chainrule train --data X.npy --labels y.npy``: out-of-core training from the command
line, and the file views it is built on (``NpyFile.subset``, ``standardized``,
``column_stats``). The memory-capped run is in tests/test_sources.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main
from chainrule.data import open_npy
from chainrule.sources import column_stats


def run(capsys, *argv):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def table(n=400, d=6, seed=0):
    r = np.random.default_rng(seed)
    y = np.array([3, 7, 9])[np.arange(n) % 3]  # labels that are not 0..K-1
    X = r.normal(0, 3, size=(10, d))[y] + r.normal(size=(n, d)) * r.uniform(0.1, 50, d)
    X[:, 2] = 4.0  # a constant column: scale 1, as in data.standardize
    return X, y


def test_subset_reads_the_rows_it_names_from_one_block_at_a_time(tmp_path):
    X, _ = table(103)
    np.save(tmp_path / "X.npy", X)
    f = open_npy(tmp_path / "X.npy", block_bytes=6 * 8 * 10)  # blocks of 10 rows
    idx = np.random.default_rng(1).permutation(103)[:37]
    view = f.subset(idx)
    assert view.shape == (37, 6) and len(f) == 103  # the file itself is unchanged
    np.testing.assert_array_equal(view.read(0, 37), X[np.sort(idx)])
    np.testing.assert_array_equal(view.read(5, 17), X[np.sort(idx)][5:17])
    # a subset of a subset names positions of the view
    np.testing.assert_array_equal(view.subset([0, 36]).read(0, 2), X[np.sort(idx)[[0, 36]]])
    reads = []
    spy = f._read_file
    f._read_file = lambda a, b, pick=None: reads.append((a, b)) or spy(a, b, pick)
    f.subset(np.arange(0, 103, 2)).read(0, 52)
    assert all(a // 10 == (b - 1) // 10 for a, b in reads)  # never across a block
    with pytest.raises(ValueError, match="distinct"):
        f.subset([1, 1])
    with pytest.raises(ValueError, match=r"0..102 .*got values in \[0, 103\]"):
        f.subset([0, 103])
    with pytest.raises(TypeError, match="integers"):
        f.subset([0.5])


def test_column_stats_and_standardized_rows_match_the_in_memory_ones(tmp_path):
    X, _ = table(250)
    np.save(tmp_path / "X.npy", X)
    f = open_npy(tmp_path / "X.npy", block_bytes=6 * 8 * 16)  # 16 blocks to combine
    mean, scale = column_stats(f)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12, atol=1e-12)
    expected = X.std(axis=0)
    expected[2] = 1.0
    np.testing.assert_allclose(scale, expected, rtol=1e-12)
    rows = np.arange(0, 250, 3)
    view = f.subset(rows).standardized(mean, scale)
    np.testing.assert_allclose(view.read(0, len(rows)), (X[rows] - mean) / scale, rtol=1e-15)
    with pytest.raises(ValueError, match="scale must be positive"):
        f.standardized(mean, -scale)
    with pytest.raises(ValueError, match=r"mean must hold 6 finite values"):
        f.standardized(mean[:3], scale)


def test_fit_takes_validation_rows_as_file_views(tmp_path):
    X, y = table(300)
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1)
    k = np.searchsorted([3, 7, 9], y)
    np.save(tmp_path / "X.npy", X)
    f = open_npy(tmp_path / "X.npy", block_bytes=6 * 8 * 20)
    val = np.arange(0, 300, 7)
    train = np.setdiff1d(np.arange(300), val)
    runs = []
    for data, validation in (((X[train], np.eye(3)[k[train]]), (X[val], np.eye(3)[k[val]])),
                             ((f.subset(train), k[train]), (f.subset(val), k[val]))):
        model = cr.MLP([6, 5, 3], rng=0)
        runs.append(cr.fit(model, *data, optimizer="adam", epochs=3, batch_size=32,
                           shuffle=False, validation_data=validation, rng=0,
                           progress=False).history)
    assert runs[1]["loss"] == runs[0]["loss"]
    np.testing.assert_allclose(runs[1]["val_loss"], runs[0]["val_loss"], rtol=1e-12)
    assert runs[1]["val_accuracy"] == runs[0]["val_accuracy"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_npy_file_trains_the_model_the_same_rows_in_an_npz_give(tmp_path, capsys, task):
    # The same rows as .npz (read whole, standardised in memory) and as .npy (out of
    # core: test and validation rows as views, statistics in one pass, scaling per
    # batch). The files are smaller than a block, so the block-then-row shuffle is
    # rng.permutation as for arrays, and both runs see the same splits and batches.
    X, y = table()
    if task == "regression":
        y = X[:, 0] * 0.3 - X[:, 1] * 0.01 + np.random.default_rng(2).normal(size=len(y))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    flags = ["--epochs", "5", "--seed", "3", "--hidden", "16", "--task", task]
    outputs, models = [], []
    for name, data in (("a", ["--data", tmp_path / "d.npz"]),
                       ("b", ["--data", tmp_path / "X.npy", "--labels", tmp_path / "y.npy"])):
        status, out, err = run(capsys, "train", *data, *flags, "--save",
                               tmp_path / f"{name}.npz")
        assert status == 0, err
        # Each line without its elapsed seconds, the one figure a busy machine changes.
        outputs.append([re.sub(r"\s+[0-9.]+s$", "", line) for line in out.splitlines()
                        if not line.startswith(("data:", "trained", "saved"))])
        models.append(cr.io.load(tmp_path / f"{name}.npz"))
    assert len([line for line in outputs[0] if line.startswith("epoch")]) == 5
    assert outputs[1] == outputs[0]  # every epoch's losses and the test score
    for key, p in models[0].params.items():
        np.testing.assert_allclose(models[1].params[key], p, rtol=1e-12, atol=1e-12)
    # both files take raw rows
    np.testing.assert_allclose(models[1].predict(X), models[0].predict(X), rtol=1e-10,
                               atol=1e-12)


def test_the_npy_flags_that_cannot_apply_are_refused_before_training(tmp_path, capsys):
    X, y = table(60)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "t.npz", X=X, y=y)
    data = ["train", "--data", tmp_path / "X.npy", "--labels", tmp_path / "y.npy"]
    status, _, err = run(capsys, *data, "--save-test", tmp_path / "t.csv")
    assert status == 2 and "--save-test" in err and "--test-data" in err
    status, _, err = run(capsys, *data, "--test-data", tmp_path / "t.npz")
    assert status == 2 and "must be a .npy file too" in err
    status, _, err = run(capsys, *data, "--test-data", tmp_path / "X.npy")
    assert status == 2 and "--test-labels" in err
    np.save(tmp_path / "y2.npy", y[:-1])
    status, _, err = run(capsys, "train", "--data", tmp_path / "X.npy", "--labels",
                         tmp_path / "y2.npy")
    assert status == 1 and "expected one label per row" in err


def test_a_separate_npy_test_file_is_scored(tmp_path, capsys):
    X, y = table(300)
    np.save(tmp_path / "X.npy", X[:200])
    np.save(tmp_path / "y.npy", y[:200])
    np.save(tmp_path / "Xt.npy", X[200:])
    np.save(tmp_path / "yt.npy", y[200:])
    status, out, err = run(capsys, "train", "--data", tmp_path / "X.npy", "--labels",
                           tmp_path / "y.npy", "--test-data", tmp_path / "Xt.npy",
                           "--test-labels", tmp_path / "yt.npy", "--epochs", "3", "--save",
                           tmp_path / "m.npz")
    assert status == 0, err
    assert "200 training rows, 100 test rows" in out
    model = cr.io.load(tmp_path / "m.npz")
    classes = np.array([3, 7, 9])
    correct = int(np.sum(classes[model.predict_classes(X[200:])] == y[200:]))
    assert f"test accuracy = {correct / 100:.4f} ({correct}/100)" in out


def test_a_npy_column_too_large_to_standardise_is_refused_before_training(tmp_path, capsys):
    # Its variance overflows float64: said up front, naming the column, not after the
    # epochs when the statistics are folded into the model.
    X, y = table(60)
    X[:, 1] *= 1e200
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    data = ["train", "--data", tmp_path / "X.npy", "--labels", tmp_path / "y.npy",
            "--epochs", "2", "--save", tmp_path / "m.npz"]
    status, out, err = run(capsys, *data)
    assert status == 1 and "column 1 is too large to standardise" in err
    assert "--no-standardize" in err and "epoch" not in out
    assert not (tmp_path / "m.npz").exists()
    status, _, err = run(capsys, *data, "--no-standardize")
    assert status == 0, err


def test_predict_names_the_row_and_column_of_a_nan_in_a_npy_file(tmp_path, capsys):
    from chainrule.cli import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    assert main(["train", "--data", str(tmp_path / "d.npz"), "-q", "--epochs", "1",
                 "--save", str(tmp_path / "m.npz")]) == 0
    X[250, 2] = np.inf
    np.save(tmp_path / "X.npy", X)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.npz"), "--data", str(tmp_path / "X.npy")]) == 1
    assert "X.npy, row 250, column 2: feature values must be finite, got inf" in \
        capsys.readouterr().err
