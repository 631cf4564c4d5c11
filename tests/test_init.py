"""Weight initialisers: the homework's xavier_init bit for bit, and the others' laws."""

import numpy as np
import pytest

import chainrule as cr
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
    with pytest.raises(ValueError, match=r"shape must be \(fan_in, fan_out\) or a "
                                         r"convolution's \(C_out, C_in, kH, kW\), got \(3,\)"):
        xavier_uniform((3,))
    with pytest.raises(ValueError, match=r"gain must be a finite number > 0, got -1.0"):
        xavier_uniform((3, 2), gain=-1.0)
    with pytest.raises(ValueError, match=r"negative_slope must be a finite number, got nan"):
        he_uniform((3, 2), negative_slope=float("nan"))
    with pytest.raises(ValueError, match=r"shape\[1\] must be an integer >= 1, got 0"):
        he_normal((3, 0))


# (shape, fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out counts them for
# a convolution's (C_out, C_in, kH, kW) weight; chainrule's matrices are (in, out).
CONV_SHAPES = [((32, 16, 3, 3), 144, 288), ((8, 1, 5, 3), 15, 120), ((6, 4, 2), 8, 12)]


@pytest.mark.parametrize("shape, fan_in, fan_out", CONV_SHAPES)
def test_convolution_shapes_use_torchs_fans(shape, fan_in, fan_out, torch):
    t = torch.empty(shape, dtype=torch.float64)
    assert torch.nn.init._calculate_fan_in_and_fan_out(t) == (fan_in, fan_out)
    bound = np.sqrt(6.0 / (fan_in + fan_out)) * 0.5
    w = xavier_uniform(shape, rng=0, gain=0.5)
    assert w.shape == shape and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    b = np.sqrt(6.0 / ((1 + 0.2 ** 2) * fan_in))   # kaiming_uniform_(a=0.2)'s bound
    w = he_uniform(shape, rng=0, negative_slope=0.2)
    assert np.abs(w).max() <= b and np.abs(w).max() > 0.95 * b
    assert zeros(shape).shape == shape


@pytest.mark.parametrize("name, kwargs", [("xavier_normal", {"gain": 2.0}),
                                          ("he_normal", {}),
                                          ("he_normal", {"negative_slope": 1.0})])
def test_normal_draws_have_torchs_standard_deviation(name, kwargs, torch):
    # The law from torch's own formulas (calculate_gain, fans), and torch's own draws.
    t = torch.empty(64, 16, 3, 3, dtype=torch.float64)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(t)
    if name == "xavier_normal":
        std = kwargs["gain"] * np.sqrt(2.0 / (fan_in + fan_out))
        torch.nn.init.xavier_normal_(t, gain=kwargs["gain"])
    else:
        a = kwargs.get("negative_slope", 0.0)
        std = torch.nn.init.calculate_gain("leaky_relu", a) / np.sqrt(fan_in)
        torch.nn.init.kaiming_normal_(t, a=a)
    w = INITIALIZERS[name]((64, 16, 3, 3), rng=0, **kwargs)   # 9,216 draws
    assert w.std() == pytest.approx(std, rel=0.03)
    assert float(t.std()) == pytest.approx(std, rel=0.03)


def test_the_defaults_draw_the_same_bits_as_before_the_options():
    # gain=1 and negative_slope=0 must not move a single draw (saved seeds, the CLI).
    for fn, bound in ((xavier_uniform, np.sqrt(6.0 / 40.0)), (he_uniform, np.sqrt(6.0 / 30.0))):
        expected = np.random.default_rng(3).uniform(-bound, bound, size=(30, 10))
        assert np.array_equal(fn((30, 10), rng=3), expected)
    expected = np.random.default_rng(3).normal(0.0, np.sqrt(2.0 / 30.0), size=(30, 10))
    assert np.array_equal(he_normal((30, 10), rng=3), expected)


