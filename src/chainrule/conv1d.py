"""Convolution and pooling along one axis, for sequences laid out ``(N, C, L)``
(channels, then length): :class:`Conv1D`, :class:`MaxPool1D`, :class:`AvgPool1D`,
:class:`AdaptiveAvgPool1D` and :class:`AdaptiveMaxPool1D`, as PyTorch's ``Conv1d``,
``MaxPool1d``, ``AvgPool1d``, ``AdaptiveAvgPool1d`` and ``AdaptiveMaxPool1d``.

Each one *is* its 2-D counterpart of :mod:`chainrule.conv` or :mod:`chainrule.pooling`
applied to images one row high: a sequence ``(N, C, L)`` is the image ``(N, C, 1, L)``
(a reshape, no copy), a kernel of ``k`` taps is ``1 x k``, and the output is viewed
back as ``(N, C_out, Lo)``. So there is one im2col, one col2im and one pooling kernel
in the package, and what was measured and tested for them holds here. The settings
are held as the 2-D layer's pairs (``kernel_size == (1, k)``), and each layer reads
and writes them as single numbers: its constructor, ``get_config`` (model files) and
``repr`` say ``Conv1D(16, 32, 5, padding=2)``; only the weight has the 1-D shape
``(C_out, C_in / groups, k)``, PyTorch's.

A network takes 2-D ``X``, so a 1-D CNN starts with ``Unflatten((C, L))`` (one row of
``C * L`` values per sample, channel by channel) and goes back to rows with
``Flatten`` or an :class:`AdaptiveAvgPool1D` of 1 then ``Flatten``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._validation import as_float_array, check_positive_int
from .conv import Conv2D, conv_equations
from .pooling import AdaptiveAvgPool2D, AdaptiveMaxPool2D, AvgPool2D, MaxPool2D

__all__ = ["Conv1D", "MaxPool1D", "AvgPool1D", "AdaptiveAvgPool1D", "AdaptiveMaxPool1D"]


def _single(value, name: str, minimum: int = 1) -> int:
    """An int, or a tuple or list of one int (PyTorch's 1-D modules hold ``(k,)``)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int (or a tuple of one), got {value!r}")
        value = value[0]
    return check_positive_int(value, name, minimum=minimum)


class Conv1D(Conv2D):
    """1-D convolution (cross-correlation, as in PyTorch) along the last axis, with
    padding, stride, dilation and channel groups: :class:`~chainrule.conv.Conv2D` on
    sequences seen as images one row high.

    Shape: inputs (N, C_in, L), weight (C_out, C_in / groups, k), bias (C_out,)
    -> out (N, C_out, Lo), ``Lo = (L + 2 padding - dilation (k - 1) - 1) // stride + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        ``k``, the taps of each filter (a tuple of one int is taken too, as PyTorch
        keeps it).
    stride : int, default=1
    padding : int, 'same' or 'valid', default=0
        Entries added at each end of the sequence; ``'same'`` (stride 1 only) keeps the
        length, the odd one of ``dilation (k - 1)`` going at the end, as in PyTorch.
    dilation : int, default=1
        The spacing of the taps.
    groups : int, default=1
        As :class:`~chainrule.conv.Conv2D`'s (``groups=in_channels``: depthwise).
    bias : bool, default=True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default='zeros'
    init : None, str or callable, default=None
        As :class:`~chainrule.conv.Conv2D`'s; by default PyTorch's
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in / groups k``.

    Notes
    -----
    The 2-D settings it holds are ``kernel_size = (1, k)``, ``stride = (1, s)``,
    ``dilation = (1, d)`` and ``padding = (0, p)`` (or the string given).
    """

    axis_names = ("height", "length")
    weight_layout = "(C_out, C_in / groups, k)"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, init=None):
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, 'same' or 'valid', got {padding!r}")
        padding = padding if isinstance(padding, str) else (0, _single(padding, "padding", 0))
        if padding == "same" and _single(stride, "stride") != 1:   # (said in 1-D terms)
            raise ValueError(f"padding='same' needs stride=1 (as in PyTorch), got "
                             f"stride={stride!r}")
        super().__init__(in_channels, out_channels, (1, _single(kernel_size, "kernel_size")),
                         stride=(1, _single(stride, "stride")), padding=padding,
                         dilation=(1, _single(dilation, "dilation")), groups=groups,
                         bias=bias, padding_mode=padding_mode, init=init)
        self.equations = conv_equations(
            self.has_bias, self.groups, self.padding_mode,
            None if self.dilation[1] == 1 else str(self.dilation[1]),
            window="a row per window of k taps", unit="entries", axes="N, L")

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[weight, bias]`` (``[weight]`` without a bias), the weight
        ``(C_out, C_in / groups, k)``."""
        weight = (self.out_channels, self.in_channels // self.groups, self.kernel_size[1])
        return [weight, (self.out_channels,)] if self.has_bias else [weight]

    def get_config(self) -> dict:
        """The constructor arguments as single numbers (``dilation``, ``groups``,
        ``bias`` and ``padding_mode`` only when not their defaults)."""
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": self.kernel_size[1], "stride": self.stride[1],
                  "padding": self.padding if isinstance(self.padding, str)
                  else self.padding[1]}
        config.update({"dilation": self.dilation[1]} if self.dilation[1] != 1 else {})
        config.update({"groups": self.groups} if self.groups != 1 else {})
        config.update({"padding_mode": self.padding_mode}
                      if self.padding_mode != "zeros" else {})
        return config if self.has_bias else {**config, "bias": False}

    def output_shape(self, shape) -> tuple:
        """``(C_out, Lo)`` for an input ``(C_in, L)``."""
        return (self.out_channels, self._out_hw((1, shape[1]))[1])

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 2 or shape[0] != self.in_channels:
            raise ValueError(f"it takes sequences (N, {self.in_channels}, L)")
        self._check_fits((1, shape[1]))

    def workspace(self, shape) -> int:
        """Entries of the im2col matrix per sample: ``Lo C_in k``."""
        return self.output_shape(shape)[1] * self.in_channels * self.kernel_size[1]

    def forward(self, inputs, weight, bias=None):
        """The 2-D convolution of the sequences as images one row high. ``bias`` is
        given exactly when the layer has one."""
        if self.validate:
            inputs, weight, bias = self._check(inputs, weight, bias)
        n, c, length = inputs.shape
        out = self._convolve(inputs.reshape(n, c, 1, length),
                             weight.reshape(weight.shape[:2] + (1, -1)), bias)
        return out.reshape(n, self.out_channels, -1)

    def backward(self, d_out):
        """The 2-D layer's gradients, reshaped to the sequences' and the weight's
        shapes. Returns ``(dX, dW, db)``, ``(dX, dW)`` without a bias; ``dX`` is None
        when ``compute_input_grad`` is off."""
        padded_shape, (_, lo) = self.cache[2:] if self.cache is not None else ((0,), (0, 0))
        d_out = self._check_d_out(d_out, (padded_shape[0], self.out_channels, lo))
        d_inputs, d_weight, *d_bias = self._gradients(d_out)
        if d_inputs is not None:
            d_inputs = d_inputs.reshape(d_inputs.shape[:2] + (-1,))
        return d_inputs, d_weight.reshape(self.param_shapes()[0]), *d_bias

    def __repr__(self):
        options = (("stride", self.stride[1], 1), ("padding", self.padding, (0, 0)),
                   ("dilation", self.dilation[1], 1))
        extra = "".join(f", {name}={value!r}" if isinstance(value, str) else
                        f", {name}={value[1] if isinstance(value, tuple) else value}"
                        for name, value, default in options if value != default)
        extra += f", groups={self.groups}" if self.groups != 1 else ""
        extra += "" if self.has_bias else ", bias=False"
        extra += "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode!r}"
        return f"Conv1D({self.in_channels}, {self.out_channels}, {self.kernel_size[1]}{extra})"


class _Sequences:
    """What the 1-D pools share: inputs ``(N, C, L)`` run through the 2-D pool (the
    next class in the method resolution order) as ``(N, C, 1, L)``."""

    axis_names = ("height", "length")
    # (set by the 2-D pool's class, for the type checker)
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    validate: bool
    _axis: Callable[[int, int], tuple[int, int]]
    _check_d_out: Callable[..., np.ndarray]

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 2:
            raise ValueError("it takes sequences (N, C, L)")
        self.output_shape(shape)   # (a sequence shorter than the window)

    def output_shape(self, shape) -> tuple:
        """``(C, Lo)`` for an input ``(C, L)``."""
        return (shape[0], self._axis(shape[1], 1)[0])

    def get_config(self) -> dict:
        """The constructor arguments as single numbers (padding and ceil_mode only when
        used)."""
        config = {"kernel_size": self.kernel_size[1], "stride": self.stride[1]}
        config.update({"padding": self.padding[1]} if self.padding[1] else {})
        return {**config, "ceil_mode": True} if self.ceil_mode else config

    def forward(self, inputs):
        if self.validate:
            inputs = as_float_array(inputs, "inputs", ndim=3)
        n, c, length = inputs.shape
        out = super().forward(inputs.reshape(n, c, 1, length))
        self._out_shape = (n, c, out.shape[3])
        return out.reshape(self._out_shape)

    def backward(self, d_out):
        """The 2-D pool's input gradient, as sequences."""
        d_out = self._check_d_out(d_out, getattr(self, "_out_shape", ()))
        n, c, lo = d_out.shape
        d_inputs = super().backward(d_out.reshape(n, c, 1, lo))
        return d_inputs.reshape(n, c, -1)

    def _pool_repr(self, extra: str = "") -> str:
        """``Name(k, stride=s, padding=p, ceil_mode=True)``, each option only when used."""
        (_, k), (_, s), (_, p) = self.kernel_size, self.stride, self.padding
        options = "" if s == k else f", stride={s}"
        options += f", padding={p}" if p else ""
        options += ", ceil_mode=True" if self.ceil_mode else ""
        return f"{type(self).__name__}({k}{options}{extra})"


