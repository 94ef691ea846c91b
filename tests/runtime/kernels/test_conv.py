"""Convolution kernels: the official node cases plus error paths, types and speed-path checks."""

import math

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import cases_for, check_case, run_model
from onnx import helper
from onnx.reference import ReferenceEvaluator

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

OPS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "Col2Im",
       "CausalConvWithState"}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- against onnxruntime -------------------------------------------------------------------------


RNG = np.random.default_rng(0)


def _model(op, inputs, attrs, opset, n_out=1, out_dtype=None):
    names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
    node = helper.make_node(op, names, [f"o{k}" for k in range(n_out)], **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for nm, v in zip(names, inputs)
        if v is not None
    ]
    code = helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype or inputs[0].dtype))
    outs = [helper.make_tensor_value_info(f"o{k}", code, None) for k in range(n_out)]
    graph = helper.make_graph([node], "g", graph_inputs, outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def compare_with_ort(op, inputs, attrs, opset=22, n_out=1, rtol=1e-4, atol=1e-4, out_dtype=None):
    model = _model(op, inputs, attrs, opset, n_out, out_dtype)
    feeds = {f"i{k}": v for k, v in enumerate(inputs) if v is not None}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    got = run_model(model, [v for v in inputs if v is not None])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


CONV_CASES = [
    ((2, 4, 9, 9), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 8, 10, 11), (8, 2, 3, 3), {"group": 4, "strides": [2, 1], "pads": [0, 1, 2, 1]}),
    ((1, 6, 12, 12), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),  # depthwise
    ((1, 4, 12, 12), (8, 1, 3, 3), {"group": 4, "strides": [2, 2], "dilations": [2, 1]}),  # mult 2
    ((2, 5, 13, 7), (3, 5, 3, 2), {"strides": [2, 3], "auto_pad": "SAME_UPPER"}),
    ((1, 3, 8, 9), (4, 3, 4, 3), {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((1, 3, 8, 9), (4, 3, 3, 3), {"strides": [2, 2], "auto_pad": "VALID"}),
    ((2, 16, 7, 7), (32, 16, 1, 1), {}),  # pointwise
    ((2, 16, 7, 7), (32, 16, 1, 1), {"strides": [2, 2]}),
    ((2, 16, 7, 7), (32, 4, 1, 1), {"group": 4}),
    ((2, 3, 17), (5, 3, 4), {"pads": [2, 1], "strides": [2]}),  # 1-D
    ((1, 2, 5, 6, 7), (4, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 1]}),  # 3-D
]


@pytest.mark.parametrize("xs, ws, attrs", CONV_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_matches_ort(xs, ws, attrs, with_bias):
    inputs = [rand(*xs), rand(*ws)] + ([rand(ws[0])] if with_bias else [])
    compare_with_ort("Conv", inputs, attrs)


def test_conv_float16():
    compare_with_ort("Conv", [rand(1, 4, 6, 6, dtype=np.float16), rand(3, 4, 3, 3, dtype=np.float16)],
                     {"pads": [1, 1, 1, 1]}, rtol=1e-2, atol=1e-2)  # fmt: skip


def test_conv_float64_and_dilated_same():
    x, w = rand(1, 3, 9, 8), rand(2, 3, 3, 3)
    attrs = {"dilations": [2, 3], "auto_pad": "SAME_LOWER", "strides": [2, 1]}
    got = lookup("", "Conv", 22)(**attrs)(x.astype(np.float64), w.astype(np.float64))
    assert got.dtype == np.float64 and got.shape == (1, 2, 5, 8)
    # total padding 4 (rows: (5-1)*2+5-9) and 6 (cols): SAME_LOWER puts the odd one first
    want = lookup("", "Conv", 22)(dilations=[2, 3], strides=[2, 1], pads=[2, 3, 2, 3])(x, w)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_bfloat16():
    import ml_dtypes

    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    conv = lookup("", "Conv", 22)()
    got = conv(x.astype(ml_dtypes.bfloat16), w.astype(ml_dtypes.bfloat16))
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(got.astype(np.float32), conv(x, w), rtol=0.1, atol=0.2)


def test_conv_weight_cache_follows_weight():
    conv = lookup("", "Conv", 11)(pads=[1, 1, 1, 1])
    x = rand(1, 2, 5, 5)
    w1, w2 = rand(3, 2, 3, 3), rand(3, 2, 3, 3)
    a = conv(x, w1)
    b = conv(x, w2)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(conv(x, w1), a)


CONVT_CASES = [
    ((1, 3, 4, 4), (3, 2, 3, 3), {}),
    ((2, 4, 3, 5), (4, 3, 3, 2), {"strides": [2, 3], "pads": [1, 0, 1, 1]}),
    ((1, 4, 3, 3), (4, 2, 3, 3), {"group": 2, "strides": [2, 2], "output_padding": [1, 1]}),
    ((1, 2, 4, 4), (2, 3, 2, 2), {"dilations": [2, 2], "strides": [2, 2]}),
    ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [9, 11]}),
    ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 6), (2, 3, 4), {"strides": [3], "pads": [1, 2]}),
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize("xs, ws, attrs", CONVT_CASES)
def test_conv_transpose_matches_ort(xs, ws, attrs):
    m = ws[1] * attrs.get("group", 1)
    compare_with_ort("ConvTranspose", [rand(*xs), rand(*ws), rand(m)], attrs)


