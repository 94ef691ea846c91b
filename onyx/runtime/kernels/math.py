"""Elementwise arithmetic, unary math and activation kernels (Add ... Sum, Relu ... SwiGLU).

Broadcasting is numpy's (the standard's multidirectional rule) from opset 7 on; opsets 1-6 used the
legacy ``broadcast``/``axis`` attributes, handled by ``legacy_broadcast``. Results keep the input's
element type. Ufuncs are called with ``out=...`` so 0-d inputs give 0-d arrays, not numpy scalars.
Composite activations on 16-bit and 8-bit floats are computed in float32 and cast back.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.fastloops import clamp
from onyx.runtime.kernels._common import dtype_name
from onyx.runtime.kernels.registry import SESSION_DOMAIN, kernel

# `out=...` (numpy >= 2.3) makes a ufunc return a 0-d array instead of a scalar.
try:
    np.add(np.zeros(()), 0, out=...)
    A = ...
except TypeError:  # older numpy: 0-d results come back as numpy scalars
    A = None

F32 = np.dtype(np.float32)
#: 16- and 8-bit floats, computed in float32 (by name: ml_dtypes is imported only where a model
#: has such types)
_LOW = frozenset({"float16", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                  "float8_e5m2fnuz"})  # fmt: skip


def _up(x: np.ndarray) -> np.ndarray:
    """``x`` in a type precise enough to compute in (float32 for 16/8-bit floats)."""
    return x.astype(F32) if dtype_name(x.dtype) in _LOW else x


def _check_same_shape(op: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise KernelError(f"{op} expects inputs of one shape, got {a.shape} and {b.shape}")


# --- legacy (opset 1-6) broadcasting ---------------------------------------------------------
def legacy_broadcast(a: np.ndarray, b: np.ndarray, broadcast: int, axis: int | None) -> np.ndarray:
    """``b`` laid out to broadcast against ``a`` under the opset 1-6 ``broadcast``/``axis`` rule."""
    if not broadcast:
        if a.shape != b.shape:
            raise KernelError(
                f"inputs of shapes {a.shape} and {b.shape} differ and attribute broadcast is 0 "
                "(set broadcast=1 to broadcast the second input)"
            )
        return b
    if b.size == 1:
        return b.reshape(())
    if b.ndim > a.ndim:
        raise KernelError(f"cannot broadcast shape {b.shape} onto the lower-rank {a.shape}")
    if axis is None:
        start = a.ndim - b.ndim
    else:
        start = axis + a.ndim if axis < 0 else axis
        if not 0 <= start <= a.ndim - b.ndim:
            raise KernelError(
                f"axis {axis} out of range to place shape {b.shape} inside shape {a.shape}"
            )
    # B's dims must match A's at the placed position; a dim of 1 stretches (as Caffe2 did)
    if any(d not in (1, e) for d, e in zip(b.shape, a.shape[start : start + b.ndim])):
        raise KernelError(
            f"shape {b.shape} does not match dims {start}..{start + b.ndim - 1} of shape {a.shape}"
        )
    return b.reshape(b.shape + (1,) * (a.ndim - start - b.ndim))


def legacy_binary(fn, name: str):
    """An opset 1-6 kernel for the binary ``fn``, with the ``broadcast``/``axis`` attributes."""

    def legacy(a, b, *, broadcast=0, axis=None, consumed_inputs=None):
        return fn(a, legacy_broadcast(a, b, broadcast, axis))

    legacy.__name__ = legacy.__qualname__ = f"{name}_legacy"
    return legacy


# --- binary arithmetic -----------------------------------------------------------------------
_add, _sub, _mul, _divide = np.add, np.subtract, np.multiply, np.divide


def _per_row(big, small) -> int | None:
    """How many rows ``small`` holds one value each of, where it broadcasts against ``big`` as
    one value per row of big's leading axes ((N, C, H, W) by (N, C, 1, 1): a squeeze-excite's
    gate) and the compiled kernels take the pair; None otherwise."""
    if (
        type(big) is not np.ndarray
        or type(small) is not np.ndarray
        or big.dtype != small.dtype
        or big.dtype not in compiled.DTYPES
        or big.ndim != small.ndim
        or small.size < 2
        or not big.flags.c_contiguous
    ):
        return None
    lead = small.ndim
    while lead and small.shape[lead - 1] == 1:
        lead -= 1
    if lead == small.ndim or small.shape[:lead] != big.shape[:lead]:
        return None
    return small.size if compiled.kernels(big.size) is not None else None


def _by_rows(code: int, a, b, commutes: bool):
    """op(a, b) where one operand holds one value per row of the other (``_per_row``; b, or
    either where the op ``commutes``, bit for bit), compiled, over the session's threads; None
    otherwise. numpy's broadcast loop runs a call per row there (30 against 17 us on
    EfficientNet's (1, 672, 14, 14) by (1, 672, 1, 1), one thread)."""
    rows = _per_row(a, b)
    if rows is None and commutes:
        rows = _per_row(b, a)
        a, b = b, a
    if rows is None:
        return None
    jit = compiled.kernels(a.size)
    y = np.empty_like(a)
    x2, y2, values = a.reshape(rows, -1), y.reshape(rows, -1), b.reshape(rows)
    threads.rows(rows, a.size, lambda r0, r1: jit.by_rows(x2, values, y2, code, r0, r1),
                 native=lambda par, parts: par.by_rows_bands(x2, values, y2, code, parts))  # fmt: skip
    return y


