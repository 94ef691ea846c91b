"""onyx's own float32 GEMM for products by a weight packed once (imported only where numba is
installed; see compiled.py and threads.packed_weight).

C = A @ B + bias, clamped, where B (K, N) was packed into panels of 16 columns, (N/16, K, 16),
zero-padded to whole panels. Each tile of 6 rows of A by one panel keeps its 6 x 16 sums in
registers across all of K: per k, 6 values of A broadcast against the panel's 16, 96
multiply-adds for 16 + 6 loads; with AVX-512, by two panels (6 x 32 sums, 12 vectors: enough
independent chains for two FMA pipes), and rows that do not fill tiles of 6 in tiles of 7 (14
vectors) so that the tiles end at the last row (from 30 rows up); with AVX2, tiles of 4 rows
(``ROWS``: 6 spilled its 16 registers). numba has no way to declare registers; the tile is a small
array on the stack (``_tile``: an LLVM alloca), indexed only by constants once its loops are
unrolled, which LLVM then keeps in vector registers. (A tile allocated by np.empty lives in
the heap and stays in memory: 28 GFLOP/s against 112 in a trial while writing this, one
thread.)

OpenBLAS packs B anew at every call and reads it more than once; packed once here, with the
panels outermost, each weight panel comes from memory once per call while A's rows stream
through the cache. In a model, where each weight is read once a run and comes from memory,
that is where this wins: BERT-base's 48 products by 48 weights in one run took 118 ms on 2
threads against OpenBLAS's 139 (onnxruntime 104); cache-hot, one product at a time, it is
within 0.8-1.14x of OpenBLAS's speed (benchmarks/bench_matmul.py). Sums run in K's order with
fused multiply-adds, so results differ from BLAS's in the last bits.

The tiles' stores, and the Swish wherever onyx computes one (``swish_vectors``: the operator,
the fused ones of epilogues and depthwise kernels), are written as LLVM vector operations
(intrinsics: ``_store_row``, ``_store_transposed``, ``_vector_swish``), where the loop
vectorizer's forms cost as much as the products of a shallow layer (docs/runtime.md, "The
store").
"""

from __future__ import annotations

import llvmlite.binding
import llvmlite.ir
import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from onyx.runtime._jit_exp import (
    _BIAS,
    _C,
    _HALF,
    _HI,
    _LN2_HI,
    _LN2_LO,
    _LO,
    _LOG2E,
    _NEG_INF,
    _ONE,
    _ZERO,
    _exp_parts,
)

PANEL = 16  # columns of B per panel: one AVX-512 vector, two AVX2 ones
# two panels per tile where the CPU has AVX-512's 32 vector registers (6 x 32 sums take 12 of
# them; with AVX2's 16, 24 would spill)
WIDE = "+avx512f" in llvmlite.binding.get_host_cpu_features().flatten().split(",")
# rows of A per tile. With AVX2, 6 x 16 sums take 12 of the 16 vector registers, and LLVM
# loads a step's 6 broadcast values before its multiply-adds: 20 live vectors, spilled to the
# stack at every step (26-37 GFLOP/s on one core of a Zen 3, where 4 rows ran at 60-80 and
# OpenBLAS at 66-85). 4 x 16 sums, 4 broadcasts and the panel's 2 vectors fit.
ROWS = 6 if WIDE else 4
_OPTIONS = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "boundscheck": False,
    # reassociation and contraction (fused multiply-adds); no assumptions about NaN or inf
    "fastmath": {"nsz", "arcp", "contract", "reassoc"},
}


@intrinsic
def _tile(typingctx, size):
    """A pointer to ``size`` (a literal) float32s on the stack of the calling function, aligned
    to 64 bytes (a cache line: a 16-float row of it one AVX-512 load that does not straddle
    two lines; unaligned, _jit.depthwise_last_tiles took 1.2x its time)."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        kind = context.get_data_type(types.float32)
        pointer = cgutils.alloca_once(builder, kind, size=size.literal_value)
        pointer.align = 64
        return pointer

    return types.CPointer(types.float32)(size), codegen


@intrinsic
def lane_sums(typingctx, source, vectors, shift, squares, like):
    """The sum of the 16 * ``vectors`` values v at address ``source`` (of the element type of
    the array ``like``), or with ``squares`` (a literal 1) of (v - ``shift``)², in an order
    written out: value i into lane i % 16 of a vector kept in registers, then the lanes'
    upper half added to their lower half, down to one. The same bits wherever it is
    compiled: a sum left to LLVM's reassociation is ordered by each place's vectorizer, and a
    kernel and its copy inlined into a parallel one (``_jit_par``'s bands) summed rows a bit
    apart."""
    if not (isinstance(like, types.Array) and isinstance(squares, types.IntegerLiteral)):
        return None
    squared = bool(squares.literal_value)

    def codegen(context, builder, signature, args):
        source, vectors, shift = args[:3]
        kind = context.get_data_type(like.dtype)
        lanes = llvmlite.ir.VectorType(kind, _LANES)
        step = source.type(_LANES * context.get_abi_sizeof(kind))
        centre = _splat(builder, shift, lanes)
        sums = cgutils.alloca_once_value(builder, llvmlite.ir.Constant(lanes, [0.0] * _LANES))
        with cgutils.for_range(builder, vectors) as loop:
            at = builder.add(source, builder.mul(loop.index, step))
            v = builder.load(builder.inttoptr(at, lanes.as_pointer()), align=4)
            if squared:
                d = builder.fsub(v, centre)
                v = builder.fmul(d, d)
            builder.store(builder.fadd(builder.load(sums), v), sums)
        v = builder.load(sums)
        width = _LANES
        while width > 1:  # (halves added lane by lane: a tree of 4 adds, not a chain of 15)
            width //= 2
            v = builder.fadd(_shuffle(builder, v, v, range(width)),
                             _shuffle(builder, v, v, range(width, 2 * width)))  # fmt: skip
        return builder.extract_element(v, _I32(0))

    return like.dtype(source, vectors, like.dtype, squares, like), codegen


@intrinsic
def _as_float(typingctx, bits):
    """The float32 whose bits are the low 32 of the integer ``bits`` (a bit cast, which LLVM
    vectorizes)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], llvmlite.ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, context.get_data_type(types.float32))

    return types.float32(bits), codegen


_LANES = 16
_I32 = llvmlite.ir.IntType(32)


def _floats(lanes):
    return llvmlite.ir.VectorType(llvmlite.ir.FloatType(), lanes)


_VECTOR = _floats(_LANES)


