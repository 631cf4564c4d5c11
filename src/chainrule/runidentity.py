"""What a training run is, for a checkpoint to be resumed by the same run only.

:class:`RunSettings` is the one object :func:`~chainrule.train.fit` builds from its
checked arguments: each field declares whether the identity covers it and why
(``dataclasses.fields(RunSettings)[i].metadata``). :func:`run_identity` is the one
definition of what must be equal for a checkpoint to be resumed: the model (class,
config or, for a network without one, each layer's settings; parameter shapes and
dtypes; the loss's arguments) and the fields of the settings in the identity. A new
``fit`` option becomes a new field and must say so; one that changes the result of a
run belongs in the identity, or a resumed run silently differs from an uninterrupted
one. :func:`as_stored` gives a run's identity as an older checkpoint records it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RunSettings", "fingerprint", "run_identity", "first_difference", "as_stored"]


# -- the settings of a run, and what of them a checkpoint must match --------------------

def _in_identity(why: str) -> Any:
    return field(metadata={"identity": True, "why": why})


def _not_in_identity(why: str) -> Any:
    return field(metadata={"identity": False, "why": why})


@dataclass(frozen=True, eq=False)
class RunSettings:
    """The checked arguments of :func:`~chainrule.train.fit`, built once per call.

    Each field's metadata says whether :func:`run_identity` covers it (``identity``)
    and why (``why``); a test holds every field to it. ``X``, ``Y`` and
    ``sample_weight`` are the training data as given (before a ``validation_fraction``
    split), already checked and cast to the model's dtype.
    """

    X: np.ndarray = _in_identity("the data: a fingerprint of X, Y and sample_weight")
    Y: np.ndarray = _in_identity("the data: a fingerprint of X, Y and sample_weight")
    sample_weight: np.ndarray | None = _in_identity(
        "the data: a fingerprint of X, Y and sample_weight")
    optimizer: Any = _in_identity("its class, hyperparameters and learning-rate schedule "
                                  "(its state is restored from the checkpoint)")
    l2: float = _in_identity("scikit-learn's alpha: changes every step's gradient")
    epochs: int = _not_in_identity("a total: resuming with more epochs continues the run")
    batch_size: int | None = _in_identity("decides the batches and the number of steps")
    shuffle: Any = _in_identity("decides the batches (True or False: a callable is refused "
                                "with a checkpoint)")
    validation_data: tuple | None = _in_identity(
        "a fingerprint: early stopping and best_epoch depend on it")
    validation_fraction: float | None = _in_identity("decides the split (saved with it)")
    early_stopping: Any = _in_identity("the rule (EarlyStopping.config()); its bookkeeping "
                                       "is restored from the checkpoint")
    callbacks: tuple = _not_in_identity("functions cannot be compared; the caller gives the "
                                        "same ones again")
    rng: Any = _not_in_identity("its state is restored from the checkpoint")
    progress: bool = _not_in_identity("changes only what is shown")
    diagnostics: bool = _not_in_identity("changes only what the History records, not the "
                                         "parameters")
    checkpoint: Any = _not_in_identity("where the state goes, not what it is")
    resume: bool = _not_in_identity("whether to read the state, not what it is")
    # The last field, with a default: RunSettings made before it existed stay valid.
    comm: Any = field(default=None, metadata={
        "identity": False, "why": "how the work is split over MPI ranks, not what is computed "
                                  "(equal up to rounding)"})
    drop_last: bool = field(default=False, metadata={
        "identity": True, "why": "decides the batches and the number of steps"})
    scan_rows: bool = field(default=False, metadata={
        "identity": False, "why": "where X's finite values are checked (the first epoch's "
                                  "batches, or X before training), not what is computed"})

    @property
    def n_rows(self) -> int:
        """Rows of the training data, before the validation split."""
        return self.X.shape[0]

    @property
    def n_val(self) -> int | None:
        """Rows the ``validation_fraction`` split holds out (``None`` without one)."""
        if self.validation_fraction is None:
            return None
        return math.ceil(self.validation_fraction * self.n_rows)

    @property
    def has_validation(self) -> bool:
        return self.validation_data is not None or self.validation_fraction is not None


def fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        if hasattr(a, "fingerprint"):  # data read out of core (chainrule.sources)
            h.update(a.fingerprint().encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_normal(obj):
    return json.loads(json.dumps(obj, default=_json_value))


def _json_value(value):
    """What JSON lacks, as a user's ``get_config`` may return it: NumPy values as
    numbers and lists, anything else as its repr."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return repr(value)


#: Steps at which a learning-rate schedule is sampled to recognise it on resume.
_SCHEDULE_PROBES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000,
                    100_000, 1_000_000)


