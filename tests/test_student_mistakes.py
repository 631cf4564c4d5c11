"""The mistakes a student makes writing layers, and what the checking tools say about
them: a NaN gradient, integer parameters, a backward that returns the wrong thing
inside a network, a layer that writes into its input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import GradCheckResult
from chainrule.testing import LayerContractError


def _data(n=6, d=4, k=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), np.arange(n) % k


class ScaleShift:
    """out = x * g + c.  Shape: (N, D) -> (N, D). ``bug`` picks a student mistake."""

    param_names = ("g", "c")

    def __init__(self, n, bug=None):
        self.n, self.bug, self.cache = n, bug, None

    def init_params(self, rng, dtype):
        return [np.ones(self.n, dtype), np.zeros(self.n, dtype)]

    def forward(self, x, g, c):
        self.cache = (x, g)
        return x * g + c

    def backward(self, d):
        if self.cache is None:
            raise RuntimeError("backward called before forward")
        x, g = self.cache
        dg, dc = (d * x).sum(axis=0), d.sum(axis=0)
        if self.bug == "nan":
            with np.errstate(invalid="ignore"):
                dc = dc * (np.zeros(1) / np.zeros(1))
        if self.bug == "unsummed":
            dc = d
        if self.bug == "forgot_dc":
            return d * g, dg
        return d * g, dg, dc


def test_a_nan_error_is_the_worst_and_fails():
    result = GradCheckResult(errors={"a": 1e-9, "b": math.nan, "c": 1e-3})
    assert result.worst_name == "b" and math.isnan(result.worst) and not result.passed()
    assert GradCheckResult(errors={"a": 1e-9, "c": 1e-3}).worst_name == "c"


def test_a_nan_gradient_fails_check_gradients_and_check_layer():
    X, y = _data()
    model = cr.Sequential([cr.Affine(4, 3), ScaleShift(3, "nan"), cr.Affine(3, 3)], rng=0)
    result = cr.check_gradients(model, X, y, rng=0)
    assert result.worst_name == "c2" and not result.passed()
    with pytest.raises(LayerContractError) as err:
        cr.check_layer(lambda: ScaleShift(3, "nan"), (4, 3), [(3,), (3,)])
    text = str(err.value)
    assert "gradient of c holds NaN (backward computes 0/0" in text
    assert "it passed at" not in text   # the second batch size is not claimed to pass
    assert "two backward passes with the same d_out differ" not in text   # NaN == NaN


def test_integer_parameters_are_refused_rather_than_casting_the_inputs():
    model = cr.LogisticRegression(2, 2)
    model.params["W"] = np.array([[1, 0], [0, 1]])
    model.params["b"] = np.array([0, 0])
    with pytest.raises(TypeError, match=r"params\['W'\] must be a floating-point ndarray, "
                                        r"got dtype int64"):
        model.predict(np.array([[0.9, 0.1]]))


@pytest.mark.parametrize("bug, error, message", [
    ("unsummed", ValueError, r"ScaleShift.backward: the gradient of c2 has shape \(6, 3\), "
                             r"but c2 has shape \(3,\) \(a sum over the batch's rows missing"),
    ("forgot_dc", TypeError, r"ScaleShift.backward must return \(d_inputs, d_g2, d_c2\) "
                             r"\(its parameters are \['g2', 'c2'\]\), got 2 values")])
def test_a_layer_returning_the_wrong_gradients_is_named_in_a_network(bug, error, message):
    X, y = _data()
    model = cr.Sequential([cr.Affine(4, 3), ScaleShift(3, bug), cr.Affine(3, 3)], rng=0)
    with pytest.raises(error, match=message):
        model.loss_and_grads(X, y)


def test_a_parameter_free_layer_returning_a_tuple_is_named():
    class Passthrough:
        def forward(self, x):
            return x

        def backward(self, d):
            return (d,)

    X, y = _data()
    model = cr.Sequential([cr.Affine(4, 3), Passthrough(), cr.Affine(3, 3)], rng=0)
    with pytest.raises(TypeError, match="Passthrough.backward must return the gradient of "
                                        "its inputs, an ndarray .* got tuple"):
        model.loss_and_grads(X, y)


def test_check_gradients_says_when_a_layer_writes_into_x():
    class ReluInPlace:
        def __init__(self):
            self.in_features, self.cache = 4, None

        def forward(self, x):
            self.cache = x > 0
            np.maximum(x, 0, out=x)   # the student's bug: the caller's X changes
            return x

        def backward(self, d):
            return d * self.cache

    X, y = _data()
    model = cr.Sequential([ReluInPlace(), cr.Affine(4, 3)], rng=0)
    with pytest.raises(ValueError, match="a layer changed X in place"):
        cr.check_gradients(model, X, y, rng=0)
    with pytest.raises(LayerContractError, match="ReluInPlace breaks the layer contract") as err:
        cr.check_layer(ReluInPlace, (5, 4))
    assert "forward modified its inputs in place" in str(err.value)
    assert " at 0x" not in str(err.value)   # named by its class, not its address


def test_explain_and_summary_do_not_guess_for_a_layer_of_your_own():
    class Dup:   # (N, D) -> (N, 2D), and says nothing about it
        def forward(self, x):
            self.cache = x.shape[1]
            return np.concatenate([x, x], axis=1)

        def backward(self, d):
            return d[:, :self.cache] + d[:, self.cache:]

    class Square(cr.layers.Layer):   # inherits Layer's template equations
        def forward(self, x):
            self.cache = x
            return x * x

        def backward(self, d):
            return 2 * self.cache * d

    model = cr.Sequential([cr.Affine(4, 4), Dup(), cr.Affine(8, 3), Square()], rng=0)
    summary = model.summary()
    assert "H1 = Dup           (N, 4)?" in summary
    assert ("?: a layer without output_shape(input_shape), shown with its input's shape, or "
            "its first weight's width") in summary
    text = model.explain(np.zeros((2, 4)))
    assert "H1 = Dup(Z1) : (N, 4) -> (N, 8)" in text   # explain runs it: the real shape
    assert "H2 = Square(Z2)" in text and "dZ2 = Square.backward(dH2)[inputs]" in text
    assert "= f(" not in text


def test_explain_shows_the_smoothed_targets_a_loss_trains_toward():
    model = cr.Sequential([cr.Affine(4, 3)], loss=cr.CategoricalCrossEntropy(
        label_smoothing=0.1), rng=0)
    text = model.explain(np.zeros((2, 4)))
    assert "(Ys = (1 - 0.1) Y + 0.1 / K)" in text and "dZ1 = (softmax(Z1) - Ys) / N" in text
    plain = cr.Sequential([cr.Affine(4, 3)], rng=0).explain(np.zeros((2, 4)))
    assert "dZ1 = (softmax(Z1) - Y) / N" in plain and "Ys" not in plain


class _Dropout:
    """A student's dropout: ``mistake`` 'always' drops in evaluation mode too, 'global'
    draws from NumPy's global generator."""

    def __init__(self, mistake):
        self.p, self.mistake, self.training, self.cache = 0.5, mistake, True, None
        self.rng = np.random.default_rng(0) if mistake == "always" else None

    def forward(self, x):
        if not self.training and self.mistake == "global":
            self.cache = np.ones_like(x)
            return x.copy()
        draw = self.rng.random if self.rng is not None else np.random.random
        self.cache = (draw(x.shape) >= self.p) / (1 - self.p)
        return x * self.cache

    def backward(self, d):
        if self.cache is None:
            raise RuntimeError("backward called before forward")
        return d * self.cache


