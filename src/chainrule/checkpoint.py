"""The state of a training run: snapshot, restore, and the checkpoint file.

:func:`chainrule.train.fit` takes a :func:`snapshot` after every epoch and, with
``checkpoint=path``, writes it with :func:`write_checkpoint`; ``resume=True`` reads it
back with :func:`read_checkpoint`, which refuses a file of another run or one that
does not hold exactly the state of this run, before anything changes.

What a checkpoint holds
-----------------------
A file in the :mod:`chainrule._fileformat` layout (no pickle) with the arrays
``params/<name>`` (parameters and buffers), ``optim/state/<name>/<key>``, ``best/<name>``
(early stopping's best parameters and buffers, when kept) and ``split/train``,
``split/val`` (a ``validation_fraction`` split), and the metadata ``kind``, ``epoch``,
``optimizer_steps``, ``rngs`` (the state of every generator the run draws from),
``history`` (``best_epoch``, ``stop_reason`` and the state of the History's journal,
:mod:`chainrule.journal`, which holds the per-epoch logs so that a checkpoint's cost does
not grow with the epochs), ``stopper`` (early stopping's bookkeeping) and ``identity``.
It is written atomically
(no half-written file), after every epoch.

The run identity
----------------
:func:`~chainrule.runidentity.run_identity` (re-exported here with
:class:`~chainrule.runidentity.RunSettings`) is the one definition of what must be
equal for a checkpoint to be resumed; see :mod:`chainrule.runidentity`.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from ._fileformat import ModelFileError, check_destination, read_archive, write_archive
from ._validation import check_positive_int, key_differences
from .history import History, history_dict_problems, stopper_state_problems
from .journal import HistoryJournal
from .optim_base import NON_NEGATIVE_STATE
from .runidentity import RunSettings, as_stored, fingerprint, first_difference, run_identity

__all__ = ["CheckpointMismatchError", "CheckpointEpochsError", "RunSettings", "generators",
           "snapshot", "restore", "fingerprint", "run_identity", "write_checkpoint",
           "read_checkpoint", "check_resume_epochs", "check_checkpoint_path", "kept_arrays",
           "first_difference"]

_CHECKPOINT_KIND = "chainrule.checkpoint"


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to a different run (model, optimizer, data, batching...).

    Attributes
    ----------
    path : str
    field : str
        Dotted path of the first differing entry of the run identity, e.g.
        ``"optimizer.lr_schedule"``.
    saved, current
        Its value in the checkpoint and in this run.
    """

    def __init__(self, path, field, saved, current):
        super().__init__(f"checkpoint {path!r} belongs to a different run and cannot be "
                         f"resumed: {field}: {saved!r} in the checkpoint, {current!r} now")
        self.path, self.field, self.saved, self.current = path, field, saved, current


class CheckpointEpochsError(ValueError):
    """``epochs`` is below the number of epochs the checkpoint has already done.

    Attributes
    ----------
    path : str
    epochs : int
        What was asked for (a total, not a number to add).
    done : int
        Epochs already in the checkpoint.
    """

    def __init__(self, path, epochs, done):
        super().__init__(f"epochs={epochs} is fewer than the {done} epochs already done in "
                         f"checkpoint {path!r}; give epochs >= {done} (the total, not the "
                         f"number to add)")
        self.path, self.epochs, self.done = path, epochs, done


def check_checkpoint_path(checkpoint, resume: bool) -> None:
    """Check ``fit``'s ``checkpoint`` and ``resume`` before the run changes anything:
    a path (needed by ``resume=True``) in an existing, writable directory."""
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path, got {type(checkpoint).__name__}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path (the file to resume from)")
    if checkpoint is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"checkpoint: the directory {folder!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"checkpoint: the directory {folder!r} is not writable")
        # "", a directory, a device, a read-only file...: refused now, not after the
        # first epoch has changed the parameters.
        check_destination(checkpoint, name="checkpoint")


def check_resume_epochs(path, epochs: int, done: int) -> None:
    """Raise :class:`CheckpointEpochsError` when ``epochs < done``."""
    if done > epochs:
        raise CheckpointEpochsError(os.fspath(path), epochs, done)


# -- random generators ----------------------------------------------

def generators(random, model):
    """Every generator a run draws from: fit's own, then each layer's (Dropout)."""
    gens = [random]
    for layer, _ in model.layers:
        r = getattr(layer, "rng", None)
        if isinstance(r, (np.random.Generator, np.random.RandomState)):
            gens.append(r)
    return gens


