"""The transposed convolution, :class:`ConvTranspose2D` (PyTorch's ``nn.ConvTranspose2d``):
the upsampling layer of a convolutional autoencoder or a U-Net's decoder.

It is :class:`~chainrule.conv.Conv2D`'s input gradient taken as a layer, so the two
layers trade halves. Its forward pass is a convolution's backward one: each input pixel
times the kernel, added into the output at stride spacing (``col2im``). Its backward
pass is a convolution's forward one: every window of the output gradient as a column
(``im2col``), times the weight. The weight keeps PyTorch's layout ``(C_in, C_out /
groups, kH, kW)``, which is the layout of the convolution it transposes (one that takes
``C_out`` channels to ``C_in``), so that the array kernels of :mod:`chainrule.conv_ops`
serve both layers unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_bool, check_positive_int
from .conv import Conv2D
from .conv_ops import (
    col2im,
    grouped_cols_grad,
    grouped_product,
    grouped_weight_grad,
    pad_images,
    pair,
    windows,
)
from .init import get_initializer
from .layers import Layer

__all__ = ["ConvTranspose2D"]


def _reused(buffers: dict, name: str, shape, dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` for a step's work, the front of
    ``buffers[name]`` when that holds enough of the dtype (a ragged last batch takes a
    part of a full one's), else a new one kept there."""
    size = math.prod(shape)
    found = buffers.get(name)
    if found is None or found.size < size or found.dtype != dtype:
        found = buffers[name] = np.empty(size, dtype)
    return found[:size].reshape(shape)


def _equations(has_bias: bool, groups: int) -> tuple:
    """The forward and backward equations, ``[g]`` for each channel group."""
    g = "[g]" if groups > 1 else ""
    plus_b = f" + {{b}}{g}" if has_bias else ""
    note = "col2im: each pixel's kernel-sized block added in at stride spacing"
    if groups > 1:
        note += f"; g: each of {groups} channel groups"
    d_bias = ("d{b} = sum(d{y}, axes N, H, W)",) if has_bias else ()
    return (f"{{y}}{g} = col2im({{W}}{g}^T @ rows({{x}}{g})){plus_b}   ({note})",
            (f"d{{W}}{g} = rows({{x}}{g}) @ im2col(d{{y}}{g})^T", *d_bias,
             f"d{{x}}{g} = {{W}}{g} @ im2col(d{{y}}{g})   (a convolution of d{{y}})"))


