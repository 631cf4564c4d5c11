"""Reading CSV files whole: :func:`load_csv`, :func:`csv_header`, and the rules every
chainrule reader of tables shares (how labels are parsed, which delimiter a file name
implies, how a gzipped file is recognised).

A file that cannot be read as promised raises ``ValueError`` naming the path, and the
line and column of a bad cell. :mod:`chainrule.datafiles` re-exports every public
name, and :mod:`chainrule.data` those in turn: ``chainrule.data.load_csv`` is the
documented way in. :mod:`chainrule.datastream` reads the same files in row chunks.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import gzip
import io
import math
import os
import warnings
import zlib

import numpy as np

from ._validation import (
    cell_count_error,
    cell_text,
    check_bool,
    check_choice,
    check_feature_columns,
    check_header_names,
    check_named_features,
    check_path,
    csv_error_reason,
    csv_field_limit,
    csv_float,
    feature_cell_error,
    is_number,
    missing_cell,
    without_trailing_delimiter,
)
from .categories import (
    check_categories,
    code_of,
    column_codes,
    index_maps,
    is_text_column,
    learn_categories,
)

__all__ = ["not_utf8", "load_csv", "csv_header", "csv_delimiter", "parse_labels", "read_bytes",
           "GZIP_MAGIC"]

#: The first bytes of a gzip stream: they, not a file's name, say it is compressed.
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic bytes.

    The magic bytes decide, not the file name: ``train-images-idx3-ubyte`` may or may
    not be compressed whatever it is called.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{os.fspath(path)}: the gzip data is truncated or corrupt "
                             f"({exc})") from None
    return raw


def parse_labels(cells, where=None):
    """Labels as ints when every cell is an integer, else floats, else strings.

    A missing cell (one pandas reads as missing: "", "NA", "nan", ...) or an infinite
    number raises ``ValueError`` naming ``where(i)``, the place of the first such cell
    ``i`` (default: "label i").
    """
    where = where or (lambda i: f"label {i}")
    missing = next((i for i, c in enumerate(cells) if missing_cell(c)), None)
    if missing is not None:
        what = ("is empty" if cells[missing] == "" else f"is missing ("
                f"{cell_text(cells[missing])}, a missing value as pandas reads it)")
        raise ValueError(f"{where(missing)}: the label cell {what}; leave out the rows "
                         f"without a label")
    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except ValueError:
        pass
    try:
        values = np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=str)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{where(int(bad[0]))}: labels must be finite numbers or class "
                         f"names, got {cell_text(cells[bad[0]])}")
    return values


def _label_index(name, label_column, columns, width):
    """The label column's position (None without one), from its name or signed position."""
    if label_column is None:
        return None
    if isinstance(label_column, str):
        if label_column not in columns:
            raise ValueError(f"{name}: no column named {label_column!r}; the header has "
                             f"{columns}")
        if columns.count(label_column) > 1:
            raise ValueError(f"{name}: the header names {label_column!r} more than once")
        return columns.index(label_column)
    label_index = int(label_column)
    if not -width <= label_index < width:
        raise ValueError(f"{name}: label_column={label_column} is out of range for "
                         f"{width} columns")
    return label_index % width


def not_utf8(name, exc: UnicodeDecodeError) -> ValueError:
    """The error for a text file that is not UTF-8, with the usual way out: Excel's
    plain "CSV" and "Unicode Text" are cp1252 and UTF-16."""
    return ValueError(f"{name}: not a UTF-8 text file ({exc.reason} at byte {exc.start}): "
                      f"save it as UTF-8 (in Excel, 'CSV UTF-8 (Comma delimited)'), or "
                      f"convert it, e.g. iconv -f cp1252 -t utf-8")


def _csv_rows(path, delimiter):
    """``[(line number, cells), ...]`` of the non-empty rows of a CSV file."""
    name = os.fspath(path)
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(name, exc) from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    # reader.line_num after each row is its last physical line (quoted cells may span lines).
    try:
        with csv_field_limit():  # a cell over 128 KiB, e.g. in a column left unread
            # (the first cell decides most rows: blank rows are rare)
            rows = [(reader.line_num, row) for row in reader
                    if (row and row[0].strip()) or any(cell.strip() for cell in row)]
    except csv.Error as exc:  # a bare CR, a quote left open...
        raise ValueError(f"{name}, line {reader.line_num}: not a readable CSV row "
                         f"({csv_error_reason(exc)})") from None
    if not rows:
        raise ValueError(f"{name}: the file holds no rows")
    return rows


