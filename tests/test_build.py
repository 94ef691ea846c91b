"""onyx.build: concise construction, checked by onnx and run by onyx and onnxruntime alike."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.errors import GraphError


def _small_model() -> onyx.ir.Model:
    rng = np.random.default_rng(0)
    b = GraphBuilder(opset=21)
    x = b.input("x", "float", ["N", 4])
    w = b.initializer("w", rng.standard_normal((4, 3)).astype(np.float32))
    h = b.op.Relu(b.op.Add(b.op.MatMul(x, w), np.float32(0.5)))  # numpy scalar -> initializer
    s = b.op.Softmax(h, axis=-1)
    top, idx = b.op.TopK(s, np.array([2], np.int64), outputs=2, axis=1)
    b.output(b.op.Mul(top, 2.0), "top", "float", ["N", 2])  # Python float -> float32
    b.output(idx, "idx", "int64", ["N", 2])
    return b.model(producer_name="test_build")


def test_builds_a_valid_model_that_runs_like_onnxruntime():
    model = _small_model()
    data = onyx.to_bytes(model)
    onnx.checker.check_model(onnx.ModelProto.FromString(data), full_check=True)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    ours = onyx.InferenceSession(model).run(None, {"x": x})
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_names_are_unique_and_attributes_typed():
    model = _small_model()
    g = model.graph
    names = (
        [v.name for n in g for v in n.outputs] + list(g.initializers) + [v.name for v in g.inputs]
    )
    assert len(names) == len(set(names))
    assert len({n.name for n in g}) == len(g.nodes)
    softmax = next(n for n in g if n.op_type == "Softmax")
    assert softmax.attribute("axis") == -1
    assert [v.name for v in g.outputs] == ["top", "idx"]
    assert model.opset_imports == {"": 21} and model.ir_version == 10
    assert model.producer_name == "test_build"


def test_other_domains_and_optional_inputs():
    b = GraphBuilder(opset=18)
    x = b.input("x", "float", [2, 3])
    y = b.op("com.example", "Custom", x, None, alpha=1.5, names=["a", "b"])
    z = b.op.Clip(x, None, np.float32(1.0))
    b.output(y, "y")
    b.output(z, "z", "float", [2, 3])
    model = b.model()
    custom, clip = model.graph.nodes
    assert custom.domain == "com.example" and custom.inputs[1] is None
    assert custom.attribute("names") == ["a", "b"] and custom.attribute("alpha") == 1.5
    assert clip.inputs[1] is None and clip.inputs[2].const_value is not None
    assert model.opset_imports == {"": 18, "com.example": 1}
    back = onyx.load(onyx.to_bytes(model))
    assert [n.op_type for n in back.graph] == ["Custom", "Clip"]


def test_output_of_an_input_gets_an_identity_and_duplicate_names_fail():
    b = GraphBuilder()
    x = b.input("x", "float", [1])
    out = b.output(x, "y", "float", [1])
    assert out.producer.op_type == "Identity" and x.name == "x"
    with pytest.raises(GraphError, match="'x'"):
        b.input("x", "float", [1])
    data = onyx.to_bytes(b.model())
    onnx.checker.check_model(onnx.ModelProto.FromString(data))
    (y,) = onyx.InferenceSession(data).run(None, {"x": np.ones(1, np.float32)})
    assert y.tolist() == [1.0]
