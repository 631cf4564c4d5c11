"""Gradient checking: hand-written ``backward`` against central finite differences.

Every gradient in chainrule is written by hand, so every gradient can be wrong. The
functions here perturb one entry at a time by ``+eps`` and ``-eps``, evaluate the
loss twice and compare ``(f(x + eps) - f(x - eps)) / (2 eps)`` with what ``backward``
returned.

How the error is measured
-------------------------
For one array with analytic gradient ``a`` and numerical gradient ``n`` the error is

    ``max_i |a_i - n_i| / max(max_i |a_i| + max_i |n_i|, tiny)``

the worst discrepancy of any single entry, relative to the size of that array's
gradient. A purely entrywise ratio ``|a_i - n_i| / (|a_i| + |n_i|)`` is dominated by
entries whose true gradient is nearly zero, where the finite difference is all
rounding noise (about ``1e-16 / eps`` in float64), and would flag correct code; a
2-norm ratio dilutes a wrong entry among many right ones. Scaling the worst entry by
the largest gradient of the array avoids both. ``tiny`` (the smallest normal float64)
only guards against 0/0 when both gradients are exactly zero, which counts as agreement.
:func:`check_gradients` raises that floor to 1e-3: a network parameter whose gradient
is exactly zero (a bias right before a batch normalisation) has finite differences of
pure rounding noise, which must not count as a disagreement of order one.

With ``eps=1e-6`` in float64, correct gradients of smooth functions give errors
around ``1e-9``; a bug gives errors of order one. Use float64: in float32 the
rounding noise of the finite difference alone is about ``1e-1 / (2 eps)`` times the
machine epsilon and the check says nothing. :func:`check_gradients` therefore works on
a float64 copy of a model whose parameters are float32.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    as_float_array,
    check_positive_float,
    check_positive_int,
    check_rng,
    shape_str,
)
from .layers import (
    ELU,
    GELU,
    Affine,
    Identity,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)

__all__ = ["numerical_gradient", "relative_error", "GradCheckResult", "check_gradients",
           "check_layer_gradients", "compare_layers", "check_layer_factory"]

_TINY = np.finfo(np.float64).tiny
#: check_gradients compares gradients below this in absolute terms: a parameter whose
#: gradient is exactly zero (a bias right before a batch normalisation) gets finite
#: differences of pure rounding noise, ~1e-10 * |loss| with eps 1e-6.
_NETWORK_FLOOR = 1e-3
#: Built-in layers that compute the same in training and evaluation mode.
_SAME_IN_BOTH_MODES = (Affine, Identity, ReLU, LeakyReLU, Tanh, Sigmoid, GELU, SiLU, ELU,
                       Softplus, PReLU)


def relative_error(analytic, numeric, floor: float = _TINY) -> float:
    """Worst entrywise discrepancy relative to the gradient's scale (see module notes).

    ``max|a - n| / max(max|a| + max|n|, floor)``; 0.0 when both are all zeros. A
    ``floor`` above the default compares gradients smaller than it in absolute terms.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic and numeric must have the same shape, got "
                         f"{shape_str(a.shape)} and {shape_str(n.shape)}")
    if a.size == 0:
        return 0.0
    scale = float(np.max(np.abs(a)) + np.max(np.abs(n)))
    return float(np.max(np.abs(a - n)) / max(scale, floor))


