"""Saving and loading the scikit-learn estimators (:class:`MLPClassifier`, :class:`MLPRegressor`).

Everything about an estimator's model file lives here; :mod:`chainrule.estimator` knows
nothing of files. :data:`STATE_CLASSES` is the allow-list :func:`chainrule.io.save` and
:func:`chainrule.io.load` consult for objects other than the network classes: a class
name mapped to a :class:`StateCodec`. The estimator classes are imported lazily, inside
:func:`StateCodec.get_class`, so that ``import chainrule.io`` imports neither
scikit-learn nor :mod:`chainrule.estimator`; a class is never looked up from a module
path stored in a file.

File content
------------
The ``config`` of an estimator file is::

    {"estimator_format": 2,       # 1: chainrule 0.1's first estimators (refused)
     "params": {...},             # get_params(deep=False), as JSON
     "n_features_in_": 4, "n_iter_": 10, "t_": 1500, "loss_": 0.31, "loss_curve_": [...],
     "best_loss_": 0.3, "validation_scores_": null, "best_validation_score_": null,
     "no_improvement_count": 0,   # loss_curve_ to here: null where only L-BFGS fitted
     "out_activation_": "softmax", "n_outputs_": 3,
     "history_": {...},           # History.as_dict() of the last stochastic call, or null
     "model_": {"class": "MLP", "config": {...}}}   # the network, as network_state gives it

plus ``"fitted_hidden_layer_sizes": [4]`` when the network's hidden widths are not
``hidden_layer_sizes`` (changed after fit, perhaps then a warm start continued the
network, as scikit-learn does: :meth:`fitted_hidden_sizes` of the estimator), and for a
classifier fitted on a sparse multilabel ``y`` ``"sparse_y": true`` (its ``predict`` answers in
CSR, as scikit-learn's).

Its arrays are the network's parameters prefixed ``model_.`` (``model_.W1``, ...),
``feature_names_in_`` (when fitted on named columns) and, for a classifier,
``classes_`` plus, when ``class_weight`` is a dict, ``class_weight_labels`` and
``class_weight_values`` (JSON keys must be strings; labels need not be), with
``params["class_weight"]`` set to ``{"__dict__": True}``.

Loading takes nothing on trust (a file can be edited and its checksum recomputed):
every fitted attribute is checked against the hyperparameters and the stored network,
and the network the hyperparameters imply (:meth:`network_config` of the estimator)
must equal the stored one.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_keys
from ..history import History
from .networks import network_from_state, network_state

__all__ = ["StateCodec", "STATE_CLASSES", "estimator_state", "estimator_from_state"]


class StateCodec(NamedTuple):
    """How objects of one allow-listed class become ``(config, arrays)`` and back.

    Attributes
    ----------
    get_class : callable
        ``() -> type``: the class, imported when first needed.
    to_state : callable
        ``obj -> (config, arrays)``: ``config`` a JSON-serialisable dict, ``arrays`` a
        dict of str to numpy arrays (no object arrays).
    from_state : callable
        ``(config, arrays) -> obj``. It must check what it is given and raise
        ``ValueError``, ``TypeError`` or ``KeyError`` on anything inconsistent;
        :func:`chainrule.io.load` reports those as ``ModelFileError`` naming the file.
    """

    get_class: Callable[[], type]
    to_state: Callable[[Any], tuple[dict, dict]]
    from_state: Callable[[dict, dict], Any]


def _estimator_class(name: str) -> Callable[[], type]:
    def get_class():
        # Lazy: the estimator module imports scikit-learn, which `import chainrule.io`
        # must not (io sits above estimator and may import it, but only here).
        return getattr(importlib.import_module("chainrule.estimator"), name)
    return get_class


def _codec(name: str) -> StateCodec:
    return StateCodec(_estimator_class(name), lambda est: estimator_state(est, name),
                      lambda config, arrays: estimator_from_state(name, config, arrays))


# -- checks of stored values -----------------------------------------------------------
_MISSING = object()
#: What classes_ may hold: every array of labels scikit-learn's MLPClassifier fits and a
#: model file stores without pickle (str, numbers, booleans, datetime64, timedelta64).
_LABEL_KINDS = "USiufbMm"
_CLASS_WEIGHT_ARRAYS = ("class_weight_labels", "class_weight_values")
_NETWORK_PREFIX = "model_."


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _same_floats(a, b):
    """Equal lists of numbers, a NaN equal to a NaN (a diverged epoch records NaN)."""
    return len(a) == len(b) and np.array_equal(np.asarray(a, dtype=np.float64),
                                               np.asarray(b, dtype=np.float64), equal_nan=True)


def _archive_int(config, key, *, minimum):
    value = config[key]
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# -- per-class differences ---------------------------------------------------------------
def _classifier_extra_state(est, config, arrays):
    cw = est.class_weight
    if isinstance(cw, dict):
        # JSON keys must be strings; labels and weights travel as arrays instead.
        config["params"]["class_weight"] = {"__dict__": True}
        arrays["class_weight_labels"] = np.asarray(list(cw.keys()))
        arrays["class_weight_values"] = np.asarray(list(cw.values()), dtype=np.float64)
    classes = est.classes_
    arrays["classes_"] = np.asarray(classes.tolist()) if classes.dtype == object else classes
    if arrays["classes_"].dtype == object:
        raise TypeError(f"cannot save classes_ of mixed types: {classes.tolist()!r}")
    if getattr(est, "_sparse_y", False):
        config[_SPARSE_Y] = True


def _take_class_weight(config, arrays):
    """Turn the stored class_weight arrays back into the dict in ``params``.

    Returns the config and the arrays without the class_weight ones, checked.
    """
    arrays = dict(arrays)
    stored = {k: arrays.pop(k) for k in _CLASS_WEIGHT_ARRAYS if k in arrays}
    class_weight = config["params"].get("class_weight")
    if not isinstance(class_weight, dict):
        if stored:
            raise ValueError(f"the file holds class_weight arrays {sorted(stored)} but "
                             f"class_weight is {class_weight!r}, not a dict")
        return config, arrays
    if class_weight != {"__dict__": True} or len(stored) != 2:
        raise ValueError(f"a class_weight dict is stored as the arrays "
                         f"{list(_CLASS_WEIGHT_ARRAYS)} with params class_weight "
                         f"{{'__dict__': True}}; got class_weight {class_weight!r} and "
                         f"arrays {sorted(stored)}")
    labels, values = (stored[k] for k in _CLASS_WEIGHT_ARRAYS)
    if (labels.ndim != 1 or values.shape != labels.shape
            or labels.dtype.kind not in _LABEL_KINDS or values.dtype.kind != "f"
            or not (np.isfinite(values) & (values >= 0)).all()
            or np.unique(labels).shape != labels.shape):
        raise ValueError(f"class_weight needs distinct labels and as many finite "
                         f"non-negative float weights, got labels {labels!r} and "
                         f"weights {values!r}")
    weights = dict(zip(labels.tolist(), values.tolist(), strict=True))
    return dict(config, params=dict(config["params"], class_weight=weights)), arrays


def _restore_classes(est, config, arrays):
    """Check and set ``classes_`` (and that a class_weight dict names only those)."""
    if "classes_" not in arrays:
        raise ValueError("the file has no classes_ array")
    classes = arrays["classes_"]
    if classes.ndim != 1 or classes.shape[0] < 1 or classes.dtype.kind not in _LABEL_KINDS:
        raise ValueError(f"classes_ must be a 1-D array of labels (strings, integers, "
                         f"floats, booleans, datetime64 or timedelta64), got dtype "
                         f"{classes.dtype} and shape {classes.shape}")
    if not np.array_equal(np.unique(classes), classes):
        # predict maps column k to classes_[k] and fitting uses searchsorted: both need
        # the sorted, distinct labels np.unique gives.
        raise ValueError(f"classes_ must be sorted and distinct, got {classes.tolist()!r}")
    if isinstance(est.class_weight, dict):
        unknown = [k for k in est.class_weight if k not in set(classes.tolist())]
        if unknown:
            raise ValueError(f"class_weight has labels {unknown!r} that are not in "
                             f"classes_ {classes.tolist()!r}")
    # Strings come back as the fixed-width unicode array scikit-learn's classes_ are too.
    est.classes_ = classes
    n_outputs, k = _archive_int(config, "n_outputs_", minimum=1), classes.shape[0]
    activation = config["out_activation_"]
    if not ((activation == "softmax" and n_outputs == k > 2)
            or (activation == "logistic" and (n_outputs == k or (n_outputs == 1 and k <= 2)))):
        raise ValueError(f"n_outputs_={n_outputs} and out_activation_={activation!r} do not "
                         f"fit the {k} classes_ (softmax: one output per class, more than 2; "
                         f"logistic: 1 output for a binary problem, one per label for a "
                         f"multilabel one)")
    if _SPARSE_Y in config:
        if config[_SPARSE_Y] is not True or activation != "logistic" or n_outputs != k:
            raise ValueError(f"{_SPARSE_Y} is written only as true, for a multilabel "
                             f"classifier fitted on a sparse y; got {config[_SPARSE_Y]!r} "
                             f"with out_activation_={activation!r}, n_outputs_={n_outputs} "
                             f"and {k} classes_")
        est._sparse_y = True
    return n_outputs


def _regressor_extra_state(est, config, arrays):
    """Nothing beyond the shared entries."""


def _restore_outputs(est, config, arrays):
    """The network's output width: ``n_outputs_``; the output activation must be the
    one ``loss`` gives."""
    want = "exp" if est.loss == "poisson" else "identity"
    if config["out_activation_"] != want:
        raise ValueError(f"out_activation_ must be {want!r} for loss={est.loss!r}, got "
                         f"{config['out_activation_']!r}")
    return _archive_int(config, "n_outputs_", minimum=1)


def _unchanged(config, arrays):
    return config, arrays


class _Kind(NamedTuple):
    outputs_name: str  # what sets the network's output width, for messages
    extra_keys: tuple  # config entries beyond _CONFIG_KEYS, optional ones included
    extra_arrays: tuple  # arrays beyond the network's and feature_names_in_
    save_extra: Callable  # (est, config, arrays): add the class's own entries
    decode: Callable  # (config, arrays) -> (config, arrays) before the estimator is built
    restore_extra: Callable  # (est, config, arrays) -> the network's output width


_KINDS = {
    "MLPClassifier": _Kind("len(classes_)", ("sparse_y",), ("classes_",), _classifier_extra_state,
                           _take_class_weight, _restore_classes),
    "MLPRegressor": _Kind("n_outputs_", (), (), _regressor_extra_state,
                          _unchanged, _restore_outputs),
}

#: Classes saved through a :class:`StateCodec`: class name -> codec.
STATE_CLASSES = {name: _codec(name) for name in _KINDS}

_CONFIG_KEYS = ("estimator_format", "params", "n_features_in_", "n_iter_", "t_", "loss_",
                "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
                "no_improvement_count", "out_activation_", "n_outputs_", "history_", "model_")
#: Written only when the network's hidden widths are not hidden_layer_sizes.
_FITTED_HIDDEN = "fitted_hidden_layer_sizes"
#: A classifier's, written (as true) only when it was fitted on a sparse multilabel y.
_SPARSE_Y = "sparse_y"
#: The layout of an estimator's config; 1 was chainrule 0.1's first estimators.
ESTIMATOR_FORMAT = 2


def _optional_float(value):
    return None if value is None else float(value)


# -- estimator -> (config, arrays) ------------------------------------------------------
def estimator_state(est, name: str) -> tuple[dict, dict]:
    """``(config, arrays)`` of a fitted estimator of the class called ``name``.

    JSON-able hyperparameters and fitted scalars; the network's parameters
    (``model_.W1``, ...) plus labels and feature names as arrays.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``est`` is not fitted.
    TypeError
        If a value (``classes_`` of mixed types) has no array form.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "model_")
    # The network est predicts with (activation, dropout, dtype as its hyperparameters
    # say now, as scikit-learn reads them at every forward pass).
    est.sync_network()
    kind = _KINDS[name]
    # An L-BFGS fit keeps no loss_curve_, best_loss_, ... (as scikit-learn's): null.
    stochastic = hasattr(est, "loss_curve_")
    validation = getattr(est, "validation_scores_", None)
    config = {"estimator_format": ESTIMATOR_FORMAT, "params": _json_params(est),
              "n_features_in_": int(est.n_features_in_), "n_iter_": int(est.n_iter_),
              "t_": int(est.t_), "loss_": float(est.loss_),
              "loss_curve_": [float(v) for v in est.loss_curve_] if stochastic else None,
              "best_loss_": _optional_float(getattr(est, "best_loss_", None)),
              "validation_scores_": None if validation is None else [float(v) for v in
                                                                     validation],
              "best_validation_score_": _optional_float(getattr(est, "best_validation_score_",
                                                                None)),
              "no_improvement_count": int(est._no_improvement_count) if stochastic else None,
              "out_activation_": est.out_activation_, "n_outputs_": int(est.n_outputs_),
              "history_": None if est.history_ is None else est.history_.as_dict()}
    if est.fitted_hidden_sizes() is not None:
        config[_FITTED_HIDDEN] = list(est.fitted_hidden_sizes())
    net_config, net_arrays = network_state(_stored_network(est.model_))
    config["model_"] = net_config
    arrays = {_NETWORK_PREFIX + k: v for k, v in net_arrays.items()}
    arrays.update(_feature_names_array(est))
    kind.save_extra(est, config, arrays)
    _check_loads(name, config, arrays)
    return config, arrays


