"""Logic kernels: the official node cases, plus types, versions and error paths they miss."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import call as run
from kernel_harness import cases_for, check_case

from onyx.dtypes import DataType, from_numpy
from onyx.errors import KernelError

OPS = {
    "And", "Or", "Xor", "Not", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
    "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitCast",
}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- our own checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["And", "Or", "Xor", "Equal", "Greater", "Less"])
def test_legacy_broadcast_with_axis(op):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, (2, 3, 4)).astype(bool)
    b = rng.integers(0, 2, (3,)).astype(bool)
    if op in ("Greater", "Less"):
        a, b = a.astype(np.float32), b.astype(np.float32)
    got = run(op, 1, a, b, broadcast=1, axis=1)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, run(op, 7, a, b.reshape(3, 1)))
    with pytest.raises(KernelError):
        run(op, 1, a, b)  # broadcast=0 needs equal shapes


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.uint64, np.int8])
@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
def test_comparisons_across_types(op, dtype):
    a = np.array([[1, 2, 3]], dtype)
    b = np.array([[2], [3]], dtype)
    got = run(op, 19, a, b)
    ufunc = {"Equal": np.equal, "Greater": np.greater, "Less": np.less,
             "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal}[op]  # fmt: skip
    assert got.dtype == np.bool_ and got.shape == (2, 3)
    np.testing.assert_array_equal(got, ufunc(a.astype(np.float64), b.astype(np.float64)))


def test_equal_strings_object_and_unicode():
    a = np.array(["a", "bc", ""], dtype=object)
    assert run("Equal", 19, a, np.array(["a", "b", ""], dtype=object)).tolist() == [1, 0, 1]
    assert run("Equal", 19, a.astype(str), np.array("bc")).tolist() == [0, 1, 0]


def test_zero_d_results_are_arrays():
    for op, args in [("And", (np.array(True), np.array(False))), ("Not", (np.array(True),)),
                     ("BitwiseNot", (np.array(5, np.int32),)),
                     ("BitShift", (np.array(5, np.int32), np.array(1, np.int32)))]:  # fmt: skip
        attrs = {"direction": "LEFT"} if op == "BitShift" else {}
        y = run(op, 20, *args, **attrs)
        assert type(y) is np.ndarray and y.shape == ()


def test_bitshift_bad_direction():
    with pytest.raises(KernelError):
        run("BitShift", 11, np.array([1], np.uint8), np.array([1], np.uint8), direction="UP")


@pytest.mark.parametrize(
    "source, target",
    [(np.float16, ml_dtypes.bfloat16), (np.float16, np.int16), (np.complex64, np.int64),
     (np.float64, np.uint64), (np.int8, ml_dtypes.float8_e4m3fn), (np.uint8, np.bool_)],
)  # fmt: skip
def test_bitcast_round_trips(source, target):
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, (3, 5) + (np.dtype(source).itemsize,)).astype(np.uint8)
    if target is np.bool_:
        bits = bits & 1
    x = bits.view(source).reshape(3, 5)
    y = run("BitCast", 26, x, to=int(from_numpy(target)))
    assert y.dtype == np.dtype(target) and y.shape == x.shape
    z = run("BitCast", 26, y, to=int(from_numpy(source)))
    assert z.tobytes() == x.tobytes()


def test_bitcast_sub_byte():
    x = np.array([-8, -1, 0, 7], ml_dtypes.int4)
    u = run("BitCast", 26, x, to=int(DataType.UINT4))
    assert u.dtype == np.dtype(ml_dtypes.uint4) and u.astype(int).tolist() == [8, 15, 0, 7]
    back = run("BitCast", 26, u, to=int(DataType.INT4))
    assert back.astype(int).tolist() == [-8, -1, 0, 7]
    f4 = run("BitCast", 26, u, to=int(DataType.FLOAT4E2M1))
    assert f4.astype(np.float32).tolist() == [-0.0, -6.0, 0.0, 6.0]


@pytest.mark.parametrize(
    "x, to",
    [(np.ones(3, np.float32), DataType.FLOAT16), (np.ones(3, np.int8), DataType.INT4),
     (np.array(["a"], dtype=object), DataType.UINT8)],
)  # fmt: skip
def test_bitcast_errors(x, to):
    with pytest.raises(KernelError):
        run("BitCast", 26, x, to=int(to))
    with pytest.raises(KernelError):
        run("BitCast", 26, np.ones(3, np.uint8), to=int(DataType.STRING))
