"""Saving, loading and exporting models, without ever running code from a file.

:func:`save` writes one ``.npz`` file holding the model's architecture and
hyper-parameters as JSON and its parameters as arrays; :func:`load` rebuilds the model
from it. :func:`export_onnx` writes a standard ONNX graph for serving the model
elsewhere (``pip install chainrule[onnx]``).

File layout
-----------
Files are written by :func:`chainrule._fileformat.write_archive` (format version 1,
SHA-256 checksum, atomic write; see that module for the byte layout). The metadata
entry's ``meta`` object is::

    {"object": "model",              # a model file, not a training checkpoint
     "class": "MLP",                 # looked up in an allow-list, never imported by path
     "config": {...},                # what the class needs to rebuild the architecture
     "chainrule_version": "0.1.0",   # informational
     "metadata": {...}}              # the caller's own JSON, e.g. class names

and the arrays are the parameters by name (``W1``, ``b1``, ... or ``W``, ``b``). For
:class:`~chainrule.models.MLP` the config is ``model.config`` (layer_sizes, activation,
dropout, init, dtype, loss). For the homework classes it is their constructor
arguments: ``{"num_features", "num_classes", "learning_rate"}`` for
:class:`~chainrule.models.LogisticRegression` and ``{"input_size", "hidden_size",
"output_size", "learning_rate"}`` for :class:`~chainrule.models.FeedforwardNeuralNet`.

Only the model is saved, not its optimizer's running state (momentum, Adam moments):
training checkpoints (``chainrule.train.fit(..., checkpoint=path)``) hold that, in the
same file format.

:func:`load` checks, before building anything, that the arrays in the file are exactly
the ones the architecture needs, with the same shapes and dtypes; it then builds the
model with a zero initialiser (so loading draws nothing from NumPy's global random
generator) and puts the stored arrays in place.

The archive protocol (scikit-learn estimators)
----------------------------------------------
Objects other than the three network classes save and load through the same two
functions by implementing two methods:

``obj._archive_state() -> (config, arrays)``
    ``config`` is a JSON-serialisable dict (str keys; str, int, float, bool, None,
    list, dict values) with the hyper-parameters and any fitted attributes that are
    not arrays; ``arrays`` is a dict of str to numpy arrays (no object arrays; use
    string or numeric arrays for labels such as ``classes_``).
``cls._from_archive_state(config, arrays) -> obj`` (a classmethod)
    rebuilds the object. It must validate what it is given and raise ``ValueError``,
    ``TypeError`` or ``KeyError`` on anything inconsistent (missing or extra arrays,
    wrong shapes or dtypes, fitted attributes that disagree with the hyper-parameters
    or the stored network: the checksum only detects damage, anyone can edit a file
    and recompute it); :func:`load` turns those into
    :class:`~chainrule._fileformat.ModelFileError` naming the file.

The class is identified by ``type(obj).__name__``, which must be registered in
``_STATE_CLASSES`` (name -> zero-argument function returning the class). Today that is
``"MLPClassifier"`` and ``"MLPRegressor"``, which :func:`load` finds by importing
:mod:`chainrule.estimator` lazily, inside the function. That import goes *up* the
module table (``io`` sits below ``estimator``); it is the one deliberate exception,
made so that a single ``load`` reads every kind of model file. A class is never looked
up from a module path stored in a file.

An estimator holding a fitted network can use :func:`_network_state` and
:func:`_network_from_state` to store the network inside its own state (prefixing the
array names, e.g. ``"model_.W1"``) and get the same shape and dtype checks on load.
"""

from __future__ import annotations

import importlib
import json
import numbers

import numpy as np

from ._fileformat import ModelFileError, atomic_write, read_archive, write_archive
from ._validation import _shape_str
from .layers import Affine, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import LOSSES, CategoricalCrossEntropy, MeanSquaredError
from .models import MLP, FeedforwardNeuralNet, LogisticRegression, Network

__all__ = ["save", "load", "read_metadata", "export_onnx", "ModelFileError", "DEFAULT_ONNX_OPSET",
           "MIN_ONNX_OPSET"]

_MODEL_OBJECT = "model"

