"""What a training run records: :class:`History`; the rules that act on it:
:class:`EarlyStopping` and the learning rate :class:`ReduceLROnPlateau`.

:func:`chainrule.train.fit` fills a History one epoch at a time; checkpoints
(:mod:`chainrule.checkpoint`) and estimator files (:mod:`chainrule.io`) store it as
the plain dict :meth:`History.as_dict` returns, and read it back through
:meth:`History.from_dict`, the one place that checks such a dict.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

from ._validation import check_choice, check_keys, check_positive_float, check_positive_int

__all__ = ["History", "EarlyStopping", "EarlyStoppingState", "ReduceLROnPlateau", "MONITORS",
           "RECORDED_KEYS", "STOP_REASONS", "history_dict_problems", "stopper_state_problems"]

#: Values early stopping can watch.
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
#: The History keys fit records, in the order it records them.
RECORDED_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")
#: Why a run ended early (``None``: it ran every epoch).
STOP_REASONS = (None, "early_stopping", "callback", "interrupted")
_DICT_KEYS = ("history", "diagnostics", "epochs", "best_epoch", "stop_reason")


class EarlyStopping:
    """Stop when a monitored value has not improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int, default=5
        Epochs without improvement tolerated; training stops after the
        ``patience``-th one in a row.
    monitor : {'val_loss', 'val_accuracy', 'loss', 'accuracy'}, default='val_loss'
        A key of the History; losses must fall, accuracies rise.
    min_delta : float, default=0.0
        An improvement must beat the best value so far by more than this.
    restore_best_weights : bool, default=True
        When training ends (stopped early or out of epochs, not when interrupted),
        put back the parameters of the best epoch.
    """

    def __init__(self, patience=5, monitor="val_loss", min_delta=0.0,
                 restore_best_weights=True):
        self.patience = check_positive_int(patience, "patience")
        self.monitor = check_choice(monitor, "monitor", MONITORS)
        self.min_delta = check_positive_float(min_delta, "min_delta", allow_zero=True)
        if not isinstance(restore_best_weights, bool):
            raise TypeError(f"restore_best_weights must be a bool, got {restore_best_weights!r}")
        self.restore_best_weights = restore_best_weights

    @classmethod
    def from_argument(cls, value) -> EarlyStopping | None:
        """``fit``'s ``early_stopping``: None, an int (the patience on ``val_loss``) or
        an EarlyStopping (returned as it is)."""
        if value is None or isinstance(value, EarlyStopping):
            return value
        if isinstance(value, Integral) and not isinstance(value, bool):
            return cls(patience=value)
        raise TypeError(f"early_stopping must be None, an int patience or an EarlyStopping, "
                        f"got {type(value).__name__} {value!r}")

    def check_monitor(self, *, has_validation: bool, has_accuracy: bool, loss_name: str) -> None:
        """Raise ``ValueError`` unless a run records the monitored value: validation
        values need validation data, accuracies a cross-entropy model."""
        _check_recorded("early stopping", self.monitor, has_validation, has_accuracy, loss_name)

    @property
    def mode(self) -> str:
        return "max" if self.monitor.endswith("accuracy") else "min"

    def improved(self, value: float, best) -> bool:
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def config(self) -> dict:
        return {"patience": self.patience, "monitor": self.monitor,
                "min_delta": self.min_delta, "restore_best_weights": self.restore_best_weights}

    def __repr__(self):
        return "EarlyStopping(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"


def _check_recorded(who, monitor, has_validation, has_accuracy, loss_name) -> None:
    """``ValueError`` unless the run records ``monitor`` (see ``check_monitor``)."""
    if monitor.startswith("val_") and not has_validation:
        raise ValueError(f"{who} monitors {monitor!r}, which needs validation_data or "
                         f"validation_fraction (or monitor 'loss')")
    if monitor.endswith("accuracy") and not has_accuracy:
        raise ValueError(f"{who} monitors {monitor!r}, but a {loss_name} model has no "
                         f"accuracy")


class ReduceLROnPlateau:
    """A learning rate cut by ``factor`` when a monitored value stops improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Give it to an optimizer as its ``lr``: ``SGD(lr=ReduceLROnPlateau(lr=0.1, patience=5))``.
    :func:`~chainrule.train.fit` shows it each epoch's History values once recorded
    (:meth:`epoch_end`), and the next epoch runs at the rate it then gives; a run
    resumed from a checkpoint first replays the epochs already done (:meth:`replay`),
    so that it continues with the rate and counters of the uninterrupted run. The
    History's ``lr`` shows every cut. Outside ``fit``, call :meth:`epoch_end` yourself
    (``{"val_loss": value}``), as PyTorch's ``scheduler.step(value)``.

    Parameters
    ----------
    lr : float
        The starting rate.
    monitor : {'val_loss', 'val_accuracy', 'loss', 'accuracy'}, default='val_loss'
    mode : {'min', 'max'} or None, default=None
        Whether the value should fall or rise; ``None``: losses fall, accuracies rise.
    factor : float in (0, 1), default=0.1
    patience : int, default=10
        Epochs without improvement tolerated: the rate is cut after ``patience + 1``
        in a row (PyTorch's count).
    threshold : float, default=1e-4
    threshold_mode : {'rel', 'abs'}, default='rel'
        An improvement beats the best value by more than ``threshold`` times it
        ('rel') or by more than ``threshold`` ('abs').
    cooldown : int, default=0
        Epochs after a cut during which bad epochs are not counted.
    min_lr : float, default=0.0
        The rate is never cut below this.
    eps : float, default=1e-8
        A cut smaller than this is not made.
    """

    def __init__(self, lr, *, monitor="val_loss", mode=None, factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        self.lr = check_positive_float(lr, "lr")
        self.monitor = check_choice(monitor, "monitor", MONITORS)
        default = "max" if self.monitor.endswith("accuracy") else "min"
        self.mode = default if mode is None else check_choice(mode, "mode", ("min", "max"))
        self.factor = check_positive_float(factor, "factor")
        if self.factor >= 1:
            raise ValueError(f"factor must be < 1 (the rate is multiplied by it), got {factor!r}")
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.threshold = check_positive_float(threshold, "threshold", allow_zero=True)
        self.threshold_mode = check_choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.cooldown = check_positive_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_positive_float(min_lr, "min_lr", allow_zero=True)
        if self.min_lr > self.lr:  # no cut could ever be made
            raise ValueError(f"min_lr must be at most lr ({self.lr}), got {min_lr!r}")
        self.eps = check_positive_float(eps, "eps", allow_zero=True)
        self.reset()

    def reset(self) -> None:
        """Back to the starting rate, no best value and no epoch counted."""
        self.current = self.lr
        self.best = float("inf") if self.mode == "min" else float("-inf")
        self.num_bad_epochs = self.cooldown_counter = 0

    def __call__(self, step: int) -> float:
        """The current rate, whatever the optimizer's ``step``."""
        return self.current

    def _improved(self, value: float) -> bool:
        # PyTorch's comparisons exactly ('rel' scales the best value itself, so for a
        # negative best it asks less); against the starting infinity any number wins.
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return value < (self.best * (1 - self.threshold) if rel else
                            self.best - self.threshold)
        return value > (self.best * (1 + self.threshold) if rel else self.best + self.threshold)

    def epoch_end(self, logs: dict) -> None:
        """Take one epoch's values into account (``logs[monitor]``); maybe cut the rate."""
        try:
            value = float(logs[self.monitor])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"logs must hold {self.monitor!r} as a number (the value "
                             f"ReduceLROnPlateau watches), got {logs!r}") from None
        if self._improved(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:  # bad epochs in the cooldown do not count
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            cut = max(self.current * self.factor, self.min_lr)
            if self.current - cut > self.eps:
                self.current = cut
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def replay(self, history) -> None:
        """Start over and take the epochs of ``history`` (a :class:`History`) in order."""
        self.reset()
        for value in history.history.get(self.monitor, ()):
            self.epoch_end({self.monitor: value})

    def check_monitor(self, *, has_validation: bool, has_accuracy: bool, loss_name: str) -> None:
        """As :meth:`EarlyStopping.check_monitor`: the run must record the value."""
        _check_recorded("ReduceLROnPlateau", self.monitor, has_validation, has_accuracy,
                        loss_name)

    def get_config(self) -> dict:
        """The settings (not the state): what a checkpoint's run identity compares."""
        return {k: getattr(self, k) for k in ("lr", "monitor", "mode", "factor", "patience",
                                              "threshold", "threshold_mode", "cooldown",
                                              "min_lr", "eps")}

    def __repr__(self):
        return (f"ReduceLROnPlateau({self.lr!r}, monitor={self.monitor!r}, factor="
                f"{self.factor!r}, patience={self.patience!r}, current={self.current!r})")


class EarlyStoppingState:
    """Early stopping's bookkeeping during one run: the best value so far, its epoch,
    the epochs since, and (with ``restore_best_weights``) a copy of its parameters.

    Parameters
    ----------
    rule : EarlyStopping or None
        ``None``: no early stopping; :meth:`update` never stops and nothing is kept.

    Notes
    -----
    :meth:`state_dict` and :meth:`load_state_dict` are what checkpoints save and
    restore, as for an optimizer. ``best_params`` is replaced, never changed in place,
    so a state dict taken earlier stays valid.
    """

    def __init__(self, rule: EarlyStopping | None = None):
        self.rule = rule
        self.best = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_params: dict | None = None

    def update(self, logs: dict, epoch: int, params: dict) -> bool:
        """Take epoch ``epoch``'s ``logs`` into account; True when patience has run out."""
        if self.rule is None:
            return False
        value = logs[self.rule.monitor]
        if self.rule.improved(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.rule.restore_best_weights:
                self.best_params = {k: p.copy() for k, p in params.items()}
            return False
        self.wait += 1
        return self.wait >= self.rule.patience

    def restore_best(self, params: dict) -> None:
        """Put the best epoch's parameters back into ``params`` (in place), when the rule
        asks for it and an epoch has been recorded."""
        if self.rule is not None and self.rule.restore_best_weights and \
                self.best_params is not None:
            for k, p in params.items():
                p[...] = self.best_params[k]

    def state_dict(self) -> dict:
        """``{"best", "best_epoch", "wait", "best_params"}`` (the arrays not copied)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_params": self.best_params}

    def load_state_dict(self, state: dict) -> None:
        """Set the bookkeeping from a :meth:`state_dict` (the rule is not part of it)."""
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_params = state["wait"], state["best_params"]


class History:
    """What :func:`fit` recorded, one entry per epoch.

    Attributes
    ----------
    history : dict of str to list of float
        ``"loss"``, ``"accuracy"`` (classifiers only), ``"val_loss"`` and
        ``"val_accuracy"`` (with validation data), ``"lr"``, ``"time"``.
    diagnostics : list of dict
        Per epoch, ``{name: {"grad_norm", "update_ratio", "dead_fraction"}}`` for
        *every* parameter (weights, biases, normalisation scales); empty dicts with
        ``fit(..., diagnostics=False)``. ``grad_norm`` and ``update_ratio`` come from
        one step of the epoch, its last full batch: the last step, or the one before it
        when the last batch is short (1347 rows in batches of 64 end with 3 rows, whose
        gradient norm is noise, up to 60x the others'; picking the step costs nothing
        per step). ``grad_norm`` is the Frobenius norm of the gradient that step
        handed to the optimizer, *before* gradient clipping and *including* the
        ``l2`` term; ``update_ratio`` is ``||p_after - p_before|| / ||p_before||`` over
        that step (NaN while ``p`` is all zeros); ``dead_fraction`` (for the first
        parameter of a layer followed by ReLU, else ``None``) the fraction of its units
        whose ReLU output was 0 for *every* training row of the epoch, as seen by the
        forward passes of the epoch. :func:`chainrule.plots.plot_diagnostics` draws them.
    best_epoch : int or None
        Epoch with the best monitored value (the early-stopping monitor, else
        ``val_loss`` with validation data, else ``loss``).
    stop_reason : str or None
        ``None`` when every epoch ran, else ``"early_stopping"``, ``"callback"`` or
        ``"interrupted"``.

    Notes
    -----
    * Epochs are counted from 0, as the homework's log (``Epoch    0, loss = 2.3026``).
    * ``history["loss"][e]`` is the mean over the rows of epoch ``e`` of the loss each
      batch had *before* its update (weighted by ``sample_weight`` when given). In
      full-batch training that is the homework's printed loss. ``history["accuracy"]``
      counts the rows each batch classified correctly before its update (with Dropout
      active, as the loss): the logits' argmax is the target's class, for probability
      rows (soft targets) their argmax, as PyTorch users count it. Validation values
      are computed after the epoch, with Dropout off.
    * ``history["lr"][e]`` is the learning rate of the epoch's first step;
      ``history["time"][e]`` the epoch's wall time in seconds.
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.diagnostics: list[dict] = []
        self.best_epoch = None
        self.stop_reason = None

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.history.get("loss", ()))

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def record_epoch(self, logs: dict, diagnostics: dict) -> None:
        """Append one epoch: its ``logs`` (a value per History key) and diagnostics."""
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.diagnostics.append(diagnostics)

    def truncate(self, n: int) -> None:
        """Forget every epoch from ``n`` on (rolling a run back to ``n`` epochs)."""
        for values in self.history.values():
            del values[n:]
        del self.diagnostics[n:]

    def as_dict(self) -> dict:
        """Plain, JSON-serialisable copy of everything recorded."""
        return {"history": {k: list(v) for k, v in self.history.items()},
                "diagnostics": copy.deepcopy(self.diagnostics),
                "epochs": self.epochs, "best_epoch": self.best_epoch,
                "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, data) -> History:
        """Rebuild a History from :meth:`as_dict` output, checking it first.

        The dict may come from a file anyone can edit, so everything is checked:
        exactly the keys :meth:`as_dict` writes, per-epoch lists of numbers of
        ``epochs`` entries under the names :func:`fit` records (``loss`` among them
        once an epoch ran), one diagnostics dict per epoch, ``best_epoch`` an epoch
        or ``None`` and a known ``stop_reason``. The keys come back in the order
        :func:`fit` records them, even after a trip through JSON with sorted keys.

        Raises
        ------
        ValueError
            Naming every problem found.
        """
        problems = history_dict_problems(data)
        if problems:
            raise ValueError("not a History: " + "; ".join(problems))
        h = cls()
        recorded = data["history"]
        h.history = {k: list(recorded[k]) for k in RECORDED_KEYS if k in recorded}
        h.diagnostics = copy.deepcopy(list(data["diagnostics"]))
        h.best_epoch = data["best_epoch"]
        h.stop_reason = data["stop_reason"]
        return h

    def __repr__(self):
        return (f"History(epochs={self.epochs}, best_epoch={self.best_epoch}, "
                f"stop_reason={self.stop_reason!r}, keys={list(self.history)})")

    def __str__(self):
        keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")
                if k in self.history]
        formats = {"lr": "{:.3g}", "time": "{:.2f}s"}
        header = ["epoch"] + keys
        rows = [[str(e)] + [formats.get(k, "{:.4f}").format(self.history[k][e]) for k in keys]
                for e in range(self.epochs)]
        if len(rows) > 12:  # keep the table compact: the start and the end
            rows = rows[:5] + [["..."] * len(header)] + rows[-5:]
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                 for r in [header] + rows]
        lines.append(f"{self.epochs} epochs, best epoch {self.best_epoch}, stopped: "
                     f"{self.stop_reason or 'ran all epochs'}")
        return "\n".join(lines)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_diagnostics(entry) -> bool:
    """``{weight name: {metric: number or None}}``, as fit records per epoch."""
    return isinstance(entry, dict) and all(
        isinstance(metrics, dict) and all(v is None or _is_real(v) for v in metrics.values())
        for metrics in entry.values())


