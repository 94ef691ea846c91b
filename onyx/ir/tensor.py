"""Tensors: constant data with an element type and dims, decoded lazily.

A tensor read from a file keeps the form it was stored in (raw bytes, possibly a view into the
memory-mapped file; one of the typed fields; or a location in an external file) and decodes it only
when ``numpy()`` is called, so loading a model costs no copy of its weights and saving an untouched
tensor writes back exactly what was read.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from onyx import dtypes
from onyx.dtypes import DataType
from onyx.errors import ExternalDataError, TensorDataError

# Which typed field of TensorProto carries each element type (the standard's table).
_FLOAT_FIELD = {DataType.FLOAT, DataType.COMPLEX64}
_DOUBLE_FIELD = {DataType.DOUBLE, DataType.COMPLEX128}
_UINT64_FIELD = {DataType.UINT32, DataType.UINT64}
_INT64_FIELD = {DataType.INT64}
_STRING_FIELD = {DataType.STRING}


def typed_field(t: DataType) -> str:
    """Name of the TensorProto field that holds elements of ``t`` when raw_data is not used."""
    if t in _FLOAT_FIELD:
        return "float_data"
    if t in _DOUBLE_FIELD:
        return "double_data"
    if t in _UINT64_FIELD:
        return "uint64_data"
    if t in _INT64_FIELD:
        return "int64_data"
    if t in _STRING_FIELD:
        return "string_data"
    return "int32_data"


@dataclasses.dataclass
class ExternalData:
    """Where a tensor's bytes live outside the model file (paths are relative to ``base_dir``)."""

    location: str
    offset: int = 0
    length: int | None = None
    base_dir: str = ""
    extra: dict[str, str] = dataclasses.field(default_factory=dict)  # e.g. checksum

    def read(self, name: str) -> memoryview:
        path = os.path.join(self.base_dir, self.location)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    return memoryview(b"")
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise ExternalDataError(f"tensor {name!r}: cannot read external data {path!r}: {e}")
        end = size if self.length is None else self.offset + self.length
        if self.offset > size or end > size:
            raise ExternalDataError(
                f"tensor {name!r}: external data {self.location!r} holds {size} bytes, "
                f"but offset {self.offset} + length {self.length} reaches past its end"
            )
        return memoryview(mapped)[self.offset : end]


