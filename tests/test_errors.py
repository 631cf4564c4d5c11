"""Bad input at every public entry point: the error type, a message that names the
argument (and what it got), and nothing left half-updated."""

import re
import warnings

import numpy as np
import pytest

from chainrule import (
    MLP,
    Affine,
    CategoricalCrossEntropy,
    Dropout,
    FeedforwardNeuralNet,
    LeakyReLU,
    LogisticRegression,
    MeanSquaredError,
    ReLU,
    Sigmoid,
    Tanh,
    accuracy,
    log_softmax,
    logsumexp,
    one_hot,
    softmax,
)
from chainrule.data import iterate_minibatches
from chainrule.gradcheck import check_gradients, numerical_gradient
from chainrule.optim import SGD, Adam, AdamW

X4 = np.ones((4, 3))
W = np.ones((3, 2))
B = np.ones(2)
Y3 = np.eye(3)[[0, 1]]


# -- shapes -----------------------------------------------------------------------------
def test_inputs_vs_weight_mismatch():
    with pytest.raises(ValueError, match=r"inputs has 3 features but weight expects 5: "
                                         r"inputs \(4, 3\), weight \(5, 2\)"):
        Affine().forward(X4, np.ones((5, 2)), B)


def test_weight_vs_bias_mismatch():
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\) to match weight "
                                         r"\(3, 2\), got \(3,\)"):
        Affine().forward(X4, W, np.ones(3))
    with pytest.raises(ValueError, match=r"bias must be a 1-D array, got shape \(1, 2\)"):
        Affine().forward(X4, W, np.ones((1, 2)))


def test_inputs_wrong_rank():
    with pytest.raises(ValueError, match=r"inputs must be a 2-D array, got shape \(3,\)"):
        Affine().forward(np.ones(3), W, B)


def test_logits_vs_labels_mismatch():
    with pytest.raises(ValueError, match=r"logits and labels must have the same shape, got "
                                         r"logits \(4, 3\) and labels \(4, 2\)"):
        CategoricalCrossEntropy().forward(np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"outputs and targets must have the same shape"):
        MeanSquaredError().forward(np.ones((2, 3)), np.ones((2, 2)))


def test_d_out_shape_mismatch():
    layer = Affine()
    layer.forward(X4, W, B)
    with pytest.raises(ValueError, match=r"d_out must have shape \(4, 2\).*got \(4, 3\)"):
        layer.backward(np.ones((4, 3)))
    relu = ReLU()
    relu.forward(X4)
    with pytest.raises(ValueError, match=r"d_out must have shape \(4, 3\).*got \(3, 4\)"):
        relu.backward(np.ones((3, 4)))


@pytest.mark.parametrize("layer", [Affine(), ReLU(), LeakyReLU(), Tanh(), Sigmoid(),
                                   Dropout(0.5, rng=0)])
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}.backward called before "
                                           r"forward"):
        layer.backward(np.ones((4, 2)))


# -- labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, row", [
    ([[0.5, 0.6, 0.0], [1, 0, 0]], r"\[0.5, 0.6, 0.0\]"),     # probabilities summing to 1.1
    ([[1, 0, 0], [1, 1, 0]], r"\[1.0, 1.0, 0.0\]"),           # two ones
    ([[1, 0, 0], [0, 0, 0]], r"\[0.0, 0.0, 0.0\]"),           # no one
    ([[2, -1, 0], [1, 0, 0]], r"\[2.0, -1.0, 0.0\]"),         # sums to 1, not >= 0
    # A row sum that rounds to 1 and a sum of squares that rounds to 1, with a negative
    # entry: only its sign tells this row from a one-hot one.
    ([[1, -1e-300, 0], [1, 0, 0]], r"\[1.0, -1e-300, 0.0\]"),
    ([[1, 1, 0], [0, 0, 0]], r"\[1.0, 1.0, 0.0\]"),           # as many non-zeros as rows
])
def test_labels_not_one_hot(labels, row):
    with pytest.raises(ValueError, match=r"labels must hold one-hot rows .*row \d is " + row):
        CategoricalCrossEntropy().forward(np.zeros((2, 3)), labels)


