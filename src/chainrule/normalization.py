"""Normalisation layers and a softmax layer, each backward pass right under its forward.

:class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`LayerNorm` take PyTorch's
constructor arguments and defaults (``eps=1e-5``, ``momentum=0.1``; a batch
normalisation also ``affine``, ``track_running_stats`` and ``momentum=None``), so that
a model moved between the two libraries gives the same numbers; :class:`Softmax` and
:class:`LogSoftmax` are the max-shifted softmax and its log as layers. They keep the
contract of :mod:`chainrule.layers` (``forward(inputs, *params)`` caches what
``backward(d_out)`` needs), declare
``param_names`` and ``init_params`` so that :class:`~chainrule.models.Sequential` can
build them, and a batch normalisation declares its running statistics as
``buffer_names``. All work in float32 and float64 (the dtype of the inputs).
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_float_array,
    check_bool,
    check_in_interval,
    check_positive_float,
    check_positive_int,
    shape_str,
)
from .functional import shift_by_max
from .layers import Layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "Softmax", "LogSoftmax"]


def _check_affine_params(inputs, gamma, beta, expected, what):
    """``(gamma, beta)`` as arrays of shape ``expected``, the layer's own size."""
    gamma = as_float_array(gamma, "gamma", ndim=None)
    beta = as_float_array(beta, "beta", ndim=None)
    for name, a in (("gamma", gamma), ("beta", beta)):
        if a.shape != expected:
            raise ValueError(f"{name} must have shape {shape_str(expected)} ({what}), got "
                             f"{shape_str(a.shape)}")
    return gamma, beta


def _check_momentum(momentum):
    """``None`` (PyTorch's cumulative average) or a float in [0, 1]."""
    if momentum is None:
        return None
    try:
        return check_in_interval(momentum, "momentum", 0.0, 1.0, high_closed=True)
    except TypeError:
        raise TypeError(f"momentum must be a real number in [0, 1] or None (a cumulative "
                        f"average), got {type(momentum).__name__} {momentum!r}") from None


def _batchnorm_equations(affine: bool, track: bool) -> tuple[str, tuple[str, ...]]:
    """The equations :func:`chainrule.explain.explain` prints for these options."""
    stats = ("(training: batch mu, var; eval: running_mean, running_var)" if track
             else "(batch mu, var in training and eval)")
    # sum_c: over every axis but the channels (the rows, and a map's positions), the m
    # values each channel's statistics are taken over; s = 1 / sqrt(var + eps)
    if affine:
        forward = "{y} = {gamma} * ({x} - mu) / sqrt(var + eps) + {beta}"
        d_x = ("d{x} = s/m * (m dxhat - sum_c(dxhat) - xhat * sum_c(dxhat * xhat))   "
               "(dxhat = d{y} * {gamma}, s = 1/sqrt(var + eps), m: values per channel)")
        grads: tuple[str, ...] = ("d{beta} = sum_c(d{y})", "d{gamma} = sum_c(d{y} * xhat)")
    else:
        forward = "{y} = ({x} - mu) / sqrt(var + eps)"
        d_x = ("d{x} = s/m * (m d{y} - sum_c(d{y}) - xhat * sum_c(d{y} * xhat))   "
               "(s = 1/sqrt(var + eps), m: values per channel)")
        grads = ()
    eval_dx = "   (eval: d{x} = " + ("dxhat" if affine else "d{y}") + " * s)" if track else ""
    return forward + "   " + stats, (*grads, d_x + eval_dx)


