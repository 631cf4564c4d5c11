"""Export to ONNX: :func:`export_onnx` and its steps (arguments, a node per layer,
outputs, metadata, write).

The ``onnx`` package is imported inside :func:`export_onnx` (``pip install
chainrule[onnx]``), so importing this module needs only NumPy.
"""

from __future__ import annotations

import json
import numbers
import warnings

import numpy as np

from .._fileformat import atomic_write
from .._version import VERSION
from ..conv import AdaptiveAvgPool2D, AdaptiveMaxPool2D, AvgPool2D, Conv2D, MaxPool2D
from ..convtranspose import ConvTranspose2D
from ..layers import (
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
from ..losses import (
    BinaryCrossEntropy,
    CategoricalCrossEntropy,
    PoissonLoss,
    is_multiclass,
)
from ..models import Network
from .onnx_layers import LAYER_TYPES, layer_node

__all__ = ["export_onnx", "needs_float32", "DEFAULT_ONNX_OPSET", "MIN_ONNX_OPSET"]

#: Opset used when ``export_onnx`` is called without one: recent enough for every op
#: used here in its current form (Softmax on one axis since 13), old enough for
#: widely deployed runtimes.
DEFAULT_ONNX_OPSET = 17
#: The oldest opset ``export_onnx`` accepts (Softmax on one axis).
MIN_ONNX_OPSET = 13

_SIMPLE_ACTIVATIONS = ((ReLU, "Relu"), (Tanh, "Tanh"), (Sigmoid, "Sigmoid"),
                       (Identity, "Identity"))


def export_onnx(model, path, *, opset=None, classes=None, feature_names=None,
                dtype=None, missing_values=None) -> None:
    """Write ``model`` as a standard ONNX graph for inference elsewhere.

    The graph uses ``Gemm``, ``Relu``, ``LeakyRelu``, ``Tanh``, ``Sigmoid`` and
    ``Softmax`` (GELU and SiLU as ``Mul``, ``Add``, ``Sigmoid``, ``Erf``, ``Tanh`` and
    ``Pow`` nodes), and for the layers of :mod:`chainrule.conv` and
    :mod:`chainrule.normalization` ``Reshape``, ``Flatten``, ``Conv`` (with its
    ``dilations`` and ``group`` for a dilated or grouped Conv2D), ``ConvTranspose``, ``MaxPool``,
    ``AveragePool``, ``BatchNormalization`` (running statistics), ``LayerNormalization``
    (opset 17 or newer, float32) and ``Softmax``; Dropout layers are left out (they are
    the identity at inference). A batch normalisation with ``track_running_stats=False``
    becomes ``ReduceMean``, ``Sub``, ``Mul``, ``Add``, ``Sqrt`` and ``Reciprocal``
    nodes computing the statistics of the batch fed to the graph, as PyTorch exports
    it: each output row then depends on the other rows of its batch. A group
    normalisation, and in float64 a layer normalisation (ONNX holds ``epsilon`` as a
    float32 attribute), are composed of the same nodes. A Poisson regressor's graph
    gives ``outputs``, its predicted means ``exp(logits)``, and ``logits``. A leaky
    ReLU whose slope is not exactly a float32 number (0.01 is not) in a float64 model
    becomes ``PRelu`` with the slope stored as a float64 tensor instead, because
    ``LeakyRelu`` keeps its slope in a float32 attribute and would change the results.

    Inputs and outputs:

    * input ``"X"``: shape ``(N, n_features)``, ``N`` a symbolic batch dimension;
    * a classifier (cross-entropy loss): outputs ``"label"`` ``(N,)``, the class of the
      largest probability (int64 for integer classes, 1.0 and 2.0 included, as
      scikit-learn models converted to ONNX give it, double for other numbers, string
      for any other; ``classes[j]`` for column ``j``,
      ``j`` itself without class names), then ``"probabilities"`` (softmax over axis 1)
      and ``"logits"``, both ``(N, n_classes)``;
    * a binary classifier with one logistic output (binary cross-entropy): the same
      outputs, ``"probabilities"`` as the exported object's ``predict_proba`` gives
      them: for an estimator ``(N, 2)``, ``[P(classes_[0]), P(classes_[1])]`` =
      ``[sigmoid(-z), sigmoid(z)]`` (as scikit-learn's converted models), for a network
      ``(N, 1)``, ``sigmoid(z)``; ``"logits"`` ``(N, 1)``; a multilabel one the sigmoid
      of each logit, ``(N, n_labels)``, and no ``"label"``;
    * a ``MultiMarginLoss`` classifier: ``"label"`` as above (the class of the largest
      score) and ``"logits"`` (the scores), no ``"probabilities"``: a softmax of hinge
      scores would look like probabilities without being calibrated as any;
    * a regressor (mse, squared_error, l1 or huber loss: linear outputs): output
      ``"outputs"``, ``(N, n_outputs)``.

    For a fitted estimator, column ``j`` of ``"probabilities"`` is the probability of
    ``classes_[j]`` whatever the labels are (strings, or integers other than 0..K-1);
    the class names (``classes_``, or ``classes``) are recorded as JSON in the model's
    ``metadata_props`` under ``"classes"``, and ``feature_names`` under
    ``"feature_names"``. The graph is the network alone: any
    scaling an estimator applies to inputs or targets outside ``model_`` is not in it.

    float32 and float64 models are exported in their own dtype unless ``dtype`` says
    otherwise, but for a float64 network with a convolution or a pool, which is
    exported in float32: onnxruntime runs ``Conv`` and the pools in float32 only
    (``dtype=np.float64`` keeps float64, with a warning, for another runtime; a float64
    exact GELU's ``Erf`` warns the same way). Other float dtypes are cast (float16 to
    float32, wider ones to float64), and ``X`` must then be fed in the exported dtype.

    Parameters
    ----------
    model : Network or fitted estimator
        A chainrule network whose layers are Affine, ReLU, LeakyReLU, Tanh, Sigmoid,
        GELU, SiLU or Dropout (or the image layers above) and whose loss is
        cross-entropy, multi-margin, mse, squared_error, l1 or huber, or an object with
        such a network as its ``model_`` attribute.
    path : str or os.PathLike
        Destination (``.onnx``), written atomically; a symbolic link is written
        through to its target, as in :func:`chainrule.io.save`.
    opset : int, optional
        ONNX opset of the default domain, at least 13; default
        :data:`DEFAULT_ONNX_OPSET`.
    classes : sequence, optional
        The class of each output column of a classifier (ints, floats or strings),
        e.g. the ``"classes"`` a model file's metadata holds; default the estimator's
        ``classes_``, else ``0..n_classes-1``.
    feature_names : sequence of str, optional
        The names of the input columns, recorded in ``metadata_props``; by default an
        estimator fitted on a DataFrame's ``feature_names_in_``.
    dtype : {None, float32, float64}, optional
        The graph's dtype, the parameters cast to it; default the model's own, float32
        for a float64 network with convolutions or pools (above).
    missing_values : array_like of shape (n_features,), optional
        Finite values that replace NaN in the matching column of ``X`` before the
        network (``IsNaN`` and ``Where`` nodes): ``chainrule export`` gives a ``train
        --impute`` model's training medians, and 0 for its one-hot columns, so that the
        graph takes rows with missing cells as ``chainrule predict`` does.

    Raises
    ------
    ImportError
        If the ``onnx`` package is missing (``pip install chainrule[onnx]``).
    TypeError
        If the model or one of its layers or its loss cannot be exported.
    ValueError
        If ``opset`` is out of range, or ``missing_values`` is not one finite value per
        input column.
    """
    network, own_classes = _exportable(model)
    classes = own_classes if classes is None else classes
    if feature_names is None and getattr(model, "feature_names_in_", None) is not None:
        feature_names = [str(n) for n in model.feature_names_in_]   # a DataFrame's columns
    _check_names(classes, feature_names, network)
    onnx, helper, numpy_helper = _import_onnx()
    opset = _check_opset(opset, onnx.defs.onnx_opset_version())
    output_op = _output_op(network)
    labels = _labels_for(output_op, classes, network.n_outputs)
    if dtype is None:   # a file onnxruntime runs: it has no float64 Conv or pools
        dtype = np.dtype(np.float32) if needs_float32(network) else _export_dtype(network)
    else:
        dtype = _check_dtype(dtype)
    _warn_float64_conv(network, dtype)
    builder = _GraphBuilder(helper, numpy_helper, dtype, opset)
    builder.add_layers(network, final="logits" if output_op else "outputs",
                       fill=_check_missing_values(missing_values, network.n_features))
    # An estimator's predict_proba gives a binary problem both columns, a network's the
    # one logistic output: the file gives what the exported object gives.
    graph = builder.graph(network, output_op, labels, both_columns=network is not model)
    opset_id = helper.make_opsetid("", opset)
    onnx_model = helper.make_model(graph, opset_imports=[opset_id], producer_name="chainrule",
                                   producer_version=VERSION,
                                   doc_string=f"chainrule {type(model).__name__}")
    # The oldest IR version that can carry this opset, for older runtimes.
    onnx_model.ir_version = helper.find_min_ir_version_for([opset_id])
    helper.set_model_props(onnx_model, _model_props(model, classes, feature_names))
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    atomic_write(path, lambda fh: fh.write(data))


# -- the arguments ------------------------------------------------------------------------
def _exportable(model):
    """The network to export and the labels of its output columns (or None)."""
    if isinstance(model, Network):
        return model, None
    network = getattr(model, "model_", None)
    if isinstance(network, Network):
        return network, getattr(model, "classes_", None)
    raise TypeError(f"model must be a chainrule Network (e.g. MLP) or a fitted estimator "
                    f"whose model_ attribute is one, got {type(model).__name__}"
                    + (" (not fitted yet?)" if hasattr(model, "fit") else ""))


def _check_missing_values(values, n_features: int):
    """``missing_values`` as a float64 vector of one finite value per input column."""
    if values is None:
        return None
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"missing_values must be numbers, got {values!r}") from None
    if values.shape != (n_features,) or not np.isfinite(values).all():
        raise ValueError(f"missing_values must hold one finite value per input column "
                         f"({n_features}), got shape {values.shape}"
                         + ("" if values.shape != (n_features,) else " with NaN or inf"))
    return values


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError("export_onnx needs the 'onnx' package; install it with "
                          "`pip install chainrule[onnx]` (or `pip install onnx`)") from exc
    return onnx, helper, numpy_helper


