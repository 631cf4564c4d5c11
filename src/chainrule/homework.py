"""The homework's two models: :class:`LogisticRegression` and
:class:`FeedforwardNeuralNet`, kept with the homework's constructors, ``params`` names
and ``learning_rate``, as special cases of :class:`~chainrule.models.MLP` trained by
:class:`~chainrule.optim.SGD` through :meth:`~chainrule.models.Network.step`.
"""

from __future__ import annotations

from ._validation import check_positive_float, check_positive_int
from .models import MLP
from .optim import SGD

__all__ = ["LogisticRegression", "FeedforwardNeuralNet"]


class _HomeworkModel(MLP):
    """Adds the homework's ``learning_rate`` attribute and SGD ``step``."""

    def __init__(self, layer_sizes, init, learning_rate, rng=None):
        # Checked before any weight is drawn, so a bad value leaves the (global) random
        # generator untouched, and named as the caller named it.
        learning_rate = check_positive_float(learning_rate, "learning_rate")
        super().__init__(layer_sizes, activation="relu", init=init, rng=rng)
        self.optimizer = SGD(lr=learning_rate)

    @property
    def learning_rate(self) -> float:
        return self.optimizer.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.optimizer = SGD(lr=check_positive_float(value, "learning_rate"))


class LogisticRegression(_HomeworkModel):
    """Multinomial logistic regression: ``input -> affine -> softmax``.

    Parameters
    ----------
    num_features : int
        ``D``, the number of input features.
    num_classes : int
        ``K``, the number of classes.
    learning_rate : float, default=1e-2
        Step size of plain gradient descent in :meth:`step`.

    Attributes
    ----------
    params : dict
        ``W`` of shape (D, K) and ``b`` of shape (K,), both starting at zero.

    Shape: X (N, D) -> probabilities (N, K).
    """

    def __init__(self, num_features, num_classes, learning_rate=1e-2):
        num_features = check_positive_int(num_features, "num_features")
        num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        super().__init__([num_features, num_classes], "zeros", learning_rate)


class FeedforwardNeuralNet(_HomeworkModel):
    """Two-layer network ``input -> affine -> relu -> affine -> softmax``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        ``D``, ``H`` and ``K``.
    learning_rate : float, default=1e-2
        Step size of plain gradient descent in :meth:`step`.
    rng : None, int or numpy.random.Generator
        Source of the Xavier-uniform weights; ``None`` (the homework) draws ``W1`` then
        ``W2`` from NumPy's global generator.

    Attributes
    ----------
    params : dict
        ``W1`` (D, H), ``b1`` (H,), ``W2`` (H, K), ``b2`` (K,); biases start at zero.

    Shape: X (N, D) -> probabilities (N, K).
    """

    def __init__(self, input_size, hidden_size, output_size, learning_rate=1e-2, rng=None):
        sizes = [check_positive_int(input_size, "input_size"),
                 check_positive_int(hidden_size, "hidden_size"),
                 check_positive_int(output_size, "output_size", minimum=2)]
        super().__init__(sizes, "xavier", learning_rate, rng=rng)
