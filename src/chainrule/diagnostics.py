"""What :func:`chainrule.train.fit` measures after every epoch, and the warnings it
gives when the measurements say training is going wrong.

Per parameter (every one, not only the weights): the gradient norm (before clipping,
with the ``l2`` term) of one step of the epoch, the update/weight ratio of that step
(``||delta p|| / ||p||``), and, for the parameter of the layer right before a ReLU, the
fraction of that ReLU's units that never fired during the epoch ("dead"). The step
measured is the epoch's last, or the one before it when the last batch is short (1347
rows in batches of 64 leave 3 rows: their gradient is noise, 60x the others').

:class:`Advisor` turns these, the History's values and a look at the tanh/sigmoid
outputs of the epoch's last batch into a :class:`TrainingWarning`, each kind at most
once per ``fit``, pointing at the line that called ``fit``. Every rule is checked once
per epoch (or once per ``fit``), never per step:

* ``targets`` (before the first step): one-hot class rows given to a regression loss;
* ``loss``: a cross-entropy's first epoch's loss is far above ``ln K`` (an untrained classifier is
  unsure, so its loss is close to ``ln K``; far above: unscaled inputs or too large a step);
* ``rising``: after falling by a tenth of epoch 0's loss or more, the training loss
  rose in each of the last 3 epochs (by over a tenth of what it had fallen), or to
  over half-way back from its best to epoch 0's;
* ``dead``: a layer's ReLUs are almost all dead (>= 90% never fired in an epoch);
* ``vanishing``: a weight's update/weight ratio below 1e-7 (times the last learning rate
  over the first, when a schedule has lowered it); after a sign of too large a step
  (dead units, a rising or huge first loss, huge updates) the advice says so;
* ``large``: a weight's update/weight ratio above 0.5 (healthy steps are ~1e-3 of the
  weights; half of them in one step is a learning rate far too large);
* ``slow``: every weight's update ratio has stayed below 1e-5 and the loss has fallen
  less than 5% in 5 or more epochs (a learning rate far too small);
* ``saturated``: half of a hidden tanh/sigmoid layer's outputs are flat (``|z| > 3``);
* ``overfitting``: without early stopping, the validation loss is 5% above its best, 10
  or more epochs after it, while the training loss has fallen since;
* ``no_signal``: after 6 epochs or more, a classifier's training loss has fallen by over
  10% but its validation loss never by 10% of epoch 0's, and its validation accuracy has
  never been better than chance (the largest class's share, at least 1/K) + 0.1;
* ``majority``: on unweighted rows whose largest class is >= 70% of them, the training
  accuracy has stayed within 0.5% of that share for 3 epochs.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from typing import Any

import numpy as np

from .layers import ReLU, Sigmoid, Tanh
from .losses import LOSSES

__all__ = ["TrainingWarning", "Advisor", "relu_pairs", "saturating_layers", "saturation",
           "step_measurements", "epoch_diagnostics", "largest_class_share", "looks_one_hot",
           "user_stacklevel", "warn_if_finished"]

#: Thresholds of the warnings (see the module notes).
DEAD_FRACTION = 0.9
VANISHING_RATIO = 1e-7
LARGE_RATIO = 0.5
#: Steps before an update is judged large: from weights that start at 0 (the homework's
#: logistic regression), n steps in one direction make the ratio about 1/n.
LARGE_AFTER_STEPS = 10
LOSS_ABOVE_LN_K = 2.0
RISING_EPOCHS = 3
RISE_SHARE = 0.1
FAR_SHARE = 0.5
#: The rising rule judges a curve that first fell by at least this share of epoch 0's.
MIN_FALL = 0.1
SLOW_RATIO = 1e-5
SLOW_EPOCHS = 5
SLOW_FALL = 0.05
#: |z| > 3: tanh'(z) < 1% of its peak, sigmoid'(z) < 18% of its.
SATURATED_Z = 3.0
SATURATED_FRACTION = 0.5
OVERFIT_EPOCHS = 10
OVERFIT_RISE = 0.05
NO_SIGNAL_EPOCHS = 5
NO_SIGNAL_GAIN = 0.1
CHANCE_MARGIN = 0.1
IMBALANCED_SHARE = 0.7
STUCK_EPOCHS = 3
STUCK_TOLERANCE = 0.005
_FLAT = {Tanh: math.tanh(SATURATED_Z), Sigmoid: 1 / (1 + math.exp(-SATURATED_Z)) - 0.5}
_CLASS_WEIGHTS = ("fit's sample_weight, e.g. scikit-learn's compute_sample_weight("
                  "'balanced', y); the estimators' class_weight='balanced'; chainrule train "
                  "--class-weight balanced")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class TrainingWarning(UserWarning):
    """Training runs, but the diagnostics say something is probably wrong."""


def relu_pairs(model) -> list:
    """Pairs (ReLU layer, name of the first parameter of the layer right before it),
    for the dead-unit count; a ReLU after a layer without parameters is left out."""
    pairs, previous = [], None
    for layer, names in model.layers:
        if type(layer) is ReLU and previous:
            pairs.append((layer, previous[0]))
        previous = names
    return pairs


def saturating_layers(model) -> list:
    """Pairs (description, layer) of the hidden Tanh / Sigmoid layers (an output
    activation is left out: confident outputs are its purpose)."""
    return [(f"layer {i} ({type(layer).__name__})", layer)
            for i, (layer, _) in enumerate(model.layers[:-1]) if type(layer) in _FLAT]


def saturation(layers) -> dict:
    """``{description: fraction}``: the share of each layer's outputs, cached by the
    forward pass of the epoch's last batch, where the activation is flat (``|z| > 3``).
    One pass over one batch's outputs, once an epoch."""
    found = {}
    for where, layer in layers:
        out = layer.cache
        if isinstance(out, np.ndarray) and out.size:
            flat = np.abs(out - 0.5) if type(layer) is Sigmoid else np.abs(out)
            found[where] = np.count_nonzero(flat > _FLAT[type(layer)]) / out.size
    return found


