"""Conv1D, MaxPool1D, AvgPool1D and AdaptiveAvgPool1D: the contract kit and finite
differences, torch.nn.functional's 1-D operators to 1e-10 in float64 (values and every
gradient) over random settings, a whole 1-D CNN against torch (from_torch, training
steps), model files, ONNX run by onnxruntime, and the refusals."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.conv1d import AdaptiveAvgPool1D, AdaptiveMaxPool1D, AvgPool1D, Conv1D, MaxPool1D
from chainrule.testing import check_layer
from conftest import TORCH_PAD_MODES, rel_diff, to_torch, torch_network_loss_and_grads

TOL = 1e-10

# name -> (factory, input shape, parameter shapes, output shape)
CONTRACT = {
    "conv": (lambda: Conv1D(2, 3, 3, padding=1), (4, 2, 7), [(3, 2, 3), (3,)], (4, 3, 7)),
    "conv_strided_dilated": (lambda: Conv1D(2, 4, 3, stride=2, dilation=2, groups=2,
                                            bias=False), (3, 2, 11), [(4, 1, 3)], (3, 4, 4)),
    "conv_same_even_reflect": (lambda: Conv1D(3, 2, 4, padding="same", padding_mode="reflect"),
                               (2, 3, 6), [(2, 3, 4), (2,)], (2, 2, 6)),
    "conv_circular": (lambda: Conv1D(1, 2, 3, padding=2, padding_mode="circular"),
                      (2, 1, 5), [(2, 1, 3), (2,)], (2, 2, 7)),
    "maxpool": (lambda: MaxPool1D(2), (3, 2, 8), [], (3, 2, 4)),
    "maxpool_overlapping_padded_ceil": (lambda: MaxPool1D(3, 2, padding=1, ceil_mode=True),
                                        (2, 3, 8), [], (2, 3, 5)),
    "avgpool": (lambda: AvgPool1D(3, 2), (3, 2, 9), [], (3, 2, 4)),
    "avgpool_padded_ceil_no_pad_count": (
        lambda: AvgPool1D(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 2, 8), [], (2, 2, 5)),
    "adaptive": (lambda: AdaptiveAvgPool1D(3), (2, 4, 7), [], (2, 4, 3)),
    "adaptive_global": (lambda: AdaptiveAvgPool1D(1), (3, 2, 5), [], (3, 2, 1)),
    "adaptive_max": (lambda: AdaptiveMaxPool1D(3), (2, 4, 7), [], (2, 4, 3)),
    "adaptive_max_global": (lambda: AdaptiveMaxPool1D(1), (3, 2, 5), [], (3, 2, 1)),
    "adaptive_max_2d": (lambda: cr.AdaptiveMaxPool2D((2, 3)), (2, 3, 5, 7), [], (2, 3, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_layers_pass_the_contract_kit_and_finite_differences(name):
    factory, shape, params, out = CONTRACT[name]
    report = check_layer(factory, shape, params, output_shape=out)
    assert report.worst_gradient_error < 1e-6
    assert "float32" in report.checks and "finite differences" in report.checks
    assert factory().output_shape(shape[1:]) == out[1:]


def _torch_grads(torch, fn, arrays, d_out):
    """``fn(*tensors)`` and the gradients of ``sum(out * d_out)`` for each array."""
    tensors = [to_torch(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(to_torch(d_out))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _conv_cases():
    rng = np.random.default_rng(21)
    cases = []
    for _ in range(16):
        groups = int(rng.choice([1, 2]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k, s, d = (int(v) for v in (rng.integers(1, 5), rng.integers(1, 3), rng.integers(1, 3)))
        mode = str(rng.choice(list(TORCH_PAD_MODES)))
        p = int(rng.integers(0, 3))
        length = d * (k - 1) + 1 + int(rng.integers(max(0, p - 1), 6))  # room for reflect
        cases.append((c_in, c_out, k, s, p, d, groups, bool(rng.integers(2)), mode, length))
    cases.append((2, 3, 4, 1, "same", 2, 1, True, "zeros", 9))   # the odd zero goes after
    cases.append((2, 2, 3, 1, "valid", 1, 2, False, "zeros", 5))
    return cases


@pytest.mark.parametrize("case", _conv_cases())
def test_conv1d_matches_torch_values_and_every_gradient(case, torch):
    c_in, c_out, k, s, p, d, groups, bias, mode, length = case
    layer = Conv1D(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=groups, bias=bias,
                   padding_mode=mode)
    module = torch.nn.Conv1d(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=groups,
                             bias=bias, padding_mode=mode, dtype=torch.float64)
    rng = np.random.default_rng(len(str(case)))
    x = rng.normal(size=(3, c_in, length))
    params = [rng.normal(size=shape) for shape in layer.param_shapes()]
    assert [tuple(t.shape) for t in module.parameters()] == layer.param_shapes()
    out = layer.forward(x, *params)
    d_out = rng.normal(size=out.shape)
    grads = layer.backward(d_out)

    def run(xt, wt, *bt):   # the module's own forward (its padding_mode) on these tensors
        return torch.func.functional_call(module, {"weight": wt, "bias": bt[0]} if bt
                                          else {"weight": wt}, (xt,))
    ref_out, ref_grads = _torch_grads(torch, run, [x, *params], d_out)
    assert out.shape == ref_out.shape == (3, c_out) + layer.output_shape((c_in, length))[1:]
    assert rel_diff(out, ref_out) < TOL
    for ours, theirs in zip(grads, ref_grads, strict=True):
        assert rel_diff(ours, theirs) < TOL


def _pool_cases():
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(24):
        k = int(rng.integers(1, 5))
        s, p = int(rng.integers(1, 4)), int(rng.integers(0, k // 2 + 1))
        cases.append((k, s, p, bool(rng.integers(2)), bool(rng.integers(2)),
                      k + int(rng.integers(0, 7))))
    return cases


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", _pool_cases())
def test_pools_match_torch(kind, case, torch):
    k, s, p, ceil, count_pad, length = case
    F = torch.nn.functional
    if kind == "max":
        layer = MaxPool1D(k, s, p, ceil_mode=ceil)
        ref = lambda t: F.max_pool1d(t, k, s, p, ceil_mode=ceil)   # noqa: E731
    else:
        layer = AvgPool1D(k, s, p, ceil_mode=ceil, count_include_pad=count_pad)
        ref = lambda t: F.avg_pool1d(t, k, s, p, ceil_mode=ceil,   # noqa: E731
                                     count_include_pad=count_pad)
    x = np.random.default_rng(length).normal(size=(2, 3, length))
    out = layer.forward(x)
    d_out = np.random.default_rng(1).normal(size=out.shape)
    ref_out, (ref_dx,) = _torch_grads(torch, ref, [x], d_out)
    assert out.shape == ref_out.shape and layer.output_shape(x.shape[1:]) == out.shape[1:]
    assert rel_diff(out, ref_out) < TOL
    assert rel_diff(layer.backward(d_out), ref_dx) < TOL


@pytest.mark.parametrize("length, size", [(7, 3), (10, 4), (5, 5), (6, 1), (3, 7)])
def test_adaptive_pool_matches_torchs_windows(length, size, torch):
    layer = AdaptiveAvgPool1D(size)
    x = np.random.default_rng(length).normal(size=(2, 3, length))
    out = layer.forward(x)
    d_out = np.random.default_rng(size).normal(size=out.shape)
    ref_out, (ref_dx,) = _torch_grads(
        torch, lambda t: torch.nn.functional.adaptive_avg_pool1d(t, size), [x], d_out)
    assert rel_diff(out, ref_out) < TOL
    assert rel_diff(layer.backward(d_out), ref_dx) < TOL


def test_a_tie_goes_to_the_first_maximum_as_in_torch(torch):
    x = np.array([[[1.0, 3.0, 3.0, 0.0, 2.0, 2.0]]])
    layer = MaxPool1D(3, stride=1)
    d_out = np.ones((1, 1, 4))
    ref_out, (ref_dx,) = _torch_grads(
        torch, lambda t: torch.nn.functional.max_pool1d(t, 3, 1), [x], d_out)
    np.testing.assert_array_equal(layer.forward(x), ref_out)
    np.testing.assert_array_equal(layer.backward(d_out), ref_dx)
    # by hand: the windows start at 0-3; their first maxima are at 1, 1, 2 and 4
    np.testing.assert_array_equal(ref_dx, [[[0, 2, 1, 0, 1, 0]]])


def _torch_cnn(torch, dtype):
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        # (no bias before the batch normalisation: its gradient would be rounding noise)
        nn.Conv1d(2, 8, 5, padding=2, padding_mode="replicate", bias=False), nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.MaxPool1d(2), nn.Conv1d(8, 8, 3, padding=1, groups=2, bias=False), nn.ReLU(),
        nn.AvgPool1d(3, 2, padding=1), nn.Conv1d(8, 6, 3, dilation=2), nn.GELU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 3)).to(dtype)


def _sequences(n=20, length=24, seed=0):
    """Two channels of noisy sines; the class is the frequency band."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    t = np.linspace(0, 1, length)
    waves = np.sin(2 * np.pi * (1 + 3 * y)[:, None, None] * t + rng.uniform(0, 6, (n, 2, 1)))
    return (waves + 0.3 * rng.normal(size=waves.shape)).reshape(n, -1), y


