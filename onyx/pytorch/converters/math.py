"""Elementwise arithmetic, activations and softmax-like operators."""

from __future__ import annotations

import functools
import math

from onyx.pytorch._torch import torch
from onyx.pytorch.converters._common import norm_axes
from onyx.pytorch.registry import converter

F = torch.nn.functional


def _unary(op_type: str, fn, *versions: int) -> None:
    def convert(cx, x):
        return fn(x)

    convert.__name__ = op_type.lower()
    converter(op_type, *(versions or (1,)))(convert)


for _op, _fn in {
    "Abs": torch.abs, "Neg": torch.neg, "Exp": torch.exp, "Log": torch.log, "Sqrt": torch.sqrt,
    "Ceil": torch.ceil, "Floor": torch.floor, "Sin": torch.sin, "Cos": torch.cos,
    "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos, "Atan": torch.atan,
    "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh, "Acosh": torch.acosh,
    "Atanh": torch.atanh, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Erf": torch.erf,
    "Sign": torch.sign, "Round": torch.round, "Relu": torch.relu, "Softsign": F.softsign,
    "IsNaN": torch.isnan, "Mish": F.mish,
}.items():  # fmt: skip
    _unary(_op, _fn)


@converter("Reciprocal", 1)
def reciprocal(cx, x):
    return torch.reciprocal(x) if cx.dtype(x).is_floating_point else 1 // x


@converter("Softplus", 1)
def softplus(cx, x):
    return torch.log1p(torch.exp(-torch.abs(x))) + torch.relu(x)


# --- binary, broadcasting ----------------------------------------------------------------------
def _binary(op_type: str, fn) -> None:
    def convert(cx, a, b, *, broadcast: int = 0, axis: int | None = None):
        if axis is not None and broadcast:  # opset < 7: b lines up with a from ``axis``
            ra, rb = cx.rank(a), cx.rank(b)
            axis = axis + ra if axis < 0 else axis
            b = b.reshape(list(cx.shape(b)) + [1] * (ra - axis - rb))
        return fn(a, b)

    convert.__name__ = op_type.lower()
    converter(op_type, 1)(convert)


_binary("Add", torch.add)
_binary("Sub", torch.sub)
_binary("Mul", torch.mul)


@converter("Div", 1)
def div(cx, a, b, *, broadcast: int = 0, axis: int | None = None):
    if cx.dtype(a).is_floating_point or cx.dtype(a).is_complex:
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


@converter("Pow", 1)
def pow_(cx, x, y, *, broadcast: int = 0, axis: int | None = None):
    tx, ty = cx.dtype(x), cx.dtype(y)
    if tx == ty:
        return torch.pow(x, y)
    if tx.is_floating_point:
        return torch.pow(x, y.to(tx) if not ty.is_floating_point else y.to(torch.float64)).to(tx)
    return torch.pow(x.to(torch.float64), y.to(torch.float64)).to(tx)


@converter("Mod", 10)
def mod(cx, a, b, *, fmod: int = 0):
    if fmod:
        return torch.fmod(a, b)
    r = torch.remainder(a, b)
    if cx.dtype(a).is_floating_point:  # x mod inf: x where signs agree (or x is 0), else inf
        keep = (torch.sign(a) == torch.sign(b)) | (a == 0)
        r = torch.where(torch.isinf(b) & torch.isfinite(a), torch.where(keep, a, b), r)
    return r


def _variadic(op_type: str, fn, *versions: int) -> None:
    def convert(cx, *xs):
        return functools.reduce(fn, xs)

    convert.__name__ = op_type.lower()
    converter(op_type, *(versions or (1,)))(convert)


_variadic("Max", torch.maximum)
_variadic("Min", torch.minimum)
_variadic("Sum", torch.add)


@converter("Mean", 1)
def mean(cx, *xs):
    return functools.reduce(torch.add, xs) / len(xs)


@converter("BitShift", 11)
def bit_shift(cx, x, y, *, direction: str):
    dtype = cx.dtype(x)
    if direction == "LEFT":
        out = torch.bitwise_left_shift(x, y)
    else:
        out = torch.bitwise_right_shift(x, y)
    bits = {torch.uint8: 8, torch.int32: 16, torch.int64: 32}.get(dtype)
    store = cx.onnx_dtype(x)
    if store is not None and store.name in ("UINT16", "UINT32"):
        out = out & ((1 << bits) - 1)  # widened unsigned: drop what left the original width
    return out


# --- activations with attributes -----------------------------------------------------------
@converter("Elu", 1)
def elu(cx, x, *, alpha: float = 1.0):
    return F.elu(x, alpha)


@converter("Selu", 1)
def selu(
    cx, x, *, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875
):
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@converter("Celu", 12)
def celu(cx, x, *, alpha: float = 1.0):
    return F.celu(x, alpha)


@converter("LeakyRelu", 1)
def leaky_relu(cx, x, *, alpha: float = 0.01):
    return F.leaky_relu(x, alpha)


