"""``ReduceLROnPlateau``: a learning rate cut when a monitored value stalls.

The oracle is PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau``: fed the same
values, it must give the same rates, and a PyTorch training loop that steps it on the
validation loss must train what ``fit`` trains with ours.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.checkpoint import CheckpointMismatchError

CONFIGS = [
    {},
    dict(patience=0, factor=0.5),
    dict(patience=2, factor=0.3, cooldown=2),
    dict(patience=1, threshold=0.05, threshold_mode="abs", min_lr=0.02),
    dict(patience=1, threshold=0.1, mode="max"),
    dict(patience=3, threshold=0.0, threshold_mode="abs", mode="max", cooldown=1),
    dict(patience=0, factor=0.9, eps=0.05),   # cuts smaller than eps are not made
]


def values(seed, n=60):
    """Wandering values with plateaus, repeats and signs of both kinds."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 1, n)) * rng.choice([0.0, 1.0], n, p=[0.3, 0.7])
    return (walk + rng.choice([-3.0, 3.0])).tolist()


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("seed", range(4))
def test_the_rates_are_pytorch_s(torch, config, seed):
    ours = cr.ReduceLROnPlateau(1.0, monitor="loss", **config)
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **{"mode": "min", **config})
    for value in values(seed):
        ours.epoch_end({"loss": value})
        theirs.step(value)
        assert ours(0) == opt.param_groups[0]["lr"]
        assert (ours.num_bad_epochs, ours.cooldown_counter) == (theirs.num_bad_epochs,
                                                                theirs.cooldown_counter)
    assert ours.current < 1.0 or config.get("eps")  # the sequences do cut the rate


def torch_loop(torch, model, data, lr, epochs, **plateau):
    """Full-batch SGD on the mean cross-entropy, the scheduler stepped on val_loss."""
    X, y, X_val, y_val = (torch.tensor(a) for a in data)
    params = [torch.tensor(model.params[k].copy(), requires_grad=True)
              for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = params
    opt = torch.optim.SGD(params, lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **plateau)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(torch.relu(X @ W1 + b1) @ W2 + b2, y).backward()
        opt.step()
        with torch.no_grad():
            val = torch.nn.functional.cross_entropy(torch.relu(X_val @ W1 + b1) @ W2 + b2,
                                                    y_val)
        sched.step(val.item())
    return [p.detach().numpy() for p in params], rates


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    y = (X[:, 0] + 0.5 * rng.standard_normal(80) > 0).astype(np.int64) + (X[:, 1] > 1)
    return X[:60], y[:60], X[60:], y[60:]


def test_fit_trains_what_a_pytorch_loop_with_its_scheduler_trains(torch, data):
    X, y, X_val, y_val = data
    model, start = cr.MLP([6, 10, 3], rng=0), cr.MLP([6, 10, 3], rng=0)
    plateau = cr.ReduceLROnPlateau(2.0, patience=1, factor=0.5)
    history = cr.fit(model, X, y, optimizer=cr.SGD(lr=plateau), epochs=40,
                     validation_data=(X_val, y_val), progress=False)
    expected, rates = torch_loop(torch, start, data, 2.0, 40, patience=1, factor=0.5)
    assert history.history["lr"] == rates
    assert len(set(rates)) > 2  # it did cut, more than once
    for got, want in zip(model.params.values(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def run(data, epochs, plateau, **kwargs):
    X, y, X_val, y_val = data
    model = cr.MLP([6, 10, 3], rng=0)
    history = cr.fit(model, X, y, optimizer=cr.SGD(lr=plateau, momentum=0.9), epochs=epochs,
                     batch_size=16, validation_data=(X_val, y_val), rng=0, progress=False,
                     **kwargs)
    return model, history


def test_a_resumed_run_continues_with_the_rate_and_counters_of_the_whole_run(tmp_path, data):
    ck = tmp_path / "ck.npz"
    straight, h_straight = run(data, 30, cr.ReduceLROnPlateau(0.5, patience=1, factor=0.5))
    assert len(set(h_straight.history["lr"])) > 2
    first = cr.ReduceLROnPlateau(0.5, patience=1, factor=0.5)
    run(data, 12, first, checkpoint=ck)
    # a fresh rate, or the one that already saw those epochs: both replay them
    for plateau in (cr.ReduceLROnPlateau(0.5, patience=1, factor=0.5), first):
        resumed, h = run(data, 30, plateau, checkpoint=ck, resume=True)
        assert h.history["lr"] == h_straight.history["lr"]
        for k, p in straight.params.items():
            np.testing.assert_array_equal(resumed.params[k], p, err_msg=k)
        run(data, 12, cr.ReduceLROnPlateau(0.5, patience=1, factor=0.5), checkpoint=ck)
    with pytest.raises(CheckpointMismatchError, match="lr_schedule"):
        run(data, 30, cr.ReduceLROnPlateau(0.5, patience=2, factor=0.5), checkpoint=ck,
            resume=True)


def test_the_monitored_value_must_be_recorded(data):
    X, y, _, _ = data
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'val_loss', which "
                                         "needs validation_data"):
        cr.fit(cr.MLP([6, 4, 3], rng=0), X, y, optimizer=cr.SGD(lr=cr.ReduceLROnPlateau(0.1)),
               epochs=1, progress=False)
    regressor = cr.MLP([6, 4, 1], loss="mse", rng=0)
    with pytest.raises(ValueError, match="monitors 'accuracy', but a MeanSquaredError model"):
        cr.fit(regressor, X, y[:, None] * 1.0, epochs=1, progress=False,
               optimizer=cr.SGD(lr=cr.ReduceLROnPlateau(0.1, monitor="accuracy")))
    # the training loss needs nothing more; accuracy is watched rising
    assert cr.ReduceLROnPlateau(0.1, monitor="accuracy").mode == "max"
    cr.fit(cr.MLP([6, 4, 3], rng=0), X, y, epochs=2, progress=False,
           optimizer=cr.SGD(lr=cr.ReduceLROnPlateau(0.1, monitor="loss")))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(factor=1.0), ValueError, "factor must be < 1"),
    (dict(factor=0.0), ValueError, "factor"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(patience=1.5), TypeError, "patience"),
    (dict(mode="up"), ValueError, "mode"),
    (dict(threshold_mode="pct"), ValueError, "threshold_mode"),
    (dict(monitor="val_acc"), ValueError, "monitor"),
    (dict(min_lr=-1.0), ValueError, "min_lr"),
    (dict(cooldown=-1), ValueError, "cooldown")])
def test_settings_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        cr.ReduceLROnPlateau(0.1, **kwargs)
    with pytest.raises(ValueError, match="lr"):
        cr.ReduceLROnPlateau(0.0)


def test_an_error_after_a_cut_rolls_the_plateau_back_with_the_epoch():
    """fit's rollback on an error restored parameters and optimizer but kept the
    ReduceLROnPlateau cut of the failed epoch: a later fit started at the cut rate."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    plateau = cr.ReduceLROnPlateau(0.1, monitor="loss", patience=0, factor=0.5,
                                   threshold=10)

    def fail_at_second(epoch, logs, model):
        if epoch == 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        cr.fit(cr.MLP([3, 2], rng=0), X, y, optimizer=cr.SGD(plateau), epochs=3,
               progress=False, callbacks=[fail_at_second])
    clean = cr.ReduceLROnPlateau(0.1, monitor="loss", patience=0, factor=0.5, threshold=10)
    cr.fit(cr.MLP([3, 2], rng=0), X, y, optimizer=cr.SGD(clean), epochs=1, progress=False)
    assert plateau.current == clean.current
