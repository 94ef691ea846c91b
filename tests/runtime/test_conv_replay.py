"""A convolution's path taken again (kernels/conv.py, ``_Replay``): a Conv keeps the path its last
call took and, while a call's input is laid out alike with the same read-only weight and bias,
the same fused steps and the same pool, takes it again without its checks. The replayed runs
give the bits of the first, on the numpy and the compiled paths; a residual connection's
operand is this run's, a Concat's buffer is written in place, and a different shape, a weight
fed at run time or a changed threshold (``forget_replays``) take the full path."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime.kernels import conv as conv_module
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(23)


def _weight(*shape, scale=0.2):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def inverted_residual(channels=16, expanded=64, size=14, kernel=3):
    """MobileNetV2's block with its residual connection, then a 1x1 layer into a Concat with a
    3x3 one (a Concat's buffer: ``out``)."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, channels, None, None])
    lo, hi = np.array(0, np.float32), np.array(6, np.float32)
    y = g.op.Clip(g.op.Conv(x, _weight(expanded, channels, 1, 1), _weight(expanded)), lo, hi)
    y = g.op.Conv(y, _weight(expanded, 1, kernel, kernel), _weight(expanded), group=expanded,
                  pads=[kernel // 2] * 4)  # fmt: skip
    y = g.op.Clip(y, lo, hi)
    y = g.op.Add(g.op.Conv(y, _weight(channels, expanded, 1, 1), _weight(channels)), x)
    left = g.op.Relu(g.op.Conv(y, _weight(24, channels, 1, 1), _weight(24)))
    right = g.op.Relu(g.op.Conv(y, _weight(8, channels, 3, 3), _weight(8), pads=[1, 1, 1, 1]))
    g.output(g.op.Concat(left, right, axis=1), "y")
    return g.model()


def _session(model, threads=2):
    options = SessionOptions()
    options.intra_op_num_threads = threads
    return onyx.InferenceSession(model, options)


@pytest.fixture
def paths(monkeypatch):
    """How many Conv calls took the full path (``Conv._call``) and how many a kept one."""
    counts = {"full": 0, "again": 0}
    full, again = conv_module.Conv._call, conv_module._Replay.run

    def counted_full(self, *args):
        counts["full"] += 1
        return full(self, *args)

    def counted_again(self, *args):
        counts["again"] += 1
        return again(self, *args)

    monkeypatch.setattr(conv_module.Conv, "_call", counted_full)
    monkeypatch.setattr(conv_module._Replay, "run", counted_again)
    return counts


def _made_replays(monkeypatch, *names):
    """The names of the lean replay builders (``names``, of kernels/conv.py) in the order
    they made a replay (returned something), as the list they fill."""
    made = []
    for name in names:
        original = getattr(conv_module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            replay = _original(*args, **kwargs)
            if replay is not None:
                made.append(_name)
            return replay

        monkeypatch.setattr(conv_module, name, counted)
    return made


def _later_runs_match_fresh_sessions(model, session, feeds, convs, paths):
    """Each of ``feeds`` run by ``session`` (after its first run) gives the bits a fresh
    session gives for it, all ``convs`` replayed each run; the last agrees with the graph
    run unoptimized (to rounding)."""
    for feed in feeds:
        got = session.run(None, {"x": feed})[0]
        np.testing.assert_array_equal(got, _session(model).run(None, {"x": feed})[0])
    assert paths["again"] == len(feeds) * convs
    plain = onyx.InferenceSession(model, graph_optimization_level=0)
    np.testing.assert_allclose(got, plain.run(None, {"x": feeds[-1]})[0], rtol=1e-4, atol=1e-4)


def test_replayed_runs_give_the_first_runs_bits(paths):
    model = inverted_residual()
    session = _session(model)
    x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    first = session.run(None, {"x": x})[0]
    convs = paths["full"]
    assert convs == 5 and paths["again"] == 0
    for _ in range(3):
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], first)
    assert paths["full"] == convs and paths["again"] == 3 * convs
    # (the same graph unfused and unoptimized: same values to rounding)
    plain = onyx.InferenceSession(model, graph_optimization_level=0)
    np.testing.assert_allclose(first, plain.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_a_replay_reads_this_runs_input_and_residual(paths):
    """The residual connection's operand is bound anew each run: a new input changes the
    output as the full path would."""
    model = inverted_residual()
    session, fresh = _session(model), _session(model)
    a, b = (RNG.standard_normal((1, 16, 14, 14)).astype(np.float32) for _ in range(2))
    session.run(None, {"x": a})
    got = session.run(None, {"x": b})[0]
    assert paths["again"] == 5
    np.testing.assert_array_equal(got, fresh.run(None, {"x": b})[0])


def test_another_shape_takes_the_full_path_and_is_kept_instead(paths):
    model = inverted_residual()
    session = _session(model)
    small, large = (RNG.standard_normal((1, 16, s, s)).astype(np.float32) for s in (14, 20))
    session.run(None, {"x": small})
    session.run(None, {"x": large})
    assert paths == {"full": 10, "again": 0}
    want = _session(model).run(None, {"x": large})[0]  # (5 more on the full path)
    np.testing.assert_array_equal(session.run(None, {"x": large})[0], want)
    assert paths == {"full": 15, "again": 5}


def test_forgetting_replays_takes_the_full_path_again(paths):
    """After a threshold changes (bench_switch.py changes them between runs), the kept paths
    are stale: ``forget_replays`` drops them."""
    session = _session(inverted_residual())
    x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    first = session.run(None, {"x": x})[0]
    conv_module.forget_replays()
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], first)
    assert paths == {"full": 10, "again": 0}


def test_a_direct_call_outside_runs_is_replayed_too(paths):
    """A Conv called by itself (no pool, no epilogue) keeps its path as a session's does."""
    x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    w, b = _weight(32, 16, 1, 1), _weight(32)
    w.flags.writeable = b.flags.writeable = False
    conv = conv_module.Conv()
    outside = conv(x, w, b)
    np.testing.assert_array_equal(conv(x, w, b), outside)
    assert paths == {"full": 1, "again": 1}


def test_a_weight_fed_at_run_time_is_never_replayed(paths):
    """A weight that is a graph input arrives writeable: the full path every run, its new
    values read."""
    g = GraphBuilder(opset=24)
    x, w = g.input("x", "float", [1, 8, 9, 9]), g.input("w", "float", [16, 8, 1, 1])
    g.output(g.op.Conv(x, w), "y")
    session = _session(g.model())
    feed = RNG.standard_normal((1, 8, 9, 9)).astype(np.float32)
    for scale in (1, 2):
        weight = _weight(16, 8, 1, 1) * scale
        got = session.run(None, {"x": feed, "w": weight})[0]
        want = np.einsum("nchw,mc->nmhw", feed, weight[:, :, 0, 0])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert paths["again"] == 0


def test_the_packed_products_replays_read_this_runs_input(paths, monkeypatch):
    """The packed products made again with their arguments fixed (``transposed_replay``): a
    narrowing 1x1 layer on NCHW planes, a padded 3x3 layer (its image moved into a border), an
    unpadded one read in place with a Swish, two 3x3 layers into a Concat's buffer. Each run
    after the first gives the bits a fresh session gives for that run's input."""
    from onyx.runtime import compiled, threads

    made = _made_replays(monkeypatch, "transposed_replay")
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 256, 12, 12])
    y = g.op.Relu(g.op.Conv(x, _weight(64, 256, 1, 1), _weight(64)))
    y = g.op.Relu(g.op.Conv(y, _weight(32, 64, 3, 3), _weight(32), pads=[1, 1, 1, 1]))
    s = g.op.Conv(y, _weight(32, 32, 3, 3), _weight(32))
    y = g.op.Mul(s, g.op.Sigmoid(s))
    left = g.op.Relu(g.op.Conv(y, _weight(16, 32, 3, 3), _weight(16), pads=[1, 1, 1, 1]))
    right = g.op.Relu(g.op.Conv(y, _weight(16, 32, 3, 3), _weight(16), pads=[1, 1, 1, 1]))
    g.output(g.op.Concat(left, right, axis=1), "y")
    model = g.model()
    session = _session(model)
    a, b, c = (RNG.standard_normal((1, 256, 12, 12)).astype(np.float32) for _ in range(3))
    session.run(None, {"x": a})
    possible = compiled.enabled and threads._BLAS.controllable() and threads.native() is not None
    assert len(made) == (5 if possible else 0)
    _later_runs_match_fresh_sessions(model, session, (b, c), 5, paths)


