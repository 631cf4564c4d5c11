"""``drop_last``: skipping an epoch's short last batch, as PyTorch's DataLoader does.

The oracle is PyTorch: its ``DataLoader(drop_last=True)`` over the same row order gives
the batches, and a PyTorch training loop over them the parameters ``fit`` must reach.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed
from chainrule.data import batch_indices, iterate_minibatches
from conftest import StandInComm


def loader_batches(torch, order, batch_size, drop_last):
    """The row indices of each batch of a DataLoader visiting the rows in ``order``."""
    loader = torch.utils.data.DataLoader(range(len(order)), batch_size=batch_size,
                                         sampler=order.tolist(), drop_last=drop_last)
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("n, batch_size", [(7, 3), (6, 3), (7, 7), (7, 50), (10, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_are_the_data_loader_s(torch, n, batch_size, drop_last):
    order = np.random.default_rng(n).permutation(n)
    ours = [p.tolist() for p in batch_indices(n, batch_size, order, drop_last)]
    assert ours == loader_batches(torch, order, batch_size, drop_last)
    # in file order the batches are slices, the same rows
    plain = [list(range(n))[s] for s in batch_indices(n, batch_size, drop_last=drop_last)]
    assert plain == loader_batches(torch, np.arange(n), batch_size, drop_last)


def test_iterate_minibatches_drops_the_short_batch():
    X, Y = np.arange(14.0).reshape(7, 2), np.arange(7.0)[:, None]
    got = list(iterate_minibatches(X, Y, 3, shuffle=False, drop_last=True))
    assert [xb[:, 0].tolist() for xb, _ in got] == [[0, 2, 4], [6, 8, 10]]
    assert list(batch_indices(7, None, drop_last=True)) == [slice(0, 7)]  # no minibatches
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="drop_last"):
            iterate_minibatches(X, Y, 3, drop_last=bad)


def torch_loop(torch, model, X, y, orders, batch_size, lr):
    """PyTorch: DataLoader(drop_last=True) over each epoch's order, SGD on the mean
    cross-entropy; returns the parameters and each epoch's row-weighted mean loss."""
    names = ("W1", "b1", "W2", "b2")
    W1, b1, W2, b2 = params = [torch.tensor(model.params[k].copy(), requires_grad=True)
                               for k in names]
    opt = torch.optim.SGD(params, lr=lr)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    losses = []
    for order in orders:
        total, rows = 0.0, 0
        for idx in loader_batches(torch, order, batch_size, drop_last=True):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                torch.relu(Xt[idx] @ W1 + b1) @ W2 + b2, yt[idx])
            loss.backward()
            opt.step()
            total, rows = total + loss.item() * len(idx), rows + len(idx)
        losses.append(total / rows)
    return dict(zip(names, (p.detach().numpy() for p in params), strict=True)), losses


