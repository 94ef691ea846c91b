"""onyx.utils (extract_model, merge_models, add_prefix, update_inputs_outputs_dims) against what
onnx.utils / onnx.compose / onnx.tools do with the same model, and path arguments everywhere a
model is taken."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.compose
import onnx.utils
import onnxruntime as ort
import pytest
from onnx.tools import update_model_dims

import onyx
from onyx import helper, numpy_helper, utils


def _chain() -> onyx.ir.Model:
    """x -> Add(w) -> a -> Relu -> b -> Mul(a) -> c -> Neg -> y, and a side output s = Sin(x)."""
    x = helper.make_tensor_value_info("x", 1, ["N", 3])
    nodes = [
        helper.make_node("Add", ["x", "w"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Mul", ["b", "a"], ["c"], name="mul"),
        helper.make_node("Neg", ["c"], ["y"], name="neg"),
        helper.make_node("Sin", ["x"], ["s"], name="sin"),
        helper.make_node("Cos", ["u"], ["v"], name="cos"),
    ]
    outs = [helper.make_tensor_value_info(n, 1, ["N", 3]) for n in ("y", "s", "v")]
    u = helper.make_tensor_value_info("u", 1, ["N", 3])
    w = numpy_helper.from_array(np.array([1, -2, 3], np.float32), "w")
    unused = numpy_helper.from_array(np.zeros(2, np.float32), "unused")
    g = helper.make_graph(nodes, "chain", [x, u], outs, initializer=[w, unused])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _run(model, feed):
    if isinstance(model, onyx.ir.Model):
        model = onyx.to_bytes(model)
    elif not isinstance(model, bytes):
        model = model.SerializeToString()
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feed)


def _io(model: onnx.ModelProto):
    return ([i.name for i in model.graph.input], [o.name for o in model.graph.output],
            sorted(n.name for n in model.graph.node), sorted(t.name for t in model.graph.initializer))  # fmt: skip


@pytest.mark.parametrize(
    "inputs, outputs",
    [(["a"], ["y"]), (["x"], ["c"]), (["b", "a"], ["c"]), (["x", "u"], ["y", "v"]), (["x"], ["s"])],
)
def test_extract_model_keeps_what_onnx_keeps(tmp_path, inputs, outputs):
    src = tmp_path / "m.onnx"
    onyx.save(_chain(), src)
    onnx.utils.extract_model(str(src), str(tmp_path / "o.onnx"), inputs, outputs)
    theirs = onnx.load(tmp_path / "o.onnx")
    ours = utils.extract_model(src, inputs, outputs, tmp_path / "y.onnx")
    mine = onnx.load(tmp_path / "y.onnx")
    assert _io(mine) == _io(theirs)
    types = lambda m: [(v.name, v.type) for v in [*m.graph.input, *m.graph.output]]
    assert types(mine) == types(theirs)
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal((2, 3)).astype(np.float32) for i in theirs.graph.input}
    for got, want in zip(onyx.InferenceSession(ours).run(None, feed), _run(theirs, feed)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_extract_model_errors():
    with pytest.raises(onyx.GraphError, match="no value named 'nope'"):
        utils.extract_model(_chain(), ["x"], ["nope"])
    with pytest.raises(onyx.GraphError, match=r"depend on the graph input\(s\) \['x'\]"):
        utils.extract_model(_chain(), ["b"], ["c"])
    with pytest.raises(TypeError, match="lists of names"):
        utils.extract_model(_chain(), "x", ["y"])


def _small(name: str, op: str, inp: str, out: str, scale: float) -> onyx.ir.Model:
    k = numpy_helper.from_array(np.array(scale, np.float32), f"k_{name}")
    g = helper.make_graph(
        [helper.make_node("Mul", [inp, k.name], ["t"], name="mul"), helper.make_node(op, ["t"], [out])],
        name, [helper.make_tensor_value_info(inp, 1, [2])],
        [helper.make_tensor_value_info(out, 1, [2])], initializer=[k],
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_merge_models_behaves_as_onnx_compose():
    m1, m2 = _small("one", "Relu", "x", "h", 2.0), _small("two", "Neg", "h_in", "y", 3.0)
    m1.metadata_props, m2.metadata_props = {"a": "1"}, {"b": "2"}
    p1, p2 = (onnx.load_from_string(onyx.to_bytes(m)) for m in (m1, m2))
    theirs = onnx.compose.merge_models(p1, p2, [("h", "h_in")], prefix1="p1/", prefix2="p2/")
    ours = utils.merge_models(m1, m2, [("h", "h_in")], prefix1="p1/", prefix2="p2/")
    mine = onnx.load_from_string(onyx.to_bytes(ours))
    assert _io(mine) == _io(theirs)
    assert {e.key: e.value for e in mine.metadata_props} == {"a": "1", "b": "2"}
    feed = {"p1/x": np.array([1.0, -2.0], np.float32)}
    np.testing.assert_allclose(
        onyx.InferenceSession(ours).run(None, feed)[0], _run(theirs, feed)[0]
    )
    np.testing.assert_allclose(_run(mine, feed)[0], [-6.0, 0.0])
    assert m1.graph.inputs[0].name == "x"  # the given models are left as they were


def test_merge_models_errors():
    m1, m2 = _small("one", "Relu", "x", "h", 2.0), _small("two", "Neg", "h_in", "y", 3.0)
    with pytest.raises(onyx.GraphError, match="value name.*'t'.*prefix"):
        utils.merge_models(m1, m2, [("h", "h_in")])
    with pytest.raises(onyx.GraphError, match="m1 has no output 'a/nope'"):
        utils.merge_models(m1, m2, [("nope", "h_in")], prefix1="a/", prefix2="b/")
    m3 = _small("three", "Neg", "h_in", "y", 3.0)
    m3.opset_imports = {"": 20}
    with pytest.raises(onyx.GraphError, match="version 21 by m1 and 20 by m2"):
        utils.merge_models(m1, m3, [("h", "h_in")], prefix1="a/", prefix2="b/")
    m1.metadata_props, m2.metadata_props = {"who": "one"}, {"who": "two"}
    with pytest.raises(onyx.GraphError, match="metadata 'who' is 'one' in m1 and 'two' in m2"):
        utils.merge_models(m1, m2, [("h", "h_in")], prefix1="a/", prefix2="b/")


def test_add_prefix_matches_onnx():
    m = _chain()
    theirs = onnx.compose.add_prefix(onnx.load_from_string(onyx.to_bytes(m)), "pre/")
    ours = onnx.load_from_string(onyx.to_bytes(utils.add_prefix(m, "pre/")))
    assert _io(ours) == _io(theirs)
    assert [list(n.input) + list(n.output) for n in ours.graph.node] == [
        list(n.input) + list(n.output) for n in theirs.graph.node
    ]


def test_update_inputs_outputs_dims_matches_onnx():
    m = _chain()
    dims_in = {"x": [4, -1], "u": ["batch", 3]}
    dims_out = {"y": [4, "c"], "s": [4, 3], "v": [-1, 3]}  # onnx needs every one listed
    theirs = update_model_dims.update_inputs_outputs_dims(
        onnx.load_from_string(onyx.to_bytes(m)), dims_in, dims_out
    )
    ours = utils.update_inputs_outputs_dims(m, dims_in, dims_out)
    assert ours is m
    mine = onnx.load_from_string(onyx.to_bytes(ours))
    assert [v.type for v in mine.graph.input] == [v.type for v in theirs.graph.input]
    assert [v.type for v in mine.graph.output] == [v.type for v in theirs.graph.output]
    with pytest.raises(onyx.GraphError, match="'x' dim 0 is fixed at 4; cannot set it to 5"):
        utils.update_inputs_outputs_dims(m, {"x": [5, 3]}, {})
    with pytest.raises(onyx.GraphError, match="no input 'q'"):
        utils.update_inputs_outputs_dims(m, {"q": [1]}, {})


def test_model_functions_take_paths(tmp_path):
    path = tmp_path / "m.onnx"
    onyx.save(_chain(), path)
    onyx.check(path)
    onyx.check(str(path), full=True)
    assert onyx.infer_shapes(path).graph.node("relu").outputs[0].type is not None
    assert onyx.convert_version(path, 20).opset("") == 20
    assert onyx.check(onnx.load(path)) is not None  # an onnx ModelProto is taken too
    with pytest.raises(onyx.FormatError, match="cannot read model file"):
        onyx.check(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="got int"):
        onyx.infer_shapes(3)
