"""InferenceSession: the onnxruntime-like surface, feed checking, run-time errors, limits."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

import onyx
from onyx.errors import OptionError
from onyx.runtime.session import SessionOptions
from onyx.text import parse_model

ADD_RELU = """
<ir_version: 10, opset_import: ["" : 21], producer_name: "tests", model_version: 3,
 doc_string: "adds then clamps", metadata_props: ["owner" : "onyx"]>
agraph (float[N, 3] x, float[1, 3] b) => (float[N, 3] y, float[N, 3] s) {
    s = Add (x, b)
    y = Relu (s)
}
"""


def session(text: str, **options) -> onyx.InferenceSession:
    return onyx.InferenceSession(parse_model(text), SessionOptions(**options))


def test_sources_path_bytes_and_model_agree(tmp_path):
    model = parse_model(ADD_RELU)
    path = tmp_path / "m.onnx"
    onyx.save(model, path)
    feeds = {"x": np.array([[-1, 0, 1]], np.float32), "b": np.zeros((1, 3), np.float32)}
    results = [
        onyx.InferenceSession(src).run(None, feeds) for src in (str(path), path.read_bytes(), model)
    ]
    for r in results:
        np.testing.assert_array_equal(r[0], [[0, 0, 1]])
    np.testing.assert_array_equal(
        results[0][1], ort.InferenceSession(str(path)).run(None, feeds)[1]
    )


def test_description_matches_onnxruntime(tmp_path):
    path = tmp_path / "m.onnx"
    onyx.save(parse_model(ADD_RELU), path)
    ours, theirs = onyx.InferenceSession(str(path)), ort.InferenceSession(str(path))
    for a, b in zip(
        ours.get_inputs() + ours.get_outputs(), theirs.get_inputs() + theirs.get_outputs()
    ):
        assert (a.name, a.shape, a.type) == (b.name, b.shape, b.type)
    meta = ours.get_modelmeta()
    assert meta.producer_name == "tests" and meta.version == 3
    assert meta.description == "adds then clamps" and meta.custom_metadata_map == {"owner": "onyx"}
    assert ours.get_providers() == ["CPUExecutionProvider"]


def test_output_names_select_and_order():
    s = session(ADD_RELU)
    feeds = {"x": np.ones((2, 3), np.float32), "b": np.ones((1, 3), np.float32)}
    s_out, y_out = s.run(["s", "y"], feeds)
    assert s_out.shape == (2, 3) and (y_out == 2).all()
    with pytest.raises(onyx.FeedError, match="unknown output 'z'"):
        s.run(["z"], feeds)


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({"x": np.ones((2, 3), np.float32)}, "input 'b' .* missing"),
        (
            {"x": np.ones((2, 3), np.float32), "b": np.ones((1, 3), np.float32), "q": 1},
            "unknown input 'q'",
        ),
        (
            {"x": np.ones((2, 3), np.float64), "b": np.ones((1, 3), np.float32)},
            r"input 'x' expects tensor\(float\), got .*float64",
        ),
        (
            {"x": np.ones((3,), np.float32), "b": np.ones((1, 3), np.float32)},
            "input 'x' expects rank 2",
        ),
        (
            {"x": np.ones((2, 4), np.float32), "b": np.ones((1, 3), np.float32)},
            "input 'x': dim 1 must be 3",
        ),
    ],
    ids=["missing", "unknown", "dtype", "rank", "dim"],
)
def test_wrong_feeds_are_named(feeds, message):
    with pytest.raises(onyx.FeedError, match=message):
        session(ADD_RELU).run(None, feeds)


def test_gather_out_of_range_names_the_node():
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[3] data, int64[1] idx) => (float[1] y) { y = Gather <axis = 0> (data, idx) }
    """)
    with pytest.raises(onyx.ExecutionError, match=r"node \(Gather\).*index 7.*\[-3, 2\]"):
        s.run(None, {"data": np.zeros(3, np.float32), "idx": np.array([7])})


