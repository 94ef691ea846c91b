"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, ArgMax/ArgMin, CumSum/Prod.

The Reduce* ops come in two forms: ``axes`` as an attribute (every version before ReduceSum-13 and
the others' version 18) and ``axes`` as an optional input together with ``noop_with_empty_axes``.
Both reduce to one routine per op, ``compute(data, axes, keepdims)``, where ``axes`` is ``None``
(every axis) or a tuple of normalized axes (possibly empty: the reduction step is then the identity,
but LogSum/L1/L2/SumSquare still apply their element-wise steps, as the spec says).
Reductions over an empty set give the identity of the reduction: 0 for sums, 1 for products,
-inf / inf for max / min (the type's minimum / maximum for integers, False / True for booleans).
"""

from __future__ import annotations

import math

import numpy as np

from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import dtype_name
from onyx.runtime.kernels.registry import kernel
from onyx.runtime.memory import check_allocation

_LOW_PRECISION = {"float16", "bfloat16"}  # computed in float32, cast back


def _wide(x: np.ndarray) -> np.ndarray:
    """``x`` in a type numpy reduces accurately and fast (float16/bfloat16 -> float32)."""
    return x.astype(np.float32) if dtype_name(x.dtype) in _LOW_PRECISION else x


def _normalize_axes(axes, rank: int) -> tuple[int, ...]:
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < max(rank, 1):
            raise KernelError(f"reduction axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank if rank else 0)
    if len(set(out)) != len(out):
        raise KernelError(f"reduction axes {list(axes)} name an axis twice")
    return tuple(out) if rank else ()


def _is_empty_reduction(x: np.ndarray, axes) -> bool:
    if axes is None:
        return x.size == 0
    return any(x.shape[a] == 0 for a in axes)


def _extreme(dtype: np.dtype, lowest: bool):
    """The identity of max (``lowest``) or min over ``dtype``."""
    if dtype == np.bool_:
        return not lowest
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if lowest else info.max
    return -np.inf if lowest else np.inf


# --- the reductions, (data, axes, keepdims) -> array ---------------------------------------------
def _sum(x, axes, keepdims):
    w = _wide(x)
    return np.sum(w, axis=axes, keepdims=keepdims, dtype=None if w is not x else x.dtype)


def _mean(x, axes, keepdims):
    if x.dtype.kind in "iu":
        count = x.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
        acc = np.int64 if x.dtype.kind == "i" else np.uint64
        total = np.sum(x, axis=axes, keepdims=keepdims, dtype=acc)
        if count == 0:
            return np.zeros(total.shape, x.dtype)
        if x.dtype.kind == "i":  # truncate toward zero, as C division does
            q = np.abs(total) // count * np.sign(total)
        else:
            q = total // count
        return q.astype(x.dtype)
    w = _wide(x)
    if _is_empty_reduction(x, axes):
        s = np.sum(w, axis=axes, keepdims=keepdims)
        return np.full(s.shape, np.nan, s.dtype)
    if axes and sorted(axes) == list(range(x.ndim - len(axes), x.ndim)):
        kept = x.shape[: x.ndim - len(axes)]
        y = trailing_mean(w, math.prod(kept))
        if y is not None:
            return y.reshape(kept + (1,) * len(axes) if keepdims else kept)
    with np.errstate(invalid="ignore", divide="ignore"):  # (inf - inf in a sum: NaN, quietly)
        return np.mean(w, axis=axes, keepdims=keepdims)


def trailing_mean(x: np.ndarray, rows: int) -> np.ndarray | None:
    """The mean of each of the ``rows`` rows of the flattened ``x`` (the mean over its trailing
    axes: a global average pool, a squeeze-excite's squeeze), compiled, over the session's
    threads; None where the compiled kernels do not take ``x`` (numpy's mean runs a call per
    row there: 35 against 9 us on EfficientNet's (1, 672, 14, 14), one thread). Its sums go
    by vector lanes in an order written out (``_jit_gemm.lane_sums``), as numpy's pairwise sums
    reorder theirs: the same bits on one thread and split."""
    if x.dtype not in compiled.DTYPES or not x.flags.c_contiguous or rows == 0:
        return None
    jit = compiled.kernels(x.size)
    if jit is None:
        return None
    flat, width = x.reshape(-1), x.size // rows
    y = np.empty(rows, x.dtype)
    count = x.dtype.type(width)
    threads.rows(rows, x.size, lambda r0, r1: jit.row_means(flat, y, width, count, r0, r1),
                 native=lambda par, parts: par.row_means_bands(flat, y, width, count, parts))  # fmt: skip
    return y


def _max(x, axes, keepdims):
    if _is_empty_reduction(x, axes):
        return np.max(x, axis=axes, keepdims=keepdims, initial=_extreme(x.dtype, True))
    return np.max(x, axis=axes, keepdims=keepdims)


def _min(x, axes, keepdims):
    if _is_empty_reduction(x, axes):
        return np.min(x, axis=axes, keepdims=keepdims, initial=_extreme(x.dtype, False))
    return np.min(x, axis=axes, keepdims=keepdims)


def _prod(x, axes, keepdims):
    w = _wide(x)
    return np.prod(w, axis=axes, keepdims=keepdims, dtype=None if w is not x else x.dtype)


def _l1(x, axes, keepdims):
    w = _wide(x)
    return np.sum(np.abs(w), axis=axes, keepdims=keepdims, dtype=None if w is not x else x.dtype)


def _sum_square(x, axes, keepdims):
    w = _wide(x)
    return np.sum(w * w, axis=axes, keepdims=keepdims, dtype=None if w is not x else x.dtype)


def _float(x: np.ndarray) -> np.ndarray:
    """``x`` as a float array for the ops with logs and roots (integers go through float64)."""
    if x.dtype.kind in "iub":
        return x.astype(np.float64)
    return _wide(x)


def _l2(x, axes, keepdims):
    w = _float(x)
    return np.sqrt(np.sum(w * w, axis=axes, keepdims=keepdims))


def _log_sum(x, axes, keepdims):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.sum(_float(x), axis=axes, keepdims=keepdims))


def _log_sum_exp(x, axes, keepdims):
    w = _float(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m = np.max(w, axis=axes, keepdims=True, initial=-np.inf)
        m[~np.isfinite(m)] = 0
        s = np.log(np.sum(np.exp(w - m), axis=axes, keepdims=True)) + m
    if not keepdims:
        s = s.reshape(()) if axes is None else np.squeeze(s, axis=axes)
    return s


_REDUCTIONS = {
    "ReduceSum": (_sum, (1, 11), 13),
    "ReduceMean": (_mean, (1, 11), 18),
    "ReduceMax": (_max, (1, 11), 18),
    "ReduceMin": (_min, (1, 11), 18),
    "ReduceProd": (_prod, (1, 11), 18),
    "ReduceL1": (_l1, (1, 11), 18),
    "ReduceL2": (_l2, (1, 11), 18),
    "ReduceLogSum": (_log_sum, (1, 11), 18),
    "ReduceLogSumExp": (_log_sum_exp, (1, 11), 18),
    "ReduceSumSquare": (_sum_square, (1, 11), 18),
}


def _finish(result, dtype: np.dtype) -> np.ndarray:
    result = np.asarray(result)
    return result if result.dtype == dtype else result.astype(dtype)


def _check_empty(data: np.ndarray, picked, keepdims: bool) -> None:
    """An empty input reduced over its empty axes gives a full result, as big as the other axes
    make it (an input of shape (0, 2**31) makes 8 GiB of zeros): check it against the limit."""
    if data.size == 0 and picked != ():
        axes = range(data.ndim) if picked is None else picked
        kept = [1 if i in axes else d for i, d in enumerate(data.shape)
                if keepdims or i not in axes]  # fmt: skip
        check_allocation(kept, data.dtype)


def _register(op_type: str, compute, attr_versions: tuple[int, ...], input_version: int) -> None:
    def with_axes_attribute(data, *, axes=None, keepdims=1):
        picked = None if not axes else _normalize_axes(axes, data.ndim)
        _check_empty(data, picked, keepdims)
        return _finish(compute(data, picked, bool(keepdims)), data.dtype)

    def with_axes_input(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        if axes is None or axes.size == 0:
            picked = () if noop_with_empty_axes else None
        else:
            picked = _normalize_axes(axes.reshape(-1).tolist(), data.ndim)
        _check_empty(data, picked, keepdims)
        return _finish(compute(data, picked, bool(keepdims)), data.dtype)

    for fn, form in ((with_axes_attribute, "attribute"), (with_axes_input, "input")):
        fn.__name__ = f"{op_type}_axes_{form}"
        fn.__qualname__ = fn.__name__
        fn.__doc__ = f"{op_type} with ``axes`` as an {form}."
    kernel(op_type, *attr_versions)(with_axes_attribute)
    kernel(op_type, input_version)(with_axes_input)


for _op, (_compute, _attr_versions, _input_version) in _REDUCTIONS.items():
    _register(_op, _compute, _attr_versions, _input_version)


# --- ArgMax / ArgMin -------------------------------------------------------------------------------
def _arg(data: np.ndarray, axis: int, keepdims: int, select_last_index: int, pick) -> np.ndarray:
    rank = data.ndim
    if not -rank <= axis < max(rank, 1):
        raise KernelError(f"axis {axis} is out of range for a tensor of rank {rank}")
    if rank == 0:
        return np.zeros((), np.int64)
    axis %= rank
    n = data.shape[axis]
    if n == 0:
        raise KernelError(f"cannot take the arg-extreme along axis {axis}, which has size 0")
    x = data.astype(np.float32) if dtype_name(data.dtype) in _LOW_PRECISION else data
    if select_last_index:
        idx = (n - 1) - pick(np.flip(x, axis), axis=axis, keepdims=bool(keepdims))
    else:
        idx = pick(x, axis=axis, keepdims=bool(keepdims))
    return np.asarray(idx, dtype=np.int64)


@kernel("ArgMax", 1, 11, 12)
def arg_max(data, *, axis=0, keepdims=1, select_last_index=0):
    """Indices of the maxima along ``axis`` (first occurrence unless ``select_last_index``)."""
    return _arg(data, axis, keepdims, select_last_index, np.argmax)


@kernel("ArgMin", 1, 11, 12)
def arg_min(data, *, axis=0, keepdims=1, select_last_index=0):
    """Indices of the minima along ``axis`` (first occurrence unless ``select_last_index``)."""
    return _arg(data, axis, keepdims, select_last_index, np.argmin)


# --- CumSum / CumProd ------------------------------------------------------------------------------
def _cumulative(x, axis, exclusive, reverse, scan, identity, name) -> np.ndarray:
    if axis is None or np.size(axis) != 1:
        raise KernelError(f"{name}: axis must be a tensor with one element, got {axis!r}")
    a = int(np.asarray(axis).reshape(-1)[0])
    rank = x.ndim
    if not -rank <= a < max(rank, 1):
        raise KernelError(f"{name}: axis {a} is out of range for a tensor of rank {rank}")
    if rank == 0:
        return x.copy() if not exclusive else np.full((), identity, x.dtype)
    a %= rank
    w = _wide(x)
    acc = None if w is not x else x.dtype
    if reverse:
        w = np.flip(w, a)
    if exclusive:
        out = np.full(w.shape, identity, dtype=w.dtype if acc is None else acc)
        head = [slice(None)] * rank
        tail = [slice(None)] * rank
        head[a], tail[a] = slice(1, None), slice(None, -1)
        scan(w[tuple(tail)], axis=a, dtype=acc, out=out[tuple(head)])
    else:
        out = scan(w, axis=a, dtype=acc)
    if reverse:
        out = np.flip(out, a)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


@kernel("CumSum", 11)
def cum_sum(x, axis, *, exclusive=0, reverse=0):
    """Cumulative sum along ``axis`` (an input tensor)."""
    return _cumulative(x, axis, exclusive, reverse, np.cumsum, 0, "CumSum")


@kernel("CumProd", 26)
def cum_prod(x, axis, *, exclusive=0, reverse=0):
    """Cumulative product along ``axis`` (an input tensor)."""
    return _cumulative(x, axis, exclusive, reverse, np.cumprod, 1, "CumProd")
