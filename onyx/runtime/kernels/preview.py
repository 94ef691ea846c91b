"""Operators of the ``ai.onnx.preview`` domain: FlexAttention.

FlexAttention's optional ``score_mod`` / ``prob_mod`` graph attributes arrive as prepared
subgraph plans (as in control.py); values they read from enclosing scopes arrive after the
node's three inputs and are handed to them as captures.
"""

from __future__ import annotations

import numpy as np

from onyx import dtypes
from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel

PREVIEW = "ai.onnx.preview"
_SOFTMAX_TYPES = (1, 10, 11, 16)  # float, float16, double, bfloat16


def _run_modifier(plan, x: np.ndarray, captures, what: str) -> np.ndarray:
    outs = plan.run([x], captures)
    if len(outs) != 1:
        raise KernelError(f"{what} must produce one output, got {len(outs)}")
    out = np.asarray(outs[0])
    if out.shape != x.shape:
        raise KernelError(f"{what} must keep the shape {list(x.shape)}, got {list(out.shape)}")
    return out.astype(x.dtype, copy=False)


@kernel("FlexAttention", 1, domain=PREVIEW)
class FlexAttention:
    """Y = prob_mod(softmax(score_mod(Q @ K^T * scale))) @ V, with grouped K/V heads."""

    wants_subgraph_runner = True

    def __init__(self, *, scale=None, softmax_precision=None, score_mod=None, prob_mod=None,
                 _n_inputs=3):  # fmt: skip
        self.scale = scale
        if softmax_precision is not None and softmax_precision not in _SOFTMAX_TYPES:
            raise KernelError(
                "softmax_precision must be float, float16, bfloat16 or double "
                f"(1, 10, 16, 11), got {softmax_precision}"
            )
        self.precision = None if softmax_precision is None else dtypes.to_numpy(softmax_precision)
        self.score_mod, self.prob_mod = score_mod, prob_mod
        self.n_inputs = _n_inputs

    def __call__(self, q, k, v, *captures):
        for name, t in (("Q", q), ("K", k), ("V", v)):
            if t.ndim != 4:
                raise KernelError(f"FlexAttention {name} must be rank 4, got shape {list(t.shape)}")
        b, hq, length, e = q.shape
        _, hkv, s, ek = k.shape
        if k.shape[0] != b or v.shape[0] != b:
            raise KernelError(f"batch sizes differ: Q {b}, K {k.shape[0]}, V {v.shape[0]}")
        if ek != e:
            raise KernelError(f"Q head size {e} != K head size {ek}")
        if v.shape[1] != hkv or v.shape[2] != s:
            raise KernelError(f"V shape {list(v.shape)} does not match K shape {list(k.shape)}")
        if hkv == 0 or hq % hkv:
            raise KernelError(f"q_num_heads {hq} is not a multiple of kv_num_heads {hkv}")
        out_dtype = q.dtype
        precision = self.precision
        if precision is None:
            precision = np.dtype(np.float64 if out_dtype == np.float64 else np.float32)
        wide = out_dtype == np.float64 or precision == np.float64
        compute = np.dtype(np.float64 if wide else np.float32)
        soft = np.dtype(np.float64 if precision == np.float64 else np.float32)
        scale = self.scale if self.scale is not None else 1.0 / np.sqrt(e)
        group = hq // hkv
        qc = q.astype(compute, copy=False).reshape(b, hkv, group, length, e)
        kc = k.astype(compute, copy=False)[:, :, None]
        vc = v.astype(compute, copy=False)[:, :, None]
        scores = np.matmul(qc, np.swapaxes(kc, -1, -2))
        scores *= compute.type(scale)
        scores = scores.reshape(b, hq, length, s).astype(precision, copy=False)
        if self.score_mod is not None:
            scores = _run_modifier(self.score_mod, scores, captures, "score_mod")
        scores = scores.astype(soft, copy=False)
        probs = scores - scores.max(axis=-1, keepdims=True)
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=-1, keepdims=True)
        probs = probs.astype(precision, copy=False)
        if self.prob_mod is not None:
            probs = _run_modifier(self.prob_mod, probs, captures, "prob_mod")
        probs = probs.astype(compute, copy=False).reshape(b, hkv, group, length, s)
        y = np.matmul(probs, vc).reshape(b, hq, length, v.shape[3])
        return y.astype(out_dtype, copy=False)
