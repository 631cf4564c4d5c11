"""A student's BatchNorm1d, Softmax and LayerNorm (tests/student_layers.py) against
the checks: the correct layers pass, and each planted bug is caught by the check that
looks at the mode in which it is wrong (issue 13, item 3)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_gradients

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted_bugs  # noqa: E402
from student_layers import BUGS, BatchNorm1d, make_layer  # noqa: E402

PARAMS = {"BatchNorm1d": [(4,), (4,)], "Softmax": [], "LayerNorm": [(4,), (4,)]}


def check(bug, shape=(4, 4)):
    return cr.check_layer(lambda: make_layer(bug), shape, PARAMS[BUGS.get(bug, (bug,))[0]])


@pytest.mark.parametrize("kind", sorted(PARAMS))
@pytest.mark.parametrize("shape", [(4, 4), (7, 4), (1, 4)])
def test_the_correct_layers_pass(kind, shape):
    report = check(kind, shape)
    assert report.worst_gradient_error < 1e-6
    if kind != "Softmax":
        assert "gamma" in report.gradient_errors        # named, not params[0]


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_the_correct_layers_pass_the_network_check_in_both_modes(kind):
    model = planted_bugs.network(kind)
    random = np.random.default_rng(1)
    X, Y = random.standard_normal((7, 5)), np.eye(3)[random.integers(0, 3, 7)]
    result = check_gradients(model, X, Y)
    assert "W1 (training)" in result.errors
    assert result.worst < 1e-6, str(result)


# Where each bug lives, as the student would say it -> the check that must name it.
EXPECTED = {
    "bn_eval_uses_batch_stats": r"\[eval rows independent\]",
    "bn_eval_updates_running": r"\[eval state\] .* changed the buffers \['running_mean', "
                               r"'running_var'\]",
    "bn_train_backward_after_eval": r"\[finite differences \(eval\)\] gradient of inputs",
    "bn_eval_backward_forgets_scale": r"\[finite differences \(eval\)\] gradient of inputs",
    # 1/N forgotten: N = 4 times too large; a mean where a sum belongs: 4 times too small.
    "bn_forgets_1_over_n": r"\[finite differences\] gradient of inputs .* \(ratio 4\)",
    "bn_dgamma_mean": r"\[finite differences\] gradient of gamma .* \(ratio 0\.25\)",
    "bn_dbeta_mean": r"\[finite differences\] gradient of beta .* \(ratio 0\.25\)",
    "bn_dx_no_mean_term": r"\[finite differences\] gradient of inputs",
    "bn_dx_no_var_term": r"\[finite differences\] gradient of inputs",
    "sm_no_max_shift": r"\[large inputs\] .* non-finite output",
    "sm_diagonal_only": r"\[finite differences\] gradient of inputs",
    "sm_sum_no_keepdims": r"\[finite differences\] gradient of inputs",
    "sm_sum_axis0": r"\[finite differences\] gradient of inputs",
    "sm_wrong_sign": r"\[finite differences\] gradient of inputs",
    # Passes at the square (4, 4) batch; fails at the next batch size.
    "ln_divides_by_n": r"\[finite differences\] gradient of inputs .* at batch size 5",
    "ln_dgamma_per_row": r"\[backward\] d_gamma has shape \(4, 4\), expected \(4,\)",
    "ln_dgamma_mean": r"\[finite differences\] gradient of gamma .* \(ratio 0\.25\)",
    "ln_dx_no_xhat_term": r"\[finite differences\] gradient of inputs",
    "ln_dx_no_mean_term": r"\[finite differences\] gradient of inputs",
}


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_check_layer_catches_the_bug_in_its_mode(bug):
    with pytest.raises(cr.LayerContractError, match=EXPECTED[bug]):
        check(bug)


@pytest.mark.parametrize("bug", ["bn_forgets_1_over_n", "bn_dgamma_mean", "bn_dbeta_mean",
                                 "bn_dx_no_mean_term", "bn_dx_no_var_term"])
def test_check_gradients_catches_training_mode_bugs_in_training_mode(bug):
    model = planted_bugs.network(bug)
    random = np.random.default_rng(1)
    X, Y = random.standard_normal((7, 5)), np.eye(3)[random.integers(0, 3, 7)]
    result = check_gradients(model, X, Y)
    assert max(v for k, v in result.errors.items() if not k.endswith("(training)")) < 1e-6
    assert max(v for k, v in result.errors.items() if k.endswith("(training)")) > 1e-3
    assert result.worst_name.endswith("(training)")


def test_check_gradients_leaves_buffers_and_generators_as_they_were():
    model = cr.Sequential([cr.Affine(5, 4), BatchNorm1d(4), cr.Dropout(0.5, rng=3),
                           cr.Affine(4, 3)], rng=0)
    buffers = {k: b.copy() for k, b in model.buffers.items()}
    state = model.layers[2][0].rng.bit_generator.state
    random = np.random.default_rng(1)
    result = check_gradients(model, random.standard_normal((7, 5)),
                             np.eye(3)[random.integers(0, 3, 7)])
    assert result.worst < 1e-6, str(result)     # one frozen dropout mask throughout
    assert all(np.array_equal(model.buffers[k], b) for k, b in buffers.items())
    assert model.layers[2][0].rng.bit_generator.state == state


def test_the_students_own_test_catches_the_swapped_momentum():
    # No generic check can know which way round a layer's momentum goes; the definition
    # can: after one training step from zero, running_mean = momentum * batch mean.
    X = np.random.default_rng(0).standard_normal((8, 4)) + 3
    for bug, ok in [(None, True), ("bn_swapped_momentum", False)]:
        layer = BatchNorm1d(4, momentum=0.1, bug=bug)
        layer.forward(X, np.ones(4), np.zeros(4))
        assert np.allclose(layer.running_mean, 0.1 * X.mean(axis=0)) is ok


def test_a_layer_without_a_training_attribute_is_checked_once():
    class Double:
        def forward(self, x):
            self.cache = x
            return 2 * x

        def backward(self, d_out):
            if getattr(self, "cache", None) is None:
                raise RuntimeError("backward before forward")
            return 2 * d_out

    report = cr.check_layer(Double, (3, 2))
    assert "finite differences (eval)" not in report.checks
    assert "eval rows independent" in report.checks


def test_mode_switch_catches_a_backward_that_reads_the_current_mode():
    class ModeReading(BatchNorm1d):
        def backward(self, d_out):
            xhat, inv, gamma, _ = self.cache
            self.cache = (xhat, inv, gamma, self.training)   # reads the switch, not the cache
            return super().backward(d_out)

    with pytest.raises(cr.LayerContractError, match=r"\[mode switch\] after a training-mode"):
        cr.check_layer(lambda: ModeReading(3), (5, 3), [(3,), (3,)])