class _BatchNorm(Layer):
    """Batch normalisation over every axis but the channel axis (axis 1).

    Subclasses set ``input_ndims`` (the input ranks they accept). The class attributes
    are those of the default options; an instance with other options sets its own
    ``num_params``, ``param_names``, ``buffer_names`` and ``equations`` (as
    ``Affine(bias=False)`` does), so that the network names, trains, stores and exports
    exactly the arrays the layer has.
    """

    num_params = 2
    param_names: tuple[str, ...] = ("gamma", "beta")
    buffer_names: tuple[str, ...] = ("running_mean", "running_var")
    input_ndims: tuple[int, ...] = ()
    equations = _batchnorm_equations(affine=True, track=True)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True) -> None:
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        self.eps = check_positive_float(eps, "eps")
        self.momentum = _check_momentum(momentum)
        self.affine = check_bool(affine, "affine")
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats")
        if not self.affine:
            self.num_params, self.param_names = 0, ()
        if not (self.affine and self.track_running_stats):
            self.equations = _batchnorm_equations(self.affine, self.track_running_stats)
        # None where the layer keeps no statistics, as PyTorch's buffers are.
        self.running_mean: np.ndarray | None = None
        self.running_var: np.ndarray | None = None
        self.num_batches_tracked: np.ndarray | None = None
        if not self.track_running_stats:
            self.buffer_names = ()
            return
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)
        if self.momentum is None:
            # Only the cumulative average needs the count: files of layers with a
            # momentum (all those written before it existed) hold no such array.
            self.num_batches_tracked = np.zeros(())
            self.buffer_names = (*_BatchNorm.buffer_names, "num_batches_tracked")

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[gamma, beta]`` (none with ``affine=False``)."""
        return [(self.num_features,)] * 2 if self.affine else []

    def init_params(self, rng, dtype):
        """``[gamma, beta]``: ones and zeros, as PyTorch starts them (``rng`` unused);
        none with ``affine=False``."""
        if not self.affine:
            return []
        return [np.ones(self.num_features, dtype=dtype), np.zeros(self.num_features, dtype=dtype)]

    def get_config(self) -> dict:
        """The constructor arguments, for model files; an option at its default is left
        out, so that files of default layers read as before and load anywhere."""
        config = {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}
        if not self.affine:
            config["affine"] = False
        if not self.track_running_stats:
            config["track_running_stats"] = False
        return config

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) + 1 not in self.input_ndims or shape[0] != self.num_features:
            raise ValueError(f"it takes {' or '.join(map(str, self.input_ndims))}-D inputs "
                             f"with {self.num_features} channels on axis 1")

    def _axes_and_shape(self, inputs):
        """The axes the statistics run over and the broadcast shape of a channel vector."""
        axes = (0,) + tuple(range(2, inputs.ndim))
        return axes, (1, -1) + (1,) * (inputs.ndim - 2)

    def _check(self, inputs, gamma, beta):
        """The arguments of :meth:`forward`, checked (a layer used on its own)."""
        inputs = as_float_array(inputs, "inputs", ndim=None)
        if inputs.ndim not in self.input_ndims or inputs.shape[1] != self.num_features:
            raise ValueError(f"inputs must have {' or '.join(map(str, self.input_ndims))} "
                             f"dimensions with {self.num_features} channels on axis 1, "
                             f"got shape {shape_str(inputs.shape)}")
        given = (gamma is not None) + (beta is not None)
        if given != 2 * self.affine:
            wanted = "gamma and beta" if self.affine else "no gamma or beta (affine=False)"
            raise TypeError(f"{self!r} takes {wanted} after its inputs, got {given} of them")
        if self.affine:
            gamma, beta = _check_affine_params(inputs, gamma, beta, (self.num_features,),
                                               "one per channel")
        return inputs, gamma, beta

    def forward(self, inputs, gamma=None, beta=None):
        """Normalise each channel, then scale by ``gamma`` and shift by ``beta`` (given
        exactly when ``affine``).

        In training the statistics are the batch's (biased variance) and the running
        averages move towards them, ``r <- (1 - momentum) r + momentum * batch``, with
        the unbiased variance ``var * M / (M - 1)`` (``M`` values per channel), as in
        PyTorch; in evaluation the running statistics are used and nothing changes.
        Without running statistics (``track_running_stats=False``) the batch's are used
        in both modes.
        """
        if self.validate:
            inputs, gamma, beta = self._check(inputs, gamma, beta)
        axes, bshape = self._axes_and_shape(inputs)
        m = inputs.size // inputs.shape[1]
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if m < 2:
                # PyTorch refuses too: the unbiased variance of one value is undefined,
                # and a batch variance of 0 would turn every value into beta.
                raise ValueError(f"{type(self).__name__} with batch statistics needs more "
                                 f"than one value per channel, got inputs of shape "
                                 f"{shape_str(inputs.shape)}")
            mean, var = inputs.mean(axis=axes), inputs.var(axis=axes)
            if self.training and self.track_running_stats:
                self._update_running(mean, var * m / (m - 1))
        else:
            mean = self.running_mean.astype(inputs.dtype, copy=False)
            var = self.running_var.astype(inputs.dtype, copy=False)
        scale = 1.0 / np.sqrt(var + inputs.dtype.type(self.eps))
        xhat = (inputs - mean.reshape(bshape)) * scale.reshape(bshape)
        # Whether the batch's statistics were used, not the mode: backward follows it.
        self.cache = (xhat, scale, gamma, batch_stats)
        if not self.affine:
            return xhat
        return xhat * gamma.reshape(bshape) + beta.reshape(bshape)

    def _update_running(self, mean, unbiased_var):
        """Move the running statistics towards a training batch's, in place and in the
        buffers' own dtype: the network owns these arrays."""
        if self.momentum is None:
            # PyTorch's cumulative average: the n-th batch weighs 1/n, so the buffers
            # are the plain mean of every batch's statistics so far (the first batch
            # replaces the initial zeros and ones).
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        for buffer, batch in ((self.running_mean, mean), (self.running_var, unbiased_var)):
            buffer *= 1 - factor
            buffer += factor * batch

    def backward(self, d_out):
        """Gradients of ``inputs``, ``gamma`` and ``beta`` (of ``inputs`` alone without
        ``affine``).

        ``dbeta`` and ``dgamma`` sum over the axes the channel vectors are broadcast
        along. With batch statistics every input also moves the batch mean and variance;
        with ``dxhat = d_out * gamma`` (``d_out`` without ``affine``) and ``s = 1 /
        sqrt(var + eps)`` the three paths add up to ``dx = s / M (M dxhat - sum dxhat -
        xhat sum(dxhat xhat))``. With running statistics (evaluation) they are constants
        and ``dx = dxhat * s``.
        """
        xhat, scale, gamma, batch_stats = self.cache if self.cache is not None else (None,) * 4
        d_out = self._check_d_out(d_out, np.shape(xhat))
        axes, bshape = self._axes_and_shape(xhat)
        d_xhat = d_out * gamma.reshape(bshape) if self.affine else d_out
        if batch_stats:
            m = xhat.size // xhat.shape[1]
            mean_term = d_xhat.sum(axis=axes).reshape(bshape)
            var_term = xhat * (d_xhat * xhat).sum(axis=axes).reshape(bshape)
            d_inputs = (scale / m).reshape(bshape) * (m * d_xhat - mean_term - var_term)
        else:
            d_inputs = d_xhat * scale.reshape(bshape)
        if not self.affine:
            return d_inputs
        return d_inputs, (d_out * xhat).sum(axis=axes), d_out.sum(axis=axes)

    @property
    def rows_interact_in_eval(self) -> bool:
        """Without running statistics a row's output depends on the batch, evaluation
        included: inference must then see every row at once (as PyTorch's eval does)."""
        return not self.track_running_stats

    def __repr__(self):  # every setting not at PyTorch's default
        options = "" if self.eps == 1e-5 else f", eps={self.eps!r}"
        options += "" if self.momentum == 0.1 else f", momentum={self.momentum!r}"
        options += "" if self.affine else ", affine=False"
        options += "" if self.track_running_stats else ", track_running_stats=False"
        return f"{type(self).__name__}({self.num_features}{options})"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of each feature over the batch, as ``torch.nn.BatchNorm1d``.

    Shape: inputs (N, C) or (N, C, L), gamma (C,), beta (C,) (with ``affine``) -> out of
    the inputs' shape. Buffers ``running_mean`` and ``running_var``, shape (C,) (none with
    ``track_running_stats=False``), and ``num_batches_tracked``, shape () (only with
    ``momentum=None``).

    Parameters
    ----------
    num_features : int
        ``C``, the number of features (channels).
    eps : float, default=1e-5
        Added to the variance before its square root.
    momentum : float or None, default=0.1
        Weight of the new batch in the running statistics (PyTorch's convention).
        ``None``: their cumulative average, the plain mean of the statistics of every
        training batch so far (the n-th weighs ``1/n``), counted in the buffer
        ``num_batches_tracked`` (held in the network's dtype: exact up to 2**24
        batches in float32).
    affine : bool, default=True
        Learnable ``gamma`` and ``beta``. ``False``: the layer has no parameters;
        ``forward`` takes the inputs alone and ``backward`` returns ``d_inputs`` alone.
    track_running_stats : bool, default=True
        ``False``: no running statistics; the batch's statistics are used in training
        and in evaluation alike, as in PyTorch. An output row then depends on the
        other rows of its batch, a batch needs more than one value per channel in
        evaluation too, and predictions of more rows than one inference chunk holds
        (``Network.infer``) normalise each chunk on its own.
    """

    input_ndims = (2, 3)
    #: Values of each channel a training batch needs (fit checks it first, as rows:
    #: ``stateful.rows_needed``): one row of (N, C) inputs gives each feature a single
    #: value, and no variance; one row of (N, C, L) inputs gives L of them, as PyTorch
    #: asks (more than one value per channel).
    min_batch_values = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of each channel over N, H and W, as ``torch.nn.BatchNorm2d``.

    Shape: inputs (N, C, H, W), gamma (C,), beta (C,) (with ``affine``) -> out
    (N, C, H, W). Buffers ``running_mean`` and ``running_var``, shape (C,), and with
    ``momentum=None`` ``num_batches_tracked``, shape (). Parameters (``num_features``,
    ``eps``, ``momentum``, ``affine``, ``track_running_stats``) as :class:`BatchNorm1d`.
    """

    input_ndims = (4,)


class LayerNorm(Layer):
    """Normalisation of each sample over its last dimensions, as ``torch.nn.LayerNorm``.

    Shape: inputs (N, ..., *normalized_shape), gamma and beta ``normalized_shape`` ->
    out of the inputs' shape. The same in training and evaluation.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions each sample is normalised over.
    eps : float, default=1e-5
    elementwise_affine : bool, default=True
        Learn ``gamma`` (and ``beta``) per normalised entry; without, the layer has no
        parameters and outputs ``xhat`` itself.
    bias : bool, default=True
        Learn ``beta`` (with ``elementwise_affine``); without, the output is
        ``gamma * xhat``, as PyTorch's ``bias=False``.
    """

    num_params = 2
    param_names = ("gamma", "beta")

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else normalized_shape
        try:
            self.normalized_shape = tuple(check_positive_int(s, "normalized_shape")
                                          for s in shape)
        except TypeError:
            raise TypeError(f"normalized_shape must be an int or a tuple of ints, got "
                            f"{normalized_shape!r}") from None
        if not self.normalized_shape:
            raise ValueError("normalized_shape must name at least one dimension, got ()")
        self.eps = check_positive_float(eps, "eps")
        self.elementwise_affine = check_bool(elementwise_affine, "elementwise_affine")
        self.has_bias = check_bool(bias, "bias")   # (as Affine's: 'bias' names no array)
        self.param_names = (("gamma", "beta") if self.has_bias else ("gamma",)) \
            if self.elementwise_affine else ()
        self.num_params = len(self.param_names)
        self.equations = _layernorm_equations(self.param_names)

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[gamma, beta]``, those the layer has."""
        return [self.normalized_shape] * self.num_params

    def init_params(self, rng, dtype):
        """``[gamma, beta]``: ones and zeros (``rng`` unused), those the layer has."""
        return [np.ones(self.normalized_shape, dtype=dtype),
                np.zeros(self.normalized_shape, dtype=dtype)][:self.num_params]

    def get_config(self) -> dict:
        """The constructor arguments, for model files (each option only when off)."""
        config = {"normalized_shape": list(self.normalized_shape), "eps": self.eps}
        if not self.elementwise_affine:
            config["elementwise_affine"] = False
        return config if self.has_bias else {**config, "bias": False}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if tuple(shape[-len(self.normalized_shape):]) != self.normalized_shape:
            raise ValueError(f"its inputs must end in {shape_str(self.normalized_shape)}")

    def _check(self, inputs, params):
        """The arguments of :meth:`forward`, checked (a layer used on its own)."""
        k = len(self.normalized_shape)
        inputs = as_float_array(inputs, "inputs", ndim=None)
        if inputs.ndim < k + 1 or inputs.shape[-k:] != self.normalized_shape:
            raise ValueError(f"inputs must end in {shape_str(self.normalized_shape)} "
                             f"after a batch axis, got shape {shape_str(inputs.shape)}")
        if len(params) != self.num_params:
            raise TypeError(f"{self!r} takes {' and '.join(self.param_names) or 'no parameters'}"
                            f" after its inputs, got {len(params)} arrays")
        if not params:
            return inputs, params
        gamma, beta = _check_affine_params(inputs, params[0], params[-1],
                                           self.normalized_shape, "normalized_shape")
        return inputs, (gamma, beta)[:len(params)]

    def forward(self, inputs, *params):
        """``gamma * (x - mean) / sqrt(var + eps) + beta``, statistics per sample;
        ``params`` are ``gamma`` and ``beta``, those the layer has."""
        if self.validate:
            inputs, params = self._check(inputs, params)
        k = len(self.normalized_shape)
        axes = tuple(range(inputs.ndim - k, inputs.ndim))
        mean = inputs.mean(axis=axes, keepdims=True)
        scale = 1.0 / np.sqrt(inputs.var(axis=axes, keepdims=True) + inputs.dtype.type(self.eps))
        xhat = (inputs - mean) * scale
        gamma = params[0] if params else None
        self.cache = (xhat, scale, gamma, axes)
        if gamma is None:
            return xhat
        return xhat * gamma + params[1] if len(params) == 2 else xhat * gamma

    def backward(self, d_out):
        """As batch normalisation's training backward, over each sample's own ``D``
        values; ``dgamma`` and ``dbeta`` sum over the batch (and any middle axes)."""
        xhat, scale, gamma, axes = self.cache if self.cache is not None else (None,) * 4
        d_out = self._check_d_out(d_out, np.shape(xhat))
        outer = tuple(range(xhat.ndim - len(axes)))
        grads = [(d_out * xhat).sum(axis=outer), d_out.sum(axis=outer)][:self.num_params]
        d_xhat = d_out if gamma is None else d_out * gamma
        d = int(np.prod([xhat.shape[a] for a in axes]))
        d_inputs = (scale / d) * (d * d_xhat - d_xhat.sum(axis=axes, keepdims=True)
                                  - xhat * (d_xhat * xhat).sum(axis=axes, keepdims=True))
        return (d_inputs, *grads) if grads else d_inputs

    def __repr__(self):
        shape = self.normalized_shape
        options = "" if self.eps == 1e-5 else f", eps={self.eps!r}"
        options += "" if self.elementwise_affine else ", elementwise_affine=False"
        options += "" if self.has_bias else ", bias=False"
        return f"LayerNorm({shape[0] if len(shape) == 1 else shape}{options})"


def _layernorm_equations(params) -> tuple[str, tuple[str, ...]]:
    """LayerNorm's equations for the parameters it has (``gamma``, ``beta``)."""
    out = "{y} = " + ("{gamma} * " if params else "") + "({x} - mean) / sqrt(var + eps)"
    out += (" + {beta}" if len(params) == 2 else "") + "   (per sample)"
    grads = ("d{gamma} = sum_rows(d{y} * xhat)", "d{beta} = sum_rows(d{y})")[:len(params)]
    dxhat = "dxhat = d{y} * {gamma}" if params else "dxhat = d{y}"
    return out, (*grads[::-1],
                 "d{x} = s/D * (D dxhat - sum_s(dxhat) - xhat * sum_s(dxhat * xhat))   "
                 f"(sum_s: over each sample's D normalised values; {dxhat}, "
                 "s = 1/sqrt(var + eps))")


class _AlongAxis(Layer):
    """What Softmax and LogSoftmax share: the ``axis`` (PyTorch's ``dim``) they
    normalise along, checked against the input's dimensions."""

    def __init__(self, axis=1, *, dim=None):
        super().__init__()
        name, axis = ("axis", axis) if dim is None else ("dim", dim)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(axis).__name__} {axis!r}")
        self.axis = int(axis)

    def get_config(self) -> dict:
        """The constructor arguments, for model files."""
        return {"axis": self.axis}

    def output_shape(self, shape) -> tuple:
        """The input's shape, unchanged (for a network's shape bookkeeping)."""
        return tuple(shape)

    def check_input_shape(self, shape) -> None:
        """In a network (samples of ``shape``, the batch axis left out), the axis must be
        one of a sample's: along the batch axis, predictions would depend on which rows
        are predicted together (``predict`` takes them in chunks)."""
        if not (1 <= self.axis <= len(shape) or -len(shape) <= self.axis <= -1):
            raise ValueError(f"axis {self.axis} is not an axis of a sample (1 to "
                             f"{len(shape)}, or -{len(shape)} to -1): axis 0 is the batch's")

    def _shifted(self, inputs):
        """``inputs - max(inputs)`` along the axis: no exponential of it overflows."""
        inputs = self._check_input(inputs, ndim=None)
        if self.validate and not -inputs.ndim <= self.axis < inputs.ndim:
            raise ValueError(f"axis {self.axis} is out of range for inputs of shape "
                             f"{shape_str(inputs.shape)}")
        return shift_by_max(inputs, self.axis)[0]

    def __repr__(self):
        return f"{type(self).__name__}(axis={self.axis})"


