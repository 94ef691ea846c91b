"""1x1 convolutions that narrow (kernels/conv.py, ``conv_narrowing``): on numba's threads they run
as Y^T = X^T W^T on onyx's own GEMM, W packed once, the tiles stored transposed into Y's planes.
In sessions built from small graphs (so W is an initializer, read-only) the outputs agree with a
float64 reference, with the epilogue fused or not, into a Concat's buffer, from an NCHW input and
from a channel-last one, over a batch; the same bits from run to run, and equal pixels give equal
outputs wherever they fall in the GEMM's tiles. Widening convolutions, writeable weights and the
numpy paths leave it alone."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import compiled, threads
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels import conv as conv_module
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(17)


def _weight(*shape, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _pointwise(x, w, b=None):
    """The 1x1 convolution in float64: (N, C, H, W) by (M, C, 1, 1)."""
    y = np.einsum("nchw,mc->nmhw", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    return y if b is None else y + b.astype(np.float64)[None, :, None, None]


def _after(y, kind):
    if kind == "relu":
        return np.maximum(y, 0)
    if kind == "clip":
        return np.clip(y, 0, 6)
    if kind == "swish":
        return y / (1 + np.exp(-y))
    return y


def _activation(g, y, kind):
    if kind == "relu":
        return g.op.Relu(y)
    if kind == "clip":
        return g.op.Clip(y, np.array(0, np.float32), np.array(6, np.float32))
    if kind == "swish":
        return g.op.Mul(y, g.op.Sigmoid(y))
    return y


@pytest.fixture
def taken(monkeypatch):
    """The number of convolutions ``conv_narrowing`` computed (returned a result for), and
    whether this run may take it at all: the compiled kernels on numba's threads, BLAS held."""
    count = {"narrowed": 0}
    original = conv_module.conv_narrowing

    def counted(*args, **kwargs):
        y = original(*args, **kwargs)
        count["narrowed"] += y is not None
        return y

    monkeypatch.setattr(conv_module, "conv_narrowing", counted)
    count["possible"] = (
        compiled.enabled and threads._BLAS.controllable() and threads.native() is not None
    )
    return count


def _session(model, threads_count=2):
    return onyx.InferenceSession(model, SessionOptions(intra_op_num_threads=threads_count))


def _close(got, want):
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=2e-6 * scale)


@pytest.mark.parametrize(
    "c, m, size, batch, kind, bias",
    [
        (96, 24, 14, 1, "none", True),  # MobileNetV2's first projection, smaller plane
        (144, 32, 9, 2, "relu", True),  # 81 pixels: tiles of 6 and 7 rows, two images
        (192, 64, 7, 1, "clip", False),  # 49 pixels, no bias
        (256, 32, 12, 1, "swish", True),  # EfficientNet's activation after the product
        (512, 64, 6, 1, "relu", True),  # 36 pixels, deep
    ],
)  # fmt: skip
def test_narrowing_convolution_matches_float64(c, m, size, batch, kind, bias, taken):
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    w, b = _weight(m, c, 1, 1), _weight(m) if bias else None
    y = g.op.Conv(x, w, b) if bias else g.op.Conv(x, w)
    g.output(_activation(g, y, kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    session = _session(g.model())
    got = session.run(None, {"x": feed})[0]
    _close(got, _after(_pointwise(feed, w, b), kind))
    assert taken["narrowed"] == (1 if taken["possible"] else 0)
    again = session.run(None, {"x": feed})[0]
    np.testing.assert_array_equal(again, got)  # the same bits run after run


def test_narrowing_convolution_gives_equal_pixels_equal_outputs(taken):
    """Every pixel equal: each output channel's plane is constant, whichever tile of 6 or 7
    rows (and whichever thread) computed each pixel. (BLAS's W X makes no such promise: its
    kernels round a column by its place in a tile; there the plane is constant to rounding.)"""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 160, 10, 10])
    g.output(g.op.Conv(x, _weight(40, 160, 1, 1), _weight(40)), "y")
    feed = np.broadcast_to(RNG.standard_normal((1, 160, 1, 1)), (1, 160, 10, 10))
    got = _session(g.model()).run(None, {"x": np.ascontiguousarray(feed, np.float32)})[0]
    assert taken["narrowed"] == (1 if taken["possible"] else 0)
    if taken["possible"]:
        assert (got == got[:, :, :1, :1]).all()
    else:
        plane = np.broadcast_to(got[:, :, :1, :1], got.shape)
        np.testing.assert_allclose(got, plane, rtol=0, atol=1e-6 * np.abs(got).max())


