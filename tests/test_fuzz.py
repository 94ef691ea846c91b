"""Fuzzing: mutated real models end in success or an OnyxError, never a raw exception, a hang, a
crash or an allocation past the session's limit; and one regression test per defect class the
campaign (benchmarks/fuzz_campaign.py, docs/fuzzing.md) found.

The fuzz test runs a bounded, derandomized number of examples (so CI replays the same ones) in a
worker process (tests/fuzz_harness.py) that enforces the time and memory limits.
"""

from __future__ import annotations

import fuzz_harness
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import onyx
from onyx.runtime.memory import check_allocation


# --- the fuzz test ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker():
    w = fuzz_harness.Worker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def seeds():
    return fuzz_harness.load_seeds()


@pytest.mark.slow
@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(data=st.data())
def test_mutated_models_end_in_success_or_onyx_error(worker, seeds, data):
    name, seed = data.draw(st.sampled_from(seeds), label="seed")
    blob, steps = fuzz_harness.mutate(seed, fuzz_harness.HypothesisDraw(data))
    outcome = worker.execute(blob)
    assert outcome.ok, f"seed {name}, mutations {steps}:\n{outcome.report()}"


def test_harness_reports_a_raw_exception_with_its_onyx_frame(monkeypatch):
    def broken(model):
        return {}["missing"]  # a raw KeyError, as a defect in onyx would raise

    monkeypatch.setattr(onyx, "check", broken)
    with open(fuzz_harness.MLP, "rb") as f:
        outcome = fuzz_harness.run_example(f.read())
    assert (outcome.status, outcome.stage, outcome.error) == ("raw", "check", "KeyError")


def test_harness_reports_a_worker_crash():
    worker = fuzz_harness.Worker()
    try:
        worker._start()
        worker.proc.kill()
        worker.proc.wait()
        worker.proc.poll = lambda: None  # as if it died after the liveness check
        assert worker.execute(b"\x08\x07").status == "crash"
    finally:
        worker.close()


# --- regression tests: one small model per defect class -------------------------------------------
def _model(nodes, inputs, outputs, initializers=(), opset=21) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tensor(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _softmax_bytes() -> bytes:
    node = helper.make_node("Softmax", ["x"], ["y"], name="soft", axis=1)
    return _model([node], [_tensor("x", [2, 3])], [_tensor("y", [2, 3])]).SerializeToString()


@pytest.mark.parametrize("text", [b"axis", b"soft", b"Softmax"])
def test_a_name_that_is_not_utf8_is_a_format_error(text):
    # protobuf hands proto2 strings that are not UTF-8 over as bytes: an attribute name that
    # was bytes broke the checker (str.startswith) and the session (str.join), a node name
    # the cycle report (graph.sort)
    blob = _softmax_bytes()
    assert blob.count(text) == 1
    bad = blob.replace(text, b"\xf6" + text[1:])
    with pytest.raises(onyx.FormatError, match="not UTF-8"):
        onyx.load(bad)


def test_a_value_name_that_is_not_utf8_is_a_format_error():
    bad = _softmax_bytes().replace(b"\x12\x01y", b"\x12\x01\xf6")  # the node's output 'y'
    with pytest.raises(onyx.FormatError, match="value name .* is not UTF-8"):
        onyx.load(bad)


def _session_error(model) -> onyx.OnyxError:
    with pytest.raises(onyx.OnyxError) as info:
        onyx.InferenceSession(model.SerializeToString())
    return info.value


def test_an_attribute_of_another_kind_than_the_schema_says_is_a_validation_error():
    # Pad's mode as a GRAPH attribute without a graph made the plan build a subgraph of None
    node = helper.make_node("Pad", ["x", "p"], ["y"], name="pad")
    node.attribute.add(name="mode", type=onnx_attr("GRAPH"))
    pads = numpy_helper.from_array(np.zeros(4, np.int64), "p")
    model = _model([node], [_tensor("x", [2, 3])], [_tensor("y", [2, 3])], [pads])
    error = _session_error(model)
    assert isinstance(error, onyx.ValidationError)
    assert "'pad' (Pad)" in str(error) and "'mode' must be STRING, got GRAPH" in str(error)


def onnx_attr(kind: str) -> int:
    return getattr(helper.AttributeProto, kind)


def _conv_bn(epsilon_kind: str = "FLOAT", conv_inputs=("x", "w")):
    conv = helper.make_node("Conv", list(conv_inputs), ["c"], name="conv")
    bn = helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn")
    eps = bn.attribute.add(name="epsilon", type=onnx_attr(epsilon_kind))
    if epsilon_kind == "FLOAT":
        eps.f = 1e-5
    consts = [numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")] + [
        numpy_helper.from_array(np.ones(2, np.float32), n) for n in "sbmv"
    ]
    return _model([conv, bn], [_tensor("x", [1, 1, 3, 3])], [_tensor("y", [1, 2, 3, 3])], consts)


def test_batchnorm_with_an_epsilon_list_is_a_validation_error():
    # epsilon as an empty FLOATS list broke the BatchNormalization fusion (numpy broadcasting)
    error = _session_error(_conv_bn("FLOATS"))
    assert isinstance(error, onyx.ValidationError)
    assert "'bn' (BatchNormalization)" in str(error) and "'epsilon' must be FLOAT" in str(error)


def test_conv_without_weights_is_a_validation_error():
    # a Conv with one input broke the Conv-BatchNormalization folding (IndexError)
    error = _session_error(_conv_bn(conv_inputs=("x",)))
    assert isinstance(error, onyx.ValidationError)
    assert "'conv' (Conv): required input 1 ('W') is missing" in str(error)


def test_a_conv_with_an_empty_weight_name_is_a_validation_error():
    error = _session_error(_conv_bn(conv_inputs=("x", "")))
    assert isinstance(error, onyx.ValidationError) and "required input 1" in str(error)


def test_too_many_inputs_or_outputs_are_validation_errors():
    relu = helper.make_node("Relu", ["x", "x"], ["y"], name="r")
    error = _session_error(_model([relu], [_tensor("x", [2])], [_tensor("y", [2])]))
    assert isinstance(error, onyx.ValidationError) and "2 inputs" in str(error)
    relu = helper.make_node("Relu", ["x"], ["y", "z"], name="r")
    error = _session_error(_model([relu], [_tensor("x", [2])], [_tensor("y", [2])]))
    assert isinstance(error, onyx.ValidationError) and "2 outputs" in str(error)


def test_conv_padding_past_the_allocation_limit_is_an_allocation_error():
    # pads of 2**40 asked numpy for 600 TiB: a MemoryError, not the session's limit, stopped it
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1 << 40, 0, 0, 0])
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    model = _model([conv], [_tensor("x", [1, 1, 2, 2])], [_tensor("y", None)], [w])
    session = onyx.InferenceSession(model.SerializeToString(),
                                    onyx.SessionOptions(allocation_limit=1 << 20))  # fmt: skip
    with pytest.raises(onyx.AllocationError, match=r"'conv' \(Conv\).*allocation limit"):
        session.run(None, {"x": np.ones((1, 1, 2, 2), np.float32)})


