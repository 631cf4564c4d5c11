"""chainrule against PyTorch eager (and scikit-learn) on the workloads of issue 10.

Run from the repository root of a fresh clone (the chainrule of ``src/`` is used)::

    python benchmarks/bench_training.py                # everything, ~15 min on 2 cores
    python benchmarks/bench_training.py --quick        # 2 repeats, W3/W4 on 12,000 rows
    python benchmarks/bench_training.py --only W3 W4 --repeats 7 --out table.md

Workloads (same data, initial parameters and batch order in every library):

* W1 homework logistic regression, 501 full-batch steps (``LogisticRegression.step``);
* W2 homework 64-32-10 network, 501 full-batch steps (``FeedforwardNeuralNet.step``);
* W3 784-256-10, float32, batch 128, one epoch of 60,000 synthetic rows, SGD (``fit``
  with integer labels); W3b the same with batch 1024;
* W4 784-1024-1024-10, float32, batch 1024, one epoch (``fit``);
* CLI ``chainrule train -q --epochs 10`` (digits, the default recipe), default threads
  against ``OPENBLAS_NUM_THREADS=1`` and, as the control that shows the noise, against
  default threads again; EST the estimator's default ``fit`` on digits.

PyTorch: ``nn.Sequential`` + ``CrossEntropyLoss`` (class indices) + ``optim.SGD``,
batches by indexing a tensor with the same permutation. scikit-learn (W3-W4):
``MLPClassifier(solver='sgd', momentum=0, alpha=0)``, one ``partial_fit`` epoch.

Timing: one untimed warm-up per library, then ``--repeats`` rounds; in each round every
library trains once from the same initial state, in an order that alternates round by
round; the ratio chainrule/other is taken per round and the median reported (below 1:
chainrule is faster). Once with one BLAS/OpenMP thread everywhere, once with the
defaults (chainrule choosing its own count, torch with all cores). ``GEMM %`` is the
lower bound (the workload's matrix products timed alone with ``np.matmul`` on the same
shapes and threads) over the measured time. ``peak MiB`` is the rise of the process's
peak resident memory during one training run (``/proc/self/clear_refs``).
``chainrule default / one thread`` (the default rows): chainrule with its own choice of
threads against itself under one thread, paired in the same rounds (the two thread
rows' times come from different rounds, with PyTorch's threads between them). Speed is
reported here, never asserted in a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

import chainrule as cr  # noqa: E402

LR = 0.05


# --- data ------------------------------------------------------------------------------

def synthetic(n_rows, seed=0):
    """float32 X (n, 784) standard normal; labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, 784), dtype=np.float32)
    teacher = rng.standard_normal((784, 10), dtype=np.float32)
    return X, np.argmax(X @ teacher, axis=1)


def digits_data():
    """scikit-learn's digits (1797 x 64), standardised per feature (for profile_step.py)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0), y


def synthetic_mnist(n_rows, seed=0):
    """:func:`synthetic` in float64 (for profile_step.py)."""
    X, y = synthetic(n_rows, seed)
    return X.astype(np.float64), y


# --- chainrule and torch runs: each builder returns run() -> (mean loss, final loss) -----

def torch_net(torch, params, names, dtype):
    """nn.Sequential of Linear/ReLU holding copies of chainrule's parameters."""
    layers = []
    for i, (w, b) in enumerate(names):
        lin = torch.nn.Linear(*params[w].shape).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[w].T.copy()))
            lin.bias.copy_(torch.from_numpy(params[b].copy()))
        layers.append(lin)
        if i < len(names) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def homework_runs(torch, hidden):
    from chainrule.data import load_homework_digits

    X, _, Y, _ = load_homework_digits()   # seeds the global generator as the homework does
    if hidden:
        init = cr.FeedforwardNeuralNet(64, hidden, 10, learning_rate=1e-2).params
    else:
        init = cr.LogisticRegression(64, 10, learning_rate=1e-2).params
    names = cr.models.affine_param_names(2 if hidden else 1)
    y = Y.argmax(axis=1)

    def chainrule_run():
        model = (cr.FeedforwardNeuralNet(64, hidden, 10, rng=0) if hidden
                 else cr.LogisticRegression(64, 10))
        for k, v in init.items():
            model.params[k][...] = v
        losses = [model.step(X, Y) for _ in range(501)]
        return float(np.mean(losses)), losses[-1]

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def torch_run():
        net = torch_net(torch, init, names, torch.float64)
        opt, loss_fn = torch.optim.SGD(net.parameters(), lr=1e-2), torch.nn.CrossEntropyLoss()
        total = torch.zeros((), dtype=torch.float64)
        for _ in range(501):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt), yt)
            loss.backward()
            opt.step()
            total += loss.detach()
        return float(total) / 501, float(loss.detach())

    products = [(1347, 64, hidden or 10), (64, 1347, hidden or 10)]
    if hidden:
        products += [(1347, hidden, 10), (hidden, 1347, 10), (1347, 10, hidden)]
    return chainrule_run, torch_run, None, products * 501, np.float64