def test_conv_integer_per_channel_zero_point():
    x = RNG.integers(0, 255, (1, 3, 6, 6), dtype=np.uint8)
    w = RNG.integers(-128, 127, (4, 3, 3, 3), dtype=np.int8)
    wz = np.array([1, -2, 0, 3], dtype=np.int8)
    got = lookup("", "ConvInteger", 10)(pads=[1, 1, 1, 1])(x, w, np.uint8(7), wz)
    xi = x.astype(np.int64) - 7
    wi = w.astype(np.int64) - wz[:, None, None, None]
    want = lookup("", "Conv", 11)(pads=[1, 1, 1, 1])(xi.astype(np.float64), wi.astype(np.float64))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want.astype(np.int32))


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv_matches_reference(per_channel):
    """Against onnx's reference evaluator (exact integer sums), not onnxruntime: its AVX2
    kernel for uint8 x int8 adds pairs of products in saturating 16-bit lanes (vpmaddubsw),
    and was 19 steps off on 15 of these 294 values on a Zen 3 (exact on AVX-512 hosts)."""
    x = RNG.integers(0, 255, (1, 4, 7, 7), dtype=np.uint8)
    w = RNG.integers(-100, 100, (6, 4, 3, 3), dtype=np.int8)
    ws = (np.abs(rand(6)) * 0.01 + 0.001) if per_channel else np.float32(0.004)
    wz = np.zeros(6, np.int8) if per_channel else np.int8(0)
    b = RNG.integers(-1000, 1000, 6, dtype=np.int32)
    inputs = [x, np.float32(0.02), np.uint8(120), w, np.asarray(ws, np.float32), wz,
              np.float32(0.05), np.uint8(100), b]  # fmt: skip
    inputs = [np.asarray(v) for v in inputs]
    model = _model("QLinearConv", inputs, {"pads": [1, 1, 1, 1]}, 10, out_dtype=np.uint8)
    feeds = {f"i{k}": v for k, v in enumerate(inputs)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = run_model(model, inputs)[0]
    assert got.dtype == np.uint8 and got.shape == want.shape
    # (one step apart at most: a product landing on a half rounds by float32 or float64)
    np.testing.assert_allclose(got.astype(np.int64), want.astype(np.int64), rtol=0, atol=1)


@pytest.mark.parametrize("op, args, attrs", [
    ("Conv", [(1, 3, 5, 5), (2, 4, 3, 3)], {}),  # channel mismatch
    ("Conv", [(1, 4, 5, 5), (2, 2, 3, 3)], {"group": 3}),
    ("Conv", [(1, 3, 5, 5), (2, 3, 3, 3)], {"kernel_shape": [2, 2]}),
    ("Conv", [(1, 3, 5, 5), (2, 3, 3, 3)], {"auto_pad": "BOGUS"}),
    ("Conv", [(1, 3, 2, 2), (2, 3, 3, 3)], {}),  # kernel larger than input
    ("Conv", [(1, 3, 5, 5), (2, 3, 3, 3)], {"strides": [1]}),
    ("ConvTranspose", [(1, 3, 5, 5), (2, 3, 3, 3)], {}),
    ("Col2Im", None, {}),
    ("CausalConvWithState", [(1, 3, 5), (2, 1, 3)], {}),
])  # fmt: skip
def test_kernel_errors(op, args, attrs):
    impl = lookup("", op, 28)
    fn = impl(**attrs) if isinstance(impl, type) else (lambda *a: impl(*a, **attrs))
    if op == "Col2Im":
        inputs = [rand(1, 9, 5), np.array([5, 5]), np.array([2, 2])]
    else:
        inputs = [rand(*s) for s in args]
    with pytest.raises(KernelError):
        fn(*inputs)


def test_causal_conv_state_roundtrip():
    """Running a sequence in two chunks with the carried state equals running it at once."""
    impl = lookup("", "CausalConvWithState", 28)
    x, w, b = rand(2, 3, 9), rand(3, 1, 4), rand(3)
    whole, state = impl(x, w, b, activation="silu")
    first, s1 = impl(x[:, :, :5], w, b, activation="silu")
    second, s2 = impl(x[:, :, 5:], w, b, s1, activation="silu")
    np.testing.assert_allclose(np.concatenate([first, second], axis=2), whole, rtol=1e-5)
    np.testing.assert_allclose(s2, state)
    assert state.shape == (2, 3, 3)


def test_deform_conv_zero_offset_is_conv():
    x, w, b = rand(1, 4, 6, 7), rand(6, 2, 3, 3), rand(6)
    attrs = {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 1]}
    want = lookup("", "Conv", 22)(**attrs)(x, w, b)
    off = np.zeros((1, 2 * 9 * 2) + want.shape[2:], np.float32)
    got = lookup("", "DeformConv", 22)(offset_group=2, **attrs)(x, w, off, b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "n, c, m, hw, kernel, pads, dilations",
    [
        (1, 64, 16, 20, (3, 3), [1, 1, 1, 1], [1, 1]),
        (2, 32, 8, 17, (3, 3), [0, 2, 1, 0], [1, 1]),  # batch of 2, asymmetric pads
        (1, 48, 12, 24, (3, 5), [2, 2, 2, 2], [2, 1]),  # rectangular kernel, dilation
        (1, 40, 4, 16, (1, 3), [0, 1, 0, 1], [1, 3]),
    ],
)
def test_shift_and_accumulate_path_matches_im2col(n, c, m, hw, kernel, pads, dilations):
    from onyx.runtime.kernels import conv as C

    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((m, c, *kernel)).astype(np.float32)
    op = C.Conv(pads=pads, dilations=dilations)
    plan = op.geom.plan(x.shape, w.shape)
    assert C.shifted_eligible(plan, 1, w.shape)
    w_gemm, w_dw = C.prepare_weight(w, 1, np.float32)
    shifted = C.conv_shifted(x, C.shifted_weight(w_gemm, plan[0]), plan)
    im2col = C.conv_forward(x, w_gemm, plan, 1, w_dw)
    np.testing.assert_allclose(shifted, im2col, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(op(x, w), im2col, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "n, c, m, hw, kernel, strides, pads, tile",
    [
        (2, 3, 8, 19, (3, 3), [2, 2], [1, 1, 1, 1], 4096),
        (1, 16, 4, 12, (1, 1), [1, 1], [0, 0, 0, 0], 4096),  # pointwise: bands of the input
        (1, 6, 5, 15, (5, 3), [1, 2], [2, 0, 1, 1], 4096),
        # bands of 14 rows x 64: the ReLU clamps against a block of the bound, not the scalar
        (1, 4, 3, 64, (3, 3), [1, 1], [1, 1, 1, 1], 1 << 17),
    ],
)
def test_banded_convolution_with_bias_and_epilogue_matches_the_plain_path(
    n, c, m, hw, kernel, strides, pads, tile, monkeypatch
):
    from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result
    from onyx.runtime.kernels import conv as C

    monkeypatch.setattr(C, "_TILE_BYTES", tile)  # force several bands per image
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((m, c, *kernel)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    op = C.Conv(strides=strides, pads=pads)
    plan = op.geom.plan(x.shape, w.shape)
    w_gemm, w_dw = C.prepare_weight(w, 1, np.float32)
    plain = C.add_bias(C.conv_forward(x, w_gemm, plan, 1, w_dw), b, "Conv")
    residual = rng.standard_normal(plain.shape).astype(np.float32)
    expected = np.maximum(plain + residual, 0)
    followers = (
        Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0))),
        Follower(((np.maximum, None, False),), np.maximum, (Result(), 0)),
    )
    epilogue = Epilogue(followers, [residual])
    assert epilogue.prepare(plain.shape, np.float32, b)
    banded = C.conv_blocked(x, w_gemm[0], plan, epilogue)
    np.testing.assert_allclose(banded, expected, rtol=1e-5, atol=1e-5)
    epilogue = Epilogue(followers, [residual])
    np.testing.assert_allclose(op(x, w, b, epilogue=epilogue), expected, rtol=1e-5, atol=1e-5)
    assert epilogue.applied


