"""Integer class labels (issue 10): accepted wherever one-hot ``Y`` is, with the same
loss and gradients, checked against torch's ``CrossEntropyLoss`` with class indices."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.losses import CategoricalCrossEntropy
from conftest import rel_diff, to_torch


def _data(rng, n=12, d=5, k=4):
    labels = rng.permutation(np.arange(n) % k)
    return rng.normal(size=(n, d)), labels, np.eye(k)[labels]


def _torch_ce(torch, logits, labels, weight=None):
    """torch's loss and d/dlogits for class indices (``CrossEntropyLoss``, per-row
    weights applied by hand: torch's ``weight=`` is per class)."""
    z = to_torch(logits, requires_grad=True)
    target = torch.tensor(np.asarray(labels), dtype=torch.long)
    if weight is None:
        loss = torch.nn.CrossEntropyLoss()(z, target)
    else:
        w = to_torch(weight)
        loss = (torch.nn.CrossEntropyLoss(reduction="none")(z, target) * w).sum() / w.sum()
    loss.backward()
    return float(loss.detach()), z.grad.numpy()


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_with_class_indices_matches_torch(torch, rng, weighted):
    logits = rng.normal(scale=3.0, size=(9, 5))
    labels = rng.integers(0, 5, size=9)
    weight = rng.uniform(0.1, 2.0, size=9) if weighted else None
    loss = CategoricalCrossEntropy()
    value = loss.forward(logits, labels, weight)
    d_logits, d_labels = loss.backward(1.0)
    expected, expected_grad = _torch_ce(torch, logits, labels, weight)
    assert d_labels is None
    assert value == pytest.approx(expected, rel=1e-12)
    assert rel_diff(d_logits, expected_grad) < 1e-12


def test_class_indices_give_the_one_hot_loss_and_gradient_for_extreme_logits(rng):
    # Rows whose true class sits 1e4 below the maximum: log-probability -1e4, exactly.
    logits = np.array([[1e4, 0.0, -5.0], [0.0, 1e4, 2.0]])
    labels = np.array([1, 2])
    a, b = CategoricalCrossEntropy(), CategoricalCrossEntropy()
    assert a.forward(logits, labels) == pytest.approx(b.forward(logits, np.eye(3)[labels]))
    assert np.isfinite(a.forward(logits, labels))
    np.testing.assert_allclose(a.backward()[0], b.backward()[0], atol=1e-15)


def test_backward_with_class_indices_never_builds_a_one_hot_matrix(rng, monkeypatch):
    # np.eye / zeros-based one-hot construction would be the way to build it; forbid both.
    logits, labels = rng.normal(size=(6, 3)), np.array([0, 1, 2, 2, 1, 0])
    loss = CategoricalCrossEntropy()
    monkeypatch.setattr(np, "eye", lambda *a, **k: pytest.fail("one-hot built with np.eye"))
    monkeypatch.setattr(cr.functional, "one_hot",
                        lambda *a, **k: pytest.fail("one-hot built with one_hot"))
    loss.forward(logits, labels)
    grad, _ = loss.backward()
    assert grad.shape == (6, 3)
    # Each row of (softmax - onehot) / N sums to 0: the 1 was subtracted once per row.
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-16)


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, 3]), r"labels must be class indices in \[0, 2\], got values in \[0, 3\]"),
    (np.array([0, -1, 2]), r"class indices in \[0, 2\], got values in \[-1, 2\]"),
    (np.array([0, 1]), r"one class index per row \(3\)"),
])
def test_loss_rejects_bad_class_indices_by_name(labels, match):
    with pytest.raises(ValueError, match=match):
        CategoricalCrossEntropy().forward(np.zeros((3, 3)), labels)


def test_network_loss_and_grads_and_step_take_class_indices(rng):
    X, labels, Y = _data(rng)
    a = cr.MLP([5, 7, 4], rng=0)
    b = cr.MLP([5, 7, 4], rng=0)
    weight = rng.uniform(0.5, 1.5, size=len(labels))
    loss_a, grads_a = a.loss_and_grads(X, labels, weight)
    loss_b, grads_b = b.loss_and_grads(X, Y, weight)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    for k in grads_b:
        np.testing.assert_allclose(grads_a[k], grads_b[k], rtol=1e-10, atol=1e-15)
    opt_a, opt_b = cr.SGD(lr=0.1), cr.SGD(lr=0.1)
    a.step(X, labels, opt_a)
    b.step(X, Y, opt_b)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-10, atol=1e-15)


def test_network_rejects_class_indices_out_of_range_naming_y(rng):
    X, labels, _ = _data(rng)
    model = cr.MLP([5, 7, 4], rng=0)
    labels = labels.copy()
    labels[3] = 4
    with pytest.raises(ValueError, match=r"Y must be class indices in \[0, 3\]"):
        model.loss_and_grads(X, labels)


def test_fit_and_evaluate_with_class_indices_match_one_hot(rng):
    X, labels, Y = _data(rng, n=40)
    weight = rng.uniform(0.5, 1.5, size=40)
    histories, models = [], []
    for target in (labels, Y):
        model = cr.MLP([5, 8, 4], rng=0, dtype=np.float32)
        histories.append(cr.fit(model, X, target, optimizer=cr.Adam(lr=1e-2), epochs=4,
                                batch_size=8, rng=1, progress=False, sample_weight=weight,
                                validation_fraction=0.2))
        models.append(model)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(histories[0].history[key], histories[1].history[key],
                                   rtol=1e-5)
    ev_int, ev_hot = cr.evaluate(models[0], X, labels), cr.evaluate(models[0], X, Y)
    assert ev_int["loss"] == pytest.approx(ev_hot["loss"], rel=1e-5)
    assert ev_int["accuracy"] == ev_hot["accuracy"]
    # accuracy counted independently from the logits
    expected = np.mean(models[0].predict_classes(X) == labels)
    assert ev_int["accuracy"] == pytest.approx(expected)


def test_sanity_check_takes_class_indices(rng):
    X, labels, Y = _data(rng, n=30)
    report_int = cr.sanity_check(cr.MLP([5, 16, 4], rng=0), X, labels, rng=0)
    report_hot = cr.sanity_check(cr.MLP([5, 16, 4], rng=0), X, Y, rng=0)
    assert [c.name for c in report_int] == [c.name for c in report_hot]
    for a, b in zip(report_int, report_hot, strict=True):
        assert a.passed == b.passed, a.name
        if a.name != "gradient check":   # that value is finite-difference rounding noise
            assert a.value == pytest.approx(b.value, rel=1e-4, abs=1e-9), a.name
    assert report_int.passed
    assert report_int["initial loss ~ ln K"].threshold.startswith(f"|loss - {np.log(4):.4f}|")


def test_mean_squared_error_model_takes_1d_integers_as_targets_not_classes(rng):
    # One output: a 1-D target is that output's column (scikit-learn's regressors),
    # integers included; with more outputs it cannot be, and is refused.
    X, t = rng.normal(size=(4, 5)), np.array([0, 1, 2, 0])
    model = cr.MLP([5, 3, 1], rng=0, loss="mse")
    assert model.loss_and_grads(X, t)[0] == model.loss_and_grads(X, t[:, None] * 1.0)[0]
    with pytest.raises(ValueError, match=r"Y must have shape \(N, 2\) \(one column per "):
        cr.MLP([5, 3, 2], rng=0, loss="mse").loss_and_grads(X, t)
