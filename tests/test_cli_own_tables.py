"""The command line on a user's own table, the way a data scientist brings it: blank
label columns to predict, missing values, a DataFrame's index column, a file without a
header, values beyond float32, gzipped outputs and a rare class held out.

Expected outputs come from pandas, the saved model's own predictions through the
library, or the file's content, never from the command's earlier output.
"""

import gzip

import numpy as np
import pytest

from chainrule import io
from chainrule.cli import main


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _table(path, n=80, seed=0, label=lambda i, a, b: "yes" if a + b > 0 else "no",
           big=None, header="a,b,label,c"):
    rng = np.random.default_rng(seed)
    lines = [header] if header else []
    for i in range(n):
        a, b, c = rng.normal(size=3).tolist()
        first = big if big is not None and i % 7 == 0 else a
        lines.append(f"{first!r},{b!r},{label(i, a, b)},{c!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def model(tmp_path, capsys):
    path = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", "--data", _table(tmp_path / "t.csv"),
                       "--label-column", "label", "--epochs", "3", "-q", "--save", path)
    assert code == 0, err
    return path


def test_predict_takes_rows_whose_label_column_is_blank(tmp_path, model, capsys):
    import pandas as pd

    text = _table(tmp_path / "t.csv", seed=1).read_text().splitlines()
    blank = [text[0]] + [",".join(c if j != 2 else "" for j, c in enumerate(line.split(",")))
                         for line in text[1:]]
    (tmp_path / "new.csv").write_text("\n".join(blank) + "\n")
    code, out, err = run(capsys, "predict", model, "--data", tmp_path / "new.csv")
    assert code == 0, err
    got = pd.read_csv(__import__("io").StringIO(out))
    frame = pd.read_csv(tmp_path / "new.csv")
    expected = io.load(model).predict_proba(frame[["a", "b", "c"]].to_numpy())
    np.testing.assert_allclose(got[["p_no", "p_yes"]].to_numpy(), expected, rtol=1e-12)
    # evaluate scores labels: a blank one is named by its row
    code, _, err = run(capsys, "evaluate", model, "--data", tmp_path / "new.csv")
    assert code == 1 and "data row 1: the label cell is empty" in err


@pytest.mark.parametrize("cell", ["NA", "nan", "NULL", "None", "n/a"])
def test_a_missing_label_is_refused_by_line_not_taken_for_a_class(tmp_path, capsys, cell):
    path = _table(tmp_path / "t.csv", label=lambda i, a, b: cell if i == 5 else str(i % 3))
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label", "-q",
                       "--epochs", "1")
    assert code == 1 and err.count("\n") == 1
    # line 7: the header is line 1 and row i is line i + 2
    assert f"t.csv, line 7: the label cell is missing ('{cell}'" in err


