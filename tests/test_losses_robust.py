"""The robust regression losses (L1Loss, HuberLoss) and the multiclass hinge
(MultiMarginLoss), each checked against torch in float64 (kinks and ties included),
a NumPy restatement with row weights and central finite differences away from the
kinks; then their names, arguments, and the networks that end in them: training,
model files, checkpoints, evaluation and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_gradients, numerical_gradient, relative_error
from chainrule.losses import (
    LOSSES,
    CategoricalCrossEntropy,
    HuberLoss,
    L1Loss,
    Loss,
    MeanSquaredError,
    MultiMarginLoss,
    get_loss,
    is_multiclass,
)
from conftest import loss_and_grad, rel_diff, to_torch


def _torch(module, outputs, targets, *, indices=False):
    """torch's value and gradient of ``module(outputs, targets)`` (reduction 'mean')."""
    import torch

    z = to_torch(outputs, requires_grad=True)
    t = torch.from_numpy(np.asarray(targets)) if indices else to_torch(targets)
    value = module(z, t)
    value.backward()
    return value.item(), z.grad.numpy()


def _grid(rng, shape, step=0.25, span=12):
    """Random multiples of ``step``: differences between them are exact, so ties and
    kinks can be placed exactly."""
    return rng.integers(-span, span + 1, size=shape) * step


def _margin_case(rng, n, k, margin):
    """Scores on a grid with, in every row, one class exactly at the hinge's kink
    (``margin - x_y + x_i == 0``), one tied with the true class and the rest random."""
    x, y = _grid(rng, (n, k)), rng.integers(0, k, size=n)
    rows = np.arange(n)
    at_kink, tied = (y + 1) % k, (y + 2) % k
    x[rows, at_kink] = x[rows, y] - margin
    if k > 2:
        x[rows, tied] = x[rows, y]
    return x, y, at_kink


# --- L1Loss ---------------------------------------------------------------------------

@pytest.mark.parametrize("n, m", [(1, 1), (6, 3), (15, 4)])
def test_l1_against_torch_with_ties(n, m, rng, torch):
    out, target = rng.normal(size=(n, m)), rng.normal(size=(n, m))
    target.flat[::2] = out.flat[::2]        # d == 0 exactly: torch's subgradient is 0
    loss, grad = loss_and_grad(L1Loss(), out, target)
    t_loss, t_grad = _torch(torch.nn.L1Loss(), out, target)
    assert isinstance(loss, float)
    assert loss == pytest.approx(t_loss, rel=1e-13)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-14, atol=0)
    assert np.all(grad.flat[::2] == 0)
    # Restated: L = mean|d|, dL/do = sign(d) / (N M).
    assert loss == pytest.approx(np.mean(np.abs(out - target)), rel=1e-14)
    np.testing.assert_array_equal(grad, np.sign(out - target) / (n * m))


def test_l1_finite_differences_away_from_ties(rng):
    out, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    out += 0.01 * np.sign(out - target)     # |d| > 0.01 >> eps
    loss_obj, w = L1Loss(), rng.uniform(0.1, 2.0, size=5)
    for weights in (None, w):
        _, grad = loss_and_grad(loss_obj, out, target, weights)
        numeric = numerical_gradient(
            lambda weights=weights: loss_obj.forward(out, target, weights), out)
        assert relative_error(grad, numeric) < 1e-8


# --- HuberLoss ------------------------------------------------------------------------

