"""Models: gradients (finite differences and torch), dtypes, seeds, step, predict,
summary/explain, and one example worked out by hand."""

import json
import math
import re
import warnings

import numpy as np
import pytest

from chainrule.gradcheck import RngFreezer, check_gradients, numerical_gradient, relative_error
from chainrule.homework import FeedforwardNeuralNet, LogisticRegression
from chainrule.layers import Dropout
from chainrule.models import MLP
from chainrule.optim import SGD
from conftest import random_one_hot, rel_diff, torch_network_loss_and_grads

ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sigmoid"]


def _data(rng, n=7, d=5, k=4):
    return rng.normal(size=(n, d)), random_one_hot(rng, n, k)


def _sizes(depth, d=5, h=6, k=4):
    """``depth`` Affine layers: [d, h, ..., h, k]."""
    return [d] + [h] * (depth - 1) + [k]


def _assert_matches_torch(model, X, Y, *, training=False, sample_weight=None):
    loss, grads = model.loss_and_grads(X, Y, sample_weight, training=training)
    t_loss, t_grads = torch_network_loss_and_grads(model, X, Y, sample_weight)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert grads.keys() == t_grads.keys() == model.params.keys()
    worst = max(rel_diff(grads[k], t_grads[k]) for k in grads)
    assert worst < 1e-10, worst
    return worst


# -- gradients ------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_mlp_gradients_finite_differences_and_torch(depth, activation, rng):
    model = MLP(_sizes(depth), activation=activation, rng=depth)
    X, Y = _data(rng)
    result = check_gradients(model, X, Y)
    assert set(result.errors) == set(model.params)
    assert result.worst < 1e-6, str(result)
    _assert_matches_torch(model, X, Y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_with_dropout_gradients_fixed_mask(activation, rng):
    model = MLP(_sizes(3), activation=activation, dropout=0.3, rng=3)
    X, Y = _data(rng)
    # Every Dropout layer draws from the model's one generator; restoring its state
    # before each evaluation gives every evaluation the same masks.
    dropouts = [layer for layer, _ in model.layers if isinstance(layer, Dropout)]
    assert len(dropouts) == 2
    freeze = RngFreezer(dropouts[0])

    def loss():
        freeze()
        return model.loss_and_grads(X, Y, training=True)[0]

    freeze()
    _, grads = model.loss_and_grads(X, Y, training=True)
    assert any(np.any(layer.cache[1] == 0) for layer in dropouts)   # something was dropped
    for name, p in model.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, p)) < 1e-6, name
    # torch, with the masks of the last forward pass.
    freeze()
    _assert_matches_torch(model, X, Y, training=True)


def test_mse_network_gradients(rng):
    model = MLP([3, 5, 2], activation="tanh", loss="mse", rng=0)
    X, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    assert check_gradients(model, X, T).worst < 1e-6
    _assert_matches_torch(model, X, T)


def test_sample_weight_gradients(rng):
    model = MLP(_sizes(2), activation="sigmoid", rng=1)
    X, Y = _data(rng)
    w = rng.uniform(0.1, 3.0, size=X.shape[0])
    assert check_gradients(model, X, Y, sample_weight=w).worst < 1e-6
    _assert_matches_torch(model, X, Y, sample_weight=w)


def test_logistic_regression_gradients(rng):
    model = LogisticRegression(num_features=5, num_classes=4)
    # Move away from the all-zero start so every entry of the gradient is generic.
    model.params["W"][...] = rng.normal(size=(5, 4))
    model.params["b"][...] = rng.normal(size=4)
    X, Y = _data(rng)
    assert check_gradients(model, X, Y).worst < 1e-6
    _assert_matches_torch(model, X, Y)


def test_feedforward_net_gradients(rng):
    model = FeedforwardNeuralNet(input_size=5, hidden_size=8, output_size=4, rng=0)
    X, Y = _data(rng, n=10)
    assert list(model.params) == ["W1", "b1", "W2", "b2"]
    assert check_gradients(model, X, Y).worst < 1e-6
    _assert_matches_torch(model, X, Y)


