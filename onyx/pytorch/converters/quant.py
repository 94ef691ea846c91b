"""Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul,
QLinearConv, ConvInteger.

Scales and zero points are per tensor, per axis (1-D along ``axis``) or blocked (the input's shape
with dimension ``axis`` cut into blocks of ``block_size``). Integer results round half to even and
clamp to the type's range; float8 results saturate (or not) as Cast does. Integer products run
in floating point wide enough to be exact (torch has few integer matmul/conv kernels).
"""

from __future__ import annotations

from onyx.dtypes import DataType
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.converters._common import auto_pads
from onyx.pytorch.converters.nn import conv as _conv
from onyx.pytorch.registry import converter

_RANGE = {
    torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767),
    torch.uint16: (0, 65535), torch.int32: (-(2**31), 2**31 - 1),
}  # fmt: skip
_FLOAT8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0,
               torch.float8_e5m2: 57344.0, torch.float8_e5m2fnuz: 57344.0}  # fmt: skip


def _broadcast(cx, x, p, axis: int, block_size: int):
    """A scale or zero point shaped to broadcast against ``x`` (per tensor, axis or block)."""
    pshape = cx.shape(p)
    if pshape is None:
        raise cx.fail("the rank of a scale or zero point is unknown")
    if len(pshape) == 0 or (len(pshape) == 1 and pshape[0] == 1):
        return p.reshape(())
    rank = cx.rank(x)
    axis = axis + rank if axis < 0 else axis
    if block_size > 0:
        d = cx.shape(x)[axis]
        if not isinstance(d, int):
            raise cx.fail("blocked quantization needs a static size on the quantized axis")
        p = torch.repeat_interleave(p, block_size, dim=axis)
        return p.narrow(axis, 0, d)
    shape = [1] * rank
    shape[axis] = -1
    return p.reshape(shape)


def _saturate(q, target: torch.dtype, saturate: int = 1):
    """Offset values rounded (ints) or not (floats) turned into ``target``: clamp or Cast."""
    if target in _FLOAT8_MAX:
        top = _FLOAT8_MAX[target]
        if saturate:
            q = torch.where(torch.isnan(q), q, torch.clamp(q, -top, top))
        elif target in (torch.float8_e4m3fn, torch.float8_e4m3fnuz):
            limit = 464.0 if target == torch.float8_e4m3fn else 248.0
            q = torch.where(torch.abs(q) > limit, torch.full_like(q, float("nan")), q)
        return q.to(target)
    lo, hi = _RANGE[target]
    return torch.clamp(q, lo, hi).to(dtypes.WIDER.get(target, target))


@converter("QuantizeLinear", 10, 13, 19, 21, 23)
def quantize_linear(cx, x, y_scale, y_zero_point=None, *, axis: int = 1, saturate: int = 1,
                    block_size: int = 0, output_dtype: int = 0,
                    precision: int = 0):  # fmt: skip
    zp = y_zero_point
    t = cx.onnx_dtype(zp) if zp is not None else cx.node.outputs[0].type.dtype
    target = dtypes.storage(t, cx.label)
    if target not in _RANGE and target not in _FLOAT8_MAX:
        raise cx.fail(f"quantizing to {target} is not supported")
    if precision:
        prec = dtypes.compute(DataType(precision), cx.label)
    else:
        prec = cx.dtype(y_scale)
        if not prec.is_floating_point or prec not in (torch.float16, torch.bfloat16,
                                                      torch.float32, torch.float64):  # fmt: skip
            prec = torch.float64 if not cx.dtype(x).is_floating_point else torch.float32
    scale = _broadcast(cx, x, y_scale, axis, block_size)
    q = x.to(prec) / scale.to(prec)
    if prec in (torch.float16, torch.bfloat16):
        q, prec = q.to(torch.float32), torch.float32
    if target not in _FLOAT8_MAX:
        q = torch.round(q)
    if y_zero_point is not None:
        zp = _broadcast(cx, x, y_zero_point, axis, block_size)
        q = q + zp.to(prec)
    return _saturate(q, target, saturate)


@converter("DequantizeLinear", 10, 13, 19, 21, 23)
def dequantize_linear(cx, x, x_scale, x_zero_point=None, *, axis: int = 1, block_size: int = 0,
                      output_dtype: int = 0):  # fmt: skip
    out = cx.out_dtype()
    xt = cx.dtype(x)
    wide = torch.float64 if out == torch.float64 or xt.itemsize >= 4 else torch.float32
    diff = x.to(torch.int64) if xt in (torch.int32, torch.int64) else x.to(wide)
    if x_zero_point is not None:
        zp = _broadcast(cx, x, x_zero_point, axis, block_size)
        diff = diff - (zp.to(torch.int64) if xt in (torch.int32, torch.int64) else zp.to(wide))
    scale = _broadcast(cx, x, x_scale, axis, block_size)
    return (diff.to(wide) * scale.to(wide)).to(out)


@converter("DynamicQuantizeLinear", 11)
def dynamic_quantize_linear(cx, x):
    flat = torch.nan_to_num(x.reshape(-1).to(torch.float32), nan=0.0)
    zero = torch.zeros(1, dtype=torch.float32)
    flat = torch.cat([flat, zero])  # the range always holds 0 (and an empty x works)
    lo, hi = torch.amin(flat), torch.amax(flat)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zp = torch.round(torch.clamp(-lo / scale, 0, 255))
    y = torch.clamp(torch.round(x.to(torch.float32) / scale) + zp, 0, 255).to(torch.uint8)
    return y, scale, zp.to(torch.uint8)