def mlp_runs(torch, sizes, batch, n_rows, seed=0):
    X, y = synthetic(n_rows)
    init = cr.MLP(sizes, rng=seed, dtype=np.float32).params
    names = cr.models.affine_param_names(len(sizes) - 1)
    order = np.random.default_rng(seed).permutation(n_rows)  # fit's first draw from rng=seed

    def chainrule_run():
        model = cr.MLP(sizes, rng=seed, dtype=np.float32)
        for k, v in init.items():
            model.params[k][...] = v
        history = cr.fit(model, X, y, optimizer=cr.SGD(lr=LR), epochs=1, batch_size=batch,
                         rng=seed, progress=False, diagnostics=False)
        return history.history["loss"][0], None

    Xt, yt, order_t = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(order)

    def torch_run():
        net = torch_net(torch, init, names, torch.float32)
        opt, loss_fn = torch.optim.SGD(net.parameters(), lr=LR), torch.nn.CrossEntropyLoss()
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, n_rows, batch):
            idx = order_t[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        return float(total) / n_rows, None

    def sklearn_run():
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", momentum=0.0,
                            nesterovs_momentum=False, alpha=0.0, batch_size=batch,
                            learning_rate_init=LR, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=np.arange(10))
        return clf.loss_, None

    steps = -(-n_rows // batch)
    products = []
    for i, (d, h) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        products += [(batch, d, h), (d, batch, h)] + ([(batch, h, d)] if i else [])
    return chainrule_run, torch_run, sklearn_run, products * steps, np.float32


# --- measurements ------------------------------------------------------------------------

def gemm_seconds(products, dtype, repeats=5):
    """Time of the matrix products alone: each distinct shape timed with np.matmul."""
    total = 0.0
    for shape in set(products):
        m, k, n = shape
        a, b = np.ones((m, k), dtype), np.ones((k, n), dtype)
        out = np.empty((m, n), dtype)
        reps = max(1, int(2e8 // (2 * m * k * n)))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=out)
            times.append((time.perf_counter() - t0) / reps)
        total += min(times) * products.count(shape)
    return total


def peak_mib(key, name, quick):
    """Rise of the peak resident set of one training run above the resident set before
    it (Linux), in MiB: the first run in a fresh process (imports and data already
    resident), one thread; it includes a library's first-call initialisation."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "--peak", key, name]
        out = subprocess.run(cmd + (["--quick"] if quick else []), env=env,
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[-1])
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return float("nan")


def _peak_in_this_process(run):
    # No warm-up: after one, the allocator serves the second run from memory it kept
    # (glibc raises its mmap threshold), and the rise reads ~0 for any library.
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # reset VmHWM to the current RSS
    run()
    return (_status_kib("VmHWM") - before) / 1024


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def paired(runs, repeats):
    """Median seconds of each run and median per-round ratio chainrule/other."""
    names = list(runs)
    for name in names:
        runs[name]()   # warm-up
    seconds = {n: [] for n in names}
    losses = {}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            losses[name] = runs[name]()
            seconds[name].append(time.perf_counter() - t0)
    ratios = {n: statistics.median(c / o for c, o in zip(seconds["chainrule"], seconds[n],
                                                          strict=True))
              for n in names if n != "chainrule"}
    return {n: statistics.median(s) for n, s in seconds.items()}, ratios, losses


def _one_thread(run):
    """``run`` with one BLAS/OpenMP thread (chainrule's own threads against its default)."""
    import threadpoolctl

    def limited():
        with threadpoolctl.threadpool_limits(limits=1):
            return run()
    return limited


def workload_row(label, built, repeats, threads, mem):
    chainrule_run, torch_run, sklearn_run, products, dtype = built
    runs = {"chainrule": chainrule_run, "torch": torch_run}
    if sklearn_run is not None:
        runs["sklearn"] = sklearn_run
    if threads == "default":   # paired in the same rounds: is the default ever slower?
        runs["one thread"] = _one_thread(chainrule_run)
    secs, ratios, losses = paired(runs, repeats)
    own = f"{ratios['one thread']:.2f}" if "one thread" in ratios else "-"
    lower = gemm_seconds(products, dtype)
    fmt_loss = {n: f"{v[0]:.4f}" + (f" (last {v[1]:.4f})" if v[1] is not None else "")
                for n, v in losses.items()}
    sk = "sklearn" in runs
    return (f"| {label} | {threads} | {secs['chainrule']:.3f} | {secs['torch']:.3f} | "
            f"{secs['sklearn']:.3f} | " if sk else
            f"| {label} | {threads} | {secs['chainrule']:.3f} | {secs['torch']:.3f} | - | ") + (
        f"**{ratios['torch']:.2f}** | {ratios['sklearn']:.2f} | " if sk else
        f"**{ratios['torch']:.2f}** | - | ") + (
        f"{100 * lower / secs['chainrule']:.0f} / {100 * lower / secs['torch']:.0f} | "
        f"{mem['chainrule']:.0f} / {mem['torch']:.0f} | {own} | "
        f"{fmt_loss['chainrule']} / {fmt_loss['torch']} |")


# The command run in-process, timing main() alone after the modules it loads (the
# digits come through scikit-learn, whose import is ~1 s of the ~1.5 s and moves both
# variants by +-10%): the part where the thread choice acts.
_CLI_SCRIPT = """import sys, time
import sklearn.datasets, sklearn.model_selection, sklearn.preprocessing
from chainrule.cli import main
start = time.perf_counter()
status = main(["train", "-q", "--epochs", "10"])
print(f"after-imports {time.perf_counter() - start:.6f}", file=sys.stderr)
sys.exit(status)"""


def cli_rows(repeats):
    """``chainrule train -q --epochs 10``: default threads against one thread, the whole
    process and the part after its imports (fresh processes, in an order that rotates
    round by round). A second default-threads process in every round, paired with the
    first, is the control: its ratio is what the noise alone gives (1.00 +- that)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    cmd = [sys.executable, "-c", _CLI_SCRIPT]
    variants = {"default": env, "one": dict(env, OPENBLAS_NUM_THREADS="1"), "control": env}
    seconds = {k: [] for k in variants}
    after = {k: [] for k in variants}
    for r in range(repeats):
        order = list(variants)[r % 3:] + list(variants)[:r % 3]
        for name in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, env=variants[name], check=True, capture_output=True,
                                  text=True)
            seconds[name].append(time.perf_counter() - t0)
            after[name].append(float(done.stderr.split("after-imports")[-1]))
    rows = []
    for other, label in (("one", "default vs one thread"),
                         ("control", "default vs default again (the noise)")):
        for what, times in (("", seconds), (" (after imports)", after)):
            ratio = statistics.median(a / b for a, b in zip(times["default"], times[other],
                                                            strict=True))
            a, b = statistics.median(times["default"]), statistics.median(times[other])
            rows.append(f"| CLI {label} `chainrule train -q --epochs 10`{what} | {a:.2f} s | "
                        f"{b:.2f} s | {ratio:.2f} |")
    return "\n".join(rows)


def estimator_row(repeats):
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    runs = {"chainrule": lambda: cr.MLPClassifier(random_state=0).fit(X, y),
            "sklearn": lambda: SkMLP(random_state=0).fit(X, y)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        secs, ratios, fitted = paired(runs, repeats)
    return (f"| EST `MLPClassifier().fit` digits | {secs['chainrule']:.2f} s | "
            f"{secs['sklearn']:.2f} s (sklearn) | {ratios['sklearn']:.2f} |")


def import_ms(repeats=7):
    """Median ms that ``import chainrule`` adds after ``import numpy`` (-X importtime).

    With the bytecode written, as an installed package has it: a first, untimed import
    writes it (``PYTHONDONTWRITEBYTECODE`` is dropped), else a shell that sets it
    compiles every module edited since from source on each import (56 ms once).
    """
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    values = []
    for i in range(repeats + 1):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import numpy; import chainrule"], env=env,
                             capture_output=True, text=True, check=True).stderr
        line = [x for x in out.splitlines() if x.rstrip().endswith("| chainrule")][-1]
        if i:
            values.append(int(line.split("|")[1]) / 1000)
    return statistics.median(values)


def environment(torch):
    import sklearn
    import threadpoolctl

    lines = [f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {platform.machine()}, {os.cpu_count()} logical cores, {_cpu()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, torch "
             f"{torch.__version__}, scikit-learn {sklearn.__version__}"]
    for info in threadpoolctl.threadpool_info():
        lines.append(f"- {info.get('user_api')} {info.get('internal_api')} "
                     f"{info.get('version')} ({os.path.basename(info.get('filepath', ''))}): "
                     f"kernel {info.get('architecture', '-')}, {info.get('num_threads')} "
                     f"thread(s)")
    lines.append(f"- torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
                 f"{torch.get_num_threads()} thread(s) by default")
    return lines


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            return next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="2 repeats, W3/W4 on 12,000 rows (a smoke run)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="workloads to run, e.g. W1 W3 CLI (default: all)")
    parser.add_argument("--out", default=None, help="also write the table here")
    parser.add_argument("--peak", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    rows = 12_000 if args.quick else 60_000

    import threadpoolctl
    import torch

    default_torch_threads = torch.get_num_threads()
    builders = {"W1": ("W1 logreg 501 steps", lambda: homework_runs(torch, 0)),
                "W2": ("W2 64-32-10 501 steps", lambda: homework_runs(torch, 32)),
                "W3": ("W3 784-256-10 b128", lambda: mlp_runs(torch, [784, 256, 10], 128, rows)),
                "W3b": ("W3b 784-256-10 b1024",
                        lambda: mlp_runs(torch, [784, 256, 10], 1024, rows)),
                "W4": ("W4 784-1024-1024-10 b1024",
                       lambda: mlp_runs(torch, [784, 1024, 1024, 10], 1024, rows))}
    if args.peak:   # the child process of peak_mib
        key, name = args.peak
        torch.set_num_threads(1)
        built = builders[key][1]()
        print(_peak_in_this_process(built[("chainrule", "torch").index(name)]))
        return 0
    out = environment(torch) + [f"- chainrule: `import chainrule` adds {import_ms():.0f} ms "
                                f"to `import numpy` (median of 7, -X importtime)", ""]
    print("\n".join(out), flush=True)
    header = ["| workload | threads | chainrule s | torch s | sklearn s | chainrule/torch | "
              "chainrule/sklearn | GEMM % chainrule / torch | peak MiB chainrule / torch | "
              "chainrule default / one thread | mean loss chainrule / torch |",
              "|" + "---|" * 11]
    print("\n".join(header), flush=True)
    table = list(header)
    for key, (label, build) in builders.items():
        if args.only and key not in args.only:
            continue
        built = build()
        mem = {n: peak_mib(key, n, args.quick) for n in ("chainrule", "torch")}
        for threads in ("1", "default"):
            if threads == "1":
                torch.set_num_threads(1)
                with threadpoolctl.threadpool_limits(limits=1):
                    row = workload_row(label, built, repeats, threads, mem)
            else:
                torch.set_num_threads(default_torch_threads)
                row = workload_row(label, built, repeats, threads, mem)
            table.append(row)
            print(row, flush=True)
    extra = ["", "| run | chainrule | other | ratio |", "|---|---|---|---|"]
    if not args.only or "CLI" in args.only:
        extra.append(cli_rows(repeats))
    if not args.only or "EST" in args.only:
        extra.append(estimator_row(repeats))
    print("\n".join(extra), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(out + table + extra) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