def add(a, b):
    return _add(a, b, out=A)


def sub(a, b):
    return _sub(a, b, out=A)


def mul(a, b):
    # (a squeeze-excite's gate; one cheap check inline, as every Mul pays for it: the others
    # keep numpy's loop, a chain of tiny Adds paying 0.39 -> 0.46 us a step for the check)
    if a.size != b.size:
        y = _by_rows(compiled.MUL, a, b, True)
        if y is not None:
            return y
    return _mul(a, b, out=A)


def div(a, b):
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    return _divide(a, b, out=A)


def _int_div(a, b):
    """Integer division truncating toward zero (C semantics), as the standard prescribes."""
    if not np.all(b):
        raise KernelError("integer Div by zero")
    q, r = np.divmod(a, b)
    if a.dtype.kind == "i":  # floor -> trunc: step back up where the signs differ
        q += ((r != 0) & ((a < 0) != (b < 0))).astype(q.dtype)
    return q if A is None else np.asarray(q)


for _name, _fn in (("Add", add), ("Sub", sub), ("Mul", mul), ("Div", div)):
    kernel(_name, 1)(legacy_binary(_fn, _name.lower()))
    kernel(_name, 7)(_fn)


@kernel("Pow", 7)
def pow_(x, y):
    """x ** y in the type of x (the exponent may be of another type)."""
    if x.dtype == y.dtype and x.dtype.kind == "f":
        if y.size == 1:  # small integer exponents (GELU's x**3, variance's x**2) as products
            e = float(y.reshape(-1)[0])
            if e == 2.0:
                return np.multiply(x, x, out=A)
            if e == 3.0:
                return np.multiply(np.multiply(x, x), x, out=A)
            if e == 0.5:
                return np.sqrt(x, out=A)
        return np.power(x, y, out=A)
    if x.dtype.kind in "iu":
        if y.dtype.kind in "iu" and not (y < 0).any():
            return np.asarray(np.power(x, y)).astype(x.dtype, copy=False)
        with np.errstate(all="ignore"):
            r = np.power(x.astype(np.float64), y.astype(np.float64, copy=False))
            return np.asarray(np.trunc(r).astype(x.dtype))
    work = _up(x)
    r = np.power(work, y.astype(work.dtype, copy=False), out=A)
    return r.astype(x.dtype, copy=False)


kernel("Pow", 1)(legacy_binary(pow_, "pow"))


@kernel("Mod", 10)
def mod(a, b, *, fmod=0):
    """Remainder: sign of the divisor (fmod=0, floored) or of the dividend (fmod=1, truncated)."""
    if fmod not in (0, 1):
        raise KernelError(f"Mod attribute fmod must be 0 or 1, got {fmod}")
    if a.dtype.kind in "iu" and not np.all(b):
        raise KernelError("integer Mod by zero")
    if dtype_name(a.dtype) in _LOW:
        r = (np.fmod if fmod else np.remainder)(a.astype(F32), b.astype(F32))
        return np.asarray(r).astype(a.dtype)
    return (np.fmod if fmod else np.remainder)(a, b, out=A)


# --- unary math ----------------------------------------------------------------------------
def _unary(ufunc, name: str):
    if name in _SPLIT:  # costly per element: split over the session's threads

        def unary(x, *, consumed_inputs=None):
            return threads.elementwise(lambda part: ufunc(part, out=A), x)

    else:

        def unary(x, *, consumed_inputs=None):
            return ufunc(x, out=A)

    unary.__name__ = unary.__qualname__ = name
    return unary


