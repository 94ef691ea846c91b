"""Clip by constant bounds (ReLU6) fused as a producer's epilogue: the same values as the Clip
kernel, on the numpy and the compiled paths."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import widen

import onyx
from onyx.build import GraphBuilder
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(23)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def both_ways(model, feeds) -> onyx.InferenceSession:
    fused = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    for got, want in zip(fused.run(None, feeds), plain.run(None, feeds), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(widen(got), widen(want))  # max and min: exact
    return fused


def kinds(session) -> list[str]:
    return [step.node.op_type for step in session._plan.steps]


def conv_clip(size: int, lo, hi, dtype=np.float32, bound_input: bool = False):
    g = GraphBuilder(opset=13)
    elem = "float16" if dtype == np.float16 else "float"
    x = g.input("x", elem, [1, 3, size, size])
    y = g.op.Conv(x, f32(8, 3, 3, 3).astype(dtype) * 2, f32(8).astype(dtype),
                  pads=[1, 1, 1, 1])  # fmt: skip
    if bound_input:
        lo = g.input("lo", elem, [])
    else:
        lo = None if lo is None else np.array(lo, dtype)
    g.output(g.op.Clip(y, lo, None if hi is None else np.array(hi, dtype)), "y")
    return g.model()


@pytest.mark.parametrize("size", [9, 48])  # below and above the compiled kernels' size
@pytest.mark.parametrize("lo, hi", [(0, 6), (None, 1.5), (-0.5, None), (2, 1)])
def test_conv_takes_a_clip_by_constants(size, lo, hi):
    session = both_ways(conv_clip(size, lo, hi), {"x": f32(1, 3, size, size)})
    assert kinds(session) == ["Conv"]


def test_a_bound_computed_at_run_time_keeps_the_clip_step():
    model = conv_clip(9, None, 6, bound_input=True)
    session = both_ways(model, {"x": f32(1, 3, 9, 9), "lo": np.array(-0.25, np.float32)})
    assert kinds(session) == ["Conv", "Clip"]


def test_half_precision_falls_back_to_the_clip_kernel():
    x = f32(1, 3, 9, 9).astype(np.float16)
    both_ways(conv_clip(9, 0, 6, dtype=np.float16), {"x": x})


def test_clip_after_an_elementwise_step_runs_in_the_chain_and_keeps_nan():
    g = GraphBuilder(opset=13)
    x = g.input("x", "float", [2, 4, 40, 40])
    y = g.op.Mul(g.op.Sigmoid(x), np.array(9, np.float32))
    g.output(g.op.Clip(y, np.array(1, np.float32), np.array(6, np.float32)), "y")
    feed = f32(2, 4, 40, 40)
    feed[0, 0, 0, :3] = np.nan
    session = both_ways(g.model(), {"x": feed})
    assert "Clip" not in kinds(session)
    assert np.isnan(session.run(None, {"x": feed})[0][0, 0, 0, :3]).all()
