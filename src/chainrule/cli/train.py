"""``chainrule train``: the command line front end of :func:`chainrule.train.fit`."""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np

from ..optim import OPTIMIZERS
from ._architectures import (
    activation,
    add_architecture_arguments,
    build_model,
    check_cnn_flags,
    check_task_loss,
    describe_cnn,
    hidden_sizes,
)
from ._common import (
    TRAIN_EXIT_STATUS,
    CommandError,
    UsageError,
    check_data_flags,
    check_output_dir,
    check_output_file,
    data_kind,
    positive_int,
)
from ._plan import (
    DEFAULTS,
    LR_SCHEDULES,
    MOMENTUM_OPTIMIZERS,
    Plan,
    build_optimizer,
    describe_schedule,
    make_optimizer_from_flags,
    plan_run,
)
from ._traindata import (
    AUTO_REGRESSION_MIN_DISTINCT,
    TrainData,
    check_save_test_name,
    held_out_fraction,
    is_npy,
    load_train_data,
    load_train_files,
    validation_views,
)
from ._trainoutput import save_files, test_score, write_plots_keeping_the_model

__all__ = ["add_train_parser", "load_train_files", "DEFAULTS"]

# -- parsers ------------------------------------------------------------------------

def _hidden_sizes(text):
    """``"128,64"`` -> ``[128, 64]`` (argparse type: bad text is a usage error)."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:  # also an empty item, as in "64,,32" or "64,"
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
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got "
                                         f"{text!r}") from None


def _add_train_model_arguments(tr) -> None:
    """The model, optimizer and training flags of ``chainrule train``."""
    d = DEFAULTS
    tr.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                    help="auto (default): regression when the labels are decimal numbers "
                         f"with more than {AUTO_REGRESSION_MIN_DISTINCT} distinct values, or "
                         "as many integers, most on one row each (prices, counts), else "
                         "classification (--loss picks each one's loss)")
    tr.add_argument("--model", choices=["mlp", "logreg", "cnn"], default="mlp", help="mlp "
                    "(default), logreg (one affine layer; zero initial weights unless "
                    "--init; no --hidden, --activation or --dropout) or cnn")
    add_architecture_arguments(tr)
    # None when not given, so that logreg can refuse them only when the user gave them.
    tr.add_argument("--hidden", type=_hidden_sizes, default=None, metavar="SIZES",
                    help=f"hidden layer sizes, comma-separated (default "
                         f"{','.join(map(str, d['hidden']))}; mlp and cnn)")
    tr.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"],
                    default=None, help="hidden activation (default relu; mlp and cnn)")
    tr.add_argument("--init", default=None, metavar="NAME",
                    help="initialiser of the weights (biases start at zero): xavier, "
                         "xavier_normal, he, he_uniform or zeros (default xavier for mlp, "
                         "zeros for logreg; not for cnn)")
    tr.add_argument("--dropout", type=float, default=0.0, metavar="P",
                    help="dropout after each hidden activation (cnn: also after the "
                         "flattened feature maps), in [0, 1) (default 0)")
    tr.add_argument("--class-weight", choices=["balanced"], default=None,
                    help="classification: weigh each training row by n / (K * rows of its "
                         "class), scikit-learn's class_weight='balanced', so that a rare "
                         "class counts as much as a common one")
    tr.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam",
                    help="default %(default)s")
    tr.add_argument("--lr", type=float, default=d["lr"],
                    help="learning rate (default %(default)s)")
    tr.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default="constant",
                    help="; ".join(f"{k}: {v}" for k, v in LR_SCHEDULES.items())
                    + " (default constant)")
    tr.add_argument("--lr-patience", type=int, default=None, metavar="EPOCHS",
                    help=f"--lr-schedule plateau: epochs without improvement before a cut "
                         f"(default {d['lr_patience']}, after {d['lr_patience'] + 1} in a row)")
    tr.add_argument("--momentum", type=float, default=0.0,
                    help=f"momentum of {'/'.join(MOMENTUM_OPTIMIZERS)}, in [0, 1] (default 0)")
    tr.add_argument("--weight-decay", type=float, default=None, metavar="L2",
                    help=f"weight decay (L2, decoupled for adamw; default "
                         f"{d['weight_decay']}, adamw 0.01)")
    tr.add_argument("--clip-norm", type=float, default=None, metavar="NORM",
                    help="clip the gradients' joint L2 norm to NORM before each step")
    tr.add_argument("--batch-size", type=_batch_size, default=d["batch_size"], metavar="N",
                    help="rows per step (at most the training rows), or 'full' for "
                         "full-batch gradient descent (default %(default)s)")
    tr.add_argument("--epochs", type=positive_int, default=None,
                    help=f"the most epochs to train (default: about {d['steps']} gradient "
                         f"steps, between {d['min_epochs']} and {d['max_epochs']} epochs)")
    tr.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                    help=f"hold out this fraction of the training rows for validation "
                         f"(default {d['validation_fraction']} with at least "
                         f"{d['min_rows_for_validation']} training rows, else 0)")
    tr.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                    help=f"stop after PATIENCE epochs without a better validation loss and "
                         f"keep the best epoch's weights (default {d['patience']} when "
                         f"there are validation rows; 0: off)")
    tr.add_argument("--seed", type=int, default=0,
                    help="seed of the initial weights, dropout, shuffling and validation "
                         "split (default 0)")
    tr.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="default %(default)s")
    tr.add_argument("--no-standardize", dest="standardize", action="store_false",
                    help="feed the raw inputs (the homework did)")
    tr.add_argument("--checkpoint", metavar="PATH",
                    help="save the run's state after every epoch (and on Ctrl-C)")
    tr.add_argument("--resume", action="store_true",
                    help="continue from --checkpoint if it exists")
    out = tr.add_mutually_exclusive_group()
    out.add_argument("--verbose", "-v", action="store_true",
                     help="one line per epoch (the default when standard output is not a "
                          "terminal; on a terminal the default is a progress bar, or the "
                          "lines without tqdm)")
    out.add_argument("--quiet", "-q", action="store_true",
                     help="no per-epoch output at all")
    tr.add_argument("--threads", type=positive_int, default=None, metavar="N", help="BLAS "
                    "threads (default: 1 for small networks, all for large; OMP_NUM_THREADS/"
                    "OPENBLAS_NUM_THREADS are respected)")


def _add_train_file_arguments(p) -> None:
    """--data / --save / --plot and their companions for ``chainrule train``."""
    g = p.add_argument_group(
        "data files, saving and plots",
        "Without --data, train uses the homework's digits split. With --data and no "
        "--test-data, a fixed 25% of the rows (--test-fraction; drawn with seed 0, so "
        "the same file always gives the same split) is held out as the test set.")
    g.add_argument("--data", metavar="PATH",
                   help="training data: .csv or .tsv (with --label-column), .npz (arrays X, y), "
                        "an IDX images file (MNIST layout, gzipped or not) or a 2-D .npy "
                        "file (with --labels), which is read a block of rows at a time, "
                        "never whole (larger than memory is fine)")
    g.add_argument("--openml", metavar="NAME",
                   help="instead of --data, download the OpenML data set NAME (e.g. "
                        "mnist_784) through scikit-learn; needs the network")
    g.add_argument("--label-column", metavar="NAME",
                   help="CSV: the column holding the labels (a name from the header)")
    g.add_argument("--ignore-columns", type=_column_names, default=None, metavar="NAMES",
                   help="CSV: columns that are not features (an ID, free text), by header "
                        "name, comma-separated; the model file remembers them, and predict "
                        "and evaluate skip them too")
    g.add_argument("--categorical", type=_column_names, default=None, metavar="NAMES",
                   help="CSV: columns to one-hot encode although they hold numbers (codes "
                        "such as a class 1/2/3 or a zip code; compared by value: 1 is "
                        "1.0), "
                        "by header name, comma-separated; a column of text is encoded "
                        "anyway")
    g.add_argument("--impute", action="store_true",
                   help="CSV: fill missing feature cells (empty, NA, NaN, NULL, ... as "
                        "pandas reads them) instead of refusing them: a number with its "
                        "column's median over the training rows, a cell of a text column "
                        "as no category (all its one-hot columns 0); the model file keeps "
                        "the medians, and predict and evaluate fill new rows alike")
    g.add_argument("--labels", metavar="PATH",
                   help="IDX: the labels file (default: the '*-labels-idx1-ubyte' file "
                        "next to the images); .npy: a 1-D .npy file of one label per row")
    g.add_argument("--test-data", metavar="PATH",
                   help="a separate test file in the same format; default: hold out part "
                        "of --data")
    g.add_argument("--test-labels", metavar="PATH",
                   help="IDX: the labels file of --test-data (default: the "
                        "'*-labels-idx1-ubyte' file next to it); .npy: needed")
    g.add_argument("--test-fraction", type=float, default=None, metavar="F",
                   help="fraction of --data held out for testing when there is no "
                        "--test-data (default 0.25)")
    g.add_argument("--save", metavar="MODEL.npz",
                   help="save the trained model here (chainrule.io format, not ONNX: "
                        "convert it with 'chainrule export') with its "
                        "feature names, label column and classes; input (and regression "
                        "target) scaling is folded into the network, so the file takes "
                        "raw inputs. Checked before training (exit 1 if not writable)")
    g.add_argument("--save-test", metavar="PATH",
                   help="write the test rows (held out, never trained on) here, in the "
                        "format the name says: .csv or .tsv (gzipped for .csv.gz, .tsv.gz) "
                        "with the header and label column, or .npz with X and y; ready for "
                        "'chainrule evaluate' (not for a .npy --data)")
    g.add_argument("--plot", metavar="DIR",
                   help="write history.png, diagnostics.png (update ratios, gradient "
                        "norms, dead ReLUs), confusion_matrix.png (classification) and, "
                        "for image inputs, first_layer_weights.png (an mlp's or logreg's "
                        "weights per unit, for 64 or 784 features; a cnn's first filters, "
                        "for one-channel images) "
                        "to DIR (created if needed). matplotlib and DIR are checked before "
                        "training; the model is saved before plotting")


_DEFAULTS_EPILOG = (
    "Defaults: one hidden layer of {hidden} ReLU units, no dropout, Adam at {lr} with L2 "
    "weight decay {weight_decay}, batches of {batch_size} rows; {validation_fraction:.0%} "
    "of the training rows (when there are at least {min_rows_for_validation}) are held "
    "out for validation, and training stops after {patience} epochs without a better "
    "validation loss, keeping the best epoch's weights. The epoch budget scales with the "
    "data: about {steps} gradient steps, at least {min_epochs} and at most {max_epochs} "
    "epochs. Each flag you give replaces only its own default. These were chosen on "
    "several public tables (see benchmarks/README.md), where they match scikit-learn's "
    "MLPClassifier/MLPRegressor defaults in score (on small tables the fit alone is "
    "slower than scikit-learn's). ")


def add_train_parser(sub) -> None:
    """The ``train`` subcommand of ``sub``."""
    tr = sub.add_parser(
        "train", help="train a network (default: the homework's digits split)",
        description="Train an MLP, a CNN or a logistic regression with chainrule.train.fit, "
                    "classifying or regressing, and print the test accuracy (or RMSE, "
                    "MAE and R²). Inputs are standardised by default with the mean and "
                    "standard deviation of the training rows (never the test rows), and "
                    "so are regression targets. Ctrl-C stops after writing --checkpoint; "
                    "rerun with --resume to continue.",
        epilog=_DEFAULTS_EPILOG.format(**DEFAULTS) + TRAIN_EXIT_STATUS)
    _add_train_model_arguments(tr)
    _add_train_file_arguments(tr)
    tr.set_defaults(func=_cmd_train)


# -- train: checks of the flags, before any work ---------------------------------------

def _check_train_values(args) -> None:
    """Usage errors (exit 2) in the flags' values."""
    if args.task != "auto":   # (with --task auto, once the labels tell the task)
        check_task_loss(args.loss, args.task)
    if args.early_stopping is not None and args.early_stopping < 0:
        raise UsageError(f"--early-stopping must be >= 0, got {args.early_stopping}")
    fraction = args.validation_fraction
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise UsageError(f"--validation-fraction must be in [0, 1), got {fraction}")
    if args.early_stopping and fraction == 0.0:
        raise UsageError("--early-stopping needs --validation-fraction > 0 (it watches the "
                         "validation loss)")
    if args.test_fraction is not None and args.test_data is not None:
        raise UsageError("--test-fraction applies without --test-data (it holds out part "
                         "of --data); with --test-data every --data row trains")
    if not 0.0 < held_out_fraction(args) < 1.0:
        raise UsageError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.lr_patience is not None and args.lr_schedule != "plateau":
        raise UsageError("--lr-patience applies to --lr-schedule plateau")
    if args.lr_patience is not None and args.lr_patience < 0:
        raise UsageError(f"--lr-patience must be >= 0, got {args.lr_patience}")
    if args.optimizer not in MOMENTUM_OPTIMIZERS and args.momentum:
        raise UsageError(f"--momentum applies to --optimizer "
                         f"{' or '.join(MOMENTUM_OPTIMIZERS)} only")
    for flag, value in (("--dropout", args.dropout), ("--hidden", args.hidden),
                        ("--activation", args.activation)):
        if args.model == "logreg" and value:
            raise UsageError(f"{flag} applies to --model mlp (logreg has no hidden layer)")
    check_cnn_flags(args)
    _check_with_the_library(args)


