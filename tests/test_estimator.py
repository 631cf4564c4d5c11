"""chainrule.estimator: scikit-learn's own estimator checks, plus the behaviour the
checks do not pin down (labels, weights, partial_fit, pipelines, files).

Oracles: scikit-learn's check suite; exact equivalences (a relabelled problem, a row
weight of 2 versus a repeated row, zero weights versus removed rows, partial_fit epochs
versus fit epochs) that hold by construction of a deterministic full-batch run; and the
weights formula of class_weight='balanced' restated here.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from unittest import SkipTest

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from chainrule.estimator import MLPClassifier, MLPRegressor
from conftest import same_start_as_sklearn

# Small, fast settings for the check suite: a full batch for the small data sets of the
# checks (batch_size='auto' is min(200, n)), a learning rate high enough that 50 epochs
# of Adam pass the checks' accuracy thresholds (check_classifiers_train wants > 0.83,
# check_regressors_train an R^2 > 0.5).
CHECKED = [MLPClassifier((8,), learning_rate_init=0.05, max_iter=50, random_state=0),
           MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.05, max_iter=50,
                        random_state=0)]


# No check is skipped or expected to fail (expected_failed_checks is empty). scikit-learn
# itself skips two kinds of check when the environment lacks something; neither is
# allowed to pass silently here:
# * the pandas checks (check_sample_weights_pandas_series, check_*_data_not_an_array)
#   need pandas, which the test extras install: a SkipTest for them fails the test;
# * check_array_api_input needs SCIPY_ARRAY_API=1 set before SciPy is first imported,
#   which a shared pytest process cannot guarantee, so it runs in a fresh interpreter.
# One check skips itself for any classifier without decision_function, scikit-learn's
# MLPClassifier included (check_classifiers_multilabel_output_format_decision_function):
# that skip is allowed, as it says why.
NO_DECISION_FUNCTION = "does not have a decision_function method"


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda est: {})
def test_sklearn_estimator_checks(estimator, check):
    try:
        check(estimator)
    except SkipTest as exc:
        if "SCIPY_ARRAY_API" in str(exc):
            _run_array_api_checks(estimator)
        elif NO_DECISION_FUNCTION in str(exc) and not hasattr(estimator, "decision_function"):
            pass
        else:
            pytest.fail(f"scikit-learn skipped a check on {estimator!r}: {exc}")


_ARRAY_API_SCRIPT = """
import sys
from unittest import SkipTest
from sklearn.utils.estimator_checks import estimator_checks_generator
from chainrule.estimator import MLPClassifier, MLPRegressor
est = {est}
ran = 0
for estimator, check in estimator_checks_generator(est, legacy=True):
    name = getattr(check, "func", check)
    while hasattr(name, "func"):
        name = name.func
    if name.__name__.startswith("check_array_api"):
        check(estimator)
        ran += 1
