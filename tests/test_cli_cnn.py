"""``chainrule train --model cnn`` on the digits (8x8) and on MNIST-style IDX files
(28x28): it trains, saves a model that takes raw pixels, and refuses what it cannot do."""

import struct

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_idx(path, arr):
    """IDX from its specification: 0x0000, type code 0x08 (ubyte), ndim, big-endian dims."""
    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.tobytes())
    return path


@pytest.mark.slow
def test_train_cnn_on_the_digits_saves_a_model_for_raw_pixels(tmp_path, capsys):
    path = tmp_path / "cnn.npz"
    code, out, err = run(capsys, "train", "--model", "cnn", "--channels", "8,16", "--hidden",
                         "32", "--epochs", "6", "--save", path, "--plot", tmp_path / "plots",
                         "--quiet")
    assert code == 0, err
    assert "model: cnn 1x8x8 conv[8, 16] dense[32] 10 relu" in out
    # --plot draws the first convolution's eight 3x3 filters for image inputs
    assert (tmp_path / "plots" / "first_layer_weights.png").read_bytes()[:8] == \
        b"\x89PNG\r\n\x1a\n"
    assert "first_layer_weights.png" in out
    correct = int(out.split("test accuracy = ")[1].split("(")[1].split("/")[0])
    assert correct > 0.8 * 450   # chance is 0.1
    model = cr.io.load(path)
    assert [type(layer).__name__ for layer, _ in model.layers][:4] == [
        "Unflatten", "BatchNorm2d", "Conv2D", "ReLU"]
    # The file takes the raw pixels (0..16): the command fed them unstandardised.
    X_train, X_test, Y_train, Y_test = cr.data.load_homework_digits()
    assert np.sum(model.predict_classes(X_test) == Y_test.argmax(axis=1)) == correct


@pytest.mark.slow
def test_train_cnn_on_28x28_idx_files(tmp_path, capsys):
    # Two classes a CNN tells apart by where the bright square is.
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    pics = rng.integers(0, 60, size=(80, 28, 28))
    pics[y == 0, 4:12, 4:12] += 180
    pics[y == 1, 16:24, 16:24] += 180
    write_idx(tmp_path / "train-images-idx3-ubyte", pics[:60])
    write_idx(tmp_path / "train-labels-idx1-ubyte", y[:60])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", pics[60:])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[60:])
    code, out, err = run(capsys, "train", "--model", "cnn", "--channels", "4",
                         "--hidden", "8", "--data", tmp_path / "train-images-idx3-ubyte",
                         "--test-data", tmp_path / "t10k-images-idx3-ubyte",
                         "--epochs", "8", "--quiet")
    assert code == 0, err
    assert "model: cnn 1x28x28 conv[4] dense[8] 2 relu" in out
    assert "test accuracy = 1.0000 (20/20)" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--model", "cnn", "--init", "he"], "--init applies to --model mlp"),
    (["--model", "cnn", "--channels", "2,2,2,2"], "too small for 4 2x2 poolings"),
])
def test_train_cnn_usage_errors(argv, fragment, capsys):
    code, out, err = run(capsys, "train", *argv, "--epochs", "1", "--quiet")
    assert code == 2, (out, err)
    assert fragment in err


def test_train_cnn_channels_must_be_positive_integers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "cnn", "--channels", "4,0"])
    assert exit_info.value.code == 2
    assert "--channels: expected comma-separated positive integers" in capsys.readouterr().err


def test_train_cnn_refuses_rows_that_are_not_square_images(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(40, 10))
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(40) % 2)
    code, out, err = run(capsys, "train", "--model", "cnn", "--data", tmp_path / "d.npz",
                         "--epochs", "1", "--quiet")
    assert code == 2, (out, err)
    assert "rows of 10 values, not a square number, as no image" in err


def test_export_of_a_float64_cnn_is_a_file_onnxruntime_opens(tmp_path, capsys):
    """onnxruntime has no float64 Conv: chainrule export writes a convolutional network
    in float32 unless --dtype says otherwise (it wrote a float64 file, after a warning,
    that onnxruntime then refused to load)."""
    ort = pytest.importorskip("onnxruntime")
    model = cr.Sequential([cr.Unflatten((1, 4, 4)), cr.Conv2D(1, 2, 3, padding=1),
                           cr.MaxPool2D(2), cr.Flatten(), cr.Affine(8, 3)], rng=0)
    cr.io.save(model, tmp_path / "cnn.npz")
    code, out, err = run(capsys, "export", tmp_path / "cnn.npz", tmp_path / "cnn.onnx")
    assert code == 0 and "in float32 (onnxruntime runs convolutions" in out, err
    session = ort.InferenceSession(str(tmp_path / "cnn.onnx"),
                                   providers=["CPUExecutionProvider"])
    X = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    assert np.max(np.abs(session.run(None, {"X": X})[1] - model.predict_proba(X))) < 1e-6
    code, out, _ = run(capsys, "export", tmp_path / "cnn.npz", tmp_path / "cnn64.onnx",
                       "--dtype", "float64")
    assert code == 0 and "float32" not in out


