"""Channel-last tensors between convolutions (kernels/conv.py, ``conv_channels_last``): in an
inverted residual (pointwise expansion, depthwise convolution, pointwise projection) the plan
lets the expansion and the depthwise convolution return channel-last views on small planes.
The outputs agree with those of the same session without that (to rounding: OpenBLAS may
round a product computed channel-last differently, its tiles cut elsewhere; the depthwise
kernels themselves give the same bits, tests/runtime/kernels/test_conv.py) and with the graph
run unoptimized, on the numpy and the compiled paths, on one thread and on the session's pool,
and they are the same bits from run to run."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import plan as plan_module
from onyx.runtime.kernels import conv as conv_module
from onyx.runtime.kernels.conv import Conv, channels_last
from onyx.runtime.session import SessionOptions
from onyx.runtime.threads import native as native_threads

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(41)


def _activation(g, y, kind):
    if kind == "relu":
        return g.op.Relu(y)
    if kind == "clip":
        return g.op.Clip(y, np.array(0, np.float32), np.array(6, np.float32))
    return g.op.Swish(y)


def inverted_residual(channels, expanded, size, kernel=3, stride=1, kind="clip", batch=1):
    """MobileNetV2's block: 1x1 expansion, depthwise convolution, 1x1 projection (+ residual)."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [batch, channels, size, size])

    def weight(*shape, scale=0.2):
        return (RNG.standard_normal(shape) * scale).astype(np.float32)

    a = g.op.Conv(x, weight(expanded, channels, 1, 1), weight(expanded))
    a = _activation(g, a, kind)
    pad = kernel // 2
    d = g.op.Conv(a, weight(expanded, 1, kernel, kernel), weight(expanded), group=expanded,
                  pads=[pad] * 4, strides=[stride, stride])  # fmt: skip
    d = _activation(g, d, kind)
    y = g.op.Conv(d, weight(channels, expanded, 1, 1, scale=0.1), weight(channels))
    g.output(g.op.Add(y, x) if stride == 1 else y, "y")
    return g.model()


def _marked(session):
    return [step.node.name or step.label for step in session._plan.steps
            if getattr(getattr(step.fn, "kernel", step.fn), "channels_last", False)]  # fmt: skip


def _run_both(model, x, threads, monkeypatch, calls):
    """(output with channel-last intermediates, output without, the first again), counting the
    calls of the channel-last kernels in ``calls``."""
    originals = {
        name: getattr(conv_module, name)
        for name in ("_pointwise_last", "_depthwise_last", "conv_packed_pointwise", "conv_planes")
    }
    for name, original in originals.items():

        def counted(*args, _original=original, _name=name, **kwargs):
            result = _original(*args, **kwargs)
            if result is not None:  # (the packed paths decline off numba's threads)
                calls[_name] = calls.get(_name, 0) + 1
            return result

        monkeypatch.setattr(conv_module, name, counted)
    # (the paths made again with their arguments fixed: counted as the paths)
    leans = {
        "planes_replay": "conv_planes",
        "packed_pointwise_replay": "conv_packed_pointwise",
        "pointwise_last_replay": "_pointwise_last",
        "depthwise_last_replay": "_depthwise_last",
    }
    lean_originals = {name: getattr(conv_module, name) for name in leans}
    for name, original in lean_originals.items():

        def counted_replay(*args, _original=original, _path=leans[name]):
            replay = _original(*args)
            if replay is None:
                return None

            def run(*inputs):
                calls[_path] = calls.get(_path, 0) + 1
                return replay(*inputs)

            return run

        monkeypatch.setattr(conv_module, name, counted_replay)
    options = SessionOptions(intra_op_num_threads=threads)
    with_last = onyx.InferenceSession(model, options)
    assert len(_marked(with_last)) == 2  # the expansion and the depthwise convolution
    got = with_last.run(None, {"x": x})[0]
    again = with_last.run(None, {"x": x})[0]
    for name, original in originals.items():  # (count the first session's calls only)
        monkeypatch.setattr(conv_module, name, original)
    for name, original in lean_originals.items():
        monkeypatch.setattr(conv_module, name, original)
    monkeypatch.setattr(plan_module, "mark_channels_last", lambda *args: None)
    without = onyx.InferenceSession(model, options)
    assert _marked(without) == []
    return got, without.run(None, {"x": x})[0], again


