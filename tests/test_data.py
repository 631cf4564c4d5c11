"""Tests for the data-file loaders and array helpers in chainrule.data.

Every file is written here, byte by byte or line by line, from arrays built
independently of the loaders; the loaders must give those arrays back.
"""

import gzip
import os
import struct

import numpy as np
import pytest

from chainrule import data
from chainrule.data import (
    encode_labels,
    fetch_openml,
    holdout_split,
    load_csv,
    load_file,
    load_idx,
    load_npz,
    mean_and_scale,
    standardize,
)

# -- helpers that write files from the IDX specification ---------------------------------

IDX_CODES = {np.uint8: (0x08, "B"), np.int8: (0x09, "b"), np.int16: (0x0B, "h"),
             np.int32: (0x0C, "i"), np.float32: (0x0D, "f"), np.float64: (0x0E, "d")}


def idx_bytes(arr):
    """Encode ``arr`` as IDX: 0x0000, type code, ndim, big-endian dims, big-endian values."""
    code, fmt = IDX_CODES[arr.dtype.type]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = struct.pack(f">{arr.size}{fmt}", *arr.ravel().tolist())
    return header + body


def write(path, payload, compress=False):
    with open(path, "wb") as fh:
        fh.write(gzip.compress(payload) if compress else payload)
    return path


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)


@pytest.fixture
def labels():
    return np.array([3, 0, 9, 1, 3], dtype=np.uint8)


# -- IDX -------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_plain_and_gzipped(tmp_path, images, labels, compress):
    # Names deliberately say nothing about compression: the loader must look at bytes.
    ip = write(tmp_path / "imgs.bin", idx_bytes(images), compress)
    lp = write(tmp_path / "labs.bin", idx_bytes(labels), compress)
    X, y = load_idx(ip, lp)
    expected = np.array([[float(v) for v in img.ravel()] for img in images])
    assert X.dtype == np.float64 and X.shape == (5, 12)
    np.testing.assert_array_equal(X, expected)
    assert y.tolist() == [3, 0, 9, 1, 3]


def test_idx_gzip_detected_despite_misleading_name(tmp_path, images):
    ip = write(tmp_path / "plain-name-idx3-ubyte", idx_bytes(images), compress=True)
    X, y = load_idx(ip)
    assert y is None
    np.testing.assert_array_equal(X, images.reshape(5, -1).astype(float))


def test_idx_uncompressed_file_named_gz(tmp_path, images):
    ip = write(tmp_path / "images-idx3-ubyte.gz", idx_bytes(images), compress=False)
    np.testing.assert_array_equal(load_idx(ip)[0], images.reshape(5, -1))


def test_idx_big_endian_multibyte_values(tmp_path):
    # 0x0102 = 258 and -2 as int16: a little-endian misread would give 513 and -257.
    arr = np.array([[[258, -2], [7, 0]]], dtype=np.int16)
    ip = write(tmp_path / "a.idx", idx_bytes(arr))
    assert load_idx(ip)[0].tolist() == [[258.0, -2.0, 7.0, 0.0]]
    farr = np.array([[[1.5, -0.25]]], dtype=np.float64)
    fp = write(tmp_path / "f.idx", idx_bytes(farr))
    assert load_idx(fp)[0].tolist() == [[1.5, -0.25]]


def test_idx_wrong_magic(tmp_path, images):
    raw = bytearray(idx_bytes(images))
    raw[0] = 0x12
    p = write(tmp_path / "bad.idx", bytes(raw))
    with pytest.raises(ValueError, match="magic number") as err:
        load_idx(p)
    assert str(p) in str(err.value)
    raw = bytearray(idx_bytes(images))
    raw[2] = 0x07  # not a type code the specification defines
    p = write(tmp_path / "bad2.idx", bytes(raw))
    with pytest.raises(ValueError, match="magic number"):
        load_idx(p)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_truncated_body(tmp_path, images, compress):
    p = write(tmp_path / "t.idx", idx_bytes(images)[:-3], compress)
    with pytest.raises(ValueError, match="truncated") as err:
        load_idx(p)
    assert str(p) in str(err.value)


