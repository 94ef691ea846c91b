"""The mobile CNNs' blocks, one at a time (docs/runtime.md, "Channel-last tensors" and
"Squeeze-excite").

1. Inverted residuals (1x1 expansion, depthwise convolution, 1x1 projection) at MobileNetV2's
   and EfficientNet-B0's sizes: onyx with its channel-last intermediates against onyx without
   them (the plan's ``mark_channels_last`` switched off), sessions alternating in one process.
2. Squeeze-excite blocks (ReduceMean, two 1x1 convolutions, Sigmoid, the gate's Mul) at
   EfficientNet-B0's sizes: onyx against onnxruntime, each in a process of its own.
3. MobileNetV2's 1x1 convolutions as numpy's OpenBLAS GEMMs on one thread, their weight in
   cache (the same product again and again) and evicted (64 MB touched before each): within a
   whole model's run its weights come from memory (its 14 MB and its activations outgrow what
   the caches keep), and OpenBLAS streams a weight from memory poorly.
4. Depthwise convolutions alone (with their bias and ReLU6 or Swish, NCHW in and out) at
   MobileNetV2's and EfficientNet-B0's sizes: onyx against onnxruntime, each in a process of
   its own (onnxruntime's times include its moves to and from its blocked layout).

1, 2 and 4 at 1 thread and at 2 (intra_op_num_threads; *_NUM_THREADS for onnxruntime's process).
Best of rounds of a median of many runs, in µs per block; the machine drifts, so compare
within a row.

Run: python benchmarks/bench_mobile_blocks.py [--rounds 3] [--repeat 200] [--parts 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from bench_models import median_time  # this folder is on sys.path when run as a script

import onyx
from onyx.build import GraphBuilder

RNG = np.random.default_rng(7)

# (label, channels, expanded, size, kernel, stride, activation)
RESIDUALS = [
    ("MobileNetV2 64->384, 14x14", 64, 384, 14, 3, 1, "clip"),
    ("MobileNetV2 96->576, 14x14", 96, 576, 14, 3, 1, "clip"),
    ("MobileNetV2 96->576, 14->7", 96, 576, 14, 3, 2, "clip"),
    ("MobileNetV2 160->960, 7x7", 160, 960, 7, 3, 1, "clip"),
    ("EfficientNet 112->672, 14x14, 5x5", 112, 672, 14, 5, 1, "swish"),
    ("EfficientNet 192->1152, 7x7, 5x5", 192, 1152, 7, 5, 1, "swish"),
]
# (label, channels, squeezed, size)
SQUEEZES = [
    ("EfficientNet 144 ch, 56x56", 144, 6, 56),
    ("EfficientNet 480 ch, 14x14", 480, 20, 14),
    ("EfficientNet 1152 ch, 7x7", 1152, 48, 7),
]


# (label, channels, size, kernel, stride, activation)
DEPTHWISE = [
    ("MobileNetV2 32 ch, 112x112", 32, 112, 3, 1, "clip"),
    ("MobileNetV2 96 ch, 112->56", 96, 112, 3, 2, "clip"),
    ("MobileNetV2 144 ch, 56x56", 144, 56, 3, 1, "clip"),
    ("MobileNetV2 144 ch, 56->28", 144, 56, 3, 2, "clip"),
    ("MobileNetV2 192 ch, 28x28", 192, 28, 3, 1, "clip"),
    ("MobileNetV2 192 ch, 28->14", 192, 28, 3, 2, "clip"),
    ("EfficientNet 240 ch, 28x28, 5x5", 240, 28, 5, 1, "swish"),
    ("EfficientNet 672 ch, 14x14, 5x5", 672, 14, 5, 1, "swish"),
]


def _weight(*shape, scale=0.2):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _activation(g, y, kind):
    if kind == "clip":
        return g.op.Clip(y, np.array(0, np.float32), np.array(6, np.float32))
    return g.op.Mul(y, g.op.Sigmoid(y))  # (SiLU as exported; the session fuses it)


def inverted_residual(channels, expanded, size, kernel, stride, kind):
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, channels, size, size])
    a = _activation(g, g.op.Conv(x, _weight(expanded, channels, 1, 1), _weight(expanded)), kind)
    d = g.op.Conv(a, _weight(expanded, 1, kernel, kernel), _weight(expanded), group=expanded,
                  pads=[kernel // 2] * 4, strides=[stride, stride])  # fmt: skip
    d = _activation(g, d, kind)
    y = g.op.Conv(d, _weight(channels, expanded, 1, 1, scale=0.1), _weight(channels))
    g.output(g.op.Add(y, x) if stride == 1 else y, "y")
    return onyx.to_bytes(g.model())


def squeeze_excite(channels, squeezed, size):
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, channels, size, size])
    m = g.op.ReduceMean(x, np.array([2, 3], np.int64), keepdims=1)
    s = _activation(g, g.op.Conv(m, _weight(squeezed, channels, 1, 1), _weight(squeezed)), "swish")
    gate = g.op.Sigmoid(g.op.Conv(s, _weight(channels, squeezed, 1, 1), _weight(channels)))
    g.output(g.op.Mul(x, gate), "y")
    return onyx.to_bytes(g.model())


def depthwise(channels, size, kernel, stride, kind):
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, channels, size, size])
    d = g.op.Conv(x, _weight(channels, 1, kernel, kernel), _weight(channels), group=channels,
                  pads=[kernel // 2] * 4, strides=[stride, stride])  # fmt: skip
    g.output(_activation(g, d, kind), "y")
    return onyx.to_bytes(g.model())


# what part 2 and part 4 time: (cases, the model of one case's shape)
_AGAINST_ORT = {"squeeze": (SQUEEZES, squeeze_excite), "depthwise": (DEPTHWISE, depthwise)}


def _best(fn, rounds, repeat):
    return min(median_time(fn, repeat) for _ in range(rounds)) * 1e6


def residuals(rounds, repeat):
    from onyx.runtime import plan

    marking = plan.mark_channels_last
    print("1. inverted residuals: onyx with / without channel-last intermediates (µs a block)")
    print(f"{'block':<36}{'1t with':>9}{'1t without':>12}{'2t with':>9}{'2t without':>12}")
    for label, *shape in RESIDUALS:
        data = inverted_residual(*shape)
        feed = {"x": RNG.standard_normal((1, shape[0], shape[2], shape[2])).astype(np.float32)}
        row = []
        for threads in (1, 2):
            sessions = []
            for marked in (True, False):
                plan.mark_channels_last = marking if marked else (lambda *args: None)
                options = onyx.SessionOptions(intra_op_num_threads=threads)
                sessions.append(onyx.InferenceSession(data, options))
            plan.mark_channels_last = marking
            outs = [s.run(None, feed)[0] for s in sessions]
            np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
            times = [float("inf")] * 2
            for _ in range(rounds):  # (alternating)
                for i, s in enumerate(sessions):
                    took = median_time(lambda s=s, feed=feed: s.run(None, feed), repeat)
                    times[i] = min(times[i], took * 1e6)
            row += times
        print(f"{label:<36}{row[0]:>9.1f}{row[1]:>12.1f}{row[2]:>9.1f}{row[3]:>12.1f}")


def worker(runtime, kind, index, threads, rounds, repeat):
    """One runtime's time for case ``index`` of ``kind`` ("squeeze", "depthwise") at
    ``threads``, as JSON."""
    cases, build = _AGAINST_ORT[kind]
    _, *shape = cases[index]
    data = build(*shape)
    size = shape[2] if kind == "squeeze" else shape[1]
    feed = {"x": np.random.default_rng(1).standard_normal((1, shape[0], size, size))
            .astype(np.float32)}  # fmt: skip
    if runtime == "onyx":
        session = onyx.InferenceSession(data, onyx.SessionOptions(intra_op_num_threads=threads))
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    out = session.run(None, feed)[0]
    took = _best(lambda: session.run(None, feed), rounds, repeat)
    print(json.dumps({"us": took, "sum": float(np.abs(out).sum())}))


def squeezes(rounds, repeat):
    print("\n2. squeeze-excite blocks: onyx / onnxruntime, each in its own process (µs a block)")
    _against_onnxruntime("squeeze", "block", rounds, repeat)


def depthwise_layers(rounds, repeat):
    print("\n4. depthwise convolutions: onyx / onnxruntime, each in its own process (µs a layer)")
    _against_onnxruntime("depthwise", "layer", rounds, repeat)


def _against_onnxruntime(kind, what, rounds, repeat):
    print(f"{what:<34}{'1t onyx':>9}{'1t ort':>8}{'2t onyx':>9}{'2t ort':>8}{'2t ratio':>10}")
    for index, (label, *_) in enumerate(_AGAINST_ORT[kind][0]):
        row = []
        for threads in (1, 2):
            sums = []
            for runtime in ("onyx", "onnxruntime"):
                env = {**os.environ, **{k: str(threads) for k in (
                    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}}  # fmt: skip
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", runtime, kind, str(index),
                     str(threads), "--rounds", str(rounds), "--repeat", str(repeat)],
                    capture_output=True, text=True, check=True, env=env,
                )  # fmt: skip
                result = json.loads(out.stdout.strip().splitlines()[-1])
                row.append(result["us"])
                sums.append(result["sum"])
            assert abs(sums[0] - sums[1]) <= 1e-4 * max(1.0, sums[1]), sums  # the same model
        print(f"{label:<34}{row[0]:>9.1f}{row[1]:>8.1f}{row[2]:>9.1f}{row[3]:>8.1f}"
              f"{row[2] / row[3]:>9.2f}x")  # fmt: skip


# (inputs, outputs, size) of MobileNetV2's pointwise layers
POINTWISE = [(96, 576, 14), (960, 160, 7), (160, 960, 7), (320, 1280, 7)]


def cold_weights(repeat):
    import threadpoolctl

    print("\n3. 1x1 convolutions as OpenBLAS GEMMs, 1 thread: weight in cache / evicted (µs)")
    print(f"{'layer':<24}{'in cache':>10}{'evicted':>10}{'ratio':>8}")
    junk = np.ones(16 << 20, np.float32)  # 64 MB, twice the last-level cache here
    with threadpoolctl.threadpool_limits(1, "blas"):
        for c, m, size in POINTWISE:
            w, x = _weight(m, c), _weight(c, size * size)
            y = np.empty((m, size * size), np.float32)
            warm = median_time(lambda w=w, x=x, y=y: np.matmul(w, x, out=y), repeat) * 1e6
            cold = []
            for _ in range(max(repeat // 10, 10)):
                np.add(junk, 1.0, out=junk)
                start = time.perf_counter()
                np.matmul(w, x, out=y)
                cold.append((time.perf_counter() - start) * 1e6)
            evicted = float(np.median(cold))
            print(f"{f'{c}->{m}, {size}x{size}':<24}{warm:>10.1f}{evicted:>10.1f}"
                  f"{evicted / warm:>7.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--parts", type=int, nargs="*", default=[1, 2, 3, 4])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        runtime, kind, index, threads = args.worker
        worker(runtime, kind, int(index), int(threads), args.rounds, args.repeat)
        return
    if 1 in args.parts:
        residuals(args.rounds, args.repeat)
    if 2 in args.parts:
        squeezes(args.rounds, args.repeat)
    if 3 in args.parts:
        cold_weights(args.repeat)
    if 4 in args.parts:
        depthwise_layers(args.rounds, args.repeat)


if __name__ == "__main__":
    main()
