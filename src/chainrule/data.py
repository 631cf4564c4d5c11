"""Data sets and batching: the homework's digits split and a minibatch iterator.

scikit-learn is imported inside the functions that need it, so ``import chainrule``
stays NumPy-only.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_positive_int, check_rng, check_same_rows

__all__ = ["load_homework_digits", "iterate_minibatches"]


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


def iterate_minibatches(X, Y, batch_size=None, *, shuffle=True, rng=None):
    """Yield ``(X_batch, Y_batch)`` pairs covering every row exactly once.

    Parameters
    ----------
    X, Y : ndarray, shape (N, ...)
    batch_size : int or None
        Rows per batch; ``None`` gives one full batch (in the original order).
    shuffle : bool, default=True
        Visit the rows in a fresh random permutation (no replacement).
    rng : None, int or numpy.random.Generator
        Source of the permutation.
    """
    X = as_float_array(X, "X", ndim=None)
    Y = as_float_array(Y, "Y", ndim=None)
    check_same_rows(X, Y, "X", "Y")
    n = X.shape[0]
    if batch_size is None:
        yield X, Y
        return
    batch_size = check_positive_int(batch_size, "batch_size")
    order = check_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], Y[idx]
