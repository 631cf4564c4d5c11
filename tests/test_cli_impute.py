"""Missing cells in a user's table: ``load_csv``/``iter_csv(missing="nan")`` read them as
NaN (in a column of text too), and ``chainrule train --impute`` fills a number with its
column's median over the training rows (scikit-learn's ``SimpleImputer(strategy=
'median')`` is the oracle), a cell of text as no category; the model file keeps the
medians, and predict and evaluate fill new rows alike.

Expected values come from pandas and scikit-learn, or from the saved network run on
arrays built here, never from the command's earlier output.
"""

import io as text_io

import numpy as np
import pytest

from chainrule import io
from chainrule.categories import count_unseen, one_hot_columns, training_categories
from chainrule.data import load_csv, load_file
from chainrule.datastream import iter_csv
from conftest import run_cli as run

MISSING = ["", "NA", "nan", "NULL", "None", "N/A", "  NA  "]


def _table(path, n=120, seed=0, holes=0.15):
    """Columns age, fare (numbers), port, sex (text) and survived, with cells of every
    missing kind in each feature column at random."""
    rng = np.random.default_rng(seed)
    lines = ["age,fare,port,sex,survived"]
    for _ in range(n):
        age, fare = rng.normal(35, 12), rng.lognormal(3, 1)
        port, sex = rng.choice(["S", "C", "Q"]), rng.choice(["male", "female"])
        survived = int(sex == "female") if rng.random() < 0.8 else int(rng.integers(2))
        cells = [repr(age), repr(fare), str(port), str(sex)]
        cells = [str(rng.choice(MISSING)) if rng.random() < holes else c for c in cells]
        lines.append(",".join(cells + [str(survived)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _pandas(path):
    import pandas as pd

    # (skipinitialspace leaves "  NA  " as "NA  ": named as missing too)
    return pd.read_csv(path, skipinitialspace=True, na_values=["NA  "])


def test_the_readers_read_every_missing_cell_as_nan(tmp_path):
    path = _table(tmp_path / "t.csv")
    frame = _pandas(path)
    X, y, cats = load_csv(path, "survived", categories="auto", missing="nan")
    assert cats == {"port": ["C", "Q", "S"], "sex": ["female", "male"]}   # none for NaN
    for j, column in enumerate(["age", "fare", "port", "sex"]):
        np.testing.assert_array_equal(np.isnan(X[:, j]), frame[column].isna().to_numpy())
    np.testing.assert_array_equal(X[:, :2], frame[["age", "fare"]].to_numpy())
    codes = frame["port"].map({"C": 0, "Q": 1, "S": 2}).to_numpy(dtype=float)
    np.testing.assert_array_equal(X[:, 2], codes)
    np.testing.assert_array_equal(y, frame["survived"].to_numpy())
    for chunk_rows in (7, 1000):   # pandas' parser hands over to the csv module's
        chunks = list(iter_csv(path, "survived", categories=cats, missing="nan",
                               chunk_rows=chunk_rows))
        np.testing.assert_array_equal(np.vstack([c[0] for c in chunks]), X)
    try:
        import pandas  # noqa: F401
    except ImportError:   # (the csv module's reader alone was run)
        return
    from chainrule import datastream
    module = list(datastream._iter_csv_module(str(path), path, "survived", ",", True, 50,
                                              None, cats, True))
    np.testing.assert_array_equal(np.vstack([c[0] for c in module]), X)


def test_missing_cells_are_still_refused_by_default_and_infinities_always(tmp_path):
    path = _table(tmp_path / "t.csv")
    with pytest.raises(ValueError, match=r"a missing value .*train with --impute"):
        load_csv(path, "survived", categories="auto")
    with pytest.raises(ValueError, match=r"a missing value .*train with --impute"):
        list(iter_csv(path, "survived", categories={"port": ["S"], "sex": ["male"]}))
    # a "nan" in a column of text is a missing cell, not a number among text
    (tmp_path / "text_nan.csv").write_text("c,y\nred,0\nnan,1\nblue,0\n")
    with pytest.raises(ValueError, match=r"line 3, column 'c': a missing value \('nan'\)"):
        load_csv(tmp_path / "text_nan.csv", "y", categories="auto")
    X, _, cats = load_csv(tmp_path / "text_nan.csv", "y", categories="auto", missing="nan")
    assert cats == {"c": ["blue", "red"]} and np.isnan(X[1, 0])
    (tmp_path / "inf.csv").write_text("a,b,y\n1,,0\ninf,2,1\n")
    for read in (lambda p: load_csv(p, "y", missing="nan"),
                 lambda p: list(iter_csv(p, "y", missing="nan"))):
        with pytest.raises(ValueError, match=r"line 3, column 'a': feature values must be "
                                             r"finite, got 'inf'"):
            read(tmp_path / "inf.csv")
    (tmp_path / "label.csv").write_text("a,y\n1,0\n2,NA\n")
    with pytest.raises(ValueError, match=r"line 3: the label cell is missing"):
        load_csv(tmp_path / "label.csv", "y", missing="nan")
    with pytest.raises(ValueError, match=r"missing must be one of \['nan', 'raise'\], got 'x'"):
        load_csv(path, "survived", missing="x")
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.arange(3))
    with pytest.raises(ValueError, match=r"missing='nan' applies to CSV files only"):
        load_file(tmp_path / "d.npz", missing="nan")


def test_an_extra_trailing_cell_is_refused_by_every_reader_whatever_it_holds(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,0,\n3,NA,1,NA\n5,6,0,\n")   # line 3: a 4th cell, "NA"
    from chainrule import datastream
    for read in (lambda: load_csv(path, "y", missing="nan"),
                 lambda: list(iter_csv(path, "y", missing="nan")),
                 lambda: list(datastream._iter_csv_module(str(path), path, "y", ",", True, 10,
                                                          None, None, True))):
        with pytest.raises(ValueError, match=r"line 3: expected 3 cells"):
            read()


def test_a_missing_category_is_no_category_and_not_an_unseen_one():
    names, cats = ["a", "c"], {"c": ["p", "q", "r"]}
    X_train = np.array([[1.0, 0.0], [2.0, np.nan], [3.0, 2.0]])
    X_test = np.array([[4.0, 1.0], [5.0, np.nan], [6.0, 2.0]])
    X_train, X_test, kept = training_categories(X_train, X_test, names, cats)
    assert kept == {"c": ["p", "r"]}   # q only in the test rows
    np.testing.assert_array_equal(X_test[:, 1], [-1.0, np.nan, 1.0])
    assert count_unseen(X_test, names, kept) == {"c": 1}   # the missing cell is not counted
    np.testing.assert_array_equal(one_hot_columns(X_test, names, kept),
                                  [[4, 0, 0], [5, 0, 0], [6, 0, 1]])


def _medians_from_sklearn(path):
    from sklearn.impute import SimpleImputer

    frame = _pandas(path)
    return dict(zip(["age", "fare"], SimpleImputer(strategy="median").fit(
        frame[["age", "fare"]].to_numpy()).statistics_.tolist(), strict=True))


def _inputs(path, medians, cats, columns=("age", "fare", "port", "sex")):
    """The network's inputs for the rows of ``path``, built with pandas: numbers filled
    with ``medians``, each category one-hot in ``cats``'s order (a missing one all 0)."""
    frame = _pandas(path)
    parts = []
    for column in columns:
        if column in cats:
            parts += [(frame[column] == c).to_numpy(float)[:, None] for c in cats[column]]
        else:
            parts.append(frame[column].fillna(medians[column]).to_numpy()[:, None])
    return np.hstack(parts)


@pytest.fixture
def trained(tmp_path, capsys):
    data, test = _table(tmp_path / "train.csv"), _table(tmp_path / "test.csv", n=60, seed=1)
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--data", data, "--test-data", test,
                         "--label-column", "survived", "--impute", "--epochs", "20",
                         "--save", model)
    assert code == 0, err
    return data, test, model, out


def test_train_fills_with_the_training_medians_and_the_file_keeps_them(trained):
    data, test, model, out = trained
    frame, held = _pandas(data), _pandas(test)
    assert (f"missing cells: {int(frame.drop(columns='survived').isna().sum().sum())} in "
            f"the training rows, {int(held.drop(columns='survived').isna().sum().sum())} in "
            f"the test rows") in out
    meta = io.read_metadata(model)
    expected = _medians_from_sklearn(data)
    assert meta["impute"]["median"] == pytest.approx(expected, rel=1e-15)
    assert _medians_from_sklearn(test) != pytest.approx(expected)   # none of the test rows'
    network = io.load(model)
    inputs = _inputs(test, expected, meta["categories"])
    correct = np.sum(network.predict_classes(inputs) == held["survived"].to_numpy())
    assert f"test accuracy = {correct / len(held):.4f} ({correct}/{len(held)})" in out


def test_predict_and_evaluate_fill_new_rows_as_train_did(trained, tmp_path, capsys):
    import pandas as pd

    _, test, model, _ = trained
    meta, network = io.read_metadata(model), io.load(model)
    new = _table(tmp_path / "new.csv", n=40, seed=2, holes=0.3)
    code, out, err = run(capsys, "predict", model, "--data", new)
    assert code == 0, err
    got = pd.read_csv(text_io.StringIO(out))
    expected = network.predict_proba(_inputs(new, meta["impute"]["median"], meta["categories"]))
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), expected, rtol=1e-12)
    code, out, err = run(capsys, "evaluate", model, "--data", test)
    assert code == 0, err
    held = _pandas(test)
    inputs = _inputs(test, meta["impute"]["median"], meta["categories"])
    accuracy = np.mean(network.predict_classes(inputs) == held["survived"].to_numpy())
    assert f"accuracy = {accuracy:.4f}" in out


