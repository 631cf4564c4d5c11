"""The command line on tables that are not digits (issue 9): columns matched by name,
regression, never losing a trained model, the defaults, and a CLI that helps.

Expected values come from scikit-learn, onnxruntime or the saved model itself, never
from the command's own earlier output.
"""

import csv
import re
import sys

import numpy as np
import pytest

from chainrule import io
from chainrule.cli import main


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors and --help
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def wine_csv(path, order=None, rename=None, extra=False):
    """scikit-learn's wine table with a string label column 'cultivar' (last)."""
    from sklearn.datasets import load_wine

    data = load_wine()
    names = list(data.feature_names)
    X = data.data
    labels = [f"class_{t}" for t in data.target]
    order = list(range(len(names))) if order is None else order
    header = [names[j] for j in order] + ["cultivar"]
    if rename:
        header = [rename.get(h, h) for h in header]
    rows = [[repr(float(X[i, j])) for j in order] + [labels[i]] for i in range(len(X))]
    if extra:
        header.append("batch_id")
        rows = [r + [str(i)] for i, r in enumerate(rows)]
    return write_csv(path, header, rows), names


def diabetes_csv(path):
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    rows = [[repr(float(v)) for v in x] + [repr(float(t))]
            for x, t in zip(data.data, data.target, strict=True)]
    return write_csv(path, list(data.feature_names) + ["target"], rows)


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wine")
    data, names = wine_csv(folder / "wine.csv")
    code = main(["train", "--data", str(data), "--label-column", "cultivar", "--quiet",
                 "--save", str(folder / "m.npz"), "--save-test", str(folder / "test.csv")])
    assert code == 0
    return folder, data, names


# -- 2. columns by name ---------------------------------------------------------------

def test_the_model_file_remembers_columns_label_and_classes(wine_model):
    folder, _, names = wine_model
    meta = io.read_metadata(folder / "m.npz")
    assert meta["feature_names"] == names
    assert meta["label_column"] == "cultivar"
    assert meta["classes"] == ["class_0", "class_1", "class_2"]
    assert meta["task"] == "classification"


def predicted_labels(out):
    return [row["predicted"] for row in csv.DictReader(out.splitlines())]


def test_predict_matches_columns_by_name_in_any_order(wine_model, capsys, tmp_path):
    folder, data, names = wine_model
    code, out, err = run(capsys, "predict", folder / "m.npz", "--data", data)
    assert code == 0, err
    # Expected: the saved model on the columns in its own order, computed here.
    from sklearn.datasets import load_wine

    model = io.load(folder / "m.npz")
    classes = np.array(io.read_metadata(folder / "m.npz")["classes"])
    expected = classes[model.predict_proba(load_wine().data).argmax(axis=1)].tolist()
    assert predicted_labels(out) == expected
    # Reversed and shuffled columns, label column in the middle of nowhere: same labels.
    order = list(np.random.default_rng(0).permutation(len(names)))
    swapped, _ = wine_csv(tmp_path / "swapped.csv", order=order)
    code, out2, err = run(capsys, "predict", folder / "m.npz", "--data", swapped)
    assert code == 0, err
    assert predicted_labels(out2) == expected


def test_a_renamed_or_extra_column_is_refused_in_one_line(wine_model, capsys, tmp_path):
    folder, _, names = wine_model
    renamed, _ = wine_csv(tmp_path / "renamed.csv", rename={names[1]: "acid"})
    code, out, err = run(capsys, "predict", folder / "m.npz", "--data", renamed)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and names[1] in err and "missing" in err
    extra, _ = wine_csv(tmp_path / "extra.csv", extra=True)
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", extra)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "'batch_id'" in err and "--ignore-extra-columns" in err
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", extra,
                         "--ignore-extra-columns")
    assert code == 0, err
    assert "accuracy = " in out


