"""Layers with a hand-written backward pass directly under each forward pass: Affine,
Identity and Dropout here, the activations in :mod:`chainrule.activations` and the base
class in :mod:`chainrule.layer_base`, both re-exported (``chainrule.layers.ReLU``).

The contract, kept from the homework:

* ``forward(inputs, *params)`` computes the output and caches exactly what
  ``backward`` needs;
* ``backward(d_out)`` returns ``d_inputs`` for a layer without parameters and
  ``(d_inputs, *d_params)`` for a layer with parameters, in the order the
  parameters were passed to ``forward``.

A layer may also declare ``param_names`` (its own names for those parameters, e.g.
``("W", "b")``) with ``init_params(rng, dtype)`` creating them, so that
:class:`~chainrule.models.Sequential` can build it (``Affine(64, 128)``), and
``buffer_names``: non-trainable arrays it holds as attributes (running statistics),
which the network owns and snapshots with the parameters.

Every layer has two switches, set by the network that owns it: ``training``
(Dropout and the batch normalisations read it) and ``validate``. A layer used on its own
checks its inputs; inside a network the inputs were checked once at the entry point,
so the network turns the per-layer checks off.
"""

from __future__ import annotations

import numpy as np

from ._blas import matmul, matmul_nt, matmul_tn
from ._validation import (
    as_float_array,
    check_bool,
    check_in_interval,
    check_positive_int,
    check_rng,
    ones,
    shape_str,
)
from .activations import (
    ELU,
    GELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .init import TorchInit, get_initializer
from .layer_base import Layer

__all__ = ["Layer", "Affine", "Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU",
           "ELU", "Softplus", "PReLU", "Hardtanh", "ReLU6", "Hardsigmoid",
           "Hardswish", "Dropout", "Dropout1d", "Dropout2d"]


class Affine(Layer):
    """Fully connected layer ``out = inputs @ weight + bias``.

    Shape: inputs (N, D), weight (D, H), bias (H,) -> out (N, H).

    Set ``compute_input_grad = False`` on a first layer, whose input is the data, to
    skip the ``d_out @ weight.T`` product nobody reads; ``backward`` then returns
    ``None`` in place of ``d_inputs``.

    ``Affine(..., bias=False)`` is ``out = inputs @ weight`` (``nn.Linear(bias=False)``,
    e.g. before a batch normalisation, whose shift would cancel a bias): its
    ``param_names`` are ``("W",)``, ``forward`` takes the weight only and ``backward``
    returns ``(d_inputs, d_weight)``.
    """

    num_params = 2
    #: The layer's own names for its parameters; a network adds a number (``W1``).
    param_names = ("W", "b")
    compute_input_grad = True
    #: Forward and backward equations for ``Network.explain``; placeholders name
    #: the input, the output and the parameters.
    equations = ("{y} = {x} @ {W} + {b}",
                 ("d{W} = {x}^T @ d{y}", "d{b} = sum_rows(d{y})", "d{x} = d{y} @ {W}^T"))

    def __init__(self, n_in=None, n_out=None, init="xavier", bias_init=None, bias=True):
        """``Affine()`` takes its weights as arguments (the homework); ``Affine(D, H)``
        also knows their shapes, so that :class:`~chainrule.models.Sequential` can
        create them: ``init`` draws the weight (a name of :mod:`chainrule.init` or a
        callable ``f(shape, rng=, dtype=)``), ``bias_init(D, H, rng, dtype)`` the
        bias (zeros when None; with ``init="torch"``, ``nn.Linear``'s default, the
        bias's draw too); ``bias=False`` leaves the bias out."""
        super().__init__()
        self.has_bias = check_bool(bias, "bias")
        if not self.has_bias:  # the instance's own: the class's are those with a bias
            self.num_params, self.param_names = 1, ("W",)
            self.equations = ("{y} = {x} @ {W}", ("d{W} = {x}^T @ d{y}", "d{x} = d{y} @ {W}^T"))
        if (n_in is None) != (n_out is None):
            raise ValueError(f"Affine takes both sizes or neither, got n_in={n_in!r}, "
                             f"n_out={n_out!r}")
        self.sizes = None if n_in is None else (check_positive_int(n_in, "n_in"),
                                                check_positive_int(n_out, "n_out"))
        self.init = get_initializer(init) if isinstance(init, str) else init
        if isinstance(self.init, TorchInit) and bias_init is None:
            bias_init = self.init.bias   # nn.Linear's bias draw too
        if not callable(self.init):
            raise TypeError(f"init must be an initialiser's name or a callable f(shape, "
                            f"rng=, dtype=), got {type(init).__name__} {init!r}")
        if bias_init is not None and not callable(bias_init):
            raise TypeError(f"bias_init must be None (zeros) or a callable (D, H, rng, "
                            f"dtype) -> (H,) array, got {type(bias_init).__name__} "
                            f"{bias_init!r}")
        self.bias_init = bias_init

    def param_shapes(self) -> list[tuple]:
        """The shapes of ``[weight, bias]`` (``[weight]`` without a bias); none known
        for ``Affine()``, which takes its weights as they come."""
        if self.sizes is None:
            return []
        n_in, n_out = self.sizes
        return [(n_in, n_out), (n_out,)] if self.has_bias else [(n_in, n_out)]

    def init_params(self, rng, dtype):
        """The initial ``[weight, bias]``, drawn in that order from ``rng``."""
        if self.sizes is None:
            raise ValueError("Affine() has no sizes to create its parameters from: build "
                             "it as Affine(n_in, n_out) inside a Sequential")
        n_in, n_out = self.sizes
        weight = self.init([n_in, n_out], rng=rng, dtype=dtype)
        if not self.has_bias:
            return [weight]
        bias = (np.zeros(n_out, dtype=dtype) if self.bias_init is None
                else self.bias_init(n_in, n_out, rng, dtype))
        return [weight, bias]

    def forward(self, inputs, weight, bias=None):
        """Forward pass.

        Parameters
        ----------
        inputs : ndarray, shape (N, D)
        weight : ndarray, shape (D, H)
        bias : ndarray, shape (H,)
            Given exactly when the layer has one (``bias=True``, the default).

        Returns
        -------
        out : ndarray, shape (N, H)
        """
        if self.validate:
            inputs = as_float_array(inputs, "inputs", ndim=2)
            weight = as_float_array(weight, "weight", ndim=2)
            if (bias is None) == self.has_bias:
                raise TypeError(f"{self!r} takes {'a' if self.has_bias else 'no'} bias "
                                f"after its weight, got {'none' if bias is None else 'one'}")
            if inputs.shape[1] != weight.shape[0]:
                raise ValueError(f"inputs has {inputs.shape[1]} features but weight expects "
                                 f"{weight.shape[0]}: inputs {shape_str(inputs.shape)}, "
                                 f"weight {shape_str(weight.shape)}")
            if bias is not None and (bias := as_float_array(bias, "bias", ndim=1)).shape[0] \
                    != weight.shape[1]:
                raise ValueError(f"bias must have shape ({weight.shape[1]},) to match weight "
                                 f"{shape_str(weight.shape)}, got {shape_str(bias.shape)}")
        self.cache = (inputs, weight)
        # Adding the bias in place saves a second (N, H) array: 2.6x faster on the
        # full digits batch, where allocating that array dominates.
        out = matmul(inputs, weight)
        if bias is not None:
            out += bias
        return out

    def backward(self, d_out):
        """Backward pass.

        With ``out = X W + b``: ``dX = d_out W^T`` (N,H)@(H,D), ``dW = X^T d_out``
        (D,N)@(N,H), and ``db`` sums ``d_out`` over the batch because ``b`` is
        broadcast to every row.

        Returns
        -------
        d_inputs : ndarray, shape (N, D), or None when ``compute_input_grad`` is off
        d_weight : ndarray, shape (D, H)
        d_bias : ndarray, shape (H,); left out without a bias
        """
        inputs, weight = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, (0 if inputs is None else inputs.shape[0],
                                          0 if weight is None else weight.shape[1]))
        d_inputs = matmul_nt(d_out, weight) if self.compute_input_grad else None
        d_weight = matmul_tn(inputs, d_out)
        if not self.has_bias:
            return d_inputs, d_weight
        # The column sums as a matrix-vector product: NumPy's sum over the rows of a
        # narrow (N, H) array is ~4x slower (23 us against 5 us for 1347 x 10).
        d_bias = ones(d_out.shape[0], d_out.dtype) @ d_out
        return d_inputs, d_weight, d_bias

    def __repr__(self):
        sizes = "" if self.sizes is None else f"{self.sizes[0]}, {self.sizes[1]}"
        return f"Affine({sizes}{', ' if sizes else ''}bias=False)" if not self.has_bias \
            else f"Affine({sizes})"