# -- the worked example ---------------------------------------------------------------
def test_tiny_example_by_hand():
    # Two rows, two features, two classes, logistic regression with small integer weights.
    X = np.array([[1.0, 2.0],
                  [0.0, 1.0]])
    W = np.array([[1.0, -1.0],
                  [0.0, 1.0]])
    b = np.array([0.0, 1.0])
    Y = np.array([[1.0, 0.0],      # row 1 is class 0
                  [0.0, 1.0]])     # row 2 is class 1
    model = LogisticRegression(num_features=2, num_classes=2, learning_rate=0.1)
    model.params["W"][...] = W
    model.params["b"][...] = b

    # Forward, Z = X W + b:
    #   row 1: [1*1 + 2*0 + 0, 1*(-1) + 2*1 + 1] = [1, 2]
    #   row 2: [0*1 + 1*0 + 0, 0*(-1) + 1*1 + 1] = [0, 2]
    np.testing.assert_array_equal(model.forward(X), [[1.0, 2.0], [0.0, 2.0]])

    # Softmax of [1, 2] is [1/(1+e), e/(1+e)] = [0.268941, 0.731059]
    # (e = 2.718282, 1 + e = 3.718282, 1/3.718282 = 0.268941);
    # softmax of [0, 2] is [1/(1+e^2), e^2/(1+e^2)] = [0.119203, 0.880797]
    # (e^2 = 7.389056, 1 + e^2 = 8.389056, 1/8.389056 = 0.119203).
    P = model.predict(X)
    np.testing.assert_allclose(P, [[0.268941, 0.731059], [0.119203, 0.880797]], atol=5e-7)
    np.testing.assert_allclose(P[0, 0], 1 / (1 + math.e), rtol=1e-15)

    # Loss: the mean over rows of -log(probability of the true class)
    #   = (-log 0.268941 - log 0.880797) / 2 = (1.313262 + 0.126928) / 2 = 0.720095.
    # In closed form: (log(1 + e) + log(1 + e^-2)) / 2.
    loss, grads = model.loss_and_grads(X, Y)
    assert loss == pytest.approx(0.720095, abs=5e-7)
    assert loss == pytest.approx((math.log(1 + math.e) + math.log(1 + math.exp(-2))) / 2,
                                 rel=1e-15)

    # dZ = (P - Y) / N with N = 2:
    #   row 1: [0.268941 - 1, 0.731059 - 0] / 2 = [-0.365529,  0.365529]
    #   row 2: [0.119203 - 0, 0.880797 - 1] / 2 = [ 0.059601, -0.059601]
    # dW = X^T dZ, X^T = [[1, 0], [2, 1]]:
    #   dW[0] = 1*row1 + 0*row2 = [-0.365529, 0.365529]
    #   dW[1] = 2*row1 + 1*row2 = [-0.731059 + 0.059601, 0.731059 - 0.059601]
    #         = [-0.671457, 0.671457]
    # db = row1 + row2 = [-0.365529 + 0.059601, 0.365529 - 0.059601] = [-0.305928, 0.305928]
    np.testing.assert_allclose(grads["W"], [[-0.365529, 0.365529],
                                            [-0.671457, 0.671457]], atol=1e-6)
    np.testing.assert_allclose(grads["b"], [-0.305928, 0.305928], atol=1e-6)

    # One step with learning rate 0.1: W - 0.1 dW, b - 0.1 db.
    returned = model.step(X, Y)
    assert returned == pytest.approx(0.720095, abs=5e-7)
    np.testing.assert_allclose(model.params["W"], [[1.0365529, -1.0365529],
                                                   [0.0671457, 0.9328543]], atol=1e-7)
    np.testing.assert_allclose(model.params["b"], [0.0305928, 0.9694072], atol=1e-7)


