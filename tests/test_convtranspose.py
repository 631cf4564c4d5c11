"""ConvTranspose2D: the contract kit and finite differences, torch's ConvTranspose2d to
1e-10 in float64 (values and every gradient) over random settings, a convolutional
autoencoder against torch (from_torch, loss, gradients, training steps), model files,
ONNX run by onnxruntime, and the refusals."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.convtranspose import ConvTranspose2D
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch, torch_network_loss_and_grads

TOL = 1e-10

# name -> (factory, input shape, parameter shapes, output shape); Ho = (H - 1) s - 2 p +
# d (k - 1) + output_padding + 1
CONTRACT = {
    "plain": (lambda: ConvTranspose2D(2, 3, 3), (2, 2, 4, 5), [(2, 3, 3, 3), (3,)],
              (2, 3, 6, 7)),
    "strided_padded": (lambda: ConvTranspose2D(3, 2, 4, stride=2, padding=1),
                       (2, 3, 3, 3), [(3, 2, 4, 4), (2,)], (2, 2, 6, 6)),
    "output_padding_grouped_no_bias": (
        lambda: ConvTranspose2D(4, 2, 3, stride=2, output_padding=1, groups=2, bias=False),
        (2, 4, 3, 2), [(4, 1, 3, 3)], (2, 2, 8, 6)),
    "dilated_rectangular": (lambda: ConvTranspose2D(1, 2, (2, 3), stride=(1, 2), dilation=2,
                                                    padding=(1, 0)),
                            (3, 1, 4, 3), [(1, 2, 2, 3), (2,)], (3, 2, 4, 9)),
    "output_padding_past_the_stride": (   # below the dilation: taken, as in torch
        lambda: ConvTranspose2D(2, 2, 3, stride=1, dilation=3, output_padding=2),
        (2, 2, 3, 3), [(2, 2, 3, 3), (2,)], (2, 2, 11, 11)),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_the_layer_passes_the_contract_kit_and_finite_differences(name):
    factory, shape, params, out = CONTRACT[name]
    report = check_layer(factory, shape, params, output_shape=out)
    assert report.worst_gradient_error < 1e-6
    assert "float32" in report.checks and "finite differences" in report.checks
    assert factory().output_shape(shape[1:]) == out[1:]


def _cases():
    rng = np.random.default_rng(5)
    cases = []
    while len(cases) < 24:
        groups = int(rng.choice([1, 2, 3]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s, d = (int(rng.integers(1, 4)), int(rng.integers(1, 3))), (int(rng.integers(1, 3)),
                                                                  int(rng.integers(1, 3)))
        op = tuple(int(rng.integers(0, max(a, b))) for a, b in zip(s, d, strict=True))
        p = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        hw = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        full = [(n - 1) * a + b * (c - 1) + 1 + e for n, a, b, c, e in zip(hw, s, d, k, op,
                                                                          strict=True)]
        if min(f - 2 * q for f, q in zip(full, p, strict=True)) >= 1:
            cases.append((c_in, c_out, k, s, p, op, groups, bool(rng.integers(2)), d, hw))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_values_and_every_gradient_match_torch(case, torch):
    c_in, c_out, k, s, p, op, groups, bias, d, hw = case
    twin = torch.nn.ConvTranspose2d(c_in, c_out, k, s, p, op, groups, bias, d).double()
    layer = ConvTranspose2D(c_in, c_out, k, s, p, op, groups, bias, d)
    rng = np.random.default_rng(sum(hw))
    x = rng.normal(size=(3, c_in) + hw)
    params = [t.detach().numpy() for t in twin.parameters()]
    out = layer.forward(x, *params)
    x_t = to_torch(x, requires_grad=True)
    expected = twin(x_t)
    assert out.shape == tuple(expected.shape) == (3,) + layer.output_shape((c_in,) + hw)
    d_out = rng.normal(size=out.shape)
    expected.backward(to_torch(d_out))
    assert rel_diff(out, expected.detach().numpy()) < TOL
    grads = layer.backward(d_out)
    for ours, ref in zip(grads, [x_t.grad, *(t.grad for t in twin.parameters())], strict=True):
        assert rel_diff(ours, ref.numpy()) < TOL


def test_the_input_gradient_can_be_skipped():
    layer = ConvTranspose2D(2, 3, 3, stride=2)
    x, (w, b) = np.random.default_rng(0).normal(size=(2, 2, 3, 3)), layer.init_params(
        np.random.default_rng(1), np.float64)
    d_out = np.ones_like(layer.forward(x, w, b))
    d_x, d_w, d_b = layer.backward(d_out)
    layer.compute_input_grad = False
    layer.forward(x, w, b)
    skipped = layer.backward(d_out)
    assert skipped[0] is None and d_x is not None
    np.testing.assert_array_equal(skipped[1], d_w)
    np.testing.assert_array_equal(skipped[2], d_b)


def test_work_arrays_are_reused_in_training_and_let_go_outside_it(torch):
    layer = ConvTranspose2D(3, 2, 3, stride=2, padding=1, output_padding=1)
    twin = torch.nn.ConvTranspose2d(3, 2, 3, 2, 1, 1).double()
    params = [t.detach().numpy() for t in twin.parameters()]
    rng = np.random.default_rng(4)
    held = None
    for n in (4, 4, 3):   # the same arrays each step (a ragged batch: their front part)
        x, d_out = rng.normal(size=(n, 3, 5, 5)), rng.normal(size=(n, 2, 10, 10))
        out = layer.forward(x, *params)
        grads = layer.backward(d_out)
        buffers = layer.cache[4]
        held = held or {k: v for k, v in buffers.items()}
        assert sorted(buffers) == ["blocks", "cols"]
        assert all(buffers[k] is held[k] for k in held)
        x_t = to_torch(x, requires_grad=True)
        twin.zero_grad()
        expected = twin(x_t)
        expected.backward(to_torch(d_out))
        assert rel_diff(out, expected.detach().numpy()) < TOL
        for ours, ref in zip(grads, [x_t.grad, *(t.grad for t in twin.parameters())],
                             strict=True):
            assert rel_diff(ours, ref.numpy()) < TOL
    layer.training = False   # outside training: fresh arrays, the training ones let go
    layer.forward(x, *params)
    assert all(layer.cache[4].get(k) is not v for k, v in held.items())
    model = cr.Sequential([cr.Unflatten((3, 5, 5)), layer, cr.Flatten()], rng=0, loss="mse")
    X = rng.normal(size=(6, 75))
    cr.fit(model, X, np.zeros((6, 200)), optimizer=cr.SGD(lr=0.01), epochs=1, batch_size=3,
           rng=0, progress=False, diagnostics=False)
    assert layer.cache is None   # fit's clear_caches takes the work arrays with the cache


def test_mixed_dtypes_compute_in_the_wider_as_conv2d_does(torch):
    layer = ConvTranspose2D(2, 3, 3, stride=2)
    twin = torch.nn.ConvTranspose2d(2, 3, 3, 2).double()
    x = np.random.default_rng(5).normal(size=(2, 2, 4, 4)).astype(np.float32)
    out = layer.forward(x, *[t.detach().numpy() for t in twin.parameters()])
    assert out.dtype == np.float64
    expected = twin(torch.tensor(x, dtype=torch.float64)).detach().numpy()
    assert rel_diff(out, expected) < TOL
    d_x, d_w, d_b = layer.backward(np.ones_like(out))
    assert d_w.dtype == d_b.dtype == np.float64


def _torch_autoencoder(torch, dtype):
    torch.manual_seed(3)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
                         nn.ReLU(),
                         nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1), nn.Flatten()).to(dtype)


def _images(n=24, seed=0):
    """8 x 8 images of a bright square at a random place, flattened (N, 64)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 8, 8))
    for img, (r, c) in zip(X, rng.integers(0, 5, size=(n, 2)), strict=True):
        img[r:r + 3, c:c + 3] = 1.0
    return X.reshape(n, 64) + 0.05 * rng.normal(size=(n, 64))


