"""Builders with the names and arguments of ``onnx.helper``, making onyx IR objects.

Code written against ``onnx.helper`` ports by changing the import::

    from onyx import helper
    from onyx.dtypes import DataType as TensorProto      # TensorProto.FLOAT == 1, as in onnx

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    node = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.1)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 21)])

As in onnx, nodes refer to values by name: ``make_node`` gives each input a placeholder value
carrying only its name, and ``make_graph`` (and ``make_function``) links every placeholder to the
input, initializer or node output of that name, in the graph or, for a subgraph, in an enclosing
graph once that one is made. A name nothing defines stays a dangling value (``onyx.check`` reports
it), as a dangling name does in onnx. Value infos are ``ir.Value`` objects with a type; type
protos are ``ir.Type`` objects; tensors are ``ir.Tensor``; opset ids are ``OperatorSetId``
tuples. Serializing what these build gives the bytes onnx's builders give for the same calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from onyx import dtypes
from onyx.dtypes import DataType
from onyx.errors import GraphError, TensorDataError
from onyx.ir import (
    Attribute,
    AttrType,
    Function,
    Graph,
    MapType,
    Model,
    Node,
    OptionalType,
    SequenceType,
    Shape,
    SparseTensor,
    SparseTensorType,
    Tensor,
    TensorType,
    TrainingInfo,
    Type,
    Value,
)  # fmt: skip
from onyx.ir.attribute import infer_attr_type
from onyx.ir.tensor import typed_field

#: The IR version models are made with (the newest the wire format knows).
IR_VERSION = 14

__all__ = [
    "IR_VERSION", "OperatorSetId", "get_attribute_value", "make_attribute", "make_attribute_ref",
    "make_empty_tensor_value_info", "make_function", "make_graph", "make_map_type_proto",
    "make_model", "make_node", "make_operatorsetid", "make_opsetid", "make_optional_type_proto",
    "make_sequence_type_proto", "make_sparse_tensor", "make_sparse_tensor_type_proto",
    "make_sparse_tensor_value_info", "make_tensor", "make_tensor_sequence_value_info",
    "make_tensor_type_proto", "make_tensor_value_info", "make_value_info",
    "np_dtype_to_tensor_dtype", "set_model_props", "tensor_dtype_to_np_dtype",
]  # fmt: skip


class OperatorSetId(NamedTuple):
    """An opset import: a domain ('' is ai.onnx) and its version."""

    domain: str
    version: int


def make_opsetid(domain: str, version: int) -> OperatorSetId:
    """An opset import entry for ``make_model(opset_imports=[...])``."""
    if not isinstance(version, int | np.integer) or isinstance(version, bool):
        raise TypeError(f"opset version of domain {domain!r} must be an int, got {version!r}")
    return OperatorSetId(domain or "", int(version))


make_operatorsetid = make_opsetid


# --- attributes ----------------------------------------------------------------------------
def make_attribute(key: str, value: Any, doc_string: str | None = None,
                   attr_type: AttrType | int | None = None) -> Attribute:  # fmt: skip
    """An attribute named ``key``; its kind follows the value (or ``attr_type`` when given,
    which an empty list needs)."""
    if isinstance(value, Attribute):
        raise TypeError(f"attribute {key!r}: the value is already an Attribute")
    if isinstance(value, np.ndarray) and attr_type is None:
        value = Tensor(value)
    if isinstance(value, list | tuple):
        value = list(value)
        if not value and attr_type is None:
            raise TypeError(
                f"attribute {key!r}: the kind of an empty list cannot be inferred; "
                "pass attr_type (e.g. AttrType.INTS)"
            )
    kind = AttrType(attr_type) if attr_type is not None else infer_attr_type(value)
    return Attribute(key, kind, _attr_value(key, kind, value), doc_string=doc_string or "")


def make_attribute_ref(name: str, attr_type: AttrType | int, doc_string: str | None = None, *,
                       ref_attr_name: str | None = None) -> Attribute:  # fmt: skip
    """An attribute of a node inside a function body that takes the value of the function's
    attribute ``ref_attr_name`` (default: ``name``) at each call."""
    ref = name if ref_attr_name is None else ref_attr_name
    if not ref:
        raise TypeError(f"attribute {name!r}: ref_attr_name must not be empty")
    return Attribute(
        name, AttrType(attr_type), None, ref_attr_name=ref, doc_string=doc_string or ""
    )


def get_attribute_value(attr: Attribute) -> Any:
    """The Python value of an attribute (a list for the list kinds)."""
    return attr.value


def _scalar(key: str, kind: AttrType, v: Any) -> Any:
    base = {AttrType.FLOATS: AttrType.FLOAT, AttrType.INTS: AttrType.INT,
            AttrType.STRINGS: AttrType.STRING, AttrType.TENSORS: AttrType.TENSOR,
            AttrType.GRAPHS: AttrType.GRAPH, AttrType.SPARSE_TENSORS: AttrType.SPARSE_TENSOR,
            AttrType.TYPE_PROTOS: AttrType.TYPE_PROTO}.get(kind, kind)  # fmt: skip
    try:
        if base == AttrType.FLOAT:
            return float(v)
        if base == AttrType.INT:
            if isinstance(v, float | np.floating) and not float(v).is_integer():
                raise ValueError(f"{v!r} is not an integer")
            return int(v)
        if base == AttrType.STRING:
            if isinstance(v, bytes):
                return v.decode("utf-8", "surrogateescape")
            if not isinstance(v, str):
                raise ValueError(f"{v!r} is not a string")
            return v
        if base == AttrType.TENSOR:
            return Tensor(v) if isinstance(v, np.ndarray) else _expect(v, Tensor)
        if base == AttrType.GRAPH:
            return _expect(v, Graph)
        if base == AttrType.SPARSE_TENSOR:
            return _expect(v, SparseTensor)
        if base == AttrType.TYPE_PROTO:
            return _expect(v, Type)
    except (TypeError, ValueError) as e:
        raise TypeError(f"attribute {key!r} of kind {kind.name}: {e}") from None
    raise TypeError(f"attribute {key!r}: kind {kind.name} holds no value")


def _expect(v: Any, cls: type) -> Any:
    if not isinstance(v, cls):
        raise TypeError(f"expected an onyx {cls.__name__}, got {type(v).__name__}")
    return v


def _attr_value(key: str, kind: AttrType, value: Any) -> Any:
    if kind.name.endswith("S") and kind != AttrType.SPARSE_TENSOR:  # the list kinds
        if not isinstance(value, list):
            raise TypeError(f"attribute {key!r} of kind {kind.name} needs a list")
        return [_scalar(key, kind, v) for v in value]
    return _scalar(key, kind, value)


# --- nodes, graphs, functions, models ------------------------------------------------------
def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None,
              doc_string: str | None = None, domain: str | None = None,
              overload: str | None = None, **kwargs: Any) -> Node:  # fmt: skip
    """A node reading and writing the named values ('' for an omitted optional one); keyword
    arguments become attributes (in name order, as onnx orders them)."""
    for what, names in (("inputs", inputs), ("outputs", outputs)):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(
                f"make_node({op_type!r}): {what} must be a list of names, got {names!r}"
            )
    attrs = [
        make_attribute(key, value) if not isinstance(value, Attribute) else value
        for key, value in sorted(kwargs.items())
        if value is not None
    ]
    return Node(
        op_type,
        [Value(n) if n else None for n in inputs],
        [Value(n) if n else None for n in outputs],
        attrs,
        domain=domain or "",
        name=name or "",
        overload=overload or "",
        doc_string=doc_string or "",
    )


def make_graph(nodes: Sequence[Node], name: str, inputs: Sequence[Value], outputs: Sequence[Value],
               initializer: Sequence[Tensor] | None = None, doc_string: str | None = None,
               value_info: Sequence[Value] | None = None,
               sparse_initializer: Sequence[SparseTensor] | None = None) -> Graph:  # fmt: skip
    """A graph of ``nodes`` with the given input and output value infos and initializers; node
    inputs are linked to the values of their names (see the module's docstring)."""
    g = Graph(name=name, doc_string=doc_string or "")
    g.inputs = list(inputs)
    by_name = {v.name: v for v in g.inputs}
    for t in initializer or ():
        if not isinstance(t, Tensor):
            raise TypeError(f"graph {name!r}: initializers must be onyx Tensors, got {t!r:.60}")
        value = by_name.get(t.name)
        if value is None:
            value = Value(t.name, TensorType(t.dtype, Shape(t.dims)))
        value.const_value = t
        g.add_initializer(value)
    for s in sparse_initializer or ():
        g.add_initializer(Value(s.name, SparseTensorType(s.dtype, Shape(s.dims)), const_value=s))
    for node in nodes:
        g.append(node)
    scope = _scope(g)
    for vi in value_info or ():
        target = scope.get(vi.name)
        if target is not None and target is not vi:
            _adopt(target, vi)
            vi = target
        g.value_info.append(vi)
    for out in outputs:
        target = scope.get(out.name)
        if target is not None and target is not out:
            _adopt(target, out)
            out = target
        g.outputs.append(out)
    _link(g, {})
    return g


def make_function(domain: str, fname: str, inputs: Sequence[str], outputs: Sequence[str],
                  nodes: Sequence[Node], opset_imports: Sequence[OperatorSetId],
                  attributes: Sequence[str] | None = None,
                  attribute_protos: Sequence[Attribute] | None = None,
                  doc_string: str | None = None, overload: str | None = None,
                  value_info: Sequence[Value] | None = None) -> Function:  # fmt: skip
    """A model-local function: a body of ``nodes`` between named inputs and outputs;
    ``attributes`` names the attributes without a default, ``attribute_protos`` those with one."""
    body = Graph(name=fname)
    body.inputs = [Value(n) for n in inputs]
    for node in nodes:
        body.append(node)
    scope = _scope(body)
    for n in outputs:
        body.outputs.append(scope.get(n) or Value(n))
    for vi in value_info or ():
        target = scope.get(vi.name)
        if target is not None and target is not vi:
            _adopt(target, vi)
            vi = target
        body.value_info.append(vi)
    _link(body, {})
    return Function(
        domain, fname, body,
        attributes=list(attributes or []),
        attribute_defaults={a.name: a for a in attribute_protos or ()},
        opset_imports=_opset_dict(opset_imports),
        overload=overload or "",
        doc_string=doc_string or "",
    )  # fmt: skip


_MODEL_FIELDS = frozenset({
    "ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string",
    "metadata_props", "training_info",
})  # fmt: skip


def make_model(graph: Graph, **kwargs: Any) -> Model:
    """A model around ``graph``: ``opset_imports`` (default: ai.onnx at the newest version),
    ``functions``, and any ModelProto field (``producer_name=...``, ``ir_version=...``)."""
    from onyx import defs

    opsets = kwargs.pop("opset_imports", None)
    functions = kwargs.pop("functions", None) or []
    unknown = sorted(set(kwargs) - _MODEL_FIELDS)
    if unknown:
        raise TypeError(f"make_model: unknown field(s) {', '.join(unknown)}; "
                        f"expected some of {', '.join(sorted(_MODEL_FIELDS))}")  # fmt: skip
    model = Model(graph, ir_version=kwargs.pop("ir_version", IR_VERSION))
    model.present.add("ir_version")  # onnx sets it even when 0
    if opsets is None:
        model.opset_imports = {"": (defs.opset_range("") or (1, 28))[1]}
        model.present.add("-opset_domain")  # onnx's default import leaves the domain unset
    else:
        model.opset_imports = _opset_dict(opsets)
    for fn in functions:
        if not isinstance(fn, Function):
            raise TypeError(f"make_model: functions must be onyx Functions, got {fn!r:.60}")
        if fn.id in model.functions:
            raise GraphError(f"make_model: function {fn.domain}::{fn.name} is given twice")
        model.functions[fn.id] = fn
    for key, value in kwargs.items():
        if key == "metadata_props":
            value = dict(value)
        elif key == "training_info":
            value = [_expect(v, TrainingInfo) for v in value]
        setattr(model, key, value)
    return model


def set_model_props(model: Model, dict_value: Mapping[str, str]) -> None:
    """Replace the model's metadata_props with ``dict_value``."""
    model.metadata_props = {str(k): str(v) for k, v in dict_value.items()}


def _opset_dict(entries: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in entries:
        domain, version = entry if isinstance(entry, tuple) else (entry.domain, entry.version)
        out[domain] = int(version)
    return out


def _adopt(target: Value, info: Value) -> None:
    """Give ``target`` the declared type and doc of the value info ``info`` (same name)."""
    if info.type is not None:
        target.type = info.type
    if info.doc_string:
        target.doc_string = info.doc_string
    if info.metadata_props:
        target.metadata_props = dict(info.metadata_props)


def _scope(g: Graph) -> dict[str, Value]:
    scope = {v.name: v for v in g.inputs}
    scope.update(g.initializers)
    scope.update(g.sparse_initializers)
    for node in g.nodes:
        for v in node.outputs:
            if v is None:
                continue
            if v.name in scope and scope[v.name] is not v:
                raise GraphError(f"graph {g.name!r}: value {v.name!r} is defined twice "
                                 f"(again by node {node.name or node.op_type!r})")  # fmt: skip
            scope[v.name] = v
    return scope


def _link(g: Graph, outer: dict[str, Value]) -> None:
    """Point every placeholder input (a value no node, input or initializer defines) at the value
    of its name, looked up in ``g`` and then in the enclosing graphs."""
    scope = {**outer, **_scope(g)}
    defined = set(scope.values())
    for node in g.nodes:
        for i, v in enumerate(node.inputs):
            if v is not None and v not in defined and v.producer is None and v.const_value is None:
                target = scope.get(v.name)
                if target is not None:
                    node.set_input(i, target)
        for sub in node.subgraphs():
            _link(sub, scope)
    g.outputs[:] = [
        scope.get(v.name, v) if v not in defined and v.producer is None else v for v in g.outputs
    ]


# --- types and value infos -----------------------------------------------------------------
def _dtype(elem_type: Any) -> DataType:
    if isinstance(elem_type, np.dtype) or (isinstance(elem_type, type)
                                            and issubclass(elem_type, np.generic)):  # fmt: skip
        return dtypes.from_numpy(elem_type)
    return dtypes.data_type(elem_type)


def _shape(shape: Sequence[Any] | None, denotation: Sequence[str] | None) -> Shape | None:
    if shape is None:
        return None
    dims = []
    for d in shape:
        if d is None or isinstance(d, str):
            dims.append(d)
        elif isinstance(d, int | np.integer) and not isinstance(d, bool):
            dims.append(int(d))
        else:
            raise TypeError(f"a dim must be an int, a name or None, got {d!r}")
    if denotation is not None and len(denotation) != len(dims):
        raise TypeError(f"shape_denotation has {len(denotation)} entries for {len(dims)} dims")
    return Shape(dims, denotation)


def make_tensor_type_proto(elem_type: Any, shape: Sequence[Any] | None,
                           shape_denotation: Sequence[str] | None = None) -> TensorType:  # fmt: skip
    """A tensor type: element type (a DataType code, name or numpy dtype) and shape (dims are
    ints, names or None; ``shape=None``: rank unknown)."""
    return TensorType(_dtype(elem_type), _shape(shape, shape_denotation))


def make_sparse_tensor_type_proto(elem_type: Any, shape: Sequence[Any] | None,
                                  shape_denotation: Sequence[str] | None = None
                                  ) -> SparseTensorType:  # fmt: skip
    """A sparse tensor type (as ``make_tensor_type_proto``)."""
    return SparseTensorType(_dtype(elem_type), _shape(shape, shape_denotation))


def make_sequence_type_proto(inner_type_proto: Type) -> SequenceType:
    """The type of a sequence of ``inner_type_proto``."""
    return SequenceType(_expect(inner_type_proto, Type))


def make_optional_type_proto(inner_type_proto: Type) -> OptionalType:
    """The type of an optional ``inner_type_proto``."""
    return OptionalType(_expect(inner_type_proto, Type))


def make_map_type_proto(key_type: Any, value_type: Type) -> MapType:
    """The type of a map from ``key_type`` (an integer or string element type) to values."""
    return MapType(_dtype(key_type), _expect(value_type, Type))


def make_value_info(name: str, type_proto: Type | None, doc_string: str = "") -> Value:
    """A value info: a name with a type."""
    return Value(name, type_proto, doc_string=doc_string)


def make_tensor_value_info(name: str, elem_type: Any, shape: Sequence[Any] | None,
                           doc_string: str = "",
                           shape_denotation: Sequence[str] | None = None) -> Value:  # fmt: skip
    """A value info of a tensor: ``make_tensor_value_info("x", 1, ["N", 3])``."""
    return Value(name, make_tensor_type_proto(elem_type, shape, shape_denotation),
                 doc_string=doc_string)  # fmt: skip


def make_sparse_tensor_value_info(name: str, elem_type: Any, shape: Sequence[Any] | None,
                                  doc_string: str = "",
                                  shape_denotation: Sequence[str] | None = None) -> Value:  # fmt: skip
    """A value info of a sparse tensor."""
    return Value(name, make_sparse_tensor_type_proto(elem_type, shape, shape_denotation),
                 doc_string=doc_string)  # fmt: skip


def make_tensor_sequence_value_info(name: str, elem_type: Any, shape: Sequence[Any] | None,
                                    doc_string: str = "",
                                    elem_shape_denotation: Sequence[str] | None = None
                                    ) -> Value:  # fmt: skip
    """A value info of a sequence of tensors."""
    inner = make_tensor_type_proto(elem_type, shape, elem_shape_denotation)
    return Value(name, SequenceType(inner), doc_string=doc_string)


def make_empty_tensor_value_info(name: str) -> Value:
    """A value info with a name and no type."""
    return Value(name)


# --- tensors -------------------------------------------------------------------------------
def make_tensor(name: str, data_type: Any, dims: Sequence[int], vals: Any,
                raw: bool = False) -> Tensor:  # fmt: skip
    """A tensor of ``data_type`` and ``dims`` holding ``vals`` (a flat list or array; with
    ``raw``, the bytes of raw_data or an array to take them from). Stored as onnx stores it:
    raw_data with ``raw``, otherwise the type's typed field."""
    t = dtypes.data_type(data_type, where=f"tensor {name!r}")
    if t == DataType.UNDEFINED:
        raise TensorDataError(f"tensor {name!r}: data_type UNDEFINED holds no values")
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise TensorDataError(f"tensor {name!r}: negative dim in {dims}")
    count = math.prod(dims)
    if raw:
        if t == DataType.STRING:
            raise TensorDataError(f"tensor {name!r}: string tensors cannot use raw_data")
        if isinstance(vals, np.ndarray):
            data = dtypes.pack(vals.astype(dtypes.to_numpy(t), copy=False), t)
        elif isinstance(vals, bytes | bytearray | memoryview):
            data = bytes(vals)
        else:
            raise TypeError(f"tensor {name!r}: raw data must be bytes or an array, "
                            f"got {type(vals).__name__}")  # fmt: skip
        if len(data) != dtypes.packed_size(t, count):
            raise TensorDataError(
                f"tensor {name!r}: raw data holds {len(data)} bytes, but {count} elements of "
                f"{t.short_name} need {dtypes.packed_size(t, count)}"
            )
        tensor = Tensor.stored(name, int(t), dims, raw=data)
    else:
        array = _values(name, t, vals)
        if array.size != count:
            raise TensorDataError(
                f"tensor {name!r}: {array.size} values given, but dims {dims} need {count}"
            )
        tensor = Tensor.stored(name, int(t), dims, field=(typed_field(t), _field_values(array, t)))
    tensor.present.update({"name", "data_type"} if name else {"data_type"})
    tensor.numpy()  # decode now: a mistake shows here, not when the model is run
    return tensor


def _values(name: str, t: DataType, vals: Any) -> np.ndarray:
    if t == DataType.STRING:
        flat = np.asarray(vals, dtype=object).reshape(-1)
        return np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat] or [],
                        dtype=object)  # fmt: skip
    np_type = dtypes.to_numpy(t)
    array = np.asarray(vals)
    if t.name.startswith("FLOAT8") and t != DataType.FLOAT8E8M0 and array.dtype != np_type:
        top = float(np.finfo(np_type).max)  # onnx casts to float8 saturating
        array = np.clip(array.astype(np.float64), -top, top)
    try:
        return array.astype(np_type).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TensorDataError(f"tensor {name!r}: values are not {t.short_name}: {e}") from None


