"""A compiled Swish (SiLU) for float32: x / (1 + exp(-x)) in one pass over cache-sized chunks
(imported only where compiled.kernels says numba is usable; see compiled.py).

numba has no vectorized exp here (no SVML), so the exponential is computed by hand, in a form
LLVM vectorizes: exp(t) = 2^k · e^r with k = round(t / ln 2) and |r| <= ln 2 / 2 (ln 2 split in
two parts, so r is exact), e^r by its Taylor polynomial to degree 7 (truncation under 1e-8), and
2^k built from its exponent bits in an int32 array read back as float32. A chunk runs through
two loops: the polynomial and the bits, then the division. Within 3e-7 relative of the exact
value (numpy's exp and division: 1e-7), NaN kept; 1.7x faster than the numpy kernel (4
passes) on EfficientNet's activations. The exponent is held to [-87, 88]: where exp(-x)
overflows, x / 3e38 is the result (under 3e-37 in magnitude).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F = np.float32
_LOG2E, _LO, _HI, _BIAS = _F(1.4426950408889634), _F(-87.0), _F(88.0), np.int32(127)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)  # ln 2 = hi + lo, hi exact in 9 bits
_C = tuple(_F(1 / f) for f in (1, 1, 2, 6, 24, 120, 720, 5040))  # 1/n!
_ONE, _HALF = _F(1.0), _F(0.5)
CHUNK = 4096
# reassociation and contraction only (no assumptions about NaN or infinities: NaN stays NaN)
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": _FAST}


@njit(**_OPTIONS)
def _exp_parts(x, p, bits):
    """exp(-x) as p · 2^k: the polynomial into p, k's float32 exponent bits into bits."""
    c0, c1, c2, c3, c4, c5, c6, c7 = _C
    for i in range(x.shape[0]):
        t = -x[i]
        # (selects LLVM vectorizes; a NaN x becomes _LO here and comes back in the division)
        t = t if t > _LO else _LO  # noqa: FURB136
        t = t if t < _HI else _HI  # noqa: FURB136
        k = np.floor(t * _LOG2E + _HALF)
        r = t - k * _LN2_HI - k * _LN2_LO
        p[i] = c0 + r * (c1 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
        bits[i] = (np.int32(k) + _BIAS) << 23


@njit(**_OPTIONS)
def _divide(x, y, p, scale):
    for i in range(x.shape[0]):
        y[i] = x[i] / (_ONE + p[i] * scale[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _swish_chunks(x, y, p, bits, scale):
    for a in range(0, x.shape[0], p.shape[0]):
        b = min(x.shape[0], a + p.shape[0])
        n = b - a
        _exp_parts(x[a:b], p[:n], bits[:n])
        _divide(x[a:b], y[a:b], p[:n], scale[:n])


def swish(x: np.ndarray) -> np.ndarray:
    """x · sigmoid(x) of a C-contiguous float32 array."""
    y = np.empty_like(x)
    p = np.empty(CHUNK, np.float32)
    bits = np.empty(CHUNK, np.int32)
    _swish_chunks(x.reshape(-1), y.reshape(-1), p, bits, bits.view(np.float32))
    return y