def test_fit_with_drop_last_trains_what_a_torch_data_loader_loop_trains(torch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((23, 5)), rng.integers(0, 3, 23)
    orders = [rng.permutation(23) for _ in range(3)]
    draws = iter(orders)
    model, start = cr.MLP([5, 8, 3], rng=1), cr.MLP([5, 8, 3], rng=1)
    history = cr.fit(model, X, y, optimizer=cr.SGD(lr=0.3), epochs=3, batch_size=5,
                     shuffle=lambda n: next(draws), drop_last=True, progress=False)
    expected, losses = torch_loop(torch, start, X, y, orders, batch_size=5, lr=0.3)
    for k, p in model.params.items():
        np.testing.assert_allclose(p, expected[k], rtol=1e-12, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)
    # 23 rows in batches of 5: the last 3 rows of each order were left out
    kept, draws = cr.MLP([5, 8, 3], rng=1), iter(orders)
    cr.fit(kept, X, y, optimizer=cr.SGD(lr=0.3), epochs=3, batch_size=5,
           shuffle=lambda n: next(draws), progress=False)
    assert not np.allclose(kept.params["W1"], model.params["W1"])


def batchnorm_net():
    return cr.Sequential([cr.Affine(5, 6), cr.BatchNorm1d(6, momentum=None), cr.ReLU(),
                          cr.Affine(6, 3)], rng=0)


def test_drop_last_lets_batchnorm_train_when_a_batch_of_one_row_is_left():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((21, 5)), rng.integers(0, 3, 21)
    with pytest.raises(ValueError, match=r"leaves a batch of 1 of the 21 training rows.*"
                                         r"\(or drop_last=True\)"):
        cr.fit(batchnorm_net(), X, y, optimizer="sgd", epochs=1, batch_size=4, progress=False)
    model = batchnorm_net()
    history = cr.fit(model, X, y, optimizer="sgd", epochs=2, batch_size=4, drop_last=True,
                     progress=False)
    assert np.isfinite(history.history["loss"]).all()
    assert model.buffers["num_batches_tracked2"] == 10  # 5 full batches an epoch


def test_drop_last_without_a_full_batch_is_refused_before_anything_changes():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 5)), rng.integers(0, 3, 20)
    model = cr.MLP([5, 4, 3], rng=0)
    before = {k: p.copy() for k, p in model.params.items()}
    gen = np.random.default_rng(7)
    state = gen.bit_generator.state
    with pytest.raises(ValueError, match=r"drop_last=True with batch_size=16 above the 15 "
                                         r"training rows leaves no batch"):
        cr.fit(model, X, y, optimizer="sgd", epochs=1, batch_size=16, drop_last=True,
               validation_fraction=0.25, rng=gen, progress=False)
    assert gen.bit_generator.state == state  # the split was not drawn
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, before[k])
    with pytest.raises(TypeError, match="drop_last must be"):
        cr.fit(model, X, y, optimizer="sgd", epochs=1, batch_size=4, drop_last="no",
               progress=False)
    # the full batch has no short batch: drop_last changes nothing
    a, b = cr.MLP([5, 4, 3], rng=0), cr.MLP([5, 4, 3], rng=0)
    cr.fit(a, X, y, optimizer="sgd", epochs=2, drop_last=True, progress=False)
    cr.fit(b, X, y, optimizer="sgd", epochs=2, progress=False)
    for k, p in a.params.items():
        np.testing.assert_array_equal(p, b.params[k])


def test_resuming_needs_the_same_drop_last_and_continues_bit_for_bit(tmp_path):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((23, 5)), rng.integers(0, 3, 23)
    path = tmp_path / "ck.npz"
    kwargs = dict(optimizer=cr.Adam(lr=1e-2), batch_size=5, rng=0, progress=False)
    cr.fit(cr.MLP([5, 6, 3], rng=0), X, y, epochs=1, drop_last=True, checkpoint=path,
           **kwargs)
    with pytest.raises(ValueError, match="drop_last"):
        cr.fit(cr.MLP([5, 6, 3], rng=0), X, y, epochs=2, checkpoint=path, resume=True,
               **dict(kwargs, optimizer=cr.Adam(lr=1e-2)))
    resumed = cr.MLP([5, 6, 3], rng=0)
    cr.fit(resumed, X, y, epochs=2, drop_last=True, checkpoint=path, resume=True,
           **dict(kwargs, optimizer=cr.Adam(lr=1e-2)))
    straight = cr.MLP([5, 6, 3], rng=0)
    cr.fit(straight, X, y, epochs=2, drop_last=True, **dict(kwargs, optimizer=cr.Adam(lr=1e-2)))
    for k, p in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], p, err_msg=k)


def test_ranks_need_rows_only_in_the_batches_that_are_kept():
    # 30 rows in batches of 8: 8, 8, 8 and a last batch of 6, short of one row per rank
    with pytest.raises(ValueError, match="gives a batch of 6 rows"):
        distributed.check_comm(StandInComm(7), 30, 8)
    assert distributed.check_comm(StandInComm(7), 30, 8, drop_last=True) is not None


