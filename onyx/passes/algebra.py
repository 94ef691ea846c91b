"""Types, algebraic identities, no-op operators and chains of layout operators.

``infer`` refreshes the element types and (symbolic) shapes that later passes read, and the
values of shape computations that shape folding needs. The identity passes bypass a node whose
result equals one of its inputs (x+0, x*1, Identity, Dropout in inference, a Cast to the same
type, an identity Transpose, a Reshape/Expand/Pad/Slice/Split/Concat that changes nothing).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from onyx.errors import OnyxError
from onyx.ir import Model, Node, Shape, TensorType, Value
from onyx.passes.core import (
    Options,
    PassResult,
    Site,
    all_graphs,
    can_bypass,
    elem_type,
    graph_pass,
    remove_dead,
    remove_node,
    replace_value,
    set_attr,
    static_shape,
)  # fmt: skip


class Infer:
    """Shape and type inference, in place, keeping the values of shape computations."""

    name = "infer-shapes"

    def __call__(self, model: Model, options: Options) -> PassResult:
        from onyx.shapes import _Inference

        kept = options.declared
        for g in all_graphs(model):
            for node in g.nodes:
                for v in node.outputs:
                    if v is not None and v not in kept and v not in g.outputs:
                        v.type = None
            g.value_info[:] = [v for v in g.value_info if v in kept]
        inference = _Inference(model, False, True, [])
        try:
            inference.run()
        except OnyxError:
            options.known = {}
            return PassResult()
        options.known = inference.known
        for g in all_graphs(model):  # inference lists what it typed; the result lists only its own
            g.value_info[:] = [v for v in g.value_info if v in kept]
        return PassResult()  # types are bookkeeping: never a change by themselves


infer = Infer()


def _bypass(site: Site, node: Node, source: Value, out: Value | None = None) -> bool:
    """Let readers of ``node``'s result read ``source``; remove the node. False when it can't."""
    out = out or node.outputs[0]
    g = site.graph
    if not can_bypass(g, out, source):
        return False
    if (out.type is not None and source.type is not None
            and getattr(out.type, "dtype", None) != getattr(source.type, "dtype", None)):  # fmt: skip
        return False
    replace_value(g, out, source, site)
    remove_dead(g, [node])
    return True


def _same_shape(a: tuple | None, b: tuple | None) -> bool:
    return (
        a is not None
        and b is not None
        and len(a) == len(b)
        and all(x == y and x is not None for x, y in zip(a, b))
    )


def _keeps_shape(x: Value, c: np.ndarray) -> bool:
    """Whether broadcasting ``x`` against a constant of ``c``'s shape leaves x's shape."""
    if c.ndim == 0:
        return True  # a scalar never changes the shape it broadcasts with
    shape = static_shape(x)
    if shape is None or c.ndim > len(shape):
        return False
    return all(n == 1 or n == d for n, d in zip(c.shape[::-1], shape[::-1]))


def _is(c: np.ndarray | None, v: float) -> bool:
    return c is not None and c.dtype != object and c.size > 0 and bool(np.all(c == v))


def _neutral(site: Site, node: Node) -> Value | None:
    """The input that ``node``'s result equals, or None."""
    op, ins = node.op_type, node.inputs
    c = site.const
    if op == "Identity" and ins:
        return ins[0]
    if op == "Dropout" and ins:
        training = c(ins[2]) if len(ins) > 2 and ins[2] is not None else np.array(False)
        mask_used = (
            len(node.outputs) > 1
            and node.outputs[1] is not None
            and (node.outputs[1].uses or node.outputs[1] in site.graph.outputs)
        )
        inference = training is not None and not bool(training) and not mask_used
        if inference and (node.attribute("is_test", 1) or site.opset >= 7):
            return ins[0]
        return None
    if op in ("Add", "Sub", "Mul", "Div", "Pow") and len(ins) == 2:
        a, b = ins
        if op in ("Add", "Sub") and _is(c(b), 0) and _keeps_shape(a, c(b)):
            return a
        if op == "Add" and _is(c(a), 0) and _keeps_shape(b, c(a)):
            return b
        if op in ("Mul", "Div", "Pow") and _is(c(b), 1) and _keeps_shape(a, c(b)):
            return a
        if op == "Mul" and _is(c(a), 1) and _keeps_shape(b, c(a)):
            return b
        return None
    if op in ("And", "Or", "Xor") and len(ins) == 2:
        keep = op == "And"  # x and true, x or false, x xor false
        for a, b in (ins, ins[::-1]):
            if _is(c(b), keep) and _keeps_shape(a, c(b)):
                return a
        return None
    if op == "Cast" and ins:
        to = node.attribute("to")
        return ins[0] if to is not None and elem_type(ins[0]) == to else None
    if op == "CastLike" and len(ins) == 2:
        t = elem_type(ins[1])
        return ins[0] if t is not None and elem_type(ins[0]) == t else None
    if op == "Transpose" and ins:
        perm = node.attribute("perm")
        shape = static_shape(ins[0])
        if perm is not None and list(perm) == list(range(len(perm))):
            return ins[0]
        if perm is None and shape is not None and len(shape) <= 1:
            return ins[0]
        return None
    if op in ("Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten") and ins:
        x, y = ins[0], node.outputs[0]
        if _same_shape(static_shape(x), static_shape(y)):
            return x
        if op == "Expand" and len(ins) == 2:
            t = c(ins[1])
            if t is not None and _is(t, 1) and _keeps_shape(x, t):
                return x
        if op == "Reshape" and len(ins) == 2:
            t, shape = c(ins[1]), static_shape(x)
            fits = t is not None and shape is not None and len(t) == len(shape)
            if fits and not node.attribute("allowzero", 0):
                same = [int(v) == 0 or d == int(v) for v, d in zip(t.reshape(-1), shape)]
                if all(same):
                    return x
        return None
    if op == "Pad" and ins:
        pads = c(ins[1]) if len(ins) > 1 else np.asarray(node.attribute("pads", [1]))
        if pads is not None and pads.dtype != object and not np.any(pads):
            return ins[0]
        return None
    if op == "Slice" and len(ins) >= 3:
        x, y = ins[0], node.outputs[0]
        if _same_shape(static_shape(x), static_shape(y)):
            steps = c(ins[4]) if len(ins) > 4 and ins[4] is not None else np.ones(1)
            if steps is not None and _is(steps, 1):
                return x
        starts, ends = c(ins[1]), c(ins[2])
        if starts is not None and ends is not None and _is(starts, 0) and starts.size:
            steps = c(ins[4]) if len(ins) > 4 and ins[4] is not None else np.ones(1)
            if steps is not None and _is(steps, 1) and np.all(ends >= 2**31 - 1):
                return x
        return None
    if op in ("Concat", "Sum", "Max", "Min", "Mean") and len(ins) == 1:
        return ins[0]
    if op == "Split" and len(node.outputs) == 1 and ins:
        return ins[0]
    return None


