"""Run by ``tests/test_sources.py`` in a subprocess: train under a memory cap.

``python memcap_worker.py MODE X.npy y.npy HEADROOM_MB`` imports chainrule, warms up
with a tiny fit, then caps its address space (``RLIMIT_AS``) at what it uses now plus
``HEADROOM_MB``, and then, with MODE ``fit``, trains one epoch on the files through
``open_npy`` and evaluates on them; with MODE ``load`` it reads X whole with
``np.load`` instead, which the cap must refuse; with MODE ``cli`` it runs
``chainrule train --data X.npy --labels y.npy`` for one epoch (warmed up on a small
copy of the files). It prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys

import numpy as np


def vm_size() -> int:
    """Bytes of address space this process uses (what RLIMIT_AS limits)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def warm_blas():
    """One packed matrix product before the cap: OpenBLAS allocates its work buffer (tens
    of MB of address space) on its first product too large for its small-matrix path
    and aborts the process when that fails, while a small network's warm-up fit may
    take the small path only (chainrule splits narrow products so that they do)."""
    a = np.ones((600, 600))
    _ = a @ a


def train_command(x_path, y_path, headroom_mb):
    """``chainrule train --data X.npy --labels y.npy`` for one epoch under the cap,
    after a run on a small copy of the first rows has loaded everything it imports."""
    import os

    from chainrule.cli import main as cli

    folder = os.path.dirname(x_path)
    small = [os.path.join(folder, f"small_{name}.npy") for name in "Xy"]
    for path, big in zip(small, (x_path, y_path), strict=True):
        np.save(path, np.load(big, mmap_mode="r")[:200])
    argv = ["train", "--epochs", "1", "--quiet", "--hidden", "16"]
    if cli(argv + ["--data", small[0], "--labels", small[1]]) != 0:
        raise SystemExit("the warm-up run failed")
    warm_blas()
    cap = vm_size() + int(headroom_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    model = os.path.join(folder, "model.npz")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = cli(argv + ["--data", x_path, "--labels", y_path, "--save", model])
    print(json.dumps({"status": status, "cap": cap, "peak": vm_size(),
                      "stderr": err.getvalue()[-2000:]}))


def main(mode, x_path, y_path, headroom_mb):
    if mode == "cli":
        train_command(x_path, y_path, headroom_mb)
        return
    import chainrule as cr
    from chainrule.data import open_npy

    X, y = open_npy(x_path), open_npy(y_path)
    model = cr.MLP([X.shape[1], 16, 10], rng=0)
    warm = np.random.default_rng(0).normal(size=(64, X.shape[1]))
    cr.fit(cr.MLP([X.shape[1], 16, 10], rng=0), warm, np.eye(10)[np.arange(64) % 10],
           optimizer="adam", epochs=1, batch_size=16, progress=False, rng=0)
    warm_blas()
    cap = vm_size() + int(headroom_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if mode == "load":
        try:
            np.load(x_path)
        except MemoryError:
            print(json.dumps({"memory_error": True}))
            return
        print(json.dumps({"memory_error": False}))
        return
    history = cr.fit(model, X, y, optimizer="adam", epochs=1, batch_size=256, rng=0,
                     progress=False)
    scores = cr.evaluate(model, X, y)
    print(json.dumps({"loss": history["loss"][0], "eval": scores, "cap": cap,
                      "peak": vm_size()}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
