"""``chainrule reproduce``: the homework's two experiments, with its printed logs."""

from __future__ import annotations

from ._common import positive_int

__all__ = ["add_reproduce_parser"]


def add_reproduce_parser(sub) -> None:
    """The ``reproduce`` subcommand of ``sub``."""
    rep = sub.add_parser(
        "reproduce", help="run the homework's two experiments on the digits data",
        description="Train the homework's logistic regression and two-layer ReLU network "
                    "with full-batch gradient descent on scikit-learn's digits, printing the "
                    "training logs and test accuracies in the homework's format.")
    rep.add_argument("--epochs", type=positive_int, default=501,
                     help="gradient steps (default 501)")
    rep.add_argument("--report-every", type=positive_int, default=50,
                     help="print the loss every this many steps (default 50)")
    rep.set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args) -> int:
    from ..reproduce import run_homework

    run_homework(epochs=args.epochs, report_every=args.report_every)
    return 0
