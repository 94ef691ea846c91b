"""MaxPool and AveragePool per layer: onyx's numpy path, its compiled path and onnxruntime.

Layers: the 2-D pools of squeezenet, resnet50, densenet121 and inception v1 (onnx's light_*
test models, as bench_models.py runs them), float32, batch 1; and two attributes they lack.
Paths, timed in turns on one layer:
- numpy: ``_Pool.reduce``, separable passes over each axis (as with ``ONYX_COMPILED=0``);
- compiled: the numba kernel ``_jit.pool2d`` (needs numba: `pip install -e ".[fast]"`); "-"
  where the pool stays on numpy (output below ``compiled.MIN_SIZE``, or one window over the
  whole input);
- ort: onnxruntime's CPU provider on a one-node model, default threads (all cores), and ort1
  with one thread, as onyx's pools run.

Each time is the best of several medians (the machine is shared and noisy), in ms, with the
compiled time relative to numpy's and ort's. The compiled result is checked against numpy's
(max: bit for bit) and ort's before timing.

Run: python benchmarks/bench_pools.py [rounds (default 8)]
"""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from onyx.runtime import compiled
from onyx.runtime.kernels.pool import AveragePool, MaxPool
from onyx.runtime.memory import keep_freed_memory

K3S2 = {"kernel_shape": [3, 3], "strides": [2, 2]}
K3S1P1 = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
K2S2 = {"kernel_shape": [2, 2], "strides": [2, 2]}
# (model, op, input shape, attributes): the 2-D pools of onnx's light_* test models (those
# bench_models.py runs), one row per distinct layer
LAYERS = [
    ("squeezenet", "MaxPool", (1, 64, 111, 111), K3S2),
    ("squeezenet", "MaxPool", (1, 128, 55, 55), K3S2),
    ("squeezenet", "MaxPool", (1, 256, 27, 27), K3S2),
    ("resnet50 densenet121", "MaxPool", (1, 64, 112, 112), {**K3S2, "pads": [1, 1, 1, 1]}),
    ("resnet50", "AveragePool", (1, 2048, 7, 7), {"kernel_shape": [7, 7]}),
    ("densenet121", "AveragePool", (1, 128, 56, 56), K2S2),
    ("densenet121", "AveragePool", (1, 256, 28, 28), K2S2),
    ("densenet121", "AveragePool", (1, 512, 14, 14), K2S2),
    ("inception_v1", "MaxPool", (1, 64, 112, 112), K3S2),
    ("inception_v1", "MaxPool", (1, 192, 55, 55), K3S2),
    ("inception_v1", "MaxPool", (1, 192, 27, 27), K3S1P1),
    ("inception_v1", "MaxPool", (1, 256, 27, 27), K3S1P1),
    ("inception_v1", "MaxPool", (1, 480, 27, 27), K3S2),
    ("inception_v1", "MaxPool", (1, 512, 13, 13), K3S1P1),  # and 480, 528 planes
    ("inception_v1", "MaxPool", (1, 832, 13, 13), K3S2),
    ("inception_v1", "MaxPool", (1, 832, 6, 6), K3S1P1),
    ("inception_v1", "AveragePool", (1, 1024, 6, 6), {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1]}),
    # not in those models: ceil_mode, count_include_pad
    ("-", "MaxPool", (1, 192, 56, 56), {**K3S2, "ceil_mode": 1}),
    ("-", "AveragePool", (1, 480, 14, 14), {**K3S1P1, "count_include_pad": 1}),
]  # fmt: skip


def ort_session(op, shape, attrs, threads=0):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def on_path(kernel, x, compiled_path):
    """A call of ``kernel`` on ``x`` with the compiled kernels on or off."""

    def call():
        compiled.enabled = compiled_path
        try:
            return kernel(x)
        finally:
            compiled.enabled = True

    return call


def best_of_medians(calls: dict, rounds: int, per_round: int = 25) -> dict:
    """Each call's best median over ``rounds`` rounds of ``per_round`` calls, in ms; the calls
    take turns call by call, so that a noisy stretch hits them all."""
    for fn in calls.values():
        fn()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        times = {name: [] for name in calls}
        for _ in range(per_round):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            best[name] = min(best[name], float(np.median(t)) * 1e3)
    return best


def layer_name(model, op, shape, attrs):
    k, s = attrs["kernel_shape"][0], attrs.get("strides", [1])[0]
    pads = f" pads {','.join(map(str, attrs['pads']))}" if "pads" in attrs else ""
    flags = "".join(f" {key}" for key in ("ceil_mode", "count_include_pad") if attrs.get(key))
    return f"{model} {op} k{k} s{s} {'x'.join(map(str, shape[1:]))}{pads}{flags}"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    rng = np.random.default_rng(0)
    keep_freed_memory()  # as a session runs: each new output otherwise faults its pages in
    if compiled.kernels(compiled.MIN_SIZE) is None:
        print("numba unavailable: no compiled times")
    print("ms per call (best of medians); ort: all cores, ort1: one thread; c/np, c/ort: ratios")
    print(f"{'layer':<66}{'numpy':>7}{'compiled':>9}{'ort':>7}{'ort1':>7}{'c/np':>6}{'c/ort':>6}")
    for model, op, shape, attrs in LAYERS:
        x = rng.standard_normal(shape).astype(np.float32)
        kernel = MaxPool(**attrs, _outputs=1) if op == "MaxPool" else AveragePool(**attrs)
        sessions = [ort_session(op, shape, attrs), ort_session(op, shape, attrs, threads=1)]
        calls = {
            "numpy": on_path(kernel, x, False),
            "compiled": on_path(kernel, x, True),
            "ort": functools.partial(sessions[0].run, None, {"x": x}),
            "ort1": functools.partial(sessions[1].run, None, {"x": x}),
        }
        want = calls["numpy"]()
        got = calls["compiled"]()
        if op == "MaxPool":
            assert got.tobytes() == want.tobytes(), (model, shape)  # max: the same bits
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(calls["ort"]()[0], want, rtol=1e-5, atol=1e-6)
        taken = kernel.reduce_compiled(x, kernel.plan(x), compiled.ADD) is not None  # (a run)
        t = best_of_medians(calls, rounds)
        row = f"{layer_name(model, op, shape, attrs):<66}{t['numpy']:>7.3f}"
        if taken:
            row += f"{t['compiled']:>9.3f}{t['ort']:>7.3f}{t['ort1']:>7.3f}"
            row += f"{t['compiled'] / t['numpy']:>6.2f}{t['compiled'] / t['ort']:>6.2f}"
        else:  # (stays on numpy)
            row += f"{'-':>9}{t['ort']:>7.3f}{t['ort1']:>7.3f}{'-':>6}{'-':>6}"
        print(row)


if __name__ == "__main__":
    main()
