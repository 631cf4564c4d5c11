"""PyTorch's batch normalisation options in BatchNorm1d / BatchNorm2d: ``affine=False``
(no gamma, no beta), ``track_running_stats=False`` (batch statistics in training and
evaluation) and ``momentum=None`` (cumulative average of the batch statistics).

Each option and their combinations against ``torch.nn.BatchNorm1d/2d`` over several
training and evaluation steps (outputs, gradients of inputs and parameters, running
statistics and the batch count) in float64, against finite differences, through a
network (torch's autograd, ``fit``, checkpoints), in model files and in ONNX graphs run
by onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import check_layer_gradients
from chainrule.io.sequential import sequential_state
from chainrule.normalization import BatchNorm1d, BatchNorm2d
from chainrule.testing import check_layer
from conftest import rel_diff, to_torch, torch_network_loss_and_grads

TOL = 1e-10

OPTIONS = {
    "default": {},
    "no_affine": {"affine": False},
    "no_running_stats": {"track_running_stats": False},
    "cumulative": {"momentum": None},
    "no_affine_cumulative": {"affine": False, "momentum": None},
    "no_affine_no_running_stats": {"affine": False, "track_running_stats": False},
    "all_three": {"affine": False, "track_running_stats": False, "momentum": None},
}
SHAPES = [(BatchNorm1d, (8, 3)), (BatchNorm1d, (5, 3, 4)), (BatchNorm2d, (4, 3, 5, 2))]
#: Training steps and evaluations interleaved: the running statistics must be right
#: after several updates, and an evaluation must leave them alone.
MODES = (True, True, False, True, True, False)


def _steps_against_torch(torch, cls, shape, opts, rng):
    """Run a chainrule layer and torch's module side by side over :data:`MODES`; return
    ``[(what, ours, torch's)]`` for every output, gradient and buffer of every step."""
    c = shape[1]
    ours = cls(c, eps=1e-4, **opts)
    theirs = getattr(torch.nn, cls.__name__)(c, eps=1e-4, **opts).double()
    params = []
    if ours.affine:
        params = [rng.normal(size=c), rng.normal(size=c)]
        with torch.no_grad():
            theirs.weight.copy_(to_torch(params[0]))
            theirs.bias.copy_(to_torch(params[1]))
    pairs = []
    for step, training in enumerate(MODES):
        ours.training = training
        theirs.train(training)
        x = rng.normal(loc=2.0, scale=3.0, size=shape)
        out = ours.forward(x, *params)
        xt = to_torch(x, requires_grad=True)
        ref = theirs(xt)
        d_out = rng.normal(size=shape)
        ref.backward(to_torch(d_out))
        grads = ours.backward(d_out)
        grads = grads if ours.affine else (grads,)
        pairs += [(f"step {step} out", out, ref.detach().numpy()),
                  (f"step {step} d_inputs", grads[0], xt.grad.numpy())]
        if ours.affine:
            pairs += [(f"step {step} d_gamma", grads[1], theirs.weight.grad.numpy()),
                      (f"step {step} d_beta", grads[2], theirs.bias.grad.numpy())]
            theirs.zero_grad()
        # Copies: both libraries update their buffers in place at the next step.
        for name in ("running_mean", "running_var"):
            if theirs.track_running_stats:
                pairs.append((f"step {step} {name}", np.array(getattr(ours, name)),
                              getattr(theirs, name).numpy().copy()))
            else:
                assert getattr(ours, name) is None and getattr(theirs, name) is None
        if opts.get("momentum", 0.1) is None and theirs.track_running_stats:
            pairs.append((f"step {step} num_batches_tracked", np.array(ours.num_batches_tracked),
                          theirs.num_batches_tracked.numpy().astype(float)))
    return pairs


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("cls, shape", SHAPES)
def test_options_match_torch_modules_over_training_and_evaluation_steps(cls, shape, options,
                                                                        rng, torch):
    for what, ours, theirs in _steps_against_torch(torch, cls, shape, OPTIONS[options], rng):
        assert np.shape(ours) == np.shape(theirs), what
        assert rel_diff(ours, theirs) < TOL, what


def test_cumulative_average_restated_from_its_definition():
    # momentum=None: the running statistics are the plain mean of every training
    # batch's statistics (unbiased variance), whatever came before; evaluation counts
    # no batch.
    rng = np.random.default_rng(3)
    bn = BatchNorm1d(2, momentum=None, affine=False)
    batches = [rng.normal(size=(5, 2)) * (i + 1) for i in range(4)]
    for i, x in enumerate(batches):
        bn.training = True
        bn.forward(x)
        bn.training = False
        bn.forward(x)
        assert bn.num_batches_tracked == i + 1
        seen = batches[:i + 1]
        assert np.allclose(bn.running_mean, np.mean([b.mean(axis=0) for b in seen], axis=0))
        assert np.allclose(bn.running_var, np.mean([b.var(axis=0, ddof=1) for b in seen],
                                                   axis=0))


def test_without_running_statistics_evaluation_normalises_with_the_batch():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [8.0, 13.0]])
    bn = BatchNorm1d(2, track_running_stats=False, affine=False)
    bn.training = False
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(bn.forward(x), expected, rtol=1e-14)
    assert bn.buffer_names == () and bn.running_mean is None and bn.running_var is None
    # Evaluation backward differentiates through the batch statistics too: the column
    # sums of the input gradient vanish, as for any normalisation over the batch.
    assert np.allclose(bn.backward(np.arange(6.0).reshape(3, 2)).sum(axis=0), 0.0)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("cls, shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_against_finite_differences(cls, shape, options, training, rng):
    opts = OPTIONS[options]
    layer = cls(shape[1], **opts)
    params = [rng.normal(size=shape[1]) for _ in layer.param_names]
    layer.forward(rng.normal(loc=1.0, scale=2.0, size=shape), *params)  # running stats move
    layer.training = training
    x = rng.normal(loc=1.0, scale=2.0, size=shape)
    result = check_layer_gradients(layer, x, *params, names=layer.param_names)
    assert sorted(result.errors) == sorted(["inputs", *layer.param_names])
    assert result.worst < 1e-7, str(result)


@pytest.mark.parametrize("make, shape", [
    (lambda: BatchNorm1d(4, affine=False), (6, 4)),
    (lambda: BatchNorm1d(3, affine=False, momentum=None), (5, 3, 4)),
    (lambda: BatchNorm2d(2, momentum=None, eps=1e-3), (3, 2, 4, 5)),
    (lambda: BatchNorm2d(2, affine=False), (3, 2, 4, 5)),
])
def test_options_with_running_statistics_pass_the_contract_kit(make, shape):
    params = [(shape[1],)] * len(make().param_names)
    report = check_layer(make, shape, params)
    assert report.worst_gradient_error < 1e-6
    assert "eval state" in report.checks and "mode switch" in report.checks


def test_without_running_statistics_the_contract_kit_asks_no_row_independence():
    # Its evaluation output uses the batch's statistics, as PyTorch's does: declared by
    # rows_interact_in_eval, so the kit passes it without the "eval rows independent" check.
    report = check_layer(lambda: BatchNorm1d(4, track_running_stats=False), (6, 4),
                         [(4,), (4,)])
    assert "eval rows independent" not in report.checks and report.worst_gradient_error < 1e-6
    assert BatchNorm1d(4, track_running_stats=False).rows_interact_in_eval
    assert not BatchNorm1d(4).rows_interact_in_eval


def test_without_running_statistics_predict_normalises_with_every_row_given(monkeypatch, torch):
    # Inference runs in row chunks; this layer's statistics must still be those of all
    # the rows given, as in one forward and in PyTorch's evaluation mode.
    import chainrule.network as network

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2 * 3 * 3))
    model = cr.Sequential([cr.Unflatten((2, 3, 3)), cr.Conv2D(2, 4, 3, padding=1),
                           BatchNorm2d(4, track_running_stats=False), cr.ReLU(),
                           cr.Flatten(), cr.Affine(36, 3)], rng=0)
    monkeypatch.setattr(network, "ACTIVATION_BUDGET", 4096)   # chunks of a few rows
    assert model.chunk_rows() < 10
    proba = model.predict(X)
    np.testing.assert_allclose(proba, cr.softmax(model.forward(X), axis=1), rtol=1e-12)
    t = torch.nn.Sequential(torch.nn.Unflatten(1, (2, 3, 3)),
                            torch.nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64),
                            torch.nn.BatchNorm2d(4, track_running_stats=False,
                                                 dtype=torch.float64),
                            torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(36, 3, dtype=torch.float64)).eval()
    with torch.no_grad():
        t[1].weight[:] = to_torch(model.params["W1"])
        t[1].bias[:] = to_torch(model.params["b1"])
        t[2].weight[:] = to_torch(model.params["gamma2"])
        t[2].bias[:] = to_torch(model.params["beta2"])
        t[5].weight[:] = to_torch(model.params["W3"].T)
        t[5].bias[:] = to_torch(model.params["b3"])
        ref = torch.softmax(t(to_torch(X)), dim=1).numpy()
    np.testing.assert_allclose(proba, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("make, error, match", [
    (lambda: BatchNorm1d(3, affine="no"), TypeError,
     r"affine must be True or False, got str 'no'"),
    (lambda: BatchNorm2d(3, affine=1), TypeError, r"affine must be True or False, got int 1"),
    (lambda: BatchNorm1d(3, track_running_stats=None), TypeError,
     r"track_running_stats must be True or False, got NoneType None"),
    (lambda: BatchNorm1d(3, momentum="0.1"), TypeError,
     r"momentum must be a real number in \[0, 1\] or None \(a cumulative average\), "
     r"got str .0.1."),
    (lambda: BatchNorm2d(3, momentum=1.5), ValueError,
     r"momentum must be in \[0.0, 1.0\], got 1.5"),
])
def test_bad_options_are_refused_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_forward_takes_parameters_exactly_when_affine(rng):
    x = rng.normal(size=(4, 3))
    with pytest.raises(TypeError, match=r"takes no gamma or beta \(affine=False\) after its "
                                        r"inputs, got 2"):
        BatchNorm1d(3, affine=False).forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="takes gamma and beta after its inputs, got 0"):
        BatchNorm1d(3).forward(x)


