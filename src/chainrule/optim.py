"""Optimizers that update a params dict in place.

The base class :class:`Optimizer` owns the bookkeeping: it checks that the gradients
match the parameters before touching any of them, counts steps, resolves the
learning rate for the current step and keeps per-parameter state keyed by the
parameter's name. A subclass writes only its update rule, ``_update``.

Hyperparameter names and meanings follow ``torch.optim``: ``SGD(weight_decay=...)``
adds ``weight_decay * p`` to the gradient (L2), ``AdamW`` shrinks the weights directly.

A learning rate is a positive float or a schedule: any function of the step number
(0 for the first step) returning a float, such as those of :mod:`chainrule.schedules`
(re-exported here), e.g. ``Adam(lr=partial(cosine_lr, base_lr=1e-3,
total_steps=1000))``.

Every optimizer can clip the gradients before its update, as a PyTorch loop calls
``torch.nn.utils.clip_grad_norm_`` (``clip_norm``: the norm of all the gradients
together) or ``clip_grad_value_`` (``clip_value``: each entry) between ``backward()``
and ``step()``; weight decay is added after the clipping, as there.
"""

from __future__ import annotations

import inspect
import math
import warnings
import weakref

import numpy as np

from ._validation import (
    all_finite,
    check_in_interval,
    check_positive_float,
    check_positive_int,
    raise_non_finite,
    shape_str,
)
from .schedules import EpochLR, cosine_lr, exponential_lr, invscaling_lr, linear_warmup, step_lr

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "OPTIMIZERS", "make_optimizer",
           "get_optimizer", "clip_gradients", "step_checked",
           # the schedules, for code that imports them from here
           "step_lr", "exponential_lr", "cosine_lr", "linear_warmup", "invscaling_lr",
           "EpochLR"]

#: Added to the norm before dividing by it, as ``torch.nn.utils.clip_grad_norm_`` does.
CLIP_EPS = 1e-6


def clip_gradients(grads: dict, *, clip_norm=None, clip_value=None) -> dict:
    """The gradients clipped as PyTorch clips them, as new arrays (``grads`` is unchanged).

    Parameters
    ----------
    grads : dict of str to ndarray
    clip_norm : float, optional
        The largest L2 norm of all the gradients taken together (one vector): above it
        every gradient is multiplied by ``clip_norm / (norm + 1e-6)``, as
        ``torch.nn.utils.clip_grad_norm_(params, clip_norm)``. The norm is summed in
        float64 (PyTorch's CPU kernels accumulate float32 in double too).
    clip_value : float, optional
        Every entry is clipped to ``[-clip_value, clip_value]``, as
        ``torch.nn.utils.clip_grad_value_``.

    Returns
    -------
    dict
        ``grads`` itself when nothing is clipped (no limit, or the norm is under it).
    """
    if clip_value is not None:
        return {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}
    if clip_norm is None:
        return grads
    norm = math.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for g in grads.values()))
    coef = clip_norm / (norm + CLIP_EPS)
    if coef >= 1.0:  # (torch multiplies by the clamped 1.0: the same numbers)
        return grads
    # A NaN or infinite norm gives NaN or zero gradients, as in torch; fit then reports
    # the divergence.
    return {k: g * g.dtype.type(coef) for k, g in grads.items()}


def step_checked(optimizer, params: dict, grads: dict) -> None:
    """``optimizer.step(params, grads)`` for a caller that answers for the gradients'
    finiteness (``fit``, ``Network.step``): the library's own step skips its scan
    (``checked=True``); a subclass's or another object's own ``step`` is called as
    written, with the two arguments."""
    if type(optimizer).step is Optimizer.step:
        optimizer.step(params, grads, checked=True)
    else:
        optimizer.step(params, grads)


