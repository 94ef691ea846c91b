"""The element types of the standard (codes 0..28) and their numpy / ml_dtypes counterparts.

Also the bit packing the standard prescribes for sub-byte types in ``raw_data``:
4-bit types two to a byte (first element in the low nibble), 2-bit types four to a byte
(first element in bits 0-1), 6-bit floats four to three bytes as an LSB-first bit stream.
"""

from __future__ import annotations

import enum

import numpy as np

from onyx.errors import UnknownDataTypeError


class DataType(enum.IntEnum):
    UNDEFINED = 0
    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8
    BOOL = 9
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    COMPLEX64 = 14
    COMPLEX128 = 15
    BFLOAT16 = 16
    FLOAT8E4M3FN = 17
    FLOAT8E4M3FNUZ = 18
    FLOAT8E5M2 = 19
    FLOAT8E5M2FNUZ = 20
    UINT4 = 21
    INT4 = 22
    FLOAT4E2M1 = 23
    FLOAT8E8M0 = 24
    UINT2 = 25
    INT2 = 26
    FLOAT6E2M3 = 27
    FLOAT6E3M2 = 28

    @property
    def short_name(self) -> str:
        """The name used in the textual syntax and in type strings: 'float', 'int4', 'bfloat16'."""
        return self.name.lower()

    @property
    def numpy(self) -> np.dtype:
        return to_numpy(self)

    @property
    def bits(self) -> int:
        """Bits one element takes in packed ``raw_data``."""
        return _BITS.get(self, 8 * to_numpy(self).itemsize if self != DataType.STRING else 0)


_NUMPY: dict[DataType, np.dtype] = {
    DataType.FLOAT: np.dtype(np.float32),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.INT8: np.dtype(np.int8),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.STRING: np.dtype(object),
    DataType.BOOL: np.dtype(np.bool_),
    DataType.FLOAT16: np.dtype(np.float16),
    DataType.DOUBLE: np.dtype(np.float64),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.COMPLEX64: np.dtype(np.complex64),
    DataType.COMPLEX128: np.dtype(np.complex128),
}
#: The types ml_dtypes provides, by its names: imported at first need (its import takes about half
#: a second, which every command and worker process would pay for float32 models otherwise).
_NARROW: dict[DataType, str] = {
    DataType.BFLOAT16: "bfloat16",
    DataType.FLOAT8E4M3FN: "float8_e4m3fn",
    DataType.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    DataType.FLOAT8E5M2: "float8_e5m2",
    DataType.FLOAT8E5M2FNUZ: "float8_e5m2fnuz",
    DataType.UINT4: "uint4",
    DataType.INT4: "int4",
    DataType.FLOAT4E2M1: "float4_e2m1fn",
    DataType.FLOAT8E8M0: "float8_e8m0fnu",
    DataType.UINT2: "uint2",
    DataType.INT2: "int2",
    DataType.FLOAT6E2M3: "float6_e2m3fn",
    DataType.FLOAT6E3M2: "float6_e3m2fn",
}
_FROM_NUMPY: dict[np.dtype, DataType] = {v: k for k, v in _NUMPY.items()}
_FROM_NUMPY[np.dtype(np.str_)] = DataType.STRING
_FROM_NUMPY[np.dtype(np.bytes_)] = DataType.STRING
_NARROW_NAMES = frozenset(_NARROW.values())


def _load_narrow() -> None:
    """ml_dtypes' types into the tables (once; called where one is asked for)."""
    import ml_dtypes

    for t, name in _NARROW.items():
        d = np.dtype(getattr(ml_dtypes, name))
        _NUMPY[t], _FROM_NUMPY[d] = d, t


_BITS = {
    DataType.UINT4: 4, DataType.INT4: 4, DataType.FLOAT4E2M1: 4,
    DataType.UINT2: 2, DataType.INT2: 2,
    DataType.FLOAT6E2M3: 6, DataType.FLOAT6E3M2: 6,
}  # fmt: skip
_BY_NAME = {t.short_name: t for t in DataType}

#: Types whose elements are smaller than a byte and are bit-packed in raw_data.
SUB_BYTE = frozenset(_BITS)
FLOAT_TYPES = frozenset(
    t for t in DataType if t.name.startswith(("FLOAT", "BFLOAT")) or t == DataType.DOUBLE
)
INTEGER_TYPES = frozenset(t for t in DataType if t.name.startswith(("INT", "UINT")))


