"""Protobuf <-> IR: loading and saving models, with lazy tensor data and external data.

Loading walks the top of the wire format first: the ``raw_data`` of large initializers is cut
out and kept as a view into the memory-mapped file, so the protobuf parser only sees a small
skeleton. Saving does the reverse and streams those bytes straight to the file.
"""

from __future__ import annotations

import io
import mmap
import os
import tempfile
from collections.abc import Iterable
from typing import IO, Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from onyx import dtypes
from onyx._proto import onyx_pb2 as pb
from onyx._proto import wire
from onyx.errors import ExternalDataError, FormatError, GraphError, TensorDataError
from onyx.ir.attribute import Attribute, AttrType
from onyx.ir.graph import Graph, Node, Scope, Value
from onyx.ir.model import Function, Model, TrainingInfo
from onyx.ir.tensor import ExternalData, SparseTensor, Tensor, typed_field
from onyx.ir.types import (
    MapType,
    OpaqueType,
    OptionalType,
    SequenceType,
    Shape,
    SparseTensorType,
    TensorType,
    Type,
    UnknownType,
)  # fmt: skip

#: raw payloads at least this large bypass the protobuf parser and serializer.
LAZY_THRESHOLD = 1024
#: protobuf cannot hold a message over 2 GiB; larger models must use external data.
PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_THRESHOLD = 1024

Source = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]


# ============================================================================================
# load
# ============================================================================================
def load(source: Source, *, base_dir: str | None = None) -> Model:
    """Read a model from a path, bytes or a binary file object.

    Tensor data is not decoded until asked for; with a path, it stays in the memory-mapped file.
    External data is looked up relative to ``base_dir`` (default: the model file's folder).
    """
    buf, where, folder = _open(source)
    if base_dir is not None:
        folder = base_dir
    if len(buf) == 0:
        raise FormatError(f"{where} is empty: expected a serialized ONNX ModelProto")
    skeleton, raws = _split_raw(buf, where)
    proto = pb.ModelProto()
    try:
        proto.ParseFromString(skeleton)
    except DecodeError as e:
        raise FormatError(f"{where} is not a valid ONNX model: {e}") from None
    if not proto.HasField("graph") and not proto.HasField("ir_version"):
        raise FormatError(f"{where} is not an ONNX model: it has neither a graph nor an ir_version")
    return _Reader(folder, raws, where).model(proto)


def load_tensor(source: Source) -> Tensor:
    """Read a serialized TensorProto (as in the backend test data's input_0.pb)."""
    buf, where, _ = _open(source)
    proto = pb.TensorProto()
    try:
        proto.ParseFromString(bytes(buf))
    except DecodeError as e:
        raise FormatError(f"{where} is not a valid TensorProto: {e}") from None
    return _Reader(None, {}, where).tensor(proto)


