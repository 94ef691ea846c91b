"""Dead code, constants, constant folding, duplicate weights and common subexpressions."""

from __future__ import annotations

import collections
import hashlib
import math

import numpy as np

from onyx.ir import Graph, Model, Node, Tensor, Value
from onyx.passes.core import (
    STANDARD_DOMAINS,
    Options,
    PassResult,
    Site,
    graph_pass,
    is_used,
    remove_node,
    replace_value,
)  # fmt: skip
from onyx.passes.evaluate import evaluate


@graph_pass("dead-code")
def dead_code(site: Site) -> int:
    """Remove nodes whose results nobody reads and initializers nothing reads."""
    g = site.graph
    removed = 0
    for node in reversed(list(g.nodes)):
        if node.outputs and not any(is_used(v, g) for v in node.outputs):
            remove_node(node)
            removed += 1
    inputs = set(g.inputs)
    for name, value in list(g.initializers.items()):
        if value not in inputs and not is_used(value, g):
            del g.initializers[name]
            removed += 1
    # types declared for values that are gone, or for initializers (whose tensors say it):
    # bookkeeping, not a change by itself
    g.value_info[:] = [v for v in g.value_info if _declarable(v, g, inputs)]
    return removed


def _declarable(v: Value, g: Graph, inputs: set) -> bool:
    """Whether ``v`` is still in ``g`` and not an initializer (value_info may list it)."""
    if g.initializers.get(v.name) is v:
        return False
    return is_used(v, g) or v in inputs or (v.producer is not None and v.producer.graph is g)


class DeadFunctions:
    """Remove model-local functions that no node calls (directly or through another function)."""

    name = "dead-functions"

    def __call__(self, model: Model, options: Options) -> PassResult:
        called: set = set()
        todo = [model.graph]
        while todo:
            g = todo.pop()
            for node in g.all_nodes():
                key = (node.domain, node.op_type, node.overload)
                if key in model.functions and key not in called:
                    called.add(key)
                    todo.append(model.functions[key].graph)
        dead = [k for k in model.functions if k not in called]
        for k in dead:
            del model.functions[k]
        return PassResult(bool(dead), collections.Counter({self.name: len(dead)} if dead else {}))


dead_functions = DeadFunctions()


#: torch.export's notes on the graph and its values: the program's signature as exported (its
#: parameters by name, which folding renames or removes; 40 KB of a small MobileNetV2's file).
_EXPORT_NOTES = "pkg.torch.export."


@graph_pass("drop-node-metadata")
def drop_node_metadata(site: Site) -> int:
    """Drop nodes' doc strings and metadata_props: an exporter's notes on how each node came
    to be (torch.onnx's stack traces, fx nodes and scopes), which describe the graph as it was
    exported, not as rewritten (800 KB of BERT's file); and torch.export's notes on the graph
    and its values. Other metadata of the graph and its values stays."""
    g = site.graph
    dropped = 0
    for node in g.nodes:
        if node.metadata_props or node.doc_string:
            node.metadata_props, node.doc_string = {}, ""
            dropped += 1
    values = (*g.inputs, *g.outputs, *g.initializers.values(), *g.value_info)
    for holder in (g, *values):
        notes = [k for k in holder.metadata_props if k.startswith(_EXPORT_NOTES)]
        for k in notes:
            del holder.metadata_props[k]
        dropped += bool(notes)
    return dropped


@graph_pass("constant-to-initializer")
def constants_to_initializers(site: Site) -> int:
    """Turn Constant nodes into initializers (function bodies keep theirs)."""
    if site.in_function:
        return 0
    g, moved = site.graph, 0
    for node in list(g.nodes):
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        array = site.const(node.outputs[0])
        if array is None:
            continue
        out = node.outputs[0]
        if out in g.outputs:
            continue  # a graph output stays a node's output
        remove_node_keep(node)
        out.const_value = Tensor(array, out.name)
        g.add_initializer(out)
        moved += 1
    return moved


