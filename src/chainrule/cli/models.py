"""``chainrule evaluate``, ``predict`` and ``export``: commands on a saved model file."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._threads import blas_threads
from ..models import Network
from ._common import (
    CommandError,
    UsageError,
    add_data_arguments,
    brief_list,
    check_data_flags,
    check_in_dtype_range,
    check_output_dir,
    check_output_file,
    data_kind,
    exit_status,
    format_table,
    model_file_hint,
    no_such_column,
    positive_int,
    regression_metrics,
    separator_hint,
)
from ._stream import ConfusionCounts, iter_chunks, prediction_writer

__all__ = ["add_model_parsers"]


@dataclass
class _Saved:
    """A model file as the commands use it."""

    model: Any  # a Network or a fitted estimator
    network: Any
    classes: list | None  # None for a regressor
    n_features: int
    feature_names: list | None  # the columns it was trained on (CSV / DataFrame)
    label_column: str | None
    categories: dict   # its columns of text: their categories (one-hot, in that order)
    # The network's inputs: the feature columns, each column of text as one
    # ``column=category`` input per category
    input_names: list | None
    # train --ignore-columns: columns of its files it left out, which predict and
    # evaluate skip too (other extra columns need --ignore-extra-columns)
    ignored_columns: list = field(default_factory=list)
    # train --impute: each numeric column's training median, for missing cells
    medians: dict | None = None

    @property
    def regressor(self) -> bool:
        return self.classes is None and not _is_classifier(self.network)

    @property
    def scores(self) -> bool:
        """A classifier whose outputs are class scores, not probabilities (hinge loss)."""
        return _is_classifier(self.network) and not _gives_probabilities(self.network)


def _gives_probabilities(network) -> bool:
    """A classifier with probabilities (cross-entropy)."""
    # A binary MLPClassifier has one logistic output; its predict_proba has two columns.
    from ..losses import BinaryCrossEntropy, CategoricalCrossEntropy

    return isinstance(network.loss, (CategoricalCrossEntropy, BinaryCrossEntropy))


def _is_classifier(network) -> bool:
    """A classifier of either kind: probabilities, or the scores of a multi-margin loss."""
    from ..losses import is_multiclass

    return _gives_probabilities(network) or is_multiclass(network.loss)


def _load_model(path) -> _Saved:
    """The model in ``path``: a classifier (cross-entropy, or multi-margin, whose class
    scores stand where probabilities would) or a regressor (mse, squared_error, l1,
    huber)."""
    from .. import io

    try:
        model = io.load(path)
    except ValueError as exc:   # ModelFileError among them
        raise CommandError(f"{exc}{model_file_hint(path)}") from None
    network = model if hasattr(model, "layers") else getattr(model, "model_", None)
    if network is None or not (_is_classifier(network)
                               or getattr(network.loss, "linear_outputs", False)):
        loss = "" if network is None else f" with a {type(network.loss).__name__} loss"
        raise CommandError(f"{path}: holds a {type(model).__name__}{loss}, neither a "
                           f"classifier (cross-entropy or multi-margin loss) nor a "
                           f"regressor (mse, squared_error, l1 or huber loss); use it from "
                           f"Python (chainrule.io.load)")
    meta = io.read_metadata(path)
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = meta.get("classes")
    if classes is not None:
        classes = np.asarray(classes).tolist()
        width = network.n_outputs if network.n_outputs > 1 else 2   # (one logistic output)
        if _is_classifier(network) and (not isinstance(classes, list) or len(classes) != width
                                        or len({str(c) for c in classes}) != len(classes)):
            raise CommandError(f"{path}: its metadata: classes must be {width} distinct "
                               f"names, one per class of the network, got {classes!r}")
    names = meta.get("feature_names")
    if names is None and getattr(model, "feature_names_in_", None) is not None:
        names = [str(n) for n in model.feature_names_in_]
    n_features = getattr(model, "n_features_in_", None) or network.n_features
    categories, inputs = meta.get("categories") or {}, names
    if categories:
        from ..categories import check_fits, one_hot_names

        try:
            check_fits(categories, names or [], network.n_features)
        except (TypeError, ValueError) as exc:
            raise CommandError(f"{path}: its metadata: {exc}") from None
        inputs = one_hot_names(names, categories)
    ignored = meta.get("ignored_columns") or []
    if not isinstance(ignored, list) or not all(isinstance(c, str) for c in ignored):
        raise CommandError(f"{path}: its metadata: ignored_columns must be a list of column "
                           f"names, got {ignored!r}")
    return _Saved(model, network, classes if _is_classifier(network) else None, n_features,
                  names, meta.get("label_column"), categories, inputs, ignored,
                  _medians(path, meta, names, categories))


def _medians(path, meta, names, categories) -> dict | None:
    """The medians of a model of ``train --impute`` (its metadata's ``impute``): one
    finite number for each numeric feature column; None for another model."""
    from ..tables import metadata_medians

    try:
        return metadata_medians(meta, names or [], categories)
    except ValueError as exc:
        raise CommandError(f"{path}: its metadata: {exc}") from None


def _csv_columns(args, saved: _Saved, names: list, *, require_labels):
    """``(label column, feature columns)`` to read from a CSV ``--data`` for a model
    that knows its feature names: matched by name, in any order; missing columns, and
    extra ones without --ignore-extra-columns, are refused in one line (exit 1)."""
    from ..data import csv_header

    header = csv_header(args.data)
    label = args.label_column
    if label is not None and label not in header:
        raise no_such_column("--label-column", label, "--data", args.data, header)
    if label is not None and label in names:
        raise UsageError(f"--label-column {label!r} is one of the columns the model "
                         f"{args.model} takes as features" + (
                             f"; it was trained to predict {saved.label_column!r}"
                             if saved.label_column else ""))
    if label is None and saved.label_column in header:
        label = saved.label_column
    if label is None and require_labels and saved.label_column is not None:
        # The model names its label column: the file lacks it, no flag is missing.
        raise CommandError(f"{args.data}: has no column {saved.label_column!r}, the label "
                           f"column the model {args.model} was trained on; its columns are "
                           f"{brief_list(header)}{separator_hint(header)} (give "
                           f"--label-column NAME if the labels are under another name)")
    if label is None and require_labels:
        raise UsageError(f"--data {args.data} is a CSV file: give --label-column NAME, the "
                         f"header name of the column holding the labels")
    _check_feature_columns(args, header, names, read_besides={label, *saved.ignored_columns})
    return label, list(names)


def _check_feature_columns(args, header, names, read_besides) -> None:
    """Refuse (exit 1) a CSV header missing a feature column of the model, or holding
    columns it was not trained on beside ``read_besides`` (unless
    --ignore-extra-columns)."""
    missing = [c for c in names if c not in header]
    if missing:
        raise CommandError(f"{args.data}: missing columns {missing} that the model "
                           f"{args.model} was trained on; its header has "
                           f"{header}{separator_hint(header)}")
    extra = [c for c in header if c not in names and c not in read_besides]
    if extra and not args.ignore_extra_columns:
        raise CommandError(f"{args.data}: columns {extra} are not among those the model "
                           f"{args.model} was trained on; give --ignore-extra-columns to "
                           f"skip them")


def _data_chunks(args, saved: _Saved, *, require_labels=True):
    """``(X, y)`` chunks of --data: a CSV is matched by column name when the model knows
    its feature names; other files (and older models) are read by position."""
    label, features = args.label_column, None
    if data_kind(args.data) == "csv" and saved.feature_names is not None:
        label, features = _csv_columns(args, saved, saved.feature_names,
                                       require_labels=require_labels)
    check_data_flags(args.data, label, args.labels, require_labels=require_labels)
    return iter_chunks(args.data, label=label, features=features, labels_path=args.labels,
                       require_labels=require_labels,
                       labels="parse" if require_labels else "skip",
                       categories=saved.categories if features is not None else None,
                       medians=saved.medians if features is not None else None)


def _id_chunks(args, saved: _Saved):
    """``(X, ids)`` chunks of a CSV --data for ``predict --id-column``: the id column is
    read as text in the place of the labels, the model's features by name."""
    from ..data import csv_header

    if data_kind(args.data) != "csv" or saved.feature_names is None:
        raise UsageError("--id-column applies to a CSV --data with a model that knows its "
                         "columns by name (one 'chainrule train' wrote from a CSV)")
    header = csv_header(args.data)
    if args.id_column not in header:
        raise no_such_column("--id-column", args.id_column, "--data", args.data, header)
    if args.id_column in saved.feature_names:
        raise UsageError(f"--id-column {args.id_column!r} is one of the model's features")
    _check_feature_columns(args, header, saved.feature_names,
                           read_besides={args.id_column, saved.label_column,
                                         *saved.ignored_columns})
    return iter_chunks(args.data, label=args.id_column, features=list(saved.feature_names),
                       labels_path=None, require_labels=False, labels="text",
                       categories=saved.categories, medians=saved.medians)


def _check_image_shape(saved: _Saved, data_path) -> None:
    """A network of images (its first layer an Unflatten to (C, H, W)) given a file that
    stores images of another shape: refused by shape, not by a count of columns (a
    24x24 image has as many pixels as an 18x32 one)."""
    from ..conv import Unflatten
    from ..datafiles import stored_row_shape

    first = saved.network.layers[0][0] if hasattr(saved.network, "layers") else None
    if not isinstance(first, Unflatten) or len(first.shape) != 3:   # images (C, H, W) only
        return
    stored = stored_row_shape(data_path)
    if stored is None or len(stored) < 2:
        return
    images = (1, *stored[:2]) if len(stored) == 2 or stored[2:] == (1,) else tuple(stored)
    if tuple(stored) != tuple(first.shape) and images != tuple(first.shape):
        raise CommandError(f"{data_path}: holds images of shape {'x'.join(map(str, images))} "
                           f"(C x H x W), but the model takes "
                           f"{'x'.join(map(str, first.shape))}")


def _outputs(saved: _Saved, X, data_path, threads=None):
    """Class probabilities (N, K) (class scores for a multi-margin model), or predicted
    values (N,) of a regressor."""
    _check_image_shape(saved, data_path)
    if X.shape[1] != saved.n_features:
        raise CommandError(f"{data_path}: has {X.shape[1]} feature columns but the model "
                           f"expects {saved.n_features} (for a CSV, is --label-column right?)")
    check_in_dtype_range(X, saved.network.dtype, saved.input_names, data_path,
                         f"the model computes in {saved.network.dtype}")
    X = X.astype(saved.network.dtype, copy=False)
    with warnings.catch_warnings():
        # Columns were matched by name above (or the file has none), so an estimator
        # fitted on a DataFrame need not warn about every array.
        warnings.filterwarnings("ignore", message="X does not have valid feature names",
                                category=UserWarning)
        # A network takes threads=; around an estimator, which takes none (as
        # scikit-learn's), the BLAS is set to that count for the call.
        network = isinstance(saved.model, Network)
        given = {"threads": threads} if network and threads is not None else {}
        with (blas_threads(threads, 0.0) if not network and threads is not None
              else contextlib.nullcontext()):
            if saved.regressor:
                return np.asarray(saved.model.predict(X, **given),
                                  dtype=np.float64).reshape(len(X), -1)[:, 0]
            if saved.scores:   # the network's predict: its scores
                return np.asarray(saved.model.predict(X, **given), dtype=np.float64)
            return np.asarray(saved.model.predict_proba(X, **given), dtype=np.float64)


def _label_indices(y, classes, n_classes, data_path):
    """Map the data's labels to the model's class indices 0..K-1."""
    if classes is not None:
        classes = np.asarray(classes)
        names = [str(c) for c in classes.tolist()]
        y = np.asarray(y)
        if classes.dtype.kind in "iuf" and y.dtype.kind in "iuf":
            # Numbers compare as numbers: a label 1.0 in the data is the class 1.
            lookup = {c: i for i, c in enumerate(classes.tolist())}
            keys = y.tolist()
        else:
            lookup = {name: i for i, name in enumerate(names)}
            keys = [str(v) for v in y.tolist()]
        unknown = sorted({v for v in keys if v not in lookup})
        if unknown:
            raise CommandError(f"{data_path}: labels {unknown[:5]} are not among the model's "
                               f"classes {names}")
        return np.array([lookup[v] for v in keys], dtype=np.int64)
    y = np.asarray(y)
    integral = y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0))
    if not integral or y.min() < 0 or y.max() >= n_classes:
        shown = np.unique(y)[:5].tolist()
        raise CommandError(f"{data_path}: the model file stores no class names, so labels "
                           f"must be class indices 0..{n_classes - 1}; got labels such as "
                           f"{shown}")
    return y.astype(np.int64)


