"""The data of ``chainrule train``: reading the files, the held-out test rows, the task
(classification or regression) and the scaling of inputs and targets; writing the
held-out rows for ``--save-test``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._common import CommandError, UsageError, brief_list, check_in_dtype_range

__all__ = ["load_train_files", "TrainData", "load_train_data", "choose_task",
           "write_test_rows", "AUTO_REGRESSION_MIN_DISTINCT", "is_npy", "validation_views",
           "SAVE_TEST_SUFFIXES", "check_save_test_name"]

#: ``--task auto`` picks regression for float labels with more distinct values than this.
AUTO_REGRESSION_MIN_DISTINCT = 20
#: ... and warns when it classifies as many integer labels with fewer training rows per
#: class on average than this (ages, prices, counts rather than class codes).
AUTO_FEW_ROWS_PER_CLASS = 50
#: ... and picks regression for them when most are unique, fewer training rows each than
#: this (prices, counts): classes seen once cannot be learned, and the hold-out's labels
#: would mostly be classes the training rows lack.
AUTO_UNIQUE_ROWS_PER_CLASS = 2

#: The names --save-test writes, each in the format its name says, so that
#: ``chainrule evaluate --data`` reads the file back (a table, gzipped or not, or .npz).
SAVE_TEST_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".npz")


def source_name(args) -> str:
    """How messages and the data line name the training data."""
    openml = getattr(args, "openml", None)
    if args.data is None and openml is None:
        return "digits (homework split)"
    return args.data if openml is None else f"OpenML {openml!r}"


def _read_train_test(args, source):
    """``(X_train, X_test, y_train, y_test, categories)`` with the labels as in the files
    and a CSV's columns of text as category indices (their categories: those of
    --data, :mod:`chainrule.categories`)."""
    from ..data import fetch_openml, holdout_split, load_file

    found: dict = {}
    missing = "nan" if getattr(args, "impute", False) else "raise"
    if getattr(args, "openml", None) is not None:
        if args.data is not None:
            raise UsageError("give either --data or --openml, not both")
        X, y = _fetch_openml(fetch_openml, args.openml)
    else:
        X, y, found = load_file(args.data, args.label_column, labels_path=args.labels,
                                feature_columns=_feature_names(args) if _ignored(args)
                                else None, categories="auto",
                                categorical=getattr(args, "categorical", None),
                                missing=missing)
    if args.test_data is not None:
        names = _test_columns(args, source)
        X_test, y_test, _ = load_file(args.test_data, args.label_column,
                                      labels_path=getattr(args, "test_labels", None),
                                      feature_columns=names, categories=found,
                                      missing=missing)
        if X_test.shape[1] != X.shape[1]:
            raise CommandError(f"{args.test_data} has {X_test.shape[1]} features but "
                               f"{source} has {X.shape[1]}")
        return X, X_test, y, y_test, found
    _n_test(args, X.shape[0], source)
    return (*holdout_split(X, y, held_out_fraction(args), rng=0), found)


def _one_hot_text_columns(X_train, X_test, names, found, test_source="the test rows"):
    """``(X_train, X_test, categories, input names)`` with each column of text one-hot,
    in the categories of the training rows (:func:`chainrule.categories.
    training_categories`; those of test rows only are warned of). The arrays given are
    left as they are (the held-out rows are written back from them)."""
    from ..categories import (
        count_unseen,
        one_hot_columns,
        one_hot_names,
        training_categories,
        warn_unseen,
    )

    X_train, X_test, kept = training_categories(X_train, X_test, names, found)
    empty = next((name for name, cats in kept.items() if not cats), None)
    if empty is not None:   # (every training cell missing: --impute)
        raise CommandError(f"column {empty!r} has no value in the {len(X_train)} training "
                           f"rows, so no category to learn: leave it out (--ignore-columns "
                           f"{empty})")
    try:
        inputs = one_hot_names(names, kept)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    warn_unseen(count_unseen(X_test, names, kept), X_test.shape[0], kept, test_source)
    return (one_hot_columns(X_train, names, kept), one_hot_columns(X_test, names, kept), kept,
            inputs)


def _fetch_openml(fetch, name):
    """``fetch(name)``, a network failure said as one (urllib's bare 'urlopen error')."""
    from urllib.error import URLError

    try:
        return fetch(name)
    except URLError as exc:
        raise CommandError(f"--openml {name}: could not reach OpenML ({exc.reason}); check "
                           f"the network connection, or download the data set and give "
                           f"it as --data") from None


def _test_columns(args, source):
    """The training CSV's feature names when --test-data is a CSV too: its columns are
    matched by name, in any order, as evaluate and predict match a model's (None:
    by position)."""
    from ..data import csv_header, file_kind

    names = _feature_names(args)
    if names is None or file_kind(args.test_data) != "csv":
        return None
    header = csv_header(args.test_data)
    missing = [c for c in names if c not in header]
    extra = [c for c in header if c not in names and c != args.label_column
             and c not in _ignored(args)]
    if missing or extra:
        raise CommandError(f"{args.test_data}: the test data must have the columns of "
                           f"{source}, in any order; missing {missing}, extra {extra}")
    return names


def held_out_fraction(args) -> float:
    """--test-fraction, 0.25 when not given (None: so that giving it with --test-data,
    where it does nothing, can be refused)."""
    return 0.25 if args.test_fraction is None else args.test_fraction


def _n_test(args, n, source) -> int:
    """The rows --test-fraction holds out (as :func:`chainrule.data.holdout_split`)."""
    n_test = int(round(held_out_fraction(args) * n))
    if n_test < 1 or n_test >= n:
        raise UsageError(f"--test-fraction {held_out_fraction(args)} of the {n} rows of "
                         f"{source} leaves {n - n_test} training and {n_test} test "
                         f"rows; both need at least one (or give --test-data)")
    return n_test


def is_npy(args) -> bool:
    """Whether --data is a .npy file, which train reads out of core."""
    from ._common import data_kind

    return args.data is not None and data_kind(args.data) == "npy"


def _npy_rows(path, labels_path):
    """``(X, y)``: the features as an :class:`~chainrule.sources.NpyFile` (not read)
    and its labels, read (one number a row)."""
    from ..sources import open_npy

    X, labels = open_npy(path), open_npy(labels_path)
    if len(X.shape) != 2:
        raise CommandError(f"{path}: a .npy file of features must be 2-D (one row per "
                           f"sample), got shape {X.shape}")
    if len(labels.shape) != 1 or len(labels) != len(X):
        raise CommandError(f"{labels_path}: expected one label per row of {path} (shape "
                           f"({len(X)},)), got shape {labels.shape}")
    return X, labels.read(0, len(labels))


def _read_npy_train_test(args, source):
    """:func:`_read_train_test` for a .npy --data: the test rows are a view of the file
    (the rows :func:`chainrule.data.holdout_split` would hold out) or --test-data."""
    from ..data import split_rows
    from ._common import data_kind

    X, y = _npy_rows(args.data, args.labels)
    if args.test_data is None:
        train, test = split_rows(len(X), _n_test(args, len(X), source), 0)
        return X.subset(train), X.subset(test), y[train], y[test]
    if data_kind(args.test_data) != "npy":
        raise UsageError(f"--test-data {args.test_data}: with a .npy --data, the test data "
                         f"must be a .npy file too (with --test-labels)")
    if args.test_labels is None:
        raise UsageError(f"--test-data {args.test_data} is a .npy file of features: give "
                         f"its labels with --test-labels PATH")
    X_test, y_test = _npy_rows(args.test_data, args.test_labels)
    if X_test.shape[1] != X.shape[1]:
        raise CommandError(f"{args.test_data} has {X_test.shape[1]} features but {source} "
                           f"has {X.shape[1]}")
    return X, X_test, y, y_test


def validation_views(X, Y, fraction, rng):
    """``(X_fit, Y_fit, (X_val, Y_val))``: a .npy file's training rows split as
    ``fit(validation_fraction=fraction, rng=rng)`` splits arrays, as two views."""
    from ..data import split_rows

    n = len(X)
    train, val = split_rows(n, int(np.ceil(fraction * n)), rng)
    return X.subset(train), Y[train], (X.subset(val), Y[val])


def _unseen_hint(numeric, test_data) -> str:
    """What to do about test labels the training rows lack."""
    if numeric:
        return "(to predict numbers rather than classes, give --task regression)"
    if test_data is not None:
        return (f"(a class the training rows lack cannot be predicted: drop its rows from "
                f"--test-data {test_data}, or add rows of it to the training data)")
    return "(a class with so few rows cannot be learned: drop its rows, or give --test-data)"


def _encode_classes(y_train, y_test, source, test_data=None):
    """``(classes, train indices, test indices)``; ``test_data``: the --test-data file
    the test labels come from (None: held out of ``source``)."""
    from ..data import encode_labels

    classes, train_idx = encode_labels(y_train)
    if len(classes) < 2:
        others = np.setdiff1d(np.unique(y_test), classes)
        where = (f"; the rows of {others[:5].tolist()} all fell into the test rows held out "
                 f"at random (--test-fraction): give a --test-data file of their own, or "
                 f"more rows of those classes" if others.size and test_data is None else "")
        numeric = np.asarray(y_train).dtype.kind in "iuf"
        hint = " (to predict numbers rather than classes, give --task regression)" \
            if numeric and not where else ""
        raise CommandError(f"{source}: the training labels hold a single class "
                           f"{classes.tolist()}; a classifier needs at least two{where}{hint}")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if unseen.size:
        numeric = np.asarray(y_test).dtype.kind in "iuf"
        raise CommandError(f"test labels {unseen[:5].tolist()} do not occur in the training "
                           f"rows, whose classes are {brief_list(classes.tolist(), 10, 'classes')} "
                           f"{_unseen_hint(numeric, test_data)}")
    return classes, train_idx, np.searchsorted(classes, y_test)


def load_train_files(args):
    """``(X_train, X_test, y_train, y_test, classes)`` from --data or --openml (and
    --test-data, else a fixed hold-out of --test-fraction with seed 0).

    ``y_*`` are class indices 0..K-1 into ``classes`` (the sorted training labels).
    ``args`` is read, never changed.
    """
    source = source_name(args)
    X_train, X_test, y_train, y_test, found = _read_train_test(args, source)
    if getattr(args, "impute", False):
        X_train, X_test, _ = impute_medians(X_train, X_test, _feature_names(args), found,
                                            source)
    if found:
        X_train, X_test = _one_hot_text_columns(X_train, X_test, _feature_names(args),
                                                found)[:2]
    classes, train_idx, test_idx = _encode_classes(y_train, y_test, source, args.test_data)
    return X_train, X_test, train_idx, test_idx, classes


def choose_task(task, y, source) -> tuple[str, str]:
    """``(task, why)``: the task ``--task`` names, or for ``auto`` regression when the
    labels are floats with more than :data:`AUTO_REGRESSION_MIN_DISTINCT` distinct
    values, or as many integers, nearly each its own (fewer than
    :data:`AUTO_UNIQUE_ROWS_PER_CLASS` rows each); classification otherwise (with a
    warning for many integer labels of few rows each); ``why`` says so in words."""
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
    if (y.dtype.kind in "iu" and distinct > AUTO_REGRESSION_MIN_DISTINCT
            and len(y) < AUTO_UNIQUE_ROWS_PER_CLASS * distinct):
        return "regression", (f"--task auto: the labels are {distinct} distinct integers, "
                              f"most of them on one row; give --task classification to "
                              f"classify")
    if (y.dtype.kind in "iu" and distinct > AUTO_REGRESSION_MIN_DISTINCT
            and len(y) < AUTO_FEW_ROWS_PER_CLASS * distinct):
        warnings.warn(f"{source}: --task auto classifies {distinct} distinct integer labels, "
                      f"{len(y) / distinct:.0f} training rows each on average; if they are "
                      f"quantities (ages, prices, counts), give --task regression",
                      UserWarning, stacklevel=2)
    return "classification", (f"--task auto: {distinct} distinct labels; give --task "
                              f"regression to predict numbers")


@dataclass
class TrainData:
    """The arrays as the model sees them (scaled, in --dtype) and where they came from.

    With a .npy --data, ``X_train`` and ``X_test`` are views of the files
    (:class:`chainrule.sources.NpyFile`, read a block at a time and standardised as
    they are read), ``Y_train`` holds class indices and ``raw_test`` is None.
    """

    X_train: Any  # an array, or an NpyFile view
    X_test: Any
    Y_train: np.ndarray  # one-hot (class indices for .npy), or standardised targets (N, 1)
    y_test: np.ndarray  # class indices, or raw targets
    classes: np.ndarray | None  # None for regression
    source: str
    task: str
    why: str
    raw_test: tuple | None  # (X_test, y_test) as in the files, for --save-test
    feature_names: list | None = None  # CSV header names of the features
    # A CSV's columns of text: their categories in the training rows (one-hot in X_*),
    # and in the whole --data (the codes raw_test holds)
    categories: dict = field(default_factory=dict)
    raw_categories: dict = field(default_factory=dict)
    mean: np.ndarray | None = None  # input standardisation, None with --no-standardize
    scale: np.ndarray | None = None
    y_mean: float = 0.0  # target standardisation (regression)
    y_scale: float = 1.0
    # --impute: each numeric column's training median, and the cells filled in
    medians: dict | None = None
    filled: tuple = (0, 0)   # (training cells, test cells), numbers and text

    @property
    def n_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)


