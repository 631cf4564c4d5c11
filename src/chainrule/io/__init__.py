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
:class:`~chainrule.homework.LogisticRegression` and ``{"input_size", "hidden_size",
"output_size", "learning_rate"}`` for :class:`~chainrule.homework.FeedforwardNeuralNet`.

Only the model is saved, not its optimizer's running state (momentum, Adam moments):
training checkpoints (``chainrule.train.fit(..., checkpoint=path)``) hold that, in the
same file format.

:func:`load` checks, before building anything, that the arrays in the file are exactly
the ones the architecture needs, with the same shapes and dtypes; it then builds the
model with a zero initialiser (so loading draws nothing from NumPy's global random
generator) and puts the stored arrays in place.

scikit-learn estimators
-----------------------
A fitted :class:`~chainrule.estimator.MLPClassifier` or
:class:`~chainrule.estimator.MLPRegressor` is saved and loaded by the same two
functions; its ``config`` holds the hyperparameters, the fitted attributes that are not
arrays and the network's own ``{"class", "config"}``, and its arrays the network's
parameters prefixed ``model_.`` plus labels and feature names
(:mod:`chainrule.io.estimators` describes the layout and the checks on load). Such
classes are allow-listed by name in
:data:`chainrule.io.estimators.STATE_CLASSES`, each with a
:class:`~chainrule.io.estimators.StateCodec` (the class, imported lazily, and the two
functions to and from ``(config, arrays)``), so that ``import chainrule.io`` needs
neither scikit-learn nor :mod:`chainrule.estimator`. A class is never looked up from a
module path stored in a file.

The package
-----------
:mod:`~chainrule.io.networks` (networks to ``(config, arrays)`` and back),
:mod:`~chainrule.io.estimators` (the estimators' files) and
:mod:`~chainrule.io.onnx` (:func:`export_onnx`); this module holds :func:`save`,
:func:`load` and :func:`read_metadata`, which dispatch on the class.
"""

from __future__ import annotations

import json

import numpy as np

from .._fileformat import ModelFileError, read_archive, write_archive
from .._validation import check_rng
from .._version import VERSION
from ..models import Network, Sequential
from .estimators import STATE_CLASSES, _stored_network
from .networks import NETWORK_CLASSES, network_from_state, network_state
from .onnx import DEFAULT_ONNX_OPSET, MIN_ONNX_OPSET, export_onnx
from .pytorch import from_torch
from .sequential import sequential_from_state, sequential_state

__all__ = ["save", "load", "read_metadata", "table_encoder", "export_onnx", "from_torch",
           "ModelFileError", "DEFAULT_ONNX_OPSET", "MIN_ONNX_OPSET"]

_MODEL_OBJECT = "model"


def _supported() -> list:
    return sorted(NETWORK_CLASSES) + ["Sequential"] + sorted(STATE_CLASSES)


def _numpy_scalar(value):
    """NumPy's scalars (labels from ``np.unique``) and arrays as the Python values they
    hold; anything else is refused as json refuses it."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufU":
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata must be a dict with str keys, got "
                        f"{type(metadata).__name__}")
    try:
        # Round-trip through JSON so that what load sees equals what was checked here.
        return json.loads(json.dumps(metadata, allow_nan=False, default=_numpy_scalar))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable (str, int, float, bool, None, "
                        f"list, dict): {exc}") from None


def _model_state(model) -> tuple[str, dict, dict]:
    """``(class name, config, arrays)`` of a network or an allow-listed estimator."""
    if type(model) is Sequential:
        state, arrays = sequential_state(model)
        return state["class"], state["config"], arrays
    if isinstance(model, Network):
        if type(model.loss).__module__ == "chainrule.estimator.objectives":
            model = _stored_network(model)   # an estimator's model_, saved as an MLP
        state, arrays = network_state(model)
        return state["class"], state["config"], arrays
    name = type(model).__name__
    codec = STATE_CLASSES.get(name)
    if codec is None:
        raise TypeError(f"model must be one of {_supported()}, got {name}")
    if codec.get_class() is not type(model):
        raise TypeError(f"model is a {name} from {type(model).__module__}, not the "
                        f"registered {name} class; cannot save it under that name")
    result = codec.to_state(model)
    if (not isinstance(result, tuple) or len(result) != 2
            or not isinstance(result[0], dict) or not isinstance(result[1], dict)):
        raise TypeError(f"the {name} state must be (config: dict, arrays: dict), got "
                        f"{type(result).__name__}")
    return name, result[0], result[1]