def _class_names(classes, n_classes):
    if classes is None:
        return [str(k) for k in range(n_classes)]
    return [str(c) for c in np.asarray(classes).tolist()]


def _print_metrics(counts: ConfusionCounts, names) -> None:
    """The per-class table with its macro average (scikit-learn's classification_report:
    over the classes in the data or the predictions; a class of the model that neither
    holds would count as a 0 it has not earned), the balanced accuracy (the mean recall
    over the classes the data holds, scikit-learn's balanced_accuracy_score), and the
    confusion matrix."""
    precision, recall, f1, support = counts.per_class()
    K = len(names)
    rows = [[names[k], f"{precision[k]:.4f}", f"{recall[k]:.4f}", f"{f1[k]:.4f}",
             str(support[k])] for k in range(K)]
    seen = (support > 0) | (counts.matrix.sum(axis=0) > 0)
    rows.append(["macro avg", f"{precision[seen].mean():.4f}", f"{recall[seen].mean():.4f}",
                 f"{f1[seen].mean():.4f}", str(support.sum())])
    for line in format_table(["class", "precision", "recall", "f1", "support"], rows):
        print(line)
    print()
    # An imbalanced table's accuracy hides a class it misses; this does not.
    print(f"balanced accuracy = {recall[support > 0].mean():.4f} (mean recall over the "
          f"{int((support > 0).sum())} classes in the data)")
    print()
    print("confusion matrix (rows: true class, columns: predicted class)")
    C = counts.matrix
    for line in format_table([""] + names, [[names[k]] + C[k].tolist() for k in range(K)]):
        print(line)