@pytest.mark.parametrize("kind", ["clip", "swish"])
def test_the_channel_last_replays_read_this_runs_input(paths, monkeypatch, kind):
    """An inverted residual on a 14x14 plane (its expansion written channel-last by the
    packed product, its depthwise convolution reading and writing that layout: the epilogue,
    a Clip or a Swish, in the kernels) made again with the kernels' arguments fixed
    (``pointwise_last_replay``, ``depthwise_last_replay``): each run after the first gives the
    bits a fresh session gives for that run's input."""
    from onyx.runtime import compiled, threads

    made = _made_replays(monkeypatch, "pointwise_last_replay", "depthwise_last_replay")
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 64, 14, 14])

    def act(y):
        if kind == "swish":
            return g.op.Mul(y, g.op.Sigmoid(y))
        return g.op.Clip(y, np.array(0, np.float32), np.array(6, np.float32))

    y = act(g.op.Conv(x, _weight(384, 64, 1, 1), _weight(384)))
    y = act(g.op.Conv(y, _weight(384, 1, 3, 3), _weight(384), group=384, pads=[1, 1, 1, 1]))
    g.output(g.op.Conv(y, _weight(64, 384, 1, 1), _weight(64)), "y")
    model = g.model()
    session = _session(model)
    a, b, c = (RNG.standard_normal((1, 64, 14, 14)).astype(np.float32) for _ in range(3))
    session.run(None, {"x": a})
    possible = compiled.enabled and threads._BLAS.controllable() and threads.native() is not None
    want = ["pointwise_last_replay", "depthwise_last_replay"] if possible else []
    assert made == want
    _later_runs_match_fresh_sessions(model, session, (b, c), 3, paths)


