"""Networks to ``(config, arrays)`` and back, for the classes a model file holds directly.

:class:`~chainrule.models.MLP`, :class:`~chainrule.homework.LogisticRegression` and
:class:`~chainrule.homework.FeedforwardNeuralNet` are allow-listed by exact class in
:data:`NETWORK_CLASSES`. :func:`network_state` describes one of them as a JSON config
and its parameter arrays; :func:`network_from_state` checks such a description (array
names, shapes and dtypes worked out from the config alone, before anything is
allocated) and rebuilds the network. :mod:`chainrule.io.estimators` uses the same two
functions for the network inside a fitted estimator.
"""

from __future__ import annotations

import json
import numbers

import numpy as np

from .._validation import check_choice, check_keys, key_differences
from ..homework import FeedforwardNeuralNet, LogisticRegression
from ..init import CUSTOM_INIT, INITIALIZERS
from ..losses import LOSSES
from ..models import MLP, SKLEARN_INIT, affine_param_names
from .sequential import loss_from_config

__all__ = ["NETWORK_CLASSES", "network_state", "network_from_state", "expected_arrays",
           "check_arrays_against"]

#: Network classes a model file holds directly, by exact class.
NETWORK_CLASSES = {cls.__name__: cls for cls in (MLP, LogisticRegression,
                                                 FeedforwardNeuralNet)}

_MLP_KEYS = ("layer_sizes", "activation", "dropout", "init", "dtype", "loss")
_HOMEWORK_KEYS = {
    "LogisticRegression": ("num_features", "num_classes", "learning_rate"),
    "FeedforwardNeuralNet": ("input_size", "hidden_size", "output_size", "learning_rate"),
}


# -- network -> (config, arrays) ----------------------------------------------------------
def network_state(model) -> tuple[dict, dict]:
    """Return ``(state, arrays)`` for one of the allow-listed network classes.

    Parameters
    ----------
    model : MLP, LogisticRegression or FeedforwardNeuralNet
        Exactly one of these classes (a subclass could hold anything).

    Returns
    -------
    state : dict
        ``{"class": name, "config": {...}}``, the config being what the class needs to
        rebuild the architecture (JSON-serialisable).
    arrays : dict of str to ndarray
        A copy-free view of ``model.params``.

    Raises
    ------
    TypeError
        For a class that cannot be rebuilt from a file, or a learning rate that is not
        a number.
    ValueError
        If the parameters or layers do not match the architecture.
    """
    cls = type(model)
    name = cls.__name__
    if NETWORK_CLASSES.get(name) is not cls:
        raise TypeError(f"cannot save a {name}: supported are {sorted(NETWORK_CLASSES)} (a "
                        f"general Network with custom layers has no architecture to store "
                        f"as JSON)")
    config = _network_config(model)
    arrays = dict(model.params)
    try:
        check_arrays_against(expected_arrays(name, config), arrays)
    except ValueError as exc:
        raise ValueError(f"cannot save this {name}: {exc}") from None
    _check_rebuilds_the_same(model, name, config)
    return {"class": name, "config": config}, arrays


def _network_config(model) -> dict:
    """What the model's class needs to rebuild its architecture, as JSON values."""
    name = type(model).__name__
    if name == "LogisticRegression":
        return {"num_features": model.n_features, "num_classes": model.n_outputs,
                "learning_rate": _learning_rate(model)}
    if name == "FeedforwardNeuralNet":
        return {"input_size": model.n_features,
                "hidden_size": int(model.params["W1"].shape[1]),
                "output_size": model.n_outputs, "learning_rate": _learning_rate(model)}
    config = {key: model.config[key] for key in _MLP_KEYS}
    config["layer_sizes"] = list(config["layer_sizes"])
    if not isinstance(config["activation"], str):
        config["activation"] = list(config["activation"])
    # An MLP built with a loss *object* records its class name; store the registry
    # name so that load can rebuild it.
    by_class = {loss_cls.__name__: key for key, loss_cls in LOSSES.items()}
    if config["loss"] in by_class and type(model.loss) is LOSSES[by_class[config["loss"]]]:
        config["loss"] = by_class[config["loss"]]
    loss_config: dict = getattr(model.loss, "get_config", dict)()
    if loss_config:  # only then: files of losses with their defaults are as before
        config["loss_config"] = loss_config
    return config


def _learning_rate(model) -> float:
    lr = model.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"cannot save {type(model).__name__}: its learning_rate must be a "
                        f"number to be stored as JSON, got {type(lr).__name__} {lr!r}")
    return float(lr)


def _check_rebuilds_the_same(model, name: str, config: dict) -> None:
    """Refuse a model whose layers or loss its config would not rebuild.

    Layers changed after construction (a LeakyReLU slope, a Dropout rate) would not
    survive a rebuild from the config: refusing beats writing a different model.
    """
    rebuilt = _build_network(name, config, rng=np.random.default_rng(0))
    got = [(repr(layer), names) for layer, names in model.layers]
    want = [(repr(layer), names) for layer, names in rebuilt.layers]
    if got != want or type(model.loss) is not type(rebuilt.loss) or \
            getattr(model.loss, "get_config", dict)() != rebuilt.loss.get_config():
        raise ValueError(f"cannot save this {name}: its layers {got} or loss "
                         f"{type(model.loss).__name__} differ from what its config "
                         f"{config} builds ({want}, {type(rebuilt.loss).__name__})")


