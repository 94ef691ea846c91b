"""Shape rules, one small function per operator, and value rules for data propagation.

A shape rule takes a ``NodeContext`` ``n`` and returns, for a one-output op, a tuple of dims (the
element type then comes from the schema's type constraints), None (nothing known beyond the
element type), or a full ``Type``; for several outputs, a list of those. A value rule returns
the numpy value of output 0 (object arrays hold symbols), or None.
"""

from __future__ import annotations

import math

import numpy as np

from onyx.dtypes import DataType
from onyx.ir import OptionalType, SequenceType, Shape, TensorType
from onyx.shapes.dims import (
    ShapeError,
    axis,
    bcast,
    bdim,
    cdiv,
    dadd,
    ddiv,
    dmul,
    dsub,
    prod,
    unify,
)  # fmt: skip

RULES: dict[tuple[str, str], object] = {}
VALUES: dict[str, object] = {}
INT_MAX = 2**62
LIMIT = 1024


def rule(*ops: str, domain: str = ""):
    def register(fn):
        for op in ops:
            RULES[(domain, op)] = fn
        return fn

    return register


def T(dtype, dims=None):
    """A tensor type (dims None: rank unknown)."""
    return TensorType(DataType(dtype), None if dims is None else Shape(dims))


def unknown(r):
    """r dims of unknown size; None (rank unknown) for no r or an absurd one (a declared dim
    of 2**62 read as a rank would exhaust memory)."""
    return (None,) * r if isinstance(r, int) and 0 <= r <= MAX_RANK else None


MAX_RANK = 1024  # far beyond any model; numpy stops at 64


# --- element-wise ----------------------------------------------------------------------------
UNARY = [
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf",
    "Exp", "Floor", "IsInf", "IsNaN", "Log", "Neg", "Not", "Reciprocal", "Relu", "Round",
    "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "Elu",
    "Selu", "Celu", "LeakyRelu", "HardSigmoid", "HardSwish", "ThresholdedRelu", "Shrink",
    "Mish", "Gelu", "Swish", "Softmax", "LogSoftmax", "Hardmax", "Clip", "LpNormalization",
    "LRN", "MeanVarianceNormalization", "BitwiseNot", "CumSum", "CumProd", "Trilu",
    "InstanceNormalization", "GroupNormalization", "RMSNormalization", "ReverseSequence",
    "Scatter", "ScatterElements", "ScatterND", "RegexFullMatch", "Binarizer", "Cast",
    "CastLike", "Normalizer", "Scaler", "Imputer"
]  # fmt: skip
rule(*UNARY)(lambda n: n.s(0))
rule("Binarizer", "Normalizer", "Scaler", "Imputer", domain="ai.onnx.ml")(lambda n: n.s(0))
BINARY = [
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    "PRelu", "Max", "Min", "Sum", "Mean", "Where", "StringConcat"
]  # fmt: skip
# Before opset 7 these took a `broadcast`/`axis` attribute (PRelu: a slope per channel) that
# lays the second input onto the first, so the result has the first input's shape.
LEGACY_BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Less", "Greater", "PRelu",
}  # fmt: skip


@rule(*BINARY)
def binary(n):
    if n.opset < 7 and n.op_type() in LEGACY_BROADCAST:
        return n.s(0)
    return bcast(*[n.s(i) for i in range(n.nin) if n.has(i)])


@rule("Identity")
def identity(n):
    return n.t(0)


@rule("Dropout")
def dropout(n):
    return [n.s(0), n.s(0)]


@rule("Cast")
def cast(n):
    return T(n.a("to"), n.s(0))


@rule("CastLike")
def cast_like(n):
    return T(n.dt(1), n.s(0)) if n.dt(1) is not None else n.s(0)


