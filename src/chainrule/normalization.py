"""Normalisation layers and a softmax layer, each backward pass right under its forward.

:class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`LayerNorm` take PyTorch's
constructor arguments and defaults (``eps=1e-5``, ``momentum=0.1``), so that a model
moved between the two libraries gives the same numbers; :class:`Softmax` is the
max-shifted softmax as a layer. They keep the contract of :mod:`chainrule.layers`
(``forward(inputs, *params)`` caches what ``backward(d_out)`` needs), declare
``param_names`` and ``init_params`` so that :class:`~chainrule.models.Sequential` can
build them, and a batch normalisation declares its running statistics as
``buffer_names``. All work in float32 and float64 (the dtype of the inputs).
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_float_array,
    check_in_interval,
    check_positive_float,
    check_positive_int,
    shape_str,
)
from .layers import Layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "Softmax"]


def _check_affine_params(inputs, gamma, beta, expected, what):
    """``(gamma, beta)`` as arrays of shape ``expected``, the layer's own size."""
    gamma = as_float_array(gamma, "gamma", ndim=None)
    beta = as_float_array(beta, "beta", ndim=None)
    for name, a in (("gamma", gamma), ("beta", beta)):
        if a.shape != expected:
            raise ValueError(f"{name} must have shape {shape_str(expected)} ({what}), got "
                             f"{shape_str(a.shape)}")
    return gamma, beta