def test_convolution_leaves_an_epilogue_that_does_not_fit_to_its_caller():
    from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result
    from onyx.runtime.kernels import conv as C

    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    wide = np.ones((1, 3, 3, 4), np.float32)  # does not broadcast to the (1, 3, 3, 3) result
    epilogue = Epilogue(
        (Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0))),), [wide]
    )
    y = C.Conv()(x, w, np.full(3, 0.5, np.float32), epilogue=epilogue)
    assert not epilogue.applied
    np.testing.assert_array_equal(y, np.full((1, 3, 3, 3), 18.5, np.float32))


@pytest.mark.parametrize(
    "n, c, mult, hw, kernel, strides, pads, dilations, dtype",
    [
        (1, 32, 1, 40, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], np.float32),
        # 3x3, stride 1, padded by one all round: read in place (_jit.depthwise_direct), from
        # the smallest plane it takes to one whose last plane's runs stop short of the array's
        # end, with a multiplier; stride 1 padded otherwise: through the padded phases
        (1, 3, 1, 3, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], np.float32),
        (2, 5, 1, 12, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], np.float32),
        (1, 4, 3, 23, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], np.float32),
        (1, 6, 1, 30, (3, 3), [1, 1], [0, 0, 0, 0], [1, 1], np.float32),
        (1, 6, 1, 30, (3, 3), [1, 1], [1, 0, 1, 0], [1, 1], np.float32),
        # 3x3, stride 2, padded by one at the top and left: read in place, row by row
        # (_jit.depthwise_strided): rows of two blocks of 64 outputs, few columns, a
        # multiplier, an end pad
        (1, 3, 1, 150, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], np.float32),
        (2, 4, 1, 4, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], np.float32),
        (1, 5, 2, 19, (3, 3), [2, 2], [1, 1, 0, 0], [1, 1], np.float32),
        (1, 3, 1, 20, (3, 3), [2, 2], [1, 1, 2, 2], [1, 1], np.float32),
        # 3x3 taps by whole vectors (_jit_gemm.nine_taps_vectors), stride 1 and 2, and the
        # sums past the last 64 outputs of a chunk by the loop
        (2, 12, 2, 57, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], np.float32),
        (1, 24, 1, 56, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], np.float32),
        (1, 6, 1, 45, (3, 3), [2, 2], [0, 1, 1, 0], [1, 1], np.float32),
        (2, 24, 1, 28, (5, 5), [2, 2], [2, 1, 2, 1], [1, 1], np.float32),  # stride 2, odd pads
        (1, 16, 2, 30, (3, 5), [1, 2], [0, 2, 1, 0], [2, 1], np.float32),  # multiplier, dilation
        (1, 20, 1, 33, (7, 7), [1, 1], [3, 3, 3, 3], [1, 1], np.float64),
        (1, 8, 1, 31, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], np.float32),  # odd width, stride 2
        (1, 6, 2, 21, (4, 4), [3, 3], [0, 2, 3, 1], [1, 1], np.float32),  # stride 3, even kernel
        (1, 5, 1, 17, (3, 3), [2, 1], [1, 0, 0, 1], [2, 3], np.float32),  # stride down, dilated
        (1, 4, 1, 12, (1, 1), [2, 2], [1, 1, 1, 1], [1, 1], np.float32),  # 1x1 with padding
        (1, 4, 1, 18, (3, 3), [4, 4], [0, 0, 0, 0], [1, 1], np.float64),  # rows left unread
        # narrow planes with many channels: the channel-last kernel
        (2, 96, 1, 7, (5, 5), [1, 1], [2, 2, 2, 2], [1, 1], np.float32),
        (1, 80, 1, 14, (3, 3), [2, 2], [1, 0, 1, 0], [1, 1], np.float32),
        (1, 64, 1, 9, (3, 3), [1, 1], [2, 2, 2, 2], [2, 2], np.float64),
    ],
)
def test_compiled_depthwise_convolution_gives_the_numpy_paths_values(
    n, c, mult, hw, kernel, strides, pads, dilations, dtype, monkeypatch
):
    """The compiled depthwise kernel sums its taps in the numpy path's order: same bits."""
    pytest.importorskip("numba")
    from onyx.runtime import compiled

    monkeypatch.setattr(compiled, "enabled", True)  # (both_paths runs this test twice alike)
    x = RNG.standard_normal((n, c, hw, hw)).astype(dtype)
    w = RNG.standard_normal((c * mult, 1, *kernel)).astype(dtype)
    attrs = {"group": c, "strides": strides, "pads": pads, "dilations": dilations}
    op = lookup("", "Conv", 22)(**attrs)
    plan = op.geom.plan(x.shape, w.shape)
    assert compiled.kernels(math.prod(plan[5]) * n * c * mult * math.prod(kernel)) is not None
    got = op(x, w)
    monkeypatch.setattr(compiled, "enabled", False)
    want = lookup("", "Conv", 22)(**attrs)(x, w)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("n", "c", "hw", "kernel", "pads", "swish", "nchw"),
    [
        (1, 672, (14, 14), (5, 5), (2, 2), True, False),  # EfficientNet-B0's 14x14 layer
        (1, 96, (7, 7), (3, 3), (1, 1), False, True),  # a 7x7 one, moved to NCHW
        (2, 24, (10, 11), (5, 3), (2, 1), True, True),  # images, odd width, 5 rows by 3
        (1, 33, (6, 5), (3, 5), (0, 3), False, False),  # a part block; a pad past the taps
        (1, 16, (9, 9), (3, 3), (4, 4), False, True),  # pads wider than the kernel
        (1, 8, (40, 40), (3, 3), (1, 1), True, False),  # rows in several bands
        (1, 24, (12, 12), (7, 3), (3, 1), False, True),  # 7 rows by 3: 21 taps
        (1, 40, (7, 7), (5, 5), (2, 2), True, True),  # few rows: bands of channel blocks
        (1, 64, (14, 14), (3, 3), (1, 1), False, False),  # whole blocks, rows of 7 outputs
        (2, 48, (28, 28), (3, 3), (1, 1), True, True),  # whole blocks, rows of whole tiles
        (1, 32, (9, 9), (5, 5), (2, 2), False, True),  # whole blocks, a part tile a row
    ],
)
def test_tiled_depthwise_kernel_gives_the_channel_last_kernels_bits(
    n, c, hw, kernel, pads, swish, nchw, monkeypatch
):
    """``depthwise_last_tiles`` (16 channels in registers) sums as ``depthwise_channels_last``
    does: same bits, with the bias, bounds, Swish and move to NCHW, over one band of rows
    or several (``depthwise_tiles_bands``)."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit, _jit_par

    xl = RNG.standard_normal((n, *hw, c)).astype(np.float32) * 0.5
    wl = RNG.standard_normal((*kernel, c)).astype(np.float32)
    bias = RNG.standard_normal(c).astype(np.float32)
    top, left = pads
    out = (hw[0] + 2 * top - kernel[0] + 1, hw[1] + 2 * left - kernel[1] + 1)
    assert _jit.tiles_fit(kernel, (1, 1), (1, 1), out[1])
    lo, hi = np.float32(-2), np.float32(3)
    moves = [np.empty((n, c, *out) if nchw else (0, 0, 0, 0), np.float32) for _ in range(3)]
    results = [np.empty((n, *out, c), np.float32) for _ in range(3)]
    _jit.depthwise_channels_last(xl, wl, results[0], 0, n * out[0], 1, 1, 1, 1, top, left, bias,
                                 lo, hi, moves[0], swish)  # fmt: skip
    _jit.depthwise_last_tiles(xl, wl, results[1], 0, n * out[0], 0, c, top, left, bias, lo, hi,
                              moves[1], swish)  # fmt: skip
    _jit_par.depthwise_tiles_bands(xl, wl, results[2], top, left, bias, lo, hi, moves[2], 3,
                                   swish)  # fmt: skip
    for got, moved in zip(results[1:], moves[1:]):
        np.testing.assert_array_equal(got, results[0])
        np.testing.assert_array_equal(moved, moves[0])
    # (the upper bound bites, Swish or not, and most values lie below it)
    values = results[0]
    assert (values == values.max()).sum() > 1
    assert len(np.unique(values)) > values.size // 3


@pytest.mark.parametrize("hw", [(7, 7), (12, 12)])
def test_tiled_depthwise_kernel_without_bias_or_bounds(hw):
    """Whole tiles of 16 channels (``square_taps_tile``) with no bias and no bounds: the
    sums as they are, as ``depthwise_channels_last`` gives them, a NaN spread to the outputs
    that read it."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit

    c = 32
    xl = RNG.standard_normal((1, *hw, c)).astype(np.float32)
    xl[0, 3, 3, 5] = np.nan
    wl = RNG.standard_normal((3, 3, c)).astype(np.float32)
    none, unbounded = np.empty(0, np.float32), (np.float32(-np.inf), np.float32(np.inf))
    nowhere = np.empty((0, 0, 0, 0), np.float32)
    results = [np.empty((1, *hw, c), np.float32) for _ in range(2)]
    _jit.depthwise_channels_last(xl, wl, results[0], 0, hw[0], 1, 1, 1, 1, 1, 1, none,
                                 *unbounded, nowhere, False)  # fmt: skip
    _jit.depthwise_last_tiles(xl, wl, results[1], 0, hw[0], 0, c, 1, 1, none, *unbounded,
                              nowhere, False)  # fmt: skip
    np.testing.assert_array_equal(results[1], results[0])
    assert np.isnan(results[1]).sum() == 9
    assert np.isnan(results[1][0, 2:5, 2:5, 5]).all()


