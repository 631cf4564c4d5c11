"""Regression losses: outputs compared with real-valued targets, entry by entry.

Each is a :class:`~chainrule.loss_base.Loss` (``forward(outputs, targets,
sample_weight=None) -> float``, ``backward(d_out=1.0) -> (d_outputs, None)``):
:class:`MeanSquaredError`, :class:`L1Loss` and :class:`HuberLoss` as PyTorch's
``MSELoss``, ``L1Loss`` and ``HuberLoss`` (the mean over every entry), and
:class:`PoissonLoss` and :class:`HalfSquaredError` as scikit-learn's MLP losses.
:mod:`chainrule.losses` re-exports them and registers them in ``LOSSES``.

With ``sample_weight`` (N,), the entry-wise losses weight their rows and divide by
``sum(w) * M`` in place of ``N * M``: a weight of 2 counts a row twice.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_positive_float
from .loss_base import Loss, weight_share

__all__ = ["MeanSquaredError", "L1Loss", "HuberLoss", "PoissonLoss", "HalfSquaredError"]


class _MeanOfEntries(Loss):
    """A loss that is the mean over every entry of one function of ``outputs -
    targets`` (with ``sample_weight`` (N,), the weighted mean over the rows): a subclass
    gives the function, ``_entries``, and right under it its slope, ``_slope``."""

    linear_outputs = True

    def forward(self, outputs, targets, sample_weight=None):
        """The mean of ``_entries(outputs - targets)``; with ``sample_weight``, rows are
        weighted and the sum is divided by ``sum(w) * M``."""
        outputs, targets = self._check_pair(outputs, targets, "outputs", "targets")
        w = self._check_weights(sample_weight, outputs.shape[0], outputs.dtype)
        diff = outputs - targets.astype(outputs.dtype, copy=False)
        scale = None if w is None else weight_share(w, diff.shape[1])[0]
        self.cache = (diff, scale)
        entries = self._entries(diff)
        return float(np.mean(entries)) if scale is None else float(np.sum(entries * scale))

    def backward(self, d_out=1.0):
        """Gradient ``_slope(outputs - targets) * d_out / (N*M)`` (each row's weight in
        place of ``1 / (N*M)`` with ``sample_weight``) and ``None`` for the targets."""
        d_out = self._check_backward(d_out)
        diff, scale = self.cache
        slope = self._slope(diff)
        if scale is None:
            return slope * (d_out / diff.size), None
        return slope * scale * d_out, None

    def _entries(self, diff):  # pragma: no cover - abstract
        raise NotImplementedError

    def _slope(self, diff):  # pragma: no cover - abstract
        raise NotImplementedError


class MeanSquaredError(_MeanOfEntries):
    """Mean of squared differences over every entry, as ``torch.nn.MSELoss``.

    ``loss = (1 / (N*M)) sum (outputs - targets)^2``

    Shape: outputs (N, M), targets (N, M) -> loss, a Python float.
    """

    equations = ("L = mean((({x}) - Y)^2)", ("d{x} = 2 * ({x} - Y) / (N * M)",))

    def _entries(self, diff):
        return diff * diff

    def _slope(self, diff):
        return 2 * diff


class L1Loss(_MeanOfEntries):
    """Mean of absolute differences over every entry, as ``torch.nn.L1Loss``.

    ``loss = (1 / (N*M)) sum |outputs - targets|``

    Shape: outputs (N, M), targets (N, M) -> loss, a Python float.

    The gradient is ``sign(outputs - targets) / (N*M)``: 0 where an output equals its
    target, the subgradient torch takes at the kink, so that a fitted entry stays put.
    """

    equations = ("L = mean(|{x} - Y|)", ("d{x} = sign({x} - Y) / (N * M)",))

    def _entries(self, diff):
        return np.abs(diff)

    def _slope(self, diff):
        return np.sign(diff)   # 0 at a tie


class HuberLoss(_MeanOfEntries):
    """Huber loss averaged over every entry, as ``torch.nn.HuberLoss(delta=delta)``.

    ``loss = (1 / (N*M)) sum h(outputs - targets)`` with ``h(d) = d^2 / 2`` where
    ``|d| < delta`` and ``h(d) = delta (|d| - delta / 2)`` elsewhere

    Squared error for small residuals, absolute error (scaled by ``delta``) for large
    ones: outliers pull on the fit with a force of at most ``delta``. The two pieces
    meet with the same value and slope at ``|d| = delta``, so the gradient
    ``clip(outputs - targets, -delta, delta) / (N*M)`` is continuous and the same from
    both sides there. ``torch.nn.SmoothL1Loss(beta)`` is this divided by ``beta``.

    Shape: outputs (N, M), targets (N, M) -> loss, a Python float.

    Parameters
    ----------
    delta : float, default=1.0
        Where the quadratic part ends, a finite number > 0 (torch's ``delta``).
    """

    equations = ("L = mean(huber({x} - Y))   (huber(d) = d^2 / 2 for |d| < 1, |d| - 1 / 2 "
                 "beyond)", ("d{x} = clip({x} - Y, -1, 1) / (N * M)",))

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = check_positive_float(delta, "delta")
        if self.delta != 1.0:   # explain() prints the equations with this delta
            d = f"{self.delta:g}"
            self.equations = (f"L = mean(huber({{x}} - Y))   (huber(d) = d^2 / 2 for |d| < "
                              f"{d}, {d} (|d| - {d} / 2) beyond)",
                              (f"d{{x}} = clip({{x}} - Y, -{d}, {d}) / (N * M)",))

    def get_config(self) -> dict:
        """``{"delta": delta}`` when it is not 1."""
        return {"delta": self.delta} if self.delta != 1.0 else {}

    def _entries(self, diff):
        a = np.abs(diff)
        # m (a - m / 2) with m = min(|d|, delta) is both pieces in one expression, with
        # torch's roundings: below delta, a - a/2 is exact (Sterbenz), so the product is
        # (a / 2) a, torch's 0.5 * z * z; from delta on it is delta * (a - 0.5 delta).
        m = np.minimum(a, self.delta)   # a Python float keeps float32 in float32
        return m * (a - 0.5 * m)

    def _slope(self, diff):
        return np.clip(diff, -self.delta, self.delta)


class PoissonLoss(Loss):
    """Poisson loss with a log link: the network outputs ``z = log(mean)``.

    ``loss = (1/N) sum_n sum_k [exp(z) - y z + y log(y) - y]``   (``0 log 0 = 0``)

    This is half the Poisson deviance, summed over the outputs and averaged over the
    rows, the value scikit-learn's ``MLPRegressor(loss='poisson')`` reports (its
    ``poisson_loss`` of ``exp(z)``, constant terms ``y log(y) - y`` included, so a
    perfect fit scores 0). The prediction is ``exp(z)``. PyTorch's
    ``PoissonNLLLoss(log_input=True, reduction='sum')`` over N lacks only ``y log(y) - y``.

    Shape: log_mean (N, K), targets (N, K) -> loss, a Python float.

    Targets must be >= 0. ``exp(z)`` overflows for ``z`` above about 709 (88 in
    float32): the loss is then ``inf``, the true value being beyond the float range.
    """

    equations = ("L = sum(exp({x}) - Y * {x} + Y * log(Y) - Y) / N",
                 ("d{x} = (exp({x}) - Y) / N",))

    def check_targets(self, targets, name: str = "targets") -> None:
        """Raise ``ValueError`` unless every entry of ``targets`` is >= 0 (counts, rates)."""
        if targets.min() < 0:
            raise ValueError(f"{name} must be >= 0 for the Poisson loss, got a minimum "
                             f"of {float(targets.min())!r}")

    def forward(self, log_mean, targets, sample_weight=None):
        """Half the Poisson deviance of ``exp(log_mean)``, averaged over rows.

        With ``sample_weight`` (N,), the weighted mean over rows ``sum(w_n l_n) / sum(w_n)``.
        """
        log_mean, targets = self._check_pair(log_mean, targets, "log_mean", "targets")
        w = self._check_weights(sample_weight, log_mean.shape[0], log_mean.dtype)
        if self.validate:
            self.check_targets(targets)
        targets = targets.astype(log_mean.dtype, copy=False)
        mean = np.exp(log_mean)
        # y log(y), with the limit 0 at y = 0: log(y + (y == 0)) is log(y) for y > 0 and
        # log(1) = 0 at y = 0 (a masked np.log(where=) took ~6x longer).
        y_log_y = targets * np.log(targets + (targets == 0))
        per_entry = mean - targets * log_mean + y_log_y - targets
        if w is None:
            self.cache = (mean, targets, None)
            return float(np.sum(per_entry)) / log_mean.shape[0]
        share, total = weight_share(w)
        self.cache = (mean, targets, share)
        return float(np.sum(per_entry, axis=1) @ w) / total

    def backward(self, d_out=1.0):
        """Gradient ``(exp(log_mean) - targets) * d_out / N`` and ``None`` for the targets.

        Returns
        -------
        d_log_mean : ndarray, shape (N, K)
        d_targets : None
        """
        d_out = self._check_backward(d_out)
        mean, targets, row_weight = self.cache
        if row_weight is None:
            return (mean - targets) * (d_out / targets.shape[0]), None
        return (mean - targets) * row_weight * d_out, None


class HalfSquaredError(Loss):
    """Half the mean squared error, scikit-learn's ``squared_error``.

    ``loss = (1 / (2 N M)) sum (outputs - targets)^2``     (``output_reduction='mean'``)
    ``loss = (1 / (2 N))   sum (outputs - targets)^2``     (``output_reduction='sum'``)

    Shape: outputs (N, M), targets (N, M) -> loss, a Python float.

    Parameters
    ----------
    output_reduction : {'mean', 'sum'}, default='mean'
        How the M output columns are combined after averaging over the rows.
        ``'mean'`` is the value scikit-learn's ``squared_loss`` and ``loss_`` report.
        ``'sum'`` is the function whose gradient scikit-learn's solvers follow: its
        backward pass starts from ``(outputs - targets) / N`` whatever M is, which is
        M times the gradient of the value it reports. The two agree for M = 1; for
        multi-output regression use ``'sum'`` to train as scikit-learn trains (same
        steps, same balance against ``alpha``) and divide the value by M to report it.

    Notes
    -----
    ``MeanSquaredError`` (``torch.nn.MSELoss``, no one-half) is twice the ``'mean'``
    value and keeps that meaning.
    """

    linear_outputs = True
    equations = ("L = sum((({x}) - Y)^2) / (2 * N * M)", ("d{x} = ({x} - Y) / (N * M)",))

    def __init__(self, output_reduction: str = "mean"):
        super().__init__()
        self.output_reduction = check_choice(output_reduction, "output_reduction",
                                             ("mean", "sum"))
        if output_reduction == "sum":
            self.equations = ("L = sum((({x}) - Y)^2) / (2 * N)", ("d{x} = ({x} - Y) / N",))

    def get_config(self) -> dict:
        """``{"output_reduction": "sum"}`` for ``'sum'``: model files and checkpoints
        keep it (a loaded ``'sum'`` model read as ``'mean'`` would step M times smaller)."""
        return {"output_reduction": "sum"} if self.output_reduction == "sum" else {}

    def forward(self, outputs, targets, sample_weight=None):
        """Half squared error; with ``sample_weight`` (N,), the weighted mean over rows
        (``sum(w)`` in place of ``N``), as ``np.average(..., weights=w, axis=0)``."""
        outputs, targets = self._check_pair(outputs, targets, "outputs", "targets")
        w = self._check_weights(sample_weight, outputs.shape[0], outputs.dtype)
        diff = outputs - targets.astype(outputs.dtype, copy=False)
        columns = diff.shape[1] if self.output_reduction == "mean" else 1
        if w is None:
            self.cache = (diff, None, diff.shape[0] * columns)
            return 0.5 * float(np.sum(diff * diff)) / (diff.shape[0] * columns)
        scale = weight_share(w, columns)[0]
        self.cache = (diff, scale, None)
        return 0.5 * float(np.sum(diff * diff * scale))

    def backward(self, d_out=1.0):
        """Gradient ``(outputs - targets) * d_out / (N*M)`` (``/ N`` for ``'sum'``) and
        ``None`` for the targets."""
        d_out = self._check_backward(d_out)
        diff, scale, count = self.cache
        if scale is None:
            return diff * (d_out / count), None
        return diff * scale * d_out, None

    def __repr__(self):
        return f"HalfSquaredError(output_reduction={self.output_reduction!r})"