def _open(source: Source) -> tuple[memoryview, str, str | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        return memoryview(source).cast("B"), "the given bytes", None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        folder = os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
        return memoryview(source.read()), f"file object {name or ''}".strip(), folder
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as e:
        raise FormatError(f"cannot read model file {path!r}: {e.strerror}") from None
    return memoryview(data), repr(path), os.path.dirname(os.path.abspath(path))


def _split_raw(buf: memoryview, where: str) -> tuple[bytes, dict[int, memoryview]]:
    """Cut large initializer raw_data out of a ModelProto; return the skeleton and the cuts."""
    parts: list[Any] = []
    raws: dict[int, memoryview] = {}
    index = -1
    try:
        for number, wt, start, vstart, end in wire.fields(buf, 0, len(buf)):
            if number != 7 or wt != wire.LENGTH:
                parts.append(buf[start:end])
                continue
            graph_parts: list[Any] = []
            for gnum, gwt, gstart, gvstart, gend in wire.fields(buf, vstart, end):
                if gnum == 5 and gwt == wire.LENGTH:
                    index += 1
                    if gend - gvstart > LAZY_THRESHOLD:
                        stripped = _strip_tensor(buf, gvstart, gend)
                        if stripped is not None:
                            raws[index] = stripped[1]
                            graph_parts += [wire.tag(5, 2), wire.encode_varint(len(stripped[0])),
                                            stripped[0]]  # fmt: skip
                            continue
                graph_parts.append(buf[gstart:gend])
            payload = b"".join(graph_parts)
            parts += [wire.tag(7, 2), wire.encode_varint(len(payload)), payload]
    except FormatError as e:
        raise FormatError(f"{where} is not a valid ONNX model: {e}") from None
    return b"".join(parts), raws


def _strip_tensor(buf: memoryview, start: int, end: int) -> tuple[bytes, memoryview] | None:
    kept, raw = [], None
    for number, wt, fstart, vstart, fend in wire.fields(buf, start, end):
        if number == 9 and wt == wire.LENGTH:
            raw = buf[vstart:fend]
        else:
            kept.append(buf[fstart:fend])
    if raw is None or len(raw) <= LAZY_THRESHOLD:
        return None
    return b"".join(kept), raw


def _present(message, obj, names: Iterable[str]) -> None:
    """Remember fields that a file set explicitly to their default value."""
    for name in names:
        if message.HasField(name) and not getattr(message, name):
            obj.present.add(name)


class _Reader:
    def __init__(self, folder: str | None, raws: dict[int, memoryview], where: str):
        self.folder, self.raws, self.where = folder, raws, where

    # --- model ---------------------------------------------------------------------------
    def model(self, p: pb.ModelProto) -> Model:
        scope = Scope(None)
        graph = self.graph(p.graph, scope, "main", top=True) if p.HasField("graph") else Graph()
        m = Model(
            graph=graph,
            ir_version=p.ir_version,
            opset_imports={o.domain: o.version for o in p.opset_import},
            producer_name=p.producer_name,
            producer_version=p.producer_version,
            domain=p.domain,
            model_version=p.model_version,
            doc_string=p.doc_string,
            metadata_props={e.key: e.value for e in p.metadata_props},
        )
        _present(p, m, ("ir_version", "producer_name", "producer_version", "domain",
                        "model_version", "doc_string"))  # fmt: skip
        if not p.HasField("graph"):
            m.present.add("-graph")
        _opset_presence(p.opset_import, m)
        for f in p.functions:
            fn = self.function(f)
            if fn.id in m.functions:
                domain, name, overload = fn.id
                label = f"{domain}::{name}" + (f":{overload}" if overload else "")
                raise GraphError(f"{self.where}: function {label} is defined twice")
            m.functions[fn.id] = fn
        for t in p.training_info:
            info = TrainingInfo(
                initialization_binding=[(e.key, e.value) for e in t.initialization_binding],
                update_binding=[(e.key, e.value) for e in t.update_binding],
            )
            if t.HasField("initialization"):
                info.initialization = self.graph(
                    t.initialization, Scope(scope), "training", free=True
                )
            if t.HasField("algorithm"):
                info.algorithm = self.graph(t.algorithm, Scope(scope), "training", free=True)
            m.training_info.append(info)
        m.configuration = [_to_dict(c) for c in p.configuration]
        return m

    def function(self, f: pb.FunctionProto) -> Function:
        where = f"function {f.domain}::{f.name}"
        scope = Scope(None)
        inputs = [self._define(scope, Value(n), where) for n in f.input]
        g = Graph(inputs=inputs)
        self._nodes(g, f.node, scope, where, free=False)
        g.outputs = [self._use(scope, n, where, f"output {n!r}") for n in f.output]
        for vi in f.value_info:
            g.value_info.append(self._value_info(vi, scope))
        fn = Function(
            domain=f.domain, name=f.name, graph=g, attributes=list(f.attribute),
            attribute_defaults={a.name: self.attribute(a, scope, where) for a in f.attribute_proto},
            opset_imports={o.domain: o.version for o in f.opset_import},
            overload=f.overload, doc_string=f.doc_string,
            metadata_props={e.key: e.value for e in f.metadata_props},
        )  # fmt: skip
        _present(f, fn, ("name", "domain", "overload", "doc_string"))
        _opset_presence(f.opset_import, fn)
        return fn

    # --- graphs --------------------------------------------------------------------------
    def graph(self, p: pb.GraphProto, scope: Scope, path: str, *, top: bool = False,
              free: bool = False) -> Graph:  # fmt: skip
        where = f"graph {path!r}"
        g = Graph(name=p.name, doc_string=p.doc_string,
                  metadata_props={e.key: e.value for e in p.metadata_props})  # fmt: skip
        _present(p, g, ("name", "doc_string"))
        for vi in p.input:
            value = self._value_from_info(vi)
            g.inputs.append(self._define(scope, value, where))
        for i, t in enumerate(p.initializer):
            tensor = self.tensor(t, self.raws.get(i) if top else None)
            value = scope.values.get(t.name)
            if value is None or value not in g.inputs or value.const_value is not None:
                value = self._define(scope, Value(t.name), where)
            value.const_value = tensor
            g.add_initializer(value)
        for s in p.sparse_initializer:
            sparse = self.sparse_tensor(s)
            value = scope.values.get(sparse.name)
            if value is None or value not in g.inputs or value.const_value is not None:
                value = self._define(scope, Value(sparse.name), where)
            value.const_value = sparse
            g.add_initializer(value)
        self._nodes(g, p.node, scope, path, free)
        for vi in p.output:
            value = self._use(scope, vi.name, where, f"graph output {vi.name!r}", free)
            self._fill_info(value, vi)
            g.outputs.append(value)
        for vi in p.value_info:
            g.value_info.append(self._value_info(vi, scope))
        for a in p.quantization_annotation:
            params = {e.key: e.value for e in a.quant_parameter_tensor_names}
            g.quantization_annotation.append((a.tensor_name, params))
        try:
            _check_acyclic(g)
        except GraphError as e:
            raise GraphError(f"{self.where}: {e}") from None
        return g

    def _nodes(self, g: Graph, protos, scope: Scope, path: str, free: bool) -> None:
        nodes = []
        for i, n in enumerate(protos):
            label = f"node {n.name or '#' + str(i)!r} ({n.op_type}) in graph {path!r}"
            if not all(isinstance(t, str) for t in (n.op_type, n.domain, n.name)):
                raise FormatError(f"{self.where}: {label}: a name or op type is not UTF-8")
            outputs = []
            for name in n.output:
                outputs.append(self._define(scope, Value(name), label) if name else None)
            node = Node(n.op_type, (), outputs, domain=n.domain, name=n.name, overload=n.overload,
                        doc_string=n.doc_string,
                        metadata_props={e.key: e.value for e in n.metadata_props},
                        device_configurations=[_to_dict(c) for c in n.device_configurations])  # fmt: skip
            _present(n, node, ("name", "domain", "overload", "doc_string", "op_type"))
            nodes.append((node, n, label))
            g.append(node)
        for node, n, label in nodes:
            for name in n.input:
                node.append_input(
                    self._use(scope, name, label, f"input {name!r}", free) if name else None
                )
            for a in n.attribute:
                attr = self.attribute(a, scope, label, f"{path}/{n.name or n.op_type}")
                node.attributes[attr.name] = attr
            for sub in node.subgraphs():
                sub.parent = node

    def _define(self, scope: Scope, value: Value, where: str) -> Value:
        if not isinstance(value.name, str):  # protobuf hands a string that is not UTF-8 as bytes
            raise FormatError(f"{self.where}: value name {value.name!r} is not UTF-8 ({where})")
        if value.name in scope.values:
            raise GraphError(f"{self.where}: value {value.name!r} is defined twice ({where})")
        scope.values[value.name] = value
        return value

    def _use(self, scope: Scope, name: str, where: str, what: str, free: bool = False) -> Value:
        value = scope.find(name)
        if value is None:
            if not free:
                raise GraphError(f"{self.where}: {where} uses undefined value {name!r} ({what})")
            value = scope.values[name] = Value(name)
        return value

    def _value_from_info(self, vi: pb.ValueInfoProto) -> Value:
        value = Value(vi.name)
        self._fill_info(value, vi)
        return value

    def _fill_info(self, value: Value, vi: pb.ValueInfoProto) -> None:
        if vi.HasField("type"):
            value.type = self.type(vi.type)
            if value.type is None:  # an empty TypeProto: unknown, like none, but written back
                value.present.add("type")
        value.doc_string = vi.doc_string
        value.metadata_props = {e.key: e.value for e in vi.metadata_props}
        _present(vi, value, ("name", "doc_string"))
        if not vi.HasField("type"):
            value.present.add("-type")

    def _value_info(self, vi: pb.ValueInfoProto, scope: Scope) -> Value:
        value = scope.find(vi.name) or Value(vi.name)
        self._fill_info(value, vi)
        return value

    # --- attributes, types, tensors --------------------------------------------------------
    def attribute(
        self, a: pb.AttributeProto, scope: Scope, where: str, path: str = ""
    ) -> Attribute:
        if not isinstance(a.name, str):  # proto2 strings: protobuf hands invalid UTF-8 as bytes
            raise FormatError(f"{self.where}: {where}: attribute name {a.name!r} is not UTF-8")
        kind = a.type if a.HasField("type") else _guess_attr_type(a)
        try:
            kind = AttrType(kind)
        except ValueError:
            raise FormatError(
                f"{self.where}: {where}: attribute {a.name!r} has unknown type {kind}"
            ) from None
        sub = f"{path}.{a.name}"
        value: Any
        if kind == AttrType.FLOAT:
            value = a.f
        elif kind == AttrType.INT:
            value = a.i
        elif kind == AttrType.STRING:
            value = a.s.decode("utf-8", "surrogateescape")
        elif kind == AttrType.TENSOR:
            value = self.tensor(a.t) if a.HasField("t") else None
        elif kind == AttrType.GRAPH:
            value = self.graph(a.g, Scope(scope), sub) if a.HasField("g") else None
        elif kind == AttrType.SPARSE_TENSOR:
            value = self.sparse_tensor(a.sparse_tensor) if a.HasField("sparse_tensor") else None
        elif kind == AttrType.TYPE_PROTO:
            value = (self.type(a.tp) or UnknownType()) if a.HasField("tp") else None
        elif kind == AttrType.FLOATS:
            value = list(a.floats)
        elif kind == AttrType.INTS:
            value = list(a.ints)
        elif kind == AttrType.STRINGS:
            value = [s.decode("utf-8", "surrogateescape") for s in a.strings]
        elif kind == AttrType.TENSORS:
            value = [self.tensor(t) for t in a.tensors]
        elif kind == AttrType.GRAPHS:
            value = [self.graph(g, Scope(scope), f"{sub}[{i}]") for i, g in enumerate(a.graphs)]
        elif kind == AttrType.SPARSE_TENSORS:
            value = [self.sparse_tensor(s) for s in a.sparse_tensors]
        elif kind == AttrType.TYPE_PROTOS:
            value = [self.type(t) or UnknownType() for t in a.type_protos]
        else:
            value = None
        attr = Attribute(a.name, kind, value, a.ref_attr_name, a.doc_string)
        _present(a, attr, ("name", "ref_attr_name", "doc_string", "f", "i", "s", "type"))
        if not a.HasField("type"):
            attr.present.add("-type")
        return attr

    def type(self, t: pb.TypeProto) -> Type | None:
        """The Type of a TypeProto: None when it is empty (unknown), UnknownType when it carries
        only a denotation. ``present`` remembers empty fields the file set, for saving."""
        which = t.WhichOneof("value")
        den = t.denotation if t.HasField("denotation") else None
        present: set[str] = set()
        if which == "tensor_type" or which == "sparse_tensor_type":
            tt = getattr(t, which)
            if not tt.HasField("elem_type"):
                present.add("-elem_type")
            elif not tt.elem_type:
                present.add("elem_type")
            dtype = dtypes.data_type(tt.elem_type, where=self.where)
            shape = self.shape(tt.shape) if tt.HasField("shape") else None
            cls = TensorType if which == "tensor_type" else SparseTensorType
            return cls(dtype, shape, den, present=frozenset(present))
        if which == "sequence_type" or which == "optional_type":
            elem = self._inner(getattr(t, which), "elem_type", present)
            cls = SequenceType if which == "sequence_type" else OptionalType
            return cls(elem, den, present=frozenset(present))
        if which == "map_type":
            m = t.map_type
            if not m.HasField("key_type"):
                present.add("-key_type")
            key = dtypes.data_type(m.key_type, where=self.where)
            value = self._inner(m, "value_type", present)
            return MapType(key, value, den, present=frozenset(present))
        if which == "opaque_type":
            o = t.opaque_type
            present.update(f for f in ("domain", "name") if o.HasField(f) and not getattr(o, f))
            return OpaqueType(o.domain, o.name, den, present=frozenset(present))
        return None if den is None else UnknownType(den)

    def _inner(self, message, field: str, present: set[str]) -> Type | None:
        """The type in ``message.field``: None when absent or empty (the latter noted)."""
        if not message.HasField(field):
            return None
        inner = self.type(getattr(message, field))
        if inner is None:
            present.add(field)
        return inner

    @staticmethod
    def shape(s: pb.TensorShapeProto) -> Shape:
        # a negative dim_value or an empty dim_param: Shape reads it as unknown and keeps it
        dims, dens = [], []
        for d in s.dim:
            which = d.WhichOneof("value")
            dims.append(d.dim_value if which == "dim_value" else d.dim_param if which else None)
            dens.append(d.denotation if d.HasField("denotation") else None)
        return Shape(dims, dens)

    def tensor(self, t: pb.TensorProto, raw: memoryview | None = None) -> Tensor:
        where = f"tensor {t.name!r}"
        if len(t.dims) > 64 or any(d < 0 for d in t.dims):
            raise TensorDataError(f"{self.where}: {where} has invalid dims {list(t.dims)}")
        external = None
        if t.data_location == pb.TensorProto.EXTERNAL:
            external = self.external(t)
        elif raw is None and t.HasField("raw_data"):
            raw = t.raw_data
        field = None
        if raw is None and external is None:
            name = typed_field(dtypes.data_type(t.data_type, where=f"{self.where}: {where}"))
            for candidate in (name, "float_data", "int32_data", "string_data", "int64_data",
                              "double_data", "uint64_data"):  # fmt: skip
                values = getattr(t, candidate)
                if len(values):
                    field = (
                        candidate,
                        list(values) if candidate == "string_data" else np.asarray(values),
                    )
                    break
        tensor = Tensor.stored(t.name, t.data_type, t.dims, raw=raw, field=field, external=external)
        if field is None and raw is None and external is None and t.HasField("raw_data"):
            tensor._raw = b""
        tensor.doc_string = t.doc_string
        tensor.metadata_props = {e.key: e.value for e in t.metadata_props}
        if t.HasField("segment"):
            tensor.segment = (t.segment.begin, t.segment.end)
            tensor.present.update(f"-segment.{f}" for f in ("begin", "end")
                                  if not t.segment.HasField(f))  # fmt: skip
        _present(t, tensor, ("name", "doc_string", "data_type", "raw_data", "data_location"))
        if tensor.size > 0 and field is None and raw is None and external is None:
            raise TensorDataError(
                f"{self.where}: {where} has dims {list(t.dims)} but carries no data"
            )
        if tensor.size > 2**40:
            raise TensorDataError(
                f"{self.where}: {where} declares {tensor.size} elements (absurd dims)"
            )
        return tensor

    def sparse_tensor(self, s: pb.SparseTensorProto) -> SparseTensor:
        return SparseTensor(self.tensor(s.values), self.tensor(s.indices), s.dims)

    def external(self, t: pb.TensorProto) -> ExternalData:
        entries = {e.key: e.value for e in t.external_data}
        name = t.name
        location = entries.get("location", "")
        if not location:
            raise ExternalDataError(
                f"{self.where}: tensor {name!r} is external but names no location"
            )
        if self.folder is None:
            raise ExternalDataError(
                f"{self.where}: tensor {name!r} has external data {location!r}, but the model was "
                "not loaded from a path: pass base_dir= to say where its files are"
            )
        _confine(location, self.folder, name)
        try:
            offset = int(entries.get("offset", 0))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            raise ExternalDataError(
                f"tensor {name!r}: offset/length of external data are not integers"
            ) from None
        path = os.path.join(self.folder, location)
        if not os.path.isfile(path):
            raise ExternalDataError(
                f"tensor {name!r}: external data file {location!r} not found in {self.folder!r}"
            )
        size = os.path.getsize(path)
        if offset < 0 or (length is not None and length < 0) or offset + (length or 0) > size:
            raise ExternalDataError(
                f"tensor {name!r}: offset {offset} + length {length} reaches past the end of "
                f"{location!r} ({size} bytes)"
            )
        extra = [(e.key, e.value) for e in t.external_data]
        return ExternalData(location, offset, length, self.folder, dict(extra))


def _opset_presence(entries, obj) -> None:
    if any(not e.domain and not e.HasField("domain") for e in entries):
        obj.present.add("-opset_domain")


def _confine(location: str, folder: str, name: str) -> None:
    """External data must stay inside the model's folder: no absolute paths, no escape via '..'."""
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
        raise ExternalDataError(f"tensor {name!r}: external data path {location!r} is absolute")
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, target]) != root:
        raise ExternalDataError(
            f"tensor {name!r}: external data path {location!r} points outside the model's folder"
        )


