"""Activation layers, each backward pass right under its forward: ReLU, LeakyReLU, Tanh,
Sigmoid, GELU, SiLU, ELU, Softplus, PReLU, Hardtanh, ReLU6, Hardsigmoid and Hardswish,
as ``torch.nn``'s of the same names.

They act entry by entry (PReLU's slope is one, or one per channel) and keep the layer
contract of :mod:`chainrule.layer_base`; :mod:`chainrule.layers` re-exports them, so
``chainrule.layers.ReLU`` is where a user finds them.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import (
    as_float_array,
    check_choice,
    check_finite_float,
    check_positive_float,
    check_positive_int,
    shape_str,
    zeros_for,
)
from .functional import sigmoid
from .layer_base import Layer

__all__ = ["ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "Softplus", "PReLU",
           "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish"]


class ReLU(Layer):
    """Rectified linear unit ``out = max(0, inputs)``.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = max(0, {x})", ("d{x} = d{y} * ({x} > 0)",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # Only the sign pattern is needed backward; a bool mask is 1/8 of a float64 copy.
        self.cache = inputs > 0
        # Against an array of zeros, not the scalar 0: NumPy vectorises only the former.
        return np.maximum(inputs, zeros_for(inputs))

    def backward(self, d_out):
        """The slope is 1 where the input was positive and 0 elsewhere (0 at 0 itself)."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        return d_out * self.cache


class LeakyReLU(Layer):
    """Leaky ReLU ``out = inputs if inputs > 0 else negative_slope * inputs``.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    negative_slope : float, default=0.01
        Slope for negative inputs: any finite number, as in ``torch.nn.LeakyReLU``
        (usually in [0, 1); negative or above 1 the function is not monotonic or bends
        the other way, which some courses and papers use).
    """

    equations = ("{y} = where({x} > 0, {x}, a * {x})", ("d{x} = d{y} * where({x} > 0, 1, a)",))

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = check_finite_float(negative_slope, "negative_slope")
        a = f"{self.negative_slope:g}"   # explain() shows the slope in use
        self.equations = (f"{{y}} = where({{x}} > 0, {{x}}, {a} * {{x}})",
                          (f"d{{x}} = d{{y}} * where({{x}} > 0, 1, {a})",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        self.cache = inputs > 0
        # With slope <= 1, max(x, slope x) is x above 0 and slope x below (also at +-inf
        # and NaN), and min(x, slope x) is with slope > 1: np.where over a random sign
        # pattern took ~5x longer. At slope 0 max would turn +inf into max(inf, nan) =
        # nan; x * mask is exact there.
        slope = self.negative_slope
        if slope == 0:
            return inputs * self.cache
        return (np.maximum if slope <= 1 else np.minimum)(inputs, inputs * slope)

    def backward(self, d_out):
        """Slope 1 where the input was positive, ``negative_slope`` elsewhere (at 0 too)."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        # d_out where the input was positive, slope d_out elsewhere: products with the
        # 0/1 masks and a sum with 0 are exact, so for a finite d_out these are the
        # values of np.where(mask, d_out, slope d_out).
        d_inputs = d_out * self.cache
        d_inputs += (d_out * self.negative_slope) * ~self.cache
        return d_inputs

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class Tanh(Layer):
    """Hyperbolic tangent.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = tanh({x})", ("d{x} = d{y} * (1 - {y}^2)",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        out = np.tanh(inputs)
        self.cache = out
        return out

    def backward(self, d_out):
        """``d tanh(x)/dx = 1 - tanh(x)^2``, computed from the cached output."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        out = self.cache
        return d_out * (1 - out * out)


