"""Group normalisation (Wu & He, 2018), as ``torch.nn.GroupNorm``, backward under forward.

Each sample's channels are split into ``num_groups`` consecutive groups, and each group
is normalised over its channels and positions together: the statistics of a sample
only, so that the output does not depend on the batch (unlike a batch normalisation,
which a small batch makes noisy) and training and evaluation compute the same thing.
``num_groups=1`` normalises every channel and position of a sample together;
``num_groups=num_channels`` each channel alone (an instance normalisation).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_bool, check_positive_float, check_positive_int
from .layers import Layer

__all__ = ["GroupNorm"]


class GroupNorm(Layer):
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` with the biased ``mean`` and
    ``var`` of each sample's group of channels (and their positions), as
    ``torch.nn.GroupNorm(num_groups, num_channels, eps, affine)``.

    Shape: inputs (N, C, *), gamma and beta (C,) -> out of the inputs' shape.

    Parameters
    ----------
    num_groups : int
        Divides ``num_channels``.
    num_channels : int
        ``C``, the inputs' axis 1.
    eps : float, default=1e-5
    affine : bool, default=True
        Learn a scale ``gamma`` and a shift ``beta`` per channel; without, the layer has
        no parameters.
    """

    equations = ("{y} = {gamma} * ({x} - mean_g) / sqrt(var_g + eps) + {beta}   (g: each "
                 "sample's group of channels)",
                 ("d{beta} = sum(d{y}, all axes but C)",
                  "d{gamma} = sum(d{y} * xhat, all axes but C)",
                  "d{x} = s/m * (m dxhat - sum_g(dxhat) - xhat * sum_g(dxhat * xhat))   "
                  "(sum_g: over each sample's group, m values; dxhat = d{y} * {gamma}, "
                  "s = 1/sqrt(var_g + eps))"))

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        self.num_groups = check_positive_int(num_groups, "num_groups")
        self.num_channels = check_positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_groups must divide num_channels, got num_groups="
                             f"{self.num_groups} for num_channels={self.num_channels}")
        self.eps = check_positive_float(eps, "eps")
        self.affine = check_bool(affine, "affine")
        self.param_names = ("gamma", "beta") if self.affine else ()
        self.num_params = len(self.param_names)
        if not self.affine:
            self.equations = ("{y} = ({x} - mean_g) / sqrt(var_g + eps)   (g: each sample's "
                              "group of channels)",
                              ("d{x} = s/m * (m d{y} - sum_g(d{y}) - xhat * sum_g(d{y} * "
                               "xhat))   (sum_g: over each sample's group, m values; s = "
                               "1/sqrt(var_g + eps))",))

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[gamma, beta]`` (none without ``affine``)."""
        return [(self.num_channels,)] * self.num_params

    def init_params(self, rng, dtype):
        """``[gamma, beta]``: ones and zeros (``rng`` unused)."""
        if not self.affine:
            return []
        return [np.ones(self.num_channels, dtype=dtype), np.zeros(self.num_channels, dtype)]

    def get_config(self) -> dict:
        """The constructor arguments (``eps`` and ``affine`` only when not the defaults)."""
        config: dict = {"num_groups": self.num_groups, "num_channels": self.num_channels}
        config.update({"eps": self.eps} if self.eps != 1e-5 else {})
        return config if self.affine else {**config, "affine": False}

    def output_shape(self, shape) -> tuple:
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) < 1 or shape[0] != self.num_channels:
            raise ValueError(f"it takes inputs (N, {self.num_channels}, *)")

    def _check(self, inputs, params):
        inputs = as_float_array(inputs, "inputs", ndim=None)
        if inputs.ndim < 2 or inputs.shape[1] != self.num_channels:
            raise ValueError(f"inputs must have {self.num_channels} channels on axis 1, "
                             f"(N, C, *), got shape {inputs.shape}")
        if len(params) != self.num_params:
            raise TypeError(f"{self!r} takes {' and '.join(self.param_names) or 'nothing'} "
                            f"after its inputs, got {len(params)} arrays")
        params = [as_float_array(p, name, ndim=1) for p, name in
                  zip(params, self.param_names, strict=True)]
        for p, name in zip(params, self.param_names, strict=True):
            if p.shape != (self.num_channels,):
                raise ValueError(f"{name} must have shape ({self.num_channels},), got "
                                 f"{p.shape}")
        return inputs, params

    def forward(self, inputs, *params):
        """The statistics of each sample's groups, as rows of ``(N, G, C/G * positions)``;
        ``params`` are ``gamma`` and ``beta`` when the layer has them."""
        if self.validate:
            inputs, params = self._check(inputs, params)
        n = inputs.shape[0]
        rows = inputs.reshape(n, self.num_groups, -1)
        mean = rows.mean(axis=2, keepdims=True)
        scale = 1.0 / np.sqrt(rows.var(axis=2, keepdims=True) + inputs.dtype.type(self.eps))
        xhat = ((rows - mean) * scale).reshape(inputs.shape)
        channel = (1, -1) + (1,) * (inputs.ndim - 2)   # a channel vector, broadcast
        gamma = params[0].reshape(channel) if params else None
        self.cache = (xhat, scale, gamma)
        return xhat if gamma is None else xhat * gamma + params[1].reshape(channel)

    def backward(self, d_out):
        """As a layer normalisation's over each group's ``M`` entries: ``dx = scale / M
        (M dxhat - sum(dxhat) - xhat sum(dxhat xhat))`` with ``dxhat = gamma d_out``;
        ``dgamma`` and ``dbeta`` sum over every axis but the channels'. Returns ``dx``,
        then ``(dgamma, dbeta)`` with ``affine``."""
        xhat, scale, gamma = self.cache if self.cache is not None else (None,) * 3
        d_out = self._check_d_out(d_out, () if xhat is None else xhat.shape)
        n = xhat.shape[0]
        d_xhat = d_out if gamma is None else d_out * gamma
        rows, d_rows = xhat.reshape(n, self.num_groups, -1), d_xhat.reshape(n, self.num_groups, -1)
        m = rows.shape[2]
        d_inputs = (scale / m) * (m * d_rows - d_rows.sum(axis=2, keepdims=True)
                                  - rows * (d_rows * rows).sum(axis=2, keepdims=True))
        d_inputs = d_inputs.reshape(xhat.shape)
        if gamma is None:
            return d_inputs
        axes = (0,) + tuple(range(2, xhat.ndim))
        return d_inputs, (d_out * xhat).sum(axis=axes), d_out.sum(axis=axes)

    def __repr__(self):
        extra = "" if self.eps == 1e-5 else f", eps={self.eps}"
        extra += "" if self.affine else ", affine=False"
        return f"GroupNorm({self.num_groups}, {self.num_channels}{extra})"
