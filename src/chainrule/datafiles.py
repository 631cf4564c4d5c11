"""Readers for data files: CSV (:mod:`chainrule.csvfiles`, re-exported here), NumPy
``.npz`` and the IDX format of MNIST, and OpenML.

Every loader returns ``X`` as a float64 array of shape (N, D) and ``y`` as a 1-D
array of N labels (integers, floats or strings, as the file holds them). A file
that cannot be read as promised raises ``ValueError`` naming the path and the
problem; a missing file raises ``FileNotFoundError``. Nothing is ever unpickled.

:mod:`chainrule.data` re-exports every public name here, so ``chainrule.data.load_csv``
is the documented way in. scikit-learn is imported inside :func:`fetch_openml` only.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from ._validation import check_bool, check_path, shape_str
from .csvfiles import GZIP_MAGIC, csv_delimiter, csv_header, load_csv, parse_labels, read_bytes

__all__ = ["load_csv", "load_npz", "load_idx", "load_file", "fetch_openml", "file_kind",
           "idx_labels_path", "csv_header", "csv_delimiter", "parse_labels", "stored_row_shape"]


_ZIP_MAGIC = b"PK\x03\x04"

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _as_features(X, name, path):
    if X.ndim < 2:
        raise ValueError(f"{path}: {name} must have one row per sample (2-D or more), got "
                         f"shape {shape_str(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{path}: {name} holds no rows")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or \
            np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{path}: {name} must be a real numeric array, got dtype {X.dtype}")
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{path}: {name} holds {int(np.size(X) - np.isfinite(X).sum())} "
                         f"NaN or infinite values")
    return X


def load_npz(path, *, require_labels=True):
    """Load arrays ``X`` and ``y`` from a NumPy ``.npz`` file, never unpickling.

    Parameters
    ----------
    path : str or path-like
    require_labels : bool, default=True
        If False, a file without ``y`` gives ``y=None``.

    Returns
    -------
    X : ndarray of float64, shape (N, D)
        ``X`` as stored; arrays with more than two dimensions (images) are flattened
        to one row per sample.
    y : ndarray, shape (N,), or None
        ``y`` as stored (numbers or fixed-width strings); shape (N, 1) is flattened.

    Raises
    ------
    ValueError
        For a file that is not an ``.npz`` archive, lacks ``X`` or ``y``, holds object
        (pickled) arrays, or whose ``X`` and ``y`` disagree in length.
    """
    name = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != _ZIP_MAGIC:
        raise ValueError(f"{name}: not an .npz archive (a zip file); it starts with "
                         f"{head!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            missing = [k for k in ("X", "y") if k not in keys and (k == "X" or require_labels)]
            if missing:
                raise ValueError(f"{name}: the archive has no array named "
                                 f"{' or '.join(map(repr, missing))}; it holds "
                                 f"{sorted(keys)}")
            X = archive["X"]
            y = archive["y"] if "y" in keys else None
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(name):
            raise
        if "allow_pickle" in msg or "Object arrays" in msg:
            raise ValueError(f"{name}: holds an object (pickled) array, which is refused "
                             f"because loading it could run code") from None
        raise ValueError(f"{name}: not a readable .npz archive ({msg})") from None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{name}: not a readable .npz archive ({exc})") from None
    except MemoryError:
        raise ValueError(f"{name}: its arrays do not fit in memory") from None
    except Exception as exc:  # zipfile's NotImplementedError for an unknown method...
        raise ValueError(f"{name}: not a readable .npz archive ({type(exc).__name__}: "
                         f"{exc})") from None
    X = _as_features(X, "X", name)
    if y is None:
        return X, None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name}: y must be 1-D (one label per row), got shape "
                         f"{shape_str(y.shape)}")
    if y.dtype.kind not in "biufU":
        raise ValueError(f"{name}: y must hold numbers or strings, got dtype {y.dtype}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name}: y holds NaN or infinite labels")
    return X, y.astype(y.dtype.newbyteorder("="))


def _read_idx(path, what):
    """Parse one IDX file into an ndarray of its declared dtype and shape."""
    name = os.fspath(path)
    data = read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{name}: not an IDX {what} file: the magic number is "
                         f"{data[:4].hex()}, expected 0000 followed by a type code in "
                         f"{{08, 09, 0b, 0c, 0d, 0e}} and the number of dimensions")
    if ndim == 0:
        raise ValueError(f"{name}: the IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need "
                         f"{header_len} bytes, the file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[code]
    # Python ints: a product of four 32-bit sizes overflows NumPy's int64.
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        problem = "truncated" if got < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX data {problem}: dimensions {list(dims)} of "
                         f"{dtype.itemsize}-byte values need {expected} bytes after the "
                         f"header, the file has {got}")
    try:
        arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    except ValueError as exc:  # more dimensions than NumPy supports
        raise ValueError(f"{name}: the IDX header declares {ndim} dimensions, which "
                         f"NumPy cannot represent ({exc})") from None
    return arr.astype(dtype.newbyteorder("="))


def load_idx(images_path, labels_path=None):
    """Load images (and labels) in the IDX format of MNIST and Fashion-MNIST.

    An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
    dimensions), one big-endian 4-byte size per dimension, then the values in
    big-endian C order. Files may be gzipped; compression is recognised by the
    first bytes, not by the file name.

    Parameters
    ----------
    images_path : str or path-like
        The images file, shape (N, rows, cols) (any shape with N first is accepted).
    labels_path : str or path-like, optional
        The labels file, shape (N,).

    Returns
    -------
    X : ndarray of float64, shape (N, rows * cols)
        Pixel values as stored (0..255 for MNIST), one flattened image per row.
    y : ndarray of int64 (or float64 for a float labels file), shape (N,), or None

    Raises
    ------
    ValueError
        For a wrong magic number, a truncated header or body, dimensions that do not
        match the number of bytes, or label and image counts that disagree.
    """
    images = _read_idx(images_path, "images")
    name = os.fspath(images_path)
    if images.ndim < 2:
        raise ValueError(f"{name}: an images file needs at least 2 dimensions (N, ...), "
                         f"got shape {shape_str(images.shape)}")
    X = _as_features(images, "the images", name)
    if labels_path is None:
        return X, None
    labels = _read_idx(labels_path, "labels")
    lname = os.fspath(labels_path)
    if labels.ndim != 1:
        raise ValueError(f"{lname}: a labels file must be 1-D, got shape "
                         f"{shape_str(labels.shape)}")
    if labels.shape[0] != X.shape[0]:
        raise ValueError(f"{lname} holds {labels.shape[0]} labels but {name} holds "
                         f"{X.shape[0]} images")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError(f"{lname}: labels must be finite")
        return X, labels.astype(np.float64)
    return X, labels.astype(np.int64)


def _sniff(path):
    """Guess a file's format from its first bytes (after gunzipping)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == GZIP_MAGIC:
        with gzip.open(path, "rb") as fh:
            try:
                head = fh.read(4)
            except (EOFError, OSError, zlib.error):
                return None
    if head == _ZIP_MAGIC:
        return "npz"
    if len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES:
        return "idx"
    return None