def _field_values(array: np.ndarray, t: DataType) -> Any:
    """The values of the typed field that holds ``array`` (onnx's encoding of each type)."""
    if t == DataType.STRING:
        return list(array)
    if t in (DataType.COMPLEX64, DataType.COMPLEX128):
        return array.view(np.float32 if t == DataType.COMPLEX64 else np.float64)
    if t in dtypes.SUB_BYTE:
        if t.bits == 6:
            return array.view(np.uint8).astype(np.int32)
        return np.frombuffer(dtypes.pack(array, t), np.uint8).astype(np.int32)
    if t in (DataType.FLOAT16, DataType.BFLOAT16):
        return array.view(np.uint16).astype(np.int32)
    if t.name.startswith("FLOAT8"):
        return array.view(np.uint8).astype(np.int32)
    if t == DataType.BOOL:
        return array.astype(np.int32)
    return array


def make_sparse_tensor(values: Tensor, indices: Tensor, dims: Sequence[int]) -> SparseTensor:
    """A sparse tensor in COO form: 1-D ``values`` at ``indices`` ([NNZ] or [NNZ, rank])."""
    return SparseTensor(_expect(values, Tensor), _expect(indices, Tensor), [int(d) for d in dims])


def tensor_dtype_to_np_dtype(tensor_dtype: int) -> np.dtype:
    """The numpy dtype holding elements of a DataType code."""
    return dtypes.to_numpy(tensor_dtype)


def np_dtype_to_tensor_dtype(np_dtype: Any) -> DataType:
    """The DataType of a numpy dtype."""
    return dtypes.from_numpy(np_dtype)