class Tensor:
    """A constant tensor: ``name``, ``dtype`` (a DataType), ``dims``, and data via ``numpy()``."""

    __slots__ = (
        "_array",
        "_decoded",
        "_external",
        "_field",
        "_raw",
        "dims",
        "doc_string",
        "dtype",
        "metadata_props",
        "name",
        "present",
        "segment",
    )  # fmt: skip

    def __init__(
        self,
        array: Any = None,
        name: str = "",
        *,
        dtype: DataType | int | None = None,
        dims: Sequence[int] | None = None,
        doc_string: str = "",
        metadata_props: dict[str, str] | None = None,
    ):
        self.name = name
        self.doc_string = doc_string
        self.metadata_props = dict(metadata_props or {})
        self.segment: tuple[int, int] | None = None
        self.present: set[str] = set()  # fields a file set to their default value explicitly
        self._raw = self._field = self._external = None
        self._array: np.ndarray | None = None
        self._decoded = False  # _array was decoded from the stored form (and is read-only)
        if array is not None:
            arr = np.asarray(array)
            if arr.dtype.kind in "US":
                arr = arr.astype(object)
            self._array = arr
            self.dtype = (
                dtypes.data_type(dtype) if dtype is not None else dtypes.from_numpy(arr.dtype)
            )
            if dtype is not None and dtypes.to_numpy(self.dtype) != arr.dtype:
                self._array = arr.astype(dtypes.to_numpy(self.dtype))
            self.dims = tuple(arr.shape) if dims is None else tuple(dims)
        else:
            self.dtype = dtypes.data_type(dtype if dtype is not None else DataType.UNDEFINED)
            self.dims = tuple(dims or ())

    # --- lazily stored forms (used by serde) -------------------------------------------------
    @classmethod
    def stored(cls, name: str, dtype: int, dims: Sequence[int], *, raw=None, field=None,
               external: ExternalData | None = None) -> Tensor:  # fmt: skip
        """A tensor whose data stays in its stored form until read."""
        t = cls(name=name, dims=dims)
        t.dtype = dtypes.data_type(dtype, where=f"tensor {name!r}") if dtype else DataType.UNDEFINED
        if any(d < 0 for d in t.dims):
            raise TensorDataError(f"tensor {name!r}: negative dim in {list(t.dims)}")
        t._raw, t._field, t._external = raw, field, external
        return t

    @property
    def raw(self):
        """The stored raw bytes (None unless the tensor was read with raw_data)."""
        return self._raw

    @property
    def field(self) -> tuple[str, Any] | None:
        """The stored typed field as (field name, values), or None."""
        return self._field

    @property
    def external(self) -> ExternalData | None:
        return self._external

    @property
    def is_stored(self) -> bool:
        """True while the data is still exactly as it was read (not built from an array)."""
        return self._array is None or self._decoded

    @property
    def is_loaded(self) -> bool:
        """True when the data is a numpy array in memory (built or already decoded)."""
        return self._array is not None

    # --- data ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.dims

    @property
    def size(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        """Bytes the data takes in raw form (sub-byte types packed)."""
        if self.dtype == DataType.STRING:
            return sum(len(s.encode("utf-8", "surrogateescape")) for s in self.numpy().flat)
        return dtypes.packed_size(self.dtype, self.size)

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (a read-only view of the file where it can be)."""
        if self._array is None:
            array = self._decode()
            array.flags.writeable = False  # stored data: read-only, so saving keeps its stored form
            self._array, self._decoded = array, True
        return self._array

    def tobytes(self) -> bytes | memoryview:
        """The data in the standard's raw_data form (little-endian; sub-byte types packed).

        Returns a view rather than a copy wherever it can: of the file for stored tensors, of the
        array for contiguous little-endian data.
        """
        if self._raw is not None:  # the decoded array is a read-only view of these same bytes
            return self._raw
        if self._external is not None:
            return self._external.read(self.name)
        array = self.numpy()
        if (self.dtype not in dtypes.SUB_BYTE and self.dtype != DataType.STRING
                and array.flags.c_contiguous and array.dtype.byteorder in "=<|"):  # fmt: skip
            return memoryview(array.reshape(-1).view(np.uint8)) if array.size else b""
        return dtypes.pack(array, self.dtype)

    def _decode(self) -> np.ndarray:
        if self.dtype == DataType.UNDEFINED:
            raise TensorDataError(f"tensor {self.name!r} has no element type (data_type 0)")
        count = self.size
        if self._external is not None:
            return self._from_raw(self._external.read(self.name), count)
        if self._raw is not None:
            return self._from_raw(self._raw, count)
        if self._field is not None:
            return self._from_field(*self._field, count)
        if count == 0:
            return np.zeros(self.dims, dtypes.to_numpy(self.dtype))
        raise TensorDataError(f"tensor {self.name!r} of {count} elements carries no data")

    def _from_raw(self, raw, count: int) -> np.ndarray:
        t = self.dtype
        if t == DataType.STRING:
            raise TensorDataError(f"tensor {self.name!r}: string tensors cannot use raw_data")
        expected = dtypes.packed_size(t, count)
        if len(raw) != expected:
            raise TensorDataError(
                f"tensor {self.name!r}: raw data holds {len(raw)} bytes, but {count} elements "
                f"of {t.short_name} need {expected}"
            )
        if t in dtypes.SUB_BYTE:
            return dtypes.unpack(raw, t, count).reshape(self.dims)
        np_type = dtypes.to_numpy(t)
        return np.frombuffer(raw, np_type.newbyteorder("<"), count).reshape(self.dims)

    def _from_field(self, field: str, values, count: int) -> np.ndarray:
        t = self.dtype
        expected_field = typed_field(t)
        if field != expected_field:
            raise TensorDataError(
                f"tensor {self.name!r}: {t.short_name} data must be in {expected_field}, not {field}"
            )
        np_type = dtypes.to_numpy(t)
        if t == DataType.STRING:
            flat = [v.decode("utf-8", "surrogateescape") for v in values]
            arr = np.empty(len(flat), object)
            arr[:] = flat
        elif t in (DataType.COMPLEX64, DataType.COMPLEX128):
            pairs = np.asarray(values, np.float32 if t == DataType.COMPLEX64 else np.float64)
            if len(pairs) != 2 * count:
                raise self._count_error(field, len(pairs), 2 * count)
            arr = pairs.view(np_type)
        elif t in dtypes.SUB_BYTE:
            if t.bits == 6:
                arr = np.asarray(values, np.int64).astype(np.uint8).view(np_type)
            else:
                packed = np.asarray(values, np.int64).astype(np.uint8)
                if len(packed) != dtypes.packed_size(t, count):
                    raise self._count_error(field, len(packed), dtypes.packed_size(t, count))
                return dtypes.unpack(packed, t, count).reshape(self.dims)
        elif field == "int32_data" and np_type.itemsize <= 2 and np_type.kind not in "iub":
            # float16, bfloat16 and the float8 kinds travel as their bit patterns in int32s
            bits = np.uint16 if np_type.itemsize == 2 else np.uint8
            arr = np.asarray(values, np.int64).astype(bits).view(np_type)
        else:
            arr = np.asarray(values).astype(np_type)
        if len(arr) != count:
            raise self._count_error(field, len(arr), count)
        return arr.reshape(self.dims)

    def _count_error(self, field: str, got: int, expected: int) -> TensorDataError:
        return TensorDataError(
            f"tensor {self.name!r}: {field} holds {got} values, but dims {list(self.dims)} "
            f"need {expected}"
        )

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.dtype.short_name}{list(self.dims)})"


class SparseTensor:
    """A sparse tensor in COO form: ``values`` (1-D), ``indices`` ([NNZ] linear or [NNZ, rank])."""

    def __init__(self, values: Tensor, indices: Tensor, dims: Sequence[int]):
        self.values, self.indices, self.dims = values, indices, tuple(dims)

    @property
    def name(self) -> str:
        return self.values.name

    @property
    def dtype(self) -> DataType:
        return self.values.dtype

    def to_dense(self) -> np.ndarray:
        """The dense array; raises TensorDataError when indices fall outside dims."""
        values = self.values.numpy().reshape(-1)
        indices = self.indices.numpy().astype(np.int64)
        dense = np.zeros(self.dims, values.dtype)
        size = math.prod(self.dims)
        if indices.ndim == 2:
            if indices.shape[1] != len(self.dims):
                raise TensorDataError(f"sparse tensor {self.name!r}: index rank mismatch")
            linear = (
                np.ravel_multi_index(tuple(indices.T), self.dims, mode="wrap")
                if size
                else indices[:, 0]
            )
            bad = (indices < 0) | (indices >= np.asarray(self.dims))
            if bad.any():
                raise TensorDataError(
                    f"sparse tensor {self.name!r}: index outside {list(self.dims)}"
                )
        else:
            linear = indices.reshape(-1)
            if ((linear < 0) | (linear >= size)).any():
                raise TensorDataError(f"sparse tensor {self.name!r}: index outside {size} elements")
        if len(linear) != len(values):
            raise TensorDataError(
                f"sparse tensor {self.name!r}: {len(linear)} indices for {len(values)} values"
            )
        dense.reshape(-1)[linear] = values
        return dense

    def __repr__(self) -> str:
        return f"SparseTensor({self.name!r}, {self.dtype.short_name}{list(self.dims)}, nnz={self.values.size})"
