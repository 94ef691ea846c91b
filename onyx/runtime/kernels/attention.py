"""Attention kernels: Attention (23, 24, 25), RotaryEmbedding (23), LinearAttention (27)."""

from __future__ import annotations

import math

import numpy as np

from onyx.dtypes import to_numpy
from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import F64, cast, work_dtype
from onyx.runtime.kernels.registry import SESSION_DOMAIN, kernel


def _heads(x: np.ndarray, num_heads: int | None, name: str) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D) view; a 4-D input passes through."""
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise KernelError(f"{name} must be 3-D or 4-D, got shape {x.shape}")
    if not num_heads or x.shape[2] % num_heads:
        raise KernelError(
            f"{name} of shape {x.shape} needs a head count attribute dividing {x.shape[2]}, "
            f"got {num_heads}"
        )
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _softmax_rows(s: np.ndarray, guard: bool) -> np.ndarray:
    """Softmax over the last axis (in place, or compiled into a new array: use the result);
    fully masked rows (all -inf) become zeros if guard."""
    if s.dtype == np.float32 and s.flags.c_contiguous and compiled.kernels(s.size) is not None:
        from onyx.runtime import _jit_exp  # each row while in cache (linalg's Softmax too)

        n = s.shape[-1]
        y = threads.last_axis(_jit_exp.softmax, s,
                              native=lambda par, x, y, parts: par.softmax_bands(x, y, n, parts))  # fmt: skip
        if guard:  # the compiled rows whose maximum is not finite are NaN: zeros if all -inf
            rows, ys = s.reshape(-1, s.shape[-1]), y.reshape(-1, s.shape[-1])
            odd = np.flatnonzero(np.isnan(ys[:, 0]))
            if odd.size:
                ys[odd[(rows[odd] == -np.inf).all(axis=1)]] = 0
        return y
    m = s.max(axis=-1, keepdims=True)
    if guard:
        m[~np.isfinite(m)] = 0
    s -= m
    np.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    if guard:
        total[total == 0] = 1
    s /= total
    return s


_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _covering(mask: np.ndarray, dtype: np.dtype, total: int) -> bool:
    """Whether ``mask`` is a boolean mask or an additive one of ``dtype``, covering all
    ``total`` keys."""
    return (
        (mask.dtype == dtype or mask.dtype == np.bool_)
        and mask.ndim <= 4
        and (mask.ndim == 0 or mask.shape[-1] == total)
    )


def _stack(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(B, H, rows, cols) as (B * H, rows, cols) matrices BLAS reads as they are (a copy only
    where the two leading axes do not merge, or neither last axis has a unit stride)."""
    x = x.reshape(-1, rows, cols)
    if x.strides[-1] == x.itemsize or x.strides[-2] == x.itemsize:
        return x
    return np.ascontiguousarray(x)


