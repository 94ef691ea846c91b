"""ai.onnx.preview.training: Adagrad, Adam, Momentum and Gradient."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from kernel_harness import cases_for, check_case
from onnx import helper

import onyx
from onyx.errors import ExecutionError, OnyxError, UnsupportedError
from onyx.runtime.kernels.training import adagrad, adam, momentum

TRAINING = "ai.onnx.preview.training"
OPS = {"Adagrad", "Adam", "Momentum"}

R, T0, T1 = np.array(0.1, np.float32), np.array(0, np.int64), np.array(3, np.int64)


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def test_official_cases_are_found():
    assert len(cases_for(OPS)) == 7


# --- optimizers ----------------------------------------------------------------------------
def test_adagrad_double_with_decay_and_norm():
    x, g, h = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([0.1, 0.2])
    x_new, h_new = adagrad(np.array(0.5), T1, x, g, h, decay_factor=0.1, norm_coefficient=0.01)
    g_reg = 0.01 * x + g
    r = 0.5 / (1 + 3 * 0.1)
    np.testing.assert_allclose(h_new, h + g_reg**2)
    np.testing.assert_allclose(x_new, x - r * g_reg / (np.sqrt(h + g_reg**2) + 1e-6))
    assert x_new.dtype == h_new.dtype == np.float64


def test_adam_first_step_uses_plain_rate_and_post_norm():
    x, g = np.array([1.0], np.float32), np.array([2.0], np.float32)
    v, h = np.zeros(1, np.float32), np.zeros(1, np.float32)
    x_new, v_new, h_new = adam(R, T0, x, g, v, h, norm_coefficient_post=0.5)
    np.testing.assert_allclose(v_new, [0.2], rtol=1e-6)
    np.testing.assert_allclose(h_new, [0.004], rtol=1e-5)
    expected = (1 - 0.1 * 0.2 / (np.sqrt(0.004) + 1e-6)) * 0.5
    np.testing.assert_allclose(x_new, [expected], rtol=1e-5)
    assert x_new.dtype == np.float32


def test_adam_bias_correction_after_first_step():
    x, g, v, h = (np.array([0.5]) for _ in range(4))
    x_new, v_new, h_new = adam(R, T1, x, g, v, h, alpha=0.8, beta=0.9)
    rate = 0.1 * np.sqrt(1 - 0.9**3) / (1 - 0.8**3)
    np.testing.assert_allclose(x_new, x - rate * v_new / (np.sqrt(h_new) + 1e-6), rtol=1e-6)


@pytest.mark.parametrize("mode", ["standard", "nesterov"])
def test_momentum_first_step_sets_beta_to_one(mode):
    x, g, v = np.array([1.0, 2.0]), np.array([0.5, -0.5]), np.array([0.1, 0.1])
    x_new, v_new = momentum(R, T0, x, g, v, alpha=0.9, beta=0.5, mode=mode, norm_coefficient=0.0)
    np.testing.assert_allclose(v_new, 0.9 * v + g)
    direction = v_new if mode == "standard" else g + 0.9 * v_new
    np.testing.assert_allclose(x_new, x - 0.1 * direction)


def test_optimizer_errors():
    x = np.zeros(2, np.float32)
    with pytest.raises(OnyxError, match="multiple of 3"):
        adagrad(R, T0, x, x)
    with pytest.raises(OnyxError, match="scalar"):
        adagrad(np.array([0.1, 0.2], np.float32), T0, x, x, x)
    with pytest.raises(OnyxError, match="does not match"):
        adam(R, T0, x, np.zeros(3, np.float32), x, x)
    with pytest.raises(OnyxError, match="mode"):
        momentum(R, T0, x, x, x, alpha=0.9, beta=0.1, mode="heavy", norm_coefficient=0.0)
    with pytest.raises(OnyxError, match="float or double"):
        momentum(R, T0, x.astype(np.int32), x, x, alpha=0.9, beta=0.1, mode="standard",
                 norm_coefficient=0.0)  # fmt: skip


# --- Gradient ------------------------------------------------------------------------------
def _session(nodes, inputs, outputs, initializers=()):
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "g", [vi(n, onnx.TensorProto.FLOAT, None) for n in inputs],
        [vi(n, onnx.TensorProto.FLOAT, None) for n in outputs], list(initializers),
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 12), helper.make_opsetid(TRAINING, 1)]
    )
    return onyx.InferenceSession(model.SerializeToString())


def _gradient(inputs, outputs, **attrs):
    return helper.make_node("Gradient", inputs, outputs, domain=TRAINING, **attrs)


def test_gradient_of_add():  # the official model case test_gradient_of_add
    s = _session(
        [helper.make_node("Add", ["a", "b"], ["c"]),
         _gradient(["a", "b"], ["dc_da", "dc_db"], xs=["a", "b"], y="c")],
        ["a", "b"], ["c", "dc_da", "dc_db"],
    )  # fmt: skip
    c, da, db = s.run(None, {"a": np.array(1.0, np.float32), "b": np.array(2.0, np.float32)})
    assert c == 3 and da == 1 and db == 1
    assert da.dtype == np.float32 and da.shape == ()


def test_gradient_of_add_and_mul():  # the official model case test_gradient_of_add_and_mul
    s = _session(
        [helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Mul", ["c", "a"], ["d"]),
         _gradient(["a", "b"], ["dd_da", "dd_db"], xs=["a", "b"], y="d")],
        ["a", "b"], ["d", "dd_da", "dd_db"],
    )  # fmt: skip
    d, da, db = s.run(None, {"a": np.array(1.0, np.float32), "b": np.array(2.0, np.float32)})
    assert d == 3 and da == 4 and db == 1


def test_gradient_matmul_relu_with_broadcast_and_zs():
    rng = np.random.default_rng(0)
    x, w = (
        rng.standard_normal((3, 4)).astype(np.float32),
        rng.standard_normal((4, 2)).astype(np.float32),
    )
    bias = rng.standard_normal((2,)).astype(np.float32)
    s = _session(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Sub", ["r", "k"], ["y"]),
         _gradient(["w", "b", "x"], ["dw", "db"], xs=["w", "b"], zs=["x"], y="y")],
        ["x", "w", "b"], ["dw", "db"],
        [onnx.numpy_helper.from_array(np.array(0.5, np.float32), "k")],
    )  # fmt: skip
    dw, db = s.run(None, {"x": x, "w": w, "b": bias})
    mask = ((x @ w + bias) > 0).astype(np.float32)
    np.testing.assert_allclose(dw, x.T @ mask, rtol=1e-5)
    np.testing.assert_allclose(db, mask.sum(0), rtol=1e-5)


def test_gradient_div_tanh_with_numeric_check():
    a, b = np.array([0.3, -0.7], np.float32), np.array([1.5, 2.0], np.float32)
    s = _session(
        [helper.make_node("Div", ["a", "b"], ["q"]), helper.make_node("Tanh", ["q"], ["t"]),
         helper.make_node("Mul", ["t", "t"], ["y"]),
         _gradient(["a", "b"], ["da", "db"], xs=["a", "b"], y="y")],
        ["a", "b"], ["da", "db"],
    )  # fmt: skip
    da, db = s.run(None, {"a": a, "b": b})
    t = np.tanh(a / b)
    np.testing.assert_allclose(da, 2 * t * (1 - t**2) / b, rtol=1e-5)
    np.testing.assert_allclose(db, -2 * t * (1 - t**2) * a / b**2, rtol=1e-5)


def test_gradient_of_unrelated_input_is_zero():
    s = _session(
        [helper.make_node("Neg", ["a"], ["y"]),
         _gradient(["a", "b"], ["da", "db"], xs=["a", "b"], y="y")],
        ["a", "b"], ["da", "db"],
    )  # fmt: skip
    da, db = s.run(None, {"a": np.ones(2, np.float32), "b": np.ones(3, np.float32)})
    np.testing.assert_array_equal(da, [-1, -1])
    np.testing.assert_array_equal(db, [0, 0, 0])


def test_gradient_without_rule_is_unsupported():
    with pytest.raises(UnsupportedError, match="Softmax"):
        _session(
            [helper.make_node("Softmax", ["a"], ["y"]),
             _gradient(["a"], ["da"], xs=["a"], y="y")],
            ["a"], ["da"],
        )  # fmt: skip


def test_gradient_needs_all_independent_inputs():
    with pytest.raises(OnyxError, match="not in xs or zs"):
        _session(
            [helper.make_node("Add", ["a", "b"], ["y"]),
             _gradient(["a"], ["da"], xs=["a"], y="y")],
            ["a", "b"], ["da"],
        )  # fmt: skip


def test_gradient_input_count_is_checked():
    s = _session(
        [helper.make_node("Neg", ["a"], ["y"]), _gradient(["a", "a"], ["da"], xs=["a"], y="y")],
        ["a"], ["da"],
    )  # fmt: skip
    with pytest.raises(ExecutionError, match="expects 1 inputs"):
        s.run(None, {"a": np.ones(2, np.float32)})
