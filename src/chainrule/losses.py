"""Losses: the last node of the graph, ``forward(outputs, targets) -> float``.

``backward(d_out=1.0)`` returns ``(d_outputs, None)``: the ``None`` stands for the
gradient with respect to the targets, which no model needs (the homework's contract).

This module holds the classification losses (:class:`CategoricalCrossEntropy`,
:class:`BinaryCrossEntropy`, :class:`MultiMarginLoss`), the registry ``LOSSES`` that
model files and the command line name losses by, and :func:`l2_penalty`. It re-exports
the base class (:mod:`chainrule.loss_base`) and the regression losses
(:mod:`chainrule.regression_losses`), so every loss is ``chainrule.losses.<Name>``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import (
    as_float_array,
    check_class_indices,
    check_in_interval,
    check_positive_float,
    check_probability_rows,
    is_class_indices,
    row_sums,
    zeros_for,
)
from .class_weights import (
    check_class_weight,
    check_pos_weight,
    is_one_hot_rows,
    weighted_cross_entropy,
    weighted_cross_entropy_grad,
    weighted_positives,
)
from .functional import shift_by_max
from .loss_base import Loss, weight_share
from .regression_losses import HalfSquaredError, HuberLoss, L1Loss, MeanSquaredError, PoissonLoss

__all__ = ["Loss", "CategoricalCrossEntropy", "MeanSquaredError", "BinaryCrossEntropy",
           "PoissonLoss", "HalfSquaredError", "L1Loss", "HuberLoss", "MultiMarginLoss",
           "LOSSES", "get_loss", "is_multiclass", "l2_penalty"]


def _shifted_exp(logits):
    """``(s, exp(s), row sums of exp(s))`` with ``s = logits - c``: one ``exp`` serves
    the loss and the probabilities.

    Any constant ``c`` per row will do (Problems 3 and 4). The first try is one
    constant for the whole batch, its largest logit: a scalar subtraction, where each
    row's own maximum costs a reduction along every short row and a broadcast
    subtraction (the cross-entropy's forward and backward on the homework's 1347 x 10
    logits: 72 us that way, 48 this way). No exponent is positive, so nothing overflows. It is
    kept when every row's sum of exponentials is at least the dtype's machine epsilon:
    each row's maximum is then within ``log(K / eps)`` (38 in float64, 18 in float32
    for 10 classes) of ``c``, which bounds the extra rounding that the larger ``|s|``
    brings to a few dozen ulps. A row far below the batch's maximum (its exponentials
    would underflow) or a NaN sends the whole batch to the per-row maximum.
    """
    if logits.size:
        s = logits - logits.max()
        e = np.exp(s)
        total = row_sums(e)
        if total.min() >= np.finfo(e.dtype).eps:
            return s, e, total[:, None]
    s, _ = shift_by_max(logits, axis=1)
    e = np.exp(s)
    return s, e, row_sums(e)[:, None]


def _mean_log_softmax(s, log_total):
    """Each row's mean over the classes of ``log_softmax = s - log_total``: what label
    smoothing's uniform part of the targets weighs."""
    return row_sums(s) / s.shape[1] - log_total


def _labelled_log_softmax_sum(labels, s, log_total, w):
    """``sum_n w_n sum_k labels[n, k] * (s[n, k] - log_total[n])`` (``w_n = 1`` for
    ``w=None``): the summed log-likelihood of one-hot or probability labels.

    Each row's labels sum to 1 (``check_targets`` at the boundary), so it is
    ``labels . s - sum(log_total)``: dot products, no (N, K) temporary. A logit so far
    below its row's maximum that ``s`` reaches -inf meets a label of 0 there
    (0 * (-inf) = nan); then the product is taken only where a label is non-zero.
    """
    if w is None:
        total = np.vdot(labels, s) - log_total.sum()
    else:
        total = np.vdot(w, np.einsum("nk,nk->n", labels, s)) - np.vdot(w, log_total)
    if np.isfinite(total):
        return total
    terms = np.multiply(labels, s - log_total[:, None], where=labels != 0,
                        out=np.zeros_like(s))
    per_row = row_sums(terms)
    return np.sum(per_row) if w is None else per_row @ w


class CategoricalCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused, averaged over the batch.

    ``loss = -(1/N) sum_n sum_k labels[n, k] * log_softmax(logits)[n, k]``

    Shape: logits (N, K), labels (N, K) one-hot or probability rows, or (N,) integer
    class indices (both as ``torch.nn.CrossEntropyLoss`` takes them) -> loss, a Python
    float. Class indices give the same loss and gradient as their one-hot rows without
    ever building that (N, K) matrix: the loss picks one log-probability per row, and
    ``backward`` subtracts 1 from one probability per row. Probability rows (soft
    targets: mixup, knowledge distillation, hand-made label smoothing) must hold
    entries >= 0 summing to 1 within 3.5e-4 (``check_targets``; torch checks nothing),
    and the loss and gradient take each sum as exactly 1.

    The log-probabilities come from ``log_softmax`` (shift by the row maximum, then
    subtract the log of the sum of exponentials), never from ``log(clip(p))``: the loss
    is exact and finite for logits of any magnitude, and ``backward`` returns the
    exact ``(softmax(logits) - labels) / N``.

    A ``UserWarning`` is raised once per instance when every row of ``logits`` lies in
    [0, 1] and sums to 1: such rows are almost surely probabilities passed by mistake.

    ``label_smoothing=eps`` (as ``torch.nn.CrossEntropyLoss``) trains against the
    targets ``(1 - eps) * Y + eps / K`` instead of ``Y`` (one-hot or probability rows
    alike, or class indices): the loss adds ``eps`` times each row's mean of
    ``-log_softmax`` over the K classes to ``(1 - eps)`` times the cross-entropy, and
    the gradient is ``(softmax - (1 - eps) Y - eps / K) / N``.

    ``weight`` (K,), one weight per class (as ``torch.nn.CrossEntropyLoss(weight=w)``,
    e.g. for imbalanced classes): each row counts ``w[y_n]`` times and the mean is
    over those weights, ``sum_n w[y_n] l_n / sum_n w[y_n]``, PyTorch's rule for class
    indices (with label smoothing too; :mod:`chainrule.class_weights`). It takes class
    indices or one-hot rows; probability rows are refused (PyTorch divides their
    weighted sum by N instead, another loss). A batch whose rows all weigh 0 gives a
    loss and gradient of 0 (PyTorch's 0 / 0 is NaN), as row weights do.
    """

    multiclass = True
    equations = ("L = -mean_rows(sum_k Y * log_softmax({x}))", ("d{x} = (softmax({x}) - Y) / N",))

    def __init__(self, label_smoothing=0.0, weight=None):
        super().__init__()
        self._warned = False
        self.label_smoothing = check_in_interval(label_smoothing, "label_smoothing", 0.0, 1.0,
                                                 high_closed=True)
        self.weight = None if weight is None else check_class_weight(weight)
        if self.label_smoothing:   # explain() prints the targets it trains toward
            self.equations = (
                f"L = -mean_rows(sum_k Ys * log_softmax({{x}}))   (Ys = (1 - "
                f"{self.label_smoothing:g}) Y + {self.label_smoothing:g} / K)",
                ("d{x} = (softmax({x}) - Ys) / N",))
        if self.weight is not None:
            smooth = (f", smoothed by {self.label_smoothing:g} with the weights inside its "
                      f"class sum, as PyTorch" if self.label_smoothing else "")
            self.equations = (f"L = sum_n w[y_n] CE_n / sum_n w[y_n]   (CE_n: row n's "
                              f"cross-entropy, w: the class weights{smooth})",
                              ("d{x} = w[y] (softmax({x}) - Y) / sum_n w[y_n]" if not smooth
                               else "d{x} = ((1 - eps) w[y] (softmax({x}) - Y) + eps / K "
                                    "(softmax({x}) sum(w) - w)) / sum_n w[y_n]",))

    def get_config(self) -> dict:
        """``label_smoothing`` when it is not 0 and ``weight`` (a list) when given."""
        config: dict = {"label_smoothing": self.label_smoothing} if self.label_smoothing else {}
        return config if self.weight is None else {**config, "weight": self.weight.tolist()}

    def forward(self, logits, labels, sample_weight=None):
        """Return the mean cross-entropy as a Python float.

        With ``sample_weight`` (N,), the weighted mean ``sum(w_n l_n) / sum(w_n)``:
        a weight of 2 counts a row twice.
        """
        if is_class_indices(labels):
            return self._forward_indices(logits, labels, sample_weight)
        # check_targets tests finiteness itself, and names the first bad row
        logits, labels = self._check_pair(logits, labels, "logits", "labels",
                                          finite_targets=False)
        w = self._check_weights(sample_weight, logits.shape[0], logits.dtype)
        if self.validate:
            self.check_targets(labels, "labels")
        if self.weight is not None:   # one-hot rows (check_targets): as their indices
            return self._forward_weighted(logits, labels.argmax(axis=1), w)
        # Outside the validate switch: inside a network is where a stray softmax layer
        # before this loss would put probabilities.
        self._warn_if_probabilities(logits)
        labels = labels.astype(logits.dtype, copy=False)
        s, e, total_exp = _shifted_exp(logits)
        log_total = np.log(total_exp[:, 0])
        total_ls = _labelled_log_softmax_sum(labels, s, log_total, w)
        if self.label_smoothing:
            total_ls = self._smoothed(total_ls, s, log_total, w)
        probs = np.divide(e, total_exp, out=e)   # softmax, from the same exponentials
        if w is None:
            self.cache = (probs, labels, None)
            return -float(total_ls) / logits.shape[0]
        share, total = weight_share(w)
        self.cache = (probs, labels, share)
        return 0.0 - float(total_ls) / total

    def _forward_indices(self, logits, labels, sample_weight):
        """:meth:`forward` for (N,) class indices: the same value as their one-hot rows."""
        if self.validate:
            logits = as_float_array(logits, "logits", ndim=2)
            labels = check_class_indices(labels, logits.shape[1], "labels", n=logits.shape[0])
        w = self._check_weights(sample_weight, logits.shape[0], logits.dtype)
        if self.weight is not None:
            return self._forward_weighted(logits, labels, w)
        self._warn_if_probabilities(logits)
        rows = np.arange(logits.shape[0])
        s, probs, total_exp = _shifted_exp(logits)
        probs /= total_exp
        # -log softmax at the true class: log(sum exp(s)) - s[n, y_n]
        log_total = np.log(total_exp[:, 0])
        per_row = log_total - s[rows, labels]
        if self.label_smoothing:  # eps times the mean over the classes of -log softmax
            eps = self.label_smoothing
            per_row = (1 - eps) * per_row - eps * _mean_log_softmax(s, log_total)
        if w is None:
            self.cache = (probs, labels, None)
            return float(per_row.sum()) / logits.shape[0]
        share, total = weight_share(w)
        self.cache = (probs, labels, share)
        return float(per_row @ w) / total

    def _forward_weighted(self, logits, indices, sample_weight):
        """:meth:`forward` with class weights, on class indices."""
        self._warn_if_probabilities(logits)
        s, probs, total_exp = _shifted_exp(logits)
        probs /= total_exp
        loss, cache = weighted_cross_entropy(s, np.log(total_exp[:, 0]), probs, indices,
                                             self.weight, self.label_smoothing, sample_weight)
        self.cache = ("weighted", cache, None)
        return loss

    def _smoothed(self, total_ls, s, log_total, w):
        """The labelled log-likelihood sum of the smoothed targets: ``(1 - eps)`` times
        that of ``labels`` plus ``eps`` times each row's mean log-probability."""
        eps = self.label_smoothing
        mean_log_p = _mean_log_softmax(s, log_total)
        return (1 - eps) * total_ls + eps * (mean_log_p.sum() if w is None else mean_log_p @ w)

    def backward(self, d_out=1.0):
        """Gradient ``(softmax(logits) - labels) * d_out / N`` and ``None`` for the labels.

        With class indices the one-hot ``labels`` is never built: the probabilities are
        scaled and the scale subtracted at each row's true class.

        Returns
        -------
        d_logits : ndarray, shape (N, K)
        d_labels : None
        """
        d_out = self._check_backward(d_out)
        probs, labels, row_weight = self.cache
        if isinstance(probs, str):   # ("weighted", its cache, None)
            return weighted_cross_entropy_grad(labels, d_out), None
        if labels.ndim == 1:
            scale = (probs.dtype.type(d_out / labels.shape[0]) if row_weight is None
                     else row_weight * probs.dtype.type(d_out))
            d_logits = probs * scale
            rows = np.arange(labels.shape[0])
            eps = self.label_smoothing
            d_logits[rows, labels] -= (1 - eps) * (scale if row_weight is None else scale[:, 0])
            if eps:  # the eps / K every class gets of each row's target
                d_logits -= scale * (eps / probs.shape[1])
            return d_logits, None
        # One (N, K) array, scaled in place: the same operations in the same order as
        # ``(probs - labels) * d_out / N``, so the same values (x * 1.0 is x: the pass
        # is skipped for the usual d_out of 1).
        d_logits = probs - labels
        if self.label_smoothing:  # targets (1 - eps) labels + eps / K
            eps = self.label_smoothing
            d_logits += eps * labels - eps / labels.shape[1]
        if row_weight is not None:
            d_logits *= row_weight
        if d_out != 1:
            d_logits *= d_out
        if row_weight is None:
            d_logits /= labels.shape[0]
        return d_logits, None

    def check_targets(self, targets, name: str = "labels") -> None:
        """Raise ``ValueError`` unless every row of ``targets`` (2-D) is one-hot or a
        probability distribution (finite entries >= 0 summing to 1), or every entry a
        class index (1-D integers; the class count is checked by the caller)."""
        if targets.ndim == 1:
            check_class_indices(targets, None, name)
            return
        check_probability_rows(targets, name)
        if self.weight is not None and not is_one_hot_rows(targets):
            raise ValueError(f"{name} must be class indices or one-hot rows for a "
                             f"cross-entropy with class weights, got probability rows "
                             f"(PyTorch divides their weighted sum by N, not by the "
                             f"weights: another loss)")

    def _warn_if_probabilities(self, logits):
        if self._warned or logits.shape[1] < 2 or logits.shape[0] == 0:
            return
        # Cheapest tests first: every row must pass, so the first one decides for
        # almost every batch of real logits, and only its K entries are read.
        first = logits[0].tolist()  # K Python floats: cheaper than two NumPy reductions
        if min(first) < 0 or max(first) > 1 or logits.min() < 0:
            return
        if logits.max() <= 1 and np.allclose(logits.sum(axis=1), 1.0):
            self._warned = True
            warnings.warn("CategoricalCrossEntropy got rows that lie in [0, 1] and sum to 1; "
                          "it expects raw logits (it applies softmax itself), not "
                          "probabilities", UserWarning, stacklevel=3)


class BinaryCrossEntropy(Loss):
    """Sigmoid followed by binary cross-entropy, fused: summed over the outputs,
    averaged over the rows, as scikit-learn's ``binary_log_loss``.

    ``loss = (1/N) sum_n sum_k [max(z, 0) - z * y + log1p(exp(-|z|))]``

    with ``z`` the logits and ``y`` the targets. Each term equals
    ``-y log(sigmoid(z)) - (1 - y) log(1 - sigmoid(z))`` (``torch.nn.BCEWithLogitsLoss``
    per entry; for K > 1 torch's default mean over all N K entries is K times smaller:
    this is its ``reduction='sum'`` over N), written so that ``exp`` only ever sees
    ``-|z| <= 0``: exact and finite for logits of any magnitude, e.g. 0 for
    ``z = 1e300, y = 1`` and ``1e300`` for ``z = 1e300, y = 0``. scikit-learn clips the
    probabilities to ``[eps, 1 - eps]`` first, which caps each term at
    ``-log(eps) ~ 36.04``; the two agree wherever no probability is within ``eps`` of 0
    or 1.

    Shape: logits (N, K), targets (N, K) -> loss, a Python float. ``K = 1`` is a binary
    problem, ``K > 1`` a multilabel one (K independent binary problems).

    Targets lie in [0, 1]: 0/1 labels, or soft labels as torch accepts them.

    ``pos_weight`` (a number, or one per output), as ``BCEWithLogitsLoss(pos_weight=p)``:
    the positive term of each entry weighs ``p``, ``-p y log(sigmoid(z)) - (1 - y)
    log(1 - sigmoid(z))``, e.g. ``p = negatives / positives`` for a rare class.
    """

    equations = ("L = sum(max({x}, 0) - {x} * Y + log1p(exp(-|{x}|))) / N",
                 ("d{x} = (sigmoid({x}) - Y) / N",))

    def __init__(self, pos_weight=None):
        super().__init__()
        self.pos_weight = None if pos_weight is None else check_pos_weight(pos_weight)
        if self.pos_weight is not None:
            self.equations = ("L = sum((1 - Y) {x} + (1 + (p - 1) Y) softplus(-{x})) / N",
                              ("d{x} = ((1 - Y) sigmoid({x}) - p Y sigmoid(-{x})) / N",))

    def get_config(self) -> dict:
        """``{"pos_weight": [...]}`` when given."""
        return {} if self.pos_weight is None else {"pos_weight": self.pos_weight.tolist()}

    def check_targets(self, targets, name: str = "targets") -> None:
        """Raise ``ValueError`` unless every entry of ``targets`` lies in [0, 1]."""
        if targets.min() < 0 or targets.max() > 1:
            raise ValueError(f"{name} must lie in [0, 1] (0/1 labels, one column per "
                             f"binary output), got values in [{float(targets.min())!r}, "
                             f"{float(targets.max())!r}]")

    def forward(self, logits, targets, sample_weight=None):
        """Return the mean over rows of the summed binary cross-entropy.

        With ``sample_weight`` (N,), the weighted mean over rows
        ``sum(w_n l_n) / sum(w_n)`` of the per-row sums ``l_n``.
        """
        logits, targets = self._check_pair(logits, targets, "logits", "targets")
        w = self._check_weights(sample_weight, logits.shape[0], logits.dtype)
        if self.validate:
            self.check_targets(targets)
        targets = targets.astype(logits.dtype, copy=False)
        e = np.exp(-np.abs(logits))
        if self.pos_weight is None:
            per_entry = np.maximum(logits, 0) - logits * targets + np.log1p(e)
            positives = targets   # what sigmoid(-z) is weighed by backward
        else:
            positives = weighted_positives(self.pos_weight, targets)
            per_entry = ((1 - targets) * logits
                         + (1 - targets + positives) * (np.log1p(e) + np.maximum(-logits, 0)))
        if w is None:
            self.cache = (logits >= 0, e, targets, positives, None)
            return float(np.sum(per_entry)) / logits.shape[0]
        share, total = weight_share(w)
        self.cache = (logits >= 0, e, targets, positives, share)
        return float(np.sum(per_entry, axis=1) @ w) / total

    def backward(self, d_out=1.0):
        """Gradient ``(sigmoid(logits) - targets) * d_out / N`` and ``None`` for the targets.

        ``sigmoid(z) - y`` is evaluated as ``(1 - y) sigmoid(z) - y sigmoid(-z)``, both
        sigmoids from ``e = exp(-|z|)``: for a 0/1 target this keeps full relative
        precision where ``sigmoid(z)`` rounds to 1 (``z > 37``), e.g. ``-exp(-40)``
        instead of 0 for ``z = 40, y = 1``.

        Returns
        -------
        d_logits : ndarray, shape (N, K)
        d_targets : None
        """
        d_out = self._check_backward(d_out)
        positive, e, targets, positives, row_weight = self.cache
        small = e / (1 + e)          # sigmoid(-|z|)
        large = 1 / (1 + e)          # sigmoid(|z|)
        sig = np.where(positive, large, small)
        sig_neg = np.where(positive, small, large)
        diff = (1 - targets) * sig - positives * sig_neg   # (positives: pos_weight * y)
        if row_weight is None:
            return diff * (d_out / targets.shape[0]), None
        return diff * row_weight * d_out, None


class MultiMarginLoss(Loss):
    """Multiclass hinge (SVM) loss on class scores, as ``torch.nn.MultiMarginLoss(p=1,
    margin=margin)``, averaged over the batch.

    ``loss = (1/N) sum_n (1/K) sum_{i != y_n} max(0, margin - x[n, y_n] + x[n, i])``

    with ``x`` the scores (the network's outputs, one per class) and ``y_n`` the class
    of row ``n``: each other class whose score comes within ``margin`` of the true
    class's costs the shortfall. A row whose true score leads every other by at least
    ``margin`` costs 0 and moves nothing.

    CS231n's multiclass SVM loss (Weston and Watkins'; ``margin`` its ``Delta``) is
    this times K: it sums the hinge terms without dividing by the number of classes,
    so its values and gradients are K times these (a learning rate tuned for it is K
    times too small here; the same steps need ``lr * K``).

    Shape: scores (N, K), labels (N,) integer class indices or (N, K) one-hot rows (as
    :class:`CategoricalCrossEntropy` takes them) -> loss, a Python float.

    The gradient, torch's subgradient: each term above 0 adds ``1 / (N K)`` at its
    class ``i`` and subtracts it at the true class; a term exactly at 0, on the kink
    of its hinge, adds nothing.

    A network with this loss is a classifier (``multiclass``): ``fit`` and ``evaluate``
    take class indices and report the accuracy, ``predict_classes`` is the argmax of
    the scores. The scores are no probabilities: ``predict`` returns them as they are
    and ``predict_proba`` refuses.

    Parameters
    ----------
    margin : float, default=1.0
        How far the true class's score must lead the others', a finite number > 0
        (torch's ``margin``).
    """

    multiclass = True
    equations = ("L = mean_rows(sum_(i != y) max(0, 1 - {x}_y + {x}_i)) / K",
                 ("d{x}_i = [1 - {x}_y + {x}_i > 0] / (N * K), d{x}_y = -(sum of those)",))

    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = check_positive_float(margin, "margin")
        if self.margin != 1.0:   # explain() prints the equations with this margin
            m = f"{self.margin:g}"
            self.equations = (
                f"L = mean_rows(sum_(i != y) max(0, {m} - {{x}}_y + {{x}}_i)) / K",
                (f"d{{x}}_i = [{m} - {{x}}_y + {{x}}_i > 0] / (N * K), d{{x}}_y = -(sum of "
                 f"those)",))

    def get_config(self) -> dict:
        """``{"margin": margin}`` when it is not 1."""
        return {"margin": self.margin} if self.margin != 1.0 else {}

    def check_targets(self, targets, name: str = "labels") -> None:
        """Raise ``ValueError`` unless ``targets`` is (N,) class indices (1-D integers;
        the class count is checked by the caller) or (N, K) one-hot rows: a hinge on
        class scores has no meaning for probability rows."""
        if targets.ndim == 1:
            check_class_indices(targets, None, name)
            return
        bad = ~((targets == 0) | (targets == 1)).all(axis=1) | (row_sums(targets) != 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be one-hot rows (or (N,) integer class indices) "
                             f"for MultiMarginLoss, got row {row} = {targets[row].tolist()}")

    def _scores_and_classes(self, scores, labels):
        """``(scores, class of each row)``, checked when ``validate`` is on."""
        if is_class_indices(labels):
            if self.validate:
                scores = as_float_array(scores, "scores", ndim=2)
                labels = check_class_indices(labels, scores.shape[1], "labels",
                                             n=scores.shape[0])
            return scores, labels
        scores, labels = self._check_pair(scores, labels, "scores", "labels",
                                          finite_targets=False)
        if self.validate:
            self.check_targets(labels, "labels")
        return scores, labels.argmax(axis=1)

    def forward(self, scores, labels, sample_weight=None):
        """Return the mean hinge loss as a Python float.

        With ``sample_weight`` (N,), the weighted mean ``sum(w_n l_n) / sum(w_n)`` of
        the rows' losses ``l_n``.
        """
        scores, classes = self._scores_and_classes(scores, labels)
        w = self._check_weights(sample_weight, scores.shape[0], scores.dtype)
        n, k = scores.shape
        rows = np.arange(n)
        # torch's order of operations, (margin - x_y) + x_i: each term rounds as there,
        # so one on the kink is exactly 0 here where it is there (and moves nothing).
        z = (self.margin - scores[rows, classes])[:, None] + scores
        z[rows, classes] = 0.0            # the true class is no term of its row
        hinge = np.maximum(z, zeros_for(z), out=z)
        per_row = row_sums(hinge)
        scale, total = (None, n) if w is None else weight_share(w, k)
        self.cache = (hinge > 0, classes, scale, scores.dtype)
        return float(per_row.sum() if w is None else per_row @ w) / (total * k)

    def backward(self, d_out=1.0):
        """Gradient ``d_out / (N K)`` at each class with a term above 0, minus their sum
        at the true class, and ``None`` for the labels.

        Returns
        -------
        d_scores : ndarray, shape (N, K)
        d_labels : None
        """
        d_out = self._check_backward(d_out)
        active, classes, row_weight, dtype = self.cache
        d_scores = active.astype(dtype)
        d_scores[np.arange(classes.shape[0]), classes] = -row_sums(d_scores)
        if row_weight is None:
            return d_scores * (d_out / d_scores.size), None
        return d_scores * row_weight * d_out, None


def is_multiclass(loss) -> bool:
    """Whether ``loss`` is that of a K-class classifier whose class is the argmax of
    its outputs (``Loss.multiclass``: :class:`CategoricalCrossEntropy`,
    :class:`MultiMarginLoss`); False for any other object."""
    return getattr(loss, "multiclass", False) is True


LOSSES = {"cross_entropy": CategoricalCrossEntropy, "mse": MeanSquaredError,
          "binary_cross_entropy": BinaryCrossEntropy, "poisson": PoissonLoss,
          "squared_error": HalfSquaredError, "l1": L1Loss, "huber": HuberLoss,
          "multi_margin": MultiMarginLoss}


def get_loss(name) -> Loss:
    """Return a new loss object for ``name`` (or ``name`` itself if it is a Loss)."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a Loss instance (a "
                         f"subclass of chainrule.losses.Loss), got {name!r}")
    return LOSSES[name]()


def l2_penalty(params: dict, weight_names, alpha: float, n: float) -> tuple[float, dict]:
    """scikit-learn's L2 penalty on the weights and its gradient.

    ``penalty = 0.5 * alpha * sum_W sum(W**2) / n``, gradient ``alpha * W / n`` for each
    ``W`` named in ``weight_names`` (the weights, not the biases: scikit-learn's
    ``alpha``). ``n`` is what scikit-learn divides by: the number of rows the loss
    averages over (the whole training set for L-BFGS, the batch for SGD and Adam), or
    the sum of their sample weights when the loss is weighted. Added to a loss averaged
    over the same rows, it makes ``alpha`` mean the same for every ``n``.

    Parameters
    ----------
    params : dict of str to ndarray
    weight_names : iterable of str
        Keys of ``params`` that the penalty covers.
    alpha : float
        Strength, >= 0.
    n : float
        Number of rows (or sum of sample weights), > 0.

    Returns
    -------
    penalty : float
    grads : dict of str to ndarray
        One gradient per name in ``weight_names``, in the parameter's dtype; empty when
        ``alpha`` is 0 (nothing to add).
    """
    alpha = check_positive_float(alpha, "alpha", allow_zero=True)
    n = check_positive_float(n, "n")
    names = list(weight_names)
    missing = [k for k in names if k not in params]
    if missing:
        raise ValueError(f"weight_names {missing} are not keys of params {list(params)}")
    if alpha == 0:
        return 0.0, {}
    total, grads = 0.0, {}
    for k in names:
        w = params[k].ravel()
        total += float(w @ w)
        grads[k] = params[k] * params[k].dtype.type(alpha / n)
    return 0.5 * alpha * total / n, grads
