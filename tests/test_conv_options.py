"""Conv2D's ``dilation`` and ``groups`` (PyTorch's options): forward and gradients
against PyTorch autograd and finite differences in float64, a depthwise-separable CNN
trained by ``fit`` next to the same torch model, model files, ONNX export run by
onnxruntime, and the refusals at the boundary."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.conv import Conv2D
from chainrule.gradcheck import check_layer_gradients
from chainrule.testing import check_layer
from conftest import torch_network_loss_and_grads

# torch warns that it copies the input for an asymmetric 'same' padding: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

#: Agreement with torch in float64, relative to the size of torch's array (the
#: existing convolution tests hold 1e-10; these see ~1e-16).
TOL = 1e-12

# (N, C_in, C_out, (H, W), kernel, stride, padding, dilation, groups, bias)
CASES = [
    (2, 3, 4, (7, 8), 3, 1, 0, 2, 1, True),                   # dilated
    (2, 2, 3, (9, 7), (3, 2), (2, 1), (1, 2), (2, 3), 1, False),
    (3, 4, 6, (6, 6), 3, 1, 1, 1, 2, True),                   # groups = 2
    (2, 6, 4, (5, 7), (2, 3), 2, (0, 1), 1, 2, False),
    (2, 4, 4, (8, 8), 3, 1, 1, 1, 4, True),                   # depthwise
    (2, 3, 6, (7, 6), 3, (1, 2), 2, 2, 3, True),              # depthwise, multiplier 2
    (1, 4, 12, (5, 5), 2, 1, 0, 2, 4, False),                 # multiplier 3
    (2, 4, 8, (6, 5), 3, 1, "same", 2, 2, True),              # 'same', odd totals
    (2, 3, 3, (7, 6), (4, 2), 1, "same", (1, 3), 3, True),    # 'same', even totals
    (2, 2, 4, (6, 6), 2, 1, "same", 3, 2, False),             # 'same', 3 zeros a side
    (3, 4, 2, (9, 9), 3, 3, "valid", 3, 2, True),
    # More output channels per group than positions: the weight gradient's long product.
    (3, 4, 16, (4, 4), 3, 1, 0, 1, 2, True),
    (2, 4, 8, (5, 5), 2, 1, 0, 3, 4, True),
]


def _case_id(case):
    n, c_in, c_out, hw, k, s, p, d, g, bias = case
    return f"{c_in}to{c_out}-k{k}-s{s}-p{p}-d{d}-g{g}-{'b' if bias else 'nob'}"


def _torch_conv(torch, layer, x, w, b, d_out):
    """Output and gradients (inputs, weight[, bias]) of torch's conv2d, float64."""
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w) + ((b,) if b is not None
                                                                      else ())]
    out = torch.nn.functional.conv2d(tensors[0], tensors[1],
                                     tensors[2] if b is not None else None,
                                     stride=layer.stride, padding=layer.padding,
                                     dilation=layer.dilation, groups=layer.groups)
    out.backward(torch.tensor(d_out))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_gradients_match_torch(case, rng, torch):
    n, c_in, c_out, hw, k, s, p, d, g, bias = case
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    params = layer.init_params(rng, np.float64)
    assert params[0].shape == (c_out, c_in // g) + layer.kernel_size
    x = rng.normal(size=(n, c_in) + hw)
    out = layer.forward(x, *params)
    assert out.shape[1:] == layer.output_shape(x.shape[1:])
    d_out = rng.normal(size=out.shape)
    ours = layer.backward(d_out)
    ref, grads = _torch_conv(torch, layer, x, params[0], params[1] if bias else None, d_out)
    assert out.shape == ref.shape
    for name, a, b in zip(("out", "d_inputs", "d_weight", "d_bias"), (out, *ours),
                          (ref, *grads), strict=False):
        diff = np.max(np.abs(a - b))
        print(f"{_case_id(case)} {name}: max |ours - torch| = {diff:.2e}")
        assert a.shape == b.shape and diff <= TOL * np.max(np.abs(b)), name


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_initial_weights_use_torchs_fan_in_of_a_group(groups):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in / groups kH kW, as nn.Conv2d."""
    weight, bias = Conv2D(6, 12, 3, groups=groups).init_params(np.random.default_rng(0),
                                                               np.float64)
    bound = 1 / np.sqrt(6 // groups * 9)
    for values in (weight, bias):
        assert 0.8 * bound < np.max(np.abs(values)) <= bound


def test_output_size_is_torchs_formula():
    # Ho = (H + top + bottom - dilation (kH - 1) - 1) // stride + 1
    layer = Conv2D(2, 4, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 3), groups=2)
    assert layer.output_shape((2, 11, 13)) == (4, (11 + 2 - 4 - 1) // 2 + 1,
                                               (13 + 4 - 3 - 1) // 3 + 1) == (4, 5, 5)


@pytest.mark.parametrize("k, d, pads", [(3, 2, (2, 2)), (2, 2, (1, 1)), (2, 3, (1, 2)),
                                        (4, 1, (1, 2)), (4, 3, (4, 5))])
def test_same_padding_with_dilation_places_the_odd_zero_after_as_torch(k, d, pads, rng,
                                                                        torch):
    """The padding 'same' adds is dilation (k - 1) zeros, total // 2 before; torch puts
    the impulse of a one-tap kernel where these pads say."""
    layer = Conv2D(1, 1, k, padding="same", dilation=d, bias=False)
    assert layer.pads == (pads, pads)
    x = rng.normal(size=(1, 1, 11, 12))
    w = np.zeros((1, 1, k, k))
    w[0, 0, 0, 0] = 1.0   # the output at (i, j) reads the input at (i - top, j - left)
    out = layer.forward(x, w)
    assert out.shape == x.shape
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same",
                                     dilation=d).numpy()
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out[0, 0, pads[0]:, pads[0]:], x[0, 0, :-pads[0], :-pads[0]])


@pytest.mark.parametrize("factory, in_shape, out_shape", [
    (lambda: Conv2D(2, 4, 3, padding=2, dilation=2, groups=2), (2, 2, 5, 6), (2, 4, 5, 6)),
    (lambda: Conv2D(3, 6, (2, 3), stride=(1, 2), dilation=(2, 1), groups=3, bias=False),
     (2, 3, 6, 7), (2, 6, 4, 3)),
    (lambda: Conv2D(4, 4, 3, padding="same", dilation=3, groups=4), (2, 4, 7, 7),
     (2, 4, 7, 7)),
])
def test_the_options_pass_the_contract_kit_and_finite_differences(factory, in_shape,
                                                                  out_shape, rng):
    layer = factory()
    params = layer.init_params(rng, np.float64)
    report = check_layer(factory, in_shape, [p.shape for p in params], output_shape=out_shape)
    assert report.worst_gradient_error < 1e-6
    assert "float32" in report.checks and "finite differences" in report.checks
    # And the gradcheck helper directly, every entry of inputs, weight and bias.
    result = check_layer_gradients(layer, rng.normal(size=in_shape), *params,
                                   names=layer.param_names)
    assert set(result.errors) == {"inputs", *layer.param_names}
    assert result.worst < 1e-7, result


def _separable_cnn(rng=0, dtype=np.float64):
    """A depthwise-separable block (depthwise dilated 3 x 3, pointwise 1 x 1) between a
    plain convolution and a grouped strided one, on 8 x 8 images."""
    return cr.Sequential([
        cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 4, 3, padding=1), cr.ReLU(),
        cr.Conv2D(4, 8, 3, padding="same", dilation=2, groups=4), cr.ReLU(),
        cr.Conv2D(8, 6, 1), cr.ReLU(),
        cr.Conv2D(6, 6, 3, stride=2, groups=2, bias=False), cr.Flatten(),
        cr.Affine(6 * 3 * 3, 10)], rng=rng, dtype=dtype)


def _torch_twin(torch, model):
    """The same network as torch modules holding the chainrule model's weights."""
    nn = torch.nn
    modules = []
    for layer, names in model.layers:
        params = [torch.tensor(model.params[n]) for n in names]
        if isinstance(layer, cr.Conv2D):
            module = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                               stride=layer.stride, padding=layer.padding,
                               dilation=layer.dilation, groups=layer.groups,
                               bias=layer.has_bias, dtype=torch.float64)
        elif isinstance(layer, cr.Affine):
            module = nn.Linear(*params[0].shape, dtype=torch.float64)
            params[0] = params[0].T.contiguous()   # chainrule's (D, H), torch's (H, D)
        else:
            modules.append({cr.ReLU: nn.ReLU(), cr.Flatten: nn.Flatten()}.get(
                type(layer)) or nn.Unflatten(1, layer.shape))
            continue
        with torch.no_grad():
            for target, value in zip(module.parameters(), params, strict=True):
                target.copy_(value)
        modules.append(module)
    return nn.Sequential(*modules)