class Softmax(_AlongAxis):
    """Softmax along ``axis`` (the rows' entries by default), max-shifted so that no
    exponential overflows, as ``torch.nn.Softmax(dim=axis)``.

    Shape: inputs of any shape with at least ``axis + 1`` dimensions -> out of the
    same shape.

    Parameters
    ----------
    axis : int, default=1
        Negative counts from the last axis, as in NumPy and PyTorch.
    dim : int, optional
        PyTorch's name for ``axis`` (given, it replaces ``axis``).
    """

    equations = ("{y} = exp({x} - max {x}) / sum_axis(exp({x} - max {x}))",
                 ("d{x} = {y} * (d{y} - sum_axis({y} * d{y}))   (sum_axis: along the "
                  "softmax's axis)",))

    def forward(self, inputs):
        e = np.exp(self._shifted(inputs))
        out = e / e.sum(axis=self.axis, keepdims=True)
        self.cache = out
        return out

    def backward(self, d_out):
        """Each output depends on every input along ``axis``: the Jacobian
        ``diag(s) - s s^T`` applied to ``d_out`` is ``s * (d_out - sum(s * d_out))``."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        s = self.cache
        return s * (d_out - (s * d_out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(_AlongAxis):
    """The log of the softmax along ``axis``, ``x - logsumexp(x)``, computed from the
    max-shifted input (the homework's log-sum-exp trick), as
    ``torch.nn.LogSoftmax(dim=axis)``.

    Shape: inputs of any shape with at least ``axis + 1`` dimensions -> out of the
    same shape.

    Parameters
    ----------
    axis : int, default=1
        Negative counts from the last axis, as in NumPy and PyTorch.
    dim : int, optional
        PyTorch's name for ``axis`` (given, it replaces ``axis``).

    Notes
    -----
    A network that ends in it (PyTorch's ``LogSoftmax`` + ``NLLLoss``) trains with
    the cross-entropy loss as PyTorch's does: log-softmax of log-probabilities gives
    them back, so the loss is the same number and its gradient the same.
    """

    equations = ("{y} = {x} - max {x} - log(sum_axis(exp({x} - max {x})))",
                 ("d{x} = d{y} - exp({y}) * sum_axis(d{y})   (sum_axis: along the "
                  "softmax's axis)",))

    def forward(self, inputs):
        shifted = self._shifted(inputs)
        e = np.exp(shifted)
        total = e.sum(axis=self.axis, keepdims=True)
        self.cache = e / total   # backward's Jacobian is made of the softmax
        return shifted - np.log(total)

    def backward(self, d_out):
        """The Jacobian ``I - 1 s^T`` (``s`` the softmax) applied to ``d_out``:
        ``d_out - s * sum(d_out)``."""
        d_out = self._check_d_out(d_out, np.shape(self.cache))
        return d_out - self.cache * d_out.sum(axis=self.axis, keepdims=True)
