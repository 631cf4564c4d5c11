"""The layer-contract kit: check that a layer, built-in or your own, keeps the contract.

A chainrule layer has ``forward(inputs, *params)`` that caches what it needs and
``backward(d_out)`` that returns ``d_inputs`` (no parameters) or
``(d_inputs, *d_params)`` (in ``forward``'s parameter order). :func:`check_layer`
runs a layer through every promise of that contract and either returns a report of
what it measured or raises :class:`LayerContractError` listing every broken promise.

Example
-------
>>> from chainrule.testing import check_layer
>>> from chainrule.layers import Affine, Tanh
>>> report = check_layer(Tanh, (4, 3))
>>> report = check_layer(Affine, (4, 3), [(3, 5), (5,)], output_shape=(4, 5))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import check_positive_float, check_rng, shape_str
from .contract_modes import check_determinism, check_eval_contract, check_mode_switch
from .explain import layer_label
from .gradcheck import RngFreezer, check_layer_factory, check_layer_gradients, compare_layers

__all__ = ["LayerContractError", "LayerReport", "check_layer"]


class LayerContractError(AssertionError):
    """A layer broke the layer contract; the message lists every failed check.

    It derives from ``AssertionError`` so that test runners (pytest, unittest) show
    it as a test failure rather than as an error in the test itself.
    """


@dataclass
class LayerReport:
    """What :func:`check_layer` measured on a layer that passed.

    Attributes
    ----------
    layer : str
        ``repr`` of the layer checked.
    output_shape : tuple
    gradient_errors : dict of str to float
        Finite-difference relative error per array (``inputs``, ``params[0]``, ...).
    checks : list of str
        The names of the checks that ran, in order.
    """

    layer: str
    output_shape: tuple
    gradient_errors: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)

    @property
    def worst_gradient_error(self) -> float:
        return max(self.gradient_errors.values(), default=0.0)


def _away_from_zero(x, margin=1e-2):
    # Piecewise-linear layers (ReLU, LeakyReLU) have a kink at 0 where finite
    # differences are meaningless; keep every input at least ``margin`` from it.
    small = np.abs(x) < margin
    x[small] = np.where(x[small] < 0, -1, 1) * (margin + np.abs(x[small]))
    return x


def _split(back, n_params):
    """backward's return value as a list [d_inputs, *d_params], or an error string."""
    if n_params == 0:
        if isinstance(back, tuple):
            return None, (f"backward of a layer without parameters must return d_inputs "
                          f"(an array), got a tuple of {len(back)}")
        return [back], None
    if not isinstance(back, tuple) or len(back) != n_params + 1:
        got = f"a tuple of {len(back)}" if isinstance(back, tuple) else type(back).__name__
        return None, (f"backward must return (d_inputs, {n_params} parameter gradients), "
                      f"got {got}")
    return list(back), None


