"""chainrule: neural networks in NumPy with every backward pass written by hand.

Each layer's ``backward`` sits right under its ``forward`` and applies the chain rule
to what ``forward`` cached. Start with :class:`MLP`, or the homework's
:class:`LogisticRegression` and :class:`FeedforwardNeuralNet`.
"""

from . import functional, init, layers, losses, models, optim
from .functional import accuracy, log_softmax, logsumexp, one_hot, softmax
from .init import he_normal, he_uniform, xavier_init, xavier_normal, xavier_uniform
from .layers import Affine, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import CategoricalCrossEntropy, MeanSquaredError
from .models import MLP, FeedforwardNeuralNet, LogisticRegression, Network
from .optim import SGD, Adam, AdamW

__version__ = "0.1.0"

__all__ = [
    "functional", "init", "layers", "losses", "models", "optim",
    "accuracy", "log_softmax", "logsumexp", "one_hot", "softmax",
    "he_normal", "he_uniform", "xavier_init", "xavier_normal", "xavier_uniform",
    "Affine", "Dropout", "LeakyReLU", "ReLU", "Sigmoid", "Tanh",
    "CategoricalCrossEntropy", "MeanSquaredError",
    "MLP", "FeedforwardNeuralNet", "LogisticRegression", "Network",
    "SGD", "Adam", "AdamW",
]
