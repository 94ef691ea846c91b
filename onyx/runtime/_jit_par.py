"""Kernels split over numba's own threads (``parallel=True``): the session pool's native side.

The Python pool (threads.py) hands each part of a split to a worker woken through the OS: on
this project's 2-core VM a wake takes 20-25 us, twice per split (the worker's start, the
caller's wait for its end), which cost more than the split saved on most of a CNN's layers.
numba's threads (its OpenMP or TBB layer) wait spinning between parallel regions, as
onnxruntime's do, and run the parts without the GIL. A region's parts are contiguous bands whose
bounds depend on the part count only, each writing its own block of the result, so the result
does not depend on which thread ran which band.

GEMMs run inside the bands through the CBLAS entry point of the BLAS numpy loaded (passed in as
a function pointer: a global one would keep numba from caching the kernels), held to one thread
meanwhile, so BLAS's own threads never run beside these. Imported only through
threads.native(), which checks that numba's threading layer may be entered from several Python
threads at once (the workqueue layer may not) and that the CBLAS symbols were found.

numba's on-disk cache of a function is keyed by its own file only: after editing a kernel of
_jit.py or _jit_exp.py that these call, delete onyx/runtime/__pycache__/*.nbi and *.nbc (a
stale cache kept the old kernel here once). An install or upgrade writes new files, which
invalidates the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from onyx.runtime._jit import (
    by_columns,
    by_rows,
    column_means,
    depthwise,
    depthwise_channels_last,
    depthwise_last_tiles,
    elementwise,
    gather,
    im2col,
    im2col_images,
    layer_norm,
    lrn,
    pool2d,
    resample_planes,
    rms_norm,
    row_means,
    winograd_input,
    winograd_output,
)
from onyx.runtime._jit_exp import (
    CHUNK,
    _gelu_chunks,
    softmax_rows,
)
from onyx.runtime._jit_gemm import (  # noqa: F401 (FEW, WIDE, span_blocks: threads reads them)
    BLOCK,
    FEW,
    ROWS,
    WIDE,
    _shape,
    aligned_panels,
    few_rows_product,
    pack_panels,
    packed_product,
    plane_shape,
    planes_product,
    span_blocks,
    swish_vectors,
    transpose_eight,
)

_PARALLEL = {"parallel": True, "cache": True, "nogil": True, "error_model": "numpy"}
_ROW_MAJOR, _PLAIN, _TRANSPOSED = 101, 111, 112  # CBLAS: CblasRowMajor, CblasNoTrans, CblasTrans
_NO_BIAS32 = np.empty(0, np.float32)  # (onyx's GEMM with no bias and no bounds)
_NEG, _POS = np.float32(-np.inf), np.float32(np.inf)


@njit(inline="always")
def _band(count, parts, p):
    """Band p of ``parts`` near-equal contiguous bands of ``count`` items: (start, stop)."""
    return p * count // parts, (p + 1) * count // parts


@njit(inline="always")
def _alive(a):
    """A use of ``a`` after a call that reads it through a pointer: numba frees an array after
    its last use in the code, which a pointer taken from it does not count as."""
    return a.shape[0]


@njit(inline="always")
def _finish(c, r0, r1, c0, c1, bias, lo, hi):
    """c[r0:r1, c0:c1] + bias[c0:c1] (where ``bias`` is not empty), then clamped to [lo, hi]
    (as numpy's maximum and minimum: NaN kept), in place. (Indexed unsigned: with signed
    indices numba checks each for wraparound and the loops do not vectorize, 4x slower.)"""
    j0, j1 = np.uint64(c0), np.uint64(c1)
    if bias.shape[0]:
        for r in range(r0, r1):
            row = c[r]
            for j in range(j0, j1):
                v = row[j] + bias[j]
                v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
                row[j] = hi if v > hi else v  # noqa: FURB136
    else:
        for r in range(r0, r1):
            row = c[r]
            for j in range(j0, j1):
                v = row[j]
                v = lo if v < lo else v  # noqa: FURB136
                row[j] = hi if v > hi else v  # noqa: FURB136


@njit(**_PARALLEL)
def gemm(blas, a, b, c, ta, lda, tb, ldb, parts, by_rows, finish, bias, lo, hi, one, zero):
    """c = a @ b for 2-D ``a`` (M, K), ``b`` (K, N) and ``c`` (M, N), c's rows of unit stride,
    a and b each read as laid out (``ta``/``tb``: CBLAS's transpose flag, ``lda``/``ldb``: its
    leading dimension), in ``parts`` bands of rows (``by_rows``) or of columns (in multiples of
    16, the width of BLAS's kernels). Where ``finish``, each band then gets ``bias`` (N,) (if
    not empty) added and is clamped to [lo, hi] while it is in cache (a linear layer's bias
    and ReLU)."""
    m, k = a.shape
    n = b.shape[1]
    ldc = c.strides[0] // c.itemsize
    blocks = (n + 15) // 16
    for p in prange(parts):
        if by_rows:
            r0, r1 = _band(m, parts, p)
            if r1 > r0:
                blas(_ROW_MAJOR, ta, tb, r1 - r0, n, k, one, a.ctypes.data + r0 * a.strides[0],
                     lda, b.ctypes.data, ldb, zero, c.ctypes.data + r0 * c.strides[0], ldc)  # fmt: skip
                if finish:
                    _finish(c, r0, r1, 0, n, bias, lo, hi)
        else:
            b0, b1 = _band(blocks, parts, p)
            c0, c1 = b0 * 16, min(n, b1 * 16)
            if c1 > c0:
                blas(_ROW_MAJOR, ta, tb, m, c1 - c0, k, one, a.ctypes.data, lda,
                     b.ctypes.data + c0 * b.strides[1], ldb, zero,
                     c.ctypes.data + c0 * c.strides[1], ldc)  # fmt: skip
                if finish:
                    _finish(c, 0, m, c0, c1, bias, lo, hi)


@njit(**_PARALLEL)
def gemv(blas, a, b, c, tb, ldb, parts, finish, bias, lo, hi, one, zero):
    """c = a @ b for ``a`` (M, K) of few rows, ``b`` (K, N) read as laid out (``tb``, ``ldb``:
    as in ``gemm``) and ``c`` (M, N) of unit column stride: BLAS's GEMV for each row of a on
    ``parts`` bands of the columns (in multiples of 16), each band then finished as
    ``gemm``'s."""
    m, k = a.shape
    n = b.shape[1]
    step = a.strides[1] // a.itemsize
    blocks = (n + 15) // 16
    for p in prange(parts):
        b0, b1 = _band(blocks, parts, p)
        c0, c1 = b0 * 16, min(n, b1 * 16)
        if c1 > c0:
            columns = b.ctypes.data + c0 * b.strides[1]
            for i in range(m):
                source = a.ctypes.data + i * a.strides[0]
                target = c.ctypes.data + i * c.strides[0] + c0 * c.itemsize
                if tb == _PLAIN:  # b's rows laid out: y = (its columns c0..c1)^T a
                    blas(_ROW_MAJOR, _TRANSPOSED, k, c1 - c0, one, columns, ldb, source, step,
                         zero, target, 1)  # fmt: skip
                else:  # b's columns laid out (rows of its transpose): y = those rows times a
                    blas(_ROW_MAJOR, _PLAIN, c1 - c0, k, one, columns, ldb, source, step, zero,
                         target, 1)  # fmt: skip
            if finish:
                _finish(c, 0, m, c0, c1, bias, lo, hi)


