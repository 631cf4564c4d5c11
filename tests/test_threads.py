"""BLAS threads per fit / prediction (issue 10): one thread for small products, an
explicit ``threads=`` or ``--threads`` wins, thread variables in the environment are
respected, and the previous count comes back afterwards."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.lbfgs
import chainrule.train
from chainrule import _threads
from chainrule._threads import THREAD_ENV_VARS, choose_threads, largest_product_flops
from chainrule.cli import main

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads_now() -> int:
    """Threads of the BLAS pools loaded now, read independently through threadpoolctl."""
    return max(info["num_threads"] for info in threadpoolctl.threadpool_info()
               if info["user_api"] == "blas")


@pytest.fixture
def no_thread_env(monkeypatch):
    for name in THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def two_threads(no_thread_env, monkeypatch):
    """The BLAS set to two threads for the test (as on a 2-core machine, whatever CPU
    quota the test machine's container has), then put back."""
    monkeypatch.setattr(_threads, "_cpus", 2)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        yield


def _record_threads(model):
    """Wrap the first layer's forward to record the BLAS threads each call ran with."""
    seen = []
    layer = model.layers[0][0]
    forward = layer.forward

    def recording(*args):
        seen.append(blas_threads_now())
        return forward(*args)

    layer.forward = recording
    return seen


def test_largest_product_flops_counts_2mkn_of_the_widest_layer():
    # (32, 64) @ (64, 1024) = 2 * 32 * 64 * 1024; (32, 1024) @ (1024, 10) is smaller;
    # the 1-D biases are no matrix products
    params = cr.MLP([64, 1024, 10], rng=0).params
    assert largest_product_flops(32, params) == 2 * 32 * 64 * 1024


@pytest.mark.parametrize("threads, flops, current, environ, expected", [
    (3, 1.0, 2, {}, 3),                              # explicit: as given
    (1, 1e12, 2, {"OMP_NUM_THREADS": "2"}, 1),       # explicit beats the environment
    (None, 1e6, 2, {}, 1),                           # small products: one thread
    (None, 1e10, 2, {}, None),                       # large: the BLAS's own count
    (None, 1e6, 1, {}, None),                        # already one thread: nothing to do
    (None, 1e6, 2, {"OPENBLAS_NUM_THREADS": "2"}, None),  # the user chose
    (None, 1e6, 2, {"OMP_NUM_THREADS": "2"}, None),
])
def test_choose_threads(threads, flops, current, environ, expected):
    assert choose_threads(threads, flops, current, environ, cpus=64) == expected


@pytest.mark.parametrize("threads, flops, current, cpus, expected", [
    (None, 1e10, 8, 2, 2),     # a large product: no more threads than the CPUs allowed
    (None, 1e10, 2, 8, None),  # ... nor more than the BLAS has (never raised)
    (None, 1e10, 4, 4, None),
    (None, 1e6, 8, 2, 1),      # a small one: one thread, as before
    (6, 1e10, 8, 2, 6),        # an explicit count: as given
])
def test_the_automatic_choice_keeps_to_the_cpus_the_process_may_use(threads, flops, current,
                                                                    cpus, expected):
    assert choose_threads(threads, flops, current, {}, cpus=cpus) == expected


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "max 100000\n"}, None),                  # cgroup v2, no quota
    ({"cpu.max": "200000 100000\n"}, 2),                  # docker --cpus=2
    ({"cpu.max": "150000 100000\n"}, 1),                  # 1.5 CPUs: rounded down
    ({"cpu.max": "20000 100000\n"}, 1),                   # under one CPU: still one
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
    ({"cpu/cpu.cfs_quota_us": "400000\n"}, None),         # no period to read: no quota
    ({"cpu.max": "garbage\n"}, None),
    ({}, None),                                           # no cgroup files at all
])
def test_quota_cpus_reads_cgroup_v2_and_v1_quotas(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _threads.quota_cpus(str(tmp_path), own=str(tmp_path / "no-such-file")) == expected


@pytest.mark.parametrize("own, expected", [
    ("4:cpu,cpuacct:/job\n0::/\n", 3),       # v1: the cpu controller's group
    ("1:cpu:/\n0::/slice/job\n", 2),         # v2: the unified group
    ("1:cpu:/gone\n0::/gone\n", 8),          # groups not under root (a container's
                                              # view): root's own files
    ("1:cpu:/\n0::/slice/job/task\n", 2),    # a quota on a parent holds for its children
    ("1:cpu:/\nnot a cgroup line\n0::/slice/job\n", 2),   # a bad line is skipped
])
def test_quota_cpus_reads_the_processs_own_group_first(tmp_path, own, expected):
    files = {"cpu/job/cpu.cfs_quota_us": "300000", "cpu/job/cpu.cfs_period_us": "100000",
             "slice/job/cpu.max": "200000 100000", "cpu.max": "800000 100000"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    (tmp_path / "cgroup").write_text(own)
    assert _threads.quota_cpus(str(tmp_path), own=str(tmp_path / "cgroup")) == expected


def test_a_group_outside_the_cgroup_namespace_reads_the_roots_quota_only(tmp_path):
    root = tmp_path / "root"
    (root).mkdir()
    (root / "cpu.max").write_text("800000 100000\n")
    (tmp_path / "slice").mkdir()   # beside the root, where "/../slice" would lead
    (tmp_path / "slice" / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "cgroup").write_text("0::/../slice\n")
    assert _threads.quota_cpus(str(root), own=str(tmp_path / "cgroup")) == 8


def test_available_cpus_is_the_affinity_mask_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    for quota, expected in ((None, 4), (2, 2), (16, 4)):
        monkeypatch.setattr(_threads, "_cpus", None)
        monkeypatch.setattr(_threads, "quota_cpus", lambda q=quota: q)
        assert _threads.available_cpus() == expected


def test_fit_of_a_large_network_in_a_one_cpu_container_runs_on_one_thread(rng, two_threads,
                                                                          monkeypatch):
    monkeypatch.setattr(_threads, "_cpus", 1)   # e.g. docker run --cpus=1 on a 2-core host
    X, y = rng.normal(size=(100, 500)), rng.integers(0, 2, size=100)
    model = cr.MLP([500, 1000, 2], rng=0, dtype=np.float32)
    seen = _record_threads(model)
    cr.fit(model, X, y, optimizer="sgd", epochs=1, rng=0, progress=False)
    assert set(seen) == {1}
    assert blas_threads_now() == 2   # put back afterwards


def test_fit_of_a_small_network_runs_on_one_thread_and_restores_the_count(rng, two_threads):
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 3, size=64)
    model = cr.MLP([8, 16, 3], rng=0)
    seen = _record_threads(model)
    cr.fit(model, X, y, optimizer="sgd", epochs=2, batch_size=16, rng=0, progress=False)
    assert seen and set(seen) == {1}
    assert blas_threads_now() == 2


def test_fit_of_a_large_network_keeps_the_threads(rng, two_threads):
    # 2 * 100 * 500 * 1000 = 1e8 FLOPs in the first product: worth the second core
    X, y = rng.normal(size=(100, 500)), rng.integers(0, 2, size=100)
    model = cr.MLP([500, 1000, 2], rng=0, dtype=np.float32)
    seen = _record_threads(model)
    cr.fit(model, X, y, optimizer="sgd", epochs=1, rng=0, progress=False)
    assert set(seen) == {2}


def test_explicit_threads_override_the_choice(rng, two_threads):
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 2, size=20)
    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    cr.fit(model, X, y, optimizer="sgd", epochs=1, rng=0, progress=False, threads=2)
    assert set(seen) == {2}