# -- dtypes, seeds, step, predict -------------------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float32_end_to_end(activation, rng):
    model = MLP([5, 6, 6, 4], activation=activation, dropout=0.2, rng=0, dtype=np.float32)
    X, Y = _data(rng)
    assert all(p.dtype == np.float32 for p in model.params.values())
    loss, grads = model.loss_and_grads(X, Y)           # float64 data is cast to float32
    assert isinstance(loss, float)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.forward(X.astype(np.float32)).dtype == np.float32
    assert model.predict(X).dtype == np.float32
    assert model.predict_proba(X).dtype == np.float32
    for _ in range(3):
        model.step(X, Y, optimizer=SGD(lr=0.1))
    assert all(p.dtype == np.float32 for p in model.params.values())
    # The float32 model computes the same function as a float64 copy, to float32 precision.
    model64 = MLP([5, 6, 6, 4], activation=activation, rng=0)
    for k in model64.params:
        model64.params[k][...] = model.params[k]
    np.testing.assert_allclose(model.predict(X), model64.predict(X), rtol=1e-4, atol=1e-6)


def test_same_rng_bit_identical(rng):
    X, Y = _data(rng)
    runs = []
    for _ in range(2):
        model = MLP([5, 6, 6, 4], activation="tanh", dropout=0.25, rng=42)
        for _ in range(5):                   # dropout masks come from the same rng
            model.step(X, Y, optimizer=SGD(lr=0.1))
        runs.append(model.params)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    a = MLP([5, 6, 4], rng=np.random.default_rng(9)).params
    b = MLP([5, 6, 4], rng=9).params
    c = MLP([5, 6, 4], rng=10).params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])


def test_feedforward_net_draws_like_the_homework():
    # After np.random.seed(s), the homework's xavier_init draws W1 then W2 from the global
    # generator: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
    np.random.seed(7)
    model = FeedforwardNeuralNet(input_size=64, hidden_size=32, output_size=10)
    np.random.seed(7)
    a1, a2 = np.sqrt(6.0 / 96), np.sqrt(6.0 / 42)
    W1 = np.random.uniform(low=-a1, high=a1, size=[64, 32])
    W2 = np.random.uniform(low=-a2, high=a2, size=[32, 10])
    np.testing.assert_array_equal(model.params["W1"], W1)
    np.testing.assert_array_equal(model.params["W2"], W2)
    np.testing.assert_array_equal(model.params["b1"], np.zeros(32))
    np.testing.assert_array_equal(model.params["b2"], np.zeros(10))
    lr = LogisticRegression(num_features=64, num_classes=10)
    assert list(lr.params) == ["W", "b"]
    np.testing.assert_array_equal(lr.params["W"], np.zeros((64, 10)))
    np.testing.assert_array_equal(lr.params["b"], np.zeros(10))


@pytest.mark.parametrize("factory", [
    lambda: LogisticRegression(num_features=5, num_classes=4, learning_rate=0.05),
    lambda: FeedforwardNeuralNet(5, 6, 4, learning_rate=0.05, rng=1),
])
def test_step_returns_loss_before_update_and_does_p_minus_lr_g(factory, rng):
    model = factory()
    X, Y = _data(rng)
    for _ in range(3):
        before = {k: v.copy() for k, v in model.params.items()}
        expected_loss, grads = model.loss_and_grads(X, Y)
        loss = model.step(X, Y)
        assert type(loss) is float
        assert loss == expected_loss
        # The homework's update, p = p - learning_rate * g, bit for bit.
        for k in before:
            np.testing.assert_array_equal(model.params[k], before[k] - 0.05 * grads[k])
    assert model.learning_rate == 0.05


def test_logistic_regression_starts_at_ln_k(rng):
    model = LogisticRegression(num_features=5, num_classes=4)
    X, Y = _data(rng)
    # Zero weights: every class has probability 1/4, so the loss is ln 4.
    assert model.step(X, Y) == pytest.approx(math.log(4), rel=1e-15)


