"""Shape and type inference: element types and (symbolic) shapes for every value of a model.

``infer_shapes(model)`` returns a *new* model (the graph structure is copied, tensors are shared,
the caller's model is left untouched) whose values carry inferred types, with every inferred
intermediate value appended to ``graph.value_info``. One pass in topological order; the rules
live in :mod:`onyx.shapes.rules`, one small function per operator, in a table keyed by op type.

Dims are ints, symbols (str) or None. A dim nothing is known about becomes a fresh symbol
(``unk__0``, ``unk__1``, ...) when it is written onto a value. With ``data_prop``, the values of
small integer tensors (initializers, Constant, Shape and the arithmetic exporters build on it)
are tracked as numpy arrays (object arrays when they hold symbols), so Reshape, Expand, Slice,
ConstantOfShape, Tile, Range and friends get concrete or symbolic output shapes.
"""

from __future__ import annotations

import warnings

import numpy as np

from onyx import defs
from onyx.dtypes import DataType
from onyx.errors import OnyxError, ValidationError
from onyx.ir import (
    Attribute,
    AttrType,
    Function,
    Graph,
    Model,
    Node,
    OptionalType,
    SequenceType,
    Shape,
    SparseTensorType,
    TensorType,
    Type,
    UnknownType,
    Value,
)  # fmt: skip
from onyx.shapes.dims import ShapeError
from onyx.shapes.rules import CHECKS, RULES, VALUES, check_attributes

__all__ = ["ShapeError", "infer_shapes", "shapes_table"]

#: Largest constant (in elements) whose values are tracked for data propagation.
VALUE_LIMIT = 1024


def infer_shapes(
    model: Model, strict: bool = False, data_prop: bool = True, problems: list[str] | None = None
) -> Model:
    """A copy of ``model`` with inferred element types and shapes on every value it can type.

    The copy shares tensors with ``model`` (nothing is decoded or duplicated) but has its own
    graphs, nodes and values; ``model`` itself is not changed. Declared types (graph outputs,
    value_info) are merged with inferred ones: the more specific compatible information wins;
    a declared type that is empty or missing is unknown, never a contradiction.

    A problem is a contradiction inference can prove: operands that do not multiply or
    broadcast, an attribute out of range or naming no known value, a subgraph that does not fit
    its operator, a declared type the inferred one contradicts. Each names the node (name, op
    type, graph path) and the reason. With ``strict``, inference runs to the end and then raises
    one ``ValidationError`` listing every problem (``.errors``); otherwise each problem is
    appended to ``problems`` when given, else issued as a warning, and the declared type is kept.
    """
    from onyx.serde import as_model

    copy = clone_model(as_model(model))
    inference = _Inference(copy, strict, data_prop, problems)
    inference.run()
    found = inference.problems
    if strict and found:
        text = (
            found[0]
            if len(found) == 1
            else f"{len(found)} shape problems:\n" + "\n".join(f"- {p}" for p in found)
        )
        err = ValidationError(text)
        err.errors = list(found)
        raise err
    return copy


