"""Elementwise calls laid out for numpy's fast (SIMD) loops.

numpy (2.x) takes its vectorized loops only for some operand layouts; these helpers give it
those layouts where the obvious call would not get them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# numpy (2.x) runs maximum/minimum against a broadcast scalar in a plain loop, 3.5-4x slower
# than its SIMD loop against an array of the same shape (benchmarks/bench_numpy_layouts.py).
# So a bound is laid out as a buffer, and contiguous data goes through in chunks of its length.
_BOUND_CHUNK = 1 << 16  # elements per call (256 KB of float32; at most 16 bounds are kept)


@functools.lru_cache(maxsize=16)
def _bound_buffer(value: bytes, dtype: np.dtype) -> np.ndarray:
    """The bound repeated over a buffer (keyed by its bytes: 0.0 and -0.0 compare equal)."""
    buffer = np.full(_BOUND_CHUNK, np.frombuffer(value, dtype)[0], dtype)
    buffer.flags.writeable = False
    return buffer


def _contiguous_tail(a: np.ndarray) -> int:
    """How many trailing axes of ``a`` lie contiguously (C order) in memory."""
    expected = a.itemsize
    for count, axis in enumerate(range(a.ndim - 1, -1, -1)):
        if a.shape[axis] != 1 and a.strides[axis] != expected:
            return count
        expected *= a.shape[axis]
    return a.ndim


def clamp(ufunc: np.ufunc, x: np.ndarray, bound, out: np.ndarray) -> np.ndarray:
    """``ufunc(x, bound, out=out)`` for ``np.maximum``/``np.minimum`` and a scalar ``bound``, on
    numpy's fast loop where the dtype is float32/float64 (``out`` has ``x``'s shape)."""
    dtype = out.dtype
    if dtype not in _FLOATS or x.dtype != dtype or x.shape != out.shape or x.size == 0:
        return ufunc(x, bound, out=out)
    buffer = _bound_buffer(dtype.type(bound).tobytes(), dtype)
    if x.flags.c_contiguous and out.flags.c_contiguous:  # as flat chunks
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        for start in range(0, x.size, _BOUND_CHUNK):
            stop = min(x.size, start + _BOUND_CHUNK)
            ufunc(flat_x[start:stop], buffer[: stop - start], out=flat_out[start:stop])
        return out
    # otherwise against the bound laid out over the trailing axes that are contiguous
    # (where that block is long: against a short one, the scalar loop is faster)
    tail = min(_contiguous_tail(x), _contiguous_tail(out))
    while tail and math.prod(x.shape[x.ndim - tail :]) > _BOUND_CHUNK:
        tail -= 1
    shape = x.shape[x.ndim - tail :]
    if math.prod(shape) < 512:
        return ufunc(x, bound, out=out)
    return ufunc(x, buffer[: math.prod(shape)].reshape(shape), out=out)