def _pool_settings(kernel_size, stride, padding) -> tuple:
    """The 2-D pool's ``(kernel_size, stride, padding)`` pairs for 1-D settings, the
    padding checked against the kernel in the 1-D terms the caller used."""
    k = _single(kernel_size, "kernel_size")
    p = _single(padding, "padding", minimum=0)
    if 2 * p > k:
        raise ValueError(f"padding must be at most half the kernel, as in PyTorch, got "
                         f"padding={p} for kernel_size={k}")
    return (1, k), None if stride is None else (1, _single(stride, "stride")), (0, p)


class MaxPool1D(_Sequences, MaxPool2D):
    """The largest value of each window of ``kernel_size`` entries, as
    ``torch.nn.MaxPool1d(kernel_size, stride, padding, ceil_mode=ceil_mode)``: the
    gradient goes to the window's first maximum, as PyTorch routes ties.

    Shape: inputs (N, C, L) -> out (N, C, Lo), ``Lo = (L + 2 padding - k) // stride + 1``
    (rounded up instead with ``ceil_mode``, PyTorch's rule).

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        The kernel size by default.
    padding : int, default=0
        -inf at each end, at most half the kernel.
    ceil_mode : bool, default=False
        Keyword-only, as :class:`~chainrule.pooling.MaxPool2D`'s.
    """

    def __init__(self, kernel_size, stride=None, padding=0, *, ceil_mode=False):
        super().__init__(*_pool_settings(kernel_size, stride, padding), ceil_mode=ceil_mode)

    def __repr__(self):
        return self._pool_repr()