def _feature_names(args):
    from ..data import csv_header, file_kind

    if args.data is None or file_kind(args.data) != "csv":
        return None
    names = [c for c in csv_header(args.data)
             if c != args.label_column and c not in _ignored(args)]
    if not names and _ignored(args):
        raise UsageError(f"--ignore-columns leaves no feature column of {args.data} to "
                         f"train on (its columns but the label are all ignored)")
    return names


def _ignored(args) -> list:
    """--ignore-columns (train only; evaluate and predict have no such flag)."""
    return getattr(args, "ignore_columns", None) or []


def _targets(args, source, y_train, y_test, one_hot=True):
    """``(task, why, classes, Y_train, y_test, y_mean, y_scale)``; ``Y_train`` holds
    class indices rather than one-hot rows unless ``one_hot``."""
    task, why = choose_task(args.task, y_train, source)
    if task == "classification":
        classes, train_idx, test_idx = _encode_classes(y_train, y_test, source,
                                                       args.test_data)
        Y = np.eye(len(classes))[train_idx] if one_hot else train_idx
        return task, why, classes, Y, test_idx, 0.0, 1.0
    y_train = np.asarray(y_train, dtype=np.float64)
    y_test = np.asarray(y_test, dtype=np.float64) if np.asarray(y_test).dtype.kind in "iuf" \
        else None
    if y_test is None:
        raise CommandError(f"{args.test_data}: --task regression needs numeric test labels")
    y_mean, y_scale = _target_scaling(y_train, getattr(args, "loss", "auto"))
    return task, why, None, ((y_train - y_mean) / y_scale)[:, None], y_test, y_mean, y_scale


