"""Losses: finite differences in float64 and torch autograd, extreme logits, weights."""

import math
import warnings

import numpy as np
import pytest

from chainrule.gradcheck import numerical_gradient, relative_error
from chainrule.losses import CategoricalCrossEntropy, MeanSquaredError, get_loss
from conftest import random_one_hot, rel_diff, to_torch, torch_weighted_mean


def _torch_ce(torch, logits, Y, sample_weight=None, *, targets="index"):
    F = torch.nn.functional

    z = to_torch(logits, requires_grad=True)
    if targets == "index":
        per_row = F.cross_entropy(z, to_torch(Y).argmax(dim=1), reduction="none")
    else:   # class-probability targets
        per_row = F.cross_entropy(z, to_torch(Y), reduction="none")
    loss = torch_weighted_mean(per_row, sample_weight)
    loss.backward()
    return loss.item(), z.grad.numpy()


def _ours(loss_obj, outputs, targets, sample_weight=None, d_out=1.0):
    value = loss_obj.forward(outputs, targets, sample_weight)
    grad, d_targets = loss_obj.backward(d_out)
    assert d_targets is None
    return value, grad


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
@pytest.mark.parametrize("n, k", [(1, 2), (5, 3), (16, 10)])
@pytest.mark.parametrize("targets", ["index", "probability"])
def test_cross_entropy_against_torch(n, k, scale, targets, rng, torch):
    logits = rng.normal(scale=scale, size=(n, k))
    Y = random_one_hot(rng, n, k)
    loss, grad = _ours(CategoricalCrossEntropy(), logits, Y)
    t_loss, t_grad = _torch_ce(torch, logits, Y, targets=targets)
    assert isinstance(loss, float)
    assert math.isfinite(loss)
    assert loss == pytest.approx(t_loss, rel=1e-12, abs=1e-300)
    assert rel_diff(grad, t_grad) < 1e-10


@pytest.mark.parametrize("n, k", [(1, 2), (4, 3), (9, 6)])
def test_cross_entropy_finite_differences(n, k, rng):
    logits = rng.normal(scale=3.0, size=(n, k))
    Y = random_one_hot(rng, n, k)
    ce = CategoricalCrossEntropy()
    _, grad = _ours(ce, logits, Y)
    numeric = numerical_gradient(lambda: ce.forward(logits, Y), logits)
    assert relative_error(grad, numeric) < 1e-6


def test_cross_entropy_backward_scales_with_d_out(rng):
    logits, Y = rng.normal(size=(4, 3)), random_one_hot(rng, 4, 3)
    _, g1 = _ours(CategoricalCrossEntropy(), logits, Y)
    _, g2 = _ours(CategoricalCrossEntropy(), logits, Y, d_out=2.5)
    np.testing.assert_allclose(g2, 2.5 * g1, rtol=1e-15)


def test_cross_entropy_closed_form_restated(rng):
    # loss = -(1/N) sum_n log softmax(z_n)[y_n]; dL/dz = (softmax(z) - Y) / N.
    z, Y = rng.normal(size=(5, 4)), random_one_hot(rng, 5, 4)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss, grad = _ours(CategoricalCrossEntropy(), z, Y)
    assert loss == pytest.approx(-np.mean(np.log(p[Y == 1])), rel=1e-13)
    np.testing.assert_allclose(grad, (p - Y) / 5, rtol=1e-13, atol=1e-17)


def test_cross_entropy_exact_at_1e300():
    z = np.array([[1e300, 0.0, -1e300],
                  [1e300, 0.0, -1e300]])
    Y = np.array([[1.0, 0.0, 0.0],     # the right class, far ahead: loss exactly 0
                  [0.0, 0.0, 1.0]])    # the wrong class: loss exactly 2e300
    # log_softmax(z) = z - max(z) - log(1 + 0 + 0) = [0, -1e300, -2e300] in each row,
    # so the mean loss is (0 + 2e300) / 2 = 1e300. The homework's clipped version
    # would report -log(1e-15) / 2 ~ 17.3 instead.
    loss, grad = _ours(CategoricalCrossEntropy(), z, Y)
    assert loss == 1e300
    # softmax = [1, 0, 0] in both rows: gradient (p - Y) / 2.
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0], [0.5, 0.0, -0.5]])


