"""Pictures of training: loss and accuracy curves, the per-epoch diagnostics (update
ratios, gradient norms, dead ReLUs), the confusion matrix, and the first layer's weights
drawn as images.

matplotlib is optional (``pip install chainrule[plot]``) and imported inside each
function. The figures are built with :class:`matplotlib.figure.Figure` directly rather
than through ``pyplot``, so they work on headless machines (no display, any backend),
do not pile up in pyplot's global figure list, and still show inline in Jupyter.
Every function returns the Figure and, given ``path``, also saves it there (the format
follows the file name: ``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from ._fileformat import atomic_write

__all__ = ["plot_history", "plot_diagnostics", "plot_confusion_matrix",
           "plot_first_layer_weights", "confusion_matrix", "KNOWN_IMAGE_SHAPES"]

#: Input sizes that are certainly square images, and their ``(rows, cols)``:
#: scikit-learn's 8x8 digits and the 28x28 MNIST / Fashion-MNIST images.
#: :func:`plot_first_layer_weights` infers ``image_shape`` from it.
KNOWN_IMAGE_SHAPES = {64: (8, 8), 784: (28, 28)}


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("chainrule's plots need matplotlib; install it with "
                          "`pip install chainrule[plot]`") from exc
    return Figure(**kwargs)


def _save(fig, path):
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        # The format from the name, as savefig(path) would; a file object has none.
        fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or None
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=fig.dpi,
                                                  bbox_inches="tight"))
    return fig


def _history_dict(history):
    logs = getattr(history, "history", history)
    if isinstance(logs, dict) and isinstance(logs.get("history"), dict):
        logs = logs["history"]   # History.as_dict() (a History saved as JSON)
    if not isinstance(logs, dict):
        raise TypeError(f"history must be a chainrule History or a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    if not logs.get("loss"):
        raise ValueError("history holds no 'loss' values to plot (was the model trained "
                         "for at least one epoch?)")
    return logs


def _loss_scale(axis, values):
    """A log scale when the loss falls by more than a factor 10, with plain tick labels
    (0.05, 0.1, 0.2, ... rather than 5x10^-2); a linear scale otherwise, where a log
    axis would have no decade inside its range and only odd minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if finite.size == 0 or finite.min() <= 0 or finite.max() < 10 * finite.min():
        return
    axis.set_yscale("log")
    decades = math.log10(finite.max() / finite.min())
    axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def plot_history(history, path=None, ax=None):
    """Training and validation loss (and accuracy) per epoch.

    Parameters
    ----------
    history : History or dict of lists
        What :func:`chainrule.train.fit` returned, or its ``history`` dict with keys
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (the last three optional).
        Epochs are drawn from 0, as History and the training log count them, and a
        dotted line marks ``history.best_epoch`` when it is set. The loss axis is
        logarithmic when the loss falls by more than a factor 10, else linear.
    path : str or path-like, optional
        Save the figure here.
    ax : matplotlib Axes or pair of Axes, optional
        Draw into these instead of a new figure: one Axes gets the loss curves only;
        a pair gets loss in the first and accuracy in the second.

    Returns
    -------
    matplotlib.figure.Figure
    """
    logs = _history_dict(history)
    has_accuracy = bool(logs.get("accuracy"))
    if ax is None:
        n_panels = 2 if has_accuracy else 1
        fig = _figure(figsize=(5.0 * n_panels, 3.6), layout="constrained")
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if not 1 <= len(axes) <= 2:
            raise ValueError(f"ax must be one Axes or a pair of Axes, got {len(axes)}")
        fig = axes[0].figure

    from matplotlib.ticker import MaxNLocator

    # Epochs are numbered from 0, as in History (best_epoch) and the CLI's log.
    best = getattr(history, "best_epoch", None)
    panels = [("loss", "loss"), ("accuracy", "accuracy")][:len(axes)]
    for axis, (key, label) in zip(axes, panels, strict=True):
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = logs.get(prefix + key)
            if values:
                axis.plot(np.arange(len(values)), values, style, label=f"{name} {label}")
        if best is not None:
            axis.axvline(best, color="0.6", linewidth=0.8, linestyle=":", label="best epoch")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        if key == "loss":
            _loss_scale(axis, [v for k in ("loss", "val_loss") for v in logs.get(k) or ()])
        if axis.get_legend_handles_labels()[0]:
            axis.legend(frameon=False)
        axis.grid(alpha=0.3)
    return _save(fig, path)


#: The update/weight ratio of a healthy step (Karpathy's rule of thumb).
HEALTHY_UPDATE_RATIO = 1e-3


