"""A PyTorch user's habit of reusing module objects: one ``nn.ReLU()`` at two places,
a block shared with a second model, a nested ``nn.Sequential``. In chainrule a layer
keeps its forward pass for its backward and its network owns its parameters, so each
of these is refused with a message saying what to do, before anything changes; the
network built as the message says trains with PyTorch's gradients."""

from __future__ import annotations

import copy
import gc
import pickle

import numpy as np
import pytest

import chainrule as cr
from conftest import torch_network_loss_and_grads


def _data(n=8, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("shared", [cr.ReLU(), cr.Tanh(), cr.BatchNorm1d(6), cr.Affine(6, 6)])
def test_one_layer_object_at_two_places_is_refused(shared):
    with pytest.raises(ValueError, match=rf"layers\[3\] is the same {type(shared).__name__} "
                                         rf"object as layers\[1\]: .* a layer of its own"):
        cr.Sequential([cr.Affine(4, 6), shared, cr.Affine(6, 6), shared, cr.Affine(6, 3)],
                      rng=0)


def _assert_pytorchs_gradients(model):
    X, y = _data()
    Y = np.eye(3)[y]
    loss, grads = model.loss_and_grads(X, Y)
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X, Y)
    assert abs(loss - ref_loss) < 1e-12
    for k, g in grads.items():
        np.testing.assert_allclose(g, ref_grads[k], rtol=1e-10, atol=1e-14)


def test_a_layer_per_place_has_pytorchs_gradients():
    _assert_pytorchs_gradients(cr.Sequential([cr.Affine(4, 6), cr.ReLU(), cr.Affine(6, 6),
                                              cr.ReLU(), cr.Affine(6, 3)], rng=0))


def test_a_layer_of_a_live_network_is_refused_and_the_first_network_keeps_working():
    X, y = _data()
    body = cr.Affine(4, 4)
    student = cr.Sequential([cr.Affine(4, 4), cr.ReLU(), body, cr.Affine(4, 3)], rng=0)
    before = student.loss_and_grads(X, y)
    with pytest.raises(ValueError, match=r"layers\[0\] \(Affine\(4, 4\)\) is already a layer "
                                         r"of another network.*copy\.deepcopy\(layer\)"):
        cr.Sequential([body, cr.Affine(4, 3)], rng=1)
    assert body.compute_input_grad   # the refused network changed nothing
    after = student.loss_and_grads(X, y)
    assert after[0] == before[0]
    for k in before[1]:
        np.testing.assert_array_equal(after[1][k], before[1][k])
    # a copy is a layer of its own; once the first network is gone, so is its claim
    probe = cr.Sequential([copy.deepcopy(body), cr.Affine(4, 3)], rng=1)
    assert probe.n_features == 4
    del student, probe
    gc.collect()
    assert cr.Sequential([body, cr.Affine(4, 3)], rng=1).n_features == 4


def test_a_nested_network_is_refused_naming_the_way_out():
    block = cr.Sequential([cr.Affine(4, 5), cr.ReLU()], rng=0)
    with pytest.raises(TypeError, match=r"layers\[0\] is a network \(Sequential\), which "
                                        r"does not nest in another"):
        cr.Sequential([block, cr.Affine(5, 3)], rng=0)


def test_a_copy_of_a_first_layer_computes_its_input_gradient_elsewhere():
    # A network's first layer with parameters skips its input gradient; a copy of it
    # placed deeper in another network must compute it again.
    first = cr.Affine(4, 4)
    cr.Sequential([first, cr.ReLU(), cr.Affine(4, 3)], rng=0)
    assert not first.compute_input_grad
    _assert_pytorchs_gradients(cr.Sequential([cr.Affine(4, 4), cr.ReLU(),
                                              copy.deepcopy(first), cr.Affine(4, 3)], rng=0))


