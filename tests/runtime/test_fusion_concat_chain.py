"""Chains of Concats (fusion.chain_concats, ChainedConcat): DenseNet's blocks, where each layer
joins the block's features so far with its own. Each Concat after the first writes only its
new inputs into one buffer the chain's first made; every output agrees with the unoptimized
plan, run after run, on inputs that change shape, in two threads at once, and where the chain
must not share its buffer (a branch, a result read after the chain, a batch of two)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from kernel_harness import widen

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import fusion
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(17)
GROWTH = 3


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def dense_block(g, x, channels, layers, *, read_after=False):
    """``layers`` DenseNet layers (BN, Relu, 3x3 Conv of GROWTH channels, Concat with what came
    before); the block's result through a Relu (a follower of the last Concat). With
    ``read_after``, the first Concat's result is also read after the block (negated, and
    joined to it)."""
    features, first = x, None
    for _ in range(layers):
        y = g.op.BatchNormalization(features, f32(channels), f32(channels), f32(channels),
                                    np.abs(f32(channels)) + 0.5)  # fmt: skip
        y = g.op.Conv(g.op.Relu(y), f32(GROWTH, channels, 3, 3), f32(GROWTH), pads=[1, 1, 1, 1])
        features = g.op.Concat(features, y, axis=1)
        first = features if first is None else first
        channels += GROWTH
    out = g.op.Relu(features)
    if read_after:
        out = g.op.Concat(out, g.op.Neg(first), axis=1)
    return out


def model(channels=4, layers=4, size=None, **kwargs):
    g = GraphBuilder(opset=21)
    shape = [1, channels, 6, 7] if size is None else size
    x = g.input("x", "float", shape)
    g.output(dense_block(g, x, channels, layers, **kwargs), "y")
    return g.model()


def sessions(m):
    return onyx.InferenceSession(m), onyx.InferenceSession(
        m, SessionOptions(graph_optimization_level=0)
    )


def agree(fused, plain, feed):
    got, want = fused.run(None, {"x": feed})[0], plain.run(None, {"x": feed})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(widen(got), widen(want), rtol=1e-5, atol=1e-5)
    return got


@pytest.fixture
def made(monkeypatch):
    """Buffers the chains made, by shape."""
    shapes = []
    original = fusion.ConcatChain.make

    def counted(self, shape, axis, dtype):
        buffer = original(self, shape, axis, dtype)
        shapes.append(buffer.shape)
        return buffer

    monkeypatch.setattr(fusion.ConcatChain, "make", counted)
    return shapes


def members(session):
    """The plan's ChainedConcat steps (alone or with fused followers)."""
    # (a step with fused followers holds its kernel as run_fused's ``kernel``)
    kernels = [getattr(step.fn, "kernel", step.fn) for step in session._plan.steps]
    return [k for k in kernels if isinstance(k, fusion.ChainedConcat)]


def test_a_dense_block_writes_each_layer_once_into_one_buffer(made):
    """The first run learns the chain's result shape; from the second on the first Concat makes
    one buffer of it and the others only add their layer's channels (no buffer made)."""
    fused, plain = sessions(model())
    assert len(members(fused)) == 4
    agree(fused, plain, f32(1, 4, 6, 7))
    assert len(made) == 4  # (the first run: each Concat made its own)
    for _ in range(3):
        made.clear()
        agree(fused, plain, f32(1, 4, 6, 7))
        assert made == [(1, 4 + 4 * GROWTH, 6, 7)]


def test_other_shapes_later_still_agree(made):
    """A feed of another size (the model's spatial axes are free): the room learned at the run
    before does not fit, each Concat makes a buffer again, and the results stay right."""
    fused, plain = sessions(model(size=[1, 4, "h", "w"]))
    counts = []
    for h, w in [(6, 7), (6, 7), (3, 9), (3, 9), (6, 7), (6, 7)]:
        made.clear()
        agree(fused, plain, f32(1, 4, h, w))
        counts.append(len(made))
    assert counts == [4, 1, 4, 1, 4, 1]
    assert made == [(1, 4 + 4 * GROWTH, 6, 7)]


def test_a_batch_of_two_runs_the_plain_concat(made):
    fused, plain = sessions(model(size=[2, 4, 5, 5]))
    for _ in range(2):
        agree(fused, plain, f32(2, 4, 5, 5))
    assert made == []


def test_a_result_read_after_the_chain_keeps_its_values():
    """The first Concat's result is read again after the block, whose last result a Relu
    follows: that Relu must not run in place on the buffer the first result lies in."""
    fused, plain = sessions(model(read_after=True))
    for _ in range(3):
        agree(fused, plain, f32(1, 4, 6, 7))
    chain = members(fused)
    assert len(chain) == 4 and chain[-1].last and not chain[-1].whole


def test_a_result_two_concats_extend_is_not_chained():
    """Two Concats take the same result first (a branch): neither may write after it."""
    g = GraphBuilder(opset=21)
    a, b, c = (g.input(n, "float", [1, 2, 3, 3]) for n in "abc")
    both = g.op.Concat(a, b, axis=1)
    g.output(g.op.Concat(both, c, axis=1), "y")
    g.output(g.op.Concat(both, g.op.Neg(c), axis=1), "z")
    fused, plain = sessions(g.model())
    feeds = {n: f32(1, 2, 3, 3) for n in "abc"}
    for _ in range(2):
        for got, want in zip(fused.run(None, feeds), plain.run(None, feeds)):
            np.testing.assert_array_equal(got, want)
    assert not members(fused)


def test_two_threads_at_once_each_get_their_own_buffers():
    fused, plain = sessions(model(layers=6))
    feeds = [f32(1, 4, 6, 7) for _ in range(4)]
    wanted = [plain.run(None, {"x": f})[0] for f in feeds]
    failures = []

    def work(k):
        try:
            for _ in range(30):
                got = fused.run(None, {"x": feeds[k]})[0]
                np.testing.assert_allclose(got, wanted[k], rtol=1e-5, atol=1e-5)
        except AssertionError as e:  # (reported by the main thread)
            failures.append(e)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not failures
