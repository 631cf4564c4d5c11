"""The checkers themselves: they measure what they claim, restore what they touch, and
catch broken gradients and broken layers."""

import numpy as np
import pytest

from chainrule.gradcheck import (
    check_gradients,
    check_layer_gradients,
    numerical_gradient,
    relative_error,
)
from chainrule.layers import Affine, Layer, ReLU
from chainrule.models import MLP
from chainrule.testing import LayerContractError, check_layer
from conftest import random_one_hot


# -- numerical_gradient and relative_error ------------------------------------------------
def test_numerical_gradient_of_known_functions(rng):
    x = rng.normal(size=(3, 4))
    # d/dx sum(x^3) = 3 x^2; central differences are exact for polynomials up to
    # degree 2 and have error eps^2 * f'''/6 = eps^2 for x^3: ~1e-12.
    g = numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-7, atol=1e-8)
    # d/dx sum(sin(x) * c) = cos(x) * c.
    c = rng.normal(size=(3, 4))
    g = numerical_gradient(lambda: float(np.sum(np.sin(x) * c)), x)
    np.testing.assert_allclose(g, np.cos(x) * c, rtol=1e-7, atol=1e-8)
    assert g.dtype == np.float64 and g.shape == x.shape


def test_numerical_gradient_restores_exactly():
    # 1e-20 + 1e-6 - 1e-6 is 0, not 1e-20: undoing the step arithmetically would lose
    # it. The saved value is written back instead.
    x = np.array([0.1, 1e-20, 12345.6789, -3.3])
    assert (1e-20 + 1e-6) - 1e-6 != 1e-20
    before = x.copy()
    numerical_gradient(lambda: float(np.sum(x ** 2)), x)
    assert x.tobytes() == before.tobytes()


def test_numerical_gradient_restores_when_f_raises():
    x = np.array([1.0, 2.0])
    calls = []

    def f():
        calls.append(x.copy())
        if len(calls) == 2:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0])
    # It perturbed the entry in place (f saw x + eps, then x - eps).
    assert calls[0][0] == 1.0 + 1e-6 and calls[1][0] == 1.0 - 1e-6


def test_numerical_gradient_selected_indices():
    x = np.arange(6.0).reshape(2, 3)
    g = numerical_gradient(lambda: float(np.sum(x ** 2)), x, indices=[(0, 1), (1, 2)])
    np.testing.assert_allclose(g, [[0, 2, 0], [0, 0, 10]], atol=1e-6)


def test_numerical_gradient_divides_by_the_step_taken_and_warns_below_float64():
    """x + eps rounds in the array's dtype: float32's 1 + 1e-6 is 1 + 1.19e-6 (ten ulps),
    and dividing by 2 eps made d(x^2)/dx at 1 read 1.907. The step actually taken is
    what the difference is divided by; float32 still warns, its rounding being what
    it is, and a step lost to rounding is refused."""
    x32 = np.array([1.0, 2.0, 3.0], np.float32)
    with pytest.warns(UserWarning, match="array is float32: .* check gradients in float64"):
        g = numerical_gradient(lambda: float(np.sum(x32.astype(np.float64) ** 2)), x32)
    np.testing.assert_allclose(g, [2, 4, 6], rtol=1e-6)
    big = np.array([1e12])   # an ulp of 1e12 is 1.2e-4: x + 1e-6 is x
    with pytest.raises(ValueError, match=r"eps=1e-06 does not change array\[0\]"):
        numerical_gradient(lambda: float(big[0] ** 2), big)
    x = np.array([0.1, 1.0])   # neither 0.1 + 1e-6 nor 0.1 - 1e-6 is exact in float64
    g = numerical_gradient(lambda: float(np.sum(x ** 2)), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-10)


def test_relative_error_definition():
    # max|a - n| / (max|a| + max|n|)
    a = np.array([1.0, -2.0, 0.0])
    n = np.array([1.0, -2.0, 0.3])
    assert relative_error(a, n) == pytest.approx(0.3 / (2.0 + 2.0))
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.ones(2), -np.ones(2)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"analytic and numeric must have the same shape"):
        relative_error(np.ones(2), np.ones(3))


# -- check_gradients on models ------------------------------------------------------------
def _data(rng, n=6, d=4, k=3):
    return rng.normal(size=(n, d)), random_one_hot(rng, n, k)