def test_thread_variables_in_the_environment_are_respected(rng, two_threads, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 2, size=20)
    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    cr.fit(model, X, y, optimizer="sgd", epochs=1, rng=0, progress=False)
    model.predict(X)
    assert set(seen) == {2}


def test_prediction_of_a_small_network_runs_on_one_thread(rng, two_threads):
    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    model.predict_proba(rng.normal(size=(10, 4)))
    assert seen == [1]
    assert blas_threads_now() == 2


@pytest.mark.parametrize("threads, error", [(0, ValueError), (-2, ValueError),
                                            (1.5, TypeError), (True, TypeError)])
def test_bad_threads_are_rejected_by_name_before_training(rng, threads, error):
    model = cr.MLP([4, 3, 2], rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(error, match=r"threads must be None or a positive integer, got"):
        cr.fit(model, rng.normal(size=(8, 4)), rng.integers(0, 2, size=8), optimizer="sgd",
               epochs=1, progress=False, threads=threads)
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)


def test_cli_threads_flag_is_passed_to_fit(monkeypatch, capsys):
    calls = []
    real_fit = chainrule.train.fit

    def spy(*args, **kwargs):
        calls.append(kwargs.get("threads"))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(chainrule.train, "fit", spy)
    assert main(["train", "--hidden", "8", "--epochs", "1", "--quiet", "--threads", "1"]) == 0
    assert main(["train", "--hidden", "8", "--epochs", "1", "--quiet"]) == 0
    assert calls == [1, None]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--threads", "0"])
    assert exc.value.code == 2
    assert "argument --threads: expected a positive integer, got '0'" in capsys.readouterr().err


