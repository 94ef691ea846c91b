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
        onyx.infer_shapes(ours)

    def run_onnx():
        onnx.checker.check_model(theirs, full_check=True)
        onnx.shape_inference.infer_shapes(theirs, data_prop=True)

    def run_onnx_check_only():  # full_check already runs strict shape inference inside
        onnx.checker.check_model(theirs, full_check=True)

    def run_onnx_from_path():  # onnx reads the file in C++: no Python-side serialization
        onnx.checker.check_model(path, full_check=True)

    runs = {
        "onyx check(full=True) + infer_shapes": run_onyx,
        "onnx check_model(full) + infer_shapes": run_onnx,
        "onnx check_model(full) only": run_onnx_check_only,
        "onnx check_model(path, full) only": run_onnx_from_path,
    }
    for fn in runs.values():
        fn()  # warm up (schema tables, imports)
    times = {label: best(fn, args.repeat) for label, fn in runs.items()}
    print(f"{args.model}: {len(ours.graph.nodes)} nodes, best of {args.repeat}")
    base = times["onyx check(full=True) + infer_shapes"]
    for label, seconds in times.items():
        print(f"{label:<40}{seconds * 1e3:>10.1f} ms   onyx/this {base / seconds:6.3f}")


if __name__ == "__main__":
    main()
