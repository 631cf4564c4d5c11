"""The losses, activations and L2 term scikit-learn's MLPs use, each checked three ways:

* central finite differences in float64 (``chainrule.gradcheck``),
* torch autograd in float64 (an independent implementation of value and gradient),
* scikit-learn's own metrics (``log_loss``, ``mean_poisson_deviance``,
  ``mean_squared_error``) or its loss formulas restated here from
  ``sklearn/neural_network/_base.py``, for the value and its normalisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.gradcheck import check_gradients, numerical_gradient, relative_error
from chainrule.layers import Identity, Sigmoid
from chainrule.losses import (
    LOSSES,
    BinaryCrossEntropy,
    CategoricalCrossEntropy,
    HalfSquaredError,
    MeanSquaredError,
    PoissonLoss,
    get_loss,
    l2_penalty,
)
from chainrule.models import ACTIVATIONS, MLP
from chainrule.testing import check_layer
from conftest import loss_and_grad, rel_diff, to_torch, torch_weighted_mean


def _torch_value_and_grad(per_entry_fn, outputs, targets, sample_weight=None, columns="sum"):
    """torch autograd of ``mean over rows (weighted) of per-row reduction`` of
    ``per_entry_fn(z, y)``; ``columns`` says how a row's entries are combined."""
    z = to_torch(outputs, requires_grad=True)
    per_entry = per_entry_fn(z, to_torch(targets))
    per_row = per_entry.sum(dim=1) if columns == "sum" else per_entry.mean(dim=1)
    loss = torch_weighted_mean(per_row, sample_weight)
    loss.backward()
    return loss.item(), z.grad.numpy()


def _torch_bce(z, y):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(z, y, reduction="none")


def _torch_poisson(z, y):
    import torch.nn.functional as F

    # full=False drops y log y - y; added back as a constant (no gradient).
    nll = F.poisson_nll_loss(z, y, log_input=True, full=False, reduction="none")
    import torch

    return nll + torch.special.xlogy(y, y) - y


def _torch_half_se(z, y):
    import torch.nn.functional as F

    return 0.5 * F.mse_loss(z, y, reduction="none")


def _binary_targets(rng, n, k):
    y = (rng.random((n, k)) < 0.5).astype(float)
    y[0] = 1 - y[1]   # both labels present in every column
    return y