#: The interquartile range of a normal distribution, in standard deviations.
NORMAL_IQR = 1.3489795003921634


def _target_scaling(y, loss: str) -> tuple[float, float]:
    """``(centre, scale)`` of the training targets: their mean and standard deviation
    (as for the inputs; a constant target keeps scale 1), or for the robust losses
    (``l1``, ``huber``) their median and interquartile range over that of a normal
    distribution. A few extreme targets inflate the mean and standard deviation until the
    others differ by less than the loss resolves (Huber's delta 1, Adam's steps): three
    prices of 1e9 among a thousand near 1e5 left them 0.005 units apart. The median and
    quartiles do not move with them, so the robust losses stay robust."""
    from ..data import mean_and_scale

    mean, scale = (float(v[0]) for v in mean_and_scale(y[:, None]))
    if loss not in ("l1", "huber"):
        return mean, scale
    low, median, high = np.percentile(y, [25, 50, 75])
    spread = (high - low) / NORMAL_IQR
    return float(median), float(spread) if spread > 0 else scale


def load_train_data(args) -> TrainData:
    """The homework split or the files, standardised with the training rows' statistics."""
    from ..data import load_homework_digits, standardize

    source = source_name(args)
    if is_npy(args):
        return _load_npy_train_data(args, source)
    if args.data is None and args.openml is None:
        X_train, X_test, Y_train, Y_test = load_homework_digits()
        y_train, y_test, found = Y_train.argmax(axis=1), Y_test.argmax(axis=1), {}
    else:
        X_train, X_test, y_train, y_test, found = _read_train_test(args, source)
    task, why, classes, Y, y_test_enc, y_mean, y_scale = _targets(args, source, y_train,
                                                                  y_test)
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    raw_test = (X_test, np.asarray(y_test))
    columns = _feature_names(args)
    names, kept, medians, filled = columns, {}, None, (0, 0)
    if getattr(args, "impute", False):
        filled = (int(np.isnan(X_train).sum()), int(np.isnan(X_test).sum()))
        X_train, X_test, medians = impute_medians(X_train, X_test, columns, found, source)
    if found:
        _check_save_test_of_text(args, found)
        X_train, X_test, kept, names = _one_hot_text_columns(
            X_train, X_test, columns, found, args.test_data or "the held-out test rows")
    if args.save or not args.standardize:  # then the model takes raw inputs
        check_in_dtype_range(X_train, args.dtype, names, source,
                             "the model --save writes takes raw inputs" if args.standardize
                             else "--no-standardize feeds them as they are")
    mean = scale = None
    if args.standardize:
        X_train, X_test, mean, scale = standardize(X_train, X_test, return_stats=True)
    dtype = np.dtype(args.dtype)
    return TrainData(X_train.astype(dtype), X_test.astype(dtype), Y.astype(dtype),
                     y_test_enc, classes, source, task, why, raw_test, columns, kept, found,
                     mean=mean, scale=scale, y_mean=y_mean, y_scale=y_scale,
                     medians=medians, filled=filled)