def test_check_gradients_passes_and_restores_params(rng):
    model = MLP([4, 5, 3], activation="tanh", rng=0)
    X, Y = _data(rng)
    before = {k: v.copy() for k, v in model.params.items()}
    result = check_gradients(model, X, Y)
    assert result.passed() and result.worst < 1e-6
    assert list(result.errors) == list(model.params)
    assert result.worst_name in model.params
    for k in before:
        assert model.params[k].tobytes() == before[k].tobytes()
    assert "worst:" in str(result)


def test_check_gradients_catches_a_wrong_backward(rng, monkeypatch):
    model = MLP([4, 5, 3], activation="tanh", rng=0)
    X, Y = _data(rng)
    tanh = model.layers[1][0]
    original = type(tanh).backward

    # A 1% error in one layer's backward (as if a factor were slightly off).
    monkeypatch.setattr(tanh, "backward", lambda d: 1.01 * original(tanh, d))
    result = check_gradients(model, X, Y)
    assert not result.passed()
    assert result.errors["W1"] > 1e-3 and result.errors["b1"] > 1e-3
    assert result.errors["W2"] < 1e-6          # layers above the bug are still right


def test_check_gradients_catches_a_transposed_gradient(rng, monkeypatch):
    model = MLP([3, 3, 3], activation="relu", rng=0)
    X, Y = _data(rng, d=3)
    affine = model.layers[2][0]
    original = type(affine).backward

    def swapped(d_out):
        d_x, d_w, d_b = original(affine, d_out)
        return d_x, d_w.T, d_b            # same shape (3, 3), wrong gradient
    monkeypatch.setattr(affine, "backward", swapped)
    assert check_gradients(model, X, Y).errors["W2"] > 1e-2


def test_check_gradients_sampled(rng):
    model = MLP([4, 5, 3], rng=0)
    X, Y = _data(rng)
    result = check_gradients(model, X, Y, sample=3, rng=0)
    for name in model.params:
        assert np.count_nonzero(result.numeric[name]) <= 3
        assert result.errors[name] < 1e-6


def test_check_gradients_on_float32_model_uses_a_float64_copy(rng):
    model = MLP([4, 5, 3], activation="sigmoid", rng=0, dtype=np.float32)
    X, Y = _data(rng)
    before = {k: v.copy() for k, v in model.params.items()}
    result = check_gradients(model, X, Y)
    assert result.worst < 1e-6
    for k in before:
        assert model.params[k].dtype == np.float32
        assert model.params[k].tobytes() == before[k].tobytes()


# -- check_layer_gradients ------------------------------------------------------------------
def test_check_layer_gradients_names_and_skipped_inputs(rng):
    layer = Affine()
    layer.compute_input_grad = False
    result = check_layer_gradients(layer, rng.normal(size=(3, 2)), rng.normal(size=(2, 4)),
                                   rng.normal(size=4))
    assert list(result.errors) == ["params[0]", "params[1]"]
    assert result.worst < 1e-6


# -- check_layer on broken layers -----------------------------------------------------------
class ForgetfulReLU(ReLU):
    """backward forgets the mask: passes every gradient through."""

    def backward(self, d_out):
        super().backward(d_out)
        return d_out


class HalfSlopeTanh(Layer):
    """tanh whose derivative is off by a factor of 2 (1 - y^2)/2."""

    def forward(self, inputs):
        self.cache = np.tanh(inputs)
        return self.cache

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache))
        return d_out * (1 - self.cache ** 2) / 2


class WrongShapeOut(Layer):
    """forward drops the last column."""

    def forward(self, inputs):
        self.cache = inputs
        return inputs[:, :-1].copy()

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache[:, :-1]) if self.cache is not None else ())
        return np.pad(d_out, ((0, 0), (0, 1)))


class WrongShapeGrad(Layer):
    """backward returns the gradient transposed."""

    def forward(self, inputs):
        self.cache = inputs
        return 2 * inputs

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache))
        return (2 * d_out).T


class InPlace(Layer):
    """forward overwrites its inputs (a classic memory-saving bug)."""

    def forward(self, inputs):
        np.maximum(inputs, 0, out=inputs)
        self.cache = inputs
        return inputs

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache))
        return d_out * (self.cache > 0)