def csv_header(path, *, delimiter=None) -> list[str]:
    """The column names in the first non-empty row of a CSV file, stripped.

    ``delimiter`` defaults to a tab for ``.tsv`` (or ``.tsv.gz``) names, else a comma,
    as :func:`load_file` reads them. Raises ``ValueError`` naming the path for an empty
    or non-UTF-8 file.
    """
    if delimiter is None:
        delimiter = csv_delimiter(os.fspath(path))
    name = os.fspath(path)
    # Only the first rows are read: the header of a 1e6-row file must not cost the file.
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh, csv_field_limit():
            for row in csv.reader(fh, delimiter=delimiter):
                if any(cell.strip() for cell in row):
                    return [c.strip() for c in without_trailing_delimiter(row)]
    except UnicodeDecodeError as exc:
        raise not_utf8(name, exc) from None
    except (csv.Error, OSError, EOFError) as exc:
        raise ValueError(f"{name}: not a readable CSV header ({csv_error_reason(exc)})") from None
    raise ValueError(f"{name}: the file holds no rows")


def csv_delimiter(name) -> str:
    """The delimiter of a file named ``name``: a tab for ``.tsv`` (``.gz`` too), else ","."""
    lower = os.path.basename(name).lower()
    inner = lower[:-3] if lower.endswith(".gz") else lower
    return "\t" if inner.endswith(".tsv") else ","


def _feature_indices(name, columns, label_index, feature_columns, width):
    """Positions of the feature columns, in the order the features are returned."""
    if feature_columns is None:
        return [c for c in range(width) if c != label_index]
    if columns is None:
        raise ValueError("feature_columns needs a header row (header=True)")
    check_feature_columns(feature_columns)
    missing = [f for f in feature_columns if f not in columns]
    if label_index is not None and columns[label_index] in feature_columns:
        raise ValueError(f"{name}: the label column {columns[label_index]!r} cannot also be "
                         f"a feature column")
    if missing:
        raise ValueError(f"{name}: no column named {missing[0]!r}; the header has {columns}")
    return [columns.index(f) for f in feature_columns]