@pytest.mark.parametrize("threads", [1, 0])  # one thread; the default pool
@pytest.mark.parametrize(
    "channels, expanded, size, kernel, stride, kind, batch",
    [
        (64, 384, 14, 3, 1, "clip", 1),  # MobileNetV2's 14x14 blocks
        (160, 960, 7, 3, 1, "clip", 2),  # its 7x7 ones, two images
        (96, 576, 14, 3, 2, "relu", 1),  # a stride-2 block, 14x14 into 7x7
        (40, 240, 14, 5, 1, "swish", 1),  # EfficientNet's 5x5 depthwise, Swish
        (8, 24, 5, 3, 1, "clip", 1),  # few channels, a plane narrower than a vector
    ],
)
def test_inverted_residual_gives_the_plain_paths_values(
    both_paths, threads, channels, expanded, size, kernel, stride, kind, batch, monkeypatch
):
    model = inverted_residual(channels, expanded, size, kernel, stride, kind, batch)
    x = RNG.standard_normal((batch, channels, size, size)).astype(np.float32) * 3
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]  # (padding taps multiply zeros: no new NaNs)
    calls: dict[str, int] = {}
    got, want, again = _run_both(model, x, threads, monkeypatch, calls)
    np.testing.assert_array_equal(got, again)
    if both_paths == "compiled":  # (the numpy path keeps NCHW: the depthwise kernel is numba's)
        # each run: the expansion writes channel-last, the depthwise reads and writes it,
        # the projection reads it: as a product by its packed weight where it is at least 64
        # deep (conv_packed_pointwise)
        if expanded >= 64:
            assert calls == {"_pointwise_last": 2, "_depthwise_last": 2, "conv_packed_pointwise": 2}
        else:
            assert calls == {"_pointwise_last": 4, "_depthwise_last": 2}
    else:
        assert calls == {}
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # (no NaN made or lost)
    reference = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    finite = np.isfinite(want)
    for other in (want, reference.run(None, {"x": x})[0]):
        np.testing.assert_allclose(got[finite], other[finite], rtol=1e-5, atol=1e-5)


def test_large_planes_stay_nchw(both_paths, monkeypatch):
    """Above 14x14 the plane kernels run on NCHW tensors (the channel-last one measured slower
    there, and the transposes cost more than they save)."""
    model = inverted_residual(32, 192, 28)
    x = RNG.standard_normal((1, 32, 28, 28)).astype(np.float32)
    calls: dict[str, int] = {}
    got, want, _ = _run_both(model, x, 0, monkeypatch, calls)
    np.testing.assert_array_equal(got, want)  # (the same kernels)
    # (the expansion and the projection, 32 and 192 deep, from their NCHW inputs: the
    # expansion by its weight packed in tiles of rows on numba's threads where the host takes
    # that path (conv._PLANES: AVX-512), else by BLAS; the projection, narrowing, by its
    # packed weight, transposed: conv._PLANES_NARROWING)
    if both_paths != "compiled":
        assert calls == {}
    elif native_threads().kernels.WIDE:
        assert calls == {"conv_planes": 2, "conv_packed_pointwise": 2}
    else:
        assert calls == {"conv_packed_pointwise": 2}


