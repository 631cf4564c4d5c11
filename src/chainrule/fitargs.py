"""The arguments of :func:`chainrule.train.fit`, checked into a :class:`RunSettings`.

:func:`check_fit_arguments` checks every argument, in a fixed order, before the run
changes anything (the model, the optimizer, a checkpoint file): a bad value is a
``TypeError``/``ValueError`` naming the argument, and nothing is half-updated. Its
result, the :class:`~chainrule.checkpoint.RunSettings`, is what the rest of the
training loop reads.
"""

from __future__ import annotations

import math
import os

import numpy as np

from . import distributed, sources
from ._validation import (
    all_finite,
    check_bool,
    check_in_interval,
    check_positive_float,
    check_positive_int,
    check_rng,
    check_sample_weight,
    raise_non_finite,
)
from .checkpoint import RunSettings, check_checkpoint_path
from .explain import input_shapes
from .history import EarlyStopping
from .losses import is_multiclass
from .models import Network
from .optim import make_optimizer
from .stateful import check_batch_rows

__all__ = ["check_network", "check_callbacks", "check_validation", "check_fit_arguments"]


def check_network(model) -> None:
    """Raise ``TypeError`` unless ``model`` is a chainrule :class:`~chainrule.models.Network`."""
    if not isinstance(model, Network):
        raise TypeError(f"model must be a chainrule Network (e.g. MLP), got "
                        f"{type(model).__name__}")


def check_callbacks(callbacks) -> tuple:
    """``callbacks`` as a tuple of callables (one callable is a tuple of one)."""
    callbacks = (callbacks,) if callable(callbacks) else callbacks
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a sequence of callables, got "
                        f"{type(callbacks).__name__}") from None
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable as cb(epoch, logs, model), got "
                            f"{type(cb).__name__} {cb!r}")
    return callbacks


def check_validation(model, n, validation_data, validation_fraction):
    """``(validation_data, validation_fraction)`` checked: at most one, the data a
    checked pair of arrays, the fraction leaving training rows."""
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError(f"validation_data must be (X_val, Y_val) or (X_val, Y_val, "
                            f"sample_weight_val), got {type(validation_data).__name__}")
        try:
            checked = sources.check_data(model, *validation_data[:2], training=False)
            if len(validation_data) == 3:   # the validation rows' weights, as fit's
                checked = (*checked, check_sample_weight(
                    validation_data[2], checked[0].shape[0], model.dtype))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"validation_data: {exc}") from None
        validation_data = checked
    if validation_fraction is not None:
        validation_fraction = check_in_interval(validation_fraction, "validation_fraction",
                                                0.0, 1.0, low_closed=False)
        if math.ceil(validation_fraction * n) >= n:
            raise ValueError(f"validation_fraction={validation_fraction} of {n} rows "
                             f"leaves no training rows")
    return validation_data, validation_fraction