@graph_pass("identities")
def identities(site: Site) -> int:
    """Bypass nodes whose result equals an input: x+0, x*1, Identity, Dropout, no-op Cast/..."""
    done = collections.Counter()
    for node in list(site.graph.nodes):
        if node.graph is not site.graph or node.domain not in ("", "ai.onnx"):
            continue
        source = _neutral(site, node)
        if source is not None and _bypass(site, node, source):
            done[f"drop-{node.op_type}"] += 1
    return done


@graph_pass("mul-reciprocal")
def mul_reciprocal(site: Site) -> int:
    """``x · Reciprocal(y)`` (either order) becomes ``x / y`` where the Reciprocal has no other
    reader: one node fewer and one rounding instead of two (exporters write ``rsqrt`` so: every
    RMS normalization of T5, Llama and their kin)."""
    g, done = site.graph, 0
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "Mul" or not _standard_here(site, node):
            continue
        if len(node.inputs) != 2 or node.inputs[0] is node.inputs[1]:
            continue
        for i in (1, 0):
            r, x = node.inputs[i], node.inputs[1 - i]
            recip = r.producer if r is not None else None
            if (not _standard_here(site, recip) or recip.op_type != "Reciprocal"
                    or len(r.uses) != 1 or r in g.outputs):  # fmt: skip
                continue
            (y,) = site.node("Div", [x, recip.inputs[0]], before=node)
            y.type = node.outputs[0].type
            replace_value(g, node.outputs[0], y, site)
            remove_dead(g, [node, recip])
            done += 1
            break
    return done