def test_a_depthwise_separable_cnn_trains_as_the_same_torch_model(torch):
    """Five full-batch SGD steps of fit against five of torch.optim.SGD, from the same
    weights: the parameters agree to 1e-10 of their size after every step."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(24, 64))
    y = rng.integers(0, 10, size=24)
    Y = np.eye(10)[y]
    model = _separable_cnn()
    assert model.params["W2"].shape == (8, 1, 3, 3) and model.params["W4"].shape == (6, 3, 3, 3)
    twin = _torch_twin(torch, model)
    loss, grads = model.loss_and_grads(X, Y)   # through torch_layer, the functional form
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X, Y)
    assert abs(loss - ref_loss) < 1e-12
    for k in model.params:
        assert np.max(np.abs(grads[k] - ref_grads[k])) <= 1e-10 * np.max(np.abs(ref_grads[k]))
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.5)
    before = {k: v.copy() for k, v in model.params.items()}
    for _ in range(5):
        cr.fit(model, X, Y, optimizer=cr.SGD(lr=0.5), epochs=1, batch_size=len(X), rng=0,
               progress=False, diagnostics=False)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(X)), torch.tensor(y)).backward()
        optimizer.step()
    theirs = [p.detach().numpy() for p in twin.parameters()]
    for name, ref in zip(model.params, theirs, strict=True):
        ours = model.params[name]
        ref = ref.T if name.startswith("W") and ours.ndim == 2 else ref
        assert not np.allclose(ours, before[name]), name   # the steps moved it
        diff = np.max(np.abs(ours - ref))
        print(f"after 5 SGD steps, {name}: max |ours - torch| = {diff:.2e}")
        assert diff <= 1e-10 * np.max(np.abs(ref)), name


def test_model_files_keep_the_options_and_the_predictions(tmp_path):
    model = _separable_cnn(rng=1)
    cr.fit(model, np.random.default_rng(0).normal(size=(32, 64)),
           np.eye(10)[np.arange(32) % 10], optimizer=cr.Adam(lr=1e-2), epochs=2,
           batch_size=16, rng=0, progress=False, diagnostics=False)
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in loaded.layers] == [repr(la) for la, _ in model.layers]
    depthwise = loaded.layers[3][0]
    assert (depthwise.dilation, depthwise.groups, depthwise.padding) == ((2, 2), 4, "same")
    X = np.random.default_rng(1).normal(size=(9, 64))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert depthwise.get_config() == {"in_channels": 4, "out_channels": 8,
                                      "kernel_size": [3, 3], "stride": [1, 1],
                                      "padding": "same", "dilation": [2, 2], "groups": 4}


def test_default_options_are_not_stored_so_old_files_read_the_same():
    # The config of a plain convolution is the one files held before the options, and
    # such a config builds the plain convolution.
    old = {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "stride": [1, 1],
           "padding": [1, 1]}
    assert Conv2D(2, 3, 3, padding=1).get_config() == old
    assert Conv2D(2, 3, 3, padding=1, bias=False).get_config() == {**old, "bias": False}
    layer = Conv2D(**old)
    assert (layer.dilation, layer.groups) == ((1, 1), 1)
    assert Conv2D(2, 4, 3, groups=2, bias=False).get_config() == {
        **old, "out_channels": 4, "padding": [0, 0], "groups": 2, "bias": False}
    assert Conv2D(2, 3, 3, dilation=(1, 2)).get_config()["dilation"] == [1, 2]


def test_onnxruntime_runs_the_dilated_and_grouped_convolutions(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _separable_cnn(rng=2, dtype=np.float32)
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    attributes = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                  for node in proto.graph.node if node.op_type == "Conv"]
    assert [(a.get("dilations"), a.get("group")) for a in attributes] == [
        (None, None), ([2, 2], 4), (None, None), (None, 2)]
    assert attributes[1]["pads"] == [2, 2, 2, 2]
    X = np.random.default_rng(4).normal(size=(17, 64)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X})[2]
    diff = np.max(np.abs(logits - model.forward(X)))
    print(f"onnxruntime float32: max |logits_onnx - logits_chainrule| = {diff:.2e}")
    assert diff < 1e-5


def test_repr_summary_and_explain_show_the_options():
    assert repr(Conv2D(4, 8, 3, padding="same", dilation=2, groups=4)) == \
        "Conv2D(4, 8, 3, padding='same', dilation=2, groups=4)"
    assert repr(Conv2D(4, 8, 3, stride=2, dilation=(1, 2), groups=2, bias=False)) == \
        "Conv2D(4, 8, 3, stride=2, dilation=(1, 2), groups=2, bias=False)"
    assert repr(Conv2D(4, 8, 3, padding=1)) == "Conv2D(4, 8, 3, padding=1)"
    model = _separable_cnn()
    text = model.summary()
    assert "Conv2D(4, 8, 3, padding='same', dilation=2, groups=4)" in text
    assert "W2 (8, 1, 3, 3), b2 (8,)" in text and "W4 (6, 3, 3, 3)" in text
    assert "(N, 8, 8, 8)" in text and "(N, 6, 3, 3)" in text
    text = model.explain(np.zeros((2, 64)))
    assert ("H2[g] = im2col(H1_2[g]) @ W2[g]^T + b2[g]   (im2col: a row per window; taps 2 "
            "pixels apart; g: each of 4 channel groups) : (N, 4, 8, 8) -> (N, 8, 8, 8)") in text
    assert "dW2[g] = rows(dH2[g])^T @ im2col(H1_2[g]) : (8, 1, 3, 3)" in text
    assert "db2 = sum(dH2, axes N, H, W) : (8,)" in text
    assert "dH1_2[g] = col2im(rows(dH2[g]) @ W2[g]) : (N, 4, 8, 8)" in text
    assert "H4[g] = im2col(H3_2[g]) @ W4[g]^T   (im2col: a row per window; g: each of 2" in text
    assert "db4" not in text
    assert "H1 = im2col(H0) @ W1^T + b1   (im2col: a row per window) :" in text


@pytest.mark.parametrize("kwargs, error, message", [
    ({"groups": 4}, ValueError,
     r"groups must divide in_channels \(6\) and out_channels \(4\), got 4"),
    ({"groups": 3}, ValueError,
     r"groups must divide in_channels \(6\) and out_channels \(4\), got 3"),
    ({"groups": 0}, ValueError, r"groups must be an integer >= 1, got 0"),
    ({"groups": 2.0}, TypeError, r"groups must be an integer, got float 2.0"),
    ({"groups": True}, TypeError, r"groups must be an integer, got bool True"),
    ({"dilation": 0}, ValueError, r"dilation must be an integer >= 1, got 0"),
    ({"dilation": (2, 0)}, ValueError, r"dilation must be an integer >= 1, got 0"),
    ({"dilation": (1, 2, 3)}, ValueError,
     r"dilation must be an int or a pair of ints, got \(1, 2, 3\)"),
    ({"dilation": "2"}, TypeError, r"dilation must be an integer, got str '2'"),
    ({"dilation": 2, "stride": 2, "padding": "same"}, ValueError,
     r"padding='same' needs stride=1 \(as in PyTorch\), got stride=\(2, 2\)"),
])
def test_refusals_name_the_argument_and_what_it_got(kwargs, error, message):
    with pytest.raises(error, match=message):
        Conv2D(6, 4, 3, **kwargs)


def test_shape_refusals_name_the_grouped_weight_and_the_dilated_kernel():
    layer = Conv2D(4, 8, 3, groups=4)
    x = np.zeros((1, 4, 6, 6))
    with pytest.raises(ValueError, match=r"weight must have shape \(8, 1, 3, 3\) \(C_out, "
                                         r"C_in / groups, kH, kW\), got \(8, 4, 3, 3\)"):
        layer.forward(x, np.zeros((8, 4, 3, 3)), np.zeros(8))
    dilated = Conv2D(1, 2, 3, dilation=(1, 2))
    with pytest.raises(ValueError, match=r"the input's width 4 \(padded by 0 and 0\) is "
                                         r"smaller than the kernel's 5 \(3 taps, dilation 2\)"):
        dilated.forward(np.zeros((1, 1, 6, 4)), np.zeros((2, 1, 3, 3)), np.zeros(2))
    assert dilated.output_shape((1, 6, 5)) == (2, 4, 1)   # 5 wide: the kernel fits


def test_sequential_checks_dilated_and_grouped_shapes_when_built():
    with pytest.raises(ValueError, match=r"layers\[1\] \(Conv2D\(1, 2, 3, dilation=3\)\) "
                                         r"cannot take inputs of shape \(N, 1, 6, 6\): the "
                                         r"input's height 6 .* kernel's 7 \(3 taps, "
                                         r"dilation 3\)"):
        cr.Sequential([cr.Unflatten((1, 6, 6)), cr.Conv2D(1, 2, 3, dilation=3), cr.Flatten()],
                      rng=0)
    with pytest.raises(ValueError, match=r"layers\[2\] \(Conv2D\(4, 4, 3, groups=4\)\) "
                                         r"cannot take inputs of shape \(N, 2, 6, 6\)"):
        cr.Sequential([cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 2, 3),
                       cr.Conv2D(4, 4, 3, groups=4), cr.Flatten()], rng=0)
    model = cr.Sequential([cr.Unflatten((1, 7, 7)), cr.Conv2D(1, 2, 3, dilation=3),
                           cr.Flatten()], rng=0)
    assert model.n_outputs == 2   # 7 - 6 = 1 pixel a side
