"""Squeeze-excite blocks as one step (fusion.fuse_squeeze_excites): EfficientNet's (Swish,
Sigmoid) and MobileNetV3's (Relu, HardSigmoid) fuse and give the values of the steps they
replace, on the numpy and the compiled paths; a block with one wrong edge or attribute does
not fuse."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import fusion, plan
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(41)


def block(channels=32, squeezed=8, size=7, *, activation="Swish", gate="Sigmoid", axes=(2, 3),
          group=1, gate_read_twice=False, multiply_other=False, dtype=np.float32,
          biases=True):  # fmt: skip
    """A depthwise convolution, then a squeeze-excite block on its result, then a 1x1
    projection (EfficientNet's inverted residual, without the expansion)."""
    g = GraphBuilder(opset=24)
    elem = "double" if dtype == np.float64 else "float"
    x = g.input("x", elem, [2, channels, size, size])
    w = RNG.standard_normal((channels, 1, 3, 3)).astype(dtype)
    y = g.op.Conv(x, w, RNG.standard_normal(channels).astype(dtype), group=channels,
                  pads=[1, 1, 1, 1])  # fmt: skip
    m = g.op.ReduceMean(y, np.array(axes, np.int64), keepdims=1)
    w1 = (RNG.standard_normal((squeezed, channels // group, 1, 1)) * 0.3).astype(dtype)
    w2 = (RNG.standard_normal((channels, squeezed, 1, 1)) * 0.3).astype(dtype)
    b1 = RNG.standard_normal(squeezed).astype(dtype) if biases else None
    b2 = RNG.standard_normal(channels).astype(dtype) if biases else None
    extra = {"group": group} if group != 1 else {}
    s = g.op.Conv(m, w1, *([b1] if biases else []), **extra)
    s = g.op.Swish(s) if activation == "Swish" else g.op.Relu(s)
    e = g.op.Conv(s, w2, *([b2] if biases else []))
    gated = g.op.Sigmoid(e) if gate == "Sigmoid" else g.op.HardSigmoid(e)
    scaled = g.op.Mul(x if multiply_other else y, gated)
    w3 = (RNG.standard_normal((16, channels, 1, 1)) * 0.2).astype(dtype)
    g.output(g.op.Conv(scaled, w3), "out")
    if gate_read_twice:
        g.output(gated, "gate")
    return g.model()


def _ops(session):
    return [step.node.op_type for step in session._plan.steps]


def _runs(model, x, threads=1):
    fused = onyx.InferenceSession(model, intra_op_num_threads=threads)
    plain = onyx.InferenceSession(
        model, SessionOptions(graph_optimization_level=0, intra_op_num_threads=threads)
    )
    return fused, fused.run(None, {"x": x}), plain.run(None, {"x": x})


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize(("activation", "gate"), [("Swish", "Sigmoid"), ("Relu", "HardSigmoid")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_squeeze_excite_block_runs_as_one_step(threads, activation, gate, dtype):
    model = block(activation=activation, gate=gate, dtype=dtype)
    x = RNG.standard_normal((2, 32, 7, 7)).astype(dtype)
    fused, got, want = _runs(model, x, threads)
    assert _ops(fused) == ["Conv", "Mul", "Conv"]
    assert isinstance(fused._plan.steps[1].fn, fusion.SqueezeExcite)
    assert got[0].dtype == want[0].dtype == dtype
    np.testing.assert_array_equal(got[0], want[0])  # the same kernels' values


def test_the_block_fuses_in_efficientnet_order_without_biases():
    model = block(biases=False, axes=(-1, -2))
    x = RNG.standard_normal((2, 32, 7, 7)).astype(np.float32)
    fused, got, want = _runs(model, x)
    assert _ops(fused) == ["Conv", "Mul", "Conv"]
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize(
    "change",
    [
        {"axes": (3,)},  # a mean over the rows only
        {"axes": (2,)},
        {"group": 2},  # a grouped squeeze convolution
        {"gate_read_twice": True},  # the gate is also an output
        {"multiply_other": True},  # the gate scales another tensor than the one squeezed
    ],
)
def test_a_block_with_one_wrong_edge_or_attribute_stays_steps(change):
    model = block(**change)
    x = RNG.standard_normal((2, 32, 7, 7)).astype(np.float32)
    fused, got, want = _runs(model, x)
    assert "ReduceMean" in _ops(fused) and "Sigmoid" in _ops(fused)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_an_input_the_block_was_not_matched_for_runs_the_steps_as_they_were():
    model = block()
    session = onyx.InferenceSession(model)
    step = session._plan.steps[1]
    assert isinstance(step.fn, fusion.SqueezeExcite)
    y = RNG.standard_normal((2, 32, 7, 7)).astype(np.float32)
    np.testing.assert_array_equal(step.fn(y), step.fn._as_steps(y))  # the two ways agree
    narrow = y[:, :16].copy()  # fewer channels than the weights': the steps' own error
    with pytest.raises(onyx.OnyxError, match="channels"):
        step.fn(narrow)


def test_the_fusion_can_be_switched_off_for_comparison(monkeypatch):
    monkeypatch.setattr(plan, "fuse_squeeze_excites", lambda steps, *args: steps)
    session = onyx.InferenceSession(block())
    assert "ReduceMean" in _ops(session)
