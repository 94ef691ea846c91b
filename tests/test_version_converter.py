"""The version converter: official node cases moved to neighbouring opsets, each adapter both ways,
and the conversions it must refuse."""

from __future__ import annotations

import collections
import functools

import numpy as np
import pytest
from kernel_harness import all_node_cases, as_numpy, compare, undefined_elements

import onyx
from onyx import defs, ir
from onyx.version_converter import ADAPTERS, min_ir_version

LAST = 28


# --- the official node cases at neighbouring opsets -----------------------------------------
def _opset(model) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def _targets(case) -> list[int]:
    """model opset -1 and +1 where every node's operator exists (ai.onnx-only cases)."""
    model = case.model
    if any(imp.domain not in ("", "ai.onnx") for imp in model.opset_import):
        return []
    src = _opset(model)
    if src is None:
        return []
    ops = {n.op_type for n in model.graph.node}
    return [
        t
        for t in (src - 1, src + 1)
        if 1 <= t <= LAST and all(defs.has_schema(op, t) for op in ops)
    ]


def _outputs_match(case, model: ir.Model) -> None:
    """Run ``model`` on every data set of ``case``; AssertionError when an output differs."""
    session = onyx.InferenceSession(model)
    names = [v.name for v in model.graph.inputs if v.const_value is None]
    for inputs, expected in case.data_sets:
        got = session.run(None, {n: as_numpy(v) for n, v in zip(names, inputs)})
        assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            undefined = undefined_elements(case.model, inputs, i, e)
            compare(case.name, g, e, case.rtol, case.atol, undefined)


@functools.cache
def _baseline_ok(name: str) -> bool:
    """Whether the unconverted case reproduces its outputs in onyx (random ops, bf16 do not)."""
    case = all_node_cases()[name]
    try:
        _outputs_match(case, onyx.load(case.model.SerializeToString()))
    except Exception:  # noqa: BLE001
        return False
    return True


def _run_case(case, target: int) -> tuple[str, str]:
    """('ok' | 'refused' | 'baseline' | a failure category, detail) for one conversion."""
    model = onyx.load(case.model.SerializeToString())
    try:
        converted = onyx.convert_version(model, target)
    except onyx.UnsupportedError as e:
        return "refused", str(e)
    except Exception as e:  # noqa: BLE001 - a crash is a failure category of its own
        return "convert-crash", f"{type(e).__name__}: {e}"
    try:
        onyx.check(converted)
    except onyx.ValidationError as e:
        return "check", str(e)
    try:
        _outputs_match(case, converted)
    except Exception as e:  # noqa: BLE001
        if not _baseline_ok(case.name):
            return "baseline", "the unconverted case does not reproduce its outputs either"
        if isinstance(e, onyx.UnsupportedError):
            return "run-unsupported", str(e)
        if isinstance(e, AssertionError):
            return "mismatch", str(e)[:300]
        return "run-error", f"{type(e).__name__}: {str(e)[:300]}"
    return "ok", ""


@functools.cache
def conversion_results() -> dict[tuple[str, int], tuple[str, str]]:
    results = {}
    for name, case in sorted(all_node_cases().items()):
        for target in _targets(case):
            results[(name, target)] = _run_case(case, target)
    return results


def test_node_cases_at_neighbouring_opsets():
    """Every ai.onnx node case converted to its model opset -1 and +1 (where all its ops exist)
    checks and reproduces the case's outputs.

    A refusal (UnsupportedError: an element type, attribute value or dynamic input the target
    opset cannot express) is the converter doing its job and is not counted as an attempt; nor
    is a case whose unconverted model already misses its outputs in onyx (baseline: random
    operators, bfloat16 attention).
    Failure categories reported: convert-crash (any other exception while converting), check
    (onyx.check rejects the result), run-unsupported (the runtime lacks the older kernel),
    run-error (the session fails), mismatch (outputs differ from the case's expected outputs).
    """
    results = conversion_results()
    attempted = {k: v for k, v in results.items() if v[0] not in ("refused", "baseline")}
    failed = {k: v for k, v in attempted.items() if v[0] != "ok"}
    by_kind = collections.Counter(v[0] for v in failed.values())
    rate = 1 - len(failed) / max(1, len(attempted))
    lines = [f"{name} -> {t}: [{kind}] {detail[:200]}" for (name, t), (kind, detail) in
             sorted(failed.items())]  # fmt: skip
    assert len(attempted) > 1000
    assert rate >= 0.95, (
        f"{len(failed)} of {len(attempted)} conversions failed ({rate:.1%} ok; "
        f"{dict(by_kind)}; {len(results) - len(attempted)} refused or baseline):\n"
        + "\n".join(lines)
    )


