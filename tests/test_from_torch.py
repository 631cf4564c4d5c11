"""``chainrule.io.from_torch``: a PyTorch nn.Sequential as a chainrule Sequential.

PyTorch is the oracle here twice over: the converted model must compute what the
torch model computes (outputs in evaluation mode, loss and every gradient in training
mode, by torch's autograd), and keep computing it through chainrule's own training.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.io import from_torch


def _torch_grads_by_chainrule_name(torch, net, model):
    """The torch module's gradients under chainrule's names (a Linear's weight
    transposed): its parameters, module by module, are the params' order."""
    tensors = []
    for m in net.modules():
        for name, t in m.named_parameters(recurse=False):
            g = t.grad.detach().numpy()
            tensors.append(g.T if isinstance(m, torch.nn.Linear) and name == "weight" else g)
    return dict(zip(model.params, tensors, strict=True))


def _mlp(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.0),
                         nn.Sequential(nn.Linear(8, 7), nn.GELU(approximate="tanh")),
                         nn.BatchNorm1d(7, momentum=None), nn.Linear(7, 5, bias=False),
                         nn.LeakyReLU(0.2), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 6),
                         nn.SiLU(), nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 4),
                         nn.ELU(alpha=0.5), nn.Linear(4, 4), nn.Softplus(beta=1.5, threshold=2.0),
                         nn.Linear(4, 3))


def _cnn(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, bias=False),
        nn.AvgPool2d(2, padding=1, count_include_pad=False), nn.Identity(),
        nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(24, 5),
        nn.LayerNorm(5, elementwise_affine=False), nn.Linear(5, 3))


