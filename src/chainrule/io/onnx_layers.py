"""ONNX nodes for the layers of :mod:`chainrule.conv`, :mod:`chainrule.conv1d` (the same
operators on one spatial axis) and :mod:`chainrule.normalization` (``Reshape``,
``Flatten``, ``Conv``, ``MaxPool``, ``AveragePool`` (also ``GlobalAveragePool`` for an
adaptive pool to 1 x 1), ``BatchNormalization``, ``LayerNormalization``, ``Softmax``,
``LogSoftmax``), in inference mode: a
batch normalisation uses its running statistics, exported as initializers under the
network's buffer names (``gamma`` and ``beta`` as ones and zeros without ``affine``).
One without running statistics (``track_running_stats=False``) normalises with the
statistics of the batch it is given, in evaluation as in training: its graph computes
them (``ReduceMean``, ``Sub``, ``Mul``, ``Add``, ``Sqrt``, ``Reciprocal``), as
PyTorch's export of such a layer does.
"""

from __future__ import annotations

import numpy as np

from ..activations import Hardsigmoid, Hardswish, Hardtanh, PReLU
from ..conv import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Flatten,
    MaxPool2D,
    Unflatten,
)
from ..conv1d import AdaptiveAvgPool1D, AdaptiveMaxPool1D, AvgPool1D, Conv1D, MaxPool1D
from ..convtranspose import ConvTranspose2D
from ..explain import output_shapes
from ..groupnorm import GroupNorm
from ..normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LogSoftmax, Softmax
from ..stateful import stateful_names

__all__ = ["LAYER_TYPES", "layer_node", "LAYER_NORM_OPSET"]

#: The layers :func:`layer_node` exports.
LAYER_TYPES = (AdaptiveAvgPool2D, AvgPool2D, Conv2D, Flatten, MaxPool2D, Unflatten, BatchNorm1d,
               BatchNorm2d, LayerNorm, Softmax, LogSoftmax, PReLU, Conv1D, MaxPool1D,
               AvgPool1D, AdaptiveAvgPool1D, AdaptiveMaxPool2D, AdaptiveMaxPool1D, GroupNorm,
               Hardtanh, Hardsigmoid, Hardswish, ConvTranspose2D)
#: LayerNormalization entered the default domain in opset 17.
LAYER_NORM_OPSET = 17
#: ReduceMean takes its axes as an input, no longer an attribute, from opset 18 on.
REDUCE_AXES_INPUT_OPSET = 18


def layer_node(builder, network, index: int, names, current: str, out: str, opset: int):
    """The node computing ``network.layers[index]`` from ``current`` into ``out``;
    initializers it needs go through ``builder._tensor``."""
    layer = network.layers[index][0]
    make_node = builder.helper.make_node
    if isinstance(layer, Unflatten):
        shape_name = f"shape{index}"
        builder.initializers.append(builder.numpy_helper.from_array(
            np.array((0,) + layer.shape, dtype=np.int64), name=shape_name))
        return make_node("Reshape", [current, shape_name], [out])
    if isinstance(layer, Flatten):
        return make_node("Flatten", [current], [out], axis=1)
    if isinstance(layer, (Softmax, LogSoftmax)):
        return make_node(type(layer).__name__, [current], [out], axis=layer.axis)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        return _pool_node(builder, network, index, current, out)
    if isinstance(layer, (AdaptiveAvgPool2D, AdaptiveMaxPool2D)):
        return _adaptive_pool_node(builder, network, index, current, out)
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        return _batch_norm_node(builder, network, index, names, current, out, opset)
    if isinstance(layer, PReLU):
        return _prelu_node(builder, network, index, names, current, out)
    if isinstance(layer, GroupNorm):
        return _group_norm_node(builder, network, index, names, current, out, opset)
    if isinstance(layer, Hardtanh):   # (ReLU6 too) Clip, its bounds as tensors
        for name, value in ((f"{out}_min", layer.min_val), (f"{out}_max", layer.max_val)):
            builder._tensor(np.array(value), name)
        return make_node("Clip", [current, f"{out}_min", f"{out}_max"], [out])
    if isinstance(layer, (Hardsigmoid, Hardswish)):
        return _hard_node(builder, layer, current, out)
    if isinstance(layer, (Conv2D, ConvTranspose2D)):
        for name in names:
            builder._tensor(network.params[name], name)
        if isinstance(layer, ConvTranspose2D):
            return _conv_transpose_node(builder, layer, names, current, out)
        return _conv_node(builder, layer, names, current, out, opset)
    return _layer_norm_node(builder, layer, list(names), [network.params[n] for n in names],
                            current, out, opset)


