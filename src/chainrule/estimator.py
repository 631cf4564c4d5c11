"""scikit-learn estimators on top of chainrule: :class:`MLPClassifier`, :class:`MLPRegressor`.

They are thin adapters. The network is a :class:`chainrule.models.MLP`, the training
loop is :func:`chainrule.train.fit` (there is no second loop here), and the optimizer is
one of :mod:`chainrule.optim`. What the adapters add is scikit-learn's contract:
hyperparameters stored untouched by ``__init__`` and checked against
``_parameter_constraints`` when fitting, input validation through
``sklearn.utils.validation.validate_data`` (``n_features_in_``, ``feature_names_in_``),
labels of any type mapped through ``classes_``, per-row weights from ``class_weight``
and ``sample_weight``, and ``partial_fit``.

This module imports scikit-learn at import time, so ``import chainrule`` does not
import it; ``from chainrule.estimator import MLPClassifier`` does.

Save and load a fitted estimator with :func:`chainrule.io.save` and
:func:`chainrule.io.load`; the file holds JSON and arrays only (no pickle). Pickling
the estimator object itself also works, as scikit-learn's joblib-based tools
(``GridSearchCV(n_jobs=2)``) need it.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import (BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context,
                          is_classifier)
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .functional import log_softmax, one_hot, softmax
from .models import ACTIVATIONS, MLP
from .optim import SGD, Adam, AdamW

__all__ = ["MLPClassifier", "MLPRegressor"]

_INITS = {"xavier", "xavier_uniform", "xavier_normal", "he", "he_normal", "he_uniform"}
_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def _clear_caches(model):
    """Drop the activations the layers cached during training: a fitted estimator
    then pickles (and copies) without the last batch's intermediate arrays."""
    for layer, _ in model.layers:
        layer.cache = None
    model.loss.cache = None