def _splat(builder, value, kind=_VECTOR):
    """A vector of ``kind`` with ``value`` (a float32 value or a Python float) in every lane."""
    if not isinstance(value, llvmlite.ir.Value):
        return llvmlite.ir.Constant(kind, [float(value)] * kind.count)
    one = builder.insert_element(llvmlite.ir.Constant(kind, None), value, _I32(0))
    lanes = llvmlite.ir.VectorType(_I32, kind.count)
    return builder.shuffle_vector(one, one, llvmlite.ir.Constant(lanes, [0] * kind.count))


def _shuffle(builder, a, b, mask):
    """LLVM's shufflevector: lanes of a then b, picked by ``mask``."""
    lanes = list(mask)
    kind = llvmlite.ir.VectorType(_I32, len(lanes))
    return builder.shuffle_vector(a, b, llvmlite.ir.Constant(kind, lanes))


def _load(builder, address, lanes):
    """``lanes`` float32s at the integer ``address``."""
    return builder.load(builder.inttoptr(address, _floats(lanes).as_pointer()), align=4)


def _store_at(builder, value, address):
    builder.store(value, builder.inttoptr(address, value.type.as_pointer()), align=4)


def _plus_if(builder, condition, v, make, *args):
    """v + make(*args) where ``condition`` (an i1) holds, else v: the addend's loads only
    then."""
    before = builder.basic_block
    with builder.if_then(condition):
        summed = builder.fadd(v, make(*args))
        then = builder.basic_block
    merged = builder.phi(v.type)
    merged.add_incoming(summed, then)
    merged.add_incoming(v, before)
    return merged


def _given(builder, address):
    return builder.icmp_unsigned("!=", address, address.type(0))


def _finished(builder, v, lo, hi, swish):
    """v clamped to [lo, hi] as ``_store`` clamps, then through ``_swish`` where ``swish``."""
    low, high = _splat(builder, lo, v.type), _splat(builder, hi, v.type)
    v = builder.select(builder.fcmp_ordered("<", v, low), low, v)
    v = builder.select(builder.fcmp_ordered(">", v, high), high, v)
    return _vector_swish(builder, v) if swish else v