@njit(**_PARALLEL)
def packed_gemm(a, panels, c, n, bias, lo, hi, parts, by_rows, swish=False, res=None):
    """c = a @ B + bias (+ ``res``, laid out as c, where given), clamped to [lo, hi], then its
    Swish where ``swish`` (``_jit_gemm.packed_product``; B packed into ``panels``), in
    ``parts`` bands of rows (in whole tiles) or of panels (``by_rows``)."""
    m = _shape(a)[0]
    count = panels.shape[0]
    for p in prange(parts):
        if by_rows:
            t0, t1 = _band((m + ROWS - 1) // ROWS, parts, p)
            r0, r1 = t0 * ROWS, min(m, t1 * ROWS)
            if r1 > r0:
                packed_product(a, panels, c, n, bias, lo, hi, 0, count, r0, r1, swish, res)
        else:
            q0, q1 = _band(count, parts, p)
            if q1 > q0:
                packed_product(a, panels, c, n, bias, lo, hi, q0, q1, 0, m, swish, res)


@njit(**_PARALLEL)
def planes_gemm(tiles, b, c, m, bias, lo, hi, parts, blocks, swish, res=None):
    """c = W @ b + bias (+ ``res``, laid out as c, where given), clamped to [lo, hi]
    (``_jit_gemm.planes_product``; W packed into ``tiles``) in ``parts`` bands of b's blocks of
    BLOCK columns or, where there are fewer blocks than tiles of W, of W's tiles; ``b`` an array
    or patches (``_jit_gemm._copy_plane_row``); ``blocks`` (parts, S, K, BLOCK): each band's
    copy of its span of S blocks (``_jit_gemm.span_blocks``); ``swish``: a Swish in the store."""
    p_ = plane_shape(b)[1]
    count = (p_ + BLOCK - 1) // BLOCK
    rows = tiles.shape[0]
    for p in prange(parts):
        if count >= rows:
            q0, q1 = _band(count, parts, p)
            if q1 > q0:
                planes_product(tiles, b, c, m, bias, lo, hi, 0, rows, q0 * BLOCK,
                               min(p_, q1 * BLOCK), blocks[p], swish, res)  # fmt: skip
        else:
            t0, t1 = _band(rows, parts, p)
            if t1 > t0:
                planes_product(tiles, b, c, m, bias, lo, hi, t0, t1, 0, p_, blocks[p], swish,
                               res)  # fmt: skip


@njit(**_PARALLEL)
def pad_bands(x, padded, pt, pl, parts):
    """padded (G, Hp, Wq) = x (G, H, Wx) placed at row ``pt`` and column ``pl`` of each of the G
    planes, zeros around it, over ``parts`` bands of padded's rows (every plane's): an NCHW
    image's planes (G = C), or a channel-last image as one plane of rows of W*C (``pl``
    counted in elements)."""
    planes, height, width = x.shape
    rows, wide = padded.shape[1], padded.shape[2]
    zero = x.dtype.type(0)
    left, right = np.uint64(pl), np.uint64(pl + width)
    for p in prange(parts):
        r0, r1 = _band(planes * rows, parts, p)
        for r in range(r0, r1):
            g, y = r // rows, r % rows
            out = padded[g, y]
            if pt <= y < pt + height:
                line = x[g, y - pt]
                for j in range(np.uint64(0), left):
                    out[j] = zero
                for j in range(left, right):
                    out[j] = line[j - left]
                for j in range(right, np.uint64(wide)):
                    out[j] = zero
            else:
                for j in range(np.uint64(0), np.uint64(wide)):
                    out[j] = zero


@njit(**_PARALLEL)
def pad_last_bands(x, padded, pt, pl, parts):
    """padded (Hp, Wp, C) = x (C, H, W) moved channel-last and placed at row ``pt`` and column
    ``pl``, zeros around it, over ``parts`` bands of padded's rows; each row's interior by
    blocks of 8 pixels by 8 channels transposed in registers where its values are 4 bytes
    (``transpose_eight``: 56x56 images 0.27-0.4x the time of tiles moved value by value, 28x28
    0.36-0.47x, 14x14 0.6x, 7x7 1.06x; 2 threads, two scratch runs alternating the two), the
    rest by tiles of 16 by 16, both sides in cache while they move."""
    channels, height, width = x.shape
    rows, wide = padded.shape[0], padded.shape[1] * channels
    source = x.reshape(-1)
    plane = np.uint64(height * width)
    zero = x.dtype.type(0)
    left, right = np.uint64(pl * channels), np.uint64((pl + width) * channels)
    # (4-byte values: blocks of 8 pixels by 8 channels transposed in registers, transpose_eight;
    # the rest in tiles of 16 by 16 value by value)
    four, span = np.uint64(4), np.uint64(channels)
    past = width - width % 8 if x.itemsize == 4 else 0  # (pixels past the blocks of 8)
    eights = np.uint64(past)
    most = np.uint64(channels - channels % 8)
    for p in prange(parts):
        r0, r1 = _band(rows, parts, p)
        for y in range(r0, r1):
            out = padded[y].reshape(-1)
            if pt <= y < pt + height:
                for j in range(np.uint64(0), left):
                    out[j] = zero
                line = np.uint64((y - pt) * width)
                for q in range(np.uint64(0), eights, np.uint64(8)):
                    for c in range(np.uint64(0), most, np.uint64(8)):
                        at = left + q * span + c
                        transpose_eight(out.ctypes.data + at * four, span * four,
                                        source.ctypes.data + (c * plane + line + q) * four,
                                        plane * four)  # fmt: skip
                    for qq in range(q, q + np.uint64(8)):
                        for c in range(most, span):
                            out[left + qq * span + c] = source[c * plane + line + qq]
                for q0 in range(past, width, 16):
                    q1 = min(width, q0 + 16)
                    for c0 in range(0, channels, 16):
                        c1 = min(channels, c0 + 16)
                        for q in range(q0, q1):
                            at = left + np.uint64(q * channels)
                            for c in range(c0, c1):
                                out[at + np.uint64(c)] = source[np.uint64(c) * plane + line + q]
                for j in range(right, np.uint64(wide)):
                    out[j] = zero
            else:
                for j in range(np.uint64(0), np.uint64(wide)):
                    out[j] = zero


@njit(**_PARALLEL)
def activation_gemm(a, b, panels, c, bias, lo, hi, parts):
    """c = a @ b + bias, clamped to [lo, hi], for a ``b`` made at run time (a convolution's
    input or columns): each of ``parts`` bands of 16-column panels packs its panels of ``b``
    into ``panels`` (``_jit_gemm.pack_panels``), then multiplies every row of ``a`` by them
    (``packed_product``), so a band needs nothing from another."""
    m, n = a.shape[0], b.shape[1]
    count = panels.shape[0]
    for p in prange(parts):
        q0, q1 = _band(count, parts, p)
        if q1 > q0:
            pack_panels(b, panels, q0, q1)
            packed_product(a, panels, c, n, bias, lo, hi, q0, q1, 0, m)


@njit(**_PARALLEL)
def few_rows_gemm(a, panels, c, n, bias, lo, hi, parts):
    """``packed_gemm`` for an ``a`` of at most FEW rows (``_jit_gemm.few_rows_product``), in
    ``parts`` bands of the panels, in groups of 4."""
    count = panels.shape[0]
    groups = (count + 3) // 4
    for p in prange(parts):
        g0, g1 = _band(groups, parts, p)
        if g1 > g0:
            few_rows_product(a, panels, c, n, bias, lo, hi, g0 * 4, min(count, g1 * 4))


@njit(**_PARALLEL)
def packed_stack(a, b, c, panels, parts):
    """c[i] = a[i] @ b[i] for float32 stacks ``a`` (S, M, K) and ``b`` (S, K, N) of any
    strides (attention's heads, as views) into ``c`` (S, M, N), by onyx's own GEMM: each of
    ``parts`` bands of the stack packs each b[i] into its own ``panels[part]`` (ceil(N/16),
    K, 16) and multiplies a[i] by them (``packed_product``)."""
    count, m = a.shape[0], a.shape[1]
    n = c.shape[2]
    bias = np.empty(0, np.float32)
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    for p in prange(parts):
        i0, i1 = _band(count, parts, p)
        mine = panels[p]
        for i in range(i0, i1):
            pack_panels(b[i], mine, 0, mine.shape[0])
            packed_product(a[i], mine, c[i], n, bias, lo, hi, 0, mine.shape[0], 0, m)


@njit(**_PARALLEL)
def gemm_stack(blas, a, b, c, ta, lda, tb, ldb, stacked, parts, one, zero):
    """c[i] = a[i] @ (b[i] if ``stacked`` else b) for 3-D ``a``, C-contiguous ``c`` and ``b``
    3-D or 2-D, each matrix of a and b read as laid out (``ta``/``lda``, ``tb``/``ldb``: as in
    ``gemm``; the matrices of a stack their strides[0] apart: a head transpose's views), the
    stack split in ``parts`` bands."""
    count, m, k = a.shape
    n = c.shape[2]
    for p in prange(parts):
        i0, i1 = _band(count, parts, p)
        for i in range(i0, i1):
            at_b = b.ctypes.data + (i * b.strides[0] if stacked else 0)
            blas(_ROW_MAJOR, ta, tb, m, n, k, one, a.ctypes.data + i * a.strides[0], lda, at_b,
                 ldb, zero, c.ctypes.data + i * m * n * c.itemsize, n)  # fmt: skip


@njit(**_PARALLEL)
def conv_bands(blas, x, w, y, kh, kw, sh, sw, dh, dw, pt, pl, rows, blocks, pointwise, own_depth,
               codes, with_full, params, full, one, zero):  # fmt: skip
    """A 2-D convolution with one group into ``y`` (N, M, Ho, Wo), in parts of ``rows``
    output rows of an image by one of ``blocks`` bands of the M output channels: each part's
    im2col columns (the input itself for a 1x1 stride-1 kernel), its GEMM by ``w``
    (M, C*kh*kw) and its epilogue program (``codes``, ``with_full``, ``params``, ``full``:
    epilogue._program; no stages: none) done while the part is in cache. Small planes split
    by channels (``blocks`` > 1), where bands of rows would leave each GEMM a few columns.
    float32 (the only type taking this path) at a depth of at least ``own_depth``
    (threads.ACTIVATION_DEPTH, passed in so that a benchmark may change it) multiplies by onyx's
    own GEMM, the part's columns packed as ``activation_gemm`` packs them; shallower, by
    BLAS's."""
    n, m, ho, wo = y.shape
    channels = x.shape[1]
    depth = w.shape[1]
    size = x.itemsize
    per_image = (ho + rows - 1) // rows
    plane = ho * wo
    flat = y.reshape(n * m, plane)
    for part in prange(n * per_image * blocks):
        i = part // (per_image * blocks)
        r0 = part // blocks % per_image * rows
        r1 = min(ho, r0 + rows)
        m0, m1 = _band(m, blocks, part % blocks)
        width = (r1 - r0) * wo
        weights = w.ctypes.data + m0 * depth * size
        target = y.ctypes.data + ((i * m + m0) * plane + r0 * wo) * size
        if depth >= own_depth:  # float32: onyx's own GEMM, the part's columns packed
            if pointwise:
                b = x[i].reshape(channels, plane)[:, r0 * wo : r1 * wo]
            else:
                b = np.empty((depth, width), x.dtype)
                im2col(x[i], b, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo)
            count = (width + 15) // 16
            panels = aligned_panels(count, depth)
            pack_panels(b, panels, 0, count)
            packed_product(w[m0:m1], panels, flat[i * m + m0 : i * m + m1, r0 * wo : r1 * wo],
                           width, _NO_BIAS32, _NEG, _POS, 0, count, 0, m1 - m0)  # fmt: skip
        elif pointwise:
            source = x.ctypes.data + (i * channels * plane + r0 * wo) * size
            blas(_ROW_MAJOR, _PLAIN, _PLAIN, m1 - m0, width, depth, one, weights, depth, source,
                 plane, zero, target, plane)  # fmt: skip
        else:
            cols = np.empty((depth, width), x.dtype)
            im2col(x[i], cols, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo)
            blas(_ROW_MAJOR, _PLAIN, _PLAIN, m1 - m0, width, depth, one, weights, depth,
                 cols.ctypes.data, width, zero, target, plane)  # fmt: skip
            _alive(cols)
        if codes.shape[0]:
            elementwise(flat, flat, False, full, i * m + m0, i * m + m1, r0 * wo, r1 * wo, m,
                        codes, with_full, params)  # fmt: skip


@njit(**_PARALLEL)
def conv_images(blas, x, w, y, kh, kw, sh, sw, dh, dw, pt, pl, chunk, codes, with_full, params,
                full, one, zero):  # fmt: skip
    """A 2-D convolution with one group of a batch of small images into ``y`` (N, M, Ho, Wo),
    ``chunk`` images at a time: their im2col columns, a GEMM per image and the epilogue
    program (as in ``conv_bands``) over the chunk's images, the chunks split over the
    threads."""
    n, m, ho, wo = y.shape
    depth = w.shape[1]
    plane = ho * wo
    size = x.itemsize
    flat = y.reshape(n * m, plane)
    for part in prange((n + chunk - 1) // chunk):
        n0 = part * chunk
        n1 = min(n, n0 + chunk)
        cols = np.empty((n1 - n0, depth, plane), x.dtype)
        im2col_images(x[n0:n1], cols, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo)
        for i in range(n0, n1):
            blas(_ROW_MAJOR, _PLAIN, _PLAIN, m, plane, depth, one, w.ctypes.data, depth,
                 cols.ctypes.data + (i - n0) * depth * plane * size, plane, zero,
                 y.ctypes.data + i * m * plane * size, plane)  # fmt: skip
        _alive(cols)
        if codes.shape[0]:
            elementwise(flat, flat, False, full, n0 * m, n1 * m, 0, plane, m, codes, with_full,
                        params)  # fmt: skip


@njit(**_PARALLEL)
def depthwise_bands(x, w, y, mult, sh, sw, dh, dw, top, left, bias, lo, hi, swish, parts):
    """``depthwise`` over ``parts`` bands of output channels."""
    for p in prange(parts):
        c0, c1 = _band(y.shape[1], parts, p)
        if c1 > c0:
            depthwise(x, w, y, c0, c1, mult, sh, sw, dh, dw, top, left, bias, lo, hi, swish)


@njit(**_PARALLEL)
def program_bands(y, source, copy_source, full, channels, codes, with_full, params, parts):
    """An epilogue program (see ``conv_bands``) over the rows of ``y`` (rows, width), in
    ``parts`` bands of rows."""
    rows, width = y.shape
    for p in prange(parts):
        r0, r1 = _band(rows, parts, p)
        if r1 > r0:
            elementwise(y, source, copy_source, full, r0, r1, 0, width, channels, codes,
                        with_full, params)  # fmt: skip


@njit(**_PARALLEL)
def depthwise_last_bands(xl, wl, yl, sh, sw, dh, dw, top, left, bias, lo, hi, y, parts,
                         swish=False):  # fmt: skip
    """``depthwise_channels_last`` over ``parts`` bands of output rows."""
    rows = yl.shape[0] * yl.shape[1]
    for p in prange(parts):
        r0, r1 = _band(rows, parts, p)
        if r1 > r0:
            depthwise_channels_last(xl, wl, yl, r0, r1, sh, sw, dh, dw, top, left, bias, lo, hi,
                                    y, swish)  # fmt: skip


@njit(**_PARALLEL)
def depthwise_tiles_bands(xl, wl, yl, top, left, bias, lo, hi, y, parts, swish=False):
    """``depthwise_last_tiles`` over ``parts`` bands of output rows or, where a band would have
    fewer rows than the kernel (it copies kh - 1 input rows more than its own) and there are
    blocks of 16 channels enough, bands of those blocks. On 2 threads, EfficientNet-B0's 5x5
    layers at 7x7 by channels took 0.75-0.8x their time by rows, with the Swish and the move
    to NCHW; at 14x14 1.1-1.2x (the Swish then goes pixel by pixel), so those stay by rows."""
    rows = yl.shape[0] * yl.shape[1]
    channels = yl.shape[3]
    blocks = (channels + 15) // 16
    by_channels = rows < wl.shape[0] * parts and blocks >= parts
    for p in prange(parts):
        if by_channels:
            b0, b1 = _band(blocks, parts, p)
            if b1 > b0:
                depthwise_last_tiles(xl, wl, yl, 0, rows, 16 * b0, min(channels, 16 * b1), top,
                                     left, bias, lo, hi, y, swish)  # fmt: skip
        else:
            r0, r1 = _band(rows, parts, p)
            if r1 > r0:
                depthwise_last_tiles(xl, wl, yl, r0, r1, 0, channels, top, left, bias, lo, hi, y,
                                     swish)  # fmt: skip


@njit(**_PARALLEL)
def row_means_bands(x, y, width, count, parts):
    """``row_means`` over ``parts`` bands of the rows."""
    for p in prange(parts):
        r0, r1 = _band(y.shape[0], parts, p)
        if r1 > r0:
            row_means(x, y, width, count, r0, r1)


@njit(**_PARALLEL)
def column_means_bands(x, means, count, parts):
    """``column_means`` over ``parts`` bands of the columns (in blocks of 16)."""
    blocks = (x.shape[2] + 15) // 16
    for p in prange(parts):
        b0, b1 = _band(blocks, parts, p)
        if b1 > b0:
            column_means(x, means, count, 16 * b0, min(x.shape[2], 16 * b1))


@njit(**_PARALLEL)
def by_columns_bands(x, values, y, parts):
    """``by_columns`` over ``parts`` bands of the pixels."""
    for p in prange(parts):
        r0, r1 = _band(x.shape[0] * x.shape[1], parts, p)
        if r1 > r0:
            by_columns(x, values, y, r0, r1)


@njit(**_PARALLEL)
def by_rows_bands(x, values, y, code, parts):
    """``by_rows`` over ``parts`` bands of the rows."""
    for p in prange(parts):
        r0, r1 = _band(x.shape[0], parts, p)
        if r1 > r0:
            by_rows(x, values, y, code, r0, r1)


@njit(**_PARALLEL)
def layer_norm_bands(x, scale, bias, y, mean, inv, width, consts, rows, parts):
    """``layer_norm`` over ``parts`` bands of its ``rows`` rows."""
    for p in prange(parts):
        r0, r1 = _band(rows, parts, p)
        if r1 > r0:
            layer_norm(x, scale, bias, y, mean, inv, width, consts, r0, r1)


@njit(**_PARALLEL)
def transpose_bands(x, y, parts):
    """y (P, C) = x (C, P) transposed, float32, both C-contiguous (an NCHW image's pixels by
    channels, as rows), over ``parts`` bands of y's rows: blocks of 8 x 8 by
    ``_jit_gemm.transpose_eight``, the edges value by value. (numpy's transposing copy ran at
    5-12 GB/s on one thread; a loop over tiles of 16 x 16 values at 6-9.)"""
    channels, pixels = x.shape
    source, target = x.reshape(-1), y.reshape(-1)
    width, span = np.uint64(channels), np.uint64(pixels)
    four = np.uint64(4)
    whole = channels - channels % 8
    blocks = (pixels + 7) // 8
    for p in prange(parts):
        b0, b1 = _band(blocks, parts, p)
        for b in range(b0, b1):
            q0, q1 = np.uint64(8 * b), np.uint64(min(pixels, 8 * b + 8))
            if q1 - q0 == 8:
                for c0 in range(0, whole, 8):
                    at = np.uint64(c0) * span + q0
                    to = q0 * width + np.uint64(c0)
                    transpose_eight(target.ctypes.data + to * four, width * four,
                                    source.ctypes.data + at * four, span * four)  # fmt: skip
                c_rest = np.uint64(whole)
            else:
                c_rest = np.uint64(0)
            for q in range(q0, q1):
                for c in range(c_rest, width):
                    target[q * width + c] = source[c * span + q]


@njit(**_PARALLEL)
def copy_bands(src, dst, parts):
    """dst = src (1-D, bytes) in ``parts`` bands (threads.copy)."""
    for p in prange(parts):
        a, b = _band(src.shape[0], parts, p)
        dst[a:b] = src[a:b]


@njit(**_PARALLEL)
def gather_bands(src, src_steps, dst, dst_steps, shape, parts):
    """``gather`` over ``parts`` bands of the first axis."""
    for p in prange(parts):
        r0, r1 = _band(shape[0], parts, p)
        if r1 > r0:
            gather(src, src_steps, dst, dst_steps, shape, r0, r1)


@njit(**_PARALLEL)
def resample_bands(x, y, rows, row_weights, cols, col_weights, parts):
    """``resample_planes`` over ``parts`` bands of the planes."""
    for p in prange(parts):
        p0, p1 = _band(x.shape[0], parts, p)
        if p1 > p0:
            resample_planes(x, y, rows, row_weights, cols, col_weights, p0, p1)


@njit(**_PARALLEL)
def lrn_bands(x, y, consts, below, above, root, parts):
    """``lrn`` over ``parts`` bands of the pixels."""
    for p in prange(parts):
        p0, p1 = _band(x.shape[2], parts, p)
        if p1 > p0:
            lrn(x, y, consts, below, above, root, p0, p1)


@njit(**_PARALLEL)
def rms_norm_bands(x, scale, y, width, consts, rows, parts):
    """``rms_norm`` over ``parts`` bands of its ``rows`` rows."""
    for p in prange(parts):
        r0, r1 = _band(rows, parts, p)
        if r1 > r0:
            rms_norm(x, scale, y, width, consts, r0, r1)


@njit(**_PARALLEL)
def pool2d_bands(x, y, code, kh, kw, sh, sw, dh, dw, pt, pl, finish, scale, parts):
    """``pool2d`` over ``parts`` bands of the planes of ``x`` (planes, H, W)."""
    for p in prange(parts):
        p0, p1 = _band(x.shape[0], parts, p)
        if p1 > p0:
            pool2d(x[p0:p1], y[p0:p1], code, kh, kw, sh, sw, dh, dw, pt, pl, finish, scale)


@njit(inline="always")
def _chunk(count, parts, p):
    """Band p of ``parts`` of ``count`` elements, cut at multiples of 64."""
    a, b = _band((count + 63) // 64, parts, p)
    return a * 64, min(count, b * 64)


@njit(**_PARALLEL)
def swish_bands(x, y, parts):
    """The Swish of the flat float32 ``x`` into ``y`` over ``parts`` bands, by vectors
    (``_jit_gemm.swish_vectors``)."""
    for p in prange(parts):
        a, b = _chunk(x.shape[0], parts, p)
        if b > a:
            swish_vectors(x, y, a, b - a)


@njit(**_PARALLEL)
def swish_in_place_bands(y, parts):
    """The Swish of the flat float32 ``y`` into itself over ``parts`` bands, by vectors
    (``_jit_gemm.swish_vectors``)."""
    for p in prange(parts):
        a, b = _chunk(y.shape[0], parts, p)
        if b > a:
            swish_vectors(y, y, a, b - a)


@njit(**_PARALLEL)
def gelu_bands(x, y, tanh, inner, outer, parts):
    """_jit_exp's Gelu of the flat float32 ``x`` into ``y`` over ``parts`` bands."""
    for p in prange(parts):
        a, b = _chunk(x.shape[0], parts, p)
        if b > a:
            scratch, bits = np.empty(CHUNK, np.float32), np.empty(CHUNK, np.int32)
            _gelu_chunks(x[a:b], y[a:b], scratch, bits, bits.view(np.float32), tanh, inner,
                         outer)  # fmt: skip


@njit(**_PARALLEL)
def softmax_bands(x, y, n, parts):
    """_jit_exp's softmax of the rows of ``n`` elements of the flat float32 ``x`` into ``y``,
    over ``parts`` bands of rows."""
    for p in prange(parts):
        r0, r1 = _band(x.shape[0] // n, parts, p)
        if r1 > r0:
            scratch, bits = np.empty(n, np.float32), np.empty(n, np.int32)
            softmax_rows(x[r0 * n : r1 * n], y[r0 * n : r1 * n], n, scratch, bits,
                         bits.view(np.float32))  # fmt: skip


@njit(**_PARALLEL)
def winograd_image(blas, padded, u, panels, v, products, y, tiles_h, tiles_w, parts, bias, lo,
                   hi, res, one, zero):  # fmt: skip
    """One image's Winograd F(2x2, 3x3) convolution (conv.conv_winograd) in three regions: the
    input transform of ``padded`` (C, ...) into ``v`` (16, C, tiles) by bands of channels, the
    16 products by bands of the 16, the output transform into ``y`` (M, Ho, Wo) by bands of
    output channels, with ``bias``, ``res`` and the bounds in its store (``winograd_output``).
    float32: each product's transpose, products[g]^T = v[g]^T U[g]^T, by onyx's GEMM on
    ``panels`` (16, M/16, C, 16: U[g]^T packed once, conv.winograd_panels), v[g]^T read as it
    lies and products[g] written transposed (``u`` unread); else (``panels`` empty) U[g] v[g]
    by BLAS."""
    channels, m, tiles = v.shape[1], products.shape[1], v.shape[2]
    size = v.itemsize
    for p in prange(parts):
        c0, c1 = _band(channels, parts, p)
        if c1 > c0:
            winograd_input(padded, v, tiles_h, tiles_w, c0, c1)
    own = panels.shape[0] == 16
    for p in prange(parts):
        g0, g1 = _band(16, parts, p)
        for g in range(g0, g1):
            if own:
                packed_product(v[g].T, panels[g], products[g].T, m, _NO_BIAS32, _NEG, _POS, 0,
                               panels.shape[1], 0, tiles)  # fmt: skip
            else:
                blas(_ROW_MAJOR, _PLAIN, _PLAIN, m, tiles, channels, one,
                     u.ctypes.data + g * m * channels * size, channels,
                     v.ctypes.data + g * channels * tiles * size, tiles, zero,
                     products.ctypes.data + g * m * tiles * size, tiles)  # fmt: skip
    for p in prange(parts):
        o0, o1 = _band(m, parts, p)
        if o1 > o0:
            winograd_output(products, y, tiles_w, o0, o1, bias, lo, hi, res)


@njit(**_PARALLEL)
def im2col_bands(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, parts):
    """``im2col`` of one image ``x`` (C, H, W), all output rows, into ``cols`` (C*kh*kw,
    ho*wo), by bands of input channels (each a contiguous block of rows of ``cols``)."""
    taps = kh * kw
    for p in prange(parts):
        c0, c1 = _band(x.shape[0], parts, p)
        if c1 > c0:
            im2col(x[c0:c1], cols[c0 * taps : c1 * taps], kh, kw, sh, sw, dh, dw, pt, pl, 0, ho,
                   wo)  # fmt: skip


@njit(**_PARALLEL)
def winograd_chunks(blas, x, u, y, pt, pl, tiles_h, tiles_w, chunk, codes, with_full, params,
                    full, one, zero):  # fmt: skip
    """Winograd F(2x2, 3x3) over a batch of small images (conv.conv_winograd_batched), ``chunk``
    images at a time, the chunks split over the threads: each chunk's images zero-padded side
    by side into one wide image, its input transform, the 16 GEMMs ``u`` (16, M, C) by it, the
    output transform, each image's outputs copied into ``y`` (N, M, Ho, Wo), then the epilogue
    program (as in ``conv_bands``) over the chunk while it is in cache."""
    n, channels, h, w = x.shape
    m, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    span = 2 * tiles_w + 2
    plane = ho * wo
    size = x.itemsize
    flat = y.reshape(n * m, plane)
    for part in prange((n + chunk - 1) // chunk):
        n0 = part * chunk
        n1 = min(n, n0 + chunk)
        b = n1 - n0
        wide_tiles = b * (tiles_w + 1) - 1
        tiles = tiles_h * wide_tiles
        padded = np.zeros((channels, 2 * tiles_h + 2, b * span), x.dtype)
        for c in range(channels):
            for k in range(b):
                for r in range(h):
                    padded[c, pt + r, k * span + pl : k * span + pl + w] = x[n0 + k, c, r]
        v = np.empty((16, channels, tiles), x.dtype)
        winograd_input(padded, v, tiles_h, wide_tiles, 0, channels)
        products = np.empty((16, m, tiles), x.dtype)
        for g in range(16):
            blas(_ROW_MAJOR, _PLAIN, _PLAIN, m, tiles, channels, one,
                 u.ctypes.data + g * m * channels * size, channels,
                 v.ctypes.data + g * channels * tiles * size, tiles, zero,
                 products.ctypes.data + g * m * tiles * size, tiles)  # fmt: skip
        _alive(v)
        _alive(products)
        wide = np.empty((m, 2 * tiles_h, 2 * wide_tiles), x.dtype)
        bounds = np.empty(2, x.dtype)  # (no bias, no bounds: the epilogue program follows)
        bounds[0], bounds[1] = -np.inf, np.inf
        winograd_output(products, wide, wide_tiles, 0, m, bounds[:0], bounds[0], bounds[1], None)
        for k in range(b):
            for o in range(m):
                for r in range(ho):
                    y[n0 + k, o, r, :] = wide[o, r, k * span : k * span + wo]
        if codes.shape[0]:
            elementwise(flat, flat, False, full, n0 * m, n1 * m, 0, plane, m, codes, with_full,
                        params)  # fmt: skip