def _check_opset(opset, newest: int) -> int:
    if opset is None:
        return DEFAULT_ONNX_OPSET
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"opset must be an int, got {type(opset).__name__} {opset!r}")
    opset = int(opset)
    if not MIN_ONNX_OPSET <= opset <= newest:
        raise ValueError(f"opset must be between {MIN_ONNX_OPSET} and {newest} (the newest "
                         f"this onnx package knows), got {opset}")
    return opset


def _output_op(network):
    """The op giving a classifier's probabilities ('Softmax', or 'Sigmoid' per logit for
    binary cross-entropy), 'Scores' for a classifier whose outputs are class scores and
    no probabilities (MultiMarginLoss: a label and its logits only), or None for a
    regressor's linear outputs."""
    if isinstance(network.loss, CategoricalCrossEntropy):
        return "Softmax"
    if isinstance(network.loss, BinaryCrossEntropy):
        return "Sigmoid"
    if is_multiclass(network.loss):
        return "Scores"
    if getattr(network.loss, "linear_outputs", False):
        return None
    if isinstance(network.loss, PoissonLoss):   # (MLPRegressor(loss='poisson') too)
        return "Exp"
    raise TypeError(f"cannot export a network with loss {type(network.loss).__name__}; "
                    f"only CategoricalCrossEntropy, BinaryCrossEntropy, MultiMarginLoss, "
                    f"MeanSquaredError, HalfSquaredError, L1Loss, HuberLoss (linear "
                    f"outputs) and PoissonLoss are supported")


