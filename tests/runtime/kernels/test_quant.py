"""Quantization kernels: the official node cases plus the edges they miss."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import call as run
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError

OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "QLinearMatMul",
}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def test_blocked_quantization_with_a_ragged_last_block():
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    scale = np.array([[1, 2], [4, 8]], np.float32)  # blocks of 3 along axis 1: 3 + 2 elements
    y = run("QuantizeLinear", 21, x, scale, np.zeros((2, 2), np.int8), axis=1, block_size=3)
    assert y.dtype == np.int8
    assert y.tolist() == [[0, 1, 2, 2, 2], [1, 2, 2, 1, 1]]  # ties to even: 0.5->0, 2.5->2 ...
    back = run("DequantizeLinear", 21, y, scale, np.zeros((2, 2), np.int8), axis=1, block_size=3)
    assert back.tolist() == [[0, 1, 2, 4, 4], [4, 8, 8, 8, 8]]


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1e9, -1e9], np.float32)
    y = run("QuantizeLinear", 13, x, np.array(1, np.float32), np.array(0, np.int8))
    assert y.tolist() == [-2, -2, 0, 0, 2, 2, 127, -128]
    y2 = run("QuantizeLinear", 25, x, np.array(1, np.float32), np.array(0, ml_dtypes.int2))
    assert y2.dtype == ml_dtypes.int2 and y2.astype(np.int8).tolist() == [-2, -2, 0, 0, 1, 1, 1, -2]


def test_quantize_default_output_and_precision():
    x = np.array([300.0, -1.0, 2.0], np.float32)
    assert run("QuantizeLinear", 10, x, np.array(2, np.float32)).tolist() == [150, 0, 1]
    y = run("QuantizeLinear", 23, x, np.array(2, np.float32), output_dtype=3, precision=10)
    assert y.dtype == np.int8 and y.tolist() == [127, 0, 1]


def test_dequantize_wide_types_exactly():
    x = np.array([2**31 - 1, -(2**31)], np.int32)
    y = run("DequantizeLinear", 21, x, np.array(1, np.float32), np.array(-5, np.int32))
    assert y.dtype == np.float32 and y.tolist() == [np.float32(2**31 + 4), np.float32(-(2**31) + 5)]
    y16 = run("DequantizeLinear", 23, np.array([3], np.uint8), np.array(0.5, np.float32),
              output_dtype=10)  # fmt: skip
    assert y16.dtype == np.float16 and y16.tolist() == [1.5]


def test_dynamic_quantize_linear_all_zeros():
    y, scale, zp = run("DynamicQuantizeLinear", 11, np.zeros((2, 3), np.float32))
    assert y.tolist() == [[0] * 3] * 2 and scale.dtype == np.float32 and float(scale) == 1.0
    assert zp.dtype == np.uint8 and zp.shape == ()


def test_matmul_integer_zero_points_per_row_and_column():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 600)).astype(np.uint8)
    b = rng.integers(-128, 128, (600, 3)).astype(np.int8)
    azp = rng.integers(0, 256, 4).astype(np.uint8)
    bzp = rng.integers(-128, 128, 3).astype(np.int8)
    y = run("MatMulInteger", 10, a, b, azp, bzp)
    expected = (a.astype(np.int64) - azp[:, None].astype(np.int64)) @ (b - bzp.astype(np.int64))
    assert y.dtype == np.int32 and (y == expected).all()


def test_qlinear_matmul_float8():
    a = np.array([[1, 2], [3, 4]], np.float32).astype(ml_dtypes.float8_e4m3fn)
    zero = np.zeros((), ml_dtypes.float8_e4m3fn)
    one = np.array(1, np.float32)
    y = run("QLinearMatMul", 21, a, one, zero, a, one, zero, np.array(2, np.float32), zero)
    assert y.dtype == ml_dtypes.float8_e4m3fn
    assert y.astype(np.float32).tolist() == [[3.5, 5], [7.5, 11]]


@pytest.mark.parametrize(
    "inputs, attrs, match",
    [
        ((np.ones((2, 3), np.float32), np.ones(3, np.float32)), {"axis": 0}, "per-axis"),
        ((np.ones((2, 3), np.float32), np.ones(2, np.float32)), {"axis": 5}, "axis 5"),
        ((np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)), {"block_size": 1}, "block"),
        ((np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)), {}, "scalar"),
        ((np.ones(3, np.float32), np.ones(3, np.float32), np.zeros(2, np.uint8)), {"axis": 0},
         "zero point shape"),
        ((np.ones(3, np.float32), np.ones((), np.float32), np.zeros((), np.uint8)),
         {"output_dtype": 3}, "output_dtype"),
    ],
)  # fmt: skip
def test_quantize_errors(inputs, attrs, match):
    with pytest.raises(KernelError, match=match):
        run("QuantizeLinear", 25, *inputs, **attrs)


def test_matmul_errors():
    with pytest.raises(KernelError, match="inner"):
        run("MatMulInteger", 10, np.ones((2, 3), np.uint8), np.ones((4, 2), np.uint8))
    with pytest.raises(KernelError, match="int8/uint8"):
        run("MatMulInteger", 10, np.ones((2, 3), np.int32), np.ones((3, 2), np.uint8))
    with pytest.raises(KernelError, match="differs"):
        run("DequantizeLinear", 21, np.ones(2, np.uint8), np.ones((), np.float32),
            np.zeros((), np.int8))  # fmt: skip
