"""Hyperparameter search on a Dask cluster: GridSearchCV over chainrule's estimator with
joblib's dask backend, on a LocalCluster of two worker processes on loopback.

The cluster runs in a subprocess of its own session with a hard timeout, so a stuck
cluster fails the test and its processes are killed with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dask_search_worker import search  # noqa: E402


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_equals_the_local_search(tmp_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "dask.npz"
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(HERE / "dask_search_worker.py"), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"the Dask search hung; stderr: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    remote = np.load(out)
    # 4 settings x 3 folds ran as tasks, spread over both workers
    assert int(remote["n_tasks"]) >= 12 and int(remote["n_workers"]) == 2

    local, X, y = search()
    local.set_params(n_jobs=1).fit(X, y)  # joblib's default backend, in this process
    np.testing.assert_array_equal(remote["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(remote["split0_test_score"],
                                  local.cv_results_["split0_test_score"])
    assert json.loads(str(remote["best_params"])) == \
        json.loads(json.dumps(local.best_params_))
    for i, c in enumerate(local.best_estimator_.coefs_):
        np.testing.assert_array_equal(remote[f"coef{i}"], c)
    # the scores differ between settings, so equal arrays are not a coincidence
    assert len(set(local.cv_results_["mean_test_score"])) > 1


def test_a_dask_array_of_unknown_chunk_sizes_trains_and_predicts_as_numpy():
    # A boolean selection leaves the rows unknown (NaN) until computed; the thread choice
    # read them first and failed with "cannot convert float NaN to integer".
    import chainrule as cr

    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    y = (X[:, 0] > 0).astype(int)
    keep = da.from_array(X, chunks=50)[:, 1] > -10   # every row, in unknown chunks
    Xd, yd = da.from_array(X, chunks=50)[keep], da.from_array(y, chunks=50)[keep]
    assert np.isnan(Xd.shape[0])
    models = [cr.MLP([6, 8, 2], rng=0) for _ in range(2)]
    for model, (A, b) in zip(models, ((X, y), (Xd, yd)), strict=True):
        cr.fit(model, A, b, optimizer="adam", epochs=2, progress=False, rng=0)
    for k, p in models[0].params.items():
        np.testing.assert_array_equal(models[1].params[k], p)
    np.testing.assert_array_equal(models[1].predict_classes(Xd), models[0].predict_classes(X))