def _check_loads(name: str, config: dict, arrays: dict) -> None:
    """Refuse to write a file that :func:`estimator_from_state` would refuse to read.

    A fitted estimator whose hyperparameters were changed since (``set_params`` to
    prepare the next experiment: other ``hidden_layer_sizes``, another ``loss``, a
    ``class_weight`` naming labels it never saw) still predicts with the network it
    fitted, as scikit-learn's does; but its file would describe a network those
    hyperparameters do not make, which loading refuses. Better said now than when the
    file is read back."""
    try:
        estimator_from_state(name, json.loads(json.dumps(config)), dict(arrays))
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"this {name} cannot be saved as it is, its file would not load: "
                         f"{exc}. Were its hyperparameters changed (set_params) after it "
                         f"was fitted? Set them back, or fit it again, before saving") from None


def _stored_network(model):
    """The network as its config builds it: an estimator's network trains on a
    :class:`~chainrule.estimator.objectives.SklearnValue` loss, stored as the loss it
    derives from (loading gives it back, through ``reset_training_state``)."""
    from ..estimator.objectives import SklearnValue  # scikit-learn: loaded by now

    if isinstance(model.loss, SklearnValue):
        model = copy.copy(model)
        model.loss = model.loss.stored_as()
    return model


def _json_params(est) -> dict:
    params: dict[str, Any] = {}
    for key, value in est.get_params(deep=False).items():
        if key == "class_weight" and isinstance(value, dict):
            params[key] = value  # replaced by the classifier's arrays (JSON keys are strings)
        elif key == "random_state" and not (value is None or isinstance(value, Integral)):
            params[key] = None  # a RandomState object has no JSON form
        elif key == "dtype" and value is not None:
            params[key] = np.dtype(value).name  # np.float32 as "float32"
        elif isinstance(value, (tuple, list, np.ndarray)):
            params[key] = [int(v) for v in value]
        elif isinstance(value, np.generic):
            params[key] = value.item()
        else:
            params[key] = value
    return params


