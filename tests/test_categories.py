"""Columns of text as one-hot features: the readers (``load_csv``, ``iter_csv`` with both
parsers) and the command line (``train`` learns the categories of its training rows,
``predict``/``evaluate``/``export`` encode alike).

Expected encodings are written out by hand or built with pandas' ``get_dummies``; expected
predictions come from the saved network on those hand-built inputs, never from the
command's own earlier output.
"""

from __future__ import annotations

import io as text_io

import numpy as np
import pytest

from chainrule import io
from chainrule.categories import MAX_CATEGORIES, one_hot_columns, one_hot_names
from chainrule.cli import main
from chainrule.data import load_csv
from chainrule.datastream import iter_csv

COLORS, SIZES = ["blue", "green", "red"], ["L", "M", "S", "XL"]


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _table(path, n=400, seed=0, colors=COLORS, rows=None):
    """age (numbers), color and size (text), label: yes when red or XL and old."""
    rng = np.random.default_rng(seed)
    lines = ["age,color,size,label"]
    for _ in range(n):
        age, color, size = int(rng.integers(18, 70)), rng.choice(colors), rng.choice(SIZES)
        score = 2.0 * (color == "red") + 1.5 * (size == "XL") + age / 30
        lines.append(f"{age},{color},{size},{'yes' if score > 2.5 else 'no'}")
    path.write_text("\n".join(lines + (rows or [])) + "\n")
    return path


def _encoded(path, categories):
    """The table's features one-hot by pandas, columns in the model's order."""
    import pandas as pd

    frame = pd.read_csv(path)
    parts = [frame[["age"]].astype(float)]
    for column in ("color", "size"):
        cats = pd.Categorical(frame[column].str.strip(), categories=categories[column])
        parts.append(pd.get_dummies(cats, dtype=float))
    return pd.concat(parts, axis=1).to_numpy()


