"""Convolution and reshaping layers for images in NCHW, backward under forward (the
pooling layers are in :mod:`chainrule.pooling`, re-exported here).

:class:`Conv2D` lays out its weight ``(C_out, C_in / groups, kH, kW)`` and bias
``(C_out,)`` as PyTorch and ONNX do. Its forward and backward passes are one matrix
product each: im2col copies every ``kH x kW`` window of the (padded) input into a row
of a matrix, through a strided view (:func:`numpy.lib.stride_tricks.sliding_window_view`;
a dilated window is a view of every ``dilation``-th pixel of its span), so no Python
loop runs over pixels; col2im adds the window gradients back with one vectorised
addition per kernel offset (``kH * kW`` of them). The product is stacked over the batch
(``np.matmul`` of ``(C_out, C_in kH kW)`` by ``(N, C_in kH kW, Ho Wo)``, and over the
channel groups of a grouped convolution), so that it comes out in NCHW without a
transposing copy. Those array kernels live in :mod:`chainrule.conv_ops`.

A network takes 2-D ``X`` (one row per sample), so a CNN starts with
:class:`Unflatten` (``(N, C*H*W) -> (N, C, H, W)``) and goes back to rows with
:class:`Flatten` before its Affine layers.

Every layer here can tell the shape of its output from the shape of its input
(``output_shape``, the batch axis left out), which :class:`~chainrule.models.Network`
uses to size its inference chunks; :class:`Conv2D` adds ``workspace`` (the entries
of its im2col matrix per sample).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import as_float_array, check_bool, check_choice, check_positive_int, shape_str
from .conv_ops import (
    col2im,
    conv_padding,
    grouped_cols_grad,
    grouped_product,
    grouped_weight_grad,
    pad_images,
    pair,
    pooled_size,
    windows,
)
from .init import INITIALIZERS, TORCH_INIT, get_initializer
from .layers import Layer
from .pooling import AdaptiveAvgPool2D, AdaptiveMaxPool2D, AvgPool2D, MaxPool2D

__all__ = ["conv_equations", "Conv2D", "MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D",
           "AdaptiveMaxPool2D", "Flatten", "Unflatten"]

#: PyTorch's default draw of a convolution's weight and bias (``init=None``).
TORCH_DEFAULT = INITIALIZERS[TORCH_INIT]


def conv_equations(has_bias: bool, groups: int, padding_mode: str = "zeros",
                   spacing: str | None = None, *, window: str = "a row per window",
                   unit: str = "pixels", axes: str = "N, H, W") -> tuple:
    """A convolution's equations for its options: the bias terms only with a bias; the
    spacing of dilated taps, the channel groups (``[g]``) and the padding said when not
    the defaults (``window``, ``unit`` and ``axes`` word them for images, or for
    sequences: :class:`~chainrule.conv1d.Conv1D`)."""
    g = "[g]" if groups > 1 else ""
    notes = [f"im2col: {window}"]
    if padding_mode != "zeros":
        notes.append(f"{padding_mode} padding, whose gradient goes back to the {unit} it "
                     f"copies")
    if spacing is not None:
        notes.append(f"taps {spacing} apart")
    if groups > 1:
        notes.append(f"g: each of {groups} channel groups")
    plus_b = f" + {{b}}{g}" if has_bias else ""
    d_bias = (f"d{{b}} = sum(d{{y}}, axes {axes})",) if has_bias else ()
    return (f"{{y}}{g} = im2col({{x}}{g}) @ {{W}}{g}^T{plus_b}   ({'; '.join(notes)})",
            (f"d{{W}}{g} = rows(d{{y}}{g})^T @ im2col({{x}}{g})", *d_bias,
             f"d{{x}}{g} = col2im(rows(d{{y}}{g}) @ {{W}}{g})"))


def _equations(has_bias: bool, dilation: tuple, groups: int, padding_mode="zeros") -> tuple:
    """:class:`Conv2D`'s equations (:func:`conv_equations`), a dilation as pixels."""
    spacing = (None if dilation == (1, 1) else
               f"{dilation[0] if dilation[0] == dilation[1] else dilation} pixels")
    return conv_equations(has_bias, groups, padding_mode, spacing)


