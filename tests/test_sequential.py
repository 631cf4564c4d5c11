"""Sequential, buffers and the tools that explain any layer (issue 13, items 1, 2, 4)."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.layers import Affine, Dropout, Layer, ReLU, Tanh
from chainrule.losses import CategoricalCrossEntropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_layers import BatchNorm1d, LayerNorm  # noqa: E402


def bn_net(rng=0, width=6):
    return cr.Sequential([Affine(5, width), BatchNorm1d(width), ReLU(), Affine(width, 3)],
                         rng=rng)


def data(n=40, seed=1):
    random = np.random.default_rng(seed)
    X = random.standard_normal((n, 5)) * 3 + 1
    return X, np.eye(3)[random.integers(0, 3, n)]


# -- names and draws -------------------------------------------------------------------
def test_sequential_names_params_and_buffers_by_layer():
    model = bn_net()
    assert list(model.params) == ["W1", "b1", "gamma2", "beta2", "W3", "b3"]
    assert list(model.buffers) == ["running_mean2", "running_var2"]
    assert model.params["gamma2"].shape == (6,) and model.params["W3"].shape == (6, 3)
    single = cr.Sequential([Affine(4, 3)], rng=0)
    assert list(single.params) == ["W", "b"] and single.buffers == {}


def test_sequential_draws_xavier_weights_in_layer_order():
    model = cr.Sequential([Affine(5, 4), Tanh(), Affine(4, 3)], rng=0)
    # Independently: W1 ~ U(-a, a), a = sqrt(6 / (5 + 4)), then W2, from one generator.
    random = np.random.default_rng(0)
    W1 = random.uniform(-np.sqrt(6 / 9), np.sqrt(6 / 9), size=(5, 4))
    W2 = random.uniform(-np.sqrt(6 / 7), np.sqrt(6 / 7), size=(4, 3))
    assert np.array_equal(model.params["W1"], W1) and np.array_equal(model.params["W2"], W2)
    assert not model.params["b1"].any()


def test_mlp_is_a_sequential_with_the_same_draws():
    mlp = cr.MLP([5, 4, 3], activation="tanh", dropout=0.5, rng=7)
    seq = cr.Sequential([Affine(5, 4), Tanh(), Dropout(0.5), Affine(4, 3)], rng=7)
    assert isinstance(mlp, cr.Sequential)
    assert list(mlp.params) == list(seq.params)
    assert all(np.array_equal(mlp.params[k], seq.params[k]) for k in mlp.params)


def test_sequential_refuses_a_layer_without_sizes_or_methods():
    with pytest.raises(ValueError, match=r"Affine\(\) has no sizes"):
        cr.Sequential([Affine(), ReLU()])
    with pytest.raises(TypeError, match=r"layers\[1\] must have forward and backward"):
        cr.Sequential([Affine(3, 2), "relu"])
    with pytest.raises(ValueError, match="Affine takes both sizes or neither"):
        Affine(3)


def test_hand_built_network_collects_the_buffers():
    bn = BatchNorm1d(4)
    net = cr.Network([(Affine(), ("W1", "b1")), (bn, ("g", "be"))],
                     {"W1": np.ones((3, 4)), "b1": np.zeros(4), "g": np.ones(4),
                      "be": np.zeros(4)}, CategoricalCrossEntropy())
    assert list(net.buffers) == ["running_mean2", "running_var2"]
    with pytest.raises(ValueError, match=r"buffer names \['g'\] are parameter names too"):
        cr.Network([(Affine(), ("W1", "b1")), (BatchNorm1d(4), ("g", "be"))],
                   {"W1": np.ones((3, 4)), "b1": np.zeros(4), "g": np.ones(4),
                    "be": np.zeros(4)}, CategoricalCrossEntropy(),
                   buffers={"running_mean2": np.zeros(4), "running_var2": np.ones(4),
                            "g": np.ones(4)})


# -- buffers are the network's -----------------------------------------------------------
def test_buffers_are_updated_in_place_and_only_in_training():
    model = bn_net()
    X, _ = data()
    before = model.buffers["running_mean2"]
    model.forward(X)
    assert not before.any()                      # evaluation mode: unchanged
    model.forward(X, training=True)
    assert model.buffers["running_mean2"] is before  # same array, updated in place
    Z1 = X @ model.params["W1"] + model.params["b1"]
    assert np.allclose(before, 0.1 * Z1.mean(axis=0))


def _fit(model, **kwargs):
    X, Y = data()
    return cr.fit(model, X, Y, optimizer=cr.Adam(lr=0.05), batch_size=8, rng=0,
                  progress=False, **kwargs)


def test_resume_is_bit_identical_buffers_included(tmp_path):
    full = bn_net()
    _fit(full, epochs=4)
    ckpt = tmp_path / "run.npz"
    first = bn_net()
    _fit(first, epochs=2, checkpoint=ckpt)
    resumed = bn_net()
    _fit(resumed, epochs=4, checkpoint=ckpt, resume=True)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    for k in full.buffers:
        assert np.array_equal(full.buffers[k], resumed.buffers[k]), k
    # The layer reads the network's arrays.
    assert resumed.layers[1][0].running_var is resumed.buffers["running_var2"]


def test_early_stopping_restores_the_best_epochs_buffers():
    seen = []
    model = bn_net()
    X, Y = data()
    history = cr.fit(model, X, Y, optimizer=cr.Adam(lr=0.05), batch_size=8, rng=0,
                     progress=False, epochs=30, validation_data=data(20, seed=5),
                     early_stopping=cr.EarlyStopping(patience=2),
                     callbacks=[lambda e, logs, m: seen.append(
                         {k: b.copy() for k, b in m.buffers.items()})])
    best = history.best_epoch
    assert best < len(seen) - 1       # it did stop after a worse epoch
    for k, b in model.buffers.items():
        assert np.array_equal(b, seen[best][k]), k


def test_divergence_rollback_restores_buffers():
    model = cr.Sequential([Affine(5, 6), ReLU(), Affine(6, 6), BatchNorm1d(6), Affine(6, 3)],
                          rng=0)
    X, Y = data()

    def state(m):
        return {k: a.copy() for k, a in {**m.params, **m.buffers}.items()}

    seen = [state(model)]  # full batch: the state at the start of each epoch
    with pytest.raises(cr.TrainingDivergedError, match="running statistic") as info:
        cr.fit(model, X * 1e3, Y, optimizer=cr.SGD(lr=1e12), epochs=50, rng=0,
               progress=False, callbacks=[lambda e, logs, m: seen.append(state(m))])
    # The epoch that failed started from seen[-1], whose forward pass made the buffers
    # non-finite: params and buffers go back together to the start of the epoch before.
    epoch = info.value.epoch
    assert epoch == len(seen) - 1 >= 1
    assert f"restored to their values at the start of epoch {epoch - 1}" in str(info.value)
    for k, a in {**model.params, **model.buffers}.items():
        assert np.array_equal(a, seen[-2][k]), k
    assert all(np.isfinite(p).all() for p in model.params.values())


# -- model files -----------------------------------------------------------------------
def test_save_and_load_a_sequential_with_a_custom_layer(tmp_path):
    model = bn_net()
    _fit(model, epochs=2)
    path = tmp_path / "bn.npz"
    cr.io.save(model, path)
    # The class shares the built-in's name: the error says whose it is, not "neither
    # built in" beside a list of built-ins that holds the name.
    with pytest.raises(cr.io.ModelFileError, match="layers.1. is a layer of your own class "
                       "named 'BatchNorm1d' .saved as not built in., not chainrule's "
                       "BatchNorm1d; pass load.*custom_layers"):
        cr.io.load(path)
    again = cr.io.load(path, custom_layers={"BatchNorm1d": BatchNorm1d})
    X, _ = data(10, seed=3)
    assert np.array_equal(again.predict(X), model.predict(X))
    for k in model.buffers:
        assert np.array_equal(again.buffers[k], model.buffers[k])
    assert again.summary() == model.summary()


def test_save_refuses_a_custom_layer_without_get_config(tmp_path):
    model = cr.Sequential([Affine(5, 4), LayerNorm(4), Affine(4, 3)], rng=0)
    with pytest.raises(TypeError, match="LayerNorm layer: give it a get_config"):
        cr.io.save(model, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_save_refuses_a_get_config_its_class_would_not_take(tmp_path):
    """A config that load could not rebuild is refused at save, not found at load."""
    class Renamed(Layer):
        def __init__(self, width):
            super().__init__()
            self.width = width

        def get_config(self):
            return {"size": self.width}   # not the constructor's name

        def forward(self, inputs):
            return inputs

        def backward(self, d_out):
            return d_out

    model = cr.Sequential([Affine(5, 4), Renamed(4), Affine(4, 3)], rng=0)
    with pytest.raises(TypeError, match=r"returned \{'size': 4\}, which Renamed\(\*\*config\) "
                                        r"refuses .*unexpected keyword argument 'size'"):
        cr.io.save(model, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_custom_loss_trains_but_is_not_stored_and_says_so(tmp_path):
    class Halved(CategoricalCrossEntropy):
        pass

    model = cr.Sequential([Affine(4, 3)], loss=Halved(), rng=0)
    with pytest.raises(TypeError, match=r"Halved loss: model files store the built-in losses "
                                        r".* set model.loss after loading"):
        cr.io.save(model, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"or a Loss instance \(a subclass of "
                                         r"chainrule.losses.Loss\), got <object"):
        cr.Sequential([Affine(4, 3)], loss=object(), rng=0)


def test_a_layer_that_promotes_a_float32_network_to_float64_is_named_once():
    class Doubled(Layer):   # np.array([2.0]) is float64: a learner's usual slip
        def forward(self, inputs):
            return inputs * np.array([2.0])

        def backward(self, d_out):
            return d_out * np.array([2.0])

    model = cr.Sequential([Affine(4, 5), Doubled(), Affine(5, 3)], rng=0, dtype=np.float32)
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"layers\[1\] \(Doubled\(\)\) returned float64 "
                                         r"from float32 inputs") as caught:
        cr.fit(model, X, np.arange(30) % 3, optimizer="adam", epochs=2, batch_size=10,
               progress=False)
        model.predict(X)
    assert sum("returned float64" in str(w.message) for w in caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # built-in layers keep the dtype: no warning
        cr.fit(cr.Sequential([Affine(4, 5), cr.ReLU(), Dropout(0.2), cr.BatchNorm1d(5),
                              Affine(5, 3)], rng=0, dtype=np.float32),
               X, np.arange(30) % 3, optimizer="adam", epochs=2, batch_size=10, progress=False)


def test_custom_layer_mistakes_get_messages_that_name_them():
    class Plain:   # no Layer base, so no repr of its own
        def forward(self, inputs):
            return inputs

        def backward(self, d_out):
            return d_out

    summary = cr.Sequential([Affine(3, 2), Plain()], rng=0).summary()
    assert "H1 = Plain " in summary and " at 0x" not in summary
    with pytest.raises(TypeError, match="a layer of your own goes in a Sequential"):
        cr.MLP([4, 8, 3], activation=ReLU())
    with pytest.raises(ValueError, match=r"one per hidden layer \(2\), got \['relu'\]"):
        cr.MLP([4, 8, 8, 3], activation=["relu"])
    with pytest.raises(TypeError, match=r"build a fresh layer on each call .* got the layer "
                                        r"ReLU\(\) itself"):
        cr.check_layer(ReLU(), (4, 3))


def test_save_and_load_a_sequential_of_built_in_layers(tmp_path):
    model = cr.Sequential([Affine(5, 4), cr.LeakyReLU(0.2), Dropout(0.3), Affine(4, 3)],
                          rng=0)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert [repr(layer) for layer, _ in again.layers] == \
        ["Affine(5, 4)", "LeakyReLU(negative_slope=0.2)", "Dropout(p=0.3)", "Affine(4, 3)"]
    X, _ = data(6)
    assert np.array_equal(again.predict(X), model.predict(X))


# -- summary and explain for any layer ------------------------------------------------------
def test_summary_of_one_dimensional_parameters_and_buffers():
    text = bn_net().summary()
    assert "gamma2 (6,), beta2 (6,)" in text
    assert "buffers (not trained): running_mean2 (6,), running_var2 (6,)" in text
    # 5*6+6 + 6+6 + 6*3+3 = 36 + 12 + 21
    assert "total parameters: 69" in text


class Square:
    """The README's layer: no equations, no base class."""

    def forward(self, inputs):
        self.cache = inputs
        return inputs * inputs

    def backward(self, d_out):
        return 2 * self.cache * d_out