@intrinsic
def _store_row(typingctx, target, tile, at, shift, lo, hi, added, residual, vectors, swish):
    """One row of a tile stored as whole vectors: the float32s at address ``target`` =
    tile[at : at + 16 * vectors] + ``shift`` (+ the 16 * vectors float32s at address ``added``,
    a bias by column, and at ``residual``; each only where its address is not 0), clamped to
    [lo, hi] as ``_store`` clamps, then through ``_swish`` where ``swish`` (1). ``vectors``
    (1 or 2) and ``swish`` are literals. Written as LLVM vector operations: numba leaves LLVM's
    SLP vectorizer off, and the loop vectorizer's form of ``_store`` spent ~20 cycles a row on
    its run-time checks, about what 16 terms of products take (docs/runtime.md)."""
    if not (isinstance(vectors, types.IntegerLiteral) and isinstance(swish, types.IntegerLiteral)):
        return None
    count, with_swish = vectors.literal_value, bool(swish.literal_value)
    sig = types.void(types.intp, types.CPointer(types.float32), types.intp, types.float32,
                     types.float32, types.float32, types.intp, types.intp, vectors, swish)  # fmt: skip

    def codegen(context, builder, signature, args):
        target, tile, at, shift, lo, hi, added, residual = args[:8]
        for part in range(count):
            place = builder.gep(tile, [builder.add(at, at.type(_LANES * part))])
            v = builder.load(builder.bitcast(place, _VECTOR.as_pointer()), align=4)
            v = builder.fadd(v, _splat(builder, shift))
            bytes_in = 4 * _LANES * part
            for address in (added, residual):
                at_part = builder.add(address, address.type(bytes_in))
                v = _plus_if(builder, _given(builder, address), v, _load, builder, at_part, _LANES)
            v = _finished(builder, v, lo, hi, with_swish)
            _store_at(builder, v, builder.add(target, target.type(bytes_in)))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _store_transposed(typingctx, target, step, tile, at, lo, hi, added, residual, apart, halves,
                      swish, height):  # fmt: skip
    """A tile of ``height`` rows (6, or 4: ``ROWS``) by 16 * ``halves`` sums (at ``tile[at:]``)
    stored transposed: column j's ``height`` values, + the bias by column at ``added``, + the
    residual's (column j at ``residual + j * apart``, laid out as the target), clamped, through
    ``_swish`` where ``swish`` (1), at address ``target + j * step``, ``height`` float32s in a
    row (a convolution's planes, pixels along them). The rows are transposed in registers by two
    rounds of two-vector shuffles (per 16 columns: 4 vectors of 4 columns by rows 0-3, 2 of 8
    columns by rows 4-5) and stored 4 + 2 values per column (4 rows: 4), 32 stores per 16
    columns where a loop stores each value alone (96).
    ``added``, ``residual``: 0 where there is none; ``halves`` (1 or 2), ``swish`` and
    ``height`` are literals."""
    literals = (halves, swish, height)
    if not all(isinstance(v, types.IntegerLiteral) for v in literals):
        return None
    count, with_swish, tall = halves.literal_value, bool(swish.literal_value), height.literal_value
    sig = types.void(types.intp, types.intp, types.CPointer(types.float32), types.intp,
                     types.float32, types.float32, types.intp, types.intp, types.intp, halves,
                     swish, height)  # fmt: skip

    def codegen(context, builder, signature, args):
        target, step, tile, at, lo, hi, added, residual, apart = args[:9]
        summed = _given(builder, residual)

        def column_at(base, stride, j, extra=0):
            return builder.add(builder.add(base, builder.mul(stride, stride.type(j))),
                               base.type(extra))  # fmt: skip

        def residual_lanes(first, columns, pixel, lanes):
            # (the residual's columns first..first + columns, ``lanes`` pixels each from
            # ``pixel``, in the order of the transposed vector: concatenated pairwise)
            parts = [_load(builder, column_at(residual, apart, first + j, 4 * pixel), lanes)
                     for j in range(columns)]  # fmt: skip
            while len(parts) > 1:
                width = 2 * parts[0].type.count
                parts = [_shuffle(builder, parts[k], parts[k + 1], range(width))
                         for k in range(0, len(parts), 2)]  # fmt: skip
            return parts[0]

        for half in range(count):
            # (the bias by column once for the 6 rows: zeros without one, as _store adds)
            columns = builder.add(added, added.type(4 * _LANES * half))
            bias = _plus_if(builder, _given(builder, added), _splat(builder, 0.0), _load, builder,
                            columns, _LANES)  # fmt: skip
            rows = []
            for r in range(tall):
                offset = at.type(r * _LANES * count + _LANES * half)
                place = builder.gep(tile, [builder.add(at, offset)])
                v = builder.load(builder.bitcast(place, _VECTOR.as_pointer()), align=4)
                rows.append(builder.fadd(v, bias))
            # rows r, r + 1 interleaved: (columns 0-7, columns 8-15), each column's 2 values
            pairs = [
                tuple(_shuffle(builder, rows[r], rows[r + 1],
                               [x for j in range(8 * h, 8 * h + 8) for x in (j, _LANES + j)])
                      for h in (0, 1))
                for r in range(0, tall, 2)
            ]  # fmt: skip
            # rows 0-3 of 4 columns a vector: columns 0-3, 4-7 (of the first pair's half), ...
            fours = [
                _shuffle(builder, pairs[0][h], pairs[1][h],
                         [x for j in range(4 * q, 4 * q + 4)
                          for x in (2 * j, 2 * j + 1, _LANES + 2 * j, _LANES + 2 * j + 1)])
                for h in (0, 1) for q in (0, 1)
            ]  # fmt: skip
            first = _LANES * half
            fours = [
                _finished(builder, _plus_if(builder, summed, v, residual_lanes, first + 4 * g,
                                            4, 0, 4), lo, hi, with_swish)
                for g, v in enumerate(fours)
            ]  # fmt: skip
            twos = [
                _finished(builder, _plus_if(builder, summed, pairs[2][h], residual_lanes,
                                            first + 8 * h, 8, 4, 2), lo, hi, with_swish)
                for h in (0, 1)
            ] if tall == 6 else []  # fmt: skip
            for j in range(_LANES):
                address = column_at(target, step, first + j)
                q, e = j // 4, j % 8
                four = _shuffle(builder, fours[q], fours[q], range(4 * (j % 4), 4 * (j % 4) + 4))
                _store_at(builder, four, address)
                if twos:
                    two = _shuffle(builder, twos[j // 8], twos[j // 8], (2 * e, 2 * e + 1))
                    _store_at(builder, two, builder.add(address, address.type(16)))
        return context.get_dummy_value()

    return sig, codegen


def _vector_swish(builder, v):
    """LLVM operations for ``_swish`` of a vector ``v`` (the same steps; fused multiply-adds
    where its scalar form lets LLVM contract)."""
    kind = v.type
    name = f"v{kind.count}f32"
    three = llvmlite.ir.FunctionType(kind, [kind] * 3)
    fma = cgutils.get_or_insert_function(builder.module, three, f"llvm.fma.{name}")
    floor = cgutils.get_or_insert_function(builder.module, llvmlite.ir.FunctionType(kind, [kind]),
                                           f"llvm.floor.{name}")  # fmt: skip

    def const(x):
        return _splat(builder, x, kind)

    t = builder.fsub(const(-0.0), v)
    t = builder.select(builder.fcmp_ordered(">", t, const(_LO)), t, const(_LO))
    t = builder.select(builder.fcmp_ordered("<", t, const(_HI)), t, const(_HI))
    k = builder.call(floor, [builder.call(fma, [t, const(_LOG2E), const(_HALF)])])
    r = builder.call(fma, [builder.fsub(const(-0.0), k), const(_LN2_HI), t])
    r = builder.call(fma, [builder.fsub(const(-0.0), k), const(_LN2_LO), r])
    poly = const(_C[7])
    for c in reversed(_C[:7]):
        poly = builder.call(fma, [poly, r, const(c)])
    ints = llvmlite.ir.VectorType(_I32, kind.count)
    exponent = llvmlite.ir.Constant(ints, [int(_BIAS)] * kind.count)
    bits = builder.add(builder.fptosi(k, ints), exponent)
    bits = builder.shl(bits, llvmlite.ir.Constant(ints, [23] * kind.count))
    q = builder.fdiv(v, builder.call(fma, [poly, builder.bitcast(bits, kind), const(_ONE)]))
    return builder.select(builder.fcmp_ordered("==", v, const(_NEG_INF)), const(float("nan")), q)


@intrinsic
def _swish_from(typingctx, target, source):
    """The 16 float32s at address ``source`` through ``_swish`` into the 16 at ``target`` (the
    same address: in place), as one vector."""

    def codegen(context, builder, signature, args):
        target, source = args
        _store_at(builder, _vector_swish(builder, _load(builder, source, _LANES)), target)
        return context.get_dummy_value()

    return types.void(types.intp, types.intp), codegen


TAP_VECTORS = 4  # output vectors per call of ``nine_taps_vectors``: 64 outputs


def _kernel_row_taps(builder, stride, runs, odd, v):
    """Output vector v's three taps of one kernel row for ``nine_taps_vectors`` (its ``kind``
    as ``stride``), from the row's loaded vectors ``runs`` (and ``odd``, the odd phase's)."""
    if stride == 3:
        a, b = runs[2 * v], runs[2 * v + 1]
        even = _shuffle(builder, a, b, range(0, 32, 2))
        return (even, _shuffle(builder, a, b, range(1, 32, 2)),
                _shuffle(builder, even, runs[2 * v + 2], [*range(1, 16), 16]))  # fmt: skip
    a, b = runs[v], runs[v + 1]
    if stride == 1:
        return a, _shuffle(builder, a, b, range(1, 17)), _shuffle(builder, a, b, range(2, 18))
    return a, odd[v], _shuffle(builder, a, b, range(1, 17))


@intrinsic
def nine_taps_vectors(typingctx, target, rows, weights, kind):
    """64 outputs of a 3x3 depthwise convolution at address ``target``: each the sum over its
    nine taps of tap value times weight, in tap order (the first product, then each added:
    ``_jit._nine_taps``'s order, so the same bits), the nine weights float32s at address
    ``weights``. ``rows`` (a UniTuple of 6 addresses): per kernel row i, where its taps' runs
    start, ``rows[2i]`` and ``rows[2i + 1]``; ``kind`` (a literal) says where each tap lies:
    1, stride 1: taps (i, 0), (i, 1), (i, 2) at rows[2i] + 0, 1, 2 floats; 2, stride 2 over
    two column phases: (i, 0) at rows[2i] (the even phase), (i, 1) at rows[2i + 1] (the odd),
    (i, 2) at rows[2i] + 1; 3, stride 2 in the input row itself: output k's taps (i, 0),
    (i, 1), (i, 2) at rows[2i] + 2k, 2k + 1, 2k + 2 floats, cut from pairs of vectors by
    shuffles (their even lanes, their odd ones, the even ones one on), which reads 2 * 64 + 16
    floats from rows[2i] on.

    A tap one or two floats on from another is not loaded again: it is cut from the two
    vectors that hold it by a shuffle, so each kernel row costs one aligned-or-not load per
    vector (and one past the end) instead of three loads, most of them straddling two cache
    lines; 1.8x the taps' loop in _nine_taps on MobileNetV2's 56x56 planes (scratch timing:
    1.5 against 2.8 ns per vector)."""
    if not isinstance(kind, types.IntegerLiteral):
        return None
    stride = kind.literal_value
    count = TAP_VECTORS

    def codegen(context, builder, signature, args):
        target, rows, weights = args[:3]
        bases = [builder.extract_value(rows, k) for k in range(6)]
        at = [builder.add(weights, weights.type(4 * e)) for e in range(9)]
        one = llvmlite.ir.FloatType().as_pointer()
        scale = [_splat(builder, builder.load(builder.inttoptr(a, one), align=4)) for a in at]
        sums = [None] * count
        for i in range(3):
            first, other = bases[2 * i], bases[2 * i + 1]
            loaded = 2 * count + 1 if stride == 3 else count + 1
            runs = [_load(builder, builder.add(first, first.type(4 * _LANES * k)), _LANES)
                    for k in range(loaded)]  # fmt: skip
            odd = [] if stride != 2 else [
                _load(builder, builder.add(other, other.type(4 * _LANES * k)), _LANES)
                for k in range(count)]  # fmt: skip
            for v in range(count):
                for j, tap in enumerate(_kernel_row_taps(builder, stride, runs, odd, v)):
                    product = builder.fmul(tap, scale[3 * i + j])
                    sums[v] = product if sums[v] is None else builder.fadd(sums[v], product)
        for v in range(count):
            _store_at(builder, sums[v], builder.add(target, target.type(4 * _LANES * v)))
        return context.get_dummy_value()

    sig = types.void(types.intp, types.UniTuple(types.intp, 6), types.intp, kind)
    return sig, codegen


@intrinsic
def square_taps_tile(typingctx, target, step, source, line, weights, bias, lo, hi, size, pixels):
    """``pixels`` outputs (a literal) of a ``size`` x ``size`` (a literal) stride-1 depthwise
    convolution by 16 channels, channel-last, each in registers across all its taps: output g's
    16 float32s go to address ``target`` + g * ``step``; its tap (i, j) is the 16 float32s at
    ``source`` + i * ``line`` + 64 (g + j), tap e's weights the 16 at ``weights`` + 64 e. Summed
    in tap order (the first product, then each added), then plus the 16 at ``bias`` (where not
    0), clamped to [lo, hi]: _jit.depthwise_last_tiles's sums and order, so its bits. A kernel
    row's inputs are loaded once for the outputs that share them."""
    if not (isinstance(size, types.IntegerLiteral) and isinstance(pixels, types.IntegerLiteral)):
        return None
    k, count = size.literal_value, pixels.literal_value
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
                     types.float32, types.float32, size, pixels)  # fmt: skip

    def codegen(context, builder, signature, args):
        target, step, source, line, weights, bias, lo, hi = args[:8]
        sums = [None] * count
        for i in range(k):
            start = builder.add(source, builder.mul(line, line.type(i)))
            runs = [_load(builder, builder.add(start, start.type(4 * _LANES * q)), _LANES)
                    for q in range(count + k - 1)]  # fmt: skip
            for j in range(k):
                at = builder.add(weights, weights.type(4 * _LANES * (k * i + j)))
                scale = _load(builder, at, _LANES)
                for g in range(count):
                    product = builder.fmul(runs[g + j], scale)
                    sums[g] = product if sums[g] is None else builder.fadd(sums[g], product)
        for g in range(count):
            v = _plus_if(builder, _given(builder, bias), sums[g], _load, builder, bias, _LANES)
            v = _finished(builder, v, lo, hi, False)
            _store_at(builder, v, builder.add(target, builder.mul(step, step.type(g))))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def transpose_eight(typingctx, target, step, source, stride):
    """The 8 x 8 float32s whose rows start at address ``source`` + i * ``stride`` (bytes), stored
    transposed: row j (the sources' j-th values) at ``target`` + j * ``step``. Written as three
    stages of two-vector shuffles, the shapes AVX2's unpack, shuffle and lane-permute
    instructions take."""

    def codegen(context, builder, signature, args):
        target, step, source, stride = args
        rows = [_load(builder, builder.add(source, builder.mul(stride, stride.type(i))), 8)
                for i in range(8)]  # fmt: skip
        low, high = (0, 8, 1, 9, 4, 12, 5, 13), (2, 10, 3, 11, 6, 14, 7, 15)
        pairs = [_shuffle(builder, rows[i], rows[i + 1], mask)
                 for i in range(0, 8, 2) for mask in (low, high)]  # fmt: skip
        even, odd = (0, 1, 8, 9, 4, 5, 12, 13), (2, 3, 10, 11, 6, 7, 14, 15)
        quads = []
        for i in (0, 4):  # (rows 0-3, then 4-7)
            for half in (0, 1):  # (columns 0|4 and 1|5 from the low pairs; 2|6, 3|7 the high)
                a, b = pairs[i + half], pairs[i + half + 2]
                quads += [_shuffle(builder, a, b, even), _shuffle(builder, a, b, odd)]
        # quads[k]: columns k and k + 4 of rows 0-3 (k < 4), of rows 4-7 (k >= 4)
        first, second = (0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)
        for k in range(4):
            for j, lanes in ((k, first), (k + 4, second)):
                v = _shuffle(builder, quads[k], quads[k + 4], lanes)
                _store_at(builder, v, builder.add(target, builder.mul(step, step.type(j))))
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp, types.intp), codegen


