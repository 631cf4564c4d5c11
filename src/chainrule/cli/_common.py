"""What every ``chainrule`` command shares: the two error kinds and the exit statuses,
the parser class, the data-file flags and their checks, the checks of files about to be
written, and plain-text tables."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..tables import brief_list

__all__ = ["CommandError", "UsageError", "exit_status", "TRAIN_EXIT_STATUS", "USER_ERRORS",
           "Parser", "positive_int", "add_data_arguments", "data_kind", "check_data_flags",
           "check_output_file", "check_output_dir", "format_table", "regression_metrics",
           "report_unknown_flags", "separator_hint", "brief_list", "no_such_column",
           "DATA_FORMATS", "BROKEN_PIPE_STATUS", "check_in_dtype_range", "model_file_hint"]


class CommandError(Exception):
    """A problem with the user's files or data: one line on stderr, exit status 1."""


class UsageError(Exception):
    """Bad usage (a flag's value, or flags that do not fit together or fit the data
    file): one line on stderr naming the flag, exit status 2, as argparse's own."""


def exit_status(destination: str, data: bool = True, labels: bool = True) -> str:
    """The exit statuses, for the --help of evaluate, predict and export: the one
    ``destination`` the command writes, the data flags' errors if it reads data, and a
    missing --labels if it needs them."""
    data_problems = "a missing or malformed data or model file, data that does not fit " \
        "the model, missing or unexpected columns" if data else "a missing or malformed " \
        "model file, a model ONNX cannot hold"
    usage = ", a flag that does not apply to the data file's format, a missing or " \
        f"unknown --label-column{', a missing --labels' if labels else ''}" if data else ""
    return (f"Exit status: 0 on success; 1 for a file or data problem ({data_problems}, "
            f"{destination} that cannot be written, a missing optional package); 2 for bad "
            f"usage (an unknown flag, a flag value out of range{usage}); 141 when the reader "
            f"of standard output closes it early (as '| head' does), quietly.")

#: The exit statuses, for the --help of train.
TRAIN_EXIT_STATUS = ("Exit status: 0 on success; 1 for a file or data problem (a missing "
                     "or malformed data file, a --save/--save-test/--plot/--checkpoint "
                     "destination that cannot be written, --plot without matplotlib: all "
                     "checked before any training); 2 for bad usage (an unknown flag, a "
                     "flag value out of range, a flag that does not apply to the data "
                     "file's format, a missing or unknown --label-column); 130 when "
                     "interrupted with Ctrl-C; 141 when the reader of standard output "
                     "closes it early (as '| head' does), quietly.")

#: The status of a command whose standard output was closed by its reader: that of a
#: Unix tool killed by SIGPIPE (128 + 13), which is what a shell shows for `yes | head`.
#: Not 0, so that under `set -o pipefail` a script can tell the output was cut short.
BROKEN_PIPE_STATUS = 141

#: The data files the commands read, as messages list them.
DATA_FORMATS = (".csv or .tsv (gzipped or not: .csv.gz, .tsv.gz), .npz (arrays X and y), "
                ".npy (features), or an IDX file (gzipped or not)")