@pytest.mark.parametrize("delta", [0.5, 1.0, 2.75])
@pytest.mark.parametrize("n, m", [(1, 1), (8, 3)])
def test_huber_against_torch_at_and_around_delta(delta, n, m, rng, torch):
    target = _grid(rng, (n, m))
    d = _grid(rng, (n, m), step=0.125, span=40)   # inside and outside [-delta, delta]
    d.flat[::3] = delta * np.where(rng.random(d.flat[::3].shape) < 0.5, -1, 1)  # |d| == delta
    d.flat[1::3] = 0.0
    out = target + d                               # exact: d == out - target
    assert np.array_equal(out - target, d)
    loss, grad = loss_and_grad(HuberLoss(delta=delta), out, target)
    t_loss, t_grad = _torch(torch.nn.HuberLoss(delta=delta), out, target)
    assert loss == pytest.approx(t_loss, rel=1e-14)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-14, atol=0)
    # Restated: 0.5 d^2 below delta, delta (|d| - delta / 2) from it on; the gradient
    # is the clipped residual, +-delta / (N M) at |d| == delta from either piece.
    a = np.abs(d)
    per_entry = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    assert loss == pytest.approx(per_entry.mean(), rel=1e-14)
    np.testing.assert_array_equal(grad, np.clip(d, -delta, delta) / (n * m))
    assert np.all(np.abs(grad.flat[::3]) == delta / (n * m))


@pytest.mark.parametrize("delta", [0.3, 1.0, 4.0])
def test_huber_against_torch_random(delta, rng, torch):
    out, target = rng.normal(scale=2.0, size=(9, 4)), rng.normal(size=(9, 4))
    loss, grad = loss_and_grad(HuberLoss(delta), out, target)
    t_loss, t_grad = _torch(torch.nn.HuberLoss(delta=delta), out, target)
    assert loss == pytest.approx(t_loss, rel=1e-14)
    assert rel_diff(grad, t_grad) < 1e-14


def test_huber_finite_differences_away_from_the_kinks(rng):
    delta = 0.8
    out, target = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    near = np.abs(np.abs(out - target) - delta) < 0.01
    out[near] += 0.05                              # no residual within 0.01 of the kink
    assert np.all(np.abs(np.abs(out - target) - delta) > 1e-3)
    huber, w = HuberLoss(delta), rng.uniform(0.1, 2.0, size=6)
    for weights in (None, w):
        _, grad = loss_and_grad(huber, out, target, weights)
        numeric = numerical_gradient(
            lambda weights=weights: huber.forward(out, target, weights), out)
        assert relative_error(grad, numeric) < 1e-8


def test_huber_is_mse_and_l1_at_its_ends(rng):
    out, target = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    # delta above every residual: half the MSE; delta far below: delta (L1 - delta/2).
    assert HuberLoss(1e3).forward(out, target) == pytest.approx(
        0.5 * MeanSquaredError().forward(out, target), rel=1e-14)
    small = 1e-6
    assert HuberLoss(small).forward(out, target) == pytest.approx(
        small * (L1Loss().forward(out, target) - small / 2), rel=1e-12)


# --- MultiMarginLoss ------------------------------------------------------------------

@pytest.mark.parametrize("margin", [1.0, 0.5, 2.25])
@pytest.mark.parametrize("n, k", [(1, 2), (6, 3), (12, 10)])
def test_multi_margin_against_torch_with_kinks(margin, n, k, rng, torch):
    x, y, at_kink = _margin_case(rng, n, k, margin)
    loss, grad = loss_and_grad(MultiMarginLoss(margin=margin), x, y)
    t_loss, t_grad = _torch(torch.nn.MultiMarginLoss(p=1, margin=margin), x, y, indices=True)
    assert isinstance(loss, float)
    assert loss == pytest.approx(t_loss, rel=1e-14)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-14, atol=0)
    # A term exactly at 0 (on the kink) moves nothing, as in torch.
    assert np.all(grad[np.arange(n), at_kink] == 0)
    # One-hot rows give the same value and gradient as their class indices.
    loss_1h, grad_1h = loss_and_grad(MultiMarginLoss(margin=margin), x, np.eye(k)[y])
    assert loss_1h == loss
    np.testing.assert_array_equal(grad_1h, grad)