def test_one_value_per_channel_is_refused_with_batch_statistics_as_torch_does(torch, rng):
    x = rng.normal(size=(1, 3))
    bn = BatchNorm1d(3, track_running_stats=False)
    bn.training = False
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn.forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.BatchNorm1d(3, track_running_stats=False).double().eval()(to_torch(x))
    # With running statistics, evaluation takes a single row.
    tracked = BatchNorm1d(3)
    tracked.training = False
    assert tracked.forward(x, np.ones(3), np.zeros(3)).shape == (1, 3)


@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d])
def test_config_and_repr_name_the_options_that_are_not_the_defaults(cls):
    name = cls.__name__
    default = cls(4)
    # The keys every model file has held: files written before the options load as
    # before, and a default layer is written as it always was.
    assert default.get_config() == {"num_features": 4, "eps": 1e-5, "momentum": 0.1}
    assert repr(default) == f"{name}(4)"
    layer = cls(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False)
    assert layer.get_config() == {"num_features": 4, "eps": 1e-3, "momentum": None,
                                  "affine": False, "track_running_stats": False}
    assert repr(layer) == (f"{name}(4, eps=0.001, momentum=None, affine=False, "
                           f"track_running_stats=False)")
    assert repr(cls(4, momentum=0.3)) == f"{name}(4, momentum=0.3)"   # what summary() shows
    for opts in OPTIONS.values():
        again = cls(**cls(4, **opts).get_config())
        assert again.get_config() == cls(4, **opts).get_config()
        assert (again.param_names, again.buffer_names) == (cls(4, **opts).param_names,
                                                           cls(4, **opts).buffer_names)