def test_nodes_stored_out_of_order_run_in_order():
    # a use before its producer loaded (the checker rejects it) and ran in stored order: the
    # first node read a value no step had computed yet (AttributeError on None in the kernel)
    neg = helper.make_node("Neg", ["t"], ["y"], name="neg")
    relu = helper.make_node("Relu", ["x"], ["t"], name="relu")
    model = _model([neg, relu], [_tensor("x", [3])], [_tensor("y", [3])])
    session = onyx.InferenceSession(model.SerializeToString())
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(y, -np.maximum(x, 0))
    assert [n.name for n in session.model.graph.nodes] == ["neg", "relu"]  # left as stored


def test_a_node_without_outputs_is_a_validation_error():
    # a node left without outputs broke the run loop (IndexError storing its result)
    relu = helper.make_node("Relu", ["x"], [], name="r")
    error = _session_error(_model([relu], [_tensor("x", [2])], []))
    assert isinstance(error, onyx.ValidationError) and "0 outputs" in str(error)


def test_scan_with_a_huge_num_scan_inputs_is_a_kernel_error():
    # num_scan_inputs = 2**32 sized two Python lists by it: a MemoryError at session build
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xi"], ["s2"]), helper.make_node("Identity", ["s2"], ["yi"])],
        "body", [_tensor("s", [2]), _tensor("xi", [2])], [_tensor("s2", [2]), _tensor("yi", [2])],
    )  # fmt: skip
    scan = helper.make_node("Scan", ["s0", "x"], ["s", "y"], name="scan", body=body,
                            num_scan_inputs=1 << 32)  # fmt: skip
    model = _model([scan], [_tensor("s0", [2]), _tensor("x", [3, 2])],
                   [_tensor("s", [2]), _tensor("y", [3, 2])])  # fmt: skip
    error = _session_error(model)
    assert isinstance(error, onyx.KernelError)
    assert "'scan' (Scan)" in str(error) and "num_scan_inputs" in str(error)
    next(a for a in model.graph.node[0].attribute if a.name == "num_scan_inputs").i = 1  # valid
    session = onyx.InferenceSession(model.SerializeToString())
    s, y = session.run(None, {"s0": np.zeros(2, np.float32), "x": np.ones((3, 2), np.float32)})
    np.testing.assert_array_equal(s, [3, 3])
    np.testing.assert_array_equal(y, [[1, 1], [2, 2], [3, 3]])