# -- what a config needs ----------------------------------------------------------------
def expected_arrays(name: str, config) -> dict:
    """Names, shapes and dtypes of the parameters the architecture needs.

    Worked out from the config alone, so a file is checked before anything is
    allocated (a config claiming huge layers cannot make ``load`` allocate them).

    Returns
    -------
    dict
        Parameter name to ``(shape, dtype)``.

    Raises
    ------
    ValueError
        If ``config`` does not have exactly the keys of ``name``'s config, or holds a
        value that cannot describe a layer (a size, a dtype, an initialiser name).
    """
    if not isinstance(config, dict):
        raise ValueError(f"the config must be a JSON object, got {type(config).__name__}")
    keys = _MLP_KEYS + (("loss_config",) if "loss_config" in config else ())
    check_keys(f"the {name} config", config, keys if name == "MLP" else _HOMEWORK_KEYS[name])
    if name == "MLP":
        sizes, dtype = _mlp_sizes_and_dtype(config)
    elif name == "LogisticRegression":
        sizes = [_positive_int(config["num_features"], "num_features"),
                 _positive_int(config["num_classes"], "num_classes")]
        dtype = np.dtype(np.float64)
    else:
        sizes = [_positive_int(config[k], k) for k in
                 ("input_size", "hidden_size", "output_size")]
        dtype = np.dtype(np.float64)
    expected: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for i, (W, b) in enumerate(affine_param_names(len(sizes) - 1)):
        expected[W] = ((sizes[i], sizes[i + 1]), dtype)
        expected[b] = ((sizes[i + 1],), dtype)
    return expected


def _mlp_sizes_and_dtype(config: dict) -> tuple[list, np.dtype]:
    sizes = config["layer_sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"layer_sizes must be a list of at least two positive "
                         f"integers, got {sizes!r}")
    sizes = [_positive_int(s, "every layer size") for s in sizes]
    dtype_name = config["dtype"]
    if not isinstance(dtype_name, str):
        raise ValueError(f"dtype must be a string, got {dtype_name!r}")
    try:
        dtype = np.dtype(dtype_name)
    except TypeError:
        raise ValueError(f"dtype {dtype_name!r} is not a NumPy dtype") from None
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype_name!r}")
    # An allow-list, as for the other names: "custom" stands for any callable.
    check_choice(config["init"], "init", [*INITIALIZERS, SKLEARN_INIT, CUSTOM_INIT])
    return sizes, dtype


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_arrays_against(expected: dict, arrays: dict) -> None:
    """Raise ``ValueError`` unless ``arrays`` are exactly the ``expected`` ones.

    ``expected`` maps each name to ``(shape, dtype)``, as :func:`expected_arrays`
    returns it; the message names the first array that differs.
    """
    missing, extra = key_differences(arrays, expected)
    if missing or extra:
        raise ValueError(f"the arrays do not match the architecture: missing {missing}, "
                         f"unexpected {extra} (expected exactly {list(expected)})")
    for key, (shape, dtype) in expected.items():
        arr = arrays[key]
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"array {key!r} has shape {_shape_text(arr.shape)} but the "
                             f"architecture needs {_shape_text(shape)}")
        if arr.dtype != dtype:
            raise ValueError(f"array {key!r} has dtype {arr.dtype.str} ({arr.dtype}) but the "
                             f"model's dtype is {dtype.str} ({dtype})")


def _shape_text(shape) -> str:
    # A tuple of Python ints prints as NumPy writes shapes: (4, 6), (3,), ().
    return str(tuple(int(s) for s in shape))


# -- (config, arrays) -> network -----------------------------------------------------------
def _build_network(name, config, rng):
    if name == "MLP":
        model = MLP(config["layer_sizes"], activation=config["activation"],
                    dropout=config["dropout"], init="zeros", rng=rng, dtype=config["dtype"],
                    loss=config["loss"] if "loss_config" not in config
                    else loss_from_config(config["loss"], config["loss_config"]))
        model.config["init"] = config["init"]  # the initialiser the model was trained from
        return model
    if name == "LogisticRegression":
        return LogisticRegression(config["num_features"], config["num_classes"],
                                  config["learning_rate"])
    # FeedforwardNeuralNet always draws Xavier weights; a throwaway generator keeps
    # NumPy's global one untouched (the weights are overwritten right after).
    return FeedforwardNeuralNet(config["input_size"], config["hidden_size"],
                                config["output_size"], config["learning_rate"],
                                rng=np.random.default_rng(0))


def network_from_state(state, arrays: dict, *, rng=None):
    """Rebuild a network from what :func:`network_state` returned.

    Parameters
    ----------
    state : dict
        ``{"class": name, "config": {...}}`` with ``name`` in :data:`NETWORK_CLASSES`.
    arrays : dict of str to ndarray
        The parameters; copied into the new network (contiguous, writeable).
    rng : None, int or numpy.random.Generator
        The rebuilt MLP's source of dropout masks. Rebuilding draws nothing.

    Raises
    ------
    ValueError
        When the state or the arrays do not describe a valid model (a constructor's
        ``TypeError`` included); :func:`chainrule.io.load` reports it as
        :class:`~chainrule.io.ModelFileError`.
    """
    if not isinstance(state, dict):
        raise ValueError(f"the network state must be a JSON object, got "
                         f"{type(state).__name__}")
    name = state.get("class")
    if name not in NETWORK_CLASSES:
        raise ValueError(f"unknown network class {name!r}; expected one of "
                         f"{sorted(NETWORK_CLASSES)}")
    config = state.get("config")
    check_arrays_against(expected_arrays(name, config), arrays)
    try:
        model = _build_network(name, config, rng)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the {name} config {json.dumps(config)} does not build a model: "
                         f"{exc}") from None
    # The constructor's own checks passed; its parameters must line up with the
    # expectation computed above, or the two descriptions of the architecture disagree.
    check_arrays_against({k: (v.shape, v.dtype) for k, v in model.params.items()}, arrays)
    for key in model.params:
        model.params[key] = np.ascontiguousarray(arrays[key])
    return model