# Errors that come from the user's files, data or environment rather than from a bug:
# main() reports them in one line and returns 1. ModelFileError is a ValueError.
USER_ERRORS = (CommandError, ValueError, TypeError, OSError, ImportError,
               FloatingPointError)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (plus a pointer to --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def report_unknown_flags(parser, unknown) -> None:
    """Exit 2 for arguments ``parser`` (a subcommand's) does not know: its usage, then
    one error line naming the closest valid flags."""
    import difflib

    flags = sorted({o for a in parser._actions for o in a.option_strings if o.startswith("--")})
    hints = []
    for arg in unknown:
        if arg.startswith("-"):
            hints += difflib.get_close_matches(arg.split("=")[0], flags, n=2, cutoff=0.6)
        elif "--data" in flags and _looks_like_data(arg):  # `predict MODEL DATA`
            hints.append(f"--data {arg}")
    hint = f"; did you mean {' or '.join(dict.fromkeys(hints))}?" if hints else ""
    parser.print_usage(sys.stderr)
    parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _looks_like_data(name) -> bool:
    """Whether a file name reads as a data file of :data:`DATA_FORMATS`."""
    lower = os.path.basename(name).lower()
    inner = lower[:-3] if lower.endswith(".gz") else lower
    return inner.endswith((".csv", ".tsv", ".npy", ".ubyte")) or lower.endswith(".npz")


def model_file_hint(path) -> str:
    """A hint for a model path that is not a chainrule model file: a data file (the two
    swapped) or an ONNX file ('' for anything else)."""
    name = os.fspath(path)
    if name.lower().endswith(".onnx"):
        return (" (an ONNX file: chainrule reads its own .npz model files; run an ONNX "
                "file with onnxruntime)")
    if _looks_like_data(name) and not name.lower().endswith(".npz"):
        return " (a data file? the model file comes first, then --data DATA)"
    return ""


def positive_int(text):
    """argparse type: an integer >= 1 (anything else is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_data_arguments(p, *, labels_required=True) -> None:
    """--data, --label-column and --labels of ``evaluate`` and ``predict``."""
    labels = ("the labels in the column the model file names, or --label-column"
              if labels_required else "the model's label column, if there, is skipped")
    # Not required=True: argparse would report it before an unknown argument such as
    # the data file given without --data, whose report says what to write.
    p.add_argument("--data", metavar="PATH",
                   help=f"required: the data file: .csv or .tsv, gzipped or not "
                        f"({labels}), .npz (arrays X and y), an IDX images file as "
                        f"distributed for MNIST, gzipped or not, or a .npy file of features "
                        f"(2-D, C order; read a block of rows at a time, never whole)")
    p.add_argument("--label-column", metavar="NAME",
                   help="CSV only: name of the column holding the labels (default: the "
                        "label column stored in the model file, as 'chainrule train' "
                        "writes it" + (")" if labels_required else
                                       "; give it for an older model file, so that the "
                                       "column is not read as a feature)"))
    p.add_argument("--labels", metavar="PATH",
                   help="IDX: the labels file (default: the '*-labels-idx1-ubyte' file "
                        "next to the images file); .npy: a .npy file of one label per row")


def data_kind(path) -> str:
    """``"npy"`` for a ``.npy`` file (read out of core), else ``file_kind``'s answer.

    A ``.zip`` file is refused: ``file_kind`` would take any zip archive for an
    ``.npz``. A file of unknown format is refused naming every format the commands
    read (``file_kind``'s list leaves out the gzipped CSVs and ``.npy``).
    """
    from ..data import file_kind

    name = os.fspath(path)
    if name.lower().endswith((".npy", ".zip")) and not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no such file")
    if name.lower().endswith(".npy"):
        return "npy"
    if name.lower().endswith(".zip"):
        raise CommandError(f"{name}: zip archives are not read; unzip it, or compress the "
                           f"table with gzip instead (.csv.gz, .tsv.gz)")
    try:
        return file_kind(path)
    except ValueError:
        if os.path.isdir(path):
            raise
        raise CommandError(f"{name}: cannot tell the file format from its name or first "
                           f"bytes; expected {DATA_FORMATS}") from None


def no_such_column(flag, value, path_flag, path, header) -> UsageError:
    """The usage error for a column name that is not in ``header``: the header (its
    first names, when wide), the name it most likely meant, a separator hint."""
    import difflib

    by_case = [c for c in header if c.lower() == str(value).lower()]
    # (0.7: 'nope' is not 'income', at 0.6; 'lable' is 'label', at 0.8)
    close = by_case or difflib.get_close_matches(str(value), header, n=1, cutoff=0.7)
    meant = f"; did you mean {close[0]!r}?" if close else ""
    return UsageError(f"{flag} {value!r}: {path_flag} {path} has no such column; its header "
                      f"has {brief_list(header)}{separator_hint(header)}{meant}")


def separator_hint(header) -> str:
    """A hint for a header read as one column that holds ';' (a semicolon-separated
    file, as spreadsheets write in many locales)."""
    if len(header) == 1 and ";" in header[0]:
        return (" (one column holding ';': chainrule reads comma-separated .csv and "
                "tab-separated .tsv files)")
    return ""


def check_data_flags(path, label_column, labels, *, path_flag="--data",
                     labels_flag="--labels", require_labels=True) -> None:
    """Check that the label flags fit the format of the data file ``path``.

    A missing file or one of unknown format raises (exit 1); a flag that does not
    apply to the format, or a label source that is needed but missing, is a
    :class:`UsageError` naming the flag (exit 2).
    """
    from ..data import csv_header, idx_labels_path

    kind = data_kind(path)
    what = {"idx": "an IDX", "npz": "an .npz", "npy": "a .npy", "csv": "a CSV"}[kind]
    if kind == "csv" and label_column is not None:
        columns = csv_header(path)
        if label_column not in columns:
            raise no_such_column("--label-column", label_column, path_flag, path, columns)
    if kind != "csv" and label_column is not None:
        raise UsageError(f"--label-column applies to CSV files, but {path_flag} {path} is "
                         f"{what} file")
    if kind not in ("idx", "npy") and labels is not None:
        raise UsageError(f"{labels_flag} applies to IDX images files and .npy files, but "
                         f"{path_flag} {path} is {what} file")
    if not require_labels:
        return
    if kind == "csv" and label_column is None:
        raise UsageError(f"{path_flag} {path} is a CSV file: give --label-column NAME, the "
                         f"header name of the column holding the labels"
                         f"{separator_hint(csv_header(path))}")
    if kind == "npy" and labels is None:
        raise UsageError(f"{path_flag} {path} is a .npy file of features: give its labels, "
                         f"a .npy file of one label per row, with {labels_flag} PATH")
    if kind == "idx" and labels is None and idx_labels_path(path) is None:
        raise UsageError(f"{path_flag} {path} is an IDX images file and no "
                         f"'*-labels-idx1-ubyte' file sits beside it: give its labels file "
                         f"with {labels_flag} PATH")


def check_output_file(path, flag, refuse_same_as=()) -> None:
    """A file about to be written, checked before any work by the one write path's
    own rules (:func:`chainrule._fileformat.check_destination`: a regular file or a
    new one, not read-only, not a device, FIFO, socket or link loop, not one of the
    command's inputs ``refuse_same_as``; ``None`` entries are skipped), and its
    folder writable. Any refusal is a :class:`CommandError` naming ``flag`` (exit 1)."""
    from .._fileformat import check_destination

    inputs = [p for p in refuse_same_as if p is not None]
    try:
        check_destination(path, name=flag, refuse_same_as=inputs)
    except (ValueError, TypeError, OSError) as exc:
        raise CommandError(f"{flag} {path}: {exc}") from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"{flag} {path}: the directory {folder} is not writable")


def check_output_dir(path, flag) -> None:
    """A folder to write into must be a writable directory or creatable as one."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(f"{flag} {path}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise CommandError(f"{flag} {path}: the directory is not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CommandError(f"{flag} {path}: cannot be created, {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"{flag} {path}: cannot be created, {parent} is not writable")


def check_in_dtype_range(X, dtype, names, where, why) -> None:
    """Refuse (exit 1) raw inputs ``X`` that a model of ``dtype`` cannot hold: a
    float32 model turns values beyond ~3.4e38 into infinities. The message names the
    first such column (``names[j]``, or its position) and ``why`` the model sees raw
    values."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or dtype.itemsize >= np.dtype(np.float64).itemsize or X.size == 0:
        return
    limit = float(np.finfo(dtype).max)
    peaks = np.abs(X).max(axis=0)
    big = np.flatnonzero(peaks > limit)
    if big.size:
        j = int(big[0])
        column = repr(names[j]) if names is not None else str(j)
        raise CommandError(f"{where}: column {column} holds values up to {peaks[j]:.3g}, "
                           f"beyond {dtype.name}'s range (+-{limit:.3g}), and {why}; use "
                           f"a float64 model (train --dtype float64) or rescale the column")


def regression_metrics(y, pred) -> tuple[float, float, float]:
    """``(RMSE, MAE, R²)`` of predictions ``pred`` of targets ``y``. For a constant
    ``y`` R² is 1 when every prediction is exact and 0 otherwise, as scikit-learn's
    ``r2_score`` (``force_finite=True``) and the estimators' ``score`` give it."""
    y = np.asarray(y, dtype=np.float64)
    residual = y - np.asarray(pred, dtype=np.float64)
    # Squares taken in units of the largest target, so that targets beyond ~1e154
    # (whose squares overflow) still give finite metrics; the ratios are unchanged.
    unit = float(np.max(np.abs(y), initial=0.0)) or 1.0
    total = float(np.sum(((y - y.mean()) / unit) ** 2))
    squares = float(np.sum((residual / unit) ** 2))
    r2 = 1.0 - squares / total if total > 0 else float(squares == 0)
    rmse = unit * float(np.sqrt(np.mean((residual / unit) ** 2)))
    return rmse, float(np.mean(np.abs(residual))), r2


def format_table(header, rows) -> list[str]:
    """Right-aligned columns separated by two spaces, one string per line."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True))
            for r in [header] + rows]
