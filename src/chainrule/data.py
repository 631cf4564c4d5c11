"""Data sets, batching and splits: the homework's digits split, minibatches, the one row
split, standardisation and label encoding.

The readers for data files (CSV, NumPy ``.npz``, the IDX format of MNIST, OpenML)
live in :mod:`chainrule.datafiles` and are re-exported here (``data.load_csv``, ...).

scikit-learn is imported inside the functions that need it, so ``import chainrule``
stays NumPy-only.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_float_array,
    check_bool,
    check_in_interval,
    check_positive_int,
    check_rng,
    check_same_rows,
    shape_str,
)
from .datafiles import (
    csv_header,
    fetch_openml,
    file_kind,
    idx_labels_path,
    load_csv,
    load_file,
    load_idx,
    load_npz,
)
from .sources import NpyFile, open_npy, stream_minibatches

__all__ = ["load_homework_digits", "iterate_minibatches", "load_csv", "load_npz", "load_idx",
           "load_file", "fetch_openml", "standardize", "mean_and_scale", "encode_labels",
           "holdout_split", "split_rows", "file_kind", "idx_labels_path", "batch_indices",
           "csv_header", "open_npy", "NpyFile", "stream_minibatches"]


def load_homework_digits():
    """The homework's split of scikit-learn's 8x8 digits (1797 images, 10 classes).

    Features are the raw pixel values 0..16 as float64 (64 columns); labels are
    one-hot float64 rows from ``label_binarize``. The split is
    ``train_test_split(X, Y, test_size=0.25)`` right after ``np.random.seed(123)``,
    drawing from NumPy's global generator as the homework does, so the global
    generator is left in the state the homework's next line (``xavier_init``) saw.

    Returns
    -------
    X_train : ndarray, shape (1347, 64)
    X_test : ndarray, shape (450, 64)
    Y_train : ndarray, shape (1347, 10)
    Y_test : ndarray, shape (450, 10)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import label_binarize

    X, y = load_digits(return_X_y=True)
    Y = label_binarize(y, classes=np.arange(10)).astype(np.float64)
    np.random.seed(123)
    X_train, X_test, Y_train, Y_test = train_test_split(X.astype(np.float64), Y, test_size=0.25)
    return X_train, X_test, Y_train, Y_test


def iterate_minibatches(X, Y, batch_size=None, *, shuffle=True, rng=None, drop_last=False):
    """Return an iterator of ``(X_batch, Y_batch)`` pairs covering every row once.

    The arguments are checked when this function is called, not when the first
    batch is drawn; the permutation is drawn from ``rng`` at the first batch.

    Parameters
    ----------
    X, Y : ndarray, shape (N, ...)
    batch_size : int or None
        Rows per batch; ``None`` gives one full batch (in the original order).
    shuffle : bool, default=True
        Visit the rows in a fresh random permutation (no replacement).
    rng : None, int or numpy.random.Generator
        Source of the permutation.
    drop_last : bool, default=False
        Leave out the last batch when it is short (the rows it would hold are then
        not visited this pass), as PyTorch's ``DataLoader(drop_last=True)``.

    Returns
    -------
    iterator of (ndarray, ndarray)
    """
    X = as_float_array(X, "X", ndim=None)
    Y = as_float_array(Y, "Y", ndim=None)
    check_same_rows(X, Y, "X", "Y")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    shuffle = check_bool(shuffle, "shuffle")
    drop_last = check_bool(drop_last, "drop_last")
    random = check_rng(rng)
    return _minibatches(X, Y, batch_size, random if shuffle else None, drop_last)


def _minibatches(X, Y, batch_size, random, drop_last):
    # The permutation is drawn here, at the first batch, not when the iterator is made.
    order = random.permutation(X.shape[0]) if (batch_size is not None and random is not None) \
        else None
    for idx in batch_indices(X.shape[0], batch_size, order, drop_last):
        yield X[idx], Y[idx]


