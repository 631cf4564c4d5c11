"""scikit-learn's learning-rate schedules and momentum, against references restated here.

The references are written out from ``sklearn/neural_network/_stochastic_optimizers.py``
(``SGDOptimizer``) and ``_multilayer_perceptron.py`` (``_fit_stochastic``), not taken
from chainrule:

* velocity ``v = momentum * v - lr * g``; the parameters move by ``v``, or with Nesterov
  by ``momentum * v - lr * g`` (the new ``v``);
* the rate changes only at the end of an epoch: 'invscaling' sets
  ``learning_rate_init / (t + 1) ** power_t`` with ``t`` the samples seen so far;
  'adaptive' divides it by 5 when the loss stalls, and stops once it is <= 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.optim import SGD, EpochLR, invscaling_lr, make_optimizer

SHAPE = (4, 3)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    curvature = rng.uniform(0.5, 2.0, SHAPE)
    target = rng.standard_normal(SHAPE)
    noise = [0.1 * rng.standard_normal(SHAPE) for _ in range(40)]
    start = rng.standard_normal(SHAPE)

    def grad(t, p):
        return curvature * (p - target) + noise[t]

    return start, grad


def _sklearn_sgd_reference(start, grad, lrs, momentum, nesterov):
    """scikit-learn's SGDOptimizer._get_updates, one rate per step from ``lrs``."""
    p = start.copy()
    v = np.zeros_like(p)
    for t, lr in enumerate(lrs):
        g = grad(t, p)
        v = momentum * v - lr * g
        p = p + (momentum * v - lr * g if nesterov else v)
    return p


def _chainrule_sgd(start, grad, lr, momentum, nesterov, steps, on_step=None):
    params = {"W": start.copy()}
    opt = SGD(lr=lr, momentum=momentum, nesterov=nesterov)
    for t in range(steps):
        opt.step(params, {"W": grad(t, params["W"])})
        if on_step is not None:
            on_step(t)
    return params["W"]


# --- momentum: the same steps as scikit-learn under a constant rate ------------------------

@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_sgd_momentum_matches_sklearn_with_constant_lr(nesterov, momentum):
    start, grad = _problem()
    ours = _chainrule_sgd(start, grad, 0.1, momentum, nesterov, steps=30)
    ref = _sklearn_sgd_reference(start, grad, [0.1] * 30, momentum, nesterov)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("nesterov", [True, False])
def test_sklearn_momentum_matches_torch_with_constant_lr(nesterov):
    # The third implementation: torch's buffer form, buf = m buf + g, p -= lr (g + m buf).
    torch = pytest.importorskip("torch")
    start, grad = _problem(seed=3)
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=nesterov)
    for t in range(30):
        opt.zero_grad()
        p.grad = torch.tensor(grad(t, p.detach().numpy()), dtype=torch.float64)
        opt.step()
    ref = _sklearn_sgd_reference(start, grad, [0.05] * 30, 0.9, nesterov)
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-12, atol=1e-13)


def test_sgd_momentum_differs_from_sklearn_after_a_rate_change():
    # Documented difference: after the rate drops, SGD scales the momentum accumulated so
    # far by the new rate, scikit-learn's velocity keeps the old rate in it.
    start, grad = _problem()
    schedule = EpochLR(0.1, "adaptive")

    def on_step(t):
        if t == 9:
            schedule.stalled()          # 0.1 -> 0.02 from step 10 on

    ours = _chainrule_sgd(start, grad, schedule, 0.9, True, steps=20, on_step=on_step)
    ref = _sklearn_sgd_reference(start, grad, [0.1] * 10 + [0.02] * 10, 0.9, True)
    assert np.max(np.abs(ours - ref)) > 1e-3
    # Up to the change both agree.
    ours10 = _chainrule_sgd(start, grad, 0.1, 0.9, True, steps=10)
    np.testing.assert_allclose(ours10, _sklearn_sgd_reference(start, grad, [0.1] * 10,
                                                              0.9, True), rtol=1e-12)


# --- invscaling_lr --------------------------------------------------------------------

@pytest.mark.parametrize("step, power_t", [(0, 0.5), (1, 0.5), (199, 0.5), (1000, 0.25),
                                           (37, 0.0)])
def test_invscaling_lr_formula(step, power_t):
    # SGDOptimizer.iteration_ends: learning_rate_init / (time_step + 1) ** power_t.
    expected = 0.01 / math.pow(step + 1, power_t)
    assert invscaling_lr(step, base_lr=0.01, power_t=power_t) == pytest.approx(expected,
                                                                               rel=1e-15)


def test_invscaling_lr_errors():
    with pytest.raises(ValueError, match="step"):
        invscaling_lr(-1, base_lr=0.1)
    with pytest.raises(ValueError, match="power_t"):
        invscaling_lr(1, base_lr=0.1, power_t=-0.5)
    with pytest.raises(ValueError, match="base_lr"):
        invscaling_lr(1, base_lr=0.0)


# --- EpochLR --------------------------------------------------------------------------

def test_epoch_lr_invscaling_follows_samples_seen():
    # scikit-learn: epoch 1 at learning_rate_init; after epoch e (n samples each) the
    # rate is learning_rate_init / (e * n + 1) ** power_t for the whole next epoch.
    schedule = EpochLR(0.1, "invscaling", power_t=0.5)
    n = 150
    assert schedule(0) == schedule(7) == 0.1
    for epoch in range(1, 4):
        schedule.epoch_end(epoch * n)
        assert schedule(12345) == pytest.approx(0.1 / math.sqrt(epoch * n + 1), rel=1e-15)


