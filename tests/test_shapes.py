"""Shape and type inference: agreement with onnx on the official node tests, real exports,
subgraphs, functions, strict conflicts, symbolic dims and data propagation."""

from __future__ import annotations

import pathlib
import sys
import warnings

import numpy as np
import onnx
import onnx.shape_inference
import pytest
from onnx import TensorProto, helper

import onyx
from onyx.ir import SequenceType, TensorType
from onyx.shapes import infer_shapes, shapes_table

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _load(graph, opset=18, functions=(), ir_version=10):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              functions=list(functions), ir_version=ir_version)  # fmt: skip
    return onyx.load(model.SerializeToString())


def _shape(model, name):
    for v in [*model.graph.outputs, *model.graph.value_info]:
        if v.name == name:
            return None if v.type.shape is None else list(v.type.shape.dims)
    raise KeyError(name)


def _type(model, name):
    for v in [*model.graph.outputs, *model.graph.value_info]:
        if v.name == name:
            return v.type
    raise KeyError(name)


# --- 1. agreement with onnx on every official node test ------------------------------------
def _ref(tp):
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        tt = tp.tensor_type
        dims = (
            None
            if not tt.HasField("shape")
            else tuple(d.dim_value if d.HasField("dim_value") else "?" for d in tt.shape.dim)
        )
        return ("T", tt.elem_type, dims)
    if kind in ("sequence_type", "optional_type"):
        return (kind[0].upper(), _ref(getattr(tp, kind).elem_type))
    return None


def _mine(t):
    if isinstance(t, TensorType):
        dims = (
            None
            if t.shape is None
            else tuple(d if isinstance(d, int) else "?" for d in t.shape.dims)
        )
        return ("T", int(t.dtype), dims)
    if isinstance(t, SequenceType):
        return ("S", _mine(t.elem_type))
    if t is not None and type(t).__name__ == "OptionalType":
        return ("O", _mine(t.elem_type))
    return None


def _agrees(ref, mine) -> bool:
    if ref is None:
        return True
    if mine is None or ref[0] != mine[0]:
        return False
    if ref[0] in "SO":
        return _agrees(ref[1], mine[1])
    if ref[1] not in (0, mine[1]):
        return False
    if ref[2] is None:
        return True
    if mine[2] is None or len(ref[2]) != len(mine[2]):
        return False
    return not any(isinstance(a, int) and isinstance(b, int) and a != b
                   for a, b in zip(ref[2], mine[2]))  # fmt: skip


def test_agrees_with_onnx_on_official_node_tests():
    from onnx.backend.test.case.node import collect_testcases

    total, bad, exact = 0, [], 0
    for case in collect_testcases(None):
        stripped = onnx.ModelProto()
        stripped.CopyFrom(case.model)
        for out in stripped.graph.output:
            out.ClearField("type")
        del stripped.graph.value_info[:]
        try:
            ref = onnx.shape_inference.infer_shapes(stripped, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001, S112 - onnx cannot infer: nothing to compare
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mine = infer_shapes(onyx.load(stripped.SerializeToString()))
            types = {v.name: v.type for v in mine.graph.outputs}
        except onyx.OnyxError as e:
            types = {"": str(e)}
        for out in ref.graph.output:
            r = _ref(out.type)
            if r is None or r == ("T", 0, None):
                continue
            total += 1
            m = _mine(types.get(out.name))
            if not _agrees(r, m):
                bad.append(f"{case.name}:{out.name} onnx={r} onyx={m}")
            elif r == m:
                exact += 1
    rate = 1 - len(bad) / total
    print(f"agreement {rate:.4f} over {total} outputs ({exact} identical)")
    assert rate >= 0.99, f"agreement {rate:.4f} < 0.99; mismatches:\n" + "\n".join(bad)


# --- 2. real exports ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert_base", "gpt2_small"])
def test_transformer_exports_fully_shaped(name):
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    from export_models import export

    model = onyx.load(str(export(name)))
    onyx.check(model, full=True)  # no shape problem in a real export
    inferred = infer_shapes(model)
    values = [v for n in inferred.graph.nodes for v in n.outputs if v is not None]
    ranked = [v for v in values if isinstance(v.type, TensorType) and v.type.shape is not None]
    static = [v for v in ranked if v.type.shape.is_static]
    assert len(ranked) == len(values), [v.name for v in values if v not in ranked][:20]
    assert len(static) >= 0.95 * len(values), f"{len(static)}/{len(values)} fully known"


# --- 3. focused behaviour ----------------------------------------------------------------
def test_transformer_shape_chain_is_symbolic_and_known():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Concat", ["b1", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        helper.make_node("Reshape", ["y", "flat"], ["z"]),
        helper.make_node("Flatten", ["y"], ["f"], axis=2),
        helper.make_node("Concat", ["x", "x"], ["c"], axis=1),
    ]
    inits = [
        helper.make_tensor("zero", I64, [], [0]),
        helper.make_tensor("ax", I64, [1], [0]),
        helper.make_tensor("rest", I64, [3], [128, 12, 64]),
        helper.make_tensor("flat", I64, [2], [0, -1]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, ["N", 128, 768])],
        [helper.make_tensor_value_info(n, F, None) for n in "yzfc"],
        inits,
    )
    m = infer_shapes(_load(g))
    assert _shape(m, "target") == [4]
    assert _shape(m, "y") == ["N", 128, 12, 64]
    assert _shape(m, "z") == ["N", 128 * 768]
    assert _shape(m, "f")[1] == 768
    assert _shape(m, "f")[0] in ("128*N", "N*128")
    assert _shape(m, "c") == ["N", 256, 768]