# --- the inference pass --------------------------------------------------------------------
class _Inference:
    def __init__(self, model: Model, strict: bool, data_prop: bool, sink: list[str] | None = None):
        self.model, self.strict, self.data_prop = model, strict, data_prop
        self.sink = sink
        self.problems: list[str] = []
        self.functions = model.functions
        self.types: dict[Value, Type] = {}
        self.known: dict[Value, np.ndarray] = {}
        self.counter = 0
        self.used_symbols: set[str] = set()
        self.depth = 0  # function-call nesting (guards against recursive functions)

    def run(self) -> None:
        g = self.model.graph
        for v in (*g.inputs, *g.outputs, *g.value_info):
            t = v.type
            while isinstance(t, SequenceType | OptionalType):
                t = t.elem_type
            if isinstance(t, TensorType | SparseTensorType) and t.shape is not None:
                self.used_symbols.update(d for d in t.shape.dims if isinstance(d, str))
        opsets = {("" if k == "ai.onnx" else k): v for k, v in self.model.opset_imports.items()}
        self.graph(g, opsets, g.name or "main", {})
        self.write(g)

    def report(self, message: str) -> None:
        """One contradiction: kept for the strict error, handed to the caller, or warned."""
        if message in self.problems:
            return  # a subgraph inferred again (e.g. a function called twice) says it once
        self.problems.append(message)
        if self.strict:
            return
        if self.sink is not None:
            self.sink.append(message)
        else:
            warnings.warn(message, stacklevel=4)

    def fresh(self) -> str:
        while True:
            name = f"unk__{self.counter}"
            self.counter += 1
            if name not in self.used_symbols:
                return name

    # --- types of values -------------------------------------------------------------------
    def type_of(self, v: Value | None) -> Type | None:
        if v is None:
            return None
        t = self.types.get(v)
        if t is None:
            t = known(v.type)
            if t is None and v.const_value is not None:
                c = v.const_value
                t = TensorType(DataType(c.dtype), Shape(c.dims))
                if type(c).__name__ == "SparseTensor":
                    t = SparseTensorType(DataType(c.dtype), Shape(c.dims))
            if t is not None:
                self.types[v] = t
        return t

    def value_of(self, v: Value | None) -> np.ndarray | None:
        if v is None:
            return None
        a = self.known.get(v)
        if a is None and v.const_value is not None and v.producer is None:
            c = v.const_value
            if type(c).__name__ == "Tensor" and int(np.prod(c.dims)) <= VALUE_LIMIT:
                try:
                    a = self.known[v] = c.numpy()
                except OnyxError:
                    return None
        return a

    # --- graphs ----------------------------------------------------------------------------
    def graph(self, g: Graph, opsets: dict[str, int], path: str, bindings: dict) -> None:
        for v in g.inputs:
            self.type_of(v)
        for i, node in enumerate(g.nodes):
            self.node(node, opsets, path, bindings, i)

    def node(
        self, node: Node, opsets: dict[str, int], path: str, bindings: dict, index: int = 0
    ) -> None:
        label = _label(node, path, index)
        domain = "" if node.domain == "ai.onnx" else node.domain
        fn = self.functions.get((node.domain, node.op_type, node.overload))
        ctx = NodeContext(self, node, opsets, path, bindings, label)
        results: list = []
        if fn is not None:
            results = self.call_function(node, fn, ctx, opsets)
        else:
            rule = RULES.get((domain, node.op_type))
            ctx.schema = (
                defs.find_schema(node.op_type, opsets[domain], domain)
                if domain in opsets and defs.has_schema(node.op_type, None, domain)
                else None
            )
            if ctx.schema is not None and (self.data_prop or node.op_type == "Constant"):
                value_rule = VALUES.get(node.op_type) if domain == "" else None
                if value_rule is not None:
                    try:
                        val = value_rule(ctx)
                    except ShapeError:
                        val = None
                    except Exception:  # noqa: BLE001 - a value we cannot compute stays unknown
                        val = None
                    if val is not None and node.outputs and node.outputs[0] is not None:
                        self.known[node.outputs[0]] = _as_array(val)
            try:
                if ctx.schema is not None:
                    check_attributes(ctx)
                    for check in CHECKS.get((domain, node.op_type), ()):
                        check(ctx)
                out = rule(ctx) if rule is not None else None
            except ShapeError as e:
                self.report(f"{label}: {e}")
                out = None
            except OnyxError:
                raise
            except Exception:  # noqa: BLE001 - a malformed node leaves its outputs untyped
                out = None
            results = out if isinstance(out, list) else [out]
            results = [ctx.finish(i, r) for i, r in enumerate(results)]
            results += [ctx.finish(i, None) for i in range(len(results), len(node.outputs))]
        for v, t in zip(node.outputs, results):
            if v is not None:
                self.set(v, t, label)

    def set(self, v: Value, inferred: Type | None, label: str) -> None:
        inferred = self.freshen(known(inferred))
        declared = known(v.type)
        if declared is None:
            merged = inferred
        elif inferred is None:
            merged = declared
        else:
            try:
                merged = merge(declared, inferred)
            except ShapeError as e:
                self.report(
                    f"{label}: value {v.name!r}: inferred type {type_str(inferred)} contradicts "
                    f"the declared {type_str(declared)} ({e})"
                )
                merged = declared
        if merged is not None:
            self.types[v] = merged

    def freshen(self, t: Type | None) -> Type | None:
        """``t`` with every unknown (None) dim replaced by a new symbol."""
        if isinstance(t, TensorType | SparseTensorType):
            if t.shape is not None and None in t.shape.dims:
                dims = [self.fresh() if d is None else d for d in t.shape.dims]
                return type(t)(t.dtype, Shape(dims, t.shape.denotations), t.denotation)
            return t
        if isinstance(t, SequenceType | OptionalType):
            return type(t)(self.freshen(t.elem_type), t.denotation)
        return t

    # --- functions -------------------------------------------------------------------------
    def call_function(self, node: Node, fn: Function, ctx: NodeContext, opsets: dict) -> list:
        if self.depth > 8:
            return [None] * len(node.outputs)
        bindings = {k: a.value for k, a in fn.attribute_defaults.items()}
        for k in node.attributes:
            bindings[k] = ctx.a(k)
        body = fn.graph
        saved = self.types, self.known
        inner_types: dict[Value, Type] = {}
        inner_known: dict[Value, np.ndarray] = {}
        for formal, actual in zip(body.inputs, node.inputs):
            t = self.type_of(actual)
            if t is not None:
                inner_types[formal] = t
            val = self.value_of(actual)
            if val is not None:
                inner_known[formal] = val
        self.types, self.known = inner_types, inner_known
        self.depth += 1
        try:
            fn_opsets = {**opsets}
            fn_opsets.update(
                {("" if k == "ai.onnx" else k): v for k, v in fn.opset_imports.items()}
            )
            self.graph(body, fn_opsets, f"function {fn.domain}::{fn.name}", bindings)
            results = [self.types.get(v) if v is not None else None for v in body.outputs]
            values = [self.known.get(v) for v in body.outputs]
        finally:
            self.types, self.known = saved
            self.depth -= 1
        for v, val in zip(node.outputs, values):
            if v is not None and val is not None:
                self.known[v] = val
        return results

    # --- writing the results ---------------------------------------------------------------
    def write(self, g: Graph) -> None:
        listed = {id(v) for v in (*g.inputs, *g.outputs, *g.value_info)}
        listed.update(id(v) for v in g.initializers.values())
        for node in g.nodes:
            for sub in node.subgraphs():
                self.write(sub)
            for v in node.outputs:
                if v is None:
                    continue
                t = self.types.get(v)
                if t is None:
                    continue
                v.type = t
                if id(v) not in listed:
                    g.value_info.append(v)
                    listed.add(id(v))
        for v in g.inputs:
            t = self.types.get(v)
            if t is not None:
                v.type = t