def numerical_gradient(f, array, eps: float = 1e-6, *, indices=None) -> np.ndarray:
    """Central finite differences of the scalar function ``f()`` with respect to ``array``.

    ``array`` is perturbed *in place*, one entry at a time, and each entry is put
    back to its exact original value (the saved value is written back, not
    ``x + eps - eps``, which need not round to ``x``), so ``f`` should read ``array``
    rather than a copy of it.

    Parameters
    ----------
    f : callable
        ``f() -> float``, evaluated twice per checked entry.
    array : ndarray of float
        The array to differentiate with respect to; modified during the call and
        restored bit for bit before it returns (also if ``f`` raises).
    eps : float, default=1e-6
        Step size.
    indices : iterable of tuple, optional
        Only these entries (multi-indices); the others are left 0 in the result.

    Returns
    -------
    ndarray, float64, same shape as ``array``
    """
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"array must be a floating-point numpy.ndarray (perturbed in place), "
                        f"got {type(array).__name__}"
                        + (f" of dtype {array.dtype}" if isinstance(array, np.ndarray) else ""))
    if not array.flags.writeable:
        raise ValueError("array must be writeable: it is perturbed in place")
    eps = check_positive_float(eps, "eps")
    if np.finfo(array.dtype).eps > np.finfo(np.float64).eps:
        warnings.warn(f"array is {array.dtype}: its rounding (and that of f in "
                      f"{array.dtype}) swamps a finite difference of eps={eps:g}; check "
                      f"gradients in float64, as torch.autograd.gradcheck asks",
                      UserWarning, stacklevel=2)
    grad = np.zeros(array.shape, dtype=np.float64)
    if indices is None:
        indices = np.ndindex(*array.shape)
    for idx in indices:
        idx = tuple(int(i) for i in np.atleast_1d(idx)) if array.ndim else ()
        old = array[idx].copy()
        try:
            array[idx] = old + eps
            # The steps taken, as rounded to the array's dtype (x + eps is not exact).
            step = float(array[idx]) - float(old)
            f_plus = float(f())
            array[idx] = old - eps
            step += float(old) - float(array[idx])
            f_minus = float(f())
        finally:
            array[idx] = old
        if step == 0:
            raise ValueError(f"eps={eps:g} does not change array{list(idx)} = {old} in "
                             f"{array.dtype}: give a larger eps"
                             + ("" if array.dtype == np.float64 else " (or float64 arrays)"))
        grad[idx] = (f_plus - f_minus) / step
    return grad


@dataclass
class GradCheckResult:
    """Outcome of a gradient check.

    Attributes
    ----------
    errors : dict of str to float
        Relative error (see :func:`relative_error`) for each checked array.
    analytic, numeric : dict of str to ndarray
        The two gradients, for inspection (entries not sampled are 0 in both).
    worst : float
        The largest of ``errors``.
    worst_name : str
        The array where it occurred.
    """

    errors: dict = field(default_factory=dict)
    analytic: dict = field(default_factory=dict, repr=False)
    numeric: dict = field(default_factory=dict, repr=False)

    @property
    def worst(self) -> float:
        """The largest error; NaN (a NaN in a gradient) when any error is NaN."""
        return self.errors[self.worst_name] if self.errors else 0.0

    @property
    def worst_name(self):
        # A NaN error ranks above every number: Python's max would skip it unless it
        # came first, and a NaN gradient would pass.
        return max(self.errors, key=lambda k: (math.isnan(self.errors[k]), self.errors[k])) \
            if self.errors else None

    def passed(self, tol: float = 1e-6) -> bool:
        """True when every error is below ``tol`` (a NaN is not)."""
        return self.worst < tol

    def worst_entry(self, name) -> str:
        """Where ``name``'s two gradients differ most: the entry's index, both values
        and their ratio (8 means the analytic one is 8 times too large, 0.125 that it
        is 8 times too small, -1 a wrong sign)."""
        a, n = self.analytic[name], self.numeric[name]
        if a.size == 0:
            return "no entries"
        idx = np.unravel_index(int(np.argmax(np.abs(a - n))), a.shape)
        av, nv = float(a[idx]), float(n[idx])
        ratio = f"{av / nv:.4g}" if nv != 0 else "inf" if av != 0 else "nan"
        where = "[" + ", ".join(str(int(i)) for i in idx) + "]"
        return f"worst entry {where}: analytic {av:.6g} vs numeric {nv:.6g} (ratio {ratio})"

    def __str__(self):
        lines = [f"{name}: {err:.3e}" for name, err in self.errors.items()]
        return "\n".join(lines + [f"worst: {self.worst:.3e} ({self.worst_name})"])


def _sample_indices(shape, sample, random):
    size = int(np.prod(shape))
    if sample is None or sample >= size:
        return None
    flat = random.choice(size, size=sample, replace=False)
    return [np.unravel_index(i, shape) for i in np.sort(flat)]


