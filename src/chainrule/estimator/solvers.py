"""The estimators' solvers: scikit-learn's epoch bookkeeping around the one training loop.

``solver='sgd' | 'adam' | 'adamw'`` trains through :func:`chainrule.train.fit`, with
:class:`EpochRule` as its callback doing what scikit-learn's ``_fit_stochastic`` does
after every epoch (``t_``, ``loss_curve_``, ``verbose``, the ``tol`` /
``n_iter_no_change`` rule on the training loss or the validation score, the
learning-rate schedule, the best weights of early stopping). ``solver='lbfgs'`` goes
through :func:`chainrule.lbfgs.minimize_lbfgs`.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import sklearn

from ..diagnostics import user_stacklevel
from ..lbfgs import minimize_lbfgs
from ..optim import SGD, Adam, AdamW
from ..schedules import EpochLR
from ..train import TrainingDivergedError, fit
from .objectives import SklearnEpochLoss

__all__ = ["EpochRule", "SklearnSGD", "SklearnAdam", "SklearnAdamW", "SklearnOrder",
           "build_optimizer", "run_stochastic", "run_lbfgs", "NON_FINITE"]

NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large"
              " values and need to be preprocessed.")

#: scikit-learn's package folder: its ``fit`` decorator sits between the user's call and
#: the estimators' warnings, which should point at the user's line.
SKLEARN_DIR = os.path.dirname(os.path.abspath(sklearn.__file__))


class SklearnSGD(SGD):
    """:class:`~chainrule.optim.SGD` with momentum as scikit-learn's ``SGDOptimizer``
    keeps it: a velocity of past *steps*, ``v = momentum * v - lr * g``, then
    ``p += v`` (Nesterov: ``p += momentum * v - lr * g``).

    While ``lr`` is constant this is SGD's buffer of past gradients times ``-lr``; with
    ``learning_rate='invscaling'`` or ``'adaptive'`` the steps already in ``v`` keep
    the rate they were taken at, as in scikit-learn (SGD's form rescales them).
    """

    def _update(self, p, g, state, lr):
        if not self.momentum:
            p -= lr * g
            return
        v = state.get("velocity")
        if v is None:
            v = state["velocity"] = np.zeros_like(p)
        step = lr * g
        v *= self.momentum
        v -= step
        if self.nesterov:
            step = self.momentum * v - step
            p += step
        else:
            p += v


class SklearnAdam(Adam):
    """:class:`~chainrule.optim.Adam` with ``eps`` where scikit-learn's ``AdamOptimizer``
    adds ``epsilon``: to ``sqrt(v)`` before the bias correction (``eps_form``)."""

    eps_form = "sklearn"


class SklearnAdamW(AdamW):
    """:class:`~chainrule.optim.AdamW` with ``eps`` as :class:`SklearnAdam` has it: the
    estimators' ``epsilon`` means the same for ``solver='adamw'`` as for 'adam'."""

    eps_form = "sklearn"


class SklearnOrder:
    """Each epoch's row order as scikit-learn's ``_fit_stochastic`` draws it: the
    previous epoch's order (``arange`` at the start of a fit) shuffled by
    ``random_state.permutation``. :func:`~chainrule.train.fit` calls it as its
    ``shuffle``, so that one ``random_state`` gives scikit-learn's batches."""

    def __init__(self, random_state, n_rows):
        self.random_state, self.order = random_state, np.arange(n_rows)

    def __call__(self, n_rows):
        self.order = self.order[self.random_state.permutation(n_rows)]
        return self.order


def build_optimizer(est):
    """The optimizer ``est.solver`` names, with scikit-learn's hyperparameters."""
    betas = (est.beta_1, est.beta_2)
    if est.solver == "sgd":
        schedule = EpochLR(est.learning_rate_init, est.learning_rate, power_t=est.power_t)
        return SklearnSGD(lr=schedule, momentum=est.momentum,
                          nesterov=bool(est.nesterovs_momentum) and est.momentum > 0)
    cls = SklearnAdam if est.solver == "adam" else SklearnAdamW
    return cls(lr=est.learning_rate_init, betas=betas, eps=est.epsilon)


class EpochRule:
    """scikit-learn's end-of-epoch logic, as a ``train.fit`` callback.

    Parameters
    ----------
    est : BaseMLP
        Its fitted attributes (``n_iter_``, ``t_``, ``loss_curve_``, ...) are updated.
    n_samples : int
        Training rows per epoch (scikit-learn's ``t_`` counts them).
    validation : tuple (X_val, Y_val, sample_weight_val) or None
        The early-stopping rows; their score (accuracy or R^2) is the one watched.
    full_batch_draws : numpy.random.RandomState or None
        The generator of a shuffled full-batch fit: scikit-learn shuffles the one batch
        too, and the permutations it draws move a generator that later fits draw from
        (the caller's, or NumPy's global one). One is drawn per epoch; the rows keep
        their order (the one batch's gradient is the same, to rounding).
    epoch_loss : SklearnEpochLoss or None
        With sample weights and minibatches, the epoch's loss as scikit-learn averages
        it, in place of the History's.
    """

    def __init__(self, est, n_samples, validation, full_batch_draws=None, epoch_loss=None):
        self.est, self.n_samples, self.validation = est, n_samples, validation
        self.full_batch_draws, self.epoch_loss = full_batch_draws, epoch_loss
        self.stopped = False
        self.best = None  # early stopping's best parameters (copies)

    def __call__(self, epoch, logs, model):
        est = self.est
        if self.full_batch_draws is not None:
            self.full_batch_draws.permutation(self.n_samples)
        est.n_iter_ += 1
        est.t_ += self.n_samples
        # NumPy floats, as scikit-learn's (loss_.round(4) works on both)
        est.loss_ = np.float64(logs["loss"] if self.epoch_loss is None
                               else self.epoch_loss.pop())
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        self._count(model)
        schedule = getattr(est.optimizer_, "lr", None)
        if isinstance(schedule, EpochLR):
            schedule.epoch_end(est.t_)
        if est._no_improvement_count > est.n_iter_no_change:
            watched = "Validation score" if self.validation is not None else "Training loss"
            stop = not isinstance(schedule, EpochLR) or schedule.stalled()
            if est.verbose:  # scikit-learn's lines, with what happens next
                # ('adaptive' stops only once its rate is at the floor: "too small")
                adaptive = isinstance(schedule, EpochLR) and schedule.schedule == "adaptive"
                print(f"{watched} did not improve more than tol={est.tol:f} for "
                      f"{est.n_iter_no_change} consecutive epochs." + (
                          f" Setting learning rate to {schedule.current:f}" if not stop
                          else " Learning rate too small. Stopping." if adaptive
                          else " Stopping."))
            if stop:
                self.stopped = True
                return True
            est._no_improvement_count = 0
        return False

    def _count(self, model):
        """scikit-learn's ``_update_no_improvement_count``."""
        est = self.est
        if self.validation is None:
            last = est.loss_curve_[-1]
            est._no_improvement_count = (est._no_improvement_count + 1
                                         if last > est.best_loss_ - est.tol else 0)
            est.best_loss_ = min(est.best_loss_, last)
            return
        score = est.score_outputs(model.infer(self.validation[0], checked=True),
                                  *self.validation[1:])
        self.record_score(score, model)

    def record_score(self, score, model):
        est = self.est
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        last, best = score, est.best_validation_score_
        est._no_improvement_count = (est._no_improvement_count + 1
                                     if not last >= best + est.tol else 0)
        if last > best:
            est.best_validation_score_ = last
            self.best = {k: p.copy() for k, p in model.params.items()}


def run_stochastic(est, model, X, Y, weights, *, validation, batch_size, random_state,
                   incremental):
    """Train ``model`` with ``est.optimizer_`` through :func:`chainrule.train.fit`.

    Returns the History. Non-finite values raise ``ValueError`` (scikit-learn's
    message), except with early stopping, where the best weights seen are kept.
    """
    full_batch_draws = random_state if est.shuffle and batch_size is None else None
    epoch_loss = (SklearnEpochLoss(model, float(est.alpha)) if weights is not None
                  and batch_size is not None else None)
    rule = EpochRule(est, X.shape[0], validation, full_batch_draws, epoch_loss)
    try:
        model.loss.epoch_loss = epoch_loss   # its SklearnValue loss feeds it the batches
        history = fit(model, X, Y, optimizer=est.optimizer_, epochs=1 if incremental
                      else est.max_iter, batch_size=batch_size,
                      shuffle=(SklearnOrder(random_state, X.shape[0]) if est.shuffle
                               and batch_size is not None else False), rng=random_state,
                      progress=False, sample_weight=weights, diagnostics=False,
                      callbacks=[rule], l2=float(est.alpha))
    except TrainingDivergedError as exc:
        if validation is None or rule.best is None:
            raise ValueError(f"{NON_FINITE} ({exc})") from exc
        # scikit-learn scores the diverged epoch as NaN and keeps the best weights; it
        # then warns only at max_iter, here the run stops at once and says why.
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"Training diverged in epoch {est.n_iter_ + 1} (the loss became NaN "
                      f"or infinite; lower learning_rate_init or scale the data); kept "
                      f"the weights of the best validation score, "
                      f"{est.best_validation_score_:g}.", ConvergenceWarning,
                      stacklevel=user_stacklevel(SKLEARN_DIR))
        est.n_iter_ += 1
        est.validation_scores_.append(math.nan)
        est.loss_curve_.append(math.nan)
        est.loss_ = math.nan
        history = None
    finally:
        model.loss.epoch_loss = None
    if history is not None and history.stop_reason == "interrupted":
        # fit rolled back to the last complete epoch; scikit-learn says so the same way.
        warnings.warn("Training interrupted by user.", stacklevel=user_stacklevel(SKLEARN_DIR))
    if validation is not None and rule.best is not None:
        for k, p in model.params.items():
            p[...] = rule.best[k]
    if not incremental and not rule.stopped and est.n_iter_ >= est.max_iter:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and "
                      f"the optimization hasn't converged yet.", ConvergenceWarning,
                      stacklevel=user_stacklevel(SKLEARN_DIR))
    return history