def _evaluate_regression(args, saved: _Saved, chunks) -> None:
    # Targets and predictions only (16 bytes a row), so that the metrics are those of
    # one pass over all rows, to the last bit.
    ys, preds = [], []
    for X, y in chunks:
        if np.asarray(y).dtype.kind not in "iuf":
            raise CommandError(f"{args.data}: the model is a regressor but the labels are "
                               f"not numbers (such as {np.unique(y)[:3].tolist()})")
        ys.append(np.asarray(y, dtype=np.float64))
        preds.append(_outputs(saved, X, args.data, args.threads))
    y = np.concatenate(ys)
    rmse, mae, r2 = regression_metrics(y, np.concatenate(preds))
    print(f"model {args.model}: {type(saved.model).__name__}, {saved.n_features} inputs, "
          f"regression")
    print(f"data  {args.data}: {len(y)} rows")
    print(f"RMSE = {rmse:.6g}")
    print(f"MAE  = {mae:.6g}")
    print(f"R²   = {r2:.4f}")


def _count_classes(args, saved: _Saved, chunks) -> ConfusionCounts:
    """The confusion matrix of the model's predicted classes, chunk by chunk."""
    K = max(2, saved.network.n_outputs)  # a binary classifier's one logistic output: 2
    counts = ConfusionCounts(K)
    for X, y in chunks:
        proba = _outputs(saved, X, args.data, args.threads)
        counts.add(_label_indices(y, saved.classes, K, args.data), proba.argmax(axis=1))
    return counts


