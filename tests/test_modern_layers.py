"""GELU, SiLU, ELU, Softplus and AdaptiveAvgPool2D, the layers a ported modern network
meets: the
contract kit, finite differences, PyTorch autograd (float64, and float32 values for
the activations), training through ``fit``, model files and ONNX (onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.conv import AdaptiveAvgPool2D
from chainrule.gradcheck import check_layer_gradients
from chainrule.layers import ELU, GELU, SiLU, Softplus
from chainrule.models import ACTIVATIONS, MLP
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch, torch_layer

ACTIVATION_LAYERS = {
    "gelu": GELU,
    "gelu_tanh": lambda: GELU(approximate="tanh"),
    "silu": SiLU,
    "elu": ELU,
    "elu_alpha": lambda: ELU(alpha=0.3),
    "softplus": Softplus,
    "softplus_beta": lambda: Softplus(beta=2.0, threshold=3.0),
}
TORCH_ACTIVATIONS = {
    "gelu": lambda torch: torch.nn.GELU(),
    "gelu_tanh": lambda torch: torch.nn.GELU(approximate="tanh"),
    "silu": lambda torch: torch.nn.SiLU(),
    "elu": lambda torch: torch.nn.ELU(),
    "elu_alpha": lambda torch: torch.nn.ELU(alpha=0.3),
    "softplus": lambda torch: torch.nn.Softplus(),
    "softplus_beta": lambda torch: torch.nn.Softplus(beta=2.0, threshold=3.0),
}
# (input height, width) -> output_size: sizes that divide the input and sizes that do not
# (overlapping windows), an output larger than the input, and global pooling.
POOLS = [((6, 4), (3, 2)), ((7, 5), (3, 2)), ((5, 7), 4), ((3, 4), (5, 7)), ((5, 5), 1),
         ((1, 1), 1), ((9, 6), (2, 4))]


def _grad_pair(layer, x, g):
    out = layer.forward(x)
    return out, layer.backward(g)


# -- the layers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ACTIVATION_LAYERS))
def test_activations_pass_the_contract_kit(name):
    report = check_layer(ACTIVATION_LAYERS[name], (6, 5))
    assert report.worst_gradient_error < 1e-6
    assert "finite differences" in report.checks and "float32" in report.checks


@pytest.mark.parametrize("shape", [(1, 1), (4, 3), (2, 3, 5)])
@pytest.mark.parametrize("name", sorted(ACTIVATION_LAYERS))
def test_activations_match_torch_and_finite_differences_in_float64(name, shape, rng, torch):
    layer = ACTIVATION_LAYERS[name]()
    x = rng.normal(scale=3.0, size=shape)
    result = check_layer_gradients(layer, x, rng=rng)
    assert result.worst < 1e-8, str(result)
    g = rng.normal(size=shape)
    out, d_x = _grad_pair(layer, x, g)
    xt = to_torch(x, requires_grad=True)
    yt = TORCH_ACTIVATIONS[name](torch)(xt)
    yt.backward(to_torch(g))
    assert np.max(np.abs(out - yt.detach().numpy())) < 1e-15
    assert np.max(np.abs(d_x - xt.grad.numpy())) < 1e-14


@pytest.mark.parametrize("name", sorted(ACTIVATION_LAYERS))
def test_activations_match_torch_in_float32(name, rng, torch):
    layer = ACTIVATION_LAYERS[name]()
    x = rng.normal(scale=3.0, size=(50, 7)).astype(np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    out, d_x = _grad_pair(layer, x, g)
    assert out.dtype == d_x.dtype == np.float32
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH_ACTIVATIONS[name](torch)(xt)
    yt.backward(torch.tensor(g))
    # some float32 ulps of the values' scale (|x| up to ~12, ulp ~1e-6)
    assert np.max(np.abs(out - yt.detach().numpy())) < 1e-5
    assert np.max(np.abs(d_x - xt.grad.numpy())) < 1e-5


def test_activation_values_at_known_points():
    x = np.array([[-40.0, 0.0, 1.0, 40.0]])
    phi1 = 0.8413447460685429   # Phi(1), the normal CDF
    np.testing.assert_array_equal(GELU().forward(x)[0, [0, 1, 3]], [-0.0, 0.0, 40.0])
    assert GELU().forward(x)[0, 2] == pytest.approx(phi1, rel=1e-15)
    assert SiLU().forward(x)[0, 2] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-15)
    for layer in (GELU(), GELU("tanh"), SiLU()):
        out = layer.forward(x)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(layer.backward(np.ones_like(out))))


def test_elu_and_softplus_at_known_points():
    x = np.array([[-40.0, -1.0, 0.0, 1.0, 40.0]])
    # ELU: alpha (e^x - 1) below 0, x above; its slope alpha e^x, 1
    elu = ELU(0.5)
    np.testing.assert_allclose(elu.forward(x), [[0.5 * np.expm1(-40.0), 0.5 * np.expm1(-1.0),
                                                 0.0, 1.0, 40.0]], rtol=1e-15)
    np.testing.assert_allclose(elu.backward(np.ones_like(x)),
                               [[0.5 * np.exp(-40.0), 0.5 * np.exp(-1.0), 0.5, 1.0, 1.0]],
                               rtol=1e-15)
    assert ELU().forward(np.array([[1e-20]]))[0, 0] == 1e-20
    assert ELU().forward(np.array([[-1e-20]]))[0, 0] == -1e-20   # expm1: no cancellation
    # Softplus: log(1 + e^x); x itself past the threshold (20); slope sigmoid(x)
    soft = Softplus()
    out = soft.forward(x)
    np.testing.assert_allclose(out[0, :4], [np.exp(-40.0), np.log1p(np.exp(-1.0)), np.log(2.0),
                                            np.log1p(np.e)], rtol=1e-15)
    assert out[0, 4] == 40.0
    np.testing.assert_allclose(soft.backward(np.ones_like(x)),
                               [[1 / (1 + np.exp(40.0)), 1 / (1 + np.e), 0.5,
                                 1 / (1 + np.exp(-1.0)), 1.0]], rtol=1e-15)
    big = np.array([[1e300, -1e300]])
    with np.errstate(over="raise", invalid="raise"):   # neither side overflows
        np.testing.assert_array_equal(soft.forward(big), [[1e300, 0.0]])
        np.testing.assert_array_equal(ELU().forward(big), [[1e300, -1.0]])


def test_softplus_above_the_exponentials_range_is_the_input_itself():
    # A threshold past log(max) of the dtype: PyTorch's exp overflows there (inf, and a
    # NaN gradient); log(1 + e^x) is x to the last bit
    for dtype, x in ((np.float32, 90.0), (np.float64, 800.0)):
        layer = Softplus(threshold=1000.0)
        inputs = np.array([[x, -x, 1.0]], dtype=dtype)
        with np.errstate(over="raise", invalid="raise"):
            out = layer.forward(inputs)
            slope = layer.backward(np.ones_like(inputs))
        assert out[0, 0] == x and slope[0, 0] == 1.0
        assert 0.0 <= out[0, 1] < 1e-30 and 0.0 <= slope[0, 1] < 1e-30   # e^-x, or 0
        assert out[0, 2] == pytest.approx(np.log1p(np.e), rel=1e-6)


def test_elu_and_softplus_options_repr_config_and_refusal():
    assert repr(ELU()) == "ELU(alpha=1.0)" and repr(Softplus()) == "Softplus()"
    assert repr(Softplus(beta=2.0)) == "Softplus(beta=2.0)"
    assert ELU(0.3).get_config() == {"alpha": 0.3} and "0.3" in ELU(0.3).equations[0]
    assert Softplus(2.0, 5.0).get_config() == {"beta": 2.0, "threshold": 5.0}
    assert cr.ELU is ELU and cr.Softplus is Softplus and {"ELU", "Softplus"} <= set(cr.__all__)
    for bad in (lambda: ELU(float("nan")), lambda: ELU("1"), lambda: Softplus(beta=0.0),
                lambda: Softplus(beta=-1.0), lambda: Softplus(threshold=float("inf"))):
        with pytest.raises((TypeError, ValueError)):
            bad()


def test_gelu_option_repr_config_and_refusal():
    assert repr(GELU()) == "GELU()" and repr(SiLU()) == "SiLU()"
    assert repr(GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    assert GELU("tanh").get_config() == {"approximate": "tanh"}
    assert "tanh" in GELU("tanh").equations[0] and "Phi" in GELU().equations[0]
    with pytest.raises(ValueError, match="approximate"):
        GELU(approximate="erf")
    with pytest.raises(ValueError, match="approximate"):
        GELU(approximate=None)


def test_gelu_and_silu_are_exported_by_the_package():
    assert cr.GELU is GELU and cr.SiLU is SiLU and cr.AdaptiveAvgPool2D is AdaptiveAvgPool2D
    assert {"GELU", "SiLU", "AdaptiveAvgPool2D"} <= set(cr.__all__)


@pytest.mark.parametrize("name", ["adaptive_2x3", "adaptive_global", "adaptive_uneven"])
def test_adaptive_pool_passes_the_contract_kit(name):
    factory, shape, out = {"adaptive_2x3": (lambda: AdaptiveAvgPool2D((2, 3)), (3, 2, 4, 6),
                                            (3, 2, 2, 3)),
                           "adaptive_global": (lambda: AdaptiveAvgPool2D(1), (4, 3, 5, 5),
                                               (4, 3, 1, 1)),
                           "adaptive_uneven": (lambda: AdaptiveAvgPool2D((3, 2)), (2, 2, 7, 5),
                                               (2, 2, 3, 2))}[name]
    report = check_layer(factory, shape, output_shape=out)
    assert report.worst_gradient_error < 1e-6


@pytest.mark.parametrize("hw, size", POOLS)
def test_adaptive_pool_matches_torch(hw, size, rng, torch):
    layer = AdaptiveAvgPool2D(size)
    x = rng.normal(size=(2, 3) + hw)
    result = check_layer_gradients(layer, x, rng=rng)
    assert result.worst < 1e-8, str(result)
    g = rng.normal(size=(2, 3) + layer.output_size)
    out, d_x = _grad_pair(layer, x, g)
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.AdaptiveAvgPool2d(size)(xt)
    yt.backward(to_torch(g))
    assert out.shape == tuple(yt.shape)
    assert np.max(np.abs(out - yt.detach().numpy())) < 1e-14
    assert np.max(np.abs(d_x - xt.grad.numpy())) < 1e-14
    assert rel_diff(out, torch_layer(layer, to_torch(x)).detach().numpy()) < 1e-14


def test_adaptive_pool_one_is_the_global_mean(rng):
    x = rng.normal(size=(3, 4, 5, 6))
    np.testing.assert_allclose(AdaptiveAvgPool2D(1).forward(x)[:, :, 0, 0], x.mean(axis=(2, 3)),
                               rtol=0, atol=1e-15)


def test_adaptive_pool_options_shapes_and_refusals():
    layer = AdaptiveAvgPool2D((2, 3))
    assert repr(layer) == "AdaptiveAvgPool2D((2, 3))" and repr(AdaptiveAvgPool2D(4)) == \
        "AdaptiveAvgPool2D(4)"
    assert layer.get_config() == {"output_size": [2, 3]}
    assert layer.output_shape((5, 7, 9)) == (5, 2, 3)
    for bad in (0, (2, 0), (1, 2, 3), -1):
        with pytest.raises(ValueError, match="output_size"):
            AdaptiveAvgPool2D(bad)
    with pytest.raises(TypeError, match="output_size"):
        AdaptiveAvgPool2D(2.5)
    with pytest.raises(ValueError, match="inputs"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="images"):
        cr.Sequential([cr.Affine(4, 6), AdaptiveAvgPool2D(1)], rng=0)


# -- networks -------------------------------------------------------------------------------
def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 4)) + 2.5 * np.eye(3, 4)[labels]
    return X, np.eye(3)[labels]


@pytest.mark.parametrize("activation", ["gelu", "silu", "elu", "softplus"])
def test_mlp_with_gelu_and_silu_trains_through_fit(activation):
    from chainrule.train import fit

    assert ACTIVATIONS[activation] is {"gelu": GELU, "silu": SiLU, "elu": ELU,
                                       "softplus": Softplus}[activation]
    X, Y = _blobs()
    model = MLP([4, 16, 3], activation=activation, rng=0)
    assert type(model.layers[1][0]) is ACTIVATIONS[activation]
    history = fit(model, X, Y, optimizer=cr.Adam(lr=0.02), epochs=30, batch_size=32, rng=0,
                  progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert cr.accuracy(model.predict(X), Y) > 0.9


def test_the_estimator_keeps_scikit_learns_activations():
    pytest.importorskip("sklearn")
    from chainrule.estimator import MLPClassifier

    for name in ("gelu", "silu", "elu", "softplus"):   # MLP's, not scikit-learn's
        with pytest.raises(ValueError, match="activation"):
            MLPClassifier(activation=name, max_iter=2).fit(*_blobs(30))


def _image_net(size=(2, 2), dtype=np.float64):
    return cr.Sequential([cr.Unflatten((2, 4, 4)), cr.Conv2D(2, 3, 3, padding=1), GELU(),
                          AdaptiveAvgPool2D(size), cr.Flatten(),
                          cr.Affine(3 * size[0] * size[1], 6), SiLU(),
                          GELU(approximate="tanh"), cr.Affine(6, 3)], rng=0, dtype=dtype)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 2)])
def test_model_file_round_trip(tmp_path, size):
    model = _image_net(size)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert [repr(layer) for layer, _ in again.layers] == [repr(layer) for layer, _ in
                                                          model.layers]
    assert again.layers[7][0].approximate == "tanh" and again.layers[2][0].approximate == "none"
    X = np.random.default_rng(1).normal(size=(5, 32))
    assert np.array_equal(again.predict(X), model.predict(X))


def test_elu_and_softplus_settings_survive_model_files(tmp_path):
    model = cr.Sequential([cr.Affine(4, 6), ELU(alpha=0.3), cr.Affine(6, 5),
                           Softplus(beta=2.0, threshold=3.0), cr.Affine(5, 3)], rng=0)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert again.layers[1][0].alpha == 0.3
    assert (again.layers[3][0].beta, again.layers[3][0].threshold) == (2.0, 3.0)
    X, _ = _blobs(7)
    assert np.array_equal(again.predict(X), model.predict(X))


def test_mlp_model_file_round_trip(tmp_path):
    model = MLP([4, 5, 5, 3], activation=["gelu", "silu"], rng=0)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert [repr(layer) for layer, _ in again.layers] == [
        "Affine(4, 5)", "GELU()", "Affine(5, 5)", "SiLU()", "Affine(5, 3)"]
    X, _ = _blobs(7)
    assert np.array_equal(again.predict(X), model.predict(X))


# -- ONNX -------------------------------------------------------------------------------------
def _onnx_outputs(model, path, X, opset=None):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from chainrule.io import export_onnx

    export_onnx(model, path, opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X}), strict=True))


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("activation", [GELU, lambda: GELU(approximate="tanh"), SiLU])
def test_onnx_activations_match_onnxruntime(tmp_path, activation, opset):
    model = cr.Sequential([cr.Affine(4, 16), activation(), cr.Affine(16, 3)], rng=0,
                          dtype=np.float32, loss="mse")
    X = np.random.default_rng(2).normal(scale=2.0, size=(20, 4)).astype(np.float32)
    out = _onnx_outputs(model, tmp_path / "m.onnx", X, opset)
    np.testing.assert_allclose(out["outputs"], model.predict(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", [ELU, lambda: ELU(0.3), Softplus,
                                        lambda: Softplus(beta=2.0, threshold=3.0)])
def test_onnx_elu_and_softplus_match_onnxruntime_in_both_dtypes(tmp_path, activation, dtype):
    # float64: composed of Exp, Log, Where (onnxruntime has no float64 Elu or Softplus)
    model = cr.Sequential([cr.Affine(4, 16), activation(), cr.Affine(16, 3)], rng=0,
                          dtype=dtype, loss="mse")
    X = np.random.default_rng(2).normal(scale=4.0, size=(50, 4)).astype(dtype)
    out = _onnx_outputs(model, tmp_path / "m.onnx", X)
    np.testing.assert_allclose(out["outputs"], model.predict(X), rtol=0,
                               atol=1e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("size", [(1, 1), (2, 2)])
def test_onnx_image_network_matches_onnxruntime(tmp_path, size):
    import onnx

    model = _image_net(size, dtype=np.float32)
    X = np.random.default_rng(3).normal(size=(6, 32)).astype(np.float32)
    out = _onnx_outputs(model, tmp_path / "m.onnx", X)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=1e-5)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert ("GlobalAveragePool" if size == (1, 1) else "AveragePool") in ops
    assert {"Erf", "Tanh", "Pow", "Sigmoid"} <= ops


def test_onnx_float64_gelu_warns_that_onnxruntime_has_no_float64_erf(tmp_path):
    import warnings

    pytest.importorskip("onnx")
    from chainrule.io import export_onnx

    def net(dtype, approximate="none"):
        return cr.Sequential([cr.Affine(4, 5), GELU(approximate), cr.Affine(5, 3)], rng=0,
                             dtype=dtype)

    with pytest.warns(UserWarning, match="Erf"):
        export_onnx(net(np.float64), tmp_path / "e64.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = np.random.default_rng(4).normal(size=(8, 4))
        out = _onnx_outputs(net(np.float64, "tanh"), tmp_path / "t64.onnx", X)
        np.testing.assert_allclose(out["probabilities"], net(np.float64, "tanh").predict_proba(X),
                                   rtol=0, atol=1e-12)


def test_onnx_refuses_an_adaptive_pool_whose_size_does_not_divide(tmp_path):
    pytest.importorskip("onnx")
    from chainrule.io import export_onnx

    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D\(\(3, 2\)\)"):
        export_onnx(_image_net((3, 2), dtype=np.float32), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
