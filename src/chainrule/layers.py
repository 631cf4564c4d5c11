"""Layers with a hand-written backward pass directly under each forward pass.

The contract, kept from the homework:

* ``forward(inputs, *params)`` computes the output and caches exactly what
  ``backward`` needs;
* ``backward(d_out)`` returns ``d_inputs`` for a layer without parameters and
  ``(d_inputs, *d_params)`` for a layer with parameters, in the order the
  parameters were passed to ``forward``.

A layer may also declare ``param_names`` (its own names for those parameters, e.g.
``("W", "b")``) with ``init_params(rng, dtype)`` creating them, so that
:class:`~chainrule.models.Sequential` can build it (``Affine(64, 128)``), and
``buffer_names``: non-trainable arrays it holds as attributes (running statistics),
which the network owns and snapshots with the parameters.

Every layer has two switches, set by the network that owns it: ``training``
(Dropout and the batch normalisations read it) and ``validate``. A layer used on its own
checks its inputs; inside a network the inputs were checked once at the entry point,
so the network turns the per-layer checks off.
"""

from __future__ import annotations

import math

import numpy as np

from ._blas import matmul, matmul_nt, matmul_tn
from ._validation import (
    as_float_array,
    check_bool,
    check_choice,
    check_finite_float,
    check_in_interval,
    check_positive_float,
    check_positive_int,
    check_rng,
    ones,
    shape_str,
    zeros_for,
)
from .functional import sigmoid
from .init import get_initializer

__all__ = ["Layer", "Affine", "Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU",
           "ELU", "Softplus", "Dropout"]


class Layer:
    """Base class: holds the switches and the checks shared by all layers.

    Subclasses set ``num_params`` (how many parameter arrays ``forward`` takes).
    """

    num_params = 0
    equations: tuple[str, tuple[str, ...]] = ("{y} = f({x})", ("d{x} = f'({x}) * d{y}",))
    training = True
    validate = True

    def __init__(self):
        self.cache = None

    def _check_input(self, inputs, name="inputs", ndim=None):
        if not self.validate:
            return inputs
        return as_float_array(inputs, name, ndim=ndim)

    def _check_d_out(self, d_out, expected_shape):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if not self.validate:
            return d_out
        d_out = as_float_array(d_out, "d_out", ndim=None)
        if d_out.shape != tuple(expected_shape):
            raise ValueError(f"d_out must have shape {shape_str(expected_shape)} (the shape "
                             f"of this layer's output), got {shape_str(d_out.shape)}")
        return d_out

    def __repr__(self):
        return f"{type(self).__name__}()"


