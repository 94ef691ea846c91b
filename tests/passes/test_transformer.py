"""The transformer rewrites: 3-D Attention, zero masks, Split from sequences, Gemm on 3-D
tensors, Reshape→Transpose→Reshape sandwiches and Reshape targets solved through symbols.

Each positive case is run by onnxruntime beside the input model (``optimized``), at two sizes of
each dynamic dim; each negative case changes one edge or one number and must not rewrite.
"""

from __future__ import annotations

import numpy as np
from test_passes import f32, ops, optimized

from onyx.build import GraphBuilder
from onyx.passes import LEVELS

I64 = np.int64
#: Level 2 and the projections merged (a pass on request: see onyx.passes.ON_REQUEST)
MERGED = {"passes": [*LEVELS[2], "merge-projections"]}


def _heads(g, x, heads, size, name):
    """(B, S, H·D) -> (B, H, S, D) the way exporters write it (the shape from Shape ops)."""
    s = g.op.Shape(x)
    b = g.op.Slice(s, np.array([0], I64), np.array([1], I64))
    n = g.op.Slice(s, np.array([1], I64), np.array([2], I64))
    target = g.op.Concat(b, n, np.array([-1, size], I64), axis=0)
    r = g.op.Reshape(x, target)
    return g.op.Transpose(r, perm=[0, 2, 1, 3])


def _block(g, x, heads=2, size=4, mask=None, out_perm=(0, 2, 1, 3), merge=None, k_from=None):
    """Q/K/V projections, heads split, Attention-23 (4-D), heads merged: a model's middle."""
    e = heads * size
    q, k, v = (g.op.MatMul(x, f32(e, e)) for _ in range(3))
    qh, kh, vh = (_heads(g, t, heads, size, n) for t, n in ((q, "q"), (k_from or k, "k"),
                                                                (v, "v")))  # fmt: skip
    ins = [qh, kh, vh] + ([mask] if mask is not None else [])
    y = g.op.Attention(*ins, scale=0.3)
    t = g.op.Transpose(y, perm=list(out_perm))
    return g.op.Reshape(t, merge if merge is not None else np.array([0, 0, e], I64))


def _feeds(e=8):
    return [{"x": f32(2, s, e)} for s in (3, 7)]


def test_attention_on_split_heads_reads_the_3d_tensors():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", ["B", "S", 8])
    g.output(_block(g, x), "y")
    out = optimized(g.model(), _feeds(), rtol=1e-4)
    assert ops(out) == {"MatMul": 3, "Attention": 1}
    merged = optimized(g.model(), _feeds(), rtol=1e-4, **MERGED)
    assert ops(merged) == {"MatMul": 1, "Split": 1, "Attention": 1}  # Q, K, V: one GEMM
    (att,) = [n for n in out.graph.nodes if n.op_type == "Attention"]
    assert (att.attribute("q_num_heads"), att.attribute("kv_num_heads")) == (2, 2)
    assert out.graph.outputs[0].type.shape.dims == ("B", "S", 8)


def test_attention_3d_needs_the_heads_merged_back_the_same_way():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", ["B", "S", 8])
    g.output(_block(g, x, out_perm=(0, 2, 3, 1)), "y")  # a wrong perm on the way back
    out = optimized(g.model(), _feeds(), rtol=1e-4)
    (att,) = [n for n in out.graph.nodes if n.op_type == "Attention"]
    assert att.attribute("q_num_heads") is None and ops(out)["Transpose"] >= 3


def test_attention_3d_keeps_a_2d_merge_and_gemm_3d_takes_it():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", [1, "S", 8])
    y = _block(g, x, merge=np.array([-1, 8], I64))  # (S, 8), as GPT-2's Conv1D reads it
    w, b = f32(8, 6), f32(6)
    z = g.op.Reshape(g.op.Gemm(y, w, b), np.array([1, -1, 6], I64))
    g.output(z, "z")
    feeds = [{"x": f32(1, s, 8)} for s in (3, 7)]
    out = optimized(g.model(), feeds, rtol=1e-4)
    assert ops(out) == {"MatMul": 4, "Attention": 1, "Add": 1}


