"""MaxPool and AveragePool's compiled kernel (``_jit.pool2d``; numba, a test extra) against their
numpy path and onnxruntime."""

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from onyx.runtime import _jit, compiled
from onyx.runtime.kernels.pool import AveragePool, MaxPool, _one_window

RNG = np.random.default_rng(5)
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]


@pytest.fixture
def calls(monkeypatch):
    """The compiled kernels on for the tests' small tensors; a list that gets one entry per
    call of the pooling kernel."""
    monkeypatch.setattr(compiled, "enabled", True)
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    if compiled.kernels(0) is None:
        pytest.fail("the compiled kernels did not load (is numba installed? see the log)")
    made = []
    kernel = _jit.pool2d

    def counted(*args):
        made.append(args[0].shape)
        return kernel(*args)

    monkeypatch.setattr(_jit, "pool2d", counted)
    return made


def numpy_path(op, x):
    compiled.enabled = False
    try:
        return op(x)
    finally:
        compiled.enabled = True


def inputs(shape, dtype, specials=True):
    """Normal values with repeats (ties), and where ``specials``, signed zeros, infinities and
    NaN scattered among them."""
    x = RNG.standard_normal(shape).round(1)
    if specials:
        at = RNG.random(shape)
        x[at < 0.25] = RNG.choice(SPECIALS, size=int((at < 0.25).sum()))
    return x.astype(dtype)


def compiles(op, x):
    """1 where the kernel runs this pool: all but one window over the whole input, and the
    averages that are the planes' means (``row_means`` then)."""
    spatial, plan = x.shape[2:], op.plan(x)
    means = isinstance(op, AveragePool) and op.plane_means(spatial, plan)
    return 0 if _one_window(spatial, plan) or means else 1


def bits(a):
    return a.dtype, a.shape, a.tobytes()


def geometries(kh, kw):
    """(input shape, attributes) over strides 1-3, pads (none, around, lopsided, past the
    kernel: windows of padding only), ceil_mode, dilations, odd and even sizes."""
    for (sh, sw), pads, ceil, dil, hw in itertools.product(
        [(1, 1), (2, 2), (3, 3), (1, 2), (2, 3)],
        [(0, 0, 0, 0), (1, 1, 1, 1), (0, 2, 1, 0), (3, 3, 3, 3)],
        [0, 1],
        [(1, 1), (2, 1)],
        [(2, 3), (6, 7), (13, 16)],
    ):
        span = [(k - 1) * d + 1 for k, d in zip((kh, kw), dil)]
        if any(s > n + pads[i] + pads[i + 2] for i, (s, n) in enumerate(zip(span, hw))):
            continue
        attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": list(pads),
                 "ceil_mode": ceil, "dilations": list(dil)}  # fmt: skip
        yield (2, 3, *hw), attrs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kh, kw", list(itertools.product(range(1, 5), range(1, 5))))
def test_max_pool_same_bits_as_numpy(calls, kh, kw, dtype):
    """The numpy path's fold, taps in order: the same bits, signed zeros, infinities and NaN
    included (one NaN here: see the next test)."""
    for shape, attrs in geometries(kh, kw):
        x = inputs(shape, dtype)
        op = MaxPool(**attrs, _outputs=1)
        before = len(calls)
        got = op(x)
        assert len(calls) == before + compiles(op, x), attrs
        assert bits(got) == bits(numpy_path(op, x)), attrs