@intrinsic
def copy_vector(typingctx, target, source):
    """The 16 float32s at address ``source`` to address ``target`` (0: zeros)."""

    def codegen(context, builder, signature, args):
        target, source = args
        zeros = llvmlite.ir.Constant(_VECTOR, [0.0] * _LANES)
        v = _plus_if(builder, _given(builder, source), zeros, _load, builder, source, _LANES)
        _store_at(builder, v, target)
        return context.get_dummy_value()

    return types.void(types.intp, types.intp), codegen


@intrinsic
def _address(typingctx, pointer):
    """The address of a ``_tile`` as an integer."""
    if not isinstance(pointer, types.CPointer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], context.get_value_type(types.intp))

    return types.intp(pointer), codegen


@njit(inline="always")
def swish_vectors(x, y, at, n):
    """y[at:at + n] = Swish of x[at:at + n] (flat float32 arrays, or the same one: in place)
    by vectors of 16, the last values too, through a vector on the stack: every value the same
    bits wherever it lies in a run (a fused Swish gives what the Swish operator gives). One
    pass, the division and the exponential's steps on whole vectors: 1.8x as fast as the loop
    it replaced, which made two over a scratch array for LLVM to vectorize."""
    four = np.uint64(4)
    start = np.uint64(at) * four
    source, target = x.ctypes.data + start, y.ctypes.data + start
    whole = np.uint64(n) // np.uint64(_LANES) * np.uint64(_LANES)
    for i in range(np.uint64(0), whole, np.uint64(_LANES)):
        _swish_from(target + i * four, source + i * four)
    rest = np.uint64(n) - whole
    if rest:
        place = _tile(16)
        last = numba.carray(place, (16,))
        first = np.uint64(at) + whole
        for i in range(np.uint64(16)):
            last[i] = x[first + i] if i < rest else np.float32(0)
        _swish_from(_address(place), _address(place))
        for i in range(rest):
            y[first + i] = last[i]