def _guess_attr_type(a: pb.AttributeProto) -> int:
    """Files from IR version 1 may omit AttributeProto.type; tell it from the field that is set."""
    for field, kind in (("f", 1), ("i", 2), ("s", 3), ("t", 4), ("g", 5), ("sparse_tensor", 11),
                        ("tp", 13)):  # fmt: skip
        if a.HasField(field):
            return kind
    for field, kind in (("floats", 6), ("ints", 7), ("strings", 8), ("tensors", 9), ("graphs", 10),
                        ("sparse_tensors", 12), ("type_protos", 14)):  # fmt: skip
        if len(getattr(a, field)):
            return kind
    return 0


def _check_acyclic(g: Graph) -> None:
    """Raise GraphError if the nodes of ``g`` form a cycle (without reordering them)."""
    saved = list(g.nodes)
    try:
        g.sort()
    finally:
        g.nodes[:] = saved


def _to_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# ============================================================================================
# save
# ============================================================================================
def save(model: Model, target: str | os.PathLike | IO[bytes], *, external_data: bool | None = None,
         location: str | None = None, size_threshold: int = EXTERNAL_THRESHOLD) -> None:  # fmt: skip
    """Write a model to a path or binary file object.

    ``external_data``: True puts every tensor of at least ``size_threshold`` bytes in one file
    (``location``, default ``<model file name>.data``) beside the model; None does so only when the
    model had external data or would exceed protobuf's 2 GiB limit; False never does.
    """
    is_path = not hasattr(target, "write")
    if external_data is None:
        # leave a margin under the limit for the graph itself
        external_data = _has_external(model) or _data_size(model) > PROTOBUF_LIMIT * 31 // 32
    if external_data and not is_path:
        raise ExternalDataError("external data needs a path to save to, not a file object")
    if not is_path:
        _Writer(model).write_to(target)
        return
    path = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(path))
    data_file = None
    if external_data:
        location = location or os.path.basename(path) + ".data"
        _confine(location, folder, "(save)")
        data_file = _AtomicFile(os.path.join(folder, location))
    try:
        writer = _Writer(model, data_file, location, size_threshold)
        with _AtomicFile(path) as f:
            writer.write_to(f)
        if data_file is not None:
            data_file.commit()
    finally:
        if data_file is not None:
            data_file.discard()