@pytest.mark.parametrize("mistake, message", [
    ("always", "[eval rows independent] two forward passes in evaluation mode differ: "
               "outside training the output must not be random"),
    ("global", "two forward passes on the same data differ: the layer draws random numbers "
               "from a generator the check cannot hold still (NumPy's global one")])
def test_check_layer_says_what_is_wrong_with_a_students_dropout(mistake, message):
    with pytest.raises(LayerContractError) as err:
        cr.check_layer(lambda: _Dropout(mistake), (5, 4))
    assert message in str(err.value)


def _step_by_hand(model, X, y, X_val=None):
    """forward, [an evaluation forward on X_val], loss, backward: the gradients."""
    z = model.forward(X, training=True)
    if X_val is not None:
        model.forward(X_val)
    model.loss.forward(z, y)
    return model.backward(model.loss.backward(1.0)[0])


@pytest.mark.parametrize("val_rows", [16, 4], ids=["same_batch_size", "smaller_batch"])
def test_a_validation_forward_between_forward_and_backward_changes_no_gradient(val_rows):
    # The PyTorch habit: logits = model(X); model(X_val) for a validation loss; then
    # backward. The training forward's caches must survive the forward in between
    # (before, the gradients silently came from the validation rows' activations, or
    # a batch of another size failed inside NumPy's matmul).
    rng = np.random.default_rng(0)
    X, y, X_val = rng.standard_normal((16, 8)), rng.integers(0, 3, 16), \
        rng.standard_normal((val_rows, 8))
    model = cr.MLP([8, 5, 3], dropout=0.3, rng=0)
    twin = copy.deepcopy(model)   # the same weights and dropout generator
    grads = _step_by_hand(model, X, y, X_val)
    expected = _step_by_hand(twin, X, y)
    for k in expected:
        assert np.array_equal(grads[k], expected[k]), k
    # After that backward, an evaluation forward is differentiated as usual.
    model.forward(X_val)
    model.loss.forward(model.forward(X_val), y[:val_rows])
    by_hand = model.backward(model.loss.backward(1.0)[0])
    _, direct = model.loss_and_grads(X_val, y[:val_rows], training=False)
    for k in direct:
        assert np.allclose(by_hand[k], direct[k], rtol=1e-12, atol=0), k


