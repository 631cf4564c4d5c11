"""L-BFGS on the hand-written backward pass: the objective handed to scipy is checked by
finite differences and by torch autograd, and whole runs are compared with
scikit-learn's ``MLPClassifier``/``MLPRegressor(solver='lbfgs')`` from the same start."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from chainrule.functional import one_hot
from chainrule.lbfgs import LBFGSResult, ParamVector, lbfgs_objective, minimize_lbfgs, weight_names
from chainrule.models import MLP, affine_param_names
from conftest import rel_diff, to_torch


def _data(rng, n=30, d=4, k=3):
    X = rng.normal(size=(n, d))
    y = np.arange(n) % k
    X[:, 0] += y          # learnable, not separable at once
    return X, one_hot(y, k)


def _targets(loss, rng, n, k):
    if loss in ("cross_entropy", "multi_margin"):
        return one_hot(np.arange(n) % k, k)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(2.0, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


# --- the objective ------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "poisson",
                                  "squared_error", "huber", "l1", "multi_margin"])
@pytest.mark.parametrize("weighted", [False, True])
def test_objective_passes_check_grad(activation, loss, weighted, rng):
    from scipy.optimize import check_grad

    model = MLP([4, 5, 3], activation=activation, loss=loss, rng=2)
    X = rng.normal(size=(12, 4))
    Y = _targets(loss, rng, 12, 3)
    w = rng.uniform(0.2, 2.0, size=12) if weighted else None
    fun, vector = lbfgs_objective(model, X, Y, sample_weight=w, l2=0.7)
    x0 = vector.pack(model.params)
    err = check_grad(lambda x: fun(x)[0], lambda x: fun(x)[1], x0, epsilon=1e-7)
    scale = np.linalg.norm(fun(x0)[1])
    assert err / scale < 1e-5, (err, scale)
    # And entry by entry against a central difference (check_grad is one-sided).
    numeric = np.array([(fun(x0 + e)[0] - fun(x0 - e)[0]) / 2e-6
                        for e in np.eye(x0.size) * 1e-6])
    assert np.max(np.abs(numeric - fun(x0)[1])) / np.max(np.abs(numeric)) < 1e-6


@pytest.mark.parametrize("weighted", [False, True])
def test_objective_against_torch_with_l2(weighted, rng):
    torch = pytest.importorskip("torch")
    model = MLP([4, 6, 3], activation="tanh", rng=5)
    X, Y = _data(rng, n=20)
    w = rng.uniform(0.2, 2.0, size=20) if weighted else None
    alpha = 0.9
    fun, vector = lbfgs_objective(model, X, Y, sample_weight=w, l2=alpha)
    value, grad = fun(vector.pack(model.params))

    p = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
    z = torch.tanh(to_torch(X) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    per_row = torch.nn.functional.cross_entropy(z, to_torch(Y).argmax(dim=1),
                                                reduction="none")
    if w is None:
        data_loss, n = per_row.mean(), 20
    else:
        wt = to_torch(w)
        data_loss, n = (per_row * wt).sum() / wt.sum(), float(w.sum())
    # scikit-learn's penalty: 0.5 * alpha * sum of squared weights (not biases) / n.
    total = data_loss + 0.5 * alpha * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum()) / n
    total.backward()
    assert value == pytest.approx(total.item(), rel=1e-13)
    expected = np.concatenate([p[k].grad.numpy().ravel() for k in ("W1", "W2", "b1", "b2")])
    assert rel_diff(grad, expected) < 1e-12


def test_param_vector_order_and_round_trip(rng):
    params = {"W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=3),
              "W2": rng.normal(size=(3, 1)), "b2": rng.normal(size=1)}
    vector = ParamVector(params, ["W1", "W2"])
    x = vector.pack(params)
    # scikit-learn's _pack: every coef, then every intercept.
    expected = np.concatenate([params[k].ravel() for k in ("W1", "W2", "b1", "b2")])
    np.testing.assert_array_equal(x, expected)
    held = params["W2"]
    vector.unpack_into(x * 2, params)
    assert params["W2"] is held                   # in place
    np.testing.assert_array_equal(params["W2"], 2 * expected[6:9].reshape(3, 1))


def test_weight_names_are_the_affine_weights():
    model = MLP([3, 4, 5, 2], rng=0)
    assert weight_names(model) == [w for w, _ in affine_param_names(3)]


# --- whole runs ---------------------------------------------------------------------

def test_minimize_decreases_loss_in_place_and_reports(rng):
    model = MLP([4, 6, 3], activation="tanh", rng=1)
    X, Y = _data(rng)
    held = dict(model.params)
    before, _ = lbfgs_objective(model, X, Y, l2=0.1)[0](
        ParamVector(model.params, weight_names(model)).pack(model.params))
    result = minimize_lbfgs(model, X, Y, l2=0.1, max_iter=500, tol=1e-6)
    assert isinstance(result, LBFGSResult)
    assert result.converged and result.status == 0
    assert 0 < result.n_iter <= 500 and result.n_fun >= result.n_iter
    assert result.loss < before
    assert all(model.params[k] is held[k] for k in held)
    # The reported loss is the objective at the parameters left in the model.
    fun, vector = lbfgs_objective(model, X, Y, l2=0.1)
    assert fun(vector.pack(model.params))[0] == pytest.approx(result.loss, rel=1e-12)


def test_max_iter_and_callback_stop_the_run(rng):
    X, Y = _data(rng)
    result = minimize_lbfgs(MLP([4, 6, 3], rng=1), X, Y, max_iter=3, tol=0.0)
    assert result.n_iter == 3 and not result.converged

    seen = []

    def callback(n_iter, loss):
        seen.append((n_iter, loss))
        return n_iter == 2

    model = MLP([4, 6, 3], rng=1)
    result = minimize_lbfgs(model, X, Y, callback=callback, tol=0.0)
    assert [i for i, _ in seen] == [1, 2]
    assert seen[1][1] < seen[0][1]
    assert not result.converged and result.n_iter == 2


def test_sparse_X_gives_the_dense_result(rng):
    import scipy.sparse

    X, Y = _data(rng)
    X[np.abs(X) < 0.8] = 0.0
    dense, sparse = MLP([4, 5, 3], rng=3), MLP([4, 5, 3], rng=3)
    r_dense = minimize_lbfgs(dense, X, Y, l2=0.1, max_iter=20)
    r_sparse = minimize_lbfgs(sparse, scipy.sparse.csr_matrix(X), Y, l2=0.1, max_iter=20)
    assert r_sparse.loss == pytest.approx(r_dense.loss, rel=1e-10)
    for k in dense.params:
        np.testing.assert_allclose(sparse.params[k], dense.params[k], rtol=1e-8, atol=1e-10)


def test_float32_model_stays_float32(rng):
    X, Y = _data(rng)
    m32 = MLP([4, 5, 3], rng=3, dtype=np.float32)
    m64 = MLP([4, 5, 3], rng=3)
    r32 = minimize_lbfgs(m32, X, Y, l2=0.5, max_iter=50)
    r64 = minimize_lbfgs(m64, X, Y, l2=0.5, max_iter=50)
    assert all(p.dtype == np.float32 for p in m32.params.values())
    assert r32.loss == pytest.approx(r64.loss, rel=1e-3)


def test_the_estimator_refuses_dropout_with_lbfgs_in_its_own_terms():
    """In the estimator's vocabulary (solver=, dropout=), before anything changes."""
    from chainrule.estimator import MLPClassifier

    X = np.random.default_rng(0).normal(size=(30, 4))
    y = np.arange(30) % 3
    est = MLPClassifier((5,), solver="lbfgs", dropout=0.5, max_iter=5)
    with pytest.raises(ValueError, match=r"dropout=0.5 needs a stochastic solver \('adam', "
                                         r"'sgd' or 'adamw'\): solver='lbfgs'"):
        est.fit(X, y)
    assert not hasattr(est, "model_")
    est.set_params(dropout=0.0).fit(X, y)
    assert est.n_iter_ >= 1


