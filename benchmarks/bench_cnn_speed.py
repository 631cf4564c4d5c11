"""A small CNN's training epoch on MNIST-shaped data: chainrule vs PyTorch eager (CPU),
side by side in one run, one thread each, float32, batch 64.

    python benchmarks/bench_cnn_speed.py                  # 4096 rows, 5 timed epochs
    python benchmarks/bench_cnn_speed.py --rows 60000 --epochs 2
    python benchmarks/bench_cnn_speed.py --model autoencoder

The network (``--model cnn``): Conv(1->16, 3x3, pad 1)-ReLU-MaxPool(2)-Conv(16->32, 3x3,
pad 1)-ReLU-MaxPool(2)-Flatten-Affine(1568, 128)-ReLU-Affine(128, 10), cross-entropy,
Adam 1e-3. ``--model autoencoder``: Conv(1->16, 3x3, stride 2, pad 1)-ReLU-Conv(16->32,
the same)-ReLU-ConvTranspose(32->16, 3x3, stride 2, pad 1, output pad 1)-ReLU-
ConvTranspose(16->1, the same)-Flatten, the mean squared error of the images' own
reconstruction, Adam 1e-3.
The data: synthetic 28x28 images (uniform noise, random labels); only time is measured.
Both libraries run one after the other, each with one untimed warm-up epoch; the
median epoch is reported with the im2col memory chainrule's convolutions hold for one
batch (the matrices cached for the backward pass).
"""

from __future__ import annotations

import os

# One thread for every BLAS / OpenMP pool, set before NumPy and torch load them.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import chainrule as cr  # noqa: E402


def chainrule_cnn(kind="cnn"):
    if kind == "autoencoder":
        return cr.Sequential([
            cr.Unflatten((1, 28, 28)), cr.Conv2D(1, 16, 3, stride=2, padding=1), cr.ReLU(),
            cr.Conv2D(16, 32, 3, stride=2, padding=1), cr.ReLU(),
            cr.ConvTranspose2D(32, 16, 3, stride=2, padding=1, output_padding=1), cr.ReLU(),
            cr.ConvTranspose2D(16, 1, 3, stride=2, padding=1, output_padding=1), cr.Flatten()],
            rng=0, dtype=np.float32, loss="mse")
    return cr.Sequential([
        cr.Unflatten((1, 28, 28)), cr.Conv2D(1, 16, 3, padding=1), cr.ReLU(), cr.MaxPool2D(2),
        cr.Conv2D(16, 32, 3, padding=1), cr.ReLU(), cr.MaxPool2D(2), cr.Flatten(),
        cr.Affine(32 * 7 * 7, 128), cr.ReLU(), cr.Affine(128, 10)], rng=0, dtype=np.float32)


def im2col_bytes(model, batch):
    """Bytes of the im2col matrices the convolutions cache for one batch."""
    shape, total = (model.n_features,), 0
    for (layer, _), out_shape in zip(model.layers, cr.explain.output_shapes(model),
                                     strict=True):
        if hasattr(layer, "workspace"):
            total += layer.workspace(shape) * batch * 4
        shape = out_shape
    return total


def time_chainrule(X, Y, epochs, kind="cnn"):
    model = chainrule_cnn(kind)
    optimizer = cr.Adam(lr=1e-3)
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        cr.fit(model, X, Y, optimizer=optimizer, epochs=1, batch_size=64, rng=epoch,
               progress=False, diagnostics=False)
        if epoch:   # the first is the warm-up
            times.append(time.perf_counter() - start)
    return times, im2col_bytes(model, 64)


def time_torch(X, y, epochs, kind="cnn"):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if kind == "autoencoder":
        model = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Flatten())
        loss = nn.functional.mse_loss
    else:
        model = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        loss = nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt = torch.tensor(X)
    yt = Xt if kind == "autoencoder" else torch.tensor(y)
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        for idx in torch.randperm(len(Xt)).split(64):
            opt.zero_grad()
            loss(model(Xt[idx]), yt[idx]).backward()
            opt.step()
        if epoch:
            times.append(time.perf_counter() - start)
    return times, torch.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model", choices=["cnn", "autoencoder"], default="cnn")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    Y = X if args.model == "autoencoder" else np.eye(10, dtype=np.float32)[y]
    ours, cols = time_chainrule(X, Y, args.epochs, args.model)
    theirs, version = time_torch(X, y, args.epochs, args.model)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{args.model}: numpy {np.__version__}, torch {version}, 1 thread, float32, batch "
          f"64, {args.rows} rows of 1x28x28, median of {args.epochs} epochs\n")
    print("| library | s / epoch | ms / batch | im2col per batch |")
    print("|---|---|---|---|")
    n_batches = -(-args.rows // 64)
    print(f"| chainrule | {a:.2f} | {1000 * a / n_batches:.1f} | {cols / 2**20:.1f} MiB |")
    print(f"| PyTorch eager | {b:.2f} | {1000 * b / n_batches:.1f} | - |")
    print(f"\nchainrule / PyTorch: {a / b:.2f}x")


if __name__ == "__main__":
    main()
