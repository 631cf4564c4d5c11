"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, on chainrule's network.

A drop-in replacement: ``from chainrule import MLPClassifier, MLPRegressor`` in place
of ``from sklearn.neural_network import ...`` keeps every constructor parameter
(names, defaults, meaning), the fitted attributes (``coefs_``, ``intercepts_``,
``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``t_``,
``n_iter_``, ...) and the training semantics (``tol`` / ``n_iter_no_change``,
``max_iter`` and ``ConvergenceWarning``, early stopping on the validation score,
``warm_start``, ``partial_fit``). On top: ``dropout``, ``solver='adamw'``, ``init``,
``dtype``, ``class_weight``, and chainrule's ``model_`` (the network; ``coefs_`` and
``intercepts_`` are views of its ``params``) and ``history_``.

The same ``random_state`` gives scikit-learn's fit: every draw is taken from
scikit-learn's generator in scikit-learn's order (initial weights, early-stopping split,
each epoch's shuffle of the previous order, a full batch's included), SGD's momentum is
scikit-learn's velocity (:class:`~chainrule.estimator.solvers.SklearnSGD`) and Adam's
epsilon its placement, and the loss values its ``tol`` rule and L-BFGS line search see
are scikit-learn's (clipped log-loss, the multi-output mean, rows-weighted epochs
under ``sample_weight``: :mod:`chainrule.estimator.objectives`), so ``coefs_``,
``loss_curve_`` and ``n_iter_`` agree with scikit-learn's to rounding. Rows of
``sample_weight`` 0 are dropped (scikit-learn keeps them in its batches), and L-BFGS on
float32 ``X`` trains in float32 (scikit-learn's ends with float64 ``coefs_``).

The network is a :class:`chainrule.models.MLP`; ``solver='sgd' | 'adam' | 'adamw'``
trains through :func:`chainrule.train.fit` (the one training loop),
``solver='lbfgs'`` through :func:`chainrule.lbfgs.minimize_lbfgs`. Binary and
multilabel problems get one logistic output per label
(:class:`~chainrule.losses.BinaryCrossEntropy`), multiclass a softmax; the regressor
half the squared error (``loss='squared_error'``) or the Poisson loss (``'poisson'``,
``predict`` returns ``exp`` of the output). ``X`` may be a scipy.sparse CSR/CSC matrix;
the parameters take the dtype of ``X`` (float32 or float64) unless ``dtype`` says.

This package imports scikit-learn, so ``import chainrule`` does not import it.
Save and load a fitted estimator with :func:`chainrule.io.save` / :func:`chainrule.io.load`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix, issparse
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils import compute_sample_weight
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from ..functional import log_softmax, one_hot, sigmoid, softmax
from .base import STOCHASTIC_SOLVERS, BaseMLP

__all__ = ["MLPClassifier", "MLPRegressor"]


def _check_solver(est):
    if est.solver not in STOCHASTIC_SOLVERS:
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{est.solver} is not stochastic.")
    return True


def _as_1d(y, warn=True):
    """A column vector ``y`` as 1-D, with scikit-learn's DataConversionWarning (once per
    fit: the second look at ``y``, for the row weights, passes ``warn=False``)."""
    return column_or_1d(y, warn=warn) if y.ndim == 2 and y.shape[1] == 1 else y


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
    beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn, same defaults and meaning. ``activation`` also takes
        'leaky_relu' and 'sigmoid'; ``solver`` also 'adamw' (decoupled weight decay,
        default 0.01, on top of ``alpha``). ``alpha`` is applied per batch as
        scikit-learn applies it (:func:`chainrule.train.fit`'s ``l2``).
    dropout : float in [0, 1), default=0.0
        Drop probability after each hidden activation, during training only; the
        stochastic solvers only (``solver='lbfgs'`` refuses it: its line search
        compares loss values).
    init : {'sklearn', 'torch', 'xavier', 'xavier_normal', 'he', 'he_uniform', ...}, \
default='sklearn'
        scikit-learn's scheme or PyTorch's ``nn.Linear`` default (weights and biases
        uniform, see :class:`chainrule.models.MLP`), or a chainrule weight initialiser
        (biases at 0).
    dtype : {None, 'float32', 'float64'}, default=None
        Parameters' dtype (``np.float32`` and ``np.dtype("float32")`` are taken too);
        None follows ``X`` (float32 stays float32).
"""


def _check_class_weight(class_weight: dict, classes) -> None:
    """A class_weight dict's labels must be classes and its weights non-negative: a
    mistyped label would be silently ignored, a negative weight drop the class."""
    known = set(classes.tolist())
    unknown = [k for k in class_weight if k not in known]
    if unknown:
        raise ValueError(f"class_weight has labels {unknown} that are not among the "
                         f"classes {classes.tolist()}")
    negative = {k: v for k, v in class_weight.items() if not v >= 0}
    if negative:
        raise ValueError(f"class_weight values must be non-negative numbers, got {negative}")


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = """Multilayer-perceptron classifier, scikit-learn's ``MLPClassifier`` on chainrule.
    """ + _PARAMETERS_DOC + """    class_weight : None, 'balanced' or dict, default=None
        Multiplies ``sample_weight`` row by row.

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, best_loss_, loss_curve_, validation_scores_,
    best_validation_score_, t_, n_iter_, n_layers_, n_outputs_, out_activation_,
    n_features_in_, feature_names_in_
        As in scikit-learn. ``coefs_[i]`` and ``intercepts_[i]`` are the arrays of
        ``model_.params`` themselves; assigning an element, or the whole list, copies
        the new values into them (checked, as ``load_state_dict`` checks).
    model_ : chainrule.models.MLP
    history_ : chainrule.history.History or None
        The last stochastic fit's History (None after L-BFGS).
    optimizer_ : chainrule.optim.Optimizer
        The stochastic solver's optimizer (its state carries over in partial_fit).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from chainrule import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=300,
    ...                     random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {**BaseMLP._parameter_constraints,
                              "class_weight": [StrOptions({"balanced"}), dict, None]}
    _classifier = True
    #: The loss it minimises, as scikit-learn's classifier names it (not a parameter).
    loss = "log_loss"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, init="sklearn", dtype=None, class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, init=init, dtype=dtype)
        self.class_weight = class_weight

    # -- targets --------------------------------------------------------------------
    def _multilabel(self):
        return self.out_activation_ == "logistic" and self.model_.n_outputs == len(self.classes_)

    def _set_classes(self, y, classes, multilabel):
        # unique_labels as scikit-learn's (its LabelBinarizer): sorted, and strings as a
        # str array even from an object array or a pandas Series, as its classes_ are.
        if classes is not None:
            self.classes_ = unique_labels(np.asarray(classes))
        else:
            self.classes_ = np.arange(y.shape[1]) if multilabel else unique_labels(y)

    def _check_classes(self, y, classes, incremental):
        seen = unique_labels(y)
        if not incremental:  # warm_start
            if set(seen) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {seen}")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={list(classes)!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")

    def _targets(self, X, y, *, first, classes, incremental):
        y = _as_1d(y)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind == "multiclass-multioutput":  # scikit-learn's MLP refuses it so
            raise ValueError("Multioutput target data is not supported with label "
                             "binarization")
        multilabel = kind.startswith("multilabel")
        if first:
            self._set_classes(y, classes, multilabel)
        else:
            if multilabel != self._multilabel():  # scikit-learn's words, either way round
                raise ValueError(f"The object was not fitted with "
                                 f"{'multilabel' if multilabel else 'single-label'} input.")
            self._check_classes(y, classes, incremental)
        if multilabel:
            Y = np.asarray(y, dtype=np.float64)
            return Y, "logistic", None
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {unique_labels(y)}.")
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) <= 2:  # one logistic output (all 0 for a single class)
            Y = (index == 1).astype(np.float64)[:, None]
            return Y, "logistic", Y.astype(bool)
        return one_hot(index, len(self.classes_)), "softmax", None

    def _row_weights(self, y, sample_weight, X):
        weights = super()._row_weights(y, sample_weight, X)
        y = _as_1d(y, warn=False)
        if isinstance(self.class_weight, dict) and y.ndim == 1:
            _check_class_weight(self.class_weight, self.classes_)
            per_row = np.array([self.class_weight.get(label, 1.0) for label in y.tolist()],
                               dtype=weights.dtype)
            weights = weights * per_row
        elif isinstance(self.class_weight, dict):   # and a multilabel y
            raise ValueError(f"class_weight as a dict weighs the classes of a single-label "
                             f"y; this y is multilabel ({y.shape[1]} indicator columns): "
                             f"give class_weight='balanced' (each column's 0/1 frequencies) "
                             f"or per-row sample_weight")
        elif self.class_weight is not None:
            weights = weights * compute_sample_weight(self.class_weight, y).astype(weights.dtype)
        return weights

    def score_outputs(self, outputs, Y, sample_weight):
        """Accuracy (exact match of every label) of network outputs against targets."""
        if outputs.shape[1] > 1 and self.out_activation_ == "softmax":
            correct = outputs.argmax(axis=1) == Y.argmax(axis=1)
        else:
            correct = np.all((outputs > 0) == (Y > 0.5), axis=1)
        return float(np.average(correct, weights=sample_weight))

    # -- fit ----------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``(X, y)``; returns ``self``.

        Parameters
        ----------
        X : array-like or scipy.sparse CSR/CSC matrix, shape (n_samples, n_features)
        y : array-like, shape (n_samples,) or (n_samples, n_labels)
            Labels of any type, or a multilabel indicator matrix.
        sample_weight : array-like, shape (n_samples,), optional
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing the network and the optimizer's state;
        ``classes`` is required on the first call (scikit-learn's argument order).
        Stochastic solvers only; ``class_weight='balanced'`` is refused, as by
        scikit-learn's ``SGDClassifier.partial_fit``: one call's rows cannot tell the
        classes' frequencies (give a dict from ``compute_class_weight``)."""
        if self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit: "
                             "the classes' frequencies in one call's rows are not those of "
                             "the data. Compute them once with sklearn.utils.class_weight."
                             "compute_class_weight('balanced', classes=classes, y=y) on the "
                             "whole target (or a large sample of it) and pass the resulting "
                             "dict as class_weight.")
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # -- predict ------------------------------------------------------------------
    def predict(self, X):
        """Labels (or the indicator matrix of a multilabel problem) for each row."""
        # From predict_proba, as scikit-learn's: where rounding makes probabilities tie
        # (a logit of 1e-17 is a probability of exactly 0.5), the two agree.
        proba = self.predict_proba(X)
        if self.out_activation_ == "softmax":
            return self.classes_[np.argmax(proba, axis=1)]
        if self.model_.n_outputs == 1:
            positive = (proba[:, 1] > 0.5) & (len(self.classes_) > 1)
            return self.classes_[positive.astype(int)]
        labels = (proba > 0.5).astype(int)
        return csr_matrix(labels) if getattr(self, "_sparse_y", False) else labels

    def _dense_targets(self, y, first):
        # A sparse indicator matrix (MultiLabelBinarizer(sparse_output=True)) trains as
        # a dense one; predict then answers in CSR, as scikit-learn's MLPClassifier.
        if first:   # (a one-column sparse y is a binary problem: labels, not a matrix)
            self._sparse_y = issparse(y) and y.shape[1] > 1
        return y.toarray() if issparse(y) else y

    def predict_proba(self, X):
        """Probabilities, one column per entry of ``classes_``; sigmoids for a binary
        (both columns exact: ``sigmoid(-z), sigmoid(z)``) or multilabel problem."""
        logits = self._forward(X)
        if self.out_activation_ == "softmax":
            return softmax(logits, axis=1)
        if self.model_.n_outputs == 1:
            return np.hstack([sigmoid(-logits), sigmoid(logits)])
        return sigmoid(logits)

    def predict_log_proba(self, X):
        """Log-probabilities: ``log_softmax`` of the logits (exact, never ``log(0)``) for
        a multiclass problem. For logistic outputs, ``log(predict_proba(X))`` as
        scikit-learn computes it, so that the two agree on ties where a sigmoid rounds
        to 1 (``log_sigmoid`` of the logits is the exact value)."""
        if self.out_activation_ == "softmax":
            return log_softmax(self._forward(X), axis=1)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = True   # an indicator matrix y, as scikit-learn's
        tags.input_tags.sparse = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = """Multilayer-perceptron regressor, scikit-learn's ``MLPRegressor`` on chainrule.

    ``loss='squared_error'`` (half the mean square, identity output) or ``'poisson'``
    (log link: ``predict`` is ``exp`` of the network's output).
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    As :class:`MLPClassifier`, without ``classes_``.

    Notes
    -----
    With several outputs, scikit-learn descends the half *sum* of squares over the
    outputs but reports (and its ``tol`` rule and L-BFGS line search see) the half
    *mean*; this estimator does the same
    (:class:`~chainrule.estimator.objectives.SklearnSquaredError`), so ``loss_`` and
    ``loss_curve_`` are scikit-learn's.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule import MLPRegressor
    >>> X = np.linspace(-1, 1, 50)[:, None]
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=500,
    ...                    random_state=0).fit(X, X[:, 0] ** 2)
    >>> reg.score(X, X[:, 0] ** 2) > 0.9
    True
    """

    _parameter_constraints = {**BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, init="sklearn", dtype=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, init=init, dtype=dtype)
        self.loss = loss

    def _targets(self, X, y, *, first, classes, incremental):
        y = _as_1d(y)
        Y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        if self.loss == "poisson" and Y.min() < 0:
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "Poisson regression.")
        activation = "exp" if self.loss == "poisson" else "identity"
        if not first and activation != self.out_activation_:
            # scikit-learn keeps the fitted output and trains on it, but reports loss_
            # as the new loss: a loss the network is not trained for.
            fitted = "poisson" if self.out_activation_ == "exp" else "squared_error"
            raise ValueError(f"loss is {self.loss!r} but the network continued by warm_start "
                             f"or partial_fit was fitted with loss={fitted!r} (output "
                             f"{self.out_activation_!r}); set loss={fitted!r} to train on, or "
                             f"fit with warm_start=False for a new network")
        return Y, activation, None

    def _outputs(self, out):
        return np.exp(out) if self.out_activation_ == "exp" else out

    def score_outputs(self, outputs, Y, sample_weight):
        """R^2 of network outputs against 2-D targets (averaged over the outputs); NaN
        for predictions that are not all finite, as scikit-learn scores them."""
        from sklearn.metrics import r2_score

        predictions = self._outputs(outputs)
        if not np.isfinite(predictions).all():
            return math.nan
        return float(r2_score(Y, predictions, sample_weight=sample_weight))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``(X, y)``, ``y`` of shape (n_samples,) or
        (n_samples, n_outputs); returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the network and the optimizer's state.
        Stochastic solvers only."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets. Shape: (N, D) -> (N,) for one output, else (N, n_outputs)."""
        out = self._outputs(self._forward(X))
        return out[:, 0] if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = True
        return tags
