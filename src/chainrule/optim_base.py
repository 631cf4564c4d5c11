"""The optimizers' base class: what every update rule shares.

:class:`Optimizer` checks that the gradients match the parameters before touching any
of them, counts steps, resolves the learning rate for the current step, clips the
gradients when asked and keeps per-parameter state keyed by the parameter's name. The
update rules themselves (SGD, RMSprop, Adagrad, Adam, AdamW) are in
:mod:`chainrule.optim`, which re-exports everything here: a subclass is written as
``class MyRule(chainrule.optim.Optimizer)`` and supplies ``_update``.

Every optimizer can clip the gradients before its update, as a PyTorch loop calls
``torch.nn.utils.clip_grad_norm_`` (``clip_norm``: the norm of all the gradients
together) or ``clip_grad_value_`` (``clip_value``: each entry) between ``backward()``
and ``step()``; weight decay is added after the clipping, as there.
"""

from __future__ import annotations

import functools
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
from .torch_names import TorchOptimizerHints

__all__ = ["CLIP_EPS", "NON_NEGATIVE_STATE", "Optimizer", "clip_gradients", "step_checked"]

#: Optimizer state that is never negative: second moments, sums of squares, step counts.
NON_NEGATIVE_STATE = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "step")

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


def _is_parameters(value) -> bool:
    """Whether a learning rate is rather a torch-style collection of parameters."""
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, np.ndarray))


def _lr_first(cls) -> bool:
    """Whether ``cls(...)``'s first argument is ``lr`` (the library's optimizers; a
    subclass of the user's may take other settings first)."""
    names = list(inspect.signature(cls.__init__).parameters)
    return len(names) > 1 and names[1] == "lr"


def _takes_no_parameters(cls) -> str:
    return (f"{cls.__name__} takes no parameters, unlike a torch.optim optimizer: build it "
            f"from its settings (e.g. {cls.__name__}(lr=0.01)) and pass the params dict with "
            f"its gradients to step(params, grads), or the model to fit")