def _labels_for(output_op, classes, n_outputs: int):
    """The ``label`` output's class values, or None: a regressor and multilabel
    outputs (several logistic columns) have no single label per row."""
    if output_op in ("Softmax", "Scores"):
        return _label_values(classes, n_outputs)
    if output_op == "Sigmoid" and n_outputs == 1:
        return _label_values(classes, 2)
    return None


def _label_values(classes, n_classes: int) -> np.ndarray:
    """The ``label`` output's value for each class index: int64 for integer classes
    (1.0 and 2.0 too, as ONNX classifiers' labels are), float64 for other numbers (0.5
    stays a number), strings otherwise."""
    if classes is None:
        return np.arange(n_classes, dtype=np.int64)
    values = np.asarray(classes)
    if values.shape != (n_classes,):
        raise ValueError(f"classes must name the model's {n_classes} output columns, got "
                         f"shape {values.shape}")
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and
                                      np.all(np.mod(values, 1) == 0)):
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        return values.astype(np.float64)
    return np.array([str(v) for v in values.tolist()], dtype=object)


def _convolves(network) -> bool:
    """Whether a network has a convolution or a pool (the 1-D ones are subclasses)."""
    kinds = (Conv2D, MaxPool2D, AvgPool2D, AdaptiveAvgPool2D, AdaptiveMaxPool2D,
             ConvTranspose2D)
    return any(isinstance(layer, kinds) for layer, _ in network.layers)