class Sigmoid(Layer):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, overflow-free for any input.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = 1 / (1 + exp(-{x}))", ("d{x} = d{y} * {y} * (1 - {y})",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # functional.sigmoid: from exp(-|x|) <= 1, which never overflows.
        out = sigmoid(inputs)
        self.cache = out
        return out

    def backward(self, d_out):
        """``d sigmoid(x)/dx = s (1 - s)`` with ``s`` the cached output."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        out = self.cache
        return d_out * out * (1 - out)


class GELU(Layer):
    """Gaussian error linear unit ``out = x * Phi(x)``, as ``torch.nn.GELU(approximate)``.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    approximate : {'none', 'tanh'}, default='none'
        ``'none'``: ``Phi`` is the standard normal CDF, ``0.5 (1 + erf(x / sqrt(2)))``
        (SciPy's ``erf``, imported by the first forward pass, not by ``import
        chainrule``). ``'tanh'``: ``0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """

    equations = ("{y} = {x} * Phi({x})   (Phi: the normal CDF)",
                 ("d{x} = d{y} * (Phi({x}) + {x} * phi({x}))",))

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = check_choice(approximate, "approximate", ("none", "tanh"))
        if self.approximate == "tanh":   # the instance's own: the class's are erf's
            self.equations = ("{y} = 0.5 {x} (1 + t),  t = tanh(sqrt(2/pi) ({x} + 0.044715 "
                              "{x}^3))", ("d{x} = d{y} * (0.5 (1 + t) + 0.5 {x} (1 - t^2) "
                                          "sqrt(2/pi) (1 + 3 * 0.044715 {x}^2))",))

    def get_config(self) -> dict:
        """The constructor argument, for model files."""
        return {"approximate": self.approximate}

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        if self.approximate == "tanh":
            c = inputs.dtype.type(math.sqrt(2.0 / math.pi))
            t = np.tanh(c * (inputs + inputs.dtype.type(0.044715) * inputs ** 3))
            self.cache = (inputs, t)
            return 0.5 * inputs * (1 + t)
        from scipy.special import erf  # lazily: `import chainrule` is NumPy-only

        cdf = 0.5 * (1 + erf(inputs * inputs.dtype.type(1 / math.sqrt(2.0))))
        self.cache = (inputs, cdf)
        return inputs * cdf

    def backward(self, d_out):
        """Exact: ``Phi(x) + x phi(x)`` with ``phi`` the normal density. Tanh: the
        product rule on ``0.5 x (1 + t)``, with ``dt/dx = (1 - t^2) sqrt(2/pi) (1 + 3
        0.044715 x^2)``; both from the cached input and ``Phi(x)`` or ``t``."""
        inputs, value = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, np.shape(inputs))
        kind = inputs.dtype.type
        if self.approximate == "tanh":
            slope = (1 - value * value) * kind(math.sqrt(2.0 / math.pi)) * (
                1 + kind(3 * 0.044715) * inputs * inputs)
            return d_out * (0.5 * (1 + value) + 0.5 * inputs * slope)
        density = np.exp(-0.5 * inputs * inputs) * kind(1 / math.sqrt(2 * math.pi))
        return d_out * (value + inputs * density)

    def __repr__(self):
        return "GELU()" if self.approximate == "none" else f"GELU(approximate={self.approximate!r})"


class SiLU(Layer):
    """Sigmoid linear unit (swish) ``out = x * sigmoid(x)``, as ``torch.nn.SiLU()``.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = {x} * s,  s = 1 / (1 + exp(-{x}))",
                 ("d{x} = d{y} * s * (1 + {x} * (1 - s))",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # functional.sigmoid: overflow-free for any input.
        s = sigmoid(inputs)
        self.cache = (inputs, s)
        return inputs * s

    def backward(self, d_out):
        """``d (x s)/dx = s + x s (1 - s)``, from the cached input and sigmoid."""
        inputs, s = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, np.shape(inputs))
        return d_out * (s * (1 + inputs * (1 - s)))


