"""Dataset columns <-> model tensors: one row is one sample, without the batch dimension.

A row's value for an input is a number, a list nested to the input's per-sample rank, or a flat
list reshaped to the declared per-sample shape (one symbolic dim may be inferred from its length).
CSV cells may hold such lists as JSON text; binary cells hold encoded images (Pillow decodes them
to the declared size and layout). Every check is vectorized over the batch with the lists'
lengths; a row that fails one gets a message, and the rest of the batch runs.
Outputs go back as pyarrow list columns nested to their per-sample shape, built from offsets.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np

from onyx import dtypes
from onyx.batch.arrow import from_numpy, to_numpy
from onyx.batch.job import BatchError, pyarrow
from onyx.ir import TensorType


@dataclasses.dataclass(frozen=True)
class Spec:
    """A model input: its column, element type and per-sample shape (None dims are symbolic)."""

    name: str
    column: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None  # None: rank unknown, taken from the data

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype} of any shape"
        return f"{self.dtype}[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def input_specs(graph, columns: dict[str, str]) -> list[Spec]:
    """The specs of the model inputs that ``columns`` feeds (every input without a default)."""
    initialized = set(graph.initializers.values())
    specs = []
    for v in graph.inputs:
        if v in initialized:
            continue
        if not isinstance(v.type, TensorType):
            raise BatchError(f"model input {v.name!r} has type {v.type}; onyx.batch feeds tensors")
        if v.name not in columns:
            raise BatchError(f"model input {v.name!r} has no column; map one with --column")
        shape = None
        if v.type.shape is not None:
            if len(v.type.shape) == 0:
                raise BatchError(f"model input {v.name!r} is a scalar; it has no batch dimension")
            shape = tuple(d if isinstance(d, int) else None for d in v.type.shape[1:])
        specs.append(Spec(v.name, columns[v.name], dtypes.to_numpy(v.type.dtype), shape))
    return specs


@dataclasses.dataclass
class Column:
    """One input decoded: leaf values in row order, each row's start and shape, bad rows."""

    leaf: np.ndarray
    starts: np.ndarray  # (n,) index of each row's first leaf value
    shapes: np.ndarray  # (n, rank) each row's per-sample shape
    bad: dict[int, str]  # batch row index -> why


