"""Print the IR in the textual syntax, so that parsing the text gives the same model back.

Floats print in their shortest round-trip form (float32 data as float32), float16, bfloat16 and
the float8/float4/float6 kinds as their bit patterns (as onnx's printer does), strings quoted with
backslash escapes for '"' and '\\'. Sparse tensors use an onyx extension of the syntax:
``sparse_tensor(float[4,4]) name {float[2] {1, 2}, int64[2] {0, 5}}``.

With ``max_elements`` (what ``print(model)`` and ``onyx print`` use) the text is for reading,
not for parsing back: a tensor of more elements shows its first few and its count
(``{0.5, -1.25, 3, 0.75, ... 4096 elements}``), and a symbolic dim longer than 24 characters
is written as an alias (``s0``) defined once in a comment at the top.
"""

from __future__ import annotations

import re

import numpy as np

from onyx import dtypes
from onyx.dtypes import DataType
from onyx.ir.attribute import Attribute, AttrType
from onyx.ir.graph import Graph, Value
from onyx.ir.model import Function, Model
from onyx.ir.tensor import SparseTensor, Tensor
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
from onyx.text._lexer import SPECIAL_FLOATS
from onyx.text.parser import _BITS_AS_INT, ATTR_TYPES, PRIM_TYPES, TYPE_KEYWORDS

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = set(PRIM_TYPES) | TYPE_KEYWORDS | SPECIAL_FLOATS
_ATTR_NAMES = {t: name for name, t in ATTR_TYPES.items()}
_STEP = "   "
_ALIAS_FROM = 24  # symbolic dims at least this long get an alias when printing for reading
_SHOWN = 4  # elements an abbreviated tensor still shows


def print_model(model: Model, max_elements: int | None = None) -> str:
    """The model as text: header, main graph, then its functions.

    Without ``max_elements`` every element is printed and the text parses back to the same
    model; with it, larger tensors and long symbolic dims are abbreviated (see above)."""
    p = _Printer(model.graph, model.functions.values(), max_elements)
    lines = [f"{_STEP}ir_version: {model.ir_version}",
             f"{_STEP}opset_import: {_opsets(model.opset_imports)}"]  # fmt: skip
    for key in ("producer_name", "producer_version", "domain"):
        value = getattr(model, key)
        if value or key in model.present:
            lines.append(f"{_STEP}{key}: {quote(value)}")
    if model.model_version or "model_version" in model.present:
        lines.append(f"{_STEP}model_version: {model.model_version}")
    if model.doc_string or "doc_string" in model.present:
        lines.append(f"{_STEP}doc_string: {quote(model.doc_string)}")
    if model.metadata_props:
        lines.append(f"{_STEP}metadata_props: {_pairs(model.metadata_props)}")
    out = ["<\n" + ",\n".join(lines) + "\n>\n", p.graph(model.graph, ""), "\n"]
    for fn in model.functions.values():
        out += ["\n", p.function(fn)]
    return p.alias_comments() + "".join(out)


def print_graph(graph: Graph, max_elements: int | None = None) -> str:
    """The graph as text: ``name (inputs) => (outputs) <initializers, value infos> {nodes}``;
    ``max_elements`` abbreviates as ``print_model`` does."""
    p = _Printer(graph, (), max_elements)
    text = p.graph(graph, "") + "\n"
    return p.alias_comments() + text


def print_function(fn: Function) -> str:
    """The function as text, with its header of domain, overload and opset imports."""
    return _Printer(fn.graph).function(fn)


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def name_text(s: str) -> str:
    """A name as an identifier where it reads as one, else quoted."""
    return s if _IDENT.match(s) and s not in _RESERVED else quote(s)


def _opsets(opsets: dict[str, int]) -> str:
    return "[" + ", ".join(f"{quote(d)} : {v}" for d, v in opsets.items()) + "]"


def _pairs(props: dict[str, str]) -> str:
    return "[" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in props.items()) + "]"