def _check_with_the_library(args) -> None:
    """The checks the library makes of the same values, reported as usage errors."""
    from .._validation import check_in_interval, check_positive_float
    from ..history import EarlyStopping
    from ..init import get_initializer

    try:
        check_positive_float(args.lr, "--lr")
        if args.weight_decay is not None:
            check_positive_float(args.weight_decay, "--weight-decay", allow_zero=True)
        if args.clip_norm is not None:
            check_positive_float(args.clip_norm, "--clip-norm")
        check_in_interval(args.momentum, "--momentum", 0.0, 1.0, high_closed=True)
        check_in_interval(args.dropout, "--dropout", 0.0, 1.0)
        if args.init is not None:
            get_initializer(args.init)
        if args.early_stopping:
            EarlyStopping(args.early_stopping)
        make_optimizer_from_flags(args, args.lr)  # whatever the optimizer checks beyond the above
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
        _check_column_flags(args)
    elif args.ignore_columns or args.categorical or args.impute:
        flag = ("ignore-columns" if args.ignore_columns else "categorical" if
                args.categorical else "impute")
        raise UsageError(f"--{flag} applies to a CSV --data file")
    if args.save_test and is_npy(args):
        raise UsageError("--save-test: the held-out rows of a .npy --data file are not "
                         "copied; hold them out in a file of their own and give it as "
                         "--test-data")
    if args.save_test:
        check_save_test_name(args.save_test)
    if args.save_test and args.impute and args.save_test.lower().endswith(".npz"):
        raise UsageError(f"--save-test {args.save_test}: with --impute the held-out rows keep "
                         f"their missing cells, which only a table reads back; give a .csv name")
    if args.save and args.save.lower().endswith(".onnx"):
        raise UsageError(f"--save {args.save}: train writes a chainrule model file (.npz), "
                         f"not ONNX; save it as MODEL.npz, then run 'chainrule export "
                         f"MODEL.npz {args.save}'")
    if args.test_data is not None:
        check_data_flags(args.test_data, args.label_column, args.test_labels,
                         path_flag="--test-data", labels_flag="--test-labels")


