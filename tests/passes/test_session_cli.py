"""The passes as the runtime's build step, with target_opset on old models, and as a command."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import onyx
from onyx import cli
from onyx.build import GraphBuilder
from onyx.passes import optimize, optimize_for_session

RNG = np.random.default_rng(11)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.nodes)


def conv_bn(ir_version: int = 8, weights_as_inputs: bool = False):
    """Conv -> BatchNormalization -> Mul per channel -> Relu; IR 3 style lists weights as inputs."""
    g = GraphBuilder(opset=11)
    x = g.input("x", "float", [1, 3, 6, 6])
    y = g.op.Conv(x, f32(4, 3, 3, 3), f32(4), pads=[1, 1, 1, 1])
    y = g.op.BatchNormalization(y, f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.5)
    g.output(g.op.Relu(g.op.Mul(y, f32(4, 1, 1))), "y")
    m = g.model()
    m.ir_version = ir_version
    if weights_as_inputs:
        m.graph.inputs.extend(m.graph.initializers.values())
    return m


@pytest.mark.parametrize("ir_version, weights_as_inputs", [(8, False), (3, True), (8, True)])
def test_session_folds_through_passes_and_keeps_overrides(ir_version, weights_as_inputs):
    m = conv_bn(ir_version, weights_as_inputs)
    prepared = optimize_for_session(m)
    assert ops(prepared) == {"Conv": 1, "Relu": 1}  # weights treated as constants
    assert ops(m) == {"Conv": 1, "BatchNormalization": 1, "Mul": 1, "Relu": 1}  # left as it was
    assert [v.name for v in prepared.graph.inputs] == [v.name for v in m.graph.inputs]
    x = f32(1, 3, 6, 6)
    plain = onyx.SessionOptions()
    plain.graph_optimization_level = 0
    s, s0 = onyx.InferenceSession(m), onyx.InferenceSession(m, plain)
    assert len(s._plan.steps) < len(s0._plan.steps)
    want, got = s0.run(None, {"x": x})[0], s.run(None, {"x": x})[0]
    np.testing.assert_allclose(
        got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-5
    )
    if weights_as_inputs:  # a feed that overrides a weight runs the model as given
        conv_w = m.graph.nodes[0].inputs[1].name
        feed = {"x": x, conv_w: f32(4, 3, 3, 3)}
        want, got = s0.run(None, feed)[0], s.run(None, feed)[0]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5,
                                   atol=1e-5)  # fmt: skip


def test_session_without_weights_to_fold_skips_the_copy():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 3])
    g.output(g.op.Relu(x), "y")
    assert optimize_for_session(g.model()) is None


def old_model():
    """An IR 3, opset 9 model as old exporters wrote it: no declared types inside, weights
    made by ConstantOfShape from shapes listed as inputs, Dropout with a ratio, Softmax."""
    g = GraphBuilder(opset=9)
    x = g.input("x", "float", [1, 3, 6, 6])
    shape = np.array([4, 3, 3, 3], np.int64)
    w = g.op.ConstantOfShape(shape, value=np.array([0.1], np.float32))
    y = g.op.Relu(g.op.Conv(x, w, f32(4), pads=[1, 1, 1, 1]))
    y = g.op.Dropout(y, ratio=0.3)
    y = g.op.Flatten(g.op.GlobalAveragePool(y))
    g.output(g.op.Softmax(y, axis=1), "y")
    m = g.model()
    m.ir_version = 3
    m.graph.inputs.extend(m.graph.initializers.values())
    for node in m.graph.nodes:
        for v in node.outputs:
            if v not in m.graph.outputs:
                v.type = None
    m.graph.value_info[:] = []
    return m


def test_target_opset_23_on_an_old_model_folds_as_well():
    m = old_model()
    plain, upgraded = optimize(m), optimize(m, target_opset=23)
    assert upgraded.opset("") == 23
    assert ops(upgraded) == ops(plain)
    assert "ConstantOfShape" not in ops(upgraded) and "Dropout" not in ops(upgraded)
    assert "Reshape" not in ops(upgraded)  # Softmax on its last axis needs no 2-D coercion
    x = f32(1, 3, 6, 6)
    want = onyx.InferenceSession(m).run(None, {"x": x})[0]
    got = onyx.InferenceSession(upgraded).run(None, {"x": x})[0]
    np.testing.assert_allclose(
        got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-6
    )


def test_progress_hears_each_pass_then_none():
    heard = []
    optimize(conv_bn(), progress=heard.append)
    assert heard[-1] is None and "fold-affine" in heard and "dead-code" in heard


def test_cli_optimize_table_check_and_explain(tmp_path, capsys):
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["n", 8])
    mean = g.op.ReduceMean(x, np.array([-1], np.int64))
    d = g.op.Sub(x, mean)
    var = g.op.ReduceMean(g.op.Mul(d, d), np.array([-1], np.int64))
    # a LayerNormalization with the epsilon added after the Sqrt: not the pattern
    y = g.op.Div(d, g.op.Add(g.op.Sqrt(var), np.array(1e-5, np.float32)))
    g.output(g.op.Relu(y), "y")
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onyx.save(g.model(), src)
    assert cli.main(["optimize", str(src), str(dst), "--check", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "nodes" in out and "check: outputs agree" in out and "not fused" in out
    cli.main(["optimize", str(conv_bn_file(tmp_path)), str(dst)])
    assert ops(onyx.load(dst)) == {"Conv": 1, "Relu": 1}


def conv_bn_file(tmp_path):
    path = tmp_path / "conv_bn.onnx"
    onyx.save(conv_bn(), path)
    return path


def test_external_data_in_and_out(tmp_path):
    """External data through optimize (a small threshold: the >2 GB case is the slow test)."""
    m = conv_bn()
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onyx.save(m, src, external_data=True, size_threshold=64)
    loaded = onyx.load(src)
    out = optimize(loaded)
    onyx.save(out, dst, external_data=True, size_threshold=64)
    assert (tmp_path / "out.onnx.data").exists()
    x = f32(1, 3, 6, 6)
    want = onyx.InferenceSession(m).run(None, {"x": x})[0]
    got = onyx.InferenceSession(str(dst)).run(None, {"x": x})[0]
    np.testing.assert_allclose(
        got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-5
    )
