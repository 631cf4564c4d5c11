"""Soft targets: (N, K) rows of class probabilities for CategoricalCrossEntropy, as
``torch.nn.CrossEntropyLoss`` takes them (mixup, knowledge distillation, hand-made label
smoothing), checked against torch autograd and finite differences, and followed through
``fit``, ``evaluate``, ``sanity_check``, ``check_gradients``, L-BFGS and ``.npy`` files."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule._validation import check_probability_rows, probability_tolerance
from chainrule.gradcheck import check_gradients, numerical_gradient, relative_error
from chainrule.lbfgs import minimize_lbfgs
from chainrule.losses import CategoricalCrossEntropy


def soft_rows(rng, n, k):
    """Rows of every kind a user builds: Dirichlet draws (a teacher's probabilities),
    mixup pairs of one-hot rows, a hand-smoothed row, a one-hot row and a tie."""
    Y = rng.dirichlet(np.full(k, 0.7), size=n)
    for i in range(0, n - 3, 4):  # mixup: lam * e_a + (1 - lam) * e_b
        a, b = rng.choice(k, size=2, replace=False)
        lam = rng.uniform(0.2, 0.8)
        Y[i] = 0.0
        Y[i, a], Y[i, b] = lam, 1 - lam
    Y[1] = 0.1 / k
    Y[1, 0] += 0.9            # label smoothing by hand: (1 - 0.1) e_0 + 0.1 / K
    Y[2] = 0.0
    Y[2, k - 1] = 1.0         # one-hot rows stay welcome among soft ones
    Y[3] = 0.0
    Y[3, [1, 2]] = 0.5        # a tie: argmax takes the first, as torch's does
    return Y


def mixup(rng, X, Y):
    """Each row mixed with a random partner, ``lam ~ Beta(0.4, 0.4)`` per row."""
    partner = rng.permutation(len(X))
    lam = rng.beta(0.4, 0.4, size=(len(X), 1))
    return lam * X + (1 - lam) * X[partner], lam * Y + (1 - lam) * Y[partner]


def blobs(rng, n=90, d=4, k=3):
    labels = np.arange(n) % k
    centres = rng.normal(scale=3.0, size=(k, d))
    return centres[labels] + rng.normal(size=(n, d)), np.eye(k)[labels]


def torch_soft_ce(torch, logits, Y, weights, eps):
    """torch's loss and d/dlogits for probability targets, in the logits' dtype; row
    weights as torch needs them: per-row losses, then their weighted mean."""
    dtype = torch.float64 if logits.dtype == np.float64 else torch.float32
    z = torch.tensor(logits, dtype=dtype, requires_grad=True)
    per_row = torch.nn.functional.cross_entropy(z, torch.tensor(Y, dtype=dtype),
                                                label_smoothing=eps, reduction="none")
    w = None if weights is None else torch.tensor(weights, dtype=dtype)
    loss = per_row.mean() if w is None else (per_row * w).sum() / w.sum()
    loss.backward()
    return loss.item(), z.grad.numpy()


# -- the loss: torch, finite differences, label smoothing ----------------------------------

@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_targets_match_torch(rng, torch, dtype, rtol, eps, weighted):
    """Loss and gradient for probability targets agree with torch's cross_entropy of the
    same dtype (label smoothing and per-row weights included), and in float32 with the
    float64 reference of the same float32 inputs."""
    n, k = 16, 6
    z = (rng.normal(scale=3.0, size=(n, k))).astype(dtype)
    Y = soft_rows(rng, n, k).astype(dtype)
    w = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    ce = CategoricalCrossEntropy(label_smoothing=eps)
    loss = ce.forward(z, Y, w)
    grad, _ = ce.backward()
    assert grad.dtype == dtype
    t_loss, t_grad = torch_soft_ce(torch, z, Y, w, eps)
    assert loss == pytest.approx(t_loss, rel=rtol)
    assert np.max(np.abs(grad - t_grad)) <= rtol * np.max(np.abs(t_grad))
    ref_loss, ref_grad = torch_soft_ce(torch, z.astype(np.float64), Y.astype(np.float64),
                                       None if w is None else w.astype(np.float64), eps)
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert np.max(np.abs(grad - ref_grad)) <= rtol * np.max(np.abs(ref_grad))


@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_targets_finite_differences(rng, eps, weighted):
    z = rng.normal(scale=2.0, size=(9, 5))
    Y = soft_rows(rng, 9, 5)
    w = rng.uniform(0.1, 2.0, size=9) if weighted else None
    ce = CategoricalCrossEntropy(label_smoothing=eps)
    ce.forward(z, Y, w)
    grad, _ = ce.backward()
    numeric = numerical_gradient(lambda: ce.forward(z, Y, w), z)
    assert relative_error(grad, numeric) < 1e-7


@pytest.mark.parametrize("soft", [False, True])
def test_label_smoothing_is_training_on_the_smoothed_targets(rng, soft):
    """label_smoothing=eps on Y is the plain loss on (1 - eps) Y + eps / K, for one-hot
    and for probability rows alike (torch's rule)."""
    z = rng.normal(size=(8, 4))
    Y = soft_rows(rng, 8, 4) if soft else np.eye(4)[rng.integers(0, 4, size=8)]
    eps = 0.2
    smoothed = CategoricalCrossEntropy(label_smoothing=eps)
    plain = CategoricalCrossEntropy()
    loss = smoothed.forward(z, Y)
    grad, _ = smoothed.backward()
    by_hand = plain.forward(z, (1 - eps) * Y + eps / 4)
    grad_by_hand, _ = plain.backward()
    assert loss == pytest.approx(by_hand, rel=1e-13)
    np.testing.assert_allclose(grad, grad_by_hand, rtol=1e-12, atol=1e-16)
    assert loss != pytest.approx(plain.forward(z, Y), rel=1e-3)


def test_soft_targets_of_a_network_pass_check_gradients(rng):
    X = rng.normal(size=(10, 4))
    model = cr.MLP([4, 6, 3], activation="tanh", rng=0, loss=CategoricalCrossEntropy(0.1))
    result = check_gradients(model, X, soft_rows(rng, 10, 3), rng=0)
    assert result.worst < 1e-6, result.errors


# -- what is accepted and what is refused ----------------------------------------------------

def test_tolerance_follows_the_dtype_and_accepts_float32_probabilities(torch, rng):
    assert probability_tolerance(np.float32) == pytest.approx(np.sqrt(np.finfo(np.float32).eps))
    assert probability_tolerance(np.float64) == probability_tolerance(np.float32)
    assert probability_tolerance(np.float16) == pytest.approx(np.sqrt(np.finfo(np.float16).eps))
    # A teacher's float32 softmax over 1000 classes, as such and cast to float64 (what a
    # float64 model's fit does to it): its rows miss 1 by float32 rounding only.
    teacher = torch.softmax(torch.randn(64, 1000, dtype=torch.float32) * 4, dim=1).numpy()
    assert np.abs(teacher.astype(np.float64).sum(axis=1) - 1).max() > 1e-8
    check_probability_rows(teacher, "Y")
    check_probability_rows(teacher.astype(np.float64), "Y")
    model = cr.MLP([5, 1000], rng=0)
    model.loss_and_grads(rng.normal(size=(64, 5)), teacher)
    # Just inside and just outside the tolerance, in both dtypes.
    for dtype in (np.float32, np.float64):
        tol = probability_tolerance(dtype)
        inside = np.array([[0.5, 0.5 + 0.5 * tol], [0.0, 1.0]], dtype=dtype)
        check_probability_rows(inside, "Y")
        outside = np.array([[0.0, 1.0], [0.5, 0.5 + 2 * tol]], dtype=dtype)
        with pytest.raises(ValueError, match=r"row 1 is \[0\.5, 0\.50"):
            check_probability_rows(outside, "Y")


@pytest.mark.parametrize("row, got", [
    ([0.7, -0.1, 0.4], r"\[0\.7, -0\.1, 0\.4\] \(sum 1\.0\d*, smallest entry -0\.1\)"),
    ([0.5, 0.25, 0.0], r"\[0\.5, 0\.25, 0\.0\] \(sum 0\.75\)"),
    ([0.0, 0.0, 0.0], r"\[0\.0, 0\.0, 0\.0\] \(sum 0\.0\)"),
    ([1.0, 2.0, 0.0], r"\[1\.0, 2\.0, 0\.0\] \(sum 3\.0\)"),     # label-encoded, by mistake
    ([0.2, 1.3, -0.4], r"\[0\.2, 1\.3, -0\.4\] \(sum 1\.1\d*, smallest entry -0\.4\)"),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_that_are_no_distribution_are_refused_by_row(row, got, dtype):
    labels = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], row, [0.5, 0.5, 0.0]], dtype=dtype)
    z = np.zeros((4, 3), dtype=dtype)
    with pytest.raises(ValueError, match=r"labels must hold one-hot rows or rows of class "
                                         r"probabilities \(entries >= 0, each row summing to 1 "
                                         r"within 3\.5e-04\), or be 1-D integer class indices; "
                                         r"row 2 is " + got):
        CategoricalCrossEntropy().forward(z, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_targets_are_refused_by_row(bad):
    labels = np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0], [bad, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"labels must contain only finite values, got 1 NaN "
                                         r"or infinite entries; row 2 is \[-?(nan|inf), 0\.5"):
        CategoricalCrossEntropy().forward(np.zeros((3, 3)), labels)


def test_long_rows_are_cut_in_the_message():
    labels = np.full((2, 1000), 0.002)
    with pytest.raises(ValueError, match=r"row 0 is \[0\.002(, 0\.002){11}, \.\.\. \(1000 "
                                         r"entries\)\] \(sum 2\.0"):
        check_probability_rows(labels, "Y")


def test_fit_refuses_bad_targets_before_any_change(rng):
    X, Y = blobs(rng)
    Y = 0.7 * Y + 0.1
    Y[7] = [0.5, 0.5, 0.5]
    model = cr.MLP([4, 5, 3], rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"Y must hold one-hot rows or rows of class "
                                         r"probabilities .* row 7 is \[0\.5, 0\.5, 0\.5\]"):
        cr.fit(model, X, Y, optimizer="adam", epochs=2, progress=False)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


# -- training and evaluation with soft targets -------------------------------------------------

def test_fit_on_mixup_batches_trains_and_counts_accuracy_by_argmax(rng, torch):
    X, Y = blobs(rng)
    Xm, Ym = mixup(rng, X, Y)
    Ym[0] = [0.5, 0.5, 0.0]             # a tie: the first class counts, as torch's argmax
    target_class = torch.argmax(torch.from_numpy(Ym), dim=1).numpy()
    assert target_class[0] == 0
    np.testing.assert_array_equal(target_class, Ym.argmax(axis=1))
    model = cr.MLP([4, 16, 3], rng=0)
    # One full-batch epoch: its accuracy is that of the initial logits.
    start = model.forward(Xm)
    expected = np.mean(start.argmax(axis=1) == target_class)
    soft_accuracy = np.mean(Ym[np.arange(len(Ym)), start.argmax(axis=1)])
    assert expected != pytest.approx(soft_accuracy)   # the definitions differ here
    first = cr.fit(model, Xm, Ym, optimizer=cr.Adam(lr=1e-2), epochs=1, progress=False)
    assert first["accuracy"][0] == pytest.approx(expected)
    history = cr.fit(model, Xm, Ym, optimizer=cr.Adam(lr=1e-2), epochs=60, batch_size=16,
                     rng=0, progress=False, validation_data=(X, Y))
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    result = cr.evaluate(model, Xm, Ym)
    assert result["accuracy"] == pytest.approx(
        np.mean(model.forward(Xm).argmax(axis=1) == target_class))
    assert result["loss"] == pytest.approx(model.loss.forward(model.forward(Xm), Ym))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distillation_targets_of_either_dtype_train_either_model(rng, dtype):
    """A float32 teacher's probabilities train a float32 or float64 student."""
    X, Y = blobs(rng)
    logits = (4.0 * Y + rng.normal(size=Y.shape)).astype(np.float32)
    teacher = np.exp(logits - logits.max(axis=1, keepdims=True))
    teacher /= teacher.sum(axis=1, keepdims=True)
    model = cr.MLP([4, 8, 3], rng=0, dtype=dtype)
    history = cr.fit(model, X, teacher, optimizer="adam", epochs=30, batch_size=30, rng=0,
                     progress=False)
    assert history["loss"][-1] < history["loss"][0]


def test_sanity_check_passes_on_soft_targets(rng):
    """The overfit bar allows for the targets' entropy, which no model goes below."""
    X, Y = blobs(rng, n=40)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    soft = 0.6 * Y + 0.4 / 3       # each row's entropy: 0.85 nats
    report = cr.sanity_check(cr.MLP([4, 32, 3], rng=0), X, soft, rng=0)
    overfit = report["overfits small subset"]
    entropy = -np.sum(soft[0] * np.log(soft[0]))
    assert overfit.threshold == f"< {0.05 + entropy:.4g}"
    assert entropy < overfit.value < 0.05 + entropy
    assert report.passed, str(report)
    hard = cr.sanity_check(cr.MLP([4, 32, 3], rng=0), X, Y, rng=0)
    assert hard["overfits small subset"].threshold == "< 0.05"
    # Label smoothing makes soft targets of one-hot rows and class indices alike.
    for targets in (Y, Y.argmax(axis=1)):
        smoothed = cr.MLP([4, 32, 3], rng=0, loss=CategoricalCrossEntropy(0.4))
        report = cr.sanity_check(smoothed, X, targets, rng=0)
        assert report["overfits small subset"].threshold == f"< {0.05 + entropy:.4g}"
        assert report.passed, str(report)


def test_lbfgs_takes_soft_targets(rng):
    X, Y = blobs(rng)
    Xm, Ym = mixup(rng, X, Y)
    model = cr.MLP([4, 8, 3], rng=0)
    start = cr.evaluate(model, Xm, Ym)["loss"]
    result = minimize_lbfgs(model, Xm, Ym, max_iter=50)
    assert result.loss < 0.8 * start
    with pytest.raises(ValueError, match=r"row 3 is"):
        minimize_lbfgs(model, Xm, np.where(np.arange(len(Ym))[:, None] == 3, 2 * Ym, Ym))


def test_soft_targets_from_npy_files_train_as_arrays_do(rng, tmp_path):
    X, Y = blobs(rng)
    Xm, Ym = mixup(rng, X, Y)
    np.save(tmp_path / "X.npy", Xm)
    np.save(tmp_path / "Y.npy", Ym)
    histories = []
    for xs, ys in [(Xm, Ym), (cr.data.open_npy(tmp_path / "X.npy"),
                               cr.data.open_npy(tmp_path / "Y.npy"))]:
        model = cr.MLP([4, 8, 3], rng=0)
        histories.append(cr.fit(model, xs, ys, optimizer="adam", epochs=3, batch_size=20,
                                shuffle=False, progress=False))
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-12)
    bad = Ym.copy()
    bad[45] = [0.9, 0.9, 0.0]
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=r"Y must hold one-hot rows or rows of class "
                                         r"probabilities .* is \[0\.9, 0\.9, 0\.0\]"):
        cr.fit(cr.MLP([4, 8, 3], rng=0), cr.data.open_npy(tmp_path / "X.npy"),
               cr.data.open_npy(tmp_path / "bad.npy"), optimizer="adam", epochs=1,
               batch_size=20, shuffle=False, progress=False)