def remove_node_keep(node: Node) -> None:
    """Remove ``node`` but let its outputs live on (their readers keep reading them)."""
    g = node.graph
    g.nodes.remove(node)
    node._detach()
    node.graph = None
    for v in node.outputs:
        if v is not None:
            v.producer, v.index = None, None


def _nbytes(a: np.ndarray) -> int:
    return a.nbytes if a.dtype != object else 8 * a.size


#: Inputs that hold a weight: the operator reads every element as it is (no broadcasting could
#: stand in for a smaller tensor), so any runtime holds it whole. (op_type, input positions)
WEIGHT_INPUTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}), "ConvTranspose": frozenset({1, 2}), "ConvInteger": frozenset({1}),
    "Gemm": frozenset({0, 1}), "MatMul": frozenset({0, 1}), "MatMulInteger": frozenset({1}),
    "BatchNormalization": frozenset({1, 2, 3, 4}), "InstanceNormalization": frozenset({1, 2}),
    "GroupNormalization": frozenset({1, 2}), "Gather": frozenset({0}),
    "LSTM": frozenset({1, 2, 3}), "GRU": frozenset({1, 2, 3}), "RNN": frozenset({1, 2, 3}),
}  # fmt: skip
#: Operators that only rearrange a weight on its way to where it is read.
_WEIGHT_LAYOUT = frozenset({"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Cast",
                            "Identity"})  # fmt: skip


def is_weight(value: Value, g: Graph, rank: int, depth: int = 0) -> bool:
    """Whether every reader of ``value`` (of ``rank`` dims) takes it as a weight, directly or
    through layout operators (a MatMul operand counts only as a matrix: above 2-D it broadcasts)."""
    if value in g.outputs or not value.uses or depth > 8:
        return False
    for node, i in value.uses:
        if node.graph is not g or node.domain not in ("", "ai.onnx"):
            return False
        if i in WEIGHT_INPUTS.get(node.op_type, ()):
            if node.op_type in ("MatMul", "MatMulInteger") and rank > 2:
                return False
            continue
        if node.op_type not in _WEIGHT_LAYOUT or i != 0:
            return False
        if not all(is_weight(v, g, rank, depth + 1) for v in node.outputs if v is not None):
            return False
    return True


@graph_pass("constant-folding")
def fold_constants(site: Site) -> int:
    """Compute nodes whose inputs are all constants, once, now: a result bigger than its inputs
    by more than ``fold_limit`` only where it is a weight (see ``is_weight``)."""
    g, folded = site.graph, 0
    limit = site.options.fold_limit
    for node in list(g.nodes):
        if node.graph is not g or node.op_type == "Constant" or not node.inputs:
            continue
        if node.domain not in STANDARD_DOMAINS and (
            (node.domain, node.op_type, node.overload) not in site.model.functions
        ):
            continue
        if any(True for _ in node.subgraphs()) or any(a.is_ref for a in node.attributes.values()):
            continue
        if any(v in g.outputs for v in node.outputs):
            continue  # a graph output stays a node's result
        arrays = [None if v is None else site.const(v) for v in node.inputs]
        if any(a is None and v is not None for a, v in zip(arrays, node.inputs)):
            continue
        outs = evaluate(node, arrays, site.opsets, site.model.functions)
        if outs is None or len(outs) != len(node.outputs):
            continue
        grown = sum(_nbytes(a) for a in outs) - sum(_nbytes(a) for a in arrays if a is not None)
        if grown > limit and not all(is_weight(v, g, a.ndim) for v, a in zip(node.outputs, outs)
                                     if v is not None and is_used(v, g)):  # fmt: skip
            continue
        for value, array in zip(node.outputs, outs):
            if value is None or not is_used(value, g):
                continue
            replace_value(g, value, site.new_const(array, value.name, before=node), site)
        remove_node(node)
        folded += 1
    return folded


