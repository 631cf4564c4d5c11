"""GroupNorm: the contract kit and finite differences, torch.nn.functional.group_norm
to 1e-10 in float64 (values and every gradient, 2-D to 4-D inputs, one group to one
per channel), a restatement (one group per channel of a (N, C) input is 0; one group
is a LayerNorm over (C, *)), a CNN from from_torch trained as torch's, model files,
ONNX and refusals."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.groupnorm import GroupNorm
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch

TOL = 1e-10


@pytest.mark.parametrize("make, shape, params", [
    (lambda: GroupNorm(2, 4), (3, 4), [(4,), (4,)]),
    (lambda: GroupNorm(3, 6, eps=1e-3), (2, 6, 5), [(6,), (6,)]),
    (lambda: GroupNorm(1, 4, affine=False), (2, 4, 3, 3), []),
    (lambda: GroupNorm(4, 4), (2, 4, 3, 2), [(4,), (4,)]),
])
def test_the_contract_kit_and_finite_differences(make, shape, params):
    report = check_layer(make, shape, params)
    assert report.worst_gradient_error < 1e-6 and "finite differences" in report.checks


@pytest.mark.parametrize("shape, groups, affine", [
    ((3, 6, 5, 4), 2, True), ((4, 6), 3, True), ((2, 4, 7), 4, False), ((2, 4, 7), 1, True),
    ((5, 8, 3, 3), 8, True), ((2, 6, 2, 3), 6, False)])
def test_values_and_gradients_match_torch(shape, groups, affine, torch):
    layer = GroupNorm(groups, shape[1], affine=affine)
    rng = np.random.default_rng(sum(shape) + groups)
    x = rng.normal(size=shape) * 3 + 1
    params = [rng.normal(size=shape[1]) for _ in layer.param_names]
    out = layer.forward(x, *params)
    d_out = rng.normal(size=out.shape)
    grads = layer.backward(d_out)
    tensors = [to_torch(a, requires_grad=True) for a in (x, *params)]
    ref = torch.nn.functional.group_norm(tensors[0], groups,
                                         *(tensors[1:] if affine else (None, None)))
    ref.backward(to_torch(d_out))
    assert rel_diff(out, ref.detach().numpy()) < TOL
    for ours, t in zip(grads if affine else (grads,), tensors, strict=True):
        assert rel_diff(ours, t.grad.numpy()) < TOL


def test_restatements():
    """One group per channel of (N, C) inputs: each group is one entry, normalised to
    0 (as torch computes it); one group: a LayerNorm over each sample's (C, *)
    entries."""
    x = np.random.default_rng(0).normal(size=(4, 3, 5))
    assert np.all(GroupNorm(3, 3, affine=False).forward(x[:, :, 0]) == 0)
    np.testing.assert_allclose(GroupNorm(1, 3, affine=False).forward(x),
                               cr.LayerNorm((3, 5), elementwise_affine=False).forward(x),
                               rtol=1e-13, atol=1e-15)


def test_a_cnn_from_torch_trains_as_torchs(torch, tmp_path):
    nn = torch.nn
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64, 3)).double()
    model = cr.io.from_torch(twin, input_shape=(1, 4, 4))
    assert repr(model.layers[2][0]) == "GroupNorm(2, 4)"
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 16)), rng.integers(0, 3, 12)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(3):
        cr.fit(model, X, y, optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=12,
               progress=False, diagnostics=False)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(X.reshape(12, 1, 4, 4))),
                                          torch.tensor(y)).backward()
        optimizer.step()
    for name, ref in zip(model.params, twin.parameters(), strict=True):
        ours, ref = model.params[name], ref.detach().numpy()
        assert rel_diff(ours, ref.T if ours.ndim == 2 else ref) < 1e-10, name
    cr.io.save(model, tmp_path / "m.npz")
    back = cr.io.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("layers, width", [
    ([cr.Unflatten((6, 4, 3)), GroupNorm(3, 6), cr.Flatten()], 72),
    ([cr.Affine(5, 6), GroupNorm(2, 6, affine=False, eps=1e-3)], 6),
])
def test_onnxruntime_runs_it(layers, width, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = cr.Sequential(layers + [cr.Affine(width, 3)], rng=0)
    X = np.random.default_rng(2).normal(size=(7, model.n_features))
    for dtype in (np.float64, np.float32):
        cr.io.export_onnx(model, tmp_path / "g.onnx", dtype=dtype)
        session = ort.InferenceSession(str(tmp_path / "g.onnx"),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {"X": X.astype(dtype)})[1]
        assert np.max(np.abs(got - model.predict_proba(X))) < (1e-14 if dtype == np.float64
                                                               else 1e-6)


@pytest.mark.parametrize("make, error, match", [
    (lambda: GroupNorm(4, 6), ValueError, "num_groups must divide num_channels"),
    (lambda: GroupNorm(0, 6), ValueError, "num_groups"),
    (lambda: GroupNorm(2, 6, eps=-1.0), ValueError, "eps"),
    (lambda: GroupNorm(2, 4).forward(np.zeros((3, 6)), np.ones(4), np.zeros(4)), ValueError,
     "4 channels on axis 1"),
    (lambda: GroupNorm(2, 4).forward(np.zeros((3, 4)), np.ones(3), np.zeros(4)), ValueError,
     r"gamma must have shape \(4,\)"),
    (lambda: cr.Sequential([cr.Unflatten((3, 2)), GroupNorm(2, 4), cr.Flatten(),
                            cr.Affine(6, 2)], rng=0), ValueError, r"inputs \(N, 4, \*\)"),
])
def test_refusals_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_explain_fills_in_groupnorms_equations():
    for affine in (True, False):
        model = cr.Sequential([cr.Affine(4, 4), GroupNorm(2, 4, affine=affine),
                               cr.Affine(4, 3)], rng=0)
        text = model.explain(np.ones((2, 4)))
        assert "{" not in text
        assert ("dgamma2 = sum(dH2 * xhat, all axes but C) : (4,)" in text) == affine
        assert "dZ1 = s/m * (m " in text
