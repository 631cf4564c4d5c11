"""Issue 11, item 5 (library paths): prediction and evaluation run the network over
row chunks bounded by an activation budget, with results identical to one pass."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from chainrule import network
from chainrule.functional import softmax


@pytest.fixture
def tiny_budget(monkeypatch):
    # A budget of a few rows, so 103 rows make many chunks and a ragged last one.
    model = cr.MLP([6, 32, 16, 4], rng=0)
    per_row = (6 + 32 + 32 + 16 + 16 + 4) * 8     # input and every layer's output
    monkeypatch.setattr(network, "ACTIVATION_BUDGET", 7 * per_row)
    assert model.chunk_rows() == 7
    return model


def _chunk_by_chunk(model, X, rows):
    """The logits of ``X`` as separate forward passes over ``rows`` rows at a time: what
    chunked inference must give bit for bit (the same products on the same rows)."""
    return np.concatenate([model.forward(X[i:i + rows]) for i in range(0, len(X), rows)])


def test_chunked_inference_is_identical_to_one_pass(tiny_budget):
    model = tiny_budget
    X = np.random.default_rng(1).standard_normal((103, 6))
    logits = _chunk_by_chunk(model, X, 7)   # 14 full chunks and a ragged one of 5 rows
    np.testing.assert_array_equal(model.infer(X), logits)
    np.testing.assert_array_equal(model.predict_proba(X), softmax(logits, axis=1))
    np.testing.assert_array_equal(model.predict(X), softmax(logits, axis=1))
    np.testing.assert_array_equal(model.predict_classes(X), logits.argmax(axis=1))
    # One pass over all rows agrees to rounding only: OpenBLAS's Haswell kernel sums a
    # product's terms in an order that depends on the row count (7 rows and 103 differ
    # in the last bit; the SkylakeX kernel happens to agree exactly).
    np.testing.assert_allclose(model.infer(X), model.forward(X), rtol=1e-13, atol=1e-15)


def test_chunked_regression_outputs_are_identical(monkeypatch):
    model = cr.MLP([3, 8, 2], loss="mse", rng=0)
    monkeypatch.setattr(network, "ACTIVATION_BUDGET", 5 * (3 + 8 + 8 + 2) * 8)
    assert model.chunk_rows() == 5
    X = np.random.default_rng(2).standard_normal((31, 3))
    np.testing.assert_array_equal(model.predict(X), _chunk_by_chunk(model, X, 5))
    np.testing.assert_allclose(model.predict(X), model.forward(X), rtol=1e-13, atol=1e-15)


def test_evaluate_in_chunks_gives_the_one_pass_loss(tiny_budget):
    model = tiny_budget
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((103, 6)), np.eye(4)[rng.integers(0, 4, 103)]
    logits = model.forward(X)
    expected_loss = model.loss.forward(logits, Y)
    result = cr.evaluate(model, X, Y)
    assert result["loss"] == expected_loss
    assert result["accuracy"] == np.mean(logits.argmax(1) == Y.argmax(1))


def test_chunk_rows_follow_the_budget_and_the_widths():
    model = cr.MLP([10, 1024, 10], rng=0)
    per_row = (10 + 1024 + 1024 + 10) * 8        # X, Z1, H1, Z2 in float64
    assert model.chunk_rows() == network.ACTIVATION_BUDGET // per_row
    assert cr.MLP([10, 1024, 10], rng=0, dtype=np.float32).chunk_rows(np.float32) == \
        network.ACTIVATION_BUDGET // (per_row // 2)


def test_predict_proba_memory_does_not_grow_with_the_activations():
    # 20,000 rows through 1024 hidden units: ~330 MB of activations in one pass.
    model = cr.MLP([10, 1024, 10], rng=0)
    X = np.random.default_rng(0).standard_normal((20_000, 10))
    tracemalloc.start()
    try:
        proba = model.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert proba.shape == (20_000, 10)
    # The budget (twice: the last chunk's caches live while the next one runs) plus
    # the outputs and the softmax's temporaries.
    assert peak < 2 * network.ACTIVATION_BUDGET + 8 * proba.nbytes + 2**20
