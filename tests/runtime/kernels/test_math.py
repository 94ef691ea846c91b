"""Math kernels: the official node cases, plus types, versions and error paths they miss."""

import math

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import call as run
from kernel_harness import cases_for, check_case
from onnx import helper

from onyx.errors import KernelError

OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Neg", "Abs", "Reciprocal", "Sqrt", "Exp", "Log",
    "Erf", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh",
    "Atanh", "Sign", "Round", "Ceil", "Floor", "IsNaN", "IsInf", "Sigmoid", "HardSigmoid",
    "HardSwish", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Mish", "Softplus",
    "Softsign", "ThresholdedRelu", "Swish", "SwiGLU", "Clip", "Max", "Min", "Mean", "Sum",
}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- our own checks ----------------------------------------------------------------------------
BF16 = np.dtype(ml_dtypes.bfloat16)


def ort_run(op, opset, *inputs, out_dtype=None, **attrs):
    """The output of onnxruntime on a one-node model."""
    names = [f"i{k}" for k in range(len(inputs))]
    elem = helper.np_dtype_to_tensor_dtype
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)],
        "g",
        [helper.make_tensor_value_info(n, elem(x.dtype), x.shape) for n, x in zip(names, inputs)],
        [helper.make_tensor_value_info("y", elem(np.dtype(out_dtype or inputs[0].dtype)), None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))[0]


RNG = np.random.default_rng(0)
SIGNED = [np.int8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("dtype", SIGNED + [np.uint8, np.uint32, np.uint64])
def test_integer_div_truncates_like_onnxruntime(dtype):
    info = np.iinfo(dtype)
    a = RNG.integers(max(info.min, -100), min(info.max, 100), (6, 7)).astype(dtype)
    b = RNG.integers(1, 9, (7,)).astype(dtype)
    if info.min < 0:
        b[::2] = -b[::2]
    got = run("Div", 14, a, b)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, ort_run("Div", 14, a, b))


# onnxruntime rejects float Mod with fmod=0, so those pairs have no oracle here (the official
# test_mod_float_* cases cover them).
@pytest.mark.parametrize(
    "dtype, fmod",
    [(t, f) for t in (np.int32, np.int64, np.float32, np.float64) for f in (0, 1)
     if f == 1 or np.dtype(t).kind != "f"],
)  # fmt: skip
def test_mod_like_onnxruntime(dtype, fmod):
    a = (RNG.standard_normal((5, 4)) * 20).astype(dtype)
    b = (RNG.integers(1, 7, (4,)) * np.array([1, -1, 1, -1])).astype(dtype)
    got = run("Mod", 13, a, b, fmod=fmod)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ort_run("Mod", 13, a, b, fmod=fmod), rtol=1e-6)