def test_idx_truncated_header(tmp_path, images):
    p = write(tmp_path / "h.idx", idx_bytes(images)[:9])
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_idx(p)
    p = write(tmp_path / "tiny.idx", b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        load_idx(p)


def test_idx_dims_disagree_with_byte_count(tmp_path, images):
    raw = idx_bytes(images) + b"\x00" * 4
    p = write(tmp_path / "extra.idx", raw)
    with pytest.raises(ValueError, match="trailing bytes"):
        load_idx(p)
    # Claim 6 images where 5 are stored.
    raw = bytearray(idx_bytes(images))
    raw[4:8] = struct.pack(">I", 6)
    p = write(tmp_path / "claims6.idx", bytes(raw))
    with pytest.raises(ValueError, match=r"\[6, 3, 4\]"):
        load_idx(p)


def test_idx_truncated_gzip_stream(tmp_path, images):
    blob = gzip.compress(idx_bytes(images))
    p = write(tmp_path / "cut.gz", blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="gzip"):
        load_idx(p)


def test_idx_label_count_mismatch(tmp_path, images, labels):
    ip = write(tmp_path / "i.idx", idx_bytes(images))
    lp = write(tmp_path / "l.idx", idx_bytes(labels[:4]))
    with pytest.raises(ValueError, match="4 labels but"):
        load_idx(ip, lp)
    lp2 = write(tmp_path / "l2.idx", idx_bytes(images))
    with pytest.raises(ValueError, match="must be 1-D"):
        load_idx(ip, lp2)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        load_idx(lp)


# -- CSV -------------------------------------------------------------------------------

def test_csv_named_label_column_with_strings(tmp_path):
    p = tmp_path / "flowers.csv"
    p.write_text("width,species,length\n1.5,setosa,2\n-3e-1,virginica,4.25\n\n7,setosa,0\n")
    X, y = load_csv(p, "species")
    np.testing.assert_array_equal(X, np.array([[1.5, 2.0], [-0.3, 4.25], [7.0, 0.0]]))
    assert X.dtype == np.float64
    assert y.tolist() == ["setosa", "virginica", "setosa"]


def test_csv_integer_labels_and_positional_column(tmp_path):
    p = tmp_path / "n.csv"
    p.write_text("1,2,0\n3,4,2\n")
    X, y = load_csv(p, -1, header=False)
    np.testing.assert_array_equal(X, [[1.0, 2.0], [3.0, 4.0]])
    assert y.dtype == np.int64 and y.tolist() == [0, 2]
    X, y = load_csv(p, 0, header=False)
    np.testing.assert_array_equal(X, [[2.0, 0.0], [4.0, 2.0]])
    assert y.tolist() == [1, 3]


def test_csv_other_delimiter_gzip_and_no_labels(tmp_path):
    p = tmp_path / "semi.csv.gz"
    p.write_bytes(gzip.compress(b"a;b;label\n1;2;x\n3;4;y\n"))
    X, y = load_csv(p, "label", delimiter=";")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y.tolist() == ["x", "y"]
    with pytest.raises(ValueError, match="column 'label': expected a number"):
        load_csv(p, None, delimiter=";")  # without a label column, 'x' is a feature cell
    q = tmp_path / "nolab.csv"
    q.write_text("a,b\n1,2\n")
    X, y = load_csv(q)
    assert y is None and X.tolist() == [[1.0, 2.0]]


def test_csv_missing_label_column(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no column named 'label'") as err:
        load_csv(p, "label")
    assert str(p) in str(err.value)


def test_csv_non_numeric_feature_names_line_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(ValueError, match=r"line 3, column 'b'.*'oops'") as err:
        load_csv(p, "label")
    assert str(p) in str(err.value)
    q = tmp_path / "empty_cell.csv"
    q.write_text("a,b,label\n1,,x\n")
    with pytest.raises(ValueError, match="column 'b': a missing value .*SimpleImputer"):
        load_csv(q, "label")
    r = tmp_path / "nan.csv"
    r.write_text("a,label\nnan,x\n")
    with pytest.raises(ValueError, match="column 'a': a missing value \\('nan'\\)"):
        load_csv(r, "label")
    r.write_text("a,label\n-inf,x\n")
    with pytest.raises(ValueError, match="column 'a': feature values must be finite"):
        load_csv(r, "label")


def test_csv_ragged_rows(tmp_path):
    p = tmp_path / "ragged.csv"
    p.write_text("a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(ValueError, match="line 3: expected 3 cells.*got 2"):
        load_csv(p, "label")


def test_csv_empty_and_header_only(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("\n\n")
    with pytest.raises(ValueError, match="no rows"):
        load_csv(p, "label")
    q = tmp_path / "head.csv"
    q.write_text("a,label\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_csv(q, "label")
    with pytest.raises(ValueError, match="header=False"):
        load_csv(q, "label", header=False)
    with pytest.raises(TypeError, match="label_column"):
        load_csv(q, 1.5)


# -- NPZ -------------------------------------------------------------------------------

def test_npz_round_trip_and_image_flattening(tmp_path):
    X = np.arange(24, dtype=np.uint8).reshape(3, 2, 4)
    y = np.array(["cat", "dog", "cat"])
    p = tmp_path / "d.npz"
    np.savez(p, X=X, y=y)
    Xl, yl = load_npz(p)
    expected = np.array([[float(8 * r + c) for c in range(8)] for r in range(3)])
    np.testing.assert_array_equal(Xl, expected)
    assert Xl.dtype == np.float64
    assert yl.tolist() == ["cat", "dog", "cat"]


def test_npz_missing_arrays(tmp_path):
    p = tmp_path / "noy.npz"
    np.savez(p, X=np.ones((2, 2)))
    with pytest.raises(ValueError, match="no array named 'y'") as err:
        load_npz(p)
    assert str(p) in str(err.value)
    X, y = load_npz(p, require_labels=False)
    assert y is None and X.shape == (2, 2)
    q = tmp_path / "nox.npz"
    np.savez(q, data=np.ones((2, 2)), y=np.ones(2))
    with pytest.raises(ValueError, match="no array named 'X'"):
        load_npz(q)


def test_npz_object_array_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.ones((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        load_npz(p)


def test_npz_not_a_zip_and_shape_problems(tmp_path):
    p = tmp_path / "fake.npz"
    p.write_bytes(b"hello, world")
    with pytest.raises(ValueError, match="not an .npz"):
        load_npz(p)
    q = tmp_path / "rows.npz"
    np.savez(q, X=np.ones((3, 2)), y=np.ones(2))
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        load_npz(q)
    r = tmp_path / "flat.npz"
    np.savez(r, X=np.ones(3), y=np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        load_npz(r)
    blob = (tmp_path / "rows.npz").read_bytes()
    t = write(tmp_path / "trunc.npz", blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        load_npz(t)


# -- dispatcher ------------------------------------------------------------------------

def test_load_file_dispatches_by_suffix_and_content(tmp_path, images, labels):
    c = tmp_path / "t.csv"
    c.write_text("f,label\n2.5,a\n")
    X, y = load_file(c, "label")
    assert X.tolist() == [[2.5]] and y.tolist() == ["a"]
    with pytest.raises(ValueError, match="label_column"):
        load_file(c)
    n = tmp_path / "t.npz"
    np.savez(n, X=np.eye(2), y=np.array([0, 1]))
    assert load_file(n)[1].tolist() == [0, 1]
    # MNIST naming: the labels file next to the images file is found by name.
    ip = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), True)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(labels), True)
    X, y = load_file(ip)
    assert X.shape == (5, 12) and y.tolist() == [3, 0, 9, 1, 3]
    # A name that says nothing: recognised from the bytes.
    anon = write(tmp_path / "mystery", idx_bytes(images))
    assert load_file(anon, require_labels=False)[0].shape == (5, 12)
    anon_npz = write(tmp_path / "mystery2", n.read_bytes())
    assert load_file(anon_npz)[0].shape == (2, 2)


def test_load_file_errors(tmp_path, images):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_file(tmp_path / "nope.csv", "x")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="cannot tell the file format"):
        load_file(txt)
    lonely = write(tmp_path / "test-images-idx3-ubyte", idx_bytes(images))
    with pytest.raises(ValueError, match="labels"):
        load_file(lonely)


# -- OpenML (the network part is not tested; the call to scikit-learn is) ---------------

def test_fetch_openml_calls_sklearn(monkeypatch):
    import sklearn.datasets

    calls = []

    def fake(name, **kwargs):
        calls.append((name, kwargs))
        return np.array([[1, 2], [3, 4]], dtype=np.int64), np.array(["7", "1"], dtype=object)

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake)
    X, y = fetch_openml("mnist_784", version=1)
    assert calls == [("mnist_784", {"version": 1, "data_home": None, "return_X_y": True,
                                    "as_frame": False, "parser": "auto"})]
    assert X.dtype == np.float64 and X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    # Digit names come back as integers, other names as strings; never an object array.
    assert y.dtype == np.int64 and y.tolist() == [7, 1]
    monkeypatch.setattr(sklearn.datasets, "fetch_openml",
                        lambda name, **kw: (np.ones((2, 1)), np.array(["cat", "dog"], object)))
    assert fetch_openml("pets")[1].tolist() == ["cat", "dog"]
    with pytest.raises(TypeError, match="name"):
        fetch_openml("")
    # a data set with columns of text: the way through a CSV table, named
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda name, **kw: (
        np.array([[39, "State-gov"], [50, None]], dtype=object), np.array(["<=50K", ">50K"])))
    with pytest.raises(ValueError, match=r"OpenML data set 'adult' has non-numeric features "
                                         r"\(columns of text\).*fetch_openml\('adult', "
                                         r"as_frame=True\)\.frame\.to_csv\('adult\.csv', "
                                         r"index=False\).*--impute fills its missing cells"):
        fetch_openml("adult")


# -- array helpers ---------------------------------------------------------------------

def test_standardize_uses_training_statistics():
    Xtr = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])
    Xte = np.array([[7.0, 6.0, 1.0]])
    # Column means 3, 5, 2; population standard deviations sqrt(8/3), 0 (-> 1), sqrt(8/3).
    s = np.sqrt(8 / 3)
    a, b, mean, scale = standardize(Xtr, Xte, return_stats=True)
    np.testing.assert_allclose(mean, [3, 5, 2])
    np.testing.assert_allclose(scale, [s, 1.0, s])
    np.testing.assert_allclose(a, [[-2 / s, 0, -2 / s], [0, 0, 0], [2 / s, 0, 2 / s]])
    np.testing.assert_allclose(b, [[4 / s, 1.0, -1 / s]])
    (only,) = standardize(Xtr)
    np.testing.assert_allclose(only, a)
    with pytest.raises(ValueError, match="columns"):
        standardize(Xtr, np.ones((1, 2)))


def test_standardize_columns_whose_squares_overflow():
    """Values near 1e200 (squares beyond float64) get their true mean and deviation:
    the same as of the column divided by 1e200, multiplied back."""
    rng = np.random.default_rng(0)
    small = rng.normal(size=(50, 2))
    X = np.c_[small[:, 0], small[:, 1] * 1e200]
    (scaled,), (mean, scale) = standardize(X)[:1], mean_and_scale(X)
    assert np.all(np.isfinite(scaled)) and np.all(np.isfinite(scale))
    np.testing.assert_allclose(mean, [small[:, 0].mean(), small[:, 1].mean() * 1e200])
    np.testing.assert_allclose(scale, [small[:, 0].std(), small[:, 1].std() * 1e200])
    np.testing.assert_allclose(scaled[:, 1], (small[:, 1] - small[:, 1].mean())
                               / small[:, 1].std())


def test_encode_labels_and_holdout_split():
    classes, idx = encode_labels(np.array(["b", "a", "c", "a"]))
    assert classes.tolist() == ["a", "b", "c"] and idx.tolist() == [1, 0, 2, 0]
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    Xtr, Xte, ytr, yte = holdout_split(X, y, 0.3, rng=5)
    assert len(yte) == 3 and len(ytr) == 7
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(10))
    np.testing.assert_array_equal(Xtr[:, 0], 2 * ytr)  # rows stay paired with labels
    again = holdout_split(X, y, 0.3, rng=5)
    np.testing.assert_array_equal(again[3], yte)
    with pytest.raises(ValueError, match="test_fraction"):
        holdout_split(X, y, 1.5)
    with pytest.raises(ValueError, match="both need"):
        holdout_split(X[:2], y[:2], 0.1)