def _column_names(text):
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return names


def _check_column_flags(args) -> None:
    """--ignore-columns and --categorical name columns of a CSV --data other than the
    label column, and not the same ones."""
    from ..data import csv_header

    if args.impute and data_kind(args.data) != "csv":
        raise UsageError(f"--impute fills missing cells of a CSV --data file; {args.data} "
                         f"holds numbers only (fill its NaN first, or write it as a CSV)")
    for flag, names in (("--ignore-columns", args.ignore_columns),
                        ("--categorical", args.categorical)):
        if not names:
            continue
        if data_kind(args.data) != "csv":
            raise UsageError(f"{flag} applies to a CSV --data file, not {args.data}")
        header = csv_header(args.data)
        unknown = [c for c in names if c not in header]
        if unknown or args.label_column in names:
            raise UsageError(f"{flag} {','.join(names)}: " + (
                f"--data {args.data} has no columns {unknown}; its header has {header}"
                if unknown else f"{args.label_column!r} is the --label-column"))
    both = sorted(set(args.ignore_columns or ()) & set(args.categorical or ()))
    if both:
        raise UsageError(f"--categorical and --ignore-columns both name {both}")


def _check_train_destinations(args) -> None:
    """Files to write, before hours of training rather than after (exit 1); none may
    be one of the command's inputs or another of its outputs."""
    inputs = [args.data, args.labels, args.test_data, args.test_labels]
    outputs = {"--save": args.save, "--save-test": args.save_test,
               "--checkpoint": args.checkpoint}
    for flag, path in outputs.items():
        if path:
            others = [p for f, p in outputs.items() if f != flag]
            check_output_file(path, flag, refuse_same_as=inputs + others)
    if args.plot:
        check_output_dir(args.plot, "--plot")