# -- the readers -----------------------------------------------------------------------------
def test_load_csv_reads_text_columns_as_category_indices(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,color,size,label\n1,red,S,x\n2,blue,M,y\n3, red , L ,x\n4.5,green,S,y\n")
    X, y, found = load_csv(path, "label", categories="auto")
    assert found == {"color": ["blue", "green", "red"], "size": ["L", "M", "S"]}
    np.testing.assert_array_equal(X, [[1, 2, 2], [2, 0, 1], [3, 2, 0], [4.5, 1, 2]])
    assert y.tolist() == ["x", "y", "x", "y"]
    X2, _, given = load_csv(path, "label", categories={"color": ["red", "blue"],
                                                       "size": ["S"]})
    np.testing.assert_array_equal(X2[:, 1:], [[0, 0], [1, -1], [0, -1], [-1, 0]])
    assert given == {"color": ["red", "blue"], "size": ["S"]}
    names = ["a", "color", "size"]
    np.testing.assert_array_equal(one_hot_columns(X, names, found), [
        [1, 0, 0, 1, 0, 0, 1], [2, 1, 0, 0, 0, 1, 0], [3, 0, 0, 1, 1, 0, 0],
        [4.5, 0, 1, 0, 0, 0, 1]])
    np.testing.assert_array_equal(one_hot_columns(X2, names, given),
                                  [[1, 1, 0, 1], [2, 0, 1, 0], [3, 1, 0, 0], [4.5, 0, 0, 1]])
    assert one_hot_names(names, found) == ["a", "color=blue", "color=green", "color=red",
                                           "size=L", "size=M", "size=S"]
    # without categories text is refused, as before
    with pytest.raises(ValueError, match="column 'color': expected a number, got 'red'"):
        load_csv(path, "label")
    with pytest.raises(ValueError, match=r"names columns \['colour'\]"):
        load_csv(path, "label", categories={"colour": ["red"]})


def test_stray_text_missing_cells_and_identifiers_are_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n2,oops,y\n3,4,x\n")   # numbers with one stray cell
    with pytest.raises(ValueError, match=r"column 'b': mixes numbers \(2 cells, such as '2' "
                                         r"on line 2\) and text \(1 cell, such as 'oops' on "
                                         r"line 3\)"):
        load_csv(path, "label", categories="auto")
    path.write_text("a,b,label\n1,S,x\n2,M,y\n3,3,x\n")   # categories with one number
    with pytest.raises(ValueError, match=r"mixes numbers \(1 cell, such as '3' on line 4\)"):
        load_csv(path, "label", categories="auto")
    path.write_text("a,b,label\n1,red,x\n2,NA,y\n3,blue,x\n")
    with pytest.raises(ValueError, match=r"line 3, column 'b': a missing value \('NA'\)"):
        load_csv(path, "label", categories="auto")
    ids = "\n".join(f"{i},id{i},x" for i in range(MAX_CATEGORIES + 1))
    path.write_text("a,name,label\n" + ids + "\n")
    with pytest.raises(ValueError, match=rf"column 'name': holds {MAX_CATEGORIES + 1} "
                                         r"distinct values.*--ignore-columns.*--categorical"):
        load_csv(path, "label", categories="auto")
    # dates: said as dates, with what to do
    dates = "\n".join(f"{i},2024-{1 + i // 28:02d}-{1 + i % 28:02d},x" for i in range(150))
    path.write_text("a,day,label\n" + dates + "\n")
    with pytest.raises(ValueError, match=r"column 'day': holds 150 distinct values .*: dates, "
                                         r"which a network reads as numbers: write the column "
                                         r"as a number first .*, or leave it out"):
        load_csv(path, "label", categories="auto")
    path.write_text("a,name,label\n" + ids + "\n")
    # named categorical, it may have up to MAX_NAMED_CATEGORIES
    X, _, categories = load_csv(path, "label", categories="auto", categorical=["name"])
    assert len(categories["name"]) == MAX_CATEGORIES + 1 and X.shape[1] == 2


@pytest.mark.parametrize("cells", [['"60,000"', '"125,500"', '"7,250"'],   # thousands
                                   ['"54,5"', '"61,0"', '"33,25"'],        # decimal commas
                                   ["$54", "$12.50", '"$1,200"'],          # currency
                                   ["12%", "7.5%", "100%"]])
def test_numbers_written_for_people_are_refused_not_read_as_categories(tmp_path, cells):
    """An Excel or pandas export's formatted numbers are text to a CSV reader: read as
    categories they would silently lose their values. Refused, naming a cell and both
    ways out; --categorical reads them as categories on purpose."""
    path = tmp_path / "t.csv"
    path.write_text("a,income,label\n" + "".join(f"{i},{c},x\n" for i, c in enumerate(cells)))
    with pytest.raises(ValueError, match=r"column 'income': holds numbers written for "
                                         r"people, such as .* on line 2 .*plain numbers.*"
                                         r"--categorical income"):
        load_csv(path, "label", categories="auto")
    _, _, categories = load_csv(path, "label", categories="auto", categorical=["income"])
    assert len(categories["income"]) == 3


def test_codes_are_categories_by_value(tmp_path, parser):
    """A column of codes named categorical: 1, 1.0 and 1e0 are one category (pandas
    writes a column of ints as floats once it held a NaN); a file's categories as
    written still match (files of earlier versions)."""
    path = tmp_path / "t.csv"
    path.write_text("tier,label\n1,x\n2.0,y\n1e0,x\n3,y\n")
    X, _, categories = load_csv(path, "label", categories="auto", categorical=["tier"])
    assert categories == {"tier": ["1", "2", "3"]}
    np.testing.assert_array_equal(X[:, 0], [0, 1, 0, 2])
    # integers exactly, however long: IDs past 2**53 stay apart
    ids = tmp_path / "ids.csv"
    ids.write_text("code,label\n12345678901234567890,x\n12345678901234567891,y\n")
    _, _, long_ids = load_csv(ids, "label", categories="auto", categorical=["code"])
    assert long_ids == {"code": ["12345678901234567890", "12345678901234567891"]}
    floats = tmp_path / "f.csv"
    floats.write_text("tier,label\n1.0,x\n3.00,y\n2,x\n")
    for known in ({"tier": ["1", "2", "3"]}, {"tier": ["1.0", "2.0", "3.0"]}):
        got = load_csv(floats, "label", categories=known)[0][:, 0]
        streamed = np.vstack([c[0] for c in iter_csv(floats, "label", categories=known)])
        np.testing.assert_array_equal(got, [0, 2, 1])
        np.testing.assert_array_equal(streamed[:, 0], [0, 2, 1])


def test_both_readers_name_the_same_cell_and_refuse_the_same_arguments(tmp_path, parser):
    path = tmp_path / "t.csv"
    path.write_text("c,a,y\nred,1,x\n,abc,x\n")   # a missing category, then a bad number
    for read in (lambda **kw: load_csv(path, "y", **kw),
                 lambda **kw: list(iter_csv(path, "y", **kw))):
        with pytest.raises(ValueError, match="line 3, column 'c': a missing value"):
            read(categories={"c": ["red"]})
        with pytest.raises(TypeError, match="categories must be 'auto' or map column names"):
            read(categories=["c"])
    with pytest.raises(TypeError, match="categories must be 'auto'"):
        load_csv(path, "y", categories="Auto")
    with pytest.raises(ValueError, match="categories needs a header"):
        load_csv(path, 2, header=False, categories={"0": ["red"]})
    with pytest.raises(ValueError, match="categories needs a header"):
        list(iter_csv(path, 2, header=False, categories={"0": ["red"]}))
    path.write_text("c,a,y\nred,abc,x\n,1,x\n")   # a bad number, then a missing category
    for read in (lambda: load_csv(path, "y", categories={"c": ["red"]}),
                 lambda: list(iter_csv(path, "y", categories={"c": ["red"]}))):
        with pytest.raises(ValueError, match="line 2, column 'a': expected a number"):
            read()
    path.write_text("c,a,y\n1,2,x\n")
    assert load_csv(path, "y", categories={})[2] == {}   # none: as without


def test_both_stream_parsers_read_category_indices_as_load_csv(tmp_path, parser):
    path = _table(tmp_path / "t.csv", n=50)
    X, y, found = load_csv(path, "label", categories="auto")
    found = {**found, "color": ["red", "green"]}     # blue is a category unseen here
    expected = load_csv(path, "label", categories=found)[0]
    chunks = list(iter_csv(path, "label", chunk_rows=16, categories=found))
    np.testing.assert_array_equal(np.vstack([c for c, _ in chunks]), expected)
    assert (expected[:, 1] == -1).any()
    path.write_text(path.read_text().replace(",red,", ",,", 1))
    with pytest.raises(ValueError, match="column 'color': a missing value"):
        list(iter_csv(path, "label", categories=found))


# -- the command line ------------------------------------------------------------------------
def test_train_one_hots_text_columns_and_predict_evaluate_export_encode_alike(tmp_path,
                                                                               capsys):
    data = _table(tmp_path / "t.csv")
    model_path, held_out = tmp_path / "m.npz", tmp_path / "test.csv"
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "label",
                         "--epochs", "40", "--save", model_path, "--save-test", held_out)
    assert code == 0, err
    assert "8 features (categorical columns one-hot: color 3, size 4)" in out
    meta = io.read_metadata(model_path)
    assert meta["categories"] == {"color": COLORS, "size": SIZES}
    assert meta["feature_names"] == ["age", "color", "size"]
    # the held-out rows come back as text, and evaluate scores them as train did
    assert held_out.read_text().splitlines()[0] == "age,color,size,label"
    assert set(held_out.read_text().split(",")) & {"red", "XL"}
    trained = float(out.split("test accuracy = ")[1].split()[0])
    code, out, err = run(capsys, "evaluate", model_path, "--data", held_out)
    assert code == 0 and f"accuracy = {trained:.4f}" in out, err
    # predict: the saved network on pandas' one-hot of the same rows
    network = io.load(model_path)
    expected = network.predict_proba(_encoded(held_out, meta["categories"]))
    code, out, err = run(capsys, "predict", model_path, "--data", held_out)
    assert code == 0, err
    got = np.loadtxt(text_io.StringIO(out), delimiter=",", skiprows=1, usecols=(2, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # export: the graph takes the one-hot inputs, named column=category
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    code, out, err = run(capsys, "export", model_path, tmp_path / "m.onnx")
    assert code == 0, err
    assert "categorical columns ['color', 'size'] one-hot" in out and "'color=blue'" in out
    import onnx

    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert '"color=red"' in props["feature_names"] and '"size=XL"' in props["feature_names"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    probabilities = session.run(["probabilities"], {"X": _encoded(held_out, meta["categories"])})
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-9, atol=1e-12)


def test_unseen_categories_are_all_zeros_in_predict_and_in_held_out_rows(tmp_path, capsys):
    from chainrule.data import split_rows

    # purple in one row only, one the fixed hold-out (seed 0) keeps for testing:
    # training never sees it, so it is no category of the model, and is said
    data = _table(tmp_path / "t.csv", n=200)
    lines = data.read_text().splitlines()
    row = int(split_rows(200, 100, 0)[1][0])
    cells = lines[1 + row].split(",")
    lines[1 + row] = ",".join([cells[0], "purple", *cells[2:]])
    data.write_text("\n".join(lines) + "\n")
    model_path = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "label", "-q",
                       "--epochs", "5", "--save", model_path, "--test-fraction", "0.5")
    assert code == 0, err
    categories = io.read_metadata(model_path)["categories"]
    assert categories["color"] == COLORS
    assert "the held-out test rows: column 'color': 1 of 100 rows hold a category the " \
           "model was not trained on" in err
    new = tmp_path / "new.csv"
    new.write_text("age,color,size\n30,violet,S\n50,red,XL\n")
    code, out, err = run(capsys, "predict", model_path, "--data", new)
    assert code == 0, err
    network = io.load(model_path)
    width = 1 + len(categories["color"]) + len(SIZES)
    rows = np.zeros((2, width))
    rows[:, 0] = [30, 50]
    rows[1, 1 + categories["color"].index("red")] = 1        # violet: no color column set
    rows[0, 1 + len(categories["color"]) + SIZES.index("S")] = 1
    rows[1, 1 + len(categories["color"]) + SIZES.index("XL")] = 1
    got = np.loadtxt(text_io.StringIO(out), delimiter=",", skiprows=1, usecols=(2, 3))
    np.testing.assert_allclose(got, network.predict_proba(rows), rtol=1e-12)
    # with an id column the same encoding (the ids read as text beside it)
    new.write_text("id,age,color,size\nA7,30,violet,S\nB2,50,red,XL\n")
    code, out, err = run(capsys, "predict", model_path, "--data", new, "--id-column", "id")
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()] == ["id", "A7", "B2"]
    got = np.loadtxt(text_io.StringIO(out), delimiter=",", skiprows=1, usecols=(2, 3))
    np.testing.assert_allclose(got, network.predict_proba(rows), rtol=1e-12)


