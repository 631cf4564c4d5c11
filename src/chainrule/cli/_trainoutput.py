"""What ``chainrule train`` writes and reports after ``fit``: the score line on the test
rows, the model file with what predict/evaluate/export need besides the network, the
held-out rows (``--save-test``) and the plots (``--plot``)."""

from __future__ import annotations

import os

import numpy as np

from ._common import USER_ERRORS, CommandError, regression_metrics
from ._traindata import TrainData, write_test_rows

__all__ = ["test_score", "save_files", "write_plots_keeping_the_model", "predict_rows"]


def predict_rows(model, X, method: str) -> np.ndarray:
    """``model.<method>(X)``; for a .npy file's view, a MiB of float64 rows at a time
    (the view's block of stored rows may be float32, and twice as large in float64)."""
    from ..sources import NpyFile

    predict = getattr(model, method)
    if not isinstance(X, NpyFile):
        return predict(X)
    step, n = max(1, 2**20 // (8 * X.shape[1])), len(X)
    return np.concatenate([predict(X.read(s, min(s + step, n))) for s in range(0, n, step)])


def _write_plots(folder, model, history, data: TrainData) -> None:
    """history.png, diagnostics.png (update ratios, gradient norms, dead ReLUs: when
    fit recorded them), confusion_matrix.png (classification) and, for images,
    first_layer_weights.png."""
    from ..conv import Unflatten
    from ..plots import (
        KNOWN_IMAGE_SHAPES,
        plot_confusion_matrix,
        plot_diagnostics,
        plot_first_layer_weights,
        plot_history,
    )

    os.makedirs(folder, exist_ok=True)
    written = [os.path.join(folder, "history.png")]
    plot_history(history, path=written[-1])
    if any(history.diagnostics):
        written.append(os.path.join(folder, "diagnostics.png"))
        plot_diagnostics(history, path=written[-1])
    if data.classes is not None:
        names = [str(c) for c in data.classes.tolist()]
        pred = predict_rows(model, data.X_test, "predict_classes")
        written.append(os.path.join(folder, "confusion_matrix.png"))
        plot_confusion_matrix([names[k] for k in data.y_test], [names[k] for k in pred],
                              labels=names, path=written[-1])
    # A cnn's first filters are drawn whatever its images' size, when they have one
    # channel (grey levels); an mlp's weights per unit for the image sizes plots knows.
    first = model.layers[0][0]
    channels = first.shape[0] if isinstance(first, Unflatten) and len(first.shape) == 3 \
        else None
    if channels == 1 or (channels is None and model.n_features in KNOWN_IMAGE_SHAPES):
        written.append(os.path.join(folder, "first_layer_weights.png"))
        plot_first_layer_weights(model, path=written[-1])
    print("wrote " + ", ".join(written) + (f" (no first_layer_weights.png: the first filters "
                                           f"have {channels} channels)" if channels and
                                           channels > 1 else ""))


def _model_metadata(args, data: TrainData) -> dict:
    """What predict/evaluate/export need besides the network: the task, the classes,
    the feature and label column names and the categories of columns of text (CSV)."""
    meta: dict = {"task": data.task}
    if data.classes is not None:
        meta["classes"] = data.classes.tolist()
    if data.feature_names is not None:
        meta["feature_names"] = list(data.feature_names)
    if data.categories:   # the columns of text, one-hot: predict encodes them alike
        meta["categories"] = data.categories
    if args.label_column is not None:
        meta["label_column"] = args.label_column
    if getattr(args, "ignore_columns", None) and data.feature_names is not None:
        meta["ignored_columns"] = list(args.ignore_columns)   # predict skips them too
    if data.medians is not None:   # --impute: predict and evaluate fill cells alike
        meta["impute"] = {"median": data.medians}
    return meta


def test_score(model, data: TrainData) -> str:
    """The line that reports the score on the test rows."""
    if data.classes is None:
        rmse, mae, r2 = regression_metrics(data.y_test,
                                           predict_rows(model, data.X_test, "predict")[:, 0])
        return (f"test RMSE = {rmse:.6g}, MAE = {mae:.6g}, R² = {r2:.4f} "
                f"({len(data.y_test)} rows)")
    correct = int(np.sum(predict_rows(model, data.X_test, "predict_classes") == data.y_test))
    return f"test accuracy = {correct / len(data.y_test):.4f} ({correct}/{len(data.y_test)})"


def save_files(args, model, data: TrainData) -> list[str]:
    """--save and --save-test, before anything is printed (a closed pipe, as in
    ``chainrule train | head``, must not cost the model); returns what to report."""
    from .. import io
    from ..folding import fold_standardization

    done = []
    if args.save:
        if data.mean is not None:  # the file takes raw inputs
            fold_standardization(model, data.mean, data.scale)
        io.save(model, args.save, metadata=_model_metadata(args, data))
        done.append(f"saved the model to {args.save}")
    if args.save_test:
        write_test_rows(args.save_test, data, args.label_column or "label")
        done.append(f"wrote the {len(data.y_test)} test rows to {args.save_test}")
    return done


def write_plots_keeping_the_model(args, model, history, data: TrainData) -> None:
    """Plots come last: a failure says where the model is."""
    try:
        _write_plots(args.plot, model, history, data)
    except USER_ERRORS + (RuntimeError,) as exc:
        kept = (f"the model was saved to {args.save} first" if args.save else
                "the model was not saved (no --save)")
        raise CommandError(f"writing the plots to {args.plot} failed: {exc}; {kept}") \
            from None
