"""Shared test helpers: PyTorch as an independent gradient oracle, random data.

Every use of torch goes through the ``torch`` fixture or the helpers below, which all
import it with :func:`pytest.importorskip`: without torch only the tests that consult
the oracle are skipped (each on its own), and test files that do not need it neither
import it nor pay for importing it. torch is a test dependency; in CI nothing skips.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import settings

from chainrule.conv import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Flatten,
    MaxPool2D,
    Unflatten,
)
from chainrule.conv1d import AdaptiveAvgPool1D, AdaptiveMaxPool1D, AvgPool1D, Conv1D, MaxPool1D
from chainrule.convtranspose import ConvTranspose2D
from chainrule.groupnorm import GroupNorm
from chainrule.layers import (
    ELU,
    GELU,
    Affine,
    Dropout,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from chainrule.losses import CategoricalCrossEntropy, MeanSquaredError
from chainrule.normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LogSoftmax, Softmax

# In CI (CI=true) hypothesis draws the same examples every run, so a green main stays
# green; locally it keeps exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def import_torch():
    """PyTorch, or skip the calling test when it is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture
def torch():
    """PyTorch, the independent oracle; the test is skipped when it is not installed."""
    return import_torch()


def to_torch(a, requires_grad=False):
    """A float64 torch tensor holding a copy of ``a``."""
    torch = import_torch()
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64,
                        requires_grad=requires_grad)


def run_cli(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``chainrule ARGV`` run in this process
    (argparse's own usage errors exit through SystemExit)."""
    from chainrule.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def rel_diff(a, b) -> float:
    """max|a - b| relative to the size of ``b`` (the oracle): a scale-aware distance."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(float).tiny))


def random_one_hot(rng, n, k):
    """``n`` one-hot rows over ``k`` classes, every class present when n >= k."""
    labels = rng.permutation(np.arange(n) % k)
    Y = np.zeros((n, k))
    Y[np.arange(n), labels] = 1.0
    return Y


def torch_layer(layer, x, *params):
    """The torch expression equivalent to one chainrule layer (tensors in, tensor out).

    Dropout uses the mask the chainrule layer drew in its last forward pass (the mask is
    an input of the computation; what is checked is the gradient given that mask).
    """
    torch = import_torch()
    F = torch.nn.functional
    if isinstance(layer, Affine):
        return torch.nn.functional.linear(x, params[0].T, *params[1:])   # (W,) for bias=False
    if isinstance(layer, LeakyReLU):
        return F.leaky_relu(x, negative_slope=layer.negative_slope)
    if isinstance(layer, ReLU):
        return torch.relu(x)
    if isinstance(layer, Hardsigmoid):
        return F.hardsigmoid(x)
    if isinstance(layer, Hardswish):
        return F.hardswish(x)
    if isinstance(layer, Hardtanh):
        return F.hardtanh(x, layer.min_val, layer.max_val)
    if isinstance(layer, Tanh):
        return torch.tanh(x)
    if isinstance(layer, Sigmoid):
        return torch.sigmoid(x)
    if isinstance(layer, GELU):
        return F.gelu(x, approximate=layer.approximate)
    if isinstance(layer, SiLU):
        return F.silu(x)
    if isinstance(layer, ELU):
        return F.elu(x, alpha=layer.alpha)
    if isinstance(layer, Softplus):
        return F.softplus(x, beta=layer.beta, threshold=layer.threshold)
    if isinstance(layer, PReLU):
        return F.prelu(x, params[0])
    if isinstance(layer, Dropout):
        kind, value = layer.cache
        return x if kind == "identity" else x * to_torch(value)
    return _torch_image_layer(torch, layer, x, *params)


def _torch_image_layer(torch, layer, x, *params):
    """torch_layer for the normalisation, softmax, convolution and pooling layers.

    A batch normalisation runs in the mode of the chainrule layer's last forward, with
    copies of its running statistics (in training they do not enter the output).
    """
    F = torch.nn.functional
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        # cache[3]: whether the batch's statistics were used (also in evaluation without
        # running statistics); the momentum does not enter the output (0 for None).
        running = [None if r is None else to_torch(r)
                   for r in (layer.running_mean, layer.running_var)]
        return F.batch_norm(x, *running, *(params or (None, None)), training=layer.cache[3],
                            momentum=layer.momentum or 0.0, eps=layer.eps)
    if isinstance(layer, LayerNorm):
        return F.layer_norm(x, layer.normalized_shape, *params, eps=layer.eps)
    if isinstance(layer, GroupNorm):
        return F.group_norm(x, layer.num_groups, *params, eps=layer.eps)
    if isinstance(layer, Softmax):
        return F.softmax(x, dim=layer.axis)
    if isinstance(layer, LogSoftmax):
        return F.log_softmax(x, dim=layer.axis)
    if isinstance(layer, (Conv1D, MaxPool1D, AvgPool1D, AdaptiveAvgPool1D, AdaptiveMaxPool1D)):
        return _torch_sequence_layer(torch, layer, x, *params)
    if isinstance(layer, Conv2D):
        return F.conv2d(x, *params, stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups)
    if isinstance(layer, ConvTranspose2D):
        return F.conv_transpose2d(x, *params, stride=layer.stride, padding=layer.padding,
                                  output_padding=layer.output_padding, groups=layer.groups,
                                  dilation=layer.dilation)
    if isinstance(layer, MaxPool2D):
        return F.max_pool2d(x, layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, AvgPool2D):
        return F.avg_pool2d(x, layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, AdaptiveAvgPool2D):
        return F.adaptive_avg_pool2d(x, layer.output_size)
    if isinstance(layer, AdaptiveMaxPool2D):
        return F.adaptive_max_pool2d(x, layer.output_size)
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, Unflatten):
        return x.reshape((x.shape[0],) + layer.shape)
    raise TypeError(f"no torch equivalent for {layer!r}")


#: torch.nn.functional.pad's modes for Conv1D's padding modes.
TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def _torch_sequence_layer(torch, layer, x, *params):
    """torch_layer for the 1-D layers, every option included (a Conv1D's padding by
    ``F.pad`` in its mode, then an unpadded ``conv1d``)."""
    F = torch.nn.functional
    if isinstance(layer, Conv1D):
        x = F.pad(x, layer.pads[1], mode=TORCH_PAD_MODES[layer.padding_mode])
        return F.conv1d(x, *params, stride=layer.stride[1], dilation=layer.dilation[1],
                        groups=layer.groups)
    if isinstance(layer, AdaptiveAvgPool1D):
        return F.adaptive_avg_pool1d(x, layer.output_size[1])
    if isinstance(layer, AdaptiveMaxPool1D):
        return F.adaptive_max_pool1d(x, layer.output_size[1])
    k, s, p = layer.kernel_size[1], layer.stride[1], layer.padding[1]
    if isinstance(layer, MaxPool1D):
        return F.max_pool1d(x, k, s, p, ceil_mode=layer.ceil_mode)
    return F.avg_pool1d(x, k, s, p, ceil_mode=layer.ceil_mode,
                        count_include_pad=layer.count_include_pad)


def loss_and_grad(loss_obj, outputs, targets, sample_weight=None, d_out=1.0):
    """A chainrule loss's value and its gradient (its backward's None for the targets
    checked on the way)."""
    value = loss_obj.forward(outputs, targets, sample_weight)
    grad, d_targets = loss_obj.backward(d_out)
    assert d_targets is None
    return value, grad


def torch_loss(loss, outputs, Y, sample_weight=None):
    """The torch loss equivalent to a chainrule loss object."""
    torch = import_torch()
    F = torch.nn.functional
    Yt = to_torch(Y)
    if isinstance(loss, CategoricalCrossEntropy):
        per_row = F.cross_entropy(outputs, Yt.argmax(dim=1), reduction="none")
    elif isinstance(loss, MeanSquaredError):
        per_row = F.mse_loss(outputs, Yt, reduction="none").mean(dim=1)
    else:
        raise TypeError(f"no torch equivalent for {loss!r}")
    return torch_weighted_mean(per_row, sample_weight)


def torch_weighted_mean(per_row, sample_weight=None):
    """The mean of per-row torch losses, weighted by ``sample_weight`` when given (the
    reduction every chainrule loss uses)."""
    if sample_weight is None:
        return per_row.mean()
    w = to_torch(sample_weight)
    return (per_row * w).sum() / w.sum()


def torch_network_loss_and_grads(model, X, Y, sample_weight=None):
    """Loss and gradients of an equivalent torch computation built from a chainrule
    network: the same parameter values (copied), the same layer sequence, torch's own
    autograd. Dropout reuses the masks of the chainrule model's last forward pass."""
    params = {k: to_torch(v, requires_grad=True) for k, v in model.params.items()}
    out = to_torch(X)
    for layer, names in model.layers:
        out = torch_layer(layer, out, *[params[n] for n in names])
    loss = torch_loss(model.loss, out, Y, sample_weight)
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy() for k, p in params.items()}