def check_gradients(model, X, Y, *, eps: float = 1e-6, sample=None, rng=None,
                    sample_weight=None) -> GradCheckResult:
    """Compare ``model.loss_and_grads`` with central finite differences, in
    evaluation mode and, when the network's layers may behave differently there, in
    training mode too.

    Evaluation mode (Dropout off) is a deterministic function of the parameters.
    Training mode is checked unless every layer is a built-in one that is the same in
    both modes (Affine and the activations): a Dropout layer, or any layer of your
    own, such as a BatchNorm whose training-mode backward differs from its evaluation
    one. There, every layer's random generator is put back before each evaluation
    (one mask for the whole check) and the buffers the training passes update
    (running statistics) are restored afterwards. The model's parameters are
    perturbed in place and restored exactly; a model whose parameters are not float64
    is checked on a float64 copy and left untouched.

    The check holds at the model's current parameters only: a backward that leaves
    out a factor which is 1 there (a scale initialised to 1) passes until training
    moves it. :func:`chainrule.testing.check_layer`, which draws random parameters, is
    the test of a layer of your own.

    Parameters
    ----------
    model : Network
        Anything with a ``params`` dict and ``loss_and_grads(X, Y, sample_weight,
        training=...)``.
    X, Y : array_like
        A (small) batch; its inputs are checked by the model.
    eps : float, default=1e-6
    sample : int, optional
        Check at most this many randomly chosen entries of each parameter (all
        when None); the cost is two loss evaluations per entry.
    rng : None, int or numpy.random.Generator
        Chooses the sampled entries.
    sample_weight : array_like, optional
        Passed on to the loss.

    Returns
    -------
    GradCheckResult
        One error per parameter name (evaluation mode), and one per ``"<name>
        (training)"`` when training mode is checked.
    """
    if not (isinstance(getattr(model, "params", None), dict)
            and callable(getattr(model, "loss_and_grads", None))):
        raise TypeError(f"model must be a chainrule Network (a params dict and "
                        f"loss_and_grads), got {type(model).__name__}")
    eps = check_positive_float(eps, "eps")
    if sample is not None:
        sample = check_positive_int(sample, "sample")
    random = check_rng(np.random.default_rng() if rng is None else rng)
    if any(p.dtype != np.float64 for p in model.params.values()):
        model = copy.deepcopy(model)
        for name in model.params:
            model.params[name] = model.params[name].astype(np.float64)
    kwargs = {"training": False}
    if hasattr(model, "check_XY"):
        # A Network checks (and casts) the inputs once here instead of at every one of
        # the thousands of evaluations below.
        X, Y = model.check_XY(X, Y)
        if sample_weight is not None:
            sample_weight = as_float_array(sample_weight, "sample_weight", ndim=1)
            if sample_weight.shape[0] != X.shape[0]:
                raise ValueError(f"sample_weight must have one entry per row of X "
                                 f"({X.shape[0]}), got {shape_str(sample_weight.shape)}")
        kwargs["checked"] = True

    result = GradCheckResult()
    X_given = X.copy() if type(X) is np.ndarray else None
    _check_mode(model, X, Y, sample_weight, kwargs, eps, sample, random, result, "")
    _check_unchanged(X_given, X)
    layers = [layer for layer, _ in getattr(model, "layers", [])]
    if any(type(layer) not in _SAME_IN_BOTH_MODES for layer in layers):
        buffers = {k: b.copy() for k, b in getattr(model, "buffers", {}).items()}
        freezers = [RngFreezer(layer) for layer in layers]
        try:
            _check_mode(model, X, Y, sample_weight, dict(kwargs, training=True), eps, sample,
                        random, result, " (training)", freezers)
        finally:
            for freeze in freezers:
                freeze()
            for k, b in buffers.items():
                model.buffers[k][...] = b
    return result


def _check_unchanged(X_given, X) -> None:
    """A layer that writes into its input changes the caller's ``X``: every later use of
    it, in the check and after, sees other data."""
    if X_given is not None and not np.array_equal(X_given, X, equal_nan=True):
        raise ValueError("a layer changed X in place (its forward or backward writes into "
                         "the array it was given): every later use of X sees other data; "
                         "check_layer on each layer of your own says which")


def _check_mode(model, X, Y, sample_weight, kwargs, eps, sample, random, result, suffix,
                freezers=()):
    """One mode of :func:`check_gradients`: every parameter, errors named
    ``name + suffix`` in ``result``."""
    def loss():
        for freeze in freezers:
            freeze()
        return model.loss_and_grads(X, Y, sample_weight, **kwargs)[0]

    for freeze in freezers:
        freeze()
    _, grads = model.loss_and_grads(X, Y, sample_weight, **kwargs)
    grads = {k: np.array(v, dtype=np.float64, copy=True) for k, v in grads.items()}
    for name, p in model.params.items():
        idx = _sample_indices(p.shape, sample, random)
        numeric = numerical_gradient(loss, p, eps, indices=idx)
        analytic = grads[name]
        if idx is not None:
            mask = np.zeros(p.shape, dtype=bool)
            mask[tuple(np.array(idx).T)] = True
            analytic = np.where(mask, analytic, 0.0)
        result.analytic[name + suffix] = analytic
        result.numeric[name + suffix] = numeric
        result.errors[name + suffix] = relative_error(analytic, numeric, _NETWORK_FLOOR)


