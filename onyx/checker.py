"""Validation of models against the rules of the standard, with errors that name the place.

    onyx.check(model)                 # raises onyx.ValidationError on the first defect
    onyx.check(model, collect=True)   # raises one ValidationError listing every defect (.errors)
    onyx.check(model, full=True)      # also strict shape inference: every shape error it proves

One pass over the IR: the IR version against the features used, opset imports, every node
against its schema (arity, attributes, type constraints), single assignment and topological
order, graph inputs / outputs / initializers, subgraph scoping, attribute references, model-local
functions, sparse tensors and external data files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from onyx import defs
from onyx.dtypes import DataType, packed_size
from onyx.errors import OnyxError, ValidationError
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
    SparseTensor,
    SparseTensorType,
    Tensor,
    TensorType,
    Type,
    Value,
)
from onyx.ir.tensor import typed_field

#: The newest IR version this checker knows.
IR_VERSION = 14
_INFINITE = 2147483647

# The IR version that introduced each element type (types not listed exist since IR 1).
_DTYPE_IR = {
    DataType.BFLOAT16: 4,
    DataType.FLOAT8E4M3FN: 9,
    DataType.FLOAT8E4M3FNUZ: 9,
    DataType.FLOAT8E5M2: 9,
    DataType.FLOAT8E5M2FNUZ: 9,
    DataType.UINT4: 10,
    DataType.INT4: 10,
    DataType.FLOAT4E2M1: 11,
    DataType.FLOAT8E8M0: 12,
    DataType.UINT2: 13,
    DataType.INT2: 13,
    DataType.FLOAT6E2M3: 14,
    DataType.FLOAT6E3M2: 14,
}

# Domains whose operators must all be known (a node of another domain may be a custom op).
_STANDARD_DOMAINS = frozenset(defs.DOMAINS) | {"ai.onnx.training"}

# Python types an attribute value of each kind may have.
_SCALAR_KINDS = {
    AttrType.FLOAT: (float, int, np.floating, np.integer),
    AttrType.INT: (int, np.integer, bool),
    AttrType.STRING: (str, bytes),
    AttrType.TENSOR: (Tensor, np.ndarray),
    AttrType.GRAPH: (Graph,),
    AttrType.SPARSE_TENSOR: (SparseTensor,),
    AttrType.TYPE_PROTO: (Type,),
}
_LIST_KINDS = {
    AttrType.FLOATS: AttrType.FLOAT,
    AttrType.INTS: AttrType.INT,
    AttrType.STRINGS: AttrType.STRING,
    AttrType.TENSORS: AttrType.TENSOR,
    AttrType.GRAPHS: AttrType.GRAPH,
    AttrType.SPARSE_TENSORS: AttrType.SPARSE_TENSOR,
    AttrType.TYPE_PROTOS: AttrType.TYPE_PROTO,
}


def check(model: Model, full: bool = False, collect: bool = False) -> list[str]:
    """Validate ``model``; raise ValidationError naming the place of the (first, or every) defect.

    With ``collect``, every defect is gathered and one ValidationError carries them all in
    ``.errors`` (a list of messages). With ``full``, strict shape inference also runs on a
    model that passed the structural checks, and every contradiction it proves (operands that do
    not multiply or broadcast, attributes out of range, subgraphs that do not fit their operator,
    declared types the inferred ones contradict) is a defect naming the node. Returns notes:
    things not checked, and why.
    """
    from onyx.serde import as_model

    checker = _Checker(as_model(model), collect)
    try:
        checker.run()
        if full:
            checker.shapes()
    except _Stop:
        pass
    if checker.errors:
        errors = checker.errors
        if len(errors) == 1:
            err = ValidationError(errors[0])
        else:
            err = ValidationError(f"{len(errors)} defects:\n" + "\n".join(f"- {e}" for e in errors))
        err.errors = list(errors)
        raise err
    return checker.notes


class _Stop(Exception):
    """Raised internally to end the walk at the first defect (when not collecting)."""


def _norm(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _domain_label(domain: str) -> str:
    return domain or "ai.onnx"


def type_string(t: Type | None) -> str | None:
    """The standard's type string of ``t`` ('tensor(float)', 'seq(tensor(int64))', ...), or None
    when the type is incomplete (an unknown element type)."""
    if isinstance(t, TensorType | SparseTensorType):
        if t.dtype == DataType.UNDEFINED:
            return None
        kind = "tensor" if isinstance(t, TensorType) else "sparse_tensor"
        return f"{kind}({t.dtype.short_name})"
    if isinstance(t, SequenceType | OptionalType):
        inner = type_string(t.elem_type)
        if inner is None:
            return None
        return f"{'seq' if isinstance(t, SequenceType) else 'optional'}({inner})"
    if isinstance(t, MapType):
        v = t.value_type
        if isinstance(v, TensorType) and v.dtype != DataType.UNDEFINED:
            inner = v.dtype.short_name  # the standard writes map(string,float)
        else:
            inner = type_string(v)
        return None if inner is None else f"map({t.key_type.short_name},{inner})"
    return None


def _dtypes_of(t: Type | None) -> Iterable[DataType]:
    if isinstance(t, TensorType | SparseTensorType):
        yield t.dtype
    elif isinstance(t, SequenceType | OptionalType):
        yield from _dtypes_of(t.elem_type)
    elif isinstance(t, MapType):
        yield t.key_type
        yield from _dtypes_of(t.value_type)


class _Scope:
    """Values visible in a graph under check: by object and by name, chained to the outer graph."""

    __slots__ = ("names", "outer", "path", "values")

    def __init__(self, outer: _Scope | None, path: str):
        self.outer, self.path = outer, path
        self.values: set[Value] = set()
        self.names: dict[str, Value] = {}

    def visible(self, value: Value) -> bool:
        scope = self
        while scope is not None:
            if value in scope.values:
                return True
            scope = scope.outer
        return False

    def find_name(self, name: str) -> tuple[Value, _Scope] | None:
        scope = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name], scope
            scope = scope.outer
        return None


class _Context:
    """Where a graph sits: the opsets its nodes use, and the function it belongs to (if any)."""

    __slots__ = ("function", "main", "opsets")

    def __init__(self, opsets: dict[str, int], function: Function | None, main: bool):
        self.opsets, self.function, self.main = opsets, function, main


class _Checker:
    def __init__(self, model: Model, collect: bool):
        self.model, self.collect = model, collect
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.ir = model.ir_version
        self.schema_cache: dict[tuple[str, str, int], defs.Schema | None] = {}
        self.dtypes_seen: dict[DataType, str] = {}
        self.model_opsets: dict[str, int] = {}
        self.no_imports = False

    # --- reporting -------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        self.errors.append(message)
        if not self.collect:
            raise _Stop

    def need_ir(self, version: int, feature: str) -> None:
        if 1 <= self.ir < version:
            self.fail(
                f"model: {feature} needs IR version >= {version}, but the model declares "
                f"ir_version {self.ir}"
            )

    # --- model -----------------------------------------------------------------------------
    def run(self) -> None:
        m = self.model
        if not isinstance(m.ir_version, int) or m.ir_version < 1:
            self.fail(f"model: ir_version must be set to 1..{IR_VERSION}, got {m.ir_version!r}")
        elif m.ir_version > IR_VERSION:
            self.fail(
                f"model: ir_version {m.ir_version} is newer than the newest this checker "
                f"knows ({IR_VERSION})"
            )
        opsets = self.model_opsets = self.opsets(m.opset_imports, "model")
        if not m.opset_imports:
            if self.ir < 3:  # before opset imports existed, models meant ai.onnx version 1
                opsets = self.model_opsets = {"": 1}
            else:
                self.no_imports = True
                self.fail(
                    "model: opset_import is empty; a model of IR version >= 3 must import the "
                    "opsets it uses (e.g. ai.onnx)"
                )
        if m.functions:
            self.need_ir(8, "model-local functions")
        if m.training_info:
            self.need_ir(7, "training_info")
        if m.configuration or any(n.device_configurations for n in m.graph.all_nodes()):
            self.need_ir(11, "device configurations")
        main = _Context(opsets, None, True)
        scope = self.graph(m.graph, None, m.graph.path(), main)
        for fn_key, fn in m.functions.items():
            self.function(fn_key, fn, opsets)
        for i, info in enumerate(m.training_info):
            for kind in ("initialization", "algorithm"):
                g = getattr(info, kind)
                if g is not None:
                    self.graph(g, scope, f"training_info[{i}].{kind}", main, free=True)
        for dtype, where in self.dtypes_seen.items():
            need = _DTYPE_IR.get(dtype, 1)
            if 1 <= self.ir < need:
                self.fail(
                    f"{where}: element type {dtype.short_name} needs IR version >= {need}, "
                    f"but the model declares ir_version {self.ir}"
                )

    def opsets(self, imports: dict[str, int], owner: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for domain, version in imports.items():
            d = _norm(domain)
            if d in out and out[d] != version:
                self.fail(
                    f"{owner}: opset_import names ai.onnx twice, with versions {out[d]} "
                    f"and {version}"
                )
            out[d] = version
            if not isinstance(version, int) or version < 1:
                self.fail(
                    f"{owner}: opset_import of domain {_domain_label(d)!r} has version "
                    f"{version!r}; expected a positive version"
                )
                continue
            known = defs.opset_range(d)
            if known is not None and not known[0] <= version <= known[1]:
                self.fail(
                    f"{owner}: opset_import of domain {_domain_label(d)!r} has version "
                    f"{version}; the standard defines versions {known[0]}..{known[1]}"
                )
        return out

    def schema(self, domain: str, op_type: str, version: int) -> defs.Schema | None:
        key = (domain, op_type, version)
        if key not in self.schema_cache:
            self.schema_cache[key] = defs.find_schema(op_type, version, domain)
        return self.schema_cache[key]

    # --- values and types ------------------------------------------------------------------
    def note_type(self, t: Type | None, where: str) -> None:
        for dtype in _dtypes_of(t):
            self.dtypes_seen.setdefault(dtype, where)
        if isinstance(t, OptionalType | SparseTensorType):
            self.need_ir(8, f"{where}: type {t}")
        if isinstance(t, SequenceType | OptionalType):
            self.note_type(t.elem_type, where)

    def declared_type(self, value: Value, what: str, where: str, required: bool) -> None:
        t = value.type
        if t is None:
            if required:
                self.fail(
                    f"{where}: {what} {value.name!r} has no type; the main graph must "
                    f"declare the type of its inputs and outputs"
                )
            return
        self.note_type(t, f"{where}: {what} {value.name!r}")
        if required and isinstance(t, TensorType | SparseTensorType) and not t.dtype:
            self.fail(
                f"{where}: {what} {value.name!r} has tensor type with no element type "
                f"(UNDEFINED); expected one of the standard's element types"
            )
        if isinstance(t, TensorType | SparseTensorType) and t.shape is not None:
            # exporters write -1 for "unknown": legal to read (as an unknown dim), worth a warning
            for i, d in t.shape.written.items():
                if isinstance(d, int):
                    warnings.warn(
                        f"{where}: {what} {value.name!r} declares dim {i} as {d}; a negative "
                        f"dim is read as unknown (shape {t.shape})",
                        stacklevel=2,
                    )

    # --- tensors ---------------------------------------------------------------------------
    def tensor(self, t: Tensor, where: str) -> None:
        label = f"{where}: tensor {t.name!r}"
        if t.dtype == DataType.UNDEFINED:
            self.fail(f"{label} has element type UNDEFINED; expected one of the standard's types")
            return
        self.dtypes_seen.setdefault(t.dtype, label)
        if any(not isinstance(d, int | np.integer) or d < 0 for d in t.dims):
            self.fail(f"{label} has invalid dims {list(t.dims)}; expected non-negative integers")
            return
        count = t.size
        if t.external is not None:
            self.external(t, label)
        elif t.is_loaded:
            arr = t.numpy()
            if arr.size != count:
                self.fail(
                    f"{label} holds {arr.size} elements, but dims {list(t.dims)} need {count}"
                )
        elif t.raw is not None:
            if t.dtype == DataType.STRING:
                self.fail(f"{label}: string tensors cannot use raw_data")
            elif len(t.raw) != packed_size(t.dtype, count):
                self.fail(
                    f"{label}: raw_data holds {len(t.raw)} bytes, but {count} elements of "
                    f"{t.dtype.short_name} need {packed_size(t.dtype, count)}"
                )
        elif t.field is not None:
            field, values = t.field
            expected_field = typed_field(t.dtype)
            if field != expected_field:
                self.fail(
                    f"{label}: {t.dtype.short_name} data must be in {expected_field}, not {field}"
                )
                return
            n = len(values)
            if t.dtype in (DataType.COMPLEX64, DataType.COMPLEX128):
                need = 2 * count
            elif t.dtype.bits in (2, 4):
                need = packed_size(t.dtype, count)
            else:
                need = count
            if n != need:
                self.fail(f"{label}: {field} holds {n} values, but dims {list(t.dims)} need {need}")
        elif count:
            self.fail(f"{label} has dims {list(t.dims)} but carries no data")

    def external(self, t: Tensor, label: str) -> None:
        ext = t.external
        if t.dtype == DataType.STRING:
            self.fail(f"{label}: string tensors cannot be stored as external data")
            return
        path = os.path.join(ext.base_dir, ext.location)
        if os.path.isabs(ext.location) or ".." in ext.location.replace("\\", "/").split("/"):
            self.fail(
                f"{label}: external data path {ext.location!r} must be relative and stay "
                f"inside the model's folder"
            )
            return
        if not os.path.isfile(path):
            self.fail(
                f"{label}: external data file {ext.location!r} not found in "
                f"{ext.base_dir or os.getcwd()!r}"
            )
            return
        size = os.path.getsize(path)
        need = packed_size(t.dtype, t.size)
        length = need if ext.length is None else ext.length
        if ext.offset < 0 or ext.offset + length > size:
            self.fail(
                f"{label}: external data {ext.location!r} holds {size} bytes, but offset "
                f"{ext.offset} + length {length} reaches past its end"
            )
        elif ext.length is not None and ext.length != need:
            self.fail(
                f"{label}: external data length {ext.length} does not match the {need} "
                f"bytes that dims {list(t.dims)} of {t.dtype.short_name} need"
            )

    def sparse(self, s: SparseTensor, where: str) -> None:
        self.need_ir(6, f"{where}: sparse tensor {s.name!r}")
        label = f"{where}: sparse tensor {s.name!r}"
        before = len(self.errors)
        self.tensor(s.values, where)
        self.tensor(s.indices, where)
        if len(self.errors) > before:
            return
        if any(d < 0 for d in s.dims):
            self.fail(f"{label} has invalid dims {list(s.dims)}")
            return
        if len(s.values.dims) != 1:
            self.fail(f"{label}: values must be 1-D, got dims {list(s.values.dims)}")
            return
        nnz = s.values.dims[0]
        if s.indices.dtype != DataType.INT64:
            self.fail(f"{label}: indices must be int64, got {s.indices.dtype.short_name}")
            return
        idims = tuple(s.indices.dims)
        rank = len(s.dims)
        if idims not in ((nnz,), (nnz, rank)):
            self.fail(
                f"{label}: indices have dims {list(idims)}; expected [{nnz}] (linear) or "
                f"[{nnz}, {rank}] for {nnz} values of a rank-{rank} tensor"
            )
            return
        try:
            idx = s.indices.numpy().astype(np.int64)
        except OnyxError as e:
            self.fail(f"{label}: {e}")
            return
        if idx.ndim == 2:
            bad = (idx < 0) | (idx >= np.asarray(s.dims, np.int64))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                self.fail(f"{label}: index {idx[row].tolist()} lies outside dims {list(s.dims)}")
                return
            linear = np.ravel_multi_index(tuple(idx.T), s.dims) if nnz else idx[:, 0]
        else:
            linear = idx
            size = int(np.prod(s.dims, dtype=np.int64))
            bad = (linear < 0) | (linear >= size)
            if bad.any():
                self.fail(
                    f"{label}: linear index {int(linear[bad][0])} lies outside the "
                    f"{size} elements of dims {list(s.dims)}"
                )
                return
        if len(linear) > 1 and not (np.diff(linear) > 0).all():
            self.fail(f"{label}: indices must be in strictly increasing (row-major) order")

    # --- graphs ----------------------------------------------------------------------------
    def graph(
        self, g: Graph, outer: _Scope | None, path: str, ctx: _Context, free: bool = False
    ) -> _Scope:
        where = f"graph {path!r}"
        scope = _Scope(outer, path)
        top = outer is None and ctx.function is None
        is_main = top and g is self.model.graph

        def define(value: Value, what: str, place: str = where) -> None:
            if value in scope.values:
                self.fail(f"{place}: {what} {value.name!r} is defined twice (single assignment)")
                return
            scope.values.add(value)
            if value.name:
                hit = scope.find_name(value.name)
                if hit is not None and hit[0] is not value:
                    extra = "" if hit[1] is scope else f" (also in enclosing graph {hit[1].path!r})"
                    self.fail(
                        f"{place}: {what} {value.name!r} is defined twice (single "
                        f"assignment){extra}"
                    )
                    return
                scope.names[value.name] = value

        if g.quantization_annotation:
            self.need_ir(5, f"{where}: quantization_annotation")
        for value in g.inputs:
            if not value.name and is_main:
                self.fail(f"{where}: a graph input has no name")
            if value.producer is not None:
                self.fail(
                    f"{where}: graph input {value.name!r} is also the output of "
                    f"{self.label(value.producer)}"
                )
                continue
            define(value, "graph input")
            self.declared_type(value, "graph input", where, required=is_main)
        inputs = set(g.inputs)
        for name, value in g.initializers.items():
            if value.name != name:
                self.fail(f"{where}: initializer stored under {name!r} is named {value.name!r}")
            if value.const_value is None or not isinstance(value.const_value, Tensor):
                self.fail(f"{where}: initializer {name!r} holds no tensor")
                continue
            if value not in inputs:
                if self.ir <= 3:
                    self.fail(
                        f"{where}: initializer {name!r} is not a graph input; IR version "
                        f"<= 3 requires every initializer to be a graph input"
                    )
                define(value, "initializer")
            elif (
                isinstance(value.type, TensorType)
                and value.type.dtype
                and value.const_value.dtype
                and value.type.dtype != value.const_value.dtype
            ):
                self.fail(
                    f"{where}: graph input {name!r} is declared "
                    f"{value.type.dtype.short_name} but its initializer holds "
                    f"{value.const_value.dtype.short_name}"
                )
            self.tensor(value.const_value, where)
        for name, value in g.sparse_initializers.items():
            if name in g.initializers:
                self.fail(f"{where}: initializer {name!r} is defined twice (dense and sparse)")
                continue
            if value not in inputs:
                define(value, "sparse initializer")
            if isinstance(value.const_value, SparseTensor):
                self.sparse(value.const_value, where)
        for v in g.value_info:
            self.note_type(v.type, f"{where}: value_info {v.name!r}")

        position = {node: i for i, node in enumerate(g.nodes)}
        order_failed = False
        for i, node in enumerate(g.nodes):
            label = self.label(node, i, path)
            if node.graph is not None and node.graph is not g:
                self.fail(f"{label}: belongs to another graph ({node.graph.path()!r})")
            for j, value in enumerate(node.inputs):
                if value is None or scope.visible(value):
                    continue
                if free and value.producer is None:
                    continue
                producer = value.producer
                if producer is not None and producer.graph is g and position.get(producer, -1) >= i:
                    if not order_failed:
                        order_failed = True
                        self.fail(
                            f"{label}: input {j} {value.name!r} is used before it is "
                            f"defined: {self.order_problem(g)}"
                        )
                elif producer is not None or value.const_value is not None:
                    self.fail(
                        f"{label}: input {j} {value.name!r} is defined in another graph "
                        f"that is not visible here (outer-scope values must come from an "
                        f"enclosing graph, defined before this node)"
                    )
                else:
                    self.fail(
                        f"{label}: input {j} {value.name!r} is not defined (expected a "
                        f"graph input, an initializer or an earlier node's output)"
                    )
            self.node(node, label, scope, path, ctx)
            for value in node.outputs:
                if value is None:
                    continue
                if value.producer is not node:
                    self.fail(f"{label}: output {value.name!r} names another producer")
                define(value, "output", label)
        for value in g.outputs:
            if not scope.visible(value) and not (free and value.producer is None):
                self.fail(
                    f"{where}: graph output {value.name!r} is not defined in this graph "
                    f"or an enclosing one"
                )
            if is_main and not value.name:
                self.fail(f"{where}: a graph output has no name")
            self.declared_type(value, "graph output", where, required=is_main)
        return scope

    def order_problem(self, g: Graph) -> str:
        saved = list(g.nodes)
        try:
            g.sort()
        except OnyxError:
            return "the nodes form a cycle"
        finally:
            g.nodes[:] = saved
        return "the nodes are not in topological order"

    @staticmethod
    def label(node: Node, index: int | None = None, path: str | None = None) -> str:
        name = node.name or (f"#{index}" if index is not None else "")
        op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        if path is None:
            path = node.graph.path() if node.graph is not None else "?"
        return f"node {name!r} ({op}) in graph {path!r}"

    # --- nodes -----------------------------------------------------------------------------
    def node(self, node: Node, label: str, scope: _Scope, path: str, ctx: _Context) -> None:
        if not node.op_type:
            self.fail(f"{label}: op_type is empty")
            return
        if node.overload:
            self.need_ir(10, f"{label}: overload")
        if node.metadata_props:
            self.need_ir(10, f"{label}: metadata_props")
        domain = _norm(node.domain)
        version = ctx.opsets.get(domain)
        fn = self.model.functions.get((node.domain, node.op_type, node.overload))
        if version is None and ctx.function is None and self.no_imports:
            schema = None  # reported once, for the model
        elif version is None and fn is not None and ctx.function is None:
            schema = None  # reported once, for the function (its domain is not imported)
        elif version is None:
            owner = f" of function {ctx.function.name}" if ctx.function else ""
            self.fail(
                f"{label}: domain {_domain_label(domain)!r} is not in the opset imports"
                f"{owner}; expected an opset_import entry for it"
            )
            schema = None
        elif fn is not None:
            schema = None
            self.call(node, fn, label)
        else:
            schema = self.schema(domain, node.op_type, version)
            if schema is None and (domain in _STANDARD_DOMAINS):
                known = defs.versions(node.op_type, domain)
                if known:
                    self.fail(
                        f"{label}: operator {node.op_type} does not exist in opset {version} "
                        f"of {_domain_label(domain)}; it was introduced in opset {known[0]}"
                    )
                else:
                    self.fail(
                        f"{label}: no operator {node.op_type} in domain "
                        f"{_domain_label(domain)} (opset {version})"
                    )
            elif schema is None and (known := defs.versions(node.op_type, domain)):
                # a custom operator registered only from a later version: nothing could run it
                self.fail(
                    f"{label}: operator {node.op_type} of {domain} is registered only from "
                    f"version {known[0]} on (versions {', '.join(map(str, sorted(known)))}), but the "
                    f"model imports {domain} at version {version}; import a version at least "
                    f"{known[0]} or register the operator with since_version <= {version}"
                )
            if ctx.function is not None and schema is not None:
                self.function_opset_compat(node, label, domain, version, schema)
        if schema is not None:
            if schema.deprecated:
                self.fail(
                    f"{label}: operator {node.op_type} is deprecated in opset {version} "
                    f"(since version {schema.since_version})"
                )
            self.arity(node, label, schema)
            self.types(node, label, schema)
        self.attributes(node, label, scope, path, ctx, schema)

    def function_opset_compat(
        self, node: Node, label: str, domain: str, version: int, schema: defs.Schema
    ) -> None:
        model_version = self.model_opsets.get(domain)
        if model_version is None or model_version == version:
            return
        other = self.schema(domain, node.op_type, model_version)
        if other is not None and other.since_version != schema.since_version:
            self.fail(
                f"{label}: the function imports {_domain_label(domain)} opset {version}, "
                f"where {node.op_type} is version {schema.since_version}, but the model "
                f"imports opset {model_version}, where it is version {other.since_version}"
            )

    def arity(self, node: Node, label: str, schema: defs.Schema) -> None:
        for kind, actual, formals, lo, hi in (
            ("input", node._inputs, schema.inputs, schema.min_input, schema.max_input),
            ("output", node._outputs, schema.outputs, schema.min_output, schema.max_output),
        ):
            n = len(actual)
            if lo <= n <= hi and None not in actual:
                continue  # the common case: every slot filled, count in range
            while n and actual[n - 1] is None:  # trailing omitted optionals carry no meaning
                n -= 1
            if not lo <= len(actual) <= hi and not lo <= n <= hi:
                bound = f"{lo}" if lo == hi else f"{lo}..{'' if hi >= _INFINITE else hi}"
                self.fail(f"{label}: has {len(actual)} {kind}s, but {schema!r} takes {bound}")
                continue
            for i, value in enumerate(actual[:n]):
                if not formals:
                    break
                formal = formals[min(i, len(formals) - 1)]
                if i >= len(formals) and not formal.is_variadic:
                    break
                if value is None and formal.option == "single":
                    self.fail(f"{label}: {kind} {i} ({formal.name!r}) is required but missing")

    def types(self, node: Node, label: str, schema: defs.Schema) -> None:
        bound: dict[str, tuple[str, str]] = {}
        for kind, actual, formals in (
            ("input", node.inputs, schema.inputs),
            ("output", node.outputs, schema.outputs),
        ):
            if not formals:
                continue
            for i, value in enumerate(actual):
                if value is None or value.type is None:
                    continue
                formal = formals[min(i, len(formals) - 1)]
                ts = type_string(value.type)
                if ts is None:
                    continue
                allowed = _allowed(schema, formal.type_str)
                what = f"{kind} {i} ({formal.name!r}, value {value.name!r})"
                if ts not in allowed:
                    shown = ", ".join(sorted(allowed)[:8]) + (", ..." if len(allowed) > 8 else "")
                    self.fail(
                        f"{label}: {what} has type {ts}, but {formal.type_str} of "
                        f"{schema!r} allows only {shown}"
                    )
                    return  # one type defect per node: the rest usually follow from it
                if formal.type_str in schema.type_constraints and formal.is_homogeneous:
                    if formal.type_str in bound and bound[formal.type_str][0] != ts:
                        first_ts, first_what = bound[formal.type_str]
                        self.fail(
                            f"{label}: type parameter {formal.type_str} is bound to "
                            f"{first_ts} by {first_what} but to {ts} by {what}; expected "
                            f"one type"
                        )
                        return
                    else:
                        bound.setdefault(formal.type_str, (ts, what))

    def attributes(
        self,
        node: Node,
        label: str,
        scope: _Scope,
        path: str,
        ctx: _Context,
        schema: defs.Schema | None,
    ) -> None:
        for key, attr in node.attributes.items():
            where = f"{label}: attribute {attr.name!r}"
            if key != attr.name or not attr.name:
                self.fail(
                    f"{where}: stored under the name {key!r}; expected a matching, non-empty name"
                )
            expected = None
            if schema is not None:
                spec = schema.attributes.get(attr.name)
                if spec is None and not attr.name.startswith("__"):
                    self.fail(
                        f"{where}: {schema!r} has no such attribute (it takes "
                        f"{', '.join(sorted(schema.attributes)) or 'none'})"
                    )
                    continue
                expected = spec.type if spec is not None else None
            if attr.type == AttrType.UNDEFINED:
                self.fail(f"{where}: attribute type is UNDEFINED")
                continue
            if expected is not None and attr.type != expected:
                self.fail(
                    f"{where}: has type {attr.type.name}, but {schema!r} expects {expected.name}"
                )
                continue
            if attr.is_ref:
                self.reference(attr, where, ctx)
                continue
            self.attribute_value(attr, where, scope, path, node, ctx)
        if schema is not None:
            for name, spec in schema.attributes.items():
                if spec.required and name not in node.attributes:
                    self.fail(
                        f"{label}: required attribute {name!r} ({spec.type.name}) of "
                        f"{schema!r} is missing"
                    )

    def reference(self, attr: Attribute, where: str, ctx: _Context) -> None:
        fn = ctx.function
        if fn is None:
            self.fail(
                f"{where}: refers to attribute {attr.ref_attr_name!r} of an enclosing "
                f"function (ref_attr_name), but it is not inside a function body"
            )
        elif (
            attr.ref_attr_name not in fn.attributes
            and attr.ref_attr_name not in fn.attribute_defaults
        ):
            self.fail(
                f"{where}: refers to attribute {attr.ref_attr_name!r}, which function "
                f"{fn.domain}::{fn.name} does not declare"
            )

    def attribute_value(
        self, attr: Attribute, where: str, scope: _Scope, path: str, node: Node, ctx: _Context
    ) -> None:
        kind, value = attr.type, attr.value
        if kind in _LIST_KINDS:
            items = value if value is not None else []
            if not isinstance(items, list | tuple):
                self.fail(
                    f"{where}: a {kind.name} attribute must hold a list, got {type(value).__name__}"
                )
                return
            elem = _LIST_KINDS[kind]
        else:
            if value is None:
                self.fail(f"{where}: a {kind.name} attribute carries no value")
                return
            items, elem = [value], kind
        ok = _SCALAR_KINDS[elem]
        for k, item in enumerate(items):
            if not isinstance(item, ok) or (elem != AttrType.INT and isinstance(item, bool)):
                self.fail(
                    f"{where}: a {kind.name} attribute holds a {type(item).__name__}; "
                    f"expected {elem.name.lower()} values"
                )
                return
            if elem == AttrType.TENSOR and isinstance(item, Tensor):
                self.tensor(item, where)
            elif elem == AttrType.SPARSE_TENSOR:
                self.sparse(item, where)
            elif elem == AttrType.TYPE_PROTO:
                self.note_type(item, where)
            elif elem == AttrType.GRAPH:
                suffix = f"[{k}]" if kind == AttrType.GRAPHS else ""
                sub_path = f"{path}/{node.name or node.op_type}.{attr.name}{suffix}"
                if item.parent is not node:
                    self.fail(f"{where}: the subgraph's parent is not this node")
                self.graph(item, scope, sub_path, ctx)

    # --- functions -------------------------------------------------------------------------
    def call(self, node: Node, fn: Function, label: str) -> None:
        n_in, n_out = len(fn.graph.inputs), len(fn.graph.outputs)
        if len(node.inputs) > n_in:
            self.fail(
                f"{label}: has {len(node.inputs)} inputs, but function "
                f"{fn.domain}::{fn.name} takes at most {n_in}"
            )
        if len(node.outputs) > n_out:
            self.fail(
                f"{label}: has {len(node.outputs)} outputs, but function "
                f"{fn.domain}::{fn.name} returns {n_out}"
            )
        known = set(fn.attributes) | set(fn.attribute_defaults)
        for name in node.attributes:
            if name not in known:
                self.fail(
                    f"{label}: attribute {name!r} is not declared by function "
                    f"{fn.domain}::{fn.name} (it declares {', '.join(sorted(known)) or 'none'})"
                )

    def function(self, key: Any, fn: Function, model_opsets: dict[str, int]) -> None:
        where = f"function {fn.domain}::{fn.name}"
        if key != fn.id:
            self.fail(f"{where}: stored under {key!r} but its id is {fn.id!r}")
        if not fn.name:
            self.fail(f"{where}: a model-local function needs a name")
        if fn.overload:
            self.need_ir(10, f"{where}: overload")
        if fn.attribute_defaults:
            self.need_ir(9, f"{where}: attribute defaults (attribute_proto)")
        dupes = {a for a in fn.attributes if fn.attributes.count(a) > 1}
        dupes |= set(fn.attributes) & set(fn.attribute_defaults)
        if dupes:
            self.fail(f"{where}: attribute {min(dupes)!r} is declared twice")
        if _norm(fn.domain) not in model_opsets:
            self.fail(f"{where}: its domain {fn.domain!r} is not in the model's opset imports")
        opsets = self.opsets(fn.opset_imports, where)
        names = [v.name for v in fn.graph.inputs] + [v.name for v in fn.graph.outputs]
        for v in fn.graph.inputs:
            if names.count(v.name) > 1 and v.name:
                self.fail(f"{where}: input name {v.name!r} is used twice")
                break
        if len(set(map(id, fn.graph.outputs))) != len(fn.graph.outputs):
            self.fail(f"{where}: an output is listed twice")
        ctx = _Context(opsets, fn, False)
        self.graph(fn.graph, None, where, ctx)

    # --- full check ------------------------------------------------------------------------
    def shapes(self) -> None:
        try:
            from onyx import shapes
        except ImportError:
            self.notes.append("shape inference skipped: onyx.shapes is not available yet")
            return
        if self.errors:
            self.notes.append("shape inference skipped: the model has structural defects")
            return
        try:
            shapes.infer_shapes(self.model, strict=True)
        except ValidationError as e:
            for message in getattr(e, "errors", None) or [str(e)]:
                self.fail(message)
        except OnyxError as e:
            self.fail(f"shape inference: {e}")


def _allowed(schema: defs.Schema, type_str: str) -> frozenset[str]:
    key = (id(schema), type_str)
    hit = _ALLOWED.get(key)
    if hit is None:
        hit = _ALLOWED[key] = frozenset(t.replace(" ", "") for t in schema.allowed_types(type_str))
    return hit


_ALLOWED: dict[tuple[int, str], frozenset[str]] = {}


# --- the command line ----------------------------------------------------------------------
