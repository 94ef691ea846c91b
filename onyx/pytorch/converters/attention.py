"""Attention: Attention (23, 25), RotaryEmbedding, LinearAttention, FlexAttention (preview).

Each mirrors its runtime kernel (onyx/runtime/kernels/attention.py, preview.py) in torch. The
shape-dependent bookkeeping (heads, caches, masks) runs as one call of the module, on the real
tensors, so symbolic dims need nothing from inference.
"""

from __future__ import annotations

import math

from onyx.dtypes import data_type
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter

_NEG_INF = float("-inf")


def _work(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _heads(x, num_heads):
    """(B, S, H*D) -> (B, H, S, D); a 4-D input passes through."""
    if x.dim() == 4:
        return x
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(1, 2)


def _softmax(s, guard: bool):
    """Softmax over the last axis; fully masked rows (all -inf) become zeros when ``guard``."""
    m = s.amax(dim=-1, keepdim=True)
    if guard:
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(s - m)
    if e.dtype == torch.bfloat16:  # the reference adds bfloat16 one by one, rounding each sum
        total = e[..., :1]
        for i in range(1, e.shape[-1]):
            total = total + e[..., i : i + 1]
    else:
        total = e.sum(dim=-1, keepdim=True)
    if guard:
        total = torch.where(total == 0, torch.ones_like(total), total)
    return e / total


class _Attention:
    """The run-time body of Attention; the attributes are fixed at conversion."""

    def __init__(self, is_causal, kv_heads, q_heads, mode, scale, softcap, softmax_dtype,
                 left, right, want_qk):  # fmt: skip
        self.is_causal, self.kv_heads, self.q_heads = is_causal, kv_heads, q_heads
        self.mode, self.scale, self.softcap = mode, scale, softcap
        self.softmax_dtype, self.want_qk = softmax_dtype, want_qk
        self.left, self.right = left, right
        self.__name__ = "onnx_attention"

    def __call__(self, q, k, v, mask=None, past_key=None, past_value=None, nonpad=None):
        out_dtype, rank = q.dtype, q.dim()
        qh, kh, vh = _heads(q, self.q_heads), _heads(k, self.kv_heads), _heads(v, self.kv_heads)
        b, hq, sq, d = qh.shape
        hkv = kh.shape[1]
        past = 0
        if past_key is not None:
            past = past_key.shape[2]
            kh = torch.cat([past_key, kh.to(past_key.dtype)], dim=2)
            vh = torch.cat([past_value, vh.to(past_value.dtype)], dim=2)
        present_k, present_v = kh, vh
        total, dv = kh.shape[2], vh.shape[3]
        # 16-bit floats compute each step in their own type (matrix products accumulate in
        # float32), as the operator's function body does; float32/float64 in their own
        wt = out_dtype if out_dtype.itemsize < 4 else _work(out_dtype)
        if self.softmax_dtype == torch.float64:
            wt = torch.float64
        acc = _work(wt)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(d)
        root = torch.tensor(math.sqrt(scale), dtype=wt)
        group = hq // hkv
        qg = (qh.to(wt) * root).reshape(b, hkv, group * sq, d)
        kt = (kh.to(wt) * root).transpose(-1, -2)
        scores = torch.matmul(qg.to(acc), kt.to(acc)).to(wt).reshape(b, hq, sq, total)
        qk_out = scores if self.mode == 0 else None
        if self.softcap:
            cap = torch.tensor(self.softcap, dtype=wt)
            scores = torch.tanh(scores / cap) * cap
        if self.mode == 1:
            qk_out = scores
        bias, guard = self._bias(mask, b, sq, total, past, nonpad, wt)
        if bias is not None:
            scores = scores + bias
        if self.mode == 2:
            qk_out = scores
        sd = wt if self.softmax_dtype is None else self.softmax_dtype
        probs = _softmax(scores.to(sd), guard).to(wt)
        if self.mode == 3:
            qk_out = probs
        y = torch.matmul(probs.reshape(b, hkv, group * sq, total).to(acc), vh.to(acc)).to(wt)
        y = y.reshape(b, hq, sq, dv)
        if rank == 3:
            y = y.transpose(1, 2).reshape(b, sq, hq * dv)
        outs = (y.to(out_dtype), present_k, present_v)
        if self.want_qk:
            outs += (qk_out.to(out_dtype),)
        return outs

    def _bias(self, mask, b, sq, total, past, nonpad, wt):
        """The additive bias (broadcastable to (B, Hq, Sq, T)) and whether rows may be empty."""
        bias, guard = None, False
        if mask is not None:
            guard = True
            if mask.dtype == torch.bool:
                zero = torch.zeros((), dtype=wt)
                bias = torch.where(mask, zero, torch.full((), _NEG_INF, dtype=wt))
            else:
                bias = mask.to(wt)
            if bias.dim() and bias.shape[-1] < total:  # a short mask is padded with -inf
                bias = torch.nn.functional.pad(bias, (0, total - bias.shape[-1]), value=_NEG_INF)
        j = torch.arange(total)
        allowed = None
        if nonpad is not None:
            nonpad = nonpad.reshape(-1).long()
            allowed = j < nonpad[:, None, None, None]
            offset = (nonpad - sq)[:, None, None, None]
        else:
            offset = past
        windowed = self.left >= 0 or self.right >= 0
        if self.is_causal or windowed:
            pos = torch.arange(sq)[:, None] + offset  # absolute query position
            bound = j <= pos if self.is_causal else None
            if self.left >= 0:
                w = j >= pos - self.left
                bound = w if bound is None else bound & w
            if self.right >= 0:
                w = j <= pos + self.right
                bound = w if bound is None else bound & w
            allowed = bound if allowed is None else allowed & bound
        if allowed is not None:
            guard = True
            structural = torch.where(allowed, 0.0, _NEG_INF).to(wt)
            bias = structural if bias is None else bias + structural
        return bias, guard


def _float_type(cx, code: int | None, what: str) -> torch.dtype | None:
    if code is None:
        return None
    t = dtypes.compute(data_type(code), cx.label)
    if not t.is_floating_point:
        raise cx.fail(f"{what} must be a float type, got {data_type(code).short_name}")
    return t


def _attention(cx, q, k, v, mask, past_key, past_value, nonpad, *, is_causal, kv_num_heads,
               q_num_heads, qk_matmul_output_mode, scale, softcap, softmax_precision, left,
               right, _outputs):  # fmt: skip
    if qk_matmul_output_mode not in (0, 1, 2, 3):
        raise cx.fail(f"qk_matmul_output_mode must be 0..3, got {qk_matmul_output_mode}")
    if (past_key is None) != (past_value is None):
        raise cx.fail("past_key and past_value must be given together")
    for name, x, heads in (("Q", q, q_num_heads), ("K", k, kv_num_heads)):
        s = cx.shape(x)
        if s is not None and len(s) == 3 and not heads:
            raise cx.fail(f"3-D {name} needs the {name.lower()}_num_heads attribute")
    body = _Attention(bool(is_causal), kv_num_heads, q_num_heads, qk_matmul_output_mode, scale,
                      softcap, _float_type(cx, softmax_precision, "softmax_precision"), left,
                      right, _outputs >= 4)  # fmt: skip
    out = cx.call(body, q, k, v, mask, past_key, past_value, nonpad)
    return tuple(out[i] for i in range(4 if _outputs >= 4 else 3))


@converter("Attention", 23)
def attention(cx, q, k, v, attn_mask=None, past_key=None, past_value=None,
              nonpad_kv_seqlen=None, *, is_causal: int = 0, kv_num_heads: int | None = None,
              q_num_heads: int | None = None, qk_matmul_output_mode: int = 0,
              scale: float | None = None, softcap: float = 0.0,
              softmax_precision: int | None = None, _outputs: int = 1):  # fmt: skip
    return _attention(cx, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale,
                      softcap=softcap, softmax_precision=softmax_precision, left=-1, right=-1,
                      _outputs=_outputs)  # fmt: skip


@converter("Attention", 25)
def attention25(cx, q, k, v, attn_mask=None, past_key=None, past_value=None,
                nonpad_kv_seqlen=None, *, is_causal: int = 0, kv_num_heads: int | None = None,
                q_num_heads: int | None = None, qk_matmul_output_mode: int = 0,
                scale: float | None = None, softcap: float = 0.0,
                softmax_precision: int | None = None, left_window_size: int = -1,
                right_window_size: int = -1, _outputs: int = 1):  # fmt: skip
    return _attention(cx, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale,
                      softcap=softcap, softmax_precision=softmax_precision,
                      left=left_window_size, right=right_window_size, _outputs=_outputs)  # fmt: skip


# --- RotaryEmbedding -----------------------------------------------------------------------
def _rotary(x, cos_cache, sin_cache, position_ids, interleaved: bool, num_heads, rot_dim: int):
    if x.dim() == 4:
        b, _h, s, d = x.shape
        xv = x
    else:
        b, s, hidden = x.shape
        d = hidden // num_heads
        xv = x.reshape(b, s, num_heads, d)
    rd = rot_dim or d
    half = rd // 2
    if position_ids is not None:
        cos, sin = cos_cache[position_ids.long()], sin_cache[position_ids.long()]
    else:
        cos, sin = cos_cache, sin_cache
    wt = _work(x.dtype)
    cos, sin = cos.to(wt), sin.to(wt)
    axis = 1 if x.dim() == 4 else 2  # (B, S, r/2) -> (B, 1, S, r/2) or (B, S, 1, r/2)
    cos, sin = cos.unsqueeze(axis), sin.unsqueeze(axis)
    y = xv.to(wt)
    if interleaved:
        x1, x2 = y[..., 0:rd:2], y[..., 1:rd:2]
        rotated = torch.stack([cos * x1 - sin * x2, sin * x1 + cos * x2], dim=-1).flatten(-2)
    else:
        x1, x2 = y[..., :half], y[..., half:rd]
        rotated = torch.cat([cos * x1 - sin * x2, sin * x1 + cos * x2], dim=-1)
    y = torch.cat([rotated, y[..., rd:]], dim=-1)
    return y.reshape(x.shape).to(x.dtype)


@converter("RotaryEmbedding", 23)
def rotary_embedding(cx, x, cos_cache, sin_cache, position_ids=None, *, interleaved: int = 0,
                     num_heads: int | None = None, rotary_embedding_dim: int = 0):  # fmt: skip
    s = cx.shape(x)
    if s is not None and len(s) not in (3, 4):
        raise cx.fail(f"the input must be 3-D or 4-D, got rank {len(s)}")
    if s is not None and len(s) == 3 and not num_heads:
        raise cx.fail("a 3-D input needs the num_heads attribute")
    return cx.call(_rotary, x, cos_cache, sin_cache, position_ids, bool(interleaved), num_heads,
                   rotary_embedding_dim)  # fmt: skip


# --- LinearAttention -----------------------------------------------------------------------
_RULES = ("linear", "gated", "delta", "gated_delta")


def _linear_attention(query, key, value, past_state, decay, beta, hq: int, hkv: int,
                      scale: float, rule: str):  # fmt: skip
    b, t, qhid = query.shape
    dk, dv = qhid // hq, value.shape[2] // hkv
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    wt = _work(query.dtype)
    g = hq // hkv
    q = query.to(wt).reshape(b, t, hkv, g, dk)
    k = key.to(wt).reshape(b, t, hkv, dk)
    v = value.to(wt).reshape(b, t, hkv, dv)
    if gated:
        gate = torch.exp(decay.to(wt)).reshape(b, t, hkv, -1).unsqueeze(-1)  # (.., dk|1, 1)
    if delta:
        bt = beta.to(wt).reshape(b, t, -1).unsqueeze(-1)  # (B, T, H|1, 1)
    state_dtype = past_state.dtype if past_state is not None else query.dtype
    s = torch.zeros((b, hkv, dk, dv), dtype=wt) if past_state is None else past_state.to(wt)
    outs = []
    for i in range(t):
        ki, vi = k[:, i], v[:, i]
        if gated:
            s = gate[:, i] * s
        if delta:
            pred = torch.einsum("bhkv,bhk->bhv", s, ki)
            vi = bt[:, i] * (vi - pred)
        s = s + ki.unsqueeze(-1) * vi.unsqueeze(-2)
        outs.append(torch.einsum("bhgk,bhkv->bhgv", q[:, i], s))
    out = torch.stack(outs, dim=1) * (scale or 1.0 / math.sqrt(dk))
    return out.reshape(b, t, hq * dv).to(query.dtype), s.to(state_dtype)


@converter("LinearAttention", 27)
def linear_attention(cx, query, key, value, past_state=None, decay=None, beta=None, *,
                     q_num_heads: int, kv_num_heads: int, scale: float = 0.0,
                     update_rule: str = "gated_delta", chunk_size: int = 64):  # fmt: skip
    if update_rule not in _RULES:
        raise cx.fail(f"update_rule must be one of {_RULES}, got {update_rule!r}")
    if kv_num_heads <= 0 or q_num_heads <= 0 or q_num_heads % kv_num_heads:
        raise cx.fail(f"q_num_heads ({q_num_heads}) must be a positive multiple of "
                      f"kv_num_heads ({kv_num_heads})")  # fmt: skip
    if update_rule in ("gated", "gated_delta") and decay is None:
        raise cx.fail(f"update_rule {update_rule!r} needs the decay input")
    if update_rule in ("delta", "gated_delta") and beta is None:
        raise cx.fail(f"update_rule {update_rule!r} needs the beta input")
    out = cx.call(_linear_attention, query, key, value, past_state, decay, beta, q_num_heads,
                  kv_num_heads, scale, update_rule)  # fmt: skip
    return out[0], out[1]


# --- FlexAttention (ai.onnx.preview) -------------------------------------------------------
class OnnxFlexAttention(torch.nn.Module):
    """Y = prob_mod(softmax(score_mod(Q @ K^T * scale))) @ V, with grouped K/V heads; the
    modifiers are converted subgraphs taking the scores then their captures."""

    def __init__(self, scale, precision, score_mod, prob_mod, n_score: int):
        super().__init__()
        self.scale, self.precision = scale, precision
        self.score_mod, self.prob_mod, self.n_score = score_mod, prob_mod, n_score

    @staticmethod
    def _modify(mod, x, captures):
        out = mod(x, *captures)
        if len(out) != 1 or out[0].shape != x.shape:
            raise ValueError(f"a FlexAttention modifier must give one tensor of shape "
                             f"{list(x.shape)}")  # fmt: skip
        return out[0].to(x.dtype)

    def forward(self, q, k, v, *captures):
        b, hq, length, e = q.shape
        hkv, s = k.shape[1], k.shape[2]
        out_dtype = q.dtype
        precision = self.precision or _work(out_dtype)
        wide = out_dtype == torch.float64 or precision == torch.float64
        compute = torch.float64 if wide else torch.float32
        soft = torch.float64 if precision == torch.float64 else torch.float32
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(e)
        group = hq // hkv
        qc = q.to(compute).reshape(b, hkv, group, length, e)
        kc, vc = k.to(compute).unsqueeze(2), v.to(compute).unsqueeze(2)
        scores = torch.matmul(qc, kc.transpose(-1, -2)) * scale
        scores = scores.reshape(b, hq, length, s).to(precision)
        if self.score_mod is not None:
            scores = self._modify(self.score_mod, scores, captures[: self.n_score])
        probs = torch.softmax(scores.to(soft), dim=-1).to(precision)
        if self.prob_mod is not None:
            probs = self._modify(self.prob_mod, probs, captures[self.n_score :])
        probs = probs.to(compute).reshape(b, hkv, group, length, s)
        y = torch.matmul(probs, vc).reshape(b, hq, length, v.shape[3])
        return y.to(out_dtype)


@converter("FlexAttention", 1, domain="ai.onnx.preview")
def flex_attention(cx, q, k, v, *, scale: float | None = None,
                   softmax_precision: int | None = None, score_mod=None, prob_mod=None):  # fmt: skip
    for name, x in (("Q", q), ("K", k), ("V", v)):
        s = cx.shape(x)
        if s is not None and len(s) != 4:
            raise cx.fail(f"{name} must be rank 4, got shape {list(s)}")
    precision = _float_type(cx, softmax_precision, "softmax_precision")
    score, score_caps = cx.graph_module(score_mod, "score_mod") if score_mod else (None, [])
    prob, prob_caps = cx.graph_module(prob_mod, "prob_mod") if prob_mod else (None, [])
    module = OnnxFlexAttention(scale, precision, score, prob, len(score_caps))
    return cx.call_module(module, "onnx_flex_attention", q, k, v, *score_caps, *prob_caps)
