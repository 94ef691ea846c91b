"""The committed wire format: regenerating it changes nothing, and it matches the standard's."""

from __future__ import annotations

import pathlib
import sys

import onnx.onnx_data_pb2
import onnx.onnx_ml_pb2

from onyx._proto import onyx_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gen_proto


def test_committed_proto_matches_its_generator():
    assert (ROOT / "onyx/_proto/onyx.proto").read_text() == gen_proto.render_proto()


def test_committed_module_matches_its_generator(tmp_path):
    (tmp_path / "onyx.proto").write_text(gen_proto.render_proto())
    committed = (ROOT / "onyx/_proto/onyx_pb2.py").read_text()
    assert gen_proto.render_module(tmp_path) == committed


def test_module_has_no_protobuf_version_check():
    # protoc's generated code refuses runtimes older than protoc itself; ours must import on 4.25
    text = (ROOT / "onyx/_proto/onyx_pb2.py").read_text()
    assert "runtime_version" not in text and "_builder" not in text


def _fields(descriptor):
    """Every (message path, field name) -> (number, type, label), recursively."""
    out = {}
    for field in descriptor.fields:
        out[(descriptor.full_name.split(".", 1)[1], field.name)] = (
            field.number,
            field.type,
            field.is_repeated,
        )
    for nested in descriptor.nested_types:
        out.update(_fields(nested))
    return out


def test_every_message_and_field_of_the_standard_has_the_same_number_and_type():
    theirs, ours = {}, {}
    for module in (onnx.onnx_ml_pb2, onnx.onnx_data_pb2):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            theirs.update(_fields(message))
    for message in onyx_pb2.DESCRIPTOR.message_types_by_name.values():
        ours.update(_fields(message))
    assert ours == theirs
    assert onyx_pb2.DESCRIPTOR.package == "onyx_proto"  # coexists with onnx's 'onnx' package


def test_enum_values_match():
    ours = {v.name: v.number for v in onyx_pb2.TensorProto.DataType.DESCRIPTOR.values}
    theirs = {v.name: v.number for v in onnx.TensorProto.DataType.DESCRIPTOR.values}
    assert ours == theirs
    assert onyx_pb2.IR_VERSION == onnx.IR_VERSION == 14
