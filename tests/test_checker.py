"""onyx.check: accepts every official model onnx accepts; rejects a corpus of broken models."""

from __future__ import annotations

import glob
import importlib.util
import os
import warnings

import numpy as np
import onnx
import onnx.checker
import pytest
from checker_corpus import CORPUS as SHAPE_CORPUS
from onnx import TensorProto, helper

import onyx
from onyx import ir
from onyx.cli import main as cli_main
from onyx.dtypes import DataType
from onyx.ir import Attribute, AttrType, ExternalData, Graph, Model, Node, Tensor, Value

F, I64 = TensorProto.FLOAT, TensorProto.INT64
DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


# --- the official models -------------------------------------------------------------------
def _node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return collect_testcases(None)


def _accepted_by_onnx(proto: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception:  # noqa: BLE001 - whatever onnx rejects, for any reason
        return False
    return True


def _failures(items) -> list[str]:
    failing = []
    for name, load in items:
        try:
            onyx.check(load(), full=True, collect=True)
        except onyx.OnyxError as e:
            failing.append(f"{name}: {str(e)[:200]}")
    return failing


@pytest.mark.slow
def test_official_node_test_models_pass():
    cases = [c for c in _node_cases() if _accepted_by_onnx(c.model)]
    assert len(cases) > 1500
    items = [(c.name, lambda c=c: onyx.load(c.model.SerializeToString())) for c in cases]
    failing = _failures(items)
    assert not failing, f"{len(failing)} failing:\n" + "\n".join(failing)


@pytest.mark.parametrize("kind", ["simple", "pytorch-converted", "pytorch-operator", "light"])
def test_official_model_files_pass(kind):
    paths = sorted(glob.glob(f"{DATA}/{kind}/*/model.onnx") + glob.glob(f"{DATA}/{kind}/*.onnx"))
    paths = [p for p in paths if _accepted_by_onnx(onnx.load(p))]
    assert paths
    failing = _failures([(os.path.relpath(p, DATA), lambda p=p: onyx.load(p)) for p in paths])
    assert not failing, f"{len(failing)} failing:\n" + "\n".join(failing)


# --- building broken models ----------------------------------------------------------------
def vi(name, elem=F, shape=(2,)):
    return helper.make_tensor_value_info(name, elem, shape)


def proto(nodes, inputs, outputs, *, opset=21, ir_version=10, inits=(), value_info=(),
          functions=(), opsets=None, sparse=()) -> onnx.ModelProto:  # fmt: skip
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits),
                          value_info=list(value_info), sparse_initializer=list(sparse))  # fmt: skip
    imports = [
        helper.make_opsetid(d, v)
        for d, v in (opsets if opsets is not None else {"": opset}).items()
    ]
    return helper.make_model(g, opset_imports=imports, ir_version=ir_version,
                             functions=list(functions))  # fmt: skip


def load(p: onnx.ModelProto) -> Model:
    return onyx.load(p.SerializeToString())


def relu_model(**kw) -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    return proto([node], [vi("x")], [vi("y")], **kw)


def ir_model(nodes, inputs, outputs, *, opset=21, ir_version=10, inits=()) -> Model:
    g = Graph(inputs, outputs, initializers=inits, name="g")
    for n in nodes:
        g.append(n)
    return Model(g, ir_version=ir_version, opset_imports={"": opset})


def fv(name, dtype=DataType.FLOAT):
    return Value(name, ir.tensor_type(dtype, [2]))


def if_model(x, then_nodes, then_out):
    """x, c -> If(c) with a then branch made of ``then_nodes`` returning ``then_out``."""
    c = Value("c", ir.tensor_type(DataType.BOOL, []))
    then = Graph(outputs=[then_out], name="then")
    for n in then_nodes:
        then.append(n)
    els = Graph(outputs=[x], name="else")
    y = fv("y")
    node = Node("If", [c], [y], {"then_branch": then, "else_branch": els}, name="if0")
    return ir_model([node], [x, c], [y])


