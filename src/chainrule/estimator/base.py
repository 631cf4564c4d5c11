"""What :class:`MLPClassifier` and :class:`MLPRegressor` share: hyperparameters, the
network they build, the data checks and the fit / partial_fit logic."""

from __future__ import annotations

import copy
import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..diagnostics import user_stacklevel
from ..layers import Dropout
from ..models import MLP
from .objectives import set_training_loss
from .solvers import SKLEARN_DIR, build_optimizer, run_lbfgs, run_stochastic

__all__ = ["BaseMLP", "STOCHASTIC_SOLVERS", "OUT_ACTIVATIONS"]

STOCHASTIC_SOLVERS = ("sgd", "adam", "adamw")
_INITS = {"sklearn", "xavier", "xavier_uniform", "xavier_normal", "he", "he_normal", "he_uniform",
          "torch"}
#: The network's loss for each scikit-learn output activation.
OUT_ACTIVATIONS = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy",
                   "identity": "squared_error", "exp": "poisson"}


class _ParamList(list):
    """``coefs_`` or ``intercepts_``: the network's arrays, layer by layer.

    scikit-learn keeps these lists as the model itself, so ``coefs_[0] = W`` changes
    what it predicts. Here the network owns the arrays: an element assigned (or the
    whole list, through the estimator's setter) is copied into it in place, after
    :meth:`~chainrule.network.Network.load_state_dict`'s checks (shape, numbers,
    finite; nothing written when one fails). ``slot`` 0: weights, 1: biases.
    """

    def __init__(self, estimator, slot: int, attr: str):
        check_is_fitted(estimator, "model_")
        self._model, self._attr = estimator.model_, attr
        self._names = [names[slot] for _, names in self._model.layers if names]
        super().__init__(self._model.params[n] for n in self._names)

    def __setitem__(self, index, value):
        if not isinstance(index, Integral):
            raise TypeError(f"{self._attr}[...] takes one layer's index, got "
                            f"{type(index).__name__}")
        name = self._names[index]
        self._load({name: value})
        super().__setitem__(index, self._model.params[name])

    def assign(self, arrays) -> None:
        """Write one array per layer (the setter of ``coefs_ = [...]``)."""
        arrays = list(arrays)
        if len(arrays) != len(self._names):
            raise ValueError(f"{self._attr} must hold {len(self._names)} arrays, one per "
                             f"layer, got {len(arrays)}")
        self._load(dict(zip(self._names, arrays, strict=True)))

    def _load(self, arrays) -> None:
        try:
            self._model.load_state_dict(arrays, strict=False)
        except (TypeError, ValueError) as exc:
            message = str(exc)
            for i, name in enumerate(self._names):  # said in the estimator's terms
                message = message.replace(f"state_dict[{name!r}]", f"{self._attr}[{i}]")
                message = message.replace(f"network's {name!r}", "layer's array")
            raise type(exc)(message) from None


def _drop_zero_weights(X, Y, weights):
    """Remove the rows of weight 0 (which is what the weight means); ``None`` for
    weights that are all 1 (the unweighted loss, exactly)."""
    keep = weights > 0
    if not keep.all():
        X, Y, weights = X[keep], Y[keep], weights[keep]
    if not weights.sum() > 0:
        raise ValueError("sample_weight (with class_weight) of the training rows must have "
                         "a positive sum")
    return X, Y, None if np.all(weights == 1) else weights


def _shared_random_state(random_state):
    """The ``RandomState`` a fit draws from that outlives it (the caller's, or NumPy's
    global one for None), or None for an int seed (a fresh generator every fit)."""
    return None if isinstance(random_state, Integral) else check_random_state(random_state)


