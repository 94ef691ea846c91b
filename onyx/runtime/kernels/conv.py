"""Convolutions: Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv, Col2Im, CausalConvWithState.

Convolution runs as GEMM: a 1x1 stride-1 convolution is one matmul on (N, C, H*W); a general
one builds its im2col matrix from a strided view of the padded input and does one (batched over
groups) matmul; a depthwise one is a sum of kernel-offset shifted multiply-adds. Class kernels
keep the re-laid-out weight, keyed on the weight array itself (weights are initializers).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels.registry import kernel
from onyx.runtime.memory import aligned_empty, check_allocation, scratch

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


# --- geometry shared with pool.py ------------------------------------------------------------
def spatial_params(name, nd, kernel_shape, strides, dilations, pads):
    """Defaulted (kernel, strides, dilations, pads_begin, pads_end) tuples for ``nd`` spatial axes."""
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    kernel_shape = list(kernel_shape)
    if len(kernel_shape) != nd or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
        raise KernelError(
            f"{name}: expected kernel_shape, strides, dilations of length {nd} and pads of "
            f"length {2 * nd} for {nd} spatial axes; got kernel_shape={kernel_shape}, "
            f"strides={strides}, dilations={dilations}, pads={pads}"
        )
    if min(strides) < 1 or min(dilations) < 1 or min(kernel_shape) < 1 or min(pads) < 0:
        raise KernelError(
            f"{name}: strides, dilations, kernel_shape must be >= 1 and pads >= 0; got "
            f"strides={strides}, dilations={dilations}, kernel_shape={kernel_shape}, pads={pads}"
        )
    return kernel_shape, strides, dilations, pads[:nd], pads[nd:]


def output_geometry(name, in_shape, kernel_shape, strides, dilations, pb, pe, auto_pad,
                    ceil_mode=False):  # fmt: skip
    """(out_shape, pads_begin, pads_end) of a convolution/pooling window over ``in_shape``.

    With ``ceil_mode`` the end padding may grow so the last (partial) window fits; windows that
    would start in the end padding are dropped.
    """
    if auto_pad not in _AUTO_PADS:
        raise KernelError(f"{name}: auto_pad must be one of {_AUTO_PADS}, got {auto_pad!r}")
    out, begins, ends = [], [], []
    for size, k, s, d, b, e in zip(in_shape, kernel_shape, strides, dilations, pb, pe):
        keff = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max(0, (o - 1) * s + keff - size)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        else:
            if auto_pad == "VALID":
                b = e = 0
            span = size + b + e - keff
            if span < 0:
                raise KernelError(
                    f"{name}: the kernel (extent {keff}) is larger than the padded input "
                    f"(size {size + b + e})"
                )
            if ceil_mode:
                o = -(-span // s) + 1
                if (o - 1) * s >= size + b:
                    o -= 1
                e = max(e, (o - 1) * s + keff - size - b)
            else:
                o = span // s + 1
        out.append(o)
        begins.append(b)
        ends.append(e)
    # pads, strides and dilations are attributes: absurd ones must not reach numpy (a byte per
    # output position here; the callers' arrays are at least that big)
    check_allocation(out, np.uint8)
    return out, begins, ends


def pad_input(x, pb, pe, value=0):
    """``x`` (N, C, *S) padded on its spatial axes (no copy when there is no padding)."""
    if not any(pb) and not any(pe):
        return x
    shape = x.shape[:2] + tuple(s + b + e for s, b, e in zip(x.shape[2:], pb, pe))
    check_allocation(shape, x.dtype)
    # zeros where it can: np.zeros fills about twice as fast as np.full (bench_numpy_layouts.py)
    out = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(pb, x.shape[2:]))] = x
    return out


def window_view(xp, kernel_shape, strides, dilations, out_shape, kernel_first=True):
    """Strided view of padded ``xp`` (N, C, *S): (N, C, *K, *O) (or (N, C, *O, *K))."""
    st = xp.strides
    ks = tuple(st[2 + i] * d for i, d in enumerate(dilations))
    os_ = tuple(st[2 + i] * s for i, s in enumerate(strides))
    if kernel_first:
        shape = xp.shape[:2] + tuple(kernel_shape) + tuple(out_shape)
        strides = st[:2] + ks + os_
    else:
        shape = xp.shape[:2] + tuple(out_shape) + tuple(kernel_shape)
        strides = st[:2] + os_ + ks
    if xp.flags.c_contiguous and xp.size:  # the ndarray constructor is faster (bench_numpy_layouts)
        view = np.ndarray(shape, xp.dtype, buffer=xp, strides=strides)
        view.flags.writeable = False
        return view
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def kernel_slices(kernel_shape, strides, dilations, out_shape):
    """For each kernel offset: (offset tuple, the spatial slices of the padded input it reads)."""
    for offset in np.ndindex(*kernel_shape):
        yield (
            offset,
            tuple(
                slice(k * d, k * d + (o - 1) * s + 1, s)
                for k, d, s, o in zip(offset, dilations, strides, out_shape)
            ),
        )


def compute_dtype(dtype):
    """The dtype arithmetic runs in: float32 for half/bfloat16/float8, else the dtype itself."""
    found = _COMPUTE_DTYPES.get(dtype)
    if found is None:
        found = np.dtype(dtype)
        name = found.name
        if found not in (np.float32, np.float64) and (
            found.kind in "fV" or found.itemsize < 4 or "bfloat" in name or "float8" in name
        ):
            found = np.dtype(np.float32)
        _COMPUTE_DTYPES[dtype] = found
    return found


_COMPUTE_DTYPES: dict = {}  # (a call per convolution: numpy's dtype checks cost microseconds)


# --- the convolution core --------------------------------------------------------------------
def _check_rank(name, x, w):
    if x.ndim < 3 or w.ndim != x.ndim:
        raise KernelError(
            f"{name}: expected X of rank >= 3 (N, C, *spatial) and W of the same rank; "
            f"got X shape {x.shape}, W shape {w.shape}"
        )


class _ConvGeometry:
    """The attributes of a convolution, with the per-shape plan cached."""

    def __init__(self, name, kernel_shape, strides, dilations, pads, auto_pad, group):
        self.name = name
        self.attrs = (kernel_shape, strides, dilations, pads)
        self.auto_pad = auto_pad
        self.group = int(group)
        if self.group < 1:
            raise KernelError(f"{name}: group must be >= 1, got {group}")
        self._plans = {}

    def plan(self, x_shape, w_shape):
        key = (x_shape, w_shape)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan(x_shape, w_shape)
        return plan

    def _make_plan(self, x_shape, w_shape):
        name, g = self.name, self.group
        nd = len(x_shape) - 2
        kernel_shape, strides, dilations, pads = self.attrs
        if kernel_shape and list(kernel_shape) != list(w_shape[2:]):
            raise KernelError(
                f"{name}: kernel_shape {list(kernel_shape)} disagrees with W's spatial shape "
                f"{list(w_shape[2:])}"
            )
        k, s, d, pb, pe = spatial_params(name, nd, w_shape[2:], strides, dilations, pads)
        c, m = x_shape[1], w_shape[0]
        if c % g or m % g or w_shape[1] * g != c:
            raise KernelError(
                f"{name}: with group={g}, X has {c} channels and W shape {w_shape}; expected "
                f"W.shape[1] * group == C ({w_shape[1]} * {g} != {c}) and M divisible by group"
            )
        out, pb, pe = output_geometry(name, x_shape[2:], k, s, d, pb, pe, self.auto_pad)
        pointwise = all(v == 1 for v in k) and not any(pb) and not any(pe)
        return k, s, d, pb, pe, out, pointwise


# --- channel-last tensors between convolutions --------------------------------------------------
# A pointwise convolution and the depthwise one it feeds (MobileNet's and EfficientNet's inverted
# residuals) may pass their tensor channel-last: a (N, C, H, W) view of a (N, H, W, C) array. On
# small planes the depthwise kernel runs channel-last (its innermost loop along the channels,
# where a plane's rows are short), and a pointwise one computes X W^T as fast as W X, so the
# transposes into and out of that kernel go. The plan marks the convolutions that may return
# such a view (``Conv.channels_last``; fusion.mark_channels_last); every Conv takes one as its
# input.
_NARROW_PLANE = 8  # output width up to which a depthwise convolution runs channel-last anyway
_LAST_PLANE = 14 * 14  # planes up to which a marked convolution writes channel-last


def channels_last(x):
    """The C-contiguous (N, H, W, C) array that the 4-D ``x`` (N, C, H, W) is a view of; None
    where x is laid out otherwise (or both ways: one channel or one pixel)."""
    if type(x) is not np.ndarray or x.ndim != 4 or x.flags.c_contiguous:
        return None
    xl = x.transpose(0, 2, 3, 1)
    return xl if xl.flags.c_contiguous else None


def _pointwise_last(x, xl, w_last, plan, finish, packed, swish=False):
    """A 1x1 stride-1 convolution with one group of ``x`` or, where given, of its channel-last
    ``xl``: the (N, Ho, Wo, M) result, ``finish`` applied (where given), then a Swish where
    ``swish`` (in the packed product's store where it takes it). ``w_last()``: the weight as
    (C, M), C-contiguous; ``packed``: its cache for onyx's own GEMM (or None).
    (OpenBLAS reads a transposed operand slower: 160 -> 222 us on MobileNetV2's 160 -> 960
    layer with the weight transposed, 102 -> 129 us on its 384 -> 64 one with the input
    transposed, where this product of both as laid out takes 98.)"""
    n, c = x.shape[:2]
    out = plan[5]
    weight = w_last()
    pixels, m = math.prod(out), weight.shape[-1]
    # (pixels, C) images: the channel-last ones as they are, NCHW ones read transposed
    if xl is not None:
        images = xl.reshape(n, pixels, c)
    else:
        images = np.ascontiguousarray(x).reshape(n, c, pixels).transpose(0, 2, 1)
    yl = np.empty((n, pixels, m), x.dtype)
    for i in range(n):
        # (split by pixels unless they are few: MobileNetV2's 14x14 layers by pixels 59 against
        # 72 us, its 7x7 ones by channels 92 against 104, on 2 threads)
        threads.matmul(images[i], weight.reshape(c, m), out=yl[i], finish=finish,
                       by_rows=4 * pixels >= m, packed=packed, swish=swish)  # fmt: skip
    return yl.reshape(n, *out, m)


def _depthwise_last(jit, x, xl, w_last, plan, finish, want_last, swish=False):
    """A depthwise 2-D convolution (one input channel per output channel) computed channel-last,
    of ``x`` or, where given, of its channel-last ``xl``, ``finish`` (or nothing) applied, then
    a Swish where ``swish`` (float32): channel-last where ``want_last``, else (N, C, Ho, Wo)."""
    k, s, d, pb, _, out, _ = plan
    n, c = x.shape[:2]
    if xl is None:
        xl = np.empty((n, *x.shape[2:], c), x.dtype)
        jit.to_channels_last(np.ascontiguousarray(x), xl)
    wl = w_last().reshape(*k, c)
    yl = np.empty((n, *out, c), x.dtype)
    kind = x.dtype.type
    bias = _NO_BIAS[x.dtype] if finish is None or finish.bias is None else finish.bias
    lo, hi = (kind(-np.inf), kind(np.inf)) if finish is None else (kind(finish.lo), kind(finish.hi))
    # (an NCHW result is moved from yl row by row inside the kernel, on the pool's threads)
    y = _NO_OUTPUT[x.dtype] if want_last else np.empty((n, c, *out), x.dtype)
    work = yl.size * math.prod(k)
    if x.dtype == np.float32 and jit.tiles_fit(k, s, d, out[1]):
        steps = (*pb, bias, lo, hi, y)
        steps_all = (0, c, *steps)  # (every channel: one band of them)
        threads.rows(n * out[0], work,
                     lambda r0, r1: jit.depthwise_last_tiles(xl, wl, yl, r0, r1, *steps_all, swish),
                     native=lambda par, parts: par.depthwise_tiles_bands(xl, wl, yl, *steps,
                                                                         parts, swish))  # fmt: skip
    else:
        steps = (*s, *d, *pb, bias, lo, hi, y)
        threads.rows(n * out[0], work,
                     lambda r0, r1: jit.depthwise_channels_last(xl, wl, yl, r0, r1, *steps,
                                                                swish),
                     native=lambda par, parts: par.depthwise_last_bands(xl, wl, yl, *steps,
                                                                        parts, swish))  # fmt: skip
    return yl.transpose(0, 3, 1, 2) if want_last else y


_NO_BIAS = {t: np.empty(0, t) for t in compiled.DTYPES}
_NO_OUTPUT = {t: np.empty((0, 0, 0, 0), t) for t in compiled.DTYPES}


def last_weight(w, dtype) -> np.ndarray:
    """W (M, C/group, kh, kw) as (kh, kw, C/group, M), C-contiguous: a pointwise weight as (C, M),
    a depthwise one as (kh, kw, M), for the channel-last paths; read-only, as the session's
    initializers are (so a product may keep it packed: threads.PackedWeight)."""
    last = np.array(np.asarray(w, dtype).transpose(2, 3, 1, 0), order="C")
    last.flags.writeable = False
    return last


def _channels_last_route(x, w_gemm, w_dw, plan, epilogue, want_last):
    """How ``conv_channels_last`` takes this call: (kind, xl, steps, want_last) with kind
    "pointwise" or "depthwise", xl the channel-last array x is a view of (or None), steps the
    epilogue's ``channel_steps`` and want_last whether the result is written channel-last;
    None where it does not take it."""
    k, s, _, _, _, out, pointwise = plan
    if len(k) != 2 or x.dtype not in compiled.DTYPES:
        return None
    xl = channels_last(x)
    narrow = w_dw is not None and out[1] <= _NARROW_PLANE and x.shape[1] >= 64
    if xl is None and not want_last and not narrow:
        return None
    steps = epilogue.channel_steps()
    # (a large NCHW input is not transposed for it: 0.3 ms on MobileNetV2's 56x56 layers)
    small = xl is not None or math.prod(x.shape[2:]) <= _LAST_PLANE
    want_last = (
        want_last
        and steps is not None
        and small
        and math.prod(out) <= _LAST_PLANE
        and compiled.kernels(compiled.MIN_SIZE) is not None  # (the depthwise kernel's)
    )
    if pointwise and all(v == 1 for v in s) and w_gemm.shape[0] == 1:
        if not want_last and (xl is None or compiled.kernels(x.size) is None):
            return None
        return "pointwise", xl, steps, want_last
    if w_dw is None or w_gemm.shape[1] != 1 or x.dtype != w_dw.dtype:
        return None
    if compiled.kernels(math.prod(out) * w_dw.size) is None:
        return None
    if not (xl is not None or want_last or narrow):
        return None
    return "depthwise", xl, steps, want_last


def conv_channels_last(x, w_gemm, w_dw, w_last, plan, epilogue, want_last, packed=None):
    """Y of a pointwise (1x1, stride 1, one group) or depthwise (one input channel per output
    channel) 2-D convolution, as (y, whether the ``epilogue`` was applied), where its input is
    channel-last or its output may be (``want_last``: where the planes are small and the
    epilogue is a bias, bounds and a Swish, each optional, it is); None where neither holds or
    the convolution is neither kind. ``w_last()``: W as (kh, kw, C/group, M), C-contiguous
    (``last_weight``); ``packed``: a pointwise W's cache for onyx's own GEMM (or None)."""
    route = _channels_last_route(x, w_gemm, w_dw, plan, epilogue, want_last)
    if route is None:
        return None
    kind, xl, steps, want_last = route
    finish = None if steps is None else threads.Finish(*steps[:3])
    out = plan[5]
    if kind == "pointwise":
        if want_last:
            y = _pointwise_last(x, xl, w_last, plan, finish, packed, steps[3])
            return y.transpose(0, 3, 1, 2), True
        # (channel-last, then moved: cheaper than a GEMM reading it transposed)
        yl = _pointwise_last(x, xl, w_last, plan, None, packed)
        y = np.empty((yl.shape[0], yl.shape[3], *out), x.dtype)
        compiled.kernels(x.size).from_channels_last(yl, y)
        return y, False
    jit = compiled.kernels(math.prod(out) * w_dw.size)
    swish = finish is not None and steps[3] and x.dtype == np.float32  # (in the kernel)
    y = _depthwise_last(jit, x, xl, w_last, plan, finish, want_last, swish)
    if finish is None:
        return y, False
    return (_swish(y) if steps[3] and not swish else y), True


def channels_last_replay(x, w_gemm, w_dw, w_last, plan, epilogue, want_last, packed=None):
    """``conv_channels_last`` again for calls like this one (one image; the epilogue all in the
    kernel): a function (x, out, epilogue) -> Y that makes the kernel's call with what it takes
    fixed now (``pointwise_last_replay``, ``depthwise_last_replay``); None where the call is not
    such (an epilogue applied after, a result moved to NCHW after the product, an NCHW input
    moved channel-last first). MobileNetV2 and EfficientNet-B0 have 20 layers each that take
    these: with them they took 0.94x and 0.95x their time (bench_revisions.py, 5 rounds, 2
    threads, a Zen 5; 3.1 -> 2.9 and 4.8 -> 4.5 ms)."""
    if epilogue.extras or x.shape[0] != 1:  # (its steps fixed now: none bound at run time)
        return None
    route = _channels_last_route(x, w_gemm, w_dw, plan, epilogue, want_last)
    if route is None or route[2] is None:
        return None
    kind, xl, steps, want_last = route
    finish = threads.Finish(*steps[:3])
    if kind == "pointwise":
        if not want_last:
            return None
        return pointwise_last_replay(x, xl, w_last, plan, finish, packed, steps[3])
    swish = steps[3] and x.dtype == np.float32
    if xl is None or (steps[3] and not swish):
        return None
    jit = compiled.kernels(math.prod(plan[5]) * w_dw.size)
    return depthwise_last_replay(jit, x, xl, w_last, plan, finish, want_last, swish)


def pointwise_last_replay(x, xl, w_last, plan, finish, packed, swish):
    """``_pointwise_last`` again for calls like this one (one image, x laid out as now): a
    function (x, out, epilogue) -> Y (a channel-last view) calling onyx's packed GEMM with what
    it takes fixed now (``threads.packed_replay``); None where that product is not how it
    goes."""
    c = x.shape[1]
    out = plan[5]
    weight = w_last()
    pixels, m = math.prod(out), weight.shape[-1]
    last = xl is not None
    if not (last or x.flags.c_contiguous):
        return None

    def rows(x):  # (the image's pixels by channels: as in _pointwise_last)
        return x.transpose(0, 2, 3, 1).reshape(pixels, c) if last else x.reshape(c, pixels).T

    shape = (1, *out, m)
    again = threads.packed_replay(rows(x), weight.reshape(c, m), np.empty((pixels, m), x.dtype),
                                  finish, 4 * pixels >= m, packed, swish)  # fmt: skip
    if again is None:
        return None

    def replay(x, y, epilogue):  # (``y``, a buffer for NCHW results, unused: as channel_last)
        yl = np.empty(shape, np.float32)
        again(rows(x), yl.reshape(pixels, m))
        return yl.transpose(0, 3, 1, 2)

    return replay


def depthwise_last_replay(jit, x, xl, w_last, plan, finish, want_last, swish):
    """``_depthwise_last`` again for calls like this one (x channel-last, laid out as now, its
    ``finish`` given): a function (x, out, epilogue) -> Y calling the kernel ``_depthwise_last``
    calls with what it takes fixed now, on numba's threads as ``threads.rows`` splits it; None
    where the pool would split it otherwise."""
    k, s, d, pb, _, out, _ = plan
    n, c = x.shape[:2]
    rows = n * out[0]
    parts = threads.row_parts(rows, n * math.prod(out) * c * math.prod(k))
    pool = threads.current()
    if parts > 1 and (pool is None or pool.native is None):
        return None
    par = pool.native.kernels if parts > 1 else None
    wl = w_last().reshape(*k, c)
    kind = x.dtype.type
    bias = _NO_BIAS[x.dtype] if finish.bias is None else finish.bias
    lo, hi = kind(finish.lo), kind(finish.hi)
    tiles = x.dtype == np.float32 and jit.tiles_fit(k, s, d, out[1])
    y_shape, yl_shape = (n, c, *out), (n, *out, c)

    def replay(x, _out, _epilogue):  # (no ``out``: as channel_last)
        xl = x.transpose(0, 2, 3, 1)
        yl = np.empty(yl_shape, x.dtype)
        y = _NO_OUTPUT[x.dtype] if want_last else np.empty(y_shape, x.dtype)
        if tiles and par is None:
            jit.depthwise_last_tiles(xl, wl, yl, 0, rows, 0, c, *pb, bias, lo, hi, y, swish)
        elif tiles:
            par.depthwise_tiles_bands(xl, wl, yl, *pb, bias, lo, hi, y, parts, swish)
        elif par is None:
            jit.depthwise_channels_last(xl, wl, yl, 0, rows, *s, *d, *pb, bias, lo, hi, y, swish)
        else:
            par.depthwise_last_bands(xl, wl, yl, *s, *d, *pb, bias, lo, hi, y, parts, swish)
        return yl.transpose(0, 3, 1, 2) if want_last else y

    return replay


# A 1x1 convolution at least this deep (C) runs on the session's pool of numba's threads as
# Y^T = X^T W^T on onyx's own GEMM, W packed once, each tile of pixels stored transposed straight
# into Y's planes: 1.2-2.0x BLAS's W X where it narrows (an inverted residual's projection, a
# bottleneck's reduction, a fire module's squeeze), 1.3-1.5x on MobileNetV2's widening layers of
# 14x14 and 7x7 (split by output channels there), 0.81-1.32x on ResNet-50's widening ones (its
# 128 -> 512 at 1.00x and 0.81x in two runs); shallower ones keep BLAS's, where the transposed
# stores outweigh a product of 16-32 terms (0.6-0.8x; benchmarks/bench_packed_convs.py, part 1,
# 2 threads).
_PACKED_POINTWISE_DEPTH = 64


def packed_pointwise_pays(plan, group, w_shape, dtype) -> bool:
    """Whether a convolution takes ``conv_packed_pointwise``: float32, 1x1, stride 1, no
    padding, one group, C >= _PACKED_POINTWISE_DEPTH, at least 32 output pixels."""
    _, s, _, _, _, out, pointwise = plan
    c = w_shape[1]
    return (
        pointwise
        and group == 1
        and dtype == np.float32
        and all(v == 1 for v in s)
        and c >= _PACKED_POINTWISE_DEPTH
        and math.prod(out) >= 32
    )


def conv_packed_pointwise(x, w_last, packed, plan, epilogue, y=None):
    """Y (N, M, *O) of a convolution that ``packed_pointwise_pays`` for, into ``y`` where
    given, as Y^T = X^T W^T per image (``_transposed_products``; W as (C, M) from
    ``w_last()``, packed in ``packed``: a ``threads.PackedWeight``), the ``epilogue`` applied.
    X^T is read as x is laid out: a channel-last x's rows as they are, an NCHW one's
    transposed. None where the session's pool does not run onyx's GEMM on packed weights."""
    pool = _packing_pool()
    if pool is None:
        return None
    n, c = x.shape[:2]
    out = plan[5]
    pixels = math.prod(out)
    weight = w_last().reshape(c, -1)
    panels = packed.get(weight)
    if panels is None:
        return None
    xl = channels_last(x)
    if xl is not None:
        images = xl.reshape(n, pixels, c)
    else:
        images = np.ascontiguousarray(x).reshape(n, c, pixels).transpose(0, 2, 1)
    y = np.empty((n, weight.shape[1], *out), np.float32) if y is None else y
    return _transposed_products(pool, lambda i: images[i], panels, y, epilogue)


def packed_pointwise_replay(x, w_last, packed, plan, epilogue):
    """``conv_packed_pointwise`` again for calls like this one (see ``transposed_replay``):
    a function (x, out, epilogue) -> Y; None where this call is not such."""
    c = x.shape[1]
    pixels = math.prod(plan[5])
    weight = w_last().reshape(c, -1)
    last = channels_last(x) is not None
    if not (last or x.flags.c_contiguous):
        return None

    def rows(x):  # (X^T: as in conv_packed_pointwise, of the one image)
        return x.transpose(0, 2, 3, 1).reshape(pixels, c) if last else x.reshape(c, pixels).T

    y_shape = (x.shape[0], weight.shape[1], *plan[5])  # (one image only: transposed_replay)
    return transposed_replay(packed.get(weight), y_shape, epilogue, rows, transposed=not last)


# Other convolutions of one group at least this deep (C*kh*kw) that neither Winograd's nor the
# batched paths take multiply their patches so: Y^T = R W^T, R (Ho*Wo, kh*kw*C) each output
# pixel's patch, read where it lies in the input (no im2col or im2row matrix: its terms are
# offsets into the image, zero-bordered where the convolution pads), W packed once in the same
# order. With the patches made as rows first (im2row) this was 1.2-1.9x the shift-and-add
# (densenet121's 3x3 128 -> 32), the banded path (squeezenet's 16 -> 64) and the im2col path
# (squeezenet's, inception v1's and ResNet-50's) on their layers (benchmarks/bench_packed_convs.py,
# part 2, 2 threads), but not on stems of 3 channels, whose rows were built from runs of 3 values
# (0.79x). Read in place, it took the stems too (ResNet-50's, densenet121's and inception v1's
# 7x7 0.74-0.86x their time by im2col's columns; MobileNetV2's 3x3 0.78x), hence the depth of
# 16. It takes Winograd's layers under _OVER_WINOGRAD channels deep too (ResNet-50's 64 at 56x56,
# inception v1's 64 at 55x55 and 96 at 27x27: 0.68-0.85x Winograd's time); deeper ones stay
# Winograd's (ResNet-50's 128 at 28x28 and 256 at 14x14: 1.15-1.3x as long this way).
# Later (AVX2, a Zen 3, 2026-12-07) the 3x3 stems of 3 channels ran faster by im2col's columns
# again (0.75x this path's time on MobileNetV2's, 0.90x on squeezenet's; part 2), hence 28
# terms, past their 27 (whole models: see ``_PLANES``). And there Winograd's layers under 128 channels ran
# faster by Winograd (ResNet-50's 64 at 56x56 1,345 against 1,723 us, inception v1's 96 at 28x28
# 1,410 against 1,697; part 2), and bench_switch.py kernels.conv._OVER_WINOGRAD=0 (2 threads,
# three runs of 30-100 alternating) took ResNet-50 0.968-0.987x its time, inception v1
# 0.942-1.007x, densenet121 and squeezenet 0.98-1.03x. None: 128 on AVX-512 hosts, 0 (Winograd's
# layers all Winograd's) on AVX2; a number: that.
# On a Zen 5 (AVX-512, 2026-12-07) the 3x3 stems ran fastest this way again, read in place:
# MobileNetV2's 3 -> 32 at 224x224 105-112 us against 155-163 by ``conv_planes_patches`` and
# 157 by im2col's columns (conv_blocked), squeezenet's 3 -> 64 156-159 against 188-190 and 260
# (moved channel-last first: 139-143 and 204; one-node models, 2 threads). Whole models,
# bench_switch.py (40 alternating runs, 2 threads), the stems by ``conv_planes_patches``
# against this: MobileNetV2 1.028x its time, squeezenet 1.017x, EfficientNet-B0 1.011x,
# ResNet-50, densenet121, inception v1 and MobileViT 1.00x.
# None: 16 terms on AVX-512 hosts, 28 on AVX2; a number: that.
_PACKED_COLUMNS_DEPTH: int | None = None
_OVER_WINOGRAD: int | None = None


# An NCHW image whose patches ``conv_packed_columns`` reads in place costs a cache line per term
# (consecutive terms are channels, a plane apart); moved channel-last into its zero border first
# (``_jit_par.pad_last_bands``), consecutive terms lie side by side. With AVX2 (a Zen 3, one
# core, scratch timings of packed_product alone) 512 channels at 7x7 took 3.9 ms against 5.8,
# 256 at 14x14 4.2 against 5.4, 64 at 56x56 3.0 against 3.7; whole models, 2 threads,
# benchmarks/bench_switch.py kernels.conv._LAST_PATCHES=False: ResNet-50 1.10x its time read in
# place, densenet121 1.055x, inception v1 1.02x, squeezenet, EfficientNet-B0 and ConvNeXt 1.0x.
# With AVX-512 (a Zen 5, node by node in the models, runs alternating in one profiled session,
# 2 threads) the layers of 16 channels and more ran faster moved too (ResNet-50's 3x3 of 128
# to 512 channels 0.82-0.88x their time, squeezenet's of 16 to 64 0.88-0.98x), the stems of 3
# channels slower (ResNet-50's 7x7 673 -> 791 us, squeezenet's 3x3 352 -> 496). Whole models,
# bench_switch.py (40 runs), all read in place (``_LAST_PATCHES=False``) against this default:
# densenet121 1.038x its time, ResNet-50 1.027x, squeezenet, inception v1 and MobileNetV2
# 1.012x, EfficientNet-B0 and MobileViT 1.00x.
# None: moved on AVX2 hosts, and on AVX-512 ones where the image has _LAST_PATCHES_DEPTH
# channels or more; True or False: always, never.
_LAST_PATCHES: bool | None = None
_LAST_PATCHES_DEPTH = 16


def packed_columns_pay(route, plan, group, w_shape, dtype) -> bool:
    """Whether a convolution takes ``conv_packed_columns``: of the routes "other" (im2col or
    shift-and-add) and "blocked", or "winograd" under ``_OVER_WINOGRAD`` input channels; 2-D,
    float32, one group, not 1x1, at least _PACKED_COLUMNS_DEPTH deep, at least 32 output
    pixels."""
    k, _, _, _, _, out, pointwise = plan
    if route == "winograd":
        over = _OVER_WINOGRAD
        if over is None:
            over = 128 if _wide_host() else 0
        if w_shape[1] >= over:
            return False
    return (
        route in ("other", "blocked", "winograd")
        and len(k) == 2
        and not pointwise
        and group == 1
        and dtype == np.float32
        and math.prod(w_shape[1:]) >= _packed_columns_depth()
        and math.prod(out) >= 32
    )


def _packed_columns_depth() -> int:
    """The fewest terms a convolution takes ``conv_packed_columns`` with: _PACKED_COLUMNS_DEPTH."""
    if _PACKED_COLUMNS_DEPTH is None:
        return 16 if _wide_host() else 28
    return _PACKED_COLUMNS_DEPTH


def conv_packed_columns(x, w_last, packed, plan, epilogue, y=None):
    """Y (N, M, *O) of a convolution that ``packed_columns_pay`` for, into ``y`` where given:
    Y^T = R W^T per image (``_transposed_products``; W as (kh*kw*C, M) from ``w_last()``,
    packed in ``packed``), the ``epilogue`` applied, R's terms read where they lie in the
    image (``_patch_reader``). None where the session's pool does not run onyx's GEMM on
    packed weights."""
    pool = _packing_pool()
    if pool is None:
        return None
    weight = w_last()
    weight = weight.reshape(-1, weight.shape[-1])
    panels = packed.get(weight)
    if panels is None:
        return None
    last = channels_last(x) is not None
    if not last:
        x = np.ascontiguousarray(x)
    read = _patch_reader(pool, x, plan, last)
    if read is None:
        return None
    y = np.empty((x.shape[0], weight.shape[1], *plan[5]), np.float32) if y is None else y
    return _transposed_products(pool, lambda i: read(x, i), panels, y, epilogue)


def packed_columns_replay(x, w_last, packed, plan, epilogue):
    """``conv_packed_columns`` again for calls like this one (see ``transposed_replay``): a
    function (x, out, epilogue) -> Y; None where this call is not such."""
    pool = _packing_pool()
    last = channels_last(x) is not None
    if pool is None or not (last or x.flags.c_contiguous):
        return None
    read = _patch_reader(pool, x, plan, last)
    if read is None:
        return None
    weight = w_last()
    weight = weight.reshape(-1, weight.shape[-1])
    y_shape = (x.shape[0], weight.shape[1], *plan[5])  # (one image only: transposed_replay)
    return transposed_replay(packed.get(weight), y_shape, epilogue, lambda x: read(x, 0),
                             transposed=False)  # fmt: skip


def _patch_reader(pool, x, plan, last):
    """How ``conv_packed_columns`` reads the patches of images laid out as x (NCHW and
    C-contiguous, or, ``last``, channel-last): a function (x, i) -> (image i's values, pixels,
    terms) for ``_jit_gemm._term_of``, R[p, t] = values[pixels[p] + terms[t]]
    (``_patch_offsets``), the image copied into a zero border first where the convolution
    pads, an NCHW one moved channel-last there where ``_LAST_PATCHES`` says; None where the
    geometry would read past the image (the kernel reads unchecked)."""
    k, s, d, pb, pe, out, _ = plan
    c, h, w = x.shape[1:]
    if _LAST_PATCHES is None:
        moved = not last and (not _wide_host() or c >= _LAST_PATCHES_DEPTH)
    else:
        moved = not last and _LAST_PATCHES
    hp, wp = h + pb[0] + pe[0], w + pb[1] + pe[1]
    pixels, terms, reach = _patch_offsets(tuple(k), tuple(s), tuple(d), tuple(out), c, hp, wp,
                                          last or moved)  # fmt: skip
    if reach > hp * wp * c:
        return None
    kernels, parts = pool.native.kernels, pool.size
    # (a channel-last image is bordered as one plane of rows of W*C)
    border = (hp, wp, c) if moved else (1, hp, wp * c) if last else (c, hp, wp)
    left = pb[1] * c if last else pb[1]
    bordered = moved or any(pb) or any(pe)

    def read(x, i):
        image = x.transpose(0, 2, 3, 1)[i] if last else x[i]  # (H, W, C) or (C, H, W)
        if not bordered:
            return image.reshape(-1), pixels, terms
        padded = scratch("conv.padded", border)
        if moved:
            kernels.pad_last_bands(image, padded, pb[0], pb[1], parts)
        else:
            source = image.reshape(1, h, w * c) if last else image
            kernels.pad_bands(source, padded, pb[0], left, parts)
        return padded.reshape(-1), pixels, terms

    return read


def transposed_replay(panels, y_shape, epilogue, operand, transposed):
    """``_transposed_products`` again for calls like the one now (one image; an ``epilogue`` all
    in the store, with no run-time operand but a residual connection's, read anew each run from
    the run's epilogue): a function (x, out, epilogue) -> Y calling the packed GEMM with what it
    takes fixed now (the panels, bias, bounds, shapes, split), its left operand from
    ``operand(x)`` (an image's pixels by channels, ``transposed`` where a view of NCHW planes,
    or its patches where they lie), none of the path's checks made again; None where the call is
    not such, or where ``Native.packed_matmul`` would do more than call the kernel (a product of
    few pixels; a transposed operand copied into rows first, with AVX2). A chain of 64-channel
    8x8 1x1 layers (benchmarks/bench_engine.py's part 2's shape, scratch timings) took 9.8 us a
    layer by the packed product without it, 6.3 with it; whole models on a Zen 5 without it
    (bench_switch.py, 40 runs, 2 threads): densenet121 1.057x their time, squeezenet 1.053x,
    inception v1 1.031x, ResNet-50 1.011x (its 3x3 and narrowing layers; those with a residual
    took their full path until the residual was read from the run's epilogue here: MobileNetV2's
    nine)."""
    pool = _packing_pool()
    if pool is None or panels is None or y_shape[0] != 1:
        return None
    kernels, parts = pool.native.kernels, pool.size
    m, pixels = y_shape[1], math.prod(y_shape[2:])
    finish, swish = epilogue.store_finish(y_shape)
    if finish is None or not _fixed_but_residual(epilogue, finish, y_shape):
        return None
    if pixels <= kernels.FEW:
        return None
    if transposed and not kernels.WIDE and panels.shape[0] >= threads.COPY_ROWS_PANELS:
        return None
    bias = _NO_BIAS[np.dtype(np.float32)] if finish.bias is None else finish.bias
    lo, hi = np.float32(finish.lo), np.float32(finish.hi)
    by_rows = pixels >= m  # (as Native.packed_matmul splits)
    summed = finish.residual is not None

    def replay(x, y, epilogue):
        residual = _residual_now(epilogue, y_shape) if summed else None
        if summed and residual is None:
            return None
        y = np.empty(y_shape, np.float32) if y is None else y
        kernels.packed_gemm(operand(x), panels, y.reshape(m, pixels).T, m, bias, lo, hi, parts,
                            by_rows, False, None if residual is None
                            else residual.reshape(m, pixels).T)  # fmt: skip
        return _swish(y) if swish else y  # (after the store, as _transposed_products)

    return replay


def _fixed_but_residual(epilogue, finish, y_shape) -> bool:
    """Whether the steps in ``finish`` (``Epilogue.store_finish``) stay the same from run to
    run but for a residual connection's operand, a lean replay reading that one anew
    (``_residual_now``): no run-time operand, or one, the residual (the result's shape)."""
    extras = epilogue.extras
    if not extras:
        return True
    return (
        finish.residual is not None and len(extras) == 1 and np.shape(extras[0]) == tuple(y_shape)
    )


def _residual_now(epilogue, y_shape):
    """This run's residual operand, laid out as Y, from the ``epilogue`` the run prepared
    (``_Replay.run``); None where its steps no longer fit a store."""
    finish = epilogue.store_finish(y_shape)[0]
    return None if finish is None else finish.residual


@functools.lru_cache(maxsize=256)
def _patch_offsets(k, s, d, out, c, hp, wp, last) -> tuple[np.ndarray, np.ndarray, int]:
    """(pixels, terms, reach) of a 2-D convolution's patches over an image padded to (hp, wp):
    the flat index of each output pixel's first tap, and of each term (tap (ky, kx), channel c;
    in the order of ``last_weight``) from there, uint64 (their sum indexes unchecked), for an
    image laid out (C, hp, wp) or, ``last``, (hp, wp, C); and the elements they reach (the
    largest sum, plus 1). Read-only; kept per geometry."""
    oy, ox = np.divmod(np.arange(out[0] * out[1], dtype=np.int64), out[1])
    ky, kx, ch = np.meshgrid(np.arange(k[0]), np.arange(k[1]), np.arange(c), indexing="ij")
    rows, cols = ky.reshape(-1) * d[0], kx.reshape(-1) * d[1]
    first = oy * s[0] * wp + ox * s[1]
    if last:
        pixels, terms = first * c, (rows * wp + cols) * c + ch.reshape(-1)
    else:
        pixels, terms = first, ch.reshape(-1) * hp * wp + rows * wp + cols
    reach = int(pixels.max() + terms.max()) + 1
    pixels, terms = pixels.astype(np.uint64), terms.astype(np.uint64)
    pixels.flags.writeable = terms.flags.writeable = False
    return pixels, terms, reach


# Pointwise convolutions (1x1, stride 1, one group, float32, a read-only W) on NCHW planes may
# multiply so: each image's planes (M, P) = W @ X, X its input planes (C, P), W packed once in
# tiles of 6 rows whose values are broadcast against X's rows (``_jit_gemm.planes_product``),
# bias, bounds and Swish in the store: Y comes out in its own layout, no transposed store. Taken
# where it beat ``conv_packed_pointwise`` and BLAS's W X layer by layer in the CNNs of the model
# benchmark: 1.1-1.7x on squeezenet's, densenet121's and ResNet-50's at 56x56 and 55x55, 0.8-0.9x
# at 7x7 and 14x14 where they are deeper than 256. So: at most _PLANES_DEPTH deep or with at least
# _PLANES_PIXELS output pixels. (Convolutions by im2col's columns this way lost to
# ``conv_packed_columns`` on all but squeezenet's 3x3 stem: 0.74-0.95x.)
# Later, with AVX2 (a Zen 3, 2026-12-07), it no longer paid: ``python
# benchmarks/bench_packed_convs.py --part 1`` found it behind BLAS's W X or the packed product on
# nearly every layer (0.66-0.97x BLAS's on MobileNetV2's 112x112 and 56x56 ones, where the packed
# product narrows 1.14-2.0x), and whole models ran faster without it (bench_switch.py with the
# thresholds above set so that no layer took it, three runs, 2 threads: MobileNetV2 0.95-0.96x
# its time, MobileViT 0.96x, squeezenet 0.96-0.97x, EfficientNet-B0 0.97-0.99x, inception 0.98x,
# ResNet-50 and densenet121 1.00x; one thread: MobileNetV2 0.94x, squeezenet and ResNet-50
# 0.98x; and kernels.conv._PLANES=True against this: 1.10x, 1.06x, 1.02x). So did the stems'
# patches below (``conv_planes_patches``; planes_patches_pay): MobileNetV2's 3x3 stem took 1.4x
# the time of im2col's BLAS product, squeezenet's 1.13x (part 2), and whole models with the stems
# by im2col (``_PLANES_PATCH_DEPTH=0`` and ``_PACKED_COLUMNS_DEPTH=28``, two runs): squeezenet
# 0.96x, MobileNetV2 0.97x, EfficientNet-B0 0.98-0.99x, MobileViT 0.98x, inception 1.00x.
# None: the planes paths on AVX-512 hosts only; True, False: always, never.
# On a Zen 5 (AVX-512, 2026-12-07), node by node in the models (one profiled session, runs
# alternating with and without, 2 threads), the narrowing layers (M <= C) ran faster by
# ``conv_packed_pointwise``: ResNet-50's 256 -> 64 at 56x56 283 against 334 us, its 64 -> 64
# 114 against 153, 512 -> 128 at 28x28 266-269 against 298-303, where its widening ones kept
# this path (64 -> 256 at 56x56 285-312 against 331-413 by the packed one). Those with M not a
# multiple of 16 (the packed panels' width: MobileNetV2's 144 -> 24), deeper than 512
# (Segformer's 1024 -> 256 at 56x56: 4.47 against 4.33 ms) or of more than 4096 pixels
# (EfficientNet-B0's 32 -> 16 at 112x112: 154 against 128 us) stay here. Whole models
# (bench_switch.py kernels.conv._PLANES_NARROWING=True against this, 40 alternating runs):
# MobileNetV2 1.027x its time, squeezenet 1.019x, densenet121 1.018x, ResNet-50 1.013x,
# inception v1 1.012x, EfficientNet-B0, MobileViT, Segformer and ConvNeXt 1.00x. (A switch:
# True, the narrowing layers here too.)
_PLANES: bool | None = None
_PLANES_DEPTH = 256
_PLANES_PIXELS = 512
_PLANES_NARROWING = False


def _planes_taken() -> bool:
    """Whether the planes paths (``conv_planes``, ``conv_planes_patches``) run here:
    ``_PLANES``."""
    return _wide_host() if _PLANES is None else _PLANES


def _wide_host() -> bool:
    """Whether numba's threads run onyx's GEMM with AVX-512's wide tiles here (the hosts some
    paths were chosen on; ``_jit_gemm.WIDE``)."""
    found = threads.native()
    return found is not None and found.kernels.WIDE


def planes_pay(plan, group, w_shape, dtype) -> bool:
    """Whether a convolution takes ``conv_planes``: 2-D, pointwise (1x1, stride 1, no padding),
    float32, one group, at least 32 output pixels, at most _PLANES_DEPTH deep or with at least
    _PLANES_PIXELS of them, not a narrowing one that the packed product takes (see
    _PLANES_NARROWING), where ``_planes_taken``."""
    k, s, _, _, _, out, pointwise = plan
    if len(k) != 2 or not pointwise or group != 1 or dtype != np.float32:
        return False
    if not _planes_taken():
        return False
    depth, pixels, m = w_shape[1], math.prod(out), w_shape[0]
    narrowing = (
        m <= depth and m % 16 == 0 and _PACKED_POINTWISE_DEPTH <= depth <= 512 and pixels <= 4096
    )
    return (
        all(v == 1 for v in s)
        and pixels >= 32
        and (depth <= _PLANES_DEPTH or pixels >= _PLANES_PIXELS)
        and (_PLANES_NARROWING or not narrowing)
    )


def conv_planes(x, w2d, tiles, plan, epilogue, y=None):
    """Y (N, M, *O) of a convolution that ``planes_pay`` for, into ``y`` where given: per image,
    Y's planes = W @ X by ``Native.planes_matmul``, W (M, C) ``w2d`` packed in ``tiles`` (a
    ``threads.PackedWeight`` of ``threads.row_tiles``), the ``epilogue`` applied. None where
    the session's pool does not run onyx's GEMM on packed weights or W is not read-only."""
    pool = _packing_pool()
    if pool is None:
        return None
    packed = tiles.get(w2d)
    if packed is None:
        return None
    n, c = x.shape[:2]
    out = plan[5]
    pixels = math.prod(out)
    x = np.ascontiguousarray(x)
    y = np.empty((n, w2d.shape[0], *out), np.float32) if y is None else y
    return _plane_products(pool, lambda i: x[i].reshape(c, pixels), packed, y, epilogue)


def planes_replay(x, w2d, tiles, plan, epilogue):
    """``conv_planes`` again for calls like this one (one image, X laid out as x, the same
    ``epilogue`` all in the store, a residual read anew as ``transposed_replay`` reads it): a
    function (x, out, epilogue) -> Y calling the kernel with what it takes fixed now (the packed
    weight, bias, bounds, shapes), none of the path's steps made again (a chain of 64-channel
    8x8 1x1 layers, benchmarks/bench_engine.py part 2: 12.9 -> 10.7 us a layer, the two
    alternating in one process; whole models within 1%); None where this call is not such."""
    pool = _packing_pool()
    if pool is None or x.shape[0] != 1 or not x.flags.c_contiguous:
        return None
    packed = tiles.get(w2d)
    m, c = w2d.shape
    out = plan[5]
    y_shape = (1, m, *out)
    finish, swish = epilogue.store_finish(y_shape)
    if packed is None or finish is None or not _fixed_but_residual(epilogue, finish, y_shape):
        return None
    kernels, parts, pixels = pool.native.kernels, pool.size, math.prod(out)
    bias = _NO_BIAS[np.dtype(np.float32)] if finish.bias is None else finish.bias
    lo, hi = np.float32(finish.lo), np.float32(finish.hi)
    blocks = (parts, kernels.span_blocks(c), c, kernels.BLOCK)
    summed = finish.residual is not None

    def replay(x, y, epilogue):
        residual = _residual_now(epilogue, y_shape) if summed else None
        if summed and residual is None:
            return None
        y = np.empty(y_shape, np.float32) if y is None else y
        kernels.planes_gemm(packed, x.reshape(c, pixels), y.reshape(m, pixels), m, bias, lo, hi,
                            parts, scratch("conv.blocks", blocks), swish,
                            None if residual is None else residual.reshape(m, pixels))  # fmt: skip
        return y

    return replay


def _plane_products(pool, operand, packed, y, epilogue):
    """``y`` (N, M, *O) with each image's planes (M, P) = W @ operand(i) (``Native.planes_matmul``:
    an array (K, P), or patches where they lie), W packed in ``packed``; the ``epilogue``'s
    bias, residual, bounds and Swish in the store where they are all it has
    (``Epilogue.store_finish``), else applied after."""
    n, m = y.shape[:2]
    planes = y.reshape(n, m, -1)
    finish, swish = epilogue.store_finish(y.shape)
    for i in range(n):
        pool.native.planes_matmul(packed, operand(i), planes[i], pool.size,
                                  _image_finish(finish, i, m), swish)  # fmt: skip
    if finish is None:
        epilogue.apply_all(y)
    return y


def _image_finish(finish, i, m, transposed=False):
    """``finish`` for image ``i`` of a result (N, m, *O): its residual's planes (m, P), or
    their transpose (P, m) for a store that writes them so."""
    if finish is None or finish.residual is None:
        return finish
    planes = finish.residual[i].reshape(m, -1)
    return threads.Finish(finish.bias, finish.lo, finish.hi, planes.T if transposed else planes)


# Convolutions of few terms (C*kh*kw: a 3x3 stem of 3 channels has 27) multiply their patches
# the same way, W @ R^T, the patches gathered where they lie in the (zero-bordered) image as each
# block of 32 output pixels is copied (``_jit_gemm._copy_plane_row``): their few terms leave the
# transposed path of ``conv_packed_columns`` storing more than it multiplies (its tiles of
# pixels by channels land transposed in Y's planes), where here each output row is stored as
# it lies. A 3x3 stem of 64 channels 0.82x its time, MobileNetV2's of 32 0.96x; deeper layers
# took 1.05-1.8x as long (benchmarks/bench_packed_convs.py part 2, 2 threads). Whole models
# (bench_switch): squeezenet 0.97x, MobileNetV2 and EfficientNet-B0 0.99x.
# Neither host measured since took the stems faster this way: an AVX2 Zen 3 by im2col's columns
# (see ``_PLANES``), an AVX-512 Zen 5 by ``conv_packed_columns`` (0.69-0.83x; see
# ``_PACKED_COLUMNS_DEPTH``). So 0: taken nowhere unless set (32: the few terms it paid for).
_PLANES_PATCH_DEPTH = 0


def planes_patches_pay(route, plan, group, w_shape, dtype) -> bool:
    """Whether a convolution takes ``conv_planes_patches``: of the routes "other", "blocked" or
    "winograd" (not the batches of small images), 2-D, not pointwise, float32, one group, at
    most _PLANES_PATCH_DEPTH terms (C/group * kh * kw), at least 32 output pixels, where
    ``_planes_taken``."""
    k, _, _, _, _, out, pointwise = plan
    return (
        route in ("other", "blocked", "winograd")
        and len(k) == 2
        and not pointwise
        and group == 1
        and dtype == np.float32
        and math.prod(w_shape[1:]) <= _PLANES_PATCH_DEPTH
        and math.prod(out) >= 32
        and _planes_taken()
    )


def conv_planes_patches(x, w_patches, tiles, plan, epilogue, y=None):
    """Y (N, M, *O) of a convolution that ``planes_patches_pay`` for, of a C-contiguous ``x``,
    into ``y`` where given: per image, Y's planes = W @ R^T by ``Native.planes_matmul``, W
    (M, kh*kw*C) ``w_patches`` (terms in the order of ``_patch_offsets``) packed in ``tiles``,
    R's terms read where they lie in the image (copied into a zero border where the
    convolution pads), the ``epilogue`` applied. None where the session's pool does not run
    onyx's GEMM on packed weights or the geometry would read past the image."""
    pool = _packing_pool()
    if pool is None:
        return None
    packed = tiles.get(w_patches)
    if packed is None:
        return None
    k, s, d, pb, pe, out, _ = plan
    n, c, h, w = x.shape
    hp, wp = h + pb[0] + pe[0], w + pb[1] + pe[1]
    pixels, terms, reach = _patch_offsets(tuple(k), tuple(s), tuple(d), tuple(out), c, hp, wp,
                                          False)  # fmt: skip
    if reach > hp * wp * c:
        return None
    padded = scratch("conv.padded", (c, hp, wp)) if any(pb) or any(pe) else None

    def patches(i):
        if padded is None:
            return x[i].reshape(-1), pixels, terms
        pool.native.kernels.pad_bands(x[i], padded, pb[0], pb[1], pool.size)
        return padded.reshape(-1), pixels, terms

    y = np.empty((n, w_patches.shape[0], *out), np.float32) if y is None else y
    return _plane_products(pool, patches, packed, y, epilogue)


def _packing_pool():
    """The session's pool where it runs onyx's own GEMM on packed weights (numba's threads,
    BLAS held to one thread, weights packed); else None."""
    pool = threads.current()
    if pool is None or pool.native is None or not pool.prepack_weights:
        return None
    return pool if threads.splits_gemms() else None


def _transposed_products(pool, rows, panels, y, epilogue):
    """``y`` (N, M, *O) with each image's planes (M, P) = (rows(i) @ W)^T, rows(i) (P, K) of any
    strides (or patches where they lie: _jit_gemm._term_of) and W packed into ``panels``, by
    onyx's own GEMM over the pool's numba threads, each tile stored transposed into the planes
    with the ``epilogue``'s bias, residual and bounds (``Epilogue.store_finish``), its Swish
    after, in place (in the transposed store, whose strided loop does not vectorize, it took
    EfficientNet-B0's stem from 170 to 580 us), its other steps, where it has them, after the
    products; y."""
    n, m = y.shape[:2]
    finish, swish = epilogue.store_finish(y.shape)
    planes = y.reshape(n, m, -1)
    for i in range(n):
        part = _image_finish(finish, i, m, transposed=True)
        pool.native.packed_matmul(rows(i), panels, planes[i].T, pool.size, part)
    if finish is None:
        epilogue.apply_all(y)
        return y
    return _swish(y) if swish else y


def _swish(y):
    """``y`` with a Swish applied (the one that ends ``Epilogue.channel_steps``), in y's
    layout: in place on numba's threads where y is float32 and dense, C-contiguous or a
    channel-last view (a new array here would land outside the caches for the next step to
    read: EfficientNet-B0's depthwise convolution after its 16 -> 96 expansion at 112x112 took
    241 us after a new one, 151 after BLAS's bands had applied it in place; its channel-last
    results went through a copy each), else a new array."""
    dense = y if y.flags.c_contiguous else channels_last(y)
    if dense is not None and threads.swish_in_place(dense):
        return y
    from onyx.runtime.kernels.math import swish

    return swish(y)


def conv_forward(x, w_gemm, plan, group, w_depthwise=None, y=None):
    """Y (N, M, *O) of ``x`` (N, C, *S) and a weight prepared as (g, M/g, C/g*prod(K)); its GEMMs
    and the compiled depthwise kernel write into ``y`` (C-contiguous) where given, the other
    paths return a new array.

    ``w_depthwise`` (M, prod(K)) selects the shifted multiply-add path (C/g == 1).
    """
    k, s, d, pb, pe, out, pointwise = plan
    n, c = x.shape[:2]
    g, mg, ck = w_gemm.shape
    o_size = math.prod(out)
    if pointwise:
        if any(v != 1 for v in s):
            x = x[(slice(None), slice(None)) + tuple(slice(None, None, v) for v in s)]
        cols = x.reshape(n, g, c // g, o_size)
        return _grouped_matmul(w_gemm, cols, y, out)
    compiles = x.dtype in compiled.DTYPES and len(out) == 2 and w_depthwise is None
    jit = compiled.kernels(n * g * ck * o_size) if compiles else None
    if jit is not None:
        x = np.ascontiguousarray(x)
        cols = np.empty((n, c * math.prod(k), o_size), x.dtype)
        pool = threads.current()
        # (by bands of input channels: not for a stem's 3, whose bands measured slower)
        native = (
            pool is not None
            and pool.native is not None
            and c >= 16
            and (cols[0].size >= threads.MIN_ELEMENTS)
        )
        for i in range(n):
            if native:
                pool.native.kernels.im2col_bands(x[i], cols[i], *k, *s, *d, pb[0], pb[1], *out,
                                                 min(c, pool.size))  # fmt: skip
            else:
                jit.im2col(x[i], cols[i], *k, *s, *d, pb[0], pb[1], 0, out[0], out[1])
        return _grouped_matmul(w_gemm, cols.reshape(n, g, ck, o_size), y, out)
    if w_depthwise is not None:
        jit = depthwise_kernels(x, w_depthwise, plan)
        if jit is not None:
            return depthwise_planes(jit, x, w_depthwise, plan, mg, y=y)
        # (a new array, not ``y``: the caller copies it where it must)
        acc = np.empty((n, w_depthwise.shape[0], *out), np.result_type(x, w_depthwise))
    xp = pad_input(x, pb, pe)
    if w_depthwise is not None:
        mult = mg
        if mult != 1:
            xp = np.repeat(xp, mult, axis=1)
        taps = [sl for _, sl in kernel_slices(k, s, d, out)]

        def channels(c0, c1):  # a band of channels, over the session's threads
            tmp = None
            for i, sl in enumerate(taps):
                wk = w_depthwise[c0:c1, i].reshape((1, -1) + (1,) * len(out))
                src = xp[(slice(None), slice(c0, c1)) + sl]
                if i == 0:
                    np.multiply(src, wk, out=acc[:, c0:c1])
                else:
                    tmp = np.empty_like(acc[:, c0:c1]) if tmp is None else tmp
                    acc[:, c0:c1] += np.multiply(src, wk, out=tmp)

        threads.rows(acc.shape[1], acc.size * len(taps), channels)
        return acc
    cols = window_view(xp, k, s, d, out).reshape(n, g, ck, o_size)
    return _grouped_matmul(w_gemm, cols, y, out)


def depthwise_kernels(x, w_depthwise, plan):
    """The compiled kernels where ``depthwise_planes`` runs this convolution (2-D, x and the
    depthwise weight (M, prod(K)) of one compiled dtype, enough work); else None."""
    out = plan[5]
    if len(out) != 2 or x.dtype != w_depthwise.dtype or x.dtype not in compiled.DTYPES:
        return None
    return compiled.kernels(x.shape[0] * math.prod(out) * w_depthwise.size)


def depthwise_planes(jit, x, w_depthwise, plan, mult, finish=None, swish=False, y=None):
    """Y (N, M, *O) of a depthwise convolution (``mult`` output channels per input channel)
    by the compiled kernel, plane by plane (padded as it goes: 3-10x numpy's), into ``y``
    where given, with ``finish`` (a ``threads.Finish`` or None), then a Swish where ``swish``
    (float32 only), applied as each plane is written."""
    k, s, d, pb, _, out, _ = plan
    n = x.shape[0]
    m = w_depthwise.shape[0]
    if y is None:
        y = np.empty((n, m, *out), x.dtype)
    w3 = w_depthwise.reshape(-1, *k)
    x = np.ascontiguousarray(x)
    kind = x.dtype.type
    bias = _NO_BIAS[x.dtype] if finish is None or finish.bias is None else finish.bias
    lo, hi = (kind(-np.inf), kind(np.inf)) if finish is None else (kind(finish.lo), kind(finish.hi))
    geometry = (mult, *s, *d, *pb, bias, lo, hi, swish)
    threads.rows(m, y.size * w3[0].size,
                 lambda c0, c1: jit.depthwise(x, w3, y, c0, c1, *geometry),
                 native=lambda par, parts: par.depthwise_bands(x, w3, y, *geometry, parts))  # fmt: skip
    return y


def _product(w, b, out):
    """out = w @ b (2-D, ``out`` of unit column stride) over the session's threads: float32 at
    least ACTIVATION_DEPTH deep on numba's threads by onyx's own GEMM, ``b`` packed as it goes
    (``Native.activation_matmul``: equal rows of ``w`` give equal rows, which squeezenet's
    conformance data needs; as fast as BLAS or faster on the CNNs' layers); else BLAS's."""
    pool = threads.current()
    if (
        w.dtype == b.dtype == np.float32
        and w.shape[1] >= threads.ACTIVATION_DEPTH
        and pool is not None
        and pool.native is not None
        and threads.splits_gemms()
    ):
        pool.native.activation_matmul(w, b, out, pool.size)
    else:
        threads.matmul(w, b, out=out)


def _grouped_matmul(w_gemm, cols, y, out):
    """(N, g*M/g, *out) from (g, M/g, K) weights and (N, g, K, O) columns, into ``y`` if given."""
    n, g, _, o_size = cols.shape
    mg = w_gemm.shape[1]
    if w_gemm.dtype == cols.dtype and threads.current() is not None:
        # one GEMM per image (per group and image), split over the session's threads
        y = np.empty((n, g * mg) + tuple(out), cols.dtype) if y is None else y
        y4 = y.reshape(n, g, mg, o_size)
        for i in range(n):
            if g == 1:
                _product(w_gemm[0], cols[i, 0], y4[i, 0])
            else:
                threads.batched_matmul(w_gemm, cols[i], y4[i])
        return y
    if y is None:
        return np.matmul(w_gemm, cols).reshape((n, g * mg) + tuple(out))
    np.matmul(w_gemm, cols, out=y.reshape(n, g, mg, o_size))
    return y


_TILE_BYTES = 1 << 20  # the im2col tile a blocked convolution keeps cache-hot
# the fewest columns of a band's GEMM on numba's threads (fewer: split by output channels)
_NATIVE_COLUMNS = 256


def _native_gemm(pool, epilogue, y, dtype, weight) -> tuple | None:
    """(the epilogue's program, BLAS's GEMM, its 1, its 0) for a convolution of ``dtype`` into
    ``y`` on numba's threads; None where the session's pool is not numba's, the epilogue is not
    one compiled program, or BLAS does not take ``weight`` as it is (of ``dtype``,
    C-contiguous)."""
    if pool is None or pool.native is None:
        return None
    program = epilogue.native_program(y)
    entry = pool.native.gemms.get(dtype)
    if program is None or entry is None or weight.dtype != dtype or not weight.flags.c_contiguous:
        return None
    return (program, *entry)


def conv_blocked(x, w2d, plan, epilogue, y=None):
    """2-D convolution with one group, computed a band of output rows at a time (into ``y``
    where given).

    For each band: its im2col columns (or, for a 1x1 stride-1 kernel, the input itself), one GEMM
    written straight into the output, then the ``epilogue`` (bias and the fused steps after the
    Conv) while the band is still in cache. Done as separate passes over a whole model's
    tensors, those streamed through memory every time.
    """
    k, s, d, pb, pe, out, pointwise = plan
    n = x.shape[0]
    m, depth = w2d.shape
    ho, wo = out
    y = np.empty((n, m, ho, wo), x.dtype) if y is None else y
    y2d = y.reshape(n, m, ho * wo)
    jit = compiled.kernels(y.size) if x.dtype in compiled.DTYPES else None
    rows = max(1, min(ho, _TILE_BYTES // (4 * depth * wo)))
    pool = threads.current()
    if pool is not None and pool.size > 1 and threads.splits_gemms():
        # at least two bands per thread, each band a part of the pool's work
        rows = max(1, min(rows, -(-ho * n // (2 * pool.size))))
    found = _native_gemm(pool, epilogue, y, x.dtype, w2d) if jit is not None else None
    if found is not None:
        program, gemm, one, zero = found
        blocks = 1
        if rows * wo < _NATIVE_COLUMNS:  # small planes: whole images by bands of channels
            rows, blocks = ho, min(m, pool.size)
        pool.native.kernels.conv_bands(gemm, np.ascontiguousarray(x), w2d, y, *k, *s, *d, pb[0],
                                       pb[1], rows, blocks, pointwise and all(v == 1 for v in s),
                                       threads.ACTIVATION_DEPTH, *program, one, zero)  # fmt: skip
        return y
    view = source = None
    if pointwise and all(v == 1 for v in s):
        source = x.reshape(n, x.shape[1], ho * wo)
    elif jit is not None:
        x = np.ascontiguousarray(x)
    else:
        view = window_view(pad_input(x, pb, pe), k, s, d, out)  # (N, C, kh, kw, Ho, Wo)

    def band(i, r0, r1):
        if source is not None:
            cols = source[i, :, r0 * wo : r1 * wo]
        elif view is None:
            cols = np.empty((depth, (r1 - r0) * wo), x.dtype)
            jit.im2col(x[i], cols, *k, *s, *d, pb[0], pb[1], r0, r1, wo)
        else:
            cols = view[i, :, :, :, r0:r1, :].reshape(depth, (r1 - r0) * wo)
        np.matmul(w2d, cols, out=y2d[i, :, r0 * wo : r1 * wo])
        epilogue.apply_rows(y, i, r0, r1)

    parts = [(i, r0, min(ho, r0 + rows)) for i in range(n) for r0 in range(0, ho, rows)]
    if pool is None:
        for part in parts:
            band(*part)
    else:
        pool.run(band, parts)
    return y


# Convolutions of few channels on output planes up to this many pixels (32x32) go a chunk of
# images at a time when the batch has more than one image: per image, their GEMMs are too small
# for a call each to pay. (Wider layers keep the paths measured on the CNNs' layers.)
_SMALL_PLANE = 1024
_SMALL_CHANNELS = 64


def batched_pays(plan, group, w_shape, n, dtype) -> bool:
    """Whether a 2-D convolution runs a chunk of images at a time (``conv_batched``): one group,
    float32/float64 with the compiled im2col, more than one image, at most 64 channels in and
    out, and small output planes, where a band (or image) per call left each call's GEMM small
    and its Python overhead large."""
    out = plan[5]
    return (
        len(out) == 2
        and group == 1
        and n > 1
        and not plan[6]
        and max(w_shape[0], w_shape[1]) <= _SMALL_CHANNELS
        and np.dtype(dtype) in compiled.DTYPES
        and out[0] * out[1] <= _SMALL_PLANE
        and compiled.kernels(n * w_shape[0] * out[0] * out[1]) is not None
    )


def conv_batched(x, w2d, plan, epilogue, y=None):
    """2-D convolution of a batch of small images, a chunk of images at a time (into ``y``
    where given; where ``batched_pays``).

    For each chunk: the im2col columns of all its images in one compiled call, one stacked GEMM
    (W by each image's columns, looped inside numpy) written straight into the output, then the
    ``epilogue`` over the chunk's images while they are still in cache. Chunks are sized to
    keep their columns cache-sized, and split over the session's threads.
    """
    k, s, d, pb, _, out, _ = plan
    n = x.shape[0]
    m, depth = w2d.shape
    ho, wo = out
    y = np.empty((n, m, ho, wo), x.dtype) if y is None else y
    y3 = y.reshape(n, m, ho * wo)
    x = np.ascontiguousarray(x)
    jit = compiled.kernels(compiled.MIN_SIZE)
    chunk = max(1, min(n, _TILE_BYTES // (x.itemsize * depth * ho * wo)))
    pool = threads.current()
    found = _native_gemm(pool, epilogue, y, x.dtype, w2d)
    if found is not None:
        program, gemm, one, zero = found
        chunk = min(chunk, -(-n // (2 * pool.size)))  # at least two chunks per thread
        pool.native.kernels.conv_images(gemm, x, w2d, y, *k, *s, *d, pb[0], pb[1], chunk,
                                        *program, one, zero)  # fmt: skip
        return y

    def images(n0, n1):
        cols = np.empty((n1 - n0, depth, ho * wo), x.dtype)
        jit.im2col_images(x[n0:n1], cols, *k, *s, *d, pb[0], pb[1], ho, wo)
        np.matmul(w2d, cols, out=y3[n0:n1])
        epilogue.apply_images(y, n0, n1)

    _by_chunks(n, chunk, images)
    return y


def _by_chunks(n: int, chunk: int, images) -> None:
    """``images(n0, n1)`` over a batch of ``n`` images, at most ``chunk`` at a time, the chunks
    split over the session's threads (at least two chunks per thread)."""
    pool = threads.current()
    if pool is not None and pool.size > 1:
        chunk = min(chunk, -(-n // (2 * pool.size)))
    parts = [(n0, min(n, n0 + chunk)) for n0 in range(0, n, chunk)]
    if pool is None:
        for part in parts:
            images(*part)
    else:
        pool.run(images, parts)


def _blocked_pays(w_shape) -> bool:
    """Bands pay when each GEMM still gets wide ones: a shallow im2col depth (C*kh*kw). Deep
    kernels leave bands so narrow that the GEMMs slow down more than the cache saves (measured on
    inception_v1's 3x3/5x5 layers: 25% slower banded)."""
    return math.prod(w_shape[1:]) <= 256


def shifted_eligible(plan, group, w_shape) -> bool:
    """Whether the shift-and-add path pays: 2-D, one group, stride 1, and a layer that narrows
    (C >= 2M), where im2col's copy of every input pixel per kernel offset outweighs the GEMM it
    feeds (benchmarks/bench_conv_paths.py: 1.6-3.2x faster than im2col on densenet121's 3x3
    layers, 4x4 to 56x56; from 0.96x to 1.9x im2col's time on the layers of the other CNNs,
    which do not narrow, where Winograd or im2col is faster still)."""
    k, s, _, _, _, _, pointwise = plan
    if len(k) != 2 or group != 1 or pointwise or any(v != 1 for v in s):
        return False
    return w_shape[1] >= 2 * w_shape[0]


def shifted_weight(w_gemm, kernel) -> np.ndarray:
    """W as (kh*kw*M, C): the (M, C) matrices of the kernel offsets, stacked."""
    _, m, ck = w_gemm.shape
    c = ck // math.prod(kernel)
    w = w_gemm.reshape((m, c) + tuple(kernel))
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(-1, c))


def conv_shifted(x, w_shift, plan, y=None):
    """2-D stride-1 convolution without im2col (into ``y`` where given).

    In the image flattened row by row, the input pixel under kernel offset (a, b) of output
    (i, j) sits at a fixed distance from the output's own position. So one GEMM of all the
    offsets' weights, stacked, with the flattened image (no copy, no padding) gives each
    offset's products at every pixel, and the output is their sum, each offset's read shifted
    by its distance and clipped to the pixels inside the image (the padding adds zeros).
    (One tall GEMM rather than an (M, C) one per offset, each followed by an accumulating pass:
    densenet121, whose layers have 32 outputs, ran 8% faster for it.)
    """
    k, _, d, pb, _, out, _ = plan
    n, c, h, w = x.shape
    taps = math.prod(k)
    m = w_shift.shape[0] // taps
    x = np.ascontiguousarray(x)
    products = np.empty((taps, m, h * w), x.dtype)
    y = np.empty((n, m) + tuple(out), x.dtype) if y is None else y
    # (sized by the GEMM's work: on small images numpy's tap-by-tap adds cost more in calls
    # than the whole convolution computes)
    jit = compiled.kernels(products.size * c) if x.dtype in compiled.DTYPES else None
    for i in range(n):
        _product(w_shift, x[i].reshape(c, h * w), products.reshape(taps * m, -1))
        if jit is not None:
            jit.shift_sum(products, y[i], *k, *d, pb[0], pb[1], w)
            continue
        y[i] = 0
        image = products.reshape(taps, m, h, w)
        for tap in range(taps):
            a, b = divmod(tap, k[1])
            rows = _clipped(a * d[0] - pb[0], out[0], h)
            cols = _clipped(b * d[1] - pb[1], out[1], w)
            if rows is not None and cols is not None:
                target = y[i, :, rows[0], cols[0]]
                target += image[tap, :, rows[1], cols[1]]
    return y


def _clipped(shift: int, count: int, size: int) -> tuple[slice, slice] | None:
    """(outputs, inputs): the outputs o in [0, count) whose input o + shift lies in [0, size),
    and those inputs; None where there are none."""
    lo, hi = max(0, -shift), min(count, size - shift)
    if hi <= lo:
        return None
    return slice(lo, hi), slice(lo + shift, hi + shift)


# Winograd F(2x2, 3x3): each 2x2 output tile from a 4x4 input patch with 16 multiplications
# instead of 36, i.e. 16 GEMMs of (M, C) by (C, tiles) in place of one (M, 9C) by (9C, 4*tiles).
_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


_WINOGRAD_WORK = 12544  # C * tiles at least (resnet50's 256 channels at 14x14)


def winograd_pays(plan, group, w_shape, dtype) -> bool:
    """Whether a convolution runs as Winograd F(2x2, 3x3): 3x3, stride 1, undilated, one group,
    float32/float64 with the compiled transforms, and GEMMs (M, C) x (C, tiles) that stay wide
    enough: M and C at least 64 and C * tiles at least 12544 (resnet50's 256 channels at 14x14).
    Measured per layer of resnet50, densenet121, inception v1 and squeezenet
    (benchmarks/bench_conv_paths.py): 10-17% faster in the layers this takes; the ones it leaves
    were slower (up to 1.5x) or within a few percent, run to run."""
    k, s, d, _, _, out, _ = plan
    tiles = ((out[0] + 1) // 2) * ((out[1] + 1) // 2) if len(out) == 2 else 0
    return (
        list(k) == [3, 3]
        and group == 1
        and all(v == 1 for v in s)
        and all(v == 1 for v in d)
        and np.dtype(dtype) in compiled.DTYPES
        and w_shape[0] >= 64
        and w_shape[1] >= 64
        and w_shape[1] * tiles >= _WINOGRAD_WORK
        and compiled.kernels(w_shape[0] * out[0] * out[1]) is not None
    )


def winograd_weight(w, dtype) -> np.ndarray:
    """W (M, C, 3, 3) transformed to G W G^T, as (16, M, C) (computed in float64)."""
    m, c = w.shape[:2]
    g = _WINOGRAD_G
    u = np.einsum("ai,mcij,bj->abmc", g, np.asarray(w, np.float64), g)
    return np.ascontiguousarray(u.reshape(16, m, c), dtype=dtype)


_NO_PANELS = np.empty((0, 0, 0, 16), np.float32)
_NO_U = np.empty((16, 0, 0), np.float32)  # (winograd_image's U where it reads the panels)


def winograd_panels(u) -> np.ndarray:
    """A float32 ``u`` (16, M, C) as each U[g]^T (C, M) packed into panels of 16 columns, (16,
    ceil(M/16), C, 16): what ``conv_winograd``'s products read; for another dtype, none (its
    products go to BLAS)."""
    if u.dtype != np.float32:
        return _NO_PANELS
    m, c = u.shape[1], u.shape[2]
    panels = aligned_empty((16, -(-m // 16), c, 16))
    for g in range(16):
        panels[g] = threads.packed_weight(u[g].T)
    return panels


class WinogradWeights:
    """W's Winograd transform as a path asks for it: ``u()``, U = G W G^T (16, M, C), for
    numpy's and BLAS's products; ``panels()``, U's products packed (``winograd_panels``), made
    from a U that is not kept. A session's Conv holds one of the two, not both (ResNet-50's
    session kept 23 MB more with both)."""

    __slots__ = ("_panels", "_u", "dtype", "m", "w")

    def __init__(self, w, dtype):
        self.w, self.dtype, self.m = w, dtype, w.shape[0]
        self._u = self._panels = None

    def u(self) -> np.ndarray:
        if self._u is None:
            self._u = winograd_weight(self.w, self.dtype)
        return self._u

    def panels(self) -> np.ndarray:
        if self._panels is None:
            u = self._u if self._u is not None else winograd_weight(self.w, self.dtype)
            self._panels = winograd_panels(u)
        return self._panels


def conv_winograd(x, weights, plan, epilogue, y=None):
    """2-D 3x3 stride-1 convolution through Winograd F(2x2, 3x3) (``weights`` a
    ``WinogradWeights``; where winograd_pays), into ``y`` where given, the ``epilogue``
    applied.

    With the session's numba threads, an image's transforms and products run on them
    (``_jit_par.winograd_image``), the epilogue's bias, residual and bounds in the output
    transform's store where they are all it has (``Epilogue.store_finish``); float32's products
    by onyx's GEMM on U packed once (where pack_panels packed the transformed input at each
    call: 8-30% more time on ResNet-50's layers), the buffers reused from call to call
    (``scratch``)."""
    jit = compiled.kernels(compiled.MIN_SIZE)
    _, _, _, pb, _, out, _ = plan
    n, c, h, w = x.shape
    m = weights.m
    ho, wo = out
    tiles_h, tiles_w = (ho + 1) // 2, (wo + 1) // 2
    shape = (c, 2 * tiles_h + 2, 2 * tiles_w + 2)  # (2*tiles + 2 >= pads + size)
    y = np.empty((n, m, ho, wo), x.dtype) if y is None else y
    kind = x.dtype.type
    pool = threads.current()
    native = pool.native if pool is not None else None
    entry = native.gemms.get(x.dtype) if native is not None else None
    if entry is not None and y.flags.c_contiguous:
        finish, swish = epilogue.store_finish(y.shape)
        bias = np.empty(0, x.dtype) if finish is None or finish.bias is None else finish.bias
        lo, hi = (-np.inf, np.inf) if finish is None else (finish.lo, finish.hi)
        own = x.dtype == np.float32  # (onyx's GEMM on the packed U; else BLAS's on U)
        panels = weights.panels() if own else _NO_PANELS
        u = _NO_U if own else weights.u()
        padded = scratch("conv.winograd.padded", shape, x.dtype)
        v = scratch("conv.winograd.input", (16, c, tiles_h * tiles_w), x.dtype)
        products = scratch("conv.winograd.products", (16, m, tiles_h * tiles_w), x.dtype)
        for i in range(n):
            res = None if finish is None or finish.residual is None else finish.residual[i]
            native.kernels.pad_bands(x[i], padded, pb[0], pb[1], pool.size)
            native.kernels.winograd_image(entry[0], padded, u, panels, v, products, y[i],
                                          tiles_h, tiles_w, pool.size, bias, kind(lo), kind(hi),
                                          res, *entry[1:])  # fmt: skip
        if finish is None:
            epilogue.apply_all(y)
            return y
        return _swish(y) if swish else y
    u = weights.u()
    padded = np.zeros(shape, x.dtype)
    inner = padded[:, pb[0] : pb[0] + h, pb[1] : pb[1] + w]
    v = np.empty((16, c, tiles_h * tiles_w), x.dtype)
    products = np.empty((16, m, tiles_h * tiles_w), x.dtype)
    for i in range(n):
        inner[...] = x[i]
        jit.winograd_input(padded, v, tiles_h, tiles_w, 0, c)
        threads.batched_matmul(u, v, products)
        jit.winograd_output(products, y[i], tiles_w, 0, m, v[0, 0, :0], kind(-np.inf),
                            kind(np.inf), None)  # fmt: skip
    epilogue.apply_all(y)
    return y


def winograd_batched_pays(plan, group, w_shape, n, dtype) -> bool:
    """Whether a batch of small images runs as Winograd F(2x2, 3x3) a chunk at a time
    (``conv_winograd_batched``): a 3x3 stride-1 undilated convolution with one group, that
    ``batched_pays`` takes, with 16 channels in and out at least. Measured on the batch
    benchmark's CNN (64 images, 1 thread): 16->32 channels at 16x16 20% faster than im2col
    chunk by chunk, 32->64 at 8x8 40%; 3->16 at 32x32 twice as slow (3-deep GEMMs)."""
    k, s, d = plan[:3]
    return (
        list(k) == [3, 3]
        and all(v == 1 for v in s)
        and all(v == 1 for v in d)
        and w_shape[0] >= 16
        and w_shape[1] >= 16
        and batched_pays(plan, group, w_shape, n, dtype)
    )


def conv_winograd_batched(x, u, plan, epilogue, y=None):
    """Winograd F(2x2, 3x3) over a batch of small images, a chunk of images at a time (into
    ``y`` where given; ``u`` from winograd_weight).

    A chunk's images, each zero-padded, sit side by side in one wide image (each image's
    width rounded up to whole tiles, so no tile mixes two images but the one at each seam,
    computed and dropped): its 16 GEMMs (M, C) x (C, tiles) are then wide, where one small
    image's tiles left them too narrow to pay. The chunk's outputs are copied to their
    images and the ``epilogue`` applied while they are in cache.
    """
    jit = compiled.kernels(compiled.MIN_SIZE)
    _, _, _, pb, _, out, _ = plan
    n, c, h, w = x.shape
    m = u.shape[1]
    ho, wo = out
    tiles_h, tiles_w = (ho + 1) // 2, (wo + 1) // 2
    span = 2 * tiles_w + 2  # an image's padded width in the wide image (even: tiles align)
    per_image = tiles_h * (tiles_w + 1)
    chunk = max(1, min(n, _TILE_BYTES // (16 * (c + m) * x.itemsize * per_image)))
    y = np.empty((n, m, ho, wo), x.dtype) if y is None else y
    item = x.itemsize
    pool = threads.current()
    found = _native_gemm(pool, epilogue, y, x.dtype, u)
    if found is not None:
        program, gemm, one, zero = found
        chunk = min(chunk, -(-n // (2 * pool.size)))  # at least two chunks per thread
        pool.native.kernels.winograd_chunks(gemm, np.ascontiguousarray(x), u, y, pb[0], pb[1],
                                            tiles_h, tiles_w, chunk, *program, one, zero)  # fmt: skip
        return y

    def images(n0, n1):
        b = n1 - n0
        wide_tiles = b * (tiles_w + 1) - 1
        padded = np.zeros((c, 2 * tiles_h + 2, b, span), x.dtype)
        padded[:, pb[0] : pb[0] + h, :, pb[1] : pb[1] + w] = x[n0:n1].transpose(1, 2, 0, 3)
        padded = padded.reshape(c, 2 * tiles_h + 2, b * span)
        v = np.empty((16, c, tiles_h * wide_tiles), x.dtype)
        jit.winograd_input(padded, v, tiles_h, wide_tiles, 0, c)
        products = np.empty((16, m, tiles_h * wide_tiles), x.dtype)
        np.matmul(u, v, out=products)
        wide = np.empty((m, 2 * tiles_h, 2 * wide_tiles), x.dtype)
        jit.winograd_output(products, wide, wide_tiles, 0, m, v[0, 0, :0], x.dtype.type(-np.inf),
                            x.dtype.type(np.inf), None)  # fmt: skip
        # image k's outputs: the wide image's columns k * span .. k * span + wo
        row = 2 * wide_tiles * item
        each = as_strided(wide, (m, ho, b, wo), (2 * tiles_h * row, row, span * item, item))
        y[n0:n1] = each.transpose(2, 0, 1, 3)
        epilogue.apply_images(y, n0, n1)

    _by_chunks(n, chunk, images)
    return y


def prepare_weight(w, group, dtype):
    """(W as (g, M/g, C/g*prod(K)), W as (M, prod(K)) when depthwise else None) in ``dtype``."""
    m = w.shape[0]
    w = np.asarray(w, dtype=dtype)
    w_gemm = np.ascontiguousarray(w.reshape(group, m // group, -1))
    depthwise = w.shape[1] == 1 and group > 1
    w_dw = np.ascontiguousarray(w.reshape(m, -1)) if depthwise else None
    return w_gemm, w_dw


def check_bias(b, m, name):
    if b is None or type(b) is np.ndarray and b.shape == (m,):
        return
    if np.ndim(b) != 1 or np.shape(b)[0] != m:
        raise KernelError(f"{name}: expected B of shape ({m},), got {np.shape(b)}")


def add_bias(y, b, name):
    if b is None:
        return y
    check_bias(b, y.shape[1], name)
    y += np.asarray(b).astype(y.dtype, copy=False).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


class _WeightCache:
    """Remembers the prepared weight of the last W array seen (by identity)."""

    __slots__ = ("key", "value")

    def __init__(self):
        self.key = None
        self.value = None

    def get(self, w, make):
        if self.key is not w:
            self.value = make()
            self.key = w
        return self.value


def _then_epilogue(compute):
    """A Conv path (x, epilogue, out) -> Y of a ``compute(x, out)`` that applies no epilogue:
    the epilogue applied after it."""

    def path(x, epilogue, out):
        y = compute(x, out)
        epilogue.apply_all(y)
        return y

    return path


class _Replays:
    """The epoch of the convolutions' replays: ``forget`` (after a threshold or switch the
    paths read is changed, as bench_switch.py does between runs) makes every kept one stale."""

    epoch = 0

    def forget(self) -> None:
        self.epoch += 1


_replays = _Replays()
forget_replays = _replays.forget
_KEEP_PATHS = True  # Convs keep their last call's path (_Replay); a switch for bench_switch.py
_SAMPLE_STRIDED = True  # strided 1x1 convolutions by their sampled pixels; a switch
_LEAN = True  # paths kept with their arguments fixed where they can be (planes_replay,
# transposed_replay); a switch


def _kept_path(lean, full):
    """A path for ``_Replay`` to take again, (x, epilogue, out) -> Y: the ``lean`` replay,
    (x, out, epilogue) -> Y with its arguments fixed, where one was made; else ``full``."""
    if lean is None:
        return full
    return lambda x, epilogue, out: lean(x, out, epilogue)


class _Replay(NamedTuple):
    """A Conv's last call, kept to be made again: while a call's X is laid out as this one's
    (shape, strides, dtype), with the same W and bias (read-only: the session's initializers),
    the same fused steps (a run-time operand of them, a residual, bound anew as ``prepare``
    would), an ``out`` where this one had one (of Y's shape and layout) and the same pool,
    ``again(x, epilogue, out)`` gives Y by the path this call took, none of
    ``Conv._call``'s checks and choices made anew: a chain of 64-channel 8x8 1x1 layers took
    8.5 us a layer with them kept, 10.1 without (its kernel ~3; benchmarks/bench_engine.py,
    part 2), and a mobile CNN has some 50 such layers."""

    shape: tuple
    strides: tuple
    dtype: np.dtype
    w: Any
    b: Any
    followers: Any  # the caller's epilogue's steps (None: no epilogue)
    applied: bool  # whether the call applied the caller's epilogue
    epilogue: Epilogue | None  # the one it applied (None: with run-time operands, not kept)
    bias: Any  # the bias that epilogue was prepared with
    y_shape: tuple
    with_out: bool
    pool: Any
    epoch: int
    compiled: bool  # whether the compiled kernels were on (tests switch them)
    again: Callable[[np.ndarray, Epilogue, np.ndarray | None], np.ndarray | None]

    def takes(self, x, w, b, epilogue, out) -> bool:
        """Whether a call of these arguments would take the same path with the same values."""
        return (
            type(x) is np.ndarray
            and x.shape == self.shape
            and x.strides == self.strides
            and x.dtype == self.dtype
            and w is self.w
            and b is self.b
            and (None if epilogue is None else epilogue.followers) is self.followers
            and (self._fits(out) if self.with_out else out is None)
            and threads.current() is self.pool
            and self.epoch == _replays.epoch
            and self.compiled == compiled.enabled
        )

    def _fits(self, out) -> bool:
        return (
            type(out) is np.ndarray
            and out.shape == self.y_shape
            and out.dtype == self.dtype
            and out.flags.c_contiguous
        )

    def run(self, x, epilogue, out):
        """Y again, or None where the epilogue's run-time operands are not laid out as the
        kept call's were (see ``Epilogue.prepare``)."""
        if self.applied and epilogue.extras:  # (bound to this call's operands)
            if not epilogue.prepare(self.y_shape, self.dtype, self.bias):
                return None
            y = self.again(x, epilogue, out)
        else:
            y = self.again(x, self.epilogue, out)
        if y is not None and self.applied:
            epilogue.applied = True
        return y


@kernel("Conv", 1, 11, 22)
class Conv:
    """Conv: N-D convolution with groups, dilations, strides, pads and auto_pad."""

    takes_epilogue = True  # the plan's fusion may hand it the elementwise steps that follow

    def __init__(self, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 pads=None, strides=None):  # fmt: skip
        self.geom = _ConvGeometry("Conv", kernel_shape, strides, dilations, pads, auto_pad, group)
        self.cache = _WeightCache()
        self.shift_cache = _WeightCache()
        self.winograd_cache = _WeightCache()
        self.last_cache = _WeightCache()
        self.packed = threads.PackedWeight()  # W (C, M), packed: for the channel-last products
        # W (M, C) for conv_planes, or (M, kh*kw*C) for conv_planes_patches (a node takes one)
        self.tiles = threads.PackedWeight(threads.row_tiles)
        self.plane_weight: tuple = (None, None)  # (the W it is a view of, that 2-D view)
        self.bias_memo: dict = {}  # for Epilogue.prepare
        self.channels_last = False  # set by the plan: Y may be a channel-last view
        self.routes: dict = {}  # (shapes, dtype, compiled state) -> ``_route``'s path
        self.replay: _Replay | None = None  # the last call's path, to be taken again
        self.sampled: _ConvGeometry | None = None  # a strided 1x1's, as of stride 1

    def __call__(self, x, w, b=None, *, epilogue=None, out=None):
        """Y; with an ``epilogue`` that fits, Y with the epilogue applied (``epilogue.applied``).
        With ``out`` (an array of Y's shape and dtype, C-contiguous), Y is computed into it
        where the path taken can (the caller checks for ``y is out``)."""
        replay = self.replay
        if replay is not None and _KEEP_PATHS and replay.takes(x, w, b, epilogue, out):
            y = replay.run(x, epilogue, out)
            if y is not None:
                return y
        y, kept = self._call(x, w, b, epilogue, out)
        if kept and _KEEP_PATHS:
            prepared, bias, y_shape, again = kept
            self.replay = _Replay(
                x.shape, x.strides, x.dtype, w, b,
                followers=None if epilogue is None else epilogue.followers,
                applied=epilogue is not None and epilogue.applied, epilogue=prepared, bias=bias,
                y_shape=y_shape, with_out=out is not None, pool=threads.current(),
                epoch=_replays.epoch, compiled=compiled.enabled, again=again,
            )  # fmt: skip
        return y

    def _call(self, x, w, b, epilogue, out, geom=None):
        """(Y, as ``__call__``; where the path taken may be taken again (``_Replay``): the
        epilogue it applied, the bias that was prepared with, Y's shape and the path as a
        function of (X, a prepared epilogue, out); else None). ``geom``: the geometry to
        follow, where not the node's own (``_strided_pointwise``)."""
        _check_rank("Conv", x, w)
        geom = self.geom if geom is None else geom
        plan = geom.plan(x.shape, w.shape)
        if plan[6] and any(v != 1 for v in plan[1]) and _SAMPLE_STRIDED:
            return self._strided_pointwise(x, w, b, epilogue, out, plan[1])
        dtype = compute_dtype(x.dtype)
        group = geom.group
        w_gemm, w_dw = self.cache.get(w, lambda: prepare_weight(w, group, dtype))
        check_bias(b, w.shape[0], "Conv")
        bias = b
        if b is not None and not (type(b) is np.ndarray and b.dtype == dtype):
            bias = np.asarray(b).astype(dtype, copy=False)
        y_shape = (x.shape[0], w.shape[0], *plan[5])
        followers = epilogue
        if epilogue is None or x.dtype != dtype or not epilogue.prepare(y_shape, dtype, bias):
            # the bias alone; the caller applies its followers itself
            epilogue = Epilogue(memo=self.bias_memo)
            epilogue.prepare(y_shape, dtype, bias)
        else:
            epilogue.applied = True
        xw = x if x.dtype == dtype else x.astype(dtype)
        given = out
        if out is not None and not (
            x.dtype == dtype == out.dtype and out.shape == y_shape and out.flags.c_contiguous
        ):
            out = None
        if plan[6] and group == 1 and math.prod(x.shape[2:]) == 1 and out is None:
            # one pixel (a squeeze-excite's convolutions): a product by a vector, without
            # the paths' bookkeeping (15 -> 8 us on EfficientNet's)
            y = np.matmul(xw.reshape(x.shape[0], -1), w_gemm[0].T).reshape(y_shape)
            epilogue.apply_all(y)
            return y.astype(x.dtype, copy=False), None
        # (a path taken again by ``_Replay`` only where what it reads cannot change between
        # calls: X already in the compute dtype, W and the bias read-only (the session's
        # initializers); an ``out`` given only where it was taken)
        keep = (
            xw is x
            and (out is not None) == (given is not None)
            and not w.flags.writeable
            and (b is None or (type(b) is np.ndarray and not b.flags.writeable))
        )

        def kept(path):
            # (an epilogue with run-time operands not kept: it would hold a tensor alive)
            return (None if epilogue.extras else epilogue, bias, y_shape, path) if keep else None

        # W as (kh, kw, C/group, M) for the channel-last and packed paths, made where one asks
        w_last = functools.partial(self.last_cache.get, w, lambda: last_weight(w, dtype))

        # (channel-last output only where the caller's steps all go in the epilogue)
        want_last = self.channels_last and (followers is None or epilogue.applied)
        if (
            # (a marked convolution writes channel-last only on small planes: conv_channels_last)
            (not want_last or math.prod(plan[5]) > _LAST_PLANE)
            and xw.flags.c_contiguous
            and planes_pay(plan, group, w.shape, dtype)
        ):  # (W packed only where it is the session's: a writeable W may change in place)
            if self.plane_weight[0] is not w_gemm:  # (one view, so the packed copy is found fast)
                self.plane_weight = (w_gemm, w_gemm[0])
            weight, tiles = self.plane_weight[1], self.tiles
            y = conv_planes(xw, weight, tiles, plan, epilogue, out)
            if y is not None:
                lean = planes_replay(xw, weight, tiles, plan, epilogue) if _LEAN else None
                return y.astype(x.dtype, copy=False), kept(
                    _kept_path(
                        lean, lambda x, ep, out: conv_planes(x, weight, tiles, plan, ep, out)
                    )
                )
        if (
            not w.flags.writeable
            and not want_last
            and packed_pointwise_pays(plan, group, w.shape, dtype)
        ):  # (W packed only where it is the session's: a writeable W may change in place)
            y = conv_packed_pointwise(xw, w_last, self.packed, plan, epilogue, out)
            if y is not None:
                lean = (
                    packed_pointwise_replay(xw, w_last, self.packed, plan, epilogue)
                    if _LEAN
                    else None
                )

                def full(x, ep, out):
                    return conv_packed_pointwise(x, w_last, self.packed, plan, ep, out)

                return y.astype(x.dtype, copy=False), kept(_kept_path(lean, full))
        if want_last or w_dw is not None or not xw.flags.c_contiguous:  # (else none applies)
            # (as above)
            packed = None if w.flags.writeable else self.packed

            def channel_last(x, epilogue, out=None):
                found = conv_channels_last(x, w_gemm, w_dw, w_last, plan, epilogue, want_last,
                                           packed)  # fmt: skip
                if found is not None and not found[1]:
                    epilogue.apply_all(found[0])
                return None if found is None else found[0]

            y = channel_last(xw, epilogue)
            if y is not None:
                lean = None
                if _LEAN:
                    lean = channels_last_replay(xw, w_gemm, w_dw, w_last, plan, epilogue,
                                                want_last, packed)  # fmt: skip
                return y.astype(x.dtype, copy=False), kept(_kept_path(lean, channel_last))
        route = self._route(plan, x.shape, w.shape, dtype)
        # (checked per call, not in ``_route``: bench_switch.py may change their depths)
        if (
            not w.flags.writeable
            and xw.flags.c_contiguous
            and planes_patches_pay(route, plan, group, w.shape, dtype)
        ):  # (W packed only where it is the session's, as above)
            last = w_last()
            if self.plane_weight[0] is not last:  # (one view, so the packed copy is found fast)
                self.plane_weight = (last, last.reshape(-1, last.shape[-1]).T)
            weight, tiles = self.plane_weight[1], self.tiles
            y = conv_planes_patches(xw, weight, tiles, plan, epilogue, out)
            if y is not None:
                return y.astype(x.dtype, copy=False), kept(
                    lambda x, ep, out: conv_planes_patches(x, weight, tiles, plan, ep, out)
                )
        if not w.flags.writeable and packed_columns_pay(route, plan, group, w.shape, dtype):
            y = conv_packed_columns(xw, w_last, self.packed, plan, epilogue, out)
            if y is not None:  # (W packed only where it is the session's, as above)
                lean = (
                    packed_columns_replay(xw, w_last, self.packed, plan, epilogue)
                    if _LEAN
                    else None
                )

                def full(x, ep, out):
                    return conv_packed_columns(x, w_last, self.packed, plan, ep, out)

                return y.astype(x.dtype, copy=False), kept(_kept_path(lean, full))
        if route in ("winograd", "winograd-batched"):
            weights = self.winograd_cache.get(w, lambda: WinogradWeights(w, dtype))
            if route == "winograd":

                def path(x, epilogue, out):
                    return conv_winograd(x, weights, plan, epilogue, out)

            else:

                def path(x, epilogue, out):
                    return conv_winograd_batched(x, weights.u(), plan, epilogue, out)

        elif route in ("batched", "blocked"):
            by = conv_batched if route == "batched" else conv_blocked

            def path(x, epilogue, out):
                return by(x, w_gemm[0], plan, epilogue, out)

        elif w_dw is not None and (jit := depthwise_kernels(xw, w_dw, plan)) is not None:
            steps = epilogue.channel_steps()
            finish = None if steps is None else threads.Finish(*steps[:3])
            swish = finish is not None and steps[3] and dtype == np.float32
            mult = w_gemm.shape[1]

            def path(x, epilogue, out):
                y = depthwise_planes(jit, x, w_dw, plan, mult, finish, swish, out)
                if finish is None:
                    epilogue.apply_all(y)
                return _swish(y) if finish is not None and steps[3] and not swish else y

        elif shifted_eligible(plan, group, w.shape):
            w_shift = self.shift_cache.get(w, lambda: shifted_weight(w_gemm, plan[0]))
            path = _then_epilogue(lambda x, out: conv_shifted(x, w_shift, plan, out))
        else:
            path = _then_epilogue(lambda x, out: conv_forward(x, w_gemm, plan, group, w_dw, out))

        return path(xw, epilogue, out).astype(x.dtype, copy=False), kept(path)

    def _strided_pointwise(self, x, w, b, epilogue, out, strides):
        """``_call`` for a strided 1x1 convolution (ResNet's downsampling shortcuts): the 1x1
        one of stride 1 on the pixels it reads, copied out first, so that it takes the
        pointwise paths and their weights packed once. The strided view went to BLAS through
        numpy's copy of it: ResNet-50's three, alone on 2 threads, 838, 750 and 798 us against
        684, 738 and 594 now; the whole model 1.02x faster (bench_switch.py
        kernels.conv._SAMPLE_STRIDED=False, one run)."""
        if self.sampled is None:
            kernel_shape, _, dilations, pads = self.geom.attrs
            self.sampled = _ConvGeometry("Conv", kernel_shape, None, dilations, pads,
                                         self.geom.auto_pad, self.geom.group)  # fmt: skip
        picked = (slice(None), slice(None)) + tuple(slice(None, None, v) for v in strides)

        def sample(x):
            return np.ascontiguousarray(x[picked])

        y, kept = self._call(sample(x), w, b, epilogue, out, self.sampled)
        if kept is not None:
            prepared, bias, y_shape, path = kept
            kept = (prepared, bias, y_shape, lambda x, ep, out: path(sample(x), ep, out))
        return y, kept

    def _route(self, plan, x_shape, w_shape, dtype) -> str:
        """Which of the one-group paths takes this convolution ("winograd", "winograd-batched",
        "batched", "blocked"), or "other"; worked out once per shapes, dtype and state of the
        compiled kernels (the checks cost a few us a call, on every Conv)."""
        key = (x_shape, w_shape, dtype, compiled.enabled, compiled.MIN_SIZE)
        route = self.routes.get(key)
        if route is None:
            group, n = self.geom.group, x_shape[0]
            if winograd_pays(plan, group, w_shape, dtype):
                route = "winograd"
            elif winograd_batched_pays(plan, group, w_shape, n, dtype):
                route = "winograd-batched"
            elif batched_pays(plan, group, w_shape, n, dtype):
                route = "batched"
            elif (
                group == 1 and len(plan[0]) == 2 and dtype == np.float32 and _blocked_pays(w_shape)
            ):
                route = "blocked"
            else:
                route = "other"
            self.routes[key] = route
        return route

    def channels_last_kind(self, w_shape) -> str | None:
        """With a weight of ``w_shape``: "pointwise" (1x1, stride 1, no padding, one group) or
        "depthwise" (one input channel per output channel) for a 2-D convolution of a kind that
        reads and writes channel-last tensors (``conv_channels_last``); None for any other."""
        kernel_shape, strides, _, pads = self.geom.attrs
        if len(w_shape) != 4:
            return None
        if self.geom.group == 1 and tuple(w_shape[2:]) == (1, 1):
            plain = (
                all(v == 1 for v in strides or ())
                and not any(pads or ())
                and list(kernel_shape or (1, 1)) == [1, 1]
            )
            return "pointwise" if plain else None
        return "depthwise" if self.geom.group == w_shape[0] and w_shape[1] == 1 else None

    def output_shape(self, x, w) -> tuple[int, ...]:
        """Y's shape for these inputs (raising as ``__call__`` would for ones that do not fit)."""
        _check_rank("Conv", x, w)
        return (x.shape[0], w.shape[0], *self.geom.plan(x.shape, w.shape)[5])


# --- integer convolutions -----------------------------------------------------------------------
def _zero_point(z, name, what, channels=None):
    if z is None:
        return None
    z = np.asarray(z)
    if z.size == 1:
        return z.reshape(())
    if z.ndim == 1 and channels is not None and z.shape[0] == channels:
        return z
    raise KernelError(
        f"{name}: expected {what} to be a scalar or of shape ({channels},), got shape {z.shape}"
    )


def _integer_conv(name, geom, x, w, xz, wz):
    """The exact int32 convolution of (x - xz) and (w - wz) (computed in float64, exact)."""
    _check_rank(name, x, w)
    plan = geom.plan(x.shape, w.shape)
    m = w.shape[0]
    xf = x.astype(np.float64)
    if xz is not None:
        xz = _zero_point(xz, name, "x_zero_point")
        xf -= xz.astype(np.float64)
    wf = w.astype(np.float64)
    if wz is not None:
        wz = _zero_point(wz, name, "w_zero_point", m)
        wf -= wz.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1)) if wz.ndim else wz
    # padding is with the zero point, i.e. zero after subtraction: conv_forward pads with 0.
    w_gemm, w_dw = prepare_weight(wf, geom.group, np.float64)
    y = conv_forward(xf, w_gemm, plan, geom.group, w_dw)
    return y


@kernel("ConvInteger", 10)
class ConvInteger:
    """ConvInteger: int32 convolution of zero-point-shifted 8-bit input and weight."""

    def __init__(self, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 pads=None, strides=None):  # fmt: skip
        self.geom = _ConvGeometry(
            "ConvInteger", kernel_shape, strides, dilations, pads, auto_pad, group
        )

    def __call__(self, x, w, x_zero_point=None, w_zero_point=None):
        y = _integer_conv("ConvInteger", self.geom, x, w, x_zero_point, w_zero_point)
        return np.rint(y).astype(np.int64).astype(np.int32)


@kernel("QLinearConv", 10)
class QLinearConv:
    """QLinearConv: quantized convolution with per-tensor or per-channel weight scales."""

    def __init__(self, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 pads=None, strides=None):  # fmt: skip
        self.geom = _ConvGeometry(
            "QLinearConv", kernel_shape, strides, dilations, pads, auto_pad, group
        )

    def __call__(self, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                 y_zero_point, b=None):  # fmt: skip
        name = "QLinearConv"
        y = _integer_conv(name, self.geom, x, w, x_zero_point, w_zero_point)
        m = w.shape[0]
        if b is not None:
            y = add_bias(y, np.asarray(b).astype(np.float64), name)
        ws = _zero_point(w_scale, name, "w_scale", m).astype(np.float64)
        xs = np.asarray(x_scale, dtype=np.float64).reshape(())
        ys = np.asarray(y_scale, dtype=np.float64).reshape(())
        scale = xs * ws / ys
        if scale.ndim:
            scale = scale.reshape((1, -1) + (1,) * (y.ndim - 2))
        y = np.rint(y * scale)
        yz = _zero_point(y_zero_point, name, "y_zero_point", m)
        out_dtype = np.asarray(y_zero_point).dtype
        if yz.ndim:
            yz = yz.reshape((1, -1) + (1,) * (y.ndim - 2))
        y += yz.astype(np.float64)
        info = np.iinfo(out_dtype)
        return np.clip(y, info.min, info.max).astype(out_dtype)


# --- transposed convolution ---------------------------------------------------------------------
def _scatter_cols(cols, out_full, k, s, d, in_shape, shift):
    """Add cols (N, C, prod(K), *I) into out_full (N, C, *F) at each kernel offset (col2im)."""
    for i, offset in enumerate(np.ndindex(*k)):
        sl = tuple(
            slice(sh + o * dd, sh + o * dd + (n - 1) * ss + 1, ss)
            for sh, o, dd, ss, n in zip(shift, offset, d, s, in_shape)
        )
        out_full[(slice(None), slice(None)) + sl] += cols[:, :, i]


@kernel("ConvTranspose", 1, 11, 22)
class ConvTranspose:
    """ConvTranspose: the gradient of Conv, as matmul then col2im scatter-add."""

    def __init__(self, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 output_padding=None, output_shape=None, pads=None, strides=None):  # fmt: skip
        if auto_pad not in _AUTO_PADS:
            raise KernelError(
                f"ConvTranspose: auto_pad must be one of {_AUTO_PADS}, got {auto_pad!r}"
            )
        self.auto_pad = auto_pad
        self.dilations, self.group, self.kernel_shape = dilations, int(group), kernel_shape
        self.output_padding, self.output_shape = output_padding, output_shape
        self.pads, self.strides = pads, strides
        self.cache = _WeightCache()

    def _geometry(self, x_shape, w_shape):
        name, nd = "ConvTranspose", len(x_shape) - 2
        if self.kernel_shape and list(self.kernel_shape) != list(w_shape[2:]):
            raise KernelError(
                f"{name}: kernel_shape {list(self.kernel_shape)} disagrees with W's spatial "
                f"shape {list(w_shape[2:])}"
            )
        k, s, d, pb, pe = spatial_params(
            name, nd, w_shape[2:], self.strides, self.dilations, self.pads
        )
        op = list(self.output_padding) if self.output_padding else [0] * nd
        if len(op) != nd:
            raise KernelError(f"{name}: expected output_padding of length {nd}, got {op}")
        in_shape = x_shape[2:]
        full = [ss * (n - 1) + (kk - 1) * dd + 1 for ss, n, kk, dd in zip(s, in_shape, k, d)]
        if self.output_shape:
            out = list(self.output_shape)[-nd:]
        elif self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = [n * ss for n, ss in zip(in_shape, s)]
        else:
            if self.auto_pad == "VALID":
                pb, pe = [0] * nd, [0] * nd
            out = [f + p - b - e for f, p, b, e in zip(full, op, pb, pe)]
        if self.output_shape or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pb = []
            for f, p, o in zip(full, op, out):
                total = f + p - o
                if self.auto_pad == "SAME_UPPER":
                    pb.append(total // 2)
                else:
                    pb.append(total - total // 2)
        if min(out) < 1:
            raise KernelError(f"{name}: computed output spatial shape {out} is not positive")
        return k, s, d, full, pb, out

    def __call__(self, x, w, b=None):
        name = "ConvTranspose"
        _check_rank(name, x, w)
        g = self.group
        n, c = x.shape[:2]
        if c != w.shape[0] or c % g:
            raise KernelError(
                f"{name}: expected W.shape[0] == C ({c}) divisible by group={g}, got W shape "
                f"{w.shape}"
            )
        k, s, d, full, pb, out = self._geometry(x.shape, w.shape)
        dtype = compute_dtype(x.dtype)
        mg, kp = w.shape[1], math.prod(k)

        def make():  # (g, M/g*prod(K), C/g)
            wr = np.asarray(w, dtype=dtype).reshape(g, c // g, mg * kp)
            return np.ascontiguousarray(wr.transpose(0, 2, 1))

        wt = self.cache.get(w, make)
        in_shape = x.shape[2:]
        xs = x.astype(dtype, copy=False).reshape(n, g, c // g, -1)
        cols = np.matmul(wt, xs).reshape((n, g * mg, kp) + tuple(in_shape))
        shift = [max(0, -p) for p in pb]
        buf = [max(f + sh, p + sh + o) for f, sh, p, o in zip(full, shift, pb, out)]
        y = np.zeros((n, g * mg) + tuple(buf), dtype=dtype)
        _scatter_cols(cols, y, k, s, d, in_shape, shift)
        y = y[(slice(None), slice(None)) + tuple(slice(p + sh, p + sh + o) for p, sh, o in
                                                 zip(pb, shift, out))]  # fmt: skip
        if b is not None:
            y = add_bias(np.ascontiguousarray(y), b, name)
        return y.astype(x.dtype, copy=False)


# --- Col2Im ------------------------------------------------------------------------------------
@kernel("Col2Im", 18)
def col2im(x, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    """Col2Im: sum column blocks (N, C*prod(B), L) back into an image (N, C, *image_shape)."""
    name = "Col2Im"
    image = [int(v) for v in np.asarray(image_shape).reshape(-1)]
    block = [int(v) for v in np.asarray(block_shape).reshape(-1)]
    nd = len(image)
    if len(block) != nd or x.ndim != 3:
        raise KernelError(
            f"{name}: expected input of rank 3 and image_shape, block_shape of equal length; got "
            f"input shape {x.shape}, image_shape {image}, block_shape {block}"
        )
    k, s, d, pb, pe = spatial_params(name, nd, block, strides, dilations, pads)
    blocks, _, _ = output_geometry(name, image, k, s, d, pb, pe, "NOTSET")
    n, ck, length = x.shape
    kp = math.prod(k)
    if ck % kp or length != math.prod(blocks):
        raise KernelError(
            f"{name}: input shape {x.shape} does not fit block_shape {block} with {blocks} blocks"
        )
    c = ck // kp
    work = x.astype(np.uint8) if x.dtype == np.bool_ else x
    cols = work.reshape((n, c, kp) + tuple(blocks))
    buf = [i + b + e for i, b, e in zip(image, pb, pe)]
    y = np.zeros((n, c) + tuple(buf), dtype=work.dtype)
    _scatter_cols(cols, y, k, s, d, blocks, [0] * nd)
    y = y[(slice(None), slice(None)) + tuple(slice(b, b + i) for b, i in zip(pb, image))]
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


# --- DeformConv ----------------------------------------------------------------------------------
def _deform_sample(x, pos):
    """Multilinear samples of x (N, Cg, *S) at pos (N, nd, *P) per batch; zero outside: (N, Cg, *P)."""
    n, cg = x.shape[:2]
    spatial = x.shape[2:]
    nd = len(spatial)
    pshape = pos.shape[2:]
    flat = x.reshape(n, cg, -1)
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64)
    result = np.zeros((n, cg) + pshape, dtype=x.dtype)
    strides = [math.prod(spatial[i + 1 :]) for i in range(nd)]
    for corner in np.ndindex(*([2] * nd)):
        weight = np.ones((n,) + pshape, dtype=x.dtype)
        index = np.zeros((n,) + pshape, dtype=np.int64)
        valid = np.ones((n,) + pshape, dtype=bool)
        for i, bit in enumerate(corner):
            idx = lo[:, i] + bit
            weight = weight * (frac[:, i] if bit else 1 - frac[:, i])
            valid &= (idx >= 0) & (idx < spatial[i])
            index += np.clip(idx, 0, spatial[i] - 1) * strides[i]
        weight = np.where(valid, weight, 0)
        gathered = np.take_along_axis(flat, index.reshape(n, 1, -1), axis=2)
        result += gathered.reshape((n, cg) + pshape) * weight[:, None]
    return result


@kernel("DeformConv", 19, 22)
class DeformConv:
    """DeformConv: convolution at kernel points moved by learned offsets (and scaled by mask)."""

    def __init__(self, *, dilations=None, group=1, kernel_shape=None, offset_group=1,
                 pads=None, strides=None):  # fmt: skip
        self.geom = _ConvGeometry("DeformConv", kernel_shape, strides, dilations, pads,
                                  "NOTSET", group)  # fmt: skip
        self.offset_group = int(offset_group)

    def __call__(self, x, w, offset, b=None, mask=None):
        name = "DeformConv"
        _check_rank(name, x, w)
        k, s, d, pb, _pe, out, _ = self.geom.plan(x.shape, w.shape)
        n, c = x.shape[:2]
        nd, kp, og, g = len(k), math.prod(k), self.offset_group, self.geom.group
        if og < 1 or c % og:
            raise KernelError(f"{name}: C={c} must be divisible by offset_group={og}")
        want = (n, og * kp * nd) + tuple(out)
        if offset.shape != want:
            raise KernelError(f"{name}: expected offset of shape {want}, got {offset.shape}")
        if mask is not None and mask.shape != (n, og * kp) + tuple(out):
            raise KernelError(
                f"{name}: expected mask of shape {(n, og * kp) + tuple(out)}, got {mask.shape}"
            )
        dtype = compute_dtype(x.dtype)
        xf = x.astype(dtype, copy=False)
        # base sampling positions: (nd, prod(K), *O)
        grids = np.meshgrid(*[np.arange(v) for v in k], *[np.arange(v) for v in out],
                            indexing="ij")  # fmt: skip
        base = np.stack(
            [grids[i] * d[i] + grids[nd + i] * s[i] - pb[i] for i in range(nd)]
        ).reshape((nd, kp) + tuple(out))
        off = offset.astype(dtype).reshape((n, og, kp, nd) + tuple(out))
        cg = c // og
        cols = np.empty((n, c, kp) + tuple(out), dtype=dtype)
        for j in range(og):
            pos = base[None].astype(dtype) + np.moveaxis(off[:, j], 2, 1)  # (N, nd, K, *O)
            sampled = _deform_sample(xf[:, j * cg : (j + 1) * cg], pos)
            if mask is not None:
                msk = mask.astype(dtype).reshape((n, og, kp) + tuple(out))[:, j]
                sampled *= msk[:, None]
            cols[:, j * cg : (j + 1) * cg] = sampled
        w_gemm, _ = prepare_weight(w, g, dtype)
        o_size = math.prod(out)
        y = np.matmul(w_gemm, cols.reshape(n, g, (c // g) * kp, o_size))
        y = y.reshape((n, w.shape[0]) + tuple(out))
        y = add_bias(y, b, name)
        return y.astype(x.dtype, copy=False)


# --- CausalConvWithState ----------------------------------------------------------------------
@kernel("CausalConvWithState", 27)
def causal_conv_with_state(x, weight, bias=None, past_state=None, *, activation="none"):
    """CausalConvWithState: depthwise causal 1-D conv over [past_state, x], with the new state."""
    name = "CausalConvWithState"
    if activation not in ("none", "silu", "swish"):
        raise KernelError(
            f"{name}: activation must be 'none', 'silu' or 'swish', got {activation!r}"
        )
    if x.ndim != 3 or weight.ndim != 3 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise KernelError(
            f"{name}: expected input (B, C, L) and weight (C, 1, k); got input {x.shape}, "
            f"weight {weight.shape}"
        )
    bsz, c, length = x.shape
    k = weight.shape[2]
    dtype = compute_dtype(x.dtype)
    if past_state is None:
        past = np.zeros((bsz, c, k - 1), dtype=dtype)
    else:
        if past_state.shape != (bsz, c, k - 1):
            raise KernelError(
                f"{name}: expected past_state of shape {(bsz, c, k - 1)}, got {past_state.shape}"
            )
        past = past_state.astype(dtype)
    seq = np.concatenate([past, x.astype(dtype)], axis=2)
    w = weight.astype(dtype).reshape(c, k)
    y = seq[:, :, 0:length] * w[None, :, 0:1]
    for j in range(1, k):
        y += seq[:, :, j : j + length] * w[None, :, j : j + 1]
    if bias is not None:
        if bias.shape != (c,):
            raise KernelError(f"{name}: expected bias of shape ({c},), got {bias.shape}")
        y += bias.astype(dtype)[None, :, None]
    if activation != "none":
        y = y / (1 + np.exp(-y))
    present = seq[:, :, seq.shape[2] - (k - 1) :]
    return y.astype(x.dtype), np.ascontiguousarray(present).astype(x.dtype)