def test_predict_returns_probabilities(rng, torch):

    model = MLP([5, 7, 3], activation="tanh", rng=2)
    X = rng.normal(size=(9, 5)) * 10
    P = model.predict(X)
    assert P.shape == (9, 3)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    logits = model.forward(X)
    np.testing.assert_allclose(P, torch.softmax(torch.tensor(logits), dim=1).numpy(),
                               rtol=1e-13, atol=1e-300)
    np.testing.assert_array_equal(model.predict_proba(X), P)
    np.testing.assert_array_equal(model.predict_classes(X), P.argmax(axis=1))
    # A regressor's predict returns its raw outputs.
    reg = MLP([5, 4, 2], loss="mse", rng=0)
    np.testing.assert_array_equal(reg.predict(X), reg.forward(X))


def test_predict_uses_evaluation_mode(rng):
    # Dropout is off in predict: two calls agree, and they equal the dropout-free network.
    model = MLP([5, 6, 4], dropout=0.5, rng=0)
    X = rng.normal(size=(4, 5))
    np.testing.assert_array_equal(model.predict(X), model.predict(X))
    plain = MLP([5, 6, 4], rng=0)
    np.testing.assert_array_equal(model.predict(X), plain.predict(X))


def test_inputs_are_not_modified(rng):
    model = MLP([5, 6, 4], rng=0)
    X, Y = _data(rng)
    X0, Y0 = X.copy(), Y.copy()
    model.loss_and_grads(X, Y)
    model.predict(X)
    model.step(X, Y, optimizer=SGD(lr=0.1))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


def test_config_is_json_and_rebuilds_the_architecture():
    model = MLP([5, 6, 7, 3], activation=["tanh", "relu"], dropout=0.1, init="he_uniform",
                rng=0, dtype=np.float32)
    config = json.loads(json.dumps(model.config))
    assert config == {"layer_sizes": [5, 6, 7, 3], "activation": ["tanh", "relu"],
                      "dropout": 0.1, "init": "he_uniform", "dtype": "float32",
                      "loss": "cross_entropy"}
    again = MLP(**config, rng=0)
    assert {k: (v.shape, v.dtype) for k, v in again.params.items()} == \
        {k: (v.shape, v.dtype) for k, v in model.params.items()}
    assert [repr(layer) for layer, _ in again.layers] == [repr(layer) for layer, _ in model.layers]


# -- summary and explain --------------------------------------------------------------
def test_summary_contents():
    text = MLP([64, 32, 10], rng=0).summary()
    # Parameter counts by hand: 64*32 + 32 = 2080; 32*10 + 10 = 330; total 2410.
    assert "W1 (64, 32), b1 (32,)" in text
    assert "W2 (32, 10), b2 (10,)" in text
    assert "2,080" in text and "330" in text
    assert "total parameters: 2,410" in text
    assert "ReLU" in text and "Affine" in text and "(N, 32)" in text
    lr_text = LogisticRegression(64, 10).summary()
    assert "W (64, 10), b (10,)" in lr_text and "total parameters: 650" in lr_text
    deep = MLP([8, 4, 4, 2], activation="sigmoid", dropout=0.5, rng=0).summary()
    # 8*4+4 = 36, 4*4+4 = 20, 4*2+2 = 10: 66 in all.
    assert "total parameters: 66" in deep and "Sigmoid" in deep and "Dropout(p=0.5)" in deep


