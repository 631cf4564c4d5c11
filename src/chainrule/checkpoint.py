"""The state of a training run: snapshot, restore, and the checkpoint file.

:func:`chainrule.train.fit` takes a :func:`snapshot` after every epoch and, with
``checkpoint=path``, writes it with :func:`write_checkpoint`; ``resume=True`` reads it
back with :func:`read_checkpoint`, which refuses a file of another run or one that
does not hold exactly the state of this run, before anything changes.

What a checkpoint holds
-----------------------
A file in the :mod:`chainrule._fileformat` layout (no pickle) with the arrays
``params/<name>``, ``optim/state/<name>/<key>``, ``best/<name>`` (early stopping's best
parameters, when kept) and ``split/train``, ``split/val`` (a ``validation_fraction``
split), and the metadata ``kind``, ``epoch``, ``optimizer_steps``, ``rngs`` (the state
of every generator the run draws from), ``history`` (:meth:`History.as_dict`),
``stopper`` (early stopping's bookkeeping) and ``identity``.

The run identity
----------------
:func:`run_identity` is the one definition of what must be equal for a checkpoint
to be resumed: the model's class, config and parameter shapes; the optimizer's class,
hyperparameters and learning-rate schedule; the batching; a fingerprint of the
training data (and sample weights); the validation data or fraction; the
early-stopping rule. A new :func:`~chainrule.train.fit` option that changes the
result of a run belongs in it, or a resumed run silently differs from an
uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os

import numpy as np

from ._fileformat import ModelFileError, read_archive, write_archive
from .history import History, history_dict_problems

__all__ = ["CheckpointMismatchError", "CheckpointEpochsError", "generators", "snapshot",
           "restore", "fingerprint", "run_identity", "write_checkpoint", "read_checkpoint",
           "check_resume_epochs"]

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


def _rng_state(r) -> dict:
    state = r.bit_generator.state if isinstance(r, np.random.Generator) else \
        r.get_state(legacy=False)
    return _to_json(state)


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


def fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_normal(obj):
    return json.loads(json.dumps(obj))


#: Steps at which a learning-rate schedule is sampled to recognise it on resume.
_SCHEDULE_PROBES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000,
                    100_000, 1_000_000)


def _schedule_fingerprint(lr):
    """A schedule is a pure function of the step, so its values at fixed steps tell
    whether a resumed run uses the same one (a changed ``base_lr`` is caught)."""
    if not callable(lr):
        return None
    values = []
    for step in _SCHEDULE_PROBES:
        try:
            values.append(float(lr(step)))
        except Exception:  # noqa: BLE001 - a schedule defined on fewer steps
            values.append(None)
    return values


def run_identity(model, optimizer, batch_size, shuffle, data_fp, validation, early_stopping):
    """What must match between a checkpoint and the run resuming from it."""
    return _json_normal({
        "model": {"class": type(model).__name__, "config": getattr(model, "config", None),
                  "params": {k: [list(p.shape), p.dtype.str] for k, p in model.params.items()}},
        "optimizer": {"class": type(optimizer).__name__,
                      "hyperparameters": optimizer.hyperparameters(),
                      "lr_schedule": _schedule_fingerprint(optimizer.lr)},
        "batch_size": batch_size, "shuffle": shuffle, "data": data_fp,
        "validation": validation,
        "early_stopping": early_stopping.config() if early_stopping else None,
    })


def _first_difference(saved, current, prefix=""):
    """First difference between two JSON trees: ``(dotted path, saved, current)``."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key),
                                         f"{prefix}.{key}" if prefix else key)
    return prefix, saved, current


def snapshot(model, optimizer, gens, epoch, stopper):
    """Copy of the state of the run after ``epoch`` epochs (the History is not
    copied: rolling back only truncates it)."""
    return {"epoch": epoch,
            "params": {k: p.copy() for k, p in model.params.items()},
            "optimizer": optimizer.state_dict(),
            "rngs": [_rng_state(r) for r in gens],
            "stopper": dict(stopper)}


def restore(snap, model, optimizer, gens, history, stopper):
    for k, p in model.params.items():
        p[...] = snap["params"][k]
    optimizer.load_state_dict(snap["optimizer"])
    for r, state in zip(gens, snap["rngs"]):
        _set_rng_state(r, state)
    history._truncate(snap["epoch"])
    stopper.clear()
    stopper.update(snap["stopper"])


def write_checkpoint(path, snap, history, identity, split):
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
            "rngs": snap["rngs"], "history": history.as_dict(), "stopper": stopper,
            "identity": identity}
    write_archive(path, arrays, meta)


