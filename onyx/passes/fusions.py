"""Fusions into standard operators, each gated on the opset that has the operator.

LayerNormalization-17 (mean/variance written out, with or without scale and bias), Gelu-20 (the
erf form and the tanh approximation), Swish-24 (x times its Sigmoid), RMSNormalization-23 (with
a scale, or with a unit one where the exporter dropped it), RotaryEmbedding-23 (the rotate-half
form over constant tables) and Attention-23 from the scaled-dot-product pattern exporters write
(scale on the scores or split across Q and K, an additive mask).
"""

from __future__ import annotations

import math

import numpy as np

from onyx import dtypes
from onyx.passes.core import Site, static_shape
from onyx.passes.rules import Match, Rule, rule_pass


def _close(a: np.ndarray | None, v: float, rtol: float = 1e-3) -> bool:
    return (
        a is not None
        and a.size == 1
        and a.dtype.kind == "f"
        and bool(np.isclose(float(a.reshape(())), v, rtol=rtol, atol=0))
    )


def _is_float(v) -> bool:
    dtype = getattr(getattr(v, "type", None), "dtype", None)
    return dtype is not None and dtype.name in ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


def _axes(m: Match, node_name: str, site: Site, input_index: int = 1) -> list[int] | None:
    node = m.nodes[node_name]
    if len(node.inputs) > input_index and node.inputs[input_index] is not None:
        a = site.const(node.inputs[input_index])
        return None if a is None else [int(v) for v in a.reshape(-1)]
    axes = node.attribute("axes")
    return None if axes is None else [int(v) for v in axes]


# --- Gelu ----------------------------------------------------------------------------------
class GeluErf(Rule):
    """x · ½ · (1 + erf(x / √2)), in any association of the products."""

    name = "gelu-erf"
    emits = ("", "Gelu", 20)

    def pattern(self, p):
        x = p.var("x")
        variants = []
        for inner in (p.op.Div(x, p.const("s"), _name="scaled"),
                      p.op.Mul(x, p.const("s"), _name="scaled")):  # fmt: skip
            erf1 = p.op.Add(p.op.Erf(inner), p.const("one"))
            variants += [
                p.op.Mul(p.op.Mul(x, erf1), p.const("half")),
                p.op.Mul(p.op.Mul(x, p.const("half")), erf1),
                p.op.Mul(x, p.op.Mul(erf1, p.const("half"))),
            ]
        return variants

    def check(self, m, site):
        scaled = m.nodes["scaled"]
        s = float(m["s"].reshape(())) if m["s"].size == 1 else None
        if s is None:
            return "the Erf's scale is not a scalar"
        s = s if scaled.op_type == "Div" else 1 / s if s else 0.0
        if not (math.isclose(s, math.sqrt(2), rel_tol=1e-3) and _close(m["one"], 1.0)
                and _close(m["half"], 0.5)):  # fmt: skip
            return "constants are not 1/√2, 1 and ½"
        return None if _is_float(m.x) else "x is not floating point"

    def replace(self, b, m):
        return b.node("Gelu", [m.x], {"approximate": "none"}, before=m.root)[0]


class GeluTanh(Rule):
    """½ · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))."""

    name = "gelu-tanh"
    emits = ("", "Gelu", 20)

    def pattern(self, p):
        x = p.var("x")
        variants = []
        for cube in (p.op.Pow(x, p.const("three")), p.op.Mul(x, p.op.Mul(x, x))):
            inner = p.op.Mul(p.op.Add(x, p.op.Mul(cube, p.const("k"))), p.const("c"))
            t1 = p.op.Add(p.op.Tanh(inner), p.const("one"))
            variants += [
                p.op.Mul(p.op.Mul(x, p.const("half")), t1),
                p.op.Mul(p.op.Mul(x, t1), p.const("half")),
                p.op.Mul(x, p.op.Mul(t1, p.const("half"))),
            ]
        return variants

    def check(self, m, site):
        if "three" in m.arrays and not _close(m["three"], 3.0):
            return "the power is not 3"
        if not (_close(m["k"], 0.044715) and _close(m["c"], math.sqrt(2 / math.pi))
                and _close(m["one"], 1.0) and _close(m["half"], 0.5)):  # fmt: skip
            return "constants are not those of the tanh approximation"
        return None if _is_float(m.x) else "x is not floating point"

    def replace(self, b, m):
        return b.node("Gelu", [m.x], {"approximate": "tanh"}, before=m.root)[0]


