"""Optimizers that update a params dict in place: the update rules.

Each rule is an :class:`Optimizer` subclass (the base class, in
:mod:`chainrule.optim_base` and re-exported here, owns the bookkeeping: checks, step
count, learning rate, clipping, per-parameter state) that writes only its update,
``_update`` for one parameter or ``_apply`` for all of them at once.

Hyperparameter names and meanings follow ``torch.optim``: ``SGD(weight_decay=...)``
adds ``weight_decay * p`` to the gradient (L2), ``AdamW`` shrinks the weights directly.

A learning rate is a positive float or a schedule: any function of the step number
(0 for the first step) returning a float, such as those of :mod:`chainrule.schedules`
(re-exported here), e.g. ``Adam(lr=partial(cosine_lr, base_lr=1e-3,
total_steps=1000))``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from ._validation import check_in_interval, check_positive_float, shape_str
from .optim_base import CLIP_EPS, Optimizer, clip_gradients, step_checked
from .schedules import (
    EpochLR,
    cosine_lr,
    cosine_restarts_lr,
    exponential_lr,
    invscaling_lr,
    linear_warmup,
    multistep_lr,
    onecycle_lr,
    onecycle_momentum,
    step_lr,
)

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "OPTIMIZERS",
           "make_optimizer", "get_optimizer", "clip_gradients", "step_checked", "CLIP_EPS",
           # the schedules, for code that imports them from here
           "step_lr", "multistep_lr", "exponential_lr", "cosine_lr", "cosine_restarts_lr",
           "onecycle_lr", "onecycle_momentum", "linear_warmup", "invscaling_lr", "EpochLR"]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    Per step, as ``torch.optim.SGD``::

        g = g + weight_decay * p
        buf = g                                  (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        g = g + momentum * buf if nesterov else buf
        p = p - lr * g

    With the defaults this is ``p = p - lr * g``, bit for bit the homework's update.
    """

    def __init__(self, lr=1e-2, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                 *, clip_norm=None, clip_value=None):
        super().__init__(lr, clip_norm=clip_norm, clip_value=clip_value)
        # a schedule of the step (onecycle_momentum) is checked at each step
        self.momentum = momentum if callable(momentum) else check_in_interval(
            momentum, "momentum", 0.0, 1.0, high_closed=True)
        self.dampening = check_in_interval(dampening, "dampening", 0.0, 1.0, high_closed=True)
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={self.momentum!r}, dampening={self.dampening!r}")
        self.nesterov = nesterov
        self._momentum = self.momentum   # this step's (a schedule's value at it)

    def _begin_step(self):
        self._momentum = self.scheduled(self.momentum, "momentum")
        if self.nesterov and self._momentum == 0:
            raise ValueError(f"nesterov=True needs momentum > 0, got 0 from the momentum "
                             f"schedule at step {self.steps}")

    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self._momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= self._momentum
                # (1 - 0) * g == g exactly: skip a pass and a temporary when undamped
                buf += (1 - self.dampening) * g if self.dampening else g
            g = g + self._momentum * buf if self.nesterov else buf
        p -= lr * g


