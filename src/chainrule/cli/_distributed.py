"""``chainrule train --distributed``: one data-parallel run over the ranks of
``mpiexec -n R chainrule train --distributed ...`` (:mod:`chainrule.distributed`).

Every rank parses the same flags, reads the same data and draws the same split and
initial weights from ``--seed``; ``fit`` gets ``comm=MPI.COMM_WORLD``. Rank 0 alone
prints and writes: the other ranks' standard output goes to ``os.devnull``, their
warnings (the same as rank 0's) are not shown, and their ``--save``, ``--save-test``
and ``--plot`` are dropped (``fit`` itself checkpoints on rank 0 only). A rank whose
command fails ends every rank (:func:`end_ranks`): the others would otherwise wait for
it in their next collective call.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ._common import UsageError


def add_distributed_flag(parser) -> None:
    """``--distributed`` on the ``train`` parser (``comm`` None unless given)."""
    parser.add_argument(
        "--distributed", action="store_true",
        help="data-parallel training over the ranks of 'mpiexec -n R chainrule train "
             "--distributed ...' (needs chainrule[mpi]): each rank computes the gradients "
             "of its share of every batch; rank 0 alone prints and writes files")
    parser.set_defaults(comm=None)


def join_ranks(args) -> argparse.Namespace:
    """``args`` with ``comm`` set for ``--distributed`` (a copy; on ranks other than 0
    without the flags that write files, and with standard output silenced)."""
    if not getattr(args, "distributed", False):
        return args
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--distributed needs mpi4py and an MPI library: pip install "
                         "'chainrule[mpi]' and start it with mpiexec") from None
    args = argparse.Namespace(**vars(args))
    args.comm = MPI.COMM_WORLD
    if args.comm.Get_rank() != 0:
        args.save = args.save_test = args.plot = None
        sys.stdout = open(os.devnull, "w")  # for the rest of the process
        warnings.simplefilter("ignore")  # within main's catch_warnings: rank 0 says them
    return args


def end_ranks(args, status: int) -> int:
    """``status``; for a failed ``--distributed`` run of several ranks, end them all
    with ``MPI Abort`` (a check only rank 0 makes, of --save say, fails there alone)."""
    from ..distributed import abort_every_rank, several_ranks

    comm = getattr(args, "comm", None)
    if status and several_ranks(comm):
        abort_every_rank(comm, f"stops with status {status}", status)
    return status