class _Attention:
    """Scaled dot-product attention with masks, causal/window bounds, GQA, caches and softcap."""

    has_window = False

    def __init__(self, *, is_causal=0, kv_num_heads=None, q_num_heads=None,
                 qk_matmul_output_mode=0, scale=None, softcap=0.0, softmax_precision=None,
                 left_window_size=-1, right_window_size=-1, _outputs=4):  # fmt: skip
        if qk_matmul_output_mode not in (0, 1, 2, 3):
            raise KernelError(f"qk_matmul_output_mode must be 0..3, got {qk_matmul_output_mode}")
        self.is_causal = bool(is_causal)
        self.kv_heads, self.q_heads = kv_num_heads, q_num_heads
        self.mode = qk_matmul_output_mode
        self.scale, self.softcap = scale, softcap
        self.softmax_dtype = None
        if softmax_precision is not None:
            self.softmax_dtype = to_numpy(softmax_precision)
            if self.softmax_dtype.kind != "f" and self.softmax_dtype.name != "bfloat16":
                raise KernelError(
                    f"softmax_precision must be a float type, got {softmax_precision}"
                )
        self.left, self.right = left_window_size, right_window_size
        self.want_qk = _outputs >= 4
        self._causal: dict = {}  # (Sq, T, dtype) -> the causal mask as 0 / -inf, built once

    def __call__(self, q, k, v, attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=None):  # fmt: skip
        out_dtype = q.dtype
        rank = q.ndim
        if not (k.ndim == v.ndim == rank):
            raise KernelError(
                f"Q, K, V must have the same rank, got {q.shape}, {k.shape}, {v.shape}"
            )
        qh = _heads(q, self.q_heads, "Q")
        kh = _heads(k, self.kv_heads, "K")
        vh = _heads(v, self.kv_heads, "V")
        b, hq, sq, d = qh.shape
        hkv = kh.shape[1]
        if kh.shape[0] != b or vh.shape[:2] != (b, hkv) or kh.shape[3] != d:
            raise KernelError(f"incompatible Q/K/V head shapes {qh.shape}, {kh.shape}, {vh.shape}")
        if kh.shape[2] != vh.shape[2]:
            raise KernelError(f"K and V sequence lengths differ: {kh.shape[2]} vs {vh.shape[2]}")
        if hkv == 0 or hq % hkv:
            raise KernelError(f"q_num_heads {hq} must be a multiple of kv_num_heads {hkv}")
        past = 0
        if (past_key is None) != (past_value is None):
            raise KernelError("past_key and past_value must be given together")
        if past_key is not None:
            if past_key.shape[:2] != (b, hkv) or past_key.shape[3] != d:
                raise KernelError(f"past_key has shape {past_key.shape}, expected "
                                  f"({b}, {hkv}, past_len, {d})")  # fmt: skip
            if past_value.shape[:3] != past_key.shape[:3] or past_value.shape[3] != vh.shape[3]:
                raise KernelError(f"past_value has shape {past_value.shape}, expected "
                                  f"{past_key.shape[:3] + (vh.shape[3],)}")  # fmt: skip
            past = past_key.shape[2]
            kh = np.concatenate([past_key, cast(kh, past_key.dtype)], axis=2)
            vh = np.concatenate([past_value, cast(vh, past_value.dtype)], axis=2)
        present_k, present_v = kh, vh
        total = kh.shape[2]
        dv = vh.shape[3]
        if self._plain(q, attn_mask, past, nonpad_kv_seqlen, total):
            y = self._fast(qh, kh, vh, attn_mask, rank)
            return y, present_k, present_v

        # The steps of the operator's function body, each in T where T is a 16-bit float, as
        # that body defines them (the softmax too, unless softmax_precision says otherwise;
        # matrix products accumulate in float32 either way); float32 and float64 in their own.
        wt = out_dtype if out_dtype.itemsize < 4 else work_dtype(out_dtype)
        if self.softmax_dtype is not None and self.softmax_dtype == F64:
            wt = F64
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(d)
        root = wt.type(math.sqrt(scale))  # the body scales Q and K by its square root each
        group = hq // hkv
        # GQA without copies: query heads of one kv head are stacked along the query rows
        qg = (cast(qh, wt) * root).reshape(b, hkv, group * sq, d)
        scores = cast(np.matmul(qg, (cast(kh, wt) * root).swapaxes(-1, -2)), wt)
        scores = scores.reshape(b, hq, sq, total)
        qk_out = scores.copy() if self.want_qk and self.mode == 0 else None
        if self.softcap:
            cap = wt.type(self.softcap)
            scores /= cap
            np.tanh(scores, out=scores)
            scores *= cap
        if self.want_qk and self.mode == 1:
            qk_out = scores.copy()

        bias, guard = self._bias(attn_mask, b, hq, sq, total, past, nonpad_kv_seqlen, wt)
        if bias is not None:
            scores += bias
        if self.want_qk and self.mode == 2:
            qk_out = scores.copy()
        sd = wt if self.softmax_dtype is None else self.softmax_dtype
        probs = cast(_softmax_rows(cast(scores, sd), guard), wt)
        if self.want_qk and self.mode == 3:
            qk_out = probs
        y = cast(np.matmul(probs.reshape(b, hkv, group * sq, total), cast(vh, wt)), wt)
        y = y.reshape(b, hq, sq, dv)
        if rank == 3:
            y = y.transpose(0, 2, 1, 3).reshape(b, sq, hq * dv)
        y = cast(y, out_dtype)
        if qk_out is None:
            qk_out = np.zeros((b, hq, sq, total), out_dtype) if self.want_qk else None
        outs = (y, present_k, present_v)
        if self.want_qk:
            outs += (cast(qk_out, out_dtype),)
        return outs

    def _plain(self, q, mask, past, nonpad, total) -> bool:
        """Whether the run is the common case ``_fast`` computes: float32/64, no cache, no
        window bounds, no softcap, no requested scores, a mask absent, boolean or additive of
        q's type; causal or not."""
        return (
            q.dtype in _FAST_DTYPES
            and not self.want_qk
            and not self.softcap
            and not past
            and nonpad is None
            and not (self.has_window and (self.left >= 0 or self.right >= 0))
            and (self.softmax_dtype is None or self.softmax_dtype == q.dtype)
            and (mask is None or _covering(mask, q.dtype, total))
        )

    def _fast(self, qh, kh, vh, mask, rank):
        """softmax(Q·Kᵀ·scale + mask)·V in the input's type: two batched GEMMs over the heads
        (onyx's own on numba's threads, each head's Kᵀ and V packed from their views as it
        goes; elsewhere BLAS, reading the views in place), the softmax on the scores, and the
        result written straight into the (B, S, H·Dv) layout for 3-D inputs. The scale is
        applied to Q once (the operator's body scales Q and K by its square root each: the
        same value to rounding)."""
        b, hq, sq, d = qh.shape
        hkv, total, dv = kh.shape[1], kh.shape[2], vh.shape[3]
        group = hq // hkv
        dt = qh.dtype.type
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(d)
        qs = np.multiply(qh, dt(scale), dtype=qh.dtype)  # (B, Hq, Sq, D), contiguous
        # query heads of one kv head stacked along the rows: GQA without copies of K and V;
        # the (B * Hkv) products split over the session's pool
        scores = np.empty((b * hkv, group * sq, total), qh.dtype)
        threads.batched_matmul(qs.reshape(b * hkv, group * sq, d),
                               _stack(kh.swapaxes(-1, -2), d, total), scores,
                               packed=True)  # fmt: skip
        scores = scores.reshape(b, hq, sq, total)
        guard = mask is not None
        if guard and mask.dtype == np.bool_:  # (the mask's own shape: one row per query at most)
            mask = np.where(mask, dt(0), dt(-np.inf))
        if guard:
            try:
                np.add(scores, mask, out=scores)
            except ValueError:
                raise KernelError(f"attn_mask of shape {mask.shape} does not broadcast to "
                                  f"{(b, hq, sq, total)}") from None  # fmt: skip
        if self.is_causal:  # (no cache here: query i sees keys 0..i, never a row of none)
            key = (sq, total, qh.dtype)
            causal = self._causal.get(key)
            if causal is None:
                causal = np.where(np.tri(sq, total, dtype=bool), dt(0), dt(-np.inf))
                self._causal[key] = causal
            np.add(scores, causal, out=scores)
        probs = _softmax_rows(scores, guard).reshape(b * hkv, group * sq, total)
        if rank == 3 and b == 1 and group == 1:  # each head straight into its columns of Y
            y = np.empty((1, sq, hq * dv), qh.dtype)
            heads = y.reshape(sq, hq, dv).transpose(1, 0, 2)
            threads.batched_matmul(probs, _stack(vh, total, dv), heads, packed=True)
            return y
        y = np.empty((b * hkv, group * sq, dv), qh.dtype)
        threads.batched_matmul(probs, _stack(vh, total, dv), y, packed=True)
        y = y.reshape(b, hq, sq, dv)
        return y.transpose(0, 2, 1, 3).reshape(b, sq, hq * dv) if rank == 3 else y

    def _bias(self, mask, b, hq, sq, total, past, nonpad, wt):
        """The additive bias (broadcastable to (B, Hq, Sq, T)) and whether rows may be empty."""
        bias = None
        guard = False
        if mask is not None:
            if mask.ndim > 4:
                raise KernelError(f"attn_mask must have rank <= 4, got shape {mask.shape}")
            if mask.dtype == np.bool_:
                bias = np.where(mask, wt.type(0), wt.type(-np.inf))
                guard = True
            else:
                bias = cast(mask, wt)
                guard = True
            last = bias.shape[-1] if bias.ndim else 1
            if bias.ndim and last < total:  # a short mask is padded with -inf
                pad = [(0, 0)] * (bias.ndim - 1) + [(0, total - last)]
                bias = np.pad(bias, pad, constant_values=-np.inf)
            try:
                np.broadcast_shapes(bias.shape, (b, hq, sq, total))
            except ValueError:
                raise KernelError(
                    f"attn_mask of shape {mask.shape} does not broadcast to {(b, hq, sq, total)}"
                ) from None
        offset = None  # per batch, (B, 1, 1, 1), or a scalar
        allowed = None
        j = np.arange(total)
        if nonpad is not None:
            nonpad = np.asarray(nonpad).astype(np.int64).reshape(-1)
            if nonpad.shape != (b,):
                raise KernelError(f"nonpad_kv_seqlen must have shape ({b},), got {nonpad.shape}")
            if ((nonpad < 0) | (nonpad > total)).any():
                raise KernelError(f"nonpad_kv_seqlen values must be in [0, {total}], "
                                  f"got {nonpad.tolist()}")  # fmt: skip
            allowed = j < nonpad[:, None, None, None]
            offset = (nonpad - sq)[:, None, None, None]
        else:
            offset = past
        windowed = self.has_window and (self.left >= 0 or self.right >= 0)
        if self.is_causal or windowed:
            pos = np.arange(sq)[:, None] + offset  # absolute query position
            bound = None
            if self.is_causal:
                bound = j <= pos
            if windowed and self.left >= 0:
                w = j >= pos - self.left
                bound = w if bound is None else bound & w
            if windowed and self.right >= 0:
                w = j <= pos + self.right
                bound = w if bound is None else bound & w
            allowed = bound if allowed is None else allowed & bound
        if allowed is not None:
            guard = True
            structural = np.where(allowed, wt.type(0), wt.type(-np.inf))
            bias = structural if bias is None else bias + structural
        return bias, guard