def test_multi_margin_against_torch_random_and_restated(rng, torch):
    n, k = 20, 7
    x, y = rng.normal(scale=2.0, size=(n, k)), rng.integers(0, k, size=n)
    loss, grad = loss_and_grad(MultiMarginLoss(), x, y)
    t_loss, t_grad = _torch(torch.nn.MultiMarginLoss(), x, y, indices=True)
    assert loss == pytest.approx(t_loss, rel=1e-14)
    assert rel_diff(grad, t_grad) < 1e-14
    # Restated: per row sum_{i != y} max(0, 1 - x_y + x_i) / K; CS231n's SVM loss is
    # that sum without the / K.
    z = 1 - x[np.arange(n), y][:, None] + x
    z[np.arange(n), y] = 0
    hinge = np.maximum(z, 0)
    assert loss == pytest.approx(hinge.sum(axis=1).mean() / k, rel=1e-14)
    cs231n = hinge.sum(axis=1).mean()
    assert loss * k == pytest.approx(cs231n, rel=1e-14)
    expected = (hinge > 0).astype(float)
    expected[np.arange(n), y] = -expected.sum(axis=1)
    np.testing.assert_allclose(grad, expected / (n * k), rtol=1e-15, atol=0)


def test_multi_margin_finite_differences_away_from_kinks(rng):
    n, k = 7, 5
    x, y = rng.normal(size=(n, k)), rng.integers(0, k, size=n)
    z = 1 - x[np.arange(n), y][:, None] + x
    x[np.abs(z) < 0.01] += 0.05                   # no term within 0.01 of its kink
    z = 1 - x[np.arange(n), y][:, None] + x
    z[np.arange(n), y] = 1                        # (the true class is no term)
    assert np.all(np.abs(z) > 1e-3)
    mm, w = MultiMarginLoss(), rng.uniform(0.1, 2.0, size=n)
    for targets in (y, np.eye(k)[y]):
        for weights in (None, w):
            _, grad = loss_and_grad(mm, x, targets, weights)
            numeric = numerical_gradient(
                lambda targets=targets, weights=weights: mm.forward(x, targets, weights), x)
            assert relative_error(grad, numeric) < 1e-8


# --- row weights against a NumPy restatement -----------------------------------------

def _restated(name, out, target, w, param):
    """``(loss, gradient)`` restated in NumPy with row weights ``w``."""
    if name == "multi_margin":
        n, k = out.shape
        rows = np.arange(n)
        z = param - out[rows, target][:, None] + out
        z[rows, target] = 0
        per_row = np.maximum(z, 0).sum(axis=1) / k
        g = (z > 0).astype(float)
        g[rows, target] = -g.sum(axis=1)
        return (w @ per_row) / w.sum(), g * w[:, None] / (w.sum() * k)
    d = out - target
    if name == "l1":
        per_entry, slope = np.abs(d), np.sign(d)
    else:
        a = np.abs(d)
        per_entry = np.where(a < param, 0.5 * d * d, param * (a - 0.5 * param))
        slope = np.clip(d, -param, param)
    scale = w[:, None] / (w.sum() * d.shape[1])
    return float(np.sum(per_entry * scale)), slope * scale


@pytest.mark.parametrize("name, param", [("l1", None), ("huber", 1.0), ("huber", 0.4),
                                         ("multi_margin", 1.0), ("multi_margin", 0.5)])
def test_sample_weight_against_numpy_restatement(name, param, rng):
    n, k = 9, 4
    w = np.array([2.0, 1.0, 0.0, 0.5, 3.0, 1.0, 0.25, 1.5, 1.0])
    if name == "multi_margin":
        out, target, _ = _margin_case(rng, n, k, param)
        loss_obj = MultiMarginLoss(param)
    else:
        out, target = rng.normal(size=(n, k)), rng.normal(size=(n, k))
        target[0] = out[0]                           # ties
        loss_obj = L1Loss() if name == "l1" else HuberLoss(param)
    loss, grad = loss_and_grad(loss_obj, out, target, w)
    r_loss, r_grad = _restated(name, out, target, w, param)
    assert loss == pytest.approx(r_loss, rel=1e-14)
    np.testing.assert_allclose(grad, r_grad, rtol=1e-14, atol=1e-300)
    assert np.all(grad[2] == 0)                      # a row of weight 0 moves nothing
    # Integer weights mean repeated rows.
    wi = np.array([2, 1, 0, 1, 3, 1, 1, 2, 1])
    rep = np.repeat(np.arange(n), wi)
    assert loss_obj.forward(out, target, wi) == pytest.approx(
        loss_obj.forward(out[rep], target[rep]), rel=1e-14)
    _, g2 = loss_and_grad(loss_obj, out, target, w, d_out=2.5)
    np.testing.assert_allclose(g2, 2.5 * grad, rtol=1e-15)


