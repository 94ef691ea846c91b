"""Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
QLinearMatMul.

Scales and zero points are per tensor (a scalar), per axis (1-D along ``axis``) or blocked (the
input's shape with dimension ``axis`` divided into blocks of ``block_size``). Integer results are
rounded half to even and clamped to the type's range; float8/float4/float6 results go through
Cast's conversion (``saturate`` as there).
"""

from __future__ import annotations

import numpy as np

from onyx.dtypes import DataType, data_type, from_numpy, to_numpy
from onyx.errors import KernelError, OnyxError
from onyx.runtime.kernels.cast import cast_array
from onyx.runtime.kernels.registry import kernel

T = DataType
#: Integer quantized types and their clamp ranges.
INT_RANGE = {
    T.UINT8: (0, 255), T.INT8: (-128, 127), T.UINT16: (0, 65535), T.INT16: (-32768, 32767),
    T.UINT4: (0, 15), T.INT4: (-8, 7), T.UINT2: (0, 3), T.INT2: (-2, 1),
    T.INT32: (-(2**31), 2**31 - 1),
}  # fmt: skip
FLOAT_TARGETS = frozenset(
    {T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ}
    | {T.FLOAT4E2M1, T.FLOAT6E2M3, T.FLOAT6E3M2}
)
_SUB_BYTE = {T.UINT4, T.INT4, T.UINT2, T.INT2}


def _element_type(code: int, what: str) -> DataType:
    try:
        return data_type(code, what)
    except OnyxError as e:
        raise KernelError(str(e)) from None


def _type_of(array: np.ndarray, what: str) -> DataType:
    try:
        return from_numpy(array.dtype)
    except OnyxError as e:
        raise KernelError(f"{what}: {e}") from None


def _params(x: np.ndarray, scale: np.ndarray, zero_point, axis: int, block_size: int):
    """Scale and zero point reshaped (or repeated, for blocks) to broadcast against ``x``."""
    scale = np.asarray(scale)
    if zero_point is not None:
        zero_point = np.asarray(zero_point)
        if zero_point.shape != scale.shape and not (zero_point.size == scale.size == 1):
            raise KernelError(
                f"zero point shape {zero_point.shape} differs from scale shape {scale.shape}"
            )
    if scale.size == 1 and scale.ndim <= 1:  # per tensor
        return scale.reshape(()), None if zero_point is None else zero_point.reshape(())
    r = x.ndim
    if not -r <= axis < r:
        raise KernelError(f"axis {axis} is out of range for an input of rank {r}")
    axis %= r
    d = x.shape[axis]
    if block_size > 0:
        if scale.ndim != r or any(
            s != n for i, (s, n) in enumerate(zip(scale.shape, x.shape)) if i != axis
        ):
            raise KernelError(
                f"blocked quantization needs a scale of the input's shape {x.shape} except on "
                f"axis {axis}; got scale shape {scale.shape}"
            )
        blocks = scale.shape[axis]
        if not (blocks * block_size >= d > (blocks - 1) * block_size):
            raise KernelError(
                f"block_size {block_size} does not split dimension {d} of axis {axis} into "
                f"{blocks} blocks"
            )

        def expand(p):
            return np.repeat(p, block_size, axis=axis)[(slice(None),) * axis + (slice(0, d),)]

        return expand(scale), None if zero_point is None else expand(zero_point)
    if scale.ndim != 1:
        raise KernelError(
            f"scale must be a scalar, a 1-D tensor (per axis) or, with block_size, of the "
            f"input's rank; got shape {scale.shape} and block_size {block_size}"
        )
    if scale.shape[0] != d:
        raise KernelError(
            f"per-axis scale has {scale.shape[0]} elements; axis {axis} of input {x.shape} has {d}"
        )
    shape = [1] * r
    shape[axis] = d
    return scale.reshape(shape), None if zero_point is None else zero_point.reshape(shape)


def _as_float(a: np.ndarray) -> np.ndarray:
    """float32 (or float64 for float64/int32-and-wider inputs) view of numbers for arithmetic."""
    if a.dtype in (np.float64, np.int32, np.int64, np.uint32, np.uint64):
        return a.astype(np.float64)
    return a.astype(np.float32)


def _saturate(q: np.ndarray, t: DataType, saturate: bool = True) -> np.ndarray:
    """Rounded values (for ints) offset by the zero point: clamp (ints) or Cast (floats).

    ``q`` is a fresh array the caller owns; it is clamped in place.
    """
    if t in FLOAT_TARGETS:
        return cast_array(q, t, saturate=saturate)
    lo, hi = INT_RANGE[t]
    with np.errstate(invalid="ignore"):
        np.clip(q, lo, hi, out=q)
        if t in _SUB_BYTE:
            return q.astype(np.int8).astype(to_numpy(t))
        return q.astype(to_numpy(t))


