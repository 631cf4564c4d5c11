"""Hostile arguments at the public API: each gets a ValueError or TypeError that names
the argument, before anything changes (an audit of the boundary found these)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import batch_indices, load_csv, load_file, standardize


def _params():
    return {"w": np.ones(3), "v": np.ones(2)}


@pytest.mark.parametrize("optimizer", [cr.SGD(lr=1.0), cr.Adam()])
def test_a_non_finite_gradient_changes_neither_the_parameters_nor_the_state(optimizer):
    params = _params()
    with pytest.raises(ValueError, match=r"grads\['v'\] must contain only finite values, "
                                         r"got 1 NaN or infinite entries"):
        optimizer.step(params, {"w": np.ones(3), "v": np.array([np.nan, 1.0])})
    np.testing.assert_array_equal(params["w"], np.ones(3))   # w, checked first, unchanged
    assert optimizer.steps == 0 and not optimizer.state_dict().get("state")


def test_a_read_only_parameter_is_refused_before_any_update():
    params = _params()
    params["v"].flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['v'\] must be a writable array"):
        cr.SGD(lr=1.0).step(params, {"w": np.ones(3), "v": np.ones(2)})
    np.testing.assert_array_equal(params["w"], np.ones(3))


def test_network_step_takes_an_optimizer_object_not_a_name():
    model = cr.MLP([4, 3], rng=0)
    with pytest.raises(TypeError, match="optimizer must be an Optimizer .* got str 'sgd'"):
        model.step(np.zeros((2, 4)), np.array([0, 1]), "sgd")


@pytest.mark.parametrize("params, message", [
    ({"W": np.zeros((2, 2)), "b": np.zeros(3)},
     r"params\['W'\] must have shape \(4, 3\) for layers\[0\] \(Affine\(4, 3\)\), got \(2, 2\)"),
    ({"W": np.zeros((4, 3)), "b": np.zeros((1, 3))}, r"params\['b'\] must have shape \(3,\)")])
def test_given_parameters_must_fit_their_layers(params, message):
    with pytest.raises(ValueError, match=message):
        cr.Sequential([cr.Affine(4, 3)], params=params)


def test_a_drawn_array_of_the_wrong_shape_blames_the_initialiser():
    def row_bias(n_in, n_out, rng, dtype):
        return np.full((1, n_out), 0.1, dtype)

    with pytest.raises(ValueError, match=r"the array 'b' of layers\[0\].init_params\(rng, "
                                         r"dtype\) \(its init or bias_init\?\) must have shape"):
        cr.Sequential([cr.Affine(4, 3, bias_init=row_bias)], rng=0)


def test_a_sequential_file_with_non_finite_weights_still_loads(tmp_path):
    # (a diverged model, kept to look at)
    model = cr.Sequential([cr.Affine(4, 3)], rng=0)
    model.params["W"][0, 0] = np.nan
    cr.io.save(model, tmp_path / "m.npz")
    assert np.isnan(cr.io.load(tmp_path / "m.npz").params["W"][0, 0])


def test_fit_and_step_call_an_optimizer_s_own_step_as_written():
    calls = []

    class LoggingSGD(cr.SGD):
        def step(self, params, grads):
            calls.append(len(params))
            super().step(params, grads)

    X, y = np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 3
    model = cr.MLP([4, 3], rng=0)
    cr.fit(model, X, y, optimizer=LoggingSGD(lr=0.1), epochs=1, batch_size=4, progress=False)
    model.step(X, y, LoggingSGD(lr=0.1))
    assert calls == [2, 2, 2]


def test_feature_columns_may_be_an_array_or_a_pandas_index(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    for columns in (np.array(["b", "a"]), pd.Index(["b", "a"])):
        X, _ = load_csv(path, "label", feature_columns=columns)
        np.testing.assert_array_equal(X, [[2, 1], [4, 3]])


@pytest.mark.parametrize("order, shown", [([0, 0, 0, 0, 0], "with 4 repeats"),
                                          ([0, 1, 2, 3, 9], r"values in \[0, 9\]"),
                                          ([0, 1, 2, 3, -1], r"values in \[-1, 3\]")])
def test_batch_order_must_be_a_permutation(order, shown):
    with pytest.raises(ValueError, match=rf"order must be a permutation of range\(5\).*{shown}"):
        batch_indices(5, 2, order=order)


def test_a_floor_above_the_rate_is_refused():
    with pytest.raises(ValueError, match=r"min_lr must be at most base_lr \(0.1\), got 1.0"):
        cr.schedules.cosine_lr(0, base_lr=0.1, total_steps=4, min_lr=1.0)
    with pytest.raises(ValueError, match=r"min_lr must be at most lr \(0.1\), got 1.0"):
        cr.ReduceLROnPlateau(0.1, min_lr=1.0)


def test_plateau_logs_must_hold_the_watched_number():
    plateau = cr.ReduceLROnPlateau(0.1)
    for logs in ({"loss": 1.0}, None, {"val_loss": "x"}):
        with pytest.raises(ValueError, match="logs must hold 'val_loss' as a number"):
            plateau.epoch_end(logs)


def test_onnx_names_must_fit_the_model(tmp_path):
    pytest.importorskip("onnx")
    model = cr.MLP([4, 3], rng=0)
    with pytest.raises(ValueError, match="feature_names must name the model's 4 input "
                                         "columns, got 1"):
        cr.io.export_onnx(model, tmp_path / "m.onnx", feature_names=["a"])
    with pytest.raises(ValueError, match="classes must be unique"):
        cr.io.export_onnx(model, tmp_path / "m.onnx", classes=["a", "a", "b"])
    assert not (tmp_path / "m.onnx").exists()


def test_csv_reader_arguments_are_checked(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    for call, error, message in [
            (lambda: load_csv(path, "label", feature_columns="ab"), TypeError,
             "feature_columns must be a non-empty list of column names, got str 'ab'"),
            (lambda: load_csv(path, "label", feature_columns=[]), TypeError,
             "feature_columns must be a non-empty list"),
            (lambda: load_csv(path, "label", feature_columns=["a", "a"]), ValueError,
             r"feature_columns names \['a'\] more than once"),
            (lambda: load_csv(path, "label", header="yes"), TypeError,
             "header must be True or False, got str 'yes'"),
            (lambda: load_csv(None), TypeError, "path must be a file name"),
            (lambda: load_file(5), TypeError, "path must be a file name"),
            (lambda: load_file(path, "label", require_labels="y"), TypeError,
             "require_labels must be True or False")]:
        with pytest.raises(error, match=message):
            call()


def test_flags_and_arrays_of_the_data_helpers_are_checked():
    with pytest.raises(TypeError, match="return_stats must be True or False, got str 'y'"):
        standardize(np.ones((3, 2)), return_stats="y")
    model = cr.MLP([4, 3], rng=0)
    with pytest.raises(ValueError, match="X must be a rectangular numeric array"):
        model.predict([[1, 2, 3, 4], [1]])
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"X_train must be a dense numeric array, got "
                                        r"scipy.sparse csr_matrix: convert it with "
                                        r"X_train.toarray\(\)"):
        standardize(sparse.csr_matrix(np.ones((3, 2))))


def test_check_gradients_names_a_model_that_is_not_one():
    with pytest.raises(TypeError, match="model must be a chainrule Network"):
        cr.check_gradients(None, np.zeros((2, 2)), np.zeros(2))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"input_shape": 4}, TypeError, "input_shape must be a tuple of integers, got int 4"),
    ({"input_shape": (0, 4)}, ValueError, r"input_shape .* got \(0, 4\)"),
    ({"input_shape": (3.0, 4)}, ValueError, r"input_shape .* got \(3.0, 4\)"),
    ({"input_shape": (3, 4), "tol": -1}, ValueError, "tol must be a finite number > 0"),
    ({"input_shape": (3, 4), "param_shapes": 5}, TypeError,
     "param_shapes must be a list of shapes")])
def test_check_layer_names_its_own_bad_arguments_instead_of_blaming_the_layer(kwargs, error,
                                                                               message):
    with pytest.raises(error, match=message):
        cr.check_layer(cr.ReLU, **kwargs)


def test_a_network_from_pairs_names_its_bad_arguments():
    from chainrule.losses import CategoricalCrossEntropy
    from chainrule.network import Network

    params = {"W1": np.zeros((4, 3)), "b1": np.zeros(3)}
    for args, error, message in [
            (([cr.Affine()], params, CategoricalCrossEntropy()), TypeError,
             r"layers\[0\] must be a \(layer, parameter names\) pair"),
            (([(cr.Affine(), "W1")], params, CategoricalCrossEntropy()), TypeError,
             r"the names a tuple of str such as \('W1', 'b1'\)"),
            (([(cr.Affine(), ("W1", "b1"))], [params["W1"]], CategoricalCrossEntropy()),
             TypeError, "params must be a dict of arrays by name, got list"),
            (([(cr.Affine(), ("W1", "b1"))], params, "cross_entropy"), TypeError,
             "loss must be a loss object"),
            ((None, params, CategoricalCrossEntropy()), TypeError,
             "layers must be a list of .* pairs, got NoneType")]:
        with pytest.raises(error, match=message):
            Network(*args)
    # pairs as lists are pairs too
    net = Network([[cr.Affine(), ["W1", "b1"]]], params, CategoricalCrossEntropy())
    assert net.layers[0][1] == ("W1", "b1")


def test_an_exponential_rate_beyond_floats_is_named():
    with pytest.raises(ValueError, match="the learning rate overflows"):
        cr.schedules.exponential_lr(1000, base_lr=0.1, gamma=10.0)
    with pytest.raises(ValueError, match="the learning rate overflows"):
        cr.schedules.step_lr(10**6, base_lr=0.1, step_size=1, gamma=1e308)


def test_affine_checks_its_initialisers_when_built():
    with pytest.raises(TypeError, match="bias_init must be None .* got str 'x'"):
        cr.Affine(4, 3, bias_init="x")
    with pytest.raises(TypeError, match="init must be an initialiser's name or a callable"):
        cr.Affine(4, 3, init=5)


def test_load_names_its_own_bad_arguments_not_the_file(tmp_path):
    cr.io.save(cr.MLP([4, 3], rng=0), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="rng must be None, an int seed"):
        cr.io.load(tmp_path / "m.npz", rng="x")
    with pytest.raises(TypeError, match="custom_layers must be a dict of class name to class"):
        cr.io.load(tmp_path / "m.npz", custom_layers=[1])
    assert cr.io.load(tmp_path / "m.npz", rng=3).n_features == 4
