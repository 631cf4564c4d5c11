"""The lean training step of issue 10 keeps the values: the column-by-column row maxima
of ``shift_by_max`` and the matrix-vector row sums of the one-hot test in
``check_probability_rows``."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule._validation import check_probability_rows
from chainrule.functional import shift_by_max


@pytest.mark.parametrize("k", [1, 2, 10, 32, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shift_by_max_gives_the_row_maxima_exactly(rng, k, dtype):
    top = 30 if dtype == np.float32 else 300
    x = (rng.normal(size=(50, k)) * 10.0 ** rng.integers(-3, top, size=(50, 1))).astype(dtype)
    x[3, -1] = np.inf if dtype == np.float64 else x[3, -1]
    x[7, 0] = np.nan
    with np.errstate(invalid="ignore"):   # inf - inf in the row holding inf
        s, m = shift_by_max(x, axis=1)
        expected = x.max(axis=1, keepdims=True)      # NumPy's reduction, NaN propagating
        np.testing.assert_array_equal(s, x - expected)
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == dtype and m.shape == (50, 1)


def test_shift_by_max_other_axes_unchanged(rng):
    x = rng.normal(size=(4, 5, 3))
    for axis in (0, 1, 2, -1):
        s, m = shift_by_max(x, axis=axis)
        np.testing.assert_array_equal(m, x.max(axis=axis, keepdims=True))


@pytest.mark.parametrize("row", [[1, 1, 0], [0, 0, 0], [1, 0, 0.5], [2, -1, 0]])
def test_check_targets_rejects_rows_that_are_no_distribution(row):
    labels = np.array([[0, 1, 0], row, [1, 0, 0]], dtype=float)
    with pytest.raises(ValueError, match=r"row 1 is"):
        check_probability_rows(labels, "Y")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_check_targets_accepts_one_hot_rows_with_negative_zeros(rng, dtype, layout):
    labels = np.eye(4, dtype=dtype)[rng.integers(0, 4, size=30)]
    labels = {"F": np.asfortranarray(labels), "strided": np.repeat(labels, 2, axis=0)[::2]}.get(
        layout, labels)
    check_probability_rows(labels, "Y")
    labels[labels == 0] = -0.0           # zero, though its bits are not
    check_probability_rows(labels, "Y")
    labels[5] *= 2.0
    with pytest.raises(ValueError, match=r"row 5 is \[(-?0\.0, )*2\.0"):
        check_probability_rows(labels, "Y")


@pytest.mark.parametrize("layout", ["2-D", "3-D", "strided", "float32", "float16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_any_non_finite_entry(rng, bad, layout):
    from chainrule._validation import all_finite

    x = rng.normal(size=(30, 7, 2) if layout == "3-D" else (30, 14))
    x = {"strided": x[:, ::2], "float32": x.astype(np.float32),
         "float16": x.astype(np.float16)}.get(layout, x)
    assert all_finite(x)
    x[17, 3] = bad
    assert not all_finite(x)
    # large finite values whose sum overflows are still finite
    huge = np.full((4, 4), np.finfo(np.float32).max, dtype=np.float32)
    assert all_finite(huge)
    huge[2, 2] = bad
    assert not all_finite(huge)


def _torch_ce(logits, labels):
    """Mean cross-entropy and its gradient by torch autograd in float64."""
    import torch

    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(labels))
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("spread, per_row", [(0.0, False), (30.0, False), (12.0, False),
                                             (45.0, True), (1e3, True), (1e300, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_batch_shift_matches_torch(rng, monkeypatch, spread, per_row, dtype):
    """The cross-entropy shifts by the batch's largest logit while every row's maximum
    is close enough to it, else by each row's own maximum; both agree with torch."""
    from chainrule import losses

    if dtype == np.float32 and spread > 12:
        spread, per_row = min(spread, 3e38), True   # float32's bound is ~18 for 10 classes
    calls = []
    monkeypatch.setattr(losses, "shift_by_max",
                        lambda x, axis: calls.append(axis) or shift_by_max(x, axis))
    logits = rng.normal(size=(40, 10))
    logits[::2] += spread * rng.uniform(0.9, 1.0, size=(20, 1))   # half the rows far up
    logits = logits.astype(dtype)
    labels = rng.integers(0, 10, size=40)
    loss_fn = losses.CategoricalCrossEntropy()
    loss = loss_fn.forward(logits, labels)
    grad, _ = loss_fn.backward(1.0)
    assert bool(calls) == per_row
    want_loss, want_grad = _torch_ce(logits.astype(np.float64), labels)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert loss == pytest.approx(want_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol / 40)
    # The one-hot form takes the same path to the same values.
    assert loss_fn.forward(logits, np.eye(10, dtype=dtype)[labels]) == pytest.approx(loss)