@pytest.mark.parametrize(
    ("kernel", "strides", "dilations", "width", "fits"),
    [
        ((3, 3), (1, 1), (1, 1), 112, True),
        ((5, 5), (1, 1), (1, 1), 28, True),
        ((7, 7), (1, 1), (1, 1), 7, False),  # 7 wide: the per-tap kernel
        ((7, 3), (1, 1), (1, 1), 14, True),  # 21 taps
        ((9, 3), (1, 1), (1, 1), 14, False),  # 27 taps: more than the weights' buffer holds
        ((3, 3), (2, 2), (1, 1), 14, False),  # strided
        ((3, 3), (1, 1), (2, 2), 14, False),  # dilated
        ((5, 5), (1, 1), (1, 1), 200, False),  # 5 rows of 204 do not fit the stack buffer
    ],
)
def test_tiled_depthwise_kernel_takes_the_geometries_it_is_written_for(
    kernel, strides, dilations, width, fits
):
    """``tiles_fit``: 3- or 5-wide kernels, stride 1, no dilation, a first band within the
    stack buffer; anything else stays with ``depthwise_channels_last``."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit

    assert _jit.tiles_fit(kernel, strides, dilations, width) is fits


@pytest.mark.parametrize(
    ("c", "hw", "stride", "follower"),
    [
        (48, 28, 1, "relu6"),  # MobileNetV2's bias and ReLU6, on a plane kept NCHW
        (32, 30, 2, "relu"),  # strided
        (24, 20, 1, None),  # the bias alone
        (40, 28, 1, "swish"),  # EfficientNet's bias and Swish
    ],
)
def test_compiled_depthwise_convolution_applies_its_epilogue_as_it_writes(
    c, hw, stride, follower, monkeypatch
):
    """The plane kernel adds the bias, clamps and applies a Swish to each plane as it copies it
    out, in the epilogue's order (same bits as the numpy path, where the epilogue runs after),
    and the session's epilogue then has nothing left to do."""
    pytest.importorskip("numba")
    import onyx
    from onyx.build import GraphBuilder
    from onyx.runtime import compiled, epilogue
    from onyx.runtime.kernels import conv as conv_module

    x = RNG.standard_normal((1, c, hw, hw)).astype(np.float32) * 4
    g = GraphBuilder(opset=24)
    w = RNG.standard_normal((c, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(c).astype(np.float32)
    y = g.op.Conv(g.input("x", "float", list(x.shape)), w, b, group=c, pads=[1, 1, 1, 1],
                  strides=[stride, stride])  # fmt: skip
    if follower == "relu6":
        y = g.op.Clip(y, np.float32(0), np.float32(6))
    elif follower == "relu":
        y = g.op.Relu(y)
    elif follower == "swish":
        y = g.op.Swish(y)
    g.output(y, "y")
    model = g.model()

    monkeypatch.setattr(compiled, "enabled", True)
    planes, epilogues = [], []
    original_planes, original_apply = conv_module.depthwise_planes, epilogue.Epilogue.apply_all

    def counted_planes(*args, **kwargs):
        planes.append(args[5:7])  # the finish and Swish handed to the kernel
        return original_planes(*args, **kwargs)

    def counted_apply(self, y, source=None):
        if self._ops:
            epilogues.append(y.shape)
        return original_apply(self, y, source)

    monkeypatch.setattr(conv_module, "depthwise_planes", counted_planes)
    monkeypatch.setattr(epilogue.Epilogue, "apply_all", counted_apply)
    got = onyx.InferenceSession(model, intra_op_num_threads=1).run(None, {"x": x})[0]
    assert len(planes) == 1
    finish, swish = planes[0]
    assert finish.bias is not None and swish == (follower == "swish")
    lo, hi = {"relu6": (0, 6), "relu": (0, np.inf)}.get(follower, (-np.inf, np.inf))
    assert (finish.lo, finish.hi) == (lo, hi)
    assert epilogues == []  # nothing applied after the kernel
    monkeypatch.setattr(compiled, "enabled", False)
    want = onyx.InferenceSession(model, intra_op_num_threads=1).run(None, {"x": x})[0]
    if follower == "swish":  # (the compiled Swish is within 3e-7 of numpy's: _jit_exp.py)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)
    assert follower not in ("relu6", "relu") or want.min() == 0
    assert follower != "relu6" or want.max() == 6