def to_bytes(model: Model) -> bytes:
    """The serialized ModelProto (tensors inline)."""
    out = io.BytesIO()
    _Writer(model).write_to(out)
    return out.getvalue()


def _has_external(model: Model) -> bool:
    return any(v.const_value.external is not None for v in model.graph.initializers.values())


def _data_size(model: Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values()
               if v.const_value.dtype != dtypes.DataType.STRING)  # fmt: skip


class _AtomicFile:
    """A file written beside its target and moved into place on success (so a model whose data
    is memory-mapped from the old file can be saved over it)."""

    def __init__(self, path: str):
        self.path = path
        fd, self.tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".onyx-")
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved model gets open()'s mode
        self.file = os.fdopen(fd, "wb")
        self.done = False

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def write(self, data) -> int:
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def commit(self) -> None:
        if not self.done:
            self.file.close()
            os.replace(self.tmp, self.path)
            self.done = True

    def discard(self) -> None:
        if not self.done:
            self.file.close()
            os.unlink(self.tmp)
            self.done = True


class _Writer:
    def __init__(self, model: Model, data_file: _AtomicFile | None = None, location: str | None = None,
                 size_threshold: int = EXTERNAL_THRESHOLD):  # fmt: skip
        self.model = model
        self.data_file, self.location, self.size_threshold = data_file, location, size_threshold
        self.big: dict[int, Any] = {}  # initializer index -> raw bytes streamed on write
        self.names: dict[Value, str] = {}
        self.used_names: set[str] = set()

    def write_to(self, f) -> None:
        proto = self.model_proto()
        if not self.big:
            f.write(proto.SerializeToString())
            return
        skeleton = memoryview(proto.SerializeToString())
        for part in self._splice(skeleton):
            f.write(part)

    def _splice(self, buf: memoryview):
        """Yield the file's bytes: the skeleton with the big raw payloads put back in place."""
        index = -1
        for number, _, start, vstart, end in wire.fields(buf, 0, len(buf)):
            if number != 7:
                yield buf[start:end]
                continue
            pieces: list[Any] = []
            for gnum, _, gstart, gvstart, gend in wire.fields(buf, vstart, end):
                if gnum == 5:
                    index += 1
                    raw = self.big.get(index)
                    if raw is not None:
                        cut = gend
                        for tnum, _, tstart, _, _ in wire.fields(buf, gvstart, gend):
                            if tnum > 9:
                                cut = tstart
                                break
                        head = [buf[gvstart:cut], wire.tag(9, 2), wire.encode_varint(len(raw))]
                        length = sum(len(p) for p in head) + len(raw) + (gend - cut)
                        pieces += [
                            wire.tag(5, 2),
                            wire.encode_varint(length),
                            *head,
                            raw,
                            buf[cut:gend],
                        ]
                        continue
                pieces.append(buf[gstart:gend])
            yield wire.tag(7, 2)
            yield wire.encode_varint(sum(len(p) for p in pieces))
            yield from pieces

    # --- model ---------------------------------------------------------------------------
    def model_proto(self) -> pb.ModelProto:
        m = self.model
        p = pb.ModelProto()
        _set(p, m, "ir_version", m.ir_version)
        _set(p, m, "producer_name", m.producer_name)
        _set(p, m, "producer_version", m.producer_version)
        _set(p, m, "domain", m.domain)
        _set(p, m, "model_version", m.model_version)
        _set(p, m, "doc_string", m.doc_string)
        _opsets(p.opset_import, m.opset_imports, m)
        _props(p.metadata_props, m.metadata_props)
        if "-graph" not in m.present:
            self.graph(p.graph, m.graph, top=True)
        for info in m.training_info:
            t = p.training_info.add()
            if info.initialization is not None:
                self.graph(t.initialization, info.initialization)
            if info.algorithm is not None:
                self.graph(t.algorithm, info.algorithm)
            for k, v in info.initialization_binding:
                t.initialization_binding.add(key=k, value=v)
            for k, v in info.update_binding:
                t.update_binding.add(key=k, value=v)
        for fn in m.functions.values():
            self.function(p.functions.add(), fn)
        for c in m.configuration:
            json_format.ParseDict(c, p.configuration.add())
        return p

    def function(self, p: pb.FunctionProto, fn: Function) -> None:
        _set(p, fn, "name", fn.name)
        _set(p, fn, "domain", fn.domain)
        _set(p, fn, "overload", fn.overload)
        _set(p, fn, "doc_string", fn.doc_string)
        p.input.extend(self.name(v) for v in fn.graph.inputs)
        p.output.extend(self.name(v) for v in fn.graph.outputs)
        p.attribute.extend(fn.attributes)
        for attr in fn.attribute_defaults.values():
            self.attribute(p.attribute_proto.add(), attr)
        for node in fn.graph.nodes:
            self.node(p.node.add(), node)
        _opsets(p.opset_import, fn.opset_imports, fn)
        for v in fn.graph.value_info:
            self.value_info(p.value_info.add(), v)
        _props(p.metadata_props, fn.metadata_props)

    def graph(self, p: pb.GraphProto, g: Graph, top: bool = False) -> None:
        p.SetInParent()  # a graph is written even when empty (an empty attribute graph)
        for node in g.nodes:
            self.node(p.node.add(), node)
        _set(p, g, "name", g.name)
        for i, value in enumerate(g.initializers.values()):
            self.tensor(
                p.initializer.add(), value.const_value, self.name(value), i if top else None
            )
        for value in g.sparse_initializers.values():
            self.sparse_tensor(p.sparse_initializer.add(), value.const_value, self.name(value))
        _set(p, g, "doc_string", g.doc_string)
        for v in g.inputs:
            self.value_info(p.input.add(), v)
        for v in g.outputs:
            self.value_info(p.output.add(), v)
        for v in g.value_info:
            self.value_info(p.value_info.add(), v)
        for tensor_name, params in g.quantization_annotation:
            a = p.quantization_annotation.add(tensor_name=tensor_name)
            _props(a.quant_parameter_tensor_names, params)
        _props(p.metadata_props, g.metadata_props)

    def name(self, value: Value | None) -> str:
        if value is None:
            return ""
        if value.name:
            return value.name
        name = self.names.get(value)
        if name is None:
            name = f"_v{len(self.names)}"
            while name in self.used_names:
                name += "_"
            self.names[value] = name
            self.used_names.add(name)
        return name

    def value_info(self, p: pb.ValueInfoProto, v: Value) -> None:
        name = self.name(v)
        if name or "name" in v.present:
            p.name = name
        if v.type is not None:
            self.type(p.type, v.type)
        elif "type" in v.present:  # the file wrote an empty type
            p.type.SetInParent()
        _set(p, v, "doc_string", v.doc_string)
        _props(p.metadata_props, v.metadata_props)

    def node(self, p: pb.NodeProto, n: Node) -> None:
        p.input.extend(self.name(v) for v in n.inputs)
        p.output.extend(self.name(v) for v in n.outputs)
        _set(p, n, "name", n.name)
        _set(p, n, "op_type", n.op_type)
        _set(p, n, "domain", n.domain)
        _set(p, n, "overload", n.overload)
        for attr in n.attributes.values():
            self.attribute(p.attribute.add(), attr)
        _set(p, n, "doc_string", n.doc_string)
        _props(p.metadata_props, n.metadata_props)
        for c in n.device_configurations:
            json_format.ParseDict(c, p.device_configurations.add())

    def attribute(self, p: pb.AttributeProto, a: Attribute) -> None:
        _set(p, a, "name", a.name)
        _set(p, a, "ref_attr_name", a.ref_attr_name)
        _set(p, a, "doc_string", a.doc_string)
        if "-type" not in a.present:
            p.type = int(a.type)
        k, v = a.type, a.value
        if v is None:
            return
        if k == AttrType.FLOAT:
            _set(p, a, "f", float(v))
        elif k == AttrType.INT:
            _set(p, a, "i", int(v))
        elif k == AttrType.STRING:
            _set(p, a, "s", v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v)
        elif k == AttrType.TENSOR:
            self.tensor(p.t, _as_tensor(v))
        elif k == AttrType.GRAPH:
            self.graph(p.g, v)
        elif k == AttrType.SPARSE_TENSOR:
            self.sparse_tensor(p.sparse_tensor, v)
        elif k == AttrType.TYPE_PROTO:
            self.type(p.tp, v)
        elif k == AttrType.FLOATS:
            p.floats.extend(float(x) for x in v)
        elif k == AttrType.INTS:
            p.ints.extend(int(x) for x in v)
        elif k == AttrType.STRINGS:
            p.strings.extend(
                s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s for s in v
            )
        elif k == AttrType.TENSORS:
            for t in v:
                self.tensor(p.tensors.add(), _as_tensor(t))
        elif k == AttrType.GRAPHS:
            for g in v:
                self.graph(p.graphs.add(), g)
        elif k == AttrType.SPARSE_TENSORS:
            for s in v:
                self.sparse_tensor(p.sparse_tensors.add(), s)
        elif k == AttrType.TYPE_PROTOS:
            for t in v:
                self.type(p.type_protos.add(), t)

    def type(self, p: pb.TypeProto, t: Type) -> None:
        p.SetInParent()
        if t.denotation is not None:
            p.denotation = t.denotation
        present = t.present
        if isinstance(t, TensorType | SparseTensorType):
            tt = p.tensor_type if isinstance(t, TensorType) else p.sparse_tensor_type
            tt.SetInParent()
            # a TensorType writes its elem_type even when UNDEFINED, unless its file had none
            if (
                t.dtype
                or "elem_type" in present
                or (isinstance(t, TensorType) and "-elem_type" not in present)
            ):
                tt.elem_type = int(t.dtype)
            if t.shape is not None:
                self.shape(tt.shape, t.shape)
        elif isinstance(t, SequenceType | OptionalType):
            seq = p.sequence_type if isinstance(t, SequenceType) else p.optional_type
            seq.SetInParent()
            self._inner(seq.elem_type, t.elem_type, "elem_type" in present)
        elif isinstance(t, MapType):
            p.map_type.SetInParent()
            if t.key_type or "-key_type" not in present:
                p.map_type.key_type = int(t.key_type)
            self._inner(p.map_type.value_type, t.value_type, "value_type" in present)
        elif isinstance(t, OpaqueType):
            p.opaque_type.SetInParent()
            if t.domain or "domain" in present:
                p.opaque_type.domain = t.domain
            if t.name or "name" in present:
                p.opaque_type.name = t.name

    def _inner(self, p: pb.TypeProto, t: Type | None, empty: bool) -> None:
        if t is not None:
            self.type(p, t)
        elif empty:
            p.SetInParent()

    @staticmethod
    def shape(p: pb.TensorShapeProto, s: Shape) -> None:
        p.SetInParent()
        dens = s.denotations or ()
        for i, d in enumerate(s.dims):
            dim = p.dim.add()
            if d is None:
                d = s.written.get(i)  # what the file had for an unknown dim (-1, ""), if anything
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
            if i < len(dens) and dens[i] is not None:
                dim.denotation = dens[i]

    def tensor(
        self, p: pb.TensorProto, t: Tensor, name: str | None = None, index: int | None = None
    ) -> None:
        p.dims.extend(t.dims)
        _set(p, t, "data_type", int(t.dtype))
        if t.segment is not None:
            p.segment.SetInParent()
            if "-segment.begin" not in t.present:
                p.segment.begin = t.segment[0]
            if "-segment.end" not in t.present:
                p.segment.end = t.segment[1]
        _set(p, t, "name", t.name if name is None else name)
        _set(p, t, "doc_string", t.doc_string)
        _props(p.metadata_props, t.metadata_props)
        if self._write_external(p, t):
            return
        if t.field is not None and t.is_stored:
            field, values = t.field
            getattr(p, field).extend(values if field == "string_data" else values.tolist())
        elif t.external is not None or t.raw is not None or not t.is_stored:
            if t.dtype == dtypes.DataType.STRING:
                p.string_data.extend(s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
                                     for s in t.numpy().reshape(-1))  # fmt: skip
            else:
                raw = t.tobytes()
                if index is not None and len(raw) > LAZY_THRESHOLD:
                    self.big[index] = raw
                else:
                    p.raw_data = bytes(raw)
        elif "raw_data" in t.present:
            p.raw_data = b""
        if "data_location" in t.present:
            p.data_location = pb.TensorProto.DEFAULT

    def _write_external(self, p: pb.TensorProto, t: Tensor) -> bool:
        if (
            self.data_file is None
            or t.dtype == dtypes.DataType.STRING
            or t.nbytes < self.size_threshold
        ):
            return False
        raw = t.tobytes()
        pad = -self.data_file.tell() % 64
        self.data_file.write(b"\0" * pad)
        offset = self.data_file.tell()
        self.data_file.write(raw)
        for key, value in (
            ("location", self.location),
            ("offset", str(offset)),
            ("length", str(len(raw))),
        ):
            p.external_data.add(key=key, value=value)
        p.data_location = pb.TensorProto.EXTERNAL
        return True

    def sparse_tensor(
        self, p: pb.SparseTensorProto, s: SparseTensor, name: str | None = None
    ) -> None:
        self.tensor(p.values, s.values, name)
        self.tensor(p.indices, s.indices)
        p.dims.extend(s.dims)