@rule("BitCast")
def bitcast(n):
    to, src, s = DataType(n.a("to")), n.dt(0), n.s(0)
    if src is None or s is None:
        return T(to)
    a, b = src.bits, to.bits
    if a == b:
        return T(to, s)
    if a > b:
        return T(to, (*s, a // b))
    return T(to, s[:-1])


@rule("EyeLike", "RandomUniformLike", "RandomNormalLike", "Bernoulli")
def like(n):
    dt = n.a("dtype")
    return T(dt if dt is not None else n.dt(0), n.s(0)) if (dt or n.dt(0)) else n.s(0)


@rule("RandomUniform", "RandomNormal")
def random(n):
    return T(n.a("dtype", 1), n.a("shape"))


@rule("Multinomial")
def multinomial(n):
    s = n.s(0)
    return T(n.a("dtype", 6), None if s is None else (s[0], n.a("sample_size", 1)))


# --- shapes as data --------------------------------------------------------------------------
def _range(n, r):
    start, end = n.a("start", 0), n.a("end", r)
    start, end = (max(0, min(r, x + r if x < 0 else x)) for x in (start, end))
    return start, end


@rule("Shape")
def shape(n):
    s = n.s(0)
    if s is None:
        return (None,)
    a, b = _range(n, len(s))
    return (max(b - a, 0),)


@rule("Size")
def size(n):
    return ()


@rule("Constant")
def constant(n):
    for name in n.node.attributes:
        v = n.a(name)
        if name in ("value", "sparse_value"):
            return T(v.dtype, v.dims)
        if name == "value_float":
            return T(1, ())
        if name == "value_int":
            return T(7, ())
        if name == "value_string":
            return T(8, ())
        if name in ("value_floats", "value_ints", "value_strings"):
            return T({"f": 1, "i": 7, "s": 8}[name[6]], (len(v),))
    return None


@rule("Reshape")
def reshape(n):
    s = n.s(0)
    target = n.ints(1) if n.opset >= 5 else n.a("shape")
    if target is None:
        ts = n.s(1)
        return unknown(ts[0]) if ts and isinstance(ts[0], int) else None
    allow_zero = n.a("allowzero", 0)
    out, neg = [], None
    for k, d in enumerate(target):
        if d == 0 and not allow_zero and isinstance(d, int):
            out.append(s[k] if s is not None and k < len(s) else None)
        elif d == -1:
            neg = k
            out.append(None)
        else:
            out.append(d)
    if neg is not None and s is not None:
        out[neg] = ddiv(prod(s), prod(out[:neg] + out[neg + 1 :]))
    return tuple(out)


@rule("Flatten")
def flatten(n):
    s = n.s(0)
    if s is None:
        return (None, None)
    a = n.a("axis", 1)
    a = a + len(s) if a < 0 else a
    return (prod(s[:a]), prod(s[a:]))


@rule("Transpose")
def transpose(n):
    s = n.s(0)
    if s is None:
        return None
    perm = n.a("perm") or list(range(len(s)))[::-1]
    return tuple(s[p] for p in perm)


@rule("Concat")
def concat(n):
    shapes = [n.s(i) for i in range(n.nin) if n.has(i)]
    known = [s for s in shapes if s is not None]
    if not known:
        return None
    r = len(known[0])
    a = axis(n.a("axis"), r)
    if any(len(s) != r for s in known):
        raise ShapeError("inputs of different ranks")
    out = [unify([s[k] for s in known]) if k != a else None for k in range(r)]
    if len(known) == len(shapes):
        total = 0
        for s in known:
            total = dadd(total, s[a])
        out[a] = total
    return tuple(out)


@rule("Split")
def split(n):
    s = n.s(0)
    outs = n.nout
    if s is None:
        return [None] * outs
    a = axis(n.a("axis", 0), len(s))
    sizes = n.ints(1) if n.opset >= 13 and n.has(1) else n.a("split")
    d = s[a]
    if sizes is None and n.has(1):
        sizes = [None] * outs
    if sizes is None:
        if n.a("num_outputs") is not None and isinstance(d, int):
            chunk = cdiv(d, outs)
            sizes = [chunk] * (outs - 1) + [d - chunk * (outs - 1)]
        elif isinstance(d, int) and d % outs == 0:
            sizes = [d // outs] * outs
        else:
            sizes = [None] * outs
    return [s[:a] + (k,) + s[a + 1 :] for k in sizes]


def _axes(n, idx):
    if n.opset >= 13 and idx is not None:
        return n.ints(idx) if n.has(idx) else None
    return n.a("axes")


@rule("Squeeze")
def squeeze(n):
    s = n.s(0)
    if s is None:
        return None
    axes = _axes(n, 1)
    if n.has(1) and axes is None:
        return None
    if axes is None:
        if any(not isinstance(d, int) for d in s):
            return None
        return tuple(d for d in s if d != 1)
    axes = {axis(a, len(s)) for a in axes}
    return tuple(d for k, d in enumerate(s) if k not in axes)


@rule("Unsqueeze")
def unsqueeze(n):
    s = n.s(0)
    axes = _axes(n, 1)
    if s is None or axes is None:
        return None if s is None or not n.s(1) else unknown(len(s) + (n.s(1)[0] or 0))
    r = len(s) + len(axes)
    axes = {axis(a, r) for a in axes}
    it = iter(s)
    return tuple(1 if k in axes else next(it) for k in range(r))


def _slice_dim(d, start, end, step):
    if isinstance(d, int):
        return len(range(*slice(start, end, step).indices(d)))
    if step == 1 and start == 0 and end >= INT_MAX // 4:
        return d
    if step == 1 and start >= 0 and 0 <= end < INT_MAX // 4 and end >= start:
        return None
    return None


def _slice_args(n):
    if n.opset < 10:
        starts, ends, axes = n.a("starts"), n.a("ends"), n.a("axes")
        steps = None
    else:
        starts, ends = n.ints(1), n.ints(2)
        axes = n.ints(3) if n.has(3) else None
        steps = n.ints(4) if n.has(4) else None
        if n.has(3) and axes is None or n.has(4) and steps is None:
            return None
    if starts is None or ends is None:
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    return starts, ends, axes, steps


@rule("Slice")
def slice_(n):
    s = n.s(0)
    if s is None:
        return None
    args = _slice_args(n)
    if args is None:
        return unknown(len(s))
    out = list(s)
    for st, en, a, sp in zip(*args):
        a = axis(a, len(s))
        if not all(isinstance(x, int) for x in (st, en, sp)):
            out[a] = None
            continue
        out[a] = _slice_dim(s[a], st, en, sp)
    return tuple(out)


@rule("Gather")
def gather(n):
    s, i = n.s(0), n.s(1)
    if s is None or i is None:
        return None
    a = axis(n.a("axis", 0), len(s))
    return s[:a] + i + s[a + 1 :]


@rule("GatherElements")
def gather_elements(n):
    return n.s(1)


@rule("GatherND")
def gather_nd(n):
    s, i, b = n.s(0), n.s(1), n.a("batch_dims", 0)
    if s is None or i is None or not isinstance(i[-1], int):
        return None
    return i[:-1] + s[b + i[-1] :]


@rule("Expand")
def expand(n):
    target = n.ints(1)
    s = n.s(0)
    if target is None:
        ts = n.s(1)
        if s is None or not ts or not isinstance(ts[0], int):
            return None
        r = max(len(s), ts[0])
        if r > MAX_RANK:
            return None
        return (None,) * (r - len(s)) + tuple(d if isinstance(d, int) and d != 1 else None
                                              for d in s)  # fmt: skip
    return bcast(s, tuple(target))


@rule("Tile")
def tile(n):
    s, reps = n.s(0), n.ints(1)
    if s is None:
        return None
    if reps is None:
        return unknown(len(s))
    return tuple(dmul(d, k) for d, k in zip(s, reps))


@rule("ConstantOfShape")
def constant_of_shape(n):
    value = n.a("value")
    dt = value.dtype if value is not None else 1
    dims = n.ints(0)
    if dims is None:
        s = n.s(0)
        return T(dt, unknown(s[0]) if s and isinstance(s[0], int) else None)
    return T(dt, dims)


@rule("Range")
def range_(n):
    vals = [n.v(i) for i in range(3)]
    if any(v is None or v.dtype == object for v in vals):
        return (None,)
    start, limit, delta = (v.reshape(-1)[0].item() for v in vals)
    return (max(math.ceil((limit - start) / delta), 0),)


@rule("Pad")
def pad(n):
    s = n.s(0)
    if s is None:
        return None
    pads = n.ints(1) if n.opset >= 11 else n.a("pads", n.a("paddings"))
    if pads is None:
        return unknown(len(s))
    axes = n.ints(3) if n.has(3) else list(range(len(s)))
    if axes is None:
        return unknown(len(s))
    out = list(s)
    k = len(axes)
    for j, a in enumerate(axes):
        a = axis(a, len(s))
        out[a] = dadd(dadd(s[a], pads[j]), pads[j + k])
    return tuple(out)


@rule("CenterCropPad")
def center_crop_pad(n):
    s, target = n.s(0), n.ints(1)
    if s is None:
        return None
    if target is None:
        return unknown(len(s))
    axes = n.a("axes") or list(range(len(s)))
    out = list(s)
    for a, d in zip(axes, target):
        out[axis(a, len(s))] = d
    return tuple(out)


# --- linear algebra --------------------------------------------------------------------------
def _matmul(a, b):
    if a is None or b is None:
        return None
    if not a or not b:
        raise ShapeError("MatMul of a scalar")
    A = (1, *a) if len(a) == 1 else a
    B = (*b, 1) if len(b) == 1 else b
    if isinstance(A[-1], int) and isinstance(B[-2], int) and A[-1] != B[-2]:
        raise ShapeError(f"inner dims {A[-1]} and {B[-2]} differ")
    out = (*bcast(A[:-2], B[:-2]), A[-2], B[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


rule("MatMul", "MatMulInteger")(lambda n: _matmul(n.s(0), n.s(1)))


@rule("QLinearMatMul")
def qlinear_matmul(n):
    return T(n.dt(7), _matmul(n.s(0), n.s(3))) if n.dt(7) else _matmul(n.s(0), n.s(3))


@rule("Gemm")
def gemm(n):
    a, b = n.s(0), n.s(1)
    if a is None or b is None:
        return (None, None)
    m = a[1] if n.a("transA", 0) else a[0]
    k = b[0] if n.a("transB", 0) else b[1]
    return (m, k)


@rule("Det")
def det(n):
    s = n.s(0)
    return None if s is None else s[:-2]


@rule("Einsum")
def einsum(n):
    eq = n.a("equation", "").replace(" ", "")
    shapes = [n.s(i) for i in range(n.nin)]
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    letters: dict[str, object] = {}
    ell = None
    for term, s in zip(terms, shapes):
        if s is None:
            return None
        if "..." in term:
            pre, post = term.split("...")
            k = len(s) - len(pre) - len(post)
            e = s[len(pre) : len(pre) + k]
            ell = e if ell is None else bcast(ell, e)
            term_dims = list(zip(pre, s[: len(pre)])) + list(zip(post, s[len(s) - len(post) :]))
        else:
            term_dims = list(zip(term, s))
        for c, d in term_dims:
            letters[c] = d if c not in letters else bdim([letters[c], d])
    if not _:
        counts = {c: lhs.count(c) for c in letters}
        rhs = ("..." if ell is not None else "") + "".join(
            sorted(c for c, k in counts.items() if k == 1)
        )
    out = []
    for part in rhs.split("..."):
        pass
    pre, sep, post = rhs.partition("...")
    out = [letters[c] for c in pre] + (list(ell or ()) if sep else []) + [letters[c] for c in post]
    return tuple(out)


# --- convolution and pooling -----------------------------------------------------------------
def _spatial(n, x, kernel, channels, transpose=False):
    if x is None or kernel is None:
        return None if x is None else (x[0], channels) + (None,) * (len(x) - 2)
    k = len(kernel)
    strides = n.a("strides") or [1] * k
    dil = n.a("dilations") or [1] * k
    pads = n.a("pads") or [0] * (2 * k)
    auto = n.a("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    ceil = n.a("ceil_mode", 0)
    out = []
    for i, d in enumerate(x[2:]):
        ek = (kernel[i] - 1) * dil[i] + 1 if isinstance(kernel[i], int) else None
        if not isinstance(d, int) or ek is None:
            out.append(None)
            continue
        if transpose:
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                out.append(d * strides[i])
            else:
                op = (n.a("output_padding") or [0] * k)[i]
                out.append(strides[i] * (d - 1) + op + ek - pads[i] - pads[i + k])
            continue
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-d // strides[i]))
        elif auto == "VALID":
            out.append((d - ek) // strides[i] + 1)
        else:
            span = d + pads[i] + pads[i + k] - ek
            o = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
            if ceil and (o - 1) * strides[i] >= d + pads[i]:
                o -= 1
            out.append(o)
    return (x[0], channels, *out)


@rule("Conv", "ConvInteger", "DeformConv")
def conv(n):
    x, w = n.s(0), n.s(1)
    kernel = n.a("kernel_shape") or (w[2:] if w is not None else None)
    return _spatial(n, x, kernel, w[0] if w is not None else None)


@rule("QLinearConv")
def qlinear_conv(n):
    x, w = n.s(0), n.s(3)
    kernel = n.a("kernel_shape") or (w[2:] if w is not None else None)
    return _spatial(n, x, kernel, w[0] if w is not None else None)


@rule("ConvTranspose")
def conv_transpose(n):
    x, w = n.s(0), n.s(1)
    channels = dmul(w[1], n.a("group", 1)) if w is not None else None
    output_shape = n.a("output_shape")
    if output_shape is not None and x is not None:
        return (x[0], channels, *output_shape[-(len(x) - 2) :])
    kernel = n.a("kernel_shape") or (w[2:] if w is not None else None)
    return _spatial(n, x, kernel, channels, transpose=True)


@rule("AveragePool", "MaxPool", "LpPool")
def pool(n):
    x = n.s(0)
    out = _spatial(n, x, n.a("kernel_shape"), x[1] if x is not None else None)
    return [out, out] if n.nout > 1 else out


@rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(n):
    x = n.s(0)
    return None if x is None else (*x[:2], *[1] * (len(x) - 2))


@rule("MaxRoiPool")
def max_roi_pool(n):
    x, rois = n.s(0), n.s(1)
    if x is None or rois is None:
        return None
    return (rois[0], x[1], *n.a("pooled_shape"))


@rule("RoiAlign")
def roi_align(n):
    x, rois = n.s(0), n.s(1)
    return (rois[0] if rois else None, x[1] if x else None, n.a("output_height", 1),
            n.a("output_width", 1))  # fmt: skip


@rule("MaxUnpool")
def max_unpool(n):
    x = n.s(0)
    if n.has(2):
        target = n.ints(2)
        return tuple(target) if target is not None else unknown(len(x) if x else None)
    if x is None:
        return None
    k = n.a("kernel_shape")
    strides = n.a("strides") or [1] * len(k)
    pads = n.a("pads") or [0] * (2 * len(k))
    out = [
        (d - 1) * strides[i] + k[i] - pads[i] - pads[i + len(k)] if isinstance(d, int) else None
        for i, d in enumerate(x[2:])
    ]
    return (*x[:2], *out)


@rule("Col2Im")
def col2im(n):
    x, image, block = n.s(0), n.ints(1), n.ints(2)
    if image is None and n.s(1) and isinstance(n.s(1)[0], int):
        image = unknown(n.s(1)[0])
    if x is None or image is None:
        return None
    if block is None:
        return (x[0], None, *image)
    return (x[0], ddiv(x[1], prod(block)), *image)


@rule("DepthToSpace")
def depth_to_space(n):
    x, b = n.s(0), n.a("blocksize")
    if x is None:
        return None
    return (x[0], ddiv(x[1], b * b), dmul(x[2], b), dmul(x[3], b))


@rule("SpaceToDepth")
def space_to_depth(n):
    x, b = n.s(0), n.a("blocksize")
    if x is None:
        return None
    return (x[0], dmul(x[1], b * b), ddiv(x[2], b), ddiv(x[3], b))


@rule("Resize", "Upsample")
def resize(n):
    x = n.s(0)
    if x is None:
        return None
    r = len(x)
    if n.op_type() == "Upsample" and n.opset < 9:
        scales, sizes = n.a("scales"), None
    elif n.opset < 11:
        scales, sizes = n.v(1), None
    else:
        scales = n.v(2) if n.has(2) else None
        sizes = n.ints(3) if n.has(3) else None
        if scales is not None and scales.size == 0:
            scales = None
    axes = n.a("axes") or list(range(r))
    axes = [axis(a, r) for a in axes]
    out = list(x)
    if sizes is not None:
        policy = n.a("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch" and all(isinstance(x[a], int) for a in axes):
            ratios = [sizes[j] / x[a] for j, a in enumerate(axes)]
            s = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                out[a] = math.floor(x[a] * s + 0.5)
            return tuple(out)
        for j, a in enumerate(axes):
            out[a] = sizes[j]
        return tuple(out)
    if scales is None:
        return tuple(None if k in axes else d for k, d in enumerate(x))
    scales = np.asarray(scales).reshape(-1).tolist()
    for j, a in enumerate(axes):
        out[a] = math.floor(x[a] * scales[j]) if isinstance(x[a], int) else None
    return tuple(out)


@rule("GridSample")
def grid_sample(n):
    x, g = n.s(0), n.s(1)
    if x is None or g is None:
        return None
    return (x[0], x[1], *g[1:-1])


@rule("AffineGrid")
def affine_grid(n):
    size = n.ints(1)
    if size is None:
        k = n.s(1)[0] if n.s(1) else None
        return None if not isinstance(k, int) or k > MAX_RANK else (None,) * (k - 1) + (k - 2,)
    return (size[0], *size[2:], len(size) - 2)


# --- reductions ------------------------------------------------------------------------------
def _reduce(n, s, axes, keep):
    if s is None:
        return None
    if axes is None:
        return (1,) * len(s) if keep else ()
    axes = {axis(a, len(s)) for a in axes}
    return tuple(1 if k in axes else d for k, d in enumerate(s) if keep or k not in axes)


REDUCE = [
    "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"
]  # fmt: skip


@rule(*REDUCE)
def reduce(n):
    s, keep = n.s(0), n.a("keepdims", 1)
    from_input = n.opset >= 18 or (n.op_type() == "ReduceSum" and n.opset >= 13)
    if from_input and n.has(1):
        axes = n.ints(1)
        if axes is None:
            return unknown(len(s)) if s is not None and keep else None
        if not axes and n.a("noop_with_empty_axes", 0):
            return s
        return _reduce(n, s, axes or None, keep)
    if from_input and n.a("noop_with_empty_axes", 0):
        return s
    return _reduce(n, s, n.a("axes"), keep)


@rule("ArgMax", "ArgMin")
def arg(n):
    return _reduce(n, n.s(0), [n.a("axis", 0)], n.a("keepdims", 1))


@rule("TopK")
def topk(n):
    s = n.s(0)
    if s is None:
        return [None, None]
    k = n.ints(1)[0] if n.opset >= 10 and n.ints(1) is not None else n.a("k")
    if n.opset >= 10 and n.ints(1) is None:
        k = None
    a = axis(n.a("axis", -1), len(s))
    out = s[:a] + (k,) + s[a + 1 :]
    return [out, out]


@rule("LayerNormalization")
def layer_norm(n):
    s = n.s(0)
    if s is None:
        return [None, None, None]
    a = axis(n.a("axis", -1), len(s))
    stat = T(n.a("stash_type", 1), s[:a] + (1,) * (len(s) - a))
    return [s, stat, stat]


@rule("BatchNormalization")
def batch_norm(n):
    s = n.s(0)
    c = (s[1],) if s is not None and len(s) > 1 else (None,)
    return [s] + [c] * (n.nout - 1)


@rule("NegativeLogLikelihoodLoss")
def nll(n):
    return n.s(1) if n.a("reduction", "mean") == "none" else ()


@rule("SoftmaxCrossEntropyLoss")
def softmax_ce(n):
    loss = n.s(1) if n.a("reduction", "mean") == "none" else ()
    return [loss, n.s(0)]


# --- data-dependent --------------------------------------------------------------------------
@rule("NonZero")
def nonzero(n):
    s = n.s(0)
    return (len(s) if s is not None else None, None)


@rule("Compress")
def compress(n):
    s = n.s(0)
    if n.a("axis") is None or s is None:
        return (None,)
    a = axis(n.a("axis"), len(s))
    return s[:a] + (None,) + s[a + 1 :]


@rule("Unique")
def unique(n):
    s = n.s(0)
    a = n.a("axis")
    if a is None or s is None:
        y = (None,)
    else:
        a = axis(a, len(s))
        y = s[:a] + (None,) + s[a + 1 :]
    inverse = (prod(s) if s is not None else None,) if a is None else ((s[a],) if s else (None,))
    return [y, (None,), inverse, (None,)]


@rule("NonMaxSuppression")
def nms(n):
    return (None, 3)


@rule("OneHot")
def one_hot(n):
    s, depth = n.s(0), n.ints(1)
    if s is None:
        return None
    r = len(s) + 1
    a = axis(n.a("axis", -1), r)
    d = depth[0] if depth else None
    return s[:a] + (d,) + s[a:]


@rule("StringSplit")
def string_split(n):
    s = n.s(0)
    return [None if s is None else (*s, None), s]


@rule("StringNormalizer")
def string_normalizer(n):
    s = n.s(0)
    return None if s is None else (None,) if len(s) == 1 else (1, None)


@rule("TfIdfVectorizer")
def tfidf(n):
    s = n.s(0)
    width = max(n.a("ngram_indexes")) + 1
    return None if s is None else (width,) if len(s) == 1 else (s[0], width)


@rule("ImageDecoder")
def image_decoder(n):
    return (None, None, 1 if n.a("pixel_format", "RGB") == "Grayscale" else 3)


# --- signal ----------------------------------------------------------------------------------
@rule("DFT")
def dft(n):
    s = n.s(0)
    if s is None:
        return None
    if n.opset >= 20:
        if n.has(2) and n.ints(2) is None:
            last = 1 if n.a("inverse", 0) and n.a("onesided", 0) else 2
            if n.a("onesided", 0) or n.has(1):
                return (*[None] * (len(s) - 1), last)
            return (*s[:-1], 2)
        a = n.ints(2)[0] if n.has(2) else -2
    else:
        a = n.a("axis", 1)
    a = axis(a, len(s))
    out = list(s[:-1]) + [2]
    length = None
    if n.has(1) and n.s(1) != (0,):
        length = n.ints(1)
        length = length[0] if length else None
        out[a] = length
    if n.a("onesided", 0):
        if n.a("inverse", 0):
            out[-1] = 1
            if not n.has(1):
                out[a] = 2 * (s[a] - 1) if isinstance(s[a], int) else None
        else:
            out[a] = out[a] // 2 + 1 if isinstance(out[a], int) else None
    return tuple(out)


@rule("STFT")
def stft(n):
    s, step = n.s(0), n.ints(1)
    window = n.s(2) if n.has(2) else None
    length = n.ints(3) if n.has(3) else None
    flen = length[0] if length else (window[0] if window else None)
    if s is None:
        return None
    frames = None
    if isinstance(s[1], int) and isinstance(flen, int) and step and isinstance(step[0], int):
        frames = (s[1] - flen) // step[0] + 1
    bins = flen // 2 + 1 if n.a("onesided", 1) and isinstance(flen, int) else flen
    return (s[0], frames, bins, 2)


@rule("HannWindow", "HammingWindow", "BlackmanWindow")
def window(n):
    size = n.ints(0)
    return T(n.a("output_datatype", 1), (size[0] if size else None,))


@rule("MelWeightMatrix")
def mel(n):
    length, bins = n.ints(1), n.ints(0)
    rows = length[0] // 2 + 1 if length and isinstance(length[0], int) else None
    return T(n.a("output_datatype", 1), (rows, bins[0] if bins else None))


# --- recurrent and attention -----------------------------------------------------------------
@rule("RNN", "GRU", "LSTM")
def rnn(n):
    x = n.s(0)
    h = n.a("hidden_size")
    nd = 2 if n.a("direction", "forward") == "bidirectional" else 1
    if x is None:
        seq = batch = None
    elif n.a("layout", 0):
        batch, seq = x[0], x[1]
    else:
        seq, batch = x[0], x[1]
    if n.a("layout", 0):
        y, yh = (batch, seq, nd, h), (batch, nd, h)
    else:
        y, yh = (seq, nd, batch, h), (nd, batch, h)
    return [y, yh, yh][: n.nout]


@rule("Attention")
def attention(n):
    q, k, v = n.s(0), n.s(1), n.s(2)
    if q is None or k is None or v is None:
        return [None] * n.nout
    past_k = n.s(4) if n.has(4) else None
    past_v = n.s(5) if n.has(5) else None
    if len(q) == 4:
        b, hq, sq = q[0], q[1], q[2]
        hkv, skv, dv = k[1], k[2], v[3]
        out = (b, hq, sq, dv)
        dk = k[3]
    else:
        b, sq = q[0], q[1]
        hq, hkv = n.a("q_num_heads"), n.a("kv_num_heads")
        skv = k[1]
        dk = ddiv(k[2], hkv) if hkv else None
        dv = ddiv(v[2], hkv) if hkv else None
        out = (b, sq, dmul(hq, dv) if hq else None)
    total = dadd(past_k[2], skv) if past_k is not None else skv
    present_k = (b, hkv, total, dk)
    present_v = (b, hkv, dadd(past_v[2], skv) if past_v is not None else skv, dv)
    qk = (b, hq, sq, total)
    return [out, present_k, present_v, qk][: n.nout]


@rule("RotaryEmbedding", "SwiGLU", "TensorScatter")
def first_input_shaped(n):
    return [n.s(0)] + [None] * (n.nout - 1)


@rule("CausalConvWithState")
def causal_conv(n):
    x, w = n.s(0), n.s(1)
    state = None
    if x is not None and w is not None:
        state = (x[0], x[1], dsub(w[-1], 1))
    return [x, state]


@rule("FlexAttention", domain="ai.onnx.preview")
def flex_attention(n):
    q, v = n.s(0), n.s(2)
    return T(n.dt(0), None if q is None or v is None else (*q[:-1], v[-1])) if n.dt(0) else None


@rule("LinearAttention")
def linear_attention(n):
    q, k, v = n.s(0), n.s(1), n.s(2)
    if q is None or k is None or v is None:
        return [None, None]
    if len(q) == 4:
        return [(*q[:-1], v[-1]), T(n.dt(0), (q[0], k[1], k[-1], v[-1]))]
    hq, hkv = n.a("q_num_heads"), n.a("kv_num_heads")
    dv = ddiv(v[2], hkv) if hkv else None
    out = (q[0], q[1], dmul(hq, dv) if hq else None)
    return [out, T(n.dt(0), (q[0], hkv, ddiv(k[2], hkv) if hkv else None, dv))]


# --- quantization ----------------------------------------------------------------------------
@rule("QuantizeLinear")
def quantize(n):
    if n.has(2) and n.dt(2) is not None:
        return T(n.dt(2), n.s(0))
    return T(n.a("output_dtype", 0) or 2, n.s(0))


@rule("DequantizeLinear")
def dequantize(n):
    if n.opset >= 19 and n.dt(1) is not None:
        dt = n.a("output_dtype", 0) or n.dt(1)
        return T(dt, n.s(0))
    return T(1, n.s(0))


@rule("DynamicQuantizeLinear")
def dynamic_quantize(n):
    return [n.s(0), (), ()]


# --- sequences and optionals -----------------------------------------------------------------
def _elem_merge(a, b):
    """The union of two tensor types (dims that differ become unknown; ranks that differ: no
    shape)."""
    if a is None or b is None:
        return a or b
    if not isinstance(a, TensorType) or not isinstance(b, TensorType):
        return a
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return TensorType(a.dtype)
    return TensorType(a.dtype, Shape([x if x == y else None for x, y in zip(a.shape, b.shape)]))


@rule("SequenceEmpty")
def sequence_empty(n):
    return SequenceType(T(n.a("dtype", 1)))


@rule("SequenceConstruct")
def sequence_construct(n):
    elem = None
    for i in range(n.nin):
        elem = _elem_merge(elem, n.t(i))
    return SequenceType(elem)


@rule("SequenceInsert")
def sequence_insert(n):
    seq = n.t(0)
    base = seq.elem_type if isinstance(seq, SequenceType) else None
    return SequenceType(_elem_merge(base, n.t(1)) if base is not None else n.t(1))


@rule("SequenceErase")
def sequence_erase(n):
    return n.t(0)


@rule("SequenceAt")
def sequence_at(n):
    seq = n.t(0)
    return seq.elem_type if isinstance(seq, SequenceType) else None


@rule("SequenceLength")
def sequence_length(n):
    return ()


@rule("SplitToSequence")
def split_to_sequence(n):
    s, dt = n.s(0), n.dt(0)
    if dt is None:
        return None
    if s is None:
        return SequenceType(T(dt))
    a = axis(n.a("axis", 0), len(s))
    if not n.has(1):
        dims = s[:a] + s[a + 1 :] if n.a("keepdims", 1) == 0 else s[:a] + (1,) + s[a + 1 :]
    else:
        split = n.v(1)
        d = None
        if split is not None and split.ndim == 0:
            d = int(split)
        elif split is not None and split.dtype != object and len(set(split.tolist())) == 1:
            d = int(split[0])
        dims = s[:a] + (d,) + s[a + 1 :]
    return SequenceType(T(dt, dims))


@rule("ConcatFromSequence")
def concat_from_sequence(n):
    seq = n.t(0)
    elem = seq.elem_type if isinstance(seq, SequenceType) else None
    if not isinstance(elem, TensorType):
        return None
    if elem.shape is None:
        return T(elem.dtype)
    s = elem.shape.dims
    new = n.a("new_axis", 0)
    r = len(s) + (1 if new else 0)
    a = axis(n.a("axis"), r)
    out = list(s)
    if new:
        out.insert(a, None)
    else:
        out[a] = None
    return T(elem.dtype, out)


@rule("SequenceMap")
def sequence_map(n):
    body = n.a("body")
    ins = []
    for i in range(n.nin):
        t = n.t(i)
        ins.append(_elem_merge(t.elem_type, None) if isinstance(t, SequenceType) else t)
    outs = n.infer_subgraph(body, ins)
    return [SequenceType(_blank(t)) if t is not None else None for t in outs]


def _blank(t):
    """A tensor type with its symbolic dims made unknown (shared across iterations)."""
    if isinstance(t, TensorType) and t.shape is not None:
        return TensorType(t.dtype, Shape([d if isinstance(d, int) else None for d in t.shape]))
    return t


@rule("Optional")
def optional(n):
    t = n.a("type")
    return OptionalType(n.t(0) if n.has(0) else t)


@rule("OptionalHasElement")
def optional_has_element(n):
    return ()


@rule("OptionalGetElement")
def optional_get_element(n):
    t = n.t(0)
    return t.elem_type if isinstance(t, OptionalType) else t


# --- control flow ----------------------------------------------------------------------------
@rule("If")
def if_(n):
    a = n.infer_subgraph(n.a("then_branch"), [])
    b = n.infer_subgraph(n.a("else_branch"), [])
    for k, (x, y) in enumerate(zip(a, b)):
        if _clash(x, y):
            raise ShapeError(f"output {k} is {_kind(x)} in then_branch but {_kind(y)} in "
                             f"else_branch; expected one type")  # fmt: skip
    return [_union(x, y) for x, y in zip(a, b)]


def _clash(a, b) -> bool:
    """Two types of one kind (tensor, sequence, optional) whose element types differ."""
    return type(a) is type(b) and bool(_kind(a)) and bool(_kind(b)) and _kind(a) != _kind(b)


def _kind(t) -> str | None:
    """The type without its shape, as text ('tensor(float)'), or None while not fully known."""
    if isinstance(t, TensorType):
        return None if t.dtype == DataType.UNDEFINED else f"tensor({t.dtype.short_name})"
    if isinstance(t, SequenceType | OptionalType):
        inner = _kind(t.elem_type)
        head = "seq" if isinstance(t, SequenceType) else "optional"
        return None if inner is None else f"{head}({inner})"
    return None


def _union(a, b):
    if a is None or b is None:
        return a or b
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorType(a.dtype)
        dims = [x if x == y else None for x, y in zip(a.shape.dims, b.shape.dims)]
        return TensorType(a.dtype, Shape(dims))
    if isinstance(a, SequenceType) and isinstance(b, SequenceType):
        return SequenceType(_union(a.elem_type, b.elem_type))
    if isinstance(a, OptionalType) and isinstance(b, OptionalType):
        return OptionalType(_union(a.elem_type, b.elem_type))
    return a


@rule("Loop")
def loop(n):
    body = n.a("body")
    carried = [n.t(i) for i in range(2, n.nin)]
    ins = [T(7, ()), T(9, ()), *[_blank(t) for t in carried]]
    outs = n.infer_subgraph(body, ins)
    k = len(carried)
    final = list(outs[1 : 1 + k])
    for j, (t_in, t_out) in enumerate(zip(carried, final)):
        if _clash(t_in, t_out):
            raise ShapeError(f"loop-carried value {j} enters as {_kind(t_in)} but the body "
                             f"returns {_kind(t_out)}; expected one type")  # fmt: skip
    scans = []
    for t in outs[1 + k :]:
        if isinstance(t, TensorType):
            scans.append(T(t.dtype, None if t.shape is None else (None, *t.shape.dims)))
        else:
            scans.append(None)
    return final + scans


@rule("Scan")
def scan(n):
    body = n.a("body")
    m = n.a("num_scan_inputs")
    first = 1 if n.opset < 9 else 0
    states = [n.t(i) for i in range(first, n.nin - m)]
    if first:
        states = [_drop_batch(t) for t in states]
    scan_in = [n.t(i) for i in range(n.nin - m, n.nin)]
    in_axes = n.a("scan_input_axes") or [0] * m
    seq_len = None
    ins = list(states)
    for t, a in zip(scan_in, in_axes):
        if isinstance(t, TensorType) and t.shape is not None:
            s = t.shape.dims
            if n.opset < 9:
                seq_len = s[1]
                ins.append(T(t.dtype, s[2:]))
                continue
            a = axis(a, len(s))
            seq_len = unify([seq_len, s[a]]) if seq_len is not None else s[a]
            ins.append(T(t.dtype, s[:a] + s[a + 1 :]))
        else:
            ins.append(None)
    outs = n.infer_subgraph(body, ins)
    k = len(states)
    out_axes = n.a("scan_output_axes") or [0] * (len(outs) - k)
    result = list(outs[:k])
    if first:
        batch = n.s(n.nin - 1)[0] if n.s(n.nin - 1) else None
        result = [T(t.dtype, (batch, *t.shape.dims)) if isinstance(t, TensorType) and t.shape
                  is not None else t for t in result]  # fmt: skip
    for t, a in zip(outs[k:], out_axes):
        if isinstance(t, TensorType) and t.shape is not None:
            s = list(t.shape.dims)
            if n.opset < 9:
                batch = n.s(n.nin - 1)[0] if n.s(n.nin - 1) else None
                result.append(T(t.dtype, [batch, seq_len, *s]))
                continue
            a = axis(a, len(s) + 1)
            s.insert(a, seq_len)
            result.append(T(t.dtype, s))
        else:
            result.append(t)
    return result


def _drop_batch(t):
    if isinstance(t, TensorType) and t.shape is not None and len(t.shape):
        return T(t.dtype, t.shape.dims[1:])
    return t


# --- ai.onnx.ml ------------------------------------------------------------------------------
ML = "ai.onnx.ml"


def _n(n):
    s = n.s(0)
    return None if s is None else (s[0] if len(s) > 1 else 1 if len(s) == 1 else None)


@rule("LabelEncoder", domain=ML)
def label_encoder(n):
    for name, dt in (("values_strings", 8), ("values_int64s", 7), ("values_floats", 1)):
        if n.a(name) is not None:
            return T(dt, n.s(0))
    if n.a("values_tensor") is not None:
        return T(n.a("values_tensor").dtype, n.s(0))
    return n.s(0)


@rule("CategoryMapper", domain=ML)
def category_mapper(n):
    return T(7 if n.dt(0) == DataType.STRING else 8, n.s(0))


@rule("ArrayFeatureExtractor", domain=ML)
def array_feature_extractor(n):
    s, i = n.s(0), n.s(1)
    if s is None:
        return None
    return (*s[:-1], prod(i) if i is not None else None) if len(s) > 1 else (1, prod(i or [None]))


@rule("TreeEnsemble", domain=ML)
def tree_ensemble(n):
    return (_n(n), n.a("n_targets"))


@rule("TreeEnsembleRegressor", "LinearRegressor", "SVMRegressor", domain=ML)
def regressor(n):
    return (_n(n), n.a("n_targets", n.a("targets", 1)))


@rule("TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", domain=ML)
def classifier(n):
    labels = n.a("classlabels_strings")
    label_t = 8 if labels else 7
    classes = len(labels or n.a("classlabels_int64s") or n.a("classlabels_ints") or []) or None
    return [T(label_t, (_n(n),)), T(1, (_n(n), classes))]


@rule("OneHotEncoder", domain=ML)
def one_hot_encoder(n):
    s = n.s(0)
    cats = len(n.a("cats_int64s") or n.a("cats_strings") or []) or None
    return T(1, None if s is None else (*s, cats))


@rule("FeatureVectorizer", domain=ML)
def feature_vectorizer(n):
    return T(1, (_n(n), sum(n.a("inputdimensions") or []) or None))


@rule("DictVectorizer", "ZipMap", "CastMap", domain=ML)
def ml_untyped(n):
    return None


# --- training --------------------------------------------------------------------------------
TRAIN = "ai.onnx.preview.training"


@rule("Adagrad", "Momentum", "Adam", domain=TRAIN)
def optimizer(n):
    groups_out = 3 if n.op_type() == "Adam" else 2
    k = n.nout // groups_out
    outs = []
    for g in range(groups_out):
        src = 0 if g == 0 else g + 1
        outs += [n.s(2 + src * k + j) for j in range(k)]
    return outs


@rule("Gradient", domain=TRAIN)
def gradient(n):
    return [None] * n.nout


# --- values (data propagation) ---------------------------------------------------------------
def value(*ops):
    def register(fn):
        for op in ops:
            VALUES[op] = fn
        return fn

    return register


def arr(items) -> np.ndarray:
    """An int64 array when every element is a known int, else an object array."""
    items = list(items)
    if all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in items):
        return np.array(items, np.int64)
    out = np.empty(len(items), object)
    out[:] = items
    return out


def _small(a):
    return a if a is not None and np.size(a) <= LIMIT else None


@value("Constant")
def v_constant(n):
    for name in n.node.attributes:
        v = n.a(name)
        if name == "value" and v is not None and np.prod(v.dims) <= LIMIT:
            return v.numpy()
        if name == "value_int":
            return np.array(v, np.int64)
        if name == "value_ints":
            return np.array(v, np.int64)
        if name == "value_float":
            return np.array(v, np.float32)
        if name == "value_floats":
            return np.array(v, np.float32)
    return None


@value("Shape")
def v_shape(n):
    s = n.s(0)
    if s is None:
        return None
    a, b = _range(n, len(s))
    return arr(s[a:b])


@value("Size")
def v_size(n):
    s = n.s(0)
    p = prod(s) if s is not None else None
    return np.array(p, np.int64) if isinstance(p, int) else None


@value("Identity")
def v_identity(n):
    return n.v(0)


@value("Cast", "CastLike")
def v_cast(n):
    x = n.v(0)
    if x is None:
        return None
    to = DataType(n.a("to")) if n.op_type() == "Cast" else n.dt(1)
    if to is None:
        return None
    if x.dtype == object:
        return x if to in (DataType.INT64, DataType.INT32) else None
    return x.astype(to.numpy)


@value("Gather")
def v_gather(n):
    x, i = n.v(0), n.v(1)
    if x is None or i is None or i.dtype == object:
        return None
    return np.take(x, i.astype(np.int64), axis=n.a("axis", 0))


@value("Unsqueeze")
def v_unsqueeze(n):
    x, axes = n.v(0), _axes(n, 1)
    if x is None or axes is None:
        return None
    r = x.ndim + len(axes)
    for a in sorted(axis(a, r) for a in axes):
        x = np.expand_dims(x, a)
    return x


@value("Squeeze")
def v_squeeze(n):
    x = n.v(0)
    if x is None:
        return None
    axes = _axes(n, 1)
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    return np.squeeze(x, tuple(axis(a, x.ndim) for a in axes))


@value("Concat")
def v_concat(n):
    vals = [n.v(i) for i in range(n.nin) if n.has(i)]
    if any(v is None for v in vals):
        return None
    out = np.concatenate([v.astype(object) if v.dtype != object else v for v in vals],
                         axis=n.a("axis"))  # fmt: skip
    if all(isinstance(x, int) for x in out.reshape(-1).tolist()) and vals[0].dtype != object:
        return out.astype(vals[0].dtype)
    return out


@value("Reshape")
def v_reshape(n):
    x, s = n.v(0), reshape(n)
    if x is None or s is None or not all(isinstance(d, int) for d in s):
        return None
    return x.reshape(s)


@value("Slice")
def v_slice(n):
    x = n.v(0)
    args = _slice_args(n) if x is not None else None
    if args is None:
        return None
    index = [slice(None)] * x.ndim
    for st, en, a, sp in zip(*args):
        if not all(isinstance(k, int) for k in (st, en, sp)):
            return None
        index[axis(a, x.ndim)] = slice(st, en, sp)
    return x[tuple(index)]


def _sym_op(fn):
    def f(a, b):
        if a is None or b is None:
            return None
        return fn(a, b)

    return np.frompyfunc(f, 2, 1)


def _int_div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a // b if (a >= 0) == (b > 0) else -(-a // b)
    return ddiv(a, b)


def _eq(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return True if a == b else None
    return a == b


_SYM = {
    "Add": _sym_op(dadd), "Sub": _sym_op(dsub), "Mul": _sym_op(dmul), "Div": _sym_op(_int_div),
    "Equal": _sym_op(_eq),
}  # fmt: skip
_NUM = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Equal": np.equal,
    "Less": np.less, "Greater": np.greater, "Max": np.maximum, "Min": np.minimum,
    "Mod": None, "Div": None,
}  # fmt: skip


@value(*_NUM)
def v_binary(n):
    a, b = n.v(0), n.v(1)
    if a is None or b is None or n.nin != 2:
        return None
    op = n.op_type()
    if a.dtype == object or b.dtype == object:
        fn = _SYM.get(op)
        if fn is None:
            return None
        out = fn(a, b)
        if op == "Equal":
            return None if any(x is None for x in out.reshape(-1)) else out.astype(bool)
        items = out.reshape(-1).tolist()
        if all(isinstance(x, int) for x in items):
            return out.astype(np.int64)
        return _small(out)
    if op == "Div":
        if a.dtype.kind in "iu":
            q = np.abs(a) // np.maximum(np.abs(b), 1)
            return _small((q * np.sign(a) * np.sign(b)).astype(a.dtype))
        return _small(np.divide(a, b).astype(a.dtype))
    if op == "Mod":
        if a.dtype.kind in "iu" and not n.a("fmod", 0):
            return _small(np.mod(a, b))
        return _small(np.fmod(a, b).astype(a.dtype))
    out = _NUM[op](a, b)
    return _small(out.astype(a.dtype) if op not in ("Equal", "Less", "Greater") else out)


@value("Neg")
def v_neg(n):
    x = n.v(0)
    return -x if x is not None and x.dtype != object else None


@value("Where")
def v_where(n):
    c, a, b = n.v(0), n.v(1), n.v(2)
    if c is None or a is None or b is None or c.dtype == object:
        return None
    out = np.where(c, a, b)
    return _small(out)


@value("Not")
def v_not(n):
    x = n.v(0)
    return np.logical_not(x) if x is not None and x.dtype != object else None


@value("ConstantOfShape")
def v_constant_of_shape(n):
    dims = n.ints(0)
    if dims is None or not all(isinstance(d, int) for d in dims) or math.prod(dims) > LIMIT:
        return None
    value_ = n.a("value")
    fill = value_.numpy().reshape(-1)[0] if value_ is not None else np.float32(0)
    return np.full(dims, fill, dtype=value_.numpy().dtype if value_ is not None else np.float32)


@value("Expand")
def v_expand(n):
    x, dims = n.v(0), n.ints(1)
    if x is None or dims is None or not all(isinstance(d, int) for d in dims):
        return None
    shape_ = bcast(x.shape, tuple(dims))
    if math.prod(shape_) > LIMIT:
        return None
    return np.broadcast_to(x, shape_).copy()


@value("Range")
def v_range(n):
    vals = [n.v(i) for i in range(3)]
    if any(v is None or v.dtype == object for v in vals):
        return None
    start, limit, delta = (v.reshape(-1)[0] for v in vals)
    count = max(math.ceil((limit - start) / delta), 0)
    if count > LIMIT:
        return None
    return (start + np.arange(count) * delta).astype(vals[0].dtype)


@value("Tile")
def v_tile(n):
    x, reps = n.v(0), n.v(1)
    if x is None or reps is None or reps.dtype == object or x.dtype == object:
        return None
    return _small(np.tile(x, reps.tolist()))


@value("ReduceProd", "ReduceSum")
def v_reduce(n):
    x = n.v(0)
    if x is None or x.ndim != 1 or x.dtype == object:
        return None
    axes = n.ints(1) if n.has(1) else n.a("axes")
    if axes not in (None, [0], [-1]):
        return None
    f = np.prod if n.op_type() == "ReduceProd" else np.sum
    out = f(x, keepdims=bool(n.a("keepdims", 1)))
    return np.asarray(out, x.dtype)


# --- contradictions: checks run before a node's rule -----------------------------------------
# A check raises ShapeError for what inference can prove wrong (operands that cannot go
# together, an attribute out of range or naming nothing the standard knows, a subgraph that does
# not fit its operator). What it cannot know (a symbolic dim, an unknown rank) it lets pass.
CHECKS: dict[tuple[str, str], list] = {}


def check(*ops: str, domain: str = ""):
    def register(fn):
        for op in ops:
            CHECKS.setdefault((domain, op), []).append(fn)
        return fn

    return register


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _ints(*dims) -> bool:
    return all(isinstance(d, int) and not isinstance(d, bool) for d in dims)


AUTO_PAD = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
# (op, attribute) -> the values any version of the operator accepts.
ENUMS = {
    ("Resize", "mode"): ("nearest", "linear", "cubic"),
    ("Resize", "coordinate_transformation_mode"): (
        "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
        "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"),
    ("Resize", "nearest_mode"): ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"),
    ("Resize", "keep_aspect_ratio_policy"): ("stretch", "not_larger", "not_smaller"),
    ("Upsample", "mode"): ("nearest", "linear", "bilinear"),
    ("Pad", "mode"): ("constant", "reflect", "edge", "wrap"),
    ("RNN", "direction"): ("forward", "reverse", "bidirectional"),
    ("GRU", "direction"): ("forward", "reverse", "bidirectional"),
    ("LSTM", "direction"): ("forward", "reverse", "bidirectional"),
    ("GridSample", "mode"): ("bilinear", "nearest", "bicubic", "linear", "cubic"),
    ("GridSample", "padding_mode"): ("zeros", "border", "reflection"),
    ("Gelu", "approximate"): ("none", "tanh"),
    ("NegativeLogLikelihoodLoss", "reduction"): ("none", "sum", "mean"),
    ("SoftmaxCrossEntropyLoss", "reduction"): ("none", "sum", "mean"),
    ("ScatterElements", "reduction"): ("none", "add", "mul", "max", "min"),
    ("ScatterND", "reduction"): ("none", "add", "mul", "max", "min"),
    ("DepthToSpace", "mode"): ("DCR", "CRD"),
    ("RoiAlign", "mode"): ("avg", "max"),
    ("RoiAlign", "coordinate_transformation_mode"): ("half_pixel", "output_half_pixel"),
    ("StringNormalizer", "case_change_action"): ("LOWER", "UPPER", "NONE"),
    ("TfIdfVectorizer", "mode"): ("TF", "IDF", "TFIDF"),
    ("BitShift", "direction"): ("LEFT", "RIGHT"),
    ("ImageDecoder", "pixel_format"): ("RGB", "BGR", "Grayscale"),
}  # fmt: skip
# (op, attribute) -> the output whose element type it sets (None: not checked against the
# schema), and whether 0 (UNDEFINED) means "not set".
DTYPE_ATTRS = {
    ("Cast", "to"): (0, False),
    ("BitCast", "to"): (0, False),
    ("RandomNormal", "dtype"): (0, True),
    ("RandomUniform", "dtype"): (0, True),
    ("RandomNormalLike", "dtype"): (0, True),
    ("RandomUniformLike", "dtype"): (0, True),
    ("EyeLike", "dtype"): (0, True),
    ("Multinomial", "dtype"): (0, True),
    ("Bernoulli", "dtype"): (0, True),
    ("QuantizeLinear", "output_dtype"): (0, True),
    ("DequantizeLinear", "output_dtype"): (0, True),
    ("HannWindow", "output_datatype"): (0, True),
    ("HammingWindow", "output_datatype"): (0, True),
    ("BlackmanWindow", "output_datatype"): (0, True),
    ("MelWeightMatrix", "output_datatype"): (0, True),
    ("LayerNormalization", "stash_type"): (None, True),
    ("SequenceEmpty", "dtype"): (None, True),
}
# op -> input whose rank bounds its `axis` attribute (to [-r, r-1]).
AXIS_ATTRS = {
    "Softmax": 0, "LogSoftmax": 0, "Hardmax": 0, "Gather": 0, "GatherElements": 0,
    "ScatterElements": 0, "Scatter": 0, "LpNormalization": 0, "RMSNormalization": 0,
    "Concat": 0, "ArgMax": 0, "ArgMin": 0, "Compress": 0, "TopK": 0, "LayerNormalization": 0,
    "Split": 0, "Unique": 0,
}  # fmt: skip


def _axis_in(a, r: int, what: str, low: int | None = None, high: int | None = None) -> None:
    low = -r if low is None else low
    high = r - 1 if high is None else high
    if isinstance(a, int) and not low <= a <= high and not (r == 0 and a in (0, -1)):
        raise ShapeError(f"{what} {a} is out of range for an input of rank {r} "
                         f"(expected {low}..{high})")  # fmt: skip


def check_attributes(n) -> None:
    """Raise ShapeError for an attribute of ``n`` out of range or naming no known value."""
    if n.node.domain not in ("", "ai.onnx"):
        return
    op = n.op_type()
    for name in n.node.attributes:
        values = AUTO_PAD if name == "auto_pad" else ENUMS.get((op, name))
        if values is not None:
            v = _text(n.a(name))
            if isinstance(v, str) and v not in values:
                raise ShapeError(f"attribute {name}={v!r} is not one of {', '.join(values)}")
        spec = DTYPE_ATTRS.get((op, name))
        if spec is not None:
            _check_dtype_attr(n, name, *spec)
    at = AXIS_ATTRS.get(op)
    if at is not None and "axis" in n.node.attributes:
        r = n.r(at)
        if r is not None:
            _axis_in(n.a("axis"), r, "attribute axis")


def _check_dtype_attr(n, name: str, output: int | None, zero_ok: bool) -> None:
    code = n.a(name)
    if not isinstance(code, int) or (zero_ok and code == 0):
        return
    try:
        dt = DataType(code)
    except ValueError:
        dt = None
    if dt is None or dt == DataType.UNDEFINED:
        raise ShapeError(f"attribute {name}={code} names no element type (expected one of the "
                         f"standard's type codes 1..{max(DataType)})")  # fmt: skip
    sc = n.schema
    if output is None or sc is None or not sc.outputs or output >= len(sc.outputs):
        return
    allowed = {t.replace(" ", "") for t in sc.allowed_types(sc.outputs[output].type_str)}
    if allowed and f"tensor({dt.short_name})" not in allowed:
        raise ShapeError(f"attribute {name}={code} ({dt.short_name}) gives output {output} a type "
                         f"{sc.name} does not allow (tensor({dt.short_name}))")  # fmt: skip


@check("Flatten")
def check_flatten(n):
    r = n.r(0)
    if r is not None:
        _axis_in(n.a("axis", 1), r, "attribute axis", -r, r)


@check("Transpose")
def check_transpose(n):
    perm, r = n.a("perm"), n.r(0)
    if perm is None:
        return
    if sorted(perm) != list(range(len(perm))):
        raise ShapeError(f"attribute perm={list(perm)} is not a permutation of 0..{len(perm) - 1}")
    if r is not None and len(perm) != r:
        raise ShapeError(f"attribute perm={list(perm)} has {len(perm)} entries for an input of "
                         f"rank {r}")  # fmt: skip


@check("Gemm")
def check_gemm(n):
    a, b = n.s(0), n.s(1)
    for name, s in (("A", a), ("B", b)):
        if s is not None and len(s) != 2:
            raise ShapeError(f"input {name} has rank {len(s)}; Gemm multiplies matrices (rank 2)")
    if a is None or b is None:
        return
    ta, tb = n.a("transA", 0), n.a("transB", 0)
    ka, kb = (a[0] if ta else a[1]), (b[1] if tb else b[0])
    if _ints(ka, kb) and ka != kb:
        raise ShapeError(f"inner dims differ: A{'^T' if ta else ''} is {_shape_text(a, ta)} "
                         f"and B{'^T' if tb else ''} is {_shape_text(b, tb)} ({ka} != {kb}); "
                         f"cannot multiply")  # fmt: skip
    m, k = (a[1] if ta else a[0]), (b[0] if tb else b[1])
    c = n.s(2) if n.has(2) and n.opset >= 7 else None
    if c is not None and (
        len(c) > 2 or any(_ints(dc, d) and dc not in (1, d) for dc, d in zip(c[::-1], (k, m)))
    ):
        raise ShapeError(f"input C of shape {list(c)} does not broadcast to the product's "
                         f"shape [{m}, {k}]")  # fmt: skip


def _shape_text(s, transposed):
    s = s[::-1] if transposed else s
    return "[" + ", ".join("?" if d is None else str(d) for d in s) + "]"


@check("Conv", "ConvInteger", "QLinearConv", "DeformConv", "ConvTranspose")
def check_conv(n):
    op = n.op_type()
    w_at = 3 if op == "QLinearConv" else 1
    x, w = n.s(0), n.s(w_at)
    group = n.a("group", 1)
    if not isinstance(group, int) or group < 1:
        raise ShapeError(f"attribute group={group!r}; expected a positive integer")
    for name, s in (("X", x), ("W", w)):
        if s is not None and len(s) < 3:
            raise ShapeError(f"input {name} has rank {len(s)}; expected N x C x D1 x ... "
                             f"(rank >= 3)")  # fmt: skip
    if x is not None and w is not None:
        if len(x) != len(w):
            raise ShapeError(f"input X has rank {len(x)} but weight W has rank {len(w)}; "
                             f"expected equal ranks")  # fmt: skip
        if op == "ConvTranspose":
            if _ints(x[1], w[0]) and x[1] != w[0]:
                raise ShapeError(f"input X has {x[1]} channels but weight W has {w[0]} input "
                                 f"channels (dim 0); expected equal")  # fmt: skip
        elif _ints(x[1], w[1]) and x[1] != w[1] * group:
            raise ShapeError(f"input X has {x[1]} channels but weight W takes {w[1]} per group "
                             f"x group {group} = {w[1] * group}")  # fmt: skip
    if w is not None and op != "ConvTranspose" and _ints(w[0]) and w[0] % group:
        raise ShapeError(f"weight W has {w[0]} output channels, not a multiple of group {group}")
    k = len(x) - 2 if x is not None else len(w) - 2 if w is not None else None
    kernel = n.a("kernel_shape")
    if (kernel is not None and w is not None and len(kernel) == len(w) - 2
            and any(_ints(a, b) and a != b for a, b in zip(kernel, w[2:]))):  # fmt: skip
        raise ShapeError(f"attribute kernel_shape={list(kernel)} differs from weight W's "
                         f"spatial dims {list(w[2:])}")  # fmt: skip
    _check_window_attrs(n, k, ("kernel_shape", "strides", "dilations", "output_padding"))
    bias_at = {"Conv": 2, "ConvTranspose": 2, "QLinearConv": 8}.get(op)
    bias = n.s(bias_at) if bias_at is not None and n.has(bias_at) else None
    if bias is not None and w is not None:
        m = w[0] if op != "ConvTranspose" else dmul(w[1], group)
        if len(bias) != 1 or _ints(bias[0], m) and bias[0] != m:
            raise ShapeError(f"bias B has shape {list(bias)}; expected [{m}] (one per output "
                             f"channel)")  # fmt: skip


def _check_window_attrs(n, k, names):
    if k is None:
        return
    for name in names:
        v = n.a(name)
        if v is not None and len(v) != k:
            raise ShapeError(f"attribute {name} has {len(v)} values for {k} spatial dims")
    pads = n.a("pads")
    if pads is not None and len(pads) != 2 * k:
        raise ShapeError(f"attribute pads has {len(pads)} values; expected {2 * k} (begin and "
                         f"end for {k} spatial dims)")  # fmt: skip
    for name in ("strides", "dilations"):
        v = n.a(name)
        if v is not None and any(isinstance(d, int) and d < 1 for d in v):
            raise ShapeError(f"attribute {name}={list(v)}; expected positive values")


@check("AveragePool", "MaxPool", "LpPool")
def check_pool(n):
    r = n.r(0)
    if r is not None and r < 3:
        raise ShapeError(f"input X has rank {r}; expected N x C x D1 x ... (rank >= 3)")
    _check_window_attrs(n, r - 2 if r is not None else None,
                        ("kernel_shape", "strides", "dilations"))  # fmt: skip


@check("BatchNormalization", "InstanceNormalization")
def check_norm_params(n):
    x = n.s(0)
    if x is None or len(x) < 2 or not _ints(x[1]) or n.opset < 9 and n.op_type()[0] == "B":
        return
    names = ("scale", "B", "input_mean", "input_var")
    for i in range(1, min(n.nin, 5)):
        s = n.s(i) if n.has(i) else None
        if s is not None and (len(s) != 1 or _ints(s[0]) and s[0] != x[1]):
            raise ShapeError(f"input {names[i - 1]} has shape {list(s)}; expected [{x[1]}] "
                             f"(one per channel of X)")  # fmt: skip


@check("Reshape")
def check_reshape(n):
    target = n.ints(1) if n.opset >= 5 else n.a("shape")
    if target is None:
        return
    allow_zero = n.a("allowzero", 0)
    if sum(1 for d in target if _ints(d) and d == -1) > 1:
        raise ShapeError(f"shape {list(target)} has more than one -1")
    if any(_ints(d) and d < -1 for d in target):
        raise ShapeError(f"shape {list(target)} has a negative dim other than -1")
    if allow_zero and any(_ints(d) and d == 0 for d in target) and -1 in target:
        raise ShapeError(f"shape {list(target)} has both 0 and -1 while allowzero=1")
    s = n.s(0)
    if s is None:
        return
    for k, d in enumerate(target):
        if _ints(d) and d == 0 and not allow_zero and k >= len(s):
            raise ShapeError(f"shape {list(target)} copies dim {k} (a 0), but the input has "
                             f"rank {len(s)}")  # fmt: skip
    total = prod(s)
    dims = [s[k] if _ints(d) and d == 0 and not allow_zero else d for k, d in enumerate(target)]
    rest = prod([d for d in dims if not (_ints(d) and d == -1)])
    if not _ints(total, rest):
        return
    if -1 in dims:
        if (rest == 0 and total != 0) or (rest and total % rest):
            raise ShapeError(f"cannot reshape {total} elements (shape {list(s)}) into "
                             f"{list(target)}")  # fmt: skip
    elif rest != total:
        raise ShapeError(f"cannot reshape {total} elements (shape {list(s)}) into shape "
                         f"{list(target)} ({rest} elements)")  # fmt: skip


@check("Split")
def check_split(n):
    s = n.s(0)
    if s is None:
        return
    a = axis(n.a("axis", 0), len(s))
    sizes = n.ints(1) if n.opset >= 13 and n.has(1) else n.a("split")
    if sizes is None:
        return
    if len(sizes) != n.nout:
        raise ShapeError(f"split gives {len(sizes)} sizes for {n.nout} outputs")
    if _ints(s[a], *sizes) and sum(sizes) != s[a]:
        raise ShapeError(f"split sizes {list(sizes)} add up to {sum(sizes)}, but dim {a} of the "
                         f"input is {s[a]}")  # fmt: skip


@check("Squeeze")
def check_squeeze(n):
    s, axes = n.s(0), _axes(n, 1)
    if s is None or axes is None:
        return
    for a in axes:
        k = axis(a, len(s))
        if _ints(s[k]) and s[k] != 1:
            raise ShapeError(f"axis {a} has size {s[k]}; only dims of size 1 can be squeezed")


@check("Unsqueeze")
def check_unsqueeze(n):
    axes = _axes(n, 1)
    if axes is not None and len(set(axes)) != len(axes):
        raise ShapeError(f"axes {list(axes)} repeat an axis")


@check("Tile")
def check_tile(n):
    r, reps = n.r(0), n.s(1)
    if r is not None and reps is not None and len(reps) == 1 and _ints(reps[0]) and reps[0] != r:
        raise ShapeError(f"repeats has {reps[0]} entries for an input of rank {r}")


@check("Pad")
def check_pad(n):
    r = n.r(0)
    if r is None or n.opset < 11:
        return
    k = r
    if n.has(3):
        axes = n.ints(3)
        if axes is None:
            return
        k = len(axes)
        for a in axes:
            axis(a, r)
    pads = n.s(1)
    if pads is not None and len(pads) == 1 and _ints(pads[0]) and pads[0] != 2 * k:
        raise ShapeError(f"pads has {pads[0]} values; expected {2 * k} (begin and end for each "
                         f"of {k} axes)")  # fmt: skip


@check("GatherElements", "ScatterElements", "Scatter")
def check_elements(n):
    r, ri = n.r(0), n.r(1)
    if r is not None and ri is not None and r != ri:
        raise ShapeError(f"data has rank {r} but indices rank {ri}; expected equal ranks")
    if n.op_type() != "GatherElements" and n.s(1) is not None and n.s(2) is not None:
        i, u = n.s(1), n.s(2)
        if len(i) != len(u) or any(_ints(a, b) and a != b for a, b in zip(i, u)):
            raise ShapeError(f"indices of shape {list(i)} and updates of shape {list(u)} differ")


@check("GatherND", "ScatterND")
def check_gather_nd(n):
    s, i = n.s(0), n.s(1)
    b = n.a("batch_dims", 0)
    if s is None or i is None:
        return
    if b and b >= min(len(s), len(i)):
        raise ShapeError(f"batch_dims={b} must be less than the ranks of data ({len(s)}) and "
                         f"indices ({len(i)})")  # fmt: skip
    if i and _ints(i[-1]) and i[-1] > len(s) - b:
        raise ShapeError(f"indices address {i[-1]} dims, but data has rank {len(s)}")


@check("MeanVarianceNormalization")
def check_mvn(n):
    r = n.r(0)
    if r is not None:
        for a in n.a("axes") or ():
            _axis_in(a, r, "axis")


@check("CumSum", "CumProd")
def check_cumulative(n):
    r, a = n.r(0), n.ints(1)
    if r is not None and a:
        _axis_in(a[0], r, "axis")


@check("ReverseSequence")
def check_reverse_sequence(n):
    b, t = n.a("batch_axis", 1), n.a("time_axis", 0)
    if {b, t} != {0, 1}:
        raise ShapeError(f"batch_axis={b} and time_axis={t}; expected 0 and 1 in some order")


@check("Einsum")
def check_einsum(n):
    eq = _text(n.a("equation", "")).replace(" ", "")
    terms = eq.partition("->")[0].split(",")
    if len(terms) != n.nin:
        raise ShapeError(f"equation {eq!r} has {len(terms)} operands, but the node has "
                         f"{n.nin} inputs")  # fmt: skip
    for i, term in enumerate(terms):
        r = n.r(i)
        letters = len(term.replace("...", ""))
        if r is not None and (letters > r if "..." in term else letters != r):
            raise ShapeError(f"operand {i} of equation {eq!r} names {letters} dims, but input "
                             f"{i} has rank {r}")  # fmt: skip


@check("If")
def check_if(n):
    then, other = n.a("then_branch"), n.a("else_branch")
    if then is None or other is None:
        return
    a, b = len(then.outputs), len(other.outputs)
    if a != b:
        raise ShapeError(f"then_branch has {a} outputs but else_branch {b}; expected the same")
    if a != n.nout:
        raise ShapeError(f"the branches have {a} outputs but the node {n.nout}; expected the "
                         f"same")  # fmt: skip


@check("Loop")
def check_loop(n):
    body = n.a("body")
    if body is None:
        return
    carried = max(n.nin - 2, 0)
    if len(body.inputs) != 2 + carried:
        raise ShapeError(f"body has {len(body.inputs)} inputs; expected 2 + {carried} "
                         f"(iteration number, condition, loop-carried values)")  # fmt: skip
    if len(body.outputs) != 1 + n.nout:
        raise ShapeError(f"body has {len(body.outputs)} outputs; expected 1 + {n.nout} "
                         f"(condition, then one per node output)")  # fmt: skip
    if n.nout < carried:
        raise ShapeError(f"the node has {n.nout} outputs for {carried} loop-carried values")


@check("Scan")
def check_scan(n):
    body, m = n.a("body"), n.a("num_scan_inputs")
    if body is None or not isinstance(m, int):
        return
    first = 1 if n.opset < 9 else 0
    states = n.nin - m - first
    if m < 1 or states < 0:
        raise ShapeError(f"num_scan_inputs={m} does not fit the node's {n.nin} inputs")
    if len(body.inputs) != states + m:
        raise ShapeError(f"body has {len(body.inputs)} inputs; expected {states} state + {m} "
                         f"scan inputs")  # fmt: skip
    if len(body.outputs) != n.nout:
        raise ShapeError(f"body has {len(body.outputs)} outputs but the node {n.nout}; expected "
                         f"the same")  # fmt: skip
    k = n.nout - states
    if k < 0:
        raise ShapeError(f"the node has {n.nout} outputs for {states} state values")
    for name, want in (("scan_input_axes", m), ("scan_input_directions", m),
                       ("scan_output_axes", k), ("scan_output_directions", k)):  # fmt: skip
        v = n.a(name)
        if v is not None and len(v) != want:
            raise ShapeError(f"attribute {name} has {len(v)} values; expected {want}")


@check("SequenceMap")
def check_sequence_map(n):
    body = n.a("body")
    if body is None:
        return
    if len(body.inputs) != n.nin or len(body.outputs) != n.nout:
        raise ShapeError(f"body takes {len(body.inputs)} inputs and gives {len(body.outputs)} "
                         f"outputs; the node has {n.nin} and {n.nout}")  # fmt: skip
