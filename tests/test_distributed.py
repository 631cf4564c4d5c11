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
from conftest import StandInComm

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKER = HERE / "mpi_fit_worker.py"
sys.path.insert(0, str(HERE))
from mpi_fit_worker import (  # noqa: E402
    batchnorm_model,
    batchnorm_settings,
    class_weighted_loss,
    files_settings,
    make_data,
    open_files,
    run_settings,
)


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
@pytest.mark.parametrize("mode", ["class_weights", "dropout"])
def test_two_ranks_train_class_weights_and_dropout_as_one_process(tmp_path, mode):
    # Dropout: each rank draws the whole batch's masks and keeps its shard's rows, so the
    # ranks' masks are one process's (from the same seed they were the same rows twice).
    rc, out, err = finish(start_job(mode, tmp_path), timeout=60)
    assert rc == 0, err
    X, Y, w = make_data()
    model = cr.MLP([6, 16, 3], rng=0, dropout=0.3 if mode == "dropout" else 0.0,
                   loss=class_weighted_loss() if mode == "class_weights" else "cross_entropy")
    cr.fit(model, X, Y, sample_weight=w, **run_settings())
    rank0 = np.load(tmp_path / "rank0.npz")
    for k, p in model.params.items():
        np.testing.assert_allclose(rank0[k], p, rtol=0, atol=1e-12, err_msg=k)


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
    unclipped = cr.MLP([6, 16, 3], rng=0)  # the clip bites: without it the run differs
    cr.fit(unclipped, *open_files(tmp_path), **dict(files_settings(), optimizer=cr.Adam(lr=1e-2)))
    assert max(np.abs(unclipped.params[k] - p).max() for k, p in model.params.items()) > 1e-3


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
def test_an_unshuffled_run_with_a_short_last_batch_trains_what_one_process_trains(tmp_path):
    rc, out, err = finish(start_job("unshuffled", tmp_path), timeout=60)
    assert rc == 0, err
    X, Y, w = make_data()   # 203 rows in batches of 32
    model = cr.MLP([6, 16, 3], rng=0)
    cr.fit(model, X, Y, sample_weight=w, **dict(run_settings(), shuffle=False))
    rank0 = np.load(tmp_path / "rank0.npz")
    for k, p in model.params.items():
        np.testing.assert_allclose(rank0[k], p, rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("mode, status, message", [
    ("exit", 1, "rank 1 of 2 failed: SystemExit: 3; aborting every rank"),
    ("interrupt", 130, "rank 1 of 2 was interrupted (Ctrl-C) after 1 complete epoch; ")])
def test_a_rank_that_leaves_ends_every_rank_instead_of_hanging(tmp_path, mode, status,
                                                                message):
    rc, out, err = finish(start_job(mode, tmp_path), timeout=60)
    assert rc == status, err
    assert message in err
    assert not (tmp_path / "rank0.npz").exists()
    if mode == "interrupt":   # the checkpoint of epoch 0, written by rank 0, resumes
        assert "ck.npz holds them, to resume from" in err
        model = cr.MLP([6, 16, 3], rng=0)
        X, Y, w = make_data()
        history = cr.fit(model, X, Y, sample_weight=w, checkpoint=str(tmp_path / "ck.npz"),
                         resume=True, **run_settings())
        assert history.epochs == run_settings()["epochs"]


@pytest.mark.slow
@pytest.mark.parametrize("mode, field, shown", [
    ("disagree", "X", "rank 0 has [203, 6], rank 1 has [200, 6]"),
    # a model built without a common seed used to train apart in silence
    ("init_differ", "initial_params.W1", "build the model from the same seed"),
    ("lr_differ", "run.optimizer.hyperparameters.lr", "rank 0 has 0.01, rank 1 has 0.02"),
    ("seed_differ", "rng", "give fit the same rng seed on every rank"),
    ("labels_differ", "data", "give every rank the same X, Y and sample_weight"),
    ("weights_differ", "data", "give every rank the same X, Y and sample_weight")])
def test_ranks_given_different_runs_refuse_to_start(tmp_path, mode, field, shown):
    rc, out, err = finish(start_job(mode, tmp_path), timeout=60)
    assert rc != 0
    # every rank raises the same error before the first step, none hangs
    assert err.count(f"RanksDisagreeError: the ranks were given different runs: {field} "
                     f"differs: rank 0 has ") == 2, err[-3000:]
    assert shown in err
    assert not (tmp_path / "rank0.npz").exists()


@pytest.mark.slow
def test_batchnorm_buffers_are_the_same_on_every_rank(tmp_path):
    rc, out, err = finish(start_job("batchnorm", tmp_path), timeout=60)
    assert rc == 0, err
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    model = batchnorm_model()
    for k in [*model.params, *model.buffers]:
        # a model saved on any rank is the same model
        np.testing.assert_array_equal(ranks[1][k], ranks[0][k], err_msg=k)
    X, Y, _ = make_data()
    cr.fit(model, X, Y, **batchnorm_settings())  # one process
    # The input's normalisation sees the same rows on one process and on two: the
    # shards' running means, weighted by their rows (6 and 5 in the last batch), make
    # the batch's.
    np.testing.assert_allclose(ranks[0]["running_mean1"], model.buffers["running_mean1"],
                               rtol=0, atol=1e-12)
    # Each rank normalises over its own shard (as DDP without SyncBatchNorm): not the
    # run of one process (docs/scaling.md).
    assert np.abs(ranks[0]["W4"] - model.params["W4"]).max() > 1e-6


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


@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weighted_shares_recombine_the_whole_batch_loss_and_gradient(one_hot):
    # A class-weighted cross-entropy divides by sum w[y] s over its rows: shares of the
    # rows (0.076 apart in the parameters on two ranks) would not add up to it.
    from chainrule.losses import CategoricalCrossEntropy

    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(9, 3)), np.array([0, 0, 0, 0, 1, 2, 2, 1, 2])
    labels = np.eye(3)[y] if one_hot else y
    w, weight = rng.uniform(0.5, 2.0, size=9), np.array([1.0, 5.0, 20.0])
    whole = CategoricalCrossEntropy(weight=weight)
    expected = whole.forward(logits, labels, w)
    d_expected = whole.backward()[0]
    loss, d = 0.0, np.zeros_like(logits)
    for rank in range(2):
        averager = dist.GradientAverager(StandInComm(2, rank), {"W": np.zeros(1)})
        averager.class_weight = weight
        local, share, rows = dist.shard_rows(averager, np.arange(9), w, labels)
        assert rows == pytest.approx(w.sum())   # the tally's weight stays the rows'
        part = CategoricalCrossEntropy(weight=weight)
        loss += share * part.forward(logits[local], labels[local], w[local])
        d[local] = share * part.backward()[0]
    assert loss == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(d, d_expected, rtol=1e-13, atol=1e-16)


