"""Images and boxes: Resize/Upsample, GridSample, AffineGrid, Col2Im, CenterCropPad,
NonMaxSuppression, RoiAlign, MaxRoiPool.

Resize follows the standard exactly for every mode and coordinate transform: which input pixels
feed each output pixel, and with what weights, depends only on the shapes and the scales, so it
is worked out once at conversion (with the runtime's own planning code) and the module gathers
and weighs (differentiable in X). Ops whose output size depends on the data (NonMaxSuppression)
or that loop over regions (RoiAlign, MaxRoiPool) are one eager-torch call in the module.
"""

from __future__ import annotations

import math

import numpy as np

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import NeedsValues, converter
from onyx.runtime.kernels import vision as _rt

F = torch.nn.functional


def _static(cx, x) -> tuple[int, ...]:
    """The static shape of ``x``; the node runs when the module runs if it is not known now."""
    shape = cx.static_shape(x)
    if shape is None:
        raise NeedsValues()
    return shape


def _known(cx, x) -> np.ndarray:
    """The values of a scales/sizes/roi input, known now: a constant, or a float initializer
    (which the module holds as a Parameter; resizing reads its value at conversion)."""
    c = cx.const(x)
    if c is not None:
        return c
    v = cx.value(x)
    if v is not None and v.const_value is not None:
        return v.const_value.numpy()
    if isinstance(x, torch.nn.Parameter):  # a run-time step gets the Parameter itself
        return x.detach().cpu().numpy()
    raise NeedsValues()


def _work(dtype: torch.dtype) -> torch.dtype:
    if dtype == torch.float64 or dtype in (torch.int32, torch.int64):
        return torch.float64
    return torch.float32


def _cast_back(cx, y, dtype: torch.dtype):
    """``y`` computed in a float type back to ``dtype`` (integers truncate and saturate)."""
    if not dtype.is_floating_point and dtype != torch.bool:
        info = torch.iinfo(dtype)
        y = torch.clamp(y, info.min, info.max)
    return y.to(dtype)


# --- Resize --------------------------------------------------------------------------------
def _resample(cx, x, in_shape, out_shape, scales, lengths, rois, opts, extrapolation, dtype):
    """``x`` (of ``dtype``) resized to ``out_shape`` by per-axis gathers and weights planned now."""
    mode, transform = opts[0], opts[1]
    if any(n == 0 for n in out_shape) or math.prod(in_shape) == 0:
        return torch.zeros(out_shape, dtype=dtype)
    todo = [a for a in range(len(in_shape)) if out_shape[a] != in_shape[a] or scales[a] != 1.0
            or transform == "tf_crop_and_resize"]  # fmt: skip
    todo.sort(key=lambda a: out_shape[a] / in_shape[a])
    work = dtype if mode == "nearest" else _work(dtype)
    y = x if mode == "nearest" else x.to(work)
    rounded = opts[5] and not dtype.is_floating_point
    shape = list(in_shape)
    for a in todo:
        plan = _rt._plan_axis(shape[a], out_shape[a], scales[a], lengths[a], rois[a], opts)
        bshape = [1] * len(shape)
        bshape[a] = out_shape[a]
        if plan.weights is None:
            y = torch.index_select(y, a, torch.from_numpy(plan.index.astype(np.int64)))
        else:
            index = torch.from_numpy(plan.index.astype(np.int64))
            weights = torch.from_numpy(plan.weights).to(work)
            out = None
            for k in range(index.shape[1]):
                term = torch.index_select(y, a, index[:, k].contiguous())
                term = term * weights[:, k].reshape(bshape)
                out = term if out is None else out + term
            y = out
        if plan.outside is not None:
            mask = torch.from_numpy(plan.outside).reshape(bshape)
            y = torch.where(mask, torch.tensor(extrapolation, dtype=work), y)
        if rounded:  # antialiased integer images round each pass, as the runtime does
            info = torch.iinfo(dtype)
            y = torch.clamp(torch.round(y), info.min, info.max)
        shape[a] = out_shape[a]
    if not todo:
        return x
    return y if mode == "nearest" else _cast_back(cx, y, dtype)