def test_missing_and_text_feature_cells_say_what_to_do(tmp_path, capsys):
    path = _table(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    for cell, message in [("NA", "line 4, column 'b': a missing value ('NA'); chainrule "
                                 "fills none in"),
                          # text among numbers: neither numbers nor categories
                          ("blue", "column 'b': mixes numbers (79 cells, such as '-0.1"),
                          ("blue", "and text (1 cell, such as 'blue' on line 4): neither a "
                                   "column of numbers nor one of categories; fix the odd "
                                   "cells, or leave the column out (train --ignore-columns)")]:
        cells = lines[3].split(",")
        cells[1] = cell
        path.write_text("\n".join(lines[:3] + [",".join(cells)] + lines[4:]) + "\n")
        code, _, err = run(capsys, "train", "--data", path, "--label-column", "label", "-q")
        assert code == 1 and message in err


def test_a_dataframes_index_column_is_refused_not_used_as_a_feature(tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(_table(tmp_path / "t.csv"))
    frame.to_csv(tmp_path / "indexed.csv")   # pandas' default: the index, unnamed, first
    code, _, err = run(capsys, "train", "--data", tmp_path / "indexed.csv",
                       "--label-column", "label", "-q")
    assert code == 1 and "column 1 of the header has no name" in err
    assert "to_csv(index=False)" in err


def test_a_file_without_a_header_warns_even_with_a_text_label_column(tmp_path, capsys):
    path = _table(tmp_path / "headless.csv", header=None)
    first = path.read_text().splitlines()[0].split(",")
    code, _, err = run(capsys, "train", "--data", path, "--label-column", first[2], "-q",
                       "--epochs", "1")
    assert code == 0, err
    assert (f"every name in the header row but '{first[2]}' is a number" in err
            and "its first row of data is being read as the column names" in err)


def test_values_beyond_float32_are_refused_before_a_float32_model_would_hold_them(
        tmp_path, capsys):
    path = _table(tmp_path / "big.csv", big=1e200)
    base = ["train", "--data", path, "--label-column", "label", "-q", "--epochs", "1",
            "--dtype", "float32"]
    # Standardised in float64, the run itself is fine; the saved model takes raw inputs.
    assert run(capsys, *base)[0] == 0
    for extra, why in ([("--save", tmp_path / "m.npz"), "the model --save writes takes raw"],
                       [("--no-standardize",), "--no-standardize feeds them as they are"]):
        code, _, err = run(capsys, *base, *extra)
        assert code == 1 and err.count("\n") == 1
        assert "column 'a' holds values up to 1e+200, beyond float32's range" in err
        assert why in err
    assert not (tmp_path / "m.npz").exists()
    # A float32 model given such a file to predict on names the column too.
    small = _table(tmp_path / "small.csv")
    assert run(capsys, "train", "--data", small, "--label-column", "label", "-q",
               "--epochs", "1", "--dtype", "float32", "--save", tmp_path / "m32.npz")[0] == 0
    code, out, err = run(capsys, "predict", tmp_path / "m32.npz", "--data", path)
    assert code == 1 and out == ""
    assert "column 'a' holds values up to 1e+200" in err and "computes in float32" in err


@pytest.mark.parametrize("name, sep", [("p.csv.gz", ","), ("p.tsv.gz", "\t"), ("p.tsv", "\t")])
def test_predict_writes_the_format_the_output_name_says(tmp_path, model, capsys, name, sep):
    import pandas as pd

    data = _table(tmp_path / "t.csv", seed=2)
    code, _, err = run(capsys, "predict", model, "--data", data, "-o", tmp_path / name)
    assert code == 0, err
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode()
    assert text.splitlines()[0] == sep.join(["row", "predicted", "p_no", "p_yes"])
    got = pd.read_csv(tmp_path / name, sep=sep)   # pandas gunzips by the name
    expected = io.load(model).predict_proba(pd.read_csv(data)[["a", "b", "c"]].to_numpy())
    np.testing.assert_allclose(got[["p_no", "p_yes"]].to_numpy(), expected, rtol=1e-12)


def test_a_rare_class_held_out_whole_is_said_so(tmp_path, capsys):
    # 2 rows of class 'b' among 100; the seed-0 hold-out of 25% takes both.
    from chainrule.data import split_rows

    _, test = split_rows(100, 25, 0)
    rare = set(test.tolist()[:2])
    path = _table(tmp_path / "t.csv", n=100, label=lambda i, a, b: "b" if i in rare else "a")
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label", "-q",
                       "--validation-fraction", "0")
    assert code == 1
    assert ("the training labels hold a single class ['a']; a classifier needs at least "
            "two; the rows of ['b'] all fell into the test rows held out at random") in err


def test_predict_id_column_keeps_ids_as_written(tmp_path, capsys):
    # Record ids such as "007" are text: written back as read, not as the number 7.
    rows = _table(tmp_path / "t.csv", n=40).read_text().splitlines()
    ids = [f"{i:03d}" for i in range(40)]
    (tmp_path / "ids.csv").write_text("\n".join(
        ["id," + rows[0]] + [f"{i},{r}" for i, r in zip(ids, rows[1:], strict=True)]) + "\n")
    assert run(capsys, "train", "--data", tmp_path / "ids.csv", "--label-column", "label",
               "--ignore-columns", "id", "-q", "--epochs", "1",
               "--save", tmp_path / "m.npz")[0] == 0
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data", tmp_path / "ids.csv",
                         "--id-column", "id", "--ignore-extra-columns")
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()] == ["id", *ids]


@pytest.mark.parametrize("given, meant", [("Label", "label"), ("lable", "label"),
                                          ("target", None)])
def test_a_mistyped_column_name_gets_the_likely_one(tmp_path, capsys, given, meant):
    code, _, err = run(capsys, "train", "--data", _table(tmp_path / "t.csv"),
                       "--label-column", given, "-q")
    assert code == 2 and err.count("\n") == 1
    assert f"--label-column {given!r}: --data" in err and "has no such column" in err
    assert (f"did you mean {meant!r}?" in err) if meant else "did you mean" not in err


def test_a_wide_header_is_shown_in_brief(tmp_path, capsys):
    names = [f"feature_{i}" for i in range(300)]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join(["1"] * 300) + "\n")
    code, _, err = run(capsys, "train", "--data", tmp_path / "wide.csv", "--label-column",
                       "Feature_299", "-q")
    assert code == 2 and "(300 columns)" in err and len(err) < 400
    assert "did you mean 'feature_299'?" in err


def test_old_mac_line_endings_are_named(tmp_path, capsys):
    (tmp_path / "cr.csv").write_bytes(b"a,label\r1,x\r2,y\r")
    code, _, err = run(capsys, "train", "--data", tmp_path / "cr.csv", "--label-column",
                       "label", "-q")
    assert code == 1 and "bare carriage return (CR" in err and "universal-newline" not in err


