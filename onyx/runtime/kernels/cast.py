"""Cast and CastLike: conversion between every element type of the standard.

Every source is first widened to a plain numpy type (ml_dtypes floats to float32, sub-byte
integers to int8/uint8), then narrowed to the target by the standard's rules: float8 targets
saturate to their largest finite value unless ``saturate=0``; float8e8m0 rounds by ``round_mode``;
sub-byte integers keep their low bits; float64 sources reach narrow floats with a single rounding
(round-to-odd through float32, so that no value is rounded twice).

Floats out of an integer target's range: the standard leaves the result undefined. onyx truncates
toward zero and keeps the low bits, the rule the standard gives for integer -> integer (-9.5 -> int4
7, 8 -> int4 -8, 17 -> uint4 1, 300 -> int8 44). For the sub-byte targets (int4/uint4/int2/uint2)
this is onyx's own code, with NaN and +-inf giving 0: the same on every platform and with every
ml_dtypes release (0.6 wraps the same way, 0.7 gives 0 instead). Wider targets take numpy's
conversion, which on x86-64 gives the same low bits for magnitudes below 2**31 (so float -> int8
and float -> int4 agree there); beyond that, and for NaN/inf, numpy's result is what it is.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from onyx.dtypes import DataType, data_type, from_numpy, to_numpy
from onyx.errors import KernelError, OnyxError
from onyx.runtime.kernels.registry import kernel

T = DataType
#: float8 kinds whose out-of-range values ``saturate`` clamps to the largest finite value.
FLOAT8 = frozenset({T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ})
#: Narrow floats that ml_dtypes provides (reached from float32 with one rounding).
ML_FLOATS = FLOAT8 | {T.BFLOAT16, T.FLOAT4E2M1, T.FLOAT6E2M3, T.FLOAT6E3M2}
SUB_BYTE_INTS = {T.INT4: (4, True), T.UINT4: (4, False), T.INT2: (2, True), T.UINT2: (2, False)}
_ROUND_MODES = ("up", "down", "nearest")


@functools.cache
def _float8_max(t: DataType) -> float:
    """The largest finite value of a float8 kind (ml_dtypes is imported here, at first need)."""
    import ml_dtypes

    return float(ml_dtypes.finfo(to_numpy(t)).max)


def _is_string(dtype: np.dtype) -> bool:
    return dtype.kind in "OUS"


def _widen(x: np.ndarray) -> np.ndarray:
    """``x`` as a plain numpy array: ml_dtypes floats -> float32, sub-byte ints -> int8/uint8."""
    if x.dtype.kind != "V":
        return x
    t = from_numpy(x.dtype)
    if t in SUB_BYTE_INTS:
        return x.astype(np.int8 if SUB_BYTE_INTS[t][1] else np.uint8)
    return x.astype(np.float32)


def _to_float32_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding to odd: a later float32 -> narrower rounding is then exact RNE."""
    f = x.astype(np.float32)
    back = f.astype(np.float64)
    inexact = (back != x) & ~np.isnan(x)
    if not inexact.any():
        return f
    over = inexact & (np.abs(back) > np.abs(x))  # RNE went away from zero: step back toward it
    f[over] = np.nextafter(f[over], np.float32(0))
    bits = f.view(np.uint32)
    bits[inexact] |= np.uint32(1)
    return f


