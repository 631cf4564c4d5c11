"""The one training loop: :func:`fit` returns a :class:`History`.

Everything that trains a chainrule network goes through :func:`fit` (the command
line, the scikit-learn estimator, :func:`chainrule.sanity_check`). Its body is written
as one linear loop of named steps, in the spirit of nanoGPT's ``train.py``::

    check the arguments, prepare the run    validation split, resume a checkpoint
    for epoch:
        for each batch:                     data.batch_indices (a fresh permutation
                                            per epoch with minibatches)
            logits = model.forward(batch)          the one forward path
            loss   = model.loss.forward(logits)    checked: must be finite
            grads  = model.backward(loss.backward())   (+ the l2 term, if any)
            optimizer.step(params, grads)          params updated in place
        record the History (validation, diagnostics), early stopping, callbacks,
        commit the epoch (snapshot, checkpoint)
    finish: restore the best weights, best_epoch

With ``batch_size=None`` (the default) each epoch is one full-batch gradient step, exactly the
homework's ``model.step``: plain ``SGD`` reproduces its losses bit for bit. What each History
value means is written down once, in :class:`History`. Row permutations (unless ``shuffle`` is
a callable) and the ``validation_fraction`` split come from ``rng``, Dropout masks from the
model's generator: same model, data and ``rng``, same bits. ``comm=`` trains data-parallel
(:mod:`chainrule.distributed`); ``checkpoint=path`` saves the run after every epoch,
``resume=True`` continues it bit for bit; Ctrl-C rolls back to (and checkpoints) the last
completed epoch, ``stop_reason == "interrupted"`` (on several ranks it ends every rank,
status 130). BLAS threads are set once per run.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import distributed, sources
from ._fileformat import remove_stale_temporaries
from ._threads import check_threads, threads_for
from ._validation import all_finite, check_sample_weight, raise_non_finite
from .checkpoint import (
    RunSettings,
    check_resume_epochs,
    generators,
    read_checkpoint,
    restore,
    run_identity,
    snapshot,
    write_checkpoint,
)
from .data import batch_indices, split_rows
from .diagnostics import (
    Advisor,
    epoch_diagnostics,
    largest_class_share,
    relu_pairs,
    saturating_layers,
    saturation,
    step_measurements,
    warn_if_finished,
)
from .errors import TrainingDivergedError
from .fitargs import check_fit_arguments, check_network
from .functional import row_classes
from .history import EarlyStopping, EarlyStoppingState, History
from .journal import HistoryJournal
from .layers import Affine
from .loss_base import unchecked
from .losses import CategoricalCrossEntropy, is_multiclass, l2_penalty
from .optim import step_checked
from .stateful import kept_caches

__all__ = ["fit", "evaluate", "History", "EarlyStopping", "TrainingDivergedError"]


# -- evaluation -----------------------------------------------------------------------

def _evaluate_checked(model, X, Y, sample_weight=None) -> dict:
    """Loss and, for a classifier, accuracy (weighted means with weights), Dropout off."""
    logits = model.infer(X, checked=True)  # in row chunks: bounded memory
    with unchecked(model.loss) as loss_fn:
        out = {"loss": loss_fn.forward(logits, Y, sample_weight)}
    if is_multiclass(model.loss):   # cross-entropy, MultiMarginLoss: the argmax
        out["accuracy"] = float(np.average(logits.argmax(axis=1) == row_classes(Y),
                                           weights=sample_weight))
    return out


def evaluate(model, X, Y, *, sample_weight=None, threads=None) -> dict:
    """Loss and accuracy of ``model`` on ``(X, Y)`` with Dropout off.

    Parameters
    ----------
    model : Network
    X : array_like, shape (N, D)
    Y : array_like, shape (N, K) or (N,)
        One-hot or probability rows or class indices (cross-entropy), or targets.
    sample_weight : array_like, shape (N,), optional
        Row weights: the loss and accuracy are weighted means (arrays only, not files).
    threads : int or None, default=None
        BLAS threads; ``None`` chooses them as a prediction does (from a chunk's rows).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}`` (accuracy: as in :func:`fit`'s History); no
        ``"accuracy"`` for a model whose loss is not multiclass (cross-entropy or
        ``MultiMarginLoss``).
    """
    check_network(model)
    with threads_for(X, model.params, check_threads(threads),  # the checks' too
                     max_rows=model.chunk_rows(model.dtype)), kept_caches(model):
        X, Y = sources.check_data(model, X, Y, training=False)
        if sample_weight is None:
            return sources.evaluate_blocks(_evaluate_checked, model, X, Y)
        if isinstance(X, sources.RowView):
            raise TypeError("sample_weight applies to arrays X, not to an open_npy file")
        weights = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return _evaluate_checked(model, X, Y, weights)


# -- diagnostics and divergence ----------------------------------------------------------

def _first_nonfinite_layer(model, X):
    """Run the forward pass layer by layer; name the first one with a non-finite output."""
    nodes = model.node_names()
    with np.errstate(all="ignore"):
        for i, layer, names, out in model.walk(X, checked=True):
            if not np.isfinite(out).all():
                uses = f" with {', '.join(names)}" if names else ""
                return f"layer {i} ({layer!r}{uses}, output {nodes[i + 1]})"
    return f"the loss ({type(model.loss).__name__})"


def _diverged(model, run, X_batch, epoch, step, what, start_failed=False):
    """Put back the params and buffers of the latest epoch start whose loss was finite
    (those in place made the non-finite value, even if finite themselves) and raise.
    The run keeps this epoch's start (``run.snap``, what Ctrl-C restores), whose first
    batch had a finite loss, and the previous epoch's, for when that first batch failed
    (``start_failed``). A copy before every update instead cost 6% of a minibatch epoch
    of a 784-256-10 network. (The optimizer's running state is not rolled back.)"""
    bad_params = [k for k, p in model.params.items() if not np.isfinite(p).all()]
    where = _first_nonfinite_layer(model, X_batch)
    kept, start = run.snap["params"], run.snap["epoch"]
    if start_failed and run.prev_kept is not None:
        kept, start = run.prev_kept, start - 1
    for k, p in run.kept.items():
        p[...] = kept[k]
    made = f" (the updates since made {', '.join(bad_params)} non-finite)" if bad_params else ""
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}, batch {step}: {what}; values first became "
        f"non-finite in {where}. The parameters were restored to their values at the start "
        f"of epoch {start}, the last ones kept whose loss was finite{made} (the optimizer's "
        f"running state is not rolled back: train again with a new optimizer). Try a "
        f"smaller learning rate or standardised inputs.", epoch=epoch, step=step, layer=where)


