"""What ``chainrule train`` runs, from its flags and the data's size: the epoch budget,
batch size, validation rows and early stopping (:func:`plan_run`), and the optimizer
with its learning-rate schedule (:func:`build_optimizer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._architectures import DEFAULT_HIDDEN
from ._common import UsageError

__all__ = ["DEFAULTS", "MOMENTUM_OPTIMIZERS", "LR_SCHEDULES", "Plan", "plan_run",
           "make_optimizer_from_flags", "build_optimizer", "describe_schedule"]

#: The defaults of ``chainrule train`` (evidence: benchmarks/bench_cli_defaults.py).
DEFAULTS: dict[str, Any] = {
    "hidden": DEFAULT_HIDDEN,
    "lr": 2e-3,
    "weight_decay": 1e-4,  # L2; adamw keeps its own 0.01 (decoupled)
    "batch_size": 64,
    "steps": 3000,  # gradient steps the epoch budget aims for
    "min_epochs": 20,
    "max_epochs": 200,
    "validation_fraction": 0.1,
    "min_rows_for_validation": 50,
    "patience": 10,
    # Under the early-stopping patience, so that the rate is cut (after 5 epochs
    # without a better loss) before the run would stop.
    "lr_patience": 4,
    "lr_factor": 0.1,  # PyTorch's ReduceLROnPlateau default
}

#: ``--lr-schedule`` choices and what each does, for the help text.
LR_SCHEDULES = {
    "constant": "the rate stays --lr",
    "cosine": "decays to 0 over all --epochs",
    "onecycle": "the 1cycle policy over all --epochs: up from --lr/25 to --lr over the "
                "first 30%% of the steps, then down to --lr/250000 (PyTorch's OneCycleLR's "
                "rate; the momentum stays --momentum)",
    "plateau": f"cut to {DEFAULTS['lr_factor']:g}x after --lr-patience + 1 epochs in a "
               f"row without a better validation loss (training loss without validation "
               f"rows), as PyTorch's ReduceLROnPlateau",
}


@dataclass(frozen=True)
class Plan:
    """The flags that depend on the data's size, as this run uses them."""

    epochs: int
    batch_size: int | None
    validation_fraction: float
    patience: int  # 0: no early stopping


def plan_run(args, n_rows) -> Plan:
    """--epochs, --batch-size, --validation-fraction and --early-stopping, each its own
    default (which may depend on the number of training rows) unless given."""
    d = DEFAULTS
    fraction = args.validation_fraction
    if fraction is None:
        enough = n_rows >= d["min_rows_for_validation"] or args.early_stopping
        fraction = d["validation_fraction"] if enough else 0.0
    patience = args.early_stopping
    if patience is None:
        patience = d["patience"] if fraction else 0
    n_fit = n_rows - int(np.ceil(fraction * n_rows))
    if n_fit < 1:
        raise UsageError(f"--validation-fraction {fraction} of {n_rows} training rows leaves "
                         f"none to train on")
    batch = None if args.batch_size is None else min(args.batch_size, n_fit)
    epochs = args.epochs
    if epochs is None:
        steps_per_epoch = int(np.ceil(n_fit / (batch or n_fit)))
        epochs = int(np.clip(np.ceil(d["steps"] / steps_per_epoch), d["min_epochs"],
                             d["max_epochs"]))
    return Plan(epochs, batch, fraction, patience)


#: The optimizers ``--momentum`` applies to.
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")


def make_optimizer_from_flags(args, lr):
    """The optimizer the flags ask for; ``lr`` a number or a schedule."""
    from ..optim import make_optimizer

    weight_decay = args.weight_decay
    if weight_decay is None and args.optimizer != "adamw":  # AdamW keeps its own 0.01
        weight_decay = DEFAULTS["weight_decay"]
    return make_optimizer(args.optimizer, lr=lr, weight_decay=weight_decay,
                          momentum=(args.momentum if args.optimizer in MOMENTUM_OPTIMIZERS
                                    else None),
                          clip_norm=args.clip_norm)


def _monitor(plan: Plan) -> str:
    """What the plateau schedule watches: fit records val_loss only when it holds rows
    out (or is given a .npy file's)."""
    return "val_loss" if plan.validation_fraction else "loss"


def _lr(args, n_rows, plan: Plan):
    """--lr under --lr-schedule: a number, a cosine or 1cycle over all steps or a
    plateau cut."""
    if args.lr_schedule == "plateau":
        from ..history import ReduceLROnPlateau

        return ReduceLROnPlateau(args.lr, monitor=_monitor(plan),
                                 factor=DEFAULTS["lr_factor"], patience=lr_patience(args))
    if args.lr_schedule not in ("cosine", "onecycle"):
        return args.lr
    from functools import partial

    from ..schedules import cosine_lr, onecycle_lr

    n_fit = n_rows - int(np.ceil(plan.validation_fraction * n_rows))
    total_steps = plan.epochs * int(np.ceil(n_fit / (plan.batch_size or n_fit)))
    if args.lr_schedule == "onecycle":
        return partial(onecycle_lr, max_lr=args.lr, total_steps=total_steps)
    return partial(cosine_lr, base_lr=args.lr, total_steps=total_steps)


def lr_patience(args) -> int:
    """--lr-patience, or its default."""
    return DEFAULTS["lr_patience"] if args.lr_patience is None else args.lr_patience


def build_optimizer(args, n_rows, plan: Plan):
    """The optimizer, its learning rate under the schedule the flags ask for."""
    return make_optimizer_from_flags(args, _lr(args, n_rows, plan))


def describe_schedule(args, plan: Plan) -> str:
    """The schedule's words in ``train``'s setup line: '' for a constant rate, and for
    cosine and onecycle, which the optimizer's repr spells out (``lr=partial(...)``)."""
    if args.lr_schedule == "plateau":
        return (f", rate cut to {DEFAULTS['lr_factor']:g}x after {lr_patience(args) + 1} "
                f"epochs without a better {_monitor(plan)}")
    return ""