# --- chains of layout operators -------------------------------------------------------------
def _readers_all(value: Value, op: str, site: Site) -> bool:
    """Whether every reader of ``value`` is an ``op`` node with constant inputs past the first
    (so that each merges with ``value``'s producer and that producer goes)."""
    if value in site.graph.outputs or not value.uses:
        return False
    return all(
        n.op_type == op and i == 0 and n.domain in ("", "ai.onnx")
        and all(site.const(v) is not None for v in n.inputs[1:])
        for n, i in value.uses
    )  # fmt: skip


def _slice_parts(site: Site, node: Node) -> tuple | None:
    """A Slice's (starts, ends, axes, steps) as 1-D int64 arrays, defaults filled in, or None
    where one is not constant."""
    ins = node.inputs
    if len(ins) < 3:
        return None
    parts = [site.const(ins[i]) if len(ins) > i and ins[i] is not None else None
             for i in range(1, 5)]  # fmt: skip
    starts, ends, axes, steps = parts
    if starts is None or ends is None or starts.shape != ends.shape or starts.ndim != 1:
        return None
    n = starts.shape[0]
    axes = np.arange(n) if len(ins) < 4 or ins[3] is None else axes
    steps = np.ones(n, np.int64) if len(ins) < 5 or ins[4] is None else steps
    if axes is None or steps is None or axes.shape != (n,) or steps.shape != (n,):
        return None
    return tuple(np.asarray(p, np.int64) for p in (starts, ends, axes, steps))


def _disjoint_axes(a: np.ndarray, b: np.ndarray, x: Value) -> bool:
    """Whether two Slices of ``x`` cut different axes (negative ones need x's rank)."""
    if (a < 0).any() or (b < 0).any():
        shape = static_shape(x)
        if shape is None:
            return False
        a, b = a % len(shape), b % len(shape)
    return not set(a.tolist()) & set(b.tolist()) and len(set(a.tolist())) == len(a)


