"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, ArgMax/ArgMin."""

from __future__ import annotations

import math

from onyx.pytorch._torch import torch
from onyx.pytorch.converters._common import norm_axes
from onyx.pytorch.registry import converter

# op -> (fn(x, dims, keepdim), value of an empty reduction)
_REDUCE = {
    "ReduceSum": (lambda x, d, k: torch.sum(x, d, keepdim=k), 0),
    "ReduceMean": (lambda x, d, k: torch.mean(x, d, keepdim=k), math.nan),
    "ReduceMax": (lambda x, d, k: torch.amax(x, d, keepdim=k), -math.inf),
    "ReduceMin": (lambda x, d, k: torch.amin(x, d, keepdim=k), math.inf),
    "ReduceProd": (lambda x, d, k: _prod(x, d, k), 1),
    "ReduceL1": (lambda x, d, k: torch.sum(torch.abs(x), d, keepdim=k), 0),
    "ReduceL2": (lambda x, d, k: _l2(x, d, k), 0),
    "ReduceLogSum": (lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)), -math.inf),
    "ReduceLogSumExp": (lambda x, d, k: torch.logsumexp(x, d, keepdim=k), -math.inf),
    "ReduceSumSquare": (lambda x, d, k: torch.sum(x * x, d, keepdim=k), 0),
}
# since which opset the axes are an input rather than an attribute
_AXES_INPUT = {"ReduceSum": 13}


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, d, keepdim=keep)
    return x


def _l2(x, dims, keep):
    return torch.sqrt(torch.sum(x * x, dims, keepdim=keep))


def _reduce(cx, op, x, axes, keepdims, noop):
    fn, empty_value = _REDUCE[op]
    shape = cx.shape(x)
    rank = len(shape)
    if not axes:
        if noop:
            return x
        axes = list(range(rank))
    dims = sorted(set(norm_axes(axes, rank)))
    dtype = cx.dtype(x)
    if any(shape[d] == 0 for d in dims):  # an empty reduction: the identity, shaped
        out = [1 if i in dims else d for i, d in enumerate(shape) if keepdims or i not in dims]
        if dtype.is_floating_point:
            value = empty_value
        elif empty_value in (math.inf, -math.inf):
            info = torch.iinfo(dtype) if dtype != torch.bool else None
            value = (info.max if empty_value > 0 else info.min) if info else empty_value > 0
        else:
            value = 0 if empty_value != empty_value else empty_value
        return torch.full(out, value, dtype=dtype)
    if not dims:
        return x
    if op in ("ReduceMax", "ReduceMin") and dtype == torch.bool:
        y = (torch.all if op == "ReduceMin" else torch.any)(x, dims[0], keepdim=bool(keepdims))
        for d in reversed(dims[1:]):
            y = (torch.all if op == "ReduceMin" else torch.any)(
                y, d if keepdims else d - 1, keepdim=bool(keepdims)
            )
        return y
    if op == "ReduceL2" and not dtype.is_floating_point:  # the root in float64, then back
        return _l2(x.to(torch.float64), dims, bool(keepdims)).to(dtype)
    y = fn(x, dims, bool(keepdims))
    return y.to(dtype) if op in ("ReduceSum", "ReduceSumSquare", "ReduceProd") else y


def _register(op: str) -> None:
    since = _AXES_INPUT.get(op, 18)

    def with_attribute(cx, x, *, axes: list[int] | None = None, keepdims: int = 1):
        return _reduce(cx, op, x, axes, keepdims, 0)

    def with_input(cx, x, axes=None, *, keepdims: int = 1, noop_with_empty_axes: int = 0):
        ax = None if axes is None else cx.need(axes)
        return _reduce(cx, op, x, ax, keepdims, noop_with_empty_axes)

    converter(op, 1)(with_attribute)
    converter(op, since)(with_input)


for _op in _REDUCE:
    _register(_op)


def _arg(cx, fn, x, axis, keepdims, select_last_index):
    axis = axis + cx.rank(x) if axis < 0 else axis
    if select_last_index:
        n = cx.shape(x)[axis]
        i = fn(x.flip(axis), axis, keepdim=bool(keepdims))
        return (n - 1) - i
    return fn(x, axis, keepdim=bool(keepdims))


@converter("ArgMax", 1)
def arg_max(cx, x, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0):
    return _arg(cx, torch.argmax, x, axis, keepdims, select_last_index)


@converter("ArgMin", 1)
def arg_min(cx, x, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0):
    return _arg(cx, torch.argmin, x, axis, keepdims, select_last_index)