@njit(**_OPTIONS)
def swish_flat(x, y):
    """y = Swish of x, flat float32 arrays (``swish_vectors``)."""
    swish_vectors(x, y, 0, x.shape[0])


def swish(x: np.ndarray) -> np.ndarray:
    """x · sigmoid(x) of a C-contiguous float32 array."""
    y = np.empty_like(x)
    swish_flat(x.reshape(-1), y.reshape(-1))
    return y


@njit(inline="always")
def _swish(v):
    """v / (1 + exp(-v)) of a float32 by _jit_exp's exponential (held to [-87, 88]; -inf gives
    NaN as numpy's does), one value: the stores of partial tiles apply it (whole vectors go
    through ``_vector_swish``, the same steps)."""
    t = -v
    t = t if t > _LO else _LO  # noqa: FURB136 (selects LLVM vectorizes)
    t = t if t < _HI else _HI  # noqa: FURB136
    poly, bits = _exp_parts(t)
    q = v / (_ONE + poly * _as_float(bits))
    return v * _ZERO if v == _NEG_INF else q


def _term(a, i, t):
    """A[i, t] of ``packed_product``'s left operand ``a`` (see _term_of)."""


def _shape(a):
    """(rows, depth) of ``packed_product``'s left operand ``a`` (see _term_of)."""


@overload(_term, inline="always")
def _term_of(a, i, t):
    """A is a 2-D array, or a convolution's patches read where they lie, never copied: a tuple
    (x, pixels, terms) of the flat input (padded) and two uint64 offset arrays, A[i, t] =
    x[pixels[i] + terms[t]] (output pixel i's first tap; term t's channel and tap)."""
    if isinstance(a, types.Array):
        return lambda a, i, t: a[i, t]
    return lambda a, i, t: a[0][a[1][i] + a[2][t]]


@overload(_shape, inline="always")
def _shape_of(a):
    if isinstance(a, types.Array):
        return lambda a: a.shape
    return lambda a: (a[1].shape[0], a[2].shape[0])


@njit(**_OPTIONS)
def packed_product(a, panels, c, n, bias, lo, hi, p0, p1, r0, r1, swish=False, res=None):
    """c[r0:r1, 16*p0 : min(n, 16*p1)] = a[r0:r1] @ B + bias, clamped to [lo, hi] (then its
    Swish where ``swish``), for float32 ``a`` (M, K) of any strides (or a convolution's patches
    where they lie: ``_term_of``), B packed into ``panels`` (N/16, K, 16), ``c`` (M, N) of unit
    column stride, ``bias`` (N,) or empty; with ``res`` (laid out as ``c``), res added after
    the bias, before the bounds (a residual connection's Add). The last tile of rows reads A's
    last row again in place of the missing ones and stores only its own. With AVX-512
    (``WIDE``), panels go two at a time (``_pair_tiles``), any last one alone
    (``_panel_tiles``)."""
    p = p0
    if WIDE:
        while p + 2 <= p1:
            _pair_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res)
            p += 2
    while p < p1:
        _panel_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res)
        p += 1


@njit(inline="always")
def _store(place, acc, c, bias, lo, hi, i, rows, first, width, with_bias, by_row=False,
           swish=False, res=None):  # fmt: skip
    """Rows [i, i + rows) of c, columns [first, first + width), from the tile ``acc`` (at
    ``place``): plus the bias (one per column, or per row ``by_row``), plus ``res`` where given
    (an array laid out as c; None is compiled away), clamped, then its Swish where ``swish``
    (in registers: no pass over the result after). A tile as wide as its sums goes as whole
    vectors: into rows of unit stride row by row (``_store_row``), a whole tile of ``ROWS`` rows
    into c's columns (a transposed view: a convolution's planes) transposed in registers
    (``_store_transposed``). Any other (the last rows or columns of a product) by a loop whose
    bounds come at run time and whose indices are unsigned, so that LLVM vectorizes what it can
    (a loop of a constant 16 or 32 was unrolled into scalar stores: 5-12x the time)."""
    zero = np.float32(0)
    size = c.itemsize
    if (
        width == acc.shape[1]
        and c.strides[1] == size
        and (res is None or res.strides[1] == size)
        and (not with_bias or bias.strides[0] == size)
    ):
        at = np.uint64(first) * np.uint64(size)
        added = bias.ctypes.data + at if with_bias and not by_row else 0
        for r in range(rows):
            target = c.ctypes.data + (i + r) * c.strides[0] + at
            shift = bias[i + r] if with_bias and by_row else zero
            summed = 0 if res is None else res.ctypes.data + (i + r) * res.strides[0] + at
            if acc.shape[1] == 2 * _LANES:
                if swish:
                    _store_row(target, place, r * 2 * _LANES, shift, lo, hi, added, summed, 2, 1)
                else:
                    _store_row(target, place, r * 2 * _LANES, shift, lo, hi, added, summed, 2, 0)
            elif swish:
                _store_row(target, place, r * _LANES, shift, lo, hi, added, summed, 1, 1)
            else:
                _store_row(target, place, r * _LANES, shift, lo, hi, added, summed, 1, 0)
        return
    if (
        rows == ROWS == acc.shape[0]
        and width == acc.shape[1]
        and not by_row
        and c.strides[0] == size
        and (res is None or res.strides[0] == size)
        and (not with_bias or bias.strides[0] == size)
    ):
        step = c.strides[1]
        target = c.ctypes.data + i * size + first * step
        added = bias.ctypes.data + first * size if with_bias else 0
        apart = 0 if res is None else res.strides[1]
        summed = 0 if res is None else res.ctypes.data + i * size + first * apart
        if acc.shape[1] == 2 * _LANES:
            if swish:
                _store_transposed(target, step, place, 0, lo, hi, added, summed, apart, 2, 1,
                                  ROWS)  # fmt: skip
            else:
                _store_transposed(target, step, place, 0, lo, hi, added, summed, apart, 2, 0,
                                  ROWS)  # fmt: skip
        elif swish:
            _store_transposed(target, step, place, 0, lo, hi, added, summed, apart, 1, 1,
                              ROWS)  # fmt: skip
        else:
            _store_transposed(target, step, place, 0, lo, hi, added, summed, apart, 1, 0,
                              ROWS)  # fmt: skip
        return
    j0, j1 = np.uint64(first), np.uint64(first + width)
    for r in range(rows):
        row = c[i + r]
        sums = acc[r]
        shift = bias[i + r] if with_bias and by_row else zero
        for j in range(j0, j1):
            v = sums[j - j0] + (bias[j] if with_bias and not by_row else shift)
            if res is not None:
                v += res[i + r, j]
            v = lo if v < lo else v  # noqa: FURB136 (a select LLVM vectorizes)
            v = hi if v > hi else v  # noqa: FURB136
            row[j] = _swish(v) if swish else v


