"""The pools' ``ceil_mode`` and ``count_include_pad``, against PyTorch's ``MaxPool2d`` and
``AvgPool2d`` (forward and backward, float64), finite differences, model files and
onnxruntime, including the shapes where PyTorch's rule for the last window (it must
start inside the input or its left padding) drops the window ONNX's own ceil_mode
would keep."""

import itertools

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_layer_gradients
from chainrule.pooling import AvgPool2D, MaxPool2D

SHAPES = [(7, 7), (8, 5), (6, 9)]


def _cases():
    """(class, H, W, kernel, stride, padding, ceil_mode, count_include_pad or None)."""
    for (h, w), k, s, p, ceil, count_pad in itertools.product(
            SHAPES, [2, 3], [1, 2, 3], [0, 1], [False, True], [True, False]):
        if 2 * p > k:   # PyTorch's limit on the padding
            continue
        if count_pad:
            yield MaxPool2D, h, w, k, s, p, ceil, None
        yield AvgPool2D, h, w, k, s, p, ceil, count_pad


CASES = list(_cases())


def _pool(cls, k, s, p, ceil, count_pad):
    kw = {"ceil_mode": ceil} if count_pad is None else {"ceil_mode": ceil,
                                                         "count_include_pad": count_pad}
    return cls(k, s, p, **kw), kw


def test_the_cases_cover_what_the_options_change():
    # ceil_mode adds a window on some shapes, and PyTorch's rule takes it back on others.
    grown = dropped = 0
    for cls, h, _, k, s, p, ceil, count_pad in CASES:
        if not ceil:
            continue
        floor = (h + 2 * p - k) // s + 1
        ceil_size = -(-(h + 2 * p - k) // s) + 1
        size = _pool(cls, k, s, p, True, count_pad)[0].output_shape((1, h, h))[1]
        grown += size > floor
        dropped += size < ceil_size
    assert grown > 10 and dropped > 5


@pytest.mark.parametrize("cls, h, w, k, s, p, ceil, count_pad", CASES)
def test_pools_match_torch_forward_and_backward(cls, h, w, k, s, p, ceil, count_pad, torch):
    pool, kw = _pool(cls, k, s, p, ceil, count_pad)
    x = np.random.default_rng(h * 100 + w + k).standard_normal((2, 3, h, w))
    ref = (torch.nn.MaxPool2d if cls is MaxPool2D else torch.nn.AvgPool2d)(k, s, p, **kw)
    xt = torch.tensor(x, requires_grad=True)
    out_t = ref(xt)
    out = pool.forward(x)
    assert out.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=1e-12)
    d = np.random.default_rng(1).standard_normal(out.shape)
    out_t.backward(torch.tensor(d))
    np.testing.assert_allclose(pool.backward(d), xt.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pool", [MaxPool2D(2, ceil_mode=True),
                                  MaxPool2D(3, 2, 1, ceil_mode=True),
                                  AvgPool2D(3, 2, 1, ceil_mode=True),
                                  AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False),
                                  AvgPool2D(2, 1, 1, count_include_pad=False)],
                         ids=repr)
def test_finite_differences(pool):
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    result = check_layer_gradients(pool, x)
    assert result.worst < 1e-7, str(result)


def test_model_files_keep_the_options_and_leave_old_configs_as_they_were(tmp_path):
    model = cr.Sequential([cr.Unflatten((1, 7, 7)), MaxPool2D(2, ceil_mode=True),
                           AvgPool2D(2, 1, 1, count_include_pad=False), cr.Flatten(),
                           cr.Affine(25, 3)], rng=0)
    assert repr(model.layers[1][0]) == "MaxPool2D(2, ceil_mode=True)"
    assert repr(model.layers[2][0]) == "AvgPool2D(2, stride=1, padding=1, count_include_pad=False)"
    assert "ceil_mode" not in MaxPool2D(2).get_config()
    assert "count_include_pad" not in AvgPool2D(2).get_config()
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    X = np.random.default_rng(0).standard_normal((5, 49))
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.layers[1][0].ceil_mode and not loaded.layers[2][0].count_include_pad


@pytest.mark.parametrize("make, exc, match", [
    (lambda: MaxPool2D(2, ceil_mode="yes"), TypeError, "ceil_mode"),
    (lambda: AvgPool2D(2, count_include_pad=1), TypeError, "count_include_pad"),
])
def test_bad_options(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("cls, h, w, k, s, p, ceil, count_pad",
                         [c for c in CASES if c[6] and c[0] is AvgPool2D or c[:7] == (
                             MaxPool2D, 7, 7, 2, 2, 1, True)])
def test_onnx_export_matches_onnxruntime(tmp_path, cls, h, w, k, s, p, ceil, count_pad):
    import onnxruntime as ort

    pool = _pool(cls, k, s, p, ceil, count_pad)[0]
    _, ho, wo = pool.output_shape((1, h, w))
    model = cr.Sequential([cr.Unflatten((1, h, w)), pool, cr.Flatten(), cr.Affine(ho * wo, 2)],
                          loss="mse", rng=0, dtype=np.float32)
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    X = np.random.default_rng(0).standard_normal((4, h * w)).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(out, model.predict(X), rtol=0, atol=2e-6)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("hw", [(1, 1), (1, 2), (2, 3), (1, 5)])
def test_ceil_mode_on_images_smaller_than_the_kernel_as_torch(cls, hw, torch):
    # A hostile-arguments audit: PyTorch's ceil_mode keeps a window on an image shorter
    # than the kernel where its rule allows one; refused exactly where PyTorch refuses.
    checked = 0
    for k, s, p in itertools.product([2, 3, 4], [1, 2, 3], [0, 1, 2]):
        if 2 * p > k:
            continue
        x = np.random.default_rng(k * 10 + s).standard_normal((1, 2, *hw))
        xt = torch.tensor(x, requires_grad=True)
        ref = (torch.nn.MaxPool2d if cls is MaxPool2D else torch.nn.AvgPool2d)(
            k, s, p, ceil_mode=True)
        try:
            out_t = ref(xt)
        except RuntimeError:
            with pytest.raises(ValueError, match="smaller than the kernel"):
                cls(k, s, p, ceil_mode=True).forward(x)
            continue
        pool = cls(k, s, p, ceil_mode=True)
        out = pool.forward(x)
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=1e-12)
        d = np.random.default_rng(1).standard_normal(out.shape)
        out_t.backward(torch.tensor(d))
        np.testing.assert_allclose(pool.backward(d), xt.grad.numpy(), rtol=0, atol=1e-12)
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("cls, hw", [(MaxPool2D, (1, 2)), (AvgPool2D, (1, 5)),
                                     (AvgPool2D, (2, 3))])
def test_onnx_export_of_a_ceil_mode_pool_on_an_image_shorter_than_its_kernel(tmp_path, cls, hw):
    import onnxruntime as ort

    pool = cls(3, 2, 1, ceil_mode=True) if hw != (1, 2) else cls(2, 2, ceil_mode=True)
    _, ho, wo = pool.output_shape((1, *hw))
    model = cr.Sequential([cr.Unflatten((1, *hw)), pool, cr.Flatten(), cr.Affine(ho * wo, 2)],
                          loss="mse", rng=0, dtype=np.float32)
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    X = np.random.default_rng(0).standard_normal((4, hw[0] * hw[1])).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(out, model.predict(X), rtol=0, atol=2e-6)
