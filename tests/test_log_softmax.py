"""LogSoftmax: ``x - logsumexp(x)`` along an axis, as torch.nn.LogSoftmax, and a network
ending in it (PyTorch's LogSoftmax + NLLLoss recipe) trained with cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_layer_gradients
from chainrule.normalization import LogSoftmax
from chainrule.testing import check_layer
from conftest import to_torch


def test_log_softmax_passes_the_contract_kit():
    report = check_layer(LogSoftmax, (6, 5))
    assert report.worst_gradient_error < 1e-6


@pytest.mark.parametrize("shape, axis", [((5, 7), 1), ((3, 4, 2), 2), ((4, 3), -1),
                                         ((3, 4, 2), -2), ((6, 3), 0)])
def test_log_softmax_matches_torch_and_finite_differences_even_for_huge_inputs(
        shape, axis, rng, torch):
    layer = LogSoftmax(dim=axis)
    assert check_layer_gradients(layer, rng.normal(size=shape), rng=rng).worst < 1e-8
    x = rng.normal(scale=300.0, size=shape)   # exp would overflow without the shift
    out = layer.forward(x)
    d_out = rng.normal(size=shape)
    d_x = layer.backward(d_out)
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.log_softmax(xt, dim=axis)
    yt.backward(to_torch(d_out))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(d_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_log_softmax_values_options_and_refusals():
    x = np.array([[0.0, np.log(3.0)]])   # softmax (1/4, 3/4)
    np.testing.assert_allclose(LogSoftmax().forward(x), np.log([[0.25, 0.75]]), rtol=1e-15)
    assert repr(LogSoftmax(-1)) == "LogSoftmax(axis=-1)"
    assert LogSoftmax(dim=2).get_config() == {"axis": 2}
    assert cr.LogSoftmax is LogSoftmax and "LogSoftmax" in cr.__all__
    with pytest.raises(TypeError, match="dim must be an int, got float 1.5"):
        LogSoftmax(dim=1.5)
    with pytest.raises(ValueError, match=r"axis 2 is out of range"):
        LogSoftmax(2).forward(np.zeros((2, 3)))


@pytest.mark.parametrize("layer", [LogSoftmax(0), cr.Softmax(0), LogSoftmax(-2),
                                   LogSoftmax(2)])
def test_in_a_network_the_axis_is_a_samples_not_the_batch(layer):
    # along the batch axis a prediction would depend on the rows predicted with it
    with pytest.raises(ValueError, match=rf"axis {layer.axis} is not an axis of a sample "
                                         r"\(1 to 1, or -1 to -1\): axis 0 is the batch's"):
        cr.Sequential([cr.Affine(3, 2), layer], rng=0)
    cr.Sequential([cr.Unflatten((2, 3)), type(layer)(-2), cr.Flatten(), cr.Affine(6, 2)],
                  rng=0)   # a sample's first axis, counted from the end


def test_a_network_ending_in_log_softmax_trains_as_torchs_nll_loss(rng, torch, tmp_path):
    # log_softmax(log_softmax(z)) = log_softmax(z): cross-entropy on a LogSoftmax
    # output is PyTorch's NLLLoss on it, value and every gradient.
    model = cr.Sequential([cr.Affine(5, 6), cr.Tanh(), cr.Affine(6, 3), LogSoftmax()], rng=0)
    X, y = rng.normal(size=(20, 5)), rng.integers(0, 3, 20)
    loss, grads = model.loss_and_grads(X, y)
    params = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
    F = torch.nn.functional
    h = torch.tanh(to_torch(X) @ params["W1"] + params["b1"])
    nll = F.nll_loss(F.log_softmax(h @ params["W2"] + params["b2"], dim=1), torch.tensor(y))
    nll.backward()
    assert loss == pytest.approx(float(nll.detach()), rel=1e-13)
    for k, g in grads.items():
        np.testing.assert_allclose(g, params[k].grad.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-14)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert repr(again.layers[3][0]) == "LogSoftmax(axis=1)"
    np.testing.assert_array_equal(again.forward(X), model.forward(X))


def test_log_softmax_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = cr.Sequential([cr.Affine(5, 4), LogSoftmax(), cr.Affine(4, 3)], rng=0,
                          dtype=np.float32, loss="mse")
    X = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"X": X})[0]
    np.testing.assert_allclose(out, model.predict(X), rtol=0, atol=1e-5)


def test_from_torch_converts_log_softmax(torch, rng):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1)).double()
    model = cr.io.from_torch(net)
    X = rng.normal(size=(6, 4))
    np.testing.assert_allclose(model.forward(X), net(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-13)
    with pytest.raises(ValueError, match=r"LogSoftmax\(dim=None\)"):
        cr.io.from_torch(nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax()))