# -- the state of one run ------------------------------------------------------------------

@dataclass
class _Run:
    """Everything one call of :func:`fit` carries from epoch to epoch."""

    settings: RunSettings
    X: np.ndarray  # the training rows (after a validation_fraction split)
    Y: np.ndarray
    sample_weight: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    W_val: np.ndarray | None  # the validation rows' sample weights
    split: tuple | None  # (train rows, validation rows) of a validation_fraction split
    gens: list  # every generator the run draws from; their states go into checkpoints
    identity: dict | None  # run_identity, with a checkpoint
    history: History
    stopper: EarlyStoppingState
    averager: Any  # with comm: the run's distributed.GradientAverager, else None
    params: dict = field(init=False)
    kept: dict = field(init=False)  # params and buffers: what rollbacks restore
    scan_rows: bool = field(init=False)  # whether this epoch's batches check X finite
    labels: np.ndarray | None = field(init=False)  # class of each row, for the accuracy
    relu_pairs: list = field(init=False)
    saturating: list = field(init=False)  # hidden (description, Tanh/Sigmoid layer)
    journal: HistoryJournal | None = field(init=False)  # the History's, with a checkpoint
    advisor: Advisor = field(init=False)  # the diagnostics' warnings
    weights: list = field(init=False)
    # Parameters before the epoch's measured update (its update ratio is a diagnostic):
    # filled in place once per epoch, with diagnostics.
    before_last: dict = field(init=False)
    snap: dict = field(init=False)  # the state after the last completed epoch
    prev_kept: dict | None = field(init=False)  # params and buffers one epoch earlier
    bar: Any = None  # a tqdm progress bar

    @property
    def is_classifier(self) -> bool:
        return self.labels is not None

    def epochs_left(self) -> range:
        finished = self.history.stop_reason in ("early_stopping", "callback")
        return range(self.history.epochs, 0 if finished else self.settings.epochs)


