"""``chainrule train`` (the command line front end of :func:`chainrule.train.fit`) and
``chainrule reproduce`` (the homework's two experiments)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from ._common import (
    EXIT_STATUS,
    CommandError,
    UsageError,
    check_data_flags,
    check_output_dir,
    check_output_file,
    positive_int,
)

__all__ = ["add_train_parser", "add_reproduce_parser", "load_train_files"]


# -- parsers ------------------------------------------------------------------------

def _hidden_sizes(text):
    """``"128,64"`` -> ``[128, 64]`` (argparse type: bad text is a usage error)."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 128,64, got {text!r}")
    return sizes


def _batch_size(text):
    """argparse type: a positive integer, or ``'full'`` (None: full-batch)."""
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    return value


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


def _add_train_model_arguments(tr) -> None:
    """The model, optimizer and training flags of ``chainrule train``."""
    tr.add_argument("--model", choices=["mlp", "logreg"], default="mlp",
                    help="mlp (default) or logreg (one affine layer, zero initial weights)")
    tr.add_argument("--hidden", type=_hidden_sizes, default=[1024], metavar="SIZES",
                    help="hidden layer sizes, comma-separated (default 1024)")
    tr.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"],
                    default="relu", help="hidden activation (default relu)")
    tr.add_argument("--init", default=None, metavar="NAME",
                    help="weight initialiser: xavier, xavier_normal, he, he_uniform, zeros "
                         "(default xavier; zeros for logreg)")
    tr.add_argument("--dropout", type=float, default=0.5, metavar="P",
                    help="dropout after each hidden activation, in [0, 1) (default 0.5)")
    tr.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam",
                    help="default adam")
    tr.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    tr.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                    help="cosine: decay to 0 over all steps (default); constant")
    tr.add_argument("--momentum", type=float, default=0.0,
                    help="SGD momentum in [0, 1) (default 0)")
    tr.add_argument("--weight-decay", type=float, default=None, metavar="L2",
                    help="weight decay (L2 for sgd/adam, decoupled for adamw; default 0, "
                         "adamw 0.01)")
    tr.add_argument("--batch-size", type=_batch_size, default=32, metavar="N",
                    help="rows per step, or 'full' for full-batch gradient descent "
                         "(default 32)")
    tr.add_argument("--epochs", type=int, default=60, help="default 60")
    tr.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                    help="hold out this fraction of the training rows for validation "
                         "(default 0.1 with --early-stopping, else none)")
    tr.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                    help="stop after PATIENCE epochs without a better validation loss and "
                         "keep the best epoch's weights (default 0: off)")
    tr.add_argument("--seed", type=int, default=0,
                    help="seed of the initial weights, dropout, shuffling and validation "
                         "split (default 0)")
    tr.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    tr.add_argument("--no-standardize", dest="standardize", action="store_false",
                    help="feed the raw inputs (the homework did)")
    tr.add_argument("--checkpoint", metavar="PATH",
                    help="save the run's state after every epoch (and on Ctrl-C)")
    tr.add_argument("--resume", action="store_true",
                    help="continue from --checkpoint if it exists")
    tr.add_argument("--quiet", "-q", action="store_true",
                    help="no per-epoch lines (a progress bar on a terminal instead)")
    tr.add_argument("--threads", type=positive_int, default=None, metavar="N",
                    help="BLAS threads (default: 1 for small networks, all for large ones; "
                         "OMP_NUM_THREADS/OPENBLAS_NUM_THREADS are respected)")