@converter("Resize", 11, 13, 18, 19)
def resize(cx, x, roi=None, scales=None, sizes=None, *, mode: str = "nearest",
           coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0,
           nearest_mode: str = "round_prefer_floor", antialias: int = 0,
           axes: list[int] | None = None,
           keep_aspect_ratio_policy: str = "stretch"):  # fmt: skip
    # the runtime kernel validates the attributes (KernelError) and resolves the options
    kernel = _rt.Resize(mode=mode, coordinate_transformation_mode=coordinate_transformation_mode,
                        cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
                        extrapolation_value=extrapolation_value, nearest_mode=nearest_mode,
                        antialias=antialias, axes=axes,
                        keep_aspect_ratio_policy=keep_aspect_ratio_policy)  # fmt: skip
    in_shape = _static(cx, x)
    rank = len(in_shape)
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    scales = None if scales is None else _known(cx, scales).reshape(-1)
    sizes = None if sizes is None else _known(cx, sizes).reshape(-1)
    scales = None if scales is not None and scales.size == 0 else scales
    sizes = None if sizes is not None and sizes.size == 0 else sizes
    if (scales is None) == (sizes is None):
        raise cx.fail("exactly one of 'scales' and 'sizes' must be given (non-empty)")
    n = len(axes)
    out_shape, axis_scale = list(in_shape), [1.0] * rank
    lengths = [float(d) for d in in_shape]
    if scales is not None:
        if len(scales) != n or np.any(scales <= 0):
            raise cx.fail(f"'scales' must be {n} positive values, got {scales.tolist()}")
        for a, s in zip(axes, scales.astype(np.float32)):
            out_shape[a] = int(np.floor(s * np.float32(in_shape[a])))
            axis_scale[a], lengths[a] = float(s), float(s) * in_shape[a]
    else:
        if len(sizes) != n or np.any(sizes < 0):
            raise cx.fail(f"'sizes' must be {n} non-negative values, got {sizes.tolist()}")
        if keep_aspect_ratio_policy == "stretch":
            for a, s in zip(axes, sizes):
                out_shape[a] = lengths[a] = int(s)
                axis_scale[a] = int(s) / in_shape[a] if in_shape[a] else 1.0
        else:
            ratios = [float(s) / in_shape[a] for a, s in zip(axes, sizes)]
            scale = min(ratios) if keep_aspect_ratio_policy == "not_larger" else max(ratios)
            for a in axes:
                out_shape[a] = math.floor(scale * in_shape[a] + 0.5)
                axis_scale[a], lengths[a] = scale, scale * in_shape[a]
    rois = [(0.0, 1.0)] * rank
    if coordinate_transformation_mode == "tf_crop_and_resize":
        r = None if roi is None else _known(cx, roi).reshape(-1).astype(np.float64)
        if r is None or len(r) != 2 * n:
            raise cx.fail(f"mode 'tf_crop_and_resize' needs an 'roi' of {2 * n} values")
        for i, a in enumerate(axes):
            rois[a] = (float(r[i]), float(r[n + i]))
    return _resample(cx, x, in_shape, out_shape, axis_scale, lengths, rois, kernel.opts,
                     kernel.extrapolation, cx.dtype(x))  # fmt: skip


def _legacy(cx, x, scales, mode: str, downsample_ceil: bool):
    """Resize-10 / Upsample: asymmetric coordinates, nearest rounds down (up when shrinking)."""
    if mode not in ("nearest", "linear", "bilinear"):
        raise cx.fail(f"mode must be 'nearest' or 'linear', got {mode!r}")
    in_shape = _static(cx, x)
    scales = np.asarray(scales, np.float32).reshape(-1)
    if len(scales) != len(in_shape) or np.any(scales <= 0):
        raise cx.fail(f"'scales' must be {len(in_shape)} positive values, got {scales.tolist()}")
    y, shape, dtype = x, list(in_shape), cx.dtype(x)
    for a, s in enumerate(scales):
        n_out = int(np.floor(s * np.float32(in_shape[a])))
        if n_out == in_shape[a] and s == 1.0:
            continue
        rule = np.ceil if (downsample_ceil and s < 1) else np.floor
        opts = ("nearest" if mode == "nearest" else "linear", "asymmetric", rule, -0.75, False,
                False)  # fmt: skip
        out = list(shape)
        out[a] = n_out
        ones = [1.0] * len(shape)
        ones[a] = float(s)
        y = _resample(cx, y, shape, out, ones, [float(d) for d in shape],
                      [(0.0, 1.0)] * len(shape), opts, 0.0, dtype)  # fmt: skip
        shape = out
    return y


@converter("Resize", 10)
def resize_10(cx, x, scales, *, mode: str = "nearest"):
    return _legacy(cx, x, _known(cx, scales), mode, True)


@converter("Upsample", 7)
def upsample_7(cx, x, *, mode: str = "nearest", scales: list[float]):
    return _legacy(cx, x, scales, mode, False)


@converter("Upsample", 9)
def upsample_9(cx, x, scales, *, mode: str = "nearest"):
    return _legacy(cx, x, _known(cx, scales), mode, False)


