"""Folding a fixed affine rescaling into a trained network, so a saved model takes raw
data: the inputs' standardisation into the first Affine layer
(:func:`fold_standardization`), a regression target's into the last one
(:func:`fold_target_scaling`). The command line saves its models this way.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, shape_str
from .layers import Affine
from .models import Network

__all__ = ["fold_standardization", "fold_target_scaling"]


def _fold_vectors(mean, scale, size, what):
    """``mean`` and ``scale`` as finite float64 vectors of length ``size``, scales > 0."""
    mean = as_float_array(mean, "mean", ndim=1, dtype=np.float64)
    scale = as_float_array(scale, "scale", ndim=1, dtype=np.float64)
    for name, vector in (("mean", mean), ("scale", scale)):
        if vector.shape != (size,):
            raise ValueError(f"{name} must have shape ({size},) (the model's {what}), got "
                             f"{shape_str(vector.shape)}")
    if not np.all(scale > 0):
        raise ValueError(f"scale must be positive, got {scale[scale <= 0][:5].tolist()} "
                         f"among its values")
    return mean, scale


def fold_standardization(model, mean, scale):
    """Make ``model`` take raw inputs by folding ``(x - mean) / scale`` into its first layer.

    A model trained on standardised inputs ``(x - mean) / scale`` computes, in its first
    Affine layer, ``((x - mean) / scale) @ W + b = x @ (W / scale[:, None]) + (b -
    (mean / scale) @ W)``. Rewriting ``W`` and ``b`` that way gives a model that
    computes the same outputs from raw ``x``, so a saved file (and its ONNX export)
    needs no separate preprocessing step.

    Parameters
    ----------
    model : Network
        Changed in place; its first layer must be an :class:`~chainrule.layers.Affine`.
    mean : array_like, shape (D,)
        The column means the inputs were centred with (``D = model.n_features``).
    scale : array_like, shape (D,)
        The positive column scales the inputs were divided by, e.g. the ``scale`` of
        :func:`chainrule.data.standardize`.

    Returns
    -------
    Network
        ``model`` itself. The new ``W`` and ``b`` keep the dtype of the old ones.

    Raises
    ------
    TypeError
        When ``model`` is not a :class:`Network` whose first layer is Affine, or
        ``mean``/``scale`` are not numeric.
    ValueError
        When ``mean`` or ``scale`` is not a finite vector of length ``D``, or a scale
        is not positive.
    """
    if not isinstance(model, Network):
        raise TypeError(f"model must be a chainrule Network, got {type(model).__name__}")
    layer, names = model.layers[0]
    if not isinstance(layer, Affine) or len(names) != 2:
        raise TypeError(f"model's first layer must be Affine with a bias to fold the "
                        f"standardisation into, got {layer!r}")
    W_name, b_name = names
    W, b = model.params[W_name], model.params[b_name]
    mean, scale = _fold_vectors(mean, scale, W.shape[0], "inputs")
    model.params[b_name] = (b - (mean / scale) @ W).astype(b.dtype)
    model.params[W_name] = (W / scale[:, None]).astype(W.dtype)
    return model


def fold_target_scaling(model, mean, scale):
    """Make ``model`` output raw targets by folding ``y = out * scale + mean`` into its
    last layer, the counterpart of :func:`fold_standardization`.

    A regressor trained on targets ``(y - mean) / scale`` ends in ``h @ W + b``; then
    ``h @ (W * scale) + (b * scale + mean)`` predicts ``y`` itself, so a saved file (and
    its ONNX export) needs no step to undo the scaling. Returns ``model`` itself; ``W``
    and ``b`` keep their dtype.

    Parameters
    ----------
    model : Network
        Changed in place; its last layer must be an :class:`~chainrule.layers.Affine`.
    mean, scale : float or array_like, shape (M,)
        The target means and positive scales (``M = model.n_outputs``).

    Raises
    ------
    TypeError
        When ``model`` is not a :class:`Network` whose last layer is Affine.
    ValueError
        When ``mean`` or ``scale`` is not finite or of the wrong length, or a scale is
        not positive.
    """
    if not isinstance(model, Network):
        raise TypeError(f"model must be a chainrule Network, got {type(model).__name__}")
    layer, names = model.layers[-1]
    if not isinstance(layer, Affine) or len(names) != 2:
        raise TypeError(f"model's last layer must be Affine with a bias to fold the target "
                        f"scaling into, got {layer!r}")
    W_name, b_name = names
    W, b = model.params[W_name], model.params[b_name]
    M = W.shape[1]
    mean, scale = _fold_vectors(np.broadcast_to(mean, (M,)) if np.ndim(mean) == 0 else mean,
                                np.broadcast_to(scale, (M,)) if np.ndim(scale) == 0 else scale,
                                M, "outputs")
    model.params[b_name] = (b * scale + mean).astype(b.dtype)
    model.params[W_name] = (W * scale[None, :]).astype(W.dtype)
    return model