def test_reshape_to_an_incompatible_shape_names_the_node():
    model = parse_model("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[6] x, int64[2] shape) => (float[?, ?] y) { y = Reshape (x, shape) }
    """)
    model.graph.nodes[0].name = "to_4x4"
    with pytest.raises(onyx.ExecutionError, match=r"node 'to_4x4' \(Reshape\).*\[4, 4\]"):
        onyx.InferenceSession(model).run(
            None, {"x": np.zeros(6, np.float32), "shape": np.array([4, 4])}
        )


FILL = """
<ir_version: 10, opset_import: ["" : 21]>
g (int64[2] shape) => (float[?, ?] y) { y = ConstantOfShape (shape) }
"""


def test_allocation_limit_is_enforced_before_allocating():
    s = session(FILL, allocation_limit=1 << 20)
    s.run(None, {"shape": np.array([16, 16])})
    with pytest.raises(
        onyx.AllocationError, match=r"node \(ConstantOfShape\).*exceeds .* limit of 1,048,576"
    ):
        s.run(None, {"shape": np.array([1024, 1024])})


def test_default_allocation_limit_refuses_absurd_requests():
    with pytest.raises(onyx.AllocationError):  # 4 PiB: refused, not attempted
        session(FILL).run(None, {"shape": np.array([2**25, 2**25])})


def test_unknown_operator_is_refused_at_build():
    with pytest.raises(onyx.UnsupportedError, match=r"node \(Frobnicate\).*no kernel"):
        session("""
            <ir_version: 10, opset_import: ["" : 21]>
            g (float[1] x) => (float[1] y) { y = Frobnicate (x) }
        """)


def test_intermediates_are_freed_after_their_last_use():
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[2] x) => (float[2] z) { a = Neg (x)  b = Abs (a)  z = Neg (b) }
    """)
    steps = s._plan.steps
    # x dies after the first Neg, a after Abs, b after the last Neg; z is an output and stays
    assert [step.frees for step in steps] == [
        (s._plan.input_slots[0],),
        steps[0].outputs,
        steps[1].outputs,
    ]


def test_profiling_per_node(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = session(ADD_RELU, enable_profiling=True)
    s.run(None, {"x": np.ones((2, 3), np.float32), "b": np.ones((1, 3), np.float32)})
    assert set(s.profile_by_op()) == {"Add", "Relu"}
    events = json.loads((tmp_path / s.end_profiling()).read_text())
    assert {e["args"]["op_name"] for e in events if e["cat"] == "Node"} == {"Add", "Relu"}


def test_sequences_and_optionals_at_the_api():
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (seq(float[?]) xs, optional(float[2]) maybe) => (int64 n, bool has, seq(float[?]) again) {
            n = SequenceLength (xs)
            has = OptionalHasElement (maybe)
            again = Identity (xs)
        }
    """)
    n, has, again = s.run(
        None, {"xs": [np.ones(2, np.float32), np.ones(3, np.float32)], "maybe": None}
    )
    assert n == 2 and not has and isinstance(again, list) and len(again) == 2
    assert s.run(["has"], {"xs": [], "maybe": np.ones(2, np.float32)})[0]


def test_outputs_never_alias_constants():
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[2] x) => (float[2] c) { c = Constant <value = float[2] {1, 2}> () }
    """)
    first = s.run(None, {"x": np.zeros(2, np.float32)})[0]
    first[:] = 99
    np.testing.assert_array_equal(s.run(None, {"x": np.zeros(2, np.float32)})[0], [1, 2])


