"""Engine overhead: a chain of 1,000 Add nodes on tiny tensors, per-node time side by side.

Run: python benchmarks/bench_engine.py [--nodes 1000] [--repeat 200]
Prints µs per node for onyx, onnxruntime (CPU, default threads) and onnx's reference evaluator,
and the ratios. The machine is shared and noisy: compare ratios from one run, not absolute times.
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_models import median_time  # this folder is on sys.path when run as a script

import onyx
from onyx import ir


def add_chain(nodes: int) -> ir.Model:
    x = ir.Value("x", ir.tensor_type("float", [1, 4]))
    one = ir.Value("one", const_value=ir.Tensor(np.ones((1, 4), np.float32), "one"))
    graph = ir.Graph(inputs=[x], initializers=[one], name="add_chain")
    current = x
    for i in range(nodes):
        out = ir.Value(f"t{i}")
        graph.append(ir.Node("Add", [current, one], [out], name=f"add{i}"))
        current = out
    current.type = ir.tensor_type("float", [1, 4])
    graph.outputs.append(current)
    return ir.Model(graph, ir_version=10, opset_imports={"": 21})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    model = add_chain(args.nodes)
    data = onyx.to_bytes(model)
    feed = {"x": np.zeros((1, 4), np.float32)}
    results: dict[str, float] = {}

    # both runtimes run the graph as written: no folding or fusing of the chain
    session = onyx.InferenceSession(data, onyx.SessionOptions(graph_optimization_level=0))
    expected = session.run(None, feed)[0]
    results["onyx"] = median_time(lambda: session.run(None, feed), args.repeat)

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep 1,000 nodes
    ort_session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ort_session.run(None, feed)[0], expected)
    results["onnxruntime"] = median_time(lambda: ort_session.run(None, feed), args.repeat)

    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(data)
    results["onnx reference"] = median_time(lambda: ref.run(None, feed), max(args.repeat // 10, 5))

    print(f"Add chain of {args.nodes} nodes on float[1,4], median of {args.repeat} runs")
    print(f"{'runtime':<16}{'µs / node':>12}{'vs onyx':>10}")
    for name, seconds in results.items():
        per_node = seconds / args.nodes * 1e6
        print(f"{name:<16}{per_node:>12.2f}{seconds / results['onyx']:>9.2f}x")


if __name__ == "__main__":
    main()