@pytest.mark.parametrize(
    "op, attrs",
    [("Sigmoid", {}), ("Tanh", {}), ("Relu", {}), ("LeakyRelu", {"alpha": 0.1}),
     ("LeakyRelu", {"alpha": 2.0}), ("LeakyRelu", {"alpha": -0.5}), ("Elu", {"alpha": 0.7}),
     ("Selu", {}), ("Celu", {"alpha": 2.0}), ("HardSigmoid", {}), ("HardSwish", {}),
     ("Softplus", {}), ("Softsign", {}), ("Mish", {}), ("ThresholdedRelu", {"alpha": 0.3}),
     ("Erf", {}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Exp", {}), ("Round", {}),
     ("Sign", {}), ("Abs", {}), ("Neg", {}), ("Floor", {}), ("Ceil", {})],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_activation_like_onnxruntime(op, attrs, dtype):
    x = (RNG.standard_normal((3, 50)) * 4).astype(dtype)
    x[0, :6] = [0.5, -0.5, 1.5, -2.5, 0.0, -0.0]
    opset = 20 if op == "Gelu" else 13 if op in ("Sigmoid", "Relu") else 22
    got = run(op, opset, x, **attrs)
    assert got.dtype == dtype and got.shape == x.shape
    tol = 2e-3 if dtype == np.float16 else 1e-5
    try:
        want = ort_run(op, opset, x, **attrs)
    except (ort.capi.onnxruntime_pybind11_state.NotImplemented,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph):  # fmt: skip
        want = ort_run(op, opset, x.astype(np.float32), **attrs)  # no kernel for this type
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("op", ["Sigmoid", "Relu", "Elu", "Gelu", "Erf", "Tanh", "Mish", "Swish"])
def test_bfloat16_computed_in_float32(op):
    x = (RNG.standard_normal((4, 9)) * 3).astype(BF16)
    opset = 24
    got = run(op, opset, x)
    assert got.dtype == BF16
    want = run(op, opset, x.astype(np.float32)).astype(BF16)
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


def test_erf_matches_math_erf_in_float64():
    x = np.concatenate([np.linspace(-7, 7, 20001), np.logspace(-300, 1, 300), [np.inf, -np.inf]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(run("Erf", 13, x), want, rtol=1e-14, atol=0)
    assert np.isnan(run("Erf", 13, np.array([np.nan]))[0])


def test_sigmoid_has_no_overflow_and_exact_tails():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = run("Sigmoid", 13, x)
    np.testing.assert_allclose(y, [0, 1 / (1 + math.exp(30)), 0.5, 1, 1], rtol=1e-6, atol=1e-38)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Relu", "Sqrt", "Max", "Clip"])
def test_zero_d_inputs_give_zero_d_arrays(op):
    x = np.array(2.0, np.float32)
    args = (x,) if op in ("Relu", "Sqrt", "Clip") else (x, x)
    y = run(op, 13, *args)
    assert type(y) is np.ndarray and y.shape == () and y.dtype == np.float32


@pytest.mark.parametrize(
    "base, exponent",
    [(np.float16, np.float32), (np.float32, np.int64), (np.int64, np.float32),
     (np.int32, np.int64), (np.float64, np.int32), (BF16, np.float32)],
)  # fmt: skip
def test_pow_returns_base_type(base, exponent):
    x = np.array([1, 2, 3, 4], base)
    y = np.array([2, 3, 0, 1], exponent)
    got = run("Pow", 15, x, y)
    assert got.dtype == np.dtype(base)
    np.testing.assert_array_equal(got.astype(np.float64), [1, 8, 1, 4])


def test_integer_pow_negative_exponent():
    got = run("Pow", 15, np.array([1, -1, 2, 3], np.int64), np.array([-1, -1, -1, 2], np.int64))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [1, -1, 0, 9])


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
def test_legacy_broadcast_with_axis(op):
    a = RNG.uniform(1, 2, (2, 3, 4, 5)).astype(np.float32)
    b = RNG.uniform(1, 2, (3, 4)).astype(np.float32)
    got = run(op, 6, a, b, broadcast=1, axis=1)
    modern = run(op, 13, a, b.reshape(3, 4, 1))
    np.testing.assert_array_equal(got, modern)
    suffix = run(op, 6, a, b[0, :1].reshape(1, 1), broadcast=1)  # one element
    np.testing.assert_array_equal(suffix, run(op, 13, a, b[0, :1]))
    np.testing.assert_array_equal(run(op, 1, a, a[0, 0], broadcast=1, consumed_inputs=[0]),
                                  run(op, 13, a, a[0, 0]))  # fmt: skip


@pytest.mark.parametrize(
    "b_shape, attrs",
    [((3, 4), {}), ((5,), {"broadcast": 1, "axis": 1}), ((4,), {"broadcast": 1}),
     ((1, 2, 3, 4, 5), {"broadcast": 1})],
)  # fmt: skip
def test_legacy_broadcast_errors(b_shape, attrs):
    a = np.ones((2, 3, 4, 5), np.float32)
    with pytest.raises(KernelError):
        run("Add", 6, a, np.ones(b_shape, np.float32), **attrs)


def test_clip_versions_and_types():
    x = np.array([-5, -1, 0, 3, 9], np.int8)
    np.testing.assert_array_equal(run("Clip", 13, x, np.array(-2, np.int8), np.array(4, np.int8)),
                                  [-2, -1, 0, 3, 4])  # fmt: skip
    np.testing.assert_array_equal(run("Clip", 13, x, None, np.array(1, np.int8)), [-5, -1, 0, 1, 1])
    assert run("Clip", 13, x).tolist() == x.tolist()
    f = np.array([-5.0, 0.5, 9.0], np.float16)
    got = run("Clip", 6, f, min=-1.0, max=1.0)
    assert got.dtype == np.float16 and got.tolist() == [-1.0, 0.5, 1.0]
    with pytest.raises(KernelError):
        run("Clip", 13, x, np.array([1, 2], np.int8))


def test_prelu_broadcast_and_errors():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    slope = np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1)
    np.testing.assert_allclose(run("PRelu", 16, x, slope), ort_run("PRelu", 16, x, slope))
    legacy = run("PRelu", 6, x, slope.reshape(3))  # one slope per channel
    np.testing.assert_allclose(legacy, run("PRelu", 16, x, slope))
    with pytest.raises(KernelError):
        run("PRelu", 16, x, np.ones((2, 3, 4, 1), np.float32))
    ints = np.array([-4, 2], np.int32)
    assert run("PRelu", 16, ints, np.array([3], np.int32)).tolist() == [-12, 2]


def test_variadic_ops():
    a = np.array([[1.0, 5.0]], np.float32)
    b = np.array([[3.0], [0.0]], np.float32)
    c = np.array(2.0, np.float32)
    assert run("Max", 13, a, b, c).tolist() == [[3, 5], [2, 5]]
    assert run("Min", 13, a, b, c).tolist() == [[1, 2], [0, 0]]
    assert run("Sum", 13, a, b, c).tolist() == [[6, 10], [3, 7]]
    np.testing.assert_allclose(run("Mean", 13, a, b, c), [[2, 10 / 3], [1, 7 / 3]])
    h = a.astype(np.float16)
    assert run("Mean", 13, h, h).dtype == np.float16
    assert run("Sum", 13, h).dtype == np.float16
    with pytest.raises(KernelError):
        run("Max", 13)


def test_error_paths():
    with pytest.raises(KernelError):
        run("Div", 14, np.array([1, 2], np.int32), np.array([1, 0], np.int32))
    with pytest.raises(KernelError):
        run("Mod", 13, np.array([1, 2], np.int32), np.array([0, 1], np.int32))
    with pytest.raises(KernelError):
        run("Mod", 13, np.array([1.0]), np.array([1.0]), fmod=2)
    with pytest.raises(KernelError):
        run("Gelu", 20, np.ones(3, np.float32), approximate="fast")
    with pytest.raises(KernelError):
        run("SwiGLU", 28, np.ones((2, 3), np.float32), np.ones((3,), np.float32))


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.dtype(ml_dtypes.float8_e5m2)])
def test_isinf_isnan_low_precision(dtype):
    x = np.array([np.inf, -np.inf, np.nan, 1.0], np.float32).astype(dtype)
    assert run("IsInf", 20, x).tolist() == [True, True, False, False]
    assert run("IsInf", 20, x, detect_negative=0).tolist() == [True, False, False, False]
    assert run("IsInf", 20, x, detect_positive=0).tolist() == [False, True, False, False]
    assert run("IsNaN", 20, x).tolist() == [False, False, True, False]


