"""Losses: the last node of the graph, ``forward(outputs, targets) -> float``.

``backward(d_out=1.0)`` returns ``(d_outputs, None)``: the ``None`` stands for the
gradient with respect to the targets, which no model needs (the homework's contract).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import _shape_str, as_float_array, check_one_hot, check_sample_weight
from .functional import _shifted

__all__ = ["Loss", "CategoricalCrossEntropy", "MeanSquaredError", "LOSSES", "get_loss"]


class Loss:
    """Base class holding the shared checks; ``validate`` as for layers."""

    validate = True
    equations = ("L = loss({x}, Y)", ("d{x} = dL/d{x}",))

    def __init__(self):
        self.cache = None

    def _check_pair(self, outputs, targets, out_name, target_name):
        if not self.validate:
            return outputs, targets
        outputs = as_float_array(outputs, out_name, ndim=2)
        targets = as_float_array(targets, target_name, ndim=2)
        if outputs.shape != targets.shape:
            raise ValueError(f"{out_name} and {target_name} must have the same shape, got "
                             f"{out_name} {_shape_str(outputs.shape)} and {target_name} "
                             f"{_shape_str(targets.shape)}")
        return outputs, targets

    def _check_weights(self, sample_weight, n, dtype):
        """``None`` or a 1-D array of ``n`` non-negative weights with a positive sum."""
        if sample_weight is None:
            return None
        if self.validate:
            return check_sample_weight(sample_weight, n, dtype)
        return sample_weight.astype(dtype, copy=False)

    def _check_backward(self, d_out):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        # A Python float keeps float32 gradients in float32 (NumPy's weak scalars).
        return float(as_float_array(d_out, "d_out", ndim=0)) if self.validate else d_out

    def __repr__(self):
        return f"{type(self).__name__}()"


class CategoricalCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused, averaged over the batch.

    ``loss = -(1/N) sum_n sum_k labels[n, k] * log_softmax(logits)[n, k]``

    Shape: logits (N, K), labels (N, K) one-hot -> loss, a Python float.

    The log-probabilities come from ``log_softmax`` (shift by the row maximum, then
    subtract the log of the sum of exponentials), never from ``log(clip(p))``: the loss
    is exact and finite for logits of any magnitude, and ``backward`` returns the
    exact ``(softmax(logits) - labels) / N``.

    A ``UserWarning`` is raised once per instance when every row of ``logits`` lies in
    [0, 1] and sums to 1: such rows are almost surely probabilities passed by mistake.
    """

    equations = ("L = -mean_rows(sum_k Y * log_softmax({x}))", ("d{x} = (softmax({x}) - Y) / N",))

    def __init__(self):
        super().__init__()
        self._warned = False

    def forward(self, logits, labels, sample_weight=None):
        """Return the mean cross-entropy as a Python float.

        With ``sample_weight`` (N,), the weighted mean ``sum(w_n l_n) / sum(w_n)``:
        a weight of 2 counts a row twice.
        """
        logits, labels = self._check_pair(logits, labels, "logits", "labels")
        w = self._check_weights(sample_weight, logits.shape[0], logits.dtype)
        if self.validate:
            check_one_hot(labels, "labels")
        # Outside the validate switch: inside a network is where a stray softmax layer
        # before this loss would put probabilities.
        self._warn_if_probabilities(logits)
        labels = labels.astype(logits.dtype, copy=False)
        s, _ = _shifted(logits, axis=1)
        log_probs = s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))
        # where= skips the 0 * (-inf) = nan that a label of 0 meets when a logit is
        # so far below the maximum that its log-probability underflows to -inf.
        if w is None:
            loss = -float(np.sum(labels * log_probs, where=labels != 0)) / logits.shape[0]
            self.cache = (np.exp(log_probs), labels, None)
        else:
            # A minibatch whose rows all weigh 0 contributes nothing (loss and gradient 0).
            total = float(w.sum()) or 1.0
            per_row = np.sum(labels * log_probs, axis=1, where=labels != 0)
            loss = 0.0 - float(per_row @ w) / total
            self.cache = (np.exp(log_probs), labels, w[:, None] / w.dtype.type(total))
        return loss

    def backward(self, d_out=1.0):
        """Gradient ``(softmax(logits) - labels) * d_out / N`` and ``None`` for the labels.

        Returns
        -------
        d_logits : ndarray, shape (N, K)
        d_labels : None
        """
        d_out = self._check_backward(d_out)
        probs, labels, row_weight = self.cache
        if row_weight is None:
            return (probs - labels) * d_out / labels.shape[0], None
        return (probs - labels) * row_weight * d_out, None

    def _warn_if_probabilities(self, logits):
        # Cheapest test first: real logits almost always have a negative entry.
        if self._warned or logits.shape[1] < 2 or logits.min() < 0:
            return
        if logits.max() <= 1 and np.allclose(logits.sum(axis=1), 1.0):
            self._warned = True
            warnings.warn("CategoricalCrossEntropy got rows that lie in [0, 1] and sum to 1; "
                          "it expects raw logits (it applies softmax itself), not "
                          "probabilities", UserWarning, stacklevel=3)


class MeanSquaredError(Loss):
    """Mean of squared differences over every entry, as ``torch.nn.MSELoss``.

    ``loss = (1 / (N*M)) sum (outputs - targets)^2``

    Shape: outputs (N, M), targets (N, M) -> loss, a Python float.
    """

    equations = ("L = mean((({x}) - Y)^2)", ("d{x} = 2 * ({x} - Y) / (N * M)",))

    def forward(self, outputs, targets, sample_weight=None):
        """Mean squared error; with ``sample_weight`` (N,), rows are weighted and the
        sum is divided by ``sum(w) * M``."""
        outputs, targets = self._check_pair(outputs, targets, "outputs", "targets")
        w = self._check_weights(sample_weight, outputs.shape[0], outputs.dtype)
        diff = outputs - targets.astype(outputs.dtype, copy=False)
        if w is None:
            self.cache = (diff, None)
            return float(np.mean(diff * diff))
        scale = w[:, None] / w.dtype.type((float(w.sum()) or 1.0) * diff.shape[1])
        self.cache = (diff, scale)
        return float(np.sum(diff * diff * scale))

    def backward(self, d_out=1.0):
        """Gradient ``2 (outputs - targets) * d_out / (N*M)`` and ``None`` for the targets."""
        d_out = self._check_backward(d_out)
        diff, scale = self.cache
        if scale is None:
            return diff * (2 * d_out / diff.size), None
        return diff * scale * (2 * d_out), None


LOSSES = {"cross_entropy": CategoricalCrossEntropy, "mse": MeanSquaredError}


def get_loss(name) -> Loss:
    """Return a new loss object for ``name`` (or ``name`` itself if it is a Loss)."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()
