"""How many BLAS threads a training run or a prediction uses.

NumPy's OpenBLAS starts one thread per core and uses them for every matrix product
it judges large enough. For the small products of a small network that costs more
than it saves: the threads' start-up and synchronisation outweigh the work, and their
spinning competes with whatever else runs on a shared machine (issue 10 measured
``chainrule train`` on digits 3-4x slower with two threads than with one). So
:func:`blas_threads` decides once per ``fit`` or prediction, from the largest matrix
product of one step:

* ``threads`` given (an int): exactly that many threads;
* ``threads=None`` and ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS``
  set in the environment: nothing is changed (the user chose when the BLAS loaded);
* otherwise one thread when that product is below :data:`MULTITHREAD_FLOPS`, else the
  threads the BLAS already has, at most the CPUs the process may use
  (:func:`available_cpus`: a container's CPU quota, which OpenBLAS does not read). The
  automatic choice never raises the count, so a ``threadpoolctl.threadpool_limits``
  around the call is respected too.

``threadpoolctl`` (a scikit-learn dependency) is imported on first use, never by
``import chainrule``.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from ._blas import MULTITHREAD_FLOPS, blas_controller

__all__ = ["MULTITHREAD_FLOPS", "THREAD_ENV_VARS", "check_threads", "choose_threads",
           "user_set_threads", "blas_threads", "largest_product_flops", "rows_of",
           "threads_for", "available_cpus", "quota_cpus"]


#: Environment variables through which a user fixes the thread count themselves.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_user_choice = (-1, False)  # (len(os.environ) when read, whether a variable was set)
_cpus: int | None = None    # available_cpus(), read once


def quota_cpus(root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup") -> int | None:
    """The whole CPUs of the tightest cgroup CPU quota over the process (``docker
    --cpus``, Kubernetes' CPU limit, systemd's ``CPUQuota``), at least 1; ``None`` where
    none is set or readable.

    Read from the process's own cgroup (named in ``own``) under ``root`` and from each
    group above it up to ``root`` itself (a container's view of its own group): a
    quota on a parent (a systemd slice) holds for its children. cgroup v2's ``cpu.max``
    holds ``"<quota> <period>"`` (``"max ..."``: none); v1's ``cpu.cfs_quota_us`` holds -1
    for none. A fraction is rounded down: two BLAS threads on a quota of 1.5 CPUs are
    throttled in every period, each waiting on the other.
    """
    found = [cpus for files in _quota_files(root, own) if (cpus := _quota(*files))]
    return min(found, default=None)


def _quota(quota_file: str, period_file: str | None) -> int | None:
    """One group's quota in whole CPUs (at least 1), None for none."""
    try:
        with open(quota_file) as f:
            fields = f.read().split()
        if period_file is not None:
            with open(period_file) as f:
                fields += f.read().split()
        quota, period = float(fields[0]), float(fields[1])
    except (OSError, ValueError, IndexError):  # no such file, "max", or unreadable
        return None
    return max(1, int(quota // period)) if quota > 0 and period > 0 else None


def _ancestors(path: str) -> list[str]:
    """``"/a/b"`` -> ``["/a/b", "/a", ""]``: a group and those above it."""
    parts = [p for p in path.split("/") if p]
    if ".." in parts:   # (a group outside the process's cgroup namespace: root only)
        return [""]
    return ["/" + "/".join(parts[:k]) if k else "" for k in range(len(parts), -1, -1)]


def _quota_files(root: str, own: str) -> list[tuple[str, str | None]]:
    """``(quota file, period file or None)`` of the process's groups and their parents."""
    groups = {"v1": "", "v2": ""}
    try:
        with open(own) as f:
            lines = f.read().splitlines()
    except (OSError, ValueError):
        lines = []
    for line in lines:  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1); others skipped
        fields = line.split(":", 2)
        if len(fields) == 3 and fields[1] == "":
            groups["v2"] = fields[2]
        elif len(fields) == 3 and "cpu" in fields[1].split(","):
            groups["v1"] = fields[2]
    files: list[tuple[str, str | None]] = [(f"{root}{p}/cpu.max", None)
                                           for p in _ancestors(groups["v2"])]
    return files + [(f"{root}/cpu{p}/cpu.cfs_quota_us", f"{root}/cpu{p}/cpu.cfs_period_us")
                    for p in _ancestors(groups["v1"])]


def available_cpus() -> int:
    """CPUs this process may run on: those of its affinity mask (``taskset``), at most
    the container's quota (:func:`quota_cpus`). Read once per process."""
    global _cpus
    if _cpus is None:
        try:
            mask = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # (not on every platform)
            mask = os.cpu_count() or 1
        _cpus = min(mask, quota_cpus() or mask)
    return _cpus


def user_set_threads() -> bool:
    """Whether one of :data:`THREAD_ENV_VARS` is set (non-empty) in ``os.environ``.

    Read again only when the number of variables changed (setting or removing one
    does): the three lookups cost ~2.5 us, a tenth of a default-threads homework
    ``step``'s overhead, and the environment rarely changes between calls.
    """
    global _user_choice
    if _user_choice[0] != len(os.environ):
        _user_choice = (len(os.environ), any(os.environ.get(name) for name in THREAD_ENV_VARS))
    return _user_choice[1]


def check_threads(threads) -> int | None:
    """``None`` (decide automatically) or a positive int, else ``TypeError``/``ValueError``."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be None or a positive integer, got "
                        f"{type(threads).__name__} {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    return int(threads)


def largest_product_flops(rows: int, params) -> float:
    """FLOPs ``2 * rows * D * H`` of the largest product ``(rows, D) @ (D, H)`` of a
    batch of ``rows`` with a 2-D array ``(D, H)`` of the params dict (a weight matrix;
    the biases are 1-D): an Affine layer's forward product, and the count of each of
    its two backward products."""
    largest = 0  # a loop, not max() over a generator: half the ~1.3 us, on every step
    for p in params.values():
        if p.ndim == 2 and p.shape[0] * p.shape[1] > largest:
            largest = p.shape[0] * p.shape[1]
    return 2.0 * rows * largest


def rows_of(x) -> int:
    """The rows of an array-like not yet checked (1 when it has no shape to read): what
    the threads of a call are chosen from before its checks run."""
    if type(x) is np.ndarray:  # the usual case, first
        return int(x.shape[0]) if x.ndim else 1
    if isinstance(x, (list, tuple)):  # its length: np.shape would convert it a first time
        return max(len(x), 1)
    try:
        shape = np.shape(x)
    except (TypeError, ValueError):  # ragged sequences and the like: the checks will say
        return 1
    # (a Dask array of unknown chunk sizes has NaN rows until computed: a guess of 1)
    return int(shape[0]) if shape and shape[0] == shape[0] else 1


def threads_for(X, params, threads=None, max_rows=None) -> blas_threads:
    """The :class:`blas_threads` of one call on ``X`` (its rows capped at ``max_rows``).

    Entered *before* the call checks its inputs, so that every BLAS call of the call,
    the finite scan of ``X`` included, runs on the threads chosen for it: a scan on two
    threads outside that choice left an OpenBLAS thread spinning against the step on
    a busy machine (a homework ``step`` 3-14x slower with the default threads than
    with ``OPENBLAS_NUM_THREADS=1``).
    """
    rows = rows_of(X) if max_rows is None else min(rows_of(X), max_rows)
    return blas_threads(threads, largest_product_flops(rows, params))


def choose_threads(threads, flops: float, current: int, environ=None,
                   cpus: int | None = None) -> int | None:
    """The thread count to set, or ``None`` to leave the BLAS as it is.

    Parameters
    ----------
    threads : int or None
        An explicit choice (returned as it is) or ``None`` for the automatic one.
    flops : float
        FLOPs of the largest matrix product of one step.
    current : int
        Threads the BLAS uses now.
    environ : mapping, optional
        The environment, ``os.environ`` (read through :func:`user_set_threads`) when
        None; any of :data:`THREAD_ENV_VARS` set there means the user chose, and the
        automatic choice leaves it alone.
    cpus : int, optional
        The CPUs the process may use, :func:`available_cpus` when None: the most
        threads the automatic choice keeps for a large product.
    """
    if threads is not None:
        return threads
    user_set = (user_set_threads() if environ is None
                else any(environ.get(name) for name in THREAD_ENV_VARS))
    if user_set:
        return None
    wanted = 1 if flops < MULTITHREAD_FLOPS else min(
        current, available_cpus() if cpus is None else cpus)
    return None if wanted == current else min(wanted, current)


class blas_threads:  # noqa: N801  (used as a function: ``with blas_threads(...)``)
    """Run the ``with`` block with the BLAS threads :func:`choose_threads` picks, and put
    the previous count back afterwards.

    ``threads`` must already be checked (:func:`check_threads`). A class rather than a
    generator: a homework ``step`` enters it once per call, and the generator's
    machinery was ~1.5 of its ~8 us (two BLAS libraries loaded).
    """

    __slots__ = ("threads", "flops", "changed")

    def __init__(self, threads, flops: float):
        self.threads, self.flops, self.changed = threads, flops, ()

    def __enter__(self):
        if self.threads is None and user_set_threads():
            return self   # the user's choice: not even read (~3 us a call, a prediction's)
        # (pool, its count now); a library whose count cannot be read (None) is left alone.
        pools = [(lib, lib.num_threads) for lib in blas_controller().lib_controllers]
        pools = [(lib, b) for lib, b in pools if b]
        n = choose_threads(self.threads, self.flops, max((b for _, b in pools), default=1))
        # Each pool is set straight through its controller: threadpoolctl's ``limit()``
        # re-reads every library's information first, ~20 us on each call of a ``step``.
        self.changed = [] if n is None else [(lib, b) for lib, b in pools if b != n]
        for lib, _ in self.changed:
            lib.set_num_threads(n)
        return self

    def __exit__(self, *exc_info):
        for lib, b in self.changed:
            lib.set_num_threads(b)
        return False
