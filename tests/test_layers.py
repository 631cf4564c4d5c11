"""Every layer: the contract kit, finite differences in float64 and torch autograd."""

import contextlib
import warnings

import numpy as np
import pytest
import scipy.special

from chainrule._validation import ZEROS_LIMIT, zeros_for
from chainrule.gradcheck import check_layer_gradients
from chainrule.layers import Affine, Dropout, Dropout2d, LeakyReLU, ReLU, Sigmoid, Tanh
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch, torch_layer

ELEMENTWISE = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "leaky_relu_0.3": lambda: LeakyReLU(0.3),
    "leaky_relu_-0.5": lambda: LeakyReLU(-0.5),   # any finite slope, as torch's
    "leaky_relu_1.5": lambda: LeakyReLU(1.5),
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "dropout_0.4": lambda: Dropout(0.4, rng=7),
    "dropout_eval": lambda: _eval(Dropout(0.4, rng=7)),
    # Unseeded: each layer the kit builds draws from NumPy's global generator, or from
    # a generator of its own; the kit starts every one from the same state.
    "dropout_global_generator": Dropout,
    "dropout_unseeded_generator": lambda: Dropout(0.5, rng=np.random.default_rng()),
}


def _eval(layer):
    layer.training = False
    return layer


SHAPES = [(1, 1), (3, 4), (7, 2), (2, 3, 5)]


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_builtin_layers_pass_the_contract_kit(name):
    report = check_layer(ELEMENTWISE[name], (6, 5))
    assert report.worst_gradient_error < 1e-6
    assert "finite differences" in report.checks


@pytest.mark.parametrize("n, d, h", [(1, 1, 1), (4, 3, 5), (9, 7, 2)])
def test_affine_passes_the_contract_kit(n, d, h):
    report = check_layer(Affine, (n, d), [(d, h), (h,)], output_shape=(n, h))
    # Named by Affine.param_names, in both modes.
    assert set(report.gradient_errors) == {"inputs", "W", "b", "inputs (eval)", "W (eval)",
                                           "b (eval)"}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_finite_differences_and_torch(name, shape, rng, torch):
    layer = ELEMENTWISE[name]()
    x = rng.normal(scale=2.0, size=shape)
    x[np.abs(x) < 1e-3] = 0.5    # stay off ReLU's kink, where differences are undefined
    result = check_layer_gradients(layer, x, rng=rng)
    assert result.worst < 1e-6, str(result)

    # torch autograd on the same function (Dropout: with the mask this layer drew).
    out = layer.forward(x)
    d_out = rng.normal(size=out.shape)
    d_x = layer.backward(d_out)
    xt = to_torch(x, requires_grad=True)
    yt = torch_layer(layer, xt)
    yt.backward(to_torch(d_out))
    assert rel_diff(out, yt.detach().numpy()) < 1e-14
    assert rel_diff(d_x, xt.grad.numpy()) < 1e-12


@pytest.mark.parametrize("n, d, h", [(1, 1, 1), (5, 3, 4), (8, 6, 2)])
def test_affine_finite_differences_and_torch(n, d, h, rng, torch):
    x, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, h)), rng.normal(size=h)
    result = check_layer_gradients(Affine(), x, W, b, rng=rng)
    assert result.worst < 1e-6, str(result)

    layer = Affine()
    out = layer.forward(x, W, b)
    d_out = rng.normal(size=out.shape)
    d_x, d_W, d_b = layer.backward(d_out)
    xt, Wt, bt = (to_torch(a, requires_grad=True) for a in (x, W, b))
    yt = torch_layer(layer, xt, Wt, bt)
    yt.backward(to_torch(d_out))
    assert rel_diff(out, yt.detach().numpy()) < 1e-13
    assert rel_diff(d_x, xt.grad.numpy()) < 1e-12
    assert rel_diff(d_W, Wt.grad.numpy()) < 1e-12
    assert rel_diff(d_b, bt.grad.numpy()) < 1e-12