@dataclass
class _Tally:
    """What one epoch's steps add up, for its History entry and diagnostics."""

    alive: dict  # per weight, the units whose ReLU fired for some row so far
    sum_loss: float = 0.0
    sum_weight: float = 0.0
    n_correct: float = 0   # rows, or their weight
    measured: dict = field(default_factory=dict)  # step_measurements of the measured step
    step: int = 0  # index of the last step, and its batch
    X_batch: np.ndarray | None = None

    def add(self, loss, X_batch, weights, logits, labels, relu_pairs) -> None:
        """Count a batch's loss (before its update), correct rows and live units."""
        rows = X_batch.shape[0] if weights is None else float(weights.sum())
        self.sum_loss += loss * rows
        self.sum_weight += rows
        if labels is not None:   # (weighed as the loss: accuracy = n_correct / sum_weight)
            right = logits.argmax(axis=1) == labels
            self.n_correct += int(np.count_nonzero(right)) if weights is None else float(
                weights[right].sum())
        for relu, w in relu_pairs:
            active = relu.cache.any(axis=0)  # ReLU caches the mask inputs > 0
            self.alive[w] = active if self.alive[w] is None else (self.alive[w] | active)


def _split_validation(s: RunSettings, split):
    """Training and validation arrays, and the ``validation_fraction`` split (drawn
    with ``rng`` unless a checkpoint brought it, so a resumed run reuses it)."""
    n_val = s.n_val
    if n_val is None:  # no validation_fraction; validation_data, its weights optional
        X_val, Y_val, W_val = (*(s.validation_data or (None, None)), None)[:3]
        return s.X, s.Y, s.sample_weight, X_val, Y_val, W_val, None
    if split is None:
        split = split_rows(s.n_rows, n_val, s.rng)
    train_idx, val_idx = split
    w = s.sample_weight
    return (s.X[train_idx], s.Y[train_idx], None if w is None else w[train_idx],
            s.X[val_idx], s.Y[val_idx], None if w is None else w[val_idx], split)


def _progress_bar(s: RunSettings, start_epoch: int):
    if not (s.progress and distributed.is_root(s.comm) and sys.stderr and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=s.epochs, initial=start_epoch, unit="epoch", delay=2.0, file=sys.stderr)


def _prepare_run(model, s: RunSettings) -> _Run:
    """Load the checkpoint to resume (checked in full first), split off the validation
    rows, and set up the History, early stopping and everything the epochs reuse."""
    gens = generators(s.rng, model)
    identity = run_identity(model, s) if s.checkpoint is not None else None
    if s.checkpoint is not None:  # what killed runs left half-written
        remove_stale_temporaries(s.checkpoint)
    loaded, split = None, None
    if s.resume and os.path.exists(s.checkpoint):
        loaded, split = read_checkpoint(s.checkpoint, identity, model, s.optimizer, gens,
                                        s.n_rows, s.n_val)
        check_resume_epochs(s.checkpoint, s.epochs, loaded["epoch"])
    X, Y, weights, X_val, Y_val, W_val, split = _split_validation(s, split)
    for rows, w in (("training", weights), ("validation", W_val)):
        if w is not None and not w.sum() > 0:
            raise ValueError(f"sample_weight of the {rows} rows sums to 0 (after the "
                             f"validation_fraction split): there is nothing to weigh")
    run = _Run(s, X, Y, weights, X_val, Y_val, W_val, split, gens, identity,
               History() if loaded is None else loaded["history"],
               EarlyStoppingState(s.early_stopping), distributed.averager(s, model.params, model))
    if loaded is not None:
        restore(loaded, model, s.optimizer, gens, run.history, run.stopper)
        warn_if_finished(s.checkpoint, s.epochs, run.history)
        if hasattr(s.optimizer.lr, "replay"):  # ReduceLROnPlateau: the epochs done
            s.optimizer.lr.replay(run.history)
    run.journal = (loaded["journal"] if loaded is not None else
                   None if s.checkpoint is None else HistoryJournal(s.checkpoint))
    run.params, run.kept = model.params, {**model.params, **model.buffers}
    run.scan_rows = s.scan_rows
    run.labels = row_classes(Y) if is_multiclass(model.loss) else None
    run.relu_pairs = relu_pairs(model) if s.diagnostics else []
    run.saturating = saturating_layers(model) if s.diagnostics else []
    run.advisor = Advisor(  # the largest class's share: counted once, not per step
        [k for k, p in model.params.items() if p.ndim > 1],
        model.n_outputs if run.is_classifier else None, weighted=weights is not None,
        class_share=largest_class_share(run.labels, model.n_outputs) if run.is_classifier
        and s.diagnostics else None, early_stopping=s.early_stopping is not None,
        log_loss=isinstance(model.loss, CategoricalCrossEntropy))
    if loaded is not None and s.diagnostics:
        run.advisor.replay(run.history)
    run.weights = [names[0] for layer, names in model.layers if isinstance(layer, Affine)]
    run.before_last = {k: np.empty_like(p) for k, p in run.params.items() if s.diagnostics}
    run.bar = _progress_bar(s, run.history.epochs)
    run.snap = snapshot(model, s.optimizer, gens, run.history.epochs, run.stopper)
    run.prev_kept = None
    return run