def impute_medians(X_train, X_test, names, categories, source):
    """``(X_train, X_test, medians)``: copies whose missing cells (NaN) of each numeric
    column hold the median of that column's training rows, in both arrays (no statistic
    of the test rows enters), as scikit-learn's ``SimpleImputer(strategy='median')``;
    the NaN of a column of ``categories`` stays, which one-hot is no category (all
    zeros). ``medians``: each numeric column's name -> its median, for predict and
    evaluate to fill new rows with."""
    from ..tables import fill_medians

    medians = {}
    for j, name in enumerate(names):
        if name in categories:
            continue
        known = X_train[:, j][~np.isnan(X_train[:, j])]
        if known.size == 0:
            raise CommandError(f"{source}: column {name!r} has no value in the "
                               f"{len(X_train)} training rows, so no median to fill its "
                               f"missing cells with: leave it out (--ignore-columns {name})")
        medians[name] = float(np.median(known))
    X_train, X_test = X_train.copy(), X_test.copy()
    fill_medians(X_train, names, medians)
    fill_medians(X_test, names, medians)
    return X_train, X_test, medians


def _check_save_test_of_text(args, found) -> None:
    """--save-test writes the held-out rows of --data as they were read; with columns of
    text, as a table only (exit 2, before training)."""
    if args.save_test and str(args.save_test).lower().endswith(".npz"):
        raise UsageError(f"--save-test {args.save_test}: the columns {sorted(found)} hold "
                         f"text, which an .npz file of numbers cannot; give a .csv name")
    if args.save_test and args.test_data is not None:
        raise UsageError(f"--save-test: the test rows are --test-data {args.test_data} "
                         f"itself, whose columns of text ({sorted(found)}) are not copied")


