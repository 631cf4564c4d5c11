"""onecycle_momentum: the momentum (SGD) or first beta (Adam, AdamW) that PyTorch's
OneCycleLR cycles by default, step for step; in fit, checkpoints, repr and refusals."""

from functools import partial

import numpy as np
import pytest

import chainrule as cr
from chainrule.schedules import onecycle_lr, onecycle_momentum

STEPS = 23


@pytest.mark.parametrize("base, peak", [(0.8, 0.97), (0.95, 0.85)])   # torch takes both
def test_the_schedules_are_torchs_step_for_step(torch, base, peak):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=STEPS,
                                                pct_start=0.25, base_momentum=base,
                                                max_momentum=peak)
    for step in range(STEPS):
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(onecycle_lr(step, max_lr=0.5, total_steps=STEPS,
                                                        pct_start=0.25), rel=1e-15)
        assert group["momentum"] == pytest.approx(onecycle_momentum(
            step, total_steps=STEPS, pct_start=0.25, base_momentum=base, max_momentum=peak),
            rel=1e-15)
        opt.step()
        if step < STEPS - 1:
            sched.step()
    # by hand: max_momentum at the first step, base_momentum at the turn (step 12 * 0.5
    # - 1 = 5), max_momentum again at the last; halfway down at step 2.5's cosine
    cycle = partial(onecycle_momentum, total_steps=12, pct_start=0.5)
    assert [cycle(0), cycle(5), cycle(11)] == [0.95, pytest.approx(0.85), pytest.approx(0.95)]
    assert cycle(1) == pytest.approx(0.85 + 0.05 * (1 + np.cos(np.pi / 5)))