# --- normalizations ------------------------------------------------------------------------
class LayerNorm(Rule):
    """(x - mean(x)) / sqrt(mean((x - mean)²) + eps) · scale + bias over the last axis."""

    name = "layer-norm"
    emits = ("", "LayerNormalization", 17)

    def pattern(self, p):
        x = p.var("x")
        variants = []
        for n_in in (1, 2):

            def mean(v, name, n_in=n_in):
                return (p.op.ReduceMean(v, _name=name) if n_in == 1
                        else p.op.ReduceMean(v, p.const(name + "_axes"), _name=name))  # fmt: skip

            d = p.op.Sub(x, mean(x, "mean"), _name="sub")
            var = mean(p.op.Pow(d, p.const("two")), "var")
            normed = p.op.Div(d, p.op.Sqrt(p.op.Add(var, p.const("eps"))))
            variants.append(p.op.Add(p.op.Mul(normed, p.var("scale")), p.var("bias")))
            variants.append(p.op.Mul(normed, p.var("scale")))
        return variants

    def check(self, m, site):
        if not _close(m["two"], 2.0) or m["eps"].size != 1:
            return "not a variance"
        shape = static_shape(m.x)
        if shape is None or not _is_float(m.x):
            return "x's rank or type is unknown"
        r = len(shape)
        a1, a2 = _axes(m, "mean", site), _axes(m, "var", site)
        if a1 is None or a2 is None or len(a1) != 1 or [a % r for a in a1] != [a % r for a in a2]:
            return "means over different or unknown axes"
        for n in ("mean", "var"):
            if m.nodes[n].attribute("keepdims", 1) != 1:
                return "keepdims is 0"
        if a1[0] % r != r - 1:
            return "not over the last axis"
        for name in ("scale", "bias"):
            v = m.values.get(name)
            if v is None:
                continue
            s = static_shape(v)
            if s is None or len(s) != 1 or s[0] != shape[-1]:
                return f"{name} is not a vector over the last axis"
        if "bias" not in m.values:
            users = m.root.outputs[0].uses
            if len(users) == 1 and users[0][0].op_type == "Add":
                return "an Add of a bias follows (the larger pattern fuses)"
        m.extra["eps"] = float(m["eps"].reshape(()))
        return None

    def replace(self, b, m):
        ins = [m.x, m.scale] + ([m.bias] if "bias" in m.values else [])
        return b.node("LayerNormalization", ins, {"axis": -1, "epsilon": m.extra["eps"]},
                      before=m.root)[0]  # fmt: skip


class RMSNorm(Rule):
    """x / sqrt(mean(x²) + eps) · scale (or x · 1/sqrt(...)) over the last axis."""

    name = "rms-norm"
    emits = ("", "RMSNormalization", 23)

    def pattern(self, p):
        x = p.var("x")
        variants = []
        for n_in in (1, 2):

            def mean(v, n_in=n_in):
                return (p.op.ReduceMean(v, _name="ms") if n_in == 1
                        else p.op.ReduceMean(v, p.const("axes"), _name="ms"))  # fmt: skip

            for sq in (p.op.Pow(x, p.const("two")), p.op.Mul(x, x)):
                root = p.op.Sqrt(p.op.Add(mean(sq), p.const("eps")))
                for normed in (p.op.Div(x, root), p.op.Mul(x, p.op.Reciprocal(root))):
                    variants.append(p.op.Mul(normed, p.var("scale")))
        return variants

    def check(self, m, site):
        why = self.normalizes(m, site)
        if why is not None:
            return why
        s = static_shape(m.scale)
        if s is None or len(s) != 1 or s[0] != static_shape(m.x)[-1]:
            return "scale is not a vector over the last axis"
        return None

    def normalizes(self, m, site) -> str | None:
        """Why the matched steps are not x / rms(x) over the last axis (None: they are; the
        epsilon is then in ``m.extra``)."""
        if "two" in m.arrays and not _close(m["two"], 2.0):
            return "not a square"
        shape = static_shape(m.x)
        if shape is None or not _is_float(m.x):
            return "x's rank or type is unknown"
        if _centred(m.x):
            return "x is x - mean(x) (the LayerNorm pattern fuses)"
        axes = _axes(m, "ms", site)
        if axes is None or len(axes) != 1 or axes[0] % len(shape) != len(shape) - 1:
            return "not over the last axis"
        m.extra["eps"] = float(m["eps"].reshape(()))
        return None

    def replace(self, b, m):
        return b.node("RMSNormalization", [m.x, m.scale], {"axis": -1, "epsilon": m.extra["eps"]},
                      before=m.root)[0]  # fmt: skip


