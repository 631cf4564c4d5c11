"""Learning-rate schedules: what an optimizer's ``lr`` may be instead of a number.

A schedule is any function of the optimizer's step number (0 for the first step)
returning a float. The ones here are pure functions of the step, named after the
``torch.optim.lr_scheduler`` classes they equal; bind their settings with
:func:`functools.partial`, e.g. ``Adam(lr=partial(cosine_lr, base_lr=1e-3,
total_steps=1000))``. :class:`EpochLR` is scikit-learn's rate for ``solver='sgd'``,
which changes only between epochs.

(They lived in :mod:`chainrule.optim`, which still re-exports them.)
"""

from __future__ import annotations

import math

from ._validation import check_in_interval, check_positive_float, check_positive_int

__all__ = ["step_lr", "multistep_lr", "exponential_lr", "cosine_lr", "cosine_restarts_lr",
           "onecycle_lr", "onecycle_momentum", "linear_warmup", "invscaling_lr", "EpochLR"]


# Each checks its arguments on every call: a few microseconds against a training step,
# and a typo in a partial() is caught at the first step instead of as a ZeroDivisionError.

def _check_step(step) -> int:
    return check_positive_int(step, "step", minimum=0)


def step_lr(step: int, *, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """``base_lr * gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size``
    steps (``torch.optim.lr_scheduler.StepLR``)."""
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    step_size = check_positive_int(step_size, "step_size")
    gamma = check_positive_float(gamma, "gamma")
    return _scaled(base_lr, gamma, step // step_size)


def multistep_lr(step: int, *, base_lr: float, milestones, gamma: float = 0.1) -> float:
    """``base_lr * gamma ** k``, ``k`` the number of ``milestones`` at or before ``step``:
    multiply by ``gamma`` at each milestone (``torch.optim.lr_scheduler.MultiStepLR``)."""
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    gamma = check_positive_float(gamma, "gamma")
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones must be a sequence of step numbers, got "
                        f"{type(milestones).__name__} {milestones!r}")
    marks = [check_positive_int(m, f"milestones[{i}]", minimum=0)
             for i, m in enumerate(milestones)]
    return _scaled(base_lr, gamma, sum(m <= step for m in marks))


def exponential_lr(step: int, *, base_lr: float, gamma: float) -> float:
    """``base_lr * gamma ** step`` (``torch.optim.lr_scheduler.ExponentialLR``)."""
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    gamma = check_positive_float(gamma, "gamma")
    return _scaled(base_lr, gamma, step)


def _scaled(base_lr: float, gamma: float, times: int) -> float:
    """``base_lr * gamma ** times``; a rate beyond float's range is refused by name
    (Python's power raises a bare OverflowError, the product gives inf)."""
    try:
        rate = base_lr * gamma ** times
    except OverflowError:
        rate = math.inf
    if not math.isfinite(rate):
        raise ValueError(f"the learning rate overflows: {base_lr} * {gamma} ** {times} is "
                         f"beyond float's range (a gamma above 1 grows without bound)")
    return rate


def _finite(rate: float, schedule: str) -> float:
    """``rate``, refused when its arguments pushed it beyond float's range."""
    if not math.isfinite(rate):
        raise ValueError(f"{schedule} gives a learning rate of {rate} for these arguments, "
                         f"beyond float's range: use smaller rates or factors")
    return rate


def cosine_lr(step: int, *, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Half a cosine from ``base_lr`` at step 0 down to ``min_lr`` at ``total_steps``,
    then ``min_lr`` for every later step.

    Up to ``total_steps`` this is ``torch.optim.lr_scheduler.CosineAnnealingLR`` with
    ``T_max=total_steps, eta_min=min_lr``; past it torch's cosine rises again, this one
    stays at the floor (one annealing run, as nanoGPT's schedule).
    """
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    total_steps = check_positive_int(total_steps, "total_steps")
    min_lr = check_positive_float(min_lr, "min_lr", allow_zero=True)
    if min_lr > base_lr:  # the "decay" would rise
        raise ValueError(f"min_lr must be at most base_lr ({base_lr}), got {min_lr}")
    frac = min(step, total_steps) / total_steps
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * frac))


def cosine_restarts_lr(step: int, *, base_lr: float, first_cycle: int, cycle_mult: int = 1,
                       min_lr: float = 0.0) -> float:
    """Cosine decays from ``base_lr`` to ``min_lr``, each restarting at ``base_lr``: the
    first over ``first_cycle`` steps, each next one ``cycle_mult`` times longer (SGDR,
    Loshchilov & Hutter, 2017; ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``
    with ``T_0=first_cycle, T_mult=cycle_mult, eta_min=min_lr``)."""
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    cycle = check_positive_int(first_cycle, "first_cycle")
    cycle_mult = check_positive_int(cycle_mult, "cycle_mult")
    min_lr = check_positive_float(min_lr, "min_lr", allow_zero=True)
    if min_lr > base_lr:
        raise ValueError(f"min_lr must be at most base_lr ({base_lr}), got {min_lr}")
    if cycle_mult == 1:
        step %= cycle
    while step >= cycle:   # cycles that grow geometrically: a few turns
        step -= cycle
        cycle *= cycle_mult
    return _finite(min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * step / cycle)) / 2,
                   "cosine_restarts_lr")


def onecycle_lr(step: int, *, max_lr: float, total_steps: int, pct_start: float = 0.3,
                div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """The 1cycle policy (Smith & Topin, 2019), as
    ``torch.optim.lr_scheduler.OneCycleLR(anneal_strategy='cos')``'s rate: a cosine
    rise from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps``, then a cosine fall to ``max_lr / div_factor / final_div_factor`` at
    the last step. Steps past ``total_steps`` are refused, as by torch. torch also
    cycles the momentum by default: give the optimizer :func:`onecycle_momentum` as its
    momentum (SGD) or first beta (Adam, AdamW) for that."""
    max_lr = check_positive_float(max_lr, "max_lr")
    start_lr = max_lr / check_positive_float(div_factor, "div_factor")
    end_lr = start_lr / check_positive_float(final_div_factor, "final_div_factor")
    return _finite(_one_cycle(step, total_steps, pct_start, start_lr, max_lr, end_lr),
                   "onecycle_lr")


def onecycle_momentum(step: int, *, total_steps: int, pct_start: float = 0.3,
                      base_momentum: float = 0.85, max_momentum: float = 0.95) -> float:
    """The momentum of the 1cycle policy, as ``OneCycleLR(cycle_momentum=True)`` (torch's
    default) cycles it: a cosine fall from ``max_momentum`` to ``base_momentum`` while
    :func:`onecycle_lr` rises, then back while it falls. Give it, bound with the same
    ``total_steps`` and ``pct_start``, as ``SGD(momentum=...)`` or as the first of
    ``Adam(betas=(..., 0.999))``. As in torch, ``base_momentum`` may exceed
    ``max_momentum`` (the cycle then rises while the rate does)."""
    high = check_in_interval(max_momentum, "max_momentum", 0.0, 1.0, high_closed=True)
    low = check_in_interval(base_momentum, "base_momentum", 0.0, 1.0, high_closed=True)
    return _one_cycle(step, total_steps, pct_start, high, low, high)


def _one_cycle(step, total_steps, pct_start, start, peak, end) -> float:
    """The two cosine phases of the 1cycle policy, PyTorch's: from ``start`` to ``peak``
    up to step ``pct_start * total_steps - 1`` (a float), then to ``end`` at the last."""
    step = _check_step(step)
    total_steps = check_positive_int(total_steps, "total_steps")
    pct_start = check_positive_float(pct_start, "pct_start")
    if pct_start >= 1:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start!r}")
    if step >= total_steps:
        raise ValueError(f"step {step} is past the schedule's total_steps={total_steps} "
                         f"(its last step is {total_steps - 1})")
    turn = pct_start * total_steps - 1   # torch's end of the first phase
    if step <= turn:   # (turn 0: the first phase is the first step alone)
        low, high, pct = start, peak, step / turn if turn > 0 else 1.0
    else:
        low, high, pct = peak, end, (step - turn) / (total_steps - 1 - turn)
    return high + (low - high) / 2 * (math.cos(math.pi * pct) + 1)


def linear_warmup(step: int, *, warmup_steps: int, schedule, **kwargs) -> float:
    """Rise linearly to ``schedule(warmup_steps)`` over the first ``warmup_steps``
    steps, then follow ``schedule`` (a number is a constant schedule).

    Step ``s < warmup_steps`` gets ``schedule(warmup_steps) * (s + 1) / warmup_steps``,
    so the first step already moves and the ramp meets the schedule without a jump.
    ``kwargs`` go to ``schedule``. With a constant ``schedule=lr`` this equals
    ``torch.optim.lr_scheduler.LinearLR(start_factor=1/warmup_steps,
    total_iters=warmup_steps - 1)`` on base ``lr``.
    """
    step = _check_step(step)
    warmup_steps = check_positive_int(warmup_steps, "warmup_steps")
    if callable(schedule):
        after = schedule
    else:
        constant = check_positive_float(schedule, "schedule")
        after = lambda _step, **_kw: constant  # noqa: E731
    if step < warmup_steps:
        return after(warmup_steps, **kwargs) * (step + 1) / warmup_steps
    return after(step, **kwargs)


# --- scikit-learn's learning-rate schedules (MLPClassifier / MLPRegressor, solver='sgd') ---
# scikit-learn changes the learning rate only between epochs: 'invscaling' from the
# number of samples seen so far, 'adaptive' when the loss stalls. Its Adam ignores
# ``learning_rate`` and keeps ``learning_rate_init``.
#
# Momentum under a changing rate: scikit-learn keeps the velocity ``v = momentum * v -
# lr * g`` with each step's rate inside it, torch (and :class:`SGD`) keeps ``buf =
# momentum * buf + g`` and multiplies by the current rate. Under a constant rate the
# two give the same steps, Nesterov or not; after the rate changes, :class:`SGD`
# applies the new rate to the momentum accumulated before, scikit-learn lets the old
# rate decay out of it.

def invscaling_lr(step: int, *, base_lr: float, power_t: float = 0.5) -> float:
    """``base_lr / (step + 1) ** power_t``: scikit-learn's ``learning_rate='invscaling'``.

    ``step`` counts training *samples* seen, not optimizer steps: scikit-learn sets
    ``learning_rate_init / (t_ + 1) ** power_t`` at the end of each epoch, ``t_`` being
    the samples seen so far (``n_samples`` per epoch), and keeps that rate for the whole
    next epoch; the first epoch runs at ``base_lr``. :class:`EpochLR` does that
    bookkeeping.
    """
    step = _check_step(step)
    base_lr = check_positive_float(base_lr, "base_lr")
    power_t = check_positive_float(power_t, "power_t", allow_zero=True)
    return base_lr / (step + 1) ** power_t


class EpochLR:
    """scikit-learn's learning rate for ``solver='sgd'``, as an optimizer schedule.

    Pass the object as an optimizer's ``lr`` (``SGD(lr=EpochLR(...))``): it returns the
    current rate whatever the step. Only calls to :meth:`epoch_end` (after each epoch)
    and :meth:`stalled` (the loss stalled) move it: the estimators' ``solver='sgd'`` makes
    them, :func:`~chainrule.train.fit` does not (alone, it trains at ``base_lr``); pass it
    a callback, e.g. ``lambda epoch, logs, model: sched.epoch_end((epoch + 1) * n)`` for
    ``n`` rows. ``fit``'s checkpoints do not store :attr:`current`: set it on resuming.

    Parameters
    ----------
    base_lr : float
        ``learning_rate_init``.
    schedule : {'constant', 'invscaling', 'adaptive'}, default='constant'
        scikit-learn's ``learning_rate``.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    factor : float, default=5.0
        'adaptive' divides the rate by this when the loss stalls.
    min_lr : float, default=1e-6
        'adaptive' stops training when a stall finds the rate at or below this.

    Attributes
    ----------
    current : float
        The rate the next optimizer step uses (save it to resume a run).
    """

    def __init__(self, base_lr: float, schedule: str = "constant", *, power_t: float = 0.5,
                 factor: float = 5.0, min_lr: float = 1e-6):
        self.base_lr = check_positive_float(base_lr, "base_lr")
        if schedule not in ("constant", "invscaling", "adaptive"):
            raise ValueError(f"schedule must be one of ['adaptive', 'constant', "
                             f"'invscaling'], got {schedule!r}")
        self.schedule = schedule
        self.power_t = check_positive_float(power_t, "power_t", allow_zero=True)
        self.factor = check_positive_float(factor, "factor")
        if self.factor <= 1:
            raise ValueError(f"factor must be > 1 (the rate is divided by it), got {factor!r}")
        self.min_lr = check_positive_float(min_lr, "min_lr", allow_zero=True)
        self.current = self.base_lr

    def __call__(self, step: int) -> float:
        """The current rate; ``step`` (the optimizer's) is not used."""
        return self.current

    def epoch_end(self, samples_seen: int) -> None:
        """Call after each epoch with the training samples seen so far (all epochs,
        scikit-learn's ``t_``); 'invscaling' sets the next epoch's rate from it."""
        samples_seen = check_positive_int(samples_seen, "samples_seen", minimum=0)
        if self.schedule == "invscaling":
            self.current = invscaling_lr(samples_seen, base_lr=self.base_lr,
                                         power_t=self.power_t)

    def stalled(self) -> bool:
        """The loss has stalled: return True when training should stop.

        'constant' and 'invscaling' always stop. 'adaptive' stops when the rate is
        already ``<= min_lr``; otherwise it divides the rate by ``factor`` and returns
        False (the caller then resets its count of epochs without improvement), as
        scikit-learn's ``SGDOptimizer.trigger_stopping``.
        """
        if self.schedule != "adaptive" or self.current <= self.min_lr:
            return True
        self.current /= self.factor
        return False

    def __repr__(self):
        return (f"EpochLR(base_lr={self.base_lr!r}, schedule={self.schedule!r}, "
                f"current={self.current!r})")