class _BatchNorm(Layer):
    """Batch normalisation over every axis but the channel axis (axis 1).

    Subclasses set ``input_ndims`` (the input ranks they accept).
    """

    num_params = 2
    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")
    input_ndims: tuple[int, ...] = ()
    equations = ("{y} = {gamma} * ({x} - mu) / sqrt(var + eps) + {beta}   (training: batch "
                 "mu, var; eval: running_mean, running_var)",
                 ("d{beta} = sum(d{y})", "d{gamma} = sum(d{y} * xhat)",
                  "d{x} = s/M * (M dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))   "
                  "(eval: d{x} = dxhat * s)"))

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        self.eps = check_positive_float(eps, "eps")
        self.momentum = check_in_interval(momentum, "momentum", 0.0, 1.0, high_closed=True)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[gamma, beta]``."""
        return [(self.num_features,)] * 2

    def init_params(self, rng, dtype):
        """``[gamma, beta]``: ones and zeros, as PyTorch starts them (``rng`` unused)."""
        return [np.ones(self.num_features, dtype=dtype), np.zeros(self.num_features, dtype=dtype)]

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) + 1 not in self.input_ndims or shape[0] != self.num_features:
            raise ValueError(f"it takes {' or '.join(map(str, self.input_ndims))}-D inputs "
                             f"with {self.num_features} channels on axis 1")

    def _axes_and_shape(self, inputs):
        """The axes the statistics run over and the broadcast shape of a channel vector."""
        axes = (0,) + tuple(range(2, inputs.ndim))
        return axes, (1, -1) + (1,) * (inputs.ndim - 2)

    def forward(self, inputs, gamma, beta):
        """Normalise each channel, then scale by ``gamma`` and shift by ``beta``.

        In training the statistics are the batch's (biased variance) and the running
        averages move towards them, ``r <- (1 - momentum) r + momentum * batch``, with
        the unbiased variance ``var * M / (M - 1)`` (``M`` values per channel), as in
        PyTorch; in evaluation the running statistics are used and nothing changes.
        """
        if self.validate:
            inputs = as_float_array(inputs, "inputs", ndim=None)
            if inputs.ndim not in self.input_ndims or inputs.shape[1] != self.num_features:
                raise ValueError(f"inputs must have {' or '.join(map(str, self.input_ndims))} "
                                 f"dimensions with {self.num_features} channels on axis 1, "
                                 f"got shape {shape_str(inputs.shape)}")
            gamma, beta = _check_affine_params(inputs, gamma, beta, (self.num_features,),
                                               "one per channel")
        axes, bshape = self._axes_and_shape(inputs)
        m = inputs.size // inputs.shape[1]
        if self.training:
            if m < 2:
                # PyTorch refuses too: the unbiased variance of one value is undefined.
                raise ValueError(f"{type(self).__name__} in training needs more than one "
                                 f"value per channel, got inputs of shape "
                                 f"{shape_str(inputs.shape)}")
            mean, var = inputs.mean(axis=axes), inputs.var(axis=axes)
            # In place and in the buffers' own dtype: the network owns these arrays.
            for buffer, batch in ((self.running_mean, mean), (self.running_var, var * m / (m - 1))):
                buffer *= 1 - self.momentum
                buffer += self.momentum * batch
        else:
            mean = self.running_mean.astype(inputs.dtype, copy=False)
            var = self.running_var.astype(inputs.dtype, copy=False)
        scale = 1.0 / np.sqrt(var + inputs.dtype.type(self.eps))
        xhat = (inputs - mean.reshape(bshape)) * scale.reshape(bshape)
        self.cache = (xhat, scale, gamma, self.training)
        return xhat * gamma.reshape(bshape) + beta.reshape(bshape)

    def backward(self, d_out):
        """Gradients of ``inputs``, ``gamma`` and ``beta``.

        ``dbeta`` and ``dgamma`` sum over the axes the channel vectors are broadcast
        along. In training every input also moves the batch mean and variance; with
        ``dxhat = d_out * gamma`` and ``s = 1 / sqrt(var + eps)`` the three paths add up to
        ``dx = s / M (M dxhat - sum dxhat - xhat sum(dxhat xhat))``. In evaluation the
        statistics are constants and ``dx = dxhat * s``.
        """
        xhat, scale, gamma, training = self.cache if self.cache is not None else (None,) * 4
        d_out = self._check_d_out(d_out, np.shape(xhat))
        axes, bshape = self._axes_and_shape(xhat)
        d_gamma = (d_out * xhat).sum(axis=axes)
        d_beta = d_out.sum(axis=axes)
        d_xhat = d_out * gamma.reshape(bshape)
        if training:
            m = xhat.size // xhat.shape[1]
            mean_term = d_xhat.sum(axis=axes).reshape(bshape)
            var_term = xhat * (d_xhat * xhat).sum(axis=axes).reshape(bshape)
            d_inputs = (scale / m).reshape(bshape) * (m * d_xhat - mean_term - var_term)
        else:
            d_inputs = d_xhat * scale.reshape(bshape)
        return d_inputs, d_gamma, d_beta

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features})"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of each feature over the batch, as ``torch.nn.BatchNorm1d``.

    Shape: inputs (N, C) or (N, C, L), gamma (C,), beta (C,) -> out of the inputs' shape.
    Buffers ``running_mean`` and ``running_var``, shape (C,).

    Parameters
    ----------
    num_features : int
        ``C``, the number of features (channels).
    eps : float, default=1e-5
        Added to the variance before its square root.
    momentum : float, default=0.1
        Weight of the new batch in the running statistics (PyTorch's convention).
    """

    input_ndims = (2, 3)
    #: Rows a training batch needs (fit checks it first): one row of (N, C) inputs
    #: gives each feature a single value, and no variance.
    min_batch_rows = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of each channel over N, H and W, as ``torch.nn.BatchNorm2d``.

    Shape: inputs (N, C, H, W), gamma (C,), beta (C,) -> out (N, C, H, W).
    Buffers ``running_mean`` and ``running_var``, shape (C,). Parameters as
    :class:`BatchNorm1d`.
    """

    input_ndims = (4,)


class LayerNorm(Layer):
    """Normalisation of each sample over its last dimensions, as ``torch.nn.LayerNorm``.

    Shape: inputs (N, ..., *normalized_shape), gamma and beta ``normalized_shape`` ->
    out of the inputs' shape. The same in training and evaluation.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions each sample is normalised over.
    eps : float, default=1e-5
    """

    num_params = 2
    param_names = ("gamma", "beta")
    equations = ("{y} = {gamma} * ({x} - mean) / sqrt(var + eps) + {beta}   (per sample)",
                 ("d{beta} = sum_rows(d{y})", "d{gamma} = sum_rows(d{y} * xhat)",
                  "d{x} = s/D * (D dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))"))

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else normalized_shape
        try:
            self.normalized_shape = tuple(check_positive_int(s, "normalized_shape")
                                          for s in shape)
        except TypeError:
            raise TypeError(f"normalized_shape must be an int or a tuple of ints, got "
                            f"{normalized_shape!r}") from None
        if not self.normalized_shape:
            raise ValueError("normalized_shape must name at least one dimension, got ()")
        self.eps = check_positive_float(eps, "eps")

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[gamma, beta]``."""
        return [self.normalized_shape] * 2

    def init_params(self, rng, dtype):
        """``[gamma, beta]``: ones and zeros (``rng`` unused)."""
        return [np.ones(self.normalized_shape, dtype=dtype),
                np.zeros(self.normalized_shape, dtype=dtype)]

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if tuple(shape[-len(self.normalized_shape):]) != self.normalized_shape:
            raise ValueError(f"its inputs must end in {shape_str(self.normalized_shape)}")

    def forward(self, inputs, gamma, beta):
        """``gamma * (x - mean) / sqrt(var + eps) + beta``, statistics per sample."""
        k = len(self.normalized_shape)
        if self.validate:
            inputs = as_float_array(inputs, "inputs", ndim=None)
            if inputs.ndim < k + 1 or inputs.shape[-k:] != self.normalized_shape:
                raise ValueError(f"inputs must end in {shape_str(self.normalized_shape)} "
                                 f"after a batch axis, got shape {shape_str(inputs.shape)}")
            gamma, beta = _check_affine_params(inputs, gamma, beta, self.normalized_shape,
                                               "normalized_shape")
        axes = tuple(range(inputs.ndim - k, inputs.ndim))
        mean = inputs.mean(axis=axes, keepdims=True)
        scale = 1.0 / np.sqrt(inputs.var(axis=axes, keepdims=True) + inputs.dtype.type(self.eps))
        xhat = (inputs - mean) * scale
        self.cache = (xhat, scale, gamma, axes)
        return xhat * gamma + beta

    def backward(self, d_out):
        """As batch normalisation's training backward, over each sample's own ``D``
        values; ``dgamma`` and ``dbeta`` sum over the batch (and any middle axes)."""
        xhat, scale, gamma, axes = self.cache if self.cache is not None else (None,) * 4
        d_out = self._check_d_out(d_out, np.shape(xhat))
        outer = tuple(range(xhat.ndim - len(axes)))
        d_gamma = (d_out * xhat).sum(axis=outer)
        d_beta = d_out.sum(axis=outer)
        d_xhat = d_out * gamma
        d = int(np.prod([xhat.shape[a] for a in axes]))
        d_inputs = (scale / d) * (d * d_xhat - d_xhat.sum(axis=axes, keepdims=True)
                                  - xhat * (d_xhat * xhat).sum(axis=axes, keepdims=True))
        return d_inputs, d_gamma, d_beta

    def __repr__(self):
        shape = self.normalized_shape
        return f"LayerNorm({shape[0] if len(shape) == 1 else shape})"


