"""The normalisation, softmax, convolution, pooling and reshaping layers: the contract
kit in both modes and float32, and PyTorch (forward, backward, running statistics) to
1e-10 in float64 over random shapes, strides and paddings."""

import numpy as np
import pytest

from chainrule.conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, Unflatten
from chainrule.normalization import BatchNorm1d, BatchNorm2d, LayerNorm, Softmax
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch

TOL = 1e-10

# name -> (factory, input shape, parameter shapes, output shape or None)
CONTRACT = {
    "batchnorm1d": (lambda: BatchNorm1d(4), (6, 4), [(4,), (4,)], None),
    "batchnorm1d_ncl": (lambda: BatchNorm1d(3, momentum=0.3), (5, 3, 4), [(3,), (3,)], None),
    "batchnorm2d": (lambda: BatchNorm2d(2, eps=1e-3), (3, 2, 4, 5), [(2,), (2,)], None),
    "layernorm": (lambda: LayerNorm(5), (6, 5), [(5,), (5,)], None),
    "layernorm_2d": (lambda: LayerNorm((3, 4)), (5, 2, 3, 4), [(3, 4), (3, 4)], None),
    "layernorm_no_affine": (lambda: LayerNorm(5, elementwise_affine=False), (6, 5), [], None),
    "layernorm_no_bias": (lambda: LayerNorm((3, 4), bias=False), (5, 2, 3, 4), [(3, 4)], None),
    "softmax": (Softmax, (5, 4), [], None),
    "softmax_channels": (Softmax, (3, 4, 2, 2), [], None),
    "conv": (lambda: Conv2D(2, 3, 3, padding=1), (3, 2, 5, 5), [(3, 2, 3, 3), (3,)],
             (3, 3, 5, 5)),
    "conv_strided": (lambda: Conv2D(1, 2, (2, 3), stride=(2, 1)), (2, 1, 6, 5),
                     [(2, 1, 2, 3), (2,)], (2, 2, 3, 3)),
    "conv_same_even": (lambda: Conv2D(2, 3, (4, 3), padding="same", bias=False),
                       (2, 2, 5, 6), [(3, 2, 4, 3)], (2, 3, 5, 6)),
    "maxpool": (lambda: MaxPool2D(2), (3, 2, 6, 6), [], (3, 2, 3, 3)),
    "maxpool_overlapping": (lambda: MaxPool2D(3, stride=1), (2, 2, 5, 4), [], (2, 2, 3, 2)),
    "maxpool_padded": (lambda: MaxPool2D(3, 2, padding=1), (2, 2, 5, 4), [], (2, 2, 3, 2)),
    "avgpool_padded": (lambda: AvgPool2D(2, padding=1), (2, 2, 5, 4), [], (2, 2, 3, 3)),
    "avgpool": (lambda: AvgPool2D(3, 2), (3, 2, 7, 6), [], (3, 2, 3, 2)),
    "maxpool_ceil": (lambda: MaxPool2D(2, ceil_mode=True), (2, 2, 5, 4), [], (2, 2, 3, 2)),
    "avgpool_ceil_padded": (lambda: AvgPool2D(3, 2, padding=1, ceil_mode=True), (2, 2, 6, 5),
                            [], (2, 2, 4, 3)),
    "avgpool_no_pad_count": (lambda: AvgPool2D(2, padding=1, count_include_pad=False),
                             (2, 2, 5, 4), [], (2, 2, 3, 3)),
    "flatten": (Flatten, (5, 2, 3), [], (5, 6)),
    "unflatten": (lambda: Unflatten((2, 3)), (5, 6), [], (5, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_layers_pass_the_contract_kit(name):
    factory, shape, params, out = CONTRACT[name]
    report = check_layer(factory, shape, params, output_shape=out)
    assert report.worst_gradient_error < 1e-6
    assert "float32" in report.checks and "finite differences" in report.checks
    if hasattr(factory(), "buffer_names"):
        assert "eval state" in report.checks and "mode switch" in report.checks


def _torch_grads(torch, fn, arrays, d_out):
    """``fn(*tensors)`` and the gradients of ``sum(out * d_out)`` for each array."""
    tensors = [to_torch(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(to_torch(d_out))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _assert_close(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert rel_diff(a, b) < TOL


def _conv_cases():
    rng = np.random.default_rng(14)
    cases = []
    for _ in range(12):
        k = tuple(int(v) for v in rng.integers(1, 4, size=2))
        s = tuple(int(v) for v in rng.integers(1, 3, size=2))
        p = tuple(int(v) for v in rng.integers(0, 3, size=2))
        hw = tuple(int(kk + rng.integers(0, 5)) for kk in k)
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                      int(rng.integers(1, 5)), hw, k, s, p))
    # Both forms of the weight gradient: per-image products summed (C_out = 2 <= Ho Wo
    # = 64 positions, and 2 <= 4) and one product over the batch (C_out = 5 > 4).
    cases += [(3, 1, 2, (8, 8), (3, 3), (1, 1), (1, 1)), (3, 3, 2, (4, 4), (3, 3), (1, 1), (0, 0)),
              (3, 3, 5, (4, 4), (3, 3), (1, 1), (0, 0))]
    return cases


@pytest.mark.parametrize("n, c_in, c_out, hw, k, s, p", _conv_cases())
def test_conv2d_matches_torch(n, c_in, c_out, hw, k, s, p, rng, torch):
    x = rng.normal(size=(n, c_in) + hw)
    W, b = rng.normal(size=(c_out, c_in) + k), rng.normal(size=c_out)
    layer = Conv2D(c_in, c_out, k, stride=s, padding=p)
    out = layer.forward(x, W, b)
    d_out = rng.normal(size=out.shape)
    ours = layer.backward(d_out)
    ref, grads = _torch_grads(torch, lambda xt, wt, bt: torch.nn.functional.conv2d(
        xt, wt, bt, stride=s, padding=p), (x, W, b), d_out)
    _assert_close((out,) + tuple(ours), [ref] + grads)


@pytest.mark.parametrize("k", [1, 2, 3, 4, (2, 5), (4, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_same_padding_and_no_bias_match_torch(k, bias, rng, torch):
    """padding='same' keeps H x W, with PyTorch's placement of the odd zero (after) for
    even kernels; bias=False takes and returns no bias."""
    x = rng.normal(size=(2, 3, 6, 7))
    layer = Conv2D(3, 4, k, padding="same", bias=bias)
    params = layer.init_params(np.random.default_rng(1), np.float64)
    assert [p.shape for p in params] == [tuple(s) for s in layer.param_shapes()]
    assert len(params) == (2 if bias else 1) == layer.num_params
    out = layer.forward(x, *params)
    assert out.shape == (2, 4, 6, 7)
    d_out = rng.normal(size=out.shape)
    ours = layer.backward(d_out)
    assert len(ours) == 1 + len(params)

    def torch_conv(xt, wt, *bt):
        return torch.nn.functional.conv2d(xt, wt, bt[0] if bt else None, padding="same")
    ref, grads = _torch_grads(torch, torch_conv, (x, *params), d_out)
    _assert_close((out,) + tuple(ours), [ref] + grads)


def test_conv2d_valid_padding_is_zero_and_same_needs_stride_one():
    assert Conv2D(1, 2, 3, padding="valid").pads == ((0, 0), (0, 0))
    assert Conv2D(1, 2, 3, padding="valid").output_shape((1, 5, 5)) == (2, 3, 3)
    with pytest.raises(ValueError, match="padding='same' needs stride=1"):
        Conv2D(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' or 'valid', got 'full'"):
        Conv2D(1, 2, 3, padding="full")
    with pytest.raises(TypeError, match="bias must be True or False"):
        Conv2D(1, 2, 3, bias=0)
    x, W = np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3))
    with pytest.raises(TypeError, match="takes no bias after its weight, got one"):
        Conv2D(1, 2, 3, bias=False).forward(x, W, np.ones(2))
    with pytest.raises(TypeError, match="takes a bias after its weight, got none"):
        Conv2D(1, 2, 3).forward(x, W)


def test_conv2d_without_input_gradient(rng):
    x, W, b = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    full, skipped = Conv2D(3, 4, 3, padding=1), Conv2D(3, 4, 3, padding=1)
    skipped.compute_input_grad = False
    d_out = rng.normal(size=full.forward(x, W, b).shape)
    skipped.forward(x, W, b)
    d_x, d_w, d_b = skipped.backward(d_out)
    assert d_x is None
    _, ref_w, ref_b = full.backward(d_out)
    np.testing.assert_array_equal(d_w, ref_w)
    np.testing.assert_array_equal(d_b, ref_b)


@pytest.mark.parametrize("k, s, p, hw", [(2, None, 0, (6, 6)), (2, None, 0, (7, 5)),
                                         (3, 1, 0, (5, 4)), ((2, 3), (1, 2), 0, (6, 7)),
                                         (3, 2, 0, (9, 8)),
                                         # padded, as ResNet's stem MaxPool2d(3, 2, 1)
                                         (3, 2, 1, (7, 8)), (2, None, 1, (5, 5)),
                                         ((3, 2), (2, 1), (1, 1), (6, 5)), (3, 1, 1, (4, 6))])
def test_pools_match_torch(k, s, p, hw, rng, torch):
    """Padding: -inf for the max (never a window's maximum), zeros counted in the mean
    (PyTorch's count_include_pad=True)."""
    F = torch.nn.functional
    x = rng.normal(size=(2, 3) + hw)
    for layer, fn in ((MaxPool2D(k, s, p), F.max_pool2d), (AvgPool2D(k, s, p), F.avg_pool2d)):
        out = layer.forward(x)
        d_out = rng.normal(size=out.shape)
        ref, grads = _torch_grads(torch, lambda xt, fn=fn: fn(xt, k, s, p), (x,), d_out)
        _assert_close((out, layer.backward(d_out)), [ref] + grads)
    with pytest.raises(ValueError, match="padding must be at most half the kernel"):
        MaxPool2D(2, padding=2)


@pytest.mark.parametrize("k, s", [(2, None), (3, 1), (2, 1)])
def test_maxpool_routes_a_tie_to_one_input_as_torch(k, s, torch):
    # Small integers: most windows hold their maximum several times.
    x = np.random.default_rng(3).integers(0, 3, size=(2, 2, 6, 6)).astype(float)
    layer = MaxPool2D(k, s)
    out = layer.forward(x)
    d_out = np.arange(1.0, out.size + 1).reshape(out.shape)
    d_x = layer.backward(d_out)
    ref, (grad,) = _torch_grads(torch, lambda xt: torch.nn.functional.max_pool2d(xt, k, s),
                                (x,), d_out)
    assert np.array_equal(d_x, grad)
    # Each window's gradient went to exactly one input: nothing is split or duplicated.
    assert d_x.sum() == d_out.sum()


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (8, 3)), (BatchNorm1d, (5, 3, 4)),
                                        (BatchNorm2d, (4, 3, 5, 2))])
def test_batchnorm_matches_torch_with_running_statistics(cls, shape, rng, torch):
    F = torch.nn.functional
    c = shape[1]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    layer = cls(c, eps=1e-4, momentum=0.2)
    running = [torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)]
    for step in range(3):
        layer.training = step < 2   # two training steps, then evaluation
        x = rng.normal(loc=2.0, scale=3.0, size=shape)
        out = layer.forward(x, gamma, beta)
        d_out = rng.normal(size=out.shape)
        ours = layer.backward(d_out)
        ref, grads = _torch_grads(torch, lambda xt, gt, bt: F.batch_norm(
            xt, running[0], running[1], gt, bt, training=layer.training, momentum=0.2,
            eps=1e-4), (x, gamma, beta), d_out)
        _assert_close((out,) + tuple(ours), [ref] + grads)
        _assert_close((layer.running_mean, layer.running_var),
                      [running[0].numpy(), running[1].numpy()])


def test_batchnorm_running_statistics_from_the_definition():
    # PyTorch's convention, restated: r <- 0.9 r + 0.1 batch, unbiased variance.
    x = np.array([[1.0, 10.0], [3.0, 10.0], [8.0, 13.0]])
    bn = BatchNorm1d(2)
    bn.forward(x, np.ones(2), np.zeros(2))
    assert np.allclose(bn.running_mean, 0.1 * np.array([4.0, 11.0]))
    unbiased = np.array([((1 - 4) ** 2 + (3 - 4) ** 2 + (8 - 4) ** 2) / 2, (1 + 1 + 4) / 2])
    assert np.allclose(bn.running_var, 0.9 + 0.1 * unbiased)


@pytest.mark.parametrize("shape, normalized", [((6, 5), 5), ((3, 4, 5), (4, 5)),
                                               ((2, 3, 2, 4), (4,))])
def test_layernorm_matches_torch(shape, normalized, rng, torch):
    dims = (normalized,) if isinstance(normalized, int) else normalized
    x, gamma, beta = (rng.normal(size=shape), rng.normal(size=dims), rng.normal(size=dims))
    layer = LayerNorm(normalized, eps=1e-3)
    assert repr(layer) == f"LayerNorm({dims[0] if len(dims) == 1 else dims}, eps=0.001)"
    out = layer.forward(x, gamma, beta)
    d_out = rng.normal(size=shape)
    ref, grads = _torch_grads(torch, lambda xt, gt, bt: torch.nn.functional.layer_norm(
        xt, dims, gt, bt, eps=1e-3), (x, gamma, beta), d_out)
    _assert_close((out,) + tuple(layer.backward(d_out)), [ref] + grads)


@pytest.mark.parametrize("affine, bias", [(False, True), (True, False)])
def test_layernorm_without_affine_or_bias_matches_torch(affine, bias, rng, torch):
    x, gamma = rng.normal(size=(3, 4, 5)), rng.normal(size=(4, 5))
    layer = LayerNorm((4, 5), elementwise_affine=affine, bias=bias)
    params = (gamma,) if affine else ()
    assert layer.param_names == ("gamma",) * affine and len(layer.param_shapes()) == affine
    assert repr(layer) == ("LayerNorm((4, 5), bias=False)" if affine
                           else "LayerNorm((4, 5), elementwise_affine=False)")
    out = layer.forward(x, *params)
    d_out = rng.normal(size=x.shape)
    ref, grads = _torch_grads(torch, lambda xt, *gt: torch.nn.functional.layer_norm(
        xt, (4, 5), *gt, eps=1e-5), (x, *params), d_out)
    result = layer.backward(d_out)
    _assert_close((out,) + (tuple(result) if affine else (result,)), [ref] + grads)
    with pytest.raises(TypeError, match="takes gamma after its inputs, got 2 arrays" if affine
                       else "takes no parameters after its inputs, got 1 arrays"):
        layer.forward(x, *(params + (gamma,)))


@pytest.mark.parametrize("shape, axis", [((5, 7), 1), ((3, 4, 2), 1), ((3, 4, 2), 2),
                                         ((4, 3), -1), ((3, 4, 2), -2)])
def test_softmax_matches_torch_even_for_huge_inputs(shape, axis, rng, torch):
    x = rng.normal(scale=300.0, size=shape)   # exp would overflow without the shift
    layer = Softmax(axis) if axis != -2 else Softmax(dim=-2)   # PyTorch's name too
    assert layer.axis == axis
    out = layer.forward(x)
    d_out = rng.normal(size=shape)
    ref, grads = _torch_grads(torch, lambda xt: torch.nn.functional.softmax(xt, dim=axis),
                              (x,), d_out)
    assert np.isfinite(out).all()
    _assert_close((out, layer.backward(d_out)), [ref] + grads)


def test_conv2d_reuses_its_im2col_array_in_training_only(rng, torch):
    # In training, a forward writes its im2col matrix into the one the previous
    # forward cached (same shape): the gradients are still those of the latest
    # forward (torch's), outputs handed out earlier are untouched, and outside
    # training (or for another shape) the array is a fresh one.
    W, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    x1, x2, x3 = (rng.normal(size=(2, 3, 6, 5)) for _ in range(3))
    layer = Conv2D(3, 4, 3, padding=1)
    out1 = layer.forward(x1, W, b)
    kept, first = out1.copy(), layer.cache[0]
    out2 = layer.forward(x2, W, b)
    assert np.shares_memory(layer.cache[0], first)  # reused
    np.testing.assert_array_equal(out1, kept)
    d_out = rng.normal(size=out2.shape)
    ref, grads = _torch_grads(torch, lambda xt, wt, bt: torch.nn.functional.conv2d(
        xt, wt, bt, padding=1), (x2, W, b), d_out)
    _assert_close((out2,) + tuple(layer.backward(d_out)), [ref] + grads)
    layer.training = False
    out3 = layer.forward(x3, W, b)
    assert not np.shares_memory(layer.cache[0], first)
    layer.training = True
    layer.forward(x3[:1], W, b)  # another batch size: another array
    assert layer.cache[0].shape[0] == 1
    assert not np.shares_memory(layer.cache[0], first)
    np.testing.assert_allclose(out3, Conv2D(3, 4, 3, padding=1).forward(x3, W, b))


def test_conv2d_im2col_formula_restated():
    # A 1x1 input channel, a 2x2 kernel of ones, stride 1: each output sums a window.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out = Conv2D(1, 1, 2).forward(x, np.ones((1, 1, 2, 2)), np.array([0.5]))
    assert np.array_equal(out[0, 0], [[0 + 1 + 3 + 4 + 0.5, 1 + 2 + 4 + 5 + 0.5],
                                      [3 + 4 + 6 + 7 + 0.5, 4 + 5 + 7 + 8 + 0.5]])


def test_float32_stays_float32_in_every_mode():
    x = np.random.default_rng(0).normal(size=(4, 2, 6, 6)).astype(np.float32)
    bn = BatchNorm2d(2)
    one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
    for training in (True, False):
        bn.training = training
        assert bn.forward(x, one, zero).dtype == np.float32
        assert all(g.dtype == np.float32 for g in bn.backward(np.ones_like(x)))
    conv = Conv2D(2, 3, 3, padding=1)
    w, b = conv.init_params(np.random.default_rng(0), np.float32)
    assert conv.forward(x, w, b).dtype == np.float32


@pytest.mark.parametrize("make, match", [
    (lambda: BatchNorm1d(0), "num_features"),
    (lambda: BatchNorm2d(3, momentum=1.5), "momentum"),
    (lambda: BatchNorm1d(3, eps=-1.0), "eps"),
    (lambda: LayerNorm(()), "normalized_shape"),
    (lambda: Conv2D(1, 2, 0), "kernel_size"),
    (lambda: Conv2D(1, 2, 3, padding=-1), "padding"),
    (lambda: Conv2D(1, 2, (3, 3, 3)), "kernel_size"),
    (lambda: MaxPool2D(2, stride=0), "stride"),
    (lambda: Unflatten(()), "shape"),
])
def test_bad_constructor_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_softmax_axis_must_be_an_int_and_fit_the_inputs():
    with pytest.raises(TypeError, match="axis must be an int, got float 1.5"):
        Softmax(1.5)
    with pytest.raises(ValueError, match=r"axis -3 is out of range for inputs of shape"):
        Softmax(-3).forward(np.zeros((2, 3)))


@pytest.mark.parametrize("layer, args, match", [
    (BatchNorm2d(3), ((2, 4, 5, 5), (3,), (3,)), "3 channels"),
    (BatchNorm1d(3), ((1, 3), (3,), (3,)), "more than one value per channel"),
    (BatchNorm1d(3), ((4, 3), (2,), (3,)), "gamma must have shape"),
    (LayerNorm(4), ((4, 5), (4,), (4,)), "must end in"),
    (Conv2D(2, 3, 3), ((1, 2, 2, 5), (3, 2, 3, 3), (3,)), "smaller than the kernel"),
    (Conv2D(2, 3, 3), ((1, 1, 5, 5), (3, 2, 3, 3), (3,)), "2 channels"),
    (Conv2D(2, 3, 3), ((1, 2, 5, 5), (3, 2, 2, 3), (3,)), "weight must have shape"),
    (MaxPool2D(2), ((2, 3, 5),), "inputs"),
    (Unflatten((2, 3)), ((4, 5),), "6 columns"),
])
def test_bad_inputs_are_refused_naming_the_argument(layer, args, match):
    arrays = [np.ones(s) for s in args]
    with pytest.raises(ValueError, match=match):
        layer.forward(*arrays)


def test_flatten_and_unflatten_take_pytorchs_signatures():
    """A ported model reads as in PyTorch: Flatten(start_dim=1), Unflatten(1, shape)."""
    rows = np.arange(2 * 12.0).reshape(2, 12)
    images = Unflatten(1, (3, 2, 2)).forward(rows)
    assert images.shape == (2, 3, 2, 2)
    assert np.array_equal(images, Unflatten((3, 2, 2)).forward(rows))
    assert np.array_equal(Flatten(start_dim=1, end_dim=-1).forward(images), rows)
    with pytest.raises(ValueError, match=r"start_dim=1, end_dim=-1\), got start_dim=2"):
        Flatten(start_dim=2)
    with pytest.raises(ValueError, match="unflattens dimension 1 .*got dim=2"):
        Unflatten(2, (3, 2, 2))


@pytest.mark.parametrize("options", [{"elementwise_affine": False}, {"bias": False}])
def test_layernorm_options_round_trip_through_model_files_and_onnx(options, tmp_path):
    import onnxruntime as ort

    import chainrule as cr

    model = cr.Sequential([cr.Affine(6, 5), LayerNorm(5, **options), cr.ReLU(),
                           cr.Affine(5, 3)], rng=0, dtype=np.float32)
    assert not any(k.startswith("beta") for k in model.params)
    X = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert repr(loaded.layers[1][0]) == repr(model.layers[1][0])
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    logits = session.run(["logits"], {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(logits, model.forward(X), rtol=0, atol=1e-5)


def test_the_kit_takes_the_output_shape_a_layer_declares():
    """Without output_shape=, check_layer expects what the layer's own output_shape()
    says (a pool halves the image), and still catches a forward that breaks it."""
    report = check_layer(lambda: MaxPool2D(2), (2, 2, 4, 4))
    assert "forward" in report.checks and report.worst_gradient_error < 1e-6

    class Lying(MaxPool2D):
        def output_shape(self, shape):
            return (shape[0], shape[1] // 2 + 1, shape[2] // 2)

    from chainrule.testing import LayerContractError
    with pytest.raises(LayerContractError, match=r"output has shape \(2, 2, 2, 2\), "
                                                 r"expected \(2, 2, 3, 2\)"):
        check_layer(lambda: Lying(2), (2, 2, 4, 4))
