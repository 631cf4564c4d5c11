"""Prediction latency of a small trained network, as a web service would call it.

For each model and batch size (1, 8, 64, 1024 rows) this times, paired in one process
with one BLAS thread (and one thread in PyTorch and onnxruntime):

* ``MLP``: ``Network.predict_proba`` of a chainrule ``MLP``;
* ``estimator``: ``chainrule.estimator.MLPClassifier.predict_proba``;
* ``sklearn``: scikit-learn's ``MLPClassifier.predict_proba`` with the same weights;
* ``torch``: PyTorch eager under ``torch.no_grad()``, the same weights, softmax;
* ``onnxruntime``: chainrule's ONNX export of the estimator in onnxruntime.

Every library predicts the same rows from the same weights (the probabilities are
checked to agree first). In each round every implementation makes ``--calls`` calls,
in an order that rotates round by round; the table gives the median microseconds per
call and the median over rounds of chainrule's time over each other library's (below
1: chainrule is faster).

Usage: ``python benchmarks/bench_predict.py [--rounds 9] [--calls 300]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

import chainrule as cr  # noqa: E402

BATCHES = (1, 8, 64, 1024)


def fitted_models(dtype, sizes, rows=2000, seed=0):
    """A chainrule estimator fitted briefly on synthetic rows, and the same weights in
    a chainrule MLP, scikit-learn, PyTorch and onnxruntime."""
    import onnxruntime as ort
    import torch
    from sklearn.neural_network import MLPClassifier

    from chainrule.estimator import MLPClassifier as CrClassifier

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, sizes[0])).astype(dtype)
    y = np.argmax(X @ rng.standard_normal((sizes[0], sizes[-1])), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a short fit's ConvergenceWarning
        est = CrClassifier(tuple(sizes[1:-1]), max_iter=3, random_state=seed).fit(X, y)
        sk = MLPClassifier(tuple(sizes[1:-1]), max_iter=1, random_state=seed).fit(X, y)
    sk.coefs_, sk.intercepts_ = list(est.coefs_), list(est.intercepts_)
    mlp = cr.MLP(sizes, rng=seed, dtype=dtype)
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True), start=1):
        mlp.params[f"W{i}"][...], mlp.params[f"b{i}"][...] = w, b
    layers = []
    for w, b in zip(est.coefs_, est.intercepts_, strict=True):
        linear = torch.nn.Linear(*w.shape).to(torch.from_numpy(w).dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).eval()

    def torch_proba(x):
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()

    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench_predict_{os.getpid()}.onnx")
    cr.io.export_onnx(est, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    os.remove(path)

    def onnx_proba(x):
        return session.run(["probabilities"], {"X": x})[0]

    return X, {"MLP": mlp.predict_proba, "estimator": est.predict_proba,
               "sklearn": sk.predict_proba, "torch": torch_proba, "onnxruntime": onnx_proba}


def measure(runs, x, rounds, calls):
    """Median microseconds per call of each run, and the per-round times."""
    for run in runs.values():
        run(x)   # warm-up
    times = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            for _ in range(calls):
                runs[name](x)
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=300, help="calls per round (fewer for "
                                                               "1024 rows)")
    args = parser.parse_args(argv)
    import threadpoolctl
    import torch

    torch.set_num_threads(1)
    models = {"64-128-10 float64": (np.float64, [64, 128, 10]),
              "784-256-10 float32": (np.float32, [784, 256, 10])}
    with threadpoolctl.threadpool_limits(limits=1):
        kernels = sorted({f"{i['internal_api']} {i.get('architecture')}"
                          for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})
        print(f"BLAS: {', '.join(kernels)}, 1 thread; torch {torch.__version__}")
        others = ["estimator", "sklearn", "torch", "onnxruntime"]
        print("| model | rows | " + " | ".join(f"{n} us" for n in ["MLP"] + others)
              + " | " + " | ".join(f"MLP/{n}" for n in others[1:]) + " | estimator/sklearn |")
        print("|" + "---|" * (3 + 2 * len(others)))
        for label, (dtype, sizes) in models.items():
            X, runs = fitted_models(dtype, sizes)
            for rows in BATCHES:
                x = np.ascontiguousarray(X[:rows])
                reference = runs["sklearn"](x)
                for run in runs.values():   # the same probabilities everywhere
                    np.testing.assert_allclose(run(x), reference, rtol=0, atol=1e-5)
                calls = max(10, args.calls * 8 // max(rows, 8))
                t = measure(runs, x, args.rounds, calls)

                def ratio(a, b, t=t):
                    return statistics.median(p / q for p, q in zip(t[a], t[b], strict=True))
                print(f"| {label} | {rows} | "
                      + " | ".join(f"{statistics.median(t[n]):.1f}" for n in ["MLP"] + others)
                      + " | " + " | ".join(f"{ratio('MLP', n):.2f}" for n in others[1:])
                      + f" | {ratio('estimator', 'sklearn'):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
