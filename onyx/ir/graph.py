"""Values, nodes and graphs, with use-def links that the mutation methods keep true.

A ``Value`` knows its ``producer`` (the node whose output it is, or None for graph inputs and
initializers) and its ``uses`` ((node, input index) pairs). A subgraph (an attribute of a node)
refers to outer-scope values by using the very same Value objects.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from onyx.errors import GraphError
from onyx.ir.attribute import Attribute, AttrType, infer_attr_type
from onyx.ir.tensor import SparseTensor, Tensor
from onyx.ir.types import Type


class Value:
    """A named edge of the graph: produced once, used any number of times."""

    __slots__ = (
        "_uses",
        "const_value",
        "doc_string",
        "index",
        "metadata_props",
        "name",
        "present",
        "producer",
        "type",
    )  # fmt: skip

    def __init__(self, name: str = "", type: Type | None = None, *, doc_string: str = "",
                 metadata_props: dict[str, str] | None = None,
                 const_value: Tensor | SparseTensor | None = None):  # fmt: skip
        self.name = name
        self.type = type
        self.doc_string = doc_string
        self.metadata_props = dict(metadata_props or {})
        self.producer: Node | None = None
        self.index: int | None = None  # output index in the producer
        self.const_value = const_value  # the tensor of an initializer
        self.present: set[str] = set()  # value-info fields a file set to their default explicitly
        self._uses: dict[tuple[Node, int], None] = {}

    @property
    def uses(self) -> list[tuple[Node, int]]:
        """The (node, input index) pairs that read this value, in the order they were linked."""
        return list(self._uses)

    def replace_all_uses_with(self, other: Value) -> None:
        """Make every node that reads this value read ``other`` instead (graph outputs too)."""
        for node, i in list(self._uses):
            node.set_input(i, other)
        graph = self.producer.graph if self.producer is not None else None
        if graph is not None:
            graph.outputs[:] = [other if v is self else v for v in graph.outputs]

    def __repr__(self) -> str:
        return f"Value({self.name!r}{', ' + str(self.type) if self.type else ''})"


class Node:
    """One call of an operator: ``op_type`` in ``domain`` with inputs, outputs and attributes."""

    def __init__(
        self,
        op_type: str,
        inputs: Sequence[Value | None] = (),
        outputs: Sequence[Value | None] | int = 1,
        attributes: dict[str, Any] | Iterable[Attribute] | None = None,
        *,
        domain: str = "",
        name: str = "",
        overload: str = "",
        doc_string: str = "",
        metadata_props: dict[str, str] | None = None,
        device_configurations: list[dict] | None = None,
    ):
        self.op_type, self.domain, self.name, self.overload = op_type, domain, name, overload
        self.doc_string = doc_string
        self.metadata_props = dict(metadata_props or {})
        self.device_configurations = list(device_configurations or [])
        self.graph: Graph | None = None
        self.present: set[str] = set()  # fields a file set to their default value explicitly
        self.attributes: dict[str, Attribute] = {}
        if attributes is not None:
            items = attributes.values() if isinstance(attributes, dict) else attributes
            names = attributes.keys() if isinstance(attributes, dict) else None
            for key, attr in zip(names or [None] * len(list(items)), items):
                if not isinstance(attr, Attribute):
                    attr = Attribute(key, infer_attr_type(attr), attr)
                self.attributes[attr.name] = attr
        for attr in self.attributes.values():
            for g in _graphs_of(attr):
                g.parent = self
        self._inputs: list[Value | None] = []
        for value in inputs:
            self._inputs.append(value)
            if value is not None:
                value._uses[(self, len(self._inputs) - 1)] = None
        if isinstance(outputs, int):
            outputs = [Value() for _ in range(outputs)]
        self._outputs: list[Value | None] = list(outputs)
        for i, value in enumerate(self._outputs):
            if value is not None:
                if value.producer is not None:
                    raise GraphError(f"value {value.name!r} already has a producer")
                value.producer, value.index = self, i

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value | None, ...]:
        return tuple(self._outputs)

    def set_input(self, index: int, value: Value | None) -> None:
        """Point input ``index`` at ``value``, keeping both values' uses true."""
        old = self._inputs[index]
        if old is not None:
            old._uses.pop((self, index), None)
        self._inputs[index] = value
        if value is not None:
            value._uses[(self, index)] = None

    def append_input(self, value: Value | None) -> None:
        self._inputs.append(None)
        self.set_input(len(self._inputs) - 1, value)

    def attribute(self, name: str, default: Any = None) -> Any:
        """The value of attribute ``name`` (``default`` when absent)."""
        attr = self.attributes.get(name)
        return default if attr is None else attr.value

    def subgraphs(self) -> Iterator[Graph]:
        for attr in self.attributes.values():
            yield from _graphs_of(attr)

    def _detach(self) -> None:
        for i, value in enumerate(self._inputs):
            if value is not None:
                value._uses.pop((self, i), None)

    def __repr__(self) -> str:
        ins = ", ".join("" if v is None else v.name for v in self._inputs)
        outs = ", ".join("" if v is None else v.name for v in self._outputs)
        label = f"{self.domain}::{self.op_type}" if self.domain else self.op_type
        return f"Node({self.name!r}: {outs} = {label}({ins}))"


def _graphs_of(attr: Attribute) -> list[Graph]:
    if attr.type == AttrType.GRAPH and attr.value is not None:
        return [attr.value]
    if attr.type == AttrType.GRAPHS:
        return list(attr.value or [])
    return []


class Scope:
    """The names visible in a graph while it is read: its own values, then the enclosing graphs'."""

    def __init__(self, outer: Scope | None = None):
        self.outer: Scope | None = outer
        self.values: dict[str, Value] = {}

    def find(self, name: str) -> Value | None:
        scope = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.outer
        return None