def test_a_1d_cnn_from_torch_computes_and_trains_as_torch(torch):
    """from_torch of a 1-D CNN: the same outputs, loss and gradients (the network's
    backward against torch's autograd and against torch_layer's functional forms), then
    three full-batch SGD steps of fit against torch.optim.SGD."""
    twin = _torch_cnn(torch, torch.float64)
    model = cr.io.from_torch(twin, input_shape=(2, 24))
    assert [type(la).__name__ for la, _ in model.layers][1:5] == [
        "Conv1D", "BatchNorm1d", "ReLU", "MaxPool1D"]
    X, y = _sequences()
    twin.train()
    logits = twin(torch.tensor(X.reshape(len(X), 2, 24)))
    loss_t = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss_t.backward()
    loss, grads = model.loss_and_grads(X, y)
    assert abs(loss - loss_t.item()) < 1e-12
    torch_grads = [p.grad.numpy() for p in twin.parameters()]
    for (name, g), ref in zip(grads.items(), torch_grads, strict=True):
        ref = ref.T if g.ndim == 2 else ref
        assert rel_diff(g, ref) < TOL, name
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X, np.eye(3)[y])
    assert abs(loss - ref_loss) < 1e-12
    for name in grads:
        assert rel_diff(grads[name], ref_grads[name]) < TOL, name
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(3):
        cr.fit(model, X, y, optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=len(X), rng=0,
               progress=False, diagnostics=False)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(X.reshape(len(X), 2, 24))),
                                          torch.tensor(y)).backward()
        optimizer.step()
    for name, ref in zip(model.params, twin.parameters(), strict=True):
        ref = ref.detach().numpy()
        ours = model.params[name]
        assert rel_diff(ours, ref.T if ours.ndim == 2 else ref) < 1e-9, name