def check_layer(layer_factory, input_shape, param_shapes=(), *, output_shape=None, rng=0,
                tol: float = 1e-6, reference=None) -> LayerReport:
    """Check that a layer keeps the chainrule layer contract.

    The checks, each on fresh random float64 data (and float32 for the dtype check):

    1. ``forward`` returns an array of the expected shape and dtype and leaves its
       inputs and parameters unchanged;
    2. ``backward`` returns ``d_inputs`` (a layer without parameters) or
       ``(d_inputs, *d_params)`` with the shapes of the arrays they belong to
       (``d_inputs`` may be ``None``, as Affine's with ``compute_input_grad`` off),
       and leaves ``d_out`` unchanged;
    3. ``backward`` on a fresh layer, before any ``forward``, raises ``RuntimeError``;
    4. central finite differences in float64 agree with ``backward`` (worst relative
       error below ``tol``, measured as in :mod:`chainrule.gradcheck`);
    5. float32 inputs and parameters give float32 outputs and gradients;
    6. ``forward``/``backward`` are deterministic: repeating them gives bit-identical
       results, and ``backward`` uses the *latest* ``forward`` (no stale cache): a used
       layer given new data matches a fresh layer given that data.

    Check 4 runs a second time at another batch size, one that no other axis has, so
    that a sum or a mean over the wrong axis cannot hide behind a square batch; inputs
    of magnitude ~1e3 must give a finite output and gradient ("large inputs": e.g. a
    softmax without its max-shift overflows).

    A layer with a ``training`` switch is checked in both modes: checks 4 and 6 and
    "large inputs" in training and in evaluation mode (after one training forward, so
    that running statistics are not at their initial values), and the contract of the
    modes: in evaluation mode each output row depends on its own input row only ("eval
    rows independent": a prediction must not depend on the rest of the batch) and the
    buffers the layer declares (``buffer_names``) do not change ("eval state"); and
    flipping ``training`` between ``forward`` and ``backward`` does not change what
    ``backward`` returns ("mode switch": backward differentiates the forward that ran).
    A layer without the switch is checked once, with the evaluation-mode contract.
    Parameters are named by the layer's ``param_names`` when it has one per parameter;
    a failed finite-difference check names the worst entry, both values and their ratio.

    A layer that draws random numbers from an ``rng`` attribute (Dropout) has the
    generator's state restored before each forward, so checks 4 and 6 see one mask.
    Inputs are kept at least 1e-2 away from zero so that piecewise-linear layers are
    not probed at their kink; a ``reference`` judges the kinks and ties instead
    (:func:`~chainrule.gradcheck.compare_layers`).

    Parameters
    ----------
    layer_factory : callable
        ``layer_factory() -> layer``; a class with a no-argument constructor works,
        or e.g. ``lambda: Dropout(0.3, rng=0)``. Called several times, and must build
        identical layers each time (seed any random generator it gives them).
    input_shape : tuple of int
        Shape of the inputs to try, e.g. ``(N, D)``.
    param_shapes : sequence of tuple of int
        Shapes of the parameters ``forward`` takes after the inputs, in order.
    output_shape : tuple of int, optional
        Expected shape of the output. Defaults to ``input_shape`` for a layer without
        parameters; for a layer with parameters only the batch size (first axis) is
        checked unless it is given.
    rng : None, int or numpy.random.Generator, default=0
        Source of the random test data.
    tol : float, default=1e-6
        Largest acceptable finite-difference error.
    reference : callable, optional
        ``reference() -> layer`` computing the same function (e.g. ``chainrule.ReLU``):
        the layer must also match it on inputs with zeros and ties.

    Returns
    -------
    LayerReport
        When every check passes.

    Raises
    ------
    LayerContractError
        When any check fails; the message lists every failure found. Checks that
        depend on a failed one are skipped (a layer whose ``forward`` crashes is not
        asked for gradients).
    """
    tol = check_positive_float(tol, "tol")
    if reference is not None:
        check_layer_factory(reference, "reference")
    run = _ContractRun(layer_factory, check_rng(rng), input_shape, param_shapes, output_shape)
    layer, out, arrays = _check_forward(run)
    d_out = _check_backward(run, layer, out, arrays)
    _check_backward_before_forward(run, d_out)
    errors: dict = {}
    for mode in run.modes:
        run.mode = mode
        errors.update(_check_finite_differences(run, tol))
        _check_large_inputs(run)
        if mode is not True and not getattr(layer, "rows_interact_in_eval", False):
            check_eval_contract(run)
    run.mode = run.modes[0]
    _check_float32(run)
    for mode in run.modes:
        run.mode = mode
        check_determinism(run, out.shape)
    if len(run.modes) == 2:
        check_mode_switch(run)
    if reference is not None:
        _check_reference(run, reference)
    run.finish()
    return LayerReport(layer=run.name, output_shape=tuple(out.shape),
                       gradient_errors=errors, checks=run.checks)


