"""Neural-network layers: convolutions, pooling, normalizations, Dropout."""

from __future__ import annotations

import itertools
import math

from onyx.pytorch._torch import torch
from onyx.pytorch.converters._common import auto_pads, sym_pads, torch_pad
from onyx.pytorch.registry import converter

F = torch.nn.functional
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pads(cx, x, auto_pad, pads, kernel, strides, dilations):
    n = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        spatial = cx.static_shape(x)
        if spatial is None:
            raise cx.fail(f"auto_pad {auto_pad} needs static spatial dims")
        return auto_pads(auto_pad, spatial[2:], kernel, strides, dilations)
    if auto_pad == "VALID":
        return [0] * (2 * n)
    return list(pads) if pads is not None else [0] * (2 * n)


@converter("Conv", 1)
def conv(cx, x, w, b=None, *, auto_pad: str = "NOTSET", dilations: list[int] | None = None,
         group: int = 1, kernel_shape: list[int] | None = None, pads: list[int] | None = None,
         strides: list[int] | None = None):  # fmt: skip
    kernel = kernel_shape or list(cx.shape(w)[2:])
    n = len(kernel)
    strides, dilations = strides or [1] * n, dilations or [1] * n
    p = _pads(cx, x, auto_pad, pads, kernel, strides, dilations)
    same = sym_pads(p)
    if same is None:
        x = torch.nn.functional.pad(x, torch_pad(p))
        same = [0] * n
    return _CONV[n](x, w, b, strides, same, dilations, group)