# --- adapters, one model each ------------------------------------------------------------------
def _model(opset: int, nodes, inputs, outputs, inits=()) -> ir.Model:
    """A one-graph model: ``inputs``/``outputs`` are (name, dtype, shape); ``inits`` name -> array."""
    values = {}

    def value(name, dtype=None, shape=None):
        if name not in values:
            t = None if dtype is None else ir.tensor_type(dtype, shape)
            values[name] = ir.Value(name, t)
        return values[name]

    g_inputs = [value(*spec) for spec in inputs]
    g_inits = []
    for name, arr in dict(inits).items():
        arr = np.asarray(arr)
        v = value(name, onyx.DataType(_code(arr)), arr.shape)
        v.const_value = ir.Tensor(arr, name)
        g_inits.append(v)
    g_outputs = [value(*spec) for spec in outputs]
    graph_nodes = []
    for op, ins, outs, attrs in nodes:
        n = ir.Node(op, [value(i) if i else None for i in ins], [value(o) for o in outs], attrs)
        graph_nodes.append(n)
    graph = ir.Graph(g_inputs, g_outputs, graph_nodes, g_inits, name="g")
    return ir.Model(graph, ir_version=max(4, min_ir_version(opset)), opset_imports={"": opset})


def _code(arr: np.ndarray) -> int:
    from onyx.dtypes import from_numpy

    return int(from_numpy(arr.dtype))


def _run(model: ir.Model, feeds: dict) -> list:
    onyx.check(model)
    return onyx.InferenceSession(model).run(None, feeds)


