"""CNNs built by Sequential from the image layers: gradients against PyTorch through a
whole network, fit, bit-exact resume, model files, ONNX export, shapes and chunks."""

import copy
import json

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import load_homework_digits
from chainrule.io.sequential import sequential_from_state, sequential_state
from conftest import torch_network_loss_and_grads


def cnn(rng=0, dtype=np.float64, p=0.0):
    """A small CNN on 8x8 one-channel images, every new layer in it."""
    return cr.Sequential([
        cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 4, 3, padding=1), cr.BatchNorm2d(4), cr.ReLU(),
        cr.MaxPool2D(2), cr.Conv2D(4, 6, 2, stride=2, padding=(1, 0)), cr.AvgPool2D(2, 1),
        cr.Flatten(), cr.Affine(12, 16), cr.BatchNorm1d(16), cr.LayerNorm(16), cr.Tanh(),
        cr.Dropout(p, rng=0), cr.Affine(16, 10)], rng=rng, dtype=dtype)


@pytest.fixture(scope="module")
def digits():
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    return X_train / 16, X_test / 16, Y_train, Y_test


def test_cnn_shapes_names_and_summary():
    model = cnn()
    assert model.n_features == 64 and model.n_outputs == 10
    assert list(model.buffers) == ["running_mean2", "running_var2", "running_mean5",
                                   "running_var5"]
    assert model.params["W1"].shape == (4, 1, 3, 3) and model.params["W3"].shape == (6, 4, 2, 2)
    text = model.summary()
    # 8x8 -> conv pad 1 -> 8x8 -> pool 2 -> 4x4 -> conv 2 stride 2, pad (1, 0) -> 3x2
    # -> avg pool 2 stride 1 -> 2x1: 6 * 2 * 1 = 12 features.
    for expected in ("(N, 4, 8, 8)", "(N, 4, 4, 4)", "(N, 6, 3, 2)", "(N, 6, 2, 1)", "(N, 12)"):
        assert expected in text
    with pytest.raises(ValueError, match="expects 64"):
        model.predict(np.ones((2, 63)))


def test_a_network_starting_with_a_convolution_asks_for_unflatten():
    with pytest.raises(ValueError, match=r"start it with Unflatten\(\(C, H, W\)\)"):
        cr.Sequential([cr.Conv2D(1, 4, 3), cr.Flatten(), cr.Affine(4 * 6 * 6, 10)], rng=0)


@pytest.mark.parametrize("training", [True, False])
def test_cnn_gradients_match_torch(training, digits, torch):
    X, _, Y, _ = digits
    model = cnn(p=0.3)
    cr.fit(model, X[:128], Y[:128], optimizer=cr.Adam(lr=1e-2), epochs=1, batch_size=32,
           rng=0, progress=False)   # running statistics away from their start
    loss, grads = model.loss_and_grads(X[:20], Y[:20], training=training)
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X[:20], Y[:20])
    assert abs(loss - ref_loss) < 1e-12
    for k in model.params:
        # In training, b1 and b3 feed a batch normalisation: their gradient is 0 up to
        # rounding (1e-15), so it is measured against a floor, not its own size.
        error = np.max(np.abs(grads[k] - ref_grads[k]))
        assert error <= 1e-10 * max(np.max(np.abs(ref_grads[k])), 1e-4), k


