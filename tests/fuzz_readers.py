"""Mutation fuzzer over every reader of outside bytes (issue 11, item 6).

Each reader gets a valid seed file; each case mutates it (flipped bytes, truncation,
inserted or duplicated bytes, "interesting" integers written over a random spot) and
reads it under a memory limit and a per-case timeout. Outcomes:

``loaded``   read without error (for a model file: with exactly the saved parameters)
``refused``  the reader's documented error (``ModelFileError`` for a model file;
             ``ModelFileError`` or ``ValueError`` for the others)
``crash``    any other exception (a bug)
``changed``  loaded, but with parameters other than the saved ones (a bug)
``timeout``  the case ran past its time limit (a bug)
``memory``   ``MemoryError`` escaped (a bug)

Run as a script (``python tests/fuzz_readers.py --cases 500``) it prints a JSON table
per reader; ``tests/test_attack.py`` runs it in a subprocess with a memory limit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import struct
import sys
import tempfile
from collections import Counter

import numpy as np

INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
               b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00\x00\x00\x00\x00"]


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``data`` (several for a third of the cases)."""
    out = bytearray(data)
    for _ in range(1 + 2 * (rng.random() < 1 / 3)):
        kind = rng.integers(6)
        pos = int(rng.integers(max(len(out), 1)))
        if kind == 0:                                   # flip bits of a few bytes
            for p in rng.integers(0, max(len(out), 1), rng.integers(1, 5)):
                if out:
                    out[p] ^= 1 << int(rng.integers(8))
        elif kind == 1:                                 # truncate
            del out[pos:]
        elif kind == 2:                                 # insert random bytes
            out[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
        elif kind == 3:                                 # duplicate a chunk
            n = int(rng.integers(1, 256))
            out[pos:pos] = out[pos:pos + n]
        elif kind == 4:                                 # an interesting integer
            value = INTERESTING[rng.integers(len(INTERESTING))]
            out[pos:pos + len(value)] = value
        else:                                           # a random byte
            if out:
                out[pos % len(out)] = int(rng.integers(256))
    return bytes(out)


# -- the readers and their seed files ------------------------------------------------

def _seed_model(folder):
    import chainrule as cr
    model = cr.MLP([6, 5, 3], rng=0)
    path = os.path.join(folder, "seed_model.npz")
    cr.io.save(model, path)
    return path, model.params


def _read_model(path, expected):
    import chainrule as cr
    loaded = cr.io.load(path)
    params = getattr(loaded, "params", None)
    same = params is not None and set(params) == set(expected) and all(
        np.array_equal(params[k], expected[k]) for k in expected)
    return "loaded" if same else "changed"


def _fit_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4))
    return X, np.eye(3)[rng.integers(0, 3, 20)]


def _fit(path, epochs, resume):
    import chainrule as cr
    X, Y = _fit_problem()
    return cr.fit(cr.MLP([4, 5, 3], rng=0), X, Y, optimizer=cr.Adam(lr=1e-2),
                  epochs=epochs, batch_size=8, rng=1, checkpoint=path, resume=resume,
                  progress=False)


def _seed_checkpoint(folder):
    path = os.path.join(folder, "seed_ck.npz")
    _fit(path, 2, False)
    return path, None


def _journal_of(path):
    from chainrule._fileformat import read_archive
    token = read_archive(path)[1]["history"]["journal"]["token"]
    return f"{path}.{token}.history"


def _read_checkpoint(path, expected):
    _fit(path, 3, True)
    return "loaded"


def _seed_csv(folder):
    path = os.path.join(folder, "seed.csv")
    with open(path, "w") as fh:
        fh.write("a,b,label\n1.5,2,x\n-3,4e2,y\n\"5\",6,x\n7,8,z\n")
    return path, None


def _read_csv(path, expected):
    from chainrule.data import load_csv
    load_csv(path, "label")
    return "loaded"


def _seed_npz(folder):
    path = os.path.join(folder, "seed_data.npz")
    np.savez(path, X=np.arange(12.0).reshape(4, 3), y=np.array([0, 1, 0, 1]))
    return path, None


def _read_npz(path, expected):
    from chainrule.data import load_npz
    load_npz(path)
    return "loaded"


def _seed_idx(folder):
    images = os.path.join(folder, "seed-images-idx3-ubyte")
    with open(images, "wb") as fh:
        fh.write(struct.pack(">HBBIII", 0, 8, 3, 4, 2, 2) + bytes(range(16)))
    return images, None


def _read_idx(path, expected):
    from chainrule.data import load_idx
    load_idx(path)
    return "loaded"


#: name -> (make the seed file, read one file, file the mutation goes into)
READERS = {
    "model": (_seed_model, _read_model, None),
    "checkpoint": (_seed_checkpoint, _read_checkpoint, None),
    "journal": (_seed_checkpoint, _read_checkpoint, _journal_of),
    "csv": (_seed_csv, _read_csv, None),
    "npz": (_seed_npz, _read_npz, None),
    "idx": (_seed_idx, _read_idx, None),
}


def fuzz(reader: str, cases: int, seed: int = 0, timeout_s: int = 10) -> dict:
    """Run ``cases`` mutated files through ``reader``; count the outcomes."""
    from chainrule._fileformat import ModelFileError
    make, read, target_of = READERS[reader]
    counts: Counter = Counter()
    failures = []
    rng = np.random.default_rng(seed)
    signal.signal(signal.SIGALRM, _on_alarm)
    with tempfile.TemporaryDirectory() as folder:
        seed_path, expected = make(folder)
        # The mutated file replaces the target between cases; keep the seed's bytes.
        target = target_of(seed_path) if target_of else seed_path
        files = {p: open(p, "rb").read() for p in {seed_path, target}}
        for case in range(cases):
            for p, data in files.items():
                with open(p, "wb") as fh:
                    fh.write(data)
            with open(target, "wb") as fh:
                fh.write(mutate(files[target], rng))
            signal.alarm(timeout_s)
            try:
                outcome = read(seed_path, expected)
            except _Timeout:
                outcome = "timeout"
            except MemoryError:
                outcome = "memory"
            except ModelFileError:
                outcome = "refused"
            except ValueError as exc:
                # A model file's one documented refusal is ModelFileError.
                outcome = "crash" if reader == "model" else "refused"
                if outcome == "crash":
                    failures.append(f"case {case}: ValueError: {exc}"[:300])
            except Exception as exc:  # noqa: BLE001 - any other type is the finding
                outcome = "crash"
                failures.append(f"case {case}: {type(exc).__name__}: {exc}"[:300])
            finally:
                signal.alarm(0)
            counts[outcome] += 1
    return {"cases": cases, **dict(counts), "failures": failures[:5]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--readers", default=",".join(READERS))
    args = parser.parse_args(argv)
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    table = {r: fuzz(r, args.cases, args.seed) for r in args.readers.split(",")}
    json.dump(table, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
