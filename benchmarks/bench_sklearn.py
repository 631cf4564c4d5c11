"""chainrule's MLPClassifier / MLPRegressor against scikit-learn's, as a switching user sees them.

Run from the repository root::

    python benchmarks/bench_sklearn.py                 # 7 paired repeats, under a minute
    python benchmarks/bench_sklearn.py --repeats 11
    python benchmarks/bench_sklearn.py --out results.md

Issue 8's performance promise, measured: on digits, breast_cancer and diabetes
(standardised), with every estimator default and one BLAS thread,

(a) ``fit`` seconds per epoch with the default solver (Adam): the wall time of ``fit``
    divided by the ``n_iter_`` epochs it ran (the two libraries may stop after different
    numbers of epochs; per epoch they are comparable);
(b) ``fit`` wall time with ``solver='lbfgs'`` to the same ``tol`` (the default 1e-4, used
    by both as L-BFGS-B's ``gtol``); ``max_iter`` is raised to ``--lbfgs-max-iter``
    (default 1000) so that both stop at ``tol`` rather than at scikit-learn's default
    200 iterations (L-BFGS on diabetes needs about 400). The iteration counts are
    printed, and a run that still stopped at ``max_iter`` is marked;
(c) the test-set score (accuracy, or R^2 for diabetes) of both fitted estimators.

Each data set is split 75/25 (stratified for the classifiers, ``random_state=0``); X is
standardised with the training rows' mean and deviation, and so is diabetes' target
(on the raw target, around 150, Adam's 200 default epochs end far from a fit and the
scores say nothing). Both estimators are built with the same keyword arguments
(``random_state=0``, plus ``solver`` and ``max_iter`` for L-BFGS): nothing else, so each
library's defaults apply.

Timing: one untimed warm-up fit per estimator, then ``--repeats`` pairs of fits, the
order alternating (chainrule first in even pairs, scikit-learn first in odd ones) so
neither side always runs on a cache the other warmed. Reported: the median over the
repeats for each library and the median of the paired ratios chainrule/sklearn (below
1: chainrule is faster). ``threadpoolctl.threadpool_limits(1)`` holds for the whole run
(BLAS and OpenMP), so no worker thread is left spinning between the two libraries.
Nothing here is asserted: speed is reported, never tested.

This script uses scikit-learn's parameter names on chainrule's estimators (issue 8);
the estimator of chainrule 0.1.0 (``epochs``, ``optimizer``, ...) refuses them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np

DATASETS = ("digits", "breast_cancer", "diabetes")


# --- data ---------------------------------------------------------------------------

def load(name, seed=0):
    """(X_train, X_test, y_train, y_test, is_classification), standardised with the
    training rows' statistics (diabetes' target too)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    from sklearn.model_selection import train_test_split

    loader = {"digits": load_digits, "breast_cancer": load_breast_cancer,
              "diabetes": load_diabetes}[name]
    X, y = loader(return_X_y=True)
    classification = name != "diabetes"
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y if classification else None)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # digits has constant (all-zero) pixels
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    if not classification:
        y_mean, y_std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std
    return X_train, X_test, y_train, y_test, classification


# --- timing -------------------------------------------------------------------------

def estimator_classes(library, classification):
    if library == "chainrule":
        from chainrule import MLPClassifier, MLPRegressor
    else:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    return MLPClassifier if classification else MLPRegressor


def timed_fit(cls, params, X, y):
    """A fresh estimator fitted once: (seconds, fitted estimator)."""
    from sklearn.exceptions import ConvergenceWarning

    est = cls(**params)
    with warnings.catch_warnings():
        # an Adam run that uses all 200 default epochs warns; that is reported, not shown
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    return seconds, est


def compare(name, solver, params, repeats, pause):
    """Paired, repeated fits of both libraries on one data set and solver."""
    X_train, X_test, y_train, y_test, classification = load(name)
    classes = {lib: estimator_classes(lib, classification) for lib in ("chainrule", "sklearn")}
    for lib in classes:  # warm-up: imports, first-call allocations
        timed_fit(classes[lib], params, X_train, y_train)
    seconds = {lib: [] for lib in classes}
    per_epoch = {lib: [] for lib in classes}
    fitted = {}
    for r in range(repeats):
        order = ("chainrule", "sklearn") if r % 2 == 0 else ("sklearn", "chainrule")
        for lib in order:
            time.sleep(pause)
            s, est = timed_fit(classes[lib], params, X_train, y_train)
            seconds[lib].append(s)
            per_epoch[lib].append(s / est.n_iter_)
            fitted[lib] = est
    return {
        "dataset": name, "solver": solver, "rows": len(X_train), "features": X_train.shape[1],
        "seconds": {lib: statistics.median(v) for lib, v in seconds.items()},
        "per_epoch": {lib: statistics.median(v) for lib, v in per_epoch.items()},
        "ratio_seconds": statistics.median(
            c / s for c, s in zip(seconds["chainrule"], seconds["sklearn"], strict=True)),
        "ratio_per_epoch": statistics.median(
            c / s for c, s in zip(per_epoch["chainrule"], per_epoch["sklearn"], strict=True)),
        "n_iter": {lib: est.n_iter_ for lib, est in fitted.items()},
        "hit_max_iter": {lib: est.n_iter_ >= est.max_iter for lib, est in fitted.items()},
        "loss": {lib: float(est.loss_) for lib, est in fitted.items()},
        "score": {lib: est.score(X_test, y_test) for lib, est in fitted.items()},
        "metric": "accuracy" if classification else "R^2",
    }