def test_conv2d_takes_an_initialiser_for_its_weight():
    import chainrule as cr

    default = cr.Conv2D(16, 32, 3).init_params(np.random.default_rng(0), np.float64)
    bound = 1.0 / np.sqrt(16 * 9)   # PyTorch's default, drawn as before: weight, then bias
    rng = np.random.default_rng(0)
    assert np.array_equal(default[0], rng.uniform(-bound, bound, size=(32, 16, 3, 3)))
    assert np.array_equal(default[1], rng.uniform(-bound, bound, size=32))
    he = cr.Conv2D(16, 64, 3, init="he").init_params(np.random.default_rng(0), np.float32)
    assert he[0].dtype == np.float32 and he[0].shape == (64, 16, 3, 3)
    assert he[0].std() == pytest.approx(np.sqrt(2.0 / 144), rel=0.03)
    assert np.abs(he[1]).max() <= bound   # the bias keeps PyTorch's draw
    seen = []
    model = cr.Sequential([cr.Unflatten((2, 5, 5)), cr.Conv2D(
        2, 3, 3, init=lambda shape, rng, dtype: seen.append(shape) or np.zeros(shape, dtype)),
        cr.Flatten(), cr.Affine(27, 2)], rng=0)
    conv_weight = model.layers[1][1][0]
    assert seen == [(3, 2, 3, 3)] and not model.params[conv_weight].any()
    with pytest.raises(ValueError, match=r"init must be one of .*got 'kaiming'"):
        cr.Conv2D(2, 3, 3, init="kaiming")


def test_shape_dtype_and_a_gain_that_overflows_are_named():
    with pytest.raises(TypeError, match=r"shape must be a sequence of ints, .* got int 5"):
        xavier_uniform(5)
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype, got int64"):
        he_normal((3, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="gain \\* bound overflows"):
        xavier_uniform((3, 4), gain=1e308)


@pytest.mark.parametrize("init, match", [
    (lambda shape, rng, dtype: "x", "failed \\(its init or bias_init\\?\\): ValueError: could "
                                    "not convert string to float"),
    (lambda shape, rng, dtype: 1 / 0, "failed .*ZeroDivisionError"),
    (lambda shape, rng: np.zeros(shape), "failed .*unexpected keyword argument 'dtype'"),
    (lambda shape, rng, dtype: np.full(shape, np.nan), "drew NaN or infinite values"),
])
def test_a_failing_initialiser_is_named_with_its_layer(init, match):
    import chainrule as cr

    with pytest.raises(ValueError, match=r"layers\[1\] \(Conv2D\(1, 2, 3\)\): init_params\(rng, "
                                         r"dtype\) " + match):
        cr.Sequential([cr.Unflatten((1, 5, 5)), cr.Conv2D(1, 2, 3, init=init), cr.Flatten(),
                       cr.Affine(18, 3)], rng=0)


def test_torch_init_has_nn_linears_range_for_weight_and_bias(torch, tmp_path):
    # nn.Linear(300, 500)'s own draws state its default independently of the formula:
    # weight and bias both within 1/sqrt(fan_in), the largest of 150 000 draws at it.
    torch.manual_seed(0)
    linear = torch.nn.Linear(300, 500, dtype=torch.float64)
    model = cr.MLP([300, 500, 4], init="torch", rng=0)
    layer = cr.Sequential([cr.Affine(300, 500, init="torch"), cr.ReLU(), cr.Affine(500, 4)],
                          rng=0)
    for params in (model.params, layer.params):
        assert np.abs(params["W1"]).max() == pytest.approx(
            linear.weight.abs().max().item(), rel=1e-3)
        assert np.abs(params["b1"]).max() <= linear.weight.abs().max().item() * 1.001
        assert np.abs(params["b1"]).max() > 0.9 / np.sqrt(300)   # drawn, not zeros
    assert np.abs(model.params["b2"]).max() <= 1 / np.sqrt(500)
    # Xavier stays the default (the homework's); a model file keeps the name.
    assert np.abs(cr.MLP([300, 500, 4], rng=0).params["b1"]).max() == 0
    cr.io.save(model, tmp_path / "m.npz")
    assert cr.io.load(tmp_path / "m.npz").config["init"] == "torch"
    # Conv2D's default is this law already; the name gives the same draws.
    conv = [cr.Conv2D(3, 6, 3, init=init).init_params(np.random.default_rng(1), np.float64)
            for init in (None, "torch")]
    for a, b in zip(*conv, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_estimators_take_init_torch():
    from chainrule.estimator import MLPClassifier

    X = np.random.default_rng(0).normal(size=(40, 4))
    clf = MLPClassifier((64,), init="torch", max_iter=1, random_state=0).fit(X, X[:, 0] > 0)
    assert 0.9 * 0.5 < np.abs(clf.intercepts_[0]).max() <= 0.5   # drawn within 1/sqrt(4)
