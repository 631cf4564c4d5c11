"""The networks ``chainrule train`` builds (``--model mlp``, ``logreg``, ``cnn``).

``--model cnn`` is a small convolutional network for images of the shape an ``.npz`` or
IDX file stores (channels first), or for square one-channel images in flat rows
(scikit-learn's 8x8 digits, 28x28 MNIST rows).

The network normalises its own inputs with a :class:`~chainrule.normalization.BatchNorm2d`
over the channels, so the data is fed raw (no standardisation to fold into a first
Affine layer) and a saved model takes raw pixels. Then, for each ``--channels`` entry,
a 3x3 convolution (padding 1), the ``--activation`` and a 2x2 max-pool; then the
``--hidden`` Affine layers with ``--dropout``, and the output layer.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ._common import UsageError

__all__ = ["TASK_LOSSES", "add_architecture_arguments", "check_task_loss", "train_loss",
           "build_model", "build_cnn", "check_cnn_flags", "describe_cnn",
           "DEFAULT_CHANNELS", "DEFAULT_HIDDEN", "DEFAULT_ACTIVATION", "hidden_sizes",
           "activation"]

#: Output channels of the convolutions of ``--model cnn``.
DEFAULT_CHANNELS = [16, 32]

#: The hidden layers and their activation of ``--model mlp`` and ``cnn`` when
#: ``--hidden`` and ``--activation`` are not given.
DEFAULT_HIDDEN = [128]
DEFAULT_ACTIVATION = "relu"


def hidden_sizes(args) -> list:
    """--hidden, :data:`DEFAULT_HIDDEN` when not given (None: so that logreg refuses
    it only when given)."""
    return DEFAULT_HIDDEN if args.hidden is None else args.hidden


def activation(args) -> str:
    """--activation, :data:`DEFAULT_ACTIVATION` when not given."""
    return DEFAULT_ACTIVATION if args.activation is None else args.activation


def _channels(text):
    """``"16,32"`` -> ``[16, 32]`` (argparse type)."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 16,32, got {text!r}")
    return sizes


def build_model(args, n_features, n_outputs, task, gen):
    """The network the flags describe, its loss chosen by ``task``."""
    from ..models import MLP

    dtype = np.dtype(args.dtype)
    loss = train_loss(args, task)
    if args.model == "cnn":
        return build_cnn(args, n_features, n_outputs, loss, gen)
    if args.model == "logreg":
        return MLP([n_features, n_outputs], init=args.init or "zeros", rng=gen, dtype=dtype,
                   loss=loss)
    return MLP([n_features, *hidden_sizes(args), n_outputs], activation=activation(args),
               dropout=args.dropout, init=args.init or "xavier", rng=gen, dtype=dtype,
               loss=loss)


#: The losses ``train --loss`` takes for each task, its default first.
TASK_LOSSES = {"classification": ("cross_entropy", "multi_margin"),
               "regression": ("mse", "l1", "huber")}


def add_architecture_arguments(tr) -> None:
    """The flags only ``--model cnn`` reads, and ``--loss``."""
    tr.add_argument("--channels", type=_channels, default=None, metavar="SIZES",
                    help="--model cnn: output channels of its 3x3 convolutions, each followed "
                         "by the activation and a 2x2 max-pool (default 16,32)")
    tr.add_argument("--loss", default="auto",
                    choices=["auto", *(n for names in TASK_LOSSES.values() for n in names)],
                    help="auto (default): cross_entropy for classification, mse for "
                         "regression; multi_margin (the multiclass hinge, a classifier of "
                         "scores: predict writes score_<class> columns), l1 or huber (robust "
                         "to outliers: on the target centred on its median and scaled by its "
                         "interquartile range; huber's delta is 1 in those units)")


def check_task_loss(loss: str, task: str) -> None:
    """``UsageError`` for a ``--loss`` of the other task."""
    if loss != "auto" and loss not in TASK_LOSSES[task]:
        other = "regression" if task == "classification" else "classification"
        raise UsageError(f"--loss {loss} is a {other} loss, but the task is {task}: give "
                         f"one of {', '.join(TASK_LOSSES[task])} (or --task {other})")


def train_loss(args, task: str) -> str:
    """The loss ``--loss`` names for ``task`` (``auto``: the task's default)."""
    check_task_loss(args.loss, task)
    return TASK_LOSSES[task][0] if args.loss == "auto" else args.loss


