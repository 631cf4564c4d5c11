"""Tests for chainrule.io.save / load: round trips and every refusal."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import chainrule
from chainrule import _fileformat
from chainrule import io as cio
from chainrule.homework import FeedforwardNeuralNet, LogisticRegression
from chainrule.io import ModelFileError, load, read_metadata, save
from chainrule.io.estimators import STATE_CLASSES, StateCodec
from chainrule.io.networks import network_from_state, network_state
from chainrule.layers import Affine, ReLU
from chainrule.losses import CategoricalCrossEntropy, MeanSquaredError
from chainrule.models import MLP, Network

RNG = np.random.default_rng(1234)
X4 = RNG.standard_normal((7, 4))


def _one_hot(n, k, seed=0):
    y = np.random.default_rng(seed).integers(0, k, size=n)
    return np.eye(k)[y]


def _trained_logreg():
    model = LogisticRegression(4, 3, learning_rate=0.05)
    Y = _one_hot(len(X4), 3)
    for _ in range(3):
        model.step(X4, Y)
    return model


def _models():
    return {
        "mlp_relu": MLP([4, 8, 3], rng=0),
        "mlp_single_layer": MLP([4, 3], rng=1),
        "mlp_float32_mixed_dropout_mse": MLP([4, 6, 5, 2], activation=["tanh", "leaky_relu"],
                                             dropout=0.25, rng=2, dtype=np.float32,
                                             loss="mse"),
        "mlp_sigmoid_he": MLP([4, 5, 3], activation="sigmoid", init="he", rng=3),
        "logreg": _trained_logreg(),
        "ffnn": FeedforwardNeuralNet(4, 6, 3, learning_rate=0.2, rng=4),
    }


@pytest.mark.parametrize("key", list(_models()))
def test_round_trip_is_bit_exact(tmp_path, key):
    model = _models()[key]
    path = tmp_path / "model.npz"
    save(model, path)
    state = np.random.get_state()
    loaded = load(path)
    after = np.random.get_state()
    # Loading draws nothing from NumPy's global generator.
    assert state[0] == after[0] and state[2:] == after[2:]
    np.testing.assert_array_equal(state[1], after[1])

    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert list(loaded.params) == list(model.params)
    for name, p in model.params.items():
        assert loaded.params[name].dtype == p.dtype
        assert loaded.params[name].shape == p.shape
        assert loaded.params[name].tobytes() == p.tobytes(), name
    assert [repr(layer) for layer, _ in loaded.layers] == [repr(layer) for layer, _ in
                                                            model.layers]
    assert type(loaded.loss) is type(model.loss)
    X = X4.astype(model.dtype)
    assert loaded.predict(X).tobytes() == model.predict(X).tobytes()
    assert loaded.predict(X).dtype == model.dtype
    if hasattr(model, "learning_rate"):
        assert loaded.learning_rate == model.learning_rate


@pytest.mark.parametrize("cls, args", [(LogisticRegression, (4, 3, 0.05)),
                                       (FeedforwardNeuralNet, (4, 6, 3, 0.2, 4))])
def test_homework_model_keeps_training_identically(tmp_path, cls, args):
    model = cls(*args)
    path = tmp_path / "hw.npz"
    save(model, path)
    loaded = load(path)
    Y = _one_hot(len(X4), 3, seed=5)
    for _ in range(3):
        assert loaded.step(X4, Y) == model.step(X4, Y)
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])


def test_file_layout_matches_the_documentation(tmp_path):
    path = tmp_path / "lr.npz"
    model = LogisticRegression(4, 3, learning_rate=0.05)
    save(model, path)
    arrays, meta = _fileformat.read_archive(path)
    assert sorted(arrays) == ["W", "b"]
    assert meta == {"object": "model", "class": "LogisticRegression",
                    "config": {"num_features": 4, "num_classes": 3, "learning_rate": 0.05},
                    "chainrule_version": chainrule.__version__, "metadata": {}}
    mlp_path = tmp_path / "mlp.npz"
    save(MLP([4, 8, 3], activation="tanh", rng=0), mlp_path)
    arrays, meta = _fileformat.read_archive(mlp_path)
    assert sorted(arrays) == ["W1", "W2", "b1", "b2"]
    assert meta["class"] == "MLP"
    assert meta["config"] == {"layer_sizes": [4, 8, 3], "activation": "tanh", "dropout": 0.0,
                              "init": "xavier", "dtype": "float64", "loss": "cross_entropy"}
    with zipfile.ZipFile(mlp_path) as zf:
        assert sorted(zf.namelist()) == ["W1.npy", "W2.npy", "__chainrule__.json", "b1.npy",
                                         "b2.npy"]


def test_loss_object_and_callable_init_round_trip(tmp_path):
    def my_init(shape, rng=None, dtype=np.float64):
        return np.full(shape, 0.125, dtype=dtype)

    model = MLP([4, 5, 2], init=my_init, loss=MeanSquaredError(), rng=0)
    save(model, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert isinstance(loaded.loss, MeanSquaredError)
    assert loaded.config["loss"] == "mse"
    # An allow-listed name: a callable is "custom" (issue 11), not its free-text name.
    assert loaded.config["init"] == "custom"
    np.testing.assert_array_equal(loaded.forward(X4), model.forward(X4))


def test_rng_drives_dropout_after_loading(tmp_path):
    model = MLP([4, 16, 3], dropout=0.5, rng=0)
    save(model, tmp_path / "m.npz")
    a = load(tmp_path / "m.npz", rng=7).forward(X4, training=True)
    b = load(tmp_path / "m.npz", rng=7).forward(X4, training=True)
    c = load(tmp_path / "m.npz", rng=8).forward(X4, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_loaded_params_are_writeable_and_independent(tmp_path):
    model = MLP([4, 3], rng=0)
    save(model, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    loaded.params["W"] += 1.0
    assert not np.array_equal(loaded.params["W"], model.params["W"])


# -- refusals on save -------------------------------------------------------------------
def test_save_refuses_custom_network(tmp_path):
    net = Network([(Affine(), ("W", "b")), (ReLU(), ())],
                  {"W": np.zeros((4, 3)), "b": np.zeros(3)}, CategoricalCrossEntropy())
    with pytest.raises(TypeError, match="cannot save a Network: supported are"):
        save(net, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_subclass_and_other_objects(tmp_path):
    class MyMLP(MLP):
        pass

    with pytest.raises(TypeError, match="cannot save a MyMLP"):
        save(MyMLP([4, 3], rng=0), tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"model must be one of .*got dict"):
        save({"W": np.zeros(2)}, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_params_that_disagree_with_the_architecture(tmp_path):
    model = LogisticRegression(4, 3)
    model.params["W"] = model.params["W"].astype(np.float32)
    with pytest.raises(ValueError, match="array 'W' has dtype <f4 .* model's dtype is <f8"):
        save(model, tmp_path / "m.npz")
    model = MLP([4, 8, 3], rng=0)
    model.params["extra"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        save(model, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_layers_changed_after_construction(tmp_path):
    model = MLP([4, 5, 3], activation="leaky_relu", rng=0)
    model.layers[1][0].negative_slope = 0.2
    with pytest.raises(ValueError, match="differ from what its config"):
        save(model, tmp_path / "m.npz")


def test_save_refuses_a_learning_rate_schedule(tmp_path):
    model = LogisticRegression(4, 3)
    model.optimizer.lr = lambda step: 0.1
    with pytest.raises(TypeError, match="learning_rate must be a number"):
        save(model, tmp_path / "m.npz")


def test_failed_save_keeps_the_previous_model(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = MLP([4, 3], rng=0)
    save(old, path)

    def broken_replace(src, dst):
        raise OSError("no space left on device")

    monkeypatch.setattr(_fileformat.os, "replace", broken_replace)
    with pytest.raises(OSError, match="no space left"):
        save(MLP([4, 3], rng=1), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path).params["W"], old.params["W"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# -- refusals on load -------------------------------------------------------------------
def _saved(tmp_path, model=None):
    path = tmp_path / "m.npz"
    save(model if model is not None else MLP([4, 8, 3], rng=0), path)
    return path


def _rewrite(path, edit_arrays=None, edit_meta=None):
    """Re-save a model file with edited content and a *valid* checksum, so that only
    load's own checks can catch the edit."""
    arrays, meta = _fileformat.read_archive(path)
    if edit_arrays:
        edit_arrays(arrays)
    if edit_meta:
        edit_meta(meta)
    _fileformat.write_archive(path, arrays, meta)


