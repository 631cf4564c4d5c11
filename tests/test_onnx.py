"""Tests for chainrule.io.export_onnx: the exported graph, run by onnxruntime (an
independent implementation), must give chainrule's probabilities to 1e-6 on the
homework digits test set."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from chainrule import _fileformat  # noqa: E402
from chainrule.data import iterate_minibatches, load_homework_digits  # noqa: E402
from chainrule.homework import LogisticRegression  # noqa: E402
from chainrule.io import DEFAULT_ONNX_OPSET, export_onnx  # noqa: E402
from chainrule.layers import Affine, Tanh  # noqa: E402
from chainrule.losses import CategoricalCrossEntropy  # noqa: E402
from chainrule.models import MLP, Network  # noqa: E402
from chainrule.optim import Adam  # noqa: E402

TOL = 1e-6
# float32 carries ~7 digits: two correct float32 implementations summing in different
# orders differ by a few ulps of 1.0 (ulp = 1.2e-7) in a probability, so float32
# models get 16 ulps.
TOL32 = 16 * float(np.finfo(np.float32).eps)
ALLOWED_OPS = {"Gemm", "Relu", "LeakyRelu", "PRelu", "Tanh", "Sigmoid", "Softmax", "ArgMax",
               "Gather", "Neg", "Concat"}


@pytest.fixture(scope="module")
def digits():
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (always 0 in the corners)
    return (X_train - mean) / std, (X_test - mean) / std, Y_train, Y_test


def _train(layer_sizes, activation="relu", dtype=np.float64, dropout=0.0, epochs=15, seed=0,
           data=None):
    X_train, _, Y_train, _ = data
    model = MLP(layer_sizes, activation=activation, dropout=dropout, rng=seed, dtype=dtype)
    opt = Adam(lr=1e-2)
    rng = np.random.default_rng(seed)
    X_train, Y_train = X_train.astype(dtype), Y_train.astype(dtype)
    for _ in range(epochs):
        for Xb, Yb in iterate_minibatches(X_train, Y_train, 64, rng=rng):
            model.step(Xb, Yb, opt)
    return model


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X}), strict=True))


CASES = {
    # name: (hidden sizes, activation, dtype, dropout)
    "relu_1_hidden": ([32], "relu", np.float64, 0.0),
    "tanh_1_hidden": ([32], "tanh", np.float64, 0.0),
    "sigmoid_1_hidden": ([32], "sigmoid", np.float64, 0.0),
    "leaky_relu_1_hidden": ([32], "leaky_relu", np.float64, 0.0),
    "no_hidden_layer": ([], "relu", np.float64, 0.0),
    "relu_3_hidden": ([32, 32, 16], "relu", np.float64, 0.0),
    "tanh_3_hidden_dropout": ([32, 32, 16], "tanh", np.float64, 0.2),
    "relu_1_hidden_float32": ([32], "relu", np.float32, 0.0),
    "sigmoid_3_hidden_float32": ([32, 32, 16], "sigmoid", np.float32, 0.0),
    "leaky_relu_3_hidden_float32": ([32, 32, 16], "leaky_relu", np.float32, 0.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_matches_chainrule_on_digits(tmp_path, digits, case):
    hidden, activation, dtype, dropout = CASES[case]
    model = _train([64, *hidden, 10], activation, dtype, dropout, data=digits)
    X_test, Y_test = digits[1].astype(dtype), digits[3]
    ours = model.predict_proba(X_test)
    # The model really learned something, so the comparison is not between two
    # near-uniform outputs.
    assert np.mean(ours.argmax(1) == Y_test.argmax(1)) > 0.9

    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    out = _run(path, X_test)
    assert out["probabilities"].shape == (450, 10)
    assert out["probabilities"].dtype == dtype
    diff = np.abs(out["probabilities"] - ours).max()
    print(f"{case}: max |p_onnx - p_chainrule| = {diff:.3e}")
    assert diff <= (TOL32 if dtype == np.float32 else TOL)
    np.testing.assert_allclose(out["logits"], model.forward(X_test), rtol=0,
                               atol=1e-5 if dtype == np.float32 else 1e-9)
    assert (out["probabilities"].argmax(1) == ours.argmax(1)).all()


def test_graph_structure(tmp_path):
    model = MLP([6, 5, 4, 3], activation=["tanh", "leaky_relu"], dropout=0.3, rng=0)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    # No Dropout; the float64 leaky ReLU with slope 0.01 (not a float32 number) is a
    # PRelu whose slope is a float64 tensor.
    assert ops == ["Gemm", "Tanh", "Gemm", "PRelu", "Gemm", "Softmax", "ArgMax", "Gather"]
    assert set(ops) <= ALLOWED_OPS
    (inp,) = proto.graph.input
    assert inp.name == "X"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 6
    assert [o.name for o in proto.graph.output] == ["label", "probabilities", "logits"]
    assert {i.name for i in proto.graph.initializer} == set(model.params) | {"negative_slope2",
                                                                            "classes"}
    slope = {i.name: i for i in proto.graph.initializer}["negative_slope2"]
    assert onnx.numpy_helper.to_array(slope).tolist() == [0.01]
    assert proto.opset_import[0].version == DEFAULT_ONNX_OPSET
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["chainrule_class"] == "MLP"


@pytest.mark.parametrize("dtype, slope", [(np.float32, 0.01), (np.float64, 0.25),
                                          (np.float64, -0.5), (np.float32, 1.5)])
def test_leaky_relu_uses_leaky_relu_when_alpha_is_exact(tmp_path, dtype, slope):
    model = MLP([6, 5, 3], activation="leaky_relu", rng=0, dtype=dtype)
    model.layers[1][0].negative_slope = slope
    export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "LeakyRelu", "Gemm", "Softmax",
                                                          "ArgMax", "Gather"]
    assert proto.graph.node[1].attribute[0].f == np.float32(slope)
    X = np.random.default_rng(0).standard_normal((50, 6)).astype(dtype) * 3
    out = _run(tmp_path / "m.onnx", X)
    # Same slope, same dtype: the hidden layer is reproduced exactly, and the
    # logits up to Gemm's summation order.
    np.testing.assert_allclose(out["logits"], model.forward(X), rtol=0,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("batch", [1, 3, 200])
def test_symbolic_batch_dimension(tmp_path, batch):
    model = MLP([5, 4, 2], rng=0)
    export_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(batch).standard_normal((batch, 5))
    out = _run(tmp_path / "m.onnx", X)
    assert out["probabilities"].shape == (batch, 2)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=TOL)


def test_regressor_outputs(tmp_path):
    model = MLP([5, 8, 3], activation="tanh", loss="mse", rng=0)
    export_onnx(model, tmp_path / "r.onnx")
    proto = onnx.load(str(tmp_path / "r.onnx"))
    assert [o.name for o in proto.graph.output] == ["outputs"]
    assert "Softmax" not in [n.op_type for n in proto.graph.node]
    X = np.random.default_rng(0).standard_normal((20, 5))
    out = _run(tmp_path / "r.onnx", X)
    np.testing.assert_allclose(out["outputs"], model.predict(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("opset", [13, 15, DEFAULT_ONNX_OPSET])
def test_explicit_opsets_run(tmp_path, opset):
    model = MLP([5, 4, 3], activation="sigmoid", rng=0)
    export_onnx(model, tmp_path / "m.onnx", opset=opset)
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == opset
    X = np.random.default_rng(0).standard_normal((10, 5))
    out = _run(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=TOL)


def test_float16_model_is_exported_as_float32(tmp_path):
    model16 = MLP([5, 4, 3], rng=0, dtype=np.float16)
    export_onnx(model16, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # Oracle: the same float16 weights, widened exactly to float32, in chainrule.
    model32 = MLP([5, 4, 3], rng=0, dtype=np.float32)
    for k, v in model16.params.items():
        model32.params[k] = v.astype(np.float32)
    X = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)
    out = _run(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(out["probabilities"], model32.predict_proba(X), rtol=0,
                               atol=TOL)


def test_homework_models_export(tmp_path, digits):
    model = LogisticRegression(64, 10, learning_rate=0.05)
    for _ in range(50):
        model.step(digits[0], digits[2])
    export_onnx(model, tmp_path / "lr.onnx")
    out = _run(tmp_path / "lr.onnx", digits[1])
    assert np.abs(out["probabilities"] - model.predict(digits[1])).max() <= TOL


class _FittedLike:
    """Stands in for a fitted estimator: a network in model_ and labels in classes_."""

    def __init__(self, model, classes):
        self.model_ = model
        self.classes_ = classes

    def fit(self, X, y):  # pragma: no cover - only its presence matters
        return self


def test_estimator_like_object_with_arbitrary_labels(tmp_path):
    model = MLP([5, 4, 3], rng=0)
    est = _FittedLike(model, np.array(["setosa", "versicolor", "virginica"]))
    export_onnx(est, tmp_path / "e.onnx")
    proto = onnx.load(str(tmp_path / "e.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == ["setosa", "versicolor", "virginica"]
    assert props["chainrule_class"] == "_FittedLike"
    X = np.random.default_rng(0).standard_normal((8, 5))
    out = _run(tmp_path / "e.onnx", X)
    # Column j is the probability of classes_[j].
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=TOL)

    est_int = _FittedLike(model, np.array([3, 7, 11]))
    export_onnx(est_int, tmp_path / "i.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "i.onnx")).metadata_props}
    assert json.loads(props["classes"]) == [3, 7, 11]
    # The label output keeps the classes' kind: strings, integers, other numbers.
    expected = model.predict_proba(X).argmax(axis=1)
    for classes, dtype in ((["setosa", "versicolor", "virginica"], object),
                           ([3, 7, 11], np.int64), ([1.0, 2.0, 3.0], np.int64),
                           ([0.5, 1.5, 2.5], np.float64)):
        export_onnx(_FittedLike(model, np.array(classes)), tmp_path / "c.onnx")
        label = _run(tmp_path / "c.onnx", X)["label"]
        assert label.dtype == dtype
        assert label.tolist() == np.array(classes, dtype=dtype)[expected].tolist()


class _Unfitted:
    def fit(self, X, y):  # pragma: no cover
        return self


def test_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(TypeError, match=r"Network .* or a fitted estimator .*got _Unfitted "
                                        r"\(not fitted yet\?\)"):
        export_onnx(_Unfitted(), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="got str"):
        export_onnx("model.npz", tmp_path / "m.onnx")

    class Square:
        def forward(self, x):
            return x * x

    net = Network([(Affine(), ("W", "b")), (Square(), ()), (Affine(), ("W2", "b2"))],
                  {"W": np.ones((3, 4)), "b": np.zeros(4), "W2": np.ones((4, 2)),
                   "b2": np.zeros(2)}, CategoricalCrossEntropy())
    with pytest.raises(TypeError, match="cannot export layer 1"):
        export_onnx(net, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset, exc, match", [
    (12, ValueError, "opset must be between 13 and"),
    (10_000, ValueError, "got 10000"),
    (17.0, TypeError, "opset must be an int"),
    (True, TypeError, "opset must be an int"),
])
def test_bad_opset(tmp_path, opset, exc, match):
    with pytest.raises(exc, match=match):
        export_onnx(MLP([3, 2], rng=0), tmp_path / "m.onnx", opset=opset)


def test_missing_onnx_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ImportError, match=r"pip install chainrule\[onnx\]"):
        export_onnx(MLP([3, 2], rng=0), tmp_path / "m.onnx")


def test_export_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    old = MLP([3, 2], rng=0)
    export_onnx(old, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(_fileformat.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        export_onnx(MLP([3, 4, 2], rng=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_network_ending_in_an_activation_still_names_its_output(tmp_path):
    net = Network([(Affine(), ("W", "b")), (Tanh(), ())],
                  {"W": np.random.default_rng(0).standard_normal((3, 4)), "b": np.zeros(4)},
                  CategoricalCrossEntropy())
    export_onnx(net, tmp_path / "m.onnx")
    X = np.random.default_rng(1).standard_normal((5, 3))
    out = _run(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(out["logits"], net.forward(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["probabilities"], net.predict_proba(X), rtol=0, atol=TOL)


def test_fitted_mlp_classifier_with_labels_not_0_to_k(tmp_path, digits):
    from chainrule.estimator import MLPClassifier

    X_train, X_test, Y_train, _ = digits
    y_train = Y_train.argmax(1) * 10 + 3  # labels 3, 13, ..., 93
    est = MLPClassifier((32,), max_iter=10, learning_rate_init=1e-2, random_state=0)
    est.fit(X_train, y_train)
    export_onnx(est, tmp_path / "clf.onnx")
    out = _run(tmp_path / "clf.onnx", X_test)
    ours = est.predict_proba(X_test)
    diff = np.abs(out["probabilities"] - ours).max()
    print(f"MLPClassifier (labels 3..93): max |p_onnx - p_chainrule| = {diff:.3e}")
    assert diff <= TOL
    assert (est.classes_[out["probabilities"].argmax(1)] == est.predict(X_test)).all()
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "clf.onnx")).metadata_props}
    assert json.loads(props["classes"]) == list(range(3, 94, 10))
    assert props["chainrule_class"] == "MLPClassifier"


def test_unfitted_estimator_is_refused(tmp_path):
    from chainrule.estimator import MLPClassifier

    with pytest.raises(TypeError, match=r"got MLPClassifier \(not fitted yet\?\)"):
        export_onnx(MLPClassifier(), tmp_path / "m.onnx")


def test_binary_and_multilabel_estimators_export_sigmoid_outputs(tmp_path, digits):
    # One logistic output per label: onnxruntime's Sigmoid of the logits must give
    # chainrule's probabilities; a binary problem's both columns, as predict_proba's
    # (a serving audit found the one column documented as (N, n_classes)).
    from chainrule.estimator import MLPClassifier

    X_train, X_test, Y_train, _ = digits
    cases = {"binary": Y_train.argmax(1) % 2, "multilabel": Y_train[:, :3].astype(int)}
    for name, y in cases.items():
        est = MLPClassifier((16,), activation="identity", max_iter=5, random_state=0)
        est.fit(X_train, y)
        export_onnx(est, tmp_path / f"{name}.onnx")
        out = _run(tmp_path / f"{name}.onnx", X_test)
        ours = est.predict_proba(X_test)
        assert out["probabilities"].shape == ours.shape == (len(X_test), 2 if name ==
                                                            "binary" else 3)
        assert np.abs(out["probabilities"] - ours).max() <= TOL, name


def test_binary_and_multilabel_label_outputs(tmp_path, digits):
    # A binary problem (one logistic output) names the class above probability 1/2,
    # with string labels too; multilabel outputs have no single label per row.
    from chainrule.estimator import MLPClassifier

    X_train, X_test, Y_train, _ = digits
    names = np.array(["even", "odd"])[Y_train.argmax(1) % 2]
    est = MLPClassifier((16,), max_iter=20, random_state=0).fit(X_train, names)
    export_onnx(est, tmp_path / "binary.onnx")
    out = _run(tmp_path / "binary.onnx", X_test)
    predicted = est.predict(X_test)
    assert set(predicted) == {"even", "odd"}  # both classes occur, so the test can fail
    assert out["label"].tolist() == predicted.tolist()

    est = MLPClassifier((16,), max_iter=5, random_state=0).fit(X_train,
                                                                Y_train[:, :3].astype(int))
    export_onnx(est, tmp_path / "multilabel.onnx")
    assert "label" not in _run(tmp_path / "multilabel.onnx", X_test)


def test_a_float64_convolution_exports_in_float32_unless_float64_is_asked(tmp_path):
    import warnings

    import chainrule as cr

    def cnn(dtype):
        return cr.Sequential([cr.Unflatten((1, 6, 6)), cr.Conv2D(1, 2, 3), cr.Flatten(),
                              cr.Affine(32, 3)], rng=0, dtype=dtype)

    # By default a file onnxruntime opens (it wrote float64 after a warning, and the
    # session then failed), as chainrule export does; float64 asked for still warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_onnx(cnn(np.float64), tmp_path / "default.onnx")
    X6 = np.random.default_rng(1).normal(size=(4, 36))
    np.testing.assert_allclose(_run(tmp_path / "default.onnx", X6.astype(np.float32))[
        "probabilities"], cnn(np.float64).predict(X6), rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="onnxruntime runs only in float32"):
        export_onnx(cnn(np.float64), tmp_path / "c64.onnx", dtype=np.float64)
    with pytest.raises(Exception, match="(?i)not_implemented|could not find"):
        ort.InferenceSession(str(tmp_path / "c64.onnx"))   # what the warning foretells
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_onnx(cnn(np.float32), tmp_path / "c32.onnx")
        export_onnx(MLP([4, 3, 2], rng=0), tmp_path / "mlp64.onnx")  # no conv: no warning
        # the float64 network itself, exported in float32: onnxruntime runs it
        export_onnx(cnn(np.float64), tmp_path / "cast.onnx", dtype=np.float32)
    X = np.random.default_rng(0).normal(size=(5, 36))
    out = _run(tmp_path / "cast.onnx", X.astype(np.float32))
    np.testing.assert_allclose(out["probabilities"], cnn(np.float64).predict(X), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        export_onnx(cnn(np.float64), tmp_path / "x.onnx", dtype=np.float16)


def test_chainrule_export_dtype_float32_runs_a_float64_cnn_in_onnxruntime(tmp_path, capsys):
    from chainrule.cli import main

    rng = np.random.default_rng(0)
    X = rng.random((120, 64))
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(120) % 3)
    assert main(["train", "--model", "cnn", "--data", str(tmp_path / "d.npz"), "-q",
                 "--epochs", "1", "--save", str(tmp_path / "cnn.npz")]) == 0
    assert main(["export", str(tmp_path / "cnn.npz"), str(tmp_path / "cnn.onnx"),
                 "--dtype", "float32"]) == 0
    from chainrule import io

    out = _run(tmp_path / "cnn.onnx", X.astype(np.float32))
    np.testing.assert_allclose(out["probabilities"], io.load(tmp_path / "cnn.npz").predict(X),
                               rtol=1e-4, atol=1e-5)


def test_a_binary_network_exports_its_own_one_column(tmp_path):
    # Each file gives what the exported object's predict_proba gives: a network with one
    # logistic output its one column, an estimator both (the test above).
    model = MLP([6, 5, 1], loss="binary_cross_entropy", rng=0)
    export_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(0).standard_normal((9, 6))
    out = _run(tmp_path / "m.onnx", X)
    assert out["probabilities"].shape == model.predict_proba(X).shape == (9, 1)
    assert np.abs(out["probabilities"] - model.predict_proba(X)).max() <= TOL
    assert set(out["label"].tolist()) <= {0, 1}


@pytest.mark.parametrize("norm", ["batch", "layer", "layer_no_bias", "layer_plain"])
def test_float64_normalisations_match_to_rounding(norm, tmp_path):
    """ONNX holds BatchNormalization's and LayerNormalization's epsilon as float32 (1e-5
    is 9.99999975e-06): on a tiny variance a float64 graph was 1e-8 off chainrule's. The
    variance of a batch normalisation takes the difference, and a float64 layer
    normalisation is composed of ReduceMean, Sqrt and the like; float32 keeps the
    operator."""
    import chainrule as cr

    layer = {"batch": cr.BatchNorm1d(6), "layer": cr.LayerNorm(6),
             "layer_no_bias": cr.LayerNorm(6, bias=False),
             "layer_plain": cr.LayerNorm(6, elementwise_affine=False)}[norm]
    model = cr.Sequential([cr.Affine(4, 6), layer, cr.Affine(6, 3)], rng=0)
    if norm == "batch":
        for name in model.buffers:
            if name.startswith("running_var"):
                model.buffers[name][:] = 1e-6
    X = np.random.default_rng(0).normal(size=(20, 4)) * 1e-3
    export_onnx(model, tmp_path / "m64.onnx")
    probs = _run(tmp_path / "m64.onnx", X)["probabilities"]
    np.testing.assert_allclose(probs, model.predict_proba(X), rtol=1e-13, atol=1e-15)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m64.onnx")).graph.node}
    assert "LayerNormalization" not in ops
    model32 = cr.Sequential([cr.Affine(4, 6), type(layer)(6) if norm == "batch" else
                             cr.LayerNorm(6), cr.Affine(6, 3)], rng=0, dtype=np.float32)
    export_onnx(model32, tmp_path / "m32.onnx")
    ops32 = {node.op_type for node in onnx.load(str(tmp_path / "m32.onnx")).graph.node}
    assert ("LayerNormalization" in ops32) == (norm != "batch")


def test_poisson_regressors_export_their_predicted_means(tmp_path):
    """A log link: the graph's outputs are exp(logits), the predicted means the
    estimator's and the network's predict give, and its logits (both to rounding)."""
    import warnings

    import chainrule as cr

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.poisson(2, size=30).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cr.MLPRegressor(loss="poisson", max_iter=20, random_state=0).fit(X, y)
    export_onnx(est, tmp_path / "e.onnx")
    out = _run(tmp_path / "e.onnx", X)
    assert set(out) == {"outputs", "logits"}
    np.testing.assert_allclose(out["outputs"][:, 0], est.predict(X), rtol=1e-14)
    net = cr.MLP([4, 5, 1], loss="poisson", rng=0)
    export_onnx(net, tmp_path / "n.onnx")
    out = _run(tmp_path / "n.onnx", X)
    # a Poisson network's predict gives its means, exp(z), as the estimator's does
    np.testing.assert_allclose(out["outputs"], net.predict(X), rtol=1e-14)
    np.testing.assert_allclose(out["logits"], net.forward(X), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(net.predict(X), np.exp(net.forward(X)), rtol=1e-15)


def test_an_estimator_fitted_on_a_dataframe_exports_its_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    import chainrule as cr

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["age", "income", "score"])
    clf = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with pytest.warns(Warning):   # (5 iterations: not converged)
        clf.fit(frame, np.arange(40) % 2)
    export_onnx(clf, tmp_path / "c.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "c.onnx")).metadata_props}
    assert json.loads(props["feature_names"]) == ["age", "income", "score"]
