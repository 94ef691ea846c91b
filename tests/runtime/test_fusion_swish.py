"""Swish (alpha 1) fused as a producer's epilogue (EfficientNet's activation after its
convolutions): the same values as the Swish kernel run after the Conv, on the numpy and the
compiled paths, on one thread and on the session's pool."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import widen

import onyx
from onyx.build import GraphBuilder
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(29)


def conv_swish(size: int, channels: int, depthwise: bool, alpha: float, dtype=np.float32):
    g = GraphBuilder(opset=24)
    elem = "double" if dtype == np.float64 else "float"
    x = g.input("x", elem, [1, channels, size, size])
    w = RNG.standard_normal((channels, 1 if depthwise else channels, 3, 3)).astype(dtype)
    b = RNG.standard_normal(channels).astype(dtype)
    y = g.op.Conv(x, w, b, pads=[1, 1, 1, 1], group=channels if depthwise else 1)
    g.output(g.op.Swish(y, alpha=alpha), "y")
    return g.model()


@pytest.mark.parametrize("threads", [1, 0])  # one thread; the default pool
@pytest.mark.parametrize("size, channels, depthwise", [(9, 8, False), (48, 16, False),
                                                       (56, 32, True), (14, 96, False)])  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_takes_a_swish(threads, size, channels, depthwise, dtype):
    model = conv_swish(size, channels, depthwise, 1.0, dtype)
    x = RNG.standard_normal((1, channels, size, size)).astype(dtype) * 4
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    fused = onyx.InferenceSession(model, intra_op_num_threads=threads)
    plain = onyx.InferenceSession(
        model, SessionOptions(graph_optimization_level=0, intra_op_num_threads=threads)
    )
    assert [step.node.op_type for step in fused._plan.steps] == ["Conv"]
    assert [step.node.op_type for step in plain._plan.steps] == ["Conv", "Swish"]
    got, want = fused.run(None, {"x": x})[0], plain.run(None, {"x": x})[0]
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(widen(got), widen(want))


def test_a_swish_of_another_alpha_stays_a_step():
    model = conv_swish(9, 8, False, 0.5)
    session = onyx.InferenceSession(model)
    assert [step.node.op_type for step in session._plan.steps] == ["Conv", "Swish"]