# -- one epoch ---------------------------------------------------------------------------------

def _train_step(model, run: _Run, idx, tally: _Tally, epoch: int, step: int,
                measure: bool) -> None:
    """One gradient step on the rows ``idx`` (the epoch's ``measure``d one?), counted in
    ``tally``."""
    idx, share, n_global = distributed.shard_rows(run.averager, idx, run.sample_weight, run.Y)
    X_batch, Y_batch = sources.batch_rows(run.X, idx), sources.batch_rows(run.Y, idx)
    weights = None if run.sample_weight is None else run.sample_weight[idx]
    extra = {"scan_first": True} if run.scan_rows else {}   # (only Network's own forward)
    try:
        logits = model.forward(X_batch, training=True, checked=True, **extra)
    except ValueError:   # fit puts the run back at the epoch's start, the call's
        if all_finite(X_batch):   # not X's error
            raise
        raise_non_finite(run.settings.X, "X")   # the error a scan before training raises
    with unchecked(model.loss) as loss_fn:   # the data were checked at fit's entry
        loss = loss_fn.forward(logits, Y_batch, weights)
        d_logits, _ = loss_fn.backward(1.0)
    grads = model.backward(d_logits)  # the chain rule, layer by layer, from dL/dlogits
    loss = distributed.average(run.averager, grads, loss, share)  # with comm: one Allreduce
    if run.settings.l2:  # scikit-learn's alpha, over the rows (or weight) of this batch
        n = n_global or (X_batch.shape[0] if weights is None else float(weights.sum()))
        penalty, penalty_grads = l2_penalty(run.params, run.weights, run.settings.l2, n)
        loss += penalty
        for k, g in penalty_grads.items():
            grads[k] += g
    if not (math.isfinite(loss) and all(np.isfinite(b).all() for b in model.buffers.values())):
        _diverged(model, run, X_batch, epoch, step, f"the loss is {loss}" if not
                  math.isfinite(loss) else "a buffer (running statistic) is not finite",
                  start_failed=step == 0)
    # Class indices are their own labels: the batch already holds them.
    labels = Y_batch if run.labels is run.Y else None if run.labels is None else run.labels[idx]
    tally.add(loss, X_batch, weights, logits, labels, run.relu_pairs)
    tally.step, tally.X_batch = step, X_batch
    # (not scanned for NaN: an update that makes the parameters non-finite rolls back
    # the epoch, see _train_epoch)
    if not (measure and run.before_last):
        step_checked(run.settings.optimizer, run.params, grads)
        return
    for k, p in run.params.items():  # the size of one update an epoch is a diagnostic
        np.copyto(run.before_last[k], p)
    step_checked(run.settings.optimizer, run.params, grads)  # (clipping copies grads)
    tally.measured = step_measurements(run.params, run.before_last, grads)