def test_dropout_shards_are_set_for_a_steps_forward_only():
    # A callback's own training-mode forward (Monte Carlo dropout) between steps, and
    # any forward after fit, draw their own masks.
    X, Y, _ = make_data(n=40)
    model = cr.MLP([6, 8, 3], rng=0, dropout=0.5)
    seen = []

    def forward_again(epoch, logs, m):
        seen.append(m.forward(X[:7], training=True).shape)
        seen.extend(layer.batch_shard for layer, _ in m.layers if isinstance(layer, cr.Dropout))

    cr.fit(model, X, Y, optimizer="sgd", epochs=2, batch_size=20, progress=False,
           comm=StandInComm(2, 1), callbacks=[forward_again])
    assert seen == [(7, 3), None, (7, 3), None]
    assert all(layer.batch_shard is None for layer, _ in model.layers
               if isinstance(layer, cr.Dropout))


def test_a_dropout_shard_keeps_its_rows_of_the_whole_batchs_masks():
    whole = cr.Dropout(0.5, rng=0).forward(np.ones((6, 4)))
    shard = cr.Dropout(0.5, rng=0)
    shard.training, shard.batch_shard = True, (2, 6)
    np.testing.assert_array_equal(shard.forward(np.ones((3, 4))), whole[2:5])
    channels = cr.Dropout2d(0.5, rng=1)
    channels.training, channels.batch_shard = True, (4, 5)
    expected = cr.Dropout2d(0.5, rng=1).forward(np.ones((5, 3, 2, 2)))[4:]
    np.testing.assert_array_equal(channels.forward(np.ones((1, 3, 2, 2))), expected)


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


