"""Which checks catch the bugs planted in tests/student_layers.py.

``python tests/planted_bugs.py`` prints the caught/missed table; the tests import
:func:`caught` to assert on single bugs.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chainrule as cr  # noqa: E402
from chainrule.gradcheck import check_gradients  # noqa: E402
from chainrule.layers import Affine  # noqa: E402
from chainrule.losses import CategoricalCrossEntropy  # noqa: E402
from student_layers import BUGS, make_layer  # noqa: E402


def layer_check_catches(bug) -> bool:
    """check_layer as a student calls it, with a square (4, 4) batch."""
    layer = make_layer(bug)
    params = [(4,), (4,)] if hasattr(layer, "param_names") else []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cr.check_layer(lambda: make_layer(bug), (4, 4), params)
    except AssertionError:
        return True
    return False


def network(bug, rng=0):
    """Affine(5, 4) -> the student's layer -> Affine(4, 3), cross-entropy, built by hand."""
    random = np.random.default_rng(rng)
    layer = make_layer(bug)
    names = ("gamma", "beta") if hasattr(layer, "param_names") else ()
    params = {"W1": random.standard_normal((5, 4)), "b1": random.standard_normal(4),
              "W2": random.standard_normal((4, 3)), "b2": random.standard_normal(3)}
    if names:
        params["gamma"] = 1 + 0.1 * random.standard_normal(4)
        params["beta"] = 0.1 * random.standard_normal(4)
    layers = [(Affine(), ("W1", "b1")), (layer, names), (Affine(), ("W2", "b2"))]
    return cr.Network(layers, params, CategoricalCrossEntropy())


def network_check_catches(bug) -> bool:
    model = network(bug)
    random = np.random.default_rng(1)
    X = random.standard_normal((7, 5))
    Y = np.eye(3)[random.integers(0, 3, 7)]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = check_gradients(model, X, Y, rng=0)
    except (ValueError, FloatingPointError):
        return True
    return not result.worst < 1e-6


def caught(bug) -> dict:
    return {"check_layer": layer_check_catches(bug),
            "check_gradients": network_check_catches(bug)}


def table() -> str:
    rows = [("bug", "layer", "wrong in", "check_layer", "check_gradients")]
    n_layer = n_net = n_any = 0
    for bug, (layer, where) in BUGS.items():
        c = caught(bug)
        n_layer += c["check_layer"]
        n_net += c["check_gradients"]
        n_any += c["check_layer"] or c["check_gradients"]
        rows.append((bug, layer, where, "caught" if c["check_layer"] else "MISSED",
                     "caught" if c["check_gradients"] else "MISSED"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append(f"caught: check_layer {n_layer}/{len(BUGS)}, check_gradients "
                 f"{n_net}/{len(BUGS)}, either {n_any}/{len(BUGS)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
