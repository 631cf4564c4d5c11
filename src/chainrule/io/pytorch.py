"""A PyTorch ``nn.Sequential`` as a chainrule :class:`~chainrule.models.Sequential`,
with its weights: :func:`from_torch`.

For a PyTorch user who brings a model along (to train it on, to read its backward
pass layer by layer, or to check one library against the other): the same layers
with the same settings, a copy of the same parameters and running statistics, so
that both compute the same function. PyTorch is not a dependency of chainrule; the
function imports it only to recognise the modules it is given.

Each module maps to the chainrule layer of the same name and constructor arguments,
so the conversion is a table (:data:`CONVERTERS`). A ``Linear``'s weight is stored
transposed, ``(in, out)``, as the homework's ``X @ W`` wants it; every other array
keeps PyTorch's layout. What would make the copy compute or train otherwise is
refused, named by its place in the model: a module chainrule has no layer for, a
subclass (whose ``forward`` may differ), a setting the layer does not take, hooks,
parametrizations, and a parameter two modules share (chainrule's layers each hold their
own). A module at two places without parameters (one ``ReLU`` object twice) becomes
two layers, as its forward runs twice.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from ..conv import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Flatten,
    MaxPool2D,
    Unflatten,
)
from ..conv1d import AdaptiveAvgPool1D, AdaptiveMaxPool1D, AvgPool1D, Conv1D, MaxPool1D
from ..convtranspose import ConvTranspose2D
from ..explain import WIDTH_KEEPING
from ..groupnorm import GroupNorm
from ..layers import (
    ELU,
    GELU,
    Affine,
    Dropout,
    Dropout1d,
    Dropout2d,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from ..models import Sequential
from ..normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LogSoftmax, Softmax
from ..stateful import check_dtype, stateful_names

__all__ = ["from_torch", "CONVERTERS"]


def _linear(m):
    return Affine(m.in_features, m.out_features, bias=m.bias is not None), \
        [m.weight.T, m.bias]


def _batchnorm(cls):
    def convert(m):
        layer = cls(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                    track_running_stats=m.track_running_stats)
        return layer, [m.weight, m.bias]
    return convert


def _layernorm(m):
    layer = LayerNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine,
                      bias=m.bias is not None)
    return layer, [m.weight, m.bias]


def _conv(cls):
    def convert(m):
        return cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                   padding=m.padding, dilation=m.dilation, groups=m.groups,
                   bias=m.bias is not None, padding_mode=m.padding_mode), [m.weight, m.bias]
    return convert


def _refuse(m, **wanted):
    """``ValueError`` for a setting of ``m`` that chainrule's layer does not have."""
    for name, value in wanted.items():
        got = getattr(m, name)
        if got != value and not (np.ndim(got) and set(np.ravel(got)) == {value}):
            raise ValueError(f"{type(m).__name__}({name}={got!r}) has no chainrule "
                             f"counterpart (its layer takes {name}={value!r} only)")


def _conv_transpose(m):
    _refuse(m, padding_mode="zeros")   # (torch's own forward refuses the others)
    return ConvTranspose2D(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                           m.output_padding, m.groups, m.bias is not None,
                           m.dilation), [m.weight, m.bias]


def _maxpool(cls):
    def convert(m):
        _refuse(m, dilation=1, return_indices=False)
        return cls(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode), []
    return convert


def _avgpool(cls):
    def convert(m):
        if hasattr(m, "divisor_override"):   # (AvgPool1d has none)
            _refuse(m, divisor_override=None)
        return cls(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                   count_include_pad=m.count_include_pad), []
    return convert


def _adaptive_max(cls):
    def convert(m):
        _refuse(m, return_indices=False)
        return cls(_output_size(m)), []
    return convert


def _output_size(m):
    """An adaptive pool's ``output_size``; torch's ``None`` (keep that axis's input size)
    is refused by name: chainrule's adaptive pools take sizes only."""
    size = m.output_size
    if size is None or (isinstance(size, tuple) and None in size):
        raise ValueError("an output size of None (the input's size on that axis) is not "
                         "taken: give every size")
    return size


def _along_axis(cls):
    def convert(m):
        if m.dim is None:
            raise ValueError(f"{type(m).__name__}(dim=None) picks its axis from the "
                             f"input's shape; give the axis (dim=1 for a network's outputs)")
        return cls(dim=m.dim), []
    return convert