def _cycle():
    x = fv("x")
    a, b = fv("a"), fv("b")
    n1 = Node("Add", [x, None], [a], name="n1")
    n2 = Node("Relu", [a], [b], name="n2")
    n1.set_input(1, b)
    return ir_model([n1, n2], [x], [b])


def _out_of_order():
    x, a, b = fv("x"), fv("a"), fv("b")
    n1 = Node("Relu", [x], [a], name="first")
    n2 = Node("Relu", [a], [b], name="second")
    return ir_model([n2, n1], [x], [b])


def _duplicate_name():
    x, y1, y2 = fv("x"), fv("y"), fv("y")
    return ir_model([Node("Relu", [x], [y1], name="a"), Node("Neg", [x], [y2], name="b")],
                    [x], [y2])  # fmt: skip


def _undefined_input():
    x, y = fv("x"), fv("y")
    return ir_model([Node("Add", [x, fv("ghost")], [y], name="add")], [x], [y])


def _input_is_node_output():
    x, y = fv("x"), fv("y")
    node = Node("Relu", [x], [y], name="r")
    return ir_model([node], [x, y], [y])


def _duplicate_graph_inputs():
    x1, x2, y = fv("x"), fv("x"), fv("y")
    return ir_model([Node("Add", [x1, x2], [y], name="add")], [x1, x2], [y])


def _dangling_output():
    x, y = fv("x"), fv("y")
    return ir_model([Node("Relu", [x], [y], name="r")], [x], [fv("nowhere")])


def _subgraph_uses_later_value():
    x, c = fv("x"), Value("c", ir.tensor_type(DataType.BOOL, []))
    late, y = fv("late"), fv("y")
    inner = fv("inner")
    then = Graph(outputs=[inner], name="then")
    then.append(Node("Relu", [late], [inner], name="uses_late"))
    els = Graph(outputs=[x], name="else")
    node = Node("If", [c], [y], {"then_branch": then, "else_branch": els}, name="if0")
    producer = Node("Neg", [x], [late], name="neg")
    return ir_model([node, producer], [x, c], [y])


def _sibling_subgraph_value():
    x, c = fv("x"), Value("c", ir.tensor_type(DataType.BOOL, []))
    t, e, y = fv("t"), fv("e"), fv("y")
    then = Graph(outputs=[t], name="then")
    then.append(Node("Relu", [x], [t], name="make_t"))
    els = Graph(outputs=[e], name="else")
    els.append(Node("Neg", [t], [e], name="steal_t"))
    node = Node("If", [c], [y], {"then_branch": then, "else_branch": els}, name="if0")
    return ir_model([node], [x, c], [y])


def _subgraph_bad_node():
    x, inner = fv("x"), fv("inner")
    return if_model(x, [Node("Relu", [x, x], [inner], name="bad_relu")], inner)


def _shadowing():
    x = fv("x")
    shadow = fv("x")  # a new value named like the outer graph's input
    return if_model(x, [Node("Relu", [x], [shadow], name="shadow")], shadow)


def _attr(name, kind, value):
    def build():
        x, y = fv("x"), fv("y")
        return ir_model([Node("LeakyRelu", [x], [y], [Attribute(name, kind, value)], name="lr")],
                        [x], [y])  # fmt: skip

    return build


def _graph_attr_none():
    x, c, y = fv("x"), Value("c", ir.tensor_type(DataType.BOOL, [])), fv("y")
    els = Graph(outputs=[x], name="else")
    then = Attribute("then_branch", AttrType.GRAPH, None)
    node = Node("If", [c], [y], [then, Attribute("else_branch", AttrType.GRAPH, els)], name="if0")
    return ir_model([node], [x, c], [y])


def _initializer(tensor: Tensor, as_input=True):
    def build():
        w = Value("w", ir.tensor_type(DataType.FLOAT, [2]) if as_input else None,
                  const_value=tensor)  # fmt: skip
        x, y = fv("x"), fv("y")
        return ir_model([Node("Add", [x, w], [y], name="add")], [x, w] if as_input else [x], [y],
                        inits=[w])  # fmt: skip

    return build


