"""Gradient clipping: ``clip_norm`` / ``clip_value`` on every optimizer (chainrule.optim).

Checked against two oracles that share no code with it: the definitions written out
below (the joint L2 norm, and ``max_norm / (norm + 1e-6)`` as
``torch.nn.utils.clip_grad_norm_`` documents it), and PyTorch itself: its
``clip_grad_norm_`` / ``clip_grad_value_`` on the same gradients, and a PyTorch training
loop (``backward``, clip, ``optimizer.step``) against ``fit`` with a clipping optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import SGD, Adam, AdamW, clip_gradients, make_optimizer

SHAPES = {"W1": (5, 4), "b1": (4,), "W2": (4, 3), "b2": (3,)}


def grads_of(scale, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}


def joint_norm(grads):
    return np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in grads.values()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale, clip_norm", [(1.0, 0.5), (1.0, 2.0), (10.0, 1e-3), (1.0, 1e6)])
def test_clip_norm_is_torch_s_clip_grad_norm(torch, dtype, scale, clip_norm):
    grads = grads_of(scale, dtype)
    before = {k: g.copy() for k, g in grads.items()}
    clipped = clip_gradients(grads, clip_norm=clip_norm)
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g.copy())
    returned = torch.nn.utils.clip_grad_norm_(tensors, clip_norm)
    norm = joint_norm(grads)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert float(returned) == pytest.approx(norm, rel=rtol)
    for (k, g), t in zip(clipped.items(), tensors, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=0, err_msg=k)
        np.testing.assert_array_equal(grads[k], before[k])  # the input is left alone
    # the definition: above the limit the norm becomes clip_norm * norm / (norm + 1e-6)
    expected = min(norm, clip_norm * norm / (norm + 1e-6))
    assert joint_norm(clipped) == pytest.approx(expected, rel=rtol)
    assert (clipped is grads) == (norm <= clip_norm)  # nothing to clip: no copies


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_value_is_torch_s_clip_grad_value(torch, dtype):
    grads = grads_of(2.0, dtype)
    clipped = clip_gradients(grads, clip_value=0.75)
    for k, g in clipped.items():
        t = torch.tensor(grads[k].copy(), requires_grad=True)
        t.grad = torch.tensor(grads[k].copy())
        torch.nn.utils.clip_grad_value_([t], 0.75)
        np.testing.assert_array_equal(g, t.grad.numpy(), err_msg=k)
        assert np.abs(g).max() == pytest.approx(0.75) and g.dtype == dtype
        assert np.abs(grads[k]).max() > 0.75  # the input still holds the large entries


def test_a_clipped_norm_sums_float32_in_float64():
    # 4e19 squared overflows float32 (3.4e38): a float32 sum would make the norm
    # infinite and zero every gradient.
    grads = {"W": np.full(4, 4e19, np.float32)}
    clipped = clip_gradients(grads, clip_norm=1.0)
    np.testing.assert_allclose(clipped["W"], 0.5, rtol=1e-6)


def torch_loop(torch, model, X, y, make_opt, clip, epochs):
    """PyTorch's training loop: full-batch steps of CrossEntropyLoss, clip, step."""
    params = [torch.tensor(model.params[k].copy(), requires_grad=True)
              for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = params
    opt = make_opt(params)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        logits = torch.relu(Xt @ W1 + b1) @ W2 + b2
        torch.nn.functional.cross_entropy(logits, yt).backward()
        clip(params)
        opt.step()
    return dict(zip(("W1", "b1", "W2", "b2"), (p.detach().numpy() for p in params),
                    strict=True))


@pytest.mark.parametrize("name, ours, theirs, clip", [
    ("sgd, norm", lambda: SGD(lr=0.5, momentum=0.9, weight_decay=1e-2, clip_norm=0.3),
     lambda t, ps: t.optim.SGD(ps, lr=0.5, momentum=0.9, weight_decay=1e-2),
     lambda t, ps: t.nn.utils.clip_grad_norm_(ps, 0.3)),
    ("adam, value", lambda: Adam(lr=0.05, clip_value=0.02),
     lambda t, ps: t.optim.Adam(ps, lr=0.05),
     lambda t, ps: t.nn.utils.clip_grad_value_(ps, 0.02)),
    ("adamw, norm", lambda: AdamW(lr=0.05, clip_norm=0.1),
     lambda t, ps: t.optim.AdamW(ps, lr=0.05),
     lambda t, ps: t.nn.utils.clip_grad_norm_(ps, 0.1))])
def test_fit_with_a_clipping_optimizer_trains_what_torch_trains(torch, name, ours, theirs,
                                                                 clip):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5)) * 3
    y = rng.integers(0, 3, 40)
    model = cr.MLP([5, 8, 3], rng=0)
    start = cr.MLP([5, 8, 3], rng=0)
    cr.fit(model, X, y, optimizer=ours(), epochs=15, progress=False, diagnostics=False)
    expected = torch_loop(torch, start, X, y, lambda ps: theirs(torch, ps),
                          lambda ps: clip(torch, ps), epochs=15)
    unclipped = cr.MLP([5, 8, 3], rng=0)
    opt = ours()
    opt.clip_norm = opt.clip_value = None
    cr.fit(unclipped, X, y, optimizer=opt, epochs=15, progress=False, diagnostics=False)
    for k, p in model.params.items():
        np.testing.assert_allclose(p, expected[k], rtol=1e-10, atol=1e-12, err_msg=k)
    # the clip bit: without it the same run ends elsewhere
    assert max(np.abs(unclipped.params[k] - p).max() for k, p in model.params.items()) > 1e-3