def _train_epoch(model, run: _Run, epoch: int) -> _Tally:
    """Every batch of one pass over the training rows, one step each."""
    s = run.settings
    n = run.X.shape[0]
    # A fresh permutation each epoch (or the callable's): every row once.
    order = sources.epoch_order(run.X, s.shuffle, s.rng) if s.batch_size and s.shuffle else None
    tally = _Tally(alive={w: None for _, w in run.relu_pairs})
    batches = list(batch_indices(n, s.batch_size, order, s.drop_last))
    # The diagnostics' step: the last, or the one before when the last batch is short
    # (3 rows' gradient is noise), for no cost per step.
    measured = len(batches) - 1
    if measured > 0 and n % s.batch_size and not s.drop_last:
        measured -= 1
    for step, idx in enumerate(batches):
        _train_step(model, run, idx, tally, epoch, step, step == measured)
    if run.scan_rows:   # every row was seen, or is now: later epochs need no check
        seen = np.zeros(n, dtype=bool)
        for idx in batches:
            seen[idx] = True
        if not all_finite(run.X[~seen]):   # (the rows drop_last left out)
            raise_non_finite(s.X, "X")
        run.scan_rows = False
    distributed.reduce_tally(s.comm, tally)  # with comm: the whole epoch's counts on every rank
    if not all(np.isfinite(p).all() for p in run.params.values()):
        _diverged(model, run, tally.X_batch, epoch, tally.step, "an update made the "
                  "parameters non-finite")
    return tally


def _epoch_logs(model, run: _Run, epoch: int, tally: _Tally, lr, t0: float) -> dict:
    """The epoch's History values: training loss and accuracy, validation, lr, time."""
    if not tally.sum_weight:   # (drop_last left only rows of weight 0: nothing trained)
        raise ValueError(f"epoch {epoch}: every row trained on weighs 0 (sample_weight)")
    logs = {"loss": tally.sum_loss / tally.sum_weight}
    if not math.isfinite(logs["loss"]):   # finite batches whose sum overflows (~1e306 each)
        _diverged(model, run, tally.X_batch, epoch, tally.step,
                  f"the epoch's mean training loss is {logs['loss']}")
    if run.is_classifier:   # of the rows trained on (drop_last), weighed as the loss
        logs["accuracy"] = tally.n_correct / tally.sum_weight
    if run.settings.has_validation:
        val = sources.evaluate_blocks(_evaluate_checked, model, run.X_val, run.Y_val,
                                      run.W_val)
        logs["val_loss"] = val["loss"]
        if run.is_classifier:
            logs["val_accuracy"] = val["accuracy"]
        if not math.isfinite(val["loss"]):
            _diverged(model, run, sources.first_block(run.X_val), epoch, tally.step,
                      f"the validation loss is {val['loss']}")
    logs["lr"] = float(lr)
    logs["time"] = time.perf_counter() - t0
    return logs


def _epoch_diagnostics(run: _Run, tally: _Tally) -> dict:
    """Per parameter: gradient norm and update ratio of the measured step, dead units."""
    if not run.settings.diagnostics:
        return {}
    return epoch_diagnostics(tally.measured, tally.alive)


def _should_stop(model, run: _Run, epoch: int, logs: dict, diag: dict):
    """Early stopping, then every callback (each one is called): why to stop, or None."""
    stop = "early_stopping" if run.stopper.update(logs, epoch, run.kept) else None
    for cb in run.settings.callbacks:
        if cb(epoch, dict(logs, diagnostics=diag), model) is True:
            stop = stop or "callback"
    return distributed.agree_to_stop(run.settings.comm, stop)


def _commit_epoch(model, run: _Run, epoch: int, logs: dict, stop) -> None:
    """From here on an interrupt keeps the epoch: snapshot it, write the checkpoint."""
    s = run.settings
    run.history.stop_reason = stop
    snap = snapshot(model, s.optimizer, run.gens, epoch + 1, run.stopper)
    if s.checkpoint is not None and distributed.is_root(s.comm):
        write_checkpoint(s.checkpoint, snap, run.history, run.identity, run.split, run.journal)
    run.prev_kept, run.snap = run.snap["params"], snap
    if run.bar is not None:
        run.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time"},
                            refresh=False)
        run.bar.update(1)


