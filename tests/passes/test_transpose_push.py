"""The transpose-push pass: a Transpose moves down elementwise chains to meet another Transpose.

Each rewritten model is checked (onyx's full check) and run by onnxruntime beside the input model
on random feeds; the negative cases must leave the graph as it was.
"""

from __future__ import annotations

import collections

import numpy as np
import onnxruntime as ort

import onyx
from onyx.build import GraphBuilder
from onyx.passes import optimize
from onyx.text import parse_model

RNG = np.random.default_rng(15)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.nodes)


def run(model, feeds):
    session = ort.InferenceSession(onyx.to_bytes(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def pushed(model, feeds, **kwargs):
    """optimize(model): checked, computing what ``model`` computes, and a fixed point."""
    counts = collections.Counter()
    out = optimize(model, counts=counts, **kwargs)
    onyx.check(out, full=True)
    for want, got in zip(run(model, feeds), run(out, feeds), strict=True):
        assert want.shape == got.shape and want.dtype == got.dtype
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=1e-6, atol=1e-6)  # fmt: skip
    again_counts = collections.Counter()
    again = optimize(out, counts=again_counts, **kwargs)
    assert again_counts["transpose-push"] == 0
    assert [(n.op_type, n.attribute("perm")) for n in again.graph.nodes] == [
        (n.op_type, n.attribute("perm")) for n in out.graph.nodes
    ]
    return out, counts


def untouched(model, feeds=None):
    counts = collections.Counter()
    out = optimize(model, counts=counts)
    assert counts["transpose-push"] == 0
    assert ops(out)["Transpose"] == ops(model)["Transpose"]
    if feeds is not None:
        onyx.check(out, full=True)
        for want, got in zip(run(model, feeds), run(out, feeds), strict=True):
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                       rtol=1e-6, atol=1e-6)  # fmt: skip
    return out


# --- rewrites -------------------------------------------------------------------------------
def test_transpose_relu_inverse_transpose_becomes_relu():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    t = g.op.Transpose(x, perm=[2, 0, 1])
    g.output(g.op.Transpose(g.op.Relu(t), perm=[1, 2, 0]), "y")
    out, counts = pushed(g.model(), {"x": f32(2, 3, 4)})
    assert ops(out) == {"Relu": 1}
    assert counts["transpose-push"] == 1
    assert [v.name for v in out.graph.outputs] == ["y"]


def test_a_constant_is_permuted_and_the_transposes_merge_into_one():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 3, 4])
    t = g.op.Transpose(x, perm=[2, 0, 1])  # (4, N, 3)
    a = g.op.Add(t, f32(4, 1, 3))
    s = g.op.Sigmoid(a)
    g.output(g.op.Transpose(s, perm=[0, 2, 1]), "y")  # (4, 3, N)
    out, _ = pushed(g.model(), {"x": f32(2, 3, 4)})
    assert ops(out) == {"Add": 1, "Sigmoid": 1, "Transpose": 1}
    (tr,) = [n for n in out.graph.nodes if n.op_type == "Transpose"]
    assert list(tr.attribute("perm")) == [2, 1, 0]  # [2, 0, 1] then [0, 2, 1]
    add = next(n for n in out.graph.nodes if n.op_type == "Add")
    assert add.inputs[0].name == "x"
    const = onyx.passes.core.const_array(add.inputs[1])
    assert const.shape == (1, 3, 4)  # (4, 1, 3) in x's layout


def test_two_transposes_of_one_perm_move_below_a_binary_op():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    y = g.input("y", "float", [2, 3, 4])
    s = g.op.Add(g.op.Transpose(x, perm=[1, 2, 0]), g.op.Transpose(y, perm=[1, 2, 0]))
    g.output(g.op.Transpose(g.op.Mul(s, f32(4, 2)), perm=[2, 0, 1]), "z")
    out, _ = pushed(g.model(), {"x": f32(2, 3, 4), "y": f32(2, 3, 4)})
    assert ops(out) == {"Add": 1, "Mul": 1}


def test_a_transpose_with_other_readers_stays_for_them_and_the_chain_still_moves():
    """ConvNeXt's residual: NHWC -> Transpose -> (a Conv, and an Add with another Transpose of
    the same perm) -> Transpose back. The Add takes the NHWC tensors, the two Transposes around
    it go, the one the Conv reads stays."""
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 5, 5, 4])
    y = g.input("y", "float", ["N", 5, 5, 4])
    a = g.op.Transpose(x, perm=[0, 3, 1, 2])
    g.output(g.op.Conv(a, f32(4, 4, 1, 1)), "c")
    g.output(g.op.Neg(a), "n")  # a chain that ends in a graph output: not this one
    s = g.op.Add(a, g.op.Transpose(y, perm=[0, 3, 1, 2]))
    g.output(g.op.Transpose(s, perm=[0, 2, 3, 1]), "z")
    feeds = {"x": f32(2, 5, 5, 4), "y": f32(2, 5, 5, 4)}
    out, _ = pushed(g.model(), feeds)
    assert ops(out) == {"Transpose": 1, "Conv": 1, "Neg": 1, "Add": 1}
    add = next(n for n in out.graph.nodes if n.op_type == "Add")
    assert [v.name for v in add.inputs] == ["x", "y"]