def test_test_data_is_encoded_with_the_training_categories(tmp_path, capsys):
    train, test = _table(tmp_path / "train.csv"), _table(tmp_path / "test.csv", n=60, seed=1,
                                                         colors=["red", "blue", "violet"])
    code, out, err = run(capsys, "train", "--data", train, "--test-data", test,
                         "--label-column", "label", "--epochs", "30", "--save",
                         tmp_path / "m.npz")
    assert code == 0, err
    network = io.load(tmp_path / "m.npz")
    meta = io.read_metadata(tmp_path / "m.npz")
    X = _encoded(test, meta["categories"])   # violet: all zeros, and said
    violets = sum(line.split(",")[1] == "violet" for line in test.read_text().splitlines())
    assert f"test.csv: column 'color': {violets} of 60 rows hold a category the model was " \
           f"not trained on" in err and violets > 0
    labels = np.loadtxt(test, delimiter=",", skiprows=1, usecols=3, dtype=str)
    correct = int(np.sum(np.array(meta["classes"])[network.predict_classes(X)] == labels))
    assert f"test accuracy = {correct / 60:.4f} ({correct}/60)" in out


def test_save_test_refuses_what_cannot_hold_the_text_before_training(tmp_path, capsys):
    data = _table(tmp_path / "t.csv", n=100)
    code, out, err = run(capsys, "train", "--data", data, "--label-column", "label",
                         "--save-test", tmp_path / "rows.npz")
    assert code == 2 and "columns ['color', 'size'] hold text" in err and "epoch" not in out
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "label",
                       "--test-data", data, "--save-test", tmp_path / "rows.csv")
    assert code == 2 and "are not copied" in err