class NodeContext:
    """What a rule sees of one node: its inputs' types, shapes and known values, its attributes."""

    __slots__ = ("bindings", "inf", "label", "node", "opset", "opsets", "path", "schema")

    def __init__(self, inf: _Inference, node: Node, opsets, path, bindings, label):
        self.inf, self.node, self.opsets, self.path = inf, node, opsets, path
        self.bindings, self.label = bindings, label
        self.opset = opsets.get("" if node.domain == "ai.onnx" else node.domain, 0)
        self.schema = None

    def op_type(self) -> str:
        return self.node.op_type

    # inputs
    @property
    def nin(self) -> int:
        return len(self.node.inputs)

    @property
    def nout(self) -> int:
        return len(self.node.outputs)

    def has(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] is not None

    def t(self, i: int) -> Type | None:
        return self.inf.type_of(self.node.inputs[i]) if i < len(self.node.inputs) else None

    def s(self, i: int) -> tuple | None:
        """The shape of input ``i`` as a tuple of dims (None: rank unknown or no input)."""
        t = self.t(i)
        if isinstance(t, TensorType | SparseTensorType) and t.shape is not None:
            return t.shape.dims
        return None

    def r(self, i: int) -> int | None:
        s = self.s(i)
        return None if s is None else len(s)

    def dt(self, i: int) -> DataType | None:
        t = self.t(i)
        return t.dtype if isinstance(t, TensorType | SparseTensorType) else None

    def v(self, i: int) -> np.ndarray | None:
        """The known value of input ``i`` (an object array when it holds symbols)."""
        return self.inf.value_of(self.node.inputs[i]) if i < len(self.node.inputs) else None

    def ints(self, i: int) -> list | None:
        """The known value of input ``i`` as a flat list of dims (ints, symbols or None)."""
        val = self.v(i)
        if val is None:
            return None
        return [_dim(x) for x in np.asarray(val).reshape(-1).tolist()]

    def a(self, name: str, default=None):
        attr: Attribute | None = self.node.attributes.get(name)
        if attr is None:
            return default
        if attr.is_ref:
            value = self.bindings.get(attr.ref_attr_name, default)
            if hasattr(value, "numpy") and attr.type == AttrType.TENSOR:
                return value
            return value
        return attr.value

    def fresh(self) -> str:
        return self.inf.fresh()

    def sub(self, name: str) -> Graph | None:
        return self.a(name)

    def sub_path(self, g: Graph) -> str:
        """The path of subgraph ``g`` of this node, as the checker writes it."""
        for attr in self.node.attributes.values():
            value = attr.value
            if value is g:
                return f"{self.path}/{self.node.name or self.node.op_type}.{attr.name}"
            if isinstance(value, list) and any(x is g for x in value):
                k = next(i for i, x in enumerate(value) if x is g)
                return f"{self.path}/{self.node.name or self.node.op_type}.{attr.name}[{k}]"
        return f"{self.path}/{self.node.name or self.node.op_type}"

    def infer_subgraph(self, g: Graph, input_types: list[Type | None]) -> list[Type | None]:
        """Infer ``g`` (a subgraph of this node) with its inputs typed, return its output types.

        A declared input whose element type contradicts the one the operator gives it is a
        problem; declared dims win over given ones (loop-carried shapes may change)."""
        path = self.sub_path(g)
        for v, t in zip(g.inputs, input_types):
            t = known(t)
            if t is None:
                continue
            t = self.inf.freshen(t)
            declared = known(v.type)
            if declared is not None:
                try:
                    t = merge(declared, t)
                except ShapeError:
                    try:
                        merge(declared, _strip(t))
                    except ShapeError as e:
                        self.inf.report(
                            f"{self.label}: input {v.name!r} of subgraph {path!r} is declared "
                            f"{type_str(declared)}, but the operator passes "
                            f"{type_str(t)} ({e})"
                        )
                    t = declared
            self.inf.types[v] = t
        self.inf.graph(g, self.opsets, path, self.bindings)
        return [self.inf.type_of(v) for v in g.outputs]

    # outputs
    def finish(self, i: int, result) -> Type | None:
        """Turn what a rule returned for output ``i`` into a Type (element type from the schema
        when the rule gave only a shape)."""
        if isinstance(result, Type):
            return result
        base = self.out_type(i)
        if result is None:
            return base
        shape = Shape(result)
        if isinstance(base, TensorType):
            return TensorType(base.dtype, shape)
        return None

    def out_type(self, i: int) -> Type | None:
        """The output's type as the schema's type constraints bind it (no shape)."""
        sc = self.schema
        if sc is None or not sc.outputs:
            return None
        formal = sc.outputs[min(i, len(sc.outputs) - 1)]
        ts = formal.type_str
        if ts in sc.type_constraints:
            for j, inp in enumerate(self.node.inputs):
                if inp is None or not sc.inputs:
                    continue
                if j >= len(sc.inputs) and not sc.inputs[-1].is_variadic:
                    break
                if sc.inputs[min(j, len(sc.inputs) - 1)].type_str == ts:
                    t = self.t(j)
                    if t is not None:
                        return _strip(t)
            allowed = sc.type_constraints[ts]
            return parse_type(allowed[0]) if len(allowed) == 1 else None
        return parse_type(ts)