@graph_pass("layout-chains")
def layout_chains(site: Site) -> int:
    """Merge Transpose∘Transpose, Reshape∘Reshape, Unsqueeze∘Unsqueeze, Squeeze of Unsqueeze,
    and Slice∘Slice along different axes."""
    done = collections.Counter()
    g = site.graph
    for node in list(g.nodes):
        if node.graph is not g or node.domain not in ("", "ai.onnx") or not node.inputs:
            continue
        x = node.inputs[0]
        first = x.producer if x is not None else None
        if first is None or first.graph is not g or first.domain not in ("", "ai.onnx"):
            continue
        op, op0 = node.op_type, first.op_type
        if op == "Transpose" and op0 == "Transpose":
            p1, p2 = first.attribute("perm"), node.attribute("perm")
            if p1 is None or p2 is None:
                continue
            perm = [list(p1)[i] for i in p2]
            node.set_input(0, first.inputs[0])
            set_attr(node, "perm", perm)
            remove_dead(g, [first])
            done["transpose-transpose"] += 1
        elif op == "Reshape" and op0 in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            target = site.const(node.inputs[1]) if len(node.inputs) > 1 else None
            if target is None or target.dtype == object:
                continue
            if np.any(target == 0) and not node.attribute("allowzero", 0):
                continue  # 0 copies a dim of the input, which the chain changes
            node.set_input(0, first.inputs[0])
            remove_dead(g, [first])
            done["reshape-chain"] += 1
        elif op == "Reshape" and op0 == "Transpose":
            perm = _sandwich(site, node, first)
            if perm is None:
                continue
            r1 = first.inputs[0].producer
            y = site.node("Transpose", [r1.inputs[0]], {"perm": perm}, before=node)[0]
            y.type = node.outputs[0].type
            replace_value(g, node.outputs[0], y, site)
            remove_dead(g, [node, first, r1])
            done["reshape-transpose-reshape"] += 1
        elif op == "Unsqueeze" and op0 == "Unsqueeze" and site.opset >= 13 and len(node.inputs) > 1:
            a1, a2 = (
                site.const(first.inputs[1]) if len(first.inputs) > 1 else None,
                site.const(node.inputs[1]),
            )
            if a1 is None or a2 is None or not _readers_all(x, "Unsqueeze", site):
                continue  # (else the first stays and its readers' new axes only add bytes)
            shape = static_shape(first.inputs[0])
            if shape is None:
                continue
            r = len(shape) + a1.size
            a1n = sorted(int(a) % r for a in a1.reshape(-1))
            r2 = r + a2.size
            a2n = sorted(int(a) % r2 for a in a2.reshape(-1))
            # place a1's axes in the final rank: shift by the a2 axes inserted before them
            final = list(a2n)
            for a in a1n:
                pos = a
                for b in a2n:
                    if b <= pos:
                        pos += 1
                final.append(pos)
            if len(set(final)) != len(final):
                continue
            axes = site.new_const(np.asarray(sorted(final), np.int64), "axes")
            node.set_input(0, first.inputs[0])
            node.set_input(1, axes)
            remove_dead(g, [first])
            done["unsqueeze-unsqueeze"] += 1
        elif op == "Slice" and op0 == "Slice" and site.opset >= 10:
            a, b = _slice_parts(site, first), _slice_parts(site, node)
            if a is None or b is None or x in g.outputs or not all(
                n.op_type == "Slice" and i == 0 and (p := _slice_parts(site, n)) is not None
                and _disjoint_axes(a[2], p[2], first.inputs[0]) for n, i in x.uses
            ):  # fmt: skip
                continue  # (every reader merges, or the merged parameters only add bytes)
            merged = [site.new_const(np.concatenate([p, q]).astype(np.int64), "slice")
                      for p, q in zip(a, b)]  # fmt: skip
            node.set_input(0, first.inputs[0])
            for i, value in enumerate(merged, start=1):
                if len(node.inputs) > i:
                    node.set_input(i, value)
                else:
                    node.append_input(value)
            remove_dead(g, [first])
            done["slice-slice"] += 1
        elif op == "Squeeze" and op0 == "Unsqueeze" and site.opset >= 13:
            a1 = site.const(first.inputs[1]) if len(first.inputs) > 1 else None
            a2 = site.const(node.inputs[1]) if len(node.inputs) > 1 else None
            shape = static_shape(first.inputs[0])
            if a1 is None or a2 is None or shape is None:
                continue
            r = len(shape) + a1.size
            if sorted(int(a) % r for a in a1.reshape(-1)) != sorted(
                int(a) % r for a in a2.reshape(-1)
            ):
                continue
            if _bypass(site, node, first.inputs[0]):
                remove_dead(g, [first])
                done["unsqueeze-squeeze"] += 1
    return done


def _sandwich(site: Site, r2: Node, tr: Node) -> list[int] | None:
    """The perm of one Transpose equal to Reshape→Transpose→Reshape ``r2``, else None.

    The first Reshape merges the leading k dims of x into one, the Transpose keeps that merged
    dim first, and the last Reshape splits it back into the same k dims.
    """
    r1 = tr.inputs[0].producer if tr.inputs and tr.inputs[0] is not None else None
    if r1 is None or r1.op_type != "Reshape" or r1.graph is not site.graph:
        return None
    if r1.domain not in ("", "ai.onnx") or len(tr.outputs[0].uses) != 1:
        return None
    if tr.outputs[0] in site.graph.outputs or r1.outputs[0] in site.graph.outputs:
        return None
    if len(r1.outputs[0].uses) != 1:
        return None
    s, a = static_shape(r1.inputs[0]), static_shape(r1.outputs[0])
    b, p = static_shape(r2.outputs[0]), tr.attribute("perm")
    if s is None or a is None or b is None or p is None or len(b) != len(s) or not a:
        return None
    if any(d is None for d in (*s, *a, *b)):
        return None
    p = [int(i) for i in p]
    k = len(s) - len(a) + 1
    if k < 1 or len(p) != len(a) or p[0] != 0 or tuple(s[k:]) != tuple(a[1:]):
        return None
    if tuple(b) != tuple(s[:k]) + tuple(a[i] for i in p[1:]):
        return None
    return list(range(k)) + [k - 1 + i for i in p[1:]]


