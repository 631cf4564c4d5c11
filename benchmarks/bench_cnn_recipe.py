"""The CNN recipe of issue 14 in chainrule and in PyTorch, five seeds each: test accuracy
on the homework's digits split (and the same recipe for an MLP, for reference).

Recipe: inputs / 16, images 1x8x8; Conv(32, 3x3, pad 1)-ReLU-Conv(64, 3x3, pad 1)-ReLU-
MaxPool(2)-Dropout(0.3)-Flatten-Affine(128)-ReLU-Dropout(0.3)-Affine(10); PyTorch's
default initialisation (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) on
both sides; Adam, lr 1e-3 with a cosine decay to 0 over all steps (per step); batch 64,
reshuffled every epoch; 60 epochs; cross-entropy. The MLP reference replaces the
convolutions by Affine(64, 256)-ReLU.

    python benchmarks/bench_cnn_recipe.py                    # 5 seeds x 60 epochs x 2 libraries
    python benchmarks/bench_cnn_recipe.py --epochs 20 --seeds 3   # a shorter run
    python benchmarks/bench_cnn_recipe.py --model mlp

Prints one line per run (library, seed, test accuracy, seconds) and a table of mean,
standard deviation, min and max per library.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time

import numpy as np

import chainrule as cr
from chainrule.data import load_homework_digits
from chainrule.optim import cosine_lr


def torch_uniform_init(shape, rng, dtype):
    """PyTorch's default for nn.Linear's weight, for an Affine weight ``(fan_in, fan_out)``."""
    bound = 1.0 / math.sqrt(shape[0])
    return rng.uniform(-bound, bound, size=tuple(shape)).astype(dtype)


def torch_uniform_bias(n_in, n_out, rng, dtype):
    bound = 1.0 / math.sqrt(n_in)
    return rng.uniform(-bound, bound, size=n_out).astype(dtype)


def affine(n_in, n_out):
    return cr.Affine(n_in, n_out, init=torch_uniform_init, bias_init=torch_uniform_bias)


def chainrule_model(kind, seed):
    drop = functools.partial(cr.Dropout, 0.3, rng=seed + 1000)
    if kind == "cnn":
        body = [cr.Unflatten((1, 8, 8)), cr.Conv2D(1, 32, 3, padding=1), cr.ReLU(),
                cr.Conv2D(32, 64, 3, padding=1), cr.ReLU(), cr.MaxPool2D(2), drop(),
                cr.Flatten(), affine(64 * 4 * 4, 128)]
    else:
        body = [affine(64, 256), cr.ReLU(), drop(), affine(256, 128)]
    return cr.Sequential(body + [cr.ReLU(), drop(), affine(128, 10)], rng=seed)


def run_chainrule(kind, seed, data, epochs):
    X_train, X_test, Y_train, Y_test = data
    model = chainrule_model(kind, seed)
    steps = epochs * math.ceil(len(X_train) / 64)
    lr = functools.partial(cosine_lr, base_lr=1e-3, total_steps=steps)
    cr.fit(model, X_train, Y_train, optimizer=cr.Adam(lr=lr), epochs=epochs, batch_size=64,
           rng=seed, progress=False, diagnostics=False)
    return cr.accuracy(Y_test.argmax(axis=1), model.predict_classes(X_test))


def run_torch(kind, seed, data, epochs):
    import torch
    from torch import nn

    X_train, X_test, Y_train, Y_test = data
    torch.manual_seed(seed)
    if kind == "cnn":
        body = [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.3),
                nn.Flatten(), nn.Linear(64 * 4 * 4, 128)]
    else:
        body = [nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 128)]
    model = nn.Sequential(*body, nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    steps = epochs * math.ceil(len(X_train) / 64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    X = torch.tensor(X_train, dtype=torch.float32)
    y = torch.tensor(Y_train.argmax(axis=1))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(X), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(X_test, dtype=torch.float32)).argmax(dim=1).numpy()
    return float(np.mean(pred == Y_test.argmax(axis=1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--libraries", default="chainrule,torch")
    args = parser.parse_args()
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    data = (X_train / 16, X_test / 16, Y_train, Y_test)
    runners = {"chainrule": run_chainrule, "torch": run_torch}
    results: dict = {}
    for library in args.libraries.split(","):
        for seed in range(args.seeds):
            start = time.perf_counter()
            acc = runners[library](args.model, seed, data, args.epochs)
            seconds = time.perf_counter() - start
            results.setdefault(library, []).append(acc)
            print(f"{library:9s} {args.model} seed {seed}: test accuracy {acc:.4f} "
                  f"({seconds:.1f} s)", flush=True)
    print(f"\n{args.model}, {args.epochs} epochs, {args.seeds} seeds\n")
    print("| library | mean | std | min | max |")
    print("|---|---|---|---|---|")
    for library, accs in results.items():
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {library} | {np.mean(accs):.4f} | {std:.4f} | {min(accs):.4f} | "
              f"{max(accs):.4f} |")


if __name__ == "__main__":
    main()
