"""Input checks shared by every public entry point.

Each check raises ``TypeError`` for a value of the wrong kind and ``ValueError``
for a value of the right kind but the wrong shape or content. Messages name the
argument, say what was received and what was expected.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import warnings
from collections import Counter

import numpy as np


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_float_array(x, name: str, *, ndim: int | None = 2, dtype=None, allow_empty: bool = False,
                   finite: bool = True) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray after checking it.

    Floating arrays keep their dtype (float32 stays float32); integer and boolean
    arrays become float64 unless ``dtype`` says otherwise.
    """
    if type(x) is np.ndarray and x.dtype.kind == "f" and (dtype is None or x.dtype == dtype):
        arr = original = x  # the common case, already a float array of the wanted dtype
    else:
        original, arr = _as_float_dtype(x, name, dtype)
    if ndim is not None and arr.ndim != ndim:
        # Images given as such to a network, which takes one row per sample (a CNN
        # starts with Unflatten): say how to make the rows.
        hint = (f"; one row per sample: {name}.reshape(len({name}), -1) (a network that "
                f"takes images starts with Unflatten)" if ndim == 2 and arr.ndim > 2
                and not name.lower().startswith(("y", "label", "target")) else "")
        raise ValueError(f"{name} must be a {ndim}-D array, got shape "
                         f"{shape_str(arr.shape)}{hint}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(arr.shape)}")
    if finite and not all_finite(arr):
        if arr is not original and np.issubdtype(original.dtype, np.number) and \
                np.isfinite(original).all():
            raise ValueError(f"{name} holds values too large for {arr.dtype}: "
                             f"{_count_non_finite(arr)} entries overflow to infinity when cast "
                             f"from {original.dtype} (largest magnitude "
                             f"{float(np.abs(original).max()):.3g})")
        raise_non_finite(arr, name)
    return arr


