"""The command line on an analyst's own tables (second audit): every --save-test name
reads back, flags a model ignores are refused, messages that name the right column,
flag or format, and output that stops cleanly.

Expected values come from the saved model itself or from files written here, never
from the command's own earlier output.
"""

import csv
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from chainrule import MLP, io
from chainrule.cli import main
from test_cli_tables import run  # main() with its exit status and captured output

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def one_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def wine_rows():
    """scikit-learn's wine table: its feature names and rows with a string label
    (last cell), as the analyst's file has them."""
    from sklearn.datasets import load_wine

    data = load_wine()
    names = ["barolo", "grignolino", "barbera"]
    rows = [[repr(float(v)) for v in x] + [names[t]] for x, t in zip(data.data, data.target,
                                                                     strict=True)]
    return list(data.feature_names), rows


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """``(folder, wine.csv, model.npz)``: a model trained on wine.csv by the command."""
    folder = tmp_path_factory.mktemp("wine")
    names, rows = wine_rows()
    data = write_csv(folder / "wine.csv", names + ["cultivar"], rows)
    code = main(["train", "--data", str(data), "--label-column", "cultivar", "--quiet",
                 "--epochs", "3", "--save", str(folder / "m.npz")])
    assert code == 0
    return folder, data, folder / "m.npz"


# -- 1. --save-test writes what its name says --------------------------------------------

@pytest.mark.parametrize("name", ["st.tsv", "st.csv.gz", "st.tsv.gz", "st.npz", "st.csv"])
def test_every_save_test_name_accepted_reads_back_with_evaluate(wine, capsys, tmp_path,
                                                                name):
    _, data, _ = wine
    dest, model = tmp_path / name, tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--quiet", "--epochs", "3", "--save", model, "--save-test", dest)
    assert code == 0, err
    score = next(line for line in out.splitlines() if line.startswith("test accuracy"))
    code, out, err = run(capsys, "evaluate", model, "--data", dest)
    assert code == 0, err
    assert score.replace("test ", "") in out
    # The bytes are the format the name says, not an .npz under another name.
    raw = dest.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    if not name.endswith(".npz"):
        header = raw.decode("utf-8").splitlines()[0]
        sep = "\t" if ".tsv" in name else ","
        assert header.split(sep)[-1] == "cultivar" and header.count(sep) == 13


@pytest.mark.parametrize("name", ["st.txt", "st.csv.bz2", "st", "st.csv.zip"])
def test_a_save_test_name_of_another_format_is_refused_before_training(wine, capsys,
                                                                        tmp_path, name):
    _, data, _ = wine
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--quiet", "--save-test", tmp_path / name)
    assert code == 2 and out == ""
    one_line(err, f"--save-test {tmp_path / name}", ".csv", ".tsv", ".csv.gz", ".npz")
    assert os.listdir(tmp_path) == []


# -- 2. logreg refuses the flags of hidden layers ----------------------------------------

@pytest.mark.parametrize("flags", [["--hidden", "4"], ["--activation", "tanh"],
                                   ["--hidden", "128"], ["--activation", "relu"]])
def test_logreg_refuses_hidden_and_activation_when_given(flags, capsys):
    # Even given their default values: the user asked for something logreg lacks.
    code, out, err = run(capsys, "train", "--model", "logreg", *flags, "--epochs", "1")
    assert code == 2 and out == ""
    one_line(err, f"{flags[0]} applies to --model mlp", "logreg has no hidden layer")


def test_logreg_starts_from_zeros_unless_init_says_otherwise(wine, capsys, tmp_path):
    _, data, _ = wine
    weights = {}
    for init in (None, "zeros", "he"):
        path = tmp_path / f"{init}.npz"
        argv = ["train", "--data", data, "--label-column", "cultivar", "--model", "logreg",
                "--quiet", "--epochs", "1", "--no-standardize", "--save", path]
        code, out, err = run(capsys, *argv, *([] if init is None else ["--init", init]))
        assert code == 0, err
        assert "model: logreg [13, 3]" in out
        weights[init] = io.load(path).params["W"]
    np.testing.assert_array_equal(weights[None], weights["zeros"])
    assert not np.array_equal(weights[None], weights["he"])
    _, out, _ = run(capsys, "train", "--help")
    text = " ".join(out.split())
    assert "zero initial weights unless --init" in text
    assert "default xavier for mlp, zeros for logreg" in text