def test_narrowing_convolutions_write_into_a_concat(taken):
    """A fire module's shape turned around: two narrowing convolutions of one input, their
    results concatenated (the plan hands each its slice of the Concat's output)."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 128, 13, 13])
    w1, b1, w2, b2 = _weight(16, 128, 1, 1), _weight(16), _weight(48, 128, 1, 1), _weight(48)
    a = g.op.Relu(g.op.Conv(x, w1, b1))
    b = g.op.Relu(g.op.Conv(x, w2, b2))
    g.output(g.op.Concat(a, b, axis=1), "y")
    feed = RNG.standard_normal((1, 128, 13, 13)).astype(np.float32)
    got = _session(g.model()).run(None, {"x": feed})[0]
    want = np.concatenate([_after(_pointwise(feed, w1, b1), "relu"),
                           _after(_pointwise(feed, w2, b2), "relu")], axis=1)  # fmt: skip
    _close(got, want)
    assert taken["narrowed"] == (2 if taken["possible"] else 0)


def test_projection_of_a_channel_last_depthwise_output_narrows(taken):
    """MobileNetV2's block on a 14x14 plane: the depthwise convolution hands the projection a
    channel-last view, which the narrowing product reads row by row as it is."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 32, 14, 14])
    we, be = _weight(192, 32, 1, 1, scale=0.2), _weight(192)
    wd, bd = _weight(192, 1, 3, 3, scale=0.3), _weight(192)
    wp, bp = _weight(32, 192, 1, 1), _weight(32)
    e = g.op.Clip(g.op.Conv(x, we, be), np.array(0, np.float32), np.array(6, np.float32))
    d = g.op.Conv(e, wd, bd, group=192, pads=[1, 1, 1, 1])
    d = g.op.Clip(d, np.array(0, np.float32), np.array(6, np.float32))
    g.output(g.op.Add(g.op.Conv(d, wp, bp), x), "y")
    feed = RNG.standard_normal((1, 32, 14, 14)).astype(np.float32)
    seen = []
    original = conv_module.channels_last
    got = None

    def spied(array):
        found = original(array)
        seen.append(found is not None)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "channels_last", spied)
        got = _session(g.model()).run(None, {"x": feed})[0]
    # the reference: the same steps in float64
    e64 = np.clip(_pointwise(feed, we, be), 0, 6)
    padded = np.pad(e64, ((0, 0), (0, 0), (1, 1), (1, 1)))
    d64 = sum(padded[:, :, i : i + 14, j : j + 14] * wd[None, :, 0, i, j, None, None]
              for i in range(3) for j in range(3))  # fmt: skip
    d64 = np.clip(d64 + bd[None, :, None, None], 0, 6)
    _close(got, _pointwise(d64.astype(np.float32), wp, bp) + feed)
    assert taken["narrowed"] == (1 if taken["possible"] else 0)
    if taken["possible"]:
        assert any(seen)  # the projection's input was channel-last


def test_widening_convolutions_and_writeable_weights_keep_their_paths(taken):
    """A 1x1 convolution that widens stays on BLAS's W X; a weight that is a feed (writeable,
    so it may change between calls) is never packed."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 32, 14, 14])
    w = _weight(128, 32, 1, 1)
    g.output(g.op.Conv(x, w), "y")
    feed = RNG.standard_normal((1, 32, 14, 14)).astype(np.float32)
    _close(_session(g.model()).run(None, {"x": feed})[0], _pointwise(feed, w))
    assert taken["narrowed"] == 0

    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 128, 14, 14])
    wf = g.input("w", "float", [16, 128, 1, 1])
    g.output(g.op.Conv(x, wf), "y")
    w = _weight(16, 128, 1, 1)
    feed = RNG.standard_normal((1, 128, 14, 14)).astype(np.float32)
    _close(_session(g.model()).run(None, {"x": feed, "w": w})[0], _pointwise(feed, w))
    assert taken["narrowed"] == 0


def test_narrowing_pays_only_where_it_should():
    plan = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 192, 28, 28), (32, 192, 1, 1))
    assert conv_module.narrowing_pays(plan, 1, (32, 192, 1, 1), np.float32)
    assert not conv_module.narrowing_pays(plan, 1, (32, 192, 1, 1), np.float64)
    assert not conv_module.narrowing_pays(plan, 1, (128, 192, 1, 1), np.float32)  # C < 2M
    shallow = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 64, 28, 28), (16, 64, 1, 1))
    assert not conv_module.narrowing_pays(shallow, 1, (16, 64, 1, 1), np.float32)  # C < 96
    strided = conv_module.Conv(kernel_shape=[1, 1], strides=[2, 2]).geom.plan(
        (1, 192, 28, 28), (32, 192, 1, 1)
    )
    assert not conv_module.narrowing_pays(strided, 1, (32, 192, 1, 1), np.float32)
    tiny = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 192, 5, 5), (32, 192, 1, 1))
    assert not conv_module.narrowing_pays(tiny, 1, (32, 192, 1, 1), np.float32)  # 25 pixels


def test_conv_narrowing_declines_outside_numba_threads():
    """Called with no session's pool (or a pool of Python threads) it hands the convolution
    back (None) for the other paths."""
    x = RNG.standard_normal((1, 128, 8, 8)).astype(np.float32)
    w = _weight(16, 128, 1, 1)
    plan = conv_module.Conv(kernel_shape=[1, 1]).geom.plan(x.shape, w.shape)
    last = conv_module.last_weight(w, np.float32)
    epilogue = Epilogue()
    epilogue.prepare((1, 16, 8, 8), np.float32)
    assert conv_module.conv_narrowing(x, lambda: last, threads.PackedWeight(), plan,
                                      epilogue) is None  # fmt: skip
    with threads.Threads(2, native_threads=False)():
        assert conv_module.conv_narrowing(x, lambda: last, threads.PackedWeight(), plan,
                                          epilogue) is None  # fmt: skip
