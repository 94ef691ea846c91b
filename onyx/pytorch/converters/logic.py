"""Comparisons, boolean and bitwise operators, Where."""

from __future__ import annotations

from onyx.dtypes import data_type
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


def _binary(op_type: str, fn) -> None:
    def convert(cx, a, b, *, broadcast: int = 0, axis: int | None = None):
        if axis is not None and broadcast:
            ra, rb = cx.rank(a), cx.rank(b)
            axis = axis + ra if axis < 0 else axis
            b = b.reshape(list(cx.shape(b)) + [1] * (ra - axis - rb))
        return fn(a, b)

    convert.__name__ = op_type.lower()
    converter(op_type, 1)(convert)


for _op, _fn in {
    "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
    "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or,
    "Xor": torch.logical_xor, "BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or,
    "BitwiseXor": torch.bitwise_xor,
}.items():  # fmt: skip
    _binary(_op, _fn)


@converter("Not", 1)
def not_(cx, x):
    return torch.logical_not(x)


@converter("BitwiseNot", 18)
def bitwise_not(cx, x):
    out = torch.bitwise_not(x)
    store = cx.onnx_dtype(x)
    if store is not None and store.name in ("UINT16", "UINT32"):
        out = out & ((1 << (16 if store.name == "UINT16" else 32)) - 1)
    return out


@converter("Where", 9)
def where(cx, condition, x, y):
    return torch.where(condition, x, y)


@converter("BitCast", 26)
def bitcast(cx, x, *, to: int):
    """The bits of ``x`` read as type ``to`` (of the same width)."""
    source, target = cx.onnx_dtype(x), data_type(to)
    if source is None:
        raise cx.fail("the input's element type is unknown after inference")
    if source.bits != target.bits:
        raise cx.fail(f"needs types of one bit width: input {source.short_name} has "
                      f"{source.bits} bits, to={target.short_name} has {target.bits}")  # fmt: skip
    # back to the stored type first (uint16/uint32 compute in a wider one inside the module)
    return x.to(dtypes.storage(source, cx.label)).view(dtypes.storage(target, cx.label))