def test_load_refuses_wrong_checksum(tmp_path):
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    raw = bytearray(entries["W1.npy"])
    raw[-1] ^= 0x10
    entries["W1.npy"] = bytes(raw)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    with pytest.raises(ModelFileError, match="checksum mismatch") as info:
        load(path)
    assert str(path) in str(info.value)


def test_load_refuses_truncated_file(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 30])
    with pytest.raises(ModelFileError, match="truncated"):
        load(path)


def test_load_refuses_unknown_version(tmp_path):
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(entries["__chainrule__.json"])
    header["format_version"] = 99
    entries["__chainrule__.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    with pytest.raises(ModelFileError, match="unknown format version 99"):
        load(path)


def test_load_refuses_pickled_object(tmp_path):
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["W1.npy"] = pickle.dumps(np.zeros((4, 8)))
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    with pytest.raises(ModelFileError, match="pickled data"):
        load(path)


def test_load_refuses_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "nope.npz")


def test_load_refuses_missing_array(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, edit_arrays=lambda a: a.pop("b2"))
    with pytest.raises(ModelFileError, match=r"missing \['b2'\], unexpected \[\]") as info:
        load(path)
    assert "cannot load a model from" in str(info.value) and str(path) in str(info.value)


def test_load_refuses_extra_array(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, edit_arrays=lambda a: a.update(W3=np.zeros((3, 3))))
    with pytest.raises(ModelFileError, match=r"missing \[\], unexpected \['W3'\]"):
        load(path)


