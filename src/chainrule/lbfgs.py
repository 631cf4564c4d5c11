"""Full-batch training with L-BFGS: scikit-learn's ``solver='lbfgs'`` on a chainrule network.

:func:`minimize_lbfgs` hands ``scipy.optimize.minimize(method='L-BFGS-B', jac=True)``
one contiguous float64 vector holding every parameter, and a function that writes the
vector back into ``model.params`` (in place: arrays other code holds stay valid) and
returns the loss and its gradient from the network's own hand-written backward pass
(``model.loss_and_grads``), never from finite differences. The objective is
scikit-learn's: the mean loss plus ``0.5 * l2 * sum(W**2) / n`` over the weights
(:func:`~chainrule.losses.l2_penalty`), with scipy's options set as scikit-learn
sets them (``maxiter``, ``maxfun``, ``gtol``).

scipy is imported inside the function: ``import chainrule`` stays NumPy-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._threads import threads_for
from ._validation import (
    as_float_array,
    check_positive_float,
    check_positive_int,
    check_sample_weight,
    shape_str,
)
from .layers import Dropout
from .losses import l2_penalty
from .models import Network

__all__ = ["LBFGSResult", "minimize_lbfgs", "lbfgs_objective", "weight_names", "ParamVector"]


def weight_names(model: Network) -> list[str]:
    """The weights of ``model``: the first parameter of every layer that has parameters
    (``W1, W2, ...`` of an MLP). scikit-learn's ``alpha`` penalises these, not biases."""
    return [names[0] for _, names in model.layers if names]


class ParamVector:
    """Maps a params dict to one flat float64 vector and back.

    The order is scikit-learn's ``_pack``: every weight (see :func:`weight_names`), then
    every other parameter (the biases), each flattened in C order. L-BFGS does not
    depend on the order, but the same order makes its rounding follow scikit-learn's.

    Parameters
    ----------
    params : dict of str to ndarray
    first : list of str
        Names placed first, in this order; the rest follow in ``params`` order.
    """

    def __init__(self, params: dict, first):
        first = list(first)
        order = first + [k for k in params if k not in first]
        self.slices = []
        start = 0
        for name in order:
            shape = params[name].shape
            stop = start + int(np.prod(shape, dtype=np.int64))
            self.slices.append((name, start, stop, shape))
            start = stop
        self.size = start

    def pack(self, arrays: dict) -> np.ndarray:
        """A new float64 vector holding ``arrays`` (params or grads, same keys)."""
        out = np.empty(self.size, dtype=np.float64)
        for name, start, stop, _ in self.slices:
            out[start:stop] = arrays[name].ravel()
        return out

    def unpack_into(self, vector: np.ndarray, params: dict) -> None:
        """Write ``vector`` into the arrays of ``params`` in place, cast to their dtype."""
        for name, start, stop, shape in self.slices:
            params[name][...] = vector[start:stop].reshape(shape)


@dataclass
class LBFGSResult:
    """What :func:`minimize_lbfgs` reports.

    Attributes
    ----------
    n_iter : int
        L-BFGS iterations, scipy's ``nit`` capped at ``max_iter`` (scikit-learn's ``n_iter_``).
    n_fun : int
        Evaluations of the loss and gradient (scipy's ``nfev``).
    loss : float
        The objective (loss plus L2 penalty) at the final parameters
        (scikit-learn's ``loss_``).
    converged : bool
        scipy's status is 0: the gradient or the relative loss change fell below its
        tolerance. False when ``max_iter`` or ``max_fun`` ran out, the line search
        failed or the callback stopped the run (scikit-learn then warns).
    status : int
        scipy's status code.
    message : str
        scipy's message.
    """

    n_iter: int
    n_fun: int
    loss: float
    converged: bool
    status: int
    message: str


def _check_problem(model, X, Y, sample_weight):
    """The inputs, checked once and cast to the model's dtype, ready for ``checked=True``."""
    if not isinstance(model, Network):
        raise TypeError(f"model must be a chainrule Network (e.g. an MLP), got "
                        f"{type(model).__name__}")
    dropout = [layer for layer, _ in model.layers if isinstance(layer, Dropout) and layer.p > 0]
    if dropout:
        raise ValueError(f"model has {dropout[0]!r}: L-BFGS needs a deterministic loss (its "
                         f"line search compares values), so train with dropout 0 or with "
                         f"a stochastic optimizer")
    X = model.check_X(X)
    Y = as_float_array(Y, "Y", ndim=2, dtype=model.dtype)
    if Y.shape != (X.shape[0], model.n_outputs):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {model.n_outputs}) (one row per "
                         f"row of X, one column per model output), got {shape_str(Y.shape)}")
    model.loss.check_targets(Y, "Y")
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, X.shape[0], model.dtype)
    return X, Y, sample_weight