def _as_float_dtype(x, name, dtype):
    """``(np.asarray(x), that array cast to dtype)``: float64 for integers and booleans
    when ``dtype`` is None; ``TypeError`` for anything not real and numeric."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    if is_sparse(x):  # (those callers that take sparse matrices handle them first)
        raise TypeError(f"{name} must be a dense numeric array, got scipy.sparse "
                        f"{type(x).__name__}: convert it with {name}.toarray()")
    try:
        arr = np.asarray(x)
    except ValueError:  # NumPy's "inhomogeneous shape" for ragged nested lists
        raise ValueError(f"{name} must be a rectangular numeric array (every row as long), "
                         f"got rows of different lengths") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got an array of dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got an array of dtype {arr.dtype}")
    if dtype is not None:
        with np.errstate(over="ignore"):  # overflow is reported by the caller, by name
            return arr, arr.astype(dtype, copy=False)
    if not np.issubdtype(arr.dtype, np.floating):
        return arr, arr.astype(np.float64)
    return arr, arr


def all_finite(arr: np.ndarray) -> bool:
    """Whether every entry of a float array is finite, without an (N, D) temporary.

    The sum of squares of a contiguous array, one BLAS dot product, is finite only when
    every entry is (NaN and infinities propagate into it, and the BLAS raises no
    overflow warning); other arrays use NumPy's sum the same way. Only a result that
    is not finite (a bad entry, or an overflow of large finite ones) needs the
    elementwise test, whose boolean temporary would otherwise be the peak memory of a
    training run (47 MB for 60,000 x 784). The dot product is the fastest of the
    passes measured: 5.9 ms against np.sum's 7.5 ms (and 9.8 ms for the column sums
    ``ones(N) @ X``) on 60,000 x 784 float32, 11 us against 18 us on 1347 x 64 float64.
    """
    if arr.flags.c_contiguous and arr.dtype.char in "fd":
        flat = arr.reshape(-1)
        if math.isfinite(np.vdot(flat, flat)):  # (math's: ~0.5 us less than NumPy's)
            return True
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(arr)):
                return True
    return bool(np.isfinite(arr).all())


def _count_non_finite(arr) -> int:
    return int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))


def raise_non_finite(arr: np.ndarray, name: str):
    """Raise the ``ValueError`` for an array ``name`` with NaN or infinite entries."""
    raise ValueError(f"{name} must contain only finite values, got {_count_non_finite(arr)} "
                     f"NaN or infinite entries")


def is_sparse(x) -> bool:
    """Whether ``x`` is a scipy.sparse matrix or array (without importing scipy)."""
    return type(x).__module__.startswith("scipy.sparse")


def as_sparse_float(x, name: str, *, dtype=None):
    """A 2-D CSR/CSC scipy.sparse ``x`` with float entries (``dtype``, else float64 for
    non-float data), after checking its format and that every stored entry is finite."""
    if x.format not in ("csr", "csc") or x.ndim != 2:
        raise TypeError(f"{name} must be a dense array or a 2-D CSR/CSC sparse matrix, got "
                        f"sparse format {x.format!r}")
    if dtype is not None:
        x = x.astype(dtype, copy=False)
    elif x.dtype.kind != "f":
        x = x.astype(np.float64)
    as_float_array(x.data, name, ndim=1, allow_empty=True)  # finite entries
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(x.shape)}")
    return x


def check_sample_weight(sample_weight, n: int, dtype) -> np.ndarray:
    """Return ``sample_weight`` as ``n`` non-negative weights of ``dtype`` with a
    positive sum."""
    sample_weight = as_float_array(sample_weight, "sample_weight", ndim=1)
    if sample_weight.shape[0] != n:
        raise ValueError(f"sample_weight must have one entry per row ({n}), got "
                         f"{shape_str(sample_weight.shape)}")
    with np.errstate(over="ignore"):
        total = sample_weight.sum()
    if sample_weight.min() < 0 or not total > 0:
        raise ValueError("sample_weight must be >= 0 with a positive sum, got min "
                         f"{float(sample_weight.min())!r} and sum {float(total)!r}")
    sample_weight = sample_weight.astype(dtype, copy=False)
    with np.errstate(over="ignore"):
        total = sample_weight.sum()
    if not np.isfinite(total):   # every weight / inf would be 0: a loss of 0
        raise ValueError(f"sample_weight must have a finite sum in {np.dtype(dtype).name}, "
                         f"got weights up to {float(sample_weight.max())!r} whose sum "
                         f"overflows: scale them down (only their ratios matter)")
    return sample_weight


@functools.lru_cache(maxsize=8)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of ``n`` ones of ``dtype``, made once: the row and column sums
    of every training step multiply by one (``np.ones`` costs ~1 us a call)."""
    vector = np.ones(n, dtype)
    vector.flags.writeable = False
    return vector


#: The largest array :func:`zeros_for` returns (entries); beyond it, the scalar 0.
ZEROS_LIMIT = 2**20

_zeros: dict = {}  # dtype -> the flat read-only buffer zeros_for() returns views of


def zeros_for(x: np.ndarray):
    """Zeros to compare ``x`` with, as in ``np.maximum(x, zeros_for(x))``.

    NumPy (2.4, AVX-512) vectorises ``maximum`` of two contiguous arrays, not of an
    array and a scalar, which runs 2.5-3x slower (1024 x 256 float32: 35 against 98
    us). For a C-contiguous ``x`` of at most :data:`ZEROS_LIMIT` entries: a read-only
    view, of ``x``'s shape, of one flat buffer per dtype grown to the largest request.
    Otherwise the scalar 0: against an array of another layout the two-array loop is
    2-8x slower than the scalar one, and the buffer stays small.
    """
    if not x.flags.c_contiguous or x.size > ZEROS_LIMIT:
        return x.dtype.type(0)
    flat = _zeros.get(x.dtype)
    if flat is None or flat.size < x.size:
        flat = _zeros[x.dtype] = np.zeros(x.size, x.dtype)
        flat.flags.writeable = False
    return flat[:x.size].reshape(x.shape)


def row_sums(a: np.ndarray) -> np.ndarray:
    """The sums along the rows of a 2-D array, ``(N, K) -> (N,)``, as a matrix-vector
    product: NumPy's sum along a short row is ~4-20x slower (85 us against 5 us for
    1347 x 10), the losses and the one-hot check take them on every training step."""
    return a @ ones(a.shape[1], a.dtype)


