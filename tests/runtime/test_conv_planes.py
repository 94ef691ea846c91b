"""Pointwise convolutions on NCHW planes by a weight packed in tiles of rows (kernels/conv.py
``conv_planes``, _jit_gemm.planes_product): each image's planes = W @ X on numba's threads; and
convolutions of few terms (3-channel stems) the same way by their patches gathered where they
lie (``conv_planes_patches``). In sessions built from small graphs (W an initializer,
read-only) the outputs agree with a float64 reference, fused epilogue or not, with output
channels that do not fill tiles of 6 and pixels that do not fill blocks of 32 (a last block of
one vector or two), a batch and a Concat's buffer, strides, dilations and uneven pads; the same
bits run after run and for equal pixels wherever they fall; the kernels' temporaries sit in
reused buffers (memory.scratch) without leaking into outputs; and the paths decline where they
do not apply."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conv_harness import activation, after, close, count_paths, new_session, reference

from onyx.build import GraphBuilder
from onyx.runtime import compiled, memory, threads
from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result
from onyx.runtime.kernels import conv as conv_module

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(23)


def _weight(*shape, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.fixture(autouse=True)
def pointwise_planes(monkeypatch):
    """The planes paths on whatever the host (by default the pointwise one runs on AVX-512
    hosts only, ``conv._PLANES``, and the gathered patches nowhere, ``_PLANES_PATCH_DEPTH``),
    so that their tests run everywhere: patches of up to 32 terms."""
    monkeypatch.setattr(conv_module, "_PLANES", True)
    monkeypatch.setattr(conv_module, "_PLANES_PATCH_DEPTH", 32)


@pytest.fixture
def taken(monkeypatch):
    """How many convolutions each packed path computed (conv_harness.count_paths)."""
    return count_paths(monkeypatch)


@pytest.mark.parametrize("setting", [None, False])
def test_pointwise_planes_are_taken_where_the_setting_says(setting, taken, monkeypatch):
    """``_PLANES``: None takes the planes path on AVX-512 hosts only (on AVX2 it lost
    to BLAS's and the packed products), False nowhere; either way the outputs agree with a
    float64 reference."""
    monkeypatch.setattr(conv_module, "_PLANES", setting)
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 16, 20, 20])
    w, b = _weight(64, 16, 1, 1), _weight(64)
    g.output(g.op.Relu(g.op.Conv(x, w, b)), "y")
    feed = RNG.standard_normal((1, 16, 20, 20)).astype(np.float32)
    close(new_session(g.model()).run(None, {"x": feed})[0], after(reference(feed, w, b), "relu"))
    wide = taken["possible"] and threads.native().kernels.WIDE
    assert taken["planes"] == (1 if setting is None and wide else 0)


@pytest.mark.parametrize(
    "c, m, size, batch, kind, bias",
    [
        (16, 64, 55, 1, "relu", True),  # squeezenet's expand: 3,025 pixels, a last block of 17
        (32, 13, 9, 2, "clip", True),  # 13 channels (tiles of 6, 6, 1); 81 pixels, two images
        (64, 256, 6, 1, "swish", True),  # 36 pixels: a last block of 4 (one vector)
        (3, 40, 8, 1, "none", False),  # three deep, no bias
        (300, 24, 23, 1, "relu", True),  # deeper than 256, 529 pixels
    ],
)  # fmt: skip
def test_pointwise_planes_match_float64(c, m, size, batch, kind, bias, taken):
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    w, b = _weight(m, c, 1, 1), _weight(m) if bias else None
    y = g.op.Conv(x, w, b) if bias else g.op.Conv(x, w)
    g.output(activation(g, y, kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    session = new_session(g.model())
    got = session.run(None, {"x": feed})[0]
    close(got, after(reference(feed, w, b), kind))
    assert taken["planes"] == (1 if taken["possible"] else 0)
    np.testing.assert_array_equal(session.run(None, {"x": feed})[0], got)  # run after run


@pytest.mark.parametrize(
    "c, m, size, strides, batch",
    [
        (64, 128, 28, 2, 1),  # ResNet's downsampling shortcut, scaled down: 196 pixels
        (24, 40, 15, 2, 2),  # an odd size (8 of 15 rows and columns), two images
        (32, 16, (12, 17), (3, 1), 1),  # unequal strides, a rectangle
    ],
)  # fmt: skip
def test_strided_pointwise_takes_the_planes_path_on_its_sampled_pixels(
    c, m, size, strides, batch, taken
):
    """A strided 1x1 convolution: the pixels it reads are copied out, then the planes path
    multiplies them (``Conv._strided_pointwise``), first call and later ones (its replay),
    each agreeing with a float64 reference for its own feed."""
    hw = (size, size) if isinstance(size, int) else size
    st = (strides, strides) if isinstance(strides, int) else strides
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, *hw])
    w, b = _weight(m, c, 1, 1), _weight(m)
    g.output(g.op.Relu(g.op.Conv(x, w, b, strides=list(st))), "y")
    session = new_session(g.model())
    for _ in range(3):
        feed = RNG.standard_normal((batch, c, *hw)).astype(np.float32)
        got = session.run(None, {"x": feed})[0]
        close(got, after(reference(feed, w, b, strides=st), "relu"))
    # (one image: the later calls replay the kernel itself, planes_replay)
    assert taken["planes"] == ((3 if batch > 1 else 1) if taken["possible"] else 0)


@pytest.mark.parametrize("kind", ["relu", "swish", "none"])
def test_later_calls_replay_the_planes_path_with_its_arguments_fixed(kind, taken, monkeypatch):
    """After a first call, a pointwise Conv on the planes path runs again by ``planes_replay``
    (the kernel called with the packed weight, bias and bounds fixed): each later run agrees
    with a float64 reference for its own feed, bit for bit with the first call's path."""
    made = []
    original = conv_module.planes_replay

    def recorded(*args):
        replay = original(*args)
        made.append(replay)
        return replay

    monkeypatch.setattr(conv_module, "planes_replay", recorded)
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 24, 20, 20])
    w, b = _weight(40, 24, 1, 1), _weight(40)
    g.output(activation(g, g.op.Conv(x, w, b), kind), "y")
    session = new_session(g.model())
    feeds = [RNG.standard_normal((1, 24, 20, 20)).astype(np.float32) for _ in range(3)]
    first = [session.run(None, {"x": f})[0] for f in feeds]
    for feed, got in zip(feeds, first):
        close(got, after(reference(feed, w, b), kind))
    assert len([r for r in made if r is not None]) == (1 if taken["possible"] else 0)
    monkeypatch.setattr(conv_module, "_LEAN", False)  # the path as kept before: the same bits
    conv_module.forget_replays()
    for feed, got in zip(feeds, first):
        np.testing.assert_array_equal(session.run(None, {"x": feed})[0], got)