#: Network classes :func:`save` and :func:`load` handle themselves, by exact class.
_NETWORK_CLASSES = {cls.__name__: cls for cls in (MLP, LogisticRegression,
                                                  FeedforwardNeuralNet)}


def _estimator_class(name):
    def get():
        # The one upward import (see the module docstring); lazy so that
        # ``import chainrule.io`` needs neither scikit-learn nor the estimator module.
        return getattr(importlib.import_module("chainrule.estimator"), name)
    return get


#: Classes that use the archive protocol: name -> function returning the class.
_STATE_CLASSES = {"MLPClassifier": _estimator_class("MLPClassifier"),
                  "MLPRegressor": _estimator_class("MLPRegressor")}

_MLP_KEYS = ("layer_sizes", "activation", "dropout", "init", "dtype", "loss")
_HOMEWORK_KEYS = {
    "LogisticRegression": ("num_features", "num_classes", "learning_rate"),
    "FeedforwardNeuralNet": ("input_size", "hidden_size", "output_size", "learning_rate"),
}


# -- network <-> (config, arrays) ---------------------------------------------------
def _learning_rate(model) -> float:
    lr = model.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"cannot save {type(model).__name__}: its learning_rate must be a "
                        f"number to be stored as JSON, got {type(lr).__name__} {lr!r}")
    return float(lr)


def _network_state(model) -> tuple[dict, dict]:
    """Return ``(config, arrays)`` for one of the allow-listed network classes.

    ``config`` holds ``"class"`` (the class name) and ``"config"`` (what the class needs
    to rebuild the architecture); ``arrays`` is a copy-free view of ``model.params``.
    Raises ``TypeError`` for a class that cannot be rebuilt from a file and
    ``ValueError`` if the parameters do not match the architecture.
    """
    cls = type(model)
    name = cls.__name__
    if _NETWORK_CLASSES.get(name) is not cls:
        supported = sorted(_NETWORK_CLASSES) + sorted(_STATE_CLASSES)
        raise TypeError(f"cannot save a {name}: supported are {supported} (a general "
                        f"Network with custom layers has no architecture to store as JSON)")
    if name == "MLP":
        config = {key: model.config[key] for key in _MLP_KEYS}
        config["layer_sizes"] = list(config["layer_sizes"])
        if not isinstance(config["activation"], str):
            config["activation"] = list(config["activation"])
        # An MLP built with a loss *object* records its class name; store the
        # registry name so that load can rebuild it.
        by_class = {loss_cls.__name__: key for key, loss_cls in LOSSES.items()}
        if config["loss"] in by_class and type(model.loss) is LOSSES[by_class[config["loss"]]]:
            config["loss"] = by_class[config["loss"]]
    elif name == "LogisticRegression":
        config = {"num_features": model.n_features, "num_classes": model.n_outputs,
                  "learning_rate": _learning_rate(model)}
    else:
        config = {"input_size": model.n_features,
                  "hidden_size": int(model.params["W1"].shape[1]),
                  "output_size": model.n_outputs, "learning_rate": _learning_rate(model)}
    state = {"class": name, "config": config}
    arrays = dict(model.params)
    try:
        _check_arrays_against(_expected_arrays(name, config), arrays)
    except ValueError as exc:
        raise ValueError(f"cannot save this {name}: {exc}") from None
    # Layers changed after construction (a LeakyReLU slope, a Dropout rate) would not
    # survive a rebuild from the config; refuse rather than write a different model.
    rebuilt = _build_network(name, config, rng=np.random.default_rng(0))
    got = [(repr(layer), names) for layer, names in model.layers]
    want = [(repr(layer), names) for layer, names in rebuilt.layers]
    if got != want or type(model.loss) is not type(rebuilt.loss):
        raise ValueError(f"cannot save this {name}: its layers {got} or loss "
                         f"{type(model.loss).__name__} differ from what its config "
                         f"{config} builds ({want}, {type(rebuilt.loss).__name__})")
    return state, arrays


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _expected_arrays(name, config) -> dict:
    """Names, shapes and dtypes of the parameters the architecture needs.

    Worked out from the config alone, so a file is checked before anything is
    allocated (a config claiming huge layers cannot make ``load`` allocate them).
    """
    if not isinstance(config, dict):
        raise ValueError(f"the config must be a JSON object, got {type(config).__name__}")
    keys = _MLP_KEYS if name == "MLP" else _HOMEWORK_KEYS[name]
    missing = [k for k in keys if k not in config]
    extra = sorted(k for k in config if k not in keys)
    if missing or extra:
        raise ValueError(f"the {name} config has missing keys {missing} and unexpected "
                         f"keys {extra}; expected exactly {list(keys)}")
    if name == "MLP":
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
        if not isinstance(config["init"], str):
            raise ValueError(f"init must be a string, got {config['init']!r}")
    elif name == "LogisticRegression":
        sizes = [_positive_int(config["num_features"], "num_features"),
                 _positive_int(config["num_classes"], "num_classes")]
        dtype = np.dtype(np.float64)
    else:
        sizes = [_positive_int(config[k], k) for k in
                 ("input_size", "hidden_size", "output_size")]
        dtype = np.dtype(np.float64)
    n_layers = len(sizes) - 1
    expected = {}
    for i in range(n_layers):
        W, b = ("W", "b") if n_layers == 1 else (f"W{i + 1}", f"b{i + 1}")
        expected[W] = ((sizes[i], sizes[i + 1]), dtype)
        expected[b] = ((sizes[i + 1],), dtype)
    return expected