def _require_data(args) -> None:
    if args.data is None:
        raise UsageError("the following arguments are required: --data")


def _cmd_evaluate(args) -> int:
    _require_data(args)
    if args.plot:
        check_output_dir(args.plot, "--plot")
    saved = _load_model(args.model)
    if args.plot and saved.regressor:
        raise UsageError("--plot draws a confusion matrix, which a regressor has none of")
    if args.plot:
        try:  # checked before any work, not after the table is printed
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError("--plot needs matplotlib, which is not installed: pip "
                               "install chainrule[plot] (or leave out --plot)") from None
    chunks = _data_chunks(args, saved)
    if saved.regressor:
        _evaluate_regression(args, saved, chunks)
        return 0
    counts = _count_classes(args, saved, chunks)
    K, n, correct = counts.matrix.shape[0], int(counts.matrix.sum()), int(counts.matrix.trace())
    names = _class_names(saved.classes, K)
    print(f"model {args.model}: {type(saved.model).__name__}, {saved.n_features} inputs, "
          f"{K} classes")
    print(f"data  {args.data}: {n} rows")
    print(f"accuracy = {correct / n:.4f} ({correct}/{n})")
    print()
    _print_metrics(counts, names)
    if args.plot:
        from ..plots import plot_confusion_matrix

        os.makedirs(args.plot, exist_ok=True)
        out = os.path.join(args.plot, "confusion_matrix.png")
        true, pred = counts.pairs()
        plot_confusion_matrix(np.asarray(names)[true], np.asarray(names)[pred],
                              labels=names, path=out)
        print(f"\nwrote {out}")
    return 0