#: PyTorch's module class name -> a function of the module giving ``(layer, arrays)``,
#: the arrays (tensors, or None where a bias is off) in the order the layer takes them.
CONVERTERS = {
    "Linear": _linear,
    "Conv2d": _conv(Conv2D),
    "Conv1d": _conv(Conv1D),
    "ConvTranspose2d": _conv_transpose,
    "BatchNorm1d": _batchnorm(BatchNorm1d),
    "BatchNorm2d": _batchnorm(BatchNorm2d),
    "LayerNorm": _layernorm,
    "GroupNorm": lambda m: (GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine),
                            [m.weight, m.bias]),
    "ReLU": lambda m: (ReLU(), []),
    "ReLU6": lambda m: (ReLU6(), []),
    "Hardtanh": lambda m: (Hardtanh(m.min_val, m.max_val), []),
    "Hardsigmoid": lambda m: (Hardsigmoid(), []),
    "Hardswish": lambda m: (Hardswish(), []),
    "LeakyReLU": lambda m: (LeakyReLU(m.negative_slope), []),
    "Tanh": lambda m: (Tanh(), []),
    "Sigmoid": lambda m: (Sigmoid(), []),
    "GELU": lambda m: (GELU(m.approximate), []),
    "SiLU": lambda m: (SiLU(), []),
    "ELU": lambda m: (ELU(m.alpha), []),
    "Softplus": lambda m: (Softplus(m.beta, m.threshold), []),
    "PReLU": lambda m: (PReLU(m.num_parameters, float(m.init)), [m.weight]),
    "Identity": lambda m: (Identity(), []),
    "Dropout": lambda m: (Dropout(m.p), []),
    "Dropout1d": lambda m: (Dropout1d(m.p), []),
    "Dropout2d": lambda m: (Dropout2d(m.p), []),
    "Softmax": _along_axis(Softmax),
    "LogSoftmax": _along_axis(LogSoftmax),
    "Flatten": lambda m: (Flatten(m.start_dim, m.end_dim), []),
    "Unflatten": lambda m: (Unflatten(m.dim, m.unflattened_size), []),
    "MaxPool2d": _maxpool(MaxPool2D),
    "AvgPool2d": _avgpool(AvgPool2D),
    "AdaptiveAvgPool2d": lambda m: (AdaptiveAvgPool2D(_output_size(m)), []),
    "MaxPool1d": _maxpool(MaxPool1D),
    "AvgPool1d": _avgpool(AvgPool1D),
    "AdaptiveAvgPool1d": lambda m: (AdaptiveAvgPool1D(_output_size(m)), []),
    "AdaptiveMaxPool2d": _adaptive_max(AdaptiveMaxPool2D),
    "AdaptiveMaxPool1d": _adaptive_max(AdaptiveMaxPool1D),
}

# The layers that take images (or sequences: the 1-D layers are subclasses of these): a
# network that starts with one needs input_shape.
_IMAGE_LAYERS = (Conv2D, BatchNorm2d, MaxPool2D, AvgPool2D, AdaptiveAvgPool2D,
                 AdaptiveMaxPool2D, ConvTranspose2D)


def _modules(torch, module, where="module"):
    """The leaf modules of ``module`` in order, nested ``nn.Sequential`` flattened,
    each with the path that names it in an error."""
    if type(module) is not torch.nn.Sequential:
        raise TypeError(f"{where} must be a torch.nn.Sequential (its order is its "
                        f"forward pass), got {type(module).__name__}: write the model's "
                        f"layers as an nn.Sequential to convert it")
    _check_plain(where, module)
    out = []
    # Its own entries, as its forward runs them: named_children() lists a module used
    # twice once.
    for name, child in module._modules.items():
        if child is None:
            continue
        path = f"{where}[{name}]"
        if type(child) is torch.nn.Sequential:
            out += _modules(torch, child, path)
        else:
            out.append((path, child))
    return out


