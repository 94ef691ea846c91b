"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (mirroring runtime/kernels/nn)."""

from __future__ import annotations

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter

_REDUCTIONS = ("none", "sum", "mean")


def _work(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(cx, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise cx.fail(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _nll(logp, target, weight, ignore_index, reduction: str, out_dtype: torch.dtype):
    """Weighted negative log likelihood of ``logp`` (N, C, ...) at classes ``target`` (N, ...).

    Ignored positions (target == ignore_index) pick class 0 and count zero; the mean divides
    by the summed weights of the kept positions (their count without weights).
    """
    t = target.long()
    keep = None if ignore_index is None else t != ignore_index
    cls = t if keep is None else torch.where(keep, t, torch.zeros_like(t))
    loss = -torch.gather(logp, 1, cls.unsqueeze(1)).squeeze(1)
    w = None
    if weight is not None:
        w = weight.to(loss.dtype)[cls]
        if keep is not None:
            w = torch.where(keep, w, torch.zeros_like(w))
        loss = loss * w
    elif keep is not None:
        loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss.to(out_dtype)
    total = loss.sum()
    if reduction == "sum":
        return total.to(out_dtype)
    if w is not None:
        denom = w.sum()
    elif keep is None:
        denom = loss.numel()
    else:
        denom = keep.sum().to(loss.dtype)
    return (total / denom).to(out_dtype)


@converter("NegativeLogLikelihoodLoss", 12)
def negative_log_likelihood_loss(cx, x, target, weight=None, *, ignore_index: int | None = None,
                                 reduction: str = "mean"):  # fmt: skip
    _check(cx, reduction)
    dtype = cx.dtype(x)
    return cx.call(_nll, x.to(_work(dtype)), target, weight, ignore_index, reduction, dtype)


def _sce(scores, labels, weights, ignore_index, reduction, out_dtype):
    logp = torch.log_softmax(scores, dim=1)
    return _nll(logp, labels, weights, ignore_index, reduction, out_dtype), logp.to(out_dtype)


@converter("SoftmaxCrossEntropyLoss", 12)
def softmax_cross_entropy_loss(cx, scores, labels, weights=None, *,
                               ignore_index: int | None = None, reduction: str = "mean"):  # fmt: skip
    _check(cx, reduction)
    dtype = cx.dtype(scores)
    out = cx.call(_sce, scores.to(_work(dtype)), labels, weights, ignore_index, reduction, dtype)
    return (out[0], out[1]) if cx.n_outputs > 1 else out[0]
