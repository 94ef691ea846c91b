import ml_dtypes
import numpy as np
import pytest
from kernel_harness import call as _run
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"MatMul", "Gemm", "Einsum", "Softmax", "LogSoftmax", "Hardmax", "TopK"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


ALL_TYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64,
             np.int32, np.int64, np.uint32, np.uint64]  # fmt: skip


@pytest.mark.parametrize("dtype", ALL_TYPES)
@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (4, 5)), ((4,), (4, 2)), ((2, 3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))],
)
def test_matmul_types_and_shapes(dtype, sa, sb):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, sa).astype(dtype)
    b = rng.integers(0, 5, sb).astype(dtype)
    got = _run("MatMul", 13, a, b)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-2)


def test_matmul_shape_error():
    with pytest.raises(KernelError, match="not compatible"):
        _run("MatMul", 13, np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(KernelError):
        _run("MatMul", 13, np.ones((), np.float32), np.ones((2,), np.float32))


@pytest.mark.parametrize("dtype", ALL_TYPES)
def test_gemm_types(dtype):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, (4, 3)).astype(dtype)
    b = rng.integers(0, 4, (5, 4)).astype(dtype)
    c = rng.integers(0, 4, (5,)).astype(dtype)
    got = _run("Gemm", 13, a, b, c, alpha=2.0, beta=3.0, transA=1, transB=1)
    want = 2 * a.astype(np.float64).T @ b.astype(np.float64).T + 3 * c.astype(np.float64)
    assert got.dtype == dtype and got.shape == (3, 5)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-2)


def test_gemm_old_versions_and_no_c():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 4), np.float32)
    c = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(_run("Gemm", 6, a, b, c, broadcast=1), np.full((2, 4), 4.0))
    np.testing.assert_array_equal(_run("Gemm", 11, a, b), np.full((2, 4), 3.0))
    np.testing.assert_array_equal(_run("Gemm", 13, a, b, c, beta=0.0), np.full((2, 4), 3.0))


def test_gemm_inputs_not_modified():
    a, b, c = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), np.ones((2, 2), np.float32)
    _run("Gemm", 13, a, b, c, alpha=2.0, beta=2.0)
    assert (a == 1).all() and (b == 1).all() and (c == 1).all()


@pytest.mark.parametrize(
    "a,b,c",
    [
        ((2, 3), (4, 5), None),
        ((2, 3), (3, 4), (3, 4)),
        ((2, 3), (3, 4), (2, 2, 4)),
        ((2,), (2, 4), None),
    ],
)
def test_gemm_shape_errors(a, b, c):
    args = [np.ones(a, np.float32), np.ones(b, np.float32)]
    if c is not None:
        args.append(np.ones(c, np.float32))
    with pytest.raises(KernelError):
        _run("Gemm", 13, *args)


@pytest.mark.parametrize(
    "eq,shapes",
    [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]),
        ("bij, bjk -> bik", [(2, 3, 4), (2, 4, 5)]),
        ("Ab,bc", [(3, 4), (4, 2)]),
        ("ii->i", [(3, 3)]),
        ("i,i", [(5,), (5,)]),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("...i->...", [(2, 3, 4)]),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.int32, np.uint8])
def test_einsum(eq, shapes, dtype):
    rng = np.random.default_rng(2)
    ops = [rng.integers(0, 3, s).astype(dtype) for s in shapes]
    got = _run("Einsum", 12, *ops, equation=eq)
    want = np.einsum(eq.replace(" ", ""), *[o.astype(np.float64) for o in ops])
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == np.shape(want)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-2)


def test_einsum_reuses_kernel_across_shapes():
    k = lookup("", "Einsum", 12)(equation="ij,jk->ik")
    for n in (2, 3, 2):
        assert k(np.ones((n, 3), np.float32), np.ones((3, 4), np.float32)).shape == (n, 4)


def test_einsum_errors():
    with pytest.raises(KernelError):
        _run("Einsum", 12, np.ones((2, 3)), np.ones((4, 5)), equation="ij,jk->ik")
    with pytest.raises(KernelError):
        _run("Einsum", 12, np.ones((2, 3)), equation="ijk->i")


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
def test_softmax_family_types(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(dtype)
    xf = x.astype(np.float64)
    tol = 1e-2 if dtype in (np.float16, ml_dtypes.bfloat16) else 1e-6
    for opset in (13, 11, 1):
        y = _run("Softmax", opset, x, axis=1)
        want = (
            _np_softmax(xf, 1)
            if opset == 13
            else _np_softmax(xf.reshape(2, 12), 1).reshape(2, 3, 4)
        )
        assert y.dtype == dtype
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=tol, atol=tol)
        ly = _run("LogSoftmax", opset, x, axis=1)
        assert ly.dtype == dtype
        np.testing.assert_allclose(ly.astype(np.float64), np.log(want), rtol=tol, atol=tol)
        h = _run("Hardmax", opset, x, axis=1)
        assert h.dtype == dtype and h.astype(np.float64).sum() == (2 if opset < 13 else 8)


