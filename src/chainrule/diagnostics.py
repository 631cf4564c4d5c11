"""What :func:`chainrule.train.fit` measures after every epoch, and the warnings it
gives when the measurements say training is going wrong.

Per parameter (every one, not only the weights): the gradient norm of the epoch's last
step, the update/weight ratio of that step (``||delta p|| / ||p||``), and, for the
parameter of the layer right before a ReLU, the fraction of that ReLU's units that
never fired during the epoch ("dead").

:class:`Advisor` turns these into a :class:`TrainingWarning`, each kind at most once
per ``fit``, pointing at the line that called ``fit``:

* the first epoch's loss is far above ``ln K`` (an untrained classifier is unsure,
  so its loss is close to ``ln K``; far above means unscaled inputs or too large a step);
* a layer's ReLUs are almost all dead (>= 90% never fired in an epoch);
* gradients vanish: a weight's update/weight ratio below 1e-7 (times the last learning
  rate over the first, when a schedule has lowered it);
* a weight's update/weight ratio above 0.5 (healthy steps are ~1e-3 of the weights;
  half of them in one step is a learning rate far too large).
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from typing import Any

import numpy as np

from .layers import ReLU

__all__ = ["TrainingWarning", "Advisor", "relu_pairs", "epoch_diagnostics", "user_stacklevel"]

#: Thresholds of the warnings (see the module notes).
DEAD_FRACTION = 0.9
VANISHING_RATIO = 1e-7
LARGE_RATIO = 0.5
#: Steps before an update is judged large: from weights that start at 0 (the homework's
#: logistic regression), n steps in one direction make the ratio about 1/n.
LARGE_AFTER_STEPS = 10
LOSS_ABOVE_LN_K = 2.0

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


def epoch_diagnostics(params, backup, grads, alive) -> dict:
    """Per parameter: ``grad_norm`` and ``update_ratio`` of the last step (``backup``
    holds the values before it), ``dead_fraction`` from ``alive`` (or None)."""
    dead = {w: 1.0 - float(np.mean(a)) for w, a in alive.items() if a is not None}
    diag = {}
    for name, p in params.items():
        norm = float(np.linalg.norm(backup[name]))
        delta = float(np.linalg.norm(p - backup[name]))
        diag[name] = {"grad_norm": float(np.linalg.norm(grads[name])),
                      "update_ratio": delta / norm if norm > 0 else float("nan"),
                      "dead_fraction": dead.get(name)}
    return diag


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


class Advisor:
    """Warns once per kind per ``fit`` when the epoch's measurements look wrong.

    ``weights`` are the names whose update ratio is watched (the matrices), and
    ``n_classes`` the K of a classifier (None for a regressor).
    """

    def __init__(self, weights=(), n_classes=None):
        self.weights, self.n_classes = set(weights), n_classes
        self.given: set = set()

    def _warn(self, kind, message):
        if kind not in self.given:
            self.given.add(kind)
            warnings.warn(message, TrainingWarning, stacklevel=user_stacklevel())

    def epoch(self, epoch: int, logs: dict, diag: dict, optimizer=None) -> None:
        """Look at one epoch's History values and diagnostics, and at the ``optimizer``
        that made its updates (its steps so far and its last learning rate)."""
        steps = getattr(optimizer, "steps", None)
        last_lr = None if not steps else (
            optimizer.lr(steps - 1) if callable(optimizer.lr) else optimizer.lr)
        # A schedule that has brought the rate down (a cosine's last steps) makes the
        # updates small by as much: judge the gradient, i.e. the ratio at the first rate.
        first_lr = optimizer.lr(0) if steps and callable(optimizer.lr) else last_lr
        vanishing = VANISHING_RATIO * (min(1.0, last_lr / first_lr) if first_lr else 1.0)
        if epoch == 0 and self.n_classes:
            ln_k = math.log(self.n_classes)
            if logs["loss"] > ln_k + LOSS_ABOVE_LN_K:
                self._warn("loss", f"the first epoch's loss is {logs['loss']:.4g}, far above "
                           f"ln K = {ln_k:.3f} of an unsure classifier: standardise the "
                           f"inputs or lower the learning rate")
        for name, d in diag.items():
            if d["dead_fraction"] is not None and d["dead_fraction"] >= DEAD_FRACTION:
                self._warn("dead", f"epoch {epoch}: {d['dead_fraction']:.0%} of the ReLU units "
                           f"after the layer of {name} never fired: they get no gradient "
                           f"(a too large learning rate, unscaled inputs or a bad init?)")
            ratio = d["update_ratio"]
            if name not in self.weights or ratio != ratio:  # biases may start at 0 (nan)
                continue
            if ratio < vanishing and last_lr != 0:  # (a schedule's 0 is no symptom)
                self._warn("vanishing", f"epoch {epoch}: the last update moved {name} by "
                           f"{ratio:.2g} of its size: the gradients vanish (saturated or "
                           f"dead units, or a learning rate far too small)")
            elif ratio > LARGE_RATIO and (steps is None or steps >= LARGE_AFTER_STEPS):
                self._warn("large", f"epoch {epoch}: the last update moved {name} by "
                           f"{ratio:.2g} of its size (~1e-3 is healthy): lower the "
                           f"learning rate")