def test_affine_without_bias_contract_finite_differences_and_torch(rng, torch):
    """Affine(bias=False), nn.Linear(bias=False): out = X W, gradients (dX, dW)."""
    report = check_layer(lambda: Affine(bias=False), (5, 3), [(3, 4)], output_shape=(5, 4))
    assert set(report.gradient_errors) == {"inputs", "W", "inputs (eval)", "W (eval)"}
    x, W = rng.normal(size=(6, 3)), rng.normal(size=(3, 4))
    assert check_layer_gradients(Affine(bias=False), x, W, rng=rng).worst < 1e-6
    layer = Affine(3, 4, bias=False)
    assert [p.shape for p in layer.init_params(rng, np.float64)] == [(3, 4)]
    out = layer.forward(x, W)
    d_out = rng.normal(size=out.shape)
    grads = layer.backward(d_out)
    assert len(grads) == 2
    xt, Wt = to_torch(x, requires_grad=True), to_torch(W.T.copy(), requires_grad=True)
    yt = torch.nn.functional.linear(xt, Wt)
    yt.backward(to_torch(d_out))
    assert rel_diff(out, yt.detach().numpy()) < 1e-13
    assert rel_diff(grads[0], xt.grad.numpy()) < 1e-12
    assert rel_diff(grads[1], Wt.grad.numpy().T) < 1e-12
    with pytest.raises(TypeError, match="takes no bias after its weight, got one"):
        layer.forward(x, W, np.zeros(4))
    with pytest.raises(TypeError, match="takes a bias after its weight, got none"):
        Affine().forward(x, W)
    with pytest.raises(TypeError, match="bias must be True or False"):
        Affine(3, 4, bias="no")


def test_affine_formulas_restated(rng):
    # The homework's equations: out = X W + b; dX = d_out W^T; dW = X^T d_out;
    # db = d_out summed over the batch.
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    layer = Affine()
    out = layer.forward(x, W, b)
    np.testing.assert_allclose(out, np.einsum("nd,dh->nh", x, W) + b, rtol=1e-14)
    d_out = rng.normal(size=(4, 2))
    d_x, d_W, d_b = layer.backward(d_out)
    np.testing.assert_allclose(d_x, np.einsum("nh,dh->nd", d_out, W), rtol=1e-13)
    np.testing.assert_allclose(d_W, np.einsum("nd,nh->dh", x, d_out), rtol=1e-13)
    np.testing.assert_allclose(d_b, d_out.sum(axis=0), rtol=1e-14)


def test_affine_without_input_gradient(rng):
    layer = Affine()
    layer.compute_input_grad = False
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    layer.forward(x, W, b)
    d_x, d_W, d_b = layer.backward(np.ones((4, 2)))
    assert d_x is None
    np.testing.assert_allclose(d_W, x.T @ np.ones((4, 2)))


def test_relu_gradient_is_zero_at_zero():
    # The homework's mask (inputs > 0): exactly 0 at 0, like torch's relu.
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 3, ZEROS_LIMIT // 9 + 1])   # the last above the limit
def test_relu_is_max_zero_everywhere_at_every_size(dtype, rows):
    # The forward compares with a cached array of zeros up to ZEROS_LIMIT entries and
    # with the scalar 0 beyond: the same values either way, -0, infinities and NaN too.
    x = np.tile(np.array([-np.inf, -3.5, -1e-300, -0.0, 0.0, 1e-300, 2.25, np.inf, np.nan],
                         dtype), (rows, 1))
    layer = ReLU()
    layer.validate = False
    out = layer.forward(x)
    assert out.dtype == dtype and out.flags.writeable
    expected = np.where(np.isnan(x), x, np.where(x > 0, x, 0))
    np.testing.assert_array_equal(out, expected)
    out[...] = 7   # the result is the caller's: the cached zeros are not touched
    np.testing.assert_array_equal(layer.forward(x[:1]), expected[:1])
    np.testing.assert_array_equal(layer.forward(x.T), expected.T)   # another layout


