"""Time the same MLP training in chainrule, PyTorch (CPU) and scikit-learn.

Run from the repository root::

    python benchmarks/bench_training.py            # full run, a few minutes on 2 cores
    python benchmarks/bench_training.py --quick    # smaller data, fewer epochs
    python benchmarks/bench_training.py --out results.md

Every configuration trains the same architecture (ReLU hidden layers, softmax
cross-entropy), from the same data, in the same dtype, with the same batch size,
optimizer and number of epochs in the three libraries:

* chainrule: ``MLP.loss_and_grads`` + ``optimizer.step`` over a fresh permutation
  each epoch, the loop ``chainrule.train.fit`` runs (inputs checked once up front,
  as ``fit`` does, not on every batch);
* PyTorch: ``nn.Sequential`` of ``Linear``/``ReLU``, ``CrossEntropyLoss``,
  ``torch.optim.SGD``/``Adam``, with ``torch.set_num_threads`` set to the number of
  threads NumPy's BLAS uses, so neither side gets more cores;
* scikit-learn: ``MLPClassifier.partial_fit`` (one epoch per call) with
  ``solver='sgd'`` (no momentum) or ``'adam'``, ``alpha=0``, the same
  ``batch_size`` and a constant learning rate.

Each library trains in its own block (a pause, one untimed warm-up epoch, then the
timed epochs; ``time_config`` says why they do not take turns). The table gives the
median seconds per epoch and the ratios torch/chainrule and sklearn/chainrule (above
1: chainrule is faster; below 1: that library is). Nothing here is asserted: speed
is reported, never tested.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np

# --- data ---------------------------------------------------------------------------

def digits_data():
    """The scikit-learn digits (1797 x 64), standardised per feature."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    return X, y


