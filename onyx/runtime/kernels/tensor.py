"""Tensor kernels: shape manipulation, indexing, gather/scatter, padding and constants.

These ops move elements without computing on them, so they are type-agnostic: the data is never
cast, and strings (object arrays), bool, bfloat16, float8 and the sub-byte types pass through.
Views of the input are returned wherever numpy can give one (Reshape, Transpose, Squeeze, ...).
"""

from __future__ import annotations

import math

import numpy as np

from onyx.dtypes import to_numpy
from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import channels_last_view
from onyx.runtime.kernels.registry import kernel
from onyx.runtime.memory import check_allocation

_INT64 = np.dtype(np.int64)


# --- helpers -------------------------------------------------------------------------------
def _axis(axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` made non-negative; KernelError unless it is in [-rank, rank-1]."""
    if not -rank <= axis < rank:
        raise KernelError(
            f"{what} {axis} is out of range for rank {rank}: expected [-{rank}, {rank - 1}]"
        )
    return axis + rank if axis < 0 else axis


def _ints(value) -> list[int]:
    """A 1-D (or 0-d) integer tensor or list as a Python list of ints."""
    return np.asarray(value).reshape(-1).tolist() if value is not None else []


def _scalar(value, what: str):
    """The single element of a 0-d / 1-element tensor."""
    a = np.asarray(value)
    if a.size != 1:
        raise KernelError(f"{what} must hold exactly one element, got shape {a.shape}")
    return a.reshape(-1)[0]


def _fill_value(dtype: np.dtype):
    """The standard's default padding / zero value for ``dtype`` (empty string for strings)."""
    return "" if dtype == object else np.zeros((), dtype)


def _index_error(op: str, indices, axis, dim, exc=None) -> KernelError:
    """A KernelError naming the first out-of-range value of ``indices`` along ``axis``."""
    idx = np.asarray(indices)
    bad = (idx < -dim) | (idx >= dim)
    if bad.any():
        value = idx[bad].reshape(-1)[0]
        return KernelError(
            f"{op}: index {value} is out of range for axis {axis} of size {dim}: "
            f"expected a value in [{-dim}, {dim - 1}]"
        )
    return KernelError(f"{op}: index out of range: {exc}")


def _check_integer(indices, op: str):
    if np.asarray(indices).dtype.kind not in "iu":
        raise KernelError(f"{op}: indices must be an integer tensor, got {indices.dtype}")


# --- constants -----------------------------------------------------------------------------
def _densify(sparse) -> np.ndarray:
    if not isinstance(sparse, dict):
        raise KernelError(
            f"Constant: sparse_value must arrive as a dict with values/indices/dims, "
            f"got {type(sparse).__name__}"
        )
    values = np.asarray(sparse["values"])
    indices = np.asarray(sparse["indices"], dtype=np.int64)
    dims = tuple(int(d) for d in sparse["dims"])
    dense = np.full(dims, _fill_value(values.dtype), dtype=values.dtype)
    if values.size:
        try:
            if indices.ndim == 1:  # linearized positions
                dense.reshape(-1)[indices] = values.reshape(-1)
            else:  # [NNZ, rank] coordinates
                dense[tuple(indices.T)] = values.reshape(-1)
        except IndexError as e:
            raise KernelError(f"Constant: sparse_value index out of range for dims {dims}: {e}")
    return dense


@kernel("Constant", 1)
class Constant:
    """The tensor given by whichever one of the value attributes is set (computed once)."""

    def __init__(
        self,
        *,
        value=None,
        sparse_value=None,
        value_float=None,
        value_floats=None,
        value_int=None,
        value_ints=None,
        value_string=None,
        value_strings=None,
    ):
        given = {
            k: v
            for k, v in {
                "value": value,
                "sparse_value": sparse_value,
                "value_float": value_float,
                "value_floats": value_floats,
                "value_int": value_int,
                "value_ints": value_ints,
                "value_string": value_string,
                "value_strings": value_strings,
            }.items()
            if v is not None
        }
        if len(given) != 1:
            raise KernelError(
                f"Constant needs exactly one value attribute, got {sorted(given) or 'none'}"
            )
        if value is not None:
            self.value = np.asarray(value)
        elif sparse_value is not None:
            self.value = _densify(sparse_value)
        elif value_float is not None:
            self.value = np.array(value_float, dtype=np.float32)
        elif value_floats is not None:
            self.value = np.array(value_floats, dtype=np.float32).reshape(-1)
        elif value_int is not None:
            self.value = np.array(value_int, dtype=np.int64)
        elif value_ints is not None:
            self.value = np.array(value_ints, dtype=np.int64).reshape(-1)
        elif value_string is not None:
            self.value = np.array(_text(value_string), dtype=object)
        else:
            strings = [_text(s) for s in value_strings]
            self.value = np.empty(len(strings), dtype=object)
            self.value[:] = strings

    def __call__(self):
        return self.value


def _text(s):
    return s.decode() if isinstance(s, bytes) else s


@kernel("ConstantOfShape", 9)
class ConstantOfShape:
    """A tensor of the given shape filled with the single element of ``value`` (float 0)."""

    def __init__(self, *, value=None):
        v = np.zeros(1, np.float32) if value is None else np.asarray(value)
        if v.size != 1:
            raise KernelError(f"ConstantOfShape: value must hold one element, got shape {v.shape}")
        self.fill = v.reshape(-1)[0]
        self.dtype = v.dtype

    def __call__(self, shape):
        if np.ndim(shape) != 1 or np.size(shape) > 64:
            raise KernelError(
                f"ConstantOfShape: the shape input must be 1-D with at most 64 entries (numpy's "
                f"rank limit), got a tensor of shape {list(np.shape(shape))}"
            )
        dims = _ints(shape)
        if any(d < 0 for d in dims):
            raise KernelError(f"ConstantOfShape: shape must not be negative, got {dims}")
        check_allocation(dims, self.dtype)
        return np.full(dims, self.fill, dtype=self.dtype)


@kernel("Range", 11)
def range_(start, limit, delta):
    dtype = np.asarray(start).dtype
    s, lim, d = (_scalar(v, n) for v, n in ((start, "start"), (limit, "limit"), (delta, "delta")))
    if dtype.kind in "iu":
        s, lim, d = int(s), int(lim), int(d)
        if d == 0:
            raise KernelError("Range: delta must not be 0")
        n = max(-((s - lim) // d), 0)  # ceil((lim - s) / d) in exact integers
        check_allocation([n], dtype)
        return (np.arange(n, dtype=np.int64) * d + s).astype(dtype, copy=False)
    s, lim, d = float(s), float(lim), float(d)
    if d == 0:
        raise KernelError("Range: delta must not be 0")
    n = max(math.ceil((lim - s) / d), 0)
    check_allocation([n], dtype)
    work = dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.dtype(np.float32)
    out = np.arange(n, dtype=work) * work.type(d) + work.type(s)
    return out.astype(dtype, copy=False)


@kernel("EyeLike", 9)
def eye_like(x, *, dtype=None, k=0):
    if x.ndim != 2:
        raise KernelError(f"EyeLike: input must be 2-D, got shape {x.shape}")
    out_type = to_numpy(dtype) if dtype is not None else x.dtype
    return np.eye(x.shape[0], x.shape[1], k=k, dtype=out_type)


# --- shape ---------------------------------------------------------------------------------
@kernel("Shape", 1, 15)
def shape(data, *, start=0, end=None):
    dims = data.shape
    if start == 0 and end is None:
        return np.array(dims, dtype=np.int64)
    r = len(dims)
    s = min(max(start + r if start < 0 else start, 0), r)
    e = r if end is None else min(max(end + r if end < 0 else end, 0), r)
    return np.array(dims[s:e], dtype=np.int64)


@kernel("Size", 1)
def size(data):
    return np.array(data.size, dtype=np.int64)


def _reshape(data, dims: list[int], allowzero: int):
    if 0 in dims and not allowzero:
        try:
            dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        except IndexError:
            raise KernelError(
                f"Reshape: target shape {dims} copies a dimension (0) beyond the rank of the "
                f"data shape {list(data.shape)}"
            ) from None
    if not data.flags.c_contiguous and data.size >= threads.GATHER_MIN and threads.short_runs(data):
        moved = _copied_for(data, dims)
        if moved is not None:
            data = moved
    try:
        return data.reshape(dims)
    except ValueError:
        pass
    # numpy refuses -1 next to a 0 dim (allowzero) and gives terse messages: work it out here
    unknown = [i for i, d in enumerate(dims) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in dims):
        raise KernelError(
            f"Reshape: target shape {dims} may hold at most one -1 and no other negative value "
            f"(data shape {list(data.shape)})"
        )
    known = math.prod(d for d in dims if d != -1)
    if unknown and known == 0 and data.size == 0:
        raise KernelError(
            f"Reshape: cannot infer the -1 of target shape {dims} for data shape "
            f"{list(data.shape)} with 0 elements"
        )
    raise KernelError(
        f"Reshape: cannot reshape data of shape {list(data.shape)} ({data.size} elements) "
        f"into target shape {dims}"
    )


def _copied_for(data, dims: list[int]):
    """``data`` copied into C order by the compiled gather (threads.gathered) where reshaping
    it to ``dims`` needs a copy (numpy's would be slower); else None (a view will do, or the
    gather does not apply, or ``dims`` is not a valid target: numpy then says so)."""
    known = math.prod(d for d in dims if d != -1)
    if dims.count(-1) > 1 or any(d < -1 for d in dims) or not known or data.size % known:
        return None
    target = [data.size // known if d == -1 else d for d in dims]
    if math.prod(target) != data.size:
        return None
    # a view where every boundary between the runs of the data's memory is one of the target's
    ends, edge = set(), 1
    for d in target:
        edge *= d
        ends.add(edge)
    edge = 1
    for n, _ in threads.strided_runs(data.shape, data.strides)[:-1]:
        edge *= n
        if edge not in ends:
            return threads.gathered(data)
    return None


@kernel("Reshape", 1)
def reshape_1(data, *, shape=None, consumed_inputs=None):
    if shape is None:
        raise KernelError("Reshape-1 needs the 'shape' attribute")
    return _reshape(data, list(shape), 0)


@kernel("Reshape", 5, 14)
def reshape(data, shape, *, allowzero=0):
    return _reshape(data, shape.tolist() if shape.ndim == 1 else _ints(shape), allowzero)


@kernel("Flatten", 1)
def flatten(x, *, axis=1):
    r = x.ndim
    if not -r <= axis <= r:
        raise KernelError(
            f"Flatten: axis {axis} is out of range for rank {r}: expected [-{r}, {r}]"
        )
    if axis < 0:
        axis += r
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _squeeze(data, axes):
    if axes is None or len(axes) == 0:
        return data.reshape([d for d in data.shape if d != 1])
    r = data.ndim
    norm = {_axis(int(a), r, "Squeeze axis") for a in axes}
    for a in norm:
        if data.shape[a] != 1:
            raise KernelError(
                f"Squeeze: axis {a} has size {data.shape[a]}, expected 1 (data shape {list(data.shape)})"
            )
    return data.reshape([d for i, d in enumerate(data.shape) if i not in norm])


@kernel("Squeeze", 1)
def squeeze_1(data, *, axes=None):
    return _squeeze(data, axes)


@kernel("Squeeze", 13)
def squeeze(data, axes=None):
    return _squeeze(data, None if axes is None else axes.tolist())


def _unsqueeze(data, axes):
    r = data.ndim + len(axes)
    norm = sorted(_axis(int(a), r, "Unsqueeze axis") for a in axes)
    if len(set(norm)) != len(norm):
        raise KernelError(f"Unsqueeze: axes {list(axes)} name the same output axis twice")
    dims = list(data.shape)
    for a in norm:
        dims.insert(a, 1)
    return data.reshape(dims)


@kernel("Unsqueeze", 1)
def unsqueeze_1(data, *, axes):
    return _unsqueeze(data, axes)


@kernel("Unsqueeze", 13)
def unsqueeze(data, axes):
    return _unsqueeze(data, axes.reshape(-1).tolist())


@kernel("Transpose", 1)
def transpose(data, *, perm=None):
    if perm is None:
        return data.transpose()
    if sorted(perm) != list(range(data.ndim)):
        raise KernelError(
            f"Transpose: perm {list(perm)} is not a permutation of the {data.ndim} axes "
            f"of data shape {list(data.shape)}"
        )
    return data.transpose(perm)


def _concat(inputs, axis):
    if not inputs:
        raise KernelError("Concat needs at least one input")
    if len(inputs) == 1:
        _axis(axis, inputs[0].ndim)
        return inputs[0]
    joined = _concat_by_blocks(inputs, axis)
    if joined is not None:
        return joined
    try:
        return np.concatenate(inputs, axis=axis)
    except (ValueError, np.exceptions.AxisError):
        shapes = [list(x.shape) for x in inputs]
        raise KernelError(
            f"Concat: inputs must agree in rank and in every dimension but axis {axis}, "
            f"got shapes {shapes}"
        ) from None


_BLOCKS_MIN = 1 << 16  # output elements from which Concat goes block by block
_BLOCKS_MAX = 64  # blocks per input (the product of the dims before the axis) it takes so


def _concat_by_blocks(inputs, axis):
    """np.concatenate's result, each input's block of it (one per index before ``axis``)
    copied on its own, or None where that is not faster. It is where the session has threads
    (a copy is bound by memory bandwidth, which a second core adds to: 3.2 MB in 226 us on one
    thread, 101 on two; ``threads.copy``), and for channel-last views joined along the
    channels (Segformer's decoder joins a transposed MLP output with three resized maps):
    numpy copies such a view an element at a time along its strides (5.1 ms for 256 channels
    of 56x56), the compiled layout change by tiles of channels and pixels (0.49 ms). Other
    views are copied whole, each into its part (``_concat_gathered``)."""
    first = inputs[0]
    rank = first.ndim
    if not -rank <= axis < rank:
        return None
    axis %= rank
    rest = first.shape[:axis] + first.shape[axis + 1 :]
    for x in inputs:
        if x.ndim != rank or x.dtype != first.dtype or x.shape[:axis] + x.shape[axis + 1 :] != rest:
            return None  # (np.concatenate says what is wrong)
    total = sum(x.shape[axis] for x in inputs)
    shape = (*first.shape[:axis], total, *first.shape[axis + 1 :])
    size, outer = math.prod(shape), math.prod(shape[:axis])
    if size < _BLOCKS_MIN:
        return None
    views = axis == 1 and first.dtype in compiled.DTYPES and any(map(channels_last_view, inputs))
    if not views and not all(x.flags.c_contiguous for x in inputs):
        return _concat_gathered(inputs, axis, shape)
    if outer > _BLOCKS_MAX:
        return None
    jit = compiled.kernels(size) if views else None
    found = threads.current()
    if jit is None and (found is None or found.size == 1):
        return None
    out = np.empty(shape, first.dtype)
    rows = out.reshape(outer, -1)
    inner = size // (outer * total)
    c0 = 0
    for x in inputs:
        c1 = c0 + x.shape[axis]
        for o in range(outer):
            block = rows[o, c0 * inner : c1 * inner]
            if jit is not None and channels_last_view(x):  # (o: an image; its block C-contiguous)
                jit.from_channels_last(x[o : o + 1].transpose(0, 2, 3, 1),
                                       block.reshape(1, c1 - c0, *shape[2:]))  # fmt: skip
            elif x.flags.c_contiguous:
                threads.copy(x.reshape(outer, -1)[o], block)
            else:
                block.reshape(x.shape[axis:])[...] = x[np.unravel_index(o, shape[:axis])]
        c0 = c1
    return out


def _concat_gathered(inputs, axis, shape):
    """np.concatenate's result, each input copied whole into its part: by
    ``threads.gather_into`` where its runs are short, else by np.copyto. (Swin's shifted
    windows join column slices of a channel-last image, its patch merging every other row and
    column: a copy a block took 230-400 us for the first stage's, np.copyto 40-60, 2 threads.)"""
    out = np.empty(shape, inputs[0].dtype)
    lead = (slice(None),) * axis
    c0 = 0
    for x in inputs:
        c1 = c0 + x.shape[axis]
        part = out[(*lead, slice(c0, c1))]
        if not threads.gather_into(x, part):
            np.copyto(part, x)
        c0 = c1
    return out


@kernel("Concat", 1)
def concat_1(*inputs, axis=1):
    return _concat(inputs, axis)


@kernel("Concat", 4)
def concat(*inputs, axis):
    return _concat(inputs, axis)


def _split(x, sizes, axis, n_outputs):
    axis = _axis(axis, x.ndim, "Split axis")
    dim = x.shape[axis]
    if sizes is None:
        if not n_outputs:
            raise KernelError(
                "Split: without 'split' or 'num_outputs' the number of outputs must be known"
            )
        if dim % n_outputs:
            raise KernelError(
                f"Split: axis {axis} of size {dim} cannot be split into {n_outputs} equal parts"
            )
        sizes = [dim // n_outputs] * n_outputs
    if any(s < 0 for s in sizes) or sum(sizes) != dim:
        raise KernelError(
            f"Split: split sizes {sizes} must be non-negative and sum to {dim}, the size of axis {axis}"
        )
    lead = (slice(None),) * axis
    out, pos = [], 0
    for s in sizes:
        out.append(x[lead + (slice(pos, pos + s),)])
        pos += s
    return tuple(out)


@kernel("Split", 1, 2)
def split_1(x, split_input=None, *, split=None, axis=0, _outputs=None):
    sizes = _ints(split_input) if split_input is not None else split
    return _split(x, None if sizes is None else list(sizes), axis, _outputs)


@kernel("Split", 13)
def split_13(x, split=None, *, axis=0, _outputs=None):
    return _split(x, None if split is None else _ints(split), axis, _outputs)


@kernel("Split", 18)
def split_18(x, split=None, *, axis=0, num_outputs=None, _outputs=None):
    if split is not None:
        if num_outputs is not None:
            raise KernelError("Split: give either the 'split' input or 'num_outputs', not both")
        return _split(x, _ints(split), axis, _outputs)
    if num_outputs is None:
        return _split(x, None, axis, _outputs)
    if num_outputs < 1:
        raise KernelError(f"Split: num_outputs must be positive, got {num_outputs}")
    dim = x.shape[_axis(axis, x.ndim, "Split axis")]
    chunk = -(-dim // num_outputs)
    sizes = [chunk] * (num_outputs - 1) + [dim - chunk * (num_outputs - 1)]
    if sizes[-1] < 0:
        raise KernelError(
            f"Split: axis {axis} of size {dim} cannot be split into {num_outputs} parts of "
            f"size {chunk} with a smaller last part"
        )
    return _split(x, sizes, axis, num_outputs)


# --- slicing -------------------------------------------------------------------------------
def _slice(data, starts, ends, axes, steps):
    r = data.ndim
    n = len(starts)
    if len(ends) != n:
        raise KernelError(f"Slice: starts {starts} and ends {ends} differ in length")
    axes = list(range(n)) if axes is None else axes
    steps = [1] * n if steps is None else steps
    if len(axes) != n or len(steps) != n:
        raise KernelError(
            f"Slice: starts, ends, axes and steps must have one length, got {n}, {len(ends)}, "
            f"{len(axes)}, {len(steps)}"
        )
    key = [slice(None)] * r
    for start, end, axis, step in zip(starts, ends, axes, steps):
        a = _axis(axis, r, "Slice axis")
        dim = data.shape[a]
        if step == 0:
            raise KernelError(f"Slice: step for axis {a} must not be 0")
        if start < 0:
            start += dim
        if end < 0:
            end += dim
        if step > 0:
            key[a] = slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
        else:
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
            key[a] = slice(start, end if end >= 0 else None, step)
    return data[tuple(key)]


@kernel("Slice", 1)
def slice_1(data, *, starts, ends, axes=None):
    return _slice(data, list(starts), list(ends), None if axes is None else list(axes), None)


@kernel("Slice", 10)
def slice_(data, starts, ends, axes=None, steps=None):
    return _slice(
        data,
        _ints(starts),
        _ints(ends),
        None if axes is None else _ints(axes),
        None if steps is None else _ints(steps),
    )


# --- gather --------------------------------------------------------------------------------
@kernel("Gather", 1)
def gather(data, indices, *, axis=0):
    r = data.ndim
    if axis < 0 or axis >= r:
        axis = _axis(axis, r, "Gather axis")
    if indices.ndim == 0:  # the common scalar index: a view
        i = int(indices)
        dim = data.shape[axis]
        if not -dim <= i < dim:
            raise _index_error("Gather", indices, axis, dim)
        return data[(slice(None),) * axis + (i, Ellipsis)]
    if indices.dtype.kind not in "iu":
        _check_integer(indices, "Gather")
    try:
        return np.take(data, indices, axis=axis)
    except IndexError as e:
        raise _index_error("Gather", indices, axis, data.shape[axis], e) from None


def _element_key(data, indices, axis, op):
    """Index arrays addressing data[..., indices[...] on axis, ...] for each position of indices."""
    r = data.ndim
    if indices.ndim != r:
        raise KernelError(
            f"{op}: indices must have the rank of data ({r}), got shape {list(indices.shape)}"
        )
    _check_integer(indices, op)
    axis = _axis(axis, r, f"{op} axis")
    key = []
    for d, n in enumerate(indices.shape):
        if d == axis:
            key.append(indices)
            continue
        if n > data.shape[d]:
            raise KernelError(
                f"{op}: indices shape {list(indices.shape)} exceeds data shape "
                f"{list(data.shape)} on axis {d}"
            )
        shape = [1] * r
        shape[d] = n
        key.append(np.arange(n).reshape(shape))
    return tuple(key), axis


@kernel("GatherElements", 11)
def gather_elements(data, indices, *, axis=0):
    key, axis = _element_key(data, indices, axis, "GatherElements")
    try:
        return data[key]
    except IndexError as e:
        raise _index_error("GatherElements", indices, axis, data.shape[axis], e) from None


def _nd_index_error(op, data, indices, first_axis, e) -> KernelError:
    for i in range(indices.shape[-1]):
        dim = data.shape[first_axis + i]
        comp = indices[..., i]
        if ((comp < -dim) | (comp >= dim)).any():
            return _index_error(op, comp, first_axis + i, dim, e)
    return KernelError(f"{op}: index out of range: {e}")


@kernel("GatherND", 11, 12)
def gather_nd(data, indices, *, batch_dims=0):
    b, r, q = batch_dims, data.ndim, indices.ndim
    _check_integer(indices, "GatherND")
    if q < 1 or not 0 <= b < min(q, r):
        raise KernelError(
            f"GatherND: batch_dims {b} must be in [0, min(rank(data), rank(indices))) for "
            f"data shape {list(data.shape)} and indices shape {list(indices.shape)}"
        )
    k = indices.shape[-1]
    if k > r - b or data.shape[:b] != indices.shape[:b]:
        raise KernelError(
            f"GatherND: indices shape {list(indices.shape)} does not fit data shape "
            f"{list(data.shape)} with batch_dims {b} (the first {b} dims must agree and the "
            f"last dim of indices must be at most {r - b})"
        )
    try:
        if b == 0 and k > 0:
            return data[tuple(indices[..., i] for i in range(k))]
        batch = math.prod(data.shape[:b])
        m = math.prod(indices.shape[b:-1])
        d = data.reshape((batch,) + data.shape[b:])
        idx = indices.reshape(batch, m, k)
        key = (np.arange(batch).reshape(batch, 1),) + tuple(idx[..., i] for i in range(k))
        out = d[key] if k else np.broadcast_to(d[:, None], (batch, m) + d.shape[1:])
    except IndexError as e:
        raise _nd_index_error("GatherND", data, indices, b, e) from None
    return out.reshape(data.shape[:b] + indices.shape[b:-1] + data.shape[b + k :])


# --- scatter -------------------------------------------------------------------------------
_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(out, key, updates, reduction, op):
    if reduction == "none":
        out[key] = updates
        return out
    ufunc = _REDUCE.get(reduction)
    if ufunc is None:
        raise KernelError(
            f"{op}: reduction must be one of none, add, mul, max, min; got {reduction!r}"
        )
    if out.dtype.kind in "fciub" or out.dtype == object:
        ufunc.at(out, key, updates)
        return out
    # ml_dtypes (bfloat16, float8, int4): reduce in float32 and cast back
    work = out.astype(np.float32)
    ufunc.at(work, key, updates.astype(np.float32))
    return work.astype(out.dtype)


@kernel("ScatterElements", 11, 16)
def scatter_elements(data, indices, updates, *, axis=0, reduction="none"):
    if indices.shape != updates.shape:
        raise KernelError(
            f"ScatterElements: indices shape {list(indices.shape)} and updates shape "
            f"{list(updates.shape)} must be equal"
        )
    key, axis = _element_key(data, indices, axis, "ScatterElements")
    try:
        return _scatter_into(data.copy(), key, updates, reduction, "ScatterElements")
    except IndexError as e:
        raise _index_error("ScatterElements", indices, axis, data.shape[axis], e) from None


@kernel("Scatter", 9)
def scatter(data, indices, updates, *, axis=0):
    return scatter_elements(data, indices, updates, axis=axis)


@kernel("ScatterND", 11, 16)
def scatter_nd(data, indices, updates, *, reduction="none"):
    _check_integer(indices, "ScatterND")
    k = indices.shape[-1] if indices.ndim else -1
    if indices.ndim < 1 or k > data.ndim:
        raise KernelError(
            f"ScatterND: indices shape {list(indices.shape)} must have rank >= 1 and a last "
            f"dimension at most rank(data) = {data.ndim}"
        )
    expected = indices.shape[:-1] + data.shape[k:]
    if updates.shape != expected:
        raise KernelError(
            f"ScatterND: updates shape {list(updates.shape)} must be indices.shape[:-1] + "
            f"data.shape[{k}:] = {list(expected)}"
        )
    key = tuple(indices[..., i] for i in range(k))
    try:
        return _scatter_into(data.copy(), key, updates, reduction, "ScatterND")
    except IndexError as e:
        raise _nd_index_error("ScatterND", data, indices, 0, e) from None


@kernel("TensorScatter", 24)
def tensor_scatter(past_cache, update, write_indices=None, *, mode="linear", axis=-2):
    r = past_cache.ndim
    axis = _axis(axis, r, "TensorScatter axis")
    if axis == 0:
        raise KernelError("TensorScatter: axis must not be 0 (the batch dimension)")
    if mode not in ("linear", "circular"):
        raise KernelError(f"TensorScatter: mode must be 'linear' or 'circular', got {mode!r}")
    if update.ndim != r or any(
        u != p for d, (u, p) in enumerate(zip(update.shape, past_cache.shape)) if d != axis
    ):
        raise KernelError(
            f"TensorScatter: update shape {list(update.shape)} must equal past_cache shape "
            f"{list(past_cache.shape)} except on axis {axis}"
        )
    batch, max_len, seq = past_cache.shape[0], past_cache.shape[axis], update.shape[axis]
    if seq > max_len:
        raise KernelError(
            f"TensorScatter: update sequence length {seq} exceeds the cache length {max_len}"
        )
    if write_indices is None:
        starts = np.zeros(batch, np.int64)
    else:
        starts = np.asarray(write_indices).reshape(-1).astype(np.int64)
        if starts.shape != (batch,):
            raise KernelError(
                f"TensorScatter: write_indices must have shape [{batch}], got "
                f"{list(np.shape(write_indices))}"
            )
    pos = starts[:, None] + np.arange(seq)
    if mode == "circular":
        pos %= max(max_len, 1)
    elif seq and (starts.min() < 0 or starts.max() + seq > max_len):
        raise KernelError(
            f"TensorScatter: linear mode needs 0 <= write_indices and write_indices + "
            f"{seq} <= {max_len}, got write_indices {starts.tolist()}"
        )
    out = past_cache.copy()
    np.moveaxis(out, axis, 1)[np.arange(batch)[:, None], pos] = np.moveaxis(update, axis, 1)
    return out


# --- padding, tiling, broadcasting ---------------------------------------------------------
def _pad(data, pads, mode, value, axes):
    r = data.ndim
    axes = list(range(r)) if axes is None else [_axis(a, r, "Pad axis") for a in axes]
    n = len(axes)
    if len(pads) != 2 * n:
        raise KernelError(
            f"Pad: pads must hold 2 * {n} values for data shape {list(data.shape)}, got {len(pads)}"
        )
    if not any(pads):
        return data
    padded = list(data.shape)
    for i, a in enumerate(axes):
        padded[a] += pads[i] + pads[i + n]
    check_allocation([max(v, 0) for v in padded], data.dtype)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise KernelError(f"Pad: mode must be constant, reflect, edge or wrap; got {mode!r}")
    before, after = [0] * r, [0] * r
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[i + n]
    if min(before) < 0 or min(after) < 0:  # negative pads crop first
        crop = []
        for d, (b, e) in enumerate(zip(before, after)):
            lo, hi = max(-b, 0), data.shape[d] - max(-e, 0)
            if hi < lo:
                raise KernelError(
                    f"Pad: negative pads {pads} remove more than the {data.shape[d]} elements "
                    f"of axis {d}"
                )
            crop.append(slice(lo, hi))
        data = data[tuple(crop)]
        before = [max(b, 0) for b in before]
        after = [max(e, 0) for e in after]
    if mode == "constant":
        shape = [d + b + e for d, b, e in zip(data.shape, before, after)]
        fill = _fill_value(data.dtype) if value is None else value
        out = np.full(shape, fill, dtype=data.dtype)
        out[tuple(slice(b, b + d) for b, d in zip(before, data.shape))] = data
        return out
    for d, (b, e) in enumerate(zip(before, after)):
        if (b or e) and data.shape[d] == 0:
            raise KernelError(f"Pad: {mode} mode cannot pad axis {d}, which is empty")
    return np.pad(data, list(zip(before, after)), mode=mode)


@kernel("Pad", 1)
def pad_1(data, *, paddings, mode="constant", value=0.0):
    return _pad(data, list(paddings), mode, _cast_fill(value, data.dtype), None)


@kernel("Pad", 2)
def pad_2(data, *, pads, mode="constant", value=0.0):
    return _pad(data, list(pads), mode, _cast_fill(value, data.dtype), None)


def _cast_fill(value, dtype):
    return np.array(value).astype(dtype) if dtype != object else value


@kernel("Pad", 11, 18)
def pad(data, pads, constant_value=None, axes=None, *, mode="constant"):
    value = None
    if constant_value is not None and np.size(constant_value):
        value = _scalar(constant_value, "Pad constant_value")
    return _pad(data, _ints(pads), mode, value, None if axes is None else _ints(axes))


@kernel("Tile", 1)
def tile_1(x, tiles, axis):
    a = _axis(int(_scalar(axis, "Tile axis")), x.ndim, "Tile axis")
    reps = [1] * x.ndim
    reps[a] = int(_scalar(tiles, "Tile tiles"))
    return tile(x, np.array(reps))


@kernel("Tile", 6)
def tile(x, repeats):
    reps = _ints(repeats)
    if len(reps) != x.ndim or any(t < 0 for t in reps):
        raise KernelError(
            f"Tile: repeats {reps} must hold one non-negative count per axis of shape "
            f"{list(x.shape)}"
        )
    check_allocation([a * b for a, b in zip(x.shape, reps)], x.dtype)
    return np.tile(x, reps)


@kernel("Expand", 8)
def expand(x, shape):
    dims = shape.tolist() if shape.ndim == 1 else _ints(shape)
    xs = x.shape
    n = max(len(xs), len(dims))
    a = (1,) * (n - len(xs)) + xs
    b = (1,) * (n - len(dims)) + tuple(dims)
    target = []
    for p, q in zip(a, b):
        if p != q and p != 1 and q != 1:
            raise KernelError(
                f"Expand: input shape {list(xs)} cannot be broadcast with shape {dims}"
            )
        target.append(p if q == 1 else q)
    target = tuple(target)
    check_allocation(target, x.dtype)  # a view now, but whoever reads it will materialize it
    return x if target == xs else np.broadcast_to(x, target)


@kernel("Where", 9)
def where(condition, x, y):
    try:
        out = np.where(condition, x, y)
    except ValueError:
        raise KernelError(
            f"Where: shapes {list(condition.shape)}, {list(x.shape)}, {list(y.shape)} "
            f"do not broadcast"
        ) from None
    return out if out.dtype == x.dtype else out.astype(x.dtype)


@kernel("Compress", 9)
def compress(x, condition, *, axis=None):
    cond = np.asarray(condition).reshape(-1).astype(bool, copy=False)
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    else:
        axis = _axis(axis, x.ndim, "Compress axis")
    if len(cond) > x.shape[axis]:  # extra entries select nothing (as onnxruntime does)
        cond = cond[: x.shape[axis]]
    return np.compress(cond, x, axis=axis)


@kernel("NonZero", 9)
def nonzero(x):
    if x.ndim == 0:  # a scalar counts as a 1-element vector (numpy < 2.1 and onnxruntime agree)
        return np.zeros((1, 1 if bool(x) else 0), dtype=np.int64)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@kernel("Unique", 11)
def unique(x, *, axis=None, sorted=1, _outputs=4):
    if axis is None and sorted and _outputs == 1:  # only Y wanted: skip the index bookkeeping
        return (np.unique(x.reshape(-1)),)
    if axis is None:
        flat = x.reshape(-1)
        if flat.size == 0:
            empty = np.zeros(0, np.int64)
            return flat, empty, empty, empty
        values, first, inverse, counts = np.unique(
            flat, return_index=True, return_inverse=True, return_counts=True
        )
        inverse = inverse.reshape(-1)
    else:
        axis = _axis(axis, x.ndim, "Unique axis")
        values, first, inverse, counts = _unique_axis(x, axis)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        values = np.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return (
        values,
        first.astype(np.int64, copy=False),
        inverse.astype(np.int64, copy=False),
        counts.astype(np.int64, copy=False),
    )


def _unique_axis(x, axis):
    """np.unique along an axis for any element type: rows are compared through integer codes."""
    n = x.shape[axis]
    rows = np.moveaxis(x, axis, 0).reshape(n, -1)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return x, empty, empty, empty
    if rows.shape[1] == 0:
        codes = np.zeros((n, 1), np.int64)
    else:
        codes = np.empty(rows.shape, np.int64)
        for j in range(rows.shape[1]):  # per column, not per element
            codes[:, j] = np.unique(rows[:, j], return_inverse=True)[1].reshape(-1)
    order = np.lexsort(codes.T[::-1])  # stable: equal rows keep their input order
    ordered = codes[order]
    starts = np.concatenate([[True], (ordered[1:] != ordered[:-1]).any(axis=1)])
    group = np.cumsum(starts) - 1
    first = order[starts]
    inverse = np.empty(n, np.int64)
    inverse[order] = group
    counts = np.diff(np.append(np.flatnonzero(starts), n))
    return np.take(x, first, axis=axis), first, inverse, counts


@kernel("OneHot", 9, 11)
def one_hot(indices, depth, values, *, axis=-1):
    d = int(_scalar(depth, "OneHot depth"))
    if d < 1:
        raise KernelError(f"OneHot: depth must be positive, got {d}")
    vals = np.asarray(values).reshape(-1)
    if vals.size != 2:
        raise KernelError(f"OneHot: values must hold [off_value, on_value], got {vals.size} items")
    r = indices.ndim
    if not -r - 1 <= axis <= r:
        raise KernelError(f"OneHot: axis {axis} is out of range: expected [{-r - 1}, {r}]")
    if axis < 0:
        axis += r + 1
    idx = indices.astype(np.int64, copy=False)
    idx = np.where(idx < 0, idx + d, idx)
    shape = [1] * (r + 1)
    shape[axis] = d
    check_allocation([*indices.shape, d], vals.dtype)
    mask = np.expand_dims(idx, axis) == np.arange(d).reshape(shape)
    return np.where(mask, vals[1:2].reshape(()), vals[0:1].reshape(()))


@kernel("Trilu", 14)
def trilu(x, k=None, *, upper=1):
    if x.ndim < 2:
        raise KernelError(f"Trilu: input must have rank >= 2, got shape {list(x.shape)}")
    k = 0 if k is None else int(_scalar(k, "Trilu k"))
    n, m = x.shape[-2:]
    offset = np.arange(m)[None, :] - np.arange(n)[:, None]
    keep = offset >= k if upper else offset <= k
    return np.where(keep, x, np.array(_fill_value(x.dtype), dtype=x.dtype))


@kernel("ReverseSequence", 10)
def reverse_sequence(x, sequence_lens, *, batch_axis=1, time_axis=0):
    if x.ndim < 2 or {batch_axis, time_axis} != {0, 1}:
        raise KernelError(
            f"ReverseSequence: batch_axis and time_axis must be 0 and 1 in some order on an "
            f"input of rank >= 2, got {batch_axis}, {time_axis} for shape {list(x.shape)}"
        )
    batch, steps = x.shape[batch_axis], x.shape[time_axis]
    lens = np.asarray(sequence_lens).reshape(-1).astype(np.int64)
    if lens.shape != (batch,) or (lens < 0).any() or (lens > steps).any():
        raise KernelError(
            f"ReverseSequence: sequence_lens must hold {batch} values in [0, {steps}], "
            f"got {lens.tolist()}"
        )
    t = np.arange(steps)[None, :]
    src = np.where(t < lens[:, None], lens[:, None] - 1 - t, t)  # (batch, time)
    b = np.arange(batch)[:, None]
    if batch_axis == 0:
        return x[b, src]
    return x[src.T, b.T]


def _blocks(x, blocksize, op):
    if x.ndim != 4:
        raise KernelError(f"{op}: input must be 4-D [N, C, H, W], got shape {list(x.shape)}")
    if blocksize < 1:
        raise KernelError(f"{op}: blocksize must be positive, got {blocksize}")
    return x.shape


@kernel("DepthToSpace", 1, 11)
def depth_to_space(x, *, blocksize, mode="DCR"):
    b, c, h, w = _blocks(x, blocksize, "DepthToSpace")
    bs = blocksize
    if c % (bs * bs):
        raise KernelError(f"DepthToSpace: channels {c} are not divisible by blocksize² {bs * bs}")
    if mode == "DCR":
        t = x.reshape(b, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        t = x.reshape(b, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise KernelError(f"DepthToSpace: mode must be DCR or CRD, got {mode!r}")
    return t.reshape(b, c // (bs * bs), h * bs, w * bs)


@kernel("SpaceToDepth", 1, 28)
def space_to_depth(x, *, blocksize, mode="DCR"):
    b, c, h, w = _blocks(x, blocksize, "SpaceToDepth")
    bs = blocksize
    if h % bs or w % bs:
        raise KernelError(
            f"SpaceToDepth: height {h} and width {w} must be divisible by blocksize {bs}"
        )
    t = x.reshape(b, c, h // bs, bs, w // bs, bs)
    if mode == "DCR":
        t = t.transpose(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        t = t.transpose(0, 1, 3, 5, 2, 4)
    else:
        raise KernelError(f"SpaceToDepth: mode must be DCR or CRD, got {mode!r}")
    return t.reshape(b, c * bs * bs, h // bs, w // bs)


# --- identity and dropout ------------------------------------------------------------------
@kernel("Identity", 1)
def identity(x):
    return x


@kernel("Dropout", 1)
def dropout_1(data, *, is_test=0, ratio=0.5, consumed_inputs=None, _outputs=2):
    # An inference engine runs these early versions in test mode; the mask is of type T.
    if _outputs < 2:
        return (data,)
    return data, np.ones(data.shape, dtype=data.dtype)


@kernel("Dropout", 7)
def dropout_7(data, *, ratio=0.5, _outputs=2):
    return dropout_1(data, _outputs=_outputs)


@kernel("Dropout", 10)
def dropout_10(data, *, ratio=0.5, _outputs=2):
    if _outputs < 2:
        return (data,)
    return data, np.ones(data.shape, dtype=bool)


@kernel("Dropout", 12)
class Dropout:
    """Identity in inference mode; with training_mode true, a random dropout scaled by 1/(1-ratio).

    With a ``seed`` the node owns a generator seeded once, so a session's successive runs draw
    successive masks (and the first run is reproducible).
    """

    def __init__(self, *, seed=None, _outputs=2):
        self.seed = seed
        self.rng = np.random.RandomState(seed) if seed is not None else np.random.default_rng()
        self.outputs = _outputs

    def __call__(self, data, ratio=None, training_mode=None):
        train = training_mode is not None and bool(_scalar(training_mode, "training_mode"))
        r = 0.5 if ratio is None else float(_scalar(ratio, "Dropout ratio"))
        if not train or r == 0:
            if self.outputs < 2:
                return (data,)
            return data, np.ones(data.shape, dtype=bool)
        if not 0 <= r < 1:
            raise KernelError(f"Dropout: ratio must be in [0, 1), got {r}")
        if isinstance(self.rng, np.random.RandomState):
            draws = self.rng.uniform(0.0, 1.0, data.shape)
        else:
            draws = self.rng.random(data.shape)
        mask = draws >= r
        work = data if data.dtype.kind == "f" else data.astype(np.float32)
        out = np.where(mask, work * (1.0 / (1.0 - r)), 0).astype(data.dtype, copy=False)
        return (out, mask) if self.outputs >= 2 else (out,)
