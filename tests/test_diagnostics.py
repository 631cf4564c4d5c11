"""Per-parameter diagnostics and the warnings fit gives (issue 13, item 4)."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import load_homework_digits, standardize
from chainrule.diagnostics import TrainingWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_layers import BatchNorm1d  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, _, Y, _ = load_homework_digits()
    return X, Y


def _fit_recording(model, X, Y, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = cr.fit(model, X, Y, batch_size=64, rng=0, progress=False, **kwargs)
    return history, [w for w in caught if issubclass(w.category, TrainingWarning)]


def test_raw_pixels_and_a_large_step_warn_about_dead_relus_once(digits):
    X, Y = digits
    history, caught = _fit_recording(cr.MLP([64, 64, 10], rng=0), X, Y,
                                     optimizer=cr.SGD(lr=0.5), epochs=5)
    dead = [w for w in caught if "never fired" in str(w.message)]
    assert len(dead) == 1                                  # once, not every epoch
    assert history.diagnostics[-1]["W1"]["dead_fraction"] >= 0.9
    assert dead[0].filename == __file__                    # points at the call of fit


def test_a_first_loss_far_above_ln_k_warns(digits):
    X, Y = digits
    Xs, _ = standardize(X, X)
    _, caught = _fit_recording(cr.MLP([64, 64, 10], rng=0), Xs, Y,
                               optimizer=cr.Adam(lr=10.0), epochs=2)
    assert any("far above ln K = 2.303" in str(w.message) for w in caught)


def test_a_healthy_run_gives_no_warning(digits):
    X, Y = digits
    Xs, _ = standardize(X, X)
    _, caught = _fit_recording(cr.MLP([64, 64, 10], rng=0), Xs, Y,
                               optimizer=cr.Adam(lr=1e-3), epochs=3)
    assert caught == []


def test_vanishing_gradients_warn():
    X = np.random.default_rng(0).standard_normal((32, 4))
    Y = np.eye(2)[np.arange(32) % 2]
    _, caught = _fit_recording(cr.MLP([4, 8, 2], rng=0), X, Y, optimizer=cr.SGD(lr=1e-12),
                               epochs=2)
    assert [w for w in caught if "gradients vanish" in str(w.message)]


def test_a_schedule_that_ends_at_zero_is_not_taken_for_vanishing_gradients():
    # cosine_lr reaches 0 at total_steps: the last update of epoch 1 is exactly 0.
    X = np.random.default_rng(0).standard_normal((64, 4))
    Y = np.eye(2)[np.arange(64) % 2]
    schedule = lambda step: cr.optim.cosine_lr(step, base_lr=1e-2, total_steps=1)  # noqa: E731
    history, caught = _fit_recording(cr.MLP([4, 8, 2], rng=0), X, Y,
                                     optimizer=cr.Adam(lr=schedule), epochs=2)
    assert history.diagnostics[-1]["W1"]["update_ratio"] == 0
    assert not [w for w in caught if "gradients vanish" in str(w.message)]
    # ... while the same update ratio with a learning rate left still warns.
    with pytest.warns(TrainingWarning, match="gradients vanish"):
        cr.diagnostics.Advisor(["W1"]).epoch(1, {"loss": 0.5}, history.diagnostics[-1],
                                             cr.Adam(lr=1e-3))


def test_a_cosine_schedule_near_its_end_is_not_taken_for_vanishing_gradients():
    # One step an epoch, 400 steps: the last one's rate is 1.5e-5 of the first, and the
    # update ratio drops by as much.
    X = np.random.default_rng(0).standard_normal((64, 4))
    Y = np.eye(2)[np.arange(64) % 2]
    schedule = lambda step: cr.schedules.cosine_lr(step, base_lr=1e-2,  # noqa: E731
                                                   total_steps=400)
    history, caught = _fit_recording(cr.MLP([4, 8, 2], rng=0), X, Y,
                                     optimizer=cr.SGD(lr=schedule), epochs=400)
    ratio = history.diagnostics[-1]["W1"]["update_ratio"]
    assert 0 < ratio < 1e-7  # what the constant threshold would have called vanishing
    assert not [w for w in caught if "gradients vanish" in str(w.message)]
    # ... the same ratio with the first rate still in use does warn
    with pytest.warns(TrainingWarning, match="gradients vanish"):
        cr.diagnostics.Advisor(["W1"]).epoch(3, {"loss": 0.5}, history.diagnostics[-1],
                                             cr.SGD(lr=1e-2))


def test_diagnostics_cover_every_parameter_and_credit_the_layer_before_the_relu():
    random = np.random.default_rng(0)
    X = random.standard_normal((40, 5))
    Y = np.eye(3)[random.integers(0, 3, 40)]
    model = cr.Sequential([cr.Affine(5, 6), BatchNorm1d(6), cr.ReLU(), cr.Affine(6, 3)],
                          rng=0)
    history = cr.fit(model, X, Y, optimizer=cr.SGD(lr=0.1), epochs=2, batch_size=8, rng=0,
                     progress=False)
    diag = history.diagnostics[-1]
    assert set(diag) == set(model.params)
    # The ReLU reads BatchNorm's output: its dead units are BatchNorm's, not W1's.
    assert diag["W1"]["dead_fraction"] is None
    assert diag["gamma2"]["dead_fraction"] is not None
    assert diag["beta2"]["grad_norm"] > 0


def test_training_diverged_error_carries_the_history():
    random = np.random.default_rng(0)
    X = random.standard_normal((30, 4)) * 1e3
    Y = np.eye(2)[np.arange(30) % 2]
    with pytest.raises(cr.TrainingDivergedError) as info:
        cr.fit(cr.MLP([4, 8, 2], rng=0), X, Y, optimizer=cr.SGD(lr=1e6), epochs=50,
               progress=False, diagnostics=False)
    history = info.value.history
    assert isinstance(history, cr.History)
    assert history.epochs == info.value.epoch             # the epochs completed before


def test_a_few_inputs_on_the_kink_are_counted_and_not_blamed_on_zero_weights():
    # One row of zeros and biases of 0: 8 of the 80 hidden inputs sit at 0, the weights
    # random. The count is said as a count (1 of 640 read "0%"), and zero-initialised
    # weights, which these are not, are not the advice.
    X = np.random.default_rng(0).normal(size=(10, 4))
    X[3] = 0.0
    check = cr.sanity_check(cr.MLP([4, 8, 2], rng=0), X, np.eye(2)[np.arange(10) % 2],
                            rng=0)["gradient check"]
    assert "not evidence of a gradient bug: 8 of the 80 inputs of layer 1" in check.detail
    assert "the weights are not all zero" in check.detail and "initialise" not in check.detail


def test_sanity_check_tells_a_zero_initialised_kink_from_a_gradient_bug(digits):
    X, Y = digits
    Xs, _ = standardize(X, X)
    zeroed = cr.MLP([64, 16, 10], rng=0)
    zeroed.params["W1"][...] = 0.0          # every hidden pre-activation is exactly 0
    check = cr.sanity_check(zeroed, Xs[:60], Y[:60], rng=0)["gradient check"]
    assert "not evidence of a gradient bug: all 160 inputs of layer 1" in check.detail
    assert "the weights W1 are all zero: initialise them randomly" in check.detail
    # A real bug, in BatchNorm's training-mode backward, is reported as one.
    buggy = cr.Sequential([cr.Affine(64, 16), BatchNorm1d(16, bug="bn_dx_no_var_term"),
                           cr.ReLU(), cr.Affine(16, 10)], rng=0)
    check = cr.sanity_check(buggy, Xs[:60], Y[:60], rng=0)["gradient check"]
    assert not check.passed and "(training)" in check.detail
    assert "kink" not in check.detail


def test_an_update_larger_than_half_the_weights_warns_once_ten_steps_are_taken():
    X = np.random.default_rng(0).standard_normal((32, 4))
    Y = np.eye(2)[np.arange(32) % 2]
    with warnings.catch_warnings(record=True) as caught:   # 4 steps an epoch
        warnings.simplefilter("always")
        cr.fit(cr.MLP([4, 8, 2], rng=0), X, Y, optimizer=cr.SGD(lr=50.0), epochs=3,
               batch_size=8, rng=0, progress=False)
    large = [str(w.message) for w in caught if "lower the learning rate" in str(w.message)
             and "of its size" in str(w.message)]
    assert len(large) == 1 and large[0].startswith("epoch 2:")   # not before step 10


def test_weights_that_start_at_zero_are_not_taken_for_too_large_updates(digits):
    # The homework's logistic regression: W starts at 0, so its first updates are most
    # of its size (the ratio was 1.0 and 0.88 in its first two epochs).
    X, Y = digits
    with warnings.catch_warnings(record=True) as caught:   # full batch: a step an epoch
        warnings.simplefilter("always")
        history = cr.fit(cr.LogisticRegression(64, 10), X, Y, optimizer=cr.SGD(lr=1e-2),
                         epochs=12, progress=False)
    assert history.diagnostics[1]["W"]["update_ratio"] > 0.5
    assert [w for w in caught if issubclass(w.category, TrainingWarning)] == []
