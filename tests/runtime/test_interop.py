"""ExecutionMode.ORT_PARALLEL: independent steps at once, the sequential mode's bits, errors placed."""

from __future__ import annotations

import os
import threading

import numpy as np
import onnx
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.errors import ExecutionError, OnyxError, OptionError

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
RNG = np.random.default_rng(3)


def parallel_options(threads: int = 0) -> onyx.SessionOptions:
    options = onyx.SessionOptions()
    options.execution_mode = onyx.ExecutionMode.ORT_PARALLEL
    options.inter_op_num_threads = threads
    return options


def branches(width: int = 6, depth: int = 4):
    """``width`` independent chains of MatMul/Tanh/Add from one input, joined by a Concat."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 32])
    tails = []
    for b in range(width):
        y = x
        for d in range(depth):
            w = RNG.standard_normal((32, 32)).astype(np.float32) / 6
            y = g.op.Add(g.op.Tanh(g.op.MatMul(y, w)), np.float32(b + d / 10))
        tails.append(y)
    g.output(g.op.Concat(*tails, axis=1), "y")
    return g.model()


@pytest.mark.parametrize("threads", [0, 1, 2, 3])
def test_parallel_runs_give_the_sequential_modes_bits(threads):
    model = branches()
    x = RNG.standard_normal((5, 32)).astype(np.float32)
    (want,) = onyx.InferenceSession(model).run(None, {"x": x})
    session = onyx.InferenceSession(model, parallel_options(threads))
    for _ in range(5):
        (got,) = session.run(None, {"x": x})
        np.testing.assert_array_equal(got, want)
    assert want.std() > 0.1


def test_a_branched_cnn_gives_the_sequential_modes_bits():
    path = os.path.join(LIGHT, "light_inception_v1.onnx")
    x = RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = onyx.InferenceSession(path).run(None, {"data_0": x})
    got = onyx.InferenceSession(path, parallel_options(2)).run(None, {"data_0": x})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_failing_branch_is_reported_with_its_node_and_the_session_still_runs():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", [6])
    shape = g.input("shape", "int64", [2])
    left = g.op.Relu(g.op.Neg(x))
    right = g.op.Reshape(g.op.Abs(x), shape)
    g.output(left, "left")
    g.output(right, "right")
    session = onyx.InferenceSession(g.model(), parallel_options(2))
    x = np.arange(6, dtype=np.float32)
    with pytest.raises(OnyxError, match="Reshape"):
        session.run(None, {"x": x, "shape": np.array([4, 4], np.int64)})
    left, right = session.run(None, {"x": x, "shape": np.array([2, 3], np.int64)})
    np.testing.assert_array_equal(right, np.abs(x).reshape(2, 3))


def test_a_terminated_run_stops():
    session = onyx.InferenceSession(branches(), parallel_options(2))
    options = onyx.RunOptions()
    options.terminate = True
    with pytest.raises(ExecutionError, match="terminated"):
        session.run(None, {"x": np.ones((2, 32), np.float32)}, options)


def test_two_parallel_sessions_in_two_threads_do_not_block_each_other():
    model = branches()
    x = RNG.standard_normal((3, 32)).astype(np.float32)
    (want,) = onyx.InferenceSession(model).run(None, {"x": x})
    sessions = [onyx.InferenceSession(model, parallel_options(2)) for _ in range(2)]
    results, errors = [], []

    def work(session):
        try:
            for _ in range(20):
                results.append(session.run(None, {"x": x})[0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "a parallel run did not finish"
    assert not errors and len(results) == 40
    for got in results:
        np.testing.assert_array_equal(got, want)


def test_execution_mode_is_checked():
    options = onyx.SessionOptions()
    with pytest.raises(OptionError, match="execution_mode"):
        options.execution_mode = 2
    options.execution_mode = 1  # onnxruntime's enum values convert too
    assert options.execution_mode is onyx.ExecutionMode.ORT_PARALLEL