def test_zeros_for_are_read_only_views_of_the_right_shape():
    a = zeros_for(np.ones((3, 4), np.float32))
    assert a.shape == (3, 4) and a.dtype == np.float32 and not a.flags.writeable
    assert not a.any()
    b = zeros_for(np.ones((2, 5, 7), np.float32))   # a larger request grows the buffer
    assert b.shape == (2, 5, 7) and not b.any() and not b.flags.writeable
    with pytest.raises(ValueError):
        b[0, 0, 0] = 1
    # Another layout, or more than ZEROS_LIMIT entries: the scalar 0 of the dtype.
    for x in (np.ones((4, 3)).T, np.ones(ZEROS_LIMIT + 1)):
        zero = zeros_for(x)
        assert np.ndim(zero) == 0 and zero == 0 and zero.dtype == np.float64


@contextlib.contextmanager
def _no_float_trouble():
    """Raise on overflow, invalid operations, division by zero and on any warning.

    Underflow is allowed: exp(-1e4) rounding to exactly 0 is the correctly rounded
    result, not an error.
    """
    with np.errstate(over="raise", invalid="raise", divide="raise"), \
            warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_sigmoid_is_overflow_free_at_extremes(torch):
    x = np.array([[-1e4, -745.0, -700.0, -30.0, 0.0, 30.0, 700.0, 1e4]])
    layer = Sigmoid()
    with _no_float_trouble():
        out = layer.forward(x)
        d_x = layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(d_x))
    assert out[0, 0] == 0.0 and out[0, -1] == 1.0
    # scipy's expit is an independent implementation; relative agreement in the tails
    # (down to subnormals: at -745 the true value e^-745 ~ 4.9e-324 is the smallest
    # subnormal, which chainrule keeps and scipy rounds to 0).
    np.testing.assert_allclose(out, scipy.special.expit(x), rtol=1e-15, atol=1e-323)
    xt = to_torch(x, requires_grad=True)
    yt = xt.sigmoid()
    yt.backward(to_torch(np.ones_like(x)))
    np.testing.assert_allclose(d_x, xt.grad.numpy(), rtol=1e-14, atol=1e-300)


def test_sigmoid_float32_extremes_stay_float32():
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    with _no_float_trouble():
        out = Sigmoid().forward(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, scipy.special.expit(x.astype(np.float64)), rtol=1e-6,
                               atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_sigmoid_is_each_halfs_formula_bit_for_bit(dtype, rng):
    # sigmoid picks 1 / (1 + e) for x >= 0 and e / (1 + e) below (e = exp(-|x|)) by a
    # blend of bits, not np.where: the same bits as the formula, -0, infinities, NaN,
    # the largest values, a transposed input, a scalar and integers included.
    from chainrule.functional import sigmoid

    x = (rng.standard_normal((40, 23))
         * rng.choice([1e-30, 1e-3, 1.0, 10.0, 100.0, 1e4], (40, 23))).astype(dtype)
    x[0, :7] = [-0.0, 0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).max,
                -np.finfo(dtype).max]

    def formula(v):
        v = np.asarray(v)
        e = np.exp(-np.abs(v))
        return np.where(v >= 0, 1 / (1 + e), e / (1 + e))

    with np.errstate(over="ignore"):
        for v in (x, x.T, x[3, 4], np.arange(-3, 4)):
            out, expected = sigmoid(v), formula(v)
            assert out.dtype == expected.dtype
            np.testing.assert_array_equal(out, expected)


def test_tanh_at_extremes():
    with _no_float_trouble():
        layer = Tanh()
        out = layer.forward(np.array([[-1e4, 1e4]]))
        np.testing.assert_array_equal(out, [[-1.0, 1.0]])
        np.testing.assert_array_equal(layer.backward(np.ones((1, 2))), [[0.0, 0.0]])


