"""Weight initialisers for a weight matrix of shape ``(fan_in, fan_out)`` (an Affine
layer's ``(D, H)``) or a convolution's ``(C_out, C_in / groups, kH, kW)``.

For a convolution ``fan_in = C_in / groups kH kW`` and ``fan_out = C_out kH kW``, as
``torch.nn.init`` counts them. (A 2-D shape is read the other way round from PyTorch's:
chainrule's weight matrices are ``(in, out)``, ``torch.nn.Linear``'s ``(out, in)``.)
``gain`` scales the Xavier draws as ``torch.nn.init.xavier_*_(gain=)``;
``negative_slope`` is Kaiming's ``a``, for a leaky ReLU after the layer.

Every initialiser takes ``rng``: ``None`` draws from NumPy's global generator (as the
homework's ``xavier_init`` does after ``np.random.seed``), an int seeds a fresh
``numpy.random.Generator``, and a ``Generator`` is used as it is. Values are drawn in
float64 and then cast, so a float32 network starts from the rounded float64 draw.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_finite_float, check_positive_float, check_positive_int, check_rng

__all__ = ["xavier_uniform", "xavier_init", "xavier_normal", "he_normal", "he_uniform",
           "zeros", "INITIALIZERS", "get_initializer", "CUSTOM_INIT", "SklearnInit", "TorchInit",
           "TORCH_INIT"]


def _fans(shape) -> tuple[tuple[int, ...], int, int]:
    """``(shape, fan_in, fan_out)`` of a weight matrix or a convolution's kernel."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"shape must be a sequence of ints, (fan_in, fan_out) or a "
                        f"convolution's (C_out, C_in, kH, kW), got {type(shape).__name__} "
                        f"{shape!r}")
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"shape must be (fan_in, fan_out) or a convolution's (C_out, "
                         f"C_in, kH, kW), got {shape!r}")
    shape = tuple(check_positive_int(n, f"shape[{i}]") for i, n in enumerate(shape))
    if len(shape) == 2:
        return shape, shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape, shape[1] * receptive, shape[0] * receptive


def _gain(gain) -> float:
    """Xavier's ``gain``, checked: a finite number > 0 (torch's ``calculate_gain``)."""
    return check_positive_float(gain, "gain")


def _bound(value: float, what: str) -> float:
    """A draw's bound or spread, refused when it overflows (a huge ``gain``): the width
    of the interval ``U(-a, a)`` draws from, ``2 a``, must be finite too."""
    if not math.isfinite(2.0 * float(value)):
        raise ValueError(f"{what} overflows: the weights would not be finite")
    return float(value)


def _float_dtype(dtype):
    """``dtype`` when it is a floating-point one (an int dtype would truncate the draws
    to mostly 0)."""
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype, got {np.dtype(dtype)}")
    return dtype


def _kaiming(negative_slope) -> float:
    """``1 + a^2``: torch's ``calculate_gain('leaky_relu', a)`` is ``sqrt(2 / (1 + a^2))``."""
    a = check_finite_float(negative_slope, "negative_slope")
    return 1.0 + a * a


def xavier_uniform(shape, rng=None, dtype=np.float64, *, gain=1.0) -> np.ndarray:
    """Xavier/Glorot uniform: ``U(-a, a)`` with ``a = gain sqrt(6 / (fan_in + fan_out))``.

    Keeps the variance of activations and of gradients roughly equal from layer to
    layer for symmetric activations (Glorot & Bengio, 2010).
    """
    shape, fan_in, fan_out = _fans(shape)
    dtype = _float_dtype(dtype)
    a = _bound(_gain(gain) * np.sqrt(6.0 / float(fan_in + fan_out)), "gain * bound")
    return check_rng(rng).uniform(low=-a, high=a, size=shape).astype(dtype, copy=False)


#: The homework's name for :func:`xavier_uniform`.
xavier_init = xavier_uniform


def xavier_normal(shape, rng=None, dtype=np.float64, *, gain=1.0) -> np.ndarray:
    """Xavier/Glorot normal: ``N(0, gain^2 2 / (fan_in + fan_out))``."""
    shape, fan_in, fan_out = _fans(shape)
    dtype = _float_dtype(dtype)
    std = _bound(_gain(gain) * np.sqrt(2.0 / float(fan_in + fan_out)), "gain * std")
    return check_rng(rng).normal(0.0, std, size=shape).astype(dtype, copy=False)


