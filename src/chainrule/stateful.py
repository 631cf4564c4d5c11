"""Names and ownership of the state layers declare: parameters and buffers.

A layer may declare ``param_names`` (the arrays its ``forward`` takes after the
inputs) and ``buffer_names`` (non-trainable arrays it holds as attributes, such as
running statistics). A network names them all with one rule,
:func:`stateful_names`, and owns the buffers through :func:`buffer_slots`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref

import numpy as np

from ._validation import shape_str
from .layers import Dropout

__all__ = ["stateful_names", "buffer_slots", "check_layers", "build_state", "first_trained",
           "input_width", "check_dtype", "kept_caches", "smallest_batch", "rows_needed",
           "check_batch_rows",
           "check_unowned", "claim_layers", "release_layers", "cache_owners",
           "check_backward_result", "check_pairs"]


def stateful_names(layers) -> list[tuple[tuple, tuple]]:
    """The network's ``(param names, buffer names)`` of each layer: the layer's own
    names (``param_names``, ``buffer_names``) numbered by its place among the layers
    that have any (``W1``, ``b1``, ``gamma2``, ``running_mean2``), unnumbered when
    only one layer has any (``W``, ``b``): the rule of :func:`affine_param_names`."""
    own = [(tuple(getattr(layer, "param_names", ()) or ()),
            tuple(getattr(layer, "buffer_names", ()) or ())) for layer in layers]
    n_stateful = sum(1 for p, b in own if p or b)
    out, k = [], 0
    seen: dict = {}   # network name -> (layer index, the layer's own name)
    for i, (p, b) in enumerate(own):
        k += bool(p or b)
        suffix = "" if n_stateful == 1 else str(k)
        out.append((tuple(n + suffix for n in p), tuple(n + suffix for n in b)))
        for name, full in zip(p + b, out[-1][0] + out[-1][1], strict=True):
            if full in seen:   # a name ending in a digit, numbered: 'W1' at 2 is 'W12'
                j, other = seen[full]
                culprit = j if other[-1:].isdigit() else i
                raise ValueError(f"layers {j} and {i} would both hold {full!r} ({other!r} "
                                 f"and {name!r} numbered by their places): give "
                                 f"{type(layers[culprit]).__name__} (layer {culprit}) "
                                 f"names that do not end in a digit (e.g. 'Wa', 'Wb')")
            seen[full] = (i, name)
    return out


def buffer_slots(layers, buffers):
    """``({layer index: [(attribute, name), ...]}, buffers)`` for a network.

    Without ``buffers``, the arrays the layers hold (``buffer_names``) are collected
    under the names of :func:`stateful_names`; with it, each layer's buffers are
    looked up under those names and must all be there.
    """
    names = stateful_names([layer for layer, _ in layers])
    collect = buffers is None
    buffers = {} if collect else buffers
    slots: dict = {}
    for i, ((layer, _), (_, global_names)) in enumerate(zip(layers, names, strict=True)):
        local = tuple(getattr(layer, "buffer_names", ()) or ())
        for attr, name in zip(local, global_names, strict=True):
            if collect:
                buffers[name] = np.asarray(getattr(layer, attr))
            elif name not in buffers:
                raise ValueError(f"layer {i} ({layer!r}) declares buffer {attr!r}, expected "
                                 f"as {name!r} in buffers, which has {sorted(buffers)}")
            slots.setdefault(i, []).append((attr, name))
    return slots, buffers


#: Each layer object's network (weakly: a network no longer used frees its layers).
_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_unowned(layers) -> None:
    """Refuse a layer object at two places, or one that another live network uses.

    A layer keeps its last forward pass (its cache) for its backward: a second place
    would overwrite what the first one's backward needs. A network sets its layers up
    for itself (the first one computes no input gradient, the caches hold its
    batches), and its parameters are its own: a layer shared with a second network
    would share neither weights nor a correct backward pass.
    """
    seen: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if id(layer) in seen:
            raise ValueError(f"layers[{i}] is the same {type(layer).__name__} object as "
                             f"layers[{seen[id(layer)]}]: a layer keeps its forward pass "
                             f"for its backward, so each position needs a layer of its "
                             f"own (a new {type(layer).__name__}(...) at each)")
        seen[id(layer)] = i
        try:
            owner = _OWNERS.get(layer)
        except TypeError:  # a layer that cannot be weakly referenced or hashed
            continue
        if owner is not None and owner() is not None:
            raise ValueError(f"layers[{i}] ({layer!r}) is already a layer of another "
                             f"network: a layer serves one network (its parameters live "
                             f"in that network's params, and its cached forward pass in "
                             f"the layer); make a new one, or copy.deepcopy(layer)")


def claim_layers(network) -> None:
    """Record ``network`` as its layers' owner (see :func:`check_unowned`)."""
    for layer, _ in network.layers:
        try:
            _OWNERS[layer] = weakref.ref(network)
        except TypeError:
            pass


