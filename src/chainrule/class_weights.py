"""The cross-entropy with a weight per class, as ``torch.nn.CrossEntropyLoss(weight=w)``:
the forward and backward passes :class:`~chainrule.losses.CategoricalCrossEntropy`
runs when it is given ``weight``; and the checks of the positive weights of
:class:`~chainrule.losses.BinaryCrossEntropy` (``pos_weight``).

For class indices ``y_n`` (one-hot rows are their indices) and log-probabilities
``lp = log_softmax(z)``, PyTorch's weighted mean is

    L = sum_n w[y_n] (-lp[n, y_n]) / sum_n w[y_n]

so a class of weight 2 counts each of its rows twice, and the mean stays a mean. With
``label_smoothing = eps`` PyTorch adds the smoothing term with the weights inside the
sum over the classes, over the same denominator::

    L = [(1 - eps) sum_n w[y_n] (-lp[n, y_n]) + eps / K sum_n sum_c w_c (-lp[n, c])]
        / sum_n w[y_n]

Row weights ``s_n`` (``sample_weight``, which PyTorch does not have) multiply each
row's two terms and its share of the denominator, as they do without class weights.
The gradient with respect to the logits, from ``d(-lp[n, c]) / dz[n, j] = p[n, j] -
[j = c]``::

    dL/dz_n = s_n [(1 - eps) w[y_n] (p_n - e_{y_n}) + eps / K (p_n sum(w) - w)]
              / sum_n s_n w[y_n]
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, row_sums, shape_str

__all__ = ["check_class_weight", "check_pos_weight", "weighted_positives", "is_one_hot_rows",
           "weighted_cross_entropy", "weighted_cross_entropy_grad"]


def check_class_weight(weight) -> np.ndarray:
    """``weight`` as a read-only 1-D float64 array of finite values >= 0, not all 0."""
    weight = np.array(as_float_array(weight, "weight", ndim=1), dtype=np.float64)
    if weight.size == 0 or weight.min() < 0 or not weight.max() > 0:
        raise ValueError(f"weight must hold one finite weight >= 0 per class, not all 0, "
                         f"got {weight.tolist()!r}")
    weight.flags.writeable = False
    return weight


def check_pos_weight(pos_weight) -> np.ndarray:
    """``pos_weight`` (a number, or one per output) as a read-only 1-D float64 array of
    finite values >= 0."""
    array = np.array(as_float_array(pos_weight, "pos_weight", ndim=None), dtype=np.float64)
    if array.ndim > 1 or array.size == 0 or array.min() < 0:
        raise ValueError(f"pos_weight must be a number >= 0 or one per output, got "
                         f"{array.tolist()!r}")
    array = array.reshape(-1)
    array.flags.writeable = False
    return array


def weighted_positives(pos_weight, targets):
    """``pos_weight * targets``, the weight of each entry's positive term, checking that
    there is one weight, or one per column of ``targets`` (N, K)."""
    if pos_weight.size not in (1, targets.shape[1]):
        raise ValueError(f"pos_weight must be one number or one per output ({targets.shape[1]}),"
                         f" got {pos_weight.size}")
    return pos_weight.astype(targets.dtype, copy=False) * targets


def is_one_hot_rows(labels) -> bool:
    """Whether every row of a 2-D array holds a single 1, the rest 0 (the class
    indices a weighted cross-entropy can take as rows; run once per ``fit``)."""
    return bool(np.all((labels == 0) | (labels == 1)) and np.all(row_sums(labels) == 1))


def weighted_cross_entropy(s, log_total, probs, indices, weight, eps: float,
                           sample_weight):
    """``(loss, cache)`` of the class-weighted cross-entropy.

    ``s`` (N, K) are the logits shifted by a per-row or per-batch constant,
    ``log_total`` (N,) the log of each row's sum of ``exp(s)`` (so ``lp = s -
    log_total``), ``probs`` (N, K) the softmax, ``indices`` (N,) the classes,
    ``weight`` (K,) the class weights, ``sample_weight`` (N,) or None.
    """
    k = s.shape[1]
    if weight.shape != (k,):
        raise ValueError(f"weight must have one entry per class: {k} for logits of "
                         f"{k} columns, got {shape_str(weight.shape)}")
    w = weight.astype(s.dtype, copy=False)
    rows = np.arange(s.shape[0])
    row_w = w[indices] if sample_weight is None else w[indices] * sample_weight
    total = float(row_w.sum())
    if total == 0:   # rows that all weigh 0: nothing to learn (torch: 0/0, NaN)
        return 0.0, (probs, indices, w, row_w, sample_weight, eps, 0.0)
    loss = (1 - eps) * float((log_total - s[rows, indices]) @ row_w)
    if eps:   # sum_c w_c (-lp[n, c]) = log_total sum(w) - s @ w, per row
        smooth = log_total * w.sum() - s @ w
        loss += eps / k * float(smooth.sum() if sample_weight is None
                                else smooth @ sample_weight)
    return loss / total, (probs, indices, w, row_w, sample_weight, eps, total)


def weighted_cross_entropy_grad(cache, d_out: float) -> np.ndarray:
    """``dL/dlogits`` (N, K) of :func:`weighted_cross_entropy`, times ``d_out``."""
    probs, indices, w, row_w, sample_weight, eps, total = cache
    if total == 0:   # (the label smoothing's terms too: a loss of 0 has no gradient)
        return np.zeros_like(probs)
    rows = np.arange(probs.shape[0])
    d = probs * ((1 - eps) * row_w)[:, None]
    d[rows, indices] -= (1 - eps) * row_w
    if eps:
        smooth = (probs * w.sum() - w) * (eps / probs.shape[1])
        d += smooth if sample_weight is None else smooth * sample_weight[:, None]
    d *= d.dtype.type(d_out / total)
    return d