def _roundtrip(model, feeds, target, expect_op=None, back=True):
    """Convert to ``target`` (and back), checking that outputs never change."""
    want = _run(model, feeds)
    conv = onyx.convert_version(model, target)
    assert conv.opset_imports[""] == target
    assert conv.ir_version >= min_ir_version(target)
    for g, w in zip(_run(conv, feeds), want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    if expect_op is not None:
        assert expect_op in {n.op_type for n in conv.graph.nodes}
    if back:
        again = onyx.convert_version(conv, model.opset_imports[""])
        for g, w in zip(_run(again, feeds), want):
            np.testing.assert_allclose(g, w, rtol=1e-6)
    return conv


F = onyx.DataType.FLOAT
I64 = onyx.DataType.INT64
X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1.5


def test_reshape_attr_input():
    m = _model(4, [("Reshape", ["x"], ["y"], {"shape": [6, 4]})], [("x", F, [2, 3, 4])],
               [("y", F, [6, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 5)
    node = conv.graph.nodes[0]
    assert len(node.inputs) == 2 and "shape" not in node.attributes


@pytest.mark.parametrize("op", ["Squeeze", "Unsqueeze"])
def test_squeeze_unsqueeze_axes(op):
    x = X.reshape(2, 1, 12) if op == "Squeeze" else X
    out = [2, 12] if op == "Squeeze" else [2, 1, 3, 4]
    m = _model(12, [(op, ["x"], ["y"], {"axes": [1]})], [("x", F, list(x.shape))],
               [("y", F, out)])  # fmt: skip
    _roundtrip(m, {"x": x}, 13)


def test_split_attr_input_and_num_outputs():
    m = _model(12, [("Split", ["x"], ["a", "b"], {"axis": 2, "split": [1, 3]})],
               [("x", F, [2, 3, 4])], [("a", F, None), ("b", F, None)])  # fmt: skip
    _roundtrip(m, {"x": X}, 13)
    even = _model(17, [("Split", ["x"], ["a", "b"], {"axis": 2})], [("x", F, [2, 3, 4])],
                  [("a", F, None), ("b", F, None)])  # fmt: skip
    conv = _roundtrip(even, {"x": X}, 18)
    assert conv.graph.nodes[0].attribute("num_outputs") == 2
    uneven = _model(18, [("Split", ["x"], ["a", "b"], {"axis": 1, "num_outputs": 2})],
                    [("x", F, [2, 3, 4])], [("a", F, None), ("b", F, None)])  # fmt: skip
    _roundtrip(uneven, {"x": X}, 17, back=False)


@pytest.mark.parametrize("op,at", [("ReduceSum", 13), ("ReduceMean", 18), ("ReduceMax", 18)])
def test_reduce_axes(op, at):
    m = _model(at - 1, [(op, ["x"], ["y"], {"axes": [0, 2], "keepdims": 0})],
               [("x", F, [2, 3, 4])], [("y", F, [3])])  # fmt: skip
    _roundtrip(m, {"x": X}, at)
    noop = _model(at, [(op, ["x", "ax"], ["y"], {"noop_with_empty_axes": 1})],
                  [("x", F, [2, 3, 4])], [("y", F, [2, 3, 4])],
                  {"ax": np.zeros(0, np.int64)})  # fmt: skip
    conv = _roundtrip(noop, {"x": X}, at - 1, expect_op="Identity", back=False)
    assert conv.graph.nodes[0].op_type == "Identity"


def test_reduce_dynamic_axes_refused():
    m = _model(18, [("ReduceMean", ["x", "ax"], ["y"], {})],
               [("x", F, [2, 3, 4]), ("ax", I64, [1])], [("y", F, None)])  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="ReduceMean.*not a constant"):
        onyx.convert_version(m, 17)


def test_clip_attrs_inputs():
    m = _model(10, [("Clip", ["x"], ["y"], {"min": -0.5, "max": 0.25})], [("x", F, [2, 3, 4])],
               [("y", F, [2, 3, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 11)
    assert len(conv.graph.nodes[0].inputs) == 3


def test_pad_attrs_inputs():
    m = _model(10, [("Pad", ["x"], ["y"], {"pads": [0, 1, 0, 0, 2, 1], "value": 3.0})],
               [("x", F, [2, 3, 4])], [("y", F, [2, 6, 5])])  # fmt: skip
    _roundtrip(m, {"x": X}, 11)
    m1 = _model(2, [("Pad", ["x"], ["y"], {"pads": [0, 1, 0, 0, 2, 1]})],
                [("x", F, [2, 3, 4])], [("y", F, [2, 6, 5])])  # fmt: skip
    _roundtrip(m1, {"x": X}, 1)


def test_pad_axes_down():
    m = _model(18, [("Pad", ["x", "p", "", "ax"], ["y"], {})], [("x", F, [2, 3, 4])],
               [("y", F, [2, 3, 7])],
               {"p": np.array([1, 2], np.int64), "ax": np.array([-1], np.int64)})  # fmt: skip
    _roundtrip(m, {"x": X}, 17, back=False)


def test_slice_attrs_inputs():
    m = _model(9, [("Slice", ["x"], ["y"], {"starts": [1, 0], "ends": [3, 100],
                                            "axes": [1, 2]})],
               [("x", F, [2, 3, 4])], [("y", F, [2, 2, 4])])  # fmt: skip
    _roundtrip(m, {"x": X}, 10)
    steps = _model(10, [("Slice", ["x", "s", "e", "a", "st"], ["y"], {})], [("x", F, [2, 3, 4])],
                   [("y", F, None)], {"s": np.array([0]), "e": np.array([4]),
                                      "a": np.array([2]), "st": np.array([2])})  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="steps"):
        onyx.convert_version(steps, 9)


def test_batchnorm_versions():
    c = 3
    inits = {"s": np.full(c, 1.5, np.float32), "b": np.full(c, 0.1, np.float32),
             "m": np.full(c, 0.2, np.float32), "v": np.full(c, 0.9, np.float32)}  # fmt: skip
    m = _model(5, [("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                    {"is_test": 1, "consumed_inputs": [0, 0, 0, 1, 1]})],
               [("x", F, [2, 3, 4])], [("y", F, [2, 3, 4])], inits)  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 15, back=False)
    assert "is_test" not in conv.graph.nodes[0].attributes
    back = onyx.convert_version(conv, 6)
    np.testing.assert_allclose(_run(back, {"x": X})[0], _run(m, {"x": X})[0], rtol=1e-6)
    train = _model(14, [("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                         {"training_mode": 1})],
                   [("x", F, [2, 3, 4])], [("y", F, None), ("rm", F, None), ("rv", F, None)],
                   inits)  # fmt: skip
    _roundtrip(train, {"x": X}, 13)
    spatial = _model(8, [("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                          {"spatial": 0})],
                     [("x", F, [2, 3, 4])], [("y", F, None)], inits)  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="spatial"):
        onyx.convert_version(spatial, 9)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_softmax_axis_semantics(op, axis):
    old = _model(12, [(op, ["x"], ["y"], {"axis": axis})], [("x", F, [2, 3, 4])],
                 [("y", F, [2, 3, 4])])  # fmt: skip
    _roundtrip(old, {"x": X}, 13)
    new = _model(13, [(op, ["x"], ["y"], {"axis": axis})], [("x", F, [2, 3, 4])],
                 [("y", F, [2, 3, 4])])  # fmt: skip
    _roundtrip(new, {"x": X}, 12)


def test_softmax_unknown_rank_last_axis():
    last = _model(13, [("Softmax", ["x"], ["y"], {})], [("x", F, None)], [("y", F, None)])
    assert onyx.convert_version(last, 12).graph.nodes[0].attribute("axis") == -1


def test_topk_k():
    m = _model(9, [("TopK", ["x"], ["v", "i"], {"k": 2})], [("x", F, [2, 3, 4])],
               [("v", F, [2, 3, 2]), ("i", I64, [2, 3, 2])])  # fmt: skip
    _roundtrip(m, {"x": X}, 10)


def test_cast_to_string_and_back():
    m = _model(5, [("Cast", ["x"], ["y"], {"to": "INT32"})], [("x", F, [2, 3, 4])],
               [("y", onyx.DataType.INT32, [2, 3, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X * 4}, 6)
    assert conv.graph.nodes[0].attribute("to") == int(onyx.DataType.INT32)


def test_dropout_ratio():
    m = _model(11, [("Dropout", ["x"], ["y"], {"ratio": 0.3})], [("x", F, [2, 3, 4])],
               [("y", F, [2, 3, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 12)
    assert len(conv.graph.nodes[0].inputs) == 2
    m6 = _model(6, [("Dropout", ["x"], ["y"], {"is_test": 1})], [("x", F, [2, 3, 4])],
                [("y", F, [2, 3, 4])])  # fmt: skip
    _roundtrip(m6, {"x": X}, 7)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_broadcast_attributes(op):
    b = np.array([1.0, 2.0, 3.0], np.float32)
    m = _model(6, [(op, ["x", "b"], ["y"], {"broadcast": 1, "axis": 1})],
               [("x", F, [2, 3, 4]), ("b", F, [3])], [("y", F, [2, 3, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X, "b": b}, 7, back=False)
    assert "Reshape" in {n.op_type for n in conv.graph.nodes}
    tail = _model(7, [(op, ["x", "b"], ["y"], {})], [("x", F, [2, 3, 4]), ("b", F, [4])],
                  [("y", F, [2, 3, 4])])  # fmt: skip
    _roundtrip(tail, {"x": X, "b": np.arange(1, 5, dtype=np.float32)}, 6)
    both = _model(7, [(op, ["x", "b"], ["y"], {})], [("x", F, [2, 1]), ("b", F, [1, 3])],
                  [("y", F, [2, 3])])  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="broadcast"):
        onyx.convert_version(both, 6)


def test_gemm_broadcast_and_optional_c():
    a = np.ones((2, 3), np.float32)
    m = _model(11, [("Gemm", ["a", "w"], ["y"], {})], [("a", F, [2, 3])], [("y", F, [2, 4])],
               {"w": np.arange(12, dtype=np.float32).reshape(3, 4)})  # fmt: skip
    _roundtrip(m, {"a": a}, 6, back=True)


def test_concat_axis_required():
    m = _model(3, [("Concat", ["x", "x"], ["y"], {})], [("x", F, [2, 3, 4])],
               [("y", F, [2, 6, 4])])  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 4)
    assert conv.graph.nodes[0].attribute("axis") == 1


def test_upsample_resize():
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    m = _model(8, [("Upsample", ["x"], ["y"], {"scales": [1.0, 1.0, 2.0, 3.0]})],
               [("x", F, [1, 2, 2, 2])], [("y", F, [1, 2, 4, 6])])  # fmt: skip
    _roundtrip(m, {"x": x}, 9)
    m9 = _model(9, [("Upsample", ["x", "s"], ["y"], {})], [("x", F, [1, 2, 2, 2])],
                [("y", F, [1, 2, 4, 6])], {"s": np.array([1, 1, 2, 3], np.float32)})  # fmt: skip
    _roundtrip(m9, {"x": x}, 10, expect_op="Resize")
    r10 = _model(10, [("Resize", ["x", "s"], ["y"], {"mode": "linear"})],
                 [("x", F, [1, 2, 2, 2])], [("y", F, [1, 2, 4, 6])],
                 {"s": np.array([1, 1, 2, 3], np.float32)})  # fmt: skip
    conv = _roundtrip(r10, {"x": x}, 11)
    assert len(conv.graph.nodes[0].inputs) == 3
    r13 = _model(13, [("Resize", ["x", "", "", "sz"], ["y"], {"mode": "nearest"})],
                 [("x", F, [1, 2, 2, 2])], [("y", F, [1, 2, 4, 6])],
                 {"sz": np.array([1, 2, 4, 6], np.int64)})  # fmt: skip
    _roundtrip(r13, {"x": x}, 11)


def test_scatter_renamed():
    data = np.zeros((3, 3), np.float32)
    idx = np.array([[1, 0, 2]], np.int64)
    upd = np.array([[1.0, 1.1, 1.2]], np.float32)
    m = _model(10, [("Scatter", ["d", "i", "u"], ["y"], {"axis": 0})],
               [("d", F, [3, 3]), ("i", I64, [1, 3]), ("u", F, [1, 3])],
               [("y", F, [3, 3])])  # fmt: skip
    _roundtrip(m, {"d": data, "i": idx, "u": upd}, 11, expect_op="ScatterElements")


def test_negative_axis_normalized_going_below_11():
    m = _model(11, [("Concat", ["x", "x"], ["y"], {"axis": -1})], [("x", F, [2, 3, 4])],
               [("y", F, [2, 3, 8])])  # fmt: skip
    conv = _roundtrip(m, {"x": X}, 10)
    assert conv.graph.nodes[0].attribute("axis") == 2


def test_subgraph_gets_constant_nodes():
    then = build_branch(12)
    cond = ir.Value("c", ir.tensor_type(onyx.DataType.BOOL, []))
    x = ir.Value("x", ir.tensor_type(F, [2, 3, 4]))
    y = ir.Value("y", ir.tensor_type(F, None))
    then_graph, else_graph = then(x), then(x)
    node = ir.Node("If", [cond], [y], {"then_branch": then_graph, "else_branch": else_graph})
    model = ir.Model(ir.Graph([cond, x], [y], [node], name="g"), ir_version=7,
                     opset_imports={"": 12})  # fmt: skip
    feeds = {"c": np.array(True), "x": X}
    conv = _roundtrip(model, feeds, 13)
    inner = conv.graph.nodes[0].attribute("then_branch")
    assert [n.op_type for n in inner.nodes] == ["Constant", "Unsqueeze"]
    assert not conv.graph.initializers


def build_branch(opset):
    def make(x):
        out = ir.Value(f"u{id(x)}_{make.count}", ir.tensor_type(F, None))
        make.count += 1
        return ir.Graph([], [out], [ir.Node("Unsqueeze", [x], [out], {"axes": [0]})], name="b")

    make.count = 0
    return make


# --- errors ----------------------------------------------------------------------------------
def test_op_missing_at_target_names_node():
    m = _model(18, [("Mish", ["x"], ["y"], {})], [("x", F, [2, 3, 4])], [("y", F, None)])
    m.graph.nodes[0].name = "act"
    with pytest.raises(onyx.UnsupportedError, match=r"'act'.*Mish.*opset 17.*came in opset 18"):
        onyx.convert_version(m, 17)


def test_type_not_in_target_refused():
    m = _model(13, [("Add", ["x", "x"], ["y"], {})], [("x", onyx.DataType.BFLOAT16, [2])],
               [("y", onyx.DataType.BFLOAT16, [2])])  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="bfloat16"):
        onyx.convert_version(m, 12)


def test_bad_target_and_unchanged_source():
    m = _model(13, [("Relu", ["x"], ["y"], {})], [("x", F, [2])], [("y", F, [2])])
    with pytest.raises(onyx.UnsupportedError, match="outside"):
        onyx.convert_version(m, 99)
    conv = onyx.convert_version(m, 20)
    assert m.opset_imports[""] == 13 and conv.opset_imports[""] == 20
    assert conv.ir_version == min_ir_version(20) == 9


def test_adapters_cover_the_listed_signature_changes():
    wanted = [("Reshape", 1, 5), ("Squeeze", 11, 13), ("Unsqueeze", 13, 11), ("Split", 13, 18),
              ("ReduceSum", 11, 13), ("ReduceMean", 18, 13), ("Resize", 10, 11),
              ("Upsample", 9, 10), ("Clip", 6, 11), ("Pad", 11, 2), ("Slice", 1, 10),
              ("BatchNormalization", 14, 9), ("Softmax", 13, 11), ("TopK", 1, 10),
              ("Cast", 1, 6), ("Dropout", 10, 12), ("Gemm", 7, 6), ("Add", 6, 7),
              ("Concat", 1, 4), ("Scatter", 9, 11)]  # fmt: skip
    assert [k for k in wanted if k not in ADAPTERS] == []


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_softmax_unknown_rank_down_uses_a_3d_view(axis):
    m = _model(13, [("LogSoftmax", ["x"], ["y"], {"axis": axis})], [("x", F, None)],
               [("y", F, None)])  # fmt: skip
    _roundtrip(m, {"x": X}, 12, back=False)


def test_converted_node_cases_pass_onnx_checker():
    """onnx's own full checker (the oracle) accepts what onyx converts (>= 99%)."""
    import onnx

    bad, total = [], 0
    for name, case in sorted(all_node_cases().items()):
        for target in _targets(case):
            try:
                conv = onyx.convert_version(onyx.load(case.model.SerializeToString()), target)
            except onyx.UnsupportedError:
                continue
            total += 1
            try:
                proto = onnx.load_from_string(onyx.to_bytes(conv))
                onnx.checker.check_model(proto, full_check=True)
            except Exception as e:  # noqa: BLE001
                bad.append(f"{name} -> {target}: {str(e).splitlines()[0][:160]}")
    assert total > 1000 and len(bad) <= total // 100, "\n".join(bad)


def test_pool_ceil_window_in_padding_refused():
    m = _model(22, [("MaxPool", ["x"], ["y"], {"kernel_shape": [2], "strides": [2],
                                               "pads": [0, 1], "ceil_mode": 1})],
               [("x", F, [1, 1, 4])], [("y", F, None)])  # fmt: skip
    with pytest.raises(onyx.UnsupportedError, match="padding"):
        onyx.convert_version(m, 21)


def test_model_local_function_body_converted():
    x = ir.Value("fx")
    y = ir.Value("fy")
    body = ir.Graph([x], [y], [ir.Node("Unsqueeze", [x], [y], {"axes": [0]})], name="f")
    fn = ir.Function("local", "AddDim", body, opset_imports={"": 12})
    gx = ir.Value("x", ir.tensor_type(F, [2, 3, 4]))
    gy = ir.Value("y", ir.tensor_type(F, [1, 2, 3, 4]))
    call = ir.Node("AddDim", [gx], [gy], domain="local")
    model = ir.Model(ir.Graph([gx], [gy], [call], name="g"), ir_version=8,
                     opset_imports={"": 12, "local": 1}, functions={fn.id: fn})  # fmt: skip
    conv = _roundtrip(model, {"x": X}, 13)
    body = conv.functions[fn.id].graph
    assert [n.op_type for n in body.nodes] == ["Constant", "Unsqueeze"]
    assert conv.functions[fn.id].opset_imports[""] == 13


def test_ir_version_raised_for_target():
    m = _model(9, [("Relu", ["x"], ["y"], {})], [("x", F, [2])], [("y", F, [2])])
    assert onyx.convert_version(m, 21).ir_version == 10
    assert onyx.convert_version(m, 8).ir_version == m.ir_version  # never lowered