# --- dtypes, arguments, names ---------------------------------------------------------

@pytest.mark.parametrize("loss_obj", [L1Loss(), HuberLoss(0.7), MultiMarginLoss(0.5)],
                         ids=repr)
def test_float32_stays_float32(loss_obj, rng):
    out = rng.normal(size=(6, 3)).astype(np.float32)
    target = (rng.integers(0, 3, size=6) if loss_obj.multiclass
              else rng.normal(size=(6, 3)).astype(np.float32))
    for weights in (None, np.ones(6, dtype=np.float32)):
        loss, grad = loss_and_grad(loss_obj, out, target, weights)
        assert isinstance(loss, float) and grad.dtype == np.float32
        _, grad = loss_and_grad(loss_obj, out, target, weights, d_out=np.float64(0.5))
        assert grad.dtype == np.float32


@pytest.mark.parametrize("cls, arg", [(HuberLoss, "delta"), (MultiMarginLoss, "margin")])
def test_bad_constructor_arguments(cls, arg):
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=rf"{arg} must be a finite number > 0, got "):
            cls(**{arg: bad})
    for bad in ("1", None, True, [1.0]):
        with pytest.raises(TypeError, match=rf"{arg} must be a real number, got "
                                            rf"{type(bad).__name__}"):
            cls(**{arg: bad})
    assert getattr(cls(**{arg: 3}), arg) == 3.0 and isinstance(getattr(cls(**{arg: 3}), arg),
                                                               float)


