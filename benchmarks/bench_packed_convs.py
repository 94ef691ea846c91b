"""Convolutions by a weight packed once, per layer: the measurement behind
``conv.packed_pointwise_pays`` and ``conv.packed_columns_pay``.

Part 1, 1x1 convolutions: the path Conv takes otherwise (BLAS's W X: banded or im2col) against
``conv_packed_pointwise`` (Y^T = X^T W^T on onyx's own GEMM, W packed once, tiles stored
transposed into Y's planes), on the 1x1 layers of MobileNetV2, ResNet-50 and SqueezeNet,
narrowing and widening; taken from 64 deep.

Part 2, larger kernels: the path Conv takes otherwise (Winograd, banded, shift-and-add or the
im2col path) against ``conv_packed_columns`` (each image's patches made from its channel-last
input, then Y^T = R W^T the same way), on 3x3 and 5x5 layers of squeezenet, inception v1,
ResNet-50 and densenet121; taken on the im2col and shift-and-add paths, from 128 deep.

Each layer runs on the session's pool (numba's threads, ``--threads``, default 2), four copies
of it cycled so that its weight and input are not all cache-hot, as in a model; the two paths
alternate call by call (ABBA), each keeping its median, since this machine's speed drifts by
tens of percent over a minute. The table gives both (us), their ratio (other / packed: above 1,
the packed path is faster) and the path Conv takes. Needs numba (the fast extra) and
threadpoolctl.

Run: python benchmarks/bench_packed_convs.py [--threads 2] [--part 1|2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from onyx.runtime import threads
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels import conv as C

POINTWISE = [  # (model, inputs C, outputs M, height = width)
    ("mobilenet_v2", 16, 96, 112), ("mobilenet_v2", 32, 16, 112), ("mobilenet_v2", 96, 24, 56),
    ("mobilenet_v2", 24, 144, 56), ("mobilenet_v2", 144, 24, 56), ("mobilenet_v2", 144, 32, 28),
    ("mobilenet_v2", 192, 32, 28), ("mobilenet_v2", 32, 192, 28), ("mobilenet_v2", 192, 64, 14),
    ("mobilenet_v2", 64, 384, 14), ("mobilenet_v2", 384, 64, 14), ("mobilenet_v2", 96, 576, 14),
    ("mobilenet_v2", 576, 96, 14), ("mobilenet_v2", 160, 960, 7), ("mobilenet_v2", 960, 160, 7),
    ("mobilenet_v2", 320, 1280, 7), ("resnet50", 64, 256, 56), ("resnet50", 256, 64, 56),
    ("resnet50", 512, 128, 28), ("resnet50", 128, 512, 28), ("resnet50", 1024, 256, 14),
    ("resnet50", 256, 1024, 14), ("resnet50", 2048, 512, 7), ("resnet50", 512, 2048, 7),
    ("squeezenet", 128, 16, 55), ("squeezenet", 16, 64, 55), ("squeezenet", 512, 64, 13),
    ("squeezenet", 64, 256, 13), ("squeezenet", 512, 1000, 13),
]  # fmt: skip
KERNELS = [  # (model, inputs C, outputs M, height = width, kernel, stride)
    ("squeezenet", 16, 64, 55, 3, 1), ("squeezenet", 32, 128, 27, 3, 1),
    ("squeezenet", 48, 192, 13, 3, 1), ("squeezenet", 64, 256, 13, 3, 1),
    ("inception_v1", 16, 32, 28, 5, 1), ("inception_v1", 32, 96, 14, 5, 1),
    ("inception_v1", 48, 128, 7, 5, 1), ("inception_v1", 96, 128, 28, 3, 1),
    ("inception_v1", 192, 384, 7, 3, 1), ("resnet50", 64, 64, 56, 3, 1),
    ("resnet50", 128, 128, 28, 3, 1), ("resnet50", 512, 512, 7, 3, 1),
    ("resnet50", 128, 128, 56, 3, 2), ("densenet121", 128, 32, 28, 3, 1),
    ("stem", 3, 64, 224, 3, 2), ("resnet50", 3, 64, 224, 7, 2),
]  # fmt: skip
COPIES = 4


def alternated(a, b, rounds: int = 60) -> tuple[float, float]:
    """Median us of one call of the callables in ``a`` and in ``b``, the two alternating."""
    for call in a + b + a + b:
        call()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        for side in (0, 1) if i % 2 else (1, 0):
            calls = (a, b)[side]
            start = time.perf_counter()
            for call in calls:
                call()
            times[side].append((time.perf_counter() - start) / len(calls))
    return statistics.median(times[0]) * 1e6, statistics.median(times[1]) * 1e6


def layer(c: int, m: int, size: int, kernel: int, stride: int, rng):
    """(calls of Conv's other path, calls of the packed path, what Conv takes), for COPIES
    copies of a layer (pads kernel // 2), each packed result checked against the other's."""
    others, packed_calls = [], []
    for _ in range(COPIES):
        x = rng.standard_normal((1, c, size, size)).astype(np.float32)
        w = (rng.standard_normal((m, c, kernel, kernel)) * 0.1).astype(np.float32)
        w.flags.writeable = False  # as a session's initializer
        pads = [kernel // 2] * 4
        conv = C.Conv(kernel_shape=[kernel] * 2, pads=pads, strides=[stride] * 2)
        plan = conv.geom.plan(x.shape, w.shape)
        route = conv._route(plan, x.shape, w.shape, np.float32)
        epilogue = Epilogue()
        epilogue.prepare((1, m, *plan[5]), np.float32)
        store = threads.PackedWeight()
        if kernel == 1:
            taken = "packed" if C.packed_pointwise_pays(plan, 1, w.shape, np.float32) else "other"
            last = C.last_weight(w, np.float32)

            def packed(x=x, plan=plan, last=last, store=store, epilogue=epilogue):
                return C.conv_packed_pointwise(x, lambda: last, store, plan, epilogue)
        else:
            pays = C.packed_columns_pay(route, plan, 1, w.shape, np.float32)
            taken = "packed" if pays else route

            last = C.last_weight(w, np.float32)

            def packed(x=x, plan=plan, last=last, store=store, epilogue=epilogue):
                return C.conv_packed_columns(x, lambda: last, store, plan, epilogue)

        def other(x=x, w=w, conv=conv):
            # (Conv's choice without the packed paths)
            saved = C._PACKED_POINTWISE_DEPTH, C._PACKED_COLUMNS_DEPTH
            C._PACKED_POINTWISE_DEPTH = C._PACKED_COLUMNS_DEPTH = 1 << 62
            try:
                return conv(x, w)
            finally:
                C._PACKED_POINTWISE_DEPTH, C._PACKED_COLUMNS_DEPTH = saved

        want, got = other(), packed()
        if got is None:
            raise SystemExit("the packed paths declined: numba's threads are not the pool here")
        if not np.allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max())):
            raise SystemExit(f"C={c} M={m} {size}x{size} k{kernel}: the two paths disagree")
        others.append(other)
        packed_calls.append(packed)
    return others, packed_calls, taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", type=int, choices=(1, 2), help="only this part")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    run = threads.Threads(args.threads)
    if run.pool.native is None:
        raise SystemExit("needs numba's threads (pip install -e '.[fast]'; threadpoolctl)")
    print(f"{args.threads} threads; median us per call, other / packed (above 1: packed faster)")
    parts = [
        ("part 1, 1x1 (packed: conv_packed_pointwise)", [(*r, 1, 1) for r in POINTWISE]),
        ("part 2, larger kernels (packed: conv_packed_columns)", KERNELS),
    ]
    with run():
        for number, (title, layers) in enumerate(parts, 1):
            if args.part not in (None, number):
                continue
            print(f"\n{title}")
            print(f"{'model':14s} {'C':>5s} {'M':>5s} {'plane':>7s} {'k/s':>4s} {'other':>8s} "
                  f"{'packed':>8s} {'ratio':>6s}  Conv takes")  # fmt: skip
            for model, c, m, size, kernel, stride in layers:
                others, packed, taken = layer(c, m, size, kernel, stride, rng)
                a, b = alternated(others, packed)
                print(f"{model:14s} {c:5d} {m:5d} {size:3d}x{size:<3d} {kernel}/{stride:<2d} "
                      f"{a:8.1f} {b:8.1f} {a / b:6.2f}  {taken}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