# -- 3. and 4. evaluate names the model's label column; the ';' hint --------------------

def test_evaluate_says_the_file_lacks_the_models_label_column(wine, capsys, tmp_path):
    _, _, model = wine
    names, rows = wine_rows()
    unlabelled = write_csv(tmp_path / "nolabel.csv", names, [r[:-1] for r in rows])
    code, out, err = run(capsys, "evaluate", model, "--data", unlabelled)
    assert code == 1 and out == ""
    one_line(err, "nolabel.csv: has no column 'cultivar'", "the label column the model",
             "'alcohol'", "(13 columns)")
    assert "give --label-column NAME, the header name" not in err
    # predict needs no labels: the same file is fine.
    code, out, err = run(capsys, "predict", model, "--data", unlabelled)
    assert code == 0 and len(out.splitlines()) == 1 + len(rows), err


def test_evaluate_help_says_the_model_file_names_the_label_column(capsys):
    for command in ("evaluate", "predict"):
        _, out, _ = run(capsys, command, "--help")
        text = " ".join(out.split())
        assert "needs --label-column" not in text
        assert "label column stored in the model file" in text


def test_evaluate_gives_the_semicolon_hint_as_train_and_predict_do(wine, capsys, tmp_path):
    _, data, model = wine
    semi = tmp_path / "semi.csv"
    semi.write_text(data.read_text().replace(",", ";"))
    hint = "(one column holding ';': chainrule reads comma-separated .csv"
    code, _, err = run(capsys, "evaluate", model, "--data", semi)
    assert code == 1
    one_line(err, hint, "has no column 'cultivar'")
    code, _, err = run(capsys, "evaluate", model, "--data", semi, "--label-column",
                       "cultivar")
    assert code == 2
    one_line(err, hint, "--label-column 'cultivar'")
    # A model file that names no columns (chainrule.io.save without metadata).
    bare = tmp_path / "bare.npz"
    io.save(MLP([13, 4, 3], rng=0), bare)
    code, _, err = run(capsys, "evaluate", bare, "--data", semi)
    assert code == 2
    one_line(err, hint, "give --label-column NAME")


# -- 5. a class only in --test-data ----------------------------------------------------

def test_a_class_only_in_the_test_data_file_says_to_drop_it_there(wine, capsys, tmp_path):
    _, data, _ = wine
    names, rows = wine_rows()
    rows = [r[:-1] + ["zinfandel" if i == 0 else r[-1]] for i, r in enumerate(rows[:30])]
    test = write_csv(tmp_path / "test.csv", names + ["cultivar"], rows)
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--test-data", test, "--quiet")
    assert code == 1
    one_line(err, "['zinfandel'] do not occur in the training rows",
             f"drop its rows from --test-data {test}")
    assert "or give --test-data" not in err


# -- 6. file formats -------------------------------------------------------------------