def test_save_test_rows_evaluate_to_the_reported_test_accuracy(wine_model, capsys):
    folder, data, _ = wine_model
    with open(folder / "test.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == round(0.25 * 178)
    # The held-out rows are rows of the file (by value), none of them used twice.
    with open(data) as fh:
        source = {tuple(float(v) for v in list(r.values())[:-1]) for r in csv.DictReader(fh)}
    held = [tuple(float(v) for v in list(r.values())[:-1]) for r in rows]
    assert set(held) <= source and len(set(held)) == len(held)
    # evaluate on them (label column taken from the model file) agrees with the model.
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", folder / "test.csv")
    assert code == 0, err
    model = io.load(folder / "m.npz")
    classes = io.read_metadata(folder / "m.npz")["classes"]
    pred = model.predict_proba(np.array(held)).argmax(axis=1)
    hits = sum(classes[p] == r["cultivar"] for p, r in zip(pred, rows, strict=True))
    assert f"accuracy = {hits / len(rows):.4f} ({hits}/{len(rows)})" in out


def test_train_matches_test_data_columns_by_name_and_refuses_others(tmp_path, capsys):
    data, names = wine_csv(tmp_path / "wine.csv")
    shuffled = list(np.random.default_rng(1).permutation(len(names)))
    swapped, _ = wine_csv(tmp_path / "swapped.csv", order=shuffled)
    results = {}
    for test in (data, swapped):
        code, out, err = run(capsys, "train", "--data", data, "--test-data", test,
                             "--label-column", "cultivar", "--quiet", "--epochs", "5",
                             "--save-test", tmp_path / f"saved_{test.stem}.csv")
        assert code == 0, err
        results[test.stem] = re.search(r"test accuracy = .*", out).group()
        with open(tmp_path / f"saved_{test.stem}.csv") as fh:
            saved = list(csv.reader(fh))
        # The rows written under the training header are the file's rows by name.
        with open(data) as fh:
            original = list(csv.reader(fh))
        assert [float(v) for v in saved[1][:-1]] == [float(v) for v in original[1][:-1]]
    assert results["swapped"] == results["wine"]
    extra, _ = wine_csv(tmp_path / "extra.csv", extra=True)
    code, out, err = run(capsys, "train", "--data", data, "--test-data", extra,
                         "--label-column", "cultivar", "--quiet")
    assert code == 1 and "missing [], extra ['batch_id']" in err


def test_a_header_naming_a_column_twice_is_refused(tmp_path, capsys):
    from chainrule.data import load_csv
    from chainrule.datastream import iter_csv

    path = write_csv(tmp_path / "dup.csv", ["label", "a", "a", "b"],
                     [[str(i % 2), str(i), str(i + 1), str(i + 2)] for i in range(40)])
    message = "the header names ['a'] more than once"
    for read in (lambda: load_csv(path, "label"), lambda: next(iter_csv(path, "label"))):
        with pytest.raises(ValueError, match=re.escape(message)):
            read()
    code, out, err = run(capsys, "train", "--data", path, "--label-column", "label", "-q")
    assert code != 0 and message in err


def test_skipped_columns_before_the_label_column_are_read_around(wine_model, capsys,
                                                                   tmp_path):
    folder, _, names = wine_model
    from sklearn.datasets import load_wine

    data = load_wine()
    header = ["batch_id", names[3], "cultivar"] + [n for n in names if n != names[3]]
    rows = [[str(i), repr(float(x[3])), f"class_{t}"] + [repr(float(v)) for j, v in
                                                         enumerate(x) if j != 3]
            for i, (x, t) in enumerate(zip(data.data, data.target, strict=True))]
    moved = write_csv(tmp_path / "moved.csv", header, rows)
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", moved,
                         "--ignore-extra-columns")
    assert code == 0, err
    code, out_ref, err = run(capsys, "evaluate", folder / "m.npz", "--data",
                             wine_csv(tmp_path / "plain.csv")[0])
    assert re.search(r"accuracy = .*", out).group() == re.search(r"accuracy = .*",
                                                                  out_ref).group()


# -- 1. never lose work ---------------------------------------------------------------

def test_plot_without_matplotlib_fails_before_training(wine_model, capsys, tmp_path,
                                                       monkeypatch):
    folder, data, _ = wine_model
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--plot", tmp_path / "plots", "--save", tmp_path / "m.npz")
    assert code == 1
    assert out == ""  # nothing loaded, nothing trained
    assert err.count("\n") == 1 and "matplotlib" in err and "chainrule[plot]" in err
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", data, "--plot",
                         tmp_path / "plots")
    assert code == 1 and out == "" and "matplotlib" in err