@pytest.mark.parametrize("weights", [None, [1.0, 0.5]])
def test_cross_entropy_when_the_shift_overflows_to_minus_inf(weights):
    # 0 - 1.5e308 - 1.5e308 overflows: the shifted logit, and its log-probability, is
    # -inf. A label of 0 there must contribute 0, not 0 * (-inf) = nan. Row 0 picks its
    # maximum (log-probability exactly 0); row 1 the middle logit, 1.5e308 below its
    # maximum: -log softmax = 1.5e308 exactly (the other terms of the sum are 1 and 0).
    z = np.array([[1.5e308, 0.0, -1.5e308],
                  [1.5e308, 0.0, -1.5e308]])
    Y = np.array([[1.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0]])
    with np.errstate(over="ignore"):
        loss, grad = _ours(CategoricalCrossEntropy(), z, Y, weights)
    w = np.ones(2) if weights is None else np.asarray(weights)
    assert loss == pytest.approx(w[1] / w.sum() * 1.5e308, rel=1e-15)
    # softmax = [1, 0, 0] in both rows: gradient (p - Y) * w_n / sum(w).
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0],
                                         [w[1] / w.sum(), -w[1] / w.sum(), 0.0]])


def test_cross_entropy_logits_1e4_no_overflow(rng, torch):
    z = rng.normal(scale=1e4, size=(8, 5))
    Y = random_one_hot(rng, 8, 5)
    with np.errstate(over="raise", invalid="raise", divide="raise"), \
            warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = _ours(CategoricalCrossEntropy(), z, Y)
    t_loss, t_grad = _torch_ce(torch, z, Y)
    assert loss == pytest.approx(t_loss, rel=1e-13)
    assert np.all(np.isfinite(grad))
    assert rel_diff(grad, t_grad) < 1e-12


def test_cross_entropy_sample_weight_against_torch_and_repetition(rng, torch):
    z, Y = rng.normal(size=(6, 4)), random_one_hot(rng, 6, 4)
    w = np.array([2.0, 1.0, 0.0, 1.0, 3.0, 0.5])
    loss, grad = _ours(CategoricalCrossEntropy(), z, Y, w)
    t_loss, t_grad = _torch_ce(torch, z, Y, w)
    assert loss == pytest.approx(t_loss, rel=1e-13)
    assert rel_diff(grad, t_grad) < 1e-12
    # Integer weights mean repeated rows: the loss equals the unweighted loss on the
    # data with row n repeated w_n times.
    wi = np.array([2, 1, 0, 1, 3, 1])
    rep = np.repeat(np.arange(6), wi)
    weighted, _ = _ours(CategoricalCrossEntropy(), z, Y, wi)
    repeated, _ = _ours(CategoricalCrossEntropy(), z[rep], Y[rep])
    assert weighted == pytest.approx(repeated, rel=1e-14)
    # Finite differences through the weighted loss.
    ce = CategoricalCrossEntropy()
    numeric = numerical_gradient(lambda: ce.forward(z, Y, w), z)
    assert relative_error(grad, numeric) < 1e-6


@pytest.mark.parametrize("eps", [0.1, 0.45, 1.0])
@pytest.mark.parametrize("labels", ["one_hot", "indices"])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_against_torch_and_finite_differences(eps, labels, weighted, rng,
                                                              torch):
    """CategoricalCrossEntropy(label_smoothing=eps) is torch's CrossEntropyLoss(
    label_smoothing=eps): loss and gradient, one-hot rows or class indices, row weights
    (torch's per-row losses weighted), and finite differences."""
    z, Y = rng.normal(scale=3.0, size=(7, 5)), random_one_hot(rng, 7, 5)
    y = Y.argmax(axis=1)
    w = rng.uniform(0.1, 2.0, size=7) if weighted else None
    ce = CategoricalCrossEntropy(label_smoothing=eps)
    targets = Y if labels == "one_hot" else y
    loss, grad = _ours(ce, z, targets, w)
    zt = to_torch(z, requires_grad=True)
    per_row = torch.nn.functional.cross_entropy(zt, torch.from_numpy(y), label_smoothing=eps,
                                                reduction="none")
    ref = torch_weighted_mean(per_row, w)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-13)
    assert rel_diff(grad, zt.grad.numpy()) < 1e-12
    numeric = numerical_gradient(lambda: ce.forward(z, targets, w), z)
    assert relative_error(grad, numeric) < 1e-6
    plain, _ = _ours(CategoricalCrossEntropy(), z, targets, w)
    assert loss != pytest.approx(plain, rel=1e-6)   # the option changes the loss
    assert repr(ce) == f"CategoricalCrossEntropy(label_smoothing={eps!r})"
    with pytest.raises(ValueError, match="label_smoothing"):
        CategoricalCrossEntropy(label_smoothing=1.5)


