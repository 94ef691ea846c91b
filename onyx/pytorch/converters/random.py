"""Random generators: RandomNormal, RandomUniform (and their *Like forms), Bernoulli, Multinomial.

Each draw is a node of the module, never folded at conversion (even when every input is known).
A node with a ``seed`` draws from a ``torch.Generator`` seeded afresh on every call, so its output
is a pure function of the seed and the inputs, as in onyx's runtime (the numbers differ from the
runtime's: another generator). Without a seed it draws from torch's global generator.
"""

from __future__ import annotations

import numpy as np

from onyx.dtypes import DataType
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


def _seed(seed: float | None) -> int | None:
    if seed is None:
        return None
    seed = float(seed)
    if seed.is_integer() and seed >= 0:
        return int(seed)
    return int(np.array(seed, np.float64).view(np.int64))


def _generator(seed: int | None, device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def _draw_type(dtype: torch.dtype) -> torch.dtype:
    """The type to draw in (torch has no normal/uniform kernels for every float kind on CPU)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def onnx_random_normal(shape: list, dtype: torch.dtype, mean: float, scale: float,
                       seed: int | None, like=None):  # fmt: skip
    """Normal draws of ``shape`` (or ``like``'s shape and device)."""
    device = like.device if like is not None else None
    shape = list(like.shape) if like is not None else shape
    y = torch.randn(shape, dtype=_draw_type(dtype), generator=_generator(seed, device or "cpu"),
                    device=device)  # fmt: skip
    return (y * scale + mean).to(dtype)


def onnx_random_uniform(shape: list, dtype: torch.dtype, low: float, high: float,
                        seed: int | None, like=None):  # fmt: skip
    """Uniform draws in [low, high) of ``shape`` (or ``like``'s shape and device)."""
    device = like.device if like is not None else None
    shape = list(like.shape) if like is not None else shape
    y = torch.rand(shape, dtype=_draw_type(dtype), generator=_generator(seed, device or "cpu"),
                   device=device)  # fmt: skip
    return (y * (high - low) + low).to(dtype)


def onnx_bernoulli(p, dtype: torch.dtype, seed: int | None):
    """0/1 draws with probabilities ``p``."""
    draws = torch.bernoulli(p.to(_draw_type(p.dtype)), generator=_generator(seed, p.device))
    return draws.to(dtype)


def onnx_multinomial(logits, dtype: torch.dtype, sample_size: int, seed: int | None):
    """``sample_size`` class indices per batch row, drawn with probabilities softmax(logits)."""
    probs = torch.softmax(logits.to(_draw_type(logits.dtype)), -1)
    draws = torch.multinomial(probs, sample_size, replacement=True,
                              generator=_generator(seed, logits.device))  # fmt: skip
    return draws.to(dtype)


def _node(cx, fn, *args):
    """A call of ``fn`` recorded in the module (a draw must happen on every run)."""
    if cx.tracer is None:  # running as a run-time step already
        return fn(*args)
    return cx.tracer.create_proxy("call_function", fn, args, {})


def _float_type(cx, dtype: int | None, like=None) -> torch.dtype:
    if dtype is not None:
        t = dtypes.compute(DataType(dtype), cx.label)
    elif like is not None:
        t = cx.dtype(like)
    else:
        t = torch.float32
    if not t.is_floating_point:
        raise cx.fail(f"random values need a floating-point dtype, got {t}")
    return t


@converter("RandomNormal", 1)
def random_normal(cx, *, shape: list[int], dtype: int = 1, mean: float = 0.0, scale: float = 1.0,
                  seed: float | None = None):  # fmt: skip
    return _node(cx, onnx_random_normal, list(shape), _float_type(cx, dtype), mean, scale,
                 _seed(seed))  # fmt: skip


@converter("RandomUniform", 1)
def random_uniform(cx, *, shape: list[int], dtype: int = 1, low: float = 0.0, high: float = 1.0,
                   seed: float | None = None):  # fmt: skip
    return _node(cx, onnx_random_uniform, list(shape), _float_type(cx, dtype), low, high,
                 _seed(seed))  # fmt: skip


@converter("RandomNormalLike", 1)
def random_normal_like(cx, x, *, dtype: int | None = None, mean: float = 0.0, scale: float = 1.0,
                       seed: float | None = None):  # fmt: skip
    return _node(cx, onnx_random_normal, None, _float_type(cx, dtype, x), mean, scale,
                 _seed(seed), x)  # fmt: skip


@converter("RandomUniformLike", 1)
def random_uniform_like(cx, x, *, dtype: int | None = None, low: float = 0.0, high: float = 1.0,
                        seed: float | None = None):  # fmt: skip
    return _node(cx, onnx_random_uniform, None, _float_type(cx, dtype, x), low, high,
                 _seed(seed), x)  # fmt: skip


@converter("Bernoulli", 15)
def bernoulli(cx, x, *, dtype: int | None = None, seed: float | None = None):
    out = dtypes.compute(DataType(dtype), cx.label) if dtype is not None else cx.dtype(x)
    return _node(cx, onnx_bernoulli, x, out, _seed(seed))


@converter("Multinomial", 7)
def multinomial(cx, x, *, dtype: int = 6, sample_size: int = 1, seed: float | None = None):
    out = dtypes.compute(DataType(dtype), cx.label)
    if out not in (torch.int32, torch.int64):
        raise cx.fail(f"dtype must be int32 or int64, got {out}")
    return _node(cx, onnx_multinomial, x, out, int(sample_size), _seed(seed))
