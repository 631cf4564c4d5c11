"""A :class:`~chainrule.models.Sequential` to ``(config, arrays)`` and back.

The config lists the layers by class name with their constructor arguments, the loss
(a name of :data:`chainrule.losses.LOSSES`) and the dtype; the arrays are the
parameters and the buffers, by their network names. Built-in layers are rebuilt from
:data:`LAYER_CLASSES`. A custom layer is stored by its class name and the JSON dict
its ``get_config()`` returns, and rebuilt as ``cls(**config)`` from the class the
caller passes to :func:`chainrule.io.load` (``custom_layers={"BatchNorm1d":
BatchNorm1d}``): the file only names a class, it never supplies code.
"""

from __future__ import annotations

import json

import numpy as np

from .._validation import key_differences
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
from ..groupnorm import GroupNorm
from ..layers import (
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
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from ..losses import LOSSES
from ..models import Sequential
from ..normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LogSoftmax, Softmax
from ..stateful import stateful_names

__all__ = ["LAYER_CLASSES", "sequential_state", "sequential_from_state", "loss_from_config"]

#: The built-in layers of the first Sequential files, whose layer entries do not say
#: whether they are built in: any other name in such a file is a custom layer.
_FIRST_LAYER_CLASSES = {cls.__name__: cls for cls in (Affine, Dropout, Identity, LeakyReLU,
                                                      ReLU, Sigmoid, Tanh)}
#: Layers a model file rebuilds without being told their class.
LAYER_CLASSES = {**_FIRST_LAYER_CLASSES,
                 **{cls.__name__: cls for cls in (BatchNorm1d, BatchNorm2d, LayerNorm, Softmax,
                                                  Conv2D, MaxPool2D, AvgPool2D, Flatten,
                                                  Unflatten, GELU, SiLU, AdaptiveAvgPool2D, ELU,
                                                  Softplus, LogSoftmax, PReLU, Conv1D,
                                                  MaxPool1D, AvgPool1D, AdaptiveAvgPool1D,
                                                  AdaptiveMaxPool2D, AdaptiveMaxPool1D,
                                                  GroupNorm, Dropout1d, Dropout2d, Hardtanh,
                                                  ReLU6, Hardsigmoid, Hardswish,
                                                  ConvTranspose2D)}}


def _is_builtin(layer) -> bool:
    """Exactly a built-in class: a custom layer may share a built-in's name."""
    return LAYER_CLASSES.get(type(layer).__name__) is type(layer)


def _layer_config(layer, params) -> dict:
    """The constructor arguments that rebuild ``layer`` (its parameters are arrays)."""
    if isinstance(layer, Affine):
        sizes = {"n_in": int(params[0].shape[0]), "n_out": int(params[0].shape[1])}
        return sizes if layer.has_bias else {**sizes, "bias": False}
    if isinstance(layer, LeakyReLU):
        return {"negative_slope": float(layer.negative_slope)}
    if isinstance(layer, Dropout):
        return {"p": float(layer.p)}
    get_config = getattr(layer, "get_config", None)
    if _is_builtin(layer) and not callable(get_config):
        return {}
    if not callable(get_config):
        raise TypeError(f"cannot save a {type(layer).__name__} layer: give it a get_config() "
                        f"method returning its constructor arguments as a JSON dict")
    config = get_config()
    try:
        config = json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{type(layer).__name__}.get_config() must return a JSON dict, got "
                        f"{config!r} ({exc})") from None
    try:  # what load will do: refused now, while the layer's author is at hand
        type(layer)(**config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{type(layer).__name__}.get_config() returned {config}, which "
                        f"{type(layer).__name__}(**config) refuses ({exc}); load rebuilds "
                        f"the layer that way") from None
    return config


def sequential_state(model) -> tuple[dict, dict]:
    """``({"class": "Sequential", "config": ...}, arrays)`` of a Sequential."""
    loss_name = {cls: key for key, cls in LOSSES.items()}.get(type(model.loss))
    if loss_name is None:
        raise TypeError(f"cannot save a Sequential with a {type(model.loss).__name__} loss: "
                        f"model files store the built-in losses {sorted(LOSSES)} by name; "
                        f"a loss of your own is not stored (save the model with one of "
                        f"those and set model.loss after loading)")
    layers = [{"class": type(layer).__name__,
               "config": _layer_config(layer, [model.params[n] for n in names]),
               "builtin": _is_builtin(layer)}
              for layer, names in model.layers]
    config = {"layers": layers, "loss": loss_name, "dtype": model.dtype.name}
    if model.loss.get_config():  # only then: files of default losses are as before
        config["loss_config"] = model.loss.get_config()
    return {"class": "Sequential", "config": config}, {**model.params, **model.buffers}