print("array-api checks run:", ran)
sys.exit(0 if ran else 3)
"""


def _run_array_api_checks(estimator):
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-c", _ARRAY_API_SCRIPT.format(est=repr(estimator))],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


# -- data -------------------------------------------------------------------------------
def _blobs(n=120, centers=3, seed=0, std=1.5):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=4, cluster_std=std,
                      random_state=seed)
    return StandardScaler().fit_transform(X), y


def _full_batch(cls=MLPClassifier, **kw):
    """Deterministic settings: one full batch per epoch (no shuffling: batch_size 'auto'
    is the whole of these <= 200-row data sets), no dropout, no early stop on tol."""
    params = dict(hidden_layer_sizes=(6,), learning_rate_init=0.02, max_iter=30, tol=0.0,
                  n_iter_no_change=np.inf, random_state=3)
    params.update(kw)
    return cls(**params)


# -- labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["bird", "cat", "dog"]), np.array([-7, 3, 100]),
                                    np.array([1.0, 2.0, 5.0])])
def test_any_label_type_is_a_relabelling(labels):
    # classes_ is sorted, so class k of the encoded problem is labels[k]; the network
    # must then be trained on exactly the same one-hot targets.
    X, y = _blobs()
    ref = _full_batch().fit(X, y)
    est = _full_batch().fit(X, labels[y])
    np.testing.assert_array_equal(est.classes_, labels)
    np.testing.assert_array_equal(est.predict_proba(X), ref.predict_proba(X))
    np.testing.assert_array_equal(est.predict(X), labels[ref.predict(X)])
    assert est.score(X, labels[y]) == ref.score(X, y) > 0.9


def test_string_labels_predict_strings_and_probabilities_follow_classes():
    X, y = _blobs(centers=3)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)
    est = MLPClassifier((8,), learning_rate_init=0.02, max_iter=60, random_state=0).fit(X, names[y])
    pred = est.predict(X)
    # As scikit-learn's: string labels (an object array too) give str classes_ and labels.
    assert pred.dtype.kind == est.classes_.dtype.kind == "U" and set(pred) <= set(names)
    proba = est.predict_proba(X)
    np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-10, atol=1e-12)
    assert est.score(X, names[y]) > 0.9


def test_binary_uses_one_logistic_output_and_two_probability_columns():
    # scikit-learn's layout: coefs_[-1] has one column, out_activation_ 'logistic',
    # predict_proba [1 - p, p] computed as [sigmoid(-z), sigmoid(z)].
    from chainrule.functional import sigmoid

    X, y = _blobs(centers=2, std=1.0)
    words = np.array(["no", "yes"])
    est = MLPClassifier((4,), learning_rate_init=0.05, max_iter=40, random_state=0).fit(X, words[y])
    proba = est.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    assert est.model_.n_outputs == 1 == est.n_outputs_ and est.coefs_[-1].shape == (4, 1)
    assert est.out_activation_ == "logistic"
    z = est.model_.forward(X)[:, 0]
    np.testing.assert_array_equal(proba[:, 1], sigmoid(z))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert est.score(X, words[y]) == 1.0  # two well separated blobs


def test_a_single_class_always_predicts_it():
    # scikit-learn fits one class (its LabelBinarizer gives all-zero targets).
    X, _ = _blobs()
    est = MLPClassifier(max_iter=5).fit(X, np.full(X.shape[0], "only"))
    assert list(est.classes_) == ["only"] and set(est.predict(X)) == {"only"}


# -- weights ------------------------------------------------------------------------------
def test_zero_weights_equal_removing_rows():
    X, y = _blobs(n=90)
    w = np.ones(len(y))
    w[::3] = 0
    keep = w > 0
    for cls, target in [(MLPClassifier, y), (MLPRegressor, X[:, 0] - 2 * X[:, 1])]:
        a = _full_batch(cls).fit(X, target, sample_weight=w)
        b = _full_batch(cls).fit(X[keep], target[keep])
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)


def test_zero_weights_equal_removing_rows_with_minibatches():
    # Removed rows take no place in the minibatches, so even shuffled minibatch
    # training gives the same model as training without them.
    X, y = _blobs(n=90)
    w = np.where(np.arange(len(y)) % 4 == 0, 0.0, 1.0)
    keep = w > 0
    a = _full_batch(batch_size=8).fit(X, y, sample_weight=w)
    b = _full_batch(batch_size=8).fit(X[keep], y[keep])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-10)


def test_integer_weights_equal_repeated_rows():
    X, y = _blobs(n=60)
    reps = np.random.default_rng(0).integers(1, 4, size=len(y))
    a = _full_batch().fit(X, y, sample_weight=reps)
    b = _full_batch().fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_class_weight_dict_multiplies_sample_weight():
    X, y = _blobs()
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a = _full_batch(class_weight=cw).fit(X, y, sample_weight=sw)
    b = _full_batch().fit(X, y, sample_weight=sw * np.array([1.0, 3.0, 0.5])[y])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_class_weight_balanced_formula():
    X, y = _blobs(n=150)
    X, y = X[y != 2][:70], y[y != 2][:70]  # make it unbalanced
    X, y = np.vstack([X, X[y == 0][:5]]), np.concatenate([y, y[y == 0][:5]])
    counts = np.bincount(y)
    assert counts[0] != counts[1]
    # 'balanced': n_samples / (n_classes * count(class)), restated.
    balanced = len(y) / (2 * counts)
    a = _full_batch(class_weight="balanced").fit(X, y)
    b = _full_batch().fit(X, y, sample_weight=balanced[y])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-12)


def test_a_heavily_weighted_class_is_predicted_more():
    X, y = _blobs(n=300, centers=2, std=8.0, seed=2)  # strongly overlapping blobs
    plain = MLPClassifier((8,), learning_rate_init=0.02, max_iter=60, random_state=0).fit(X, y)
    heavy = clone(plain).set_params(class_weight={0: 1.0, 1: 20.0}).fit(X, y)
    share_plain = np.mean(plain.predict(X) == 1)
    share_heavy = np.mean(heavy.predict(X) == 1)
    assert share_heavy > share_plain + 0.2, (share_plain, share_heavy)


# -- partial_fit ------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_partial_fit_epochs_equal_fit_epochs(optimizer):
    # Same seed, full batch: k partial_fit calls must continue the same optimizer
    # (Adam's moments, SGD's momentum) and give the network of fit(epochs=k).
    X, y = _blobs()
    kw = dict(solver=optimizer, learning_rate_init=0.01)
    ref = _full_batch(max_iter=5, **kw).fit(X, y)
    est = _full_batch(**kw)
    for _ in range(5):
        est.partial_fit(X, y, classes=[0, 1, 2])
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 5  # scikit-learn: per call
    for k, v in ref.model_.params.items():
        np.testing.assert_array_equal(est.model_.params[k], v)
    np.testing.assert_array_equal(est.loss_curve_, ref.loss_curve_)


def test_partial_fit_lowers_the_loss_and_checks_its_inputs():
    X, y = _blobs()
    est = MLPClassifier((8,), learning_rate_init=0.01, batch_size=16, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X, y)
    for _ in range(15):
        est.partial_fit(X, y, classes=np.array([0, 1, 2]))
    assert len(est.loss_curve_) == 15
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X[:3], np.array([0, 1, 5]))
    with pytest.raises(ValueError, match="is not the same as on last call"):
        est.partial_fit(X, y, classes=[0, 1])
    before = {k: v.copy() for k, v in est.model_.params.items()}
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :3], y)
    for k, v in before.items():  # nothing changed by the failed calls
        np.testing.assert_array_equal(est.model_.params[k], v)
    assert len(est.loss_curve_) == 15


def test_regressor_partial_fit_and_multi_output():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 0]])
    reg = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.02, max_iter=200,
                       random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (100, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.95
    one = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.02, random_state=0)
    for _ in range(30):
        one.partial_fit(X, Y[:, 0])
    assert one.predict(X).shape == (100,) and one.n_outputs_ == 1
    assert one.loss_curve_[-1] < 0.2 * one.loss_curve_[0]


# -- failure leaves the estimator as it was ----------------------------------------------------
def test_failed_fit_leaves_the_previous_model():
    X, y = _blobs()
    est = _full_batch().fit(X, y)
    proba = est.predict_proba(X)
    # Both failures come after validate_data has already read the new X (3 features).
    with pytest.raises(ValueError, match="non-zero"):
        est.fit(X[:, :3], y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="positive sum"):
        est.set_params(class_weight={0: 0.0, 1: 0.0, 2: 0.0}).fit(X[:, :3], y)
    assert est.n_features_in_ == 4
    np.testing.assert_array_equal(est.predict_proba(X), proba)


# -- hyperparameters ------------------------------------------------------------------------
@pytest.mark.parametrize("param, value", [
    ("learning_rate_init", -1.0), ("learning_rate_init", 0), ("activation", "swish"),
    ("learning_rate", 0.01), ("solver", "rmsprop"), ("batch_size", 0), ("max_iter", 0),
    ("dropout", 1.0), ("validation_fraction", 1.0), ("momentum", 1.5), ("dtype", "float16"),
    ("init", "zeros"), ("n_iter_no_change", 0), ("alpha", -0.1), ("max_fun", 0),
    ("beta_1", 1.0), ("epsilon", 0.0), ("power_t", -1.0),
    ("class_weight", "auto"), ("hidden_layer_sizes", "wide"),
])
def test_bad_hyperparameters_raise_invalid_parameter_error(param, value):
    X, y = _blobs(n=30)
    est = MLPClassifier(**{param: value})  # __init__ only stores
    assert est.get_params()[param] == value
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter") as info:
        est.fit(X, y)
    assert isinstance(info.value, ValueError)
    assert not hasattr(est, "model_")


@pytest.mark.parametrize("sizes", [(0,), (4, -1), (2.5,)])
def test_bad_hidden_layer_sizes_entries(sizes):
    X, y = _blobs(n=30)
    with pytest.raises(ValueError, match="hidden_layer_sizes must hold positive integers"):
        MLPRegressor(hidden_layer_sizes=sizes).fit(X, y.astype(float))


def test_hidden_layer_sizes_forms():
    X, y = _blobs(n=30)
    assert [k for k in MLPClassifier(()).fit(X, y).model_.params] == ["W", "b"]
    assert MLPClassifier(5, max_iter=2).fit(X, y).model_.params["W1"].shape == (4, 5)
    assert MLPClassifier([3, 2], max_iter=2).fit(X, y).model_.params["W2"].shape == (3, 2)


# -- settings reach the network and the loop ------------------------------------------------
def test_settings_reach_the_network():
    X, y = _blobs()
    est = MLPClassifier((5, 4), activation="tanh", dropout=0.2, dtype="float32",
                        solver="sgd", momentum=0.5, nesterovs_momentum=False, max_iter=3,
                        random_state=0).fit(X, y)
    net = est.model_
    assert net.config["layer_sizes"] == [4, 5, 4, 3]
    assert net.config["activation"] == "tanh" and net.config["dropout"] == 0.2
    assert all(p.dtype == np.float32 for p in net.params.values())
    # (outputs: NumPy's promotion of X and the parameters, as in scikit-learn)
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert est.predict_proba(X).dtype == np.float64
    assert type(est.optimizer_).__name__ == "SklearnSGD"
    assert (est.optimizer_.momentum, est.optimizer_.nesterov) == (0.5, False)
    assert est.n_iter_ == 3 == est.history_.epochs


def test_random_state_makes_fit_repeatable():
    X, y = _blobs()
    a = MLPClassifier((8,), batch_size=10, dropout=0.1, max_iter=5, random_state=7).fit(X, y)
    b = MLPClassifier((8,), batch_size=10, dropout=0.1, max_iter=5, random_state=7).fit(X, y)
    c = MLPClassifier((8,), batch_size=10, dropout=0.1, max_iter=5, random_state=8).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_early_stopping_stops_and_keeps_the_best_weights():
    X, y = _blobs(n=200, centers=2, std=5.0, seed=1)  # noisy: the validation loss turns up
    est = MLPClassifier((64,), learning_rate_init=0.05, max_iter=500, early_stopping=True,
                        n_iter_no_change=5, validation_fraction=0.2, random_state=0).fit(X, y)
    # scikit-learn's rule: stop when the validation accuracy has not risen by tol for
    # more than n_iter_no_change epochs, then go back to the best weights.
    scores = est.validation_scores_
    assert est.history_.stop_reason == "callback" and est.n_iter_ < 500
    assert len(scores) == est.n_iter_ and est.best_validation_score_ == max(scores)
    assert est.best_loss_ is None
    best = int(np.argmax(scores))
    assert est.n_iter_ - 1 - best >= 5
    X_val_score = est.best_validation_score_
    assert 0 < X_val_score <= 1


@pytest.mark.parametrize("n, fraction", [(2, 0.9), (1, 0.1), (30, 0.02)])
def test_early_stopping_needs_rows_left_to_train_on(n, fraction):
    """The error scikit-learn gives: an empty training set (every row would go to the
    validation set) is said so, not that the validation set is too small."""
    from sklearn.neural_network import MLPRegressor as SkMLP

    X, y = _blobs(n=30)
    messages = []
    for cls in (SkMLP, MLPRegressor):
        with pytest.raises(ValueError) as info:
            cls(hidden_layer_sizes=(3,), early_stopping=True,
                validation_fraction=fraction).fit(X[:n], y[:n])
        messages.append(str(info.value))
    assert messages[1] == messages[0]
    assert ("train set will be empty" if n < 30 else "validation set is too small") \
        in messages[1]


def test_network_config_is_the_network_fit_builds():
    X, y = _blobs()
    est = MLPClassifier((5, 4), activation="tanh", dtype="float32", max_iter=2,
                        random_state=0).fit(X, y)
    assert est.network_config(4, 3, "softmax", np.float64) == est.model_.config
    assert est.out_activation_ == "softmax"
    with pytest.raises(ValueError, match="'activation' parameter"):
        MLPClassifier(activation="swish").network_config(4, 3, "softmax", np.float64)


def test_reset_training_state_gives_a_fresh_optimizer_and_generator():
    X, y = _blobs()
    est = _full_batch(max_iter=3).fit(X, y)
    trained = est.optimizer_
    assert est.reset_training_state() is est
    assert est.optimizer_ is not trained and type(est.optimizer_) is type(trained)


def test_feature_names_in_from_a_dataframe():
    import pandas as pd  # in the test extras; see the note at the top
    X, y = _blobs(n=40)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = MLPClassifier((4,), max_iter=3, random_state=0).fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df[["d", "c", "b", "a"]])


# -- scikit-learn tools -----------------------------------------------------------------------
def test_digits_pipeline_accuracy():
    # The quality figure: the homework's digits split, standardised inside a Pipeline.
    from chainrule.data import load_homework_digits

    X_train, X_test, Y_train, Y_test = load_homework_digits()
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier((64,), learning_rate_init=2e-3, batch_size=32,
                                           max_iter=20,
                                           random_state=0))])
    pipe.fit(X_train, Y_train.argmax(axis=1))
    assert pipe.score(X_test, Y_test.argmax(axis=1)) >= 0.95


@pytest.mark.slow
def test_grid_search_in_two_processes_matches_one():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(learning_rate_init=0.02, max_iter=40, random_state=0))])
    grid = {"mlp__hidden_layer_sizes": [(2,), (16,)], "mlp__activation": ["relu", "tanh"]}
    two = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    one = GridSearchCV(pipe, grid, cv=3, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(two.cv_results_["mean_test_score"],
                                  one.cv_results_["mean_test_score"])
    assert two.best_score_ > 0.9
    assert two.best_params_["mlp__hidden_layer_sizes"] == (16,)


def test_pickle_round_trip():
    X, y = _blobs()
    est = _full_batch().fit(X, np.array(["a", "b", "c"])[y])
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


# -- model files (chainrule.io) ------------------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["no", "maybe", "yes"], dtype=object),
                                    np.array([10, 20, 30])])
def test_save_load_round_trip_classifier(tmp_path, labels):
    import pandas as pd

    from chainrule.io import load, save

    X, y = _blobs()
    df = pd.DataFrame(X, columns=["w", "x", "y", "z"])
    est = MLPClassifier((6,), max_iter=10, random_state=0,
                        class_weight={labels[0]: 2.0}).fit(df, labels[y])
    save(est, tmp_path / "clf.npz")
    back = load(tmp_path / "clf.npz")
    assert type(back) is MLPClassifier
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.classes_, est.classes_)
    assert back.classes_.dtype == est.classes_.dtype
    np.testing.assert_array_equal(back.feature_names_in_, est.feature_names_in_)
    assert back.n_features_in_ == 4 and back.n_iter_ == 10 and back.t_ == est.t_
    np.testing.assert_array_equal(back.predict_proba(df), est.predict_proba(df))
    np.testing.assert_array_equal(back.predict(df), est.predict(df))
    assert back.history_["loss"] == est.history_["loss"]
    back.partial_fit(df, labels[y])  # a loaded estimator keeps training
    assert len(back.loss_curve_) == 11 and back.t_ == 11 * len(y)


def test_save_load_round_trip_regressor(tmp_path):
    from chainrule.io import load, save

    X, y = _blobs()
    Y = np.column_stack([X[:, 0], X[:, 1] * 2])
    for target in (Y, Y[:, 0]):
        est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, dtype="float32",
                           random_state=0).fit(X, target)
        save(est, tmp_path / "reg.npz")
        back = load(tmp_path / "reg.npz")
        assert back.predict(X).shape == est.predict(X).shape
        np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_a_loaded_estimators_dropout_draws_from_its_random_state(tmp_path):
    # Loading rebuilds the network; its Dropout masks then come from the estimator's
    # random_state at the next fit, not from NumPy's global generator: two loads
    # continue alike however the global generator was used in between.
    from chainrule.io import load, save

    X, y = _blobs()
    est = MLPClassifier((8,), dropout=0.3, max_iter=3, random_state=0).fit(X, y)
    save(est, tmp_path / "drop.npz")
    continued = []
    for seed in (1, 2):
        np.random.seed(seed)
        back = load(tmp_path / "drop.npz")
        back.partial_fit(X, y)
        continued.append(back.coefs_[0])
    np.testing.assert_array_equal(*continued)


def test_load_refuses_an_inconsistent_estimator_file(tmp_path):
    from chainrule._fileformat import ModelFileError, read_archive, write_archive
    from chainrule.io import load, save

    X, y = _blobs()
    save(_full_batch(max_iter=2).fit(X, y), tmp_path / "ok.npz")
    arrays, meta = read_archive(tmp_path / "ok.npz")
    arrays["classes_"] = np.array([0, 1, 2, 3])  # four labels for a three-output network
    write_archive(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(ModelFileError, match="classes_"):
        load(tmp_path / "bad.npz")


# A file can be edited and its checksum recomputed (the checksum guards against damage,
# not against edits), so load cross-checks every fitted attribute against the
# hyperparameters and the stored network. Each edit below leaves a valid checksum.
def _set(path):
    """An edit that sets ``meta['config'][path[0]][path[1]]... = value``."""
    def edit(value):
        def apply(arrays, meta):
            node = meta["config"]
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return apply
    return edit


def _set_array(name, value):
    def apply(arrays, meta):
        arrays[name] = value
    return apply


def _drop_array(name):
    def apply(arrays, meta):
        del arrays[name]
    return apply


_PARAM = lambda name: _set(["params", name])  # noqa: E731
_NET = lambda name: _set(["model_", "config", name])  # noqa: E731

CLASSIFIER_EDITS = {
    "hidden_layer_sizes [7, 7] for one layer of 5": (_PARAM("hidden_layer_sizes")([7, 7]),
                                                     "hidden_layer_sizes"),
    "hidden_layer_sizes [6] for one layer of 5": (_PARAM("hidden_layer_sizes")([6]),
                                                  "hidden_layer_sizes"),
    "dtype float32 with float64 arrays": (_PARAM("dtype")("float32"), "dtype"),
    "activation tanh with a relu network": (_PARAM("activation")("tanh"), "activation"),
    "dropout 0.5 with a network without dropout": (_PARAM("dropout")(0.5), "dropout"),
    "init he with a xavier network": (_PARAM("init")("he"), "init"),
    "mse loss inside a classifier": (_NET("loss")("mse"), "loss"),
    "a missing hyperparameter": (lambda a, m: m["config"]["params"].pop("tol"), "tol"),
    "an unknown hyperparameter": (_PARAM("colour")("blue"), "colour"),
    "duplicate classes_": (_set_array("classes_", np.array(["a", "a", "b"])), "classes_"),
    "unsorted classes_": (_set_array("classes_", np.array([3, 1, 2])), "classes_"),
    "2-D classes_": (_set_array("classes_", np.array([[0, 1, 2]])), "classes_"),
    "classes_ shorter than the outputs": (_set_array("classes_", np.array([0, 1])),
                                          "classes_"),
    "complex classes_": (_set_array("classes_", np.array([0j, 1j, 2j])), "classes_"),
    "n_features_in_ 5 for 4 inputs": (_set(["n_features_in_"])(5), "n_features_in_"),
    "n_features_in_ as a string": (_set(["n_features_in_"])("4"), "n_features_in_"),
    "n_features_in_ as a float": (_set(["n_features_in_"])(4.0), "n_features_in_"),
    "three feature names for four inputs": (
        _set_array("feature_names_in_", np.array(["a", "b", "c"])), "feature_names_in_"),
    "numeric feature names": (_set_array("feature_names_in_", np.arange(4)),
                              "feature_names_in_"),
    "negative t_": (_set(["t_"])(-1), "t_"),
    "out_activation_ logistic for three classes": (_set(["out_activation_"])("logistic"),
                                                    "its loss is .cross_entropy."),
    "negative n_iter_": (_set(["n_iter_"])(-1), "n_iter_"),
    "loss_ not the last loss": (_set(["loss_"])(123.0), "loss_"),
    "loss_ a string": (_set(["loss_"])("low"), "loss_"),
    "loss_curve_ of strings": (_set(["loss_curve_"])(["a", "b", "c"]), "loss_curve_"),
    "history_ a list in place of the dict": (
        _set(["history_", "history"])([1]), "history"),
    "history_ without loss": (_set(["history_", "history"])({"lr": [0.1, 0.1, 0.1]}),
                              "loss"),
    "history_ lists of unequal length": (
        _set(["history_", "history", "lr"])([0.1]), "lr"),
    # (history_'s losses need not be loss_curve_'s: a weighted minibatch fit averages
    # them by weight and by rows; tests/test_estimator_habits.py)
    "history_ best_epoch out of range": (_set(["history_", "best_epoch"])(3), "best_epoch"),
    "history_ unknown stop_reason": (_set(["history_", "stop_reason"])("bored"),
                                     "stop_reason"),
    "history_ diagnostics not a list": (_set(["history_", "diagnostics"])(5), "diagnostics"),
    "history_ a number": (_set(["history_"])(5), "history_"),
    "history_ missing": (lambda a, m: m["config"].pop("history_"), "history_"),
    "an unexpected config entry": (_set(["extra"])(1), "extra"),
    "fitted_hidden_layer_sizes equal to hidden_layer_sizes": (
        _set(["fitted_hidden_layer_sizes"])([5]), "fitted_hidden_layer_sizes"),
    "fitted_hidden_layer_sizes of another network": (
        _set(["fitted_hidden_layer_sizes"])([7]), "layer_sizes"),
    "fitted_hidden_layer_sizes of another depth": (
        _set(["fitted_hidden_layer_sizes"])([5, 5]), "fitted_hidden_layer_sizes"),
    "sparse_y for a multiclass classifier": (_set(["sparse_y"])(True), "sparse_y"),
    "class_weight arrays without a class_weight dict": (
        _set_array("class_weight_labels", np.array([0])), "class_weight"),
    "a class_weight dict stored as JSON": (_PARAM("class_weight")({"0": 2.0}),
                                           "class_weight"),
}


def _edited_file(tmp_path, est, X, y, edit):
    from chainrule._fileformat import read_archive, write_archive
    from chainrule.io import save

    est.fit(X, y)
    save(est, tmp_path / "ok.npz")
    arrays, meta = read_archive(tmp_path / "ok.npz")
    edit(arrays, meta)
    write_archive(tmp_path / "edited.npz", arrays, meta)  # a valid checksum
    return tmp_path / "edited.npz"


def _three_class_frame():
    import pandas as pd

    X, y = _blobs()
    return pd.DataFrame(X, columns=["w", "x", "y", "z"]), y


@pytest.mark.parametrize("what", list(CLASSIFIER_EDITS))
def test_load_cross_checks_a_classifier_file(tmp_path, what):
    from chainrule._fileformat import ModelFileError
    from chainrule.io import load

    edit, named = CLASSIFIER_EDITS[what]
    df, y = _three_class_frame()
    path = _edited_file(tmp_path, _full_batch(hidden_layer_sizes=(5,), max_iter=3), df, y, edit)
    load(tmp_path / "ok.npz")  # the unedited file loads
    with pytest.raises(ModelFileError, match=named) as info:
        load(path)
    assert "edited.npz" in str(info.value)


CLASS_WEIGHT_EDITS = {
    "class_weight labels missing": (_drop_array("class_weight_labels"), "class_weight"),
    "class_weight values of another length": (
        _set_array("class_weight_values", np.array([2.0, 3.0])), "class_weight"),
    "a negative class weight": (_set_array("class_weight_values", np.array([-2.0])),
                                "class_weight"),
    "a class weight for a label not in classes_": (
        _set_array("class_weight_labels", np.array([7])), "class_weight"),
    "class_weight dict stored as None": (_PARAM("class_weight")(None), "class_weight"),
}


@pytest.mark.parametrize("what", list(CLASS_WEIGHT_EDITS))
def test_load_cross_checks_a_class_weight_dict(tmp_path, what):
    from chainrule._fileformat import ModelFileError
    from chainrule.io import load

    edit, named = CLASS_WEIGHT_EDITS[what]
    X, y = _blobs()
    path = _edited_file(tmp_path, _full_batch(hidden_layer_sizes=(5,), max_iter=2,
                                                   class_weight={0: 2.0}),
                        X, y, edit)
    assert load(tmp_path / "ok.npz").class_weight == {0: 2.0}
    with pytest.raises(ModelFileError, match=named):
        load(path)


REGRESSOR_EDITS = {
    "cross-entropy loss inside a regressor": (_NET("loss")("cross_entropy"), "loss"),
    "n_outputs_ 3 for two outputs": (_set(["n_outputs_"])(3), "n_outputs_"),
    "n_outputs_ as a string": (_set(["n_outputs_"])("2"), "n_outputs_"),
    "1-D predictions from two outputs": (_set(["y_ndim"])(1), "y_ndim"),
    "y_ndim 3": (_set(["y_ndim"])(3), "y_ndim"),
    "hidden_layer_sizes () for one hidden layer": (_PARAM("hidden_layer_sizes")([]),
                                                   "hidden_layer_sizes"),
}


@pytest.mark.parametrize("what", list(REGRESSOR_EDITS))
def test_load_cross_checks_a_regressor_file(tmp_path, what):
    from chainrule._fileformat import ModelFileError
    from chainrule.io import load

    edit, named = REGRESSOR_EDITS[what]
    X, _ = _blobs()
    Y = np.column_stack([X[:, 0], X[:, 1]])
    path = _edited_file(tmp_path, MLPRegressor(hidden_layer_sizes=(5,), max_iter=2,
                                               batch_size="auto",
                                               random_state=0), X, Y, edit)
    load(tmp_path / "ok.npz")
    with pytest.raises(ModelFileError, match=named):
        load(path)


_ODD_VALUES = [None, True, -1, 0, 2.5, "x", [], [1], {}, {"a": 1}]


def _leaves(node, path=()):
    """Every position in a JSON tree (dict keys and list items), leaves and branches."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:2]):
            yield from _leaves(value, path + (i,))