def assert_job_aborted(capsys, model, X, Y, *, batch_size, ranks, message):
    """``fit`` over ``ranks`` stand-in ranks aborts the job (SystemExit) with ``message``
    on stderr, the parameters unchanged."""
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(SystemExit):
        cr.fit(model, X, Y, optimizer="sgd", epochs=1, batch_size=batch_size,
               comm=StandInComm(ranks), progress=False)
    assert message in capsys.readouterr().err
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, before[k])


def test_comm_is_checked_before_anything_changes(capsys):
    X, Y, _ = make_data(n=30)
    model = cr.MLP([6, 4, 3], rng=0)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(TypeError, match="comm must be an MPI communicator.*got int"):
        cr.fit(model, X, Y, optimizer="sgd", epochs=1, comm=3, progress=False)
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, before[k])
    # 30 rows in batches of 8: the last batch has 6 rows, fewer than 8 ranks. Ranks
    # with other data might not fail, so this rank aborts the job (here: SystemExit).
    assert_job_aborted(capsys, model, X, Y, batch_size=8, ranks=8,
                       message="rank 0 of 8 failed: ValueError: comm has 8 ranks but "
                               "batch_size=8 with 30 training rows gives a batch of 6 rows")
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
               comm=StandInComm(2), callbacks=[fail], progress=False)
    assert "chainrule: rank 0 of 2 failed: RuntimeError: boom; aborting every rank" in \
        capsys.readouterr().err
    # One process has no rank to wait for it: the error is raised, for a try to catch.
    with pytest.raises(RuntimeError, match="boom"):
        cr.fit(cr.MLP([6, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=2,
               comm=StandInComm(1), callbacks=[fail], progress=False)
    with pytest.raises(ValueError, match="Y must"):
        cr.fit(cr.MLP([6, 4, 3], rng=0), X, Y[:20], optimizer="sgd", epochs=2,
               comm=StandInComm(1), progress=False)
    assert "aborting" not in capsys.readouterr().err


# -- what the ranks compare before the first step ------------------------------------------

class PlanComm(StandInComm):
    """Rank ``rank`` of ``size``: records what it sends in its first ``allgather`` (the
    run plan) and, given ``others``, hears that plan from every other rank."""

    def __init__(self, size=1, rank=0, others=None):
        super().__init__(size, rank)
        self.sent, self.others = [], others

    def allgather(self, value):
        self.sent.append(value)
        if self.others is not None and len(self.sent) == 1:
            return [value if r == self.rank else self.others for r in range(self.size)]
        return [value] * self.size


def small_run(change=None):
    """``(model, X, Y, fit arguments)`` of a small run, with one ``change`` to it."""
    X, Y, w = make_data(n=30)
    X_val, Y_val, _ = make_data(n=12, seed=1)
    model = batchnorm_model() if change in ("batchnorm", "buffers") else \
        cr.MLP([6, 4, 3], rng=1 if change == "model_seed" else 0)
    if change == "buffers":  # a model loaded from another file, say
        model.buffers["running_mean1"][0] = 1.0
    optimizer = cr.SGD(lr=0.2 if change == "lr" else 0.1, momentum=0.9)
    if change == "optimizer_state":  # this optimizer has taken a step before
        cr.fit(cr.MLP([6, 4, 3], rng=0), X, Y, optimizer=optimizer, epochs=1, progress=False)
    if change == "labels":
        Y = np.roll(Y, 1, axis=0)
    if change == "weights":
        w = w[::-1].copy()
    if change == "validation_data":
        X_val = X_val + 1.0
    return model, X, Y, dict(
        optimizer=optimizer, epochs=1, batch_size=10, rng=1 if change == "rng" else 0,
        sample_weight=w, validation_data=(X_val, Y_val), l2=1e-3 if change == "l2" else 0.0,
        early_stopping=5 if change == "early_stopping" else None, progress=False)


def plan_of(model, X, Y, comm=None, **kwargs):
    """The plan ``fit`` sends to the other ranks (it trains on a stand-in of them)."""
    comm = comm or PlanComm()
    cr.fit(model, X, Y, comm=comm, **kwargs)
    return comm.sent[0]


@pytest.mark.parametrize("change, field", [
    ("model_seed", "initial_params.W1"),
    ("buffers", "initial_buffers.running_mean1"),
    ("lr", "run.optimizer.hyperparameters.lr"),
    ("optimizer_state", "optimizer_state"),
    ("rng", "rng"),
    ("labels", "data"),
    ("weights", "data"),
    ("validation_data", "run.validation.data"),
    ("l2", "run.l2"),
    ("early_stopping", "run.early_stopping")])
def test_ranks_refuse_to_start_runs_that_differ(change, field):
    base = small_run("batchnorm" if change == "buffers" else None)
    theirs = plan_of(*base[:3], **base[3])
    model, X, Y, kwargs = small_run(change)
    before = {k: p.copy() for k, p in {**model.params, **model.buffers}.items()}
    comm = PlanComm(2, rank=1, others=theirs)  # rank 0 runs the base
    with pytest.raises(dist.RanksDisagreeError, match=rf"different runs: {field} differs: "
                       r"rank 0 has .*, rank 1 has ") as info:
        cr.fit(model, X, Y, comm=comm, **kwargs)
    assert (info.value.field, info.value.rank) == (field, 1)
    for k, p in {**model.params, **model.buffers}.items():  # refused before the first step
        np.testing.assert_array_equal(p, before[k], err_msg=k)


def test_ranks_given_the_same_run_start():
    theirs = plan_of(*small_run()[:3], **small_run()[3])
    model, X, Y, kwargs = small_run()
    comm = PlanComm(2, rank=1, others=theirs)
    cr.fit(model, X, Y, comm=comm, **kwargs)
    assert comm.sent[0] == theirs
    assert set(theirs) >= {"run", "data", "initial_params", "optimizer_state", "rng"}


def test_ranks_resuming_compare_no_starting_state(tmp_path):
    ck = tmp_path / "ck.npz"
    model, X, Y, kwargs = small_run()
    cr.fit(model, X, Y, checkpoint=ck, **kwargs)
    kwargs.update(epochs=2, checkpoint=ck, resume=True)
    # rank 1 of 2 does not write the checkpoint: both runs resume from the same one
    theirs = plan_of(*small_run()[:3], comm=PlanComm(2, rank=1), **kwargs)
    assert theirs["resumes"] and "initial_params" not in theirs and "rng" not in theirs
    # another start and seed: the checkpoint brings the parameters and the generator
    model, X, Y, _ = small_run("model_seed")
    cr.fit(model, X, Y, comm=PlanComm(2, rank=1, others=theirs), **dict(kwargs, rng=7))
    # a checkpoint rank 1 cannot see (no shared file system): said as such
    model, X, Y, _ = small_run()
    with pytest.raises(dist.RanksDisagreeError, match="the checkpoint file exists for some "
                       "ranks only: give every rank the same checkpoint path"):
        cr.fit(model, X, Y, comm=PlanComm(2, rank=1, others=theirs),
               **dict(kwargs, checkpoint=tmp_path / "elsewhere.npz"))


def test_files_are_compared_by_content_not_by_path(tmp_path):
    from chainrule.data import open_npy

    X, Y, _ = make_data(n=60)
    changed = X.copy()
    changed[-1, 0] += 1.0  # in the last block of 20 rows
    for name, data in (("a", X), ("copy", X), ("changed", changed)):
        np.save(tmp_path / f"X_{name}.npy", data)
    np.save(tmp_path / "y.npy", Y.argmax(axis=1))
    plans = {name: plan_of(cr.MLP([6, 4, 3], rng=0),
                           open_npy(tmp_path / f"X_{name}.npy", block_bytes=6 * 8 * 20),
                           open_npy(tmp_path / "y.npy"), optimizer="sgd", epochs=1,
                           batch_size=10, rng=0, progress=False)
             for name in ("a", "copy", "changed")}
    # a copy of the file on another node (other path, other time) is the same data
    assert plans["copy"] == plans["a"]
    assert plans["changed"]["data"] != plans["a"]["data"]


def test_the_buffers_are_averaged_by_each_rank_s_share_of_the_rows():
    buffers = {"running_mean1": np.array([1.0, 2.0]), "count1": np.array([3])}
    averager = dist.GradientAverager(StandInComm(2), {"W": np.zeros(2)}, buffers)
    assert averager.nbytes == (2 + 2 + 1) * 8  # gradients, float buffers, loss
    # rank 0 of 2 takes 3 of 5 rows, but only 3 of the batch's weight 13
    local, share, _ = dist.shard_rows(averager, np.arange(5), np.array([1, 1, 1, 5, 5.0]))
    assert (averager.rows_share, share) == (3 / 5, 3 / 13)
    averager.average({"W": np.ones(2)}, 1.0, share)
    # the stand-in adds two equal contributions: 2 * 3/5 * b
    np.testing.assert_allclose(buffers["running_mean1"], [1.2, 2.4], rtol=1e-15)
    assert buffers["count1"] == 3  # an integer buffer is left alone


def test_every_rank_needs_the_rows_a_batch_normalisation_needs(capsys):
    X, Y, _ = make_data(n=30)
    model = batchnorm_model()
    # batches of 3 rows give one rank a single row; one process would train on them
    assert_job_aborted(capsys, model, X, Y, batch_size=3, ranks=2,
                       message="comm has 2 ranks, so batch_size=3 with 30 training rows gives "
                               "some rank only 1 of a batch's rows, but layers[0] (BatchNorm1d")


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


@pytest.mark.slow
@pytest.mark.parametrize("flag, value", [("--save", "/nonexistent/m.npz"),
                                         ("--save-test", "/nonexistent/t.csv")])
def test_chainrule_train_distributed_ends_every_rank_when_rank_0_refuses(tmp_path, flag,
                                                                         value):
    # Only rank 0 checks the files it would write; its refusal must end rank 1 too.
    env = dict(os.environ, PYTHONPATH=str(SRC), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "chainrule.cli",
                             "train", "--hidden", "8", "--epochs", "2", "--distributed",
                             flag, value], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    rc, out, err = finish(proc, timeout=60)
    assert rc == 1, err
    assert f"chainrule train: error: {flag} {value}: cannot" in err
    assert "rank 0 of 2 stops with status 1; aborting every rank" in err


def test_train_distributed_without_mpi4py_is_a_usage_error(monkeypatch, capsys):
    from chainrule.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    assert main(["train", "--distributed", "--epochs", "1"]) == 2
    assert "--distributed needs mpi4py" in capsys.readouterr().err


def test_ctrl_c_on_one_of_several_ranks_aborts_once_with_130(capsys):
    from chainrule.distributed import ranks_fail_together

    aborts = []

    class Recording(StandInComm):
        def Abort(self, code=1):  # noqa: N802
            aborts.append(code)   # returns, as a stand-in's may

    @ranks_fail_together()
    def interrupted(comm=None):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted(comm=Recording(2, rank=1))
    assert aborts == [130]
    assert capsys.readouterr().err.count("aborting every rank") == 1
    with pytest.raises(KeyboardInterrupt):   # one rank: nothing to abort
        interrupted(comm=Recording(1))
    assert aborts == [130]


def test_only_rank_0_says_fits_warnings():
    # Every rank trains the same run and would print the same TrainingWarning.
    import warnings

    X = np.random.default_rng(0).normal(size=(40, 4)) * 1e3   # unscaled: a warning
    Y = np.eye(2)[np.arange(40) % 2]
    said = []
    for rank in (0, 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cr.fit(cr.MLP([4, 8, 2], rng=0), X, Y, optimizer=cr.SGD(lr=1e-6), epochs=2,
                   progress=False, comm=StandInComm(2, rank))
        said.append([w for w in caught if issubclass(w.category, cr.TrainingWarning)])
    assert said[0] and not said[1]