def decode(array, spec: Spec) -> Column:
    """Decode one column's values (a pyarrow Array or ChunkedArray) for ``spec``."""
    pa = pyarrow()
    pc = pa.compute
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    bad: dict[int, str] = {}
    if n == 0:
        rank = len(spec.shape or ())
        return Column(
            np.empty(0, spec.dtype), np.zeros(0, np.int64), np.zeros((0, rank), np.int64), bad
        )
    t = array.type
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and spec.dtype != object:
        return _decode_images(array, spec)
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and spec.dtype != object:
        array = _parse_json(array, bad)
    if array.null_count:
        for i in np.flatnonzero(~to_numpy(array.is_valid())):
            bad[int(i)] = "no value (null)"
    # peel the list levels: lengths[k] per element of level k, rows[k] its row (not for the
    # leaves: a row's count of them says where they are, and a row of images has millions)
    lengths: list[np.ndarray] = []
    rows = [np.arange(n)]
    while _is_list(pa, array.type):
        length = to_numpy(pc.list_value_length(array), fill=-1).astype(np.int64)
        for i in np.unique(rows[-1][length < 0]):
            bad.setdefault(int(i), "a null list inside the value")
        length[length < 0] = 0
        lengths.append(length)
        array = array.flatten()
        if _is_list(pa, array.type):
            rows.append(np.repeat(rows[-1], length))
    depth = len(lengths)
    if depth:
        counts = np.bincount(rows[-1], weights=lengths[-1], minlength=n).astype(np.int64)
    else:
        counts = np.ones(n, np.int64)
    ends = np.cumsum(counts)
    if array.null_count:
        nulls = np.flatnonzero(~to_numpy(array.is_valid()))
        for i in np.unique(np.searchsorted(ends, nulls, side="right")):
            bad.setdefault(int(i), "a null element inside the value")
    leaf, why = _leaf_values(pa, array, spec)  # nulls filled with 0 or False
    if why:
        return _all_bad(n, spec, why)
    rank = depth if spec.shape is None else len(spec.shape)
    starts = ends - counts
    shapes = np.zeros((n, rank), np.int64)
    if depth == 0:
        if spec.shape is not None and rank and not all(d in (1, None) for d in spec.shape):
            return _all_bad(n, spec, f"a number, expected {spec.describe()}")
        shapes[:] = 1
    elif depth == rank:
        for k in range(depth):
            per_row = lengths[k] if k == 0 else _first_per_row(lengths[k], rows[k], n)
            ragged = np.unique(rows[k][lengths[k] != per_row[rows[k]]]) if k else []
            for i in ragged:
                bad.setdefault(int(i), f"ragged lists at depth {k + 1}")
            shapes[:, k] = per_row
            want = None if spec.shape is None else spec.shape[k]
            if want is not None:
                for i in np.flatnonzero(per_row != want):
                    bad.setdefault(int(i), f"dim {k} is {per_row[i]}, expected {spec.describe()}")
    elif depth == 1 and spec.shape is not None:
        known = [d for d in spec.shape if d is not None]
        free = len(spec.shape) - len(known)
        size = math.prod(known)
        if free > 1:
            return _all_bad(n, spec, f"a flat list cannot be reshaped to {spec.describe()}")
        fits = (counts % size == 0) if (free and size) else (counts == size)
        for i in np.flatnonzero(~fits):
            bad.setdefault(int(i), f"{counts[i]} values, expected {spec.describe()}")
        for k, d in enumerate(spec.shape):
            shapes[:, k] = d if d is not None else (counts // size if size else 0)
    else:
        return _all_bad(n, spec, f"lists nested {depth} deep, expected {spec.describe()}")
    return Column(leaf, starts, shapes, bad)


def gather(column: Column, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The samples of ``rows`` (all of one ``shape``) stacked into a batch."""
    size = math.prod(shape)
    starts = column.starts[rows]
    if len(rows) and np.array_equal(starts, starts[0] + size * np.arange(len(rows))):
        flat = column.leaf[starts[0] : starts[0] + size * len(rows)]
    else:
        flat = column.leaf[(starts[:, None] + np.arange(size)).reshape(-1)]
    return flat.reshape((len(rows), *shape))


def _is_list(pa, t) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _first_per_row(length: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Each row's length of its first element at this level (0 for rows with none)."""
    first = np.searchsorted(rows, np.arange(n))
    has = first < len(rows)
    has[has] = rows[first[has]] == np.arange(n)[has]
    out = np.zeros(n, np.int64)
    out[has] = length[first[has]]
    return out


def _all_bad(n: int, spec: Spec, why: str) -> Column:
    rank = len(spec.shape or ())
    return Column(np.empty(0, spec.dtype), np.zeros(n, np.int64), np.zeros((n, rank), np.int64),
                  dict.fromkeys(range(n), why))  # fmt: skip


def _leaf_values(pa, array, spec: Spec) -> tuple[np.ndarray, str | None]:
    """The leaf values as ``spec.dtype``, or why their type cannot be fed."""
    t, want = array.type, spec.dtype
    if want == object:
        ok = pa.types.is_string(t) or pa.types.is_large_string(t)
    elif want.kind == "b":
        ok = pa.types.is_boolean(t)
    elif want.kind in "iu":
        ok = pa.types.is_integer(t)
    else:  # floating point and complex take integers and floats
        ok = pa.types.is_integer(t) or pa.types.is_floating(t)
    if not ok:
        return np.empty(0, want), f"values of type {t}, expected {spec.describe()}"
    values = to_numpy(array, fill=False if pa.types.is_boolean(t) else 0)
    return np.asarray(values, dtype=want), None


def _parse_json(array, bad: dict[int, str]):
    """Text cells (CSV) holding JSON numbers or lists, parsed; unparsable cells become bad rows."""
    pa = pyarrow()
    values = []
    for i, text in enumerate(array.to_pylist()):
        try:
            values.append(None if text is None else json.loads(text))
        except ValueError:
            bad[i] = f"text {text[:40]!r} is not a number or a JSON list"
            values.append(None)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed nesting: rows one by one
        out = []
        for i, v in enumerate(values):
            try:
                pa.array([v])
                out.append(v)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                bad.setdefault(i, "mixes numbers and lists")
                out.append(None)
        return pa.array(out)


def _decode_images(array, spec: Spec) -> Column:
    """Encoded images (PNG, JPEG, ...) -> pixels in the declared size and layout.

    Channels first when the declared per-sample shape is [C, H, W] with C in 1, 3, 4, else
    [H, W, C]; float inputs get values scaled to [0, 1].
    """
    n = len(array)
    if spec.shape is None or len(spec.shape) != 3:
        return _all_bad(n, spec, f"an image, expected {spec.describe()} (images need rank 3)")
    try:
        from PIL import Image
    except ImportError:
        raise BatchError(
            'decoding images needs Pillow; install the image extra: pip install "onyx[image]"'
        ) from None
    first = spec.shape[0] in (1, 3, 4)
    c, h, w = spec.shape if first else (spec.shape[2], spec.shape[0], spec.shape[1])
    mode = {1: "L", 3: "RGB", 4: "RGBA", None: "RGB"}.get(c)
    if mode is None:
        return _all_bad(n, spec, f"an image, expected {spec.describe()} (1, 3 or 4 channels)")
    bad: dict[int, str] = {}
    samples, shape = [], None
    for i, data in enumerate(array.to_pylist()):
        try:
            img = Image.open(io.BytesIO(data)).convert(mode)
            if h is not None and w is not None and img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            pixels = np.asarray(img).reshape(img.size[1], img.size[0], -1)
        except Exception as e:  # noqa: BLE001 - Pillow raises many kinds on a bad file
            bad[i] = f"not a readable image ({type(e).__name__}: {e})"
            continue
        pixels = pixels.transpose(2, 0, 1) if first else pixels
        if shape is None:
            shape = pixels.shape
        if pixels.shape != shape:
            bad[i] = f"image of shape {list(pixels.shape)}, expected {list(shape)} like the first"
            continue
        samples.append(pixels.reshape(-1))
    shape = shape or (0, 0, 0)
    leaf = np.concatenate(samples) if samples else np.empty(0, np.uint8)
    leaf = leaf.astype(spec.dtype) / 255 if spec.dtype.kind in "fc" else leaf.astype(spec.dtype)
    size = math.prod(shape)
    good = np.array([i not in bad for i in range(n)])
    starts = (np.cumsum(good) - good) * size
    return Column(
        leaf.astype(spec.dtype, copy=False), starts, np.tile(np.array(shape), (n, 1)), bad
    )


# --- outputs ---------------------------------------------------------------------------------
def arrow_type(dtype: np.dtype, rank: int | None):
    """The pyarrow type of a column holding per-sample tensors of ``dtype`` and ``rank``."""
    pa = pyarrow()
    if rank is None:
        return pa.null()
    t = pa.string() if dtype == object else pa.from_numpy_dtype(_arrow_dtype(dtype))
    for _ in range(rank):
        t = pa.list_(t)
    return t


def _arrow_dtype(dtype: np.dtype) -> np.dtype:
    """Arrow has no bfloat16 or float8: those are written as float32."""
    return dtype if dtype.kind in "biuf" else np.dtype(np.float32)


def encode(values: np.ndarray):
    """A batch ``values`` [n, *shape] as a pyarrow array of n lists nested to the sample shape."""
    pa = pyarrow()
    values = np.asarray(values)
    if values.ndim == 0:
        raise BatchError(
            "an output has no batch dimension (a scalar); it cannot be split into rows"
        )
    if values.dtype == object:
        column = pa.array(values.reshape(-1).tolist(), pa.string())
    else:
        flat = np.ascontiguousarray(values.reshape(-1))
        want = _arrow_dtype(values.dtype)
        column = from_numpy(flat if flat.dtype == want else flat.astype(want))
    for k in range(values.ndim - 1, 0, -1):
        count, d = math.prod(values.shape[:k]), values.shape[k]
        offsets = np.arange(count + 1, dtype=np.int64) * d
        if offsets[-1] < 2**31:
            column = pa.ListArray.from_arrays(from_numpy(offsets.astype(np.int32)), column)
        else:
            column = pa.LargeListArray.from_arrays(from_numpy(offsets), column)
    return column
