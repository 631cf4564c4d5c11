"""The lean training step of issue 10 keeps the values: the column-by-column row maxima
of ``shift_by_max`` and the matrix-vector row sums of ``check_one_hot``."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule._validation import check_one_hot
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
def test_check_one_hot_rejects_rows_that_are_not_one_hot(row):
    labels = np.array([[0, 1, 0], row, [1, 0, 0]], dtype=float)
    with pytest.raises(ValueError, match=r"row 1 is"):
        check_one_hot(labels, "Y")


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
