"""Rewrites for what transformer exporters write around attention and linear layers.

``sequence-split``: a SplitToSequence read only by SequenceAt at constant positions (how
exporters write ``torch.split``) becomes one Split. ``gemm-3d``: a Reshape to 2-D, a Gemm with
constant weights, and a Reshape back to the leading dims (GPT-2's Conv1D) become MatMul and Add
on the 3-D tensor. ``attention-3d``: an Attention-23 whose Q, K and V are split into heads by
Reshape and Transpose, and whose output is merged back the same way, reads and writes the 3-D
(batch, seq, heads·size) tensors instead (``q_num_heads``/``kv_num_heads``). ``attention-mask``:
an additive mask that is zero everywhere (``Where`` of a condition every element of which holds,
such as positions ``>= 0``) is dropped. ``merge-projections``: MatMuls of one input by
unshared constant weights, each with a bias, become one MatMul, one Add and one Split.
"""

from __future__ import annotations

import collections

import numpy as np

from onyx.ir import Node, Value
from onyx.passes.core import (
    Site,
    graph_pass,
    remove_dead,
    replace_value,
    static_shape,
)  # fmt: skip
from onyx.shapes.dims import dmul

_STD = ("", "ai.onnx")


def _producer(value: Value | None, site: Site, op_type: str) -> Node | None:
    node = value.producer if value is not None else None
    if node is None or node.graph is not site.graph or node.domain not in _STD:
        return None
    return node if node.op_type == op_type else None


def _sole_reader(value: Value | None, site: Site, op_type: str) -> Node | None:
    if value is None or value in site.graph.outputs or len(value.uses) != 1:
        return None
    node = value.uses[0][0]
    ok = node.graph is site.graph and node.domain in _STD and node.op_type == op_type
    return node if ok else None


def _perm(node: Node | None) -> list[int] | None:
    p = node.attribute("perm") if node is not None else None
    return None if p is None else [int(i) for i in p]