def _add_train_file_arguments(p) -> None:
    """--data / --save / --plot and their companions for ``chainrule train``."""
    g = p.add_argument_group(
        "data files, saving and plots",
        "Without --data, train uses the homework's digits split. With --data and no "
        "--test-data, a fixed 25%% of the rows (--test-fraction; drawn with seed 0, so "
        "the same file always gives the same split) is held out as the test set.")
    g.add_argument("--data", metavar="PATH",
                   help="training data: .csv (with --label-column), .npz (arrays X, y) or "
                        "an IDX images file (MNIST layout, gzipped or not)")
    g.add_argument("--openml", metavar="NAME",
                   help="instead of --data, download the OpenML data set NAME (e.g. "
                        "mnist_784) through scikit-learn; needs the network")
    g.add_argument("--label-column", metavar="NAME",
                   help="CSV: the column holding the labels (a name from the header)")
    g.add_argument("--labels", metavar="PATH",
                   help="IDX: the labels file (default: the '*-labels-idx1-ubyte' file "
                        "next to the images)")
    g.add_argument("--test-data", metavar="PATH",
                   help="a separate test file in the same format; default: hold out part "
                        "of --data")
    g.add_argument("--test-labels", metavar="PATH",
                   help="IDX: the labels file of --test-data (default: the "
                        "'*-labels-idx1-ubyte' file next to it)")
    g.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                   help="fraction of --data held out for testing when there is no "
                        "--test-data (default 0.25)")
    g.add_argument("--save", metavar="MODEL.npz",
                   help="save the trained model here (chainrule.io format); input "
                        "standardisation is folded into the first layer, so the file "
                        "takes raw inputs. Its directory must exist and be writable: that "
                        "is checked before training (exit 1 if not)")
    g.add_argument("--plot", metavar="DIR",
                   help="write history.png, confusion_matrix.png and, for image inputs "
                        "(64 or 784 features), first_layer_weights.png to DIR (created if "
                        "needed; checked before training, exit 1 if it is a file or cannot "
                        "be created)")


def add_train_parser(sub) -> None:
    """The ``train`` subcommand of ``sub``."""
    tr = sub.add_parser(
        "train", help="train a network (default: the homework's digits split)",
        description="Train an MLP or a logistic regression with chainrule.train.fit and "
                    "print one line per epoch and the final test accuracy. Inputs are "
                    "standardised by default with the mean and standard deviation of the "
                    "training rows (never the test rows). Ctrl-C stops after writing "
                    "--checkpoint; rerun with --resume to continue.",
        epilog="The defaults (one hidden layer of 1024 ReLU units, dropout 0.5, Adam at "
               "1e-3 with a cosine decay, batch 32, 60 epochs) reach test accuracy 0.98 on "
               "the homework's digits split. Another example: chainrule train --hidden "
               "128,64 --dropout 0 --lr-schedule constant --epochs 50 --early-stopping 5. "
               + EXIT_STATUS)
    _add_train_model_arguments(tr)
    _add_train_file_arguments(tr)
    tr.set_defaults(func=_cmd_train)


# -- reproduce ----------------------------------------------------------------------

def _cmd_reproduce(args) -> int:
    from ..reproduce import run_homework

    run_homework(epochs=args.epochs, report_every=args.report_every)
    return 0


# -- train: checks of the flags, before any work ---------------------------------------

def _make_optimizer(args, lr):
    """The optimizer the flags ask for; ``lr`` a number or a schedule."""
    from ..optim import make_optimizer

    # --weight-decay None (not given) keeps each optimizer's default (AdamW's is 0.01).
    return make_optimizer(args.optimizer, lr=lr, weight_decay=args.weight_decay,
                          momentum=args.momentum if args.optimizer == "sgd" else None)


def _check_train_values(args) -> float:
    """Usage errors (exit 2) in the flags' values; returns the validation fraction
    (--validation-fraction, or its default, which depends on --early-stopping)."""
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.early_stopping < 0:
        raise UsageError(f"--early-stopping must be >= 0, got {args.early_stopping}")
    validation_fraction = args.validation_fraction
    if validation_fraction is None:
        validation_fraction = 0.1 if args.early_stopping else 0.0
    if not 0.0 <= validation_fraction < 1.0:
        raise UsageError(f"--validation-fraction must be in [0, 1), got "
                         f"{validation_fraction}")
    if args.early_stopping and not validation_fraction:
        raise UsageError("--early-stopping needs --validation-fraction > 0 (it watches the "
                         "validation loss)")
    if not 0.0 < args.test_fraction < 1.0:
        raise UsageError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.optimizer != "sgd" and args.momentum:
        raise UsageError("--momentum applies to --optimizer sgd only")
    _check_with_the_library(args)
    return validation_fraction