def _external(tmp_size: int | None):
    def build(tmp_path):
        if tmp_size is not None:
            (tmp_path / "w.bin").write_bytes(b"\0" * tmp_size)
        t = Tensor.stored("w", DataType.FLOAT, [2],
                          external=ExternalData("w.bin", 0, 8, str(tmp_path)))  # fmt: skip
        return _initializer(t)()

    return build


def _sparse(values, indices, dims, ir_version=10):
    def build():
        s = ir.SparseTensor(Tensor(np.asarray(values, np.float32), "s"),
                            Tensor(np.asarray(indices, np.int64)), dims)  # fmt: skip
        w = Value("s", const_value=s)
        x, y = fv("x"), fv("y")
        m = ir_model([Node("Add", [x, w], [y], name="add")], [x], [y], ir_version=ir_version)
        m.graph.add_initializer(w)
        return m

    return build


def _function(body_nodes, *, attrs=(), fn_opsets=None, model_opsets=None, ir_version=10,
              call_inputs=("x",), fn_inputs=("a",), fn_domain="local", attr_protos=()):  # fmt: skip
    fn = helper.make_function(fn_domain, "F", list(fn_inputs), ["b"], body_nodes,
                              [helper.make_opsetid(d, v)
                               for d, v in (fn_opsets or {"": 21}).items()],
                              list(attrs), attribute_protos=list(attr_protos))  # fmt: skip
    call = helper.make_node("F", list(call_inputs), ["y"], domain=fn_domain, name="call")
    return proto([call], [vi("x")], [vi("y")], functions=[fn], ir_version=ir_version,
                 opsets=model_opsets or {"": 21, fn_domain: 1})  # fmt: skip


def _function_key_mismatch():
    m = load(_function([helper.make_node("Relu", ["a"], ["b"], name="body")]))
    fn = next(iter(m.functions.values()))
    m.functions = {("local", "G", ""): fn}
    return m


def _ref(name, ref, kind=AttrType.FLOAT):
    return onnx.AttributeProto(name=name, ref_attr_name=ref, type=int(kind))


def _ref_attr_in_main():
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="lr")
    node.attribute.append(_ref("alpha", "a"))
    return proto([node], [vi("x")], [vi("y")])


def _sparse_needs_ir6():
    return _sparse([1.0], [0], [2], ir_version=5)()


def _model_with_graph_io(**kw):
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    return proto([node], kw.get("inputs", [vi("x")]), kw.get("outputs", [vi("y")]))


def _input_without_type():
    p = _model_with_graph_io(inputs=[helper.make_value_info("x", onnx.TypeProto())])
    p.graph.input[0].ClearField("type")
    return load(p)


def _output_without_type():
    p = _model_with_graph_io(outputs=[helper.make_value_info("y", onnx.TypeProto())])
    p.graph.output[0].ClearField("type")
    return load(p)


def _dims_negative():
    return load(_model_with_graph_io(inputs=[vi("x", F, (-3,))]))


def test_negative_dim_is_read_as_unknown_with_a_warning():
    # exporters write -1 for "unknown": the checker accepts it and warns, naming value and dim
    model = _dims_negative()
    assert model.graph.inputs[0].type.shape.dims == (None,)
    with pytest.warns(UserWarning, match=r"graph input 'x' declares dim 0 as -3"):
        onyx.check(model)


def _raw_data_short():
    t = TensorProto(name="w", data_type=F, dims=[2], raw_data=b"\0" * 4)
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add")
    return load(proto([node], [vi("x")], [vi("y")], inits=[t]))


def _sparse_proto_unsorted():
    values = helper.make_tensor("s", F, [2], [1.0, 2.0])
    indices = helper.make_tensor("i", I64, [2], [3, 1])
    s = helper.make_sparse_tensor(values, indices, [4])
    node = helper.make_node("Add", ["x", "s"], ["y"], name="add")
    return load(proto([node], [vi("x", F, (4,))], [vi("y", F, (4,))], sparse=[s]))


A = helper.make_node  # short alias for the corpus
TYPE_MISMATCH = proto([A("Add", ["x", "k"], ["y"], name="add")], [vi("x"), vi("k", I64)],
                      [vi("y")])  # fmt: skip