def _shape(shape, name: str, *, scalar: bool = False) -> tuple:
    """A shape argument of :func:`check_layer`: a sequence of integers >= 1 (``()`` too
    when ``scalar``: a parameter may be one number)."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} must be a tuple of integers, got {type(shape).__name__} "
                        f"{shape!r}")
    dims = tuple(shape)
    what = "a parameter's shape" if scalar else "a batch's shape, rows first"
    if not (dims or scalar) or any(isinstance(d, bool) or not isinstance(d, (int, np.integer))
                                   or d < 1 for d in dims):
        raise ValueError(f"{name} must be a tuple of integers >= 1 ({what}), got {shape!r}")
    return tuple(int(d) for d in dims)


def _expected_output_shape(layer, input_shape, n_params):
    """The output shape a layer says it gives (its ``output_shape`` method, the batch
    axis put back); without one, the input's shape for a layer without parameters,
    else None (not checked)."""
    if callable(getattr(layer, "output_shape", None)):
        try:
            return (input_shape[0], *layer.output_shape(input_shape[1:]))
        except Exception:  # noqa: BLE001 - the forward check will name the problem
            return None
    return input_shape if n_params == 0 else None


class _ContractRun:
    """What the steps of one :func:`check_layer` call share: the layer factory, the
    shapes, the source of random data, and the failures found so far."""

    def __init__(self, layer_factory, random, input_shape, param_shapes,
                 output_shape) -> None:
        self.layer_factory = layer_factory
        self.random = random
        self.input_shape = _shape(input_shape, "input_shape")
        if not isinstance(param_shapes, (list, tuple)):
            raise TypeError(f"param_shapes must be a list of shapes, one per parameter, got "
                            f"{type(param_shapes).__name__} {param_shapes!r}")
        self.param_shapes = [_shape(shape, f"param_shapes[{i}]", scalar=True)
                             for i, shape in enumerate(param_shapes)]
        self.n_params = len(self.param_shapes)
        self.labels = ["inputs"] + [f"params[{i}]" for i in range(self.n_params)]
        self.failures: list[str] = []
        self.checks: list[str] = []
        self.name = "layer"
        check_layer_factory(layer_factory, "layer_factory")
        probe = layer_factory()
        if output_shape is None:
            output_shape = _expected_output_shape(probe, self.input_shape, self.n_params)
        self.output_shape = (None if output_shape is None
                             else _shape(output_shape, "output_shape"))
        self._draws: RngFreezer | None = None   # the state every layer of the check starts from
        own = tuple(getattr(probe, "param_names", ()) or ())
        if len(own) == self.n_params:
            self.labels = ["inputs", *own]
        #: True/False: training/evaluation mode; None for a layer without the switch.
        self.modes: list = [True, False] if hasattr(probe, "training") else [None]
        self.mode = self.modes[0]
        self.warm_seed = int(self.random.integers(2**31))

    @property
    def grad_names(self):
        return [f"d_{label}" for label in self.labels]

    @property
    def mode_text(self) -> str:
        return " (eval)" if self.mode is False else ""

    def data(self, dtype=np.float64, n_rows=None):
        """Fresh inputs (kept off zero) and parameters, drawn in that order."""
        shape = self.input_shape if n_rows is None else (n_rows, *self.input_shape[1:])
        x = _away_from_zero(self.random.standard_normal(shape))
        ps = [self.random.standard_normal(s) for s in self.param_shapes]
        return x.astype(dtype), [p.astype(dtype) for p in ps]

    def start_draws(self, layer) -> None:
        """Put the generator of ``layer`` (a Dropout's ``rng``) in the state the check's
        first layer had: every layer the check builds then draws the same masks, also
        when each one has a generator of its own, or all share NumPy's global one."""
        if self._draws is None:
            self._draws = RngFreezer(layer)
        self._draws(layer)

    def new_layer(self):
        """A layer from the factory in the current mode (its generator at the check's
        starting state). An evaluation-mode layer first runs one training forward (the
        same data every time), so that its running statistics are not at their
        initial values."""
        layer = self.layer_factory()
        self.start_draws(layer)
        if self.mode is False:
            warm = np.random.default_rng(self.warm_seed)
            x = _away_from_zero(warm.standard_normal(self.input_shape))
            layer.training = True
            layer.forward(x, *[warm.standard_normal(s) for s in self.param_shapes])
        if self.mode is not None:
            layer.training = self.mode
        return layer

    def fail(self, check, message):
        self.failures.append(f"[{check}] {message}")

    def finish(self):
        """Raise LayerContractError listing every failure so far, if there is one."""
        if self.failures:
            raise LayerContractError(f"{self.name} breaks the layer contract:\n  "
                                     + "\n  ".join(self.failures))


def _check_forward(run):
    """Check 1: forward's output shape and dtype, and that it leaves its arguments alone.

    Returns the layer, its output and ``(x, ps, x0, ps0)``: the arguments it was given
    and pristine copies of them, for check 2.
    """
    layer = run.new_layer()
    run.name = layer_label(layer)
    freeze = RngFreezer(layer)
    x, ps = run.data()
    x0, ps0 = x.copy(), [p.copy() for p in ps]
    run.checks.append("forward")
    try:
        freeze()
        out = layer.forward(x, *ps)
    except Exception as exc:  # noqa: BLE001 - any crash is a contract failure
        run.fail("forward", f"forward(inputs {shape_str(run.input_shape)}"
                 + "".join(f", {shape_str(s)}" for s in run.param_shapes)
                 + f") raised {type(exc).__name__}: {exc}")
        run.finish()
    if not isinstance(out, np.ndarray):
        run.fail("forward", f"forward must return a numpy.ndarray, got {type(out).__name__}")
        run.finish()
    _check_output_shape(run, out)
    if out.dtype != np.float64:
        run.fail("forward", f"float64 inputs gave a {out.dtype} output")
    if not np.array_equal(x, x0):
        run.fail("forward", "forward modified its inputs in place")
    for label, p, p0 in zip(run.labels[1:], ps, ps0, strict=True):
        if not np.array_equal(p, p0):
            run.fail("forward", f"forward modified {label} in place")
    run.finish()
    return layer, out, (x, ps, x0, ps0)


def _check_output_shape(run, out):
    if run.output_shape is not None:
        if out.shape != run.output_shape:
            run.fail("forward", f"output has shape {shape_str(out.shape)}, expected "
                     f"{shape_str(run.output_shape)}")
    elif out.ndim == 0 or out.shape[0] != run.input_shape[0]:
        run.fail("forward", f"output has shape {shape_str(out.shape)}, expected one row per "
                 f"input row ({run.input_shape[0]})")


def _check_backward(run, layer, out, arrays):
    """Check 2: what backward returns, and that it leaves d_out and the forward
    arguments alone. Returns the ``d_out`` it used."""
    x, ps, x0, ps0 = arrays
    run.checks.append("backward")
    d_out = run.random.standard_normal(out.shape)
    d_out0 = d_out.copy()
    try:
        back = layer.backward(d_out)
    except Exception as exc:  # noqa: BLE001
        run.fail("backward", f"backward(d_out {shape_str(out.shape)}) raised "
                 f"{type(exc).__name__}: {exc}")
        run.finish()
    grads, problem = _split(back, run.n_params)
    if problem:
        run.fail("backward", problem)
        run.finish()
    for gname, g, target in zip(run.grad_names, grads, [x, *ps], strict=True):
        if g is None and gname == "d_inputs":
            continue
        if not isinstance(g, np.ndarray) or g.shape != target.shape:
            got = shape_str(g.shape) if isinstance(g, np.ndarray) else type(g).__name__
            run.fail("backward", f"{gname} has shape {got}, expected "
                     f"{shape_str(target.shape)}")
    if not np.array_equal(d_out, d_out0):
        run.fail("backward", "backward modified d_out in place")
    if not np.array_equal(x, x0) or any(not np.array_equal(p, p0)
                                        for p, p0 in zip(ps, ps0, strict=True)):
        run.fail("backward", "backward modified the inputs or parameters in place")
    run.finish()
    return d_out


def _check_backward_before_forward(run, d_out):
    """Check 3: backward on a fresh layer raises RuntimeError."""
    run.checks.append("backward before forward")
    fresh = run.layer_factory()
    try:
        fresh.backward(d_out.copy())
    except RuntimeError:
        pass
    except Exception as exc:  # noqa: BLE001
        run.fail("backward before forward", f"raised {type(exc).__name__} ({exc}); expected "
                 f"RuntimeError")
    else:
        run.fail("backward before forward", "backward on a fresh layer returned instead of "
                 "raising RuntimeError")


def _check_finite_differences(run, tol) -> dict:
    """Check 4 in the current mode: backward agrees with central differences in
    float64, at the given shape and then at a batch size no other axis has.

    Returns the errors by array name (``" (eval)"`` appended in evaluation mode).
    """
    check = "finite differences" + run.mode_text
    run.checks.append(check)
    result = _finite_differences(run, check, tol, None)
    if result is None or not result.passed(tol) or len(run.input_shape) < 2:
        return {} if result is None else _named(run, result.errors)
    others = set(run.input_shape[1:]) | {d for s in run.param_shapes for d in s}
    n_rows = next(n for n in range(run.input_shape[0] + 1, 10**6) if n not in others)
    _finite_differences(run, check, tol, n_rows)
    return _named(run, result.errors)


def _named(run, errors):
    return {(k + " (eval)" if run.mode is False else k): v for k, v in errors.items()}


def _finite_differences(run, check, tol, n_rows):
    """One finite-difference comparison (``n_rows`` rows, or the given shape); failures
    name the array, the worst entry, both values and their ratio."""
    gx, gps = run.data(n_rows=n_rows)
    at = "" if n_rows is None else (f" at batch size {n_rows}, input {shape_str(gx.shape)} "
                                    f"(it passed at {shape_str(run.input_shape)}: an axis "
                                    f"mixed up?)")
    try:
        result = check_layer_gradients(run.new_layer(), gx, *gps,
                                       rng=run.random.integers(2**31), names=run.labels[1:])
    except Exception as exc:  # noqa: BLE001
        run.fail(check, f"{type(exc).__name__}: {exc}{at}")
        return None
    for gname, err in result.errors.items():
        if err != err:  # NaN: no ratio to show
            run.fail(check, f"gradient of {gname} holds NaN{at} (backward computes 0/0, "
                     f"inf - inf or the like)")
        elif not err < tol:
            run.fail(check, f"gradient of {gname} disagrees with central differences{at}: "
                     f"relative error {err:.3e} >= {tol:g}; {result.worst_entry(gname)}")
    return result


def _check_reference(run, reference):
    """The layer against ``reference()`` where a third of the inputs are 0 and a
    quarter repeat a neighbour (kinks and ties), in its first mode."""
    run.checks.append("reference")
    x, ps = run.data()
    flat = x.reshape(-1)
    flat[::3] = 0.0
    flat[1::4] = flat[: len(flat[1::4]) * 4: 4]
    ref = reference()
    if run.mode is not None:
        ref.training = run.mode
    for problem in compare_layers(run.new_layer(), ref, x, *ps, rng=run.random):
        run.fail("reference", problem)


def _check_large_inputs(run, scale=1e3):
    """Inputs of magnitude ~``scale`` must give a finite output and gradient."""
    check = "large inputs" + run.mode_text
    run.checks.append(check)
    x, ps = run.data()
    layer = run.new_layer()
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(layer.forward(x * scale, *ps))
            grads, _ = _split(layer.backward(run.random.standard_normal(out.shape)),
                              run.n_params)
    except Exception as exc:  # noqa: BLE001
        run.fail(check, f"inputs of magnitude ~{scale:g}: {type(exc).__name__}: {exc}")
        return
    if not np.isfinite(out).all():
        run.fail(check, f"inputs of magnitude ~{scale:g} give a non-finite output (an exp "
                 f"that overflows? subtract the row maximum first)")
    bad = [n for n, g in zip(run.grad_names, grads or [], strict=False)
           if g is not None and not np.isfinite(g).all()]
    if np.isfinite(out).all() and bad:
        run.fail(check, f"inputs of magnitude ~{scale:g} give non-finite {', '.join(bad)}")


def _check_float32(run):
    """Check 5: float32 inputs and parameters give float32 outputs and gradients."""
    run.checks.append("float32")
    layer32 = run.new_layer()
    x32, ps32 = run.data(np.float32)
    try:
        out32 = layer32.forward(x32, *ps32)
        g32, _ = _split(layer32.backward(np.ones_like(out32)), run.n_params)
    except Exception as exc:  # noqa: BLE001
        run.fail("float32", f"{type(exc).__name__}: {exc}")
        return
    if np.asarray(out32).dtype != np.float32:
        run.fail("float32", f"float32 inputs gave a {np.asarray(out32).dtype} output")
    # zip without strict: a malformed backward (g32 None) was reported by check 2.
    for gname, g in zip(run.grad_names, g32 or [], strict=False):
        if g is not None and np.asarray(g).dtype != np.float32:
            run.fail("float32", f"float32 inputs gave a {np.asarray(g).dtype} {gname}")