class Identity(Layer):
    """The identity ``out = inputs``: scikit-learn's ``activation='identity'`` (a linear
    hidden layer, e.g. a bottleneck).

    Shape: inputs of any shape -> out of the same shape (the same array, not a copy).
    """

    equations = ("{y} = {x}", ("d{x} = d{y}",))

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        # Only the shape is kept, for backward's check of d_out.
        self.cache = np.shape(inputs)
        return inputs

    def backward(self, d_out):
        """The slope is 1 everywhere: ``d_out`` passes through unchanged."""
        return self._check_d_out(d_out, self.cache)

class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``p`` and
    scale the survivors by ``1 / (1 - p)``; outside training, the identity.

    Shape: inputs of any shape -> out of the same shape.

    Parameters
    ----------
    p : float, default=0.5
        Drop probability, in [0, 1]. ``p=1`` drops everything: in training the output
        and the gradient are ``inputs * 0``, as PyTorch's.
    rng : None, int or numpy.random.Generator
        Source of the masks. ``None``: the generator of the network it joins
        (``Sequential(..., rng=...)``), else NumPy's global one.
    """

    equations = ("{y} = {x} * M / (1 - p)   (M: Bernoulli keep-mask, training only)",
                 ("d{x} = d{y} * M / (1 - p)",))

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = check_in_interval(p, "p", 0.0, 1.0, high_closed=True)
        self.rng = check_rng(rng)
        self.rng_given = rng is not None

    #: Drop whole channels (axis 1) instead of entries (Dropout1d, Dropout2d).
    channel_wise = False
    #: Under MPI (``fit(..., comm=)``), ``(first row, rows)`` of this rank's shard in the
    #: global batch: the masks of the whole batch are drawn, as one process draws them,
    #: and the shard's rows kept, so the ranks' masks are one process's, not repeats.
    batch_shard: tuple[int, int] | None = None

    def forward(self, inputs):
        inputs = self._check_input(inputs)
        if not self.training or self.p == 0.0:
            self.cache = ("identity", np.shape(inputs))
            return inputs
        shape = np.shape(inputs)
        drawn = shape[:2] + (1,) * (len(shape) - 2) if self.channel_wise else shape
        if self.batch_shard is None:
            keep = self.rng.random(drawn) >= self.p
        else:
            first, rows = self.batch_shard
            keep = self.rng.random((rows,) + drawn[1:])[first:first + shape[0]] >= self.p
        mask = keep.astype(inputs.dtype)   # all 0 for p = 1: no 0 / 0 below
        if self.p < 1.0:
            mask /= inputs.dtype.type(1.0 - self.p)
        # (a channel's draw spread over its positions: a read-only view, no copy)
        self.cache = ("mask", np.broadcast_to(mask, shape))
        return inputs * mask

    def backward(self, d_out):
        """Gradients flow only through the kept entries, scaled like the forward pass."""
        kind, value = self.cache if self.cache is not None else (None, None)
        d_out = self._check_d_out(d_out, value if kind == "identity" else np.shape(value))
        return d_out if kind == "identity" else d_out * value

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class Dropout1d(Dropout):
    """Channel dropout, as ``torch.nn.Dropout1d``: in training, zero each sample's
    channel with probability ``p`` (all of its positions), scaling the others by
    ``1 / (1 - p)``; outside training, the identity.

    Shape: inputs (N, C, L) -> out of the same shape. Parameters as :class:`Dropout`'s.
    """

    channel_wise = True
    equations = ("{y} = {x} * M / (1 - p)   (M: a Bernoulli keep-mask per sample and "
                 "channel, training only)", ("d{x} = d{y} * M / (1 - p)",))

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 2:
            raise ValueError("it takes sequences (N, C, L)")


class Dropout2d(Dropout1d):
    """Channel dropout, as ``torch.nn.Dropout2d``: each sample's channel of an image
    zeroed with probability ``p`` in training (as :class:`Dropout1d`).

    Shape: inputs (N, C, H, W) -> out of the same shape.
    """

    def check_input_shape(self, shape) -> None:
        """``ValueError`` unless a sample of ``shape`` (batch axis left out) fits."""
        if len(shape) != 3:
            raise ValueError("it takes images (N, C, H, W)")
