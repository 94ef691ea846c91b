"""Convolutions by a weight packed once (kernels/conv.py): on numba's threads a 1x1 convolution at
least 64 deep runs as Y^T = X^T W^T (``conv_packed_pointwise``) and one of the im2col or
shift-and-add paths at least 16 deep as Y^T = R W^T, R its patches read where they lie in the
input (``conv_packed_columns``), on onyx's own GEMM, W packed once, the tiles stored transposed
into Y's planes. (``conv_planes``, which takes some of the same 1x1 layers first, is off here:
test_conv_planes.py covers it.) In sessions built from small graphs (so W is an initializer,
read-only) the outputs agree with a float64 reference, with the epilogue fused or not, into a
Concat's buffer, from an NCHW input and from a channel-last one, over a batch, with strides,
padding and dilations; the same bits from run to run, and equal pixels give equal outputs
wherever they fall in the GEMM's tiles. Shallow convolutions, writeable weights, the other paths'
layers and the numpy paths leave them alone."""

from __future__ import annotations

import numpy as np
import pytest
from conv_harness import activation, after, close, count_paths, new_session, reference

from onyx.build import GraphBuilder
from onyx.runtime import compiled, threads
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels import conv as conv_module

pytestmark = pytest.mark.usefixtures("both_paths", "no_planes")  # numpy and compiled kernels


@pytest.fixture
def no_planes(monkeypatch):
    """``conv_planes`` off, so that the layers it would take here run these paths
    (test_conv_planes.py covers it)."""
    monkeypatch.setattr(conv_module, "_PLANES_DEPTH", 0)
    monkeypatch.setattr(conv_module, "_PLANES_PIXELS", 1 << 62)

RNG = np.random.default_rng(17)


