"""Shape and data movement: Reshape, Concat, Slice, Gather, Cast, Constant and friends."""

from __future__ import annotations

import math

import numpy as np

from onyx.dtypes import DataType
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.converters._common import norm_axes, torch_pad
from onyx.pytorch.registry import NeedsValues, converter

F = torch.nn.functional
_INT64_MAX = 2**63 - 1


# --- leaves: run whole when the module runs (values only known then) -------------------------
def onnx_shape(x, start: int = 0, end: int | None = None):
    """The shape of ``x`` (from start to end) as an int64 tensor."""
    return torch.tensor(x.shape[start:end], dtype=torch.int64, device=x.device)


def onnx_reshape(x, shape, allowzero: int = 0):
    """Reshape to a shape given as a tensor (0 copies the input's dim unless allowzero)."""
    dims = [int(d) for d in shape.tolist()]
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def onnx_expand(x, shape):
    """Broadcast ``x`` against a shape given as a tensor."""
    dims = [int(d) for d in shape.tolist()]
    return (
        x * torch.ones(dims, dtype=x.dtype, device=x.device)
        if x.dtype != torch.bool
        else (x & torch.ones(dims, dtype=torch.bool, device=x.device))
    )


def onnx_full(shape, value):
    """A tensor of ``value`` (a one-element tensor) with a shape given as a tensor."""
    return value.reshape(()).expand([int(d) for d in shape.tolist()]).clone()


# --- constants -----------------------------------------------------------------------------
@converter("Identity", 1)
def identity(cx, x):
    return x


@converter("Constant", 1)
def constant(cx, *, value=None, value_float=None, value_floats=None, value_int=None,
             value_ints=None, sparse_value=None, value_string=None, value_strings=None):  # fmt: skip
    if value is not None or sparse_value is not None:
        return dtypes.from_numpy(value if value is not None else sparse_value)
    if value_float is not None:
        return torch.tensor(value_float, dtype=torch.float32)
    if value_floats is not None:
        return torch.tensor(value_floats, dtype=torch.float32)
    if value_int is not None:
        return torch.tensor(value_int, dtype=torch.int64)
    if value_ints is not None:
        return torch.tensor(value_ints, dtype=torch.int64)
    raise cx.fail("string constants have no torch type")


@converter("ConstantOfShape", 9)
def constant_of_shape(cx, shape, *, value=None):
    fill = dtypes.from_numpy(value) if value is not None else torch.zeros(1)
    sizes = cx.sizes(shape)
    if sizes is not None:
        if not any(cx.is_proxy(s) for s in sizes):
            return torch.full(sizes, fill.reshape(()).item(), dtype=fill.dtype)
        return torch.full(sizes, fill.reshape(()).item(), dtype=fill.dtype)
    return cx.call(onnx_full, shape, fill)


@converter("Shape", 1)
def shape(cx, x, *, start: int = 0, end: int | None = None):
    static = cx.static_shape(x)
    if static is not None:
        return torch.tensor(static[start:end], dtype=torch.int64)
    return cx.call(onnx_shape, x, start, end)


@converter("Size", 1)
def size(cx, x):
    static = cx.static_shape(x)
    if static is not None:
        return torch.tensor(math.prod(static), dtype=torch.int64)
    return cx.call(lambda t: torch.tensor(t.numel(), dtype=torch.int64), x)


# --- casts ---------------------------------------------------------------------------------
_FLOAT8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0,
               torch.float8_e5m2: 57344.0, torch.float8_e5m2fnuz: 57344.0}  # fmt: skip


def _to_e8m0(x, saturate: bool, round_mode: str):
    """Powers of two 2**(code-127), code 255 = NaN; the sign is ignored; rounded by
    ``round_mode`` (up, nearest or down) as the standard defines it."""
    a = torch.abs(x.to(torch.float64))
    mant, exp = torch.frexp(a)  # a = mant * 2**exp, mant in [0.5, 1)
    k = exp.to(torch.int64) - 1
    if round_mode == "up":
        k = k + (mant > 0.5).to(torch.int64)
    elif round_mode == "nearest":
        k = k + (mant >= 0.75).to(torch.int64)
    code = k + 127
    low, high = (0, 254) if saturate else (255, 255)
    code = torch.where(code > 254, high, code)
    code = torch.where((code < 0) | (a == 0), low, code)
    code = torch.where(torch.isinf(a), high, code)
    code = torch.where(torch.isnan(a), 255, code)
    return code.to(torch.uint8).view(torch.float8_e8m0fnu)