_SPLIT = frozenset({"exp", "log", "tanh", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
                    "cosh", "asinh", "acosh", "atanh"})  # fmt: skip
_UNARY = {
    # op: (ufunc, first version)
    "Neg": (np.negative, 1), "Abs": (np.absolute, 1), "Reciprocal": (np.reciprocal, 1),
    "Sqrt": (np.sqrt, 1), "Exp": (np.exp, 1), "Log": (np.log, 1), "Tanh": (np.tanh, 1),
    "Ceil": (np.ceil, 1), "Floor": (np.floor, 1), "Round": (np.rint, 11),
    "Sin": (np.sin, 7), "Cos": (np.cos, 7), "Tan": (np.tan, 7), "Asin": (np.arcsin, 7),
    "Acos": (np.arccos, 7), "Atan": (np.arctan, 7), "Sinh": (np.sinh, 9), "Cosh": (np.cosh, 9),
    "Asinh": (np.arcsinh, 9), "Acosh": (np.arccosh, 9), "Atanh": (np.arctanh, 9),
    "Sign": (np.sign, 9), "IsNaN": (np.isnan, 9),
}  # fmt: skip
for _name, (_ufunc, _since) in _UNARY.items():
    kernel(_name, _since)(_unary(_ufunc, _name.lower()))


@kernel("Softplus", 1)
def softplus(x):
    return np.logaddexp(x, 0, out=A)


@kernel("IsInf", 10)
def isinf(x, *, detect_negative=1, detect_positive=1):
    inf = np.isinf(x, out=A)
    if detect_negative and detect_positive:
        return inf
    if not (detect_negative or detect_positive):
        return np.zeros(x.shape, np.bool_)
    negative = np.signbit(x.astype(F32) if dtype_name(x.dtype) in _LOW else x)
    return inf & (negative if detect_negative else ~negative)


# --- erf -----------------------------------------------------------------------------------
# erf(x) = x * h(|x|) with h(a) = erf(a) / a, fitted once (Chebyshev least squares on math.erf)
# as a polynomial per interval [k/2, (k+1)/2), k = 0..11, in t = 4a - 2k - 1 in [-1, 1]:
# degree 12 for float64 (relative error < 3e-15), degree 6 for float32 work (< 3e-8).
# Beyond |x| = 6, erf is +-1 to double precision.
_ERF_PIECES, _ERF_END = 12, 6.0


def _erf_table(degree: int, dtype) -> np.ndarray:
    nodes = np.cos(np.pi * (np.arange(64) + 0.5) / 64)  # Chebyshev nodes in [-1, 1]
    rows = []
    for k in range(_ERF_PIECES):
        a = (nodes + 2 * k + 1) / 4
        h = np.array([math.erf(v) / v for v in a])
        cheb = np.polynomial.Chebyshev.fit(nodes, h, degree, domain=[-1, 1])
        rows.append(cheb.convert(kind=np.polynomial.Polynomial).coef)
    return np.array(rows).T[::-1].astype(dtype)  # [power, piece], highest power first


@functools.cache
def _erf_coef(dtype: np.dtype) -> np.ndarray:
    """The table for float64 or float32 work, fitted at its first use (tens of ms: not at
    import, where every session paid it)."""
    return _erf_table(12, np.float64) if dtype == np.float64 else _erf_table(6, np.float32)


def _fit_power_series(f, lo: float, hi: float, degree: int) -> np.ndarray:
    """Coefficients (highest power first) of a least-squares Chebyshev fit of f on [lo, hi]."""
    nodes = np.cos(np.pi * (np.arange(200) + 0.5) / 200)
    xs = (nodes + 1) / 2 * (hi - lo) + lo
    fit = np.polynomial.Chebyshev.fit(xs, [f(v) for v in xs], degree, domain=[lo, hi])
    return fit.convert(kind=np.polynomial.Polynomial, domain=[lo, hi], window=[lo, hi]).coef[::-1]