def test_existing_helpers_unchanged():
    # The homework split and the minibatch iterator keep their contracts.
    assert data.load_homework_digits()[0].shape == (1347, 64)
    batches = list(data.iterate_minibatches(np.arange(10.0)[:, None], np.arange(10.0)[:, None],
                                            4, shuffle=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert os.path.basename(data.__file__) == "data.py"


# -- second acceptance review ------------------------------------------------------------

@pytest.mark.parametrize("code, dims", [
    (0x08, (2**31, 2**31, 2**31, 2**31, 2)),  # 2**125 values: wraps to 0 in int64
    (0x0E, (4_000_000_000, 4_000_000_000, 3)),  # 8-byte values: wraps negative in int64
])
def test_idx_huge_dimensions_are_refused_by_size_not_overflow(tmp_path, code, dims):
    header = struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    p = write(tmp_path / "huge.idx", header)
    itemsize = 8 if code == 0x0E else 1
    need = itemsize
    for d in dims:  # exact, in Python integers
        need *= d
    with pytest.raises(ValueError) as err:
        load_idx(p)
    message = str(err.value)
    assert str(p) in message and "truncated" in message
    assert f"need {need} bytes" in message


def test_iterate_minibatches_checks_its_arguments_when_called():
    X, Y = np.ones((4, 2)), np.ones((4, 2))
    # No next(): the call itself must raise.
    with pytest.raises(ValueError, match="batch_size"):
        data.iterate_minibatches(X, Y, batch_size=0)
    with pytest.raises(ValueError, match="rows"):
        data.iterate_minibatches(X, np.ones((3, 2)), batch_size=2)
    with pytest.raises(TypeError, match="shuffle"):
        data.iterate_minibatches(X, Y, batch_size=2, shuffle="yes")
    with pytest.raises(TypeError, match="rng"):
        data.iterate_minibatches(X, Y, batch_size=2, rng="seed")
    # Still lazy and complete: every row exactly once.
    batches = list(data.iterate_minibatches(np.arange(10.0)[:, None], np.arange(10.0)[:, None],
                                            3, rng=0))
    seen = np.concatenate([b[0][:, 0] for b in batches])
    assert [len(b[0]) for b in batches] == [3, 3, 3, 1]
    assert sorted(seen.tolist()) == list(range(10))


def test_csv_header_reads_only_the_first_rows(tmp_path):
    # The header of a huge file must not cost the file: bytes that are not UTF-8 far
    # below the header are not read (reading the whole file would refuse them).
    from chainrule.data import csv_header

    path = tmp_path / "t.csv"
    path.write_bytes(b"\n a , b ,label\n1,2,0\n" + b"3,4,1\n" * 20000 + b"\xff\xfe,5,1\n")
    assert csv_header(path) == ["a", "b", "label"]
    gz = tmp_path / "t.csv.gz"
    import gzip
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert csv_header(gz) == ["a", "b", "label"]
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="no rows"):
        csv_header(tmp_path / "empty.csv")