def test_a_1d_cnn_learns_saves_loads_and_runs_in_onnxruntime(tmp_path, torch):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = _sequences(n=90, seed=1)
    model = cr.io.from_torch(_torch_cnn(torch, torch.float32), input_shape=(2, 24))
    history = cr.fit(model, X, y, optimizer=cr.Adam(lr=1e-2), epochs=25, batch_size=30, rng=0,
                     progress=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert cr.evaluate(model, X, y)["accuracy"] > 0.9
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in loaded.layers] == [repr(la) for la, _ in model.layers]
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    convs = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
             for node in proto.graph.node if node.op_type == "Conv"]
    assert [c["kernel_shape"] for c in convs] == [[5], [3], [3]]
    assert [c.get("dilations") for c in convs] == [None, None, [2]]
    assert [node.op_type for node in proto.graph.node].count("Pad") == 1   # replicate
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X.astype(np.float32)})[2]
    diff = np.max(np.abs(logits - model.forward(X.astype(np.float32))))
    print(f"onnxruntime float32: max |logits_onnx - logits_chainrule| = {diff:.2e}")
    assert diff < 1e-4


@pytest.mark.parametrize("layer", [
    AvgPool1D(3, 2, padding=1, ceil_mode=True), AvgPool1D(3, 2, padding=1, ceil_mode=True,
                                                          count_include_pad=False),
    MaxPool1D(3, 2, padding=1, ceil_mode=True), AdaptiveAvgPool1D(4),
    Conv1D(3, 3, 4, padding=2, padding_mode="circular"), Conv1D(3, 3, 3, padding=1,
                                                                padding_mode="reflect")])