def _check_arrays_against(expected: dict, arrays: dict) -> None:
    missing = [k for k in expected if k not in arrays]
    extra = sorted(k for k in arrays if k not in expected)
    if missing or extra:
        raise ValueError(f"the arrays do not match the architecture: missing {missing}, "
                         f"unexpected {extra} (expected exactly {list(expected)})")
    for key, (shape, dtype) in expected.items():
        arr = arrays[key]
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"array {key!r} has shape {_shape_str(arr.shape)} but the "
                             f"architecture needs {_shape_str(shape)}")
        if arr.dtype != dtype:
            raise ValueError(f"array {key!r} has dtype {arr.dtype.str} ({arr.dtype}) but the "
                             f"model's dtype is {dtype.str} ({dtype})")


def _build_network(name, config, rng):
    if name == "MLP":
        model = MLP(config["layer_sizes"], activation=config["activation"],
                    dropout=config["dropout"], init="zeros", rng=rng, dtype=config["dtype"],
                    loss=config["loss"])
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


def _network_from_state(state: dict, arrays: dict, *, rng=None):
    """Rebuild a network from what :func:`_network_state` returned.

    Raises ``ValueError`` (or ``TypeError`` from the constructors) when the state or
    the arrays do not describe a valid model; :func:`load` reports these as
    :class:`ModelFileError`.
    """
    if not isinstance(state, dict):
        raise ValueError(f"the network state must be a JSON object, got "
                         f"{type(state).__name__}")
    name = state.get("class")
    if name not in _NETWORK_CLASSES:
        raise ValueError(f"unknown network class {name!r}; expected one of "
                         f"{sorted(_NETWORK_CLASSES)}")
    config = state.get("config")
    _check_arrays_against(_expected_arrays(name, config), arrays)
    try:
        model = _build_network(name, config, rng)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the {name} config {json.dumps(config)} does not build a model: "
                         f"{exc}") from None
    # The constructor's own checks passed; its parameters must line up with the
    # expectation computed above, or the two descriptions of the architecture disagree.
    _check_arrays_against({k: (v.shape, v.dtype) for k, v in model.params.items()}, arrays)
    for key in model.params:
        model.params[key] = np.ascontiguousarray(arrays[key])
    return model


# -- save / load ----------------------------------------------------------------------
def _version() -> str:
    import chainrule
    return str(getattr(chainrule, "__version__", "unknown"))


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata must be a dict with str keys, got "
                        f"{type(metadata).__name__}")
    try:
        # Round-trip through JSON so that what load sees equals what was checked here.
        return json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable (str, int, float, bool, None, "
                        f"list, dict): {exc}") from None