def _schedule_fingerprint(lr):
    """A schedule is a pure function of the step, so its values at fixed steps tell
    whether a resumed run uses the same one (a changed ``base_lr`` is caught)."""
    if not callable(lr):
        return None
    if callable(getattr(lr, "get_config", None)):  # a rate with state: its settings
        return lr.get_config()
    values: list = []
    for step in _SCHEDULE_PROBES:
        try:
            values.append(float(lr(step)))
        except Exception:  # noqa: BLE001 - a schedule defined on fewer steps
            values.append(None)
    milestones = getattr(lr, "keywords", {}).get("milestones")   # multistep_lr's
    if milestones is not None:   # steps the probes would miss (none before multistep_lr)
        values.append({"milestones": sorted(int(m) for m in milestones)})
    return values


def _momentum_schedule(optimizer):
    """An optimizer's scheduled momentum, or None (an optimizer of one's own has none)."""
    found = getattr(optimizer, "momentum_schedule", None)
    return found() if callable(found) else None


def run_identity(model, settings: RunSettings) -> dict:
    """What must match between a checkpoint and the run resuming from it.

    The model (class, config, parameter shapes and dtypes; a network without a config,
    a ``Sequential``, each layer's settings) and the fields of ``settings`` whose
    metadata says ``identity``; see :class:`RunSettings`. The dict is stored in
    checkpoints as it is: its layout is part of the file format.
    """
    s = settings
    buffers = getattr(model, "buffers", {})
    config = getattr(model, "config", None)
    optimizer = s.optimizer
    validation = ({"data": fingerprint(*s.validation_data)} if s.validation_data is not None
                  else {"fraction": s.validation_fraction} if s.validation_fraction is not None
                  else None)
    return _json_normal({
        "model": {"class": type(model).__name__, "config": config,
                  "params": {k: [list(p.shape), p.dtype.str] for k, p in model.params.items()},
                  # only with buffers: checkpoints of networks without stay valid
                  **({"buffers": {k: [list(b.shape), b.dtype.str] for k, b in
                                  buffers.items()}} if buffers else {}),
                  # settings that change no shape (a stride, a padding mode, a slope)
                  **({"layers": _layer_settings(model)} if config is None else {}),
                  # and a loss's arguments (label_smoothing) only when it has any
                  **_loss_identity(model.loss)},
        "optimizer": {"class": type(optimizer).__name__,
                      "hyperparameters": optimizer.hyperparameters(),
                      "lr_schedule": _schedule_fingerprint(optimizer.lr),
                      # only when scheduled: checkpoints of other runs stay valid
                      **({"momentum_schedule": _schedule_fingerprint(m)} if (
                          m := _momentum_schedule(optimizer)) is not None else {})},
        "batch_size": s.batch_size, "shuffle": s.shuffle,
        **({"drop_last": True} if s.drop_last else {}),  # only when on, as l2
        "data": fingerprint(s.X, s.Y, s.sample_weight),
        "validation": validation,
        "early_stopping": s.early_stopping.config() if s.early_stopping else None,
        **({"l2": s.l2} if s.l2 else {}),  # only when used: older checkpoints stay valid
    })


def _layer_settings(model) -> list:
    """Each layer of a network without a config: a built-in one by its repr (which
    names every setting that is not the default), one of the user's by its class and
    ``get_config()``."""
    found: list = []
    for layer, _ in model.layers:
        if type(layer).__module__.startswith("chainrule."):
            found.append(repr(layer))
        else:
            get_config = getattr(layer, "get_config", None)
            try:
                config = get_config() if callable(get_config) else None
            except Exception:  # noqa: BLE001 - a user's layer: its class alone then
                config = None
            found.append([type(layer).__name__, config])
    return found


def as_stored(stored, identity) -> dict:
    """``identity`` as a checkpoint with the ``stored`` one records it: one from before
    the layers' settings were recorded (no ``model.layers``) is compared without them,
    as it was written, and still resumes. Compare (and diff) against this."""
    model = stored.get("model") if isinstance(stored, dict) else None
    if isinstance(model, dict) and "layers" not in model and "layers" in identity["model"]:
        return {**identity, "model": {k: v for k, v in identity["model"].items()
                                      if k != "layers"}}
    return identity


def _loss_identity(loss) -> dict:
    """``{"loss": its arguments}`` for a loss with any (label_smoothing), else nothing:
    checkpoints of runs with default losses stay valid."""
    config: dict = getattr(loss, "get_config", dict)()
    return {"loss": config} if config else {}


def first_difference(saved, current, prefix="", *, in_order=False):
    """First difference between two JSON trees: ``(dotted path, saved, current)``.

    Keys are visited sorted, or with ``in_order`` in ``saved``'s order, then those only
    ``current`` has (where the first keys matter most, as in a run plan).
    """
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = ([*saved, *(k for k in current if k not in saved)] if in_order
                else sorted(set(saved) | set(current)))
        for key in keys:
            if saved.get(key) != current.get(key):
                return first_difference(saved.get(key), current.get(key),
                                        f"{prefix}.{key}" if prefix else key,
                                        in_order=in_order)
    return prefix, saved, current
