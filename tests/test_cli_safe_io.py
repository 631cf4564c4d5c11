"""Issue 11 at the command line: every output goes through the one safe write path and
is checked before any work; predict and evaluate stream their data in row chunks; the
estimator predicts in row chunks. Expected values come from the model itself (one
forward pass over all rows) or from scikit-learn, never from the command's output."""

import csv
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from chainrule import MLP, io, models, network
from chainrule.cli import _stream, main
from chainrule.functional import log_softmax, one_hot, softmax
from chainrule.train import fit

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    X += 3 * np.eye(3, 4)[y]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = MLP([4, 8, 3], rng=0)
    fit(model, X, one_hot(y), optimizer="adam", epochs=5, progress=False)
    io.save(model, tmp_path / "m.npz")
    return tmp_path, model, X, y


def snapshot(folder):
    """Every entry of ``folder``: name -> (kind bits, bytes of a regular file)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        st = os.lstat(folder / name)
        data = (folder / name).read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[name] = (stat.S_IFMT(st.st_mode), data)
    return out


TRAIN = ["train", "--hidden", "4", "--epochs", "1", "-q"]


def test_save_to_a_fifo_is_refused_before_training(files, capsys):
    folder = files[0]
    os.mkfifo(folder / "fifo")
    before = snapshot(folder)
    code, out, err = run(capsys, *TRAIN, "--data", folder / "d.npz", "--save",
                         folder / "fifo")
    assert code == 1 and out == ""        # refused before the data line: nothing trained
    one_line(err, "--save", "not a regular file")
    assert snapshot(folder) == before
    assert stat.S_ISFIFO(os.lstat(folder / "fifo").st_mode)
    code, out, err = run(capsys, "predict", folder / "m.npz", "--data", folder / "d.npz",
                         "-o", folder / "fifo")
    assert code == 1 and out == ""
    one_line(err, "--output", "not a regular file")
    assert snapshot(folder) == before


@pytest.mark.parametrize("argv, flag", [
    (TRAIN + ["--data", "{d}/d.npz", "--save", "{d}/d.npz"], "--save"),
    (TRAIN + ["--data", "{d}/d.npz", "--save", "{d}/X.npz", "--checkpoint", "{d}/X.npz"],
     "--save"),
    (TRAIN + ["--data", "{d}/d.npz", "--checkpoint", "{d}/d.npz"], "--checkpoint"),
    (TRAIN + ["--data", "{d}/d.npz", "--save-test", "{d}/d.npz"], "--save-test"),
    (["predict", "{d}/m.npz", "--data", "{d}/d.npz", "-o", "{d}/m.npz"], "--output"),
    (["predict", "{d}/m.npz", "--data", "{d}/d.npz", "-o", "{d}/d.npz"], "--output"),
    (["export", "{d}/m.npz", "{d}/m.npz"], "output file"),
])
def test_a_command_never_overwrites_its_inputs_or_writes_one_file_twice(files, capsys,
                                                                         argv, flag):
    folder = files[0]
    before = snapshot(folder)
    code, out, err = run(capsys, *[a.format(d=folder) for a in argv])
    assert code == 1 and out == ""
    one_line(err, flag, "cannot write")
    assert snapshot(folder) == before   # nothing written, nothing changed


def test_a_symlink_loop_is_refused_and_kept(files, capsys):
    folder = files[0]
    os.symlink(folder / "loop_b", folder / "loop_a")
    os.symlink(folder / "loop_a", folder / "loop_b")
    before = snapshot(folder)
    code, out, err = run(capsys, *TRAIN, "--data", folder / "d.npz", "--save",
                         folder / "loop_a")
    assert code == 1 and out == ""
    one_line(err, "--save", "symbolic link")
    assert snapshot(folder) == before
    assert os.readlink(folder / "loop_a") == str(folder / "loop_b")


def _expected_rows(model, X):
    proba = softmax(model.forward(X), axis=1)      # one pass over all rows
    return proba, proba.argmax(axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("dest", ["/dev/stdout", "-"])
def test_predict_to_stdout_works_through_a_pipe(files, dest):
    folder, model, X, _ = files
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-m", "chainrule.cli", "predict",
                           str(folder / "m.npz"), "--data", str(folder / "d.npz"), "-o", dest],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = list(csv.reader(proc.stdout.decode().splitlines()))
    assert rows[0] == ["row", "predicted", "p_0", "p_1", "p_2"]
    proba, pred = _expected_rows(model, X)
    assert len(rows) == 1 + len(X)
    assert [int(r[1]) for r in rows[1:]] == pred.tolist()
    np.testing.assert_array_equal(np.array([[float(v) for v in r[2:]] for r in rows[1:]]),
                                  proba)
    assert sorted(os.listdir(folder)) == ["d.npz", "m.npz"]   # no file named '-'


def test_a_hidden_layer_too_large_to_allocate_is_one_line(capsys):
    code, out, err = run(capsys, "train", "--hidden", "100000000000", "--epochs", "1", "-q")
    assert code == 1
    one_line(err, "chainrule train: error:", "--hidden 100000000000", "parameters")


# -- streaming predict and evaluate ------------------------------------------------------

def _chunked(monkeypatch, rows):
    """Make predict/evaluate read ``rows`` rows at a time, and count the chunks."""
    monkeypatch.setattr(_stream, "CHUNK_ROWS", rows)
    seen = []
    original = _stream.iter_chunks

    def counting(*args, **kwargs):
        for chunk in original(*args, **kwargs):
            seen.append(chunk[0].shape[0])
            yield chunk
    monkeypatch.setattr("chainrule.cli.models.iter_chunks", counting)
    return seen


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_predict_in_chunks_writes_every_row_of_the_one_pass(files, capsys, monkeypatch):
    folder, model, X, _ = files
    seen = _chunked(monkeypatch, 20)
    code, _, err = run(capsys, "predict", folder / "m.npz", "--data", folder / "d.npz",
                       "-o", folder / "p.csv")
    assert code == 0, err
    assert seen == [20, 20, 20]                        # 60 rows read 20 at a time
    with open(folder / "p.csv") as fh:
        rows = list(csv.reader(fh))
    proba, pred = _expected_rows(model, X)
    assert [int(r[0]) for r in rows[1:]] == list(range(60))
    assert [int(r[1]) for r in rows[1:]] == pred.tolist()
    np.testing.assert_array_equal(np.array([[float(v) for v in r[2:]] for r in rows[1:]]),
                                  proba)


def test_evaluate_in_chunks_counts_as_one_pass(files, capsys, monkeypatch):
    from sklearn.metrics import confusion_matrix, f1_score

    folder, model, X, y = files
    # A CSV with its columns in another order, the label in the middle: matched by name
    # only when the model knows its names, so use positions here (no names stored).
    _write_csv(folder / "t.csv", ["a", "b", "label", "c", "d"],
               [[*map(repr, x[:2]), t, *map(repr, x[2:])]
                for x, t in zip(X.tolist(), y.tolist(), strict=True)])
    seen = _chunked(monkeypatch, 20)
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", folder / "t.csv",
                         "--label-column", "label")
    assert code == 0, err
    assert seen == [20, 20, 20]
    _, pred = _expected_rows(model, X)
    hits = int((pred == y).sum())
    assert f"accuracy = {hits / 60:.4f} ({hits}/60)" in out
    assert "data  " in out and ": 60 rows" in out
    f1 = f1_score(y, pred, average=None, labels=[0, 1, 2], zero_division=0)
    table = [line.split() for line in out.splitlines()]
    for k in range(3):
        row = next(r for r in table if r[:1] == [str(k)] and len(r) == 5)
        assert float(row[3]) == pytest.approx(f1[k], abs=5e-5)
        assert int(row[4]) == int((y == k).sum())
    C = confusion_matrix(y, pred, labels=[0, 1, 2])
    matrix = [r for r in table if len(r) == 4 and r[0] in "012"][-3:]
    assert [[int(v) for v in r[1:]] for r in matrix] == C.tolist()


def test_regression_evaluate_in_chunks_equals_one_pass(tmp_path, capsys, monkeypatch):
    from sklearn.metrics import mean_absolute_error, r2_score

    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 3))
    t = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=50)
    model = MLP([3, 6, 1], loss="mse", rng=0)
    fit(model, X, t[:, None], optimizer="adam", epochs=5, progress=False)
    io.save(model, tmp_path / "r.npz")
    np.savez(tmp_path / "r_data.npz", X=X, y=t)
    seen = _chunked(monkeypatch, 25)
    code, out, err = run(capsys, "evaluate", tmp_path / "r.npz", "--data",
                         tmp_path / "r_data.npz")
    assert code == 0, err
    assert seen == [25, 25]
    pred = model.forward(X)[:, 0]
    rmse = float(np.sqrt(np.mean((t - pred) ** 2)))
    assert f"RMSE = {rmse:.6g}" in out
    assert f"MAE  = {mean_absolute_error(t, pred):.6g}" in out
    assert f"R²   = {r2_score(t, pred):.4f}" in out


def test_the_estimator_predicts_in_row_chunks_as_one_pass(monkeypatch):
    from chainrule import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, X[:, 0])
    logits, out = clf.model_.forward(X), reg.model_.forward(X)[:, 0]   # one pass each
    calls = []
    forward = models.Network.forward

    def counting(self, X, *args, **kwargs):
        calls.append(X.shape[0])
        return forward(self, X, *args, **kwargs)
    monkeypatch.setattr(models.Network, "forward", counting)
    # Chunks of 40 rows. (Bit-identical results need chunks that BLAS multiplies
    # with the kernel it uses for all rows: OpenBLAS switches kernels below ~20 rows,
    # far below the thousands of rows of a real activation budget.)
    monkeypatch.setattr(network, "ACTIVATION_BUDGET", 40 * (4 + 16 + 16 + 3) * 8)
    np.testing.assert_array_equal(clf.predict_proba(X), softmax(logits, axis=1))
    assert calls == [40, 40, 40]             # 120 rows in chunks of 40, never all at once
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[logits.argmax(axis=1)])
    np.testing.assert_array_equal(clf.predict_log_proba(X), log_softmax(logits, axis=1))
    assert clf.score(X, y) == np.mean(clf.classes_[logits.argmax(axis=1)] == y)
    calls.clear()
    monkeypatch.setattr(network, "ACTIVATION_BUDGET", 40 * (4 + 16 + 16 + 1) * 8)
    np.testing.assert_array_equal(reg.predict(X), out)
    assert calls == [40, 40, 40]


@pytest.mark.slow
def test_predict_memory_stays_flat_in_the_rows(tmp_path):
    """``chainrule predict`` on 2e5 rows x 10 features with a 1024-unit model.

    One pass would hold every row's activations: 2e5 x (10 + 1024 + 1024 + 2) x 8 bytes
    = 3.3 GB (issue 11 measured 17 KB a row). In chunks, a run holds at most a chunk of
    65536 rows of input and text (about 20 MB), the activation budget (32 MB) and the
    parser's buffers, whatever the number of rows: its peak may exceed that of a
    100-row run by at most 150 MB.
    """
    model = MLP([10, 1024, 2], rng=0)
    io.save(model, tmp_path / "m.npz")
    rng = np.random.default_rng(6)
    header = ",".join(f"x{j}" for j in range(10))
    np.savetxt(tmp_path / "big.csv", rng.normal(size=(200_000, 10)), delimiter=",",
               header=header, comments="", fmt="%.6f")
    np.savetxt(tmp_path / "small.csv", rng.normal(size=(100, 10)), delimiter=",",
               header=header, comments="", fmt="%.6f")
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.exit(r.returncode)")

    def peak_kib(data):
        argv = [sys.executable, "-c", probe, sys.executable, "-m", "chainrule.cli",
                "predict", str(tmp_path / "m.npz"), "--data", str(data), "-o",
                str(tmp_path / "p.csv")]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, PYTHONPATH=SRC), check=False)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout.split()[-1])

    small, big = peak_kib(tmp_path / "small.csv"), peak_kib(tmp_path / "big.csv")
    with open(tmp_path / "p.csv") as fh:
        assert sum(1 for _ in fh) == 200_001
    assert big - small < 150 * 1024, (small, big)


def test_predict_and_evaluate_read_a_npy_file_block_by_block(files, capsys, monkeypatch):
    folder, model, X, y = files
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    seen = _chunked(monkeypatch, 20)
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", folder / "X.npy",
                         "--labels", folder / "y.npy")
    assert code == 0, err
    assert seen == [20, 20, 20]
    _, pred = _expected_rows(model, X)
    hits = int((pred == y).sum())
    assert f"accuracy = {hits / 60:.4f} ({hits}/60)" in out
    code, out, err = run(capsys, "predict", folder / "m.npz", "--data", folder / "X.npy")
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    assert [int(r[1]) for r in rows[1:]] == pred.tolist()
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", folder / "X.npy")
    assert code == 2 and out == ""
    one_line(err, "--labels")


def test_python_dash_m_chainrule_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "chainrule", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "reproduce" in proc.stdout and "train" in proc.stdout


@pytest.mark.parametrize("command, absent", [("export", ["--output", "--plot", "--labels",
                                                         "data file"]),
                                             ("predict", ["--plot", "--labels"]),
                                             ("evaluate", ["--output"])])
def test_each_commands_exit_status_help_names_only_its_own_flags(command, absent, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    epilog = capsys.readouterr().out.split("Exit status:")[1]
    assert not [flag for flag in absent if flag in epilog], epilog