def stored_row_shape(path) -> tuple[int, ...] | None:
    """The shape of one row of the features as an ``.npz`` (its ``X``) or an IDX images
    file stores them, before :func:`load_file` flattens them: ``(28, 28)`` for
    ``(N, 28, 28)`` images. Read from the headers only; None for another format or a
    file whose headers cannot be read (the load says why)."""
    try:
        kind = file_kind(path)
        if kind == "npz":
            with zipfile.ZipFile(path) as archive, archive.open("X.npy") as member:
                major, _ = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape = read_header(member)[0]
            return tuple(int(n) for n in shape[1:])
        if kind == "idx":
            with open(path, "rb") as raw:
                gzipped = raw.read(2) == GZIP_MAGIC
            with (gzip.open if gzipped else open)(path, "rb") as fh:
                head = fh.read(4)
                dims = struct.unpack(f">{head[3]}I", fh.read(4 * head[3]))
            return tuple(int(n) for n in dims[1:])
    except Exception:  # noqa: BLE001  (unknown: the load reports the file's problem)
        return None
    return None


def idx_labels_path(images_path):
    """The MNIST naming convention: ``*-images-idx3-ubyte[.gz]`` sits beside
    ``*-labels-idx1-ubyte[.gz]``. Returns the sibling if it exists, else None."""
    folder, base = os.path.split(os.fspath(images_path))
    if "images" not in base:
        return None
    candidate = base.replace("images", "labels").replace("idx3", "idx1")
    stem = candidate[:-3] if candidate.endswith(".gz") else candidate
    for name in (candidate, stem, stem + ".gz"):
        full = os.path.join(folder, name)
        if os.path.isfile(full):
            return full
    return None