def _as_tensor(value) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


def _set(p, obj, field: str, value) -> None:
    """Set a proto2 optional field when it differs from its default or the source set it."""
    if value or field in getattr(obj, "present", ()):
        setattr(p, field, value)


def _opsets(entries, opsets: dict[str, int], owner) -> None:
    for domain, version in opsets.items():
        if domain or "-opset_domain" not in owner.present:
            entries.add(domain=domain, version=version)
        else:
            entries.add(version=version)


def _props(entries, props: dict[str, str]) -> None:
    for k, v in props.items():
        entries.add(key=k, value=v)


# ============================================================================================
# models given in any form; single tensors and values (sequence, map, optional) as bytes
# ============================================================================================
def as_model(source: Model | Source | Any) -> Model:
    """``source`` itself when it is an ``ir.Model``, else the model read from it.

    Accepts what ``load`` reads (a path, bytes, a binary file object) and any object with a
    ``SerializeToString`` method (an ``onnx.ModelProto``). Every function that takes a model goes
    through here, so all of them take all of these.
    """
    if isinstance(source, Model):
        return source
    if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview) or hasattr(
        source, "read"
    ):
        return load(source)
    if callable(getattr(source, "SerializeToString", None)):
        return load(source.SerializeToString())
    raise TypeError(
        "expected an onyx.ir.Model, a path, bytes, a binary file object or a ModelProto; "
        f"got {type(source).__name__}"
    )