# --- Transpose push-through -----------------------------------------------------------------
#: Elementwise operators of one tensor (extra inputs, as Clip's bounds, must be constant scalars).
_UNARY = frozenset({
    "Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Floor",
    "Ceil", "Round", "Sign", "Not", "Cast", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid",
    "HardSwish", "Softplus", "Softsign", "Gelu", "Mish", "Sin", "Cos", "Tan", "Asin", "Acos",
    "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "IsNaN", "IsInf", "ThresholdedRelu",
    "BitwiseNot", "Identity", "Clip",
})  # fmt: skip
#: Elementwise operators with broadcasting, and the opset from which they broadcast numpy-style.
_BROADCASTING = {
    **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "And", "Or",
                     "Xor", "PRelu"), 7),
    **dict.fromkeys(("Max", "Min", "Sum", "Mean"), 8),
    **dict.fromkeys(("Where",), 9),
    **dict.fromkeys(("Mod", "BitShift"), 10),
    **dict.fromkeys(("LessOrEqual", "GreaterOrEqual"), 12),
    **dict.fromkeys(("BitwiseAnd", "BitwiseOr", "BitwiseXor"), 18),
}  # fmt: skip


def _perm_of(node: Node) -> list[int] | None:
    """A Transpose's perm; the reversed dims when it has none and its input's rank is known."""
    perm = node.attribute("perm")
    if perm is not None:
        return [int(i) for i in perm]
    shape = static_shape(node.inputs[0]) if node.inputs else None
    return None if shape is None else list(range(len(shape)))[::-1]


def _standard_here(site: Site, node: Node | None) -> bool:
    return node is not None and node.graph is site.graph and node.domain in ("", "ai.onnx")


def _push_plan(site: Site, u: Node, v: Value, perm: list[int]) -> list | None:
    """How ``u`` reads once the Transpose moves below it; None when ``u`` is not elementwise.

    ``v`` is the value in transposed layout that ``u`` reads. The plan lists (input index,
    what): "chain" for ``v``, a constant array (to permute), or a Transpose of the same perm
    whose input takes its place.
    """
    op = u.op_type
    if not _standard_here(site, u) or len(u.outputs) != 1 or u.outputs[0] is None:
        return None
    if any(True for _ in u.subgraphs()):
        return None
    plan = []
    if op in _UNARY:
        if not u.inputs or u.inputs[0] is not v:
            return None
        plan.append((0, "chain"))
        for w in u.inputs[1:]:
            if w is None:
                continue
            c = site.const(w)
            if w is v or c is None or c.ndim != 0:
                return None  # Clip's bounds: only constant scalars keep the rewrite elementwise
        return plan
    if site.opset < _BROADCASTING.get(op, 1 << 30):
        return None
    for i, w in enumerate(u.inputs):
        if w is None:
            continue
        if w is v:
            plan.append((i, "chain"))
            continue
        c = site.const(w)
        if c is not None:
            if c.ndim > len(perm) or (c.dtype == object and c.size != 1):
                return None  # a constant of higher rank than the data broadcasts it up
            plan.append((i, c))
            continue
        t2 = w.producer
        if (
            _standard_here(site, t2)
            and t2.op_type == "Transpose"
            and _perm_of(t2) == perm
            and w not in site.graph.outputs
            and all(n is u for n, _ in w.uses)
        ):
            plan.append((i, t2))
            continue
        return None
    return plan


def _permuted(kind, inv: list[int]):
    """``kind`` with its shape's dims in the order ``inv`` (dims_new[j] = dims_old[inv[j]])."""
    shape = getattr(kind, "shape", None)
    if not isinstance(kind, TensorType) or shape is None or len(shape) != len(inv):
        return kind
    dims = [shape.written.get(i, d) for i, d in enumerate(shape.dims)]
    den = shape.denotations
    new = Shape([dims[i] for i in inv], None if den is None else [den[i] for i in inv])
    return dataclasses.replace(kind, shape=new)


