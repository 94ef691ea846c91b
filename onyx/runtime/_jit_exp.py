"""Compiled float32 kernels built on an exponential LLVM vectorizes: Softmax over the last axis
and Gelu (imported only where compiled.kernels says numba is usable; see compiled.py); its
exponential and constants are the Swish's too (``_jit_gemm.swish_vectors``, written as LLVM
vector operations).

numba has no vectorized exp here (no SVML), so the exponential is computed by hand: exp(t) =
2^k · e^r with k = round(t / ln 2) and |r| <= ln 2 / 2 (ln 2 split in two parts, so r is
exact), e^r by its Taylor polynomial to degree 7 (truncation under 1e-8), and 2^k built from
its exponent bits in an int32 array read back as float32. Each kernel runs the polynomial and
the bits in one loop, then what uses them in another (so both vectorize). Results are within
3e-7 (Swish) and 1e-6 (Softmax) relative of numpy's, NaN kept.

- Swish: x / (1 + exp(-x)). The exponent is held to [-87, 88]: where exp(-x) overflows,
  x / 3e38 is the result (under 3e-37 in magnitude).
- Softmax: numpy's makes five passes (max, subtract, exp, sum, divide), and on short rows
  (attention over 32 tokens) its reductions along the last axis cost more than the arithmetic.
  Here each row is done while it is in cache (1.5-1.9x on attention-shaped rows). exp(t) below
  float32's normal range (t < -87) is 0, as numpy's rounds to (or near) it; rows whose maximum
  is not finite (a NaN, an infinity, all -inf) come out NaN, as numpy's do. The row's maximum
  goes by whole vectors (``_lane_peaks``, an LLVM loop of vector selects): as a loop of scalar
  selects it took 0.27 ns a value, most of the softmax's 0.75; now 0.29-0.38 in all on rows of
  128 to 4,096 (one thread, scratch timings), and the 2-layer BERT and GPT-2 took 0.92x their
  time on one thread, 0.95x on two (the old and new kernels alternating run by run in one
  session), ViT-small 0.98x, BERT-base 0.99x on two.
"""

from __future__ import annotations

import llvmlite.ir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from onyx.runtime import _jit_target

# (every kernel module imports this one first: the target is set before anything compiles)
_jit_target.prefer_wide_vectors()

_F = np.float32
_LOG2E, _LO, _HI, _BIAS = _F(1.4426950408889634), _F(-87.0), _F(88.0), np.int32(127)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)  # ln 2 = hi + lo, hi exact in 9 bits
_C = tuple(_F(1 / f) for f in (1, 1, 2, 6, 24, 120, 720, 5040))  # 1/n!
_ZERO, _ONE, _HALF, _NEG_INF = _F(0.0), _F(1.0), _F(0.5), _F(-np.inf)
CHUNK = 4096
# reassociation and contraction only (no assumptions about NaN or infinities: NaN stays NaN)
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": _FAST}


