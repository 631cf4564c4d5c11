"""Tests of chainrule.sanity.sanity_check."""

import copy
import math

import numpy as np
import pytest

from chainrule.homework import FeedforwardNeuralNet, LogisticRegression
from chainrule.layers import Affine
from chainrule.models import MLP
from chainrule.sanity import SanityReport, sanity_check


def blobs(n=60, d=6, k=4, seed=0):
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = r.normal(0, 2, size=(k, d))[y] + r.normal(size=(n, d))
    return X, np.eye(k)[y]


class WrongSignAffine(Affine):
    """An Affine layer whose weight gradient has the wrong sign (a classic bug)."""

    def backward(self, d_out):
        d_in, d_w, d_b = super().backward(d_out)
        return d_in, -d_w, d_b


def test_a_healthy_model_passes_every_check_and_is_left_untouched():
    X, Y = blobs()
    model = MLP([6, 16, 4], dropout=0.3, rng=np.random.default_rng(0))
    before = {k: v.copy() for k, v in model.params.items()}
    dropout = model.layers[2][0]
    rng_state = copy.deepcopy(dropout.rng.bit_generator.state)
    report = sanity_check(model, X, Y, rng=0)
    assert isinstance(report, SanityReport)
    assert [c.name for c in report] == ["initial loss ~ ln K", "weight decay raises loss",
                                        "overfits small subset", "gradient check"]
    assert report.passed, str(report)
    assert report["overfits small subset"].value < 0.05
    assert report["gradient check"].value < 1e-6
    assert report["weight decay raises loss"].value > 0
    # the user's model, its dropout rate and its generator are as they were
    assert all(np.array_equal(before[k], model.params[k]) for k in before)
    assert dropout.p == 0.3
    assert dropout.rng.bit_generator.state == rng_state


def test_initial_loss_of_a_zero_initialised_classifier_is_exactly_ln_k():
    X, Y = blobs(k=4)
    report = sanity_check(LogisticRegression(6, 4), X, Y, rng=0)
    check = report["initial loss ~ ln K"]
    # All logits 0 -> softmax uniform -> cross-entropy ln 4 for every row.
    assert check.value == pytest.approx(math.log(4), rel=1e-12)
    assert check.passed


def test_unscaled_inputs_fail_the_initial_loss_check():
    X = np.random.default_rng(0).uniform(0, 16, size=(50, 64))  # raw pixel range
    Y = np.eye(10)[np.arange(50) % 10]
    model = FeedforwardNeuralNet(64, 32, 10, rng=0)
    report = sanity_check(model, X, Y, rng=0)
    check = report["initial loss ~ ln K"]
    assert not check.passed and not report.passed
    probs = model.predict_proba(X)
    assert check.value == pytest.approx(-np.mean(np.log(probs[Y == 1])), rel=1e-12)
    assert check.value > math.log(10) * 1.25
    assert "FAIL" in str(report)


def test_a_trained_model_fails_the_initial_loss_check_with_its_own_hint():
    X, Y = blobs(k=4)
    model = LogisticRegression(6, 4, learning_rate=0.5)
    for _ in range(200):
        model.step(X, Y)
    report = sanity_check(model, X, Y, rng=0)
    check = report["initial loss ~ ln K"]
    assert not check.passed and check.value < math.log(4) - 0.5
    assert "already fits" in check.detail and "unscaled" not in check.detail
    fresh = sanity_check(FeedforwardNeuralNet(64, 32, 10, rng=0),
                         np.random.default_rng(0).uniform(0, 16, size=(50, 64)),
                         np.arange(50) % 10, rng=0)["initial loss ~ ln K"]
    assert "unscaled" in fresh.detail and "already fits" not in fresh.detail


def test_a_wrong_gradient_fails_the_gradient_and_overfit_checks():
    X, Y = blobs()
    model = MLP([6, 16, 4], rng=0)
    model.layers[2] = (WrongSignAffine(), ("W2", "b2"))
    model.layers[2][0].validate = False
    report = sanity_check(model, X, Y, rng=0)
    assert not report["gradient check"].passed
    assert report["gradient check"].value > 0.1
    assert not report["overfits small subset"].passed


def test_regression_model_skips_the_ln_k_check():
    X, _ = blobs()
    T = X[:, :2] ** 2
    report = sanity_check(MLP([6, 32, 2], loss="mse", rng=0), X, T, rng=0)
    assert [c.name for c in report] == ["weight decay raises loss", "overfits small subset",
                                        "gradient check"]
    assert report["gradient check"].passed


def test_float32_model_is_checked_in_float64_and_stays_float32():
    X, Y = blobs()
    model = MLP([6, 8, 4], rng=0, dtype=np.float32)
    report = sanity_check(model, X, Y, rng=0)
    assert report["gradient check"].passed
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_report_prints_a_table_and_looks_up_checks():
    X, Y = blobs()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    report = sanity_check(MLP([6, 8, 4], rng=0), X, Y, rng=1)
    lines = str(report).splitlines()
    assert lines[0].split() == ["check", "result", "measured", "threshold"]
    assert lines[2].startswith("initial loss ~ ln K") and "pass" in lines[2]
    assert lines[-1] == "all checks passed"
    assert set(report.as_dict()) == {c.name for c in report}
    with pytest.raises(KeyError, match="no check named"):
        report["speed"]


def test_bad_input():
    X, Y = blobs()
    with pytest.raises(ValueError, match="X has 6 features but the model expects 5"):
        sanity_check(MLP([5, 4, 4], rng=0), X, Y)
    with pytest.raises(TypeError, match="model must be a chainrule Network"):
        sanity_check(object(), X, Y)
