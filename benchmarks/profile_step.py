"""Profile chainrule's training step: ``MLP.loss_and_grads`` + ``optimizer.step``.

Run from the repository root::

    python benchmarks/profile_step.py                       # digits, batch 64, Adam
    python benchmarks/profile_step.py --model wide --dtype float32 --optimizer sgd
    python benchmarks/profile_step.py --batch-size 0        # full batch

Prints cProfile's functions sorted by their own time, so the share of the matrix
products (``Affine.forward``/``backward``), the activations, the loss and the
optimizer's update is visible. BLAS runs on one thread by default (``--threads``)
so that the profile shows the code, not the scheduler of a busy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import digits_data, synthetic_mnist  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["digits", "wide"], default="digits",
                        help="digits: 64-128-64-10 on digits; wide: 784-256-10 on 4000 "
                             "synthetic rows")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    parser.add_argument("--batch-size", type=int, default=64, help="0 for full batch")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=15, help="rows of the profile to print")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import chainrule
    from chainrule.optim import get_optimizer

    _limits = threadpool_limits(limits=args.threads)  # noqa: F841  (kept for the run)
    if args.model == "digits":
        (X, y), sizes = digits_data(), [64, 128, 64, 10]
    else:
        (X, y), sizes = synthetic_mnist(4000), [784, 256, 10]
    dtype = np.dtype(args.dtype)
    model = chainrule.MLP(sizes, rng=0, dtype=dtype)
    X = X.astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[y]
    opt = get_optimizer(args.optimizer, lr=1e-3)
    batch = args.batch_size or len(X)
    rng = np.random.default_rng(0)

    def epoch():
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            _, grads = model.loss_and_grads(X[idx], Y[idx], checked=True)
            opt.step(model.params, grads)

    epoch()   # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.epochs):
        epoch()
    profiler.disable()
    print(f"{args.model} {sizes} {dtype} batch {batch} {args.optimizer}, {args.epochs} epochs, "
          f"{args.threads} BLAS thread(s)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