def _cmd_predict(args) -> int:
    _require_data(args)
    from .._fileformat import STDOUT_NAMES, atomic_write
    from ..datafiles import csv_delimiter

    inputs = [p for p in (args.model, args.data, args.labels) if p is not None]
    output = "-" if args.output is None else args.output
    if output not in STDOUT_NAMES:
        check_output_file(output, "--output", refuse_same_as=inputs)
    if str(output).lower().endswith((".npz", ".npy", ".onnx", ".xlsx", ".xls", ".xlsm",
                                     ".xlsb", ".ods", ".parquet", ".feather", ".json",
                                     ".pkl")):
        raise UsageError(f"--output {output}: predict writes CSV text, which a file of "
                         f"that name would not hold (a spreadsheet opens a .csv); give a "
                         f".csv name (or .tsv for tab-separated text)")
    saved = _load_model(args.model)
    chunks = _id_chunks(args, saved) if args.id_column else _data_chunks(
        args, saved, require_labels=False)
    names = None
    if not saved.regressor:  # a binary classifier's predict_proba has two columns
        names = _class_names(saved.classes, max(2, saved.network.n_outputs))
    # Rows are written as their chunk is predicted: into the temporary file of the
    # one write path (a failure leaves no half-written --output), or to stdout.
    write, count = prediction_writer(
        chunks, lambda X: _outputs(saved, X, args.data, args.threads), names,
        delimiter=csv_delimiter(str(output)), id_column=args.id_column,
        prefix="score_" if saved.scores else "p_")
    if str(output).lower().endswith(".gz"):  # as train --save-test writes one
        write = _gzipped(write)
    atomic_write(output, write, refuse_same_as=inputs, allow_stdout=True)
    if output not in STDOUT_NAMES:
        print(f"wrote {count()} predictions to {output}", file=sys.stderr)
    return 0


def _gzipped(write):
    """``write`` through gzip (mtime 0: the same predictions, the same bytes)."""
    import gzip

    def write_gzip(fh):
        with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            write(gz)
    return write_gzip


def _check_opset(opset) -> None:
    """--opset between io.MIN_ONNX_OPSET and the newest the installed onnx knows."""
    from ..io import MIN_ONNX_OPSET

    try:
        import onnx
        high = onnx.defs.onnx_opset_version()
    except ImportError:  # export_onnx reports the missing package (exit 1)
        high = None
    if opset < MIN_ONNX_OPSET or (high is not None and opset > high):
        newest = f"{high}, the newest the installed onnx knows" if high else "newest"
        raise UsageError(f"--opset must be between {MIN_ONNX_OPSET} and {newest}; got {opset}")


def _cmd_export(args) -> int:
    from .. import io

    _check_opset(args.opset)
    check_output_file(args.output, "output file", refuse_same_as=[args.model])
    saved = _load_model(args.model)
    dtype, note = args.dtype, ""
    if dtype is None and io.onnx.needs_float32(saved.network):   # export_onnx's default
        note = " in float32 (onnxruntime runs convolutions in float32 only; --dtype " \
            "float64 keeps the model's)"
    # a train --impute model's graph fills NaN as predict fills missing cells: a number
    # with its training median, a one-hot column of text with 0 (no category)
    fill = None if saved.medians is None else [saved.medians.get(name, 0.0)
                                               for name in saved.input_names or []]
    try:
        io.export_onnx(saved.model, args.output, opset=args.opset, classes=saved.classes,
                       feature_names=saved.input_names, dtype=dtype, missing_values=fill)
    except ValueError as exc:
        if "opset must be at least" not in str(exc):
            raise
        raise UsageError(f"{exc} (--opset sets it)") from None
    first = next(iter(saved.categories), None)
    one_hot = (f" (its input X holds the categorical columns {sorted(saved.categories)} one-hot: "
               f"the feature_names in its metadata, such as "
               f"'{first}={saved.categories[first][0]}')" if first is not None else "")
    filled = ("; a NaN in X is filled in the graph as predict fills a missing cell (a "
              "number's training median, 0 in a one-hot column)" if saved.medians else "")
    print(f"wrote {args.output}{note}{one_hot}{filled}")
    return 0