@converter("ConvTranspose", 1)
def conv_transpose(cx, x, w, b=None, *, auto_pad: str = "NOTSET",
                   dilations: list[int] | None = None, group: int = 1,
                   kernel_shape: list[int] | None = None, output_padding: list[int] | None = None,
                   output_shape: list[int] | None = None, pads: list[int] | None = None,
                   strides: list[int] | None = None):  # fmt: skip
    kernel = kernel_shape or list(cx.shape(w)[2:])
    n = len(kernel)
    strides, dilations = strides or [1] * n, dilations or [1] * n
    output_padding = output_padding or [0] * n
    spatial = cx.shape(x)[2:]
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        want = list(output_shape[-n:]) if output_shape is not None else [d * s for d, s in
                                                                         zip(spatial, strides)]  # fmt: skip
        total = [s * (i - 1) + op + ((k - 1) * d + 1) - o for i, s, op, k, d, o in
                 zip(spatial, strides, output_padding, kernel, dilations, want)]  # fmt: skip
        extra = [max(0, -t) for t in total]  # an output larger than the full one: pad at the end
        output_padding = [o + e for o, e in zip(output_padding, extra)]
        total = [max(0, t) for t in total]
        if auto_pad == "SAME_UPPER" or (output_shape is not None and auto_pad != "SAME_LOWER"):
            p = [t // 2 for t in total] + [t - t // 2 for t in total]
        else:
            p = [t - t // 2 for t in total] + [t // 2 for t in total]
    elif auto_pad == "VALID":
        p = [0] * (2 * n)
    else:
        p = list(pads) if pads is not None else [0] * (2 * n)
    begins, ends = p[:n], p[n:]
    # full transposed conv, then crop begins/ends (handles asymmetric and negative total pads)
    y = _CONV_T[n](x, w, b, strides, 0, output_padding, group, dilations)
    index = [slice(None), slice(None)]
    for i in range(n):
        index.append(slice(begins[i], -ends[i] if ends[i] > 0 else None))
    if any(e < 0 for e in ends):
        y = F.pad(y, [v for i in reversed(range(n)) for v in (0, max(0, -ends[i]))])
    return y[tuple(index)]


def _pool_args(cx, x, auto_pad, pads, kernel, strides, dilations, ceil_mode):
    n = len(kernel)
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        spatial = cx.static_shape(x)
        if spatial is None:
            raise cx.fail(f"auto_pad {auto_pad} needs static spatial dims")
        p = auto_pads(auto_pad, spatial[2:], kernel, strides, dilations)
    elif auto_pad == "VALID":
        p = [0] * (2 * n)
    else:
        p = list(pads) if pads is not None else [0] * (2 * n)
    return n, strides, dilations, p


@converter("MaxPool", 1)
def max_pool(cx, x, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
             dilations: list[int] | None = None, kernel_shape: list[int],
             pads: list[int] | None = None, storage_order: int = 0,
             strides: list[int] | None = None, _outputs: int = 1):  # fmt: skip
    n, strides, dilations, p = _pool_args(cx, x, auto_pad, pads, kernel_shape, strides,
                                          dilations, ceil_mode)  # fmt: skip
    same = sym_pads(p)
    dtype = cx.dtype(x)
    xin = x if dtype.is_floating_point else x.to(torch.float64)
    if same is None or any(2 * s > k for s, k in zip(same, kernel_shape)):
        xin = F.pad(xin, torch_pad(p), value=-math.inf)
        same = [0] * n
    if _outputs == 1:
        y = _MAX[n](xin, kernel_shape, strides, same, dilations, bool(ceil_mode))
        return y if dtype.is_floating_point else y.to(dtype)
    y, idx = _MAX[n](xin, kernel_shape, strides, same, dilations, bool(ceil_mode),
                     return_indices=True)  # fmt: skip
    y = y if dtype.is_floating_point else y.to(dtype)
    if sym_pads(p) != same:  # padded here: indices count in the padded dims, made the input's
        spatial_in = cx.static_shape(x)[2:]
        padded = [d + p[i] + p[i + n] for i, d in enumerate(spatial_in)]
        flat = torch.zeros_like(idx)
        for i in range(n):
            stride_p, stride_in = math.prod(padded[i + 1 :]), math.prod(spatial_in[i + 1 :])
            flat = flat + ((idx // stride_p) % padded[i] - p[i]) * stride_in
        idx = flat
    if storage_order:
        shape = cx.static_shape(x)
        h, w = shape[2], shape[3]
        idx = (idx % w) * h + idx // w
    spatial = math.prod(cx.static_shape(x)[2:])
    c = cx.static_shape(x)[1]
    base = (
        torch.arange(cx.static_shape(x)[0] * c).reshape(cx.static_shape(x)[0], c, *[1] * n)
        * spatial
    )
    return y, idx + base


def _dilated_average(x, spatial, kernel, strides, dilations, pads, ceil_mode, include_pad):
    """Average pooling with dilations, tap by tap: the sum of the strided slices at each kernel
    offset over x padded with zeros, divided by the count of real (or explicitly padded)
    elements each window covers; a window past the pads (ceil_mode) counts only what it covers."""
    n = len(kernel)
    begins, ends = pads[:n], pads[n:]
    outs, extra = [], []
    for size, k, s, d, b, e in zip(spatial, kernel, strides, dilations, begins, ends):
        span = (k - 1) * d + 1
        room = size + b + e - span
        out = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (out - 1) * s >= size + b:  # the last window must start inside
            out -= 1
        outs.append(out)
        extra.append(max(0, (out - 1) * s + span - (size + b + e)))
    real = torch.ones((1, 1) + tuple(spatial), dtype=x.dtype)
    inside = F.pad(real, torch_pad(pads), value=1.0)  # real elements and explicit pads
    grow = torch_pad([0] * n + extra)
    xp = F.pad(F.pad(x, torch_pad(pads)), grow)
    real, inside = F.pad(F.pad(real, torch_pad(pads)), grow), F.pad(inside, grow)
    total = count = 0
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(offset, dilations, outs, strides)
        )
        total = total + xp[index]
        count = count + (inside if include_pad else real)[index]
    return total / count


@converter("AveragePool", 1)
def average_pool(cx, x, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                 count_include_pad: int = 0, dilations: list[int] | None = None,
                 kernel_shape: list[int], pads: list[int] | None = None,
                 strides: list[int] | None = None):  # fmt: skip
    n, strides, dilations, p = _pool_args(cx, x, auto_pad, pads, kernel_shape, strides,
                                          dilations, ceil_mode)  # fmt: skip
    if any(d != 1 for d in dilations):
        shape = cx.static_shape(x)
        if shape is None:
            raise cx.fail("AveragePool with dilations needs static spatial dims")
        return _dilated_average(x, shape[2:], kernel_shape, strides, dilations, p,
                                bool(ceil_mode), bool(count_include_pad))  # fmt: skip
    same = sym_pads(p)
    if same is not None and all(2 * s <= k for s, k in zip(same, kernel_shape)):
        return _AVG[n](x, kernel_shape, strides, same, bool(ceil_mode), bool(count_include_pad))
    # asymmetric pads: pad explicitly, divide by the count of real (or padded) elements
    padded = F.pad(x, torch_pad(p))
    total = _AVG[n](padded, kernel_shape, strides, 0, bool(ceil_mode), True)
    if count_include_pad:
        return total
    ones = F.pad(torch.ones_like(x), torch_pad(p))
    count = _AVG[n](ones, kernel_shape, strides, 0, bool(ceil_mode), True)
    return total / count


@converter("GlobalAveragePool", 1)
def global_average_pool(cx, x):
    return torch.mean(x, list(range(2, cx.rank(x))), keepdim=True)


@converter("GlobalMaxPool", 1)
def global_max_pool(cx, x):
    return torch.amax(x, list(range(2, cx.rank(x))), keepdim=True)


@converter("LpPool", 1)
def lp_pool(cx, x, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
            dilations: list[int] | None = None, kernel_shape: list[int], p: int = 2,
            pads: list[int] | None = None, strides: list[int] | None = None):  # fmt: skip
    n, strides, dilations, pp = _pool_args(cx, x, auto_pad, pads, kernel_shape, strides,
                                           dilations, ceil_mode)  # fmt: skip
    y = F.pad(torch.abs(x) ** p, torch_pad(pp))
    w = torch.ones(cx.shape(x)[1], 1, *kernel_shape, dtype=cx.dtype(x))
    s = _CONV[n](y, w, None, strides, 0, dilations, cx.shape(x)[1])
    return s ** (1.0 / p)


@converter("GlobalLpPool", 2)
def global_lp_pool(cx, x, *, p: int = 2):
    return torch.sum(torch.abs(x) ** p, list(range(2, cx.rank(x))), keepdim=True) ** (1.0 / p)


# --- normalizations ------------------------------------------------------------------------
@converter("BatchNormalization", 1)
def batch_norm(cx, x, scale, bias, mean, var, *, epsilon: float = 1e-5, momentum: float = 0.9,
               training_mode: int = 0, spatial: int = 1, is_test: int = 0,
               _outputs: int = 1):  # fmt: skip
    shape = [1, -1] + [1] * (cx.rank(x) - 2)
    if training_mode or _outputs > 1 and cx.opset() >= 14:
        # the batch's statistics normalize; the running ones move toward them by momentum
        axes = [0] + list(range(2, cx.rank(x)))
        cur_mean = torch.mean(x, axes)
        cur_var = torch.mean((x - cur_mean.reshape(shape)) ** 2, axes)
        factor = (scale * torch.rsqrt(cur_var + epsilon)).reshape(shape)
        y = (x - cur_mean.reshape(shape)) * factor + bias.reshape(shape)
        run_mean = mean * momentum + cur_mean * (1 - momentum)
        run_var = var * momentum + cur_var * (1 - momentum)
        return y, run_mean, run_var
    # written out: the statistics are parameters too (trainable like every float weight),
    # which F.batch_norm refuses to differentiate
    factor = (scale * torch.rsqrt(var + epsilon)).reshape(shape)
    return (x - mean.reshape(shape)) * factor + bias.reshape(shape)


@converter("InstanceNormalization", 1)
def instance_norm(cx, x, scale, bias, *, epsilon: float = 1e-5):
    return F.instance_norm(x, weight=scale, bias=bias, eps=epsilon)


@converter("LayerNormalization", 17)
def layer_norm(cx, x, scale, bias=None, *, axis: int = -1, epsilon: float = 1e-5,
               stash_type: int = 1, _outputs: int = 1):  # fmt: skip
    shape = cx.shape(x)
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    dims = list(range(axis, rank))
    dtype = cx.dtype(x)
    normalized = shape[axis:]
    if (_outputs == 1 and dtype == torch.float32 and all(isinstance(d, int) for d in normalized)
            and cx.shape(scale) == normalized
            and (bias is None or cx.shape(bias) == normalized)):  # fmt: skip
        # torch's own kernel: one pass, where the written-out form below makes six
        return F.layer_norm(x, normalized, scale, bias, epsilon)
    xf = x.to(torch.float32) if stash_type == 1 and dtype != torch.float64 else x
    mean = torch.mean(xf, dims, keepdim=True)
    centered = xf - mean
    var = torch.mean(centered * centered, dims, keepdim=True)
    inv = torch.rsqrt(var + epsilon)
    y = (centered * inv).to(dtype) * scale
    if bias is not None:
        y = y + bias
    return (y, mean, inv)[:_outputs] if _outputs > 1 else y


@converter("RMSNormalization", 23)
def rms_norm(cx, x, scale, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1):
    rank = cx.rank(x)
    axis = axis + rank if axis < 0 else axis
    dtype = cx.dtype(x)
    xf = x.to(torch.float32) if stash_type == 1 and dtype != torch.float64 else x
    ms = torch.mean(xf * xf, list(range(axis, rank)), keepdim=True)
    return (xf * torch.rsqrt(ms + epsilon)).to(dtype) * scale


@converter("GroupNormalization", 18)
def group_norm_18(cx, x, scale, bias, *, epsilon: float = 1e-5, num_groups: int,
                  stash_type: int = 1):  # fmt: skip
    c = cx.shape(x)[1]
    per = c // num_groups
    return _group_norm(cx, x, scale.repeat_interleave(per), bias.repeat_interleave(per),
                       epsilon, num_groups, stash_type)  # fmt: skip


@converter("GroupNormalization", 21)
def group_norm(cx, x, scale, bias, *, epsilon: float = 1e-5, num_groups: int,
               stash_type: int = 1):  # fmt: skip
    return _group_norm(cx, x, scale, bias, epsilon, num_groups, stash_type)


def _group_norm(cx, x, scale, bias, epsilon, groups, stash_type):
    dtype = cx.dtype(x)
    xf = x.to(torch.float32) if stash_type == 1 and dtype != torch.float64 else x
    y = F.group_norm(xf, groups, None, None, epsilon).to(dtype)
    shape = [1, -1] + [1] * (cx.rank(x) - 2)
    return y * scale.reshape(shape) + bias.reshape(shape)


@converter("LRN", 1)
def lrn(cx, x, *, alpha: float = 0.0001, beta: float = 0.75, bias: float = 1.0, size: int):
    sq = x * x
    rank = cx.rank(x)
    c = cx.shape(x)[1]
    pad = [0, 0] * (rank - 2) + [(size - 1) // 2, size - 1 - (size - 1) // 2]
    padded = F.pad(sq, pad)
    total = sum(padded.narrow(1, i, c) for i in range(size))
    return x / (bias + alpha / size * total) ** beta


@converter("LpNormalization", 1)
def lp_normalization(cx, x, *, axis: int = -1, p: int = 2):
    if p == 1:
        norm = torch.sum(torch.abs(x), axis, keepdim=True)
    else:
        norm = torch.sqrt(torch.sum(x * x, axis, keepdim=True))
    return torch.where(norm == 0, torch.zeros_like(x), x / norm)


@converter("MeanVarianceNormalization", 9)
def mean_variance_normalization(cx, x, *, axes: list[int] | None = None):
    axes = axes if axes is not None else [0, 2, 3]
    mean = torch.mean(x, axes, keepdim=True)
    var = torch.mean((x - mean) ** 2, axes, keepdim=True)
    return (x - mean) / (torch.sqrt(var) + 1e-9)


def _train_dropout(x, ratio, training_mode):
    """Dropout as in training: each element kept with probability 1 - ratio, scaled up."""
    keep = torch.ones_like(x, dtype=torch.bool)
    r = 0.5 if ratio is None else float(ratio.reshape(()))
    if not bool(training_mode.reshape(())) or r == 0.0:
        return x, keep
    keep = torch.rand(x.shape) >= r
    return torch.where(keep, x / (1.0 - r), torch.zeros_like(x)), keep


@converter("Dropout", 1)
def dropout(cx, x, ratio=None, training_mode=None, *, is_test: int = 0,
            seed: int | None = None, _outputs: int = 1, **legacy):  # fmt: skip
    if training_mode is not None:
        t = cx.const(training_mode)
        if t is None or bool(t):
            out = cx.call(_train_dropout, x, ratio, training_mode)
            return out[0] if _outputs == 1 else (out[0], out[1])
    if _outputs == 1:
        return x
    return x, torch.ones_like(x, dtype=torch.bool)


def _causal_conv(x, weight, bias, past_state, activation: str):
    bsz, c, length = x.shape
    k = weight.shape[2]
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if past_state is None:
        past = torch.zeros((bsz, c, k - 1), dtype=dtype)
    else:
        past = past_state.to(dtype)
    seq = torch.cat([past, x.to(dtype)], dim=2)
    w = weight.to(dtype).reshape(c, k)
    y = seq[:, :, 0:length] * w[None, :, 0:1]
    for j in range(1, k):  # tap by tap, as the reference sums
        y = y + seq[:, :, j : j + length] * w[None, :, j : j + 1]
    if bias is not None:
        y = y + bias.to(dtype)[None, :, None]
    if activation != "none":
        y = y / (1 + torch.exp(-y))
    present = seq[:, :, seq.shape[2] - (k - 1) :]
    return y.to(x.dtype), present.to(x.dtype)


@converter("CausalConvWithState", 27)
def causal_conv_with_state(cx, x, weight, bias=None, past_state=None, *,
                           activation: str = "none"):  # fmt: skip
    """Depthwise causal 1-D convolution over [past_state, x]; also the new state."""
    if activation not in ("none", "silu", "swish"):
        raise cx.fail(f"activation must be 'none', 'silu' or 'swish', got {activation!r}")
    out = cx.call(_causal_conv, x, weight, bias, past_state, activation)
    return out[0], out[1]
