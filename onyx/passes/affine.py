"""Per-channel scalings and shifts folded into the weights before them, and Pad into Conv.

A step ``y * factor + offset`` per output channel (BatchNormalization in inference mode, or a
Mul, Add, Sub or Div by a constant that holds one value per channel or one in all) after a Conv,
ConvTranspose, Gemm or another BatchNormalization with constant parameters folds into them:
scaled weights, shifted bias, computed in float64 and stored in the weights' type. The runtime's
build step uses ``fold_affine`` too (graph_optimization_level above 0).
"""

from __future__ import annotations

import collections

import numpy as np

from onyx.ir import Node, Value
from onyx.passes.core import Site, graph_pass, remove_dead, replace_value, set_attr, static_shape


def _channel_vector(c: np.ndarray, rank: int | None, axis: int) -> np.ndarray | None:
    """``c`` as one value per channel along ``axis`` of a rank-``rank`` result (or a scalar
    () when it holds one value for all), or None when it broadcasts any other way."""
    if c.size == 1 and (rank is None or c.ndim <= rank):
        return c.reshape(())
    if rank is None or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if all(n == 1 for i, n in enumerate(shape) if i != axis % rank):
        return c.reshape(-1)
    return None


def affine_of(node: Node, position: int, site: Site, rank: int | None,
              axis: int = 1) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """``node`` (reading the folded result at input ``position``) as (factor, offset) in float64,
    per channel along ``axis`` or scalars, or None where it is not such a step."""
    op, ins = node.op_type, node.inputs
    if node.domain not in ("", "ai.onnx"):
        return None
    if op == "BatchNormalization":
        if position != 0 or len(ins) != 5 or node.attribute("training_mode", 0):
            return None
        if node.attribute("spatial", 1) != 1 or axis != 1:
            return None
        if len([v for v in node.outputs if v is not None and v.uses]) > 1:
            return None
        params = [site.const(v) for v in ins[1:]]
        if any(p is None or p.ndim != 1 or p.dtype.kind != "f" for p in params):
            return None
        if any(p.shape != params[0].shape for p in params):
            return None
        scale, bias, mean, var = (p.astype(np.float64) for p in params)
        factor = scale / np.sqrt(var + node.attribute("epsilon", 1e-5))
        return factor, bias - mean * factor
    if op not in ("Mul", "Add", "Sub", "Div") or len(ins) != 2:
        return None
    if position != 0 and op in ("Sub", "Div"):
        return None
    c = site.const(ins[1 - position])
    if c is None or c.dtype.kind != "f":
        return None
    vec = _channel_vector(c.astype(np.float64), rank, axis)
    if vec is None:
        return None
    one, zero = np.ones(()), np.zeros(())
    return {"Mul": (vec, zero), "Div": (1.0 / vec, zero), "Add": (one, vec),
            "Sub": (one, -vec)}[op]  # fmt: skip


def _only_reader(value: Value, site: Site) -> Node | None:
    uses = value.uses
    if len(uses) != 1 or value in site.graph.outputs:
        return None
    return uses[0][0]


def _fold_one(site: Site, host: Node) -> bool:
    """Fold the step after ``host`` (its only reader) into ``host``'s constants."""
    out = host.outputs[0]
    if out is None:
        return False
    follower = _only_reader(out, site)
    if follower is None or follower.graph is not site.graph:
        return False
    position = [v for v in follower.inputs].index(out)
    if follower.inputs.count(out) > 1:
        return False
    op = host.op_type
    c = site.const
    if op in ("Conv", "ConvTranspose"):
        w = c(host.inputs[1]) if len(host.inputs) > 1 else None
        b = c(host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] is not None else None
        if w is None or w.dtype.kind != "f" or (len(host.inputs) > 2 and host.inputs[2] is not None
                                                and b is None):  # fmt: skip
            return False
        if op == "ConvTranspose" and host.attribute("group", 1) != 1:
            return False
        rank, axis = w.ndim, 1
        channels = w.shape[0] if op == "Conv" else w.shape[1]
    elif op == "Gemm":
        if host.attribute("transA", 0) not in (0, 1):
            return False
        w = c(host.inputs[1])
        b = c(host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] is not None else None
        if w is None or w.dtype.kind != "f" or w.ndim != 2:
            return False
        if len(host.inputs) > 2 and host.inputs[2] is not None and b is None:
            return False
        rank, axis = 2, 1
        channels = w.shape[0] if host.attribute("transB", 0) else w.shape[1]
    elif op == "BatchNormalization":
        if host.attribute("training_mode", 0) or len(host.inputs) != 5:
            return False
        if any(v is not None and v.uses for v in host.outputs[1:]):
            return False
        if not site.options.copy_shared and any(len(v.uses) > 1 for v in host.inputs[1:3]):
            # the scale or bias is read elsewhere too (by another node, or as this one's mean
            # or variance): the fold would add two new vectors to save a step, so a file
            # keeps the step; the runtime's plan folds it (Options.copy_shared)
            return False
        params = [c(v) for v in host.inputs[1:]]
        if any(p is None or p.ndim != 1 or p.dtype.kind != "f" for p in params):
            return False
        shape = static_shape(host.inputs[0])
        rank, axis = (None if shape is None else len(shape)), 1
        if rank is None:
            return False
        channels = params[0].shape[0]
        w = params[0]
    else:
        return False
    got = affine_of(follower, position, site, rank, axis)
    if got is None:
        return False
    factor, offset = got
    if any(a.size not in (1, channels) for a in (factor, offset)):
        return False
    if follower.op_type != "BatchNormalization":
        other = follower.inputs[1 - position]
        if site.const(other).ndim > rank:
            return False  # the constant raises the rank of the result
    factor = np.broadcast_to(factor, (channels,))
    offset = np.broadcast_to(offset, (channels,))
    dtype = w.dtype
    if op == "BatchNormalization":
        scale, bias = (p.astype(np.float64) for p in params[:2])
        new_scale, new_bias = scale * factor, bias * factor + offset
        host.set_input(1, site.new_const(new_scale.astype(dtype), "bn_scale", before=host))
        host.set_input(2, site.new_const(new_bias.astype(dtype), "bn_bias", before=host))
    else:
        if op == "Conv":
            new_w = w * factor.reshape((-1,) + (1,) * (w.ndim - 1))
        elif op == "ConvTranspose":
            new_w = w * factor.reshape((1, -1) + (1,) * (w.ndim - 2))
        else:
            new_w = w * (factor.reshape(-1, 1) if host.attribute("transB", 0) else factor)
        if op == "Gemm":
            beta = host.attribute("beta", 1.0)
            bias = np.zeros(()) if b is None else b.astype(np.float64) * beta
            new_b = bias * factor + offset
            set_attr(host, "beta", None)
        else:
            bias = np.zeros(()) if b is None else b.astype(np.float64)
            new_b = np.broadcast_to(bias * factor + offset, (channels,))
        host.set_input(1, site.new_const(new_w.astype(dtype), "w", before=host))
        new_bias = site.new_const(np.asarray(new_b).astype(dtype), "b", before=host)
        if len(host.inputs) > 2:
            host.set_input(2, new_bias)
        else:
            host.append_input(new_bias)
    result = follower.outputs[0]
    replace_value(site.graph, result, out, site)
    if result is not None and result.type is not None and out.type is None:
        out.type = result.type
    remove_dead(site.graph, [follower])
    return True