@kernel("Attention", 1, domain=SESSION_DOMAIN)
@kernel("Attention", 23)
class Attention(_Attention):
    """Opset 23/24 (24 adds nonpad_kv_seqlen, which the shared kernel accepts)."""


@kernel("Attention", 25)
class Attention25(_Attention):
    """Opset 25 adds left/right window bounds."""

    has_window = True


# --- RotaryEmbedding -----------------------------------------------------------------------
@kernel("RotaryEmbedding", 1, domain=SESSION_DOMAIN)
@kernel("RotaryEmbedding", 23)
class RotaryEmbedding:
    """Rotate the first ``rotary_embedding_dim`` features of each head by position angles."""

    def __init__(self, *, interleaved=0, num_heads=None, rotary_embedding_dim=0):
        self.interleaved = bool(interleaved)
        self.num_heads = num_heads
        self.rot_dim = rotary_embedding_dim

    def __call__(self, x, cos_cache, sin_cache, position_ids=None):
        if x.ndim == 4:
            b, _h, s, d = x.shape
            xv = x  # (B, H, S, D); angles (B, S, r/2) -> (B, 1, S, r/2)
        elif x.ndim == 3:
            b, s, hidden = x.shape
            if not self.num_heads or hidden % self.num_heads:
                raise KernelError(f"3-D input of shape {x.shape} needs num_heads dividing "
                                  f"{hidden}, got {self.num_heads}")  # fmt: skip
            d = hidden // self.num_heads
            xv = x.reshape(b, s, self.num_heads, d)  # angles -> (B, S, 1, r/2)
        else:
            raise KernelError(f"RotaryEmbedding input must be 3-D or 4-D, got shape {x.shape}")
        rd = self.rot_dim or d
        if rd % 2 or rd > d:
            raise KernelError(f"rotary_embedding_dim {rd} must be even and <= head size {d}")
        half = rd // 2
        if position_ids is not None:
            if position_ids.shape != (b, s):
                raise KernelError(f"position_ids must have shape {(b, s)}, "
                                  f"got {position_ids.shape}")  # fmt: skip
            n = cos_cache.shape[0]
            if position_ids.size and (position_ids.min() < 0 or position_ids.max() >= n):
                raise KernelError(f"position_ids must be in [0, {n}), got values in "
                                  f"[{position_ids.min()}, {position_ids.max()}]")  # fmt: skip
            cos, sin = cos_cache[position_ids], sin_cache[position_ids]
        else:
            cos, sin = cos_cache, sin_cache
        if cos.shape != (b, s, half) or sin.shape != (b, s, half):
            raise KernelError(f"cos/sin caches give shapes {cos.shape}/{sin.shape}, "
                              f"expected {(b, s, half)}")  # fmt: skip
        wt = work_dtype(x.dtype)
        cos, sin = cast(cos, wt), cast(sin, wt)
        cos, sin = (cos[:, None], sin[:, None]) if x.ndim == 4 else (cos[:, :, None],
                                                                      sin[:, :, None])  # fmt: skip
        y = xv.astype(wt, copy=True)
        if self.interleaved:
            x1, x2 = y[..., 0:rd:2].copy(), y[..., 1:rd:2].copy()
            y[..., 0:rd:2] = cos * x1 - sin * x2
            y[..., 1:rd:2] = sin * x1 + cos * x2
        else:
            x1, x2 = y[..., :half].copy(), y[..., half:rd].copy()
            y[..., :half] = cos * x1 - sin * x2
            y[..., half:rd] = sin * x1 + cos * x2
        return cast(y.reshape(x.shape), x.dtype)