@pytest.mark.parametrize("options, params, buffers", [
    ("default", ["gamma", "beta"], ["running_mean", "running_var"]),
    ("no_affine", [], ["running_mean", "running_var"]),
    ("no_running_stats", ["gamma", "beta"], []),
    ("cumulative", ["gamma", "beta"], ["running_mean", "running_var", "num_batches_tracked"]),
    ("all_three", [], []),
])
def test_the_network_holds_exactly_the_layers_arrays(options, params, buffers):
    model = cr.Sequential([cr.Affine(3, 4), BatchNorm1d(4, **OPTIONS[options]), cr.ReLU(),
                           cr.Affine(4, 2)], rng=0)
    stateful = bool(params or buffers)
    n = "2" if stateful else ""
    last = "3" if stateful else "2"
    assert list(model.params) == ["W1", "b1", *[p + n for p in params], "W" + last, "b" + last]
    assert list(model.buffers) == [b + n for b in buffers]
    assert model.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2 + 4 * len(params)
    if "num_batches_tracked" in buffers:
        assert model.buffers["num_batches_tracked2"].shape == ()


def test_summary_and_explain_list_the_right_parameters_and_buffers():
    X = np.random.default_rng(0).normal(size=(6, 3))
    model = cr.Sequential([cr.Affine(3, 4), BatchNorm1d(4, affine=False, momentum=None),
                           cr.Affine(4, 2)], rng=0)
    summary = model.summary()
    assert "H2 = BatchNorm1d(4, momentum=None, affine=False)  (N, 4)        -" in summary
    assert ("buffers (not trained): running_mean2 (4,), running_var2 (4,), "
            "num_batches_tracked2 ()") in summary
    text = model.explain(X)
    assert "H2 = (Z1 - mu) / sqrt(var + eps)   (training: batch mu, var; eval: " in text
    assert "gamma" not in text and "beta" not in text
    assert ("dZ1 = s/m * (m dH2 - sum_c(dH2) - xhat * sum_c(dH2 * xhat))   (s = "
            "1/sqrt(var + eps), m: values per channel)   (eval: dZ1 = dH2 * s)") in text
    no_stats = cr.Sequential([cr.Affine(3, 4), BatchNorm1d(4, track_running_stats=False),
                              cr.Affine(4, 2)], rng=0)
    assert "buffers" not in no_stats.summary()
    assert "gamma2 (4,), beta2 (4,)" in no_stats.summary()
    text = no_stats.explain(X)
    assert "H2 = gamma2 * (Z1 - mu) / sqrt(var + eps) + beta2   (batch mu, var in training " \
           "and eval)" in text
    assert "(eval: dZ1" not in text and "dgamma2 = sum_c(dH2 * xhat) : (4,)" in text
    assert "(dxhat = dH2 * gamma2, s = 1/sqrt(var + eps), m: values per channel)" in text