def test_load_refuses_wrong_shape(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, edit_arrays=lambda a: a.update(W1=np.zeros((5, 8))))
    with pytest.raises(ModelFileError,
                       match=r"array 'W1' has shape \(5, 8\) but the architecture needs "
                             r"\(4, 8\)"):
        load(path)


@pytest.mark.parametrize("bad_dtype", [np.float32, np.int64, ">f8"])
def test_load_refuses_wrong_dtype(tmp_path, bad_dtype):
    path = _saved(tmp_path)
    _rewrite(path, edit_arrays=lambda a: a.update(b1=a["b1"].astype(bad_dtype)))
    with pytest.raises(ModelFileError, match=r"array 'b1' has dtype .* but the model's "
                                             r"dtype is <f8"):
        load(path)


def test_load_refuses_float64_params_in_a_float32_model(tmp_path):
    path = _saved(tmp_path, MLP([4, 3], dtype=np.float32, rng=0))
    _rewrite(path, edit_arrays=lambda a: a.update(W=a["W"].astype(np.float64)))
    with pytest.raises(ModelFileError, match="array 'W' has dtype <f8"):
        load(path)


@pytest.mark.parametrize("cls_name", ["Network", "os.system", "builtins.eval", "",
                                      None, ["MLP"]])
def test_load_refuses_unknown_class(tmp_path, cls_name):
    path = _saved(tmp_path)
    _rewrite(path, edit_meta=lambda m: m.update({"class": cls_name}))
    with pytest.raises(ModelFileError, match="unknown model class") as info:
        load(path)
    assert repr(cls_name) in str(info.value)