def _weight(*shape, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _pointwise(x, w, b=None):
    """The 1x1 convolution in float64: (N, C, H, W) by (M, C, 1, 1)."""
    y = np.einsum("nchw,mc->nmhw", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    return y if b is None else y + b.astype(np.float64)[None, :, None, None]






@pytest.fixture
def taken(monkeypatch):
    """How many convolutions each packed path computed (conv_harness.count_paths)."""
    return count_paths(monkeypatch)






@pytest.mark.parametrize(
    "c, m, size, batch, kind, bias",
    [
        (96, 24, 14, 1, "none", True),  # MobileNetV2's first projection, smaller plane
        (64, 384, 7, 1, "clip", True),  # its widening layer: split by output channels
        (144, 32, 9, 2, "relu", True),  # 81 pixels: tiles of 6 and 7 rows, two images
        (192, 64, 7, 1, "clip", False),  # 49 pixels, no bias
        (256, 32, 12, 1, "swish", True),  # EfficientNet's activation after the product
        (512, 64, 6, 1, "relu", True),  # 36 pixels, deep
    ],
)  # fmt: skip
def test_packed_pointwise_convolution_matches_float64(c, m, size, batch, kind, bias, taken):
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    w, b = _weight(m, c, 1, 1), _weight(m) if bias else None
    y = g.op.Conv(x, w, b) if bias else g.op.Conv(x, w)
    g.output(activation(g, y, kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    session = new_session(g.model())
    got = session.run(None, {"x": feed})[0]
    close(got, after(_pointwise(feed, w, b), kind))
    assert taken["pointwise"] == (1 if taken["possible"] else 0)
    again = session.run(None, {"x": feed})[0]
    np.testing.assert_array_equal(again, got)  # the same bits run after run


def test_packed_pointwise_convolution_gives_equal_pixels_equal_outputs(taken):
    """Every pixel equal: each output channel's plane is constant, whichever tile of 6 or 7
    rows (and whichever thread) computed each pixel. (BLAS's W X makes no such promise: its
    kernels round a column by its place in a tile; there the plane is constant to rounding.)"""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 160, 10, 10])
    g.output(g.op.Conv(x, _weight(40, 160, 1, 1), _weight(40)), "y")
    feed = np.broadcast_to(RNG.standard_normal((1, 160, 1, 1)), (1, 160, 10, 10))
    got = new_session(g.model()).run(None, {"x": np.ascontiguousarray(feed, np.float32)})[0]
    assert taken["pointwise"] == (1 if taken["possible"] else 0)
    if taken["possible"]:
        assert (got == got[:, :, :1, :1]).all()
    else:
        plane = np.broadcast_to(got[:, :, :1, :1], got.shape)
        np.testing.assert_allclose(got, plane, rtol=0, atol=1e-6 * np.abs(got).max())


def test_packed_pointwise_convolutions_write_into_a_concat(taken):
    """A fire module's shape turned around: two 1x1 convolutions of one input, their results
    concatenated (the plan hands each its slice of the Concat's output)."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 128, 13, 13])
    w1, b1, w2, b2 = _weight(16, 128, 1, 1), _weight(16), _weight(48, 128, 1, 1), _weight(48)
    a = g.op.Relu(g.op.Conv(x, w1, b1))
    b = g.op.Relu(g.op.Conv(x, w2, b2))
    g.output(g.op.Concat(a, b, axis=1), "y")
    feed = RNG.standard_normal((1, 128, 13, 13)).astype(np.float32)
    got = new_session(g.model()).run(None, {"x": feed})[0]
    want = np.concatenate([after(_pointwise(feed, w1, b1), "relu"),
                           after(_pointwise(feed, w2, b2), "relu")], axis=1)  # fmt: skip
    close(got, want)
    assert taken["pointwise"] == (2 if taken["possible"] else 0)


def test_projection_of_a_channel_last_depthwise_output_reads_it_as_it_is(taken):
    """MobileNetV2's block on a 14x14 plane: the depthwise convolution hands the projection a
    channel-last view, which the product by the packed weight reads row by row as it is."""
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
        got = new_session(g.model()).run(None, {"x": feed})[0]
    # the reference: the same steps in float64
    e64 = np.clip(_pointwise(feed, we, be), 0, 6)
    padded = np.pad(e64, ((0, 0), (0, 0), (1, 1), (1, 1)))
    d64 = sum(padded[:, :, i : i + 14, j : j + 14] * wd[None, :, 0, i, j, None, None]
              for i in range(3) for j in range(3))  # fmt: skip
    d64 = np.clip(d64 + bd[None, :, None, None], 0, 6)
    close(got, _pointwise(d64.astype(np.float32), wp, bp) + feed)
    assert taken["pointwise"] == (1 if taken["possible"] else 0)
    if taken["possible"]:
        assert any(seen)  # the projection's input was channel-last


def test_shallow_convolutions_and_writeable_weights_keep_their_paths(taken):
    """A 1x1 convolution under 64 deep stays on BLAS's W X; a weight that is a feed (writeable,
    so it may change between calls) is never packed."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 32, 14, 14])
    w = _weight(128, 32, 1, 1)
    g.output(g.op.Conv(x, w), "y")
    feed = RNG.standard_normal((1, 32, 14, 14)).astype(np.float32)
    close(new_session(g.model()).run(None, {"x": feed})[0], _pointwise(feed, w))
    assert taken["pointwise"] == 0

    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 128, 14, 14])
    wf = g.input("w", "float", [16, 128, 1, 1])
    g.output(g.op.Conv(x, wf), "y")
    w = _weight(16, 128, 1, 1)
    feed = RNG.standard_normal((1, 128, 14, 14)).astype(np.float32)
    close(new_session(g.model()).run(None, {"x": feed, "w": w})[0], _pointwise(feed, w))
    assert taken["pointwise"] == 0


