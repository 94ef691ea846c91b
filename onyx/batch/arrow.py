"""numpy <-> pyarrow for flat numeric arrays, through their buffers.

pyarrow's own conversions (``pa.array(ndarray)``, ``Array.to_numpy``, ``np.asarray(array)``)
first ask whether pandas is installed, and importing it costs 0.3-1 s in every process that
converts anything, most of a small job's start-up. These two functions cover what the engines
convert (row numbers, lengths, leaf values, output tensors) without that; anything else (strings,
nested types, unusual dtypes) goes the ordinary way.
"""

from __future__ import annotations

import numpy as np

from onyx.batch.job import pyarrow

_NUMERIC = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
            "float16", "float32", "float64")  # fmt: skip
_TO_NUMPY: dict = {}  # pyarrow type -> numpy dtype, for the types above and bool
_TO_ARROW: dict = {}  # and back


def _types() -> dict:
    if not _TO_NUMPY:
        pa = pyarrow()
        for name in (*_NUMERIC, "bool"):
            dtype = np.dtype(name)
            t = pa.bool_() if name == "bool" else pa.from_numpy_dtype(dtype)
            _TO_NUMPY[t], _TO_ARROW[dtype] = dtype, t
    return _TO_NUMPY


def _bits(buffer, offset: int, n: int) -> np.ndarray:
    """A little-endian bitmap's bits ``offset .. offset + n`` as bools."""
    raw = np.frombuffer(buffer, np.uint8)
    return np.unpackbits(raw, bitorder="little", count=offset + n)[offset:].astype(bool)


def to_numpy(array, fill=None) -> np.ndarray:
    """A flat pyarrow array (or chunked array) as numpy; nulls become ``fill`` (0 when None).

    Numbers and bools are read from the buffers (zero-copy for numbers without nulls); other
    types go through ``to_numpy``, where a null is None or NaN.
    """
    pa = pyarrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    dtype = _types().get(array.type)
    if dtype is None:
        values = array.to_numpy(zero_copy_only=False)
        if fill is not None and array.null_count:
            values = values.copy()
            values[~to_numpy(array.is_valid())] = fill
        return values
    validity, data = array.buffers()[:2]
    n, offset = len(array), array.offset
    if dtype == bool:
        values = _bits(data, offset, n) if n else np.zeros(0, bool)
    else:
        values = np.frombuffer(data, dtype, count=n, offset=offset * dtype.itemsize) if n else (
            np.zeros(0, dtype)
        )  # fmt: skip
    if array.null_count:
        values = values.copy()
        values[~_bits(validity, offset, n)] = 0 if fill is None else fill
    return values


def from_numpy(values: np.ndarray):
    """A flat numpy array of numbers or bools as a pyarrow array (zero-copy for numbers)."""
    pa = pyarrow()
    values = np.asarray(values)
    _types()
    t = _TO_ARROW.get(values.dtype) if values.ndim == 1 else None
    if t is None:
        return pa.array(values)
    if values.dtype == bool:
        data = np.packbits(values, bitorder="little")
    else:
        data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(t, len(values), [None, pa.py_buffer(data)])