def test_replays_with_a_residual_read_this_runs_operand(paths, monkeypatch):
    """A residual connection's Add fused into a 1x1 layer's store, on the packed product (a
    narrowing layer: ``transposed_replay``) and on planes (a widening one: ``planes_replay``):
    the replay reads each run's residual from the epilogue the run prepared, so each run after
    the first gives the bits a fresh session gives for that run's input."""
    from onyx.runtime import compiled, threads

    made = _made_replays(monkeypatch, "transposed_replay", "planes_replay")
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 256, 14, 14])
    y = g.op.Relu(g.op.Conv(x, _weight(64, 256, 1, 1), _weight(64)))
    y = g.op.Relu(g.op.Conv(y, _weight(64, 64, 1, 1), _weight(64)))
    y = g.op.Relu(g.op.Add(g.op.Conv(y, _weight(256, 64, 1, 1), _weight(256)), x))
    g.output(g.op.Add(g.op.Conv(y, _weight(256, 256, 1, 1), _weight(256)), y), "y")
    model = g.model()
    session = _session(model)
    a, b, c = (RNG.standard_normal((1, 256, 14, 14)).astype(np.float32) for _ in range(3))
    session.run(None, {"x": a})
    possible = compiled.enabled and threads._BLAS.controllable() and threads.native() is not None
    if possible:  # (the first two and the last narrow or keep the depth; the third widens)
        assert sorted(made) == ["planes_replay"] + ["transposed_replay"] * 3
    else:
        assert made == []
    _later_runs_match_fresh_sessions(model, session, (b, c), 4, paths)


def test_a_channel_last_layer_with_a_run_time_operand_reads_each_runs(paths):
    """An inverted residual whose depthwise layer's fused steps add a per-channel vector fed at
    run time: the kept paths read each run's vector (no replay fixes it as a bias), so each
    run gives a fresh session's bits."""
    g = GraphBuilder(opset=24)
    x = g.input("x", "float", [1, 64, 14, 14])
    shift = g.input("shift", "float", [1, 384, 1, 1])
    lo, hi = np.array(0, np.float32), np.array(6, np.float32)
    y = g.op.Clip(g.op.Conv(x, _weight(384, 64, 1, 1), _weight(384)), lo, hi)
    y = g.op.Conv(y, _weight(384, 1, 3, 3), _weight(384), group=384, pads=[1, 1, 1, 1])
    y = g.op.Clip(g.op.Add(y, shift), lo, hi)
    g.output(g.op.Conv(y, _weight(64, 384, 1, 1), _weight(64)), "y")
    model = g.model()
    session = _session(model)
    feed = RNG.standard_normal((1, 64, 14, 14)).astype(np.float32)
    for scale in (0.0, 3.0, -2.0):
        shifts = {"shift": np.full((1, 384, 1, 1), scale, np.float32)}
        got = session.run(None, {"x": feed, **shifts})[0]
        want = _session(model).run(None, {"x": feed, **shifts})[0]
        np.testing.assert_array_equal(got, want)
    assert paths["again"] > 0