def _is_one_hot(labels: np.ndarray) -> bool:
    """Whether every row of a 2-D array is one-hot, in two cheap passes: each row sums
    to exactly 1, so holds at least one non-zero entry, and there are as many non-zero
    entries as rows, so each row holds exactly one, whose value is then the row's sum,
    1. (NaN and infinities are non-zero and break the row sum.) False can also mean a
    one-hot array holding -0.0, which the callers' exact tests then accept."""
    # The row sums are exact here in any order (zeros added to the one non-zero entry).
    # The non-zero entries are counted on the bits, as integers, where the layout allows
    # it (2.5x faster); a -0.0 then counts too, and only takes the callers' exact test.
    bits = (labels.view(f"i{labels.itemsize}") if labels.dtype.char in "fd"
            and labels.flags.c_contiguous else labels)
    n = labels.shape[0]
    return bool(np.count_nonzero(bits) == n and np.count_nonzero(row_sums(labels) == 1) == n)


def probability_tolerance(dtype) -> float:
    """How far from 1 a row of class probabilities of ``dtype`` may sum: the square
    root of the machine epsilon, that of float32 (3.5e-4) for float64 too.

    The rounding of a row of K probabilities, its sum included, is a few K ulps of 1:
    far below this. It is float32's for float64 because float64 targets are often
    float32 probabilities cast (a teacher's softmax computed in float32; ``fit`` casts
    the targets to the model's dtype), whose rows sum to 1 only within float32's
    rounding. Mistaken targets (regression values, label-encoded columns, counts)
    miss 1 by far more than either tolerance.
    """
    return float(np.sqrt(max(np.finfo(dtype).eps, np.finfo(np.float32).eps)))


def check_probability_rows(labels: np.ndarray, name: str = "labels") -> None:
    """Check that every row of a 2-D float array is a probability distribution over the
    columns: finite, non-negative entries summing to 1 within
    :func:`probability_tolerance`. One-hot rows, the common case, take only the two
    cheap passes of ``_is_one_hot``: only targets that are not one-hot take the second
    test.

    Rows must sum to 1, though ``torch.nn.CrossEntropyLoss`` does not ask it, for two
    reasons. The fused cross-entropy takes it as given: per row, its loss is
    ``logsumexp(z) - Y . z`` and its gradient ``softmax(z) - Y``, the cross-entropy and
    its gradient only for rows summing to 1 (in general they are ``sum(Y) logsumexp(z)
    - Y . z`` and ``sum(Y) softmax(z) - Y``, what torch computes). And the rule catches
    targets passed by mistake, which are not one-hot either: regression targets,
    label-encoded or count columns, logits or scores given as targets.
    """
    if _is_one_hot(labels):
        return
    if not all_finite(labels):  # callers leave the finite check to this one
        row = int(np.flatnonzero(~np.isfinite(labels).all(axis=1))[0])
        raise ValueError(f"{name} must contain only finite values, got "
                         f"{_count_non_finite(labels)} NaN or infinite entries; row {row} is "
                         f"{_row_text(labels[row])}")
    tol = probability_tolerance(labels.dtype)
    sums = row_sums(labels)
    off = np.abs(sums - 1)
    if labels.size and labels.min() >= 0 and off.max() <= tol:
        return
    negative = np.asarray((labels < 0).any(axis=1))
    row = int(np.flatnonzero(negative | (off > tol))[0])
    # str(): NumPy's shortest text of a float32 (f-strings write its float64 value)
    got = f"sum {str(sums[row])}" + (f", smallest entry {str(labels[row].min())}"
                                     if negative[row] else "")
    raise ValueError(f"{name} must hold one-hot rows or rows of class probabilities "
                     f"(entries >= 0, each row summing to 1 within {tol:.1e}), or be 1-D "
                     f"integer class indices; row {row} is {_row_text(labels[row])} ({got})")


