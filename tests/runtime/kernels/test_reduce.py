import ml_dtypes
import numpy as np
import pytest
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

REDUCE_OPS = [
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
]  # fmt: skip
OPS = {*REDUCE_OPS, "ArgMax", "ArgMin", "CumSum", "CumProd"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def _ref(op, x, axes, keepdims):
    x = x.astype(np.float64)
    f = {
        "ReduceSum": lambda: np.sum(x, axes, keepdims=keepdims),
        "ReduceMean": lambda: np.mean(x, axes, keepdims=keepdims),
        "ReduceMax": lambda: np.max(x, axes, keepdims=keepdims),
        "ReduceMin": lambda: np.min(x, axes, keepdims=keepdims),
        "ReduceProd": lambda: np.prod(x, axes, keepdims=keepdims),
        "ReduceL1": lambda: np.sum(np.abs(x), axes, keepdims=keepdims),
        "ReduceL2": lambda: np.sqrt(np.sum(x * x, axes, keepdims=keepdims)),
        "ReduceLogSum": lambda: np.log(np.sum(x, axes, keepdims=keepdims)),
        "ReduceLogSumExp": lambda: np.log(np.sum(np.exp(x), axes, keepdims=keepdims)),
        "ReduceSumSquare": lambda: np.sum(x * x, axes, keepdims=keepdims),
    }
    return f[op]()


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("opset", [11, 18])
def test_reduce_float_types_both_forms(op, dtype, opset):
    x = (np.random.default_rng(0).random((3, 4, 5)) + 0.5).astype(dtype)
    fn = lookup("", op, opset)
    for axes, keepdims in [((1,), 1), ((0, -1), 0), (None, 0), (None, 1)]:
        if opset < 13 or (op != "ReduceSum" and opset < 18):
            got = fn(x, axes=list(axes) if axes else None, keepdims=keepdims)
        else:
            got = fn(x, None if axes is None else np.array(axes, np.int64), keepdims=keepdims)
        assert got.dtype == x.dtype and isinstance(got, np.ndarray)
        want = _ref(op, x, axes, bool(keepdims))
        assert got.shape == want.shape
        tol = 2e-2 if dtype in (np.float16, ml_dtypes.bfloat16) else 1e-5
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_reduce_integers_keep_type(dtype):
    x = np.arange(1, 13, dtype=dtype).reshape(3, 4)
    axes = np.array([1], np.int64)
    assert lookup("", "ReduceSum", 13)(x, axes).dtype == dtype
    np.testing.assert_array_equal(lookup("", "ReduceSum", 13)(x, axes)[:, 0], [10, 26, 42])
    np.testing.assert_array_equal(lookup("", "ReduceMean", 18)(x, axes)[:, 0], [2, 6, 10])
    np.testing.assert_array_equal(lookup("", "ReduceProd", 18)(x, axes)[:, 0], [24, 1680, 11880])
    np.testing.assert_array_equal(lookup("", "ReduceMax", 18)(x, axes)[:, 0], [4, 8, 12])
    assert lookup("", "ReduceL2", 18)(x, axes).dtype == dtype


def test_reduce_mean_int_truncates_toward_zero():
    x = np.array([[-3, -4]], np.int32)
    np.testing.assert_array_equal(lookup("", "ReduceMean", 18)(x, np.array([1])), [[-3]])


@pytest.mark.parametrize(
    "op,ident",
    [("ReduceSum", 0), ("ReduceProd", 1), ("ReduceMax", -np.inf), ("ReduceMin", np.inf),
     ("ReduceL1", 0), ("ReduceL2", 0), ("ReduceSumSquare", 0), ("ReduceLogSum", -np.inf),
     ("ReduceLogSumExp", -np.inf)],
)  # fmt: skip
def test_reduce_empty_set_identity(op, ident):
    x = np.zeros((2, 0, 3), np.float32)
    got = lookup("", op, 18)(x, np.array([1], np.int64), keepdims=0)
    assert got.shape == (2, 3) and got.dtype == np.float32
    assert np.all(got == ident)


def test_reduce_max_min_empty_integer_and_bool():
    x = np.zeros((0, 2), np.int8)
    assert np.all(lookup("", "ReduceMax", 20)(x, np.array([0])) == -128)
    assert np.all(lookup("", "ReduceMin", 20)(x, np.array([0])) == 127)
    b = np.zeros((0, 2), bool)
    assert lookup("", "ReduceMin", 20)(b, np.array([0])).tolist() == [[True, True]]


def test_reduce_noop_with_empty_axes_composite_steps():
    x = np.array([[-2.0, 3.0]], np.float32)
    empty = np.array([], np.int64)
    np.testing.assert_array_equal(
        lookup("", "ReduceSumSquare", 18)(x, empty, noop_with_empty_axes=1), [[4.0, 9.0]]
    )
    np.testing.assert_array_equal(
        lookup("", "ReduceL1", 18)(x, empty, noop_with_empty_axes=1), [[2.0, 3.0]]
    )
    np.testing.assert_allclose(
        lookup("", "ReduceLogSumExp", 18)(x, None, noop_with_empty_axes=1), x, rtol=1e-6
    )
    # without noop, empty axes reduce everything
    assert lookup("", "ReduceSum", 13)(x, empty, keepdims=0).shape == ()


def test_reduce_log_sum_exp_is_stable():
    x = np.array([1000.0, 1000.0], np.float32)
    got = lookup("", "ReduceLogSumExp", 18)(x, None, keepdims=0)
    np.testing.assert_allclose(got, 1000 + np.log(2), rtol=1e-6)


def test_reduce_scalar_input():
    x = np.array(3.0, np.float32)
    assert lookup("", "ReduceSum", 13)(x).shape == ()
    assert lookup("", "ReduceMax", 1)(x, keepdims=0).shape == ()


@pytest.mark.parametrize("axes", [[3], [-4], [0, 0]])
def test_reduce_bad_axes(axes):
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(KernelError):
        lookup("", "ReduceSum", 13)(x, np.array(axes, np.int64))
    with pytest.raises(KernelError):
        lookup("", "ReduceMean", 11)(x, axes=axes)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.int8, np.uint64])