#: Conv2D's padding modes and the numpy.pad modes that fill the padding so.
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def _fold_padding(d_padded, pads, mode):
    """The gradient of an image from that of its padded copy, laid out ``(C, Hp, Wp,
    N)``: each padded entry's gradient is added to the pixel ``numpy.pad`` (``mode``)
    copied it from. The padding is a few rows and columns: a loop over them."""
    d = d_padded
    for axis, (before, after) in ((1, pads[0]), (2, pads[1])):
        size = d.shape[axis] - before - after
        source = np.pad(np.arange(size), (before, after), mode=mode)
        inner = np.take(d, np.arange(before, before + size), axis=axis)   # a copy
        for i in [*range(before), *range(before + size, d.shape[axis])]:
            target = [slice(None)] * 4
            target[axis] = source[i]
            inner[tuple(target)] += np.take(d, i, axis=axis)
        d = inner
    return d


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch) with zero padding, dilation and
    channel groups.

    Shape: inputs (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,)
    -> out (N, C_out, Ho, Wo), ``Ho = (H + 2 padding - dilation (kH - 1) - 1) // stride
    + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default=1
    padding : int, (int, int), 'same' or 'valid', default=0
        Zeros added on each side of H and W. ``'same'`` (stride 1 only) pads
        ``dilation (k - 1)`` zeros along each axis, so that ``Ho, Wo = H, W``; when that
        number is odd the extra one goes after (bottom, right), as in PyTorch.
        ``'valid'`` is 0.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default='zeros'
        What the padding holds, as in PyTorch: zeros, the image mirrored about its edge
        row (not repeating it), the edge row repeated, or the opposite side (the image
        wrapped around). The gradient of a padded entry goes back to the pixel it came
        from.
    dilation : int or (int, int), default=1
        The spacing of the kernel's taps (a dilated, or atrous, convolution): a 3 x 3
        kernel with ``dilation=2`` reads every other pixel of a 5 x 5 window.
    groups : int, default=1
        The input and the output channels are split into ``groups`` consecutive groups
        (``groups`` must divide both numbers), and the output channels of group ``g``
        see the input channels of group ``g`` only. ``groups=in_channels`` is a
        depthwise convolution (MobileNet's), with ``out_channels // in_channels``
        filters per input channel.
    bias : bool, default=True
        ``False``: no bias (``param_names`` is ``("W",)``; ``forward`` takes the weight
        only), as ``nn.Conv2d(bias=False)`` before a batch normalisation, whose shift
        would cancel it.
    init : None, str or callable, default=None
        How ``init_params`` draws the weight: None for PyTorch's default (below), a
        name of :data:`chainrule.init.INITIALIZERS` (``'he'`` for ReLU networks, as
        ``nn.init.kaiming_normal_``) or ``f(shape, rng=, dtype=)``; the fans are those
        of the weight's shape. The bias keeps PyTorch's default draw.

    Notes
    -----
    By default ``init_params`` draws weight and bias from ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))``, ``fan_in = C_in / groups kH kW``: PyTorch's default for
    ``nn.Conv2d``.

    The rows of the im2col matrix are ordered by input channel, so its channel groups
    are a free reshape and a grouped convolution is one ``np.matmul`` over a group axis.
    A Python loop over the groups was as fast with ``groups=2`` and slower depthwise
    (float32, one thread, 64 images, 3 x 3, median backward: 16 channels of 14 x 14,
    2.3-2.4 ms against 2.6-2.7; 32 channels of 7 x 7, 0.9 ms against 1.2-1.3).

    As for :class:`~chainrule.layers.Affine`, ``compute_input_grad = False`` (a network
    sets it on its first layer with parameters) skips the input gradient, the col2im
    half of ``backward``, which then returns ``None`` in its place.
    """

    num_params = 2
    param_names = ("W", "b")
    compute_input_grad = True
    equations = _equations(True, (1, 1), 1)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, init=None):
        super().__init__()
        self.init = None if init is None else get_initializer(init)
        self.padding_mode = check_choice(padding_mode, "padding_mode", tuple(_PAD_MODES))
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.groups = check_positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups must divide in_channels ({self.in_channels}) and "
                             f"out_channels ({self.out_channels}), got {self.groups}")
        self.padding, self.pads = conv_padding(padding, self.kernel_size, self.stride,
                                               self.dilation)
        self.has_bias = check_bool(bias, "bias")
        if not self.has_bias:  # the instance's own: the class's are those with a bias
            self.num_params, self.param_names = 1, ("W",)
        if (not self.has_bias or self.dilation != (1, 1) or self.groups != 1
                or self.padding_mode != "zeros"):
            self.equations = _equations(self.has_bias, self.dilation, self.groups,
                                        self.padding_mode)

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[weight, bias]`` (``[weight]`` without a bias)."""
        weight = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        return [weight, (self.out_channels,)] if self.has_bias else [weight]

    def init_params(self, rng, dtype):
        """``[weight, bias]``, PyTorch's default uniform draws, weight first."""
        shape = self.param_shapes()[0]
        weight = (self.init or TORCH_DEFAULT)(shape, rng=rng, dtype=dtype)
        if not self.has_bias:
            return [weight]
        # fan_in = C_in / groups kH kW
        return [weight, TORCH_DEFAULT.bias(math.prod(shape[1:]), self.out_channels, rng, dtype)]

    def get_config(self) -> dict:
        """The constructor arguments, for model files (``dilation``, ``groups`` and
        ``bias`` only when not their defaults, so that files without them load as
        before)."""
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": self.padding if isinstance(self.padding, str)
                  else list(self.padding)}
        if self.dilation != (1, 1):
            config["dilation"] = list(self.dilation)
        if self.groups != 1:
            config["groups"] = self.groups
        if self.padding_mode != "zeros":
            config["padding_mode"] = self.padding_mode
        return config if self.has_bias else {**config, "bias": False}

    #: What the errors call the two spatial axes.
    axis_names = ("height", "width")

    def output_shape(self, shape) -> tuple:
        """``(C_out, Ho, Wo)`` for an input ``(C_in, H, W)``."""
        return (self.out_channels,) + self._out_hw(shape[1:])

    def _out_hw(self, hw) -> tuple:
        """``(Ho, Wo)`` for an image ``hw = (H, W)`` (``ValueError`` when smaller than the
        kernel)."""
        return tuple(pooled_size(n, k, s, p, axis, d) for n, k, s, p, axis, d in
                     zip(hw, self.kernel_size, self.stride, self.pads, self.axis_names,
                         self.dilation, strict=True))

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"it takes images (N, {self.in_channels}, H, W)")
        self._check_fits(shape[1:])

    def _check_fits(self, hw) -> None:
        """``ValueError`` unless an image ``hw = (H, W)`` is at least the kernel and
        takes the padding its mode needs."""
        self._out_hw(hw)
        if self.padding_mode not in ("reflect", "circular"):
            return
        for pads, size, axis in zip(self.pads, hw, self.axis_names, strict=True):
            if max(pads) > size or (self.padding_mode == "reflect" and max(pads) == size):
                raise ValueError(f"padding_mode={self.padding_mode!r} needs padding "
                                 f"{'below' if self.padding_mode == 'reflect' else 'at most'}"
                                 f" the input's {axis}, as in PyTorch: padding {max(pads)} "
                                 f"for a {axis} of {size}")

    def workspace(self, shape) -> int:
        """Entries of the im2col matrix per sample: ``Ho Wo C_in kH kW``."""
        ho, wo = self._out_hw(shape[1:])
        return ho * wo * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    #: The weight's axes, named in the error for a grouped weight of the wrong shape.
    weight_layout = "(C_out, C_in / groups, kH, kW)"

    def _layout_hint(self) -> str:
        """The weight's axes in its shape error, for a grouped weight."""
        return f" {self.weight_layout}" if self.groups > 1 else ""

    def _check(self, inputs, weight, bias):
        """The arguments of :meth:`forward` checked, as arrays (inputs of as many axes
        as the weight)."""
        expected = self.param_shapes()[0]
        inputs = as_float_array(inputs, "inputs", ndim=len(expected))
        weight = as_float_array(weight, "weight", ndim=len(expected))
        if (bias is None) == self.has_bias:
            raise TypeError(f"{self!r} takes {'a' if self.has_bias else 'no'} bias after "
                            f"its weight, got {'none' if bias is None else 'one'}")
        if weight.shape != expected:
            raise ValueError(f"weight must have shape {shape_str(expected)}"
                             f"{self._layout_hint()}, got {shape_str(weight.shape)}")
        if bias is not None and (bias := as_float_array(bias, "bias", ndim=1)).shape != (
                self.out_channels,):
            raise ValueError(f"bias must have shape ({self.out_channels},), got "
                             f"{shape_str(bias.shape)}")
        if inputs.shape[1] != self.in_channels:
            raise ValueError(f"inputs must have {self.in_channels} channels on axis 1, got "
                             f"shape {shape_str(inputs.shape)}")
        self.check_input_shape(inputs.shape[1:])   # an image smaller than the kernel...
        return inputs, weight, bias

    def forward(self, inputs, weight, bias=None):
        """im2col, then one matrix product stacked over the batch (and the groups):
        ``W (C_out, C_in kH kW) @ cols (N, C_in kH kW, Ho Wo)``, which is already NCHW.
        ``bias`` is given exactly when the layer has one."""
        if self.validate:
            inputs, weight, bias = self._check(inputs, weight, bias)
        return self._convolve(inputs, weight, bias)

    def _convolve(self, inputs, weight, bias):
        """:meth:`forward` on checked images and a 4-D weight."""
        n = inputs.shape[0]
        padded = inputs
        if any(map(any, self.pads)):
            padded = (pad_images(inputs, self.pads) if self.padding_mode == "zeros" else
                      np.pad(inputs, ((0, 0), (0, 0)) + self.pads,
                             mode=_PAD_MODES[self.padding_mode]))
        view = windows(padded, self.kernel_size, self.stride, self.dilation)
        ho, wo = view.shape[2:4]
        # The one copy of the input: column p of cols[n] is window p (channels, then
        # kernel rows and columns), so that the product comes out as (C_out, Ho Wo).
        ordered = view.transpose(0, 1, 4, 5, 2, 3)
        cols = self._reused_cols(ordered.shape, ordered.dtype)
        np.copyto(cols, ordered)
        cols = cols.reshape(n, -1, ho * wo)
        out = grouped_product(weight, cols, self.groups)
        if bias is not None:
            out += bias[:, None]
        self.cache = (cols, weight, padded.shape, (ho, wo))
        return out.reshape(n, self.out_channels, ho, wo)

    def _reused_cols(self, shape, dtype):
        """An array for this forward's im2col matrix: in training, the one the last
        forward cached when it has as many entries of the same dtype, since only the
        latest forward is differentiated.

        A fresh multi-MiB array every step made glibc give the freed memory back to
        the system and fault it in again: 510-615 page faults a training step of
        ``bench_cnn_speed.py``'s network, none with the array reused, and the step
        0.93x the time (median of 5 pairs of fresh processes). Outside training it is
        fresh (and the training one is let go), so that a model holds no extra memory
        after ``predict``.
        """
        cols = self.cache[0] if self.training and self.cache is not None else None
        if cols is None or cols.size != math.prod(shape) or cols.dtype != dtype:
            return np.empty(shape, dtype)
        return cols.reshape(shape)

    def backward(self, d_out):
        """With ``dY`` = d_out as ``(N, C_out, Ho Wo)``: ``dW[g] = sum_n dY[n, g]
        cols[n, g]^T`` for each channel group ``g`` (per image, or as one product over
        all positions when a group has more output channels than there are positions),
        ``db = sum dY`` over N, H, W, and ``dX`` = col2im of ``W[g]^T dY[g]`` (dilated as
        the windows), cropped back from the padding (unless ``compute_input_grad`` is
        off). Returns ``(dX, dW, db)``, ``(dX, dW)`` without a bias."""
        padded_shape, (ho, wo) = self.cache[2:] if self.cache is not None else ((0,), (0, 0))
        return self._gradients(self._check_d_out(d_out, (padded_shape[0], self.out_channels,
                                                         ho, wo)))

    def _gradients(self, d_out):
        """:meth:`backward` on a checked ``d_out``, ``(N, C_out, Ho, Wo)`` or any shape
        holding its ``Ho Wo`` positions in order after the channels; the gradients of
        the 4-D images and weight."""
        cols, weight, padded_shape, (ho, wo) = self.cache
        n, c = padded_shape[:2]
        d_rows = d_out.reshape(n, self.out_channels, ho * wo)
        d_weight = grouped_weight_grad(cols, d_rows, self.groups, weight.shape)
        d_bias = (d_rows.sum(axis=(0, 2)),) if self.has_bias else ()
        if not self.compute_input_grad:
            return None, d_weight, *d_bias
        d_cols = grouped_cols_grad(weight, d_rows, self.groups, (ho, wo))
        hp, wp = padded_shape[2:]
        d_padded = col2im(d_cols, (c, hp, wp, n), self.stride, self.dilation)
        ((top, bottom), (left, right)) = self.pads
        d_inputs = (d_padded[:, top:hp - bottom, left:wp - right]
                    if self.padding_mode == "zeros"
                    else _fold_padding(d_padded, self.pads, _PAD_MODES[self.padding_mode]))
        return np.ascontiguousarray(d_inputs.transpose(3, 0, 1, 2)), d_weight, *d_bias

    def __repr__(self):
        options = (("stride", self.stride, (1, 1)), ("padding", self.padding, (0, 0)),
                   ("dilation", self.dilation, (1, 1)))
        extra = "".join(f", {name}={value!r}" if isinstance(value, str)
                        else f", {name}={value[0] if value[0] == value[1] else value}"
                        for name, value, default in options if value != default)
        extra += f", groups={self.groups}" if self.groups != 1 else ""
        extra += "" if self.has_bias else ", bias=False"
        extra += "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode!r}"
        k = self.kernel_size
        return (f"Conv2D({self.in_channels}, {self.out_channels}, "
                f"{k[0] if k[0] == k[1] else k}{extra})")