def load_csv(path, label_column=None, *, delimiter=",", header=True, feature_columns=None,
             categories=None, categorical=None, missing="raise"):
    """Load a table of features (numbers, and with ``categories`` text) and one label
    column from a CSV file.

    Parameters
    ----------
    path : str or path-like
        The file; it may be gzipped (recognised by its first bytes).
    label_column : str, int or None
        The label column: its name in the header row, or its 0-based position. ``None``
        reads every column as a feature and returns ``y=None`` (data to predict on).
    delimiter : str, default=","
    header : bool, default=True
        Whether the first non-empty row holds the column names. Without a header the
        label column must be given by position.
    feature_columns : list of str, optional
        Read these columns, by header name, as the features, in this order, and skip
        every other column (which then need not be numeric). Default: every column
        but the label column, in file order.
    categories : None, "auto" or dict of str to list of str
        Columns of text (:mod:`chainrule.categories`): None refuses them; ``"auto"``
        reads each feature column holding text as codes of its sorted distinct cells;
        a dict reads the columns it names as codes of its categories (-1 for a cell
        among none of them). Needs a header.
    categorical : list of str, optional
        With ``categories="auto"``: feature columns read as categories whatever they
        hold, numbers included (codes such as a zip code; cells compare as text).
    missing : {"raise", "nan"}, default="raise"
        A missing feature cell (one pandas reads as missing: "", "NA", "nan", "NULL",
        ...; in a column of numbers, a NaN of any spelling): refused (``"raise"``), or
        read as NaN, in a column of categories too,
        where it is no category (``"nan"``: for an imputer, e.g. ``chainrule train
        --impute`` or scikit-learn's ``SimpleImputer``). A missing label is refused
        either way.

    Returns
    -------
    X : ndarray of float64, shape (N, D)
        The feature columns.
    y : ndarray, shape (N,), or None
        The label column: int64 when every label is an integer, float64 when every
        label is a number, strings otherwise.
    categories : dict of str to list of str
        Only when ``categories`` is given: the categories of each column read as codes
        (those found, for ``"auto"``), for :func:`chainrule.categories.one_hot_columns`.

    Raises
    ------
    ValueError
        For an empty file, a missing label column, rows with a different number of
        cells than the header, or a feature cell that is not a finite number (not
        a category's, with ``categories``: then a missing cell, a column that mixes
        numbers and text, or one of more than
        :data:`~chainrule.categories.MAX_CATEGORIES` categories). The message names
        the path, and the line and column of a bad cell.
    TypeError
        For ``categories`` other than None, ``"auto"`` or a dict of lists of names.
    """
    name = check_path(path, what="a file name (str or os.PathLike)")
    header = check_bool(header, "header")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    if label_column is not None and not isinstance(label_column, (str, int, np.integer)) \
            or isinstance(label_column, bool):
        raise TypeError(f"label_column must be a column name (str), a position (int) or "
                        f"None, got {type(label_column).__name__}")
    if isinstance(label_column, str) and not header:
        raise ValueError(f"label_column={label_column!r} is a name, but header=False: "
                         f"give the label column's position as an int instead")
    missing_ok = check_choice(missing, "missing", ("raise", "nan")) == "nan"
    with _collector_paused():
        return _load_csv(path, name, label_column, delimiter, header, feature_columns,
                         categories, categorical, missing_ok)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a table is read: its cells are
    millions of new strings and tuples, none of them in a cycle, and each of the
    collector's passes walks all of them (a 200,000-row table: 1 s of 4.5)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_csv(path, name, label_column, delimiter, header, feature_columns, categories,
              categorical, missing_ok=False):
    """:func:`load_csv` after its argument checks."""
    rows = _csv_rows(path, delimiter)
    if header:
        columns = [c.strip() for c in without_trailing_delimiter(rows.pop(0)[1])]
        check_header_names(name, columns, label_column, stacklevel=4)   # (load_csv's caller)
        if not rows:
            raise ValueError(f"{name}: the file holds a header row but no data rows")
    else:
        columns = None
    width = len(columns) if header else len(without_trailing_delimiter(rows[0][1]))
    if any(len(row) == width + 1 for _, row in rows):   # (rebuilt only when needed)
        rows = [(line, without_trailing_delimiter(row) if len(row) == width + 1 else row)
                for line, row in rows]

    label_index = _label_index(name, label_column, columns, width)
    if label_index is not None and width < 2:
        raise ValueError(f"{name}: the file has a single column, so no features besides "
                         f"the label column")
    features = _feature_indices(name, columns, label_index, feature_columns, width)
    if header:
        check_named_features(name, columns, features)
    for line, row in rows:
        if len(row) != width:
            raise cell_count_error(name, line, width, row,
                                   f" (as in the {'header' if header else 'first row'})")
    labels = [] if label_index is None else [row[label_index].strip() for _, row in rows]
    X, found = _features(rows, features, name, columns, categories, categorical, missing_ok)
    y = None if label_index is None else parse_labels(
        labels, lambda i: f"{name}, line {rows[i][0]}")
    return (X, y) if categories is None else (X, y, found)


def _features(rows, features, name, columns, categories, categorical=None,
              missing_ok=False) -> tuple:
    """``(X, categories)``: the feature array, the columns of ``categories`` (those it
    names, or for ``"auto"`` every column of text and those ``categorical`` names) as
    category indices, and their categories (``{}`` for none); missing cells NaN and -1
    with ``missing_ok``."""
    if categorical is not None and categories != "auto":
        raise ValueError(f"categorical={categorical!r} needs categories='auto'")
    cells = _column_cells(rows, features)
    numbers: dict = {}
    if not categories:   # None or {}
        return _feature_array(rows, cells, features, name, columns, {},
                              missing_ok=missing_ok), {}
    if columns is None:
        raise ValueError(f"{name}: categories needs a header (columns by name)")
    if categories == "auto":
        forced = _categorical_positions(categorical, features, name, columns)
        categories, numbers = _text_columns(rows, cells, features, name, columns, forced,
                                            missing_ok)
    else:
        check_categories(categories, [columns[c] for c in features])
    codes = index_maps(categories, columns)
    return (_feature_array(rows, cells, features, name, columns, codes, numbers, missing_ok),
            categories)


def _column_cells(rows, features) -> dict:
    """Each feature column's cells (a tuple per position), in one transposition: the
    readers below look at a table a column at a time."""
    every = list(zip(*(row for _, row in rows), strict=True))
    return {c: every[c] for c in features}


def _categorical_positions(categorical, features, name, columns) -> set:
    """The positions of the feature columns ``categorical`` names."""
    if categorical is None:
        return set()
    check_feature_columns(categorical)
    unknown = [c for c in categorical if c not in [columns[i] for i in features]]
    if unknown:
        raise ValueError(f"{name}: categorical names {unknown}, which are not among the "
                         f"feature columns")
    return {columns.index(c) for c in categorical}