class Softmax(Layer):
    """Softmax along ``axis`` (the rows' entries by default), max-shifted so that no
    exponential overflows, as ``torch.nn.Softmax(dim=axis)``.

    Shape: inputs of any shape with at least ``axis + 1`` dimensions -> out of the
    same shape.

    Parameters
    ----------
    axis : int, default=1
    """

    equations = ("{y} = exp({x} - max {x}) / sum(exp({x} - max {x}))",
                 ("d{x} = {y} * (d{y} - sum({y} * d{y}))",))

    def __init__(self, axis=1):
        super().__init__()
        self.axis = check_positive_int(axis, "axis", minimum=0) if axis != -1 else -1

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"axis": self.axis}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def forward(self, inputs):
        inputs = self._check_input(inputs, ndim=None)
        if self.validate and not -inputs.ndim <= self.axis < inputs.ndim:
            raise ValueError(f"axis {self.axis} is out of range for inputs of shape "
                             f"{shape_str(inputs.shape)}")
        e = np.exp(inputs - inputs.max(axis=self.axis, keepdims=True))
        out = e / e.sum(axis=self.axis, keepdims=True)
        self.cache = out
        return out

    def backward(self, d_out):
        """Each output depends on every input along ``axis``: the Jacobian
        ``diag(s) - s s^T`` applied to ``d_out`` is ``s * (d_out - sum(s * d_out))``."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        s = self.cache
        return s * (d_out - (s * d_out).sum(axis=self.axis, keepdims=True))

    def __repr__(self):
        return f"Softmax(axis={self.axis})"