def test_backward_ends_at_the_first_convolution(digits, monkeypatch):
    # Nothing reads the gradient with respect to the images: the first convolution skips
    # its col2im half and the Unflatten before it is not run backward at all.
    X, _, Y, _ = digits
    model = cnn()
    first = model.layers[1][0]
    assert first.compute_input_grad is False and model.layers[5][0].compute_input_grad
    unflatten_backward = []
    monkeypatch.setattr(type(model.layers[0][0]), "backward",
                        lambda self, d: unflatten_backward.append(d))
    loss, grads = model.loss_and_grads(X[:16], Y[:16])
    assert unflatten_backward == []
    text = model.explain(X[:2])
    assert "dW1 = rows(dH1)" in text
    assert "dH0 = " not in text and "dX = " not in text   # col2im and reshape, not run
    # The same gradients as with the input gradient computed (and thrown away); to
    # rounding only, as these products may run on another BLAS thread count.
    first.compute_input_grad = True
    d_x, d_w, d_b = first.backward(_output_gradient(model, X[:16], Y[:16]))
    assert d_x is not None
    np.testing.assert_allclose(d_w, grads["W1"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d_b, grads["b1"], rtol=1e-12, atol=1e-15)


def _output_gradient(model, X, Y):
    """The gradient arriving at layer 1 (the first convolution), by the layers above it."""
    model.loss_and_grads(X, Y)   # fills every cache
    d, _ = model.loss.backward(1.0)
    for layer, names in reversed(model.layers[2:]):
        result = layer.backward(d)
        d = result[0] if names else result
    return d


def test_cnn_fit_learns_and_resumes_bit_identically(digits, tmp_path):
    X, X_test, Y, Y_test = digits

    def run(model, epochs, **kwargs):
        return cr.fit(model, X, Y, optimizer=cr.Adam(lr=3e-3), epochs=epochs, batch_size=64,
                      rng=0, progress=False, **kwargs)

    full = cnn(p=0.2)
    run(full, 4)
    assert cr.evaluate(full, X_test, Y_test)["accuracy"] > 0.5   # chance is 0.1
    ckpt = tmp_path / "run.npz"
    run(cnn(p=0.2), 2, checkpoint=ckpt)
    resumed = cnn(p=0.2)
    run(resumed, 4, checkpoint=ckpt, resume=True)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    for k in full.buffers:
        assert np.array_equal(full.buffers[k], resumed.buffers[k]), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cnn_model_file_round_trip(dtype, digits, tmp_path):
    X, X_test, Y, _ = digits
    model = cnn(dtype=dtype, p=0.1)
    cr.fit(model, X, Y, optimizer=cr.Adam(lr=3e-3), epochs=1, batch_size=64, rng=0,
           progress=False)
    cr.io.save(model, tmp_path / "cnn.npz")
    loaded = cr.io.load(tmp_path / "cnn.npz")
    assert [repr(layer) for layer, _ in loaded.layers] == [repr(la) for la, _ in model.layers]
    assert loaded.dtype == dtype
    for k in model.buffers:
        assert np.array_equal(loaded.buffers[k], model.buffers[k]), k
    assert np.array_equal(loaded.predict(X_test), model.predict(X_test))


def test_a_model_file_whose_conv_arrays_do_not_match_its_config_is_refused():
    state, arrays = sequential_state(cnn())
    config = json.loads(json.dumps(state["config"]))
    assert sequential_from_state(config, arrays).params["W1"].shape == (4, 1, 3, 3)
    config["layers"][1]["config"]["kernel_size"] = [2, 2]   # W1 is still 3x3
    with pytest.raises(ValueError, match="W1"):
        sequential_from_state(config, arrays)


def test_inference_chunks_count_the_im2col_matrix(digits):
    X, X_test, _, _ = digits
    model = cnn()
    rows = model.chunk_rows()
    # Per row: the outputs of the 14 layers and their input, plus conv1's im2col matrix
    # (8 * 8 positions x 1 * 3 * 3) and conv2's (3 * 2 positions x 4 * 2 * 2).
    per_row = (64 + 64 + 4 * 64 * 3 + 4 * 16 + 6 * 6 + 12 * 2 + 16 * 4 + 16 + 10
               + 64 * 9 + 6 * 16)
    assert rows == cr.network.ACTIVATION_BUDGET // (per_row * 8)
    cr.network.ACTIVATION_BUDGET, budget = 30 * per_row * 8, cr.network.ACTIVATION_BUDGET
    try:
        assert model.chunk_rows() == 30
        chunked = model.infer(X_test)
    finally:
        cr.network.ACTIVATION_BUDGET = budget
    assert np.allclose(chunked, model.forward(X_test), rtol=0, atol=1e-12)


def test_onnx_export_of_a_cnn_agrees_with_onnxruntime(digits, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X, X_test, Y, _ = digits
    model = cnn(dtype=np.float32, p=0.3)
    cr.fit(model, X, Y, optimizer=cr.Adam(lr=3e-3), epochs=2, batch_size=64, rng=0,
           progress=False)
    cr.io.export_onnx(model, tmp_path / "cnn.onnx")
    session = ort.InferenceSession(str(tmp_path / "cnn.onnx"),
                                   providers=["CPUExecutionProvider"])
    label, proba, logits = session.run(None, {"X": X_test.astype(np.float32)})
    assert np.max(np.abs(logits - model.forward(X_test))) < 1e-5
    assert np.max(np.abs(proba - model.predict_proba(X_test))) < 1e-5
    assert np.array_equal(label, model.predict_classes(X_test))
    onnx = pytest.importorskip("onnx")
    ops = {node.op_type for node in onnx.load(str(tmp_path / "cnn.onnx")).graph.node}
    assert {"Reshape", "Conv", "BatchNormalization", "MaxPool", "AveragePool", "Flatten",
            "LayerNormalization"} <= ops


def test_onnx_softmax_layer_and_layernorm_opset(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = cr.Sequential([cr.Affine(5, 4), cr.Softmax(), cr.LayerNorm(4), cr.Affine(4, 3)],
                          rng=0, dtype=np.float32)
    X = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["logits"], {"X": X})[0]
    assert np.max(np.abs(out - model.forward(X))) < 1e-5
    with pytest.raises(ValueError, match="opset must be at least 17"):
        cr.io.export_onnx(model, tmp_path / "old.onnx", opset=16)
    assert not (tmp_path / "old.onnx").exists()


def test_a_custom_layer_named_like_a_built_in_one_stays_custom():
    # tests/student_layers.py has its own BatchNorm1d (biased running variance): a
    # file holding it must not come back as the library's layer.
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from student_layers import BatchNorm1d as StudentBatchNorm

    model = cr.Sequential([cr.Affine(3, 4), StudentBatchNorm(4), cr.Affine(4, 2)], rng=0)
    state, arrays = sequential_state(model)
    assert [spec["builtin"] for spec in state["config"]["layers"]] == [True, False, True]
    with pytest.raises(ValueError, match="custom_layers"):
        sequential_from_state(state["config"], arrays)
    # A file written before the entries said "builtin": only the first seven built-in
    # names are taken as built in.
    for spec in state["config"]["layers"]:
        del spec["builtin"]
    with pytest.raises(ValueError, match="custom_layers"):
        sequential_from_state(state["config"], arrays)
    again = sequential_from_state(state["config"], arrays,
                                  custom_layers={"BatchNorm1d": StudentBatchNorm})
    assert type(again.layers[1][0]) is StudentBatchNorm


def test_same_padding_and_bias_free_convolutions_train_save_and_export(digits, tmp_path,
                                                                      torch):
    """PyTorch's Conv-BatchNorm-ReLU block, ``nn.Conv2d(..., padding='same',
    bias=False)``: gradients through the network against torch, then the model file and
    the ONNX graph give the trained model's predictions."""
    ort = pytest.importorskip("onnxruntime")
    X, X_test, Y, Y_test = digits
    model = cr.Sequential([
        cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 4, 4, padding="same", bias=False),
        cr.BatchNorm2d(4), cr.ReLU(), cr.MaxPool2D(2),
        cr.Conv2D(4, 3, (3, 2), padding="same"), cr.Flatten(), cr.Affine(48, 10)],
        rng=0, dtype=np.float32)
    assert list(model.params) == ["W1", "gamma2", "beta2", "W3", "b3", "W4", "b4"]
    assert "Conv2D(1, 4, 4, padding='same', bias=False)" in model.summary()
    text = model.explain(X[:2])
    assert "H1 = im2col(H0) @ W1^T   (im2col" in text and "{b}" not in text
    assert "H3 = im2col(H2_3) @ W3^T + b3" in text and "db3 = sum(dH3" in text
    model64 = cr.Sequential([copy.deepcopy(layer) for layer, _ in model.layers], dtype=np.float64,
                            params={k: v.astype(np.float64) for k, v in model.params.items()})
    loss, grads = model64.loss_and_grads(X[:20], Y[:20])
    ref_loss, ref_grads = torch_network_loss_and_grads(model64, X[:20], Y[:20])
    assert abs(loss - ref_loss) < 1e-12
    for k in model64.params:
        assert np.max(np.abs(grads[k] - ref_grads[k])) <= 1e-10 * np.max(np.abs(ref_grads[k]))
    cr.fit(model, X, Y, optimizer=cr.Adam(lr=3e-3), epochs=2, batch_size=64, rng=0,
           progress=False)
    assert cr.evaluate(model, X_test, Y_test)["accuracy"] > 0.5   # chance is 0.1
    _assert_file_and_onnx_predict_alike(ort, model, X_test, tmp_path)


def test_a_prediction_between_forward_and_backward_leaves_the_gradients_alone(digits):
    """As ``model(x_val)`` between a forward and ``loss.backward()`` in PyTorch: predict,
    predict_proba and evaluate put back every layer's and the loss's cache, so the
    backward still differentiates the training forward (a validation batch of another
    size once raised in matmul, one of the same size gave wrong gradients silently)."""
    X, X_val, Y, Y_val = digits

    def gradients(between):
        model = cnn(p=0.3)
        model.loss.forward(model.forward(X[:20], training=True), Y[:20])
        between(model)
        d, _ = model.loss.backward(1.0)
        return model.backward(d)

    ref = gradients(lambda model: None)
    for between in (lambda m: m.predict(X_val[:20]), lambda m: m.predict_proba(X_val[:7]),
                    lambda m: cr.evaluate(m, X_val[:20], Y_val[:20])):
        got = gradients(between)
        for k in ref:
            assert np.array_equal(got[k], ref[k]), k


def test_images_given_as_images_are_told_to_become_rows():
    model = cnn()
    with pytest.raises(ValueError, match=r"X must be a 2-D array, got shape \(5, 1, 8, 8\); "
                                         r"one row per sample: X.reshape\(len\(X\), -1\)"):
        model.predict(np.zeros((5, 1, 8, 8)))
    # labels given with extra axes get no image advice: it is about X
    with pytest.raises(ValueError, match=r"Y must be a 2-D array, got shape \(5, 1, 1, 1\)$"):
        cr.fit(model, np.zeros((5, 64)), np.zeros((5, 1, 1, 1)), optimizer="sgd", epochs=1,
               progress=False)


def test_padded_pools_in_a_network_match_torch_save_and_export(digits, tmp_path, torch):
    """ResNet's stem pool MaxPool2d(3, 2, 1) and a padded AvgPool2d through a network:
    gradients against torch, a model file, and onnxruntime (pads, count_include_pad)."""
    ort = pytest.importorskip("onnxruntime")
    X, X_test, Y, _ = digits
    layers = [cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 4, 3, padding="same"), cr.ReLU(),
              cr.MaxPool2D(3, 2, padding=1), cr.AvgPool2D(2, padding=1), cr.Flatten(),
              cr.Affine(36, 10)]
    model = cr.Sequential(layers, rng=0)
    assert "(N, 4, 4, 4)" in model.summary() and "(N, 4, 3, 3)" in model.summary()
    loss, grads = model.loss_and_grads(X[:20], Y[:20])
    ref_loss, ref_grads = torch_network_loss_and_grads(model, X[:20], Y[:20])
    assert abs(loss - ref_loss) < 1e-12
    for k in model.params:
        assert np.max(np.abs(grads[k] - ref_grads[k])) <= 1e-10 * np.max(np.abs(ref_grads[k]))
    small = cr.Sequential([copy.deepcopy(layer) for layer, _ in model.layers], dtype=np.float32,
                          params={k: v.astype(np.float32) for k, v in model.params.items()})
    _assert_file_and_onnx_predict_alike(ort, small, X_test, tmp_path)


def _assert_file_and_onnx_predict_alike(ort, model, X_test, tmp_path):
    """The model file rebuilds the same layers and predictions; onnxruntime runs the
    exported float32 graph to the model's logits."""
    cr.io.save(model, tmp_path / "m.npz")
    loaded = cr.io.load(tmp_path / "m.npz")
    assert [repr(la) for la, _ in loaded.layers] == [repr(la) for la, _ in model.layers]
    assert np.array_equal(loaded.predict(X_test), model.predict(X_test))
    cr.io.export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"X": X_test.astype(np.float32)})[2]
    assert np.max(np.abs(logits - model.forward(X_test))) < 1e-5
