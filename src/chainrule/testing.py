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

import copy
from dataclasses import dataclass, field

import numpy as np

from ._validation import _shape_str, check_rng
from .gradcheck import _RngFreezer, check_layer_gradients

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
                tol: float = 1e-6) -> LayerReport:
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

    A layer that draws random numbers from an ``rng`` attribute (Dropout) has the
    generator's state restored before each forward, so checks 4 and 6 see one mask.
    Inputs are kept at least 1e-2 away from zero so that piecewise-linear layers are
    not probed at their kink.

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
    random = check_rng(rng)
    input_shape = tuple(int(s) for s in input_shape)
    param_shapes = [tuple(int(s) for s in shape) for shape in param_shapes]
    n_params = len(param_shapes)
    if output_shape is None and n_params == 0:
        output_shape = input_shape
    output_shape = None if output_shape is None else tuple(int(s) for s in output_shape)

    def data(dtype=np.float64):
        x = _away_from_zero(random.standard_normal(input_shape))
        ps = [random.standard_normal(s) for s in param_shapes]
        return x.astype(dtype), [p.astype(dtype) for p in ps]

    failures: list[str] = []
    checks: list[str] = []
    name = "layer"

    def fail(check, message):
        failures.append(f"[{check}] {message}")

    def finish():
        if failures:
            raise LayerContractError(f"{name} breaks the layer contract:\n  "
                                     + "\n  ".join(failures))

    # 1. forward: shape, dtype, no mutation --------------------------------------------
    layer = layer_factory()
    name = repr(layer)
    freeze = _RngFreezer(layer)
    x, ps = data()
    x0, ps0 = x.copy(), [p.copy() for p in ps]
    checks.append("forward")
    try:
        freeze()
        out = layer.forward(x, *ps)
    except Exception as exc:  # noqa: BLE001 - any crash is a contract failure
        fail("forward", f"forward(inputs {_shape_str(input_shape)}"
             + "".join(f", {_shape_str(s)}" for s in param_shapes)
             + f") raised {type(exc).__name__}: {exc}")
        finish()
    if not isinstance(out, np.ndarray):
        fail("forward", f"forward must return a numpy.ndarray, got {type(out).__name__}")
        finish()
    if output_shape is not None:
        if out.shape != output_shape:
            fail("forward", f"output has shape {_shape_str(out.shape)}, expected "
                 f"{_shape_str(output_shape)}")
    elif out.ndim == 0 or out.shape[0] != input_shape[0]:
        fail("forward", f"output has shape {_shape_str(out.shape)}, expected one row per "
             f"input row ({input_shape[0]})")
    if out.dtype != np.float64:
        fail("forward", f"float64 inputs gave a {out.dtype} output")
    if not np.array_equal(x, x0):
        fail("forward", "forward modified its inputs in place")
    for i, (p, p0) in enumerate(zip(ps, ps0)):
        if not np.array_equal(p, p0):
            fail("forward", f"forward modified params[{i}] in place")
    if failures:
        finish()

    # 2. backward: what it returns -------------------------------------------------------
    checks.append("backward")
    d_out = random.standard_normal(out.shape)
    d_out0 = d_out.copy()
    try:
        back = layer.backward(d_out)
    except Exception as exc:  # noqa: BLE001
        fail("backward", f"backward(d_out {_shape_str(out.shape)}) raised "
             f"{type(exc).__name__}: {exc}")
        finish()
    grads, problem = _split(back, n_params)
    if problem:
        fail("backward", problem)
        finish()
    names = ["d_inputs"] + [f"d_params[{i}]" for i in range(n_params)]
    for gname, g, target in zip(names, grads, [x, *ps]):
        if g is None and gname == "d_inputs":
            continue
        if not isinstance(g, np.ndarray) or g.shape != target.shape:
            got = _shape_str(g.shape) if isinstance(g, np.ndarray) else type(g).__name__
            fail("backward", f"{gname} has shape {got}, expected {_shape_str(target.shape)}")
    if not np.array_equal(d_out, d_out0):
        fail("backward", "backward modified d_out in place")
    if not np.array_equal(x, x0) or any(not np.array_equal(p, p0) for p, p0 in zip(ps, ps0)):
        fail("backward", "backward modified the inputs or parameters in place")
    if failures:
        finish()

    # 3. backward before forward -----------------------------------------------------------
    checks.append("backward before forward")
    fresh = layer_factory()
    try:
        fresh.backward(d_out.copy())
    except RuntimeError:
        pass
    except Exception as exc:  # noqa: BLE001
        fail("backward before forward", f"raised {type(exc).__name__} ({exc}); expected "
             f"RuntimeError")
    else:
        fail("backward before forward", "backward on a fresh layer returned instead of "
             "raising RuntimeError")

    # 4. finite differences in float64 -----------------------------------------------------
    checks.append("finite differences")
    gx, gps = data()
    result = None
    try:
        result = check_layer_gradients(layer_factory(), gx, *gps,
                                       rng=random.integers(2**31))
    except Exception as exc:  # noqa: BLE001
        fail("finite differences", f"{type(exc).__name__}: {exc}")
    if result is not None:
        for gname, err in result.errors.items():
            if not err < tol:
                fail("finite differences", f"gradient of {gname} disagrees with central "
                     f"differences: relative error {err:.3e} >= {tol:g}")

    # 5. float32 stays float32 ---------------------------------------------------------------
    checks.append("float32")
    layer32 = layer_factory()
    x32, ps32 = data(np.float32)
    try:
        out32 = layer32.forward(x32, *ps32)
        g32, problem = _split(layer32.backward(np.ones_like(out32)), n_params)
    except Exception as exc:  # noqa: BLE001
        fail("float32", f"{type(exc).__name__}: {exc}")
    else:
        if np.asarray(out32).dtype != np.float32:
            fail("float32", f"float32 inputs gave a {np.asarray(out32).dtype} output")
        for gname, g in zip(names, g32 or []):
            if g is not None and np.asarray(g).dtype != np.float32:
                fail("float32", f"float32 inputs gave a {np.asarray(g).dtype} {gname}")

    # 6. determinism and no stale cache ------------------------------------------------------
    checks.append("deterministic")
    # Two instances made before anything is drawn, so that a layer drawing from a shared
    # (e.g. the global) generator starts both from the same state.
    det, ref = layer_factory(), layer_factory()
    freeze_det, freeze_ref = _RngFreezer(det), _RngFreezer(ref)
    xa, psa = data()
    xb, psb = data()
    d = random.standard_normal(np.shape(out))
    try:
        freeze_det()
        out1 = np.array(det.forward(xa, *psa), copy=True)
        back1 = _copy_grads(det.backward(d))
        freeze_det()
        out2 = np.array(det.forward(xa, *psa), copy=True)
        back2 = _copy_grads(det.backward(d))
        freeze_ref()
        ref.forward(xb, *psb)
        back_ref = _copy_grads(ref.backward(d))
        # The used layer, now on other data, must match a fresh one on that data.
        freeze_det()
        det.forward(xb, *psb)
        back3 = _copy_grads(det.backward(d))
    except Exception as exc:  # noqa: BLE001
        fail("deterministic", f"{type(exc).__name__}: {exc}")
    else:
        if not np.array_equal(out1, out2):
            fail("deterministic", "two forward passes on the same data differ")
        if not _grads_equal(back1, back2):
            fail("deterministic", "two backward passes with the same d_out differ")
        if not _grads_equal(back3, back_ref):
            fail("deterministic", "after forward on new data, backward differs from a fresh "
                 "layer's on that data: it uses a stale cache (or layer_factory does not "
                 "build identical layers)")

    finish()
    return LayerReport(layer=name, output_shape=tuple(out.shape),
                       gradient_errors=dict(result.errors) if result else {}, checks=checks)


def _copy_grads(back):
    if isinstance(back, tuple):
        return tuple(None if g is None else np.array(g, copy=True) for g in back)
    return copy.deepcopy(np.asarray(back))


def _grads_equal(a, b):
    if isinstance(a, tuple) != isinstance(b, tuple):
        return False
    if not isinstance(a, tuple):
        return np.array_equal(a, b)
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in zip(a, b))