def _raw_rng_state(r) -> Any:
    """The generator's state as NumPy gives it (a new dict; a RandomState's key array a
    copy): what a snapshot keeps, converted to JSON only when a checkpoint is written
    (a RandomState's 624 keys as a list cost ~40 us, at every epoch)."""
    return r.bit_generator.state if isinstance(r, np.random.Generator) else \
        r.get_state(legacy=False)


def _rng_state(r) -> dict:
    return _to_json(_raw_rng_state(r))


def _set_rng_state(r, state: dict) -> None:
    state = _from_json(state)
    if isinstance(r, np.random.Generator):
        r.bit_generator.state = state
    else:
        r.set_state(state)


def _to_json(obj):
    """Generator states hold ndarrays (MT19937 keys) and NumPy scalars; make them JSON."""
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _from_json(obj):
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
        return {k: _from_json(v) for k, v in obj.items()}
    return obj


def _buffers(model) -> dict:
    return getattr(model, "buffers", {})


def kept_arrays(model) -> dict:
    """The arrays a snapshot keeps: the parameters, then the buffers (running
    statistics), which checkpoints store under ``params/`` too."""
    return {**model.params, **_buffers(model)}


def snapshot(model, optimizer, gens, epoch, stopper):
    """Copy of the state of the run after ``epoch`` epochs.

    ``stopper`` is the run's :class:`~chainrule.history.EarlyStoppingState`. The
    History is not copied: rolling back only truncates it.
    """
    rate = optimizer.lr if hasattr(optimizer.lr, "replay") else None   # its cuts so far
    return {"epoch": epoch,
            "params": {k: p.copy() for k, p in kept_arrays(model).items()},
            "optimizer": optimizer.state_dict(),
            "rngs": [_raw_rng_state(r) for r in gens],
            "stopper": stopper.state_dict(),
            "rate": None if rate is None else copy.deepcopy(vars(rate))}


def restore(snap, model, optimizer, gens, history, stopper):
    """Put the state of :func:`snapshot` (or of :func:`read_checkpoint`) back in place
    (a ReduceLROnPlateau's state too, which a checkpoint's reader replays instead)."""
    for k, p in kept_arrays(model).items():
        p[...] = snap["params"][k]
    if snap.get("rate") is not None:
        vars(optimizer.lr).update(copy.deepcopy(snap["rate"]))
    optimizer.load_state_dict(snap["optimizer"])
    for r, state in zip(gens, snap["rngs"], strict=True):
        _set_rng_state(r, state)
    history.truncate(snap["epoch"])
    stopper.load_state_dict(snap["stopper"])


def write_checkpoint(path, snap, history, identity, split, journal):
    """Write the checkpoint of ``snap`` to ``path``; the History's epochs go to
    ``journal`` (a :class:`~chainrule.journal.HistoryJournal`), appended before the
    checkpoint that counts them, so the cost does not grow with the epochs."""
    arrays = {f"params/{k}": v for k, v in snap["params"].items()}
    opt = snap["optimizer"]
    for name, st in opt["state"].items():
        for key, value in st.items():
            arrays[f"optim/state/{name}/{key}"] = np.asarray(value)
    stopper = dict(snap["stopper"])
    best_params = stopper.pop("best_params")
    if best_params is not None:
        arrays.update({f"best/{k}": v for k, v in best_params.items()})
    if split is not None:
        arrays["split/train"], arrays["split/val"] = split
    meta = {"kind": _CHECKPOINT_KIND, "epoch": snap["epoch"], "optimizer_steps": opt["steps"],
            "rngs": [_to_json(state) for state in snap["rngs"]], "stopper": stopper,
            "identity": identity,
            "history": {"best_epoch": history.best_epoch, "stop_reason": history.stop_reason,
                        "journal": journal.sync(history)}}
    write_archive(path, arrays, meta)
    journal.remove_others()


def _load_history(path, meta) -> tuple:
    """The checkpoint's History as :meth:`History.as_dict` would give it, rebuilt from
    its journal, and the journal: ``(dict, journal, problems)``."""
    stored = meta.get("history")
    if not (isinstance(stored, dict)
            and sorted(stored) == ["best_epoch", "journal", "stop_reason"]):
        return None, None, [f"metadata 'history' must be a dict with keys 'best_epoch', "
                            f"'journal' and 'stop_reason', got {stored!r}"]
    try:
        journal, data = HistoryJournal.load(path, stored["journal"])
    except ValueError as exc:
        return None, None, [f"metadata 'history': {exc}"]
    return (dict(data, epochs=stored["journal"]["epochs"], best_epoch=stored["best_epoch"],
                 stop_reason=stored["stop_reason"]), journal, [])