# --- types -----------------------------------------------------------------------------------
def type_text(t: Type | None, dim=None) -> str:
    """The type as text; ``dim`` (if given) maps each symbolic dim to the name to print.

    An unknown type (None, or an UnknownType) prints as nothing, as in ``seq()``; an unknown
    dim (None, also one a file wrote as -1) prints as ``?``."""
    if t is None or isinstance(t, UnknownType):
        return ""
    if isinstance(t, TensorType):
        return t.dtype.short_name + _shape(t.shape, dim)
    if isinstance(t, SparseTensorType):
        return f"sparse_tensor({t.dtype.short_name}{_shape(t.shape, dim)})"
    if isinstance(t, SequenceType):
        return f"seq({type_text(t.elem_type, dim)})"
    if isinstance(t, OptionalType):
        return f"optional({type_text(t.elem_type, dim)})"
    if isinstance(t, MapType):
        return f"map({t.key_type.short_name}, {type_text(t.value_type, dim)})"
    if isinstance(t, OpaqueType):
        return f"opaque({t.domain + ',' if t.domain else ''}{t.name})"
    raise ValueError(f"type {t} has no textual form")


def _shape(shape: Shape | None, dim=None) -> str:
    if shape is None:
        return "[]"
    if not shape.dims:
        return ""
    return "[" + ",".join("?" if d is None else str(d) if isinstance(d, int)
                          else name_text(d if dim is None else dim(d))
                          for d in shape.dims) + "]"  # fmt: skip


# --- tensors ---------------------------------------------------------------------------------
def tensor_text(
    t: Tensor | SparseTensor,
    name: str | None = None,
    initializer: bool = False,
    max_elements: int | None = None,
) -> str:
    """``float[2,3] name {1.0, ...}``; with ``initializer``, ``float[2,3] name = {...}``;
    with ``max_elements``, a larger tensor shows only its first elements and its count."""
    if isinstance(t, SparseTensor):
        head = f"sparse_tensor({t.dtype.short_name}{_dims(t.dims)})"
        name = t.values.name if name is None else name
        values = tensor_text(t.values, "", max_elements=max_elements)
        indices = tensor_text(t.indices, "", max_elements=max_elements)
        data = "{" + values + ", " + indices + "}"
    else:
        head = t.dtype.short_name + _dims(t.dims)
        name = t.name if name is None else name
        data = _data(t, max_elements)
    if name:
        head += " " + name_text(name)
    return f"{head} = {data}" if initializer else f"{head} {data}"


def _dims(dims) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]" if len(dims) else ""


def _data(t: Tensor, max_elements: int | None = None) -> str:
    ext = t.external
    if ext is not None:
        entries = dict(ext.extra) or {"location": ext.location}
        if not ext.extra:
            if ext.offset:
                entries["offset"] = str(ext.offset)
            if ext.length is not None:
                entries["length"] = str(ext.length)
        return _pairs(entries)
    if t.size == 0 and not t.is_loaded and t.raw is None and t.field is None:
        return "{}"
    if max_elements is not None and t.size > max_elements:
        shown = elements(t.numpy().reshape(-1)[: min(_SHOWN, max_elements)], t.dtype)
        return "{" + "".join(x + ", " for x in shown) + f"... {t.size} elements}}"
    return "{" + ", ".join(elements(t.numpy(), t.dtype)) + "}"


def elements(arr: np.ndarray, dt: DataType) -> list[str]:
    """The elements of ``arr`` as literals that parse back to the same bits."""
    flat = np.asarray(arr).reshape(-1)
    if dt == DataType.STRING:
        return [quote(s if isinstance(s, str) else s.decode("utf-8", "surrogateescape"))
                for s in flat]  # fmt: skip
    if dt in (DataType.FLOAT, DataType.DOUBLE):
        return flat.astype(str).tolist()
    if dt in (DataType.COMPLEX64, DataType.COMPLEX128):
        parts = flat.view(np.float32 if dt == DataType.COMPLEX64 else np.float64)
        return parts.astype(str).tolist()
    if dt in _BITS_AS_INT:
        return [str(v) for v in flat.view(_BITS_AS_INT[dt]).tolist()]
    if dt in dtypes.SUB_BYTE:  # int4, uint4, int2, uint2: the element values
        return [str(v) for v in flat.astype(np.int64).tolist()]
    return [str(v) for v in flat.astype(np.int64 if dt != DataType.UINT64 else np.uint64).tolist()]


