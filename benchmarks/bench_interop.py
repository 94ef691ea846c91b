"""ExecutionMode.ORT_PARALLEL against the sequential mode, with and without the intra-op pool.

Three light-zoo CNNs of different shapes: inception v1 (four towers per module), squeezenet (two
branches per module, small) and resnet50 (a chain). Each configuration runs in a process of
its own: three warm-up runs, then the best of 3 medians of 10 runs (ms); parallel runs use
``inter_op_num_threads=2``.

    python benchmarks/bench_interop.py
"""

from __future__ import annotations

import json
import subprocess
import sys

MODELS = ("light_inception_v1", "light_resnet50", "light_squeezenet")
CONFIGS = (("sequential", 0), ("parallel", 0), ("sequential", 2), ("parallel", 2))

WORKER = r"""
import json, os, sys, time
import numpy as np, onnx, onyx
name, mode, intra = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                    name + ".onnx")
options = onyx.SessionOptions()
options.intra_op_num_threads = intra
if mode == "parallel":
    options.execution_mode = onyx.ExecutionMode.ORT_PARALLEL
    options.inter_op_num_threads = 2
session = onyx.InferenceSession(path, options)
spec = session.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in spec.shape]
feed = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
for _ in range(3):
    session.run(None, feed)
best = float("inf")
for _ in range(3):
    times = []
    for _ in range(10):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    best = min(best, sorted(times)[len(times) // 2])
print(json.dumps(best * 1e3))
"""


def main() -> None:
    print("| model | sequential | ORT_PARALLEL | sequential, pool of 2 | ORT_PARALLEL, pool of 2 |")
    print("|---|--:|--:|--:|--:|")
    for name in MODELS:
        cells = []
        for mode, intra in CONFIGS:
            done = subprocess.run([sys.executable, "-c", WORKER, name, mode, str(intra)],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                cells.append("failed: " + done.stderr.strip().splitlines()[-1][:80])
            else:
                cells.append(f"{json.loads(done.stdout.strip().splitlines()[-1]):.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
