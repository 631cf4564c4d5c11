"""Issue 11, item 5: data files read in row chunks (chainrule.datastream), with pandas'
C parser and with the csv-module fallback, giving load_csv's data and its errors."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pytest

from chainrule.data import load_csv, load_npz
from chainrule.datastream import iter_csv, iter_npz


def _table(path, n=10):
    rng = np.random.default_rng(0)
    X = np.round(rng.standard_normal((n, 3)), 6)
    labels = rng.choice(["cat", "dog"], n)
    lines = ["a, b,label,c"] + [f"{x[0]},{x[1]},{lab},{x[2]}"
                                for x, lab in zip(X, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return X, labels


def _collect(chunks):
    chunks = list(chunks)
    X = np.concatenate([c[0] for c in chunks])
    labels = None if chunks[0][1] is None else np.concatenate([c[1] for c in chunks])
    return X, labels, [c[0].shape[0] for c in chunks]


def test_csv_chunks_are_the_whole_file(tmp_path, parser):
    X, labels = _table(tmp_path / "t.csv")
    got, got_labels, sizes = _collect(iter_csv(tmp_path / "t.csv", "label", chunk_rows=4))
    assert sizes == [4, 4, 2]
    np.testing.assert_array_equal(got, X)
    assert got_labels.tolist() == labels.tolist()
    whole, _ = load_csv(tmp_path / "t.csv", "label")
    np.testing.assert_array_equal(got, whole)


def test_csv_gzipped(tmp_path, parser):
    X, _ = _table(tmp_path / "t.csv")
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((tmp_path / "t.csv").read_bytes()))
    got, _, _ = _collect(iter_csv(gz, "label", chunk_rows=3))
    np.testing.assert_array_equal(got, X)


def test_csv_without_labels_or_header(tmp_path, parser):
    (tmp_path / "f.csv").write_text("1,2\n3,4\n\n5,6\n")
    got, labels, sizes = _collect(iter_csv(tmp_path / "f.csv", header=False, chunk_rows=2))
    np.testing.assert_array_equal(got, [[1, 2], [3, 4], [5, 6]])
    assert labels is None and sizes == [2, 1]


@pytest.mark.parametrize("cell, message", [
    ("abc", "line 8, column 'b': expected a number, got 'abc'"),
    ("", "line 8, column 'b': a missing value \\(''\\); chainrule fills none in"),
    ("NA", "line 8, column 'b': a missing value \\('NA'\\)"),
    ("nan", "line 8, column 'b': a missing value \\('nan'\\)"),
    ("inf", "line 8, column 'b': feature values must be finite, got 'inf'"),
])
def test_a_bad_cell_is_named_by_line_and_column(tmp_path, parser, cell, message):
    _table(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    cells = lines[7].split(",")
    cells[1] = cell
    lines[7] = ",".join(cells)
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        list(iter_csv(tmp_path / "t.csv", "label", chunk_rows=3))


def test_an_unknown_label_column_is_named(tmp_path, parser):
    _table(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="no column named 'y'"):
        list(iter_csv(tmp_path / "t.csv", "y"))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_chunks_are_the_whole_file(tmp_path, order, save):
    X = np.asarray(np.arange(60.0).reshape(10, 2, 3), order=order)
    y = np.arange(10) % 3
    save(tmp_path / "d.npz", X=X, y=y)
    got, labels, sizes = _collect(iter_npz(tmp_path / "d.npz", chunk_rows=4))
    assert sizes == [4, 4, 2]
    whole_X, whole_y = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(got, whole_X)
    np.testing.assert_array_equal(labels, whole_y)


def test_npz_with_nan_is_refused(tmp_path):
    X = np.ones((5, 2))
    X[3, 1] = np.nan
    np.savez(tmp_path / "d.npz", X=X)
    with pytest.raises(ValueError, match="NaN or infinite values"):
        list(iter_npz(tmp_path / "d.npz", chunk_rows=2))


def test_npz_rows_are_streamed_not_loaded_whole(tmp_path):
    X = np.random.default_rng(0).standard_normal((400_000, 10))      # 32 MB
    np.savez(tmp_path / "d.npz", X=X)
    tracemalloc.start()
    try:
        total = 0.0
        for chunk, _ in iter_npz(tmp_path / "d.npz", chunk_rows=10_000):
            total += chunk.sum()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == pytest.approx(X.sum())
    assert peak < X.nbytes / 8


@pytest.mark.parametrize("missing", ["raise", "nan"])
def test_every_reader_names_the_first_bad_cell_by_rows(tmp_path, missing):
    # an infinity (found after a row is read) before an unreadable cell (found while
    # it is read): line 3 first, in every reader (the stream named line 4)
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,0\ninf,3,1\n1_000,4,0\n5,6,1\n")
    (tmp_path / "row.csv").write_text("a,b,y\n1,2,0\ninf,x,1\n")   # and within a row
    from chainrule import datastream
    readers = [lambda: load_csv(path, "y", missing=missing),
               lambda: list(iter_csv(path, "y", missing=missing)),
               lambda: list(datastream._iter_csv_module(str(path), path, "y", ",", True, 10,
                                                        None, None, missing == "nan"))]
    for read in readers:
        with pytest.raises(ValueError, match=r"line 3, column 'a': feature values must be "
                                             r"finite, got 'inf'"):
            read()
    path.write_text((tmp_path / "row.csv").read_text())
    for read in readers:   # by column within the row, as load_csv: 'inf' before 'x'
        with pytest.raises(ValueError, match=r"line 3, column 'a': feature values must be "
                                             r"finite, got 'inf'"):
            read()