def test_the_setup_line_counts_in_the_singular_too(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("a,label\n1,x\n2,y\n3,x\n4,y\n")
    (tmp_path / "test.csv").write_text("a,label\n1,x\n")
    code, out, err = run(capsys, "train", "--data", tmp_path / "train.csv", "--test-data",
                         tmp_path / "test.csv", "--label-column", "label", "-q", "--epochs", "1")
    assert code == 0, err
    assert "4 training rows, 1 test row, 1 feature, 2 classes" in out


def test_a_reader_closing_the_pipe_in_the_middle_of_one_large_write_gives_141(tmp_path, capsys):
    # 20,000 rows are one chunk, one write of ~1 MB: the pipe takes part of it when the
    # reader goes away, and Python's write returns that short count without raising.
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 5))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    assert run(capsys, "train", "--data", tmp_path / "d.npz", "-q", "--epochs", "1",
               "--save", tmp_path / "m.npz")[0] == 0
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    script = "import sys; from chainrule.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", script, "predict", str(tmp_path / "m.npz"),
                             "--data", str(tmp_path / "d.npz")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=src))
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=120)
    assert first == b"row,predicted,p_0,p_1\n"
    assert proc.returncode == 141 and err == b"", err.decode()


def test_a_quote_left_open_is_traced_to_its_line(tmp_path, capsys):
    from chainrule.data import load_csv
    from chainrule.datastream import iter_csv

    lines = _table(tmp_path / "t.csv", n=30).read_text().splitlines()
    lines[11] = lines[11].replace(",", ',"', 1)   # line 12 opens a quote it never closes
    path = tmp_path / "open.csv"
    path.write_text("\n".join(lines) + "\n")
    message = "a quoted cell runs from line 12 to line 31: is a quote on line 12 left open?"
    for read in (lambda: load_csv(path, "label"), lambda: list(iter_csv(path, "label"))):
        with pytest.raises(ValueError, match="line 31: expected 4 cells") as err:
            read()
        assert message in str(err.value)
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label", "-q")
    assert code == 1 and message in err


def test_an_unread_unnamed_column_and_a_header_of_years_are_no_trouble(tmp_path):
    import warnings

    from chainrule.data import load_csv
    from chainrule.datastream import iter_csv

    (tmp_path / "idx.csv").write_text(",x1,x2,label\n0,1,2,a\n1,3,4,b\n")
    for read in (lambda p: load_csv(p, "label", feature_columns=["x1", "x2"])[0],
                 lambda p: next(iter_csv(p, "label", feature_columns=["x1", "x2"]))[0]):
        np.testing.assert_array_equal(read(tmp_path / "idx.csv"), [[1, 2], [3, 4]])
    (tmp_path / "years.csv").write_text("country,1990,1991,1992\nfr,1,2,3\nde,4,5,6\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a named table, not a missing header
        load_csv(tmp_path / "years.csv", None, feature_columns=["1990", "1991"])


def test_a_closed_multiline_cell_in_a_long_row_gets_no_open_quote_hint(tmp_path):
    from chainrule.data import load_csv

    (tmp_path / "t.csv").write_text('a,b,c\n1,2,3\n4,"x\ny",6,7\n')
    with pytest.raises(ValueError, match="line 4: expected 3 cells") as err:
        load_csv(tmp_path / "t.csv")
    assert "left open" not in str(err.value)


def _numeric_table(path, labels, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["a,b,y"] + [f"{a!r},{b!r},{v}" for v, (a, b) in
                          zip(labels, rng.normal(size=(len(labels), 2)).tolist(), strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_many_integer_labels_of_few_rows_each_warn_that_they_may_be_quantities(tmp_path,
                                                                               capsys):
    # An age column written as integers: --task auto classifies it (as scikit-learn's
    # type_of_target calls integers multiclass) but says what else it may be.
    ages = [18 + i % 40 for i in range(400)]
    data = _numeric_table(tmp_path / "ages.csv", ages)
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "y",
                         "--epochs", "1", "-q")
    assert code == 0, err
    assert "task: classification" in out
    assert ("UserWarning: " + str(data) + ": --task auto classifies 40 distinct integer "
            "labels, 8 training rows each on average; if they are quantities") in err
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "y",
                         "--epochs", "1", "-q", "--task", "regression")
    assert code == 0 and "Warning" not in err
    # Prices written as integers, nearly each its own: regression, as the line says.
    prices = _numeric_table(tmp_path / "prices.csv", [100_000 + 37 * i for i in range(400)])
    code, out, err = run(capsys, "train", "--data", prices, "--label-column", "y",
                         "--epochs", "1", "-q")
    assert code == 0, err
    assert "task: regression (--task auto: the labels are 300 distinct integers" in out
    code, out, err = run(capsys, "train", "--data", prices, "--label-column", "y",
                         "--epochs", "1", "-q", "--task", "classification")
    assert code == 1 and "do not occur in the training rows" in err
    # Ten class codes with plenty of rows each: no warning.
    codes = _numeric_table(tmp_path / "codes.csv", [i % 10 for i in range(400)])
    code, out, err = run(capsys, "train", "--data", codes, "--label-column", "y",
                         "--epochs", "1", "-q")
    assert code == 0 and "Warning" not in err


def test_a_constant_target_says_regression_and_scores_r2_as_sklearn(tmp_path, capsys):
    from sklearn.metrics import r2_score

    from chainrule.cli._common import regression_metrics

    data = _numeric_table(tmp_path / "const.csv", [3.5] * 60)
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "y", "--epochs", "1")
    assert code == 1 and "hold a single class [3.5]" in err and "--task regression" in err
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "y", "--epochs",
                         "1", "-q", "--task", "regression")
    assert code == 0, err
    assert "R² = 0.0000" in out and "nan" not in out
    y = np.full(5, 3.5)
    for pred in (y + 0.1, y):
        assert regression_metrics(y, pred)[2] == r2_score(y, pred)


