"""Optimizers of ``ai.onnx.preview.training``: Adagrad, Adam, Momentum (mirroring
runtime/kernels/training.py). Inputs: R (rate), T (update count), then every X, every G and each
state group; outputs: the new Xs, then each new state group."""

from __future__ import annotations

import math

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter

TRAINING = "ai.onnx.preview.training"


def _groups(cx, inputs: tuple, n_groups: int) -> None:
    if not inputs or len(inputs) % n_groups:
        raise cx.fail(f"expects {n_groups} tensors per optimized variable after R and T "
                      f"(a multiple of {n_groups}), got {len(inputs)}")  # fmt: skip
    for i, x in enumerate(inputs):
        if x is None:
            raise cx.fail(f"input {i + 2} is missing")
        if cx.dtype(x) not in (torch.float32, torch.float64):
            raise cx.fail(f"tensors must be float or double, got {cx.dtype(x)}")


def _split(inputs: tuple, n_groups: int) -> list[tuple]:
    n = len(inputs) // n_groups
    return [tuple(inputs[k * n : (k + 1) * n]) for k in range(n_groups)]


def _scalar(x) -> float:
    return x.reshape(()).item()


def _like(value, x, dtype):
    """``value`` broadcast to X's shape, in ``dtype``."""
    return torch.broadcast_to(value, x.shape).to(dtype)


def _adagrad(r, t, *inputs, decay_factor, epsilon, norm_coefficient):
    xs, gs, hs = _split(inputs, 3)
    rate = _scalar(r) / (1.0 + _scalar(t) * decay_factor)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        g_reg = norm_coefficient * x + g
        h_new = h + g_reg * g_reg
        new_x.append(_like(x - rate * g_reg / (torch.sqrt(h_new) + epsilon), x, x.dtype))
        new_h.append(_like(h_new, x, h.dtype))
    return tuple(new_x + new_h)


@converter("Adagrad", 1, domain=TRAINING)
def adagrad(cx, r, t, *inputs, decay_factor: float = 0.0, epsilon: float = 1e-6,
            norm_coefficient: float = 0.0):  # fmt: skip
    _groups(cx, inputs, 3)
    out = cx.call(_adagrad, r, t, *inputs, decay_factor=decay_factor, epsilon=epsilon,
                  norm_coefficient=norm_coefficient)  # fmt: skip
    return tuple(out[i] for i in range(len(inputs) // 3 * 2))


def _adam(r, t, *inputs, alpha, beta, epsilon, norm_coefficient, norm_coefficient_post):
    xs, gs, vs, hs = _split(inputs, 4)
    rate, step = _scalar(r), _scalar(t)
    if step > 0:
        rate = rate * math.sqrt(1.0 - beta**step) / (1.0 - alpha**step)
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + (1.0 - alpha) * g_reg
        h_new = beta * h + (1.0 - beta) * g_reg * g_reg
        x_new = (x - rate * v_new / (torch.sqrt(h_new) + epsilon)) * (1.0 - norm_coefficient_post)
        new_x.append(_like(x_new, x, x.dtype))
        new_v.append(_like(v_new, x, v.dtype))
        new_h.append(_like(h_new, x, h.dtype))
    return tuple(new_x + new_v + new_h)


@converter("Adam", 1, domain=TRAINING)
def adam(cx, r, t, *inputs, alpha: float = 0.9, beta: float = 0.999, epsilon: float = 1e-6,
         norm_coefficient: float = 0.0, norm_coefficient_post: float = 0.0):  # fmt: skip
    _groups(cx, inputs, 4)
    out = cx.call(_adam, r, t, *inputs, alpha=alpha, beta=beta, epsilon=epsilon,
                  norm_coefficient=norm_coefficient, norm_coefficient_post=norm_coefficient_post)  # fmt: skip
    return tuple(out[i] for i in range(len(inputs) // 4 * 3))


def _momentum(r, t, *inputs, alpha, beta, mode, norm_coefficient):
    xs, gs, vs = _split(inputs, 3)
    rate = _scalar(r)
    beta_adjusted = beta if _scalar(t) > 0 else 1.0
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + beta_adjusted * g_reg
        step = g_reg + alpha * v_new if mode == "nesterov" else v_new
        new_x.append(_like(x - rate * step, x, x.dtype))
        new_v.append(_like(v_new, x, v.dtype))
    return tuple(new_x + new_v)


@converter("Momentum", 1, domain=TRAINING)
def momentum(cx, r, t, *inputs, alpha: float, beta: float, mode: str, norm_coefficient: float):
    if mode not in ("standard", "nesterov"):
        raise cx.fail(f"mode must be 'standard' or 'nesterov', got {mode!r}")
    _groups(cx, inputs, 3)
    out = cx.call(_momentum, r, t, *inputs, alpha=alpha, beta=beta, mode=mode,
                  norm_coefficient=norm_coefficient)  # fmt: skip
    return tuple(out[i] for i in range(len(inputs) // 3 * 2))