def _state_array(state: dict, key: str, p, fill=0.0):
    """``state[key]``, created as an array like ``p`` filled with ``fill`` if missing."""
    arr = state.get(key)
    if arr is None:
        arr = state[key] = np.full_like(p, fill)
    return arr


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e): each entry's step divided by a running root mean
    square of its gradients, as ``torch.optim.RMSprop``.

    Per step::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2                 (square_avg, from 0)
        a = alpha * a + (1 - alpha) * g                   (grad_avg, centered only)
        s = sqrt(v - a^2) + eps if centered else sqrt(v) + eps
        buf = momentum * buf + g / s                      (momentum_buffer, from 0)
        p = p - lr * buf          (p = p - lr * g / s without momentum)

    ``centered=True`` divides by an estimate of the gradient's standard deviation
    instead of its root mean square. (``v - a^2`` is never negative in exact arithmetic;
    a rounding below zero is taken as zero, where PyTorch would give NaN.)
    """

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, clip_norm=None, clip_value=None):
        super().__init__(lr, clip_norm=clip_norm, clip_value=clip_value)
        self.alpha = check_in_interval(alpha, "alpha", 0.0, 1.0)
        self.eps = check_positive_float(eps, "eps")
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        self.momentum = check_in_interval(momentum, "momentum", 0.0, 1.0, high_closed=True)
        if not isinstance(centered, bool):
            raise TypeError(f"centered must be True or False, got {centered!r}")
        self.centered = centered

    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = _state_array(state, "square_avg", p)
        v *= self.alpha
        v += (1 - self.alpha) * (g * g)
        if self.centered:
            a = _state_array(state, "grad_avg", p)
            a *= self.alpha
            a += (1 - self.alpha) * g
            s = v - a * a
            np.maximum(s, 0, out=s)
            np.sqrt(s, out=s)
        else:
            s = np.sqrt(v)
        s += self.eps
        if self.momentum:
            buf = _state_array(state, "momentum_buffer", p)
            buf *= self.momentum
            buf += g / s
            p -= lr * buf
        else:
            np.divide(g, s, out=s)
            p -= lr * s


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011): each entry's step divided by the root of
    the sum of all its squared gradients so far, as ``torch.optim.Adagrad``.

    Per step ``t = 1, 2, ...``::

        g = g + weight_decay * p
        sum = sum + g^2                                   (from initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    Entries with large past gradients take ever smaller steps; the rate never grows
    back (RMSprop forgets old gradients instead).
    """

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, *, clip_norm=None, clip_value=None):
        super().__init__(lr, clip_norm=clip_norm, clip_value=clip_value)
        self.lr_decay = check_positive_float(lr_decay, "lr_decay", allow_zero=True)
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        self.initial_accumulator_value = check_positive_float(
            initial_accumulator_value, "initial_accumulator_value", allow_zero=True)
        self.eps = check_positive_float(eps, "eps")

    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        step = state.get("step")
        if step is None:   # a 0-d array, updated in place: checkpoints store it with the sums
            step = state["step"] = np.zeros((), np.int64)
        step += 1
        total = _state_array(state, "sum", p, self.initial_accumulator_value)
        total += g * g
        s = np.sqrt(total)
        s += self.eps
        np.divide(g, s, out=s)
        p -= lr / (1 + (int(step) - 1) * self.lr_decay) * s


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay added to the gradient.

    Per step ``t = 1, 2, ...``, as ``torch.optim.Adam``::

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    ``amsgrad=True`` (Reddi et al., 2018) divides by the largest ``v`` so far instead,
    ``v_max = max(v_max, v)``, kept as the state ``max_exp_avg_sq`` as in PyTorch.
    A subclass with ``eps_form = 'sklearn'`` (the estimators') adds ``eps`` to ``sqrt(v)``
    before its bias correction, as scikit-learn's ``AdamOptimizer`` adds ``epsilon``.
    """

    decoupled = False
    eps_form = "pytorch"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 amsgrad=False, clip_norm=None, clip_value=None):
        super().__init__(lr, clip_norm=clip_norm, clip_value=clip_value)
        if not isinstance(amsgrad, bool):
            raise TypeError(f"amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = amsgrad
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (betas[0] if callable(betas[0])   # (a schedule: checked at each step)
                      else check_in_interval(betas[0], "betas[0]", 0.0, 1.0),
                      check_in_interval(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = check_positive_float(eps, "eps")
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        self._beta1 = self.betas[0]   # this step's (a schedule's value at it)

    def _begin_step(self):
        self._beta1 = self.scheduled(self.betas[0], "betas[0]", one=False)

    def _apply(self, params, grads, lr):
        beta1, beta2 = self._beta1, self.betas[1]
        for group in self._groups(params):
            grads_g = [grads[k] for k in group.names]
            outs = group.scratch_views
            if self.weight_decay and self.decoupled:
                for p in group.params:
                    p *= 1 - lr * self.weight_decay
            elif self.weight_decay:
                grads_g = [g + self.weight_decay * p
                           for g, p in zip(grads_g, group.params, strict=True)]
            group.steps += 1
            t = int(group.steps[0])
            # The formula above in one scratch array, in place: the same operations in
            # the same order as for one parameter at a time, so the same bits.
            m, v, tmp = group.m, group.v, group.scratch
            for g, out in zip(grads_g, outs, strict=True):
                np.multiply(g, 1 - beta1, out=out)
            m *= beta1
            m += tmp                                   # m = beta1 m + (1 - beta1) g
            for g, out in zip(grads_g, outs, strict=True):
                np.multiply(g, g, out=out)
            tmp *= 1 - beta2
            v *= beta2
            v += tmp                                   # v = beta2 v + (1 - beta2) g^2
            if self.amsgrad:
                np.maximum(group.v_max, v, out=group.v_max)
            np.sqrt(group.v_max if self.amsgrad else v, out=tmp)
            sklearn = self.eps_form == "sklearn"  # (its lr_t holds both corrections)
            if not sklearn:
                tmp /= math.sqrt(1 - beta2 ** t)
            tmp += self.eps                            # denominator
            np.divide(m, tmp, out=tmp)
            tmp *= lr * (math.sqrt(1 - beta2 ** t) if sklearn else 1) / (1 - beta1 ** t)
            for p, update in zip(group.params, outs, strict=True):
                p -= update

    def hyperparameters(self) -> dict:
        """As :meth:`Optimizer.hyperparameters`, ``amsgrad`` only when on: a run without
        it is described (checkpoints, repr) as before the option existed."""
        found = super().hyperparameters()
        return found if found["amsgrad"] else {k: v for k, v in found.items()
                                               if k != "amsgrad"}

    def _groups(self, params) -> list[_Moments]:
        """The flat moments of ``params``, rebuilt from ``state`` when it no longer
        holds their views (new parameters, ``load_state_dict``, a replaced entry)."""
        flat = getattr(self, "_flat", None)
        if flat is None or list(params) != flat[0] or not all(
                g.holds(params, self.state) for g in flat[1]):
            kinds: dict = {}  # (dtype, step) -> its groups, as [names, entries]
            for name, p in params.items():
                groups = kinds.setdefault(
                    (p.dtype, int(self.state.get(name, {}).get("step", 0))), [])
                if not groups or groups[-1][1] + p.size > _Moments.MAX_ENTRIES:
                    groups.append([[], 0])
                groups[-1][0].append(name)
                groups[-1][1] += p.size
            # One scratch array per dtype, as long as its largest group and shared by
            # them (updated one after the other): one temporary's memory, as before.
            sizes: dict = {}
            for (dtype, _), groups in kinds.items():
                sizes[dtype] = max([sizes.get(dtype, 0)] + [size for _, size in groups])
            scratch = {dtype: np.empty(size, dtype) for dtype, size in sizes.items()}
            flat = self._flat = (list(params), [
                _Moments(names, params, self.state, scratch[dtype], self.amsgrad)
                for (dtype, _), groups in kinds.items() for names, _ in groups])
        return flat[1]

    def __getstate__(self):
        # The moments travel once, in ``state``; the flat arrays are rebuilt at the first
        # step (a deep copy would turn their views into independent arrays).
        return {k: v for k, v in super().__getstate__().items() if k != "_flat"}


class _Moments:
    """Adam's moments for parameters of one dtype and step count, as flat arrays.

    One update is then about a dozen NumPy calls over all the parameters together,
    plus three per parameter, where one parameter at a time took a dozen per
    parameter (the idea of PyTorch's ``foreach`` path): 57 -> 39 us a step for the
    four arrays of a 64-100-10 network. Each parameter's ``state`` entries
    (``exp_avg``, ``exp_avg_sq``, ``step``) are views into these arrays, so ``state``,
    ``state_dict`` and checkpoints keep their per-parameter layout.

    A group holds at most :attr:`MAX_ENTRIES` entries, or one larger parameter alone:
    the calls are what costs for small arrays, while a large one gains nothing from
    company and each pass over it already leaves the cache. (On a 784-1024-1024-10
    network the update took 0.91-1.15x the time of one parameter at a time, run to
    run, with one group or with these: where NumPy places the big arrays moves it by
    as much.)
    """

    #: 256 KiB of float32 per array: the arrays of one pass fit a 1 MiB L2 cache.
    MAX_ENTRIES = 2**16

    def __init__(self, names, params, state, scratch, amsgrad=False):
        self.names = names
        self.params = [params[k] for k in names]
        ends = np.cumsum([p.size for p in self.params])
        self.m, self.v = (np.zeros(ends[-1], self.params[0].dtype) for _ in range(2))
        self.v_max = np.zeros(ends[-1] if amsgrad else 0, self.params[0].dtype)
        self.scratch = scratch[:ends[-1]]  # shared with the other groups of this dtype
        self.steps = np.zeros(len(names), np.int64)

        def views(flat):
            return [flat[end - p.size:end].reshape(p.shape)
                    for end, p in zip(ends, self.params, strict=True)]
        self.m_views, self.v_views = views(self.m), views(self.v)
        self.scratch_views = views(self.scratch)
        self.step_views = [self.steps[i:i + 1].reshape(()) for i in range(len(names))]
        self.states = [{"exp_avg": m, "exp_avg_sq": v, "step": step} for m, v, step
                       in zip(self.m_views, self.v_views, self.step_views, strict=True)]
        if amsgrad:  # PyTorch's name for it
            for st, v_max in zip(self.states, views(self.v_max), strict=True):
                st["max_exp_avg_sq"] = v_max
        for name, p, new in zip(names, self.params, self.states, strict=True):
            old = state.get(name, {})
            if "exp_avg" in old:
                # (a state from before amsgrad was on has no max_exp_avg_sq: it starts at 0)
                moments = [k for k in new if k != "step" and k in old]
                bad = next((k for k in moments if np.shape(old[k]) != p.shape), None)
                if bad is not None:
                    raise ValueError(f"state[{name!r}][{bad!r}] has shape "
                                     f"{shape_str(np.shape(old[bad]))}, expected "
                                     f"{shape_str(p.shape)} like the parameter")
                for key in moments + ["step"]:
                    new[key][...] = old[key]
        state.update(zip(names, self.states, strict=True))

    def holds(self, params, state) -> bool:
        """Whether ``params`` and ``state`` still hold the arrays these views serve."""
        return all(params[k] is p and state.get(k) is st and p.shape == m.shape
                   and st.get("exp_avg") is m and st.get("exp_avg_sq") is v
                   and st.get("step") is t
                   for k, p, st, m, v, t in zip(self.names, self.params, self.states,
                                                self.m_views, self.v_views, self.step_views,
                                                strict=True))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Before the Adam step the weights shrink directly: ``p = p * (1 - lr * weight_decay)``.
    """

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 amsgrad=False, clip_norm=None, clip_value=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad=amsgrad, clip_norm=clip_norm,
                         clip_value=clip_value)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad,
                                           "adam": Adam, "adamw": AdamW}


