"""The numba kernels behind compiled.py (imported only where numba is installed).

Each is compiled at its first call for the dtype it gets (float32 or float64; a few seconds
per kernel), once per machine: numba caches the machine code on disk. Callers pass C-contiguous
arrays only, so there is one compiled version per dtype. Arithmetic stays in the array's dtype
and follows numpy's: IEEE division (no exception on zero), maximum/minimum propagating NaN and
returning the second operand when the two compare equal (so the sign of a zero is numpy's).

Habits that keep numba's loops vectorized (checked in the generated code): a row read and
written in place goes by one name (two names for one row fail LLVM's overlap check at run
time), a loop touches few arrays (LLVM gives up checking many for overlap), and computed
indices are unsigned (numba skips its negative-index wraparound for those).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from onyx.runtime.compiled import ADD, DIV, FULL, MAX, MUL, SCALAR, SUB

# Single-threaded: between GEMMs, OpenBLAS's idle threads spin on the other core, and a second
# thread pool beside them made whole models 10x slower (OpenMP waiting actively) or no faster
# (passively) than one thread (measured once with parallel=True on these kernels; not kept).
_OPTIONS = {"parallel": False, "cache": True, "nogil": True, "error_model": "numpy"}


# (written as comparisons LLVM turns into vector selects: a version calling np.isnan ran a ReLU
# pass 1.4x slower)
@njit(inline="always")
def _max(a, b):
    return b if a <= b or b != b else a


@njit(inline="always")
def _min(a, b):
    return b if a >= b or b != b else a


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


@njit(**_OPTIONS)
def im2col(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo):
    """The im2col rows of output rows r0..r1 of a 2-D convolution over one image ``x`` (C, H, W)
    into ``cols`` (C*kh*kw, (r1-r0)*wo), reading zeros outside the image (the padding)."""
    channels, height, width = x.shape
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = cols[(c * kh + i) * kw + j]
                shift = j * dw - pl  # output column q reads input column q*sw + shift
                q0, q1 = _visible(shift, sw, wo, width)
                for r in range(r0, r1):
                    h = r * sh - pt + i * dh
                    out = row[(r - r0) * wo : (r - r0 + 1) * wo]
                    if h < 0 or h >= height:
                        out[:] = 0
                        continue
                    line = x[c, h]
                    out[:q0] = 0
                    start, step = np.uint64(q0 * sw + shift), np.uint64(sw)
                    for t in range(np.uint64(q1 - q0)):
                        out[np.uint64(q0) + t] = line[start + t * step]
                    out[q1:] = 0


@njit(inline="always")
def _step(code, kind, out, a, full, scalar, per_channel):
    """out = op(a, operand), the operand picked by ``kind`` (see compiled.py)."""
    if kind == FULL:
        _by_row(code, out, a, full)
    elif kind == SCALAR:
        _by_value(code, out, a, scalar)
    else:
        _by_value(code, out, a, per_channel)


@njit(**_OPTIONS)
def elementwise(y, source, copy_source, full, row0, row1, col0, col1, channels, codes, kinds,
                scalars, vectors):  # fmt: skip
    """``y = op_k(... op_1(y, operand_1) ..., operand_k)`` on rows row0..row1, columns
    col0..col1, in place, or first copied from ``source`` where ``copy_source``. Row r is
    channel r % channels; operand k is ``scalars[k]``, ``vectors[k, channel]`` or ``full``'s
    element, by ``kinds[k]``."""
    for r in range(row0, row1):
        channel = r % channels
        out = y[r, col0:col1]
        operand = full[r, col0:col1]
        # the first step reads the source, by its own name only where it is another array
        if copy_source:
            _step(codes[0], kinds[0], out, source[r, col0:col1], operand, scalars[0],
                  vectors[0, channel])  # fmt: skip
        else:
            _step(codes[0], kinds[0], out, out, operand, scalars[0], vectors[0, channel])
        for k in range(1, codes.shape[0]):
            _step(codes[k], kinds[k], out, out, operand, scalars[k], vectors[k, channel])


@njit(inline="always")
def _input_row(x, z, minus, planes, first, lo, count):
    """Row i of B^T d B for ``count`` tiles into planes[first..first+3, lo:]: the row x - z
    (or x + z) of B^T d, times B."""
    o0, o1 = planes[first, lo:], planes[first + 1, lo:]
    o2, o3 = planes[first + 2, lo:], planes[first + 3, lo:]
    for b in range(count):
        q = 2 * b
        z0, z1, z2, z3 = z[q], z[q + 1], z[q + 2], z[q + 3]
        if minus:  # (x + -z is x - z exactly)
            z0, z1, z2, z3 = -z0, -z1, -z2, -z3
        e0, e1, e2, e3 = x[q] + z0, x[q + 1] + z1, x[q + 2] + z2, x[q + 3] + z3
        o0[b], o1[b], o2[b], o3[b] = e0 - e2, e1 + e2, e2 - e1, e1 - e3


@njit(**_OPTIONS)
def winograd_input(xp, v, tiles_h, tiles_w):
    """Winograd F(2x2, 3x3) input transform: for each channel c and tile t (row-major over
    tiles_h x tiles_w), the 4x4 patch d at (2*row, 2*col) of the zero-padded image ``xp``
    (C, 2*tiles_h + 2, 2*tiles_w + 2) as B^T d B, into ``v`` (16, C, tiles)."""
    planes = v.reshape(16, -1)
    for c in range(xp.shape[0]):
        for a in range(tiles_h):
            r0, r1, r2, r3 = xp[c, 2 * a], xp[c, 2 * a + 1], xp[c, 2 * a + 2], xp[c, 2 * a + 3]
            lo = (c * tiles_h + a) * tiles_w
            # one loop per row of B^T: few arrays per loop, which LLVM can vectorize
            _input_row(r0, r2, True, planes, 0, lo, tiles_w)
            _input_row(r1, r2, False, planes, 4, lo, tiles_w)
            _input_row(r2, r1, True, planes, 8, lo, tiles_w)
            _input_row(r1, r3, True, planes, 12, lo, tiles_w)


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
def winograd_output(m, y, tiles_w):
    """Winograd F(2x2, 3x3) output transform: each tile's A^T M A (2x2) from ``m``
    (16, M, tiles) into ``y`` (M, Ho, Wo), cropped at the far edges."""
    ho, wo = y.shape[1], y.shape[2]
    tiles_h = m.shape[2] // tiles_w
    whole = wo // 2  # tiles with both output columns inside
    planes = m.reshape(16, -1)
    sums = np.empty((4, tiles_w), m.dtype)  # one row of A^T M, for a row of tiles
    s0, s1, s2, s3 = sums[0], sums[1], sums[2], sums[3]
    for o in range(m.shape[1]):
        for a in range(tiles_h):
            lo = (o * tiles_h + a) * tiles_w
            for i in range(min(2, ho - 2 * a)):  # output rows 2a, 2a + 1 (the last may be cut)
                for j in range(4):  # few arrays per loop, which LLVM can vectorize
                    _output_sums(planes, j, lo, i == 0, sums[j], tiles_w)
                row = y[o, 2 * a + i]
                for b in range(whole):
                    row[2 * b], row[2 * b + 1] = s0[b] + s1[b] + s2[b], s1[b] - s2[b] - s3[b]
                if whole < tiles_w:  # an odd width: the last tile's first column only
                    row[2 * whole] = s0[whole] + s1[whole] + s2[whole]


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

