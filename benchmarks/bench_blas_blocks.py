"""Row-blocked matrix products (``chainrule._blas``) against plain ``@`` (issue 10).

For the products of an Affine layer - forward ``X @ W``, weight gradient ``X.T @ G``,
input gradient ``G @ W.T`` - on narrow layers (and one wide layer, where the split does
not apply, as a control), this times NumPy's ``@`` and chainrule's ``matmul``,
``matmul_tn`` and ``matmul_nt`` paired in one process with one BLAS thread: warm-up,
then ``--repeats`` rounds alternating which goes first, each round the minimum of a
few calls; the table gives the median per-round ratio chainrule/plain (below 1:
the split is faster) and the rows per block ("-": the product is taken as ``@``).

    python benchmarks/bench_blas_blocks.py
    env -u OPENBLAS_CORETYPE OPENBLAS_CORETYPE=Haswell python benchmarks/bench_blas_blocks.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from chainrule import _blas  # noqa: E402

SHAPES = [(1347, 64, 32), (1347, 64, 10), (1347, 784, 10), (4096, 128, 64), (4096, 30, 100),
          (4096, 64, 16), (60000, 784, 10), (1024, 784, 256)]


def _seconds(f, number):
    return min(timeit.repeat(f, number=number, repeat=3)) / number


def paired(plain, ours, repeats, number):
    """Median per-round ratio ours/plain, the order alternating round by round."""
    plain(), ours()
    ratios = []
    for r in range(repeats):
        if r % 2:
            b = _seconds(ours, number)
            a = _seconds(plain, number)
        else:
            a = _seconds(plain, number)
            b = _seconds(ours, number)
        ratios.append(b / a)
    return statistics.median(ratios), a


def _row(rng, n, d, h, dtype, repeats):
    """One table row: the three products of an (n, d) -> (n, h) Affine layer."""
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, h)).astype(dtype)
    G = rng.standard_normal((n, h)).astype(dtype)
    number = max(1, int(2e7 // (n * d * h)))
    fwd, plain_s = paired(lambda: X @ W, lambda: _blas.matmul(X, W), repeats, number)
    tn, _ = paired(lambda: X.T @ G, lambda: _blas.matmul_tn(X, G), repeats, number)
    nt, _ = paired(lambda: G @ W.T, lambda: _blas.matmul_nt(G, W), repeats, number)
    rows = _blas.block_rows(n, d * h, X, W)
    return (f"| {n} x {d} -> {h} | {dtype.name} | {'-' if rows is None else rows} | "
            f"{fwd:.2f} | {tn:.2f} | {nt:.2f} | {plain_s * 1e6:.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    for info in threadpool_info():
        if info["user_api"] == "blas":
            print(f"- {info['internal_api']} {info['version']}: kernel "
                  f"{info.get('architecture')}, {os.path.basename(info['filepath'])}")
    print(f"- small-matrix split on: {_blas.has_small_kernels()}\n")
    print("| N x D -> H | dtype | rows per block | X @ W | X.T @ G | G @ W.T | "
          "X @ W plain us |\n|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for n, d, h in SHAPES:
            for dtype in (np.float32, np.float64):
                print(_row(rng, n, d, h, np.dtype(dtype), args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