def lbfgs_objective(model: Network, X, Y, *, sample_weight=None, l2: float = 0.0):
    """The function :func:`minimize_lbfgs` hands to scipy, and the vector layout.

    Checks the inputs once. ``fun(x)`` writes ``x`` into ``model.params`` (in place) and
    returns ``(loss + penalty, gradient)`` as a float and a new float64 vector, the
    gradient from ``model.loss_and_grads`` plus ``l2 * W / n`` on the weights (``n``:
    rows, or the sum of ``sample_weight``, as scikit-learn divides).

    Returns
    -------
    fun : callable
        ``fun(x) -> (float, ndarray)``, for ``scipy.optimize.minimize(jac=True)``.
    vector : ParamVector
        ``vector.pack(model.params)`` is the current point.
    """
    X, Y, sample_weight = _check_problem(model, X, Y, sample_weight)
    l2 = check_positive_float(l2, "l2", allow_zero=True)
    weights = weight_names(model)
    vector = ParamVector(model.params, weights)
    n = X.shape[0] if sample_weight is None else float(sample_weight.sum())

    def fun(x):
        vector.unpack_into(x, model.params)
        loss, grads = model.loss_and_grads(X, Y, sample_weight, checked=True)
        penalty, penalty_grads = l2_penalty(model.params, weights, l2, n)
        for name, g in penalty_grads.items():
            grads[name] += g
        # A new array on every call: L-BFGS-B keeps the gradients it is given.
        return loss + penalty, vector.pack(grads)

    return fun, vector


def minimize_lbfgs(model: Network, X, Y, *, sample_weight=None, l2: float = 0.0,
                   max_iter: int = 200, max_fun: int = 15000, tol: float = 1e-4,
                   callback=None) -> LBFGSResult:
    """Train ``model`` on the whole of ``(X, Y)`` with L-BFGS, as scikit-learn's
    ``solver='lbfgs'``.

    Minimises ``loss(X, Y) + 0.5 * l2 * sum_W sum(W**2) / n`` over every parameter, with
    ``n`` the number of rows (or the sum of ``sample_weight``) and ``W`` the weights
    only (:func:`weight_names`). The parameters are updated in place; on return they
    hold scipy's final point.

    Parameters
    ----------
    model : Network
        Without active dropout (the loss must be deterministic).
    X : array_like or scipy.sparse CSR/CSC matrix, shape (N, D)
    Y : array_like, shape (N, K)
        Targets as the model's loss takes them (one-hot or probability rows for
        cross-entropy).
    sample_weight : array_like, shape (N,), optional
    l2 : float, default=0.0
        scikit-learn's ``alpha``.
    max_iter : int, default=200
        scipy's ``maxiter``: L-BFGS iterations.
    max_fun : int, default=15000
        scipy's ``maxfun``: loss-and-gradient evaluations.
    tol : float, default=1e-4
        scipy's ``gtol``: stop when every entry of the projected gradient is this small.
    callback : callable, optional
        ``callback(n_iter, loss)`` after each iteration, with ``model.params`` set to
        that iteration's point; returning True stops the run (``converged`` is then False).

    Returns
    -------
    LBFGSResult

    Notes
    -----
    The loss and gradient are computed in the model's dtype (float32 stays float32);
    scipy works in float64 on a copy, cast back on every evaluation. In float32 the
    line search meets rounding noise earlier and may end with ``converged=False``.
    """
    import scipy.optimize

    # The BLAS threads are chosen once for the run, from the full-batch products (as fit
    # does), before the inputs are checked: the checks' BLAS calls run on them too.
    with threads_for(X, model.params if isinstance(model, Network) else {}):
        fun, vector = lbfgs_objective(model, X, Y, sample_weight=sample_weight, l2=l2)
        max_iter = check_positive_int(max_iter, "max_iter")
        max_fun = check_positive_int(max_fun, "max_fun")
        tol = check_positive_float(tol, "tol", allow_zero=True)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        iterations = 0

        def on_iteration(intermediate_result):
            nonlocal iterations
            iterations += 1
            vector.unpack_into(intermediate_result.x, model.params)
            if callback(iterations, float(intermediate_result.fun)):
                raise StopIteration

        # scikit-learn passes iprint only to scipy < 1.15, where it means "silent".
        result = scipy.optimize.minimize(
            fun, vector.pack(model.params), method="L-BFGS-B", jac=True,
            callback=on_iteration if callback is not None else None,
            options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol})
    vector.unpack_into(result.x, model.params)
    return LBFGSResult(n_iter=min(int(result.nit), max_iter), n_fun=int(result.nfev),
                       loss=float(result.fun), converged=result.status == 0,
                       status=int(result.status), message=str(result.message))