def needs_float32(network) -> bool:
    """Whether :func:`export_onnx` writes ``network`` in float32 by default: a float64
    network with a layer onnxruntime has no float64 kernel for (``Conv``, the pools)."""
    return network.dtype == np.float64 and _convolves(network)


def _warn_float64_conv(network, dtype) -> None:
    """A float64 graph asked for: valid ONNX, but onnxruntime has no float64 ``Conv``,
    pooling or ``Erf`` (an exact GELU) kernels: say so when the file is written, not
    when it fails to load."""
    if dtype == np.float64 and _convolves(network):
        warnings.warn("this float64 network has convolution or pooling layers, which "
                      "onnxruntime runs only in float32: export it with dtype=np.float32 "
                      "(chainrule export --dtype float32) to run the file there",
                      UserWarning, stacklevel=3)
    if dtype == np.float64 and any(isinstance(layer, GELU) and layer.approximate == "none"
                                   for layer, _ in network.layers):
        warnings.warn("this float64 network has a GELU layer, whose Erf node onnxruntime "
                      "runs only in float32: export it with dtype=np.float32 (chainrule "
                      "export --dtype float32; or use GELU(approximate='tanh')) to run "
                      "the file there",
                      UserWarning, stacklevel=3)


def _check_names(classes, feature_names, network) -> None:
    """``classes`` must be unique (a label names one column); ``feature_names`` one per
    input column."""
    if classes is not None and len({str(c) for c in np.asarray(classes).tolist()}) \
            != len(classes):
        raise ValueError(f"classes must be unique, got {list(np.asarray(classes).tolist())}")
    if feature_names is not None and len(feature_names) != network.n_features:
        raise ValueError(f"feature_names must name the model's {network.n_features} input "
                         f"columns, got {len(feature_names)}")


def _check_dtype(dtype) -> np.dtype:
    """``export_onnx``'s ``dtype``: float32 or float64."""
    try:
        checked = np.dtype(dtype)
    except TypeError:
        checked = None
    if checked not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64 (the dtypes onnxruntime runs "
                         f"every op of the graph in), got {dtype!r}")
    return checked


def _export_dtype(network) -> np.dtype:
    """float32 and float64 as they are; narrower floats widen to float32, wider ones
    narrow to float64 (the two dtypes onnxruntime runs every op used here in)."""
    dtype = network.dtype
    if dtype in (np.float32, np.float64):
        return np.dtype(dtype)
    return np.dtype(np.float32 if dtype.itemsize < 4 else np.float64)