def test_the_historys_accuracy_counts_the_rows_trained_on_weighed_as_the_loss():
    """With drop_last the epoch's accuracy is over the rows it trained on (it divided by
    all rows); with sample weights it weighs them as the loss does; a learning rate of
    1e-300 leaves the weights as they were, so evaluate on the same rows restates it."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 6)), rng.integers(0, 3, 100)
    w = rng.uniform(0, 2, 100)
    for kwargs, rows, weights in (({"drop_last": True}, slice(0, 90), None),
                                  ({"sample_weight": w}, slice(0, 100), w)):
        model = cr.MLP([6, 5, 3], rng=0)
        history = cr.fit(model, X, y, optimizer=cr.SGD(lr=1e-300), epochs=1, batch_size=30,
                         shuffle=False, progress=False, **kwargs)
        ref = cr.evaluate(model, X[rows], y[rows],
                          sample_weight=None if weights is None else weights[rows])
        assert history.history["accuracy"][0] == pytest.approx(ref["accuracy"], rel=1e-12)
        assert history.history["loss"][0] == pytest.approx(ref["loss"], rel=1e-12)


def test_validation_metrics_weigh_the_validation_rows():
    """validation_fraction keeps the held-out rows' sample weights, and validation_data
    takes a third element, so early stopping watches the weighted objective; both equal
    evaluate with those weights."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 2, 80)
    w = np.where(y == 1, 3.0, 0.2)
    model = cr.MLP([4, 6, 2], rng=0)
    history = cr.fit(model, X[:60], y[:60], optimizer=cr.Adam(lr=1e-2), epochs=2,
                     batch_size=20, rng=0, progress=False, sample_weight=w[:60],
                     validation_data=(X[60:], y[60:], w[60:]))
    ref = cr.evaluate(model, X[60:], y[60:], sample_weight=w[60:])
    assert history.history["val_loss"][-1] == pytest.approx(ref["loss"], rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(ref["accuracy"], rel=1e-12)
    plain = cr.evaluate(model, X[60:], y[60:])
    assert abs(plain["loss"] - ref["loss"]) > 1e-3   # (the weights matter here)
    split = cr.MLP([4, 6, 2], rng=0)
    gen = np.random.default_rng(5)
    history = cr.fit(split, X, y, optimizer=cr.Adam(lr=1e-2), epochs=1, batch_size=20,
                     rng=gen, progress=False, sample_weight=w, validation_fraction=0.25)
    val_rows = cr.data.split_rows(80, 20, np.random.default_rng(5))[1]
    ref = cr.evaluate(split, X[val_rows], y[val_rows], sample_weight=w[val_rows])
    assert history.history["val_loss"][-1] == pytest.approx(ref["loss"], rel=1e-12)
    with pytest.raises(TypeError, match=r"validation_data must be \(X_val, Y_val\) or"):
        cr.fit(split, X, y, optimizer=cr.SGD(), epochs=1, progress=False,
               validation_data=(X, y, w, w))


def test_weights_that_leave_nothing_to_weigh_are_named():
    """Held-out rows that all weigh 0 (a split of mostly-0 weights) crashed in
    np.average at the epoch's end; a drop_last epoch whose kept rows all weigh 0
    divided by zero. Both are named ValueErrors, before or at the epoch."""
    X, y = np.random.default_rng(2).normal(size=(23, 3)), np.arange(23) % 2
    w = np.zeros(23)
    w[-3:] = 1.0
    with pytest.raises(ValueError, match="every row trained on weighs 0"):
        cr.fit(cr.MLP([3, 2], rng=0), X, y, optimizer=cr.SGD(), epochs=1, batch_size=5,
               drop_last=True, shuffle=False, sample_weight=w, progress=False)
    w = np.zeros(40)
    w[::4] = 1.0
    X, y = np.random.default_rng(3).normal(size=(40, 3)), np.arange(40) % 2
    refused = 0
    for seed in range(30):
        try:
            cr.fit(cr.MLP([3, 2], rng=0), X, y, optimizer=cr.SGD(), epochs=1, rng=seed,
                   sample_weight=w, validation_fraction=0.1, progress=False)
        except ValueError as exc:
            assert "sample_weight of the validation rows sums to 0" in str(exc)
            refused += 1
    assert refused > 0   # (some of the 30 splits hold out only rows of weight 0)