def test_onnxruntime_runs_each_option(layer, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    layers = [cr.Unflatten((3, 12)), layer, cr.Flatten()]
    width = int(np.prod(layer.output_shape((3, 12))))
    model = cr.Sequential(layers + [cr.Affine(width, 2)], rng=0, dtype=np.float32)
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path, opset=19)   # (Pad's 'wrap' mode, for circular)
    X = np.random.default_rng(2).normal(size=(5, 36)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X})[2]
    assert np.max(np.abs(logits - model.forward(X))) < 1e-5


def test_files_store_single_numbers_and_rebuild_the_layers():
    assert Conv1D(2, 3, 5, padding=2).get_config() == {
        "in_channels": 2, "out_channels": 3, "kernel_size": 5, "stride": 1, "padding": 2}
    assert Conv1D(2, 4, 3, stride=2, padding=1, dilation=3, groups=2,
                  bias=False, padding_mode="circular").get_config() == {
        "in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1,
        "dilation": 3, "groups": 2, "padding_mode": "circular", "bias": False}
    assert MaxPool1D(2).get_config() == {"kernel_size": 2, "stride": 2}
    assert AvgPool1D(3, 1, 1, True, False).get_config() == {
        "kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": True,
        "count_include_pad": False}
    assert AdaptiveAvgPool1D(4).get_config() == {"output_size": 4}
    for layer in (Conv1D(2, 4, 3, padding="same", groups=2), MaxPool1D(3, 1, 1, ceil_mode=True),
                  AvgPool1D(2, count_include_pad=False), AdaptiveAvgPool1D(2)):
        rebuilt = type(layer)(**layer.get_config())
        assert repr(rebuilt) == repr(layer) and rebuilt.get_config() == layer.get_config()