# -- NaN, inf, empty, non-numeric ---------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(bad):
    x = X4.copy()
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"inputs must contain only finite values, got 1 NaN "
                                         r"or infinite entries"):
        Affine().forward(x, W, B)
    with pytest.raises(ValueError, match=r"weight must contain only finite values"):
        Affine().forward(X4, W * bad, B)
    with pytest.raises(ValueError, match=r"inputs must contain only finite values"):
        Tanh().forward(x)
    with pytest.raises(ValueError, match=r"logits must contain only finite values"):
        CategoricalCrossEntropy().forward(np.array([[bad, 0.0, 0.0]]), [[1, 0, 0]])
    with pytest.raises(ValueError, match=r"x must contain only finite values"):
        softmax(np.array([1.0, bad]))


def test_empty_batches():
    with pytest.raises(ValueError, match=r"inputs must not be empty, got shape \(0, 3\)"):
        Affine().forward(np.zeros((0, 3)), W, B)
    with pytest.raises(ValueError, match=r"logits must not be empty, got shape \(0, 3\)"):
        CategoricalCrossEntropy().forward(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"inputs must not be empty"):
        ReLU().forward(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"X must not be empty, got shape \(0, 64\)"):
        LogisticRegression(64, 10).predict(np.zeros((0, 64)))
    with pytest.raises(ValueError, match=r"y_true must not be empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match=r"x must not be empty"):
        logsumexp(np.zeros((0,)))


@pytest.mark.parametrize("bad, what", [
    ("abc", r"got str"),
    (np.array([[1, None, 2]], dtype=object), r"got an array of dtype object"),
    (np.array([["a", "b", "c"]]), r"got an array of dtype <U1"),
    (None, r"got NoneType"),
])
def test_non_numeric_arrays(bad, what):
    with pytest.raises(TypeError, match=r"inputs must be a numeric array, " + what):
        Affine().forward(bad, W, B)
    with pytest.raises(TypeError, match=r"X must be a numeric array, " + what):
        MLP([3, 2], rng=0).predict(bad)
    with pytest.raises(TypeError, match=r"x must be a numeric array, " + what):
        log_softmax(bad)


def test_complex_arrays_rejected():
    with pytest.raises(TypeError, match=r"inputs must be real-valued, got .*complex128"):
        Affine().forward(X4 + 1j, W, B)


# -- hyperparameters ----------------------------------------------------------------------
@pytest.mark.parametrize("lr", [0, -1e-2, float("nan"), float("inf"), -float("inf")])
def test_learning_rate_not_positive_finite(lr):
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0, got "):
        LogisticRegression(64, 10, learning_rate=lr)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0"):
        FeedforwardNeuralNet(64, 32, 10, learning_rate=lr, rng=0)
    for opt in (SGD, Adam, AdamW):
        with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got "
                                             + repr(float(lr)).replace("-", r"\-")):
            opt(lr=lr)


@pytest.mark.parametrize("lr, what", [("0.1", r"got str '0.1'"), (True, r"got bool True"),
                                      (None, r"got NoneType None")])
def test_learning_rate_wrong_type(lr, what):
    with pytest.raises(TypeError, match=r"learning_rate must be a real number, " + what):
        LogisticRegression(64, 10, learning_rate=lr)


def test_learning_rate_setter_is_checked():
    model = LogisticRegression(64, 10)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0, got -2"):
        model.learning_rate = -2
    assert model.learning_rate == 1e-2


def test_bad_learning_rate_draws_no_random_numbers():
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match="learning_rate"):
        FeedforwardNeuralNet(64, 32, 10, learning_rate=-1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    with pytest.raises(ValueError, match="loss"):
        MLP([4, 3, 2], loss="hinge")
    assert np.random.get_state()[2] == np.random.RandomState(5).get_state()[2]


@pytest.mark.parametrize("momentum", [1.5, -0.1, float("nan")])
def test_momentum_outside_unit_interval(momentum):
    # [0, 1] as scikit-learn's MLP takes it: 1 keeps the whole velocity (no decay).
    with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\], got "):
        SGD(lr=0.1, momentum=momentum)
    assert SGD(lr=0.1, momentum=1.0).momentum == 1.0