def test_unseen_categories_are_said_and_clashing_names_and_bad_metadata_refused(tmp_path,
                                                                                capsys):
    data = _table(tmp_path / "t.csv", n=150)
    model_path = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", "--data", data, "--label-column", "label", "-q",
                       "--epochs", "3", "--save", model_path)
    assert code == 0, err
    # a new file coding the colors otherwise: every row all zeros there, said once
    new = tmp_path / "new.csv"
    new.write_text("age,color,size\n30,1,S\n50,RED,XL\n40,Blue,M\n")
    code, out, err = run(capsys, "predict", model_path, "--data", new)
    assert code == 0 and len(out.splitlines()) == 4
    assert err.count("column 'color': 3 of 3 rows hold a category the model was not "
                     "trained on (its categories are ['blue', 'green', 'red'])") == 1
    assert "size" not in err
    # a column named like another's one-hot column
    clash = tmp_path / "clash.csv"
    clash.write_text("a=b,a,label\n" + "".join(f"{i},{'bc'[i % 2]},{'xy'[i % 3 > 0]}\n"
                                                for i in range(30)))
    code, _, err = run(capsys, "train", "--data", clash, "--label-column", "label", "-q")
    assert code == 1 and "the names ['a=b'] twice" in err
    # model metadata whose categories do not fit the network
    network, meta = io.load(model_path), io.read_metadata(model_path)
    meta["categories"]["color"] = ["blue", "red"]
    io.save(network, tmp_path / "bad.npz", metadata=meta)
    code, _, err = run(capsys, "predict", tmp_path / "bad.npz", "--data", new)
    assert code == 1 and "categories make 7 inputs of the 3 columns, but the network " \
                         "takes 8" in err