def test_initializers_listed_as_inputs_are_folded_but_still_overridable():
    # IR 3 lists every initializer as a graph input: folding treats it as a constant, and a run
    # that feeds it uses a plan without that folding.
    model = parse_model("""
        <ir_version: 3, opset_import: ["" : 9]>
        g (float[2] x, float[2] w = {1, 2}) => (float[2] y) { n = Neg (w)  y = Add (x, n) }
    """)
    s = onyx.InferenceSession(model)
    assert [step.node.op_type for step in s._plan.steps] == ["Add"]  # Neg(w) folded
    x = np.zeros(2, np.float32)
    np.testing.assert_array_equal(s.run(None, {"x": x})[0], [-1, -2])
    np.testing.assert_array_equal(
        s.run(None, {"x": x, "w": np.array([5, 6], np.float32)})[0], [-5, -6]
    )
    with pytest.raises(onyx.FeedError, match="'w'"):  # a fed weight is checked like any input
        s.run(None, {"x": x, "w": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(s.run(None, {"x": x})[0], [-1, -2])  # the folded one again
    assert [a.name for a in s.get_inputs()] == ["x"]
    assert [a.name for a in s.get_overridable_initializers()] == ["w"]


def test_unknown_provider_is_refused():
    with pytest.raises(onyx.UnsupportedError, match="CUDAExecutionProvider"):
        onyx.InferenceSession(parse_model(ADD_RELU), providers=["CUDAExecutionProvider"])


FUNCTION_MODEL = """
<ir_version: 10, opset_import: ["" : 21, "local" : 1]>
g (float[3] x) => (float[3] y, float[3] z) {
    y = local.Leaky <slope = 0.5> (x)
    z = local.Leaky (x)
}
<domain: "local", opset_import: ["" : 21]>
Leaky <slope: float = 0.25> (a) => (b) {
    b = LeakyRelu <alpha: float = @slope> (a)
}
"""


def test_model_local_functions_with_attribute_references_and_defaults():
    model = parse_model(FUNCTION_MODEL)
    x = np.array([-4, 0, 4], np.float32)
    y, z = onyx.InferenceSession(model).run(None, {"x": x})
    np.testing.assert_array_equal(y, [-2, 0, 4])  # slope given at the call
    np.testing.assert_array_equal(z, [-1, 0, 4])  # the function's default
    expected = ort.InferenceSession(onyx.to_bytes(model)).run(None, {"x": x})
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(z, expected[1])


def _add_chain(n: int) -> onyx.ir.Model:
    x = onyx.ir.Value("x", onyx.ir.tensor_type("float", [2]))
    one = onyx.ir.Value("one", const_value=onyx.ir.Tensor(np.ones(2, np.float32), "one"))
    graph = onyx.ir.Graph(inputs=[x], initializers=[one])
    current = x
    for i in range(n):
        out = onyx.ir.Value(f"t{i}")
        graph.append(onyx.ir.Node("Add", [current, one], [out]))
        current = out
    graph.outputs.append(current)
    return onyx.ir.Model(graph, ir_version=10, opset_imports={"": 21})


def test_long_chains_fuse_without_recursion_and_match_the_unoptimized_run():
    model = _add_chain(3000)
    x = {"x": np.zeros(2, np.float32)}
    fused = onyx.InferenceSession(model)
    plain = onyx.InferenceSession(model, SessionOptions(graph_optimization_level=0))
    assert len(fused._plan.steps) == 1 and len(plain._plan.steps) == 3000
    np.testing.assert_array_equal(fused.run(None, x)[0], [3000, 3000])
    np.testing.assert_array_equal(plain.run(None, x)[0], [3000, 3000])


def test_in_place_fusion_leaves_shared_values_alone():
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[2] x, float[2] y) => (float[2] a, float[2] b) {
            s = Add (x, y)
            a = Relu (s)
            b = Neg (s)
        }
    """)
    a, b = s.run(None, {"x": np.array([-3, 1], np.float32), "y": np.ones(2, np.float32)})
    np.testing.assert_array_equal(a, [0, 2])
    np.testing.assert_array_equal(b, [2, -2])  # s was not clamped in place: Neg reads it too


def test_log_severity_level_info_reports_the_prepared_plan(caplog):
    with caplog.at_level("INFO", logger="onyx"):
        session(ADD_RELU, log_severity_level=1)
        session(ADD_RELU)  # the default (warning) says nothing
    messages = [r.getMessage() for r in caplog.records if r.name == "onyx"]
    # s is a graph output as well as the input of Relu, so nothing is fused here
    assert messages == ["prepared 2 steps from 2 nodes (constants folded and steps fused: 0)"]


def test_in_place_fusion_never_writes_into_an_input_returned_as_is():
    # Sum of one input may hand back that very array; a Relu fused after it must not clamp it
    s = session("""
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[2] x) => (float[2] r, float[2] n) {
            t = Neg (x)
            u = Sum (t)
            r = Relu (u)
            n = Identity (t)
        }
    """)
    r, n = s.run(None, {"x": np.array([1, -1], np.float32)})
    np.testing.assert_array_equal(r, [0, 1])
    np.testing.assert_array_equal(n, [-1, 1])


def test_every_operator_with_a_schema_has_a_kernel():
    import onyx.defs
    from onyx.runtime.kernels import KERNELS

    have = {(domain or "", op) for domain, op in KERNELS}
    wanted = {("" if s.domain == "ai.onnx" else s.domain, s.name) for s in onyx.defs.schemas()}
    assert not sorted(wanted - have)


def test_the_memory_arena_keeps_freed_blocks_for_reuse():
    import platform
    import resource

    from onyx.runtime.memory import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the arena is a setting of glibc's malloc; this C library has none")
    assert keep_freed_memory()

    def faults_while(fn) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def churn():  # several 4 MB temporaries alive at once, then freed, again and again
        for _ in range(20):
            a = np.ones(1 << 20, np.float32)
            b, c = a + 1, a * 2
            del a, b, c

    churn()
    assert faults_while(churn) < 100  # without the arena: ~20k (every block faulted in anew)


def _relu_bytes(in_dims, out_dims) -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_dims))
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def _described(s) -> list:
    return [(a.name, a.shape, a.type) for a in s.get_inputs() + s.get_outputs()]


def test_negative_declared_dims_accept_any_size_as_onnxruntime_does():
    data = _relu_bytes([-1, 3], [-1, 3])
    ours, theirs = onyx.InferenceSession(data), ort.InferenceSession(data)
    assert _described(ours) == _described(theirs)
    assert ours.get_inputs()[0].shape == [None, 3]
    for n in (1, 5):
        x = np.linspace(-1, 1, 3 * n, dtype=np.float32).reshape(n, 3)
        np.testing.assert_array_equal(ours.run(None, {"x": x})[0], theirs.run(None, {"x": x})[0])
    with pytest.raises(onyx.FeedError, match="input 'x': dim 1 must be 3"):
        ours.run(None, {"x": np.ones((2, 4), np.float32)})


def test_free_dimension_override_by_name_matches_onnxruntime():
    data = _relu_bytes(["N", "M", 3], ["N", "M", 3])
    ours_opts, theirs_opts = SessionOptions(), ort.SessionOptions()
    for opts in (ours_opts, theirs_opts):
        opts.add_free_dimension_override_by_name("N", 2)
        opts.add_free_dimension_override_by_name("unused", 7)  # no input has it: no effect
    ours = onyx.InferenceSession(data, ours_opts)
    theirs = ort.InferenceSession(data, theirs_opts, providers=["CPUExecutionProvider"])
    assert _described(ours) == _described(theirs)
    assert ours.get_inputs()[0].shape == [2, "M", 3]
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 4, 3)
    np.testing.assert_array_equal(ours.run(None, {"x": x})[0], theirs.run(None, {"x": x})[0])
    wrong = np.ones((3, 4, 3), np.float32)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument):
        theirs.run(None, {"x": wrong})
    with pytest.raises(onyx.FeedError, match=r"input 'x': dim 0 \('N'\) is fixed to 2"):
        ours.run(None, {"x": wrong})
    # a session made without the override still takes any N
    assert onyx.InferenceSession(data).run(None, {"x": wrong})[0].shape == (3, 4, 3)


@pytest.mark.parametrize(
    "name, value, message",
    [("N", -1, "expected a size >= 0"), ("", 2, "expected the name"),
     ("N", 2.5, "expected an integer size")],
    ids=["negative", "no-name", "not-an-int"],
)  # fmt: skip
def test_free_dimension_override_refuses_bad_values(name, value, message):
    with pytest.raises(OptionError, match=message):
        SessionOptions().add_free_dimension_override_by_name(name, value)


def test_a_multi_output_step_computes_only_the_outputs_something_reads(monkeypatch):
    """Dropout's mask (squeezenet's: 86K ones a run) is not made where nothing reads it; where
    the graph gives it out, it is."""
    from onyx.build import GraphBuilder
    from onyx.runtime.kernels import tensor

    asked = []
    original = tensor.dropout_1

    def spy(data, **kwargs):
        asked.append(kwargs.get("_outputs"))
        return original(data, **kwargs)

    monkeypatch.setattr(tensor, "dropout_1", spy)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for give_mask in (False, True):
        g = GraphBuilder(opset=7)
        data = g.input("x", "float", [2, 3])
        y, mask = g.op.Dropout(data, ratio=0.5, outputs=2)
        g.output(g.op.Relu(y), "y")
        if give_mask:
            g.output(mask, "mask")
        outs = onyx.InferenceSession(g.model()).run(None, {"x": x})
        np.testing.assert_array_equal(outs[0], x)
        if give_mask:
            np.testing.assert_array_equal(outs[1], np.ones((2, 3), np.float32))
    assert asked == [1, 2]
