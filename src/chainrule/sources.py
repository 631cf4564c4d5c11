"""Out-of-core data: training on ``.npy`` files larger than memory.

:func:`open_npy` opens a ``.npy`` file without reading it; :func:`chainrule.train.fit`
and :func:`~chainrule.train.evaluate` accept such files for ``X`` and ``Y`` (``Y`` may
also be an array) and read them a block of rows at a time, through a memory map of that
block only, so that the process never holds (or even maps) more than one block of the
file. :func:`check_data` turns a pair of them into row views that ``fit`` indexes like
arrays (``X[idx]`` reads those rows; ``Y[idx]`` gives their one-hot rows).

Shuffling is two-level (:func:`shuffled_order`): a random permutation of the blocks,
then of the rows inside each block. Consecutive minibatches then come from one block,
which is read once per epoch, sequentially, instead of one random seek per row.
With in-memory arrays :func:`shuffled_order` is ``rng.permutation(n)``, as before.

:meth:`NpyFile.subset` (some rows, e.g. held-out test or validation rows, by sorted
index) and :meth:`NpyFile.standardized` (rows read as ``(x - mean) / scale``, the
statistics from :func:`column_stats` in one pass) are views of a file that ``fit`` and
``evaluate`` read the same way; ``chainrule train --data X.npy`` is built on them.

``Y`` can be a 1-D file (or array) of integer class indices ``0..K-1`` for a
cross-entropy model, kept in memory (8 bytes a row) and one-hot encoded per batch, or a
2-D file of targets read like ``X`` (or a 2-D array of them, in memory). Rows are
checked as they are read (finite values, targets the loss accepts); shapes and labels
are checked before training starts.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np

from ._validation import check_positive_int, first_non_finite, shape_str

__all__ = ["NpyFile", "open_npy", "RowView", "LabelView", "check_data", "shuffled_order",
           "check_shuffle", "epoch_order", "evaluate_blocks", "is_source", "stream_minibatches",
           "column_stats", "first_block", "batch_rows"]

#: Bytes of one block of rows, unless ``open_npy(block_bytes=...)`` says otherwise.
BLOCK_BYTES = 4 * 2**20

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


class NpyFile:
    """A 1-D or 2-D ``.npy`` file, read in blocks of rows (see :func:`open_npy`).

    :meth:`subset` and :meth:`standardized` give views of the same file: some of its
    rows (a held-out test or validation part), or its rows as ``(x - mean) / scale``;
    they read the file as lazily as the file itself.
    """

    rows: np.ndarray | None = None  # the file's rows this view holds, sorted (None: all)
    stats: tuple | None = None  # (mean, scale) the rows are standardised with

    def __init__(self, path, block_bytes: int = BLOCK_BYTES):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = _HEADER_READERS.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran, dtype = read_header(f)
            except ValueError as exc:
                raise ValueError(f"{self.path!r} is not a .npy file: {exc}") from None
            self.offset = f.tell()
        if fortran and len(shape) > 1:
            raise ValueError(f"{self.path!r} holds a Fortran-ordered array; save it in C order "
                             f"(np.save(path, np.ascontiguousarray(a))) to read it by rows")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise ValueError(f"{self.path!r} is not a .npy file: its header declares shape "
                             f"{shape!r}, with a dimension that is not a count")
        if len(shape) not in (1, 2) or dtype.hasobject or dtype.kind not in "biuf":
            images = (" (images: save them with their labels in an .npz, which keeps "
                      "their shape; as rows, X.reshape(len(X), -1), a CNN would take them "
                      "for square images)" if len(shape) > 2 and dtype.kind in "biuf" else "")
            raise ValueError(f"{self.path!r} must hold a 1-D or 2-D numeric array, got dtype "
                             f"{dtype} and shape {shape_str(shape)}{images}")
        self.shape, self.dtype, self.stored_dtype = tuple(shape), dtype, dtype
        self.file_rows = self.shape[0]   # (a view's shape is its own rows')
        # A short file maps fine here and fails at its first missing row, deep in a run.
        expected = self.offset + math.prod(shape) * dtype.itemsize
        size = os.path.getsize(self.path)
        if size < expected:
            raise ValueError(f"{self.path!r} is truncated: its header declares dtype {dtype} "
                             f"and shape {shape_str(shape)}, which need {expected} bytes, "
                             f"but the file holds {size}")
        row_bytes = max(1, dtype.itemsize * (shape[1] if len(shape) == 2 else 1))
        self.block_rows = max(1, check_positive_int(block_bytes, "block_bytes") // row_bytes)

    def __repr__(self):
        return f"NpyFile({self.path!r}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self):
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (of this view) as an array in memory; only the file's
        rows they come from are mapped, a block at most at a time, then unmapped."""
        return self.scaled(self.read_stored(start, stop))

    def read_stored(self, start: int, stop: int) -> np.ndarray:
        """:meth:`read` before :meth:`standardized`'s scaling: the values as stored."""
        if self.rows is None:
            rows = self._read_file(start, stop)
        else:  # the file's rows of this subset, from one block of the file at a time
            idx = self.rows[start:stop]
            rows = np.empty((len(idx),) + self.shape[1:], dtype=self.stored_dtype)
            blocks = idx // self.block_rows
            for b in np.unique(blocks):
                mine = np.flatnonzero(blocks == b)  # a run: idx is sorted
                first, last = idx[mine[0]], idx[mine[-1]]
                rows[mine] = self._read_file(first, last + 1, idx[mine] - first)
        return rows

    def scaled(self, rows) -> np.ndarray:
        """Stored rows as this view reads them: ``(x - mean) / scale`` in float64 after
        :meth:`standardized`, else unchanged."""
        if self.stats is None:
            return rows
        mean, scale = self.stats
        out = rows.astype(np.float64)
        out -= mean  # in place: one float64 copy of the rows, not three
        out /= scale
        return out

    def _read_file(self, start, stop, pick=None) -> np.ndarray:
        """The file's rows ``start:stop`` (``pick``: those of them at these offsets)."""
        window = np.memmap(self.path, dtype=self.stored_dtype, mode="r",
                           offset=self.offset + start * self.stored_dtype.itemsize * self.row_size,
                           shape=(stop - start,) + self.shape[1:])
        try:
            return np.array(window) if pick is None else window[pick]
        finally:
            del window  # unmap now, not at the next garbage collection

    def subset(self, indices) -> NpyFile:
        """A view of the rows ``indices`` (positions in this view), kept in file order.

        Parameters
        ----------
        indices : array_like of int, shape (M,)
            Distinct row positions in ``0..len(self) - 1``, in any order.

        Returns
        -------
        NpyFile
            ``M`` rows, read (and shuffled by ``fit``) a block at a time like the file.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"indices must be a 1-D array of integers, got dtype {idx.dtype} "
                            f"and shape {shape_str(idx.shape)}")
        idx = np.unique(idx.astype(np.int64))
        if len(idx) != len(np.asarray(indices)):
            raise ValueError("indices must be distinct row positions, got repeated ones")
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self)):
            raise ValueError(f"indices must lie in 0..{len(self) - 1} (the rows of {self.path!r}"
                             f"), got values in [{idx[0]}, {idx[-1]}]")
        view = copy.copy(self)
        view.rows = idx if self.rows is None else self.rows[idx]
        view.shape = (len(idx),) + self.shape[1:]
        return view

    def standardized(self, mean, scale) -> NpyFile:
        """A view whose rows read as ``(x - mean) / scale`` in float64 (e.g. with the
        statistics of :func:`column_stats`)."""
        if len(self.shape) != 2:
            raise ValueError(f"only a 2-D file can be standardised, {self.path!r} has shape "
                             f"{shape_str(self.shape)}")
        stats = [np.asarray(v, dtype=np.float64) for v in (mean, scale)]
        for name, v in zip(("mean", "scale"), stats, strict=True):
            if v.shape != self.shape[1:] or not np.isfinite(v).all():
                raise ValueError(f"{name} must hold {self.shape[1]} finite values (one per "
                                 f"column), got shape {shape_str(v.shape)}")
        if not np.all(stats[1] > 0):
            raise ValueError("scale must be positive in every column")
        view = copy.copy(self)
        view.stats, view.dtype = tuple(stats), np.dtype(np.float64)
        return view

    @property
    def row_size(self) -> int:
        return self.shape[1] if len(self.shape) == 2 else 1

    def fingerprint(self) -> str:
        """The file's dtype and shape and its first, middle and last blocks, hashed (and a
        view's rows and statistics): what a checkpoint compares. By content, not by path
        or modification time, so that a copy of the file on another node, or the file
        touched or copied, resumes the run; reading three blocks, not the file (whose
        reading is an epoch's), leaves a change elsewhere unseen."""
        from hashlib import sha256

        h = sha256(f"{self.stored_dtype.str}{(self.file_rows,) + self.shape[1:]}".encode())
        n, size = self.file_rows, self.block_rows
        middle = max(0, n // 2 - size // 2)
        for start in sorted({0, middle, max(0, n - size)}):
            h.update(self._read_file(start, min(n, start + size)).tobytes())
        for part in (self.rows, *(self.stats or ())):
            h.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
        return f"npy:{h.hexdigest()}"


def column_stats(file: NpyFile):
    """Per column, the mean and standard deviation of a 2-D file, in one pass of blocks.

    scikit-learn's ``StandardScaler.partial_fit`` combines pieces of a MiB (a
    numerically stable update of the mean and variance; it makes several copies of
    what it is given, hence pieces smaller than a block). A constant column gets scale 1, as in
    :func:`chainrule.data.standardize`.

    Returns
    -------
    mean, scale : ndarray of float64, shape (D,)
    """
    from sklearn.preprocessing import StandardScaler

    if not isinstance(file, NpyFile) or len(file.shape) != 2 or len(file) == 0:
        raise ValueError(f"column_stats needs a 2-D NpyFile with rows, got {file!r}")
    scaler = StandardScaler()
    n, size = len(file), file.block_rows
    piece = max(1, 2**20 // (8 * file.shape[1]))  # a MiB of float64: partial_fit copies it
    for start in range(0, n, size):
        block = file.read(start, min(start + size, n))
        for s in range(0, len(block), piece):
            scaler.partial_fit(block[s:s + piece].astype(np.float64))
    return scaler.mean_, scaler.scale_


def open_npy(path, *, block_bytes: int = BLOCK_BYTES) -> NpyFile:
    """Open a ``.npy`` file for out-of-core training, without reading its rows.

    Parameters
    ----------
    path : str or os.PathLike
        A C-ordered 1-D or 2-D numeric array saved with ``np.save``.
    block_bytes : int, default=4 MiB
        Rows are read (and shuffled) in blocks of about this size.

    Returns
    -------
    NpyFile
        Give it to :func:`chainrule.train.fit` or :func:`~chainrule.train.evaluate` as
        ``X`` (and ``Y``).

    Raises
    ------
    ValueError
        Naming the file, for one that is not a ``.npy`` file, holds no 1-D or 2-D C-order
        numeric array, or is shorter than its header's shape and dtype need (truncated).
    """
    return NpyFile(path, block_bytes)


class _BlockCache:
    """Reads rows of an NpyFile, keeping the last block read (the next batch is
    usually in it) as stored: a standardised view scales only the rows taken."""

    def __init__(self, file: NpyFile):
        self.file, self.block = file, -1
        self.rows: np.ndarray = np.empty((0,) + file.shape[1:], dtype=file.stored_dtype)

    def take(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(idx.start, min(idx.stop, len(self.file)))
        idx = np.asarray(idx)
        size = self.file.block_rows
        blocks = idx // size
        out = np.empty((len(idx),) + self.file.shape[1:], dtype=self.file.stored_dtype)
        # blocks in the order the batch meets them: the last one stays cached, and the
        # next batch of a block-shuffled epoch starts in it
        _, first = np.unique(blocks, return_index=True)
        for b in blocks[np.sort(first)]:
            if b != self.block:
                self.block, self.rows = b, self.rows[:0].copy()  # free the old block first
                self.rows = self.file.read_stored(b * size, min((b + 1) * size,
                                                                len(self.file)))
            mine = blocks == b
            out[mine] = self.rows[idx[mine] - b * size]
        return self.file.scaled(out)


class RowView:
    """The rows of an NpyFile as ``fit`` sees them: ``view[idx]`` reads and checks them."""

    ndim = 2  # rows of n_cols values, as the (N, D) or (N, K) array it stands for

    def __init__(self, file: NpyFile, check, n_cols: int):
        self.file, self.check = file, check
        self.shape = (len(file), n_cols)
        self.cache = _BlockCache(file)

    def __getitem__(self, idx):
        rows = self.cache.take(idx)
        try:
            return self.check(rows)
        except ValueError as exc:
            raise ValueError(f"{self._first_non_finite(rows, idx)}{exc}") from None

    def _first_non_finite(self, rows, idx) -> str:
        """``'<path>, row R, column C: '`` for the first NaN or infinity of ``rows``
        (``R`` the file's row), or '' when they hold none."""
        bad = (first_non_finite(rows.reshape(len(rows), -1))
               if rows.dtype.kind == "f" and rows.size else None)
        if bad is None:
            return ""
        r, c = bad
        position = int(np.arange(len(self.file))[idx][r])
        row = position if self.file.rows is None else int(self.file.rows[position])
        return f"{self.file.path}, row {row}, column {c}: "

    def argmax(self, axis):
        """Per row, the column of its largest entry (``Y.argmax(axis=1)``: the class of
        one-hot target rows, the most probable one of probability rows), read a block at
        a time."""
        if axis != 1:
            raise ValueError(f"a RowView can only take the argmax along axis 1, got {axis}")
        n, size = self.shape[0], self.file.block_rows
        return np.concatenate([self.file.read(s, min(s + size, n)).argmax(axis=1)
                               for s in range(0, n, size)])

    def fingerprint(self) -> str:
        return self.file.fingerprint()


class LabelView:
    """Integer class labels (in memory) seen as one-hot rows: ``view[idx]``."""

    ndim = 2  # it stands for the (N, K) one-hot matrix

    def __init__(self, labels: np.ndarray, n_classes: int, dtype):
        self.labels, self.dtype = labels, dtype
        self.shape = (len(labels), n_classes)

    def __getitem__(self, idx):
        out = np.zeros((len(self.labels[idx]), self.shape[1]), dtype=self.dtype)
        out[np.arange(out.shape[0]), self.labels[idx]] = 1
        return out

    def argmax(self, axis):
        """The class index of every row, as ``Y.argmax(axis=1)`` of the one-hot rows."""
        if axis != 1:
            raise ValueError(f"a LabelView has class indices along axis 1, got axis={axis}")
        return self.labels

    def fingerprint(self) -> str:
        from hashlib import sha256

        return "labels:" + sha256(np.ascontiguousarray(self.labels).tobytes()).hexdigest()


def is_source(a) -> bool:
    """True for what this module reads out of core (an NpyFile or a view of one)."""
    return isinstance(a, (NpyFile, RowView, LabelView))


def _labels(model, Y, n):
    """``Y`` (an NpyFile or an array of class indices) read whole and checked."""
    y = Y.read(0, len(Y)) if isinstance(Y, NpyFile) else np.asarray(Y)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise TypeError(f"Y must hold integer class indices 0..{model.n_outputs - 1}, got "
                        f"dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= model.n_outputs):
        raise ValueError(f"Y must hold class indices 0..{model.n_outputs - 1} (the model has "
                         f"{model.n_outputs} outputs), got values in [{y.min()}, {y.max()}]")
    return LabelView(y.astype(np.int64), model.n_outputs, model.dtype)


def check_data(model, X, Y, batch_size=None, validation_fraction=None, *, training=True,
               finite_X=True):
    """``fit``'s and ``evaluate``'s ``(X, Y)``: checked arrays, or row views of files.

    Arrays (neither an :class:`NpyFile`) go through ``model.check_XY``. With a file,
    the shapes are checked against the model here and the rows as they are read.
    Reading a file whole is what out-of-core training avoids, so training on a file
    needs minibatches (``batch_size``) and ``validation_data`` instead of a
    ``validation_fraction`` (which would copy the training rows). ``finite_X=False``
    leaves an array's finite values to the caller.
    """
    if not (isinstance(X, NpyFile) or isinstance(Y, NpyFile)):
        return model.check_XY(X, Y, finite_X=finite_X)
    if not isinstance(X, NpyFile):
        raise TypeError(f"X must be an NpyFile (chainrule.data.open_npy) when Y is one, got "
                        f"{type(X).__name__}")
    if training and (batch_size is None or validation_fraction is not None):
        raise ValueError("training on a file (open_npy) needs batch_size (minibatches) and "
                         "validation_data rather than validation_fraction: both would read "
                         "every row into memory at once")
    if len(X.shape) != 2 or X.shape[1] != model.n_features:
        raise ValueError(f"X ({X.path!r}) has shape {shape_str(X.shape)} but the model expects "
                         f"{model.n_features} features per row")
    n = X.shape[0]
    if n == 0:  # as model.check_XY says it of an array
        raise ValueError(f"X ({X.path!r}) must not be empty, got shape {shape_str(X.shape)}")
    if len(Y) != n:
        raise ValueError(f"X has {n} rows but Y has {len(Y)}")
    rows = RowView(X, model.check_X, model.n_features)
    if len(Y.shape if isinstance(Y, NpyFile) else np.shape(Y)) == 1:
        return rows, _labels(model, Y, n)
    if not isinstance(Y, NpyFile):  # targets in memory, as the labels may be
        if np.ndim(Y) != 2 or np.shape(Y)[1] != model.n_outputs:
            raise ValueError(f"with X a file, Y must be a file (open_npy), a 1-D array of "
                             f"class indices or an array of targets of shape ({n}, "
                             f"{model.n_outputs}), got shape {shape_str(np.shape(Y))}")
        return rows, _checked_targets(model, np.asarray(Y))
    if Y.shape[1] != model.n_outputs:
        raise ValueError(f"Y ({Y.path!r}) has {Y.shape[1]} columns but the model has "
                         f"{model.n_outputs} outputs")
    return rows, RowView(Y, lambda t: _checked_targets(model, t), model.n_outputs)


def _checked_targets(model, T):
    T = T.astype(model.dtype, copy=False)
    if not np.isfinite(T).all():
        raise ValueError("Y must contain only finite values")
    model.loss.check_targets(T, "Y")
    return T


def shuffled_order(X, rng) -> np.ndarray:
    """One epoch's row order: ``rng.permutation(n)`` for arrays; for a file, a
    permutation of its blocks, then of the rows inside each block."""
    if not isinstance(X, RowView):
        return rng.permutation(X.shape[0])
    n, size = X.shape[0], X.file.block_rows
    starts = rng.permutation(np.arange(0, n, size))
    return np.concatenate([s + rng.permutation(min(size, n - s)) for s in starts])


def check_shuffle(shuffle, *, checkpoint=None, comm=None):
    """``fit``'s ``shuffle``: True or False, or a callable ``order(n_rows)`` giving each
    epoch's row order. A callable's state is not saved in a checkpoint or compared
    between MPI ranks, so it is refused with either."""
    if callable(shuffle):
        if checkpoint is not None or comm is not None:
            raise ValueError("shuffle must be True or False with checkpoint= or comm=: the "
                             "state of a callable shuffle cannot be saved or compared "
                             f"between ranks, got {shuffle!r}")
        return shuffle
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True, False or a callable order(n_rows), got "
                        f"{type(shuffle).__name__} {shuffle!r}")
    return bool(shuffle)


def epoch_order(X, shuffle, rng) -> np.ndarray:
    """One epoch's row order: :func:`shuffled_order`'s for ``shuffle=True``; for a
    callable, what ``shuffle(n)`` returns, once it is checked to be a permutation of
    ``range(n)`` (every row once: the epoch's bookkeeping counts on it)."""
    if not callable(shuffle):
        return shuffled_order(X, rng)
    n = X.shape[0]
    order = np.asarray(shuffle(n))
    if order.shape != (n,) or order.dtype.kind not in "iu" or (
            n and (order.min() < 0 or order.max() >= n
                   or np.bincount(order, minlength=n).max() != 1)):
        raise ValueError(f"shuffle({n}) must return a permutation of range({n}) (each row "
                         f"index once), got {order.dtype} array of shape {shape_str(order.shape)}"
                         f"{': ' + repr(order[:6].tolist()) if order.ndim == 1 else ''}")
    return order


def batch_rows(A, idx):
    """Rows ``idx`` (a slice or an index array) of a training array or file view:
    ``np.take`` gathers an array's rows ~8% faster than ``A[idx]`` (128 random rows of
    60,000 x 784 float32: 41 against 47 us)."""
    if type(A) is np.ndarray and type(idx) is np.ndarray:
        return np.take(A, idx, axis=0)
    return A[idx]


def first_block(X):
    """``X`` itself for an array; for a view, the rows of its first block (what fits
    in memory where a check wants rows to run through the network)."""
    return X[0:X.file.block_rows] if isinstance(X, RowView) else X


def evaluate_blocks(evaluate, model, X, Y, sample_weight=None) -> dict:
    """``evaluate(model, X, Y, sample_weight)`` on arrays; on views, a chunk of about a
    MiB (in the model's dtype) at a time, combining the chunks' means (loss, accuracy)
    weighted by their rows (or their sample weights)."""
    if not isinstance(X, RowView):
        return evaluate(model, X, Y, sample_weight)
    n, size = X.shape[0], max(1, 2**20 // (X.shape[1] * np.dtype(model.dtype).itemsize))
    totals: dict = {}
    weight = 0.0
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        w = None if sample_weight is None else sample_weight[rows]
        share = rows.stop - rows.start if w is None else float(w.sum())
        if share == 0:   # (a chunk whose rows all weigh 0 adds nothing)
            continue
        for k, v in evaluate(model, X[rows], Y[rows], w).items():
            totals[k] = totals.get(k, 0.0) + v * share
        weight += share
    return {k: v / weight for k, v in totals.items()}


def stream_minibatches(X, Y, batch_size, *, shuffle=True, rng=None):
    """Minibatches ``(X_batch, Y_batch)`` of two ``.npy`` files, one pass, out of core.

    The order is :func:`shuffled_order`'s (blocks, then rows inside each block) when
    ``shuffle``, else the files' order; each batch is read from at most two blocks.
    ``X_batch`` is float64; ``Y_batch`` holds the rows of ``Y`` as stored (e.g. class
    indices).

    Parameters
    ----------
    X, Y : NpyFile
        From :func:`open_npy`, with the same number of rows.
    batch_size : int
    shuffle : bool, default=True
    rng : None, int or numpy.random.Generator

    Returns
    -------
    iterator of (ndarray, ndarray)
    """
    from ._validation import check_rng

    for name, f in (("X", X), ("Y", Y)):
        if not isinstance(f, NpyFile):
            raise TypeError(f"{name} must be an NpyFile (open_npy), got {type(f).__name__}")
    if len(X) != len(Y):
        raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    random = check_rng(rng)
    rows = RowView(X, lambda a: a.astype(np.float64, copy=False), X.row_size)
    targets = _BlockCache(Y)
    return _stream(rows, targets, batch_size, random if shuffle else None)


def _stream(rows, targets, batch_size, random):
    n = rows.shape[0]
    order = shuffled_order(rows, random) if random is not None else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield rows[idx], targets.take(idx)
