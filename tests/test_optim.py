"""Tests for chainrule.optim: update rules, schedules, state, atomicity, bad input.

Every optimizer is checked twice, against two oracles that do not share code with it:

* a NumPy implementation of the update written out below from the papers / the
  ``torch.optim`` documentation (``_ref_sgd``, ``_ref_adam``, ``_ref_rmsprop``,
  ``_ref_adagrad``), and
* ``torch.optim`` itself in float64, fed the same gradients through ``p.grad``.

The gradients come from a fixed quadratic plus a fixed random sequence, evaluated at
each framework's *own* current parameters, so any difference in an update feeds
back into the following steps instead of being hidden by a precomputed sequence.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from functools import partial

import numpy as np
import pytest

from chainrule.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    _Moments,
    cosine_lr,
    cosine_restarts_lr,
    exponential_lr,
    get_optimizer,
    linear_warmup,
    multistep_lr,
    onecycle_lr,
    step_lr,
)

N_STEPS = 20
RTOL = 1e-12
SHAPES = {"W1": (5, 4), "b1": (4,), "W2": (4, 3), "b2": (3,)}


# --- a shared problem: quadratic bowl + fixed noise ---------------------------------

def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    curvature = {k: rng.uniform(0.5, 2.0, s) for k, s in SHAPES.items()}
    target = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    noise = [{k: 0.1 * rng.standard_normal(s) for k, s in SHAPES.items()}
             for _ in range(N_STEPS)]

    def grad(t, current):
        # d/dp of 0.5 * c * (p - target)^2, plus this step's noise
        return {k: (curvature[k] * (current[k] - target[k]) + noise[t][k]).astype(dtype)
                for k in SHAPES}

    return params, grad


def _run_chainrule(opt, params, grad, steps=N_STEPS):
    params = {k: v.copy() for k, v in params.items()}
    for t in range(steps):
        opt.step(params, grad(t, params))
    return params


def _run_torch(torch, make_opt, params, grad, steps=N_STEPS, make_sched=None):
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for k, v in params.items()}
    opt = make_opt(list(tensors.values()))
    sched = make_sched(torch.optim.lr_scheduler, opt) if make_sched else None
    for t in range(steps):
        current = {k: v.detach().numpy().copy() for k, v in tensors.items()}
        g = grad(t, current)
        for k, v in tensors.items():
            v.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
        if sched is not None:
            sched.step()
    return {k: v.detach().numpy() for k, v in tensors.items()}


def _kw_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


def _assert_close(actual, expected, rtol=RTOL):
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=rtol, atol=rtol, err_msg=k)


# --- independent NumPy restatements of the update rules -----------------------------

def _ref_sgd(params, grad, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, steps=N_STEPS):
    """torch.optim.SGD docs: g += wd*p; b_1 = g, b_t = mu*b_{t-1} + (1-tau)*g;
    g = g + mu*b_t (Nesterov) or b_t; p -= lr_t*g. ``lr`` may be a function of t-1."""
    p = {k: v.copy() for k, v in params.items()}
    b = {}
    for t in range(steps):
        lr_t = lr(t) if callable(lr) else lr
        g_all = grad(t, p)
        for k in p:
            g = g_all[k] + weight_decay * p[k]
            if momentum != 0:
                b[k] = g.copy() if t == 0 else momentum * b[k] + (1 - dampening) * g
                g = g + momentum * b[k] if nesterov else b[k]
            p[k] = p[k] - lr_t * g
    return p


def _ref_adam(params, grad, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False, steps=N_STEPS, amsgrad=False):
    """Kingma & Ba (2015), Algorithm 1, with the bias corrections folded as in
    torch: p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). L2 (Adam) adds wd*p to
    g; decoupled (AdamW, Loshchilov & Hutter 2019) first scales p by (1 - lr*wd).
    AMSGrad (Reddi et al. 2018, as torch): the running maximum of v in place of v."""
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    v_max = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, steps + 1):
        lr_t = lr(t - 1) if callable(lr) else lr
        g_all = grad(t - 1, p)
        for k in p:
            g = g_all[k]
            if decoupled:
                p[k] = p[k] * (1 - lr_t * weight_decay)
            else:
                g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v2[k] = beta2 * v2[k] + (1 - beta2) * g ** 2
            m_hat = m[k] / (1 - beta1 ** t)
            v_max[k] = np.maximum(v_max[k], v2[k])
            v_hat = (v_max[k] if amsgrad else v2[k]) / (1 - beta2 ** t)
            # torch's eps sits outside sqrt(v_hat), as in the paper
            p[k] = p[k] - lr_t * m_hat / (np.sqrt(v_hat) + eps)
    return p


def _ref_rmsprop(params, grad, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, steps=N_STEPS):
    """Tieleman & Hinton (2012), lecture 6e, in torch.optim.RMSprop's documented form:
    v_t = alpha v + (1-alpha) g^2; centered: g_avg likewise and v_t - g_avg^2 under the
    root; eps added after the root; momentum accumulates g / denominator."""
    p = {k: v.copy() for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    g_avg = {k: np.zeros_like(v) for k, v in p.items()}
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(steps):
        lr_t = lr(t) if callable(lr) else lr
        g_all = grad(t, p)
        for k in p:
            g = g_all[k] + weight_decay * p[k]
            v2[k] = alpha * v2[k] + (1 - alpha) * g ** 2
            g_avg[k] = alpha * g_avg[k] + (1 - alpha) * g
            denom = np.sqrt(v2[k] - g_avg[k] ** 2 if centered else v2[k]) + eps
            if momentum > 0:
                buf[k] = momentum * buf[k] + g / denom
                p[k] = p[k] - lr_t * buf[k]
            else:
                p[k] = p[k] - lr_t * g / denom
    return p


def _ref_adagrad(params, grad, lr, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, steps=N_STEPS):
    """Duchi, Hazan & Singer (2011), diagonal form, in torch.optim.Adagrad's documented
    form: the rate at step t is lr / (1 + (t-1) lr_decay); sum += g^2; eps after the root."""
    p = {k: v.copy() for k, v in params.items()}
    total = {k: np.full_like(v, initial_accumulator_value) for k, v in p.items()}
    for t in range(1, steps + 1):
        lr_t = lr(t - 1) if callable(lr) else lr
        g_all = grad(t - 1, p)
        for k in p:
            g = g_all[k] + weight_decay * p[k]
            total[k] = total[k] + g ** 2
            p[k] = p[k] - lr_t / (1 + (t - 1) * lr_decay) * g / (np.sqrt(total[k]) + eps)
    return p


# --- plain SGD: the homework's update, bit for bit ----------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_sgd_bit_identical_to_homework_update(dtype):
    params, grad = _problem(dtype=dtype)
    lr = 1e-2
    ours = _run_chainrule(SGD(lr=lr), params, grad, steps=10)
    homework = {k: v.copy() for k, v in params.items()}
    for t in range(10):
        g = grad(t, homework)
        for k in homework:
            homework[k] = homework[k] - lr * g[k]   # the seed's update
    for k in homework:
        assert ours[k].dtype == dtype
        assert np.array_equal(ours[k], homework[k]), k


def test_plain_sgd_updates_in_place():
    params, grad = _problem()
    before = {k: v for k, v in params.items()}
    SGD(lr=0.1).step(params, grad(0, params))
    for k in params:
        assert params[k] is before[k]


# --- SGD variants, Adam, AdamW: reference formula and torch.optim ------------------

SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.05),
    dict(lr=0.03, momentum=0.5, dampening=0.5, weight_decay=0.2),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=_kw_id)
def test_sgd_matches_formula_and_torch(kw, torch):
    params, grad = _problem(seed=1)
    ours = _run_chainrule(SGD(**kw), params, grad)
    _assert_close(ours, _ref_sgd(params, grad, **kw))
    theirs = _run_torch(torch, lambda ps: torch.optim.SGD(ps, foreach=False, **kw), params, grad)
    _assert_close(ours, theirs)
    # the run must actually have moved: a no-op optimizer would not pass this
    assert not np.allclose(ours["W1"], params["W1"])


ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=5e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=3e-2, betas=(0.0, 0.9), weight_decay=0.5),
    # AMSGrad: a short beta2 lets v fall between steps, where v_max then differs.
    dict(lr=5e-2, betas=(0.9, 0.5), amsgrad=True),
    dict(lr=2e-2, betas=(0.5, 0.8), weight_decay=0.2, amsgrad=True),
]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=_kw_id)
def test_adam_matches_formula_and_torch(kw, torch):
    params, grad = _problem(seed=2)
    ours = _run_chainrule(Adam(**kw), params, grad)
    ref_kw = {k: v for k, v in kw.items() if k != "betas"}
    beta1, beta2 = kw.get("betas", (0.9, 0.999))
    _assert_close(ours, _ref_adam(params, grad, beta1=beta1, beta2=beta2, **ref_kw))
    theirs = _run_torch(torch, lambda ps: torch.optim.Adam(ps, foreach=False, **kw), params, grad)
    _assert_close(ours, theirs)
    assert not np.allclose(ours["W1"], params["W1"])
    if kw.get("amsgrad"):   # the option changes the result on this problem
        plain = _run_chainrule(Adam(**{**kw, "amsgrad": False}), params, grad)
        assert not np.allclose(ours["W1"], plain["W1"], rtol=1e-6)


ADAMW_CASES = [
    dict(lr=1e-2),                       # default weight_decay=1e-2, as torch
    dict(lr=1e-2, weight_decay=0.3),
    dict(lr=2e-2, betas=(0.85, 0.95), eps=1e-7, weight_decay=1.0),
    dict(lr=5e-2, betas=(0.9, 0.5), weight_decay=0.1, amsgrad=True),
]


@pytest.mark.parametrize("kw", ADAMW_CASES, ids=_kw_id)
def test_adamw_matches_formula_and_torch(kw, torch):
    params, grad = _problem(seed=3)
    ours = _run_chainrule(AdamW(**kw), params, grad)
    ref_kw = {k: v for k, v in kw.items() if k != "betas"}
    ref_kw.setdefault("weight_decay", 1e-2)
    beta1, beta2 = kw.get("betas", (0.9, 0.999))
    _assert_close(ours, _ref_adam(params, grad, beta1=beta1, beta2=beta2, decoupled=True,
                                  **ref_kw))
    theirs = _run_torch(torch, lambda ps: torch.optim.AdamW(ps, foreach=False, **kw), params, grad)
    _assert_close(ours, theirs)


RMSPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=5e-3, alpha=0.9, eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=5e-3, momentum=0.9),
    dict(lr=1e-2, centered=True),
    dict(lr=5e-3, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.05),
]


ADAGRAD_CASES = [
    dict(lr=1e-1),
    dict(lr=1e-1, lr_decay=0.05),
    dict(lr=5e-2, weight_decay=0.1),
    dict(lr=1e-1, initial_accumulator_value=0.5, eps=1e-6),
    dict(lr=2e-1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1),
]
ADAPTIVE_CASES = ([(RMSprop, _ref_rmsprop, kw) for kw in RMSPROP_CASES]
                  + [(Adagrad, _ref_adagrad, kw) for kw in ADAGRAD_CASES])


@pytest.mark.parametrize("cls, ref, kw", ADAPTIVE_CASES,
                         ids=[f"{c.__name__}-{_kw_id(kw)}" for c, _, kw in ADAPTIVE_CASES])
def test_rmsprop_and_adagrad_match_formula_and_torch(cls, ref, kw, torch):
    params, grad = _problem(seed=11)
    ours = _run_chainrule(cls(**kw), params, grad)
    _assert_close(ours, ref(params, grad, **kw))
    theirs = _run_torch(torch, lambda ps: getattr(torch.optim, cls.__name__)(
        ps, foreach=False, **kw), params, grad)
    _assert_close(ours, theirs)
    assert not np.allclose(ours["W1"], params["W1"])


def test_rmsprop_and_adagrad_first_steps_by_hand():
    # One entry, g = 2 then g = 1, no eps to speak of.
    p = {"w": np.array([1.0])}
    opt = RMSprop(lr=0.1, alpha=0.5, eps=1e-300)
    opt.step(p, {"w": np.array([2.0])})      # v = 0.5 * 4 = 2: step 0.1 * 2 / sqrt(2)
    assert p["w"][0] == pytest.approx(1.0 - 0.1 * 2 / math.sqrt(2.0), rel=1e-15)
    opt.step(p, {"w": np.array([1.0])})      # v = 0.5 * 2 + 0.5 * 1 = 1.5
    assert p["w"][0] == pytest.approx(1.0 - 0.1 * math.sqrt(2.0) - 0.1 / math.sqrt(1.5),
                                      rel=1e-15)
    q = {"w": np.array([1.0])}
    ada = Adagrad(lr=0.1, lr_decay=1.0, eps=1e-300)
    ada.step(q, {"w": np.array([2.0])})      # sum 4: step 0.1 * 2 / 2
    ada.step(q, {"w": np.array([1.0])})      # sum 5, rate 0.1 / 2: step 0.05 / sqrt(5)
    assert q["w"][0] == pytest.approx(1.0 - 0.1 - 0.05 / math.sqrt(5.0), rel=1e-15)
    assert int(ada.state["w"]["step"]) == 2 and ada.state["w"]["sum"][0] == 5.0


def _adam_alone(make, name, params, grads_seq):
    """``name`` trained by an optimizer of its own on the steps where it is in ``params``."""
    p, opt = params[name].copy(), make()
    for grads in grads_seq:
        if name in grads:
            opt.step({name: p}, {name: grads[name]})
    return p, opt.state[name]


@pytest.mark.parametrize("make", [lambda: Adam(lr=1e-2, weight_decay=0.1),
                                  lambda: AdamW(lr=1e-2),
                                  lambda: Adam(lr=1e-2, betas=(0.9, 0.5), amsgrad=True)],
                         ids=["adam", "adamw", "amsgrad"])
def test_adam_updates_each_parameter_as_if_alone(make):
    # The moments of all parameters live in flat arrays shared by parameters of one
    # dtype and step count. Grouping must not change a bit: a parameter that joins
    # after three steps keeps its own step count, a float32 one stays float32, one
    # larger than a group's cap ("e") is a group of its own, between two others of its
    # dtype that share the scratch array with it, and each ends exactly where an Adam
    # of its own would take it.
    rng = np.random.default_rng(8)
    big = (260, 260)
    assert math.prod(big) > _Moments.MAX_ENTRIES
    params = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4).astype(np.float32),
              "e": rng.standard_normal(big), "f": rng.standard_normal(5),
              "c": rng.standard_normal((2, 2)), "d": rng.standard_normal(3).astype(np.float32)}
    grads_seq = [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()
                  if k in ("a", "b") or t >= 3} for t in range(6)]
    opt, ours = make(), {k: v.copy() for k, v in params.items()}
    for grads in grads_seq:
        opt.step({k: ours[k] for k in grads}, grads)
    assert sorted(g.names for g in opt._flat[1]) == [["a"], ["b"], ["d"], ["e"], ["f", "c"]]
    for k in params:
        alone, state = _adam_alone(make, k, params, grads_seq)
        assert ours[k].dtype == params[k].dtype
        assert np.array_equal(ours[k], alone), k
        assert int(opt.state[k]["step"]) == int(state["step"]) == (6 if k in "ab" else 3)
        for s in ("exp_avg", "exp_avg_sq"):
            assert np.array_equal(opt.state[k][s], state[s]), (k, s)


def test_adam_copies_and_replaced_state_entries_continue_correctly():
    # state entries are views into flat arrays: a deep copy or a pickle (whose
    # arrays are no longer views) and an entry the user replaces must all be honoured.
    params, grad = _problem(seed=9)
    straight = Adam(lr=1e-2)
    p_straight = _run_chainrule(straight, params, grad, steps=6)
    opt, p = Adam(lr=1e-2), {k: v.copy() for k, v in params.items()}
    for t in range(3):
        opt.step(p, grad(t, p))
    # (with the params, as a deep copy of an estimator copies both)
    runs = [copy.deepcopy((opt, p)), pickle.loads(pickle.dumps((opt, p)))]
    for t in range(3, 6):
        for c, pc in runs:
            c.step(pc, grad(t, pc))
    for c, pc in runs:
        for k in p:
            assert np.array_equal(pc[k], p_straight[k]), k
            for s in ("exp_avg", "exp_avg_sq", "step"):
                assert np.array_equal(c.state_dict()["state"][k][s],
                                      straight.state_dict()["state"][k][s]), (k, s)
    assert all(int(st["step"]) == 3 for st in opt.state.values())  # the copies' steps left it
    # A replaced entry: the next step starts W1's first moment from zeros, as a
    # state_dict edited the same way and loaded into a fresh Adam does.
    saved = opt.state_dict()
    saved["state"]["W1"]["exp_avg"][...] = 0.0
    fresh = Adam(lr=1e-2)
    fresh.load_state_dict(saved)
    opt.state["W1"]["exp_avg"] = np.zeros(SHAPES["W1"])
    p_fresh = {k: v.copy() for k, v in p.items()}
    opt.step(p, grad(3, p))
    fresh.step(p_fresh, grad(3, p_fresh))
    for k in p:
        assert np.array_equal(p[k], p_fresh[k]), k


def test_adam_state_of_the_wrong_shape_raises_before_any_update():
    params, grad = _problem(seed=10)
    opt = Adam(lr=1e-2)
    p = {k: v.copy() for k, v in params.items()}
    opt.step(p, grad(0, p))
    saved = opt.state_dict()
    saved["state"]["b2"]["exp_avg"] = np.zeros(1)  # would broadcast over (3,)
    opt.load_state_dict(saved)
    before = {k: v.copy() for k, v in p.items()}
    with pytest.raises(ValueError, match=r"state\['b2'\]\['exp_avg'\] must be a float array "
                                         r"of shape \(3,\) like params\['b2'\], got ndarray "
                                         r"float64 \(1,\)"):
        opt.step(p, grad(1, p))
    assert opt.steps == 1
    for k in p:
        assert np.array_equal(p[k], before[k]), k


def test_adam_and_adamw_weight_decay_differ():
    # L2-in-the-gradient and decoupled decay are different algorithms; a bug that
    # routed both through the same branch would make these equal.
    params, grad = _problem(seed=4)
    a = _run_chainrule(Adam(lr=1e-2, weight_decay=0.5), params, grad)
    w = _run_chainrule(AdamW(lr=1e-2, weight_decay=0.5), params, grad)
    assert not np.allclose(a["W1"], w["W1"], rtol=1e-6)


def test_adam_first_step_is_lr_times_sign():
    # Worked by hand: at t=1, m_hat = g and v_hat = g^2, so the step is
    # lr * g / (|g| + eps) = lr * sign(g) up to eps/|g|.
    p = {"w": np.array([1.0, -2.0, 3.0])}
    g = {"w": np.array([0.5, -4.0, 1e-3])}
    Adam(lr=0.1, eps=1e-12).step(p, g)
    np.testing.assert_allclose(p["w"], [0.9, -1.9, 2.9], rtol=1e-9)


def test_sgd_momentum_two_steps_by_hand():
    # p0 = 1, g = 2 both steps, lr = 0.1, momentum = 0.5:
    # b1 = 2 -> p1 = 1 - 0.2 = 0.8; b2 = 0.5*2 + 2 = 3 -> p2 = 0.8 - 0.3 = 0.5
    p = {"w": np.array([1.0])}
    opt = SGD(lr=0.1, momentum=0.5)
    opt.step(p, {"w": np.array([2.0])})
    assert p["w"][0] == pytest.approx(0.8, abs=1e-15)
    opt.step(p, {"w": np.array([2.0])})
    assert p["w"][0] == pytest.approx(0.5, abs=1e-15)


# --- learning-rate schedules --------------------------------------------------------

def _torch_lrs(torch, make_sched, base_lr, n):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_sched(torch.optim.lr_scheduler, opt)
    values = []
    for _ in range(n):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(values)


SCHEDULES = [
    ("step", partial(step_lr, base_lr=0.1, step_size=7, gamma=0.5),
     lambda lr_scheduler, o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 0.1, 40),
    ("exponential", partial(exponential_lr, base_lr=0.2, gamma=0.9),
     lambda lr_scheduler, o: lr_scheduler.ExponentialLR(o, gamma=0.9), 0.2, 40),
    ("cosine", partial(cosine_lr, base_lr=0.1, total_steps=30),
     lambda lr_scheduler, o: lr_scheduler.CosineAnnealingLR(o, T_max=30), 0.1, 31),
    ("cosine_min", partial(cosine_lr, base_lr=0.1, total_steps=25, min_lr=0.01),
     lambda lr_scheduler, o: lr_scheduler.CosineAnnealingLR(o, T_max=25, eta_min=0.01), 0.1, 26),
    ("warmup_constant", partial(linear_warmup, warmup_steps=5, schedule=0.3),
     lambda lr_scheduler, o: lr_scheduler.LinearLR(o, start_factor=1 / 5, end_factor=1.0,
                                                 total_iters=4), 0.3, 20),
    ("multistep", partial(multistep_lr, base_lr=0.1, milestones=[3, 10, 10, 17], gamma=0.5),
     lambda lr_scheduler, o: lr_scheduler.MultiStepLR(o, milestones=[3, 10, 10, 17],
                                                      gamma=0.5), 0.1, 25),
    ("cosine_restarts", partial(cosine_restarts_lr, base_lr=0.1, first_cycle=4, cycle_mult=2,
                                min_lr=0.001),
     lambda lr_scheduler, o: lr_scheduler.CosineAnnealingWarmRestarts(
         o, T_0=4, T_mult=2, eta_min=0.001), 0.1, 40),
    ("cosine_restarts_fixed", partial(cosine_restarts_lr, base_lr=0.2, first_cycle=5),
     lambda lr_scheduler, o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5), 0.2, 23),
    ("onecycle", partial(onecycle_lr, max_lr=0.5, total_steps=30),
     lambda lr_scheduler, o: lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=30,
                                                     cycle_momentum=False), 0.5, 30),
    ("onecycle_short_rise", partial(onecycle_lr, max_lr=0.2, total_steps=17, pct_start=0.1,
                                    div_factor=10.0, final_div_factor=100.0),
     lambda lr_scheduler, o: lr_scheduler.OneCycleLR(
         o, max_lr=0.2, total_steps=17, pct_start=0.1, div_factor=10.0,
         final_div_factor=100.0, cycle_momentum=False), 0.2, 17),
]


@pytest.mark.parametrize("name,ours,make_sched,base_lr,n", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch(name, ours, make_sched, base_lr, n, torch):
    expected = _torch_lrs(torch, make_sched, base_lr, n)
    got = np.array([ours(s) for s in range(n)])
    # torch's schedulers update recursively (lr_t from lr_{t-1}), ours in closed form
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15 * base_lr)


def test_schedule_values_by_hand():
    assert step_lr(0, base_lr=1.0, step_size=3, gamma=0.1) == 1.0
    assert step_lr(2, base_lr=1.0, step_size=3, gamma=0.1) == 1.0
    assert step_lr(3, base_lr=1.0, step_size=3, gamma=0.1) == pytest.approx(0.1)
    assert exponential_lr(2, base_lr=2.0, gamma=0.5) == 0.5
    assert cosine_lr(0, base_lr=1.0, total_steps=4) == 1.0
    assert cosine_lr(2, base_lr=1.0, total_steps=4) == pytest.approx(0.5)
    assert cosine_lr(4, base_lr=1.0, total_steps=4) == pytest.approx(0.0, abs=1e-16)
    # past total_steps ours stays at the floor (torch's cosine would rise again)
    assert cosine_lr(9, base_lr=1.0, total_steps=4, min_lr=0.2) == pytest.approx(0.2)
    # warm-up into a cosine: ramp towards cosine(4) = 0.5 + 0.5*cos(pi*4/10) over 4 steps
    sched = partial(linear_warmup, warmup_steps=4, schedule=cosine_lr, base_lr=1.0,
                    total_steps=10)
    target = 0.5 * (1 + math.cos(math.pi * 0.4))
    assert [sched(s) for s in range(4)] == pytest.approx([target * k / 4 for k in (1, 2, 3, 4)])
    assert sched(4) == pytest.approx(target)
    assert sched(7) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.7)))


@pytest.mark.parametrize("opt_name,ours_sched,make_sched", [
    ("sgd", partial(step_lr, base_lr=0.05, step_size=6, gamma=0.3),
     lambda lr_scheduler, o: lr_scheduler.StepLR(o, step_size=6, gamma=0.3)),
    ("adam", partial(cosine_lr, base_lr=0.05, total_steps=N_STEPS),
     lambda lr_scheduler, o: lr_scheduler.CosineAnnealingLR(o, T_max=N_STEPS)),
    ("adamw", partial(exponential_lr, base_lr=0.05, gamma=0.9),
     lambda lr_scheduler, o: lr_scheduler.ExponentialLR(o, gamma=0.9)),
])
def test_optimizer_with_schedule_matches_torch(opt_name, ours_sched, make_sched, torch):
    # torch: optimizer.step() uses the current lr, then scheduler.step() advances it;
    # ours: step k (0-based) uses lr(k). Both mean the first step uses lr(0).
    params, grad = _problem(seed=5)
    kw = {"sgd": dict(momentum=0.9), "adam": {}, "adamw": dict(weight_decay=0.2)}[opt_name]
    torch_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
                 "adamw": torch.optim.AdamW}[opt_name]
    ours = _run_chainrule(get_optimizer(opt_name, lr=ours_sched, **kw), params, grad)
    theirs = _run_torch(torch, lambda ps: torch_cls(ps, lr=ours_sched(0), foreach=False, **kw),
                        params, grad, make_sched=make_sched)
    _assert_close(ours, theirs)
    if opt_name == "sgd":
        _assert_close(ours, _ref_sgd(params, grad, lr=ours_sched, **kw))


def test_first_step_uses_lr_of_step_zero():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.5 if step == 0 else 100.0

    p = {"w": np.array([1.0])}
    opt = SGD(lr=schedule)
    assert opt.current_lr() == 0.5
    opt.step(p, {"w": np.array([1.0])})
    assert p["w"][0] == 0.5          # 1 - 0.5 * 1, not 1 - 100 * 1
    assert opt.steps == 1
    assert opt.current_lr() == 100.0
    assert 0 in seen and 1 in seen


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_schedule_value_raises_and_changes_nothing(bad):
    p = {"w": np.array([1.0, 2.0])}
    opt = SGD(lr=lambda step: bad, momentum=0.9)
    with pytest.raises(ValueError, match="lr schedule at step 0"):
        opt.step(p, {"w": np.array([1.0, 1.0])})
    assert np.array_equal(p["w"], [1.0, 2.0])
    assert opt.steps == 0 and opt.state == {}


@pytest.mark.parametrize("fn,kw,match", [
    (step_lr, dict(base_lr=0.1, step_size=0), "step_size"),
    (step_lr, dict(base_lr=-0.1, step_size=3), "base_lr"),
    (exponential_lr, dict(base_lr=0.1, gamma=float("nan")), "gamma"),
    (cosine_lr, dict(base_lr=0.1, total_steps=0), "total_steps"),
    (cosine_lr, dict(base_lr=0.1, total_steps=5, min_lr=-1.0), "min_lr"),
    (linear_warmup, dict(warmup_steps=0, schedule=0.1), "warmup_steps"),
    (linear_warmup, dict(warmup_steps=3, schedule=-0.1), "schedule"),
])
def test_bad_schedule_arguments(fn, kw, match):
    with pytest.raises(ValueError, match=match):
        fn(1, **kw)


def test_new_schedules_by_hand_and_their_limits():
    assert [multistep_lr(s, base_lr=1.0, milestones=(2, 4), gamma=0.5) for s in range(6)] == [
        1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    # 1cycle: the floor at the start, max_lr at the end of the rise, the last floor last.
    # (the rise ends at pct_start * total_steps - 1 = 4, as in torch)
    assert onecycle_lr(0, max_lr=1.0, total_steps=10, pct_start=0.5) == pytest.approx(1 / 25)
    assert onecycle_lr(4, max_lr=1.0, total_steps=10, pct_start=0.5) == pytest.approx(1.0)
    assert onecycle_lr(9, max_lr=1.0, total_steps=10, pct_start=0.5) == pytest.approx(4e-6)
    with pytest.raises(ValueError, match="step 11 is past the schedule's total_steps=11"):
        onecycle_lr(11, max_lr=1.0, total_steps=11)
    with pytest.raises(ValueError, match=r"pct_start must be in \(0, 1\), got 1.0"):
        onecycle_lr(0, max_lr=1.0, total_steps=11, pct_start=1.0)
    # Restarts: back at base_lr at 3, then a cycle twice as long.
    values = [cosine_restarts_lr(s, base_lr=1.0, first_cycle=3, cycle_mult=2) for s in range(10)]
    assert values[0] == values[3] == values[9] == 1.0 and values[6] == pytest.approx(0.5)
    with pytest.raises(TypeError, match="milestones must be a sequence"):
        multistep_lr(0, base_lr=1.0, milestones=3)
    with pytest.raises(ValueError, match="min_lr must be at most base_lr"):
        cosine_restarts_lr(0, base_lr=0.1, first_cycle=3, min_lr=0.2)


def test_negative_step_rejected():
    with pytest.raises(ValueError, match="step"):
        exponential_lr(-1, base_lr=0.1, gamma=0.9)


# --- state_dict round trip ----------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
    lambda: Adam(lr=1e-2, weight_decay=0.1),
    lambda: AdamW(lr=partial(cosine_lr, base_lr=1e-2, total_steps=N_STEPS)),
    lambda: Adam(lr=5e-2, betas=(0.9, 0.5), amsgrad=True),
    lambda: RMSprop(lr=1e-2, momentum=0.9, centered=True),
    lambda: Adagrad(lr=0.1, lr_decay=0.05),
], ids=["sgd_nesterov", "adam", "adamw_cosine", "amsgrad", "rmsprop", "adagrad"])
def test_state_dict_round_trip_is_bit_identical(make):
    params, grad = _problem(seed=6)
    straight = _run_chainrule(make(), params, grad)

    half = N_STEPS // 2
    p = {k: v.copy() for k, v in params.items()}
    first = make()
    for t in range(half):
        first.step(p, grad(t, p))
    saved = first.state_dict()
    # the saved state is a copy: further steps of the first optimizer leave it alone
    with pytest.warns(UserWarning, match="from other arrays than these"):
        first.step({k: v.copy() for k, v in p.items()}, grad(half, p))
    second = make()
    second.load_state_dict(saved)
    assert second.steps == half
    for t in range(half, N_STEPS):
        second.step(p, grad(t, p))
    for k in p:
        assert np.array_equal(p[k], straight[k]), k


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam(lr=0.1),
                                  lambda: RMSprop(lr=0.1), lambda: Adagrad(lr=0.1)])
def test_an_optimizer_reused_for_new_arrays_warns_and_reset_forgets(make):
    """State is kept by parameter name; stepping another model's arrays under the same
    names (one optimizer for two models) would carry it over silently, so it warns,
    once. New names join without a warning; reset() and load_state_dict rebind."""
    first, second = {"w": np.ones(3)}, {"w": np.ones(3)}
    opt = make()
    opt.step(first, {"w": np.ones(3)})
    opt.step({**first, "v": np.ones(2)}, {"w": np.ones(3), "v": np.ones(2)})  # joins: quiet
    with pytest.warns(UserWarning, match=r"holds state \(its step count 2\) of w from other "
                                         r"arrays .* one optimizer per model"):
        opt.step(second, {"w": np.ones(3)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step(second, {"w": np.ones(3)})                  # bound to them now
        opt.reset()
        assert opt.steps == 0 and opt.state == {}
        opt.step(first, {"w": np.ones(3)})
        fresh = make()
        fresh.load_state_dict(opt.state_dict())
        fresh.step(second, {"w": np.ones(3)})
    reused, fresh, p, q = make(), make(), {"w": np.ones(3)}, {"w": np.ones(3)}
    reused.step({"w": np.ones(3)}, {"w": np.ones(3)})
    reused.reset()
    reused.step(p, {"w": np.ones(3)})
    fresh.step(q, {"w": np.ones(3)})
    assert np.array_equal(p["w"], q["w"])   # after reset(), the update of a fresh one


def test_load_state_dict_bad_input_changes_nothing():
    opt = SGD(lr=0.1, momentum=0.9)
    p = {"w": np.array([1.0])}
    opt.step(p, {"w": np.array([1.0])})
    before = opt.state_dict()
    with pytest.raises(ValueError, match="steps"):
        opt.load_state_dict({"steps": -3, "state": {}})
    with pytest.raises(ValueError, match="state_dict"):
        opt.load_state_dict({"state": {}})
    assert opt.steps == before["steps"]
    assert np.array_equal(opt.state["w"]["momentum_buffer"],
                          before["state"]["w"]["momentum_buffer"])


# --- atomicity: nothing changes when the grads are wrong ----------------------------

def _bad_grads(kind, grads):
    grads = dict(grads)
    if kind == "missing":
        del grads["b2"]
        return grads, "b2"
    if kind == "extra":
        grads["W9"] = np.zeros((2, 2))
        return grads, "W9"
    grads["W2"] = np.zeros((3, 4))        # transposed shape
    return grads, "W2"


@pytest.mark.parametrize("kind", ["missing", "extra", "shape"])
@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: SGD(lr=0.1, momentum=0.9),
                                  lambda: Adam(), lambda: AdamW(),
                                  lambda: RMSprop(momentum=0.5, centered=True),
                                  lambda: Adagrad(lr_decay=0.1)],
                         ids=["sgd", "sgd_momentum", "adam", "adamw", "rmsprop", "adagrad"])
def test_bad_grads_raise_and_leave_everything_unchanged(kind, make):
    params, grad = _problem(seed=7)
    opt = make()
    opt.step(params, grad(0, params))     # so that there is state to protect
    params_before = {k: v.copy() for k, v in params.items()}
    state_before = opt.state_dict()
    bad, key = _bad_grads(kind, grad(1, params))
    with pytest.raises(ValueError, match=key):
        opt.step(params, bad)
    for k in params:
        assert np.array_equal(params[k], params_before[k]), k
    assert opt.steps == state_before["steps"]
    for k, st in state_before["state"].items():
        for s, v in st.items():
            assert np.array_equal(opt.state[k][s], v), (k, s)


def test_non_numeric_grad_raises_type_error_before_any_update():
    params = {"a": np.array([1.0, 2.0]), "z": np.array([3.0, 4.0])}
    with pytest.raises(TypeError, match="'z'"):
        SGD(lr=0.1).step(params, {"a": np.array([1.0, 1.0]), "z": np.array(["x", "y"])})
    assert np.array_equal(params["a"], [1.0, 2.0])


def test_params_and_grads_must_be_dicts():
    with pytest.raises(TypeError, match="dicts"):
        SGD().step([np.zeros(2)], [np.zeros(2)])


# --- bad hyperparameters ------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: SGD(lr=-0.1), ValueError, r"lr.*-0\.1"),
    (lambda: SGD(lr=0.0), ValueError, r"lr.*0\.0"),
    (lambda: SGD(lr=float("nan")), ValueError, r"lr.*nan"),
    (lambda: SGD(lr=float("inf")), ValueError, r"lr.*inf"),
    (lambda: Adam(lr=-1e-3), ValueError, r"lr.*-0\.001"),
    (lambda: SGD(lr="0.1"), TypeError, r"lr.*'0\.1'"),
    (lambda: SGD(momentum=1.5), ValueError, r"momentum.*1\.5"),
    (lambda: SGD(momentum=-0.5), ValueError, r"momentum.*-0\.5"),
    (lambda: SGD(momentum=0.9, dampening=1.5), ValueError, r"dampening.*1\.5"),
    (lambda: SGD(weight_decay=-1e-4), ValueError, r"weight_decay.*-0\.0001"),
    (lambda: SGD(nesterov=True), ValueError, r"nesterov.*momentum=0\.0"),
    (lambda: SGD(momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"dampening=0\.1"),
    (lambda: SGD(momentum=0.9, nesterov="yes"), TypeError, r"nesterov.*'yes'"),
    (lambda: Adam(betas=(1.0, 0.999)), ValueError, r"betas\[0\].*1\.0"),
    (lambda: Adam(betas=(0.9, -0.1)), ValueError, r"betas\[1\].*-0\.1"),
    (lambda: Adam(betas=(0.9, 1.5)), ValueError, r"betas\[1\].*1\.5"),
    (lambda: Adam(betas=0.9), ValueError, r"betas.*0\.9"),
    (lambda: Adam(betas=(0.9, 0.99, 0.999)), ValueError, r"betas"),
    (lambda: Adam(eps=0.0), ValueError, r"eps.*0\.0"),
    (lambda: Adam(eps=-1e-8), ValueError, r"eps.*-1e-08"),
    (lambda: Adam(weight_decay=-0.1), ValueError, r"weight_decay.*-0\.1"),
    (lambda: AdamW(weight_decay=float("nan")), ValueError, r"weight_decay.*nan"),
    (lambda: RMSprop(alpha=1.0), ValueError, r"alpha.*1\.0"),
    (lambda: RMSprop(alpha=-0.1), ValueError, r"alpha.*-0\.1"),
    (lambda: RMSprop(momentum=2.0), ValueError, r"momentum.*2\.0"),
    (lambda: RMSprop(eps=0.0), ValueError, r"eps.*0\.0"),
    (lambda: RMSprop(centered=1), TypeError, r"centered.*1"),
    (lambda: Adagrad(lr_decay=-0.1), ValueError, r"lr_decay.*-0\.1"),
    (lambda: Adagrad(initial_accumulator_value=-1.0), ValueError,
     r"initial_accumulator_value.*-1\.0"),
    (lambda: Adagrad(eps=float("nan")), ValueError, r"eps.*nan"),
    (lambda: get_optimizer("adadelta"), ValueError, r"optimizer.*'adadelta'"),
    (lambda: get_optimizer("rmsprop", betas=(0.9, 0.9)), ValueError, r"'rmsprop'.*betas"),
])
def test_bad_hyperparameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_get_optimizer_builds_each_kind():
    assert type(get_optimizer("sgd", lr=0.1, momentum=0.9)) is SGD
    assert type(get_optimizer("adam")) is Adam
    assert type(get_optimizer("adamw")) is AdamW
    assert get_optimizer("rmsprop", lr=0.1, momentum=0.9, centered=True).centered is True
    assert get_optimizer("adagrad", lr_decay=0.5).lr_decay == 0.5
    existing = Adam(lr=0.5)
    assert get_optimizer(existing) is existing
    assert get_optimizer("sgd", lr=0.3).hyperparameters()["lr"] == 0.3


# --- dtypes: float32 stays float32 ---------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.05),
    lambda: SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: SGD(lr=0.05, momentum=0.9, dampening=0.2),
    lambda: Adam(lr=1e-2, weight_decay=0.1),
    lambda: AdamW(lr=partial(cosine_lr, base_lr=1e-2, total_steps=N_STEPS)),
    lambda: AdamW(lr=5e-2, betas=(0.9, 0.5), amsgrad=True),
    lambda: RMSprop(lr=1e-2, momentum=0.9, weight_decay=0.1),
    lambda: RMSprop(lr=1e-2, centered=True),
    lambda: Adagrad(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.1),
], ids=["sgd", "sgd_nesterov_wd", "sgd_dampening", "adam_wd", "adamw_cosine", "amsgrad",
        "rmsprop", "rmsprop_centered", "adagrad"])
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_stays_float32(make, grad_dtype):
    params64, grad64 = _problem(seed=8)
    params32 = {k: v.astype(np.float32) for k, v in params64.items()}
    opt = make()
    p = {k: v.copy() for k, v in params32.items()}
    for t in range(N_STEPS):
        g = {k: v.astype(grad_dtype) for k, v in grad64(t, p).items()}
        opt.step(p, g)
    for k in p:
        assert p[k].dtype == np.float32, k
        for s, v in opt.state[k].items():
            if np.issubdtype(v.dtype, np.floating):
                assert v.dtype == np.float32, (k, s)
    # and the float32 run follows the float64 one to float32 accuracy
    ref = _run_chainrule(make(), params64, grad64)
    _assert_close(p, ref, rtol=2e-4)


def test_optimizer_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Optimizer(lr=0.1).step({"w": np.zeros(1)}, {"w": np.zeros(1)})


@pytest.mark.parametrize("given", ["dict", "list", "values"])
def test_an_optimizer_given_the_parameters_as_in_torch_says_how_chainrule_takes_them(given):
    params = {k: np.zeros(shape) for k, shape in SHAPES.items()}
    arg = {"dict": params, "list": list(params.values()), "values": params.values()}[given]
    for cls in (SGD, Adam, AdamW):
        with pytest.raises(TypeError, match=rf"{cls.__name__} takes no parameters.*"
                                            r"step\(params, grads\)"):
            cls(arg)
    with pytest.raises(TypeError, match="lr must be a real number, got str"):
        Adam("0.01")


def test_a_scheduled_optimizers_repr_names_its_schedule():
    opt = Adam(lr=partial(onecycle_lr, max_lr=1e-2, total_steps=18))
    assert repr(opt).startswith("Adam(lr=partial(onecycle_lr, max_lr=0.01, total_steps=18), ")
    assert repr(SGD(lr=0.1)).startswith("SGD(lr=0.1, ")


def test_fit_refuses_a_schedule_that_ends_before_the_run():
    from chainrule.models import MLP
    from chainrule.train import fit

    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    short = Adam(lr=partial(onecycle_lr, max_lr=1e-2, total_steps=10))
    model = MLP([4, 5, 3], rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"schedule fails at step 17, the last of this fit "
                                         r"\(6 epochs of 3 steps\): step 17 is past"):
        fit(model, X, y, optimizer=short, epochs=6, batch_size=16, progress=False)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())   # untouched
    fit(model, X, y, optimizer=Adam(lr=partial(onecycle_lr, max_lr=1e-2, total_steps=18)),
        epochs=6, batch_size=16, progress=False)


@pytest.mark.parametrize("make", [lambda: RMSprop(lr=1e-2, momentum=0.5),
                                  lambda: Adagrad(lr=0.1, lr_decay=0.5),
                                  lambda: SGD(lr=0.1, momentum=0.9)],
                         ids=["rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("entry, match", [
    (np.ones(7), r"must be a float array of shape \(3,\) like params\['b2'\], got ndarray "
                 r"float64 \(7,\)"),
    (np.array(["x", "y", "z"]), r"must be a float array of shape \(3,\)"),
    (np.full(3, np.nan), r"must be finite"),
])
def test_a_loaded_state_that_does_not_fit_is_refused_before_any_update(make, entry, match):
    # A hostile-arguments audit: load_state_dict took anything, and the next step
    # stopped half-way with NumPy's broadcast error, some parameters updated.
    params, grad = _problem(seed=13)
    opt = make()
    p = {k: v.copy() for k, v in params.items()}
    opt.step(p, grad(0, p))
    saved = opt.state_dict()
    key = next(k for k in saved["state"]["b2"] if k != "step")
    saved["state"]["b2"][key] = entry
    opt.load_state_dict(saved)
    before = {k: v.copy() for k, v in p.items()}
    with pytest.raises(ValueError, match=rf"state\['b2'\]\['{key}'\] " + match):
        opt.step(p, grad(1, p))
    assert opt.steps == 1 and all(np.array_equal(p[k], before[k]) for k in p)


def test_a_loaded_state_entry_must_be_a_dict_and_steps_counts():
    opt = Adagrad(lr=0.1, lr_decay=0.5)
    with pytest.raises(TypeError, match=r"state_dict\['state'\]\['W'\] must be a dict of "
                                        r"arrays, got int"):
        opt.load_state_dict({"steps": 1, "state": {"W": 5}})
    p = {"W": np.ones(3)}
    opt.load_state_dict({"steps": 1, "state": {"W": {"step": np.array(-3),
                                                     "sum": np.ones(3)}}})
    with pytest.raises(ValueError, match=r"state\['W'\]\['step'\] must be a step count, a "
                                         r"whole number >= 0, got array\(-3\)"):
        opt.step(p, {"W": np.ones(3)})
    assert np.array_equal(p["W"], np.ones(3))
    # PyTorch keeps its step counts as whole floats: taken, as Adam's own state.
    adam, q = Adam(lr=0.1), {"W": np.ones(3)}
    adam.load_state_dict({"steps": 2, "state": {"W": {
        "step": np.array(2.0), "exp_avg": np.full(3, 0.1), "exp_avg_sq": np.full(3, 0.01)}}})
    adam.step(q, {"W": np.ones(3)})
    assert int(adam.state["W"]["step"]) == 3 and not np.array_equal(q["W"], np.ones(3))


@pytest.mark.parametrize("call, match", [
    (lambda: multistep_lr(5, base_lr=1e200, gamma=1e200, milestones=[0]),
     "the learning rate overflows: 1e\\+200 \\* 1e\\+200 \\*\\* 1"),
    (lambda: cosine_restarts_lr(0, base_lr=1e308, first_cycle=10),
     "cosine_restarts_lr gives a learning rate of inf"),
    (lambda: onecycle_lr(9, max_lr=1e300, total_steps=10, div_factor=1e-300),
     "onecycle_lr gives a learning rate of nan"),
])
def test_schedules_refuse_rates_beyond_floats_range(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_schedule_of_the_whole_run_resumes_after_an_interrupt_in_the_same_process(tmp_path):
    # Ctrl-C puts the optimizer back to the epoch's start; the resumed run ends where the
    # whole run would, so its schedule (18 steps here) is long enough.
    from chainrule.models import MLP
    from chainrule.train import fit

    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    opt = Adam(lr=partial(onecycle_lr, max_lr=1e-2, total_steps=18))

    def stop(epoch, logs, model):
        if epoch == 2:
            raise KeyboardInterrupt
    kw = dict(epochs=6, batch_size=16, rng=0, progress=False, checkpoint=tmp_path / "ck.npz")
    model = MLP([4, 5, 3], rng=0)
    assert fit(model, X, y, optimizer=opt, callbacks=[stop], **kw).stop_reason == "interrupted"
    assert opt.steps > 0
    assert fit(model, X, y, optimizer=opt, resume=True, **kw).epochs == 6