def _prelu_node(builder, network, index: int, names, current: str, out: str):
    """``PRelu`` with the slopes shaped to broadcast along axis 1 (``(C, 1, 1)`` for
    images: ONNX broadcasts from the last axis)."""
    in_shape = (network.n_features,) if index == 0 else output_shapes(network)[index - 1]
    slope = network.params[names[0]]
    if slope.size > 1:
        slope = slope.reshape((-1,) + (1,) * (len(in_shape) - 1))
    builder._tensor(slope, names[0])
    return builder.helper.make_node("PRelu", [current, names[0]], [out])


def _hard_node(builder, layer, current: str, out: str):
    """``Clip(x + 3, 0, 6) / 6`` (Hardsigmoid), or ``x * Clip(x + 3, 0, 6) / 6``
    (Hardswish), in the order chainrule computes them and with the constants in the
    graph's dtype: ONNX's own HardSigmoid and HardSwish take ``1/6`` as a float32
    attribute, which float64 graphs would not reproduce. The intermediate nodes go
    straight into the graph; the last one is returned."""
    make_node, p = builder.helper.make_node, f"{out}_"
    for name, value in (("zero", 0.0), ("three", 3.0), ("six", 6.0)):
        builder._tensor(np.array(value), p + name)
    steps = [("Add", [current, p + "three"], "shifted"),
             ("Clip", [p + "shifted", p + "zero", p + "six"], "gate")]
    if isinstance(layer, Hardswish):
        steps.append(("Mul", [current, p + "gate"], "scaled"))
    for op, inputs, name in steps:
        builder.nodes.append(make_node(op, inputs, [p + name], name=p + name))
    return make_node("Div", [p + steps[-1][2], p + "six"], [out])


def _spatial(layer, pair) -> list:
    """A 2-D setting ``(height, width)`` as ONNX's list for the layer's spatial axes: the
    width alone for a 1-D layer (its height is the 1 of the image it is run as)."""
    return list(pair[1:] if isinstance(layer, (Conv1D, MaxPool1D, AvgPool1D,
                                               AdaptiveAvgPool1D, AdaptiveMaxPool1D)) else pair)


def _conv_node(builder, layer, names, current: str, out: str, opset: int):
    """``Conv`` (2-D, or 1-D for a Conv1D), after a ``Pad`` node for a padding mode
    other than zeros."""
    (top, bottom), (left, right) = layer.pads
    # ONNX's defaults (dilations 1, group 1) are left out: a graph without the
    # options is the one exported before they existed.
    options: dict[str, object] = {"dilations": _spatial(layer, layer.dilation)} \
        if layer.dilation != (1, 1) else {}
    options.update({"group": layer.groups} if layer.groups != 1 else {})
    pads = _spatial(layer, (top, left)) + _spatial(layer, (bottom, right))
    if layer.padding_mode != "zeros" and any(pads):
        current, pads = _padded(builder, layer, current, out, pads, opset), [0] * len(pads)
    return builder.helper.make_node("Conv", [current, *names], [out],
                                    kernel_shape=_spatial(layer, layer.kernel_size),
                                    strides=_spatial(layer, layer.stride), pads=pads, **options)


def _conv_transpose_node(builder, layer, names, current: str, out: str):
    """``ConvTranspose``, every option given (its ``pads`` crop the output, as
    PyTorch's ``padding``; ``output_padding`` adds rows at the end). ONNX runtimes take
    ``output_padding`` below ``stride`` only (PyTorch also below ``dilation``)."""
    if any(extra >= s for extra, s in zip(layer.output_padding, layer.stride, strict=True)):
        raise ValueError(f"cannot export {layer!r}: ONNX's ConvTranspose takes "
                         f"output_padding below stride only (onnxruntime refuses the graph "
                         f"when it runs), got output_padding={layer.output_padding}, "
                         f"stride={layer.stride}")
    return builder.helper.make_node(
        "ConvTranspose", [current, *names], [out], kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride), pads=list(layer.padding) * 2,
        dilations=list(layer.dilation), group=layer.groups,
        output_padding=list(layer.output_padding))


