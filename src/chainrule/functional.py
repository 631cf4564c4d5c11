"""Stateless numerical building blocks: log-sum-exp, softmax, one-hot, accuracy.

The stable forms come from the homework's two identities. For any constant ``a``,

* ``log(sum(exp(x))) = a + log(sum(exp(x - a)))``           (Problem 3)
* ``softmax(x) = softmax(x - a)``                            (Problem 4)

Taking ``a = max(x)`` makes every exponent ``<= 0``, so ``exp`` can neither
overflow nor (for the largest entry) underflow to zero: the sum is at least 1 and
its logarithm is finite.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_positive_int

__all__ = ["logsumexp", "softmax", "log_softmax", "one_hot", "accuracy", "sigmoid", "log_sigmoid"]


#: Up to this many columns, :func:`shift_by_max` takes row maxima from a transposed copy.
_FEW_COLUMNS = 32


def shift_by_max(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x - max(x), max(x))`` along ``axis`` (max kept as a dimension of length 1)."""
    # The max is subtracted before anything else: z - logsumexp(z) written
    # literally rounds both terms to the same number when |z| ~ 1e300.
    if x.ndim == 2 and axis in (1, -1) and 1 < x.shape[1] <= _FEW_COLUMNS:
        # NumPy's reduction along a short contiguous row is ~4x slower than along
        # columns (53 us against 12 us for 1347 x 10, copy included): the rows' maxima
        # are taken as the column-wise maximum of the transposed copy. A maximum is
        # exact in any order, so the values are the same.
        m = np.ascontiguousarray(x.T).max(axis=0)[:, None]
    else:
        m = np.max(x, axis=axis, keepdims=True)
    return x - m, m


def logsumexp(x, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Compute ``log(sum(exp(x), axis))`` without overflow.

    Parameters
    ----------
    x : array_like of float
        Finite input values.
    axis : int, default=-1
        Axis to reduce.
    keepdims : bool, default=False
        Keep the reduced axis with length one.

    Returns
    -------
    ndarray
        ``max(x) + log(sum(exp(x - max(x))))`` along ``axis``.
    """
    x = as_float_array(x, "x", ndim=None)
    s, m = shift_by_max(x, axis)
    out = m + np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """Logarithm of the softmax, ``s - log(sum(exp(s)))`` with ``s = x - max(x)``.

    Exact and finite for finite inputs of any magnitude, unlike ``log(softmax(x))``
    which gives ``-inf`` once a probability underflows.
    """
    x = as_float_array(x, "x", ndim=None)
    s, _ = shift_by_max(x, axis)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def softmax(x, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, computed from the shifted input ``x - max(x)``."""
    x = as_float_array(x, "x", ndim=None)
    s, _ = shift_by_max(x, axis)
    e = np.exp(s)
    return e / np.sum(e, axis=axis, keepdims=True)


def row_classes(Y: np.ndarray) -> np.ndarray:
    """The class of each row: ``Y`` itself for (N,) class indices, else the column of
    each row's largest entry (a one-hot row's 1, the most probable class); a single
    column (N, 1) is a binary model's, class 1 where above 1/2."""
    if Y.ndim != 2:
        return Y
    return Y.argmax(axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5).astype(np.intp)


def one_hot(labels, num_classes: int | None = None, dtype=np.float64) -> np.ndarray:
    """Encode integer class labels ``0 .. num_classes-1`` as one-hot rows.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    num_classes : int, optional
        Number of classes ``K``; defaults to ``max(labels) + 1``.

    Returns
    -------
    ndarray, shape (N, K)
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise TypeError(f"labels must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    else:
        num_classes = check_positive_int(num_classes, "num_classes")
        if y.size and y.max() >= num_classes:
            raise ValueError(f"labels must be < num_classes={num_classes}, got {int(y.max())}")
    out = np.zeros((y.shape[0], num_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


def accuracy(y_true, y_pred) -> float:
    """Fraction of rows whose predicted class equals the true class.

    Either argument may be class indices of shape (N,) or one row per sample of
    shape (N, K) (one-hot labels, probabilities or logits), reduced by ``argmax``. A
    single column (N, 1) is a binary model's: 0/1 labels, or probabilities of class 1
    (class 1 where above 1/2).
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim == 2 and p.ndim == 2 and t.shape[1] != p.shape[1]:
        raise ValueError(f"y_true and y_pred must have the same number of columns (classes), "
                         f"got shapes {t.shape} and {p.shape}")
    t, p = row_classes(t), row_classes(p)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError("y_true and y_pred must be 1-D class indices or 2-D rows per sample, "
                         f"got shapes {np.shape(y_true)} and {np.shape(y_pred)}")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same number of rows, got "
                         f"{t.shape[0]} and {p.shape[0]}")
    if t.size == 0:
        raise ValueError("y_true must not be empty")
    return float(np.mean(t == p))


def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))`` element-wise, from ``e = exp(-|x|)`` so that ``exp`` never
    overflows: ``1 / (1 + e)`` for ``x >= 0``, ``e / (1 + e)`` below. Keeps the dtype."""
    x = np.asarray(x)
    if x.ndim == 0 or x.dtype.kind != "f":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    # Three arrays in all, the rest in place: each (N, H) temporary is a trip through
    # the allocator, and the page faults of big ones cost more than their arithmetic.
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    d = e + 1
    above = np.divide(1, d)
    below = np.divide(e, d, out=d)
    # np.where(x >= 0, above, below) as a blend of bits, above ^ ((above ^ below) & s)
    # with s all ones where x's sign bit is set: NumPy's where branches on each entry,
    # 3.6 ns an entry in float32 on a random sign pattern (1024 x 256: sigmoid 1247 us
    # that way, ~370 this way). The two halves agree at -0 (0.5) and at NaN (NaN).
    ints = np.dtype(f"i{x.itemsize}")
    s = np.right_shift(x.view(ints), 8 * x.itemsize - 1, out=e.view(ints))
    a, b = above.view(ints), below.view(ints)
    np.bitwise_xor(b, a, out=b)
    b &= s
    b ^= a
    return below


def log_sigmoid(x) -> np.ndarray:
    """``log(sigmoid(x)) = -log(1 + exp(-x))`` element-wise, exact for any ``x``
    (``min(x, 0) - log1p(exp(-|x|))``, never ``log(0)``)."""
    x = np.asarray(x)
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