def test_layers_of_a_network_that_failed_to_build_are_free():
    affine, relu = cr.Affine(4, 5), cr.ReLU()
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(N, 5\)") as failed:
        cr.Sequential([affine, relu, cr.Affine(6, 3)], rng=0)
    # (the traceback, kept as a REPL keeps it, holds the half-built network alive)
    assert failed.value.__traceback__ is not None
    assert cr.Sequential([affine, relu, cr.Affine(5, 3)], rng=0).n_features == 4


def test_a_network_built_from_pairs_refuses_one_layer_at_two_places_too():
    from chainrule.losses import CategoricalCrossEntropy
    from chainrule.network import Network

    relu = cr.ReLU()
    params = {"W1": np.zeros((4, 3)), "b1": np.zeros(3), "W2": np.zeros((3, 3)),
              "b2": np.zeros(3)}
    with pytest.raises(ValueError, match=r"layers\[3\] is the same ReLU object as layers\[1\]"):
        Network([(cr.Affine(), ("W1", "b1")), (relu, ()), (cr.Affine(), ("W2", "b2")),
                 (relu, ())], params, CategoricalCrossEntropy())


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copied_or_unpickled_network_owns_its_layers(duplicate):
    X, y = _data()
    twin = duplicate(cr.Sequential([cr.Affine(4, 4), cr.ReLU(), cr.Affine(4, 3)], rng=0))
    with pytest.raises(ValueError, match="already a layer of another network"):
        cr.Sequential([twin.layers[2][0], cr.ReLU(), cr.Affine(3, 2)], rng=0)
    assert np.isfinite(twin.loss_and_grads(X, y)[0])   # its backward still whole


def test_a_layer_whose_shape_hook_raises_leaves_the_others_free():
    class Broken:
        def output_shape(self, shape):
            return (shape[0] // shape[1],)   # IndexError on a (D,) shape

        def forward(self, x):
            return x

        def backward(self, d):
            return d

    affine = cr.Affine(4, 4)
    with pytest.raises(IndexError) as failed:
        cr.Sequential([affine, Broken(), cr.Affine(4, 3)], rng=0)
    assert failed.value.__traceback__ is not None
    assert cr.Sequential([affine, cr.ReLU(), cr.Affine(4, 3)], rng=0).n_features == 4


def test_a_layer_that_always_computes_its_input_gradient_builds_anywhere():
    class Always(cr.Affine):
        compute_input_grad = property(lambda self: True)   # read-only

    model = cr.Sequential([cr.Affine(4, 4), cr.ReLU(), Always(4, 3)], rng=0)
    assert model.layers[2][0].compute_input_grad
    _assert_pytorchs_gradients(model)


class _TwoWeights:
    """A custom layer whose parameter names end in digits: 'W1' at place 2 is 'W12'."""

    param_names = ("W1", "W2")

    def __init__(self, n):
        self.n, self.cache = n, None

    def init_params(self, rng, dtype):
        return [np.eye(self.n, dtype=dtype), np.eye(self.n, dtype=dtype)]

    def forward(self, x, w1, w2):
        self.cache = (x, w1, w2)
        return x + x @ w1 @ w2

    def backward(self, d):
        x, w1, w2 = self.cache
        return d + d @ (w1 @ w2).T, x.T @ (d @ w2.T), (x @ w1).T @ d


def test_parameter_names_that_would_collide_are_refused():
    # Layer 1's 'W1' numbered 2 and the twelfth Affine's 'W' numbered 12 are both 'W12':
    # one array would have served both (a PyTorch user's audit found the tied weights).
    import chainrule as cr

    with pytest.raises(ValueError, match=r"layers 1 and 11 would both hold 'W12' \('W1' and "
                                         r"'W' numbered by their places\): give _TwoWeights "
                                         r"\(layer 1\) names that do not end in a digit"):
        cr.Sequential([cr.Affine(4, 4), _TwoWeights(4)] + [cr.Affine(4, 4) for _ in range(12)],
                      rng=0)
    model = cr.Sequential([cr.Affine(4, 4), _TwoWeights(4), cr.Affine(4, 3)], rng=0)
    assert list(model.params) == ["W1", "b1", "W12", "W22", "W3", "b3"]