def test_bad_inputs_name_the_argument(rng):
    with pytest.raises(ValueError, match=r"outputs and targets must have the same shape, "
                                         r"got outputs \(2, 3\) and targets \(2, 2\)"):
        L1Loss().forward(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="targets must contain only finite"):
        HuberLoss().forward(np.ones((2, 2)), np.array([[1.0, np.nan], [0.0, 0.0]]))
    x = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\], got "
                                         r"values in \[0, 4\]"):
        MultiMarginLoss().forward(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels must hold one class index per row \(3\)"):
        MultiMarginLoss().forward(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must be one-hot rows .* for "
                                         r"MultiMarginLoss, got row 1 = \[0.5, 0.5, 0.0, 0.0\]"):
        MultiMarginLoss().forward(x, np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1]]))
    with pytest.raises(ValueError, match=r"labels must be one-hot rows .* got row 0"):
        MultiMarginLoss().forward(x, np.array([[np.nan, 1, 0, 0]] * 3))
    with pytest.raises(ValueError, match="scores and labels must have the same shape"):
        MultiMarginLoss().forward(x, np.eye(3))
    with pytest.raises(ValueError, match="sample_weight"):
        L1Loss().forward(np.ones((2, 2)), np.ones((2, 2)), np.array([1.0, -1.0]))
    for loss_obj in (L1Loss(), HuberLoss(), MultiMarginLoss()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            loss_obj.backward()


def test_names_configs_and_repr():
    assert LOSSES["l1"] is L1Loss and LOSSES["huber"] is HuberLoss
    assert LOSSES["multi_margin"] is MultiMarginLoss
    assert isinstance(get_loss("l1"), L1Loss)
    assert isinstance(get_loss("huber"), HuberLoss) and get_loss("huber").delta == 1.0
    assert isinstance(get_loss("multi_margin"), MultiMarginLoss)
    with pytest.raises(ValueError, match=r"'huber', 'l1', 'mse', 'multi_margin'"):
        get_loss("svm")
    assert HuberLoss().get_config() == {} and repr(HuberLoss()) == "HuberLoss()"
    assert HuberLoss(0.5).get_config() == {"delta": 0.5}
    assert repr(HuberLoss(0.5)) == "HuberLoss(delta=0.5)"
    assert MultiMarginLoss().get_config() == {}
    assert MultiMarginLoss(2).get_config() == {"margin": 2.0}
    assert L1Loss().get_config() == {} and repr(L1Loss()) == "L1Loss()"
    # Only the argmax classifiers are multiclass.
    assert is_multiclass(MultiMarginLoss()) and is_multiclass(CategoricalCrossEntropy())
    assert not any(is_multiclass(cls()) for cls in LOSSES.values()
                   if cls not in (MultiMarginLoss, CategoricalCrossEntropy))
    assert not is_multiclass(object()) and not Loss.multiclass


def test_the_split_modules_are_the_same_classes():
    from chainrule import loss_base, losses, regression_losses

    assert losses.Loss is loss_base.Loss
    for name in regression_losses.__all__:
        assert getattr(losses, name) is getattr(regression_losses, name)
        assert name in losses.__all__
    assert all(hasattr(losses, name) for name in losses.__all__)


@pytest.mark.parametrize("loss", ["l1", "huber", "multi_margin"])
def test_explain_prints_the_equations(loss, rng):
    model = cr.MLP([3, 4, 2], loss=loss, rng=0)
    text = model.explain(rng.normal(size=(2, 3)))
    first = type(model.loss).equations[0].format(x="Z2")
    assert first in text
    with_arg = {"huber": HuberLoss(0.25), "multi_margin": MultiMarginLoss(0.25)}.get(loss)
    if with_arg is not None:
        assert "0.25" in cr.MLP([3, 4, 2], loss=with_arg, rng=0).explain(
            rng.normal(size=(2, 3)))


# --- networks -------------------------------------------------------------------------

def _torch_per_row(loss_obj, z, Y):
    import torch

    F = torch.nn.functional
    if isinstance(loss_obj, MultiMarginLoss):
        return F.multi_margin_loss(z, torch.from_numpy(Y), margin=loss_obj.margin,
                                   reduction="none")
    fn = (F.l1_loss(z, to_torch(Y), reduction="none") if isinstance(loss_obj, L1Loss)
          else F.huber_loss(z, to_torch(Y), reduction="none", delta=loss_obj.delta))
    return fn.mean(dim=1)


@pytest.mark.parametrize("loss_obj", [L1Loss(), HuberLoss(0.3), MultiMarginLoss(0.7)],
                         ids=repr)
def test_network_gradients_against_torch_and_finite_differences(loss_obj, rng, torch):
    model = cr.MLP([4, 6, 3], activation="tanh", loss=loss_obj, rng=3)
    X = rng.normal(size=(10, 4))
    Y = rng.integers(0, 3, size=10) if loss_obj.multiclass else rng.normal(size=(10, 3))
    w = rng.uniform(0.2, 2.0, size=10)
    for weights in (None, w):
        value, grads = model.loss_and_grads(X, Y, sample_weight=weights)
        params = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
        z = torch.tanh(to_torch(X) @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
        per_row = _torch_per_row(loss_obj, z, Y)
        ref = per_row.mean() if weights is None else (
            (per_row * to_torch(weights)).sum() / to_torch(weights).sum())
        ref.backward()
        assert value == pytest.approx(ref.item(), rel=1e-13)
        for k in grads:
            assert rel_diff(grads[k], params[k].grad.numpy()) < 1e-12, k
        assert check_gradients(model, X, Y, sample_weight=weights).passed(1e-6)


def _regression_data(n=80, d=4):
    random = np.random.default_rng(0)
    X = random.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0])[:d] + 0.1 * random.normal(size=n)
    y[::10] += 20.0                                  # outliers, the robust losses' case
    return X, y[:, None]


