"""Image and geometry operators: Resize, Upsample, GridSample, AffineGrid, NonMaxSuppression,
CenterCropPad, ImageDecoder.

Resize is separable: for each resized axis the sampling taps (input indices and weights, shape
``(out, K)``) are computed once, then applied with ``K`` gathers along that axis.
"""

from __future__ import annotations

import io
import math

import numpy as np

from onyx.errors import KernelError, UnsupportedError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import dense
from onyx.runtime.kernels.registry import kernel

_LOW_PRECISION = frozenset(
    {"float16", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"}
)  # (by name: see math.py's _LOW)


def _work_dtype(dtype: np.dtype, op: str) -> np.dtype:
    """The dtype arithmetic on elements of ``dtype`` is done in (KernelError if none)."""
    if np.dtype(dtype).name in _LOW_PRECISION:
        return np.dtype(np.float32)
    if dtype.kind in "fc":
        return dtype
    if dtype.kind in "iu":
        return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)
    raise KernelError(f"{op}: interpolation needs a numeric input, got element type {dtype}")


def _cast_back(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``y`` (computed in a wider type) as ``dtype``; integers truncate (a cast, as in
    onnxruntime and the standard's reference) and saturate at the type's range."""
    if y.dtype == dtype:
        return y
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        y = np.clip(y, info.min, info.max)
    return y.astype(dtype)


def _scalar(value, name: str, op: str, kind=int):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size != 1:
        raise KernelError(f"{op}: '{name}' must be a scalar, got shape {arr.shape}")
    return kind(arr.reshape(-1)[0])


def _zero_of(dtype: np.dtype):
    return "" if dtype == object else np.zeros((), dtype)


# --- Resize ------------------------------------------------------------------------------------
_MODES = ("nearest", "linear", "cubic")
_TRANSFORMS = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "tf_crop_and_resize",
)
_NEAREST = {
    "round_prefer_floor": lambda c: np.ceil(c - 0.5),
    "round_prefer_ceil": lambda c: np.floor(c + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def _cubic_weights(d: np.ndarray, a: float) -> np.ndarray:
    """The cubic convolution kernel (Keys, 1981) at distances ``d``."""
    d = np.abs(d)
    d2, d3 = d * d, d * d * d
    near = (a + 2) * d3 - (a + 3) * d2 + 1
    far = a * d3 - 5 * a * d2 + 8 * a * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _source_coords(transform, n_out, n_in, scale, length, roi=(0.0, 1.0)) -> np.ndarray:
    """Input coordinate of each output position along one axis.

    ``length`` is the resized length before rounding to the integer ``n_out`` (``n_in * scale``
    when the size came from a scale factor). The arithmetic is float32, as in onnxruntime, so
    that ties of the nearest-pixel rounding fall the same way.
    """
    f = np.float32
    x = np.arange(n_out, dtype=f)
    scale, length, half = f(scale), f(length), f(0.5)
    if transform in ("half_pixel", "pytorch_half_pixel"):
        if transform == "pytorch_half_pixel" and length <= 1:
            return np.zeros_like(x)
        return (x + half) / scale - half
    if transform == "half_pixel_symmetric":
        adjustment = f(n_out) / length
        offset = f(n_in) / f(2) * (f(1) - adjustment)
        return offset + (x + half) / scale - half
    if transform == "align_corners":
        return x * f(n_in - 1) / (length - f(1)) if length > 1 else np.zeros_like(x)
    if transform == "asymmetric":
        return x / scale
    if transform == "tf_half_pixel_for_nn":
        return (x + half) / scale
    start, end = f(roi[0]), f(roi[1])  # tf_crop_and_resize
    if length > 1:
        return start * f(n_in - 1) + x * (end - start) * f(n_in - 1) / (length - f(1))
    return np.full_like(x, half * (start + end) * f(n_in - 1))


def _filter_taps(coords, n_in, scale, mode, cubic_a, exclude_outside, antialias):
    """(indices, weights), each (n_out, K), of linear/cubic interpolation at ``coords``."""
    cubic = mode == "cubic"
    if antialias and scale < 1:
        support = (2.0 if cubic else 1.0) / scale
        base = np.floor(coords - support) + 1
        taps = base[:, None] + np.arange(math.ceil(2 * support) + 1)
        dist = (taps - coords[:, None]) * scale
        weights = _cubic_weights(dist, cubic_a) if cubic else np.maximum(0.0, 1 - np.abs(dist))
        if not exclude_outside:
            weights = weights / weights.sum(axis=1, keepdims=True)
    else:
        base = np.floor(coords)
        offsets = np.arange(-1, 3) if cubic else np.arange(2)
        taps = base[:, None] + offsets
        dist = taps - coords[:, None]
        weights = _cubic_weights(dist, cubic_a) if cubic else np.maximum(0.0, 1 - np.abs(dist))
    if exclude_outside:
        weights = np.where((taps >= 0) & (taps < n_in), weights, 0.0)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    index = np.clip(taps, 0, n_in - 1).astype(np.intp)
    return index, weights


class _AxisPlan:
    """How one axis is resampled: a gather index (nearest) or taps, and an extrapolation mask."""

    __slots__ = ("index", "matrix", "outside", "weights")

    def __init__(self, index, weights, outside):
        self.index, self.weights, self.outside = index, weights, outside
        self.matrix = None  # (n_out, n_in) dense form of the taps, for short axes (BLAS)


def _plan_axis(n_in, n_out, scale, length, roi, opts) -> _AxisPlan:
    mode, transform, nearest, cubic_a, exclude_outside, antialias = opts
    coords = _source_coords(transform, n_out, n_in, scale, length, roi)
    outside = None
    if transform == "tf_crop_and_resize":
        mask = (coords < 0) | (coords > n_in - 1)
        outside = mask if mask.any() else None
    if mode == "nearest":
        index = np.clip(nearest(coords), 0, n_in - 1).astype(np.intp)
        return _AxisPlan(index, None, outside)
    index, weights = _filter_taps(coords, n_in, scale, mode, cubic_a, exclude_outside, antialias)
    # drop taps whose weight is zero everywhere (e.g. the second tap of an integer-ratio grid)
    keep = np.any(weights != 0, axis=0)
    if not keep.all() and keep.any():
        index, weights = index[:, keep], weights[:, keep]
    plan = _AxisPlan(index, weights, outside)
    if n_in <= _DENSE_MAX_IN:
        plan.matrix = np.zeros((n_out, n_in))
        np.add.at(plan.matrix, (np.arange(n_out)[:, None], index), weights)
    return plan


#: Axes up to this long are resampled with one matrix product instead of per-tap gathers.
_DENSE_MAX_IN = 256


def _apply_axis(y: np.ndarray, axis: int, plan: _AxisPlan, work, extrapolation) -> np.ndarray:
    if plan.weights is None:
        out = np.take(y, plan.index, axis=axis)
    elif plan.matrix is not None and np.isfinite(y).all():  # inf/nan must stay local: gather
        matrix = plan.matrix.astype(np.finfo(work).dtype, copy=False)
        if axis == y.ndim - 1:
            out = y @ matrix.T
        else:
            n_in = y.shape[axis]
            pre = int(np.prod(y.shape[:axis], dtype=np.int64))
            out = np.matmul(matrix, y.reshape(pre, n_in, -1))
            out = out.reshape(*y.shape[:axis], len(matrix), *y.shape[axis + 1 :])
    else:
        shape = [1] * y.ndim
        shape[axis] = len(plan.index)
        weights = plan.weights.astype(np.finfo(work).dtype, copy=False)
        out = None
        for k in range(plan.index.shape[1]):
            term = np.take(y, plan.index[:, k], axis=axis)
            term *= weights[:, k].reshape(shape)
            out = term if out is None else np.add(out, term, out=out)
    if plan.outside is not None:
        shape = [1] * y.ndim
        shape[axis] = len(plan.outside)
        out = np.where(plan.outside.reshape(shape), np.asarray(extrapolation, out.dtype), out)
    return out


def _resample(x, out_shape, scales, lengths, rois, opts, extrapolation, cache=None):
    """Resize ``x`` to ``out_shape``; ``scales``, unrounded ``lengths``, ``rois`` per axis."""
    mode, transform = opts[0], opts[1]
    todo = [
        a
        for a in range(x.ndim)
        if out_shape[a] != x.shape[a] or scales[a] != 1.0 or transform == "tf_crop_and_resize"
    ]
    if any(n == 0 for n in out_shape) or x.size == 0:
        return np.zeros(out_shape, x.dtype) if x.dtype != object else np.full(out_shape, "", object)
    if mode == "nearest":
        y = x
        work = x.dtype
    else:
        work = _work_dtype(x.dtype, "Resize")
        y = x.astype(work, copy=False)
    rounded = opts[5] and x.dtype.kind in "iu"

    def plan_of(a: int) -> _AxisPlan:
        key = (x.shape[a], out_shape[a], scales[a], lengths[a], rois[a])
        plan = cache.get(key) if cache is not None else None
        if plan is None:
            plan = _plan_axis(*key, opts)
            if cache is not None:
                if len(cache) > 64:
                    cache.clear()
                cache[key] = plan
        return plan

    if todo == [x.ndim - 2, x.ndim - 1] and y.dtype == x.dtype and mode != "nearest":
        out = _resample_planes(y, out_shape, plan_of(todo[0]), plan_of(todo[1]))
        if out is not None:
            return out
    # shrink first: later gathers then run over fewer elements
    todo.sort(key=lambda a: out_shape[a] / x.shape[a])
    for a in todo:
        y = _apply_axis(y, a, plan_of(a), np.dtype(work), extrapolation)
        if rounded:  # antialiased integer images round each pass, as Pillow/onnxruntime do
            info = np.iinfo(x.dtype)
            y = np.clip(np.rint(y), info.min, info.max)
    if y is x:
        return x
    return _cast_back(y, x.dtype)


def _resample_planes(x, out_shape, row_plan, col_plan):
    """A float32/float64 ``x`` resized along its last two axes only, by taps (linear, cubic),
    through the compiled kernel (``_jit.resample_planes``: 256 planes from 28x28 to 56x56 in
    0.59 ms against the numpy path's 1.22, one thread), by bands of planes over the session's
    threads; None where that does not apply (no compiled kernels, an extrapolated crop). Equal
    to the numpy path's values to rounding (another order of additions)."""
    jit = compiled.kernels(math.prod(out_shape)) if x.dtype in compiled.DTYPES else None
    if jit is None or row_plan.outside is not None or col_plan.outside is not None:
        return None
    planes = dense(x, jit).reshape(-1, *x.shape[-2:])
    y = np.empty((planes.shape[0], *out_shape[-2:]), x.dtype)
    taps = (row_plan.index.astype(np.uint64), row_plan.weights.astype(x.dtype),
            np.ascontiguousarray(col_plan.index.T, np.uint64),
            np.ascontiguousarray(col_plan.weights.T, x.dtype))  # fmt: skip
    threads.rows(planes.shape[0], y.size,
                 lambda p0, p1: jit.resample_planes(planes, y, *taps, p0, p1),
                 native=lambda par, parts: par.resample_bands(planes, y, *taps, parts))  # fmt: skip
    return y.reshape(out_shape)


@kernel("Resize", 11, 13, 18, 19)
class Resize:
    """Resize with scales or sizes, every coordinate transform and interpolation mode."""

    def __init__(
        self,
        *,
        mode="nearest",
        coordinate_transformation_mode="half_pixel",
        cubic_coeff_a=-0.75,
        exclude_outside=0,
        extrapolation_value=0.0,
        nearest_mode="round_prefer_floor",
        antialias=0,
        axes=None,
        keep_aspect_ratio_policy="stretch",
    ):
        if mode not in _MODES:
            raise KernelError(f"Resize: mode must be one of {_MODES}, got {mode!r}")
        if coordinate_transformation_mode not in _TRANSFORMS:
            raise KernelError(
                f"Resize: coordinate_transformation_mode must be one of {_TRANSFORMS}, "
                f"got {coordinate_transformation_mode!r}"
            )
        if nearest_mode not in _NEAREST:
            raise KernelError(
                f"Resize: nearest_mode must be one of {tuple(_NEAREST)}, got {nearest_mode!r}"
            )
        if keep_aspect_ratio_policy not in ("stretch", "not_larger", "not_smaller"):
            raise KernelError(
                "Resize: keep_aspect_ratio_policy must be 'stretch', 'not_larger' or "
                f"'not_smaller', got {keep_aspect_ratio_policy!r}"
            )
        self.opts = (
            mode,
            coordinate_transformation_mode,
            _NEAREST[nearest_mode],
            float(cubic_coeff_a),
            bool(exclude_outside),
            bool(antialias) and mode != "nearest",
        )
        self.extrapolation = float(extrapolation_value)
        self.axes = None if axes is None else [int(a) for a in axes]
        self.policy = keep_aspect_ratio_policy
        self.cache: dict = {}

    def __call__(self, x, roi=None, scales=None, sizes=None):
        rank = x.ndim
        axes = list(range(rank)) if self.axes is None else self.axes
        for i, a in enumerate(axes):
            if not -rank <= a < rank:
                raise KernelError(f"Resize: axis {a} is out of range for an input of rank {rank}")
            axes[i] = a % rank
        if len(set(axes)) != len(axes):
            raise KernelError(f"Resize: 'axes' must not repeat an axis, got {self.axes}")
        scales = None if scales is None or scales.size == 0 else scales.reshape(-1)
        sizes = None if sizes is None or sizes.size == 0 else sizes.reshape(-1)
        if (scales is None) == (sizes is None):
            raise KernelError(
                "Resize: exactly one of 'scales' and 'sizes' must be given (non-empty), got "
                + ("both" if scales is not None else "neither")
            )
        n = len(axes)
        in_shape = x.shape
        out_shape = list(in_shape)
        axis_scale = [1.0] * rank
        lengths = [float(d) for d in in_shape]
        if scales is not None:
            if len(scales) != n:
                raise KernelError(f"Resize: 'scales' must have {n} values, got {len(scales)}")
            if np.any(scales <= 0):
                raise KernelError(f"Resize: 'scales' must be positive, got {scales.tolist()}")
            s32 = scales.astype(np.float32)
            for a, s in zip(axes, s32):
                out_shape[a] = int(np.floor(s * np.float32(in_shape[a])))
                axis_scale[a] = float(s)
                lengths[a] = float(s) * in_shape[a]
        else:
            if len(sizes) != n:
                raise KernelError(f"Resize: 'sizes' must have {n} values, got {len(sizes)}")
            if np.any(sizes < 0):
                raise KernelError(f"Resize: 'sizes' must be non-negative, got {sizes.tolist()}")
            for a, s in zip(axes, sizes):
                if in_shape[a] == 0 and s != 0:
                    raise KernelError(f"Resize: cannot resize empty axis {a} to size {int(s)}")
            if self.policy == "stretch":
                for a, s in zip(axes, sizes):
                    out_shape[a] = lengths[a] = int(s)
                    axis_scale[a] = int(s) / in_shape[a] if in_shape[a] else 1.0
            else:
                ratios = [float(s) / in_shape[a] for a, s in zip(axes, sizes)]
                scale = min(ratios) if self.policy == "not_larger" else max(ratios)
                for a in axes:
                    out_shape[a] = math.floor(scale * in_shape[a] + 0.5)
                    axis_scale[a] = scale
                    lengths[a] = scale * in_shape[a]
        rois = [(0.0, 1.0)] * rank
        if self.opts[1] == "tf_crop_and_resize":
            if roi is None or roi.size == 0:
                raise KernelError("Resize: mode 'tf_crop_and_resize' needs the 'roi' input")
            roi = roi.reshape(-1).astype(np.float64)
            if len(roi) != 2 * n:
                raise KernelError(f"Resize: 'roi' must have {2 * n} values, got {len(roi)}")
            for i, a in enumerate(axes):
                rois[a] = (float(roi[i]), float(roi[n + i]))
        return _resample(
            x, out_shape, axis_scale, lengths, rois, self.opts, self.extrapolation, self.cache
        )


def _legacy_resize(x, scales, mode, op, downsample_ceil):
    """Resize-10 / Upsample: asymmetric coordinates, nearest rounds down (up when shrinking)."""
    if mode not in ("nearest", "linear", "bilinear"):
        raise KernelError(f"{op}: mode must be 'nearest' or 'linear', got {mode!r}")
    scales = np.asarray(scales, np.float32).reshape(-1)
    if len(scales) != x.ndim:
        raise KernelError(f"{op}: 'scales' must have {x.ndim} values (the rank), got {len(scales)}")
    if np.any(scales <= 0):
        raise KernelError(f"{op}: 'scales' must be positive, got {scales.tolist()}")
    out_shape = [int(np.floor(s * np.float32(d))) for s, d in zip(scales, x.shape)]
    y = x
    for a in range(x.ndim):
        s = float(scales[a])
        if out_shape[a] == x.shape[a] and s == 1.0:
            continue
        rule = np.ceil if (downsample_ceil and s < 1) else np.floor
        opts = (
            "nearest" if mode == "nearest" else "linear",
            "asymmetric",
            rule,
            -0.75,
            False,
            False,
        )
        y = _resample(y, [*y.shape[:a], out_shape[a], *y.shape[a + 1 :]],
                      [1.0] * a + [s] + [1.0] * (x.ndim - a - 1), list(map(float, y.shape)),
                      [(0.0, 1.0)] * x.ndim, opts, 0.0)  # fmt: skip
    return y


@kernel("Resize", 10)
def resize_10(x, scales, *, mode="nearest"):
    return _legacy_resize(x, scales, mode, "Resize", True)


@kernel("Upsample", 7)
def upsample_7(x, *, mode="nearest", scales):
    return _legacy_resize(x, scales, mode, "Upsample", False)


@kernel("Upsample", 9)
def upsample_9(x, scales, *, mode="nearest"):
    return _legacy_resize(x, scales, mode, "Upsample", False)


# --- GridSample ----------------------------------------------------------------------------
_GRID_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest",
               "bicubic": "cubic", "cubic": "cubic"}  # fmt: skip


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect coordinates into [low, high] (repeatedly, as a mirror at each border)."""
    span = high - low
    if span <= 0:
        return np.zeros_like(x) + low
    t = np.abs(x - low) % (2 * span)
    return low + np.where(t > span, 2 * span - t, t)


@kernel("GridSample", 16, 20)
class GridSample:
    """Sample X at the normalized positions of a grid (N-D; linear, nearest or cubic)."""

    def __init__(self, *, align_corners=0, mode="linear", padding_mode="zeros"):
        if mode not in _GRID_MODES:
            raise KernelError(
                f"GridSample: mode must be 'linear', 'nearest' or 'cubic', got {mode!r}"
            )
        if padding_mode not in ("zeros", "border", "reflection"):
            raise KernelError(
                "GridSample: padding_mode must be 'zeros', 'border' or 'reflection', "
                f"got {padding_mode!r}"
            )
        self.align = bool(align_corners)
        self.mode = _GRID_MODES[mode]
        self.padding = padding_mode

    def _index(self, taps: np.ndarray, size: int):
        """Integer indices for tap positions and (for zeros padding) their validity."""
        if self.padding == "zeros":
            valid = (taps >= 0) & (taps <= size - 1)
            return np.clip(taps, 0, size - 1).astype(np.intp), valid
        if self.padding == "reflection":
            low, high = (0.0, size - 1.0) if self.align else (-0.5, size - 0.5)
            taps = np.rint(_reflect(taps, low, high))
        return np.clip(taps, 0, size - 1).astype(np.intp), None

    def __call__(self, x, grid):
        r = x.ndim - 2
        if r < 1 or grid.ndim != r + 2 or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
            raise KernelError(
                f"GridSample: for X of shape {x.shape} the grid must have shape "
                f"(N={x.shape[0] if x.ndim else '?'}, D1_out, ..., D{r}_out, {r}), got {grid.shape}"
            )
        n, c = x.shape[:2]
        in_sizes = x.shape[2:]
        out_sizes = grid.shape[1:-1]
        points = int(np.prod(out_sizes, dtype=np.int64))
        g = grid.reshape(n, points, r).astype(np.float64)
        # coordinates per spatial dim, outermost first (grid lists innermost first)
        coords = []
        for d in range(r):
            size = in_sizes[d]
            u = g[..., r - 1 - d]
            if self.align:
                u = (u + 1) / 2 * (size - 1)
            else:
                u = ((u + 1) * size - 1) / 2
            if self.mode == "cubic":
                pass  # cubic pads each of its taps (below), not the sampling position
            elif self.padding == "border":
                u = np.clip(u, 0, size - 1)
            elif self.padding == "reflection":
                low, high = (0.0, size - 1.0) if self.align else (-0.5, size - 0.5)
                u = np.clip(_reflect(u, low, high), 0, size - 1)
            coords.append(u)
        flat = np.moveaxis(x.reshape(n, c, -1), 1, 2)  # (N, S, C)
        batch = np.arange(n)[:, None]
        strides = np.cumprod((1, *in_sizes[::-1]))[:-1][::-1]

        if self.mode == "nearest":
            index = np.zeros((n, points), np.intp)
            valid = np.ones((n, points), bool)
            for d in range(r):
                idx, ok = self._index(np.rint(coords[d]), in_sizes[d])
                index += idx * strides[d]
                if ok is not None:
                    valid &= ok
            out = flat[batch, index]
            if not valid.all():
                out = np.where(valid[..., None], out, _zero_of(x.dtype))
        else:
            work = _work_dtype(x.dtype, "GridSample")
            flat = flat.astype(work, copy=False)
            per_dim = []  # per dim: list of (index, weight) taps
            for d in range(r):
                u = coords[d]
                base = np.floor(u)
                t = u - base
                if self.mode == "linear":
                    offsets, weights = (0, 1), (1 - t, t)
                else:
                    offsets = (-1, 0, 1, 2)
                    weights = [_cubic_weights(t - o, -0.75) for o in offsets]
                taps = []
                for o, w in zip(offsets, weights):
                    idx, ok = self._index(base + o, in_sizes[d])
                    taps.append((idx * strides[d], w if ok is None else np.where(ok, w, 0.0)))
                per_dim.append(taps)
            out = np.zeros((n, points, c), work)
            for combo in np.ndindex(*(len(t) for t in per_dim)):
                index = sum(per_dim[d][k][0] for d, k in enumerate(combo))
                weight = np.prod([per_dim[d][k][1] for d, k in enumerate(combo)], axis=0)
                out += flat[batch, index] * weight[..., None].astype(out.real.dtype)
            out = _cast_back(out, x.dtype)
        return np.ascontiguousarray(np.moveaxis(out, 2, 1)).reshape(n, c, *out_sizes)


# --- AffineGrid ----------------------------------------------------------------------------
def _base_positions(size: int, align_corners: bool) -> np.ndarray:
    if size <= 1:
        return np.zeros(size, np.float64)
    if align_corners:
        return np.linspace(-1.0, 1.0, size)
    return (2 * np.arange(size) + 1) / size - 1


@kernel("AffineGrid", 20)
def affine_grid(theta, size, *, align_corners=0):
    size = [int(s) for s in np.asarray(size).reshape(-1)]
    if len(size) not in (4, 5):
        raise KernelError(f"AffineGrid: 'size' must have 4 (2-D) or 5 (3-D) values, got {size}")
    r = len(size) - 2
    if theta.shape != (size[0], r, r + 1):
        raise KernelError(
            f"AffineGrid: theta must have shape ({size[0]}, {r}, {r + 1}) for size {size}, "
            f"got {theta.shape}"
        )
    spatial = size[2:]
    axes = [_base_positions(s, bool(align_corners)) for s in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # outermost first
    # homogeneous positions listed innermost first: (x, y[, z], 1)
    base = np.stack([m.reshape(-1) for m in mesh[::-1]] + [np.ones(mesh[0].size)], axis=-1)
    work = np.float64 if theta.dtype == np.float64 else np.float32
    grid = base.astype(work) @ theta.astype(work).transpose(0, 2, 1)
    return grid.reshape(size[0], *spatial, r).astype(theta.dtype, copy=False)


# --- NonMaxSuppression ---------------------------------------------------------------------
@kernel("NonMaxSuppression", 10)
def non_max_suppression(
    boxes,
    scores,
    max_output_boxes_per_class=None,
    iou_threshold=None,
    score_threshold=None,
    *,
    center_point_box=0,
):
    op = "NonMaxSuppression"
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise KernelError(f"{op}: boxes must have shape (batches, boxes, 4), got {boxes.shape}")
    if scores.ndim != 3 or scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise KernelError(
            f"{op}: scores must have shape ({boxes.shape[0]}, classes, {boxes.shape[1]}) to match "
            f"boxes {boxes.shape}, got {scores.shape}"
        )
    if center_point_box not in (0, 1):
        raise KernelError(f"{op}: center_point_box must be 0 or 1, got {center_point_box}")
    limit = _scalar(max_output_boxes_per_class, "max_output_boxes_per_class", op) or 0
    iou_max = _scalar(iou_threshold, "iou_threshold", op, float) or 0.0
    min_score = _scalar(score_threshold, "score_threshold", op, float)
    if not 0.0 <= iou_max <= 1.0:
        raise KernelError(f"{op}: iou_threshold must be in [0, 1], got {iou_max}")
    empty = np.zeros((0, 3), np.int64)
    if limit <= 0 or boxes.shape[1] == 0:
        return empty
    b = boxes.astype(np.float64)
    if center_point_box:
        half_w, half_h = b[..., 2] / 2, b[..., 3] / 2
        y1, x1 = b[..., 1] - half_h, b[..., 0] - half_w
        y2, x2 = b[..., 1] + half_h, b[..., 0] + half_w
    else:
        y1 = np.minimum(b[..., 0], b[..., 2])
        y2 = np.maximum(b[..., 0], b[..., 2])
        x1 = np.minimum(b[..., 1], b[..., 3])
        x2 = np.maximum(b[..., 1], b[..., 3])
    area = (y2 - y1) * (x2 - x1)
    found = []
    for bi in range(boxes.shape[0]):
        for ci in range(scores.shape[1]):
            s = scores[bi, ci]
            order = np.argsort(-s, kind="stable")
            if min_score is not None:
                order = order[s[order] > min_score]
            kept = []
            while order.size and len(kept) < limit:
                best, rest = order[0], order[1:]
                kept.append(best)
                ih = np.minimum(y2[bi, best], y2[bi, rest]) - np.maximum(y1[bi, best], y1[bi, rest])
                iw = np.minimum(x2[bi, best], x2[bi, rest]) - np.maximum(x1[bi, best], x1[bi, rest])
                inter = np.maximum(ih, 0) * np.maximum(iw, 0)
                union = area[bi, best] + area[bi, rest] - inter
                with np.errstate(divide="ignore", invalid="ignore"):
                    iou = np.where(union > 0, inter / union, 0.0)
                order = rest[iou <= iou_max]
            if kept:
                rows = np.empty((len(kept), 3), np.int64)
                rows[:, 0], rows[:, 1], rows[:, 2] = bi, ci, kept
                found.append(rows)
    return np.concatenate(found) if found else empty


# --- CenterCropPad -------------------------------------------------------------------------
@kernel("CenterCropPad", 18)
def center_crop_pad(input_data, shape, *, axes=None):
    rank = input_data.ndim
    axes = list(range(rank)) if axes is None else [int(a) for a in axes]
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if len(shape) != len(axes):
        raise KernelError(
            f"CenterCropPad: 'shape' must have {len(axes)} values (one per axis), got {len(shape)}"
        )
    out_shape = list(input_data.shape)
    src = [slice(None)] * rank
    dst = [slice(None)] * rank
    for a, target in zip(axes, shape):
        if not -rank <= a < rank:
            raise KernelError(f"CenterCropPad: axis {a} is out of range for rank {rank}")
        if target < 0:
            raise KernelError(f"CenterCropPad: target sizes must be non-negative, got {shape}")
        a %= rank
        size = input_data.shape[a]
        out_shape[a] = target
        if size >= target:
            start = (size - target) // 2
            src[a] = slice(start, start + target)
        else:
            start = (target - size) // 2
            dst[a] = slice(start, start + size)
    cropped = input_data[tuple(src)]
    if tuple(out_shape) == cropped.shape:
        return cropped
    out = np.full(out_shape, _zero_of(input_data.dtype), input_data.dtype)
    out[tuple(dst)] = cropped
    return out


# --- ImageDecoder --------------------------------------------------------------------------
@kernel("ImageDecoder", 20)
def image_decoder(encoded_stream, *, pixel_format="RGB"):
    if pixel_format not in ("RGB", "BGR", "Grayscale"):
        raise KernelError(
            f"ImageDecoder: pixel_format must be 'RGB', 'BGR' or 'Grayscale', got {pixel_format!r}"
        )
    try:
        from PIL import Image
    except ImportError:
        raise UnsupportedError(
            "ImageDecoder needs Pillow to decode images: pip install onyx[image]"
        ) from None
    channels = 1 if pixel_format == "Grayscale" else 3
    data = np.ascontiguousarray(encoded_stream, np.uint8).tobytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(img, np.uint8)
    except Exception:  # noqa: BLE001 - the standard: an undecodable stream gives an empty image
        return np.zeros((0, 0, channels), np.uint8)
    if channels == 1:
        return np.ascontiguousarray(pixels.reshape(*pixels.shape[:2], 1))
    if pixel_format == "BGR":
        return np.ascontiguousarray(pixels[..., ::-1])
    return pixels
