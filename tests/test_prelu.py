"""PReLU, the ReLU whose negative slope is learned (one, or one per channel), as
torch.nn.PReLU: the contract kit, finite differences, PyTorch autograd for the inputs'
and the slopes' gradients, training, model files, ONNX (onnxruntime) and from_torch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_layer_gradients
from chainrule.layers import PReLU
from chainrule.testing import check_layer
from conftest import to_torch


@pytest.mark.parametrize("n, shape", [(1, (6, 5)), (5, (6, 5)), (3, (2, 3, 4, 4))])
def test_prelu_passes_the_contract_kit(n, shape):
    report = check_layer(lambda: PReLU(n), shape, [(n,)])
    assert report.worst_gradient_error < 1e-6


@pytest.mark.parametrize("n, shape", [(1, (5, 4)), (4, (5, 4)), (3, (2, 3, 4, 5)),
                                      (1, (2, 3, 4, 5))])
def test_prelu_matches_torch_and_finite_differences(n, shape, rng, torch):
    layer = PReLU(n)
    x, slope = rng.normal(size=shape), rng.normal(size=n)
    assert check_layer_gradients(layer, x, slope, rng=rng).worst < 1e-8
    g = rng.normal(size=shape)
    out = layer.forward(x, slope)
    d_x, d_slope = layer.backward(g)
    xt, at = to_torch(x, requires_grad=True), to_torch(slope, requires_grad=True)
    yt = torch.nn.functional.prelu(xt, at)
    yt.backward(to_torch(g))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_array_equal(d_x, xt.grad.numpy())
    np.testing.assert_allclose(d_slope, at.grad.numpy(), rtol=1e-12, atol=1e-14)
    # float32 stays float32
    out32 = PReLU(n).forward(x.astype(np.float32), slope.astype(np.float32))
    assert out32.dtype == np.float32


def test_prelu_options_refusals_and_its_place_in_a_network(rng):
    assert repr(PReLU()) == "PReLU()" and repr(PReLU(3, init=0.1)) == "PReLU(3, init=0.1)"
    assert PReLU(3).get_config() == {"num_parameters": 3, "init": 0.25}
    np.testing.assert_array_equal(PReLU(3, 0.1).init_params(rng, np.float32)[0],
                                  np.full(3, 0.1, np.float32))
    assert cr.PReLU is PReLU and "PReLU" in cr.__all__
    for bad in (lambda: PReLU(0), lambda: PReLU(1.5), lambda: PReLU(init=float("nan"))):
        with pytest.raises((TypeError, ValueError)):
            bad()
    with pytest.raises(ValueError, match=r"slope must have shape \(3,\), got \(2,\)"):
        PReLU(3).forward(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="it has 4 slopes, one per channel"):
        cr.Sequential([cr.Affine(3, 5), PReLU(4)], rng=0)
    model = cr.Sequential([cr.Affine(3, 5), PReLU(5), cr.Affine(5, 2)], rng=0)
    assert sorted(model.params) == ["W1", "W3", "b1", "b3", "slope2"]
    np.testing.assert_array_equal(model.params["slope2"], np.full(5, 0.25))


def test_a_network_with_prelu_trains_saves_and_exports(tmp_path, torch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 150)
    X = rng.normal(size=(150, 4)) + 2.0 * np.eye(3, 4)[labels]
    model = cr.Sequential([cr.Affine(4, 8), PReLU(8), cr.Affine(8, 3)], rng=0)
    before = model.params["slope2"].copy()
    history = cr.fit(model, X, labels, optimizer=cr.Adam(lr=0.02), epochs=30, batch_size=32,
                     progress=False, rng=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert not np.array_equal(model.params["slope2"], before)   # the slopes learn
    # the network's gradients against torch's, the slopes' included
    loss, grads = model.loss_and_grads(X, labels)
    params = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
    F = torch.nn.functional
    h = F.prelu(to_torch(X) @ params["W1"] + params["b1"], params["slope2"])
    F.cross_entropy(h @ params["W3"] + params["b3"], torch.tensor(labels)).backward()
    for k, g in grads.items():
        np.testing.assert_allclose(g, params[k].grad.numpy(), rtol=1e-10, atol=1e-14)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.forward(X), model.forward(X))
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    logits = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["logits"], {"X": X})[0]
    np.testing.assert_allclose(logits, model.forward(X), rtol=1e-12, atol=1e-12)
    # per channel on images (float32: onnxruntime's convolutions)
    images = cr.Sequential([cr.Unflatten((2, 4, 4)), cr.Conv2D(2, 3, 3, padding=1), PReLU(3),
                            cr.Flatten(), cr.Affine(48, 3)], rng=0, dtype=np.float32)
    images.params["slope2"][...] = [-0.5, 0.1, 2.0]
    X32 = rng.normal(size=(5, 32)).astype(np.float32)
    cr.io.export_onnx(images, tmp_path / "i.onnx")
    logits = ort.InferenceSession(str(tmp_path / "i.onnx")).run(["logits"], {"X": X32})[0]
    np.testing.assert_allclose(logits, images.forward(X32), rtol=1e-5, atol=1e-5)


def test_from_torch_converts_prelu(torch, rng):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(4, 3), nn.PReLU(3, init=0.1), nn.Linear(3, 2),
                        nn.PReLU()).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
    model = cr.io.from_torch(net)
    assert repr(model.layers[1][0]) == "PReLU(3, init=0.1)"
    X = rng.normal(size=(6, 4))
    np.testing.assert_allclose(model.forward(X), net(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-13)