def test_a_zero_mask_from_positions_at_least_zero_is_dropped():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", [1, "S", 8])
    n = g.op.Squeeze(g.op.Slice(g.op.Shape(x), np.array([1], I64), np.array([2], I64)))
    pos = g.op.Unsqueeze(g.op.Range(np.array(0, I64), n, np.array(1, I64)),
                         np.array([0, 1, 3], I64))  # fmt: skip
    n1 = g.op.Slice(g.op.Shape(x), np.array([1], I64), np.array([2], I64))
    ok = g.op.Expand(
        g.op.GreaterOrEqual(pos, np.array(0, I64)),
        g.op.Concat(np.array([1, 1], I64), n1, n1, axis=0),
    )
    mask = g.op.Where(ok, np.array(0, np.float32), np.array(-1e30, np.float32))
    g.output(_block(g, x, mask=mask), "y")
    feeds = [{"x": f32(1, s, 8)} for s in (3, 7)]
    out = optimized(g.model(), feeds, rtol=1e-4)
    assert ops(out) == {"MatMul": 3, "Attention": 1}


def test_a_mask_from_positions_at_least_one_stays():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", [1, "S", 8])
    n = g.op.Squeeze(g.op.Slice(g.op.Shape(x), np.array([1], I64), np.array([2], I64)))
    pos = g.op.Unsqueeze(g.op.Range(np.array(0, I64), n, np.array(1, I64)),
                         np.array([0, 1, 3], I64))  # fmt: skip
    n1 = g.op.Slice(g.op.Shape(x), np.array([1], I64), np.array([2], I64))
    ok = g.op.Expand(
        g.op.GreaterOrEqual(pos, np.array(1, I64)),
        g.op.Concat(np.array([1, 1], I64), n1, n1, axis=0),
    )  # false at position 0: a real mask
    mask = g.op.Where(ok, np.array(0, np.float32), np.array(-1e30, np.float32))
    g.output(_block(g, x, mask=mask), "y")
    feeds = [{"x": f32(1, s, 8)} for s in (3, 7)]
    out = optimized(g.model(), feeds, rtol=1e-4)
    (att,) = [n for n in out.graph.nodes if n.op_type == "Attention"]
    assert len(att.inputs) == 4 and "Where" in ops(out)


def test_split_to_sequence_read_at_constant_positions_becomes_split():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 12])
    seq = g.op.SplitToSequence(x, np.array(4, I64), axis=2)
    parts = [g.op.SequenceAt(seq, np.array(i, I64)) for i in (2, 0, -2)]
    g.output(g.op.Sub(g.op.Mul(parts[0], parts[1]), parts[2]), "y")
    out = optimized(g.model(), [{"x": f32(1, s, 12)} for s in (2, 5)])
    assert ops(out) == {"Split": 1, "Mul": 1, "Sub": 1}


def test_split_to_sequence_read_at_a_fed_position_stays():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 12])
    i = g.input("i", "int64", [])
    seq = g.op.SplitToSequence(x, np.array(4, I64), axis=2)
    g.output(g.op.Add(g.op.SequenceAt(seq, i), g.op.SequenceAt(seq, np.array(1, I64))), "y")
    feeds = [{"x": f32(1, 3, 12), "i": np.array(2, I64)}]
    assert "SplitToSequence" in ops(optimized(g.model(), feeds))


def test_gemm_between_reshapes_becomes_matmul_add_on_3d():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 8])
    for trans_b, w in ((0, f32(8, 5)), (1, f32(5, 8))):
        flat = g.op.Reshape(x, np.array([-1, 8], I64))
        y = g.op.Gemm(flat, w, f32(5), transB=trans_b, beta=0.5)
        g.output(g.op.Reshape(y, np.array([1, -1, 5], I64)), f"y{trans_b}")
    feeds = [{"x": f32(1, s, 8)} for s in (2, 5)]
    assert ops(optimized(g.model(), feeds)) == {"MatMul": 2, "Add": 2}
    merged = optimized(g.model(), feeds, **MERGED)
    assert ops(merged) == {"MatMul": 1, "Add": 1, "Split": 1}  # (both projections of x merge)


