"""Loss functions and small neural-network ops: SoftmaxCrossEntropyLoss, NLL loss, Shrink, Det."""

from __future__ import annotations

import numpy as np

from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_REDUCTIONS = ("none", "sum", "mean")


def _work(dtype: np.dtype) -> np.dtype:
    return _F64 if dtype == _F64 else _F32


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise KernelError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _nll(logp, target, weight, ignore_index, reduction, out_dtype):
    """Weighted negative log likelihood of ``logp`` (N, C, ...) at classes ``target`` (N, ...)."""
    if logp.ndim < 2:
        raise KernelError(f"expected input of shape (N, C, d1, ...), got shape {logp.shape}")
    n, c = logp.shape[:2]
    if target.shape != (n,) + logp.shape[2:]:
        raise KernelError(
            f"target shape {target.shape} does not match input shape {logp.shape} "
            f"(expected {(n,) + logp.shape[2:]})"
        )
    if weight is not None and weight.shape != (c,):
        raise KernelError(f"weight must have shape ({c},), got {weight.shape}")
    t = target.astype(np.int64, copy=False)
    keep = None if ignore_index is None else t != ignore_index
    cls = t if keep is None else np.where(keep, t, 0)
    if cls.size and (cls.min() < 0 or cls.max() >= c):
        bad = cls[(cls < 0) | (cls >= c)][0]
        raise KernelError(f"target value {bad} is out of range [0, {c})")
    picked = np.take_along_axis(logp, cls[:, None], axis=1)[:, 0]
    loss = -picked
    w = None
    if weight is not None:
        w = weight.astype(loss.dtype)[cls]
        if keep is not None:
            w = np.where(keep, w, 0)
        loss = loss * w
    elif keep is not None:
        loss = np.where(keep, loss, 0)
    if reduction == "none":
        return loss.astype(out_dtype)
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total, out_dtype)
    if w is not None:
        denom = w.sum()
    else:
        denom = loss.size if keep is None else np.count_nonzero(keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / denom, out_dtype)


@kernel("NegativeLogLikelihoodLoss", 12)
def negative_log_likelihood_loss(x, target, weight=None, *, ignore_index=None, reduction="mean"):
    """Loss = -x[n, target[n, ...], ...] (times weight[target]), then reduced."""
    _check_reduction(reduction)
    wt = _work(x.dtype)
    return _nll(x.astype(wt, copy=False), target, weight, ignore_index, reduction, x.dtype)


@kernel("SoftmaxCrossEntropyLoss", 12)
class SoftmaxCrossEntropyLoss:
    """NLL loss of log(softmax(scores)) over the class axis 1; optionally also log_prob."""

    def __init__(self, *, ignore_index=None, reduction="mean"):
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)

    def __call__(self, scores, labels, weights=None):
        if scores.ndim < 2:
            raise KernelError(f"scores must have shape (N, C, d1, ...), got {scores.shape}")
        wt = _work(scores.dtype)
        s = scores.astype(wt, copy=False)
        shifted = s - s.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = _nll(logp, labels, weights, self.ignore_index, self.reduction, scores.dtype)
        return loss, logp.astype(scores.dtype, copy=False)


@kernel("Shrink", 9)
def shrink(x, *, bias=0.0, lambd=0.5):
    """x + bias where x < -lambd, x - bias where x > lambd, else 0."""
    wt = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else _F64
    xf = x.astype(wt, copy=False)
    y = np.where(xf < -lambd, xf + bias, np.where(xf > lambd, xf - bias, 0))
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        y = np.clip(np.trunc(y), info.min, info.max)
    return y.astype(x.dtype)


@kernel("Det", 11)
def det(x):
    """Determinant of the square matrices in the last two dims (batched)."""
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise KernelError(f"Det expects [..., M, M] square matrices, got shape {x.shape}")
    wt = _work(x.dtype)
    return np.asarray(np.linalg.det(x.astype(wt, copy=False)), x.dtype)