def test_a_zipped_csv_is_refused_as_zip_not_read_as_npz(wine, capsys, tmp_path):
    import zipfile

    _, data, model = wine
    zipped = tmp_path / "test.csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(data, "wine.csv")
    for argv in (["evaluate", model, "--data", zipped],
                 ["train", "--data", zipped, "--label-column", "cultivar"]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == ""
        one_line(err, "test.csv.zip: zip archives are not read", ".csv.gz")
        assert "no array named" not in err


@pytest.mark.parametrize("name", ["t.txt", "t.csv.bz2", "t.dat"])
def test_an_unknown_format_lists_every_format_the_commands_read(wine, capsys, tmp_path,
                                                                name):
    _, data, model = wine
    path = tmp_path / name
    path.write_bytes(b"BZh91AY&SY" if name.endswith(".bz2") else data.read_bytes())
    code, out, err = run(capsys, "evaluate", model, "--data", path)
    assert code == 1 and out == ""
    one_line(err, f"{name}: cannot tell the file format", ".csv.gz", ".tsv.gz", ".npz",
             ".npy", "IDX")


# -- 7. and 8. predict's output ----------------------------------------------------------

def test_a_header_only_file_is_said_to_have_no_rows_and_nothing_is_printed(wine, capsys,
                                                                          tmp_path):
    _, _, model = wine
    names, _ = wine_rows()
    empty = write_csv(tmp_path / "header_only.csv", names + ["cultivar"], [])
    for command in ("predict", "evaluate"):
        code, out, err = run(capsys, command, model, "--data", empty)
        assert code == 1 and out == "", out
        one_line(err, "header_only.csv: holds no data rows")
        assert "must not be empty" not in err


def test_a_reader_closing_the_pipe_ends_predict_quietly_with_141(wine, capsys):
    _, data, model = wine
    # Small chunks: many writes, so that one comes after the reader has gone.
    script = ("import sys; import chainrule.cli._stream as s; s.CHUNK_ROWS = 8; "
              "from chainrule.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, "-c", script, "predict", str(model), "--data",
                             str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=120)
    assert first.startswith(b"row,predicted,")
    assert proc.returncode == 141 and err == b"", err.decode()
    _, out, _ = run(capsys, "predict", "--help")
    assert "141" in out


# -- 9. output names ---------------------------------------------------------------------

def test_predict_to_a_tsv_name_writes_tabs(wine, capsys, tmp_path):
    _, data, model = wine
    code, _, err = run(capsys, "predict", model, "--data", data, "-o", tmp_path / "p.csv")
    assert code == 0, err
    code, _, err = run(capsys, "predict", model, "--data", data, "-o", tmp_path / "p.tsv")
    assert code == 0, err
    with open(tmp_path / "p.csv", newline="") as fh:
        comma = list(csv.reader(fh))
    with open(tmp_path / "p.tsv", newline="") as fh:
        tabs = list(csv.reader(fh, delimiter="\t"))
    assert tabs == comma and tabs[0][:2] == ["row", "predicted"]


def test_save_to_an_onnx_name_is_refused_before_training(wine, capsys, tmp_path):
    _, data, _ = wine
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "cultivar",
                         "--save", tmp_path / "m.onnx")
    assert code == 2 and out == ""
    one_line(err, "--save", "m.onnx", "chainrule export")
    assert os.listdir(tmp_path) == []


def test_an_unreachable_openml_is_said_in_words(monkeypatch, capsys):
    from urllib.error import URLError

    import sklearn.datasets

    def offline(name, **kwargs):
        raise URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    code, out, err = run(capsys, "train", "--openml", "wine", "--quiet")
    assert code == 1
    one_line(err, "--openml wine: could not reach OpenML", "name resolution", "--data")
    assert "urlopen error" not in err


def test_class_weight_balanced_weighs_rows_as_scikit_learn(tmp_path, capsys, monkeypatch):
    """--class-weight balanced gives fit scikit-learn's compute_class_weight('balanced')
    for each training row; a regression refuses it."""
    from sklearn.utils.class_weight import compute_class_weight

    import chainrule.train

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] > 1.2, "rare", "common")
    path = tmp_path / "imb.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["a", "b", "c", "label"]]
                                 + [[*x, t] for x, t in zip(X, y, strict=True)])
    seen = {}
    real_fit = chainrule.train.fit

    def spy(model, X, Y, **kwargs):
        seen["labels"], seen["weights"] = np.asarray(Y).argmax(axis=1), kwargs["sample_weight"]
        return real_fit(model, X, Y, **kwargs)

    monkeypatch.setattr(chainrule.train, "fit", spy)
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label",
                       "--class-weight", "balanced", "--epochs", "2", "-q")
    assert code == 0, err
    labels = seen["labels"]
    expected = compute_class_weight("balanced", classes=np.unique(labels), y=labels)[labels]
    np.testing.assert_allclose(seen["weights"], expected, rtol=1e-12)
    assert len(np.unique(seen["weights"])) == 2   # the rare class weighs more
    path_r = tmp_path / "reg.csv"
    with open(path_r, "w", newline="") as fh:
        csv.writer(fh).writerows([["a", "b", "t"]] + [[*x[:2], x[2]] for x in X])
    code, _, err = run(capsys, "train", "--data", path_r, "--label-column", "t",
                       "--class-weight", "balanced", "--epochs", "1", "-q")
    assert code == 2 and "--class-weight applies to classification" in err