def test_data_propagation_through_arithmetic_and_constant_of_shape():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "one", "two"], ["w"]),  # [6]
        helper.make_node("Mul", ["w", "two"], ["w2"]),  # [12]
        helper.make_node("Cast", ["w2"], ["w3"], to=I64),
        helper.make_node("Concat", ["w3", "w3"], ["dims"], axis=0),
        helper.make_node("ConstantOfShape", ["dims"], ["k"]),
        helper.make_node("Range", ["zero", "w", "step"], ["r"]),
        helper.make_node("Expand", ["x", "dims3"], ["e"]),
        helper.make_node("Tile", ["x", "reps"], ["t"]),
    ]
    inits = [
        helper.make_tensor("one", I64, [1], [1]),
        helper.make_tensor("two", I64, [1], [2]),
        helper.make_tensor("zero", I64, [], [0]),
        helper.make_tensor("step", I64, [], [3]),
        helper.make_tensor("dims3", I64, [3], [5, 1, 6]),
        helper.make_tensor("reps", I64, [2], [2, 3]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["B", 6])],
                          [helper.make_tensor_value_info(n, t, None)
                           for n, t in zip("kret", (F, I64, F, F))], inits)  # fmt: skip
    g.node[6].input[1] = "w0"
    g.node.insert(6, helper.make_node("Squeeze", ["w", "zero1"], ["w0"]))
    g.initializer.append(helper.make_tensor("zero1", I64, [1], [0]))
    m = infer_shapes(_load(g))
    assert _shape(m, "k") == [12, 12]
    assert _type(m, "k").dtype == onyx.DataType.FLOAT
    assert _shape(m, "r") == [2]
    assert _shape(m, "e") == [5, "B", 6]
    assert _shape(m, "t")[1] == 18


def test_if_branches_are_merged():
    then = helper.make_graph([helper.make_node("Add", ["x", "x"], ["a"])], "then", [],
                             [helper.make_tensor_value_info("a", F, None)])  # fmt: skip
    other = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["b"], axis=0)], "else", [],
                              [helper.make_tensor_value_info("b", F, None)])  # fmt: skip
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                        helper.make_tensor_value_info("x", F, [2, 3])],
                          [helper.make_tensor_value_info("y", F, None)])  # fmt: skip
    m = infer_shapes(_load(g))
    y = _shape(m, "y")
    assert len(y) == 2 and y[1] == 3 and isinstance(y[0], str)
    inner = m.graph.nodes[0].attributes["then_branch"].value
    assert inner.outputs[0].type.shape.dims == (2, 3)


def test_loop_and_scan_outputs():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Add", ["acc", "x"], ["acc_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan_out"])], "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc", F, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F, None),
         helper.make_tensor_value_info("scan_out", F, None)])  # fmt: skip
    loop = helper.make_node("Loop", ["n", "", "init"], ["final", "stacked"], body=body)
    sbody = helper.make_graph(
        [helper.make_node("Add", ["s", "row"], ["s2"]),
         helper.make_node("Identity", ["s2"], ["o"])], "sbody",
        [helper.make_tensor_value_info("s", F, None), helper.make_tensor_value_info("row", F, None)],
        [helper.make_tensor_value_info("s2", F, None), helper.make_tensor_value_info("o", F, None)],
    )  # fmt: skip
    scan = helper.make_node("Scan", ["init", "seq"], ["last", "all"], body=sbody,
                            num_scan_inputs=1, scan_output_axes=[1])  # fmt: skip
    g = helper.make_graph(
        [loop, scan], "g",
        [helper.make_tensor_value_info("n", I64, []), helper.make_tensor_value_info("x", F, [4]),
         helper.make_tensor_value_info("init", F, [4]),
         helper.make_tensor_value_info("seq", F, [7, 4])],
        [helper.make_tensor_value_info(n, F, None) for n in ("final", "stacked", "last", "all")],
    )  # fmt: skip
    m = infer_shapes(_load(g))
    assert _shape(m, "final") == [4]
    stacked = _shape(m, "stacked")
    assert len(stacked) == 2 and stacked[1] == 4
    assert _shape(m, "last") == [4]
    assert _shape(m, "all") == [4, 7]