# float32 erf in two pieces, each a short polynomial (fitted once on math.erf / math.erfc):
#   |x| < 1:  erf(x) = x * P(x^2)
#   |x| >= 1: erf(x) = sign(x) * (1 - exp(-x^2) * R(1/|x|)), |x| clamped at 4 where erf is 1
# within 3 float32 ulp of the exact value; far fewer passes over the data than the table above.
@functools.cache
def _erf32_pieces() -> tuple[np.ndarray, np.ndarray]:
    """(P, R) of the two pieces above, fitted at their first use."""
    p = _fit_power_series(
        lambda s: math.erf(math.sqrt(s)) / math.sqrt(s) if s else 2 / math.sqrt(math.pi),
        0.0, 1.0, 6,
    )  # fmt: skip
    r = _fit_power_series(lambda u: math.erfc(1 / u) * math.exp(1 / u**2), 0.25, 1.0, 8)
    return p.astype(F32), r.astype(F32)


def _horner(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    y = t * coef[0]
    for c in coef[1:-1]:
        y += c
        y *= t
    y += coef[-1]
    return y


def _erf32(x: np.ndarray) -> np.ndarray:
    p, r = _erf32_pieces()
    a = np.absolute(x)
    s = a * a
    y = _horner(p, s)
    y *= x  # NaN stays NaN here: it never enters the outer piece
    outer = np.flatnonzero(a >= 1)
    if outer.size:
        ao = a[outer]
        clamp(np.minimum, ao, 4.0, ao)
        tail = _horner(r, np.reciprocal(ao))
        tail *= np.exp(-(ao * ao))
        np.subtract(1, tail, out=tail)
        y[outer] = np.copysign(tail, x[outer])
    return y


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (float32 work for 32-bit and narrower floats)."""
    if x.dtype == F32 or dtype_name(x.dtype) in _LOW:
        work = x.astype(F32).reshape(-1)
        return _erf32(work).reshape(x.shape).astype(x.dtype, copy=False)
    work = x.reshape(-1)
    coef = _erf_coef(work.dtype)
    a = np.absolute(work)
    np.minimum(a, _ERF_END, out=a)  # inf -> 6; nan stays nan
    piece = (np.fmin(a, _ERF_END - 0.25) * 2).astype(np.intp)  # nan -> the last piece
    t = a * 4
    t -= 2 * piece + 1
    y = coef[0].take(piece, mode="clip")
    row_values = np.empty_like(y)
    for row in coef[1:]:
        y *= t
        y += row.take(piece, out=row_values, mode="clip")
    y *= a
    np.copysign(y, work, out=y)
    return y.reshape(x.shape).astype(x.dtype, copy=False)


@kernel("Erf", 9)
def erf_kernel(x):
    return threads.elementwise(lambda part: np.asarray(erf(part)), x)


# --- activations ---------------------------------------------------------------------------
_EXP_CAP = {F32: 88.7, np.dtype(np.float64): 709.7}


def sigmoid(x):
    """1 / (1 + exp(-x)), with exp capped below overflow (no warnings, exact tails)."""
    work = _up(x)
    t = np.negative(work, out=A)
    clamp(np.minimum, t, _EXP_CAP[t.dtype], t)
    np.exp(t, out=t)
    t += 1
    np.reciprocal(t, out=t)
    return t.astype(x.dtype, copy=False)


@kernel("Sigmoid", 1)
def sigmoid_kernel(x, *, consumed_inputs=None):
    return threads.elementwise(sigmoid, x)


@kernel("Relu", 1)
def relu(x, *, consumed_inputs=None):
    return clamp(np.maximum, x, 0, np.empty_like(x))


@kernel("LeakyRelu", 1)
class LeakyRelu:
    def __init__(self, *, alpha=0.01, consumed_inputs=None):
        self.alpha = alpha
        # max(x, alpha*x) is leaky relu for 0 <= alpha <= 1, min(x, alpha*x) for alpha > 1
        self.pick = np.maximum if 0 <= alpha <= 1 else np.minimum if alpha > 1 else None

    def __call__(self, x):
        if dtype_name(x.dtype) in _LOW:
            return self(x.astype(F32)).astype(x.dtype)
        scaled = np.multiply(x, self.alpha, out=A)
        if self.pick is not None:
            return self.pick(x, scaled, out=scaled)
        return np.where(x < 0, scaled, x)


@kernel("PRelu", 7)
def prelu(x, slope):
    """x where x >= 0, slope * x elsewhere; slope broadcasts to x (unidirectionally)."""
    try:
        y = np.where(x < 0, x * slope, x)
    except ValueError:
        y = None
    if y is None or y.shape != x.shape:
        raise KernelError(
            f"PRelu slope of shape {slope.shape} does not broadcast to input shape {x.shape}"
        )
    return y


@kernel("PRelu", 1)
def prelu_legacy(x, slope, *, consumed_inputs=None):
    """Opset 1-6: a slope of one element, of x's shape, or one per channel (axis 1)."""
    if slope.ndim == 1 and x.ndim >= 2 and slope.shape[0] == x.shape[1] != 1:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
    return prelu(x, slope)


@kernel("HardSigmoid", 1)
def hard_sigmoid(x, *, alpha=0.2, beta=0.5, consumed_inputs=None):
    t = np.multiply(_up(x), alpha, out=A)
    t += beta
    np.clip(t, 0, 1, out=t)
    return t.astype(x.dtype, copy=False)


@kernel("HardSwish", 14)
def hard_swish(x):
    work = _up(x)
    t = np.multiply(work, 1 / 6, out=A)
    t += 0.5
    np.clip(t, 0, 1, out=t)
    t *= work
    return t.astype(x.dtype, copy=False)


def _elu_core(work, alpha):
    """max(x, 0) + alpha * (exp(min(x, 0)) - 1), free of overflow."""
    neg = clamp(np.minimum, work, 0, np.empty_like(work))
    np.expm1(neg, out=neg)
    neg *= alpha
    neg += clamp(np.maximum, work, 0, np.empty_like(work))
    return neg


@kernel("Elu", 1)
def elu(x, *, alpha=1.0, consumed_inputs=None):
    return _elu_core(_up(x), alpha).astype(x.dtype, copy=False)


@kernel("Selu", 1)
def selu(x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875,
         consumed_inputs=None):  # fmt: skip
    y = _elu_core(_up(x), alpha)
    y *= gamma
    return y.astype(x.dtype, copy=False)


@kernel("Celu", 12)
def celu(x, *, alpha=1.0):
    work = _up(x)
    if alpha > 0:  # max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
        y = clamp(np.minimum, work, 0, np.empty_like(work))
        y /= alpha
        np.expm1(y, out=y)
        y *= alpha
        y += clamp(np.maximum, work, 0, np.empty_like(work))
    else:
        with np.errstate(all="ignore"):
            y = np.maximum(work, 0) + np.minimum(0, alpha * np.expm1(work / alpha))
    return np.asarray(y).astype(x.dtype, copy=False)


@kernel("ThresholdedRelu", 10)
def thresholded_relu(x, *, alpha=1.0):
    return np.where(x > alpha, x, np.zeros((), x.dtype))


@kernel("Softsign", 1)
def softsign(x):
    work = _up(x)
    d = np.absolute(work, out=A)
    d += 1
    np.divide(work, d, out=d)
    return d.astype(x.dtype, copy=False)


@kernel("Mish", 18)
def mish(x):
    work = _up(x)
    t = np.logaddexp(work, 0, out=A)
    np.tanh(t, out=t)
    t *= work
    return t.astype(x.dtype, copy=False)


def _gelu_part(x, tanh):
    """Gelu of one part: compiled for float32 where it pays (one pass, not ten)."""
    if x.dtype == F32 and x.flags.c_contiguous and compiled.kernels(x.size) is not None:
        from onyx.runtime import _jit_exp

        return _jit_exp.gelu(x, tanh, *_erf32_scalars())
    return _gelu(x, "tanh" if tanh else "none")


@functools.cache
def _erf32_scalars() -> tuple[tuple, tuple]:
    """The pieces' coefficients as tuples of scalars, as the compiled kernels take them."""
    return tuple(tuple(F32.type(c) for c in coef) for coef in _erf32_pieces())


@kernel("Gelu", 1, domain=SESSION_DOMAIN)
@kernel("Gelu", 20)
def gelu(x, *, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise KernelError(
            f"Gelu attribute approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    tanh = approximate == "tanh"
    return threads.elementwise(
        lambda part: _gelu_part(part, tanh),
        x,
        native=lambda par, x1, y1, parts: par.gelu_bands(x1, y1, tanh, *_erf32_scalars(), parts),
    )


def _gelu(x, approximate):
    work = _up(x)
    if approximate == "none":
        t = erf(np.multiply(work, 1 / math.sqrt(2), out=A))
    elif approximate == "tanh":
        t = np.multiply(work, work, out=A)
        t *= 0.044715
        t += 1
        t *= work
        t *= math.sqrt(2 / math.pi)
        np.tanh(t, out=t)
    t += 1
    t *= work
    t *= 0.5
    return t.astype(x.dtype, copy=False)


def _swish(x, alpha=1.0):
    """x / (1 + exp(-alpha x)): x · sigmoid(alpha x) with the product and the reciprocal as one
    division (four passes, not six, and one array; within an ulp of the two steps). Where exp
    overflows (alpha x below -88.7 in float32), x / inf gives -0.0 for a true value under
    3e-37 in magnitude: no cap on the exponent, a pass less (15% faster)."""
    work = _up(x)
    t = np.multiply(work, -alpha, out=A) if alpha != 1 else np.negative(work, out=A)
    with np.errstate(over="ignore", invalid="ignore"):  # (invalid: x = -inf gives NaN)
        np.exp(t, out=t)
        t += 1
        np.divide(work, t, out=t)
    return t.astype(x.dtype, copy=False)


def swish_part(x):
    """Swish (alpha 1) of one part: compiled for float32 where it pays (compiled.py)."""
    if x.dtype == F32 and x.flags.c_contiguous and compiled.kernels(x.size) is not None:
        from onyx.runtime import _jit_gemm

        return _jit_gemm.swish(x)
    return _swish(x)


@kernel("Swish", 1, domain=SESSION_DOMAIN)  # x · Sigmoid(x) fused at build (onyx.passes)
@kernel("Swish", 24)
def swish(x, *, alpha=1.0):
    if alpha == 1:
        return threads.elementwise(swish_part, x, native=lambda par, *args: par.swish_bands(*args))
    return threads.elementwise(lambda part: _swish(part, alpha), x)


@kernel("SwiGLU", 28)
def swiglu(a, b, *, alpha=1.0):
    """Swish_alpha(a) * b; a and b must have one shape (no broadcasting)."""
    _check_same_shape("SwiGLU", a, b)
    work = _up(a)
    y = sigmoid(np.multiply(work, alpha, out=A) if alpha != 1 else work)
    y *= work
    y *= b
    return y.astype(a.dtype, copy=False)


# --- Clip ----------------------------------------------------------------------------------
def _bound(value: np.ndarray, name: str) -> np.ndarray:
    if value.ndim == 0:
        return value
    if value.size != 1:
        raise KernelError(f"Clip input '{name}' must be a scalar, got shape {value.shape}")
    return value.reshape(())


@kernel("Clip", 11)
def clip(x, min=None, max=None):
    """min(max(x, min), max); omitted bounds leave that side open."""
    return _clip(
        x, None if min is None else _bound(min, "min"), None if max is None else _bound(max, "max")
    )


@kernel("Clip", 1)
def clip_legacy(x, *, min=None, max=None, consumed_inputs=None):
    return _clip(x, min, max)


def _clip(x, low, high):
    if low is None and high is None:
        return x.view()
    y = np.empty_like(x)
    if low is not None and high is not None and x.dtype in (F32, np.float64):
        return np.clip(x, low, high, out=y)  # one pass (numpy vectorizes a clip by two scalars)
    if low is not None:
        clamp(np.maximum, x, low, y)
    if high is not None:
        clamp(np.minimum, x if low is None else y, high, y)
    return y


# --- variadic ------------------------------------------------------------------------------
def _variadic(ufunc, name: str):
    def variadic(*inputs, consumed_inputs=None):
        if not inputs:
            raise KernelError(f"{name} needs at least one input")
        y = inputs[0]
        for other in inputs[1:]:
            y = ufunc(y, other, out=A)
        return y.view() if len(inputs) == 1 else y

    variadic.__name__ = variadic.__qualname__ = name.lower()
    return variadic


_max, _min, _sum = (_variadic(u, n) for u, n in ((np.maximum, "Max"), (np.minimum, "Min"),
                                                  (np.add, "Sum")))  # fmt: skip
kernel("Max", 1)(_max)
kernel("Min", 1)(_min)


@kernel("Sum", 1)
def sum_(*inputs, consumed_inputs=None):
    if inputs and dtype_name(inputs[0].dtype) in _LOW:
        return _sum(*(x.astype(F32) for x in inputs)).astype(inputs[0].dtype)
    return _sum(*inputs)


@kernel("Mean", 1)
def mean(*inputs, consumed_inputs=None):
    if not inputs:
        raise KernelError("Mean needs at least one input")
    dtype = inputs[0].dtype
    if len(inputs) == 1:
        return inputs[0].view()
    y = _sum(*(x.astype(F32) for x in inputs) if dtype in _LOW else inputs)
    y /= len(inputs)
    return y.astype(dtype, copy=False)
