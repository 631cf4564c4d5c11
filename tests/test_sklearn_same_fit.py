"""One ``random_state``, one fit: chainrule's estimators draw what scikit-learn's draw.

The oracle is scikit-learn's own MLPClassifier / MLPRegressor, fitted side by side on
the same data with the same hyperparameters. Equal fits need every draw in scikit-learn's
order (the initial weights of ``_init_coef``, layer by layer; the early-stopping split of
``train_test_split``; each epoch's ``shuffle`` of the previous order, a full batch's too),
its momentum form under a changing learning rate, and the loss value its ``tol`` rule and
L-BFGS line search see (the mean over several outputs, clipped probabilities, batches
averaged by rows under ``sample_weight``). Each case below fails if one of them is changed.

Float64 fits agree to rounding (the blocked products of ``chainrule._blas`` add a batch's
rows in another order); float32 fits to a few float32 ulps.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import load_digits, make_regression

import chainrule.estimator as cr


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _regression():
    X, y = make_regression(240, 8, n_targets=3, noise=1.0, random_state=0)
    return X, y / 100.0


def _fit_both(kind, X, y, *, fit_params=None, **params):
    params = {"hidden_layer_sizes": (12,), "random_state": 0, "max_iter": 15, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning at max_iter
        theirs = getattr(sk, kind)(**params).fit(X, y, **(fit_params or {}))
        ours = getattr(cr, kind)(**params).fit(X, y, **(fit_params or {}))
    return ours, theirs


def assert_same_fit(ours, theirs, rtol=1e-9, atol=1e-12):
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    for mine, its in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                         strict=True):
        assert mine.dtype == its.dtype
        np.testing.assert_allclose(mine, its, rtol=rtol, atol=atol)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol * 100)
        if theirs.validation_scores_ is not None:
            np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                                       rtol=rtol * 100)
    else:
        np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=rtol * 100)


@pytest.mark.parametrize("params", [
    dict(solver="sgd"),                                       # Nesterov momentum 0.9
    dict(solver="sgd", nesterovs_momentum=False, batch_size=64),
    dict(solver="sgd", learning_rate="invscaling", power_t=0.25),   # momentum, rate falls
    dict(solver="sgd", learning_rate="adaptive", max_iter=40, tol=1e-2),
    dict(solver="adam", alpha=0.1, batch_size=100),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
    dict(solver="lbfgs"),
    dict(solver="adam", activation="logistic"),               # Glorot's bound for logistic
    # ... read from `activation` even without a hidden layer
    dict(solver="adam", activation="logistic", hidden_layer_sizes=()),
    dict(solver="adam", shuffle=False),
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_a_classifier_fits_as_scikit_learns(params):
    X, y = _digits()
    assert_same_fit(*_fit_both("MLPClassifier", X, y, **params))


@pytest.mark.parametrize("target", ["binary", "multilabel"])
def test_binary_and_multilabel_fits_with_early_stopping(target):
    # a binary target's early-stopping split is stratified, a multilabel one's is not
    X, y = _digits()
    y = y == 3 if target == "binary" else np.c_[y == 3, y > 5]
    assert_same_fit(*_fit_both("MLPClassifier", X, y, solver="adam", early_stopping=True,
                               max_iter=30))


@pytest.mark.parametrize("params", [
    dict(solver="adam", tol=3e-3, max_iter=200),     # stops by the tol rule on loss_
    dict(solver="sgd", tol=1e-3, max_iter=200, learning_rate_init=1e-3),
    dict(solver="sgd", early_stopping=True, learning_rate_init=1e-3),
    dict(solver="lbfgs", max_iter=40),               # the line search sees loss_
], ids=lambda p: p["solver"] + ("-early" if p.get("early_stopping") else ""))
def test_a_multi_output_regressor_fits_as_scikit_learns(params):
    X, y = _regression()
    ours, theirs = _fit_both("MLPRegressor", X, y, **params)
    if "tol" in params:   # stopped by the rule, at scikit-learn's epoch
        assert ours.n_iter_ < params["max_iter"]
    assert_same_fit(ours, theirs, rtol=1e-7 if params["solver"] == "lbfgs" else 1e-9)


@pytest.mark.parametrize("target, hidden, n_rows", [
    ("binary", (12,), 600), ("multilabel", (5,), 300), ("three classes", (5,), 600),
])
def test_lbfgs_line_search_sees_scikit_learns_log_loss(target, hidden, n_rows):
    # Trial points with saturated sigmoids / softmax rows: scikit-learn's loss clips the
    # probabilities to [eps, 1 - eps] and takes log(1 - p) (cancellation and all).
    X, y = _digits()
    X, y = X[:n_rows], y[:n_rows]
    y = {"binary": y > 4, "multilabel": np.c_[y == 3, y > 5, y % 2 == 0],
         "three classes": y % 3}[target]
    ours, theirs = _fit_both("MLPClassifier", X, y, solver="lbfgs", max_iter=20,
                             hidden_layer_sizes=hidden)
    assert_same_fit(ours, theirs, rtol=1e-7)


def test_float32_fits_agree_to_float32_rounding():
    X, y = _digits()
    for solver in ("adam", "sgd"):
        ours, theirs = _fit_both("MLPClassifier", X.astype(np.float32), y, solver=solver)
        assert_same_fit(ours, theirs, rtol=1e-5, atol=1e-6)
    # float32's eps clips confident rows: loss_curve_ is scikit-learn's clipped loss
    ours, theirs = _fit_both("MLPClassifier", X.astype(np.float32), y == 3, solver="sgd",
                             learning_rate_init=0.5, max_iter=40)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-5)


@pytest.mark.parametrize("params", [
    dict(solver="adam"),
    # loss_curve_ averages the batches by rows, as scikit-learn's (the History by their
    # weight): its tol rule stops at scikit-learn's epoch (20, not 17)
    dict(solver="adam", learning_rate_init=0.01, tol=1e-2, n_iter_no_change=2,
         max_iter=100, batch_size=50),
], ids=["adam", "tol-stop"])
def test_sample_weight_gives_the_same_fit(params):
    X, y = _digits()
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    ours, theirs = _fit_both("MLPClassifier", X, y, fit_params={"sample_weight": w}, **params)
    assert_same_fit(ours, theirs)


def test_every_kind_of_random_state_draws_the_same():
    X, y = _digits()
    generators = [np.random.RandomState(5), np.random.RandomState(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.MLPClassifier((12,), max_iter=4, random_state=generators[0]).fit(X, y)
        ours = cr.MLPClassifier((12,), max_iter=4, random_state=generators[1]).fit(X, y)
    assert_same_fit(ours, theirs)
    # and both leave the caller's generator where the other leaves its twin
    assert generators[0].randint(2**31) == generators[1].randint(2**31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(7)   # random_state=None: NumPy's global generator, in both
        theirs = sk.MLPClassifier((12,), max_iter=4).fit(X, y)
        np.random.seed(7)
        ours = cr.MLPClassifier((12,), max_iter=4).fit(X, y)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_full_batch_draws_its_shuffles_too(solver):
    # 150 rows: batch_size 'auto' is one batch, which scikit-learn shuffles all the same;
    # the caller's generator moves on as its own, so a second fit draws its weights.
    X, y = _digits()
    X, y = X[:150], y[:150]
    generators = [np.random.RandomState(5), np.random.RandomState(5)]
    fits = []
    for mod, rng in zip((sk, cr), generators, strict=True):
        est = mod.MLPClassifier((12,), solver=solver, max_iter=4, random_state=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(est.fit(X, y).fit(X, y))
    assert_same_fit(fits[1], fits[0])
    assert generators[0].randint(2**31) == generators[1].randint(2**31)


def test_lbfgs_warns_in_scikit_learns_words():
    X, y = _digits()
    for params in (dict(max_iter=5), dict(max_iter=50, max_fun=10)):   # iterations, calls
        messages = []
        for mod in (sk, cr):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mod.MLPClassifier((12,), solver="lbfgs", random_state=0, **params).fit(X, y)
            messages.append([str(w.message) for w in caught])
        assert messages[0] == messages[1] and len(messages[0]) == 1


def test_partial_fit_and_warm_start_repeat_scikit_learns_draws():
    # an int random_state gives every partial_fit and warm-started fit the same draws
    X, y = _digits()
    ours, theirs = cr.MLPClassifier((12,), random_state=0), sk.MLPClassifier((12,),
                                                                             random_state=0)
    for _ in range(3):
        for est in (ours, theirs):
            est.partial_fit(X, y, classes=np.arange(10))
    assert_same_fit(ours, theirs)
    params = dict(hidden_layer_sizes=(12,), random_state=0, warm_start=True, max_iter=3)
    ours, theirs = cr.MLPRegressor(**params), sk.MLPRegressor(**params)
    Xr, yr = _regression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            ours.fit(Xr, yr)
            theirs.fit(Xr, yr)
    assert_same_fit(ours, theirs)


def test_a_callable_shuffle_gives_fit_its_order():
    """``fit(shuffle=callable)``, which the estimators use: the epochs follow the
    callable's permutations; anything but a permutation of range(n) is refused."""
    from chainrule import MLP
    from chainrule.train import fit

    X, y = _digits()
    orders = []

    def order(n):
        orders.append(np.random.default_rng(len(orders)).permutation(n))
        return orders[-1]

    def run(shuffle, rng=None):
        model = MLP([64, 8, 10], rng=0)
        fit(model, X, y, optimizer="sgd", epochs=3, batch_size=50, shuffle=shuffle, rng=rng,
            progress=False, diagnostics=False)
        return model.params["W1"]

    W = run(order)
    assert len(orders) == 3
    replay = iter(list(orders))
    np.testing.assert_array_equal(run(lambda n: next(replay)), W)
    assert not np.array_equal(run(True, rng=0), W)
    for bad in (lambda n: np.arange(n - 1), lambda n: np.zeros(n, int),
                lambda n: np.arange(n, dtype=float), lambda n: np.arange(n) + 1):
        with pytest.raises(ValueError, match=r"shuffle\(600\) must return a permutation"):
            run(bad)
    with pytest.raises(ValueError, match="shuffle must be True or False with checkpoint"):
        fit(MLP([64, 10]), X, y, optimizer="sgd", epochs=1, batch_size=50, shuffle=order,
            checkpoint="never-written.ckpt")
