"""Shape bookkeeping folded away: Shape→Gather→Unsqueeze→Concat chains become constants, or
Reshape/Expand targets with 0, -1 and 1 where a dim is only known by its symbol.

Inference (the ``infer`` pass, just before) tracks the values of small integer tensors, with
symbols for dynamic dims. A value known in full becomes a constant. A Reshape target known up to
symbols becomes constant too: a symbol equal to the input's dim at the same place reads 0 (copy
that dim), one other unknown entry reads -1. An Expand target's symbol equal to the input's
aligned dim reads 1. Dynamic dims stay dynamic and keep their names (nothing is baked in).
"""

from __future__ import annotations

import collections

import numpy as np

from onyx.passes.core import Site, graph_pass, is_used, replace_value, static_shape

_LIMIT = 1024  # elements: larger known values are left to constant folding


def _numeric(a: np.ndarray) -> np.ndarray | None:
    if a.dtype != object:
        return a
    if all(isinstance(v, int | np.integer) for v in a.reshape(-1)):
        return a.astype(np.int64)
    return None


def _reshape_target(site: Site, node) -> np.ndarray | None:
    known = site.options.known.get(node.inputs[1])
    shape = static_shape(node.inputs[0])
    if known is None or shape is None or known.ndim != 1:
        return None
    zero_ok = not node.attribute("allowzero", 0)
    entries = _solve_free(known.tolist(), shape)
    target, free = [], 0
    for i, d in enumerate(entries):
        if isinstance(d, int):
            if d == 0 and not zero_ok:
                return None
            free += d == -1
            target.append(d)
        elif zero_ok and i < len(shape) and d is not None and shape[i] == d:
            target.append(0)
        else:
            target.append(-1)
            free += 1
    if free > 1:
        return None
    return np.asarray(target, np.int64)


def _solve_free(entries: list, shape: tuple) -> list:
    """``entries`` with its -1 replaced by the int it stands for, where symbols cancel."""
    from onyx.shapes.dims import ddiv, prod

    if entries.count(-1) != 1 or any(d is None or d == 0 for d in entries):
        return entries
    if any(d is None for d in shape) or not all(isinstance(d, int | str) for d in entries):
        return entries
    i = entries.index(-1)
    rest = prod(entries[:i] + entries[i + 1 :])
    q = ddiv(prod(shape), rest) if rest is not None else None
    if isinstance(q, int) and q > 0:
        return entries[:i] + [q] + entries[i + 1 :]
    return entries


def _expand_target(site: Site, node) -> np.ndarray | None:
    known = site.options.known.get(node.inputs[1])
    shape = static_shape(node.inputs[0])
    if known is None or shape is None or known.ndim != 1 or known.size < len(shape):
        return None
    lead = known.size - len(shape)
    target = []
    for i, d in enumerate(known.tolist()):
        if isinstance(d, int):
            target.append(d)
        elif i >= lead and d is not None and shape[i - lead] == d:
            target.append(1)
        else:
            return None
    return np.asarray(target, np.int64)


@graph_pass("shape-folding")
def fold_shapes(site: Site) -> int:
    """Known shape values become constants; symbolic Reshape/Expand targets become 0/-1/1."""
    if site.graph is not site.model.graph:
        return 0  # inference keeps values for the main graph
    g, done = site.graph, collections.Counter()
    known = site.options.known
    for node in list(g.nodes):
        if node.graph is not g or node.op_type == "Constant":
            continue
        if node.op_type in ("Reshape", "Expand") and len(node.inputs) == 2:
            shape_in = node.inputs[1]
            if shape_in is not None and site.const(shape_in) is None:
                fn = _reshape_target if node.op_type == "Reshape" else _expand_target
                target = fn(site, node)
                if target is not None:
                    node.set_input(1, site.new_const(target, "shape", before=node))
                    done[f"{node.op_type.lower()}-target"] += 1
                    continue
        if node.domain not in ("", "ai.onnx") or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        if out is None or out in g.outputs or not is_used(out, g):
            continue
        value = known.get(out)
        if value is None or value.size > _LIMIT:
            continue
        value = _numeric(value)
        if value is None:
            continue
        dtype = getattr(out.type, "dtype", None)
        if dtype is None:
            continue
        from onyx.dtypes import to_numpy

        array = np.asarray(value).astype(to_numpy(dtype))
        shape = static_shape(out)
        if shape is not None and (len(shape) != array.ndim or any(
            isinstance(d, int) and d != n for d, n in zip(shape, array.shape)
        )):  # fmt: skip
            continue
        replace_value(g, out, site.new_const(array, out.name, before=node), site)
        done["shape-constant"] += 1
    return done