def _centred(x) -> bool:
    """Whether ``x`` is Sub(y, ReduceMean(y)): what LayerNorm's written-out pattern scales (an
    RMS fusion there would leave the mean and the Sub behind)."""
    node = x.producer
    if node is None or node.op_type != "Sub" or len(node.inputs) != 2 or node.inputs[1] is None:
        return False
    mean = node.inputs[1].producer
    return mean is not None and mean.op_type == "ReduceMean" and mean.inputs[0] is node.inputs[0]


class RMSNormUnscaled(RMSNorm):
    """x / sqrt(mean(x²) + eps) with no scale after it (a unit weight folded away): the scale
    of RMSNormalization becomes a vector of ones."""

    name = "rms-norm-unscaled"

    def pattern(self, p):
        return [v.inputs[0] for v in super().pattern(p)]  # each variant without its Mul(scale)

    def check(self, m, site):
        why = self.normalizes(m, site)
        if why is not None:
            return why
        if not isinstance(static_shape(m.x)[-1], int):
            return "x's last dim is not known (the unit scale's length)"
        users = m.root.outputs[0].uses
        if len(users) == 1 and users[0][0].op_type == "Mul":
            return "a Mul follows (the scaled pattern fuses)"
        return None

    def replace(self, b, m):
        dtype = dtypes.to_numpy(m.x.type.dtype)
        ones = b.new_const(np.ones(static_shape(m.x)[-1], dtype), "rms_scale", before=m.root)
        return b.node("RMSNormalization", [m.x, ones], {"axis": -1, "epsilon": m.extra["eps"]},
                      before=m.root)[0]  # fmt: skip


# --- attention -----------------------------------------------------------------------------
class Attention(Rule):
    """softmax(Q·Kᵀ·scale + mask)·V over 4-D (batch, heads, seq, head_size) tensors."""

    name = "attention"
    emits = ("", "Attention", 23)

    def pattern(self, p):
        q, k, v = p.var("q"), p.var("k"), p.var("v")
        variants = []
        for kt in (p.op.Transpose(k, _name="kt"), k):
            scores = [
                p.op.Mul(p.op.MatMul(q, kt, _name="qk"), p.const("scale")),
                p.op.Div(p.op.MatMul(q, kt, _name="qk"), p.const("scale")),
                p.op.MatMul(
                    p.op.Mul(q, p.const("scale")), p.op.Mul(kt, p.const("kscale")), _name="qk"
                ),
            ]
            for s in scores:
                for sm in (p.op.Softmax(p.op.Add(s, p.var("mask")), _name="softmax"),
                           p.op.Softmax(s, _name="softmax")):  # fmt: skip
                    guarded = p.op.Where(p.op.IsNaN(sm), p.const("zero"), sm)  # NaN guard
                    variants += [p.op.MatMul(sm, v), p.op.MatMul(guarded, v)]
        return variants

    def check(self, m, site):
        q, v = static_shape(m.q), static_shape(m.v)
        if q is None or v is None or len(q) != 4 or len(v) != 4:
            return "q and v are not 4-D"
        if not _is_float(m.q):
            return "not floating point"
        if "zero" in m.arrays and not (m["zero"].size == 1 and float(m["zero"].reshape(())) == 0):
            return "the NaN guard does not write zeros"
        if m.nodes["softmax"].attribute("axis", -1) not in (-1, 3):
            return "softmax not over the last axis"
        kt = m.nodes.get("kt")
        k = static_shape(m.k)
        if k is None or len(k) != 4:
            return "k is not 4-D"
        if kt is not None:
            if list(kt.attribute("perm", [])) != [0, 1, 3, 2]:
                return "K is not transposed over its last two axes"
            key = m.k
        else:
            key = None  # K given transposed: (batch, heads, head_size, seq)
        scale = float(m["scale"].reshape(())) if m["scale"].size == 1 else None
        if scale is None:
            return "scale is not a scalar"
        if "kscale" in m.arrays:
            if m["kscale"].size != 1:
                return "scale is not a scalar"
            scale *= float(m["kscale"].reshape(()))
        elif m.root.inputs and any(n.op_type == "Div" for n in m.nodes.values()):
            scale = 1.0 / scale
        m.extra["scale"] = scale
        m.extra["key"] = key
        mask = m.values.get("mask")
        if mask is not None:
            ms = static_shape(mask)
            if ms is None or len(ms) > 4 or not _is_float(mask):
                return "the mask is not an additive float mask of rank <= 4"
        return None

    def replace(self, b, m):
        key = m.extra["key"]
        if key is None:
            key = b.node("Transpose", [m.k], {"perm": [0, 1, 3, 2]}, before=m.root)[0]
        ins = [m.q, key, m.v] + ([m.mask] if "mask" in m.values else [])
        return b.node("Attention", ins, {"scale": m.extra["scale"]}, before=m.root)[0]