# -- the end of a run ---------------------------------------------------------------------------

def _best_epoch(run: _Run):
    if run.settings.early_stopping is not None:
        return run.stopper.best_epoch
    values = run.history.history.get("val_loss" if run.settings.has_validation else "loss")
    return int(np.argmin(values)) if values else None


def _interrupted(model, run: _Run) -> History:
    """Ctrl-C: discard the unfinished epoch, roll back to the last committed state and
    save it."""
    s = run.settings
    restore(run.snap, model, s.optimizer, run.gens, run.history, run.stopper)
    if s.checkpoint is not None and distributed.is_root(s.comm):
        write_checkpoint(s.checkpoint, run.snap, run.history, run.identity, run.split, run.journal)
    if distributed.several_ranks(s.comm):
        # The other ranks may be waiting for this one in a collective call: only Abort
        # ends them. The checkpoint (written after every epoch) holds what is kept.
        kept = (f"; {s.checkpoint} holds them, to resume from" if s.checkpoint else "")
        done = run.history.epochs
        distributed.abort_every_rank(s.comm, f"was interrupted (Ctrl-C) after {done} "
                                             f"complete epoch{'s' * (done != 1)}{kept}", 130)
    model.clear_caches()
    run.history.stop_reason = "interrupted"
    run.history.best_epoch = _best_epoch(run)
    return run.history


def _finished(model, run: _Run) -> History:
    model.clear_caches()  # the last batch's activations: nothing differentiates them now
    run.stopper.restore_best(run.kept)
    run.history.best_epoch = _best_epoch(run)
    return run.history


# -- the training loop ---------------------------------------------------------------------

