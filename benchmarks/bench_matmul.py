"""Products by a weight: numpy's BLAS, onyx's own GEMM on the weight packed once, and
onnxruntime's MatMul, on the shapes of BERT-base / GPT-2 small, ViT-small and the mobile CNNs'
pointwise convolutions.

Each layer of BERT-base or GPT-2 (sequence 128) multiplies a (128, 768) activation by four
weights: 768x2304 (Q, K and V merged), 768x768 (the attention's output), 768x3072 and 3072x768
(the MLP), twelve layers deep; ViT-small's (197 tokens) are 384x1152 and 1536x384; MobileNetV2's
pointwise convolutions at 14x14 and 7x7 (channel-last: pixels by channels) 196x384 by 384x64
and 49x960 by 960x160. The script times each product alone, cache-hot: through numpy
(``x @ w``; OpenBLAS in numpy's wheels, what onyx called before it had a GEMM of its own),
through a one-node onyx session and an onnxruntime one holding ``w`` as an initializer (so each
may pack it once, as in a model), each runtime in a process of its own at 1 thread and at the
machine's physical cores; then the sum over BERT's 48 products of a forward pass. In a model,
though, each weight is read once a run and comes from memory (BERT-base's 340 MB do not stay
in any cache): the last row runs all 48 products of the 12 layers, each by a weight of its
own, in one model (one call of ``x @ w`` each for numpy) and times the whole run.

Run: python benchmarks/bench_matmul.py [--threads 1 2] [--seq 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# (rows, K, N): BERT's layer (rows = the sequence, given at the command line), ViT-small's MLP
# and attention input, MobileNetV2's pointwise convolutions
BERT = [(768, 2304), (768, 768), (768, 3072), (3072, 768)]
OTHERS = [(197, 384, 1152), (197, 1536, 384), (196, 384, 64), (49, 960, 160)]
LAYERS = 12
RUNTIMES = ("numpy", "onyx", "onnxruntime")


def _best(fn, budget: float = 1.0) -> float:
    fn()
    best, end, calls = float("inf"), time.perf_counter() + budget, 0
    while calls < 10 or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return best


def _shapes(seq: int) -> list[tuple[int, int, int]]:
    return [(seq, k, n) for k, n in BERT] + OTHERS


def _session(runtime: str, rows: int, w: np.ndarray, threads: int):
    """A one-node MatMul model holding ``w`` as an initializer, in ``runtime``."""
    if runtime == "onyx":
        import onyx
        from onyx.build import GraphBuilder

        g = GraphBuilder(opset=17)
        g.output(g.op.MatMul(g.input("x", "float", [rows, w.shape[0]]), w), "y")
        options = onyx.SessionOptions(intra_op_num_threads=threads)
        return onyx.InferenceSession(g.model(), options)
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def worker(runtime: str, seq: int, threads: int) -> dict[str, list[float]]:
    """Seconds of each product and the sum of its result (the runtimes compute the same), in
    this process."""
    rng = np.random.default_rng(0)
    times = {}
    for rows, k, n in _shapes(seq):
        x = rng.standard_normal((rows, k), dtype=np.float32)
        w = rng.standard_normal((k, n), dtype=np.float32)
        if runtime == "numpy":
            call = lambda x=x, w=w: x @ w
        else:
            session = _session(runtime, rows, w, threads)
            call = lambda s=session, x=x: s.run(None, {"x": x})[0]
        times[f"{rows}x{k}x{n}"] = [_best(call), float(np.abs(call()).sum())]
    times["all"] = _layers(runtime, seq, threads, rng)
    return times


def _layers(runtime: str, seq: int, threads: int, rng) -> list[float]:
    """[seconds, sum] of BERT's 48 products by 48 weights of their own, in one run."""
    weights = [
        rng.standard_normal(shape, dtype=np.float32) for _ in range(LAYERS) for shape in BERT
    ]
    x = {k: rng.standard_normal((seq, k), dtype=np.float32) for k in {k for k, _ in BERT}}
    if runtime == "numpy":
        call = lambda: [x[w.shape[0]] @ w for w in weights]
    elif runtime == "onyx":
        import onyx
        from onyx.build import GraphBuilder

        g = GraphBuilder(opset=17)
        inputs = {k: g.input(f"x{k}", "float", [seq, k]) for k in x}
        for i, w in enumerate(weights):
            g.output(g.op.MatMul(inputs[w.shape[0]], w), f"y{i}")
        session = onyx.InferenceSession(
            g.model(), onyx.SessionOptions(intra_op_num_threads=threads)
        )
        call = lambda: session.run(None, {f"x{k}": v for k, v in x.items()})
    else:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        nodes = [helper.make_node("MatMul", [f"x{w.shape[0]}", f"w{i}"], [f"y{i}"])
                 for i, w in enumerate(weights)]  # fmt: skip
        graph = helper.make_graph(
            nodes, "layers",
            [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [seq, k]) for k in x],
            [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [seq, w.shape[1]])
             for i, w in enumerate(weights)],
            [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        call = lambda: session.run(None, {f"x{k}": v for k, v in x.items()})
    return [_best(call, budget=3.0), float(sum(np.abs(y).sum() for y in call()))]


def measure(runtime: str, seq: int, threads: int) -> dict[str, list[float]]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", runtime, str(seq), str(threads)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", nargs="*", type=int)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        runtime, seq, threads = args.worker
        print(json.dumps(worker(runtime, int(seq), int(threads))))
        return
    from onyx.runtime.threads import physical_cores

    counts = args.threads or sorted({1, physical_cores()})
    print(f"(rows, K) x (K, N) products, BERT's at seq {args.seq}; best of calls over ~1 s "
          f"each, each runtime in its own process; GFLOP/s in brackets")  # fmt: skip
    print("| threads | product | numpy (OpenBLAS) ms | onyx ms | onnxruntime ms | "
          "numpy / onyx | onyx / onnxruntime |")  # fmt: skip
    print("|---|---|--:|--:|--:|--:|--:|")
    for threads in counts:
        found = {runtime: measure(runtime, args.seq, threads) for runtime in RUNTIMES}
        for key in found["numpy"]:
            if key == "all":
                continue
            rows, k, n = (int(v) for v in key.split("x"))
            flops = 2 * rows * k * n
            took = [found[runtime][key][0] for runtime in RUNTIMES]
            sums = [found[runtime][key][1] for runtime in RUNTIMES]
            assert max(sums) - min(sums) <= 1e-4 * max(sums), (key, sums)  # the same product
            cells = " | ".join(f"{t * 1e3:.3f} ({flops / t / 1e9:.0f})" for t in took)
            print(f"| {threads} | {key} | {cells} | {took[0] / took[1]:.2f}x | "
                  f"{took[1] / took[2]:.2f}x |")  # fmt: skip
        bert = [f"{args.seq}x{k}x{n}" for k, n in BERT]
        totals = [sum(found[runtime][key][0] for key in bert) * LAYERS for runtime in RUNTIMES]
        print(f"| {threads} | BERT, 12 layers, sum of the above | {totals[0] * 1e3:.1f} | "
              f"{totals[1] * 1e3:.1f} | {totals[2] * 1e3:.1f} | {totals[0] / totals[1]:.2f}x | "
              f"{totals[1] / totals[2]:.2f}x |")  # fmt: skip
        took = [found[runtime]["all"][0] for runtime in RUNTIMES]
        sums = [found[runtime]["all"][1] for runtime in RUNTIMES]
        assert max(sums) - min(sums) <= 1e-4 * max(sums), sums
        print(f"| {threads} | BERT, 12 layers, 48 weights in one run | {took[0] * 1e3:.1f} | "
              f"{took[1] * 1e3:.1f} | {took[2] * 1e3:.1f} | {took[0] / took[1]:.2f}x | "
              f"{took[1] / took[2]:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