def save(model, path, *, metadata=None) -> None:
    """Write ``model`` to one file that :func:`load` reads back.

    The file holds the architecture and hyper-parameters as JSON and the parameters as
    arrays (a ``.npz`` archive with a format version and a SHA-256 checksum); it is
    written atomically (temporary file, fsync, rename), so an interrupted save never
    leaves a half-written model. No pickle is involved.

    Parameters
    ----------
    model : MLP, LogisticRegression, FeedforwardNeuralNet, MLPClassifier or MLPRegressor
        The model to save (an estimator through the archive protocol described in the
        module docstring). The optimizer's running state is not saved.
    path : str or os.PathLike
        Destination; ``.npz`` is the conventional extension (none is added). A
        symbolic link is written through: its target gets the new content and the
        link stays.
    metadata : dict, optional
        Extra JSON-serialisable information kept with the model and covered by the
        checksum, e.g. ``{"classes": ["cat", "dog"]}``; :func:`read_metadata` reads it.

    Raises
    ------
    TypeError
        If ``model`` is of a class that cannot be saved.
    ValueError
        If the model's parameters or layers do not match its own architecture.
    OSError
        If the file cannot be written; an existing file at ``path`` is then unchanged.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from chainrule import MLP
    >>> from chainrule.io import save, load
    >>> model = MLP([4, 8, 3], rng=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save(model, path)
    >>> X = np.ones((2, 4))
    >>> bool((load(path).predict(X) == model.predict(X)).all())
    True
    """
    metadata = _check_metadata(metadata)
    if isinstance(model, Network):
        state, arrays = _network_state(model)
        name, config = state["class"], state["config"]
    else:
        name = type(model).__name__
        get_cls = _STATE_CLASSES.get(name)
        if get_cls is None or not hasattr(model, "_archive_state"):
            supported = sorted(_NETWORK_CLASSES) + sorted(_STATE_CLASSES)
            raise TypeError(f"model must be one of {supported}, got {name}")
        if get_cls() is not type(model):
            raise TypeError(f"model is a {name} from {type(model).__module__}, not the "
                            f"registered {name} class; cannot save it under that name")
        result = model._archive_state()
        if (not isinstance(result, tuple) or len(result) != 2
                or not isinstance(result[0], dict) or not isinstance(result[1], dict)):
            raise TypeError(f"{name}._archive_state() must return (config: dict, arrays: "
                            f"dict), got {type(result).__name__}")
        config, arrays = result
    meta = {"object": _MODEL_OBJECT, "class": name, "config": config,
            "chainrule_version": _version(), "metadata": metadata}
    write_archive(path, arrays, meta)


def read_metadata(path) -> dict:
    """The ``metadata`` dict given to :func:`save` (``{}`` if none), after the same
    integrity checks as :func:`load` (format, version, checksum, model file)."""
    _, meta = read_archive(path)
    if meta.get("object") != _MODEL_OBJECT:
        raise ModelFileError(f"cannot read model metadata from {str(path)!r}: it is not a "
                             f"model file (object={meta.get('object')!r})")
    metadata = meta.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"cannot read model metadata from {str(path)!r}: metadata is a "
                             f"{type(metadata).__name__}, expected an object")
    return metadata


def load(path, *, rng=None):
    """Rebuild a model saved by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    rng : None, int or numpy.random.Generator
        Source of dropout masks if a loaded :class:`~chainrule.models.MLP` with dropout
        is trained further (``None``: NumPy's global generator, as for ``MLP``).
        Loading itself draws no random numbers.

    Returns
    -------
    model
        A new model of the saved class whose predictions equal the saved model's bit
        for bit.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) if the file is missing, truncated, fails its checksum, has
        an unknown format version, holds a pickled or object array, is not a model file
        (e.g. a training checkpoint), names a class outside the allow-list, or its
        arrays are missing, extra, or of the wrong shape or dtype for the architecture.
    """
    arrays, meta = read_archive(path)

    def fail(problem):
        return ModelFileError(f"cannot load a model from {str(path)!r}: {problem}")

    if meta.get("object") != _MODEL_OBJECT:
        raise fail(f"it is a chainrule file but not a model file (its metadata has object="
                   f"{meta.get('object')!r}, expected {_MODEL_OBJECT!r}; a training "
                   f"checkpoint?)")
    name = meta.get("class")
    config = meta.get("config")
    if isinstance(name, str) and name in _NETWORK_CLASSES:
        try:
            return _network_from_state({"class": name, "config": config}, arrays, rng=rng)
        except (ValueError, TypeError) as exc:
            raise fail(str(exc)) from None
    if isinstance(name, str) and name in _STATE_CLASSES:
        cls = _STATE_CLASSES[name]()
        try:
            return cls._from_archive_state(config, arrays)
        except (ValueError, TypeError, KeyError) as exc:
            raise fail(f"invalid {name} state: {exc}") from None
    known = sorted(_NETWORK_CLASSES) + sorted(_STATE_CLASSES)
    raise fail(f"unknown model class {name!r} (this chainrule loads {known})")