def tensor_to_bytes(tensor: Tensor) -> bytes:
    """The serialized TensorProto of ``tensor`` (data inline; the inverse of ``load_tensor``)."""
    p = pb.TensorProto()
    _Writer(Model(Graph())).tensor(p, tensor)
    return p.SerializeToString()


# SequenceProto.DataType / OptionalProto.DataType codes (the two enums agree).
_VALUE_UNDEFINED, _VALUE_TENSOR, _VALUE_SPARSE, _VALUE_SEQUENCE, _VALUE_MAP, _VALUE_OPTIONAL = (
    range(6)
)
_INT_KEYS = frozenset(
    dtypes.DataType[n] for n in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                                 "UINT64")
)  # fmt: skip


def load_value(source: Source, kind: str) -> Any:
    """Read a serialized SequenceProto, MapProto or OptionalProto (``kind``: 'sequence', 'map',
    'optional') into onyx's values: lists, dicts, None or the value; tensors as numpy arrays."""
    kinds = {"sequence": pb.SequenceProto, "map": pb.MapProto, "optional": pb.OptionalProto}
    if kind not in kinds:
        raise TypeError(f"kind must be one of {sorted(kinds)}, not {kind!r}")
    buf, where, _ = _open(source)
    proto = kinds[kind]()
    try:
        proto.ParseFromString(bytes(buf))
    except DecodeError as e:
        raise FormatError(f"{where} is not a valid {kinds[kind].__name__}: {e}") from None
    reader = _Reader(None, {}, where)
    return {"sequence": _read_sequence, "map": _read_map, "optional": _read_optional}[kind](
        reader, proto
    )


