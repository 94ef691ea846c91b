"""Products of few rows by a large weight: a classifier's head at batch 1, a decoder's step, a
short batch (threads.GEMV_ROWS, threads.PACKED_DEPTH).

One-node models, MatMul by a (K, N) weight and Gemm by an (N, K) one with transB=1 (as
torch.onnx writes a Linear), each at 1, 2, 4, 8 and 16 rows: onyx as it runs them (by onyx's
own GEMM on the weight packed once; BLAS's GEMV, a band of the weight's columns per thread,
only for weights it does not pack), onyx with both paths off (``GEMV_ROWS = 0``, ``PACKED_DEPTH`` out of
reach: BLAS's GEMM split over the threads, as before them), and onnxruntime, each in its own
process, at 1 thread and at the machine's physical cores.
Best of rounds of a median of many runs, in µs, cache-warm weights (7-9 MB, under this
machine's last-level cache). The machine drifts: compare within a row.

Run: python benchmarks/bench_few_rows.py [--rounds 3] [--repeat 100] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from bench_models import median_time  # this folder is on sys.path when run as a script

import onyx
from onyx.build import GraphBuilder

# (label, op, K, N): the weights of GPT-2's attention input and MLP, resnet50's head
WEIGHTS = [
    ("MatMul 768x2304", "MatMul", 768, 2304),
    ("MatMul 3072x768", "MatMul", 3072, 768),
    ("Gemm 2048->1000, transB", "Gemm", 2048, 1000),
]
ROWS = [1, 2, 4, 8, 16]
RUNS = ("onyx", "onyx, BLAS GEMM", "onnxruntime")


def product(op: str, k: int, n: int, rows: int) -> bytes:
    rng = np.random.default_rng(k * n)
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [rows, k])
    if op == "MatMul":
        y = g.op.MatMul(x, rng.standard_normal((k, n)).astype(np.float32))
    else:
        weight = rng.standard_normal((n, k)).astype(np.float32)
        y = g.op.Gemm(x, weight, rng.standard_normal(n).astype(np.float32), transB=1)
    g.output(y, "y")
    return onyx.to_bytes(g.model())


def worker(run: str, index: int, rows: int, threads: int, rounds: int, repeat: int) -> None:
    """One run's time on one product, as JSON."""
    _, op, k, n = WEIGHTS[index]
    data = product(op, k, n, rows)
    feed = {"x": np.random.default_rng(1).standard_normal((rows, k)).astype(np.float32)}
    if run == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    else:
        if run == "onyx, BLAS GEMM":
            from onyx.runtime import threads as pool

            pool.GEMV_ROWS, pool.PACKED_DEPTH = 0, 1 << 62
        session = onyx.InferenceSession(data, onyx.SessionOptions(intra_op_num_threads=threads))
    out = session.run(None, feed)[0]
    took = min(median_time(lambda: session.run(None, feed), repeat) for _ in range(rounds))
    print(json.dumps({"us": took * 1e6, "out": out.astype(np.float64).ravel()[:64].tolist()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--threads", nargs="*", type=int)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run, index, rows, threads = args.worker
        worker(run, int(index), int(rows), int(threads), args.rounds, args.repeat)
        return
    from onyx.runtime.threads import physical_cores

    counts = args.threads or sorted({1, physical_cores()})
    header = "".join(f"{f'{t}t {run}':>21}" for t in counts for run in RUNS)
    print(f"{'product':<26}{'rows':>5}{header}")
    for index, (label, *_) in enumerate(WEIGHTS):
        for rows in ROWS:
            cells = []
            for threads in counts:
                outs = []
                env = {**os.environ, **{k: str(threads) for k in (
                    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}}  # fmt: skip
                for run in RUNS:
                    done = subprocess.run(
                        [sys.executable, __file__, "--worker", run, str(index), str(rows),
                         str(threads), "--rounds", str(args.rounds), "--repeat",
                         str(args.repeat)],
                        capture_output=True, text=True, check=True, env=env,
                    )  # fmt: skip
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    cells.append(result["us"])
                    outs.append(np.array(result["out"]))
                # the three compute the same product (to float32 rounding of sums over K)
                scale = max(1.0, float(np.abs(outs[-1]).max()))
                for got in outs[:-1]:
                    assert np.abs(got - outs[-1]).max() <= 1e-4 * scale, (label, rows, threads)
            print(f"{label:<26}{rows:>5}" + "".join(f"{c:>21.1f}" for c in cells))


if __name__ == "__main__":
    main()