@pytest.mark.slow
def test_any_edit_of_the_config_loads_or_raises_model_file_error(tmp_path):
    # Whatever a position of the stored JSON is replaced with, load either returns an
    # estimator or refuses with ModelFileError: no AttributeError, IndexError, ... escapes.
    import copy

    from chainrule._fileformat import ModelFileError, read_archive, write_archive
    from chainrule.io import load, save

    X, y = _blobs(n=30)
    save(_full_batch(hidden_layer_sizes=(3,), max_iter=2).fit(X, y), tmp_path / "ok.npz")
    arrays, meta = read_archive(tmp_path / "ok.npz")
    positions = [p for p in _leaves(meta["config"]) if p]
    assert len(positions) > 50
    refused = 0
    for position in positions:
        for value in _ODD_VALUES:
            edited = copy.deepcopy(meta)
            node = edited["config"]
            for key in position[:-1]:
                node = node[key]
            node[position[-1]] = value
            write_archive(tmp_path / "e.npz", arrays, edited)
            try:
                load(tmp_path / "e.npz")
            except ModelFileError:
                refused += 1
            except Exception as exc:  # pragma: no cover - the failure being tested
                pytest.fail(f"config{list(position)} = {value!r}: {type(exc).__name__}: {exc}")
    assert refused > len(positions)  # most edits are refused