def _check_with_the_library(args) -> None:
    """The checks the library makes of the same values, reported as usage errors."""
    from .._validation import check_in_interval, check_positive_float
    from ..history import EarlyStopping
    from ..init import get_initializer

    try:
        check_positive_float(args.lr, "--lr")
        if args.weight_decay is not None:
            check_positive_float(args.weight_decay, "--weight-decay", allow_zero=True)
        check_in_interval(args.momentum, "--momentum", 0.0, 1.0)
        check_in_interval(args.dropout, "--dropout", 0.0, 1.0)
        if args.init is not None:
            get_initializer(args.init)
        if args.early_stopping:
            EarlyStopping(args.early_stopping)
        _make_optimizer(args, args.lr)  # whatever the optimizer checks beyond the above
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _check_train_sources(args) -> None:
    """The data flags fit together and fit the data files' formats (exit 2)."""
    has_files = args.data is not None or args.openml is not None
    if args.data is not None and args.openml is not None:
        raise UsageError("give either --data or --openml, not both")
    for flag, value in (("--test-data", args.test_data), ("--label-column", args.label_column),
                        ("--labels", args.labels), ("--test-labels", args.test_labels)):
        if value is not None and not has_files:
            raise UsageError(f"{flag} applies to --data or --openml; without them train "
                             f"uses the homework's digits split")
    if args.openml is not None and args.labels is not None:
        raise UsageError("--labels applies to an IDX --data file, not to --openml")
    if args.test_labels is not None and args.test_data is None:
        raise UsageError("--test-labels needs --test-data (the IDX images it labels)")
    if args.data is not None:
        check_data_flags(args.data, args.label_column, args.labels)
    if args.test_data is not None:
        check_data_flags(args.test_data, args.label_column, args.test_labels,
                         path_flag="--test-data", labels_flag="--test-labels")


def _check_train_destinations(args) -> None:
    """Files to write, before hours of training rather than after (exit 1)."""
    if args.save:
        check_output_file(args.save, "--save")
    if args.plot:
        check_output_dir(args.plot, "--plot")
    if args.checkpoint:
        check_output_file(args.checkpoint, "--checkpoint")


# -- train: data ----------------------------------------------------------------------

def _source_name(args) -> str:
    """How messages and the data line name the training data."""
    openml = getattr(args, "openml", None)
    return args.data if openml is None else f"OpenML {openml!r}"


