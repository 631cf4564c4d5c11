"""What ``chainrule predict`` and ``evaluate`` read and write, in row chunks.

A data file is read a chunk of rows at a time (:mod:`chainrule.datastream` for CSV and
``.npz``, :func:`chainrule.sources.open_npy` for ``.npy``), each chunk goes through the
model (itself chunked, :meth:`chainrule.models.Network.infer`) and its rows are written
or counted before the next chunk is read, so memory stays flat in the number of rows.
IDX files (MNIST-sized images) are read whole by their loader, then cut.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from ._common import CommandError, data_kind

#: Rows per chunk that predict and evaluate read (10 features of float64 make 5 MB).
CHUNK_ROWS = 65536

__all__ = ["CHUNK_ROWS", "iter_chunks", "prediction_writer", "ConfusionCounts"]


def _csv_chunks(path, label, features, chunk_rows, labels, categories, medians=None):
    """:func:`~chainrule.datastream.iter_csv`'s chunks of a CSV file, the label cells
    typed as :func:`chainrule.data.load_csv` types them (``labels="parse"``), kept as
    text (``"text"``: an id column) or left out (``"skip"``: ``predict`` scores no
    labels, so a blank label column is no error there); the columns of ``categories``
    one-hot (:mod:`chainrule.categories`). With ``medians`` (column -> value, a model
    of ``train --impute``) a missing cell is taken: a number is filled with its
    column's median, a cell of text is no category."""
    from ..categories import count_unseen, one_hot_columns, warn_unseen
    from ..datafiles import csv_delimiter, parse_labels
    from ..datastream import iter_csv
    from ..tables import fill_medians

    name, done = os.fspath(path), 0
    unseen = dict.fromkeys(categories or (), 0)
    for X, cells in iter_csv(path, label, delimiter=csv_delimiter(name),
                             chunk_rows=chunk_rows, feature_columns=features,
                             categories=categories or None,
                             missing="raise" if medians is None else "nan"):
        if medians:
            fill_medians(X, features, medians)
        if categories:
            for column, count in count_unseen(X, features, categories).items():
                unseen[column] += count
            X = one_hot_columns(X, features, categories)
        if cells is not None and labels == "parse":
            try:
                cells = parse_labels(cells.tolist(),
                                     lambda i, first=done: f"{name}, data row {first + i + 1}")
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        done += X.shape[0]
        yield X, None if labels == "skip" else cells
    warn_unseen(unseen, done, categories or {}, name)   # once, after the last chunk


def _iter_npy(path, labels_path, chunk_rows):
    from .._validation import first_non_finite
    from ..sources import open_npy

    X = open_npy(path)
    y = None if labels_path is None else open_npy(labels_path)
    if len(X.shape) != 2:
        raise CommandError(f"{path}: a .npy file of features must be 2-D (one row per "
                           f"sample), got shape {X.shape}")
    if y is not None and (len(y.shape) != 1 or len(y) != len(X)):
        raise CommandError(f"{labels_path}: expected one label per row of {path} (shape "
                           f"({len(X)},)), got shape {y.shape}")
    chunk_rows = min(chunk_rows, X.block_rows)  # a block of the file at most
    for start in range(0, len(X), chunk_rows):
        stop = min(start + chunk_rows, len(X))
        rows = X.read(start, stop).reshape(stop - start, -1).astype(np.float64)
        if (bad := first_non_finite(rows)) is not None:  # the model's check names no row
            r, c = bad
            raise CommandError(f"{path}, row {start + r}, column {c}: feature values must "
                               f"be finite, got {rows[r, c]}")
        yield rows, None if y is None else y.read(start, stop).reshape(-1)


