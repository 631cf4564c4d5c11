"""Matrix products in row blocks (``chainrule._blas``, issue 10): when they are split,
into what, and that the split products and an Affine layer built on them give the
values of the whole product (checked against float64 NumPy and torch autograd).

The split is forced on or off by replacing :func:`has_small_kernels`, so every test
runs the same code on any BLAS."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from chainrule import _blas
from chainrule.layers import Affine


@pytest.fixture
def small_kernels(monkeypatch):
    """As on an OpenBLAS with the AVX-512 small-matrix kernels: products are split."""
    monkeypatch.setattr(_blas, "has_small_kernels", lambda: True)


def fake_controller(monkeypatch, fake):
    """Stand ``fake`` in for threadpoolctl's controller (as if built after the last
    import, so that it is not built again)."""
    monkeypatch.setattr(_blas, "_controller", fake)
    monkeypatch.setattr(_blas, "_controller_modules", len(sys.modules))
    monkeypatch.setattr(_blas, "_small_kernels", None)


@pytest.fixture
def count_blocks(monkeypatch):
    """Record ``m * n * k`` of each ``np.matmul`` call the split makes."""
    calls = []
    real = np.matmul

    def recording(a, b, *args, **kwargs):
        calls.append(a.shape[0] * a.shape[1] * b.shape[1])
        return real(a, b, *args, **kwargs)
    monkeypatch.setattr(_blas.np, "matmul", recording)
    return calls


def test_block_rows_stay_under_the_bound_and_are_even(small_kernels):
    a, b = np.ones((1347, 64)), np.ones((64, 32))
    rows = _blas.block_rows(1347, 64 * 32, a, b)
    assert rows * 64 * 32 <= _blas.SMALL_PRODUCT      # each block takes the small path
    assert -(-1347 // rows) == -(-1347 // (_blas.SMALL_PRODUCT // (64 * 32)))  # fewest blocks
    assert rows == 449                                # three blocks of 449 rows


@pytest.mark.parametrize("case", ["fits whole", "blocks too thin", "sparse", "mixed dtypes",
                                  "integer", "three-d", "no small kernels"])
def test_products_are_taken_whole_where_a_split_does_not_pay(case, small_kernels, monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    a, b = np.ones((3000, 64)), np.ones((64, 32))
    if case == "fits whole":
        a = np.ones((488, 64))                        # 488 * 64 * 32 <= 10**6
    elif case == "blocks too thin":
        a, b = np.ones((3000, 784)), np.ones((784, 256))
    elif case == "sparse":
        a = sp.csr_matrix(a)
    elif case == "mixed dtypes":
        b = b.astype(np.float32)
    elif case == "integer":
        a, b = a.astype(np.int64), b.astype(np.int64)
    elif case == "three-d":
        a = np.ones((2, 3000, 64))
    else:
        monkeypatch.setattr(_blas, "has_small_kernels", lambda: False)
    rows = _blas.block_rows(a.shape[-2], a.shape[-1] * b.shape[-1], a, b)
    if case == "fits whole":
        assert rows == 488                            # one block: the whole product
    else:
        assert rows is None                           # a plain ``@``


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, d, h", [(1347, 64, 32), (2000, 784, 10), (1001, 30, 100)])
def test_split_products_equal_the_whole_ones(n, d, h, dtype, small_kernels, count_blocks):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((d, h)).astype(dtype)
    g = rng.standard_normal((n, h)).astype(dtype)
    rows = _blas.block_rows(n, d * h, a, b)
    assert rows < n                                   # the split is exercised

    out, grad, d_a = _blas.matmul(a, b), _blas.matmul_tn(a, g), _blas.matmul_nt(g, b)
    # Every block takes the small path: forward blocks after the first, gradient blocks.
    assert len(count_blocks) >= 2 and max(count_blocks) <= _blas.SMALL_PRODUCT
    assert out.dtype == grad.dtype == d_a.dtype == dtype
    assert out.shape == (n, h) and grad.shape == (d, h) and d_a.shape == (n, d)
    a64, b64, g64 = (x.astype(np.float64) for x in (a, b, g))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(out, a64 @ b64, **tol)
    np.testing.assert_allclose(grad, a64.T @ g64, **tol)
    np.testing.assert_allclose(d_a, g64 @ b64.T, **tol)


@pytest.mark.parametrize("threads, whole", [((2, 1), True), ((1, 1), False), ((1, None), False)])
def test_a_gradient_product_big_enough_for_threads_is_taken_whole_on_threads(
        threads, whole, small_kernels, count_blocks, monkeypatch):
    a, b, g = np.ones((3000, 64)), np.ones((64, 32)), np.ones((3000, 32))
    monkeypatch.setattr(_blas, "MULTITHREAD_FLOPS", 2.0 * 3000 * 64 * 32)  # exactly this one
    fake_controller(monkeypatch, SimpleNamespace(lib_controllers=[
        SimpleNamespace(num_threads=n) for n in threads]))
    np.testing.assert_array_equal(_blas.matmul_tn(a, g), np.full((64, 32), 3000.0))
    assert (count_blocks == []) is whole              # whole: the BLAS may spread it
    count_blocks.clear()
    _blas.matmul(a, b)
    assert len(count_blocks) >= 2                     # the forward product splits anyway


@pytest.mark.parametrize("layout", ["fortran", "strided rows", "strided columns"])
def test_split_products_of_non_contiguous_operands(layout, small_kernels, count_blocks):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2 * 1500, 2 * 64))
    a = {"fortran": np.asfortranarray(a[:1500, :64]), "strided rows": a[::2, :64],
         "strided columns": a[:1500, ::2]}[layout]
    b, g = rng.standard_normal((64, 32)), rng.standard_normal((1500, 32))
    out, grad, d_a = _blas.matmul(a, b), _blas.matmul_tn(a, g), _blas.matmul_nt(g, b)
    assert len(count_blocks) >= 2
    np.testing.assert_allclose(out, np.asarray(a) @ b, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(grad, np.asarray(a).T @ g, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(d_a, g @ b.T, rtol=1e-11, atol=1e-11)


def test_matmul_tn_sums_every_block_into_a_fresh_array(small_kernels):
    # The running sum must not alias an input (the first block's product is a new array).
    a, g = np.ones((3000, 64)), np.ones((3000, 32))
    grad = _blas.matmul_tn(a, g)
    assert not np.shares_memory(grad, a) and not np.shares_memory(grad, g)
    np.testing.assert_array_equal(grad, np.full((64, 32), 3000.0))


def test_affine_on_split_products_matches_torch_autograd(small_kernels, count_blocks, torch):
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((1500, 64)), rng.standard_normal((64, 32))
    b = rng.standard_normal(32)
    d_out = rng.standard_normal((1500, 32))
    layer = Affine()
    out = layer.forward(X, W, b)
    d_X, d_W, d_b = layer.backward(d_out)
    assert count_blocks                               # forward and dW went through blocks

    tX, tW, tb = (torch.tensor(v, requires_grad=True) for v in (X, W, b))
    t_out = tX @ tW + tb
    t_out.backward(torch.tensor(d_out))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in ((d_X, tX), (d_W, tW), (d_b, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("libs, expected", [
    ([("openblas", "SkylakeX"), ("openblas", "SkylakeX")], True),
    ([("openblas", "Cooperlake")], True),
    ([("openblas", "SkylakeX"), ("openblas", "Haswell")], False),   # one without the kernel
    ([("mkl", None)], False),
    ([], False),
])
def test_the_split_is_on_only_when_every_blas_has_the_small_kernels(libs, expected,
                                                                     monkeypatch):
    fake = SimpleNamespace(lib_controllers=[SimpleNamespace(internal_api=api, architecture=arch)
                                            for api, arch in libs])
    fake_controller(monkeypatch, fake)
    assert _blas.has_small_kernels() is expected


def test_the_controller_is_built_again_after_an_import(monkeypatch):
    """A BLAS loaded later (SciPy's, with scikit-learn) comes with new modules: the
    controller is built again, so that its pool's threads are set too."""
    pytest.importorskip("threadpoolctl")
    first = _blas.blas_controller()
    assert _blas.blas_controller() is first            # shared while nothing is imported
    monkeypatch.setitem(sys.modules, "_chainrule_test_new_module", ModuleType("new"))
    second = _blas.blas_controller()
    assert second is not first
    assert [lib.filepath for lib in second.lib_controllers] == [
        lib.filepath for lib in first.lib_controllers]