def _feature_names_array(est) -> dict:
    if not hasattr(est, "feature_names_in_"):
        return {}
    return {"feature_names_in_": np.asarray(est.feature_names_in_.tolist(), dtype=str)}


# -- (config, arrays) -> estimator ------------------------------------------------------
def estimator_from_state(name: str, config, arrays: dict):
    """Rebuild a fitted estimator of the class called ``name`` from
    :func:`estimator_state`'s output.

    Raises
    ------
    ValueError, TypeError or KeyError
        On anything inconsistent: the config or params keys, an array too many, a
        fitted attribute that disagrees with the hyperparameters or the network, a
        stored network other than the one the hyperparameters imply.
    """
    cls = STATE_CLASSES[name].get_class()
    kind = _KINDS[name]
    if not isinstance(config, dict):
        raise ValueError(f"the estimator config must be a JSON object, got "
                         f"{type(config).__name__}")
    if config.get("estimator_format") != ESTIMATOR_FORMAT:
        raise ValueError(f"this {name} file has estimator format "
                         f"{config.get('estimator_format', 1)!r}, written before chainrule's "
                         f"estimators took scikit-learn's parameters (this chainrule reads "
                         f"format {ESTIMATOR_FORMAT}); fit the estimator again and save it")
    optional = (_FITTED_HIDDEN, _SPARSE_Y)  # written only where they apply
    check_keys("the estimator config", config, tuple(
        k for k in _CONFIG_KEYS + kind.extra_keys + (_FITTED_HIDDEN,)
        if k not in optional or k in config))
    if not isinstance(config["params"], dict):
        raise ValueError(f"params must be a JSON object, got "
                         f"{type(config['params']).__name__}")
    config, arrays = kind.decode(config, arrays)
    est = _estimator_from_params(cls, config["params"])
    _check_array_names(cls, kind, arrays)
    n_features = _archive_int(config, "n_features_in_", minimum=1)
    # classes_ (classifier) or n_outputs_ (regressor): the network's output width.
    n_outputs = kind.restore_extra(est, config, arrays)
    est.model_ = _restored_network(est, kind, config, arrays, n_features, n_outputs)
    est.n_features_in_ = n_features
    _restore_feature_names(est, arrays, n_features)
    _restore_training_record(est, config)
    # partial_fit after loading starts a fresh optimizer (a model file holds no
    # optimizer state; training checkpoints do) and a generator seeded as fit would.
    est.reset_training_state()
    return est