def test_a_transpose_with_other_readers_stays_where_moving_it_removes_nothing():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    a = g.op.Transpose(x, perm=[2, 0, 1])
    g.output(g.op.Neg(a), "n")
    g.output(g.op.Transpose(g.op.Relu(a), perm=[0, 2, 1]), "y")  # not the inverse
    untouched(g.model(), {"x": f32(2, 3, 4)})


def test_the_same_transposed_value_on_both_sides():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    t = g.op.Transpose(x, perm=[1, 0])
    g.output(g.op.Transpose(g.op.Mul(t, t), perm=[1, 0]), "y")
    out, _ = pushed(g.model(), {"x": f32(2, 3)})
    assert ops(out) == {"Mul": 1}


def test_scalar_bounded_clip_casts_and_constants_on_the_left():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 5])
    t = g.op.Transpose(x, perm=[0, 2, 1])  # (2, 5, 3)
    c = g.op.Clip(t, np.array(-0.5, np.float32), np.array(0.5, np.float32))
    d = g.op.Sub(f32(5, 3), c)  # the constant first, of lower rank
    e = g.op.LeakyRelu(d, alpha=0.2)
    f = g.op.Cast(g.op.PRelu(e, f32(3)), to=onyx.dtypes.DataType.DOUBLE)
    m = g.op.Greater(f, np.array([[0.1]], np.float64))
    g.output(g.op.Transpose(m, perm=[2, 1, 0]), "y")
    out, counts = pushed(g.model(), {"x": f32(2, 3, 5)})
    assert counts["transpose-push"] == 1
    assert ops(out)["Transpose"] == 1
    assert sum(ops(out).values()) == 7


def test_a_transpose_without_perm_is_pushed_when_its_rank_is_known():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    t = g.op.Transpose(x)  # reverses: (4, 3, 2)
    g.output(g.op.Transpose(g.op.Exp(g.op.Mul(t, f32(3, 1))), perm=[2, 1, 0]), "y")
    out, _ = pushed(g.model(), {"x": f32(2, 3, 4)})
    assert ops(out) == {"Mul": 1, "Exp": 1}


def test_every_transpose_reading_the_chain_takes_the_pushed_one():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    r = g.op.Tanh(g.op.Transpose(x, perm=[1, 0, 2]))
    g.output(g.op.Transpose(r, perm=[1, 0, 2]), "y1")
    g.output(g.op.Transpose(r, perm=[2, 1, 0]), "y2")
    out, _ = pushed(g.model(), {"x": f32(2, 3, 4)})
    assert ops(out) == {"Tanh": 1, "Transpose": 1}  # one merge is the identity


def test_types_of_the_chain_are_permuted_and_keep_their_dim_names():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 3, 4])
    t = g.op.Transpose(x, perm=[2, 0, 1])
    a = g.op.Relu(t)
    g.output(g.op.Transpose(a, perm=[0, 2, 1]), "y", "float", [4, 3, "N"])
    model = g.model()
    a.type = onyx.ir.tensor_type("float", [4, "N", 3])
    model.graph.value_info.append(a)
    counts = collections.Counter()
    out = optimize(model, passes=["transpose-push"], counts=counts)
    assert counts["transpose-push"] == 1
    assert [n.op_type for n in out.graph.nodes] == ["Relu", "Transpose"]
    relu, merged = out.graph.nodes
    assert relu.inputs[0].name == "x"
    assert tuple(relu.outputs[0].type.shape.dims) == ("N", 3, 4)
    assert tuple(out.graph.value_info[0].type.shape.dims) == ("N", 3, 4)
    assert list(merged.attribute("perm")) == [2, 1, 0]  # [2, 0, 1] then [0, 2, 1]
    onyx.check(out, full=True)
    feeds = {"x": f32(2, 3, 4)}
    np.testing.assert_array_equal(run(out, feeds)[0], run(model, feeds)[0])


