"""Data-parallel training over MPI: the pieces :func:`chainrule.train.fit` uses with
``comm=``.

Every rank runs the same :func:`~chainrule.train.fit` call on the same data with the
same ``rng``, so every rank draws the same permutation and the same global minibatches.
Each rank takes its shard of a global batch (:func:`shard_rows`), runs the forward and
backward pass on it, and the ranks average their gradients with **one** ``Allreduce``
per step over a single contiguous buffer (:class:`GradientAverager`), so all of them
apply the same optimizer step to the same parameters. Each rank's gradient is
scaled by its share of the batch (its rows, or its sample weight, over the batch's)
before the sum, so the sum is the gradient of the mean loss over the global batch:
the result equals single-process training with the same batch size up to rounding.

At the end of an epoch one more reduction sums what the epoch's steps counted
(:func:`reduce_tally`), so every rank records the same History as one process would.
Rank 0 alone shows progress and writes checkpoints (:func:`is_root`).

Before the first step the ranks compare their runs (:func:`run_plan`, one
``allgather``) and refuse to start, every one of them, when anything that decides the
steps differs: the shapes and batching, everything a checkpoint's run identity covers
(model, optimizer and its hyperparameters, a fingerprint of the data...), the initial
parameters and buffers, the optimizer's state and the state of the generator that
draws the batches. Ranks that started apart would otherwise train apart in silence,
each on its own model. Refusing, rather than broadcasting rank 0's weights as PyTorch's
DDP does, keeps the promise that a run equals one process's: a broadcast would
silently train a model that no rank's own script built, and would still leave
different data, seeds or learning rates unnoticed.

Buffers (BatchNorm's running statistics) are updated by each rank's forward pass on
its own shard; the step's ``Allreduce`` also carries them, weighted by each rank's
share of the batch's rows, so every rank holds the same buffers after every step
(and a checkpoint or a saved model does not depend on the rank that writes it).

A rank that fails must not leave the others waiting in a collective forever:
:func:`ranks_fail_together` wraps ``fit`` so that an exception on one rank prints a
one-line error naming the rank and calls ``comm.Abort``, which stops the whole job (a
rank that is killed is noticed by ``mpiexec``, which stops the others). Errors every
rank raises at the same step (a diverged loss, which every rank sees through the
averaged loss) are raised normally.

``comm`` is any mpi4py communicator (``mpi4py.MPI.COMM_WORLD``); this module only
calls its methods, so ``import chainrule`` never imports mpi4py (``chainrule[mpi]``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
import time
import warnings

import numpy as np

from . import sources
from .checkpoint import first_difference, run_identity
from .explain import input_shapes
from .layers import Dropout
from .losses import CategoricalCrossEntropy
from .stateful import rows_needed, smallest_batch

__all__ = ["RanksDisagreeError", "run_plan", "check_comm", "is_root", "shard_rows",
           "GradientAverager", "averager", "average", "reduce_tally", "agree_to_stop",
           "ranks_fail_together", "abort_every_rank", "several_ranks"]

_COMM_METHODS = ("Get_rank", "Get_size", "Allreduce", "allgather", "Abort")

#: Seconds a failing rank waits between writing its error and calling ``Abort``.
ABORT_GRACE_SECONDS = 0.5


def check_comm(comm, n_rows: int, batch_size, validation_fraction=None, drop_last=False):
    """Check ``fit``'s ``comm`` (None, or an mpi4py communicator) against the batching.

    Every global batch must give every rank at least one row, so that no rank runs
    a pass on zero rows: the training rows (``n_rows`` less those a
    ``validation_fraction`` holds out) and each minibatch (the last one included,
    unless ``drop_last`` drops it) need at least ``comm.Get_size()`` rows.
    """
    if comm is None:
        return None
    if validation_fraction is not None:
        n_rows -= math.ceil(validation_fraction * n_rows)
    missing = [m for m in _COMM_METHODS if not callable(getattr(comm, m, None))]
    if missing:
        raise TypeError(f"comm must be an MPI communicator (e.g. mpi4py.MPI.COMM_WORLD), got "
                        f"{type(comm).__name__} without {', '.join(missing)}")
    ranks = comm.Get_size()
    smallest = smallest_batch(n_rows, batch_size, drop_last)
    if 0 < smallest < ranks:  # (no batch at all: fit's check_batch_rows says it)
        raise ValueError(f"comm has {ranks} ranks but batch_size={batch_size} with {n_rows} "
                         f"training rows gives a batch of {smallest} rows (the epoch's "
                         f"last); every batch needs at least one row per rank: drop_last="
                         f"True leaves that batch out, or choose another batch_size")
    return comm


def is_root(comm) -> bool:
    """True on rank 0, and without a communicator: the rank that prints and writes."""
    return comm is None or comm.Get_rank() == 0


def shard_rows(averager, idx, sample_weight=None, labels=None):
    """This rank's rows of the global batch ``idx`` and its share of the batch.

    Without distribution (``averager`` None) the rows are all of ``idx``, the share
    1 and the global rows ``None``.

    The batch is cut into ``comm.Get_size()`` contiguous pieces of (nearly) equal
    length; rank ``r`` takes piece ``r``. The share is the fraction of the batch's
    rows (or of its sample weight) that the piece holds: the factor that turns the
    piece's mean loss into its part of the batch's mean loss. With a class-weighted
    cross-entropy (``averager.class_weight``), which divides by its rows' sum of class
    weights, it is the share of that sum: ``labels`` are the run's targets.

    The piece's share of the batch's rows (not of its weight: a batch normalisation's
    statistics count rows) goes to ``averager.rows_share``, the weight of this rank's
    buffers in the step's reduction.

    Returns
    -------
    local : slice or ndarray of int
    share : float
    rows : float or None
        Rows (or total sample weight) of the whole global batch.
    """
    if averager is None:
        return idx, 1.0, None
    comm = averager.comm
    if isinstance(idx, slice):
        idx = np.arange(idx.start, idx.stop)
    pieces = np.array_split(idx, comm.Get_size())
    local = pieces[comm.Get_rank()]
    averager.rows_share = len(local) / len(idx)
    start = sum(len(p) for p in pieces[:comm.Get_rank()])
    for layer in averager.dropouts:
        layer.batch_shard = (start, len(idx))
    rows = float(len(idx)) if sample_weight is None else float(sample_weight[idx].sum())
    weights = None if sample_weight is None else sample_weight[idx]
    if averager.class_weight is not None:   # each row weighs its class's weight too
        batch = sources.batch_rows(labels, idx)
        classes = batch if batch.ndim == 1 else batch.argmax(axis=1)
        weights = averager.class_weight[classes] * (1.0 if weights is None else weights)
    if weights is None:
        return local, len(local) / len(idx), rows
    total = float(weights.sum())
    return local, (float(weights[start:start + len(local)].sum()) / total if total else 0.0), \
        rows


class GradientAverager:
    """One ``Allreduce`` per step over one contiguous buffer of every gradient.

    The buffer is allocated once (parameter order, then the floating-point buffers
    of ``buffers``, then one slot for the loss); each step packs the scaled gradients
    and buffers into it, sums it over the ranks, and unpacks the sums in place.

    Parameters
    ----------
    comm : mpi4py communicator
    params : dict of str to ndarray
        The model's parameters (their gradients have the same names and shapes).
    buffers : dict of str to ndarray, optional
        The model's buffers (``model.buffers``), averaged at every step. The dict is
        read at every step, so an array a layer rebinds is still the one averaged.
    """

    def __init__(self, comm, params: dict, buffers: dict | None = None):
        self.comm = comm
        self.names = list(params)
        self.buffers = {} if buffers is None else buffers
        # An integer buffer (a count) would not survive a weighted mean; every rank
        # counts the same anyway.
        self.buffer_names = [k for k, b in self.buffers.items() if b.dtype.kind == "f"]
        sizes = [params[k].size for k in self.names] + \
            [self.buffers[k].size for k in self.buffer_names]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        dtype = np.result_type(*params.values(),
                               *(self.buffers[k] for k in self.buffer_names))
        self.send = np.empty(int(self.offsets[-1]) + 1, dtype=dtype)
        self.recv = np.empty_like(self.send)
        self.rows_share = 1.0 / comm.Get_size()  # set per batch by shard_rows
        # A class-weighted cross-entropy's weights (set by ``averager``): the shares of
        # a batch are shares of its rows' class weights.
        self.class_weight = None
        self.dropouts: list = []   # (set by ``averager``) told their shard at each batch

    @property
    def nbytes(self) -> int:
        """Bytes each rank contributes to one step's Allreduce."""
        return self.send.nbytes

    def _slots(self, names, first):
        offsets = self.offsets[first:first + len(names) + 1]
        return zip(names, offsets[:-1], offsets[1:], strict=True)

    def average(self, grads: dict, loss: float, share: float) -> float:
        """Replace ``grads`` (this rank's, in place) by the global batch's gradients and
        the buffers by the ranks' mean (weighted by ``rows_share``); return the global
        batch's loss."""
        for layer in self.dropouts:   # the step's forward is done: a callback's own
            layer.batch_shard = None  # training-mode forward draws its own masks
        n = len(self.names)
        for k, lo, hi in self._slots(self.names, 0):
            np.multiply(grads[k].reshape(-1), share, out=self.send[lo:hi])
        for k, lo, hi in self._slots(self.buffer_names, n):
            np.multiply(self.buffers[k].reshape(-1), self.rows_share, out=self.send[lo:hi])
        self.send[-1] = loss * share
        self.comm.Allreduce(self.send, self.recv)  # mpi4py's default operation is SUM
        for k, lo, hi in self._slots(self.names, 0):
            grads[k][...] = self.recv[lo:hi].reshape(grads[k].shape)
        for k, lo, hi in self._slots(self.buffer_names, n):
            self.buffers[k][...] = self.recv[lo:hi].reshape(self.buffers[k].shape)
        return float(self.recv[-1])


