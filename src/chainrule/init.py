"""Weight initialisers for a weight matrix of shape ``(fan_in, fan_out)``.

Every initialiser takes ``rng``: ``None`` draws from NumPy's global generator (as the
homework's ``xavier_init`` does after ``np.random.seed``), an int seeds a fresh
``numpy.random.Generator``, and a ``Generator`` is used as it is. Values are drawn in
float64 and then cast, so a float32 network starts from the rounded float64 draw.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_positive_int, check_rng

__all__ = ["xavier_uniform", "xavier_init", "xavier_normal", "he_normal", "he_uniform",
           "zeros", "INITIALIZERS", "get_initializer", "CUSTOM_INIT", "SklearnInit"]


def _fans(shape) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be (fan_in, fan_out), got {shape!r}")
    fan_in = check_positive_int(shape[0], "shape[0]")
    fan_out = check_positive_int(shape[1], "shape[1]")
    return fan_in, fan_out


def xavier_uniform(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """Xavier/Glorot uniform: ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``.

    Keeps the variance of activations and of gradients roughly equal from layer to
    layer for symmetric activations (Glorot & Bengio, 2010).
    """
    fan_in, fan_out = _fans(shape)
    a = np.sqrt(6.0 / float(fan_in + fan_out))
    return check_rng(rng).uniform(low=-a, high=a, size=(fan_in, fan_out)).astype(dtype, copy=False)


#: The homework's name for :func:`xavier_uniform`.
xavier_init = xavier_uniform


def xavier_normal(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """Xavier/Glorot normal: ``N(0, 2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    std = np.sqrt(2.0 / float(fan_in + fan_out))
    return check_rng(rng).normal(0.0, std, size=(fan_in, fan_out)).astype(dtype, copy=False)


def he_normal(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """He/Kaiming normal: ``N(0, 2 / fan_in)``, suited to ReLU layers (He et al., 2015)."""
    fan_in, fan_out = _fans(shape)
    std = np.sqrt(2.0 / float(fan_in))
    return check_rng(rng).normal(0.0, std, size=(fan_in, fan_out)).astype(dtype, copy=False)


def he_uniform(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """He/Kaiming uniform: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)``."""
    fan_in, fan_out = _fans(shape)
    a = np.sqrt(6.0 / float(fan_in))
    return check_rng(rng).uniform(low=-a, high=a, size=(fan_in, fan_out)).astype(dtype, copy=False)


def zeros(shape, rng=None, dtype=np.float64) -> np.ndarray:
    """All zeros (draws nothing; ``rng`` is accepted for a uniform signature)."""
    return np.zeros(_fans(shape), dtype=dtype)


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


INITIALIZERS = {
    "xavier": xavier_uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
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