def test_alternating_chains_collapse_within_the_round_cap():
    # each Transpose meets the next one's chain: a pass that only inserted Transposes for
    # layout-chains to merge next round would need a round per segment (the cap is 12)
    g = GraphBuilder(opset=21)
    v = g.input("x", "float", [2, 3, 4])
    perms = [[1, 2, 0], [2, 0, 1], [0, 2, 1], [1, 0, 2]]
    for i in range(20):
        v = g.op.Add(g.op.Relu(g.op.Transpose(v, perm=perms[i % 4])), np.float32(i + 1))
    g.output(v, "y")
    out, _ = pushed(g.model(), {"x": f32(2, 3, 4)})
    assert ops(out) == {"Relu": 20, "Add": 20, "Transpose": 1}
    # the last segment ends in the graph output: its Transpose stays, carrying all 20 perms
    assert [n.op_type for n in out.graph.nodes[-3:]] == ["Transpose", "Relu", "Add"]


def test_a_function_body_gets_its_permuted_constant_as_a_constant_node():
    model = parse_model("""
        <ir_version: 10, opset_import: ["" : 21, "local" : 1]>
        main (float[2,3] x) => (float[2,3] z) {
          z = local.f (x)
        }
        <domain: "local", opset_import: ["" : 21]>
        f (x) => (z) {
          t = Transpose <perm = [1, 0]> (x)
          k = Constant <value = float[3,1] {5, 6, 7}> ()
          s = Mul (t, k)
          e = Exp (s)
          z = Transpose <perm = [1, 0]> (e)
        }
    """)
    out, _ = pushed(model, {"x": f32(2, 3)})
    (fn,) = out.functions.values()
    assert [n.op_type for n in fn.graph.nodes] == ["Constant", "Mul", "Exp"]
    k = onyx.passes.core.const_array(fn.graph.nodes[1].inputs[1])
    np.testing.assert_array_equal(k, np.array([[5, 6, 7]], np.float32))


# --- left alone -----------------------------------------------------------------------------
def test_a_chain_read_by_another_operator_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    g.output(g.op.MatMul(g.op.Relu(g.op.Transpose(x, perm=[1, 0])), f32(2, 5)), "y")
    untouched(g.model(), {"x": f32(2, 3)})


def test_an_intermediate_read_twice_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    r = g.op.Relu(g.op.Transpose(x, perm=[1, 0]))
    g.output(g.op.Transpose(g.op.Sigmoid(r), perm=[1, 0]), "y1")
    g.output(g.op.Transpose(g.op.Tanh(r), perm=[1, 0]), "y2")
    untouched(g.model(), {"x": f32(2, 3)})


def test_a_graph_output_in_the_chain_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    r = g.op.Relu(g.op.Transpose(x, perm=[1, 0]))
    g.output(r, "mid")
    g.output(g.op.Transpose(g.op.Exp(r), perm=[1, 0]), "y")
    untouched(g.model(), {"x": f32(2, 3)})


def test_a_constant_of_higher_rank_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    a = g.op.Add(g.op.Transpose(x, perm=[1, 0]), f32(4, 3, 2))
    g.output(g.op.Transpose(a, perm=[0, 2, 1]), "y")
    untouched(g.model(), {"x": f32(2, 3)})


def test_a_clip_bound_that_is_not_constant_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    lo = g.input("lo", "float", [])
    c = g.op.Clip(g.op.Transpose(x, perm=[1, 0]), lo, None)
    g.output(g.op.Transpose(c, perm=[1, 0]), "y")
    untouched(g.model(), {"x": f32(2, 3), "lo": np.array(0.1, np.float32)})


def test_a_binary_operand_that_is_neither_constant_nor_transposed_alike_is_left_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    y = g.input("y", "float", [4, 2, 3])
    other = g.op.Transpose(g.input("w", "float", [3, 4, 2]), perm=[1, 2, 0])  # another perm
    a = g.op.Add(g.op.Add(g.op.Transpose(x, perm=[2, 0, 1]), y), other)
    g.output(g.op.Transpose(a, perm=[1, 2, 0]), "z")
    feeds = {"x": f32(2, 3, 4), "y": f32(4, 2, 3), "w": f32(3, 4, 2)}
    untouched(g.model(), feeds)


def test_a_node_of_another_domain_is_left_alone():
    g = GraphBuilder(opset=21, opsets={"com.example": 1})
    x = g.input("x", "float", [2, 3])
    r = g.op("com.example", "Relu", g.op.Transpose(x, perm=[1, 0]))
    g.output(g.op.Transpose(r, perm=[1, 0]), "y")
    untouched(g.model())


def test_no_rewrite_below_broadcasting_opsets():
    g = GraphBuilder(opset=6)
    x = g.input("x", "float", [2, 3])
    a = g.op.Add(g.op.Transpose(x, perm=[1, 0]), np.ones((3, 2), np.float32))
    g.output(g.op.Transpose(a, perm=[1, 0]), "y")
    untouched(g.model())