def test_repr_summary_and_explain_speak_of_sequences():
    assert repr(Conv1D(16, 32, 5, padding=2)) == "Conv1D(16, 32, 5, padding=2)"
    assert repr(Conv1D(4, 8, 3, stride=2, dilation=2, groups=4, bias=False)) == \
        "Conv1D(4, 8, 3, stride=2, dilation=2, groups=4, bias=False)"
    assert repr(Conv1D(4, 8, 4, padding="same", padding_mode="reflect")) == \
        "Conv1D(4, 8, 4, padding='same', padding_mode='reflect')"
    assert repr(MaxPool1D(3, 1, 1, ceil_mode=True)) == \
        "MaxPool1D(3, stride=1, padding=1, ceil_mode=True)"
    assert repr(AvgPool1D(2, count_include_pad=False)) == "AvgPool1D(2, count_include_pad=False)"
    model = cr.Sequential([cr.Unflatten((2, 16)), Conv1D(2, 4, 3, padding=1), cr.ReLU(),
                           MaxPool1D(2), cr.Flatten(), cr.Affine(32, 3)], rng=0)
    summary = model.summary()
    assert "(N, 4, 16)" in summary and "(N, 4, 8)" in summary
    text = model.explain(np.zeros((5, 32)))
    assert "axes N, L" in text and "k taps" in text
    assert model.params["W1"].shape == (4, 2, 3)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: Conv1D(2, 3, (3, 3)), ValueError, r"kernel_size must be an int \(or a tuple of one"),
    (lambda: Conv1D(2, 3, 0), ValueError, "kernel_size"),
    (lambda: Conv1D(2, 3, 3, stride=2, padding="same"), ValueError,
     r"padding='same' needs stride=1 \(as in PyTorch\), got stride=2$"),
    (lambda: Conv1D(2, 3, 3, groups=2), ValueError, "groups must divide"),
    (lambda: Conv1D(2, 3, 3, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda: MaxPool1D(2, padding=2), ValueError, "padding=2 for kernel_size=2"),
    (lambda: AvgPool1D(2.5), TypeError, "kernel_size must be an integer"),
    (lambda: AdaptiveAvgPool1D((2, 2)), ValueError, "output_size"),
])
def test_bad_settings_are_named(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs_and_shapes_are_named():
    layer = Conv1D(2, 3, 5)
    w, b = np.zeros((3, 2, 5)), np.zeros(3)
    with pytest.raises(ValueError, match="inputs must be a 3-D array"):
        layer.forward(np.zeros((4, 2, 1, 9)), w, b)
    with pytest.raises(ValueError, match="weight must be a 3-D array"):
        layer.forward(np.zeros((4, 2, 9)), np.zeros((3, 2, 1, 5)), b)
    with pytest.raises(ValueError, match=r"weight must have shape \(3, 2, 5\), got \(3, 2, 4\)"):
        layer.forward(np.zeros((4, 2, 9)), np.zeros((3, 2, 4)), b)
    with pytest.raises(ValueError, match="the input's length 3 .* smaller than the kernel's 5"):
        layer.forward(np.zeros((4, 2, 3)), w, b)
    with pytest.raises(ValueError, match="channels on axis 1"):
        layer.forward(np.zeros((4, 3, 9)), w, b)
    with pytest.raises(ValueError, match=r"d_out must have shape \(4, 3, 5\)"):
        layer.forward(np.zeros((4, 2, 9)), w, b)
        layer.backward(np.zeros((4, 3, 1, 5)))
    with pytest.raises(ValueError, match="inputs must be a 3-D array"):
        MaxPool1D(2).forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="the input's length 1 .* smaller than the kernel's 2"):
        AvgPool1D(2).forward(np.zeros((4, 2, 1)))
    with pytest.raises(ValueError, match="sequences"):
        cr.Sequential([cr.Unflatten((2, 3, 4)), Conv1D(2, 3, 3), cr.Flatten(),
                       cr.Affine(6, 2)], rng=0)
    with pytest.raises(ValueError, match="input_shape=.* or .C, L. for sequences"):
        pytest.importorskip("torch")
        import torch
        cr.io.from_torch(torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(),
                                             torch.nn.Linear(4, 2)))


def test_from_torch_refuses_what_the_pools_do_not_take(torch):
    nn = torch.nn
    with pytest.raises(ValueError, match="dilation"):
        cr.io.from_torch(nn.Sequential(nn.MaxPool1d(2, dilation=2), nn.Flatten(),
                                       nn.Linear(4, 2)), input_shape=(1, 8))
    with pytest.raises(ValueError, match="return_indices"):
        cr.io.from_torch(nn.Sequential(nn.MaxPool1d(2, return_indices=True), nn.Flatten(),
                                       nn.Linear(4, 2)), input_shape=(1, 8))