# Sorted, so that missing keys are listed in order.
_CHECKPOINT_META = ("epoch", "history", "identity", "kind", "optimizer_steps", "rngs",
                    "stopper")


def _expected_optimizer_arrays(optimizer, model) -> dict:
    """``{array name: (shape, dtype)}`` of the optimizer state a checkpoint holds after
    at least one step, found by stepping a blank copy of the optimizer once on zeros
    (state is created lazily, and its layout differs between optimizers)."""
    probe = copy.copy(optimizer)
    probe.state, probe.steps = {}, 0
    if callable(getattr(probe, "momentum", None)):   # a schedule (its 0 makes no buffer):
        probe.momentum = 0.5                          # the layout with the buffers
    zeros = {k: np.zeros_like(p) for k, p in model.params.items()}
    probe.step({k: z.copy() for k, z in zeros.items()}, zeros)
    return {f"optim/state/{name}/{key}": (np.shape(v), np.asarray(v).dtype)
            for name, st in probe.state.items() for key, v in st.items()}


def _check_checkpoint(arrays, meta, model, optimizer, gens, n_rows, n_val) -> list:
    """Every way ``arrays`` and ``meta`` differ from a checkpoint of this run, as text.

    The checksum only proves the file is what some writer wrote; this proves it is
    what :func:`write_checkpoint` would write for this model, optimizer and data, so
    that restoring it can neither fail half-way nor carry foreign entries along.
    """
    problems, steps = _metadata_problems(meta)
    problems += _rng_problems(meta.get("rngs"), gens)
    problems += _array_problems(arrays, _expected_arrays(arrays, model, optimizer, steps,
                                                         n_rows, n_val))
    problems += _value_problems(arrays)
    if n_val is not None and not any("split/" in p for p in problems):
        both = np.concatenate([arrays["split/train"], arrays["split/val"]])
        if not np.array_equal(np.sort(both), np.arange(n_rows)):
            problems.append(f"arrays 'split/train' and 'split/val' are not a split of the "
                            f"{n_rows} rows")
    return problems


def _count(meta, key, problems):
    """``meta[key]`` when it is an int >= 0, else None (and the problem noted)."""
    try:
        return check_positive_int(meta.get(key), key, minimum=0)
    except (TypeError, ValueError):
        problems.append(f"metadata {key!r} must be an int >= 0, got {meta.get(key)!r}")
        return None


def _metadata_problems(meta) -> tuple[list, int | None]:
    """The problems of the metadata other than ``rngs``, and the optimizer's step
    count (``None`` when not valid)."""
    problems = []
    missing, extra = key_differences(meta, _CHECKPOINT_META)
    if missing:
        problems.append(f"metadata keys {missing} are missing")
    if extra:
        problems.append(f"unexpected metadata keys {extra}")
    epoch = _count(meta, "epoch", problems)
    steps = _count(meta, "optimizer_steps", problems)
    history = meta.get("history")
    problems += [f"metadata 'history': {p}" for p in history_dict_problems(history)]
    if isinstance(history, dict) and epoch is not None and history.get("epochs") != epoch:
        problems.append(f"metadata 'history' holds {history.get('epochs')!r} epochs, the "
                        f"checkpoint {epoch}")
    if isinstance(history, dict) and history.get("stop_reason") == "interrupted":
        problems.append("metadata 'history' has stop_reason 'interrupted', which a "
                        "checkpoint never records")
    problems += [f"metadata 'stopper' {p}" for p in stopper_state_problems(meta.get("stopper"))]
    return problems, steps


def _rng_problems(rngs, gens) -> list:
    """Whether ``rngs`` holds one valid state for each of the run's generators."""
    if not isinstance(rngs, list) or len(rngs) != len(gens):
        return [f"metadata 'rngs' must be a list of {len(gens)} generator states, got "
                f"{type(rngs).__name__}"
                + (f" of length {len(rngs)}" if isinstance(rngs, list) else "")]
    problems = []
    for i, (r, state) in enumerate(zip(gens, rngs, strict=True)):
        try:  # on a copy: the real generators change only once all is checked
            _set_rng_state(copy.deepcopy(r), state)
        except Exception as exc:  # noqa: BLE001 - any failure means a bad state
            problems.append(f"rngs[{i}] is not a state of the run's {type(r).__name__} "
                            f"({type(exc).__name__}: {exc})")
    return problems