@pytest.mark.parametrize("p", [1.0, -0.1, 2, float("nan")])
def test_dropout_outside_unit_interval(p):
    # An MLP's dropout of 1 would drop every hidden unit; a layer of p=1 is PyTorch's.
    with pytest.raises(ValueError, match=r"dropout must be in \[0.0, 1.0\), got "):
        MLP([4, 3, 2], dropout=p)
    if p == 1.0:
        assert Dropout(p).p == 1.0
        return
    with pytest.raises(ValueError, match=r"p must be in \[0.0, 1.0\], got "):
        Dropout(p)


def test_leaky_relu_slope_checked():
    # Any finite slope is taken, as by torch.nn.LeakyReLU (tests/test_layers.py).
    with pytest.raises(ValueError, match=r"negative_slope must be a finite number, got nan"):
        LeakyReLU(float("nan"))
    with pytest.raises(ValueError, match=r"negative_slope must be a finite number, got inf"):
        LeakyReLU(np.inf)
    with pytest.raises(TypeError, match=r"negative_slope must be a real number, got str"):
        LeakyReLU("0.1")


def test_unknown_names():
    with pytest.raises(ValueError, match=r"activation must be one of \['elu', 'gelu', "
                                         r"'identity', 'leaky_relu', 'logistic', 'relu', "
                                         r"'sigmoid', 'silu', 'softplus', 'tanh'\], got "
                                         r"'mish'"):
        MLP([4, 3, 2], activation="mish")
    with pytest.raises(ValueError, match=r"activation must be a name of .* or one per hidden "
                                         r"layer \(1\), got \['relu', 'tanh'\]"):
        MLP([4, 3, 2], activation=["relu", "tanh"])
    with pytest.raises(ValueError, match=r"init must be one of .*got 'glorot'"):
        MLP([4, 3, 2], init="glorot")
    with pytest.raises(ValueError, match=r"loss must be one of \['binary_cross_entropy', "
                                         r"'cross_entropy', 'huber', 'l1', 'mse', "
                                         r"'multi_margin', 'poisson', 'squared_error'\] or a "
                                         r"Loss instance .*, got 'hinge'"):
        MLP([4, 3, 2], loss="hinge")


@pytest.mark.parametrize("sizes", [[4, 0, 2], [4, -3, 2], [4, 2.5, 2], [4, True, 2], [0, 2],
                                   [4, "8", 2]])
def test_layer_sizes_not_positive_integers(sizes):
    with pytest.raises(ValueError, match=r"layer_sizes must hold positive integers, got "
                                         + re.escape(repr(list(sizes)))):
        MLP(sizes)


def test_layer_sizes_wrong_kind():
    with pytest.raises(ValueError, match=r"layer_sizes needs at least an input and an output "
                                         r"size, got \[4\]"):
        MLP([4])
    with pytest.raises(TypeError, match=r"layer_sizes must be a sequence of positive "
                                        r"integers, got '42'"):
        MLP("42")
    with pytest.raises(TypeError, match=r"layer_sizes must be a sequence .*got 42"):
        MLP(42)


def test_homework_model_sizes():
    with pytest.raises(ValueError, match=r"num_features must be an integer >= 1, got 0"):
        LogisticRegression(0, 10)
    with pytest.raises(TypeError, match=r"num_classes must be an integer, got float 1.5"):
        LogisticRegression(64, 1.5)
    with pytest.raises(ValueError, match=r"hidden_size must be an integer >= 1, got 0"):
        FeedforwardNeuralNet(64, 0, 10)
    with pytest.raises(ValueError, match=r"output_size must be an integer >= 2, got -10"):
        FeedforwardNeuralNet(64, 32, -10)


def test_dtype_and_rng():
    with pytest.raises(ValueError, match=r"dtype must be a floating-point dtype, got int32"):
        MLP([4, 2], dtype=np.int32)
    with pytest.raises(TypeError, match=r"dtype must be a NumPy float dtype, got 'banana'"):
        MLP([4, 2], dtype="banana")
    with pytest.raises(TypeError, match=r"rng must be None, an int seed or a "
                                        r"numpy.random.Generator, got str"):
        MLP([4, 2], rng="seed")
    with pytest.raises(ValueError, match=r"rng seed must be >= 0, got -1"):
        MLP([4, 2], rng=-1)


