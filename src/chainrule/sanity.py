"""Checks worth running before a long training run, in one call: :func:`sanity_check`.

They follow the usual advice for training neural networks (CS231n's "sanity checks"):

1. **Initial loss close to ln K.** A freshly initialised classifier should be unsure:
   softmax of small logits is close to uniform, so the cross-entropy is close to
   ``ln K``. A much larger value means badly scaled inputs or initial weights (the
   homework's network starts at 14.3 on the raw 0..16 pixels); a much smaller one, a
   model that was already trained. Passes when
   ``|loss - ln K| <= 0.5``.
2. **Weight decay raises the loss.** Trained on the same small subset for the same
   number of steps, a copy with strong L2 weight decay must end with a higher data loss
   than a copy without: the penalty keeps the weights from fitting. If not, the
   decay never reaches the update.
3. **The model can overfit a tiny subset.** With no regularisation, a network with
   enough capacity drives the loss on ~20 rows close to zero (for probability rows, soft
   targets, or with label smoothing, close to the targets' entropy, the least
   cross-entropy any model reaches). If it cannot, something is wrong with the forward
   pass, the gradients or the optimizer.
4. **Gradients pass a finite-difference check.** Central differences on a random
   sample of the entries of every parameter, on a float64 copy of the model, worst
   relative error (as :func:`chainrule.gradcheck.relative_error`) below 1e-6, in
   evaluation and (for layers whose modes differ) training mode. A failure where ReLU
   inputs sit on the kink at 0 (a zero-initialised layer) is reported as that, not as
   a gradient bug: finite differences mean nothing there.

Every check works on deep copies: the model given is never modified, nor are the
random generators of its Dropout layers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ._validation import check_rng
from .fitargs import check_network
from .gradcheck import check_gradients
from .layers import Dropout, LeakyReLU, ReLU
from .losses import CategoricalCrossEntropy
from .optim import Adam
from .train import evaluate, fit

__all__ = ["sanity_check", "SanityReport", "SanityCheckResult"]

#: Settings of the small runs behind checks 2 and 3.
_SUBSET_ROWS = 20
_STEPS = 300
_LR = 1e-2
_WEIGHT_DECAY = 0.1
#: Losses this small leave nothing for weight decay to raise (a saturated softmax).
_NO_LOSS = 1e-12
#: Logits with standard deviation s around 0 raise the expected cross-entropy above
#: ln K by about s**2 / 2; allowing 0.5 accepts initial logits of spread up to ~1.
_LN_K_TOLERANCE = 0.5


@dataclass
class SanityCheckResult:
    """One check: its name, whether it passed, what was measured and the bar it had to meet."""

    name: str
    passed: bool
    value: float
    threshold: str
    detail: str = ""


class SanityReport:
    """The outcome of :func:`sanity_check`: a list of :class:`SanityCheckResult`.

    ``report.passed`` is True when every check passed; ``str(report)`` is a table;
    ``report[name]`` looks a check up by name.
    """

    def __init__(self, checks):
        self.checks = list(checks)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def __getitem__(self, name) -> SanityCheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks are {[c.name for c in self.checks]}")

    def __iter__(self):
        return iter(self.checks)

    def __len__(self):
        return len(self.checks)

    def as_dict(self) -> dict:
        return {c.name: {"passed": c.passed, "value": c.value, "threshold": c.threshold,
                         "detail": c.detail} for c in self.checks}

    def __repr__(self):
        return f"SanityReport(passed={self.passed}, checks={[c.name for c in self.checks]})"

    def __str__(self):
        rows = [("check", "result", "measured", "threshold")]
        rows += [(c.name, "pass" if c.passed else "FAIL", f"{c.value:.4g}", c.threshold)
                 for c in self.checks]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"  {c.name}: {c.detail}" for c in self.checks if c.detail]
        lines.append("all checks passed" if self.passed else
                     f"{sum(not c.passed for c in self.checks)} of {len(self.checks)} "
                     f"checks failed")
        return "\n".join(lines)


def _copy_without_dropout(model):
    clone = copy.deepcopy(model)
    for layer, _ in clone.layers:
        if isinstance(layer, Dropout):
            layer.p = 0.0  # the small runs measure fitting power, not regularisation
    return clone


def _train_subset(model, X, Y, weight_decay):
    clone = _copy_without_dropout(model)
    fit(clone, X, Y, optimizer=Adam(lr=_LR, weight_decay=weight_decay), epochs=_STEPS,
        progress=False, diagnostics=False)
    return evaluate(clone, X, Y)["loss"]


def _initial_loss_check(init_loss, k) -> SanityCheckResult:
    ln_k = math.log(k)
    tol = _LN_K_TOLERANCE
    passed = abs(init_loss - ln_k) <= tol
    if passed:
        hint = ""
    elif init_loss > ln_k:
        hint = (f"ln {k} = {ln_k:.4f}; a far larger loss usually means unscaled inputs or "
                f"too large initial weights")
    else:  # below chance: the model already predicts these rows (a trained one)
        hint = (f"ln {k} = {ln_k:.4f}; a far smaller loss means the model already fits "
                f"these rows: run the checks on a freshly initialised model")
    return SanityCheckResult("initial loss ~ ln K", passed, init_loss,
                             f"|loss - {ln_k:.4f}| <= {tol:.4f}", hint)


def _least_loss(loss, Y, k: int) -> float:
    """The least cross-entropy any logits reach on ``Y``: the mean entropy
    ``-sum_k T log T`` (``0 log 0 = 0``) of the targets ``T`` the loss trains against,
    ``(1 - eps) Y + eps / K`` with label smoothing. 0 for one-hot rows and class indices
    without smoothing; above 0 for soft targets, which no model fits to a loss of 0."""
    eps = loss.label_smoothing
    if Y.ndim == 1 and not eps:
        return 0.0
    T = (1 - eps) * (np.eye(k)[Y] if Y.ndim == 1 else Y) + eps / k
    return float(-np.sum(T * np.log(np.where(T > 0, T, 1))) / T.shape[0])


def _subset_checks(model, initial, Xs, Ys, is_classifier) -> list[SanityCheckResult]:
    """Checks 2 and 3, from the same two small runs on the subset ``(Xs, Ys)``."""
    # + 0.0: a saturated cross-entropy is -0.0, which would print as "-0"
    plain = _train_subset(model, Xs, Ys, 0.0) + 0.0
    decayed = _train_subset(model, Xs, Ys, _WEIGHT_DECAY) + 0.0
    rows = Xs.shape[0]
    start = evaluate(initial, Xs, Ys)["loss"]
    bar = (0.05 + _least_loss(model.loss, Ys, model.n_outputs) if is_classifier
           else 0.01 * start)
    detail = (f"loss after {_STEPS} steps on {rows} rows: {plain:.4g} without, {decayed:.4g} "
              f"with weight_decay={_WEIGHT_DECAY}")
    if max(plain, decayed) <= _NO_LOSS:
        detail = (f"could not measure, not evidence against weight decay: the loss on "
                  f"{rows} rows is already 0 after {_STEPS} steps with and without "
                  f"weight_decay={_WEIGHT_DECAY} (saturated logits: unscaled inputs or "
                  f"too large initial weights?): standardise the inputs and check again")
    return [
        SanityCheckResult("weight decay raises loss", bool(decayed > plain),
                          decayed - plain + 0.0, "> 0", detail),
        SanityCheckResult(
            "overfits small subset", bool(plain < bar), plain, f"< {bar:.4g}",
            f"loss on {rows} rows went from {start:.4g} to {plain:.4g} in {_STEPS} "
            f"full-batch Adam steps")]


def _on_the_kink(model, X, eps=1e-6) -> list:
    """``(layer index, count, total)`` for each ReLU / LeakyReLU with inputs within
    ``eps`` of 0, where finite differences straddle the kink and mean nothing."""
    found, previous = [], X
    for i, layer, _, out in model.walk(X, checked=True):
        if isinstance(layer, (ReLU, LeakyReLU)):
            count = int(np.count_nonzero(np.abs(previous) <= eps))
            if count:
                found.append((i, count, previous.size))
        previous = out
    return found


def _kink_cause(model, X) -> str:
    """Why ReLU inputs sit at 0: an earlier ReLU layer off for every row (a large
    negative bias, with random weights), which zeroes every later layer's input, or
    weights that are all zero."""
    previous, before = X, None
    for i, layer, names, out in model.walk(X, checked=True):
        if isinstance(layer, (ReLU, LeakyReLU)) and before and len(before) > 1 \
                and (previous < 0).all():
            weights, bias = (model.params[n] for n in before[:2])
            if weights.any() and bias.min() < 0:
                return (f"every unit of layer {i} is off for these rows, its weights "
                        f"{before[0]} random but its bias {before[1]} as low as "
                        f"{bias.min():.3g}, so every later input is 0: start the biases at "
                        f"0 (or small)")
        previous, before = out, names
    zeros = [k for k, p in model.params.items() if p.ndim >= 2 and not p.any()]
    if zeros:
        return f"the weights {', '.join(zeros)} are all zero: initialise them randomly"
    return ("the weights are not all zero, so these inputs are 0 by chance or from rows of "
            "zeros with a bias of 0: try other rows (another rng)")


def _gradient_check(model, X, Y, random) -> SanityCheckResult:
    grad_rows = np.sort(random.choice(X.shape[0], size=min(10, X.shape[0]), replace=False))
    probe = _copy_without_dropout(model)
    probe.params = {k: v.astype(np.float64) for k, v in probe.params.items()}
    # class indices stay integers
    Xg = X[grad_rows].astype(np.float64)
    Yg = Y[grad_rows].astype(np.float64 if Y.ndim == 2 else Y.dtype)
    result = check_gradients(probe, Xg, Yg, sample=8, rng=random)
    detail = (f"worst in {result.worst_name}; central differences, eps 1e-6, float64, "
              f"{len(grad_rows)} rows")
    kinks = _on_the_kink(probe, Xg) if result.worst >= 1e-6 else []
    if kinks:
        where = ", ".join(f"{count} of the {total} inputs of layer {i}" if count < total
                          else f"all {total} inputs of layer {i}" for i, count, total in kinks)
        detail = (f"not evidence of a gradient bug: {where} lie on the ReLU kink at 0, "
                  f"where finite differences are meaningless; {_kink_cause(probe, Xg)} "
                  f"and check again ({detail})")
    return SanityCheckResult("gradient check", bool(result.worst < 1e-6), result.worst,
                             "< 1e-06", detail)


def sanity_check(model, X, Y, *, rng=None) -> SanityReport:
    """Run the four pre-training checks of the module notes on ``model`` and ``(X, Y)``.

    Parameters
    ----------
    model : Network
        Left unchanged: every check works on a deep copy.
    X : array_like, shape (N, D)
        Training inputs, prepared as they will be for training (standardised, ...).
    Y : array_like, shape (N, K) or (N,)
        One-hot or probability rows, or integer class indices (or regression targets:
        the ln K check is then left out).
    rng : None, int or numpy.random.Generator
        Chooses the subset of rows (at most 20) and the parameter entries checked.

    Returns
    -------
    SanityReport
        Checks named ``"initial loss ~ ln K"`` (classifiers only),
        ``"weight decay raises loss"``, ``"overfits small subset"`` and
        ``"gradient check"``.

    Notes
    -----
    Checks 2 and 3 train copies of the model (Dropout switched off) with full-batch
    Adam (lr 1e-2) for 300 steps on the subset; check 2 adds ``weight_decay=0.1``. The
    overfit bar is a loss below 0.05 plus the mean entropy of the subset's targets (as
    label smoothing makes them; 0 for one-hot rows and class indices without it) for
    cross-entropy, below 1% of the initial subset loss for mean squared error. Check 4
    uses 8 random entries per parameter array on at most 10 rows, in float64.
    """
    check_network(model)
    X, Y = model.check_XY(X, Y)
    random = check_rng(rng)
    is_classifier = isinstance(model.loss, CategoricalCrossEntropy)
    initial = _copy_without_dropout(model)
    checks = []
    if is_classifier:
        checks.append(_initial_loss_check(evaluate(initial, X, Y)["loss"], model.n_outputs))
    rows = np.sort(random.choice(X.shape[0], size=min(_SUBSET_ROWS, X.shape[0]),
                                 replace=False))
    checks += _subset_checks(model, initial, X[rows], Y[rows], is_classifier)
    checks.append(_gradient_check(model, X, Y, random))
    return SanityReport(checks)
