"""chainrule.functional against scipy.special / scikit-learn, and the homework's proofs
(Problems 3 and 4) as property tests."""

import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import label_binarize

from chainrule.functional import accuracy, log_softmax, logsumexp, one_hot, softmax


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_against_scipy_on_any_axis(rng, axis):
    x = rng.normal(scale=5.0, size=(3, 4, 5))
    np.testing.assert_allclose(logsumexp(x, axis=axis), scipy.special.logsumexp(x, axis=axis),
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(logsumexp(x, axis=axis, keepdims=True),
                               scipy.special.logsumexp(x, axis=axis, keepdims=True),
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(softmax(x, axis=axis), scipy.special.softmax(x, axis=axis),
                               rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(log_softmax(x, axis=axis),
                               scipy.special.log_softmax(x, axis=axis), rtol=1e-13, atol=1e-14)


def test_default_axis_is_last(rng):
    x = rng.normal(size=(4, 6))
    np.testing.assert_allclose(softmax(x), scipy.special.softmax(x, axis=-1), rtol=1e-14)
    assert logsumexp(x).shape == (4,)


def test_extreme_magnitude_1e300_is_finite_and_exact():
    x = np.array([[1e300, 0.0, -1e300]])
    # Shifted by the maximum: s = [0, -1e300, -2e300]; exp(s) = [1, 0, 0]; the log of the
    # sum is log(1) = 0, so log_softmax = s exactly and logsumexp = max = 1e300.
    np.testing.assert_array_equal(log_softmax(x), [[0.0, -1e300, -2e300]])
    np.testing.assert_array_equal(logsumexp(x, axis=1), [1e300])
    np.testing.assert_array_equal(softmax(x), [[1.0, 0.0, 0.0]])
    # scipy, an independent implementation, agrees with the exact values.
    np.testing.assert_array_equal(scipy.special.log_softmax(x, axis=1), log_softmax(x))
    # Negative extremes too: every value is the maximum here.
    y = np.array([[-1e300, -1e300]])
    np.testing.assert_array_equal(softmax(y), [[0.5, 0.5]])
    np.testing.assert_allclose(logsumexp(y, axis=1), [-1e300 + math.log(2)], rtol=0)


def test_magnitude_1e4_matches_closed_form():
    x = np.array([[1e4, 1e4 - 1.0, -1e4]])
    # logsumexp = 1e4 + log(1 + e^-1 + e^-2e4), and e^-2e4 underflows to exactly 0 in
    # float64, so it is 1e4 + log1p(e^-1).
    expected_lse = 1e4 + math.log1p(math.exp(-1.0))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert logsumexp(x, axis=1)[0] == pytest.approx(expected_lse, rel=1e-15)
        ls = log_softmax(x)
    np.testing.assert_allclose(ls[0, :2], [-math.log1p(math.exp(-1.0)),
                                           -1.0 - math.log1p(math.exp(-1.0))], rtol=1e-14)
    assert ls[0, 2] == pytest.approx(-2e4 - math.log1p(math.exp(-1.0)), rel=1e-15)
    assert np.all(np.isfinite(ls))
    # A naive exp would overflow here.
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.log(np.sum(np.exp(x))))


def test_float32_stays_float32(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    assert softmax(x).dtype == np.float32
    assert log_softmax(x).dtype == np.float32
    assert logsumexp(x).dtype == np.float32


_rows = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
               elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None)
@given(x=_rows, a=st.floats(-1e3, 1e3, allow_nan=False))
def test_problem4_softmax_is_shift_invariant(x, a):
    # Problem 4: e^(x_i - a) / sum e^(x_j - a) = e^(x_i) / sum e^(x_j) for any a.
    np.testing.assert_allclose(softmax(x + a, axis=1), softmax(x, axis=1), rtol=1e-9,
                               atol=1e-12)
    # And with the naive formula where it cannot overflow (|x| <= 50).
    e = np.exp(x)
    np.testing.assert_allclose(softmax(x, axis=1), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-12, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(x=_rows, a=st.floats(-1e3, 1e3, allow_nan=False))
def test_problem3_logsumexp_identity(x, a):
    # Problem 3: a + log(sum e^(x_i - a)) = log(sum e^(x_i)) for any a. Restated
    # both ways: shifting the input shifts the result, and the naive formula agrees.
    naive = np.log(np.sum(np.exp(x), axis=1))
    np.testing.assert_allclose(logsumexp(x, axis=1), naive, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logsumexp(x + a, axis=1), logsumexp(x, axis=1) + a,
                               rtol=1e-12, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(x=_rows, a=st.floats(-600, 600, allow_nan=False))
def test_problem3_literally(x, a):
    # The left-hand side of Problem 3 evaluated as written (|x - a| <= 650, so exp
    # neither overflows nor underflows to zero) equals chainrule's logsumexp.
    lhs = a + np.log(np.sum(np.exp(x - a), axis=1))
    np.testing.assert_allclose(lhs, logsumexp(x, axis=1), rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 5)),
                elements=st.floats(-1e305, 1e305, allow_nan=False)))
def test_any_magnitude_stays_finite_and_normalised(x):
    p = softmax(x, axis=1)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    ls = log_softmax(x, axis=1)
    assert not np.any(np.isnan(ls))
    assert np.all(ls <= 0)
    # The largest entry of every row gets the largest log-probability (ties allowed:
    # entries closer than the rounding of the shift become equal), exactly 0 when it
    # is the only maximum far ahead of the rest.
    rows = np.arange(x.shape[0])
    np.testing.assert_array_equal(ls[rows, x.argmax(axis=1)], ls.max(axis=1))


@pytest.mark.parametrize("k", [3, 5, 10])
def test_one_hot_matches_label_binarize(rng, k):
    y = rng.integers(0, k, size=50)
    expected = label_binarize(y, classes=np.arange(k)).astype(np.float64)
    np.testing.assert_array_equal(one_hot(y, k), expected)
    if y.max() == k - 1:
        np.testing.assert_array_equal(one_hot(y), expected)


def test_one_hot_two_classes_has_two_columns():
    # label_binarize gives one column for two classes; one_hot keeps one per class.
    np.testing.assert_array_equal(one_hot([0, 1, 1], 2), [[1, 0], [0, 1], [0, 1]])
    assert one_hot([0, 1], 2, dtype=np.float32).dtype == np.float32


def test_accuracy_by_hand_and_against_sklearn(rng):
    y_true = np.array([0, 1, 2, 1])
    probs = np.array([[0.8, 0.1, 0.1],    # -> 0, right
                      [0.2, 0.7, 0.1],    # -> 1, right
                      [0.5, 0.2, 0.3],    # -> 0, wrong (true 2)
                      [0.1, 0.6, 0.3]])   # -> 1, right
    assert accuracy(y_true, probs) == 0.75
    assert accuracy(one_hot(y_true, 3), probs) == 0.75
    assert accuracy(y_true, probs.argmax(axis=1)) == 0.75
    t = rng.integers(0, 7, 200)
    p = rng.integers(0, 7, 200)
    assert accuracy(t, p) == pytest.approx(accuracy_score(t, p), abs=0)
    assert isinstance(accuracy(t, p), float)


def test_accuracy_reads_a_single_column_as_a_binary_models_probability():
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([[0.2], [0.9], [0.4], [0.1], [0.51]])          # P(class 1)
    expected = accuracy_score(y, (p1[:, 0] > 0.5).astype(int))  # 0.8
    assert accuracy(y, p1) == expected == 0.8
    assert accuracy(y[:, None], p1) == expected                # 0/1 labels as one column
    assert accuracy(y, np.hstack([1 - p1, p1])) == expected    # the same as two columns
