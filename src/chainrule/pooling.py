"""Pooling layers for images in NCHW, backward under forward, as PyTorch's.

:class:`MaxPool2D` routes the gradient of a window to one input, the first maximum in
row-major order, as PyTorch does with ties; :class:`AvgPool2D` spreads it evenly.
Both take PyTorch's ``ceil_mode`` (one more window at the end of an axis, partly past
the input, where the floor would leave input rows unused) and :class:`AvgPool2D` its
``count_include_pad``. :class:`AdaptiveAvgPool2D` averages PyTorch's adaptive windows,
as two products with the matrices of window means (one per axis);
:class:`AdaptiveMaxPool2D` takes their maxima, one reduction per window.

Every layer here can tell the shape of its output from the shape of its input
(``output_shape``, the batch axis left out), as the convolutions of
:mod:`chainrule.conv` can.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_bool
from .conv_ops import add_windows, check_images, pad_images, pair, pooled_size, tap, windows
from .layers import Layer

__all__ = ["MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
           "WHOLE_WINDOW_TAPS"]


#: Windows of at least this many taps are pooled in one reduction where they tile the
#: input as a free reshape (no overlap, no padding, and a row high or the whole
#: image): the per-tap loop makes one NumPy call per tap (a global max pool of 16 x 16
#: sequences of 2000: 10.6 ms forward against 0.05; at 16 taps the loop is faster).
WHOLE_WINDOW_TAPS = 32


def _as_rows(x, kernel, out_hw):
    """``(N, C, Ho, Wo, kH kW)``: each window of ``x`` (N, C, H, W) as a row, for windows
    that tile it (a view where the windows lie in memory order)."""
    (kh, kw), (ho, wo) = kernel, out_hw
    n, c = x.shape[:2]
    tiles = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
    return tiles.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, kh * kw)


def _from_rows(rows, kernel, in_shape):
    """The gradient of inputs of ``in_shape`` from that of their windows as rows
    (:func:`_as_rows`), zeros where no window reaches."""
    (kh, kw), (n, c, ho, wo) = kernel, rows.shape[:4]
    d = np.zeros(in_shape, dtype=rows.dtype)
    d[:, :, :ho * kh, :wo * kw] = rows.reshape(n, c, ho, wo, kh, kw).transpose(
        0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)
    return d


class _Pool2D(Layer):
    """Pooling over ``kernel_size`` windows moved by ``stride`` (default: the kernel
    size), after ``padding`` on each side of H and W (at most half the kernel, as
    PyTorch requires). The output size is floored, or with ``ceil_mode`` rounded up
    when the extra window starts inside the input or its left padding (PyTorch's
    rule). Subclasses set ``pad_value``: what a window sees beyond the image."""

    pad_value = 0.0
    #: What the errors call the two spatial axes.
    axis_names = ("height", "width")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"padding must be at most half the kernel, as in PyTorch, got "
                             f"padding={padding!r} for kernel_size={kernel_size!r}")
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")

    def get_config(self) -> dict:
        """The constructor arguments, for model files (each option only when used)."""
        config = {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}
        if any(self.padding):
            config["padding"] = list(self.padding)
        return {**config, "ceil_mode": True} if self.ceil_mode else config

    def _axis(self, size: int, axis: int) -> tuple[int, int]:
        """``(output length, padding past the end)`` along ``axis`` (0: height, 1: width)
        for an input ``size`` long: the padding past the end is what ``ceil_mode``'s
        last window reaches beyond the input's own padding."""
        k, s, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
        if not self.ceil_mode or size + 2 * p >= k:
            out = pooled_size(size, k, s, (p, p), self.axis_names[axis])
            if self.ceil_mode and (size + 2 * p - k) % s and out * s < size + p:
                out += 1
        else:   # shorter than the kernel: PyTorch's ceil_mode may still have a window
            out = math.ceil((size + 2 * p - k) / s) + 1
            if (out - 1) * s >= size + p:   # the last window would start in the padding
                out -= 1
            if out < 1:   # no window at all: the error pooled_size gives for it
                pooled_size(size, k, s, (p, p), self.axis_names[axis])
        return out, max(0, (out - 1) * s + k - (size + 2 * p))

    def output_shape(self, shape) -> tuple:
        """``(C, Ho, Wo)`` for an input ``(C, H, W)``."""
        c, h, w = shape
        return (c, self._axis(h, 0)[0], self._axis(w, 1)[0])

    def end_padding(self, in_hw) -> tuple[int, int]:
        """The rows and columns a ``ceil_mode`` window reaches past the bottom and right
        padding of an input ``in_hw = (H, W)`` (0 without it)."""
        return self._axis(in_hw[0], 0)[1], self._axis(in_hw[1], 1)[1]

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 3:
            raise ValueError("it takes images (N, C, H, W)")
        self.output_shape(shape)   # (an image smaller than the window)

    def _first_tap(self, inputs):
        """``(inputs padded, their (H, W) before, the output's (Ho, Wo), a copy of each
        window's first entry)``: where both pools start."""
        if self.validate:
            inputs = check_images(inputs)
        in_hw = inputs.shape[2:]
        (ph, pw), (eh, ew) = self.padding, self.end_padding(in_hw)
        if ph or pw or eh or ew:
            inputs = pad_images(inputs, ((ph, ph + eh), (pw, pw + ew)), self.pad_value)
        out_hw = windows(inputs, self.kernel_size, self.stride).shape[2:4]
        return inputs, in_hw, out_hw, inputs[tap(0, 0, self.stride, out_hw)].copy()

    def _whole_windows(self, shape):
        """``(Ho, Wo)`` when windows over inputs of ``shape`` (N, C, H, W) are pooled as
        rows (:data:`WHOLE_WINDOW_TAPS`), else None."""
        (kh, kw), hw = self.kernel_size, shape[2:]
        if self.stride != self.kernel_size or any(self.padding) or kh * kw < WHOLE_WINDOW_TAPS \
                or any(self.end_padding(hw)):
            return None
        out_hw = (hw[0] // kh, hw[1] // kw)
        return out_hw if kh == 1 or out_hw == (1, 1) else None

    def _cropped(self, d_padded, in_hw):
        """The gradient of the padded inputs, without the padding: ``in_hw`` rows and
        columns from the first after the padding."""
        (ph, pw), (h, w) = self.padding, in_hw
        return d_padded[:, :, ph:ph + h, pw:pw + w] if d_padded.shape[2:] != in_hw \
            else d_padded

    def __repr__(self):
        k, s, p = self.kernel_size, self.stride, self.padding
        extra = "" if s == k else f", stride={s[0] if s[0] == s[1] else s}"
        extra += "" if not any(p) else f", padding={p[0] if p[0] == p[1] else p}"
        extra += ", ceil_mode=True" if self.ceil_mode else ""
        return f"{type(self).__name__}({k[0] if k[0] == k[1] else k}{extra})"


class MaxPool2D(_Pool2D):
    """The largest value of each window, as ``torch.nn.MaxPool2d(kernel_size, stride,
    padding, ceil_mode=ceil_mode)``: the padding is -inf, which no window takes as its
    maximum.

    Shape: inputs (N, C, H, W) -> out (N, C, Ho, Wo), ``Ho = (H + 2p - kH) // stride + 1``
    (with ``ceil_mode``, rounded up where the last window starts inside the input or
    its left padding, PyTorch's rule).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        The kernel size by default.
    padding : int or (int, int), default=0
        On each side of H and W, at most half the kernel (PyTorch's limit).
    ceil_mode : bool, default=False
        Keyword-only: PyTorch's fourth positional argument is ``dilation``, which this
        layer does not take.
    """

    pad_value = -np.inf

    def __init__(self, kernel_size, stride=None, padding=0, *, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)

    equations = ("{y} = max over each window of {x}",
                 ("d{x} = d{y} routed to the (first) maximum of its window",))

    def forward(self, inputs):
        if self.validate:
            inputs = check_images(inputs)
        if (out_hw := self._whole_windows(inputs.shape)) is not None:
            rows = _as_rows(inputs, self.kernel_size, out_hw)
            index = rows.argmax(axis=-1)   # the first maximum in row-major order, too
            self.cache = (index, inputs.shape, inputs.shape[2:])
            return np.take_along_axis(rows, index[..., None], axis=-1)[..., 0]
        inputs, in_hw, out_hw, out = self._first_tap(inputs)
        kh, kw = self.kernel_size
        index = np.zeros(out.shape, dtype=np.uint8 if kh * kw < 256 else np.intp)
        # Kernel offsets in row-major order, replacing the maximum only when strictly
        # larger: a tie stays with the first, PyTorch's choice. The offsets grow, so
        # "index = offset where tap > out" is a maximum with offset * (tap > out):
        # np.copyto(..., where=mask) took ~40x longer (0.9 ms against 0.02 ms on 200k).
        step = index.dtype.type
        for offset in range(1, kh * kw):
            values = inputs[tap(*divmod(offset, kw), self.stride, out_hw)]
            np.maximum(index, (values > out) * step(offset), out=index)
            np.maximum(out, values, out=out)
        self.cache = (index, inputs.shape, in_hw)
        return out

    def backward(self, d_out):
        """Each window's gradient goes to the one input its maximum came from."""
        index, in_shape, in_hw = self.cache if self.cache is not None else (
            np.empty(0), None, None)
        d_out = self._check_d_out(d_out, index.shape)
        kh, kw = self.kernel_size
        if in_shape[2:] == in_hw and self._whole_windows(in_shape) is not None:   # (unpadded)
            rows = np.zeros(index.shape + (kh * kw,), dtype=d_out.dtype)
            np.put_along_axis(rows, index[..., None], d_out[..., None], axis=-1)
            return _from_rows(rows, self.kernel_size, in_shape)
        d_inputs = np.zeros(in_shape, dtype=d_out.dtype)   # (padded, as the cache)
        overlapping = self.stride[0] < kh or self.stride[1] < kw
        for offset in range(kh * kw):
            at = tap(*divmod(offset, kw), self.stride, index.shape[2:])
            if overlapping:   # an input may be the maximum of several windows
                # d_out * mask, not np.where (slow on a random mask): a product with 0 is
                # +-0, and adding either zero leaves every sum as it was.
                d_inputs[at] += d_out * (index == offset)
            else:             # each input is in one window: write in place, 5x faster
                np.multiply(d_out, index == offset, out=d_inputs[at])
        return self._cropped(d_inputs, in_hw)


class AvgPool2D(_Pool2D):
    """The mean of each window, as ``torch.nn.AvgPool2d(kernel_size, stride, padding,
    ceil_mode, count_include_pad)``: the padding is zeros, counted in the mean unless
    ``count_include_pad=False``; the part of a ``ceil_mode`` window past the padding is
    never counted.

    Shape: inputs (N, C, H, W) -> out (N, C, Ho, Wo), ``Ho = (H + 2p - kH) // stride + 1``
    (rounded up instead with ``ceil_mode``, as :class:`MaxPool2D`).

    Parameters
    ----------
    kernel_size, stride, padding
        As :class:`MaxPool2D`'s.
    ceil_mode : bool, default=False
    count_include_pad : bool, default=True
        Count the padding's zeros in each window's mean (PyTorch's default).
    """

    equations = ("{y} = mean over each window of {x}",
                 ("d{x} = d{y} / (kH kW) added to every input of its window",))

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")
        if self.ceil_mode or not self.count_include_pad:   # edge windows count fewer
            self.equations = ("{y} = mean over each window of {x} (its entries counted as "
                              "PyTorch counts them at the edges)",
                              ("d{x} = d{y} / (the window's count) added to every input of "
                               "its window",))

    def get_config(self) -> dict:
        """As the base class's, with ``count_include_pad`` only when False."""
        config = super().get_config()
        return config if self.count_include_pad else {**config, "count_include_pad": False}

    def _counts(self, size: int, axis: int, dtype):
        """How many entries each window along ``axis`` averages (PyTorch's divisor):
        the window clipped to the padded input, or to the input alone without
        ``count_include_pad``. None where every window counts its whole kernel."""
        k, s, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
        out, extra = self._axis(size, axis)
        if not extra and (self.count_include_pad or not p):
            return None
        low, high = (0, size + 2 * p) if self.count_include_pad else (p, p + size)
        starts = np.arange(out) * s
        return (np.minimum(starts + k, high) - np.maximum(starts, low)).astype(dtype)

    def divisor(self, in_hw, dtype):
        """The divisor of every window: ``kH kW``, or an ``(Ho, Wo)`` array of counts."""
        rows, cols = (self._counts(n, axis, dtype) for axis, n in enumerate(in_hw))
        if rows is None and cols is None:
            return dtype.type(self.kernel_size[0] * self.kernel_size[1])
        rows = np.full(1, self.kernel_size[0], dtype) if rows is None else rows
        cols = np.full(1, self.kernel_size[1], dtype) if cols is None else cols
        return rows[:, None] * cols[None, :]

    def forward(self, inputs):
        # One strided slice a kernel offset, added up (as MaxPool2D takes its maxima):
        # a mean over the two window axes of the 6-D view ran 6-13x slower; but windows
        # of many taps that tile the input are summed as rows.
        if self.validate:
            inputs = check_images(inputs)
        if (out_hw := self._whole_windows(inputs.shape)) is not None:
            self.cache = (inputs.shape, inputs.shape[2:])
            out = _as_rows(inputs, self.kernel_size, out_hw).sum(axis=-1)
            out /= self.divisor(inputs.shape[2:], out.dtype)
            return out
        inputs, in_hw, out_hw, out = self._first_tap(inputs)
        kh, kw = self.kernel_size
        for offset in range(1, kh * kw):
            out += inputs[tap(*divmod(offset, kw), self.stride, out_hw)]
        out /= self.divisor(in_hw, out.dtype)   # the sum divided, as PyTorch's kernel does
        self.cache = (inputs.shape, in_hw)
        return out

    def backward(self, d_out):
        """Each output's gradient over its window's divisor, added to every input of
        its window (windows may overlap); the padding's share is dropped."""
        in_shape, in_hw = self.cache if self.cache is not None else (None, None)   # (padded)
        kh, kw = self.kernel_size
        out_hw = None if in_shape is None else tuple(
            pooled_size(n, k, s, (0, 0), axis) for n, k, s, axis in
            zip(in_shape[2:], self.kernel_size, self.stride, ("height", "width"), strict=True))
        d_out = self._check_d_out(d_out, () if in_shape is None else in_shape[:2] + out_hw)
        share = d_out / self.divisor(in_hw, d_out.dtype)
        if in_shape[2:] == in_hw and self._whole_windows(in_shape) is not None:   # (unpadded)
            rows = np.broadcast_to(share[..., None], share.shape + (kh * kw,))
            return _from_rows(rows, self.kernel_size, in_shape)
        d_inputs = np.zeros(in_shape, dtype=d_out.dtype)
        d_windows = np.broadcast_to(share[:, :, None, None], share.shape[:2] + (kh, kw)
                                    + share.shape[2:])
        add_windows(d_inputs, d_windows, self.kernel_size, self.stride, out_hw)
        return self._cropped(d_inputs, in_hw)

    def __repr__(self):
        extra = "" if self.count_include_pad else ", count_include_pad=False"
        return super().__repr__()[:-1] + extra + ")"


def _adaptive_windows(size: int, out: int) -> list:
    """``(start, end)`` of each of ``out`` windows over ``size`` inputs, PyTorch's
    adaptive windows: window ``i`` runs from ``floor(i size / out)`` up to ``ceil((i + 1)
    size / out)`` (exclusive); they overlap where ``out`` does not divide ``size``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _adaptive_means(size: int, out: int, dtype) -> np.ndarray:
    """``(out, size)``: row ``i`` averages the inputs of adaptive window ``i``."""
    matrix = np.zeros((out, size), dtype=dtype)
    for i, (start, end) in enumerate(_adaptive_windows(size, out)):
        matrix[i, start:end] = dtype.type(1) / dtype.type(end - start)
    return matrix


class _Adaptive(Layer):
    """What the adaptive pools share: ``output_size`` windows of PyTorch's rule."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = pair(output_size, "output_size")

    def get_config(self) -> dict:
        """The constructor argument, for model files."""
        return {"output_size": list(self.output_size)}

    def output_shape(self, shape) -> tuple:
        """``(C, Ho, Wo)`` for an input ``(C, H, W)``."""
        return (shape[0],) + self.output_size

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 3:
            raise ValueError("it takes images (N, C, H, W)")

    def __repr__(self):
        ho, wo = self.output_size
        return f"{type(self).__name__}({ho if ho == wo else (ho, wo)})"


class AdaptiveAvgPool2D(_Adaptive):
    """The mean of each of ``output_size`` windows, as
    ``torch.nn.AdaptiveAvgPool2d(output_size)``: output row ``i`` of an input of height
    ``H`` averages rows ``floor(i H / Ho)`` up to ``ceil((i + 1) H / Ho)`` (exclusive),
    and likewise along the width; windows overlap when ``Ho`` does not divide ``H``.
    ``AdaptiveAvgPool2D(1)`` is global average pooling (ResNet's head).

    Shape: inputs (N, C, H, W) -> out (N, C, Ho, Wo), ``(Ho, Wo) = output_size``.

    Parameters
    ----------
    output_size : int or (int, int)
        ``(Ho, Wo)``; an int is both.
    """

    equations = ("{y} = A_h @ {x} @ A_w^T   (A: the window means, a row per output)",
                 ("d{x} = A_h^T @ d{y} @ A_w",))

    def forward(self, inputs):
        if self.validate:
            inputs = check_images(inputs)
        (h, w), (ho, wo) = inputs.shape[2:], self.output_size
        # Separable: the mean over a window is the mean over its rows of the means over
        # its columns, two matrix products broadcast over (N, C).
        rows, cols = _adaptive_means(h, ho, inputs.dtype), _adaptive_means(w, wo, inputs.dtype)
        self.cache = (inputs.shape, rows, cols)
        return np.matmul(rows, np.matmul(inputs, cols.T))

    def backward(self, d_out):
        """Each output's gradient spread evenly over its window: the transposed products."""
        in_shape, rows, cols = self.cache if self.cache is not None else (None, None, None)
        d_out = self._check_d_out(d_out, () if in_shape is None else
                                  in_shape[:2] + self.output_size)
        return np.matmul(rows.T, np.matmul(d_out, cols))


class AdaptiveMaxPool2D(_Adaptive):
    """The largest value of each of ``output_size`` windows (PyTorch's adaptive windows,
    as :class:`AdaptiveAvgPool2D`'s), as ``torch.nn.AdaptiveMaxPool2d(output_size)``;
    the gradient goes to the window's first maximum in row-major order.
    ``AdaptiveMaxPool2D(1)`` is global max pooling.

    Shape: inputs (N, C, H, W) -> out (N, C, Ho, Wo), ``(Ho, Wo) = output_size``.

    Parameters
    ----------
    output_size : int or (int, int)
        ``(Ho, Wo)``; an int is both.
    """

    equations = ("{y} = max over each adaptive window of {x}",
                 ("d{x} = d{y} routed to the (first) maximum of its window",))

    def forward(self, inputs):
        """One reduction per window, over the window's entries as rows (``Ho Wo`` NumPy
        calls: one for global pooling)."""
        if self.validate:
            inputs = check_images(inputs)
        (n, c, h, w), (ho, wo) = inputs.shape, self.output_size
        out = np.empty((n, c, ho, wo), dtype=inputs.dtype)
        index = np.empty((n, c, ho, wo), dtype=np.intp)   # into the flattened image
        for i, (top, bottom) in enumerate(_adaptive_windows(h, ho)):
            for j, (left, right) in enumerate(_adaptive_windows(w, wo)):
                rows = inputs[:, :, top:bottom, left:right].reshape(n, c, -1)
                first = rows.argmax(axis=-1)   # (a NaN is the maximum, as in torch)
                out[:, :, i, j] = np.take_along_axis(rows, first[..., None], axis=-1)[..., 0]
                width = right - left
                index[:, :, i, j] = (top + first // width) * w + left + first % width
        self.cache = (index, inputs.shape)
        return out

    def backward(self, d_out):
        """Each output's gradient added to the one input its maximum came from (windows
        may overlap: an input can collect several)."""
        index, in_shape = self.cache if self.cache is not None else (np.empty(0), None)
        d_out = self._check_d_out(d_out, index.shape)
        n, c, h, w = in_shape
        d_inputs = np.zeros((n, c, h * w), dtype=d_out.dtype)
        for i in range(index.shape[2]):
            for j in range(index.shape[3]):
                at = index[:, :, i, j, None]
                np.put_along_axis(d_inputs, at, np.take_along_axis(d_inputs, at, axis=-1)
                                  + d_out[:, :, i, j, None], axis=-1)
        return d_inputs.reshape(in_shape)