class RngFreezer:
    """Restores a layer's random generator before every forward, so a stochastic
    layer (Dropout) draws the same mask each time the check evaluates it.

    Calling the freezer puts the generator in ``layer.rng`` (a ``Generator`` or a
    ``RandomState``) back into the state it had when the freezer was made; a layer
    without one is left alone. Called with another layer, it puts that layer's
    generator into the same state (when it is of the same kind), so that two layers
    draw the same numbers.
    """

    def __init__(self, layer):
        rng = getattr(layer, "rng", None)
        self.layer = layer
        if isinstance(rng, np.random.Generator):
            self.state = copy.deepcopy(rng.bit_generator.state)
        elif isinstance(rng, np.random.RandomState):
            self.state = rng.get_state()
        else:
            self.state = None

    def __call__(self, layer=None):
        if self.state is None:
            return
        rng, own = getattr(layer or self.layer, "rng", None), self.layer.rng
        if isinstance(rng, np.random.Generator) and isinstance(own, np.random.Generator) \
                and type(rng.bit_generator) is type(own.bit_generator):
            rng.bit_generator.state = copy.deepcopy(self.state)
        elif isinstance(rng, np.random.RandomState) and isinstance(own, np.random.RandomState):
            rng.set_state(self.state)


# The name tests/test_models.py imports (kept until it uses RngFreezer).


def check_layer_gradients(layer, inputs, *params, eps: float = 1e-6, rng=0,
                          names=None) -> GradCheckResult:
    """Finite-difference check of one layer's ``backward`` on a random projection.

    The scalar checked is ``sum(layer.forward(inputs, *params) * R)`` with ``R`` a
    fixed random array of the output's shape: its gradient with respect to the
    output is ``R`` itself, so ``layer.backward(R)`` must return its gradient with
    respect to the inputs and to each parameter. A random ``R`` (rather than ones)
    makes every output entry count with a different weight, so a transposed or
    misplaced gradient cannot cancel out.

    A layer with an ``rng`` attribute (Dropout) has its generator state restored
    before every forward, so each evaluation sees the same random mask.

    Parameters
    ----------
    layer : object with ``forward(inputs, *params)`` and ``backward(d_out)``
    inputs : ndarray of float
        Perturbed in place and restored exactly; pass float64.
    *params : ndarray of float
        The layer's parameters, in ``forward``'s order; also perturbed and restored.
    eps : float, default=1e-6
    rng : None, int or numpy.random.Generator, default=0
        Source of ``R``.
    names : sequence of str, optional
        Names for the parameters in the result (e.g. the layer's ``param_names``).

    Returns
    -------
    GradCheckResult
        Errors named ``"inputs"``, then ``names`` (or ``"params[0]"``, ``"params[1]"``,
        ...). The inputs are skipped when ``backward`` returns ``None`` for them (Affine with
        ``compute_input_grad = False``).
    """
    arrays = [inputs, *params]
    for i, a in enumerate(arrays):
        name = "inputs" if i == 0 else f"params[{i - 1}]"
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point numpy.ndarray (it is perturbed "
                            f"in place), got {type(a).__name__}")
    eps = check_positive_float(eps, "eps")
    freeze = RngFreezer(layer)

    freeze()
    out = np.asarray(layer.forward(inputs, *params))
    R = check_rng(rng).standard_normal(out.shape).astype(out.dtype)

    def f():
        freeze()
        return float(np.sum(np.asarray(layer.forward(inputs, *params), dtype=np.float64) * R))

    freeze()
    layer.forward(inputs, *params)
    back = layer.backward(R)
    grads = list(back) if params else [back]
    if len(grads) != len(arrays):
        raise ValueError(f"backward returned {len(grads)} gradients, expected {len(arrays)} "
                         f"(inputs and {len(params)} parameters)")
    grads = [None if g is None else np.array(g, dtype=np.float64, copy=True) for g in grads]

    labels = ["inputs"] + (list(names) if names is not None and len(names) == len(params)
                           else [f"params[{i}]" for i in range(len(params))])
    result = GradCheckResult()
    for name, a, g in zip(labels, arrays, grads, strict=True):
        if g is None:
            continue
        if g.shape != a.shape:
            raise ValueError(f"backward's gradient for {name} has shape {shape_str(g.shape)}, "
                             f"expected {shape_str(a.shape)}")
        numeric = numerical_gradient(f, a, eps)
        result.analytic[name] = g
        result.numeric[name] = numeric
        result.errors[name] = relative_error(g, numeric)
    return result


