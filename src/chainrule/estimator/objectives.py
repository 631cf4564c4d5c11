"""The estimators' training losses: the network's gradients, scikit-learn's values.

scikit-learn's solvers follow the gradient of the loss but *see* values that differ from
chainrule's exact ones, and its ``loss_``, ``loss_curve_``, ``tol`` rule and L-BFGS line
search decide on those values:

* log-loss on probabilities clipped to ``[eps, 1 - eps]`` (a saturated row counts
  ``-log(eps)``, 36.04 in float64, where chainrule's log-softmax is exact), and for
  logistic outputs ``log(1 - p)``, which loses ``eps / (1 - p)`` to cancellation;
* for several regression outputs, the half *mean* over the outputs, although the
  steps follow the half *sum* (see :class:`~chainrule.losses.HalfSquaredError`);
* with ``sample_weight`` and minibatches, an epoch's loss as the batches' losses
  averaged by their rows, not their weights (:class:`SklearnEpochLoss`).

:func:`set_training_loss` gives an estimator's network the subclass of its loss that
returns scikit-learn's value; backward passes are the parent's, untouched. Model files
store the parent (``stored_as``), which is what a network's config builds.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, xlogy

from ..losses import BinaryCrossEntropy, CategoricalCrossEntropy, HalfSquaredError, PoissonLoss

__all__ = ["SklearnValue", "SklearnLogLoss", "SklearnBinaryLogLoss", "SklearnSquaredError",
           "SklearnPoissonLoss", "SklearnEpochLoss", "set_training_loss"]


class SklearnValue:
    """Mixin for a loss whose :meth:`forward` returns scikit-learn's value
    (:meth:`sklearn_value` of the parent's cache) and hands it to ``epoch_loss`` when
    one is set (by ``run_stochastic``, for the duration of a fit)."""

    stored_as: type
    epoch_loss = None   # SklearnEpochLoss or None

    def forward(self, outputs, targets, sample_weight=None):
        value = self.sklearn_value(super().forward(outputs, targets, sample_weight),
                                   outputs, sample_weight)
        if self.epoch_loss is not None:
            self.epoch_loss.add(value, np.shape(outputs)[0], sample_weight)
        return value

    def sklearn_value(self, value, outputs, sample_weight):  # pragma: no cover - abstract
        raise NotImplementedError


class SklearnLogLoss(SklearnValue, CategoricalCrossEntropy):
    """Softmax cross-entropy with scikit-learn's ``log_loss`` as its value: the
    probabilities clipped to ``[eps, 1 - eps]``. Where nothing is clipped, the value is
    the exact one, to rounding, and is kept."""

    stored_as = CategoricalCrossEntropy

    def sklearn_value(self, value, outputs, sample_weight):
        probs, labels = self.cache[:2]
        eps = np.finfo(probs.dtype).eps
        if labels.ndim != 2 or (eps <= probs.min() and probs.max() <= 1 - eps):
            return value
        probs = np.clip(probs, eps, 1 - eps)
        return float(-np.average(xlogy(labels, probs), weights=sample_weight, axis=0).sum())


class SklearnBinaryLogLoss(SklearnValue, BinaryCrossEntropy):
    """Logistic cross-entropy with scikit-learn's ``binary_log_loss`` as its value:
    sigmoids clipped to ``[eps, 1 - eps]`` and ``log(1 - sigmoid)`` for a target of 0
    (1e-9 of a row's loss at ``z = 20`` lost to cancellation), always recomputed."""

    stored_as = BinaryCrossEntropy

    def sklearn_value(self, value, outputs, sample_weight):
        targets = self.cache[2]
        eps = np.finfo(targets.dtype).eps
        probs = np.clip(expit(outputs), eps, 1 - eps)
        terms = xlogy(targets, probs) + xlogy(1 - targets, 1 - probs)
        # (np.average without weights is this mean, bit for bit, at 3x its call cost)
        mean = terms.mean(axis=0) if sample_weight is None else \
            np.average(terms, weights=sample_weight, axis=0)
        return float(-mean.sum())


class SklearnSquaredError(SklearnValue, HalfSquaredError):
    """Half squared error with the gradient of the half *sum* over the M outputs and
    the value of their half *mean*, ``1 / M`` of it, as scikit-learn's solvers have it
    (the two agree for one output)."""

    stored_as = HalfSquaredError

    def __init__(self):
        super().__init__("sum")

    def sklearn_value(self, value, outputs, sample_weight):
        return value / np.shape(outputs)[1]


class SklearnPoissonLoss(SklearnValue, PoissonLoss):
    """The Poisson loss, whose value is scikit-learn's ``poisson_loss`` already; a
    :class:`SklearnValue` for :class:`SklearnEpochLoss`'s sake."""

    stored_as = PoissonLoss

    def sklearn_value(self, value, outputs, sample_weight):
        return value


#: The estimators' loss for each loss class an estimator's network is built with.
_TRAINING_LOSSES = {CategoricalCrossEntropy: SklearnLogLoss,
                    BinaryCrossEntropy: SklearnBinaryLogLoss,
                    HalfSquaredError: SklearnSquaredError,
                    PoissonLoss: SklearnPoissonLoss}


def set_training_loss(model) -> None:
    """Give ``model`` (an estimator's network) the loss scikit-learn trains with: the
    same gradients, scikit-learn's values (kept when it has it already)."""
    cls = _TRAINING_LOSSES.get(type(model.loss))
    if cls is not None:
        validate = model.loss.validate
        model.loss = cls()
        model.loss.validate = validate


class SklearnEpochLoss:
    """scikit-learn's epoch loss with sample weights and minibatches: the batches'
    losses (each with its L2 term over the batch's weight) averaged by their *rows*.
    The History averages them by their weight; ``loss_curve_`` feeds the ``tol``
    rule, which then stops at scikit-learn's epoch.

    Fed each batch's value by the network's :class:`SklearnValue` loss; :meth:`pop`
    at the epoch's end.
    """

    def __init__(self, model, alpha):
        self.params, self.alpha = model.params, alpha
        self.weights = [names[0] for _, names in model.layers if names]
        self.total, self.rows = 0.0, 0

    def add(self, value, n_rows, sample_weight):
        if self.alpha:   # as train.fit adds it: the parameters before the batch's step
            squares = sum(float(np.vdot(self.params[k], self.params[k])) for k in self.weights)
            value += 0.5 * self.alpha * squares / float(sample_weight.sum())
        self.total += value * n_rows
        self.rows += n_rows

    def pop(self):
        """The epoch's loss; the next epoch starts from zero."""
        value, self.total, self.rows = self.total / self.rows, 0.0, 0
        return value