def release_layers(network) -> None:
    """Forget ``network`` as its layers' owner (a network whose building failed)."""
    for layer, _ in network.layers:
        try:
            if (owner := _OWNERS.get(layer)) is not None and owner() is network:
                del _OWNERS[layer]
        except TypeError:
            pass


def check_layers(layers) -> list:
    """``layers`` as a list, after checking each has ``forward`` and ``backward``."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of layer objects, got {layers!r}")
    layers = list(layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, type):  # forward is then an unbound function: callable
            raise TypeError(f"layers[{i}] is the class {layer.__name__}, not a layer: "
                            f"write {layer.__name__}(...) to make one")
        if not (callable(getattr(layer, "forward", None))
                and callable(getattr(layer, "backward", None))):
            raise TypeError(f"layers[{i}] must have forward and backward methods, got "
                            f"{layer!r}")
        if isinstance(getattr(layer, "params", None), dict) and hasattr(layer, "layers"):
            raise TypeError(f"layers[{i}] is a network ({type(layer).__name__}), which "
                            f"does not nest in another: list its kinds of layers in the "
                            f"outer list itself, e.g. Sequential([Affine(4, 5), ReLU(), "
                            f"Affine(5, 3)])")
    check_unowned(layers)
    return layers


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy floating-point dtype, the one of every parameter and buffer."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy float dtype, got {dtype!r}") from exc
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    return dtype


def build_state(layers, rng, dtype, params=None) -> tuple[list, dict, dict]:
    """``(layers with their parameter names, params, buffers)`` for a Sequential.

    Each layer declaring ``param_names`` creates its arrays with ``init_params(rng,
    dtype)``, in layer order (so the draws follow the layers), unless ``params``
    already holds them by the names of :func:`stateful_names`; buffers are the
    layers' own arrays, cast to ``dtype``.
    """
    pairs, new_params, buffers = [], {}, {}
    for i, (layer, (p_names, b_names)) in enumerate(zip(layers, stateful_names(layers),
                                                        strict=True)):
        arrays: list | None
        # Arrays made but never named would not train; a layer that says it has none
        # (param_names = (), as a BatchNorm's with affine=False) is no such mistake.
        if not p_names and hasattr(layer, "init_params") and not hasattr(layer, "param_names"):
            raise TypeError(f"layers[{i}] ({layer!r}) has init_params but no param_names: "
                            f"declare param_names, one name per array its forward takes "
                            f"after the input (e.g. param_names = ('W', 'b'))")
        declared = getattr(layer, "num_params", 0)
        if declared and not hasattr(layer, "param_names"):
            raise TypeError(f"layers[{i}] ({layer!r}) says num_params = {declared} "
                            f"but declares no param_names: a network passes its forward "
                            f"the arrays param_names names (e.g. param_names = ('W', 'b')), "
                            f"created by its init_params(rng, dtype)")
        if params is not None:
            arrays = [params.get(n) for n in p_names]
        elif p_names and hasattr(layer, "init_params"):
            arrays = _drawn(layer, i, rng, dtype)
        else:
            arrays = None if p_names else []
        if arrays is None or len(arrays) != len(p_names) or any(a is None for a in arrays):
            raise ValueError(f"layers[{i}] ({layer!r}) declares parameters {list(p_names)} "
                             f"but " + ("params does not hold them all" if params is not None
                                        else "has no init_params(rng, dtype) method to "
                                        "create them" if arrays is None
                                        else "its init_params(rng, dtype) does not return "
                                        "one array for each"))
        if i == 0 and arrays and np.ndim(arrays[0]) > 2 and \
                getattr(layer, "in_features", None) is None:
            raise ValueError(f"layers[0] ({layer!r}) takes images, but a network takes one "
                             f"row per sample: start it with Unflatten((C, H, W)) (or "
                             f"Unflatten((C, L)) for sequences)")
        shapes = layer.param_shapes() if hasattr(layer, "param_shapes") else []
        for j, (name, a) in enumerate(zip(p_names, arrays, strict=True)):
            # Drawn arrays are cast; given ones must already be right (a file's).
            a = np.asarray(a) if params is not None else np.asarray(a, dtype=dtype)
            if a.dtype != dtype:
                raise ValueError(f"parameter {name!r} of layers[{i}] ({layer!r}) has dtype "
                                 f"{a.dtype} {shape_str(a.shape)}, expected {dtype}")
            if j < len(shapes) and a.shape != tuple(shapes[j]):
                where = (f"params[{name!r}]" if params is not None else
                         f"the array {name!r} of layers[{i}].init_params(rng, dtype) (its "
                         f"init or bias_init?)")
                raise ValueError(f"{where} must have shape {shape_str(shapes[j])} for "
                                 f"layers[{i}] ({layer!r}), got {shape_str(a.shape)}")
            new_params[name] = a
        for attr, name in zip(getattr(layer, "buffer_names", ()), b_names, strict=True):
            setattr(layer, attr, np.asarray(getattr(layer, attr), dtype=dtype))
            buffers[name] = getattr(layer, attr)
        pairs.append((layer, p_names))
    return pairs, new_params, buffers


def _drawn(layer, i: int, rng, dtype) -> list:
    """``layer.init_params(rng, dtype)`` as float arrays of ``dtype``, a failure of the
    layer's initialisers (a user's ``init``) named as theirs."""
    try:
        arrays = [None if a is None else np.asarray(a, dtype=dtype)
                  for a in layer.init_params(rng, dtype)]
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's init may fail any way
        raise ValueError(f"layers[{i}] ({layer!r}): init_params(rng, dtype) failed (its init "
                         f"or bias_init?): {type(exc).__name__}: {exc}") from exc
    if any(a is not None and not np.isfinite(a).all() for a in arrays):
        raise ValueError(f"layers[{i}] ({layer!r}): init_params(rng, dtype) drew NaN or "
                         f"infinite values (its init or bias_init?)")
    return arrays


def input_width(pairs, params) -> int:
    """Columns of a network's input: the first layer that says it, through
    ``in_features`` (Unflatten) or a weight ``(D, H)`` (its first 2-D parameter; the
    first parameter of a layer with none, e.g. BatchNorm1d's ``(D,)``), after any
    parameter-free layers (Dropout or an activation first)."""
    for layer, names in pairs:
        width = getattr(layer, "in_features", None)
        if width is not None:
            return int(width)
        if names:
            first = params[names[0]]
            if first.ndim == 2:  # an Affine layer's weight: the usual case, first
                return first.shape[0]
            return next((p.shape[0] for p in map(params.get, names) if p.ndim == 2),
                        first.shape[0])
    raise ValueError("the network has no layer with parameters to tell its input width")


def cache_owners(network) -> list:
    """The layers and the loss that keep a forward pass for their backward."""
    return [o for o in [layer for layer, _ in network.layers] + [network.loss]
            if hasattr(o, "cache")]


@contextlib.contextmanager
def kept_caches(network):
    """Run a prediction without touching what the last training forward cached: each
    layer's ``cache`` and the loss's are put back afterwards, so that a ``backward``
    after it still differentiates that forward (PyTorch lets ``model(x_val)`` run
    between a forward and its ``backward``; here every forward refills the caches)."""
    kept = [(owner, owner.cache) for owner in cache_owners(network)]
    try:
        yield
    finally:
        for owner, cache in kept:
            owner.cache = cache


def first_trained(pairs) -> int:
    """Index of the first ``(layer, names)`` pair whose layer takes parameters
    (``len(pairs)`` if none does).

    Nothing before it has a gradient anyone reads: a network's backward pass ends
    there, and that layer's own input gradient is skipped where it can be
    (``compute_input_grad = False``).
    """
    return next((i for i, (_, names) in enumerate(pairs) if names), len(pairs))


def smallest_batch(n_rows: int, batch_size, drop_last: bool = False) -> int:
    """Rows of the smallest batch of one pass over ``n_rows`` rows in batches of
    ``batch_size`` (None: one batch of every row): the last one, unless ``drop_last``
    drops it when short (0: not one full batch, so no batch at all)."""
    if batch_size is None:
        return n_rows
    if drop_last:
        return batch_size if batch_size <= n_rows else 0
    return min(batch_size, n_rows % batch_size or batch_size)


def rows_needed(layer, sample_shape=None) -> int:
    """The rows a training batch must give ``layer``: its ``min_batch_rows`` (1 if it
    has none), or, for a layer with ``min_batch_values`` (BatchNorm1d: two values of
    each channel), as many rows as hold that many at each channel's positions: one row
    of a ``(C, L)`` sample holds ``L`` (``sample_shape``, the layer's input without the
    batch axis; None: one)."""
    need = getattr(layer, "min_batch_rows", 1)
    values = getattr(layer, "min_batch_values", None)
    if values is not None:
        positions = math.prod(sample_shape[1:]) if sample_shape is not None else 1
        need = max(need, -(-values // max(positions, 1)))
    return need


def check_batch_rows(pairs, n_rows: int, batch_size, drop_last: bool = False,
                     sample_shapes=None) -> None:
    """Raise ``ValueError`` before training when a batch of ``n_rows`` rows cut into
    ``batch_size`` (None: one batch) would give a layer fewer rows than it needs
    (:func:`rows_needed`, of each layer's ``sample_shapes``: BatchNorm1d's statistics
    need two values of each feature), naming ``batch_size``, or when ``drop_last``
    would leave no batch at all."""
    smallest = smallest_batch(n_rows, batch_size, drop_last)
    if not smallest:
        raise ValueError(f"drop_last=True with batch_size={batch_size} above the {n_rows} "
                         f"training rows leaves no batch to train on: choose a batch_size "
                         f"of at most {n_rows}")
    for i, (layer, _) in enumerate(pairs):
        need = rows_needed(layer, None if sample_shapes is None else sample_shapes[i])
        if smallest < need:
            # drop_last helps only where full batches hold enough rows
            full = n_rows if batch_size is None else min(batch_size, n_rows)
            raise ValueError(f"batch_size={batch_size} leaves a batch of {smallest} of the "
                             f"{n_rows} training rows, but layers[{i}] ({layer!r}) needs "
                             f"at least {need} rows in training: choose a batch_size that "
                             f"does not leave so few"
                             f"{'' if drop_last or full < need else ' (or drop_last=True)'}")


def check_backward_result(layer, names, result, params) -> None:
    """What a layer of the user's own returned from ``backward``, checked, so that a
    mistake is named here rather than as a NumPy error in the layer below."""
    label = type(layer).__name__
    if not names:
        if not isinstance(result, np.ndarray):
            raise TypeError(f"{label}.backward must return the gradient of its inputs, an "
                            f"ndarray (it has no parameters), got {type(result).__name__}")
        return
    if not isinstance(result, (tuple, list)) or len(result) != len(names) + 1:
        got = (f"{len(result)} values" if isinstance(result, (tuple, list))
               else type(result).__name__)
        wanted = ", ".join(["d_inputs"] + [f"d_{n}" for n in names])
        raise TypeError(f"{label}.backward must return ({wanted}) (its parameters are "
                        f"{list(names)}), got {got}")
    for name, grad in zip(names, result[1:], strict=True):
        if np.shape(grad) != params[name].shape:
            raise ValueError(f"{label}.backward: the gradient of {name} has shape "
                             f"{shape_str(np.shape(grad))}, but {name} has shape "
                             f"{shape_str(params[name].shape)} (a sum over the batch's rows "
                             f"missing?)")


def check_pairs(layers) -> list:
    """``Network``'s ``layers``: ``(layer, parameter names)`` pairs, the names a tuple
    of str (a bare string would be read as its letters)."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a list of (layer, parameter names) pairs, got "
                        f"{type(layers).__name__}")
    pairs = list(layers)
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and isinstance(pair[1], (tuple, list))
                and all(isinstance(n, str) for n in pair[1])):
            raise TypeError(f"layers[{i}] must be a (layer, parameter names) pair, the names "
                            f"a tuple of str such as ('W1', 'b1') (Sequential builds the "
                            f"pairs from plain layers), got {pair!r}")
        pairs[i] = (pair[0], tuple(pair[1]))
    return pairs


def warn_eval_backward(layers) -> bool:
    """Warn that a backward pass follows an evaluation-mode forward when a layer of
    ``(layer, names)`` pairs computes otherwise in training (a Dropout that drops, a
    layer with buffers: a batch normalisation); returns whether it warned.

    ``Network.forward`` runs in evaluation mode by default, PyTorch's modules in
    training mode: a loop written the PyTorch way gets gradients with nothing dropped
    and running statistics that never update, without an error to say so."""
    differ = [layer for layer, _ in layers if getattr(layer, "buffer_names", ())
              or (isinstance(layer, Dropout) and layer.p > 0)]
    if differ:
        warnings.warn(f"backward after an evaluation-mode forward (forward's default is "
                      f"training=False): {', '.join(map(repr, differ[:3]))} computed as in "
                      f"evaluation (nothing dropped, running statistics used and not "
                      f"updated), so these are not the training gradients; to train, call "
                      f"forward(X, training=True) (PyTorch's model.train())",
                      UserWarning, stacklevel=3)
    return bool(differ)