class Scale:
    """A layer whose equations name its parameter by its own name."""

    param_names = ("s",)
    equations = ("{y} = {x} * {s}", ("d{s} = sum_rows({x} * d{y})", "d{x} = d{y} * {s}",
                                     "d{q} = unknown placeholder"))

    def init_params(self, rng, dtype):
        return [np.ones(4, dtype=dtype)]

    def forward(self, x, s):
        self.cache = (x, s)
        return x * s

    def backward(self, d_out):
        x, s = self.cache
        return d_out * s, (x * d_out).sum(axis=0)


def test_explain_any_layer_unique_nodes_and_true_gradient_shapes():
    model = cr.Sequential([Affine(5, 4), BatchNorm1d(4), ReLU(), Square(), Scale(),
                           Affine(4, 3)], rng=0)
    lines = [line.strip() for line in model.explain(np.ones((7, 5))).splitlines()]
    assert model.node_names() == ["X", "Z1", "H2", "H2_2", "H2_3", "H3", "Z4"]
    assert "H2 = BatchNorm1d(Z1, gamma2, beta2) : (N, 4) -> (N, 4)" in lines
    assert "H2_2 = max(0, H2) : (N, 4) -> (N, 4)" in lines
    assert "dgamma2 = BatchNorm1d.backward(dH2)[gamma] : (4,)" in lines
    assert "H2_3 = Square(H2_2) : (N, 4) -> (N, 4)" in lines
    assert "H3 = H2_3 * s3 : (N, 4) -> (N, 4)" in lines
    assert "ds3 = sum_rows(H2_3 * dH3) : (4,)" in lines
    assert "dH2_3 = dH3 * s3 : (N, 4)" in lines
    assert "d{q} = unknown placeholder : (N, 4)" in lines


