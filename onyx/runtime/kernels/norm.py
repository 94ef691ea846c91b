"""Normalization kernels: batch, instance, layer, group, RMS, Lp, LRN, mean-variance."""

from __future__ import annotations

import functools
import math

import numpy as np

from onyx.dtypes import to_numpy
from onyx.errors import KernelError, UnknownDataTypeError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import F32, F64, cast, work_dtype
from onyx.runtime.kernels.registry import SESSION_DOMAIN, kernel


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise KernelError(f"{what} {axis} is out of range for an input of rank {rank}")
    return axis % rank if rank else 0


def _channel_view(p: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector (C,) shaped to broadcast against (N, C, D1, ...)."""
    return p.reshape((1, -1) + (1,) * (rank - 2))


def _check_channels(x: np.ndarray, name: str, p: np.ndarray, size: int) -> None:
    if p.size != size:
        raise KernelError(f"{name} has {p.size} elements, expected {size} (shape {p.shape})")


# --- BatchNormalization --------------------------------------------------------------------
def _bn_apply(x, scale, b, mean, var, epsilon, spatial=True):
    """(x - mean) / sqrt(var + eps) * scale + b with per-channel (or per-feature) parameters."""
    if x.ndim < 2:
        raise KernelError(f"BatchNormalization expects X of rank >= 2, got shape {x.shape}")
    wt = work_dtype(x.dtype)
    c = x.shape[1]
    params = [cast(np.asarray(p), wt) for p in (scale, b, mean, var)]
    if spatial:
        for name, p in zip(("scale", "B", "mean", "var"), params):
            _check_channels(x, name, p, c)
        params = [_channel_view(p, x.ndim) for p in params]
    else:
        feat = x.shape[1:]
        try:
            params = [np.broadcast_to(p.reshape(p.shape), feat)[None] for p in params]
        except ValueError:
            raise KernelError(
                f"non-spatial BatchNormalization needs parameters of shape {feat}"
            ) from None
    s, bb, m, v = params
    mult = s / np.sqrt(v + wt.type(epsilon))
    shift = bb - m * mult
    y = cast(x, wt) * mult
    y += shift
    return cast(y, x.dtype)


def _batch_stats(x: np.ndarray, spatial: bool = True):
    wt = work_dtype(x.dtype)
    axes = (0,) + tuple(range(2, x.ndim)) if spatial else (0,)
    xf = cast(x, wt)
    mean = xf.mean(axis=axes)
    var = xf.var(axis=axes)
    return mean, var


@kernel("BatchNormalization", 1, 6, 7, 9)
class BatchNormalizationLegacy:
    """Versions 1-9: inference by default; with extra outputs, training statistics."""

    def __init__(self, *, epsilon=1e-5, momentum=0.9, spatial=1, is_test=0,
                 consumed_inputs=None, _outputs=1):  # fmt: skip
        self.epsilon, self.momentum = epsilon, momentum
        self.spatial = bool(spatial)
        self.training = _outputs > 1 and not is_test

    def __call__(self, x, scale, b, mean, var):
        if not self.training:
            return _bn_apply(x, scale, b, mean, var, self.epsilon, self.spatial)
        cur_mean, cur_var = _batch_stats(x, self.spatial)
        shape = mean.shape
        y = _bn_apply(x, scale, b, cur_mean, cur_var, self.epsilon, self.spatial)
        m = self.momentum
        run_mean = (mean * m + cur_mean.reshape(shape) * (1 - m)).astype(mean.dtype)
        run_var = (var * m + cur_var.reshape(shape) * (1 - m)).astype(var.dtype)
        return (y, run_mean, run_var, cur_mean.astype(mean.dtype).reshape(shape),
                cur_var.astype(var.dtype).reshape(shape))  # fmt: skip


@kernel("BatchNormalization", 14)
def batch_normalization(x, scale, b, input_mean, input_var, *, epsilon=1e-5, momentum=0.9,
                        training_mode=0):  # fmt: skip
    """Y (inference) or Y, running_mean, running_var (training_mode=1)."""
    if not training_mode:
        return _bn_apply(x, scale, b, input_mean, input_var, epsilon)
    cur_mean, cur_var = _batch_stats(x)
    y = _bn_apply(x, scale, b, cur_mean, cur_var, epsilon)
    run_mean = input_mean * momentum + cur_mean * (1 - momentum)
    run_var = input_var * momentum + cur_var * (1 - momentum)
    return y, cast(run_mean, input_mean.dtype), cast(run_var, input_var.dtype)


# --- Instance / Group normalization --------------------------------------------------------
def _standardize(xf: np.ndarray, axis: int, epsilon: float):
    """(x - mean) / sqrt(var + eps) over the trailing dims of a 2-D-or-more view from ``axis``.

    ``xf`` is reshaped to (outer, inner); returns (normalized (outer, inner), mean, inv_std).
    """
    outer = int(np.prod(xf.shape[:axis], dtype=np.int64))
    inner = int(np.prod(xf.shape[axis:], dtype=np.int64))
    x2 = xf.reshape(outer, inner)
    if inner == 0:
        z = np.zeros((outer, 1), xf.dtype)
        return x2.copy(), z, z + np.inf
    mean = np.add.reduce(x2, axis=1, keepdims=True)
    mean /= inner
    d = x2 - mean
    var = np.einsum("ij,ij->i", d, d)[:, None]
    var /= inner
    var += xf.dtype.type(epsilon)
    inv = np.sqrt(var, out=var)
    np.divide(1, inv, out=inv)
    d *= inv
    return d, mean, inv


@kernel("InstanceNormalization", 1, 6)
def instance_normalization(x, scale, b, *, epsilon=1e-5, consumed_inputs=None):
    """Per (n, c) standardization over the spatial dims, then per-channel scale and bias."""
    if x.ndim < 2:
        raise KernelError(f"InstanceNormalization expects rank >= 2, got shape {x.shape}")
    c = x.shape[1]
    _check_channels(x, "scale", scale, c)
    _check_channels(x, "B", b, c)
    wt = work_dtype(x.dtype)
    d, _, _ = _standardize(cast(x, wt), 2, epsilon)
    y = d.reshape(x.shape)
    y *= _channel_view(cast(scale, wt), x.ndim)
    y += _channel_view(cast(b, wt), x.ndim)
    return cast(y, x.dtype)


@kernel("GroupNormalization", 18)
class GroupNormalization18:
    """Opset 18: ``scale`` and ``bias`` have one value per group."""

    per_channel = False

    def __init__(self, *, num_groups, epsilon=1e-5, stash_type=1):
        if num_groups <= 0:
            raise KernelError(f"num_groups must be positive, got {num_groups}")
        self.groups, self.epsilon = num_groups, epsilon

    def __call__(self, x, scale, bias):
        if x.ndim < 2:
            raise KernelError(f"GroupNormalization expects rank >= 2, got shape {x.shape}")
        n, c = x.shape[:2]
        g = self.groups
        if c % g:
            raise KernelError(f"{c} channels are not divisible into num_groups={g}")
        want = c if self.per_channel else g
        _check_channels(x, "scale", scale, want)
        _check_channels(x, "bias", bias, want)
        wt = work_dtype(x.dtype)
        xf = cast(x, wt).reshape((n, g, -1))
        d, _, _ = _standardize(xf, 2, self.epsilon)
        if not self.per_channel:
            scale, bias = np.repeat(scale, c // g), np.repeat(bias, c // g)
        if x.dtype != wt:  # stage two runs in the type of X
            wt = x.dtype
            d = d.astype(wt)
        y = d.reshape(x.shape)
        y *= _channel_view(cast(scale, wt), x.ndim)
        y += _channel_view(cast(bias, wt), x.ndim)
        return y


@kernel("GroupNormalization", 21)
class GroupNormalization21(GroupNormalization18):
    """Opset 21: ``scale`` and ``bias`` have one value per channel."""

    per_channel = True


# --- Layer / RMS normalization -------------------------------------------------------------
@functools.cache  # (a lookup per run of every normalization otherwise: a few us each)
def _stash(stash_type: int, xdtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(compute dtype, statistics output dtype) for a stash_type."""
    try:
        st = to_numpy(stash_type)
    except UnknownDataTypeError:
        raise KernelError(f"stash_type {stash_type} is not a valid element type") from None
    if st.kind != "f" and st.name != "bfloat16":
        raise KernelError(f"stash_type must be a floating type, got {st}")
    wt = F64 if F64 in (st, xdtype) else F32
    return wt, st


# Layer and RMS normalizations split over numba's threads in parts of this many values at
# least: a pass and a half over the row each, less work a value than the softmax's the pool's
# bound was set by. (Zen 5, the compiled LayerNorm alone, on one thread against two parts:
# 128x64 2.25 against 2.74 us, 256x64 3.82 against 3.58, 512x64 7.3 against 5.4.)
_NATIVE_ROWS = 1 << 13


def _compiled_rows(x, wt, axis, *params):
    """(the compiled kernels, x C-contiguous, rows, row width) where a Layer/RMS normalization
    of ``x`` over dims [axis, rank) can run compiled, row by row: x in the type it computes in
    (copied once to C order if it is a view in another: ConvNeXt's channel-last activations),
    each parameter (None: absent) of that type and exactly the normalized dims' shape."""
    if x.dtype != wt or x.size == 0:
        return None
    normalized = x.shape[axis:]
    if any(p is not None and (p.dtype != wt or p.shape != normalized) for p in params):
        return None
    jit = compiled.kernels(x.size)
    if jit is None:
        return None
    width = math.prod(normalized)
    return jit, np.ascontiguousarray(x), x.size // width, width


@kernel("LayerNormalization", 1, domain=SESSION_DOMAIN)
@kernel("LayerNormalization", 17)
class LayerNormalization:
    """Standardize over dims [axis, rank), then scale and shift; optional Mean and InvStdDev."""

    def __init__(self, *, axis=-1, epsilon=1e-5, stash_type=1):
        self.axis, self.epsilon, self.stash_type = axis, epsilon, stash_type

    def __call__(self, x, scale, b=None):
        axis = _axis(self.axis, x.ndim)
        wt, st = _stash(self.stash_type, x.dtype)
        stat_shape = x.shape[:axis] + (1,) * (x.ndim - axis)
        rows = _compiled_rows(x, wt, axis, scale, b)
        if rows is not None:
            jit, x, outer, width = rows
            y, mean, inv = np.empty_like(x), np.empty(outer, wt), np.empty(outer, wt)
            bias = np.zeros(width, wt) if b is None else b
            consts = np.array([1 / width, self.epsilon, 1], wt)
            flat = (x.reshape(-1), scale.reshape(-1), bias.reshape(-1), y.reshape(-1), mean, inv)
            threads.rows(outer, x.size, lambda r0, r1: jit.layer_norm(*flat, width, consts, r0, r1),
                         native=lambda par, parts: par.layer_norm_bands(*flat, width, consts, outer,
                                                                        parts),
                         native_minimum=_NATIVE_ROWS)  # fmt: skip
            return y, cast(mean.reshape(stat_shape), st), cast(inv.reshape(stat_shape), st)
        d, mean, inv = _standardize(cast(x, wt), axis, self.epsilon)
        y = d.reshape(x.shape)
        try:
            if np.broadcast_shapes(scale.shape, x.shape) != x.shape or (
                b is not None and np.broadcast_shapes(b.shape, x.shape) != x.shape
            ):
                raise ValueError
            y *= cast(scale, wt)
            if b is not None:
                y += cast(b, wt)
        except ValueError:
            got = scale.shape if b is None else (scale.shape, b.shape)
            raise KernelError(
                f"Scale/B of shape {got} do not broadcast to X of shape {x.shape}"
            ) from None
        return (cast(y, x.dtype), cast(mean.reshape(stat_shape), st),
                cast(inv.reshape(stat_shape), st))  # fmt: skip


@kernel("RMSNormalization", 1, domain=SESSION_DOMAIN)
@kernel("RMSNormalization", 23)
class RMSNormalization:
    """x / sqrt(mean(x^2) + eps) over dims [axis, rank), times scale."""

    def __init__(self, *, axis=-1, epsilon=1e-5, stash_type=1):
        self.axis, self.epsilon, self.stash_type = axis, epsilon, stash_type

    def __call__(self, x, scale):
        axis = _axis(self.axis, x.ndim)
        wt, _ = _stash(self.stash_type, x.dtype)
        rows = _compiled_rows(x, wt, axis, scale)
        if rows is not None:
            jit, x, outer, width = rows
            y = np.empty_like(x)
            consts = np.array([1 / width, self.epsilon, 1], wt)
            flat = (x.reshape(-1), scale.reshape(-1), y.reshape(-1))
            threads.rows(outer, x.size, lambda r0, r1: jit.rms_norm(*flat, width, consts, r0, r1),
                         native=lambda par, parts: par.rms_norm_bands(*flat, width, consts, outer,
                                                                      parts),
                         native_minimum=_NATIVE_ROWS)  # fmt: skip
            return y
        xf = cast(x, wt)
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        x2 = xf.reshape(outer, -1) if x.size else xf.reshape(outer, 0)
        inner = x2.shape[1]
        ms = np.einsum("ij,ij->i", x2, x2)[:, None] / max(inner, 1)
        ms += wt.type(self.epsilon)
        y = x2 / np.sqrt(ms)
        y = y.reshape(x.shape)
        try:
            if np.broadcast_shapes(scale.shape, x.shape) != x.shape:
                raise ValueError
            y *= cast(scale, wt)
        except ValueError:
            raise KernelError(
                f"scale of shape {scale.shape} does not broadcast to X of shape {x.shape}"
            ) from None
        return cast(y, scale.dtype)


# --- Lp / LRN / MVN ------------------------------------------------------------------------
@kernel("LpNormalization", 1)
def lp_normalization(x, *, axis=-1, p=2):
    """x / ||x||_p along ``axis`` (p is 1 or 2); zero where the norm is zero."""
    if p not in (1, 2):
        raise KernelError(f"LpNormalization supports p=1 or p=2, got p={p}")
    axis = _axis(axis, x.ndim)
    wt = work_dtype(x.dtype)
    xf = cast(x, wt)
    norm = (
        np.abs(xf).sum(axis, keepdims=True)
        if p == 1
        else np.sqrt(np.square(xf).sum(axis, keepdims=True))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(norm == 0, wt.type(0), xf / norm)
    return cast(y, x.dtype)


@kernel("LRN", 1)
def lrn(x, *, size, alpha=1e-4, beta=0.75, bias=1.0):
    """Local response normalization across channels:
    x / (bias + alpha / size * (sum of x^2 over the channel window)) ** beta."""
    if size <= 0:
        raise KernelError(f"LRN size must be positive, got {size}")
    if x.ndim < 2:
        raise KernelError(f"LRN expects rank >= 2, got shape {x.shape}")
    wt = work_dtype(x.dtype)
    c = x.shape[1]
    below, above = (size - 1) // 2, -(-(size - 1) // 2)  # the window is [i - below, i + above]
    root = _LRN_ROOTS.get(beta)
    jit = compiled.kernels(x.size) if wt == x.dtype and root is not None else None
    if jit is not None:  # (the same values in one pass, over the pool's threads by pixels)
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], c, math.prod(x.shape[2:]))
        y = np.empty_like(x3)
        consts = np.array([alpha / size, bias], wt)
        threads.rows(x3.shape[2], x.size,
                     lambda p0, p1: jit.lrn(x3, y, consts, below, above, root, p0, p1),
                     native=lambda par, parts: par.lrn_bands(x3, y, consts, below, above, root,
                                                             parts))  # fmt: skip
        return y.reshape(x.shape)
    xf = cast(x, wt)
    sq = np.square(xf)
    denominator = sq.copy()
    for k in range(1, min(below, c - 1) + 1):  # a sum of shifted slices: size is small
        denominator[:, k:] += sq[:, : c - k]
    for k in range(1, min(above, c - 1) + 1):
        denominator[:, : c - k] += sq[:, k:]
    denominator *= wt.type(alpha / size)
    denominator += wt.type(bias)
    _power_in_place(denominator, beta)
    return cast(np.divide(xf, denominator, out=denominator), x.dtype)


_LRN_ROOTS = {1: 0, 0.5: 1, 0.75: 2}  # the exponents _power_in_place takes by square roots


def _power_in_place(t: np.ndarray, beta: float) -> None:
    """t **= beta, through square roots for the common exponents (several times faster)."""
    if beta == 1:
        return
    if beta == 0.5:
        np.sqrt(t, out=t)
    elif beta == 0.75:
        root = np.sqrt(t)
        np.sqrt(root, out=t)
        t *= root
    else:
        np.power(t, t.dtype.type(beta), out=t)


@kernel("MeanVarianceNormalization", 9)
def mean_variance_normalization(x, *, axes=(0, 2, 3)):
    """(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over ``axes``."""
    axes = tuple(_axis(a, x.ndim, "axes entry") for a in axes)
    wt = work_dtype(x.dtype)
    xf = cast(x, wt)
    mean = xf.mean(axis=axes, keepdims=True)
    var = np.square(xf).mean(axis=axes, keepdims=True) - np.square(mean)
    std = np.sqrt(np.maximum(var, 0)) + wt.type(1e-9)
    return cast((xf - mean) / std, x.dtype)