def run_lbfgs(est, model, X, Y, weights):
    """Train ``model`` with :func:`chainrule.lbfgs.minimize_lbfgs`; warn as scikit-learn
    does when it stops before converging."""
    result = minimize_lbfgs(model, X, Y, sample_weight=weights, l2=float(est.alpha),
                            max_iter=est.max_iter, max_fun=est.max_fun, tol=est.tol)
    est.n_iter_ = result.n_iter
    est.loss_ = np.float64(result.loss)
    if not np.isfinite(result.loss) or not all(np.isfinite(p).all()
                                               for p in model.params.values()):
        raise ValueError(NON_FINITE)
    if not result.converged:
        from sklearn.exceptions import ConvergenceWarning

        # scikit-learn's words (its _check_optimize_result)
        message = (f"lbfgs failed to converge after {result.n_iter} iteration(s) "
                   f"(status={result.status}):\n{result.message}\n")
        if result.n_iter == est.max_iter:
            message += (f"\nIncrease the number of iterations to improve the convergence "
                        f"(max_iter={est.max_iter}).")
        message += ("\nYou might also want to scale the data as shown in:\n"
                    "    https://scikit-learn.org/stable/modules/preprocessing.html")
        warnings.warn(message, ConvergenceWarning, stacklevel=user_stacklevel(SKLEARN_DIR))
    return result
