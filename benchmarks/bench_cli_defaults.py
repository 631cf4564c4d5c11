"""Evidence for the defaults of ``chainrule train``: the command with no flags but
``--data``/``--test-data``/``--label-column`` against scikit-learn's MLPClassifier /
MLPRegressor with their defaults, on the same splits of several public tables.

For each data set and each of five split seeds (``train_test_split(test_size=0.25,
random_state=seed)``, stratified for classification) the training and test rows are
written as CSV files, and

* chainrule: ``python -m chainrule.cli train --data train.csv --test-data test.csv
  --label-column target --quiet`` runs in a fresh process; its wall time includes the
  start-up, the CSV parsing and the evaluation;
* scikit-learn: ``make_pipeline(StandardScaler(), MLPClassifier(random_state=seed))``
  (``MLPRegressor`` for regression), the same input standardisation chainrule applies,
  timed around ``fit`` alone, in this process, and as the same job as the command: a
  fresh Python process that imports scikit-learn, reads the two CSV files, fits and
  scores (the issue's measurement: "the command's start-up included").

Both run with one BLAS thread (threadpoolctl in this process, ``OMP_NUM_THREADS=1``
and friends for the command). The table gives the means over the five seeds: accuracy
or R² on the test rows, and seconds.

Usage: ``python benchmarks/bench_cli_defaults.py [--seeds 5] [--only iris,wine]``
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "BLIS_NUM_THREADS")}


def datasets():
    """``(name, X, y, task)`` for each table: scikit-learn's bundled sets (offline) and
    two synthetic ones of a few thousand rows, plus a larger synthetic one."""
    from sklearn import datasets as d

    yield "iris", *d.load_iris(return_X_y=True), "classification"
    yield "wine", *d.load_wine(return_X_y=True), "classification"
    yield "breast_cancer", *d.load_breast_cancer(return_X_y=True), "classification"
    yield "digits", *d.load_digits(return_X_y=True), "classification"
    yield "diabetes", *d.load_diabetes(return_X_y=True), "regression"
    X, y = d.make_classification(3000, 20, n_informative=10, n_classes=3, random_state=0)
    yield "make_classification 3000x20, 3 classes", X, y, "classification"
    X, y = d.make_regression(3000, 20, n_informative=10, noise=10.0, random_state=0)
    yield "make_regression 3000x20", X, y, "regression"
    X, y = d.make_classification(20000, 30, n_informative=15, random_state=1)
    yield "make_classification 20000x30, 2 classes", X, y, "classification"


def write_csv(path, X, y, task):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"x{j}" for j in range(X.shape[1])] + ["target"])
        for row, label in zip(X.tolist(), y.tolist(), strict=True):
            # Regression targets written as decimals: --task auto then picks regression.
            target = repr(float(label)) if task == "regression" else str(int(label))
            writer.writerow([repr(v) for v in row] + [target])


def run_chainrule(folder, src):
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": src}
    argv = [sys.executable, "-m", "chainrule.cli", "train", "--data",
            os.path.join(folder, "train.csv"), "--test-data", os.path.join(folder, "test.csv"),
            "--label-column", "target", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    out = proc.stdout
    match = re.search(r"test accuracy = ([\d.]+)", out) or re.search(r"R² = (-?[\d.]+)", out)
    fit_s = float(re.search(r"trained \d+ epochs in ([\d.]+)s", out).group(1))
    epochs = int(re.search(r"trained (\d+) epochs", out).group(1))
    return float(match.group(1)), wall, fit_s, epochs


def run_sklearn(X_train, y_train, X_test, y_test, task, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = MLPClassifier if task == "classification" else MLPRegressor
    pipe = make_pipeline(StandardScaler(), est(random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        pipe.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
    return pipe.score(X_test, y_test), seconds


_SKLEARN_SCRIPT = """
import sys, warnings
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
folder, task, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
train = np.loadtxt(folder + "/train.csv", delimiter=",", skiprows=1)
test = np.loadtxt(folder + "/test.csv", delimiter=",", skiprows=1)
est = MLPClassifier if task == "classification" else MLPRegressor
pipe = make_pipeline(StandardScaler(), est(random_state=seed))
warnings.simplefilter("ignore", ConvergenceWarning)
pipe.fit(train[:, :-1], train[:, -1])
print(pipe.score(test[:, :-1], test[:, -1]))
"""


def run_sklearn_script(folder, task, seed):
    """Wall time of scikit-learn doing the command's job in a fresh process."""
    env = {**os.environ, **ONE_THREAD}
    argv = [sys.executable, "-c", _SKLEARN_SCRIPT, folder, task, str(seed)]
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0


def main(argv=None):
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default=None, help="comma-separated data set names")
    args = parser.parse_args(argv)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")
    print("| data set | rows | task | scikit-learn score | chainrule score | scikit-learn "
          "fit (s) | scikit-learn script, whole process (s) | chainrule train, whole "
          "command (s) | chainrule fit (s) | epochs |")
    print("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    with threadpool_limits(1), tempfile.TemporaryDirectory() as folder:
        for name, X, y, task in datasets():
            if args.only and name.split()[0] not in args.only.split(","):
                continue
            sk, ours, scripts = [], [], []
            for seed in range(args.seeds):
                strat = y if task == "classification" else None
                parts = train_test_split(X, y, test_size=0.25, random_state=seed,
                                         stratify=strat)
                X_train, X_test, y_train, y_test = parts
                write_csv(os.path.join(folder, "train.csv"), X_train, y_train, task)
                write_csv(os.path.join(folder, "test.csv"), X_test, y_test, task)
                sk.append(run_sklearn(X_train, y_train, X_test, y_test, task, seed))
                ours.append(run_chainrule(folder, src))
                scripts.append(run_sklearn_script(folder, task, seed))
            sk_a, ours_a = np.array(sk), np.array(ours)
            metric = "accuracy" if task == "classification" else "R²"
            print(f"| {name} | {len(X)} | {task} | {metric} {sk_a[:, 0].mean():.4f} | "
                  f"{ours_a[:, 0].mean():.4f} | {sk_a[:, 1].mean():.2f} | "
                  f"{np.mean(scripts):.2f} | "
                  f"{ours_a[:, 1].mean():.2f} | {ours_a[:, 2].mean():.2f} | "
                  f"{ours_a[:, 3].mean():.0f} |", flush=True)


if __name__ == "__main__":
    main()