def _check_plain(path, m):
    """Refuse what changes a module's forward beyond its class and settings:
    parameters not yet created (lazy modules, whose hook creates them), hooks,
    parametrizations (``weight_norm``)."""
    from torch.nn.modules.lazy import LazyModuleMixin
    from torch.nn.utils import parametrize

    if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params():
        raise TypeError(f"{path} is a lazy module whose parameters do not exist yet: run "
                        f"one forward pass through the model first")
    if m._forward_hooks or m._forward_pre_hooks:
        raise TypeError(f"{path} has forward hooks, which change what it computes and "
                        f"which a chainrule layer cannot run: remove them (for the old "
                        f"torch.nn.utils.weight_norm, torch.nn.utils.remove_weight_norm)")
    if parametrize.is_parametrized(m):
        raise TypeError(f"{path} has parametrized tensors ({', '.join(m.parametrizations)}): "
                        f"bake them into plain ones first with torch.nn.utils.parametrize."
                        f"remove_parametrizations(module, name)")


def _convert(torch, path, m):
    """``(layer, arrays)`` of one leaf module (arrays as tensors or None)."""
    _check_plain(path, m)
    kind = type(m).__name__
    if kind not in CONVERTERS or type(m) is not getattr(torch.nn, kind, None):
        base = next((c.__name__ for c in type(m).__mro__[1:] if c.__name__ in CONVERTERS
                     and c is getattr(torch.nn, c.__name__, None)), None)
        what = (f"a subclass of torch.nn.{base}, whose forward may differ" if base else
                f"{type(m).__module__}.{type(m).__qualname__}, which chainrule has no "
                f"layer for")
        raise TypeError(f"{path} is {what}; from_torch converts the torch.nn modules "
                        f"{', '.join(CONVERTERS)}")
    try:
        return CONVERTERS[kind](m)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{path} ({m!r}): {exc}") from exc


def _check_parameters(modules) -> None:
    """Refuse a parameter or buffer held by two modules (one module at two places, or
    tied weights): each chainrule layer holds its own, so the copies would train
    apart. Warn of frozen ones (``requires_grad=False``): chainrule trains every
    parameter."""
    owner: dict = {}
    frozen = []
    for path, m in modules:
        params = list(m.parameters(recurse=False))
        for p in params + list(m.buffers(recurse=False)):
            if id(p) in owner:
                raise ValueError(f"{path} shares a parameter or running statistic with "
                                 f"{owner[id(p)]} (the same module twice, or tied weights): "
                                 f"chainrule's layers each hold their own, so the two "
                                 f"would train apart; use a module of its own at each place")
            owner[id(p)] = path
        if any(not p.requires_grad for p in params):
            frozen.append(path)
    if frozen:
        warnings.warn(f"{', '.join(frozen)} hold parameters with requires_grad=False: the "
                      f"converted model trains every parameter it has (chainrule has no "
                      f"frozen layers)", UserWarning, stacklevel=3)


def _first_takes_images(layers) -> bool:
    """Whether the first layer that changes its input's width takes images."""
    first = next((layer for layer in layers if type(layer) not in WIDTH_KEEPING), None)
    return isinstance(first, _IMAGE_LAYERS)


def _input_layer(input_shape):
    """``Unflatten(input_shape)``, its refusal naming ``input_shape``."""
    try:
        return Unflatten(input_shape)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"input_shape must be the shape of one sample, a tuple of ints "
                        f"such as (C, H, W), got {input_shape!r}") from None


def _torch_paths(exc, paths, input_shape):
    """``exc``'s message with chainrule's ``layers[i]`` named by the torch path."""
    message = re.sub(r"layers\[(\d+)\]", lambda match: paths[int(match.group(1))], str(exc))
    given = f" (with input_shape={tuple(input_shape)})" if input_shape is not None else ""
    return type(exc)(message + given)


def _dtype_of(torch, modules, dtype):
    """The model's dtype: ``dtype``, else float64 when the parameters are, else float32."""
    if dtype is not None:
        return check_dtype(dtype)
    kinds = {p.dtype for _, m in modules for p in m.parameters(recurse=False)}
    return np.dtype(np.float64 if kinds == {torch.float64} else np.float32)