def _content_key(tensor: Tensor) -> tuple | None:
    """(type, shape, a digest of a sample of the elements): equal tensors have equal keys."""
    try:
        a = tensor.numpy()
    except Exception:  # noqa: BLE001 - an undecodable weight is left as it is
        return None
    if a.dtype == object:
        return None
    # a strided sample in logical order (``flat`` does not copy a transposed weight whole)
    sample = a.flat[:: max(1, a.size // 1024)]
    data = np.ascontiguousarray(sample).tobytes()
    digest = hashlib.blake2b(data, digest_size=16).digest() if len(data) > 64 else data
    return (int(tensor.dtype), tuple(a.shape), digest)


def _same(a: Tensor, b: Tensor, chunk: int = 1 << 24) -> bool:
    """Whether two tensors hold the same bytes (compared a slice at a time: weights of a big
    model stay in their memory-mapped files)."""
    x, y = a.numpy(), b.numpy()
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if not (x.flags.c_contiguous and y.flags.c_contiguous):
        return x.tobytes() == y.tobytes()
    u, v = x.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8)
    return all(u[i : i + chunk].tobytes() == v[i : i + chunk].tobytes()
               for i in range(0, u.size, chunk))  # fmt: skip


@graph_pass("dedupe-initializers")
def dedupe_initializers(site: Site) -> int:
    """Make initializers with the same type, shape and bytes one initializer."""
    g = site.graph
    inputs = set(g.inputs)
    seen: dict[tuple, list] = {}
    merged = 0
    for name, value in list(g.initializers.items()):
        if value in inputs or not isinstance(value.const_value, Tensor):
            continue
        key = _content_key(value.const_value)
        if key is None:
            continue
        group = seen.setdefault(key, [])
        first = next((v for v in group if _same(v.const_value, value.const_value)), None)
        if first is None:
            group.append(value)
            continue
        if value in g.outputs:
            continue
        replace_value(g, value, first, site)
        del g.initializers[name]
        merged += 1
    return merged


def _attr_key(value) -> object:
    if isinstance(value, Tensor):
        try:
            a = value.numpy()
        except Exception:  # noqa: BLE001 - an undecodable tensor matches only itself
            return id(value)
        return id(value) if a.dtype == object else (str(a.dtype), a.shape, a.tobytes())
    if isinstance(value, list | tuple):
        return tuple(_attr_key(v) for v in value)
    if isinstance(value, Graph):
        raise TypeError
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def node_key(node: Node) -> tuple | None:
    """What makes two nodes compute the same thing: operator, inputs and attributes."""
    try:
        attrs = tuple(sorted((k, a.ref_attr_name or "", _attr_key(a.value))
                             for k, a in node.attributes.items()))  # fmt: skip
    except TypeError:
        return None
    inputs = tuple(id(v) if v is not None else None for v in node.inputs)
    return (node.domain, node.op_type, node.overload, inputs, attrs, len(node.outputs))


@graph_pass("common-subexpressions")
def cse(site: Site) -> int:
    """Merge nodes that compute the same operator on the same inputs with the same attributes."""
    g = site.graph
    seen: dict[tuple, Node] = {}
    merged = 0
    for node in list(g.nodes):
        if node.op_type in ("RandomNormal", "RandomUniform", "RandomNormalLike",
                            "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"):  # fmt: skip
            continue
        if node.domain not in STANDARD_DOMAINS:
            continue
        key = node_key(node)
        if key is None:
            continue
        first = seen.setdefault(key, node)
        if first is node:
            continue
        if any(v in g.outputs for v in node.outputs if v is not None) and any(
            v in g.outputs for v in first.outputs if v is not None
        ):
            continue  # two outputs stay two values
        for old, new in zip(node.outputs, first.outputs):
            if old is not None and new is not None:
                replace_value(g, old, new, site)
        if not any(is_used(v, g) for v in node.outputs):
            remove_node(node)
            merged += 1
    return merged