def image_side(n_features: int) -> int:
    """The side of a square one-channel image of ``n_features`` pixels."""
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise UsageError(f"--model cnn reads rows of {n_features} values, not a square "
                         f"number, as no image: give an .npz (or IDX) file that holds the "
                         f"images as (N, H, W) or (N, C, H, W), whose shape it keeps; rows "
                         f"of a CSV or a flat array are taken as square one-channel images")
    return side


def image_shape(args, n_features: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``--model cnn``'s images: as the --data file stores them, (N, H,
    W), (N, C, H, W) or (N, H, W, 1) (rows of a flat array or a CSV would hide it), else
    a square one-channel image. Channels last with several channels is refused: its
    rows, flattened, are not (C, H, W) images."""
    from ..datafiles import stored_row_shape

    data = getattr(args, "data", None)
    stored = stored_row_shape(data) if data else None
    if stored is None or len(stored) < 2 or math.prod(stored) != n_features:
        side = image_side(n_features)
        return 1, side, side
    if len(stored) == 2 or (len(stored) == 3 and stored[2] == 1):
        return 1, stored[0], stored[1]
    if len(stored) == 3 and stored[2] in (3, 4) and stored[0] not in (1, 3, 4):
        raise UsageError(f"{data} holds images of shape {tuple(stored)}, channels last; "
                         f"--model cnn takes them channels first, (N, C, H, W): save "
                         f"X.transpose(0, 3, 1, 2)")
    if len(stored) != 3:
        raise UsageError(f"{data} holds X of shape (N, {', '.join(map(str, stored))}); "
                         f"--model cnn takes images (N, H, W) or (N, C, H, W)")
    return stored[0], stored[1], stored[2]


def channels(args) -> list:
    """--channels, DEFAULT_CHANNELS when not given (None: refused for other models)."""
    return DEFAULT_CHANNELS if args.channels is None else args.channels


def check_cnn_flags(args) -> None:
    """Usage errors of ``--model cnn``; it feeds the network raw pixels (its first layer
    normalises them), so standardisation is off."""
    if args.model != "cnn":
        if args.channels is not None:
            raise UsageError(f"--channels applies to --model cnn, not {args.model}")
        return
    if args.init is not None:
        raise UsageError("--init applies to --model mlp and logreg (a cnn starts as "
                         "PyTorch's layers do)")
    args.standardize = False


def build_cnn(args, n_features: int, n_outputs: int, loss: str, gen):
    """The network of ``--model cnn`` for rows of ``n_features`` pixels."""
    from ..conv import Conv2D, Flatten, MaxPool2D, Unflatten
    from ..layers import Affine, Dropout
    from ..models import ACTIVATIONS, Sequential
    from ..normalization import BatchNorm2d

    c_in, height, width = shape = image_shape(args, n_features)
    layers: list = [Unflatten(shape), BatchNorm2d(c_in)]
    for c_out in channels(args):
        if min(height, width) < 2:
            raise UsageError(f"--channels {','.join(map(str, channels(args)))}: the images "
                             f"({shape[1]}x{shape[2]}) are too small for "
                             f"{len(channels(args))} 2x2 poolings")
        layers += [Conv2D(c_in, c_out, 3, padding=1), ACTIVATIONS[activation(args)](),
                   MaxPool2D(2)]
        height, width, c_in = height // 2, width // 2, c_out
    layers.append(Flatten())
    width = c_in * height * width
    if args.dropout:
        layers.append(Dropout(args.dropout, rng=gen))
    for hidden in hidden_sizes(args):
        layers += [Affine(width, hidden), ACTIVATIONS[activation(args)]()]
        if args.dropout:
            layers.append(Dropout(args.dropout, rng=gen))
        width = hidden
    layers.append(Affine(width, n_outputs))
    return Sequential(layers, loss=loss, rng=gen, dtype=np.dtype(args.dtype))


def describe_cnn(args, n_features: int, n_outputs: int) -> str:
    """The ``model:`` line's architecture, e.g. ``cnn 1x8x8 conv[16, 32] dense[128] 10``."""
    c, height, width = image_shape(args, n_features)
    return (f"cnn {c}x{height}x{width} conv{channels(args)} dense{hidden_sizes(args)} "
            f"{n_outputs} {activation(args)}")