@pytest.mark.parametrize("n", [7, 64, 32, 10])
def test_explain_names_the_real_shapes(n, rng):
    # n = 64, 32 and 10 are batch sizes equal to a parameter's size: those must still
    # print as numbers, not as N.
    model = MLP([64, 32, 10], rng=0)
    text = model.explain(rng.normal(size=(n, 64)))
    lines = [line.strip() for line in text.splitlines()]
    assert f"N = {n}" in lines
    for expected in [
        "Z1 = X @ W1 + b1 : (N, 64) @ (64, 32) + (32,) -> (N, 32)",
        "H1 = max(0, Z1) : (N, 32) -> (N, 32)",
        "Z2 = H1 @ W2 + b2 : (N, 32) @ (32, 10) + (10,) -> (N, 10)",
        "dZ2 = (softmax(Z2) - Y) / N : (N, 10)",
        "dW2 = H1^T @ dZ2 : (32, N) @ (N, 10) -> (32, 10)",
        "db2 = sum_rows(dZ2) : (N, 10) -> (10,)",
        "dH1 = dZ2 @ W2^T : (N, 10) @ (10, 32) -> (N, 32)",
        "dZ1 = dH1 * (Z1 > 0) : (N, 32)",
        "dW1 = X^T @ dZ1 : (64, N) @ (N, 32) -> (64, 32)",
        "db1 = sum_rows(dZ1) : (N, 32) -> (32,)",
    ]:
        assert expected in lines, f"missing {expected!r} in\n{text}"
    # Nobody needs the gradient with respect to the data.
    assert not any(line.startswith("dX") for line in lines)
    # The backward pass lists layers from the last to the first.
    assert lines.index(next(x for x in lines if x.startswith("dW2"))) < \
        lines.index(next(x for x in lines if x.startswith("dW1")))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_explain_shapes_are_consistent(depth, activation, rng):
    # Every weight-gradient line must read (a, N) @ (N, b) -> (a, b) with (a, b) the
    # weight's real shape, for any depth and activation (dropout included).
    sizes = [9, 8, 7, 6, 3][:depth] + [3] if depth < 4 else [9, 8, 7, 6, 3]
    model = MLP(sizes, activation=activation, dropout=0.2, rng=0)
    text = model.explain(rng.normal(size=(5, 9)))
    found = re.findall(r"d(W\d*) = \w+\^T @ d\w+ : \((\d+), N\) @ \(N, (\d+)\) -> "
                       r"\((\d+), (\d+)\)", text)
    assert len(found) == depth
    for name, a, b, a2, b2 in found:
        assert (int(a), int(b)) == (int(a2), int(b2)) == model.params[name].shape
    if depth > 1:
        assert "D1" in text                                  # the dropout node is named
        assert {"relu": "max(0, Z1)", "leaky_relu": "where(Z1 > 0", "tanh": "tanh(Z1)",
                "sigmoid": "exp(-Z1)"}[activation] in text


# -- the one layer walk -----------------------------------------------------------------
def test_walk_yields_every_layer_and_ends_at_the_logits(rng):
    model = MLP([5, 6, 4, 3], dropout=0.5, rng=0)
    X = rng.normal(size=(7, 5))
    steps = list(model.walk(X))
    assert [i for i, *_ in steps] == list(range(len(model.layers)))
    assert [(layer, names) for _, layer, names, _ in steps] == model.layers
    # Shapes follow the node names: Z1 (7, 6), H1, D1, Z2 (7, 4), H2, D2, Z3 (7, 3).
    assert [out.shape[1] for *_, out in steps] == [6, 6, 6, 4, 4, 4, 3]
    assert np.array_equal(steps[-1][-1], model.forward(X))  # evaluation mode: no dropout
    with pytest.raises(ValueError, match="X has 4 features but the model expects 5"):
        next(model.walk(np.zeros((2, 4))))


def test_walk_in_training_mode_draws_dropout_masks_like_forward():
    X = np.ones((4, 5))
    a, b = MLP([5, 6, 3], dropout=0.5, rng=1), MLP([5, 6, 3], dropout=0.5, rng=1)
    *_, (_, _, _, walked) = a.walk(X, training=True)
    assert np.array_equal(walked, b.forward(X, training=True))
    assert not np.array_equal(walked, a.forward(X))


