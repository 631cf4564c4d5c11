"""Run by ``tests/test_distributed.py`` under ``mpiexec -n R``: one data-parallel fit.

``python mpi_fit_worker.py MODE OUTDIR`` trains the model of :func:`run_settings` with
``comm=MPI.COMM_WORLD`` and writes ``OUTDIR/rank<r>.npz`` (parameters and History).
MODE ``equal`` trains as it is; ``bad_data`` gives rank 1 data with a column too many;
``disagree`` gives rank 1 three rows fewer; ``raise`` makes rank 1 raise from a callback
in epoch 1, ``exit`` call ``sys.exit(3)`` there and ``interrupt`` send itself SIGINT
(Ctrl-C); ``unshuffled`` trains with ``shuffle=False`` (203 rows in batches of 32: the
last batch's slice is short); ``hang_until_killed`` trains for a very long time and writes rank 1's
process id to ``OUTDIR/pid1`` after epoch 0; ``files`` trains on ``OUTDIR/X.npy`` and
``OUTDIR/y.npy`` read out of core (:func:`files_settings`); ``batchnorm`` trains the
network of :func:`batchnorm_model` (:func:`batchnorm_settings`) and writes its buffers
too. The modes of :data:`RANK1_DIFFERS` give rank 1 a run that differs in one thing
(each rank must refuse to start).
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


def class_weighted_loss():
    """PyTorch's CrossEntropyLoss(weight=...): its mean divides by the rows' class weights."""
    from chainrule.losses import CategoricalCrossEntropy

    return CategoricalCrossEntropy(weight=[1.0, 5.0, 20.0])


def files_settings():
    """The fit arguments of mode ``files``: block-shuffled minibatches, no validation, and
    gradients clipped (their norm is the averaged gradient's, the same on every rank)."""
    import chainrule as cr

    return dict(optimizer=cr.Adam(lr=1e-2, clip_norm=0.05), epochs=3, batch_size=32, rng=0,
                progress=False)


def batchnorm_model():
    """Batch normalisation of the inputs and of a hidden layer."""
    import chainrule as cr

    return cr.Sequential([cr.BatchNorm1d(6), cr.Affine(6, 16), cr.ReLU(), cr.BatchNorm1d(16),
                          cr.Affine(16, 3)], rng=0)


def batchnorm_settings():
    """203 rows in batches of 32: the last batch (11 rows) gives the ranks 6 and 5."""
    import chainrule as cr

    return dict(optimizer=cr.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=32, rng=0,
                progress=False)


#: Modes in which rank 1's run differs from rank 0's in one thing, and that thing.
RANK1_DIFFERS = ("disagree", "init_differ", "lr_differ", "seed_differ", "labels_differ",
                 "weights_differ")


def rank1_run(mode, X, Y, w, kwargs):
    """Rank 1's data, fit arguments and model seed in a mode of :data:`RANK1_DIFFERS`."""
    import chainrule as cr

    model_seed, kwargs = 0, dict(kwargs)
    if mode == "disagree":
        X, Y, w = X[:-3], Y[:-3], w[:-3]
    elif mode == "init_differ":
        model_seed = 1
    elif mode == "lr_differ":
        kwargs["optimizer"] = cr.Adam(lr=2e-2)
    elif mode == "seed_differ":
        kwargs["rng"] = 1
    elif mode == "labels_differ":
        Y = Y.copy()
        Y[5] = np.roll(Y[5], 1)
    elif mode == "weights_differ":
        w = w.copy()
        w[0] *= 2
    return X, Y, w, kwargs, model_seed


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
    callbacks, model_seed = [], 0
    if mode == "bad_data" and rank == 1:
        X = np.hstack([X, X[:, :1]])
    if mode in RANK1_DIFFERS and rank == 1:
        X, Y, w, kwargs, model_seed = rank1_run(mode, X, Y, w, kwargs)
    if mode == "raise" and rank == 1:
        def fail(epoch, logs, model):
            if epoch == 1:
                raise RuntimeError("rank 1 ran out of luck")
        callbacks.append(fail)
    if mode in ("exit", "interrupt") and rank == 1:
        import signal

        def leave(epoch, logs, model):
            if epoch == 1 and mode == "exit":
                sys.exit(3)
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)
        callbacks.append(leave)
    if mode == "unshuffled":
        kwargs["shuffle"] = False
    if mode == "hang_until_killed":
        kwargs["epochs"] = 10**9
        if rank == 1:
            def tell_pid(epoch, logs, model):
                if epoch == 0:
                    with open(os.path.join(outdir, "pid1.tmp"), "w") as f:
                        f.write(str(os.getpid()))
                    os.replace(os.path.join(outdir, "pid1.tmp"), os.path.join(outdir, "pid1"))
            callbacks.append(tell_pid)
    if mode == "batchnorm":
        model = batchnorm_model()
        cr.fit(model, X, Y, comm=comm, **batchnorm_settings())
        np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params, **model.buffers)
        return
    model = cr.MLP([6, 16, 3], rng=model_seed, loss=class_weighted_loss() if
                   mode == "class_weights" else "cross_entropy",
                   dropout=0.3 if mode == "dropout" else 0.0)
    if mode in ("class_weights", "dropout"):
        cr.fit(model, X, Y, sample_weight=w, comm=comm, **kwargs)
        np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params)
        return
    if mode == "files":
        history = cr.fit(model, *open_files(outdir), comm=comm, **files_settings())
        np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params)
        return
    history = cr.fit(model, X, Y, sample_weight=w, comm=comm, callbacks=callbacks,
                     checkpoint=os.path.join(outdir, "ck.npz"), **kwargs)
    np.savez(os.path.join(outdir, f"rank{rank}.npz"), **model.params,
             **{f"history/{k}": np.asarray(v) for k, v in history.history.items()})


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except Exception as exc:  # noqa: BLE001
        # Raised on every rank alike (fit aborts the job on any other): each rank says
        # it before any exits, since mpiexec ends the others at the first exit (about
        # one run in ten lost the second rank's line).
        from mpi4py import MPI

        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Barrier()
        sys.exit(1)