def _check_packages(args) -> bool:
    """The optional packages the run will need, before any training (exit 1 when
    --plot lacks matplotlib). Returns whether to show a tqdm progress bar."""
    import importlib.util

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError("--plot needs matplotlib, which is not installed: pip "
                               "install chainrule[plot] (or leave out --plot)") from None
    if args.quiet or args.verbose or not sys.stdout.isatty():
        return False
    # On a terminal: a bar if tqdm is there, else the plain per-epoch lines.
    return importlib.util.find_spec("tqdm") is not None


# -- train: model, optimizer, fit ---------------------------------------------------

def _build_model_in_memory(args, n_features, n_outputs, task, gen):
    """:func:`build_model`, a model too large to allocate said in one line (exit 1)."""
    try:
        return build_model(args, n_features, n_outputs, task, gen)
    except MemoryError:
        sizes = [n_features, *([] if args.model == "logreg" else hidden_sizes(args)),
                 n_outputs]
        count = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        gib = count * np.dtype(args.dtype).itemsize / 2**30
        raise CommandError(f"--hidden {','.join(map(str, hidden_sizes(args)))}: a "
                           f"{args.model} {sizes} has {count:,} parameters ({gib:,.1f} GiB in "
                           f"{args.dtype}), more than this machine can allocate; give "
                           f"smaller hidden layers") from None


