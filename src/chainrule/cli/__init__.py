"""The ``chainrule`` command line tool.

``main`` parses the command line and hands it to a command; the commands live in
:mod:`chainrule.cli.train` (``train``, ``reproduce``) and :mod:`chainrule.cli.models`
(``evaluate``, ``predict``, ``export``), what they share in ``chainrule.cli._common``.
Commands parse flags and call library functions; this module turns their errors into
one line on stderr and an exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .._version import VERSION
from ._common import (
    BROKEN_PIPE_STATUS,
    USER_ERRORS,
    CommandError,
    Parser,
    UsageError,
    report_unknown_flags,
)
from ._distributed import add_distributed_flag, end_ranks, join_ranks
from .models import add_model_parsers
from .reproduce import add_reproduce_parser
from .train import add_train_parser

__all__ = ["main", "build_parser", "CommandError", "UsageError"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``chainrule`` and all its subcommands."""

    parser = Parser(
        prog="chainrule",
        description="Neural networks in NumPy with hand-written backward passes.",
        epilog="Exit status: 0 on success, 1 for a file or data problem, 2 for bad usage, "
               "130 when 'chainrule train' is interrupted, 141 when the reader of standard "
               "output closes it early; see each command's --help.")
    parser.add_argument("--version", action="version", version=f"chainrule {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_reproduce_parser(sub)
    add_train_parser(sub)
    add_distributed_flag(sub.choices["train"])
    add_model_parsers(sub)
    return parser


def _warning_line(command):
    """``warnings.showwarning`` for the command: ``chainrule CMD: Category: message`` on
    stderr, without Python's file, line and source echo."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"chainrule {command}: {category.__name__}: {message}", file=sys.stderr)
    return show


def main(argv=None) -> int:
    """Run the ``chainrule`` command; returns the exit status.

    Bad usage (unknown flags, missing arguments, flag values out of range, flags that
    do not fit the data file) prints one line on stderr naming the flag and returns 2
    (argparse's own errors exit with 2); unreadable files, bad data and unwritable
    destinations print one line on stderr and return 1 (no traceback). Standard output
    closed by its reader (``chainrule predict ... | head``) returns 141, the status of a
    Unix tool ended by SIGPIPE, with nothing on stderr.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # The subcommand reports them, with its own usage and the closest flags.
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        report_unknown_flags(sub.choices[args.command], unknown)
    try:
        with warnings.catch_warnings():  # a warning is a line of the command's own
            warnings.showwarning = _warning_line(args.command)
            args = join_ranks(args)  # --distributed: MPI, rank 0 alone prints and writes
            return args.func(args)
    except UsageError as exc:
        message = " ".join(str(exc).split())
        print(f"chainrule {args.command}: error: {message} (see 'chainrule {args.command} "
              f"--help')", file=sys.stderr)
        return end_ranks(args, 2)
    except KeyboardInterrupt:  # outside fit, which stops cleanly on its own
        print(f"chainrule {args.command}: interrupted", file=sys.stderr)
        return end_ranks(args, 130)
    except BrokenPipeError:
        # The reader went away (`chainrule ... | head`): stop quietly, with the status
        # of a Unix tool that SIGPIPE ends. Standard output now points at /dev/null,
        # so that the interpreter's flush at exit does not fail on the pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"chainrule {args.command}: error: {message}", file=sys.stderr)
        return end_ranks(args, 1)
