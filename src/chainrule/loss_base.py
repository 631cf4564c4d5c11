"""The losses' base class: what every loss shares.

A loss is the last node of the graph, ``forward(outputs, targets, sample_weight=None)
-> float``; ``backward(d_out=1.0)`` returns ``(d_outputs, None)``: the ``None`` stands
for the gradient with respect to the targets, which no model needs (the homework's
contract). :class:`Loss` holds the checks every loss shares (the pair of arrays, the
row weights, ``d_out``) and its ``get_config``/``__repr__``. The losses themselves are
in :mod:`chainrule.losses` (classification) and :mod:`chainrule.regression_losses`;
:mod:`chainrule.losses` re-exports everything, so a loss of one's own is written as
``class MyLoss(chainrule.losses.Loss)``.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_sample_weight, shape_str

__all__ = ["Loss", "unchecked", "weight_share"]


class Loss:
    """Base class holding the shared checks. ``validate`` (True) checks the inputs of
    every call; ``fit`` and ``loss_and_grads`` switch it off for their own calls, on
    data they have checked (:class:`unchecked`)."""

    validate = True
    equations = ("L = loss({x}, Y)", ("d{x} = dL/d{x}",))
    #: True for the loss of a K-class classifier: the network's K outputs are one score
    #: per class and its class is their argmax, its targets (N,) class indices or
    #: one-hot rows, and ``fit``/``evaluate`` report the accuracy. Binary
    #: cross-entropy's classes are thresholds on each logit, not an argmax: False.
    multiclass = False
    #: True for a regression loss whose network's outputs are the predictions themselves
    #: (mse, squared_error, l1, huber; not Poisson's log link): the command line and the
    #: ONNX export treat such a network as a regressor.
    linear_outputs = False

    def __init__(self):
        self.cache = None

    def get_config(self) -> dict:
        """Constructor arguments other than the defaults (model files store them with
        the loss's name); the base class has none."""
        return {}

    def _check_pair(self, outputs, targets, out_name, target_name, *, finite_targets=True):
        if not self.validate:
            return outputs, targets
        outputs = as_float_array(outputs, out_name, ndim=2)
        targets = as_float_array(targets, target_name, ndim=2, finite=finite_targets)
        if outputs.shape != targets.shape:
            raise ValueError(f"{out_name} and {target_name} must have the same shape, got "
                             f"{out_name} {shape_str(outputs.shape)} and {target_name} "
                             f"{shape_str(targets.shape)}")
        return outputs, targets

    def check_targets(self, targets, name: str = "targets") -> None:
        """Raise ``ValueError`` unless ``targets`` (a 2-D float array) holds values this
        loss accepts; the base class accepts any finite values.

        ``forward`` runs it when ``validate`` is on; a network's training paths, which
        switch that off for their steps, call it once on the whole target array.
        """

    def _check_weights(self, sample_weight, n, dtype):
        """``None`` or a 1-D array of ``n`` non-negative weights with a positive sum."""
        if sample_weight is None:
            return None
        if self.validate:
            return check_sample_weight(sample_weight, n, dtype)
        return sample_weight.astype(dtype, copy=False)

    def _check_backward(self, d_out):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        # A Python float keeps float32 gradients in float32 (NumPy's weak scalars).
        return float(as_float_array(d_out, "d_out", ndim=0)) if self.validate else d_out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def weight_share(w, columns: int = 1) -> tuple:
    """``(share, sum(w))``: each row's weight over ``sum(w) * columns`` as an (N, 1)
    column, the factor that turns a sum over the entries into the weighted mean. A
    minibatch whose rows all weigh 0 (possible only with ``validate`` off) contributes
    nothing (loss and gradient 0)."""
    total = float(w.sum()) or 1.0
    return w[:, None] / w.dtype.type(total * columns), total


class unchecked:  # noqa: N801  (used as a function: ``with unchecked(loss):``)
    """Run ``loss`` without its input checks inside the block, for inputs the caller
    has checked (a network's ``Y`` at the entry of ``fit``), and with them again after:
    a user's own ``model.loss.forward(logits, y)`` in a hand-written loop keeps its
    checks. A class, not a generator: ``fit`` enters it at every step."""

    __slots__ = ("loss", "validate")

    def __init__(self, loss):
        self.loss = loss

    def __enter__(self):
        self.validate = getattr(self.loss, "validate", True)
        self.loss.validate = False
        return self.loss

    def __exit__(self, *exc_info):
        self.loss.validate = self.validate
        return False


def one_d_targets_message(Y, classifier: bool, n_outputs: int) -> str:
    """What a 1-D ``Y`` that a network's ``check_XY`` cannot take should have been."""
    if not classifier:
        return (f"Y must have shape (N, {n_outputs}) (one column per model output), got "
                f"shape {shape_str(np.shape(Y))}")
    kind = np.asarray(Y).dtype
    advice = ("as integers (y.astype(int))" if kind.kind in "fcb"
              else "through chainrule.data.encode_labels(y)")
    return (f"Y must have shape (N, {n_outputs}) (one-hot or probability rows) or be 1-D "
            f"integer class indices; got 1-D values of dtype {kind}: pass class labels "
            f"{advice}")
