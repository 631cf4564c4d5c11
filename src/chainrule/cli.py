"""The ``chainrule`` command line tool."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_reproduce(args) -> int:
    from .reproduce import run_homework

    run_homework(epochs=args.epochs, report_every=args.report_every)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Neural networks in NumPy with hand-written backward passes.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    rep = sub.add_parser(
        "reproduce", help="run the homework's two experiments on the digits data",
        description="Train the homework's logistic regression and two-layer ReLU network "
                    "with full-batch gradient descent on scikit-learn's digits, printing the "
                    "training logs and test accuracies in the homework's format.")
    rep.add_argument("--epochs", type=int, default=501, help="gradient steps (default 501)")
    rep.add_argument("--report-every", type=int, default=50,
                     help="print the loss every this many steps (default 50)")
    rep.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