def _push_chain(site: Site, u: Node, v: Value, perm: list[int]) -> tuple[list, Value]:
    """The elementwise chain from ``u`` (which reads ``v``) that a Transpose(``perm``) of ``v``
    can move down: (node, plan) pairs, each node the only reader of the one before; and the
    value at its end."""
    chain: list[tuple[Node, list]] = []
    while True:
        plan = _push_plan(site, u, v, perm)
        if plan is None:
            return chain, v
        chain.append((u, plan))
        v = u.outputs[0]
        readers = {n for n, _ in v.uses}
        if v in site.graph.outputs or len(readers) != 1:
            return chain, v
        (u,) = readers


def _push_ends(site: Site, chain: list, v: Value, perm: list[int], shared: bool) -> dict | None:
    """The Transposes reading the end ``v`` of ``chain``, with their perms, when the push
    applies: every reader of ``v`` a Transpose, and where the pushed Transpose is ``shared``
    (it stays for its other readers) the push must remove another Transpose."""
    if not chain or v in site.graph.outputs or not v.uses:
        return None
    ends = {n: _perm_of(n) for n, _ in v.uses}
    if not all(_standard_here(site, n) and n.op_type == "Transpose" and q is not None
               and len(q) == len(perm) for n, q in ends.items()):  # fmt: skip
        return None
    if shared:
        others = any(isinstance(w, Node) for _, plan in chain for _, w in plan)
        if not others and not any([perm[i] for i in q] == sorted(perm) for q in ends.values()):
            return None
    return ends


@graph_pass("transpose-push")
def transpose_push(site: Site) -> int:
    """Move a Transpose down past elementwise nodes to meet the Transposes that read the result.

    ``Transpose(p)`` → single-reader elementwise chain (unary ops, binary ops with a constant or
    another ``Transpose(p)`` as the other operand) → read only by Transposes: the chain reads
    the untransposed tensors (constants permuted by the inverse of p, types by it too), and
    each reader ``Transpose(q)`` becomes ``Transpose(p then q)``, dropped when that is the
    identity. Where the first Transpose has other readers too (ConvNeXt's residual, read by a
    Conv and an Add) it stays for them, and the chain moves only when that removes another
    Transpose. A rewrite only removes Transposes, so the pass cannot undo itself, and one sweep
    in graph order carries a Transpose through any number of such chains.
    """
    done = collections.Counter()
    g = site.graph
    for t1 in list(g.nodes):
        if t1.op_type != "Transpose" or not _standard_here(site, t1) or not t1.inputs:
            continue
        perm = _perm_of(t1)
        if perm is None or sorted(perm) != list(range(len(perm))) or perm == sorted(perm):
            continue  # (an identity perm is for `identities` to drop)
        v0 = t1.outputs[0]
        if v0 is None or v0 in g.outputs:
            continue
        readers = list(dict.fromkeys(n for n, _ in v0.uses))
        for start in readers:
            chain, v = _push_chain(site, start, v0, perm)
            ends = _push_ends(site, chain, v, perm, shared=len(readers) > 1)
            if ends is not None:
                break
        else:
            continue
        inv = [0] * len(perm)
        for i, p in enumerate(perm):
            inv[p] = i
        r = len(perm)
        moved = [t1]
        for u, plan in chain:
            for i, what in plan:
                if isinstance(what, str):
                    if u.inputs[i] is t1.outputs[0]:
                        u.set_input(i, t1.inputs[0])
                elif isinstance(what, Node):
                    u.set_input(i, what.inputs[0])
                    moved.append(what)
                elif what.size != 1:
                    c = what.reshape((1,) * (r - what.ndim) + what.shape).transpose(inv)
                    hint = u.inputs[i].name or "const"
                    u.set_input(i, site.new_const(np.ascontiguousarray(c), hint, before=u))
            out = u.outputs[0]
            out.type = _permuted(out.type, inv)
        remove_dead(g, moved)
        for n, q in ends.items():  # each reader takes Transpose(perm) first: merged in place
            merged = [perm[i] for i in q]
            set_attr(n, "perm", merged)
            if merged == sorted(merged):
                _bypass(site, n, v)
        done["transpose-push"] += 1
    return done


def drop_node(node: Node) -> None:
    remove_node(node)