def test_a_sequential_of_built_in_layers_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = cr.Sequential([Affine(5, 4), cr.LeakyReLU(0.2), Dropout(0.3), Affine(4, 3)],
                          rng=0)
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                   providers=["CPUExecutionProvider"])
    X, _ = data(6)
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    probabilities = [o for o in outputs if o.shape == (6, 3) and np.allclose(o.sum(1), 1)]
    assert probabilities and np.allclose(probabilities[0], model.predict_proba(X), atol=1e-12)


def test_bias_free_affine_before_batchnorm_trains_saves_exports_and_explains(tmp_path, torch):
    """PyTorch's ``Linear(bias=False)`` + ``BatchNorm1d`` block: named W1 only, the
    gradients of the network against torch, a model file and ONNX that give the same
    predictions, equations without a bias; folding a standardisation needs a bias."""
    from sklearn.datasets import load_digits

    from chainrule.folding import fold_standardization
    from conftest import torch_network_loss_and_grads
    ort = pytest.importorskip("onnxruntime")
    X, y = load_digits(return_X_y=True)
    X = X / 16
    model = cr.Sequential([cr.Affine(64, 32, bias=False), cr.BatchNorm1d(32), cr.ReLU(),
                           cr.Affine(32, 10)], rng=0)
    assert list(model.params) == ["W1", "gamma2", "beta2", "W3", "b3"]
    assert model.n_features == 64 and model.n_outputs == 10
    loss, grads = model.loss_and_grads(X[:30], y[:30])
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X[:30], np.eye(10)[y[:30]])
    assert abs(loss - ref_loss) < 1e-12
    for k in model.params:
        assert np.max(np.abs(grads[k] - ref_grads[k])) <= 1e-10 * np.max(np.abs(ref_grads[k]))
    cr.fit(model, X, y, optimizer="adam", epochs=3, batch_size=64, rng=0, progress=False)
    assert cr.evaluate(model, X, y)["accuracy"] > 0.5   # chance is 0.1
    text = model.explain(X[:2])
    assert "Z1 = X @ W1 : (N, 64) @ (64, 32) -> (N, 32)" in text and "db1" not in text
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert repr(loaded.layers[0][0]) == "Affine(64, 32, bias=False)"
    assert np.array_equal(loaded.predict(X), model.predict(X))
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X})[2]   # a float64 model: a float64 graph
    assert np.max(np.abs(logits - model.forward(X))) < 1e-10
    with pytest.raises(TypeError, match="first layer must be Affine with a bias"):
        fold_standardization(model, np.zeros(64), np.ones(64))


