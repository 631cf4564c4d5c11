"""Dropout1d and Dropout2d (channel dropout, as torch's): each sample's channel kept or
dropped whole, the kept scaled by 1/(1-p); the contract kit, the drop rate, torch given
the same mask, identity outside training, files, from_torch and ONNX (left out)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch


@pytest.mark.parametrize("make, shape", [(lambda: cr.Dropout1d(0.4, rng=3), (5, 4, 6)),
                                         (lambda: cr.Dropout2d(0.4, rng=3), (5, 4, 3, 2))])
def test_contract_kit(make, shape):
    report = check_layer(make, shape)
    assert report.worst_gradient_error < 1e-6


@pytest.mark.parametrize("cls, shape", [(cr.Dropout1d, (400, 8, 5)),
                                        (cr.Dropout2d, (400, 8, 3, 3))])
def test_whole_channels_are_dropped_at_rate_p_and_scaled(cls, shape, torch):
    layer = cls(0.3, rng=0)
    x = np.random.default_rng(1).uniform(1, 2, size=shape)
    out = layer.forward(x)
    per_channel = (out / x).reshape(shape[0], shape[1], -1)
    assert np.all(per_channel.std(axis=2) < 1e-12)                  # one value a channel
    values = np.unique(np.round(per_channel[:, :, 0], 12))
    np.testing.assert_allclose(values, [0.0, 1 / 0.7])
    dropped = np.mean(per_channel[:, :, 0] == 0)
    assert abs(dropped - 0.3) < 4 * np.sqrt(0.3 * 0.7 / (shape[0] * shape[1]))
    d_out = np.random.default_rng(2).normal(size=shape)
    xt = to_torch(x, requires_grad=True)
    kind, mask = layer.cache
    (xt * to_torch(np.array(mask))).backward(to_torch(d_out))   # torch, given the mask
    assert rel_diff(layer.backward(d_out), xt.grad.numpy()) < 1e-15
    layer.training = False
    assert layer.forward(x) is x


def test_files_from_torch_and_onnx(tmp_path, torch):
    nn = torch.nn
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Dropout2d(0.25), nn.ReLU(),
                         nn.Flatten(), nn.Linear(48, 2))
    model = cr.io.from_torch(twin, input_shape=(1, 4, 4), rng=0)
    assert repr(model.layers[2][0]) == "Dropout2d(p=0.25)"
    X = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)
    with torch.no_grad():
        twin.eval()
        ref = twin(torch.tensor(X.reshape(6, 1, 4, 4))).numpy()
    assert np.max(np.abs(model.forward(X) - ref)) < 1e-5
    cr.io.save(model, tmp_path / "m.npz")
    assert repr(cr.io.load(tmp_path / "m.npz").layers[2][0]) == "Dropout2d(p=0.25)"
    ort = pytest.importorskip("onnxruntime")
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert np.max(np.abs(session.run(None, {"X": X})[2] - model.forward(X))) < 1e-5
    with pytest.raises(ValueError, match=r"takes images \(N, C, H, W\)"):
        cr.Sequential([cr.Unflatten((2, 3)), cr.Dropout2d(0.5), cr.Flatten(),
                       cr.Affine(6, 2)], rng=0)
