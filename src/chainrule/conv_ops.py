"""The index arithmetic and array kernels behind :mod:`chainrule.conv`: argument pairs,
output sizes and paddings, the strided window view (im2col's source), col2im, and the
products of a grouped convolution.

Every function works on NCHW arrays or on the im2col layouts :class:`~chainrule.conv.
Conv2D` uses; none keeps state. A *dilated* window of a ``k``-tap kernel spans
``dilation (k - 1) + 1`` pixels and reads every ``dilation``-th one, as in PyTorch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._validation import as_float_array, check_positive_int

__all__ = ["check_images", "pair", "pooled_size", "conv_padding", "windows", "tap",
           "add_windows", "col2im", "grouped_product", "grouped_weight_grad",
           "grouped_cols_grad", "pad_images"]


def check_images(inputs, name="inputs"):
    """``inputs`` as a float array of images ``(N, C, H, W)`` (``ValueError`` else)."""
    return as_float_array(inputs, name, ndim=4)


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (check_positive_int(value[0], name, minimum=minimum),
                check_positive_int(value[1], name, minimum=minimum))
    v = check_positive_int(value, name, minimum=minimum)
    return v, v


def pooled_size(size: int, kernel: int, stride: int, pads: tuple, axis: str,
                dilation: int = 1) -> int:
    """Output length along one axis padded by ``pads = (before, after)`` zeros (floor,
    as PyTorch's default): ``(size + before + after - dilation (kernel - 1) - 1) //
    stride + 1``."""
    span = dilation * (kernel - 1) + 1
    if size + sum(pads) < span:
        dilated = f" ({kernel} taps, dilation {dilation})" if dilation > 1 else ""
        raise ValueError(f"the input's {axis} {size} (padded by {pads[0]} and {pads[1]}) is "
                         f"smaller than the kernel's {span}{dilated}")
    return (size + sum(pads) - span) // stride + 1


def conv_padding(padding, kernel, stride, dilation=(1, 1)):
    """``(padding as given, ((top, bottom), (left, right)))``.

    ``'valid'`` is no padding. ``'same'`` keeps the size at stride 1 (PyTorch refuses it
    for strided convolutions): ``dilation (k - 1)`` zeros along each axis, the odd one
    after, as PyTorch places them (a kernel of 4: one before, two after; a kernel of 2
    dilated by 3: one before, two after).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return "valid", ((0, 0), (0, 0))
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', "
                             f"got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride=1 (as in PyTorch), got "
                             f"stride={stride}")
        totals = (d * (k - 1) for k, d in zip(kernel, dilation, strict=True))
        return "same", tuple((t // 2, t - t // 2) for t in totals)
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, pw), ((ph, ph), (pw, pw))


def pad_images(x, pads, value=0.0):
    """``x`` (N, C, H, W) with ``pads = ((top, bottom), (left, right))`` rows and columns
    of ``value`` around each image: ``numpy.pad``'s constant mode as one filled array
    and one copy. (``np.pad`` fills each side in a pass of its own: 95 against 62 us on
    64 x 16 x 14 x 14 float32, a fifth of a small convolutional autoencoder's training
    step in its pads.)"""
    (top, bottom), (left, right) = pads
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def windows(x, kernel, stride, dilation=(1, 1)):
    """A strided view ``(N, C, Ho, Wo, kH, kW)`` of every window of ``x`` (no copy); a
    dilated window is a view of its span taking every ``dilation``-th pixel."""
    if dilation == (1, 1):
        view = sliding_window_view(x, kernel, axis=(2, 3))
        return view[:, :, ::stride[0], ::stride[1]]
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    view = sliding_window_view(x, span, axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def tap(i, j, stride, out_hw):
    """The index of the inputs at kernel offset ``(i, j)`` of every window: a strided
    ``(N, C, Ho, Wo)`` slice."""
    (sh, sw), (ho, wo) = stride, out_hw
    return (slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh),
            slice(j, j + sw * (wo - 1) + 1, sw))


def add_windows(dx, d_windows, kernel, stride, out_hw):
    """``dx[..., i + s*p, j + s*q] += d_windows[:, :, i, j, p, q]`` in NCHW (the pools'
    col2im), one vectorised addition per kernel offset ``(i, j)``; overlapping windows
    add up."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dx[tap(i, j, stride, out_hw)] += d_windows[:, :, i, j]


def col2im(d_cols, shape, stride, dilation=(1, 1)):
    """col2im in the layout ``(C, H, W, N)``: ``out[c, dH i + sH p, dW j + sW q, n] +=
    d_cols[c, i, j, p, q, n]`` for every kernel offset ``(i, j)`` (``d_cols`` of shape
    ``(C, kH, kW, Ho, Wo, N)``); overlapping windows add up."""
    out = np.zeros(shape, d_cols.dtype)
    (sh, sw), (dh, dw), (kh, kw, ho, wo) = stride, dilation, d_cols.shape[1:5]
    for i in range(kh):
        for j in range(kw):
            top, left = dh * i, dw * j
            out[:, top:top + sh * (ho - 1) + 1:sh, left:left + sw * (wo - 1) + 1:sw] += \
                d_cols[:, i, j]
    return out


def grouped_product(weight, cols, groups: int):
    """``out[n, g] = W[g] @ cols[n, g]``: the forward product, ``(N, C_out, Ho Wo)``.

    ``weight`` is ``(C_out, C_in / groups, kH, kW)`` and ``cols`` the im2col matrices
    ``(N, C_in kH kW, Ho Wo)``, whose rows are grouped by input channel already, so
    ``(N, groups, C_in / groups kH kW, Ho Wo)`` is a free reshape. One ``np.matmul``
    runs over the group axis (with ``groups=1``, the one product per image it was).
    """
    n, rows, positions = cols.shape
    c_out = weight.shape[0]
    product = np.matmul(weight.reshape(groups, c_out // groups, -1),
                        cols.reshape(n, groups, rows // groups, positions))
    return product.reshape(n, c_out, positions)


def grouped_weight_grad(cols, d_rows, groups: int, shape):
    """``dW[g] = sum_n dY[n, g] @ cols[n, g]^T``, of ``shape`` (the weight's).

    ``cols`` ``(N, C_in kH kW, P)`` and ``d_rows`` ``(N, C_out, P)``, ``P = Ho Wo``.
    """
    n, rows, positions = cols.shape
    c_out = d_rows.shape[1]
    per_group = cols.reshape(n, groups, rows // groups, positions)
    d_groups = d_rows.reshape(n, groups, c_out // groups, positions)
    if c_out // groups <= positions:
        # One small product per image and group, dW^T[n, g] = cols[n, g] @ dY[n, g]^T,
        # summed over the batch: the per-image products take no more memory than cols,
        # and no copy of cols is made. This orientation is OpenBLAS's faster one for
        # these shapes (float32, one thread, 64 images: 16 x 14 x 14 -> 32 channels 1.55
        # ms against 2.32 for dY[n] @ cols[n]^T and 2.50 for the long product below;
        # even with them on 1 x 28 x 28 -> 16).
        d_weight = np.matmul(per_group, d_groups.transpose(0, 1, 3, 2)).sum(axis=0)
    else:
        # More channels than positions (deep, small images): the per-image products
        # would outgrow cols, so one product per group over all N Ho Wo positions,
        # taken as dW^T = cols (C_in kH kW, N Ho Wo) @ rows(dY)^T (it copies cols once,
        # transposed); OpenBLAS runs this orientation ~15% faster.
        d_weight = np.matmul(
            per_group.transpose(1, 2, 0, 3).reshape(groups, rows // groups, -1),
            d_groups.transpose(1, 2, 0, 3).reshape(groups, c_out // groups, -1)
            .transpose(0, 2, 1))
    return d_weight.transpose(0, 2, 1).reshape(shape)


def grouped_cols_grad(weight, d_rows, groups: int, out_hw, out=None):
    """``d_cols[g] = W[g]^T @ dY[g]`` in col2im's layout ``(C_in, kH, kW, Ho, Wo, N)``
    (``d_rows`` ``(N, C_out, Ho Wo)``), into ``out`` when given (an array of as many
    entries, for a caller that reuses it).

    In that layout each kernel offset of col2im adds a block whose inner axes (Wo, N)
    are contiguous; in NCHW it adds rows of Wo numbers (2.7 ms against 3.9 ms on 64 x
    16 x 14 x 14, the same values).
    """
    n, c_out = d_rows.shape[:2]
    c_group, kh, kw = weight.shape[1:]
    d_groups = d_rows.transpose(1, 2, 0).reshape(groups, c_out // groups, -1)
    w_t = weight.reshape(groups, c_out // groups, -1).transpose(0, 2, 1)
    # One output channel per group (depthwise): the product over an axis of length 1 is
    # an outer product, which np.multiply computes 4x faster than np.matmul (0.54 ms
    # against 2.06 on 64 x 16 x 14 x 14, 3 x 3, float32), with the same values.
    if out is not None:
        out = out.reshape(groups, c_group * kh * kw, d_groups.shape[2])
    d_cols = (np.multiply(w_t, d_groups, out=out) if c_out == groups
              else np.matmul(w_t, d_groups, out=out))
    return d_cols.reshape(groups * c_group, kh, kw, *out_hw, n)