def test_constant_of_shape_refuses_a_big_tensor_as_its_shape():
    # a weight (4096 x 4096) wired in as ConstantOfShape's shape: every entry went through
    # Python loops (to a list, the negative check, the allocation check) for over 10 s
    node = helper.make_node("ConstantOfShape", ["s"], ["y"], name="fill")
    model = _model([node], [helper.make_tensor_value_info("s", TensorProto.INT64, [300, 300])],
                   [_tensor("y", None)])  # fmt: skip
    session = onyx.InferenceSession(model.SerializeToString())
    with pytest.raises(onyx.ExecutionError, match=r"'fill' \(ConstantOfShape\).*at most 64"):
        session.run(None, {"s": np.ones((300, 300), np.int64)})
    with pytest.raises(onyx.AllocationError, match="rank 90000"):
        check_allocation(np.ones(90_000, np.int64), np.float32)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("padding", ["SAME_LOWER", "explicit"])
def test_pooling_with_a_kernel_far_wider_than_the_input(op, padding):
    # kernel_shape 2**32 with SAME padding: the pooling listed every tap in Python (a hang), and
    # AveragePool's window counts built an (outputs x taps) array; now only taps that reach data
    k = 1 << 24  # wide enough to take seconds (and 640 MB) the old way, not hours
    if padding == "SAME_LOWER":  # k - 1 pads, about half in front: each window covers all of x
        attrs, n_out, covered = {"auto_pad": "SAME_LOWER"}, 5, [5] * 5
    else:  # k - 3 pads in front: window j ends at x[j + 2]
        attrs, n_out, covered = {"pads": [k - 3, 0]}, 3, [3, 4, 5]
    node = helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[k], **attrs)
    model = _model([node], [_tensor("x", [1, 2, 5])], [_tensor("y", [1, 2, n_out])])
    session = onyx.InferenceSession(model.SerializeToString())
    x = np.arange(10, dtype=np.float32).reshape(1, 2, 5) - 3
    (y,) = session.run(None, {"x": x})
    reduce = {"MaxPool": lambda p: p.max(-1), "AveragePool": lambda p: p.mean(-1),
              "LpPool": lambda p: np.sqrt((p**2).sum(-1))}[op]  # fmt: skip
    expected = np.stack([reduce(x[..., :n].astype(np.float64)) for n in covered], -1)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("op", ["Reshape", "Expand", "ConstantOfShape", "Unsqueeze"])
def test_a_huge_declared_shape_length_leaves_the_rank_unknown(op):
    # the length of a shape input (declared 2**62) was read as an output rank: (None,) * 2**62
    huge = helper.make_tensor_value_info("s", TensorProto.INT64, [1 << 62])
    inputs = ["s"] if op == "ConstantOfShape" else ["x", "s"]
    node = helper.make_node(op, inputs, ["y"], name="n")
    model = _model([node], [_tensor("x", [2, 3]), huge], [_tensor("y", None)])
    inferred = onyx.infer_shapes(onyx.load(model.SerializeToString()))
    (y,) = inferred.graph.outputs
    assert y.type is None or y.type.shape is None  # rank unknown
    small = helper.make_tensor_value_info("s", TensorProto.INT64, [4])
    model = _model([node], [_tensor("x", [2, 3]), small], [_tensor("y", None)])
    (y,) = onyx.infer_shapes(onyx.load(model.SerializeToString())).graph.outputs
    assert y.type.shape is not None and len(y.type.shape) == (6 if op == "Unsqueeze" else 4)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reducing_an_empty_tensor_checks_the_result_against_the_limit(keepdims):
    # ReduceSum of an empty (2, 0, 4, 2**31 - 1) input over axis 1: 64 GiB of zeros from a feed
    # of no bytes, stopped only by numpy's MemoryError
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum", keepdims=keepdims)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    model = _model([node], [_tensor("x", [2, 0, 4, None])], [_tensor("y", None)], [axes])
    options = onyx.SessionOptions(allocation_limit=1 << 20)
    session = onyx.InferenceSession(model.SerializeToString(), options)
    big = np.zeros((2, 0, 4, (1 << 31) - 1), np.float32)
    with pytest.raises(onyx.AllocationError, match=r"'sum' \(ReduceSum\).*allocation limit"):
        session.run(None, {"x": big})
    (y,) = session.run(None, {"x": np.zeros((2, 0, 4, 3), np.float32)})  # small: zeros
    np.testing.assert_array_equal(y, np.zeros((2, 1, 4, 3) if keepdims else (2, 4, 3)))