def step_measurements(params, before, grads) -> dict:
    """Per parameter ``(grad_norm, update_ratio)`` of one step: ``before`` holds the
    values before it, ``params`` after it (NaN ratio for a parameter that was 0)."""
    measured = {}
    for name, p in params.items():
        norm = float(np.linalg.norm(before[name]))
        delta = float(np.linalg.norm(p - before[name]))
        measured[name] = (float(np.linalg.norm(grads[name])),
                          delta / norm if norm > 0 else float("nan"))
    return measured


def epoch_diagnostics(measured, alive) -> dict:
    """Per parameter: ``grad_norm`` and ``update_ratio`` (``measured`` by
    :func:`step_measurements`), ``dead_fraction`` from ``alive`` (or None)."""
    dead = {w: 1.0 - float(np.mean(a)) for w, a in alive.items() if a is not None}
    return {name: {"grad_norm": g, "update_ratio": r, "dead_fraction": dead.get(name)}
            for name, (g, r) in measured.items()}


def largest_class_share(labels, n_classes: int) -> float:
    """The share of the rows in the largest class (computed once per fit)."""
    return float(np.bincount(labels, minlength=n_classes).max() / max(len(labels), 1))


def looks_one_hot(Y) -> bool:
    """Whether ``Y`` is an array of one-hot rows: 0s and a single 1, two columns or more."""
    if not isinstance(Y, np.ndarray) or Y.ndim != 2 or Y.shape[1] < 2 or Y.shape[0] == 0:
        return False
    return bool(((Y == 0) | (Y == 1)).all() and (Y.sum(axis=1) == 1).all())


def user_stacklevel(*wrappers: str) -> int:
    """The stacklevel of the first frame outside chainrule (and the ``wrappers``
    directories, e.g. scikit-learn's, whose ``fit`` decorator calls the estimators'):
    the user's call."""
    inside = (_PACKAGE_DIR, *wrappers)
    frame: Any = inspect.currentframe()
    level = 1
    frame = frame.f_back if frame is not None else None
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _rates(optimizer):
    """The last learning rate, and the factor by which a schedule has lowered it from
    the first (1 without a schedule)."""
    steps = getattr(optimizer, "steps", None)
    last_lr = None if not steps else (
        optimizer.lr(steps - 1) if callable(optimizer.lr) else optimizer.lr)
    # A schedule that has brought the rate down (a cosine's last steps) makes the
    # updates small by as much: judge the gradient, i.e. the ratio at the first rate.
    # (a rate with state, ReduceLROnPlateau, answers with its current cut: its
    # starting rate is its attribute lr)
    first_lr = (getattr(optimizer.lr, "lr", None) if hasattr(optimizer.lr, "epoch_end")
                else optimizer.lr(0)) if steps and callable(optimizer.lr) else last_lr
    return last_lr, (min(1.0, last_lr / first_lr) if first_lr else 1.0)