def save(model, path, *, metadata=None) -> None:
    """Write ``model`` to one file that :func:`load` reads back.

    The file holds the architecture and hyper-parameters as JSON and the parameters as
    arrays (a ``.npz`` archive with a format version and a SHA-256 checksum); it is
    written atomically (temporary file, fsync, rename), so an interrupted save never
    leaves a half-written model. No pickle is involved.

    Parameters
    ----------
    model : MLP, LogisticRegression, FeedforwardNeuralNet, MLPClassifier or MLPRegressor
        The model to save (an estimator must be fitted). The optimizer's running state
        is not saved.
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
    name, config, arrays = _model_state(model)
    meta = {"object": _MODEL_OBJECT, "class": name, "config": config,
            "chainrule_version": VERSION, "metadata": metadata}
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


def table_encoder(path):
    """The :class:`~chainrule.tables.TableEncoder` of a model file ``chainrule train``
    wrote from a CSV table: ``table_encoder(path).transform(frame)`` gives the loaded
    network's inputs for a pandas DataFrame's rows (its columns of text one-hot, missing
    cells filled after ``--impute``), as ``chainrule predict`` encodes a file's rows.

    ``ValueError`` for a file of another model (no feature names) or bad metadata.
    """
    from ..tables import TableEncoder

    try:
        return TableEncoder.from_metadata(read_metadata(path))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ValueError(f"{str(path)!r}: {exc}") from None


def load(path, *, rng=None, custom_layers=None):
    """Rebuild a model saved by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    rng : None, int or numpy.random.Generator
        Source of dropout masks if a loaded :class:`~chainrule.models.MLP` with dropout
        is trained further (``None``: NumPy's global generator, as for ``MLP``).
        Loading itself draws no random numbers.
    custom_layers : dict of str to class, optional
        The classes of a :class:`~chainrule.models.Sequential`'s custom layers, by the
        class name the file records; each is rebuilt as ``cls(**layer.get_config())``.
        The file only names classes: no code comes from it.

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
    # The caller's arguments first: a mistake in them is not the file's.
    check_rng(rng)   # (checked only: the rebuilt model takes rng as given)
    if custom_layers is not None and not (isinstance(custom_layers, dict) and all(
            isinstance(k, str) and isinstance(v, type) for k, v in custom_layers.items())):
        raise TypeError(f"custom_layers must be a dict of class name to class, got "
                        f"{custom_layers!r}")
    arrays, meta = read_archive(path)

    def fail(problem):
        return ModelFileError(f"cannot load a model from {str(path)!r}: {problem}")

    if meta.get("object") != _MODEL_OBJECT:
        raise fail(f"it is a chainrule file but not a model file (its metadata has object="
                   f"{meta.get('object')!r}, expected {_MODEL_OBJECT!r}; a training "
                   f"checkpoint?)")
    name = meta.get("class")
    config = meta.get("config")
    if isinstance(name, str) and name in NETWORK_CLASSES:
        try:
            return network_from_state({"class": name, "config": config}, arrays, rng=rng)
        except (ValueError, TypeError) as exc:
            raise fail(str(exc)) from None
    if name == "Sequential":
        try:
            return sequential_from_state(config, arrays, custom_layers=custom_layers, rng=rng)
        except (ValueError, TypeError) as exc:
            raise fail(str(exc)) from None
    if isinstance(name, str) and name in STATE_CLASSES:
        codec = STATE_CLASSES[name]
        try:
            return codec.from_state(config, arrays)
        except (ValueError, TypeError, KeyError) as exc:
            raise fail(f"invalid {name} state: {exc}") from None
    raise fail(f"unknown model class {name!r} (this chainrule loads {_supported()})")