def _as_array(val) -> np.ndarray:
    if isinstance(val, np.ndarray):
        if val.dtype == object and all(
            isinstance(x, int | np.integer) and not isinstance(x, bool) for x in val.flat
        ):
            return val.astype(np.int64)
        return val
    if isinstance(val, str) or val is None:
        out = np.empty((), object)
        out[()] = val
        return out
    return np.asarray(val)


def _strip(t: Type) -> Type:
    if isinstance(t, TensorType):
        return TensorType(t.dtype)
    if isinstance(t, SparseTensorType):
        return SparseTensorType(t.dtype)
    return t


def _dim(x):
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, bool):
        return int(x)
    try:
        return int(x)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_type(s: str) -> Type | None:
    """A Type from a schema type string such as ``tensor(int64)`` or ``seq(tensor(float))``."""
    s = s.replace(" ", "")
    head, _, rest = s.partition("(")
    inner = rest[:-1]
    if head == "tensor":
        return (
            TensorType(DataType[inner.upper()]) if inner.upper() in DataType.__members__ else None
        )
    if head == "sparse_tensor":
        return SparseTensorType(DataType[inner.upper()])
    if head == "seq":
        return SequenceType(parse_type(inner))
    if head == "optional":
        return OptionalType(parse_type(inner))
    return None