def test_a_plot_failing_after_training_leaves_the_model_saved(wine_model, capsys, tmp_path,
                                                              monkeypatch):
    pytest.importorskip("matplotlib")
    import chainrule.plots

    _, data, _ = wine_model

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(chainrule.plots, "plot_history", broken)
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--quiet", "--plot", tmp_path / "plots", "--save", tmp_path / "m.npz")
    assert code == 1
    assert err.count("\n") == 1 and "disk full" in err
    assert f"the model was saved to {tmp_path / 'm.npz'}" in err
    assert io.load(tmp_path / "m.npz").n_features == 13


# -- 3. regression -------------------------------------------------------------------

def test_regression_end_to_end_with_onnx(tmp_path, capsys):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    data = diabetes_csv(tmp_path / "diabetes.csv")
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "target",
                         "--quiet", "--save", tmp_path / "r.npz", "--save-test",
                         tmp_path / "test.csv")
    assert code == 0, err
    assert "task: regression (--task auto" in out
    model = io.load(tmp_path / "r.npz")
    with open(tmp_path / "test.csv") as fh:
        rows = [[float(v) for v in r] for r in list(csv.reader(fh))[1:]]
    X, y = np.array(rows)[:, :-1], np.array(rows)[:, -1]
    pred = model.predict(X)[:, 0]  # raw units: both scalings are folded into the file
    r2 = r2_score(y, pred)
    assert r2 > 0.3  # scikit-learn's own default MLPRegressor gets below 0 here
    reported = re.search(r"test RMSE = (\S+), MAE = (\S+), R² = (\S+) ", out)
    assert float(reported.group(3)) == pytest.approx(r2, abs=5e-5)

    code, out, err = run(capsys, "evaluate", tmp_path / "r.npz", "--data", tmp_path / "test.csv")
    assert code == 0, err
    assert float(re.search(r"RMSE = (\S+)", out).group(1)) == pytest.approx(
        mean_squared_error(y, pred) ** 0.5, rel=1e-5)
    assert float(re.search(r"MAE  = (\S+)", out).group(1)) == pytest.approx(
        mean_absolute_error(y, pred), rel=1e-5)
    assert float(re.search(r"R²   = (\S+)", out).group(1)) == pytest.approx(r2, abs=5e-5)

    code, out, err = run(capsys, "predict", tmp_path / "r.npz", "--data", tmp_path / "test.csv")
    assert code == 0, err
    written = [float(r["predicted"]) for r in csv.DictReader(out.splitlines())]
    np.testing.assert_array_equal(written, pred)

    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    code, out, err = run(capsys, "export", tmp_path / "r.npz", tmp_path / "r.onnx")
    assert code == 0, err
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(["outputs"], {"X": X})
    np.testing.assert_allclose(outputs[:, 0], pred, rtol=1e-12, atol=1e-9)


def test_classification_of_a_numeric_target_says_regression_exists(tmp_path, capsys):
    data = diabetes_csv(tmp_path / "diabetes.csv")
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "target",
                       "--task", "classification", "--quiet", "--epochs", "1")
    assert code == 1
    assert err.count("\n") == 1 and "--task regression" in err


def test_fold_target_scaling_gives_raw_outputs():
    from chainrule import MLP
    from chainrule.folding import fold_target_scaling

    model = MLP([3, 5, 2], loss="mse", rng=0)
    X = np.random.default_rng(1).normal(size=(7, 3))
    before = model.forward(X)
    mean, scale = np.array([10.0, -2.0]), np.array([3.0, 0.5])
    fold_target_scaling(model, mean, scale)
    np.testing.assert_allclose(model.forward(X), before * scale + mean, rtol=1e-12)
    with pytest.raises(ValueError, match="scale must be positive"):
        fold_target_scaling(model, 0.0, -1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        fold_target_scaling(model, np.zeros(3), np.ones(3))


# -- 4. defaults ----------------------------------------------------------------------

def test_choosing_a_small_network_brings_no_dropout(tmp_path, capsys):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    data = write_csv(tmp_path / "iris.csv", ["a", "b", "c", "d", "species"],
                     [[*map(repr, x.tolist()), f"s{t}"] for x, t in zip(X, y, strict=True)])
    # The README's example: --hidden 64 --epochs 30.
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "species",
                         "--hidden", "64", "--epochs", "30", "--quiet")
    assert code == 0, err
    assert "dropout" not in out
    assert re.search(r"model: mlp \[4, 64, 3\] relu, ", out)