def test_load_refuses_a_non_model_archive(tmp_path):
    path = tmp_path / "ckpt.npz"
    _fileformat.write_archive(path, {"W": np.zeros(2)}, {"object": "checkpoint"})
    with pytest.raises(ModelFileError, match="not a model file .*'checkpoint'"):
        load(path)
    _fileformat.write_archive(path, {"W": np.zeros(2)}, {})
    with pytest.raises(ModelFileError, match="not a model file"):
        load(path)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.pop("activation"), r"missing keys \['activation'\]"),
    (lambda c: c.update(evil="x"), r"unexpected keys \['evil'\]"),
    (lambda c: c.update(activation="mish"), "activation"),
    (lambda c: c.update(dropout=1.5), "dropout"),
    (lambda c: c.update(loss="hinge"), "loss"),
    (lambda c: c.update(dtype="int32"), "floating-point"),
    (lambda c: c.update(dtype="no-such-dtype"), "not a NumPy dtype"),
    (lambda c: c.update(init=["x"]), "init must be one of"),
    (lambda c: c.update(layer_sizes=[4, 8]), "missing"),
    (lambda c: c.update(layer_sizes="4,8,3"), "layer_sizes must be a list"),
    (lambda c: c.update(layer_sizes=[4, 8.0, 3]), "positive integer"),
    (lambda c: c.update(layer_sizes=[4, True, 3]), "positive integer"),
])
def test_load_refuses_bad_mlp_config(tmp_path, edit, match):
    path = _saved(tmp_path)
    _rewrite(path, edit_meta=lambda m: edit(m["config"]))
    with pytest.raises(ModelFileError, match=match):
        load(path)


def test_load_checks_sizes_before_allocating(tmp_path):
    # A config claiming a 10^12 x 10^12 layer is refused by comparing shapes, before
    # any array of that size is requested.
    path = _saved(tmp_path, MLP([4, 3], rng=0))
    _rewrite(path, edit_meta=lambda m: m["config"].update(layer_sizes=[10**12, 10**12]))
    with pytest.raises(ModelFileError, match=r"needs \(1000000000000, 1000000000000\)"):
        load(path)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(learning_rate=-1.0), "learning_rate"),
    (lambda c: c.update(num_classes=0), "num_classes must be a positive integer"),
    (lambda c: c.pop("learning_rate"), r"missing keys \['learning_rate'\]"),
])
def test_load_refuses_bad_homework_config(tmp_path, edit, match):
    path = _saved(tmp_path, LogisticRegression(4, 3))
    _rewrite(path, edit_meta=lambda m: edit(m["config"]))
    with pytest.raises(ModelFileError, match=match):
        load(path)


def test_model_file_error_is_exported_and_a_value_error():
    assert cio.ModelFileError is _fileformat.ModelFileError
    assert issubclass(ModelFileError, ValueError)