def check_fit_arguments(model, X, Y, *, optimizer, epochs, batch_size, shuffle,
                        validation_data, validation_fraction, early_stopping, callbacks, rng,
                        progress, sample_weight, checkpoint, resume, diagnostics, l2, comm,
                        drop_last=False) -> RunSettings:
    """:func:`fit`'s arguments, checked (in a fixed order) before anything changes; the
    model is checked first, by ``fit`` itself, since its params choose the threads."""
    optimizer = make_optimizer(optimizer)
    epochs = check_positive_int(epochs, "epochs")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    shuffle = sources.check_shuffle(shuffle, checkpoint=checkpoint, comm=comm)
    drop_last = check_bool(drop_last, "drop_last")
    progress = check_bool(progress, "progress")
    resume = check_bool(resume, "resume")
    diagnostics = check_bool(diagnostics, "diagnostics")
    l2 = check_positive_float(l2, "l2", allow_zero=True)
    may_scan = _may_scan_rows(model, X, validation_fraction, checkpoint, comm)
    X, Y = sources.check_data(model, X, Y, batch_size, validation_fraction,
                              finite_X=not may_scan)
    scan_rows = may_scan and model.scans_first_output(X)
    if may_scan and not scan_rows and not all_finite(X):
        raise_non_finite(X, "X")
    bad = [k for k, p in model.params.items() if not np.isfinite(p).all()]
    if bad:
        raise ValueError(f"model parameters {bad} hold NaN or infinite values; re-initialise "
                         f"the model before training")
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, X.shape[0], model.dtype)
    early_stopping = EarlyStopping.from_argument(early_stopping)
    callbacks = check_callbacks(callbacks)
    random = check_rng(rng)
    validation_data, validation_fraction = check_validation(
        model, X.shape[0], validation_data, validation_fraction)
    # Early stopping, and a rate that watches the History (ReduceLROnPlateau), need the
    # value they monitor to be recorded.
    for rule in (early_stopping, optimizer.lr):
        if hasattr(rule, "check_monitor"):
            rule.check_monitor(
                has_validation=validation_data is not None or validation_fraction is not None,
                has_accuracy=is_multiclass(model.loss),
                loss_name=type(model.loss).__name__)
    check_checkpoint_path(checkpoint, resume)
    comm = distributed.check_comm(comm, X.shape[0], batch_size, validation_fraction, drop_last)
    settings = RunSettings(
        X=X, Y=Y, sample_weight=sample_weight, optimizer=optimizer, epochs=epochs,
        batch_size=batch_size, shuffle=shuffle, validation_data=validation_data,
        validation_fraction=validation_fraction, early_stopping=early_stopping,
        callbacks=callbacks, rng=random, progress=progress, diagnostics=diagnostics,
        checkpoint=checkpoint, resume=resume, l2=l2, comm=comm, drop_last=drop_last,
        scan_rows=scan_rows)
    # BatchNorm: no batch of 1 row; drop_last: some batch at all (before the split's draw)
    n_fit = settings.n_rows - (settings.n_val or 0)
    check_batch_rows(model.layers, n_fit, batch_size, drop_last, input_shapes(model))
    _check_schedule_lasts(optimizer, epochs, n_fit, batch_size, drop_last,
                          resuming=resume and os.path.exists(checkpoint))
    return settings


def _may_scan_rows(model, X, validation_fraction, checkpoint, comm) -> bool:
    """Whether the first epoch's batches may check ``X`` finite, through the first
    layer's output (when :meth:`~chainrule.network.Network.scans_first_output`), in
    place of a scan of ``X`` before training. One epoch visits every training row, so
    the check is as strict; a bad row raises the error the scan raises, and ``fit``
    puts the run back as it was at the call's start (as for a bad row of a file). Only
    for an ndarray of the model's dtype (a cast's overflow has an error of its own),
    without a validation split or a
    checkpoint (whose draws and loading would come before the error), MPI, or a
    ``forward`` of the user's own. The scan of 60,000 x 784 float32 took 6-7 ms, 1% of
    a one-epoch fit of a 784-256-10 network; the batches' outputs ~1.5 ms."""
    return (type(X) is np.ndarray and X.dtype == model.dtype and validation_fraction is None
            and checkpoint is None and comm is None and type(model).forward is Network.forward)


def _check_schedule_lasts(optimizer, epochs: int, n_fit: int, batch_size, drop_last,
                          resuming: bool) -> None:
    """A schedule defined on fewer steps than the run takes (``onecycle_lr``'s
    ``total_steps``) is refused now, not at the step where it ends, half-way through
    training. A run that resumes a checkpoint ends where the whole run would, at step
    ``epochs * steps_per_epoch - 1`` (its optimizer's steps come from the file); any
    other continues from the optimizer's steps so far."""
    momentum = getattr(optimizer, "momentum_schedule", lambda: None)()
    schedules = [(what, f) for what, f in (("learning-rate", optimizer.lr),
                                           ("momentum", momentum))
                 if callable(f) and not hasattr(f, "epoch_end")]   # (a rate with state)
    per_epoch = 1 if batch_size is None else (n_fit // batch_size if drop_last
                                              else -(-n_fit // batch_size))
    last = (0 if resuming else optimizer.steps) + epochs * per_epoch - 1
    for what, schedule in schedules:
        try:
            schedule(last)
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
            taken = f" after {optimizer.steps} taken" if optimizer.steps and not resuming \
                else ""
            raise ValueError(
                f"optimizer's {what} schedule fails at step {last}, the last of this fit "
                f"({epochs} epochs of {per_epoch} steps{taken}): "
                f"{type(exc).__name__ + ': ' if isinstance(exc, LookupError) else ''}"
                f"{exc}") from None
