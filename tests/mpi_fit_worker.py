"""Run by ``tests/test_distributed.py`` under ``mpiexec -n R``: one data-parallel fit.

``python mpi_fit_worker.py MODE OUTDIR`` trains the model of :func:`run_settings` with
``comm=MPI.COMM_WORLD`` and writes ``OUTDIR/rank<r>.npz`` (parameters and History).
MODE ``equal`` trains as it is; ``bad_data`` gives rank 1 data with a column too many;
``disagree`` gives rank 1 three rows fewer; ``raise`` makes rank 1 raise from a callback
in epoch 1; ``hang_until_killed`` trains for a very long time and writes rank 1's
process id to ``OUTDIR/pid1`` after epoch 0; ``files`` trains on ``OUTDIR/X.npy`` and
``OUTDIR/y.npy`` read out of core (:func:`files_settings`).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def make_data(n=203, d=6, k=3, seed=0):
    """Blobs with uneven sample weights; 203 rows so batches and shards are uneven."""
    r = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = r.normal(0, 3, size=(k, d))[y] + r.normal(size=(n, d))
    return X, np.eye(k)[y], r.uniform(0.5, 2.0, size=n)


def run_settings():
    """The fit arguments shared by the ranks and the single-process reference."""
    import chainrule as cr

    return dict(optimizer=cr.Adam(lr=1e-2), epochs=4, batch_size=32, rng=0, l2=1e-3,
                validation_fraction=0.2, progress=False)


def files_settings():
    """The fit arguments of mode ``files``: block-shuffled minibatches, no validation."""
    import chainrule as cr

    return dict(optimizer=cr.Adam(lr=1e-2), epochs=3, batch_size=32, rng=0, progress=False)


def open_files(outdir):
    from chainrule.data import open_npy

    return (open_npy(os.path.join(outdir, "X.npy"), block_bytes=6 * 8 * 20),
            open_npy(os.path.join(outdir, "y.npy")))


def main(mode, outdir):
    from mpi4py import MPI

    import chainrule as cr

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    X, Y, w = make_data()
    kwargs = run_settings()
    callbacks = []
    if mode == "bad_data" and rank == 1:
        X = np.hstack([X, X[:, :1]])
    if mode == "disagree" and rank == 1:
        X, Y, w = X[:-3], Y[:-3], w[:-3]
    if mode == "raise" and rank == 1:
        def fail(epoch, logs, model):
            if epoch == 1:
                raise RuntimeError("rank 1 ran out of luck")
        callbacks.append(fail)
    if mode == "hang_until_killed":
        kwargs["epochs"] = 10**9
        if rank == 1:
            def tell_pid(epoch, logs, model):
                if epoch == 0:
                    with open(os.path.join(outdir, "pid1.tmp"), "w") as f:
                        f.write(str(os.getpid()))
                    os.replace(os.path.join(outdir, "pid1.tmp"), os.path.join(outdir, "pid1"))
            callbacks.append(tell_pid)
    model = cr.MLP([6, 16, 3], rng=0)
    if mode == "files":
        history = cr.fit(model, *open_files(outdir), comm=comm, **files_settings())
        np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params)
        return
    history = cr.fit(model, X, Y, sample_weight=w, comm=comm, callbacks=callbacks,
                     checkpoint=os.path.join(outdir, "ck.npz"), **kwargs)
    np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params,
             **{f"history/{k}": np.asarray(v) for k, v in history.history.items()})


if __name__ == "__main__":
    main(*sys.argv[1:3])
