"""The textual syntax: print-then-parse round trips, parsing onnx's printer output, parse errors.

onnx is the oracle: every official node test model and the model files of the backend test data
are printed and parsed; the protos are compared after ``normalize`` (below).
"""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import onnx
import onnx.parser
import onnx.printer
import pytest
from google.protobuf.descriptor import FieldDescriptor
from onnx import numpy_helper

import onyx
from onyx.errors import GraphError, ParseError
from onyx.text import parse_function, parse_graph, parse_model, print_function, print_model

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def _corpus() -> list[tuple[str, object]]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [(f"node/{c.name}", c.model) for c in collect_testcases(None)]
    for folder in ("simple", "pytorch-converted", "pytorch-operator", "light"):
        for path in sorted(glob.glob(os.path.join(DATA, folder, "*", "model.onnx"))):
            cases.append((f"{folder}/{os.path.basename(os.path.dirname(path))}", path))
    for folder in ("light",):
        for path in sorted(glob.glob(os.path.join(DATA, folder, "*.onnx"))):
            cases.append((f"{folder}/{os.path.basename(path)}", path))
    return cases


CORPUS = _corpus()
IDS = [name for name, _ in CORPUS]


def _proto(source) -> onnx.ModelProto:
    if isinstance(source, str):
        return onnx.load(source, load_external_data=False)
    return source


