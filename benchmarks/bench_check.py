"""Full checking plus shape inference of the BERT-base export: onyx against onnx, same run.

onyx: ``onyx.check(model, full=True)`` (the checker, then ``infer_shapes(strict=True)``, which
reports declared types that contradict inferred ones); onnx: ``onnx.checker.check_model(m, full_check=True)`` plus
``onnx.shape_inference.infer_shapes(m, data_prop=True)``. Both start from a model already loaded
in memory. Run: python benchmarks/bench_check.py [bert_base|gpt2_small] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time

import onnx
import onnx.checker
import onnx.shape_inference

import onyx

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from export_models import export


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="bert_base")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = str(export(args.model))
    ours = onyx.load(path)
    theirs = onnx.load(path)

    def run_onyx():
        onyx.check(ours, full=True)

    def run_onnx():
        onnx.checker.check_model(theirs, full_check=True)
        onnx.shape_inference.infer_shapes(theirs, data_prop=True)

    run_onyx(), run_onnx()  # warm up (schema tables, imports)
    t_onyx, t_onnx = best(run_onyx, args.repeat), best(run_onnx, args.repeat)
    print(f"{args.model}: {len(ours.graph.nodes)} nodes")
    print(f"onyx check(full=True) + infer_shapes : {t_onyx * 1e3:8.1f} ms")
    print(f"onnx check_model(full) + infer_shapes: {t_onnx * 1e3:8.1f} ms")
    print(f"ratio onyx/onnx: {t_onyx / t_onnx:.2f} (below 1: onyx is faster)")


if __name__ == "__main__":
    main()