def test_errors(rng):
    X, Y = _data(rng)
    with pytest.raises(TypeError, match="model must be a chainrule Network"):
        minimize_lbfgs("mlp", X, Y)
    with pytest.raises(ValueError, match="L-BFGS needs a deterministic loss"):
        minimize_lbfgs(MLP([4, 5, 3], dropout=0.2, rng=0), X, Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y[:, :2])
    with pytest.raises(ValueError, match="X has 3 features"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X[:, :3], Y)
    with pytest.raises(ValueError, match="one-hot"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y * 2)
    with pytest.raises(ValueError, match=r"Y must lie in \[0, 1\]"):
        minimize_lbfgs(MLP([4, 5, 3], loss="binary_cross_entropy", rng=0), X, Y * 2)
    with pytest.raises(ValueError, match="l2"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y, l2=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y, max_iter=0)
    with pytest.raises(ValueError, match="sample_weight"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y, sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="callback must be callable"):
        minimize_lbfgs(MLP([4, 5, 3], rng=0), X, Y, callback=1)


# --- against scikit-learn -------------------------------------------------------------

def _sklearn_from(estimator, model, X, y, max_iter):
    """Fit ``estimator`` (warm_start=True) with L-BFGS starting from ``model``'s weights:
    a one-iteration fit sets up the estimator, then its public coefs_/intercepts_ are
    replaced by copies of chainrule's (scikit-learn's (fan_in, fan_out) layout is
    chainrule's (D, H)) and the warm-started fit continues from them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
        names = affine_param_names(len(weight_names(model)))
        estimator.coefs_ = [model.params[w].copy() for w, _ in names]
        estimator.intercepts_ = [model.params[b].copy() for _, b in names]
        estimator.set_params(max_iter=max_iter)
        estimator.fit(X, y)
    return estimator


def _standardized(loader, rows=None):
    from sklearn.preprocessing import StandardScaler

    X, y = loader(return_X_y=True)
    if rows is not None:
        X, y = X[:rows], y[:rows]
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("dataset, activation, alpha", [
    ("iris", "tanh", 1.0), ("digits", "relu", 1e-2), ("digits", "tanh", 1e-2)])
def test_multiclass_final_loss_matches_sklearn(dataset, activation, alpha):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits, load_iris
    from sklearn.neural_network import MLPClassifier

    X, y = _standardized(load_iris) if dataset == "iris" else _standardized(load_digits, 300)
    k = len(np.unique(y))
    model = MLP([X.shape[1], 8, k], activation=activation, rng=0)
    clf = _sklearn_from(MLPClassifier(hidden_layer_sizes=(8,), activation=activation,
                                      solver="lbfgs", alpha=alpha, max_iter=1,
                                      random_state=0, warm_start=True), model, X, y, 300)
    result = minimize_lbfgs(model, X, one_hot(y, k), l2=alpha, max_iter=300)
    assert result.converged
    assert result.loss == pytest.approx(clf.loss_, rel=1e-6)
    assert result.n_iter == clf.n_iter_


def test_binary_and_weighted_final_loss_match_sklearn(rng):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier

    X, y = _standardized(load_breast_cancer)
    w = rng.uniform(0.5, 2.0, size=len(y))
    for weights in (None, w):
        model = MLP([30, 6, 1], activation="tanh", loss="binary_cross_entropy", rng=1)
        clf = MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs",
                            alpha=0.1, max_iter=1, random_state=0, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y, sample_weight=weights)
            clf.coefs_ = [model.params["W1"].copy(), model.params["W2"].copy()]
            clf.intercepts_ = [model.params["b1"].copy(), model.params["b2"].copy()]
            clf.set_params(max_iter=200)
            clf.fit(X, y, sample_weight=weights)
        result = minimize_lbfgs(model, X, y[:, None].astype(float), sample_weight=weights,
                                l2=0.1, max_iter=200)
        assert result.loss == pytest.approx(clf.loss_, rel=1e-6)


def test_regression_final_loss_matches_sklearn():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.neural_network import MLPRegressor

    X, y = _standardized(load_diabetes)
    y = (y - y.mean()) / y.std()
    model = MLP([10, 5, 1], activation="logistic", loss="squared_error", rng=1)
    reg = _sklearn_from(MLPRegressor(hidden_layer_sizes=(5,), activation="logistic",
                                     solver="lbfgs", alpha=1.0, max_iter=1, random_state=0,
                                     warm_start=True), model, X, y, 100)
    result = minimize_lbfgs(model, X, y[:, None], l2=1.0, max_iter=100)
    assert result.loss == pytest.approx(reg.loss_, rel=1e-6)
