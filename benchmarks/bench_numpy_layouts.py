"""The numpy behaviours onyx's runtime works around, measured on this machine.

Each line times the obvious numpy call and the layout the runtime uses instead, alternately in
one process (best of many), and prints both and their ratio:

- ``maximum`` by a scalar (ReLU) against ``fastloops.clamp`` (a buffer of the bound) and
  against a plain array of the same shape; a clip to two scalars (vectorized) against
  maximum-then-minimum;
- an operand broadcast along short rows (a per-channel bias) with numpy's default ufunc buffer
  and with the session's 1024-element buffer, beside the add of a scalar; and the row length
  where numpy stops copying rows through its buffer;
- a padded input from ``np.full`` and from ``np.zeros``; a window view from ``as_strided`` and
  from the ndarray constructor (as ``conv.window_view`` makes it).

Run: python benchmarks/bench_numpy_layouts.py
"""

from __future__ import annotations

import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

from onyx.runtime.fastloops import clamp
from onyx.runtime.session import _UFUNC_BUFFER


def best_of(calls: dict, rounds: int = 300) -> dict:
    """Each call's best time in microseconds, the calls taking turns."""
    best = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def show(title: str, times: dict, base: str) -> None:
    parts = [f"{name} {us:7.1f} us ({us / times[base]:.2f}x)" for name, us in times.items()]
    print(f"{title:<28}" + " | ".join(parts))


def with_bufsize(size: int, fn):
    def call():
        old = np.setbufsize(size)
        try:
            fn()
        finally:
            np.setbufsize(old)

    return call


def main() -> None:
    rng = np.random.default_rng(0)
    zero = np.float32(0)

    print("ReLU in place, float32 (ratios to the scalar call):")
    for shape in [(64, 55, 55), (256, 56, 56), (2048, 7, 7)]:
        y = rng.standard_normal(shape).astype(np.float32)
        zeros = np.zeros_like(y)
        times = best_of({
            "max(y, 0)": lambda: np.maximum(y, zero, out=y),
            "clamp": lambda: clamp(np.maximum, y, 0, y),
            "max(y, zeros)": lambda: np.maximum(y, zeros, out=y),
        })  # fmt: skip
        show(str(shape), times, "max(y, 0)")

    print("\nReLU6 (Clip to [0, 6]), float32 (ratios to maximum then minimum by scalars):")
    y = rng.standard_normal((96, 56, 56)).astype(np.float32)
    out = np.empty_like(y)
    low, high = np.float32(0), np.float32(6)
    times = best_of({
        "min(max(y, 0), 6)": lambda: np.minimum(np.maximum(y, low, out=out), high, out=out),
        "np.clip(y, 0, 6)": lambda: np.clip(y, low, high, out=out),
    })  # fmt: skip
    show("(96, 56, 56)", times, "min(max(y, 0), 6)")

    print("\nper-channel bias add, float32 (ratios to the default buffer):")
    for shape in [(64, 3025), (256, 3136), (1024, 196), (256, 784)]:
        x = rng.standard_normal(shape).astype(np.float32)
        out = np.empty_like(x)
        bias = rng.standard_normal((shape[0], 1)).astype(np.float32)
        times = best_of({
            "default buffer": lambda: np.add(x, bias, out=out),
            f"{_UFUNC_BUFFER} buffer": with_bufsize(_UFUNC_BUFFER, lambda: np.add(x, bias, out=out)),
            "scalar": lambda: np.add(x, zero, out=out),
        })  # fmt: skip
        show(str(shape), times, "default buffer")

    print("\nrow length where the default buffer stops copying (about 400k values each):")
    for row in [2048, 4096, 4097, 8192]:
        x = rng.standard_normal((400_000 // row, row)).astype(np.float32)
        out = np.empty_like(x)
        bias = rng.standard_normal((x.shape[0], 1)).astype(np.float32)
        times = best_of({
            "broadcast": lambda: np.add(x, bias, out=out),
            "scalar": lambda: np.add(x, zero, out=out),
        }, rounds=150)  # fmt: skip
        show(f"rows of {row}", times, "scalar")

    print("\nConv set-up (ratios to the first):")
    for shape in [(1, 64, 58, 58), (1, 256, 16, 16)]:
        times = best_of({
            "np.full": lambda: np.full(shape, 0, np.float32),
            "np.zeros": lambda: np.zeros(shape, np.float32),
        })  # fmt: skip
        show(f"pad buffer {shape[1:]}", times, "np.full")
    xp = np.zeros((1, 64, 58, 58), np.float32)
    shape, strides = (1, 64, 3, 3, 56, 56), xp.strides + xp.strides[2:]
    times = best_of({
        "as_strided": lambda: as_strided(xp, shape, strides, writeable=False),
        "ndarray(buffer=)": lambda: np.ndarray(shape, xp.dtype, buffer=xp, strides=strides),
    }, rounds=2000)  # fmt: skip
    show("3x3 window view", times, "as_strided")


if __name__ == "__main__":
    main()