def _estimator_from_params(cls, params: dict):
    check_keys("params", params, tuple(cls().get_params(deep=False)))
    params = dict(params)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return cls(**params)


def _check_array_names(cls, kind: _Kind, arrays: dict) -> None:
    known = {"feature_names_in_", *kind.extra_arrays}
    extra = sorted(k for k in arrays if not k.startswith(_NETWORK_PREFIX) and k not in known)
    if extra:
        raise ValueError(f"unexpected arrays {extra} in an {cls.__name__} file (expected "
                         f"only {sorted(known)} besides the network's model_.*)")


def _restored_network(est, kind: _Kind, config: dict, arrays: dict, n_features: int,
                      n_outputs: int):
    """The stored network, once it is exactly the one the hyperparameters imply.

    The implied architecture is worked out without allocating anything (and checks
    the hyperparameters); only then are the stored arrays put in a network.
    """
    stored = config["model_"]
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        raise ValueError(f"model_ must be a JSON object with the network's class and "
                         f"config, got {stored!r}")
    out_activation = config["out_activation_"]
    if out_activation not in ("softmax", "logistic", "identity", "exp"):
        raise ValueError(f"out_activation_ must be 'softmax', 'logistic', 'identity' or "
                         f"'exp', got {out_activation!r}")
    dtype = stored["config"].get("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"the stored network's dtype must be 'float32' or 'float64', got "
                         f"{dtype!r}")
    implied = {"class": "MLP", "config": est.network_config(
        n_features, n_outputs, out_activation, dtype, hidden=_fitted_hidden(est, config))}
    if stored != implied:
        raise ValueError(_architecture_mismatch(type(est).__name__, kind, stored, implied))
    net_arrays = {k[len(_NETWORK_PREFIX):]: v for k, v in arrays.items()
                  if k.startswith(_NETWORK_PREFIX)}
    return network_from_state(stored, net_arrays)


