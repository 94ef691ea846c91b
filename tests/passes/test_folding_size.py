"""Optimized files stay small: folding grows a tensor past its inputs only where it is a weight.

A ConstantOfShape, Expand or Tile is a small recipe for a big tensor. The default never turns
one into an initializer that makes the file bigger than the input model's, unless the tensor is
a weight (a Conv's, Gemm's, normalization's... input read whole), which every peer and every
runtime materializes anyway and which later folds (BatchNormalization into Conv) rewrite.
"""

from __future__ import annotations

import collections

import numpy as np
import onnxruntime as ort

import onyx
from onyx.build import GraphBuilder
from onyx.passes import optimize

RNG = np.random.default_rng(11)


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.nodes)


def same_outputs(a, b, feeds) -> None:
    sa, sb = (ort.InferenceSession(onyx.to_bytes(m), providers=["CPUExecutionProvider"])
              for m in (a, b))  # fmt: skip
    for x, y in zip(sa.run(None, feeds), sb.run(None, feeds)):
        x, y = x.astype(np.float64), y.astype(np.float64)
        assert x.shape == y.shape
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(x).max()))


def expanding_model():
    """Activations combined with constants that ConstantOfShape, Expand and Tile make big,
    and a small Transpose of a constant (which folding does remove)."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, 4, 256, 256])
    mask = g.op.ConstantOfShape(np.array([1, 1, 256, 256], np.int64),
                                value=np.array([-0.5], np.float32))  # fmt: skip
    rows = g.op.Tile(RNG.standard_normal((1, 1, 1, 256)).astype(np.float32),
                     np.array([1, 1, 256, 1], np.int64))  # fmt: skip
    ramp = g.op.Expand(np.arange(256, dtype=np.float32).reshape(256, 1) / 256,
                       np.array([1, 4, 256, 256], np.int64))  # fmt: skip
    gain = g.op.Transpose(np.array([[1.5], [2.0], [0.5], [1.0]], np.float32), perm=[1, 0])
    gain = g.op.Reshape(gain, np.array([1, 4, 1, 1], np.int64))
    y = g.op.Mul(g.op.Add(g.op.Add(x, mask), g.op.Mul(rows, ramp)), gain)
    g.output(y, "y")
    return g.model()


def test_default_never_grows_a_model_past_its_inputs():
    model = expanding_model()
    size = len(onyx.to_bytes(model))
    out = optimize(model)
    onyx.check(out, full=True)
    assert len(onyx.to_bytes(out)) <= size
    assert {"ConstantOfShape", "Tile", "Expand"} <= set(ops(out))
    assert "Transpose" not in ops(out)  # what does not grow still folds
    same_outputs(model, out, {"x": RNG.standard_normal((1, 4, 256, 256)).astype(np.float32)})
    # the limit is what holds it: allowed to grow, the same folds make a far bigger file
    grown = optimize(model, fold_limit=1 << 30)
    assert not {"ConstantOfShape", "Tile", "Expand"} & set(ops(grown))
    assert len(onyx.to_bytes(grown)) > 10 * size


def test_weights_are_materialized_and_fold_into_conv():
    """The light zoo's pattern: every weight a ConstantOfShape. Folded (a runtime holds a weight
    whole anyway), then BatchNormalization and a per-channel Mul fold into the Conv."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, 16, 8, 8])

    def splat(shape, value):
        return g.op.ConstantOfShape(np.array(shape, np.int64), value=np.array([value], np.float32))

    w = g.op.Reshape(splat([64 * 16 * 9], 0.02), np.array([64, 16, 3, 3], np.int64))
    y = g.op.Conv(x, w, splat([64], 0.1), pads=[1, 1, 1, 1])
    y = g.op.BatchNormalization(y, splat([64], 0.5), splat([64], 0.25), splat([64], 0.1),
                                splat([64], 2.0))  # fmt: skip
    y = g.op.Mul(y, g.op.Unsqueeze(splat([64], 3.0), np.array([1, 2], np.int64)))
    g.output(g.op.Relu(y), "y")
    model = g.model()
    out = optimize(model)
    onyx.check(out, full=True)
    assert ops(out) == {"Conv": 1, "Relu": 1}
    assert out.graph.nodes[0].inputs[1].const_value.numpy().shape == (64, 16, 3, 3)
    same_outputs(model, out, {"x": RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)})