def data_type(code: int | str | DataType, where: str = "") -> DataType:
    """The DataType for a code or short name; UnknownDataTypeError naming ``where`` otherwise."""
    try:
        return _BY_NAME[code] if isinstance(code, str) else DataType(code)
    except (KeyError, ValueError):
        place = f" in {where}" if where else ""
        raise UnknownDataTypeError(
            f"unknown element type {code!r}{place}: expected a code 1..28 of the standard"
        ) from None


def to_numpy(code: int | str | DataType) -> np.dtype:
    """The numpy dtype that holds elements of a standard type (strings are object arrays)."""
    found = _NUMPY.get(code) if type(code) is DataType else None
    if found is not None:  # (the common case, without the conversion: feeds are checked per run)
        return found
    t = data_type(code)
    if t == DataType.UNDEFINED:
        raise UnknownDataTypeError("element type UNDEFINED (0) has no numpy dtype")
    if t not in _NUMPY:
        _load_narrow()
    return _NUMPY[t]


def from_numpy(dtype: np.dtype | type) -> DataType:
    """The standard element type of a numpy dtype."""
    dt = np.dtype(dtype)
    found = _FROM_NUMPY.get(dt)
    if found is None and dt.name in _NARROW_NAMES:  # (an ml_dtypes array: ml_dtypes is loaded)
        _load_narrow()
        found = _FROM_NUMPY.get(dt)
    if found is not None:
        return found
    if dt.kind in "US":
        return DataType.STRING
    raise UnknownDataTypeError(f"numpy dtype {dt} has no ONNX element type")


# --- sub-byte packing ----------------------------------------------------------------------
def packed_size(t: DataType, count: int) -> int:
    """Bytes that ``count`` elements of ``t`` take in raw_data."""
    return (count * t.bits + 7) // 8


def pack(array: np.ndarray, t: DataType) -> bytes:
    """Raw bytes of ``array`` as the standard stores them (little-endian, sub-byte types packed)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if t not in SUB_BYTE:
        if t == DataType.STRING:
            raise ValueError("string tensors have no raw_data form")
        return flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
    codes = flat.view(np.uint8) & ((1 << t.bits) - 1)
    if t.bits == 6:
        codes = np.concatenate([codes, np.zeros(-len(codes) % 4, np.uint8)]).astype(np.uint32)
        groups = codes.reshape(-1, 4)
        word = groups[:, 0] | groups[:, 1] << 6 | groups[:, 2] << 12 | groups[:, 3] << 18
        out = np.stack([word & 0xFF, word >> 8 & 0xFF, word >> 16 & 0xFF], axis=1)
        return out.astype(np.uint8).tobytes()[: packed_size(t, len(flat))]
    per_byte = 8 // t.bits
    codes = np.concatenate([codes, np.zeros(-len(codes) % per_byte, np.uint8)])
    groups = codes.reshape(-1, per_byte)
    out = np.zeros(len(groups), np.uint8)
    for i in range(per_byte):
        out |= groups[:, i] << (i * t.bits)
    return out.tobytes()


def unpack(raw: bytes | memoryview | np.ndarray, t: DataType, count: int) -> np.ndarray:
    """A flat array of ``count`` elements of ``t`` from raw bytes (the inverse of ``pack``)."""
    data = np.frombuffer(raw, np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    if t.bits == 6:
        data = np.concatenate([data, np.zeros(-len(data) % 3, np.uint8)]).astype(np.uint32)
        groups = data.reshape(-1, 3)
        word = groups[:, 0] | groups[:, 1] << 8 | groups[:, 2] << 16
        codes = np.stack([word >> s & 0x3F for s in (0, 6, 12, 18)], axis=1).reshape(-1)
    else:
        per_byte = 8 // t.bits
        mask = (1 << t.bits) - 1
        codes = np.stack([data >> (i * t.bits) & mask for i in range(per_byte)], axis=1)
        codes = codes.reshape(-1)
    codes = codes[:count].astype(np.uint8)
    if t in (DataType.INT4, DataType.INT2):  # sign-extend two's complement
        sign = 1 << (t.bits - 1)
        codes = ((codes.astype(np.int16) ^ sign) - sign).astype(np.int8)
        return codes.astype(to_numpy(t))
    return codes.view(to_numpy(t))