class RanksDisagreeError(ValueError):
    """The ranks were given runs that cannot be trained together (different data,
    models, starting weights, optimizers, seeds or batching); raised on every rank,
    before the first step.

    Attributes
    ----------
    field : str
        Dotted path of the first entry of :func:`run_plan` that differs, e.g.
        ``"initial_params.W1"`` or ``"run.optimizer.hyperparameters.lr"``.
    rank : int
        The first rank whose plan differs from rank 0's.
    """

    def __init__(self, message, field=None, rank=None):
        super().__init__(message)
        self.field, self.rank = field, rank


#: What to do about a difference, by the first part of its field in the plan.
_ADVICE = {
    "data": "give every rank the same X, Y and sample_weight",
    "initial_params": "build the model from the same seed on every rank (e.g. "
                      "MLP(..., rng=0)) or load the same weights",
    "initial_buffers": "build or load the same model on every rank",
    "run": "give every rank the same model, optimizer and fit arguments",
    "optimizer_state": "give every rank a fresh optimizer, or one with the same state",
    "rng": "give fit the same rng seed on every rank (rng=None draws from NumPy's global "
           "generator, which each process seeds on its own)",
    "resumes": "the checkpoint file exists for some ranks only: give every rank the same "
               "checkpoint path on a file system they share (or a copy of the file)",
}