def test_a_matmul_operand_that_broadcasts_is_not_a_weight():
    """An Expand that adds batch dims to a MatMul's matrix grows what broadcasting does for
    free: it stays; the same matrix as 2-D ConstantOfShape is a weight and folds."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [8, 64, 128])
    w = RNG.standard_normal((128, 128)).astype(np.float32)
    batched = g.op.Expand(w, np.array([8, 128, 128], np.int64))
    flat = g.op.ConstantOfShape(np.array([128, 32], np.int64), value=np.array([0.5], np.float32))
    g.output(g.op.MatMul(g.op.MatMul(x, batched), flat), "y")
    model = g.model()
    out = optimize(model)
    assert ops(out) == {"Expand": 1, "MatMul": 2}
    same_outputs(model, out, {"x": RNG.standard_normal((8, 64, 128)).astype(np.float32)})


def test_a_weight_read_also_as_data_is_not_a_weight():
    """A ConstantOfShape read by a Conv and by an Add is not materialized for the Conv's sake."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, 4, 16, 16])
    w = g.op.ConstantOfShape(np.array([4, 4, 16, 16], np.int64), value=np.array([0.01], np.float32))
    y = g.op.Conv(x, w, pads=[0, 0, 0, 0])  # (1, 4, 1, 1)
    g.output(g.op.Add(g.op.Add(x, w), y), "y")
    model = g.model()
    out = optimize(model)
    assert ops(out)["ConstantOfShape"] == 1
    assert sum(v.const_value.nbytes for v in out.graph.initializers.values()) < 1024
    same_outputs(model, out, {"x": RNG.standard_normal((1, 4, 16, 16)).astype(np.float32)})


def test_node_notes_and_stale_types_are_dropped_model_metadata_stays():
    """Exporters' notes on nodes and the declared types of values that folding removed (or of
    initializers) do not survive; the model's own metadata and live declared types do."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 8])
    w = g.op.Transpose(RNG.standard_normal((8, 8)).astype(np.float32), perm=[1, 0])
    h = g.op.Relu(g.op.MatMul(x, w))
    g.output(g.op.Exp(h), "y")
    model = g.model()
    model.metadata_props["author"] = "someone"
    for node in model.graph.nodes:
        node.metadata_props["pkg.torch.onnx.stack_trace"] = "x" * 500
        node.doc_string = "made here"
    model.graph.value_info[:] = [w, h, *model.graph.initializers.values()]
    out = optimize(model)
    assert ops(out) == {"MatMul": 1, "Relu": 1, "Exp": 1}
    assert not any(n.metadata_props or n.doc_string for n in out.graph.nodes)
    assert [v.name for v in out.graph.value_info] == [h.name]
    assert out.metadata_props == {"author": "someone"}
    assert "stack_trace" not in onyx.to_bytes(out).decode("latin-1")


def test_a_batchnorm_with_shared_parameters_keeps_its_scaling_in_a_file():
    """The light densenet's pattern: every normalization reads one vector as its scale, bias,
    mean and variance, then a Mul and an Add per channel. Folding them would add two new
    vectors per normalization to save two nodes: a file keeps the steps, the runtime's plan
    folds them; a normalization with parameters of its own takes the fold in both."""
    from onyx.passes import optimize_for_session

    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, 256, 8, 8])
    shared = np.full(256, 0.02, np.float32)
    y = g.op.BatchNormalization(x, shared, shared, shared, shared)
    half, quarter = (np.full((256, 1, 1), v, np.float32) for v in (0.5, 0.25))
    y = g.op.Add(g.op.Mul(y, half), quarter)
    own = [RNG.standard_normal(256).astype(np.float32) for _ in range(3)]
    z = g.op.BatchNormalization(x, *own, np.abs(own[0]) + 0.5)
    z = g.op.Mul(z, RNG.standard_normal((256, 1, 1)).astype(np.float32))
    g.output(g.op.Relu(y), "y")
    g.output(g.op.Relu(z), "z")
    model = g.model()
    out = optimize(model)
    onyx.check(out, full=True)
    assert ops(out) == {"BatchNormalization": 2, "Mul": 1, "Add": 1, "Relu": 2}
    assert len(onyx.to_bytes(out)) <= len(onyx.to_bytes(model))
    feeds = {"x": RNG.standard_normal((1, 256, 8, 8)).astype(np.float32)}
    same_outputs(model, out, feeds)
    plan = optimize_for_session(model)
    assert ops(plan) == {"BatchNormalization": 2, "Relu": 2}
    same_outputs(model, plan, feeds)
