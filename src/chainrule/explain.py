"""Looking inside a network: node names, the summary table and the equations of
:meth:`~chainrule.models.Network.explain`, for any layer that keeps the contract.

A layer may carry ``equations = (forward, (backward, ...))`` whose placeholders are
``{x}`` (its input), ``{y}`` (its output) and its own parameter names (``{W}``,
``{gamma}``, ...), which are replaced by the network's names (``W1``, ``gamma2``). A
layer without equations gets default ones naming its input, output and parameters;
a placeholder nobody knows is printed as it is, never raised on. Every gradient is
printed with the shape of the array it belongs to: data shapes with their first axis
as ``N``, parameter shapes as they are.

The functions take the network as an argument (anything with ``layers``, ``params``,
``buffers``, ``loss`` and ``walk``); :class:`~chainrule.models.Network` calls them.
"""

from __future__ import annotations

import math
import re

from ._validation import shape_str
from .layers import (
    ELU,
    GELU,
    Affine,
    Dropout,
    Dropout1d,
    Dropout2d,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .stateful import first_trained

__all__ = ["node_names", "summary", "network_repr", "explain", "local_param_names",
           "output_shapes", "input_shapes", "output_width", "WIDTH_KEEPING"]

#: Built-in layers whose output has their input's width (what ``output_width`` skips).
WIDTH_KEEPING = frozenset({ReLU, LeakyReLU, Tanh, Sigmoid, GELU, SiLU, ELU, Softplus, Identity,
                            Dropout, Dropout1d, Dropout2d, Hardtanh, ReLU6,
                            Hardsigmoid, Hardswish})
#: Layers whose output shape :func:`check_shapes` knows without an ``output_shape``.
_KNOWN = WIDTH_KEEPING | {Affine}


def local_param_names(layer, names) -> tuple:
    """The layer's own names for its parameters: its ``param_names`` when it declares
    as many as it takes, else the network's names."""
    own = tuple(getattr(layer, "param_names", ()) or ())
    return own if len(own) == len(names) else tuple(names)


def node_names(layers) -> list[str]:
    """Unique names of the values flowing between layers: X, Z1, H1, ...

    ``k`` counts the layers with parameters or buffers, as their names do (``W3`` is
    used by ``Z3``): ``Z{k}`` is an Affine output, ``D{k}`` a Dropout output and
    ``H{k}`` any other layer's; a second one with the same ``k`` gets ``H{k}_2``, then
    ``H{k}_3``, so that no two nodes share a name.
    """
    names, k = ["X"], 0
    for layer, params in layers:
        k += bool(params or getattr(layer, "buffer_names", ()))
        if isinstance(layer, Affine):
            base = f"Z{k}"
        else:
            base = f"{'D' if isinstance(layer, Dropout) else 'H'}{k}"
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return names


def output_shapes(network) -> list[tuple]:
    """The shape of each layer's output for one sample (the batch axis left out),
    worked out without running the network: an Affine layer's weight sets the width,
    a layer with ``output_shape(input_shape)`` (the layers of :mod:`chainrule.conv`
    and :mod:`chainrule.normalization`) says it, another layer whose first parameter
    is 2-D is taken as Affine-like, anything else keeps its input's shape."""
    shape: tuple = (network.n_features,)
    shapes = []
    for layer, names in network.layers:
        shape = output_shapes_step(network, layer, names, shape)
        shapes.append(shape)
    return shapes


def input_shapes(network):
    """The shape of each layer's input for one sample (batch axis left out), as
    :func:`output_shapes` works them out; None where that fails (a layer of your own
    that cannot say)."""
    try:
        return [(network.n_features,), *output_shapes(network)[:-1]]
    except (TypeError, ValueError, AttributeError, IndexError):
        return None


def check_shapes(network) -> None:
    """Raise ``ValueError`` naming the first layer that cannot take the output of the
    one before it (a convolution's channels, a batch normalisation's features, an
    Affine layer's width), worked out as :func:`output_shapes` does, before any data
    flows (inside a network the layers' own checks are off).

    The check stops at the first layer of your own without ``output_shape``: what
    comes out of it is not known without running it.
    """
    shape: tuple = (network.n_features,)
    for i, (layer, names) in enumerate(network.layers):
        if type(layer) not in _KNOWN and not hasattr(layer, "output_shape"):
            return
        width = network.params[names[0]].shape[0] if isinstance(layer, Affine) else None
        try:
            if width is not None and shape != (width,):
                raise ValueError(f"it takes {width} features a row")
            getattr(layer, "check_input_shape", lambda _: None)(shape)
            shape = output_shapes_step(network, layer, names, shape)
        except ValueError as exc:
            raise ValueError(f"layers[{i}] ({layer_label(layer)}) cannot take inputs of "
                             f"shape {shape_str((-1,) + shape).replace('-1', 'N', 1)}: "
                             f"{exc}") from None


def output_shapes_step(network, layer, names, shape) -> tuple:
    """The output shape of one layer (batch axis left out) for an input ``shape``."""
    if isinstance(layer, Affine):
        return (network.params[names[0]].shape[1],)
    if hasattr(layer, "output_shape"):
        return tuple(layer.output_shape(shape))
    if names and network.params[names[0]].ndim == 2:  # a custom Affine-like layer
        return (network.params[names[0]].shape[1],)
    return shape


def layer_label(layer) -> str:
    """The layer's repr, or its class name where the repr is object's default (a custom
    layer without ``__repr__``), whose memory address would say nothing."""
    text = repr(layer)
    return type(layer).__name__ if text.startswith("<") and " at 0x" in text else text


def output_width(network) -> int:
    """Columns of a network's output: the last Affine layer's width when only
    activations follow it (read at every training step, so without a walk), else the
    last of :func:`output_shapes` (a convolution, a custom last layer)."""
    layer, names = network.layers[-1]
    if type(layer) is not Affine:  # (an Affine layer last: the usual case, first)
        i = len(network.layers) - 1 - first_trained(network.layers[::-1])
        layer, names = network.layers[i]
        if type(layer) is not Affine or not all(
                type(after) in WIDTH_KEEPING for after, _ in network.layers[i + 1:]):
            return math.prod(output_shapes(network)[-1])
    return network.params[names[0]].shape[1]


def network_repr(network) -> str:
    """What ``print(model)`` shows, as PyTorch prints a module: the class, each layer at
    its position with the names of its parameters, then the loss, the dtype and the
    parameter count (:func:`summary` adds the shapes)."""
    lines = [f"{type(network).__name__}("]
    for i, (layer, names) in enumerate(network.layers):
        lines.append(f"  ({i}): {layer_label(layer)}" + (f"  [{', '.join(names)}]" if names
                                                          else ""))
    lines.append(f"  loss: {network.loss!r}, {network.dtype}, "
                 f"{network.num_parameters():,} parameters")
    return "\n".join(lines + [")"])


def summary(network) -> str:
    """A table of layers, output shapes and parameter counts (then the buffers)."""
    rows = [("layer", "output shape", "parameters", "count")]
    params = network.params
    guessed = False
    for (layer, names), node, shape in zip(network.layers, node_names(network.layers)[1:],
                                           output_shapes(network), strict=True):
        shapes = ", ".join(f"{n} {shape_str(params[n].shape)}" for n in names)
        count = sum(params[n].size for n in names)
        # A layer of your own that does not say its output shape is shown with its
        # input's (or, with a 2-D first parameter, that one's width), marked:
        # output_shapes cannot know better without running it.
        unsaid = type(layer) not in _KNOWN and not hasattr(layer, "output_shape")
        guessed |= unsaid
        rows.append((f"{node} = {layer_label(layer)}",
                     shape_str((-1,) + shape).replace("-1", "N", 1) + "?" * unsaid,
                     shapes or "-", f"{count:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)

    def fmt(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    lines = [f"{type(network).__name__}: input (N, {network.n_features}), loss "
             f"{type(network.loss).__name__}, dtype {network.dtype}", line, fmt(rows[0]), line]
    lines += [fmt(r) for r in rows[1:]]
    lines += [line, f"total parameters: {network.num_parameters():,}"]
    if guessed:
        lines.append("?: a layer without output_shape(input_shape), shown with its input's "
                     "shape, or its first weight's width")
    buffers = getattr(network, "buffers", {})
    if buffers:
        lines.append("buffers (not trained): " + ", ".join(
            f"{n} {shape_str(b.shape)}" for n, b in buffers.items()))
    return "\n".join(lines)


class _Fields(dict):
    """Placeholder values for ``str.format_map``; an unknown one is kept as written."""

    def __missing__(self, key):
        return "{" + key + "}"


def explain(network, X) -> str:
    """Every layer's forward and backward equation with this batch's real shapes.

    ``X`` must already be checked by the network; the forward pass runs in evaluation
    mode (which, by the layer contract, changes no state).
    """
    shapes = [X.shape] + [out.shape for *_, out in network.walk(X, checked=True)]
    n = X.shape[0]
    shp = lambda s: shape_str(s).replace(f"({n},", "(N,", 1)  # noqa: E731
    nodes = node_names(network.layers)
    lines = [f"N = {n}", "forward:"]
    backward = []
    first = first_trained(network.layers)   # backward ends there: nothing below it runs
    for i, (layer, names) in enumerate(network.layers):
        fwd, bwd = _layer_equations(network, layer, names, nodes[i:i + 2], shapes[i:i + 2],
                                    shp)
        lines.append(f"  {fwd}")
        backward.append(bwd if i >= first else [])
    fields = _Fields(x=nodes[-1])
    loss_eq = network.loss.equations
    lines.append(f"  {loss_eq[0].format_map(fields)} : {shp(shapes[-1])} -> ()")
    lines.append("backward:")
    lines.append(f"  {loss_eq[1][0].format_map(fields)} : {shp(shapes[-1])}")
    for bwd in reversed(backward):
        lines += [f"  {e}" for e in bwd]
    return "\n".join(lines)


def _default_equations(layer, local):
    """Equations for a layer that has none: its name applied to input and parameters."""
    args = "".join(", {" + p + "}" for p in local)
    name = type(layer).__name__
    return ("{y} = " + name + "({x}" + args + ")",
            tuple(["d{x} = " + name + ".backward(d{y})[inputs]"]
                  + ["d{" + p + "} = " + name + ".backward(d{y})[" + p + "]" for p in local]))


def _layer_equations(network, layer, names, nodes, shapes, shp):
    """One layer's forward equation and its backward ones, for :func:`explain`.

    ``nodes`` and ``shapes`` are the names and shapes of its input and output; ``shp``
    prints a data shape with its first dimension as N.
    """
    (x, y), (in_shape, out_shape) = nodes, shapes
    params = network.params
    if isinstance(layer, Affine):
        return _affine_equations(params, names, x, y, in_shape, out_shape, shp,
                                 layer.compute_input_grad)
    local = local_param_names(layer, names)
    equations = getattr(layer, "equations", None)
    # Layer's own template, f(x) with f'(x) * dy, is no equation of any one layer:
    # one that inherits it gets the honest default (its name applied) instead.
    if not equations or equations is Layer.equations:
        equations = _default_equations(layer, local)
    fields = _Fields(x=x, y=y, **dict(zip(local, names, strict=True)))
    gradient_shapes = {f"d{x}": shp(in_shape), f"d{y}": shp(out_shape)}
    gradient_shapes.update({f"d{g}": shape_str(params[g].shape) for g in names})
    fwd = f"{equations[0].format_map(fields)} : {shp(in_shape)} -> {shp(out_shape)}"
    bwd = []
    for eq in equations[1]:
        text = eq.format_map(fields)
        target = re.match(r"\s*(d\w+)", text)
        if target and target.group(1) == f"d{x}" and not getattr(layer, "compute_input_grad",
                                                                   True):
            continue   # a first layer's input gradient, skipped (as Affine's below)
        shape = gradient_shapes.get(target.group(1)) if target else None
        bwd.append(f"{text} : {shape or shp(in_shape)}")
    return fwd, bwd


def _affine_equations(params, names, x, y, in_shape, out_shape, shp, input_grad):
    W, b = names if len(names) == 2 else (names[0], None)   # (W,): bias=False
    # Parameter shapes are printed as they are: only data shapes carry the batch
    # dimension N (a weight with N rows must still show its number).
    w_shape = params[W].shape
    plus_b = "" if b is None else f" + {b}"
    plus_shape = "" if b is None else f" + {shape_str(params[b].shape)}"
    fwd = (f"{y} = {x} @ {W}{plus_b} : {shp(in_shape)} @ {shape_str(w_shape)}{plus_shape}"
           f" -> {shp(out_shape)}")
    bwd = [f"d{W} = {x}^T @ d{y} : ({in_shape[1]}, N) @ {shp(out_shape)}"
           f" -> {shape_str(w_shape)}"]
    if b is not None:
        bwd.append(f"d{b} = sum_rows(d{y}) : {shp(out_shape)} -> "
                   f"{shape_str(params[b].shape)}")
    if input_grad:
        bwd.append(f"d{x} = d{y} @ {W}^T : {shp(out_shape)} @ "
                   f"{shape_str(w_shape[::-1])} -> {shp(in_shape)}")
    return fwd, bwd

