"""Tests for chainrule.plots: each figure is rendered to a PNG that is read back."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")  # the plot extra; installed in the test extras

import matplotlib.image  # noqa: E402

from chainrule import MLP  # noqa: E402
from chainrule.plots import (  # noqa: E402
    confusion_matrix,
    plot_confusion_matrix,
    plot_first_layer_weights,
    plot_history,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 0 and img.shape[1] > 0
    # Something was drawn: the pixels are not all one colour.
    flat = img.reshape(-1, img.shape[2])
    assert (flat != flat[0]).any()
    return img


class FakeHistory:
    """Stands in for chainrule.train.History: the contract is a ``history`` dict."""

    def __init__(self, logs, best_epoch=None):
        self.history = logs
        self.best_epoch = best_epoch


LOGS = {"loss": [2.3, 1.1, 0.6, 0.4], "accuracy": [0.2, 0.6, 0.8, 0.9],
        "val_loss": [2.2, 1.2, 0.7, 0.8], "val_accuracy": [0.25, 0.55, 0.75, 0.7]}


def test_plot_history_png_and_curves(tmp_path):
    path = tmp_path / "sub" / "history.png"
    fig = plot_history(FakeHistory(LOGS, best_epoch=2), path=path)
    check_png(path)
    loss_ax, acc_ax = fig.axes
    curves = {line.get_label(): np.asarray(line.get_ydata()).tolist() for line in loss_ax.lines}
    assert curves["training loss"] == LOGS["loss"]
    assert curves["validation loss"] == LOGS["val_loss"]
    # Epochs count from 0, as History and the training log do; the best-epoch line
    # sits at history.best_epoch itself.
    assert np.asarray(loss_ax.lines[0].get_xdata()).tolist() == [0, 1, 2, 3]
    best_line = [line for line in loss_ax.lines if line.get_label() == "best epoch"]
    assert np.asarray(best_line[0].get_xdata()).tolist() == [2, 2]
    acc = {line.get_label(): np.asarray(line.get_ydata()).tolist() for line in acc_ax.lines}
    assert acc["validation accuracy"] == LOGS["val_accuracy"]


def _tick_labels(axis, which):
    get = axis.get_xticklabels if which == "x" else axis.get_yticklabels
    return [t.get_text() for minor in (False, True) for t in get(minor=minor) if t.get_text()]


def _as_number(text):
    return float(text.replace("\N{MINUS SIGN}", "-"))


def test_plot_history_ticks_are_plain_numbers_and_whole_epochs(tmp_path):
    # Four epochs: matplotlib's default locator would put ticks at 0, 0.5, 1, 1.5, ...
    logs = {"loss": [1.0, 0.8, 0.6, 0.5], "accuracy": [0.5, 0.6, 0.8, 0.9]}
    fig = plot_history(logs, path=tmp_path / "narrow.png")  # the save draws the ticks
    loss_ax, acc_ax = fig.axes
    for ax in (loss_ax, acc_ax):
        epochs = [_as_number(t) for t in _tick_labels(ax, "x")]
        assert epochs and all(e == int(e) for e in epochs)
    # A loss falling by less than 10x has no decade on a log axis: the axis is linear
    # and its labels are plain numbers (not 6x10^-1).
    assert loss_ax.get_yscale() == "linear"
    assert len([_as_number(t) for t in _tick_labels(loss_ax, "y")]) >= 3

    wide = {"loss": [2.3, 0.5, 0.1, 0.02], "val_loss": [2.2, 0.6, 0.2, 0.1]}
    fig = plot_history(wide, path=tmp_path / "wide.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = _tick_labels(ax, "y")
    values = [_as_number(t) for t in labels]  # 0.02, 0.05, 0.1, ... never 10^-1
    assert {0.05, 0.1, 0.2, 0.5, 1.0} <= set(values)


def test_plot_history_loss_only_and_given_axes(tmp_path):
    from matplotlib.figure import Figure

    fig = plot_history({"loss": [1.0, 0.5]}, path=tmp_path / "h.png")
    assert len(fig.axes) == 1
    check_png(tmp_path / "h.png")
    own = Figure()
    ax = own.subplots()
    assert plot_history(LOGS, ax=ax) is own
    assert [line.get_label() for line in ax.lines] == ["training loss", "validation loss"]
    with pytest.raises(ValueError, match="no 'loss'"):
        plot_history({"loss": []})
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2, 3])


def test_confusion_matrix_matches_sklearn():
    from sklearn.metrics import confusion_matrix as sk_cm

    rng = np.random.default_rng(1)
    t = rng.choice(["cat", "dog", "eel"], 50)
    p = rng.choice(["cat", "dog", "eel"], 50)
    C, labels = confusion_matrix(t, p)
    assert labels.tolist() == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(C, sk_cm(t, p, labels=["cat", "dog", "eel"]))
    with pytest.raises(ValueError, match="not in labels"):
        confusion_matrix(t, p, labels=["cat", "dog"])


def test_plot_confusion_matrix_png(tmp_path):
    y_true = np.array([0, 1, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 2, 2, 2, 1, 0, 1])
    fig = plot_confusion_matrix(y_true, y_pred, path=tmp_path / "cm.png")
    check_png(tmp_path / "cm.png")
    # The image drawn is the count matrix worked out by hand.
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(drawn, [[2, 0, 0], [0, 1, 1], [0, 1, 2]])


@pytest.mark.parametrize("n_inputs, image_shape, expected", [
    (64, None, (8, 8)), (784, None, (28, 28)), (12, (3, 4), (3, 4))])
def test_plot_first_layer_weights_png(tmp_path, n_inputs, image_shape, expected):
    model = MLP([n_inputs, 5, 3], rng=0)
    path = tmp_path / f"w{n_inputs}.png"
    fig = plot_first_layer_weights(model, image_shape=image_shape, path=path)
    check_png(path)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 5
    # Tile j is column j of W1 reshaped to the image.
    np.testing.assert_array_equal(tiles[1].images[0].get_array(),
                                  model.params["W1"][:, 1].reshape(expected))


def test_plot_first_layer_weights_rejects_non_images():
    with pytest.raises(ValueError, match="not a known image size"):
        plot_first_layer_weights(MLP([10, 4, 2], rng=0))
    with pytest.raises(ValueError, match="rows \\* cols = 10"):
        plot_first_layer_weights(MLP([10, 4, 2], rng=0), image_shape=(3, 3))
    with pytest.raises(TypeError, match="Network"):
        plot_first_layer_weights(object())
    with pytest.raises(TypeError, match="Network"):
        plot_first_layer_weights(np.zeros((64, 3)))
    # max_units limits the drawn tiles.
    fig = plot_first_layer_weights(MLP([64, 20, 2], rng=0), max_units=4)
    assert len([ax for ax in fig.axes if ax.images]) == 4


def test_plot_first_layer_weights_draws_a_cnns_first_filters(tmp_path):
    """A CNN on grey images: the tiles are the first convolution's filters, the
    batch normalisation of the pixels before it passed over; never a later Affine
    layer's weights (what was drawn before, as if they saw 8x8 pixels)."""
    import chainrule as cr

    model = cr.Sequential([cr.Unflatten((1, 8, 8)), cr.BatchNorm2d(1),
                           cr.Conv2D(1, 6, (3, 2)), cr.ReLU(), cr.Flatten(),
                           cr.Affine(6 * 6 * 7, 64), cr.Affine(64, 3)], rng=0)
    fig = plot_first_layer_weights(model, path=tmp_path / "f.png")
    check_png(tmp_path / "f.png")
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 6 and "filters" in fig._suptitle.get_text()
    np.testing.assert_array_equal(tiles[4].images[0].get_array(), model.params["W2"][4, 0])
    rgb = cr.Sequential([cr.Unflatten((3, 4, 4)), cr.Conv2D(3, 2, 3), cr.Flatten(),
                         cr.Affine(8, 2)], rng=0)
    with pytest.raises(ValueError, match=r"Conv2D\(3, 2, 3\), has weights of shape "
                                         r"\(2, 3, 3, 3\)"):
        plot_first_layer_weights(rgb)


def test_plot_first_layer_weights_of_a_fitted_estimator(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.exceptions import NotFittedError

    from chainrule.estimator import MLPClassifier

    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier((6,), max_iter=2, random_state=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_first_layer_weights(clf)
    clf.fit(X[:200] / 16, y[:200])
    fig = plot_first_layer_weights(clf, path=tmp_path / "w.png")
    check_png(tmp_path / "w.png")
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 6
    np.testing.assert_array_equal(tiles[4].images[0].get_array(),
                                  clf.model_.params["W1"][:, 4].reshape(8, 8))


def test_plot_history_takes_a_history_saved_as_a_dict(tmp_path):
    import json

    import chainrule as cr

    rng = np.random.default_rng(0)
    history = cr.fit(cr.MLP([3, 2], rng=0), rng.normal(size=(20, 3)), np.arange(20) % 2,
                     optimizer=cr.SGD(), epochs=3, progress=False)
    saved = json.loads(json.dumps(history.as_dict()))   # as a JSON file would give it back
    plot_history(saved, path=tmp_path / "h.png")
    check_png(tmp_path / "h.png")