def _diagnostics_list(history) -> list:
    diag = getattr(history, "diagnostics", history)
    if isinstance(diag, dict):  # History.as_dict()
        diag = diag.get("diagnostics")
    if not isinstance(diag, list) or not all(isinstance(d, dict) for d in diag):
        why = (" (an estimator's history_ after solver='lbfgs', which keeps no History)"
               if history is None else "")
        raise TypeError(f"history must be a chainrule History or its list of per-epoch "
                        f"diagnostics dicts, got {type(history).__name__}{why}")
    if not any(diag):
        raise ValueError("history holds no diagnostics to plot: fit(..., diagnostics=False) "
                         "records none, nor do the estimators' fits (their history_: "
                         "chainrule.fit(est.model_, ...) records them), or no epoch trained")
    for epoch, d in enumerate(diag):
        for name, metrics in d.items():
            if not isinstance(name, str) or not isinstance(metrics, dict) or not all(
                    v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool))
                    for v in metrics.values()):
                raise TypeError(f"history's diagnostics of epoch {epoch} must map parameter "
                                f"names to dicts of numbers, got {name!r}: {metrics!r}")
    return diag


def plot_diagnostics(history, path=None, *, params=None):
    """The per-epoch diagnostics of :attr:`History.diagnostics`: each weight's
    update/weight ratio (log axis, with the healthy ~1e-3 marked), gradient norms (log
    axis) and, when the network has ReLUs, the fraction of dead units.

    Parameters
    ----------
    history : History, its ``as_dict()``, or a list of per-epoch diagnostics dicts
    path : str or path-like, optional
        Save the figure here.
    params : sequence of str, optional
        The parameters to draw; default: the weights (names starting with ``W``), or
        every parameter when no name does.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The values are those of one step per epoch (its last full batch): ratios far below
    1e-3 mean a learning rate too small or vanishing gradients, far above it one too
    large; dead fractions near 1 mean ReLUs that no longer learn.
    """
    diag = _diagnostics_list(history)
    names = list(dict.fromkeys(k for d in diag for k in d))
    if params is None:
        params = [k for k in names if k.startswith("W")] or names
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"params must be a sequence of parameter names, got "
                        f"{type(params).__name__} {params!r}")
    params = list(params)   # (a generator would be used up by the check below)
    unknown = [k for k in params if k not in names]
    if unknown or not params:
        raise ValueError(f"params must name recorded parameters {names}, got {list(params)!r}")
    epochs = np.arange(len(diag))

    def series(name, metric):
        values = [d.get(name, {}).get(metric) for d in diag]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    dead = [k for k in names if any(d.get(k, {}).get("dead_fraction") is not None for d in diag)]
    fig = _figure(figsize=(5.0 * (2 + bool(dead)), 3.6), layout="constrained")
    axes = fig.subplots(1, 2 + bool(dead), squeeze=False)[0]
    panels = [("update_ratio", "update / weight ratio", params),
              ("grad_norm", "gradient norm", params), ("dead_fraction", "dead ReLU units", dead)]
    for axis, (metric, label, keys) in zip(axes, panels, strict=False):
        for name in keys:
            values = series(name, metric)
            if metric != "dead_fraction":  # a log axis has no room for 0
                values[~(values > 0)] = np.nan
            axis.plot(epochs, values, marker=".", label=name)
        if metric == "update_ratio":
            axis.axhline(HEALTHY_UPDATE_RATIO, color="0.5", linestyle="--", linewidth=0.8,
                         label="~1e-3 (healthy)")
        if metric == "dead_fraction":
            axis.set_ylim(-0.02, 1.02)
        else:
            axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.legend(frameon=False, fontsize="small")
        axis.grid(alpha=0.3)
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, labels=None):
    """Counts ``C[i, j]`` of rows whose true class is ``labels[i]`` and predicted class
    is ``labels[j]``.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N,) or (N, K)
        Labels of any kind; 2-D rows (one-hot, probabilities) are reduced by argmax.
    labels : array_like, optional
        The classes, in the order of the matrix; default: the sorted union of both.

    Returns
    -------
    C : ndarray of int64, shape (K, K)
    labels : ndarray, shape (K,)
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    t = t.argmax(axis=1) if t.ndim == 2 else t
    p = p.argmax(axis=1) if p.ndim == 2 else p
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be two label arrays of the same length, "
                         f"got shapes {np.shape(y_true)} and {np.shape(y_pred)}")
    labels = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    index = {lab: i for i, lab in enumerate(labels.tolist())}
    unknown = sorted({v for v in np.concatenate([t, p]).tolist() if v not in index}, key=str)
    if unknown:
        raise ValueError(f"labels {unknown[:5]} occur in y_true or y_pred but not in labels "
                         f"{labels.tolist()}")
    C = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(C, ([index[v] for v in t.tolist()], [index[v] for v in p.tolist()]), 1)
    return C, labels


def plot_confusion_matrix(y_true, y_pred, labels=None, path=None):
    """The confusion matrix as a heat map with the counts written in each cell.

    Rows are the true classes, columns the predicted ones; the diagonal holds the
    correct predictions.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N,) or (N, K)
    labels : array_like, optional
        Class order (and tick labels); default: the sorted union of both.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    C, labels = confusion_matrix(y_true, y_pred, labels)
    k = len(labels)
    size = min(3.0 + 0.45 * k, 12.0)
    fig = _figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(C, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="count")
    ticks = np.arange(k)
    names = [str(v) for v in labels.tolist()]
    ax.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(C) / C.sum() if C.sum() else float("nan")
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    if k <= 30:
        threshold = C.max() / 2
        for i in range(k):
            for j in range(k):
                if C[i, j]:
                    ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if C[i, j] > threshold else "black")
    return _save(fig, path)


