"""Weight initialisers: the homework's xavier_init bit for bit, and the others' laws."""

import numpy as np
import pytest

from chainrule.init import (
    INITIALIZERS,
    get_initializer,
    he_normal,
    he_uniform,
    xavier_init,
    xavier_normal,
    xavier_uniform,
    zeros,
)


def test_xavier_init_is_the_homeworks_formula_on_the_global_rng():
    # The homework: a = sqrt(6 / sum(shape)); np.random.uniform(-a, a, size=shape).
    np.random.seed(123)
    got_w1 = xavier_init([64, 32])
    got_w2 = xavier_init([32, 10])
    np.random.seed(123)
    a1 = np.sqrt(6.0 / float(np.sum([64, 32])))
    exp_w1 = np.random.uniform(low=-a1, high=a1, size=[64, 32])
    a2 = np.sqrt(6.0 / float(np.sum([32, 10])))
    exp_w2 = np.random.uniform(low=-a2, high=a2, size=[32, 10])
    np.testing.assert_array_equal(got_w1, exp_w1)
    np.testing.assert_array_equal(got_w2, exp_w2)
    assert xavier_init is xavier_uniform


def test_int_seed_and_generator_are_reproducible():
    a = xavier_uniform((5, 7), rng=3)
    b = xavier_uniform((5, 7), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, xavier_uniform((5, 7), rng=4))


@pytest.mark.parametrize("name, std", [
    ("xavier_normal", np.sqrt(2.0 / (300 + 500))),
    ("he_normal", np.sqrt(2.0 / 300)),
    ("xavier_uniform", np.sqrt(6.0 / (300 + 500)) / np.sqrt(3.0)),   # U(-a, a): std a/sqrt 3
    ("he_uniform", np.sqrt(6.0 / 300) / np.sqrt(3.0)),
])
def test_standard_deviations(name, std):
    w = INITIALIZERS[name]((300, 500), rng=0)
    # 150 000 draws: the sample std is within 1% of the true one with overwhelming
    # probability (its relative standard error is about 1 / sqrt(2 * 150000) ~ 0.2%).
    assert w.shape == (300, 500)
    assert abs(w.std() / std - 1) < 0.01
    assert abs(w.mean()) < 5 * std / np.sqrt(w.size)


@pytest.mark.parametrize("fn, bound", [(xavier_uniform, np.sqrt(6.0 / 30)),
                                       (he_uniform, np.sqrt(6.0 / 10))])
def test_uniform_bounds(fn, bound):
    w = fn((10, 20), rng=1)
    assert np.all(np.abs(w) <= bound)
    assert np.abs(w).max() > 0.9 * bound


def test_same_range_as_torch(torch):
    # torch's xavier_uniform_ / kaiming_uniform_ on a (fan_out, fan_in) weight are an
    # independent statement of the bounds: on 150 000 draws the largest magnitudes
    # agree to well within 0.1%.
    t = torch.empty(500, 300, dtype=torch.float64)
    torch.manual_seed(0)
    torch.nn.init.xavier_uniform_(t)
    assert np.abs(xavier_uniform((300, 500), rng=0)).max() == pytest.approx(
        t.abs().max().item(), rel=1e-3)
    torch.nn.init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(he_uniform((300, 500), rng=0)).max() == pytest.approx(
        t.abs().max().item(), rel=1e-3)
    torch.nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert he_normal((300, 500), rng=0).std() == pytest.approx(t.std().item(), rel=1e-2)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_dtype_and_shape(name):
    w = get_initializer(name)((4, 6), rng=0, dtype=np.float32)
    assert w.dtype == np.float32 and w.shape == (4, 6)


def test_zeros_and_callable_passthrough():
    np.testing.assert_array_equal(zeros((2, 3)), np.zeros((2, 3)))
    assert get_initializer(he_normal) is he_normal
    assert get_initializer("he") is he_normal
    assert get_initializer("xavier") is xavier_uniform
    assert xavier_normal((3, 3), rng=0).shape == (3, 3)


def test_bad_names_and_shapes():
    with pytest.raises(ValueError, match=r"init must be one of .*got 'glorot'"):
        get_initializer("glorot")
    with pytest.raises(ValueError, match=r"shape must be \(fan_in, fan_out\), got \(3,\)"):
        xavier_uniform((3,))
    with pytest.raises(ValueError, match=r"shape\[1\] must be an integer >= 1, got 0"):
        he_normal((3, 0))