def _feed(h, value) -> None:
    """Add ``value`` (nested dicts, lists, arrays, scalars) to the hash ``h``, bit for bit."""
    if isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    else:
        h.update(repr(value).encode())


def _digest(value) -> str:
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:16]  # compared, never trusted: short keeps the message short


def _comparable_identity(model, settings) -> dict:
    """:func:`~chainrule.checkpoint.run_identity` with its data digests shortened (they
    are compared, never trusted: short keeps a message short). Data read out of core is
    fingerprinted there by content (``NpyFile.fingerprint``), not by path or
    modification time, which differ between nodes holding copies of the same file."""
    identity = run_identity(model, settings)  # arrays: one pass of SHA-256; files: blocks
    identity["data"] = identity["data"][:16]
    if settings.validation_data is not None:
        identity["validation"] = {"data": identity["validation"]["data"][:16]}
    return identity


def _rng_state(r):
    return r.bit_generator.state if isinstance(r, np.random.Generator) else \
        r.get_state(legacy=False)


def run_plan(settings, params: dict, model=None) -> dict:
    """What every rank must agree on for the ranks to take the same steps.

    Without ``model`` only the shapes and the batching. With it (as in ``fit``) also
    the run identity of a checkpoint (``run``: model class and config, optimizer class,
    hyperparameters and schedule, ``l2``, validation, early stopping, and a fingerprint
    of the training data as ``run.data``) and, unless the run resumes from a checkpoint
    (which brings them), the state the first step starts from: a hash of every
    parameter and buffer, of the optimizer's state, and of the state of ``fit``'s
    generator when it draws the batches or the validation split. Costs one pass over
    data in memory, once per ``fit``.
    """
    s = settings
    # a checkpoint only some ranks can see (no shared file system) would make them
    # start from different epochs
    resumes = bool(s.resume and os.path.exists(s.checkpoint))
    plan = {"X": list(s.X.shape), "Y": list(s.Y.shape),
            "weighted": s.sample_weight is not None,
            "params": {k: list(p.shape) for k, p in params.items()},
            "epochs": s.epochs, "batch_size": s.batch_size, "drop_last": s.drop_last,
            "shuffle": s.shuffle, "validation_fraction": s.validation_fraction,
            "resumes": resumes}
    if model is None:
        return plan
    plan["run"] = _comparable_identity(model, s)
    plan["data"] = plan["run"].pop("data")
    if resumes:
        return plan
    plan["initial_params"] = {k: _digest(p) for k, p in params.items()}
    plan["initial_buffers"] = {k: _digest(b) for k, b in getattr(model, "buffers", {}).items()}
    plan["optimizer_state"] = _digest(s.optimizer.state_dict())
    if s.validation_fraction is not None or (s.shuffle and s.batch_size is not None):
        plan["rng"] = _digest(_rng_state(s.rng))
    return plan