# --- merging -------------------------------------------------------------------------------
def known(t: Type | None) -> Type | None:
    """``t`` with empty types (a TypeProto with nothing set) made None: they say nothing."""
    if isinstance(t, UnknownType):
        return None
    if isinstance(t, SequenceType | OptionalType) and t.elem_type is not None:
        elem = known(t.elem_type)
        if elem is not t.elem_type:
            return type(t)(elem, t.denotation)
    return t


def merge(declared: Type, inferred: Type) -> Type:
    """The more specific of two compatible types; ShapeError when they contradict."""
    declared, inferred = known(declared), known(inferred)
    if declared is None or inferred is None:
        return inferred if declared is None else declared
    if type(declared) is not type(inferred):
        raise ShapeError("different kinds of type")
    if isinstance(declared, TensorType | SparseTensorType):
        if declared.dtype != inferred.dtype and DataType.UNDEFINED not in (
            declared.dtype,
            inferred.dtype,
        ):
            raise ShapeError("element types differ")
        dtype = declared.dtype if declared.dtype != DataType.UNDEFINED else inferred.dtype
        ds, is_ = declared.shape, inferred.shape
        if ds is None or is_ is None:
            shape = ds if is_ is None else is_
        else:
            if len(ds) != len(is_):
                raise ShapeError("ranks differ")
            dims = []
            for k, (a, b) in enumerate(zip(ds.dims, is_.dims)):
                if isinstance(a, int) and isinstance(b, int) and a != b:
                    raise ShapeError(f"dim {k} differs")
                dims.append(b if isinstance(b, int) or a is None else a)
            shape = Shape(dims, ds.denotations)
        return type(declared)(dtype, shape, declared.denotation)
    if isinstance(declared, SequenceType | OptionalType):
        if declared.elem_type is None or inferred.elem_type is None:
            return declared if inferred.elem_type is None else inferred
        return type(declared)(merge(declared.elem_type, inferred.elem_type), declared.denotation)
    return declared


def type_str(t: Type | None) -> str:
    """``float[N,3]``-style text of a type."""
    if t is None:
        return "?"
    if isinstance(t, TensorType | SparseTensorType):
        prefix = "sparse " if isinstance(t, SparseTensorType) else ""
        shape = (
            ""
            if t.shape is None
            else "[" + ",".join("?" if d is None else str(d) for d in t.shape.dims) + "]"
        )
        return f"{prefix}{t.dtype.short_name}{shape or '[...]'}"
    if isinstance(t, SequenceType):
        return f"seq({type_str(t.elem_type)})"
    if isinstance(t, OptionalType):
        return f"optional({type_str(t.elem_type)})"
    return str(t)