@pytest.mark.parametrize("k, length", [(40, 80), (2000, 2000), (33, 100), (64, 130)])
def test_long_windows_pooled_as_rows_match_torch(k, length, torch):
    """Windows of 32 taps or more that tile a sequence (global pooling over time) are
    pooled in one reduction (pooling.WHOLE_WINDOW_TAPS); the same values and gradients
    as torch, a tie's gradient to its first maximum, trailing entries no window covers
    left at 0."""
    from chainrule.pooling import WHOLE_WINDOW_TAPS

    assert k >= WHOLE_WINDOW_TAPS
    rng = np.random.default_rng(k)
    x = np.round(rng.normal(size=(3, 4, length)), 1)   # (rounded: ties in many windows)
    F = torch.nn.functional
    for layer, ref in ((MaxPool1D(k), lambda t: F.max_pool1d(t, k)),
                       (AvgPool1D(k), lambda t: F.avg_pool1d(t, k))):
        assert layer._whole_windows((3, 4, 1, length)) == (1, length // k)   # (the path)
        out = layer.forward(x)
        d_out = rng.normal(size=out.shape)
        ref_out, (ref_dx,) = _torch_grads(torch, ref, [x], d_out)
        assert rel_diff(out, ref_out) < TOL
        assert rel_diff(layer.backward(d_out), ref_dx) < TOL


def test_global_pooling_of_images_as_rows_matches_torch(torch):
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(5, 3, 7, 7)), 1)
    F = torch.nn.functional
    for layer, ref in ((cr.MaxPool2D(7), lambda t: F.max_pool2d(t, 7)),
                       (cr.AvgPool2D(7), lambda t: F.avg_pool2d(t, 7))):
        out = layer.forward(x)
        d_out = rng.normal(size=out.shape)
        ref_out, (ref_dx,) = _torch_grads(torch, ref, [x], d_out)
        assert out.shape == (5, 3, 1, 1) and rel_diff(out, ref_out) < TOL
        assert rel_diff(layer.backward(d_out), ref_dx) < TOL


def test_a_batch_of_one_sequence_trains_batch_norm_as_torch(torch):
    """BatchNorm1d over (N, C, L) needs two values per channel, not two rows: a last
    batch of one sequence (41 rows in batches of 8) trains, as in PyTorch, while one
    row of (N, C) features is still refused."""
    nn = torch.nn
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(56, 3)).double()
    model = cr.io.from_torch(twin, input_shape=(2, 16))
    X, y = _sequences(n=41, length=16)
    cr.fit(model, X, y, optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=8, shuffle=False,
           progress=False, diagnostics=False)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    Xt, yt = torch.tensor(X.reshape(41, 2, 16)), torch.tensor(y)
    for start in range(0, 41, 8):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(Xt[start:start + 8]),
                                          yt[start:start + 8]).backward()
        optimizer.step()
    for name, ref in zip(model.params, twin.parameters(), strict=True):
        ours, ref = model.params[name], ref.detach().numpy()
        assert rel_diff(ours, ref.T if ours.ndim == 2 else ref) < 1e-10, name
    flat = cr.Sequential([cr.Affine(32, 4), cr.BatchNorm1d(4), cr.Affine(4, 3)], rng=0)
    with pytest.raises(ValueError, match=r"a batch of 1 .* needs at least 2 rows"):
        cr.fit(flat, X, y, optimizer=cr.SGD(), epochs=1, batch_size=8, progress=False)


def test_wording_speaks_of_sequences():
    with pytest.raises(ValueError, match=r"padding must be an int, 'same' or 'valid', got "
                                         r"'SAME'"):
        Conv1D(2, 3, 3, padding="SAME")
    with pytest.raises(ValueError, match="below the input's length"):
        Conv1D(1, 1, 5, padding=3, padding_mode="reflect").forward(
            np.zeros((1, 1, 3)), np.zeros((1, 1, 5)), np.zeros(1))
    assert AdaptiveAvgPool1D(2).equations[0].startswith("{y} = {x} @ A^T")



@pytest.mark.parametrize("shape, size", [((3, 4, 7), 3), ((2, 3, 10), 4), ((2, 2, 6), 1),
                                         ((2, 2, 3), 7), ((2, 3, 5, 7), (2, 3)),
                                         ((2, 2, 7, 7), 1), ((1, 2, 4, 9), (4, 4))])