def _count(n: int, noun: str) -> str:
    """``n noun``, the noun in the plural unless ``n`` is 1."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_setup(args, data: TrainData, model, optimizer, plan: Plan) -> None:
    D, K = data.X_train.shape[1], data.n_outputs
    what = f"{K} classes" if data.classes is not None else "a numeric target"  # K >= 2
    counts = ", ".join(f"{k} {len(v)}" for k, v in data.categories.items())
    text = f" (categorical columns one-hot: {counts})" if counts else ""
    print(f"data: {data.source}, {_count(data.X_train.shape[0], 'training row')}, "
          f"{_count(data.X_test.shape[0], 'test row')}, {_count(D, 'feature')}{text}, "
          f"{what}{', standardised' if args.standardize else ''}")
    if data.medians is not None:
        print(f"missing cells: {data.filled[0]} in the training rows, {data.filled[1]} in "
              f"the test rows, filled with each numeric column's training median (of a "
              f"column of text: no category)")
    print(f"task: {data.task} ({data.why})")
    stopping = (f", early stopping after {plan.patience} epochs without a better val_loss"
                if plan.patience else "")
    arch = describe_cnn(args, D, K) if args.model == "cnn" else f"logreg {[D, K]}" if \
        args.model == "logreg" else f"mlp {[D, *hidden_sizes(args), K]} {activation(args)}"
    loss = "" if args.loss == "auto" else f", {args.loss} loss"
    print(f"model: {arch}{loss}"
          f"{f', dropout {args.dropout}' if args.dropout else ''}, "
          f"{model.num_parameters():,} parameters; {optimizer!r}"
          f"{describe_schedule(args, plan)}, batch size "
          f"{plan.batch_size or 'full'}, at most {plan.epochs} epochs, "
          f"{plan.validation_fraction:g} of the rows for validation{stopping}")


class _EpochPrinter:
    """fit callback: one line per epoch; remembers which epochs got their line."""

    def __init__(self, show=True):
        self.show = show
        self.printed = []  # epochs whose line was (started to be) printed

    def __call__(self, epoch, logs, _model):
        if not self.show:
            return
        self.printed.append(epoch)
        line = f"epoch {epoch:4d}  loss {logs['loss']:.4f}"
        if "accuracy" in logs:
            line += f"  acc {logs['accuracy']:.4f}"
        if "val_loss" in logs:
            line += f"  val_loss {logs['val_loss']:.4f}"
        if "val_accuracy" in logs:
            line += f"  val_acc {logs['val_accuracy']:.4f}"
        print(line + f"  lr {logs['lr']:.2e}  {logs['time']:.2f}s", flush=True)


def _class_weights(args, data, Y):
    """``--class-weight balanced``'s weights of the rows ``Y`` fit trains on (one-hot
    or class indices), ``n / (K * count of the row's class)`` over them: scikit-learn's
    ``compute_sample_weight``, as the estimators' ``class_weight``; None without it."""
    if args.class_weight is None:
        return None
    if data.task != "classification":
        raise UsageError("--class-weight applies to classification (the task is "
                         f"{data.task})")
    from sklearn.utils.class_weight import compute_sample_weight

    Y = np.asarray(Y)
    return compute_sample_weight(args.class_weight, Y.argmax(axis=1) if Y.ndim == 2 else Y)


def _fit(args, model, optimizer, data, plan: Plan, gen, printer, bar):
    """``fit`` with the flags; its checkpoint errors said in terms of the flags."""
    from ..checkpoint import CheckpointEpochsError, CheckpointMismatchError
    from ..train import fit

    X, Y, fraction, validation = data.X_train, data.Y_train, plan.validation_fraction, None
    if fraction and is_npy(args):  # fit splits arrays; a file's parts are views of it
        X, Y, validation = validation_views(X, Y, fraction, gen)
        fraction = 0.0
    try:
        return fit(model, X, Y, optimizer=optimizer, sample_weight=_class_weights(args, data, Y),
                   epochs=plan.epochs, batch_size=plan.batch_size,
                   validation_fraction=fraction or None, validation_data=validation,
                   early_stopping=plan.patience or None, callbacks=(printer,), rng=gen,
                   progress=bar, checkpoint=args.checkpoint, resume=args.resume, comm=args.comm,
                   threads=args.threads)
    except CheckpointEpochsError as exc:
        raise UsageError(f"--epochs {exc.epochs} is fewer than the {exc.done} epochs already "
                         f"done in checkpoint {exc.path!r}; give --epochs >= {exc.done} (the "
                         f"total, not the number to add)") from None
    except CheckpointMismatchError as exc:
        if exc.field == "optimizer.lr_schedule" and args.lr_schedule in ("cosine",
                                                                          "onecycle"):
            raise CommandError(f"{exc} (the {args.lr_schedule} schedule spans all --epochs, "
                               f"so resume with the --epochs of the interrupted run)") from None
        if exc.field.startswith("optimizer.lr_schedule") and args.lr_schedule == "plateau":
            raise CommandError(f"{exc} (resume with the --lr and --lr-patience of the "
                               f"interrupted run)") from None
        # (a flag left out: e.g. without --lr-schedule plateau the checkpoint's rate
        # schedule reads None against a constant --lr)
        raise CommandError(f"{exc} (resume with the flags of the interrupted run: --resume "
                           f"takes the same ones, --epochs aside)") from None


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


def _cmd_train(args) -> int:
    # Flags, files and packages: bad usage exits 2, unusable files 1, all before any work.
    _check_train_values(args)
    _check_train_sources(args)
    _check_train_destinations(args)
    bar = _check_packages(args)
    data = load_train_data(args)
    plan = plan_run(args, data.X_train.shape[0])
    # One generator for the weights, dropout, shuffling and the validation split.
    gen = np.random.default_rng(args.seed)
    model = _build_model_in_memory(args, data.X_train.shape[1], data.n_outputs, data.task,
                                   gen)
    optimizer = build_optimizer(args, data.X_train.shape[0], plan)
    _print_setup(args, data, model, optimizer, plan)
    printer = _EpochPrinter(show=not (args.quiet or bar))
    if args.class_weight is not None:  # imported here: seconds the "trained in" must not count
        import sklearn.utils.class_weight  # noqa: F401
    t0 = time.perf_counter()
    history = _fit(args, model, optimizer, data, plan, gen, printer, bar)
    elapsed = time.perf_counter() - t0
    if history.stop_reason == "interrupted":
        _report_interrupt(args, history, printer.printed)
        return 130
    if data.task == "regression":
        from ..folding import fold_target_scaling

        fold_target_scaling(model, data.y_mean, data.y_scale)
    score = test_score(model, data)
    if args.plot:  # drawn from the model as trained, on standardised inputs
        plot_model = copy.deepcopy(model)
    done = save_files(args, model, data)
    if history.stop_reason == "early_stopping":
        print(f"early stopping after epoch {history.epochs - 1}; kept the weights of epoch "
              f"{history.best_epoch}")
    print(f"trained {_count(history.epochs, 'epoch')} in {elapsed:.1f}s")
    print(score)
    for line in done:
        print(line)
    if args.plot:
        write_plots_keeping_the_model(args, plot_model, history, data)
    return 0