def test_argmax_argmin_types(dtype):
    x = np.array([[1, 5, 5, 0], [7, 2, 0, 7]]).astype(dtype)
    amax = lookup("", "ArgMax", 13)
    amin = lookup("", "ArgMin", 13)
    assert amax(x, axis=1).tolist() == [[1], [0]]
    assert amax(x, axis=1, select_last_index=1, keepdims=0).tolist() == [2, 3]
    assert amin(x, axis=-1, keepdims=0).tolist() == [3, 2]
    assert amax(x, axis=1).dtype == np.int64


def test_argmax_errors():
    with pytest.raises(KernelError):
        lookup("", "ArgMax", 13)(np.ones((2, 3)), axis=2)
    with pytest.raises(KernelError):
        lookup("", "ArgMin", 13)(np.ones((2, 0)), axis=1)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.uint32, np.int64])
def test_cumsum_cumprod_types(dtype):
    x = np.array([[1, 2, 3], [4, 5, 6]]).astype(dtype)
    cs = lookup("", "CumSum", 14)
    cp = lookup("", "CumProd", 26)
    ax = np.array(1, np.int32)
    assert cs(x, ax).dtype == dtype
    np.testing.assert_array_equal(cs(x, ax).astype(np.float64), [[1, 3, 6], [4, 9, 15]])
    np.testing.assert_array_equal(
        cs(x, ax, exclusive=1, reverse=1).astype(np.float64), [[5, 3, 0], [11, 6, 0]]
    )
    np.testing.assert_array_equal(
        cp(x, np.array([0]), exclusive=1).astype(np.float64), [[1, 1, 1], [1, 2, 3]]
    )
    np.testing.assert_array_equal(
        cp(x, ax, reverse=1).astype(np.float64), [[6, 6, 3], [120, 30, 6]]
    )


def test_cumsum_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(KernelError):
        lookup("", "CumSum", 14)(x, np.array(2))
    with pytest.raises(KernelError):
        lookup("", "CumSum", 14)(x, np.array([0, 1]))


def test_inputs_not_modified():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    before = x.copy()
    for op in REDUCE_OPS:
        lookup("", op, 18)(x, np.array([1]))
    lookup("", "CumSum", 14)(x, np.array(1), exclusive=1, reverse=1)
    np.testing.assert_array_equal(x, before)