def _label(node: Node, path: str, index: int = 0) -> str:
    """The node as the checker names it: ``node 'name' (domain::Op) in graph 'main/If_0.then'``."""
    name = node.name or f"#{index}"
    op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
    return f"node {name!r} ({op}) in graph {path!r}"


# --- copying the model ---------------------------------------------------------------------
def clone_model(model: Model) -> Model:
    """A structural copy of ``model``: new graphs, nodes and values; tensors shared."""
    import copy as _copy

    vmap: dict[Value, Value] = {}
    new = _copy.copy(model)
    new.graph = clone_graph(model.graph, vmap)
    new.functions = {}
    for key, fn in model.functions.items():
        f2 = _copy.copy(fn)
        f2.graph = clone_graph(fn.graph, {})
        new.functions[key] = f2
    new.training_info = [_copy.copy(t) for t in model.training_info]
    new.opset_imports = dict(model.opset_imports)
    new.metadata_props = dict(model.metadata_props)
    return new


def clone_graph(g: Graph, vmap: dict[Value, Value]) -> Graph:
    def val(v: Value | None) -> Value | None:
        if v is None:
            return None
        nv = vmap.get(v)
        if nv is None:
            nv = vmap[v] = Value(v.name, v.type, doc_string=v.doc_string,
                                 metadata_props=v.metadata_props, const_value=v.const_value)  # fmt: skip
            nv.present = set(v.present)
        return nv

    ng = Graph(name=g.name, doc_string=g.doc_string, metadata_props=g.metadata_props)
    ng.present = set(g.present)
    ng.inputs = [val(v) for v in g.inputs]
    for v in g.initializers.values():
        ng.initializers[v.name] = val(v)
    for v in g.sparse_initializers.values():
        ng.sparse_initializers[v.name] = val(v)
    for node in g.nodes:
        outs = [val(v) for v in node.outputs]
        attrs = []
        for a in node.attributes.values():
            value = a.value
            if a.type == AttrType.GRAPH and value is not None:
                value = clone_graph(value, vmap)
            elif a.type == AttrType.GRAPHS and value:
                value = [clone_graph(x, vmap) for x in value]
            attrs.append(Attribute(a.name, a.type, value, a.ref_attr_name, a.doc_string,
                                   set(a.present)))  # fmt: skip
        n2 = Node(node.op_type, [val(v) for v in node.inputs], outs, attrs, domain=node.domain,
                  name=node.name, overload=node.overload, doc_string=node.doc_string,
                  metadata_props=node.metadata_props,
                  device_configurations=node.device_configurations)  # fmt: skip
        n2.present = set(node.present)
        ng.append(n2)
    ng.outputs = [val(v) for v in g.outputs]
    ng.value_info = [val(v) for v in g.value_info]
    ng.quantization_annotation = list(g.quantization_annotation)
    return ng


# --- the table -----------------------------------------------------------------------------
def shapes_table(model: Model) -> str:
    """A text table of every value of the main graph with its inferred element type and shape.

    ``model`` should come from ``infer_shapes`` (types are read as they are)."""
    rows = [("value", "type", "shape", "producer")]
    g = model.graph
    seen: set[int] = set()

    def add(v: Value, producer: str) -> None:
        if v is None or id(v) in seen:
            return
        seen.add(id(v))
        t = v.type
        if t is None and v.const_value is not None:
            t = TensorType(DataType(v.const_value.dtype), Shape(v.const_value.dims))
        if isinstance(t, TensorType | SparseTensorType):
            kind = t.dtype.short_name
            shape = (
                "?"
                if t.shape is None
                else "[" + ", ".join("?" if d is None else str(d) for d in t.shape.dims) + "]"
            )
        else:
            kind, shape = (type_str(t) if t is not None else "?"), ""
        rows.append((v.name, kind, shape, producer))

    for v in g.inputs:
        add(v, "input")
    for v in g.initializers.values():
        add(v, "initializer")
    for node in g.nodes:
        for v in node.outputs:
            add(v, node.op_type + (f" {node.name}" if node.name else ""))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
