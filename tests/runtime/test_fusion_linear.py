"""A linear layer's bias and ReLU (or Clip) after MatMul or Gemm, applied to each part of the
product while in cache (threads.Finish): the same bits as the steps run one after another, on
one thread, on numba's threads and on Python threads; anything else after the product is left
to the plan's epilogue."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import threads
from onyx.runtime.kernels import linalg
from onyx.runtime.session import SessionOptions

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(11)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.fixture
def finishes(monkeypatch):
    """The finishes the products were given, in order (None: none)."""
    seen = []
    plain = threads.matmul

    def spy(a, b, out=None, finish=None, packed=None):
        seen.append(finish)
        return plain(a, b, out, finish, packed=packed)

    monkeypatch.setattr(linalg.threads, "matmul", spy)
    return seen


def _sessions(model):
    """The model unfused (the reference), then fused on one thread, on numba's threads (where
    they load) and on Python threads."""
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0,
                                                        intra_op_num_threads=1))  # fmt: skip
    yield "plain", plain
    yield "one thread", onyx.InferenceSession(model, SessionOptions(intra_op_num_threads=1))
    yield "pool", onyx.InferenceSession(model, SessionOptions(intra_op_num_threads=2))
    python = onyx.InferenceSession(model, SessionOptions(intra_op_num_threads=2))
    python._threads = threads.Threads(2, native_threads=False)
    yield "python threads", python


def _check(model, feeds, finishes, expected):
    """Every fused session gives the unfused one's bits; the product got ``expected`` (a
    (bias given, lo, hi) or None) in each."""
    want = None
    for name, session in _sessions(model):
        finishes.clear()
        (got,) = session.run(None, feeds)
        if want is None:
            want = got
            continue
        np.testing.assert_array_equal(got, want, err_msg=name)
        got_finish = finishes[-1]
        described = None if got_finish is None else (
            got_finish.bias is not None, got_finish.lo, got_finish.hi)  # fmt: skip
        assert described == expected, name


def _linear(x_shape, n, tail):
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", list(x_shape))
    y = g.op.MatMul(x, f32(x_shape[-1], n))
    g.output(tail(g, y), "y")
    return g.model()


# (products under 64 deep: on BLAS on every pool, so the pools' bits agree; a read-only weight
# 64 deep or more runs onyx's own GEMM on numba's threads, test_native_threads.py)
@pytest.mark.parametrize("x_shape", [(2, 40, 48), (80, 48)])
def test_bias_then_relu_after_matmul(finishes, x_shape):
    bias = f32(96)
    model = _linear(x_shape, 96, lambda g, y: g.op.Relu(g.op.Add(bias, y)))  # (torch's order)
    x = f32(*x_shape)
    x[0, 0] = np.nan  # (NaN kept by the ReLU, as numpy's maximum keeps it)
    _check(model, {"x": x}, finishes, (True, 0.0, np.inf))


def test_bias_of_leading_ones_then_clip(finishes):
    bias = f32(1, 1, 48)
    model = _linear((3, 20, 32), 48, lambda g, y: g.op.Clip(
        g.op.Add(y, bias), np.array(-0.5, np.float32), np.array(0.75, np.float32)))  # fmt: skip
    _check(model, {"x": f32(3, 20, 32)}, finishes, (True, -0.5, 0.75))


def test_relu_alone(finishes):
    model = _linear((64, 32), 40, lambda g, y: g.op.Relu(y))
    _check(model, {"x": f32(64, 32)}, finishes, (False, 0.0, np.inf))


@pytest.mark.parametrize(
    "tail",
    [
        lambda g, y: g.op.Relu(g.op.Add(y, f32(30, 1))),  # along the rows, not the last axis
        lambda g, y: g.op.Mul(g.op.Add(y, f32(16)), np.float32(2)),  # a step it does not take
        lambda g, y: g.op.Relu(g.op.Add(y, g.op.Neg(g.input("b", "float", [16])))),  # run time
    ],
)
def test_other_followers_are_left_to_the_epilogue(finishes, tail):
    model = _linear((30, 24), 16, tail)
    feeds = {"x": f32(30, 24)}
    if len(model.graph.inputs) > 1:
        feeds["b"] = f32(16)
    _check(model, feeds, finishes, None)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gemm_vector_c_then_relu(finishes, beta):
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [50, 32])
    y = g.op.Gemm(x, f32(24, 32), f32(24), transB=1, beta=beta)
    g.output(g.op.Relu(y), "y")
    _check(g.model(), {"x": f32(50, 32)}, finishes, (True, 0.0, np.inf))


def test_gemm_with_a_full_c_adds_it_before_the_relu(finishes):
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [50, 32])
    c = f32(50, 24) + 3  # (a ReLU first would show: the sum is mostly positive)
    g.output(g.op.Relu(g.op.Gemm(x, f32(32, 24), c)), "y")
    _check(g.model(), {"x": f32(50, 32)}, finishes, None)
    (got,) = onyx.InferenceSession(g.model()).run(None, {"x": np.zeros((50, 32), np.float32)})
    np.testing.assert_array_equal(got, np.maximum(c, 0))


def test_gemm_vector_c_alone_with_a_follower_it_does_not_take(finishes):
    g = GraphBuilder(opset=21)
    x, residual = g.input("x", "float", [50, 32]), g.input("r", "float", [50, 24])
    g.output(g.op.Relu(g.op.Add(g.op.Gemm(x, f32(32, 24), f32(24)), residual)), "y")
    feeds = {"x": f32(50, 32), "r": f32(50, 24)}
    _check(g.model(), feeds, finishes, (True, -np.inf, np.inf))