STRING_ADD = proto([A("Add", ["x", "x"], ["y"], name="add")], [vi("x", TensorProto.STRING)],
                   [vi("y", TensorProto.STRING)])  # fmt: skip
OUTPUT_CONFLICT = proto([A("Relu", ["x"], ["y"], name="r")], [vi("x")], [vi("y", I64)])
INIT_INPUT_DTYPE = proto([A("Identity", ["w"], ["y"], name="id")], [vi("w", I64)],
                         [vi("y", I64)], inits=[helper.make_tensor("w", F, [2], [1.0, 2.0])])  # fmt: skip
REF_ATTR_MAIN = _ref_attr_in_main()

# (id, build, expected fragment of the message). ``build`` returns an ir.Model; it may take the
# pytest tmp_path. Each model has exactly one defect.
CORPUS = [
    # IR version against the features used
    ("ir-version-unset", lambda: load(relu_model(ir_version=0)), "ir_version must be set"),
    ("ir-version-too-new", lambda: load(relu_model(ir_version=99)), "ir_version 99 is newer"),
    ("ir3-initializer-not-input", lambda: load(proto(
        [A("Add", ["x", "w"], ["y"], name="add")], [vi("x")], [vi("y")], ir_version=3, opset=8,
        inits=[helper.make_tensor("w", F, [2], [1.0, 2.0])])), "initializer 'w' is not a graph input"),
    ("functions-need-ir8", lambda: load(_function(
        [A("Relu", ["a"], ["b"], name="body")], ir_version=7,
        model_opsets={"": 13, "local": 1}, fn_opsets={"": 13})),
     "model-local functions needs IR version >= 8"),
    ("float8-needs-ir9", lambda: load(proto(
        [A("Identity", ["x"], ["y"], name="id")], [vi("x", TensorProto.FLOAT8E4M3FN)],
        [vi("y", TensorProto.FLOAT8E4M3FN)], ir_version=8, opset=19)),
     "float8e4m3fn needs IR version >= 9"),
    ("optional-type-needs-ir8", lambda: load(proto(
        [A("OptionalHasElement", ["x"], ["y"], name="has")],
        [helper.make_value_info("x", helper.make_optional_type_proto(
            helper.make_tensor_type_proto(F, [2])))],
        [vi("y", TensorProto.BOOL, ())], ir_version=7, opset=15)), "needs IR version >= 8"),
    ("sparse-needs-ir6", _sparse_needs_ir6, "needs IR version >= 6"),
    # opset imports
    ("no-opset-import", lambda: load(relu_model(opsets={})), "opset_import is empty"),
    ("opset-version-unknown", lambda: load(relu_model(opset=99)), "defines versions 1..28"),
    ("domain-not-imported", lambda: load(proto(
        [A("Binarizer", ["x"], ["y"], domain="ai.onnx.ml", name="bin")], [vi("x")], [vi("y")])),
     "node 'bin' (ai.onnx.ml::Binarizer) in graph 'g': domain 'ai.onnx.ml' is not in the opset"),
    # nodes against their schema
    ("op-too-new-for-opset", lambda: load(proto(
        [A("Gelu", ["x"], ["y"], name="gelu")], [vi("x")], [vi("y")], opset=19)),
     "node 'gelu' (Gelu) in graph 'g': operator Gelu does not exist in opset 19"),
    ("unknown-op", lambda: load(proto([A("Frobnicate", ["x"], ["y"], name="f")], [vi("x")],
                                       [vi("y")])), "node 'f' (Frobnicate) in graph 'g': no operator"),
    ("deprecated-op", lambda: load(proto(
        [A("Upsample", ["x", "s"], ["y"], name="up")], [vi("x"), vi("s")], [vi("y")], opset=10)),
     "node 'up' (Upsample) in graph 'g': operator Upsample is deprecated"),
    ("too-few-inputs", lambda: load(proto([A("Add", ["x"], ["y"], name="add")], [vi("x")],
                                          [vi("y")])), "node 'add' (Add) in graph 'g': has 1 inputs"),
    ("too-many-inputs", lambda: load(proto([A("Relu", ["x", "x"], ["y"], name="r")], [vi("x")],
                                           [vi("y")])), "node 'r' (Relu) in graph 'g': has 2 inputs"),
    ("too-many-outputs", lambda: load(proto([A("Relu", ["x"], ["y", "z"], name="r")], [vi("x")],
                                            [vi("y")])), "node 'r' (Relu) in graph 'g': has 2 outputs"),
    ("missing-single-input", lambda: load(proto(
        [A("Where", ["", "x", "x"], ["y"], name="w")], [vi("x")], [vi("y")])),
     "node 'w' (Where) in graph 'g': input 0 ('condition') is required but missing"),
    ("unknown-attribute", lambda: load(proto(
        [A("Relu", ["x"], ["y"], name="r", alpha=0.5)], [vi("x")], [vi("y")])),
     "node 'r' (Relu) in graph 'g': attribute 'alpha': Schema(Relu-14) has no such attribute"),
    ("attribute-wrong-type", lambda: load(proto(
        [A("LeakyRelu", ["x"], ["y"], name="lr", alpha=1)], [vi("x")], [vi("y")])),
     "node 'lr' (LeakyRelu) in graph 'g': attribute 'alpha': has type INT, but"),
    ("required-attribute-missing", lambda: load(proto(
        [A("Cast", ["x"], ["y"], name="cast")], [vi("x")], [vi("y")])),
     "node 'cast' (Cast) in graph 'g': required attribute 'to'"),
    ("attribute-undefined-type", _attr("alpha", AttrType.UNDEFINED, None), "type is UNDEFINED"),
    ("attribute-value-mismatch", _attr("alpha", AttrType.FLOAT, "fast"),
     "node 'lr' (LeakyRelu) in graph 'g': attribute 'alpha': a FLOAT attribute holds a str"),
    ("graph-attribute-empty", _graph_attr_none,
     "node 'if0' (If) in graph 'g': attribute 'then_branch': a GRAPH attribute carries no value"),
    # type constraints
    ("type-param-mismatch", lambda: load(TYPE_MISMATCH),
     "node 'add' (Add) in graph 'g': type parameter T is bound to tensor(float)"),
    ("type-not-allowed", lambda: load(STRING_ADD),
     "node 'add' (Add) in graph 'g': input 0 ('A', value 'x') has type tensor(string)"),
    ("declared-output-type-conflict", lambda: load(OUTPUT_CONFLICT),
     "node 'r' (Relu) in graph 'g': type parameter T is bound to tensor(float)"),
    # single assignment and topological order
    ("value-defined-twice", _duplicate_name, "node 'b' (Neg) in graph 'g': output 'y' is defined twice"),
    ("graph-input-defined-twice", _duplicate_graph_inputs, "graph input 'x' is defined twice"),
    ("input-is-node-output", _input_is_node_output, "graph input 'y' is also the output of"),
    ("nodes-out-of-order", _out_of_order,
     "node 'second' (Relu) in graph 'g': input 0 'a' is used before it is defined: the nodes are not in topological order"),
    ("cycle", _cycle, "node 'n1' (Add) in graph 'g': input 1 'b' is used before it is defined: the nodes form a cycle"),
    ("undefined-input", _undefined_input, "node 'add' (Add) in graph 'g': input 1 'ghost' is not defined"),
    # graph inputs, outputs and initializers
    ("main-input-without-type", _input_without_type, "graph 'g': graph input 'x' has no type"),
    ("main-output-without-type", _output_without_type, "graph 'g': graph output 'y' has no type"),
    ("graph-output-undefined", _dangling_output, "graph 'g': graph output 'nowhere' is not defined"),
    ("initializer-undefined-dtype", _initializer(Tensor.stored("w", 0, [2], raw=b"\0" * 8)),
     "tensor 'w' has element type UNDEFINED"),
    ("initializer-raw-data-short", _raw_data_short, "tensor 'w': raw_data holds 4 bytes"),
    ("initializer-input-dtype-mismatch", lambda: load(INIT_INPUT_DTYPE),
     "graph input 'w' is declared int64 but its initializer holds float"),
    # subgraph scoping
    ("subgraph-uses-later-outer-value", _subgraph_uses_later_value,
     "node 'uses_late' (Relu) in graph 'g/if0.then_branch': input 0 'late' is defined in another graph"),
    ("subgraph-uses-sibling-value", _sibling_subgraph_value,
     "node 'steal_t' (Neg) in graph 'g/if0.else_branch': input 0 't' is defined in another graph"),
    ("subgraph-bad-node", _subgraph_bad_node, "node 'bad_relu' (Relu) in graph 'g/if0.then_branch': has 2 inputs"),
    ("subgraph-shadows-outer-name", _shadowing,
     "node 'shadow' (Relu) in graph 'g/if0.then_branch': output 'x' is defined twice (single assignment) (also in enclosing graph 'g')"),
    # attribute references
    ("ref-attr-outside-function", lambda: load(REF_ATTR_MAIN),
     "node 'lr' (LeakyRelu) in graph 'g': attribute 'alpha': refers to attribute 'a' of an enclosing function"),
    ("ref-attr-undeclared", lambda: load(_function([_ref_node("beta")], attrs=["alpha"])),
     "node 'body' (LeakyRelu) in graph 'function local::F': attribute 'alpha': refers to attribute 'beta'"),
    # model-local functions
    ("function-body-unknown-op", lambda: load(_function([A("Nope", ["a"], ["b"], name="body")])),
     "node 'body' (Nope) in graph 'function local::F': no operator Nope"),
    ("function-domain-not-imported", lambda: load(_function(
        [A("Relu", ["a"], ["b"], name="body")], model_opsets={"": 21})),
     "function local::F: its domain 'local' is not in the model's opset imports"),
    ("function-body-domain-not-imported", lambda: load(_function(
        [A("Binarizer", ["a"], ["b"], domain="ai.onnx.ml", name="body")])),
     "node 'body' (ai.onnx.ml::Binarizer) in graph 'function local::F': domain 'ai.onnx.ml' is not in the opset imports of function F"),
    ("function-call-too-many-inputs", lambda: load(_function(
        [A("Relu", ["a"], ["b"], name="body")], call_inputs=("x", "x"))),
     "node 'call' (local::F) in graph 'g': has 2 inputs, but function local::F takes at most 1"),
    ("function-call-unknown-attribute", lambda: _call_with_attr(),
     "node 'call' (local::F) in graph 'g': attribute 'gamma' is not declared by function"),
    ("function-opset-incompatible", lambda: load(_function(
        [A("Softmax", ["a"], ["b"], name="body")], fn_opsets={"": 13},
        model_opsets={"": 12, "local": 1})),
     "node 'body' (Softmax) in graph 'function local::F': the function imports ai.onnx opset 13"),
    ("function-key-mismatch", _function_key_mismatch, "function local::F: stored under"),
    # sparse tensors
    ("sparse-index-out-of-range", _sparse([1.0], [7], [2]), "sparse tensor 's': linear index 7 lies outside"),
    ("sparse-coordinate-out-of-range", _sparse([1.0], [[0, 5]], [2, 2]),
     "sparse tensor 's': index [0, 5] lies outside dims [2, 2]"),
    ("sparse-indices-unsorted", _sparse_proto_unsorted, "sparse tensor 's': indices must be in strictly increasing"),
    ("sparse-indices-bad-shape", _sparse([1.0, 2.0], [0], [2]), "sparse tensor 's': indices have dims [1]"),
    ("sparse-values-not-1d", _sparse([[1.0]], [0], [2]), "sparse tensor 's': values must be 1-D"),
    # external data
    ("external-data-missing", _external(None), "tensor 'w': external data file 'w.bin' not found"),
    ("external-data-too-short", _external(4), "tensor 'w': external data 'w.bin' holds 4 bytes"),
]  # fmt: skip