def _read_train_test(args, source):
    """``(X_train, X_test, y_train, y_test)`` with the labels as in the files."""
    from ..data import fetch_openml, holdout_split, load_file

    if getattr(args, "openml", None) is not None:
        if args.data is not None:
            raise UsageError("give either --data or --openml, not both")
        X, y = fetch_openml(args.openml)
    else:
        X, y = load_file(args.data, args.label_column, labels_path=args.labels)
    if args.test_data is not None:
        X_test, y_test = load_file(args.test_data, args.label_column,
                                   labels_path=getattr(args, "test_labels", None))
        if X_test.shape[1] != X.shape[1]:
            raise CommandError(f"{args.test_data} has {X_test.shape[1]} features but "
                               f"{source} has {X.shape[1]}")
        return X, X_test, y, y_test
    n = X.shape[0]
    n_test = int(round(args.test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise UsageError(f"--test-fraction {args.test_fraction} of the {n} rows of "
                         f"{source} leaves {n - n_test} training and {n_test} test "
                         f"rows; both need at least one (or give --test-data)")
    return holdout_split(X, y, args.test_fraction, rng=0)


def load_train_files(args):
    """``(X_train, X_test, y_train, y_test, classes)`` from --data or --openml (and
    --test-data, else a fixed hold-out of --test-fraction with seed 0).

    ``y_*`` are class indices 0..K-1 into ``classes`` (the sorted training labels).
    ``args`` is read, never changed.
    """
    from ..data import encode_labels

    source = _source_name(args)
    X_train, X_test, y_train, y_test = _read_train_test(args, source)
    classes, train_idx = encode_labels(y_train)
    if len(classes) < 2:
        raise CommandError(f"{source}: the training labels hold a single class "
                           f"{classes.tolist()}; a classifier needs at least two")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if unseen.size:
        raise CommandError(f"test labels {unseen[:5].tolist()} do not occur in the training "
                           f"rows, whose classes are {classes.tolist()}")
    return X_train, X_test, train_idx, np.searchsorted(classes, y_test), classes


@dataclass
class _TrainData:
    """The arrays as the model sees them (scaled, in --dtype) and where they came from."""

    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray  # one-hot
    y_test: np.ndarray  # class indices
    classes: np.ndarray
    source: str
    mean: np.ndarray | None = None  # standardisation, None with --no-standardize
    scale: np.ndarray | None = None


def _load_train_data(args) -> _TrainData:
    """The homework split or the files, standardised with the training rows' statistics."""
    from ..data import load_homework_digits, standardize

    if args.data is None and args.openml is None:
        X_train, X_test, Y_train, Y_test = load_homework_digits()
        y_train, y_test = Y_train.argmax(axis=1), Y_test.argmax(axis=1)
        classes = np.arange(10)
        source = "digits (homework split)"
    else:
        X_train, X_test, y_train, y_test, classes = load_train_files(args)
        source = _source_name(args)
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    mean = scale = None
    if args.standardize:
        X_train, X_test, mean, scale = standardize(X_train, X_test, return_stats=True)
    dtype = np.dtype(args.dtype)
    return _TrainData(X_train.astype(dtype), X_test.astype(dtype),
                      np.eye(len(classes), dtype=dtype)[y_train], y_test, classes, source,
                      mean, scale)


# -- train: model, optimizer, fit ---------------------------------------------------

def _build_model(args, n_features, n_classes, gen):
    from ..models import MLP

    dtype = np.dtype(args.dtype)
    if args.model == "logreg":
        return MLP([n_features, n_classes], init=args.init or "zeros", rng=gen, dtype=dtype)
    return MLP([n_features, *args.hidden, n_classes], activation=args.activation,
               dropout=args.dropout, init=args.init or "xavier", rng=gen, dtype=dtype)


def _build_optimizer(args, n_rows, validation_fraction):
    """The optimizer, its learning rate a cosine schedule over all steps if asked."""
    from functools import partial

    from ..optim import cosine_lr

    n_fit = n_rows - int(np.ceil(validation_fraction * n_rows))
    if n_fit < 1:
        raise UsageError(f"--validation-fraction {validation_fraction} of "
                         f"{n_rows} training rows leaves none to train on")
    bs = n_fit if args.batch_size is None else min(args.batch_size, n_fit)
    total_steps = args.epochs * int(np.ceil(n_fit / bs))
    lr = (partial(cosine_lr, base_lr=args.lr, total_steps=total_steps)
          if args.lr_schedule == "cosine" else args.lr)
    return _make_optimizer(args, lr)


def _print_setup(args, data, model, optimizer) -> None:
    D, K = data.X_train.shape[1], len(data.classes)
    print(f"data: {data.source}, {data.X_train.shape[0]} training rows, "
          f"{data.X_test.shape[0]} test rows, {D} features, {K} classes"
          f"{', standardised' if args.standardize else ''}")
    print(f"model: {args.model} {[D, *([] if args.model == 'logreg' else args.hidden), K]}"
          f"{f' {args.activation}' if args.model == 'mlp' else ''}"
          f"{f', dropout {args.dropout}' if args.model == 'mlp' and args.dropout else ''}, "
          f"{model.num_parameters():,} parameters; {optimizer!r}"
          f"{', cosine schedule' if args.lr_schedule == 'cosine' else ''}, batch size "
          f"{args.batch_size or 'full'}")


class _EpochPrinter:
    """fit callback: one line per epoch; remembers which epochs got their line."""

    def __init__(self):
        self.printed = []  # epochs whose line was (started to be) printed

    def __call__(self, epoch, logs, _model):
        self.printed.append(epoch)
        line = f"epoch {epoch:4d}  loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}"
        if "val_loss" in logs:
            line += f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}"
        print(line + f"  lr {logs['lr']:.2e}  {logs['time']:.2f}s", flush=True)


def _fit(args, model, optimizer, data, validation_fraction, gen, printer):
    """``fit`` with the flags; its checkpoint errors said in terms of the flags."""
    from ..checkpoint import CheckpointEpochsError, CheckpointMismatchError
    from ..train import fit

    try:
        return fit(model, data.X_train, data.Y_train, optimizer=optimizer,
                   epochs=args.epochs, batch_size=args.batch_size,
                   validation_fraction=validation_fraction or None,
                   early_stopping=args.early_stopping or None,
                   callbacks=() if args.quiet else (printer,), rng=gen,
                   progress=args.quiet, checkpoint=args.checkpoint, resume=args.resume,
                   threads=args.threads)
    except CheckpointEpochsError as exc:
        raise UsageError(f"--epochs {exc.epochs} is fewer than the {exc.done} epochs already "
                         f"done in checkpoint {exc.path!r}; give --epochs >= {exc.done} (the "
                         f"total, not the number to add)") from None
    except CheckpointMismatchError as exc:
        if exc.field == "optimizer.lr_schedule" and args.lr_schedule == "cosine":
            raise CommandError(f"{exc} (the cosine schedule spans all --epochs, so resume "
                               f"with the --epochs of the interrupted run)") from None
        raise


# -- train: after fit ---------------------------------------------------------------

def _report_interrupt(args, history, printed) -> None:
    # The epoch line is printed by a callback, before fit commits (saves) the epoch;
    # a Ctrl-C in between discards an epoch whose line is on the screen.
    dropped = [e for e in printed if e >= history.epochs]
    discarded = (f" (the line printed for epoch {dropped[0]} does not count: Ctrl-C "
                 f"came before that epoch was committed, so it was discarded)"
                 if dropped else "")
    where = (f"; the state after them was saved to {args.checkpoint}, rerun with "
             f"--resume to continue" if args.checkpoint else "")
    print(f"chainrule train: interrupted after {history.epochs} complete "
          f"epochs{discarded}{where}", file=sys.stderr)


def _write_plots(folder, model, history, data) -> None:
    """history.png, confusion_matrix.png and, for images, first_layer_weights.png."""
    from ..plots import (
        KNOWN_IMAGE_SHAPES,
        plot_confusion_matrix,
        plot_first_layer_weights,
        plot_history,
    )

    names = [str(c) for c in data.classes.tolist()]
    os.makedirs(folder, exist_ok=True)
    written = [os.path.join(folder, "history.png")]
    plot_history(history, path=written[-1])
    pred = model.predict_proba(data.X_test).argmax(axis=1)
    written.append(os.path.join(folder, "confusion_matrix.png"))
    plot_confusion_matrix([names[k] for k in data.y_test], [names[k] for k in pred],
                          labels=names, path=written[-1])
    if model.n_features in KNOWN_IMAGE_SHAPES:
        written.append(os.path.join(folder, "first_layer_weights.png"))
        plot_first_layer_weights(model, path=written[-1])
    print("wrote " + ", ".join(written))


def _save_model(path, model, data) -> None:
    """Save a model that takes raw inputs (standardisation folded into its first layer)."""
    from .. import io
    from ..models import fold_standardization

    if data.mean is not None:
        fold_standardization(model, data.mean, data.scale)
    io.save(model, path, metadata={"classes": data.classes.tolist()})
    print(f"saved the model to {path}")


def _cmd_train(args) -> int:
    # Flags and files: bad usage exits 2, unusable files 1, all before any work.
    validation_fraction = _check_train_values(args)
    _check_train_sources(args)
    _check_train_destinations(args)
    data = _load_train_data(args)
    # One generator for the weights, dropout, shuffling and the validation split.
    gen = np.random.default_rng(args.seed)
    model = _build_model(args, data.X_train.shape[1], len(data.classes), gen)
    optimizer = _build_optimizer(args, data.X_train.shape[0], validation_fraction)
    _print_setup(args, data, model, optimizer)
    printer = _EpochPrinter()
    t0 = time.perf_counter()
    history = _fit(args, model, optimizer, data, validation_fraction, gen, printer)
    elapsed = time.perf_counter() - t0
    if history.stop_reason == "interrupted":
        _report_interrupt(args, history, printer.printed)
        return 130
    if history.stop_reason == "early_stopping":
        print(f"early stopping after epoch {history.epochs - 1}; kept the weights of epoch "
              f"{history.best_epoch}")
    correct = int(np.sum(model.predict_classes(data.X_test) == data.y_test))
    print(f"trained {history.epochs} epochs in {elapsed:.1f}s")
    print(f"test accuracy = {correct / len(data.y_test):.4f} ({correct}/{len(data.y_test)})")
    if args.plot:
        _write_plots(args.plot, model, history, data)
    if args.save:
        _save_model(args.save, model, data)
    return 0