def test_a_file_without_header_is_suspected_when_a_column_is_named_by_its_values(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("30,red,yes\n40,blue,no\n50,red,yes\n")   # no header
    with pytest.warns(UserWarning, match=r"columns \['red'\] have their names among their "
                                         r"own values; if the file has no header row"):
        load_csv(path, "yes", categories="auto")


def test_categorical_one_hots_a_column_of_numeric_codes(tmp_path, capsys):
    rng = np.random.default_rng(3)
    path = tmp_path / "titanic.csv"
    rows = ["pclass,age,survived"]
    for _ in range(300):
        pclass, age = int(rng.integers(1, 4)), int(rng.integers(1, 80))
        rows.append(f"{pclass},{age},{int((pclass == 1) + (age < 20) > 0)}")
    path.write_text("\n".join(rows) + "\n")
    model_path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--data", path, "--label-column", "survived",
                         "--categorical", "pclass", "--epochs", "5", "--save", model_path)
    assert code == 0, err
    assert "4 features (categorical columns one-hot: pclass 3)" in out
    assert io.read_metadata(model_path)["categories"] == {"pclass": ["1", "2", "3"]}
    new = tmp_path / "new.csv"
    new.write_text("pclass,age\n2,30\n1,10\n")
    code, out, err = run(capsys, "predict", model_path, "--data", new)
    assert code == 0, err
    X = np.array([[0, 1, 0, 30], [1, 0, 0, 10]], dtype=float)   # pclass=1,2,3, then age
    got = np.loadtxt(text_io.StringIO(out), delimiter=",", skiprows=1, usecols=(2, 3))
    np.testing.assert_allclose(got, io.load(model_path).predict_proba(X), rtol=1e-12)
    for flags, message in [(["--categorical", "class"], "has no columns ['class']"),
                           (["--categorical", "survived"], "is the --label-column"),
                           (["--categorical", "age", "--ignore-columns", "age"],
                            "--categorical and --ignore-columns both name ['age']")]:
        code, _, err = run(capsys, "train", "--data", path, "--label-column", "survived",
                           *flags)
        assert code == 2 and message in err
    with pytest.raises(ValueError, match="needs categories='auto'"):
        load_csv(path, "survived", categorical=["pclass"])


