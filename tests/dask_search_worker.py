"""Run by ``tests/test_dask.py`` in a subprocess: a GridSearchCV over
``chainrule.MLPClassifier`` on a Dask ``LocalCluster`` (two worker processes on
loopback, one thread each), through ``joblib.parallel_config(backend="dask")``.

``python dask_search_worker.py OUT.npz`` writes the search's ``cv_results_`` scores,
its best parameters and the refitted estimator's weights.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def search():
    """The search, the same one under either backend."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from chainrule import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-3, 1e-2],
            "alpha": [1e-4]}
    est = MLPClassifier(max_iter=15, random_state=0)
    return GridSearchCV(est, grid, cv=3, n_jobs=-1), X, y


def main(out):
    import joblib
    from dask.distributed import Client, LocalCluster, get_task_stream

    gs, X, y = search()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            gs.fit(X, y)
        # the fits ran as tasks on the cluster's workers
        workers = {task["worker"] for task in stream.data}
    np.savez(out, mean_test_score=gs.cv_results_["mean_test_score"],
             split0_test_score=gs.cv_results_["split0_test_score"],
             best_params=json.dumps(gs.best_params_),
             n_workers=len(workers), n_tasks=len(stream.data),
             **{f"coef{i}": c for i, c in enumerate(gs.best_estimator_.coefs_)})


if __name__ == "__main__":
    main(sys.argv[1])
