"""What a PyTorch user writes first: torch's names on a network and an optimizer get an
AttributeError that says what chainrule does instead, torch's optimizer call and a
torch state_dict are refused with the way to do it, and parameter groups are two
optimizers (checked against torch's AdamW with two groups)."""

import numpy as np
import pytest

import chainrule as cr
from conftest import rel_diff


def test_torch_names_on_a_network_and_an_optimizer_say_what_to_do():
    model, opt = cr.MLP([4, 8, 3], rng=0), cr.Adam(lr=1e-3)
    with pytest.raises(AttributeError, match=r"'MLP' object has no attribute 'eval': .*"
                                             r"forward\(X, training=True\)"):
        model.eval()
    with pytest.raises(AttributeError, match="the dict model.params"):
        model.parameters()
    with pytest.raises(AttributeError, match="nothing to zero"):
        opt.zero_grad()
    with pytest.raises(AttributeError, match="two optimizers"):
        getattr(opt, "param_groups")  # noqa: B009
    with pytest.raises(AttributeError, match=r"^'MLP' object has no attribute 'nonsense'$"):
        getattr(model, "nonsense")  # noqa: B009
    assert not hasattr(model, "train") and hasattr(model, "params")


@pytest.mark.parametrize("make", [lambda m: cr.SGD(m.params, lr=0.1),
                                  lambda m: cr.Adam(iter(m.params.values()), lr=1e-3),
                                  lambda m: cr.SGD(m.params)])
def test_torch_optimizer_call_is_refused_with_the_way_to_build_one(make):
    with pytest.raises(TypeError, match="takes no parameters, unlike a torch.optim"):
        make(cr.MLP([4, 3], rng=0))


def test_an_optimizer_of_ones_own_may_take_other_settings_before_lr():
    class Milestones(cr.SGD):
        def __init__(self, milestones, lr=0.1):
            super().__init__(lr=lr)
            self.milestones = list(milestones)

    assert Milestones([10, 20], lr=0.5).lr == 0.5


def test_a_torch_state_dict_points_to_from_torch(torch):
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model = cr.MLP([4, 8, 3], rng=0)
    with pytest.raises(ValueError, match=r"unexpected keys \['0.bias'.*cr.io.from_torch"):
        model.load_state_dict({k: v.detach().numpy() for k, v in net.state_dict().items()})
    with pytest.raises(ValueError) as info:   # chainrule's own names: no torch advice
        model.load_state_dict({"W1": model.params["W1"], "extra": np.zeros(1)})
    assert "from_torch" not in str(info.value)


def test_two_optimizers_are_torchs_two_parameter_groups(torch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                              torch.nn.Linear(7, 3)).double()
    model = cr.io.from_torch(net)
    decayed = [p for n, p in net.named_parameters() if n.endswith("weight")]
    plain = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt_t = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                               {"params": plain, "weight_decay": 0.0}], lr=0.05)
    weights, biases = cr.AdamW(lr=0.05, weight_decay=0.1), cr.AdamW(lr=0.05, weight_decay=0.0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    for _ in range(10):
        _, grads = model.loss_and_grads(X, y)
        for opt, first in ((weights, "W"), (biases, "b")):
            names = [k for k in model.params if k.startswith(first)]
            opt.step({k: model.params[k] for k in names}, {k: grads[k] for k in names})
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt_t.step()
    assert rel_diff(model.params["W1"], net[0].weight.detach().numpy().T) < 1e-12
    assert rel_diff(model.params["b2"], net[2].bias.detach().numpy()) < 1e-12