@converter("ThresholdedRelu", 10)
def thresholded_relu(cx, x, *, alpha: float = 1.0):
    return torch.where(x > alpha, x, torch.zeros_like(x))


@converter("HardSigmoid", 1)
def hard_sigmoid(cx, x, *, alpha: float = 0.2, beta: float = 0.5):
    return torch.clamp(alpha * x + beta, 0, 1)


@converter("HardSwish", 14)
def hard_swish(cx, x):
    return x * torch.clamp(x * (1 / 6) + 0.5, 0, 1)


@converter("Swish", 24)
def swish(cx, x, *, alpha: float = 1.0):
    return x * torch.sigmoid(alpha * x)


@converter("Shrink", 9)
def shrink(cx, x, *, bias: float = 0.0, lambd: float = 0.5):
    zero = torch.zeros_like(x)
    return torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, zero))


@converter("Gelu", 20)
def gelu(cx, x, *, approximate: str = "none"):
    return F.gelu(x, approximate=approximate)


@converter("PRelu", 1)
def prelu(cx, x, slope):
    return torch.where(x < 0, x * slope, x)


@converter("Clip", 1)
def clip_6(cx, x, *, min: float = -3.4028234663852886e38, max: float = 3.4028234663852886e38):
    return torch.clamp(x, min, max)


@converter("Clip", 11)
def clip(cx, x, lo=None, hi=None):
    if lo is not None:
        x = torch.maximum(x, lo) if cx.is_proxy(lo) else torch.clamp(x, min=lo.item())
    if hi is not None:
        x = torch.minimum(x, hi) if cx.is_proxy(hi) else torch.clamp(x, max=hi.item())
    return x


@converter("IsInf", 10)
def is_inf(cx, x, *, detect_negative: int = 1, detect_positive: int = 1):
    if detect_negative and detect_positive:
        return torch.isinf(x)
    if detect_negative:
        return torch.isneginf(x)
    if detect_positive:
        return torch.isposinf(x)
    return torch.zeros_like(x, dtype=torch.bool)


# --- softmax family ------------------------------------------------------------------------
def _coerced(fn, cx, x, axis):
    """Opsets before 13: the input flattened to 2-D at ``axis``, ``fn`` over the second dim."""
    shape = cx.shape(x)
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    inner = shape[axis:]
    if all(isinstance(d, int) for d in inner):
        flat = x.reshape(-1, math.prod(inner)) if rank else x.reshape(1, 1)
    else:
        flat = x.flatten(axis).flatten(0, axis - 1) if axis > 0 else x.flatten().unsqueeze(0)
    out = fn(flat, 1)
    return out.reshape(x.shape) if cx.static_shape(x) is None else out.reshape(shape)


def _hardmax(x, axis):
    index = torch.argmax(x, axis, keepdim=True)
    return torch.zeros_like(x).scatter(axis, index, 1)


@converter("Softmax", 1)
def softmax_1(cx, x, *, axis: int = 1):
    return _coerced(torch.softmax, cx, x, axis)


@converter("Softmax", 13)
def softmax(cx, x, *, axis: int = -1):
    return torch.softmax(x, axis)


@converter("LogSoftmax", 1)
def log_softmax_1(cx, x, *, axis: int = 1):
    return _coerced(torch.log_softmax, cx, x, axis)


@converter("LogSoftmax", 13)
def log_softmax(cx, x, *, axis: int = -1):
    return torch.log_softmax(x, axis)


@converter("Hardmax", 1)
def hardmax_1(cx, x, *, axis: int = 1):
    return _coerced(_hardmax, cx, x, axis)


@converter("Hardmax", 13)
def hardmax(cx, x, *, axis: int = -1):
    return _hardmax(x, norm_axes([axis], cx.rank(x))[0])


@converter("CumSum", 11)
def cumsum(cx, x, axis, *, exclusive: int = 0, reverse: int = 0):
    return _cumulative(cx, torch.cumsum, 0, x, axis, exclusive, reverse)


@converter("CumProd", 26)
def cumprod(cx, x, axis, *, exclusive: int = 0, reverse: int = 0):
    return _cumulative(cx, torch.cumprod, 1, x, axis, exclusive, reverse)


def _cumulative(cx, fn, identity, x, axis, exclusive, reverse):
    (a,) = norm_axes(cx.need(axis), cx.rank(x))
    if reverse:
        x = x.flip(a)
    y = fn(x, a, dtype=cx.dtype(x))
    if exclusive:
        first = torch.full_like(x.narrow(a, 0, 1), identity)
        y = torch.cat([first, y.narrow(a, 0, cx.shape(x)[a] - 1)], a)
    return y.flip(a) if reverse else y


@converter("SwiGLU", 28)
def swiglu(cx, a, b, *, alpha: float = 1.0):
    """Swish_alpha(a) * b, 16-bit floats computing in float32."""
    dtype = cx.dtype(a)
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    w = a.to(work)
    return (w * torch.sigmoid(alpha * w) * b.to(work)).to(dtype)