def test_softmax_defaults_by_version():
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    # before 13: default axis 1, flattened; from 13: default axis -1
    np.testing.assert_allclose(
        _run("Softmax", 11, x), _np_softmax(x.reshape(2, 12), 1).reshape(x.shape), rtol=1e-6
    )
    np.testing.assert_allclose(_run("Softmax", 13, x), _np_softmax(x, -1), rtol=1e-6)


def test_hardmax_ties_pick_first():
    x = np.array([[1, 3, 3], [2, 2, 2]], np.float32)
    assert _run("Hardmax", 13, x).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_softmax_axis_error():
    with pytest.raises(KernelError):
        _run("Softmax", 13, np.ones((2, 3), np.float32), axis=2)
    with pytest.raises(KernelError):
        _run("LogSoftmax", 11, np.ones((2, 3), np.float32), axis=-3)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.int8, np.uint16, np.int64])
def test_top_k_types_and_ties(dtype):
    x = np.array([[3, 1, 3, 2, 1], [0, 0, 5, 5, 0]]).astype(dtype)
    v, i = _run("TopK", 11, x, np.array([3]))
    assert v.dtype == dtype and i.dtype == np.int64
    assert i.tolist() == [[0, 2, 3], [2, 3, 0]]
    v, i = _run("TopK", 11, x, np.array([2]), largest=0)
    assert i.tolist() == [[1, 4], [0, 1]]
    assert v.astype(np.int64).tolist() == [[1, 1], [0, 0]]


def test_top_k_versions():
    x = np.array([[1.0, 4.0, 2.0], [6.0, 5.0, 4.0]], np.float32)
    v, i = _run("TopK", 1, x, k=2)
    assert v.tolist() == [[4, 2], [6, 5]] and i.tolist() == [[1, 2], [0, 1]]
    v, i = _run("TopK", 10, x, np.array([1]), axis=0)
    assert v.tolist() == [[6, 5, 4]] and i.tolist() == [[1, 1, 1]]
    v, i = _run("TopK", 11, x, np.array([0]))
    assert v.shape == (2, 0) and i.shape == (2, 0)


def test_top_k_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(KernelError, match="k must be"):
        _run("TopK", 11, x, np.array([4]))
    with pytest.raises(KernelError):
        _run("TopK", 11, x, np.array([-1]))
    with pytest.raises(KernelError):
        _run("TopK", 11, x, np.array([1]), axis=2)
    with pytest.raises(KernelError):
        _run("TopK", 11, x, np.array([1, 2]))


@pytest.mark.parametrize("shape", [(64, 4, 32, 32), (3, 128, 200), (5, 70000), (9, 37)])
def test_compiled_softmax_agrees_with_numpys(shape, monkeypatch):
    """The compiled float32 Softmax (its own exponential) within 1e-6 of numpy's, special values
    included: masked (-inf) entries exactly 0, rows with a NaN or an infinity all NaN (a NaN
    in the first vector of a row, in a later one, past the whole vectors)."""
    pytest.importorskip("numba")
    from onyx.runtime import compiled

    monkeypatch.setattr(compiled, "enabled", True)
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 6).astype(np.float32)
    flat = x.reshape(-1, shape[-1])
    flat[0, :3] = -np.inf
    flat[1, 5] = np.nan
    flat[2, 1] = np.inf
    flat[3, :] = -np.inf
    flat[4, 0] = 80  # the others' exponentials fall below float32's normal range
    if flat.shape[0] > 6:
        flat[5, -1] = np.nan
        flat[6, 17] = np.nan
    assert compiled.kernels(x.size) is not None
    got = _run("Softmax", 13, x)
    monkeypatch.setattr(compiled, "enabled", False)
    want = _run("Softmax", 13, x)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got.reshape(-1, shape[-1])[1:4]).all()
    assert flat.shape[0] <= 6 or np.isnan(got.reshape(-1, shape[-1])[5:7]).all()
    assert (got.reshape(-1, shape[-1])[0, :3] == 0).all()
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=1e-6)
    assert np.abs(got.sum(axis=-1)[~np.isnan(got).any(axis=-1)] - 1).max() < 1e-5