def test_packed_pointwise_pays_only_where_it_should():
    pays = conv_module.packed_pointwise_pays
    plan = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 192, 28, 28), (32, 192, 1, 1))
    assert pays(plan, 1, (32, 192, 1, 1), np.float32)
    assert pays(plan, 1, (512, 192, 1, 1), np.float32)  # (widening too)
    assert not pays(plan, 1, (32, 192, 1, 1), np.float64)
    shallow = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 32, 28, 28), (16, 32, 1, 1))
    assert not pays(shallow, 1, (16, 32, 1, 1), np.float32)  # C < 64
    strided = conv_module.Conv(kernel_shape=[1, 1], strides=[2, 2]).geom.plan(
        (1, 192, 28, 28), (32, 192, 1, 1)
    )
    assert not pays(strided, 1, (32, 192, 1, 1), np.float32)
    tiny = conv_module.Conv(kernel_shape=[1, 1]).geom.plan((1, 192, 5, 5), (32, 192, 1, 1))
    assert not pays(tiny, 1, (32, 192, 1, 1), np.float32)  # 25 pixels


def test_packed_columns_pay_only_where_they_should(monkeypatch):
    pays = conv_module.packed_columns_pay
    conv = conv_module.Conv(kernel_shape=[7, 7], pads=[3, 3, 3, 3], strides=[2, 2])
    stem = conv.geom.plan((1, 3, 224, 224), (64, 3, 7, 7))
    assert pays("blocked", stem, 1, (64, 3, 7, 7), np.float32)  # 147 deep
    wide = conv.geom.plan((1, 8, 224, 224), (64, 8, 7, 7))
    assert pays("blocked", wide, 1, (64, 8, 7, 7), np.float32)
    three = conv_module.Conv(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    # (Winograd's layers under _OVER_WINOGRAD channels: by default 128 on AVX-512 hosts, where
    # the packed path beat Winograd there, and none on AVX2 ones)
    resnet = three.geom.plan((1, 64, 56, 56), (64, 64, 3, 3))
    monkeypatch.setattr(conv_module, "_OVER_WINOGRAD", 128)
    assert pays("winograd", resnet, 1, (64, 64, 3, 3), np.float32)
    assert not pays("winograd", three.geom.plan((1, 128, 28, 28), (128, 128, 3, 3)), 1,
                    (128, 128, 3, 3), np.float32)  # fmt: skip
    monkeypatch.setattr(conv_module, "_OVER_WINOGRAD", None)
    avx512 = threads.native() is not None and threads.native().kernels.WIDE
    assert pays("winograd", resnet, 1, (64, 64, 3, 3), np.float32) == avx512
    assert not pays("other", wide, 1, (64, 8, 7, 7), np.float64)
    shallow = conv_module.Conv(kernel_shape=[3, 3]).geom.plan((1, 1, 28, 28), (16, 1, 3, 3))
    assert not pays("other", shallow, 1, (16, 1, 3, 3), np.float32)  # 9 deep




@pytest.mark.parametrize(
    "c, m, size, kernel, pads, strides, dilations, batch, kind",
    [
        (32, 128, 27, 3, [1, 1, 1, 1], [1, 1], [1, 1], 1, "relu"),  # squeezenet's expand
        (16, 32, 14, 5, [2, 2, 2, 2], [1, 1], [1, 1], 1, "none"),  # inception v1's 5x5
        (80, 96, 10, 5, [2, 2, 2, 2], [1, 1], [1, 1], 2, "relu"),  # two images
        (32, 48, 15, 3, [1, 0, 1, 0], [2, 2], [1, 1], 1, "clip"),  # strided, uneven padding
        (40, 48, 12, 3, [2, 1, 2, 1], [1, 1], [2, 1], 1, "swish"),  # dilated, unevenly
        (3, 64, 38, 7, [3, 3, 3, 3], [2, 2], [1, 1], 1, "relu"),  # ResNet-50's stem
        (8, 24, 17, 3, [0, 0, 0, 0], [1, 1], [1, 1], 1, "none"),  # no padding
    ],
)  # fmt: skip
@pytest.mark.parametrize("moved", [False, True])  # (NCHW patches read in place; moved channel-last)
def test_packed_columns_convolution_matches_float64(
    c, m, size, kernel, pads, strides, dilations, batch, kind, moved, taken, monkeypatch
):
    monkeypatch.setattr(conv_module, "_LAST_PATCHES", moved)
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    w, b = _weight(m, c, kernel, kernel), _weight(m)
    y = g.op.Conv(x, w, b, pads=pads, strides=strides, dilations=dilations)
    g.output(activation(g, y, kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    session = new_session(g.model())
    got = session.run(None, {"x": feed})[0]
    close(got, after(reference(feed, w, b, pads, strides, dilations), kind))
    assert taken["columns"] == (1 if taken["possible"] else 0)
    np.testing.assert_array_equal(session.run(None, {"x": feed})[0], got)


@pytest.mark.parametrize("c", [3, 16])
def test_packed_columns_move_an_image_channel_last_unless_a_stem_on_avx512(c, taken, monkeypatch):
    """``_LAST_PATCHES`` None: an NCHW image is moved channel-last into its border before its
    patches are read (``pad_last_bands``), but on AVX-512 hosts one of fewer than
    _LAST_PATCHES_DEPTH channels (a stem of 3) is read in place (``pad_bands``)."""
    native = threads.native()
    calls = {"pad_last_bands": 0, "pad_bands": 0}
    if native is not None:
        for name in calls:
            original = getattr(native.kernels, name)

            def counted(*args, _original=original, _name=name):
                calls[_name] += 1
                return _original(*args)

            monkeypatch.setattr(native.kernels, name, counted)
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, c, 20, 20])
    w, b = _weight(32, c, 3, 3), _weight(32)
    g.output(g.op.Relu(g.op.Conv(x, w, b, pads=[1, 1, 1, 1])), "y")
    feed = RNG.standard_normal((1, c, 20, 20)).astype(np.float32)
    close(new_session(g.model()).run(None, {"x": feed})[0],
          after(reference(feed, w, b, [1, 1, 1, 1]), "relu"))  # fmt: skip
    wide = native is not None and native.kernels.WIDE
    moved = taken["columns"] == 1 and (not wide or c >= conv_module._LAST_PATCHES_DEPTH)
    assert calls["pad_last_bands"] == (1 if moved else 0)
    assert calls["pad_bands"] == (1 if taken["columns"] == 1 and not moved else 0)
    if wide and taken["possible"]:  # (AVX2 hosts take the stem by im2col's columns)
        assert taken["columns"] == 1


def test_packed_columns_take_the_shift_and_add_layers_and_stems_not_winograd(taken):
    """With the compiled kernels (where Winograd runs), Winograd's layer of 128 channels
    (ResNet-50's at 28x28) keeps its path; a 3x3 stem of 3 channels (27 terms) and Winograd's
    layer of 64 (ResNet-50's at 56x56) take the packed one on AVX-512 hosts only
    (``_PACKED_COLUMNS_DEPTH``, ``_OVER_WINOGRAD``; im2col's and Winograd's on AVX2);
    squeezenet's 32 -> 128 and the shift-and-add's densenet121 128 -> 32 take it everywhere,
    and its outputs agree."""
    pays = conv_module.packed_columns_pay
    conv = conv_module.Conv(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    layers = [((1, 128, 28, 28), (128, 128, 3, 3)), ((1, 64, 56, 56), (64, 64, 3, 3)),
              ((1, 128, 28, 28), (32, 128, 3, 3)), ((1, 3, 64, 64), (16, 3, 3, 3)),
              ((1, 32, 27, 27), (128, 32, 3, 3))]  # fmt: skip
    if compiled.enabled:
        for x_shape, w_shape in layers:
            plan = conv.geom.plan(x_shape, w_shape)
            route = conv._route(plan, x_shape, w_shape, np.float32)
            kept = w_shape == (128, 128, 3, 3)  # (Winograd's)
            if w_shape in ((64, 64, 3, 3), (16, 3, 3, 3)):  # (Winograd's, im2col's on AVX2)
                kept = not (threads.native() is not None and threads.native().kernels.WIDE)
            assert pays(route, plan, 1, w_shape, np.float32) == (not kept), route
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 128, 28, 28])
    w = _weight(32, 128, 3, 3)
    g.output(g.op.Conv(x, w, pads=[1, 1, 1, 1]), "y")
    feed = RNG.standard_normal((1, 128, 28, 28)).astype(np.float32)
    got = new_session(g.model()).run(None, {"x": feed})[0]
    close(got, reference(feed, w, None, [1, 1, 1, 1], [1, 1], [1, 1]))
    assert taken["columns"] == (1 if taken["possible"] else 0)