def test_an_autoencoder_from_torch_computes_and_trains_as_torch(torch):
    """The mean squared reconstruction error of a convolutional autoencoder: loss and
    gradients against torch's autograd, then three full-batch SGD steps of fit against
    torch.optim.SGD."""
    twin = _torch_autoencoder(torch, torch.float64)
    model = cr.io.from_torch(twin, input_shape=(1, 8, 8), loss="mse")
    assert [type(la).__name__ for la, _ in model.layers].count("ConvTranspose2D") == 2
    X = _images()
    X_t = torch.tensor(X)
    loss_t = torch.nn.functional.mse_loss(twin(X_t.reshape(-1, 1, 8, 8)), X_t)
    loss_t.backward()
    loss, grads = model.loss_and_grads(X, X)
    assert abs(loss - loss_t.item()) < 1e-12
    for (name, g), ref in zip(grads.items(), twin.parameters(), strict=True):
        assert rel_diff(g, ref.grad.numpy()) < TOL, name
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X, X)  # functional forms
    assert abs(loss - ref_loss) < 1e-12
    for name in grads:
        assert rel_diff(grads[name], ref_grads[name]) < TOL, name
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.5)
    for _ in range(3):
        cr.fit(model, X, X, optimizer=cr.SGD(lr=0.5), epochs=1, batch_size=len(X), rng=0,
               progress=False, diagnostics=False)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(twin(X_t.reshape(-1, 1, 8, 8)), X_t).backward()
        optimizer.step()
    for name, ref in zip(model.params, twin.parameters(), strict=True):
        assert rel_diff(model.params[name], ref.detach().numpy()) < 1e-9, name


