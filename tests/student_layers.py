"""A student's BatchNorm1d, Softmax and LayerNorm, written from the layer contract, each
with a ``bug`` switch that plants one of the mistakes students make.

These are test fixtures, not library layers: ``tests/test_student_layers.py`` checks
that the correct versions pass ``check_layer`` and the network checks, and that every
planted bug is caught by the check that looks at the mode in which it is wrong.
"""

from __future__ import annotations

import numpy as np

#: Every planted bug: name -> (layer, where the code is wrong).
BUGS = {
    "bn_eval_uses_batch_stats": ("BatchNorm1d", "eval forward"),
    "bn_eval_updates_running": ("BatchNorm1d", "eval state"),
    "bn_swapped_momentum": ("BatchNorm1d", "training state"),
    "bn_train_backward_after_eval": ("BatchNorm1d", "eval backward"),
    "bn_eval_backward_forgets_scale": ("BatchNorm1d", "eval backward"),
    "bn_forgets_1_over_n": ("BatchNorm1d", "training backward"),
    "bn_dgamma_mean": ("BatchNorm1d", "training backward"),
    "bn_dbeta_mean": ("BatchNorm1d", "training backward"),
    "bn_dx_no_mean_term": ("BatchNorm1d", "training backward"),
    "bn_dx_no_var_term": ("BatchNorm1d", "training backward"),
    "sm_no_max_shift": ("Softmax", "forward, large inputs"),
    "sm_diagonal_only": ("Softmax", "backward"),
    "sm_sum_no_keepdims": ("Softmax", "backward, axis"),
    "sm_sum_axis0": ("Softmax", "backward, axis"),
    "sm_wrong_sign": ("Softmax", "backward"),
    "ln_divides_by_n": ("LayerNorm", "backward, axis"),
    "ln_dgamma_per_row": ("LayerNorm", "backward, shape"),
    "ln_dgamma_mean": ("LayerNorm", "backward"),
    "ln_dx_no_xhat_term": ("LayerNorm", "backward"),
    "ln_dx_no_mean_term": ("LayerNorm", "backward"),
}


class BatchNorm1d:
    """Batch normalisation over the rows: ``y = gamma * (x - mu) / sqrt(var + eps) + beta``.

    Training mode normalises with the batch's mean and (biased) variance and moves the
    running statistics towards them, ``r <- (1 - momentum) r + momentum * batch``;
    evaluation mode normalises with the running statistics and changes nothing.
    """

    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features, momentum=0.1, eps=1e-5, bug=None):
        self.num_features, self.momentum, self.eps, self.bug = num_features, momentum, eps, bug
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.training = True
        self.cache = None

    def init_params(self, rng, dtype):
        return [np.ones(self.num_features, dtype=dtype), np.zeros(self.num_features, dtype=dtype)]

    def get_config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    def forward(self, x, gamma, beta):
        batch_stats = self.training or self.bug == "bn_eval_uses_batch_stats"
        if batch_stats:
            mu, var = x.mean(axis=0), x.var(axis=0)
        else:
            mu, var = self.running_mean, self.running_var
        if self.training or self.bug == "bn_eval_updates_running":
            m = self.momentum
            if self.bug == "bn_swapped_momentum":
                m = 1 - m
            bm, bv = x.mean(axis=0), x.var(axis=0)
            self.running_mean = ((1 - m) * self.running_mean + m * bm).astype(x.dtype)
            self.running_var = ((1 - m) * self.running_var + m * bv).astype(x.dtype)
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = (x - mu) * inv
        self.cache = (xhat, inv, gamma, batch_stats)
        return gamma * xhat + beta

    def backward(self, d_out):
        if self.cache is None:
            raise RuntimeError("backward called before forward")
        xhat, inv, gamma, batch_stats = self.cache
        n = xhat.shape[0]
        dgamma = (d_out * xhat).sum(axis=0)
        dbeta = d_out.sum(axis=0)
        if self.bug == "bn_dgamma_mean" and batch_stats:
            dgamma = dgamma / n
        if self.bug == "bn_dbeta_mean" and batch_stats:
            dbeta = dbeta / n
        dxhat = d_out * gamma
        if batch_stats or self.bug == "bn_train_backward_after_eval":
            mean_term = dxhat.sum(axis=0)
            var_term = xhat * (dxhat * xhat).sum(axis=0)
            if self.bug == "bn_dx_no_mean_term":
                mean_term = 0 * mean_term
            if self.bug == "bn_dx_no_var_term":
                var_term = 0 * var_term
            scale = inv if self.bug == "bn_forgets_1_over_n" else inv / n
            dx = scale * (n * dxhat - mean_term - var_term)
        elif self.bug == "bn_eval_backward_forgets_scale":
            dx = dxhat
        else:
            dx = dxhat * inv
        return dx, dgamma, dbeta

    def __repr__(self):
        return f"BatchNorm1d({self.num_features})"