class Hardtanh(Layer):
    """``out = clip(inputs, min_val, max_val)``, as ``torch.nn.Hardtanh(min_val,
    max_val)``; the slope is 1 strictly between the bounds and 0 elsewhere (at the
    bounds too, as torch's backward).

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    min_val, max_val : float, default=-1.0, 1.0
        Finite, ``min_val < max_val``.
    """

    equations = ("{y} = clip({x}, min, max)", ("d{x} = d{y} * (min < {x} < max)",))

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__()
        self.min_val = check_finite_float(min_val, "min_val")
        self.max_val = check_finite_float(max_val, "max_val")
        if not self.min_val < self.max_val:
            raise ValueError(f"min_val must be below max_val, got min_val={self.min_val!r}, "
                             f"max_val={self.max_val!r}")
        self.equations = (f"{{y}} = clip({{x}}, {self.min_val:g}, {self.max_val:g})",
                          (f"d{{x}} = d{{y}} * ({self.min_val:g} < {{x}} < "
                           f"{self.max_val:g})",))

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"min_val": self.min_val, "max_val": self.max_val}

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        low, high = inputs.dtype.type(self.min_val), inputs.dtype.type(self.max_val)
        self.cache = (inputs > low) & (inputs < high)
        return np.clip(inputs, low, high)

    def backward(self, d_out):
        """The gradient passes where the input was strictly inside the bounds."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        return d_out * self.cache

    def __repr__(self):
        return f"Hardtanh(min_val={self.min_val}, max_val={self.max_val})"


class ReLU6(Hardtanh):
    """``out = min(max(0, inputs), 6)``, as ``torch.nn.ReLU6`` (MobileNet's activation):
    :class:`Hardtanh` from 0 to 6.

    Shape: inputs of any shape -> out of the same shape.
    """

    def __init__(self):
        super().__init__(0.0, 6.0)

    def get_config(self) -> dict:
        """No arguments."""
        return {}

    def __repr__(self):
        return "ReLU6()"


def _hard_gate(inputs):
    """``clip(x + 3, 0, 6)`` and where ``-3 < x < 3``: the piece Hardsigmoid and
    Hardswish share, in the dtype of ``inputs``."""
    three, six = inputs.dtype.type(3), inputs.dtype.type(6)
    return np.clip(inputs + three, 0, six), (inputs > -three) & (inputs < three)


class Hardsigmoid(Layer):
    """``out = clip(x + 3, 0, 6) / 6``, as ``torch.nn.Hardsigmoid()``: a piecewise-linear
    sigmoid (MobileNetV3's gates), 0 below -3 and 1 above 3.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = clip({x} + 3, 0, 6) / 6", ("d{x} = d{y} * (-3 < {x} < 3) / 6",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # Divided by 6 rather than times 1/6: torch's values, to the last bit.
        gate, self.cache = _hard_gate(inputs)
        return gate / inputs.dtype.type(6)

    def backward(self, d_out):
        """The slope 1/6 strictly between -3 and 3 (0 at the corners, as torch's)."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        return d_out * np.where(self.cache, d_out.dtype.type(1 / 6), d_out.dtype.type(0))


class Hardswish(Layer):
    """``out = x * clip(x + 3, 0, 6) / 6``, as ``torch.nn.Hardswish()``: a piecewise
    SiLU (MobileNetV3's activation), 0 below -3 and ``x`` above 3.

    Shape: inputs of any shape -> out of the same shape.
    """

    equations = ("{y} = {x} * clip({x} + 3, 0, 6) / 6",
                 ("d{x} = d{y} * (0 if {x} <= -3, {x} / 3 + 1/2 if -3 < {x} < 3, "
                  "1 if {x} >= 3)",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        gate, inside = _hard_gate(inputs)
        self.cache = (inputs, inside)
        return inputs * gate / inputs.dtype.type(6)

    def backward(self, d_out):
        """``x / 3 + 1/2`` strictly between -3 and 3, 1 from 3 on, 0 up to -3: torch's
        choice at the two corners."""
        inputs, inside = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, np.shape(inputs))
        kind = d_out.dtype.type
        slope = np.where(inside, inputs / kind(3) + kind(0.5),
                         (inputs >= 3).astype(d_out.dtype))
        return d_out * slope


class ELU(Layer):
    """Exponential linear unit, as ``torch.nn.ELU(alpha)``: ``out = x`` for ``x > 0``,
    ``alpha (exp(x) - 1)`` elsewhere.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    alpha : float, default=1.0
        The value the negative side tends to is ``-alpha``; any finite number.
    """

    equations = ("{y} = {x} if {x} > 0 else exp({x}) - 1",
                 ("d{x} = d{y} * (1 if {x} > 0 else exp({x}))",))

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = check_finite_float(alpha, "alpha")
        if self.alpha != 1.0:   # explain() shows the alpha in use
            a = f"{self.alpha:g}"
            self.equations = (f"{{y}} = {{x}} if {{x}} > 0 else {a} (exp({{x}}) - 1)",
                              (f"d{{x}} = d{{y}} * (1 if {{x}} > 0 else {a} exp({{x}}))",))

    def get_config(self) -> dict:
        """The constructor argument, for model files."""
        return {"alpha": self.alpha}

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        positive = inputs > 0
        negative = np.minimum(inputs, 0)   # the exponentials never overflow
        # expm1 for the value: exp(x) - 1 cancels near 0; exp for the slope: expm1(x) + 1
        # cancels far below it (0 for x = -40, where the slope is 4e-18 alpha).
        self.cache = (positive, np.exp(negative))
        return np.where(positive, inputs, self.alpha * np.expm1(negative))

    def backward(self, d_out):
        """Slope 1 where the input was positive and ``alpha exp(x)`` elsewhere."""
        positive, e = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, np.shape(positive))
        return d_out * np.where(positive, 1, self.alpha * e)

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class Softplus(Layer):
    """Softplus ``out = log(1 + exp(beta x)) / beta``, a smooth ReLU, as
    ``torch.nn.Softplus(beta, threshold)``: ``out = x`` where ``beta x > threshold``.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    beta : float, default=1.0
        Sharpness, a finite number > 0: the larger, the closer to ReLU.
    threshold : float, default=20.0
        Above it (in ``beta x``) the output is ``x`` itself, as PyTorch's, within
        ``exp(-threshold) / beta`` of the formula. (Also above ``log`` of the dtype's
        largest number, where PyTorch's ``exp`` overflows to an infinite output.)
    """

    equations = ("{y} = log(1 + exp({x}))", ("d{x} = d{y} * sigmoid({x})",))

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = check_positive_float(beta, "beta")
        self.threshold = check_finite_float(threshold, "threshold")
        if self.beta != 1.0:
            b = f"{self.beta:g}"
            self.equations = (f"{{y}} = log(1 + exp({b} {{x}})) / {b}",
                              (f"d{{x}} = d{{y}} * sigmoid({b} {{x}})",))

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"beta": self.beta, "threshold": self.threshold}

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        scaled = inputs * self.beta   # a Python float keeps float32 in float32
        # Past log(max) exp overflows, where log(1 + exp(s)) = s to the last bit.
        limit = min(self.threshold, math.log(np.finfo(inputs.dtype).max) - 1)
        linear = scaled > limit
        e = np.exp(np.minimum(scaled, limit))   # (the linear side's is not used)
        self.cache = (linear, e)
        return np.where(linear, inputs, np.log1p(e) / self.beta)

    def backward(self, d_out):
        """Slope ``sigmoid(beta x) = e / (1 + e)`` with ``e = exp(beta x)``; 1 where the
        output is ``x``."""
        linear, e = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, np.shape(linear))
        return np.where(linear, d_out, d_out * e / (e + 1))

    def __repr__(self):
        options = [f"beta={self.beta}"] if self.beta != 1.0 else []
        options += [f"threshold={self.threshold}"] if self.threshold != 20.0 else []
        return f"Softplus({', '.join(options)})"


class PReLU(Layer):
    """Parametric ReLU, as ``torch.nn.PReLU(num_parameters, init)``: ``out = x`` where
    ``x > 0``, ``a x`` elsewhere, with the slope ``a`` learned (He et al., 2015).

    Shape: inputs (N, C, ...) -> out of the same shape; slope (num_parameters,), one
    slope for every entry, or one per channel (axis 1: ``num_parameters = C``).

    Parameters
    ----------
    num_parameters : int, default=1
        1, or the number of channels of the inputs.
    init : float, default=0.25
        The slopes' initial value (PyTorch's default), any finite number.
    """

    num_params = 1
    param_names = ("slope",)
    equations = ("{y} = where({x} > 0, {x}, a * {x})",
                 ("d{x} = d{y} * where({x} > 0, 1, a)",
                  "da = sum(d{y} * min({x}, 0))   (per channel: over all but axis 1)"))

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters = check_positive_int(num_parameters, "num_parameters")
        self.init = check_finite_float(init, "init")

    def param_shapes(self) -> list[tuple]:
        """The shape of ``[slope]``."""
        return [(self.num_parameters,)]

    def init_params(self, rng, dtype):
        """``[slope]``, every entry ``init`` (nothing drawn from ``rng``)."""
        return [np.full(self.num_parameters, self.init, dtype=dtype)]

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"num_parameters": self.num_parameters, "init": self.init}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` has ``num_parameters`` channels
        (its first axis) when there is more than one slope."""
        if self.num_parameters > 1 and (not shape or shape[0] != self.num_parameters):
            raise ValueError(f"it has {self.num_parameters} slopes, one per channel (axis "
                             f"1), for inputs of shape {shape_str((-1,) + tuple(shape))}")

    def _slopes(self, inputs, slope):
        """``slope`` shaped to broadcast over ``inputs``: along axis 1 when per channel."""
        if self.num_parameters == 1:
            return slope
        return slope.reshape((1, -1) + (1,) * (inputs.ndim - 2))

    def forward(self, inputs, slope):
        inputs = self._check_input(inputs)
        if self.validate:
            slope = as_float_array(slope, "slope", ndim=1)
            if slope.shape != (self.num_parameters,):
                raise ValueError(f"slope must have shape ({self.num_parameters},), got "
                                 f"{shape_str(slope.shape)}")
            if inputs.ndim < 1 + (self.num_parameters > 1):
                raise ValueError(f"inputs must have a batch axis (and a channel axis for "
                                 f"per-channel slopes), got shape {shape_str(inputs.shape)}")
            self.check_input_shape(inputs.shape[1:])
        positive = inputs > 0
        a = self._slopes(inputs, slope)
        self.cache = (positive, np.where(positive, 0, inputs), a)   # min(x, 0), for da
        return np.where(positive, inputs, a * inputs)

    def backward(self, d_out):
        """``d_inputs = d_out * where(x > 0, 1, a)``; ``d_slope`` sums ``d_out * min(x,
        0)`` over every axis (but the channel axis for per-channel slopes)."""
        positive, negative, a = self.cache if self.cache is not None else (None, None, None)
        d_out = self._check_d_out(d_out, np.shape(positive))
        d_inputs = np.where(positive, d_out, a * d_out)
        product = d_out * negative
        if self.num_parameters == 1:
            return d_inputs, np.atleast_1d(product.sum())
        axes = (0,) + tuple(range(2, product.ndim))
        return d_inputs, product.sum(axis=axes)

    def __repr__(self):
        options = [str(self.num_parameters)] if self.num_parameters != 1 else []
        options += [f"init={self.init}"] if self.init != 0.25 else []
        return f"PReLU({', '.join(options)})"
