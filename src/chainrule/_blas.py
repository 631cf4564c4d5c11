"""The BLAS NumPy loaded: its threadpoolctl controller, and matrix products split so
that they take its fastest path (issue 10).

OpenBLAS's AVX-512 kernels (``SkylakeX``, and ``Cooperlake``/``SapphireRapids``, which
reuse them) multiply a *small* product, ``m * n * k <= 10**6``, without first copying
(packing) the operands into cache-sized panels. For the long, narrow products of a
small network the packed path is much slower: on this project's machines (SkylakeX,
one thread) a 1347 x 64 batch times a 64 x 32 weight takes 137 us whole and 107 us
as three blocks of 449 rows; a 1347 x 784 batch times a 784 x 10 weight (logistic
regression on MNIST) about half as long in blocks; and the product just above the
bound (489 rows) is 40% slower than the one just below it (488 rows). So
:func:`matmul` (``a @ b``) and :func:`matmul_tn` (``a.T @ b``: the weight gradient, a
sum over the batch) run such a product block by block, each block under the bound,
and :func:`matmul_nt` (``a @ b.T``: the input gradient) also turns the transposed
operand into the orientation the small path takes. Only the order in which
:func:`matmul_tn` sums the batch's rows changes, i.e. rounding.

Everywhere else they are a plain ``@``: on other BLAS libraries and kernels (with
``OPENBLAS_CORETYPE=Haswell`` the same split measured up to 45% *slower*), for
products whose blocks would be thinner than :data:`MIN_BLOCK_ROWS` (a 784 x 256
weight), for sparse or mixed-dtype operands, and for anything but 2-D float32/float64
arrays.

``threadpoolctl`` (a scikit-learn dependency) is imported on first use, never by
``import chainrule``.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["MULTITHREAD_FLOPS", "SMALL_PRODUCT", "MIN_BLOCK_ROWS", "blas_controller",
           "has_small_kernels", "block_rows", "matmul", "matmul_nt", "matmul_tn"]

#: A matrix product of at least this many floating-point operations (2 m k n) is
#: worth a second thread: about 5 ms of one core's GEMM at 20 GFLOP/s, far above a
#: thread wake-up (tens of microseconds) even when the other core is busy.
MULTITHREAD_FLOPS = 1e8

#: OpenBLAS's bound on ``m * n * k`` for its small-matrix kernels (measured: 488 rows
#: of a 64 x 32 product are on the fast side, 489 on the slow one).
SMALL_PRODUCT = 1_000_000

#: Blocks of fewer rows than this are not worth their Python call (a 784 x 32 weight in
#: float32, blocks of 39 rows: 3% faster forward, 10% slower gradient).
MIN_BLOCK_ROWS = 100

#: The OpenBLAS kernels (``threadpoolctl``'s "architecture") with the small-matrix path.
SMALL_KERNEL_ARCHITECTURES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})

_controller = None  # threadpoolctl's controller of the BLAS libraries
_controller_modules = -1  # len(sys.modules) when it was built
_small_kernels = None  # whether every loaded BLAS has the small path


def blas_controller():
    """threadpoolctl's ``ThreadpoolController`` of the loaded BLAS libraries.

    Built on first use (a scan of the process's libraries, ~1 ms) and shared; built
    again when modules were imported since, which is how another BLAS arrives (SciPy's
    with ``scikit-learn``): a stale controller would leave that pool's threads alone.
    """
    global _controller, _controller_modules, _small_kernels
    if _controller is None or len(sys.modules) != _controller_modules:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
        _controller_modules, _small_kernels = len(sys.modules), None
    return _controller


def has_small_kernels() -> bool:
    """Whether every BLAS library in the process is an OpenBLAS with an AVX-512 kernel.

    NumPy's and SciPy's OpenBLAS are separate libraries; both must have the kernel,
    so that the answer holds for whichever one ``@`` calls.
    """
    global _small_kernels
    libs = blas_controller().lib_controllers  # (which forgets the answer after an import)
    if _small_kernels is None:
        _small_kernels = bool(libs) and all(
            lib.internal_api == "openblas"
            and str(getattr(lib, "architecture", "")).lower() in SMALL_KERNEL_ARCHITECTURES
            for lib in libs)
    return _small_kernels


def _threaded() -> bool:
    """Whether a BLAS library runs more than one thread now (read, ~1 us)."""
    return any((lib.num_threads or 1) > 1 for lib in blas_controller().lib_controllers)


def block_rows(rows: int, other: int, a, b) -> int | None:
    """Rows per block for a product that sums or stacks ``rows`` rows against an
    ``other``-element matrix (``m * n * k = rows * other``): ``None`` where the split
    does not apply (see the module's docstring), else at most ``rows`` (one block:
    the whole product already takes the small path)."""
    per_block = SMALL_PRODUCT // max(other, 1)
    if (per_block < MIN_BLOCK_ROWS or type(a) is not np.ndarray or type(b) is not np.ndarray
            or a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.char not in "fd"
            or not has_small_kernels()):
        return None
    blocks = -(-rows // per_block)
    return -(-rows // blocks)   # blocks of equal size, each under the bound


def _blocks(a, b, rows):
    """``a @ b`` computed ``rows`` rows of ``a`` at a time."""
    if rows >= a.shape[0]:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out


def matmul(a, b):
    """``a @ b`` for ``a`` (N, D) and ``b`` (D, H), in blocks of rows of ``a`` where that
    is faster (see the module's docstring). Shape: (N, D), (D, H) -> (N, H)."""
    if a.shape[0] * a.shape[1] * b.shape[-1] <= SMALL_PRODUCT:
        return a @ b   # small already: nothing to decide (the checks cost ~2 us)
    rows = block_rows(a.shape[0], a.shape[1] * b.shape[-1], a, b)
    return a @ b if rows is None else _blocks(a, b, rows)


def matmul_nt(a, b):
    """``a @ b.T`` for ``a`` (N, H) and ``b`` (D, H): an input gradient ``d_out @ W.T``.

    Where the split applies, ``b.T`` (at most ``10**6 / MIN_BLOCK_ROWS`` entries) is
    copied to a contiguous array first: OpenBLAS takes the small path only for that
    orientation (1347 x 10 by 10 x 32: 29 us on the transposed view, 21 us on the
    copy). Shape: (N, H), (D, H) -> (N, D).
    """
    rows = block_rows(a.shape[0], a.shape[1] * b.shape[0], a, b)
    return a @ b.T if rows is None else _blocks(a, np.ascontiguousarray(b.T), rows)


def matmul_tn(a, b):
    """``a.T @ b`` for ``a`` (N, D) and ``b`` (N, H): the sum over the N rows of their
    outer products, in blocks of rows where that is faster. Shape: (N, D), (N, H) ->
    (D, H).

    A product of :data:`MULTITHREAD_FLOPS` or more is taken whole when the BLAS runs
    more than one thread: the blocks' running sum is serial, while the BLAS spreads a
    whole product over its threads (60,000 x 784 by 784 x 10 in float32: on two
    threads 21 ms whole, 33 ms in blocks; on one thread 43 ms whole, 32 ms in blocks).
    """
    if a.shape[0] * a.shape[1] * b.shape[-1] <= SMALL_PRODUCT:
        return a.T @ b
    rows = block_rows(a.shape[0], a.shape[1] * b.shape[-1], a, b)
    if (rows is None
            or (2.0 * a.shape[0] * a.shape[1] * b.shape[1] >= MULTITHREAD_FLOPS
                and _threaded())):
        return a.T @ b
    out = a[:rows].T @ b[:rows]
    part = np.empty_like(out)
    for start in range(rows, a.shape[0], rows):
        out += np.matmul(a[start:start + rows].T, b[start:start + rows], out=part)
    return out