def test_batch_size():
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        list(iterate_minibatches(np.ones((4, 2)), np.ones((4, 2)), batch_size=0))
    with pytest.raises(ValueError, match=r"X and Y must have the same number of rows, got "
                                         r"X \(4, 2\) and Y \(3, 2\)"):
        list(iterate_minibatches(np.ones((4, 2)), np.ones((3, 2)), batch_size=2))


# -- data that does not match the model: nothing changes ----------------------------------
def _snapshot(model):
    return {k: v.copy() for k, v in model.params.items()}


def _unchanged(model, snap):
    return all(np.array_equal(model.params[k], snap[k]) for k in snap) and \
        model.params.keys() == snap.keys()


_X = np.ones((5, 64))
_Y = np.eye(10)[[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("X, Y, message", [
    (np.ones((5, 63)), _Y, r"X has 63 features but the model expects 64: got shape \(5, 63\)"),
    (_X, np.eye(9)[:5], r"Y must have shape \(5, 10\) .*got \(5, 9\)"),
    (_X, _Y[:4], r"Y must have shape \(5, 10\) .*got \(4, 10\)"),
    (_X, np.full((5, 10), 0.2), r"Y must hold one-hot rows .*row 0 is \[0.2, "),
    (np.full((5, 64), np.nan), _Y, r"X must contain only finite values, got 320 NaN"),
    (_X, np.where(_Y == 1, np.inf, 0), r"Y must contain only finite values"),
    (np.zeros((0, 64)), np.zeros((0, 10)), r"X must not be empty"),
    (np.ones(64), _Y[0], r"X must be a 2-D array, got shape \(64,\)"),
    ("abc", _Y, r"X must be a numeric array, got str"),
])
@pytest.mark.parametrize("factory", [
    lambda: LogisticRegression(64, 10),
    lambda: FeedforwardNeuralNet(64, 32, 10, rng=0),
    lambda: MLP([64, 16, 16, 10], activation="tanh", dropout=0.2, rng=0),
])
def test_mismatched_data_raises_before_any_parameter_changes(factory, X, Y, message):
    model = factory()
    snap = _snapshot(model)
    with pytest.raises((ValueError, TypeError), match=message):
        if model.optimizer is None:
            model.step(X, Y, optimizer=SGD(lr=0.1))
        else:
            model.step(X, Y)
    assert _unchanged(model, snap)
    # And the model still works afterwards.
    model.step(_X, _Y, optimizer=SGD(lr=0.1))
    assert not _unchanged(model, snap)


def test_bad_sample_weight_raises_before_any_parameter_changes():
    model = LogisticRegression(64, 10)
    snap = _snapshot(model)
    with pytest.raises(ValueError, match=r"sample_weight must have one entry per row \(5\), "
                                         r"got \(2,\)"):
        model.step(_X, _Y, sample_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"sample_weight must be >= 0 with a positive sum, "
                                         r"got min -1.0"):
        model.step(_X, _Y, sample_weight=[1.0, -1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"sample_weight must be >= 0 with a positive sum, "
                                         r"got min 0.0 and sum 0.0"):
        model.step(_X, _Y, sample_weight=np.zeros(5))
    assert _unchanged(model, snap)


def test_optimizer_with_bad_gradients_changes_nothing():
    params = {"a": np.ones(2), "b": np.ones(3)}
    snap = {k: v.copy() for k, v in params.items()}
    opt = SGD(lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grads\['b'\] must have shape \(3,\) like "
                                         r"params\['b'\], got \(2,\)"):
        opt.step(params, {"a": np.ones(2), "b": np.ones(2)})
    with pytest.raises(ValueError, match=r"grads must have the same keys as params; missing "
                                         r"\['b'\], extra \['c'\]"):
        opt.step(params, {"a": np.ones(2), "c": np.ones(3)})
    assert all(np.array_equal(params[k], snap[k]) for k in snap)
    assert opt.steps == 0 and opt.state == {}


# -- functional ---------------------------------------------------------------------------
def test_one_hot_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be a 1-D array of class indices, got "
                                         r"shape \(1, 2\)"):
        one_hot([[0, 1]])
    with pytest.raises(ValueError, match=r"labels must be >= 0, got -1"):
        one_hot([0, -1])
    with pytest.raises(ValueError, match=r"labels must be < num_classes=3, got 3"):
        one_hot([0, 3], 3)
    with pytest.raises(TypeError, match=r"labels must hold integer class indices, got dtype "
                                        r"float64"):
        one_hot([0.5, 1])
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1, got 0"):
        one_hot([0], 0)


def test_accuracy_mismatched_rows():
    with pytest.raises(ValueError, match=r"y_true and y_pred must have the same number of "
                                         r"rows, got 2 and 3"):
        accuracy([0, 1], [0, 1, 1])


# -- the probabilities-instead-of-logits guard ------------------------------------------
def test_cross_entropy_warns_once_on_probabilities():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    ce = CategoricalCrossEntropy()
    with pytest.warns(UserWarning, match=r"expects raw logits .* not probabilities"):
        ce.forward(probs, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce.forward(probs, Y)                 # once per instance: no second warning


@pytest.mark.parametrize("second", [[-0.1, 1.1], [0.3, 0.3], [1.5, -0.5]])
def test_cross_entropy_does_not_warn_when_a_later_row_is_not_probabilities(second):
    logits = np.array([[0.2, 0.8], second, [0.5, 0.5]])   # the first row looks like one
    Y = np.eye(2)[[1, 0, 0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CategoricalCrossEntropy().forward(logits, Y)


# -- gradcheck's own inputs ---------------------------------------------------------------
def test_gradcheck_arguments():
    with pytest.raises(TypeError, match=r"array must be a floating-point numpy.ndarray"):
        numerical_gradient(lambda: 0.0, [1.0, 2.0])
    with pytest.raises(TypeError, match=r"array must be a floating-point numpy.ndarray .*int"):
        numerical_gradient(lambda: 0.0, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got 0.0"):
        numerical_gradient(lambda: 0.0, np.ones(2), eps=0)
    model = MLP([3, 2], rng=0)
    with pytest.raises(ValueError, match=r"sample must be an integer >= 1, got 0"):
        check_gradients(model, np.ones((2, 3)), np.eye(2), sample=0)
    with pytest.raises(ValueError, match=r"X has 4 features but the model expects 3"):
        check_gradients(model, np.ones((2, 4)), np.eye(2))


# -- found in acceptance review ------------------------------------------------------------
def test_accuracy_refuses_different_class_counts():
    with pytest.raises(ValueError, match=r"same number of columns \(classes\), got shapes "
                                         r"\(3, 3\) and \(3, 4\)"):
        accuracy(np.eye(3), np.eye(4)[:3])


def test_float32_model_names_overflow_of_finite_float64_input():
    model = MLP([3, 4, 2], rng=0, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"X holds values too large for float32: 6 "
                                             r"entries overflow"):
            model.predict(np.full((2, 3), 1e39))


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="mish"), "activation must be one of"),
    (dict(init=["xavier"]), "init must be one of"),
    (dict(activation=[["relu"]]), "activation must be one of"),
    (dict(loss=["mse"]), "loss must be one of"),
])
def test_names_are_checked_whatever_the_depth_or_type(kwargs, match):
    sizes = [4, 3] if "activation" in kwargs and isinstance(kwargs["activation"], str) \
        else [4, 5, 3]
    with pytest.raises(ValueError, match=match):
        MLP(sizes, rng=0, **kwargs)


def test_cross_entropy_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 outputs"):
        MLP([64, 1], rng=0)
    MLP([4, 1], loss="mse", rng=0)  # a single regression output is fine


def test_network_needs_a_layer_with_parameters():
    from chainrule.models import Network

    with pytest.raises(ValueError, match="at least one layer with parameters"):
        Network([], {}, CategoricalCrossEntropy())


def test_the_homework_models_name_their_own_argument_for_a_single_class():
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 2, got 1$"):
        LogisticRegression(64, 1)
    with pytest.raises(ValueError, match=r"^output_size must be an integer >= 2, got 1$"):
        FeedforwardNeuralNet(64, 32, 1)