def test_model_local_function_is_inferred_with_call_types():
    fn = helper.make_function(
        "local", "Double", ["a"], ["b"],
        [helper.make_node("Concat", ["a", "a"], ["b"], axis=0)],
        [helper.make_opsetid("", 18)])  # fmt: skip
    g = helper.make_graph([helper.make_node("Double", ["x"], ["y"], domain="local"),
                           helper.make_node("Double", ["y"], ["z"], domain="local")], "g",
                          [helper.make_tensor_value_info("x", F, [2, "K"])],
                          [helper.make_tensor_value_info("z", F, None)])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18),
                                                helper.make_opsetid("local", 1)],
                              functions=[fn])  # fmt: skip
    m = infer_shapes(onyx.load(model.SerializeToString()))
    assert _shape(m, "y") == [4, "K"]
    assert _shape(m, "z") == [8, "K"]


def _conflicting():
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"], name="mm")], "g",
                          [helper.make_tensor_value_info("a", F, [2, 3]),
                           helper.make_tensor_value_info("b", F, [3, 5])],
                          [helper.make_tensor_value_info("c", F, [2, 7])])  # fmt: skip
    return _load(g)


def test_strict_conflict_names_node_and_value():
    with pytest.raises(onyx.ValidationError, match=r"'mm'.*MatMul.*'c'"):
        infer_shapes(_conflicting(), strict=True)
    with pytest.raises(onyx.ValidationError, match="'c'"):
        onyx.check(_conflicting(), full=True)


def test_non_strict_conflict_warns_and_keeps_declared():
    with pytest.warns(UserWarning, match="contradicts"):
        m = infer_shapes(_conflicting())
    assert _shape(m, "c") == [2, 7]


def test_strict_broadcast_error():
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"], name="add")], "g",
                          [helper.make_tensor_value_info("a", F, [2, 3]),
                           helper.make_tensor_value_info("b", F, [4])],
                          [helper.make_tensor_value_info("c", F, None)])  # fmt: skip
    with pytest.raises(onyx.ValidationError, match="add"):
        infer_shapes(_load(g), strict=True)


def test_declared_symbols_merge_and_caller_untouched(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["h"]),
                           helper.make_node("Transpose", ["h"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", F, [None, 3])],
                          [helper.make_tensor_value_info("y", F, ["C", "batch"])])  # fmt: skip
    original = _load(g)
    m = infer_shapes(original)
    assert _shape(m, "y") == [3, "batch"]
    assert _shape(m, "h")[1] == 3 and str(_shape(m, "h")[0]).startswith("unk__")
    assert original.graph.value_info == []  # the caller's model is not changed
    assert original.graph.outputs[0].type.shape.dims == ("C", "batch")
    onyx.save(m, tmp_path / "m.onnx")
    back = onnx.load(str(tmp_path / "m.onnx"))
    assert [v.name for v in back.graph.value_info] == ["h"]
    table = shapes_table(m)
    assert "h" in table and "float" in table and "[3, batch]" in table


def test_data_dependent_ops_get_rank_and_fresh_symbols():
    g = helper.make_graph([helper.make_node("NonZero", ["x"], ["nz"]),
                           helper.make_node("Unique", ["x"], ["u"])], "g",
                          [helper.make_tensor_value_info("x", F, [2, 3])],
                          [helper.make_tensor_value_info("nz", I64, None),
                           helper.make_tensor_value_info("u", F, None)])  # fmt: skip
    m = infer_shapes(_load(g))
    nz, u = _shape(m, "nz"), _shape(m, "u")
    assert nz[0] == 2 and isinstance(nz[1], str) and len(u) == 1 and u[0] != nz[1]


def test_sequence_ops():
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0),
             helper.make_node("SequenceAt", ["s", "i"], ["e"]),
             helper.make_node("SequenceLength", ["s"], ["n"])]  # fmt: skip
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2, 5])],
                          [helper.make_tensor_value_info("e", F, None),
                           helper.make_tensor_value_info("n", I64, None)],
                          [helper.make_tensor("i", I64, [], [0])])  # fmt: skip
    m = infer_shapes(_load(g))
    assert _shape(m, "e") == [2]
    assert _shape(m, "n") == []
    assert isinstance(_type(m, "s"), SequenceType)


def test_every_schema_operator_has_a_rule():
    from onyx import defs
    from onyx.shapes.rules import RULES

    ops = {(s.domain, s.name) for s in defs.schemas()}
    assert not sorted(ops - set(RULES))


def test_constant_values_match_numpy():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    g = helper.make_graph([helper.make_node("Shape", ["x"], ["s"], start=-1)], "g",
                          [helper.make_tensor_value_info("x", F, [2, 3])],
                          [helper.make_tensor_value_info("s", I64, None)])  # fmt: skip
    m = infer_shapes(_load(g))
    assert _shape(m, "s") == [1]
    assert x.shape[-1:] == (3,)