#: ONNX Pad's modes for Conv2D's padding modes; 'wrap' entered in opset 19.
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
WRAP_PAD_OPSET = 19


def _padded(builder, layer, current: str, out: str, pads, opset: int) -> str:
    """A ``Pad`` node giving a Conv2D's input its reflected, repeated or wrapped
    padding (Conv's own ``pads`` are zeros); returns the padded value's name."""
    mode = _PAD_MODES[layer.padding_mode]
    if mode == "wrap" and opset < WRAP_PAD_OPSET:
        raise ValueError(f"opset must be at least {WRAP_PAD_OPSET} to export {layer!r} "
                         f"(ONNX's Pad mode 'wrap'), got {opset}")
    begins, ends = pads[:len(pads) // 2], pads[len(pads) // 2:]   # (ONNX's order)
    builder.initializers.append(builder.numpy_helper.from_array(
        np.array([0, 0, *begins, 0, 0, *ends], dtype=np.int64), name=f"{out}_pads"))
    builder.nodes.append(builder.helper.make_node(
        "Pad", [current, f"{out}_pads"], [f"{out}_padded"], mode=mode, name=f"{out}_pad"))
    return f"{out}_padded"


def _pool_node(builder, network, index: int, current: str, out: str):
    """``MaxPool`` or ``AveragePool``. A ``ceil_mode`` window past the padding is
    written out as padding at the end (ONNX's own ceil_mode sizes the output without
    PyTorch's rule that the last window start inside the input or its left padding):
    MaxPool never takes padding, and where AveragePool counts the padding its edge
    windows' divisors are corrected by a ``Mul`` (PyTorch does not count that part)."""
    layer = network.layers[index][0]
    in_hw = ((network.n_features,) if index == 0 else output_shapes(network)[index - 1])[1:]
    in_hw = (1,) * (2 - len(in_hw)) + tuple(in_hw)   # a sequence: an image one row high
    (ph, pw), (eh, ew) = layer.padding, layer.end_padding(in_hw)
    op, extra = "MaxPool", {}
    if isinstance(layer, AvgPool2D):
        # PyTorch's AvgPool2d counts the zeros of the padding (count_include_pad), unless
        # told not to, which is ONNX's default.
        op = "AveragePool"
        extra = {"count_include_pad": 1} if layer.count_include_pad and (ph or pw or eh or ew) \
            else {}
    fix = extra and (eh or ew)   # count_include_pad would count the end padding too
    pooled = f"{out}_sum" if fix else out
    node = builder.helper.make_node(op, [current], [pooled],
                                    kernel_shape=_spatial(layer, layer.kernel_size),
                                    strides=_spatial(layer, layer.stride),
                                    pads=_spatial(layer, (ph, pw)) + _spatial(layer, (ph + eh,
                                                                                       pw + ew)),
                                    **extra)
    if not fix:
        return node
    node.name = pooled
    builder.nodes.append(node)
    kh, kw = layer.kernel_size
    dtype = network.dtype
    rescale = dtype.type(kh * kw) / layer.divisor(in_hw, dtype)   # (Ho, Wo), or (1, Lo)
    builder._tensor(rescale.reshape((1, 1) + tuple(_spatial(layer, rescale.shape))),
                    f"{out}_rescale")
    return builder.helper.make_node("Mul", [pooled, f"{out}_rescale"], [out])


def _adaptive_pool_node(builder, network, index: int, current: str, out: str):
    """``GlobalAveragePool`` (``GlobalMaxPool``) for an output of 1 x 1; ``AveragePool``
    (``MaxPool``) with kernel = stride = input / output where the output size divides
    the input's (the windows then do not overlap); ``ValueError`` otherwise (ONNX has no
    adaptive pooling)."""
    layer = network.layers[index][0]
    kind = "Max" if isinstance(layer, AdaptiveMaxPool2D) else "Average"
    if layer.output_size == (1, 1):
        return builder.helper.make_node(f"Global{kind}Pool", [current], [out])
    in_hw = ((network.n_features,) if index == 0 else output_shapes(network)[index - 1])[1:]
    sizes = _spatial(layer, layer.output_size)
    if len(in_hw) != len(sizes) or any(n % o for n, o in zip(in_hw, sizes, strict=True)):
        raise ValueError(f"cannot export layer {index} ({layer!r}) on inputs of "
                         f"{'length' if len(sizes) == 1 else 'height and width'} "
                         f"{tuple(in_hw)}: ONNX has no adaptive pooling, so the output "
                         f"size must divide the input size (or be 1)")
    kernel = [n // o for n, o in zip(in_hw, sizes, strict=True)]
    return builder.helper.make_node(f"{kind}Pool", [current], [out], kernel_shape=kernel,
                                    strides=kernel)


def _batch_norm_node(builder, network, index: int, names, current: str, out: str, opset: int):
    """A batch normalisation: ``BatchNormalization`` on the running statistics, or the
    batch statistics computed in the graph without them."""
    layer = network.layers[index][0]
    if not layer.track_running_stats:
        return _batch_statistics_node(builder, network, index, names, current, out, opset)
    scale_bias = list(names) if layer.affine else [f"{out}_scale", f"{out}_bias"]
    arrays = ([network.params[n] for n in names] if layer.affine  # scale and B are not
              else [np.ones(layer.num_features), np.zeros(layer.num_features)])  # optional
    for name, array in zip(scale_bias, arrays, strict=True):
        builder._tensor(array, name)
    # (num_batches_tracked, with momentum=None, only counts training batches.)
    buffers = list(stateful_names([lay for lay, _ in network.layers])[index][1])[:2]
    # ONNX holds epsilon as a float32 attribute; a float64 graph gets the difference in
    # its variance, so that var + eps is chainrule's (1e-8 off otherwise)
    shift = layer.eps - float(np.float32(layer.eps)) if builder.dtype == np.float64 else 0.0
    for name, add in zip(buffers, (0.0, shift), strict=True):
        builder._tensor(network.buffers[name] + add, name)
    return builder.helper.make_node("BatchNormalization", [current, *scale_bias, *buffers],
                                    [out], epsilon=layer.eps)


def _batch_statistics_node(builder, network, index: int, names, current: str, out: str,
                           opset: int):
    """A batch normalisation with the biased ``mean`` and ``var`` of the batch over every
    axis but 1 (:func:`_normalized`; ``BatchNormalization`` in training mode would
    compute them too, but is not a kernel inference runtimes such as onnxruntime's CPU
    provider need to have)."""
    layer = network.layers[index][0]
    in_shape = (network.n_features,) if index == 0 else output_shapes(network)[index - 1]
    bshape = (1, -1) + (1,) * (len(in_shape) - 1)   # channel vectors, broadcast
    params = [(n, network.params[n].reshape(bshape)) for n in names] if layer.affine else []
    return _normalized(builder, current, out, opset, [0] + list(range(2, len(in_shape) + 1)),
                       layer.eps, params)


def _group_norm_node(builder, network, index: int, names, current: str, out: str,
                     opset: int):
    """A group normalisation: the input as rows ``(N, G, -1)``, normalised along them
    (:func:`_normalized`), back to its shape, then the channels' ``gamma`` and ``beta``
    (ONNX's own GroupNormalization scaled per group until opset 21)."""
    layer = network.layers[index][0]
    make_node = builder.helper.make_node
    p = f"{out}_"
    builder.initializers.append(builder.numpy_helper.from_array(
        np.array([0, layer.num_groups, -1], dtype=np.int64), name=p + "groups"))
    builder.nodes += [make_node("Shape", [current], [p + "shape"], name=p + "shape"),
                      make_node("Reshape", [current, p + "groups"], [p + "rows"],
                                name=p + "rows")]
    builder.nodes.append(_normalized(builder, p + "rows", p + "normed", opset, [2],
                                     layer.eps, []))
    if not names:
        return make_node("Reshape", [p + "normed", p + "shape"], [out])
    builder.nodes.append(make_node("Reshape", [p + "normed", p + "shape"], [p + "xhat_c"],
                                   name=p + "xhat_c"))
    in_shape = (network.n_features,) if index == 0 else output_shapes(network)[index - 1]
    channel = (-1,) + (1,) * (len(in_shape) - 1)   # (C, 1, ...): broadcast along axis 1
    for name in names:
        builder._tensor(network.params[name].reshape(channel), name)
    builder.nodes.append(make_node("Mul", [p + "xhat_c", names[0]], [p + "scaled_c"],
                                   name=p + "scaled_c"))
    return make_node("Add", [p + "scaled_c", names[1]], [out])


def _layer_norm_node(builder, layer, names, params, current: str, out: str, opset: int):
    """``LayerNormalization``; in a float64 graph the same computed by :func:`_normalized`,
    since the operator holds ``epsilon`` as a float32 attribute (1e-5 becomes
    9.99999975e-06: outputs 1e-8 off chainrule's)."""
    if builder.dtype == np.float64:
        axes = list(range(-len(layer.normalized_shape), 0))
        return _normalized(builder, current, out, opset, axes, layer.eps,
                           list(zip(names, params, strict=True)))
    if opset < LAYER_NORM_OPSET:
        raise ValueError(f"opset must be at least {LAYER_NORM_OPSET} to export {layer!r} "
                         f"(ONNX's LayerNormalization), got {opset}")
    for name, array in zip(names, params, strict=True):
        builder._tensor(array, name)
    if not names:   # elementwise_affine=False: Scale is not optional, ones it is
        names = [f"{out}_scale"]
        builder._tensor(np.ones(layer.normalized_shape), names[0])
    return builder.helper.make_node("LayerNormalization", [current, *names], [out],
                                    axis=-len(layer.normalized_shape), epsilon=layer.eps)


def _normalized(builder, current: str, out: str, opset: int, axes, eps: float, params):
    """``(x - mean) * 1/sqrt(var + eps) [* gamma [+ beta]]`` with the biased ``mean`` and
    ``var`` over ``axes``, in the order chainrule computes them, ``eps`` a tensor of the
    graph's dtype; ``params``: ``(name, array)`` of ``gamma`` (and ``beta``), shaped to
    broadcast. Intermediate nodes go straight into the graph; the last one is returned."""
    make_node = builder.helper.make_node

    def reduce_mean(source, target):
        if opset < REDUCE_AXES_INPUT_OPSET:
            return make_node("ReduceMean", [source], [target], axes=axes, keepdims=1,
                             name=target)
        return make_node("ReduceMean", [source, f"{out}_axes"], [target], keepdims=1,
                         name=target)

    if opset >= REDUCE_AXES_INPUT_OPSET:
        builder.initializers.append(builder.numpy_helper.from_array(
            np.array(axes, dtype=np.int64), name=f"{out}_axes"))
    builder._tensor(np.array(eps), f"{out}_eps")
    p = f"{out}_"   # the names of this layer's intermediate values (and nodes)
    builder.nodes += [reduce_mean(current, p + "mean"),
                      make_node("Sub", [current, p + "mean"], [p + "centred"], name=p + "centred"),
                      make_node("Mul", [p + "centred", p + "centred"], [p + "squared"],
                                name=p + "squared"),
                      reduce_mean(p + "squared", p + "var"),
                      make_node("Add", [p + "var", p + "eps"], [p + "var_eps"], name=p + "var_eps"),
                      make_node("Sqrt", [p + "var_eps"], [p + "std"], name=p + "std"),
                      make_node("Reciprocal", [p + "std"], [p + "scale"], name=p + "scale")]
    if not params:
        return make_node("Mul", [p + "centred", p + "scale"], [out])
    for name, array in params:
        builder._tensor(array, name)
    builder.nodes.append(make_node("Mul", [p + "centred", p + "scale"], [p + "xhat"],
                                   name=p + "xhat"))
    if len(params) == 1:
        return make_node("Mul", [p + "xhat", params[0][0]], [out])
    builder.nodes.append(make_node("Mul", [p + "xhat", params[0][0]], [p + "scaled"],
                                   name=p + "scaled"))
    return make_node("Add", [p + "scaled", params[1][0]], [out])
