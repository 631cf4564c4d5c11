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
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .data import split_rows
from .functional import log_softmax, one_hot, softmax
from .history import EarlyStopping
from .models import ACTIVATIONS, MLP
from .optim import OPTIMIZERS, make_optimizer
from .train import fit

__all__ = ["MLPClassifier", "MLPRegressor"]

_INITS = {"xavier", "xavier_uniform", "xavier_normal", "he", "he_normal", "he_uniform"}


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
        "optimizer": [StrOptions(set(OPTIMIZERS))],
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

    _loss: str | None = None  # 'cross_entropy' or 'mse', set by the subclasses

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

    def network_config(self, n_features, n_outputs):
        """The :class:`~chainrule.models.MLP` configuration the hyperparameters give.

        Parameters
        ----------
        n_features, n_outputs : int
            Widths of the network's input and output.

        Returns
        -------
        dict
            ``layer_sizes``, ``activation``, ``dropout``, ``init``, ``dtype`` and
            ``loss``, as in ``MLP(**config).config``: the network :meth:`fit` builds.
            :func:`chainrule.io.load` compares it with the stored network.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            (a ``ValueError``) if a hyperparameter is invalid.
        """
        self._validate_params()
        return {"layer_sizes": [int(n_features), *self._hidden_sizes(), int(n_outputs)],
                "activation": self.activation, "dropout": self.dropout, "init": self.init,
                "dtype": self.dtype, "loss": self._loss}

    def _build_model(self, n_features, n_outputs, rng):
        return MLP(**self.network_config(n_features, n_outputs), rng=rng)

    def _build_optimizer(self):
        # momentum=None for Adam/AdamW: make_optimizer leaves out what is None.
        return make_optimizer(self.optimizer, lr=self.learning_rate,
                              weight_decay=self.weight_decay,
                              momentum=self.momentum if self.optimizer == "sgd" else None)

    def _fresh_rng(self):
        """The generator :meth:`fit` starts from: seeded by ``random_state``."""
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return np.random.default_rng(seed)

    def reset_training_state(self):
        """Give the network a new optimizer and random generator, as :meth:`fit` does.

        :func:`chainrule.io.load` calls this on a loaded estimator: a model file holds
        no optimizer state (training checkpoints do), so :meth:`partial_fit` after
        loading starts a fresh optimizer and a generator seeded as :meth:`fit` would
        seed it. Returns ``self``.
        """
        self._optimizer = self._build_optimizer()
        self._rng = self._fresh_rng()
        return self

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
        # A row of weight 0 is removed, which is what the weight means. It also keeps
        # minibatches of all-zero weights (a weighted mean of nothing) out of the loop.
        keep = weights > 0
        if not keep.all():
            X, Y, weights, y = X[keep], Y[keep], weights[keep], y[keep]
        kwargs = {}
        if allow_early_stop and self.early_stopping:
            # ceil, as scikit-learn's own splitters count a fraction of the rows.
            n_val = int(np.ceil(self.validation_fraction * X.shape[0]))
            if n_val >= X.shape[0]:
                raise ValueError(f"validation_fraction={self.validation_fraction} of "
                                 f"{X.shape[0]} rows leaves no rows to train on")
            train_idx, val_idx = split_rows(X.shape[0], n_val, rng,
                                            stratify=y if is_classifier(self) else None)
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
            rng = self._fresh_rng()
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
    y_ndim_ : {1, 2}
        Dimensions of the ``y`` given to :meth:`fit`: with 1, :meth:`predict` returns
        shape (N,).
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

    def _validate_y(self, X, y, *, reset, classes=None, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                             y_numeric=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if reset:
            self.n_outputs_ = n_outputs
            self.y_ndim_ = y.ndim
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
        return out[:, 0] if self.y_ndim_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