# -- the state codecs (allow-listed classes other than networks) ----------------------
class FakeEstimator:
    """A minimal estimator saved through a StateCodec, with a nested network."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, Y):
        self.model_ = MLP([X.shape[1], 5, Y.shape[1]], rng=0)
        self.classes_ = np.array(["cat", "dog", "eel"])
        return self

    def to_state(self):
        net_state, net_arrays = network_state(self.model_)
        arrays = {"model_." + k: v for k, v in net_arrays.items()}
        arrays["classes_"] = self.classes_
        return {"alpha": self.alpha, "network": net_state}, arrays

    @classmethod
    def from_state(cls, config, arrays):
        obj = cls(alpha=config["alpha"])
        net_arrays = {k[len("model_."):]: v for k, v in arrays.items()
                      if k.startswith("model_.")}
        obj.model_ = network_from_state(config["network"], net_arrays)
        obj.classes_ = arrays["classes_"]
        return obj


def _fake_codec(cls):
    return StateCodec(lambda: cls, cls.to_state, cls.from_state)


@pytest.fixture
def fake_registered(monkeypatch):
    monkeypatch.setitem(STATE_CLASSES, "FakeEstimator", _fake_codec(FakeEstimator))
    return FakeEstimator


def test_protocol_round_trip(tmp_path, fake_registered):
    est = FakeEstimator(alpha=0.5).fit(X4, _one_hot(len(X4), 3))
    save(est, tmp_path / "est.npz")
    loaded = load(tmp_path / "est.npz")
    assert type(loaded) is FakeEstimator and loaded.alpha == 0.5
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.model_.predict(X4).tobytes() == est.model_.predict(X4).tobytes()
    _, meta = _fileformat.read_archive(tmp_path / "est.npz")
    assert meta["class"] == "FakeEstimator" and meta["config"]["alpha"] == 0.5


def test_protocol_refusals_become_model_file_errors(tmp_path, fake_registered):
    est = FakeEstimator().fit(X4, _one_hot(len(X4), 3))
    path = tmp_path / "est.npz"
    save(est, path)
    _rewrite(path, edit_arrays=lambda a: a.pop("classes_"))
    with pytest.raises(ModelFileError, match="invalid FakeEstimator state"):
        load(path)
    save(est, path)
    _rewrite(path, edit_arrays=lambda a: a.update({"model_.W1": np.zeros((4, 6))}))
    with pytest.raises(ModelFileError, match=r"invalid FakeEstimator state: array 'W1' has "
                                             r"shape \(4, 6\)"):
        load(path)


def test_protocol_needs_registration(tmp_path):
    est = FakeEstimator().fit(X4, _one_hot(len(X4), 3))
    with pytest.raises(TypeError, match="model must be one of"):
        save(est, tmp_path / "est.npz")


def test_protocol_refuses_an_impostor_class(tmp_path, monkeypatch):
    class Other(FakeEstimator):
        pass

    Other.__name__ = "FakeEstimator"
    monkeypatch.setitem(STATE_CLASSES, "FakeEstimator", _fake_codec(FakeEstimator))
    est = Other().fit(X4, _one_hot(len(X4), 3))
    with pytest.raises(TypeError, match="not the registered FakeEstimator"):
        save(est, tmp_path / "est.npz")


def test_estimator_names_are_allow_listed_lazily():
    assert set(STATE_CLASSES) >= {"MLPClassifier", "MLPRegressor"}


def test_import_io_stays_light():
    code = ("import sys, chainrule.io; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'sklearn', 'chainrule.estimator')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "[]"


# -- the real scikit-learn estimators ---------------------------------------------------
def _small_classification(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    labels = np.array(["low", "mid", "high"])
    y = labels[np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])]
    return X, y


def test_mlp_classifier_round_trip(tmp_path):
    from chainrule.estimator import MLPClassifier

    X, y = _small_classification()
    est = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    save(est, tmp_path / "clf.npz")
    loaded = load(tmp_path / "clf.npz")
    assert type(loaded) is MLPClassifier
    assert loaded.get_params() == est.get_params()
    assert loaded.classes_.tolist() == est.classes_.tolist()
    assert loaded.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    assert loaded.predict(X).tolist() == est.predict(X).tolist()
    _, meta = _fileformat.read_archive(tmp_path / "clf.npz")
    assert meta["class"] == "MLPClassifier"


def test_mlp_regressor_round_trip_float32(tmp_path):
    from chainrule.estimator import MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    Y = np.c_[X[:, 0] ** 2, X[:, 1] - X[:, 2]]
    est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0,
                       dtype="float32").fit(X, Y)
    save(est, tmp_path / "reg.npz")
    loaded = load(tmp_path / "reg.npz")
    assert type(loaded) is MLPRegressor
    assert loaded.model_.dtype == np.float32
    assert loaded.predict(X).tobytes() == est.predict(X).tobytes()


def test_estimator_file_refusals(tmp_path):
    from sklearn.exceptions import NotFittedError

    from chainrule.estimator import MLPClassifier

    with pytest.raises(NotFittedError):
        save(MLPClassifier(), tmp_path / "unfitted.npz")
    assert not (tmp_path / "unfitted.npz").exists()

    X, y = _small_classification()
    path = tmp_path / "clf.npz"
    save(MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y), path)
    _rewrite(path, edit_arrays=lambda a: a.update({"model_.W1": np.zeros((5, 8))}))
    with pytest.raises(ModelFileError, match=r"invalid MLPClassifier state: .*'W1' has shape"):
        load(path)
    save(MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y), path)
    _rewrite(path, edit_arrays=lambda a: a.pop("classes_"))
    with pytest.raises(ModelFileError, match="invalid MLPClassifier state"):
        load(path)


def test_metadata_round_trips_and_is_covered_by_the_checksum(tmp_path):
    path = tmp_path / "m.npz"
    model = MLP([4, 5, 3], rng=0)
    save(model, path, metadata={"classes": ["ant", "bee", "cow"], "note": 1.5})
    assert read_metadata(path) == {"classes": ["ant", "bee", "cow"], "note": 1.5}
    assert np.array_equal(load(path).params["W1"], model.params["W1"])
    # Without metadata the dict is empty.
    save(model, tmp_path / "plain.npz")
    assert read_metadata(tmp_path / "plain.npz") == {}
    # Editing the stored JSON breaks the checksum, so names cannot be swapped silently.
    raw = bytearray((path).read_bytes())
    i = raw.find(b'"ant"')
    assert i > 0
    raw[i + 1:i + 4] = b"ANT"
    (tmp_path / "edited.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        read_metadata(tmp_path / "edited.npz")


@pytest.mark.parametrize("bad, kind", [([1, 2], TypeError), ({1: "x"}, TypeError),
                                       ({"a": object()}, TypeError),
                                       ({"a": float("nan")}, TypeError)])
def test_metadata_must_be_a_json_dict(tmp_path, bad, kind):
    path = tmp_path / "m.npz"
    with pytest.raises(kind, match="metadata"):
        save(MLP([2, 2], rng=0), path, metadata=bad)
    assert not path.exists()


# -- writing through symbolic links -------------------------------------------------------
def test_save_through_a_symlink_writes_the_target_and_keeps_the_link(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    target = models / "v2.npz"
    save(MLP([4, 3], rng=1), target)
    link = tmp_path / "current.npz"
    link.symlink_to(target)  # an absolute link
    new = MLP([4, 3], rng=2)
    save(new, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(load(target).params["W"], new.params["W"])
    np.testing.assert_array_equal(load(link).params["W"], new.params["W"])

    # A relative link is resolved from its own directory, not the working directory.
    relative = models / "latest.npz"
    os.symlink("v2.npz", relative)
    newer = MLP([4, 3], rng=3)
    save(newer, relative)
    assert relative.is_symlink() and os.readlink(relative) == "v2.npz"
    np.testing.assert_array_equal(load(target).params["W"], newer.params["W"])
    # No temporary file is left beside the target or the links.
    assert sorted(p.name for p in models.iterdir()) == ["latest.npz", "v2.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.npz", "models"]

    # A dangling link gets its target created.
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(models / "v3.npz")
    save(newer, dangling)
    assert dangling.is_symlink() and (models / "v3.npz").is_file()
    np.testing.assert_array_equal(load(models / "v3.npz").params["W"], newer.params["W"])


def test_export_onnx_through_a_symlink_writes_the_target(tmp_path):
    import onnx  # the onnx extra, installed with the test extras

    target = tmp_path / "model.onnx"
    target.write_bytes(b"an older export")
    link = tmp_path / "serving.onnx"
    link.symlink_to(target)
    cio.export_onnx(MLP([4, 5, 3], rng=0), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    graph = onnx.load(str(target)).graph
    assert [node.op_type for node in graph.node] == ["Gemm", "Relu", "Gemm", "Softmax", "ArgMax",
                                                    "Gather"]


def test_metadata_takes_numpy_scalars_and_arrays_as_their_values(tmp_path):
    model = MLP([3, 4, 2], rng=0)
    labels = np.unique(np.array([7, 3, 5]))            # int64 scalars, as classes come
    meta = {"classes": list(labels), "names": np.array(["a", "b"]), "w": np.float32(0.5),
            "flag": np.bool_(True)}
    save(model, tmp_path / "m.npz", metadata=meta)
    assert read_metadata(tmp_path / "m.npz") == {"classes": [3, 5, 7], "names": ["a", "b"],
                                                    "w": 0.5, "flag": True}
    for bad in (np.array([object()]), np.float32("nan"), object()):
        with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
            save(model, tmp_path / "bad.npz", metadata={"x": bad})
    assert not (tmp_path / "bad.npz").exists()