def file_kind(path) -> str:
    """``"csv"``, ``"npz"`` or ``"idx"``: how :func:`load_file` will read ``path``.

    Decided from the name, else from the first bytes. Raises ``FileNotFoundError``
    for a missing file and ``ValueError`` for a directory or an unknown format.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory, expected a data file")
    lower = os.path.basename(name).lower()
    inner = lower[:-3] if lower.endswith(".gz") else lower
    if inner.endswith(".csv") or inner.endswith(".tsv"):
        return "csv"
    if lower.endswith(".npz"):
        return "npz"
    if "idx" in inner or inner.endswith((".idx", ".ubyte")) or lower.endswith(".gz"):
        return "idx"
    kind = _sniff(name)
    if kind is None:
        raise ValueError(f"{name}: cannot tell the file format; expected a .csv or .tsv, "
                         f"an .npz, or an IDX file (gzipped or not)")
    return kind


def load_file(path, label_column=None, *, labels_path=None, require_labels=True,
              feature_columns=None, categories=None, categorical=None, missing="raise"):
    """Load a data file, choosing the loader from the file name.

    ``.csv`` (or ``.csv.gz``) goes to :func:`load_csv` with ``label_column``; ``.npz``
    to :func:`load_npz`; a name containing ``idx`` or ending in ``.idx``, ``.ubyte`` or
    ``.gz`` to :func:`load_idx`. Any other name is recognised from the file's first
    bytes (a zip archive is ``.npz``, an IDX magic number is IDX).

    Parameters
    ----------
    path : str or path-like
    label_column : str, int or None
        CSV only: the label column's name or position.
    labels_path : str or path-like, optional
        IDX only: the labels file. When omitted for an MNIST-style name
        (``train-images-idx3-ubyte.gz``) the sibling ``train-labels-idx1-ubyte.gz`` is
        used if it exists.
    require_labels : bool, default=True
        Raise ``ValueError`` when no labels can be found; with False, ``y`` is None then.
    feature_columns : list of str, optional
        CSV only: the feature columns to read, by name and in this order (see
        :func:`load_csv`).
    categories : None, "auto" or dict, optional
        CSV only: columns of text read as category indices (see :func:`load_csv`);
        given, a third value is returned, the categories (``{}`` for other files).
    categorical : list of str, optional
        CSV only, with ``categories="auto"``: columns read as categories whatever they
        hold (see :func:`load_csv`).
    missing : {"raise", "nan"}, default="raise"
        CSV only: missing feature cells refused or read as NaN (see :func:`load_csv`).

    Returns
    -------
    X : ndarray of float64, shape (N, D)
    y : ndarray, shape (N,), or None
    categories : dict of str to list of str
        Only when ``categories`` is given: those of the columns read as category
        indices (``{}`` for a file other than CSV).
    """
    name = check_path(path, what="a file name (str or os.PathLike)")
    require_labels = check_bool(require_labels, "require_labels")
    kind = file_kind(name)
    if feature_columns is not None and kind != "csv":
        raise ValueError(f"{name}: feature_columns applies to CSV files only")
    if missing != "raise" and kind != "csv":
        raise ValueError(f"{name}: missing={missing!r} applies to CSV files only (the "
                         f"numbers of other files have no missing cells to read)")
    if kind == "csv":
        if label_column is None and require_labels:
            raise ValueError(f"{name}: a CSV file needs label_column (the name of the "
                             f"column holding the labels)")
        return load_csv(name, label_column, delimiter=csv_delimiter(name),
                        feature_columns=feature_columns, categories=categories,
                        categorical=categorical, missing=missing)
    if kind == "npz":
        X, y = load_npz(name, require_labels=require_labels)
    else:
        if labels_path is None:
            labels_path = idx_labels_path(name)
        if labels_path is None and require_labels:
            raise ValueError(f"{name}: an IDX images file needs its labels file "
                             f"(labels_path); none was given and no "
                             f"'*-labels-idx1-ubyte' file sits beside it")
        X, y = load_idx(name, labels_path)
    return (X, y) if categories is None else (X, y, {})


def fetch_openml(name, *, version="active", data_home=None):
    """Download a data set from openml.org through scikit-learn (needs the network).

    Parameters
    ----------
    name : str
        The OpenML data set name, e.g. ``"mnist_784"`` or ``"Fashion-MNIST"``.
    version : int or "active", default="active"
    data_home : str, optional
        scikit-learn's download cache folder.

    Returns
    -------
    X : ndarray of float64, shape (N, D)
    y : ndarray, shape (N,)
        The target column as OpenML gives it (often strings such as ``'7'``).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    from sklearn import datasets

    X, y = datasets.fetch_openml(name, version=version, data_home=data_home,
                                 return_X_y=True, as_frame=False, parser="auto")
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"OpenML data set {name!r} has non-numeric features (columns of "
                         f"text), which are read here as numbers only: save it as a CSV "
                         f"table, e.g. sklearn.datasets.fetch_openml({name!r}, "
                         f"as_frame=True).frame.to_csv('{name}.csv', index=False), and "
                         f"train on that file (chainrule train --data {name}.csv "
                         f"--label-column TARGET one-hot encodes its text columns; --impute "
                         f"fills its missing cells)") from None
    y = np.asarray(y).ravel()
    if y.dtype == object or y.dtype.kind in "US":
        # OpenML delivers nominal targets as Python objects ('7' for MNIST): read
        # numbers as numbers, keep other names as strings, never keep an object array.
        y = parse_labels([str(v).strip() for v in y.tolist()],
                         lambda i: f"OpenML data set {name!r}, row {i}")
    return X, y


