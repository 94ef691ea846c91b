"""Attention, RotaryEmbedding and LinearAttention against the official node cases and ORT."""

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from kernel_harness import cases_for, check_case
from onnx import helper

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"Attention", "RotaryEmbedding", "LinearAttention"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def _attn(version=24, **attrs):
    return lookup("", "Attention", version)(**attrs)


def _ort_attention(inputs, n_out, **attrs):
    names = ["Q", "K", "V", "attn_mask", "past_key", "past_value"][: len(inputs)]
    outs = ["Y", "present_key", "present_value"][:n_out]
    f = onnx.TensorProto.FLOAT
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.BOOL if x.dtype == bool else f, None)
           for n, x in zip(names, inputs)]  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Attention", names, outs, **attrs)],
        "g",
        ins,
        [helper.make_tensor_value_info(o, f, None) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))


def test_gpt2_like_against_onnxruntime():
    rng = np.random.default_rng(0)
    b, s, past, h, d = 2, 5, 3, 4, 16
    q = rng.standard_normal((b, s, h * d)).astype(np.float32)
    k = rng.standard_normal((b, s, h * d)).astype(np.float32)
    v = rng.standard_normal((b, s, h * d)).astype(np.float32)
    pk = rng.standard_normal((b, h, past, d)).astype(np.float32)
    pv = rng.standard_normal((b, h, past, d)).astype(np.float32)
    mask = np.ones((b, 1, s, past + s), bool)
    mask[1, ..., 0] = False
    ins = [q, k, v, mask, pk, pv]
    attrs = {"q_num_heads": h, "kv_num_heads": h, "is_causal": 1}
    got = _attn(23, **attrs)(*ins)
    want = _ort_attention(ins, 3, **attrs)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_gqa_equals_repeated_heads_and_3d_equals_4d():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 6, 3, 8)).astype(np.float32)
    k = rng.standard_normal((2, 2, 5, 8)).astype(np.float32)
    v = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    y = _attn(softcap=3.0)(q, k, v)[0]
    y_rep = _attn(softcap=3.0)(q, np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1))[0]
    np.testing.assert_allclose(y, y_rep, rtol=1e-6)
    q3 = q.transpose(0, 2, 1, 3).reshape(2, 3, 48)
    k3, v3 = (a.transpose(0, 2, 1, 3).reshape(2, 5, -1) for a in (k, v))
    y3 = _attn(softcap=3.0, q_num_heads=6, kv_num_heads=2)(q3, k3, v3)[0]
    np.testing.assert_allclose(y3, y.transpose(0, 2, 1, 3).reshape(2, 3, 24), rtol=1e-6)


def test_fully_masked_rows_are_zero_and_fp16():
    q = np.ones((1, 1, 2, 4), np.float16)
    mask = np.array([[False, False], [True, False]])
    y, _, _, probs = _attn(qk_matmul_output_mode=3)(q, q, q, mask)
    assert y.dtype == np.float16 and probs.dtype == np.float16
    np.testing.assert_array_equal(y[0, 0, 0], 0)
    np.testing.assert_array_equal(probs[0, 0], [[0, 0], [1, 0]])


def test_attention_errors():
    q = np.zeros((1, 3, 2, 4), np.float32)
    k = np.zeros((1, 2, 2, 4), np.float32)
    with pytest.raises(KernelError, match="multiple"):
        _attn()(q, k, k)
    with pytest.raises(KernelError, match="head count"):
        _attn()(
            np.zeros((1, 2, 12), np.float32),
            np.zeros((1, 2, 12), np.float32),
            np.zeros((1, 2, 12), np.float32),
        )
    with pytest.raises(KernelError, match="attn_mask"):
        _attn()(q, q, q, np.zeros((3, 2), np.float32))
    with pytest.raises(KernelError, match="together"):
        _attn()(q, q, q, None, np.zeros((1, 3, 1, 4), np.float32))
    with pytest.raises(KernelError, match="qk_matmul_output_mode"):
        _attn(qk_matmul_output_mode=7)


def test_rotary_bf16_and_errors():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 3, 8)).astype(np.float32)
    ang = rng.standard_normal((5, 4)).astype(np.float32)
    pos = np.array([[0, 3, 4]])
    k = lookup("", "RotaryEmbedding", 23)()
    y = k(x, np.cos(ang), np.sin(ang), pos)
    yb = k(
        x.astype(ml_dtypes.bfloat16),
        np.cos(ang).astype(ml_dtypes.bfloat16),
        np.sin(ang).astype(ml_dtypes.bfloat16),
        pos,
    )
    assert yb.dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(yb.astype(np.float32), y, rtol=3e-2, atol=3e-2)
    # rotation keeps the norm of each rotated pair
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    with pytest.raises(KernelError, match="position_ids"):
        k(x, np.cos(ang), np.sin(ang), np.array([[0, 1, 5]]))
    with pytest.raises(KernelError, match="num_heads"):
        k(x.reshape(1, 3, 16), np.cos(ang), np.sin(ang), pos)


def test_linear_attention_matches_causal_form():
    rng = np.random.default_rng(3)
    b, t, h, dk, dv = 2, 5, 2, 4, 3
    q = rng.standard_normal((b, t, h * dk)).astype(np.float32)
    k = rng.standard_normal((b, t, h * dk)).astype(np.float32)
    v = rng.standard_normal((b, t, h * dv)).astype(np.float32)
    out, state = lookup("", "LinearAttention", 27)(
        q_num_heads=h, kv_num_heads=h, update_rule="linear"
    )(q, k, v)
    qh, kh = (a.reshape(b, t, h, dk).transpose(0, 2, 1, 3) for a in (q, k))
    vh = v.reshape(b, t, h, dv).transpose(0, 2, 1, 3)
    ref = np.tril(qh @ kh.swapaxes(-1, -2)) @ vh / np.sqrt(dk)
    np.testing.assert_allclose(
        out, ref.transpose(0, 2, 1, 3).reshape(b, t, -1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(state, kh.swapaxes(-1, -2) @ vh, rtol=1e-5, atol=1e-5)
    with pytest.raises(KernelError, match="decay"):
        lookup("", "LinearAttention", 27)(q_num_heads=h, kv_num_heads=h)(q, k, v)