class Graph:
    """A list of nodes over values, with inputs, outputs and initializers (name -> Value)."""

    def __init__(
        self,
        inputs: Sequence[Value] = (),
        outputs: Sequence[Value] = (),
        nodes: Iterable[Node] = (),
        initializers: Iterable[Value] = (),
        *,
        name: str = "",
        doc_string: str = "",
        metadata_props: dict[str, str] | None = None,
    ):
        self.name, self.doc_string = name, doc_string
        self.metadata_props = dict(metadata_props or {})
        self.inputs: list[Value] = list(inputs)
        self.outputs: list[Value] = list(outputs)
        self.initializers: dict[str, Value] = {}
        self.sparse_initializers: dict[str, Value] = {}
        self.value_info: list[Value] = []  # values with a declared type, in file order
        self.quantization_annotation: list[tuple[str, dict[str, str]]] = []
        self.parent: Node | None = None  # the node whose attribute this graph is
        self.present: set[str] = set()  # fields a file set to their default value explicitly
        self.nodes: list[Node] = []
        for value in initializers:
            self.add_initializer(value)
        for node in nodes:
            self.append(node)

    # --- editing ---------------------------------------------------------------------------
    def add_initializer(self, value: Value) -> Value:
        """Add a constant; ``value.const_value`` must hold its Tensor (or SparseTensor)."""
        if value.const_value is None:
            raise GraphError(f"initializer {value.name!r} has no const_value")
        table = (
            self.sparse_initializers
            if isinstance(value.const_value, SparseTensor)
            else self.initializers
        )
        if value.name in table:
            raise GraphError(f"initializer {value.name!r} defined twice in graph {self.name!r}")
        table[value.name] = value
        return value

    def append(self, node: Node) -> Node:
        return self.insert(len(self.nodes), node)

    def insert(self, index: int, node: Node) -> Node:
        """Insert ``node`` at position ``index`` of the node list."""
        if node.graph is not None:
            raise GraphError(f"{node!r} already belongs to a graph")
        node.graph = self
        self.nodes.insert(index, node)
        return node

    def insert_before(self, anchor: Node, node: Node) -> Node:
        return self.insert(self.nodes.index(anchor), node)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        return self.insert(self.nodes.index(anchor) + 1, node)

    def remove(self, node: Node, *, safe: bool = True) -> None:
        """Remove ``node``; with ``safe``, refuse while its outputs are still used or are outputs."""
        if safe:
            for value in node.outputs:
                if value is not None and (value._uses or value in self.outputs):
                    raise GraphError(
                        f"cannot remove {node!r}: its output {value.name!r} is still used"
                    )
        self.nodes.remove(node)
        node._detach()
        node.graph = None
        for value in node.outputs:
            if value is not None:
                value.producer = None

    # --- reading ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def all_nodes(self) -> Iterator[Node]:
        """Every node here and in nested subgraphs, depth first."""
        for node in self.nodes:
            yield node
            for sub in node.subgraphs():
                yield from sub.all_nodes()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def path(self) -> str:
        """Where this graph sits: 'main' or e.g. 'main/If_0.then_branch'."""
        if self.parent is None or self.parent.graph is None:
            return self.name or "main"
        for attr in self.parent.attributes.values():
            if self in _graphs_of(attr):
                label = self.parent.name or self.parent.op_type
                return f"{self.parent.graph.path()}/{label}.{attr.name}"
        return self.name

    def sort(self) -> None:
        """Order nodes topologically (stable: ties keep their current order); GraphError on a cycle."""
        position = {node: i for i, node in enumerate(self.nodes)}
        deps: dict[Node, set[Node]] = {node: set() for node in self.nodes}
        for node in self.nodes:
            for value in node.inputs:
                if value is not None and value.producer is node:
                    raise GraphError(
                        f"{node!r} reads its own output: a cycle in graph {self.path()!r}"
                    )
            for value in _reads(node):
                producer = _enclosing_producer(value, self)
                if producer is not None and producer is not node:
                    deps[node].add(producer)
        users: dict[Node, list[Node]] = {node: [] for node in self.nodes}
        for node, ds in deps.items():
            for d in ds:
                users[d].append(node)
        waiting = {node: len(ds) for node, ds in deps.items()}
        ready = [(position[n], id(n), n) for n, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, _, node = heapq.heappop(ready)
            order.append(node)
            for user in users[node]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, (position[user], id(user), user))
        if len(order) != len(self.nodes):
            stuck = [n for n in self.nodes if waiting[n] > 0]
            names = ", ".join(n.name or n.op_type for n in stuck[:5])
            raise GraphError(f"graph {self.path()!r} has a cycle through nodes: {names}")
        self.nodes[:] = order

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.nodes)} nodes)"

    def __str__(self) -> str:
        from onyx.text import print_graph

        return print_graph(self, max_elements=16)  # for reading: big tensors abbreviated


def _reads(node: Node) -> Iterator[Value]:
    """Values a node reads: its inputs and the outer-scope values its subgraphs use."""
    for value in node.inputs:
        if value is not None:
            yield value
    for sub in node.subgraphs():
        for inner in sub.all_nodes():
            for value in inner.inputs:
                if value is not None:
                    yield value


def _enclosing_producer(value: Value, graph: Graph) -> Node | None:
    """The node of ``graph`` that produces ``value`` (directly or as an ancestor of its producer)."""
    node = value.producer
    while node is not None and node.graph is not graph:
        parent_graph = node.graph
        node = parent_graph.parent if parent_graph is not None else None
    return node