def he_normal(shape, rng=None, dtype=np.float64, *, negative_slope=0.0) -> np.ndarray:
    """He/Kaiming normal: ``N(0, 2 / ((1 + a^2) fan_in))`` with ``a = negative_slope``,
    suited to ReLU layers (He et al., 2015); ``torch.nn.init.kaiming_normal_``."""
    shape, fan_in, _ = _fans(shape)
    dtype = _float_dtype(dtype)
    std = np.sqrt(2.0 / (_kaiming(negative_slope) * float(fan_in)))
    return check_rng(rng).normal(0.0, std, size=shape).astype(dtype, copy=False)


def he_uniform(shape, rng=None, dtype=np.float64, *, negative_slope=0.0) -> np.ndarray:
    """He/Kaiming uniform: ``U(-b, b)`` with ``b = sqrt(6 / ((1 + a^2) fan_in))``;
    ``torch.nn.init.kaiming_uniform_``."""
    shape, fan_in, _ = _fans(shape)
    dtype = _float_dtype(dtype)
    b = np.sqrt(6.0 / (_kaiming(negative_slope) * float(fan_in)))
    return check_rng(rng).uniform(low=-b, high=b, size=shape).astype(dtype, copy=False)


def zeros(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """All zeros (draws nothing; ``rng`` is accepted for a uniform signature)."""
    return np.zeros(_fans(shape)[0], dtype=dtype)


class SklearnInit:
    """scikit-learn's ``_init_coef``, ``MLP(init="sklearn")``: ``U(-a, a)`` for weights
    and biases, ``a = sqrt(f / (fan_in + fan_out))``, ``f = 2`` when the activation is
    logistic (sigmoid; scikit-learn reads it from ``activation``, so also for a network
    without hidden layers), else 6."""

    def __init__(self, activations):
        logistic = bool(activations) and activations[0] in ("sigmoid", "logistic")
        self.factor = 2.0 if logistic else 6.0

    def _bound(self, fan_in, fan_out):
        return np.sqrt(self.factor / (fan_in + fan_out))

    def __call__(self, shape, rng, dtype):
        a = self._bound(*shape)
        return rng.uniform(-a, a, size=tuple(shape)).astype(dtype, copy=False)

    def bias(self, fan_in, fan_out, rng, dtype):
        a = self._bound(fan_in, fan_out)
        return rng.uniform(-a, a, size=fan_out).astype(dtype, copy=False)


class TorchInit:
    """PyTorch's default for ``nn.Linear`` and ``nn.Conv2d``, ``init="torch"``: ``U(-a,
    a)`` with ``a = 1 / sqrt(fan_in)`` for the weight (``kaiming_uniform_(a=sqrt(5))``
    comes to that bound) and for the bias. The same distribution as torch's, not its
    random numbers (``chainrule.io.from_torch`` copies those)."""

    def __call__(self, shape, rng=None, dtype=np.float64):
        shape, fan_in, _ = _fans(shape)
        a = 1.0 / np.sqrt(fan_in)
        return check_rng(rng).uniform(-a, a, size=shape).astype(_float_dtype(dtype),
                                                                 copy=False)

    def bias(self, fan_in, fan_out, rng, dtype):
        a = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-a, a, size=fan_out).astype(dtype, copy=False)


#: The name of :class:`TorchInit` for ``MLP``, ``Affine`` and ``Conv2D``.
TORCH_INIT = "torch"

INITIALIZERS = {
    "xavier": xavier_uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
    TORCH_INIT: TorchInit(),
}


#: What a model's ``config["init"]`` holds for a callable ``init``: model files allow
#: only these names and the keys of INITIALIZERS (a function's name could be any text).
CUSTOM_INIT = "custom"


def get_initializer(name):
    """Return the initialiser called ``name`` (or ``name`` itself if it is callable)."""
    if callable(name):
        return name
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {name!r}")
    return INITIALIZERS[name]
