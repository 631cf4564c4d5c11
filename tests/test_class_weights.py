"""CategoricalCrossEntropy(weight=...): PyTorch's CrossEntropyLoss(weight=...) to 1e-12
(class indices and one-hot rows, with and without label smoothing, float32 too), finite
differences, two restatements (uniform weights change nothing; an integer weight is
that many copies of the row), row weights on top, training, model files, refusals."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import numerical_gradient
from chainrule.losses import CategoricalCrossEntropy
from conftest import rel_diff

CASES = [(0.0, "indices"), (0.0, "one-hot"), (0.3, "indices"), (0.3, "one-hot")]


def _problem(seed=0, n=9, k=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * 3, rng.integers(0, k, n), rng.uniform(0.2, 3.0, k)


@pytest.mark.parametrize("eps, form", CASES)
def test_loss_and_gradient_match_torch(eps, form, torch):
    for seed in range(4):
        z, y, w = _problem(seed)
        loss = CategoricalCrossEntropy(label_smoothing=eps, weight=w)
        value = loss.forward(z, y if form == "indices" else np.eye(4)[y])
        grad, _ = loss.backward()
        zt = torch.tensor(z, requires_grad=True)
        ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(w),
                                                label_smoothing=eps)
        ref.backward()
        assert abs(value - ref.item()) <= 1e-12 * abs(ref.item())
        assert rel_diff(grad, zt.grad.numpy()) < 1e-12


def test_row_weights_multiply_each_rows_terms_and_its_share(torch):
    """sample_weight (which torch has not): torch's per-row terms, each times s_n, over
    sum_n s_n w[y_n]."""
    z, y, w = _problem(3)
    s = np.random.default_rng(1).uniform(0, 2, len(y))
    loss = CategoricalCrossEntropy(label_smoothing=0.1, weight=w)
    value = loss.forward(z, y, s)
    grad, _ = loss.backward(2.0)
    zt = torch.tensor(z, requires_grad=True)
    per_row = torch.nn.functional.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(w),
                                                label_smoothing=0.1, reduction="none")
    ref = (per_row * torch.tensor(s)).sum() / float(np.sum(w[y] * s))
    (2 * ref).backward()
    assert abs(value - ref.item()) < 1e-12
    assert rel_diff(grad, zt.grad.numpy()) < 1e-12


@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_finite_differences(eps):
    z, y, w = _problem(5)
    s = np.random.default_rng(2).uniform(0.5, 1.5, len(y))
    loss = CategoricalCrossEntropy(label_smoothing=eps, weight=w)
    loss.forward(z, y, s)
    grad, _ = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(z, y, s), z)
    assert np.max(np.abs(grad - numeric)) < 1e-8


def test_explain_shows_the_gradient_of_the_loss_in_use():
    plain = CategoricalCrossEntropy(weight=[1.0, 2.0]).equations[1][0]
    smoothed = CategoricalCrossEntropy(weight=[1.0, 2.0], label_smoothing=0.1).equations
    assert "eps" not in plain and "smoothed by 0.1" in smoothed[0]
    assert "eps / K (softmax({x}) sum(w) - w)" in smoothed[1][0]


def test_uniform_weights_change_nothing_and_an_integer_weight_is_copies_of_the_row():
    z, y, _ = _problem(7)
    plain = CategoricalCrossEntropy()
    uniform = CategoricalCrossEntropy(weight=np.full(4, 2.5))
    assert uniform.forward(z, y) == pytest.approx(plain.forward(z, y), rel=1e-14)
    np.testing.assert_allclose(uniform.backward()[0], plain.backward()[0], rtol=1e-13)
    # class 1 weighs 3: the same loss as every row of class 1 three times, unweighted
    w = np.array([1.0, 3.0, 1.0, 1.0])
    copies = np.concatenate([np.arange(len(y))] + [np.flatnonzero(y == 1)] * 2)
    weighted = CategoricalCrossEntropy(weight=w).forward(z, y)
    assert weighted == pytest.approx(plain.forward(z[copies], y[copies]), rel=1e-14)


def test_a_weighted_network_trains_saves_and_loads(tmp_path):
    """Imbalanced classes: with the rare class weighted up, fit finds more of it; the
    weights go into the model file with the loss."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 1.3).astype(int)   # ~10% class 1
    recalls = []
    for weight in (None, [1.0, 9.0]):
        model = cr.MLP([2, 8, 2], rng=0, loss=CategoricalCrossEntropy(weight=weight))
        cr.fit(model, X, y, optimizer=cr.Adam(lr=0.05), epochs=40, batch_size=50, rng=0,
               progress=False)
        recalls.append(np.mean(model.predict_classes(X[y == 1]) == 1))
    assert 0.05 < y.mean() < 0.2 and recalls[1] > recalls[0] + 0.1
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    assert back.loss.weight.tolist() == [1.0, 9.0]
    assert repr(back.loss) == "CategoricalCrossEntropy(weight=[1.0, 9.0])"
    assert cr.evaluate(back, X, y)["loss"] == pytest.approx(cr.evaluate(model, X, y)["loss"])


@pytest.mark.parametrize("weight, match", [
    ([1.0, -1.0], "weight must hold one finite weight >= 0 per class"),
    ([0.0, 0.0], "not all 0"),
    ([1.0, np.nan], "weight must contain only finite values"),
    ([[1.0, 2.0]], "weight must be a 1-D array"),
])
def test_bad_weights_are_named(weight, match):
    with pytest.raises(ValueError, match=match):
        CategoricalCrossEntropy(weight=weight)