def _read_sequence(reader: _Reader, p) -> list:
    kind = p.elem_type
    if kind == _VALUE_TENSOR:
        return [reader.tensor(t).numpy() for t in p.tensor_values]
    if kind == _VALUE_SPARSE:
        return [reader.sparse_tensor(t).to_dense() for t in p.sparse_tensor_values]
    if kind == _VALUE_SEQUENCE:
        return [_read_sequence(reader, s) for s in p.sequence_values]
    if kind == _VALUE_MAP:
        return [_read_map(reader, m) for m in p.map_values]
    if kind == _VALUE_OPTIONAL:
        return [_read_optional(reader, o) for o in p.optional_values]
    raise FormatError(f"{reader.where}: sequence {p.name!r} has element type {kind}, expected 1..5")


def _read_map(reader: _Reader, p) -> dict:
    key_type = dtypes.data_type(p.key_type, where=f"{reader.where}: map {p.name!r}")
    keys = list(p.string_keys) if key_type == dtypes.DataType.STRING else list(p.keys)
    values = _read_sequence(reader, p.values)
    if len(keys) != len(values):
        raise FormatError(
            f"{reader.where}: map {p.name!r} has {len(keys)} keys but {len(values)} values"
        )
    return dict(zip(keys, values))


def _read_optional(reader: _Reader, p) -> Any:
    kind = p.elem_type
    if kind == _VALUE_UNDEFINED:
        return None
    if kind == _VALUE_TENSOR:
        return reader.tensor(p.tensor_value).numpy()
    if kind == _VALUE_SPARSE:
        return reader.sparse_tensor(p.sparse_tensor_value).to_dense()
    if kind == _VALUE_SEQUENCE:
        return _read_sequence(reader, p.sequence_value)
    if kind == _VALUE_MAP:
        return _read_map(reader, p.map_value)
    if kind == _VALUE_OPTIONAL:
        return _read_optional(reader, p.optional_value)
    raise FormatError(f"{reader.where}: optional {p.name!r} has element type {kind}, expected 0..5")