class _BaseMLP(BaseEstimator):
    """Shared hyperparameters, network building and the call into ``train.fit``."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "optimizer": [StrOptions(set(_OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "init": [StrOptions(_INITS)],
        "random_state": ["random_state"],
        "dtype": [StrOptions({"float32", "float64"})],
        "verbose": ["verbose"],
    }

    _loss = None  # 'cross_entropy' or 'mse', set by the subclasses
    _outputs_name = None  # what sets the network's output width, for messages

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, batch_size="auto", epochs=200, shuffle=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, weight_decay=0.0, dropout=0.0, momentum=0.9, init="xavier",
                 random_state=None, dtype="float64", verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.momentum = momentum
        self.init = init
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose

    # -- hooks the subclasses fill in ------------------------------------------------
    def _validate_y(self, X, y, *, reset, classes=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _targets(self, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _row_weights(self, y, sample_weight, X):
        """Per-row weights passed to the loss: ``sample_weight`` (ones when None)."""
        return _check_sample_weight(sample_weight, X, dtype=np.dtype(self.dtype),
                                    ensure_non_negative=True)

    # -- building -----------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral):
            return [int(sizes)]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, Integral) or s < 1:
                raise ValueError(f"hidden_layer_sizes must hold positive integers, got "
                                 f"{self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _build_model(self, n_features, n_outputs, rng):
        return MLP([n_features, *self._hidden_sizes(), n_outputs], activation=self.activation,
                   dropout=self.dropout, init=self.init, rng=rng, dtype=np.dtype(self.dtype),
                   loss=self._loss)

    def _build_optimizer(self):
        if self.optimizer == "sgd":
            return SGD(lr=self.learning_rate, momentum=self.momentum,
                       weight_decay=self.weight_decay)
        return _OPTIMIZERS[self.optimizer](lr=self.learning_rate, weight_decay=self.weight_decay)

    def _batch_size(self, n):
        """Rows per step: 'auto' is min(200, n), None the full batch, an int is clipped
        to n. ``None`` is returned for a full batch so that fit takes the rows as they
        are (shuffling one full batch changes nothing but the summation order)."""
        if self.batch_size is None:
            return None
        size = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        return None if size >= n else size

    # -- the data -----------------------------------------------------------------
    def _validated(self, X, y, sample_weight, *, reset, classes=None):
        """Checked X, targets (one-hot or 2-D), row weights and the raw labels."""
        dtype = np.dtype(self.dtype)
        X, y = self._validate_y(X, y, reset=reset, classes=classes, dtype=dtype)
        weights = self._row_weights(y, sample_weight, X)
        if not weights.sum() > 0:
            raise ValueError("sample_weight (combined with class_weight) must have a positive "
                             f"sum, got {float(weights.sum())!r}")
        return X, self._targets(y).astype(dtype, copy=False), weights, y

    # -- training -----------------------------------------------------------------
    def _train(self, model, optimizer, X, Y, weights, y, *, epochs, rng, allow_early_stop):
        from .train import fit  # the one training loop

        # A row of weight 0 is removed, which is what the weight means. It also keeps
        # minibatches of all-zero weights (a weighted mean of nothing) out of the loop.
        keep = weights > 0
        if not keep.all():
            X, Y, weights, y = X[keep], Y[keep], weights[keep], y[keep]
        kwargs = {}
        if allow_early_stop and self.early_stopping:
            from sklearn.model_selection import train_test_split

            split_seed = int(rng.integers(np.iinfo(np.int32).max))
            idx = np.arange(X.shape[0])
            try:
                train_idx, val_idx = train_test_split(
                    idx, test_size=self.validation_fraction, random_state=split_seed,
                    stratify=y if is_classifier(self) else None)
            except ValueError:
                # Too few rows of some class to stratify: fall back to a plain split.
                train_idx, val_idx = train_test_split(
                    idx, test_size=self.validation_fraction, random_state=split_seed)
            kwargs["validation_data"] = (X[val_idx], Y[val_idx])
            kwargs["early_stopping"] = self._early_stopping_rule()
            X, Y, weights = X[train_idx], Y[train_idx], weights[train_idx]
            if not weights.sum() > 0:
                raise ValueError("the rows left for training after holding out "
                                 "validation_fraction have zero total sample_weight")
        batch_size = self._batch_size(X.shape[0])
        history = fit(model, X, Y, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                      shuffle=bool(self.shuffle) and batch_size is not None, rng=rng,
                      progress=bool(self.verbose), sample_weight=weights, diagnostics=False,
                      **kwargs)
        _clear_caches(model)
        return history

    def _early_stopping_rule(self):
        from .history import EarlyStopping

        return EarlyStopping(patience=self.n_iter_no_change, monitor="val_loss",
                             min_delta=self.tol, restore_best_weights=True)

    def _fit(self, X, y, sample_weight, *, incremental, classes=None):
        # Nothing is left half-updated: on any failure the estimator's attributes (and,
        # for partial_fit, the network, the optimizer and the RNG) go back to how they were.
        attributes = dict(vars(self))
        saved = None
        if incremental and hasattr(self, "model_"):
            saved = ({k: v.copy() for k, v in self.model_.params.items()},
                     self._optimizer.state_dict(), self._rng.bit_generator.state)
        try:
            return self._fit_unguarded(X, y, sample_weight, incremental=incremental,
                                       classes=classes)
        except BaseException:
            if saved is not None:
                for k, v in saved[0].items():
                    self.model_.params[k][...] = v
                self._optimizer.load_state_dict(saved[1])
                self._rng.bit_generator.state = saved[2]
                _clear_caches(self.model_)
            vars(self).clear()
            vars(self).update(attributes)
            raise

    def _fit_unguarded(self, X, y, sample_weight, *, incremental, classes):
        first = not incremental or not hasattr(self, "model_")
        X, Y, weights, y = self._validated(X, y, sample_weight, reset=first, classes=classes)
        if first:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            rng = np.random.default_rng(seed)
            model = self._build_model(X.shape[1], Y.shape[1], rng)
            optimizer = self._build_optimizer()
            history = self._train(model, optimizer, X, Y, weights, y, rng=rng,
                                  epochs=1 if incremental else self.epochs,
                                  allow_early_stop=not incremental)
            self.model_, self._optimizer, self._rng = model, optimizer, rng
            self.loss_curve_ = list(history.history["loss"])
            self.n_iter_ = int(history.epochs)
        else:
            history = self._train(self.model_, self._optimizer, X, Y, weights, y, epochs=1,
                                  rng=self._rng, allow_early_stop=False)
            self.loss_curve_ = self.loss_curve_ + list(history.history["loss"])
            self.n_iter_ += int(history.epochs)
        self.history_ = history
        self.loss_ = float(history.history["loss"][-1])
        return self

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.dtype(self.dtype))
        return self.model_.forward(X)

    # -- saving (chainrule.io protocol) ----------------------------------------------
    def _archive_config(self):
        params = {}
        for key, value in self.get_params(deep=False).items():
            if key == "class_weight" and isinstance(value, dict):
                params[key] = value  # replaced by the classifier (JSON keys are strings)
            elif key == "random_state" and not (value is None or isinstance(value, Integral)):
                params[key] = None  # a RandomState object has no JSON form
            elif isinstance(value, (tuple, list, np.ndarray)):
                params[key] = [int(v) for v in value]
            elif isinstance(value, np.generic):
                params[key] = value.item()
            else:
                params[key] = value
        return {"params": params, "n_features_in_": int(self.n_features_in_),
                "n_iter_": int(self.n_iter_), "loss_": float(self.loss_),
                "loss_curve_": [float(v) for v in self.loss_curve_],
                "history_": self.history_.as_dict()}

    def _archive_state(self):
        """``(config, arrays)`` for :func:`chainrule.io.save`: JSON-able hyperparameters and
        fitted scalars, and the network's parameters (``model_.W1``, ...) plus labels and
        feature names as arrays."""
        from .io import _network_state

        check_is_fitted(self, "model_")
        config = self._archive_config()
        net_config, net_arrays = _network_state(self.model_)
        config["model_"] = net_config
        arrays = {f"model_.{k}": v for k, v in net_arrays.items()}
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_.tolist(), dtype=str)
        return config, arrays

    _ARCHIVE_KEYS = ("params", "n_features_in_", "n_iter_", "loss_", "loss_curve_",
                     "history_", "model_")

    @classmethod
    def _from_archive_state(cls, config, arrays):
        """Rebuild a fitted estimator from what :meth:`_archive_state` returned.

        A file can be edited and its checksum recomputed, so nothing is taken on trust:
        every fitted attribute is checked against the hyperparameters and the stored
        network, and the architecture the hyperparameters imply must equal the stored
        network's. Raises ValueError, TypeError or KeyError on anything inconsistent
        (chainrule.io reports those as ModelFileError naming the file).
        """
        from .io import _network_from_state

        if not isinstance(config, dict):
            raise ValueError(f"the estimator config must be a JSON object, got "
                             f"{type(config).__name__}")
        _check_keys("the estimator config", config, cls._ARCHIVE_KEYS + cls._archive_extra_keys)
        params = config["params"]
        if not isinstance(params, dict):
            raise ValueError(f"params must be a JSON object, got {type(params).__name__}")
        _check_keys("params", params, tuple(cls().get_params(deep=False)))
        params = dict(params)
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est._validate_params()
        hidden = est._hidden_sizes()

        known = {"feature_names_in_", *est._extra_array_names()}
        extra = sorted(k for k in arrays if not k.startswith("model_.") and k not in known)
        if extra:
            raise ValueError(f"unexpected arrays {extra} in an {cls.__name__} file (expected "
                             f"only {sorted(known)} besides the network's model_.*)")
        n_features = _archive_int(config, "n_features_in_", minimum=1)
        # classes_ (classifier) or n_outputs_ (regressor): the network's output width.
        n_outputs = est._restore_extra(config, arrays)

        # The architecture the hyperparameters and fitted sizes imply, worked out
        # without allocating anything, must be exactly the stored network's.
        implied = {"class": "MLP", "config": {
            "layer_sizes": [n_features, *hidden, n_outputs], "activation": est.activation,
            "dropout": est.dropout, "init": est.init, "dtype": est.dtype, "loss": cls._loss}}
        stored = config["model_"]
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
            raise ValueError(f"model_ must be a JSON object with the network's class and "
                             f"config, got {stored!r}")
        if stored != implied:
            raise ValueError(_architecture_mismatch(cls, stored, implied))
        model = _network_from_state(
            stored, {k[len("model_."):]: v for k, v in arrays.items()
                     if k.startswith("model_.")})
        est.model_ = model
        est.n_features_in_ = n_features
        if "feature_names_in_" in arrays:
            names = arrays["feature_names_in_"]
            if names.dtype.kind != "U" or names.shape != (n_features,):
                raise ValueError(f"feature_names_in_ must be {n_features} strings (one per "
                                 f"network input), got an array of dtype {names.dtype} and "
                                 f"shape {names.shape}")
            est.feature_names_in_ = np.asarray(names.tolist(), dtype=object)

        n_iter = _archive_int(config, "n_iter_", minimum=1)
        curve = config["loss_curve_"]
        if not isinstance(curve, list) or not all(_is_real(v) for v in curve):
            raise ValueError(f"loss_curve_ must be a list of numbers, got {curve!r}")
        if len(curve) != n_iter:
            raise ValueError(f"n_iter_ is {n_iter} but loss_curve_ holds {len(curve)} "
                             f"epochs")
        loss = config["loss_"]
        if not _is_real(loss) or not _same_floats([loss], curve[-1:]):
            raise ValueError(f"loss_ must be the last value of loss_curve_ "
                             f"({curve[-1]!r}), got {loss!r}")
        est.n_iter_ = n_iter
        est.loss_ = float(loss)
        est.loss_curve_ = [float(v) for v in curve]
        est.history_ = _history_from_archive(config["history_"], est.loss_curve_)
        # partial_fit after loading starts a fresh optimizer (a model file holds no
        # optimizer state; training checkpoints do) and a generator seeded as fit would.
        est._optimizer = est._build_optimizer()
        est._rng = np.random.default_rng(check_random_state(est.random_state)
                                         .randint(np.iinfo(np.int32).max))
        return est

    _archive_extra_keys = ()

    def _extra_array_names(self):
        return ()

    def _restore_extra(self, config, arrays):  # pragma: no cover - overridden
        """Check and set the subclass's fitted attributes; return the network's outputs."""
        raise NotImplementedError


# -- checks for model files --------------------------------------------------------------
_MISSING = object()


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _same_floats(a, b):
    """Equal lists of numbers, a NaN equal to a NaN (a diverged epoch records NaN)."""
    return len(a) == len(b) and np.array_equal(np.asarray(a, dtype=np.float64),
                                               np.asarray(b, dtype=np.float64), equal_nan=True)


def _check_keys(what, mapping, expected):
    missing = [k for k in expected if k not in mapping]
    extra = sorted(k for k in mapping if k not in expected)
    if missing or extra:
        raise ValueError(f"{what} has missing keys {missing} and unexpected keys {extra}; "
                         f"expected exactly {list(expected)}")


def _architecture_mismatch(cls, stored, implied):
    """Which entries of the stored network's description differ from the implied one."""
    if set(stored) != {"class", "config"} or stored["class"] != implied["class"]:
        return (f"the stored network {sorted(stored)} is not the MLP that an {cls.__name__} "
                f"holds (class {stored.get('class')!r})")
    got, want = stored["config"], implied["config"]
    sources = {"layer_sizes": f"n_features_in_, hidden_layer_sizes and {cls._outputs_name} "
                              f"make", "loss": f"an {cls.__name__} uses"}
    differ = [k for k in want if got.get(k, _MISSING) != want[k]]
    differ += sorted(k for k in got if k not in want)
    return "the stored network does not match the estimator: " + "; ".join(
        f"its {k} is {got.get(k, '(missing)')!r} but "
        f"{sources.get(k, f'the hyperparameter {k} is')} {want.get(k, '(no such entry)')!r}"
        for k in differ)