def _cast(cx, x, to: DataType, saturate: int, round_mode: str = "up"):
    target = dtypes.storage(to, cx.label)
    src = cx.dtype(x)
    if target == torch.float8_e8m0fnu and src.is_floating_point:
        return _to_e8m0(x, bool(saturate), round_mode)
    if target in _FLOAT8_MAX and saturate and src.is_floating_point:
        top = _FLOAT8_MAX[target]
        clamped = torch.clamp(x, -top, top)
        x = torch.where(torch.isnan(x), x, clamped)
    elif target in (torch.float8_e4m3fn, torch.float8_e4m3fnuz) and src.is_floating_point:
        # without saturation, what rounds beyond the largest finite value is NaN (no infinity)
        limit = 464.0 if target == torch.float8_e4m3fn else 248.0
        x = torch.where(torch.abs(x) > limit, torch.full_like(x, math.nan), x)
    if target == torch.float8_e8m0fnu and src.is_floating_point:
        x = x.to(torch.float32)
    if target in dtypes.WIDER:
        if src.is_floating_point:
            x = x.to(torch.int64)
        return x.to(target).to(dtypes.WIDER[target])
    if src == torch.bool and target.is_floating_point and target.itemsize == 1:
        x = x.to(torch.float32)
    return x.to(target)


@converter("Cast", 1)
def cast(cx, x, *, to: int, saturate: int = 1, round_mode: str = "up"):
    return _cast(cx, x, DataType(to), saturate, round_mode)


@converter("CastLike", 15)
def cast_like(cx, x, like, *, saturate: int = 1, round_mode: str = "up"):
    return _cast(cx, x, cx.onnx_dtype(like) or _onnx_type_of(like), saturate, round_mode)


def _onnx_type_of(t) -> DataType:
    for k, v in dtypes.STORAGE.items():
        if v == t.dtype:
            return k
    raise ValueError(f"no element type for {t.dtype}")


# --- shapes --------------------------------------------------------------------------------
def _resolve(sizes: list, in_shape: tuple | None, allowzero: int, x) -> list:
    out = []
    for i, d in enumerate(sizes):
        if isinstance(d, int) and d == 0 and not allowzero:
            dim = in_shape[i] if in_shape is not None else None
            out.append(dim if isinstance(dim, int) else x.size(i))
        else:
            out.append(d)
    return out


@converter("Reshape", 1)
def reshape_1(cx, x, *, shape):
    return x.reshape(_resolve(list(shape), cx.shape(x), 0, x))


@converter("Reshape", 5)
def reshape(cx, x, shape, *, allowzero: int = 0):
    sizes = cx.sizes(shape)
    if sizes is not None:
        return x.reshape(_resolve(sizes, cx.shape(x), allowzero, x))
    return cx.call(onnx_reshape, x, shape, allowzero)


@converter("Flatten", 1)
def flatten(cx, x, *, axis: int = 1):
    rank = cx.rank(x)
    axis = axis + rank if axis < 0 else axis
    shape = cx.shape(x)
    outer = shape[:axis]
    if all(isinstance(d, int) for d in shape):
        return x.reshape(math.prod(outer), math.prod(shape[axis:]))
    if axis == 0:
        return x.reshape(1, -1)
    return (
        x.reshape(math.prod(outer), -1)
        if all(isinstance(d, int) for d in outer)
        else (x.flatten(axis).flatten(0, axis - 1) if axis < rank else x.flatten().unsqueeze(1))
    )


@converter("Transpose", 1)
def transpose(cx, x, *, perm: list[int] | None = None):
    rank = cx.rank(x)
    return x.permute(perm if perm is not None else list(reversed(range(rank))))


@converter("Squeeze", 1)
def squeeze_1(cx, x, *, axes: list[int] | None = None):
    return _squeeze(cx, x, axes)


@converter("Squeeze", 13)
def squeeze(cx, x, axes=None):
    return _squeeze(cx, x, None if axes is None else cx.need(axes))


def _squeeze(cx, x, axes):
    shape = cx.shape(x)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = norm_axes(axes, len(shape))
    return x.squeeze(tuple(axes)) if axes else x


@converter("Unsqueeze", 1)
def unsqueeze_1(cx, x, *, axes: list[int]):
    return _unsqueeze(cx, x, axes)