def test_partial_fit_with_a_class_weight_dict_and_a_batch_missing_a_weighted_class():
    # A batch holding only class 0 must train with weight 1 for its rows (0 is not in
    # the dict), exactly like explicit sample weights of 1.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = np.array([0, 1, 2] * 10)
    weighted = MLPClassifier((4,), max_iter=1, random_state=0, class_weight={1: 3.0, 2: 2.0})
    plain = MLPClassifier((4,), max_iter=1, random_state=0)
    weighted.partial_fit(X, y, classes=[0, 1, 2])
    plain.partial_fit(X, y, classes=[0, 1, 2],
                      sample_weight=np.array([1.0, 3.0, 2.0] * 10))
    only_zero = y == 0
    weighted.partial_fit(X[only_zero], y[only_zero])
    plain.partial_fit(X[only_zero], y[only_zero])
    assert np.array_equal(weighted.predict_proba(X), plain.predict_proba(X))


# -- scikit-learn's layout and inputs ----------------------------------------------------------
def test_coefs_and_intercepts_are_the_network_parameters():
    X, y = _blobs()
    est = MLPClassifier((5, 4), max_iter=3, random_state=0).fit(X, y)
    assert [c.shape for c in est.coefs_] == [(4, 5), (5, 4), (4, 3)]
    assert est.coefs_[0] is est.model_.params["W1"]
    assert est.intercepts_[2] is est.model_.params["b3"]
    assert est.n_layers_ == 4 and est.n_outputs_ == 3 and est.out_activation_ == "softmax"
    assert est.t_ == 3 * X.shape[0] and len(est.loss_curve_) == est.n_iter_ == 3