def check_layer_factory(factory, name: str) -> None:
    """``TypeError`` unless ``factory`` builds a layer when called (a class, a lambda),
    rather than being a layer itself."""
    if not callable(factory) or callable(getattr(factory, "forward", None)) \
            and not isinstance(factory, type):
        raise TypeError(f"{name} must build a fresh layer on each call (the class, or e.g. "
                        f"lambda: {type(factory).__name__}(...)), got the layer {factory!r} "
                        f"itself")


def compare_layers(layer, reference, inputs, *params, rng=0, tol: float = 1e-12) -> list:
    """What differs between ``layer`` and ``reference``, a layer of the same function.

    Finite differences cannot judge a layer where its function has no derivative
    (ReLU at 0, a max-pool's tie): any subgradient passes them. Compared with a
    reference on inputs that hold such points, the layer must make the reference's
    choice, as a course's reference solution fixes one.

    Parameters
    ----------
    layer, reference : layers
        Each run once, ``forward(inputs, *params)`` then ``backward(d_out)``.
    inputs : ndarray
    *params : ndarray
        The parameters both layers' ``forward`` take after the inputs.
    rng : None, int or numpy.random.Generator, default=0
        Source of ``d_out``, one random array of the output's shape.
    tol : float, default=1e-12
        Largest relative (and absolute) difference taken as agreement.

    Returns
    -------
    list of str
        The output's difference, or else each gradient's (in ``backward``'s order,
        named after the reference's ``param_names``), with the first differing entry;
        empty when everything agrees.
    """
    tol = check_positive_float(tol, "tol")
    if not callable(getattr(reference, "forward", None)):
        raise TypeError(f"reference must be a layer (with forward and backward), got "
                        f"{type(reference).__name__}")
    names = ["inputs", *getattr(reference, "param_names", ())]
    # Each layer its own copy: one that writes into its input changes no one else's.
    out = layer.forward(np.array(inputs, copy=True), *params)
    ref_out = _reference_call(reference.forward, np.array(inputs, copy=True), *params)
    inputs = np.asarray(inputs)
    if np.shape(out) != np.shape(ref_out) or not np.allclose(out, ref_out, rtol=tol, atol=tol):
        return [_first_difference("the output", out, ref_out, inputs, tol)]
    d_out = check_rng(rng).standard_normal(np.shape(out))
    grads, ref_grads = (list(g) if isinstance(g, (tuple, list)) else [g] for g in
                        (layer.backward(d_out.copy()),
                         _reference_call(reference.backward, d_out.copy())))
    if len(grads) != len(ref_grads):
        return [f"backward returned {len(grads)} arrays, the reference's {len(ref_grads)} "
                f"({', '.join(f'd_{n}' for n in names[:len(ref_grads)])})"]
    problems = []
    for name, g, r in zip(names, grads, ref_grads, strict=False):
        if np.shape(g) != np.shape(r) or not np.allclose(g, r, rtol=tol, atol=tol):
            problems.append(_first_difference(f"d_{name}", g, r,
                                              inputs if name == "inputs" else None, tol))
    return problems


def _reference_call(method, *args):
    """The reference's ``forward``/``backward``, its failure named as the reference's
    (float arrays, as a layer's results are)."""
    try:
        result = method(*args)
        items = result if isinstance(result, (tuple, list)) else [result]
        for item in items:
            if item is not None and np.asarray(item).dtype.kind not in "fiu":
                raise TypeError(f"returned a {np.asarray(item).dtype} array")
    except Exception as exc:  # noqa: BLE001 - any failure of the reference is its own
        raise ValueError(f"the reference's {method.__name__} failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    return result


def _first_difference(what: str, got, want, inputs, tol: float) -> str:
    """Where ``got`` first differs from ``want`` (with the input there, when they have
    its shape), as a sentence."""
    if np.shape(got) != np.shape(want):
        return (f"{what} has shape {shape_str(np.shape(got))}, the reference's "
                f"{shape_str(np.shape(want))}")
    bad = np.argwhere(~np.isclose(got, want, rtol=tol, atol=tol))
    at = tuple(int(i) for i in bad[0])
    where = ""
    if inputs is not None and np.shape(inputs) == np.shape(got):
        where = f" (input {float(inputs[at])!r}{': a kink?' if inputs[at] == 0 else ''})"
    return (f"{what} differs from the reference's at {at}{where}: {float(got[at])!r} "
            f"against {float(want[at])!r}, in {len(bad)} of {np.size(got)} entries")