def from_torch(module, *, input_shape=None, loss="cross_entropy", dtype=None, rng=None):
    """The chainrule :class:`~chainrule.models.Sequential` of a PyTorch ``nn.Sequential``,
    holding copies of its parameters and running statistics.

    Parameters
    ----------
    module : torch.nn.Sequential
        The model; nested ``nn.Sequential`` are flattened. Its modules may be
        ``Linear``, ``Conv2d``, ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``,
        ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``GELU``, ``SiLU``, ``ELU``,
        ``Softplus``, ``PReLU``, ``Identity``, ``Dropout``, ``Softmax``, ``LogSoftmax``,
        ``Flatten``, ``Unflatten``, ``MaxPool2d``, ``AvgPool2d``,
        ``AdaptiveAvgPool2d``, ``AdaptiveMaxPool2d``, ``Conv1d``, ``MaxPool1d``,
        ``AvgPool1d``, ``AdaptiveAvgPool1d``, ``AdaptiveMaxPool1d``, ``Dropout1d``,
        ``Dropout2d``, ``Hardtanh``, ``ReLU6``, ``Hardsigmoid``, ``Hardswish`` and
        ``ConvTranspose2d``
        (:data:`CONVERTERS`),
        each with the settings chainrule's layer of the same name takes.
    input_shape : tuple of int, optional
        ``(C, H, W)`` of the images (``(C, L)`` of the sequences), for a model that
        starts with an image layer (``Conv2d``, ``Conv1d``, ...): chainrule's networks
        take one row per sample, so the converted model starts with
        ``Unflatten(input_shape)`` and takes rows of ``C * H * W`` values
        (``images.reshape(len(images), -1)``).
    loss : str or Loss, default="cross_entropy"
        The training loss (a PyTorch model has none): ``"cross_entropy"`` is
        ``nn.CrossEntropyLoss`` on the model's outputs.
    dtype : numpy float dtype, optional
        The model's dtype; by default float64 when every parameter is, else float32.
    rng : None, int or numpy.random.Generator
        Source of the Dropout layers' masks.

    Returns
    -------
    Sequential
        Its parameters are named by chainrule's rule (``W1``, ``b1``, ``gamma2``, ...,
        :func:`chainrule.stateful.stateful_names`); a ``Linear``'s ``W`` is its
        ``weight.T``. They are copies: training one model leaves the other as it is.

    Raises
    ------
    TypeError
        For a module that is not an ``nn.Sequential``, or one inside it that chainrule
        has no layer for (or a subclass of one), or with hooks or parametrizations,
        named by its place.
    ValueError
        For a setting chainrule's layer does not take (e.g. ``MaxPool2d(dilation=2)``),
        a parameter two modules share, an image model without ``input_shape``, or
        layers whose shapes do not fit.

    Warns
    -----
    UserWarning
        For parameters with ``requires_grad=False``: the converted model trains them.

    Example
    -------
    >>> import torch, chainrule as cr                               # doctest: +SKIP
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
    ...                           torch.nn.Linear(32, 10))          # doctest: +SKIP
    >>> model = cr.io.from_torch(net)                               # doctest: +SKIP
    >>> sorted(model.params)                                        # doctest: +SKIP
    ['W1', 'W2', 'b1', 'b2']
    """
    import torch  # the caller's: a torch module came in

    modules = _modules(torch, module)
    _check_parameters(modules)
    model_dtype = _dtype_of(torch, modules, dtype)
    layers, tensors, paths = [], [], []
    for path, m in modules:
        layer, arrays = _convert(torch, path, m)
        layers.append(layer)
        tensors.append([a for a in arrays if a is not None])
        paths.append(path)
    if not any(tensors):
        raise ValueError("the model has no parameters: there is nothing to train or copy")
    if input_shape is not None:
        layers.insert(0, _input_layer(input_shape))
        tensors.insert(0, [])
        paths.insert(0, "the Unflatten(input_shape) before module")
        modules.insert(0, ("input_shape", None))
    elif _first_takes_images(layers):
        raise ValueError("the model takes images first: give input_shape=(C, H, W), the "
                         "shape of one image (the converted model takes rows of C*H*W "
                         "values), or (C, L) for sequences")

    def array(tensor):  # a copy, so that neither model trains the other's arrays
        return tensor.detach().cpu().double().numpy().astype(model_dtype)

    names = stateful_names(layers)
    params = {name: array(t) for ts, (p_names, _) in zip(tensors, names, strict=True)
              for name, t in zip(p_names, ts, strict=True)}
    try:
        model = Sequential(layers, loss=loss, rng=rng, dtype=model_dtype, params=params)
    except ValueError as exc:  # a shape that does not fit: named by the torch path
        raise _torch_paths(exc, paths, input_shape) from exc
    for layer, (_, m), (_, b_names) in zip(layers, modules, names, strict=True):
        for own, name in zip(getattr(layer, "buffer_names", ()), b_names, strict=True):
            model.buffers[name][...] = array(getattr(m, own))   # PyTorch's names
    return model