def test_a_homework_step_of_its_own_runs_on_one_thread(rng, two_threads):
    # LogisticRegression.step -> loss_and_grads: a public call chooses its threads too
    model = cr.LogisticRegression(4, 3)
    seen = _record_threads(model)
    model.step(rng.normal(size=(10, 4)), np.eye(3)[rng.integers(0, 3, size=10)])
    assert seen == [1]
    assert blas_threads_now() == 2


def test_evaluate_of_a_small_network_runs_on_one_thread(rng, two_threads):
    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    cr.evaluate(model, rng.normal(size=(10, 4)), rng.integers(0, 2, size=10))
    assert seen == [1]
    assert blas_threads_now() == 2


def test_lbfgs_of_a_small_network_runs_on_one_thread(rng, two_threads):
    from chainrule.lbfgs import minimize_lbfgs

    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    minimize_lbfgs(model, rng.normal(size=(10, 4)), np.eye(2)[rng.integers(0, 2, size=10)],
                   max_iter=3)
    assert seen and set(seen) == {1}
    assert blas_threads_now() == 2


class _FakePool:
    """A BLAS pool as threadpoolctl's per-library controller shows it."""

    def __init__(self, threads):
        self.threads, self.calls = threads, []

    @property
    def num_threads(self):
        return self.threads

    def set_num_threads(self, n):
        self.calls.append(n)
        self.threads = n


def test_blas_threads_sets_only_the_pools_that_differ_and_restores_each(monkeypatch,
                                                                          no_thread_env):
    from types import SimpleNamespace

    from chainrule import _threads

    one, two, unknown = _FakePool(1), _FakePool(2), _FakePool(None)
    monkeypatch.setattr(_threads, "blas_controller",
                        lambda: SimpleNamespace(lib_controllers=[one, two, unknown]))
    with _threads.blas_threads(None, 1e3):   # small: one thread everywhere
        assert (one.threads, two.threads) == (1, 1)
    assert (one.calls, two.calls, unknown.calls) == ([], [1, 2], [])
    with _threads.blas_threads(3, 1e3):      # explicit: three, then each pool's own count
        assert (one.threads, two.threads) == (3, 3)
    assert (one.threads, two.threads, unknown.threads) == (1, 2, None)
    with pytest.raises(RuntimeError), _threads.blas_threads(None, 1e3):
        raise RuntimeError("the counts are put back on an error too")
    assert (one.threads, two.threads) == (1, 2)


@pytest.mark.parametrize("call", ["step", "loss_and_grads", "forward", "predict", "evaluate",
                                  "fit", "lbfgs"])
def test_the_input_checks_of_a_call_run_on_its_threads(rng, two_threads, monkeypatch, call):
    """The finite scan of X is one BLAS product: outside the call's one-thread choice it
    ran on both threads, and OpenBLAS's second thread then spun against the step on a
    busy machine (a homework step 3-14x slower with the default threads)."""
    from chainrule import _validation, network

    seen = []
    real = _validation.all_finite
    for module in (_validation, network):  # network: a step's gradients, a first output
        monkeypatch.setattr(module, "all_finite",
                            lambda arr: seen.append(blas_threads_now()) or real(arr))
    X = rng.normal(size=(200, 64))      # above OpenBLAS's 10,000 entries for a threaded dot
    y = rng.integers(0, 3, size=200)
    model = cr.LogisticRegression(64, 3)
    {"step": lambda: model.step(X, np.eye(3)[y]),
     "loss_and_grads": lambda: model.loss_and_grads(X, y),
     "forward": lambda: model.forward(X),
     "predict": lambda: model.predict(X),
     "evaluate": lambda: cr.evaluate(model, X, y),
     "fit": lambda: cr.fit(model, X, y, optimizer="sgd", epochs=1, progress=False),
     "lbfgs": lambda: chainrule.lbfgs.minimize_lbfgs(model, X, np.eye(3)[y], max_iter=2)}[call]()
    assert seen and set(seen) == {1}, seen
    assert blas_threads_now() == 2


