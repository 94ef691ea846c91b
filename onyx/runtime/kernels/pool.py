"""Pooling: MaxPool, AveragePool, LpPool, the Global* pools, MaxUnpool, MaxRoiPool, RoiAlign.

Windowed pools reduce over strided views of the padded input, one vectorized step per kernel
offset (never a loop over output pixels); averages divide by a count map pooled once per shape.
2-D float MaxPool and AveragePool run compiled where numba is installed (compiled.py): the same
fold, one pass over the input instead of one per tap and axis.
"""

from __future__ import annotations

import math

import numpy as np

from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels.conv import (
    compute_dtype,
    kernel_slices,
    output_geometry,
    pad_input,
    spatial_params,
)
from onyx.runtime.kernels.reduce import trailing_mean
from onyx.runtime.kernels.registry import kernel

_ALL = (slice(None), slice(None))


class _Pool:
    """Shared attribute parsing and per-shape geometry of the windowed pools."""

    name = "Pool"

    def __init__(self, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode):
        self.attrs = (kernel_shape, strides, dilations, pads)
        self.auto_pad = auto_pad
        self.ceil_mode = bool(ceil_mode)
        self._plans = {}

    def plan(self, x):
        if x.ndim < 3:
            raise KernelError(
                f"{self.name}: expected X of rank >= 3 (N, C, *spatial), got {x.shape}"
            )
        key = x.shape
        plan = self._plans.get(key)
        if plan is None:
            nd = x.ndim - 2
            k, s, d, pb, pe = spatial_params(self.name, nd, *self.attrs)
            if self.ceil_mode and self.auto_pad in ("NOTSET", "VALID"):
                k = _clip_single_windows(x.shape[2:], k, s, d, pb, pe, self.auto_pad)
            out, pb, pe = output_geometry(
                self.name, x.shape[2:], k, s, d, pb, pe, self.auto_pad, self.ceil_mode
            )
            plan = self._plans[key] = (k, s, d, pb, pe, out)
        return plan

    def reduce(self, x, plan, op, fill):
        """Fold ufunc ``op`` over each window of unpadded ``x``, one spatial axis at a time.

        Max and sum are separable over the axes of a box window, so each axis costs about k
        ufunc calls over the whole tensor; reads outside the input are skipped (``fill`` where
        a window has none).
        """
        k, s, d, pb, _, out = plan
        if _one_window(x.shape[2:], plan):
            # one window covering the whole input (resnet's final 7x7 average): one reduction
            return op.reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True)
        acc = x
        for i in range(len(out)):
            acc = _reduce_axis(acc, 2 + i, k[i], s[i], d[i], pb[i], out[i], op, fill)
        return acc

    def reduce_compiled(self, x, plan, code, finish=-1, scale=None):
        """``reduce`` (op by opcode ``code``: MAX or ADD) by the compiled kernel, the result then
        times (``finish`` MUL) or divided by (DIV) ``scale`` (the output's spatial shape); None
        where the kernel does not cover ``x`` (2-D, float32/64) or is not there
        (``compiled.kernels``)."""
        out = plan[5]
        if x.ndim != 4 or x.dtype not in compiled.DTYPES or x.size == 0:
            return None
        if _one_window(x.shape[2:], plan):  # (one numpy reduction: as fast)
            return None
        n, c = x.shape[:2]
        jit = compiled.kernels(n * c * out[0] * out[1])
        if jit is None:
            return None
        k, s, d, pb = plan[:4]
        y = np.empty((n, c, *out), x.dtype)
        planes = np.ascontiguousarray(x).reshape(n * c, *x.shape[2:])
        scale = np.empty((1, 1), x.dtype) if scale is None else scale
        y3 = y.reshape(n * c, *out)
        threads.rows(n * c, planes.size, lambda p0, p1: jit.pool2d(
            planes[p0:p1], y3[p0:p1], code, *k, *s, *d, pb[0], pb[1], finish, scale),
            native=lambda par, parts: par.pool2d_bands(
                planes, y3, code, *k, *s, *d, pb[0], pb[1], finish, scale, parts))  # fmt: skip
        return y

    def counts(self, spatial, plan, include_pad):
        """Elements per window (broadcast over N, C): real ones, or real + explicit pads."""
        key = ("count", spatial, include_pad)
        c = self._plans.get(key)
        if c is None:
            k, s, d, pb, pe, out = plan
            nd = len(spatial)
            if include_pad:  # explicit pads count, the extension ceil_mode adds does not
                _, _, _, pb0, pe0 = spatial_params(self.name, nd, *self.attrs)
                if self.auto_pad != "NOTSET":
                    pb0, pe0 = pb, pe
            else:
                pb0, pe0 = [0] * nd, [0] * nd
            c = np.ones((1, 1) + (1,) * nd)
            for i in range(nd):
                # taps t of window j (at start + t * d) inside [lo, hi), counted without
                # listing them: a kernel may be far wider than the input (SAME padding)
                start = np.arange(out[i]) * s[i] - pb[i]
                lo, hi = -pb0[i], spatial[i] + pe0[i]
                first = np.maximum(-((start - lo) // d[i]), 0)
                last = np.minimum((hi - 1 - start) // d[i], k[i] - 1)
                n = np.maximum(last - first + 1, 0)
                shape = [1] * (nd + 2)
                shape[2 + i] = -1
                c = c * n.reshape(shape)
            self._plans[key] = c
        return c


def _clip_single_windows(spatial, k, s, d, pb, pe, auto_pad):
    """``k`` with each kernel extent that overhangs the padded input clipped to it, where
    ceil_mode then leaves one window that starts inside (a stride at least the overhang): that
    window covers the same elements either way. torch's ``AvgPool2d(k, ceil_mode=True)``
    exports so (EfficientNet's pooler: a 1280-wide kernel over 7x7)."""
    clipped = list(k)
    for i, (size, ki, si, di) in enumerate(zip(spatial, k, s, d)):
        padded = size + (0 if auto_pad == "VALID" else pb[i] + pe[i])
        overhang = ki - padded
        if di == 1 and 0 < overhang < si and padded > 0:
            clipped[i] = padded
    return clipped


def _one_window(spatial, plan):
    """Whether one window covers the whole (unpadded) input."""
    k, _, d, pb, _, out = plan
    return all(o == 1 and b == 0 and e == 1 and n == size
               for o, b, n, e, size in zip(out, pb, k, d, spatial))  # fmt: skip


def _whole_planes(spatial, plan):
    """Whether one window, padding or not, covers each whole plane (and nothing else is
    output): inception v1's 7x7 average over 6x6 planes padded at the end, say."""
    k, _, d, pb, _, out = plan
    return all(o == 1 and e == 1 and b >= 0 and n - b >= size
               for o, b, n, e, size in zip(out, pb, k, d, spatial))  # fmt: skip


def _reduce_axis(x, axis, k, s, d, begin, out, op, fill):
    """``op`` over the ``out`` windows along ``axis`` (kernel k, stride s, dilation d, ``begin``
    padding): one ufunc call per kernel tap, each over every window that tap falls inside.

    Along the last axis the taps run over the whole tensor as one line (``_line_windows``): its
    rows are short, and numpy's per-row cost would outweigh the arithmetic. A stride s > 1 there
    computes the stride-1 windows and keeps every s-th where windows overlap: numpy's loops over
    strided reads are several times slower than over contiguous ones.
    """
    x = np.ascontiguousarray(x)
    shape = x.shape
    length = shape[axis]
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    # window j reads row j * s + shift; only the taps that some window reads data with (a kernel
    # wider than the input, as SAME padding allows, has its other taps all in the padding)
    first = max(-(((out - 1) * s - begin) // d), 0)
    shifts = [t * d - begin for t in range(first, min(k, (length - 1 + begin) // d + 1))]
    dense = (out - 1) * s + 1  # the stride-1 windows spanning the same range
    overlap = (k - 1) * d + 1 > s  # windows share elements (else the dense ones only add work)
    if shifts and inner == 1 and dense <= length and outer > 1 and (s == 1 or overlap):
        result = _line_windows(x.reshape(outer, length), shifts, dense, op, fill)[:, ::s]
    else:
        source = x.reshape(outer, length, inner)
        result = None
        for shift in shifts:
            lo = min(max(-(shift // s), 0), out)  # ceil(-shift / s)
            hi = min(max((length - 1 - shift) // s + 1, 0), out)
            if hi <= lo:
                continue
            rows = source[:, lo * s + shift : (hi - 1) * s + shift + 1 : s]
            if result is None and (lo, hi) == (0, out):
                result = rows.copy()
                continue
            if result is None:
                result = np.full((outer, out, inner), fill, dtype=x.dtype)
            target = result[:, lo:hi]
            op(target, rows, out=target)
        if result is None:
            result = np.full((outer, out, inner), fill, dtype=x.dtype)
    return np.ascontiguousarray(result).reshape(shape[:axis] + (out,) + shape[axis + 1 :])


def _line_windows(source, shifts, out, op, fill):
    """``op`` over the stride-1 windows (``shifts`` from each window's start) of every row of
    ``source`` (rows, length), with ``out`` <= length windows per row, as (rows, out).

    The rows are taken as one line: window q of the line (row q // length, column q % length)
    reads line[q + shift], which is right wherever that column's window stays in its row. The
    few columns whose windows reach into the padding, and so into the neighbouring row, are
    then done again on their own.
    """
    rows, length = source.shape
    line = source.reshape(-1)
    acc = np.empty_like(line)
    for index, shift in enumerate(shifts):
        lo, hi = max(0, -shift), min(line.size, line.size - shift)
        reads = line[lo + shift : hi + shift]
        if index == 0:
            acc[:lo] = fill
            acc[hi:] = fill
            acc[lo:hi] = reads
        else:
            target = acc[lo:hi]
            op(target, reads, out=target)
    windows = acc.reshape(rows, length)
    for j in range(out):
        if 0 <= j + shifts[0] and j + shifts[-1] < length:
            continue
        reads = [j + sh for sh in shifts if 0 <= j + sh < length]
        column = windows[:, j]
        column[...] = source[:, reads[0]] if reads else fill
        for r in reads[1:]:
            op(column, source[:, r], out=column)
    return windows[:, :out]


def _lowest(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


@kernel("MaxPool", 1, 8, 10, 11, 12, 22)
class MaxPool(_Pool):
    """MaxPool (with the optional Indices output, in row- or column-major order)."""

    name = "MaxPool"

    def __init__(self, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None,
                 pads=None, storage_order=0, strides=None, _outputs=2):  # fmt: skip
        super().__init__(kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        if storage_order not in (0, 1):
            raise KernelError(f"MaxPool: storage_order must be 0 or 1, got {storage_order}")
        self.storage_order = storage_order
        self.want_indices = _outputs > 1

    def __call__(self, x):
        plan = self.plan(x)
        pb, pe = plan[3], plan[4]
        exact = x.dtype.kind in "iu" or compute_dtype(x.dtype) == x.dtype
        work = x if exact else x.astype(np.float32)
        if not self.want_indices:
            y = self.reduce_compiled(work, plan, compiled.MAX)
            if y is None:
                y = self.reduce(work, plan, np.maximum, _lowest(work.dtype))
            return y.astype(x.dtype, copy=False)
        return self._with_indices(x, pad_input(work, pb, pe, _lowest(work.dtype)), plan)

    def _with_indices(self, x, xp, plan):
        k, s, d, pb, _pe, out = plan
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        nd = len(spatial)
        if self.storage_order == 0:
            mult = [math.prod(spatial[i + 1 :]) for i in range(nd)]
        else:
            mult = [math.prod(spatial[:i]) for i in range(nd)]
        best = idx = None
        grids = [np.arange(o) * st - b for o, st, b in zip(out, s, pb)]
        for offset, sl in kernel_slices(k, s, d, out):
            view = xp[_ALL + sl]
            flat = np.zeros(tuple(out), dtype=np.int64)
            for i in range(nd):
                pos = grids[i] + offset[i] * d[i]
                shape = [1] * nd
                shape[i] = -1
                flat = flat + (np.clip(pos, 0, spatial[i] - 1) * mult[i]).reshape(shape)
            if best is None:
                best = view.copy()
                idx = np.broadcast_to(flat, best.shape).copy()
            else:
                better = view > best
                np.copyto(best, view, where=better)
                np.copyto(idx, np.broadcast_to(flat, best.shape), where=better)
        base = (np.arange(n * c, dtype=np.int64) * math.prod(spatial)).reshape((n, c) + (1,) * nd)
        return best.astype(x.dtype, copy=False), idx + base


@kernel("AveragePool", 1, 7, 10, 11, 19, 22)
class AveragePool(_Pool):
    """AveragePool (count_include_pad, ceil_mode, dilations)."""

    name = "AveragePool"

    def __init__(self, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0,
                 dilations=None, pads=None, strides=None):  # fmt: skip
        super().__init__(kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        self.include_pad = bool(count_include_pad)

    def __call__(self, x):
        plan = self.plan(x)
        if self.plane_means(x.shape[2:], plan):
            return global_average_pool(x)
        dtype = compute_dtype(x.dtype)
        work = x.astype(dtype, copy=False)
        counts = self.counts(x.shape[2:], plan, self.include_pad)
        y = None
        if work.ndim == 4 and work.dtype in compiled.DTYPES:
            finish, scale = self._scale(x.shape[2:], counts, dtype)
            y = self.reduce_compiled(work, plan, compiled.ADD, finish, scale)
        if y is None:
            y = self.reduce(work, plan, np.add, 0)
            if counts.min() == counts.max():
                y *= dtype.type(1.0 / counts.flat[0])
            else:
                y /= counts.astype(dtype)
        return y.astype(x.dtype, copy=False)

    def plane_means(self, spatial, plan) -> bool:
        """Whether the result is each plane's mean: one window over each whole plane, no pads
        counted. GlobalAveragePool's then (resnet50's final 7x7: 152 us in the model by numpy's
        reduction over two axes, 11 in onnxruntime; compiled, each plane summed in one pass)."""
        counted = self.counts(spatial, plan, self.include_pad).flat[0]
        return _whole_planes(spatial, plan) and counted == math.prod(spatial)

    def _scale(self, spatial, counts, dtype):
        """(opcode, factors) of the division in ``__call__`` for the compiled kernel: the same
        multiplication by one reciprocal, or division by each count, so the same roundings."""
        key = ("scale", spatial, dtype)
        scale = self._plans.get(key)
        if scale is None:
            if counts.min() == counts.max():
                with np.errstate(divide="ignore"):  # (windows of padding only: 0 * inf, NaN)
                    factor = dtype.type(1.0 / counts.flat[0])
                scale = compiled.MUL, np.full(counts.shape[2:], factor)
            else:
                scale = compiled.DIV, np.ascontiguousarray(counts[0, 0], dtype)
            self._plans[key] = scale
        return scale


@kernel("LpPool", 1, 2, 11, 18, 22)
class LpPool(_Pool):
    """LpPool: the p-norm over each window."""

    name = "LpPool"

    def __init__(self, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None,
                 p=2, pads=None, strides=None):  # fmt: skip
        super().__init__(kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        self.p = p

    def __call__(self, x):
        plan = self.plan(x)
        dtype = compute_dtype(x.dtype)
        xa = np.abs(x.astype(dtype, copy=False))
        y = self.reduce(xa**self.p if self.p != 1 else xa, plan, np.add, 0)
        y = np.sqrt(y) if self.p == 2 else y ** (1.0 / self.p)
        return y.astype(x.dtype, copy=False)


def _global_check(name, x):
    if x.ndim < 3:
        raise KernelError(f"{name}: expected X of rank >= 3 (N, C, *spatial), got {x.shape}")
    return tuple(range(2, x.ndim))


@kernel("GlobalMaxPool", 1, 22)
def global_max_pool(x):
    """GlobalMaxPool: the max over all spatial axes (kept as size-1 axes)."""
    return np.max(x, axis=_global_check("GlobalMaxPool", x), keepdims=True)


@kernel("GlobalAveragePool", 1, 22)
def global_average_pool(x):
    """GlobalAveragePool: the mean over all spatial axes (kept as size-1 axes)."""
    axes = _global_check("GlobalAveragePool", x)
    dtype = compute_dtype(x.dtype)
    kept = x.shape[:2]
    y = trailing_mean(x.astype(dtype, copy=False), kept[0] * kept[1]) if x.size else None
    if y is not None:
        y = y.reshape(kept + (1,) * len(axes))
    elif x.ndim == 4 and x.flags.c_contiguous:  # one contiguous row per (n, c)
        n, c, h, w = x.shape
        ones = np.full(h * w, 1.0 / (h * w), dtype=dtype)
        y = (x.reshape(n * c, h * w).astype(dtype, copy=False) @ ones).reshape(n, c, 1, 1)
    else:
        y = np.mean(x, axis=axes, keepdims=True, dtype=dtype)
    return y.astype(x.dtype, copy=False)


@kernel("GlobalLpPool", 1, 2, 22)
def global_lp_pool(x, *, p=2):
    """GlobalLpPool: the p-norm over all spatial axes (kept as size-1 axes)."""
    axes = _global_check("GlobalLpPool", x)
    xa = np.abs(x.astype(compute_dtype(x.dtype), copy=False))
    y = np.sum(xa**p, axis=axes, keepdims=True) ** (1.0 / p)
    return y.astype(x.dtype, copy=False)


@kernel("MaxUnpool", 9, 11, 22)
def max_unpool(x, i, output_shape=None, *, kernel_shape, pads=None, strides=None):
    """MaxUnpool: scatter X to the flat positions I in a zero tensor."""
    name = "MaxUnpool"
    if x.ndim < 3 or i.shape != x.shape:
        raise KernelError(
            f"{name}: expected X of rank >= 3 and I of the same shape, got {x.shape}, {i.shape}"
        )
    nd = x.ndim - 2
    k, s, _, pb, pe = spatial_params(name, nd, kernel_shape, strides, None, pads)
    inferred = x.shape[:2] + tuple(
        (n - 1) * st + kk - b - e for n, st, kk, b, e in zip(x.shape[2:], s, k, pb, pe)
    )
    shape = inferred
    if output_shape is not None:
        shape = tuple(int(v) for v in np.asarray(output_shape).reshape(-1))
        if len(shape) != x.ndim or shape[:2] != x.shape[:2]:
            raise KernelError(
                f"{name}: expected output_shape of length {x.ndim} starting {x.shape[:2]}, "
                f"got {shape}"
            )
    total = math.prod(inferred)
    flat = i.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= total):
        raise KernelError(
            f"{name}: indices must lie in [0, {total}) for the pooled input shape {inferred}; "
            f"got values in [{flat.min()}, {flat.max()}]"
        )
    if shape != inferred:  # indices address the pooled input's shape; place them by coordinate
        coords = np.unravel_index(flat, inferred)
        if any(int(cd.max(initial=0)) >= sz for cd, sz in zip(coords, shape)):
            raise KernelError(
                f"{name}: output_shape {shape} is too small for indices into {inferred}"
            )
        flat = np.ravel_multi_index(coords, shape)
    y = np.zeros(math.prod(shape), dtype=x.dtype)
    y[flat] = x.reshape(-1)
    return y.reshape(shape)


@kernel("MaxRoiPool", 1, 22)
def max_roi_pool(x, rois, *, pooled_shape, spatial_scale=1.0):
    """MaxRoiPool: max over each of pooled_shape bins of each (quantized) region of interest."""
    name = "MaxRoiPool"
    if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5 or len(pooled_shape) != 2:
        raise KernelError(
            f"{name}: expected X (N, C, H, W), rois (R, 5) and pooled_shape of length 2; got "
            f"{x.shape}, {rois.shape}, {pooled_shape}"
        )
    n, c, h, w = x.shape
    ph, pw = pooled_shape
    dtype = compute_dtype(x.dtype)
    xf = x.astype(dtype, copy=False)
    y = np.zeros((rois.shape[0], c, ph, pw), dtype=dtype)
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        b = int(roi[0])
        if not 0 <= b < n:
            raise KernelError(f"{name}: roi {r} has batch index {b} outside [0, {n})")
        x1, y1, x2, y2 = (int(np.round(v * spatial_scale)) for v in roi[1:])
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            hs = min(max(math.floor(i * bh) + y1, 0), h)
            he = min(max(math.ceil((i + 1) * bh) + y1, 0), h)
            for j in range(pw):
                ws = min(max(math.floor(j * bw) + x1, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + x1, 0), w)
                if he > hs and we > ws:
                    y[r, :, i, j] = xf[b, :, hs:he, ws:we].max(axis=(1, 2))
    return y.astype(x.dtype, copy=False)


def _bilinear_taps(coord, size):
    """Low/high indices and weights of 1-D linear interpolation, RoiAlign's edge rules."""
    valid = (coord >= -1.0) & (coord <= size)
    c = np.maximum(coord, 0.0)
    lo = np.floor(c).astype(np.int64)
    edge = lo >= size - 1
    lo = np.where(edge, size - 1, lo)
    hi = np.where(edge, size - 1, lo + 1)
    c = np.where(edge, lo, c)
    frac = c - lo
    return lo, hi, (1.0 - frac) * valid, frac * valid


class _RoiAlign:
    """RoiAlign: bilinear samples averaged (or maxed) over each output bin of each region."""

    default_ctm = "half_pixel"

    def __init__(self, *, coordinate_transformation_mode=None, mode="avg", output_height=1,
                 output_width=1, sampling_ratio=0, spatial_scale=1.0):  # fmt: skip
        ctm = coordinate_transformation_mode or self.default_ctm
        if ctm not in ("half_pixel", "output_half_pixel"):
            raise KernelError(
                "RoiAlign: coordinate_transformation_mode must be 'half_pixel' or "
                f"'output_half_pixel', got {ctm!r}"
            )
        if mode not in ("avg", "max"):
            raise KernelError(f"RoiAlign: mode must be 'avg' or 'max', got {mode!r}")
        self.half_pixel = ctm == "half_pixel"
        self.mode = mode
        self.oh, self.ow = int(output_height), int(output_width)
        self.sampling_ratio = int(sampling_ratio)
        self.scale = float(spatial_scale)

    def __call__(self, x, rois, batch_indices):
        name = "RoiAlign"
        if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4:
            raise KernelError(
                f"{name}: expected X (N, C, H, W) and rois (R, 4), got {x.shape}, {rois.shape}"
            )
        nr = rois.shape[0]
        bidx = np.asarray(batch_indices).reshape(-1).astype(np.int64)
        if bidx.shape[0] != nr:
            raise KernelError(f"{name}: expected batch_indices of shape ({nr},), got {bidx.shape}")
        n, c, h, w = x.shape
        if nr and (bidx.min() < 0 or bidx.max() >= n):
            raise KernelError(f"{name}: batch_indices must lie in [0, {n}), got {bidx.tolist()}")
        dtype = compute_dtype(x.dtype)
        xf = x.astype(dtype, copy=False)
        oh, ow = self.oh, self.ow
        y = np.zeros((nr, c, oh, ow), dtype=dtype)
        off = 0.5 if self.half_pixel else 0.0
        boxes = np.asarray(rois, dtype=np.float64) * self.scale - off
        for r in range(nr):
            x1, y1, x2, y2 = boxes[r]
            rw, rh = x2 - x1, y2 - y1
            if not self.half_pixel:
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            bh, bw = rh / oh, rw / ow
            gh = self.sampling_ratio if self.sampling_ratio > 0 else math.ceil(rh / oh)
            gw = self.sampling_ratio if self.sampling_ratio > 0 else math.ceil(rw / ow)
            gh, gw = max(gh, 1), max(gw, 1)
            ys = y1 + (np.arange(oh)[:, None] * bh + (np.arange(gh)[None, :] + 0.5) * bh / gh)
            xs = x1 + (np.arange(ow)[:, None] * bw + (np.arange(gw)[None, :] + 0.5) * bw / gw)
            ylo, yhi, wyl, wyh = _bilinear_taps(ys.reshape(-1), h)  # (oh*gh,)
            xlo, xhi, wxl, wxh = _bilinear_taps(xs.reshape(-1), w)  # (ow*gw,)
            img = xf[bidx[r]]  # (C, H, W)
            taps = [
                (img[:, ylo][:, :, xlo], np.outer(wyl, wxl)),
                (img[:, ylo][:, :, xhi], np.outer(wyl, wxh)),
                (img[:, yhi][:, :, xlo], np.outer(wyh, wxl)),
                (img[:, yhi][:, :, xhi], np.outer(wyh, wxh)),
            ]
            shape = (c, oh, gh, ow, gw)
            if self.mode == "avg":
                val = sum(v * wt.astype(dtype) for v, wt in taps).reshape(shape)
                y[r] = val.mean(axis=(2, 4))
            else:
                val = np.maximum.reduce([v * wt.astype(dtype) for v, wt in taps]).reshape(shape)
                y[r] = val.max(axis=(2, 4))
        return y.astype(x.dtype, copy=False)


@kernel("RoiAlign", 10)
class RoiAlign10(_RoiAlign):
    """RoiAlign-10: no coordinate_transformation_mode, the input is not pixel-shifted."""

    default_ctm = "output_half_pixel"


@kernel("RoiAlign", 16, 22)
class RoiAlign(_RoiAlign):
    """RoiAlign-16+: coordinate_transformation_mode, half_pixel by default."""