def _warm_statistics(torch, net, shape):
    """A few training-mode passes, so the running statistics are not their start values."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.randn(*shape, generator=gen, dtype=next(net.parameters()).dtype) * 2 + 1)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_converted_model_computes_what_torch_computes(kind, torch, rng):
    net = (_mlp if kind == "mlp" else _cnn)(torch).double()
    image = (2, 7, 7)
    shape = (9, 6) if kind == "mlp" else (9, *image)
    _warm_statistics(torch, net, shape)
    model = from_torch(net, input_shape=None if kind == "mlp" else image)
    assert model.dtype == np.float64
    X = rng.normal(size=shape)
    rows = X.reshape(len(X), -1)
    labels = rng.integers(0, 3, size=len(X))

    net.eval()   # running statistics
    np.testing.assert_allclose(model.forward(rows), net(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    net.train()  # batch statistics, and every gradient by torch's autograd
    net.zero_grad()
    out = net(torch.from_numpy(X))
    torch.nn.functional.cross_entropy(out, torch.from_numpy(labels)).backward()
    loss, grads = model.loss_and_grads(rows, labels)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(
        out, torch.from_numpy(labels))), rel=1e-12)
    expected = _torch_grads_by_chainrule_name(torch, net, model)
    for name, g in grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # the running statistics moved as torch's did in that training-mode pass, each
    # layer's as its own module's
    norms = [m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm1d,
                                                        torch.nn.BatchNorm2d))]
    layers = [layer for layer, _ in model.layers if getattr(layer, "buffer_names", ())]
    assert len(norms) == len(layers) > 0
    for m, layer in zip(norms, layers, strict=True):
        for own in layer.buffer_names:
            np.testing.assert_allclose(getattr(layer, own), getattr(m, own).numpy(),
                                       rtol=1e-12, err_msg=own)


def test_float32_models_stay_float32_and_match_to_float32_rounding(torch, rng):
    net = _cnn(torch)
    _warm_statistics(torch, net, (5, 2, 7, 7))
    net.eval()
    model = from_torch(net, input_shape=(2, 7, 7))
    assert model.dtype == np.float32 and all(p.dtype == np.float32 for p in
                                             model.params.values())
    X = rng.normal(size=(5, 2, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(model.forward(X.reshape(5, -1)),
                               net(torch.from_numpy(X)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert from_torch(net, input_shape=(2, 7, 7), dtype=np.float64).dtype == np.float64


def test_the_arrays_are_copies_and_the_model_trains_saves_and_loads(torch, rng, tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    model = from_torch(net)
    assert sorted(model.params) == ["W1", "W2", "b1", "b2"]
    np.testing.assert_array_equal(model.params["W1"], before["0.weight"].numpy().T)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    history = cr.fit(model, X, y, optimizer="adam", epochs=30, progress=False, rng=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for k, v in net.state_dict().items():   # training chainrule's left torch's alone
        assert torch.equal(v, before[k]), k
    cr.io.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(cr.io.load(tmp_path / "m.npz").forward(X), model.forward(X))


def test_unconvertible_models_are_named(torch):
    nn = torch.nn

    class Net(nn.Module):
        def forward(self, x):
            return x

    class MyLinear(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(TypeError, match="must be a torch.nn.Sequential.*got Net"):
        from_torch(Net())
    with pytest.raises(TypeError, match=r"module\[1\]\[0\] is torch.*Embedding.*no layer"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Embedding(4, 2))))
    with pytest.raises(TypeError, match=r"module\[0\] is a subclass of torch.nn.Linear"):
        from_torch(nn.Sequential(MyLinear(3, 4)))
    with pytest.raises(ValueError, match=r"module\[1\].*dilation=2.*no chainrule"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, dilation=2)),
                   input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"module\[0\].*divisor_override"):
        from_torch(nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), input_shape=(1, 4, 4))
    for net in (nn.Sequential(nn.Conv2d(1, 2, 3)),   # after shape-keeping modules too
                nn.Sequential(nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(1, 2, 3))):
        with pytest.raises(ValueError, match=r"takes images first: give input_shape"):
            from_torch(net)
    with pytest.raises(ValueError, match=r"module\[2\] \(Affine\(8, 3\)\) cannot take "
                                         r"inputs of shape \(N, 18\).*input_shape=\(1, 5, 5\)"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)),
                   input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="dim=None"):
        from_torch(nn.Sequential(nn.Linear(3, 2), nn.Softmax()))
    with pytest.raises(ValueError, match=r"module\[0\] \(Dropout\(p=1.5, inplace=False\)\): "
                                         r"p must be in \[0.0, 1.0\], got 1.5"):
        bad = nn.Dropout(0.5)
        bad.p = 1.5   # (torch checks p only when the module is built)
        from_torch(nn.Sequential(bad, nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="the model has no parameters"):
        from_torch(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match=r"input_shape must be the shape of one sample.*got 5"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3)), input_shape=5)
    with pytest.raises(ValueError, match=r"module\[1\] \(Softmax\(axis=0\)\) cannot take "
                                         r"inputs.*axis 0 is the batch's"):
        from_torch(nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=0)))


def test_a_module_at_two_places_runs_at_both_and_shared_parameters_are_refused(torch, rng):
    nn = torch.nn
    act = nn.Tanh()   # one activation object twice: torch's forward runs it twice
    net = nn.Sequential(nn.Linear(5, 6), act, nn.Linear(6, 6), act, nn.Linear(6, 3)).double()
    model = from_torch(net)
    assert [type(layer).__name__ for layer, _ in model.layers] == [
        "Affine", "Tanh", "Affine", "Tanh", "Affine"]
    X = rng.normal(size=(4, 5))
    np.testing.assert_allclose(model.forward(X), net(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-12)
    lin = nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"module\[2\] shares a parameter or running "
                                         r"statistic with module\[0\]"):
        from_torch(nn.Sequential(lin, nn.ReLU(), lin))
    norm = nn.BatchNorm1d(4, affine=False)   # buffers only: shared statistics
    with pytest.raises(ValueError, match=r"module\[3\] shares a parameter or running "
                                         r"statistic with module\[1\]"):
        from_torch(nn.Sequential(nn.Linear(4, 4), norm, nn.Linear(4, 4), norm))
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight   # tied weights
    with pytest.raises(ValueError, match=r"module\[2\] shares a parameter.*tied"):
        from_torch(nn.Sequential(a, nn.Tanh(), b))


def test_what_changes_a_forward_beyond_its_settings_is_refused(torch):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    handle = net[1].register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(TypeError, match=r"module\[1\] has forward hooks"):
        from_torch(net)
    handle.remove()
    from_torch(net)   # without the hook it converts
    net.register_forward_pre_hook(lambda m, i: i)
    with pytest.raises(TypeError, match=r"^module has forward hooks"):
        from_torch(net)
    wn = torch.nn.utils.parametrizations.weight_norm(nn.Linear(5, 6))
    with pytest.raises(TypeError, match=r"module\[0\] has parametrized tensors \(weight\)"
                                        r".*remove_parametrizations"):
        from_torch(nn.Sequential(wn, nn.ReLU(), nn.Linear(6, 3)))
    with pytest.raises(TypeError, match=r"module\[0\] is a lazy module.*forward pass"):
        from_torch(nn.Sequential(nn.LazyLinear(3)))
    for pool in (nn.AdaptiveMaxPool2d((None, 3)), nn.AdaptiveAvgPool2d((None, 3))):
        with pytest.raises(ValueError, match=r"module\[1\] .*an output size of None "
                                             r"\(the input's size on that axis\)"):
            from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), pool, nn.Flatten()),
                       input_shape=(1, 8, 8))


def test_frozen_parameters_are_said_to_train(torch):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    net[0].requires_grad_(False)
    with pytest.warns(UserWarning, match=r"module\[0\] hold parameters with "
                                         r"requires_grad=False.*trains every parameter"):
        model = from_torch(net)
    assert sorted(model.params) == ["W1", "W2", "b1", "b2"]