@converter("Unsqueeze", 13)
def unsqueeze(cx, x, axes):
    return _unsqueeze(cx, x, cx.need(axes))


def _unsqueeze(cx, x, axes):
    rank = cx.rank(x) + len(axes)
    for a in sorted(norm_axes(axes, rank)):
        x = x.unsqueeze(a)
    return x


@converter("Concat", 1)
def concat(cx, *xs, axis: int = 1):
    return torch.cat(list(xs), axis)


@converter("Split", 1)
def split_1(cx, x, split=None, *, axis: int = 0, _outputs: int = 1):
    sizes = None if split is None else cx.need(split)
    return _split(cx, x, sizes, axis, _outputs)


@converter("Split", 2)
def split_2(cx, x, *, axis: int = 0, split: list[int] | None = None, _outputs: int = 1):
    return _split(cx, x, split, axis, _outputs)


@converter("Split", 13)
def split(cx, x, split=None, *, axis: int = 0, _outputs: int = 1):
    return _split(cx, x, None if split is None else cx.need(split), axis, _outputs)


@converter("Split", 18)
def split_18(cx, x, split=None, *, axis: int = 0, num_outputs: int | None = None,
             _outputs: int = 1):  # fmt: skip
    sizes = None if split is None else cx.need(split)
    return _split(cx, x, sizes, axis, num_outputs or _outputs)


def _split(cx, x, sizes, axis, n):
    if sizes is None:
        dim = cx.shape(x)[axis]
        if not isinstance(dim, int):
            raise cx.fail("Split without sizes needs a static dim")
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    parts = torch.split(x, list(sizes), axis)
    return tuple(parts[i] for i in range(len(sizes)))


@converter("Slice", 1)
def slice_1(cx, x, *, starts: list[int], ends: list[int], axes: list[int] | None = None):
    return _slice(cx, x, starts, ends, axes, None)


@converter("Slice", 10)
def slice_(cx, x, starts, ends, axes=None, steps=None):
    s, e = cx.sizes(starts), cx.sizes(ends)
    if s is None or e is None:
        s, e = cx.need(starts), cx.need(ends)
    return _slice(cx, x, s, e, None if axes is None else cx.need(axes),
                  None if steps is None else cx.need(steps))  # fmt: skip


