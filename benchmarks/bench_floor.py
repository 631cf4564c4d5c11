"""How close chainrule's training step is to a hand-written NumPy loop (issue 10).

For W1-W3b of ``bench_training.py`` this runs, paired in one process with one BLAS
thread, three implementations of the same training (same data, initial parameters,
batch order and learning rate, so the same losses):

* ``numpy``: the fewest NumPy calls that train the model - no input checks, no
  divergence guard, no layer objects; written here, for this measurement only;
* ``chainrule``: ``LogisticRegression.step`` / ``FeedforwardNeuralNet.step`` (W1, W2)
  and ``fit`` (W3, W3b), as ``bench_training.py`` calls them;
* ``torch``: PyTorch eager, as ``bench_training.py`` runs it.

It prints the median per-round ratios numpy/torch, chainrule/torch and
chainrule/numpy. The first is the floor of what a NumPy library can reach on the
workload; the last is what chainrule's checks (finite X and Y, one-hot rows, finite
gradients before a homework step; the finite loss of every ``fit`` step), the thread
choice, layer objects and Python calls cost on top of that floor.

Usage: ``python benchmarks/bench_floor.py [--repeats 7] [--only W1 W3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench_training puts the clone's src/ first on sys.path and imports chainrule from it.
from bench_training import LR, cr, homework_runs, mlp_runs, synthetic  # noqa: E402


def _softmax_grad(Z, Y, y, n):
    """Mean cross-entropy of logits ``Z`` and ``dL/dZ``, in place of ``Z``'s exponentials
    (one-hot ``Y`` or class indices ``y``)."""
    s = Z - np.ascontiguousarray(Z.T).max(axis=0)[:, None]
    e = np.exp(s)
    total = e @ np.ones(Z.shape[1], Z.dtype)
    if Y is not None:
        loss = -(np.vdot(Y, s) - np.log(total).sum()) / n
        e /= total[:, None]
        e -= Y
        e /= n
        return loss, e
    rows = np.arange(n)
    loss = float(np.sum(np.log(total) - s[rows, y])) / n
    e /= total[:, None]
    e *= e.dtype.type(1 / n)
    e[rows, y] -= e.dtype.type(1 / n)
    return loss, e


def _numpy_step(params, X, Y, y, lr):
    """One SGD step of an MLP with one or two Affine layers; returns the loss."""
    names = cr.models.affine_param_names(len(params) // 2)
    inputs, masks = [X], []
    for i, (w, b) in enumerate(names):
        Z = inputs[-1] @ params[w]
        Z += params[b]
        if i < len(names) - 1:
            masks.append(Z > 0)
            inputs.append(np.maximum(Z, 0))
    loss, d = _softmax_grad(Z, Y, y, X.shape[0])
    grads = {}
    for i in reversed(range(len(names))):
        w, b = names[i]
        grads[w], grads[b] = inputs[i].T @ d, np.ones(d.shape[0], d.dtype) @ d
        if i:
            d = d @ params[w].T
            d *= masks[i - 1]
    for k, g in grads.items():
        params[k] -= params[k].dtype.type(lr) * g
    return loss


def homework_numpy(hidden):
    """The homework's full-batch loop for W1 (hidden=0) or W2 (hidden=32)."""
    from chainrule.data import load_homework_digits

    X, _, Y, _ = load_homework_digits()   # seeds the global generator as bench_training does
    init = (cr.FeedforwardNeuralNet(64, hidden, 10, learning_rate=1e-2) if hidden
            else cr.LogisticRegression(64, 10, learning_rate=1e-2)).params

    def run():
        params = {k: v.copy() for k, v in init.items()}
        losses = [_numpy_step(params, X, Y, None, 1e-2) for _ in range(501)]
        return float(np.mean(losses)), losses[-1]
    return run


def mlp_numpy(sizes, batch, n_rows, seed=0):
    """One epoch of minibatch SGD in fit's batch order (W3, W3b)."""
    X, y = synthetic(n_rows)
    init = cr.MLP(sizes, rng=seed, dtype=np.float32).params
    order = np.random.default_rng(seed).permutation(n_rows)

    def run():
        params = {k: v.copy() for k, v in init.items()}
        total = 0.0
        for start in range(0, n_rows, batch):
            idx = order[start:start + batch]
            total += _numpy_step(params, X[idx], None, y[idx], LR) * len(idx)
        return total / n_rows, None
    return run


def measure(runs, repeats):
    """Median seconds per run and median per-round ratios of every ordered pair."""
    for run in runs.values():
        run()   # warm-up
    seconds = {name: [] for name in runs}
    losses = {}
    names = list(runs)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            losses[name] = runs[name]()
            seconds[name].append(time.perf_counter() - t0)

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(seconds[a], seconds[b], strict=True))
    return ({n: statistics.median(s) for n, s in seconds.items()}, losses,
            (ratio("numpy", "torch"), ratio("chainrule", "torch"), ratio("chainrule", "numpy")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="+", default=None, help="e.g. W1 W3b")
    args = parser.parse_args(argv)

    import threadpoolctl
    import torch

    workloads = {"W1": (lambda: homework_runs(torch, 0), lambda: homework_numpy(0)),
                 "W2": (lambda: homework_runs(torch, 32), lambda: homework_numpy(32)),
                 "W3": (lambda: mlp_runs(torch, [784, 256, 10], 128, 60_000),
                        lambda: mlp_numpy([784, 256, 10], 128, 60_000)),
                 "W3b": (lambda: mlp_runs(torch, [784, 256, 10], 1024, 60_000),
                         lambda: mlp_numpy([784, 256, 10], 1024, 60_000))}
    print("| workload | numpy s | chainrule s | torch s | numpy/torch | chainrule/torch | "
          "chainrule/numpy | mean loss numpy / chainrule / torch |\n|" + "---|" * 8)
    torch.set_num_threads(1)
    for key, (build, build_numpy) in workloads.items():
        if args.only and key not in args.only:
            continue
        chainrule_run, torch_run = build()[:2]
        runs = {"numpy": build_numpy(), "chainrule": chainrule_run, "torch": torch_run}
        # Limited after the builds, which load scikit-learn (and SciPy's BLAS pool).
        with threadpoolctl.threadpool_limits(limits=1):
            secs, losses, (nt, ct, cn) = measure(runs, args.repeats)
        loss = " / ".join(f"{losses[n][0]:.6f}" for n in runs)
        print(f"| {key} | {secs['numpy']:.3f} | {secs['chainrule']:.3f} | "
              f"{secs['torch']:.3f} | {nt:.2f} | **{ct:.2f}** | {cn:.2f} | {loss} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