def test_swiglu_alpha_and_swish():
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    b = RNG.standard_normal((3, 4)).astype(np.float32)
    swish = run("Swish", 24, a, alpha=1.7)
    np.testing.assert_allclose(swish, a / (1 + np.exp(-1.7 * a)), rtol=1e-6)
    np.testing.assert_allclose(run("SwiGLU", 28, a, b, alpha=1.7), swish * b, rtol=1e-6)


@pytest.mark.parametrize(("op", "version", "attrs"), [("Gelu", 20, {}),
                                                      ("Gelu", 20, {"approximate": "tanh"}),
                                                      ("Swish", 24, {})])  # fmt: skip
def test_compiled_activations_agree_with_numpys(op, version, attrs, monkeypatch):
    """The compiled float32 Gelu (both forms) and Swish (their own exponential) within 3e-7 of
    numpy's path (absolute; relative where large), special values as numpy's: NaN and -inf
    give NaN, +inf stays +inf."""
    pytest.importorskip("numba")
    from onyx.runtime import compiled

    monkeypatch.setattr(compiled, "enabled", True)
    rng = np.random.default_rng(4)
    x = np.concatenate([(rng.standard_normal(70000) * 4).astype(np.float32),
                        np.linspace(-12, 12, 40001, dtype=np.float32),
                        np.array([0, -0.0, 1, -1, 4, -4, 1e30, -1e30, np.nan, np.inf, -np.inf],
                                 np.float32)])  # fmt: skip
    assert compiled.kernels(x.size) is not None
    got = run(op, version, x, **attrs)
    monkeypatch.setattr(compiled, "enabled", False)
    want = run(op, version, x, **attrs)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[-3]) and np.isnan(got[-1]) and got[-2] == np.inf
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=3e-7,
                               atol=3e-7)  # fmt: skip