def _archive_int(config, key, *, minimum):
    value = config[key]
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _history_from_archive(data, loss_curve):
    """A :class:`chainrule.history.History` from its stored ``as_dict()`` form, checked
    by :meth:`History.from_dict`, and whose ``loss`` is the end of ``loss_curve`` (the
    History is that of the last fit or partial_fit call)."""
    from .history import History

    try:
        history = History.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"history_: {exc}") from None
    if not 1 <= history.epochs <= len(loss_curve):
        raise ValueError(f"history_ epochs must be an integer from 1 to the {len(loss_curve)} "
                         f"epochs of loss_curve_, got {history.epochs!r}")
    if not _same_floats(history["loss"], loss_curve[-history.epochs:]):
        raise ValueError(f"history_ 'loss' {history['loss']!r} is not the end of loss_curve_ "
                         f"{loss_curve!r}")
    return history


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer-perceptron classifier trained by :func:`chainrule.train.fit`.

    The network has one output per class followed by a softmax and the cross-entropy
    loss; a binary problem uses two softmax outputs (equivalent to one sigmoid output
    on the difference of the two logits), so ``predict_proba`` always has one column
    per class.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer; ``()`` gives multinomial logistic regression.
    activation : {'relu', 'leaky_relu', 'tanh', 'sigmoid'}, default='relu'
    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
    learning_rate : float, default=1e-3
    batch_size : int, 'auto' or None, default='auto'
        Rows per step: 'auto' is ``min(200, n_samples)``, None the full batch; an int
        larger than the data is clipped to it. A full batch is not shuffled.
    epochs : int, default=200
        Passes over the data in :meth:`fit` (at most, with early stopping).
    shuffle : bool, default=True
        Visit the rows in a fresh random order every epoch (minibatches only).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified) and stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change`` epochs,
        keeping the best weights. The validation loss is not weighted.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Smallest decrease of the validation loss counted as an improvement.
    weight_decay : float, default=0.0
        L2 penalty (added to the gradient for 'sgd' and 'adam', decoupled for 'adamw').
    dropout : float in [0, 1), default=0.0
        Drop probability after each hidden activation, during training only.
    momentum : float in [0, 1), default=0.9
        Used by 'sgd' only.
    init : {'xavier', 'xavier_normal', 'he', 'he_uniform', ...}, default='xavier'
        Weight initialiser (biases start at zero).
    random_state : None, int or RandomState, default=None
        Seeds the initial weights, the shuffling, dropout and the validation split;
        an int gives the same model on every fit.
    dtype : {'float64', 'float32'}, default='float64'
    verbose : bool, default=False
        Show the training loop's progress bar.
    class_weight : None, 'balanced' or dict, default=None
        Weights multiplying ``sample_weight`` row by row: a dict maps a label to its
        weight, 'balanced' uses ``n_samples / (n_classes * count(label))`` (computed on
        the rows of each call in :meth:`partial_fit`).

    Notes
    -----
    Row weights enter the loss as a weighted mean, so an integer weight ``w`` acts as
    ``w`` copies of the row; rows of weight 0 are removed before training (they take
    no place in a minibatch). With a full batch (``batch_size=None``, or 'auto' on up
    to 200 rows) training is deterministic and these equivalences hold to rounding.

    Ctrl-C during :meth:`fit` ends training at the last completed epoch (as
    :func:`chainrule.train.fit` does): ``fit`` returns with that model and
    ``history_.stop_reason == "interrupted"``. Any error leaves the estimator as it was
    before the call. Each :meth:`partial_fit` call is one epoch with the optimizer
    state (Adam moments, momentum) carried over, so ``k`` calls on the same data with a
    full batch give the model of ``fit`` with ``epochs=k``.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The labels, sorted; column ``k`` of ``predict_proba`` is ``classes_[k]``.
    model_ : chainrule.models.MLP
        The trained network (``model_.params`` holds the weights).
    history_ : chainrule.train.History
        The History of the last call to :meth:`fit` or :meth:`partial_fit`.
    loss_curve_ : list of float
        Training loss per epoch over all calls since the last :meth:`fit`.
    loss_ : float
        The last epoch's training loss.
    n_iter_ : int
        Epochs run since the last :meth:`fit`.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names (e.g. a pandas DataFrame).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from chainrule.estimator import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), learning_rate=0.01, epochs=300, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [StrOptions({"balanced"}), dict, None]}
    _loss = "cross_entropy"
    _outputs_name = "len(classes_)"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, batch_size="auto", epochs=200, shuffle=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, weight_decay=0.0, dropout=0.0, momentum=0.9, init="xavier",
                 random_state=None, dtype="float64", verbose=False, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, optimizer=optimizer,
                         learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                         shuffle=shuffle, early_stopping=early_stopping,
                         validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, tol=tol, weight_decay=weight_decay,
                         dropout=dropout, momentum=momentum, init=init,
                         random_state=random_state, dtype=dtype, verbose=verbose)
        self.class_weight = class_weight

    def _validate_y(self, X, y, *, reset, classes=None, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        if reset:
            labels = np.unique(y if classes is None else np.asarray(classes))
            if labels.shape[0] < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes, got one "
                                 f"class ({labels.tolist()!r})")
            self.classes_ = labels
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={np.unique(classes).tolist()!r} differs from the classes "
                             f"of the first partial_fit call, {self.classes_.tolist()!r}")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown.tolist()!r} that are not in classes "
                             f"{self.classes_.tolist()!r}")
        return X, y

    def _targets(self, y):
        return one_hot(np.searchsorted(self.classes_, y), self.classes_.shape[0])

    def _row_weights(self, y, sample_weight, X):
        weights = super()._row_weights(y, sample_weight, X)
        if isinstance(self.class_weight, dict):
            # Looked up row by row (1.0 for a class not in the dict): compute_sample_weight
            # refuses a partial_fit batch that lacks one of the dict's classes.
            per_row = np.array([self.class_weight.get(label, 1.0) for label in y.tolist()],
                               dtype=weights.dtype)
            weights = weights * per_row
        elif self.class_weight is not None:
            weights = weights * compute_sample_weight(self.class_weight, y).astype(weights.dtype)
        return weights

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``(X, y)`` for ``epochs`` epochs; returns ``self``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            Labels of any type (ints, strings, ...); at least two distinct values.
        sample_weight : array-like, shape (n_samples,), optional
            Non-negative row weights: a weight of 2 counts a row twice, 0 removes it.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the network and the optimizer's state.

        ``classes`` (every label that will ever be seen) is required on the first call.
        """
        if not hasattr(self, "model_") and classes is None:
            raise ValueError("classes must be given on the first call to partial_fit (every "
                             "label the classifier will ever see), got None")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict(self, X):
        """The most probable label for each row. Shape: (N, D) -> (N,)."""
        logits = self._forward(X)  # first: it raises NotFittedError on an unfitted estimator
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``. Shape: (N, D) -> (N, K)."""
        return softmax(self._forward(X), axis=1)

    def predict_log_proba(self, X):
        """Log-probabilities from ``log_softmax`` of the logits (exact, never log(0))."""
        return log_softmax(self._forward(X), axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    def _archive_state(self):
        config, arrays = super()._archive_state()
        cw = self.class_weight
        if isinstance(cw, dict):
            # JSON keys must be strings; labels and weights travel as arrays instead.
            config["params"]["class_weight"] = {"__dict__": True}
            arrays["class_weight_labels"] = np.asarray(list(cw.keys()))
            arrays["class_weight_values"] = np.asarray(list(cw.values()), dtype=np.float64)
        classes = self.classes_
        arrays["classes_"] = np.asarray(classes.tolist()) if classes.dtype == object else classes
        if arrays["classes_"].dtype == object:
            raise TypeError(f"cannot save classes_ of mixed types: {classes.tolist()!r}")
        return config, arrays

    @classmethod
    def _from_archive_state(cls, config, arrays):
        # A class_weight dict travels as two arrays (see _archive_state); take them out
        # and check them here, and the base class sees a plain dict.
        if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
            return super()._from_archive_state(config, arrays)  # which reports it
        arrays = dict(arrays)
        stored = {k: arrays.pop(k) for k in _CLASS_WEIGHT_ARRAYS if k in arrays}
        class_weight = config["params"].get("class_weight")
        if isinstance(class_weight, dict):
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
            config = dict(config, params=dict(
                config["params"], class_weight=dict(zip(labels.tolist(), values.tolist()))))
        elif stored:
            raise ValueError(f"the file holds class_weight arrays {sorted(stored)} but "
                             f"class_weight is {class_weight!r}, not a dict")
        est = super()._from_archive_state(config, arrays)
        if isinstance(est.class_weight, dict):
            unknown = [k for k in est.class_weight if k not in set(est.classes_.tolist())]
            if unknown:
                raise ValueError(f"class_weight has labels {unknown!r} that are not in "
                                 f"classes_ {est.classes_.tolist()!r}")
        return est

    def _extra_array_names(self):
        return ("classes_",)

    def _restore_extra(self, config, arrays):
        if "classes_" not in arrays:
            raise ValueError("the file has no classes_ array")
        classes = arrays["classes_"]
        if (classes.ndim != 1 or classes.shape[0] < 2
                or classes.dtype.kind not in _LABEL_KINDS):
            raise ValueError(f"classes_ must be a 1-D array of at least 2 labels (strings, "
                             f"integers, floats or booleans), got dtype {classes.dtype} and "
                             f"shape {classes.shape}")
        if not np.array_equal(np.unique(classes), classes):
            # predict maps column k to classes_[k] and fitting uses searchsorted: both
            # need the sorted, distinct labels np.unique gives.
            raise ValueError(f"classes_ must be sorted and distinct, got {classes.tolist()!r}")
        # Strings come back as a fixed-width unicode array; scikit-learn keeps string
        # labels as Python objects, so predictions are plain str objects again.
        self.classes_ = classes.astype(object) if classes.dtype.kind == "U" else classes
        return classes.shape[0]


_CLASS_WEIGHT_ARRAYS = ("class_weight_labels", "class_weight_values")
_LABEL_KINDS = "USiufb"


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer-perceptron regressor trained by :func:`chainrule.train.fit`.

    Linear outputs and the mean-squared-error loss; ``y`` may have one column
    (``predict`` returns shape (N,)) or several (shape (N, n_outputs)). Targets are not
    rescaled: put a ``TransformedTargetRegressor`` around it for targets far from unit
    scale.

    Parameters
    ----------
    Same as :class:`MLPClassifier`, without ``class_weight``.

    Attributes
    ----------
    n_outputs_ : int
    model_, history_, loss_curve_, loss_, n_iter_, n_features_in_, feature_names_in_
        As for :class:`MLPClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule.estimator import MLPRegressor
    >>> X = np.linspace(-1, 1, 50)[:, None]
    >>> y = X[:, 0] ** 2
    >>> reg = MLPRegressor((16,), learning_rate=0.01, epochs=500, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """

    _loss = "mse"
    _outputs_name = "n_outputs_"
    _archive_extra_keys = ("n_outputs_", "y_ndim")

    def _validate_y(self, X, y, *, reset, classes=None, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                             y_numeric=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if reset:
            self.n_outputs_ = n_outputs
            self._y_ndim = y.ndim
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs but the regressor was fitted with "
                             f"{self.n_outputs_}")
        return X, y

    def _targets(self, y):
        return y.reshape(y.shape[0], -1)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``(X, y)`` for ``epochs`` epochs; returns ``self``.

        ``y`` has shape (n_samples,) or (n_samples, n_outputs); ``sample_weight`` as in
        :meth:`MLPClassifier.fit`.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the network and the optimizer's state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets. Shape: (N, D) -> (N,) or (N, n_outputs)."""
        out = self._forward(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _archive_config(self):
        config = super()._archive_config()
        config["n_outputs_"] = int(self.n_outputs_)
        config["y_ndim"] = int(self._y_ndim)
        return config

    def _restore_extra(self, config, arrays):
        n_outputs = _archive_int(config, "n_outputs_", minimum=1)
        y_ndim = config["y_ndim"]
        if not _is_int(y_ndim) or y_ndim not in (1, 2) or (y_ndim == 1 and n_outputs != 1):
            raise ValueError(f"y_ndim must be 1 (one output, predict returns shape (N,)) or "
                             f"2, got y_ndim={y_ndim!r} with n_outputs_={n_outputs}")
        self.n_outputs_, self._y_ndim = n_outputs, int(y_ndim)
        return n_outputs