def history_dict_problems(data) -> list[str]:
    """Every way ``data`` differs from what :meth:`History.as_dict` returns, as text."""
    if not isinstance(data, dict):
        return [f"expected a dict, got {type(data).__name__}"]
    try:
        check_keys("the history dict", data, _DICT_KEYS)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    epochs = data["epochs"]
    if not (_is_int(epochs) and epochs >= 0):
        problems.append(f"'epochs' must be an int >= 0, got {epochs!r}")
        epochs = None
    logs = data["history"]
    if not isinstance(logs, dict):
        problems.append(f"'history' must map names to per-epoch lists, got "
                        f"{type(logs).__name__}")
        logs = {}
    unknown = sorted(map(str, set(logs) - set(RECORDED_KEYS)))
    if unknown:
        problems.append(f"'history' has unknown keys {unknown} (fit records "
                        f"{list(RECORDED_KEYS)})")
    if epochs and "loss" not in logs:
        problems.append(f"'history' has no 'loss' list (keys {sorted(map(str, logs))})")
    for key, values in logs.items():
        if not (isinstance(values, list) and all(_is_real(v) for v in values)):
            problems.append(f"history[{key!r}] must be a list of numbers")
        elif epochs is not None and len(values) != epochs:
            problems.append(f"history[{key!r}] has {len(values)} entries for {epochs} epochs")
    diagnostics = data["diagnostics"]
    if not (isinstance(diagnostics, list) and all(_is_diagnostics(d) for d in diagnostics)):
        problems.append("'diagnostics' must be a list of {weight: {metric: number}} dicts")
    elif epochs is not None and len(diagnostics) != epochs:
        problems.append(f"'diagnostics' has {len(diagnostics)} entries for {epochs} epochs")
    best = data["best_epoch"]
    if best is not None and not (_is_int(best) and epochs is not None and 0 <= best < epochs):
        problems.append(f"'best_epoch' must be None or an epoch from 0 to epochs - 1, got "
                        f"{best!r}")
    if data["stop_reason"] not in STOP_REASONS:
        problems.append(f"'stop_reason' must be one of {list(STOP_REASONS)}, got "
                        f"{data['stop_reason']!r}")
    return problems


_STOPPER_KEYS = {"best", "best_epoch", "wait"}


def stopper_state_problems(data) -> list[str]:
    """Every way ``data`` differs from an :meth:`EarlyStoppingState.state_dict` without
    its ``best_params`` (as checkpoints store it), as text."""
    if not (isinstance(data, dict) and set(data) == _STOPPER_KEYS):
        return ["must be a dict with keys 'best', 'best_epoch' and 'wait'"]
    if not ((data["best"] is None or _is_real(data["best"]))
            and (data["best_epoch"] is None or _is_int(data["best_epoch"]))
            and _is_int(data["wait"]) and data["wait"] >= 0):
        return [f"holds values of the wrong type: {data!r}"]
    return []
