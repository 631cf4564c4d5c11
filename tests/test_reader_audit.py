"""Reader audit: iter_csv (both parsers) and load_csv read a CSV file alike, cells over
the csv module's 128 KiB default are read, and a truncated or empty .npy file is refused
with a message naming it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import load_csv, open_npy
from chainrule.datastream import iter_csv


def _read(path, label="label", **kwargs):
    chunks = list(iter_csv(path, label, **kwargs))
    X = np.concatenate([c[0] for c in chunks])
    labels = None if label is None else np.concatenate([c[1] for c in chunks])
    return X, labels


def _read_columns_a_b_alike(path):
    """Columns a and b of ``path`` (label "label") as iter_csv and load_csv read them,
    which must agree; iter_csv's features."""
    X, labels = _read(path, feature_columns=["a", "b"], chunk_rows=4)
    whole_X, whole_y = load_csv(path, "label", feature_columns=["a", "b"])
    np.testing.assert_array_equal(X, whole_X)
    assert labels.tolist() == whole_y.tolist()
    return X


@pytest.mark.parametrize("text, label, message", [
    # more cells than the header in the first row: pandas took column 1 as an index
    ("a,b\n7,1,2\n8,3,4\n", None, "line 2: expected 2 cells, got 3"),
    ("a,b,label\n1,2,x\n2,3,1,7\n", "label", "line 3: expected 3 cells, got 4"),
    ("a,b,label\n1,2,x\n2,3\n", "label", "line 3: expected 3 cells, got 2"),
    ("a,b,label\n1,2,x\n2,3,\n4,5\n", "label", "line 4: expected 3 cells, got 2"),
])
def test_rows_with_a_wrong_number_of_cells_are_refused(tmp_path, parser, text, label,
                                                       message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        list(iter_csv(path, label))
    with pytest.raises(ValueError, match=message.replace("cells", r"cells \(as in the header\)")):
        load_csv(path, label)


def test_an_extra_cell_is_refused_with_feature_columns(tmp_path, parser):
    # pandas' usecols let a row with an extra cell through, cut
    path = tmp_path / "t.csv"
    path.write_text("id,a,b,label\nu,1,2,x\nv,2,3,y,7\n")
    with pytest.raises(ValueError, match="line 3: expected 4 cells, got 5"):
        list(iter_csv(path, "label", feature_columns=["a", "b"]))


def test_a_bad_row_in_a_later_chunk_keeps_the_earlier_chunks(tmp_path, parser):
    rows = [f"{i},{i + 1},c{i % 2}" for i in range(10)]
    rows[7] = "7,8"
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    chunks = iter_csv(path, "label", chunk_rows=3)
    first, second = next(chunks), next(chunks)
    np.testing.assert_array_equal(np.vstack([first[0], second[0]])[:, 0], np.arange(6))
    with pytest.raises(ValueError, match="line 9: expected 3 cells, got 2"):
        next(chunks)


def test_blank_only_rows_are_skipped_by_both_readers(tmp_path, parser):
    rows = [f"{i},{i + 1},c{i % 2}" for i in range(10)]
    rows.insert(7, ",,")
    rows.insert(2, ",")
    rows.append(" , ")
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    X, labels = _read(path, chunk_rows=4)
    whole_X, whole_y = load_csv(path, "label")
    np.testing.assert_array_equal(X, whole_X)
    assert labels.tolist() == whole_y.tolist() and len(labels) == 10


def test_empty_cells_of_a_last_column_left_unread_are_read_alike(tmp_path, parser):
    rows = [f"{i},{i + 1},c{i % 2},{'' if i % 3 else 'note'}" for i in range(10)]
    path = tmp_path / "t.csv"
    path.write_text("a,b,label,notes\n" + "\n".join(rows) + "\n")
    _read_columns_a_b_alike(path)


def test_digit_separators_are_refused_by_both_readers(tmp_path, parser):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x_1\n1_000,2,x_2\n")
    message = "line 3, column 'a': expected a number, got '1_000'"
    with pytest.raises(ValueError, match=message):
        load_csv(path, "label")
    with pytest.raises(ValueError, match=message):
        list(iter_csv(path, "label"))


def test_underscores_in_labels_are_still_read(tmp_path, parser):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,class_a\n3,4,class_b\n")
    X, labels = _read(path)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert labels.tolist() == ["class_a", "class_b"]
    assert load_csv(path, "label")[1].tolist() == ["class_a", "class_b"]


def test_a_cell_over_128_kib_is_read_by_both_readers(tmp_path, parser):
    big = "x" * 200_000   # over the csv module's default limit of 131072 characters
    path = tmp_path / "t.csv"
    path.write_text(f"a,b,label,text\n1,2,y,{big}\n3,4,n,short\n")
    limit = csv.field_size_limit()
    X, y = load_csv(path, "label", feature_columns=["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y.tolist() == ["y", "n"]
    X, labels = _read(path, feature_columns=["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert labels.tolist() == ["y", "n"]
    assert csv.field_size_limit() == limit   # raised while reading only


def test_a_truncated_npy_file_is_refused_when_opened(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((50, 4)))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=rf"x\.npy.* is truncated: .*shape \(50, 4\), which "
                                         rf"need {size} bytes, but the file holds {size - 20}"):
        open_npy(path)


def test_a_whole_npy_file_still_opens(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(open_npy(path).read(0, 3), np.arange(12.0).reshape(3, 4))


def test_fit_on_an_empty_npy_file_says_x_is_empty(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, 3)))
    model = cr.MLP([3, 4, 2])
    with pytest.raises(ValueError, match=r"X \(.*empty\.npy'\) must not be empty, got shape "
                                         r"\(0, 3\)"):
        cr.fit(model, open_npy(path), np.zeros(0, int), optimizer="sgd", epochs=1,
               batch_size=4)


def test_a_huge_bad_cell_is_quoted_cut_in_the_message(tmp_path, parser):
    # with no 128 KiB limit left, the message must not echo a cell of any size
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1,2\n3," + "4" * 200_000 + "\n5,x" + "y" * 200_000 + "\n")
    with pytest.raises(ValueError, match=r"big\.csv, line 3, column 'b': feature values "
                                         r"must be finite, got '4{40}'\.\.\. \(200000 "
                                         r"characters\)$"):
        load_csv(path)
    path.write_text("a,b\n1,2\n5,x" + "y" * 200_000 + "\n")
    for read in (load_csv, lambda p: list(iter_csv(p))):
        with pytest.raises(ValueError, match=r"line 3, column 'b': expected a number, got "
                                             r"'xy{39}'\.\.\. \(200001 characters\); a "
                                             r"column of text must be left out"):
            read(path)


@pytest.mark.parametrize("skipped", [
    lambda i: f"{i * 0.5}",                          # numbers: parsed as numbers, and dropped
    lambda i: f"id{i}",                              # text from the first row on
    lambda i: f"{i}" if i < 6 else f"late{i}",       # numbers first, text in a later chunk
    lambda i: f"{i}" if i != 1 else "",              # an empty cell
])
def test_columns_left_unread_may_hold_anything(tmp_path, parser, skipped):
    rows = [f"{skipped(i)},{i},{i + 1},c{i % 2},{skipped(i + 1)}" for i in range(10)]
    path = tmp_path / "t.csv"
    path.write_text("id,a,b,label,z\n" + "\n".join(rows) + "\n")
    X = _read_columns_a_b_alike(path)
    np.testing.assert_array_equal(X, np.c_[np.arange(10), np.arange(1, 11)])


def test_numeric_columns_left_unread_keep_pandas_to_the_end(tmp_path):
    # Parsed as numbers, they need no hand-over to the csv module (3x slower).
    pd = pytest.importorskip("pandas")
    from chainrule.datastream import _iter_pandas

    path = tmp_path / "t.csv"
    path.write_text("a,b,c,label\n" + "".join(f"{i},{i / 3},{i * 2},x\n" for i in range(9)))
    gen = _iter_pandas(pd, str(path), path, "label", ",", True, 4, ["a", "c"])
    rows = 0
    with pytest.raises(StopIteration) as end:
        while True:
            rows += next(gen)[0].shape[0]
    assert rows == 9 and end.value.value is None