class ReLUAtZero(cr.ReLU):
    """A student's ReLU whose mask counts 0 as positive: finite differences pass it."""

    def forward(self, inputs):
        self.cache = inputs >= 0
        return np.maximum(inputs, 0)


class ReLUOwn(cr.ReLU):
    """The same student's corrected ReLU."""

    def forward(self, inputs):
        self.cache = inputs > 0
        return np.maximum(inputs, 0)


class MaxPoolEveryTie(cr.MaxPool2D):
    """A max-pool routing a tie's gradient to every tied maximum (not PyTorch's first)."""

    def backward(self, d_out):
        index, shape, hw = self.cache
        x = self.inputs
        windows = x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2)
        top = windows.max(axis=(3, 5), keepdims=True)
        return ((windows == top) * d_out[:, :, :, None, :, None]).reshape(x.shape)

    def forward(self, inputs):
        self.inputs = inputs
        return super().forward(inputs)


def test_check_layer_against_a_reference_catches_the_kink_and_the_tie():
    assert cr.check_layer(ReLUAtZero, (5, 3)).worst_gradient_error < 1e-6  # blind at 0
    with pytest.raises(LayerContractError, match=r"\[reference\] d_inputs differs from the "
                                                 r"reference's at \(0, 0\) \(input 0.0: a "
                                                 r"kink\?\): -?\d.\d+ against -?0.0"):
        cr.check_layer(ReLUAtZero, (5, 3), reference=cr.ReLU)
    report = cr.check_layer(ReLUOwn, (5, 3), reference=cr.ReLU)
    assert "reference" in report.checks
    with pytest.raises(LayerContractError, match=r"\[reference\] d_inputs differs"):
        cr.check_layer(lambda: MaxPoolEveryTie(2), (2, 2, 4, 4), output_shape=(2, 2, 2, 2),
                       reference=lambda: cr.MaxPool2D(2))


def test_compare_layers_names_a_parameter_gradient():
    from chainrule.gradcheck import compare_layers

    class HalfBias(cr.Affine):
        def backward(self, d_out):
            d_x, d_w, d_b = super().backward(d_out)
            return d_x, d_w, d_b / 2

    x, w, b = np.ones((3, 2)), np.ones((2, 4)), np.zeros(4)
    problems = compare_layers(HalfBias(), cr.Affine(), x, w, b)
    assert len(problems) == 1 and problems[0].startswith("d_b differs from the reference's")
    assert compare_layers(cr.Affine(), cr.Affine(), x, w, b) == []


