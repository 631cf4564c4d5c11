"""Scaling: data-parallel steps per second on 1 and 2 MPI ranks, bytes exchanged per
step, and rows per second from memory and from a ``.npy`` file read out of core.

Run from the repository root (``pip install -e ".[mpi]"``)::

    python benchmarks/scaling.py                 # about a minute on 2 cores
    python benchmarks/scaling.py --steps 10      # shorter
    python benchmarks/scaling.py --out scaling.json

The workload is W4 of the performance issue: an MLP 784-1024-1024-10 in float32, a global
batch of 1024 rows, plain SGD, on synthetic MNIST-shaped rows (standard normal, labels of
a random linear teacher). For R in (1, 2) it runs ``mpiexec -n R`` on this script in its
worker mode with ``OPENBLAS_NUM_THREADS=1`` (one BLAS thread per rank), times ``fit``
over ``--steps`` global batches after one warm-up epoch, and splits the time of each
step into compute and the ``Allreduce`` (timed by wrapping the communicator). It then
trains one epoch of W3 (784-256-10, batch 128) from arrays in memory and from the same
rows in a ``.npy`` file (``chainrule.data.open_npy``) and reports rows per second.

Nothing is asserted: speed is reported, never tested. ``docs/scaling.md`` uses the
figures with the ring-allreduce cost model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = [784, 1024, 1024, 10]


def synthetic_rows(n, d=784, k=10, seed=0, dtype=np.float32):
    """Standard-normal rows, labels of a random linear teacher (as bench_training.py)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.argmax(X @ rng.standard_normal((d, k)).astype(dtype), axis=1)
    return X, y


class TimedComm:
    """A communicator whose Allreduce calls are timed."""

    def __init__(self, comm):
        self.comm, self.seconds, self.calls, self.bytes = comm, 0.0, 0, 0  # bytes: largest

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def Allreduce(self, send, recv):  # noqa: N802 - mpi4py's name
        t0 = time.perf_counter()
        self.comm.Allreduce(send, recv)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.bytes = max(self.bytes, send.nbytes)


def worker(steps: int, batch: int) -> None:
    """One rank of the MPI measurement; rank 0 prints a JSON line."""
    from mpi4py import MPI

    import chainrule as cr

    comm = MPI.COMM_WORLD
    X, y = synthetic_rows(steps * batch)
    Y = np.eye(10, dtype=np.float32)[y]
    model = cr.MLP(SIZES, rng=0, dtype=np.float32)
    cr.fit(model, X[:batch * 2], Y[:batch * 2], optimizer=cr.SGD(lr=1e-3), epochs=1,
           batch_size=batch, rng=0, comm=comm, progress=False, diagnostics=False)  # warm-up
    timed = TimedComm(comm)
    comm.Barrier()
    t0 = time.perf_counter()
    cr.fit(model, X, Y, optimizer=cr.SGD(lr=1e-3), epochs=1, batch_size=batch, rng=0,
           comm=timed, progress=False, diagnostics=False)
    elapsed = time.perf_counter() - t0
    times = comm.gather((elapsed, timed.seconds), root=0)
    if comm.Get_rank() == 0:
        step_bytes = timed.bytes  # the step's buffer (the epoch-end reduction is tiny)
        slowest = max(t for t, _ in times)
        print(json.dumps({"ranks": comm.Get_size(), "steps": steps, "batch": batch,
                          "seconds": slowest, "steps_per_second": steps / slowest,
                          "allreduce_seconds_per_step": max(a for _, a in times) / steps,
                          "bytes_per_step": step_bytes,
                          "params": int(sum(p.size for p in model.params.values()))}))


def run_ranks(ranks: int, steps: int, batch: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks), sys.executable,
           __file__, "--worker", "--steps", str(steps), "--batch", str(batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def out_of_core(n: int = 20_000, batch: int = 128, repeats: int = 3) -> dict:
    """Rows per second of one W3 epoch from memory and from a .npy file: the median
    of ``repeats`` epochs each, the two sources taking turns."""
    sys.path.insert(0, str(ROOT / "src"))
    import chainrule as cr
    from chainrule.data import open_npy

    X, y = synthetic_rows(n)
    result = {"rows": n, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "X.npy", X)
        np.save(Path(tmp) / "y.npy", y)
        sources = {"memory": (X, np.eye(10, dtype=np.float32)[y]),
                   "npy_file": (open_npy(Path(tmp) / "X.npy"), open_npy(Path(tmp) / "y.npy"))}
        seconds: dict = {name: [] for name in sources}
        for _ in range(repeats):
            for name, (XX, YY) in sources.items():
                model = cr.MLP([784, 256, 10], rng=0, dtype=np.float32)
                t0 = time.perf_counter()
                cr.fit(model, XX, YY, optimizer=cr.SGD(lr=1e-2), epochs=1, batch_size=batch,
                       rng=0, progress=False, diagnostics=False)
                seconds[name].append(time.perf_counter() - t0)
    for name, times in seconds.items():
        result[f"{name}_rows_per_second"] = n / float(np.median(times))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help="global batches timed")
    parser.add_argument("--batch", type=int, default=1024, help="global batch size")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.steps, args.batch)
    results = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
               "load_average_before": os.getloadavg(),
               "mpi": [run_ranks(r, args.steps, args.batch) for r in (1, 2)]}
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    results["out_of_core"] = out_of_core()
    one, two = results["mpi"]
    print(f"W4 784-1024-1024-10 float32, global batch {args.batch}, {args.steps} steps, "
          f"{one['params']:,} parameters, {two['bytes_per_step'] / 2**20:.2f} MiB "
          f"Allreduce buffer per rank and step")
    for r in results["mpi"]:
        print(f"  {r['ranks']} rank(s): {r['steps_per_second']:.2f} steps/s, Allreduce "
              f"{1e3 * r['allreduce_seconds_per_step']:.1f} ms/step")
    print(f"  speed-up 2 vs 1 rank: {two['steps_per_second'] / one['steps_per_second']:.2f}")
    o = results["out_of_core"]
    print(f"W3 784-256-10, batch {o['batch']}, one epoch of {o['rows']:,} rows: "
          f"{o['memory_rows_per_second']:,.0f} rows/s from memory, "
          f"{o['npy_file_rows_per_second']:,.0f} rows/s from the .npy file")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
