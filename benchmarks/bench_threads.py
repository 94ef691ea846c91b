"""What chose numba's threads for the sessions' pool (docs/runtime.md, "Threads").

1. The wake-up a Python worker pays per split: a round trip through two queues between two
   Python threads (the Python pool hands out parts and waits for them that way).
2. A MobileNetV2 depthwise layer (384 channels, 14x14, 3x3) and a large one (96 channels,
   112x112): on the calling thread alone, split in two over the Python pool, over numba's
   threads.
3. GEMMs of BERT's and the CNNs' shapes: numpy's OpenBLAS on its own threads against the same
   OpenBLAS held to one thread and called through CBLAS from numba's threads, split in two
   along the larger of M and N (as the pool does).
4. The reason BLAS is held: a GEMM on OpenBLAS's own threads followed by the depthwise layer on
   numba's, both pools' idle threads spinning (run in a process of its own with
   OMP_WAIT_POLICY=active, numba's OpenMP layer's behaviour while its threads wait).
5. The bounds below which work stays on one thread when the pool is numba's
   (threads.NATIVE_MIN_FLOPS, NATIVE_MIN_ELEMENTS): small GEMMs (the 2-layer transformers')
   and softmax rows of 128, below the bounds and split in two.

Medians of many calls in µs, each configuration timed in turns; the machine's speed drifts, so
compare within a row. Needs numba and threadpoolctl (the fast extra).

Run: python benchmarks/bench_threads.py
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np

from onyx.runtime import _jit, _jit_exp, threads

THREADS = 2


def median_us(fn, calls: int = 200) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def queue_round_trip() -> float:
    ask, answer = queue.SimpleQueue(), queue.SimpleQueue()

    def echo():
        while (item := ask.get()) is not None:
            answer.put(item)

    worker = threading.Thread(target=echo, daemon=True)
    worker.start()
    took = median_us(lambda: (ask.put(1), answer.get()), 2000)
    ask.put(None)
    return took


def depthwise_case(channels: int, size: int, native) -> tuple[float, float, float]:
    x = np.random.default_rng(0).standard_normal((1, channels, size, size)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((channels, 3, 3)).astype(np.float32)
    y = np.empty_like(x)
    pool = threads.pool(THREADS)
    finish = (np.empty(0, np.float32), np.float32(-np.inf), np.float32(np.inf), False)  # none

    def band(c0, c1):
        _jit.depthwise(x, w, y, c0, c1, 1, 1, 1, 1, 1, 1, 1, *finish)

    alone = median_us(lambda: band(0, channels))
    python = median_us(lambda: pool.run(band, threads.bands(channels, THREADS)))
    numba = median_us(
        lambda: native.kernels.depthwise_bands(x, w, y, 1, 1, 1, 1, 1, 1, 1, *finish, THREADS)
    )
    return alone, python, numba


def gemm_case(m: int, k: int, n: int, native) -> tuple[float, float]:
    rng = np.random.default_rng(2)
    a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
    out = np.empty((m, n), np.float32)
    own = median_us(lambda: np.matmul(a, b, out=out))
    with threads.blas_held():
        split = median_us(lambda: native.matmul(a, b, out, THREADS))
    return own, split


def bounds(native) -> None:
    """Small work in one part against two, on numba's threads."""
    rng = np.random.default_rng(4)
    print("5. small work (µs): below the bound (numpy's matmul, BLAS held to one thread; the")
    print("   compiled softmax on the calling thread), and split in two over numba's threads")
    with threads.blas_held():
        for m, k, n in ((128, 64, 256), (128, 64, 192), (128, 64, 64), (64, 64, 64)):
            a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
            out = np.empty((m, n), np.float32)
            one = median_us(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), 1000)
            two = median_us(lambda a=a, b=b, out=out: native.matmul(a, b, out, 2), 1000)
            print(f"  GEMM {m} x {k} x {n} ({m * k * n:,} multiply-adds): {one:7.1f} {two:7.1f}")
    for rows in (64, 256, 1024):
        x = rng.standard_normal(rows * 128).astype(np.float32)
        y = np.empty_like(x)
        p, bits = np.empty(128, np.float32), np.empty(128, np.int32)
        scale = bits.view(np.float32)
        one = median_us(
            lambda x=x, y=y, p=p, bits=bits, scale=scale: _jit_exp.softmax_rows(
                x, y, 128, p, bits, scale
            ),
            1000,
        )
        two = median_us(lambda x=x, y=y: native.kernels.softmax_bands(x, y, 128, 2), 1000)
        print(f"  softmax of {rows} rows of 128 ({x.size:,} elements): {one:7.1f} {two:7.1f}")


def interference() -> None:
    """In this process: OMP_WAIT_POLICY is set before numba starts its threads."""
    native = threads.native()
    x = np.random.default_rng(0).standard_normal((1, 384, 14, 14)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((384, 3, 3)).astype(np.float32)
    y = np.empty_like(x)
    a = np.random.default_rng(2).random((128, 768), np.float32)
    b = np.random.default_rng(3).random((768, 768), np.float32)
    out = np.empty((128, 768), np.float32)
    finish = (np.empty(0, np.float32), np.float32(-np.inf), np.float32(np.inf), False)  # none

    def layer():
        native.kernels.depthwise_bands(x, w, y, 1, 1, 1, 1, 1, 1, 1, *finish, THREADS)

    def gemm_own():
        np.matmul(a, b, out=out)

    def gemm_held():
        with threads.blas_held():
            native.matmul(a, b, out, THREADS)

    both_own = median_us(lambda: (gemm_own(), layer()), 100)
    both_held = median_us(lambda: (gemm_held(), layer()), 100)
    print(f"  GEMM 128x768x768 then the 14x14 layer: OpenBLAS's threads {both_own:9.1f} µs, "
          f"held, through numba's {both_held:9.1f} µs")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--interference":
        interference()
        return
    native = threads.native()
    if native is None:
        sys.exit(f"numba's threads are not available here: {threads._NATIVE.refused}")
    import numba

    numba.set_num_threads(THREADS)
    print(f"numba's threading layer: {numba.threading_layer()}, {THREADS} threads")
    print(f"1. queue round trip between two Python threads: {queue_round_trip():.1f} µs")
    print("2. depthwise 3x3 layer (µs): alone, Python pool of 2, numba's threads")
    for channels, size in ((384, 14), (96, 112)):
        alone, python, numba_ = depthwise_case(channels, size, native)
        print(f"  {channels} x {size}x{size}: {alone:8.1f} {python:8.1f} {numba_:8.1f}")
    print("3. GEMM M x K x N (µs): OpenBLAS's own threads, held to one and split over numba's")
    for m, k, n in ((128, 768, 768), (128, 768, 3072), (384, 64, 196), (96, 16, 12544)):
        own, split = gemm_case(m, k, n, native)
        print(f"  {m} x {k} x {n}: {own:9.1f} {split:9.1f}")
    print("4. both pools spinning (OMP_WAIT_POLICY=active):")
    env = {**os.environ, "OMP_WAIT_POLICY": "active"}
    subprocess.run([sys.executable, __file__, "--interference"], env=env, check=True)
    bounds(native)


if __name__ == "__main__":
    main()