# --- GridSample, AffineGrid ----------------------------------------------------------------
_GRID_MODES = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest",
               "bicubic": "bicubic", "cubic": "bicubic"}  # fmt: skip


@converter("GridSample", 16, 20)
def grid_sample(cx, x, grid, *, align_corners: int = 0, mode: str = "linear",
                padding_mode: str = "zeros"):  # fmt: skip
    if mode not in _GRID_MODES:
        raise cx.fail(f"mode must be 'linear', 'nearest' or 'cubic', got {mode!r}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise cx.fail(f"padding_mode must be zeros, border or reflection, got {padding_mode!r}")
    rank, how = cx.rank(x), _GRID_MODES[mode]
    if rank not in (4, 5) or (rank == 5 and how == "bicubic"):
        raise cx.fail(f"torch samples 2-D grids (and 3-D ones linearly or nearest), not "
                      f"{rank - 2}-D {mode}")  # fmt: skip
    dtype = cx.dtype(x)
    work = dtype if dtype.is_floating_point else _work(dtype)
    y = F.grid_sample(x.to(work), grid.to(work), mode=how, padding_mode=padding_mode,
                      align_corners=bool(align_corners))  # fmt: skip
    return y if dtype == work else _cast_back(cx, y, dtype)


@converter("AffineGrid", 20)
def affine_grid(cx, theta, size, *, align_corners: int = 0):
    sizes = cx.sizes(size)
    if sizes is None:
        raise NeedsValues()
    if len(sizes) not in (4, 5):
        raise cx.fail(f"'size' must have 4 (2-D) or 5 (3-D) values, got {sizes}")
    dtype = cx.dtype(theta)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    return F.affine_grid(theta.to(work), list(sizes), align_corners=bool(align_corners)).to(dtype)


# --- Col2Im, CenterCropPad -----------------------------------------------------------------
@converter("Col2Im", 18)
def col2im(cx, x, image_shape, block_shape, *, dilations: list[int] | None = None,
           pads: list[int] | None = None, strides: list[int] | None = None):  # fmt: skip
    image, block = cx.need(image_shape), cx.need(block_shape)
    nd = len(image)
    dilations, strides = dilations or [1] * nd, strides or [1] * nd
    pads = pads or [0] * (2 * nd)
    buf = [i + pads[d] + pads[d + nd] for d, i in enumerate(image)]
    blocks = [(b - ((k - 1) * dl + 1)) // s + 1 for b, k, dl, s in
              zip(buf, block, dilations, strides)]  # fmt: skip
    # where each (kernel position, block position) lands in the padded image, flattened
    kpos = np.stack(np.meshgrid(*[np.arange(k) for k in block], indexing="ij"), -1).reshape(-1, nd)
    bpos = np.stack(np.meshgrid(*[np.arange(b) for b in blocks], indexing="ij"), -1)
    bpos = bpos.reshape(-1, nd)
    coords = kpos[:, None, :] * np.array(dilations) + bpos[None, :, :] * np.array(strides)
    flat = np.ravel_multi_index(tuple(np.moveaxis(coords, -1, 0)), buf).reshape(-1)
    shape = cx.shape(x)
    n, kp = shape[0], math.prod(block)
    c = shape[1] // kp if isinstance(shape[1], int) else -1
    dtype = cx.dtype(x)
    cols = x.reshape(n, c, kp * math.prod(blocks))
    if dtype == torch.bool:
        cols = cols.to(torch.uint8)
    y = torch.zeros(n, c if c != -1 else 1, math.prod(buf), dtype=cols.dtype) if c != -1 else None
    if y is None:
        raise NeedsValues()
    y = y.index_add(2, torch.from_numpy(flat.astype(np.int64)), cols)
    y = y.reshape(n, c, *buf)
    y = y[(slice(None), slice(None)) + tuple(slice(pads[d], pads[d] + image[d])
                                             for d in range(nd))]  # fmt: skip
    return y.to(dtype)


@converter("CenterCropPad", 18)
def center_crop_pad(cx, x, shape, *, axes: list[int] | None = None):
    in_shape = _static(cx, x)
    rank = len(in_shape)
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    target = cx.need(shape)
    if len(target) != len(axes):
        raise cx.fail(f"'shape' must have {len(axes)} values (one per axis), got {target}")
    index = [slice(None)] * rank
    pad = [0] * (2 * rank)  # F.pad order: last dim first
    for a, t in zip(axes, target):
        size = in_shape[a]
        if size >= t:
            start = (size - t) // 2
            index[a] = slice(start, start + t)
        else:
            before = (t - size) // 2
            pad[2 * (rank - 1 - a)] = before
            pad[2 * (rank - 1 - a) + 1] = t - size - before
    y = x[tuple(index)]
    return F.pad(y, pad) if any(pad) else y


# --- boxes ---------------------------------------------------------------------------------
def onnx_nms(boxes, scores, limit, iou_max, min_score, center_point_box: int):
    """NonMaxSuppression in eager torch: (selected, 3) int64 rows [batch, class, box]."""
    limit = 0 if limit is None else int(limit.reshape(-1)[0]) if limit.numel() else 0
    iou_max = 0.0 if iou_max is None or not iou_max.numel() else float(iou_max.reshape(-1)[0])
    min_score = None if min_score is None or not min_score.numel() else float(
        min_score.reshape(-1)[0])  # fmt: skip
    empty = torch.zeros(0, 3, dtype=torch.int64, device=boxes.device)
    if limit <= 0 or boxes.shape[1] == 0:
        return empty
    b = boxes.to(torch.float64)
    if center_point_box:
        hw, hh = b[..., 2] / 2, b[..., 3] / 2
        y1, x1, y2, x2 = b[..., 1] - hh, b[..., 0] - hw, b[..., 1] + hh, b[..., 0] + hw
    else:
        y1, y2 = torch.minimum(b[..., 0], b[..., 2]), torch.maximum(b[..., 0], b[..., 2])
        x1, x2 = torch.minimum(b[..., 1], b[..., 3]), torch.maximum(b[..., 1], b[..., 3])
    area = (y2 - y1) * (x2 - x1)
    rows = []
    for bi in range(boxes.shape[0]):
        for ci in range(scores.shape[1]):
            s = scores[bi, ci]
            order = torch.argsort(-s.to(torch.float64), stable=True)
            if min_score is not None:
                order = order[s[order] > min_score]
            kept = []
            while order.numel() and len(kept) < limit:
                best, rest = order[0], order[1:]
                kept.append(int(best))
                ih = torch.minimum(y2[bi, best], y2[bi, rest]) - torch.maximum(
                    y1[bi, best], y1[bi, rest]
                )
                iw = torch.minimum(x2[bi, best], x2[bi, rest]) - torch.maximum(
                    x1[bi, best], x1[bi, rest]
                )
                inter = torch.clamp(ih, min=0) * torch.clamp(iw, min=0)
                union = area[bi, best] + area[bi, rest] - inter
                iou = torch.where(union > 0, inter / union, torch.zeros_like(inter))
                order = rest[iou <= iou_max]
            rows += [(bi, ci, k) for k in kept]
    if not rows:
        return empty
    return torch.tensor(rows, dtype=torch.int64, device=boxes.device)


@converter("NonMaxSuppression", 10)
def non_max_suppression(cx, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
                        score_threshold=None, *, center_point_box: int = 0):  # fmt: skip
    if center_point_box not in (0, 1):
        raise cx.fail(f"center_point_box must be 0 or 1, got {center_point_box}")
    return cx.call(onnx_nms, boxes, scores, max_output_boxes_per_class, iou_threshold,
                   score_threshold, center_point_box)  # fmt: skip


def _roi_taps(coord, size: int):
    """Low/high indices and weights of 1-D linear interpolation with RoiAlign's edge rules."""
    valid = ((coord >= -1.0) & (coord <= size)).to(coord.dtype)
    c = torch.clamp(coord, min=0.0)
    lo = torch.floor(c).to(torch.int64)
    edge = lo >= size - 1
    lo = torch.where(edge, torch.full_like(lo, size - 1), lo)
    hi = torch.where(edge, torch.full_like(lo, size - 1), lo + 1)
    c = torch.where(edge, lo.to(c.dtype), c)
    frac = c - lo.to(c.dtype)
    return lo, hi, (1.0 - frac) * valid, frac * valid


def onnx_roi_align(x, rois, batch_indices, *, half_pixel: bool, mode: str, oh: int, ow: int,
                   sampling_ratio: int, scale: float):  # fmt: skip
    """RoiAlign in eager torch (one region at a time; bilinear samples averaged or maxed)."""
    _n, c, h, w = x.shape
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(work)
    off = 0.5 if half_pixel else 0.0
    boxes = rois.to(torch.float64) * scale - off
    bidx = batch_indices.reshape(-1).to(torch.int64)
    outs = []
    for r in range(rois.shape[0]):
        x1, y1, x2, y2 = (float(v) for v in boxes[r])
        rw, rh = x2 - x1, y2 - y1
        if not half_pixel:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = max(sampling_ratio if sampling_ratio > 0 else math.ceil(rh / oh), 1)
        gw = max(sampling_ratio if sampling_ratio > 0 else math.ceil(rw / ow), 1)
        ar = lambda k: torch.arange(k, dtype=torch.float64, device=x.device)
        ys = y1 + (ar(oh)[:, None] * bh + (ar(gh)[None, :] + 0.5) * bh / gh)
        xs = x1 + (ar(ow)[:, None] * bw + (ar(gw)[None, :] + 0.5) * bw / gw)
        ylo, yhi, wyl, wyh = _roi_taps(ys.reshape(-1), h)
        xlo, xhi, wxl, wxh = _roi_taps(xs.reshape(-1), w)
        img = xf[bidx[r]]
        taps = [(img[:, ylo][:, :, xlo], torch.outer(wyl, wxl)),
                (img[:, ylo][:, :, xhi], torch.outer(wyl, wxh)),
                (img[:, yhi][:, :, xlo], torch.outer(wyh, wxl)),
                (img[:, yhi][:, :, xhi], torch.outer(wyh, wxh))]  # fmt: skip
        vals = [v * wt.to(work) for v, wt in taps]
        shape = (c, oh, gh, ow, gw)
        if mode == "avg":
            outs.append(sum(vals).reshape(shape).mean(dim=(2, 4)))
        else:
            m = torch.stack(vals).amax(0).reshape(shape)
            outs.append(m.amax(dim=(2, 4)))
    if not outs:
        return torch.zeros(0, c, oh, ow, dtype=x.dtype, device=x.device)
    return torch.stack(outs).to(x.dtype)


def _roi_align(cx, x, rois, batch_indices, ctm, mode, output_height, output_width,
               sampling_ratio, spatial_scale):  # fmt: skip
    if ctm not in ("half_pixel", "output_half_pixel") or mode not in ("avg", "max"):
        raise cx.fail(f"coordinate_transformation_mode {ctm!r} / mode {mode!r} not supported")
    return cx.call(onnx_roi_align, x, rois, batch_indices, half_pixel=ctm == "half_pixel",
                   mode=mode, oh=int(output_height), ow=int(output_width),
                   sampling_ratio=int(sampling_ratio), scale=float(spatial_scale))  # fmt: skip


@converter("RoiAlign", 10)
def roi_align_10(cx, x, rois, batch_indices, *, mode: str = "avg", output_height: int = 1,
                 output_width: int = 1, sampling_ratio: int = 0,
                 spatial_scale: float = 1.0):  # fmt: skip
    return _roi_align(cx, x, rois, batch_indices, "output_half_pixel", mode, output_height,
                      output_width, sampling_ratio, spatial_scale)  # fmt: skip


@converter("RoiAlign", 16, 22)
def roi_align(cx, x, rois, batch_indices, *, coordinate_transformation_mode: str = "half_pixel",
              mode: str = "avg", output_height: int = 1, output_width: int = 1,
              sampling_ratio: int = 0, spatial_scale: float = 1.0):  # fmt: skip
    return _roi_align(cx, x, rois, batch_indices, coordinate_transformation_mode, mode,
                      output_height, output_width, sampling_ratio, spatial_scale)  # fmt: skip


def onnx_max_roi_pool(x, rois, *, ph: int, pw: int, scale: float):
    """MaxRoiPool in eager torch: max over each bin of each (rounded) region."""
    _n, c, h, w = x.shape
    y = torch.zeros(rois.shape[0], c, ph, pw, dtype=x.dtype, device=x.device)
    for r, roi in enumerate(rois.to(torch.float64).tolist()):
        b = int(roi[0])
        x1, y1, x2, y2 = (round(v * scale) for v in roi[1:])
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            hs = min(max(math.floor(i * bh) + y1, 0), h)
            he = min(max(math.ceil((i + 1) * bh) + y1, 0), h)
            for j in range(pw):
                ws = min(max(math.floor(j * bw) + x1, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + x1, 0), w)
                if he > hs and we > ws:
                    y[r, :, i, j] = x[b, :, hs:he, ws:we].amax(dim=(1, 2))
    return y


@converter("MaxRoiPool", 1, 22)
def max_roi_pool(cx, x, rois, *, pooled_shape: list[int], spatial_scale: float = 1.0):
    if len(pooled_shape) != 2:
        raise cx.fail(f"pooled_shape must have 2 values, got {pooled_shape}")
    return cx.call(onnx_max_roi_pool, x, rois, ph=int(pooled_shape[0]), pw=int(pooled_shape[1]),
                   scale=float(spatial_scale))  # fmt: skip