def iter_chunks(path, *, label=None, features=None, labels_path=None,
                require_labels=True, chunk_rows=None, labels="parse", categories=None,
                medians=None):
    """Yield ``(X, y)`` chunks of at most ``chunk_rows`` rows of the data file ``path``.

    ``label`` and ``features`` (CSV): the label column and the feature columns by name
    (None: all but the label, in file order); ``labels_path``: the labels of an IDX or
    ``.npy`` file. ``y`` is None when the file has no labels (refused when
    ``require_labels``). A file without rows is refused (exit 1). ``chunk_rows``
    defaults to :data:`CHUNK_ROWS` (looked up at the call). ``labels``: what becomes
    of a CSV's ``label`` cells (see :func:`_csv_chunks`); ``categories`` (CSV): the
    columns of text among ``features``, one-hot; ``medians`` (CSV): what missing
    cells are filled with (see :func:`_csv_chunks`).
    """
    from ..data import load_file
    from ..datastream import iter_npz

    kind, name = data_kind(path), os.fspath(path)
    chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    if kind == "csv":
        chunks = _csv_chunks(path, label, features, chunk_rows, labels, categories, medians)
    elif kind == "npz":
        chunks = iter_npz(path, chunk_rows=chunk_rows)
    elif kind == "npy":
        chunks = _iter_npy(path, labels_path, chunk_rows)
    else:
        X, y = load_file(path, labels_path=labels_path, require_labels=require_labels)
        chunks = ((X[s:s + chunk_rows], None if y is None else y[s:s + chunk_rows])
                  for s in range(0, X.shape[0], chunk_rows))
    rows = 0
    for X, y in chunks:
        if require_labels and y is None:
            raise CommandError(f"{name}: holds no labels (an .npz needs an array 'y', a "
                               f".npy file its --labels file)")
        if X.shape[0] == 0:  # a header-only CSV's one chunk: the model refuses no rows
            continue
        rows += X.shape[0]
        yield X, y
    if rows == 0:
        raise CommandError(f"{name}: holds no data rows" + (
            " (only a header)" if kind == "csv" else ""))


def prediction_writer(chunks, predict, names, delimiter=",", id_column=None, prefix="p_"):
    """``(write, count)``: ``write(fh)`` writes the CSV of predictions chunk by chunk
    (``row,predicted,p_<class>...`` for class probabilities, ``<prefix><class>`` for
    other per-class outputs, ``row,predicted`` when ``names`` is None; ``delimiter``
    ``"\\t"`` for a .tsv); ``count()`` is the number
    of rows written so far. With ``id_column`` the first column is named so and holds
    the second element of each chunk (the ids) in place of the row number.

    ``predict(X)`` gives a chunk's probabilities (n, K) or values (n,). Floats are
    written with ``repr``, the shortest text that reads back as the same float. The
    header is written with the first chunk, so that a file refused before its first
    row (one without rows) leaves nothing on standard output.
    """
    written = [0]
    sep = delimiter

    def quoted(cells) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=sep, lineterminator="").writerow(cells)
        return buffer.getvalue()

    labels = None if names is None else [quoted([n]) for n in names]
    head = [id_column or "row", "predicted"] + (
        [] if names is None else [f"{prefix}{n}" for n in names])

    def write(fh):
        for X, ids in chunks:
            out = predict(X)
            start = written[0]
            rows = (range(start, start + len(out)) if id_column is None
                    else [quoted([i]) for i in ids.tolist()])
            if labels is None:
                lines = [f"{r}{sep}{v!r}" for r, v in zip(rows, out.tolist(), strict=True)]
            else:
                pred = out.argmax(axis=1).tolist()
                lines = [f"{r}{sep}{labels[k]}{sep}{sep.join(map(repr, p))}"
                         for r, k, p in zip(rows, pred, out.tolist(), strict=True)]
            if start == 0:
                lines.insert(0, quoted(head))
            fh.write(("\n".join(lines) + "\n").encode("utf-8"))
            written[0] += len(out)

    return write, lambda: written[0]


class ConfusionCounts:
    """A confusion matrix counted chunk by chunk (rows: true class, columns:
    predicted), and what ``evaluate`` prints from it."""

    def __init__(self, n_classes: int):
        self.matrix = np.zeros((n_classes, n_classes), dtype=np.int64)

    def add(self, true, pred) -> None:
        """Count the rows of one chunk: their true and predicted class indices."""
        K = self.matrix.shape[0]
        self.matrix += np.bincount(true * K + pred, minlength=K * K).reshape(K, K)

    def per_class(self):
        """``(precision, recall, f1, support)`` per class, by scikit-learn from the
        counts (each cell a pair of labels weighted by its count)."""
        from sklearn.metrics import precision_recall_fscore_support

        K = self.matrix.shape[0]
        true, pred = np.repeat(np.arange(K), K), np.tile(np.arange(K), K)
        precision, recall, f1, _ = precision_recall_fscore_support(
            true, pred, labels=np.arange(K), sample_weight=self.matrix.ravel(),
            zero_division=0)
        return precision, recall, f1, self.matrix.sum(axis=1)

    def pairs(self):
        """``(true, pred)`` class indices, one pair per row counted (for a plot that
        wants the rows)."""
        K = self.matrix.shape[0]
        counts = self.matrix.ravel()
        return (np.repeat(np.repeat(np.arange(K), K), counts),
                np.repeat(np.tile(np.arange(K), K), counts))
