"""The numba kernels behind compiled.py (imported only where numba is installed).

Each is compiled at its first call for the dtype it gets (float32 or float64; a few seconds
per kernel), once per machine: numba caches the machine code on disk. Callers pass C-contiguous
arrays only, so there is one compiled version per dtype. Arithmetic stays in the array's dtype
and follows numpy's: IEEE division (no exception on zero), maximum/minimum propagating NaN and
returning the second operand when the two compare equal (so the sign of a zero is numpy's).

Habits that keep numba's loops vectorized (checked in the generated code): a row read and
written in place goes by one name (two names for one row fail LLVM's overlap check at run
time), a loop touches few arrays (LLVM gives up checking many for overlap), a loop storing
to several places gives each its own array name (stores into one array at distances known
only at run time stay scalar), and computed indices are unsigned (numba skips its
negative-index wraparound for those). A slice costs numba a reference count increment and
decrement: per image row, that can take longer than the row's work.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from onyx.runtime._jit_gemm import (
    TAP_VECTORS,
    WIDE,
    _address,
    _tile,
    copy_vector,
    lane_sums,
    nine_taps_vectors,
    square_taps_tile,
    swish_vectors,
    transpose_eight,
)
from onyx.runtime.compiled import ADD, DIV, MAX, MUL, SUB, SWISH

# Single-threaded: between GEMMs, OpenBLAS's idle threads spin on the other core, and a second
# thread pool beside them made whole models 10x slower (OpenMP waiting actively) or no faster
# (passively) than one thread (measured once with parallel=True on these kernels; not kept).
_OPTIONS = {"parallel": False, "cache": True, "nogil": True, "error_model": "numpy"}


# Comparisons LLVM turns into vector selects (a version calling np.isnan ran a ReLU pass 1.1x
# slower, timed alone), in numpy's rules: a NaN wins, the first of two NaNs, the second operand
# of two equal.
@njit(inline="always")
def _max(a, b):
    return b if a <= b or (b != b and a == a) else a  # noqa: PLR0124 (x != x: x is NaN)


@njit(inline="always")
def _min(a, b):
    return b if a >= b or (b != b and a == a) else a  # noqa: PLR0124 (x != x: x is NaN)


@njit(inline="always")
def _by_value(code, out, a, b):
    """out = op(a, b) for rows ``out`` and ``a`` (one row, or two apart) and one value ``b``."""
    n = out.shape[0]
    if code == ADD:
        for j in range(n):
            out[j] = a[j] + b
    elif code == SUB:
        for j in range(n):
            out[j] = a[j] - b
    elif code == MUL:
        for j in range(n):
            out[j] = a[j] * b
    elif code == DIV:
        for j in range(n):
            out[j] = a[j] / b
    elif code == MAX:
        for j in range(n):
            out[j] = _max(a[j], b)
    else:
        for j in range(n):
            out[j] = _min(a[j], b)


@njit(**_OPTIONS)
def by_rows(x, values, y, code, r0, r1):
    """y[r] = op(x[r], values[r]) for rows r0..r1 of the 2-D ``x`` and ``y`` (one value a row:
    (N, C, H, W) by (N, C, 1, 1), a squeeze-excite's gate); op as ``_by_value``'s ``code``."""
    for r in range(r0, r1):
        _by_value(code, y[r], x[r], values[r])


@njit(inline="always")
def _by_row(code, out, a, b):
    """out = op(a, b) for rows ``out``, ``a`` (one row, or two apart) and ``b``."""
    n = out.shape[0]
    if code == ADD:
        for j in range(n):
            out[j] = a[j] + b[j]
    elif code == SUB:
        for j in range(n):
            out[j] = a[j] - b[j]
    elif code == MUL:
        for j in range(n):
            out[j] = a[j] * b[j]
    elif code == DIV:
        for j in range(n):
            out[j] = a[j] / b[j]
    elif code == MAX:
        for j in range(n):
            out[j] = _max(a[j], b[j])
    else:
        for j in range(n):
            out[j] = _min(a[j], b[j])


@njit(inline="always")
def _visible(shift, step, count, width):
    """The outputs q in [q0, q1) of ``count`` whose input column q*step + shift is in
    [0, width)."""
    q0 = 0 if shift >= 0 else min(count, (step - 1 - shift) // step)
    q1 = max(q0, min(count, (width - shift + step - 1) // step))
    return q0, q1


@njit(inline="always")
def _split_pairs(pairs, even, odd, count):
    """even[i], odd[i] = the low and high halves of pairs[i], i < ``count``: float32 lines'
    two stride-2 phases by shifts, where numba's stride-2 reads would gather."""
    for i in range(count):
        pair = pairs[i]  # (read once: the stores might alias it, for all LLVM knows)
        even[i] = np.uint32(pair & np.uint64(0xFFFFFFFF))
        odd[i] = np.uint32(pair >> np.uint64(32))


@njit(**_OPTIONS)
def im2col(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo):
    """The im2col rows of output rows r0..r1 of a 2-D convolution over one image ``x`` (C, H, W)
    into ``cols`` (C*kh*kw, (r1-r0)*wo), reading zeros outside the image (the padding).

    Indexed flat (a slice per image row cost numba reference counting that took longer than the
    copy). Where stride 1 (both ways) keeps the output as wide as the image ("same" padding),
    output rows read input rows that follow each other in memory: each kernel offset's rows are
    then one long copy, its few columns that fall outside the image zeroed after (2-3x faster
    on the CNNs' 3x3 and 5x5 layers, 13x13 to 56x56, than a copy per row). With stride 2 across,
    float32 and an even width, the rows are first split into their even and odd columns, so
    each kernel offset copies from one of the two instead of gathering every other element
    (the CNNs' stride-2 layers: 1.1-2.9x faster, the most on their 7x7 and 3x3 stems).
    """
    channels, height, width = x.shape
    plane = height * width
    source, target = x.reshape(-1), cols.reshape(-1)
    n = (r1 - r0) * wo
    runs = sh == 1 and sw == 1 and wo == width
    # the input rows the band reads, and their two phases where they split by halves of pairs
    lowest = max(0, r0 * sh - pt)
    highest = min(height, (r1 - 1) * sh - pt + (kh - 1) * dh + 1)
    half = width // 2
    phased = sw == 2 and x.itemsize == 4 and width % 2 == 0 and highest > lowest
    lines = (highest - lowest) * half if phased else 0
    phases = np.empty(2 * lines, x.dtype)
    pairs = source[: source.shape[0] // 2 * 2].view(np.uint64)
    even, odd = phases[:lines].view(np.uint32), phases[lines:].view(np.uint32)
    for c in range(channels):
        if phased:
            at = (c * plane + lowest * width) // 2
            _split_pairs(pairs[at : at + lines], even, odd, lines)
        for i in range(kh):
            offset = i * dh - pt  # output row r reads input row r*sh + offset
            # the output rows [ra, rb) whose input row is inside the image
            ra = min(r1, max(r0, (sh - 1 - offset) // sh))
            rb = max(ra, min(r1, (height - 1 - offset) // sh + 1))
            for j in range(kw):
                base = np.uint64(((c * kh + i) * kw + j) * n)
                shift = j * dw - pl  # output column q reads input column q*sw + shift
                q0, q1 = _visible(shift, sw, wo, width)
                for t in range(np.uint64((ra - r0) * wo)):
                    target[base + t] = 0
                for t in range(np.uint64((rb - r0) * wo), np.uint64(n)):
                    target[base + t] = 0
                if runs:
                    first = (ra + offset) * width + shift  # in plane c, may start before it
                    count = (rb - ra) * wo
                    lo, hi = max(0, -first), min(count, plane - first)
                    src = np.uint64(c * plane + first + lo)
                    dst = base + np.uint64((ra - r0) * wo + lo)
                    for t in range(np.uint64(max(0, hi - lo))):
                        target[dst + t] = source[src + t]
                    for r in range(ra, rb):  # (this also covers the run's ends cut off above)
                        row = base + np.uint64((r - r0) * wo)
                        for t in range(np.uint64(q0)):
                            target[row + t] = 0
                        for t in range(np.uint64(q1), np.uint64(wo)):
                            target[row + t] = 0
                    continue
                step = np.uint64(sw)
                for r in range(ra, rb):
                    row = base + np.uint64((r - r0) * wo)
                    for t in range(np.uint64(q0)):
                        target[row + t] = 0
                    dst = row + np.uint64(q0)
                    if phased:  # input column 2q + shift: phase shift % 2, at q + shift // 2
                        line = (shift % 2 * (highest - lowest) + r * sh + offset - lowest) * half
                        src = np.uint64(line + q0 + shift // 2)
                        for t in range(np.uint64(q1 - q0)):
                            target[dst + t] = phases[src + t]
                    else:
                        src = np.uint64(c * plane + (r * sh + offset) * width + q0 * sw + shift)
                        if sw == 1:
                            for t in range(np.uint64(q1 - q0)):
                                target[dst + t] = source[src + t]
                        else:
                            for t in range(np.uint64(q1 - q0)):
                                target[dst + t] = source[src + t * step]
                    for t in range(np.uint64(q1), np.uint64(wo)):
                        target[row + t] = 0


@njit(**_OPTIONS)
def im2col_images(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo):
    """``im2col`` of every image of ``x`` (B, C, H, W), all output rows, into ``cols``
    (B, C*kh*kw, ho*wo): a batch of small images in one call rather than one call each."""
    for b in range(x.shape[0]):
        im2col(x[b], cols[b], kh, kw, sh, sw, dh, dw, pt, pl, 0, ho, wo)


@njit(inline="always")
def _clamp(v, lo, hi):
    """min(max(v, lo), hi) in numpy's rules for bounds that are not NaN: a NaN ``v`` stays, an
    equal one gives the bound (the second operand); one compare and select each, where _max
    and _min, which allow NaN bounds, take two."""
    v = lo if v <= lo else v  # noqa: FURB136 (max(lo, v) gives lo for a NaN v)
    return hi if v >= hi else v  # noqa: FURB136


@njit(inline="always")
def _affine_clamp(y, src, full, from_source, with_full, rows, width, col0, n, channels, m, a, lo,
                  hi):  # fmt: skip
    """Rows ``rows`` of ``y`` (flat, rows ``width`` apart), columns col0..col0 + n:
    y = min(max((s * m + a) [+ full], lo), hi), s from ``src`` or ``y`` itself, the values
    those of row r's channel (r % ``channels``): one fused stage, each operation rounded as
    numpy's would be (no contraction). Each case is a loop of its own: with the cases branched
    inside one loop, rows of 49 took 3x as long."""
    for r in rows:
        c = r % channels
        o = np.uint64(r * width + col0)
        mc, ac, lc, hc = m[c], a[c], lo[c], hi[c]
        if from_source:
            if with_full:
                for j in range(n):
                    y[o + j] = _clamp((src[o + j] * mc + ac) + full[o + j], lc, hc)
            else:
                for j in range(n):
                    y[o + j] = _clamp(src[o + j] * mc + ac, lc, hc)
        elif with_full:
            for j in range(n):
                y[o + j] = _clamp((y[o + j] * mc + ac) + full[o + j], lc, hc)
        else:
            for j in range(n):
                y[o + j] = _clamp(y[o + j] * mc + ac, lc, hc)


@njit(**_OPTIONS)
def elementwise(y, source, copy_source, full, row0, row1, col0, col1, channels, codes,
                with_full, params):  # fmt: skip
    """The stages of an epilogue program (epilogue._stages) on rows row0..row1, columns
    col0..col1 of ``y`` (rows, width), in place, the first reading ``source`` where
    ``copy_source``. Row r is channel r % channels. Stage s is fused where ``codes[s]`` < 0:
    y = min(max(y * m + a [+ full], lo), hi) with m, a, lo, hi = params[s, :, channel];
    SWISH: y = y · sigmoid(y) (float32); else the one operation codes[s] with
    params[s, 1, channel] or (``with_full[s]``) ``full``.
    """
    width = y.shape[1]
    flat, src, operand = y.reshape(-1), source.reshape(-1), full.reshape(-1)
    n = np.uint64(col1 - col0)
    rows = range(row0, row1)
    for s in range(codes.shape[0]):
        first = copy_source and s == 0
        if codes[s] == SWISH:  # (float32 only: _jit_gemm's vector Swish, in place)
            for r in rows:
                o = np.uint64(r * width + col0)
                swish_vectors(src if first else flat, flat, o, n)
        elif codes[s] >= 0:
            for r in rows:
                o = np.uint64(r * width + col0)
                out = flat[o : o + n]
                a = src[o : o + n] if first else out
                if with_full[s]:
                    _by_row(codes[s], out, a, operand[o : o + n])
                else:
                    _by_value(codes[s], out, a, params[s, 1, r % channels])
        # (spelled out: a loop of its own for each case)
        elif first and with_full[s]:
            _affine_clamp(flat, src, operand, True, True, rows, width, col0, n, channels,
                          params[s, 0], params[s, 1], params[s, 2], params[s, 3])  # fmt: skip
        elif first:
            _affine_clamp(flat, src, operand, True, False, rows, width, col0, n, channels,
                          params[s, 0], params[s, 1], params[s, 2], params[s, 3])  # fmt: skip
        elif with_full[s]:
            _affine_clamp(flat, src, operand, False, True, rows, width, col0, n, channels,
                          params[s, 0], params[s, 1], params[s, 2], params[s, 3])  # fmt: skip
        else:
            _affine_clamp(flat, src, operand, False, False, rows, width, col0, n, channels,
                          params[s, 0], params[s, 1], params[s, 2], params[s, 3])  # fmt: skip


@njit(inline="always")
def _input_row(phases, x, z, minus, odd, v0, v1, v2, v3, at, count):
    """Row i of B^T d B for ``count`` tiles into planes v0..v3 of ``v`` from ``at`` on: the row
    x - z (or x + z) of B^T d, times B. ``x`` and ``z`` are where two rows of the padded image
    start in ``phases``, which holds each row's even columns, then (from ``odd`` on) its odd
    ones: tile b's patch columns are the even and odd ones at b, then at b + 1. (Each plane
    by a name of its own: stores at distances LLVM cannot see into one array do not
    vectorize.)"""
    o = np.uint64(odd)
    if minus:
        for b in range(np.uint64(count)):
            n = b + np.uint64(1)
            e0, e1 = phases[x + b] - phases[z + b], phases[o + x + b] - phases[o + z + b]
            e2, e3 = phases[x + n] - phases[z + n], phases[o + x + n] - phases[o + z + n]
            v0[at + b], v1[at + b], v2[at + b], v3[at + b] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
    else:
        for b in range(np.uint64(count)):
            n = b + np.uint64(1)
            e0, e1 = phases[x + b] + phases[z + b], phases[o + x + b] + phases[o + z + b]
            e2, e3 = phases[x + n] + phases[z + n], phases[o + x + n] + phases[o + z + n]
            v0[at + b], v1[at + b], v2[at + b], v3[at + b] = e0 - e2, e1 + e2, e2 - e1, e1 - e3


@njit(**_OPTIONS)
def winograd_input(xp, v, tiles_h, tiles_w, c0, c1):
    """Winograd F(2x2, 3x3) input transform: for each channel c in c0..c1 and tile t (row-major
    over tiles_h x tiles_w), the 4x4 patch d at (2*row, 2*col) of the zero-padded image ``xp``
    (C, 2*tiles_h + 2, 2*tiles_w + 2) as B^T d B, into ``v`` (16, C, tiles).

    Each channel's rows are first split into their even and odd columns (float32: by halves
    of 64-bit pairs), so the loops read consecutive elements, which LLVM vectorizes, where the
    patches' stride-2 reads did not.
    """
    rows, width = xp.shape[1], xp.shape[2]
    half = width // 2
    size = rows * half  # a channel's even (or odd) columns
    source = xp.reshape(-1)
    p = v.reshape(16, -1)
    phases = np.empty(2 * size, xp.dtype)
    pairs = source[: source.shape[0] // 2 * 2].view(np.uint64)
    even, odd = phases[:size].view(np.uint32), phases[size:].view(np.uint32)
    for c in range(c0, c1):
        if xp.itemsize == 4:
            _split_pairs(pairs[c * size : (c + 1) * size], even, odd, size)
        else:
            for k in range(np.uint64(size)):
                at = np.uint64(c * 2 * size) + 2 * k
                phases[k], phases[np.uint64(size) + k] = source[at], source[at + np.uint64(1)]
        for a in range(tiles_h):
            r0 = np.uint64(2 * a * half)
            r1, r2, r3 = r0 + np.uint64(half), r0 + np.uint64(2 * half), r0 + np.uint64(3 * half)
            at = np.uint64((c * tiles_h + a) * tiles_w)
            _input_row(phases, r0, r2, True, size, p[0], p[1], p[2], p[3], at, tiles_w)
            _input_row(phases, r1, r2, False, size, p[4], p[5], p[6], p[7], at, tiles_w)
            _input_row(phases, r2, r1, True, size, p[8], p[9], p[10], p[11], at, tiles_w)
            _input_row(phases, r1, r3, True, size, p[12], p[13], p[14], p[15], at, tiles_w)


@njit(inline="always")
def _output_sums(planes, j, lo, first, out, count):
    """Entry (i, j) of A^T M for ``count`` tiles from planes[j + 4k, lo:], k = 0..3: the sum
    of the first three (row i = 0, ``first``) or p1 - p2 - p3 (row 1)."""
    p0, p1 = planes[j, lo:], planes[4 + j, lo:]
    p2, p3 = planes[8 + j, lo:], planes[12 + j, lo:]
    if first:
        for b in range(count):
            out[b] = p0[b] + p1[b] + p2[b]
    else:
        for b in range(count):
            out[b] = p1[b] - p2[b] - p3[b]


@njit(**_OPTIONS)
def winograd_output(m, y, tiles_w, o0, o1, bias, lo, hi, res):
    """Winograd F(2x2, 3x3) output transform: each tile's A^T M A (2x2) from ``m``
    (16, M, tiles) into ``y`` (M, Ho, Wo), output channels o0..o1, cropped at the far edges,
    finished in the store: plus ``bias`` (M,; empty: none), plus ``res`` (laid out as y; None:
    none), clamped to [lo, hi] (a select, which keeps NaN as numpy's maximum does)."""
    ho, wo = y.shape[1], y.shape[2]
    tiles_h = m.shape[2] // tiles_w
    whole = wo // 2  # tiles with both output columns inside
    planes = m.reshape(16, -1)
    sums = np.empty((4, tiles_w), m.dtype)  # one row of A^T M, for a row of tiles
    s0, s1, s2, s3 = sums[0], sums[1], sums[2], sums[3]
    zero = y.dtype.type(0)
    for o in range(o0, o1):
        shift = bias[o] if bias.shape[0] > 0 else zero
        for a in range(tiles_h):
            lo_ = (o * tiles_h + a) * tiles_w
            for i in range(min(2, ho - 2 * a)):  # output rows 2a, 2a + 1 (the last may be cut)
                for j in range(4):  # few arrays per loop, which LLVM can vectorize
                    _output_sums(planes, j, lo_, i == 0, sums[j], tiles_w)
                row = y[o, 2 * a + i]
                for b in range(whole):
                    e = s0[b] + s1[b] + s2[b] + shift
                    f = s1[b] - s2[b] - s3[b] + shift
                    if res is not None:
                        e += res[o, 2 * a + i, 2 * b]
                        f += res[o, 2 * a + i, 2 * b + 1]
                    e = lo if e < lo else e  # noqa: FURB136 (selects LLVM vectorizes)
                    e = hi if e > hi else e  # noqa: FURB136
                    f = lo if f < lo else f  # noqa: FURB136
                    f = hi if f > hi else f  # noqa: FURB136
                    row[2 * b], row[2 * b + 1] = e, f
                if whole < tiles_w:  # an odd width: the last tile's first column only
                    e = s0[whole] + s1[whole] + s2[whole] + shift
                    if res is not None:
                        e += res[o, 2 * a + i, 2 * whole]
                    e = lo if e < lo else e  # noqa: FURB136
                    row[2 * whole] = hi if e > hi else e  # noqa: FURB136


@njit(**_OPTIONS)
def shift_sum(products, y, kh, kw, dh, dw, top, left, width):
    """The shift-and-add of conv.conv_shifted: y[m, i, j] = the sum, in tap order from zero,
    over the taps t = (a, b) whose input pixel (i - top + a*dh, j - left + b*dw) lies inside
    the image, of products[t, m] at that pixel (the image flattened row by row, ``width``
    columns), for y (M, Ho, Wo)."""
    height = products.shape[2] // width
    for m in range(y.shape[0]):
        for i in range(y.shape[1]):
            out = y[m, i]
            out[:] = 0
            for a in range(kh):
                r = i - top + a * dh
                if r < 0 or r >= height:
                    continue
                for b in range(kw):
                    shift = b * dw - left  # output column j reads input column j + shift
                    j0, j1 = max(0, -shift), min(out.shape[0], width - shift)
                    if j1 <= j0:
                        continue
                    start = r * width + shift + j0
                    part = out[j0:j1]  # (one name for the row read and written: vectorizes)
                    source = products[a * kw + b, m, start : start + j1 - j0]
                    for j in range(j1 - j0):
                        part[j] += source[j]


# --- windowed pooling (pool.py's MaxPool, AveragePool) ---------------------------------------

# How these run fast, each measured on the pooling layers of squeezenet, resnet50, densenet121
# and inception v1 (benchmarks/bench_pools.py):
# - the helpers take whole arrays and offsets, and hold one loop each, none nested: a slice per
#   row, or an inlined function with nested loops, costs numba a reference count increment and
#   decrement per array and call, which took longer than the arithmetic;
# - rows are folded in lengths rounded up to whole vector steps, reading and writing past a
#   row's end into what comes after it (and is written later): a scalar remainder took as long
#   as the rest on rows of 14 to 112 elements;
# - the geometry is worked out once per call, and what can run over all lines of a group of
#   planes does: per-row loop overhead was most of the time on 13x13 planes. A group's lines
#   take about _GROUP_BYTES (8 KiB measured best, up to 64 KiB).
_GROUP_BYTES = 8192
_ONE = np.uint64(1)


@njit(inline="always")
def _fold_first(code, out, o, src, starts, shift, count, n, ostep=_ONE, step=_ONE):
    """out[o + j*ostep] = op over the first ``count`` (1 to 3) taps t, in order, of
    src[starts[t] + shift + j*step], for j < n (unsigned offsets; a row, or a column with the
    steps of its array's rows)."""
    last = count - 1
    a = starts[0] + shift
    b, c = starts[min(1, last)] + shift, starts[min(2, last)] + shift
    if count == 1:
        for j in range(n):
            out[o + j * ostep] = src[a + j * step]
    elif code == MAX:
        if count == 2:
            for j in range(n):
                out[o + j * ostep] = _max(src[a + j * step], src[b + j * step])
        else:
            for j in range(n):
                out[o + j * ostep] = _max(_max(src[a + j * step], src[b + j * step]),
                                          src[c + j * step])  # fmt: skip
    elif count == 2:
        for j in range(n):
            out[o + j * ostep] = src[a + j * step] + src[b + j * step]
    else:
        for j in range(n):
            out[o + j * ostep] = (src[a + j * step] + src[b + j * step]) + src[c + j * step]


@njit(inline="always")
def _fold_onto(code, out, o, src, starts, shift, t, count, n, ostep=_ONE, step=_ONE):
    """out[o + j*ostep] = op(out[o + j*ostep], tap t), then tap t + 1 if t + 1 < ``count``:
    taps as in ``_fold_first``."""
    a, b = starts[t] + shift, starts[min(t + 1, count - 1)] + shift
    if code == MAX:
        if t + 1 == count:
            for j in range(n):
                out[o + j * ostep] = _max(out[o + j * ostep], src[a + j * step])
        else:
            for j in range(n):
                out[o + j * ostep] = _max(_max(out[o + j * ostep], src[a + j * step]),
                                          src[b + j * step])  # fmt: skip
    elif t + 1 == count:
        for j in range(n):
            out[o + j * ostep] = out[o + j * ostep] + src[a + j * step]
    else:
        for j in range(n):
            out[o + j * ostep] = (out[o + j * ostep] + src[a + j * step]) + src[b + j * step]


@njit(inline="always")
def _take_phase(lines, phases, o, m, s, count):
    """phases[o + i] = lines[i*s + m] for i < ``count``: phase m of stride s."""
    start, step = np.uint64(m), np.uint64(s)
    for i in range(np.uint64(count)):
        phases[o + i] = lines[start + i * step]


@njit(inline="always")
def _scale(out, o, factors, divide, count):
    """out[o + i] times (or divided by) factors[i], i < ``count``."""
    if divide:
        for i in range(count):
            out[o + i] = out[o + i] / factors[i]
    else:
        for i in range(count):
            out[o + i] = out[o + i] * factors[i]


@njit(**_OPTIONS)
def pool2d(x, y, code, kh, kw, sh, sw, dh, dw, pt, pl, finish, scale):
    """Each window's max (``code`` MAX) or sum (ADD) of ``x`` (P, H, W) into ``y`` (P, Ho, Wo),
    window (r, q) reading rows r*sh - pt + t*dh and columns q*sw - pl + t*dw inside ``x``, then
    y times (``finish`` MUL) or divided by (DIV) ``scale`` (Ho, Wo), if either.

    pool.py's separable fold, with its results: per window, its rows first (into a line), then
    the line's columns, taps in order, from the first tap inside ``x`` (``fill`` where none
    is). By groups of planes: the rows' folds into ``lines``, one per output row (with stride
    1, those with every row inside in one loop); their stride-sw phases (one loop); each
    output row's columns from the phases (where a line's phase is an output row long, all at
    once), then a column at a time those of windows reaching into the padding; the scaling.
    """
    planes, height, width = x.shape
    ho, wo = y.shape[1], y.shape[2]
    fill = -np.inf if code == MAX else 0.0
    # rows rounded to 64 bytes (the loops' vector steps: 8 or 16 floats), 128 where long
    grain = (64 if width * x.itemsize < 256 else 128) // x.itemsize
    span = (width + grain - 1) // grain * grain
    # a line's elements: sw*wo where the line fits (its phases then an output row long);
    # else the width (stride 1) or a whole number of grains per phase
    if sw * wo >= width:
        pitch = sw * wo
    else:
        pitch = width if sw == 1 else (width + grain * sw - 1) // (grain * sw) * (grain * sw)
    part = pitch // sw
    # planes a group (their lines about _GROUP_BYTES), a phase of their lines and the reads
    # past them (even, for ``pairs``)
    group = max(1, min(planes, _GROUP_BYTES // (ho * pitch * x.itemsize)))
    plane = (group * ho * part + grain - 1) // grain * grain + span + 2 * grain
    src, dst = x.reshape(-1), y.reshape(-1)
    lines = np.empty(sw * plane, x.dtype)
    phases = lines if sw == 1 else np.empty(sw * plane, x.dtype)
    pairs = lines.view(np.uint64)
    even, odd = phases.view(np.uint32), phases[plane:].view(np.uint32)
    # the scale, once for each plane of a group
    scaled = finish == MUL or finish == DIV
    given, factors = scale.reshape(-1), np.empty(group * ho * wo if scaled else 0, x.dtype)
    for i in range(factors.shape[0]):
        factors[i] = given[i % (ho * wo)]
    # output row r: the first of its input rows inside (in the plane) and their count; rows
    # [ra, rb) have all kh, folded in one loop where lines follow one another as rows do in x
    # (``across`` the planes too where a plane has as many lines as rows)
    first, count = np.empty(ho, np.int64), np.empty(ho, np.int64)
    ra, rb, empty = ho, ho, False
    for r in range(ho):
        t0, t1 = _visible(r * sh - pt, dh, kh, height)
        first[r], count[r] = r * sh - pt + t0 * dh, max(t1 - t0, 0)
        if count[r] == kh:
            ra, rb = min(ra, r), r + 1
        empty |= count[r] == 0
    if sh != 1 or pitch != width:
        ra = rb = ho
    across = rb > ra and ho == height
    rows = np.empty(kh, np.uint64)
    # output column q, tap t: phase (t*dw - pl) % sw of its line at q + (t*dw - pl) // sw;
    # columns [q0, q1) have every tap inside, each other (``edges``) ``valid`` of them, at
    # columns ``inside`` of its line
    q0 = _visible(-pl, sw, wo, width)[0]
    q1 = max(q0, _visible((kw - 1) * dw - pl, sw, wo, width)[1])
    inner = (q1 - q0 + grain - 1) // grain * grain
    whole = part == wo and q1 > q0
    taps = np.empty(kw, np.uint64)
    for t in range(kw):
        shift = t * dw - pl
        taps[t] = shift % sw * plane + shift // sw + q0
    edges = np.empty(wo - (q1 - q0), np.int64)
    valid = np.zeros(edges.shape[0], np.int64)
    inside = np.empty((edges.shape[0], kw), np.int64)
    for e in range(edges.shape[0]):
        edges[e] = e if e < q0 else q1 + e - q0
        for t in range(kw):
            j = edges[e] * sw + t * dw - pl
            if 0 <= j < width:
                inside[e, valid[e]] = j
                valid[e] += 1
    zero = np.uint64(0)
    cols = np.empty(kw, np.uint64)
    for p0 in range(0, planes, group):
        size = min(group, planes - p0)  # planes in this group
        # the rows' folds, line by line in order: a line's rounded length runs into the
        # lines after it, written later (but to its exact length where the lines of all the
        # group's full windows were folded at once, first)
        if across:
            for t in range(kh):
                rows[t] = (p0 * height + first[ra] + t * dh) * width
            n = np.uint64(((size - 1) * ho + rb - ra) * width)
            at = np.uint64(ra * pitch)
            _fold_first(code, lines, at, src, rows, zero, kh, n)
            for t in range(3, kh, 2):
                _fold_onto(code, lines, at, src, rows, zero, t, kh, n)
        for g in range(size):
            for r in range(ho):
                c = count[r]
                if c == 0 or ra < r < rb or (across and r == ra):
                    continue
                start = (p0 + g) * height + first[r]
                if r == ra:  # rows [ra, rb) at once
                    n = np.uint64((rb - ra) * width)
                elif across or (start + (c - 1) * dh) * width + span > src.shape[0]:
                    n = np.uint64(width)
                else:
                    n = np.uint64(span)
                for t in range(c):
                    rows[t] = (start + t * dh) * width
                at = np.uint64((g * ho + r) * pitch)
                _fold_first(code, lines, at, src, rows, zero, c, n)
                for t in range(3, c, 2):
                    _fold_onto(code, lines, at, src, rows, zero, t, c, n)
        # their phases
        if sw == 2 and x.itemsize == 4:
            _split_pairs(pairs, even, odd, size * ho * part)
        elif sw > 1:
            for m in range(sw):
                _take_phase(lines, phases, np.uint64(m * plane), m, sw, size * ho * part)
        # the columns: every line's at once, or line by line
        base = p0 * ho * wo
        for line in range(0 if q1 > q0 else size * ho, 1 if whole else size * ho):
            at = base + line * wo + q0
            if whole:
                n = np.uint64((size * ho - 1) * wo + q1 - q0)
            elif count[line % ho] == 0:
                continue
            else:
                n = np.uint64(inner if at + inner <= dst.shape[0] else q1 - q0)
            shift = np.uint64(line * part)
            _fold_first(code, dst, np.uint64(at), phases, taps, shift, kw, n)
            for t in range(3, kw, 2):
                _fold_onto(code, dst, np.uint64(at), phases, taps, shift, t, kw, n)
        # the edges, a column at a time down all lines
        n, down = np.uint64(size * ho), np.uint64(wo)
        for e in range(edges.shape[0]):
            c, at = valid[e], np.uint64(base + edges[e])
            if c == 0:
                for line in range(size * ho):
                    dst[at + line * down] = fill
                continue
            for t in range(c):
                cols[t] = inside[e, t]
            _fold_first(code, dst, at, lines, cols, zero, c, n, down, np.uint64(pitch))
            for t in range(3, c, 2):
                _fold_onto(code, dst, at, lines, cols, zero, t, c, n, down, np.uint64(pitch))
        if empty:  # rows of padding only (above, below, or between dilated taps)
            for line in range(size * ho):
                if count[line % ho] == 0:
                    for q in range(wo):
                        dst[base + line * wo + q] = fill
        if scaled:
            _scale(dst, np.uint64(base), factors, finish == DIV, np.uint64(size * ho * wo))


@njit(inline="always")
def _taps(target, at, source, s0, s1, s2, v0, v1, v2, count, n, first):
    """target[at + t] for t < n: source[s0 + t] * v0 (+ source[s1 + t] * v1 (+ source[s2 + t]
    * v2)) over ``count`` (1-3) taps, assigned (``first``) or added to it, in that order."""
    if count == 3:
        if first:
            for t in range(n):
                target[at + t] = source[s0 + t] * v0 + source[s1 + t] * v1 + source[s2 + t] * v2
        else:
            for t in range(n):
                target[at + t] = (
                    target[at + t] + source[s0 + t] * v0 + source[s1 + t] * v1
                    + source[s2 + t] * v2
                )  # fmt: skip
    elif count == 2:
        if first:
            for t in range(n):
                target[at + t] = source[s0 + t] * v0 + source[s1 + t] * v1
        else:
            for t in range(n):
                target[at + t] = target[at + t] + source[s0 + t] * v0 + source[s1 + t] * v1
    elif first:
        for t in range(n):
            target[at + t] = source[s0 + t] * v0
    else:
        for t in range(n):
            target[at + t] = target[at + t] + source[s0 + t] * v0


@njit(inline="always")
def _nine_taps(target, at, source, taps, start, weights, first, n):
    """target[at + t] for t < n: the sum over the nine taps e of source[taps[e] + start + t] *
    weights[first + e], in tap order, assigned."""
    s0, s1, s2 = taps[0] + start, taps[1] + start, taps[2] + start
    s3, s4, s5 = taps[3] + start, taps[4] + start, taps[5] + start
    s6, s7, s8 = taps[6] + start, taps[7] + start, taps[8] + start
    v0, v1, v2 = weights[first], weights[first + 1], weights[first + 2]
    v3, v4, v5 = weights[first + 3], weights[first + 4], weights[first + 5]
    v6, v7, v8 = weights[first + 6], weights[first + 7], weights[first + 8]
    for t in range(n):
        v = source[s0 + t] * v0 + source[s1 + t] * v1 + source[s2 + t] * v2
        v = v + source[s3 + t] * v3 + source[s4 + t] * v4 + source[s5 + t] * v5
        target[at + t] = v + source[s6 + t] * v6 + source[s7 + t] * v7 + source[s8 + t] * v8


@njit(inline="always")
def _five_taps(target, at, source, taps, start, weights, first, e, n):
    """target[at + t] for t < n: taps e..e + 4 (a row of a 5x5 kernel) summed in tap order,
    assigned where e is the first tap, else added."""
    s0, s1, s2 = taps[e] + start, taps[e + 1] + start, taps[e + 2] + start
    s3, s4 = taps[e + 3] + start, taps[e + 4] + start
    v0, v1, v2 = weights[first + e], weights[first + e + 1], weights[first + e + 2]
    v3, v4 = weights[first + e + 3], weights[first + e + 4]
    if e == 0:
        for t in range(n):
            v = source[s0 + t] * v0 + source[s1 + t] * v1 + source[s2 + t] * v2
            target[at + t] = v + source[s3 + t] * v3 + source[s4 + t] * v4
    else:
        for t in range(n):
            v = target[at + t] + source[s0 + t] * v0 + source[s1 + t] * v1
            v = v + source[s2 + t] * v2 + source[s3 + t] * v3
            target[at + t] = v + source[s4 + t] * v4


_DEPTHWISE_CHUNK = 2048  # outputs whose taps are all summed while they stay in L1


@njit(inline="always")
def _side_taps(source, up, mid, down, right, weights, first):
    """A 3x3 stride-1 output in the first (``right`` False) or last column of a plane padded
    by one: its nine taps in tap order, the border's three as zero products (as the padded
    kernel sums them: the same bits); ``up``, ``mid``, ``down``: where the rows it reads
    start (its own column in each)."""
    z = source.dtype.type(0)
    w0, w1, w2 = weights[first], weights[first + 1], weights[first + 2]
    w3, w4, w5 = weights[first + 3], weights[first + 4], weights[first + 5]
    w6, w7, w8 = weights[first + 6], weights[first + 7], weights[first + 8]
    one = np.uint64(1)
    if right:
        v = source[up - one] * w0 + source[up] * w1 + z * w2
        v = v + source[mid - one] * w3 + source[mid] * w4 + z * w5
        return v + source[down - one] * w6 + source[down] * w7 + z * w8
    v = z * w0 + source[up] * w1 + source[up + one] * w2
    v = v + z * w3 + source[mid] * w4 + source[mid + one] * w5
    return v + z * w6 + source[down] * w7 + source[down + one] * w8


@njit(inline="always")
def _row_taps(target, out, up, u, mid, m, down, d, weights, first, width):
    """A first or last output row of a 3x3 stride-1 depthwise convolution padded by one, into
    target[out:], from the input rows at up[u:], mid[m:], down[d:] (a line of zeros for the
    border's; each read one column before and after the row, where the border is zero): the
    nine taps in tap order, as ``_nine_taps`` sums them."""
    z = mid.dtype.type(0)
    w0, w1, w2 = weights[first], weights[first + 1], weights[first + 2]
    w3, w4, w5 = weights[first + 3], weights[first + 4], weights[first + 5]
    w6, w7, w8 = weights[first + 6], weights[first + 7], weights[first + 8]
    one, last = np.uint64(1), np.uint64(width - 1)
    for q in range(np.uint64(width)):
        left, right = q > 0, q < last
        a0 = up[u + q - one] if left else z
        a2 = up[u + q + one] if right else z
        b0 = mid[m + q - one] if left else z
        b2 = mid[m + q + one] if right else z
        c0 = down[d + q - one] if left else z
        c2 = down[d + q + one] if right else z
        v = a0 * w0 + up[u + q] * w1 + a2 * w2
        v = v + b0 * w3 + mid[m + q] * w4 + b2 * w5
        target[out + q] = v + c0 * w6 + down[d + q] * w7 + c2 * w8


@njit(**_OPTIONS)
def depthwise_direct(x, w, y, c0, c1, mult, bias, lo, hi, swish):
    """``depthwise`` for float32 3x3 kernels of stride 1 padded by one all round (the output
    as large as the input), read where the input lies: no padded copy of each plane first.
    Each plane as one flat run, output p = the taps at p + (i - 1) * W + j - 1, 64 outputs at a
    time by ``nine_taps_vectors`` (which reads a vector past the last), the rest one by one;
    the first and last rows (``_row_taps``) and columns (``_side_taps``), where that run wraps
    across rows, computed again with the border's zeros; then the bias and bounds over the
    plane, in cache, and the Swish. The same sums, in the same order, as ``depthwise``. Its
    padded copy read each plane from the last-level cache before the taps read it again:
    MobileNetV2's layers alone (one thread, ReLU6, scratch timings, the two alternating) took
    0.67x their time at 32 channels of 112x112, 0.91x at 144 of 56x56, 0.86x at 192 of 28x28."""
    n, channels, h, wd = x.shape
    m = w.shape[0]
    source, target, weights = x.reshape(-1), y.reshape(-1), w.reshape(-1)
    plane_size = np.uint64(h * wd)
    width = np.uint64(wd)
    one, four = np.uint64(1), np.uint64(4)
    block = np.uint64(16 * TAP_VECTORS)
    taps = np.empty(9, np.uint64)
    for e in range(9):
        taps[e] = np.uint64(e // 3) * width + np.uint64(e % 3)
    first_p, end_p = width + one, plane_size - width - one  # (outputs whose taps all lie inside)
    readable = np.uint64(source.shape[0])
    zeros = np.zeros(wd + 2, x.dtype)  # (the border's rows, read from column -1 to W)
    zero_at = one
    biased, bounded = bias.shape[0] > 0, lo > -np.inf or hi < np.inf
    for b in range(n):
        for c in range(c0, c1):
            plane = np.uint64((b * channels + c // mult) * h * wd)
            out = np.uint64((b * m + c) * h * wd)
            first = c * 9
            by = np.uint64(weights.ctypes.data) + np.uint64(first) * four
            into, read = np.uint64(target.ctypes.data), np.uint64(source.ctypes.data)
            p = first_p
            # (the run's vectors read 16 floats past their last tap: kept inside the array)
            while p + block <= end_p and plane + p + width + one + block + np.uint64(16) <= readable:
                at = read + (plane + p - width - one) * four
                rows = (at, at, at + width * four, at, at + np.uint64(2) * width * four, at)
                nine_taps_vectors(into + (out + p) * four, rows, by, 1)
                p += block
            if p < end_p:
                _nine_taps(target, out + p, source, taps, plane + p - width - one, weights, first,
                           end_p - p)  # fmt: skip
            # the first and last rows through a line of zeros, then the first and last columns
            for r in (0, h - 1):
                up = zeros if r == 0 else source
                down = zeros if r == h - 1 else source
                u = zero_at if r == 0 else plane + np.uint64((r - 1) * wd)
                d = zero_at if r == h - 1 else plane + np.uint64((r + 1) * wd)
                _row_taps(target, out + np.uint64(r * wd), up, u, source,
                          plane + np.uint64(r * wd), down, d, weights, first, wd)  # fmt: skip
            for r in range(1, h - 1):
                row = np.uint64(r * wd)
                mid = plane + row
                target[out + row] = _side_taps(source, mid - width, mid, mid + width, False,
                                               weights, first)  # fmt: skip
                mid += width - one
                target[out + row + width - one] = _side_taps(source, mid - width, mid,
                                                             mid + width, True, weights, first)  # fmt: skip
            if biased or bounded:
                add = bias[c] if biased else target.dtype.type(0)
                for t in range(plane_size):
                    v = target[out + t] + add if biased else target[out + t]
                    if bounded:
                        v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                        v = hi if v > hi else v  # noqa: FURB136
                    target[out + t] = v
            if swish:
                swish_vectors(target, target, out, h * wd)


@njit(inline="always")
def _strided_taps(source, plane, r, q, height, width, weights, first):
    """Output (r, q) of a 3x3 stride-2 depthwise convolution padded by one at the top and
    left: its nine taps (input row 2r + i - 1, column 2q + j - 1) summed in tap order, those
    outside the plane (at ``plane`` in ``source``) as zero products (the padded kernel's
    sums: the same bits)."""
    zero = source.dtype.type(0)
    v = zero
    for e in range(9):
        rr, qq = 2 * r + e // 3 - 1, 2 * q + e % 3 - 1
        value = zero
        if 0 <= rr < height and 0 <= qq < width:
            value = source[plane + np.uint64(rr * width + qq)]
        v = value * weights[first + e] if e == 0 else v + value * weights[first + e]
    return v


@njit(**_OPTIONS)
def depthwise_strided(x, w, y, c0, c1, mult, bias, lo, hi, swish):
    """``depthwise`` for float32 3x3 kernels of stride 2 padded by one at the top and left,
    read where the input lies, row by row: each output row's columns from 1 on, whose taps all
    lie in their input rows (a row past the plane: a line of zeros), 64 at a time by
    ``nine_taps_vectors`` (kind 3: the stride's even and odd columns cut by shuffles) into a
    line, the first column and any past those one by one (``_strided_taps``), then the line
    into the output with the bias and bounds, and the plane's Swish. The same sums, in the
    same order, as ``depthwise``, whose padded phases read each plane from the last-level
    cache before its taps read them again."""
    n, channels, h, wd = x.shape
    m, ho, wo = w.shape[0], y.shape[2], y.shape[3]
    source, target, weights = x.reshape(-1), y.reshape(-1), w.reshape(-1)
    four = np.uint64(4)
    block = 16 * TAP_VECTORS
    # outputs 1 .. inside - 1 of a row read columns 1 .. 2 * inside - 1 < wd
    inside = max(1, min(wo, (wd - 2) // 2 + 1))
    blocks = (inside - 1 + block - 1) // block
    reach = np.uint64(2 * block * blocks + 16)  # (floats a row's blocks read from column 1)
    line = np.empty(max(wo, 1 + block * blocks), y.dtype)
    zeros = np.zeros(2 * block * blocks + 32, x.dtype)
    readable = np.uint64(source.shape[0])
    into, read = np.uint64(line.ctypes.data), np.uint64(source.ctypes.data)
    nothing = np.uint64(zeros.ctypes.data)
    step = np.uint64(2 * block) * four
    biased, bounded = bias.shape[0] > 0, lo > -np.inf or hi < np.inf
    for b in range(n):
        for c in range(c0, c1):
            plane = np.uint64((b * channels + c // mult) * h * wd)
            out = np.uint64((b * m + c) * ho * wo)
            first = c * 9
            by = np.uint64(weights.ctypes.data) + np.uint64(first) * four
            for r in range(ho):
                # where the three input rows' column 1 lies (a row past the plane: the zeros)
                s0, s1, s2 = nothing, nothing, nothing
                last = plane + np.uint64(0 if r == 0 else (2 * r - 1) * wd + 1)
                if r > 0:
                    s0 = read + last * four
                if 2 * r < h:
                    last = plane + np.uint64(2 * r * wd + 1)
                    s1 = read + last * four
                if 2 * r + 1 < h:
                    last = plane + np.uint64((2 * r + 1) * wd + 1)
                    s2 = read + last * four
                done = 1
                if blocks > 0 and last + reach <= readable:
                    for k in range(blocks):
                        shift = np.uint64(k) * step
                        rows = (s0 + shift, s0, s1 + shift, s1, s2 + shift, s2)
                        nine_taps_vectors(into + np.uint64(1 + block * k) * four, rows, by, 3)
                    done = inside
                line[0] = _strided_taps(source, plane, r, 0, h, wd, weights, first)
                for q in range(done, wo):
                    line[q] = _strided_taps(source, plane, r, q, h, wd, weights, first)
                row = out + np.uint64(r * wo)
                add = bias[c] if biased else y.dtype.type(0)
                for q in range(np.uint64(wo)):
                    v = line[q] + add if biased else line[q]
                    if bounded:
                        v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                        v = hi if v > hi else v  # noqa: FURB136
                    target[row + q] = v
            if swish:
                swish_vectors(target, target, out, ho * wo)


@njit(**_OPTIONS)
def depthwise(x, w, y, c0, c1, mult, sh, sw, dh, dw, top, left, bias, lo, hi, swish):
    """Output channels c0..c1 of a depthwise 2-D convolution: y (N, M, Ho, Wo) of ``x``
    (N, M/mult, H, W), padded by ``top`` rows and ``left`` columns (and zeros past its end as
    far as the output needs), by ``w`` (M, kh, kw), output channel c reading input channel
    c // mult; each output then + ``bias`` (M,) (where not empty), clamped to [lo, hi] (as
    numpy's maximum and minimum: NaN kept) and, where ``swish`` (float32), through the
    epilogue's Swish, each plane as it is copied out. float32 3x3 kernels padded by one at
    the top and left read the input in place instead: stride 1, output as large as the input,
    ``depthwise_direct``; stride 2, ``depthwise_strided``.

    Each input plane is copied, padded, into sh x sw phases (phase (a, b) holds the padded rows
    a, a + sh, ... and columns b, b + sw, ...), each a grid of the output's row pitch: tap
    (i, j) of output (r, q) then reads phase ((i dh) % sh, (j dw) % sw) at (r + i dh // sh,
    q + j dw // sw), so over the whole plane every tap is one contiguous run at a fixed offset,
    whatever the plane's width or the stride, and the rows vectorize even at 14x14. Outputs are
    computed at that pitch (a few columns more than Wo, dropped when copied out), in chunks that
    stay in L1 while the taps are summed into them: a 3x3 kernel's nine in one pass, a 5x5 one's
    row by row, others three at a time (each pass loads and stores the chunk: one pass for all
    nine took MobileNetV2's 384-channel 14x14 layer from 58 to 43 us on one thread, a row at a
    time EfficientNet's 5x5 layers 0.8-0.9x their time; scratch timings; float32 3x3 taps of
    stride 1 or 2 by 64 outputs at a time through ``_jit_gemm.nine_taps_vectors``, which cuts
    a row's neighbouring taps from the vectors it loads: MobileNetV2's 144-channel 56x56 layer
    143 -> 108 us alone, one thread, though in the model, where its input comes from memory,
    within 0-3% of the loop). Taps are summed in
    numpy's order (the first tap's product assigned, then each added), and the bias and bounds come after, as
    the epilogue applies them, so both paths give the same values. Indexed flat and unsigned,
    like im2col (MobileNetV2's and EfficientNet's layers: 1.3-2.7x the pass per tap over whole
    planes it replaces, padding included). Where each row and column lands is worked out once
    per call, not per plane: divisions by the stride per row took a third of the time of
    MobileNetV2's 28x28 layers.
    """
    n, channels, h, wd = x.shape
    m, kh, kw = w.shape
    ho, wo = y.shape[2], y.shape[3]
    if (kh == kw == 3 and sh == sw == dh == dw == top == left == 1 and ho == h >= 3
            and wo == wd >= 3 and x.itemsize == 4):  # fmt: skip
        depthwise_direct(x, w, y, c0, c1, mult, bias, lo, hi, swish)
        return
    if kh == kw == 3 and sh == sw == 2 and dh == dw == top == left == 1 and x.itemsize == 4:
        depthwise_strided(x, w, y, c0, c1, mult, bias, lo, hi, swish)
        return
    pitch = wo + (kw - 1) * dw // sw
    lines = ho + (kh - 1) * dh // sh
    size = (lines + 1) * pitch  # a phase (a row of slack: the last row's extra columns read on)
    # (padding stays zero: each plane fills the rest; 16 more: nine_taps_vectors loads a
    # vector past the last it sums)
    phases = np.zeros(sh * sw * size + 16, x.dtype)
    acc = np.empty(ho * pitch, y.dtype)
    source, target, weights = x.reshape(-1), y.reshape(-1), w.reshape(-1)
    total, chunk = np.uint64(ho * pitch), np.uint64(_DEPTHWISE_CHUNK)
    one, two = np.uint64(1), np.uint64(2)
    taps = np.empty(kh * kw, np.uint64)
    for i in range(kh):
        for j in range(kw):
            phase = (i * dh) % sh * sw + (j * dw) % sw
            taps[i * kw + j] = phase * size + (i * dh) // sh * pitch + (j * dw) // sw
    # where input row r starts in its phase (the rows past the last line are not read)
    used = min(h, max(0, lines * sh - top))
    row_at = np.empty(used, np.uint64)
    for r in range(used):
        padded = r + top
        row_at[r] = padded % sh * sw * size + padded // sh * pitch
    # column phase o: its first input column, where that lands in a row, how many land
    col_first = np.empty(sw, np.uint64)
    col_at = np.empty(sw, np.uint64)
    col_count = np.empty(sw, np.uint64)
    for o in range(sw):
        q0 = (o - left) % sw
        col_first[o] = q0
        col_at[o] = o * size + (q0 + left) // sw
        col_count[o] = max(min((wd - q0 + sw - 1) // sw, pitch - (q0 + left) // sw), 0)
    # stride 2 with both column phases filled in one pass along the row (vectorizes)
    paired = sw == 2 and left // 2 + (wd + 1) // 2 <= pitch and (left + 1) // 2 + wd // 2 <= pitch
    even_at = np.uint64(left % 2 * size + left // 2)
    odd_at = np.uint64((left + 1) % 2 * size + (left + 1) // 2)
    half = np.uint64(wd // 2)
    biased, bounded = bias.shape[0] > 0, lo > -np.inf or hi < np.inf
    # float32 3x3 taps by ``nine_taps_vectors`` where each kernel row's taps lie as it takes
    # them: 1, the three along one run (stride 1); 2, the third one on from the first (stride
    # 2: the second in the other column phase); else 0
    kind = 0
    if kh == 3 and kw == 3 and x.itemsize == 4:
        one_run = two_phases = True
        for e in range(0, 9, 3):
            one_run &= taps[e + 1] == taps[e] + 1 and taps[e + 2] == taps[e] + 2
            two_phases &= taps[e + 2] == taps[e] + 1
        kind = 1 if one_run else 2 if two_phases else 0
    four, block = np.uint64(4), np.uint64(16 * TAP_VECTORS)
    into, read = np.uint64(acc.ctypes.data), np.uint64(phases.ctypes.data)
    for b in range(n):
        for c in range(c0, c1):
            if c == c0 or c % mult == 0:
                plane = np.uint64((b * channels + c // mult) * h * wd)
                for r in range(used):
                    row, base = plane + np.uint64(r * wd), row_at[r]
                    if sw == 1:
                        at = base + col_at[0]
                        for t in range(col_count[0]):
                            phases[at + t] = source[row + t]
                    elif paired:
                        even, odd = base + even_at, base + odd_at
                        for t in range(half):
                            phases[even + t] = source[row + two * t]
                            phases[odd + t] = source[row + two * t + one]
                        if wd % 2:
                            phases[even + half] = source[row + np.uint64(wd - 1)]
                    else:
                        for o in range(sw):
                            at, first_col = base + col_at[o], row + col_first[o]
                            for t in range(col_count[o]):
                                phases[at + t] = source[first_col + t * np.uint64(sw)]
            first = c * kh * kw
            for start in range(np.uint64(0), total, chunk):
                count = min(chunk, total - start)
                if kh == 3 and kw == 3:
                    done = np.uint64(0) if kind == 0 else count // block * block
                    by = np.uint64(weights.ctypes.data) + np.uint64(first) * four
                    for v in range(np.uint64(0), done, block):
                        at = read + (start + v) * four
                        rows = (at + taps[0] * four, at + taps[1] * four, at + taps[3] * four,
                                at + taps[4] * four, at + taps[6] * four, at + taps[7] * four)  # fmt: skip
                        if kind == 1:
                            nine_taps_vectors(into + (start + v) * four, rows, by, 1)
                        else:
                            nine_taps_vectors(into + (start + v) * four, rows, by, 2)
                    _nine_taps(acc, start + done, phases, taps, start + done, weights, first,
                               count - done)  # fmt: skip
                    continue
                for i in range(kh):
                    if kw == 5:
                        _five_taps(acc, start, phases, taps, start, weights, first, i * 5, count)
                        continue
                    for j in range(0, kw, 3):
                        e = i * kw + j
                        e1, e2 = e + min(1, kw - j - 1), e + min(2, kw - j - 1)
                        _taps(acc, start, phases, taps[e] + start, taps[e1] + start,
                              taps[e2] + start, weights[first + e], weights[first + e1],
                              weights[first + e2], min(3, kw - j), count, e == 0)  # fmt: skip
            out = np.uint64((b * m + c) * ho * wo)
            add = bias[c] if biased else acc.dtype.type(0)
            for r in range(ho):
                to, frm = out + np.uint64(r * wo), np.uint64(r * pitch)
                if bounded:
                    for q in range(np.uint64(wo)):
                        v = acc[frm + q] + add if biased else acc[frm + q]
                        v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                        target[to + q] = hi if v > hi else v  # noqa: FURB136
                elif biased:
                    for q in range(np.uint64(wo)):
                        target[to + q] = acc[frm + q] + add
                else:
                    for q in range(np.uint64(wo)):
                        target[to + q] = acc[frm + q]
            if swish:
                swish_vectors(target, target, out, ho * wo)


@njit(inline="always")
def _nine_taps_last(target, out, source, at, row_step, col_step, weights, span, bias, lo, hi,
                    biased, bounded):  # fmt: skip
    """target[out + t] for t < span: the 3x3 taps of one channel-last pixel summed in tap order,
    the first tap's input at ``at`` (the others ``col_step`` and ``row_step`` on), each
    channel's weights ``span`` apart; then + ``bias`` (``biased``) and clamped to [lo, hi]
    (``bounded``). One pass, each output written once: summed tap by tap into the output,
    MobileNetV2's 14x14 layers took 1.3-2x as long (a loop per tap, each loading and storing
    the output again)."""
    a0, a1, a2 = at, at + col_step, at + col_step + col_step
    a3, a4, a5 = a0 + row_step, a1 + row_step, a2 + row_step
    a6, a7, a8 = a3 + row_step, a4 + row_step, a5 + row_step
    w1 = span
    w2 = w1 + span
    w3 = w2 + span
    w4 = w3 + span
    w5 = w4 + span
    w6 = w5 + span
    w7 = w6 + span
    w8 = w7 + span
    for t in range(span):
        v = source[a0 + t] * weights[t] + source[a1 + t] * weights[w1 + t]
        v = v + source[a2 + t] * weights[w2 + t] + source[a3 + t] * weights[w3 + t]
        v = v + source[a4 + t] * weights[w4 + t] + source[a5 + t] * weights[w5 + t]
        v = v + source[a6 + t] * weights[w6 + t] + source[a7 + t] * weights[w7 + t]
        v = v + source[a8 + t] * weights[w8 + t]
        if biased:
            v += bias[t]
        if bounded:
            v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
            v = hi if v > hi else v  # noqa: FURB136
        target[out + t] = v


@njit(**_OPTIONS)
def depthwise_channels_last(xl, wl, yl, r0, r1, sh, sw, dh, dw, top, left, bias, lo, hi, y,
                            swish=False):  # fmt: skip
    """Output rows r0..r1 (of the N * Ho) of a depthwise 2-D convolution in channel-last
    layout: yl (N, Ho, Wo, C) of ``xl`` (N, H, W, C) padded by ``top`` rows and ``left``
    columns (and zeros past its end as far as the output needs) by ``wl`` (kh, kw, C), one
    input channel per output channel, each output then + ``bias`` (C,) (where not empty),
    clamped to [lo, hi] (as numpy's maximum and minimum: NaN kept) and, where ``swish``
    (float32), each row through the epilogue's Swish while it is in cache (a pass over the
    tensor after took 7% of EfficientNet-B0's time in a py-spy profile, a scratch run). Where
    ``y`` (N, C, Ho, Wo) is not empty, each row is also moved into it while it is in cache: a
    result wanted NCHW (a move of the whole tensor afterwards ran on one thread: 30-75 us on
    EfficientNet's layers, as long as their convolution on two).

    For small planes (MobileNetV2's and EfficientNet's 14x14 and 7x7 layers), where even
    ``depthwise``'s runs over whole planes are short: here the innermost loop runs along the
    channels. A tap in the padding adds 0 times its weight, as a padded copy would, without
    the copy. Taps are summed in the same order as there (the first assigned, then each
    added), and the bias and bounds come after, as the epilogue applies them, so the bits are
    the same. Split by rows, not channels: threads writing parts of one pixel's channels share
    cache lines (numpy aligns arrays to 16 bytes, not 64)."""
    _, h, wd, channels = xl.shape
    kh, kw, _ = wl.shape
    ho, wo = yl.shape[1], yl.shape[2]
    source, target, weights = xl.reshape(-1), yl.reshape(-1), wl.reshape(-1)
    moved = y.reshape(-1)
    span = np.uint64(channels)
    zero = source.dtype.type(0)
    biased, bounded = bias.shape[0] > 0, lo > -np.inf or hi < np.inf
    row_step, col_step = np.uint64(dh * wd) * span, np.uint64(dw) * span
    for flat in range(r0, r1):
        b, r = flat // ho, flat % ho
        # (3x3 taps all inside the image: summed in one pass, see _nine_taps_last)
        rows_inside = kh == 3 and kw == 3 and r * sh >= top and r * sh - top + 2 * dh < h
        for q in range(wo):
            out = np.uint64((flat * wo + q) * channels)
            col = q * sw - left
            if rows_inside and col >= 0 and col + 2 * dw < wd:
                at = np.uint64(((b * h + r * sh - top) * wd + col) * channels)
                _nine_taps_last(target, out, source, at, row_step, col_step, weights, span,
                                bias, lo, hi, biased, bounded)  # fmt: skip
                continue
            for i in range(kh):
                row = r * sh + i * dh - top
                for j in range(kw):
                    col = q * sw + j * dw - left
                    tap = np.uint64((i * kw + j) * channels)
                    if 0 <= row < h and 0 <= col < wd:
                        src = np.uint64(((b * h + row) * wd + col) * channels)
                        if i == 0 and j == 0:
                            for t in range(span):
                                target[out + t] = source[src + t] * weights[tap + t]
                        else:
                            for t in range(span):
                                target[out + t] += source[src + t] * weights[tap + t]
                    elif i == 0 and j == 0:
                        for t in range(span):
                            target[out + t] = zero * weights[tap + t]
                    else:
                        for t in range(span):
                            target[out + t] += zero * weights[tap + t]
            if biased:
                for t in range(span):
                    target[out + t] += bias[t]
            if bounded:
                for t in range(span):
                    v = target[out + t]
                    v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                    target[out + t] = hi if v > hi else v  # noqa: FURB136
        _last_row_done(target, moved, flat, ho, wo, channels, 0, channels, swish)


@njit(inline="always")
def _last_row_done(target, moved, flat, ho, wo, channels, c0, c1, swish):
    """Channels c0..c1 of row ``flat`` (of the N * Ho) of a channel-last depthwise result
    ``target`` (flat), its bias and bounds applied: through the epilogue's Swish where
    ``swish``, then, where ``moved`` (flat, N, C, Ho, Wo) is not empty, moved into it while in
    cache."""
    span = np.uint64(channels)
    row = np.uint64(flat * wo) * span
    if swish:
        if c0 == 0 and c1 == channels:  # (the row's run at once)
            swish_vectors(target, target, row, wo * channels)
        else:
            for q in range(np.uint64(wo)):
                swish_vectors(target, target, row + q * span + np.uint64(c0), c1 - c0)
    if moved.size:
        b, r = flat // ho, flat % ho
        plane = np.uint64(ho * wo)
        at = np.uint64(b * channels) * plane + np.uint64(r * wo)
        transpose_into(moved, at + np.uint64(c0) * plane, plane, target, row + np.uint64(c0),
                       span, wo, c1 - c0)  # fmt: skip


_SPAN = 1024  # padded input pixels a band of ``depthwise_last_tiles`` holds (64 KiB of stack)
# Outputs per tile of ``depthwise_last_tiles``. With AVX2, 8 outputs by 16 channels take all 16
# vector registers in sums alone, before the inputs and weights, and LLVM spilled (195 stores
# of vectors to the stack in the kernel); tiles of 4 took 0.80-0.93x the time on MobileNetV2's
# and EfficientNet-B0's layers (one core of a Zen 3, the kernel alone, the two alternating in
# a scratch script; the same bits).
_TILE_PIXELS = 8 if WIDE else 4


@njit(inline="always")
def _three_wide(acc, xs, wk, at, e, first):
    """One kernel row of 3 taps (weights ``wk[e..e+3]``) into ``acc``, ``_TILE_PIXELS``
    outputs by 16 channels, the outputs' inputs from pixel ``at`` of ``xs`` on: each input
    vector loaded once for the outputs that share it; summed in tap order, the first
    assigned."""
    for t in range(16):
        w0, w1, w2 = wk[e, t], wk[e + 1, t], wk[e + 2, t]
        x0, x1, x2, x3 = xs[at, t], xs[at + 1, t], xs[at + 2, t], xs[at + 3, t]
        x4, x5, x6, x7 = xs[at + 4, t], xs[at + 5, t], xs[at + 6, t], xs[at + 7, t]
        x8, x9 = xs[at + 8, t], xs[at + 9, t]
        if first:
            acc[0, t] = x0 * w0 + x1 * w1 + x2 * w2
            acc[1, t] = x1 * w0 + x2 * w1 + x3 * w2
            acc[2, t] = x2 * w0 + x3 * w1 + x4 * w2
            acc[3, t] = x3 * w0 + x4 * w1 + x5 * w2
            if _TILE_PIXELS == 8:
                acc[4, t] = x4 * w0 + x5 * w1 + x6 * w2
                acc[5, t] = x5 * w0 + x6 * w1 + x7 * w2
                acc[6, t] = x6 * w0 + x7 * w1 + x8 * w2
                acc[7, t] = x7 * w0 + x8 * w1 + x9 * w2
        else:
            acc[0, t] = acc[0, t] + x0 * w0 + x1 * w1 + x2 * w2
            acc[1, t] = acc[1, t] + x1 * w0 + x2 * w1 + x3 * w2
            acc[2, t] = acc[2, t] + x2 * w0 + x3 * w1 + x4 * w2
            acc[3, t] = acc[3, t] + x3 * w0 + x4 * w1 + x5 * w2
            if _TILE_PIXELS == 8:
                acc[4, t] = acc[4, t] + x4 * w0 + x5 * w1 + x6 * w2
                acc[5, t] = acc[5, t] + x5 * w0 + x6 * w1 + x7 * w2
                acc[6, t] = acc[6, t] + x6 * w0 + x7 * w1 + x8 * w2
                acc[7, t] = acc[7, t] + x7 * w0 + x8 * w1 + x9 * w2


@njit(inline="always")
def _five_wide(acc, xs, wk, at, e, first):
    """As ``_three_wide``, for a kernel row of 5 taps."""
    for t in range(16):
        w0, w1, w2, w3, w4 = wk[e, t], wk[e + 1, t], wk[e + 2, t], wk[e + 3, t], wk[e + 4, t]
        x0, x1, x2, x3 = xs[at, t], xs[at + 1, t], xs[at + 2, t], xs[at + 3, t]
        x4, x5, x6, x7 = xs[at + 4, t], xs[at + 5, t], xs[at + 6, t], xs[at + 7, t]
        x8, x9, x10, x11 = xs[at + 8, t], xs[at + 9, t], xs[at + 10, t], xs[at + 11, t]
        if first:
            acc[0, t] = x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3 + x4 * w4
            acc[1, t] = x1 * w0 + x2 * w1 + x3 * w2 + x4 * w3 + x5 * w4
            acc[2, t] = x2 * w0 + x3 * w1 + x4 * w2 + x5 * w3 + x6 * w4
            acc[3, t] = x3 * w0 + x4 * w1 + x5 * w2 + x6 * w3 + x7 * w4
            if _TILE_PIXELS == 8:
                acc[4, t] = x4 * w0 + x5 * w1 + x6 * w2 + x7 * w3 + x8 * w4
                acc[5, t] = x5 * w0 + x6 * w1 + x7 * w2 + x8 * w3 + x9 * w4
                acc[6, t] = x6 * w0 + x7 * w1 + x8 * w2 + x9 * w3 + x10 * w4
                acc[7, t] = x7 * w0 + x8 * w1 + x9 * w2 + x10 * w3 + x11 * w4
        else:
            acc[0, t] = acc[0, t] + x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3 + x4 * w4
            acc[1, t] = acc[1, t] + x1 * w0 + x2 * w1 + x3 * w2 + x4 * w3 + x5 * w4
            acc[2, t] = acc[2, t] + x2 * w0 + x3 * w1 + x4 * w2 + x5 * w3 + x6 * w4
            acc[3, t] = acc[3, t] + x3 * w0 + x4 * w1 + x5 * w2 + x6 * w3 + x7 * w4
            if _TILE_PIXELS == 8:
                acc[4, t] = acc[4, t] + x4 * w0 + x5 * w1 + x6 * w2 + x7 * w3 + x8 * w4
                acc[5, t] = acc[5, t] + x5 * w0 + x6 * w1 + x7 * w2 + x8 * w3 + x9 * w4
                acc[6, t] = acc[6, t] + x6 * w0 + x7 * w1 + x8 * w2 + x9 * w3 + x10 * w4
                acc[7, t] = acc[7, t] + x7 * w0 + x8 * w1 + x9 * w2 + x10 * w3 + x11 * w4


def tiles_fit(kernel, strides, dilations, out_width) -> bool:
    """Whether ``depthwise_last_tiles`` takes a depthwise convolution of this geometry: a 3-
    or 5-wide kernel of at most 25 taps (its stack buffer of weights), stride 1, no dilation,
    its first band of rows within _SPAN."""
    kh, kw = kernel
    return (
        kw in (3, 5)
        and kh * kw <= 25
        and tuple(strides) == (1, 1)
        and tuple(dilations) == (1, 1)
        and kh * (out_width + kw - 1) + 16 <= _SPAN
    )


@njit(**_OPTIONS)
def depthwise_last_tiles(xl, wl, yl, r0, r1, c0, c1, top, left, bias, lo, hi, y, swish=False):
    """``depthwise_channels_last``, channels c0..c1 (c0 a multiple of 16) of output rows
    r0..r1 (of the N * Ho), for float32 and a geometry ``tiles_fit`` takes (stride 1,
    no dilation, 3 or 5 wide), the way onnxruntime's kernels on their channel-blocked layout
    work: 16 channels at a time, a band of the rows the outputs need is copied (zeros at
    the borders) into a buffer on the stack, a pixel's 16 channels one 64-byte-aligned
    vector, and each tile of 8 outputs (4 with AVX2: ``_TILE_PIXELS``) by 16 channels keeps
    its sums in registers across the taps, each input vector loaded once per kernel row for
    the outputs that share it.
    ``depthwise_channels_last`` loads every tap's input for every output and stores its
    sums per tap: 1.7-2.6x this one's time on EfficientNet-B0's 5x5 layers of 14x14 and 7x7,
    1.1-1.2x on 3x3 ones (one thread, scratch runs). Same sums in the same order (taps in
    order, the first assigned; bias and bounds after; Swish and the move to ``y`` as there),
    so the same bits. The buffer is on the stack (``_tile``) so that LLVM tells it apart
    from the tile of sums: on the heap, it checked the two for overlap at every tap (2.2x
    the time; docs/runtime.md, "Depthwise convolutions in registers").
    Where a block has all 16 channels, its pixels and weights are copied as whole vectors
    (``copy_vector``) and a square kernel's whole tiles go to ``square_taps_tile``, whose sums
    stay in registers across all the kernel's rows (here a tile's sums went to the stack and
    back at each row): 0.62-0.77x the time on MobileNetV2's 3x3 layers and EfficientNet-B0's
    5x5 ones (one core of a Zen 3, the kernel alone, the two alternating in a scratch script;
    the same bits)."""
    _, h, wd, channels = xl.shape
    kh, kw, _ = wl.shape
    ho, wo = yl.shape[1], yl.shape[2]
    source, target, weights = xl.reshape(-1), yl.reshape(-1), wl.reshape(-1)
    moved = y.reshape(-1)
    wp = wo + kw - 1  # a padded row: the columns the outputs read
    band = max(1, (_SPAN - 16) // wp - kh + 1)  # output rows whose input rows fit (+ slack)
    inside = max(0, min(wd, wp - left))  # input columns a padded row holds
    held = _tile(16384)  # (a literal: 16 * _SPAN)
    xs = numba.carray(held, (_SPAN, 16))
    taps = _tile(400)
    wk = numba.carray(taps, (25, 16))
    biased, bounded = bias.shape[0] > 0, lo > -np.inf or hi < np.inf
    zero = np.float32(0)
    four, vector = np.uint64(4), np.uint64(64)  # (bytes: a float32, a pixel of xs)
    padded, span = np.uint64(wp) * vector, np.uint64(channels) * four  # (a row of xs, a yl pixel)
    # whole tiles of a square kernel by 16 channels: square_taps_tile, 7 outputs where a row
    # is made of 7s and not of _TILE_PIXELS (MobileNetV2's 14x14 and 7x7 layers); a 5x5 kernel
    # over 7 outputs had too few registers (1.08x the time of tiles of 4 and 3)
    square = kh == kw
    sevens = square and kw == 3 and wo % 7 == 0 and wo % _TILE_PIXELS != 0
    flat = r0
    while flat < r1:
        b, r = flat // ho, flat % ho
        rows = min(band, r1 - flat, ho - r)  # output rows r..r + rows of image b
        first = r - top  # the input row of the band's first line
        for c in range(c0, c1, 16):
            count = np.uint64(min(16, c1 - c))
            whole = count == 16  # (16 channels: rows of xs and wk copied as vectors)
            for e in range(kh * kw):  # (lanes past the channels: copies of the last weight)
                if whole:
                    at = weights.ctypes.data + np.uint64(e * channels + c) * four
                    copy_vector(_address(taps) + np.uint64(e) * vector, at)
                    continue
                for t in range(16):
                    wk[e, t] = weights[np.uint64(e * channels + c + min(t, count - 1))]
            for line in range(rows + kh - 1):
                row, at = first + line, np.uint64(line * wp)
                if whole:
                    inside_row = 0 <= row < h
                    for col in range(wp):
                        j = col - left
                        frm = np.uint64(0)  # (zeros: the padding)
                        if inside_row and 0 <= j < inside:
                            pixel = np.uint64(((b * h + row) * wd + j) * channels + c)
                            frm = source.ctypes.data + pixel * four
                        copy_vector(_address(held) + (at + np.uint64(col)) * vector, frm)
                    continue
                for col in range(wp):
                    j, to = col - left, at + np.uint64(col)
                    if 0 <= row < h and 0 <= j < inside:
                        frm = np.uint64(((b * h + row) * wd + j) * channels + c)
                        for t in range(count):
                            xs[to, t] = source[frm + t]
                    else:
                        for t in range(count):
                            xs[to, t] = zero
            added = bias.ctypes.data + np.uint64(c) * four if biased else np.uint64(0)
            for rr in range(rows):
                step = 7 if whole and sevens else _TILE_PIXELS
                for q0 in range(0, wo, step):  # (past the row's end: read, not stored)
                    if whole and square and q0 + step <= wo:
                        pixel = np.uint64(((flat + rr) * wo + q0) * channels + c)
                        into, at = yl.ctypes.data + pixel * four, np.uint64(rr * wp + q0)
                        at = _address(held) + at * vector
                        ws = _address(taps)
                        if step == 7:
                            square_taps_tile(into, span, at, padded, ws, added, lo, hi, 3, 7)
                        elif kw == 3:
                            square_taps_tile(into, span, at, padded, ws, added, lo, hi, 3,
                                             _TILE_PIXELS)  # fmt: skip
                        else:
                            square_taps_tile(into, span, at, padded, ws, added, lo, hi, 5,
                                             _TILE_PIXELS)  # fmt: skip
                        continue
                    acc = numba.carray(_tile(128), (8, 16))
                    at = np.uint64(rr * wp + q0)
                    for i in range(kh):
                        if kw == 3:
                            _three_wide(acc, xs, wk, at + np.uint64(i * wp), i * 3, i == 0)
                        else:
                            _five_wide(acc, xs, wk, at + np.uint64(i * wp), i * 5, i == 0)
                    for g in range(min(_TILE_PIXELS, wo - q0)):
                        out = np.uint64(((flat + rr) * wo + q0 + g) * channels + c)
                        for t in range(count):
                            v = acc[g, t]
                            if biased:
                                v += bias[np.uint64(c) + t]
                            if bounded:
                                v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                                v = hi if v > hi else v  # noqa: FURB136
                            target[out + t] = v
        for rr in range(rows):
            _last_row_done(target, moved, flat + rr, ho, wo, channels, c0, c1, swish)
        flat += rows


@njit(inline="always")
def transpose_into(target, t_at, t_step, source, s_at, s_step, rows, cols):
    """target[t_at + j*t_step + i] = source[s_at + i*s_step + j] for i < ``rows``, j < ``cols``
    (flat arrays, element offsets): a layout change between NCHW and channel-last. 4-byte
    values go by blocks of 8 x 8 transposed in registers (``transpose_eight``), two side by side
    (a whole 64-byte line of the strided side at once: its lines, planes apart, fall in a few
    cache sets), the edges value by value. Value by value, in tiles of 16 x 16, MobileNetV2's
    192 channels of 28x28 moved channel-last at 7 GB/s (85 us; one core of a Zen 5), Segformer's
    256 of 56x56 back to NCHW in 385 us; by blocks in 12 and 114 (scratch timings)."""
    four, eight, sixteen = np.uint64(4), np.uint64(8), np.uint64(16)
    rows, cols = np.uint64(rows), np.uint64(cols)
    whole_rows = rows - rows % eight if source.itemsize == 4 else np.uint64(0)
    whole_cols = cols - cols % eight if source.itemsize == 4 else np.uint64(0)
    into, frm = np.uint64(target.ctypes.data), np.uint64(source.ctypes.data)
    t_bytes, s_bytes = t_step * four, s_step * four
    if rows <= cols:  # (by columns: each source row read 16 values at a time)
        for j in range(np.uint64(0), whole_cols, sixteen):
            pair = j + sixteen <= whole_cols
            for i in range(np.uint64(0), whole_rows, eight):
                at, frm_at = into + (t_at + j * t_step + i) * four, frm + (s_at + i * s_step + j) * four
                transpose_eight(at, t_bytes, frm_at, s_bytes)
                if pair:
                    transpose_eight(at + eight * t_bytes, t_bytes, frm_at + eight * four, s_bytes)
            for i in range(whole_rows, rows):
                for jj in range(j, min(j + sixteen, whole_cols)):
                    target[t_at + jj * t_step + i] = source[s_at + i * s_step + jj]
        for j in range(whole_cols, cols):
            for i in range(rows):
                target[t_at + j * t_step + i] = source[s_at + i * s_step + j]
        return
    # (by rows: each target row written 16 values at a time)
    for i in range(np.uint64(0), whole_rows, sixteen):
        pair = i + sixteen <= whole_rows
        for j in range(np.uint64(0), whole_cols, eight):
            at, frm_at = into + (t_at + j * t_step + i) * four, frm + (s_at + i * s_step + j) * four
            transpose_eight(at, t_bytes, frm_at, s_bytes)
            if pair:
                transpose_eight(at + eight * four, t_bytes, frm_at + eight * s_bytes, s_bytes)
        for j in range(whole_cols, cols):
            for ii in range(i, min(i + sixteen, whole_rows)):
                target[t_at + j * t_step + ii] = source[s_at + ii * s_step + j]
    for i in range(whole_rows, rows):
        for j in range(cols):
            target[t_at + j * t_step + i] = source[s_at + i * s_step + j]


@njit(**_OPTIONS)
def to_channels_last_pixels(x, xl, p0, p1):
    """Pixels p0..p1 of one image: xl (H, W, C) = x (C, H, W) (``transpose_into``)."""
    channels = np.uint64(x.shape[0])
    pixels = np.uint64(x.shape[1] * x.shape[2])
    start = np.uint64(p0)
    transpose_into(xl.reshape(-1), start * channels, channels, x.reshape(-1), start, pixels,
                   channels, p1 - p0)  # fmt: skip


@njit(**_OPTIONS)
def to_channels_last(x, xl):
    """xl (N, H, W, C) = x (N, C, H, W), image by image (``to_channels_last_pixels``)."""
    for b in range(x.shape[0]):
        to_channels_last_pixels(x[b], xl[b], 0, x.shape[2] * x.shape[3])


@njit(**_OPTIONS)
def from_channels_last(yl, y):
    """y (N, C, H, W) = yl (N, H, W, C), image by image (``transpose_into``)."""
    n, channels, height, width = y.shape
    source, target = yl.reshape(-1), y.reshape(-1)
    image = np.uint64(channels * height * width)
    for b in range(n):
        at = np.uint64(b) * image
        transpose_into(target, at, np.uint64(height * width), source, at, np.uint64(channels),
                       height * width, channels)  # fmt: skip


@njit(**_OPTIONS)
def gather(src, src_steps, dst, dst_steps, shape, r0, r1):
    """dst = src for two layouts of one 4-D ``shape`` in the flat buffers ``src`` and ``dst``
    (each axis's step in elements in ``src_steps``, ``dst_steps``; the last axis's 1 in both),
    indices r0..r1 of the first axis: the copy of a view (threads.gather_into), run by run
    along the last axis, however short (numpy's strided copy pays its inner loop's setup per
    run)."""
    n1, n2, n3 = shape[1], shape[2], np.uint64(shape[3])
    for i0 in range(r0, r1):
        for i1 in range(n1):
            for i2 in range(n2):
                # (unsigned: no check for negative indices in the loop, which then vectorizes)
                at = np.uint64(i0 * src_steps[0] + i1 * src_steps[1] + i2 * src_steps[2])
                to = np.uint64(i0 * dst_steps[0] + i1 * dst_steps[1] + i2 * dst_steps[2])
                for i3 in range(n3):
                    dst[to + i3] = src[at + i3]


@njit(**_OPTIONS)
def squeeze_excite_gates(means, w1, b1, w2, b2, swish, hard, alpha, beta, cap, gates):
    """gates (N, C) of a squeeze-excite block from its squeezed ``means`` (N, C): the gate of
    act(means @ w1 + b1) @ w2 + b2, ``w1`` (C, R) and ``w2`` (R, C) C-contiguous, each bias
    (R,), (C,) or empty; act a Swish x / (1 + exp(-x)) where ``swish``, else a ReLU; the gate
    a HardSigmoid clip(alpha x + beta, 0, 1) where ``hard``, else a Sigmoid 1 / (1 + exp(-x)),
    its exponent held at ``cap`` (below overflow), as the steps' kernels compute them, NaN
    kept. The products sum in C's and R's order (numpy's GEMV orders its own: the last bits
    may differ). Each product reads its weight row by row, the outputs the vector."""
    n, c = means.shape
    r = w1.shape[1]
    zero, one = cap - cap, cap / cap
    hidden = np.empty(r, means.dtype)
    for i in range(n):
        for k in range(r):
            hidden[k] = zero
        for j in range(c):
            m = means[i, j]
            for k in range(r):
                hidden[k] += m * w1[j, k]
        for k in range(r):
            v = hidden[k] + b1[k] if b1.shape[0] else hidden[k]
            hidden[k] = v / (one + np.exp(-v)) if swish else _max(v, zero)
        out = gates[i]
        for k in range(c):
            out[k] = zero
        for j in range(r):
            h = hidden[j]
            for k in range(c):
                out[k] += h * w2[j, k]
        for k in range(c):
            v = out[k] + b2[k] if b2.shape[0] else out[k]
            if hard:
                out[k] = _min(_max(alpha * v + beta, zero), one)
            else:
                out[k] = one / (one + np.exp(_min(-v, cap)))


# Row statistics: each row's sums in 16 vector lanes in an order written out
# (``_jit_gemm.lane_sums``), the same bits on one thread and split over numba's (numpy's
# pairwise summation reorders its sums too); no fast-math: a sum or a multiply-add LLVM may
# reorder or fuse is ordered by each place the function is compiled into. The numbers come in
# ``consts`` (1 / width, epsilon, 1) in x's dtype: a Python number in the arithmetic would make
# numba compute a float32 row in float64.


@njit(inline="always")
def _row_sum(x, start, at, n, shift, squares):
    """The sum of row values v = x[at:at + n] (or with ``squares`` (a literal 1), of (v -
    ``shift``)²): ``lane_sums`` over its whole vectors (``start``: x's address), then the
    last n % 16 in order."""
    vectors = n // np.uint64(16)
    total = lane_sums(start + at * np.uint64(x.itemsize), vectors, shift, squares, x)
    for i in range(vectors * np.uint64(16), n):
        if squares:
            d = x[at + i] - shift
            total += d * d
        else:
            total += x[at + i]
    return total


@njit(**_OPTIONS)
def layer_norm(x, scale, bias, y, mean, inv, width, consts, r0, r1):
    """Rows r0..r1 of the flat ``x`` (rows of ``width``): y = (x - mean) * inv * scale + bias,
    each row's mean and inv = 1 / sqrt(variance + epsilon) kept in ``mean`` and ``inv``.
    Three passes over a row while it is in cache (numpy's path makes seven over the tensor);
    the variance from the centred values, as numpy's."""
    n = np.uint64(width)
    per, epsilon, one = consts[0], consts[1], consts[2]
    zero = one - one
    start = np.uint64(x.ctypes.data)
    for r in range(np.uint64(r0), np.uint64(r1)):
        at = r * n
        m = _row_sum(x, start, at, n, zero, 0) * per
        squares = _row_sum(x, start, at, n, m, 1)
        s = one / np.sqrt(squares * per + epsilon)
        for i in range(n):
            y[at + i] = (x[at + i] - m) * s * scale[i] + bias[i]
        mean[r] = m
        inv[r] = s


@njit(**_OPTIONS)
def row_means(x, y, width, count, r0, r1):
    """y[r] = the mean of row r of the flat ``x`` (rows of ``width``) for rows r0..r1: its sum
    (``_row_sum``) divided by ``count`` (the width in x's dtype)."""
    n = np.uint64(width)
    zero = count - count
    start = np.uint64(x.ctypes.data)
    for r in range(np.uint64(r0), np.uint64(r1)):
        y[r] = _row_sum(x, start, r * n, n, zero, 0) / count


# (column_means: each column's sum in its lane of a vector on the stack, reassociated so that
# the adds vectorize; split by columns, each column summed by one thread)
_SUMS = {**_OPTIONS, "fastmath": {"reassoc", "contract", "nsz", "arcp"}}


@njit(**_SUMS)
def column_means(x, means, count, c0, c1):
    """means[b, c] = the mean of column c of x[b], float32 x (N, P, C), for columns c0..c1: the
    sum down the column in pixel order, divided by ``count`` (P), 16 columns at a time in a
    buffer on the stack (summed in ``means`` itself, or in a buffer of a run-time width, the
    adds did not vectorize: 2-3x the time). (A channel-last squeeze-excite's squeeze.)"""
    n, pixels, channels = x.shape
    flat = x.reshape(-1)
    sums = numba.carray(_tile(16), (16,))
    span = np.uint64(channels)
    for b in range(n):
        for c in range(c0, c1, 16):
            width = min(16, c1 - c)
            at = np.uint64(b * pixels * channels + c)
            for t in range(16):
                sums[t] = 0
            if width == 16:
                for p in range(np.uint64(pixels)):
                    row = at + p * span
                    for t in range(np.uint64(16)):
                        sums[t] += flat[row + t]
            else:
                for p in range(np.uint64(pixels)):
                    row = at + p * span
                    for t in range(np.uint64(width)):
                        sums[t] += flat[row + t]
            for t in range(width):
                means[b, c + t] = sums[t] / count


@njit(**_OPTIONS)
def by_columns(x, values, y, r0, r1):
    """y[b, p] = x[b, p] * values[b] for the pixels r0..r1 of the N * P, x and y (N, P, C),
    values (N, C): each pixel's channels by their gates (a channel-last squeeze-excite's
    excitation)."""
    pixels = x.shape[1]
    for r in range(r0, r1):
        b, p = r // pixels, r % pixels
        _by_row(MUL, y[b, p], x[b, p], values[b])


@njit(**_OPTIONS)
def rms_norm(x, scale, y, width, consts, r0, r1):
    """Rows r0..r1 of the flat ``x`` (rows of ``width``): y = x / sqrt(mean(x^2) + eps) * scale."""
    n = np.uint64(width)
    per, epsilon, one = consts[0], consts[1], consts[2]
    zero = one - one
    start = np.uint64(x.ctypes.data)
    for r in range(np.uint64(r0), np.uint64(r1)):
        at = r * n
        squares = _row_sum(x, start, at, n, zero, 1)
        s = one / np.sqrt(squares * per + epsilon)
        for i in range(n):
            y[at + i] = x[at + i] * s * scale[i]


_LRN_CHUNK = 2048  # pixels summed at a time: their sums (8 KiB in float32) stay in L1


@njit(**_OPTIONS)
def lrn(x, y, consts, below, above, root, p0, p1):
    """LRN of pixels p0..p1 of ``x`` (N, C, P) into ``y``: y = x / (bias + scale * s)^beta,
    s the sum of x^2 over channels c - below .. c + above inside C, ``consts`` (scale, bias) in
    x's dtype, ``root`` the exponent as square roots: 0 for beta 1, 1 for 0.5, 2 for 0.75.

    kernels.norm.lrn's numpy path, in its order: a channel's own square, then those below it
    nearest first, then those above; the scale, the bias, the power as sqrt(r) * r with
    r = sqrt(t) for 0.75; the division: the same bits, a pass per pixel chunk instead of a
    dozen over the tensor."""
    n, channels, pixels = x.shape
    src, dst = x.reshape(-1), y.reshape(-1)
    scale, bias = consts[0], consts[1]
    sums = np.empty(_LRN_CHUNK, x.dtype)
    for b in range(n):
        for c in range(channels):
            plane = np.uint64((b * channels + c) * pixels)
            for q0 in range(p0, p1, _LRN_CHUNK):
                width = np.uint64(min(_LRN_CHUNK, p1 - q0))
                at = plane + np.uint64(q0)
                for j in range(width):
                    v = src[at + j]
                    sums[j] = v * v
                for k in range(1, min(below, c) + 1):
                    other = at - np.uint64(k * pixels)
                    for j in range(width):
                        v = src[other + j]
                        sums[j] += v * v
                for k in range(1, min(above, channels - 1 - c) + 1):
                    other = at + np.uint64(k * pixels)
                    for j in range(width):
                        v = src[other + j]
                        sums[j] += v * v
                for j in range(width):
                    t = sums[j] * scale + bias
                    if root == 1:
                        t = np.sqrt(t)
                    elif root == 2:
                        r = np.sqrt(t)
                        t = np.sqrt(r) * r
                    dst[at + j] = src[at + j] / t


@njit(**_OPTIONS)
def resample_planes(x, y, rows, row_weights, cols, col_weights, p0, p1):
    """Planes p0..p1 of ``y`` (P, Ho, Wo) resampled from ``x`` (P, H, W) by taps along both
    axes (kernels.vision's linear and cubic Resize): each input row's columns first, output
    column q the sum over k of x[.., cols[k, q]] * col_weights[k, q] in k's order, into a
    buffer of H rows; then output row r the sum over k of the buffer's row rows[r, k] times
    row_weights[r, k]. ``rows`` uint64 (Ho, J), ``cols`` uint64 (K, Wo), weights alike in x's
    dtype. The loops over q are the vectorized ones (gathers, then plain rows); columns first,
    there are H rows of gathers, not Ho (0.49 ms against 0.84 for 256 planes from 28x28 to
    56x56, one thread, scratch timing; the numpy path's dense products 1.14)."""
    planes, height, width = x.shape
    ho, wo = y.shape[1], y.shape[2]
    src, dst = x.reshape(-1), y.reshape(-1)
    lines = np.empty(height * wo, x.dtype)
    w, o = np.uint64(width), np.uint64(wo)
    for p in range(p0, p1):
        plane = np.uint64(p * height * width)
        for h in range(np.uint64(height)):
            at, to = plane + h * w, h * o
            first, weight = cols[0], col_weights[0]
            for q in range(o):
                lines[to + q] = src[at + first[q]] * weight[q]
            for k in range(1, cols.shape[0]):
                taps, weight = cols[k], col_weights[k]
                for q in range(o):
                    lines[to + q] += src[at + taps[q]] * weight[q]
        for r in range(ho):
            out = np.uint64((p * ho + r) * wo)
            at, scale = rows[r, 0] * o, row_weights[r, 0]
            for q in range(o):
                dst[out + q] = lines[at + q] * scale
            for k in range(1, rows.shape[1]):
                at, scale = rows[r, k] * o, row_weights[r, k]
                for q in range(o):
                    dst[out + q] += lines[at + q] * scale
