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
import math
import os
import sys
import time

import numpy as np

__all__ = ["RanksDisagreeError", "run_plan", "check_comm", "is_root", "shard_rows",
           "GradientAverager", "averager", "average", "reduce_tally", "agree_to_stop",
           "ranks_fail_together"]

_COMM_METHODS = ("Get_rank", "Get_size", "Allreduce", "allgather", "Abort")

#: Seconds a failing rank waits between writing its error and calling ``Abort``.
ABORT_GRACE_SECONDS = 0.5


def check_comm(comm, n_rows: int, batch_size, validation_fraction=None):
    """Check ``fit``'s ``comm`` (None, or an mpi4py communicator) against the batching.

    Every global batch must give every rank at least one row, so that no rank runs
    a pass on zero rows: the training rows (``n_rows`` less those a
    ``validation_fraction`` holds out) and each minibatch (the last one included)
    need at least ``comm.Get_size()`` rows.
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
    sizes = {n_rows} if batch_size is None or batch_size >= n_rows else \
        {batch_size, n_rows % batch_size or batch_size}
    if min(sizes) < ranks:
        raise ValueError(f"comm has {ranks} ranks but batch_size={batch_size} with {n_rows} "
                         f"training rows gives a batch of {min(sizes)} rows; every batch "
                         f"needs at least one row per rank")
    return comm


def is_root(comm) -> bool:
    """True on rank 0, and without a communicator: the rank that prints and writes."""
    return comm is None or comm.Get_rank() == 0


def shard_rows(averager, idx, sample_weight=None):
    """This rank's rows of the global batch ``idx`` and its share of the batch.

    Without distribution (``averager`` None) the rows are all of ``idx``, the share
    1 and the global rows ``None``.

    The batch is cut into ``comm.Get_size()`` contiguous pieces of (nearly) equal
    length; rank ``r`` takes piece ``r``. The share is the fraction of the batch's
    rows (or of its sample weight) that the piece holds: the factor that turns the
    piece's mean loss into its part of the batch's mean loss.

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
    if sample_weight is None:
        return local, len(local) / len(idx), float(len(idx))
    total = float(sample_weight[idx].sum())
    return local, (float(sample_weight[local].sum()) / total if total else 0.0), total


class GradientAverager:
    """One ``Allreduce`` per step over one contiguous buffer of every gradient.

    The buffer is allocated once (parameter order, then one slot for the loss); each
    step packs the scaled gradients into it, sums it over the ranks, and unpacks the
    sums into the gradient arrays in place.
    """

    def __init__(self, comm, params: dict):
        self.comm = comm
        self.names = list(params)
        sizes = [params[k].size for k in self.names]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        dtype = np.result_type(*params.values())
        self.send = np.empty(int(self.offsets[-1]) + 1, dtype=dtype)
        self.recv = np.empty_like(self.send)

    @property
    def nbytes(self) -> int:
        """Bytes each rank contributes to one step's Allreduce."""
        return self.send.nbytes

    def average(self, grads: dict, loss: float, share: float) -> float:
        """Replace ``grads`` (this rank's, in place) by the global batch's gradients;
        return the global batch's loss."""
        for k, lo, hi in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            np.multiply(grads[k].reshape(-1), share, out=self.send[lo:hi])
        self.send[-1] = loss * share
        self.comm.Allreduce(self.send, self.recv)  # mpi4py's default operation is SUM
        for k, lo, hi in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            grads[k][...] = self.recv[lo:hi].reshape(grads[k].shape)
        return float(self.recv[-1])


class RanksDisagreeError(ValueError):
    """The ranks were given runs that cannot be trained together (different data
    shapes, models or batching); raised on every rank, before the first step."""


def run_plan(settings, params: dict) -> dict:
    """What every rank must agree on for the ranks to take the same steps."""
    return {"X": list(settings.X.shape), "Y": list(settings.Y.shape),
            "weighted": settings.sample_weight is not None,
            "params": {k: list(p.shape) for k, p in params.items()},
            "epochs": settings.epochs, "batch_size": settings.batch_size,
            "shuffle": settings.shuffle, "validation_fraction": settings.validation_fraction,
            # a checkpoint only some ranks can see (no shared file system) would make
            # them start from different epochs
            "resumes": bool(settings.resume and os.path.exists(settings.checkpoint))}


def averager(settings, params: dict):
    """The run's :class:`GradientAverager` with ``settings.comm``, else None.

    First every rank compares its :func:`run_plan` with the others' (one
    ``allgather``): ranks that would take different numbers of steps, or exchange
    buffers of different sizes, would wait for each other forever.
    """
    comm = settings.comm
    if comm is None:
        return None
    plans = comm.allgather(run_plan(settings, params))
    differ = [r for r, plan in enumerate(plans) if plan != plans[0]]
    if differ:
        raise RanksDisagreeError(
            f"the ranks were given different runs: rank 0 has {plans[0]}, rank {differ[0]} "
            f"has {plans[differ[0]]}; give every rank the same data, model and batching")
    return GradientAverager(comm, params)


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
    tally.sum_loss, tally.sum_weight, tally.n_correct = recv[0], recv[1], int(recv[2])
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
    """Decorate ``fit``: with ``comm=``, an exception on one rank stops every rank.

    The failing rank writes ``chainrule: rank R of N failed: <error>`` to stderr and
    calls ``comm.Abort(1)``; ``mpiexec`` then ends every rank with a non-zero exit
    status. Exceptions of the types ``same_on_every_rank`` (raised by every rank at
    the same point, from values all ranks share) are raised as usual.
    """
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            comm = kwargs.get("comm")
            if comm is None or not callable(getattr(comm, "Abort", None)):
                return func(*args, **kwargs)
            try:
                return func(*args, **kwargs)
            except same_on_every_rank:
                raise
            except Exception as exc:
                rank, size = comm.Get_rank(), comm.Get_size()
                print(f"chainrule: rank {rank} of {size} failed: {type(exc).__name__}: "
                      f"{exc}; aborting every rank (MPI Abort)", file=sys.stderr, flush=True)
                # mpiexec tears the job down on Abort, and may exit before it has passed
                # on what the ranks wrote last: about 1 run in 30 on a busy machine lost
                # the message above. A moment's wait lets it through.
                time.sleep(ABORT_GRACE_SECONDS)
                comm.Abort(1)
                raise  # Abort does not return; a stand-in communicator's might
        return wrapper
    return decorate
