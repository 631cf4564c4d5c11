"""Data files read in row chunks, so that memory stays flat in the number of rows.

:func:`iter_csv` and :func:`iter_npz` yield ``(X, labels)`` chunks of at most
``chunk_rows`` rows, for predicting on or evaluating a file larger than memory (the
command line's ``predict`` and ``evaluate`` use them, with
:meth:`chainrule.models.Network.infer`). :func:`chainrule.data.load_csv` and
:func:`~chainrule.data.load_npz` stay the readers that return a whole file.

CSV is parsed by pandas' C parser when pandas is installed (``pip install
chainrule[csv]``; 1e6 rows x 10 features in 1.7 s, ten times faster), else by the
``csv`` module. Both give the same chunks: pandas reads only while its rows are beyond
doubt, and the ``csv``-module reader takes over at the first chunk that is not (a bad
cell or row, which it reports with the file, line and column; pandas' errors do not say
where, and pandas lets rows with missing or extra cells through).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import os
import zipfile

import numpy as np

from ._validation import (
    MISSING_CELLS,
    cell_count_error,
    check_choice,
    check_feature_columns,
    check_header_names,
    check_named_features,
    check_positive_int,
    csv_error_reason,
    csv_field_limit,
    csv_float,
    feature_cell_error,
    first_non_finite,
    is_number,
    missing_cell,
    without_trailing_delimiter,
)
from .categories import category, check_categories, code_of, index_maps
from .csvfiles import bad_feature_cell, not_utf8

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
    check_feature_columns(feature_columns)
    missing = [c for c in feature_columns if c not in columns]
    if missing:
        raise ValueError(f"{name}: no columns named {missing}; the header has {columns}")
    return [columns.index(c) for c in feature_columns]


def _chunk(name, rows, layout):
    """Rows of cells -> (X float64, labels as str or None); errors name line and column.
    The columns of the layout's codes hold category indices; with its ``missing_ok``, a
    missing cell is NaN (in a column of codes too)."""
    width, columns, label, features, codes, missing_ok = layout
    X = np.empty((len(rows), len(features)), dtype=np.float64)
    labels = []
    # float() reads "1_000", csv_float does not; calling it per cell costs a third more
    # time, so cells are looked at one by one only in a chunk with an underscore.
    number = csv_float if "_" in "".join(itertools.chain.from_iterable(
        row for _, row in rows)) else float
    if missing_ok:
        number = _or_nan(number)
    for r, (line, row) in enumerate(rows):
        if len(row) == width + 1:
            row = without_trailing_delimiter(row)
        if len(row) != width:
            raise cell_count_error(name, line, width, row)
        if label is not None:
            labels.append(row[label].strip())
        try:
            X[r] = ([number(row[i]) for i in features] if not codes else
                    [number(row[i]) if i not in codes else
                     code_of(row[i], codes[i], name, line, columns[i], missing_ok)
                     for i in features])
        except ValueError:
            # an earlier row's infinity first (the first bad cell by rows, as load_csv
            # names it), then this row's first bad cell in column order
            _refuse_non_finite(name, rows, X[:r], layout)
            c = next((i for i in features if bad_feature_cell(row[i], i in codes, missing_ok)),
                     None)
            if c is None:
                raise
            raise feature_cell_error(name, line, columns[c], row[c]) from None
    _refuse_non_finite(name, rows, X, layout)
    return X, (np.array(labels) if label is not None else None)


def _refuse_non_finite(name, rows, X, layout) -> None:
    """The error for the first entry of ``X`` (the first rows of ``rows``) that is not
    finite (a missing cell's NaN aside, with the layout's ``missing_ok``)."""
    _, columns, _, features, _, missing_ok = layout
    if (bad := first_non_finite(np.where(np.isnan(X), 0.0, X) if missing_ok else X)) \
            is not None:
        r, c = bad[0], features[bad[1]]
        raise feature_cell_error(name, rows[r][0], columns[c], rows[r][1][c])


def _or_nan(number):
    """``number`` (a cell -> float function) reading a missing cell as NaN."""
    def read(cell):
        return math.nan if missing_cell(cell.strip()) else number(cell)
    return read


def _layout(name, first, header, label_column, feature_columns, categories,
            missing_ok=False):
    """``(width, columns, label, features, codes, missing_ok)`` of a table whose first
    non-blank row is ``first``, its header checked: what both parsers read the rows by.
    ``codes``: the position of each column of ``categories`` -> its category -> index."""
    first = without_trailing_delimiter(first)
    width = len(first)
    columns = [c.strip() for c in first] if header else [str(i) for i in range(width)]
    if header:
        check_header_names(name, columns, label_column)
    label = _label_position(name, label_column, columns)
    features = _feature_positions(name, columns, label, feature_columns)
    if header:
        check_named_features(name, columns, features)
    codes = {}
    if categories:
        if not header:
            raise ValueError(f"{name}: categories needs a header (columns by name)")
        check_categories(categories, [columns[i] for i in features])
        codes = index_maps(categories, columns)
    return width, columns, label, features, codes, missing_ok


def _data_rows(name, reader):
    """``(line, cells)`` of the rows that are not blank; csv errors name the line."""
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise ValueError(f"{name}, line {reader.line_num}: not a readable CSV row "
                         f"({csv_error_reason(exc)})") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(name, exc) from None


def _iter_csv_module(name, path, label_column, delimiter, header, chunk_rows,
                     feature_columns=None, categories=None, missing_ok=False, *, skip=0,
                     layout=None):
    """The ``csv``-module reader; ``skip``: data rows already yielded (by pandas), with
    the ``layout`` they were read by."""
    with _open_text(path) as fh:
        rows = _data_rows(name, csv.reader(fh, delimiter=delimiter))
        with csv_field_limit():
            first = next(rows, None)
        if first is None:
            return
        if layout is None:
            layout = _layout(name, first[1], header, label_column, feature_columns,
                             categories, missing_ok)
        if not header:
            rows = itertools.chain([first], rows)
        # Rows are parsed inside csv_field_limit's block, and yielded outside it.
        with csv_field_limit():
            for _ in itertools.islice(rows, skip):
                pass
        while True:
            with csv_field_limit():
                chunk = list(itertools.islice(rows, chunk_rows))
            if not chunk:
                return
            yield _chunk(name, chunk, layout)


def _first_rows(path, delimiter):
    """The first two rows that are not blank, as the ``csv`` module reads them."""
    found = []
    with _open_text(path) as fh, csv_field_limit():
        for row in csv.reader(fh, delimiter=delimiter):
            if any(cell.strip() for cell in row):
                found.append(row)
                if len(found) == 2:
                    break
    return found


def _iter_pandas(pd, name, path, label_column, delimiter, header, chunk_rows,
                 feature_columns=None, categories=None, missing_ok=False):
    """Chunks read by pandas' C parser, as long as it reads rows as the ``csv`` module
    does; returns None at the end, else ``(rows yielded, layout)`` for it to go on."""
    try:
        found = _first_rows(path, delimiter)
    except (csv.Error, UnicodeDecodeError):
        return 0, None  # the csv-module reader says where
    if not found:
        return 0, None
    layout = _layout(name, found[0], header, label_column, feature_columns, categories,
                     missing_ok)
    width, _, label, features, codes, _ = layout
    # Lines that end in a delimiter: one more column, which must stay empty.
    data = found[1] if header and len(found) > 1 else found[0]
    extra = int(len(data) == width + 1 and not data[-1].strip())
    if header and len(found) > 1 and len(found[1]) != width + extra:
        return 0, layout  # pandas would drop the extra cells of a first row (index_col=False)
    # The C parser converts the feature columns itself (dtype=float64): that is its
    # speed. Every column is read (usecols would let a row with extra cells through),
    # and an empty or missing cell reads as NaN: na_values=[""], nothing else. Columns
    # left unread are parsed as numbers too when the first row holds numbers there
    # (3x faster than as text: 200,000 x 20, half the columns read, 0.20 s against
    # 0.61); a later text cell in one hands over to the csv module, which reads it.
    skipped = [i for i in range(width) if i not in features and i != label]
    numbers = all(is_number(data[i]) for i in skipped if i < len(data))
    dtype = {i: (np.float64 if i in features and i != label and i not in codes
                 or i in skipped and numbers else str) for i in range(width + extra)}
    done = 0
    try:
        reader = pd.read_csv(path, sep=delimiter, header=0 if header else None,
                             names=list(range(width + extra)), index_col=False, dtype=dtype,
                             chunksize=chunk_rows, engine="c", skip_blank_lines=True,
                             keep_default_na=False, compression="infer",
                             na_values=_na_values(width + extra, features, missing_ok))
        with reader:
            for frame in reader:
                X = _frame_features(frame, features, codes)
                # A short row reads as NaN in its last column (pandas fills in what is
                # missing); an empty cell anywhere, a non-finite or blank row likewise
                # (with missing_ok, NaN is a missing cell, which the check lets through).
                if not (np.isfinite(X).all() or missing_ok and not np.isinf(X).any()) or \
                        frame[width - 1].isna().any() or (
                        label is not None and frame[label].isna().any()) or (
                        extra and not frame[width].isna().all()):
                    return done, layout
                labels = (frame[label].str.strip().to_numpy(dtype=str)
                          if label is not None else None)
                yield X, labels
                done += X.shape[0]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return done, layout
    return None


def _na_values(width: int, features, missing_ok: bool):
    """pandas' ``na_values``: an empty cell in every column; with ``missing_ok`` also the
    other missing spellings, in the feature columns only (an extra trailing cell or a
    label of "NA" must stay text for the checks)."""
    if not missing_ok:
        return [""]
    return {i: sorted(MISSING_CELLS) if i in features else [""] for i in range(width)}


def _frame_features(frame, features, codes):
    """A pandas chunk's feature columns as float64, those of ``codes`` as category
    indices (-1 for a category not among them; NaN for a missing cell, which hands the
    chunk over to the csv module, which names it, unless missing cells are taken)."""
    if not codes:
        return frame[features].to_numpy(np.float64)

    def indices(i):
        text = frame[i].fillna("").str.strip()
        missing = text.map(missing_cell).to_numpy(bool)
        found = text.map(codes[i])
        other = found.isna()   # not as written: by value, as code_of (1.0 is 1)
        if other.any():
            found[other] = text[other].map(lambda t: codes[i].get(category(t), -1))
        return np.where(missing, np.nan, found.to_numpy(np.float64))
    columns = [indices(i) if i in codes else frame[i].to_numpy(np.float64) for i in features]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def iter_csv(path, label_column=None, *, delimiter=",", header=True, chunk_rows=CHUNK_ROWS,
             feature_columns=None, categories=None, missing="raise"):
    """Yield a CSV file's rows in chunks: ``(X, labels)`` of at most ``chunk_rows`` rows.

    Both parsers read the same rows: pandas' chunks are checked (no empty, missing or
    extra cell, no non-finite value), and from the first chunk that fails the check on,
    the ``csv``-module reader goes on, reporting the bad row or reading what pandas
    refuses but it accepts (rows of empty cells, which both skip). An empty cell in a
    last column that is not read (``feature_columns``) also hands over to it (pandas
    cannot tell an empty cell from a missing one): such a file is read ten times slower.

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
    categories : dict of str to list of str, optional
        Read the columns it names as category indices (:mod:`chainrule.categories`),
        -1 for a cell among none of its categories.
    missing : {"raise", "nan"}, default="raise"
        A missing feature cell refused, or read as NaN (in a column of categories too),
        as :func:`chainrule.data.load_csv` reads it.

    Yields
    ------
    X : ndarray of float64, shape (n, D)
    labels : ndarray of str, shape (n,), or None
        The label cells as text (stripped), for the caller to map to classes.

    Raises
    ------
    ValueError
        Naming the file, and the line and column of a bad cell or the line of a row
        with too many or too few cells, as :func:`chainrule.data.load_csv` does.
        Chunks before the bad one have already been yielded.
    """
    name = os.fspath(path)
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    args = (name, path, label_column, delimiter, header, chunk_rows, feature_columns,
            categories, check_choice(missing, "missing", ("raise", "nan")) == "nan")
    try:
        import pandas as pd
    except ImportError:  # the documented fallback: the csv module
        yield from _iter_csv_module(*args)
        return
    rest = yield from _iter_pandas(pd, *args)
    if rest is not None:
        skip, layout = rest
        yield from _iter_csv_module(*args, skip=skip, layout=layout)


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