def _fitted_hidden(est, config: dict):
    """The stored network's hidden widths where they are not ``hidden_layer_sizes``
    (None when the file does not say so): positive integers, as many as the fitted
    network has hidden layers (``set_params`` after a fit may change their number; a
    warm start continues only a network of as many, see the estimator's
    ``fitted_hidden_sizes``)."""
    if _FITTED_HIDDEN not in config:
        return None
    sizes, wanted = config[_FITTED_HIDDEN], est.hidden_sizes()
    if (not isinstance(sizes, list) or sizes == wanted
            or not all(_is_int(s) and s >= 1 for s in sizes)):
        raise ValueError(f"{_FITTED_HIDDEN} must be a list of positive integers other "
                         f"than hidden_layer_sizes {wanted} (the fitted network's widths), "
                         f"got {sizes!r}")
    return sizes


def _architecture_mismatch(name: str, kind: _Kind, stored: dict, implied: dict) -> str:
    """Which entries of the stored network's description differ from the implied one."""
    if set(stored) != {"class", "config"} or stored["class"] != implied["class"]:
        return (f"the stored network {sorted(stored)} is not the MLP that an {name} "
                f"holds (class {stored.get('class')!r})")
    got, want = stored["config"], implied["config"]
    sources = {"layer_sizes": f"n_features_in_, hidden_layer_sizes (or "
                              f"{_FITTED_HIDDEN}) and {kind.outputs_name} make",
               "loss": f"an {name} uses"}
    differ = [k for k in want if got.get(k, _MISSING) != want[k]]
    differ += sorted(k for k in got if k not in want)
    return "the stored network does not match the estimator: " + "; ".join(
        f"its {k} is {got.get(k, '(missing)')!r} but "
        f"{sources.get(k, f'the hyperparameter {k} is')} {want.get(k, '(no such entry)')!r}"
        for k in differ)