class Optimizer(TorchOptimizerHints):
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

    def __new__(cls, *args, **kwargs):
        # torch.optim's order, SGD(model.parameters(), lr=0.1), fails in __init__'s
        # binding ("multiple values for argument 'lr'") before its own check can speak.
        if args and _is_parameters(args[0]) and "lr" in kwargs and _lr_first(cls):
            raise TypeError(_takes_no_parameters(cls))
        return super().__new__(cls)

    def __init__(self, lr, *, clip_norm=None, clip_value=None) -> None:
        if _is_parameters(lr):
            raise TypeError(_takes_no_parameters(type(self)))
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

    def scheduled(self, value, name: str, *, one: bool = True) -> float:
        """``value`` (a momentum, a beta), or for a schedule of the step its value at the
        next step, checked in [0, 1] ([0, 1) unless ``one``): what lets
        :func:`~chainrule.schedules.onecycle_momentum` cycle it, as PyTorch's
        ``OneCycleLR`` cycles an optimizer's momentum."""
        if not callable(value):
            return value
        return check_in_interval(value(self.steps), f"{name} schedule at step {self.steps}",
                                 0.0, 1.0, high_closed=one)

    def _begin_step(self) -> None:
        """Read this step's scheduled settings (a momentum), before anything changes; the
        base class has none."""

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
        self._begin_step()
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
        self._check_state(params)   # (once an optimizer binds: after load_state_dict too)
        moved = sorted(k for k, p in params.items() if self.state.get(k) and
                       (ref := owners.get(k)) is not None and ref() is not p)
        if moved:
            warnings.warn(f"{type(self).__name__} holds state (its step count {self.steps}) "
                          f"of {', '.join(moved)} from other arrays than these, e.g. another "
                          f"model's: it carries over to them. Build one optimizer per model, "
                          f"as in PyTorch, or call reset() first.", UserWarning, stacklevel=3)
        self._owners = {**owners, **{k: weakref.ref(p) for k, p in params.items()}}

    def _check_state(self, params) -> None:
        """``ValueError`` unless each parameter's state (a loaded ``state_dict``'s too)
        fits it: float arrays of its shape, finite, second moments and sums >= 0, step
        counts integers >= 0; before any update, so that none happens half-way."""
        for name, entries in self.state.items():
            p = params.get(name)
            for key, v in entries.items() if p is not None else ():
                label = f"state[{name!r}][{key!r}]"
                if key == "step":   # (PyTorch's is a whole float)
                    if (np.shape(v) != () or np.asarray(v).dtype.kind not in "iuf"
                            or not np.isfinite(v) or not v >= 0 or float(v) != int(v)):
                        raise ValueError(f"{label} must be a step count, a whole number "
                                         f">= 0, got {v!r}")
                elif (not isinstance(v, np.ndarray) or v.dtype.kind != "f"
                      or v.shape != p.shape):
                    raise ValueError(f"{label} must be a float array of shape "
                                     f"{shape_str(p.shape)} like params[{name!r}], got "
                                     f"{type(v).__name__} {getattr(v, 'dtype', '')} "
                                     f"{shape_str(np.shape(v))}")
                elif not all_finite(v) or (key in NON_NEGATIVE_STATE and (v < 0).any()):
                    raise ValueError(f"{label} must be finite"
                                     f"{' and >= 0' if key in NON_NEGATIVE_STATE else ''}")

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
        bad = next((k for k, st in state_dict["state"].items() if not isinstance(st, dict)),
                   None)
        if bad is not None:
            raise TypeError(f"state_dict['state'][{bad!r}] must be a dict of arrays, got "
                            f"{type(state_dict['state'][bad]).__name__}")
        state = {k: {s: np.array(v, copy=True) for s, v in st.items()}
                 for k, st in state_dict["state"].items()}
        # Checked against the parameters at the next step, before it changes anything.
        self.steps, self.state, self._owners = steps, state, {}   # bound at the next step

    def hyperparameters(self) -> dict:
        """Constructor arguments (the learning rate and a momentum only when they are
        numbers, schedules being functions; a clip only when set, so that a run without
        one is described as before clipping existed)."""
        # (a tuple holding a schedule, Adam's betas, keeps its numbers: None in its place)
        found = {k: tuple(None if callable(x) else x for x in v) if isinstance(v, tuple) else v
                 for k, v in vars(self).items() if k not in ("steps", "state")
                 and not k.startswith("_") and not callable(v)}
        clips = {k: found.pop(k) for k in ("clip_norm", "clip_value")}  # last, as in the
        return {**found, **{k: v for k, v in clips.items() if v is not None}}  # signatures

    def __getstate__(self):
        # Weak references do not pickle or copy: a copy binds at its first step.
        return {**vars(self), "_owners": {}}

    def __repr__(self):
        # (hyperparameters() leaves schedules out: not JSON) the learning rate's first
        scheduled = [k for k, v in vars(self).items() if not k.startswith("_")
                     and _holds_schedule(v)]
        args = [f"{k}={v!r}" for k, v in self.hyperparameters().items() if k not in scheduled]
        for k in sorted(scheduled, key=lambda k: k != "lr", reverse=True):
            v = getattr(self, k)
            text = (_schedule_text(v) if callable(v) else
                    f"({', '.join(_schedule_text(x) if callable(x) else repr(x) for x in v)})")
            args.insert(0, f"{k}={text}")
        return f"{type(self).__name__}({', '.join(args)})"

    def momentum_schedule(self):
        """The optimizer's scheduled momentum (SGD's ``momentum``, Adam's first beta)
        when it is a schedule, else None: what a checkpoint fingerprints with the rate."""
        value = getattr(self, "momentum", None)
        if not callable(value):
            value = getattr(self, "betas", (None,))[0]
        return value if callable(value) else None


def _holds_schedule(value) -> bool:
    """A schedule (a callable of the step), or a tuple holding one (Adam's betas)."""
    return callable(value) or (isinstance(value, tuple) and any(map(callable, value)))


def _schedule_text(lr) -> str:
    """A schedule as Python that rebuilds it: ``partial(cosine_lr, base_lr=0.1, ...)``
    for a :func:`functools.partial` of a named function, else its own repr."""
    name = getattr(getattr(lr, "func", None), "__name__", None)
    if not isinstance(lr, functools.partial) or name is None:
        return repr(lr)
    args = [repr(a) for a in lr.args] + [f"{k}={v!r}" for k, v in lr.keywords.items()]
    return f"partial({', '.join([name, *args])})"