def test_epoch_lr_constant_never_moves_and_stops_on_stall():
    schedule = EpochLR(0.05)
    schedule.epoch_end(1000)
    assert schedule(3) == 0.05
    assert schedule.stalled() is True
    assert EpochLR(0.05, "invscaling").stalled() is True


def test_epoch_lr_adaptive_divides_by_five_then_stops():
    # SGDOptimizer.trigger_stopping for 'adaptive': stop if lr <= 1e-6, else lr /= 5.
    schedule = EpochLR(1e-3, "adaptive")
    schedule.epoch_end(500)
    assert schedule(0) == 1e-3                   # epochs alone do not change it
    rates = [1e-3]
    while not schedule.stalled():
        rates.append(schedule.current)
    # 1e-3 / 5^k for k = 0..5: the last, 3.2e-7, is the first <= 1e-6.
    np.testing.assert_allclose(rates, [1e-3 / 5 ** k for k in range(6)], rtol=1e-14)
    assert schedule.current <= 1e-6 < rates[-2]


def test_epoch_lr_adaptive_stops_at_the_floor_itself():
    # "learning_rate <= 1e-6" in scikit-learn: a rate equal to the floor stops.
    schedule = EpochLR(0.5, "adaptive", min_lr=0.1)
    assert schedule.stalled() is False and schedule.current == 0.1
    assert schedule.stalled() is True and schedule.current == 0.1


def test_epoch_lr_drives_an_optimizer():
    schedule = EpochLR(0.5, "adaptive")
    opt = make_optimizer("sgd", lr=schedule)
    params = {"w": np.array([1.0])}
    opt.step(params, {"w": np.array([1.0])})
    assert params["w"][0] == pytest.approx(0.5)
    schedule.stalled()
    opt.step(params, {"w": np.array([1.0])})
    assert params["w"][0] == pytest.approx(0.5 - 0.1)
    assert opt.current_lr() == pytest.approx(0.1)


def test_epoch_lr_errors():
    with pytest.raises(ValueError, match="schedule must be one of"):
        EpochLR(0.1, "optimal")
    with pytest.raises(ValueError, match="base_lr"):
        EpochLR(0.0)
    with pytest.raises(ValueError, match="factor"):
        EpochLR(0.1, "adaptive", factor=1.0)
    with pytest.raises(ValueError, match="samples_seen"):
        EpochLR(0.1, "invscaling").epoch_end(-1)


# --- Adam's epsilon: scikit-learn's form for the estimators, PyTorch's for Adam ------------

def _sklearn_adam_reference(start, grad, lr, betas, eps, steps):
    """scikit-learn's AdamOptimizer._get_updates: ``lr_t = lr * sqrt(1 - b2^t) / (1 -
    b1^t)``, ``p += -lr_t * m / (sqrt(v) + eps)``."""
    p = start.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        g = grad(t - 1, p)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g ** 2
        lr_t = lr * math.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t)
        p = p + -lr_t * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("eps", [1e-8, 1e-2, 1.0])
def test_the_estimators_adam_adds_epsilon_as_sklearn_does(eps):
    from chainrule.estimator.solvers import SklearnAdam

    start, grad = _problem(seed=5)
    params = {"W": start.copy()}
    opt = SklearnAdam(lr=0.05, eps=eps)
    for t in range(30):
        opt.step(params, {"W": grad(t, params["W"])})
    ref = _sklearn_adam_reference(start, grad, 0.05, (0.9, 0.999), eps, steps=30)
    np.testing.assert_allclose(params["W"], ref, rtol=1e-12, atol=1e-13)


def test_pytorchs_adam_differs_from_sklearns_for_a_large_epsilon():
    # chainrule.optim.Adam keeps torch.optim.Adam's form (checked against torch in
    # test_optim.py): with eps=1 the two forms take visibly different steps.
    from chainrule.optim import Adam

    start, grad = _problem(seed=5)
    params = {"W": start.copy()}
    opt = Adam(lr=0.05, eps=1.0)
    for t in range(30):
        opt.step(params, {"W": grad(t, params["W"])})
    ref = _sklearn_adam_reference(start, grad, 0.05, (0.9, 0.999), 1.0, steps=30)
    assert np.abs(params["W"] - ref).max() > 1e-3


def test_epoch_lr_moves_under_fit_only_through_a_callback_as_its_docstring_says():
    # fit never calls epoch_end: alone, the rate stays base_lr; the docstring's
    # callback gives scikit-learn's 'invscaling' rates, epoch by epoch.
    from chainrule.models import MLP
    from chainrule.train import fit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = X[:, :1] * 2.0
    n = X.shape[0]
    rates = {}
    for with_callback in (False, True):
        schedule = EpochLR(0.01, "invscaling")

        def move_rate(epoch, logs, model, schedule=schedule):
            schedule.epoch_end((epoch + 1) * n)

        fit(MLP([3, 4, 1], loss="mse", rng=0), X, Y, optimizer=SGD(lr=schedule), epochs=4,
            batch_size=None, progress=False, diagnostics=False,
            callbacks=[move_rate] if with_callback else [])
        rates[with_callback] = schedule.current
    assert rates[False] == 0.01
    assert rates[True] == invscaling_lr(4 * n, base_lr=0.01)
    assert "callback" in EpochLR.__doc__ and "checkpoints" in EpochLR.__doc__