class _Temperature(Layer):
    """A learned scalar temperature ``out = x * T``: a last layer whose parameter is 1-D."""

    num_params, param_names = 1, ("T",)

    def init_params(self, rng, dtype):
        return [np.full(1, 2.0, dtype)]

    def forward(self, inputs, T):
        self.cache = (inputs, T)
        return inputs * T

    def backward(self, d_out):
        inputs, T = self.cache
        return d_out * T, np.array([np.sum(d_out * inputs)])


class _Pairs(Layer):
    """``[x, x**2]``: a parameter-free layer that doubles the width (says so)."""

    def output_shape(self, shape):
        return (2 * shape[0],)

    def forward(self, inputs):
        self.cache = inputs
        return np.concatenate([inputs, inputs ** 2], axis=1)

    def backward(self, d_out):
        h = self.cache.shape[1]
        return d_out[:, :h] + 2 * self.cache * d_out[:, h:]


@pytest.mark.parametrize("layers, n_in, n_out", [
    (lambda: [cr.Dropout(0.2), cr.Affine(6, 4)], 6, 4),                 # nn.Dropout first
    (lambda: [cr.ReLU(), cr.Affine(6, 4), cr.Tanh()], 6, 4),
    (lambda: [cr.Affine(6, 4), _Temperature()], 6, 4),                  # a 1-D last parameter
    (lambda: [cr.Affine(6, 3), _Pairs()], 6, 6),                        # output_shape widens
    (lambda: [cr.Unflatten((1, 2, 3)), cr.Conv2D(1, 5, (2, 3)), cr.Flatten()], 6, 5),
])
def test_feature_and_output_counts_follow_the_layers(layers, n_in, n_out, rng):
    """The widths come from what the layers do, not from the first and last parameter:
    a network starting with Dropout, ending in a custom or convolutional layer trains
    on labels of all its outputs."""
    model = cr.Sequential(layers(), rng=0)
    assert (model.n_features, model.n_outputs) == (n_in, n_out)
    X, y = rng.normal(size=(40, n_in)), np.arange(40) % n_out
    cr.fit(model, X, y, optimizer="adam", epochs=2, batch_size=16, rng=0, progress=False)
    assert model.predict_proba(X).shape == (40, n_out)
    with pytest.raises(ValueError, match=f"class indices in \\[0, {n_out - 1}\\]"):
        cr.fit(model, X, np.full(40, n_out), optimizer="adam", epochs=1, progress=False)