def test_max_pool_nans_of_both_signs_give_nan(calls):
    """Of two NaNs in a window the kernel keeps the later, numpy the earlier (_jit._max): the
    same NaN places, the sign of a NaN may differ."""
    x = inputs((2, 3, 9, 10), np.float32)
    x[RNG.random(x.shape) < 0.2] = -np.nan
    op = MaxPool(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], _outputs=1)
    got, want = op(x), numpy_path(op, x)
    assert calls
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(want).any()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include", [0, 1])
@pytest.mark.parametrize("kh, kw", [(1, 1), (1, 3), (2, 2), (3, 3), (4, 2), (3, 4)])
def test_average_pool_equals_numpy(calls, kh, kw, include, dtype):
    """The same sums in the same order, divided alike: equal values (a zero's sign aside),
    windows of padding only included (0 with count_include_pad, else 0/0); the planes' means
    (GlobalAveragePool's) within a few roundings."""
    for shape, attrs in geometries(kh, kw):
        x = inputs(shape, dtype, specials=False)
        op = AveragePool(**attrs, count_include_pad=include)
        before = len(calls)
        with np.errstate(divide="ignore", invalid="ignore"):
            got, want = op(x), numpy_path(op, x)
        assert len(calls) == before + compiles(op, x), attrs
        assert got.dtype == want.dtype, attrs
        if op.plane_means(shape[2:], op.plan(x)):  # (the planes' means, summed in lanes)
            eps = np.finfo(dtype).eps  # (a sum's roundings: relative to the terms)
            np.testing.assert_allclose(got, want, rtol=0, atol=8 * eps * np.abs(x).max())
        else:
            np.testing.assert_array_equal(got, want, err_msg=str(attrs))


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 5, 57, 61), {"kernel_shape": [3, 3], "strides": [2, 2]}),  # rows read past the end
        ((1, 4, 40, 40), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 4, 33, 35), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ((1, 3, 70, 66), {"kernel_shape": [5, 7], "strides": [3, 2], "pads": [2, 3, 2, 3]}),
        ((3, 2, 28, 28), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        # many small planes: taken a group at a time, the last group short
        ((1, 75, 13, 13), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ((2, 45, 14, 14), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ((1, 130, 6, 7), {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_larger_planes(calls, shape, attrs, dtype):
    x = inputs(shape, dtype)
    op = MaxPool(**attrs, _outputs=1)
    assert bits(op(x)) == bits(numpy_path(op, x))
    x = inputs(shape, dtype, specials=False)
    op = AveragePool(**attrs)
    np.testing.assert_array_equal(op(x), numpy_path(op, x))
    assert len(calls) == 2


def test_other_layouts_and_dtypes(calls):
    """A strided view runs on a contiguous copy; float16 on the float32 it is computed in."""
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    x = inputs((1, 3, 12, 22), np.float32)[..., ::2]
    op = MaxPool(**attrs, _outputs=1)
    assert bits(op(x)) == bits(numpy_path(op, x))
    half = inputs((1, 3, 12, 11), np.float16, specials=False)
    for op in (MaxPool(**attrs, _outputs=1), AveragePool(**attrs)):
        assert bits(op(half)) == bits(numpy_path(op, half))
    assert len(calls) == 3


def test_numpy_where_the_kernel_does_not_apply(calls, monkeypatch):
    attrs = {"kernel_shape": [3], "strides": [2]}
    MaxPool(**attrs, _outputs=1)(inputs((1, 2, 9), np.float32))  # 1-D
    MaxPool(kernel_shape=[2, 2, 2], _outputs=1)(inputs((1, 2, 4, 4, 4), np.float32))  # 3-D
    MaxPool(kernel_shape=[3, 3], _outputs=1)(np.arange(50, dtype=np.int32).reshape(1, 2, 5, 5))
    AveragePool(kernel_shape=[5, 4])(inputs((1, 2, 5, 4), np.float32, False))  # one window
    MaxPool(kernel_shape=[3, 3])(inputs((1, 2, 5, 5), np.float32))  # with Indices
    assert calls == []
    monkeypatch.setattr(compiled, "MIN_SIZE", 1 << 14)
    monkeypatch.setattr(compiled, "_kernels", None)  # (numba not loaded yet in this process)
    MaxPool(kernel_shape=[3, 3], _outputs=1)(inputs((1, 8, 20, 20), np.float32))  # too small
    assert calls == []


def ort_pool(op_type, x, attrs):
    node = helper.make_node(op_type, ["x"], ["y"], **attrs)
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, x.shape)],
                              [helper.make_tensor_value_info("y", elem, None)])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize(
    "op_type, shape, attrs",
    [
        ("MaxPool", (1, 16, 27, 27), {"kernel_shape": [3, 3], "strides": [2, 2]}),
        ("MaxPool", (1, 8, 28, 28), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4}),
        ("MaxPool", (1, 8, 28, 28), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        ("MaxPool", (1, 16, 14, 14), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ("AveragePool", (1, 16, 28, 28), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("AveragePool", (1, 8, 14, 15),
         {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
        ("AveragePool", (1, 8, 14, 15),
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2], "ceil_mode": 1}),
    ],
)  # fmt: skip
def test_matches_onnxruntime(op_type, shape, attrs):
    x = inputs(shape, np.float32, specials=False)
    op = MaxPool(**attrs, _outputs=1) if op_type == "MaxPool" else AveragePool(**attrs)
    np.testing.assert_allclose(op(x), ort_pool(op_type, x, attrs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "shape, attrs, takes",
    [
        ((1, 300, 7, 7), {"kernel_shape": [7, 7]}, True),  # resnet50's last pool
        ((2, 40, 6, 6), {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1]}, True),  # pads not counted
        # the padding counted, or a window that is not the whole plane: the windowed kernel
        ((1, 40, 6, 6), {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1], "count_include_pad": 1},
         False),
        ((1, 40, 6, 6), {"kernel_shape": [5, 6]}, False),
    ],
)  # fmt: skip
def test_an_average_over_the_whole_plane_is_a_global_average(compiled_calls, shape, attrs, takes):
    """One window covering each plane with only its own elements counted: the planes' compiled
    means (``row_means``, as GlobalAveragePool), else the windowed kernel; against onnxruntime."""
    made = compiled_calls((_jit, "row_means"), (_jit, "pool2d"))
    x = inputs(shape, np.float32, specials=False)
    got = AveragePool(**attrs)(x)
    assert made == (["row_means"] if takes else ["pool2d"])
    want = ort_pool("AveragePool", x, attrs)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
