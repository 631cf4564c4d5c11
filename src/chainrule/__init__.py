"""chainrule: neural networks in NumPy with every backward pass written by hand.

Each layer's ``backward`` sits right under its ``forward`` and applies the chain rule
to what ``forward`` cached. Start with :class:`MLP` and :func:`fit`, or the homework's
:class:`LogisticRegression` and :class:`FeedforwardNeuralNet`.

``import chainrule`` needs only NumPy; scikit-learn, matplotlib, tqdm and onnx are
imported by the functions that use them. The scikit-learn estimators
(``chainrule.MLPClassifier``, ``chainrule.MLPRegressor``) are loaded on first use.
"""

from . import (
    checkpoint,
    conv,
    data,
    functional,
    gradcheck,
    history,
    init,
    io,
    layers,
    losses,
    models,
    normalization,
    optim,
    plots,
    sanity,
    testing,
    train,
)
from ._version import VERSION
from .conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, Unflatten
from .functional import accuracy, log_softmax, logsumexp, one_hot, softmax
from .gradcheck import check_gradients
from .history import EarlyStopping, History
from .init import he_normal, he_uniform, xavier_init, xavier_normal, xavier_uniform
from .layers import Affine, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import CategoricalCrossEntropy, MeanSquaredError
from .models import MLP, FeedforwardNeuralNet, LogisticRegression, Network, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm, Softmax
from .optim import SGD, Adam, AdamW
from .sanity import SanityReport, sanity_check
from .testing import LayerContractError, check_layer
from .train import TrainingDivergedError, evaluate, fit

__version__ = VERSION

__all__ = [
    "checkpoint", "conv", "data", "functional", "gradcheck", "history", "init", "io", "layers",
    "losses", "models", "normalization", "optim", "plots", "sanity", "testing", "train",
    "accuracy", "log_softmax", "logsumexp", "one_hot", "softmax",
    "check_gradients",
    "he_normal", "he_uniform", "xavier_init", "xavier_normal", "xavier_uniform",
    "Affine", "Dropout", "LeakyReLU", "ReLU", "Sigmoid", "Tanh",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Softmax",
    "AvgPool2D", "Conv2D", "Flatten", "MaxPool2D", "Unflatten",
    "CategoricalCrossEntropy", "MeanSquaredError",
    "MLP", "FeedforwardNeuralNet", "LogisticRegression", "Network", "Sequential",
    "SGD", "Adam", "AdamW",
    "SanityReport", "sanity_check",
    "LayerContractError", "check_layer",
    "EarlyStopping", "History", "TrainingDivergedError", "evaluate", "fit",
    "MLPClassifier", "MLPRegressor",
]

_LAZY = {"MLPClassifier": "estimator", "MLPRegressor": "estimator"}


def __getattr__(name):
    # The estimators import scikit-learn, which a plain `import chainrule` must not.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