class Advisor:
    """Warns once per kind per ``fit`` when the epoch's measurements look wrong.

    Parameters
    ----------
    weights : iterable of str
        The names whose update ratio is watched (the matrices).
    n_classes : int or None
        The K of a classifier (None for a regressor).
    class_share : float or None
        The share of the training rows in the largest class (classifiers).
    weighted : bool
        Whether the rows carry sample weights (then class weighting is no advice).
    early_stopping : bool
        Whether the run stops early (then overfitting is taken care of).
    log_loss : bool
        Whether the loss is a cross-entropy, whose untrained value is ``ln K`` (the
        rules built on that: not for a hinge loss's scores).
    """

    def __init__(self, weights=(), n_classes=None, *, class_share=None, weighted=False,
                 early_stopping=False, log_loss=True):
        self.weights, self.n_classes = set(weights), n_classes
        self.log_loss = log_loss
        self.class_share, self.weighted = class_share, weighted
        self.early_stopping = early_stopping
        self.given: set = set()
        self.quiet = False
        self.seen: dict[str, list] = {}  # the History's values so far
        self.best: dict[str, tuple] = {}  # (least value, its index) of loss and val_loss
        self.top_val_accuracy = -math.inf
        self.max_ratio = 0.0  # the largest weight update ratio seen
        self.too_large: list[str] = []  # what so far pointed to too large a step

    def _warn(self, kind, message):
        if kind not in self.given:
            self.given.add(kind)
            if not self.quiet:
                warnings.warn(message, TrainingWarning, stacklevel=user_stacklevel())

    def _sign_of_a_large_step(self, what: str) -> None:
        if what not in self.too_large:
            self.too_large.append(what)

    def replay(self, history) -> None:
        """Take a resumed run's recorded epochs in, silently (the run that recorded
        them gave their warnings)."""
        self.quiet = True
        for e in range(history.epochs):
            self.epoch(e, {k: v[e] for k, v in history.history.items()},
                       history.diagnostics[e])
        self.quiet = False

    def targets(self, Y, loss) -> None:
        """Before the first step: one-hot class rows given to a regression loss."""
        if getattr(loss, "linear_outputs", False) and looks_one_hot(Y):
            name = next((k for k, v in LOSSES.items() if type(loss) is v),
                        type(loss).__name__)
            self._warn("targets", f"Y looks like one-hot class rows (a single 1 in each "
                       f"row of {Y.shape[1]} columns), but the loss is {name!r}, a "
                       f"regression loss, which trains classes worse than cross-entropy: "
                       f"for classes use loss='cross_entropy' (an MLP's or Sequential's "
                       f"loss, MLPClassifier, or chainrule train on class labels)")

    def epoch(self, epoch: int, logs: dict, diag: dict, optimizer=None,
              saturated=None) -> None:
        """Look at one epoch's History values and diagnostics, at the ``optimizer``
        that made its updates (its steps so far and its last learning rate) and at the
        ``saturated`` share of each tanh/sigmoid layer's outputs (:func:`saturation`)."""
        self._remember(logs)
        last_lr, scale = _rates(optimizer)
        steps = getattr(optimizer, "steps", None)
        if len(self.seen["loss"]) == 1 and self.n_classes and self.log_loss:
            ln_k = math.log(self.n_classes)
            if logs["loss"] > ln_k + LOSS_ABOVE_LN_K:
                self._sign_of_a_large_step("a first loss far above ln K")
                self._warn("loss", f"the first epoch's loss is {logs['loss']:.4g}, far above "
                           f"ln K = {ln_k:.3f} of an unsure classifier: standardise the "
                           f"inputs or lower the learning rate")
        self._rising_loss(epoch)
        for name, d in diag.items():
            if d["dead_fraction"] is not None and d["dead_fraction"] >= DEAD_FRACTION:
                self._sign_of_a_large_step(f"dead ReLUs ({d['dead_fraction']:.0%} after "
                                           f"{name})")
                self._warn("dead", f"epoch {epoch}: {d['dead_fraction']:.0%} of the ReLU units "
                           f"after the layer of {name} never fired: they get no gradient "
                           f"(a too large learning rate, unscaled inputs or a bad init?)")
        self._update_ratios(epoch, diag, last_lr, scale, steps)
        self._slow(epoch, scale)
        for where, fraction in (saturated or {}).items():
            if fraction >= SATURATED_FRACTION:
                self._warn("saturated", f"epoch {epoch}: {fraction:.0%} of the outputs of "
                           f"{where} are saturated (|z| > {SATURATED_Z:g}, where the "
                           f"activation is flat and passes almost no gradient): standardise "
                           f"the inputs, start from smaller weights (init='xavier') or "
                           f"lower the learning rate")
        self._validation(epoch)
        self._majority_only(epoch)

    def _remember(self, logs: dict) -> None:
        for key, value in logs.items():
            values = self.seen.setdefault(key, [])
            values.append(value)
            if key in ("loss", "val_loss") and value < self.best.get(key, (math.inf,))[0]:
                self.best[key] = (value, len(values) - 1)
        self.top_val_accuracy = max(self.top_val_accuracy, logs.get("val_accuracy", -1.0))

    def _rising_loss(self, epoch: int) -> None:
        """The training loss going back up: a learning rate too high."""
        losses = self.seen["loss"]
        if "loss" not in self.best:   # no finite loss yet (fit stops at a non-finite one)
            return
        best, at = self.best["loss"]
        rise, fall = losses[-1] - best, losses[0] - best
        if fall <= MIN_FALL * abs(losses[0]):   # a flat curve's wiggles (a fitted model's)
            return
        window = losses[-RISING_EPOCHS - 1:]
        rising = len(window) > RISING_EPOCHS and all(
            a < b for a, b in zip(window[:-1], window[1:], strict=True))
        if (rising and rise > RISE_SHARE * fall) or (fall > 0 and rise > FAR_SHARE * fall):
            self._sign_of_a_large_step("a rising training loss")
            self._warn("rising", f"epoch {epoch}: the training loss rose to "
                       f"{losses[-1]:.4g}, from {best:.4g} at epoch "
                       f"{epoch - (len(losses) - 1 - at)}: the learning rate is likely too "
                       f"high: lower it (3-10x) or decay it with a schedule")

    def _update_ratios(self, epoch, diag, last_lr, scale, steps) -> None:
        for name, d in diag.items():
            ratio = d["update_ratio"]
            if name not in self.weights or ratio != ratio:  # biases may start at 0 (nan)
                continue
            self.max_ratio = max(self.max_ratio, ratio)
            if ratio < VANISHING_RATIO * scale and last_lr != 0:  # (a schedule's 0: fine)
                self._warn("vanishing", self._vanishing_advice(epoch, name, ratio))
            elif ratio > LARGE_RATIO and (steps is None or steps >= LARGE_AFTER_STEPS):
                self._sign_of_a_large_step("updates over half the weights' size")
                self._warn("large", f"epoch {epoch}: the last update moved {name} by "
                           f"{ratio:.2g} of its size (~1e-3 is healthy): lower the "
                           f"learning rate")

    def _vanishing_advice(self, epoch, name, ratio) -> str:
        said = (f"epoch {epoch}: the last update moved {name} by {ratio:.2g} of its size: "
                f"the gradients vanish")
        if not self.too_large:
            return said + " (saturated or dead units, or a learning rate far too small)"
        return (f"{said} after {', '.join(self.too_large)}: signs of too large a step, "
                f"not too small a one: lower the learning rate (or standardise the "
                f"inputs) and train again from a fresh initialisation")

    def _slow(self, epoch: int, scale: float) -> None:
        """Updates far below ~1e-3 of the weights and a loss that barely moves."""
        losses = self.seen["loss"]
        if (len(losses) < SLOW_EPOCHS or not self.max_ratio or self.too_large
                or "vanishing" in self.given or self.max_ratio >= SLOW_RATIO * scale):
            return
        fell = losses[0] - losses[-1]
        fitted = (self.n_classes and self.log_loss
                  and losses[-1] < 0.5 * math.log(self.n_classes))
        if fell < SLOW_FALL * abs(losses[0]) and not fitted:
            self._warn("slow", f"epoch {epoch}: the updates have moved the weights by at "
                       f"most {self.max_ratio:.2g} of their size (~1e-3 is healthy) and "
                       f"the training loss went from {losses[0]:.4g} to {losses[-1]:.4g} "
                       f"in {len(losses)} epochs: the learning rate is likely far too "
                       f"small: raise it (10-1000x, until the update ratios near 1e-3)")

    def _validation(self, epoch: int) -> None:
        """Overfitting without early stopping; a validation set that learns nothing."""
        vals, losses = self.seen.get("val_loss"), self.seen["loss"]
        if not vals:
            return
        best, at = self.best["val_loss"]
        since = len(vals) - 1 - at
        if (not self.early_stopping and since >= OVERFIT_EPOCHS
                and vals[-1] - best > OVERFIT_RISE * abs(best) and losses[-1] < losses[at]):
            self._warn("overfitting", f"epoch {epoch}: the validation loss rose from "
                       f"{best:.4g} at epoch {epoch - since} to {vals[-1]:.4g} while the "
                       f"training loss fell from {losses[at]:.4g} to {losses[-1]:.4g}: the "
                       f"model overfits: stop early (fit's early_stopping=patience or "
                       f"EarlyStopping; chainrule train --early-stopping) or regularise "
                       f"(l2 / weight_decay, Dropout, more data)")
        share = self.class_share
        if not self.n_classes or share is None or share >= IMBALANCED_SHARE:
            return  # (stuck at a large class: _majority_only's case)
        chance = max(1.0 / self.n_classes, share)
        # The training loss falls (rows are memorised), the validation's does not.
        if (len(vals) > NO_SIGNAL_EPOCHS and best > (1 - NO_SIGNAL_GAIN) * vals[0]
                and losses[-1] < (1 - NO_SIGNAL_GAIN) * losses[0]
                and self.top_val_accuracy <= chance + CHANCE_MARGIN):
            self._warn("no_signal", f"epoch {epoch}: the validation loss has stayed near "
                       f"epoch {epoch - len(vals) + 1}'s ({vals[0]:.4g}, best {best:.4g}) "
                       f"and the validation accuracy at chance (at most "
                       f"{self.top_val_accuracy:.1%}; the largest class is {share:.1%}) "
                       f"while the training loss fell: the model learns nothing that "
                       f"carries over: check that the labels belong to their rows "
                       f"(shuffled or misaligned?) and that the inputs can predict them")

    def _majority_only(self, epoch: int) -> None:
        """Imbalanced classes, and a model that predicts the largest one for every row."""
        share, accs = self.class_share, self.seen.get("accuracy", [])
        if (share is None or self.weighted or share < IMBALANCED_SHARE
                or len(accs) < STUCK_EPOCHS):
            return
        if all(abs(a - share) <= STUCK_TOLERANCE for a in accs[-STUCK_EPOCHS:]):
            self._warn("majority", f"epoch {epoch}: the training accuracy has stayed at "
                       f"{accs[-1]:.1%} for {STUCK_EPOCHS} epochs, the share of the largest "
                       f"class ({share:.1%}): the model likely predicts that class for "
                       f"every row: weight the classes ({_CLASS_WEIGHTS})")


def warn_if_finished(checkpoint, epochs: int, history) -> None:
    """Resuming a run that early stopping or a callback ended trains no more, as the
    uninterrupted run stopped there too: say so when more ``epochs`` were asked for."""
    why = {"early_stopping": "early stopping", "callback": "a callback"}.get(
        history.stop_reason)
    if why is not None and epochs > history.epochs:
        warnings.warn(f"checkpoint {os.fspath(checkpoint)!r} holds a run that {why} "
                      f"stopped after {history.epochs} epochs: resuming keeps it as it is "
                      f"(an uninterrupted run stops there too) rather than train on to "
                      f"epochs={epochs} (--epochs). To pause a run and continue it later, "
                      f"interrupt it (Ctrl-C, or raise KeyboardInterrupt in a callback): an "
                      f"interrupted run resumes", TrainingWarning, stacklevel=user_stacklevel())
