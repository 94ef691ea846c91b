"""Model surgery with the names of ``onnx.utils`` and ``onnx.compose``: cut out a subgraph between
named values, join two models output-to-input, add a prefix to names, and set the dims of a
model's inputs and outputs. Each takes a model as an ``ir.Model`` or anything ``onyx.load``
reads, and returns a new model (``update_inputs_outputs_dims`` changes and returns its model).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from onyx.errors import GraphError
from onyx.ir import Function, Graph, Model, Node, Shape, TensorType, Value
from onyx.serde import as_model

__all__ = ["add_prefix", "extract_model", "merge_models", "update_inputs_outputs_dims"]


def _clone(model: Model) -> Model:
    from onyx.shapes import clone_model

    return clone_model(model)


def _values(g: Graph) -> dict[str, Value]:
    """The values of the main scope of ``g`` by name: inputs, initializers, node outputs."""
    found = {v.name: v for v in g.inputs}
    found.update(g.initializers)
    for node in g.nodes:
        found.update((v.name, v) for v in node.outputs if v is not None and v.name)
    return found


def _reads(node: Node) -> Iterable[Value]:
    """What ``node`` reads: its inputs and the outer values its subgraphs use."""
    yield from (v for v in node.inputs if v is not None)
    for sub in node.subgraphs():
        for inner in sub.all_nodes():
            yield from (v for v in inner.inputs if v is not None)
        yield from sub.outputs


# --- extract_model -------------------------------------------------------------------------
def extract_model(model: Any, input_names: Sequence[str], output_names: Sequence[str],
                  output_path: str | os.PathLike | None = None, *, check_model: bool = True,
                  infer_shapes: bool = True) -> Model:  # fmt: skip
    """The part of ``model`` that computes ``output_names`` from ``input_names``.

    Its inputs are the named values (graph inputs, initializers or intermediate values), its
    outputs the named ones; it keeps the nodes on the way from one to the other, the
    initializers and functions they use, and the value infos of what they produce. Intermediate
    values get their types from shape inference first (``infer_shapes``). A name the graph does
    not define, or an output that also needs a graph input not named, raises ``GraphError``.
    With ``output_path`` the result is also saved there.
    """
    from onyx import checker, shapes
    from onyx.serde import save

    source = as_model(model)
    m = shapes.infer_shapes(source) if infer_shapes else _clone(source)
    g = m.graph
    if isinstance(input_names, str) or isinstance(output_names, str):
        raise TypeError("input_names and output_names must be lists of names, not strings")
    found = _values(g)
    missing = [n for n in [*input_names, *output_names] if n not in found]
    if missing:
        raise GraphError(f"extract_model: graph {g.name!r} has no value named "
                         f"{', '.join(map(repr, missing))}")  # fmt: skip
    inputs = [found[n] for n in input_names]
    outputs = [found[n] for n in output_names]
    stop = set(inputs)
    keep: set[Node] = set()
    todo = [v for v in outputs if v not in stop]
    seen: set[Value] = set(todo)
    while todo:
        v = todo.pop()
        node = _producer_in(v, g)
        if node is None or node in keep:
            continue
        keep.add(node)
        for read in _reads(node):
            if read not in stop and read not in seen:
                seen.add(read)
                todo.append(read)
    initializers = set(g.initializers.values())
    needed = {v for n in keep for v in _reads(n)}
    unfed = [v.name for v in g.inputs if v in needed and v not in stop and v not in initializers]
    if unfed:
        raise GraphError(
            f"extract_model: the outputs {list(output_names)} also depend on the graph input(s) "
            f"{unfed}, which are not among the inputs {list(input_names)}"
        )
    for v in inputs:
        if v.producer is not None and v.producer in keep:
            raise GraphError(f"extract_model: input {v.name!r} is also computed by a kept node "
                             f"({v.producer.name or v.producer.op_type}); name its inputs instead")  # fmt: skip
    for node in list(g.nodes):
        if node not in keep:
            g.remove(node, safe=False)
    for v in inputs:  # an intermediate value cut loose is now an input
        if v.producer is not None and v.producer not in keep:
            v.producer = v.index = None
    g.inputs = inputs
    g.outputs = outputs
    for name, v in list(g.initializers.items()):
        if v not in needed and v not in stop and v not in outputs:
            del g.initializers[name]
    for name, v in list(g.sparse_initializers.items()):
        if v not in needed:
            del g.sparse_initializers[name]
    produced = {v for n in keep for v in n.outputs if v is not None}
    g.value_info = [v for v in g.value_info if v in produced and v not in outputs]
    m.functions = {k: f for k, f in m.functions.items() if k in _functions_used(g, m.functions)}
    if check_model:
        checker.check(m)
    if output_path is not None:
        save(m, output_path)
    return m


def _producer_in(v: Value, g: Graph) -> Node | None:
    node = v.producer
    while node is not None and node.graph is not g:  # a value of a subgraph: its owner node
        node = node.graph.parent if node.graph is not None else None
    return node


def _functions_used(g: Graph, functions: Mapping[tuple, Function]) -> set[tuple]:
    used: set[tuple] = set()
    todo = [g]
    while todo:
        for node in todo.pop().all_nodes():
            key = (node.domain, node.op_type, node.overload)
            if key in functions and key not in used:
                used.add(key)
                todo.append(functions[key].graph)
    return used


# --- add_prefix ----------------------------------------------------------------------------
def add_prefix(model: Any, prefix: str, *, rename_nodes: bool = True, rename_values: bool = True,
               rename_functions: bool = True) -> Model:  # fmt: skip
    """A copy of ``model`` with ``prefix`` before every node name, value name (inputs, outputs,
    initializers, intermediates, in subgraphs too) and model-local function name."""
    m = _clone(as_model(model))
    graphs = [m.graph, *(f.graph for f in m.functions.values())]
    seen: set[int] = set()
    for top in graphs:
        stack = [top]
        while stack:
            g = stack.pop()
            values = [*g.inputs, *g.outputs, *g.value_info, *g.initializers.values(),
                      *g.sparse_initializers.values()]  # fmt: skip
            for node in g.nodes:
                if rename_nodes and node.name:
                    node.name = prefix + node.name
                values += [v for v in (*node.inputs, *node.outputs) if v is not None]
                stack.extend(node.subgraphs())
            for v in values:
                if rename_values and v.name and id(v) not in seen:
                    seen.add(id(v))
                    v.name = prefix + v.name
                    if v.const_value is not None and v.const_value.name:
                        v.const_value.name = v.name
            if rename_values:
                for table in (g.initializers, g.sparse_initializers):
                    renamed = {v.name: v for v in table.values()}
                    table.clear()
                    table.update(renamed)
    if rename_functions and m.functions:
        renames = {key: prefix + f.name for key, f in m.functions.items()}
        for g in graphs:
            for node in g.all_nodes():
                key = (node.domain, node.op_type, node.overload)
                if key in renames:
                    node.op_type = renames[key]
        functions = {}
        for key, f in m.functions.items():
            f.name = renames[key]
            functions[f.id] = f
        m.functions = functions
    return m


# --- merge_models --------------------------------------------------------------------------
def merge_models(m1: Any, m2: Any, io_map: Sequence[tuple[str, str]],
                 inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 prefix1: str | None = None, prefix2: str | None = None,
                 name: str | None = None, doc_string: str | None = None,
                 producer_name: str = "onyx.utils.merge_models", producer_version: str = "1.0",
                 domain: str = "", model_version: int = 1) -> Model:  # fmt: skip
    """One model running ``m1`` then ``m2``, each ``(out1, in2)`` of ``io_map`` feeding m1's
    output ``out1`` to m2's input ``in2``.

    The result's inputs are m1's and m2's unconnected ones, its outputs m1's unconnected ones
    and m2's (or only ``inputs``/``outputs`` when given: the parts not needed are cut out).
    ``prefix1``/``prefix2`` are put before every name of that model first (``io_map`` names
    the values before prefixing). The two must share the IR version and agree on every opset
    version, metadata value and function name; names both use (values, initializers) are an
    error that suggests a prefix. The result is checked with ``onyx.check``.
    """
    from onyx import checker

    a, b = as_model(m1), as_model(m2)
    if a.ir_version != b.ir_version:
        raise GraphError(f"merge_models: IR versions differ ({a.ir_version} and {b.ir_version}); "
                         "both models need the same one")  # fmt: skip
    opsets = dict(a.opset_imports)
    for d, v in b.opset_imports.items():
        if opsets.setdefault(d, v) != v:
            raise GraphError(f"merge_models: domain {d or 'ai.onnx'!r} is imported at version "
                             f"{opsets[d]} by m1 and {v} by m2; convert one first")  # fmt: skip
    props = dict(a.metadata_props)
    for k, v in b.metadata_props.items():
        if props.setdefault(k, v) != v:
            raise GraphError(f"merge_models: metadata {k!r} is {props[k]!r} in m1 and {v!r} in m2")
    a = add_prefix(a, prefix1) if prefix1 else _clone(a)
    b = add_prefix(b, prefix2) if prefix2 else _clone(b)
    io_map = [((prefix1 or "") + o, (prefix2 or "") + i) for o, i in io_map]
    outs1, ins2 = {o for o, _ in io_map}, {i for _, i in io_map}
    if inputs or outputs:
        want_in = set(inputs) if inputs else None
        want_out = set(outputs) if outputs else None
        g1_in = [v.name for v in a.graph.inputs if want_in is None or v.name in want_in]
        g2_in = [v.name for v in b.graph.inputs
                 if want_in is None or v.name in want_in or v.name in ins2]  # fmt: skip
        g1_out = [v.name for v in a.graph.outputs
                  if want_out is None or v.name in want_out or v.name in outs1]  # fmt: skip
        g2_out = [v.name for v in b.graph.outputs if want_out is None or v.name in want_out]
        if len(g1_in) < len(a.graph.inputs) or len(g1_out) < len(a.graph.outputs):
            a = extract_model(a, g1_in, g1_out, check_model=False, infer_shapes=False)
        if len(g2_in) < len(b.graph.inputs) or len(g2_out) < len(b.graph.outputs):
            b = extract_model(b, g2_in, g2_out, check_model=False, infer_shapes=False)
    g1, g2 = a.graph, b.graph
    g1_outs = {v.name: v for v in g1.outputs}
    g2_ins = {v.name: v for v in g2.inputs}
    for o, i in io_map:
        if o not in g1_outs:
            raise GraphError(f"merge_models: m1 has no output {o!r} (io_map); its outputs are "
                             f"{list(g1_outs)}")  # fmt: skip
        if i not in g2_ins:
            raise GraphError(f"merge_models: m2 has no input {i!r} (io_map); its inputs are "
                             f"{list(g2_ins)}")  # fmt: skip
    overlap = sorted((_names(g1) & _names(g2)) - ins2 - outs1)
    if overlap:
        raise GraphError(
            f"merge_models: both models use the value name(s) {', '.join(map(repr, overlap[:10]))}; "
            "give one a prefix (prefix1=/prefix2=)"
        )
    clash = sorted({f.name for f in a.functions.values()} & {f.name for f in b.functions.values()})
    if clash:
        raise GraphError(f"merge_models: both models define function(s) {', '.join(clash)}")
    for o, i in io_map:
        source, target = g1_outs[o], g2_ins[i]
        target.replace_all_uses_with(source)
        g2.outputs[:] = [source if v is target else v for v in g2.outputs]
    g = Graph(name=name if name is not None else f"{g1.name}_{g2.name}")
    g.doc_string = doc_string if doc_string is not None else (
        f"Graph combining {g1.name} and {g2.name}\n{g1.name}\n\n{g1.doc_string}\n\n"
        f"{g2.name}\n\n{g2.doc_string}"
    )  # fmt: skip
    for node in [*g1.nodes, *g2.nodes]:
        node.graph = None
        g.append(node)
    if inputs:
        g.inputs = [v for v in [*g1.inputs, *g2.inputs] if v.name in set(inputs)]
    else:
        g.inputs = [*g1.inputs, *(v for v in g2.inputs if v.name not in ins2)]
    if outputs:
        g.outputs = [v for v in [*g1.outputs, *g2.outputs] if v.name in set(outputs)]
    else:
        g.outputs = [*(v for v in g1.outputs if v.name not in outs1), *g2.outputs]
    for v in g1.initializers.values():
        g.add_initializer(v)
    for v in g2.initializers.values():
        if v.name not in ins2:
            g.add_initializer(v)
    for v in [*g1.sparse_initializers.values(), *g2.sparse_initializers.values()]:
        g.add_initializer(v)
    g.value_info = [*g1.value_info, *(v for v in g2.value_info if v.name not in ins2)]
    listed = {id(v) for v in (*g.value_info, *g.outputs)}
    g.value_info += [v for v in g1.outputs if v.name in outs1 and id(v) not in listed]
    model = Model(g, ir_version=a.ir_version, opset_imports=opsets, producer_name=producer_name,
                  producer_version=producer_version, domain=domain, model_version=model_version,
                  metadata_props=props, functions={**a.functions, **b.functions})  # fmt: skip
    checker.check(model)
    return model


def _names(g: Graph) -> set[str]:
    names = {v.name for v in (*g.inputs, *g.outputs, *g.value_info) if v.name}
    names.update(g.initializers, g.sparse_initializers)
    for node in g.all_nodes():
        names.update(v.name for v in (*node.inputs, *node.outputs) if v is not None and v.name)
    return names


# --- update_inputs_outputs_dims ------------------------------------------------------------
def update_inputs_outputs_dims(model: Any, input_dims: Mapping[str, Sequence[Any]],
                               output_dims: Mapping[str, Sequence[Any]]) -> Model:  # fmt: skip
    """Set the dims of the named graph inputs and outputs and return the model (an ``ir.Model``
    given is changed in place). A dim is an int (a fixed size; it may not contradict a fixed
    size already declared), a name (a symbolic dim), or -1 (a new symbol ``<value>_<axis>``)."""
    m = as_model(model)
    g = m.graph
    for what, table, values in (
        ("input", input_dims, g.inputs),
        ("output", output_dims, g.outputs),
    ):
        by_name = {v.name: v for v in values}
        for name, dims in table.items():
            v = by_name.get(name)
            if v is None:
                raise GraphError(f"update_inputs_outputs_dims: the graph has no {what} {name!r}; "
                                 f"its {what}s are {list(by_name)}")  # fmt: skip
            if not isinstance(v.type, TensorType):
                raise GraphError(f"update_inputs_outputs_dims: {what} {name!r} is not a tensor "
                                 f"({v.type})")  # fmt: skip
            old = v.type.shape
            if old is not None and len(old) != len(dims):
                raise GraphError(f"update_inputs_outputs_dims: {what} {name!r} has rank "
                                 f"{len(old)}, but {len(dims)} dims were given")  # fmt: skip
            new = []
            for axis, d in enumerate(dims):
                before = old.dims[axis] if old is not None else None
                if isinstance(d, bool) or not isinstance(d, int | str):
                    raise TypeError(f"{what} {name!r} dim {axis}: expected an int or a name, "
                                    f"got {d!r}")  # fmt: skip
                if d == -1:
                    d = f"{name}_{axis}"
                elif isinstance(d, int):
                    if d < 0:
                        raise GraphError(f"update_inputs_outputs_dims: {what} {name!r} dim {axis}: "
                                         f"{d} is not a size (use -1 for a new symbol)")  # fmt: skip
                    if isinstance(before, int) and before != d:
                        raise GraphError(
                            f"update_inputs_outputs_dims: {what} {name!r} dim {axis} is fixed at "
                            f"{before}; cannot set it to {d}"
                        )
                new.append(d)
            denotations = old.denotations if old is not None else None
            v.type = TensorType(v.type.dtype, Shape(new, denotations), v.type.denotation)
    return m