def _ref_node(ref: str):
    node = A("LeakyRelu", ["a"], ["b"], name="body")
    node.attribute.append(_ref("alpha", ref))
    return node


def _call_with_attr():
    p = _function([A("Relu", ["a"], ["b"], name="body")])
    p.graph.node[0].attribute.append(helper.make_attribute("gamma", 1.0))
    return load(p)


def _build(build, tmp_path) -> Model:
    return build(tmp_path) if build.__code__.co_argcount == 1 else build()


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_broken_model_is_rejected(build, expected, tmp_path):
    model = _build(build, tmp_path)
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model)
    assert expected in str(info.value)
    # one defect each: collecting finds exactly the one
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, collect=True)
    assert len(info.value.errors) == 1, info.value.errors


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 40
    assert len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(
    "model", [TYPE_MISMATCH, STRING_ADD, OUTPUT_CONFLICT, INIT_INPUT_DTYPE, REF_ATTR_MAIN],
    ids=["type-param-mismatch", "type-not-allowed", "output-conflict", "init-input-dtype",
         "ref-attr-in-main-graph"],
)  # fmt: skip
def test_defects_onnx_misses_are_caught(model):
    onnx.checker.check_model(model, full_check=False)  # onnx's checker lets it through
    with pytest.raises(onyx.ValidationError):
        onyx.check(load(model))