def _load_npy_train_data(args, source) -> TrainData:
    """:func:`load_train_data` for a .npy file, out of core: the rows stay in the file
    and are standardised as they are read, with the training rows' statistics taken in
    one pass; the labels (one number a row) are read, as class indices."""
    from ..sources import column_stats

    X_train, X_test, y_train, y_test = _read_npy_train_test(args, source)
    task, why, classes, Y, y_test_enc, y_mean, y_scale = _targets(
        args, source, y_train, y_test, one_hot=False)
    mean = scale = None
    if args.standardize:
        mean, scale = column_stats(X_train)
        bad = np.flatnonzero(~np.isfinite(mean + scale))
        if bad.size:  # squares beyond float64's range: refused before training, not after
            raise CommandError(f"{source}: column {int(bad[0])} is too large to standardise "
                               f"(its variance overflows float64); rescale it or pass "
                               f"--no-standardize")
        X_train, X_test = X_train.standardized(mean, scale), X_test.standardized(mean, scale)
    if task == "regression":
        Y = Y.astype(args.dtype)
    return TrainData(X_train, X_test, Y, y_test_enc, classes, source, task, why, None,
                     mean=mean, scale=scale, y_mean=y_mean, y_scale=y_scale)


def check_save_test_name(path) -> None:
    """Refuse a --save-test name none of :data:`SAVE_TEST_SUFFIXES` ends (exit 2): the
    file is written in the format its name says, and read back by that name."""
    if not str(path).lower().endswith(SAVE_TEST_SUFFIXES):
        raise UsageError(f"--save-test {path}: expected a name ending in "
                         f"{', '.join(SAVE_TEST_SUFFIXES)} (the format the rows are "
                         f"written in, which 'chainrule evaluate --data' reads by the name)")