_HOSTS = frozenset({"Conv", "ConvTranspose", "Gemm", "BatchNormalization"})


@graph_pass("fold-affine")
def fold_affine(site: Site) -> int:
    """Fold BatchNormalization/Mul/Add/Sub/Div by per-channel constants into the Conv,
    ConvTranspose, Gemm or BatchNormalization before them."""
    done = collections.Counter()
    for node in list(site.graph.nodes):
        if node.graph is site.graph and node.op_type in _HOSTS and node.domain in ("", "ai.onnx"):
            while node.graph is site.graph and _fold_one(site, node):
                done[f"fold-into-{node.op_type}"] += 1
    return done


@graph_pass("pad-into-conv")
def pad_into_conv(site: Site) -> int:
    """A zero Pad of the spatial dims before a Conv (or an AveragePool that counts padding)
    becomes the Conv's own pads."""
    done = 0
    for node in list(site.graph.nodes):
        if node.graph is not site.graph or node.op_type not in ("Conv", "AveragePool"):
            continue
        if node.op_type == "AveragePool" and not node.attribute("count_include_pad", 0):
            continue
        x = node.inputs[0]
        pad = x.producer if x is not None else None
        if pad is None or pad.op_type != "Pad" or pad.graph is not site.graph:
            continue
        if node.attribute("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            continue
        if pad.attribute("mode", "constant") not in ("constant", b"constant"):
            continue
        if site.opset >= 11:
            pads = site.const(pad.inputs[1]) if len(pad.inputs) > 1 else None
            value = site.const(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] else None
            if len(pad.inputs) > 3 and pad.inputs[3] is not None:
                continue
        else:
            pads = np.asarray(pad.attribute("pads", []))
            value = np.asarray(pad.attribute("value", 0.0))
        if pads is None or (value is not None and np.any(value != 0)):
            continue
        pads = [int(p) for p in pads.reshape(-1)]
        r = len(pads) // 2
        if r < 3 or any(p < 0 for p in pads) or any(pads[i] or pads[r + i] for i in (0, 1)):
            continue
        if x.uses and len(x.uses) != 1 or x in site.graph.outputs:
            continue
        old = list(node.attribute("pads", [0] * (2 * (r - 2))))
        s = r - 2
        new = [old[i] + pads[2 + i] for i in range(s)] + [old[s + i] + pads[r + 2 + i]
                                                           for i in range(s)]  # fmt: skip
        set_attr(node, "pads", new)
        node.set_input(0, pad.inputs[0])
        remove_dead(site.graph, [pad])
        done += 1
    return done


@graph_pass("matmul-add-to-gemm")
def matmul_add_to_gemm(site: Site) -> int:
    """MatMul of two matrices then Add of a bias that fits Gemm: one Gemm."""
    done = 0
    g = site.graph
    for node in list(g.nodes):
        if node.graph is not g or node.op_type != "MatMul" or len(node.inputs) != 2:
            continue
        a, b = node.inputs
        sa, sb = static_shape(a), static_shape(b)
        if sa is None or sb is None or len(sa) != 2 or len(sb) != 2:
            continue
        if getattr(a.type, "dtype", None) is None or a.type.dtype.name not in (
            "FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16"
        ):  # fmt: skip
            continue
        out = node.outputs[0]
        add = _only_reader(out, site)
        if add is None or add.op_type != "Add" or add.graph is not g:
            continue
        other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
        if other is out:
            continue
        sc = static_shape(other)
        if sc is None or len(sc) > 2:
            continue
        n = sb[1]
        if len(sc) >= 1 and sc[-1] not in (1, n):
            continue
        if len(sc) == 2 and sc[0] not in (1, sa[0]):
            continue
        y = site.node("Gemm", [a, b, other], before=add, hint="gemm")[0]
        replace_value(g, add.outputs[0], y, site)
        remove_dead(g, [add, node])
        done += 1
    return done