def test_a_layer_with_init_params_but_no_param_names_is_refused():
    class Scaled(Layer):
        def init_params(self, rng, dtype):
            return [np.ones((3, 3), dtype)]

        def forward(self, inputs, W):
            return inputs @ W

        def backward(self, d_out):
            return d_out

    with pytest.raises(TypeError, match=r"layers\[1\] .* has init_params but no param_names"):
        cr.Sequential([cr.Affine(4, 3), Scaled()], rng=0)


def test_a_layer_that_declares_its_parameters_only_halfway_is_named():
    """num_params without param_names (the arrays a network would never pass), and
    param_names without init_params (nothing to create them)."""
    class CountOnly(Layer):
        num_params = 1

        def forward(self, inputs, a):
            return inputs * a

        def backward(self, d_out):
            return d_out, d_out

    with pytest.raises(TypeError, match=r"layers\[0\] .* says num_params = 1 but declares "
                                        r"no param_names"):
        cr.Sequential([CountOnly(), cr.Affine(3, 2)], rng=0)
    CountOnly.param_names = ("a",)
    with pytest.raises(ValueError, match=r"layers\[0\] .* declares parameters \['a1'\] but "
                                         r"has no init_params\(rng, dtype\) method"):
        cr.Sequential([CountOnly(), cr.Affine(3, 2)], rng=0)


def test_label_smoothing_trains_saves_loads_and_is_part_of_a_run(tmp_path):
    """A smoothed loss is stored with its eps in Sequential and MLP model files, and a
    checkpoint of another eps is another run; files of default losses are unchanged."""
    from chainrule.checkpoint import CheckpointMismatchError

    X = np.random.default_rng(0).normal(size=(60, 4))
    y = np.arange(60) % 3
    for model in (cr.Sequential([Affine(4, 5), cr.ReLU(), Affine(5, 3)], rng=0,
                                loss=CategoricalCrossEntropy(label_smoothing=0.2)),
                  cr.MLP([4, 5, 3], rng=0, loss=CategoricalCrossEntropy(label_smoothing=0.1))):
        cr.fit(model, X, y, optimizer="adam", epochs=2, progress=False)
        cr.io.save(model, tmp_path / "m.npz")
        back = cr.io.load(tmp_path / "m.npz")
        assert back.loss.label_smoothing == model.loss.label_smoothing
        assert back.loss_and_grads(X, y)[0] == model.loss_and_grads(X, y)[0]
        assert np.array_equal(back.predict(X), model.predict(X))
    state, _ = cr.io.sequential.sequential_state(cr.Sequential([Affine(4, 3)], rng=0))
    assert "loss_config" not in state["config"]   # default loss: the file as before

    def run(eps, epochs, **kw):
        model = cr.MLP([4, 5, 3], rng=0, loss=CategoricalCrossEntropy(label_smoothing=eps))
        return cr.fit(model, X, y, optimizer="adam", epochs=epochs, progress=False, rng=0,
                      checkpoint=tmp_path / "ck.npz", **kw)
    run(0.1, 2)
    assert run(0.1, 3, resume=True).epochs == 3
    with pytest.raises(CheckpointMismatchError, match="model.loss"):
        run(0.3, 4, resume=True)