class ConvTranspose2D(Layer):
    """2-D transposed convolution, as ``torch.nn.ConvTranspose2d``: each input pixel
    scales the kernel, and the scaled kernels are added into the output ``stride``
    pixels apart (a "fractionally strided" convolution). It is the gradient of a
    :class:`~chainrule.conv.Conv2D` with respect to that layer's input.

    Shape: inputs (N, C_in, H, W), weight (C_in, C_out / groups, kH, kW), bias (C_out,)
    -> out (N, C_out, Ho, Wo), ``Ho = (H - 1) stride - 2 padding + dilation (kH - 1) +
    output_padding + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default=1
        The spacing of the input pixels' blocks in the output: ``stride=2`` doubles H
        and W (with ``kernel_size=2``, or 4 with ``padding=1``).
    padding : int or (int, int), default=0
        Rows and columns cropped from each side of the output: the ``padding`` of the
        convolution this layer transposes.
    output_padding : int or (int, int), default=0
        Rows (columns) added at the bottom (right) of the output, which no input pixel
        reaches but the bias: a strided convolution maps several input sizes to one
        output size, and this picks the larger ones. Below ``stride`` or ``dilation``,
        as PyTorch requires.
    groups : int, default=1
        Channel groups, as :class:`~chainrule.conv.Conv2D`'s: ``groups`` must divide
        both channel counts.
    bias : bool, default=True
    dilation : int or (int, int), default=1
        The spacing of the kernel's taps in the output.
    init : None, str or callable, default=None
        How ``init_params`` draws the weight: None for PyTorch's default
        (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_out / groups kH kW``:
        PyTorch reads it from the weight's second axis), a name of
        :data:`chainrule.init.INITIALIZERS` or ``f(shape, rng=, dtype=)``. The bias keeps
        PyTorch's default draw.

    Notes
    -----
    The arguments are in PyTorch's order (``output_padding`` and ``groups`` before
    ``bias``, ``dilation`` after it), so that ``ConvTranspose2D(*args)`` builds what
    ``nn.ConvTranspose2d(*args)`` does. PyTorch's other padding modes are refused by
    PyTorch itself for this layer, and its forward's ``output_size`` is taken here as
    ``output_padding``, fixed when the layer is built.
    """

    num_params = 2
    param_names = ("W", "b")
    compute_input_grad = True
    equations = _equations(True, 1)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, *, init=None):
        super().__init__()
        self.init = None if init is None else get_initializer(init)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.output_padding = pair(output_padding, "output_padding", minimum=0)
        self.dilation = pair(dilation, "dilation")
        self.groups = check_positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups must divide in_channels ({self.in_channels}) and "
                             f"out_channels ({self.out_channels}), got {self.groups}")
        for extra, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if extra >= s and extra >= d:
                raise ValueError(f"output_padding must be below stride or dilation (as in "
                                 f"PyTorch), got output_padding={self.output_padding}, "
                                 f"stride={self.stride}, dilation={self.dilation}")
        self.has_bias = check_bool(bias, "bias")
        if not self.has_bias:  # the instance's own: the class's are those with a bias
            self.num_params, self.param_names = 1, ("W",)
        if not self.has_bias or self.groups != 1:
            self.equations = _equations(self.has_bias, self.groups)

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[weight, bias]`` (``[weight]`` without a bias)."""
        weight = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        return [weight, (self.out_channels,)] if self.has_bias else [weight]

    # Conv2D's draws from this layer's weight shape: fan_in = C_out / groups kH kW, its
    # axes 1 and up, as PyTorch reads a transposed convolution's
    init_params = Conv2D.init_params

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": list(self.padding), "output_padding": list(self.output_padding),
                  "groups": self.groups, "bias": self.has_bias,
                  "dilation": list(self.dilation)}
        return config

    def output_shape(self, shape) -> tuple:
        """``(C_out, Ho, Wo)`` for an input ``(C_in, H, W)``."""
        return (self.out_channels,) + self._out_hw(shape[1:])

    def _full_hw(self, hw) -> tuple:
        """The output's height and width before the padding is cropped."""
        return tuple((n - 1) * s + d * (k - 1) + 1 + extra for n, s, d, k, extra in
                     zip(hw, self.stride, self.dilation, self.kernel_size,
                         self.output_padding, strict=True))

    def _out_hw(self, hw) -> tuple:
        """``(Ho, Wo)`` for an image ``hw = (H, W)`` (``ValueError`` when the padding
        would crop it to nothing)."""
        out = []
        for full, pad, axis in zip(self._full_hw(hw), self.padding, ("height", "width"),
                                   strict=True):
            if full - 2 * pad < 1:
                raise ValueError(f"padding {pad} crops an output {axis} of {full} to "
                                 f"nothing")
            out.append(full - 2 * pad)
        return tuple(out)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"it takes images (N, {self.in_channels}, H, W)")
        self._out_hw(shape[1:])

    def workspace(self, shape) -> int:
        """Entries of the column matrix per sample: ``H W C_out kH kW``."""
        return (shape[1] * shape[2] * self.out_channels * self.kernel_size[0]
                * self.kernel_size[1])

    #: The weight's axes, named in its shape error whatever the groups: the transpose
    #: of a Conv2D's, which a weight of the other layer would have.
    weight_layout = "(C_in, C_out / groups, kH, kW)"
    _check = Conv2D._check

    def _layout_hint(self) -> str:
        return f" {self.weight_layout}"

    def forward(self, inputs, weight, bias=None):
        """``W^T`` times each pixel's channels, a ``(C_out, kH, kW)`` block per pixel
        (one product over the batch and the groups), then col2im adds the blocks into
        the output at stride spacing; the padding is cropped and the bias added."""
        if self.validate:
            inputs, weight, bias = self._check(inputs, weight, bias)
        n, _, h, w = inputs.shape
        rows = inputs.reshape(n, self.in_channels, h * w)
        buffers = self._buffers()
        size = self.out_channels * math.prod(self.kernel_size) * h * w * n
        blocks = grouped_cols_grad(weight, rows, self.groups, (h, w), out=_reused(
            buffers, "blocks", (size,), np.result_type(inputs.dtype, weight.dtype)))
        full = col2im(blocks, (self.out_channels, *self._full_hw((h, w)), n), self.stride,
                      self.dilation)
        (ph, pw), (ho, wo) = self.padding, self._out_hw((h, w))
        out = np.ascontiguousarray(full[:, ph:ph + ho, pw:pw + wo].transpose(3, 0, 1, 2))
        if bias is not None:
            out += bias[:, None, None]
        self.cache = (rows, weight, (h, w), (ho, wo), buffers)
        return out

    def backward(self, d_out):
        """With ``cols`` the im2col matrix of ``d_out`` (padded back; its first H x W
        windows): ``dX = W @ cols`` (a convolution of ``d_out``), ``dW = sum_n X[n]
        cols[n]^T`` per group, ``db = sum dY`` over N, H, W. Returns ``(dX, dW, db)``,
        ``(dX, dW)`` without a bias; ``dX`` is None when ``compute_input_grad`` is off."""
        if self.cache is None:
            return self._check_d_out(d_out, ())   # raises: no forward yet
        rows, weight, (h, w), (ho, wo), buffers = self.cache
        d_out = self._check_d_out(d_out, (rows.shape[0], self.out_channels, ho, wo))
        (ph, pw), n = self.padding, rows.shape[0]
        padded = pad_images(d_out, ((ph, ph), (pw, pw))) if ph or pw else d_out
        # output_padding at or above the stride (allowed below the dilation) leaves
        # windows past the input's H x W: they met no pixel
        view = windows(padded, self.kernel_size, self.stride, self.dilation)[:, :, :h, :w]
        ordered = view.transpose(0, 1, 4, 5, 2, 3)
        cols = _reused(buffers, "cols", ordered.shape, ordered.dtype)
        np.copyto(cols, ordered)
        cols = cols.reshape(n, -1, h * w)
        d_weight = grouped_weight_grad(cols, rows, self.groups, weight.shape)
        d_bias = (d_out.sum(axis=(0, 2, 3)),) if self.has_bias else ()
        if not self.compute_input_grad:
            return None, d_weight, *d_bias
        d_inputs = grouped_product(weight, cols, self.groups)
        return d_inputs.reshape(n, self.in_channels, h, w), d_weight, *d_bias

    def _buffers(self) -> dict:
        """The work arrays this step may reuse, by name: in training, those the last
        forward's cache holds (so that ``clear_caches`` lets them go with it); outside
        training none, and the training ones are let go, so that a model holds no extra
        memory after ``predict``. As :class:`~chainrule.conv.Conv2D` reuses its im2col
        matrix, and for its reason: fresh multi-MiB arrays each step made glibc give the
        memory back to the system and fault it in again (a convolutional autoencoder of
        two ConvTranspose2D: ~2,000 page faults a step, its training up to twice as
        slow)."""
        if not self.training or self.cache is None:
            return {}
        return self.cache[4]

    def __repr__(self):
        options = (("stride", self.stride, (1, 1)), ("padding", self.padding, (0, 0)),
                   ("output_padding", self.output_padding, (0, 0)),
                   ("dilation", self.dilation, (1, 1)))
        extra = "".join(f", {name}={value[0] if value[0] == value[1] else value}"
                        for name, value, default in options if value != default)
        extra += f", groups={self.groups}" if self.groups != 1 else ""
        extra += "" if self.has_bias else ", bias=False"
        k = self.kernel_size
        return (f"ConvTranspose2D({self.in_channels}, {self.out_channels}, "
                f"{k[0] if k[0] == k[1] else k}{extra})")