def test_an_autoencoder_learns_saves_loads_and_runs_in_onnxruntime(tmp_path, torch):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X = _images(n=96, seed=1).astype(np.float32)
    model = cr.io.from_torch(_torch_autoencoder(torch, torch.float32), input_shape=(1, 8, 8),
                             loss="mse")
    history = cr.fit(model, X, X, optimizer=cr.Adam(lr=1e-2), epochs=40, batch_size=32, rng=0,
                     progress=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in loaded.layers] == [repr(la) for la, _ in model.layers]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    nodes = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
             for node in proto.graph.node if node.op_type == "ConvTranspose"]
    assert [(n["strides"], n["pads"], n["output_padding"]) for n in nodes] == [
        ([2, 2], [1, 1, 1, 1], [1, 1]), ([2, 2], [1, 1, 1, 1], [0, 0])]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"X": X})[-1]
    assert np.max(np.abs(outputs - model.forward(X))) < 1e-5


@pytest.mark.parametrize("layer", [ConvTranspose2D(3, 3, 3, stride=2, output_padding=1,
                                                   groups=3, bias=False),
                                   ConvTranspose2D(3, 2, (2, 3), stride=(2, 1), padding=(0, 1),
                                                   dilation=(1, 2))])
def test_onnxruntime_runs_each_option(layer, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    width = int(np.prod(layer.output_shape((3, 5, 4))))
    model = cr.Sequential([cr.Unflatten((3, 5, 4)), layer, cr.Flatten(), cr.Affine(width, 2)],
                          rng=0, dtype=np.float32)
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path)
    X = np.random.default_rng(2).normal(size=(5, 60)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X})[2]
    assert np.max(np.abs(logits - model.forward(X))) < 1e-5


