"""Small helpers the converter families share."""

from __future__ import annotations

from collections.abc import Sequence

from onyx.pytorch._torch import torch

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def norm_axes(axes: Sequence[int], rank: int) -> list[int]:
    """Axes made non-negative."""
    return [a + rank if a < 0 else a for a in axes]


def sym_pads(pads: Sequence[int]) -> list[int] | None:
    """Per-dim padding when ONNX pads (begins then ends) are symmetric, else None."""
    n = len(pads) // 2
    begins, ends = list(pads[:n]), list(pads[n:])
    return begins if begins == ends else None


def torch_pad(pads: Sequence[int]) -> list[int]:
    """ONNX pads [b0, b1, .., e0, e1, ..] as F.pad wants them: last dim first, (begin, end)."""
    n = len(pads) // 2
    out: list[int] = []
    for d in reversed(range(n)):
        out += [int(pads[d]), int(pads[d + n])]
    return out


def auto_pads(auto_pad: str, spatial: Sequence[int], kernel: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int]) -> list[int]:  # fmt: skip
    """The explicit pads SAME_UPPER / SAME_LOWER mean for these (static) spatial dims."""
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        b, e = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        begins.append(b)
        ends.append(e)
    return begins + ends


def is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point