def _row_text(row: np.ndarray, limit: int = 12) -> str:
    """A row as a list for an error message, each entry as short as its dtype writes it
    (float32's 0.7, not 0.699999988079071), the first ``limit`` if longer (a row of
    ImageNet's 1000 classes would bury the message)."""
    text = ", ".join(str(v) for v in row[:limit])
    return f"[{text}]" if row.size <= limit else f"[{text}, ... ({row.size} entries)]"


def is_class_indices(labels) -> bool:
    """Whether ``labels`` is a 1-D array (or sequence) of integers: class indices, the
    form ``torch.nn.CrossEntropyLoss`` takes, rather than one-hot rows."""
    if isinstance(labels, (str, bytes)) or labels is None:
        return False
    arr = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    return arr.ndim == 1 and arr.dtype.kind in "iu"


def check_class_indices(labels, n_classes: int | None, name: str = "labels", *,
                        n: int | None = None) -> np.ndarray:
    """Return 1-D integer ``labels`` as an ``intp`` array after checking that every
    entry is a class index in ``[0, n_classes)`` (``>= 0`` when ``n_classes`` is None)
    and, when ``n`` is given, that there is one per row."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} as class indices must be a 1-D integer array, got dtype "
                        f"{arr.dtype} and shape {shape_str(arr.shape)}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must hold one class index per row ({n}), got "
                         f"{shape_str(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(arr.shape)}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or (n_classes is not None and high >= n_classes):
        expected = f"[0, {n_classes - 1}]" if n_classes is not None else ">= 0"
        raise ValueError(f"{name} must be class indices in {expected}, got values in "
                         f"[{low}, {high}]")
    return arr.astype(np.intp, copy=False)


def check_header_names(name: str, columns, label=None, *, stacklevel: int = 3) -> None:
    """Refuse a CSV header that names a column twice: columns are matched by name (a
    model's features in evaluate and predict), which would then read the wrong one.
    Warn when every name is a number, or every one but the label column's (``label``:
    its name or position): a file without a header row then loses its first row of
    data, read as the names."""
    twice = sorted(c for c, n in Counter(columns).items() if n > 1 and c)
    if twice:
        raise ValueError(f"{name}: the header names {twice} more than once; columns are "
                         f"matched by name, so each name must be unique")
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        label = columns[label] if -len(columns) <= label < len(columns) else None
    words = [c for c in columns if not is_number(c)]
    if columns and (not words or (len(columns) >= 3 and words == [label])):
        but = f" but {words[0]!r}" if words else ""
        numbers = [c for c in columns if c not in words]
        warnings.warn(f"{name}: every name in the header row{but} is a number ("
                      f"{', '.join(numbers[:3])}{', ...' if len(numbers) > 3 else ''}); if "
                      f"the file has no header row, its first row of data is being read as "
                      f"the column names and left out", UserWarning, stacklevel=stacklevel)


def check_path(path, name: str = "path", *, what: str = "a str or os.PathLike") -> str:
    """``path`` as a str (a bytes path decoded) when it is a str or os.PathLike
    (``TypeError`` naming ``name`` and ``what`` it must be otherwise) and not empty
    (``ValueError``): the one check of a file argument, for readers and writers."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be {what}, got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{name} must be a non-empty file path, got {path!r}")
    return path


def check_feature_columns(feature_columns) -> None:
    """A CSV reader's ``feature_columns``: a non-empty list of distinct names (a bare
    string would be read as its letters)."""
    names = ([] if isinstance(feature_columns, str) or not hasattr(feature_columns, "__iter__")
             else list(feature_columns))   # (an ndarray or a pandas Index too)
    if not names:
        raise TypeError(f"feature_columns must be a non-empty list of column names, got "
                        f"{type(feature_columns).__name__} {feature_columns!r}")
    twice = sorted(str(k) for k, n in Counter(names).items() if n > 1)
    if twice:
        raise ValueError(f"feature_columns names {twice} more than once")