def test_gemm_whose_reshape_back_differs_stays():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 3, 8])
    y = g.op.Gemm(g.op.Reshape(x, np.array([-1, 8], I64)), f32(8, 5), f32(5))
    g.output(g.op.Reshape(y, np.array([3, 2, 5], I64)), "y")  # not x's leading dims
    out = optimized(g.model(), [{"x": f32(2, 3, 8)}])
    assert "Gemm" in ops(out)


def test_reshape_transpose_reshape_over_merged_leading_dims_is_one_transpose():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 3, "S", 4])
    s = g.op.Shape(x)
    n = g.op.Slice(s, np.array([-2], I64), np.array([-1], I64))
    r1 = g.op.Reshape(x, g.op.Concat(np.array([-1], I64), n, np.array([4], I64), axis=0))
    t = g.op.Transpose(r1, perm=[0, 2, 1])
    g.output(g.op.Reshape(t, np.array([2, 3, 4, -1], I64)), "y")
    out = optimized(g.model(), [{"x": f32(2, 3, s, 4)} for s in (2, 5)])
    assert ops(out) == {"Transpose": 1}
    (tr,) = out.graph.nodes
    assert list(tr.attribute("perm")) == [0, 1, 3, 2]


def test_a_sandwich_that_does_not_split_back_the_same_dims_stays():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 3, 5, 4])
    r1 = g.op.Reshape(x, np.array([6, 5, 4], I64))
    t = g.op.Transpose(r1, perm=[0, 2, 1])
    g.output(g.op.Reshape(t, np.array([3, 2, 4, 5], I64)), "y")  # 6 split as 3·2, not 2·3
    out = optimized(g.model(), [{"x": f32(2, 3, 5, 4)}])
    assert ops(out)["Reshape"] == 2


def test_reshape_minus_one_is_solved_through_symbols_with_allowzero():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 8])
    n = g.op.Slice(g.op.Shape(x), np.array([1], I64), np.array([2], I64))
    target = g.op.Concat(np.array([1], I64), n, np.array([-1, 4], I64), axis=0)
    g.output(g.op.Reshape(x, target, allowzero=1), "y")
    out = optimized(g.model(), [{"x": f32(1, s, 8)} for s in (2, 5)])
    assert ops(out) == {"Reshape": 1}
    (shape,) = [v.const_value.numpy() for v in out.graph.initializers.values()]
    assert shape.tolist() == [1, -1, 2, 4]


def test_projections_of_one_input_merge_into_one_matmul_add_split():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 8])
    a, b, c = (g.op.Add(g.op.MatMul(x, f32(8, n)), f32(n)) for n in (8, 8, 4))
    g.output(g.op.Concat(a, b, c, axis=-1), "y")
    feeds = [{"x": f32(1, s, 8)} for s in (2, 5)]
    assert ops(optimized(g.model(), feeds)) == {"MatMul": 3, "Add": 3, "Concat": 1}  # (level 2)
    out = optimized(g.model(), feeds, **MERGED)
    assert ops(out) == {"MatMul": 1, "Add": 1, "Split": 1, "Concat": 1}


def test_a_projection_whose_weight_is_shared_does_not_merge():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [1, "S", 8])
    w = g.initializer("w", f32(8, 8))
    a = g.op.Add(g.op.MatMul(x, w), f32(8))
    b = g.op.Add(g.op.MatMul(x, f32(8, 8)), f32(8))
    g.output(g.op.Add(g.op.MatMul(a, w), b), "y")  # w also read by a MatMul of a
    out = optimized(g.model(), [{"x": f32(1, s, 8)} for s in (2, 5)], **MERGED)
    assert "Split" not in ops(out) and ops(out)["MatMul"] == 3