def _images(shape, n=120, seed=0):
    """``n`` random images of ``shape`` (float32) and alternating labels."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, *shape)).astype(np.float32), np.arange(n) % 2


@pytest.mark.parametrize("stored, model", [((18, 32), "1x18x32"), ((3, 16, 12), "3x16x12"),
                                           ((18, 32, 1), "1x18x32")])
def test_train_cnn_keeps_the_image_shape_an_npz_stores(tmp_path, capsys, stored, model):
    # 18x32 has 576 pixels, 24x24's count: the square guess would have read it as 24x24.
    X, y = _images(stored)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code, out, err = run(capsys, "train", "--model", "cnn", "--data", tmp_path / "d.npz",
                         "--epochs", "1", "--quiet", "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert f"model: cnn {model} conv" in out
    first = cr.io.load(tmp_path / "m.npz").layers[0][0]
    assert "x".join(map(str, first.shape)) == model
    # Images of another shape with as many pixels are refused by their shape.
    other = (24, 24) if len(stored) == 2 else (3, 12, 16) if len(stored) == 3 and \
        stored[0] == 3 else (24, 24, 1)
    np.savez(tmp_path / "o.npz", X=_images(other)[0], y=y)
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data", tmp_path / "o.npz")
    assert code == 1 and "holds images of shape" in err and f"the model takes {model}" in err


def test_train_cnn_reads_idx_images_with_their_shape_and_refuses_channels_last(tmp_path,
                                                                              capsys):
    X, y = _images((18, 32))
    pixels = (X * 100).astype(np.uint8)
    (tmp_path / "t-images-idx3-ubyte").write_bytes(
        struct.pack(">HBB3I", 0, 8, 3, *pixels.shape) + pixels.tobytes())
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(
        struct.pack(">HBBI", 0, 8, 1, len(y)) + y.astype(np.uint8).tobytes())
    code, out, err = run(capsys, "train", "--model", "cnn", "--data",
                         tmp_path / "t-images-idx3-ubyte", "--epochs", "1", "--quiet")
    assert code == 0, err
    assert "model: cnn 1x18x32 conv" in out
    np.savez(tmp_path / "last.npz", X=np.zeros((40, 16, 16, 3)), y=np.arange(40) % 2)
    code, out, err = run(capsys, "train", "--model", "cnn", "--data", tmp_path / "last.npz",
                         "--epochs", "1", "--quiet")
    assert code == 2 and "channels last" in err and "X.transpose(0, 3, 1, 2)" in err


def test_plot_draws_a_cnns_filters_for_any_image_size_and_says_why_not(tmp_path, capsys):
    # The first filters are 3x3 whatever the images' size (they were drawn for 8x8 and
    # 28x28 only); filters of three channels are not drawn, and the line says so.
    for name, shape in (("grey", (18, 32)), ("rgb", (3, 16, 16))):
        X, y = _images(shape)
        np.savez(tmp_path / f"{name}.npz", X=X, y=y)
        code, out, err = run(capsys, "train", "--model", "cnn", "--data",
                             tmp_path / f"{name}.npz", "--epochs", "1", "--quiet", "--plot",
                             tmp_path / name)
        assert code == 0, err
        drawn = (tmp_path / name / "first_layer_weights.png").exists()
        assert drawn == (name == "grey")
        assert ("the first filters have 3 channels" in out) == (name == "rgb")


def test_predict_takes_sequences_stored_as_the_model_reads_them(tmp_path, capsys):
    # A model of sequences (Unflatten to (C, L)) given an .npz of (N, C, L): not images.
    model = cr.Sequential([cr.Unflatten((6, 5)), cr.Conv1D(6, 2, 3), cr.Flatten(),
                           cr.Affine(6, 2)], rng=0)
    cr.io.save(model, tmp_path / "m.npz")
    X = np.random.default_rng(0).normal(size=(20, 6, 5))
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(20) % 2)
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data", tmp_path / "d.npz")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 21