@pytest.mark.slow
def test_defaults_match_sklearn_on_breast_cancer(tmp_path, capsys):
    """The issue's bar on one table the defaults were not the only one chosen on."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    cols = [f"f{j}" for j in range(X.shape[1])]
    write_csv(tmp_path / "tr.csv", cols + ["y"], [[*map(repr, x), t] for x, t in
                                                   zip(Xtr.tolist(), ytr, strict=True)])
    write_csv(tmp_path / "te.csv", cols + ["y"], [[*map(repr, x), t] for x, t in
                                                   zip(Xte.tolist(), yte, strict=True)])
    code, out, err = run(capsys, "train", "--data", tmp_path / "tr.csv", "--test-data",
                         tmp_path / "te.csv", "--label-column", "y", "--quiet")
    assert code == 0, err
    ours = float(re.search(r"test accuracy = (\S+)", out).group(1))
    sk = make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=200))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.fit(Xtr, ytr).score(Xte, yte)
    assert ours >= theirs - 0.01


# -- 5. a CLI that helps -------------------------------------------------------------

def test_a_mistyped_flag_shows_the_subcommand_usage_and_the_closest_flag(capsys):
    code, out, err = run(capsys, "train", "--label-colunm", "x")
    assert code == 2 and out == ""
    assert err.startswith("usage: chainrule train ")
    last = err.strip().splitlines()[-1]
    assert last.startswith("chainrule train: error: unrecognized arguments: --label-colunm")
    assert "did you mean --label-column" in last


@pytest.mark.parametrize("value", ["64,,32", "64,", "0", "-3", ","])
def test_malformed_hidden_lists_are_refused_naming_the_flag(value, capsys):
    code, out, err = run(capsys, "train", "--hidden", value)
    assert code == 2 and out == ""
    assert "argument --hidden" in err and repr(value) in err


def test_help_texts_fit_each_command(capsys):
    from chainrule.io import DEFAULT_ONNX_OPSET

    _, out, _ = run(capsys, "train", "--help")
    assert "%%" not in out and "25%" in out
    assert "130" in out
    for command in (["evaluate"], ["predict"], ["export"]):
        _, out, _ = run(capsys, *command, "--help")
        assert "Ctrl-C" not in out and "130" not in out and "--checkpoint" not in out
    _, out, _ = run(capsys, "export", "--help")
    assert f"(default {DEFAULT_ONNX_OPSET})" in " ".join(out.split())
    assert "DEFAULT_ONNX_OPSET" not in out


def test_a_nan_cell_names_line_and_column_without_numpy_reprs(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", ["a", "b", "y"],
                     [["1", "2", "0"], ["3", "nan", "1"], ["5", "6", "0"], ["7", "8", "1"]])
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "y")
    assert code == 1
    assert "line 3, column 'b'" in err and "'nan'" in err
    assert "np.float64" not in err


def test_a_wrong_label_column_is_a_usage_error_like_a_missing_one(wine_model, capsys):
    folder, data, _ = wine_model
    for argv in (["train", "--data", data, "--label-column", "kind"],
                 ["evaluate", folder / "m.npz", "--data", folder / "test.csv",
                  "--label-column", "kind"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", err
        assert err.count("\n") == 1 and "--label-column 'kind'" in err


def test_epoch_lines_progress_bar_and_plain_fallback(wine_model, capsys, monkeypatch):
    import importlib.util

    import chainrule.train

    _, data, _ = wine_model
    argv = ["train", "--data", data, "--label-column", "cultivar", "--epochs", "3"]
    seen = []
    real_fit = chainrule.train.fit
    monkeypatch.setattr(chainrule.train, "fit",
                        lambda *a, **k: seen.append(k["progress"]) or real_fit(*a, **k))

    def epoch_lines(out):
        return [line for line in out.splitlines() if line.startswith("epoch ")]

    # Not a terminal (as under pytest): one line per epoch, no bar.
    assert len(epoch_lines(run(capsys, *argv)[1])) == 3 and seen[-1] is False
    assert epoch_lines(run(capsys, *argv, "--quiet")[1]) == []
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    # A terminal with tqdm: the bar, no lines; --verbose: the lines.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "tqdm" else real_find_spec(name, *a))
    assert epoch_lines(run(capsys, *argv)[1]) == [] and seen[-1] is True
    assert len(epoch_lines(run(capsys, *argv, "--verbose")[1])) == 3 and seen[-1] is False
    # A terminal without tqdm: the plain lines instead of nothing.
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tqdm" else real_find_spec(name, *a))
    assert len(epoch_lines(run(capsys, *argv)[1])) == 3 and seen[-1] is False


def test_onnx_carries_class_names_and_a_label_output(wine_model, capsys, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import json

    folder, data, _ = wine_model
    code, _, err = run(capsys, "export", folder / "m.npz", tmp_path / "m.onnx")
    assert code == 0, err
    proto = onnx.load(str(tmp_path / "m.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    classes = io.read_metadata(folder / "m.npz")["classes"]
    assert json.loads(props["classes"]) == classes
    from sklearn.datasets import load_wine

    X = load_wine().data
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    label, proba = session.run(["label", "probabilities"], {"X": X})
    expected = np.array(classes)[io.load(folder / "m.npz").predict_proba(X).argmax(axis=1)]
    assert label.tolist() == expected.tolist()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_a_header_of_numbers_warns_that_a_row_of_data_may_be_lost(tmp_path, capsys):
    import warnings

    from chainrule.data import load_csv
    from chainrule.datastream import iter_csv

    rows = [[str(i % 2), str(i + 0.5), str(2 * i + 1)] for i in range(40)]
    headless = write_csv(tmp_path / "headless.csv", rows[0], rows[1:])
    for read in (lambda: load_csv(headless, 0), lambda: next(iter_csv(headless, 0))):
        with pytest.warns(UserWarning, match=r"every name in the header row is a number "
                                             r"\(0, 0.5, 1\); if the file has no header row"):
            read()
    named = write_csv(tmp_path / "named.csv", ["y", "a", "b"], rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_csv(named, "y")
    # The command prints it as a line of its own, not Python's file:line echo.
    code, out, err = run(capsys, "train", "--data", headless, "--label-column", "0",
                         "--quiet", "--epochs", "1")
    assert code == 0, err
    assert err.startswith("chainrule train: UserWarning: ") and "headless.csv:" in err
    assert "warnings.warn" not in err and ".py:" not in err


def test_a_semicolon_separated_file_gets_a_hint(wine_model, capsys, tmp_path):
    folder, data, _ = wine_model
    with open(data) as fh:
        text = fh.read()
    semi = tmp_path / "semi.csv"
    semi.write_text(text.replace(",", ";"))
    hint = "one column holding ';': chainrule reads comma-separated .csv"
    code, out, err = run(capsys, "predict", folder / "m.npz", "--data", semi)
    assert code == 1 and hint in err and "its header has" in err
    code, out, err = run(capsys, "train", "--data", semi, "--label-column", "cultivar")
    assert code == 2 and hint in err


def test_a_label_column_that_is_one_of_the_models_features_is_refused(wine_model, capsys):
    folder, data, names = wine_model
    code, out, err = run(capsys, "evaluate", folder / "m.npz", "--data", data,
                         "--label-column", names[0], "--ignore-extra-columns")
    assert code == 2 and out == ""
    assert (f"--label-column '{names[0]}' is one of the columns the model" in err
            and "it was trained to predict 'cultivar'" in err)


def test_a_class_only_in_the_test_rows_gets_a_hint_that_fits_its_labels(tmp_path, capsys):
    from sklearn.datasets import load_iris

    from chainrule.data import holdout_split

    data = load_iris()
    names = ["setosa", "versicolor", "virginica"]
    header = ["a", "b", "c", "d", "species"]
    for kind, rare in (("names", "rare"), ("numbers", "7")):
        labels = [names[t] if kind == "names" else str(t) for t in data.target]
        rows = [[repr(float(v)) for v in x] + [lab] for x, lab in zip(data.data, labels,
                                                                         strict=True)]
        table = write_csv(tmp_path / f"{kind}.csv", header, rows)
        # A row the fixed hold-out (seed 0) puts among its test rows.
        _, _, _, held = holdout_split(np.arange(150)[:, None], np.arange(150), 0.25, rng=0)
        rows[int(held[0])][-1] = rare
        write_csv(table, header, rows)
        code, out, err = run(capsys, "train", "--data", table, "--label-column", "species",
                             "-q")
        assert code == 1 and "do not occur in the training rows" in err, err
        assert ("--task regression" in err) == (kind == "numbers"), err
        assert ("cannot be learned" in err) == (kind == "names"), err


def test_predict_refuses_to_write_csv_text_under_a_binary_files_name(wine_model, capsys,
                                                                      tmp_path):
    folder, data, _ = wine_model
    for name in ("p.npz", "p.xlsx"):   # (Excel would refuse the CSV text of a .xlsx)
        code, out, err = run(capsys, "predict", folder / "m.npz", "--data", data, "-o",
                             tmp_path / name)
        assert code == 2 and "predict writes CSV text" in err
        assert not (tmp_path / name).exists()


def test_train_ignores_an_id_and_a_text_column_when_told(tmp_path, capsys):
    from sklearn.datasets import load_wine

    data = load_wine()
    header = ["id", "note"] + list(data.feature_names) + ["cultivar"]
    rows = [[str(i), f"bottle {i}, cellar"] + [repr(float(v)) for v in x] + [f"c{t}"]
            for i, (x, t) in enumerate(zip(data.data, data.target, strict=True))]
    table = write_csv(tmp_path / "wine_id.csv", header, rows)
    code, out, err = run(capsys, "train", "--data", table, "--label-column", "cultivar",
                         "--ignore-columns", "id, note", "--quiet", "--epochs", "5",
                         "--save", tmp_path / "m.npz", "--test-data", table)
    assert code == 0, err
    assert "13 features" in out
    assert io.read_metadata(tmp_path / "m.npz")["feature_names"] == list(data.feature_names)
    code, out, err = run(capsys, "evaluate", tmp_path / "m.npz", "--data", table,
                         "--ignore-extra-columns")
    assert code == 0 and "accuracy = " in out, err
    for bad, message in (("idx", "has no columns ['idx']"),
                         ("cultivar", "'cultivar' is the --label-column")):
        code, out, err = run(capsys, "train", "--data", table, "--label-column", "cultivar",
                             "--ignore-columns", bad, "--quiet")
        assert code == 2 and message in err
    # Without the flag the text column is refused, naming it.
    code, out, err = run(capsys, "train", "--data", table, "--label-column", "cultivar",
                         "--quiet")
    assert code == 1 and "column 'note'" in err


def test_columns_and_targets_near_1e200_train_save_and_score(tmp_path, capsys):
    """A column whose squares overflow float64 is standardised before training (it once
    trained, then failed folding the statistics and saved nothing), and a regression
    target of that size gets finite RMSE and R²."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 3))
    big = rng.normal(size=300) * 1e200
    rows = [[*b, g, int(b[0] + b[1] > 0), 2 * g] for b, g in zip(base, big, strict=True)]
    path = write_csv(tmp_path / "big.csv", ["a", "b", "c", "d", "label", "t"], rows)
    code, out, err = run(capsys, "train", "--data", path, "--label-column", "label",
                         "--ignore-columns", "t", "--epochs", "20", "--save",
                         tmp_path / "m.npz")
    assert code == 0, err
    assert (tmp_path / "m.npz").exists() and "test accuracy" in out
    proba = io.load(tmp_path / "m.npz").predict_proba(np.array([r[:4] for r in rows]))
    assert np.all(np.isfinite(proba))
    code, out, err = run(capsys, "train", "--data", path, "--label-column", "t",
                         "--ignore-columns", "label", "--epochs", "20")
    assert code == 0, err
    rmse, r2 = re.search(r"RMSE = (\S+), MAE = \S+, R² = (\S+)", out).groups()
    assert 1e198 < float(rmse.rstrip(",")) < 1e201 and 0 < float(r2) <= 1