def _problem(n=240, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=3.0, scale=2.0, size=(n, d))
    y = (X @ rng.normal(size=(d, k))).argmax(axis=1)
    return X, np.eye(k)[y]


def _mlp(opts, dtype=np.float64):
    return cr.Sequential([cr.Affine(6, 8), BatchNorm1d(8, **opts), cr.Tanh(),
                          cr.Affine(8, 3)], rng=0, dtype=dtype)


def _cnn(opts, dtype=np.float64):
    return cr.Sequential([cr.Unflatten((1, 2, 3)), BatchNorm2d(1, **opts),
                          cr.Conv2D(1, 2, 3, padding="same"), BatchNorm2d(2, **opts),
                          cr.ReLU(), cr.Flatten(), cr.Affine(12, 3)], rng=0, dtype=dtype)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("make", [_mlp, _cnn])
def test_network_gradients_match_torch_in_training_and_evaluation(make, options, torch):
    X, Y = _problem(n=12)
    model = make(OPTIONS[options])
    model.forward(X, training=True)   # running statistics away from their start
    for training in (True, False):
        loss, grads = model.loss_and_grads(X, Y, training=training)
        ref_loss, ref_grads = torch_network_loss_and_grads(model, X, Y)
        assert abs(loss - ref_loss) < 1e-12
        assert list(grads) == list(model.params)
        # Relative to the largest gradient: in training the bias of the Affine layer
        # before a batch normalisation has a gradient of zero, up to rounding.
        scale = max(np.max(np.abs(g)) for g in ref_grads.values())
        for k in model.params:
            assert np.max(np.abs(grads[k] - ref_grads[k])) < TOL * scale, (training, k)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("make", [_mlp, _cnn])