def test_check_layer_names_a_reference_given_as_a_layer():
    with pytest.raises(TypeError, match=r"reference must build a fresh layer on each call "
                                        r"\(the class, or e.g. lambda: ReLU\(\.\.\.\)\), got "
                                        r"the layer ReLU\(\) itself"):
        cr.check_layer(cr.ReLU, (4, 3), reference=cr.ReLU())


def test_compare_layers_names_a_broken_reference_and_checks_tol():
    from chainrule.gradcheck import compare_layers

    class Boom(cr.ReLU):
        def forward(self, inputs):
            raise RuntimeError("boom")

    class InPlace(cr.ReLU):   # the right function, then it scribbles over its input
        def forward(self, inputs):
            self.cache = inputs > 0
            out = np.maximum(inputs, 0)
            inputs[...] = 5.0
            return out

    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(ValueError, match="the reference's forward failed: RuntimeError: boom"):
        compare_layers(cr.ReLU(), Boom(), x)
    with pytest.raises(TypeError, match="reference must be a layer .* got NoneType"):
        compare_layers(cr.ReLU(), None, x)
    with pytest.raises(ValueError, match="tol must be a finite number > 0, got inf"):
        compare_layers(cr.ReLU(), cr.ReLU(), x, tol=np.inf)
    # Each layer gets its own copy of the inputs: the reference does not see the change.
    assert compare_layers(InPlace(), cr.ReLU(), x) == []


def test_a_networks_loss_checks_what_a_hand_written_loop_gives_it():
    # A PyTorch habit: loss = model.loss.forward(out, y) with y of shape (N,) for one
    # output. The network's own paths check Y at their entry and skip the loss's
    # checks; a hand-written loop's call keeps them (it broadcast (N, 1) against (N,)).
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=5)
    net = cr.Sequential([cr.Affine(3, 1)], loss="huber", rng=0)
    out = net.forward(X, training=True)
    with pytest.raises(ValueError, match="targets must be a 2-D array"):
        net.loss.forward(out, y)
    loss = net.loss.forward(out, y[:, None])
    assert loss == net.loss_and_grads(X, y[:, None])[0]
    assert net.loss.validate   # the fast paths put the checks back
    clf = cr.MLP([3, 4, 4], rng=0)
    with pytest.raises(ValueError, match="class"):
        clf.loss.forward(clf.forward(X), np.array([0, 1, 9, 2, 3]))


def test_summary_marks_a_guessed_shape_of_a_layer_with_weights():
    # A residual block (16 -> 16) whose first weight is (16, 32): the Affine-like guess
    # says 32; the summary must not state it as known (a PyTorch user's audit).
    class Residual:
        param_names = ("Wa", "Wb")

        def init_params(self, rng, dtype):
            return [np.zeros((16, 32), dtype), np.zeros((32, 16), dtype)]

        def forward(self, x, a, b):
            self.cache = x
            return x + np.maximum(x @ a, 0) @ b

        def backward(self, d):
            return d, np.zeros((16, 32)), np.zeros((32, 16))

    summary = cr.Sequential([cr.Affine(4, 16), Residual(), cr.Affine(16, 3)], rng=0).summary()
    assert "(N, 32)?" in summary and "or its first weight's width" in summary


def test_fit_runs_its_loss_without_the_per_call_checks():
    # The other half of the test above: fit checks Y once, then skips the loss's own
    # checks at every step (its speed), and leaves them on afterwards.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    model = cr.MLP([3, 4, 3], rng=0)
    seen, forward = [], model.loss.forward

    def spy(*args, **kwargs):
        seen.append(model.loss.validate)
        return forward(*args, **kwargs)
    model.loss.forward = spy
    cr.fit(model, X, y, optimizer="adam", epochs=2, batch_size=8, validation_fraction=0.2,
           progress=False)
    assert len(seen) > 8 and not any(seen) and model.loss.validate