@njit(inline="always")
def _panel_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res):
    """Rows r0..r1 by panel p, in tiles of ``ROWS`` rows by the panel's 16 columns (each value
    stored through a Swish where ``swish``)."""
    if ROWS == 4:
        _four_row_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res)
        return
    k = _shape(a)[1]
    last = r1 - 1
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    first = p * PANEL
    width = min(PANEL, n - first)
    for i in range(r0, r1, ROWS):
        rows = min(ROWS, r1 - i)
        i1, i2, i3 = min(i + 1, last), min(i + 2, last), min(i + 3, last)
        i4, i5 = min(i + 4, last), min(i + 5, last)
        place = _tile(96)
        acc = numba.carray(place, (6, 16))
        for r in range(6):
            for j in range(16):
                acc[r, j] = zero
        for t in range(k):
            a0, a1, a2 = _term(a, i, t), _term(a, i1, t), _term(a, i2, t)
            a3, a4, a5 = _term(a, i3, t), _term(a, i4, t), _term(a, i5, t)
            for j in range(16):
                w = panels[p, t, j]
                acc[0, j] += a0 * w
                acc[1, j] += a1 * w
                acc[2, j] += a2 * w
                acc[3, j] += a3 * w
                acc[4, j] += a4 * w
                acc[5, j] += a5 * w
        _store(place, acc, c, bias, lo, hi, i, rows, first, width, with_bias, False, swish, res)


@njit(inline="always")
def _four_row_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res):
    """``_panel_tiles`` in tiles of 4 rows (AVX2: ``ROWS``), the same sums in the same order."""
    k = _shape(a)[1]
    last = r1 - 1
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    first = p * PANEL
    width = min(PANEL, n - first)
    for i in range(r0, r1, 4):
        rows = min(4, r1 - i)
        i1, i2, i3 = min(i + 1, last), min(i + 2, last), min(i + 3, last)
        place = _tile(64)
        acc = numba.carray(place, (4, 16))
        for r in range(4):
            for j in range(16):
                acc[r, j] = zero
        for t in range(k):
            a0, a1, a2, a3 = _term(a, i, t), _term(a, i1, t), _term(a, i2, t), _term(a, i3, t)
            for j in range(16):
                w = panels[p, t, j]
                acc[0, j] += a0 * w
                acc[1, j] += a1 * w
                acc[2, j] += a2 * w
                acc[3, j] += a3 * w
        _store(place, acc, c, bias, lo, hi, i, rows, first, width, with_bias, False, swish, res)


@njit(inline="always")
def _pair_tiles(a, panels, c, n, bias, lo, hi, p, r0, r1, swish, res):
    """Rows r0..r1 by panels p and p + 1, in tiles of 6 rows by 32 columns: 12 vectors of sums,
    what keeps AVX-512's two FMA pipes busy (6 wait on their latency: with one panel, BERT-base
    and GPT-2 took 1.25-1.3x their time on a Zen 5, docs/runtime.md), the same sums in the
    same order."""
    k = _shape(a)[1]
    last = r1 - 1
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    first = p * PANEL
    width = min(2 * PANEL, n - first)
    sevens = _sevens(r1 - r0)
    for i in range(r0, r1 - 7 * sevens, ROWS):
        rows = min(ROWS, r1 - i)
        i1, i2, i3 = min(i + 1, last), min(i + 2, last), min(i + 3, last)
        i4, i5 = min(i + 4, last), min(i + 5, last)
        place = _tile(192)
        acc = numba.carray(place, (6, 32))
        for r in range(6):
            for j in range(32):
                acc[r, j] = zero
        for t in range(k):
            a0, a1, a2 = _term(a, i, t), _term(a, i1, t), _term(a, i2, t)
            a3, a4, a5 = _term(a, i3, t), _term(a, i4, t), _term(a, i5, t)
            # (written out, as in _panel_tiles: constant indices keep the tile in registers)
            for j in range(16):
                w0, w1 = panels[p, t, j], panels[p + 1, t, j]
                acc[0, j] += a0 * w0
                acc[0, 16 + j] += a0 * w1
                acc[1, j] += a1 * w0
                acc[1, 16 + j] += a1 * w1
                acc[2, j] += a2 * w0
                acc[2, 16 + j] += a2 * w1
                acc[3, j] += a3 * w0
                acc[3, 16 + j] += a3 * w1
                acc[4, j] += a4 * w0
                acc[4, 16 + j] += a4 * w1
                acc[5, j] += a5 * w0
                acc[5, 16 + j] += a5 * w1
        _store(place, acc, c, bias, lo, hi, i, rows, first, width, with_bias, False, swish, res)
    for i in range(r1 - 7 * sevens, r1, 7):
        place7 = _tile(224)
        acc7 = numba.carray(place7, (7, 32))
        for r in range(7):
            for j in range(32):
                acc7[r, j] = zero
        for t in range(k):
            a0, a1 = _term(a, i, t), _term(a, i + 1, t)
            a2, a3 = _term(a, i + 2, t), _term(a, i + 3, t)
            a4, a5, a6 = _term(a, i + 4, t), _term(a, i + 5, t), _term(a, i + 6, t)
            for j in range(16):
                w0, w1 = panels[p, t, j], panels[p + 1, t, j]
                acc7[0, j] += a0 * w0
                acc7[0, 16 + j] += a0 * w1
                acc7[1, j] += a1 * w0
                acc7[1, 16 + j] += a1 * w1
                acc7[2, j] += a2 * w0
                acc7[2, 16 + j] += a2 * w1
                acc7[3, j] += a3 * w0
                acc7[3, 16 + j] += a3 * w1
                acc7[4, j] += a4 * w0
                acc7[4, 16 + j] += a4 * w1
                acc7[5, j] += a5 * w0
                acc7[5, 16 + j] += a5 * w1
                acc7[6, j] += a6 * w0
                acc7[6, 16 + j] += a6 * w1
        _store(place7, acc7, c, bias, lo, hi, i, 7, first, width, with_bias, False, swish, res)