# --- BinaryCrossEntropy ---------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
@pytest.mark.parametrize("n, k", [(1, 1), (6, 1), (7, 4)])
def test_bce_against_torch(n, k, scale, rng):
    pytest.importorskip("torch")
    z = rng.normal(scale=scale, size=(n, k))
    y = _binary_targets(rng, n, k) if n > 1 else np.ones((1, k))
    loss, grad = loss_and_grad(BinaryCrossEntropy(), z, y)
    t_loss, t_grad = _torch_value_and_grad(_torch_bce, z, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(t_loss, rel=1e-12, abs=1e-300)
    assert rel_diff(grad, t_grad) < 1e-10


@pytest.mark.parametrize("n, k", [(1, 1), (5, 1), (6, 3)])
def test_bce_finite_differences(n, k, rng):
    z = rng.normal(scale=3.0, size=(n, k))
    y = rng.random((n, k))          # soft targets too: the formula holds on [0, 1]
    bce = BinaryCrossEntropy()
    _, grad = loss_and_grad(bce, z, y)
    numeric = numerical_gradient(lambda: bce.forward(z, y), z)
    assert relative_error(grad, numeric) < 1e-7


def test_bce_normalisation_is_sklearns_binary_log_loss(rng):
    # scikit-learn's binary_log_loss, restated from _base.py:
    #   -np.average(xlogy(y, p) + xlogy(1 - y, 1 - p), weights=w, axis=0).sum()
    # i.e. summed over the output columns, (weighted-)averaged over the rows.
    from scipy.special import expit, xlogy
    from sklearn.metrics import log_loss

    z = rng.normal(size=(9, 3))
    y = _binary_targets(rng, 9, 3)
    w = rng.uniform(0.1, 3.0, size=9)
    p = expit(z)
    for weights in (None, w):
        expected = -np.average(xlogy(y, p) + xlogy(1 - y, 1 - p), weights=weights,
                               axis=0).sum()
        assert BinaryCrossEntropy().forward(z, y, weights) == pytest.approx(expected,
                                                                             rel=1e-13)
    # One binary column: scikit-learn's public log_loss gives the same number.
    assert BinaryCrossEntropy().forward(z[:, :1], y[:, :1]) == pytest.approx(
        log_loss(y[:, 0], p[:, 0]), rel=1e-13)
    # Summed over columns: K columns give K times the per-column mean, not the mean.
    per_column = [BinaryCrossEntropy().forward(z[:, [j]], y[:, [j]]) for j in range(3)]
    assert BinaryCrossEntropy().forward(z, y) == pytest.approx(sum(per_column), rel=1e-13)


def test_bce_exact_at_1e300():
    z = np.array([[1e300], [1e300], [-1e300], [-1e300], [0.0]])
    y = np.array([[1.0], [0.0], [0.0], [1.0], [1.0]])
    loss, grad = loss_and_grad(BinaryCrossEntropy(), z, y)
    # Per row: 0, 1e300, 0, 1e300, log 2; mean over 5 rows.
    assert loss == pytest.approx((2e300 + math.log(2)) / 5, rel=1e-15)
    # (sigmoid(z) - y) / 5 with sigmoid(+-1e300) = 1 or 0 exactly.
    np.testing.assert_array_equal(grad, np.array([[0.0], [1.0], [0.0], [-1.0], [-0.5]]) / 5)


def test_bce_saturated_gradient_keeps_relative_precision():
    # sigmoid(40) rounds to 1 in float64, so sigmoid(z) - y computed literally is 0;
    # the exact value is -sigmoid(-40) = -exp(-40) / (1 + exp(-40)).
    z = np.array([[40.0], [-40.0]])
    y = np.array([[1.0], [0.0]])
    _, grad = loss_and_grad(BinaryCrossEntropy(), z, y)
    tail = math.exp(-40) / (1 + math.exp(-40))
    np.testing.assert_allclose(grad[:, 0], [-tail / 2, tail / 2], rtol=1e-15)


def test_bce_sample_weight_against_torch_and_repetition(rng):
    pytest.importorskip("torch")
    z = rng.normal(size=(5, 2))
    y = _binary_targets(rng, 5, 2)
    w = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    loss, grad = loss_and_grad(BinaryCrossEntropy(), z, y, w)
    t_loss, t_grad = _torch_value_and_grad(_torch_bce, z, y, w)
    assert loss == pytest.approx(t_loss, rel=1e-13)
    assert rel_diff(grad, t_grad) < 1e-12
    # Integer weights repeat rows: the loss equals the unweighted loss on repeated rows.
    rows = np.repeat(np.arange(5), w.astype(int))
    assert loss == pytest.approx(BinaryCrossEntropy().forward(z[rows], y[rows]), rel=1e-13)


def test_bce_float32_stays_float32(rng):
    z = rng.normal(size=(4, 2)).astype(np.float32)
    y = _binary_targets(rng, 4, 2)
    loss, grad = loss_and_grad(BinaryCrossEntropy(), z, y, np.ones(4, np.float32))
    assert grad.dtype == np.float32
    loss64, grad64 = loss_and_grad(BinaryCrossEntropy(), z.astype(np.float64), y)
    assert loss == pytest.approx(loss64, rel=1e-6)
    np.testing.assert_allclose(grad, grad64, rtol=1e-5, atol=1e-7)


def test_bce_rejects_bad_targets():
    bce = BinaryCrossEntropy()
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        bce.forward(np.zeros((2, 1)), np.array([[0.0], [2.0]]))
    with pytest.raises(ValueError, match="same shape"):
        bce.forward(np.zeros((2, 1)), np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        BinaryCrossEntropy().backward()


# --- PoissonLoss ----------------------------------------------------------------------

def _counts(rng, n, k):
    y = rng.poisson(2.0, size=(n, k)).astype(float)
    y[0, 0] = 0.0         # 0 log 0 must count as 0
    return y


@pytest.mark.parametrize("n, k", [(1, 1), (8, 1), (6, 3)])
def test_poisson_against_torch(n, k, rng):
    pytest.importorskip("torch")
    z = rng.normal(scale=1.5, size=(n, k))
    y = _counts(rng, n, k)
    w = rng.uniform(0.2, 2.0, size=n)
    for weights in (None, w):
        loss, grad = loss_and_grad(PoissonLoss(), z, y, weights)
        t_loss, t_grad = _torch_value_and_grad(_torch_poisson, z, y, weights)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert rel_diff(grad, t_grad) < 1e-12


@pytest.mark.parametrize("n, k", [(1, 1), (5, 2)])
def test_poisson_finite_differences(n, k, rng):
    z = rng.normal(size=(n, k))
    y = _counts(rng, n, k) + rng.random((n, k))     # non-integer rates are allowed
    poisson = PoissonLoss()
    _, grad = loss_and_grad(poisson, z, y)
    numeric = numerical_gradient(lambda: poisson.forward(z, y), z)
    assert relative_error(grad, numeric) < 1e-7


def test_poisson_is_half_sklearns_mean_poisson_deviance(rng):
    # scikit-learn's MLPRegressor(loss='poisson') reports poisson_loss(y, exp(z)) =
    # np.average(xlogy(y, y / mu) - y + mu, weights=w, axis=0).sum(): per column half the
    # mean Poisson deviance, summed over columns.
    from sklearn.metrics import mean_poisson_deviance

    z = rng.normal(size=(10, 2))
    y = _counts(rng, 10, 2)
    w = rng.uniform(0.2, 2.0, size=10)
    for weights in (None, w):
        expected = sum(0.5 * mean_poisson_deviance(y[:, j], np.exp(z[:, j]),
                                                   sample_weight=weights) for j in range(2))
        assert PoissonLoss().forward(z, y, weights) == pytest.approx(expected, rel=1e-12)
    # A perfect fit (z = log y, y > 0) scores 0: the constant terms are included.
    y_pos = y + 1
    assert PoissonLoss().forward(np.log(y_pos), y_pos) == pytest.approx(0.0, abs=1e-14)


def test_poisson_float32_and_bad_targets(rng):
    z = rng.normal(size=(3, 1)).astype(np.float32)
    loss, grad = loss_and_grad(PoissonLoss(), z, np.array([[0.0], [1.0], [3.0]]))
    assert grad.dtype == np.float32 and math.isfinite(loss)
    with pytest.raises(ValueError, match="targets must be >= 0"):
        PoissonLoss().forward(np.zeros((2, 1)), np.array([[1.0], [-1.0]]))


# --- HalfSquaredError -----------------------------------------------------------------

@pytest.mark.parametrize("n, m", [(1, 1), (7, 1), (6, 3)])
def test_half_squared_error_against_torch_and_finite_differences(n, m, rng):
    pytest.importorskip("torch")
    out, y = rng.normal(size=(n, m)), rng.normal(size=(n, m))
    w = rng.uniform(0.1, 2.0, size=n)
    for reduction, columns in (("mean", "mean"), ("sum", "sum")):
        for weights in (None, w):
            loss_obj = HalfSquaredError(reduction)
            loss, grad = loss_and_grad(loss_obj, out, y, weights)
            t_loss, t_grad = _torch_value_and_grad(_torch_half_se, out, y, weights, columns)
            assert loss == pytest.approx(t_loss, rel=1e-13)
            assert rel_diff(grad, t_grad) < 1e-13
            numeric = numerical_gradient(lambda: loss_obj.forward(out, y, weights), out)  # noqa: B023
            assert relative_error(grad, numeric) < 1e-8


def test_half_squared_error_is_sklearns_squared_error(rng):
    # scikit-learn's squared_loss: 0.5 * np.average((y - p)**2, weights=w, axis=0).mean(),
    # which is half of sklearn.metrics.mean_squared_error's uniform average.
    from sklearn.metrics import mean_squared_error

    out, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    w = rng.uniform(0.1, 2.0, size=8)
    for weights in (None, w):
        expected = 0.5 * mean_squared_error(y, out, sample_weight=weights)
        assert HalfSquaredError().forward(out, y, weights) == pytest.approx(expected,
                                                                            rel=1e-13)
        # 'sum' adds the columns instead: 3 times the value for 3 outputs.
        assert HalfSquaredError("sum").forward(out, y, weights) == pytest.approx(
            3 * expected, rel=1e-13)


def test_half_squared_error_sum_gradient_is_sklearns_delta(rng):
    # scikit-learn's backward pass starts from delta = (p - y) / n for every output
    # count (_backprop: deltas[last] = activations[-1] - y, divided by n in
    # _compute_loss_grad); 'sum' is the loss with that gradient, 'mean' has 1/M of it.
    out, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    _, grad_sum = loss_and_grad(HalfSquaredError("sum"), out, y)
    _, grad_mean = loss_and_grad(HalfSquaredError("mean"), out, y)
    np.testing.assert_allclose(grad_sum, (out - y) / 5, rtol=1e-15)
    np.testing.assert_allclose(grad_mean, (out - y) / 20, rtol=1e-15)


def test_mean_squared_error_keeps_its_meaning(rng):
    out, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    assert MeanSquaredError().forward(out, y) == pytest.approx(np.mean((out - y) ** 2),
                                                               rel=1e-15)
    assert MeanSquaredError().forward(out, y) == pytest.approx(
        2 * HalfSquaredError().forward(out, y), rel=1e-15)


def test_half_squared_error_float32_and_bad_reduction(rng):
    out = rng.normal(size=(3, 2)).astype(np.float32)
    _, grad = loss_and_grad(HalfSquaredError(), out, np.zeros((3, 2)))
    assert grad.dtype == np.float32
    with pytest.raises(ValueError, match="output_reduction"):
        HalfSquaredError("median")


def test_half_squared_error_sum_survives_model_files(rng, tmp_path):
    # A 'sum' model read back as 'mean' would report and step 1/M as much (M = 3 here).
    import chainrule as cr

    X, Y = rng.normal(size=(20, 4)), rng.normal(size=(20, 3))
    for model in (cr.Sequential([cr.Affine(4, 3)], rng=0, loss=HalfSquaredError("sum")),
                  cr.MLP([4, 5, 3], rng=0, loss=HalfSquaredError("sum"))):
        cr.io.save(model, tmp_path / "m.npz")
        back = cr.io.load(tmp_path / "m.npz")
        assert back.loss.output_reduction == "sum"
        # the half sum over columns, averaged over rows, restated by hand
        expected = 0.5 * np.sum((model.predict(X) - Y) ** 2) / 20
        assert back.loss_and_grads(X, Y)[0] == pytest.approx(expected, rel=1e-12)
    assert HalfSquaredError().get_config() == {}     # the default: files as before
    assert repr(HalfSquaredError("sum")) == "HalfSquaredError(output_reduction='sum')"


# --- registry and target checks -------------------------------------------------------

def test_new_losses_are_registered_under_sklearn_names():
    assert isinstance(get_loss("binary_cross_entropy"), BinaryCrossEntropy)
    assert isinstance(get_loss("poisson"), PoissonLoss)
    half = get_loss("squared_error")
    assert isinstance(half, HalfSquaredError) and half.output_reduction == "mean"
    assert LOSSES["mse"] is MeanSquaredError and LOSSES["cross_entropy"] is \
        CategoricalCrossEntropy
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("log_loss")


def test_check_targets_per_loss():
    CategoricalCrossEntropy().check_targets(np.eye(3))
    with pytest.raises(ValueError, match="one-hot"):
        CategoricalCrossEntropy().check_targets(np.array([[1.0, 1.0]]), "Y")
    BinaryCrossEntropy().check_targets(np.array([[0.0, 1.0, 0.25]]))
    with pytest.raises(ValueError, match=r"Y must lie in \[0, 1\]"):
        BinaryCrossEntropy().check_targets(np.array([[-0.5]]), "Y")
    with pytest.raises(ValueError, match="Y must be >= 0"):
        PoissonLoss().check_targets(np.array([[-1.0]]), "Y")
    HalfSquaredError().check_targets(np.array([[-1e9]]))   # any finite value


# --- networks ending in the new losses: whole-network gradients --------------------------

def _torch_mlp_loss_and_grads(model, X, Y, per_entry_fn, columns, activation):
    import torch

    params = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
    act = {"identity": lambda t: t, "logistic": torch.sigmoid, "tanh": torch.tanh}[activation]
    h = act(to_torch(X) @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    per_entry = per_entry_fn(z, to_torch(Y))
    loss = (per_entry.sum(dim=1) if columns == "sum" else per_entry.mean(dim=1)).mean()
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in params.items()}


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh"])
@pytest.mark.parametrize("loss, columns", [("binary_cross_entropy", "sum"),
                                           ("poisson", "sum"), ("squared_error", "mean")])
def test_mlp_with_new_losses_and_activations(activation, loss, columns, rng):
    pytest.importorskip("torch")
    model = MLP([4, 5, 3], activation=activation, loss=loss, rng=1)
    X = rng.normal(size=(7, 4))
    Y = {"binary_cross_entropy": _binary_targets(rng, 7, 3), "poisson": _counts(rng, 7, 3),
         "squared_error": rng.normal(size=(7, 3))}[loss]
    fn = {"binary_cross_entropy": _torch_bce, "poisson": _torch_poisson,
          "squared_error": _torch_half_se}[loss]
    value, grads = model.loss_and_grads(X, Y)
    t_value, t_grads = _torch_mlp_loss_and_grads(model, X, Y, fn, columns, activation)
    assert value == pytest.approx(t_value, rel=1e-12)
    for k in grads:
        assert rel_diff(grads[k], t_grads[k]) < 1e-11, k
    assert check_gradients(model, X, Y).passed(1e-6)


# --- Identity and the activation names ------------------------------------------------

def test_identity_layer_contract_and_values(rng):
    report = check_layer(Identity, (4, 3))
    assert report.worst_gradient_error < 1e-8
    x, d = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    layer = Identity()
    assert layer.forward(x) is x
    assert layer.backward(d) is d
    with pytest.raises(ValueError, match="d_out must have shape"):
        layer.backward(np.zeros((3, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        Identity().backward(d)


def test_sklearn_activation_names():
    assert ACTIVATIONS["identity"] is Identity
    assert ACTIVATIONS["logistic"] is Sigmoid
    assert {"relu", "leaky_relu", "tanh", "sigmoid"} <= set(ACTIVATIONS)   # kept


def test_identity_mlp_is_a_linear_model(rng):
    # With the identity between them, two Affine layers compose to one:
    # (X W1 + b1) W2 + b2 = X (W1 W2) + (b1 W2 + b2).
    model = MLP([3, 4, 2], activation="identity", rng=0)
    model.params["b1"][:] = rng.normal(size=4)
    X = rng.normal(size=(5, 3))
    p = model.params
    expected = X @ (p["W1"] @ p["W2"]) + (p["b1"] @ p["W2"] + p["b2"])
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-13, atol=1e-14)


# --- l2_penalty -----------------------------------------------------------------------

def test_l2_penalty_value_gradient_and_finite_differences(rng):
    params = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4),
              "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2)}
    alpha, n = 0.3, 7.5
    value, grads = l2_penalty(params, ["W1", "W2"], alpha, n)
    # scikit-learn's _backprop: loss += 0.5 * alpha * sum(W.ravel() @ W.ravel()) / sw_sum,
    # coef_grads += alpha * W / sw_sum; the biases are not penalised.
    expected = 0.5 * alpha * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2)) / n
    assert value == pytest.approx(expected, rel=1e-14)
    assert set(grads) == {"W1", "W2"}
    for k in ("W1", "W2"):
        np.testing.assert_allclose(grads[k], alpha * params[k] / n, rtol=1e-15)
        numeric = numerical_gradient(
            lambda: l2_penalty(params, ["W1", "W2"], alpha, n)[0], params[k])
        assert relative_error(grads[k], numeric) < 1e-8


def test_l2_penalty_zero_float32_and_errors(rng):
    params = {"W": rng.normal(size=(2, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
    assert l2_penalty(params, ["W"], 0.0, 3) == (0.0, {})
    _, grads = l2_penalty(params, ["W"], 1e-3, 3)
    assert grads["W"].dtype == np.float32
    with pytest.raises(ValueError, match="not keys of params"):
        l2_penalty(params, ["W9"], 1.0, 3)
    with pytest.raises(ValueError, match="alpha"):
        l2_penalty(params, ["W"], -1.0, 3)
    with pytest.raises(ValueError, match="n must be"):
        l2_penalty(params, ["W"], 1.0, 0)
