"""Errors that more than one layer of chainrule raises.

:class:`TrainingDivergedError` is raised by :meth:`chainrule.models.Network.step` and
by :func:`chainrule.train.fit` (which re-exports it), so it lives below both;
:class:`ModelFileError` by every reader of chainrule's files (model files, checkpoints;
``chainrule.io`` re-exports it).
"""

from __future__ import annotations

__all__ = ["TrainingDivergedError", "ModelFileError"]


class ModelFileError(ValueError):
    """A chainrule file is missing, corrupt, of an unknown version, or unsafe to read.

    The message names the path and the problem. Subclasses ``ValueError`` because the
    problem lies in the content handed to the reader.
    """


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss (or the parameters, or a gradient) became NaN or infinite.

    A ``ValueError`` too, as scikit-learn reports non-finite weights.

    :func:`chainrule.fit` then puts back the parameters of the latest epoch start
    whose loss was finite;
    :meth:`Network.step` refuses before updating anything.

    Attributes
    ----------
    epoch : int or None
        Epoch (from 0) in which it happened; None for :meth:`Network.step`.
    step : int or None
        Batch index within that epoch; None for :meth:`Network.step`.
    layer : str
        The first layer whose output was non-finite, ``"loss"``, or for
        :meth:`Network.step` with a finite loss, the first non-finite gradient.
    history : History or None
        The epochs completed before it happened (set by :func:`fit`).
    """

    def __init__(self, message, *, epoch, step, layer):
        super().__init__(message)
        self.epoch, self.step, self.layer = epoch, step, layer
        self.history = None