# What the text syntax cannot carry, and so is normalized away before comparing protos:
# - doc_string of everything but the model (the syntax has no place for them);
# - metadata_props below the model, type/dim denotations (no syntax either);
# - proto2 presence of scalar fields set to their default (text cannot tell "" from unset;
#   onnx's own parser sets e.g. node.domain = "" explicitly);
# - the storage form of tensor data (raw_data vs the typed *_data fields): both parsers write
#   typed fields; the decoded elements are compared bit for bit instead.
def normalize(msg) -> None:
    is_model = isinstance(msg, onnx.ModelProto)
    for field, value in msg.ListFields():
        name = field.name
        if name in ("doc_string", "metadata_props") and not is_model or name == "denotation":
            msg.ClearField(name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for v in value if _repeated(field) else [value]:
                normalize(v)
        elif (
            not _repeated(field) and field.containing_oneof is None and value == field.default_value
        ):
            msg.ClearField(name)
    if isinstance(msg, onnx.TensorProto) and msg.data_location != onnx.TensorProto.EXTERNAL:
        _canonical_data(msg)


def _repeated(field) -> bool:
    # protobuf 5.26 added is_repeated (and later deprecated label); 4.25 has only label
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def _canonical_data(t: onnx.TensorProto) -> None:
    if t.data_type == onnx.TensorProto.STRING:
        return
    arr = numpy_helper.to_array(t)
    for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
        t.ClearField(f)
    t.raw_data = np.ascontiguousarray(arr).tobytes()


def _normalized(p: onnx.ModelProto) -> onnx.ModelProto:
    p = onnx.ModelProto.FromString(p.SerializeToString())
    normalize(p)
    return p


def _assert_same(got: onnx.ModelProto, want: onnx.ModelProto) -> None:
    a, b = _normalized(got), _normalized(want)
    if a != b:  # a readable diff
        assert str(a) == str(b)
        assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


# --- 1. print with onyx, parse with onyx -----------------------------------------------------
@pytest.mark.parametrize("source", [s for _, s in CORPUS], ids=IDS)
def test_print_then_parse(source):
    original = _proto(source)
    model = onyx.load(original.SerializeToString())
    text = print_model(model)
    again = parse_model(text)
    _assert_same(onnx.ModelProto.FromString(onyx.to_bytes(again)), original)
    assert print_model(again) == text


# --- 2. parse what onnx's printer prints -----------------------------------------------------
@pytest.mark.parametrize("source", [s for _, s in CORPUS], ids=IDS)
def test_parse_onnx_printer_output(source):
    original = _proto(source)
    text = onnx.printer.to_text(original)
    try:
        expected = onnx.parser.parse_model(text)
    except onnx.parser.ParseError:
        # onnx's printer writes some things its own parser does not read back (e.g. "..." for
        # sub-byte, complex and raw string tensors, nothing for sparse tensors): not a test of us.
        pytest.skip("onnx cannot parse its own printer's output for this model")
    got = parse_model(text)
    _assert_same(onnx.ModelProto.FromString(onyx.to_bytes(got)), expected)


# --- 3. small hand-written cases -------------------------------------------------------------
SAMPLE = """
<ir_version: 10, opset_import: ["" : 21, "com.microsoft" : 1, "local" : 1],
 producer_name: "x", metadata_props: ["k": "v"]>
agraph (float[N, 3] X, float[3] w = {1.0, -2.5, nan}) => (float[N, 3] Y, seq(float[]) S)
   <int64 two = {2}, float[N, 3] T, map(int64, float) M, optional(sparse_tensor(float[2])) O> {
   T = Mul (X, w)
   [n1] Y, "" = com.microsoft.Fused:v2 <alpha: float = 1, k = 3, s = "a\\"b", ints = [1, -2],
                 empty: floats = [], t = float[2] tname {1, 2}, tp: type_proto = seq(int8[4])> (T, , X)
   S = If (c) <then_branch = then (float u) => (seq(float[]) s1) { s1 = SequenceConstruct (X) },
               else_branch: graph = "else" () => (s2) { s2 = SequenceEmpty () }>
   c = Cast <to = 9> (two)
   Z = local.f <a = 2.0> (X)
}
<domain: "local", opset_import: ["" : 18]>
f <a, b: float = 1.5> (x) => (y) {
   y = LeakyRelu <alpha: float = @a> (x)
}
"""


def test_sample_parses_and_round_trips():
    m = parse_model(SAMPLE)
    g = m.graph
    assert m.opset_imports == {"": 21, "com.microsoft": 1, "local": 1}
    assert m.metadata_props == {"k": "v"} and m.producer_name == "x"
    mul, fused, if_, cast, _call = g.nodes
    assert fused.domain == "com.microsoft" and fused.overload == "v2" and fused.name == "n1"
    assert fused.inputs[1] is None and fused.outputs[1] is None
    assert fused.inputs[0] is mul.outputs[0] and (fused, 0) in mul.outputs[0].uses
    assert (
        fused.attribute("alpha") == 1.0 and fused.attributes["alpha"].type == onyx.ir.AttrType.FLOAT
    )
    assert fused.attribute("k") == 3 and fused.attribute("s") == 'a"b'
    assert fused.attributes["empty"].type == onyx.ir.AttrType.FLOATS
    assert fused.attribute("t").name == "tname"
    assert if_.inputs[0] is cast.outputs[0]  # used before its definition, like the loader allows
    then = if_.attribute("then_branch")
    assert then.parent is if_ and then.nodes[0].inputs[0] is g.inputs[0]  # outer-scope use
    assert g.initializers["w"].const_value.numpy()[1] == -2.5
    assert np.isnan(g.initializers["w"].const_value.numpy()[2])
    fn = m.functions[("local", "f", "")]
    assert fn.attributes == ["a"] and fn.attribute_defaults["b"].value == 1.5
    assert fn.graph.nodes[0].attributes["alpha"].ref_attr_name == "a"
    text = print_model(m)
    assert print_model(parse_model(text)) == text
    assert str(m) == text


def test_sample_matches_onnx_parser():
    text = SAMPLE.replace('"else"', "else_g")  # onnx reads a quoted graph name as a string
    got = onnx.ModelProto.FromString(onyx.to_bytes(parse_model(text)))
    _assert_same(got, onnx.parser.parse_model(text))


EXTENSIONS = """
<ir_version: 10, opset_import: ["" : 21]>
g (float[N] x, opaque(com.x, Handle) h) => (y)
   <sparse_tensor(float[2,3]) sp = {float[2] {1.5, 2}, int64[2] {0, 4}},
    float[2] ext = ["location": "w.bin", "offset": "0", "length": "8"]> {
   y = Op <ts: tensors = [float[1] {1}, int64 {2}], gs: graphs = [a () => () {}, b () => () {}],
           tps: type_protos = [float[N], seq(int8)], s: sparse_tensor = sparse_tensor(float[4]) {
           float[1] {3}, int64[1] {2}}, e: tensors = []> (x, sp)
}
"""


def test_extensions_round_trip():
    m = parse_model(EXTENSIONS)
    g = m.graph
    assert g.sparse_initializers["sp"].const_value.to_dense().tolist() == [[1.5, 0, 0], [0, 2, 0]]
    assert g.initializers["ext"].const_value.external.location == "w.bin"
    node = g.nodes[0]
    assert [t.numpy().tolist() for t in node.attribute("ts")] == [[1.0], 2]
    assert [sub.name for sub in node.attribute("gs")] == ["a", "b"]
    assert all(sub.parent is node for sub in node.attribute("gs"))
    assert node.attribute("s").to_dense().tolist() == [0, 0, 3, 0]
    assert isinstance(g.inputs[1].type, onyx.ir.OpaqueType)
    text = print_model(m)
    again = parse_model(text)
    assert print_model(again) == text


def test_unnamed_values_get_fresh_names():
    x = onyx.ir.Value("x", onyx.ir.tensor_type("float", [2]))
    a = onyx.ir.Node("Relu", [x])
    b = onyx.ir.Node("Neg", [a.outputs[0]], [onyx.ir.Value("_v0")])
    g = onyx.ir.Graph([x], [b.outputs[0]], [a, b], name="g")
    text = print_model(onyx.ir.Model(g, opset_imports={"": 21}))
    again = parse_model(text).graph
    assert again.nodes[1].inputs[0] is again.nodes[0].outputs[0]
    assert again.nodes[0].outputs[0].name not in ("", "_v0")


def test_tensor_data_survives():
    values = np.array([0.1, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38], np.float32)
    g = onyx.ir.Graph(name="g")
    for i, (dt, arr) in enumerate([
        (onyx.DataType.FLOAT, values),
        (onyx.DataType.DOUBLE, np.array([0.1, 1e-310, -1.5e300])),
        (onyx.DataType.FLOAT16, np.array([0.1, -0.0, np.inf, np.nan, 6e-8], np.float16)),
        (onyx.DataType.STRING, np.array(['a"b\\c', "", "\n", "ü"], object)),
        (onyx.DataType.INT4, np.array([-8, 7, 0], onyx.DataType.INT4.numpy)),
        (onyx.DataType.UINT64, np.array([2**64 - 1], np.uint64)),
        (onyx.DataType.COMPLEX64, np.array([1 + 2j, -0.5j], np.complex64)),
    ]):  # fmt: skip
        g.add_initializer(onyx.ir.Value(f"t{i}", const_value=onyx.ir.Tensor(arr, dtype=dt)))
    m = onyx.ir.Model(g, opset_imports={"": 21})
    again = parse_model(print_model(m))
    for name, v in g.initializers.items():
        a, b = v.const_value.numpy(), again.graph.initializers[name].const_value.numpy()
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype == object:
            assert a.tolist() == b.tolist()
        else:
            assert a.tobytes() == b.tobytes()


def test_parse_graph_and_function():
    g = parse_graph("g (float[2] x) => (y) { y = Relu (x) }")
    assert g.name == "g" and g.outputs[0].producer is g.nodes[0]
    assert "y = Relu (x)" in str(g)
    fn = parse_function('<domain: "d", opset_import: ["": 18]> f (float x) => (y) { y = Neg (x) }')
    assert fn.id == ("d", "f", "") and fn.graph.value_info[0].type is not None
    assert (
        parse_function(print_function(fn)).graph.value_info[0].type == fn.graph.value_info[0].type
    )


@pytest.mark.parametrize(
    "text, line, col, expected",
    [
        ("<ir_version: 10>\ng (float x) => (y) {\n  y = Relu(x\n}", 4, 1, "',' or ')'"),
        ("g (float[N x) => (y) { }", 1, 12, "',' or ']'"),
        ("<ir_version: 10, bogus: 1> g () => () {}", 1, 18, "one of"),
        ("g (float x) => (y) {\n y = Relu <alpha = > (x) }", 2, 20, "attribute value"),
        ("g (float x) = (y) { }", 1, 13, "'=>'"),
        ('g (float x) => (y) { y = Relu (x) } "', 1, 37, "string"),
        ("g (float x) => (y) { y = Relu <a: ints = [1.5]> (x) }", 1, 43, "int value"),
        ("g (float[2] x = {1, 2, 3}) => () {}", 1, 13, "needs 2 values"),
    ],
)
def test_parse_errors(text, line, col, expected):
    with pytest.raises(ParseError) as info:
        parse_model(text)
    message = str(info.value)
    assert f"line {line}, column {col}" in message and expected in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("g (float x) => (y) { y = Relu (z) }", "undefined value 'z'"),
        ("g (float x) => (y) { y = Relu (x)\n y = Neg (x) }", "defined twice"),
        ("g (float x) => (q) { y = Relu (x) }", "undefined value 'q'"),
    ],
)
def test_graph_errors(text, expected):
    with pytest.raises(GraphError, match=expected):
        parse_model(text)