def _check_shard_rows(model, settings, ranks: int) -> None:
    """Every rank's shard of the smallest batch must hold the rows each layer needs in
    training (BatchNorm1d: 2): each rank normalises over its own shard."""
    n = settings.n_rows - (settings.n_val or 0)
    smallest = smallest_batch(n, settings.batch_size, settings.drop_last)
    shard = smallest // ranks
    shapes = input_shapes(model) if hasattr(model, "layers") else None
    for i, (layer, _) in enumerate(getattr(model, "layers", ())):
        need = rows_needed(layer, None if shapes is None else shapes[i])
        if shard < need:
            raise ValueError(
                f"comm has {ranks} ranks, so batch_size={settings.batch_size} with {n} "
                f"training rows gives some rank only {shard} of a batch's rows, but layers[{i}] "
                f"({layer!r}) needs at least {need} rows in training on every rank (each "
                f"rank normalises over its own shard): choose a batch_size that gives "
                f"every rank {need} rows, or drop_last=True if the short one is the "
                f"epoch's last")


def averager(settings, params: dict, model=None):
    """The run's :class:`GradientAverager` with ``settings.comm``, else None.

    First every rank compares its :func:`run_plan` with the others' (one
    ``allgather``) and raises :class:`RanksDisagreeError` naming the first difference:
    ranks that would take different numbers of steps, or exchange buffers of different
    sizes, would wait for each other forever, and ranks that start from different
    weights, data, optimizers or seeds would train different models in silence.
    ``model`` (``fit``'s, whose ``params`` these are) adds its config and starting
    state to the comparison, and its buffers to what the averager keeps equal on every
    rank.
    """
    comm = settings.comm
    if comm is None:
        return None
    if getattr(model, "params", None) is not params:
        model = None  # not the model these params belong to: compare the shapes only
    plans = comm.allgather(run_plan(settings, params, model))
    differ = [r for r, plan in enumerate(plans) if plan != plans[0]]
    if differ:
        rank = differ[0]
        field, ours, theirs = first_difference(plans[0], plans[rank], in_order=True)
        advice = _ADVICE.get(field.split(".")[0],
                             "give every rank the same data, model, optimizer and batching")
        raise RanksDisagreeError(
            f"the ranks were given different runs: {field} differs: rank 0 has {ours!r}, "
            f"rank {rank} has {theirs!r}; {advice}", field=field, rank=rank)
    if model is not None:
        _check_shard_rows(model, settings, comm.Get_size())
    result = GradientAverager(comm, params, None if model is None else model.buffers)
    # A cross-entropy with class weights divides by its rows' sum of w[y] (times their
    # sample weights): the shares must be of that sum, not of the rows.
    loss = getattr(model, "loss", None)
    result.class_weight = loss.weight if isinstance(loss, CategoricalCrossEntropy) else None
    result.dropouts = [] if model is None else [
        layer for layer, _ in model.layers if isinstance(layer, Dropout)]
    return result


def average(averager, grads: dict, loss: float, share: float) -> float:
    """:meth:`GradientAverager.average` with an averager; without, ``loss`` as it is."""
    return loss if averager is None else averager.average(grads, loss, share)


