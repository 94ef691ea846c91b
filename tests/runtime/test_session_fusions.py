"""The session's build step fuses what exporters write out (Attention, Gelu, LayerNormalization)
into single steps, on models of any opset, without touching the user's model."""

from __future__ import annotations

import collections
import math

import numpy as np
import onnxruntime as ort
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.passes import optimize_for_session
from onyx.runtime.kernels.registry import SESSION_DOMAIN

RNG = np.random.default_rng(3)
HIDDEN, HEADS, SEQ = 16, 2, 5


def f32(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _linear(g, x, n_in, n_out):
    return g.op.Add(g.op.MatMul(x, f32(n_in, n_out)), f32(n_out))  # non-zero biases


def _mean(g, x, opset):
    if opset >= 18:  # axes became an input
        return g.op.ReduceMean(x, np.array([-1], np.int64))
    return g.op.ReduceMean(x, axes=[-1])


def _layer_norm(g, x, opset):
    """LayerNorm over the last axis, written out as exporters of old opsets do."""
    d = g.op.Sub(x, _mean(g, x, opset))
    var = _mean(g, g.op.Pow(d, np.array(2, np.float32)), opset)
    normed = g.op.Div(d, g.op.Sqrt(g.op.Add(var, np.array(1e-5, np.float32))))
    return g.op.Add(g.op.Mul(normed, f32(HIDDEN) + 1), f32(HIDDEN))


def _heads(g, x, perm):
    shape = np.array([1, SEQ, HEADS, HIDDEN // HEADS], np.int64)
    return g.op.Transpose(g.op.Reshape(x, shape), perm=perm)


def bert_layer(opset: int, mask: bool = True):
    """One encoder layer as torch.onnx writes BERT's: Q, K, V projections split into heads
    (K transposed for the product), scaled scores, an additive mask, softmax with the NaN
    guard, heads merged, residual and LayerNorm, then Gelu (erf form) in the feed-forward."""
    g = GraphBuilder(opset=opset)
    x = g.input("x", "float", [1, SEQ, HIDDEN])
    q = _heads(g, _linear(g, x, HIDDEN, HIDDEN), [0, 2, 1, 3])
    k = _heads(g, _linear(g, x, HIDDEN, HIDDEN), [0, 2, 3, 1])  # (B, H, D, S)
    v = _heads(g, _linear(g, x, HIDDEN, HIDDEN), [0, 2, 1, 3])
    scale = np.array(1 / math.sqrt(HIDDEN // HEADS), np.float32)
    scores = g.op.Mul(g.op.MatMul(q, k), scale)
    if mask:
        m = g.input("mask", "float", [1, 1, 1, SEQ])
        scores = g.op.Add(scores, m)
    p = g.op.Softmax(scores, axis=-1)
    p = g.op.Where(g.op.IsNaN(p), np.array(0, np.float32), p)
    y = g.op.Transpose(g.op.MatMul(p, v), perm=[0, 2, 1, 3])
    y = g.op.Reshape(y, np.array([1, SEQ, HIDDEN], np.int64))
    h = _layer_norm(g, g.op.Add(_linear(g, y, HIDDEN, HIDDEN), x), opset)
    up = _linear(g, h, HIDDEN, 4 * HIDDEN)
    erf = g.op.Erf(g.op.Div(up, np.array(math.sqrt(2), np.float32)))
    gelu = g.op.Mul(g.op.Mul(up, g.op.Add(erf, np.array(1, np.float32))),
                    np.array(0.5, np.float32))  # fmt: skip
    g.output(_layer_norm(g, g.op.Add(_linear(g, gelu, 4 * HIDDEN, HIDDEN), h), opset), "y")
    return g.model()


def feeds(mask: bool = True):
    out = {"x": f32(1, SEQ, HIDDEN, scale=1.0)}
    if mask:
        m = np.zeros((1, 1, 1, SEQ), np.float32)
        m[..., -1] = -np.inf  # the last position masked out, as padding is
        out["mask"] = m
    return out


def plan_ops(session) -> collections.Counter:
    return collections.Counter((s.node.domain, s.node.op_type) for s in session._plan.steps)


def close(got, want, tol=1e-5):
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("opset", [13, 18, 23])
def test_the_plan_runs_one_step_per_fused_operator_with_the_outputs_unfused(opset):
    model = bert_layer(opset)
    fed = feeds()
    fused = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, graph_optimization_level=0)
    ops = plan_ops(fused)
    # fused operators the opset lacks run in the session's own domain; the others stay standard
    domain = {op: "" if opset >= since else SESSION_DOMAIN
              for op, since in (("Attention", 23), ("Gelu", 20), ("LayerNormalization", 17))}  # fmt: skip
    assert ops[domain["Attention"], "Attention"] == 1
    assert ops[domain["Gelu"], "Gelu"] == 1
    assert ops[domain["LayerNormalization"], "LayerNormalization"] == 2
    left = {op for _, op in ops}
    assert left.isdisjoint({"Softmax", "Erf", "ReduceMean", "Transpose", "IsNaN", "Where"})
    # Attention reads and writes the 3-D tensors: the head split and merge are gone
    assert "Reshape" not in left
    (want,) = plain.run(None, fed)
    (got,) = fused.run(None, fed)
    close(got, want)
    (oracle,) = ort.InferenceSession(onyx.to_bytes(model), providers=["CPUExecutionProvider"]).run(
        None, fed
    )
    close(got, oracle)


def test_without_a_mask():
    model = bert_layer(18, mask=False)
    fed = feeds(mask=False)
    fused = onyx.InferenceSession(model)
    assert plan_ops(fused)[SESSION_DOMAIN, "Attention"] == 1
    close(
        fused.run(None, fed)[0],
        onyx.InferenceSession(model, graph_optimization_level=0).run(None, fed)[0],
    )


def test_the_users_model_is_left_as_it_was():
    model = bert_layer(18)
    before = (collections.Counter(n.op_type for n in model.graph.nodes), dict(model.opset_imports),
              {n.domain for n in model.graph.nodes})  # fmt: skip
    onyx.InferenceSession(model)
    after = (collections.Counter(n.op_type for n in model.graph.nodes), dict(model.opset_imports),
             {n.domain for n in model.graph.nodes})  # fmt: skip
    assert after == before
    assert SESSION_DOMAIN not in model.opset_imports


def test_without_a_domain_fusions_keep_to_the_models_opset():
    """onyx.passes' portable contract: no operator of a newer opset, no private domain."""
    model = bert_layer(18)
    work = optimize_for_session(model)  # (no domain: no newer operators)
    ops = collections.Counter(n.op_type for n in work.graph.nodes)
    assert ops["Attention"] == 0 and ops["Gelu"] == 0
    assert ops["LayerNormalization"] == 2  # LayerNormalization-17 is in opset 18
    assert {n.domain for n in work.graph.nodes} == {""}


def test_a_pattern_with_a_wrong_edge_is_not_fused():
    g = GraphBuilder(opset=18)
    x, z = g.input("x", "float", [2, 8]), g.input("z", "float", [2, 8])
    erf = g.op.Erf(g.op.Div(z, np.array(math.sqrt(2), np.float32)))  # erf of another value
    g.output(g.op.Mul(g.op.Mul(x, g.op.Add(erf, np.array(1, np.float32))),
                      np.array(0.5, np.float32)), "y")  # fmt: skip
    model = g.model()
    session = onyx.InferenceSession(model)
    assert "Gelu" not in {op for _, op in plan_ops(session)}
    fed = {"x": f32(2, 8), "z": f32(2, 8)}
    close(session.run(None, fed)[0],
          onyx.InferenceSession(model, graph_optimization_level=0).run(None, fed)[0])  # fmt: skip


def test_a_graph_with_nothing_to_fold_or_fuse_is_not_copied():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [2, 8])
    g.output(g.op.Relu(g.op.MatMul(x, f32(8, 8))), "y")
    assert optimize_for_session(g.model(), SESSION_DOMAIN) is None