@pytest.mark.parametrize("loss", ["huber", HuberLoss(0.5), "l1"], ids=repr)
def test_robust_mlp_trains_saves_loads_and_exports(loss, tmp_path):
    X, Y = _regression_data()
    model = cr.MLP([4, 8, 1], loss=loss, rng=0)
    before = cr.evaluate(model, X, Y)["loss"]
    history = cr.fit(model, X, Y, optimizer=cr.optim.Adam(lr=0.02), epochs=40, batch_size=16,
                     progress=False, rng=0)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    # The outliers barely pull: the other rows are fitted (mse's median error is 1.9).
    inliers = np.arange(len(Y)) % 10 != 0
    assert np.median(np.abs(model.predict(X) - Y)[inliers]) < 0.3
    assert cr.evaluate(model, X, Y)["loss"] < before
    assert "accuracy" not in history.history and "accuracy" not in cr.evaluate(model, X, Y)
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    assert type(back.loss) is type(model.loss)
    assert back.loss.get_config() == model.loss.get_config()
    assert back.loss_and_grads(X, Y)[0] == model.loss_and_grads(X, Y)[0]
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [o.name for o in session.get_outputs()] == ["outputs"]
    (out,) = session.run(None, {"X": X})
    np.testing.assert_allclose(out, model.predict(X), rtol=1e-12, atol=1e-12)


def test_huber_delta_is_kept_by_model_files_and_is_part_of_a_run(tmp_path):
    from chainrule.checkpoint import CheckpointMismatchError

    X, Y = _regression_data(n=40)
    seq = cr.Sequential([cr.Affine(4, 5), cr.ReLU(), cr.Affine(5, 1)], rng=0,
                        loss=HuberLoss(delta=0.25))
    cr.fit(seq, X, Y, optimizer="adam", epochs=2, progress=False)
    cr.io.save(seq, tmp_path / "s.npz")
    back = cr.io.load(tmp_path / "s.npz")
    assert isinstance(back.loss, HuberLoss) and back.loss.delta == 0.25
    assert back.loss_and_grads(X, Y)[0] == seq.loss_and_grads(X, Y)[0]
    state, _ = cr.io.sequential.sequential_state(
        cr.Sequential([cr.Affine(4, 1)], rng=0, loss="huber"))
    assert "loss_config" not in state["config"]     # the default delta: nothing stored

    def run(delta, epochs, **kw):
        model = cr.MLP([4, 5, 1], rng=0, loss=HuberLoss(delta=delta))
        return cr.fit(model, X, Y, optimizer="adam", epochs=epochs, progress=False, rng=0,
                      checkpoint=tmp_path / "ck.npz", **kw)
    run(2.0, 2)
    assert run(2.0, 3, resume=True).epochs == 3
    with pytest.raises(CheckpointMismatchError, match="model.loss"):
        run(0.5, 4, resume=True)


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_multi_margin_mlp_classifies_digits(tmp_path):
    X, y = _digits()
    train, test = np.arange(len(y)) % 5 != 0, np.arange(len(y)) % 5 == 0
    model = cr.MLP([64, 32, 10], loss="multi_margin", rng=0)
    history = cr.fit(model, X[train], y[train], optimizer="adam", epochs=8, batch_size=32,
                     progress=False, rng=0, validation_data=(X[test], y[test]))
    assert history["accuracy"][-1] > history["accuracy"][0]
    result = cr.evaluate(model, X[test], y[test])
    assert result["accuracy"] > 0.9, result
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1], rel=1e-15)
    predicted = model.predict_classes(X[test])
    assert predicted.shape == (test.sum(),)
    assert np.mean(predicted == y[test]) == pytest.approx(result["accuracy"], rel=1e-15)
    scores = model.predict(X[test])                   # the scores themselves, (N, K)
    np.testing.assert_array_equal(scores.argmax(axis=1), predicted)
    with pytest.raises(TypeError, match=r"predict_proba needs a classifier .* "
                                        r"MultiMarginLoss\(\): .*predict_classes"):
        model.predict_proba(X[:2])
    # One-hot rows train the same run as class indices.
    twin = cr.MLP([64, 32, 10], loss="multi_margin", rng=0)
    same = cr.fit(twin, X[train], np.eye(10)[y[train]], optimizer="adam", epochs=1,
                  batch_size=32, progress=False, rng=0)
    first = cr.MLP([64, 32, 10], loss="multi_margin", rng=0)
    ref = cr.fit(first, X[train], y[train], optimizer="adam", epochs=1, batch_size=32,
                 progress=False, rng=0)
    assert same["loss"] == ref["loss"] and same["accuracy"] == ref["accuracy"]


