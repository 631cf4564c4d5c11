"""``Network.state_dict`` / ``load_state_dict``: a network's parameters and buffers out
and back in, with PyTorch's ``strict`` rule and nothing written when a check fails."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr


def batchnorm_net(rng=0, dtype=np.float64):
    return cr.Sequential([cr.Affine(5, 8), cr.BatchNorm1d(8), cr.ReLU(), cr.Affine(8, 3)],
                         rng=rng, dtype=dtype)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 5)), rng.integers(0, 3, 64)


def trained(data, **kwargs):
    model = batchnorm_net(**kwargs)
    cr.fit(model, *data, optimizer="adam", epochs=3, batch_size=16, rng=0, progress=False)
    return model


def test_a_fresh_network_loaded_with_a_state_predicts_as_the_original(data):
    source = trained(data)
    state = source.state_dict()
    assert list(state) == list(source.params) + list(source.buffers)  # buffers included
    target = batchnorm_net(rng=1)
    arrays = {k: id(a) for k, a in {**target.params, **target.buffers}.items()}
    assert target.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(target.predict_proba(data[0]), source.predict_proba(data[0]))
    # the arrays are written in place: an optimizer's state stays bound to them
    assert {k: id(a) for k, a in {**target.params, **target.buffers}.items()} == arrays


def test_a_state_is_a_copy_that_later_training_leaves_alone(data):
    model = trained(data)
    state = model.state_dict()
    kept = {k: a.copy() for k, a in state.items()}
    cr.fit(model, *data, optimizer="adam", epochs=2, batch_size=16, rng=1, progress=False)
    assert not np.array_equal(model.params["W1"], kept["W1"])
    for k, a in state.items():
        np.testing.assert_array_equal(a, kept[k], err_msg=k)
    model.load_state_dict(state)  # back to the weights put aside
    np.testing.assert_array_equal(model.params["W1"], kept["W1"])


def test_an_optimizer_keeps_stepping_the_loaded_network_without_a_warning(data, recwarn):
    model = batchnorm_net()
    optimizer = cr.Adam(lr=1e-2)
    cr.fit(model, *data, optimizer=optimizer, epochs=1, batch_size=16, progress=False)
    model.load_state_dict(trained(data).state_dict())
    cr.fit(model, *data, optimizer=optimizer, epochs=1, batch_size=16, progress=False)
    assert not [w for w in recwarn if "holds state" in str(w.message)]


def test_strict_refuses_missing_and_unexpected_keys_and_changes_nothing(data):
    model = batchnorm_net()
    before = model.state_dict()
    state = trained(data).state_dict()
    del state["running_var2"]
    state["W9"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing keys \['running_var2'\] and unexpected "
                                         r"keys \['W9'\]"):
        model.load_state_dict(state)
    for k, a in model.state_dict().items():
        np.testing.assert_array_equal(a, before[k], err_msg=k)
    # strict=False loads what both have and says what it did not
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["running_var2"] and result.unexpected_keys == ["W9"]
    np.testing.assert_array_equal(model.params["W1"], state["W1"])
    np.testing.assert_array_equal(model.buffers["running_var2"], before["running_var2"])


@pytest.mark.parametrize("key, value, error, message", [
    ("W3", np.zeros((8, 4)), ValueError, r"state_dict\['W3'\] has shape \(8, 4\), but the "
                                         r"network's 'W3' has shape \(8, 3\)"),
    ("b3", np.array([0.0, np.nan, 0.0]), ValueError, r"state_dict\['b3'\] holds NaN"),
    ("b3", np.array(["a", "b", "c"]), TypeError, r"state_dict\['b3'\] must be a numeric"),
])
def test_a_bad_array_is_refused_before_any_is_written(data, key, value, error, message):
    model = batchnorm_net()
    before = model.state_dict()
    state = trained(data).state_dict()  # W1 ... come before the bad one, and are not written
    state[key] = value
    for strict in (True, False):
        with pytest.raises(error, match=message):
            model.load_state_dict(state, strict=strict)
        for k, a in model.state_dict().items():
            np.testing.assert_array_equal(a, before[k], err_msg=k)
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        model.load_state_dict(list(state.items()))


def test_values_are_cast_to_the_network_s_dtype(data):
    source = trained(data)
    model = batchnorm_net(dtype=np.float32)
    model.load_state_dict(source.state_dict())
    assert model.dtype == np.float32 and model.params["W1"].dtype == np.float32
    np.testing.assert_array_equal(model.params["W1"], source.params["W1"].astype(np.float32))
    np.testing.assert_allclose(model.predict_proba(data[0].astype(np.float32)),
                               source.predict_proba(data[0]), rtol=1e-4, atol=1e-6)