class Affine(Layer):
    """Fully connected layer ``out = inputs @ weight + bias``.

    Shape: inputs (N, D), weight (D, H), bias (H,) -> out (N, H).

    Set ``compute_input_grad = False`` on a first layer, whose input is the data, to
    skip the ``d_out @ weight.T`` product nobody reads; ``backward`` then returns
    ``None`` in place of ``d_inputs``.

    ``Affine(..., bias=False)`` is ``out = inputs @ weight`` (``nn.Linear(bias=False)``,
    e.g. before a batch normalisation, whose shift would cancel a bias): its
    ``param_names`` are ``("W",)``, ``forward`` takes the weight only and ``backward``
    returns ``(d_inputs, d_weight)``.
    """

    num_params = 2
    #: The layer's own names for its parameters; a network adds a number (``W1``).
    param_names = ("W", "b")
    compute_input_grad = True
    #: Forward and backward equations for ``Network.explain``; placeholders name
    #: the input, the output and the parameters.
    equations = ("{y} = {x} @ {W} + {b}",
                 ("d{W} = {x}^T @ d{y}", "d{b} = sum_rows(d{y})", "d{x} = d{y} @ {W}^T"))

    def __init__(self, n_in=None, n_out=None, init="xavier", bias_init=None, bias=True):
        """``Affine()`` takes its weights as arguments (the homework); ``Affine(D, H)``
        also knows their shapes, so that :class:`~chainrule.models.Sequential` can
        create them: ``init`` draws the weight (a name of :mod:`chainrule.init` or a
        callable ``f(shape, rng=, dtype=)``), ``bias_init(D, H, rng, dtype)`` the
        bias (zeros when None); ``bias=False`` leaves the bias out."""
        super().__init__()
        self.has_bias = check_bool(bias, "bias")
        if not self.has_bias:  # the instance's own: the class's are those with a bias
            self.num_params, self.param_names = 1, ("W",)
            self.equations = ("{y} = {x} @ {W}", ("d{W} = {x}^T @ d{y}", "d{x} = d{y} @ {W}^T"))
        if (n_in is None) != (n_out is None):
            raise ValueError(f"Affine takes both sizes or neither, got n_in={n_in!r}, "
                             f"n_out={n_out!r}")
        self.sizes = None if n_in is None else (check_positive_int(n_in, "n_in"),
                                                check_positive_int(n_out, "n_out"))
        self.init = get_initializer(init) if isinstance(init, str) else init
        if not callable(self.init):
            raise TypeError(f"init must be an initialiser's name or a callable f(shape, "
                            f"rng=, dtype=), got {type(init).__name__} {init!r}")
        if bias_init is not None and not callable(bias_init):
            raise TypeError(f"bias_init must be None (zeros) or a callable (D, H, rng, "
                            f"dtype) -> (H,) array, got {type(bias_init).__name__} "
                            f"{bias_init!r}")
        self.bias_init = bias_init

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[weight, bias]`` (``[weight]`` without a bias); none known
        for ``Affine()``, which takes its weights as they come."""
        if self.sizes is None:
            return []
        n_in, n_out = self.sizes
        return [(n_in, n_out), (n_out,)] if self.has_bias else [(n_in, n_out)]

    def init_params(self, rng, dtype):
        """The initial ``[weight, bias]``, drawn in that order from ``rng``."""
        if self.sizes is None:
            raise ValueError("Affine() has no sizes to create its parameters from: build "
                             "it as Affine(n_in, n_out) inside a Sequential")
        n_in, n_out = self.sizes
        weight = self.init([n_in, n_out], rng=rng, dtype=dtype)
        if not self.has_bias:
            return [weight]
        bias = (np.zeros(n_out, dtype=dtype) if self.bias_init is None
                else self.bias_init(n_in, n_out, rng, dtype))
        return [weight, bias]

    def forward(self, inputs, weight, bias=None):
        """Forward pass.

        Parameters
        ----------
        inputs : ndarray, shape (N, D)
        weight : ndarray, shape (D, H)
        bias : ndarray, shape (H,)
            Given exactly when the layer has one (``bias=True``, the default).

        Returns
        -------
        out : ndarray, shape (N, H)
        """
        if self.validate:
            inputs = as_float_array(inputs, "inputs", ndim=2)
            weight = as_float_array(weight, "weight", ndim=2)
            if (bias is None) == self.has_bias:
                raise TypeError(f"{self!r} takes {'a' if self.has_bias else 'no'} bias "
                                f"after its weight, got {'none' if bias is None else 'one'}")
            if inputs.shape[1] != weight.shape[0]:
                raise ValueError(f"inputs has {inputs.shape[1]} features but weight expects "
                                 f"{weight.shape[0]}: inputs {shape_str(inputs.shape)}, "
                                 f"weight {shape_str(weight.shape)}")
            if bias is not None and (bias := as_float_array(bias, "bias", ndim=1)).shape[0] \
                    != weight.shape[1]:
                raise ValueError(f"bias must have shape ({weight.shape[1]},) to match weight "
                                 f"{shape_str(weight.shape)}, got {shape_str(bias.shape)}")
        self.cache = (inputs, weight)
        # Adding the bias in place saves a second (N, H) array: 2.6x faster on the
        # full digits batch, where allocating that array dominates.
        out = matmul(inputs, weight)
        if bias is not None:
            out += bias
        return out

    def backward(self, d_out):
        """Backward pass.

        With ``out = X W + b``: ``dX = d_out W^T`` (N,H)@(H,D), ``dW = X^T d_out``
        (D,N)@(N,H), and ``db`` sums ``d_out`` over the batch because ``b`` is
        broadcast to every row.

        Returns
        -------
        d_inputs : ndarray, shape (N, D), or None when ``compute_input_grad`` is off
        d_weight : ndarray, shape (D, H)
        d_bias : ndarray, shape (H,); left out without a bias
        """
        inputs, weight = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, (0 if inputs is None else inputs.shape[0],
                                          0 if weight is None else weight.shape[1]))
        d_inputs = matmul_nt(d_out, weight) if self.compute_input_grad else None
        d_weight = matmul_tn(inputs, d_out)
        if not self.has_bias:
            return d_inputs, d_weight
        # The column sums as a matrix-vector product: NumPy's sum over the rows of a
        # narrow (N, H) array is ~4x slower (23 us against 5 us for 1347 x 10).
        d_bias = ones(d_out.shape[0], d_out.dtype) @ d_out
        return d_inputs, d_weight, d_bias

    def __repr__(self):
        sizes = "" if self.sizes is None else f"{self.sizes[0]}, {self.sizes[1]}"
        return f"Affine({sizes}{', ' if sizes else ''}bias=False)" if not self.has_bias \
            else f"Affine({sizes})"


class Identity(Layer):
    """The identity ``out = inputs``: scikit-learn's ``activation='identity'`` (a linear
    hidden layer, e.g. a bottleneck).

    Shape: inputs of any shape -> out of the same shape (the same array, not a copy).
    """

    equations = ("{y} = {x}", ("d{x} = d{y}",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # Only the shape is kept, for backward's check of d_out.
        self.cache = np.shape(inputs)
        return inputs

    def backward(self, d_out):
        """The slope is 1 everywhere: ``d_out`` passes through unchanged."""
        return self._check_d_out(d_out, self.cache)


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


class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``p`` and
    scale the survivors by ``1 / (1 - p)``; outside training, the identity.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    p : float, default=0.5
        Drop probability, in [0, 1).
    rng : None, int or numpy.random.Generator
        Source of the masks. ``None``: the generator of the network it joins
        (``Sequential(..., rng=...)``), else NumPy's global one.
    """

    equations = ("{y} = {x} * M / (1 - p)   (M: Bernoulli keep-mask, training only)",
                 ("d{x} = d{y} * M / (1 - p)",))

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = check_in_interval(p, "p", 0.0, 1.0)
        self.rng = check_rng(rng)
        self.rng_given = rng is not None

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        if not self.training or self.p == 0.0:
            self.cache = ("identity", np.shape(inputs))
            return inputs
        keep = self.rng.random(np.shape(inputs)) >= self.p
        mask = keep.astype(inputs.dtype) / inputs.dtype.type(1.0 - self.p)
        self.cache = ("mask", mask)
        return inputs * mask

    def backward(self, d_out):
        """Gradients flow only through the kept entries, scaled like the forward pass."""
        kind, value = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, value if kind == "identity" else np.shape(value))
        return d_out if kind == "identity" else d_out * value

    def __repr__(self):
        return f"Dropout(p={self.p})"
