"""1x1 convolutions, per layer: the path Conv takes otherwise (BLAS's W X: banded, im2col with
onyx's GEMM on X packed, or channel-last) against ``conv_narrowing`` (Y^T = X^T W^T on onyx's own
GEMM, W packed once, tiles stored transposed into Y's planes): the measurement behind
``conv.narrowing_pays`` (C >= 2M and C >= 96).

Layers: the 1x1 convolutions of MobileNetV2, ResNet-50 and SqueezeNet, narrowing and widening.
Each is timed on the session's pool (numba's threads, ``--threads``, default 2), cycling through
six copies of the layer so that its weight and input are not all cache-hot, as in a model. The
table shows both times, the ratio (other / narrowing: above 1, narrowing is faster) and whether
``narrowing_pays`` picks it. Needs numba (the fast extra) and threadpoolctl.

Run: python benchmarks/bench_pointwise.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from onyx.runtime import threads
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels import conv as C

LAYERS = [  # (model, inputs C, outputs M, height = width)
    ("mobilenet_v2", 16, 96, 112), ("mobilenet_v2", 32, 16, 112), ("mobilenet_v2", 96, 24, 56),
    ("mobilenet_v2", 24, 144, 56), ("mobilenet_v2", 144, 24, 56), ("mobilenet_v2", 144, 32, 28),
    ("mobilenet_v2", 192, 32, 28), ("mobilenet_v2", 32, 192, 28), ("mobilenet_v2", 192, 64, 14),
    ("mobilenet_v2", 64, 384, 14), ("mobilenet_v2", 384, 64, 14), ("mobilenet_v2", 96, 576, 14),
    ("mobilenet_v2", 576, 96, 14), ("mobilenet_v2", 160, 960, 7), ("mobilenet_v2", 960, 160, 7),
    ("mobilenet_v2", 320, 1280, 7), ("resnet50", 64, 256, 56), ("resnet50", 256, 64, 56),
    ("resnet50", 512, 128, 28), ("resnet50", 128, 512, 28), ("resnet50", 1024, 256, 14),
    ("resnet50", 256, 1024, 14), ("resnet50", 2048, 512, 7), ("resnet50", 512, 2048, 7),
    ("squeezenet", 128, 16, 55), ("squeezenet", 16, 64, 55), ("squeezenet", 512, 64, 13),
    ("squeezenet", 64, 256, 13),
]  # fmt: skip
COPIES = 6


def per_call(calls, repeat: int = 40, rounds: int = 5) -> float:
    """Best of ``rounds`` of the mean time of one call, cycling through ``calls`` (us)."""
    for call in calls:
        call()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            for call in calls:
                call()
        best = min(best, (time.perf_counter() - start) / (repeat * len(calls)))
    return best * 1e6


def layer_calls(c: int, m: int, size: int, rng) -> tuple[list, list, bool]:
    """(calls of Conv's other path, calls of conv_narrowing, whether narrowing_pays), for
    COPIES copies of the layer, each result checked against the other path's."""
    others, narrowed = [], []
    pays = False
    for _ in range(COPIES):
        x = rng.standard_normal((1, c, size, size)).astype(np.float32)
        w = (rng.standard_normal((m, c, 1, 1)) * 0.1).astype(np.float32)
        w.flags.writeable = False  # as a session's initializer
        kernel = C.Conv(kernel_shape=[1, 1])
        plan = kernel.geom.plan(x.shape, w.shape)
        pays = C.narrowing_pays(plan, 1, w.shape, np.float32)
        last = C.last_weight(w, np.float32)
        packed = threads.PackedWeight()
        epilogue = Epilogue()
        epilogue.prepare((1, m, size, size), np.float32)

        def other(x=x, w=w, kernel=kernel):
            original = C.narrowing_pays
            C.narrowing_pays = lambda *args: False  # (Conv's choice without it)
            try:
                return kernel(x, w)
            finally:
                C.narrowing_pays = original

        def narrowing(x=x, plan=plan, last=last, packed=packed, epilogue=epilogue):
            return C.conv_narrowing(x, lambda: last, packed, plan, epilogue)

        want, got = other(), narrowing()
        if got is None:
            raise SystemExit("conv_narrowing declined: numba's threads are not the pool here")
        scale = float(np.abs(want).max())
        if not np.allclose(got, want, rtol=0, atol=1e-5 * scale):
            raise SystemExit(f"C={c} M={m} {size}x{size}: the two paths disagree")
        others.append(other)
        narrowed.append(narrowing)
    return others, narrowed, pays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    run = threads.Threads(args.threads)
    if run.pool.native is None:
        raise SystemExit("needs numba's threads (pip install -e '.[fast]'; threadpoolctl)")
    print(f"{args.threads} threads; us per call, other / narrowing (above 1: narrowing faster)")
    print(f"{'model':14s} {'C':>5s} {'M':>5s} {'plane':>7s} {'other':>8s} {'narrowing':>9s} "
          f"{'ratio':>6s}  taken")  # fmt: skip
    with run():
        for model, c, m, size in LAYERS:
            others, narrowed, pays = layer_calls(c, m, size, rng)
            a, b = per_call(others), per_call(narrowed)
            print(f"{model:14s} {c:5d} {m:5d} {size:3d}x{size:<3d} {a:8.1f} {b:9.1f} {a / b:6.2f}"
                  f"  {'narrowing' if pays else 'other'}")  # fmt: skip


if __name__ == "__main__":
    main()
