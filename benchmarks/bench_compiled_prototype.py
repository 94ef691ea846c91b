"""What compiled, fused kernels would save over onyx's numpy passes: a measurement for a decision.

onyx's CNN runs are GEMM-bound (bench_gemm_floor.py), and the rest is numpy passes over memory:
one per elementwise step, copies for im2col, tap after tap for pooling. This script times three
of those steps as onyx runs them beside prototypes compiled with numba, alternately, on resnet50
shapes:

- a Conv's epilogue: bias, residual add and ReLU on 256 x 56 x 56 (three passes in numpy);
- the im2col copy of a 3x3 convolution on 64 x 56 x 56;
- MaxPool 3x3, stride 2, pad 1 on 64 x 112 x 112.

The prototypes are not part of onyx and numba is not a dependency: `pip install numba` to run
this. They follow the standard's arithmetic but not every edge (NaN propagation in the pooling
prototype), so they measure a cost, not a replacement.

Run: python benchmarks/bench_compiled_prototype.py
"""

from __future__ import annotations

import numpy as np
from bench_numpy_layouts import best_of  # this folder is on sys.path when run as a script

from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result
from onyx.runtime.kernels.conv import pad_input, window_view
from onyx.runtime.kernels.pool import MaxPool
from onyx.runtime.memory import keep_freed_memory

try:
    from numba import njit, prange
except ImportError:
    raise SystemExit("this measurement needs numba: pip install numba") from None


@njit(parallel=True, cache=False)
def fused_epilogue(y, bias, residual):
    channels, size = y.shape
    for c in prange(channels):
        b = bias[c]
        for i in range(size):
            v = y[c, i] + b + residual[c, i]
            y[c, i] = v if v > 0 else 0.0
    return y


@njit(parallel=True, cache=False)
def im2col_3x3(xp, cols, height, width):
    for c in prange(xp.shape[0]):
        for i in range(3):
            for j in range(3):
                row = (c * 3 + i) * 3 + j
                for r in range(height):
                    for q in range(width):
                        cols[row, r * width + q] = xp[c, r + i, q + j]
    return cols


@njit(parallel=True, cache=False)
def maxpool_3x3_stride_2(xp, out):
    """xp padded with -inf: the max of three rows, then of three columns of that."""
    width = xp.shape[2]
    for c in prange(xp.shape[0]):
        row = np.empty(width, xp.dtype)
        for i in range(out.shape[1]):
            for q in range(width):
                a, b, d = xp[c, 2 * i, q], xp[c, 2 * i + 1, q], xp[c, 2 * i + 2, q]
                m = a if a >= b else b
                row[q] = m if m >= d else d
            for j in range(out.shape[2]):
                a, b, d = row[2 * j], row[2 * j + 1], row[2 * j + 2]
                m = a if a >= b else b
                out[c, i, j] = m if m >= d else d
    return out


def main() -> None:
    keep_freed_memory()  # as a session runs
    old_bufsize = np.setbufsize(1024)
    rng = np.random.default_rng(0)

    y = rng.standard_normal((1, 256, 56, 56)).astype(np.float32)
    bias = rng.standard_normal(256).astype(np.float32)
    residual = rng.standard_normal(y.shape).astype(np.float32)
    followers = (
        Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0))),
        Follower(((np.maximum, None, False),), np.maximum, (Result(), 0)),
    )

    def numpy_epilogue():
        epilogue = Epilogue(followers, [residual])
        epilogue.prepare(y.shape, np.float32, bias)
        epilogue.apply_all(y)

    flat, flat_residual = y.reshape(256, -1), residual.reshape(256, -1)
    rows = [("epilogue: bias + residual + ReLU", numpy_epilogue,
             lambda: fused_epilogue(flat, bias, flat_residual))]  # fmt: skip

    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    cols = np.empty((64 * 9, 56 * 56), np.float32)

    def numpy_im2col():
        view = window_view(pad_input(x, [1, 1], [1, 1]), [3, 3], [1, 1], [1, 1], [56, 56])
        return view.reshape(64 * 9, 56 * 56)

    rows.append(("im2col 3x3", numpy_im2col,
                 lambda: im2col_3x3(pad_input(x, [1, 1], [1, 1])[0], cols, 56, 56)))  # fmt: skip

    image = rng.standard_normal((1, 64, 112, 112)).astype(np.float32)
    pool = MaxPool(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], _outputs=1)
    pooled = np.empty((64, 56, 56), np.float32)
    rows.append(("MaxPool 3x3/2", lambda: pool(image), lambda: maxpool_3x3_stride_2(
        pad_input(image, [1, 1], [1, 1], -np.inf)[0], pooled)))  # fmt: skip

    np.testing.assert_array_equal(numpy_im2col(), rows[1][2]())
    np.testing.assert_array_equal(pool(image)[0], rows[2][2]())

    print(f"{'step (resnet50 shapes)':<36}{'numpy ms':>10}{'numba ms':>10}{'numba/numpy':>13}")
    for name, numpy_fn, numba_fn in rows:
        times = best_of({"numpy": numpy_fn, "numba": numba_fn}, rounds=200)  # first call compiles
        a, b = times["numpy"] / 1e3, times["numba"] / 1e3
        print(f"{name:<36}{a:>10.3f}{b:>10.3f}{b / a:>12.2f}x")
    np.setbufsize(old_bufsize)


if __name__ == "__main__":
    main()