class BaseMLP(BaseEstimator):
    """Shared hyperparameters (scikit-learn's names and defaults, plus chainrule's
    ``dropout``, ``init``, ``dtype`` and ``solver='adamw'``) and the training logic."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        # scikit-learn's names (and leaky_relu, sigmoid): not MLP's gelu, silu, elu and
        # softplus, which scikit-learn refuses.
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu", "leaky_relu",
                                   "sigmoid"})],
        "solver": [StrOptions({"lbfgs", *STOCHASTIC_SOLVERS})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "init": [StrOptions(_INITS)],
        # NumPy's spellings too (np.float32, np.dtype("float32")), as scikit-learn users
        # write them; model files store the name.
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64}),
                  Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)}), None],
    }

    _classifier = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, init="sklearn", dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.init = init
        self.dtype = dtype

    # -- hooks the subclasses fill in ------------------------------------------------
    def _dense_targets(self, y, first):
        """``y`` as the rest of fit takes it: a classifier densifies a sparse indicator
        matrix (and remembers it for predict); a regressor keeps ``y``."""
        return y

    def _targets(self, X, y, *, first, classes, incremental):  # pragma: no cover - abstract
        """``(Y, out_activation, stratify)``: 2-D targets, the output activation a new
        network gets, and the labels to stratify a validation split by (or None)."""
        raise NotImplementedError

    def _row_weights(self, y, sample_weight, X):
        return _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)

    def score_outputs(self, outputs, Y, sample_weight):  # pragma: no cover - abstract
        """The score (accuracy, R^2) of network outputs against 2-D targets."""
        raise NotImplementedError

    # -- fitted attributes: views of model_.params ------------------------------------
    @property
    def coefs_(self):
        """The weights ``W1, W2, ...`` of ``model_.params`` (the same arrays); assigning
        the list or one of its elements writes into the network, as in scikit-learn."""
        return _ParamList(self, 0, "coefs_")

    @coefs_.setter
    def coefs_(self, arrays):
        _ParamList(self, 0, "coefs_").assign(arrays)

    @property
    def intercepts_(self):
        """The biases ``b1, b2, ...`` of ``model_.params`` (the same arrays); assignable
        as :attr:`coefs_`."""
        return _ParamList(self, 1, "intercepts_")

    @intercepts_.setter
    def intercepts_(self, arrays):
        _ParamList(self, 1, "intercepts_").assign(arrays)

    @property
    def n_layers_(self):
        check_is_fitted(self, "model_")
        return len(self.coefs_) + 1

    @property
    def n_outputs_(self):
        check_is_fitted(self, "model_")
        return self.model_.n_outputs

    @property
    def out_activation_(self):
        check_is_fitted(self, "model_")
        loss = self.model_.config["loss"]
        return next(k for k, v in OUT_ACTIVATIONS.items() if v == loss)

    # -- building -----------------------------------------------------------------
    def hidden_sizes(self):
        """``hidden_layer_sizes`` as a list of ints, checked (positive integers)."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, Integral) or s < 1:
                raise ValueError(f"hidden_layer_sizes must hold positive integers (must be > "
                                 f"0), got {self.hidden_layer_sizes!r}.")
        return [int(s) for s in sizes]

    def network_config(self, n_features, n_outputs, out_activation, dtype, hidden=None):
        """The :class:`~chainrule.models.MLP` configuration the hyperparameters give.

        Parameters
        ----------
        n_features, n_outputs : int
        out_activation : {'softmax', 'logistic', 'identity', 'exp'}
        dtype : numpy dtype
            The parameters' dtype when ``self.dtype`` is None (the data's).
        hidden : list of int, optional
            The hidden widths, when not ``hidden_layer_sizes``: a warm start keeps the
            widths of the network it continues (see :meth:`fitted_hidden_sizes`).

        Returns
        -------
        dict
            As ``MLP(**config).config``; :func:`chainrule.io.load` compares it with the
            stored network.
        """
        self._validate_params()
        hidden = self.hidden_sizes() if hidden is None else [int(s) for s in hidden]
        return {"layer_sizes": [int(n_features), *hidden, int(n_outputs)],
                "activation": self.activation, "dropout": self.dropout, "init": self.init,
                "dtype": np.dtype(dtype if self.dtype is None else self.dtype).name,
                "loss": OUT_ACTIVATIONS[out_activation]}

    def fitted_hidden_sizes(self):
        """The hidden widths of ``model_``, or None where they are ``hidden_layer_sizes``.

        They differ after ``set_params(hidden_layer_sizes=...)`` (the fitted network
        predicts until the next ``fit``), and after a warm-started ``fit`` or a
        ``partial_fit`` with as many hidden layers: scikit-learn then keeps training
        (and predicting with) the network it had, and so does this estimator.
        """
        check_is_fitted(self, "model_")
        fitted = self.model_.config["layer_sizes"][1:-1]
        return None if fitted == self.hidden_sizes() else fitted

    def _plain_input(self, X) -> bool:
        """Whether ``X`` is a non-empty 2-D real ndarray of the fitted width, for an
        estimator fitted without feature names: what ``validate_data`` passes as it is."""
        return (type(X) is np.ndarray and X.ndim == 2 and X.dtype.kind in "fiu"
                and X.shape[0] > 0 and X.shape[1] == self.n_features_in_
                and not hasattr(self, "feature_names_in_"))

    def sync_network(self):
        """Bring ``model_`` in line with ``activation``, ``dropout``, ``init`` and
        ``dtype``, keeping its parameters (cast to ``dtype`` when it is set); returns
        ``model_``.

        scikit-learn reads ``activation`` at every forward pass, so after
        ``set_params(activation=...)`` its fitted estimator predicts and trains with the
        new one: the network's activation layers (and dropout layers, and the
        parameters' dtype) follow the hyperparameters here too, before every fit,
        prediction and :func:`chainrule.io.save`. Nothing changes when they agree.
        """
        check_is_fitted(self, "model_")
        model = self.model_
        for layer, _ in model.layers:   # masks from this fit's generator
            if isinstance(layer, Dropout):
                layer.rng = self._random_state
        dtype = np.dtype(model.dtype if self.dtype is None else self.dtype)
        config = dict(model.config, activation=self.activation, dropout=float(self.dropout),
                      init=self.init, dtype=dtype.name)
        if config == model.config:
            return model
        self._validate_params()   # a value set after fit that fit would refuse
        # Built with zeros, which draw nothing from the estimator's generator (its
        # dropout layers draw their masks from it), then given the parameters.
        new = MLP(**dict(config, init="zeros"), rng=self._random_state)
        new.config["init"] = self.init   # the scheme the weights were drawn with
        if dtype == model.dtype:   # the same arrays: the optimizer's state stays theirs
            new.params = model.params
        else:
            new.params = {k: p.astype(dtype) for k, p in model.params.items()}
            optimizer = getattr(self, "optimizer_", None)
            if optimizer is not None:   # its state, for the new arrays
                optimizer.load_state_dict(optimizer.state_dict())
        set_training_loss(new)
        self.model_ = new
        return new

    def _check_hidden_sizes(self):
        """Refuse a warm start or partial_fit whose ``hidden_layer_sizes`` scikit-learn
        cannot continue either (another depth, or any change under L-BFGS, whose packed
        parameters follow hidden_layer_sizes): it fails there with an IndexError, an
        AttributeError or a reshape error."""
        fitted = self.fitted_hidden_sizes()
        if fitted is None:
            return
        if len(fitted) != len(self.hidden_sizes()) or self.solver == "lbfgs":
            raise ValueError(
                f"hidden_layer_sizes is {self.hidden_layer_sizes!r} but the fitted network "
                f"continued by warm_start or partial_fit has hidden layers {tuple(fitted)}; "
                f"it can keep training with other widths under a stochastic solver (as in "
                f"scikit-learn), not with {len(self.hidden_sizes())} hidden layers or "
                f"solver='lbfgs'. Set hidden_layer_sizes={tuple(fitted)} or fit with "
                f"warm_start=False")

    def reset_training_state(self):
        """Give the network a new optimizer and random generator, as :meth:`fit` does
        (:func:`chainrule.io.load` calls it: a model file holds no optimizer state).
        Returns ``self``."""
        if self.solver in STOCHASTIC_SOLVERS:
            self.optimizer_ = build_optimizer(self)
        self._random_state = check_random_state(self.random_state)
        set_training_loss(self.model_)
        return self

    def _batch_size(self, n):
        if self.batch_size == "auto":
            size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=user_stacklevel(SKLEARN_DIR))
            size = min(int(self.batch_size), n)
        return None if size >= n else size

    # -- fit ----------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, *, incremental, classes=None):
        # Nothing is left half-updated: on any failure the estimator's attributes and
        # the network's parameters go back to how they were.
        # (Lists such as loss_curve_ are extended in place: copied, not shared.)
        attributes = {k: list(v) if type(v) is list else v for k, v in vars(self).items()}
        model = getattr(self, "model_", None)
        saved = None if model is None else {k: v.copy() for k, v in model.params.items()}
        optimizer = getattr(self, "optimizer_", None)
        state = None if optimizer is None else (optimizer.state_dict(), copy.copy(
            getattr(optimizer.lr, "current", None)))
        shared = _shared_random_state(self.random_state)  # the caller's generator
        shared_state = None if shared is None else shared.get_state()
        try:
            return self._fit_unguarded(X, y, sample_weight, incremental, classes)
        except BaseException:
            if saved is not None:
                for k, v in saved.items():
                    model.params[k][...] = v
                model.clear_caches()
            if state is not None:  # the optimizer's state and its epoch rate
                optimizer.load_state_dict(state[0])
                if state[1] is not None:
                    optimizer.lr.current = state[1]
            if shared is not None:
                shared.set_state(shared_state)
            vars(self).clear()
            vars(self).update(attributes)
            raise

    def _fit_unguarded(self, X, y, sample_weight, incremental, classes):
        self._validate_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.solver == "lbfgs" and self.dropout > 0:
            raise ValueError(f"dropout={self.dropout!r} needs a stochastic solver ('adam', "
                             f"'sgd' or 'adamw'): solver='lbfgs' compares loss values in "
                             f"its line search, which dropout makes random; set dropout=0 "
                             f"for it")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        # scikit-learn's generator, taken at every fit and partial_fit (an int replays
        # the same draws each time, as there): the initial weights, the early-stopping
        # split, the epochs' row orders and the Dropout masks all come from it.
        self._random_state = check_random_state(self.random_state)
        if not first:
            self._check_hidden_sizes()
            self.sync_network()
        dtype = self.dtype if self.dtype is not None else (
            self.model_.dtype if not first else (np.float64, np.float32))
        X, y = validate_data(self, X, y, reset=first, accept_sparse=["csr", "csc"],
                             multi_output=True, dtype=dtype, y_numeric=not self._classifier)
        y = self._dense_targets(y, first)
        self.hidden_sizes()
        Y, out_activation, stratify = self._targets(X, y, first=first, classes=classes,
                                                    incremental=incremental)
        weights = self._row_weights(y, sample_weight, X)
        if first:
            self._initialize(X, Y, out_activation)
        elif Y.shape[1] != self.model_.n_outputs:
            raise ValueError(f"y has {Y.shape[1]} outputs but the network was fitted with "
                             f"{self.model_.n_outputs}")
        Y = Y.astype(self.model_.dtype, copy=False)
        if self.solver == "lbfgs":
            run_lbfgs(self, self.model_, *_drop_zero_weights(X, Y, weights))
            self.history_ = None   # the History of the last stochastic fit, none here
        else:
            self._fit_stochastic(X, Y, weights, stratify, incremental)
        self.model_.clear_caches()
        return self

    def _initialize(self, X, Y, out_activation):
        """A new network and scikit-learn's fresh fitted attributes."""
        config = self.network_config(X.shape[1], Y.shape[1], out_activation, X.dtype)
        # init='sklearn' draws scikit-learn's _init_coef values, layer by layer
        self.model_ = MLP(**config, rng=self._random_state)
        set_training_loss(self.model_)
        self.n_iter_, self.t_ = 0, 0
        self.history_ = None
        if self.solver in STOCHASTIC_SOLVERS:
            self._start_stochastic_record()

    def _start_stochastic_record(self):
        """The attributes only a stochastic solver keeps (scikit-learn's L-BFGS sets none
        of them: reading ``loss_curve_`` there is an AttributeError)."""
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _validation_split(self, X, Y, weights, stratify):
        """scikit-learn's early-stopping split (``ceil(fraction * n)`` rows, stratified
        for a binary classifier, with scikit-learn's errors)."""
        n = X.shape[0]
        n_val = math.ceil(self.validation_fraction * n)
        if 1 <= n_val < n:   # scikit-learn's own split, from its generator's draws
            train, val = train_test_split(np.arange(n), test_size=self.validation_fraction,
                                          random_state=self._random_state, stratify=stratify)
        if n_val >= n:   # (train_test_split's words)
            raise ValueError(f"With n_samples={n}, test_size={self.validation_fraction} and "
                             f"train_size=None, the resulting train set will be empty. Adjust "
                             f"any of the aforementioned parameters.")
        if n_val < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        validation = (X[val], Y[val], None if weights is None else weights[val])
        return X[train], Y[train], None if weights is None else weights[train], validation

    def _fit_stochastic(self, X, Y, weights, stratify, incremental):
        if not hasattr(self, "loss_curve_"):  # a warm start from an L-BFGS fit
            self._start_stochastic_record()
        # A warm start after set_params(early_stopping=...): the record the new setting
        # keeps starts here (scikit-learn fails on the missing one, AttributeError or
        # TypeError).
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
        if not incremental or getattr(self, "optimizer_", None) is None:
            self.optimizer_ = build_optimizer(self)
        validation = None
        if self.early_stopping:
            X, Y, weights, validation = self._validation_split(X, Y, weights, stratify)
        X, Y, weights = _drop_zero_weights(X, Y, weights)
        self.n_iter_ = 0
        history = run_stochastic(self, self.model_, X, Y, weights, validation=validation,
                                 batch_size=self._batch_size(X.shape[0]),
                                 random_state=self._random_state,
                                 incremental=incremental)
        self.history_ = history if history is not None else self.history_

    def _forward(self, X):
        self.sync_network()
        if self._plain_input(X):
            # The network's own checks (shape, finite values) are those validate_data
            # would make here; its ~60 us are most of a one-row prediction. Where they
            # refuse X, validate_data runs for scikit-learn's own message.
            try:
                logits = self.model_.infer(X)
            except ValueError:
                validate_data(self, X, reset=False, dtype="numeric")
                raise
            return logits.astype(np.result_type(X.dtype, self.model_.dtype), copy=False)
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype="numeric")
        # scikit-learn's outputs follow NumPy's promotion of X and coefs_ (float64 from
        # float32 coefs_ and float64 or integer X): the logits get that dtype before the
        # output function.
        dtype = np.result_type(X.dtype, self.model_.dtype)
        # In row chunks (Network.infer): the hidden activations of every row never
        # exist at once, whatever the number of rows; the logits are those of forward.
        return self.model_.infer(X).astype(dtype, copy=False)

