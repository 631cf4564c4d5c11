"""CSV lines that end in a delimiter (``a,b,label,``), as some exporters write them.

Every reader (``load_csv``, ``iter_csv`` with pandas' parser and with the csv module,
``csv_header``, the command line) must read such a file exactly as the same file
without the trailing delimiters, and still refuse a value past the last column.
"""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.data import csv_header, load_csv
from chainrule.datastream import _iter_pandas, iter_csv

CLEAN = "a,b,label\n1,2.5,x\n3,-4,y\n5,6e-1,x\n"
VARIANTS = {
    # every line, header too: the header's last name is blank
    "every line": "a,b,label,\n1,2.5,x,\n3,-4,y,\n5,6e-1,x,\n",
    # the data lines only: one cell more than the header
    "data lines": "a,b,label\n1,2.5,x,\n3,-4,y,\n5,6e-1,x,\n",
    # some lines only
    "some lines": "a,b,label\n1,2.5,x\n3,-4,y,\n5,6e-1,x\n",
    # with spaces after the last delimiter
    "blank cell": "a,b,label, \n1,2.5,x,  \n3,-4,y,\n5,6e-1,x, \n",
}


def read_all(path, *args, **kwargs):
    chunks = list(iter_csv(path, *args, chunk_rows=2, **kwargs))
    return (np.concatenate([X for X, _ in chunks]),
            None if chunks[0][1] is None else np.concatenate([y for _, y in chunks]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_trailing_delimiter_reads_as_the_file_without_it(tmp_path, parser, variant):
    clean, path = tmp_path / "clean.csv", tmp_path / "trailing.csv"
    clean.write_text(CLEAN)
    path.write_text(VARIANTS[variant])
    X, y = load_csv(clean, "label")
    X2, y2 = load_csv(path, "label")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    Xs, ys = read_all(path, "label")
    np.testing.assert_array_equal(Xs, X)
    assert ys.tolist() == y.tolist()
    assert csv_header(path) == ["a", "b", "label"]
    # features only, and by name
    np.testing.assert_array_equal(load_csv(path, feature_columns=["b"])[0], X[:, 1:])
    np.testing.assert_array_equal(read_all(path, feature_columns=["b"])[0], X[:, 1:])


def test_without_a_header_too(tmp_path, parser):
    path = tmp_path / "t.csv"
    path.write_text("1,2,0,\n3,4,1,\n5,6,0,\n")
    X, y = load_csv(path, 2, header=False)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert y.tolist() == [0, 1, 0]
    Xs, ys = read_all(path, 2, header=False)
    np.testing.assert_array_equal(Xs, X)
    assert ys.tolist() == ["0", "1", "0"]


@pytest.mark.parametrize("variant", ["every line", "data lines"])
def test_pandas_reads_such_a_file_to_the_end(tmp_path, variant):
    # No hand-over to the csv module (ten times slower): pandas' parser reads it all.
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.csv"
    path.write_text(VARIANTS[variant])
    gen = _iter_pandas(pd, str(path), path, "label", ",", True, 2)
    rows = 0
    with pytest.raises(StopIteration) as end:
        while True:
            rows += next(gen)[0].shape[0]
    assert rows == 3 and end.value.value is None  # None: nothing left for the csv module


@pytest.mark.parametrize("text, line, cells", [
    ("a,b,label\n1,2,x,\n3,4,y,7\n", 3, 4),      # a value past the last column
    ("a,b,label,\n1,2,x,\n3,4,y,7\n", 3, 4),     # the unnamed last column holds a value
    ("a,b,label\n1,2,x,,\n", 2, 5)])             # two delimiters more than the header
def test_a_value_past_the_last_column_is_still_refused(tmp_path, parser, text, line, cells):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"line {line}: expected 3 cells .*got {cells}"):
        load_csv(path, "label")
    with pytest.raises(ValueError, match=rf"line {line}: expected 3 cells, got {cells}"):
        read_all(path, "label")


def test_an_empty_last_cell_is_not_taken_for_a_trailing_delimiter(tmp_path, parser):
    # "1,2," under a three-column header is a row whose label is missing
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,\n")
    with pytest.raises(ValueError, match="line 3: the label cell is empty"):
        load_csv(path, "label")
    path.write_text("a,b,c\n1,2,3\n3,4,\n")
    with pytest.raises(ValueError, match="line 3, column 'c': a missing value"):
        load_csv(path)
    with pytest.raises(ValueError, match="line 3, column 'c': a missing value"):
        read_all(path)


def test_chainrule_train_reads_a_table_with_trailing_delimiters(tmp_path, capsys):
    from chainrule.cli import main

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    path = tmp_path / "t.csv"
    lines = ["f1,f2,f3,target,"] + [f"{a:.6f},{b:.6f},{c:.6f},{t}," for (a, b, c), t
                                     in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(path), "--label-column", "target", "--epochs", "3",
                 "-q"]) == 0
    assert "3 features, 2 classes" in capsys.readouterr().out
