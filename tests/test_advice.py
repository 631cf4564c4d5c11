"""The training advice of chainrule.diagnostics.Advisor (the Karpathy-recipe audit):
each warning fires on its failure mode, once per fit, with its advice, and healthy runs
stay silent."""

import re
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import load_homework_digits, standardize
from chainrule.diagnostics import Advisor, TrainingWarning


@pytest.fixture(scope="module")
def digits():
    X, X_test, Y, Y_test = load_homework_digits()
    Xs, Xs_test = standardize(X, X_test)
    return X, Xs, Y, Xs_test, Y_test


def advice(model, X, Y, **kwargs):
    """fit's TrainingWarning messages."""
    kwargs = {"rng": 0, "progress": False, **kwargs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cr.fit(model, X, Y, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]


def silent(model, X, Y, **kwargs):
    """fit, with any TrainingWarning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        return cr.fit(model, X, Y, rng=0, progress=False, **kwargs)


def said(messages, text):
    found = [m for m in messages if text in m]
    assert len(found) == 1, messages          # once per fit
    return found[0]


def epochs_of(advisor, **series):
    """Feed an Advisor per-epoch logs; return the messages it gave."""
    n = len(series["loss"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for e in range(n):
            advisor.epoch(e, {k: v[e] for k, v in series.items()}, {})
    return [str(w.message) for w in caught]


# -- 1. a rising training loss ----------------------------------------------------------------

RISING = ": the learning rate is likely too high: lower it (3-10x) or decay it with a schedule"


def test_a_rising_loss_says_the_learning_rate_is_too_high(digits):
    _, Xs, Y, _, _ = digits
    messages = advice(cr.MLP([64, 64, 10], rng=0), Xs, Y, optimizer=cr.Adam(lr=1e-1),
                      epochs=15, batch_size=64)
    assert said(messages, RISING).startswith("epoch 8: the training loss rose to 1.514, "
                                             "from 0.3106 at epoch 5")


def test_the_audits_loss_curve_warns_when_it_has_risen_three_epochs_in_a_row():
    messages = epochs_of(Advisor(), loss=[2.1, 0.81, 0.59, 0.55, 0.89, 1.18, 1.54, 1.6])
    assert messages == ["epoch 6: the training loss rose to 1.54, from 0.55 at epoch 3" + RISING]
    # noise at the bottom of a converged loss (it fell 2.3 -> 0.01) is no rise
    assert epochs_of(Advisor(), loss=[2.3, 0.5, 0.01, 0.011, 0.012, 0.013, 0.02]) == []
    # ... but half-way back up is, even without three rises in a row
    assert len(epochs_of(Advisor(), loss=[2.3, 0.5, 0.01, 1.2])) == 1
    # three small rises in a row, far from half-way back, are one too
    assert epochs_of(Advisor(), loss=[2.0, 1.0, 1.05, 1.1]) == []
    assert epochs_of(Advisor(), loss=[2.0, 1.0, 1.05, 1.1, 1.2]) == [
        "epoch 4: the training loss rose to 1.2, from 1 at epoch 1" + RISING]


# -- 2. vanishing gradients after signs of too large a step ------------------------------------

def test_vanishing_after_dead_relus_advises_a_smaller_step_not_a_larger_one(digits):
    X, _, Y, _, _ = digits
    messages = advice(cr.MLP([64, 64, 10], rng=0), X, Y,
                      optimizer=cr.SGD(lr=5.0, momentum=0.9), epochs=15, batch_size=64)
    said(messages, "of the ReLU units after the layer of W1 never fired")
    vanishing = said(messages, "the gradients vanish")
    assert ("the gradients vanish after a first loss far above ln K, dead ReLUs (100% after "
            "W1): signs of too large a step, not too small a one: lower the learning rate "
            "(or standardise the inputs) and train again from a fresh "
            "initialisation") in vanishing
    assert "far too small" not in vanishing


def test_vanishing_without_such_signs_keeps_its_plain_advice():
    diag = {"W1": {"grad_norm": 1e-9, "update_ratio": 1e-9, "dead_fraction": None}}
    with pytest.warns(TrainingWarning, match=r"of its size: the gradients vanish \(saturated "
                      r"or dead units, or a learning rate far too small\)$"):
        Advisor(["W1"]).epoch(0, {"loss": 0.5}, diag, cr.SGD(lr=1e-3))


# -- 3. a learning rate far too small ----------------------------------------------------------

def test_tiny_updates_and_a_flat_loss_say_the_learning_rate_is_far_too_small(digits):
    _, Xs, Y, _, _ = digits
    messages = advice(cr.MLP([64, 64, 10], rng=0), Xs, Y, optimizer=cr.Adam(lr=1e-6),
                      epochs=15, batch_size=64)
    assert messages == [
        "epoch 4: the updates have moved the weights by at most 5.1e-06 of their size "
        "(~1e-3 is healthy) and the training loss went from 2.859 to 2.854 in 5 epochs: the "
        "learning rate is likely far too small: raise it (10-1000x, until the update ratios "
        "near 1e-3)"]
    # 100x larger steps learn: silent
    silent(cr.MLP([64, 64, 10], rng=0), Xs, Y, optimizer=cr.Adam(lr=1e-4), epochs=15,
           batch_size=64)


# -- 4. saturated tanh / sigmoid units -----------------------------------------------------------

@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_saturated_units_are_flagged(digits, activation):
    _, Xs, Y, _, _ = digits
    model = cr.MLP([64, 64, 10], activation=activation, rng=0)
    model.params["W1"] *= 30
    messages = advice(model, Xs, Y, optimizer=cr.Adam(lr=1e-3), epochs=3, batch_size=64)
    text = said(messages, "are saturated")
    assert text.startswith("epoch 0: ") and (
        f"of the outputs of layer 1 ({activation.capitalize()}) are saturated (|z| > 3, where "
        f"the activation is flat and passes almost no gradient): standardise the inputs, "
        f"start from smaller weights (init='xavier') or lower the learning rate") in text


def test_saturation_is_read_from_the_training_rows_not_the_validation_rows(digits):
    # The validation rows here are zeros (tanh(0 W + 0) = 0: nothing flat); their
    # forward runs after the epoch's steps and must not hide the saturated training batch.
    _, Xs, Y, _, _ = digits
    model = cr.MLP([64, 64, 10], activation="tanh", rng=0)
    model.params["W1"] *= 30
    messages = advice(model, Xs, Y, optimizer=cr.Adam(lr=1e-3), epochs=2, batch_size=64,
                      validation_data=(np.zeros((20, 64)), Y[:20]))
    said(messages, "are saturated")


# -- 5. overfitting, and no signal -------------------------------------------------------------

OVERFIT = ("the model overfits: stop early (fit's early_stopping=patience or EarlyStopping; "
           "chainrule train --early-stopping) or regularise (l2 / weight_decay, Dropout, more "
           "data)")


def test_a_validation_loss_rising_while_the_training_loss_falls_is_overfitting():
    loss = list(np.geomspace(2.0, 0.001, 20))
    val = [2.0, 1.0, 0.5, 0.4] + [0.4 + 0.01 * i for i in range(1, 17)]
    messages = epochs_of(Advisor(), loss=loss, val_loss=val)
    assert len(messages) == 1 and messages[0].startswith(
        "epoch 13: the validation loss rose from 0.4 at epoch 3 to 0.5 while the training "
        "loss fell") and messages[0].endswith(OVERFIT)
    # early stopping is the cure, and already there
    assert epochs_of(Advisor(early_stopping=True), loss=loss, val_loss=val) == []
    # a validation loss flat at its best is no overfitting
    assert epochs_of(Advisor(), loss=loss, val_loss=val[:4] + [0.401] * 16) == []


def test_shuffled_labels_say_there_is_no_signal(digits):
    _, Xs, Y, _, _ = digits
    shuffled = Y[np.random.default_rng(0).permutation(len(Y))]
    messages = advice(cr.MLP([64, 64, 10], rng=0), Xs, shuffled, optimizer=cr.Adam(lr=1e-3),
                      epochs=15, batch_size=64, validation_fraction=0.2)
    assert said(messages, "the model learns nothing").endswith(
        "while the training loss fell: the model learns nothing that carries over: check "
        "that the labels belong to their rows (shuffled or misaligned?) and that the inputs "
        "can predict them")
    # ... also when early stopping ends the run
    messages = advice(cr.MLP([64, 64, 10], rng=0), Xs, shuffled, optimizer=cr.Adam(lr=1e-3),
                      epochs=30, batch_size=64, validation_fraction=0.2, early_stopping=5)
    said(messages, "the model learns nothing")


# -- 6. one-hot classes given to a regression loss ------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "squared_error", "l1", "huber"])
def test_one_hot_rows_with_a_regression_loss_warn_at_the_start(digits, loss):
    _, Xs, Y, _, _ = digits
    messages = advice(cr.MLP([64, 16, 10], rng=0, loss=loss), Xs, Y,
                      optimizer=cr.Adam(lr=1e-3), epochs=2, batch_size=64)
    assert messages == [
        f"Y looks like one-hot class rows (a single 1 in each row of 10 columns), but the "
        f"loss is {loss!r}, a regression loss, which trains classes worse than cross-entropy: "
        f"for classes use loss='cross_entropy' (an MLP's or Sequential's loss, MLPClassifier, "
        f"or chainrule train on class labels)"]
    # real-valued targets are what the loss is for
    silent(cr.MLP([64, 16, 10], rng=0, loss=loss), Xs, Y * 0.9 + 0.01,
           optimizer=cr.Adam(lr=1e-3), epochs=2, batch_size=64)


# -- 7. imbalanced classes and a model that predicts the largest one --------------------------

def imbalanced():
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.05).astype(int)
    return rng.standard_normal((1000, 5)), np.eye(2)[y], y


def test_accuracy_stuck_at_the_largest_class_points_to_class_weights():
    X, Y, _ = imbalanced()
    messages = advice(cr.MLP([5, 16, 2], rng=0), X, Y, optimizer=cr.Adam(lr=1e-2),
                      epochs=10, batch_size=64)
    assert messages == [
        "epoch 3: the training accuracy has stayed at 95.5% for 3 epochs, the share of the "
        "largest class (95.5%): the model likely predicts that class for every row: weight "
        "the classes (fit's sample_weight, e.g. scikit-learn's compute_sample_weight("
        "'balanced', y); the estimators' class_weight='balanced'; chainrule train "
        "--class-weight balanced)"]


def test_weighted_rows_are_not_told_to_weight_the_classes():
    X, Y, y = imbalanced()
    weights = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    assert not [m for m in advice(cr.MLP([5, 16, 2], rng=0), X, Y, optimizer=cr.Adam(lr=1e-2),
                                  epochs=10, batch_size=64, sample_weight=weights)
                if "weight the classes" in m]


# -- once per fit, every fit -----------------------------------------------------------------

def test_each_fit_warns_anew(digits):
    _, Xs, Y, _, _ = digits
    model = cr.MLP([64, 16, 10], rng=0, loss="mse")
    for _ in range(2):
        assert len(advice(model, Xs, Y, optimizer=cr.Adam(lr=1e-3), epochs=1)) == 1


# -- healthy runs stay silent -----------------------------------------------------------------

@pytest.mark.parametrize("optimizer", [cr.Adam(lr=1e-3), cr.SGD(lr=0.05, momentum=0.9)])
def test_healthy_minibatch_runs_are_silent(digits, optimizer):
    _, Xs, Y, _, _ = digits
    silent(cr.MLP([64, 64, 10], rng=0), Xs, Y, optimizer=optimizer, epochs=30,
           batch_size=64, validation_fraction=0.2)


def test_a_healthy_full_batch_tanh_run_is_silent(digits):
    _, Xs, Y, _, _ = digits
    silent(cr.MLP([64, 64, 10], activation="tanh", rng=0), Xs, Y, optimizer=cr.SGD(lr=0.5),
           epochs=200)


def test_the_homework_logistic_regression_is_silent(digits):
    X, _, Y, _, _ = digits
    silent(cr.LogisticRegression(64, 10), X, Y, optimizer=cr.SGD(lr=1e-2), epochs=200)


def test_an_early_stopping_run_is_silent(digits):
    _, Xs, Y, Xs_test, Y_test = digits
    history = silent(cr.MLP([64, 128, 10], rng=0), Xs[:300], Y[:300],
                     optimizer=cr.Adam(lr=1e-3), epochs=200, batch_size=32,
                     validation_data=(Xs_test, Y_test), early_stopping=5)
    assert history.stop_reason == "early_stopping"


def test_the_estimators_default_fits_are_silent():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    Xd, yd = datasets.load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn's ConvergenceWarning
        warnings.simplefilter("error", TrainingWarning)  # (checked first: added last)
        cr.MLPClassifier(random_state=0, max_iter=50).fit(X / 16, y)
        cr.MLPRegressor(random_state=0, max_iter=50).fit(Xd, yd)


def test_the_default_command_line_run_is_silent_and_plots_the_diagnostics(tmp_path, capsys):
    from chainrule.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        status = main(["train", "-q", "--epochs", "10", "--plot", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "TrainingWarning" not in err
    assert (tmp_path / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
    assert "diagnostics.png" in out


# -- 8. sanity_check's hints ---------------------------------------------------------------------

def test_sanity_check_says_weight_decay_could_not_be_measured_on_saturated_logits(digits):
    X, _, Y, _, _ = digits
    model = cr.MLP([64, 64, 10], rng=0)
    model.params["W1"] *= 1000                  # raw pixels, huge weights: losses of 0
    report = cr.sanity_check(model, X[:60], Y[:60], rng=0)
    check = report["weight decay raises loss"]
    assert check.detail.startswith("could not measure, not evidence against weight decay: "
                                   "the loss on 20 rows is already 0 after 300 steps")
    row = next(line for line in str(report).splitlines()
               if line.startswith("weight decay raises loss  FAIL"))
    assert row.split()[5] == "0"                 # measured: 0, not "-0"
    assert not re.search(r"(?<![e\d])-0\b", str(report))
    assert str(check.value) == "0.0"


def test_sanity_checks_gradient_hint_blames_a_large_negative_bias(digits):
    _, Xs, Y, _, _ = digits
    model = cr.MLP([64, 16, 16, 10], rng=0)
    model.params["b1"][...] = -50               # every unit of layer 1 off; W1 random
    detail = cr.sanity_check(model, Xs[:60], Y[:60], rng=0)["gradient check"].detail
    assert ("every unit of layer 1 is off for these rows, its weights W1 random but its "
            "bias b1 as low as -50, so every later input is 0: start the biases at 0 (or "
            "small) and check again") in detail
    assert "initialise the weights randomly" not in detail


# -- 10. the plot ---------------------------------------------------------------------------------

def test_plot_diagnostics_draws_ratios_norms_and_dead_units(digits, tmp_path):
    from chainrule.plots import plot_diagnostics

    _, Xs, Y, _, _ = digits
    history = cr.fit(cr.MLP([64, 32, 10], rng=0), Xs, Y, optimizer=cr.Adam(lr=1e-3),
                     epochs=3, batch_size=64, rng=0, progress=False)
    fig = plot_diagnostics(history, path=tmp_path / "d.png")
    ratio, norms, dead = fig.axes
    assert ratio.get_yscale() == "log" and norms.get_yscale() == "log"
    assert [line.get_label() for line in ratio.get_lines()] == ["W1", "W2", "~1e-3 (healthy)"]
    assert list(ratio.get_lines()[-1].get_ydata()) == [1e-3, 1e-3]
    assert [line.get_label() for line in dead.get_lines()] == ["W1"]
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert len(plot_diagnostics(history.as_dict(), params=["b1"]).axes) == 3
    with pytest.raises(ValueError, match="params must name recorded parameters"):
        plot_diagnostics(history, params=["W9"])
    with pytest.raises(ValueError, match="no diagnostics to plot"):
        plot_diagnostics([{}, {}])
    with pytest.raises(TypeError, match="history must be a chainrule History"):
        plot_diagnostics(3)


def test_the_majority_rule_allows_a_little_noise_and_spares_weighted_rows():
    stuck = {"loss": [0.3, 0.2, 0.2, 0.2], "accuracy": [0.9, 0.953, 0.957, 0.955]}
    assert len(epochs_of(Advisor(n_classes=2, class_share=0.955), **stuck)) == 1
    learning = {"loss": [0.3, 0.2, 0.2, 0.2], "accuracy": [0.9, 0.953, 0.965, 0.97]}
    assert epochs_of(Advisor(n_classes=2, class_share=0.955), **learning) == []
    assert epochs_of(Advisor(n_classes=2, class_share=0.955, weighted=True), **stuck) == []
    at_60 = {"loss": [0.7, 0.6, 0.6, 0.6], "accuracy": [0.5, 0.6, 0.6, 0.6]}
    assert epochs_of(Advisor(n_classes=2, class_share=0.6), **at_60) == []  # not imbalanced


def test_a_fitted_models_flat_curve_is_not_a_rising_loss():
    # A second fit of a converged model: the loss wiggles around its floor; a rise of
    # 0.006 after a fall of 0.01 (1.4% of the loss) says nothing about the rate.
    assert epochs_of(Advisor(), loss=[0.70, 0.69, 0.696]) == []
    assert epochs_of(Advisor(), loss=[0.70, 0.60, 0.50, 0.55, 0.60, 0.66]) != []


def test_a_hinge_loss_is_not_held_to_ln_k(digits):
    # MultiMarginLoss(margin=10) starts near 9 on 10 classes: no cross-entropy's ln K.
    _, Xs, Y, _, _ = digits
    silent(cr.MLP([64, 32, 10], loss=cr.MultiMarginLoss(margin=10.0), rng=0), Xs, Y,
           optimizer=cr.Adam(lr=1e-3), epochs=3, batch_size=64)


@pytest.mark.parametrize("diagnostics", [True, False])
def test_finite_batches_whose_mean_overflows_stop_training(digits, diagnostics):
    # Each batch's loss is finite (~1e306) but their sum is not: a docs audit found a
    # KeyError from the advice (and, without it, an inf recorded and training going on).
    _, Xs, Y, _, _ = digits
    with pytest.raises(cr.TrainingDivergedError, match=r"epoch 0, batch \d+: the epoch's "
                                                        r"mean training loss is inf"):
        with np.errstate(over="ignore"):
            cr.fit(cr.MLP([64, 64, 10], activation="tanh", rng=0), Xs, Y,
                   optimizer=cr.SGD(lr=1e306), epochs=5, batch_size=64, rng=0,
                   progress=False, diagnostics=diagnostics)


@pytest.mark.parametrize("history, kwargs, match", [
    ([{"W1": 5}], {}, "diagnostics of epoch 0 must map parameter names to dicts of numbers, "
                      "got 'W1': 5"),
    ([{"W1": {"grad_norm": "abc"}}], {}, "dicts of numbers"),
    ([{"W1": {"grad_norm": 1.0, "update_ratio": 1e-3, "dead_fraction": None}}],
     {"params": "W1"}, "params must be a sequence of parameter names, got str 'W1'"),
    ([{"W1": {"grad_norm": 1.0, "update_ratio": 1e-3, "dead_fraction": None}}],
     {"params": 5}, "params must be a sequence of parameter names, got int 5"),
])
def test_plot_diagnostics_names_what_is_wrong_with_its_arguments(history, kwargs, match):
    with pytest.raises(TypeError, match=match):
        cr.plots.plot_diagnostics(history, **kwargs)


def test_a_rate_cut_by_reduce_lr_on_plateau_is_not_read_as_vanishing_gradients():
    """ReduceLROnPlateau answers lr(0) with its current cut: the advice takes its
    starting rate, as it takes a schedule's first, and stays silent (it warned that the
    gradients vanish after a 1e7-fold cut)."""
    import warnings

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1)
    plateau = cr.ReduceLROnPlateau(0.1, patience=0, factor=0.1, threshold=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = cr.fit(cr.MLP([64, 64, 10], rng=0), X, y, optimizer=cr.SGD(plateau),
                         epochs=10, batch_size=64, validation_fraction=0.2, rng=0,
                         progress=False)
    assert history.history["lr"][-1] < 1e-6   # (cut many times)
    assert not [w for w in caught if "vanish" in str(w.message)]