def test_check_XY_is_public():
    model = MLP([3, 2], rng=0)
    X, Y = model.check_XY([[1, 2, 3]], [[0, 1]])
    assert X.dtype == Y.dtype == np.float64
    assert not hasattr(MLP, "_check_XY") and not hasattr(MLP, "_check_X")
    assert model.node_names() == ["X", "Z1"]


# --- X's finite check through the first layer's output -----------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("factory", [lambda: LogisticRegression(6, 3),
                                     lambda: FeedforwardNeuralNet(6, 4, 3, rng=0)])
@pytest.mark.parametrize("call", ["step", "loss_and_grads"])
def test_a_non_finite_X_is_named_through_the_first_output(rng, factory, bad, call):
    model = factory()
    X, Y = rng.normal(size=(9, 6)), np.eye(3)[rng.integers(0, 3, 9)]
    model.params["W1" if "W1" in model.params else "W"][2] = 0.0   # inf * 0 on that row
    assert model.scans_first_output(X)
    X[4, 2] = bad
    before = {k: v.copy() for k, v in model.params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no RuntimeWarning from the product either
        with pytest.raises(ValueError, match=r"^X must contain only finite values, got 1 "):
            getattr(model, call)(X, Y)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_a_finite_X_of_a_narrowing_first_layer_is_not_scanned(rng, monkeypatch):
    from chainrule import _validation, network

    model = FeedforwardNeuralNet(6, 4, 3, rng=0)
    X, Y = rng.normal(size=(9, 6)), np.eye(3)[rng.integers(0, 3, 9)]
    scanned = []
    for module in (_validation, network):
        real = module.all_finite
        monkeypatch.setattr(module, "all_finite",
                            lambda a, real=real: scanned.append(a.shape) or real(a))
    model.step(X, Y)
    assert (9, 4) in scanned and (9, 6) not in scanned, scanned


@pytest.mark.parametrize("case, expected", [
    ("homework", True), ("widening", False), ("float32 X", False), ("list X", False),
    ("dropout first", False)])
def test_scans_first_output_only_where_it_is_as_strict_and_cheaper(rng, case, expected):
    X = rng.normal(size=(5, 6))
    model = {"homework": LogisticRegression(6, 3), "widening": MLP([6, 8, 3], rng=0),
             "float32 X": LogisticRegression(6, 3), "list X": LogisticRegression(6, 3),
             "dropout first": MLP([6, 4, 3], rng=0)}[case]
    if case == "dropout first":
        model.layers.insert(0, (Dropout(0.5), ()))
    data = {"float32 X": X.astype(np.float32), "list X": X.tolist()}.get(case, X)
    assert model.scans_first_output(data) is expected


def test_a_regressor_with_one_output_takes_1d_targets_as_one_column():
    from chainrule.train import evaluate, fit

    random = np.random.default_rng(0)
    X = random.normal(size=(60, 5))
    t = X @ random.normal(size=5)
    model = MLP([5, 8, 1], loss="mse", rng=0)
    assert model.check_XY(X, t.tolist())[1].shape == (60, 1)
    loss, grads = model.loss_and_grads(X, t)
    loss_2d, grads_2d = model.loss_and_grads(X, t[:, None])
    assert loss == loss_2d and all(np.array_equal(grads[k], grads_2d[k]) for k in grads)
    column = MLP([5, 8, 1], loss="mse", rng=0)
    for m, target in ((model, t), (column, t[:, None])):
        fit(m, X, target, optimizer="adam", epochs=2, batch_size=16, rng=0, progress=False)
    assert all(np.array_equal(model.params[k], column.params[k]) for k in model.params)
    assert evaluate(model, X, t) == evaluate(column, X, t[:, None])


@pytest.mark.parametrize("labels, advice", [
    (np.arange(30) % 3 * 1.0, r"dtype float64: pass class labels as integers"),
    (np.array(list("abc") * 10), r"dtype <U1: pass class labels through chainrule\.data"),
])
def test_1d_labels_that_are_not_class_indices_say_what_a_classifier_takes(labels, advice):
    model = MLP([4, 5, 3], rng=0)
    X = np.zeros((30, 4))
    with pytest.raises(ValueError, match=r"Y must have shape \(N, 3\) \(one-hot or probability "
                                         r"rows\) or be "
                                         r"1-D integer class indices; got 1-D values of " + advice):
        model.loss_and_grads(X, labels)
    with pytest.raises(ValueError, match=r"Y must have shape \(N, 2\) \(one column per model "
                                         r"output\), got shape \(30,\)"):
        MLP([4, 5, 2], loss="mse", rng=0).loss_and_grads(X, np.arange(30) * 1.0)


def test_predict_classes_of_a_sigmoid_model_thresholds_each_output_and_regressors_refuse():
    random = np.random.default_rng(0)
    X = random.normal(size=(40, 3))
    binary = MLP([3, 4, 1], loss="binary_cross_entropy", rng=0)
    logits = binary.forward(X)
    np.testing.assert_array_equal(binary.predict_classes(X), (logits[:, 0] > 0).astype(int))
    assert set(np.unique(binary.predict_classes(X))) <= {0, 1}
    multilabel = MLP([3, 4, 2], loss="binary_cross_entropy", rng=1)
    np.testing.assert_array_equal(multilabel.predict_classes(X),
                                  (multilabel.forward(X) > 0).astype(int))
    regressor = MLP([3, 4, 2], loss="mse", rng=0)
    for method in ("predict_proba", "predict_classes"):
        with pytest.raises(TypeError, match=rf"{method} needs a classifier .* loss is "
                                            r"MeanSquaredError\(\): use predict"):
            getattr(regressor, method)(X)


def test_sequential_rng_seeds_its_dropout_layers_built_without_a_generator():
    from chainrule.layers import Affine
    from chainrule.models import Sequential

    def build(own=None):
        return Sequential([Affine(4, 50), Dropout(0.5, rng=own), Affine(50, 50),
                           Dropout(0.5), Affine(50, 3)], rng=0)

    X = np.ones((6, 4))

    def masks(model):
        outs = [out for *_, out in model.walk(X, training=True)]
        return outs[1] != 0, outs[3] != 0

    first, second = masks(build()), masks(build())
    # One seed, the same masks in two builds; the two layers' masks differ.
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], first[1])
    # A generator given to the layer is kept.
    own = np.random.default_rng(5)
    model = build(own)
    assert model.layers[1][0].rng is own and model.layers[3][0].rng is not own