def _text_columns(rows, cells, features, name, columns, forced=(),
                  missing_ok=False) -> tuple[dict, dict]:
    """``(categories, numbers)``: the categories of each feature column of text, and of
    those at the ``forced`` positions (:mod:`chainrule.categories`); the columns read as
    numbers on the way, by position, so that they are converted once. ``cells``:
    position -> the column's cells."""
    lines = [line for line, _ in rows]
    found, numbers = {}, {}
    for c in features:
        if c not in forced:
            try:
                numbers[c] = np.array(cells[c], dtype=np.float64)
                continue
            except ValueError:
                pass
        if c in forced or is_text_column(cells[c], name, columns[c], lines):
            found[columns[c]] = learn_categories(cells[c], name, columns[c], lines,
                                                 named=c in forced, missing_ok=missing_ok)
    _warn_if_header_is_data(name, found)
    return found, numbers


def _warn_if_header_is_data(name, categories) -> None:
    """A column of text whose name is one of its own categories: the header row is
    likely the file's first row of data (a file without a header)."""
    named = [k for k, v in categories.items() if k in v]
    if named:
        warnings.warn(f"{name}: the columns {named} have their names among their own "
                      f"values; if the file has no header row, its first row of data is "
                      f"being read as the column names and left out", UserWarning,
                      stacklevel=6)   # load_csv's caller


def _feature_array(rows, cells, features, name, columns, codes, numbers=None,
                   missing_ok=False):
    """The feature cells (``cells``: position -> the column's cells) as a float64
    array, the columns of ``codes`` (position -> category -> index) as category
    indices, a column at a time (``numbers``: columns already converted, by position);
    the first bad cell by rows (a missing category or a bad number; within a row, by
    column) is reported by line and column, as the stream reader reports it. With
    ``missing_ok`` a missing cell is NaN (in a column of codes too) and not a bad one."""
    X = np.zeros((len(rows), len(features)), dtype=np.float64)   # (a refused column stays 0)
    missing = []   # (row, column order) of each coded column's first missing cell
    bad = False
    for j, c in enumerate(features):
        if c in codes:
            values, row = column_codes(cells[c], codes[c], missing_ok)
            if row >= 0:
                missing.append((row, j))
            else:
                X[:, j] = values
            continue
        try:
            X[:, j] = numbers[c] if numbers and c in numbers else _numbers(cells[c],
                                                                           missing_ok)
            # NumPy reads "1_000" as float() does; csv_float refuses it (slow path).
            bad = bad or "_" in "".join(cells[c])
        except ValueError:
            bad = True
    # (slow, only to find the first bad number; with missing_ok, NaN is a missing cell)
    if bad or not (np.isfinite(X).all() or missing_ok and not np.isinf(X).any()):
        missing.append(_first_bad_number(rows, features, codes, missing_ok))
    if not missing:
        return X
    row, j = min(missing)
    c, (line, cells_of_row) = features[j], rows[row]
    if c in codes:
        code_of(cells_of_row[c], codes[c], name, line, columns[c])   # raises
    _number(cells_of_row[c], name, line, columns[c] if columns is not None else c)
    raise AssertionError("unreachable: a cell failed to convert but none was found")


def _numbers(cells, missing_ok: bool) -> np.ndarray:
    """A numeric column's cells as float64 (``ValueError`` for any that is not a number),
    missing ones as NaN with ``missing_ok``."""
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        if not missing_ok:
            raise
    return np.array(["nan" if missing_cell(c.strip()) else c for c in cells], dtype=np.float64)


def bad_feature_cell(cell: str, coded: bool, missing_ok: bool = False) -> bool:
    """Whether a feature cell is refused: a missing one (unless ``missing_ok``), or in a
    column of numbers (not ``coded``: a category's is never bad) one that is no finite
    number. The one rule of every CSV reader."""
    text = cell.strip()
    if missing_cell(text):
        return not missing_ok
    return not coded and not (is_number(text) and math.isfinite(csv_float(text)))


def _first_bad_number(rows, features, codes, missing_ok=False) -> tuple[int, int]:
    """``(row, column order)`` of the first cell of a numeric column, by rows, that
    :func:`bad_feature_cell` refuses."""
    for i, (_, row) in enumerate(rows):
        for j, c in enumerate(features):
            if c not in codes and bad_feature_cell(row[c], False, missing_ok):
                return i, j
    raise AssertionError("unreachable: a cell failed to convert but none was found")


def _number(cell, name, line, column) -> float:
    """A feature cell as a finite float; else ValueError naming line and column."""
    try:
        value = csv_float(cell)
    except ValueError:
        raise feature_cell_error(name, line, column, cell) from None
    if not math.isfinite(value):
        raise feature_cell_error(name, line, column, cell)
    return value
