"""onyx.helper and onyx.numpy_helper against the onnx package's builders: the same calls must
serialize to the same bytes, and values read back must equal what onnx reads."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import pytest

import onyx
from onyx import helper, numpy_helper
from onyx.serde import tensor_to_bytes


def _model(H, from_array):
    """The same model through onnx's builders (H=onnx.helper) or onyx's: an initializer, a
    value_info, an If whose branches read an outer value, and a model-local function."""
    x = H.make_tensor_value_info("x", 1, ["N", 4])
    c = H.make_tensor_value_info("c", 9, [])
    y = H.make_tensor_value_info("y", 1, ["N", None])
    w = from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    then_g = H.make_graph([H.make_node("Identity", ["z"], ["t"])], "then", [],
                          [H.make_tensor_value_info("t", 1, None)])  # fmt: skip
    else_g = H.make_graph([H.make_node("Twice", ["z"], ["e"], domain="com.me")], "else", [],
                          [H.make_tensor_value_info("e", 1, None)])  # fmt: skip
    nodes = [
        H.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        H.make_node("LeakyRelu", ["h"], ["z"], alpha=0.25, name="act", doc_string="d"),
        H.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    g = H.make_graph(nodes, "g", [x, c], [y], initializer=[w], doc_string="graph doc",
                     value_info=[H.make_tensor_value_info("h", 1, ["N", 3])])  # fmt: skip
    twice = H.make_function("com.me", "Twice", ["a"], ["b"], [H.make_node("Add", ["a", "a"], ["b"])],
                            [H.make_opsetid("", 21)])  # fmt: skip
    return H.make_model(g, opset_imports=[H.make_opsetid("", 21), H.make_opsetid("com.me", 1)],
                        producer_name="p", model_version=3, functions=[twice])  # fmt: skip


def test_model_serializes_as_onnx_builds_it():
    ours = _model(helper, numpy_helper.from_array)
    theirs = _model(oh, onh.from_array)
    assert onyx.to_bytes(ours) == theirs.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(onyx.to_bytes(ours)))


def test_built_model_checks_and_runs():
    m = _model(helper, numpy_helper.from_array)
    onyx.check(m, full=True)
    s = onyx.InferenceSession(m)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    h = x @ np.arange(12, dtype=np.float32).reshape(4, 3)
    z = np.where(h > 0, h, 0.25 * h)
    np.testing.assert_allclose(s.run(None, {"x": x, "c": np.array(True)})[0], z, rtol=1e-6)
    np.testing.assert_allclose(s.run(None, {"x": x, "c": np.array(False)})[0], 2 * z, rtol=1e-6)


def test_default_model_fields_match_onnx():
    def build(H):
        g = H.make_graph([H.make_node("Relu", ["x"], ["y"])], "g",
                         [H.make_tensor_value_info("x", 1, [2])],
                         [H.make_tensor_value_info("y", 1, [2])])  # fmt: skip
        return H.make_model(g)

    assert onyx.to_bytes(build(helper)) == build(oh).SerializeToString()


@pytest.mark.parametrize(
    "code, values",
    [(1, [1.5, -2, 3]), (10, [1.5, -2, 3]), (16, [1.5, -2, 3]), (17, [1.5, -2, 1000.0]),
     (22, [1, -2, 3]), (21, [1, 2, 15]), (9, [True, False, True]), (14, [1 + 2j, 3, 4]),
     (8, ["a", "bé", "c"]), (7, [1, -2, 3]), (12, [1, 2, 3]), (13, [1, 2, 3]), (11, [1.0, 2, 3]),
     (25, [1, 2, 3]), (26, [1, -2, 0]), (27, [0.5, 1, 2]), (3, [1, -2, 3])],
)  # fmt: skip
def test_make_tensor_matches_onnx(code, values):
    assert tensor_to_bytes(helper.make_tensor("t", code, [3], values)) == (
        oh.make_tensor("t", code, [3], values).SerializeToString()
    )
    if code == 8:
        return
    array = np.array(values, dtype=oh.tensor_dtype_to_np_dtype(code))
    ours = helper.make_tensor("t", code, [3], array, raw=True)
    assert (
        tensor_to_bytes(ours) == oh.make_tensor("t", code, [3], array, raw=True).SerializeToString()
    )
    got = ours.numpy()
    wide = np.complex128 if code == 14 else np.float64
    np.testing.assert_array_equal(got.astype(wide), array.astype(wide))


def test_make_tensor_errors_name_the_tensor():
    with pytest.raises(onyx.TensorDataError, match="'t'.*2 values.*need 3"):
        helper.make_tensor("t", 1, [3], [1.0, 2.0])
    with pytest.raises(onyx.TensorDataError, match="'t'.*raw data holds 4 bytes"):
        helper.make_tensor("t", 1, [3], b"\0" * 4, raw=True)
    with pytest.raises(onyx.UnknownDataTypeError, match="'t'"):
        helper.make_tensor("t", 99, [1], [1])


def test_attributes_match_onnx():
    for value in [1, 2.5, "s", b"b", [1, 2], [1.5, 2], ["a", "b"], np.float32(0.5), True]:
        ours = helper.make_node("Op", ["a"], ["b"], attr=value)
        theirs = oh.make_node("Op", ["a"], ["b"], attr=value)
        model_o = onyx.to_bytes(helper.make_model(helper.make_graph([ours], "g", [], [])))
        model_t = oh.make_model(oh.make_graph([theirs], "g", [], [])).SerializeToString()
        assert model_o == model_t, value
    ref = helper.make_attribute_ref("alpha", onyx.ir.AttrType.FLOAT, ref_attr_name="a")
    assert (ref.name, ref.ref_attr_name, ref.type) == ("alpha", "a", onyx.ir.AttrType.FLOAT)
    with pytest.raises(TypeError, match="'empty'.*empty list"):
        helper.make_attribute("empty", [])
    assert helper.make_attribute("empty", [], attr_type=onyx.ir.AttrType.INTS).value == []


def test_type_protos_and_value_infos():
    seq = helper.make_tensor_sequence_value_info("s", 1, [None, 3])
    opt = helper.make_value_info("o", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(7, [])))  # fmt: skip
    mp = helper.make_value_info("m", helper.make_map_type_proto(
        7, helper.make_tensor_type_proto(1, None)))  # fmt: skip
    g = helper.make_graph([], "g", [seq, opt, mp], [])
    theirs = oh.make_graph([], "g", [
        oh.make_tensor_sequence_value_info("s", 1, [None, 3]),
        oh.make_value_info("o", oh.make_optional_type_proto(oh.make_tensor_type_proto(7, []))),
        oh.make_value_info("m", oh.make_map_type_proto(7, oh.make_tensor_type_proto(1, None))),
    ], [])  # fmt: skip
    ours_bytes = onyx.to_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]))
    theirs_bytes = oh.make_model(
        theirs, opset_imports=[oh.make_opsetid("", 21)]
    ).SerializeToString()
    assert ours_bytes == theirs_bytes


def test_make_graph_refuses_a_name_defined_twice():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])]
    with pytest.raises(onyx.GraphError, match="'y' is defined twice"):
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1])], [])


def test_make_model_refuses_unknown_fields():
    g = helper.make_graph([], "g", [], [])
    with pytest.raises(TypeError, match="produce_name"):
        helper.make_model(g, produce_name="typo")


# --- numpy_helper ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "array",
    [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(["a", "bb"]), np.array(3.5),
     np.array([1, -3], dtype=ml_dtypes.int4), np.array([True, False]), np.zeros((0, 2), np.int64),
     np.array([1, 2], dtype=ml_dtypes.bfloat16)],
)  # fmt: skip
def test_from_array_matches_onnx(array):
    ours = numpy_helper.from_array(array, "t")
    assert tensor_to_bytes(ours) == onh.from_array(array, "t").SerializeToString()
    back = numpy_helper.to_array(onh.from_array(array, "t").SerializeToString())
    expected = onh.to_array(onh.from_array(array, "t"))
    assert back.dtype == expected.dtype and back.shape == expected.shape
    if array.dtype.kind in "US":
        assert back.tolist() == expected.astype(str).tolist()
    else:
        np.testing.assert_array_equal(back.astype(np.float64), expected.astype(np.float64))


def test_to_array_gives_a_writable_copy():
    t = onyx.load_tensor(onh.from_array(np.arange(3, dtype=np.int64)).SerializeToString())
    got = numpy_helper.to_array(t)
    got[0] = 7
    assert t.numpy()[0] == 0


def test_sequences_maps_optionals_match_onnx():
    seq = [np.arange(3, dtype=np.float32), np.ones((2, 2), np.int64)]
    nested = [[np.arange(2)], [np.arange(3)]]
    mapping = {1: np.array(1.0, np.float32), 2: np.array(2.0, np.float32)}
    assert numpy_helper.from_list(seq, "s") == onh.from_list(seq, "s").SerializeToString()
    assert numpy_helper.from_list(nested) == onh.from_list(nested).SerializeToString()
    assert numpy_helper.from_list([], dtype=numpy_helper.SEQUENCE) == (
        onh.from_list([], dtype=3).SerializeToString()
    )
    assert numpy_helper.from_dict(mapping, "m") == onh.from_dict(mapping, "m").SerializeToString()
    for value in [None, np.arange(3), [np.arange(2)], mapping]:
        assert (
            numpy_helper.from_optional(value, "o")
            == onh.from_optional(value, "o").SerializeToString()
        )
    # reading what onnx wrote
    got = numpy_helper.to_list(onh.from_list(nested).SerializeToString())
    assert [[a.tolist() for a in inner] for inner in got] == [[[0, 1]], [[0, 1, 2]]]
    got_map = numpy_helper.to_dict(onh.from_dict(mapping).SerializeToString())
    assert {k: float(v) for k, v in got_map.items()} == {1: 1.0, 2: 2.0}
    assert numpy_helper.to_optional(onh.from_optional(None).SerializeToString()) is None
    assert numpy_helper.to_optional(
        onh.from_optional(np.arange(2)).SerializeToString()
    ).tolist() == [0, 1]


def test_value_errors():
    with pytest.raises(TypeError, match="not all of one kind"):
        numpy_helper.from_list([np.arange(2), [np.arange(2)]])
    with pytest.raises(TypeError, match="non-empty dict"):
        numpy_helper.from_dict({})
    with pytest.raises(onyx.FormatError, match="not a valid SequenceProto"):
        numpy_helper.to_list(b"\xff\xff\xff")
