"""Convolutions by a weight packed once, per layer: the measurement behind
``conv.planes_pay``, ``conv.packed_pointwise_pays``, ``conv.packed_columns_pay`` and
``conv.planes_patches_pay``.

Part 1, 1x1 convolutions: BLAS's W X (banded or im2col: the path Conv takes without the packed
ones) against ``conv_packed_pointwise`` (Y^T = X^T W^T on onyx's own GEMM, W packed once, tiles
stored transposed into Y's planes) and ``conv_planes`` (Y = W X on onyx's GEMM, W packed once
in tiles of 6 rows broadcast against X's rows, Y's rows stored as they are), on the 1x1 layers
of MobileNetV2, ResNet-50 and SqueezeNet, narrowing and widening.

Part 2, larger kernels: the path Conv takes otherwise (Winograd, banded, shift-and-add or the
im2col path) against ``conv_packed_columns`` (Y^T = R W^T the same way, R's terms read where
they lie in the input) and ``conv_planes_patches`` (Y = W R^T as ``conv_planes`` multiplies,
R's terms gathered where they lie as each block of pixels is copied), on 3x3, 5x5 and 7x7
layers of squeezenet, inception v1, ResNet-50 and densenet121 and the stems.

Each layer runs on the session's pool (numba's threads, ``--threads``, default 2), four copies
of it cycled so that its weight and input are not all cache-hot, as in a model; the paths
alternate call by call, each keeping its median, since this machine's speed drifts by tens of
percent over a minute. The table gives each (us), the other path's time over each packed one's
(above 1: the packed path is faster) and the path Conv takes. Needs numba (the fast extra) and
threadpoolctl.

Run: python benchmarks/bench_packed_convs.py [--threads 2] [--part 1|2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

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
    ("stem", 3, 64, 224, 3, 2), ("mobilenet_v2", 3, 32, 224, 3, 2), ("resnet50", 3, 64, 224, 7, 2),
    ("densenet121", 128, 32, 56, 3, 1), ("densenet121", 128, 32, 14, 3, 1),
]  # fmt: skip
COPIES = 4


def alternated(*paths, rounds: int = 60) -> list[float]:
    """Median us of one call of the callables of each path (a list of calls), the paths
    taking turns, their order reversed every other round."""
    for calls in paths + paths:
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in paths]
    for i in range(rounds):
        for side in range(len(paths)) if i % 2 else reversed(range(len(paths))):
            calls = paths[side]
            start = time.perf_counter()
            for call in calls:
                call()
            times[side].append((time.perf_counter() - start) / len(calls))
    return [statistics.median(t) * 1e6 for t in times]


def _without_packed(conv, x, w):
    """Conv's choice with none of the packed paths."""
    names = ("_PACKED_POINTWISE_DEPTH", "_PACKED_COLUMNS_DEPTH", "_PLANES_DEPTH", "_PLANES_PIXELS",
             "_PLANES_PATCH_DEPTH")  # fmt: skip
    saved = [getattr(C, name) for name in names]
    C._PACKED_POINTWISE_DEPTH = C._PACKED_COLUMNS_DEPTH = C._PLANES_PIXELS = 1 << 62
    C._PLANES_DEPTH = C._PLANES_PATCH_DEPTH = 0
    try:
        return conv(x, w)
    finally:
        for name, value in zip(names, saved):
            setattr(C, name, value)


def layer(c: int, m: int, size: int, kernel: int, stride: int, rng):
    """(calls of Conv's other path, [calls of each packed path], what Conv takes), for COPIES
    copies of a layer (pads kernel // 2), each packed result checked against the other's:
    the packed paths are ``conv_packed_pointwise`` and ``conv_planes`` for a 1x1 layer,
    ``conv_packed_columns`` and ``conv_planes_patches`` else."""
    others, packed_calls = [], [[], []]
    taken = "other"
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
        last = C.last_weight(w, np.float32)
        if kernel == 1:
            if C.planes_pay(plan, 1, w.shape, np.float32):
                taken = "planes"
            elif C.packed_pointwise_pays(plan, 1, w.shape, np.float32):
                taken = "packed"
            paths = [
                partial(C.conv_packed_pointwise, x, partial(np.asarray, last),
                        threads.PackedWeight(), plan, epilogue),
                partial(C.conv_planes, x, w.reshape(m, c), threads.PackedWeight(threads.row_tiles),
                        plan, epilogue),
            ]  # fmt: skip
        else:
            if C.planes_patches_pay(route, plan, 1, w.shape, np.float32):
                taken = "planes"
            elif C.packed_columns_pay(route, plan, 1, w.shape, np.float32):
                taken = "packed"
            else:
                taken = route
            patches_weight = last.reshape(-1, m).T  # (M, kh*kw*C), read-only
            paths = [
                partial(C.conv_packed_columns, x, partial(np.asarray, last),
                        threads.PackedWeight(), plan, epilogue),
                partial(C.conv_planes_patches, x, patches_weight,
                        threads.PackedWeight(threads.row_tiles), plan, epilogue),
            ]  # fmt: skip

        def other(x=x, w=w, conv=conv):
            return _without_packed(conv, x, w)

        want = other()
        for path, calls in zip(paths, packed_calls):
            got = path()
            if got is None:
                raise SystemExit("the packed paths declined: numba's threads are not the pool here")
            if not np.allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max())):
                raise SystemExit(f"C={c} M={m} {size}x{size} k{kernel}: the paths disagree")
            calls.append(path)
        others.append(other)
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
    print(f"{args.threads} threads; median us per call; other / packed (above 1: packed faster)")
    parts = [
        ("part 1, 1x1 (packed: conv_packed_pointwise; planes: conv_planes)",
         [(*r, 1, 1) for r in POINTWISE]),
        ("part 2, larger kernels (packed: conv_packed_columns; planes: conv_planes_patches)",
         KERNELS),
    ]  # fmt: skip
    with run():
        for number, (title, layers) in enumerate(parts, 1):
            if args.part not in (None, number):
                continue
            print(f"\n{title}")
            extra = f" {'planes':>8s} {'ratio':>6s}"
            print(f"{'model':14s} {'C':>5s} {'M':>5s} {'plane':>7s} {'k/s':>4s} {'other':>8s} "
                  f"{'packed':>8s} {'ratio':>6s}{extra}  Conv takes")  # fmt: skip
            for model, c, m, size, kernel, stride in layers:
                others, packed, taken = layer(c, m, size, kernel, stride, rng)
                a, *rest = alternated(others, *packed)
                cells = "".join(f" {b:8.1f} {a / b:6.2f}" for b in rest)
                print(f"{model:14s} {c:5d} {m:5d} {size:3d}x{size:<3d} {kernel}/{stride:<2d} "
                      f"{a:8.1f}{cells}  {taken}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