@njit(inline="always")
def _exp_parts(t):
    """exp(t) for t in [-87, 88] as (e^r, the float32 bits of 2^k): exp(t) = e^r · 2^k."""
    c0, c1, c2, c3, c4, c5, c6, c7 = _C
    k = np.floor(t * _LOG2E + _HALF)
    r = t - k * _LN2_HI - k * _LN2_LO
    poly = c0 + r * (c1 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
    return poly, (np.int32(k) + _BIAS) << 23


# --- the division of x · sigmoid(2u) (Gelu's tanh form) -------------------------------------
@njit(**_OPTIONS)
def _divide(x, y, p, scale):
    """y = x / (1 + p · scale); -inf gives NaN (-inf times a sigmoid of 0), as numpy's does."""
    for i in range(x.shape[0]):
        v = x[i]
        q = v / (_ONE + p[i] * scale[i])
        y[i] = v * _ZERO if v == _NEG_INF else q


# --- Softmax -----------------------------------------------------------------------------------
_PEAK_LANES = 16


@intrinsic
def _lane_peaks(typingctx, target, source, vectors):
    """Into the 16 float32s at address ``target``: lane j's largest of the float32s at address
    ``source`` + 16k + j for k < ``vectors`` (at least 1), or NaN where one of them is NaN,
    by whole vectors. (The row maximum as a loop of selects is a reduction LLVM leaves scalar
    unless it may assume no NaN: 0.27 ns a value, most of a softmax's time.)"""

    def codegen(context, builder, signature, args):
        target, source, vectors = args
        kind = llvmlite.ir.VectorType(llvmlite.ir.FloatType(), _PEAK_LANES)
        pointer = kind.as_pointer()
        first = builder.load(builder.inttoptr(source, pointer), align=4)
        peak = cgutils.alloca_once_value(builder, first)
        nans = cgutils.alloca_once_value(builder, builder.fcmp_unordered("uno", first, first))
        with cgutils.for_range(builder, builder.sub(vectors, vectors.type(1))) as loop:
            at = builder.add(source, builder.mul(builder.add(loop.index, vectors.type(1)),
                                                 vectors.type(4 * _PEAK_LANES)))
            v = builder.load(builder.inttoptr(at, pointer), align=4)
            old = builder.load(peak)
            builder.store(builder.select(builder.fcmp_ordered(">", v, old), v, old), peak)
            builder.store(builder.or_(builder.load(nans), builder.fcmp_unordered("uno", v, v)),
                          nans)  # fmt: skip
        nan = llvmlite.ir.Constant(kind, [float("nan")] * _PEAK_LANES)
        result = builder.select(builder.load(nans), nan, builder.load(peak))
        builder.store(result, builder.inttoptr(target, pointer), align=4)
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp), codegen


