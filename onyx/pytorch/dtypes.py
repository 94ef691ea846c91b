"""Element types between onyx, numpy and torch.

torch has storage types for uint16/uint32/uint64 but few kernels for them, so inside a converted
module they compute in a wider signed type (uint16 -> int32, uint32 -> int64; uint64 -> int64,
same bits) and go back to their own type at the graph's outputs. Types torch lacks (string, the
4-, 2- and 6-bit kinds, float4) are refused up front.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from onyx.dtypes import DataType
from onyx.errors import UnsupportedError
from onyx.pytorch._torch import torch

#: onyx type -> torch type as stored (what forward takes and returns).
STORAGE: dict[DataType, torch.dtype] = {
    DataType.FLOAT: torch.float32, DataType.DOUBLE: torch.float64,
    DataType.FLOAT16: torch.float16, DataType.BFLOAT16: torch.bfloat16,
    DataType.UINT8: torch.uint8, DataType.INT8: torch.int8, DataType.INT16: torch.int16,
    DataType.INT32: torch.int32, DataType.INT64: torch.int64, DataType.BOOL: torch.bool,
    DataType.UINT16: torch.uint16, DataType.UINT32: torch.uint32, DataType.UINT64: torch.uint64,
    DataType.COMPLEX64: torch.complex64, DataType.COMPLEX128: torch.complex128,
    DataType.FLOAT8E4M3FN: torch.float8_e4m3fn, DataType.FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz,
    DataType.FLOAT8E5M2: torch.float8_e5m2, DataType.FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
    DataType.FLOAT8E8M0: torch.float8_e8m0fnu,
}  # fmt: skip

#: storage types that compute in another type inside the module
WIDER = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}
#: ml_dtypes kinds that cross to torch through an unsigned view of the same width
_VIEWS = {
    np.dtype(ml_dtypes.bfloat16): (np.uint16, torch.bfloat16),
    np.dtype(ml_dtypes.float8_e4m3fn): (np.uint8, torch.float8_e4m3fn),
    np.dtype(ml_dtypes.float8_e4m3fnuz): (np.uint8, torch.float8_e4m3fnuz),
    np.dtype(ml_dtypes.float8_e5m2): (np.uint8, torch.float8_e5m2),
    np.dtype(ml_dtypes.float8_e5m2fnuz): (np.uint8, torch.float8_e5m2fnuz),
    np.dtype(ml_dtypes.float8_e8m0fnu): (np.uint8, torch.float8_e8m0fnu),
}
_TO_NUMPY = {t: (np.dtype(u), d) for d, (u, t) in _VIEWS.items()}
#: torch types whose numpy form is an ml_dtypes kind (to_numpy converts them through a view)
NARROW = frozenset(_TO_NUMPY)
_UINT_VIEW = {torch.bfloat16: torch.int16, torch.float8_e4m3fn: torch.uint8,
              torch.float8_e4m3fnuz: torch.uint8, torch.float8_e5m2: torch.uint8,
              torch.float8_e5m2fnuz: torch.uint8, torch.float8_e8m0fnu: torch.uint8}  # fmt: skip


def supported(t: DataType) -> bool:
    """Whether torch can hold tensors of ``t``."""
    return t in STORAGE


def storage(t: DataType, where: str = "") -> torch.dtype:
    """The torch type a tensor of ``t`` has at the module's boundary."""
    try:
        return STORAGE[t]
    except KeyError:
        place = f"{where}: " if where else ""
        raise UnsupportedError(f"{place}torch has no tensor type for {t.short_name}") from None


def compute(t: DataType, where: str = "") -> torch.dtype:
    """The torch type a tensor of ``t`` has inside the module (unsigned 16-64 bit widened)."""
    s = storage(t, where)
    return WIDER.get(s, s)


def from_numpy(a: np.ndarray | np.generic, widen: bool = True) -> torch.Tensor:
    """A torch tensor of ``a``'s values (a copy for ml_dtypes kinds; compute type if ``widen``)."""
    a = np.asarray(a)
    if a.dtype in _VIEWS:
        unsigned, t = _VIEWS[a.dtype]
        bits = np.ascontiguousarray(a).view(unsigned).reshape(a.shape)  # 0-d stays 0-d
        return torch.from_numpy(bits.copy()).view(t)
    if a.dtype == np.uint64 and widen:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int64).copy())
    if a.dtype.kind == "O" or a.dtype.kind in "USV":
        raise UnsupportedError(f"torch has no tensor type for numpy {a.dtype}")
    t = torch.from_numpy(np.array(a, copy=True) if not a.flags.writeable or a.ndim == 0 else a)
    return t.to(WIDER[t.dtype]) if widen and t.dtype in WIDER else t


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy array of ``t``'s values (ml_dtypes kinds for bfloat16 and the float8 types)."""
    t = t.detach().cpu()
    if t.dtype in _TO_NUMPY:
        unsigned, d = _TO_NUMPY[t.dtype]
        return t.contiguous().view(_UINT_VIEW[t.dtype]).numpy().view(unsigned).view(d)
    return t.resolve_conj().resolve_neg().numpy()