@pytest.mark.parametrize("kind", ["sgd", "nesterov", "adam", "adamw"])
def test_an_optimizer_with_a_cycled_momentum_trains_as_torchs(kind, torch):
    """Twenty full-batch steps of a small network under OneCycleLR(cycle_momentum=True)
    from the same weights: every parameter within 1e-10 of torch's after each step."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), rng.integers(0, 3, 30)
    model = cr.MLP([5, 7, 3], rng=0)
    nn = torch.nn
    twin = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    with torch.no_grad():
        for p, t in zip(model.params.values(), twin.parameters(), strict=True):
            t.copy_(torch.tensor(p.T if p.ndim == 2 else p))
    lr = partial(onecycle_lr, max_lr=0.3, total_steps=20)
    momentum = partial(onecycle_momentum, total_steps=20)
    ours, theirs = {
        "sgd": (cr.SGD(lr=lr, momentum=momentum),
                torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)),
        "nesterov": (cr.SGD(lr=lr, momentum=momentum, nesterov=True),
                     torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True)),
        "adam": (cr.Adam(lr=lr, betas=(momentum, 0.99)),
                 torch.optim.Adam(twin.parameters(), lr=0.1, betas=(0.9, 0.99))),
        "adamw": (cr.AdamW(lr=lr, betas=(momentum, 0.99), weight_decay=0.1),
                  torch.optim.AdamW(twin.parameters(), lr=0.1, betas=(0.9, 0.99),
                                    weight_decay=0.1)),
    }[kind]
    sched = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.3, total_steps=20)
    for step in range(20):
        model.step(X, y, ours)
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(X)), torch.tensor(y)).backward()
        theirs.step()
        if step < 19:
            sched.step()
        for (name, p), t in zip(model.params.items(), twin.parameters(), strict=True):
            ref = t.detach().numpy()
            ref = ref.T if p.ndim == 2 else ref
            assert np.max(np.abs(p - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref))), (step, name)


def test_fit_checkpoints_repr_and_refusals(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    momentum = partial(onecycle_momentum, total_steps=8)
    opt = cr.SGD(lr=partial(onecycle_lr, max_lr=0.1, total_steps=8), momentum=momentum)
    assert repr(opt) == ("SGD(lr=partial(onecycle_lr, max_lr=0.1, total_steps=8), "
                         "momentum=partial(onecycle_momentum, total_steps=8), dampening=0.0, "
                         "weight_decay=0.0, nesterov=False)")
    assert "momentum" not in opt.hyperparameters()
    # a fit longer than the momentum's cycle is refused before training, as the rate's
    with pytest.raises(ValueError, match="optimizer's momentum schedule fails at step 9"):
        cr.fit(cr.MLP([4, 2], rng=0), X, y, epochs=5, batch_size=20, progress=False,
               optimizer=cr.SGD(lr=0.1, momentum=momentum))
    # a checkpoint tells another momentum cycle apart
    path = tmp_path / "run.ckpt"
    cr.fit(cr.MLP([4, 2], rng=0), X, y, optimizer=opt, epochs=2, batch_size=20, rng=0,
           progress=False, checkpoint=path)
    other = cr.SGD(lr=partial(onecycle_lr, max_lr=0.1, total_steps=8),
                   momentum=partial(onecycle_momentum, total_steps=8, base_momentum=0.5))
    with pytest.raises(Exception, match="momentum_schedule"):
        cr.fit(cr.MLP([4, 2], rng=0), X, y, optimizer=other, epochs=4, batch_size=20, rng=0,
               progress=False, checkpoint=path, resume=True)
    bad = cr.SGD(lr=0.1, momentum=lambda step: 1.5)
    params = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="momentum schedule at step 0"):
        bad.step(params, {"w": np.ones(2)})
    assert bad.steps == 0 and np.array_equal(params["w"], [0, 0])   # nothing changed
    with pytest.raises(ValueError, match=r"betas\[0\] schedule at step 0"):
        cr.Adam(betas=(lambda step: 1.0, 0.999)).step(params, {"w": np.ones(2)})


def test_nesterov_refuses_a_momentum_schedule_that_gives_zero():
    opt = cr.SGD(lr=0.1, momentum=lambda step: 0.9 if step < 1 else 0.0, nesterov=True)
    params = {"w": np.zeros(2)}
    opt.step(params, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0, got 0 from the "
                                         "momentum schedule at step 1"):
        opt.step(params, {"w": np.ones(2)})
    assert opt.steps == 1


def test_a_scheduled_first_beta_keeps_the_second_in_the_run_identity(tmp_path):
    """With betas[0] a schedule, hyperparameters() dropped the whole pair: a resume
    under another beta2 was accepted. The pair is kept, the schedule as None."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    cycle = partial(onecycle_momentum, total_steps=40)
    assert cr.Adam(betas=(cycle, 0.999)).hyperparameters()["betas"] == (None, 0.999)
    path = tmp_path / "run.ckpt"
    cr.fit(cr.MLP([4, 2], rng=0), X, y, optimizer=cr.Adam(lr=1e-2, betas=(cycle, 0.999)),
           epochs=2, batch_size=10, rng=0, progress=False, checkpoint=path)
    with pytest.raises(Exception, match="betas"):
        cr.fit(cr.MLP([4, 2], rng=0), X, y, optimizer=cr.Adam(lr=1e-2, betas=(cycle, 0.5)),
               epochs=4, batch_size=10, rng=0, progress=False, checkpoint=path, resume=True)


def test_a_momentum_schedule_that_starts_at_zero_resumes_bit_for_bit(tmp_path):
    """A warm-up momentum is 0 at step 0: the checkpoint's expected layout, probed at
    step 0, had no momentum buffers, and refused the run's own checkpoint."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)

    def warm(step):
        return min(0.9, step / 10)

    full = cr.MLP([4, 3, 2], rng=0)
    cr.fit(full, X, y, optimizer=cr.SGD(lr=0.05, momentum=warm), epochs=4, batch_size=10,
           rng=0, progress=False)
    path = tmp_path / "run.ckpt"
    part = cr.MLP([4, 3, 2], rng=0)
    cr.fit(part, X, y, optimizer=cr.SGD(lr=0.05, momentum=warm), epochs=2, batch_size=10,
           rng=0, progress=False, checkpoint=path)
    resumed = cr.MLP([4, 3, 2], rng=0)
    cr.fit(resumed, X, y, optimizer=cr.SGD(lr=0.05, momentum=warm), epochs=4, batch_size=10,
           rng=0, progress=False, checkpoint=path, resume=True)
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name])