def test_export_refuses_an_output_padding_onnx_runtimes_refuse(tmp_path):
    pytest.importorskip("onnx")
    # Taken below the dilation, as torch takes it; ONNX's ConvTranspose needs it below the
    # stride (onnxruntime refused such a graph only when it ran)
    model = cr.Sequential([cr.Unflatten((2, 3, 3)),
                           ConvTranspose2D(2, 2, 3, stride=1, dilation=3, output_padding=2),
                           cr.Flatten()], rng=0, loss="mse")
    with pytest.raises(ValueError, match=r"ConvTranspose takes output_padding below stride "
                                         r"only .*got output_padding=\(2, 2\), stride=\(1, 1\)"):
        cr.io.export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_repr_config_and_torch_argument_order():
    layer = ConvTranspose2D(4, 2, 3, 2, 1, 1, 2, False, 1)   # torch's positional order
    assert repr(layer) == ("ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1, "
                           "groups=2, bias=False)")
    rebuilt = ConvTranspose2D(**layer.get_config())
    assert repr(rebuilt) == repr(layer) and rebuilt.param_names == ("W",)
    assert layer.param_shapes() == [(4, 1, 3, 3)]
    # PyTorch's default draw: U(-a, a), a = 1 / sqrt(C_out / groups kH kW) for both
    w, b = ConvTranspose2D(3, 8, 2).init_params(np.random.default_rng(0), np.float64)
    bound = 1 / np.sqrt(8 * 2 * 2)
    assert w.shape == (3, 8, 2, 2) and np.abs(w).max() <= bound < 1.1 * np.abs(w).max()
    assert np.abs(b).max() <= bound


@pytest.mark.parametrize("make, exc, match", [
    (lambda: ConvTranspose2D(2, 2, 3, stride=2, output_padding=2), ValueError,
     r"output_padding must be below stride or dilation \(as in PyTorch\), got "
     r"output_padding=\(2, 2\), stride=\(2, 2\), dilation=\(1, 1\)"),
    (lambda: ConvTranspose2D(4, 3, 3, groups=2), ValueError,
     r"groups must divide in_channels \(4\) and out_channels \(3\), got 2"),
    (lambda: ConvTranspose2D(2, 2, 0), ValueError, "kernel_size"),
    (lambda: ConvTranspose2D(2, 2, 3, padding=-1), ValueError, "padding"),
    (lambda: ConvTranspose2D(2, 2, 3, bias="yes"), TypeError, "bias"),
])
def test_bad_settings_are_named(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs_and_shapes_are_named():
    layer = ConvTranspose2D(2, 3, 3, padding=2)
    w, b = layer.init_params(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=r"padding 2 crops an output height of 3 to nothing"):
        layer.forward(np.ones((1, 2, 1, 4)), w, b)
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 3, 3, 3\) \(C_in, "
                                         r"C_out / groups, kH, kW\), got \(3, 2, 3, 3\)"):
        layer.forward(np.ones((1, 2, 4, 4)), w.transpose(1, 0, 2, 3), b)
    with pytest.raises(ValueError, match=r"inputs must have 2 channels on axis 1"):
        layer.forward(np.ones((1, 3, 4, 4)), w, b)
    with pytest.raises(TypeError, match=r"takes a bias after its weight, got none"):
        layer.forward(np.ones((1, 2, 4, 4)), w)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        ConvTranspose2D(2, 3, 3).backward(np.ones((1, 3, 4, 4)))
    out = layer.forward(np.ones((1, 2, 4, 4)), w, b)
    with pytest.raises(ValueError, match=r"d_out must have shape \(1, 3, 2, 2\)"):
        layer.backward(np.ones((1, 3, 3, 3)))
    assert out.shape == (1, 3, 2, 2)


def test_from_torch_refuses_another_padding_mode(torch):
    module = torch.nn.ConvTranspose2d(2, 2, 3)
    module.padding_mode = "reflect"   # (torch refuses it when built, and in forward)
    with pytest.raises(ValueError, match=r"padding_mode='reflect'\) has no chainrule "
                                         r"counterpart"):
        cr.io.from_torch(torch.nn.Sequential(module), input_shape=(2, 4, 4))
