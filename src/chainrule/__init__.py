"""chainrule: neural networks in NumPy with every backward pass written by hand.

Each layer's ``backward`` sits right under its ``forward`` and applies the chain rule
to what ``forward`` cached. Start with :class:`MLP` and :func:`fit`, or the homework's
:class:`LogisticRegression` and :class:`FeedforwardNeuralNet`.

``import chainrule`` needs only NumPy; scikit-learn, matplotlib, tqdm and onnx are
imported by the functions that use them. The scikit-learn estimators
(``chainrule.MLPClassifier``, ``chainrule.MLPRegressor``) are loaded on first use.
"""

from . import (
    conv,
    functional,
    init,
    layers,
    losses,
    models,
    network,
    normalization,
    optim,
    schedules,
)
from ._version import VERSION
from .conv import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Flatten,
    MaxPool2D,
    Unflatten,
)
from .conv1d import AdaptiveAvgPool1D, AdaptiveMaxPool1D, AvgPool1D, Conv1D, MaxPool1D
from .convtranspose import ConvTranspose2D
from .functional import accuracy, log_softmax, logsumexp, one_hot, softmax
from .groupnorm import GroupNorm
from .homework import FeedforwardNeuralNet, LogisticRegression
from .init import he_normal, he_uniform, xavier_init, xavier_normal, xavier_uniform
from .layers import (
    ELU,
    GELU,
    Affine,
    Dropout,
    Dropout1d,
    Dropout2d,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Layer,
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from .losses import (
    BinaryCrossEntropy,
    CategoricalCrossEntropy,
    HuberLoss,
    L1Loss,
    MeanSquaredError,
    MultiMarginLoss,
)
from .models import MLP, Network, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LogSoftmax, Softmax
from .optim import SGD, Adagrad, Adam, AdamW, RMSprop

__version__ = VERSION

__all__ = [
    "checkpoint", "conv", "conv1d", "data", "functional", "gradcheck", "history", "init", "io",
    "layers", "losses", "models", "network", "normalization", "optim", "plots", "sanity",
    "schedules", "testing", "train",
    "accuracy", "log_softmax", "logsumexp", "one_hot", "softmax",
    "check_gradients",
    "he_normal", "he_uniform", "xavier_init", "xavier_normal", "xavier_uniform",
    "Layer", "Affine", "Dropout", "Dropout1d", "Dropout2d", "LeakyReLU", "ReLU", "Sigmoid",
    "Tanh", "GELU", "SiLU", "ELU", "Softplus", "PReLU", "Hardtanh", "ReLU6",
    "Hardsigmoid", "Hardswish",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Softmax", "LogSoftmax",
    "AdaptiveAvgPool2D", "AvgPool2D", "Conv2D", "Flatten", "MaxPool2D", "Unflatten",
    "AdaptiveMaxPool2D", "AdaptiveAvgPool1D", "AdaptiveMaxPool1D", "AvgPool1D", "Conv1D",
    "MaxPool1D", "ConvTranspose2D",
    "CategoricalCrossEntropy", "BinaryCrossEntropy", "MultiMarginLoss", "MeanSquaredError",
    "L1Loss", "HuberLoss",
    "MLP", "FeedforwardNeuralNet", "LogisticRegression", "Network", "Sequential",
    "SGD", "RMSprop", "Adagrad", "Adam", "AdamW",
    "SanityReport", "sanity_check",
    "LayerContractError", "check_layer",
    "EarlyStopping", "History", "ReduceLROnPlateau", "TrainingDivergedError",
    "TrainingWarning", "evaluate", "fit", "MLPClassifier", "MLPRegressor", "ModelFileError",
]

# Loaded on first use (PEP 562). The estimators import scikit-learn, which a plain
# `import chainrule` must not; the training, checking and file modules pull in the
# standard library's zipfile, tempfile, json, hashlib, csv ... (issue 10: `import
# chainrule` stays within 50 ms of `import numpy`, the model classes load eagerly).
_LAZY = {"MLPClassifier": "estimator", "MLPRegressor": "estimator",
         "check_gradients": "gradcheck", "EarlyStopping": "history", "History": "history",
         "ReduceLROnPlateau": "history",
         "SanityReport": "sanity", "sanity_check": "sanity", "LayerContractError": "testing",
         "check_layer": "testing", "TrainingDivergedError": "train", "evaluate": "train",
         "TrainingWarning": "diagnostics",
         "fit": "train", "ModelFileError": "errors"}
_LAZY_MODULES = ("checkpoint", "data", "datastream", "gradcheck", "history", "io", "plots",
                 "sanity", "sources", "testing", "train")


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