def test_a_layer_that_does_not_fit_its_input_is_named_with_the_shape_it_got():
    import chainrule as cr

    # Built from the shapes the layers say: refused at once (Flatten gives 4 * 6 * 6).
    with pytest.raises(ValueError, match=r"layers\[3\] \(Affine\(64, 10\)\) cannot take "
                                         r"inputs of shape \(N, 144\): it takes 64 features"):
        cr.Sequential([cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 4, 3), cr.Flatten(),
                       cr.Affine(64, 10)], rng=0)

    class Doubling(cr.layers.Layer):   # widens without saying so: found when run
        def forward(self, inputs):
            return np.concatenate([inputs, inputs], axis=1)

        def backward(self, d_out):
            return d_out[:, :d_out.shape[1] // 2] + d_out[:, d_out.shape[1] // 2:]

    model = cr.Sequential([cr.Affine(64, 72), Doubling(), cr.Affine(64, 10)], rng=0)
    message = r"layers\[2\] \(Affine\(64, 10\)\) cannot take inputs of shape \(10, 144\): "
    with pytest.raises(ValueError, match=message):
        model.predict(np.zeros((10, 64)))
    with pytest.raises(ValueError, match=message):
        cr.fit(model, np.zeros((10, 64)), np.arange(10), optimizer="adam", epochs=1,
               progress=False)