def test_sparse_X_trains_as_the_dense_array():
    import scipy.sparse

    X, y = _blobs()
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    for fmt in ("csr", "csc"):
        dense = MLPClassifier((6,), solver="lbfgs", max_iter=20, random_state=0).fit(X, y)
        sparse = MLPClassifier((6,), solver="lbfgs", max_iter=20, random_state=0).fit(
            scipy.sparse.csr_matrix(X).asformat(fmt), y)
        np.testing.assert_allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-9, atol=1e-12)


def test_parameters_follow_the_dtype_of_X_unless_dtype_says():
    X, y = _blobs()
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X.astype(np.float32), y)
    assert est.coefs_[0].dtype == np.float32
    assert est.predict(X.astype(np.float32)).dtype == np.float32
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, dtype="float64").fit(
        X.astype(np.float32), y)
    assert est.coefs_[0].dtype == np.float64


def test_sklearn_init_draws_weights_and_biases_within_its_bound():
    from chainrule.models import MLP

    for activation, factor in (("relu", 6.0), ("sigmoid", 2.0)):
        net = MLP([30, 20, 10], activation=activation, init="sklearn", rng=0)
        for W, b in (("W1", "b1"), ("W2", "b2")):
            fan_in, fan_out = net.params[W].shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            for p in (net.params[W], net.params[b]):
                assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound


def test_a_diverging_partial_fit_leaves_network_optimizer_and_generator_as_they_were():
    X, y = _blobs()
    generator = np.random.RandomState(0)   # the caller's: a failed fit gives it back too
    est = MLPClassifier((6,), solver="sgd", learning_rate="adaptive", batch_size=16,
                        random_state=generator)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1, 2])
    params = {k: v.copy() for k, v in est.model_.params.items()}
    state, rng = est.optimizer_.state_dict(), generator.get_state(legacy=False)
    with pytest.raises(ValueError, match="non-finite parameter weights"), \
            np.errstate(all="ignore"):
        est.partial_fit(X * 1e300, y)
    for k, v in params.items():
        np.testing.assert_array_equal(est.model_.params[k], v)
    after = est.optimizer_.state_dict()
    assert after["steps"] == state["steps"]
    for k, st in state["state"].items():
        for name, v in st.items():
            np.testing.assert_array_equal(after["state"][k][name], v)
    after_rng = generator.get_state(legacy=False)
    np.testing.assert_array_equal(after_rng["state"]["key"], rng["state"]["key"])
    assert after_rng["state"]["pos"] == rng["state"]["pos"] and len(est.loss_curve_) == 3


def test_the_docstring_examples_run_as_printed():
    import doctest

    import chainrule.estimator

    result = doctest.testmod(chainrule.estimator, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0, result


def test_a_failed_warm_start_fit_puts_every_attribute_back():
    from sklearn.datasets import make_regression

    X, y = make_regression(300, 5, random_state=0)
    y = y / 100
    model = MLPRegressor(solver="sgd", momentum=0.99, batch_size=50, max_iter=2,
                         warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after 2 epochs
        model.fit(X, y)
        before = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(model).items()}
        coefs = [c.copy() for c in model.coefs_]
        model.set_params(learning_rate_init=0.02, max_iter=30)
        with np.errstate(all="ignore"), pytest.raises(ValueError, match="non-finite"):
            model.fit(3 * X, 3 * y)   # diverges after some epochs
    assert model.loss_curve_ == before["loss_curve_"] and len(model.loss_curve_) == 2
    assert (model.n_iter_, model.t_) == (before["n_iter_"], before["t_"])
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, coefs, strict=True))


@pytest.mark.parametrize("class_weight, message", [
    ({0: -1.0}, r"class_weight values must be non-negative numbers, got \{0: -1.0\}"),
    ({7: 2.0}, r"class_weight has labels \[7\] that are not among the classes \[0, 1, 2\]"),
])
def test_a_class_weight_that_would_be_dropped_or_ignored_is_refused(class_weight, message):
    X, y = load_iris(return_X_y=True)
    model = MLPClassifier(class_weight=class_weight, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)
    assert not hasattr(model, "model_")


def test_momentum_one_is_accepted_as_scikit_learn_accepts_it():
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SkMLP(solver="sgd", momentum=1.0, max_iter=3, random_state=0).fit(X, y)
        model = MLPClassifier(solver="sgd", momentum=1.0, max_iter=3, random_state=0)
        assert model.fit(X, y).n_iter_ == 3


@pytest.mark.parametrize("solver, schedule", [("sgd", "adaptive"), ("adam", "constant")])
def test_verbose_stopping_lines_are_scikit_learns(solver, schedule, capsys):
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_iris(return_X_y=True)
    settings = dict(solver=solver, learning_rate=schedule, max_iter=300, n_iter_no_change=3,
                    tol=1e-2, verbose=True, random_state=0)
    lines = []
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**settings).fit(X, y)
        lines.append([ln for ln in capsys.readouterr().out.splitlines()
                      if "did not improve" in ln])
    assert lines[0] and lines[1] == lines[0]


def test_the_estimators_warnings_point_at_the_users_call():
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MLPClassifier(max_iter=3, batch_size=500, random_state=0).fit(X, y)  # clip + no conv.
    kinds = {w.category.__name__ for w in caught}
    assert {"UserWarning", "ConvergenceWarning"} <= kinds
    assert all(w.filename == __file__ for w in caught), [(w.filename, w.lineno) for w in caught]


def test_an_interrupted_fit_warns_as_scikit_learn_does(monkeypatch):
    from chainrule.estimator import solvers

    calls = {"n": 0}
    original = solvers.EpochRule.__call__

    def interrupt_at_third_epoch(self, epoch, logs, model):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, epoch, logs, model)

    monkeypatch.setattr(solvers.EpochRule, "__call__", interrupt_at_third_epoch)
    X, y = load_iris(return_X_y=True)
    with pytest.warns(UserWarning, match="^Training interrupted by user.$"):
        model = MLPClassifier(max_iter=50, random_state=0).fit(X, y)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    assert model.predict(X).shape == (150,)


