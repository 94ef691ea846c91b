"""A compiled Softmax over the last axis, for float32 (imported only where compiled.kernels
says numba is usable; see compiled.py).

numpy's softmax makes five passes over the tensor (max, subtract, exp, sum, divide), and on
short rows (attention over 32 tokens) its reductions along the last axis cost more than the
arithmetic. Here each row is done while it is in cache: its maximum, then exp(x - max) and the
sum in one loop, then one scaling. The exponential is computed by hand in a form LLVM
vectorizes (numba has no vectorized exp here): exp(t) = 2^k · e^r with k = round(t / ln 2),
e^r by its degree-7 Taylor polynomial, 2^k from its exponent bits written to an int32 row and
read back as float32. Within 3e-7 relative of numpy's result; exp(t) below float32's normal
range (t < -87) is 0, as numpy's rounds to (or near) it. Rows whose maximum is not finite (a
NaN, an infinity, all -inf) come out NaN, as numpy's do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F = np.float32
_LOG2E, _LOW, _HALF, _BIAS = _F(1.4426950408889634), _F(-87.0), _F(0.5), np.int32(127)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)  # ln 2 = hi + lo, hi exact in 9 bits
_C = tuple(_F(1 / f) for f in (1, 1, 2, 6, 24, 120, 720, 5040))  # 1/n!
_ZERO, _ONE = _F(0.0), _F(1.0)
# reassociation and contraction only (no assumptions about NaN or infinities)
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": _FAST}


@njit(**_OPTIONS)
def softmax_rows(x, y, n, p, bits, scale):
    """y = softmax of each row of ``n`` elements of the flat ``x`` (into the flat ``y``); p, bits
    (and scale, bits' float32 view) are scratch rows of ``n``. Indexed flat, unsigned and in
    one function: a slice or a call per row cost more than a 32-element row's work."""
    c0, c1, c2, c3, c4, c5, c6, c7 = _C
    width = np.uint64(n)
    for r in range(np.uint64(x.shape[0] // n if n else 0)):
        at = r * width
        peak = x[at]
        nans = 0
        for i in range(width):  # (two plain reductions: they vectorize, a NaN-aware max not)
            v = x[at + i]
            peak = v if v > peak else peak
            nans += v != v  # noqa: PLR0124 (v != v: v is NaN)
        if nans or not np.isfinite(peak):
            for i in range(width):
                y[at + i] = np.nan
            continue
        for i in range(width):
            t = x[at + i] - peak
            low = t < _LOW
            t = _LOW if low else t
            k = np.floor(t * _LOG2E + _HALF)
            q = t - k * _LN2_HI - k * _LN2_LO
            poly = c0 + q * (c1 + q * (c2 + q * (c3 + q * (c4 + q * (c5 + q * (c6 + q * c7))))))
            p[i] = _ZERO if low else poly
            bits[i] = (np.int32(k) + _BIAS) << 23
        total = _ZERO
        for i in range(width):
            e = p[i] * scale[i]
            y[at + i] = e
            total += e
        inverse = _ONE / total
        for i in range(width):
            y[at + i] *= inverse


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a C-contiguous float32 array of rank >= 1."""
    n = x.shape[-1]
    y = np.empty_like(x)
    p = np.empty(n, np.float32)
    bits = np.empty(n, np.int32)
    softmax_rows(x.reshape(-1), y.reshape(-1), n, p, bits, bits.view(np.float32))
    return y