def batch_indices(n: int, batch_size=None, order=None, drop_last=False):
    """Return an iterator over the row indices of each batch of one pass over ``n`` rows.

    The one batching rule, shared by :func:`iterate_minibatches` and
    :func:`chainrule.train.fit` (which also indexes sample weights and labels with it).

    Parameters
    ----------
    n : int
        Number of rows.
    batch_size : int or None, default=None
        Rows per batch (the last batch may be smaller); ``None`` or a value above ``n``
        gives one batch of every row.
    order : ndarray of int, shape (n,), optional
        The order in which to visit the rows (a permutation drawn by the caller, once
        per epoch). ``None`` visits them in order.
    drop_last : bool, default=False
        Leave out the last batch when it is shorter than ``batch_size`` (and so every
        batch when ``batch_size > n``), as PyTorch's ``DataLoader(drop_last=True)``.

    Returns
    -------
    iterator of slice or ndarray
        Slices ``slice(start, stop)`` when ``order`` is None (indexing with them gives
        views, no copy), else the pieces ``order[start:stop]``.
    """
    n = check_positive_int(n, "n", minimum=0)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if order is not None:
        order = np.asarray(order)
        if order.shape != (n,) or order.dtype.kind not in "iu":
            raise ValueError(f"order must be {n} integer row indices (a permutation), got "
                             f"dtype {order.dtype} and shape {order.shape}")
        if n and (order.min() < 0 or order.max() >= n
                  or not (np.bincount(order, minlength=n) == 1).all()):
            raise ValueError(f"order must be a permutation of range({n}): every row once, "
                             f"got values in [{order.min()}, {order.max()}] with "
                             f"{n - len(np.unique(order))} repeats")
    drop_last = check_bool(drop_last, "drop_last")
    size = n if batch_size is None else min(batch_size, n)
    stop = n - n % batch_size if drop_last and batch_size is not None else n
    return _batches(stop, max(size, 1), order)


def _batches(stop, size, order):
    for start in range(0, stop, size):
        end = min(start + size, stop)  # a slice's own bounds, for those who read them
        yield slice(start, end) if order is None else order[start:end]


# -- preparing arrays ------------------------------------------------------------------

def standardize(X_train, *others, return_stats=False):
    """Scale columns to zero mean and unit variance using the training rows' statistics.

    Parameters
    ----------
    X_train : array_like, shape (N, D)
        Supplies the mean and standard deviation of each column.
    *others : array_like, shape (M, D)
        Further arrays (validation, test) scaled with ``X_train``'s statistics.
    return_stats : bool, default=False
        Also return ``mean`` and ``scale`` (both shape (D,)).

    Returns
    -------
    tuple
        ``(X_train_scaled, *others_scaled)``, one array per input (a tuple even for
        one input), followed by ``mean, scale`` when ``return_stats`` is True.
        ``X_scaled = (X - mean) / scale``. A constant column (standard deviation 0) gets
        ``scale = 1``, so it becomes all zeros in the training data instead of NaN.
    """
    return_stats = check_bool(return_stats, "return_stats")
    X_train = as_float_array(X_train, "X_train")
    mean, scale = mean_and_scale(X_train)
    out = [(X_train - mean) / scale]
    for i, X in enumerate(others):
        X = as_float_array(X, f"others[{i}]", dtype=X_train.dtype)
        if X.shape[1] != X_train.shape[1]:
            raise ValueError(f"others[{i}] has {X.shape[1]} columns but X_train has "
                             f"{X_train.shape[1]}")
        out.append((X - mean) / scale)
    if return_stats:
        out += [mean, scale]
    return tuple(out)