def test_save_test_writes_missing_cells_back_as_missing(tmp_path, capsys):
    data = _table(tmp_path / "t.csv", n=160)
    model, held = tmp_path / "m.npz", tmp_path / "held.csv"
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "survived",
                         "--impute", "--epochs", "5", "-q", "--save", model, "--save-test",
                         held)
    assert code == 0, err
    written = _pandas(held)
    assert written.drop(columns="survived").isna().to_numpy().any()
    code, again, err = run(capsys, "evaluate", model, "--data", held)
    assert code == 0, err
    meta = io.read_metadata(model)
    inputs = _inputs(held, meta["impute"]["median"], meta["categories"])
    correct = np.sum(io.load(model).predict_classes(inputs) == written["survived"].to_numpy())
    assert f"test accuracy = {correct / len(written):.4f}" in out   # train's own line
    assert f"accuracy = {correct / len(written):.4f}" in again


def test_the_refusals_name_the_way_out(tmp_path, capsys):
    data = _table(tmp_path / "t.csv")
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "survived", "-q")
    assert code == 1 and "a missing value" in err and "train with --impute" in err
    code, _, err = run(capsys, "train", "--impute", "-q", "--epochs", "1")
    assert code == 2 and "--impute applies to a CSV --data file" in err
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "survived",
                       "--impute", "-q", "--save-test", tmp_path / "held.npz")
    assert code == 2 and "keep their missing cells, which only a table reads back" in err
    assert not (tmp_path / "held.npz").exists()
    np.save(tmp_path / "x.npy", np.ones((10, 2)))
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    code, _, err = run(capsys, "train", "--data", tmp_path / "x.npy", "--labels",
                       tmp_path / "y.npy", "--impute", "-q")
    assert code == 2 and "--impute fills missing cells of a CSV --data file" in err
    (tmp_path / "empty.csv").write_text("a,b,y\n" + "".join(f"{i},NA,{i % 2}\n"
                                                            for i in range(20)))
    code, _, err = run(capsys, "train", "--data", tmp_path / "empty.csv", "--label-column", "y",
                       "--impute", "-q")
    assert code == 1 and "column 'b' has no value in the 15 training rows" in err
    # a column of text whose training cells are all missing: no category to learn
    rows = "".join(f"{i},{'red' if i == 3 else ''},{i % 2}\n" for i in range(20))
    (tmp_path / "train.csv").write_text("a,c,y\n" + rows.replace("3,red", "3,"))
    (tmp_path / "test.csv").write_text("a,c,y\n" + rows)
    code, _, err = run(capsys, "train", "--data", tmp_path / "train.csv", "--test-data",
                       tmp_path / "test.csv", "--label-column", "y", "--categorical", "c",
                       "--impute", "-q")
    assert code == 1 and "column 'c': holds missing cells only, no category" in err
    (tmp_path / "train.csv").write_text("a,c,y\n" + rows.replace("3,red", "3,") +
                                        "20,blue,0\n")
    code, _, err = run(capsys, "train", "--data", tmp_path / "train.csv", "--test-data",
                       tmp_path / "test.csv", "--label-column", "y", "--categorical", "c",
                       "--impute", "-q")
    assert code == 0, err   # blue in a training row: a category
    # the column's one value in a row the hold-out takes (train's split: seed 0)
    from chainrule.data import holdout_split
    index = np.arange(20.0)
    held = int(holdout_split(index[:, None], index, 0.5, rng=0)[1][0, 0])
    (tmp_path / "one.csv").write_text("a,c,y\n" + "".join(
        f"{i},{'red' if i == held else ''},{i % 2}\n" for i in range(20)))
    code, _, err = run(capsys, "train", "--data", tmp_path / "one.csv", "--label-column", "y",
                       "--categorical", "c", "--impute", "-q", "--test-fraction", "0.5")
    assert code == 1 and "column 'c' has no value in the 10 training rows" in err, err


