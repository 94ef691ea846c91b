"""x · Sigmoid(x) (SiLU) fused into Swish: by onyx.optimize at opset 24, by a session at any opset,
and the Swish kernel itself (one division instead of Sigmoid's reciprocal and a Mul)."""

from __future__ import annotations

import collections
import warnings

import ml_dtypes
import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.passes import optimize
from onyx.runtime.kernels.math import swish

RNG = np.random.default_rng(17)


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.nodes)


def silu64(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        return x / (1 + np.exp(-alpha * x))


def silu_model(opset: int, *, leak: bool = False, swapped: bool = False):
    """Conv-free SiLU block: x -> x * Sigmoid(x) -> Add 1; with ``leak`` the Sigmoid's result
    is a graph output too (so it must stay)."""
    g = GraphBuilder(opset=opset)
    x = g.input("x", "float", ["N", 8, 5, 5])
    s = g.op.Sigmoid(x)
    y = g.op.Mul(s, x) if swapped else g.op.Mul(x, s)
    g.output(g.op.Add(y, np.array(1, np.float32)), "y")
    if leak:
        g.output(s, "s")
    return g.model()


@pytest.mark.parametrize("swapped", [False, True])
def test_silu_fuses_into_swish_at_opset_24_and_not_below(swapped):
    assert ops(optimize(silu_model(24, swapped=swapped))) == {"Swish": 1, "Add": 1}
    assert "Swish" not in ops(optimize(silu_model(18, swapped=swapped)))


def test_a_sigmoid_read_elsewhere_blocks_the_fusion():
    assert "Swish" not in ops(optimize(silu_model(24, leak=True)))


@pytest.mark.parametrize("leak", [False, True])
def test_session_runs_silu_as_one_step_at_opset_18(leak):
    model = silu_model(18, leak=leak)
    session = onyx.InferenceSession(model)
    kinds = [step.node.op_type for step in session._plan.steps]
    assert ("Swish" in kinds) is not leak and ("Sigmoid" in kinds) is leak
    x = (RNG.standard_normal((2, 8, 5, 5)) * 6).astype(np.float32)
    got = session.run(None, {"x": x})
    np.testing.assert_allclose(got[0].astype(np.float64), silu64(x) + 1, rtol=1e-6, atol=1e-6)
    plain = onyx.SessionOptions()
    plain.graph_optimization_level = 0
    want = onyx.InferenceSession(model, plain).run(None, {"x": x})
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_swish_kernel_matches_the_formula_and_keeps_its_tails(dtype, alpha):
    x = np.concatenate([RNG.standard_normal(300) * 8, [-1e4, -200, -90, 0, 90, 200, 1e4]])
    x = x.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings from exp in the far tails
        y = swish(x, alpha=alpha)
    assert y.dtype == x.dtype and y.shape == x.shape
    want = silu64(x, alpha)
    wide = dtype in (np.float32, np.float64)  # (the 16-bit types: subnormals near 1e-7)
    rtol = {np.float32: 1e-6, np.float64: 1e-12}.get(dtype, 1e-2)
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=rtol, atol=1e-30 if wide else 1e-6)
    assert y.astype(np.float64)[-1] == float(x[-1])  # large x: x itself


@pytest.mark.parametrize("compiled_on", [False, True])
def test_swish_of_a_large_float32_tensor_on_both_paths(monkeypatch, compiled_on):
    from onyx.runtime import compiled

    monkeypatch.setattr(compiled, "enabled", compiled_on)
    if compiled_on and compiled.kernels(compiled.MIN_SIZE) is None:
        pytest.fail("the compiled kernels did not load (is numba installed?)")
    x = (RNG.standard_normal((3, 40, 33, 17)) * 12).astype(np.float32)  # over MIN_SIZE
    x.reshape(-1)[:8] = [-1e4, -200, -88, -0.0, 88, 1e4, np.inf, np.nan]
    y = swish(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    flat, want = y.reshape(-1), silu64(x).reshape(-1)
    assert np.isnan(flat[7]) and flat[6] == np.inf and flat[5] == np.float32(1e4)
    np.testing.assert_allclose(flat[:7].astype(np.float64), want[:7], rtol=0, atol=1e-30)
    np.testing.assert_allclose(flat[8:].astype(np.float64), want[8:], rtol=5e-7, atol=1e-30)