# --- SplitToSequence + SequenceAt -> Split --------------------------------------------------
@graph_pass("sequence-split")
def sequence_split(site: Site) -> int:
    """SplitToSequence read only by SequenceAt at constant positions: one Split."""
    if site.opset < 13:
        return 0
    g, done = site.graph, 0
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "SplitToSequence" or node.domain not in _STD:
            continue
        seq = node.outputs[0]
        x = node.inputs[0]
        shape = static_shape(x)
        if seq in g.outputs or not seq.uses or shape is None or len(node.inputs) < 2:
            continue
        split = site.const(node.inputs[1])
        axis = int(node.attribute("axis", 0))
        if split is None or split.dtype.kind not in "iu" or not -len(shape) <= axis < len(shape):
            continue
        n = shape[axis]
        if split.ndim == 0:
            size = int(split)
            if not isinstance(n, int) or size <= 0:
                continue
            sizes = [size] * (n // size) + ([n % size] if n % size else [])
        else:
            sizes = [int(s) for s in split.reshape(-1)]
        readers = [user for user, _ in seq.uses]
        if not sizes or any(
            r.op_type != "SequenceAt" or r.domain not in _STD or r.graph is not g for r in readers
        ):
            continue
        positions = [site.const(r.inputs[1]) for r in readers]
        if any(p is None or p.size != 1 or p.dtype.kind not in "iu" for p in positions):
            continue
        positions = [int(p.reshape(())) for p in positions]
        if any(not -len(sizes) <= p < len(sizes) for p in positions):
            continue
        sizes_const = site.new_const(np.asarray(sizes, np.int64), "split", before=node)
        outs = site.node("Split", [x, sizes_const], {"axis": axis}, before=node,
                         outputs=len(sizes), hint="split")  # fmt: skip
        for reader, p in zip(readers, positions):
            replace_value(g, reader.outputs[0], outs[p % len(sizes)], site)
        remove_dead(g, [*readers, node])
        done += 1
    return done


# --- Reshape -> Gemm -> Reshape on 3-D tensors -> MatMul + Add --------------------------------
@graph_pass("gemm-3d")
def gemm_3d(site: Site) -> int:
    """Reshape (…, K) to (-1, K), Gemm with constant B, Reshape back: MatMul (+ Add) on (…, K)."""
    g, done = site.graph, 0
    for gemm in list(g.nodes):
        if gemm.graph is not g or gemm.op_type != "Gemm" or gemm.domain not in _STD:
            continue
        if gemm.attribute("transA", 0) or gemm.attribute("alpha", 1.0) != 1.0:
            continue
        first = _producer(gemm.inputs[0], site, "Reshape")
        last = _sole_reader(gemm.outputs[0], site, "Reshape")
        b = site.const(gemm.inputs[1])
        if first is None or last is None or b is None or b.ndim != 2:
            continue
        x = first.inputs[0]
        sx, sy = static_shape(x), static_shape(last.outputs[0])
        if sx is None or sy is None or len(sx) < 2 or len(sx) != len(sy):
            continue
        w = b.T if gemm.attribute("transB", 0) else b
        if sx[-1] != w.shape[0] or sy[-1] != w.shape[1] or any(
            d is None or d != e for d, e in zip(sx[:-1], sy[:-1])
        ):  # fmt: skip
            continue
        c = gemm.inputs[2] if len(gemm.inputs) > 2 else None
        bias = None
        if c is not None:
            bias = site.const(c)
            if bias is None or bias.ndim > 1 or bias.size not in (1, w.shape[1]):
                continue
            beta = float(gemm.attribute("beta", 1.0))
            if beta != 1.0:
                c = site.new_const((bias * beta).astype(bias.dtype), "bias", before=gemm)
        weight = (
            gemm.inputs[1]
            if not gemm.attribute("transB", 0)
            else site.new_const(np.ascontiguousarray(w), "weight", before=gemm)
        )
        y = site.node("MatMul", [x, weight], before=last, hint="matmul")[0]
        if bias is not None:
            y = site.node("Add", [y, c], before=last, hint="linear")[0]
        replace_value(g, last.outputs[0], y, site)
        remove_dead(g, [last, gemm, first])
        done += 1
    return done


# --- parallel projections of one input -> one MatMul, one Add, one Split ------------------------
def _projection(
    site: Site, mm: Node, x: Value
) -> tuple[np.ndarray, np.ndarray | None, Value] | None:
    """(weight, bias or None, result) of MatMul(x, W) (+ b) with constant, unshared W and b."""
    if mm.graph is not site.graph or mm.op_type != "MatMul" or mm.domain not in _STD:
        return None
    if len(mm.inputs) != 2 or mm.inputs[0] is not x or mm.inputs[1] is x:
        return None
    w = site.const(mm.inputs[1])
    if w is None or w.ndim != 2 or len(mm.inputs[1].uses) != 1:
        return None
    add = _sole_reader(mm.outputs[0], site, "Add")
    if add is None:
        return w, None, mm.outputs[0]
    other = add.inputs[1] if add.inputs[0] is mm.outputs[0] else add.inputs[0]
    b = site.const(other)
    if b is None or b.shape != (w.shape[1],) or b.dtype != w.dtype or len(other.uses) != 1:
        return w, None, mm.outputs[0]
    return w, b, add.outputs[0]


@graph_pass("merge-projections")
def merge_projections(site: Site) -> int:
    """MatMuls of one input by constant weights (each + a bias, or none with one): one MatMul,
    Add (where they had biases) and Split."""
    if site.opset < 13:
        return 0
    g, done = site.graph, 0
    seen: set = set()
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "MatMul" or node.inputs[0] in seen:
            continue
        x = node.inputs[0]
        seen.add(x)
        sx = static_shape(x)
        if sx is None or len(sx) < 2:
            continue
        found = [(user, _projection(site, user, x)) for user, i in x.uses if i == 0]
        found = [(u, p) for u, p in found if p is not None]
        with_bias = [(u, p) for u, p in found if p[1] is not None]
        without = [(u, p) for u, p in found if p[1] is None]
        # (BLAS runs one wide GEMM faster than three narrow ones: BERT-base's Q, K and V)
        group = with_bias if len(with_bias) >= 2 else without if len(without) >= 2 else []
        if len({(p[0].shape[0], p[0].dtype) for _, p in group}) != 1 or len(
            {u.name for u, _ in group}
        ) != len(group):  # fmt: skip
            continue
        order = {n: i for i, n in enumerate(g.nodes)} if len(group) > 1 else {}
        group.sort(key=lambda up: order[up[0]])
        w = np.concatenate([p[0] for _, p in group], axis=1)
        first = group[0][0]
        y = site.node("MatMul", [x, site.new_const(w, "weight", before=first)], before=first,
                      hint="matmul")[0]  # fmt: skip
        if group[0][1][1] is not None:
            b = np.concatenate([p[1] for _, p in group])
            y = site.node("Add", [y, site.new_const(b, "bias", before=first)], before=first,
                          hint="linear")[0]  # fmt: skip
        sizes = site.new_const(np.asarray([p[0].shape[1] for _, p in group], np.int64), "split")
        outs = site.node("Split", [y, sizes], {"axis": -1}, before=first, outputs=len(group),
                         hint="split")  # fmt: skip
        dead = []
        for (mm, (_, _, result)), out in zip(group, outs):
            replace_value(g, result, out, site)
            dead += [result.producer, mm]
        remove_dead(g, dead)
        done += 1
    return done


# --- Attention on 3-D inputs ------------------------------------------------------------------
def _split_heads(site: Site, value: Value) -> tuple[Value, int, int] | None:
    """(x, heads, size) where ``value`` is Transpose(Reshape(x (B, S, H·D)) to (B, S, H, D))."""
    tr = _producer(value, site, "Transpose")
    if tr is None or _perm(tr) != [0, 2, 1, 3]:
        return None
    rs = _producer(tr.inputs[0], site, "Reshape")
    if rs is None:
        return None
    x = rs.inputs[0]
    sx, s4 = static_shape(x), static_shape(rs.outputs[0])
    if sx is None or s4 is None or len(sx) != 3 or len(s4) != 4:
        return None
    h, d = s4[2], s4[3]
    if not (isinstance(h, int) and isinstance(d, int) and sx[2] == h * d):
        return None
    if sx[0] is None or sx[1] is None or (sx[0], sx[1]) != (s4[0], s4[1]):
        return None
    return x, h, d


def _merged_heads(site: Site, y: Value) -> Node | None:
    """The Reshape that turns Attention's (B, H, S, D) result into (B, S, H·D) or (B·S, H·D)."""
    tr = _sole_reader(y, site, "Transpose")
    if tr is None or _perm(tr) != [0, 2, 1, 3]:
        return None
    rs = _sole_reader(tr.outputs[0], site, "Reshape")
    st, sm = static_shape(tr.outputs[0]), static_shape(rs.outputs[0]) if rs else None
    if st is None or sm is None or len(st) != 4 or len(sm) not in (2, 3):
        return None
    h, d = st[2], st[3]
    if not (isinstance(h, int) and isinstance(d, int) and sm[-1] == h * d):
        return None
    if st[0] is None or st[1] is None:
        return None
    if len(sm) == 3 and (sm[0], sm[1]) != (st[0], st[1]):
        return None
    if len(sm) == 2 and (sm[0] is None or sm[0] != dmul(st[0], st[1])):
        return None
    return rs


@graph_pass("attention-3d")
def attention_3d(site: Site) -> int:
    """Attention-23 on heads split by Reshape+Transpose and merged back: on the 3-D tensors."""
    if site.opset < 23 and "Attention" not in site.options.newer_ops:
        return 0
    g, done = site.graph, 0
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "Attention" or node.domain not in _STD:
            continue
        if len(node.inputs) > 4 or node.attribute("q_num_heads") is not None:
            continue
        if any(v is not None and (v.uses or v in g.outputs) for v in node.outputs[1:]):
            continue
        parts = [_split_heads(site, v) for v in node.inputs[:3]]
        if any(p is None for p in parts):
            continue
        (xq, hq, dq), (xk, hk, dk), (xv, hv, _dv) = parts
        if hk != hv or dq != dk or hq % hk:
            continue
        merge = _merged_heads(site, node.outputs[0])
        if merge is None:
            continue
        attrs = {name: a.value for name, a in node.attributes.items()}
        attrs.update(q_num_heads=hq, kv_num_heads=hk)
        rest = list(node.inputs[3:])
        y = site.node("Attention", [xq, xk, xv, *rest], attrs, before=merge, hint="attention")[0]
        old = [merge.inputs[0].producer, node]
        if len(static_shape(merge.outputs[0])) == 3:
            replace_value(g, merge.outputs[0], y, site)
            old.insert(0, merge)
        else:  # (B·S, H·D): the Reshape stays, reading the 3-D result
            merge.set_input(0, y)
        for v in node.inputs[:3]:
            tr = v.producer
            old += [tr, tr.inputs[0].producer]
        remove_dead(g, old)
        done += 1
    return done


# --- additive masks that add nothing ---------------------------------------------------------
def _lower_bound(site: Site, value: Value | None, depth: int = 0) -> float | None:
    """A number every element of ``value`` is at least, when a few ops make it plain."""
    if value is None or depth > 8:
        return None
    c = site.const(value)
    if c is not None:
        return float(c.min()) if c.size and c.dtype.kind in "iuf" else None
    node = value.producer
    if node is None or node.graph is not site.graph or node.domain not in _STD:
        return None
    if node.op_type == "Range":
        start, delta = site.const(node.inputs[0]), site.const(node.inputs[2])
        if start is None or delta is None or float(delta.reshape(())) <= 0:
            return None
        return float(start.reshape(()))
    if node.op_type in ("Unsqueeze", "Squeeze", "Reshape", "Expand", "Identity", "Transpose",
                        "Flatten", "Cast") and node.inputs:  # fmt: skip
        if node.op_type == "Cast" and not _widens(node):
            return None
        return _lower_bound(site, node.inputs[0], depth + 1)
    return None


def _widens(cast: Node) -> bool:
    src = getattr(getattr(cast.inputs[0], "type", None), "dtype", None)
    return src is not None and src.name.startswith("INT") and int(cast.attribute("to", 0)) in (
        1, 6, 7, 11  # float, int32, int64, double: non-negative integers stay non-negative
    )  # fmt: skip


def _all_true(site: Site, value: Value | None, depth: int = 0) -> bool:
    """Whether every element of the boolean ``value`` is plainly true."""
    if value is None or depth > 8:
        return False
    c = site.const(value)
    if c is not None:
        return c.dtype == np.bool_ and bool(c.all())
    node = value.producer
    if node is None or node.graph is not site.graph or node.domain not in _STD:
        return False
    op = node.op_type
    if op in ("Expand", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Transpose", "Flatten"):
        return _all_true(site, node.inputs[0], depth + 1)
    if op == "And":
        return all(_all_true(site, v, depth + 1) for v in node.inputs)
    if op in ("GreaterOrEqual", "Greater"):
        lo, hi = _lower_bound(site, node.inputs[0]), site.const(node.inputs[1])
        if lo is None or hi is None or hi.size == 0 or hi.dtype.kind not in "iuf":
            return False
        return lo >= float(hi.max()) if op == "GreaterOrEqual" else lo > float(hi.max())
    return False


def _zero_mask(site: Site, mask: Value) -> bool:
    """Whether the additive float ``mask`` is zero everywhere."""
    c = site.const(mask)
    if c is not None:
        return c.dtype.kind == "f" and not np.any(c)
    node = mask.producer
    if node is None or node.graph is not site.graph or node.domain not in _STD:
        return False
    if node.op_type == "Where":
        a = site.const(node.inputs[1])
        return a is not None and a.dtype.kind == "f" and not np.any(a) and _all_true(
            site, node.inputs[0]
        )  # fmt: skip
    if node.op_type in ("Expand", "Unsqueeze", "Reshape", "Identity"):
        return _zero_mask(site, node.inputs[0])
    return False


@graph_pass("attention-mask")
def attention_mask(site: Site) -> int:
    """An Attention's additive mask that is zero everywhere is dropped."""
    if site.opset < 23 and "Attention" not in site.options.newer_ops:
        return 0
    g, done = site.graph, collections.Counter()
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "Attention" or node.domain not in _STD:
            continue
        if len(node.inputs) != 4 or node.inputs[3] is None:
            continue
        mask = node.inputs[3]
        if getattr(getattr(mask.type, "dtype", None), "name", None) not in (
            "FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16"
        ) or not _zero_mask(site, mask):  # fmt: skip
            continue
        # the mask broadcasts to (B, H, Sq, Skv): it must not widen the result's shape
        ms = static_shape(mask)
        if ms is None or len(ms) > 4:
            continue
        producer = mask.producer
        node.set_input(3, None)
        _trim_inputs(node)
        if producer is not None:
            remove_dead(g, [producer])
        done["attention-zero-mask"] += 1
    return done


def _trim_inputs(node: Node) -> None:
    """Drop trailing missing inputs of ``node``."""
    while node._inputs and node._inputs[-1] is None:
        node._inputs.pop()


__all__ = ["attention_3d", "attention_mask", "gemm_3d", "sequence_split"]