def test_adaptive_max_pools_match_torch(shape, size, torch):
    """Overlapping windows (7 into 3), more outputs than inputs, global pooling; ties
    (rounded inputs) go to the first maximum, and an input that is the maximum of two
    windows collects both gradients."""
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    x = np.round(rng.normal(size=shape), 1)
    F = torch.nn.functional
    if len(shape) == 3:
        layer, ref = AdaptiveMaxPool1D(size), lambda t: F.adaptive_max_pool1d(t, size)
    else:
        layer, ref = cr.AdaptiveMaxPool2D(size), lambda t: F.adaptive_max_pool2d(t, size)
    out = layer.forward(x)
    d_out = rng.normal(size=out.shape)
    ref_out, (ref_dx,) = _torch_grads(torch, ref, [x], d_out)
    assert out.shape == ref_out.shape and layer.output_shape(shape[1:]) == out.shape[1:]
    assert rel_diff(out, ref_out) < TOL
    assert rel_diff(layer.backward(d_out), ref_dx) < TOL


def test_adaptive_max_pools_in_from_torch_files_and_onnx(tmp_path, torch):
    ort = pytest.importorskip("onnxruntime")
    nn = torch.nn
    torch.manual_seed(1)
    twin = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool1d(4),
                         nn.Conv1d(6, 5, 2), nn.AdaptiveMaxPool1d(1), nn.Flatten(),
                         nn.Linear(5, 3))
    model = cr.io.from_torch(twin, input_shape=(2, 12))
    X = np.random.default_rng(0).normal(size=(7, 24)).astype(np.float32)
    with torch.no_grad():
        ref = twin(torch.tensor(X.reshape(7, 2, 12))).numpy()
    assert np.max(np.abs(model.forward(X) - ref)) < 1e-5
    cr.io.save(model, tmp_path / "m.npz")
    assert repr(cr.io.load(tmp_path / "m.npz").layers[3][0]) == "AdaptiveMaxPool1D(4)"
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert np.max(np.abs(session.run(None, {"X": X})[2] - model.forward(X))) < 1e-5
    with pytest.raises(ValueError, match="return_indices"):
        cr.io.from_torch(nn.Sequential(nn.AdaptiveMaxPool1d(2, return_indices=True),
                                       nn.Flatten(), nn.Linear(2, 2)), input_shape=(1, 4))
    odd = cr.Sequential([cr.Unflatten((1, 7)), AdaptiveMaxPool1D(3), cr.Flatten(),
                         cr.Affine(3, 2)], rng=0, dtype=np.float32)
    with pytest.raises(ValueError, match="ONNX has no adaptive pooling"):
        cr.io.export_onnx(odd, tmp_path / "odd.onnx")


@pytest.mark.parametrize("make, ref, shape", [
    (lambda: MaxPool1D(32, ceil_mode=True),
     lambda F, t: F.max_pool1d(t, 32, ceil_mode=True), (3, 2, 70)),
    (lambda: AvgPool1D(32, ceil_mode=True),
     lambda F, t: F.avg_pool1d(t, 32, ceil_mode=True), (3, 2, 70)),
    (lambda: cr.MaxPool2D(8, ceil_mode=True),
     lambda F, t: F.max_pool2d(t, 8, ceil_mode=True), (2, 1, 5, 5)),
])
def test_a_partial_last_window_of_many_taps_as_torch(make, ref, shape, torch):
    """ceil_mode's last window reaches past the input: forward pads, so the windows of
    the padded input tile it, but backward must not take them as rows (a review found
    it returned the padded input's gradient, 96 wide for 70)."""
    x = np.round(np.random.default_rng(3).normal(size=shape), 1)
    layer = make()
    out = layer.forward(x)
    d_out = np.random.default_rng(4).normal(size=out.shape)
    ref_out, (ref_dx,) = _torch_grads(torch, lambda t: ref(torch.nn.functional, t), [x], d_out)
    assert rel_diff(out, ref_out) < TOL
    assert rel_diff(layer.backward(d_out), ref_dx) < TOL