@njit(inline="always")
def _row_peak(x, at, width, lanes):
    """The largest of x[at : at + width], NaN where one of them is NaN (``lanes``: 16 float32s
    of scratch): whole vectors by ``_lane_peaks``, the rest one by one."""
    peak, nans = x[at], 0
    whole = width // np.uint64(_PEAK_LANES) * np.uint64(_PEAK_LANES)
    if whole:
        _lane_peaks(lanes.ctypes.data, x.ctypes.data + at * np.uint64(4),
                    whole // np.uint64(_PEAK_LANES))  # fmt: skip
        peak = lanes[0]
        for j in range(_PEAK_LANES):
            v = lanes[j]
            peak = v if v > peak else peak  # noqa: FURB136
            nans += v != v  # noqa: PLR0124 (v != v: v is NaN)
    for i in range(whole, width):
        v = x[at + i]
        peak = v if v > peak else peak  # noqa: FURB136
        nans += v != v  # noqa: PLR0124
    return np.float32(np.nan) if nans else peak


# (not "arcp" here: with "reassoc" too, LLVM 14 (numba 0.60) turned a row's first product by
# 1/total into a division and the rest not, and equal inputs got outputs a bit apart)
@njit(**{**_OPTIONS, "fastmath": _FAST - {"arcp"}})
def softmax_rows(x, y, n, p, bits, scale):
    """y = softmax of each row of ``n`` elements of the flat ``x`` (into the flat ``y``); p, bits
    (and scale, bits' float32 view) are scratch rows of ``n``. Indexed flat, unsigned and in
    one function: a slice or a call per row cost more than a 32-element row's work."""
    width = np.uint64(n)
    lanes = np.empty(_PEAK_LANES, np.float32)
    for r in range(np.uint64(x.shape[0] // n if n else 0)):
        at = r * width
        peak = _row_peak(x, at, width, lanes)
        if not np.isfinite(peak):
            for i in range(width):
                y[at + i] = np.nan
            continue
        for i in range(width):
            t = x[at + i] - peak
            low = t < _LO
            poly, bits[i] = _exp_parts(_LO if low else t)
            p[i] = _ZERO if low else poly
        # the sum alone, reading only: a loop that also wrote y would be vectorized behind a
        # run-time check that y does not overlap p and scale, and run scalar where y lies
        # close to them, summing in another order (bits that depended on where arrays lie)
        total = _ZERO
        for i in range(width):
            total += p[i] * scale[i]
        inverse = _ONE / total
        for i in range(width):
            y[at + i] = p[i] * scale[i] * inverse


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a C-contiguous float32 array of rank >= 1."""
    n = x.shape[-1]
    y = np.empty_like(x)
    p = np.empty(n, np.float32)
    bits = np.empty(n, np.int32)
    softmax_rows(x.reshape(-1), y.reshape(-1), n, p, bits, bits.view(np.float32))
    return y


# --- Gelu --------------------------------------------------------------------------------------
_INV_SQRT2 = _F(0.7071067811865476)
_TANH_K = _F(2 * 0.7978845608028654)  # 2 * sqrt(2 / pi)
_TANH_C = _F(0.044715)


@njit(inline="always")
def _horner7(c, t):
    return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) * t + c[6]


@njit(inline="always")
def _horner9(c, t):
    inner = (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) * t + c[6]
    return (inner * t + c[7]) * t + c[8]


@njit(**_OPTIONS)
def _erf_tail_exp(x, p, bits):
    """exp(-a^2) as p · 2^k for a = |x / sqrt 2| held to [1, 4] (erf's outer piece)."""
    for i in range(x.shape[0]):
        a = abs(x[i] * _INV_SQRT2)
        a = a if a > _ONE else _ONE  # noqa: FURB136
        a = a if a < _F(4.0) else _F(4.0)  # noqa: FURB136
        p[i], bits[i] = _exp_parts(-(a * a))


@njit(**_OPTIONS)
def _gelu_erf_combine(x, y, p, scale, inner, outer):
    """y = x/2 · (1 + erf(x / sqrt 2)), erf in math.py's two pieces (``inner``, ``outer``)."""
    for i in range(x.shape[0]):
        v = x[i]
        z = v * _INV_SQRT2
        a = abs(z)
        near = z * _horner7(inner, a * a)
        held = a if a > _ONE else _ONE  # noqa: FURB136
        held = held if held < _F(4.0) else _F(4.0)  # noqa: FURB136
        far = _ONE - _horner9(outer, _ONE / held) * (p[i] * scale[i])
        far = far if z >= _ZERO else -far
        e = far if a >= _ONE else near  # (NaN: a >= 1 is false, and near is NaN)
        y[i] = _HALF * v * (_ONE + e)


@njit(**_OPTIONS)
def _gelu_tanh_exp(x, p, bits):
    """exp(-2u) as p · 2^k for u = sqrt(2/pi) (x + 0.044715 x^3), held to [-87, 88]."""
    for i in range(x.shape[0]):
        v = x[i]
        t = -_TANH_K * (v + _TANH_C * v * v * v)
        t = t if t > _LO else _LO  # noqa: FURB136
        t = t if t < _HI else _HI  # noqa: FURB136
        p[i], bits[i] = _exp_parts(t)


@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_chunks(x, y, p, bits, scale, tanh, inner, outer):
    for a in range(0, x.shape[0], p.shape[0]):
        b = min(x.shape[0], a + p.shape[0])
        n = b - a
        if tanh:  # x/2 (1 + tanh u) = x · sigmoid(2u): Swish's division
            _gelu_tanh_exp(x[a:b], p[:n], bits[:n])
            _divide(x[a:b], y[a:b], p[:n], scale[:n])
        else:
            _erf_tail_exp(x[a:b], p[:n], bits[:n])
            _gelu_erf_combine(x[a:b], y[a:b], p[:n], scale[:n], inner, outer)


def gelu(x: np.ndarray, tanh: bool, inner: tuple, outer: tuple) -> np.ndarray:
    """Gelu of a C-contiguous float32 array: the erf form (erf's pieces' coefficients in
    ``inner``, 7, and ``outer``, 9, highest power first) or the tanh form."""
    y = np.empty_like(x)
    p = np.empty(CHUNK, np.float32)
    bits = np.empty(CHUNK, np.int32)
    _gelu_chunks(x.reshape(-1), y.reshape(-1), p, bits, bits.view(np.float32), tanh, inner, outer)
    return y
