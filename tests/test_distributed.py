"""Data-parallel training over MPI (``fit(..., comm=...)``, chainrule.distributed).

The tests that need MPI run ``mpiexec -n 2`` on ``tests/mpi_fit_worker.py`` in a
subprocess of its own session, with a hard timeout that kills the whole process group,
so a hang fails the test instead of the suite. The single-process tests use
``MPI.COMM_SELF`` or small stand-in communicators.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed as dist

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKER = HERE / "mpi_fit_worker.py"
sys.path.insert(0, str(HERE))
from mpi_fit_worker import files_settings, make_data, open_files, run_settings  # noqa: E402


def mpiexec():
    """The mpiexec next to this Python (a venv with the mpich wheel), else on PATH."""
    pytest.importorskip("mpi4py")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec is not installed (pip install chainrule[mpi])")
    return found


def start_job(mode, outdir, ranks=2):
    env = dict(os.environ, PYTHONPATH=str(SRC), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([mpiexec(), "-n", str(ranks), sys.executable, str(WORKER), mode,
                             str(outdir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc, timeout):
    """``(returncode, stdout, stderr)``; on timeout kill the job's process group and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the MPI job hung for {timeout} s; stderr: {err[-2000:]}")
    return proc.returncode, out, err


@pytest.mark.slow
def test_two_ranks_train_exactly_what_one_process_trains(tmp_path):
    rc, out, err = finish(start_job("equal", tmp_path), timeout=60)
    assert rc == 0, err
    X, Y, w = make_data()
    model = cr.MLP([6, 16, 3], rng=0)
    history = cr.fit(model, X, Y, sample_weight=w, **run_settings())
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    for k, p in model.params.items():
        np.testing.assert_allclose(ranks[0][k], p, rtol=0, atol=1e-12, err_msg=k)
        # every rank applies the same step to the same parameters
        np.testing.assert_array_equal(ranks[1][k], ranks[0][k], err_msg=k)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ranks[0][f"history/{key}"], history.history[key],
                                   rtol=0, atol=1e-12, err_msg=key)
    assert (tmp_path / "ck.npz").exists()  # rank 0 wrote the checkpoint