class Flatten(Layer):
    """Each sample's values as one row, as ``torch.nn.Flatten()``.

    Shape: inputs (N, d1, d2, ...) -> out (N, d1 * d2 * ...).

    ``Flatten(start_dim=1, end_dim=-1)``, PyTorch's defaults, are accepted so that a
    ported model reads the same; other dimensions are refused (the batch axis stays
    first and every other axis is flattened).
    """

    equations = ("{y} = reshape({x}, (N, -1))", ("d{x} = reshape(d{y}, shape of {x})",))

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        if (start_dim, end_dim) != (1, -1):
            raise ValueError(f"Flatten flattens every axis after the batch axis "
                             f"(start_dim=1, end_dim=-1), got start_dim={start_dim!r}, "
                             f"end_dim={end_dim!r}")

    def get_config(self) -> dict:
        """No arguments."""
        return {}

    def output_shape(self, shape) -> tuple:
        return (int(np.prod(shape)),)

    def forward(self, inputs):
        inputs = self._check_input(inputs, ndim=None)
        if self.validate and inputs.ndim < 1:
            raise ValueError("inputs must have a batch axis, got a scalar")
        self.cache = inputs.shape
        return inputs.reshape(inputs.shape[0], -1)

    def backward(self, d_out):
        """The gradient of each row reshaped back to the input's shape."""
        shape = self.cache
        d_out = self._check_d_out(d_out, () if shape is None else
                                  (shape[0], int(np.prod(shape[1:]))))
        return d_out.reshape(shape)