def test_unseen_test_labels_name_the_training_classes_in_brief(tmp_path, capsys):
    train = _numeric_table(tmp_path / "train.csv", [i % 30 for i in range(300)])
    test = _numeric_table(tmp_path / "test.csv", [99] * 5, seed=1)
    code, _, err = run(capsys, "train", "--data", train, "--test-data", test,
                       "--label-column", "y", "--epochs", "1")
    assert code != 0
    assert "test labels [99] do not occur in the training rows, whose classes are [0, 1" in err
    assert "...] (30 classes)" in err and "29]" not in err


def test_train_takes_a_loss_for_its_task(tmp_path, capsys):
    # --loss huber on a target with outliers; a loss of the other task is refused, before
    # the data are read when --task says the task, after when --task auto tells it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300)
    y[::25] += 40.0
    data = tmp_path / "reg.npz"
    np.savez(data, X=X, y=y)
    code, out, err = run(capsys, "train", "--data", data, "--task", "regression", "--loss",
                         "huber", "--epochs", "3", "-q", "--save", tmp_path / "h.npz")
    assert code == 0, err
    assert type(io.load(tmp_path / "h.npz").loss).__name__ == "HuberLoss"
    code, _, err = run(capsys, "train", "--data", data, "--task", "regression", "--loss",
                       "multi_margin")
    assert code == 2 and "--loss multi_margin is a classification loss, but the task is " \
                         "regression: give one of mse, l1, huber" in err
    code, _, err = run(capsys, "train", "--loss", "l1", "--epochs", "1")   # digits: classes
    assert code == 2 and "--loss l1 is a regression loss, but the task is classification" in err
    code, out, err = run(capsys, "train", "--loss", "multi_margin", "--epochs", "3",
                         "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert "multi_margin loss" in out and "test accuracy = " in out


@pytest.mark.parametrize("loss", ["l1", "huber"])
def test_the_robust_losses_stay_robust_to_a_few_huge_targets(tmp_path, capsys, loss):
    # Three prices of 1e9 among a thousand near 1e5 inflate the mean and standard
    # deviation until the other targets sit 0.005 units apart; centred on the median and
    # scaled by the interquartile range they keep their spread. Scored on clean rows
    # with scikit-learn's r2_score from the predictions the command writes.
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)

    def table(path, n, outliers):
        sqft, rooms = rng.uniform(500, 3000, n), rng.integers(1, 6, n)
        price = 100 * sqft + 5000 * rooms + rng.normal(0, 10_000, n)
        price[:outliers] = 1e9
        path.write_text("sqft,rooms,price\n" + "".join(
            f"{a!r},{b},{c!r}\n" for a, b, c in zip(sqft.tolist(), rooms.tolist(),
                                                       price.tolist(), strict=True)))
        return price

    table(tmp_path / "train.csv", 1000, 3)
    truth = table(tmp_path / "clean.csv", 300, 0)
    code, out, err = run(capsys, "train", "--data", tmp_path / "train.csv", "--label-column",
                         "price", "--loss", loss, "--seed", "0", "--epochs", "30",
                         "--save", tmp_path / "m.npz", "-q")
    assert code == 0, err
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data",
                         tmp_path / "clean.csv", "-o", tmp_path / "p.csv")
    assert code == 0, err
    predicted = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=1)
    assert r2_score(truth, predicted) > 0.9   # 0.976 here; -170 with mean and std