@pytest.mark.slow
def test_two_ranks_on_files_read_out_of_core_train_what_one_process_trains(tmp_path):
    X, y, _ = make_data()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y.argmax(axis=1))
    rc, out, err = finish(start_job("files", tmp_path), timeout=60)
    assert rc == 0, err
    model = cr.MLP([6, 16, 3], rng=0)
    cr.fit(model, *open_files(tmp_path), **files_settings())  # the same blocks, one process
    rank0 = np.load(tmp_path / "rank0.npz")
    for k, p in model.params.items():
        np.testing.assert_allclose(rank0[k], p, rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("mode, message", [
    ("bad_data", "rank 1 of 2 failed: ValueError: X has 7 features but the model expects 6"),
    ("raise", "rank 1 of 2 failed: RuntimeError: rank 1 ran out of luck")])
def test_an_error_on_one_rank_stops_every_rank(tmp_path, mode, message):
    rc, out, err = finish(start_job(mode, tmp_path), timeout=60)
    assert rc != 0
    assert message in err
    assert not (tmp_path / "rank0.npz").exists()  # rank 0 did not finish on its own


@pytest.mark.slow
def test_ranks_given_different_data_refuse_to_start(tmp_path):
    rc, out, err = finish(start_job("disagree", tmp_path), timeout=60)
    assert rc != 0
    # every rank raises the same error before the first step, none hangs
    assert err.count("RanksDisagreeError: the ranks were given different runs: rank 0 has "
                     "{'X': [203, 6]") == 2
    assert "rank 1 has {'X': [200, 6]" in err
    assert not (tmp_path / "rank0.npz").exists()


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_instead_of_hanging(tmp_path):
    proc = start_job("hang_until_killed", tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid1").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"rank 1 never reported its pid: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
    rc, out, err = finish(proc, timeout=60)
    assert rc != 0
    # mpiexec (mpich's hydra) noticed the death and ended the other rank
    assert "BAD TERMINATION" in out + err and "signal 9" in out + err


# -- in one process ------------------------------------------------------------------------

class CountingComm:
    """Wraps a communicator and records the size of every Allreduce buffer."""

    def __init__(self, comm):
        self.comm, self.allreduce_sizes = comm, []

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def Allreduce(self, send, recv):  # noqa: N802 - mpi4py's name
        self.allreduce_sizes.append(send.size)
        return self.comm.Allreduce(send, recv)


class StandInComm:
    """Just enough of a communicator of ``size`` ranks for the argument checks."""

    def __init__(self, size, rank=0):
        self.size, self.rank = size, rank

    def Get_size(self):  # noqa: N802
        return self.size

    def Get_rank(self):  # noqa: N802
        return self.rank

    def Allreduce(self, send, recv):  # noqa: N802
        recv[...] = send * self.size

    def allgather(self, value):
        return [value] * self.size

    def Abort(self, code=1):  # noqa: N802
        raise SystemExit(code)


def test_one_allreduce_per_step_on_one_buffer_of_all_gradients():
    MPI = pytest.importorskip("mpi4py.MPI")
    X, Y, w = make_data(n=100)
    comm = CountingComm(MPI.COMM_SELF)
    model = cr.MLP([6, 16, 3], rng=0)
    cr.fit(model, X, Y, optimizer="adam", epochs=3, batch_size=32, rng=0, comm=comm,
           progress=False)
    n_params = 6 * 16 + 16 + 16 * 3 + 3
    steps_per_epoch = 4  # 100 rows in batches of 32
    # each step: one buffer of every gradient entry and the loss; each epoch: one
    # reduction of what it counted (loss, weight, correct rows, live ReLU units)
    assert comm.allreduce_sizes == 3 * ([n_params + 1] * steps_per_epoch + [3 + 16])


def test_one_rank_trains_bit_for_bit_what_no_communicator_trains():
    MPI = pytest.importorskip("mpi4py.MPI")
    X, Y, w = make_data(n=100)
    runs = []
    for comm in (None, MPI.COMM_SELF):
        model = cr.MLP([6, 16, 3], rng=0)
        h = cr.fit(model, X, Y, sample_weight=w, optimizer="adam", epochs=3, batch_size=32,
                   rng=0, l2=1e-2, comm=comm, progress=False)
        runs.append((model.params, h.history))
    (p0, h0), (p1, h1) = runs
    for k in p0:
        np.testing.assert_array_equal(p1[k], p0[k])
    assert h0["loss"] == h1["loss"]


def test_shards_cover_the_batch_in_order_and_their_shares_add_up():
    weights = np.arange(1.0, 11.0)
    idx = np.array([9, 2, 4, 0, 7, 1, 3])
    pieces = []
    for rank in range(3):
        averager = dist.GradientAverager(StandInComm(3, rank), {"W": np.zeros(2)})
        local, share, rows = dist.shard_rows(averager, idx)
        assert share == len(local) / 7 and rows == 7
        local_w, share_w, total_w = dist.shard_rows(averager, idx, weights)
        np.testing.assert_array_equal(local_w, local)
        assert total_w == 10 + 3 + 5 + 1 + 8 + 2 + 4
        assert share_w == pytest.approx(weights[local].sum() / total_w)
        pieces.append(local)
    np.testing.assert_array_equal(np.concatenate(pieces), idx)
    assert [len(p) for p in pieces] == [3, 2, 2]
    local, share, rows = dist.shard_rows(None, slice(0, 5))
    assert (local, share, rows) == (slice(0, 5), 1.0, None)


def test_the_averaged_gradient_is_the_share_weighted_sum():
    # Two ranks whose shares are 0.75 and 0.25: the stand-in sums two equal
    # contributions, so the result is 2 * share * g.
    averager = dist.GradientAverager(StandInComm(2), {"W": np.zeros((2, 2)), "b": np.zeros(2)})
    grads = {"W": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": np.array([8.0, -4.0])}
    loss = averager.average(grads, 2.0, 0.75)
    assert loss == 3.0
    np.testing.assert_array_equal(grads["W"], [[1.5, 3.0], [4.5, 6.0]])
    np.testing.assert_array_equal(grads["b"], [12.0, -6.0])
    assert averager.nbytes == 7 * 8


def test_comm_is_checked_before_anything_changes(capsys):
    X, Y, _ = make_data(n=30)
    model = cr.MLP([6, 4, 3], rng=0)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(TypeError, match="comm must be an MPI communicator.*got int"):
        cr.fit(model, X, Y, optimizer="sgd", epochs=1, comm=3, progress=False)
    # 30 rows in batches of 8: the last batch has 6 rows, fewer than 8 ranks. Ranks
    # with other data might not fail, so this rank aborts the job (here: SystemExit).
    with pytest.raises(SystemExit):
        cr.fit(model, X, Y, optimizer="sgd", epochs=1, batch_size=8, comm=StandInComm(8),
               progress=False)
    assert ("rank 0 of 8 failed: ValueError: comm has 8 ranks but batch_size=8 with 30 "
            "training rows gives a batch of 6 rows") in capsys.readouterr().err
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, before[k])
    # validation_fraction=0.5 leaves 15 training rows for 16 ranks
    with pytest.raises(ValueError, match="comm has 16 ranks but batch_size=None with 15"):
        dist.check_comm(StandInComm(16), 30, None, 0.5)
    assert dist.check_comm(StandInComm(15), 30, None, 0.5) is not None
    assert dist.check_comm(StandInComm(6), 30, 8) is not None  # batches of 8, 8, 8, 6


def test_a_failing_rank_aborts_through_the_communicator(capsys):
    X, Y, _ = make_data(n=30)

    def fail(epoch, logs, model):
        raise RuntimeError("boom")

    with pytest.raises(SystemExit):  # the stand-in's Abort
        cr.fit(cr.MLP([6, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=2,
               comm=StandInComm(1), callbacks=[fail], progress=False)
    assert "chainrule: rank 0 of 1 failed: RuntimeError: boom; aborting every rank" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_chainrule_train_distributed_trains_what_one_process_trains(tmp_path):
    flags = ["train", "--hidden", "16", "--epochs", "3", "--batch-size", "64", "--seed", "3"]
    env = dict(os.environ, PYTHONPATH=str(SRC), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "chainrule.cli",
                             *flags, "--distributed", "--save", "two.npz"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    rc, out, err = finish(proc, timeout=60)
    assert rc == 0, err
    one = subprocess.run([sys.executable, "-m", "chainrule.cli", *flags, "--save", "one.npz"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert one.returncode == 0, one.stderr
    # rank 0 alone prints: the same lines as one process, once (times aside)
    strip = [line.rsplit("  ", 1)[0] if line.startswith("epoch") else line
             for line in out.splitlines() if not line.startswith("trained")]
    assert strip == [line.rsplit("  ", 1)[0] if line.startswith("epoch") else line
                     for line in one.stdout.replace("one.npz", "two.npz").splitlines()
                     if not line.startswith("trained")]
    assert out.count("test accuracy") == 1 and out.count("saved the model") == 1
    two, ref = cr.io.load(tmp_path / "two.npz"), cr.io.load(tmp_path / "one.npz")
    for k, p in ref.params.items():
        np.testing.assert_allclose(two.params[k], p, rtol=0, atol=1e-12, err_msg=k)


def test_train_distributed_without_mpi4py_is_a_usage_error(monkeypatch, capsys):
    from chainrule.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    assert main(["train", "--distributed", "--epochs", "1"]) == 2
    assert "--distributed needs mpi4py" in capsys.readouterr().err
