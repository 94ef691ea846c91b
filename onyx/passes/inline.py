"""Function inlining: a call of a model-local function becomes the nodes of its body."""

from __future__ import annotations

import collections

from onyx.ir import Attribute, Graph, Model, Node, Value
from onyx.passes.core import Namer, Options, PassResult, all_graphs, replace_value


def _copy_node(node: Node, vmap: dict, bindings: dict[str, Attribute], namer: Namer) -> Node:
    attrs = []
    for attr in node.attributes.values():
        if attr.is_ref:
            bound = bindings.get(attr.ref_attr_name)
            if bound is None:
                continue  # not given and no default: the operator's default applies
            attrs.append(Attribute(attr.name, bound.type, bound.value))
        elif attr.type.name in ("GRAPH", "GRAPHS"):
            graphs = attr.value if isinstance(attr.value, list) else [attr.value]
            copies = [_copy_graph(sub, vmap, bindings, namer) for sub in graphs]
            attrs.append(Attribute(attr.name, attr.type,
                                   copies if isinstance(attr.value, list) else copies[0]))  # fmt: skip
        else:
            attrs.append(Attribute(attr.name, attr.type, attr.value))
    ins = [None if v is None else vmap.get(v, v) for v in node.inputs]
    outs = []
    for v in node.outputs:
        if v is None:
            outs.append(None)
            continue
        new = Value(namer(v.name or "v"), v.type)
        vmap[v] = new
        outs.append(new)
    return Node(node.op_type, ins, outs, attrs, domain=node.domain, overload=node.overload,
                name=namer(node.name or node.op_type))  # fmt: skip


def _copy_graph(g: Graph, vmap: dict, bindings: dict, namer: Namer) -> Graph:
    inputs = []
    for v in g.inputs:
        vmap[v] = Value(namer(v.name), v.type)
        inputs.append(vmap[v])
    new = Graph(inputs=inputs, name=g.name)
    for init in g.initializers.values():
        vmap[init] = Value(namer(init.name), init.type, const_value=init.const_value)
        new.add_initializer(vmap[init])
    for node in g.nodes:
        new.append(_copy_node(node, vmap, bindings, namer))
    new.outputs = [vmap.get(v, v) for v in g.outputs]
    return new


def inline_functions(model: Model, options: Options) -> PassResult:
    """Replace every call of a model-local function (in any graph) by its body's nodes."""
    counts: collections.Counter = collections.Counter()
    namer = Namer(model)
    for _ in range(8):  # functions calling functions: a few rounds
        found = False
        for g in [model.graph, *(sub for sub in all_graphs(model) if sub is not model.graph)]:
            if any(g is f.graph for f in model.functions.values()):
                continue
            for node in list(g.nodes):
                fn = model.functions.get((node.domain, node.op_type, node.overload))
                if fn is None or node.graph is not g:
                    continue
                bindings = dict(fn.attribute_defaults)
                bindings.update(node.attributes)
                vmap: dict = dict(zip(fn.graph.inputs, node.inputs))
                for formal in fn.graph.inputs[len(node.inputs) :]:
                    vmap[formal] = None
                for inner in fn.graph.nodes:
                    g.insert_before(node, _copy_node(inner, vmap, bindings, namer))
                for old, formal in zip(node.outputs, fn.graph.outputs):
                    if old is not None:
                        replace_value(g, old, vmap.get(formal, formal))
                from onyx.passes.core import remove_node

                remove_node(node)
                counts[f"inline-{fn.name}"] += 1
                found = True
        if not found:
            break
    # functions no longer called are dropped by dead-functions
    return PassResult(bool(counts), counts)