def reduce_tally(comm, tally) -> None:
    """Sum an epoch's tally (loss, weight, correct rows, live ReLU units) over the
    ranks, in place, so that every rank records the epoch of the whole data (nothing
    without a communicator)."""
    if comm is None:
        return
    alive = [k for k, a in tally.alive.items() if a is not None]
    send = np.concatenate([[tally.sum_loss, tally.sum_weight, tally.n_correct]]
                          + [tally.alive[k].astype(np.float64) for k in alive])
    recv = np.empty_like(send)
    comm.Allreduce(send, recv)
    # (n_correct: a sum of weights where the rows carry them)
    tally.sum_loss, tally.sum_weight, tally.n_correct = (float(v) for v in recv[:3])
    start = 3
    for k in alive:
        n = tally.alive[k].size
        tally.alive[k] = recv[start:start + n] > 0
        start += n


def agree_to_stop(comm, stop):
    """The reason to stop if any rank has one (a callback may decide on one rank
    only), so that all ranks leave the loop at the same epoch."""
    if comm is None:
        return stop
    reasons = [r for r in comm.allgather(stop) if r]
    return reasons[0] if reasons else None


def ranks_fail_together(*same_on_every_rank):
    """Decorate ``fit``: with ``comm=`` of several ranks, an exception on one rank stops
    every rank (with a communicator of one process, exceptions are raised as usual).

    The failing rank writes ``chainrule: rank R of N failed: <error>`` to stderr and
    calls ``comm.Abort(1)``; ``mpiexec`` then ends every rank with a non-zero exit
    status. With several ranks, Ctrl-C (``Abort(130)``) and ``sys.exit`` on one rank do
    the same: the others would wait for it for ever. Exceptions of the types
    ``same_on_every_rank`` (raised by every rank at the same point, from values all
    ranks share) are raised as usual.
    """
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            comm = kwargs.get("comm")
            if comm is None:
                return func(*args, **kwargs)
            try:
                return _fail_together(func, comm, same_on_every_rank, args, kwargs)
            finally:   # the model's Dropout layers draw their own batches again
                for layer, _ in getattr(args[0] if args else kwargs.get("model"), "layers", []):
                    if isinstance(layer, Dropout):
                        layer.batch_shard = None
        return wrapper
    return decorate


def _fail_together(func, comm, same_on_every_rank, args, kwargs):
    """``func(*args, **kwargs)``; on an exception not in ``same_on_every_rank``, write it
    and abort every rank through ``comm``. Ctrl-C and ``sys.exit`` too: the other ranks
    would otherwise wait for this one in their next collective call, for ever. A
    communicator of one process has no other rank to wait: its exceptions are raised
    as without one (a notebook's ``try`` catches them)."""
    if not several_ranks(comm):
        return func(*args, **kwargs)
    try:
        with warnings.catch_warnings():
            if comm.Get_rank() != 0:   # every rank would say the same: rank 0 says it
                warnings.simplefilter("ignore", UserWarning)
            return func(*args, **kwargs)
    except same_on_every_rank:
        raise
    except Exception as exc:
        abort_every_rank(comm, f"failed: {type(exc).__name__}: {exc}")
        raise  # Abort does not return; a stand-in communicator's might
    except BaseException as exc:  # Ctrl-C, sys.exit: only other ranks need ending
        if isinstance(exc, KeyboardInterrupt):
            abort_every_rank(comm, "was interrupted (Ctrl-C)", 130)
        else:
            abort_every_rank(comm, f"failed: {type(exc).__name__}: {exc}")
        raise


def several_ranks(comm) -> bool:
    """Whether ``comm`` joins more than one process (that can be aborted together)."""
    return comm is not None and callable(getattr(comm, "Abort", None)) and comm.Get_size() > 1


def abort_every_rank(comm, message: str, status: int = 1) -> None:
    """Write ``chainrule: rank R of N <message>`` to stderr and end every rank with
    ``comm.Abort(status)`` (which ``mpiexec`` passes on as its exit status)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    print(f"chainrule: rank {rank} of {size} {message}; aborting every rank (MPI Abort)",
          file=sys.stderr, flush=True)
    # mpiexec tears the job down on Abort, and may exit before it has passed on what
    # the ranks wrote last: about 1 run in 30 on a busy machine lost the message above.
    # A moment's wait lets it through.
    time.sleep(ABORT_GRACE_SECONDS)
    comm.Abort(status)
