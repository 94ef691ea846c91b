"""Build-time fusion: every fused plan computes what the plan without optimizations computes."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import widen

import onyx
from onyx.build import GraphBuilder
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(5)


def both_ways(model: onyx.ir.Model, feeds: dict, rtol=1e-5, atol=1e-6) -> onyx.InferenceSession:
    """Run ``model`` fused and unfused, check they agree, and return the fused session."""
    fused = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    kept = {k: v.copy() for k, v in feeds.items()}
    for got, want in zip(fused.run(None, feeds), plain.run(None, feeds)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(widen(got), widen(want), rtol=rtol, atol=atol)
    for name, value in feeds.items():  # nothing was written into a feed
        np.testing.assert_array_equal(value, kept[name])
    return fused


def op_types(session: onyx.InferenceSession) -> list[str]:
    return [step.node.op_type for step in session._plan.steps]


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_conv_folds_batchnorm_and_per_channel_scale_and_shift_then_takes_the_relu():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 3, 9, 9])
    y = g.op.Conv(x, f32(4, 3, 3, 3), f32(4), pads=[1, 1, 1, 1])
    y = g.op.BatchNormalization(y, f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.5)
    y = g.op.Mul(y, f32(4, 1, 1))
    y = g.op.Add(f32(1, 4, 1, 1), y)
    g.output(g.op.Relu(y), "y")
    session = both_ways(g.model(), {"x": f32(1, 3, 9, 9)})
    assert op_types(session) == ["Conv"]


def test_elementwise_run_after_a_shared_value_is_one_out_of_place_chain():
    # densenet's shape: the concatenated features feed the next Concat and a BN-Mul-Add-Relu run
    g = GraphBuilder(opset=21)
    a, b = g.input("a", "float", [1, 3, 4, 5]), g.input("b", "float", [1, 2, 4, 5])
    both = g.op.Concat(a, b, axis=1)
    y = g.op.BatchNormalization(both, f32(5), f32(5), f32(5), np.abs(f32(5)) + 0.5)
    y = g.op.Relu(g.op.Add(g.op.Mul(y, f32(5, 1, 1)), f32(5, 1, 1)))
    g.output(y, "y")
    g.output(g.op.Concat(both, a, axis=1), "z")
    session = both_ways(g.model(), {"a": f32(1, 3, 4, 5), "b": f32(1, 2, 4, 5)})
    assert op_types(session) == ["Concat", "BatchNormalization", "Concat"]


def test_residual_add_and_relu_run_inside_the_convolution():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 4, 6, 6])
    y = g.op.Conv(x, f32(4, 4, 1, 1), f32(4))
    g.output(g.op.Relu(g.op.Add(x, y)), "y")  # the residual comes first: Add commutes
    session = both_ways(g.model(), {"x": f32(2, 4, 6, 6)})
    assert op_types(session) == ["Conv"]


@pytest.mark.parametrize(
    "shape, other",
    [
        ((2, 3, 4), (3, 1)),  # (3, 1) is per channel only for rank 3: here it is, along axis 1
        ((2, 4, 3, 5), (3, 1)),  # rank 4: it lies along axis 2, not per channel
        ((3, 4), (3, 1)),  # rank 2: the same constant runs down the rows instead
        ((1, 3), (2, 3)),  # the other operand is larger: the result grows, not in place
    ],
)
def test_followers_that_cannot_run_in_place_fall_back_to_their_kernels(shape, other):
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", list(shape))
    y = g.op.Mul(g.op.Neg(x), f32(*other))
    g.output(g.op.Relu(g.op.Add(y, f32(*other))), "y")
    both_ways(g.model(), {"x": f32(*shape)})


def test_half_precision_chains_keep_the_kernels_rounding():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float16", [2, 3, 4])
    y = g.op.Add(g.op.Mul(g.op.Neg(x), f32(3, 1).astype(np.float16)), f32(3, 1).astype("f2"))
    g.output(g.op.Relu(y), "y")
    both_ways(g.model(), {"x": f32(2, 3, 4).astype(np.float16)}, rtol=0, atol=0)


def test_runtime_operand_of_another_shape_is_not_written_in_place():
    g = GraphBuilder(opset=21)
    x, w = g.input("x", "float", [1, 3]), g.input("w", "float", [2, 3])
    g.output(g.op.Relu(g.op.Add(g.op.Neg(x), w)), "y")
    session = both_ways(g.model(), {"x": f32(1, 3), "w": f32(2, 3)})
    assert session.run(None, {"x": f32(1, 3), "w": f32(2, 3)})[0].shape == (2, 3)


def test_a_scalar_of_higher_rank_still_broadcasts_the_result_up():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 2, 5, 5])
    y = g.op.Conv(x, f32(3, 2, 3, 3))
    y = g.op.Mul(g.op.Add(y, np.float32(0.5).reshape(1, 1, 1, 1, 1)), np.float32(2))
    g.output(g.op.Mul(y, np.float32(3)), "y")
    session = both_ways(g.model(), {"x": f32(1, 2, 5, 5)})
    assert session.run(None, {"x": f32(1, 2, 5, 5)})[0].shape == (1, 1, 3, 3, 3)


def _dense_block(layers: int, growth: int = 2) -> onyx.ir.Model:
    """densenet's pattern: each layer concatenates new features after all the block's earlier
    ones, and reads the concatenation through BatchNormalization and Relu."""
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 3, "H", "W"])
    features, channels = x, 3
    for _ in range(layers):
        y = g.op.BatchNormalization(
            features, f32(channels), f32(channels), f32(channels), np.abs(f32(channels)) + 0.5
        )
        y = g.op.Conv(g.op.Relu(y), f32(growth, channels, 3, 3), pads=[1, 1, 1, 1])
        features = g.op.Concat(features, y, axis=1)
        channels += growth
    g.output(g.op.Relu(features), "y")
    return g.model()


@pytest.mark.parametrize("shape", [(1, 3, 5, 6), (2, 3, 4, 4)])
def test_a_dense_block_computes_the_same_fused_on_every_run(shape):
    model = _dense_block(4)
    both_ways(model, {"x": f32(*shape)})
    session = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    for size in (shape, shape[:2] + (shape[2] + 3, shape[3] + 1), shape):
        x = f32(*size)
        first, again = session.run(None, {"x": x}), session.run(None, {"x": x})
        np.testing.assert_allclose(first[0], plain.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(first[0], again[0])


def test_fused_steps_keep_their_prepared_work_across_runs_and_switches():
    """An epilogue's preparation is kept between runs: other shapes, and the compiled kernels
    switched off and on between runs, still give the unfused results."""
    from onyx.runtime import compiled

    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 3, "H", "W"])
    y = g.op.Conv(x, f32(4, 3, 3, 3), f32(4), pads=[1, 1, 1, 1])
    g.output(g.op.Relu(g.op.Add(g.op.Mul(y, f32(4, 1, 1)), f32(4, 1, 1))), "y")
    model = g.model()
    session = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    # (atol: outputs reach ~10, and fused and plain Convs sum in different orders)
    for enabled, size in [(True, 6), (True, 9), (False, 6), (True, 6), (False, 9)]:
        compiled.enabled = enabled  # (restored by the both_paths fixture)
        x_ = f32(1, 3, size, size)
        np.testing.assert_allclose(
            session.run(None, {"x": x_})[0], plain.run(None, {"x": x_})[0], rtol=1e-5, atol=1e-4
        )


def _fire_module(dtype="float", group=1) -> onyx.ir.Model:
    """squeezenet's pattern: two Convs of one input, each with its Relu, concatenated."""
    g = GraphBuilder(opset=21)
    x = g.input("x", dtype, ["N", 4, "H", "W"])
    cast = (lambda a: a.astype(np.float16)) if dtype == "float16" else (lambda a: a)
    s = g.op.Relu(g.op.Conv(x, cast(f32(4, 4, 1, 1)), cast(f32(4))))
    a = g.op.Relu(g.op.Conv(s, cast(f32(3, 4, 1, 1)), cast(f32(3))))
    b = g.op.Relu(g.op.Conv(s, cast(f32(4, 4 // group, 3, 3)), pads=[1, 1, 1, 1], group=group))
    g.output(g.op.Concat(a, b, axis=1), "y")
    return g.model()


@pytest.mark.parametrize("shape", [(1, 4, 6, 7), (2, 4, 5, 5)])  # batch 2: the plain Concat
@pytest.mark.parametrize("dtype, group", [("float", 1), ("float", 4), ("float16", 1)])
def test_convs_feeding_only_a_concat_compute_into_its_result(shape, dtype, group):
    model = _fire_module(dtype, group)
    x = f32(*shape).astype(np.float16 if dtype == "float16" else np.float32)
    tolerance = {"rtol": 2e-3, "atol": 2e-3} if dtype == "float16" else {}
    session = both_ways(model, {"x": x}, **tolerance)
    assert [type(step.fn).__name__ for step in session._plan.steps][-1] == "GatheredConcat"
    assert op_types(session) == ["Conv", "Concat"]


def test_a_conv_result_read_elsewhere_too_is_not_computed_into_the_concat():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 2, 5, 5])
    a = g.op.Conv(x, f32(3, 2, 1, 1))
    b = g.op.Conv(x, f32(2, 2, 3, 3), pads=[1, 1, 1, 1])
    g.output(g.op.Concat(a, b, axis=1), "y")
    g.output(g.op.Relu(a), "z")
    session = both_ways(g.model(), {"x": f32(1, 2, 5, 5)})
    assert op_types(session) == ["Conv", "Conv", "Concat", "Relu"]


def test_a_gathered_conv_that_fails_is_named_in_the_error():
    g = GraphBuilder(opset=21)
    x, w = g.input("x", "float", [1, 2, 5, 5]), g.input("w", "float", [3, "C", 1, 1])
    a = g.op.Conv(x, f32(3, 2, 1, 1))
    b = g.op.Conv(x, w, name="second_conv")
    g.output(g.op.Concat(a, b, axis=1), "y")
    session = onyx.InferenceSession(g.model())
    assert op_types(session) == ["Concat"]
    with pytest.raises(onyx.errors.ExecutionError, match="second_conv"):
        session.run(None, {"x": f32(1, 2, 5, 5), "w": f32(3, 4, 1, 1)})  # 4 input channels


def test_convs_with_strides_dilations_and_auto_pad_compute_into_a_concat_on_a_negative_axis():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 3, 11, 11])
    a = g.op.Conv(x, f32(2, 3, 3, 3), strides=[2, 2], auto_pad="SAME_UPPER")
    b = g.op.Conv(x, f32(4, 3, 3, 3), f32(4), dilations=[2, 2], strides=[2, 2], pads=[2, 2, 2, 2])
    c = g.op.Conv(x, f32(3, 3, 1, 1), strides=[2, 2])
    g.output(g.op.Concat(a, b, c, axis=-3), "y")
    session = both_ways(g.model(), {"x": f32(1, 3, 11, 11)})
    assert op_types(session) == ["Concat"]