def test_collect_reports_every_defect():
    x, y = fv("x"), fv("y")
    nodes = [
        Node("Relu", [x, x], [fv("a")], name="two_inputs"),
        Node("Cast", [x], [fv("b")], name="no_to"),
        Node("Add", [x, fv("ghost")], [y], name="ghost_reader"),
    ]
    model = ir_model(nodes, [x], [y])
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, collect=True)
    errors = info.value.errors
    assert len(errors) == 3
    assert any("'two_inputs' (Relu)" in e for e in errors)
    assert any("'no_to' (Cast)" in e for e in errors)
    assert any("'ghost_reader' (Add)" in e for e in errors)
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model)
    assert info.value.errors == [errors[0]]


def test_valid_in_memory_model_with_subgraph_and_function_passes():
    x, inner = fv("x"), fv("inner")
    model = if_model(x, [Node("Relu", [x], [inner], name="relu")], inner)
    assert onyx.check(model) == []
    p = _function([_ref_node("alpha")], attrs=["alpha"])
    p.graph.node[0].attribute.append(helper.make_attribute("alpha", 0.5))
    onyx.check(load(p))


def test_full_check_runs_or_notes_shape_inference():
    model = load(relu_model())
    notes = onyx.check(model, full=True)
    if importlib.util.find_spec("onyx.shapes") is None:
        assert any("shape inference skipped" in n for n in notes)