@distributed.ranks_fail_together(TrainingDivergedError, distributed.RanksDisagreeError)
def fit(model, X, Y, *, optimizer, epochs, batch_size=None, shuffle=True, drop_last=False,
        validation_data=None, validation_fraction=None, early_stopping=None, callbacks=(),
        rng=None, progress=True, sample_weight=None, checkpoint=None, resume=False,
        diagnostics=True, l2=0.0, comm=None, threads=None) -> History:
    """Train ``model`` on ``(X, Y)``; return what happened as a :class:`History`.

    Parameters
    ----------
    model : Network
        Trained in place (``model.params`` is updated).
    X : array_like, shape (N, D)
    Y : array_like, shape (N, K) or (N,)
        For a cross-entropy model: one-hot rows, probability rows (soft targets, e.g. mixup,
        distillation) or class indices; for ``MultiMarginLoss``, one-hot rows or class
        indices; for other losses, targets. The History's accuracy
        counts a row correct when the logits' argmax is the target's class: its index, its
        one-hot 1, or a probability row's argmax (the first of ties, as ``argmax`` in torch).
    optimizer : Optimizer or {'sgd', 'rmsprop', 'adagrad', 'adam', 'adamw'}
        A name builds that optimizer with its defaults.
    epochs : int
        Passes over the training rows, in total (counting those of a resumed checkpoint).
    batch_size : int or None, default=None
        Rows per gradient step (at most N); ``None`` is full-batch gradient descent.
    shuffle : bool or callable, default=True
        With minibatches, a fresh permutation of the rows every epoch (no replacement),
        or ``shuffle(N)``'s permutation of ``range(N)`` (e.g. another library's draws).
    drop_last : bool, default=False
        With minibatches, skip each epoch's last batch when it is short of
        ``batch_size`` rows, as PyTorch's ``DataLoader(drop_last=True)`` (e.g. for
        BatchNorm1d, which cannot train on a batch of one row); the History's loss and
        accuracy then count the rows the epoch trained on.
    validation_data : tuple (X_val, Y_val) or (X_val, Y_val, sample_weight_val), optional
    validation_fraction : float in (0, 1), optional
        Hold out ``ceil(fraction * N)`` rows drawn with ``rng`` instead.
    early_stopping : None, int or EarlyStopping
        An int is the patience on ``val_loss``.
    callbacks : sequence of callable
        Each called as ``cb(epoch, logs, model)`` after every epoch (``logs``: its History
        values and ``"diagnostics"``); returning True stops training.
    rng : None, int or numpy.random.Generator
        Source of the permutations and of the validation split. A Generator passed in
        is drawn from (advanced), as PyTorch's generators are; resuming sets it to the
        state the checkpoint stored, so that the run continues with the same draws.
    progress : bool, default=True
        A tqdm progress bar on stderr, if it is a terminal, after two seconds.
    sample_weight : array_like, shape (N,), optional
        Row weights for the training loss.
    checkpoint : str or os.PathLike, optional
        Write the state of the run to this file after every epoch.
    resume : bool, default=False
        Continue from ``checkpoint`` if the file exists, once all of it is checked, to
        the result of an uninterrupted run: a run that early stopping or a callback
        ended stays ended (an interrupted one goes on).
    diagnostics : bool, default=True
        Record :attr:`History.diagnostics` (a few percent of the run time).
    l2 : float, default=0.0
        scikit-learn's ``alpha``, per batch: :func:`~chainrule.losses.l2_penalty` of the
        weights over the batch's rows (or weight sum), in the loss and the gradients.
    comm : mpi4py communicator, optional
        Data-parallel training over MPI ranks (:mod:`chainrule.distributed`).
    threads : int or None, default=None
        BLAS threads; ``None``: one for small networks, unless ``OMP_NUM_THREADS`` is set.

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When the loss becomes NaN or infinite; the parameters are put back to the
        start of the latest epoch whose loss was finite.
    ValueError, TypeError
        Before anything changes: for bad arguments or data (feature or class count not
        matching the model, ...; a NaN or infinity in ``X`` may be met in the first
        epoch's batches instead, which then leaves everything as it was before the
        call) and, with ``resume=True``, for a checkpoint that is
        damaged (``ModelFileError``), of another run (``CheckpointMismatchError``) or
        further along than ``epochs`` (``CheckpointEpochsError``).
    """
    check_network(model)  # its params choose the threads, under which the checks run too
    step_rows = int(batch_size) if isinstance(batch_size, numbers.Integral) else None
    with threads_for(X, model.params, check_threads(threads), max_rows=step_rows):
        settings = check_fit_arguments(
            model, X, Y, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
            shuffle=shuffle, validation_data=validation_data,
            validation_fraction=validation_fraction, early_stopping=early_stopping,
            callbacks=callbacks, rng=rng, progress=progress, sample_weight=sample_weight,
            checkpoint=checkpoint, resume=resume, diagnostics=diagnostics, l2=l2, comm=comm,
            drop_last=drop_last)
        run = _prepare_run(model, settings)
        if settings.diagnostics:  # once per fit
            run.advisor.targets(run.Y, model.loss)
        try:
            for epoch in run.epochs_left():
                t0 = time.perf_counter()
                lr = settings.optimizer.current_lr()
                tally = _train_epoch(model, run, epoch)
                # (before the validation rows' forward replaces the layers' caches)
                saturated = saturation(run.saturating)  # the last batch's outputs
                logs = _epoch_logs(model, run, epoch, tally, lr, t0)
                diag = _epoch_diagnostics(run, tally)
                if diag:
                    run.advisor.epoch(epoch, logs, diag, settings.optimizer, saturated)
                run.history.record_epoch(logs, diag)
                # ReduceLROnPlateau watches the History (an EpochLR's epoch_end takes the
                # samples seen: the estimators drive it, fit does not)
                if hasattr(settings.optimizer.lr, "replay"):
                    settings.optimizer.lr.epoch_end(logs)
                stop = _should_stop(model, run, epoch, logs, diag)
                _commit_epoch(model, run, epoch, logs, stop)
                if stop:
                    break
        except KeyboardInterrupt:
            return _interrupted(model, run)
        except TrainingDivergedError as exc:
            exc.history = run.history  # the completed epochs
            raise
        except Exception:
            # Any error (a bad row of a file, read as it is read; a callback's) leaves
            # the run at the last complete epoch, not half-way through one.
            restore(run.snap, model, settings.optimizer, run.gens, run.history, run.stopper)
            raise
        finally:
            if run.bar is not None:
                run.bar.close()
        return _finished(model, run)