def mean_and_scale(X):
    """Each column's mean and standard deviation (1 for a constant column), of a finite
    2-D array ``X``, without overflow.

    The variance squares the deviations, which overflows for values beyond ~1e154
    (float64): those columns (the mean or the deviation came out infinite) are taken
    again divided by their largest magnitude, and the results multiplied back.

    Returns
    -------
    mean, scale : ndarray, shape (D,)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean, scale = X.mean(axis=0), X.std(axis=0)
    bad = ~(np.isfinite(mean) & np.isfinite(scale))
    if bad.any():
        peak = np.abs(X[:, bad]).max(axis=0)
        unit = X[:, bad] / peak
        mean[bad], scale[bad] = unit.mean(axis=0) * peak, unit.std(axis=0) * peak
    scale[scale == 0] = 1.0
    return mean, scale


def encode_labels(y):
    """Map labels of any kind to class indices ``0..K-1``.

    Returns
    -------
    classes : ndarray, shape (K,)
        The distinct labels, sorted; ``classes[indices]`` gives back ``y``.
    indices : ndarray of int64, shape (N,)
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels, got shape {shape_str(y.shape)}")
    if y.dtype == object:
        raise TypeError("y must be numbers or strings, got an object array")
    classes, indices = np.unique(y, return_inverse=True)
    return classes, indices.astype(np.int64).ravel()


def split_rows(n: int, n_holdout: int, rng=None, *, stratify=None, strict: bool = False):
    """Indices of a random split of ``n`` rows into a kept part and a held-out part.

    The one row split of the package: :func:`chainrule.train.fit`'s
    ``validation_fraction``, :func:`holdout_split` and the estimators' early-stopping
    split all come here.

    Parameters
    ----------
    n : int
        Number of rows.
    n_holdout : int
        Rows to hold out, from 1 to ``n - 1``.
    rng : None, int or numpy.random.Generator
        Source of the permutation.
    stratify : array_like, shape (n,), optional
        Class labels: hold out each class in proportion (scikit-learn's
        ``train_test_split(stratify=...)``, seeded from ``rng``). When some class has
        too few rows to be split, the split falls back to a plain one (or, with
        ``strict=True``, scikit-learn's ``ValueError`` is raised, as its
        ``MLPClassifier(early_stopping=True)`` raises it).
    strict : bool, default=False

    Returns
    -------
    kept, held_out : ndarray of int, sorted
        Without ``stratify``, ``held_out`` is the first ``n_holdout`` entries of
        ``rng.permutation(n)`` and ``kept`` the rest.
    """
    n = check_positive_int(n, "n")
    n_holdout = check_positive_int(n_holdout, "n_holdout")
    if n_holdout >= n:
        raise ValueError(f"n_holdout={n_holdout} of {n} rows leaves none to keep")
    random = check_rng(rng)
    if stratify is not None:
        from sklearn.model_selection import train_test_split

        seed = int(random.integers(np.iinfo(np.int32).max)) if hasattr(random, "integers") \
            else int(random.randint(np.iinfo(np.int32).max))
        try:
            kept, held = train_test_split(np.arange(n), test_size=n_holdout,
                                          random_state=seed, stratify=stratify)
        except ValueError:  # a class with too few rows to split: plain split instead
            if strict:
                raise
            kept, held = train_test_split(np.arange(n), test_size=n_holdout,
                                          random_state=seed)
        return np.sort(kept), np.sort(held)
    order = random.permutation(n)
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def holdout_split(X, y, test_fraction=0.25, *, rng=0):
    """Split rows at random into a training part and a held-out test part.

    The held-out part is ``round(test_fraction * N)`` rows chosen by :func:`split_rows`
    with ``rng`` (an int seed by default, so the same file always gives the same
    split); both parts keep the file's row order.

    Returns
    -------
    X_train, X_test, y_train, y_test
    """
    X = np.asarray(X)
    y = np.asarray(y)
    for arr, arg in ((X, "X"), (y, "y")):
        if arr.ndim == 0:  # None, a number: there are no rows to split
            raise TypeError(f"{arg} must be an array with one row per sample, got "
                            f"{type(arr.item()).__name__} {arr.item()!r}")
    check_same_rows(X, y, "X", "y")
    test_fraction = check_in_interval(test_fraction, "test_fraction", 0.0, 1.0,
                                      low_closed=False)
    n = X.shape[0]
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"test_fraction={test_fraction} of {n} rows leaves "
                         f"{n - n_test} training and {n_test} test rows; both need at "
                         f"least one")
    train, test = split_rows(n, n_test, rng)
    return X[train], X[test], y[train], y[test]