# --- integer products ----------------------------------------------------------------------
def _centered(a, zp, dtype):
    a = a.to(dtype)
    return a if zp is None else a - zp.to(dtype)


def _row(cx, p):
    """A per-row parameter ([M]) of the left operand shaped [M, 1]; a scalar as is."""
    s = cx.shape(p)
    return p.reshape(-1, 1) if s is not None and len(s) == 1 and s[0] != 1 else p.reshape(
        () if s is not None and len(s) <= 1 else s)  # fmt: skip


def _exact_type(cx, k) -> torch.dtype:
    """float32 while every sum of k products of 8-bit values is exact there, else float64."""
    return torch.float32 if isinstance(k, int) and k * 255 * 255 < 2**24 else torch.float64


@converter("QLinearMatMul", 10, 21)
def qlinear_matmul(cx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                   y_zero_point):  # fmt: skip
    target = cx.dtype(y_zero_point)
    if cx.dtype(a).is_floating_point:  # float8 inputs
        prod = torch.float32
    else:
        prod = _exact_type(cx, cx.shape(a)[-1])
    acc = torch.matmul(_centered(a, _row(cx, a_zero_point), prod),
                       _centered(b, b_zero_point, prod)).to(torch.float64)  # fmt: skip
    factor = _row(cx, a_scale).to(torch.float64) * b_scale.to(torch.float64)
    q = acc * (factor / y_scale.to(torch.float64))
    if target not in _FLOAT8_MAX:
        q = torch.round(q)
    q = q + y_zero_point.to(torch.float64)
    if target in _FLOAT8_MAX:
        q = q.to(torch.float32)
    return _saturate(q, target)


def _channel(cx, p, rank: int):
    """A per-output-channel parameter ([M]) shaped [M, 1, ...] for a weight of ``rank``."""
    s = cx.shape(p)
    if s is not None and len(s) == 1 and s[0] != 1:
        return p.reshape([-1] + [1] * (rank - 1))
    return p.reshape(())


def _int_conv(cx, x, x_zp, w, w_zp, conv_attrs):
    """conv(x - x_zp, w - w_zp) exactly, as float32 or float64."""
    w_shape = cx.shape(w)
    kernel = conv_attrs["kernel_shape"] or list(w_shape[2:])
    n = len(kernel)
    auto_pad = conv_attrs["auto_pad"]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        shape = cx.static_shape(x)
        if shape is None:
            raise cx.fail(f"auto_pad {auto_pad} needs static spatial dims")
        strides = conv_attrs["strides"] or [1] * n
        dilations = conv_attrs["dilations"] or [1] * n
        conv_attrs["pads"] = ([0] * (2 * n) if auto_pad == "VALID" else
                              auto_pads(auto_pad, shape[2:], kernel, strides, dilations))  # fmt: skip
        conv_attrs["auto_pad"] = "NOTSET"
    conv_attrs["kernel_shape"] = kernel
    k = 1
    for d in w_shape[1:]:
        k = k * d if isinstance(d, int) else None
        if k is None:
            break
    dtype = _exact_type(cx, k)
    xc = _centered(x, None if x_zp is None else x_zp.reshape(()), dtype)
    wc = _centered(w, None if w_zp is None else _channel(cx, w_zp, len(w_shape)), dtype)
    return _conv(cx, xc, wc, None, **conv_attrs)


_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


@converter("ConvInteger", 10)
def conv_integer(cx, x, w, x_zero_point=None, w_zero_point=None, *, auto_pad: str = "NOTSET",
                 dilations: list[int] | None = None, group: int = 1,
                 kernel_shape: list[int] | None = None, pads: list[int] | None = None,
                 strides: list[int] | None = None):  # fmt: skip
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "group": group, "kernel_shape": kernel_shape,
                 "pads": pads, "strides": strides}  # fmt: skip
    return _int_conv(cx, x, x_zero_point, w, w_zero_point, attrs).to(torch.int32)


@converter("QLinearConv", 10)
def qlinear_conv(cx, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
                 B=None, *, auto_pad: str = "NOTSET", dilations: list[int] | None = None,
                 group: int = 1, kernel_shape: list[int] | None = None,
                 pads: list[int] | None = None, strides: list[int] | None = None):  # fmt: skip
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "group": group, "kernel_shape": kernel_shape,
                 "pads": pads, "strides": strides}  # fmt: skip
    acc = _int_conv(cx, x, x_zero_point, w, w_zero_point, attrs).to(torch.float64)
    rank = cx.rank(x)
    if B is not None:
        acc = acc + B.to(torch.float64).reshape([-1] + [1] * (rank - 2))
    ws = w_scale.to(torch.float64)
    ws = ws.reshape([-1] + [1] * (rank - 2)) if cx.shape(w_scale) not in ((), (1,)) else ws
    q = torch.round(acc * (x_scale.to(torch.float64) * ws / y_scale.to(torch.float64)))
    return _saturate(q + y_zero_point.to(torch.float64), cx.dtype(y_zero_point))
