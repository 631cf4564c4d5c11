"""fit checks a narrowing first Affine layer's X finite through the first epoch's batches
(RunSettings.scan_rows) rather than by a scan before training: a NaN or infinity in any
row must still be refused with the scan's error and leave the model, the optimizer and
the generator as they were before the call."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.fitargs import check_fit_arguments

MESSAGE = r"X must contain only finite values, got 1 NaN or infinite entries"


def _data(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, 3, n)


def _settings(model, X, y, **kw):
    args = dict(optimizer="sgd", epochs=1, batch_size=16, shuffle=True, validation_data=None,
                validation_fraction=None, early_stopping=None, callbacks=(), rng=0,
                progress=False, sample_weight=None, checkpoint=None, resume=False,
                diagnostics=False, l2=0.0, comm=None)
    return check_fit_arguments(model, X, y, **{**args, **kw})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row, drop_last", [(0, False), (150, False), (199, False),
                                            (199, True)])
def test_a_bad_row_found_in_the_first_epoch_rolls_everything_back(bad, row, drop_last):
    X, y = _data()
    X[row, 5] = bad
    model = cr.MLP([12, 6, 3], rng=0)
    assert _settings(model, X, y).scan_rows   # the batches check X here
    optimizer = cr.Adam(lr=0.01)
    cr.fit(model, *_data(seed=1), optimizer=optimizer, epochs=1, batch_size=16,
           progress=False)   # (some optimizer state to keep)
    params = {k: p.copy() for k, p in model.params.items()}
    state = optimizer.state_dict()
    gen = np.random.default_rng(5)
    drawn = gen.bit_generator.state
    with pytest.raises(ValueError, match=MESSAGE):
        # batches of 16 over 200 rows: with drop_last the last 8 are never a batch, and
        # a bad row there (a shuffled order: some row past 192) is found after the epoch
        cr.fit(model, X, y, optimizer=optimizer, epochs=3, batch_size=16, rng=gen,
               drop_last=drop_last, shuffle=False if drop_last else True, progress=False)
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, params[k], err_msg=k)
    after = optimizer.state_dict()
    assert after["steps"] == state["steps"]
    for k in state["state"]:
        for key, v in state["state"][k].items():
            np.testing.assert_array_equal(after["state"][k][key], v)
    assert gen.bit_generator.state == drawn


def test_where_the_batches_cannot_stand_for_the_scan_x_is_scanned_before_training():
    X, y = _data()
    widening = cr.MLP([12, 20, 3], rng=0)       # the first output is the larger array
    assert not _settings(widening, X, y).scan_rows
    narrowing = cr.MLP([12, 6, 3], rng=0)
    assert not _settings(narrowing, X, y, validation_fraction=0.2).scan_rows
    assert not _settings(narrowing, X.astype(np.float32), y).scan_rows   # a cast first
    X[3, 0] = np.nan
    gen = np.random.default_rng(5)
    drawn = gen.bit_generator.state
    with pytest.raises(ValueError, match=MESSAGE):
        cr.fit(narrowing, X, y, optimizer="sgd", epochs=1, validation_fraction=0.2, rng=gen,
               progress=False)
    assert gen.bit_generator.state == drawn   # refused before the split's draw
