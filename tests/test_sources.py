"""Out-of-core data (chainrule.sources): .npy files read a block of rows at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import open_npy
from chainrule.sources import RowView, check_data, shuffled_order

HERE = Path(__file__).resolve().parent


def write_data(folder, n=300, d=8, k=3, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (r.normal(0, 3, size=(k, d))[y] + r.normal(size=(n, d))).astype(dtype)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    return X, y


def test_a_file_trains_bit_for_bit_like_the_same_rows_in_memory(tmp_path):
    X, y = write_data(tmp_path)
    runs = []
    for data in ((X, np.eye(3)[y]),
                 (open_npy(tmp_path / "X.npy", block_bytes=700), open_npy(tmp_path / "y.npy"))):
        model = cr.MLP([8, 5, 3], rng=0)
        h = cr.fit(model, *data, optimizer="adam", epochs=3, batch_size=32, shuffle=False,
                   rng=0, progress=False)
        runs.append((model.params, h.history, cr.evaluate(model, *data)))
    (p0, h0, e0), (p1, h1, e1) = runs
    for k in p0:
        np.testing.assert_array_equal(p1[k], p0[k])
    assert h1["loss"] == h0["loss"] and h1["accuracy"] == h0["accuracy"]
    # evaluate reads the file in blocks of 10 rows (700 bytes) and combines them
    assert e1["accuracy"] == e0["accuracy"]
    assert e1["loss"] == pytest.approx(e0["loss"], rel=1e-12)


def test_labels_may_be_an_array_and_targets_a_file(tmp_path):
    X, y = write_data(tmp_path)
    np.save(tmp_path / "Y.npy", np.eye(3)[y])
    Xf = open_npy(tmp_path / "X.npy", block_bytes=1000)
    reference = cr.MLP([8, 5, 3], rng=0)
    cr.fit(reference, X, np.eye(3)[y], optimizer="sgd", epochs=2, batch_size=50,
           shuffle=False, rng=0, progress=False)
    for Y in (y, open_npy(tmp_path / "Y.npy", block_bytes=1000)):
        model = cr.MLP([8, 5, 3], rng=0)
        cr.fit(model, Xf, Y, optimizer="sgd", epochs=2, batch_size=50, shuffle=False, rng=0,
               progress=False)
        for k, p in reference.params.items():
            np.testing.assert_array_equal(model.params[k], p)


def test_shuffling_permutes_blocks_then_rows_inside_each_block(tmp_path):
    write_data(tmp_path, n=103)
    X = RowView(open_npy(tmp_path / "X.npy", block_bytes=8 * 8 * 10), None, 8)  # 10 rows
    assert X.file.block_rows == 10
    orders = [shuffled_order(X, np.random.default_rng(seed)) for seed in range(3)]
    for order in orders:
        assert sorted(order) == list(range(103))  # every row once
        # the order is a run of whole blocks: all rows of one block, then of another
        cut = [i for i in range(0, 103) if i == 0 or order[i] // 10 != order[i - 1] // 10]
        assert len(cut) == 11  # 11 blocks (the last one of 3 rows), each visited once
        assert list(order) != sorted(order)
    assert not np.array_equal(orders[0], orders[1])
    # arrays keep rng.permutation, so in-memory runs are unchanged
    np.testing.assert_array_equal(shuffled_order(np.zeros((7, 2)), np.random.default_rng(5)),
                                  np.random.default_rng(5).permutation(7))


def test_files_are_checked_before_training(tmp_path):
    X, y = write_data(tmp_path)
    model = cr.MLP([8, 5, 3], rng=0)
    Xf, yf = open_npy(tmp_path / "X.npy"), open_npy(tmp_path / "y.npy")
    with pytest.raises(ValueError, match="needs batch_size"):
        cr.fit(model, Xf, yf, optimizer="sgd", epochs=1, progress=False)
    with pytest.raises(ValueError, match="validation_fraction"):
        cr.fit(model, Xf, yf, optimizer="sgd", epochs=1, batch_size=10,
               validation_fraction=0.1, progress=False)
    with pytest.raises(ValueError, match=r"has shape \(300, 8\) but the model expects 4"):
        check_data(cr.MLP([4, 3]), Xf, yf, 10)
    with pytest.raises(ValueError, match=r"class indices 0..1 .* got values in \[0, 2\]"):
        check_data(cr.MLP([8, 2]), Xf, yf, 10)
    with pytest.raises(ValueError, match="X has 300 rows but Y has 299"):
        check_data(model, Xf, y[:-1], 10)
    # targets in memory must be one row of n_outputs values per row of X
    with pytest.raises(ValueError, match=r"Y must be a file .* of shape \(300, 3\), got "
                                         r"shape \(300, 2\)"):
        check_data(model, Xf, np.eye(3)[y][:, :2], 10)
    np.save(tmp_path / "images.npy", np.zeros((4, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(4, 3, 3\) \(images: save them with their "
                                         r"labels in an .npz, which keeps their shape"):
        open_npy(tmp_path / "images.npy")
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    with pytest.raises(ValueError, match="Fortran-ordered"):
        open_npy(tmp_path / "f.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="is not a .npy file"):
        open_npy(tmp_path / "bad.npy")
    bad = X.copy()
    bad[123, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="finite"):  # rows are checked as they are read
        cr.fit(model, open_npy(tmp_path / "nan.npy"), yf, optimizer="sgd", epochs=1,
               batch_size=10, progress=False)


def run_capped(mode, folder, headroom_mb):
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(HERE / "memcap_worker.py"), mode,
                             str(folder / "X.npy"), str(folder / "y.npy"), str(headroom_mb)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the capped subprocess ({mode}) hung")
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_epoch_on_a_file_four_times_larger_than_the_memory_left(tmp_path):
    write_big_files(tmp_path)
    # the cap bites: reading the file whole fails under it
    assert run_capped("load", tmp_path, 24) == {"memory_error": True}
    result = run_capped("fit", tmp_path, 24)
    assert np.isfinite(result["loss"]) and result["peak"] <= result["cap"]
    # one epoch learns something about the (y % 4) shift of the rows
    assert result["eval"]["accuracy"] > 0.2


@pytest.mark.slow
def test_the_train_command_trains_on_a_file_four_times_larger_than_the_memory_left(tmp_path):
    # chainrule train --data X.npy: test rows, validation rows and standardisation
    # (one pass for the statistics) all read the file a block at a time
    write_big_files(tmp_path)
    assert run_capped("load", tmp_path, 24) == {"memory_error": True}
    result = run_capped("cli", tmp_path, 24)
    assert result["status"] == 0, result
    assert result["peak"] <= result["cap"]
    # the saved model takes raw rows: on a slice of the file it beats chance (1/10)
    # through the (y % 4) shift, which one epoch learns
    model = cr.io.load(tmp_path / "model.npz")
    X = np.load(tmp_path / "X.npy", mmap_mode="r")[:4096]
    y = np.load(tmp_path / "y.npy")[:4096]
    assert np.mean(model.predict_classes(np.asarray(X, dtype=np.float64)) == y) > 0.2


def write_big_files(tmp_path):
    # 96 MiB of float32 rows (1 KiB each): four times a cap of 24 MiB above what the
    # process uses after importing chainrule.
    n, d = 96 * 1024, 256
    r = np.random.default_rng(0)
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                  shape=(n, d))
    y = np.arange(n) % 10
    for start in range(0, n, 8192):  # written in pieces: the test process stays small too
        rows = slice(start, start + 8192)
        X[rows] = r.normal(size=(8192, d)) + y[rows, None] % 4
    X.flush()
    del X
    np.save(tmp_path / "y.npy", y)
    assert (tmp_path / "X.npy").stat().st_size > 4 * 24 * 2**20


def test_a_run_on_files_resumes_bit_for_bit_from_its_checkpoint(tmp_path):
    write_data(tmp_path)

    def run(epochs, **kw):
        model = cr.MLP([8, 5, 3], rng=0)
        cr.fit(model, open_npy(tmp_path / "X.npy", block_bytes=640),
               open_npy(tmp_path / "y.npy"), optimizer="adam", epochs=epochs, batch_size=16,
               rng=0, progress=False, **kw)
        return model.params

    whole = run(3)
    run(2, checkpoint=tmp_path / "ck.npz")
    resumed = run(3, checkpoint=tmp_path / "ck.npz", resume=True)
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k])
    # the checkpoint knows its data: another file is another run
    X2 = np.load(tmp_path / "X.npy")
    X2[0, 0] += 1
    np.save(tmp_path / "X2.npy", X2)
    with pytest.raises(ValueError, match="belongs to a different run.*data"):
        model = cr.MLP([8, 5, 3], rng=0)
        cr.fit(model, open_npy(tmp_path / "X2.npy"), open_npy(tmp_path / "y.npy"),
               optimizer="adam", epochs=3, batch_size=16, rng=0, progress=False,
               checkpoint=tmp_path / "ck.npz", resume=True)


def test_a_run_on_files_resumes_on_a_copy_and_after_a_touch(tmp_path):
    # By content, not by path or modification time: the same file copied to another
    # node (here, another folder) or touched resumes the run; its last row changed does
    # not (the middle and the ends of the file are read).
    import os
    import shutil

    write_data(tmp_path)

    def run(folder, epochs, **kw):
        model = cr.MLP([8, 5, 3], rng=0)
        cr.fit(model, open_npy(folder / "X.npy", block_bytes=640), open_npy(folder / "y.npy"),
               optimizer="adam", epochs=epochs, batch_size=16, rng=0, progress=False,
               checkpoint=tmp_path / "ck.npz", **kw)
        return model.params

    whole = run(tmp_path, 3)
    os.remove(tmp_path / "ck.npz")
    run(tmp_path, 2)
    copy = tmp_path / "node2"
    copy.mkdir()
    for name in ("X.npy", "y.npy"):
        shutil.copy(tmp_path / name, copy / name)   # copy: another path and mtime
    os.utime(copy / "X.npy", (1e9, 1e9))
    resumed = run(copy, 3, resume=True)
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k])
    X = np.load(copy / "X.npy")
    X[-1, -1] += 1
    np.save(copy / "X.npy", X)
    with pytest.raises(ValueError, match="belongs to a different run.*data"):
        run(copy, 4, resume=True)


def test_stream_minibatches_visits_every_row_once_reading_block_by_block(tmp_path):
    from chainrule.data import stream_minibatches

    X, y = write_data(tmp_path, n=95)
    Xf, yf = open_npy(tmp_path / "X.npy", block_bytes=8 * 8 * 20), open_npy(tmp_path / "y.npy")
    batches = list(stream_minibatches(Xf, yf, 16, rng=0))
    assert [len(b[0]) for b in batches] == [16] * 5 + [15]
    Xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    # each streamed row is a row of the file, with its own label, every row once
    where = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in Xs]
    assert sorted(where) == list(range(95))
    np.testing.assert_array_equal(ys, y[where])
    assert where != sorted(where)
    # the stream runs through the 5 blocks of 20 rows (the last of 15) one after another
    changes = int(np.count_nonzero(np.diff(np.array(where) // 20)))
    assert changes == 4
    plain = list(stream_minibatches(Xf, yf, 50, shuffle=False))
    np.testing.assert_array_equal(plain[1][0], X[50:])
    with pytest.raises(TypeError, match="X must be an NpyFile"):
        stream_minibatches(X, yf, 10)


def test_an_epoch_reads_each_block_of_the_file_once(tmp_path):
    write_data(tmp_path, n=103)
    Xf = open_npy(tmp_path / "X.npy", block_bytes=8 * 8 * 10)  # 11 blocks, the last of 3
    reads = []
    read = Xf.read_stored  # what the block cache reads through
    Xf.read_stored = lambda start, stop: reads.append((start, stop)) or read(start, stop)
    cr.fit(cr.MLP([8, 4, 3], rng=0), Xf, open_npy(tmp_path / "y.npy"), optimizer="sgd",
           epochs=1, batch_size=16, rng=0, progress=False, diagnostics=False)
    # batches of 16 straddle blocks of 10, yet every block is read once, whole
    assert sorted(reads) == [(s, min(s + 10, 103)) for s in range(0, 103, 10)]


def test_predicting_on_an_npy_file_says_to_read_its_rows(tmp_path):
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(20, 4)))
    model = cr.MLP([4, 3, 2], rng=0)
    X = open_npy(tmp_path / "X.npy")
    with pytest.raises(TypeError, match=r"X is an NpyFile \(open_npy\): fit and evaluate "
                                        r"read it block by block.*X\.read\(start, stop\)"):
        model.predict(X)
    assert model.predict(X.read(0, 5)).shape == (5, 2)


def test_a_nan_met_in_a_file_is_named_and_the_run_left_at_the_last_epoch(tmp_path):
    # Rows of a file are checked as they are read: the NaN at row 1,700 is met at the
    # 18th step of the first epoch, after 17 updates.
    from chainrule.data import open_npy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    X[1700, 3] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", (np.nan_to_num(X[:, 0]) > 0).astype(int))
    model = cr.MLP([5, 8, 2], rng=0)
    start = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"X\.npy, row 1700, column 3: X must contain only "
                                         r"finite values"):
        cr.fit(model, open_npy(tmp_path / "X.npy"), open_npy(tmp_path / "y.npy"),
               optimizer=cr.Adam(lr=1e-2), epochs=2, batch_size=100, rng=0, shuffle=False,
               progress=False)
    for k, p in model.params.items():   # the 17 updates are undone
        np.testing.assert_array_equal(p, start[k], err_msg=k)
    # a view's row is the file's row
    view = open_npy(tmp_path / "X.npy").subset(np.arange(1000, 2000))
    with pytest.raises(ValueError, match=r"row 1700, column 3"):
        cr.fit(cr.MLP([5, 8, 2], rng=0), view, (np.nan_to_num(X[1000:, 0]) > 0).astype(int),
               optimizer="adam", epochs=1, batch_size=100, rng=0, progress=False)


def test_a_header_with_a_negative_dimension_is_not_a_npy_file(tmp_path):
    from chainrule.data import open_npy

    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (-5, 5), }"
    header += b" " * (118 - len(header)) + b"\n"
    (tmp_path / "neg.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                       + header)
    with pytest.raises(ValueError, match=r"'.*neg\.npy' is not a \.npy file: its header "
                                         r"declares shape \(-5, 5\)"):
        open_npy(tmp_path / "neg.npy")


def test_batches_in_file_order_are_slices_within_the_rows():
    from chainrule.data import batch_indices

    assert list(batch_indices(10, 4)) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert list(batch_indices(10, 4, drop_last=True)) == [slice(0, 4), slice(4, 8)]