def test_a_network_with_the_layer_trains_through_fit(make, options):
    X, Y = _problem()
    model = make(OPTIONS[options])
    before = cr.evaluate(model, X, Y)["loss"]
    history = cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=15, batch_size=16,
                     rng=0, progress=False)
    after = cr.evaluate(model, X, Y)
    assert after["loss"] < 0.6 * before
    assert after["accuracy"] > 0.75   # chance is about 1/3
    assert len(history.history["loss"]) == 15
    if OPTIONS[options].get("momentum", 0.1) is None and \
            OPTIONS[options].get("track_running_stats", True):
        batches = 15 * (240 // 16)
        assert all(b == batches for k, b in model.buffers.items() if "num_batches" in k)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("make", [_mlp, _cnn])
def test_model_file_round_trip_predicts_and_trains_on_identically(make, options, tmp_path):
    X, Y = _problem(n=64)
    model = make(OPTIONS[options])
    cr.fit(model, X, Y, optimizer=cr.SGD(lr=0.05), epochs=2, batch_size=16, rng=0,
           progress=False)
    cr.io.save(model, tmp_path / "m.npz")
    again = cr.io.load(tmp_path / "m.npz")
    assert [repr(layer) for layer, _ in again.layers] == [repr(la) for la, _ in model.layers]
    assert list(again.params) == list(model.params)
    assert list(again.buffers) == list(model.buffers)
    for name in model.buffers:
        assert np.array_equal(again.buffers[name], model.buffers[name])
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
    # Training goes on from the same state (num_batches_tracked included).
    for m in (model, again):
        cr.fit(m, X, Y, optimizer=cr.SGD(lr=0.05), epochs=1, batch_size=16, rng=1,
               progress=False)
    for name in model.params:
        assert np.array_equal(again.params[name], model.params[name])
    for name in model.buffers:
        assert np.array_equal(again.buffers[name], model.buffers[name])


def test_default_layers_are_stored_as_before_the_options():
    model = _cnn({})
    state, arrays = sequential_state(model)
    configs = [spec["config"] for spec in state["config"]["layers"]
               if spec["class"].startswith("BatchNorm")]
    assert configs == [{"num_features": 1, "eps": 1e-5, "momentum": 0.1},
                       {"num_features": 2, "eps": 1e-5, "momentum": 0.1}]
    assert sorted(k for k in arrays if "running" in k or "batches" in k) == [
        "running_mean1", "running_mean3", "running_var1", "running_var3"]


def test_a_model_file_with_a_bad_option_is_refused_by_name(tmp_path):
    model = _mlp({"affine": False})
    state, arrays = sequential_state(model)
    state["config"]["layers"][1]["config"]["affine"] = "no"
    with pytest.raises(ValueError, match="affine must be True or False, got str 'no'"):
        cr.io.sequential.sequential_from_state(state["config"], arrays)


def test_a_resumed_checkpoint_continues_the_cumulative_average_bit_for_bit(tmp_path):
    X, Y = _problem(n=48)

    def run(epochs, resume, path):
        model = _cnn({"momentum": None, "affine": False})
        cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=epochs, batch_size=16, rng=1,
               checkpoint=path, resume=resume, progress=False)
        return model

    straight = run(4, False, tmp_path / "straight.npz")
    run(2, False, tmp_path / "resumed.npz")
    resumed = run(4, True, tmp_path / "resumed.npz")
    assert resumed.buffers["num_batches_tracked1"] == 4 * 3
    for name in straight.buffers:
        assert np.array_equal(resumed.buffers[name], straight.buffers[name])
    for name in straight.params:
        assert np.array_equal(resumed.params[name], straight.params[name])


def _onnx_network(opts, dtype):
    """BatchNorm1d on (N, C) and (N, C, L) inputs and BatchNorm2d on (N, C, H, W)."""
    return cr.Sequential([cr.Affine(6, 12), BatchNorm1d(12, **opts), cr.Unflatten((3, 2, 2)),
                          BatchNorm2d(3, **opts), cr.Flatten(), cr.Unflatten((3, 4)),
                          BatchNorm1d(3, **opts), cr.Flatten(), cr.Affine(12, 3)],
                         rng=0, dtype=dtype)


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("opset", [13, 17, 18])
def test_onnx_export_agrees_with_onnxruntime(options, dtype, tol, opset, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    opts = OPTIONS[options]
    X, Y = _problem(n=40)
    model = _onnx_network(opts, dtype)
    cr.fit(model, X, Y, optimizer=cr.Adam(lr=1e-2), epochs=3, batch_size=8, rng=0,
           progress=False)
    path = tmp_path / "m.onnx"
    cr.io.export_onnx(model, path, opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Two batches: without running statistics a row's output depends on its batch.
    for rows in (X, X[:7]):
        logits = session.run(["logits"], {"X": rows.astype(dtype)})[0]
        assert np.max(np.abs(logits - model.forward(rows))) < tol * max(
            1.0, np.max(np.abs(logits)))
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    if opts.get("track_running_stats", True):
        assert ops.count("BatchNormalization") == 3 and "ReduceMean" not in ops
    else:
        assert ops.count("ReduceMean") == 6 and "BatchNormalization" not in ops
        whole, part = (session.run(["logits"], {"X": X[:7].astype(dtype)})[0],
                       session.run(["logits"], {"X": X[:8].astype(dtype)})[0][:7])
        assert np.max(np.abs(whole - part)) > 1e3 * tol   # the batch matters