class Upcasting(Layer):
    """Silently computes in float64 whatever it is given."""

    def forward(self, inputs):
        self.cache = np.asarray(inputs, dtype=np.float64)
        return self.cache * 3.0

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache))
        return np.asarray(d_out, dtype=np.float64) * 3.0


class StaleCache(Layer):
    """Caches only the first input it ever sees."""

    def forward(self, inputs):
        if self.cache is None:
            self.cache = inputs.copy()
        return inputs ** 2

    def backward(self, d_out):
        self._check_d_out(d_out, np.shape(self.cache))
        return 2 * self.cache * d_out


class NoCheckBeforeForward:
    """Not derived from Layer; backward before forward silently returns zeros."""

    def forward(self, inputs):
        self.x = inputs
        return inputs * 1.0

    def backward(self, d_out):
        return d_out * 1.0 if hasattr(self, "x") else np.zeros_like(d_out)


class TupleWithoutParams(ReLU):
    """Returns (d_inputs,) instead of d_inputs."""

    def backward(self, d_out):
        return (super().backward(d_out),)


class AffineMissingBiasGrad(Affine):
    def backward(self, d_out):
        d_x, d_w, _ = super().backward(d_out)
        return d_x, d_w


class AffineWrongBias(Affine):
    def backward(self, d_out):
        d_x, d_w, d_b = super().backward(d_out)
        return d_x, d_w, d_out.mean(axis=0)          # mean instead of sum


@pytest.mark.parametrize("factory, check, message", [
    (ForgetfulReLU, "finite differences", "gradient of inputs disagrees"),
    (HalfSlopeTanh, "finite differences", "relative error"),
    (WrongShapeOut, "forward", r"output has shape \(6, 4\), expected \(6, 5\)"),
    (WrongShapeGrad, "backward", r"d_inputs has shape \(5, 6\), expected \(6, 5\)"),
    (InPlace, "forward", "forward modified its inputs in place"),
    (Upcasting, "float32", "float32 inputs gave a float64 output"),
    (StaleCache, "deterministic", "stale cache"),
    (NoCheckBeforeForward, "backward before forward", "expected RuntimeError|instead of "
                                                      "raising RuntimeError"),
    (TupleWithoutParams, "backward", "must return d_inputs"),
])
def test_check_layer_rejects_broken_layers(factory, check, message):
    with pytest.raises(LayerContractError, match=message) as info:
        check_layer(factory, (6, 5))
    assert f"[{check}]" in str(info.value)
    assert isinstance(info.value, AssertionError)


@pytest.mark.parametrize("factory, message", [
    (AffineMissingBiasGrad, r"backward must return \(d_inputs, 2 parameter gradients\), got a "
                            r"tuple of 2"),
    # The bias is named, and the ratio at the worst entry shows the mean over the
    # 6 rows where a sum belongs: 1/6 of the true value.
    (AffineWrongBias, r"gradient of b disagrees .* \(ratio 0\.1667\)"),
])
def test_check_layer_rejects_broken_affine(factory, message):
    with pytest.raises(LayerContractError, match=message):
        check_layer(factory, (6, 3), [(3, 4), (4,)], output_shape=(6, 4))


def test_check_layer_lists_every_failure():
    class TwoBugs(Upcasting):
        def backward(self, d_out):
            return super().backward(d_out) * 1.5      # wrong derivative as well
    with pytest.raises(LayerContractError) as info:
        check_layer(TwoBugs, (4, 3))
    text = str(info.value)
    assert "[finite differences]" in text and "[float32]" in text


def test_check_layer_accepts_a_user_layer():
    class Square(Layer):
        """A user's own layer: y = x^2, dy/dx = 2x."""

        def forward(self, inputs):
            inputs = self._check_input(inputs)
            self.cache = inputs
            return inputs * inputs

        def backward(self, d_out):
            d_out = self._check_d_out(d_out, np.shape(self.cache))
            return 2 * self.cache * d_out

    report = check_layer(Square, (5, 4))
    assert report.worst_gradient_error < 1e-6
    assert report.output_shape == (5, 4)
    # A Layer has a training switch: both modes are checked, and the modes' contract.
    assert report.checks == ["forward", "backward", "backward before forward",
                             "finite differences", "large inputs",
                             "finite differences (eval)", "large inputs (eval)",
                             "eval rows independent", "float32", "deterministic",
                             "deterministic (eval)", "mode switch"]