class Unflatten(Layer):
    """Each row as an array of ``shape``, as ``torch.nn.Unflatten(1, shape)``: the first
    layer of a CNN, whose network takes one row per image.

    Shape: inputs (N, prod(shape)) -> out (N, *shape).

    Parameters
    ----------
    shape : tuple of int
        E.g. ``(1, 28, 28)`` for MNIST images (channels, height, width). PyTorch's
        signature, ``Unflatten(1, (1, 28, 28))``, is accepted too (dimension 1 only).
    """

    equations = ("{y} = reshape({x}, (N, *shape))", ("d{x} = reshape(d{y}, (N, -1))",))

    def __init__(self, shape, unflattened_size=None):
        super().__init__()
        if unflattened_size is not None:  # torch.nn.Unflatten(dim, unflattened_size)
            if shape != 1:
                raise ValueError(f"Unflatten unflattens dimension 1 (each row), got "
                                 f"dim={shape!r}")
            shape = unflattened_size
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
        self.shape = tuple(check_positive_int(s, "shape") for s in shape)
        if not self.shape:
            raise ValueError("shape must have at least one dimension, got ()")

    @property
    def in_features(self) -> int:
        """The row width it takes, ``prod(shape)``."""
        return int(np.prod(self.shape))

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"shape": list(self.shape)}

    def output_shape(self, shape) -> tuple:
        return self.shape

    def forward(self, inputs):
        inputs = self._check_input(inputs, ndim=2)
        if self.validate and inputs.shape[1] != self.in_features:
            raise ValueError(f"inputs must have {self.in_features} columns to become "
                             f"{shape_str(self.shape)} per row, got {shape_str(inputs.shape)}")
        self.cache = inputs.shape
        return inputs.reshape((inputs.shape[0],) + self.shape)

    def backward(self, d_out):
        """The gradient of each image flattened back to its row: (N, C, H, W) -> (N, C H W)."""
        shape = self.cache
        d_out = self._check_d_out(d_out, () if shape is None else (shape[0],) + self.shape)
        return d_out.reshape(shape)

    def __repr__(self):
        return f"Unflatten({self.shape})"