def check_named_features(name: str, columns, features) -> None:
    """Refuse an unnamed header column read as a feature: columns are matched by name,
    and an unnamed first column is most often the index ``DataFrame.to_csv`` writes,
    which is no feature (one left unread, through ``feature_columns``, is no matter)."""
    unnamed = [c for c in features if columns[c] == ""]
    if unnamed:
        hint = (" (an unnamed first column is often a DataFrame's index: write the file "
                "with to_csv(index=False))" if unnamed[0] == 0 else
                " (unnamed columns at the end are often a spreadsheet's empty ones: delete "
                "them)" if all(c == "" for c in columns[unnamed[0]:]) else "")
        raise ValueError(f"{name}: column {unnamed[0] + 1} of the header has no name; "
                         f"columns are matched by name, so name it{hint}")


#: The cells pandas' ``read_csv`` reads as missing values (its default ``na_values``):
#: refused in a label column, by line, rather than taken as a class named "NA" (or as
#: turning a column of numbers into one of class names); named in a feature column.
MISSING_CELLS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN",
                           "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN",
                           "None", "n/a", "nan", "null"})


def missing_cell(text: str) -> bool:
    """Whether a (stripped) CSV cell is one pandas reads as a missing value."""
    return text in MISSING_CELLS


def feature_cell_error(name, line, column, cell) -> ValueError:
    """The error for a feature cell that is no finite number: its place, and what to
    do about a missing value or a column of text (every CSV reader raises this one)."""
    col = repr(column) if isinstance(column, str) else str(column)
    where = f"{name}, line {line}, column {col}"
    text = cell.strip()
    if missing_cell(text):
        return ValueError(f"{where}: a missing value ({cell_text(text)}); chainrule fills "
                          f"none in unless asked: drop those rows, fill them first (e.g. "
                          f"scikit-learn's SimpleImputer), or train with --impute "
                          f"(chainrule train; load_csv's missing='nan' reads them as NaN)")
    if is_number(text):
        return ValueError(f"{where}: feature values must be finite, got {cell_text(text)}")
    return ValueError(f"{where}: expected a number, got {cell_text(cell)}; a column of "
                      f"text must be left out (train --ignore-columns, load_csv's "
                      f"feature_columns), encoded as numbers, or read as categories "
                      f"(load_csv's categories='auto'; chainrule train does so itself "
                      f"for a column of text and no numbers)")


def first_non_finite(arr) -> tuple[int, int] | None:
    """``(row, column)`` of the first NaN or infinity of a 2-D array (rows of
    features), or None: for messages that name where the bad value is."""
    bad = np.argwhere(~np.isfinite(arr))
    return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][1]))


def cell_count_error(name, line, width, row, expected="") -> ValueError:
    """The error for a CSV row of ``len(row)`` cells where ``width`` are due (``line``: its
    last line). A quote opened and never closed makes one cell of the lines after it:
    the message then says on which line that cell began."""
    # A quote left open swallows the rest of the file into the row's last cell (that
    # last line's end too): a short row whose last cell spans lines.
    spanned = sum(cell.count("\n") for cell in row) - bool(row and row[-1].endswith("\n"))
    left_open = spanned and len(row) < width and "\n" in row[-1]
    hint = (f"; a quoted cell runs from line {line - spanned} to line {line}: is a quote on "
            f"line {line - spanned} left open?" if left_open else "")
    return ValueError(f"{name}, line {line}: expected {width} cells{expected}, got "
                      f"{len(row)}{hint}")


def csv_error_reason(exc) -> str:
    """The ``csv`` module's error said for a user: its bare-CR message asks about a
    "universal-newline mode" no user of chainrule chooses."""
    if "new-line character seen in unquoted field" in str(exc):
        return ("its lines end in a bare carriage return (CR, as old Mac files do); "
                "convert them to LF or CRLF line endings")
    return str(exc)


def without_trailing_delimiter(cells: list) -> list:
    """``cells`` less its last cell when that one is blank and not the only one: what a
    delimiter at the end of a line (``a,b,c,``, as some exporters write every line)
    leaves. Every CSV reader drops it from the header row and from a row that has one
    cell more than the header, so that such files read like the same ones without."""
    return cells[:-1] if len(cells) > 1 and not cells[-1].strip() else cells


