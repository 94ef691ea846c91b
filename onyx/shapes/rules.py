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
    return None if r is None else (None,) * r


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
        image = [None] * n.s(1)[0]
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
        return None if not isinstance(k, int) else (None,) * (k - 1) + (k - 2,)
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
    return [_union(x, y) for x, y in zip(a, b)]


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