class Softmax:
    """Row-wise softmax ``s = exp(x - max x) / sum(exp(x - max x))``; backward
    ``dx = s * (d - sum(d * s))`` row by row."""

    def __init__(self, bug=None):
        self.bug = bug
        self.training = True
        self.cache = None

    def forward(self, x):
        shifted = x if self.bug == "sm_no_max_shift" else x - x.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e / e.sum(axis=1, keepdims=True)
        self.cache = s
        return s

    def backward(self, d_out):
        if self.cache is None:
            raise RuntimeError("backward called before forward")
        s = self.cache
        if self.bug == "sm_diagonal_only":
            return d_out * s * (1 - s)
        if self.bug == "sm_sum_no_keepdims":
            # broadcasts against the columns: runs only when N == D
            return s * (d_out - (d_out * s).sum(axis=1))
        if self.bug == "sm_sum_axis0":
            return s * (d_out - (d_out * s).sum(axis=0, keepdims=True))
        if self.bug == "sm_wrong_sign":
            return s * (d_out + (d_out * s).sum(axis=1, keepdims=True))
        return s * (d_out - (d_out * s).sum(axis=1, keepdims=True))

    def __repr__(self):
        return "Softmax()"


class LayerNorm:
    """Normalisation of each row over its D features, then ``gamma * xhat + beta``.
    The same in training and evaluation."""

    param_names = ("gamma", "beta")

    def __init__(self, num_features, eps=1e-5, bug=None):
        self.num_features, self.eps, self.bug = num_features, eps, bug
        self.cache = None

    def init_params(self, rng, dtype):
        return [np.ones(self.num_features, dtype=dtype), np.zeros(self.num_features, dtype=dtype)]

    def forward(self, x, gamma, beta):
        mu = x.mean(axis=1, keepdims=True)
        inv = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + self.eps)
        xhat = (x - mu) * inv
        self.cache = (xhat, inv, gamma)
        return gamma * xhat + beta

    def backward(self, d_out):
        if self.cache is None:
            raise RuntimeError("backward called before forward")
        xhat, inv, gamma = self.cache
        d = xhat.shape[0] if self.bug == "ln_divides_by_n" else xhat.shape[1]
        dgamma = (d_out * xhat).sum(axis=0)
        if self.bug == "ln_dgamma_per_row":
            dgamma = d_out * xhat
        if self.bug == "ln_dgamma_mean":
            dgamma = dgamma / xhat.shape[0]
        dbeta = d_out.sum(axis=0)
        dxhat = d_out * gamma
        mean_term = dxhat.sum(axis=1, keepdims=True)
        xhat_term = xhat * (dxhat * xhat).sum(axis=1, keepdims=True)
        if self.bug == "ln_dx_no_xhat_term":
            xhat_term = 0 * xhat_term
        if self.bug == "ln_dx_no_mean_term":
            mean_term = 0 * mean_term
        return inv / d * (d * dxhat - mean_term - xhat_term), dgamma, dbeta

    def __repr__(self):
        return f"LayerNorm({self.num_features})"


def make_layer(bug=None, width=4):
    """The student's layer a bug lives in (the correct one for ``bug=None`` and a
    layer name), ``width`` features wide."""
    kind = BUGS[bug][0] if bug in BUGS else bug
    if kind == "BatchNorm1d":
        return BatchNorm1d(width, bug=bug)
    if kind == "Softmax":
        return Softmax(bug=bug)
    return LayerNorm(width, bug=bug)