def test_ignoring_every_feature_column_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n")
    code = main(["train", "--data", str(path), "--label-column", "label",
                 "--ignore-columns", "a,b", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--ignore-columns leaves no feature column of" in err and "Traceback" not in err


@pytest.mark.parametrize("header, row, hint", [
    (",a,label", "0,1,x", "DataFrame's index"),
    ("a,label,,", "1,x,,", "a spreadsheet's empty ones: delete them"),
])
def test_an_unnamed_column_is_refused_with_the_hint_that_fits(tmp_path, header, row, hint):
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\n{row}\n{row}\n")
    with pytest.raises(ValueError, match=f"of the header has no name; .*{hint}"):
        load_csv(path, "label")


def test_a_file_that_is_not_utf8_says_how_to_save_it(tmp_path, parser):
    """Excel's plain CSV is cp1252: both readers name the byte and the way out."""
    path = tmp_path / "t.csv"
    path.write_bytes("city,x,label\nMünchen,1,a\nKöln,2,b\n".encode("cp1252"))
    for read in (lambda: load_csv(path, "label", categories="auto"),
                 lambda: list(iter_csv(path, "label"))):
        with pytest.raises(ValueError, match=r"not a UTF-8 text file \(invalid start byte at "
                                             r"byte \d+\): save it as UTF-8 \(in Excel, 'CSV "
                                             r"UTF-8"):
            read()


def test_did_you_mean_only_for_a_close_name(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("income,label\n1,x\n2,y\n3,x\n4,y\n")
    for wrong, meant in (("lable", "did you mean 'label'?"), ("nope", None)):
        code = main(["train", "--data", str(path), "--label-column", wrong, "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "has no such column" in err
        assert (meant in err) if meant else ("did you mean" not in err)


def test_a_missing_category_cell_is_named_whatever_memory_held(tmp_path):
    # The refused column was left as np.empty memory: NaN there sent the reader on a
    # search for a bad number it could not find (an AssertionError, one run in ~600).
    path = tmp_path / "t.csv"
    path.write_text("c,y\nx,0\nNA,1\n")
    for _ in range(20):
        leftover = np.full(2, np.nan)
        del leftover
        with pytest.raises(ValueError, match=r"line 3, column 'c': a missing value \('NA'\)"):
            load_csv(path, "y", categories={"c": ["x"]})


def test_the_header_warnings_point_at_the_callers_line(tmp_path):
    import warnings

    numbers, named = tmp_path / "n.csv", tmp_path / "c.csv"
    numbers.write_text("1,2,label\n3,4,0\n5,6,1\n")
    named.write_text("a,red,label\n1,red,x\n2,blue,y\n")
    for path, kwargs in ((numbers, {}), (named, {"categories": "auto"})):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_csv(path, "label", **kwargs)
        assert [w.filename for w in caught] == [__file__]