def _to_float8e8m0(v: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """Powers of two 2**(code-127), code 255 = NaN; the sign is ignored (negatives are undefined)."""
    a = np.abs(v.astype(np.float64, copy=False))
    mant, exp = np.frexp(a)  # a = mant * 2**exp, mant in [0.5, 1)
    k = exp.astype(np.int64) - 1  # floor(log2(a)); 2*mant in [1, 2) is the fraction
    if round_mode == "up":
        k += mant > 0.5
    elif round_mode == "nearest":
        k += mant >= 0.75
    code = k + 127
    low, high = (0, 254) if saturate else (255, 255)
    code = np.where(code > 254, high, code)
    code = np.where((code < 0) | (a == 0), low, code)
    code = np.where(np.isinf(a), high, code)
    code = np.where(np.isnan(a), 255, code)
    return code.astype(np.uint8).view(to_numpy(T.FLOAT8E8M0))


def _to_sub_byte_int(v: np.ndarray, t: DataType) -> np.ndarray:
    """Low bits of the integer value (floats truncated toward zero first; NaN/inf give 0).

    Out-of-range floats wrap like integers (see the module docstring): -9.0 -> int4 7.
    """
    bits, signed = SUB_BYTE_INTS[t]
    if v.dtype.kind in "fc":
        v = np.where(np.isfinite(v), np.trunc(v.real), 0).astype(np.int64)
    low = v.astype(np.uint8) & np.uint8((1 << bits) - 1)
    if signed:
        half = 1 << (bits - 1)
        low = ((low.astype(np.int8) ^ np.int8(half)) - np.int8(half)).astype(np.int8)
    return low.astype(to_numpy(t))


# --- strings -------------------------------------------------------------------------------
_SPECIAL = {"nan": "NaN", "inf": "INF", "-inf": "-INF"}


def _float_text(v) -> str:
    s = str(v)
    return _SPECIAL.get(s, s)


def _to_strings(x: np.ndarray) -> np.ndarray:
    """Numbers as text: shortest round-trip form for floats, 'NaN'/'INF'/'-INF', '1'/'0' for bool."""
    if _is_string(x.dtype):
        flat = [v.decode() if isinstance(v, bytes) else str(v) for v in x.reshape(-1).tolist()]
    elif x.dtype == np.bool_:
        flat = ["1" if v else "0" for v in x.reshape(-1).tolist()]
    elif x.dtype.kind in "iu" or from_numpy(x.dtype) in SUB_BYTE_INTS:
        flat = [str(v) for v in _widen(x).reshape(-1).tolist()]
    else:  # floats keep their own type's repr (float32 '0.1', not float64 '0.10000000149')
        flat = [_float_text(v) for v in x.reshape(-1)]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(x.shape)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _parse_float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise KernelError(f"cannot cast string {s!r} to a number") from None


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        f = _parse_float(s)
        if not math.isfinite(f):
            raise KernelError(f"cannot cast string {s!r} to an integer") from None
        return int(f)


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return _parse_float(s) != 0


def _from_strings(x: np.ndarray, t: DataType) -> np.ndarray:
    """Parse text into numbers of type ``t`` (floats also take 'INF', '+INF', '-INF', 'NaN')."""
    flat = [_text(v) for v in x.reshape(-1).tolist()]
    if t == T.BOOL:
        return np.array([_parse_bool(s) for s in flat], dtype=np.bool_).reshape(x.shape)
    if t in INTEGER_TARGETS:
        mask = (1 << 64) - 1
        wide = np.array([_parse_int(s) & mask for s in flat], dtype=np.uint64).reshape(x.shape)
        return wide
    return np.array([_parse_float(s) for s in flat], dtype=np.float64).reshape(x.shape)


INTEGER_TARGETS = frozenset(
    {T.INT8, T.INT16, T.INT32, T.INT64, T.UINT8, T.UINT16, T.UINT32, T.UINT64} | set(SUB_BYTE_INTS)
)


# --- the conversion ------------------------------------------------------------------------
def cast_array(
    x: np.ndarray, to: DataType, *, saturate: bool = True, round_mode: str = "up"
) -> np.ndarray:
    """``x`` converted to element type ``to`` by the rules of the Cast operator."""
    x = np.asarray(x)
    target = to_numpy(to)
    if x.dtype == target:
        return x
    if to == T.STRING:
        return _to_strings(x)
    with np.errstate(invalid="ignore", over="ignore"):
        v = _from_strings(x, to) if _is_string(x.dtype) else _widen(x)
        if v.dtype.kind == "c" and to not in (T.COMPLEX64, T.COMPLEX128, T.BOOL):
            v = v.real
        if to == T.FLOAT8E8M0:
            return _to_float8e8m0(v, saturate, round_mode)
        if to in SUB_BYTE_INTS:
            return _to_sub_byte_int(v, to)
        if to in ML_FLOATS:
            if v.dtype != np.float32:  # float16 widens exactly; the rest go through float64
                v = v.astype(np.float32 if v.dtype == np.float16 else np.float64)
            if saturate and to in FLOAT8:
                m = _float8_max(to)
                v = np.clip(v, -m, m)
            if v.dtype == np.float64:
                v = _to_float32_odd(v)
            return v.astype(target)
        return v.astype(target)


def _target(to) -> DataType:
    try:
        t = data_type(to.lower() if isinstance(to, str) else to)
    except OnyxError as e:
        raise KernelError(str(e)) from None
    if t == T.UNDEFINED:
        raise KernelError("Cast 'to' is UNDEFINED (0): expected an element type code 1..28")
    return t


def _check_round_mode(round_mode: str) -> str:
    if round_mode not in _ROUND_MODES:
        raise KernelError(f"round_mode must be one of {_ROUND_MODES}, got {round_mode!r}")
    return round_mode


@kernel("Cast", 1, 6, 19, 24)
class Cast:
    """Cast(input) to the element type ``to`` (an int code; a type name in Cast-1).

    Floats out of an integer target's range wrap: truncated, then the low bits kept (module doc).
    """

    def __init__(self, *, to, saturate: int = 1, round_mode: str = "up"):
        self.to = _target(to)
        self.saturate = bool(saturate)
        self.round_mode = _check_round_mode(round_mode)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return cast_array(x, self.to, saturate=self.saturate, round_mode=self.round_mode)


@kernel("CastLike", 15, 19, 24)
class CastLike:
    """CastLike(input, target_type): Cast to the element type of ``target_type``."""

    def __init__(self, *, saturate: int = 1, round_mode: str = "up"):
        self.saturate = bool(saturate)
        self.round_mode = _check_round_mode(round_mode)

    def __call__(self, x: np.ndarray, target_type: np.ndarray) -> np.ndarray:
        try:
            to = from_numpy(np.asarray(target_type).dtype)
        except OnyxError as e:
            raise KernelError(str(e)) from None
        return cast_array(x, to, saturate=self.saturate, round_mode=self.round_mode)