def test_multi_margin_model_file_onnx_and_early_stopping_on_accuracy(tmp_path):
    X, y = _digits()
    X, y = X[:300], y[:300]
    model = cr.MLP([64, 16, 10], loss=MultiMarginLoss(margin=0.5), rng=1)
    cr.fit(model, X, y, optimizer="adam", epochs=3, progress=False, rng=0,
           validation_fraction=0.2,
           early_stopping=cr.EarlyStopping(monitor="val_accuracy", patience=5))
    cr.io.save(model, tmp_path / "mm.npz")
    back = cr.io.load(tmp_path / "mm.npz")
    assert isinstance(back.loss, MultiMarginLoss) and back.loss.margin == 0.5
    np.testing.assert_array_equal(back.predict_classes(X), model.predict_classes(X))
    assert cr.evaluate(back, X, y) == cr.evaluate(model, X, y)
    with pytest.raises(ValueError, match=r"a MultiMarginLoss classifier needs at least 2 "
                                         r"outputs"):
        cr.MLP([4, 3, 1], loss="multi_margin")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    classes = [f"digit{k}" for k in range(10)]
    cr.io.export_onnx(model, tmp_path / "mm.onnx", classes=classes)
    session = ort.InferenceSession(str(tmp_path / "mm.onnx"))
    assert [o.name for o in session.get_outputs()] == ["label", "logits"]
    label, logits = session.run(None, {"X": X})
    np.testing.assert_allclose(logits, model.predict(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(label, np.array(classes)[model.predict_classes(X)])


def test_command_line_takes_robust_regressors_and_margin_classifiers(tmp_path, capsys):
    from chainrule.cli import main

    X, Y = _regression_data(n=30)
    np.savez(tmp_path / "reg.npz", X=X, y=Y[:, 0])
    model = cr.MLP([4, 5, 1], loss=HuberLoss(0.5), rng=0)
    cr.io.save(model, tmp_path / "huber.npz")
    assert main(["evaluate", str(tmp_path / "huber.npz"), "--data",
                 str(tmp_path / "reg.npz")]) == 0
    assert "RMSE = " in capsys.readouterr().out
    # A multi-margin classifier: evaluate counts its argmax, predict writes its scores.
    margin = cr.MLP([4, 5, 3], loss="multi_margin", rng=0)
    cr.io.save(margin, tmp_path / "margin.npz")
    labels = margin.predict_classes(X)
    np.savez(tmp_path / "cls.npz", X=X, y=labels)
    assert main(["evaluate", str(tmp_path / "margin.npz"), "--data",
                 str(tmp_path / "cls.npz")]) == 0
    assert f"accuracy = 1.0000 ({len(X)}/{len(X)})" in capsys.readouterr().out
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "margin.npz"), "--data", str(tmp_path / "cls.npz"),
                 "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "row,predicted,score_0,score_1,score_2"
    first = [float(v) for v in lines[1].split(",")[2:]]
    np.testing.assert_array_equal(first, margin.predict(X)[0])   # (the rows in one batch)
    assert main(["export", str(tmp_path / "margin.npz"), str(tmp_path / "m.onnx")]) == 0


@pytest.mark.parametrize("loss_obj", [L1Loss(), HuberLoss(), MultiMarginLoss()], ids=repr)
def test_weights_whose_sum_overflows_are_refused(loss_obj):
    # Each weight finite, their sum inf: every row's share would be 0, the loss 0.
    outputs, targets = np.ones((3, 2)), (np.zeros((3, 2)) if not loss_obj.multiclass
                                          else np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"sample_weight must have a finite sum in float64, "
                                         r"got weights up to 1e\+308 whose sum overflows"):
        loss_obj.forward(outputs, targets, np.full(3, 1e308))
    assert loss_obj.forward(outputs, targets, np.full(3, 1e300)) == pytest.approx(
        loss_obj.forward(outputs, targets, np.ones(3)))
