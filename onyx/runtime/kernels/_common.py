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
