"""Helpers shared by kernel families (not a family: the package skips modules named _*)."""

from __future__ import annotations

import numpy as np

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype to compute in: float64 stays, everything else (f16, bf16, f32) is float32."""
    return F64 if dtype == F64 else F32


def cast(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return a if a.dtype == dtype else a.astype(dtype)


_NAMES: dict[np.dtype, str] = {}


def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered per dtype: numpy computes it in Python on every access (about
    2 us), and kernels look at it on every call to tell 16- and 8-bit floats apart."""
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name
    return name


def channels_last_view(x: np.ndarray) -> bool:
    """Whether ``x`` is 4-D and a channel-last array seen as NCHW (a transposed (N, H, W, C):
    Segformer's decoder feeds its MLP outputs so to Resize and Concat)."""
    if x.ndim != 4:
        return False
    size, (_, c, _, w) = x.itemsize, x.shape
    return c > 1 and x.strides[1:] == (size, w * c * size, c * size)


def dense(x: np.ndarray, jit) -> np.ndarray:
    """``x`` C-contiguous: a channel-last view through ``jit`` (the compiled kernels, or None)
    by tiles of channels and pixels, where numpy copies it an element at a time along its
    strides (256 channels of 56x56: 0.49 ms against 5.1); otherwise np.ascontiguousarray."""
    if jit is None or x.dtype not in (F32, F64) or not channels_last_view(x):
        return np.ascontiguousarray(x)
    y = np.empty(x.shape, x.dtype)
    jit.from_channels_last(x.transpose(0, 2, 3, 1), y)
    return y