def test_cross_entropy_float32_stays_float32(rng):
    z = rng.normal(size=(4, 3)).astype(np.float32)
    Y = random_one_hot(rng, 4, 3).astype(np.float32)
    loss, grad = _ours(CategoricalCrossEntropy(), z, Y)
    assert grad.dtype == np.float32 and isinstance(loss, float)
    _, grad_w = _ours(CategoricalCrossEntropy(), z, Y, np.ones(4, dtype=np.float32))
    assert grad_w.dtype == np.float32


def test_cross_entropy_warns_on_probabilities():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    Y = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    ce = CategoricalCrossEntropy()
    with pytest.warns(UserWarning, match="probabilities"):
        ce.forward(probs, Y)
    # Logits do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CategoricalCrossEntropy().forward(np.array([[2.0, -1.0, 0.5], [0.1, 3.0, -2.0]]), Y)


def test_cross_entropy_warns_on_probabilities_inside_a_network():
    # The mistake the guard is for: a softmax layer placed before the fused loss. The
    # network turns the loss's input checks off, but the guard must still speak.
    from chainrule.functional import softmax
    from chainrule.layers import Affine, Layer
    from chainrule.models import Network
    from chainrule.train import fit

    class Softmax(Layer):
        def forward(self, inputs):
            self.cache = softmax(inputs, axis=1)
            return self.cache

        def backward(self, d_out):
            s = self.cache
            return s * (d_out - (d_out * s).sum(axis=1, keepdims=True))

    def network():
        params = {"W": np.full((3, 2), 0.1), "b": np.zeros(2)}
        return Network([(Affine(), ("W", "b")), (Softmax(), ())], params,
                       CategoricalCrossEntropy())

    X, Y = np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]]
    with pytest.warns(UserWarning, match="probabilities"):
        network().loss_and_grads(X, Y)
    with pytest.warns(UserWarning, match="probabilities"):
        fit(network(), X, Y, optimizer="sgd", epochs=1, progress=False)


@pytest.mark.parametrize("n, m", [(1, 1), (5, 3), (12, 7)])
def test_mse_against_torch_and_finite_differences(n, m, rng, torch):
    F = torch.nn.functional

    out, target = rng.normal(size=(n, m)), rng.normal(size=(n, m))
    mse = MeanSquaredError()
    loss, grad = _ours(mse, out, target)
    ot = to_torch(out, requires_grad=True)
    lt = F.mse_loss(ot, to_torch(target))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-13)
    assert rel_diff(grad, ot.grad.numpy()) < 1e-12
    numeric = numerical_gradient(lambda: mse.forward(out, target), out)
    assert relative_error(grad, numeric) < 1e-6
    # Restated: L = mean((o - t)^2), dL/do = 2 (o - t) / (N M).
    assert loss == pytest.approx(np.mean((out - target) ** 2), rel=1e-14)
    np.testing.assert_allclose(grad, 2 * (out - target) / (n * m), rtol=1e-14)


def test_mse_sample_weight(rng, torch):
    out, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    w = np.array([1.0, 2.0, 0.0, 0.5, 1.5])
    mse = MeanSquaredError()
    loss, grad = _ours(mse, out, target, w)
    ot = to_torch(out, requires_grad=True)
    per_row = ((ot - to_torch(target)) ** 2).mean(dim=1)
    lt = (per_row * to_torch(w)).sum() / to_torch(w).sum()
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-13)
    assert rel_diff(grad, ot.grad.numpy()) < 1e-12
    numeric = numerical_gradient(lambda: mse.forward(out, target, w), out)
    assert relative_error(grad, numeric) < 1e-6


def test_mse_float32(rng):
    out = rng.normal(size=(3, 2)).astype(np.float32)
    _, grad = _ours(MeanSquaredError(), out, np.zeros_like(out))
    assert grad.dtype == np.float32


@pytest.mark.parametrize("cls", [CategoricalCrossEntropy, MeanSquaredError])
def test_backward_before_forward_raises(cls):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        cls().backward()


def test_get_loss():
    assert isinstance(get_loss("cross_entropy"), CategoricalCrossEntropy)
    assert isinstance(get_loss("mse"), MeanSquaredError)
    ce = CategoricalCrossEntropy()
    assert get_loss(ce) is ce
    with pytest.raises(ValueError, match=r"loss must be one of .*got 'hinge'"):
        get_loss("hinge")