def value_to_bytes(value: Any, kind: str, name: str = "", elem_kind: int | None = None) -> bytes:
    """Serialize a list, dict or optional value as a SequenceProto, MapProto or OptionalProto
    (``kind``: 'sequence', 'map', 'optional'); ``elem_kind`` (1 tensor .. 5 optional) types an
    empty sequence or an absent optional."""
    writer = _Writer(Model(Graph()))
    if kind == "sequence":
        p = _write_sequence(writer, value, name, elem_kind)
    elif kind == "map":
        p = _write_map(writer, value, name)
    elif kind == "optional":
        p = _write_optional(writer, value, name, elem_kind)
    else:
        raise TypeError(f"kind must be 'sequence', 'map' or 'optional', not {kind!r}")
    return p.SerializeToString()


def _value_kind(value: Any) -> int:
    if isinstance(value, dict):
        return _VALUE_MAP
    if isinstance(value, list):
        return _VALUE_SEQUENCE
    return _VALUE_TENSOR


def _write_sequence(writer: _Writer, values: Any, name: str, elem_kind: int | None):
    if not isinstance(values, list | tuple):
        raise TypeError(f"sequence {name!r}: expected a list, got {type(values).__name__}")
    p = pb.SequenceProto()
    if name:
        p.name = name
    kind = (
        elem_kind if elem_kind is not None else _value_kind(values[0]) if values else _VALUE_TENSOR
    )
    kinds = {_value_kind(v) for v in values}
    if values and (len(kinds) > 1 or not all(isinstance(v, type(values[0])) for v in values)):
        raise TypeError(f"sequence {name!r}: its elements are not all of one kind")
    p.elem_type = kind
    for v in values:
        if kind == _VALUE_TENSOR:
            writer.tensor(p.tensor_values.add(), Tensor(np.asarray(v)))
        elif kind == _VALUE_SEQUENCE:
            p.sequence_values.append(_write_sequence(writer, v, "", None))
        elif kind == _VALUE_MAP:
            p.map_values.append(_write_map(writer, v, ""))
        else:
            raise TypeError(f"sequence {name!r}: element kind {kind} is not supported")
    return p


def _write_map(writer: _Writer, mapping: Any, name: str):
    if not isinstance(mapping, dict) or not mapping:
        raise TypeError(f"map {name!r}: expected a non-empty dict, got {mapping!r:.60}")
    p = pb.MapProto()
    if name:
        p.name = name
    keys = list(mapping)
    key_dtype = (
        np.result_type(keys[0]) if not isinstance(keys[0], str | bytes) else np.dtype(object)
    )
    key_type = dtypes.DataType.STRING if key_dtype == object else dtypes.from_numpy(key_dtype)
    if key_type != dtypes.DataType.STRING and key_type not in _INT_KEYS:
        raise TypeError(f"map {name!r}: keys must be integers or strings, got {key_dtype}")
    if not all(type(k) is type(keys[0]) for k in keys):
        raise TypeError(f"map {name!r}: its keys are not all of one type")
    p.key_type = int(key_type)
    if key_type == dtypes.DataType.STRING:
        p.string_keys.extend(k.encode("utf-8") if isinstance(k, str) else k for k in keys)
    else:
        p.keys.extend(int(k) for k in keys)
    p.values.CopyFrom(_write_sequence(writer, list(mapping.values()), "", None))
    return p


def _write_optional(writer: _Writer, value: Any, name: str, elem_kind: int | None):
    p = pb.OptionalProto()
    if name:
        p.name = name
    if elem_kind is not None and elem_kind not in range(6):
        raise TypeError(f"optional {name!r}: element kind {elem_kind} is not one of 0..5")
    kind = elem_kind if elem_kind is not None else _VALUE_UNDEFINED if value is None else (
        _value_kind(value))  # fmt: skip
    p.elem_type = kind
    if value is not None:
        if kind == _VALUE_TENSOR:
            writer.tensor(p.tensor_value, Tensor(np.asarray(value)))
        elif kind == _VALUE_SEQUENCE:
            p.sequence_value.CopyFrom(_write_sequence(writer, value, "", None))
        elif kind == _VALUE_MAP:
            p.map_value.CopyFrom(_write_map(writer, value, ""))
        else:
            raise TypeError(f"optional {name!r}: element kind {kind} is not supported")
    return p