# -- ONNX -------------------------------------------------------------------------------
#: Opset used when ``export_onnx`` is called without one: recent enough for every op
#: used here in its current form (Softmax on one axis since 13), old enough for
#: widely deployed runtimes.
DEFAULT_ONNX_OPSET = 17
MIN_ONNX_OPSET = 13


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError("export_onnx needs the 'onnx' package; install it with "
                          "`pip install chainrule[onnx]` (or `pip install onnx`)") from exc
    return onnx, helper, numpy_helper


def _exportable(model):
    if isinstance(model, Network):
        return model, None
    network = getattr(model, "model_", None)
    if isinstance(network, Network):
        return network, getattr(model, "classes_", None)
    raise TypeError(f"model must be a chainrule Network (e.g. MLP) or a fitted estimator "
                    f"whose model_ attribute is one, got {type(model).__name__}"
                    + (" (not fitted yet?)" if hasattr(model, "fit") else ""))


def export_onnx(model, path, *, opset=None) -> None:
    """Write ``model`` as a standard ONNX graph for inference elsewhere.

    The graph uses only ``Gemm``, ``Relu``, ``LeakyRelu``, ``Tanh``, ``Sigmoid`` and
    ``Softmax``; Dropout layers are left out (they are the identity at inference). A
    leaky ReLU whose slope is not exactly a float32 number (0.01 is not) in a float64
    model becomes ``PRelu`` with the slope stored as a float64 tensor instead, because
    ``LeakyRelu`` keeps its slope in a float32 attribute and would change the results.

    Inputs and outputs:

    * input ``"X"``: shape ``(N, n_features)``, ``N`` a symbolic batch dimension;
    * a classifier (cross-entropy loss): outputs ``"probabilities"`` (softmax over
      axis 1) and ``"logits"``, both ``(N, n_classes)``;
    * a regressor (mse loss): output ``"outputs"``, ``(N, n_outputs)``.

    For a fitted estimator, column ``j`` of ``"probabilities"`` is the probability of
    ``classes_[j]`` whatever the labels are (strings, or integers other than 0..K-1);
    the graph does not map back to labels, and ``classes_`` is recorded as JSON in the
    model's ``metadata_props`` under ``"classes"``. The graph is the network alone: any
    scaling an estimator applies to inputs or targets outside ``model_`` is not in it.

    float32 and float64 models are exported in their own dtype (onnxruntime runs every
    op used here in both); other float dtypes are cast (float16 to float32, wider ones
    to float64), and ``X`` must then be fed in the exported dtype.

    Parameters
    ----------
    model : Network or fitted estimator
        A chainrule network whose layers are Affine, ReLU, LeakyReLU, Tanh, Sigmoid or
        Dropout and whose loss is cross-entropy or mse, or an object with such a
        network as its ``model_`` attribute.
    path : str or os.PathLike
        Destination (``.onnx``), written atomically; a symbolic link is written
        through to its target, as in :func:`save`.
    opset : int, optional
        ONNX opset of the default domain, at least 13; default
        :data:`DEFAULT_ONNX_OPSET`.

    Raises
    ------
    ImportError
        If the ``onnx`` package is missing (``pip install chainrule[onnx]``).
    TypeError
        If the model or one of its layers or its loss cannot be exported.
    ValueError
        If ``opset`` is out of range.
    """
    network, classes = _exportable(model)
    onnx, helper, numpy_helper = _import_onnx()
    if opset is None:
        opset = DEFAULT_ONNX_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"opset must be an int, got {type(opset).__name__} {opset!r}")
    if not MIN_ONNX_OPSET <= opset <= newest:
        raise ValueError(f"opset must be between {MIN_ONNX_OPSET} and {newest} (the newest "
                         f"this onnx package knows), got {opset}")
    opset = int(opset)

    if isinstance(network.loss, CategoricalCrossEntropy):
        classifier = True
    elif isinstance(network.loss, MeanSquaredError):
        classifier = False
    else:
        raise TypeError(f"cannot export a network with loss {type(network.loss).__name__}; "
                        f"only CategoricalCrossEntropy and MeanSquaredError are supported")

    dtype = network.dtype
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float32 if dtype.itemsize < 4 else np.float64)
    elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    final = "logits" if classifier else "outputs"
    nodes, initializers = [], []
    current, n_affine, n_act = "X", 0, 0
    kept = [i for i, (layer, _) in enumerate(network.layers) if not isinstance(layer, Dropout)]
    for i, (layer, names) in enumerate(network.layers):
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Affine):
            n_affine += 1
            out = final if i == kept[-1] else f"Z{n_affine}"
            W, b = names
            for pname in names:
                initializers.append(numpy_helper.from_array(
                    np.ascontiguousarray(network.params[pname], dtype=dtype), name=pname))
            nodes.append(helper.make_node("Gemm", [current, W, b], [out],
                                          name=f"affine{n_affine}"))
        else:
            n_act += 1
            out = final if i == kept[-1] else f"H{n_act}"
            if isinstance(layer, ReLU):
                node = helper.make_node("Relu", [current], [out])
            elif isinstance(layer, LeakyReLU):
                slope = float(layer.negative_slope)
                if dtype == np.float32 or float(np.float32(slope)) == slope:
                    node = helper.make_node("LeakyRelu", [current], [out], alpha=slope)
                else:
                    # LeakyRelu's alpha is a float32 attribute: 0.01 would become
                    # 0.00999999977648. PRelu takes the slope as a tensor in the model's
                    # dtype and gives the same numbers as chainrule, bit for bit.
                    slope_name = f"negative_slope{n_act}"
                    initializers.append(numpy_helper.from_array(
                        np.array([slope], dtype=dtype), name=slope_name))
                    node = helper.make_node("PRelu", [current, slope_name], [out])
            elif isinstance(layer, Tanh):
                node = helper.make_node("Tanh", [current], [out])
            elif isinstance(layer, Sigmoid):
                node = helper.make_node("Sigmoid", [current], [out])
            else:
                raise TypeError(f"cannot export layer {i} ({layer!r}): supported layers are "
                                f"Affine, ReLU, LeakyReLU, Tanh, Sigmoid and Dropout")
            node.name = f"activation{n_act}"
            nodes.append(node)
        current = out

    n_out = network.n_outputs
    outputs = []
    if classifier:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1,
                                      name="softmax"))
        outputs.append(helper.make_tensor_value_info("probabilities", elem_type, ["N", n_out]))
        outputs.append(helper.make_tensor_value_info("logits", elem_type, ["N", n_out]))
    else:
        outputs.append(helper.make_tensor_value_info("outputs", elem_type, ["N", n_out]))
    graph = helper.make_graph(
        nodes, "chainrule_" + type(network).__name__,
        [helper.make_tensor_value_info("X", elem_type, ["N", network.n_features])],
        outputs, initializer=initializers)
    opset_id = helper.make_opsetid("", opset)
    onnx_model = helper.make_model(graph, opset_imports=[opset_id], producer_name="chainrule",
                                   producer_version=_version(),
                                   doc_string=f"chainrule {type(model).__name__}")
    # The oldest IR version that can carry this opset, for older runtimes.
    onnx_model.ir_version = helper.find_min_ir_version_for([opset_id])
    props = {"chainrule_class": type(model).__name__}
    if classes is not None:
        try:
            props["classes"] = json.dumps(np.asarray(classes).tolist())
        except (TypeError, ValueError):
            props["classes"] = repr(list(classes))
    helper.set_model_props(onnx_model, props)
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    atomic_write(path, lambda fh: fh.write(data))
