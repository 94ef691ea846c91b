"""Squeeze-excite blocks as one step (fusion.fuse_squeeze_excites): EfficientNet's (Swish,
Sigmoid) and MobileNetV3's (Relu, HardSigmoid) fuse and give the values of the steps they
replace: the same bits on the numpy path (the same kernels), within the last bits on the
compiled one (its products sum in their own order), whose gates also match a float64
reference with NaN kept; a block with one wrong edge or attribute does not fuse."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import _jit, compiled, fusion, plan
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


def _agree(got, want):
    """The same bits on the numpy path; on the compiled one, within 64 units in the last place
    of the output's magnitude (compared in float64)."""
    if not compiled.enabled:
        np.testing.assert_array_equal(got, want)
        return
    step = float(np.finfo(want.dtype).eps) * float(np.abs(want).max())
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0,
                               atol=64 * step)  # fmt: skip


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
    _agree(got[0], want[0])


def test_the_block_fuses_in_efficientnet_order_without_biases():
    model = block(biases=False, axes=(-1, -2))
    x = RNG.standard_normal((2, 32, 7, 7)).astype(np.float32)
    fused, got, want = _runs(model, x)
    assert _ops(fused) == ["Conv", "Mul", "Conv"]
    _agree(got[0], want[0])


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


@pytest.mark.parametrize(
    ("size", "path"),
    [
        # planes larger than the depthwise Conv writes channel-last (conv._LAST_PLANE): NCHW
        (16, "_compiled"),
        # small ones: the depthwise Conv's result stays channel-last, and the block's too
        (7, "_channels_last"),
    ],
)
def test_the_compiled_paths_take_the_block_in_its_input_layout(monkeypatch, size, path):
    taken = []
    for name in ("_compiled", "_channels_last"):
        original = getattr(fusion.SqueezeExcite, name)
        monkeypatch.setattr(fusion.SqueezeExcite, name,
                            lambda self, *args, _o=original, _n=name: taken.append(_n)
                            or _o(self, *args))  # fmt: skip
    x = RNG.standard_normal((2, 32, size, size)).astype(np.float32)
    model = block(size=size)
    _, got, want = _runs(model, x, threads=0)
    assert taken == ([path] if compiled.enabled else [])
    _agree(got[0], want[0])


@pytest.mark.parametrize(
    ("change", "switch", "marked"),
    [({}, True, True), ({"gate_read_twice": True}, True, False), ({}, False, False)],
)
def test_a_depthwise_conv_before_a_block_before_a_projection_writes_channel_last(
    change, switch, marked, monkeypatch
):
    """The plan marks the depthwise Conv (``fusion.mark_channels_last``) where the block is
    fused and a pointwise Conv alone reads the block's result (an unfused block's ReduceMean
    reads NCHW), unless bench_switch.py turns that off (``_SQUEEZE_EXCITE_LAST``)."""
    monkeypatch.setattr(fusion, "_SQUEEZE_EXCITE_LAST", switch)
    session = onyx.InferenceSession(block(**change))
    depthwise = next(step.fn for step in session._plan.steps if isinstance(step.fn, fusion.Conv))
    assert depthwise.channels_last is marked


def test_channel_last_columns_match_numpy():
    """The channel-last block's kernels: each column's mean in pixel order (whole blocks of 16
    and a last part block) and each pixel's channels by their gates."""
    x = RNG.standard_normal((2, 30, 37)).astype(np.float32)
    means = np.full((2, 37), np.nan, np.float32)
    _jit.column_means(x, means, np.float32(30), 0, 37)
    np.testing.assert_allclose(means, x.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-6)
    gates = RNG.random((2, 37)).astype(np.float32)
    y = np.empty_like(x)
    _jit.by_columns(x, gates, y, 0, 60)
    np.testing.assert_array_equal(y, x * gates[:, None, :])


@pytest.mark.parametrize(("swish", "hard"), [(True, False), (False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_gates_match_float64(swish, hard, dtype):
    """_jit.squeeze_excite_gates against the steps' formulas in float64: HardSigmoid's alpha and
    beta taken as given, a mean of NaN giving NaN gates, Sigmoid held below overflow."""
    c, r = 40, 6
    means = (RNG.standard_normal((3, c)) * 3).astype(dtype)
    means[1, 3] = np.nan
    means[2, 5] = 1e4  # sums far past exp's range: Sigmoid held at its cap, gates in [0, 1]
    w1 = (RNG.standard_normal((c, r)) * 0.5).astype(dtype)
    w2 = (RNG.standard_normal((r, c)) * 0.5).astype(dtype)
    b1, b2 = RNG.standard_normal(r).astype(dtype), RNG.standard_normal(c).astype(dtype)
    alpha, beta, cap = dtype(0.25), dtype(0.4), dtype(88.7 if dtype == np.float32 else 709.7)
    gates = np.empty_like(means)
    with np.errstate(all="ignore"):
        _jit.squeeze_excite_gates(means, w1, b1, w2, b2, swish, hard, alpha, beta, cap, gates)
        hidden = means.astype(np.float64) @ w1.astype(np.float64) + b1
        hidden = hidden / (1 + np.exp(-hidden)) if swish else np.maximum(hidden, 0)
        v = hidden @ w2.astype(np.float64) + b2
        want = np.clip(0.25 * v + 0.4, 0, 1) if hard else 1 / (1 + np.exp(-v))
    assert np.isnan(gates[1]).all() and not np.isnan(gates[[0, 2]]).any()
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(gates[0], want[0], rtol=0, atol=64 * eps)
    assert ((gates[2] >= 0) & (gates[2] <= 1)).all()
    np.testing.assert_allclose(gates[2], want[2], rtol=0, atol=1e4 * 64 * eps)


def test_an_input_the_block_was_not_matched_for_runs_the_steps_as_they_were():
    model = block()
    session = onyx.InferenceSession(model)
    step = session._plan.steps[1]
    assert isinstance(step.fn, fusion.SqueezeExcite)
    y = RNG.standard_normal((2, 32, 7, 7)).astype(np.float32)
    _agree(step.fn(y), step.fn._as_steps(y))  # the two ways agree
    narrow = y[:, :16].copy()  # fewer channels than the weights': the steps' own error
    with pytest.raises(onyx.OnyxError, match="channels"):
        step.fn(narrow)


def test_the_fusion_can_be_switched_off_for_comparison(monkeypatch):
    monkeypatch.setattr(plan, "fuse_squeeze_excites", lambda steps, *args: steps)
    session = onyx.InferenceSession(block())
    assert "ReduceMean" in _ops(session)
