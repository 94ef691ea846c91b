"""The GEMMs under BERT-base and GPT-2 small: numpy's BLAS (what onyx calls) against
onnxruntime's MatMul on the same shapes, the floor under onyx's time on those models.

Each layer of either model (sequence 128) multiplies a (128, 768) activation by four weights:
768x2304 (Q, K and V merged), 768x768 (the attention's output), 768x3072 and 3072x768 (the
MLP), twelve layers deep. The script times each product alone, cache-hot, through numpy
(``x @ w``; OpenBLAS in numpy's wheels) and through an onnxruntime session holding ``w`` as an
initializer (so onnxruntime may pack it once, as it does in a model), each runtime in a
process of its own at 1 thread and at the machine's physical cores; then the sum over the 48
products of a forward pass, per runtime, and the ratio.

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

SHAPES = [(768, 2304), (768, 768), (768, 3072), (3072, 768)]  # (K, N) of each layer's GEMMs
LAYERS = 12


def _best(fn, budget: float = 1.0) -> float:
    fn()
    best, end, calls = float("inf"), time.perf_counter() + budget, 0
    while calls < 10 or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return best


def worker(runtime: str, seq: int, threads: int) -> dict[str, float]:
    """Seconds of each product, in this process."""
    rng = np.random.default_rng(0)
    times = {}
    for k, n in SHAPES:
        x = rng.standard_normal((seq, k), dtype=np.float32)
        w = rng.standard_normal((k, n), dtype=np.float32)
        if runtime == "numpy":
            times[f"{k}x{n}"] = _best(lambda x=x, w=w: x @ w)
            continue
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, n])],
            [numpy_helper.from_array(w, "w")],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        times[f"{k}x{n}"] = _best(lambda s=session, x=x: s.run(None, {"x": x}))
    return times


def measure(runtime: str, seq: int, threads: int) -> dict[str, float]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
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
    print(f"(seq, K) x (K, N) products of BERT-base / GPT-2 small, seq {args.seq}; best of calls "
          f"over ~1 s each, each runtime in its own process")  # fmt: skip
    print(
        "| threads | product | numpy (OpenBLAS) ms | GFLOP/s | onnxruntime ms | GFLOP/s | "
        "numpy / onnxruntime |"
    )
    print("|---|---|--:|--:|--:|--:|--:|")
    for threads in counts:
        ours, theirs = measure("numpy", args.seq, threads), measure("ort", args.seq, threads)
        for key in ours:
            k, n = (int(v) for v in key.split("x"))
            flops = 2 * args.seq * k * n
            print(f"| {threads} | {key} | {ours[key] * 1e3:.3f} | {flops / ours[key] / 1e9:.0f} | "
                  f"{theirs[key] * 1e3:.3f} | {flops / theirs[key] / 1e9:.0f} | "
                  f"{ours[key] / theirs[key]:.2f}x |")  # fmt: skip
        total_ours, total_theirs = sum(ours.values()) * LAYERS, sum(theirs.values()) * LAYERS
        print(f"| {threads} | 12 layers | {total_ours * 1e3:.1f} | | {total_theirs * 1e3:.1f} | | "
              f"{total_ours / total_theirs:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