# --- environment report -------------------------------------------------------------

def environment_report():
    """Versions, and the BLAS / OpenMP libraries loaded, as threadpoolctl sees them."""
    import scipy
    import sklearn
    import threadpoolctl

    import chainrule

    lines = [f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {platform.machine()}, {os.cpu_count()} logical cores, "
             f"{_cpu_model()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, scipy "
             f"{scipy.__version__}, scikit-learn {sklearn.__version__}, chainrule "
             f"{chainrule.__version__} (from {os.path.dirname(chainrule.__file__)})",
             f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
             f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}"]
    for info in threadpoolctl.threadpool_info():
        where = os.path.basename(os.path.dirname(info.get("filepath", "")))
        if info.get("user_api") == "blas":
            lines.append(f"- BLAS {info.get('internal_api')} {info.get('version')} "
                         f"({info.get('prefix')}, in {where}): kernel "
                         f"{info.get('architecture', '?')}, {info.get('num_threads')} "
                         f"thread(s), threading {info.get('threading_layer', '?')}")
        else:
            lines.append(f"- {info.get('user_api')} {info.get('internal_api')} "
                         f"{info.get('version') or ''} ({info.get('prefix')}, in {where}): "
                         f"{info.get('num_threads')} thread(s)")
    return lines


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --- tables -------------------------------------------------------------------------

def _n_iter(res, lib):
    return f"{res['n_iter'][lib]}{' (max_iter)' if res['hit_max_iter'][lib] else ''}"


def adam_table(results):
    rows = ["| data set | rows x features | chainrule s/epoch | sklearn s/epoch | "
            "chainrule/sklearn | epochs chainrule | epochs sklearn | test chainrule | "
            "test sklearn |", "|" + "---|" * 9]
    for res in results:
        c, s = res["per_epoch"]["chainrule"], res["per_epoch"]["sklearn"]
        rows.append(f"| {res['dataset']} | {res['rows']}x{res['features']} | {c:.5f} | "
                    f"{s:.5f} | {res['ratio_per_epoch']:.2f} | {_n_iter(res, 'chainrule')} | "
                    f"{_n_iter(res, 'sklearn')} | {res['score']['chainrule']:.4f} | "
                    f"{res['score']['sklearn']:.4f} ({res['metric']}) |")
    return rows


def lbfgs_table(results):
    rows = ["| data set | rows x features | chainrule s | sklearn s | chainrule/sklearn | "
            "iterations chainrule | iterations sklearn | final loss chainrule | "
            "final loss sklearn | test chainrule | test sklearn |", "|" + "---|" * 11]
    for res in results:
        c, s = res["seconds"]["chainrule"], res["seconds"]["sklearn"]
        rows.append(f"| {res['dataset']} | {res['rows']}x{res['features']} | {c:.4f} | "
                    f"{s:.4f} | {res['ratio_seconds']:.2f} | {_n_iter(res, 'chainrule')} | "
                    f"{_n_iter(res, 'sklearn')} | {res['loss']['chainrule']:.3g} | "
                    f"{res['loss']['sklearn']:.3g} | {res['score']['chainrule']:.4f} | "
                    f"{res['score']['sklearn']:.4f} ({res['metric']}) |")
    return rows


# --- main ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="paired timed fits per data set and solver (default 7, >= 5)")
    parser.add_argument("--lbfgs-max-iter", type=int, default=1000,
                        help="max_iter of the L-BFGS fits, high enough to stop at tol "
                             "(default 1000)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--pause", type=float, default=0.05,
                        help="seconds of sleep before each timed fit (default 0.05)")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error(f"--repeats must be >= 5 (the median of at least 5), got {args.repeats}")

    # threadpool_limits acts on the libraries loaded when it is called: load them all
    # first (SciPy's own OpenBLAS comes with scipy.optimize, scikit-learn's OpenMP with
    # its compiled modules), then hold one thread for every BLAS and OpenMP pool for the
    # whole run.
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    import sklearn.neural_network  # noqa: F401
    import threadpoolctl

    import chainrule  # noqa: F401

    _limits = threadpoolctl.threadpool_limits(limits=1)  # noqa: F841

    adam, lbfgs = [], []
    for name in args.datasets:
        adam.append(compare(name, "adam", dict(random_state=0), args.repeats, args.pause))
        lbfgs.append(compare(name, "lbfgs", dict(solver="lbfgs", max_iter=args.lbfgs_max_iter,
                                                 random_state=0), args.repeats, args.pause))
    # After the fits, so that every library they loaded (SciPy's OpenBLAS too) is listed.
    env_lines = environment_report()
    extra = [info for info in threadpoolctl.threadpool_info() if info.get("num_threads") != 1]
    if extra:
        env_lines.append("- WARNING: not every pool ran on one thread (loaded after the "
                         "limit was set?): " + ", ".join(
                             f"{i.get('internal_api')} in {i.get('filepath')}" for i in extra))

    report = env_lines + [
        "", f"Median of {args.repeats} paired fits per cell, order alternating; one BLAS "
            "thread; estimator defaults, random_state=0. Ratios chainrule/sklearn: below 1, "
            "chainrule is faster.", "",
        "(a) fit time per epoch, default solver (adam); (c) test scores of those fits", "",
        *adam_table(adam), "",
        f"(b) L-BFGS fit wall time to tol=1e-4 (max_iter={args.lbfgs_max_iter}); "
        "(c) test scores of those fits", "",
        *lbfgs_table(lbfgs)]
    text = "\n".join(report) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
