"""Engine overhead, per-node time side by side.

1. A chain of 1,000 Add nodes on tiny tensors, the graph run as written: onyx, onnxruntime
   (CPU, default threads) and onnx's reference evaluator.
2. A chain of 100 small convolutions (1x1, 64 channels, 8x8, each with its bias and ReLU: a
   mobile CNN's layer, where the kernel takes a few µs), optimized as each runtime does by
   default: onyx and onnxruntime, per convolution. ``--no-keep`` runs onyx's Convs without
   keeping their paths (kernels/conv.py, ``_Replay``), every call through all the checks.

Run: python benchmarks/bench_engine.py [--nodes 1000] [--convs 100] [--repeat 200] [--no-keep]
Prints µs per node and the ratios. The machine is shared and noisy: compare ratios from one
run, not absolute times.
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


def conv_chain(convs: int, channels: int = 64, size: int = 8) -> ir.Model:
    rng = np.random.default_rng(0)
    x = ir.Value("x", ir.tensor_type("float", [1, channels, size, size]))
    graph = ir.Graph(inputs=[x], name="conv_chain")
    current = x
    for i in range(convs):
        w = rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.1
        b = rng.standard_normal(channels).astype(np.float32) * 0.1
        weight = ir.Value(f"w{i}", const_value=ir.Tensor(w, f"w{i}"))
        bias = ir.Value(f"b{i}", const_value=ir.Tensor(b, f"b{i}"))
        graph.add_initializer(weight)
        graph.add_initializer(bias)
        summed, out = ir.Value(f"c{i}"), ir.Value(f"r{i}")
        graph.append(ir.Node("Conv", [current, weight, bias], [summed], name=f"conv{i}"))
        graph.append(ir.Node("Relu", [summed], [out], name=f"relu{i}"))
        current = out
    current.type = ir.tensor_type("float", [1, channels, size, size])
    graph.outputs.append(current)
    return ir.Model(graph, ir_version=10, opset_imports={"": 21})


def per_conv(convs: int, repeat: int) -> dict[str, float]:
    """Seconds a run of ``conv_chain(convs)`` takes: onyx, onnxruntime."""
    data = onyx.to_bytes(conv_chain(convs))
    feed = {"x": np.random.default_rng(1).random((1, 64, 8, 8), np.float32)}
    session = onyx.InferenceSession(data)
    expected = session.run(None, feed)[0]
    results = {"onyx": median_time(lambda: session.run(None, feed), repeat)}

    import onnxruntime as ort

    ort_session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ort_session.run(None, feed)[0], expected, rtol=1e-4, atol=1e-5)
    results["onnxruntime"] = median_time(lambda: ort_session.run(None, feed), repeat)
    return results


def report(title: str, results: dict[str, float], nodes: int) -> None:
    print(title)
    print(f"{'runtime':<16}{'µs / node':>12}{'vs onyx':>10}")
    for name, seconds in results.items():
        per_node = seconds / nodes * 1e6
        print(f"{name:<16}{per_node:>12.2f}{seconds / results['onyx']:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--convs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--no-keep", action="store_true", help="Convs without their kept paths")
    args = parser.parse_args()
    if args.no_keep:
        from onyx.runtime.kernels import conv

        conv._KEEP_PATHS = False

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

    report(f"Add chain of {args.nodes} nodes on float[1,4], median of {args.repeat} runs",
           results, args.nodes)  # fmt: skip
    report(f"\nConv chain of {args.convs} 1x1 convolutions (64 channels, 8x8, bias, ReLU), "
           f"median of {args.repeat} runs", per_conv(args.convs, args.repeat), args.convs)  # fmt: skip


if __name__ == "__main__":
    main()