@pytest.mark.parametrize(
    "c, m, size, batch, kind, path",
    [
        (32, 24, 28, 2, "none", "planes"),  # MobileNetV2's projection before its residual Add
        (64, 256, 14, 1, "relu", "planes"),  # ResNet's expansion: Add, then Relu
        (300, 20, 7, 1, "clip", "pointwise"),  # deeper than 256 on 49 pixels: transposed stores
        (320, 64, 6, 2, "none", "pointwise"),
        (32, 24, 28, 1, "swish", "planes"),  # the Swish after the residual, in the store
        (300, 20, 7, 1, "swish", "pointwise"),  # the Swish after the transposed stores
    ],
)  # fmt: skip
def test_residual_add_goes_into_the_stores(c, m, size, batch, kind, path, taken, monkeypatch):
    """Conv -> Add(a run-time tensor of Y's shape) -> activation: the Add in the packed
    products' stores (no pass of the epilogue over Y after them), the values as a float64
    reference's."""
    passes = []
    apply_all = Epilogue.apply_all
    monkeypatch.setattr(
        Epilogue, "apply_all", lambda self, y, *a: passes.append(y.shape) or apply_all(self, y, *a)
    )
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    r = g.input("r", "float", [batch, m, size, size])
    w, b = _weight(m, c, 1, 1), _weight(m)
    g.output(activation(g, g.op.Add(g.op.Conv(x, w, b), r), kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    residual = RNG.standard_normal((batch, m, size, size)).astype(np.float32)
    session = new_session(g.model())
    got = session.run(None, {"x": feed, "r": residual})[0]
    close(got, after(reference(feed, w, b) + residual, kind))
    if taken["possible"]:
        assert taken[path] == 1 and passes == []
    # another run's residual (the epilogue's memo keeps none of its own)
    other = RNG.standard_normal((batch, m, size, size)).astype(np.float32)
    got = session.run(None, {"x": feed, "r": other})[0]
    close(got, after(reference(feed, w, b) + other, kind))


def test_store_finish_takes_a_residual_only_laid_out_as_the_result():
    """``Epilogue.store_finish``: bias, residual and bounds as one ``threads.Finish`` where the
    residual is an array of the result's shape, C-contiguous; a channel-last view of one (its
    planes not rows of unit stride) or a broadcast one leaves the steps to the pass after."""
    shape = (1, 4, 3, 3)
    add = Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0)))
    relu = Follower(((np.maximum, None, False),), np.maximum, (Result(), 0))
    bias = np.arange(4, dtype=np.float32)
    dense = RNG.standard_normal(shape).astype(np.float32)
    epilogue = Epilogue([add, relu], [dense], memo={})
    assert epilogue.prepare(shape, np.float32, bias)
    finish, swish_after = epilogue.store_finish(shape)
    np.testing.assert_array_equal(finish.bias, bias)
    assert finish.residual.shape == shape and np.shares_memory(finish.residual, dense)
    assert (finish.lo, finish.hi, swish_after) == (0, np.inf, False)
    last = np.ascontiguousarray(dense.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    broadcast = RNG.standard_normal((1, 1, 3, 3)).astype(np.float32)
    for other in (last, broadcast):
        epilogue = Epilogue([add, relu], [other], memo={})
        assert epilogue.prepare(shape, np.float32, bias)
        assert epilogue.store_finish(shape) == (None, False)


def test_equal_pixels_give_equal_outputs(taken):
    """Every pixel equal: each output plane is constant, whichever block of 32 (two vectors or
    one) and whichever thread computed each pixel."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 48, 7, 7])  # 49 pixels: a block of 32, then one of 17
    g.output(g.op.Conv(x, _weight(20, 48, 1, 1), _weight(20)), "y")
    feed = np.broadcast_to(RNG.standard_normal((1, 48, 1, 1)), (1, 48, 7, 7))
    got = new_session(g.model()).run(None, {"x": np.ascontiguousarray(feed, np.float32)})[0]
    assert taken["planes"] == (1 if taken["possible"] else 0)
    if taken["possible"]:
        assert (got == got[:, :, :1, :1]).all()


def test_fire_module_writes_both_into_the_concat(taken):
    """squeezenet's fire module: a 1x1 and a 3x3 convolution of one input, concatenated (the
    plan hands each its slice of the Concat's output)."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 16, 33, 33])
    w1, b1, w3, b3 = _weight(64, 16, 1, 1), _weight(64), _weight(64, 16, 3, 3), _weight(64)
    a = g.op.Relu(g.op.Conv(x, w1, b1))
    b = g.op.Relu(g.op.Conv(x, w3, b3, pads=[1, 1, 1, 1]))
    g.output(g.op.Concat(a, b, axis=1), "y")
    feed = RNG.standard_normal((1, 16, 33, 33)).astype(np.float32)
    got = new_session(g.model()).run(None, {"x": feed})[0]
    want = np.concatenate([after(reference(feed, w1, b1), "relu"),
                           after(reference(feed, w3, b3, [1, 1, 1, 1]), "relu")], axis=1)  # fmt: skip
    close(got, want)
    # (the 3x3 one by its patches where they lie: conv_packed_columns)
    assert (taken["planes"], taken["columns"]) == ((1, 1) if taken["possible"] else (0, 0))


def test_reused_buffers_do_not_leak_into_outputs(taken):
    """Three convolutions, all outputs of the graph: two 3x3 ones of one input (the second
    reuses the first's zero-bordered copy of it, memory.scratch) and a pointwise one of the
    first's output; each output stays as computed."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 8, 40, 40])
    w1, w2, w3 = _weight(32, 8, 3, 3), _weight(40, 32, 1, 1), _weight(36, 8, 3, 3)
    first = g.op.Conv(x, w1, pads=[1, 1, 1, 1])
    g.output(first, "first")
    g.output(g.op.Conv(first, w2), "second")
    g.output(g.op.Conv(x, w3, pads=[1, 1, 1, 1]), "third")
    feed = RNG.standard_normal((1, 8, 40, 40)).astype(np.float32)
    got = new_session(g.model()).run(None, {"x": feed})
    want_first = reference(feed, w1, None, [1, 1, 1, 1])
    close(got[0], want_first)
    close(got[1], reference(want_first.astype(np.float32), w2, None))
    close(got[2], reference(feed, w3, None, [1, 1, 1, 1]))
    assert (taken["planes"], taken["columns"]) == ((1, 2) if taken["possible"] else (0, 0))


@pytest.mark.parametrize(
    "c, m, size, kernel, strides, pads, dilations, batch, kind",
    [
        (3, 32, 33, 3, 2, [1, 1, 1, 1], 1, 1, "clip"),  # MobileNetV2's stem, at 33x33
        (3, 64, 67, 3, 2, [0, 0, 0, 0], 1, 2, "relu"),  # squeezenet's (no padding), two images
        (3, 13, 20, 3, 1, [0, 1, 2, 0], 1, 1, "swish"),  # uneven pads; 13 channels
        (2, 8, 24, 3, 1, [2, 2, 2, 2], 2, 1, "none"),  # dilated
        (1, 7, 19, 5, 3, [2, 2, 1, 1], 1, 1, "relu"),  # 5x5 of one channel, stride 3
    ],
)  # fmt: skip
def test_stems_by_gathered_patches_match_float64(c, m, size, kernel, strides, pads, dilations,
                                                 batch, kind, taken):  # fmt: skip
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, c, size, size])
    w, b = _weight(m, c, kernel, kernel, scale=0.3), _weight(m)
    y = g.op.Conv(x, w, b, pads=pads, strides=[strides] * 2, dilations=[dilations] * 2)
    g.output(activation(g, y, kind), "y")
    feed = RNG.standard_normal((batch, c, size, size)).astype(np.float32)
    session = new_session(g.model())
    got = session.run(None, {"x": feed})[0]
    want = reference(feed, w, b, pads, [strides] * 2, [dilations] * 2)
    close(got, after(want, kind))
    assert taken["patches"] == (1 if taken["possible"] else 0)
    np.testing.assert_array_equal(session.run(None, {"x": feed})[0], got)  # run after run


def test_planes_pay_only_where_they_should():
    pays = conv_module.planes_pay
    one = conv_module.Conv(kernel_shape=[1, 1])
    shallow = one.geom.plan((1, 16, 14, 14), (64, 16, 1, 1))
    assert pays(shallow, 1, (64, 16, 1, 1), np.float32)
    assert not pays(shallow, 1, (64, 16, 1, 1), np.float64)
    assert not pays(shallow, 2, (64, 8, 1, 1), np.float32)  # groups
    deep_small = one.geom.plan((1, 512, 14, 14), (128, 512, 1, 1))
    assert not pays(deep_small, 1, (128, 512, 1, 1), np.float32)  # 196 pixels
    deep_large = one.geom.plan((1, 512, 28, 28), (1024, 512, 1, 1))
    assert pays(deep_large, 1, (1024, 512, 1, 1), np.float32)  # 784 pixels
    tiny = one.geom.plan((1, 16, 5, 5), (64, 16, 1, 1))
    assert not pays(tiny, 1, (64, 16, 1, 1), np.float32)  # 25 pixels
    strided = conv_module.Conv(kernel_shape=[1, 1], strides=[2, 2])
    assert not pays(strided.geom.plan((1, 16, 28, 28), (64, 16, 1, 1)), 1, (64, 16, 1, 1),
                    np.float32)  # fmt: skip
    three = conv_module.Conv(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert not pays(three.geom.plan((1, 16, 55, 55), (64, 16, 3, 3)), 1, (64, 16, 3, 3),
                    np.float32)  # fmt: skip


def test_narrowing_layers_go_to_the_packed_product(monkeypatch):
    """A 1x1 layer of fewer output channels than input ones (M <= C), M a multiple of 16, 64
    to 512 deep, at most 4096 pixels, is the packed product's (``_PLANES_NARROWING``): not
    MobileNetV2's 144 -> 24, Segformer's 1024 -> 256 or EfficientNet-B0's 32 -> 16 at 112x112."""
    pays = conv_module.planes_pay
    one = conv_module.Conv(kernel_shape=[1, 1])

    def planes(c, m, size):
        return pays(one.geom.plan((1, c, size, size), (m, c, 1, 1)), 1, (m, c, 1, 1), np.float32)

    assert not planes(256, 64, 56)  # ResNet-50's reduction at 56x56
    assert not planes(512, 128, 28)
    assert not planes(64, 64, 56)  # as many channels out as in
    assert not planes(64, 16, 55)  # squeezenet's squeeze
    assert planes(64, 256, 56)  # widening
    assert planes(144, 24, 56)  # 24 channels: a panel and a half
    assert planes(1024, 256, 56)  # deeper than 512
    assert planes(32, 16, 112)  # shallower than the packed product takes; 12,544 pixels
    assert planes(256, 64, 112)  # 12,544 pixels
    monkeypatch.setattr(conv_module, "_PLANES_NARROWING", True)
    assert planes(256, 64, 56)


def test_a_narrowing_layer_in_a_session_takes_the_packed_product(taken):
    """ResNet-50's 256 -> 64 reduction, at 20x20: by ``conv_packed_pointwise`` where the
    packed paths run, its outputs as the float64 reference's."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 256, 20, 20])
    w, b = _weight(64, 256, 1, 1), _weight(64)
    g.output(g.op.Relu(g.op.Conv(x, w, b)), "y")
    feed = RNG.standard_normal((1, 256, 20, 20)).astype(np.float32)
    close(new_session(g.model()).run(None, {"x": feed})[0], after(reference(feed, w, b), "relu"))
    assert taken["planes"] == 0
    assert taken["pointwise"] == (1 if taken["possible"] else 0)


def test_gathered_patches_pay_only_for_few_terms():
    pays = conv_module.planes_patches_pay
    three = conv_module.Conv(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    stem = three.geom.plan((1, 3, 224, 224), (32, 3, 3, 3))
    assert pays("other", stem, 1, (32, 3, 3, 3), np.float32)  # 27 terms
    assert not pays("other", stem, 1, (32, 3, 3, 3), np.float64)
    assert not pays("batched", stem, 1, (32, 3, 3, 3), np.float32)  # batches of small images
    deeper = three.geom.plan((1, 16, 56, 56), (64, 16, 3, 3))
    assert not pays("other", deeper, 1, (64, 16, 3, 3), np.float32)  # 144 terms
    assert not pays("other", stem, 3, (33, 1, 3, 3), np.float32)  # groups
    assert not pays("other", three.geom.plan((1, 3, 9, 9), (8, 3, 3, 3)), 1, (8, 3, 3, 3),
                    np.float32)  # 25 output pixels  # fmt: skip
    one = conv_module.Conv(kernel_shape=[1, 1])
    assert not pays("other", one.geom.plan((1, 3, 56, 56), (8, 3, 1, 1)), 1, (8, 3, 1, 1),
                    np.float32)  # pointwise: conv_planes  # fmt: skip


def test_planes_decline_outside_numba_threads_and_for_writeable_weights():
    """Called with no session's pool (or a pool of Python threads), or with a W that may change
    (writeable: a feed), it hands the convolution back (None) for the other paths."""
    x = RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)
    w = _weight(32, 16, 1, 1).reshape(32, 16)
    plan = conv_module.Conv(kernel_shape=[1, 1]).geom.plan(x.shape, (32, 16, 1, 1))
    epilogue = Epilogue()
    epilogue.prepare((1, 32, 8, 8), np.float32)
    frozen = w.copy()
    frozen.flags.writeable = False

    def planes(weight):
        return conv_module.conv_planes(x, weight, threads.PackedWeight(threads.row_tiles), plan,
                                       epilogue)  # fmt: skip

    assert planes(frozen) is None
    with threads.Threads(2, native_threads=False)():
        assert planes(frozen) is None
    if compiled.enabled and threads._BLAS.controllable() and threads.native() is not None:
        with threads.Threads(2)():
            assert planes(w) is None
            got = planes(frozen)
        close(got, reference(x, w.reshape(32, 16, 1, 1), None))


def test_row_tiles_pack_rows_by_the_gemm_tile_with_zeros_past_the_last():
    from onyx.runtime._jit_gemm import ROWS  # (6 with AVX-512, 4 without)

    w = np.arange(13 * 5, dtype=np.float32).reshape(13, 5)
    tiles = threads.row_tiles(w)
    count = -(-13 // ROWS)
    assert tiles.shape == (count, 5, ROWS)
    np.testing.assert_array_equal(tiles[8 // ROWS, :, 8 % ROWS], w[8])
    np.testing.assert_array_equal(tiles[-1, :, 12 % ROWS], w[12])
    assert not tiles[-1, :, 12 % ROWS + 1 :].any()
    np.testing.assert_array_equal(tiles.transpose(0, 2, 1).reshape(-1, 5)[:13], w)


def test_buffers_the_gemm_reads_by_vectors_start_on_a_cache_line():
    from onyx.runtime import _jit_gemm

    def start(a):
        return a.ctypes.data % memory.ALIGNMENT

    for shape in [(1,), (3, 5), (7, 33, 16)]:
        a = memory.aligned_empty(shape)
        assert a.shape == shape and a.flags.c_contiguous and a.flags.writeable and start(a) == 0
        assert not memory.aligned_zeros(shape).any()
    b = np.arange(40 * 37, dtype=np.float32).reshape(40, 37)
    panels = threads.packed_weight(b)
    assert start(panels) == 0
    np.testing.assert_array_equal(panels[2, :, :5], b[:, 32:])  # the last panel, zero-padded
    assert not panels[2, :, 5:].any()
    assert start(memory.scratch("test.aligned", (3, 7), np.float64)) == 0
    for count, depth in [(1, 1), (3, 5), (7, 33)]:
        made = _jit_gemm.aligned_panels(count, depth)
        assert made.shape == (count, depth, 16) and made.flags.c_contiguous and start(made) == 0


def test_scratch_buffers_are_reused_per_use_and_per_thread(monkeypatch):
    a = memory.scratch("test.a", (4, 8))
    again = memory.scratch("test.a", (2, 8))
    assert np.shares_memory(a, again)
    assert not np.shares_memory(a, memory.scratch("test.b", (4, 8)))
    bigger = memory.scratch("test.a", (64, 64))  # grows: a new buffer
    assert bigger.shape == (64, 64) and bigger.dtype == np.float32
    other = []
    worker = threading.Thread(target=lambda: other.append(memory.scratch("test.a", (64, 64))))
    worker.start()
    worker.join()
    assert not np.shares_memory(bigger, other[0])
    monkeypatch.setattr(memory, "REUSE_SCRATCH", False)
    assert not np.shares_memory(memory.scratch("test.a", (4, 8)), memory.scratch("test.a", (4, 8)))