def _add_column_flag(p) -> None:
    """--ignore-extra-columns, and --threads, of ``evaluate`` and ``predict``."""
    p.add_argument("--ignore-extra-columns", action="store_true",
                   help="CSV: skip columns the model was not trained on (by default they "
                        "are refused); columns are matched by name when the model file "
                        "stores its feature names, as 'chainrule train' writes them")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="BLAS threads (default: chosen from the model's size, as train "
                        "does)")


def add_model_parsers(sub) -> None:
    """The ``evaluate``, ``predict`` and ``export`` subcommands of ``sub``."""
    from ..io import DEFAULT_ONNX_OPSET

    ev = sub.add_parser(
        "evaluate", help="accuracy and confusion matrix, or RMSE, MAE and R²",
        description="Evaluate a saved model (written by 'chainrule train --save' or "
                    "chainrule.io.save) on a labelled data file. A classifier: the "
                    "accuracy, each class's precision, recall and F1 with their macro "
                    "average, the balanced accuracy and the confusion matrix; a "
                    "regressor: RMSE, MAE and R².",
        epilog=exit_status("a --plot destination"))
    ev.add_argument("model", help="model file (.npz) written by chainrule")
    add_data_arguments(ev)
    _add_column_flag(ev)
    ev.add_argument("--plot", metavar="DIR",
                    help="classifiers: also draw the confusion matrix to "
                         "DIR/confusion_matrix.png (needs matplotlib, checked first)")
    ev.set_defaults(func=_cmd_evaluate)

    pr = sub.add_parser(
        "predict", help="write predictions as CSV",
        description="Predict with a saved model. Writes one CSV row per data row: the "
                    "row index, the predicted class and the probability of every class "
                    "(columns p_<class>), or for a regressor the predicted value, to "
                    "--output or to standard output.",
        epilog=exit_status("an --output destination", labels=False))
    pr.add_argument("model", help="model file (.npz) written by chainrule")
    add_data_arguments(pr, labels_required=False)
    _add_column_flag(pr)
    pr.add_argument("--output", "-o", metavar="CSV",
                    help="write the predictions here (default: standard output); "
                         "comma-separated, tab-separated for a .tsv name, gzipped for "
                         "a .gz name (.csv.gz, .tsv.gz)")
    pr.add_argument("--id-column", metavar="NAME",
                    help="CSV: write this column's values in place of the row number, so "
                         "that the predictions join back to their records (an ID the model "
                         "was trained without, e.g. with train --ignore-columns)")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser(
        "export", help="convert a saved model to ONNX",
        description="Write a saved model as a standard ONNX graph (Gemm, Relu, "
                    "LeakyRelu/PRelu, Tanh, Sigmoid, Softmax; Conv, Pad, MaxPool, "
                    "AveragePool, BatchNormalization, LayerNormalization, Reshape and "
                    "Flatten for the image and normalisation layers) that onnxruntime and "
                    "other runtimes can serve: a classifier outputs 'label' (the class "
                    "names stored in the model file), 'probabilities' and 'logits' (a "
                    "multi-margin one 'label' and 'logits' only); a regressor 'outputs'. "
                    "Needs the onnx package: pip install chainrule[onnx].",
        epilog=exit_status("an ONNX destination", data=False))
    ex.add_argument("model", help="model file (.npz) written by chainrule")
    ex.add_argument("output", help="ONNX file to write (not a directory)")
    ex.add_argument("--opset", type=int, default=DEFAULT_ONNX_OPSET,
                    help="ONNX opset version (default %(default)s)")
    ex.add_argument("--dtype", choices=["float32", "float64"], default=None,
                    help="the graph's dtype, the weights cast to it (default the model's, "
                         "but float32 for a float64 network with convolutions or pools: "
                         "onnxruntime runs those in float32 only)")
    ex.set_defaults(func=_cmd_export)