def test_leaky_relu_slope_restated():
    layer = LeakyReLU(0.1)
    out = layer.forward(np.array([[-2.0, 3.0]]))
    np.testing.assert_allclose(out, [[-0.2, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.array([[5.0, 5.0]])), [[0.5, 5.0]], rtol=1e-15)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 1.0, -0.5, 1.5, -2.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leaky_relu_is_the_piecewise_definition_everywhere(slope, dtype):
    # x above 0, slope * x elsewhere, even at -0, infinities and NaN (reachable inside a
    # network, whose layers do not re-check their inputs), in the input's dtype.
    x = np.array([[-np.inf, -3.5, -1e-300, -0.0, 0.0, 1e-300, 2.25, np.inf, np.nan]], dtype)
    layer = LeakyReLU(slope)
    layer.validate = False
    with np.errstate(invalid="ignore"):   # slope 0: -inf * 0 is nan in both
        out = layer.forward(x)
        expected = np.where(x > 0, x, x * dtype(slope))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    d = np.array([[1.5, -2.0, 4.0, 1.0, -1.0, 3.0, 0.5, -7.0, 2.0]], dtype)
    d_x = layer.backward(d)
    assert d_x.dtype == dtype
    np.testing.assert_array_equal(d_x, np.where(x > 0, d, d * dtype(slope)))


def test_dropout_training_mask_and_scaling():
    p = 0.3
    layer = Dropout(p, rng=0)
    x = np.full((200, 500), 2.0)
    out = layer.forward(x)
    # Inverted dropout: every entry is either dropped (0) or kept and scaled by 1/(1-p).
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2.0 / (1 - p), rtol=1e-15)
    # 100 000 Bernoulli(p) drops: the dropped fraction is within 6 standard errors
    # (6 * sqrt(p(1-p)/n) ~ 0.0087) of p.
    assert abs((~kept).mean() - p) < 6 * np.sqrt(p * (1 - p) / x.size)
    # The expected output equals the input (that is the point of the 1/(1-p) scaling).
    assert abs(out.mean() / 2.0 - 1) < 0.02
    d = np.full_like(x, 3.0)
    np.testing.assert_allclose(layer.backward(d), np.where(kept, 3.0 / (1 - p), 0.0),
                               rtol=1e-15)


def test_dropout_is_identity_outside_training_and_at_p0(rng):
    x = rng.normal(size=(5, 4))
    layer = Dropout(0.5, rng=0)
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x * 2), x * 2)
    layer0 = Dropout(0.0, rng=0)
    np.testing.assert_array_equal(layer0.forward(x), x)


def test_dropout_of_p1_is_torchs_inputs_times_zero(torch, rng):
    x = rng.normal(size=(5, 4, 3, 2))
    for ours, theirs in ((Dropout(1.0, rng=0), torch.nn.Dropout(1.0)),
                         (Dropout2d(1.0, rng=0), torch.nn.Dropout2d(1.0))):
        xt = torch.tensor(x, requires_grad=True)
        expected = theirs(xt)
        expected.backward(torch.ones_like(xt))
        out = ours.forward(x)
        np.testing.assert_array_equal(out, expected.detach().numpy())
        # signed zeros as torch's (x * 0), no NaN from a 0 / 0 scale
        np.testing.assert_array_equal(np.signbit(out), np.signbit(expected.detach().numpy()))
        np.testing.assert_array_equal(ours.backward(np.ones_like(x)), xt.grad.numpy())
        ours.training = False   # evaluation: the identity, as for any p
        np.testing.assert_array_equal(ours.forward(x), x)


def test_dropout_same_seed_same_mask_and_fresh_masks_per_call(rng):
    x = rng.normal(size=(6, 8)) + 10
    a, b = Dropout(0.5, rng=11), Dropout(0.5, rng=11)
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    # A second call draws a new mask (with 48 entries the chance of equality is 2^-48).
    assert not np.array_equal(first, a.forward(x))


def test_float32_stays_float32_through_every_layer(rng):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    W = rng.normal(size=(3, 2)).astype(np.float32)
    b = rng.normal(size=2).astype(np.float32)
    aff = Affine()
    out = aff.forward(x, W, b)
    grads = aff.backward(np.ones_like(out))
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    for factory in ELEMENTWISE.values():
        layer = factory()
        out = layer.forward(x)
        assert out.dtype == np.float32, layer
        assert layer.backward(np.ones_like(out)).dtype == np.float32, layer


def test_forward_does_not_mutate_inputs(rng):
    x = rng.normal(size=(4, 3))
    x0 = x.copy()
    for factory in ELEMENTWISE.values():
        layer = factory()
        layer.backward(np.ones_like(layer.forward(x)))
    np.testing.assert_array_equal(x, x0)
