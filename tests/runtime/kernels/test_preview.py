"""FlexAttention (ai.onnx.preview): official node cases and our own checks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from kernel_harness import all_node_cases, cases_for, check_case
from onnx import helper, numpy_helper

import onyx
from onyx.errors import ExecutionError, OnyxError

OPS = {"FlexAttention"}


def _has_subgraph(name: str) -> bool:
    model = all_node_cases()[name].model
    return any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for n in model.graph.node
        for a in n.attribute
    )


def _check_with_session(name: str) -> None:
    """Run a case through onyx.InferenceSession (the harness may not pass subgraph attributes)."""
    case = all_node_cases()[name]
    session = onyx.InferenceSession(case.model.SerializeToString())
    feeds_names = [i.name for i in case.model.graph.input]
    for inputs, expected in case.data_sets:
        got = session.run(None, dict(zip(feeds_names, inputs)))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else e
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    if _has_subgraph(name):
        try:
            check_case(name)
        except NotImplementedError:  # the harness calls kernels directly, without subgraphs
            _check_with_session(name)
    else:
        check_case(name)


# --- our own -------------------------------------------------------------------------------
def _model(q, k, v, opset=26, **attrs):
    def info(name, a):
        return helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape
        )

    node = helper.make_node(
        "FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", **attrs
    )
    graph = helper.make_graph(
        [node], "g", [info("Q", q), info("K", k), info("V", v)],
        [helper.make_tensor_value_info("Y", helper.np_dtype_to_tensor_dtype(q.dtype), None)],
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.preview", 1)],
    )
    return onyx.InferenceSession(model.SerializeToString())


def _reference(q, k, v, scale=None):
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ v


def test_gqa_against_reference():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 6, 5, 8)).astype(np.float32)
    k = rng.standard_normal((2, 2, 7, 8)).astype(np.float32)
    v = rng.standard_normal((2, 2, 7, 3)).astype(np.float32)
    (y,) = _model(q, k, v, scale=0.3).run(None, {"Q": q, "K": k, "V": v})
    assert y.dtype == np.float32 and y.shape == (2, 6, 5, 3)
    np.testing.assert_allclose(y, _reference(q, k, v, 0.3), rtol=1e-5, atol=1e-6)


def test_bfloat16_and_softmax_precision():
    import ml_dtypes

    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(ml_dtypes.bfloat16) for _ in range(3))
    (y,) = _model(q, k, v, softmax_precision=1).run(None, {"Q": q, "K": k, "V": v})
    assert y.dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(y.astype(np.float32), _reference(q, k, v), rtol=2e-2, atol=2e-2)


def test_prob_mod_sees_softmax_precision_double():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 1, 3, 4)).astype(np.float16) for _ in range(3))
    body = helper.make_graph(
        [helper.make_node("Identity", ["p"], ["o"])], "pm",
        [helper.make_tensor_value_info("p", onnx.TensorProto.DOUBLE, None)],
        [helper.make_tensor_value_info("o", onnx.TensorProto.DOUBLE, None)],
    )  # fmt: skip
    (y,) = _model(q, k, v, softmax_precision=11, prob_mod=body).run(None, {"Q": q, "K": k, "V": v})
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), _reference(q, k, v), rtol=5e-3, atol=5e-3)


def test_bad_head_counts_raise():
    q = np.zeros((1, 3, 2, 4), np.float32)
    k = v = np.zeros((1, 2, 2, 4), np.float32)
    with pytest.raises(ExecutionError, match="multiple of kv_num_heads"):
        _model(q, k, v).run(None, {"Q": q, "K": k, "V": v})


def test_rank_and_head_size_errors():
    q = np.zeros((1, 2, 2, 4), np.float32)
    k = np.zeros((1, 2, 2, 5), np.float32)
    with pytest.raises(ExecutionError, match="head size"):
        _model(q, k, k).run(None, {"Q": q, "K": k, "V": k})
    q3 = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ExecutionError, match="rank 4"):
        _model(q3, q3, q3).run(None, {"Q": q3, "K": q3, "V": q3})


def test_bad_softmax_precision_is_rejected_at_build():
    q = np.zeros((1, 1, 2, 4), np.float32)
    with pytest.raises(OnyxError, match="softmax_precision"):
        _model(q, q, q, softmax_precision=7)


def test_score_mod_reads_an_outer_value():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)).astype(np.float32) for _ in range(3))
    bias = rng.standard_normal((3, 3)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "bias"], ["o"])], "sm",
        [helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, None)],
    )  # fmt: skip
    node = helper.make_node(
        "FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", score_mod=body
    )
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node], "g", [vi(n, onnx.TensorProto.FLOAT, None) for n in ("Q", "K", "V", "bias")],
        [vi("Y", onnx.TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)],
    )
    session = onyx.InferenceSession(model.SerializeToString())
    (y,) = session.run(None, {"Q": q, "K": k, "V": v, "bias": bias})
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / 2 + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(y, (p / p.sum(-1, keepdims=True)) @ v, rtol=1e-5, atol=1e-6)