def _chain(kinds):
    """Convs in a row, each ("pointwise" | "depthwise" | "full") on 8 channels of 7x7."""
    g = GraphBuilder(opset=24)
    y = x = g.input("x", "float", [1, 8, 7, 7])
    for kind in kinds:
        if kind == "pointwise":
            y = g.op.Conv(y, RNG.standard_normal((8, 8, 1, 1)).astype(np.float32))
        elif kind == "depthwise":
            y = g.op.Conv(y, RNG.standard_normal((8, 1, 3, 3)).astype(np.float32), group=8,
                          pads=[1, 1, 1, 1])  # fmt: skip
        else:
            y = g.op.Conv(y, RNG.standard_normal((8, 8, 3, 3)).astype(np.float32),
                          pads=[1, 1, 1, 1])  # fmt: skip
    g.output(y, "y")
    return g.model(), x


@pytest.mark.parametrize(
    "kinds, marked",
    [
        (["pointwise", "depthwise", "pointwise"], [True, True, False]),
        (["pointwise", "pointwise"], [False, False]),  # nothing to gain between two GEMMs
        (["depthwise", "depthwise", "full"], [True, False, False]),  # a full one reads NCHW
        (["full", "depthwise"], [False, False]),  # it does not write channel-last
    ],
)
def test_which_convolutions_the_plan_marks(kinds, marked):
    model, _ = _chain(kinds)
    session = onyx.InferenceSession(model)
    flags = [step.fn.channels_last for step in session._plan.steps]
    assert flags == marked


def test_a_graph_output_or_a_tensor_read_elsewhere_stays_nchw():
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 8, 7, 7])
    a = g.op.Conv(x, RNG.standard_normal((8, 8, 1, 1)).astype(np.float32))
    d = g.op.Conv(a, RNG.standard_normal((8, 1, 3, 3)).astype(np.float32), group=8,
                  pads=[1, 1, 1, 1])  # fmt: skip
    g.output(d, "d")
    g.output(g.op.Relu(a), "r")  # a read by a Relu too
    session = onyx.InferenceSession(g.model())
    assert [step.fn.channels_last for step in session._plan.steps if isinstance(step.fn, Conv)] \
        == [False, False]  # fmt: skip
    out = session.run(None, {"x": RNG.standard_normal((1, 8, 7, 7)).astype(np.float32)})
    assert all(o.flags.c_contiguous for o in out)


@pytest.mark.parametrize("kernel, group", [(3, 1), (1, 1), (3, 8)])
def test_every_conv_takes_a_channel_last_view(kernel, group):
    """A channel-last view reaching any Conv (say, from a custom graph's producer) is read as
    the tensor it is."""
    x = RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)
    view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert channels_last(view) is not None and channels_last(x) is None
    w = RNG.standard_normal((8, 8 // group, kernel, kernel)).astype(np.float32)
    conv = Conv(group=group, pads=[kernel // 2] * 4)
    want = conv(x, w)
    # (a 1x1 view takes the channel-last GEMM, x the NCHW one: BLAS rounds each its own way)
    np.testing.assert_allclose(conv(view, w), want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_narrow_depthwise_plane_runs_channel_last_between_nchw_tensors(both_paths, monkeypatch):
    """A depthwise convolution on a plane of at most 8 columns and 64 or more channels, its
    input and output NCHW, takes the channel-last kernel with transposes each way (the plane
    kernel's rows are too short there): same bits as the plane kernel."""
    calls = []
    original = conv_module._depthwise_last

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(conv_module, "_depthwise_last", counted)
    x = RNG.standard_normal((2, 96, 7, 7)).astype(np.float32)
    w = RNG.standard_normal((96, 1, 5, 5)).astype(np.float32)
    conv = Conv(group=96, pads=[2, 2, 2, 2])
    got = conv(x, w)
    assert len(calls) == (1 if both_paths == "compiled" else 0)
    plane = Conv(group=96, pads=[2, 2, 2, 2])
    monkeypatch.setattr(conv_module, "_NARROW_PLANE", 0)  # (the plane kernel)
    np.testing.assert_array_equal(got, plane(x, w))
    assert len(calls) == (1 if both_paths == "compiled" else 0)