def loss_from_config(name, loss_config=None):
    """The loss a model file names, built with its stored arguments (``ValueError`` for
    an unknown name or arguments it refuses)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    if loss_config is None:
        return LOSSES[name]()
    if not isinstance(loss_config, dict):
        raise ValueError(f"loss_config must be an object, got {loss_config!r}")
    try:
        return LOSSES[name](**loss_config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"loss {name!r} with {loss_config}: {exc}") from None


def _build_layer(i, spec, custom_layers, rng, largest: int = 0):
    """Layer ``i`` of a file's config; ``largest``: the most entries an array of the file
    holds, which no layer may declare more features than (a batch normalisation makes
    its running statistics of its declared size before they are compared)."""
    if not isinstance(spec, dict) or not {"class", "config"} <= set(spec) <= \
            {"class", "config", "builtin"} or not isinstance(spec["config"], dict) or \
            not isinstance(spec.get("builtin", False), bool):
        raise ValueError(f"layers[{i}] must be an object with 'class', 'config' and "
                         f"'builtin' (true or false), got {spec!r}")
    name = spec["class"]
    if spec.get("builtin") is True:
        cls = LAYER_CLASSES.get(name)
    elif spec.get("builtin") is False:
        cls = custom_layers.get(name)
    else:  # a file from before the entries said it
        cls = custom_layers.get(name) or _FIRST_LAYER_CLASSES.get(name)
    if cls is None and spec.get("builtin") is False and name in LAYER_CLASSES:
        raise ValueError(f"layers[{i}] is a layer of your own class named {name!r} (saved "
                         f"as not built in), not chainrule's {name}; pass load(..., "
                         f"custom_layers={{{name!r}: TheClass}})")
    if cls is None:
        raise ValueError(f"layers[{i}] is a {name!r}, which is neither built in "
                         f"({sorted(LAYER_CLASSES)}) nor in custom_layers "
                         f"({sorted(custom_layers)}); pass load(..., custom_layers={{"
                         f"{name!r}: TheClass}})")
    kwargs = dict(spec["config"], **({"rng": rng} if isinstance(cls, type)
                                     and issubclass(cls, Dropout) else {}))
    declared = kwargs.get("num_features")
    if isinstance(declared, int) and declared > largest:
        raise ValueError(f"layers[{i}] {name} declares num_features={declared}, more "
                         f"entries than any array of the file holds ({largest})")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, MemoryError) as exc:
        raise ValueError(f"layers[{i}] {name}(**{spec['config']}) failed: "
                         f"{type(exc).__name__ + ': ' if isinstance(exc, MemoryError) else ''}"
                         f"{exc}") from None


def sequential_from_state(config, arrays: dict, *, custom_layers=None, rng=None):
    """Rebuild a Sequential from :func:`sequential_state`'s output; ``ValueError`` for
    a config or arrays that do not describe one."""
    custom_layers = dict(custom_layers or {})
    if not isinstance(config, dict) or set(config) - {"loss_config"} != {"layers", "loss",
                                                                         "dtype"} or \
            not isinstance(config["layers"], list):
        raise ValueError(f"the Sequential config must be an object with 'layers' (a list), "
                         f"'loss' and 'dtype' (and 'loss_config'), got "
                         f"{json.dumps(config)[:200]}")
    loss = loss_from_config(config["loss"], config.get("loss_config"))
    try:
        dtype = np.dtype(config["dtype"])
    except TypeError:
        raise ValueError(f"dtype {config['dtype']!r} is not a NumPy dtype") from None
    largest = max((np.size(a) for a in arrays.values()), default=0)
    layers = [_build_layer(i, s, custom_layers, rng, largest)
              for i, s in enumerate(config["layers"])]
    names = stateful_names(layers)
    expected = [n for p, b in names for n in p + b]
    missing, extra = key_differences(arrays, expected)
    if missing or extra:
        raise ValueError(f"the arrays do not match the layers: missing {missing}, unexpected "
                         f"{extra}")
    for layer, (_, b_names) in zip(layers, names, strict=True):
        for attr, name in zip(getattr(layer, "buffer_names", ()), b_names, strict=True):
            held, stored = np.asarray(getattr(layer, attr)), arrays[name]
            if held.shape != stored.shape:
                raise ValueError(f"buffer {name!r} has shape {stored.shape}, its layer "
                                 f"{layer!r} holds {held.shape}")
            # statistics in the model's dtype, counts as integers (as save writes them)
            want = dtype if held.dtype.kind == "f" else None
            if (stored.dtype != want) if want is not None else stored.dtype.kind not in "iu":
                raise ValueError(f"buffer {name!r} has dtype {stored.dtype}, expected "
                                 f"{want if want is not None else 'an integer dtype'}")
            setattr(layer, attr, np.array(stored, dtype=stored.dtype))
    params = {n: np.ascontiguousarray(arrays[n]) for p, _ in names for n in p}
    try:
        model = Sequential(layers, loss=loss, dtype=dtype, params=params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the Sequential config does not build a model: {exc}") from None
    for layer, names_ in model.layers:
        if isinstance(layer, Affine):
            shapes = [model.params[n].shape for n in names_]
            if shapes != [layer.sizes, layer.sizes[1:]][:len(names_)]:
                raise ValueError(f"{layer!r} has arrays {list(names_)} of shapes "
                                 f"{', '.join(map(str, shapes))}")
        elif hasattr(layer, "param_shapes"):
            shapes = [model.params[n].shape for n in names_]
            if shapes != [tuple(s) for s in layer.param_shapes()]:
                raise ValueError(f"{layer!r} has arrays {list(names_)} of shapes {shapes}, "
                                 f"expected {layer.param_shapes()}")
    return model