def test_clip_settings_are_checked_and_described():
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                       ("1", TypeError)):
        with pytest.raises(error, match="clip_norm"):
            SGD(lr=0.1, clip_norm=bad)
        with pytest.raises(error, match="clip_value"):
            Adam(clip_value=bad)
    with pytest.raises(ValueError, match="clip_norm or clip_value, not both"):
        SGD(lr=0.1, clip_norm=1.0, clip_value=1.0)
    opt = make_optimizer("adam", lr=1e-3, clip_norm=2)
    assert opt.clip_norm == 2.0 and opt.hyperparameters()["clip_norm"] == 2.0
    assert "clip_norm=2.0" in repr(opt) and "clip_value" not in repr(opt)
    # a run without clipping is described as before the option existed
    assert "clip_norm" not in SGD(lr=0.1).hyperparameters()
    assert "clip" not in repr(AdamW())


def test_a_failed_step_changes_nothing_when_clipping():
    opt = SGD(lr=0.1, momentum=0.9, clip_norm=0.1)
    params = grads_of(1.0)
    before = {k: p.copy() for k, p in params.items()}
    grads = grads_of(5.0, seed=1)
    grads["b2"] = np.zeros(4)  # wrong shape
    with pytest.raises(ValueError, match="grads\\['b2'\\] must have shape"):
        opt.step(params, grads)
    for k, p in params.items():
        np.testing.assert_array_equal(p, before[k])
    assert opt.steps == 0 and opt.state == {}


def test_resuming_with_another_clip_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    path = tmp_path / "ck.npz"
    kwargs = dict(batch_size=10, rng=0, checkpoint=path, progress=False)
    cr.fit(cr.MLP([5, 6, 3], rng=0), X, y, optimizer=Adam(clip_norm=1.0), epochs=1, **kwargs)
    with pytest.raises(ValueError, match="clip_norm: 1.0 in the checkpoint, 2.0 now"):
        cr.fit(cr.MLP([5, 6, 3], rng=0), X, y, optimizer=Adam(clip_norm=2.0), epochs=2,
               resume=True, **kwargs)
    resumed = cr.MLP([5, 6, 3], rng=0)
    cr.fit(resumed, X, y, optimizer=Adam(clip_norm=1.0), epochs=2, resume=True, **kwargs)
    straight = cr.MLP([5, 6, 3], rng=0)
    cr.fit(straight, X, y, optimizer=Adam(clip_norm=1.0), epochs=2, batch_size=10, rng=0,
           progress=False)
    for k, p in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], p, err_msg=k)


def test_chainrule_train_clip_norm(capsys):
    from chainrule.cli import main

    assert main(["train", "-q", "--epochs", "2", "--clip-norm", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Adam(lr=0.002" in out and "clip_norm=0.5)" in out
    assert main(["train", "-q", "--epochs", "2", "--clip-norm", "0"]) == 2  # a usage error
    assert "--clip-norm must be a finite number > 0, got 0.0" in capsys.readouterr().err
