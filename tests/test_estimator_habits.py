"""A scikit-learn user's habits with the estimators: editing ``coefs_``, the argument
order of ``partial_fit``, ``predict`` against ``predict_proba`` at a tie, and model
files of weighted minibatch fits. scikit-learn's own MLP is the oracle where it has
the behaviour."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from chainrule import io
from chainrule.estimator import MLPClassifier, MLPRegressor


def _iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _fitted(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of a short fit
        return est.fit(X, y)


def test_assigning_coefs_and_intercepts_changes_the_predictions_as_in_sklearn():
    X, y = _iris()
    sk = _fitted(SkMLPClassifier((8,), max_iter=50, random_state=1), X, y)
    ours = _fitted(MLPClassifier((8,), max_iter=5, random_state=0), X, y)
    assert not np.allclose(ours.predict_proba(X), sk.predict_proba(X))
    # The whole lists: the same network, so scikit-learn's probabilities.
    ours.coefs_, ours.intercepts_ = sk.coefs_, sk.intercepts_
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    # One element, as sklearn users zero a layer: both change the same way.
    sk.coefs_[1] = np.zeros_like(sk.coefs_[1])
    ours.coefs_[1] = np.zeros_like(ours.coefs_[1])
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    assert np.all(ours.model_.params["W2"] == 0) and ours.coefs_[1] is ours.model_.params["W2"]


def test_a_bad_coefs_assignment_is_refused_and_changes_nothing():
    X, y = _iris()
    est = _fitted(MLPClassifier((8,), max_iter=5, random_state=0), X, y)
    before = {k: v.copy() for k, v in est.model_.params.items()}
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape \(3, 3\), but the layer's "
                                         r"array has shape \(8, 3\)"):
        est.coefs_ = [np.ones((4, 8)), np.ones((3, 3))]
    with pytest.raises(ValueError, match="coefs_ must hold 2 arrays, one per layer, got 1"):
        est.coefs_ = [np.ones((4, 8))]
    with pytest.raises(ValueError, match=r"intercepts_\[0\] holds NaN"):
        est.intercepts_[0] = np.full(8, np.nan)
    with pytest.raises(TypeError, match="one layer's index"):
        est.coefs_[0:1] = [np.ones((4, 8))]
    for k, v in before.items():
        np.testing.assert_array_equal(est.model_.params[k], v)


def test_partial_fit_takes_sklearns_argument_order():
    # scikit-learn: partial_fit(X, y, sample_weight=None, classes=None).
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    w = (np.arange(len(y)) % 2).astype(float)
    runs = []
    for call in (lambda e: e.partial_fit(X, y, w, [0, 1]),
                 lambda e: e.partial_fit(X, y, sample_weight=w, classes=[0, 1]),
                 lambda e: e.partial_fit(X, y, classes=[0, 1])):
        est = MLPClassifier((8,), random_state=0)
        call(est)
        runs.append(est.loss_)
    assert runs[0] == runs[1] != runs[2]
    # and scikit-learn's own estimator takes the same positional call
    sk = SkMLPClassifier((8,), random_state=0)
    sk.partial_fit(X, y, w, [0, 1])
    assert sk.classes_.tolist() == [0, 1]


def test_partial_fit_refuses_balanced_class_weights():
    X, y = _iris()
    est = MLPClassifier((4,), random_state=0, class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for "
                                         "partial_fit.*compute_class_weight"):
        est.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    assert not hasattr(est, "model_")
    _fitted(est, X, y)   # fit computes them from all of y, as scikit-learn's fit does


def test_binary_predict_agrees_with_predict_proba_at_a_tie():
    X, y = _iris()
    y = y == 1
    ours = _fitted(MLPClassifier((4,), max_iter=5, random_state=0), X, y)
    sk = _fitted(SkMLPClassifier((4,), max_iter=5, random_state=0), X, y)
    for est in (ours, sk):   # a logit of 1e-17: probabilities of exactly 0.5
        est.coefs_[-1] = np.zeros_like(est.coefs_[-1])
        est.intercepts_[-1] = np.full_like(est.intercepts_[-1], 1e-17)
    np.testing.assert_array_equal(ours.predict_proba(X[:3]), [[0.5, 0.5]] * 3)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    assert not ours.predict(X).any()


@pytest.mark.parametrize("make, weights", [
    (lambda: MLPClassifier((16,), max_iter=3, class_weight="balanced", random_state=0), None),
    (lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, batch_size=50, random_state=0),
     "rows")])
def test_a_weighted_minibatch_fit_round_trips_through_a_model_file(tmp_path, make, weights):
    # The History averages the batches' losses by weight, loss_curve_ (scikit-learn's)
    # by rows: the file keeps both, and loads.
    X, y = load_digits(return_X_y=True)   # 1797 rows: batches of 200 ('auto')
    y = y if weights is None else X[:, 20] + y
    w = None if weights is None else 1.0 + (np.arange(len(y)) % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X, y, sample_weight=w)
    assert est.history_["loss"] != est.loss_curve_   # the two averages differ
    io.save(est, tmp_path / "e.npz")
    back = io.load(tmp_path / "e.npz")
    assert back.loss_curve_ == est.loss_curve_ and back.history_["loss"] == est.history_["loss"]
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_an_early_stopping_fit_that_diverges_says_so():
    from sklearn.datasets import load_diabetes
    from sklearn.exceptions import ConvergenceWarning

    X, y = load_diabetes(return_X_y=True)
    est = MLPRegressor(solver="sgd", learning_rate_init=10.0, early_stopping=True,
                       hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    with warnings.catch_warnings(), pytest.warns(ConvergenceWarning, match=(
            r"Training diverged in epoch \d+ \(the loss became NaN or infinite")):
        warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's overflow on the way
        est.fit(X * 1e3, y)
    assert np.isnan(est.loss_curve_[-1]) and np.isnan(est.validation_scores_[-1])
    assert all(np.isfinite(p).all() for p in est.coefs_)   # the best weights are kept


def test_a_hyperparameter_fit_would_refuse_is_refused_at_predict_too():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = _iris()
    est = _fitted(MLPClassifier((8,), max_iter=5, random_state=0), X, y)
    est.set_params(activation="gelu")
    with pytest.raises(InvalidParameterError, match="'activation' parameter"):
        est.predict_proba(X[:1])
    est.set_params(activation="tanh")   # a valid one is followed, as scikit-learn does
    sk = _fitted(SkMLPClassifier((8,), max_iter=5, random_state=0), X, y)
    sk.set_params(activation="tanh")
    est.coefs_, est.intercepts_ = sk.coefs_, sk.intercepts_
    np.testing.assert_allclose(est.predict_proba(X), sk.predict_proba(X), rtol=1e-12)


def test_a_class_weight_dict_with_a_multilabel_y_says_what_works():
    X, y = _iris()
    Y = np.c_[y == 0, y == 1, y == 2].astype(int)
    with pytest.raises(ValueError, match=r"y is multilabel \(3 indicator columns\): give "
                                         r"class_weight='balanced'"):
        MLPClassifier((4,), max_iter=2, class_weight={0: 2.0}).fit(X, Y)
    _fitted(MLPClassifier((4,), max_iter=2, class_weight="balanced", random_state=0), X, Y)


def test_the_classifier_names_its_loss_as_sklearn_does():
    assert MLPClassifier().loss == SkMLPClassifier().loss == "log_loss"
    assert "loss" not in MLPClassifier().get_params()   # an attribute, not a parameter


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32"), "float32"])
def test_dtype_takes_numpys_spellings_and_files_store_the_name(tmp_path, dtype):
    X, y = _iris()
    est = _fitted(MLPClassifier((8,), max_iter=3, dtype=dtype, random_state=0), X, y)
    assert est.model_.dtype == np.float32   # float64 X, float32 parameters as asked
    io.save(est, tmp_path / "e.npz")
    back = io.load(tmp_path / "e.npz")
    assert back.get_params()["dtype"] == "float32"
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def _sparse_multilabel(n=60):
    from sklearn.preprocessing import MultiLabelBinarizer

    rng = np.random.RandomState(0)
    X = rng.rand(n, 5)
    sets = [set(rng.choice(list("abc"), rng.randint(1, 3), replace=False)) for _ in range(n)]
    return X, MultiLabelBinarizer(sparse_output=True).fit_transform(sets)


def test_a_sparse_multilabel_y_fits_and_predicts_in_csr_as_in_sklearn(tmp_path):
    from scipy.sparse import csr_matrix

    X, Y = _sparse_multilabel()
    sk = _fitted(SkMLPClassifier((4,), max_iter=5, random_state=0), X, Y)
    ours = _fitted(MLPClassifier((4,), max_iter=5, random_state=0), X, Y)
    assert isinstance(sk.predict(X), csr_matrix) and isinstance(ours.predict(X), csr_matrix)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-10)
    assert (ours.predict(X) != sk.predict(X)).nnz == 0
    assert ours.score(X, Y) == sk.score(X, Y)
    io.save(ours, tmp_path / "m.npz")
    loaded = io.load(tmp_path / "m.npz")
    assert isinstance(loaded.predict(X), csr_matrix)
    assert (loaded.predict(X) != ours.predict(X)).nnz == 0
    # A dense y gives dense predictions, as before.
    dense = _fitted(MLPClassifier((4,), max_iter=5, random_state=0), X, Y.toarray())
    assert isinstance(dense.predict(X), np.ndarray)
    io.save(dense, tmp_path / "d.npz")
    assert isinstance(io.load(tmp_path / "d.npz").predict(X), np.ndarray)


@pytest.mark.parametrize("first, then", [("squared_error", "poisson"),
                                         ("poisson", "squared_error")])
def test_a_warm_start_under_another_loss_is_refused_and_changes_nothing(first, then):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.uniform(0.5, 2.0, 40)
    est = _fitted(MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0, warm_start=True,
                               loss=first), X, y)
    before, loss = est.predict(X), est.loss_
    est.set_params(loss=then)
    with pytest.raises(ValueError, match=f"loss is '{then}' but the network continued by "
                                         f"warm_start or partial_fit was fitted with "
                                         f"loss='{first}'"):
        est.fit(X, y)
    with pytest.raises(ValueError, match="was fitted with"):
        est.partial_fit(X, y)
    est.set_params(loss=first)
    assert np.array_equal(est.predict(X), before) and est.loss_ == loss
    _fitted(est, X, y)   # the fitted loss trains on
    assert not np.array_equal(est.predict(X), before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_a_plain_array_predicts_as_through_validate_data(dtype, monkeypatch):
    # A plain ndarray skips scikit-learn's validate_data (most of a one-row prediction):
    # the same outputs, the same errors, the same warnings as the full path.
    import pandas as pd

    X, y = _iris()
    est = _fitted(MLPClassifier((8,), max_iter=5, random_state=0), X, y)
    rows = (X[:7] * 3).astype(dtype)
    assert est._plain_input(rows)
    fast = est.predict_proba(rows)
    with monkeypatch.context() as patch:   # the validate_data path
        patch.setattr(type(est), "_plain_input", lambda self, X: False)
        full = est.predict_proba(rows)
    np.testing.assert_array_equal(fast, full)
    assert fast.dtype == full.dtype == np.result_type(rows.dtype, est.model_.dtype)
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(bad)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        est.predict(X[:, :3])
    named = _fitted(MLPClassifier((8,), max_iter=5, random_state=0),
                    pd.DataFrame(X, columns=list("abcd")), y)
    assert not named._plain_input(X[:2])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        named.predict(X[:2])


def test_an_estimators_network_saves_as_an_mlp(tmp_path):
    # est.model_ trains on scikit-learn's loss values; saved alone it is the MLP with
    # the loss that value derives from, predicting the same.
    X, y = _iris()
    est = _fitted(MLPClassifier((8,), max_iter=5, random_state=0), X, y)
    io.save(est.model_, tmp_path / "net.npz")
    net = io.load(tmp_path / "net.npz")
    assert type(net).__name__ == "MLP" and type(net.loss).__name__ == "CategoricalCrossEntropy"
    np.testing.assert_array_equal(net.predict_proba(X), est.predict_proba(X))
    assert type(est.model_.loss).__name__ != "CategoricalCrossEntropy"   # est unchanged