def _network(model):
    """The network to draw: ``model`` itself, or a fitted estimator's ``model_``."""
    def is_network(obj):
        return isinstance(getattr(obj, "params", None), dict) and bool(getattr(obj, "layers",
                                                                               None))

    if is_network(model):
        return model
    if is_network(getattr(model, "model_", None)):
        return model.model_
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        # An unfitted scikit-learn-style estimator: say so the way scikit-learn does
        # (NotFittedError is a ValueError).
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"this {type(model).__name__} is not fitted yet (it has no "
                             f"model_ network): call fit before plotting its weights")
    raise TypeError(f"model must be a chainrule Network (with params and layers) or a "
                    f"fitted estimator whose model_ is one, got {type(model).__name__}")


def _first_weight(model):
    """The weights of the first layer that mixes its inputs, one column per unit, and
    the ``(rows, cols)`` of one column as an image (None: not known yet): an Affine
    layer's ``(n_inputs, n_units)`` matrix, or a one-channel convolution's filters as
    ``(kH kW, C_out)``. Layers with 1-D parameters (a normalisation, PReLU's slopes)
    are passed over: they scale the inputs one by one, so the next layer's weights
    still see the pixels."""
    network = _network(model)
    for layer, names in network.layers:
        W = np.asarray(network.params[names[0]]) if names else None
        if W is None or W.ndim == 1:
            continue
        if W.ndim == 2:
            return W, None
        if W.ndim == 4 and W.shape[1] == 1:
            return W.reshape(W.shape[0], -1).T, W.shape[2:]
        raise ValueError(f"the first layer with weights, {layer!r}, has weights of shape "
                         f"{W.shape}: only an Affine layer's weights and a one-channel 2-D "
                         f"convolution's filters are drawn as images")
    raise ValueError("model has no layer with a weight matrix or filters to draw")


def plot_first_layer_weights(model, image_shape=None, path=None, *, max_units=64):
    """Each first-layer unit's incoming weights drawn as an image.

    A unit of the first Affine layer computes ``x @ W[:, j]``; when ``x`` is an image,
    ``W[:, j]`` reshaped to the image's shape shows which pixels push the unit up
    (red) and which push it down (blue). Each tile has its own symmetric colour scale.
    When the first layer with weights is a convolution of one-channel images (a CNN
    on grey images), each tile is one of its filters, ``kH x kW``. Layers before it
    with 1-D parameters only (a batch normalisation of the pixels) are passed over.

    Parameters
    ----------
    model : Network or fitted estimator
        Any chainrule network whose first layer with weights is Affine (or a
        one-channel Conv2D), or a fitted :class:`~chainrule.estimator.MLPClassifier` /
        ``MLPRegressor`` (its ``model_``).
    image_shape : (int, int), optional
        ``(rows, cols)`` of the input images. Inferred for 64 inputs (8x8 digits) and
        784 inputs (28x28 MNIST) and for a convolution's filters; needed for any other
        input size.
    path : str or path-like, optional
    max_units : int, default=64
        Draw at most this many units (the first ones).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        When ``model`` is neither a network nor an estimator holding one.
    sklearn.exceptions.NotFittedError
        (a ``ValueError``) for an estimator that has not been fitted.
    ValueError
        When the input size is not a known image size and ``image_shape`` is not
        given, or ``image_shape`` does not multiply out to the input size.
    """
    W, filter_shape = _first_weight(model)
    n_inputs, n_units = W.shape
    image_shape = filter_shape if image_shape is None else image_shape
    if image_shape is None:
        if n_inputs not in KNOWN_IMAGE_SHAPES:
            raise ValueError(f"the first layer takes {n_inputs} inputs, which is not a known "
                             f"image size (64 = 8x8, 784 = 28x28); pass image_shape=(rows, "
                             f"cols) if the inputs are images")
        image_shape = KNOWN_IMAGE_SHAPES[n_inputs]
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n_inputs:
        what = "the first layer's inputs" if filter_shape is None else "a filter's taps"
        raise ValueError(f"image_shape must be (rows, cols) with rows * cols = {n_inputs} "
                         f"({what}), got {tuple(image_shape)!r}")
    if isinstance(max_units, bool) or not isinstance(max_units, (int, np.integer)) \
            or max_units < 1:
        raise ValueError(f"max_units must be a positive integer, got {max_units!r}")
    shown = min(n_units, int(max_units))
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    tile = 1.1 if shape[0] <= 10 else 1.3
    fig = _figure(figsize=(cols * tile, rows * tile + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for j, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if j >= shown:
            continue
        w = W[:, j].reshape(shape)
        limit = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(str(j), fontsize=6, pad=1)
    what = "weights" if filter_shape is None else "filters"
    fig.suptitle(f"first-layer {what} ({shown} of {n_units} units, {shape[0]}x{shape[1]})",
                 fontsize=9)
    return _save(fig, path)