def test_a_warm_start_on_targets_of_the_other_kind_is_refused_in_scikit_learns_words():
    X, y = load_iris(return_X_y=True)
    Y = np.eye(3, dtype=int)[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = MLPClassifier(warm_start=True, max_iter=3, random_state=0).fit(X, y)
        multi = MLPClassifier(warm_start=True, max_iter=3, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="^The object was not fitted with multilabel input.$"):
        single.fit(X, Y)
    with pytest.raises(ValueError, match="not fitted with single-label input"):
        multi.fit(X, y)
    assert single.n_iter_ == 3 and multi.n_iter_ == 3


def test_multiclass_multioutput_targets_get_scikit_learns_message():
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_iris(return_X_y=True)
    both = np.c_[y, y]
    messages = []
    for cls in (SkMLP, MLPClassifier):
        with pytest.raises(ValueError) as info:
            cls(max_iter=2).fit(X, both)
        messages.append(str(info.value))
    assert messages[1] == messages[0] == ("Multioutput target data is not supported with "
                                          "label binarization")


# -- hyperparameters changed after fit (set_params), as scikit-learn reads them ---------------
def _binary_problem(n=100):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(int)




def test_a_changed_activation_predicts_and_trains_as_in_scikit_learn(tmp_path):
    # scikit-learn reads `activation` at every forward pass; the network kept relu, and
    # predict_proba differed by up to 0.61.
    from sklearn.neural_network import MLPClassifier as SkMLP

    from chainrule.io import load, save

    X, y = _binary_problem()
    params = dict(hidden_layer_sizes=(4,), warm_start=True, max_iter=1, random_state=0)
    ours, theirs = MLPClassifier(**params), SkMLP(**params)
    same_start_as_sklearn(ours, theirs, X, y)
    for est in (ours, theirs):
        est.set_params(activation="tanh")
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (ours, theirs):   # one full batch per epoch: the same steps
            est.set_params(max_iter=5, learning_rate_init=0.01).fit(X, y)
    assert ours.model_.config["activation"] == "tanh"
    np.testing.assert_allclose(ours.loss_curve_[1:], theirs.loss_curve_[1:], rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
    save(ours, tmp_path / "tanh.npz")   # the file loads, with the network it predicts with
    np.testing.assert_array_equal(load(tmp_path / "tanh.npz").predict_proba(X),
                                  ours.predict_proba(X))


def test_set_params_after_fit_then_save_writes_the_network_predict_uses(tmp_path):
    from chainrule.io import load, save

    X, y = _binary_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    est.set_params(activation="sigmoid", dropout=0.25, init="he", dtype="float32")
    save(est, tmp_path / "changed.npz")
    back = load(tmp_path / "changed.npz")
    assert back.model_.config == est.model_.config
    assert est.coefs_[0].dtype == np.float32 == back.coefs_[0].dtype
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_a_fitted_estimator_whose_hyperparameters_changed_saves_what_loads(tmp_path):
    """set_params after fit (preparing the next experiment): other hidden_layer_sizes,
    of any depth, save and load with the network predict uses; a change the fitted
    state contradicts (a loss whose output activation it does not have, a class_weight
    of labels it never saw) is refused by save, naming it, instead of writing a file
    that load refuses; the file already there is left as it was."""
    from chainrule.io import load, save

    X, y = _binary_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
        reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(
            X, np.abs(X[:, 0]))
    est.set_params(hidden_layer_sizes=(3, 3))
    save(est, tmp_path / "deeper.npz")
    back = load(tmp_path / "deeper.npz")
    assert back.hidden_layer_sizes == (3, 3) and back.fitted_hidden_sizes() == [5]
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    before = (tmp_path / "deeper.npz").read_bytes()
    est.set_params(class_weight={7: 1.0})
    with pytest.raises(ValueError, match=r"cannot be saved as it is, its file would not "
                                         r"load: .*class_weight.*set_params"):
        save(est, tmp_path / "deeper.npz")
    assert (tmp_path / "deeper.npz").read_bytes() == before
    reg.set_params(loss="poisson")
    with pytest.raises(ValueError, match="out_activation_ must be 'exp'.*set_params"):
        save(reg, tmp_path / "reg.npz")
    reg.set_params(loss="squared_error")
    save(reg, tmp_path / "reg.npz")
    np.testing.assert_array_equal(load(tmp_path / "reg.npz").predict(X), reg.predict(X))


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_the_losses_are_numpy_floats_as_scikit_learns(solver, tmp_path):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from chainrule.io import load, save

    X, y = _binary_problem()
    fitted = []
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.append(cls((3,), solver=solver, max_iter=3, random_state=0).fit(X, y))
    save(fitted[1], tmp_path / "m.npz")
    for est in (*fitted, load(tmp_path / "m.npz")):
        assert type(est.loss_) is np.float64 and est.loss_.round(4) == round(est.loss_, 4)
        if solver == "adam":
            assert {type(v) for v in est.loss_curve_} == {np.float64}
            assert type(est.best_loss_) is np.float64


@pytest.mark.parametrize("first, second", [(False, True), (True, False)])
def test_a_warm_start_after_switching_early_stopping_keeps_training(first, second, tmp_path):
    """scikit-learn fails here (AttributeError: 'NoneType' object has no attribute
    'append'; TypeError: unsupported operand type(s) for -: 'NoneType' and 'float'):
    the record the new setting keeps starts with the second fit."""
    from chainrule.io import load, save

    X, y = _blobs(n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((5,), warm_start=True, early_stopping=first, max_iter=4,
                            random_state=0).fit(X, y)
        before = [c.copy() for c in est.coefs_]
        est.set_params(early_stopping=second).fit(X, y)
        if not second:
            est.partial_fit(X, y)
    assert not np.allclose(est.coefs_[0], before[0])
    if second:
        assert len(est.validation_scores_) == est.n_iter_ == 4
    else:
        assert np.isfinite(est.best_loss_) and est.best_loss_ <= min(est.loss_curve_[-5:])
    save(est, tmp_path / "m.npz")
    np.testing.assert_array_equal(load(tmp_path / "m.npz").predict_proba(X),
                                  est.predict_proba(X))


def test_a_warm_start_with_changed_dropout_and_dtype_keeps_training_the_same_weights():
    X, y = _binary_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((4,), warm_start=True, max_iter=2, random_state=0).fit(X, y)
        before = [c.astype(np.float32) for c in est.coefs_]
        est.set_params(dropout=0.5, dtype="float32", max_iter=1, learning_rate_init=1e-9)
        est.fit(X, y)
    assert est.model_.config["dropout"] == 0.5 and est.model_.dtype == np.float32
    for a, b in zip(est.coefs_, before, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_warm_start_with_other_hidden_widths_keeps_the_network_as_scikit_learn(tmp_path,
                                                                                 solver):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from chainrule.io import load, save

    X, y = _binary_problem()
    shapes = []
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls((4,), solver=solver, warm_start=True, max_iter=2, random_state=0)
            est.fit(X, y).set_params(hidden_layer_sizes=(7,)).fit(X, y)
        shapes.append([c.shape for c in est.coefs_])
    assert shapes[1] == shapes[0] == [(4, 4), (4, 1)]
    assert est.fitted_hidden_sizes() == [4]
    save(est, tmp_path / "kept.npz")   # was refused by load: "its layer_sizes is [4, 4, 1]"
    back = load(tmp_path / "kept.npz")
    assert back.hidden_layer_sizes == (7,) and back.fitted_hidden_sizes() == [4]
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    back.partial_fit(X, y)   # and keeps training


@pytest.mark.parametrize("solver, sizes", [("adam", (7, 7)), ("adam", ()), ("lbfgs", (7,))])
def test_a_warm_start_scikit_learn_cannot_continue_is_refused_clearly(solver, sizes):
    # scikit-learn fails with an IndexError, an AttributeError or a reshape error.
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = _binary_problem()
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls((4,), solver=solver, warm_start=True, max_iter=2, random_state=0)
            est.fit(X, y).set_params(hidden_layer_sizes=sizes)
            with pytest.raises(Exception) as info:
                est.fit(X, y)
    assert info.type is ValueError
    assert "hidden_layer_sizes" in str(info.value) and "warm_start=False" in str(info.value)
    assert est.n_iter_ == 2 and est.coefs_[0].shape == (4, 4)


@pytest.mark.parametrize("labels", [
    np.array(["2020-01-01", "2021-01-01", "2022-01-01"], dtype="datetime64[D]"),
    np.array([1, 60, 3600], dtype="timedelta64[s]")])
def test_save_load_round_trip_of_datetime_labels(tmp_path, labels):
    # scikit-learn fits them and save wrote them, but load refused the dtype.
    from chainrule.io import load, save

    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((5,), max_iter=5, random_state=0).fit(X, labels[y])
    save(est, tmp_path / "dates.npz")
    back = load(tmp_path / "dates.npz")
    assert back.classes_.dtype == labels.dtype
    np.testing.assert_array_equal(back.classes_, labels)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


# -- L-BFGS keeps no stochastic record, as in scikit-learn ------------------------------------
_STOCHASTIC_ATTRIBUTES = ("loss_curve_", "best_loss_", "validation_scores_",
                          "best_validation_score_")


@pytest.mark.parametrize("early_stopping", [False, True])
def test_lbfgs_sets_the_fitted_attributes_scikit_learn_sets(tmp_path, early_stopping):
    # chainrule had loss_curve_ == [] and best_loss_ == inf (validation_scores_ == [],
    # best_validation_score_ == -inf), which scikit-learn's L-BFGS never sets.
    from sklearn.neural_network import MLPClassifier as SkMLP

    from chainrule.io import load, save

    X, y = _binary_problem()
    settings = dict(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=5,
                    early_stopping=early_stopping, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkMLP(**settings).fit(X, y)
        ours = MLPClassifier(**settings).fit(X, y)
    save(ours, tmp_path / "lbfgs.npz")
    back = load(tmp_path / "lbfgs.npz")
    for est in (ours, back):
        for name in _STOCHASTIC_ATTRIBUTES:
            assert hasattr(est, name) == hasattr(theirs, name) is False, name
        assert (est.t_, est.n_iter_) == (theirs.t_, theirs.n_iter_) == (0, 5)
        assert est.history_ is None
    assert back.loss_ == ours.loss_


def test_an_lbfgs_file_with_a_stochastic_record_is_refused(tmp_path):
    from chainrule._fileformat import ModelFileError, read_archive, write_archive
    from chainrule.io import load, save

    X, y = _binary_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save(MLPClassifier((3,), solver="lbfgs", max_iter=5).fit(X, y), tmp_path / "ok.npz")
    arrays, meta = read_archive(tmp_path / "ok.npz")
    meta["config"]["best_loss_"] = 0.5
    write_archive(tmp_path / "edited.npz", arrays, meta)
    with pytest.raises(ModelFileError, match=r"loss_curve_ is null .* \['best_loss_'\]"):
        load(tmp_path / "edited.npz")


def test_a_warm_start_between_lbfgs_and_adam_keeps_a_loadable_record(tmp_path):
    from chainrule.io import load, save

    X, y = _binary_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((3,), solver="lbfgs", warm_start=True, max_iter=3).fit(X, y)
        est.set_params(solver="adam").fit(X, y)   # (scikit-learn: AttributeError)
        assert len(est.loss_curve_) == 3 and est.best_loss_ == min(est.loss_curve_)
        est.set_params(solver="lbfgs").fit(X, y)  # loss_ is L-BFGS's, loss_curve_ stays
    assert est.history_ is None and len(est.loss_curve_) == 3
    save(est, tmp_path / "both.npz")
    back = load(tmp_path / "both.npz")
    assert back.loss_ == est.loss_ and back.loss_curve_ == est.loss_curve_


# -- multilabel: scikit-learn's tag and the checks it enables ----------------------------------
def test_the_multi_label_tag_is_scikit_learns():
    from sklearn.neural_network import MLPClassifier as SkMLP

    ours = MLPClassifier().__sklearn_tags__().classifier_tags
    theirs = SkMLP().__sklearn_tags__().classifier_tags
    assert ours.multi_label is theirs.multi_label is True
    assert ours.multi_class is theirs.multi_class


@pytest.mark.parametrize("check_name", [
    "check_classifiers_multilabel_representation_invariance",
    "check_classifiers_multilabel_output_format_predict",
    "check_classifiers_multilabel_output_format_predict_proba"])
def test_sklearn_multilabel_checks(check_name):
    # Skipped by the check suite while the tag said multi_label=False; each check also
    # runs there now (test_sklearn_estimator_checks), this names them.
    from sklearn.utils import estimator_checks

    estimator = clone(CHECKED[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning after 50 iterations
        getattr(estimator_checks, check_name)("MLPClassifier", estimator)


@pytest.mark.parametrize("fit_dtype", [np.float32, np.float64])
def test_outputs_follow_numpy_promotion_of_X_and_coefs_as_in_scikit_learn(fit_dtype):
    # A float32 network returned float32 for float64 X; scikit-learn's outputs are
    # those of X @ coefs_: float64 unless both are float32.
    import scipy.sparse as sp
    from sklearn.neural_network import MLPClassifier as SkMLP
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, y = _binary_problem()
    inputs = [X, X.astype(np.float32), X.astype(np.int64), sp.csr_matrix(X.astype(np.float32))]
    for ours, theirs, target in [(MLPClassifier, SkMLP, y), (MLPClassifier, SkMLP, 2 * y - 1
                                                              + (X[:, 1] > 0)),
                                 (MLPRegressor, SkRegressor, X[:, 0])]:
        fitted = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for cls in (ours, theirs):
                fitted.append(cls(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(
                    X.astype(fit_dtype), target))
        for method in ("predict", "predict_proba", "predict_log_proba"):
            if not hasattr(fitted[1], method):
                continue
            for data in inputs:
                dtypes = [getattr(est, method)(data).dtype for est in fitted]
                assert dtypes[0] == dtypes[1], (ours.__name__, method, data.dtype)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_column_vector_y_warns_once_as_in_scikit_learn(method):
    import pandas as pd
    from sklearn.exceptions import DataConversionWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = _binary_problem()
    column = pd.DataFrame({"label": y})
    counts = []
    for cls in (SkMLP, MLPClassifier):
        est = cls((3,), max_iter=2, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if method == "fit":
                est.fit(X, column)
            else:
                est.partial_fit(X, column, classes=[0, 1])
        counts.append(sum(issubclass(w.category, DataConversionWarning) for w in caught))
    assert counts[1] == counts[0] == 1
