"""What every pass shares: results, the fixed-point driver, graph walking and small edits.

A pass edits a model in place and says whether it changed anything (``PassResult``); a level is
a ``Fixpoint`` of passes repeated until none changes anything. Graph passes see one graph at a
time (the main graph, every subgraph, every model-local function body) through a ``Site``: the
graph, its opset, whether it may hold initializers, and the model-wide namer.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from onyx.dtypes import from_numpy
from onyx.errors import OnyxError, PassError
from onyx.ir import Attribute, Graph, Model, Node, Tensor, Value, tensor_type
from onyx.ir.attribute import AttrType, infer_attr_type

#: Domains whose operators are standard (a fusion never emits anything else).
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})


@dataclasses.dataclass
class PassResult:
    """What one pass did: whether anything changed, and counts by what was done."""

    changed: bool = False
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, other: PassResult) -> PassResult:
        self.changed |= other.changed
        self.counts.update(other.counts)
        return self


class Pass(Protocol):
    """A rewrite of a model in place (``onyx.optimize`` copies the model once, first)."""

    name: str

    def __call__(self, model: Model, options: Options) -> PassResult: ...


#: How many bytes a folded result may take beyond its constant inputs, unless it is a weight
#: (``basic.is_weight``): about what the node it replaces costs in the file.
FOLD_LIMIT = 1 << 10


@dataclasses.dataclass
class Options:
    """Settings every pass may read."""

    fold_limit: int = FOLD_LIMIT  # bytes a folded non-weight may take beyond its inputs' size
    inline: bool = False  # inline model-local functions
    explain: list[str] | None = None  # where rules say why they did not fire
    progress: Any = None  # called with each pass's name as it starts, and None at the end
    declared: set = dataclasses.field(default_factory=set)  # value_info the input model had
    known: dict = dataclasses.field(default_factory=dict)  # value -> array, from inference
    # initializers that are also graph inputs count as constants (the runtime runs a copy of
    # the graph made so, and the unoptimized one when a feed overrides such an initializer)
    fixed_initializers: bool = False
    # operators that fusions emit whatever opset the model imports (the runtime's own plan,
    # which runs those nodes in a domain of its own; see optimize_for_session)
    newer_ops: frozenset = frozenset()
    # fold a step into a BatchNormalization whose scale or bias is also read elsewhere, which
    # adds new vectors beside them: the runtime's plan wants the fewer steps, a file the
    # fewer bytes (affine._fold_one)
    copy_shared: bool = False


class Namer:
    """Fresh value and node names, unique across the whole model."""

    def __init__(self, model: Model):
        self.used: set[str] = set()
        for g in all_graphs(model):
            self.used.update(v.name for v in (*g.inputs, *g.outputs, *g.initializers.values()))
            for node in g.nodes:
                self.used.update(v.name for v in node.outputs if v is not None)
                self.used.add(node.name)
        self.count = 0

    def __call__(self, hint: str) -> str:
        base = hint.split("__opt")[0] or "v"
        while True:
            self.count += 1
            name = f"{base}__opt{self.count}"
            if name not in self.used:
                self.used.add(name)
                return name


@dataclasses.dataclass
class Site:
    """One graph as a pass sees it."""

    model: Model
    graph: Graph
    opsets: dict[str, int]
    namer: Namer
    options: Options
    in_function: bool = False  # function bodies cannot hold initializers
    overridable: frozenset = frozenset()  # initializers that are also inputs (fed at run time)

    @property
    def opset(self) -> int:
        return self.opsets.get("", self.opsets.get("ai.onnx", 1))

    def const(self, value: Value | None) -> np.ndarray | None:
        """The constant array ``value`` holds (an initializer or a Constant's output), else None."""
        return const_array(value, self.overridable)

    def new_const(
        self, array: np.ndarray, hint: str = "const", before: Node | None = None
    ) -> Value:
        """A constant holding ``array``: an initializer, or a Constant node in a function body."""
        array = np.asarray(array)
        name = self.namer(hint)
        if not self.in_function:
            value = Value(name, tensor_type(from_numpy(array.dtype), array.shape),
                          const_value=Tensor(array, name))  # fmt: skip
            return self.graph.add_initializer(value)
        value = Value(name, tensor_type(from_numpy(array.dtype), array.shape))
        node = Node("Constant", [], [value], {"value": Tensor(array)}, name=self.namer("Constant"))
        if before is not None and before.graph is self.graph:
            self.graph.insert_before(before, node)
        else:
            self.graph.insert(0, node)
        return value

    def node(self, op_type: str, inputs: Sequence[Value | None], attributes: dict | None = None,
             *, before: Node, outputs: int = 1, hint: str | None = None,
             domain: str = "") -> list[Value]:  # fmt: skip
        """Insert a new node before ``before``; return its outputs."""
        outs = [Value(self.namer(hint or op_type.lower())) for _ in range(outputs)]
        attrs = [Attribute(k, infer_attr_type(v), _attr(v)) for k, v in (attributes or {}).items()
                 if v is not None]  # fmt: skip
        node = Node(op_type, list(inputs), outs, attrs, domain=domain, name=self.namer(op_type))
        self.graph.insert_before(before, node)
        return outs


def _attr(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return Tensor(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


# --- reading --------------------------------------------------------------------------------
_CONSTANT_ATTRS = {"value_float": np.float32, "value_int": np.int64,
                   "value_floats": np.float32, "value_ints": np.int64}  # fmt: skip


def const_array(value: Value | None, overridable: frozenset = frozenset()) -> np.ndarray | None:
    """The array a value always holds: a (non-overridable) initializer or a Constant's output."""
    if value is None:
        return None
    node = value.producer
    if node is None:
        c = value.const_value
        if c is None or value in overridable or not isinstance(c, Tensor):
            return None
        try:
            return c.numpy()
        except OnyxError:
            return None
    if (
        node.op_type != "Constant"
        or node.domain not in ("", "ai.onnx")
        or len(node.attributes) != 1
    ):
        return None
    (attr,) = node.attributes.values()
    if attr.is_ref:
        return None
    if attr.name == "value" and isinstance(attr.value, Tensor):
        try:
            return attr.value.numpy()
        except OnyxError:
            return None
    if attr.name in _CONSTANT_ATTRS:
        return np.asarray(attr.value, _CONSTANT_ATTRS[attr.name])
    return None


def all_graphs(model: Model) -> Iterator[Graph]:
    """The main graph, every function body, and every subgraph inside them."""
    for top in (model.graph, *(f.graph for f in model.functions.values())):
        yield top
        for node in top.all_nodes():
            yield from node.subgraphs()


def sites(model: Model, options: Options, namer: Namer | None = None) -> Iterator[Site]:
    """Each graph of the model as a Site: subgraphs before the graph that holds them."""
    namer = namer or Namer(model)
    overridable = (
        frozenset()
        if options.fixed_initializers
        else frozenset(v for g in all_graphs(model) for v in g.inputs if v.const_value is not None)
    )
    opsets = {("" if k == "ai.onnx" else k): v for k, v in model.opset_imports.items()}

    def walk(g: Graph, ops: dict, in_function: bool) -> Iterator[Site]:
        for node in list(g.nodes):
            for sub in node.subgraphs():
                yield from walk(sub, ops, in_function)
        yield Site(model, g, ops, namer, options, in_function, overridable)

    yield from walk(model.graph, opsets, False)
    for fn in list(model.functions.values()):
        ops = {**opsets, **{("" if k == "ai.onnx" else k): v for k, v in fn.opset_imports.items()}}
        yield from walk(fn.graph, ops, True)


# --- editing --------------------------------------------------------------------------------
def renamable(graph: Graph, new: Value) -> bool:
    """Whether ``new`` may take a graph output's name (a result of a node of this graph)."""
    return (
        new.producer is not None
        and new.producer.graph is graph
        and new not in graph.outputs
        and new not in graph.inputs
    )


def can_bypass(graph: Graph, old: Value, new: Value) -> bool:
    """Whether readers of ``old`` can read ``new`` instead without adding a node."""
    return old not in graph.outputs or renamable(graph, new)


def replace_value(graph: Graph, old: Value, new: Value, site: Site | None = None) -> None:
    """Make every reader of ``old`` read ``new``; a graph output keeps its name (and type)."""
    for node, i in old.uses:
        node.set_input(i, new)
    if old not in graph.outputs:
        return
    if not renamable(graph, new):
        # an input, initializer, outer value or another output: an Identity keeps the name
        ident = Value(old.name, old.type)
        anchor = old.producer
        node = Node("Identity", [new], [ident], name=site.namer("Identity") if site else "")
        if anchor is not None and anchor.graph is graph:
            graph.insert_after(anchor, node)
        else:
            graph.append(node)
        graph.outputs[:] = [ident if v is old else v for v in graph.outputs]
        old.name = old.name + "__replaced"
        return
    name, kind = old.name, old.type
    old.name = old.name + "__replaced"
    new.name = name
    if kind is not None:
        new.type = kind
    graph.outputs[:] = [new if v is old else v for v in graph.outputs]


def remove_node(node: Node) -> None:
    """Take ``node`` out of its graph, unlinking what it and its subgraphs read."""
    for sub in node.subgraphs():
        for inner in list(sub.all_nodes()):
            inner._detach()
    node.graph.remove(node, safe=False)


def is_used(value: Value | None, graph: Graph) -> bool:
    return value is not None and (bool(value._uses) or value in graph.outputs)


def remove_dead(graph: Graph, nodes: Sequence[Node]) -> int:
    """Remove those of ``nodes`` (and what they alone fed, among them) whose results nobody reads."""
    pending = [n for n in nodes if n.graph is graph]
    removed = 0
    progress = True
    while progress:
        progress = False
        for node in list(pending):
            if node.graph is not graph:
                pending.remove(node)
                continue
            if not any(is_used(v, graph) for v in node.outputs):
                remove_node(node)
                pending.remove(node)
                removed += 1
                progress = True
    return removed


def set_attr(node: Node, name: str, value: Any) -> None:
    """Set (or, with None, remove) attribute ``name`` of ``node``."""
    if value is None:
        node.attributes.pop(name, None)
        return
    kind = infer_attr_type(value)
    if kind == AttrType.UNDEFINED:
        raise PassError(f"cannot store attribute {name!r} of {node!r}: {value!r}")
    node.attributes[name] = Attribute(name, kind, _attr(value))


def static_shape(value: Value | None) -> tuple | None:
    """The dims of ``value``'s tensor type (ints, symbols or None), or None when rank is unknown."""
    t = getattr(value, "type", None)
    shape = getattr(t, "shape", None)
    return None if shape is None else tuple(shape.dims)


def elem_type(value: Value | None):
    t = getattr(value, "type", None)
    return getattr(t, "dtype", None)


def graph_pass(name: str):
    """Turn ``fn(site) -> Counter | int`` into a Pass that runs it on every graph of a model."""

    def wrap(fn):
        class _GraphPass:
            def __call__(self, model: Model, options: Options) -> PassResult:
                result = PassResult()
                for site in sites(model, options):
                    try:
                        got = fn(site)
                    except OnyxError:
                        raise
                    except Exception as e:  # a bug in a pass names the pass and the graph
                        raise PassError(f"pass {name!r} failed on graph {site.graph.path()!r}: "
                                        f"{type(e).__name__}: {e}") from e  # fmt: skip
                    if isinstance(got, int):
                        got = collections.Counter({name: got} if got else {})
                    if got:
                        result.changed = True
                        result.counts.update(got)
                return result

        _GraphPass.name = name
        _GraphPass.__doc__ = fn.__doc__
        _GraphPass.__name__ = fn.__name__
        return _GraphPass()

    return wrap


class Fixpoint:
    """A level: run the passes in order, again and again, until none changes anything."""

    def __init__(self, passes: Sequence[Pass], rounds: int = 12, name: str = "level"):
        self.passes, self.rounds, self.name = list(passes), rounds, name

    def __call__(self, model: Model, options: Options) -> PassResult:
        total = PassResult()
        for _ in range(self.rounds):
            changed = False
            for p in self.passes:
                if options.progress is not None:
                    options.progress(p.name)
                r = p(model, options)
                total.add(r)
                changed |= r.changed
            if not changed:
                return total
        names = ", ".join(p.name for p in self.passes)
        raise PassError(
            f"{self.name} ({names}): no fixed point after {self.rounds} rounds; "
            f"last counts {dict(total.counts)}"
        )
