"""Hardtanh and ReLU6, as torch's: the contract kit, torch's values and gradients on
inputs at and around the bounds, files, from_torch and ONNX (Clip)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch


@pytest.mark.parametrize("make", [cr.ReLU6, lambda: cr.Hardtanh(-2.5, 0.5)])
def test_contract_kit(make):
    assert check_layer(make, (6, 5)).worst_gradient_error < 1e-6


@pytest.mark.parametrize("layer, ref", [
    (cr.ReLU6(), lambda F, t: F.relu6(t)),
    (cr.Hardtanh(), lambda F, t: F.hardtanh(t)),
    (cr.Hardtanh(-2.5, 0.5), lambda F, t: F.hardtanh(t, -2.5, 0.5)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_gradients_match_torch_at_the_bounds_too(layer, ref, dtype, torch):
    x = np.concatenate([np.random.default_rng(0).normal(size=30) * 4,
                        [-2.5, -1.0, 0.0, 0.5, 1.0, 6.0, 7.0]]).astype(dtype)[None, :]
    out = layer.forward(x)
    d_out = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    xt = to_torch(x, requires_grad=True)
    expected = ref(torch.nn.functional, xt)
    expected.backward(to_torch(d_out))
    assert out.dtype == dtype
    assert rel_diff(out, expected.detach().numpy()) == 0
    assert rel_diff(layer.backward(d_out), xt.grad.numpy()) < 1e-7


def test_files_from_torch_and_onnx(tmp_path, torch):
    nn = torch.nn
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU6(), nn.Linear(8, 8), nn.Hardtanh(-0.5, 2.0),
                         nn.Linear(8, 3)).double()
    model = cr.io.from_torch(twin)
    X = np.random.default_rng(2).normal(size=(9, 4)) * 5
    with torch.no_grad():
        assert rel_diff(model.forward(X), twin(torch.tensor(X)).numpy()) < 1e-14
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in back.layers][1::2] == ["ReLU6()",
                                                         "Hardtanh(min_val=-0.5, max_val=2.0)"]
    ort = pytest.importorskip("onnxruntime")
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert rel_diff(session.run(None, {"X": X})[2], model.forward(X)) < 1e-14
    with pytest.raises(ValueError, match="min_val must be below max_val"):
        cr.Hardtanh(1.0, 1.0)