def float_text(v: float) -> str:
    """A float attribute (stored as float32) in its shortest round-trip form."""
    return str(np.float32(v))


# --- graphs, nodes, functions ----------------------------------------------------------------
class _Printer:
    """Names values (unnamed ones get fresh names) and prints graphs with indentation."""

    def __init__(self, graph: Graph, functions=(), max_elements: int | None = None):
        self.names: dict[Value, str] = {}
        self.taken: set[str] | None = None
        self.graphs = [graph] + [f.graph for f in functions]
        self.max_elements = max_elements  # None: print everything, as parsing needs
        self.aliases: dict[str, str] = {}  # long symbolic dim -> its short name
        self.dims_taken: set[str] | None = None

    def dim(self, d: str) -> str:
        """The name a symbolic dim prints as: itself, or (when abbreviating) an alias."""
        if self.max_elements is None or len(d) < _ALIAS_FROM:
            return d
        alias = self.aliases.get(d)
        if alias is None:
            if self.dims_taken is None:
                self.dims_taken = _all_dims(self.graphs)
            i = len(self.aliases)
            while f"s{i}" in self.dims_taken:
                i += 1
            alias = self.aliases[d] = f"s{i}"
            self.dims_taken.add(alias)
        return alias

    def alias_comments(self) -> str:
        return "".join(f"# {alias} = {d}\n" for d, alias in self.aliases.items())

    def type(self, t: Type) -> str:
        return type_text(t, self.dim if self.max_elements is not None else None)

    def name(self, v: Value | None) -> str:
        return '""' if v is None else name_text(self.raw_name(v))

    def raw_name(self, v: Value) -> str:
        if v.name:
            return v.name
        fresh = self.names.get(v)
        if fresh is None:
            if self.taken is None:
                self.taken = _all_names(self.graphs)
            i = len(self.names)
            while f"_v{i}" in self.taken:
                i += 1
            fresh = self.names[v] = f"_v{i}"
            self.taken.add(fresh)
        return fresh

    def value_info(self, v: Value) -> str:
        return (self.type(v.type) + " " if v.type is not None else "") + self.name(v)

    def graph(self, g: Graph, indent: str) -> str:
        inputs = ", ".join(self.value_info(v) for v in g.inputs)
        outputs = ", ".join(self.value_info(v) for v in g.outputs)
        head = f"{name_text(g.name)} ({inputs}) => ({outputs})"
        extras = [
            tensor_text(v.const_value, self.raw_name(v), True, self.max_elements)
            for v in (*g.initializers.values(), *g.sparse_initializers.values())
        ]
        extras += [self.value_info(v) for v in g.value_info]
        if extras:
            head += f"\n{indent}{_STEP}<" + ", ".join(extras) + ">"
        return head + " " + self.body(g, indent)

    def body(self, g: Graph, indent: str) -> str:
        inner = indent + _STEP
        lines = ["{"]
        for node in g.nodes:
            text = inner
            if node.name or "name" in node.present:
                text += f"[{name_text(node.name)}] "
            text += ", ".join(self.name(v) for v in node.outputs) + " = "
            text += f"{node.domain}.{node.op_type}" if node.domain else node.op_type
            if node.overload:
                text += ":" + node.overload
            attrs = ""
            if node.attributes:
                attrs = " <" + ", ".join(self.attribute(a, inner)
                                         for a in node.attributes.values()) + ">"  # fmt: skip
            text += attrs + " (" + ", ".join(self.name(v) for v in node.inputs) + ")"
            lines.append(text)
        lines.append(indent + "}")
        return "\n".join(lines)

    def attribute(self, a: Attribute, indent: str) -> str:
        kind = _ATTR_NAMES.get(a.type)
        head = name_text(a.name) + (f": {kind}" if kind else "") + " = "
        if a.is_ref:
            return head + "@" + name_text(a.ref_attr_name)
        k, v = a.type, a.value
        if k == AttrType.FLOAT:
            return head + float_text(v)
        if k == AttrType.INT:
            return head + str(int(v))
        if k == AttrType.STRING:
            return head + quote(_str(v))
        if k in (AttrType.TENSOR, AttrType.SPARSE_TENSOR):
            return head + tensor_text(_tensor(v), max_elements=self.max_elements)
        if k == AttrType.GRAPH:
            return head + self.graph(v, indent)
        if k == AttrType.TYPE_PROTO:
            return head + self.type(v)
        items = v or []
        if k == AttrType.FLOATS:
            parts = [float_text(x) for x in items]
        elif k == AttrType.INTS:
            parts = [str(int(x)) for x in items]
        elif k == AttrType.STRINGS:
            parts = [quote(_str(x)) for x in items]
        elif k in (AttrType.TENSORS, AttrType.SPARSE_TENSORS):
            parts = [tensor_text(_tensor(x), max_elements=self.max_elements) for x in items]
        elif k == AttrType.GRAPHS:
            parts = [self.graph(x, indent) for x in items]
        elif k == AttrType.TYPE_PROTOS:
            parts = [self.type(x) for x in items]
        else:
            raise ValueError(f"attribute {a.name!r} of kind {a.type!r} has no textual form")
        return head + "[" + ", ".join(parts) + "]"

    def function(self, fn: Function) -> str:
        header = [f"{_STEP}domain: {quote(fn.domain)}"]
        if fn.overload:
            header.append(f"{_STEP}overload: {quote(fn.overload)}")
        header.append(f"{_STEP}opset_import: {_opsets(fn.opset_imports)}")
        if fn.doc_string:
            header.append(f"{_STEP}doc_string: {quote(fn.doc_string)}")
        if fn.metadata_props:
            header.append(f"{_STEP}metadata_props: {_pairs(fn.metadata_props)}")
        text = "<\n" + ",\n".join(header) + "\n>\n" + name_text(fn.name)
        attrs = [name_text(a) for a in fn.attributes]
        attrs += [self.attribute(a, "") for a in fn.attribute_defaults.values()]
        if attrs:
            text += " <" + ", ".join(attrs) + ">"
        g = fn.graph
        text += " (" + ", ".join(self.name(v) for v in g.inputs) + ") => ("
        text += ", ".join(self.name(v) for v in g.outputs) + ")"
        if g.value_info:
            text += "\n" + _STEP + "<" + ", ".join(self.value_info(v) for v in g.value_info) + ">"
        return text + "\n" + self.body(g, "") + "\n"


def _str(v) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


def _tensor(v) -> Tensor | SparseTensor:
    return v if isinstance(v, Tensor | SparseTensor) else Tensor(np.asarray(v))


def _all_names(graphs: list[Graph]) -> set[str]:
    names: set[str] = set()
    stack = list(graphs)
    while stack:
        g = stack.pop()
        for v in (*g.inputs, *g.outputs, *g.initializers.values()):
            names.add(v.name)
        for node in g.nodes:
            names.update(v.name for v in node.outputs if v is not None)
            stack.extend(node.subgraphs())
    return names


def _all_dims(graphs: list[Graph]) -> set[str]:
    """Every symbolic dim named in the types of the graphs' values (aliases must not clash)."""
    dims: set[str] = set()
    stack = list(graphs)
    while stack:
        g = stack.pop()
        values = [*g.inputs, *g.outputs, *g.value_info]
        for node in g.nodes:
            values.extend(v for v in node.outputs if v is not None)
            stack.extend(node.subgraphs())
        for v in values:
            shape = getattr(v.type, "shape", None)
            if shape is not None:
                dims.update(d for d in shape.dims if isinstance(d, str))
    return dims