def csv_float(cell: str) -> float:
    """A CSV cell as a float, as ``float`` reads it but without digit separators.

    ``float("1_000")`` is 1000.0 (Python's literal syntax), but no CSV writer puts
    underscores in a number and pandas' parser refuses them: every chainrule reader
    refuses them, so that they all read a file alike.
    """
    if "_" in cell:
        raise ValueError(f"could not convert string to float: {cell!r}")
    return float(cell)


def cell_text(cell: str, limit: int = 40) -> str:
    """``repr(cell)`` for an error message, cut after ``limit`` characters: a CSV cell
    may be megabytes long."""
    if len(cell) <= limit:
        return repr(cell)
    return f"{cell[:limit]!r}... ({len(cell)} characters)"


def is_number(text: str) -> bool:
    """Whether :func:`csv_float` reads ``text`` (a CSV cell or header name)."""
    try:
        csv_float(text)
    except ValueError:
        return False
    return True


#: The longest CSV cell chainrule's readers accept: the largest a C ``long`` holds on
#: every platform (the csv module's own default is 128 KiB; pandas has no limit).
CSV_FIELD_LIMIT = 2**31 - 1


@contextlib.contextmanager
def csv_field_limit():
    """Lift the ``csv`` module's cell size limit for the ``with`` block, then restore it.

    The limit is process-wide state of the csv module (``csv.field_size_limit``), so it
    is raised only while chainrule's readers parse, not for the rest of the program.
    A reader that yields between rows parses each batch of rows inside its own block.
    """
    import csv  # here: `import chainrule` loads no file-format module (issue 10)

    old = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def warn_promoted(index: int, layer, want, got) -> bool:
    """Warn that ``layers[index]`` turned inputs of dtype ``want`` into ``got`` (a
    float32 network computing in float64 from there on: twice the memory and time);
    returns True, for the caller to warn once."""
    warnings.warn(f"layers[{index}] ({layer!r}) returned {got} from {want} inputs, so the "
                  f"network computes in {got} from there on (in a float32 network: twice "
                  f"the memory and time); cast its output, e.g. out.astype(inputs.dtype), "
                  f"or keep its constants in the input's dtype", UserWarning, stacklevel=4)
    return True


def check_same_rows(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of rows, got "
                         f"{name_a} {shape_str(a.shape)} and {name_b} {shape_str(b.shape)}")


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a bool after checking it is True or False (NumPy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float after checking it is finite and positive."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_finite_float(value, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {float(value)!r}")
    return float(value)


def check_in_interval(value, name: str, low: float, high: float, *, low_closed: bool = True,
                      high_closed: bool = False) -> float:
    """Return ``value`` as a float after checking it lies in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    if not (np.isfinite(value) and above and below):
        interval = ("[" if low_closed else "(") + f"{low}, {high}" + ("]" if high_closed else ")")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` after checking it is one of ``choices`` (a name, so a string)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_rng(rng, name: str = "rng"):
    """Return a random source: ``None`` means NumPy's global (legacy) generator.

    An int seeds a new ``numpy.random.Generator``; a ``Generator`` or a legacy
    ``RandomState`` is used as it is. The global generator is kept for ``None``
    because the homework draws its initial weights from it after ``np.random.seed``.
    """
    if rng is None:
        return np.random.mtrand._rand
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} seed must be >= 0, got {rng!r}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, "
                    f"got {type(rng).__name__}")


def key_differences(mapping, expected) -> tuple[list, list]:
    """``(missing, extra)``: the ``expected`` keys ``mapping`` lacks (in ``expected``'s
    order) and the keys it has beyond them (sorted)."""
    missing = [k for k in expected if k not in mapping]
    extra = sorted((k for k in mapping if k not in expected), key=str)
    return missing, extra


def check_keys(what: str, mapping, expected) -> None:
    """Raise ``ValueError`` unless ``mapping`` has exactly the keys ``expected``."""
    missing, extra = key_differences(mapping, expected)
    if missing or extra:
        raise ValueError(f"{what} has missing keys {missing} and unexpected keys {extra}; "
                         f"expected exactly {list(expected)}")