def _slice(cx, x, starts, ends, axes, steps):
    shape = cx.shape(x)
    rank = len(shape)
    axes = norm_axes(axes if axes is not None else range(len(starts)), rank)
    steps = steps or [1] * len(starts)
    index: list = [slice(None)] * rank
    flips = []
    for a, s, e, st in zip(axes, starts, ends, steps):
        dim = shape[a]
        if st > 0:
            index[a] = slice(_clip(s, dim), _clip(e, dim), st)
            continue
        if not isinstance(dim, int):
            raise cx.fail("Slice with a negative step needs a static dim")
        s = min(max(s + dim if s < 0 else s, -1), dim - 1)
        e = min(max(e + dim if e < 0 else e, -1), dim - 1)
        # positions s, s+st, ... > e; taken from the flipped axis
        count = max(0, -(-(s - e) // -st))
        start = dim - 1 - s
        index[a] = slice(start, start + (count - 1) * -st + 1 if count else start, -st)
        flips.append(a)
    if flips:
        x = x.flip(flips)
    return x[tuple(index)]


def _clip(i, dim):
    if not isinstance(i, int):
        return i
    if i >= _INT64_MAX // 2:
        return None
    if i <= -(_INT64_MAX // 2):
        return 0
    if isinstance(dim, int):
        if i < 0:
            return max(i + dim, 0)
        return min(i, dim)
    return i


@converter("Gather", 1)
def gather(cx, x, indices, *, axis: int = 0):
    rank = cx.rank(x)
    axis = axis + rank if axis < 0 else axis
    dim = cx.shape(x)[axis]
    idx = cx.const(indices)
    if idx is not None and idx.ndim == 0 and isinstance(dim, int):
        i = int(idx)
        return x.select(axis, i + dim if i < 0 else i)
    ishape = cx.shape(indices)
    if isinstance(dim, int):
        indices = torch.where(indices < 0, indices + dim, indices)
    else:
        indices = torch.where(indices < 0, indices + x.size(axis), indices)
    flat = torch.index_select(x, axis, indices.reshape(-1).to(torch.int64))
    xs = cx.shape(x)
    new = [*(_dim(x, i, xs) for i in range(axis)), *(_dim(indices, i, ishape)
                                                     for i in range(len(ishape))),
           *(_dim(x, i, xs) for i in range(axis + 1, rank))]  # fmt: skip
    return flat.reshape(new)


def _dim(x, i, shape):
    d = shape[i]
    return d if isinstance(d, int) else x.size(i)


@converter("GatherElements", 11)
def gather_elements(cx, x, indices, *, axis: int = 0):
    axis = axis + cx.rank(x) if axis < 0 else axis
    indices = torch.where(indices < 0, indices + x.size(axis), indices)
    return torch.gather(x, axis, indices.to(torch.int64))


@converter("GatherND", 11)
def gather_nd(cx, x, indices, *, batch_dims: int = 0):
    ishape, xshape = cx.static_shape(indices), cx.static_shape(x)
    if ishape is None or xshape is None:
        raise cx.fail("GatherND needs static shapes")
    k = ishape[-1]
    b = batch_dims
    batch = math.prod(xshape[:b])
    idx = indices.reshape(batch, -1, k).to(torch.int64)
    dims = torch.tensor(xshape[b : b + k], dtype=torch.int64)
    idx = torch.where(idx < 0, idx + dims, idx)
    xb = x.reshape(batch, *xshape[b:])
    ar = torch.arange(batch).reshape(batch, 1)
    parts = tuple(idx[..., i] for i in range(k))
    out = xb[(ar, *parts)]
    return out.reshape(*ishape[:-1], *xshape[b + k :])


@converter("ScatterElements", 11)
def scatter_elements(cx, x, indices, updates, *, axis: int = 0, reduction: str = "none"):
    axis = axis + cx.rank(x) if axis < 0 else axis
    indices = torch.where(indices < 0, indices + x.size(axis), indices).to(torch.int64)
    if reduction == "none":
        return torch.scatter(x, axis, indices, updates)
    mode = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return torch.scatter_reduce(x, axis, indices, updates, mode, include_self=True)


@converter("Scatter", 9)
def scatter(cx, x, indices, updates, *, axis: int = 0):
    return scatter_elements(cx, x, indices, updates, axis=axis)


@converter("ScatterND", 11)
def scatter_nd(cx, x, indices, updates, *, reduction: str = "none"):
    xshape, ishape = cx.static_shape(x), cx.static_shape(indices)
    if xshape is None or ishape is None:
        raise cx.fail("ScatterND needs static shapes")
    k = ishape[-1]
    idx = indices.reshape(-1, k).to(torch.int64)
    strides = [math.prod(xshape[i + 1 : k]) for i in range(k)]
    dims = torch.tensor(xshape[:k], dtype=torch.int64)
    idx = torch.where(idx < 0, idx + dims, idx)
    flat_idx = (idx * torch.tensor(strides, dtype=torch.int64)).sum(-1)
    inner = math.prod(xshape[k:])
    flat = x.reshape(math.prod(xshape[:k]), inner).clone()
    upd = updates.reshape(-1, inner)
    if reduction == "none":
        flat = flat.index_copy(0, flat_idx, upd)
    else:
        mode = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
        flat = (
            flat.index_reduce(0, flat_idx, upd, mode)
            if mode != "sum"
            else flat.index_add(0, flat_idx, upd)
        )
    return flat.reshape(xshape)


@converter("Expand", 8)
def expand(cx, x, shape):
    sizes = cx.sizes(shape)
    if sizes is None:
        return cx.call(onnx_expand, x, shape)
    rank = max(cx.rank(x), len(sizes))
    xs = [1] * (rank - cx.rank(x)) + list(cx.shape(x))
    ss = [1] * (rank - len(sizes)) + list(sizes)
    target = []
    for i, (a, b) in enumerate(zip(xs, ss)):
        if isinstance(b, int) and b == 1:
            target.append(a if isinstance(a, int) else -1)
        else:
            target.append(b)
    if cx.rank(x) < rank:
        x = (
            x.reshape(xs)
            if all(isinstance(d, int) for d in xs)
            else x[(None,) * (rank - cx.rank(x))]
        )
    return x.expand(target)


@converter("Tile", 6)
def tile(cx, x, repeats):
    reps = cx.sizes(repeats)
    if reps is None:
        reps = cx.need(repeats)
    return x.repeat(reps)


@converter("Range", 11)
def range_(cx, start, limit, delta):
    values = [cx.const(v) for v in (start, limit, delta)]
    dtype = cx.dtype(start)
    if all(v is not None for v in values):
        s, lim, d = (v.item() for v in values)
        n = max(int(math.ceil((lim - s) / d)), 0)
        return (
            (torch.arange(n, dtype=torch.float64) * d + s).to(dtype)
            if dtype.is_floating_point
            else (torch.arange(n, dtype=torch.int64) * int(d) + int(s)).to(dtype)
        )
    raise NeedsValues()


@converter("Pad", 1)
def pad_1(cx, x, *, pads: list[int] | None = None, paddings: list[int] | None = None,
          mode: str = "constant", value: float = 0.0):  # fmt: skip
    return _pad(cx, x, pads if pads is not None else paddings, mode, value)


@converter("Pad", 11)
def pad(cx, x, pads, constant_value=None, axes=None, *, mode: str = "constant"):
    p = cx.need(pads)
    rank = cx.rank(x)
    if axes is not None:
        ax = norm_axes(cx.need(axes), rank)
        full = [0] * (2 * rank)
        for i, a in enumerate(ax):
            full[a], full[a + rank] = p[i], p[i + len(ax)]
        p = full
    value = 0
    if constant_value is not None:
        c = cx.need_const(constant_value)
        value = c.reshape(-1)[0].item() if c.size else 0
    return _pad(cx, x, p, mode, value)


def _pad(cx, x, pads, mode, value):
    mode = {"edge": "replicate"}.get(mode, mode)
    tp = torch_pad(pads)
    while len(tp) >= 2 and tp[-2:] == [0, 0] and mode != "constant":
        tp = tp[:-2]  # torch pads the trailing dims only, in non-constant modes
    if mode == "constant":
        if any(p < 0 for p in tp):
            return F.pad(x, tp, value=value)
        return F.pad(x, tp, value=value)
    if mode == "wrap":
        mode = "circular"
    rank = cx.rank(x)
    need = len(tp) // 2
    lead = rank - need
    if lead < 1 or rank - lead > 3 or (mode == "circular" and lead < 1):
        # torch wants (batch, channel) before up to 3 padded dims: add leading dims
        extra = max(0, 2 - lead)
        y = x.reshape([1] * extra + list(cx.shape(x)))
        return F.pad(y, tp, mode=mode).reshape(F.pad(y, tp, mode=mode).shape[extra:])
    if cx.dtype(x).is_floating_point:
        return F.pad(x, tp, mode=mode)
    return F.pad(x.to(torch.float64), tp, mode=mode).to(cx.dtype(x))


@converter("Trilu", 14)
def trilu(cx, x, k=None, *, upper: int = 1):
    kk = 0 if k is None else cx.need(k)[0]
    return torch.triu(x, kk) if upper else torch.tril(x, kk)


@converter("OneHot", 9)
def one_hot(cx, indices, depth, values, *, axis: int = -1):
    d = int(cx.need_const(depth).reshape(-1)[0].item())
    idx = indices.to(torch.int64)
    idx = torch.where(idx < 0, idx + d, idx)
    valid = (idx >= 0) & (idx < d)
    hot = F.one_hot(torch.where(valid, idx, 0), d) * valid.unsqueeze(-1).to(torch.int64)
    rank = cx.rank(indices) + 1
    axis = axis + rank if axis < 0 else axis
    hot = hot.movedim(-1, axis)
    off, on = values[0], values[1]
    return torch.where(hot.to(torch.bool), on, off)


@converter("NonZero", 9)
def non_zero(cx, x):
    return (
        torch.stack(torch.nonzero(x, as_tuple=True))
        if cx.rank(x)
        else torch.nonzero(x.reshape(1)).T[:0]
    )


@converter("Compress", 11)
def compress(cx, x, condition, *, axis: int | None = None):
    shape = cx.shape(x)
    if axis is None:
        x, axis, shape = x.reshape(-1), 0, (math.prod(shape),)
    axis = axis + len(shape) if axis < 0 else axis
    n = shape[axis]
    cond = condition[:n] if isinstance(n, int) else condition
    return torch.index_select(x, axis, torch.nonzero(cond).reshape(-1))


@converter("EyeLike", 9)
def eye_like(cx, x, *, dtype: int | None = None, k: int = 0):
    rows, cols = cx.static_shape(x)
    out = torch.ones(rows, cols, dtype=torch.int64).triu(k).tril(k)
    return out.to(cx.out_dtype())


@converter("DepthToSpace", 1)
def depth_to_space(cx, x, *, blocksize: int, mode: str = "DCR"):
    b, c, h, w = cx.static_shape(x)
    s = blocksize
    if mode == "DCR":
        y = x.reshape(b, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(b, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(b, c // (s * s), h * s, w * s)


@converter("SpaceToDepth", 1)
def space_to_depth(cx, x, *, blocksize: int, mode: str = "DCR"):
    if mode not in ("DCR", "CRD"):
        raise cx.fail(f"mode must be DCR or CRD, got {mode!r}")
    b, c, h, w = cx.static_shape(x)
    s = blocksize
    order = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    y = x.reshape(b, c, h // s, s, w // s, s).permute(*order)
    return y.reshape(b, c * s * s, h // s, w // s)


@converter("ReverseSequence", 10)
def reverse_sequence(cx, x, lengths, *, batch_axis: int = 1, time_axis: int = 0):
    shape = cx.static_shape(x)
    t = shape[time_axis]
    steps = torch.arange(t).reshape([t if i == time_axis else 1 for i in range(len(shape))])
    lens = lengths.reshape([shape[batch_axis] if i == batch_axis else 1
                            for i in range(len(shape))])  # fmt: skip
    index = torch.where(steps < lens, lens - 1 - steps, steps).expand(shape)
    return torch.gather(x, time_axis, index)


@converter("TopK", 10)
def top_k(cx, x, k, *, axis: int = -1, largest: int = 1, sorted: int = 1):
    kk = cx.need(k)[0]
    axis = axis + cx.rank(x) if axis < 0 else axis
    if largest:
        # equal values: the lower index first, as the standard asks
        order = torch.argsort(x, dim=axis, descending=True, stable=True)
    else:
        order = torch.argsort(x, dim=axis, stable=True)
    idx = order.narrow(axis, 0, kk)
    return torch.gather(x, axis, idx), idx


@converter("TopK", 1)
def top_k_1(cx, x, *, k: int, axis: int = -1):
    return top_k(cx, x, torch.tensor([k]), axis=axis)


@converter("Unique", 11)
def unique(cx, x, *, axis: int | None = None, sorted: int = 1, _outputs: int = 4):
    c = cx.need_const(x)
    y, idx, inv, counts = np.unique(c, return_index=True, return_inverse=True,
                                    return_counts=True, axis=axis)  # fmt: skip
    if not sorted:
        order = np.argsort(idx)
        y = np.take(y, order, axis=0 if axis is None else axis)
        remap = np.argsort(order)
        idx, inv, counts = idx[order], remap[inv.reshape(-1)], counts[order]
    return tuple(dtypes.from_numpy(a) for a in (y, idx.astype(np.int64),
                                                 inv.reshape(-1).astype(np.int64),
                                                 counts.astype(np.int64)))  # fmt: skip


def _tensor_scatter(past, update, write_indices, axis: int, circular: bool):
    batch, max_len, seq = past.shape[0], past.shape[axis], update.shape[axis]
    if write_indices is None:
        starts = torch.zeros(batch, dtype=torch.int64)
    else:
        starts = write_indices.reshape(-1).long()
    pos = starts[:, None] + torch.arange(seq)
    if circular:
        pos = pos % max(max_len, 1)
    elif seq and (bool((starts < 0).any()) or int(starts.max()) + seq > max_len):
        raise ValueError(f"TensorScatter: linear mode needs 0 <= write_indices and write_indices "
                         f"+ {seq} <= {max_len}, got write_indices {starts.tolist()}")  # fmt: skip
    out = past.clone()
    out.movedim(axis, 1)[torch.arange(batch)[:, None], pos] = update.movedim(axis, 1).to(out.dtype)
    return out


@converter("TensorScatter", 24)
def tensor_scatter(cx, past_cache, update, write_indices=None, *, mode: str = "linear",
                   axis: int = -2):  # fmt: skip
    """``update`` written into a copy of ``past_cache`` along ``axis`` from each batch entry's
    write index (wrapping around in circular mode)."""
    (a,) = norm_axes([axis], cx.rank(past_cache))
    if a == 0:
        raise cx.fail("axis must not be 0 (the batch dimension)")
    if mode not in ("linear", "circular"):
        raise cx.fail(f"mode must be 'linear' or 'circular', got {mode!r}")
    return cx.call(_tensor_scatter, past_cache, update, write_indices, a, mode == "circular")