class Optimizer:
    """Base class: loops over the params dict, subclasses supply ``_update``.

    State is kept by parameter name and belongs to the arrays it was built for: stepping
    another model's arrays under the same names warns (build one optimizer per model,
    as with ``torch.optim``, or call :meth:`reset`).

    Parameters
    ----------
    lr : float or callable
        Learning rate, or a schedule ``lr(step) -> float``.
    clip_norm, clip_value : float, optional
        Clip the gradients before each update (:func:`clip_gradients`): their joint L2
        norm to ``clip_norm``, or each entry to ``[-clip_value, clip_value]``. At most one.
    """

    def __init__(self, lr, *, clip_norm=None, clip_value=None) -> None:
        if hasattr(lr, "__iter__") and not isinstance(lr, (str, bytes, np.ndarray)):
            raise TypeError(f"{type(self).__name__} takes no parameters, unlike a "
                            f"torch.optim optimizer: build it from its settings (e.g. "
                            f"{type(self).__name__}(lr=0.01)) and pass the params dict with "
                            f"its gradients to step(params, grads), or the model to fit")
        if callable(lr):
            self.lr = lr
        else:
            self.lr = check_positive_float(lr, "lr")
        if clip_norm is not None and clip_value is not None:
            raise ValueError(f"give clip_norm or clip_value, not both (got clip_norm="
                             f"{clip_norm!r}, clip_value={clip_value!r})")
        self.clip_norm = None if clip_norm is None else check_positive_float(clip_norm,
                                                                             "clip_norm")
        self.clip_value = None if clip_value is None else check_positive_float(clip_value,
                                                                               "clip_value")
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._owners: dict = {}   # name -> weak reference to the array its state is for

    def current_lr(self) -> float:
        """The learning rate the next call to :meth:`step` will use."""
        if not callable(self.lr):
            return self.lr
        return check_positive_float(self.lr(self.steps), f"lr schedule at step {self.steps}",
                                    allow_zero=True)

    def step(self, params: dict, grads: dict, *, checked: bool = False) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, same shapes).

        Every gradient is checked (and cast to its parameter's dtype, so float32 stays
        float32) before the first parameter changes: when a gradient is missing, extra,
        of the wrong shape, not numeric or not finite, a parameter is read-only, or the
        schedule gives a bad learning rate, nothing is changed, neither ``params`` nor
        the optimizer's state. ``checked=True`` skips the finiteness scan, for callers
        that made it (``Network.step``) or answer for it (``fit`` rolls a non-finite
        epoch back).
        """
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(f"params and grads must be dicts, got {type(params).__name__} "
                            f"and {type(grads).__name__}")
        if params.keys() != grads.keys():
            missing = sorted(map(str, set(params) - set(grads)))
            extra = sorted(map(str, set(grads) - set(params)))
            raise ValueError(f"grads must have the same keys as params; missing {missing}, "
                             f"extra {extra}")
        ready = {}
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{name!r}] must be a floating-point ndarray (it is "
                                f"updated in place), got {type(p).__name__} "
                                f"{getattr(p, 'dtype', '')}".rstrip())
            if not p.flags.writeable:
                raise ValueError(f"params[{name!r}] must be a writable array (it is updated "
                                 f"in place), got a read-only one")
            g = grads[name]
            if type(g) is not np.ndarray:  # (np.shape and np.asarray cost ~1 us each)
                g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}] must have shape {shape_str(p.shape)} "
                                 f"like params[{name!r}], got {shape_str(g.shape)}")
            if g.dtype != p.dtype:
                if g.dtype.kind not in "biuf":
                    raise TypeError(f"grads[{name!r}] must be a real numeric array, got dtype "
                                    f"{g.dtype}")
                g = g.astype(p.dtype)
            if not checked and not all_finite(g):
                raise_non_finite(g, f"grads[{name!r}]")
            ready[name] = g
        lr = self.current_lr()
        if self.clip_norm is not None or self.clip_value is not None:
            ready = clip_gradients(ready, clip_norm=self.clip_norm, clip_value=self.clip_value)
        self._check_owners(params)
        self._apply(params, ready, lr)
        self.steps += 1

    def _check_owners(self, params) -> None:
        """Warn once when a parameter's state was built for another array than the one
        now under its name (one optimizer reused for a new model): keyed by name, the
        state would carry over to it, where a ``torch.optim`` optimizer is bound to its
        model's parameters. Parameters new to the optimizer just join."""
        owners = self._owners
        if all((ref := owners.get(k)) is not None and ref() is p for k, p in params.items()):
            return
        moved = sorted(k for k, p in params.items() if self.state.get(k) and
                       (ref := owners.get(k)) is not None and ref() is not p)
        if moved:
            warnings.warn(f"{type(self).__name__} holds state (its step count {self.steps}) "
                          f"of {', '.join(moved)} from other arrays than these, e.g. another "
                          f"model's: it carries over to them. Build one optimizer per model, "
                          f"as in PyTorch, or call reset() first.", UserWarning, stacklevel=3)
        self._owners = {**owners, **{k: weakref.ref(p) for k, p in params.items()}}

    def reset(self) -> None:
        """Forget the step count and the per-parameter state: as a new optimizer."""
        self.steps, self.state, self._owners = 0, {}, {}

    def _apply(self, params: dict, grads: dict, lr: float) -> None:
        """Every parameter's update, one ``_update`` each (checked gradients)."""
        for name, p in params.items():
            self._update(p, grads[name], self.state.setdefault(name, {}), lr)

    def _update(self, p, g, state, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Step count and per-parameter state (copies), e.g. for a checkpoint."""
        return {"steps": self.steps,
                "state": {k: {s: np.array(v, copy=True) for s, v in st.items()}
                          for k, st in self.state.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (copies; nothing changes on error)."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"steps", "state"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict must be a dict with keys ['state', 'steps'], got {got}")
        steps = check_positive_int(state_dict["steps"], "state_dict['steps']", minimum=0)
        if not isinstance(state_dict["state"], dict):
            raise TypeError(f"state_dict['state'] must be a dict of dicts, got "
                            f"{type(state_dict['state']).__name__}")
        state = {k: {s: np.array(v, copy=True) for s, v in st.items()}
                 for k, st in state_dict["state"].items()}
        self.steps, self.state, self._owners = steps, state, {}   # bound at the next step

    def hyperparameters(self) -> dict:
        """Constructor arguments (the learning rate only when it is a number; a clip only
        when set, so that a run without one is described as before clipping existed)."""
        found = {k: v for k, v in vars(self).items() if k not in ("steps", "state")
                 and not k.startswith("_") and not (k == "lr" and callable(v))}
        clips = {k: found.pop(k) for k in ("clip_norm", "clip_value")}  # last, as in the
        return {**found, **{k: v for k, v in clips.items() if v is not None}}  # signatures

    def __getstate__(self):
        # Weak references do not pickle or copy: a copy binds at its first step.
        return {**vars(self), "_owners": {}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


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
        self.momentum = check_in_interval(momentum, "momentum", 0.0, 1.0, high_closed=True)
        self.dampening = check_in_interval(dampening, "dampening", 0.0, 1.0, high_closed=True)
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={self.momentum!r}, dampening={self.dampening!r}")
        self.nesterov = nesterov

    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= self.momentum
                # (1 - 0) * g == g exactly: skip a pass and a temporary when undamped
                buf += (1 - self.dampening) * g if self.dampening else g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= lr * g


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
        self.betas = (check_in_interval(betas[0], "betas[0]", 0.0, 1.0),
                      check_in_interval(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = check_positive_float(eps, "eps")
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)

    def _apply(self, params, grads, lr):
        beta1, beta2 = self.betas
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


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name, **kwargs) -> Optimizer:
    """Build the optimizer called ``name`` ('sgd', 'adam', 'adamw') from keyword arguments.

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
