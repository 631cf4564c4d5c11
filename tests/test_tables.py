"""TableEncoder (chainrule.io.table_encoder): a DataFrame's rows encoded for a network
``chainrule train`` fitted on a CSV table give what ``chainrule predict`` gives for the
same rows in a file (the command's reader is the independent path), with categories
one-hot, unseen ones all zeros and missing cells filled after ``--impute``."""

import io as text_io

import numpy as np
import pytest

from chainrule import io
from chainrule.tables import TableEncoder
from conftest import run_cli

pd = pytest.importorskip("pandas")


def _write(path, rows, header="age,fare,port,pclass,survived"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _rows(n, seed, holes=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        sex_like = rng.integers(2)
        row = [round(float(rng.normal(35, 12)), 1), round(float(rng.lognormal(3, 1)), 2),
               str(rng.choice(["S", "C", "Q"])), int(rng.integers(1, 4)),
               int(sex_like if rng.random() < 0.8 else rng.integers(2))]
        rows.append(["" if j < 4 and rng.random() < holes else v for j, v in enumerate(row)])
    return rows


@pytest.fixture(params=[False, True], ids=["plain", "impute"])
def model(request, tmp_path, capsys):
    impute = request.param
    data = _write(tmp_path / "train.csv", _rows(150, 0, holes=0.1 if impute else 0.0))
    path = tmp_path / "m.npz"
    code, _, err = run_cli(capsys, "train", "--data", data, "--label-column", "survived",
                           "--categorical", "pclass", "--epochs", "5", "-q", "--save", path,
                           *(["--impute"] if impute else []))
    assert code == 0, err
    return path, impute


def test_a_frame_encodes_as_predict_reads_the_same_rows_from_a_file(model, tmp_path, capsys):
    path, impute = model
    rows = _rows(30, 1, holes=0.2 if impute else 0.0)
    rows[0][2], rows[1][3] = "X", 7   # a port and a class the model never saw
    new = _write(tmp_path / "new.csv", [r[:4] for r in rows], header="age,fare,port,pclass")
    code, out, err = run_cli(capsys, "predict", path, "--data", new)
    assert code == 0, err
    expected = pd.read_csv(text_io.StringIO(out))[["p_0", "p_1"]].to_numpy()
    encoder = io.table_encoder(path)
    frame = pd.read_csv(new).assign(survived=0)   # an extra column is left out
    with pytest.warns(UserWarning, match=r"column 'port': 1 of 30 rows hold a category"):
        inputs = encoder.transform(frame)
    assert inputs.shape == (30, len(encoder.input_names))
    network = io.load(path)
    np.testing.assert_allclose(network.predict_proba(inputs), expected, rtol=1e-12)
    as_dict = {k: frame[k].tolist()[::-1] for k in frame}   # a mapping of lists, reordered
    with pytest.warns(UserWarning) as caught:
        np.testing.assert_array_equal(encoder.transform(as_dict), inputs[::-1])
    assert caught[0].filename == __file__   # the warning points at the caller
    # pandas' nullable dtypes: pd.NA where the plain frame holds NaN
    nullable = pd.read_csv(new).convert_dtypes()
    assert nullable.isna().to_numpy().any() == impute
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(encoder.transform(nullable), inputs)


def test_the_encoding_by_hand(tmp_path):
    encoder = TableEncoder(["a", "c"], {"c": ["1", "red"]}, {"a": 2.5})
    assert encoder.input_names == ["a", "c=1", "c=red"]
    got = encoder.transform({"a": [1, None, "3.5", float("nan")],
                             "c": [1.0, "red", "NA", " red "]})
    np.testing.assert_array_equal(got, [[1, 1, 0], [2.5, 0, 1], [3.5, 0, 0], [2.5, 0, 1]])
    assert repr(encoder) == "TableEncoder(2 columns, 1 of text, missing cells filled)"


def test_pandas_missing_scalars_are_missing_cells():
    encoder = TableEncoder(["a", "c"], {"c": ["x"]}, {"a": 2.0})
    got = encoder.transform({"a": [pd.NA, np.nan, None, 1], "c": [pd.NA, pd.NaT, "x", None]})
    np.testing.assert_array_equal(got, [[2, 0], [2, 0], [2, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"column 'c', row 0: a missing value"):
        TableEncoder(["c"], {"c": ["x"]}).transform({"c": [pd.NA]})


def test_the_refusals_name_column_and_row(tmp_path):
    encoder = TableEncoder(["a", "c"], {"c": ["x"]})
    with pytest.raises(ValueError, match=r"column 'a', row 1: a missing value; the model "
                                         r"fills none in \(train it with --impute\)"):
        encoder.transform({"a": [1.0, float("nan")], "c": ["x", "x"]})
    with pytest.raises(ValueError, match=r"column 'c', row 0: a missing value"):
        encoder.transform({"a": [1.0], "c": [None]})
    with pytest.raises(ValueError, match=r"column 'a', row 1: expected a number, got 'ten'"):
        encoder.transform({"a": [1, "ten"], "c": ["x", "x"]})
    with pytest.raises(ValueError, match=r"column 'a', row 0: feature values must be finite"):
        encoder.transform({"a": [float("inf")], "c": ["x"]})
    with pytest.raises(ValueError, match=r"table lacks the columns \['c'\]"):
        encoder.transform({"a": [1.0]})
    with pytest.raises(ValueError, match=r"different numbers of rows"):
        encoder.transform({"a": [1.0, 2.0], "c": ["x"]})
    with pytest.raises(TypeError, match=r"table must be a pandas DataFrame or a mapping"):
        encoder.transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"impute must be .* for the numeric feature columns "
                                         r"\['a'\]"):
        TableEncoder(["a", "c"], {"c": ["x"]}, {"a": float("nan")})
    with pytest.raises(TypeError, match=r"feature_names must be a non-empty list"):
        TableEncoder("a")
    frame = pd.DataFrame({"a": [1.0, 2.0, None], "c": ["x"] * 3}, index=[10, 20, 30])
    with pytest.raises(ValueError, match=r"column 'a', row 30: a missing value"):
        encoder.transform(frame.iloc[1:])   # a DataFrame's row by its index label
    with pytest.raises(ValueError, match=r"column 'a' must hold one value per row, got shape "
                                         r"\(3, 2\) \(a table with the column twice\?\)"):
        encoder.transform(pd.concat([frame[["a"]], frame], axis=1))
    with pytest.raises(ValueError, match=r"row 0: feature values must be finite, got 1000"):
        encoder.transform({"a": [10**400], "c": ["x"]})
    with pytest.raises(ValueError, match=r"row 0: expected a number, got True"):
        encoder.transform({"a": [True], "c": ["x"]})
    wide = {f"z{i}": [0.0] for i in range(1000)}
    with pytest.raises(ValueError, match=r"it has \['z0', .*, \.\.\.\] \(1000 columns\)$"):
        encoder.transform(wide)


def test_a_model_file_without_a_table_has_no_encoder(tmp_path, capsys):
    import chainrule as cr

    path = tmp_path / "m.npz"
    io.save(cr.MLP([4, 3, 2], rng=0), path)
    with pytest.raises(ValueError, match=r"names no feature columns: only a model that "
                                         r"'chainrule train' fitted on a CSV table"):
        io.table_encoder(path)
    io.save(cr.MLP([4, 3, 2], rng=0), path, metadata={"feature_names": ["a", "b", "c", "d"],
                                                       "impute": {"median": {"a": 1.0}}})
    with pytest.raises(ValueError, match=r"impute must be .* \['a', 'b', 'c', 'd'\]"):
        io.table_encoder(path)
    io.save(cr.MLP([4, 3, 2], rng=0), path, metadata={
        "feature_names": ["a", "b", "c", "d"], "impute": {"median": dict.fromkeys("abcd", 1.0),
                                                        "strategy": "median"}})
    with pytest.raises(ValueError, match=r"impute must be \{'median': \{column: number\}\}, "
                                         r"got \{'median'"):
        io.table_encoder(path)   # (predict refuses it alike: metadata_medians)