def synthetic_mnist(n_rows, seed=0):
    """MNIST-shaped data (784 features, 10 classes) from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, 784))
    teacher = rng.standard_normal((784, 10))
    y = np.argmax(X @ teacher + rng.standard_normal((n_rows, 10)), axis=1)
    return X, y


# --- the three trainers: each has .epoch() and .loss() ------------------------------

class ChainruleTrainer:
    name = "chainrule"

    def __init__(self, sizes, X, y, dtype, batch_size, optimizer, lr, seed):
        import chainrule
        from chainrule.optim import get_optimizer

        self.model = chainrule.MLP(sizes, activation="relu", rng=seed, dtype=dtype)
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.Y = np.eye(sizes[-1], dtype=dtype)[y]
        # the same checks fit() runs once before its loop
        self.X, self.Y = self.model.check_XY(self.X, self.Y)
        self.opt = get_optimizer(optimizer, lr=lr)
        self.batch = batch_size or len(X)
        self.rng = np.random.default_rng(seed)
        self.last_loss = float("nan")

    def epoch(self):
        n = len(self.X)
        if self.batch >= n:
            loss, grads = self.model.loss_and_grads(self.X, self.Y, checked=True)
            self.opt.step(self.model.params, grads)
        else:
            order = self.rng.permutation(n)
            for start in range(0, n, self.batch):
                idx = order[start:start + self.batch]
                loss, grads = self.model.loss_and_grads(self.X[idx], self.Y[idx], checked=True)
                self.opt.step(self.model.params, grads)
        self.last_loss = loss


class TorchTrainer:
    name = "torch"

    def __init__(self, sizes, X, y, dtype, batch_size, optimizer, lr, seed):
        import torch

        torch.manual_seed(seed)
        tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.torch = torch
        self.model = torch.nn.Sequential(*layers).to(tdtype)
        self.X = torch.tensor(X, dtype=tdtype)
        self.y = torch.tensor(y, dtype=torch.long)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
        self.opt = cls(self.model.parameters(), lr=lr)
        self.batch = batch_size or len(X)
        self.gen = torch.Generator().manual_seed(seed)
        self.last_loss = float("nan")

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self):
        n = len(self.X)
        if self.batch >= n:
            loss = self._step(self.X, self.y)
        else:
            order = self.torch.randperm(n, generator=self.gen)
            for start in range(0, n, self.batch):
                idx = order[start:start + self.batch]
                loss = self._step(self.X[idx], self.y[idx])
        self.last_loss = float(loss.detach())


class SklearnTrainer:
    name = "sklearn"

    def __init__(self, sizes, X, y, dtype, batch_size, optimizer, lr, seed):
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu",
                                 solver=optimizer, alpha=0.0, batch_size=batch_size or len(X),
                                 learning_rate="constant", learning_rate_init=lr,
                                 momentum=0.0, nesterovs_momentum=False, shuffle=True,
                                 random_state=seed)
        self.X = np.ascontiguousarray(X, dtype=dtype)   # MLPClassifier keeps float32
        self.y = y
        self.classes = np.arange(sizes[-1])
        self.last_loss = float("nan")

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(self.X, self.y, classes=self.classes)
        self.last_loss = self.clf.loss_


TRAINERS = (ChainruleTrainer, TorchTrainer, SklearnTrainer)


def time_config(sizes, X, y, dtype, batch_size, optimizer, epochs, seed=0, pause=0.5):
    """Median seconds per epoch and last loss of each library on one configuration.

    Each library runs in its own block: a pause, one untimed warm-up epoch, then
    ``epochs`` timed epochs. Taking turns epoch by epoch was tried first and is
    unfair on 2 cores: OpenBLAS's worker threads (NumPy, scikit-learn) and
    OpenMP's (torch) keep spinning for a while after their last call and steal the
    cores of whichever library runs next (torch lost up to 2x that way). The pause
    lets them go to sleep.
    """
    lr = {"sgd": 0.05, "adam": 1e-3}[optimizer]
    medians, losses = {}, {}
    for cls in TRAINERS:
        trainer = cls(sizes, X, y, dtype, batch_size, optimizer, lr, seed)
        time.sleep(pause)
        trainer.epoch()           # warm-up: first-call allocations, lazy inits
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            trainer.epoch()
            times.append(time.perf_counter() - start)
        medians[cls.name] = statistics.median(times)
        losses[cls.name] = trainer.last_loss
    return medians, losses


# --- environment report -------------------------------------------------------------

def environment_report():
    import sklearn
    import threadpoolctl
    import torch

    import chainrule

    lines = [f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {platform.machine()}, {os.cpu_count()} logical cores, "
             f"{_cpu_model()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, torch "
             f"{torch.__version__}, scikit-learn {sklearn.__version__}, chainrule "
             f"{chainrule.__version__}",
             f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
             f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}"]
    np_blas = None
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        where = os.path.basename(os.path.dirname(info.get("filepath", "")))
        lines.append(f"- BLAS {info.get('internal_api')} {info.get('version')} "
                     f"({info.get('prefix')}, in {where}): kernel "
                     f"{info.get('architecture', '?')}, {info.get('num_threads')} threads, "
                     f"threading {info.get('threading_layer', '?')}")
        if "numpy" in where:
            np_blas = info
    lines.append(f"- torch: {torch.get_num_threads()} threads (set to match NumPy's BLAS), "
                 f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}, oneDNN "
                 f"{'yes' if torch.backends.mkldnn.is_available() else 'no'}, CPU capability "
                 f"{torch.backends.cpu.get_cpu_capability()}")
    return lines, np_blas


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def numpy_blas_threads():
    import threadpoolctl

    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            return info["num_threads"]
    return os.cpu_count() or 1


# --- main ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller synthetic data and fewer epochs (under a minute)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per configuration (default 7, quick 3)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows of the synthetic 784-feature data (default 10000, quick 2000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads for every library (default: what NumPy's "
                             "BLAS uses now); 1 gives steadier numbers on a busy machine")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 7)
    rows = args.rows or (2000 if args.quick else 10000)

    import threadpoolctl
    import torch

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        # kept for the whole run: NumPy's and scikit-learn's BLAS and OpenMP pools
        _limits = threadpoolctl.threadpool_limits(limits=args.threads)  # noqa: F841
    threads = numpy_blas_threads()
    torch.set_num_threads(threads)
    env_lines, _ = environment_report()

    digits = digits_data()
    wide = synthetic_mnist(rows)
    problems = [("digits 64-128-64-10", [64, 128, 64, 10], digits),
                (f"synthetic {rows}x784, 784-256-10", [784, 256, 10], wide)]

    header = ("| model | dtype | batch | optimizer | chainrule s/epoch | torch s/epoch | "
              "sklearn s/epoch | torch/chainrule | sklearn/chainrule |")
    rows_out = [header, "|" + "---|" * 9]
    print("\n".join(env_lines), flush=True)
    print(f"\n{epochs} timed epochs per configuration (median reported)\n", flush=True)
    print(header, flush=True)
    print(rows_out[1], flush=True)
    for label, sizes, (X, y) in problems:
        for dtype in (np.float32, np.float64):
            for batch in (None, 64):
                for optimizer in ("sgd", "adam"):
                    med, losses = time_config(sizes, X, y, dtype, batch, optimizer, epochs)
                    c, t, s = med["chainrule"], med["torch"], med["sklearn"]
                    row = (f"| {label} | {np.dtype(dtype).name} | "
                           f"{'full' if batch is None else batch} | {optimizer} | "
                           f"{c:.4f} | {t:.4f} | {s:.4f} | {t / c:.2f} | {s / c:.2f} |")
                    rows_out.append(row)
                    print(row, flush=True)
                    finite = all(np.isfinite(v) for v in losses.values())
                    if not finite:
                        print(f"  warning: non-finite final loss {losses}", file=sys.stderr)
    report = "\n".join(env_lines + ["", f"{epochs} timed epochs per configuration "
                                    "(median reported)", ""] + rows_out) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
