"""The data of ``chainrule train``: reading the files, the held-out test rows, the task
(classification or regression) and the scaling of inputs and targets; writing the
held-out rows for ``--save-test``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import CommandError, UsageError

__all__ = ["load_train_files", "TrainData", "load_train_data", "choose_task",
           "write_test_rows", "AUTO_REGRESSION_MIN_DISTINCT"]

#: ``--task auto`` picks regression for float labels with more distinct values than this.
AUTO_REGRESSION_MIN_DISTINCT = 20


def source_name(args) -> str:
    """How messages and the data line name the training data."""
    openml = getattr(args, "openml", None)
    if args.data is None and openml is None:
        return "digits (homework split)"
    return args.data if openml is None else f"OpenML {openml!r}"


def _read_train_test(args, source):
    """``(X_train, X_test, y_train, y_test)`` with the labels as in the files."""
    from ..data import fetch_openml, holdout_split, load_file

    if getattr(args, "openml", None) is not None:
        if args.data is not None:
            raise UsageError("give either --data or --openml, not both")
        X, y = fetch_openml(args.openml)
    else:
        X, y = load_file(args.data, args.label_column, labels_path=args.labels)
    if args.test_data is not None:
        X_test, y_test = load_file(args.test_data, args.label_column,
                                   labels_path=getattr(args, "test_labels", None))
        if X_test.shape[1] != X.shape[1]:
            raise CommandError(f"{args.test_data} has {X_test.shape[1]} features but "
                               f"{source} has {X.shape[1]}")
        return X, X_test, y, y_test
    n = X.shape[0]
    n_test = int(round(args.test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise UsageError(f"--test-fraction {args.test_fraction} of the {n} rows of "
                         f"{source} leaves {n - n_test} training and {n_test} test "
                         f"rows; both need at least one (or give --test-data)")
    return holdout_split(X, y, args.test_fraction, rng=0)


def _encode_classes(y_train, y_test, source):
    from ..data import encode_labels

    classes, train_idx = encode_labels(y_train)
    if len(classes) < 2:
        raise CommandError(f"{source}: the training labels hold a single class "
                           f"{classes.tolist()}; a classifier needs at least two")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if unseen.size:
        raise CommandError(f"test labels {unseen[:5].tolist()} do not occur in the training "
                           f"rows, whose classes are {classes.tolist()} (to predict numbers "
                           f"rather than classes, give --task regression)")
    return classes, train_idx, np.searchsorted(classes, y_test)


def load_train_files(args):
    """``(X_train, X_test, y_train, y_test, classes)`` from --data or --openml (and
    --test-data, else a fixed hold-out of --test-fraction with seed 0).

    ``y_*`` are class indices 0..K-1 into ``classes`` (the sorted training labels).
    ``args`` is read, never changed.
    """
    source = source_name(args)
    X_train, X_test, y_train, y_test = _read_train_test(args, source)
    classes, train_idx, test_idx = _encode_classes(y_train, y_test, source)
    return X_train, X_test, train_idx, test_idx, classes


def choose_task(task, y, source) -> tuple[str, str]:
    """``(task, why)``: the task ``--task`` names, or for ``auto`` regression when the
    labels are floats with more than :data:`AUTO_REGRESSION_MIN_DISTINCT` distinct
    values, classification otherwise; ``why`` says so in words."""
    y = np.asarray(y)
    if task == "regression":
        if y.dtype.kind not in "iuf":
            raise CommandError(f"{source}: --task regression needs numeric labels, got "
                               f"labels such as {np.unique(y)[:3].tolist()}")
        return task, "--task regression"
    if task == "classification":
        return task, "--task classification"
    distinct = len(np.unique(y))
    if y.dtype.kind == "f" and distinct > AUTO_REGRESSION_MIN_DISTINCT:
        return "regression", (f"--task auto: the labels are {distinct} distinct decimal "
                              f"numbers; give --task classification to classify")
    return "classification", (f"--task auto: {distinct} distinct labels; give --task "
                              f"regression to predict numbers")


@dataclass
class TrainData:
    """The arrays as the model sees them (scaled, in --dtype) and where they came from."""

    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray  # one-hot, or standardised targets (N, 1)
    y_test: np.ndarray  # class indices, or raw targets
    classes: np.ndarray | None  # None for regression
    source: str
    task: str
    why: str
    raw_test: tuple  # (X_test, y_test) as in the files, for --save-test
    feature_names: list | None = None  # CSV header names of the features
    mean: np.ndarray | None = None  # input standardisation, None with --no-standardize
    scale: np.ndarray | None = None
    y_mean: float = 0.0  # target standardisation (regression)
    y_scale: float = 1.0

    @property
    def n_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)


def _feature_names(args):
    from ..data import csv_header, file_kind

    if args.data is None or file_kind(args.data) != "csv":
        return None
    return [c for c in csv_header(args.data) if c != args.label_column]


def _targets(args, source, y_train, y_test):
    """``(task, why, classes, Y_train, y_test, y_mean, y_scale)``."""
    task, why = choose_task(args.task, y_train, source)
    if task == "classification":
        classes, train_idx, test_idx = _encode_classes(y_train, y_test, source)
        return task, why, classes, np.eye(len(classes))[train_idx], test_idx, 0.0, 1.0
    y_train = np.asarray(y_train, dtype=np.float64)
    y_test = np.asarray(y_test, dtype=np.float64) if np.asarray(y_test).dtype.kind in "iuf" \
        else None
    if y_test is None:
        raise CommandError(f"{args.test_data}: --task regression needs numeric test labels")
    # The training rows' statistics, as for the inputs; a constant target keeps scale 1.
    y_mean, y_scale = float(y_train.mean()), float(y_train.std()) or 1.0
    return task, why, None, ((y_train - y_mean) / y_scale)[:, None], y_test, y_mean, y_scale


def load_train_data(args) -> TrainData:
    """The homework split or the files, standardised with the training rows' statistics."""
    from ..data import load_homework_digits, standardize

    source = source_name(args)
    if args.data is None and args.openml is None:
        X_train, X_test, Y_train, Y_test = load_homework_digits()
        y_train, y_test = Y_train.argmax(axis=1), Y_test.argmax(axis=1)
    else:
        X_train, X_test, y_train, y_test = _read_train_test(args, source)
    task, why, classes, Y, y_test_enc, y_mean, y_scale = _targets(args, source, y_train,
                                                                  y_test)
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    raw_test = (X_test, np.asarray(y_test))
    mean = scale = None
    if args.standardize:
        X_train, X_test, mean, scale = standardize(X_train, X_test, return_stats=True)
    dtype = np.dtype(args.dtype)
    return TrainData(X_train.astype(dtype), X_test.astype(dtype), Y.astype(dtype),
                     y_test_enc, classes, source, task, why, raw_test, _feature_names(args),
                     mean, scale, y_mean, y_scale)


def write_test_rows(path, data: TrainData, label_name) -> None:
    """The held-out test rows as the files gave them: a CSV (``.csv`` name; header: the
    feature names, then ``label_name``) or an ``.npz`` with arrays ``X`` and ``y``."""
    import csv
    import io

    from .._fileformat import atomic_write

    X, y = data.raw_test
    if not str(path).lower().endswith(".csv"):
        def write_npz(fh):
            np.savez(fh, X=X, y=y)
        atomic_write(path, write_npz)
        return
    names = data.feature_names or [f"x{j}" for j in range(X.shape[1])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*names, label_name])
    for row, label in zip(X.tolist(), y.tolist(), strict=True):
        # repr: the shortest text that reads back as the same float.
        writer.writerow([repr(v) for v in row] + [label])
    text = buffer.getvalue().encode("utf-8")
    atomic_write(path, lambda fh: fh.write(text))
