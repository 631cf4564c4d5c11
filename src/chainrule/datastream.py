"""Data files read in row chunks, so that memory stays flat in the number of rows.

:func:`iter_csv` and :func:`iter_npz` yield ``(X, labels)`` chunks of at most
``chunk_rows`` rows, for predicting on or evaluating a file larger than memory (the
command line's ``predict`` and ``evaluate`` use them, with
:meth:`chainrule.models.Network.infer`). :func:`chainrule.data.load_csv` and
:func:`~chainrule.data.load_npz` stay the readers that return a whole file.

CSV is parsed by pandas' C parser when pandas is installed (``pip install
chainrule[csv]``; 1e6 rows x 10 features in 1.7 s, ten times faster), else by the
``csv`` module. Both give the same chunks; a bad cell is reported with the file, line and
column by the ``csv``-module reader in both cases (pandas' errors do not say where).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile

import numpy as np

from ._validation import check_header_names, check_positive_int, is_number

__all__ = ["iter_csv", "iter_npz", "CHUNK_ROWS"]

#: Rows per chunk by default: 10 features of float64 make 5 MB.
CHUNK_ROWS = 65536


def _open_text(path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _label_position(name, label_column, columns):
    if label_column is None or isinstance(label_column, int):
        if label_column is not None and not 0 <= label_column < len(columns):
            raise ValueError(f"{name}: label_column={label_column} is out of range for "
                             f"{len(columns)} columns")
        return label_column
    if label_column not in columns:
        raise ValueError(f"{name}: no column named {label_column!r}; the header has "
                         f"{columns}")
    return columns.index(label_column)


def _feature_positions(name, columns, label, feature_columns):
    """Positions of the feature columns: those named (in that order), else all but the
    label column."""
    if feature_columns is None:
        return [i for i in range(len(columns)) if i != label]
    missing = [c for c in feature_columns if c not in columns]
    if missing:
        raise ValueError(f"{name}: no columns named {missing}; the header has {columns}")
    return [columns.index(c) for c in feature_columns]


def _chunk(name, rows, width, label, columns, features):
    """Rows of cells -> (X float64, labels as str or None); errors name line and column."""
    X = np.empty((len(rows), len(features)), dtype=np.float64)
    labels = []
    for r, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{name}, line {line}: expected {width} cells, got {len(row)}")
        if label is not None:
            labels.append(row[label].strip())
        try:
            X[r] = [float(row[i]) for i in features]
        except ValueError:
            c = next(i for i in features if not is_number(row[i]))
            raise ValueError(f"{name}, line {line}, column {columns[c]!r}: expected a "
                             f"number, got {row[c]!r}") from None
    if not np.isfinite(X).all():
        r = int(np.argwhere(~np.isfinite(X))[0][0])
        raise ValueError(f"{name}, line {rows[r][0]}: feature values must be finite")
    return X, (np.array(labels) if label is not None else None)


def _iter_csv_module(name, path, label_column, delimiter, header, chunk_rows,
                     feature_columns=None):
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        rows, columns, label, width = [], None, None, None
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if width is None:
                    width = len(row)
                    columns = ([c.strip() for c in row] if header
                               else [str(i) for i in range(width)])
                    if header:
                        check_header_names(name, columns)
                    label = _label_position(name, label_column, columns)
                    features = _feature_positions(name, columns, label, feature_columns)
                    if header:
                        continue
                rows.append((reader.line_num, row))
                if len(rows) == chunk_rows:
                    yield _chunk(name, rows, width, label, columns, features)
                    rows = []
        except csv.Error as exc:
            raise ValueError(f"{name}, line {reader.line_num}: not a readable CSV row "
                             f"({exc})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: not a UTF-8 text file ({exc.reason})") from None
        if rows:
            yield _chunk(name, rows, width, label, columns, features)


def _iter_pandas(pd, name, path, label_column, delimiter, header, chunk_rows,
                 feature_columns=None):
    head = pd.read_csv(path, sep=delimiter, header=0 if header else None, nrows=1,
                       dtype=str, compression="infer")
    columns = [str(c).strip() for c in head.columns]
    if header:  # as written: pandas renames a repeated name ("a" -> "a.1")
        first = pd.read_csv(path, sep=delimiter, header=None, nrows=1, dtype=str,
                            compression="infer", keep_default_na=False)
        written = [str(c).strip() for c in first.iloc[0]]
        check_header_names(name, written)
    label = _label_position(name, label_column, columns)
    features = [head.columns[i] for i in _feature_positions(name, columns, label,
                                                            feature_columns)]
    # The C parser converts the feature columns itself (dtype=float64): that is its
    # speed. na_filter=False turns an empty cell into an error, not a NaN. Columns
    # that are neither features nor the label are not read (they need not be numbers).
    dtype = {c: (str if i == label else np.float64) for i, c in enumerate(head.columns)
             if i == label or c in features}
    reader = pd.read_csv(path, sep=delimiter, header=0 if header else None, dtype=dtype,
                         usecols=list(dtype), chunksize=chunk_rows, engine="c",
                         skip_blank_lines=True, na_filter=False, compression="infer")
    with reader:
        for frame in reader:
            X = frame[features].to_numpy(np.float64)
            if not np.isfinite(X).all():
                raise ValueError("non-finite cell")   # located by the csv-module reader
            # By name: the frame holds only the columns read, so positions moved.
            labels = (frame[head.columns[label]].str.strip().to_numpy(dtype=str)
                      if label is not None else None)
            yield X, labels


def iter_csv(path, label_column=None, *, delimiter=",", header=True, chunk_rows=CHUNK_ROWS,
             feature_columns=None):
    """Yield a CSV file's rows in chunks: ``(X, labels)`` of at most ``chunk_rows`` rows.

    Parameters
    ----------
    path : str or path-like
        The file; it may be gzipped.
    label_column : str, int or None
        The label column (name or 0-based position), or None for features only.
    delimiter : str, default=","
    header : bool, default=True
    chunk_rows : int, default=CHUNK_ROWS
    feature_columns : list of str, optional
        Read these columns, by header name, as the features, in this order, and skip
        the others (which then need not be numeric), as :func:`chainrule.data.load_csv`
        does. Default: every column but the label column, in file order.

    Yields
    ------
    X : ndarray of float64, shape (n, D)
    labels : ndarray of str, shape (n,), or None
        The label cells as text (stripped), for the caller to map to classes.

    Raises
    ------
    ValueError
        Naming the file, and the line and column of a bad cell, as
        :func:`chainrule.data.load_csv` does. Chunks before the bad one have already
        been yielded.
    """
    name = os.fspath(path)
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    try:
        import pandas as pd
    except ImportError:  # the documented fallback: the csv module
        yield from _iter_csv_module(name, path, label_column, delimiter, header, chunk_rows,
                                    feature_columns)
        return
    done = 0
    try:
        for X, labels in _iter_pandas(pd, name, path, label_column, delimiter, header,
                                      chunk_rows, feature_columns):
            done += X.shape[0]
            yield X, labels
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        if str(exc).startswith(name):
            raise
        # pandas does not say where: the csv-module reader finds the line and column.
        for _ in _iter_csv_module(name, path, label_column, delimiter, header,
                                  chunk_rows, feature_columns):
            pass
        raise ValueError(f"{name}: not a readable CSV table ({exc})") from None


def iter_npz(path, *, chunk_rows=CHUNK_ROWS):
    """Yield the rows of array ``X`` (and ``y`` if stored) of an ``.npz`` file in chunks.

    An uncompressed C-order entry is read ``chunk_rows`` rows at a time from the
    archive, never whole; a compressed or Fortran-order one is read whole (NumPy
    cannot stream it), then cut.

    Yields
    ------
    X : ndarray of float64, shape (n, D)
        Rows flattened as :func:`chainrule.data.load_npz` flattens them.
    y : ndarray, shape (n,), or None
    """
    name = os.fspath(path)
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    fmt = np.lib.format
    try:
        with zipfile.ZipFile(path) as zf:
            if "X.npy" not in zf.namelist():
                raise ValueError(f"{name}: the archive has no array named 'X'")
            y = None
            if "y.npy" in zf.namelist():
                with zf.open("y.npy") as fh:
                    y = fmt.read_array(fh, allow_pickle=False).reshape(-1)
            with zf.open("X.npy") as fh:
                version = fmt.read_magic(fh)
                read_header = (fmt.read_array_header_1_0 if version == (1, 0)
                               else fmt.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                if dtype.hasobject or dtype.kind not in "biuf" or len(shape) < 2:
                    raise ValueError(f"{name}: X must be a real numeric array with one "
                                     f"row per sample (2-D or more), got {dtype} "
                                     f"{shape}")
                n, row = shape[0], int(np.prod(shape[1:], dtype=np.int64))
                if y is not None and y.shape[0] != n:
                    raise ValueError(f"{name}: X has {n} rows but y has {y.shape[0]}")
                whole = None
                if fortran:  # column-major: the rows are not contiguous in the file
                    fh.seek(0)
                    whole = fmt.read_array(fh, allow_pickle=False)
                for start in range(0, n, chunk_rows):
                    k = min(chunk_rows, n - start)
                    if whole is None:
                        data = fh.read(k * row * dtype.itemsize)
                        X = np.frombuffer(data, dtype=dtype).reshape(k, row)
                    else:
                        X = whole.reshape(n, row)[start:start + k]
                    X = X.astype(np.float64)
                    if not np.isfinite(X).all():
                        raise ValueError(f"{name}: X holds NaN or infinite values "
                                         f"(in rows {start} to {start + k - 1})")
                    yield X, None if y is None else y[start:start + k]
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name}: not a readable .npz archive ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise ValueError(f"{name}: not a readable .npz archive ({exc})") from None