def test_check_command(tmp_path, capsys):
    good = tmp_path / "good.onnx"
    good.write_bytes(relu_model().SerializeToString())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(TYPE_MISMATCH.SerializeToString())
    assert cli_main(["check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli_main(["check", str(bad), "--all"]) == 1
    assert "node 'add' (Add)" in capsys.readouterr().err


# --- shape errors: what only inference can prove -------------------------------------------


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in SHAPE_CORPUS],
                         ids=[c[0] for c in SHAPE_CORPUS])  # fmt: skip
def test_shape_defect_is_rejected_naming_the_node(build, expected):
    model = load(build())
    assert onyx.check(model) == []  # structurally sound: only inference finds the defect
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, full=True)
    assert expected in str(info.value)
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, full=True, collect=True)
    assert info.value.errors == [str(info.value)], info.value.errors  # one defect each


def test_shape_corpus_is_big_enough():
    assert len(SHAPE_CORPUS) >= 60
    assert len({c[0] for c in SHAPE_CORPUS}) == len(SHAPE_CORPUS)


def _three_shape_defects() -> onnx.ModelProto:
    nodes = [A("Add", ["a", "b"], ["s"], name="bad_add"),
             A("MatMul", ["a", "c"], ["p"], name="bad_mm"),
             A("Softmax", ["a"], ["q"], name="bad_softmax", axis=3),
             A("Relu", ["a"], ["r"], name="fine")]  # fmt: skip
    ins = [helper.make_tensor_value_info(n, F, s) for n, s in (("a", [2, 3]), ("b", [4]),
                                                                ("c", [4, 5]))]  # fmt: skip
    outs = [helper.make_tensor_value_info(n, F, None) for n in ("s", "p", "q", "r")]
    return proto(nodes, ins, outs)


