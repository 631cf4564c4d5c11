"""Columns of text in a table as one-hot features: the one encoding every CSV reader and
``chainrule train``/``predict``/``evaluate`` share.

A feature column is *categorical* when its cells are text (``"red"``, ``"Private"``),
none of them a number. Its categories are its distinct cells
(stripped), sorted; a reader given them writes each cell as its category's index, a
*code* (-1 for a category not among them), and :func:`one_hot` turns each code
column into one 0/1 column per category, as scikit-learn's ``OneHotEncoder(
handle_unknown='ignore')`` does: an unknown category is all zeros. A missing cell is
refused, as in a numeric column (chainrule fills nothing in).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import feature_cell_error, is_number, missing_cell

__all__ = ["MAX_CATEGORIES", "is_text_column", "check_not_mixed", "learn_categories",
           "code_of", "one_hot", "one_hot_names", "check_categories", "count_unseen",
           "warn_unseen"]

#: The most categories a column may have: more is an identifier or free text, which a
#: network cannot learn from as categories (and whose columns would swamp the rest).
MAX_CATEGORIES = 100


def is_text_column(cells) -> bool:
    """Whether ``cells`` (a column's strings) hold text and no number. A column that
    mixes them is a column of numbers with a stray cell, refused where it is read."""
    present = [t for t in map(str.strip, cells) if not missing_cell(t)]
    return bool(present) and not any(map(is_number, present))


def check_not_mixed(cells, name, column, lines) -> None:
    """``ValueError`` for a column of numbers and text cells alike, naming one of each:
    neither a column of numbers nor one of categories (a stray cell on either side)."""
    stripped = [c.strip() for c in cells]
    numbers = [i for i, t in enumerate(stripped) if is_number(t)]
    texts = [i for i, t in enumerate(stripped) if not is_number(t) and not missing_cell(t)]
    if numbers and texts:
        n, t = numbers[0], texts[0]
        def cells(k):
            return f"{k} cell{'' if k == 1 else 's'}"
        raise ValueError(f"{name}, column {column!r}: mixes numbers ({cells(len(numbers))}, "
                         f"such as {stripped[n]!r} on line {lines[n]}) and text "
                         f"({cells(len(texts))}, such as {stripped[t]!r} on line {lines[t]}): "
                         f"neither a "
                         f"column of numbers nor one of categories; fix the odd cells, or "
                         f"leave the column out (train --ignore-columns)")


def learn_categories(cells, name, column, lines) -> list:
    """The sorted distinct (stripped) cells of a text column; ``ValueError`` for a
    missing cell (named by its line, from ``lines``) or more than
    :data:`MAX_CATEGORIES` categories."""
    stripped = [c.strip() for c in cells]
    for i, t in enumerate(stripped):
        if missing_cell(t):
            raise feature_cell_error(name, lines[i], column, cells[i])
    found = sorted(set(stripped))
    if len(found) > MAX_CATEGORIES:
        raise ValueError(f"{name}, column {column!r}: holds text in {len(found)} distinct "
                         f"values (such as {found[:3]}), more than the {MAX_CATEGORIES} "
                         f"categories a column of text may have: an identifier or free "
                         f"text, not a category; leave it out (train --ignore-columns)")
    return found


def code_of(cell, codes: dict, name, line, column) -> int:
    """A cell's category index in ``codes`` (category -> index), -1 for one not in it;
    ``ValueError`` for a missing cell."""
    text = cell.strip()
    if missing_cell(text):
        raise feature_cell_error(name, line, column, cell)
    return codes.get(text, -1)


def check_categories(categories, feature_names) -> dict:
    """``categories`` (column name -> list of str) checked against the feature names."""
    if not isinstance(categories, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v and
            all(isinstance(c, str) for c in v) for k, v in categories.items()):
        raise ValueError(f"categories must map column names to lists of category names, "
                         f"got {categories!r}")
    unknown = [k for k in categories if k not in feature_names]
    if unknown:
        raise ValueError(f"categories names columns {unknown} that are not among the "
                         f"feature columns {list(feature_names)}")
    return categories


def one_hot(X, feature_names, categories: dict) -> np.ndarray:
    """``X`` (N, D) whose columns are ``feature_names``, each column of ``categories``
    (codes) replaced by one 0/1 column per category (a code of -1: zeros).
    Shape: (N, D) -> (N, D - C + sum of the C columns' category counts)."""
    if not categories:
        return X
    parts, start = [], 0
    for pos, name in enumerate(feature_names):
        if name not in categories:
            continue
        parts.append(X[:, start:pos])
        codes = X[:, pos].astype(np.int64)
        block = np.zeros((X.shape[0], len(categories[name])), dtype=X.dtype)
        known = np.flatnonzero(codes >= 0)
        block[known, codes[known]] = 1
        parts.append(block)
        start = pos + 1
    parts.append(X[:, start:])
    return np.hstack(parts)


def one_hot_names(feature_names, categories: dict) -> list:
    """The names of :func:`one_hot`'s columns: ``column=category`` for each category;
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
