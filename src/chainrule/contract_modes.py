"""The layer-contract kit's checks of a layer's modes and state (:func:`chainrule.testing.
check_layer` runs them): evaluation mode (rows independent, buffers left alone, nothing
random), the mode a backward pass differentiates, and determinism (repeated passes
bit-identical, no stale cache).

Each takes the kit's run (its layer factory, data, modes and failures) and records what
it checked and what failed there.
"""

from __future__ import annotations

import copy

import numpy as np

from .gradcheck import RngFreezer

__all__ = ["check_eval_contract", "check_mode_switch", "check_determinism", "copy_grads",
           "grads_equal"]


def check_eval_contract(run):
    """Evaluation mode: rows are independent, and declared buffers do not change."""
    check = "eval rows independent"
    run.checks.append(check)
    x, ps = run.data()
    layer = run.new_layer()
    buffers = {b: np.array(getattr(layer, b), copy=True)
               for b in getattr(layer, "buffer_names", ())}
    try:
        freeze = RngFreezer(layer)
        freeze()
        full = np.array(layer.forward(x, *ps), copy=True)
        again = np.asarray(layer.forward(x, *ps))   # its generator left to run on
        layer.backward(np.ones_like(full))
        changed = [b for b, v in buffers.items() if not np.array_equal(getattr(layer, b), v)]
        k = max(1, x.shape[0] // 2)
        freeze()
        part = np.asarray(layer.forward(x[:k], *ps))
    except Exception as exc:  # noqa: BLE001
        run.fail(check, f"{type(exc).__name__}: {exc}")
        return
    if not np.array_equal(full, again, equal_nan=True):
        run.fail(check, "two forward passes in evaluation mode differ: outside training "
                 "the output must not be random (a dropout must be off there)")
    if buffers:
        run.checks.append("eval state")
        if changed:
            run.fail("eval state", f"forward/backward in evaluation mode changed the "
                     f"buffers {changed}: only training may update them")
    if x.shape[0] > 1 and full.shape[:1] == x.shape[:1] and not np.allclose(
            part, full[:k], rtol=1e-9, atol=1e-12):
        run.fail(check, f"the output for the first {k} rows changes when the other rows are "
                 f"left out: in evaluation mode a row's output must depend on that row only "
                 f"(batch statistics used outside training?)")


def check_mode_switch(run):
    """backward differentiates the forward that ran, whatever ``training`` says now."""
    run.checks.append("mode switch")
    x, ps = run.data()
    for mode in (True, False):
        run.mode = mode
        flipped, plain = run.new_layer(), run.new_layer()
        d = None
        try:
            for layer in (flipped, plain):
                run.start_draws(layer)   # the same mask in both
                out = layer.forward(x, *ps)
                d = run.random.standard_normal(np.shape(out)) if d is None else d
            flipped.training = not mode
            back_flipped = copy_grads(flipped.backward(d))
            back_plain = copy_grads(plain.backward(d))
        except Exception as exc:  # noqa: BLE001
            run.fail("mode switch", f"{type(exc).__name__}: {exc}")
            return
        if not grads_equal(back_flipped, back_plain):
            run.fail("mode switch", f"after a {'training' if mode else 'evaluation'}-mode "
                     f"forward, setting training={not mode} changed what backward returns: "
                     f"backward must use the mode of the forward it differentiates (cache it)")
    run.mode = run.modes[0]


def check_determinism(run, out_shape):
    """Check 6: repeated forward/backward are bit-identical, and backward uses the
    latest forward (a used layer given new data matches a fresh layer given it)."""
    check = "deterministic" + run.mode_text
    run.checks.append(check)
    # Two instances made before anything is drawn, so that a layer drawing from a shared
    # (e.g. the global) generator starts both from the same state.
    det, ref = run.new_layer(), run.new_layer()
    freeze_det, freeze_ref = RngFreezer(det), RngFreezer(ref)
    xa, psa = run.data()
    xb, psb = run.data()
    d = run.random.standard_normal(out_shape)
    try:
        freeze_det()
        out1 = np.array(det.forward(xa, *psa), copy=True)
        back1 = copy_grads(det.backward(d))
        freeze_det()
        out2 = np.array(det.forward(xa, *psa), copy=True)
        back2 = copy_grads(det.backward(d))
        freeze_ref()
        ref.forward(xb, *psb)
        back_ref = copy_grads(ref.backward(d))
        # The used layer, now on other data, must match a fresh one on that data.
        freeze_det()
        det.forward(xb, *psb)
        back3 = copy_grads(det.backward(d))
    except Exception as exc:  # noqa: BLE001
        run.fail(check, f"{type(exc).__name__}: {exc}")
        return
    if not np.array_equal(out1, out2, equal_nan=True):
        unfrozen = getattr(det, "rng", None) is None
        run.fail(check, "two forward passes on the same data differ" + (
            ": the layer draws random numbers from a generator the check cannot hold "
            "still (NumPy's global one, np.random.*?); give it its own as an rng "
            "attribute (np.random.default_rng(seed)), which the checks freeze"
            if unfrozen else ""))
    if not grads_equal(back1, back2):
        run.fail(check, "two backward passes with the same d_out differ")
    if not grads_equal(back3, back_ref):
        run.fail(check, "after forward on new data, backward differs from a fresh "
                 "layer's on that data: it uses a stale cache (or layer_factory does not "
                 "build identical layers)")


def copy_grads(back):
    if isinstance(back, tuple):
        return tuple(None if g is None else np.array(g, copy=True) for g in back)
    return copy.deepcopy(np.asarray(back))


def grads_equal(a, b):
    """The same gradients, a NaN equal to a NaN (a NaN gradient fails a check of its
    own; here it would read as two passes that differ)."""
    def same(x, y):
        return np.array_equal(x, y, equal_nan=np.asarray(x).dtype.kind in "fc")

    if isinstance(a, tuple) != isinstance(b, tuple):
        return False
    if not isinstance(a, tuple):
        return same(a, b)
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and same(x, y))
        for x, y in zip(a, b, strict=True))
