"""Tests of chainrule.train: the one training loop, History, early stopping,
diagnostics, divergence, checkpoints and Ctrl-C."""

import copy
import json
import math
import warnings

import numpy as np
import pytest

from chainrule._fileformat import write_archive
from chainrule.data import load_homework_digits
from chainrule.homework import LogisticRegression
from chainrule.models import MLP
from chainrule.optim import SGD, Adagrad, Adam, RMSprop
from chainrule.train import EarlyStopping, History, TrainingDivergedError, evaluate, fit


def blobs(n=60, d=5, k=3, seed=0, dtype=np.float64):
    """Three separable-ish Gaussian blobs, one-hot labels."""
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = r.normal(0, 3, size=(k, d))
    X = centers[y] + r.normal(size=(n, d))
    Y = np.eye(k)[y]
    return X.astype(dtype), Y.astype(dtype)


def params_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def copy_params(model):
    return {k: v.copy() for k, v in model.params.items()}


class RecordingMLP(MLP):
    """Records the first feature of every training batch (the row ids)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def forward(self, X, training=False, *, checked=False):
        if training:
            self.batches.append(np.asarray(X)[:, 0].copy())
        return super().forward(X, training, checked=checked)


# -- the homework -------------------------------------------------------------------------

def test_full_batch_sgd_reproduces_the_homework_logistic_regression():
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    model = LogisticRegression(64, 10, learning_rate=1e-2)
    history = fit(model, X_train, Y_train, optimizer=SGD(lr=1e-2), epochs=501, progress=False)
    # Expected values from the homework protocol (DESIGN.md), printed every 50 epochs.
    expected = [2.3026, 0.2275, 0.1599, 0.1306, 0.1130, 0.1009, 0.0918, 0.0846, 0.0788,
                0.0738, 0.0696]
    got = [round(history["loss"][e], 4) for e in range(0, 501, 50)]
    assert got == expected
    assert round(evaluate(model, X_test, Y_test)["accuracy"], 3) == 0.953


def test_full_batch_fit_is_bit_identical_to_model_step():
    X, Y = blobs()
    a = MLP([5, 8, 3], rng=1)
    b = copy.deepcopy(a)
    history = fit(a, X, Y, optimizer=SGD(lr=0.1), epochs=20, progress=False)
    losses = [b.step(X, Y, SGD(lr=0.1)) for _ in range(20)]
    assert params_equal(a.params, b.params)
    assert history["loss"] == losses


# -- batching and randomness ------------------------------------------------------------

def test_minibatches_are_a_permutation_each_epoch():
    X, Y = blobs(n=23)
    X[:, 0] = np.arange(23)  # the first feature is the row id
    model = RecordingMLP([5, 4, 3], rng=0)
    fit(model, X, Y, optimizer=SGD(lr=1e-3), epochs=3, batch_size=5, rng=0, progress=False)
    assert [len(b) for b in model.batches] == [5, 5, 5, 5, 3] * 3
    epochs = [np.concatenate(model.batches[i * 5:(i + 1) * 5]) for i in range(3)]
    for order in epochs:
        assert sorted(order.astype(int).tolist()) == list(range(23))  # each row exactly once
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh order every epoch
    assert not np.array_equal(epochs[0], np.arange(23))


def test_no_shuffle_visits_rows_in_order():
    X, Y = blobs(n=10)
    X[:, 0] = np.arange(10)
    model = RecordingMLP([5, 4, 3], rng=0)
    fit(model, X, Y, optimizer=SGD(lr=1e-3), epochs=2, batch_size=4, shuffle=False,
        progress=False)
    assert np.array_equal(np.concatenate(model.batches), np.tile(np.arange(10), 2))


def test_same_rng_gives_bit_identical_parameters():
    X, Y = blobs(n=50)

    def run(seed):
        model = MLP([5, 16, 8, 3], dropout=0.3, rng=seed)
        h = fit(model, X, Y, optimizer=Adam(lr=1e-2), epochs=5, batch_size=7,
                validation_fraction=0.2, rng=seed, progress=False)
        return model.params, h

    p1, h1 = run(3)
    p2, h2 = run(3)
    p3, _ = run(4)
    assert params_equal(p1, p2)
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]
    assert not params_equal(p1, p3)


def test_sample_weight_equals_repeating_rows():
    X, Y = blobs(n=12)
    w = np.array([2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 1, 1], dtype=float)
    a = MLP([5, 6, 3], rng=0)
    b = copy.deepcopy(a)
    ha = fit(a, X, Y, optimizer=SGD(lr=0.05), epochs=10, sample_weight=w, progress=False)
    rep = np.repeat(np.arange(12), w.astype(int))
    hb = fit(b, X[rep], Y[rep], optimizer=SGD(lr=0.05), epochs=10, progress=False)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-12)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-10, atol=1e-12)


# -- validation and early stopping --------------------------------------------------------

def test_validation_fraction_holds_out_rows_drawn_with_rng():
    X, Y = blobs(n=40)
    X[:, 0] = np.arange(40)
    model = RecordingMLP([5, 4, 3], rng=0)
    h = fit(model, X, Y, optimizer=SGD(lr=0.05), epochs=2, batch_size=8,
            validation_fraction=0.25, rng=7, progress=False)
    # The split is the first draw of the generator: ceil(0.25 * 40) = 10 held-out rows.
    val = np.sort(np.random.default_rng(7).permutation(40)[:10])
    seen = np.unique(np.concatenate(model.batches)).astype(int)
    assert np.array_equal(seen, np.setdiff1d(np.arange(40), val))
    # val_loss of the last epoch is the loss of the final model on exactly those rows.
    assert h["val_loss"][-1] == evaluate(model, X[val], Y[val])["loss"]
    assert h["val_accuracy"][-1] == evaluate(model, X[val], Y[val])["accuracy"]


def test_validation_data_is_evaluated_each_epoch():
    X, Y = blobs(n=30)
    Xv, Yv = blobs(n=12, seed=5)
    model = MLP([5, 4, 3], rng=0)
    h = fit(model, X, Y, optimizer=SGD(lr=0.05), epochs=3, validation_data=(Xv, Yv),
            progress=False)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    probs = model.predict_proba(Xv)
    # Cross-entropy restated: mean of -log p(true class).
    assert math.isclose(h["val_loss"][-1], -np.mean(np.log(probs[Yv == 1])), rel_tol=1e-12)


def test_early_stopping_stops_and_restores_the_best_epoch():
    X, Y = blobs(n=30)
    # Validation labels shifted by one class: learning the training data makes the
    # validation loss worse from the first epoch on, so epoch 0 stays the best.
    Yv = np.roll(Y, 1, axis=1)
    init = MLP([5, 8, 3], rng=0)
    model = copy.deepcopy(init)
    h = fit(model, X, Y, optimizer=SGD(lr=0.5), epochs=50, validation_data=(X, Yv),
            early_stopping=3, progress=False)
    assert h.stop_reason == "early_stopping"
    assert h.epochs == 4  # epoch 0, then 3 without improvement
    assert h.best_epoch == 0
    assert all(h["val_loss"][e] > h["val_loss"][0] for e in range(1, 4))
    reference = copy.deepcopy(init)
    fit(reference, X, Y, optimizer=SGD(lr=0.5), epochs=1, progress=False)
    assert params_equal(model.params, reference.params)


def test_early_stopping_on_accuracy_and_min_delta():
    X, Y = blobs(n=30)
    model = MLP([5, 8, 3], rng=0)
    stop = EarlyStopping(patience=2, monitor="accuracy", min_delta=1.0,
                         restore_best_weights=False)
    h = fit(model, X, Y, optimizer=SGD(lr=0.1), epochs=20, early_stopping=stop,
            progress=False)
    # No accuracy can beat another by more than 1.0: only epoch 0 counts as improved.
    assert h.epochs == 3 and h.best_epoch == 0 and h.stop_reason == "early_stopping"


def test_callbacks_see_each_epoch_and_can_stop():
    X, Y = blobs()
    seen = []

    def cb(epoch, logs, model):
        seen.append((epoch, sorted(logs)))
        return epoch == 2

    h = fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=10, callbacks=[cb],
            progress=False)
    assert [e for e, _ in seen] == [0, 1, 2]
    assert seen[0][1] == ["accuracy", "diagnostics", "loss", "lr", "time"]
    assert h.epochs == 3 and h.stop_reason == "callback"


# -- diagnostics ----------------------------------------------------------------------------

def test_dead_fraction_counts_units_dead_for_every_row_of_the_epoch():
    X = -np.ones((9, 1))
    X[7] = 1.0
    Y = np.eye(2)[np.arange(9) % 2]
    model = MLP([1, 3, 2], rng=0)
    # unit 0 fires only for row 7, unit 1 never (huge negative bias), unit 2 for the others
    model.params["W1"][...] = [[1.0, 1.0, -1.0]]
    model.params["b1"][...] = [0.0, -100.0, 0.0]
    h = fit(model, X, Y, optimizer=SGD(lr=1e-12), epochs=3, batch_size=2, rng=0,
            progress=False)
    for diag in h.diagnostics:
        assert diag["W1"]["dead_fraction"] == pytest.approx(1 / 3)
        assert diag["W2"]["dead_fraction"] is None


def test_grad_norm_and_update_ratio_match_an_independent_computation():
    X, Y = blobs()
    model = MLP([5, 6, 3], rng=2)
    before = copy.deepcopy(model)
    h = fit(model, X, Y, optimizer=SGD(lr=0.1), epochs=1, progress=False)
    _, grads = before.loss_and_grads(X, Y)
    for w in ("W1", "W2"):
        g = np.sqrt(np.sum(grads[w] ** 2))
        w0 = np.sqrt(np.sum(before.params[w] ** 2))
        assert h.diagnostics[0][w]["grad_norm"] == pytest.approx(g, rel=1e-12)
        # SGD moves W by lr * g, so the ratio is lr * ||g|| / ||W||.
        assert h.diagnostics[0][w]["update_ratio"] == pytest.approx(0.1 * g / w0, rel=1e-9)


@pytest.mark.parametrize("batch_size, measured", [(20, 2), (40, 0)])
def test_update_ratio_is_that_of_the_epochs_last_full_minibatch_step(batch_size, measured):
    # 60 rows: in batches of 20 the last step is full and measured; in batches of 40 the
    # last has 20 rows, so the full one before it is measured (a short batch's gradient
    # is noise: 3 rows of 1347 in batches of 64 made the norms jump 60x).
    X, Y = blobs()
    model = MLP([5, 6, 3], rng=2)
    replay = copy.deepcopy(model)
    h = fit(model, X, Y, optimizer=SGD(lr=0.1), epochs=1, batch_size=batch_size,
            shuffle=False, progress=False)
    for step in range(measured + 1):   # the steps up to the measured one, by hand
        rows = slice(step * batch_size, (step + 1) * batch_size)
        _, grads = replay.loss_and_grads(X[rows], Y[rows])
        before = copy.deepcopy(replay.params)
        for k, g in grads.items():
            replay.params[k] -= 0.1 * g
    for w in ("W1", "W2"):
        g = np.sqrt(np.sum(grads[w] ** 2))
        w0 = np.sqrt(np.sum(before[w] ** 2))
        assert h.diagnostics[0][w]["grad_norm"] == pytest.approx(g, rel=1e-12)
        assert h.diagnostics[0][w]["update_ratio"] == pytest.approx(0.1 * g / w0, rel=1e-9)


def test_diagnostics_can_be_switched_off():
    X, Y = blobs()
    h = fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=2, diagnostics=False,
            progress=False)
    assert h.diagnostics == [{}, {}]


# -- divergence -----------------------------------------------------------------------------

def test_huge_learning_rate_raises_and_keeps_finite_parameters():
    # Least squares on the raw 0..16 pixels with a step far above 2 / (largest
    # curvature): each step multiplies the error, until it overflows.
    X_train, _, Y_train, _ = load_homework_digits()
    model = MLP([64, 10], loss="mse", rng=0)
    snapshots = [copy_params(model)]
    with np.errstate(all="ignore"), \
            pytest.raises(TrainingDivergedError, match=r"diverged at epoch \d+") as info:
        fit(model, X_train, Y_train, optimizer=SGD(lr=0.1), epochs=500, progress=False,
            callbacks=[lambda e, logs, m: snapshots.append(copy_params(m))])
    assert "non-finite in the loss (MeanSquaredError)" in str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.epoch <= len(snapshots)
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert any(params_equal(model.params, s) for s in snapshots[-2:])


def _blow_up_at(global_step):
    """A learning rate schedule: 1e-3, but 1e200 at one step, which leaves the
    parameters finite and makes the next squared-error loss overflow."""
    return lambda step: 1e200 if step == global_step else 1e-3


@pytest.mark.parametrize("blown, failing, restored_epoch", [
    (5, (1, 2), 1),    # epoch 1's third batch fails: back to the start of epoch 1
    (3, (1, 0), 0),    # epoch 1's first batch fails: its start is bad, so epoch 0's start
    (0, (0, 1), 0),    # the first epoch: its start (the initial parameters)
])
def test_minibatch_divergence_restores_the_latest_epoch_start_with_a_finite_loss(
        blown, failing, restored_epoch):
    X, Y = blobs(n=80)
    model = MLP([5, 6, 3], loss="mse", rng=0)
    starts = [copy_params(model)]  # the parameters at the start of each epoch
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError) as info:
        fit(model, X, Y, optimizer=SGD(lr=_blow_up_at(blown)), epochs=3, batch_size=20,
            rng=0, progress=False, diagnostics=False,
            callbacks=[lambda e, logs, m: starts.append(copy_params(m))])
    assert (info.value.epoch, info.value.step) == failing
    assert "the loss is inf" in str(info.value)
    assert f"to their values at the start of epoch {restored_epoch}," in str(info.value)
    assert params_equal(model.params, starts[restored_epoch])
    assert math.isfinite(evaluate(model, X, Y)["loss"])


def test_divergence_names_the_first_non_finite_layer():
    model = MLP([2, 2, 2], rng=0)
    model.params["W1"][...] = 1e150
    model.params["W2"][...] = 1e10
    X = np.full((1, 2), 1e150)  # Z1 = 2e300 is finite, Z2 = H1 @ W2 overflows
    Y = np.array([[1.0, 0.0]])
    before = copy_params(model)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError) as info:
        fit(model, X, Y, optimizer=SGD(lr=0.1), epochs=3, progress=False)
    assert info.value.epoch == 0 and info.value.step == 0
    assert "layer 2" in info.value.layer and "W2" in info.value.layer
    assert "Z2" in str(info.value)
    assert params_equal(model.params, before)  # the failing update was not applied


# -- dtypes ---------------------------------------------------------------------------------

def test_float32_stays_float32():
    X, Y = blobs()  # float64 data, cast once to the model's dtype
    model = MLP([5, 8, 3], rng=0, dtype=np.float32)
    opt = Adam(lr=1e-2)
    h = fit(model, X, Y, optimizer=opt, epochs=3, batch_size=16, validation_fraction=0.2,
            rng=0, progress=False)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert all(s["exp_avg"].dtype == np.float32 for s in opt.state.values())
    assert all(isinstance(v, float) and math.isfinite(v) for v in h["loss"] + h["val_loss"])
    # the first loss is the float32 model's own loss on the float32 data
    m2 = MLP([5, 8, 3], rng=0, dtype=np.float32)
    loss, _ = m2.loss_and_grads(X.astype(np.float32), Y.astype(np.float32))
    h2 = fit(m2, X.astype(np.float32), Y, optimizer=SGD(lr=0.1), epochs=1, progress=False)
    assert h2["loss"][0] == loss


def test_mse_model_has_no_accuracy():
    X, _ = blobs()
    T = X[:, :2] * 0.5
    model = MLP([5, 4, 2], loss="mse", rng=0)
    h = fit(model, X, T, optimizer=SGD(lr=0.01), epochs=5, validation_fraction=0.2, rng=0,
            progress=False)
    assert set(h.history) == {"loss", "val_loss", "lr", "time"}
    assert h["loss"][-1] < h["loss"][0]
    assert set(evaluate(model, X, T)) == {"loss"}


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ValueError, "epochs must be an integer >= 1, got 0"),
    (dict(epochs=2.5), TypeError, "epochs must be an integer"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
    (dict(validation_fraction=1.0), ValueError, r"validation_fraction must be in \(0.0, 1.0\)"),
    (dict(validation_fraction=0.0), ValueError, "validation_fraction must be in"),
    (dict(validation_fraction=0.99), ValueError, "leaves no training rows"),
    (dict(validation_fraction=0.2, validation_data=(np.zeros((2, 5)), np.eye(3)[:2])),
     ValueError, "not both"),
    (dict(validation_data=(np.zeros((2, 4)), np.eye(3)[:2])), ValueError,
     "validation_data: X has 4 features but the model expects 5"),
    (dict(early_stopping=3), ValueError, "'val_loss', which needs validation_data"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be None, an int"),
    (dict(optimizer=0.1), TypeError, "optimizer must be a chainrule.optim.Optimizer"),
    (dict(optimizer=Adam), TypeError, r"got the class Adam: call it, Adam\(\.\.\.\)"),
    (dict(optimizer="adadelta"), ValueError, "optimizer must be one of"),
    (dict(callbacks=[1]), TypeError, r"callbacks\[0\] must be callable"),
    (dict(shuffle="no"), TypeError, "shuffle must be True, False or a callable"),
    (dict(resume=True), ValueError, "resume=True needs checkpoint"),
    (dict(sample_weight=np.ones(3)), ValueError, "sample_weight must have one entry per row"),
    (dict(rng="seed"), TypeError, "rng must be None, an int seed"),
])
def test_bad_arguments_raise_before_training(kwargs, error, match):
    X, Y = blobs(n=20)
    model = MLP([5, 4, 3], rng=0)
    before = copy_params(model)
    args = dict(optimizer=SGD(lr=0.1), epochs=2, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fit(model, X, Y, **args)
    assert params_equal(model.params, before)


@pytest.mark.parametrize("X, Y, match", [
    (np.zeros((20, 4)), np.eye(3)[np.arange(20) % 3], "X has 4 features but the model expects 5"),
    (np.zeros((20, 5)), np.eye(4)[np.arange(20) % 4], r"Y must have shape \(20, 3\)"),
    (np.zeros((20, 5)), np.eye(3)[np.arange(19) % 3], r"Y must have shape \(20, 3\)"),
    (np.full((20, 5), np.nan), np.eye(3)[np.arange(20) % 3], "X must contain only finite"),
    (np.zeros((20, 5)), np.full((20, 3), 0.5), "one-hot"),
])
def test_data_not_matching_the_model_raises_before_any_change(X, Y, match):
    model = MLP([5, 4, 3], rng=0)
    opt = Adam(lr=0.1)
    before = copy_params(model)
    with pytest.raises(ValueError, match=match):
        fit(model, X, Y, optimizer=opt, epochs=2, progress=False)
    assert params_equal(model.params, before) and opt.steps == 0


def test_non_finite_initial_parameters_are_refused():
    X, Y = blobs()
    model = MLP([5, 4, 3], rng=0)
    model.params["b1"][0] = np.nan
    with pytest.raises(ValueError, match=r"\['b1'\] hold NaN"):
        fit(model, X, Y, optimizer="sgd", epochs=1, progress=False)


def test_early_stopping_arguments_are_checked():
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="monitor must be one of"):
        EarlyStopping(monitor="val_auc")
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
        EarlyStopping(min_delta=-1)


# -- output ---------------------------------------------------------------------------------

def test_progress_false_prints_nothing(capfd):
    X, Y = blobs()
    fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="adam", epochs=3, batch_size=8, rng=0,
        progress=False)
    fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="adam", epochs=3, rng=0)  # not a terminal
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_history_prints_as_a_table_and_round_trips_through_json():
    X, Y = blobs()
    h = fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=15,
            validation_fraction=0.2, rng=0, progress=False)
    text = str(h)
    lines = text.splitlines()
    assert lines[0].split() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                "lr", "time"]
    assert lines[1].split()[:2] == ["0", f"{h['loss'][0]:.4f}"]
    assert "..." in text and lines[-2].split()[0] == "14"
    assert "15 epochs" in lines[-1]
    data = json.loads(json.dumps(h.as_dict()))
    again = History.from_dict(data)
    assert again.history == h.history and again.best_epoch == h.best_epoch
    assert h.best_epoch == int(np.argmin(h["val_loss"]))


def test_evaluate_matches_a_direct_computation():
    X, Y = blobs()
    model = MLP([5, 4, 3], rng=0)
    res = evaluate(model, X, Y)
    probs = model.predict_proba(X)
    assert res["loss"] == pytest.approx(-np.mean(np.log(probs[Y == 1])), rel=1e-12)
    assert res["accuracy"] == np.mean(probs.argmax(1) == Y.argmax(1))
    with pytest.raises(TypeError, match="model must be a chainrule Network"):
        evaluate("model", X, Y)


# -- checkpoints, resume and Ctrl-C --------------------------------------------------------

def _resume_setup(seed=0):
    X, Y = blobs(n=45, seed=seed)
    model = MLP([5, 12, 8, 3], dropout=0.25, rng=np.random.default_rng(seed))
    return X, Y, model


def _fit_args(epochs, **extra):
    args = dict(epochs=epochs, batch_size=8, shuffle=True, validation_fraction=0.2,
                early_stopping=EarlyStopping(patience=50), progress=False)
    args.update(extra)
    return args


@pytest.mark.parametrize("make", [
    lambda: Adam(lr=1e-2), lambda: Adam(lr=1e-2, amsgrad=True),
    lambda: RMSprop(lr=1e-2, momentum=0.5, centered=True),
    lambda: Adagrad(lr=5e-2, lr_decay=0.01)], ids=["adam", "amsgrad", "rmsprop", "adagrad"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(make, tmp_path):
    X, Y, straight = _resume_setup()
    opt_a = make()
    ha = fit(straight, X, Y, optimizer=opt_a, rng=np.random.default_rng(5), **_fit_args(6))

    X, Y, model = _resume_setup()
    path = tmp_path / "run.npz"
    fit(model, X, Y, optimizer=make(), rng=np.random.default_rng(5),
        checkpoint=path, **_fit_args(3))
    # A fresh process: new model, optimizer and generator, everything from the file.
    X, Y, resumed = _resume_setup()
    opt_b = make()
    hb = fit(resumed, X, Y, optimizer=opt_b, rng=np.random.default_rng(5), checkpoint=path,
             resume=True, **_fit_args(6))
    assert params_equal(straight.params, resumed.params)
    assert ha["loss"] == hb["loss"] and ha["val_loss"] == hb["val_loss"]
    assert opt_a.steps == opt_b.steps
    for k in opt_a.state:
        assert opt_a.state[k].keys() == opt_b.state[k].keys()
        assert params_equal(opt_a.state[k], opt_b.state[k])
    amsgrad = getattr(opt_a, "amsgrad", False)
    assert all(("max_exp_avg_sq" in st) == amsgrad for st in opt_b.state.values())
    assert hb.epochs == 6 and hb.best_epoch == ha.best_epoch
    if amsgrad:   # another run: refused, not resumed with the moments of the other
        from chainrule.checkpoint import CheckpointMismatchError
        with pytest.raises(CheckpointMismatchError, match="amsgrad"):
            fit(_resume_setup()[2], X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(5),
                checkpoint=path, resume=True, **_fit_args(7))


def test_resume_with_an_int_seed(tmp_path):
    X, Y = blobs(n=30)
    a = MLP([5, 6, 3], dropout=0.2, rng=1)
    fit(a, X, Y, optimizer=SGD(lr=0.1, momentum=0.9), epochs=4, batch_size=4, rng=11,
        progress=False)
    b = MLP([5, 6, 3], dropout=0.2, rng=1)
    path = tmp_path / "ck.npz"
    fit(b, X, Y, optimizer=SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=4, rng=11,
        checkpoint=path, progress=False)
    c = MLP([5, 6, 3], dropout=0.2, rng=1)
    fit(c, X, Y, optimizer=SGD(lr=0.1, momentum=0.9), epochs=4, batch_size=4, rng=11,
        checkpoint=path, resume=True, progress=False)
    assert params_equal(a.params, c.params)


def test_keyboard_interrupt_saves_a_checkpoint_and_returns(tmp_path):
    X, Y, straight = _resume_setup(1)
    fit(straight, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(2), **_fit_args(6))
    X, Y, two = _resume_setup(1)
    fit(two, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(2), **_fit_args(2))

    def ctrl_c(epoch, logs, model):
        if epoch == 2:
            raise KeyboardInterrupt

    X, Y, model = _resume_setup(1)
    path = tmp_path / "ck.npz"
    h = fit(model, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(2),
            checkpoint=path, callbacks=[ctrl_c], **_fit_args(6))
    assert h.stop_reason == "interrupted"
    assert h.epochs == 2  # epoch 2 was not finished, so it is discarded
    assert params_equal(model.params, two.params)
    X, Y, resumed = _resume_setup(1)
    fit(resumed, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(2),
        checkpoint=path, resume=True, **_fit_args(6))
    assert params_equal(resumed.params, straight.params)


def test_keyboard_interrupt_mid_epoch_rolls_back_to_the_last_epoch(tmp_path):
    X, Y = blobs(n=40)

    class Interrupting(MLP):
        calls = 0

        def forward(self, X, training=False, *, checked=False):
            if training:
                Interrupting.calls += 1
                if Interrupting.calls == 13:  # epoch 2 (5 batches per epoch), 3rd batch
                    raise KeyboardInterrupt
            return super().forward(X, training, checked=checked)

    model = Interrupting([5, 6, 3], rng=0)
    opt = Adam(lr=1e-2)
    h = fit(model, X, Y, optimizer=opt, epochs=5, batch_size=8, rng=3,
            checkpoint=tmp_path / "c.npz", progress=False)
    ref = MLP([5, 6, 3], rng=0)
    ref_opt = Adam(lr=1e-2)
    fit(ref, X, Y, optimizer=ref_opt, epochs=2, batch_size=8, rng=3, progress=False)
    assert h.stop_reason == "interrupted" and h.epochs == 2
    assert params_equal(model.params, ref.params)
    assert opt.steps == ref_opt.steps == 10
    assert (tmp_path / "c.npz").exists()


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=Adam(lr=1e-2), epochs=2, batch_size=4,
        rng=0, checkpoint=path, progress=False)
    model = MLP([5, 6, 3], rng=0)
    before = copy_params(model)
    with pytest.raises(ValueError, match="batch_size: 4 in the checkpoint, 8 now"):
        fit(model, X, Y, optimizer=Adam(lr=1e-2), epochs=4, batch_size=8, rng=0,
            checkpoint=path, resume=True, progress=False)
    mismatch = r"layer_sizes: \[5, 6, 3\] in the checkpoint, \[5, 7, 3\] now"
    with pytest.raises(ValueError, match=mismatch):
        fit(MLP([5, 7, 3], rng=0), X, Y, optimizer=Adam(lr=1e-2), epochs=4, batch_size=4,
            rng=0, checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="optimizer.class: 'Adam' in the checkpoint, 'SGD'"):
        fit(model, X, Y, optimizer=SGD(lr=1e-2), epochs=4, batch_size=4, rng=0,
            checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="different run.*data"):
        fit(model, X + 1, Y, optimizer=Adam(lr=1e-2), epochs=4, batch_size=4, rng=0,
            checkpoint=path, resume=True, progress=False)
    assert params_equal(model.params, before)
    other = tmp_path / "model.npz"
    write_archive(other, {"W1": np.zeros((5, 6))}, {"kind": "model"})
    with pytest.raises(ValueError, match="not a training checkpoint"):
        fit(model, X, Y, optimizer=Adam(lr=1e-2), epochs=4, batch_size=4, rng=0,
            checkpoint=other, resume=True, progress=False)


def test_resume_without_a_file_starts_from_scratch(tmp_path):
    X, Y = blobs(n=30)
    a, b = MLP([5, 6, 3], rng=0), MLP([5, 6, 3], rng=0)
    fit(a, X, Y, optimizer="adam", epochs=3, batch_size=4, rng=0, progress=False)
    path = tmp_path / "new.npz"
    fit(b, X, Y, optimizer="adam", epochs=3, batch_size=4, rng=0, checkpoint=path,
        resume=True, progress=False)
    assert params_equal(a.params, b.params) and path.exists()


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    a = MLP([5, 6, 3], rng=0)
    ha = fit(a, X, Y, optimizer="sgd", epochs=3, checkpoint=path, progress=False)
    b = MLP([5, 6, 3], rng=0)
    hb = fit(b, X, Y, optimizer="sgd", epochs=3, checkpoint=path, resume=True, progress=False)
    assert params_equal(a.params, b.params) and hb["loss"] == ha["loss"]


def test_resuming_a_run_a_callback_stopped_warns_and_trains_no_more(tmp_path):
    from chainrule.diagnostics import TrainingWarning

    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    a = MLP([5, 6, 3], rng=0)
    fit(a, X, Y, optimizer="sgd", epochs=6, checkpoint=path, progress=False,
        callbacks=[lambda epoch, logs, model: epoch == 2])
    b = MLP([5, 6, 3], rng=0)
    with pytest.warns(TrainingWarning, match=r"a callback stopped after 3 epochs: resuming "
                                             r"keeps it as it is .* epochs=6.*interrupt it"):
        hb = fit(b, X, Y, optimizer="sgd", epochs=6, checkpoint=path, resume=True,
                 progress=False)
    assert hb.epochs == 3 and params_equal(a.params, b.params)
    with warnings.catch_warnings():   # asked for no more than it ran: nothing to say
        warnings.simplefilter("error")
        fit(MLP([5, 6, 3], rng=0), X, Y, optimizer="sgd", epochs=3, checkpoint=path,
            resume=True, progress=False)


def test_checkpoint_file_layout(tmp_path):
    from chainrule._fileformat import read_archive

    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    model = MLP([5, 6, 3], rng=0)
    opt = Adam(lr=1e-2)
    fit(model, X, Y, optimizer=opt, epochs=2, batch_size=10, rng=np.random.default_rng(1),
        validation_fraction=0.2, checkpoint=path, progress=False)
    arrays, meta = read_archive(path)
    assert meta["kind"] == "chainrule.checkpoint" and meta["epoch"] == 2
    assert meta["optimizer_steps"] == opt.steps == 2 * 3  # 24 training rows, batches of 10
    for k in model.params:
        assert np.array_equal(arrays[f"params/{k}"], model.params[k])
        assert np.array_equal(arrays[f"optim/state/{k}/exp_avg"], opt.state[k]["exp_avg"])
    assert sorted(arrays["split/val"].tolist() + arrays["split/train"].tolist()) == \
        list(range(30))
    # The History's epochs are in the journal next to the file (issue 11: O(1) writes).
    journal = meta["history"]["journal"]
    assert journal["epochs"] == 2
    data = (tmp_path / f"ck.npz.{journal['token']}.history").read_bytes()
    assert len(data.splitlines()) == 2 and len(data) == journal["bytes"]
    assert meta["identity"]["model"]["config"]["layer_sizes"] == [5, 6, 3]


# -- found in acceptance review ------------------------------------------------------------

def test_divergence_with_finite_parameters_restores_the_last_ones_with_a_finite_loss():
    # lr = 1e305 keeps the parameters finite for a step but makes the loss NaN/inf:
    # what is left must be parameters whose loss is finite, not the exploded ones.
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    model = MLP([64, 32, 10], rng=0)
    seen = [copy_params(model)]
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError) as info:
        fit(model, X_train, Y_train, optimizer=SGD(lr=1e305), epochs=5, progress=False,
            callbacks=[lambda e, logs, m: seen.append(copy_params(m))])
    assert any(params_equal(model.params, s) for s in seen)
    assert "running state is not rolled back" in str(info.value)
    assert math.isfinite(evaluate(model, X_test, Y_test)["loss"])
    assert np.isfinite(model.predict_proba(X_test)).all()


def test_training_rows_of_zero_total_weight_are_refused_before_training():
    X, Y = blobs(n=50)
    sw = np.zeros(50)
    sw[0] = 1.0
    model = MLP([5, 4, 3], rng=0)
    before = copy_params(model)
    # rng=1 puts row 0 in the validation part, leaving only weight-0 rows to train on.
    order = np.random.default_rng(1).permutation(50)
    assert 0 in order[:25]
    with pytest.raises(ValueError, match="sample_weight of the training rows sums to 0"):
        fit(model, X, Y, optimizer="sgd", epochs=2, progress=False, validation_fraction=0.5,
            sample_weight=sw, rng=1)
    assert params_equal(model.params, before)


def test_checkpoint_in_a_missing_directory_is_refused_before_training(tmp_path):
    X, Y = blobs(n=20)
    model = MLP([5, 4, 3], rng=0)
    before = copy_params(model)
    with pytest.raises(FileNotFoundError, match="checkpoint: the directory .*nodir"):
        fit(model, X, Y, optimizer="sgd", epochs=2, progress=False,
            checkpoint=tmp_path / "nodir" / "ck.npz")
    assert params_equal(model.params, before)


def test_resume_refuses_a_changed_learning_rate_schedule(tmp_path):
    from functools import partial

    from chainrule.optim import cosine_lr

    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    schedule = partial(cosine_lr, base_lr=1e-2, total_steps=100)
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=Adam(lr=schedule), epochs=2, batch_size=4,
        rng=0, checkpoint=path, progress=False)
    model = MLP([5, 6, 3], rng=0)
    before = copy_params(model)
    changed = partial(cosine_lr, base_lr=5.0, total_steps=100)
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(model, X, Y, optimizer=Adam(lr=changed), epochs=4, batch_size=4, rng=0,
            checkpoint=path, resume=True, progress=False)
    assert params_equal(model.params, before)
    # The same schedule (a new but equal partial) resumes.
    fit(model, X, Y, optimizer=Adam(lr=partial(cosine_lr, base_lr=1e-2, total_steps=100)),
        epochs=4, batch_size=4, rng=0, checkpoint=path, resume=True, progress=False)


def test_resume_refuses_moved_milestones_the_probe_steps_miss(tmp_path):
    # The schedule's fingerprint is its values at fixed steps; milestones between them
    # (30 -> 40) would slip through without their own entry.
    from functools import partial

    from chainrule.optim import multistep_lr

    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"

    def opt(milestones):
        return Adam(lr=partial(multistep_lr, base_lr=1e-2, milestones=milestones))
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=opt([30, 80]), epochs=2, batch_size=4,
        rng=0, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=opt([40, 90]), epochs=4, batch_size=4,
            rng=0, checkpoint=path, resume=True, progress=False)
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=opt((80, 30)), epochs=4, batch_size=4, rng=0,
        checkpoint=path, resume=True, progress=False)   # the same milestones, any order


# -- second acceptance review: checkpoints are checked like model files --------------------

def _tampered_checkpoint(tmp_path, change):
    """A real checkpoint (3 epochs of Adam, validation split, early stopping), rewritten
    by ``change(arrays, meta)`` with a valid checksum, as a hand-edited file would be."""
    from chainrule._fileformat import read_archive

    X, Y, model = _resume_setup()
    path = tmp_path / "ck.npz"
    fit(model, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(5), checkpoint=path,
        **_fit_args(3))
    arrays, meta = read_archive(path)
    change(arrays, meta)
    write_archive(path, arrays, meta)
    return path


def _resume_tampered(path):
    from chainrule._fileformat import ModelFileError

    X, Y, model = _resume_setup()
    opt = Adam(lr=1e-2)
    gen = np.random.default_rng(5)
    before, gen_before = copy_params(model), copy.deepcopy(gen.bit_generator.state)
    with pytest.raises(ModelFileError) as info:
        fit(model, X, Y, optimizer=opt, rng=gen, checkpoint=path, resume=True,
            **_fit_args(6))
    # Nothing was touched: parameters, optimizer, generator.
    assert params_equal(model.params, before)
    assert opt.steps == 0 and opt.state == {}
    assert gen.bit_generator.state == gen_before
    assert str(path) in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("change, fragments", [
    (lambda a, m: a.pop("params/W2"), ["arrays ['params/W2'] are missing"]),
    (lambda a, m: a.__setitem__("params/W2", np.zeros((3, 3))),
     ["'params/W2' has shape (3, 3), expected (12, 8)"]),
    (lambda a, m: a.__setitem__("params/W1", a["params/W1"].astype(np.float32)),
     ["'params/W1' has dtype float32, expected float64"]),
    (lambda a, m: a.__setitem__("optim/state/W1/m", np.zeros((5, 12))),
     ["unexpected arrays ['optim/state/W1/m']"]),
    (lambda a, m: a.pop("optim/state/b3/exp_avg_sq"),
     ["arrays ['optim/state/b3/exp_avg_sq'] are missing"]),
    (lambda a, m: a.__setitem__("optim/state/W3/exp_avg", np.zeros((3, 8))),
     ["'optim/state/W3/exp_avg' has shape (3, 8), expected (8, 3)"]),
    (lambda a, m: a.__setitem__("split/val", a["split/train"][:9]),
     ["not a split of the 45 rows"]),
    (lambda a, m: m.pop("rngs"), ["metadata keys ['rngs'] are missing"]),
    (lambda a, m: m.__setitem__("rngs", m["rngs"][:1]), ["'rngs' must be a list of 3"]),
    (lambda a, m: m["rngs"][1].__setitem__("bit_generator", "MT19937"), ["rngs[1]"]),
    (lambda a, m: m.__setitem__("epoch", "3"), ["'epoch' must be an int >= 0, got '3'"]),
    (lambda a, m: m.__setitem__("optimizer_steps", -1), ["'optimizer_steps' must be"]),
    (lambda a, m: m["history"]["journal"].__setitem__("epochs", 2),
     ["holds 3 epochs, the checkpoint counts 2"]),
    (lambda a, m: m.__setitem__("stopper", {}), ["'stopper' must be a dict"]),
    (lambda a, m: m.__setitem__("extra", 1), ["unexpected metadata keys ['extra']"]),
])
def test_resume_refuses_a_damaged_checkpoint_before_changing_anything(tmp_path, change,
                                                                      fragments):
    message = _resume_tampered(_tampered_checkpoint(tmp_path, change))
    for fragment in fragments:
        assert fragment in message


def test_resume_reports_every_problem_of_a_checkpoint_at_once(tmp_path):
    def change(arrays, meta):
        arrays.pop("params/b1")
        arrays["params/W2"] = np.zeros((3, 3))
        arrays["junk"] = np.zeros(2)

    message = _resume_tampered(_tampered_checkpoint(tmp_path, change))
    assert "['params/b1'] are missing" in message and "['junk']" in message
    assert "'params/W2' has shape (3, 3)" in message


def test_the_untampered_checkpoint_of_the_damage_tests_resumes(tmp_path):
    # The damage tests above fail for the damage, not because the base file is refused.
    path = _tampered_checkpoint(tmp_path, lambda a, m: None)
    X, Y, model = _resume_setup()
    h = fit(model, X, Y, optimizer=Adam(lr=1e-2), rng=np.random.default_rng(5),
            checkpoint=path, resume=True, **_fit_args(6))
    assert h.epochs == 6


def test_resume_with_fewer_epochs_than_the_checkpoint_is_refused(tmp_path):
    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer="adam", epochs=6, batch_size=10, rng=0,
        checkpoint=path, progress=False)
    model = MLP([5, 6, 3], rng=0)
    before = copy_params(model)
    with pytest.raises(ValueError, match=r"epochs=2 is fewer than the 6 epochs already done"):
        fit(model, X, Y, optimizer="adam", epochs=2, batch_size=10, rng=0, checkpoint=path,
            resume=True, progress=False)
    assert params_equal(model.params, before)


def test_history_keeps_its_key_order_through_sorted_json_and_resume(tmp_path):
    X, Y = blobs(n=30)
    h = fit(MLP([5, 6, 3], rng=0), X, Y, optimizer="adam", epochs=2, rng=0,
            validation_fraction=0.2, progress=False)
    order = ["loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert list(h.history) == order
    again = History.from_dict(json.loads(json.dumps(h.as_dict(), sort_keys=True)))
    assert list(again.history) == order
    path = tmp_path / "ck.npz"
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer="adam", epochs=2, rng=0,
        validation_fraction=0.2, checkpoint=path, progress=False)
    resumed = fit(MLP([5, 6, 3], rng=0), X, Y, optimizer="adam", epochs=3, rng=0,
                  validation_fraction=0.2, checkpoint=path, resume=True, progress=False)
    assert list(resumed.history) == order


# -- issue 7: one home for each concern -----------------------------------------------------

def test_train_reexports_history_and_early_stopping():
    import chainrule.history
    import chainrule.train

    assert chainrule.train.History is chainrule.history.History
    assert chainrule.train.EarlyStopping is chainrule.history.EarlyStopping
    assert set(chainrule.train.__all__) >= {"fit", "evaluate", "History", "EarlyStopping",
                                            "TrainingDivergedError"}


def test_resume_errors_are_typed_and_carry_their_fields(tmp_path):
    from functools import partial

    from chainrule.checkpoint import CheckpointEpochsError, CheckpointMismatchError
    from chainrule.optim import cosine_lr

    X, Y = blobs(n=30)
    path = tmp_path / "ck.npz"
    fit(MLP([5, 6, 3], rng=0), X, Y, optimizer=Adam(lr=partial(cosine_lr, base_lr=1e-2,
                                                               total_steps=100)),
        epochs=3, batch_size=10, rng=0, checkpoint=path, progress=False)
    with pytest.raises(CheckpointMismatchError) as mismatch:
        fit(MLP([5, 6, 3], rng=0), X, Y,
            optimizer=Adam(lr=partial(cosine_lr, base_lr=5.0, total_steps=100)), epochs=4,
            batch_size=10, rng=0, checkpoint=path, resume=True, progress=False)
    err = mismatch.value
    assert isinstance(err, ValueError)
    assert err.field == "optimizer.lr_schedule" and err.path == str(path)
    assert err.saved[0] == pytest.approx(1e-2) and err.current[0] == pytest.approx(5.0)
    with pytest.raises(CheckpointEpochsError) as epochs:
        fit(MLP([5, 6, 3], rng=0), X, Y,
            optimizer=Adam(lr=partial(cosine_lr, base_lr=1e-2, total_steps=100)), epochs=2,
            batch_size=10, rng=0, checkpoint=path, resume=True, progress=False)
    assert isinstance(epochs.value, ValueError)
    assert (epochs.value.epochs, epochs.value.done, epochs.value.path) == (2, 3, str(path))


def test_every_run_setting_says_whether_the_run_identity_covers_it():
    # A new fit option is a new RunSettings field; it must declare whether resuming
    # has to match it, and those that are declared covered must change the identity.
    import dataclasses

    from chainrule.checkpoint import RunSettings, run_identity

    X, Y = blobs(n=20)
    model = MLP([5, 4, 3], rng=0)
    base = RunSettings(X=X, Y=Y, sample_weight=None, optimizer=SGD(lr=0.1), epochs=3,
                       batch_size=None, shuffle=True, validation_data=None,
                       validation_fraction=None, early_stopping=None, callbacks=(),
                       rng=np.random.default_rng(0), progress=False, diagnostics=True,
                       checkpoint=None, resume=False, l2=0.0)
    changed = {"X": X + 1, "Y": Y[::-1], "sample_weight": np.ones(20),
               "optimizer": Adam(lr=0.1), "batch_size": 4, "shuffle": False,
               "validation_data": (X[:4], Y[:4]), "validation_fraction": 0.25,
               "early_stopping": EarlyStopping(patience=2, monitor="loss"), "l2": 1e-3,
               "drop_last": True}
    fields = dataclasses.fields(RunSettings)
    for f in fields:
        assert isinstance(f.metadata.get("identity"), bool) and f.metadata.get("why"), f.name
    covered = {f.name for f in fields if f.metadata["identity"]}
    assert covered == set(changed)
    reference = run_identity(model, base)
    for name, value in changed.items():
        assert run_identity(model, dataclasses.replace(base, **{name: value})) != reference, \
            name


def test_fit_batches_through_data_batch_indices():
    from chainrule.data import batch_indices, iterate_minibatches

    assert list(batch_indices(7, None)) == [slice(0, 7)]
    assert list(batch_indices(7, 3)) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert list(batch_indices(7, 50)) == [slice(0, 7)]
    order = np.random.default_rng(0).permutation(7)
    pieces = list(batch_indices(7, 3, order))
    assert [p.tolist() for p in pieces] == [order[:3].tolist(), order[3:6].tolist(),
                                            order[6:].tolist()]
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        batch_indices(7, 0)
    with pytest.raises(ValueError, match="order must be 7 integer row indices"):
        batch_indices(7, 3, np.arange(6))
    # fit and iterate_minibatches draw the same batches from the same generator.
    X, Y = blobs(n=23)
    X[:, 0] = np.arange(23)
    model = RecordingMLP([5, 4, 3], rng=0)
    fit(model, X, Y, optimizer=SGD(lr=1e-3), epochs=2, batch_size=5, rng=4, progress=False)
    gen = np.random.default_rng(4)
    expected = [xb[:, 0] for _ in range(2) for xb, _ in iterate_minibatches(X, Y, 5, rng=gen)]
    assert all(np.array_equal(a, b) for a, b in zip(model.batches, expected, strict=True))


def test_early_stopping_state_round_trips_through_its_state_dict():
    from chainrule.history import EarlyStoppingState

    state = EarlyStoppingState(EarlyStopping(patience=2, monitor="loss"))
    params = {"W": np.ones(2)}
    assert state.update({"loss": 1.0}, 0, params) is False
    assert state.update({"loss": 2.0}, 1, params) is False
    saved = state.state_dict()
    assert state.update({"loss": 3.0}, 2, params) is True  # the second epoch without gain
    state.load_state_dict(saved)
    assert (state.best, state.best_epoch, state.wait) == (1.0, 0, 1)
    params["W"][...] = 5.0
    state.restore_best(params)
    assert np.array_equal(params["W"], np.ones(2))


def test_l2_adds_scikit_learns_alpha_term_per_batch():
    # One full-batch SGD step with l2=alpha: the step is lr * (dL/dW + alpha * W / n) on
    # the weights and lr * dL/db on the biases (scikit-learn's alpha), and the recorded
    # loss includes 0.5 * alpha * sum(W**2) / n.
    X, Y = blobs(n=20)
    alpha, lr = 0.3, 0.1
    model = MLP([5, 4, 3], rng=0)
    start = {k: v.copy() for k, v in model.params.items()}
    loss, grads = model.loss_and_grads(X, Y, training=False)
    history = fit(model, X, Y, optimizer=SGD(lr=lr), epochs=1, l2=alpha, progress=False)
    n = X.shape[0]
    for k, p in start.items():
        extra = alpha * p / n if k.startswith("W") else 0.0
        np.testing.assert_allclose(model.params[k], p - lr * (grads[k] + extra), rtol=1e-12)
    penalty = 0.5 * alpha * sum(float(np.sum(start[w] ** 2)) for w in ("W1", "W2")) / n
    assert history["loss"][0] == pytest.approx(loss + penalty, rel=1e-12)
    with pytest.raises(ValueError, match="l2"):
        fit(MLP([5, 4, 3], rng=0), X, Y, optimizer="sgd", epochs=1, l2=-1.0, progress=False)


def test_a_batch_of_one_row_for_batchnorm1d_is_refused_before_training():
    import chainrule as cr

    X = np.random.default_rng(0).normal(size=(97, 6))
    y = np.arange(97) % 3
    model = cr.Sequential([cr.Affine(6, 8), cr.BatchNorm1d(8), cr.ReLU(), cr.Affine(8, 3)],
                          rng=0)
    before = {k: v.copy() for k, v in {**model.params, **model.buffers}.items()}
    optimizer = cr.Adam()
    # 97 = 3 * 32 + 1: the epoch's last batch would hold one row (torch: an error there).
    with pytest.raises(ValueError, match=r"batch_size=32 leaves a batch of 1 of the 97 "
                                         r"training rows, but layers\[1\] \(BatchNorm1d"):
        cr.fit(model, X, y, optimizer=optimizer, epochs=2, batch_size=32, rng=0,
               progress=False)
    after = {**model.params, **model.buffers}
    assert all(np.array_equal(before[k], after[k]) for k in before) and optimizer.steps == 0
    cr.fit(model, X, y, optimizer=optimizer, epochs=1, batch_size=25, rng=0, progress=False)
    with pytest.raises(ValueError, match="batch_size=None leaves a batch of 1 of the 1"):
        cr.fit(model, X[:1], y[:1], optimizer="adam", epochs=1, progress=False)


def test_a_layer_class_given_for_a_layer_is_refused_when_the_network_is_built():
    import chainrule as cr

    with pytest.raises(TypeError, match=r"layers\[1\] is the class ReLU, not a layer: "
                                        r"write ReLU\(...\)"):
        cr.Sequential([cr.Affine(4, 3), cr.ReLU, cr.Affine(3, 2)], rng=0)


def test_evaluate_with_sample_weight_gives_weighted_means_as_scikit_learn():
    from sklearn.metrics import accuracy_score, log_loss

    import chainrule as cr

    X, Y = blobs(n=60, seed=3)
    y = Y.argmax(axis=1)
    model = MLP([5, 6, 3], rng=0)
    w = np.random.default_rng(1).uniform(0, 3, size=60)
    probs = model.predict_proba(X)
    result = evaluate(model, X, y, sample_weight=w)
    assert result["accuracy"] == pytest.approx(
        accuracy_score(y, probs.argmax(axis=1), sample_weight=w), rel=1e-12)
    assert result["loss"] == pytest.approx(log_loss(y, probs, sample_weight=w), rel=1e-9)
    # Integer weights count rows: the same as repeating them.
    counts = np.arange(60) % 3
    repeated = evaluate(model, np.repeat(X, counts, axis=0), np.repeat(y, counts))
    weighted = evaluate(model, X, Y, sample_weight=counts)
    assert weighted == pytest.approx(repeated, rel=1e-12)
    assert evaluate(model, X, y, sample_weight=np.ones(60)) == pytest.approx(
        evaluate(model, X, y), rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        evaluate(model, X, y, sample_weight=-w)
    with pytest.raises(TypeError, match="unexpected keyword|positional"):
        cr.evaluate(model, X, y, w)   # keyword-only, as fit's


def test_a_trained_model_keeps_no_training_batch():
    # The last batch's activations (a convolution's im2col matrix among them) are
    # dropped when fit returns, as PyTorch frees its graph after backward.
    import chainrule as cr

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 16)), rng.integers(0, 3, 64)
    model = cr.Sequential([cr.Unflatten((1, 4, 4)), cr.Conv2D(1, 2, 3), cr.ReLU(),
                           cr.Flatten(), cr.Affine(8, 3)], rng=0)
    cr.fit(model, X, y, optimizer="adam", epochs=1, batch_size=16, rng=0, progress=False)
    assert all(getattr(layer, "cache", None) is None for layer, _ in model.layers)
    assert model.loss.cache is None
    # and it trains on as before: a second fit gives what it gives a copy that still
    # holds its caches (deep-copied from a model trained without the clearing)
    twin = cr.Sequential([cr.Unflatten((1, 4, 4)), cr.Conv2D(1, 2, 3), cr.ReLU(),
                          cr.Flatten(), cr.Affine(8, 3)], rng=0)
    twin.load_state_dict(model.state_dict())
    twin.forward(X[:16], training=True)   # caches filled
    for m in (model, twin):
        cr.fit(m, X, y, optimizer="adam", epochs=1, batch_size=16, rng=1, progress=False)
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, twin.params[k], err_msg=k)


@pytest.mark.parametrize("error", [ValueError, RuntimeError, KeyError])
def test_an_error_in_a_callback_leaves_the_last_complete_epoch_whatever_its_type(error):
    """Only ValueError rolled back (it was meant for a file's bad rows); a RuntimeError
    left the failing epoch's parameters in place. Every kind now leaves model,
    optimizer and History at the end of the last complete epoch."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    reference = MLP([3, 4, 2], rng=0)
    fit(reference, X, y, optimizer=SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=10,
           rng=0, progress=False)

    def fail_at_third(epoch, logs, model):
        if epoch == 2:
            raise error("stop")

    model, opt = MLP([3, 4, 2], rng=0), SGD(lr=0.1, momentum=0.9)
    with pytest.raises(error):
        fit(model, X, y, optimizer=opt, epochs=4, batch_size=10, rng=0, progress=False,
               callbacks=[fail_at_third])
    for name in model.params:
        np.testing.assert_array_equal(model.params[name], reference.params[name])
    assert opt.steps == 8