def test_rows_of_reads_the_rows_of_anything_without_raising():
    import scipy.sparse as sp

    from chainrule._threads import rows_of

    assert rows_of(np.ones((7, 3))) == 7
    assert rows_of([[1, 2], [3, 4], [5, 6]]) == 3
    assert rows_of(sp.csr_matrix(np.ones((5, 2)))) == 5
    assert rows_of(3.0) == 1 and rows_of("abc") == 1 and rows_of(None) == 1
    assert rows_of([[1, 2], [3]]) == 2 and rows_of([]) == 1   # the checks will say more
    assert rows_of(iter([1, 2])) == 1                 # no shape to read


def test_user_set_threads_follows_the_environment(monkeypatch):
    for name in _threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert not _threads.user_set_threads()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert _threads.user_set_threads()
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert not _threads.user_set_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "")   # empty: not a choice
    assert not _threads.user_set_threads()


@pytest.mark.parametrize("call", ["predict", "predict_proba", "predict_classes", "evaluate"])
def test_explicit_threads_override_the_choice_of_a_prediction(rng, two_threads, call):
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 2, size=10)
    model = cr.MLP([4, 3, 2], rng=0)
    seen = _record_threads(model)
    run = (lambda t: cr.evaluate(model, X, y, threads=t)) if call == "evaluate" else (
        lambda t: getattr(model, call)(X, threads=t))
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        run(2)            # raised to 2 for the call, though the process runs 1
        assert blas_threads_now() == 1
    run(None)             # the automatic choice: 1 for this small network
    assert seen == [2, 1] and blas_threads_now() == 2
    with pytest.raises(ValueError, match="threads must be None or a positive integer"):
        run(0)


def test_cli_evaluate_and_predict_threads_reach_networks_and_estimators(tmp_path, monkeypatch,
                                                                         capsys, rng):
    from chainrule import io
    from chainrule.estimator import MLPClassifier

    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    io.save(cr.MLP([4, 5, 3], rng=0), tmp_path / "net.npz")
    seen = []
    real = cr.models.Network.predict_proba

    def spy(self, X, *, threads=None):
        seen.append(threads)
        return real(self, X, threads=threads)

    monkeypatch.setattr(cr.models.Network, "predict_proba", spy)
    for command in ("evaluate", "predict"):
        assert main([command, str(tmp_path / "net.npz"), "--data", str(tmp_path / "d.npz"),
                     "--threads", "2"]) == 0
        assert main([command, str(tmp_path / "net.npz"), "--data", str(tmp_path / "d.npz")]) == 0
    assert seen == [2, None, 2, None]
    capsys.readouterr()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the ConvergenceWarning after 2 iterations
        io.save(MLPClassifier(max_iter=2).fit(X, y), tmp_path / "est.npz")
    # An estimator takes no threads= (as scikit-learn's): the BLAS is set around it.
    from chainrule._blas import blas_controller
    counts = []
    real_est = MLPClassifier.predict_proba

    def spy_est(self, X):
        counts.append(max(lib.num_threads for lib in blas_controller().lib_controllers))
        return real_est(self, X)

    monkeypatch.setattr(MLPClassifier, "predict_proba", spy_est)
    with threadpoolctl.threadpool_limits(1):
        for command in ("evaluate", "predict"):
            assert main([command, str(tmp_path / "est.npz"), "--data",
                         str(tmp_path / "d.npz"), "--threads", "2"]) == 0
        assert max(lib.num_threads for lib in blas_controller().lib_controllers) == 1
    assert counts == [2, 2]