# -- the graph ------------------------------------------------------------------------------
class _GraphBuilder:
    """Collects the nodes and initializers of the graph, one layer at a time."""

    def __init__(self, helper, numpy_helper, dtype, opset=DEFAULT_ONNX_OPSET):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.opset = opset
        self.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes, self.initializers = [], []
        self.n_affine = self.n_act = 0

    def add_layers(self, network, final: str, fill=None) -> None:
        """A node per layer but Dropout; the last one's output is called ``final``.
        With ``fill`` (one value per input column), NaN in ``X`` are replaced first."""
        kept = [i for i, (layer, _) in enumerate(network.layers)
                if not isinstance(layer, Dropout)]
        current = "X"
        if fill is not None:
            self._tensor(fill, "X_fill")
            self.nodes += [self.helper.make_node("IsNaN", ["X"], ["X_missing"], name="isnan"),
                           self.helper.make_node("Where", ["X_missing", "X_fill", "X"],
                                                 ["X_filled"], name="fill")]
            current = "X_filled"
        for i in kept:
            layer, names = network.layers[i]
            is_last = i == kept[-1]
            if isinstance(layer, Affine):
                self.n_affine += 1
                out = final if is_last else f"Z{self.n_affine}"
                self._affine(network, names, current, out)
            elif isinstance(layer, LAYER_TYPES):
                self.n_act += 1
                out = final if is_last else f"H{self.n_act}"
                node = layer_node(self, network, i, names, current, out, self.opset)
                node.name = f"{type(layer).__name__.lower()}{self.n_act}"
                self.nodes.append(node)
            else:
                self.n_act += 1
                out = final if is_last else f"H{self.n_act}"
                self._activation(i, layer, current, out)
            current = out

    def _tensor(self, array, name: str) -> None:
        self.initializers.append(self.numpy_helper.from_array(
            np.ascontiguousarray(array, dtype=self.dtype), name=name))

    def _affine(self, network, names, current: str, out: str) -> None:
        for pname in names:
            self._tensor(network.params[pname], pname)
        # (W,) for bias=False: Gemm's bias input C is optional.
        self.nodes.append(self.helper.make_node("Gemm", [current, *names], [out],
                                                name=f"affine{self.n_affine}"))

    def _activation(self, i: int, layer, current: str, out: str) -> None:
        make_node = self.helper.make_node
        op = next((op for cls, op in _SIMPLE_ACTIVATIONS if isinstance(layer, cls)), None)
        if op is not None:
            node = make_node(op, [current], [out])
        elif isinstance(layer, LeakyReLU):
            node = self._leaky_relu(float(layer.negative_slope), current, out)
        elif isinstance(layer, (GELU, SiLU)):
            node = self._gated(layer, current, out)
        elif isinstance(layer, ELU):
            node = self._elu(layer, current, out)
        elif isinstance(layer, Softplus):
            node = self._softplus(layer, current, out)
        else:
            raise TypeError(f"cannot export layer {i} ({layer!r}): supported layers are "
                            f"Affine, ReLU, LeakyReLU, Tanh, Sigmoid, GELU, SiLU, ELU, "
                            f"Softplus, Dropout and "
                            f"{', '.join(cls.__name__ for cls in LAYER_TYPES)}")
        node.name = f"activation{self.n_act}"
        self.nodes.append(node)

    def _gated(self, layer, current: str, out: str):
        """``x * g(x)``: SiLU's ``g = Sigmoid``; GELU's ``0.5 (1 + Erf(x / sqrt(2)))``, or
        with ``approximate='tanh'`` ``0.5 x (1 + Tanh(sqrt(2/pi) (x + 0.044715 Pow(x,
        3))))``, in the order chainrule computes them. Intermediate nodes go straight
        into the graph; the last one is returned."""
        make_node, p = self.helper.make_node, f"{out}_"
        if isinstance(layer, SiLU):
            self.nodes.append(make_node("Sigmoid", [current], [p + "gate"], name=p + "gate"))
            return make_node("Mul", [current, p + "gate"], [out])
        tanh = layer.approximate == "tanh"
        constants = {"half": 0.5, "one": 1.0, "scale": np.sqrt(2 / np.pi) if tanh
                     else 1 / np.sqrt(2.0), **({"three": 3.0, "cubic": 0.044715} if tanh else {})}
        for name, value in constants.items():
            self._tensor(np.array(value), p + name)
        if tanh:
            steps = [("Pow", [current, p + "three"], "cube"),
                     ("Mul", [p + "cubic", p + "cube"], "cubic_term"),
                     ("Add", [current, p + "cubic_term"], "inner"),
                     ("Mul", [p + "scale", p + "inner"], "scaled"), ("Tanh", [p + "scaled"], "t"),
                     ("Mul", [p + "half", current], "half_x")]
        else:
            steps = [("Mul", [current, p + "scale"], "scaled"), ("Erf", [p + "scaled"], "t")]
        steps.append(("Add", [p + "one", p + "t"], "one_plus"))
        if not tanh:
            steps.append(("Mul", [p + "half", p + "one_plus"], "cdf"))
        self._steps(steps, p)
        if tanh:   # 0.5 x (1 + t)
            return make_node("Mul", [p + "half_x", p + "one_plus"], [out])
        return make_node("Mul", [current, p + "cdf"], [out])

    def _labels(self, labels, *, binary: bool) -> None:
        """``label = classes[index]`` (Gather from a constant holding the class values),
        with ``index = argmax(logits, axis=1)``, or for one logistic output
        ``index = logit > 0`` (probability above 1/2, as scikit-learn decides)."""
        make_node = self.helper.make_node
        self.initializers.append(self.numpy_helper.from_array(labels, name="classes"))
        if binary:
            self._tensor(np.zeros(1), "zero")
            self.initializers.append(self.numpy_helper.from_array(
                np.array([1], dtype=np.int64), name="column_axis"))
            self.nodes.append(make_node("Greater", ["logits", "zero"], ["positive"],
                                        name="threshold"))
            self.nodes.append(make_node("Cast", ["positive"], ["positive_index"],
                                        to=self.helper.TensorProto.INT64, name="to_index"))
            self.nodes.append(make_node("Squeeze", ["positive_index", "column_axis"],
                                        ["label_index"], name="squeeze"))
        else:
            self.nodes.append(make_node("ArgMax", ["logits"], ["label_index"], axis=1,
                                        keepdims=0, name="argmax"))
        self.nodes.append(make_node("Gather", ["classes", "label_index"], ["label"], axis=0,
                                    name="label"))

    def _steps(self, steps, prefix: str) -> None:
        """Nodes ``(op, inputs, name)`` named ``prefix + name``, into the graph."""
        self.nodes += [self.helper.make_node(op, inputs, [prefix + name], name=prefix + name)
                       for op, inputs, name in steps]

    def _elu(self, layer, current: str, out: str):
        """The ``Elu`` node in float32; in float64 (onnxruntime has no such kernel)
        ``Where(x > 0, x, alpha (Exp(Min(x, 0)) - 1))``, whose ``Exp - 1`` loses the
        last bits near 0 that chainrule's ``expm1`` keeps (~1e-17 absolute)."""
        if self.dtype == np.float32:
            return self.helper.make_node("Elu", [current], [out], alpha=layer.alpha)
        p = f"{out}_"
        for name, value in {"zero": 0.0, "one": 1.0, "alpha": layer.alpha}.items():
            self._tensor(np.array(value), p + name)
        self._steps([("Greater", [current, p + "zero"], "linear"),
                     ("Min", [current, p + "zero"], "capped"), ("Exp", [p + "capped"], "e"),
                     ("Sub", [p + "e", p + "one"], "m"),
                     ("Mul", [p + "alpha", p + "m"], "curve")], p)
        return self.helper.make_node("Where", [p + "linear", current, p + "curve"], [out])

    def _softplus(self, layer, current: str, out: str):
        """``Where(beta x > threshold, x, Softplus(Min(beta x, threshold)) / beta)``,
        PyTorch's threshold kept; in float64 ``Log(Exp(.) + 1)`` for the ``Softplus``
        node, which onnxruntime has no kernel of."""
        p = f"{out}_"
        for name, value in {"beta": layer.beta, "threshold": layer.threshold}.items():
            self._tensor(np.array(value), p + name)
        steps = [("Mul", [current, p + "beta"], "scaled"),
                 ("Greater", [p + "scaled", p + "threshold"], "linear"),
                 ("Min", [p + "scaled", p + "threshold"], "capped")]
        if self.dtype == np.float32:
            steps.append(("Softplus", [p + "capped"], "soft"))
        else:
            self._tensor(np.array(1.0), p + "one")
            steps += [("Exp", [p + "capped"], "e"), ("Add", [p + "e", p + "one"], "e1"),
                      ("Log", [p + "e1"], "soft")]
        self._steps(steps + [("Div", [p + "soft", p + "beta"], "curve")], p)
        return self.helper.make_node("Where", [p + "linear", current, p + "curve"], [out])

    def _leaky_relu(self, slope: float, current: str, out: str):
        if self.dtype == np.float32 or float(np.float32(slope)) == slope:
            return self.helper.make_node("LeakyRelu", [current], [out], alpha=slope)
        # LeakyRelu's alpha is a float32 attribute: 0.01 would become 0.00999999977648.
        # PRelu takes the slope as a tensor in the model's dtype and gives the same
        # numbers as chainrule, bit for bit.
        slope_name = f"negative_slope{self.n_act}"
        self._tensor(np.array([slope]), slope_name)
        return self.helper.make_node("PRelu", [current, slope_name], [out])

    def graph(self, network, output_op, labels, *, both_columns: bool = False):
        """The graph: input ``X``, the nodes so far, and the outputs: a regressor's
        ``outputs``; a classifier's ``probabilities`` (softmax, or the sigmoid of each
        logit: for a binary problem with one logistic output, the two columns
        ``[sigmoid(-z), sigmoid(z)]`` when ``both_columns``; none for scores) and
        ``logits``, after its ``label`` when there is one label per row (not for
        multilabel outputs); a Poisson regressor's predicted means ``outputs``,
        ``exp(logits)``, and its ``logits``."""
        helper, n_out = self.helper, network.n_outputs
        outputs = []
        n_probabilities = n_out
        if output_op == "Softmax":
            self.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"],
                                               axis=1, name="softmax"))
        elif output_op == "Sigmoid" and n_out == 1 and both_columns:
            # Both classes' columns, [sigmoid(-z), sigmoid(z)], as the estimators'
            # predict_proba and scikit-learn's converted classifiers give them.
            n_probabilities = 2
            self.nodes += [helper.make_node("Neg", ["logits"], ["neg_logits"], name="neg"),
                           helper.make_node("Sigmoid", ["neg_logits"], ["p_negative"],
                                            name="sigmoid_negative"),
                           helper.make_node("Sigmoid", ["logits"], ["p_positive"],
                                            name="sigmoid"),
                           helper.make_node("Concat", ["p_negative", "p_positive"],
                                            ["probabilities"], axis=1, name="probabilities")]
        elif output_op == "Sigmoid":
            self.nodes.append(helper.make_node("Sigmoid", ["logits"], ["probabilities"],
                                               name="sigmoid"))
        elif output_op == "Exp":   # a log link: the predicted means, exp(logits)
            self.nodes.append(helper.make_node("Exp", ["logits"], ["outputs"], name="exp"))
        if labels is not None:
            self._labels(labels, binary=output_op == "Sigmoid")
            label_type = {"O": self.helper.TensorProto.STRING,
                          "f": self.helper.TensorProto.DOUBLE}.get(
                labels.dtype.kind, self.helper.TensorProto.INT64)
            outputs.append(helper.make_tensor_value_info("label", label_type, ["N"]))
        if output_op in (None, "Exp"):
            names = ["outputs"] + (["logits"] if output_op else [])
        else:  # no probabilities from scores
            names = ["logits"] if output_op == "Scores" else ["probabilities", "logits"]
        outputs += [helper.make_tensor_value_info(
            name, self.elem_type, ["N", n_probabilities if name == "probabilities" else n_out])
            for name in names]
        inputs = [helper.make_tensor_value_info("X", self.elem_type, ["N", network.n_features])]
        return helper.make_graph(self.nodes, "chainrule_" + type(network).__name__, inputs,
                                 outputs, initializer=self.initializers)


def _model_props(model, classes, feature_names=None) -> dict:
    """The ``metadata_props``: the exported class, the labels of the output columns and
    the names of the input columns."""
    props = {"chainrule_class": type(model).__name__}
    if feature_names is not None:
        props["feature_names"] = json.dumps([str(n) for n in feature_names])
    if classes is not None:
        try:
            props["classes"] = json.dumps(np.asarray(classes).tolist())
        except (TypeError, ValueError):
            props["classes"] = repr(list(classes))
    return props
