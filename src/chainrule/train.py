"""The one training loop: :func:`fit` returns a :class:`History`.

Everything that trains a chainrule network goes through :func:`fit` (the command
line, the scikit-learn estimator, :func:`chainrule.sanity_check`). Its body is written
as one linear loop, in the spirit of nanoGPT's ``train.py``::

    for epoch:
        draw a permutation of the rows            (minibatches only)
        for each batch:
            logits = model.forward(batch)          the one forward path
            loss   = model.loss.forward(logits)    checked: must be finite
            grads  = model.backward(loss.backward())
            optimizer.step(params, grads)          params updated in place
        evaluate on the validation rows, record the History, early stopping,
        callbacks, checkpoint

With ``batch_size=None`` (the default) each epoch is one full-batch gradient step,
exactly the homework's ``model.step``: plain ``SGD`` reproduces its losses bit for bit.

Conventions
-----------
* Epochs are counted from 0, as the homework's log (``Epoch    0, loss = 2.3026``).
* ``history["loss"][e]`` is the mean over the rows of epoch ``e`` of the loss each
  batch had *before* its update (weighted by ``sample_weight`` when given). In
  full-batch training that is the homework's printed loss. ``history["accuracy"]``
  counts the rows each batch classified correctly before its update (with Dropout
  active, as the loss). Validation values are computed after the epoch, with
  Dropout off.
* ``history["lr"][e]`` is the learning rate of the epoch's first step;
  ``history["time"][e]`` the epoch's wall time in seconds.

Randomness
----------
The row permutations and the ``validation_fraction`` split are drawn from ``rng``
(``None``: NumPy's global generator, an int: a new ``numpy.random.Generator`` seeded
with it). Dropout masks come from the model's own generator (the ``rng`` given to
``MLP``). Same model, data and ``rng`` give bit-identical parameters.

Checkpoints and Ctrl-C
----------------------
With ``checkpoint=path`` the full state of the run is written after every epoch
(atomically, with :mod:`chainrule._fileformat`, so no pickle and no half-written
file): parameters, ``optimizer.state_dict()``, the number of epochs done, the state of
every random generator involved (``rng`` and each Dropout layer's), the History so
far, the early-stopping bookkeeping, the validation split and a fingerprint of the
model, optimizer and data. ``fit(..., checkpoint=path, resume=True)`` loads it, checks
that it belongs to the same model, optimizer, data and batching, and continues; the
result is bit-identical to a run that was never interrupted. The generators are
*restored from the file*: an int ``rng`` first seeds a fresh generator whose state
is then overwritten, and a ``Generator`` you pass is set to the saved state. A
missing checkpoint file with ``resume=True`` starts the run from scratch, so the
same command can be repeated after a crash.

A ``KeyboardInterrupt`` (Ctrl-C) during :func:`fit` does not propagate. The epoch
that was running is discarded: parameters, optimizer state, generators and History
are rolled back to the end of the last completed epoch, that state is written to the
checkpoint (when one was given), and :func:`fit` returns the History with
``stop_reason == "interrupted"``. Resuming from the checkpoint then gives the same
result as an uninterrupted run.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time

import numpy as np

from ._validation import (
    check_in_interval,
    check_positive_int,
    check_rng,
    check_sample_weight,
)
from .checkpoint import (
    check_resume_epochs,
    fingerprint,
    generators,
    read_checkpoint,
    restore,
    run_identity,
    snapshot,
    write_checkpoint,
)
from .data import split_rows
from .history import EarlyStopping, History
from .layers import Affine, ReLU
from .losses import CategoricalCrossEntropy
from .models import Network
from .optim import Optimizer, get_optimizer

__all__ = ["fit", "evaluate", "History", "EarlyStopping", "TrainingDivergedError"]



class TrainingDivergedError(FloatingPointError):
    """The loss (or the parameters) became NaN or infinite during :func:`fit`.

    Attributes
    ----------
    epoch : int
        Epoch (from 0) in which it happened.
    step : int
        Batch index within that epoch.
    layer : str
        The first layer whose output was non-finite, or ``"loss"``.
    """

    def __init__(self, message, *, epoch, step, layer):
        super().__init__(message)
        self.epoch, self.step, self.layer = epoch, step, layer


# -- evaluation -----------------------------------------------------------------------

def _evaluate_checked(model, X, Y) -> dict:
    """Loss (and accuracy for a classifier) on already-checked arrays, Dropout off."""
    logits = model.forward(X, training=False, checked=True)
    out = {"loss": model.loss.forward(logits, Y)}
    if isinstance(model.loss, CategoricalCrossEntropy):
        out["accuracy"] = float(np.mean(logits.argmax(axis=1) == Y.argmax(axis=1)))
    return out


def evaluate(model, X, Y) -> dict:
    """Loss and accuracy of ``model`` on ``(X, Y)`` with Dropout off.

    Parameters
    ----------
    model : Network
    X : array_like, shape (N, D)
    Y : array_like, shape (N, K)
        One-hot labels (cross-entropy) or targets (mean squared error).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``; no ``"accuracy"`` for a model whose
        loss is not cross-entropy.
    """
    _check_model(model)
    X, Y = model._check_XY(X, Y)
    return _evaluate_checked(model, X, Y)


# -- argument checks --------------------------------------------------------------------

def _check_model(model):
    if not isinstance(model, Network):
        raise TypeError(f"model must be a chainrule Network (e.g. MLP), got "
                        f"{type(model).__name__}")


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_optimizer(optimizer):
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return get_optimizer(optimizer)
    raise TypeError(f"optimizer must be a chainrule.optim.Optimizer or one of 'sgd', 'adam', "
                    f"'adamw', got {type(optimizer).__name__}")


def _check_early_stopping(early_stopping):
    if early_stopping is None or isinstance(early_stopping, EarlyStopping):
        return early_stopping
    if isinstance(early_stopping, numbers.Integral) and not isinstance(early_stopping, bool):
        return EarlyStopping(patience=early_stopping)
    raise TypeError(f"early_stopping must be None, an int patience or an EarlyStopping, got "
                    f"{type(early_stopping).__name__} {early_stopping!r}")


def _check_callbacks(callbacks):
    if callable(callbacks):
        callbacks = (callbacks,)
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a sequence of callables, got "
                        f"{type(callbacks).__name__}") from None
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable as cb(epoch, logs, model), got "
                            f"{type(cb).__name__} {cb!r}")
    return callbacks


def _check_sample_weight(model, sample_weight, n):
    if sample_weight is None:
        return None
    return check_sample_weight(sample_weight, n, model.dtype)


# -- diagnostics and divergence ----------------------------------------------------------

def _relu_after_affine(model):
    """Pairs (ReLU layer, weight name of the Affine layer right before it)."""
    pairs, last_weight = [], None
    for layer, names in model.layers:
        if isinstance(layer, Affine):
            last_weight = names[0]
        elif type(layer) is ReLU and last_weight is not None:
            pairs.append((layer, last_weight))
            last_weight = None
    return pairs


def _first_nonfinite_layer(model, X):
    """Run the forward pass layer by layer; name the first one with a non-finite output."""
    nodes = model._node_names()
    out = X
    with np.errstate(all="ignore"):
        for i, (layer, names) in enumerate(model.layers):
            layer.training = False
            out = layer.forward(out, *[model.params[n] for n in names])
            if not np.isfinite(out).all():
                uses = f" with {', '.join(names)}" if names else ""
                return f"layer {i} ({layer!r}{uses}, output {nodes[i + 1]})"
    return f"the loss ({type(model.loss).__name__})"


def _diverged(model, X_batch, backup, epoch, step, what):
    bad_params = [k for k, p in model.params.items() if not np.isfinite(p).all()]
    where = _first_nonfinite_layer(model, X_batch)
    # The parameters now in place are the ones that produced the non-finite value, so
    # they are not "good" even when finite: put back those from before the previous
    # update, the last ones whose loss was finite. (The optimizer's running state is
    # not rolled back; build a new optimizer before training again.)
    for k, p in model.params.items():
        p[...] = backup[k]
    if bad_params:
        restored = ("the parameters were restored to their values before the previous "
                    f"update (which made {', '.join(bad_params)} non-finite)")
    else:
        restored = ("the parameters were restored to their values before the previous "
                    "update, the last ones whose loss was finite")
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}, batch {step}: {what}; values first became "
        f"non-finite in {where}. {restored[0].upper() + restored[1:]} (the optimizer's "
        f"running state is not rolled back: train again with a new optimizer). Try a "
        f"smaller learning rate or standardised inputs.", epoch=epoch, step=step, layer=where)


# -- the training loop ---------------------------------------------------------------------

def fit(model, X, Y, *, optimizer, epochs, batch_size=None, shuffle=True, validation_data=None,
        validation_fraction=None, early_stopping=None, callbacks=(), rng=None, progress=True,
        sample_weight=None, checkpoint=None, resume=False, diagnostics=True) -> History:
    """Train ``model`` on ``(X, Y)``; return what happened as a :class:`History`.

    Parameters
    ----------
    model : Network
        Trained in place (``model.params`` is updated).
    X : array_like, shape (N, D)
    Y : array_like, shape (N, K)
        One-hot rows for a cross-entropy model, targets for mean squared error.
    optimizer : Optimizer or {'sgd', 'adam', 'adamw'}
        A name builds that optimizer with its defaults.
    epochs : int
        Number of passes over the training rows (in total, counting the epochs of a
        resumed checkpoint).
    batch_size : int or None, default=None
        Rows per gradient step; ``None`` is full-batch gradient descent (the homework).
        A value above N gives one batch.
    shuffle : bool, default=True
        With minibatches, visit the rows in a fresh random permutation every epoch
        (each row exactly once, no sampling with replacement).
    validation_data : tuple (X_val, Y_val), optional
    validation_fraction : float in (0, 1), optional
        Hold out ``ceil(fraction * N)`` rows drawn with ``rng`` instead.
    early_stopping : None, int or EarlyStopping
        An int is the patience on ``val_loss``.
    callbacks : sequence of callable
        Each called as ``cb(epoch, logs, model)`` after every epoch; ``logs`` holds the
        epoch's History values and its ``"diagnostics"``. Returning True stops training.
    rng : None, int or numpy.random.Generator
        Source of the permutations and of the validation split.
    progress : bool, default=True
        Show a tqdm progress bar on stderr when it is a terminal and the run lasts
        more than two seconds (and tqdm is installed).
    sample_weight : array_like, shape (N,), optional
        Row weights for the training loss.
    checkpoint : str or os.PathLike, optional
        Write the state of the run to this file after every epoch.
    resume : bool, default=False
        Continue from ``checkpoint`` if the file exists. The file is checked in full
        first (its arrays against the model's and the optimizer's, its metadata, that
        it belongs to this run, that ``epochs`` is not below its epoch count), so a bad
        file raises before anything is changed.
    diagnostics : bool, default=True
        Record per-layer diagnostics every epoch (a few percent of the run time):
        for each Affine weight, ``grad_norm`` (Frobenius norm of its gradient at the
        epoch's last step), ``update_ratio`` (``||W_after - W_before|| / ||W_before||``
        over that step; NaN while ``W`` is all zeros) and ``dead_fraction`` (for an
        Affine layer followed by ReLU: the fraction of its units whose ReLU output was
        0 for *every* training row of the epoch, as seen by the forward passes of the
        epoch; ``None`` for other layers).

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When the loss becomes NaN or infinite; the parameters are left at their last
        finite values.
    ValueError, TypeError
        For bad arguments or data (feature or class count not matching the model,
        ...), before any parameter changes.
    chainrule._fileformat.ModelFileError
        (a ``ValueError``) With ``resume=True``, for a checkpoint that is damaged or
        does not hold the state of this run: missing, unexpected or misshapen arrays,
        missing or mistyped metadata. Raised before anything changes.
    """
    # ---- 1. Check every argument before anything changes -----------------------------
    _check_model(model)
    optimizer = _check_optimizer(optimizer)
    epochs = check_positive_int(epochs, "epochs")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    shuffle = _check_bool(shuffle, "shuffle")
    progress = _check_bool(progress, "progress")
    resume = _check_bool(resume, "resume")
    diagnostics = _check_bool(diagnostics, "diagnostics")
    X, Y = model._check_XY(X, Y)
    bad = [k for k, p in model.params.items() if not np.isfinite(p).all()]
    if bad:
        raise ValueError(f"model parameters {bad} hold NaN or infinite values; re-initialise "
                         f"the model before training")
    sample_weight = _check_sample_weight(model, sample_weight, X.shape[0])
    is_classifier = isinstance(model.loss, CategoricalCrossEntropy)
    stopper_cfg = _check_early_stopping(early_stopping)
    callbacks = _check_callbacks(callbacks)
    random = check_rng(rng)
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(f"validation_data must be a pair (X_val, Y_val), got "
                            f"{type(validation_data).__name__}")
        try:
            X_val, Y_val = model._check_XY(*validation_data)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"validation_data: {exc}") from None
    if validation_fraction is not None:
        validation_fraction = check_in_interval(validation_fraction, "validation_fraction",
                                                0.0, 1.0, low_closed=False)
        n_val = math.ceil(validation_fraction * X.shape[0])
        if n_val >= X.shape[0]:
            raise ValueError(f"validation_fraction={validation_fraction} of {X.shape[0]} rows "
                             f"leaves no training rows")
    has_val = validation_data is not None or validation_fraction is not None
    if stopper_cfg is not None:
        if stopper_cfg.monitor.startswith("val_") and not has_val:
            raise ValueError(f"early stopping monitors {stopper_cfg.monitor!r}, which needs "
                             f"validation_data or validation_fraction (or monitor 'loss')")
        if stopper_cfg.monitor.endswith("accuracy") and not is_classifier:
            raise ValueError(f"early stopping monitors {stopper_cfg.monitor!r}, but a "
                             f"{type(model.loss).__name__} model has no accuracy")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path, got {type(checkpoint).__name__}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path (the file to resume from)")
    if checkpoint is not None:
        # Found now, not after the first epoch has already changed the parameters.
        folder = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"checkpoint: the directory {folder!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"checkpoint: the directory {folder!r} is not writable")

    # Everything the run draws from; their states go into checkpoints.
    gens = generators(random, model)
    identity = None
    if checkpoint is not None:
        data_fp = fingerprint(X, Y, sample_weight)
        val_id = ({"data": fingerprint(X_val, Y_val)} if validation_data is not None else
                  {"fraction": validation_fraction} if validation_fraction is not None else None)
        identity = run_identity(model, optimizer, batch_size, shuffle, data_fp, val_id,
                                 stopper_cfg)
    loaded, split = None, None
    if resume and os.path.exists(checkpoint):
        loaded, split = read_checkpoint(
            checkpoint, identity, model, optimizer, gens, X.shape[0],
            n_val if validation_fraction is not None else None)
        check_resume_epochs(checkpoint, epochs, loaded["epoch"])

    # ---- 2. The validation split (stored in checkpoints, so a resumed run reuses it) ---
    if validation_fraction is not None:
        if split is None:
            split = split_rows(X.shape[0], n_val, random)
        train_idx, val_idx = split
        X_val, Y_val = X[val_idx], Y[val_idx]
        X, Y = X[train_idx], Y[train_idx]
        if sample_weight is not None:
            sample_weight = sample_weight[train_idx]

    if sample_weight is not None and not sample_weight.sum() > 0:
        raise ValueError("sample_weight of the training rows sums to 0 (after the "
                         "validation_fraction split): there is nothing to train on")

    # ---- 3. Run state: History and early-stopping bookkeeping (or a checkpoint's) ------
    history = History() if loaded is None else loaded["history"]
    stopper = {"best": None, "best_epoch": None, "wait": 0, "best_params": None}
    if loaded is not None:
        restore(loaded, model, optimizer, gens, history, stopper)
    start_epoch = history.epochs

    n = X.shape[0]
    bs = n if batch_size is None else min(batch_size, n)
    starts = range(0, n, bs)
    labels = Y.argmax(axis=1) if is_classifier else None  # for the running accuracy
    params = model.params
    relu_pairs = _relu_after_affine(model) if diagnostics else []
    weights = [names[0] for layer, names in model.layers if isinstance(layer, Affine)]
    # Parameters before the latest update: what divergence handling and the update
    # ratio need. Filled in place every step, allocated once.
    backup = {k: p.copy() for k, p in params.items()}

    bar = None
    if progress and sys.stderr is not None and sys.stderr.isatty():
        try:
            from tqdm import tqdm
            bar = tqdm(total=epochs, initial=start_epoch, unit="epoch", delay=2.0,
                       file=sys.stderr)
        except ImportError:
            bar = None

    snap = snapshot(model, optimizer, gens, start_epoch, stopper)
    finished = history.stop_reason in ("early_stopping", "callback")
    try:
        for epoch in range(start_epoch, 0 if finished else epochs):
            t0 = time.perf_counter()
            lr = optimizer.current_lr()
            # A fresh permutation each epoch: every row once, in random order.
            order = random.permutation(n) if (batch_size is not None and shuffle) else None
            alive = {w: None for _, w in relu_pairs}
            sum_loss, sum_weight, n_correct = 0.0, 0.0, 0
            for step, start in enumerate(starts):
                idx = slice(start, start + bs) if order is None else order[start:start + bs]
                xb, yb = X[idx], Y[idx]
                wb = None if sample_weight is None else sample_weight[idx]

                # forward: the model's one forward path, then the loss
                logits = model.forward(xb, training=True, checked=True)
                loss = model.loss.forward(logits, yb, wb)
                if not math.isfinite(loss):
                    _diverged(model, xb, backup, epoch, step, f"the loss is {loss}")
                # backward: the chain rule, layer by layer, from dL/dlogits
                d_logits, _ = model.loss.backward(1.0)
                grads = model.backward(d_logits)

                # bookkeeping before the update (the loss belongs to these parameters)
                rows = xb.shape[0] if wb is None else float(wb.sum())
                sum_loss += loss * rows
                sum_weight += rows
                if is_classifier:
                    n_correct += int(np.count_nonzero(logits.argmax(axis=1) == labels[idx]))
                for relu, w in relu_pairs:
                    active = relu.cache.any(axis=0)  # ReLU caches the mask inputs > 0
                    alive[w] = active if alive[w] is None else (alive[w] | active)

                # update: keep the old values, then step in place
                for k, p in params.items():
                    np.copyto(backup[k], p)
                optimizer.step(params, grads)

            if not all(np.isfinite(p).all() for p in params.values()):
                _diverged(model, xb, backup, epoch, step, "the last update made the "
                          "parameters non-finite")

            # ---- end of epoch: record, validate, decide whether to stop -------------
            logs = {"loss": sum_loss / sum_weight}
            if is_classifier:
                logs["accuracy"] = n_correct / n
            if has_val:
                val = _evaluate_checked(model, X_val, Y_val)
                logs["val_loss"] = val["loss"]
                if is_classifier:
                    logs["val_accuracy"] = val["accuracy"]
                if not math.isfinite(val["loss"]):
                    _diverged(model, X_val, backup, epoch, step,
                              f"the validation loss is {val['loss']}")
            logs["lr"] = float(lr)
            logs["time"] = time.perf_counter() - t0
            diag = {}
            if diagnostics:
                dead = {w: 1.0 - float(np.mean(a)) for w, a in alive.items() if a is not None}
                for w in weights:
                    w_norm = float(np.linalg.norm(backup[w]))
                    delta = float(np.linalg.norm(params[w] - backup[w]))
                    diag[w] = {"grad_norm": float(np.linalg.norm(grads[w])),
                               "update_ratio": delta / w_norm if w_norm > 0 else float("nan"),
                               "dead_fraction": dead.get(w)}
            history._append(logs, diag)

            stop = None
            if stopper_cfg is not None:
                value = logs[stopper_cfg.monitor]
                if stopper_cfg.improved(value, stopper["best"]):
                    stopper.update(best=value, best_epoch=epoch, wait=0)
                    if stopper_cfg.restore_best_weights:
                        stopper["best_params"] = {k: p.copy() for k, p in params.items()}
                else:
                    stopper["wait"] += 1
                    if stopper["wait"] >= stopper_cfg.patience:
                        stop = "early_stopping"
            for cb in callbacks:
                if cb(epoch, dict(logs, diagnostics=diag), model) is True:
                    stop = stop or "callback"

            # ---- commit the epoch: from here on an interrupt keeps it ----------------
            history.stop_reason = stop
            new_snap = snapshot(model, optimizer, gens, epoch + 1, stopper)
            if checkpoint is not None:
                write_checkpoint(checkpoint, new_snap, history, identity, split)
            snap = new_snap
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time"},
                                refresh=False)
                bar.update(1)
            if stop:
                break
    except KeyboardInterrupt:
        # Discard the unfinished epoch: roll back to the last committed state, save it.
        restore(snap, model, optimizer, gens, history, stopper)
        if checkpoint is not None:
            write_checkpoint(checkpoint, snap, history, identity, split)
        history.stop_reason = "interrupted"
        history.best_epoch = _best_epoch(history, stopper, stopper_cfg, has_val)
        return history
    finally:
        if bar is not None:
            bar.close()

    if stopper_cfg is not None and stopper_cfg.restore_best_weights and \
            stopper["best_params"] is not None:
        for k, p in params.items():
            p[...] = stopper["best_params"][k]
    history.best_epoch = _best_epoch(history, stopper, stopper_cfg, has_val)
    return history


def _best_epoch(history, stopper, stopper_cfg, has_val):
    if stopper_cfg is not None:
        return stopper["best_epoch"]
    values = history.history.get("val_loss" if has_val else "loss")
    return int(np.argmin(values)) if values else None