def make_optimizer(name, **kwargs) -> Optimizer:
    """Build the optimizer called ``name`` (a key of :data:`OPTIMIZERS`: 'sgd', 'rmsprop',
    'adagrad', 'adam', 'adamw') from keyword arguments.

    The one place where a name becomes an optimizer (the command line, the estimators
    and :func:`~chainrule.train.fit` all come here). Arguments given as ``None`` are
    left out, so the class keeps its own default (AdamW's ``weight_decay`` is 0.01,
    Adam's 0). An :class:`Optimizer` instance is returned as it is.

    Raises
    ------
    TypeError
        For anything but a name or an optimizer (a class is told to call itself).
    ValueError
        For an unknown name, or an argument the optimizer does not take (e.g.
        ``momentum`` for Adam), or a bad value (checked by the optimizer).
    """
    if isinstance(name, Optimizer):
        return name
    if not isinstance(name, str):
        got = (f"the class {name.__name__}: call it, {name.__name__}(...)"
               if isinstance(name, type) else type(name).__name__)
        raise TypeError(f"optimizer must be a chainrule.optim.Optimizer or one of "
                        f"{', '.join(map(repr, sorted(OPTIMIZERS)))}, got {got}")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    cls = OPTIMIZERS[name]
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = inspect.signature(cls).parameters
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(f"optimizer {name!r} does not take {unknown}; it takes "
                         f"{sorted(accepted)}")
    return cls(**kwargs)


#: The name the package used first; the same function.
get_optimizer = make_optimizer
