"""Conv2D's ``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular') against
``torch.nn.Conv2d(padding_mode=...)`` in float64 (output and every gradient), finite
differences, model files and onnxruntime (a Pad node before the Conv)."""

import itertools
import zlib

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_layer_gradients

MODES = ["reflect", "replicate", "circular"]


def _cases():
    for mode, hw, k, s, p, d, g in itertools.product(
            MODES, [(6, 7), (5, 5)], [3, (2, 3)], [1, 2], [1, 2, "same"], [1, 2], [1, 2]):
        if not (p == "same" and s != 1):
            yield mode, hw, k, s, p, d, g


@pytest.mark.parametrize("mode, hw, k, s, p, d, g", list(_cases()))
def test_padding_modes_match_torch(mode, hw, k, s, p, d, g, torch):
    layer = cr.Conv2D(2, 4, k, stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    ref = torch.nn.Conv2d(2, 4, k, stride=s, padding=p, dilation=d, groups=g,
                          padding_mode=mode).double()
    rng = np.random.default_rng(zlib.crc32(repr((mode, hw, k, s, p, d, g)).encode()))
    w, b = (rng.standard_normal(shape) for shape in layer.param_shapes())
    x = rng.standard_normal((3, 2, *hw))
    try:
        layer.check_input_shape((2, *hw))
    except ValueError as exc:   # padding past the image: torch refuses it too
        assert "padding_mode" in str(exc) or "smaller than the kernel" in str(exc)
        with pytest.raises((RuntimeError, ValueError)):
            ref(torch.tensor(x))
        return
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(w))
        ref.bias.copy_(torch.tensor(b))
    xt = torch.tensor(x, requires_grad=True)
    out_t = ref(xt)
    out = layer.forward(x, w, b)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=1e-12)
    d_out = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(d_out))
    d_x, d_w, d_b = layer.backward(d_out)
    np.testing.assert_allclose(d_x, xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d_w, ref.weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d_b, ref.bias.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_finite_differences(mode):
    layer = cr.Conv2D(2, 3, 3, padding=2, dilation=(1, 2), padding_mode=mode)
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(shape) for shape in layer.param_shapes()]
    result = check_layer_gradients(layer, rng.standard_normal((2, 2, 5, 6)), *params)
    assert result.worst < 1e-7, str(result)


@pytest.mark.parametrize("mode, opset", [("reflect", 17), ("replicate", 17), ("circular", 19)])
def test_model_files_and_onnx(mode, opset, tmp_path):
    import onnxruntime as ort

    model = cr.Sequential([cr.Unflatten((1, 6, 6)), cr.Conv2D(1, 3, 3, padding=1,
                                                               padding_mode=mode),
                           cr.ReLU(), cr.Flatten(), cr.Affine(108, 4)], rng=0, dtype=np.float32)
    X = np.random.default_rng(0).standard_normal((5, 36)).astype(np.float32)
    assert repr(model.layers[1][0]).endswith(f"padding_mode='{mode}')")
    cr.io.save(model, tmp_path / "m.npz")
    assert np.array_equal(cr.io.load(tmp_path / "m.npz").forward(X), model.forward(X))
    cr.io.export_onnx(model, tmp_path / "m.onnx", opset=opset)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    logits = session.run(["logits"], {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(logits, model.forward(X), rtol=0, atol=2e-6)
    assert "padding_mode" not in cr.Conv2D(1, 3, 3, padding=1).get_config()


def test_refusals():
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        cr.Conv2D(1, 2, 3, padding_mode="mirror")
    model = cr.Sequential([cr.Unflatten((1, 6, 6)), cr.Conv2D(1, 3, 3, padding=1,
                                                               padding_mode="circular"),
                           cr.Flatten(), cr.Affine(108, 4)], rng=0)
    with pytest.raises(ValueError, match=r"opset must be at least 19 .*'wrap'"):
        cr.io.export_onnx(model, "unused.onnx")
    with pytest.raises(ValueError, match=r"padding_mode='reflect' needs padding below the "
                                         r"input's height, as in PyTorch: padding 3 for a "
                                         r"height of 3"):
        cr.Sequential([cr.Unflatten((1, 3, 3)), cr.Conv2D(1, 1, 3, padding=3,
                                                          padding_mode="reflect")])
    # Each axis against its own size: a 1 x 28 image takes a (1, 5) kernel padded (0, 2).
    cr.Sequential([cr.Unflatten((1, 1, 28)), cr.Conv2D(1, 1, (1, 5), padding=(0, 2),
                                                       padding_mode="reflect")])


def test_explain_says_the_padding_mode_and_the_slope():
    model = cr.Sequential([cr.Unflatten((1, 6, 6)), cr.Conv2D(1, 2, 3, padding=1,
                                                               padding_mode="reflect"),
                           cr.LeakyReLU(-0.3), cr.Flatten(), cr.Affine(72, 3)], rng=0)
    text = model.explain(np.zeros((2, 36)))
    assert "reflect padding, whose gradient goes back to the pixels it copies" in text
    assert "where(H1 > 0, H1, -0.3 * H1)" in text and "where(H1 > 0, 1, -0.3)" in text