class AvgPool1D(_Sequences, AvgPool2D):
    """The mean of each window of ``kernel_size`` entries, as ``torch.nn.AvgPool1d(
    kernel_size, stride, padding, ceil_mode, count_include_pad)``.

    Shape: inputs (N, C, L) -> out (N, C, Lo), as :class:`MaxPool1D`.

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As :class:`MaxPool1D`'s (the padding is zeros).
    count_include_pad : bool, default=True
        Count the padding's zeros in each window's mean (PyTorch's default).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(*_pool_settings(kernel_size, stride, padding), ceil_mode,
                         count_include_pad)

    def get_config(self) -> dict:
        """As :class:`MaxPool1D`'s, with ``count_include_pad`` only when False."""
        config = super().get_config()
        return config if self.count_include_pad else {**config, "count_include_pad": False}

    def __repr__(self):
        return self._pool_repr("" if self.count_include_pad else ", count_include_pad=False")


class _AdaptiveSequences(_Sequences):
    """What the 1-D adaptive pools share: ``output_size`` a single number."""

    output_size: tuple[int, int]   # (set by the 2-D pool's class, for the type checker)

    def __init__(self, output_size):
        super().__init__((1, _single(output_size, "output_size")))

    def output_shape(self, shape) -> tuple:
        """``(C, output_size)`` for an input ``(C, L)``."""
        return (shape[0], self.output_size[1])

    def get_config(self) -> dict:
        """The constructor argument, for model files."""
        return {"output_size": self.output_size[1]}

    def __repr__(self):
        return f"{type(self).__name__}({self.output_size[1]})"


class AdaptiveAvgPool1D(_AdaptiveSequences, AdaptiveAvgPool2D):
    """The means of ``output_size`` windows that split the sequence as evenly as
    PyTorch's adaptive windows do, as ``torch.nn.AdaptiveAvgPool1d(output_size)``
    (``output_size=1``: global average pooling over the length).

    Shape: inputs (N, C, L) -> out (N, C, output_size).
    """

    equations = ("{y} = {x} @ A^T   (A: the window means, a row per output)",
                 ("d{x} = d{y} @ A",))


class AdaptiveMaxPool1D(_AdaptiveSequences, AdaptiveMaxPool2D):
    """The maxima of ``output_size`` windows (PyTorch's adaptive windows), as
    ``torch.nn.AdaptiveMaxPool1d(output_size)`` (``output_size=1``: global max pooling
    over the length, a time-series classifier's usual head).

    Shape: inputs (N, C, L) -> out (N, C, output_size).
    """