def _restore_feature_names(est, arrays: dict, n_features: int) -> None:
    if "feature_names_in_" not in arrays:
        return
    names = arrays["feature_names_in_"]
    if names.dtype.kind != "U" or names.shape != (n_features,):
        raise ValueError(f"feature_names_in_ must be {n_features} strings (one per "
                         f"network input), got an array of dtype {names.dtype} and "
                         f"shape {names.shape}")
    est.feature_names_in_ = np.asarray(names.tolist(), dtype=object)


def _float_list(config, key):
    values = config[key]
    if not isinstance(values, list) or not all(_is_real(v) for v in values):
        raise ValueError(f"{key} must be a list of numbers, got {values!r}")
    return [np.float64(v) for v in values]


def _optional_real(config, key):
    value = config[key]
    if value is not None and not _is_real(value):
        raise ValueError(f"{key} must be a number or null, got {value!r}")
    return None if value is None else np.float64(value)


#: The config entries that only a stochastic solver's fit records.
_STOCHASTIC_RECORD = ("best_loss_", "validation_scores_", "best_validation_score_",
                      "no_improvement_count", "history_")


def _restore_training_record(est, config: dict) -> None:
    """Check and set ``n_iter_``, ``t_``, ``loss_``, ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ``best_validation_score_`` and ``history_``."""
    est.n_iter_ = _archive_int(config, "n_iter_", minimum=0)
    est.t_ = _archive_int(config, "t_", minimum=0)
    loss = config["loss_"]
    if not _is_real(loss):
        raise ValueError(f"loss_ must be a number, got {loss!r}")
    est.loss_ = np.float64(loss)   # (NumPy floats, as a fit leaves them)
    if config["loss_curve_"] is None:   # only L-BFGS fits: no stochastic record at all
        kept = [k for k in _STOCHASTIC_RECORD if config[k] is not None]
        if kept:
            raise ValueError(f"loss_curve_ is null (only L-BFGS has fitted the estimator) "
                             f"but the file holds {kept}, which only a stochastic solver "
                             f"records")
        est.history_ = None
        return
    est._no_improvement_count = _archive_int(config, "no_improvement_count", minimum=0)
    est.loss_curve_ = _float_list(config, "loss_curve_")
    # (an L-BFGS fit after a stochastic one has its own loss_, and no history_)
    if (config["history_"] is not None and est.loss_curve_
            and not _same_floats([loss], est.loss_curve_[-1:])):
        raise ValueError(f"loss_ must be the last value of loss_curve_ after a stochastic "
                         f"fit (history_ is set), got {loss!r}")
    est.best_loss_ = _optional_real(config, "best_loss_")
    est.validation_scores_ = (None if config["validation_scores_"] is None
                              else _float_list(config, "validation_scores_"))
    est.best_validation_score_ = _optional_real(config, "best_validation_score_")
    est.history_ = (None if config["history_"] is None
                    else _history_from_archive(config["history_"], est.loss_curve_))


def _history_from_archive(data, loss_curve):
    """A :class:`~chainrule.history.History` from its stored ``as_dict()`` form, checked
    by :meth:`History.from_dict`, of at most as many epochs as ``loss_curve`` (the
    History is that of the last fit or partial_fit call).

    Its losses need not be the end of ``loss_curve``: with sample weights and
    minibatches, the History averages the batches' losses by their weight and
    ``loss_curve_`` by their rows, as scikit-learn does
    (:class:`~chainrule.estimator.objectives.SklearnEpochLoss`).
    """
    try:
        history = History.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"history_: {exc}") from None
    if not 1 <= history.epochs <= len(loss_curve):
        raise ValueError(f"history_ epochs must be an integer from 1 to the {len(loss_curve)} "
                         f"epochs of loss_curve_, got {history.epochs!r}")
    return history