def _expected_arrays(arrays, model, optimizer, steps, n_rows, n_val) -> dict:
    """``{name: (shape, dtype)}`` of the arrays a checkpoint of this run holds; dtype
    ``None`` for integer index arrays of any integer dtype."""
    kept = kept_arrays(model)
    expected = {f"params/{k}": (p.shape, p.dtype) for k, p in kept.items()}
    if steps:
        expected.update(_expected_optimizer_arrays(optimizer, model))
        # a scheduled momentum that was 0 at every step so far made no buffers yet
        buffers = [k for k in expected if k.endswith("/momentum_buffer")]
        if callable(getattr(optimizer, "momentum", None)) and not any(b in arrays
                                                                     for b in buffers):
            for b in buffers:
                del expected[b]
    # Early stopping's best parameters are there only once kept: all of them or none.
    if any(f"best/{k}" in arrays for k in kept):
        expected.update({f"best/{k}": (p.shape, p.dtype) for k, p in kept.items()})
    if n_val is not None:
        expected["split/train"] = ((n_rows - n_val,), None)
        expected["split/val"] = ((n_val,), None)
    return expected


def _array_problems(arrays, expected) -> list:
    """Exactly the ``expected`` names, each of its shape and dtype."""
    problems = []
    missing, extra = key_differences(arrays, sorted(expected))
    if missing:
        problems.append(f"arrays {missing} are missing")
    if extra:
        problems.append(f"unexpected arrays {extra}")
    for name in sorted(set(expected) & set(arrays)):
        shape, dtype = expected[name]
        arr = arrays[name]
        if arr.shape != tuple(shape):
            problems.append(f"array {name!r} has shape {arr.shape}, expected {tuple(shape)}")
        if dtype is None:
            if arr.dtype.kind not in "iu":
                problems.append(f"array {name!r} has dtype {arr.dtype}, expected integers")
        elif arr.dtype != dtype:
            problems.append(f"array {name!r} has dtype {arr.dtype}, expected {dtype}")
    return problems


def _value_problems(arrays) -> list:
    """Values no run can reach: non-finite parameters or optimizer state (fit stops
    before any), negative second moments or step counts. Refused here, they would be
    installed into the model before training noticed."""
    problems = []
    for name in sorted(arrays):
        arr = arrays[name]
        if name.startswith("split/") or arr.dtype.kind not in "fiu":
            continue
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            problems.append(f"array {name!r} holds NaN or infinite values")
        elif name.startswith("optim/") and name.rsplit("/", 1)[1] in NON_NEGATIVE_STATE \
                and (arr < 0).any():
            problems.append(f"array {name!r} holds negative values")
    return problems





def read_checkpoint(path, identity, model, optimizer, gens, n_rows, n_val):
    """Load and check a checkpoint; raise before anything is changed.

    Raises ``ModelFileError`` (a ``ValueError``) naming the file and every entry that
    is missing, unexpected or of the wrong shape, dtype or type, and ``ValueError``
    for a checkpoint of another run.
    """
    name = os.fspath(path)
    arrays, meta = read_archive(path)
    if meta.get("kind") != _CHECKPOINT_KIND:
        raise ValueError(f"checkpoint {name!r} is not a training checkpoint (kind "
                         f"{meta.get('kind')!r}); a model saved with chainrule.io cannot be "
                         f"resumed")
    stored, identity = meta.get("identity"), as_stored(meta.get("identity"), identity)
    if stored != identity:
        raise CheckpointMismatchError(name, *first_difference(stored, identity))
    history, journal, problems = _load_history(path, meta)
    # The checks below see the History whole, as if the checkpoint held it.
    problems += _check_checkpoint(arrays, dict(meta, history=history), model, optimizer,
                                  gens, n_rows, n_val)
    if problems:
        raise ModelFileError(f"checkpoint {name!r} cannot be resumed, it does not hold the "
                             f"state of this run: " + "; ".join(problems))
    state: dict = {}
    for key, value in arrays.items():
        if key.startswith("optim/state/"):
            pname, sub = key[len("optim/state/"):].rsplit("/", 1)
            state.setdefault(pname, {})[sub] = value
    params = {k: arrays[f"params/{k}"] for k in kept_arrays(model)}
    best = ({k: arrays[f"best/{k}"] for k in kept_arrays(model)}
            if f"best/{next(iter(model.params))}" in arrays else None)
    stopper = dict(meta["stopper"], best_params=best)
    split = (arrays["split/train"], arrays["split/val"]) if n_val is not None else None
    snap = {"epoch": meta["epoch"], "params": params,
            "optimizer": {"steps": meta["optimizer_steps"], "state": state},
            "rngs": meta["rngs"], "stopper": stopper}
    snap["history"], snap["journal"] = History.from_dict(history), journal
    return snap, split


