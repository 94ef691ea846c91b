"""Logical, comparison and bitwise kernels (And ... LessOrEqual, BitShift, Bitwise*, BitCast).

Broadcasting is numpy's from opset 7 on; opset 1 comparisons and logical ops used the legacy
``broadcast``/``axis`` attributes (see ``math.legacy_broadcast``).
"""

from __future__ import annotations

import numpy as np

from onyx.dtypes import DataType, data_type, from_numpy, to_numpy
from onyx.errors import KernelError, OnyxError
from onyx.runtime.kernels.math import A, legacy_binary
from onyx.runtime.kernels.registry import kernel


def _binary(ufunc, name: str):
    def binary(a, b):
        return ufunc(a, b, out=A)

    binary.__name__ = binary.__qualname__ = name
    return binary


_BINARY = {
    # op: (ufunc, first version, version from which numpy broadcasting applies)
    "And": (np.logical_and, 1, 7), "Or": (np.logical_or, 1, 7), "Xor": (np.logical_xor, 1, 7),
    "Equal": (np.equal, 1, 7), "Greater": (np.greater, 1, 7), "Less": (np.less, 1, 7),
    "GreaterOrEqual": (np.greater_equal, 12, 12), "LessOrEqual": (np.less_equal, 12, 12),
    "BitwiseAnd": (np.bitwise_and, 18, 18), "BitwiseOr": (np.bitwise_or, 18, 18),
    "BitwiseXor": (np.bitwise_xor, 18, 18),
}  # fmt: skip
for _name, (_ufunc, _first, _modern) in _BINARY.items():
    _fn = _binary(_ufunc, _name.lower())
    if _first < _modern:
        kernel(_name, _first)(legacy_binary(_fn, _name.lower()))
    kernel(_name, _modern)(_fn)


@kernel("Not", 1)
def not_(x):
    return np.logical_not(x, out=A)


@kernel("BitwiseNot", 18)
def bitwise_not(x):
    return np.invert(x, out=A)


@kernel("BitShift", 11)
def bit_shift(x, y, *, direction):
    """x shifted by y bits; shifts < 0 or >= the width give the sign fill (0 or -1)."""
    if direction == "LEFT":
        return np.left_shift(x, y, out=A)
    if direction == "RIGHT":
        return np.right_shift(x, y, out=A)
    raise KernelError(f"BitShift attribute direction must be 'LEFT' or 'RIGHT', got {direction!r}")


# --- BitCast -------------------------------------------------------------------------------
_SIGNED_SUB_BYTE = (DataType.INT4, DataType.INT2)


@kernel("BitCast", 26)
class BitCast:
    """The bits of the input read as element type ``to`` (of the same bit width)."""

    def __init__(self, *, to):
        try:
            self.to = data_type(to)
            self.dtype = to_numpy(self.to)
        except OnyxError as e:
            raise KernelError(f"BitCast attribute to: {e}") from None
        if self.to == DataType.STRING:
            raise KernelError("BitCast cannot produce strings: 'to' must be a non-string type")

    def __call__(self, x):
        try:
            source = from_numpy(x.dtype)
        except OnyxError:
            source = DataType.STRING
        if source == DataType.STRING:
            raise KernelError("BitCast input must be a non-string tensor, got strings")
        if source.bits != self.to.bits:
            raise KernelError(
                f"BitCast needs types of one bit width: input {source.short_name} has "
                f"{source.bits} bits, to={self.to.short_name} has {self.to.bits}"
            )
        if source.bits >= 8:
            return x.view(self.dtype)
        # sub-byte types live one to a byte: keep the low bits, sign-extend for signed targets
        codes = x.view(np.uint8) & np.uint8((1 << source.bits) - 1)
        if self.to in _SIGNED_SUB_BYTE:
            sign = 1 << (source.bits - 1)
            return ((codes.astype(np.int8) ^ sign) - sign).astype(self.dtype)
        return codes.view(self.dtype)
