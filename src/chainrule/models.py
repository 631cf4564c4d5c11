"""Networks built from layers or sizes: :class:`Sequential` and :class:`MLP`.

:class:`~chainrule.network.Network` (re-exported here) is the general machine.
:class:`Sequential` makes one from layers that create their own parameters, and
:class:`MLP` builds the usual stack of Affine layers with activations (and optional
Dropout) between them. The homework's two models are special cases of :class:`MLP`
(:mod:`chainrule.homework`).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import check_choice, check_in_interval, check_rng
from .explain import check_shapes
from .init import CUSTOM_INIT, TORCH_INIT, SklearnInit, get_initializer
from .layers import (
    ELU,
    GELU,
    Affine,
    Dropout,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .losses import get_loss, is_multiclass
from .network import ACTIVATION_BUDGET, Network, affine_param_names
from .stateful import build_state, check_dtype, check_layers, release_layers

__all__ = ["Network", "Sequential", "MLP", "ACTIVATIONS", "affine_param_names",
           "ACTIVATION_BUDGET", "SKLEARN_INIT"]

#: ``MLP(init=...)`` name of scikit-learn's initialisation (weights and biases uniform).
SKLEARN_INIT = "sklearn"

ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
               "identity": Identity, "logistic": Sigmoid, "gelu": GELU, "silu": SiLU,
               "elu": ELU, "softplus": Softplus}


class Sequential(Network):
    """A :class:`Network` built from a list of layers that create their own parameters.

    Parameters
    ----------
    layers : sequence of layers
        In order. A layer with parameters declares their names (``param_names``, e.g.
        ``("W", "b")``) and creates them with ``init_params(rng, dtype) -> [arrays]``
        (e.g. ``Affine(64, 128)``); a layer with non-trainable state declares
        ``buffer_names`` and holds those arrays as attributes (see :class:`Network`).
    loss : str or Loss, default="cross_entropy"
        A name of :data:`chainrule.losses.LOSSES` or a loss object.
    rng : None, int or numpy.random.Generator
        Source of the initial parameters, drawn layer by layer in order, and then of
        the masks of every Dropout layer built without a generator of its own (as in
        :class:`MLP`): one seed makes the whole network reproducible.
    dtype : numpy float dtype, default=float64
        Dtype of every parameter and buffer.
    params : dict of str to ndarray, optional
        The parameters to use instead of drawing new ones (a model file's), by the
        names the layers get; nothing is drawn then.

    Attributes
    ----------
    params, buffers : dict of str to ndarray
        Named by :func:`chainrule.stateful.stateful_names`: ``W1, b1, gamma2, ...``.

    Example
    -------
    >>> import chainrule as cr
    >>> model = cr.Sequential([cr.Affine(4, 8), cr.ReLU(), cr.Affine(8, 3)], rng=0)
    >>> sorted(model.params)
    ['W1', 'W2', 'b1', 'b2']
    """

    def __init__(self, layers, loss="cross_entropy", rng=None, dtype=np.float64, *,
                 params=None):
        layers = check_layers(layers)
        dtype = check_dtype(dtype)
        random = check_rng(rng)
        loss_fn = get_loss(loss)  # resolved before any weight is drawn
        pairs, params, buffers = build_state(layers, random, dtype, params)
        if rng is not None:
            for layer in layers:
                if isinstance(layer, Dropout) and not getattr(layer, "rng_given", True):
                    layer.rng = random
        super().__init__(pairs, params, loss_fn, buffers)
        try:
            check_shapes(self)  # a mismatch named now: inside a network layers check nothing
        except BaseException:   # (a custom layer's output_shape may raise anything)
            release_layers(self)  # the layers are free for the network built next
            raise


class MLP(Sequential):
    """Multilayer perceptron: Affine layers with an activation (and optional
    Dropout) between them and no activation after the last one.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden_1, ..., n_outputs]``; at least two entries.
    activation : str or sequence of str, default="relu"
        'relu', 'leaky_relu', 'tanh' or 'sigmoid'; a sequence gives one per hidden layer.
    dropout : float, default=0.0
        Drop probability after each hidden activation, in [0, 1).
    init : str or callable, default="xavier"
        Weight initialiser: 'xavier' ('xavier_uniform'), 'xavier_normal', 'he'
        ('he_normal'), 'he_uniform' or 'zeros'; biases start at zero. 'sklearn' is
        scikit-learn's MLP scheme: weights *and* biases ``U(-a, a)`` with ``a =
        sqrt(f / (fan_in + fan_out))``, ``f = 2`` for a logistic ('sigmoid') network,
        else 6; 'torch' is ``nn.Linear``'s default, weights and biases ``U(-a, a)`` with
        ``a = 1 / sqrt(fan_in)``.
    rng : None, int or numpy.random.Generator
        Source of the initial weights and dropout masks; ``None`` is NumPy's global
        generator (the homework's choice).
    dtype : numpy float dtype, default=float64
        Dtype of every parameter; inputs are cast to it.
    loss : {'cross_entropy', 'mse'}, default='cross_entropy'

    Attributes
    ----------
    params : dict of str to ndarray
        ``W1, b1, W2, b2, ...`` (or ``W, b`` for a single layer, as in the homework).

    Shape: X (N, layer_sizes[0]) -> logits (N, layer_sizes[-1]).
    """

    def __init__(self, layer_sizes, activation="relu", dropout=0.0, init="xavier", rng=None,
                 dtype=np.float64, loss="cross_entropy"):
        sizes = self._check_sizes(layer_sizes)
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            check_choice(activation, "activation", ACTIVATIONS)
            activations = [activation] * n_hidden
        elif isinstance(activation, (list, tuple)) and len(activation) == n_hidden:
            activations = list(activation)
        else:  # a wrong count, or e.g. a layer object (a Sequential takes those)
            raise (ValueError if isinstance(activation, (list, tuple)) else TypeError)(
                f"activation must be a name of {sorted(ACTIVATIONS)} or one per hidden layer "
                f"({n_hidden}), got {activation!r}; a layer of your own goes in a Sequential")
        for a in activations:
            check_choice(a, "activation", ACTIVATIONS)
        dropout = check_in_interval(dropout, "dropout", 0.0, 1.0)
        initializer = (SklearnInit(activations or [activation]) if init == SKLEARN_INIT
                       else get_initializer(init))
        dtype = check_dtype(dtype)
        random = check_rng(rng)
        # Resolved before any weight is drawn: a bad name must not consume random numbers.
        loss_fn = get_loss(loss)
        if is_multiclass(loss_fn) and sizes[-1] < 2:  # cross-entropy, MultiMarginLoss
            raise ValueError(f"a {type(loss_fn).__name__} classifier needs at least 2 outputs "
                             f"(classes), got layer_sizes {sizes!r}")

        self.config = {"layer_sizes": sizes, "activation": activation if isinstance(
            activation, str) else activations, "dropout": dropout,
            "init": init if isinstance(init, str) else CUSTOM_INIT,
            "dtype": dtype.name, "loss": loss if isinstance(loss, str) else type(loss).__name__}
        layers = []
        n_layers = len(sizes) - 1
        bias_init = initializer.bias if init in (SKLEARN_INIT, TORCH_INIT) else None
        for i in range(n_layers):
            # Sequential draws W then b for each layer: the homework's order.
            layers.append(Affine(sizes[i], sizes[i + 1], init=initializer,
                                 bias_init=bias_init))
            if i < n_layers - 1:
                layers.append(ACTIVATIONS[activations[i]]())
                if dropout > 0:
                    layers.append(Dropout(dropout, rng=random))
        super().__init__(layers, loss_fn, random, dtype)

    @staticmethod
    def _check_sizes(layer_sizes):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__iter__"):
            raise TypeError(f"layer_sizes must be a sequence of positive integers, got "
                            f"{layer_sizes!r}")
        sizes = list(layer_sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got "
                             f"{sizes!r}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"layer_sizes must hold positive integers, got {sizes!r}")
        return [int(s) for s in sizes]