_CHECKPOINT_META = {"kind", "epoch", "optimizer_steps", "rngs", "history", "stopper",
                    "identity"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expected_optimizer_arrays(optimizer, model) -> dict:
    """``{array name: (shape, dtype)}`` of the optimizer state a checkpoint holds after
    at least one step, found by stepping a blank copy of the optimizer once on zeros
    (state is created lazily, and its layout differs between optimizers)."""
    probe = copy.copy(optimizer)
    probe.state, probe.steps = {}, 0
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
    problems = []
    missing_meta = sorted(_CHECKPOINT_META - set(meta))
    extra_meta = sorted(set(meta) - _CHECKPOINT_META)
    if missing_meta:
        problems.append(f"metadata keys {missing_meta} are missing")
    if extra_meta:
        problems.append(f"unexpected metadata keys {extra_meta}")

    epoch = meta.get("epoch")
    if not (_is_int(epoch) and epoch >= 0):
        problems.append(f"metadata 'epoch' must be an int >= 0, got {epoch!r}")
        epoch = None
    steps = meta.get("optimizer_steps")
    if not (_is_int(steps) and steps >= 0):
        problems.append(f"metadata 'optimizer_steps' must be an int >= 0, got {steps!r}")
        steps = None

    history = meta.get("history")
    for problem in history_dict_problems(history):
        problems.append(f"metadata 'history': {problem}")
    if isinstance(history, dict) and epoch is not None and history.get("epochs") != epoch:
        problems.append(f"metadata 'history' holds {history.get('epochs')!r} epochs, the "
                        f"checkpoint {epoch}")
    if isinstance(history, dict) and history.get("stop_reason") == "interrupted":
        problems.append("metadata 'history' has stop_reason 'interrupted', which a "
                        "checkpoint never records")

    stopper = meta.get("stopper")
    if not (isinstance(stopper, dict) and set(stopper) == {"best", "best_epoch", "wait"}):
        problems.append("metadata 'stopper' must be a dict with keys 'best', 'best_epoch' "
                        "and 'wait'")
    elif not ((stopper["best"] is None or _is_real(stopper["best"]))
              and (stopper["best_epoch"] is None or _is_int(stopper["best_epoch"]))
              and _is_int(stopper["wait"]) and stopper["wait"] >= 0):
        problems.append(f"metadata 'stopper' holds values of the wrong type: {stopper!r}")

    rngs = meta.get("rngs")
    if not isinstance(rngs, list) or len(rngs) != len(gens):
        problems.append(f"metadata 'rngs' must be a list of {len(gens)} generator states, "
                        f"got {type(rngs).__name__}"
                        + (f" of length {len(rngs)}" if isinstance(rngs, list) else ""))
    else:
        for i, (r, state) in enumerate(zip(gens, rngs)):
            try:  # on a copy: the real generators change only once all is checked
                _set_rng_state(copy.deepcopy(r), state)
            except Exception as exc:  # noqa: BLE001 - any failure means a bad state
                problems.append(f"rngs[{i}] is not a state of the run's "
                                f"{type(r).__name__} ({type(exc).__name__}: {exc})")

    # The arrays: exactly these names, each of the model's shape and dtype.
    expected = {f"params/{k}": (p.shape, p.dtype) for k, p in model.params.items()}
    if steps:
        expected.update(_expected_optimizer_arrays(optimizer, model))
    best = [f"best/{k}" for k in model.params]
    if any(name in arrays for name in best):
        expected.update({f"best/{k}": (p.shape, p.dtype) for k, p in model.params.items()})
    if n_val is not None:
        expected["split/train"] = ((n_rows - n_val,), None)
        expected["split/val"] = ((n_val,), None)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
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
    if n_val is not None and not any("split/" in p for p in problems):
        both = np.concatenate([arrays["split/train"], arrays["split/val"]])
        if not np.array_equal(np.sort(both), np.arange(n_rows)):
            problems.append(f"arrays 'split/train' and 'split/val' are not a split of the "
                            f"{n_rows} rows")
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
    if meta.get("identity") != identity:
        raise CheckpointMismatchError(name, *_first_difference(meta.get("identity"), identity))
    problems = _check_checkpoint(arrays, meta, model, optimizer, gens, n_rows, n_val)
    if problems:
        raise ModelFileError(f"checkpoint {name!r} cannot be resumed, it does not hold the "
                             f"state of this run: " + "; ".join(problems))
    state: dict = {}
    for key, value in arrays.items():
        if key.startswith("optim/state/"):
            pname, sub = key[len("optim/state/"):].rsplit("/", 1)
            state.setdefault(pname, {})[sub] = value
    params = {k: arrays[f"params/{k}"] for k in model.params}
    best = ({k: arrays[f"best/{k}"] for k in model.params}
            if f"best/{next(iter(model.params))}" in arrays else None)
    stopper = dict(meta["stopper"], best_params=best)
    split = (arrays["split/train"], arrays["split/val"]) if n_val is not None else None
    snap = {"epoch": meta["epoch"], "params": params,
            "optimizer": {"steps": meta["optimizer_steps"], "state": state},
            "rngs": meta["rngs"], "stopper": stopper}
    snap["history"] = History.from_dict(meta["history"])
    return snap, split


