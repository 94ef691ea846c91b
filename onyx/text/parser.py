"""Parse the textual syntax into the IR: a tokenizer, a recursive-descent reader, then a builder.

Reading makes a light syntax tree (graphs refer to values by name); building turns it into IR
objects with one Value per name and scope, the way the loader does: every node output of a graph
is defined before any input is resolved, and subgraphs see all values of the graphs around them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from onyx import dtypes
from onyx.dtypes import DataType
from onyx.errors import GraphError, ParseError
from onyx.ir.attribute import Attribute, AttrType
from onyx.ir.graph import Graph, Node, Scope, Value
from onyx.ir.model import Function, Model
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
)  # fmt: skip
from onyx.text._lexer import SPECIAL_FLOATS, Position, Token, tokenize, unquote

PRIM_TYPES = {t.short_name: t for t in DataType if t != DataType.UNDEFINED}
TYPE_KEYWORDS = {"seq", "map", "optional", "sparse_tensor", "opaque"}
ATTR_TYPES = {t.name.lower(): t for t in AttrType if t != AttrType.UNDEFINED}
_LIST_OF = {
    AttrType.FLOATS: AttrType.FLOAT, AttrType.INTS: AttrType.INT, AttrType.STRINGS: AttrType.STRING,
    AttrType.TENSORS: AttrType.TENSOR, AttrType.GRAPHS: AttrType.GRAPH,
    AttrType.SPARSE_TENSORS: AttrType.SPARSE_TENSOR, AttrType.TYPE_PROTOS: AttrType.TYPE_PROTO,
}  # fmt: skip
_LIST_FOR = {v: k for k, v in _LIST_OF.items()}
_BITS_AS_INT = {  # float types whose elements are written as their bit patterns
    DataType.FLOAT16: np.uint16, DataType.BFLOAT16: np.uint16,
    DataType.FLOAT8E4M3FN: np.uint8, DataType.FLOAT8E4M3FNUZ: np.uint8,
    DataType.FLOAT8E5M2: np.uint8, DataType.FLOAT8E5M2FNUZ: np.uint8,
    DataType.FLOAT8E8M0: np.uint8, DataType.FLOAT4E2M1: np.uint8,
    DataType.FLOAT6E2M3: np.uint8, DataType.FLOAT6E3M2: np.uint8,
}  # fmt: skip


# ============================================================================================
# public entry points
# ============================================================================================
def parse_model(text: str) -> Model:
    """A Model from its text: an optional ``<key: value, ...>`` header, a graph, then functions."""
    r = _Reader(text)
    model = r.model()
    return _Builder(r.where).model(model)


def parse_graph(text: str) -> Graph:
    """A Graph from its text: ``name (inputs) => (outputs) <initializers, value infos> {nodes}``."""
    r = _Reader(text)
    g = r.graph()
    r.expect("eof", "end of input")
    return _Builder(r.where).graph(g, Scope(None))


def parse_function(text: str) -> Function:
    """A Function from its text: ``<domain: "d", opset_import: [...]> name <attrs> (x) => (y) {...}``."""
    r = _Reader(text)
    f = r.function()
    r.expect("eof", "end of input")
    return _Builder(r.where).function(f)


# ============================================================================================
# syntax tree
# ============================================================================================
@dataclasses.dataclass
class _NodeSyntax:
    pos: int
    name: str | None
    outputs: list[str]
    domain: str
    op_type: str
    overload: str
    attributes: list[Attribute]  # graph values are _GraphSyntax until built
    inputs: list[str]


@dataclasses.dataclass
class _GraphSyntax:
    pos: int
    name: str
    inputs: list[tuple[Type | None, str, int]]
    outputs: list[tuple[Type | None, str, int]]
    initializers: list[tuple[str, Tensor | SparseTensor, int]]
    value_info: list[tuple[Type | None, str, int]]
    nodes: list[_NodeSyntax]


@dataclasses.dataclass
class _FunctionSyntax:
    pos: int
    header: dict[str, Any]
    name: str
    attributes: list[str]
    attribute_defaults: list[Attribute]
    inputs: list[str]
    outputs: list[str]
    value_info: list[tuple[Type | None, str, int]]
    nodes: list[_NodeSyntax]


@dataclasses.dataclass
class _ModelSyntax:
    header: dict[str, Any]
    graph: _GraphSyntax
    functions: list[_FunctionSyntax]


# ============================================================================================
# reader
# ============================================================================================
class _Reader:
    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"expected the model text as a str, got {type(text).__name__}")
        self.where = Position(text)
        self.tokens = tokenize(text)
        self.i = 0

    # --- token helpers -------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        t = self.tokens[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def error(self, expected: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.tok
        return ParseError(f"{self.where.at(tok.pos)}: expected {expected}, found {tok.shown}")

    def accept(self, kind: str) -> bool:
        if self.tok.kind == kind:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, what: str | None = None) -> Token:
        if self.tok.kind != kind:
            raise self.error(what or repr(kind))
        return self.next()

    def ident(self, what: str = "an identifier") -> str:
        return self.expect("id", what).text

    def quotable(self, what: str = "a name") -> str:
        if self.tok.kind == "str":
            return unquote(self.next().text)
        return self.ident(what)

    def string(self, what: str = "a string literal") -> str:
        return unquote(self.expect("str", what).text)

    def integer(self, what: str = "an integer") -> int:
        t = self.tok
        if t.kind != "num" or not _is_int(t.text):
            raise self.error(what)
        self.i += 1
        return int(t.text)

    def is_type_start(self) -> bool:
        t = self.tok
        return t.kind == "id" and (t.text in PRIM_TYPES or t.text in TYPE_KEYWORDS)

    # --- model and its header ------------------------------------------------------------
    def model(self) -> _ModelSyntax:
        header = self.header(_MODEL_KEYS) if self.tok.kind == "<" else {}
        graph = self.graph()
        functions = []
        while self.tok.kind != "eof":
            functions.append(self.function())
        return _ModelSyntax(header, graph, functions)

    def header(self, keys: dict[str, str]) -> dict[str, Any]:
        self.expect("<")
        out: dict[str, Any] = {}
        while True:
            t = self.tok
            key = self.ident("a header key (" + ", ".join(keys) + ")")
            kind = keys.get(key)
            if kind is None:
                raise ParseError(f"{self.where.at(t.pos)}: expected one of {', '.join(keys)}, "
                                 f"found {key!r}")  # fmt: skip
            self.expect(":")
            if kind == "int":
                out[key] = self.integer()
            elif kind == "str":
                out[key] = self.string()
            elif kind == "opsets":
                out[key] = self.opsets()
            else:
                out[key] = self.string_pairs()
            if not self.accept(","):
                break
        self.expect(">", "',' or '>'")
        return out

    def opsets(self) -> dict[str, int]:
        self.expect("[")
        out: dict[str, int] = {}
        if not self.accept("]"):
            while True:
                domain = self.string("an opset domain string")
                self.expect(":")
                out[domain] = self.integer("an opset version")
                if not self.accept(","):
                    break
            self.expect("]", "',' or ']'")
        return out

    def string_pairs(self) -> list[tuple[str, str]]:
        self.expect("[")
        out = []
        if not self.accept("]"):
            while True:
                key = self.string()
                self.expect(":")
                out.append((key, self.string()))
                if not self.accept(","):
                    break
            self.expect("]", "',' or ']'")
        return out

    # --- graphs --------------------------------------------------------------------------
    def graph(self) -> _GraphSyntax:
        pos = self.tok.pos
        name = self.quotable("a graph name")
        inputs, initializers = [], []
        self.expect("(", "'(' opening the graph inputs")
        if not self.accept(")"):
            while True:
                type_, vname, vpos = self.value_info()
                inputs.append((type_, vname, vpos))
                if self.accept("="):
                    initializers.append((vname, self.constant(type_, vname, vpos), vpos))
                if not self.accept(","):
                    break
            self.expect(")", "',' or ')'")
        self.expect("=>", "'=>'")
        outputs = []
        self.expect("(", "'(' opening the graph outputs")
        if not self.accept(")"):
            while True:
                outputs.append(self.value_info())
                if not self.accept(","):
                    break
            self.expect(")", "',' or ')'")
        value_info = []
        if self.accept("<") and not self.accept(">"):
            while True:
                type_, vname, vpos = self.value_info()
                if self.accept("="):
                    initializers.append((vname, self.constant(type_, vname, vpos), vpos))
                else:
                    value_info.append((type_, vname, vpos))
                if not self.accept(","):
                    break
            self.expect(">", "',' or '>'")
        nodes = self.nodes()
        return _GraphSyntax(pos, name, inputs, outputs, initializers, value_info, nodes)

    def value_info(self) -> tuple[Type | None, str, int]:
        type_ = self.type() if self.is_type_start() else None
        pos = self.tok.pos
        return type_, self.quotable("a value name"), pos

    def nodes(self) -> list[_NodeSyntax]:
        self.expect("{", "'{' opening the node list")
        nodes = []
        while not self.accept("}"):
            if self.tok.kind == "eof":
                raise self.error("a node or '}'")
            nodes.append(self.node())
        return nodes

    def node(self) -> _NodeSyntax:
        pos = self.tok.pos
        name = None
        if self.accept("["):
            name = "" if self.tok.kind == "]" else self.quotable("a node name")
            self.expect("]")
        outputs = self.id_list()
        self.expect("=", "'=' after the node outputs")
        parts = [self.ident("an operator name")]
        while self.accept("."):
            parts.append(self.ident("an operator name after '.'"))
        overload = ""
        if self.accept(":"):
            overload = self.ident("an overload name")
        attributes = self.attr_list() if self.tok.kind == "<" else []
        self.expect("(", "'(' opening the node inputs")
        inputs = self.id_list()
        self.expect(")", "',' or ')'")
        if not attributes and self.tok.kind == "<":
            attributes = self.attr_list()
        return _NodeSyntax(pos, name, outputs, ".".join(parts[:-1]), parts[-1], overload,
                           attributes, inputs)  # fmt: skip

    def id_list(self) -> list[str]:
        """Names separated by commas; an empty slot ('a, , b') or "" is an omitted value."""
        out: list[str] = []
        first = True
        while True:
            t = self.tok
            if t.kind == "str":
                out.append(unquote(self.next().text))
            elif t.kind == "id":
                out.append(self.next().text)
            elif t.kind == ",":
                out.append("")
            elif not first:
                return out  # a trailing comma
            else:
                return out
            first = False
            if not self.accept(","):
                return out

    # --- functions -----------------------------------------------------------------------
    def function(self) -> _FunctionSyntax:
        pos = self.tok.pos
        header = self.header(_FUNCTION_KEYS) if self.tok.kind == "<" else {}
        name = self.quotable("a function name")
        attributes, defaults = [], []
        if self.accept("<"):
            while True:
                aname = self.quotable("an attribute name")
                if self.tok.kind in (":", "="):
                    defaults.append(self.attribute(aname))
                else:
                    attributes.append(aname)
                if not self.accept(","):
                    break
            self.expect(">", "',' or '>'")
        value_info: list[tuple[Type | None, str, int]] = []
        inputs = self.function_io(value_info)
        self.expect("=>", "'=>'")
        outputs = self.function_io(value_info)
        if self.accept("<") and not self.accept(">"):
            while True:
                value_info.append(self.value_info())
                if not self.accept(","):
                    break
            self.expect(">", "',' or '>'")
        nodes = self.nodes()
        return _FunctionSyntax(pos, header, name, attributes, defaults, inputs, outputs,
                               value_info, nodes)  # fmt: skip

    def function_io(self, value_info: list) -> list[str]:
        self.expect("(")
        names: list[str] = []
        if not self.accept(")"):
            while True:
                type_, name, pos = self.value_info()
                names.append(name)
                if type_ is not None:
                    value_info.append((type_, name, pos))
                if not self.accept(","):
                    break
            self.expect(")", "',' or ')'")
        return names

    # --- types ---------------------------------------------------------------------------
    def type(self) -> Type:
        t = self.tok
        word = self.ident("a type")
        if word in PRIM_TYPES:
            return TensorType(PRIM_TYPES[word], self.shape_suffix())
        if word == "seq":
            self.expect("(")
            elem = self.type()
            self.expect(")")
            return SequenceType(elem)
        if word == "optional":
            self.expect("(")
            elem = self.type()
            self.expect(")")
            return OptionalType(elem)
        if word == "map":
            self.expect("(")
            k = self.tok
            key = self.ident("a map key type")
            if key not in PRIM_TYPES:
                raise self.error("a primitive map key type", k)
            self.expect(",")
            value = self.type()
            self.expect(")")
            return MapType(PRIM_TYPES[key], value)
        if word == "sparse_tensor":
            self.expect("(")
            k = self.tok
            elem = self.ident("an element type")
            if elem not in PRIM_TYPES:
                raise self.error("a primitive element type", k)
            shape = self.shape_suffix()
            self.expect(")")
            return SparseTensorType(PRIM_TYPES[elem], shape)
        if word == "opaque":
            self.expect("(")
            domain = name = ""
            if not self.accept(")"):
                name = self.dotted()
                if self.accept(","):
                    domain, name = name, self.dotted()
                self.expect(")")
            return OpaqueType(domain, name)
        raise self.error("a type (float, int64[N], seq(...), map(...), ...)", t)

    def dotted(self) -> str:
        parts = [self.ident()]
        while self.accept("."):
            parts.append(self.ident())
        return ".".join(parts)

    def shape_suffix(self) -> Shape | None:
        """'' is a scalar (rank 0), '[]' an unknown rank, '[N, 3, ?]' a known rank."""
        if not self.accept("["):
            return Shape(())
        if self.accept("]"):
            return None
        dims: list[Any] = []
        while True:
            t = self.tok
            if self.accept("?"):
                dims.append(None)
            elif t.kind in ("id", "str"):
                dims.append(self.quotable())
            else:
                dims.append(self.integer("a dimension (an integer, a name or '?')"))
            if not self.accept(","):
                break
        self.expect("]", "',' or ']'")
        return Shape(dims)

    # --- constants -----------------------------------------------------------------------
    def constant(self, type_: Type | None, name: str, pos: int) -> Tensor | SparseTensor:
        """The data after a declared type: '{v, ...}' or external data '["location": ...]'."""
        if isinstance(type_, SparseTensorType):
            return self.sparse_body(type_, name, pos)
        if not isinstance(type_, TensorType):
            raise ParseError(f"{self.where.at(pos)}: a constant needs a tensor type")
        if type_.shape is None or not all(isinstance(d, int) for d in type_.shape.dims):
            raise ParseError(f"{self.where.at(pos)}: a constant needs numeric dims, not "
                             f"{type_.dtype.short_name}{type_.shape or '[]'}")  # fmt: skip
        dims = tuple(type_.shape.dims)
        if self.tok.kind == "[":
            entries = dict(self.string_pairs())
            try:
                offset = int(entries.get("offset", 0))
                length = int(entries["length"]) if "length" in entries else None
            except ValueError:
                raise self.error("integer offset and length of external data") from None
            ext = ExternalData(entries.get("location", ""), offset, length, "", entries)
            return Tensor.stored(name, int(type_.dtype), dims, external=ext)
        self.expect("{", "'{' opening tensor data")
        values: list[Token] = []
        if not self.accept("}"):
            while True:
                t = self.tok
                if t.kind == "id" and t.text.lower() in SPECIAL_FLOATS:
                    self.i += 1
                elif t.kind not in ("num", "str"):
                    raise self.error("a number or string")
                else:
                    self.i += 1
                values.append(t)
                if not self.accept(","):
                    break
            self.expect("}", "',' or '}'")
        return self._tensor(type_.dtype, dims, name, values, pos)

    def _tensor(
        self, dt: DataType, dims: tuple, name: str, values: list[Token], pos: int
    ) -> Tensor:
        count = int(np.prod(dims, dtype=np.int64)) if dims else 1
        expected = 2 * count if dt in (DataType.COMPLEX64, DataType.COMPLEX128) else count
        if values and len(values) != expected:
            raise ParseError(f"{self.where.at(pos)}: tensor {name!r} of dims {list(dims)} needs "
                             f"{expected} values, found {len(values)}")  # fmt: skip
        if not values:
            return Tensor.stored(name, int(dt), dims)
        texts = [t.text for t in values]
        if dt == DataType.STRING:
            bad = [t for t in values if t.kind != "str"]
            if bad:
                raise self.error("a string literal", bad[0])
            data = [unquote(s).encode("utf-8", "surrogateescape") for s in texts]
            return Tensor.stored(name, int(dt), dims, field=("string_data", data))
        bad = [t for t in values if t.kind == "str"]
        if bad:
            raise self.error("a number", bad[0])
        field = typed_field(dt)
        if field in ("float_data", "double_data"):
            arr = np.array(texts, np.float32 if field == "float_data" else np.float64)
            return Tensor.stored(name, int(dt), dims, field=(field, arr))
        ints = [self._int_token(t) for t in values]
        if dt in dtypes.SUB_BYTE:
            if dt in _BITS_AS_INT:
                arr = np.array(ints, np.int64).astype(np.uint8).view(dtypes.to_numpy(dt))
            else:
                arr = np.array(ints, np.int64).astype(dtypes.to_numpy(dt))
            t = Tensor(arr.reshape(dims), name, dtype=dt)
            return t
        if field == "uint64_data":
            return Tensor.stored(name, int(dt), dims, field=(field, np.array(ints, np.uint64)))
        return Tensor.stored(name, int(dt), dims, field=(field, np.array(ints, np.int64)))

    def _int_token(self, t: Token) -> int:
        if t.kind != "num" or not _is_int(t.text):
            raise self.error("an integer", t)
        return int(t.text)

    def sparse_body(self, type_: SparseTensorType, name: str, pos: int) -> SparseTensor:
        """'{values-tensor, indices-tensor}' after a sparse_tensor(...) type (an onyx extension)."""
        if type_.shape is None or not all(isinstance(d, int) for d in type_.shape.dims):
            raise ParseError(f"{self.where.at(pos)}: a sparse constant needs numeric dims")
        self.expect("{", "'{' opening sparse tensor data")
        values = self.tensor_constant()
        self.expect(",")
        indices = self.tensor_constant()
        self.expect("}")
        if name and not values.name:
            values.name = name
        return SparseTensor(values, indices, type_.shape.dims)

    def tensor_constant(self) -> Tensor | SparseTensor:
        """``type name? '='? data`` as in a tensor attribute."""
        pos = self.tok.pos
        type_ = self.type()
        name = ""
        if self.tok.kind in ("id", "str"):
            name = self.quotable()
        self.accept("=")
        return self.constant(type_, name, pos)

    # --- attributes ----------------------------------------------------------------------
    def attr_list(self) -> list[Attribute]:
        self.expect("<")
        attrs = []
        while True:
            attrs.append(self.attribute(self.quotable("an attribute name")))
            if not self.accept(","):
                break
        self.expect(">", "',' or '>'")
        return attrs

    def attribute(self, name: str) -> Attribute:
        declared = AttrType.UNDEFINED
        if self.accept(":"):
            t = self.tok
            word = self.ident("an attribute type")
            if word not in ATTR_TYPES:
                raise self.error("an attribute type (" + ", ".join(ATTR_TYPES) + ")", t)
            declared = ATTR_TYPES[word]
        self.expect("=", "'=' and the attribute value")
        if self.tok.kind == "@":
            self.next()
            return Attribute(name, declared, None, self.quotable("an attribute name after '@'"))
        if self.tok.kind == "[":
            start = self.next()
            elem = _LIST_OF.get(declared, declared)
            if declared != AttrType.UNDEFINED and declared not in _LIST_OF:
                raise self.error(f"a single {declared.name.lower()} value, not a list", start)
            items: list[tuple[AttrType, Any]] = []
            if self.tok.kind == "]":
                if declared == AttrType.UNDEFINED:
                    raise self.error("a type annotation (name: ints = []) for an empty list", start)
            else:
                while True:
                    items.append(self.single_value(elem))
                    if not self.accept(","):
                        break
            self.expect("]", "',' or ']'")
            kinds = {k for k, _ in items}
            if declared == AttrType.UNDEFINED:
                if kinds == {AttrType.INT, AttrType.FLOAT}:
                    kinds, items = {AttrType.FLOAT}, [(AttrType.FLOAT, float(v)) for _, v in items]
                if len(kinds) != 1:
                    raise self.error("list elements of one kind", start)
                declared = _LIST_FOR[kinds.pop()]
            return Attribute(name, declared, [v for _, v in items])
        kind, value = self.single_value(declared)
        return Attribute(name, kind, value)

    def single_value(self, expected: AttrType) -> tuple[AttrType, Any]:
        t = self.tok
        if expected == AttrType.GRAPH:
            return expected, self.graph()
        if expected in (AttrType.TENSOR, AttrType.SPARSE_TENSOR):
            value = self.tensor_constant()
            if isinstance(value, SparseTensor) != (expected == AttrType.SPARSE_TENSOR):
                raise self.error(f"a {expected.name.lower()} constant", t)
            return expected, value
        if expected == AttrType.TYPE_PROTO:
            return expected, self.type()
        if t.kind == "id" and t.text.lower() not in SPECIAL_FLOATS:
            if self.is_type_start():
                type_ = self.type()
                if self.tok.kind in ("{", "=", "id", "str"):
                    name = self.quotable() if self.tok.kind in ("id", "str") else ""
                    self.accept("=")
                    value = self.constant(type_, name, t.pos)
                    kind = (
                        AttrType.SPARSE_TENSOR
                        if isinstance(value, SparseTensor)
                        else AttrType.TENSOR
                    )
                else:
                    kind, value = AttrType.TYPE_PROTO, type_
            else:
                kind, value = AttrType.GRAPH, self.graph()
        elif t.kind == "str":
            kind, value = AttrType.STRING, unquote(self.next().text)
        elif t.kind in ("num", "id"):
            self.next()
            if expected == AttrType.FLOAT or not _is_int(t.text):
                kind, value = AttrType.FLOAT, float(np.float32(t.text))
            else:
                kind, value = AttrType.INT, int(t.text)
        else:
            raise self.error("an attribute value")
        if expected != AttrType.UNDEFINED and kind != expected:
            raise self.error(f"a {expected.name.lower()} value", t)
        return kind, value


_MODEL_KEYS = {
    "ir_version": "int", "opset_import": "opsets", "producer_name": "str",
    "producer_version": "str", "domain": "str", "model_version": "int", "doc_string": "str",
    "metadata_props": "pairs",
}  # fmt: skip
_FUNCTION_KEYS = {"domain": "str", "opset_import": "opsets", "overload": "str",
                  "doc_string": "str", "metadata_props": "pairs"}  # fmt: skip


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


# ============================================================================================
# builder: syntax tree -> IR
# ============================================================================================
class _Builder:
    def __init__(self, where: Position):
        self.where = where

    def at(self, pos: int) -> str:
        return self.where.at(pos)

    def model(self, m: _ModelSyntax) -> Model:
        h = m.header
        model = Model(
            graph=self.graph(m.graph, Scope(None)),
            ir_version=h.get("ir_version", 0),
            opset_imports=h.get("opset_import", {}),
            producer_name=h.get("producer_name", ""),
            producer_version=h.get("producer_version", ""),
            domain=h.get("domain", ""),
            model_version=h.get("model_version", 0),
            doc_string=h.get("doc_string", ""),
            metadata_props=dict(h.get("metadata_props", [])),
        )
        for key in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                    "doc_string"):  # fmt: skip
            if key in h and not h[key]:
                model.present.add(key)
        for f in m.functions:
            fn = self.function(f)
            if fn.id in model.functions:
                raise GraphError(f"{self.at(f.pos)}: function {fn.domain}::{fn.name} defined twice")
            model.functions[fn.id] = fn
        return model

    def function(self, f: _FunctionSyntax) -> Function:
        scope = Scope(None)
        g = Graph(inputs=[self.define(scope, Value(n), f.pos) for n in f.inputs])
        self.nodes(g, f.nodes, scope)
        g.outputs = [self.use(scope, n, f.pos, f"function output {n!r}") for n in f.outputs]
        for type_, name, _ in f.value_info:
            value = scope.find(name) or Value(name)
            value.type = type_
            g.value_info.append(value)
        h = f.header
        return Function(
            domain=h.get("domain", ""), name=f.name, graph=g, attributes=list(f.attributes),
            attribute_defaults={a.name: self.attribute(a, scope) for a in f.attribute_defaults},
            opset_imports=h.get("opset_import", {}), overload=h.get("overload", ""),
            doc_string=h.get("doc_string", ""), metadata_props=dict(h.get("metadata_props", [])),
        )  # fmt: skip

    def graph(self, s: _GraphSyntax, scope: Scope) -> Graph:
        g = Graph(name=s.name)
        for type_, name, pos in s.inputs:
            g.inputs.append(self.define(scope, Value(name, type_), pos))
        for name, tensor, pos in s.initializers:
            value = scope.values.get(name)
            if value is None or value not in g.inputs or value.const_value is not None:
                value = self.define(scope, Value(name), pos)
            value.const_value = tensor
            g.add_initializer(value)
        self.nodes(g, s.nodes, scope)
        for type_, name, pos in s.outputs:
            value = self.use(scope, name, pos, f"graph output {name!r}")
            if type_ is not None:
                value.type = type_
            g.outputs.append(value)
        for type_, name, _ in s.value_info:
            value = scope.find(name) or Value(name)
            value.type = type_
            g.value_info.append(value)
        saved = list(g.nodes)
        try:
            g.sort()
        finally:
            g.nodes[:] = saved
        return g

    def nodes(self, g: Graph, nodes: list[_NodeSyntax], scope: Scope) -> None:
        built = []
        for n in nodes:
            outputs = [self.define(scope, Value(o), n.pos) if o else None for o in n.outputs]
            node = Node(n.op_type, (), outputs, domain=n.domain, name=n.name or "",
                        overload=n.overload)  # fmt: skip
            if n.name == "":
                node.present.add("name")
            g.append(node)
            built.append((node, n))
        for node, n in built:
            for name in n.inputs:
                label = f"node {n.name or n.op_type!r}"
                node.append_input(
                    self.use(scope, name, n.pos, f"{label} input {name!r}") if name else None
                )
            for a in n.attributes:
                node.attributes[a.name] = self.attribute(a, scope)
            for sub in node.subgraphs():
                sub.parent = node

    def attribute(self, a: Attribute, scope: Scope) -> Attribute:
        if a.type == AttrType.GRAPH and isinstance(a.value, _GraphSyntax):
            a.value = self.graph(a.value, Scope(scope))
        elif a.type == AttrType.GRAPHS and a.value:
            a.value = [self.graph(s, Scope(scope)) for s in a.value]
        if a.is_ref and a.type == AttrType.UNDEFINED:
            a.present.add("-type")
        return a

    def define(self, scope: Scope, value: Value, pos: int) -> Value:
        if value.name in scope.values:
            raise GraphError(f"{self.at(pos)}: value {value.name!r} is defined twice")
        scope.values[value.name] = value
        return value

    def use(self, scope: Scope, name: str, pos: int, what: str) -> Value:
        value = scope.find(name)
        if value is None:
            raise GraphError(f"{self.at(pos)}: {what} uses undefined value {name!r}")
        return value