@njit(inline="always")
def _sevens(m):
    """How many tiles of 7 rows, with the rest in whole tiles of 6, cover ``m`` rows exactly
    (every m from 30 up; 0 where m is a multiple of 6 or no such split exists): a last tile of 6
    that overhangs computes rows for nothing (128 rows: 22 tiles of 6 compute 132)."""
    b = m % 6
    return b if 7 * b <= m else 0


@njit(**_OPTIONS)
def pack_panels(b, panels, p0, p1):
    """Panels p0..p1 of B (K, N; any strides) into ``panels`` (ceil(N/16), K, 16), the columns
    past N zero: the layout ``packed_product`` reads, made at each call for an activation."""
    k, n = b.shape
    zero = np.float32(0)
    for p in range(p0, p1):
        first = p * PANEL
        width = min(PANEL, n - first)
        for t in range(k):
            for j in range(width):
                panels[p, t, j] = b[t, first + j]
            for j in range(width, PANEL):
                panels[p, t, j] = zero


@njit(inline="always")
def aligned_panels(count, depth):
    """An uninitialized (count, depth, 16) float32 array for ``pack_panels``, starting on a
    64-byte boundary (a cache line: memory.aligned_empty says why)."""
    n = count * depth * PANEL
    buffer = np.empty(n + PANEL, np.float32)
    skip = (PANEL - buffer.ctypes.data // 4 % PANEL) % PANEL
    return buffer[skip : skip + n].reshape((count, depth, PANEL))


FEW = 4  # rows of A that ``few_rows_product`` takes (more go to ``packed_product``)


@njit(**_OPTIONS)
def few_rows_product(a, panels, c, n, bias, lo, hi, p0, p1):
    """``packed_product`` for an ``a`` of at most 4 rows, on panels p0..p1: each tile is 4 rows
    (the last row read again in place of missing ones) by 4 panels, 16 sums per row in 16
    registers, so each weight vector loaded serves 4 rows and 4 independent chains (a tile of
    6 rows by one panel would spend most of its sums on repeated rows and wait on one chain
    per row). Panels left over (fewer than 4) go to ``packed_product``."""
    m, k = a.shape
    last = m - 1
    i1, i2, i3 = min(1, last), min(2, last), min(3, last)
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    p = p0
    while WIDE and p + 4 <= p1:  # (AVX2: 64 vectors of sums would spill; packed_product's)
        acc = numba.carray(_tile(256), (4, 64))
        for r in range(4):
            for j in range(64):
                acc[r, j] = zero
        for t in range(k):
            a0, a1, a2, a3 = a[0, t], a[i1, t], a[i2, t], a[i3, t]
            # (the 16 updates written out, as in packed_product: constant indices only, which
            # is what lets LLVM hold the tile in registers; check GFLOP/s after any change)
            for j in range(16):
                w0, w1 = panels[p, t, j], panels[p + 1, t, j]
                w2, w3 = panels[p + 2, t, j], panels[p + 3, t, j]
                acc[0, j] += a0 * w0
                acc[0, 16 + j] += a0 * w1
                acc[0, 32 + j] += a0 * w2
                acc[0, 48 + j] += a0 * w3
                acc[1, j] += a1 * w0
                acc[1, 16 + j] += a1 * w1
                acc[1, 32 + j] += a1 * w2
                acc[1, 48 + j] += a1 * w3
                acc[2, j] += a2 * w0
                acc[2, 16 + j] += a2 * w1
                acc[2, 32 + j] += a2 * w2
                acc[2, 48 + j] += a2 * w3
                acc[3, j] += a3 * w0
                acc[3, 16 + j] += a3 * w1
                acc[3, 32 + j] += a3 * w2
                acc[3, 48 + j] += a3 * w3
        first = p * PANEL
        width = min(4 * PANEL, n - first)
        for r in range(m):
            for j in range(width):
                v = acc[r, j] + (bias[first + j] if with_bias else zero)
                v = lo if v < lo else v  # noqa: FURB136
                c[r, first + j] = hi if v > hi else v  # noqa: FURB136
        p += 4
    if p < p1:
        packed_product(a, panels, c, n, bias, lo, hi, p, p1, 0, m)


# columns of B per block of ``planes_product``: two AVX-512 vectors; with AVX2, 4 rows of W
# by 16 columns (8 vectors of sums: ``_four_row_planes``)
BLOCK = 2 * PANEL if WIDE else PANEL
# bytes of b that ``planes_product`` copies at a time, in blocks of BLOCK columns (see span_blocks)
SPAN_BYTES = 64 * 1024


def span_blocks(depth: int) -> int:
    """How many blocks of ``BLOCK`` columns ``planes_product`` copies at a time from a b of
    ``depth`` rows: as many as SPAN_BYTES hold, 1 to 16. Copied one block at a time, each of b's
    K rows gave one line per block, K streams at once that the prefetchers lose: on one core of a
    Zen 3, b from memory (a scratch script), 24 x 144 by 144 x 3136 (MobileNetV2's 1x1 at 56x56)
    ran at 16 GFLOP/s, 16 x 32 by 32 x 12544 at 6; by spans, each row read a span's length at a
    time, 26 and 14 (two threads 24 -> 44, 12 -> 23). Whole models at 2 threads,
    ``bench_switch.py _jit_gemm.SPAN_BYTES=0`` (one block at a time): ResNet-50 1.16x its time,
    densenet121 1.15x, squeezenet 1.14x, MobileNetV2 1.08x, EfficientNet-B0 1.06x, ConvNeXt 1.0x.
    The sums are the same, in the same order."""
    return max(1, min(16, SPAN_BYTES // (depth * BLOCK * 4)))


def plane_shape(b):
    """(depth, columns) of ``planes_product``'s right operand ``b`` (see _copy_plane_row)."""


def _copy_plane_row(b, t, j0, j1, copy):
    """copy[: j1 - j0] = b[t, j0:j1] of ``planes_product``'s right operand ``b``."""


@overload(plane_shape, inline="always")
def _plane_shape_of(b):
    if isinstance(b, types.Array):
        return lambda b: b.shape
    return lambda b: (b[2].shape[0], b[1].shape[0])


@overload(_copy_plane_row, inline="always")
def _copy_plane_row_of(b, t, j0, j1, copy):
    """B is a 2-D array (a pointwise convolution's input planes, rows of unit stride), or a
    convolution's patches read where they lie: the tuple (x, pixels, terms) of ``_term_of``,
    B[t, j] = x[pixels[j] + terms[t]] (the transpose of ``packed_product``'s A)."""
    if isinstance(b, types.Array):

        def copy_row(b, t, j0, j1, copy):
            # (by whole vectors: LLVM's loop copied a block's 32 columns 8 at a time, after
            # checks for overlap, and a span's copies outweighed a tile's products)
            row = b[t]
            source, target = row.ctypes.data, copy.ctypes.data
            j, four = j0, np.uint64(4)
            while j + np.uint64(_LANES) <= j1:
                copy_vector(target + (j - j0) * four, source + j * four)
                j += np.uint64(_LANES)
            for i in range(j, j1):
                copy[i - j0] = row[i]

        return copy_row

    def gather_row(b, t, j0, j1, copy):
        x, pixels, term = b[0], b[1], b[2][t]
        for j in range(j0, j1):
            copy[j - j0] = x[pixels[j] + term]

    return gather_row


@njit(**_OPTIONS)
def planes_product(tiles, b, c, m, bias, lo, hi, t0, t1, q0, q1, block, swish=False, res=None):
    """c[6*t0 : min(m, 6*t1), q0:q1] = W @ b + bias, clamped to [lo, hi]: the other way round
    from ``packed_product``, for a convolution's output planes. W (M, K) is packed in tiles of
    6 rows (``threads.row_tiles``: (ceil(M/6), K, 6), zero rows past M), whose 6 values per
    term are broadcast; ``b`` (K, P) float32 gives the vectors, BLOCK columns at a time: a
    pointwise convolution's input planes, or another one's patches gathered where they lie
    (``_copy_plane_row``); ``c`` (M, P) has rows of unit stride, ``bias`` is (M,) or empty.
    Each span of S blocks of BLOCK columns of b is first copied into ``block`` (S, K, BLOCK;
    ``span_blocks``; the columns past q1 zero), where every tile of W reads each block: b's
    rows are P apart, and read in place each term of a block came from another page (33-44
    GFLOP/s against 130-230 at 3,025 columns while writing this). Where ``swish``, each value
    stored is its Swish; ``res`` (M, P) or None: as ``packed_product``'s."""
    k = plane_shape(b)[0]
    zero = np.float32(0)
    span = block.shape[0] * BLOCK
    for q in range(q0, q1, span):
        width = min(span, q1 - q)
        count = (width + BLOCK - 1) // BLOCK
        for t in range(k):  # (each row of b read along the span: one stream at a time)
            for s in range(count):
                j0 = np.uint64(q + s * BLOCK)
                j1 = np.uint64(min(q + width, q + (s + 1) * BLOCK))
                copy = block[s, t]
                _copy_plane_row(b, t, j0, j1, copy)
                for j in range(j1 - j0, np.uint64(BLOCK)):
                    copy[j] = zero
        for s in range(count):
            first = q + s * BLOCK
            _planes_tiles(tiles, block[s], c, m, bias, lo, hi, t0, t1, first,
                          min(BLOCK, q + width - first), swish, res)  # fmt: skip


@njit(inline="always")
def _planes_tiles(tiles, block, c, m, bias, lo, hi, t0, t1, q, width, swish, res):
    """Tiles t0..t1 of W (``ROWS`` rows each) by one ``block`` of ``BLOCK`` columns, into c's
    columns q..q + width, each row's bias added, clamped."""
    if ROWS == 4:
        _four_row_planes(tiles, block, c, m, bias, lo, hi, t0, t1, q, width, swish, res)
        return
    k = block.shape[0]
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    for tile in range(t0, t1):
        rows = min(ROWS, m - ROWS * tile)
        place = _tile(192)
        acc = numba.carray(place, (6, 32))
        for r in range(6):
            for j in range(32):
                acc[r, j] = zero
        if width > PANEL:
            for t in range(k):
                w0, w1, w2 = tiles[tile, t, 0], tiles[tile, t, 1], tiles[tile, t, 2]
                w3, w4, w5 = tiles[tile, t, 3], tiles[tile, t, 4], tiles[tile, t, 5]
                for j in range(32):  # (written out, as in _panel_tiles)
                    v = block[t, j]
                    acc[0, j] += w0 * v
                    acc[1, j] += w1 * v
                    acc[2, j] += w2 * v
                    acc[3, j] += w3 * v
                    acc[4, j] += w4 * v
                    acc[5, j] += w5 * v
        else:  # (a last block of at most 16 columns: one vector, not two)
            for t in range(k):
                w0, w1, w2 = tiles[tile, t, 0], tiles[tile, t, 1], tiles[tile, t, 2]
                w3, w4, w5 = tiles[tile, t, 3], tiles[tile, t, 4], tiles[tile, t, 5]
                for j in range(16):
                    v = block[t, j]
                    acc[0, j] += w0 * v
                    acc[1, j] += w1 * v
                    acc[2, j] += w2 * v
                    acc[3, j] += w3 * v
                    acc[4, j] += w4 * v
                    acc[5, j] += w5 * v
        _store(place, acc, c, bias, lo, hi, ROWS * tile, rows, q, width, with_bias, True, swish,
               res)  # fmt: skip


@njit(inline="always")
def _four_row_planes(tiles, block, c, m, bias, lo, hi, t0, t1, q, width, swish, res):
    """``_planes_tiles`` for tiles of 4 rows of W by a block of 16 columns (AVX2: ``ROWS``,
    ``BLOCK``), the same sums in the same order."""
    k = block.shape[0]
    with_bias = bias.shape[0] > 0
    zero = np.float32(0)
    for tile in range(t0, t1):
        rows = min(4, m - 4 * tile)
        place = _tile(64)
        acc = numba.carray(place, (4, 16))
        for r in range(4):
            for j in range(16):
                acc[r, j] = zero
        for t in range(k):
            w0, w1 = tiles[tile, t, 0], tiles[tile, t, 1]
            w2, w3 = tiles[tile, t, 2], tiles[tile, t, 3]
            for j in range(16):
                v = block[t, j]
                acc[0, j] += w0 * v
                acc[1, j] += w1 * v
                acc[2, j] += w2 * v
                acc[3, j] += w3 * v
        _store(place, acc, c, bias, lo, hi, 4 * tile, rows, q, width, with_bias, True, swish, res)