def write_test_rows(path, data: TrainData, label_name) -> None:
    """The held-out test rows as the files gave them: a table (``.csv``, ``.tsv``,
    gzipped for a ``.gz`` name; header: the feature names, then ``label_name``) or an
    ``.npz`` with arrays ``X`` and ``y``."""
    import csv
    import gzip
    import io

    from .._fileformat import atomic_write
    from ..datafiles import csv_delimiter

    if data.raw_test is None:  # refused before training (train._check_train_sources)
        raise CommandError("--save-test: the test rows of a .npy file are not copied")
    check_save_test_name(path)
    X, y = data.raw_test
    if str(path).lower().endswith(".npz"):
        def write_npz(fh):
            np.savez(fh, X=X, y=y)
        atomic_write(path, write_npz)
        return
    names = data.feature_names or [f"x{j}" for j in range(X.shape[1])]
    # a column of text holds each cell's index among its categories: written as the text
    category_lists = [data.raw_categories.get(name) for name in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=csv_delimiter(str(path)), lineterminator="\n")
    writer.writerow([*names, label_name])
    for row, label in zip(X.tolist(), y.tolist(), strict=True):
        # repr: the shortest text that reads back as the same float.
        # (a missing cell, NaN with --impute: an empty cell)
        writer.writerow([repr(v) if cats is None else "" if v != v else cats[int(v)]
                         for v, cats in zip(row, category_lists, strict=True)] + [label])
    text = buffer.getvalue().encode("utf-8")
    if str(path).lower().endswith(".gz"):
        text = gzip.compress(text, mtime=0)  # mtime 0: the same rows, the same bytes
    atomic_write(path, lambda fh: fh.write(text))
