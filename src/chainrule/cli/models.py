"""``chainrule evaluate``, ``predict`` and ``export``: commands on a saved model file."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from ._common import (
    EXIT_STATUS,
    CommandError,
    UsageError,
    add_data_arguments,
    check_data_flags,
    check_output_dir,
    check_output_file,
    format_table,
)

__all__ = ["add_model_parsers"]


def _load_data(args, *, require_labels=True):
    from ..data import load_file

    return load_file(args.data, args.label_column, labels_path=args.labels,
                     require_labels=require_labels)


def _load_model(path):
    """``(model, network, classes, n_features)`` of a saved classifier."""
    from .. import io
    from ..losses import BinaryCrossEntropy, CategoricalCrossEntropy

    model = io.load(path)
    network = model if hasattr(model, "layers") else getattr(model, "model_", None)
    # A binary MLPClassifier has one logistic output; its predict_proba has two columns.
    if network is None or not isinstance(network.loss, (CategoricalCrossEntropy,
                                                         BinaryCrossEntropy)):
        raise CommandError(f"{path}: holds a {type(model).__name__} that is not a "
                           f"classifier (cross-entropy loss); evaluate and predict need one")
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = io.read_metadata(path).get("classes")
    n_features = getattr(model, "n_features_in_", None) or network.n_features
    return model, network, classes, n_features


def _probabilities(model, network, X, n_features, data_path):
    if X.shape[1] != n_features:
        raise CommandError(f"{data_path}: has {X.shape[1]} feature columns but the model "
                           f"expects {n_features} (for a CSV, is --label-column right?)")
    with warnings.catch_warnings():
        # Data files carry no column names, so an estimator fitted on a DataFrame warns
        # about every array; the column count was checked above.
        warnings.filterwarnings("ignore", message="X does not have valid feature names",
                                category=UserWarning)
        proba = model.predict_proba(X.astype(network.dtype, copy=False))
    return np.asarray(proba, dtype=np.float64)


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


def _print_metrics(true, pred, names) -> None:
    """The per-class table and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    K = len(names)
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=np.arange(K), zero_division=0)
    rows = [[names[k], f"{precision[k]:.4f}", f"{recall[k]:.4f}", f"{f1[k]:.4f}",
             str(support[k])] for k in range(K)]
    for line in format_table(["class", "precision", "recall", "f1", "support"], rows):
        print(line)
    print()
    print("confusion matrix (rows: true class, columns: predicted class)")
    C = confusion_matrix(true, pred, labels=np.arange(K))
    for line in format_table([""] + names, [[names[k]] + C[k].tolist() for k in range(K)]):
        print(line)


def _cmd_evaluate(args) -> int:
    check_data_flags(args.data, args.label_column, args.labels)
    if args.plot:
        check_output_dir(args.plot, "--plot")
    model, network, classes, n_features = _load_model(args.model)
    X, y = _load_data(args)
    proba = _probabilities(model, network, X, n_features, args.data)
    K = proba.shape[1]
    true = _label_indices(y, classes, K, args.data)
    pred = proba.argmax(axis=1)
    names = _class_names(classes, K)
    correct = int((pred == true).sum())
    print(f"model {args.model}: {type(model).__name__}, {n_features} inputs, {K} classes")
    print(f"data  {args.data}: {X.shape[0]} rows")
    print(f"accuracy = {correct / len(true):.4f} ({correct}/{len(true)})")
    print()
    _print_metrics(true, pred, names)
    if args.plot:
        from ..plots import plot_confusion_matrix

        os.makedirs(args.plot, exist_ok=True)
        out = os.path.join(args.plot, "confusion_matrix.png")
        plot_confusion_matrix([names[k] for k in true], [names[k] for k in pred],
                              labels=names, path=out)
        print(f"\nwrote {out}")
    return 0


def _predictions_csv(proba, names) -> str:
    import csv
    import io as _io

    pred = proba.argmax(axis=1)
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "predicted"] + [f"p_{name}" for name in names])
    for i in range(proba.shape[0]):
        # repr gives the shortest text that reads back as the same float.
        writer.writerow([i, names[pred[i]]] + [repr(float(p)) for p in proba[i]])
    return buffer.getvalue()


def _cmd_predict(args) -> int:
    from .._fileformat import atomic_write

    check_data_flags(args.data, args.label_column, args.labels, require_labels=False)
    if args.output is not None:
        check_output_file(args.output, "--output")
    model, network, classes, n_features = _load_model(args.model)
    X, _ = _load_data(args, require_labels=False)
    proba = _probabilities(model, network, X, n_features, args.data)
    text = _predictions_csv(proba, _class_names(classes, proba.shape[1]))
    if args.output is None:
        sys.stdout.write(text)
    else:
        data = text.encode("utf-8")
        atomic_write(args.output, lambda fh: fh.write(data))
        print(f"wrote {X.shape[0]} predictions to {args.output}", file=sys.stderr)
    return 0


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

    if args.opset is not None:
        _check_opset(args.opset)
    check_output_file(args.output, "output file")
    model = io.load(args.model)
    io.export_onnx(model, args.output, opset=args.opset)
    print(f"wrote {args.output}")
    return 0


def add_model_parsers(sub) -> None:
    """The ``evaluate``, ``predict`` and ``export`` subcommands of ``sub``."""
    ev = sub.add_parser(
        "evaluate", help="accuracy, per-class precision/recall and confusion matrix",
        description="Evaluate a saved classifier (written by 'chainrule train --save' or "
                    "chainrule.io.save) on a labelled data file: prints the accuracy, each "
                    "class's precision, recall and F1, and the confusion matrix.",
        epilog=EXIT_STATUS)
    ev.add_argument("model", help="model file (.npz) written by chainrule")
    add_data_arguments(ev)
    ev.add_argument("--plot", metavar="DIR",
                    help="also draw the confusion matrix to DIR/confusion_matrix.png")
    ev.set_defaults(func=_cmd_evaluate)

    pr = sub.add_parser(
        "predict", help="write predictions as CSV",
        description="Predict with a saved classifier. Writes one CSV row per data row: "
                    "the row index, the predicted class and the probability of every "
                    "class (columns p_<class>), to --output or to standard output.",
        epilog=EXIT_STATUS)
    pr.add_argument("model", help="model file (.npz) written by chainrule")
    add_data_arguments(pr, labels_required=False)
    pr.add_argument("--output", "-o", metavar="CSV",
                    help="write the predictions here (default: standard output)")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser(
        "export", help="convert a saved model to ONNX",
        description="Write a saved model as a standard ONNX graph (Gemm, Relu, Tanh, "
                    "Sigmoid, Softmax) that onnxruntime and other runtimes can serve. "
                    "Needs the onnx package: pip install chainrule[onnx].",
        epilog=EXIT_STATUS)
    ex.add_argument("model", help="model file (.npz) written by chainrule")
    ex.add_argument("output", help="ONNX file to write (not a directory)")
    ex.add_argument("--opset", type=int, default=None,
                    help="ONNX opset version (default: chainrule.io.DEFAULT_ONNX_OPSET)")
    ex.set_defaults(func=_cmd_export)