def test_targets_a_weighted_loss_cannot_take_are_refused():
    z, y, w = _problem(1)
    loss = CategoricalCrossEntropy(weight=w[:3])
    with pytest.raises(ValueError, match=r"one entry per class: 4 for logits of 4 columns, "
                                         r"got \(3,\)"):
        loss.forward(z, y)
    soft = np.full((len(y), 4), 0.25)
    with pytest.raises(ValueError, match="class indices or one-hot rows for a cross-entropy "
                                         "with class weights, got probability rows"):
        CategoricalCrossEntropy(weight=w).forward(z, soft)
    model = cr.MLP([4, 3], rng=0, loss=CategoricalCrossEntropy(weight=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="probability rows"):
        cr.fit(model, z[:, :4], np.full((len(y), 3), 1 / 3), optimizer=cr.SGD(), epochs=1,
               progress=False)


# -- BinaryCrossEntropy(pos_weight=...) -------------------------------------------------
def _binary_problem(seed=0, n=8, k=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 4
    z[0, 0], z[1, 1 % k] = 60.0, -60.0   # far into both tails
    y = (rng.uniform(size=(n, k)) > 0.6).astype(float)
    y[2, 0] = 0.3                         # a soft label, as torch takes them
    return z, y


@pytest.mark.parametrize("pos_weight", [2.5, [0.5, 3.0, 1.0], [0.0, 1.0, 7.0]])
def test_pos_weight_matches_torch(pos_weight, torch):
    """torch's BCEWithLogitsLoss(pos_weight=p, reduction='sum') / N: chainrule's binary
    cross-entropy sums over the outputs and averages over the rows."""
    from chainrule.losses import BinaryCrossEntropy

    z, y = _binary_problem()
    s = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    for rows in (None, s):
        loss = BinaryCrossEntropy(pos_weight=pos_weight)
        value = loss.forward(z, y, rows)
        grad, _ = loss.backward()
        zt = torch.tensor(z, requires_grad=True)
        per_row = torch.nn.functional.binary_cross_entropy_with_logits(
            zt, torch.tensor(y), pos_weight=torch.tensor(np.atleast_1d(pos_weight)),
            reduction="none").sum(dim=1)
        ref = per_row.mean() if rows is None else (per_row * torch.tensor(rows)).sum() / s.sum()
        ref.backward()
        assert abs(value - ref.item()) <= 1e-13 * ref.item()
        assert rel_diff(grad, zt.grad.numpy()) < 1e-12


def test_pos_weight_finite_differences_and_restatements():
    from chainrule.losses import BinaryCrossEntropy

    z, y = _binary_problem(4)
    z[:2] = 0.7   # (finite differences away from the tails)
    loss = BinaryCrossEntropy(pos_weight=[2.0, 0.5, 4.0])
    loss.forward(z, y)
    grad, _ = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(z, y), z)
    assert np.max(np.abs(grad - numeric)) < 1e-8
    plain, ones = BinaryCrossEntropy(), BinaryCrossEntropy(pos_weight=1.0)
    assert ones.forward(z, y) == pytest.approx(plain.forward(z, y), rel=1e-15)
    np.testing.assert_allclose(ones.backward()[0], plain.backward()[0], rtol=1e-15)
    # a pos_weight of 3 on 0/1 labels is every positive entry's term three times
    y01 = (y > 0.5).astype(float)
    by_hand = plain.forward(z, y01) * len(z) + 2 * float(np.sum(
        y01 * (np.logaddexp(0, -z))))   # -log(sigmoid(z)) = log(1 + exp(-z))
    assert BinaryCrossEntropy(pos_weight=3.0).forward(z, y01) * len(z) == \
        pytest.approx(by_hand, rel=1e-13)


def test_pos_weight_in_model_files_and_its_refusals(tmp_path):
    from chainrule.losses import BinaryCrossEntropy

    model = cr.MLP([3, 4, 2], rng=0, loss=BinaryCrossEntropy(pos_weight=[1.0, 5.0]))
    X = np.random.default_rng(0).normal(size=(20, 3))
    Y = (X[:, :2] > 0.8).astype(float)
    cr.fit(model, X, Y, optimizer=cr.Adam(lr=0.01), epochs=3, progress=False)
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    assert repr(back.loss) == "BinaryCrossEntropy(pos_weight=[1.0, 5.0])"
    assert cr.evaluate(back, X, Y)["loss"] == cr.evaluate(model, X, Y)["loss"]
    with pytest.raises(ValueError, match="pos_weight must be a number >= 0 or one per output"):
        BinaryCrossEntropy(pos_weight=[-1.0])
    with pytest.raises(ValueError, match=r"one number or one per output \(2\), got 3"):
        BinaryCrossEntropy(pos_weight=[1.0, 2.0, 3.0]).forward(np.zeros((4, 2)),
                                                              np.zeros((4, 2)))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_a_batch_whose_rows_all_weigh_zero_gives_zero_loss_and_gradient(eps):
    # Rows all of a class of weight 0 (an "ignore" class): with label smoothing the
    # smoothing terms were divided by 1 instead, a loss growing with the batch (5.3 on
    # 64 rows) and a large update from rows meant to count for nothing.
    z = np.random.default_rng(0).standard_normal((64, 3))
    loss_fn = CategoricalCrossEntropy(label_smoothing=eps, weight=[0.0, 1.0, 1.0])
    assert loss_fn.forward(z, np.zeros(64, int)) == 0.0
    assert not loss_fn.backward()[0].any()
    w = np.ones(64)
    w[:32] = 0.0   # rows of weight 0 by their sample weights, the others of class 0
    y = np.where(np.arange(64) < 32, 1, 0)
    assert loss_fn.forward(z, y, w) == 0.0 and not loss_fn.backward()[0].any()