def test_packed_columns_read_a_channel_last_input_as_it_is(taken):
    """Given a channel-last view (a (N, C, H, W) view of a (N, H, W, C) array, as the plan's
    channel-last convolutions hand over), the patches are made from it without a transpose;
    strided, with a bias, two images. (On the numpy paths, no numba threads: declined.)"""
    xl = RNG.standard_normal((2, 11, 11, 96)).astype(np.float32)
    x = xl.transpose(0, 3, 1, 2)
    w, b = _weight(40, 96, 3, 3), _weight(40)
    conv = conv_module.Conv(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    plan = conv.geom.plan(x.shape, w.shape)
    epilogue = Epilogue()
    epilogue.prepare((2, 40, *plan[5]), np.float32, b)
    last = conv_module.last_weight(w, np.float32)
    seen = []
    original = conv_module.channels_last
    with pytest.MonkeyPatch.context() as patch, threads.Threads(2)():
        patch.setattr(conv_module, "channels_last",
                      lambda a: seen.append(original(a) is not None) or original(a))  # fmt: skip
        got = conv_module.conv_packed_columns(x, lambda: last, threads.PackedWeight(), plan,
                                              epilogue)  # fmt: skip
    if not taken["possible"]:
        assert got is None
        return
    assert seen == [True]
    close(got, reference(np.ascontiguousarray(x), w, b, [1, 1, 1, 1], [2, 2], [1, 1]))


def test_packed_paths_decline_outside_numba_threads():
    """Called with no session's pool (or a pool of Python threads) they hand the convolution
    back (None) for the other paths."""
    x = RNG.standard_normal((1, 128, 8, 8)).astype(np.float32)
    w = _weight(16, 128, 1, 1)
    w3 = _weight(16, 128, 3, 3)
    plan = conv_module.Conv(kernel_shape=[1, 1]).geom.plan(x.shape, w.shape)
    plan3 = conv_module.Conv(kernel_shape=[3, 3], pads=[1, 1, 1, 1]).geom.plan(x.shape, w3.shape)
    last, last3 = conv_module.last_weight(w, np.float32), conv_module.last_weight(w3, np.float32)
    epilogue = Epilogue()
    epilogue.prepare((1, 16, 8, 8), np.float32)

    def both():
        return (
            conv_module.conv_packed_pointwise(x, lambda: last, threads.PackedWeight(), plan,
                                              epilogue),
            conv_module.conv_packed_columns(x, lambda: last3, threads.PackedWeight(), plan3,
                                            epilogue),
        )  # fmt: skip

    assert both() == (None, None)
    with threads.Threads(2, native_threads=False)():
        assert both() == (None, None)


def test_half_precision_models_keep_their_dtype(taken):
    """float16 convolutions compute in float32 (conv.compute_dtype), on the packed paths too,
    and give float16 back."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float16", [1, 96, 10, 10])
    w1, w3 = _weight(48, 96, 1, 1).astype(np.float16), _weight(32, 48, 3, 3).astype(np.float16)
    g.output(g.op.Conv(g.op.Conv(x, w1), w3, pads=[1, 1, 1, 1]), "y")
    feed = RNG.standard_normal((1, 96, 10, 10)).astype(np.float16)
    got = new_session(g.model()).run(None, {"x": feed})[0]
    assert got.dtype == np.float16
    middle = _pointwise(feed, w1.astype(np.float32)).astype(np.float16)
    want = reference(middle, w3.astype(np.float32), None, [1, 1, 1, 1], [1, 1], [1, 1])
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=5e-3 * np.abs(want).max())
    assert (taken["pointwise"], taken["columns"]) == ((1, 1) if taken["possible"] else (0, 0))