def test_a_checkpoint_knows_a_sequentials_layer_settings(tmp_path):
    # Settings that change no parameter's shape (a padding mode, a slope, a pool's
    # ceil_mode) are part of the run: resuming under others is refused; the same
    # network resumes; a checkpoint written before layers were recorded still resumes.
    import json

    from chainrule._fileformat import read_archive, write_archive
    from chainrule.checkpoint import CheckpointMismatchError

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 25)), np.arange(24) % 3

    def net(mode="zeros", slope=0.1):
        return cr.Sequential([cr.Unflatten((1, 5, 5)), cr.Conv2D(1, 2, 3, padding=1,
                                                                  padding_mode=mode),
                              cr.LeakyReLU(slope), cr.Flatten(), cr.Affine(50, 3)], rng=0)

    def run(model, epochs, **kw):
        return cr.fit(model, X, y, optimizer="adam", epochs=epochs, batch_size=8, rng=0,
                      progress=False, checkpoint=tmp_path / "ck.npz", **kw)
    run(net(), 2)
    for changed in (net(mode="reflect"), net(slope=-0.1)):
        with pytest.raises(CheckpointMismatchError, match="model.layers"):
            run(changed, 3, resume=True)
    assert run(net(), 3, resume=True).epochs == 3
    # An older checkpoint, without the layers' entry: compared as it was written.
    arrays, meta = read_archive(tmp_path / "ck.npz")
    del meta["identity"]["model"]["layers"]
    write_archive(tmp_path / "ck.npz", arrays, json.loads(json.dumps(meta)))
    assert run(net(), 4, resume=True).epochs == 4


def test_backward_after_an_evaluation_forward_warns_once_where_the_mode_matters():
    """forward's default mode is evaluation (PyTorch's modules train by default): a
    loop written the PyTorch way, forward then backward, gets the evaluation-mode
    gradients of a network with Dropout or batch normalisation. It is said once."""
    import warnings

    X = np.random.default_rng(0).normal(size=(8, 4))
    y = np.arange(8) % 2

    def manual_step(model, **forward_kwargs):
        out = model.forward(X, **forward_kwargs)
        model.loss.forward(out, y)
        return model.backward(model.loss.backward()[0])

    model = cr.Sequential([cr.Affine(4, 5), cr.BatchNorm1d(5), cr.ReLU(), cr.Dropout(0.5),
                           cr.Affine(5, 2)], rng=0)
    with pytest.warns(UserWarning, match=r"backward after an evaluation-mode forward .*"
                                         r"BatchNorm1d\(5\), Dropout\(p=0.5\).*training=True"):
        eval_grads = manual_step(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manual_step(model)                  # once per network
        train_grads = manual_step(model, training=True)
        manual_step(cr.MLP([4, 5, 2], rng=0))   # nothing depends on the mode
        fresh = cr.Sequential([cr.Affine(4, 3), cr.Dropout(0.2), cr.Affine(3, 2)], rng=0)
        fresh.loss_and_grads(X, y, training=False)   # a mode asked for
        manual_step(fresh, training=True)
    assert not np.allclose(eval_grads["W1"], train_grads["W1"])


def test_print_shows_the_layers_as_torch_prints_a_module():
    model = cr.Sequential([cr.Affine(4, 3), cr.ReLU(), cr.Dropout(0.2), cr.Affine(3, 2)],
                          rng=0, dtype=np.float32)
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Affine(4, 3)  [W1, b1]\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.2)\n"
        "  (3): Affine(3, 2)  [W2, b2]\n"
        "  loss: CategoricalCrossEntropy(), float32, 23 parameters\n"
        ")")