def _quantize(x, scale, zp, t: DataType, prec: np.dtype, saturate: bool) -> np.ndarray:
    """saturate(round(x / scale) + zp) with the division done in ``prec``."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.divide(x.astype(prec, copy=False), scale.astype(prec, copy=False))
        if prec not in (np.float32, np.float64):
            q = q.astype(np.float32)
        if t not in FLOAT_TARGETS:
            np.rint(q, out=q)
        if zp is not None:
            q = np.add(q, _as_float(zp), out=q)
    return _saturate(q, t, saturate)


@kernel("QuantizeLinear", 10, 13, 19, 21, 23)
class QuantizeLinear:
    """y = saturate(round(x / y_scale) + y_zero_point), per tensor, per axis or blocked."""

    def __init__(
        self,
        *,
        axis: int = 1,
        saturate: int = 1,
        block_size: int = 0,
        output_dtype: int = 0,
        precision: int = 0,
    ):
        if block_size < 0:
            raise KernelError(f"block_size must be positive, got {block_size}")
        self.axis, self.block_size, self.saturate = axis, block_size, bool(saturate)
        self.output = _element_type(output_dtype, "output_dtype") if output_dtype else None
        self.precision = to_numpy(_element_type(precision, "precision")) if precision else None
        if self.output is not None and self.output not in INT_RANGE.keys() | FLOAT_TARGETS:
            raise KernelError(f"output_dtype {self.output.name} is not a quantized type")

    def __call__(self, x, y_scale, y_zero_point=None):
        t = self.output or T.UINT8
        if y_zero_point is not None:
            zt = _type_of(y_zero_point, "y_zero_point")
            if self.output is not None and zt != self.output:
                raise KernelError(
                    f"output_dtype {self.output.name} differs from y_zero_point type {zt.name}"
                )
            t = zt
            if t not in INT_RANGE.keys() | FLOAT_TARGETS or t == T.INT32:
                raise KernelError(f"y_zero_point type {t.name} is not a quantized type")
        scale, zp = _params(x, y_scale, y_zero_point, self.axis, self.block_size)
        prec = self.precision if self.precision is not None else scale.dtype
        if np.dtype(prec).name not in ("float16", "float32", "float64", "bfloat16"):
            prec = np.dtype(np.float64 if x.dtype.kind in "iu" else np.float32)
        return _quantize(x, scale, zp, t, prec, self.saturate)


@kernel("DequantizeLinear", 10, 13, 19, 21, 23)
class DequantizeLinear:
    """y = (x - x_zero_point) * x_scale, per tensor, per axis or blocked."""

    def __init__(self, *, axis: int = 1, block_size: int = 0, output_dtype: int = 0):
        if block_size < 0:
            raise KernelError(f"block_size must be positive, got {block_size}")
        self.axis, self.block_size = axis, block_size
        self.output = (
            to_numpy(_element_type(output_dtype, "output_dtype")) if output_dtype else None
        )

    def __call__(self, x, x_scale, x_zero_point=None):
        if x_zero_point is not None and x_zero_point.dtype != x.dtype:
            raise KernelError(
                f"x_zero_point type {x_zero_point.dtype} differs from x type {x.dtype}"
            )
        scale, zp = _params(x, x_scale, x_zero_point, self.axis, self.block_size)
        out = self.output
        if out is None:
            out = scale.dtype if scale.dtype.name != "float8_e8m0fnu" else np.dtype(np.float32)
        wide = np.float64 if out == np.float64 or x.dtype.itemsize >= 4 else np.float32
        if x.dtype.kind in "iu" and x.dtype.itemsize >= 4 and zp is not None:
            diff = (x.astype(np.int64) - zp.astype(np.int64)).astype(wide)  # exact difference
        else:  # 8/16-bit, sub-byte and float8 values are exact in float32
            diff = x.astype(wide)
            if zp is not None:
                diff = np.subtract(diff, zp.astype(wide), out=diff)
        y = np.multiply(diff, scale.astype(wide), out=diff)
        return y.astype(out, copy=False)


@kernel("DynamicQuantizeLinear", 11)
def dynamic_quantize_linear(x):
    """uint8 quantization of ``x`` with a scale and zero point chosen from its range (with 0).

    NaNs are left out of the range; a range of zero (all zeros, or empty) gets scale 1.
    """
    x = np.asarray(x, dtype=np.float32)
    lo, hi = _finite_range(x)
    scale = np.float32((np.float32(max(0.0, hi)) - np.float32(min(0.0, lo))) / np.float32(255))
    if scale == 0:
        scale = np.float32(1)
    with np.errstate(invalid="ignore", over="ignore"):
        zp = np.rint(np.clip(np.float32(0) - np.float32(min(0.0, lo)) / scale, 0, 255))
        y = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return y, np.array(scale, np.float32), np.array(zp, np.uint8)


def _finite_range(x: np.ndarray) -> tuple[float, float]:
    if x.size == 0:
        return 0.0, 0.0
    lo, hi = x.min(), x.max()
    if np.isnan(lo) or np.isnan(hi):
        kept = x[~np.isnan(x)]
        return (float(kept.min()), float(kept.max())) if kept.size else (0.0, 0.0)
    return float(lo), float(hi)


# --- integer matrix products ---------------------------------------------------------------
def _row_param(p, a: np.ndarray) -> np.ndarray:
    """A per-row parameter of ``a`` ([M] or [..., M, 1]) shaped to broadcast against it."""
    p = np.asarray(p)
    if p.ndim == 1 and a.ndim >= 2 and p.size > 1:
        if p.size != a.shape[-2]:
            raise KernelError(f"per-row parameter of {p.size} elements for {a.shape[-2]} rows")
        return p.reshape(-1, 1)
    return p.reshape(()) if p.size == 1 else p


def _col_param(p, b: np.ndarray) -> np.ndarray:
    """A per-column parameter of ``b`` ([N] or [..., 1, N]) shaped to broadcast against it."""
    p = np.asarray(p)
    if p.ndim == 1 and p.size > 1 and p.size != b.shape[-1]:
        raise KernelError(f"per-column parameter of {p.size} elements for {b.shape[-1]} columns")
    return p.reshape(()) if p.size == 1 else p


def _centered(a: np.ndarray, zp, dtype) -> np.ndarray:
    a = a.astype(dtype)
    return a if zp is None else a - zp.astype(dtype)


def _int_matmul(a, azp, b, bzp) -> np.ndarray:
    """(a - azp) @ (b - bzp) exactly, through BLAS (float32 while every sum fits in 24 bits)."""
    if a.ndim == 0 or b.ndim == 0:
        raise KernelError("matrix product inputs must have at least one dimension")
    k = a.shape[-1]
    if k != b.shape[0 if b.ndim == 1 else -2]:
        raise KernelError(f"inner dimensions differ: a {a.shape}, b {b.shape}")
    dtype = np.float32 if k * 255 * 255 < 2**24 else np.float64
    try:
        return np.matmul(_centered(a, azp, dtype), _centered(b, bzp, dtype))
    except ValueError as e:
        raise KernelError(f"cannot multiply shapes {a.shape} and {b.shape}: {e}") from None


_INT8 = (np.int8, np.uint8)


@kernel("MatMulInteger", 10)
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """int32 product of (a - a_zero_point) and (b - b_zero_point); zero points per tensor/row/col."""
    if a.dtype not in _INT8 or b.dtype not in _INT8:
        raise KernelError(f"MatMulInteger takes int8/uint8 inputs, got {a.dtype} and {b.dtype}")
    azp = None if a_zero_point is None else _row_param(a_zero_point, a)
    bzp = None if b_zero_point is None else _col_param(b_zero_point, b)
    acc = _int_matmul(a, azp, b, bzp)
    if a.shape[-1] * 255 * 255 >= 2**31:  # may pass int32: wrap as a 32-bit accumulator would
        return acc.astype(np.int64).astype(np.int32)
    return acc.astype(np.int32)


@kernel("QLinearMatMul", 10, 21)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """Quantized a @ b: dequantize, multiply, requantize to y_zero_point's type."""
    t = _type_of(y_zero_point, "y_zero_point")
    if t not in (T.INT8, T.UINT8) and t not in FLOAT_TARGETS:
        raise KernelError(f"y_zero_point type {t.name} is not int8, uint8 or float8")
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        acc = _int_matmul(a, _row_param(a_zero_point, a), b, _col_param(b_zero_point, b))
    else:  # float8 inputs: dequantize exactly to float32, then a float product
        acc = np.matmul(
            _centered(a, _row_param(a_zero_point, a), np.float32),
            _centered(b, _col_param(b_zero_point, b), np.float32),
        )
    sa = _row_param(a_scale, a).astype(np.float64)
    sb = _col_param(b_scale, b).astype(np.float64)
    sy = np.asarray(y_scale).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = acc * (sa * sb / sy)
        if t not in FLOAT_TARGETS:
            q = np.rint(q)
        q = q + _as_float(np.asarray(y_zero_point))
    return _saturate(q, t)
