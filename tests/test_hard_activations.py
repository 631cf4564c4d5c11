"""Hardsigmoid and Hardswish, as torch's: the contract kit, torch's values to the last
bit and its gradients on inputs at and around the corners -3 and 3, files, from_torch
and ONNX (composed of Add, Clip, Mul and Div in the graph's dtype)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.testing import check_layer
from conftest import rel_diff

CORNERS = [-3.0, 3.0, -3.5, 3.5, 0.0, -2.999, 2.999, -6.0, 6.0]


@pytest.mark.parametrize("make", [cr.Hardsigmoid, cr.Hardswish])
def test_contract_kit(make):
    assert check_layer(make, (6, 5)).worst_gradient_error < 1e-6


def test_slopes_at_the_corners_as_derived():
    # Hardsigmoid: 1/6 strictly inside (-3, 3), 0 elsewhere; Hardswish: x/3 + 1/2 inside,
    # 1 from 3 on, 0 up to -3 (torch's choice at the corners).
    x = np.array([[-3.0, 3.0, -4.0, 4.0, 0.0, 1.5]])
    sig, swish = cr.Hardsigmoid(), cr.Hardswish()
    assert sig.forward(x).tolist() == [[0.0, 1.0, 0.0, 1.0, 0.5, 0.75]]
    assert swish.forward(x).tolist() == [[-0.0, 3.0, -0.0, 4.0, 0.0, 1.125]]
    assert sig.backward(np.ones_like(x)).tolist() == [[0, 0, 0, 0, 1 / 6, 1 / 6]]
    assert swish.backward(np.ones_like(x)).tolist() == [[0, 1, 0, 1, 0.5, 1.0]]


@pytest.mark.parametrize("layer, ref", [
    (cr.Hardsigmoid(), lambda F, t: F.hardsigmoid(t)),
    (cr.Hardswish(), lambda F, t: F.hardswish(t)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_gradients_match_torch_at_the_corners_too(layer, ref, dtype, torch):
    x = np.concatenate([np.random.default_rng(0).normal(size=2000) * 4,
                        CORNERS]).astype(dtype)[None, :]
    out = layer.forward(x)
    d_out = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)   # in x's own dtype: float32 compared as such
    expected = ref(torch.nn.functional, xt)
    expected.backward(torch.tensor(d_out))
    assert out.dtype == dtype
    assert rel_diff(out, expected.detach().numpy()) == 0
    assert rel_diff(layer.backward(d_out), xt.grad.numpy()) < 1e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_files_from_torch_and_onnx(tmp_path, torch, dtype):
    nn = torch.nn
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Linear(4, 8), nn.Hardswish(), nn.Linear(8, 8), nn.Hardsigmoid(),
                         nn.Linear(8, 3)).to(torch.float64 if dtype == np.float64
                                             else torch.float32)
    model = cr.io.from_torch(twin)
    X = (np.random.default_rng(2).normal(size=(40, 4)) * 5).astype(dtype)
    with torch.no_grad():
        assert rel_diff(model.forward(X), twin(torch.from_numpy(X)).numpy()) < (
            1e-14 if dtype == np.float64 else 1e-6)
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in back.layers][1::2] == ["Hardswish()", "Hardsigmoid()"]
    assert rel_diff(back.forward(X), model.forward(X)) == 0
    ort = pytest.importorskip("onnxruntime")
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X})[2]
    assert got.dtype == dtype
    assert rel_diff(got, model.forward(X)) < (1e-14 if dtype == np.float64 else 1e-6)