# --- LinearAttention -----------------------------------------------------------------------
_RULES = ("linear", "gated", "delta", "gated_delta")


@kernel("LinearAttention", 27)
class LinearAttention:
    """Recurrent linear attention (linear, gated, delta, gated_delta) with GQA and a state."""

    def __init__(self, *, q_num_heads, kv_num_heads, scale=0.0, update_rule="gated_delta",
                 chunk_size=64):  # fmt: skip
        if update_rule not in _RULES:
            raise KernelError(f"update_rule must be one of {_RULES}, got {update_rule!r}")
        if kv_num_heads <= 0 or q_num_heads <= 0 or q_num_heads % kv_num_heads:
            raise KernelError(f"q_num_heads ({q_num_heads}) must be a positive multiple of "
                              f"kv_num_heads ({kv_num_heads})")  # fmt: skip
        self.hq, self.hkv, self.scale, self.rule = q_num_heads, kv_num_heads, scale, update_rule

    def __call__(self, query, key, value, past_state=None, decay=None, beta=None):
        for name, a in (("query", query), ("key", key), ("value", value)):
            if a.ndim != 3:
                raise KernelError(f"{name} must be 3-D (B, T, H*D), got shape {a.shape}")
        b, t, qhid = query.shape
        hq, hkv = self.hq, self.hkv
        if qhid % hq or key.shape[2] % hkv or value.shape[2] % hkv:
            raise KernelError(f"hidden sizes {qhid}, {key.shape[2]}, {value.shape[2]} do not "
                              f"divide into {hq} query / {hkv} kv heads")  # fmt: skip
        dk, dv = qhid // hq, value.shape[2] // hkv
        if key.shape != (b, t, hkv * dk) or value.shape[:2] != (b, t):
            raise KernelError(f"key/value shapes {key.shape}/{value.shape} do not match query "
                              f"{query.shape}")  # fmt: skip
        gated = self.rule in ("gated", "gated_delta")
        delta = self.rule in ("delta", "gated_delta")
        if gated and decay is None:
            raise KernelError(f"update_rule {self.rule!r} needs the decay input")
        if delta and beta is None:
            raise KernelError(f"update_rule {self.rule!r} needs the beta input")
        wt = work_dtype(query.dtype)
        g = hq // hkv
        q = cast(query, wt).reshape(b, t, hkv, g, dk)
        k = cast(key, wt).reshape(b, t, hkv, dk)
        v = cast(value, wt).reshape(b, t, hkv, dv)
        if gated:
            if decay.shape not in ((b, t, hkv * dk), (b, t, hkv)):
                raise KernelError(f"decay must have shape {(b, t, hkv * dk)} or {(b, t, hkv)}, "
                                  f"got {decay.shape}")  # fmt: skip
            gate = np.exp(cast(decay, wt)).reshape(b, t, hkv, -1)[..., None]  # (.., dk|1, 1)
        if delta:
            if beta.shape not in ((b, t, hkv), (b, t, 1)):
                raise KernelError(f"beta must have shape {(b, t, hkv)} or {(b, t, 1)}, "
                                  f"got {beta.shape}")  # fmt: skip
            bt = cast(beta, wt).reshape(b, t, -1)[..., None]  # (B, T, H|1, 1)
        state_dtype = past_state.dtype if past_state is not None else query.dtype
        if past_state is None:
            s = np.zeros((b, hkv, dk, dv), wt)
        else:
            if past_state.shape != (b, hkv, dk, dv):
                raise KernelError(f"past_state must have shape {(b, hkv, dk, dv)}, "
                                  f"got {past_state.shape}")  # fmt: skip
            s = past_state.astype(wt)
        scale = self.scale or 1.0 / math.sqrt(dk)
        out = np.empty((b, t, hkv, g, dv), wt)
        for i in range(t):
            ki, vi = k[:, i], v[:, i]
            if gated:
                s = gate[:, i] * s
            if delta:
                pred = np.einsum("bhkv,bhk->bhv", s, ki)
                vi = bt[:, i] * (vi - pred)
            s = s + ki[..., :, None] * vi[..., None, :]
            out[:, i] = np.einsum("bhgk,bhkv->bhgv", q[:, i], s)
        out *= wt.type(scale)
        return (cast(out.reshape(b, t, hq * dv), query.dtype), cast(s, state_dtype))