def test_predict_writes_an_id_column_in_place_of_the_row_number(tmp_path, capsys):
    """predict --id-column keeps each record's ID beside its prediction (the model was
    trained without it); the probabilities are those of the plain run, row by row."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    ids = [f"r{i:03d}" for i in range(40)]
    path = tmp_path / "ids.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "a", "b", "label"]] + [
            [i, x[0], x[1], "pos" if x[0] > 0 else "neg"]
            for i, x in zip(ids, X, strict=True)])
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label",
                       "--ignore-columns", "id", "--epochs", "2", "-q", "--save",
                       tmp_path / "m.npz")
    assert code == 0, err
    code, plain, err = run(capsys, "predict", tmp_path / "m.npz", "--data", path,
                           "--ignore-extra-columns")
    assert code == 0, err
    code, with_ids, err = run(capsys, "predict", tmp_path / "m.npz", "--data", path,
                              "--id-column", "id")
    assert code == 0, err
    plain_rows = list(csv.reader(plain.splitlines()))
    id_rows = list(csv.reader(with_ids.splitlines()))
    assert id_rows[0] == ["id"] + plain_rows[0][1:]
    assert [r[0] for r in id_rows[1:]] == ids
    assert [r[1:] for r in id_rows[1:]] == [r[1:] for r in plain_rows[1:]]
    code, _, err = run(capsys, "predict", tmp_path / "m.npz", "--data", path,
                       "--id-column", "a")
    assert code == 2 and "one of the model's features" in err


def test_the_model_file_remembers_the_ignored_columns(tmp_path, capsys):
    """predict and evaluate skip the columns train --ignore-columns left out, on the
    very file train read, and still refuse other extra columns (a wrong file)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "note", "a", "b", "label"]] + [
            [f"r{i}", "x", x[0], x[1], "pos" if x[0] > 0 else "neg"]
            for i, x in enumerate(X)])
    code, _, err = run(capsys, "train", "--data", path, "--label-column", "label",
                       "--ignore-columns", "id,note", "--epochs", "2", "-q", "--save",
                       tmp_path / "m.npz")
    assert code == 0, err
    assert io.read_metadata(tmp_path / "m.npz")["ignored_columns"] == ["id", "note"]
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data", path)
    assert code == 0 and len(out.splitlines()) == 41, err
    code, out, err = run(capsys, "evaluate", tmp_path / "m.npz", "--data", path)
    assert code == 0 and "accuracy" in out, err
    other = tmp_path / "other.csv"
    other.write_text("id,a,b,extra,label\nr0,1,2,3,pos\n")
    code, _, err = run(capsys, "predict", tmp_path / "m.npz", "--data", other)
    assert code == 1 and "columns ['extra'] are not among those" in err


@pytest.mark.parametrize("classes", [["a", "b"], ["a", "a", "b"]])
def test_predict_refuses_metadata_classes_that_do_not_name_the_outputs(tmp_path, capsys,
                                                                       classes):
    """A file whose metadata names 2 classes (or one twice) for 3 outputs: predict
    crashed with an IndexError, or wrote a CSV whose header was a column short."""
    io.save(MLP([2, 5, 3], rng=0), tmp_path / "m.npz", metadata={"classes": classes})
    (tmp_path / "in.csv").write_text("x,y\n1,2\n3,4\n")
    code, out, err = run(capsys, "predict", tmp_path / "m.npz", "--data",
                         tmp_path / "in.csv")
    assert code == 1 and out == ""
    assert "classes must be 3 distinct names, one per class of the network" in err
