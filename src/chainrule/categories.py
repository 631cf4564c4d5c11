"""Columns of text in a table as one-hot features: the one encoding every CSV reader and
``chainrule train``/``predict``/``evaluate`` share.

A feature column is *categorical* when its cells are text (``"red"``, ``"Private"``),
none of them a number. Its categories are its distinct cells
(stripped), sorted; a reader given them writes each cell as its category's index, a
*code* (-1 for a category not among them), and :func:`one_hot_columns` turns each code
column into one 0/1 column per category, as scikit-learn's ``OneHotEncoder(
handle_unknown='ignore')`` does: an unknown category is all zeros. A missing cell is
refused, as in a numeric column, unless the reader is told ``missing="nan"``: then its
code is NaN (told apart from an unknown category; all zeros one-hot too), and it is
never one of the categories learned.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from ._validation import csv_float, feature_cell_error, is_number, missing_cell

__all__ = ["MAX_CATEGORIES", "MAX_NAMED_CATEGORIES", "category", "is_text_column",
           "learn_categories", "code_of", "column_codes", "distinct_cells", "index_maps",
           "one_hot_columns", "one_hot_names", "check_categories", "check_fits",
           "training_categories", "count_unseen", "warn_unseen"]

#: The most categories a column of text may have: more is an identifier or free text,
#: which a network cannot learn from as categories (and whose columns would swamp the
#: rest). A column named categorical (train --categorical) may have up to
#: :data:`MAX_NAMED_CATEGORIES`.
MAX_CATEGORIES = 100
MAX_NAMED_CATEGORIES = 1000

#: A date or a time as tables write them: 2024-03-01, 2024/03/01 12:30, 3/1/2024, 01.03.24.
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?Z?"
                   r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?")

#: A number written for people: thousands separators (60,000; 1.234.567; 1 234), a
#: decimal comma (54,5), a currency or a percent sign ($54, 12%).
_FORMATTED_NUMBER = re.compile(
    r"[-+]?[$\u20ac\u00a3\u00a5]?\s?"                                 # a currency sign
    r"(\d{1,3}(?:[,.' \u00a0]\d{3})+(?:[.,]\d+)?|\d+,\d+|\d+(?:\.\d+)?)"   # the digits
    r"\s?%?")


def category(text: str) -> str:
    """A stripped cell as its category: a number as its value's shortest text, so that
    ``"1"``, ``"1.0"`` and ``"1e0"`` are the category ``"1"`` (pandas writes a column
    of codes as ``1.0`` once it held a NaN); any other text as it is."""
    if not is_number(text):
        return text
    try:
        return str(int(text))   # an integer exactly, however long (an ID; "007" is 7)
    except ValueError:
        value = csv_float(text)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _count(k: int) -> str:
    return f"{k} cell{'' if k == 1 else 's'}"


def distinct_cells(cells) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """``(values, first, counts, inverse)``: a column's distinct cells as written, in the
    order they first appear, the row of each one's first appearance, how many rows hold
    it, and each row's index into ``values``. What a cell means depends on its text
    alone, so a column's cells are judged once per distinct value: a few dozen calls
    for a column of categories, however many rows (200,000 rows: ~25 ms a column)."""
    index: dict = {}
    inverse = np.fromiter((index.setdefault(c, len(index)) for c in cells), dtype=np.intp,
                          count=len(cells))
    counts = np.bincount(inverse, minlength=len(index))
    first = np.full(len(index), len(cells), dtype=np.intp)
    np.minimum.at(first, inverse, np.arange(len(cells)))
    return list(index), first, counts, inverse


def _first_of(rows_of_kind, first, counts) -> tuple[int, int]:
    """``(first row, count)`` of the rows whose distinct cells are ``rows_of_kind``."""
    if not rows_of_kind:
        return -1, 0
    return int(min(first[k] for k in rows_of_kind)), int(sum(counts[k] for k in rows_of_kind))


def is_text_column(cells, name, column, lines) -> bool:
    """Whether a column's ``cells`` are text (its missing cells aside), each distinct
    cell looked at once; ``ValueError`` naming a cell of each kind for a column of
    numbers and text alike, neither a column of numbers nor one of categories (a stray
    cell on either side). A column of numbers is told by one NumPy conversion (which
    strips a cell's spaces as ``float`` does)."""
    try:
        np.array(cells, dtype=np.float64)
        return False
    except ValueError:
        pass
    values, first, counts, _ = distinct_cells(cells)
    stripped = [v.strip() for v in values]
    # (a "nan" cell is a missing one, as pandas reads it, not a number among text)
    number_kinds = [k for k, t in enumerate(stripped) if is_number(t) and not missing_cell(t)]
    text_kinds = [k for k, t in enumerate(stripped)
                  if not is_number(t) and not missing_cell(t)]
    (n, n_count), (t, t_count) = (_first_of(number_kinds, first, counts),
                                  _first_of(text_kinds, first, counts))
    stripped_at = {int(first[k]): stripped[k] for k in range(len(values))}
    if text_kinds and not number_kinds and all(_FORMATTED_NUMBER.fullmatch(stripped[k])
                                               for k in text_kinds):
        raise ValueError(f"{name}, column {column!r}: holds numbers written for people, such "
                         f"as {stripped_at[t]!r} on line {lines[t]} (thousands separators, a "
                         f"decimal comma, a currency or percent sign), which would be read "
                         f"as categories: write them as plain numbers (60000, 54.5), or "
                         f"read the column as categories on purpose (train --categorical "
                         f"{column})")
    if number_kinds and text_kinds:
        raise ValueError(f"{name}, column {column!r}: mixes numbers ({_count(n_count)}, "
                         f"such as {stripped_at[n]!r} on line {lines[n]}) and text "
                         f"({_count(t_count)}, such as {stripped_at[t]!r} on line "
                         f"{lines[t]}): neither a column of numbers nor one of categories; "
                         f"fix the odd cells, or leave the column out (train "
                         f"--ignore-columns)")
    return bool(text_kinds)


def learn_categories(cells, name, column, lines, named: bool = False,
                     missing_ok: bool = False) -> list:
    """The sorted distinct categories (:func:`category`) of a column's cells;
    ``ValueError`` for a missing cell (named by its line, from ``lines``; left out with
    ``missing_ok``) or more than :data:`MAX_CATEGORIES` categories
    (:data:`MAX_NAMED_CATEGORIES` for a column ``named`` categorical)."""
    values, first, _, _ = distinct_cells(cells)
    missing = [int(first[k]) for k, v in enumerate(values) if missing_cell(v.strip())]
    if missing and not missing_ok:
        i = min(missing)
        raise feature_cell_error(name, lines[i], column, cells[i])
    found = sorted({category(v.strip()) for v in values if not missing_cell(v.strip())})
    if not found:   # (missing_ok: a column of missing cells only)
        raise ValueError(f"{name}, column {column!r}: holds missing cells only, no "
                         f"category: leave it out (train --ignore-columns)")
    limit = MAX_NAMED_CATEGORIES if named else MAX_CATEGORIES
    if len(found) > limit:
        more = ("" if named else f"; or, if it is a category, name it (train --categorical "
                                 f"{column}: up to {MAX_NAMED_CATEGORIES})")
        what = "an identifier or free text, not a category"
        if all(_DATE.fullmatch(v) for v in found[:3]):
            what, more = ("dates, which a network reads as numbers: write the column as a "
                          "number first (days since a start; or year, month and day in "
                          "columns of their own), or"), ""
        raise ValueError(f"{name}, column {column!r}: holds {len(found)} distinct values "
                         f"(such as {found[:3]}), more than the {limit} categories a "
                         f"{'categorical ' if named else 'text '}column may have: {what}"
                         f"{' ' if what.endswith('or') else '; '}leave it out (train "
                         f"--ignore-columns){more}")
    return found


def code_of(cell, codes: dict, name, line, column, missing_ok: bool = False) -> float:
    """A cell's category index in ``codes`` (category -> index), -1 for one not in it;
    ``ValueError`` for a missing cell (NaN with ``missing_ok``)."""
    text = cell.strip()
    if missing_cell(text):
        if missing_ok:
            return np.nan
        raise feature_cell_error(name, line, column, cell)
    code = codes.get(text)   # (a file's categories as written, then by their value)
    return code if code is not None else codes.get(category(text), -1)


def column_codes(cells, codes: dict, missing_ok: bool = False) -> tuple[np.ndarray, int]:
    """``(codes, first missing row)``: each cell's :func:`code_of` (as float64, the
    feature array's dtype), and the row of the first missing cell (-1 for none, and
    with ``missing_ok``, which codes it NaN), whose ``code_of`` the caller calls to
    raise the error naming it."""
    values, first, _, inverse = distinct_cells(cells)
    missing = [int(first[k]) for k, v in enumerate(values) if missing_cell(v.strip())]
    if missing and not missing_ok:
        return np.empty(0), min(missing)
    table = np.array([code_of(v, codes, "", 0, "", missing_ok) for v in values],
                     dtype=np.float64)
    return table[inverse], -1


def check_categories(categories, feature_names) -> dict:
    """``categories`` (column name -> list of str) checked against the feature names:
    ``TypeError`` for another kind of value, ``ValueError`` for a column that is not a
    feature."""
    if not isinstance(categories, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v and
            all(isinstance(c, str) for c in v) for k, v in categories.items()):
        raise TypeError(f"categories must be 'auto' or map column names to lists of "
                        f"category names, got {categories!r}")
    unknown = [k for k in categories if k not in feature_names]
    if unknown:
        raise ValueError(f"categories names columns {unknown} that are not among the "
                         f"feature columns {list(feature_names)}")
    return categories


def check_fits(categories, feature_names, n_inputs: int) -> None:
    """``ValueError`` unless the one-hot columns of ``feature_names`` are a network's
    ``n_inputs`` (a model file's metadata against its network)."""
    check_categories(categories, feature_names)
    width = len(one_hot_names(feature_names, categories))
    if width != n_inputs:
        raise ValueError(f"its categories make {width} inputs of the {len(feature_names)} "
                         f"columns, but the network takes {n_inputs}")


def index_maps(categories: dict, columns) -> dict:
    """Each column of ``categories`` by its position in ``columns`` -> its category ->
    index: how a reader turns cells into category indices."""
    return {columns.index(k): {**{category(c): i for i, c in enumerate(v)},
                               **{c: i for i, c in enumerate(v)}}
            for k, v in categories.items()}


def training_categories(X_train, X_test, feature_names, categories: dict) -> tuple:
    """``(X_train, X_test, kept)``: copies with each column of ``categories`` (indices
    into it) re-indexed to ``kept``, the categories the training rows hold, so that one
    met only in the test rows is -1 there (all zeros one-hot), as an unseen one is
    in new data. A missing cell's NaN stays NaN."""
    kept = {}
    X_train, X_test = X_train.copy(), X_test.copy()
    for name, cats in categories.items():
        j = feature_names.index(name)
        present = np.unique(X_train[:, j])
        present = present[present >= 0].astype(np.int64)   # (NaN >= 0 is False)
        new = np.full(len(cats) + 1, -1.0)   # the last entry: an index of -1 stays -1
        new[present] = np.arange(len(present))
        for X in (X_train, X_test):
            missing = np.isnan(X[:, j])
            X[:, j] = np.where(missing, np.nan, new[np.where(missing, -1, X[:, j]).astype(
                np.int64)])
        kept[name] = [cats[k] for k in present]
    return X_train, X_test, kept


def one_hot_columns(X, feature_names, categories: dict) -> np.ndarray:
    """``X`` (N, D) whose columns are ``feature_names``, each column of ``categories``
    (codes) replaced by one 0/1 column per category (a code of -1 or NaN: zeros).
    Shape: (N, D) -> (N, D - C + sum of the C columns' category counts)."""
    if not categories:
        return X
    parts, start = [], 0
    for pos, name in enumerate(feature_names):
        if name not in categories:
            continue
        parts.append(X[:, start:pos])
        codes = np.nan_to_num(X[:, pos], nan=-1.0).astype(np.int64)
        block = np.zeros((X.shape[0], len(categories[name])), dtype=X.dtype)
        known = np.flatnonzero(codes >= 0)
        block[known, codes[known]] = 1
        parts.append(block)
        start = pos + 1
    parts.append(X[:, start:])
    return np.hstack(parts)


def one_hot_names(feature_names, categories: dict) -> list:
    """The names of :func:`one_hot_columns`'s columns: ``column=category`` for each category;
    ``ValueError`` where two would be the same (a column named ``a=b`` beside a column
    ``a`` with a category ``b``)."""
    names: list = []
    for name in feature_names:
        names += [f"{name}={c}" for c in categories[name]] if name in categories else [name]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"the one-hot columns would have the names {twice} twice (a "
                         f"column's name is another's column=category): rename the column")
    return names


def count_unseen(X, feature_names, categories: dict) -> dict:
    """Per column of ``categories``, the rows of ``X`` (category indices) whose category
    is none of the column's."""
    return {name: int(np.count_nonzero(X[:, feature_names.index(name)] < 0))
            for name in categories}


def warn_unseen(unseen: dict, rows: int, categories: dict, where: str) -> None:
    """Warn of the ``unseen`` rows (of ``rows``, per column, from :func:`count_unseen`):
    one-hot they are all zeros, as scikit-learn's ``handle_unknown='ignore'`` makes them
    (silently), which would hide a column coded otherwise in new data."""
    for name, count in unseen.items():
        if count:
            cats = categories[name]
            warnings.warn(f"{where}: column {name!r}: {count} of {rows} rows hold a "
                          f"category the model was not trained on (its categories are "
                          f"{cats[:5]}{' ...' if len(cats) > 5 else ''}); they are "
                          f"encoded as all zeros", UserWarning, stacklevel=2)
