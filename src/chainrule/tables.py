"""The inputs of a network that ``chainrule train`` fitted on a CSV table, from rows held
in Python: :class:`TableEncoder`, what ``chainrule predict`` does to a file's rows, for a
pandas DataFrame or a mapping of columns.

A model file of ``chainrule train`` keeps the table's feature names, the categories of
its columns of text (one-hot, :mod:`chainrule.categories`) and, after ``--impute``, each
numeric column's training median. The network takes the encoded rows: each column of
text as one 0/1 input per category, the numbers as they are (the standardisation is in
its first layer). ``chainrule.io.table_encoder(path)`` builds the encoder of a file.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ._validation import csv_float, missing_cell
from .categories import check_categories, code_of, index_maps, one_hot_columns, one_hot_names

__all__ = ["TableEncoder", "check_medians", "metadata_medians", "fill_medians", "brief_list"]


def brief_list(values, shown=8, noun="columns") -> str:
    """Values (a header's column names, classes) for a message: the first ``shown`` of
    a long list, and how many ``noun`` there are."""
    values = list(values)
    if len(values) <= shown:
        return str(values)
    return f"[{', '.join(map(repr, values[:shown]))}, ...] ({len(values)} {noun})"


def fill_medians(X, names, medians) -> None:
    """Set, in place, the NaN of each column of ``X`` (named by ``names``) that
    ``medians`` names to its median: what ``train --impute``, ``predict`` and
    :class:`TableEncoder` fill a missing number with."""
    for j, name in enumerate(names):
        if name in medians:
            column = X[:, j]
            column[np.isnan(column)] = medians[name]


def check_medians(medians, names, categories) -> dict | None:
    """``medians`` checked against a table's columns: None, or one finite number for
    each of its numeric columns (those of ``names`` not in ``categories``);
    ``ValueError`` otherwise."""
    if medians is None:
        return None
    numeric = [n for n in names if n not in categories]
    if not (isinstance(medians, dict) and sorted(medians) == sorted(numeric) and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in medians.values())):
        raise ValueError(f"impute must be {{'median': {{column: number}}}} for the numeric "
                         f"feature columns {numeric}, got {{'median': {medians!r}}}")
    return {k: float(v) for k, v in medians.items()}


def metadata_medians(meta: dict, names, categories) -> dict | None:
    """The medians a model file's metadata holds (``train --impute``'s ``{"impute":
    {"median": {...}}}``), checked (:func:`check_medians`); None for none."""
    impute = meta.get("impute")
    if impute is None:
        return None
    if not (isinstance(impute, dict) and set(impute) == {"median"}):
        raise ValueError(f"impute must be {{'median': {{column: number}}}}, got {impute!r}")
    return check_medians(impute["median"], names, categories)


def _is_missing(value) -> bool:
    """A cell pandas would call missing: None, NaN or NaT of any type (they differ from
    themselves), pandas' NA (whose comparisons are NA, of no truth value), or text
    that reads as missing."""
    if value is None:
        return True
    if isinstance(value, str):
        return missing_cell(value.strip())
    try:
        return bool(value != value)
    except TypeError:
        return True


class TableEncoder:
    """A table's rows as the inputs of the network ``chainrule train`` fitted on it.

    Parameters
    ----------
    feature_names : list of str
        The table's feature columns, in the network's order.
    categories : dict of str to list of str, optional
        The columns of text and their categories, one-hot in that order.
    medians : dict of str to float, optional
        ``train --impute``: each numeric column's training median, which fills its
        missing cells (a missing category is then all zeros). Without it a missing cell
        is refused, as ``chainrule predict`` refuses it.
    """

    def __init__(self, feature_names, categories=None, medians=None):
        if not (isinstance(feature_names, list) and feature_names
                and all(isinstance(n, str) for n in feature_names)):
            raise TypeError(f"feature_names must be a non-empty list of column names, got "
                            f"{feature_names!r}")
        self.feature_names = list(feature_names)
        self.categories = check_categories(categories or {}, self.feature_names)
        self.medians = check_medians(medians, self.feature_names, self.categories)
        by_position = index_maps(self.categories, self.feature_names)
        self._codes = {self.feature_names[p]: m for p, m in by_position.items()}

    @classmethod
    def from_metadata(cls, meta: dict) -> TableEncoder:
        """The encoder of a model file's metadata (``chainrule.io.read_metadata``)."""
        names = meta.get("feature_names")
        if names is None:
            raise ValueError("the model file names no feature columns: only a model that "
                             "'chainrule train' fitted on a CSV table has a table encoder")
        categories = meta.get("categories") or {}
        encoder = cls(names, categories)
        encoder.medians = metadata_medians(meta, encoder.feature_names, encoder.categories)
        return encoder

    @property
    def input_names(self) -> list[str]:
        """The network's inputs: ``column=category`` for each category of a column of
        text, the other columns' names as they are."""
        return one_hot_names(self.feature_names, self.categories)

    def transform(self, table) -> np.ndarray:
        """The network's inputs for the rows of ``table``, float64 (N, inputs).

        ``table`` is a pandas DataFrame or a mapping of column names to sequences of
        one value per row (taken by position); its columns are matched by name, and
        others (a label, an ID) are left out. A category the model was not trained on is
        all zeros, with a warning, as scikit-learn's ``OneHotEncoder(handle_unknown=
        'ignore')`` encodes it. Errors name a DataFrame's row by its index label.
        """
        cells = self._cells(table)
        labels = list(table.index) if hasattr(table, "index") and hasattr(
            table, "columns") else None
        X = np.empty((len(cells[0]), len(cells)))
        for j, (name, column) in enumerate(zip(self.feature_names, cells, strict=True)):
            X[:, j] = self._column(name, column, labels)
        return one_hot_columns(X, self.feature_names, self.categories)

    def _cells(self, table) -> list:
        """Each feature column of ``table`` as a 1-D object array, checked."""
        columns = list(table.keys()) if hasattr(table, "keys") else None
        if columns is None:
            raise TypeError(f"table must be a pandas DataFrame or a mapping of column names "
                            f"to values, got {type(table).__name__}")
        lacking = [n for n in self.feature_names if n not in columns]
        if lacking:
            raise ValueError(f"table lacks the columns {lacking} the model was trained on; "
                             f"it has {brief_list(columns)}")
        cells = []
        for name in self.feature_names:
            column = np.asarray(table[name], dtype=object)
            if column.ndim != 1:   # (a DataFrame holding the column twice gives 2-D)
                raise ValueError(f"column {name!r} must hold one value per row, got shape "
                                 f"{column.shape} (a table with the column twice?)")
            cells.append(column)
        if len({len(c) for c in cells}) > 1:
            raise ValueError(f"the columns hold different numbers of rows: "
                             f"{dict(zip(self.feature_names, map(len, cells), strict=True))}")
        return cells

    def _column(self, name, cells, labels) -> np.ndarray:
        """One column's values: numbers (missing ones filled with the median), or the
        category indices of a column of text (-1: unknown, NaN: missing). ``labels``:
        the rows' names in errors (their positions when None)."""
        out = np.empty(len(cells))
        codes, unknown = self._codes.get(name), 0
        for i, value in enumerate(cells):
            where = f"column {name!r}, row {labels[i] if labels is not None else i}"
            if _is_missing(value):
                if self.medians is None:
                    raise ValueError(f"{where}: a missing value; the model fills none in "
                                     f"(train it with --impute)")
                out[i] = np.nan if codes is not None else self.medians[name]
            elif codes is not None:
                out[i] = code_of(str(value), codes, "", 0, name)   # (not missing: no error)
                unknown += out[i] < 0
            else:
                out[i] = self._number(where, value)
        if unknown:
            warnings.warn(f"column {name!r}: {unknown} of {len(cells)} rows hold a category "
                          f"the model was not trained on; they are encoded as all zeros",
                          UserWarning, stacklevel=3)
        return out

    @staticmethod
    def _number(where, value) -> float:
        """A cell of a numeric column as a finite float; a bool or bytes, which a table's
        column of numbers cannot hold, is refused as text is."""
        try:
            if isinstance(value, (bool, np.bool_, bytes)):
                raise TypeError
            number = float(value) if not isinstance(value, str) else csv_float(value.strip())
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
        except OverflowError:   # an int beyond float64, as the readers refuse it
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"{where}: feature values must be finite, got {value!r}")
        return number

    def __repr__(self):
        extra = f", {len(self.categories)} of text" if self.categories else ""
        extra += ", missing cells filled" if self.medians is not None else ""
        return f"TableEncoder({len(self.feature_names)} columns{extra})"