# --- rotary embedding ----------------------------------------------------------------------
class Rotary(Rule):
    """x·cos + rotate_half(x)·sin over 4-D (batch, heads, seq, head_size) x, rotate_half(x) =
    concat(-x[..., h:], x[..., :h]), with constant cos/sin tables whose two halves are equal
    (what exporters write for Llama-style models at a static sequence length): becomes
    RotaryEmbedding with (batch, seq, head_size/2) caches. Interleaved and partial rotations,
    and tables computed at run time, are left as they are."""

    name = "rotary-embedding"
    emits = ("", "RotaryEmbedding", 23)

    def pattern(self, p):
        x = p.var("x")
        variants = []
        for n in (5, 4):

            def piece(name, n=n):
                ins = [p.const(f"{name}_{k}") for k in ("starts", "ends", "axes", "steps")[: n - 1]]
                return p.op.Slice(x, *ins, _name=name)

            rotated = p.op.Concat(p.op.Neg(piece("second")), piece("first"), _name="concat")
            variants.append(p.op.Add(p.op.Mul(x, p.const("cos")),
                                     p.op.Mul(rotated, p.const("sin"))))  # fmt: skip
        return variants

    def check(self, m, site):
        shape = static_shape(m.x)
        if shape is None or len(shape) != 4 or not _is_float(m.x):
            return "x is not a 4-D floating-point tensor"
        b, _, s, d = shape
        if not all(isinstance(v, int) for v in (b, s, d)) or d % 2:
            return "batch, sequence or head size is not static (or the head size is odd)"
        half = d // 2
        for name, (start, stop) in (("first", (0, half)), ("second", (half, d))):
            got = _slice_of_last_axis(m, name, d)
            if got != (start, stop):
                return f"the {name} half is not x[..., {start}:{stop}]"
        if m.nodes["concat"].attribute("axis") % 4 != 3:
            return "the halves are not joined over the last axis"
        caches = []
        for name in ("cos", "sin"):
            table = m[name]
            if table.dtype != dtypes.to_numpy(m.x.type.dtype):
                return f"the {name} table's type differs from x's"
            try:
                full = np.broadcast_to(table, (b, 1, s, d))
            except ValueError:
                return f"the {name} table does not broadcast over x without a heads axis"
            if np.broadcast_shapes(table.shape, (b, 1, s, d)) != (b, 1, s, d):
                return f"the {name} table is bigger than x"
            if not np.array_equal(full[..., :half], full[..., half:]):
                return f"the two halves of the {name} table differ"
            caches.append(np.ascontiguousarray(full[:, 0, :, :half]))
        m.extra["caches"] = caches
        return None

    def replace(self, b, m):
        cos, sin = (b.new_const(c, hint, before=m.root)
                    for c, hint in zip(m.extra["caches"], ("cos_cache", "sin_cache")))  # fmt: skip
        return b.node("RotaryEmbedding", [m.x, cos, sin], before=m.root)[0]


def _slice_of_last_axis(m: Match, name: str, size: int) -> tuple[int, int] | None:
    """(start, stop) of a step-1 Slice over the last axis of a 4-D value, clamped to ``size``."""
    starts, ends = m[f"{name}_starts"].reshape(-1), m[f"{name}_ends"].reshape(-1)
    axes = m.arrays.get(f"{name}_axes")
    steps = m.arrays.get(f"{name}_steps")
    if len(starts) != 1 or len(ends) != 1:
        return None
    if axes is None or axes.size != 1 or int(axes.reshape(())) % 4 != 3:
        return None
    if steps is not None and (steps.size != 1 or int(steps.reshape(())) != 1):
        return None
    start, stop = (int(v) + size if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    return min(start, size), min(stop, size)


# --- Swish -----------------------------------------------------------------------------------
class Swish(Rule):
    """x · sigmoid(x) (SiLU: EfficientNet's and MobileViT's activation), either order."""

    name = "swish"
    emits = ("", "Swish", 24)

    def pattern(self, p):
        x = p.var("x")
        return p.op.Mul(x, p.op.Sigmoid(x))

    def check(self, m, site):
        return None if _is_float(m.x) else "x is not floating point"

    def replace(self, b, m):
        return b.node("Swish", [m.x], {}, before=m.root)[0]


RULES = [
    GeluErf(),
    GeluTanh(),
    Swish(),
    LayerNorm(),
    RMSNorm(),
    RMSNormUnscaled(),
    Rotary(),
    Attention(),
]
fusions = rule_pass("fusions", RULES)
