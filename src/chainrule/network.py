"""The network: a list of layers, one params dict, one loss, one forward path.

:class:`Network` is the general machine that every chainrule model is: it checks its
inputs once at each public entry point, runs the layers forward (:meth:`Network.walk`,
the one forward path) and backward, predicts in row chunks, and hands its parameters
and buffers out and back (:meth:`Network.state_dict`). The builders that make one from
layers or sizes, :class:`~chainrule.models.Sequential` and :class:`~chainrule.models.MLP`,
live in :mod:`chainrule.models`, which re-exports this class.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._threads import check_threads, threads_for
from ._validation import (
    all_finite,
    as_float_array,
    as_sparse_float,
    check_class_indices,
    check_sample_weight,
    is_class_indices,
    is_sparse,
    key_differences,
    shape_str,
    warn_promoted,
)
from .errors import TrainingDivergedError
from .explain import explain, network_repr, node_names, output_shapes, output_width, summary
from .functional import shift_by_max, sigmoid, softmax
from .layers import Affine
from .loss_base import one_d_targets_message, unchecked
from .losses import BinaryCrossEntropy, CategoricalCrossEntropy, PoissonLoss, is_multiclass
from .optim import step_checked
from .stateful import (
    buffer_slots,
    cache_owners,
    check_backward_result,
    check_pairs,
    check_unowned,
    claim_layers,
    first_trained,
    input_width,
    kept_caches,
    warn_eval_backward,
)
from .torch_names import TorchNetworkHints, state_dict_keys_message

__all__ = ["Network", "LoadedKeys", "affine_param_names", "ACTIVATION_BUDGET"]

#: Bytes of layer outputs :meth:`Network.infer` holds at once (it works in row chunks).
ACTIVATION_BUDGET = 32 * 2**20


class LoadedKeys(NamedTuple):
    """What :meth:`Network.load_state_dict` did not load: the network's keys the dict
    lacked, and the dict's keys the network has not (PyTorch's ``_IncompatibleKeys``)."""

    missing_keys: list
    unexpected_keys: list


def affine_param_names(n_layers: int) -> list[tuple[str, str]]:
    """The ``(weight, bias)`` names of a stack of ``n_layers`` Affine layers.

    ``W``, ``b`` for a single layer (the homework's logistic regression), else
    ``W1``, ``b1``, ``W2``, ``b2``, ... (the homework's network). Model files and
    checkpoints rely on these names.
    """
    if n_layers == 1:
        return [("W", "b")]
    return [(f"W{i}", f"b{i}") for i in range(1, n_layers + 1)]


def _probabilities(logits):
    """Softmax of each row of the logits a network computed: its own float array, so
    without :func:`~chainrule.functional.softmax`'s conversion (a tenth of a one-row
    prediction); a non-finite logit gets that function's error."""
    if not np.isfinite(logits).all():
        return softmax(logits, axis=1)
    e = np.exp(shift_by_max(logits, 1)[0])
    return e / np.sum(e, axis=1, keepdims=True)


class Network(TorchNetworkHints):
    """A sequence of layers sharing one params dict, ending in a loss.

    Parameters
    ----------
    layers : list of (Layer, tuple of str)
        Each layer with the names (keys of ``params``) of the arrays it takes, in the
        order its ``forward`` takes them; ``()`` for a layer without parameters.
    params : dict of str to ndarray
        The parameters, owned by the network and updated in place by optimizers.
    loss : Loss
        The loss applied to the last layer's output.
    buffers : dict of str to ndarray, optional
        Non-trainable state of the layers (running statistics), named like ``params``.
        When None, it is collected from the layers that declare ``buffer_names``
        (arrays they hold as attributes), named by
        :func:`chainrule.stateful.stateful_names`.

    Attributes
    ----------
    buffers : dict of str to ndarray
        Owned by the network: before each layer's ``forward`` the layer's attributes
        are set from it, and after it what the layer left there is stored back, so a
        layer may update its buffers in place or rebind them. Checkpoints, early
        stopping, divergence rollback and model files carry them with ``params``.

    Notes
    -----
    ``forward`` is the single forward path: ``predict``, ``loss_and_grads`` and
    ``step`` all go through it. The layers' own input checks are turned off; the
    network checks its inputs once at each public entry point instead.
    """

    def __init__(self, layers, params, loss, buffers=None):
        self.layers = check_pairs(layers)
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays by name, got "
                            f"{type(params).__name__}")
        if not callable(getattr(loss, "forward", None)) or \
                not callable(getattr(loss, "backward", None)):
            raise TypeError(f"loss must be a loss object (e.g. CategoricalCrossEntropy()), "
                            f"got {type(loss).__name__} {loss!r}")
        check_unowned(layer for layer, _ in self.layers)  # before any layer is changed
        if not any(names for _, names in self.layers):
            raise ValueError("layers must include at least one layer with parameters (e.g. "
                             "an Affine layer), got " + repr([layer for layer, _ in self.layers]))
        self.params = params
        self.loss = loss
        for i, (layer, names) in enumerate(self.layers):
            layer.validate = False
            missing = [n for n in names if n not in params]
            if missing:
                raise ValueError(f"layer {i} ({layer!r}) uses parameters {missing} that are "
                                 f"not in params")
        self._buffer_slots, self.buffers = buffer_slots(self.layers, buffers)
        if set(self.buffers) & set(params):
            raise ValueError(f"buffer names {sorted(set(self.buffers) & set(params))} are "
                             f"parameter names too; every name must be unique")
        # Nobody reads the gradient with respect to the data: backward stops at the first
        # layer with parameters, which skips its input gradient where it can. Every other
        # layer computes it, whatever a network it was copied from had set.
        first = first_trained(self.layers)
        for i, (layer, _) in enumerate(self.layers):
            if getattr(layer, "compute_input_grad", i != first) != (i != first):
                try:
                    layer.compute_input_grad = i != first
                except AttributeError:  # a layer that cannot switch it keeps computing
                    pass
        self.optimizer = None
        claim_layers(self)  # last: a network that failed to build claims nothing

    def __setstate__(self, state):
        """A copied or unpickled network owns its (new) layers, as a built one does."""
        self.__dict__.update(state)
        claim_layers(self)

    _promoted_warned = False  # a layer's dtype change is reported once per network
    _last_training = True  # the mode of the last forward: a backward after eval warns once
    _eval_backward_warned = False
    # A training forward whose backward has not run yet: an evaluation forward in
    # between leaves its caches alone (see forward).
    _awaiting_backward = False

    # -- shapes and checks -------------------------------------------------------
    @property
    def dtype(self):
        return next(iter(self.params.values())).dtype

    @property
    def n_features(self) -> int:
        """Columns of ``X`` (:func:`~chainrule.stateful.input_width`)."""
        return input_width(self.layers, self.params)

    @property
    def n_outputs(self) -> int:
        """Columns of the output (:func:`~chainrule.explain.output_width`)."""
        return output_width(self)

    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def clear_caches(self) -> None:
        """Drop what the layers and the loss keep for a backward pass (the last batch's
        activations, a convolution's im2col matrix): :func:`~chainrule.train.fit`
        does when it returns, so a trained model holds no training batch (PyTorch frees
        its graph after ``backward``); a pickled or copied network is smaller too."""
        for owner in cache_owners(self):
            owner.cache = None
        self._awaiting_backward = False

    # -- the parameters and buffers as one dict ------------------------------------
    def state_dict(self) -> dict:
        """Copies of every parameter and buffer, by name (the parameters first).

        As ``torch.nn.Module.state_dict``, but copies rather than views: a dict put
        aside (the best weights so far, a model to average) does not follow later
        training, where PyTorch needs a ``copy.deepcopy``.
        """
        return {k: a.copy() for k, a in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> LoadedKeys:
        """Copy ``state_dict``'s arrays into the parameters and buffers, in place.

        The arrays keep their identity, so an optimizer's state stays bound to them;
        values are cast to each array's dtype. Everything is checked before anything
        is written: ``ValueError`` naming the first key whose array has another shape
        or holds NaN or infinity and, when ``strict`` (as in PyTorch), for keys missing
        or unexpected; ``TypeError`` for anything but a dict of numeric arrays.

        Returns
        -------
        LoadedKeys
            ``(missing_keys, unexpected_keys)``, as PyTorch's ``load_state_dict``.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict of arrays by name (as state_dict() "
                            f"returns), got {type(state_dict).__name__}")
        targets = {**self.params, **self.buffers}
        missing, unexpected = key_differences(state_dict, list(targets))
        if strict and (missing or unexpected):
            raise ValueError(state_dict_keys_message(missing, unexpected))
        ready = {}
        for k in [k for k in targets if k in state_dict]:
            value = np.asarray(state_dict[k])
            if value.dtype.kind not in "biuf":
                raise TypeError(f"state_dict[{k!r}] must be a numeric array, got dtype "
                                f"{value.dtype}")
            if value.shape != targets[k].shape:
                raise ValueError(f"state_dict[{k!r}] has shape {shape_str(value.shape)}, but "
                                 f"the network's {k!r} has shape {shape_str(targets[k].shape)}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"state_dict[{k!r}] holds NaN or infinite values")
            ready[k] = value
        for k, value in ready.items():
            targets[k][...] = value
        return LoadedKeys(missing, unexpected)

    def check_X(self, X, name="X", *, finite: bool = True):
        """``X`` as an array of the model's dtype, after checking its feature count
        (and, unless ``finite`` is False, that every entry is finite).

        A scipy.sparse CSR or CSC matrix stays sparse (cast to the model's dtype): the
        first Affine layer only multiplies it (``X @ W`` forward, ``X.T @ dZ`` backward).

        Raises
        ------
        ValueError, TypeError
            For an array of the wrong shape, a non-numeric or non-finite one.
        """
        if self.dtype.kind != "f":  # X would be cast to it: 0.9 read as 0
            k = next(k for k, p in self.params.items() if p.dtype.kind != "f")
            raise TypeError(f"params[{k!r}] must be a floating-point ndarray, got dtype "
                            f"{self.params[k].dtype} (assign float arrays, e.g. "
                            f"np.zeros({self.params[k].shape}))")
        if type(X) is not np.ndarray and is_sparse(X):
            X = as_sparse_float(X, name, dtype=self.dtype)
        elif type(X).__name__ == "NpyFile":  # (sources' out-of-core file, a layer above)
            raise TypeError(f"{name} is an NpyFile (open_npy): fit and evaluate read it "
                            f"block by block, predictions need its rows in memory: "
                            f"{name}.read(start, stop)")
        else:
            X = as_float_array(X, name, ndim=2, dtype=self.dtype, finite=finite)
        if X.shape[1] != self.n_features:
            raise ValueError(f"{name} has {X.shape[1]} features but the model expects "
                             f"{self.n_features}: got shape {shape_str(X.shape)}")
        return X

    def check_XY(self, X, Y, *, finite_X: bool = True):
        """``(X, Y)`` as arrays of the model's dtype, after checking they match the model
        (features, outputs, one row of ``Y`` per row of ``X``, what the loss's ``check_targets``
        accepts), or for a classifier (N,) integer class indices, as ``intp`` (never one-hot)."""
        X = self.check_X(X, finite=finite_X)
        classifier = is_multiclass(self.loss)  # its check_targets: finite
        if classifier and is_class_indices(Y):
            return X, check_class_indices(Y, self.n_outputs, "Y", n=X.shape[0])
        one_d = (Y.ndim if type(Y) is np.ndarray else np.ndim(Y)) == 1
        if one_d and (classifier or self.n_outputs != 1):
            raise ValueError(one_d_targets_message(Y, classifier, self.n_outputs))
        if one_d:  # one target per row, as scikit-learn takes it: one column
            Y = as_float_array(Y, "Y", ndim=1, dtype=self.dtype)[:, None]
        Y = as_float_array(Y, "Y", ndim=2, dtype=self.dtype, finite=not classifier)
        if Y.shape != (X.shape[0], self.n_outputs):
            raise ValueError(f"Y must have shape ({X.shape[0]}, {self.n_outputs}) (one row per "
                             f"row of X, one column per model output), got "
                             f"{shape_str(Y.shape)}")
        self.loss.check_targets(Y, "Y")
        return X, Y

    # -- the one forward path and its backward -----------------------------------
    def forward(self, X, training: bool = False, *, checked: bool = False,
                scan_first: bool = False):
        """Run every layer on ``X`` and return the last layer's output (the logits).

        Shape: X (N, D) -> (N, K).

        Unless ``checked`` (then the caller, e.g. ``fit``, chose), the BLAS threads are
        chosen for this call from the matrix sizes (:mod:`chainrule._threads`).

        :meth:`backward` differentiates the last forward, with one exception that
        PyTorch users rely on: an evaluation forward (``training=False``, e.g. on
        validation rows) run after a training forward and before its backward leaves
        the training forward's caches in place, so that its gradients stay right (give
        the validation loss a loss object of its own: ``self.loss`` keeps the cache of
        the loss its backward starts from).

        ``scan_first`` (with ``checked``): ``X`` was checked but for its finite values,
        which the first layer's output stands for (see :meth:`scans_first_output`).
        """
        if not checked:
            with threads_for(X, self.params):  # the check's BLAS call included
                return self.forward(self.check_X(X), training, checked=True)
        if self._awaiting_backward and not training:
            with kept_caches(self):
                return self._forward_out(X, training)
        out = self._forward_out(X, training, scan_first)
        # (not after a forward that failed half-way)
        self._awaiting_backward = self._last_training = training
        return out

    def _forward_out(self, X, training, scan_first=False):
        for step in self.walk(X, training, checked=True, scan_first=scan_first):
            out = step[-1]
        return out

    def infer(self, X, *, checked: bool = False, then=None, threads=None) -> np.ndarray:
        """:meth:`forward` with Dropout off, over row chunks whose layer outputs fit
        in :data:`ACTIVATION_BUDGET` bytes; ``then`` (row-wise, e.g. softmax) is
        applied to each chunk. Every inference path (``predict*``, ``evaluate``) goes
        through it; rows do not interact, so the result equals one :meth:`forward` (a
        layer whose rows do, ``rows_interact_in_eval``, gets them all in one chunk).
        ``threads`` (an int) fixes the BLAS threads, which are otherwise chosen from
        a chunk's matrix sizes (:mod:`chainrule._threads`). Shape: X (N, D) -> (N, K).
        """
        if not checked:  # the public entry point: the BLAS threads, then the checks, once
            rows = self.chunk_rows(self.dtype)
            with threads_for(X, self.params, check_threads(threads), max_rows=rows), \
                    kept_caches(self):
                return self._infer(self.check_X(X), then, rows)
        return self._infer(X, then, self.chunk_rows(X.dtype))

    def _infer(self, X, then, rows):
        """:meth:`infer` on checked ``X``, ``rows`` at a time."""
        if any(getattr(layer, "rows_interact_in_eval", False) for layer, _ in self.layers):
            rows = max(1, X.shape[0])  # statistics of the rows given, all of them

        def run(chunk):
            out = self.forward(chunk, checked=True)
            return out if then is None else then(out)

        first = run(X[:rows])
        if X.shape[0] <= rows:
            return first
        out = np.empty((X.shape[0],) + first.shape[1:], dtype=first.dtype)
        out[:rows] = first
        for start in range(rows, X.shape[0], rows):
            out[start:start + rows] = run(X[start:start + rows])
        return out

    def chunk_rows(self, dtype=np.float64) -> int:
        """Rows per chunk of :meth:`infer`: the budget over one row's bytes (>= 1)."""
        shapes = [(self.n_features,)] + output_shapes(self)
        # A convolution also holds its im2col matrix (``workspace`` entries per row).
        widths = [math.prod(shape) + getattr(layer, "workspace", lambda _: 0)(shape)
                  for (layer, _), shape in zip(self.layers, shapes, strict=False)]
        widths.append(math.prod(shapes[-1]))
        return max(1, ACTIVATION_BUDGET // (sum(widths) * np.dtype(dtype).itemsize))

    def walk(self, X, training: bool = False, *, checked: bool = False,
             scan_first: bool = False):
        """Run the layers on ``X`` one at a time, yielding after each one.

        The one layer walk: :meth:`forward`, :meth:`explain` and the training loop's
        search for the first non-finite layer all go through it.

        Parameters
        ----------
        X : array_like, shape (N, D)
        training : bool, default=False
            Switches Dropout on.
        checked : bool, default=False
            Skip the input check (for callers that already ran it).
        scan_first : bool, default=False
            ``X`` was checked but for its finite values: scan the first layer's output
            instead, and ``X`` only when that output is not finite (see
            :meth:`scans_first_output`).

        Yields
        ------
        index : int
            Position of the layer in ``layers``.
        layer : Layer
        names : tuple of str
            The parameters it takes.
        output : ndarray
            Its output, the next layer's input.
        """
        out = X if checked else self.check_X(X)
        want = out.dtype
        for i, (layer, names) in enumerate(self.layers):
            layer.training = training
            slots = self._buffer_slots.get(i, ())
            for local, name in slots:
                setattr(layer, local, self.buffers[name])
            params = [self.params[n] for n in names]
            if scan_first and i == 0:
                out = self._first_output(layer, out, params)
            else:
                try:
                    out = layer.forward(out, *params)
                except ValueError as exc:  # a layer that does not fit its input: say which
                    if type(exc) is not ValueError:
                        raise
                    raise ValueError(f"layers[{i}] ({layer!r}) cannot take inputs of shape "
                                     f"{shape_str(np.shape(out))}: {exc}") from exc
            if out.dtype != want and not self._promoted_warned:
                self._promoted_warned = warn_promoted(i, layer, want, out.dtype)
            for local, name in slots:  # kept in place, as params: snapshots stay valid
                if getattr(layer, local) is not self.buffers[name]:
                    self.buffers[name][...] = getattr(layer, local)
                    setattr(layer, local, self.buffers[name])
            yield i, layer, names, out

    def backward(self, d_out) -> dict:
        """Backpropagate ``d_out`` (gradient of the loss w.r.t. the logits) through
        the layers cached by the last ``forward`` (see its exception); return the
        gradients by name. After an evaluation-mode forward (its default) of a network
        with Dropout or batch normalisation, it warns once: those are not the
        training gradients (PyTorch's default mode is training)."""
        if not (self._last_training or self._eval_backward_warned):
            self._eval_backward_warned = warn_eval_backward(self.layers)
        return self._backward(d_out)

    def _backward(self, d_out) -> dict:
        self._awaiting_backward = False
        grads: dict = {}
        for layer, names in reversed(self.layers[first_trained(self.layers):]):
            result = layer.backward(d_out)
            if not type(layer).__module__.startswith("chainrule."):  # a layer of your own
                check_backward_result(layer, names, result, self.params)
            if names:
                d_out = result[0]
                grads.update(zip(names, result[1:], strict=True))
            else:
                d_out = result
        # Same key order as params, so a grads dict lines up with the params dict.
        return {k: grads[k] for k in self.params}

    def loss_and_grads(self, X, Y, sample_weight=None, *, training: bool = True,
                       checked: bool = False):
        """Loss on ``(X, Y)`` and its gradient with respect to every parameter.

        ``sample_weight`` (N,) weights the rows of the loss (see the loss class).
        ``training`` switches Dropout on; ``checked=True`` skips the input checks for
        callers (the training loop) that already ran them.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray, same keys and shapes as ``params``
        """
        if checked:
            return self._loss_and_grads(X, Y, sample_weight, training, False)
        with threads_for(X, self.params):  # a call of its own: its BLAS threads
            return self._check_loss_and_grads(X, Y, sample_weight, training)

    def _check_loss_and_grads(self, X, Y, sample_weight, training):
        """:meth:`loss_and_grads` after its inputs' checks, inside the caller's threads."""
        scan_first = self.scans_first_output(X)
        X, Y = self.check_XY(X, Y, finite_X=not scan_first)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return self._loss_and_grads(X, Y, sample_weight, training, scan_first)

    def _loss_and_grads(self, X, Y, sample_weight, training, scan_first):
        for step in self.walk(X, training, checked=True, scan_first=scan_first):
            logits = step[-1]
        self._last_training = training
        with unchecked(self.loss) as loss_fn:   # Y was checked at the entry
            loss = loss_fn.forward(logits, Y, sample_weight)
            d_logits, _ = loss_fn.backward(1.0)
        return loss, self._backward(d_logits)   # (the mode was asked for: no warning)

    def scans_first_output(self, X) -> bool:
        """Whether a training call checks that ``X`` is finite through the first layer's
        output, when that output is the smaller array (an Affine layer that narrows, as
        the homework's 64 -> 10 and 64 -> 32 do).

        That check is as strict as a scan of ``X``: a NaN or infinity in a row of ``X``
        makes every entry of that row of ``X @ W + b`` NaN or infinite (``inf * 0`` is
        NaN, and a non-finite term never cancels in a sum), and a BLAS skips only
        terms whose entry of ``X`` is 0. ``X`` itself is scanned only when the output
        is not finite, to name it in the error. Only an ndarray already of the model's
        dtype qualifies: a cast's overflow has an error of its own.
        """
        first, names = self.layers[0]
        return (type(first) is Affine and type(X) is np.ndarray and X.dtype == self.dtype
                and X.ndim == 2 and self.params[names[0]].shape[1] < X.shape[1])

    def _first_output(self, layer, X, params):
        """The first layer's output, checked finite in place of ``X``."""
        with np.errstate(invalid="ignore"):  # inf * 0 in X @ W: X's own error comes below
            out = layer.forward(X, *params)
        if not all_finite(out):
            self.check_X(X)  # raises when X is the cause; else the loss will tell
        return out

    def step(self, X, Y, optimizer=None, sample_weight=None) -> float:
        """One optimization step on ``(X, Y)``; returns the loss *before* the update."""
        optimizer = optimizer if optimizer is not None else self.optimizer
        if optimizer is None:
            raise ValueError("optimizer must be given (this model has no default optimizer)")
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"optimizer must be an Optimizer (e.g. cr.SGD(lr=0.01)), got "
                            f"{type(optimizer).__name__} {optimizer!r}: step keeps its state "
                            f"between calls, so build it once and pass it each time")
        with threads_for(X, self.params):  # one thread choice for the whole step
            loss, grads = self._check_loss_and_grads(X, Y, sample_weight, True)
            # Refused before the update, as fit refuses: a step from an infinite loss
            # would leave parameters near 1e307, NaN at the next step.
            bad = [k for k, g in grads.items() if not all_finite(g)]
            if not math.isfinite(loss) or bad:
                what = f"the loss is {loss}" if not math.isfinite(loss) else (
                    f"the gradient of {', '.join(bad)} is not finite")
                raise TrainingDivergedError(
                    f"step refused: {what}; the parameters were not updated. Try a smaller "
                    f"learning rate or standardised inputs.", epoch=None, step=None,
                    layer="loss" if not math.isfinite(loss) else bad[0])
            step_checked(optimizer, self.params, grads)  # checked just above
            return loss

    def predict_proba(self, X, *, threads=None) -> np.ndarray:
        """Class probabilities, computed in row chunks (:meth:`infer`, which takes
        ``threads``): the softmax of the logits, or for a binary cross-entropy model
        (binary or multilabel) each logit's own sigmoid. Shape: X (N, D) -> (N, K).

        Raises ``TypeError`` for a regressor (a loss other than these two), as
        scikit-learn's ``MLPRegressor`` has no ``predict_proba``, and for a
        ``MultiMarginLoss`` classifier, whose outputs are scores, not probabilities."""
        if isinstance(self.loss, BinaryCrossEntropy):
            return self.infer(X, then=sigmoid, threads=threads)
        self._check_classifier("predict_proba")
        return self.infer(X, then=_probabilities, threads=threads)

    def _check_classifier(self, method):
        # predict_proba needs probabilities; predict_classes takes an argmax of scores too
        if isinstance(self.loss, (CategoricalCrossEntropy, BinaryCrossEntropy)) or (
                method == "predict_classes" and is_multiclass(self.loss)):
            return
        hint = ", predict_classes for its classes" if is_multiclass(self.loss) else ""
        raise TypeError(f"{method} needs a classifier (a cross-entropy loss); this model's "
                        f"loss is {self.loss!r}: use predict for its outputs{hint}")

    def predict(self, X, *, threads=None) -> np.ndarray:
        """The homework's ``predict``: class probabilities (N, K) for a classifier (cross-
        entropy), a Poisson regressor's means ``exp(outputs)`` (its log link), the raw
        outputs for another regressor, a ``MultiMarginLoss`` classifier's class scores."""
        if isinstance(self.loss, (CategoricalCrossEntropy, BinaryCrossEntropy)):
            return self.predict_proba(X, threads=threads)
        poisson = isinstance(self.loss, PoissonLoss)
        return self.infer(X, then=np.exp if poisson else None, threads=threads)

    def predict_classes(self, X, *, threads=None) -> np.ndarray:
        """Index of the most probable class for each row (of the largest score, for a
        ``MultiMarginLoss`` model). Shape: X (N, D) -> (N,).

        For a binary cross-entropy model each output is a class of its own, 1 where
        its probability is above 1/2 (its logit above 0): (N,) for one output, (N, K)
        0/1 rows for a multilabel model (as scikit-learn's ``predict``)."""
        self._check_classifier("predict_classes")
        if isinstance(self.loss, BinaryCrossEntropy):
            out = self.infer(X, then=lambda z: (z > 0).astype(np.intp), threads=threads)
            return out[:, 0] if out.shape[1] == 1 else out
        return self.infer(X, then=lambda z: np.argmax(z, axis=1), threads=threads)

    # -- looking inside (chainrule.explain) ------------------------------------------
    def node_names(self) -> list[str]:
        """Names of the values between layers, X, Z1, H1, ... (Z: an affine output)."""
        return node_names(self.layers)

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts, then the buffers."""
        return summary(self)

    def explain(self, X) -> str:
        """Every layer's forward and backward equation with this batch's real shapes.

        Runs a forward pass on ``X`` (in evaluation mode) to read the shapes.
        """
        return explain(self, self.check_X(X))

    def __repr__(self):
        return network_repr(self)