def pytest_configure(config):
    # The "slow" marker (e.g. scikit-learn's own MLP tests run against chainrule in
    # test_sklearn_drop_in.py), registered here only where pyproject.toml does not
    # register it already, so --strict-markers accepts it either way.
    if not any(line.split(":")[0].strip() == "slow" for line in config.getini("markers")):
        config.addinivalue_line("markers", "slow: a slow test (deselect with -m 'not slow')")


@pytest.fixture
def rng():
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(20240607)


@pytest.fixture(params=["pandas", "csv-module"])
def parser(request, monkeypatch):
    """Each CSV stream test twice: with pandas' C parser, then with the csv module
    (pandas hidden, ``import pandas`` raising ImportError)."""
    if request.param == "pandas":
        pytest.importorskip("pandas")
    else:
        monkeypatch.setitem(sys.modules, "pandas", None)
    return request.param


def same_start_as_sklearn(ours, theirs, X, y):
    """Fit a chainrule estimator and scikit-learn's for one epoch, then copy
    scikit-learn's weights into chainrule's network: the next fits (warm starts) start
    from identical parameters."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning after 1 iteration
        theirs.fit(X, y)
        ours.fit(X, y)
    for mine, its in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                         strict=True):
        mine[...] = its


class StandInComm:
    """Just enough of a communicator of ``size`` ranks for the argument checks."""

    def __init__(self, size, rank=0):
        self.size, self.rank = size, rank

    def Get_size(self):  # noqa: N802
        return self.size

    def Get_rank(self):  # noqa: N802
        return self.rank

    def Allreduce(self, send, recv):  # noqa: N802
        recv[...] = send * self.size

    def allgather(self, value):
        return [value] * self.size

    def Abort(self, code=1):  # noqa: N802
        raise SystemExit(code)
