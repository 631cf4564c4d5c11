"""ONNX nodes for the layers of :mod:`chainrule.conv` and :mod:`chainrule.normalization`
(``Reshape``, ``Flatten``, ``Conv``, ``MaxPool``, ``AveragePool``,
``BatchNormalization``, ``LayerNormalization``, ``Softmax``), in inference mode: a
batch normalisation uses its running statistics, exported as initializers under the
network's buffer names.
"""

from __future__ import annotations

import numpy as np

from ..conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, Unflatten
from ..normalization import BatchNorm1d, BatchNorm2d, LayerNorm, Softmax
from ..stateful import stateful_names

__all__ = ["LAYER_TYPES", "layer_node", "LAYER_NORM_OPSET"]

#: The layers :func:`layer_node` exports.
LAYER_TYPES = (AvgPool2D, Conv2D, Flatten, MaxPool2D, Unflatten, BatchNorm1d, BatchNorm2d,
               LayerNorm, Softmax)
#: LayerNormalization entered the default domain in opset 17.
LAYER_NORM_OPSET = 17


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
    if isinstance(layer, Softmax):
        return make_node("Softmax", [current], [out], axis=layer.axis)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        op = "MaxPool" if isinstance(layer, MaxPool2D) else "AveragePool"
        (ph, pw) = layer.padding
        # PyTorch's AvgPool2d counts the zeros of the padding (count_include_pad).
        extra = {"count_include_pad": 1} if op == "AveragePool" and (ph or pw) else {}
        return make_node(op, [current], [out], kernel_shape=list(layer.kernel_size),
                         strides=list(layer.stride), pads=[ph, pw, ph, pw], **extra)
    for name in names:
        builder._tensor(network.params[name], name)
    if isinstance(layer, Conv2D):
        ((top, bottom), (left, right)) = layer.pads
        return make_node("Conv", [current, *names], [out], kernel_shape=list(layer.kernel_size),
                         strides=list(layer.stride), pads=[top, left, bottom, right])
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        buffers = list(stateful_names([lay for lay, _ in network.layers])[index][1])
        for name in buffers:
            builder._tensor(network.buffers[name], name)
        return make_node("BatchNormalization", [current, *names, *buffers], [out],
                         epsilon=layer.eps)
    if opset < LAYER_NORM_OPSET:
        raise ValueError(f"opset must be at least {LAYER_NORM_OPSET} to export {layer!r} "
                         f"(ONNX's LayerNormalization), got {opset}")
    return make_node("LayerNormalization", [current, *names], [out],
                     axis=-len(layer.normalized_shape), epsilon=layer.eps)
