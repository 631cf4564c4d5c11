"""End-to-end sessions of the ``chainrule`` command through ``chainrule.cli.main``.

Every number the commands print is checked against a value computed here from the
model itself (its ``predict_proba``) or from scikit-learn, not against the command's
own earlier output.
"""

import csv
import re
import subprocess
import sys

import numpy as np
import pytest

from chainrule import MLP, io
from chainrule.cli import main
from chainrule.functional import one_hot
from chainrule.train import fit


def blobs(n=90, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    y = np.arange(n) % k
    return centres[y] + rng.normal(size=(n, d)), y


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small classifier trained on three blobs, saved with chainrule.io."""
    folder = tmp_path_factory.mktemp("cli")
    X, y = blobs()
    model = MLP([4, 8, 3], rng=0)
    fit(model, X, one_hot(y), optimizer="adam", epochs=20, progress=False)
    model_path = folder / "model.npz"
    io.save(model, model_path)
    # Fresh rows, so the evaluation is not on the training data.
    Xt, yt = blobs(n=30, seed=0)
    Xt = Xt + np.random.default_rng(7).normal(scale=0.5, size=Xt.shape)
    data_path = folder / "test.npz"
    np.savez(data_path, X=Xt, y=yt)
    return model, model_path, Xt, yt, data_path, folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_evaluate_prints_accuracy_metrics_and_confusion_matrix(trained, capsys):
    from sklearn.metrics import precision_score, recall_score

    model, model_path, Xt, yt, data_path, _ = trained
    code, out, _ = run(capsys, "evaluate", model_path, "--data", data_path)
    assert code == 0
    pred = model.predict_proba(Xt).argmax(axis=1)
    hits = int((pred == yt).sum())
    assert f"accuracy = {hits / len(yt):.4f} ({hits}/{len(yt)})" in out

    precision = precision_score(yt, pred, average=None, labels=[0, 1, 2], zero_division=0)
    recall = recall_score(yt, pred, average=None, labels=[0, 1, 2], zero_division=0)
    for k in range(3):
        row = re.search(rf"^\s*{k}\s+(\S+)\s+(\S+)\s+\S+\s+(\d+)$", out, re.M)
        assert row, out
        assert float(row.group(1)) == pytest.approx(precision[k], abs=5e-5)
        assert float(row.group(2)) == pytest.approx(recall[k], abs=5e-5)
        assert int(row.group(3)) == int((yt == k).sum())
    from sklearn.metrics import balanced_accuracy_score, f1_score

    macro = re.search(r"^macro avg\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)$", out, re.M)
    f1 = f1_score(yt, pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert [float(v) for v in macro.groups()[:3]] == pytest.approx(
        [precision.mean(), recall.mean(), f1], abs=5e-5)
    assert f"balanced accuracy = {balanced_accuracy_score(yt, pred):.4f}" in out

    # Confusion matrix counted here with a loop.
    counts = np.zeros((3, 3), dtype=int)
    for t, p in zip(yt, pred, strict=True):
        counts[t, p] += 1
    matrix = out.split("confusion matrix")[1].strip().splitlines()[2:]
    printed = np.array([[int(v) for v in line.split()[1:]] for line in matrix])
    np.testing.assert_array_equal(printed, counts)


def test_evaluate_macro_average_is_over_the_classes_seen_as_sklearns_report(trained, capsys,
                                                                            tmp_path):
    # Rows of classes 0 and 2 that the model also predicts as 0 or 2: class 1 is in
    # neither, and scikit-learn's classification_report leaves it out of the average
    # (counting its row of zeros would make the averages 2/3 of the true figures).
    from sklearn.metrics import classification_report

    model, model_path, Xt, yt, _, _ = trained
    pred = model.predict_proba(Xt).argmax(axis=1)
    keep = (yt != 1) & (pred != 1)
    assert set(yt[keep]) == {0, 2}
    np.savez(tmp_path / "two.npz", X=Xt[keep], y=yt[keep])
    code, out, _ = run(capsys, "evaluate", model_path, "--data", tmp_path / "two.npz")
    assert code == 0
    report = classification_report(yt[keep], pred[keep], output_dict=True, zero_division=0)
    macro = re.search(r"^macro avg\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)$", out, re.M)
    expected = report["macro avg"]
    assert [float(v) for v in macro.groups()[:3]] == pytest.approx(
        [expected["precision"], expected["recall"], expected["f1-score"]], abs=5e-5)


def test_predict_csv_matches_model(trained, capsys, tmp_path):
    model, model_path, Xt, _, data_path, _ = trained
    out_csv = tmp_path / "preds.csv"
    code, _, err = run(capsys, "predict", model_path, "--data", data_path, "--output", out_csv)
    assert code == 0 and "wrote 30 predictions" in err
    with open(out_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["row", "predicted", "p_0", "p_1", "p_2"]
    proba = model.predict_proba(Xt)
    assert len(rows) == 1 + len(Xt)
    for i, row in enumerate(rows[1:]):
        assert int(row[0]) == i
        assert int(row[1]) == int(np.argmax(proba[i]))
        # Written with repr, so the text reads back as the very same floats.
        assert [float(v) for v in row[2:]] == proba[i].tolist()

    # Without --output the CSV goes to standard output.
    code, out, _ = run(capsys, "predict", model_path, "--data", data_path)
    assert code == 0
    assert out.splitlines() == [",".join(r) for r in rows]


def test_predict_and_evaluate_with_string_classes_from_estimator(tmp_path, capsys):
    from chainrule.estimator import MLPClassifier

    X, y = blobs(n=60)
    names = np.array(["ant", "bee", "cow"])[y]
    est = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, names)
    path = tmp_path / "est.npz"
    io.save(est, path)
    data = tmp_path / "d.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["f1", "f2", "animal", "f3", "f4"])
        for row, lab in zip(X, names, strict=True):
            w.writerow([repr(float(v)) for v in row[:2]] + [lab]
                       + [repr(float(v)) for v in row[2:]])
    out_csv = tmp_path / "p.csv"
    code, _, _ = run(capsys, "predict", path, "--data", data, "--label-column", "animal",
                     "-o", out_csv)
    assert code == 0
    with open(out_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["row", "predicted", "p_ant", "p_bee", "p_cow"]
    assert [r[1] for r in rows[1:]] == est.predict(X).tolist()
    code, out, _ = run(capsys, "evaluate", path, "--data", data, "--label-column", "animal")
    acc = float(np.mean(est.predict(X) == names))
    assert code == 0 and f"accuracy = {acc:.4f}" in out and "bee" in out


def test_export_onnx_runs_in_onnxruntime(trained, capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, model_path, Xt, _, _, _ = trained
    target = tmp_path / "model.onnx"
    code, out, _ = run(capsys, "export", model_path, target)
    assert code == 0 and target.exists()
    onnx.checker.check_model(onnx.load(str(target)))
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (proba,) = session.run(["probabilities"], {"X": Xt})
    np.testing.assert_allclose(proba, model.predict_proba(Xt), atol=1e-6)


def test_errors_are_one_line_with_status(trained, capsys, tmp_path):
    _, model_path, _, _, data_path, _ = trained
    code, _, err = run(capsys, "evaluate", tmp_path / "missing.npz", "--data", data_path)
    assert code == 1
    assert_one_line_error(err, "chainrule evaluate: error:", "missing.npz")

    code, _, err = run(capsys, "predict", model_path, "--data", tmp_path / "nope.csv",
                       "--label-column", "y")
    assert code == 1
    assert_one_line_error(err, "nope.csv")

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,0\n3,x,1\n")
    code, _, err = run(capsys, "evaluate", model_path, "--data", bad, "--label-column", "y")
    assert code == 1
    assert_one_line_error(err, "bad.csv", "line 3")

    # Two features where the model expects four.
    good = tmp_path / "two.csv"
    good.write_text("a,b,y\n1,2,0\n3,4,1\n")
    code, _, err = run(capsys, "predict", model_path, "--data", good, "--label-column", "y")
    assert code == 1
    assert_one_line_error(err, "2 feature columns", "expects 4")

    # A model file that is not a model: a data archive.
    code, _, err = run(capsys, "export", data_path, tmp_path / "x.onnx")
    assert code == 1
    assert_one_line_error(err, "test.npz")

    # Labels outside the model's classes.
    np.savez(tmp_path / "labels9.npz", X=np.zeros((2, 4)), y=np.array([0, 9]))
    code, _, err = run(capsys, "evaluate", model_path, "--data", tmp_path / "labels9.npz")
    assert code == 1
    assert_one_line_error(err, "class indices 0..2")


def test_bad_usage_exits_2(capsys, trained, tmp_path_factory):
    _, model_path, *_ = trained
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(model_path), "--data", "x.npz", "--no-such-flag"])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    # The subcommand's usage, then one error line.
    assert err.startswith("usage: chainrule evaluate ")
    assert_one_line_error(err.strip().splitlines()[-1], "chainrule evaluate: error:",
                          "unrecognized arguments: --no-such-flag")
    assert main(["predict", str(model_path)]) == 2   # --data missing
    assert_one_line_error(capsys.readouterr()[1], "required: --data")
    # The data file given without --data, or the two files swapped, is said so.
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(model_path), "new.csv"])
    assert exc.value.code == 2
    assert_one_line_error(capsys.readouterr()[1].strip().splitlines()[-1],
                          "unrecognized arguments: new.csv; did you mean --data new.csv?")
    data = tmp_path_factory.mktemp("swap") / "new.csv"
    data.write_text("a,b\n1,2\n")
    assert main(["predict", "--data", str(model_path), str(data)]) == 1
    assert_one_line_error(capsys.readouterr()[1], "a data file? the model file comes first")
    onnx_file = data.with_name("m.onnx")
    onnx_file.write_bytes(b"\x08\x07")   # not an .npz archive
    assert main(["predict", str(onnx_file), "--data", str(data)]) == 1
    assert_one_line_error(capsys.readouterr()[1], "an ONNX file: chainrule reads its own")
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


@pytest.mark.parametrize("command", [[], ["evaluate"], ["predict"], ["export"], ["train"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr()[0]
    assert out.startswith("usage: chainrule")


def test_folding_standardisation_into_first_layer():
    from chainrule.data import standardize
    from chainrule.folding import fold_standardization

    rng = np.random.default_rng(3)
    X = rng.normal(5, 3, size=(20, 6))
    X[:, 2] = 4.0  # a constant column (scale 1)
    Xs, mean, scale = standardize(X, return_stats=True)
    model = MLP([6, 5, 3], rng=1)
    before = model.predict_proba(Xs)
    assert fold_standardization(model, mean, scale) is model
    # The folded model on raw inputs computes what the original did on scaled inputs.
    np.testing.assert_allclose(model.predict_proba(X), before, rtol=1e-12, atol=1e-14)



def test_folding_keeps_dtype_and_refuses_what_it_cannot_fold():
    from chainrule import Affine, Network, ReLU
    from chainrule.folding import fold_standardization
    from chainrule.losses import CategoricalCrossEntropy

    model = MLP([3, 2], rng=0, dtype=np.float32)
    fold_standardization(model, np.zeros(3), np.full(3, 2.0))
    assert model.params["W"].dtype == np.float32 and model.params["b"].dtype == np.float32
    with pytest.raises(ValueError, match=r"mean must have shape \(3,\)"):
        fold_standardization(model, np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="scale must be positive"):
        fold_standardization(model, np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="scale"):
        fold_standardization(model, np.zeros(3), np.array([1.0, np.nan, 1.0]))
    with pytest.raises(TypeError, match="model must be a chainrule Network"):
        fold_standardization("model", np.zeros(3), np.ones(3))
    relu_first = Network([(ReLU(), ()), (Affine(), ("W", "b"))],
                         {"W": np.ones((3, 2)), "b": np.zeros(2)}, CategoricalCrossEntropy())
    with pytest.raises(TypeError, match="first layer must be Affine"):
        fold_standardization(relu_first, np.zeros(3), np.ones(3))

def test_train_files_hold_out_a_fixed_split(tmp_path):
    import argparse

    from chainrule.cli import CommandError
    from chainrule.cli.train import load_train_files

    X, y = blobs(n=40)
    labels = np.array(["x", "y", "z"])[y]
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    args = argparse.Namespace(data=str(tmp_path / "d.npz"), label_column=None, labels=None,
                              test_data=None, test_labels=None, test_fraction=0.25)
    Xtr, Xte, ytr, yte, classes = load_train_files(args)
    assert classes.tolist() == ["x", "y", "z"]
    assert len(Xtr) == 30 and len(Xte) == 10
    # Every row is in exactly one part, still paired with its label.
    rows = {tuple(r): lab for r, lab in zip(X, labels, strict=True)}
    for part, idx in ((Xtr, ytr), (Xte, yte)):
        assert [rows[tuple(r)] for r in part] == classes[idx].tolist()
    assert len({tuple(r) for r in np.vstack([Xtr, Xte])}) == 40
    again = load_train_files(args)
    np.testing.assert_array_equal(again[1], Xte)  # fixed seed: same split every time

    np.savez(tmp_path / "t.npz", X=X[:3], y=np.array(["x", "y", "w"]))
    args.test_data = str(tmp_path / "t.npz")
    with pytest.raises(CommandError, match=r"\['w'\] do not occur"):
        load_train_files(args)


# -- chainrule train with data files --------------------------------------------------

def check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 0 and img.shape[1] > 0
    flat = img.reshape(-1, img.shape[-1])
    assert (flat != flat[0]).any()


def test_train_csv_save_plot_then_evaluate_predict_export(tmp_path, capsys):
    """A whole session on 64-pixel images stored as CSV with a named label column."""
    pytest.importorskip("matplotlib")
    from sklearn.datasets import load_digits

    from chainrule.data import holdout_split

    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    data = tmp_path / "digits.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"px{i}" for i in range(64)] + ["digit"])
        for row, lab in zip(X, y, strict=True):
            w.writerow([int(v) for v in row] + [int(lab)])
    model_path, plots = tmp_path / "m.npz", tmp_path / "plots"
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "digit",
                         "--hidden", "32", "--dropout", "0", "--epochs", "8",
                         "--batch-size", "32", "--lr", "1e-2", "--save", model_path,
                         "--plot", plots, "--quiet")
    assert code == 0, err
    assert "300 training rows, 100 test rows, 64 features, 10 classes" in out
    printed = re.search(r"test accuracy = (\S+) \((\d+)/100\)", out)
    assert printed and float(printed.group(1)) > 0.6
    for name in ("history.png", "diagnostics.png", "confusion_matrix.png",
                 "first_layer_weights.png"):
        check_png(plots / name)

    # The held-out rows, rebuilt from the documented rule (25 %, seed 0). The saved
    # model takes raw pixels (standardisation folded in) and must score what train
    # printed on the standardised ones.
    _, X_test, _, y_test = holdout_split(X, y, 0.25, rng=0)
    np.savez(tmp_path / "test.npz", X=X_test, y=y_test)
    code, out, _ = run(capsys, "evaluate", model_path, "--data", tmp_path / "test.npz")
    assert code == 0
    assert f"accuracy = {printed.group(1)} ({printed.group(2)}/100)" in out

    model = io.load(model_path)
    proba = model.predict_proba(X_test)
    assert int((proba.argmax(axis=1) == y_test).sum()) == int(printed.group(2))
    code, out, _ = run(capsys, "predict", model_path, "--data", tmp_path / "test.npz")
    rows = list(csv.reader(out.splitlines()))
    assert [int(r[1]) for r in rows[1:]] == proba.argmax(axis=1).tolist()
    assert np.array([[float(v) for v in r[2:]] for r in rows[1:]]).tolist() == proba.tolist()

    onnx = pytest.importorskip("onnx")
    code, _, _ = run(capsys, "export", model_path, tmp_path / "m.onnx")
    assert code == 0
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))


def test_train_npz_with_separate_test_file_and_string_labels(tmp_path, capsys):
    X, y = blobs(n=60)
    names = np.array(["ant", "bee", "cow"])[y]
    np.savez(tmp_path / "train.npz", X=X, y=names)
    Xt, yt = blobs(n=12, seed=0)
    np.savez(tmp_path / "test.npz", X=Xt, y=np.array(["ant", "bee", "cow"])[yt])
    code, out, err = run(capsys, "train", "--data", tmp_path / "train.npz", "--test-data",
                         tmp_path / "test.npz", "--hidden", "8", "--epochs", "3",
                         "--save", tmp_path / "m.npz", "--quiet")
    assert code == 0
    assert "60 training rows, 12 test rows" in out
    # The class names travel with the saved network, so evaluate speaks in them.
    code, out, err = run(capsys, "evaluate", tmp_path / "m.npz", "--data", tmp_path / "test.npz")
    assert code == 0, err
    table = out.split("f1  support")[1].split("macro avg")[0]
    assert [line.split()[0] for line in table.strip().splitlines()] == ["ant", "bee", "cow"]
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data", tmp_path / "test.npz")
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header == "row,predicted,p_ant,p_bee,p_cow"
    assert len(rows) == 12 and all(r.split(",")[1] in ("ant", "bee", "cow") for r in rows)


def test_train_openml_goes_through_fetch_openml(monkeypatch, capsys):
    import sklearn.datasets

    X, y = blobs(n=40)
    seen = []

    def fake(name, **kwargs):
        seen.append(name)
        return X, np.array(["a", "b", "c"])[y].astype(object)

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake)
    code, out, _ = run(capsys, "train", "--openml", "blobs", "--hidden", "4", "--epochs", "1",
                       "--quiet")
    assert code == 0 and seen == ["blobs"]
    assert "30 training rows, 10 test rows, 4 features, 3 classes" in out


def test_train_file_errors(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", tmp_path / "missing.npz")
    assert code == 1
    assert_one_line_error(err, "chainrule train: error:", "missing.npz")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3\n")
    code, _, err = run(capsys, "train", "--data", bad, "--label-column", "label")
    assert code == 1
    assert_one_line_error(err, "bad.csv", "line 3")
    code, _, err = run(capsys, "train", "--data", bad)
    assert code == 2  # a missing flag is bad usage, named as the flag
    assert_one_line_error(err, "--label-column NAME")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data"])
    assert exc.value.code == 2
    assert_one_line_error(capsys.readouterr()[1], "--data")


# -- second acceptance review --------------------------------------------------------------

def write_idx(path, arr):
    """IDX from its specification: 0x0000, type code 0x08 (ubyte), ndim, big-endian dims."""
    import struct

    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.tobytes())
    return path


@pytest.fixture
def files(tmp_path, trained):
    """A CSV of 10 labelled rows, an IDX images file without a labels sibling."""
    csv_path = tmp_path / "iris.csv"
    rows = ["a,b,c,d,species"] + [f"{i},{i % 3},{i % 5},{i % 2},{i % 3}" for i in range(10)]
    csv_path.write_text("\n".join(rows) + "\n")
    images = write_idx(tmp_path / "pics.idx", np.arange(24).reshape(6, 2, 2))
    return {"csv": csv_path, "idx": images, "model": trained[1], "npz": trained[4]}


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--data", "{csv}", "--label-column", "species", "--test-fraction", "1.5"],
     ["--test-fraction must be in (0, 1), got 1.5"]),
    (["train", "--data", "{csv}", "--label-column", "species", "--test-fraction", "0.01"],
     ["--test-fraction 0.01 of the 10 rows", "leaves 10 training and 0 test rows"]),
    (["train", "--data", "{csv}", "--openml", "foo"], ["give either --data or --openml"]),
    (["train", "--test-data", "{npz}"], ["--test-data applies to --data or --openml"]),
    (["train", "--data", "{idx}"], ["--data", "pics.idx", "give its labels file with --labels"]),
    (["train", "--data", "{npz}", "--test-data", "{idx}"], ["--test-data", "--test-labels PATH"]),
    (["train", "--data", "{npz}", "--label-column", "y"],
     ["--label-column applies to CSV files", "test.npz is an .npz file"]),
    (["evaluate", "{model}", "--data", "{csv}"], ["--data", "iris.csv", "--label-column NAME"]),
    (["evaluate", "{model}", "--data", "{npz}", "--label-column", "y"],
     ["--label-column applies to CSV files"]),
    (["predict", "{model}", "--data", "{npz}", "--labels", "{idx}"],
     ["--labels applies to IDX images files"]),
    (["export", "{model}", "m.onnx", "--opset", "5"], ["--opset must be between 13 and"]),
])
def test_bad_usage_is_one_line_naming_the_flag_with_status_2(files, capsys, argv, fragments):
    argv = [a.format(**files) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert_one_line_error(err, f"chainrule {argv[0]}: error:", *fragments,
                          f"(see 'chainrule {argv[0]} --help')")
    assert "label_column" not in err and "labels_path" not in err


def test_destinations_are_checked_before_any_training(files, capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    base = ["train", "--hidden", "4", "--epochs", "2"]
    for flag, value, fragment in [
            ("--save", tmp_path / "nodir" / "m.npz", "does not exist"),
            ("--save", tmp_path, "is a directory"),
            ("--plot", afile, "exists and is not a directory"),
            ("--plot", afile / "sub", "cannot be created"),
            ("--checkpoint", tmp_path, "is a directory")]:
        code, out, err = run(capsys, *base, flag, value)
        assert code == 1, err
        assert out == ""  # nothing loaded, nothing trained
        assert_one_line_error(err, "chainrule train: error:", f"{flag} {value}", fragment)
    # evaluate --plot, predict --output and export's destination likewise.
    code, out, err = run(capsys, "evaluate", files["model"], "--data", files["npz"], "--plot",
                         afile)
    assert code == 1 and out == ""
    assert_one_line_error(err, "--plot", "not a directory")
    code, out, err = run(capsys, "predict", files["model"], "--data", files["npz"], "--output",
                         tmp_path)
    assert code == 1 and out == ""
    assert_one_line_error(err, "--output", "is a directory")
    code, out, err = run(capsys, "export", files["model"], tmp_path)
    assert code == 1 and out == ""
    assert_one_line_error(err, "is a directory")
    assert ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["afile", "iris.csv", "pics.idx"])


def test_train_idx_with_test_labels_named_freely(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    pics = (rng.integers(0, 100, size=(40, 3, 3)) + 120 * y[:, None, None]).astype(np.uint8)
    write_idx(tmp_path / "a-imgs.idx", pics[:30])
    write_idx(tmp_path / "a-lab.idx", y[:30])
    write_idx(tmp_path / "b-imgs.idx", pics[30:])
    write_idx(tmp_path / "b-lab.idx", y[30:])
    code, out, err = run(capsys, "train", "--data", tmp_path / "a-imgs.idx", "--labels",
                         tmp_path / "a-lab.idx", "--test-data", tmp_path / "b-imgs.idx",
                         "--test-labels", tmp_path / "b-lab.idx", "--hidden", "4",
                         "--epochs", "2", "--quiet")
    assert code == 0, err
    assert "30 training rows, 10 test rows, 9 features, 2 classes" in out


def test_evaluate_compares_numeric_labels_as_numbers(trained, capsys, tmp_path):
    model, _, Xt, yt, data_path, _ = trained
    path = tmp_path / "int_classes.npz"
    io.save(model, path, metadata={"classes": [0, 1, 2]})
    code, expected, err = run(capsys, "evaluate", path, "--data", data_path)
    assert code == 0, err
    np.savez(tmp_path / "float_y.npz", X=Xt, y=yt.astype(np.float64))  # 0.0, 1.0, 2.0
    code, out, err = run(capsys, "evaluate", path, "--data", tmp_path / "float_y.npz")
    assert code == 0, err
    strip = lambda text: text.split("\n", 2)[2]  # noqa: E731 - drop the two file lines
    assert strip(out) == strip(expected)
    # A number that is not a class is still refused, shown as the number it is.
    np.savez(tmp_path / "half.npz", X=Xt[:2], y=np.array([0.0, 1.5]))
    code, _, err = run(capsys, "evaluate", path, "--data", tmp_path / "half.npz")
    assert code == 1
    assert_one_line_error(err, "labels [1.5] are not among the model's classes")


@pytest.mark.slow
def test_evaluate_and_predict_of_a_dataframe_fitted_estimator_warn_nothing(tmp_path):
    # An estimator fitted on a DataFrame has feature_names_in_; the CLI feeds it a bare
    # array, and scikit-learn's two-line UserWarning must not reach stderr.
    import pandas as pd

    from chainrule.estimator import MLPClassifier
    from chainrule.io import save

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    save(MLPClassifier((4,), max_iter=3, random_state=0).fit(df, y), tmp_path / "clf.npz")
    df.assign(label=y).to_csv(tmp_path / "d.csv", index=False)
    code = "import sys; from chainrule.cli import main; sys.exit(main(sys.argv[1:]))"
    for command in ("evaluate", "predict"):
        run = subprocess.run([sys.executable, "-c", code, command, str(tmp_path / "clf.npz"),
                              "--data", str(tmp_path / "d.csv"), "--label-column", "label"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "Warning" not in run.stderr and "feature names" not in run.stderr, run.stderr