def test_a_model_without_imputation_refuses_missing_cells_in_predict(tmp_path, capsys):
    full = tmp_path / "full.csv"
    full.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    model = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", "--data", full, "--label-column", "y", "--epochs", "1",
                       "-q", "--save", model)
    assert code == 0, err
    (tmp_path / "new.csv").write_text("a,b\n1,\n")
    code, _, err = run(capsys, "predict", model, "--data", tmp_path / "new.csv")
    assert code == 1 and "line 2, column 'b': a missing value" in err
    assert "train with --impute" in err


def test_the_exported_graph_fills_missing_cells_as_predict_does(trained, tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import pandas as pd

    _, _, model, _ = trained
    code, out, err = run(capsys, "export", model, tmp_path / "m.onnx")
    assert code == 0, err
    assert "a NaN in X is filled in the graph as predict fills a missing cell" in out
    new = _table(tmp_path / "new.csv", n=40, seed=3, holes=0.3)
    code, out, err = run(capsys, "predict", model, "--data", new)
    assert code == 0, err
    expected = pd.read_csv(text_io.StringIO(out))[["p_0", "p_1"]].to_numpy()
    # the rows as ONNX takes them: one-hot in the model's categories, missing cells NaN,
    # in a one-hot column too
    meta = io.read_metadata(model)
    frame, parts = _pandas(new), []
    for column in ("age", "fare", "port", "sex"):
        if column in meta["categories"]:
            missing = frame[column].isna().to_numpy()
            for c in meta["categories"][column]:
                parts.append(np.where(missing, np.nan, (frame[column] == c).to_numpy(float)))
        else:
            parts.append(frame[column].to_numpy(float))
    X = np.column_stack(parts)
    assert np.isnan(X).any()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"X": X.astype(np.float64)})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_export_onnx_checks_missing_values(tmp_path):
    pytest.importorskip("onnx")
    import chainrule as cr

    model = cr.MLP([3, 4, 2], rng=0)
    for bad, match in (([1.0, 2.0], r"one finite value per input column \(3\), got shape "
                                     r"\(2,\)"),
                       ([1.0, np.nan, 0.0], r"\(3\), got shape \(3,\) with NaN or inf")):
        with pytest.raises(ValueError, match=match):
            io.export_onnx(model, tmp_path / "m.onnx", missing_values=bad)
    with pytest.raises(TypeError, match=r"missing_values must be numbers"):
        io.export_onnx(model, tmp_path / "m.onnx", missing_values=["a", "b", "c"])
    assert not (tmp_path / "m.onnx").exists()


def test_bad_impute_metadata_is_refused(trained, tmp_path, capsys):
    from chainrule.io import load, save

    _, test, model, _ = trained
    meta = io.read_metadata(model)
    for bad in ({"median": {"age": 1.0}}, {"median": {"age": "1", "fare": 1.0}},
                {"median": {"age": True, "fare": 1.0}}, {"mean": {}}, [1.0]):
        path = tmp_path / "bad.npz"
        save(load(model), path, metadata={**meta, "impute": bad})
        code, _, err = run(capsys, "evaluate", path, "--data", test)
        assert code == 1 and "its metadata: impute must be" in err, bad
