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

``Y`` can be a 1-D file (or array) of integer class indices ``0..K-1`` for a
cross-entropy model, kept in memory (8 bytes a row) and one-hot encoded per batch, or a
2-D file of targets read like ``X``. Rows are checked as they are read (finite values,
targets the loss accepts); shapes and labels are checked before training starts.
"""

from __future__ import annotations

import os

import numpy as np

from ._validation import check_positive_int, shape_str

__all__ = ["NpyFile", "open_npy", "RowView", "LabelView", "check_data", "shuffled_order",
           "evaluate_blocks", "is_source", "stream_minibatches"]

#: Bytes of one block of rows, unless ``open_npy(block_bytes=...)`` says otherwise.
BLOCK_BYTES = 4 * 2**20

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


class NpyFile:
    """A 1-D or 2-D ``.npy`` file, read in blocks of rows (see :func:`open_npy`)."""

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
        if len(shape) not in (1, 2) or dtype.hasobject or dtype.kind not in "biuf":
            raise ValueError(f"{self.path!r} must hold a 1-D or 2-D numeric array, got dtype "
                             f"{dtype} and shape {shape_str(shape)}")
        self.shape, self.dtype = tuple(shape), dtype
        row_bytes = max(1, dtype.itemsize * (shape[1] if len(shape) == 2 else 1))
        self.block_rows = max(1, check_positive_int(block_bytes, "block_bytes") // row_bytes)

    def __repr__(self):
        return f"NpyFile({self.path!r}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self):
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an array in memory; only they are mapped, then unmapped."""
        window = np.memmap(self.path, dtype=self.dtype, mode="r",
                           offset=self.offset + start * self.dtype.itemsize * self.row_size,
                           shape=(stop - start,) + self.shape[1:])
        try:
            return np.array(window)
        finally:
            del window  # unmap now, not at the next garbage collection

    @property
    def row_size(self) -> int:
        return self.shape[1] if len(self.shape) == 2 else 1

    def fingerprint(self) -> str:
        """Path, size and modification time: what a checkpoint compares, in O(1)."""
        st = os.stat(self.path)
        return f"npy:{os.path.realpath(self.path)}:{st.st_size}:{st.st_mtime_ns}"


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
    """
    return NpyFile(path, block_bytes)


class _BlockCache:
    """Reads rows of an NpyFile, keeping the last block read (the next batch is
    usually in it)."""

    def __init__(self, file: NpyFile):
        self.file, self.block = file, -1
        self.rows: np.ndarray = np.empty((0,) + file.shape[1:], dtype=file.dtype)

    def take(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(idx.start, min(idx.stop, len(self.file)))
        idx = np.asarray(idx)
        size = self.file.block_rows
        blocks = idx // size
        out = np.empty((len(idx),) + self.file.shape[1:], dtype=self.file.dtype)
        # blocks in the order the batch meets them: the last one stays cached, and the
        # next batch of a block-shuffled epoch starts in it
        _, first = np.unique(blocks, return_index=True)
        for b in blocks[np.sort(first)]:
            if b != self.block:
                self.block = b
                self.rows = self.file.read(b * size, min((b + 1) * size, len(self.file)))
            mine = blocks == b
            out[mine] = self.rows[idx[mine] - b * size]
        return out


class RowView:
    """The rows of an NpyFile as ``fit`` sees them: ``view[idx]`` reads and checks them."""

    ndim = 2  # rows of n_cols values, as the (N, D) or (N, K) array it stands for

    def __init__(self, file: NpyFile, check, n_cols: int):
        self.file, self.check = file, check
        self.shape = (len(file), n_cols)
        self.cache = _BlockCache(file)

    def __getitem__(self, idx):
        return self.check(self.cache.take(idx))

    def argmax(self, axis):
        """Per row, the column of its largest entry (``Y.argmax(axis=1)``: the class of
        one-hot target rows), read a block at a time."""
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


def check_data(model, X, Y, batch_size=None, validation_fraction=None, *, training=True):
    """``fit``'s and ``evaluate``'s ``(X, Y)``: checked arrays, or row views of files.

    Arrays (neither an :class:`NpyFile`) go through ``model.check_XY``. With a file,
    the shapes are checked against the model here and the rows as they are read.
    Reading a file whole is what out-of-core training avoids, so training on a file
    needs minibatches (``batch_size``) and ``validation_data`` instead of a
    ``validation_fraction`` (which would copy the training rows).
    """
    if not (isinstance(X, NpyFile) or isinstance(Y, NpyFile)):
        return model.check_XY(X, Y)
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
    if len(Y) != n:
        raise ValueError(f"X has {n} rows but Y has {len(Y)}")
    rows = RowView(X, model.check_X, model.n_features)
    if len(Y.shape if isinstance(Y, NpyFile) else np.shape(Y)) == 1:
        return rows, _labels(model, Y, n)
    if not isinstance(Y, NpyFile):
        raise TypeError(f"with X a file, Y must be a file (open_npy) or a 1-D array of class "
                        f"indices, got an array of shape {shape_str(np.shape(Y))}")
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


def evaluate_blocks(evaluate, model, X, Y) -> dict:
    """``evaluate(model, X, Y)`` on arrays; on views, a chunk of about a MiB (in the
    model's dtype) at a time, combining the row means (loss, accuracy) weighted by
    the rows of each chunk."""
    if not isinstance(X, RowView):
        return evaluate(model, X, Y)
    n, size = X.shape[0], max(1, 2**20 // (X.shape[1] * np.dtype(model.dtype).itemsize))
    totals: dict = {}
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        part = evaluate(model, X[rows], Y[rows])
        for k, v in part.items():
            totals[k] = totals.get(k, 0.0) + v * (rows.stop - rows.start)
    return {k: v / n for k, v in totals.items()}


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