def test_collect_reports_every_shape_problem():
    model = load(_three_shape_defects())
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, full=True, collect=True)
    errors = info.value.errors
    assert len(errors) == 3, errors
    for name in ("'bad_add' (Add)", "'bad_mm' (MatMul)", "'bad_softmax' (Softmax)"):
        assert sum(name in e for e in errors) == 1, (name, errors)
    with pytest.raises(onyx.ValidationError) as info:
        onyx.check(model, full=True)
    assert info.value.errors == [errors[0]]


def test_non_strict_inference_hands_problems_over_or_warns():
    model = load(_three_shape_defects())
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # handed over: no warning at all
        inferred = onyx.infer_shapes(model, problems=problems)
    assert len(problems) == 3 and "'bad_mm' (MatMul)" in problems[1]
    r = next(v for v in inferred.graph.outputs if v.name == "r")
    assert r.type.shape.dims == (2, 3)  # inference went on past the problems
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        onyx.infer_shapes(model)
    assert [str(w.message) for w in caught] == problems


def test_shapes_command_lists_problems(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    path.write_bytes(_three_shape_defects().SerializeToString())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli_main(["shapes", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "3 problem(s):" in out
    assert "- node 'bad_softmax' (Softmax) in graph 'g': attribute axis 3" in out


# --- empty and missing types are unknown, not contradictions -------------------------------
def _branch_outputs_untyped(body_kind: str) -> onnx.ModelProto:
    """If branches (or a Loop body) whose outputs carry an empty type or none, as exporters
    write them; the main graph declares float[128]."""
    empty = helper.make_value_info("t", onnx.TypeProto())  # type present but empty
    bare = onnx.ValueInfoProto(name="e")  # no type at all
    if body_kind == "if":
        then = helper.make_graph([A("Relu", ["x"], ["t"], name="relu")], "then", [], [empty])
        other = helper.make_graph([A("Neg", ["x"], ["e"], name="neg")], "else", [], [bare])
        node = A("If", ["c"], ["y"], name="if0", then_branch=then, else_branch=other)
        ins = [vi("x", F, [128]), vi("c", TensorProto.BOOL, [])]
    else:
        nodes = [A("Identity", ["c_in"], ["c_out"], name="cond"),
                 A("Relu", ["v_in"], ["t"], name="relu")]  # fmt: skip
        body_ins = [helper.make_value_info("i", onnx.TypeProto()),
                    onnx.ValueInfoProto(name="c_in"),
                    helper.make_value_info("v_in", onnx.TypeProto())]  # fmt: skip
        outs = [onnx.ValueInfoProto(name="c_out"), empty]
        body = helper.make_graph(nodes, "body", body_ins, outs)
        node = A("Loop", ["n", "c", "x"], ["y"], name="loop0", body=body)
        ins = [vi("n", I64, []), vi("c", TensorProto.BOOL, []), vi("x", F, [128])]
    return proto([node], ins, [vi("y", F, [128])])


@pytest.mark.parametrize("body_kind", ["if", "loop"])
def test_empty_or_missing_subgraph_types_are_unknown(body_kind):
    p = _branch_outputs_untyped(body_kind)
    onnx.checker.check_model(p, full_check=True)  # onnx accepts it too
    model = load(p)
    assert onyx.check(model, full=True, collect=True) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inferred = onyx.infer_shapes(model)
    y = inferred.graph.outputs[0].type
    assert y.dtype == DataType.FLOAT and y.shape.dims == (128,)
    node = inferred.graph.nodes[0]
    sub = node.attributes["then_branch" if body_kind == "if" else "body"].value
    t = next(v for v in sub.outputs if v.name == "t")
    assert t.type.dtype == DataType.FLOAT  # the element type inference finds is kept


def test_empty_type_still_meets_real_contradictions():
    p = _branch_outputs_untyped("if")
    p.graph.output[0].type.tensor_type.elem_type = I64  # the branches give float
    model = load(p)
    with pytest.raises(onyx.ValidationError, match=r"'if0' \(If\).*'y'.*contradicts"):
        onyx.check(model, full=True)
