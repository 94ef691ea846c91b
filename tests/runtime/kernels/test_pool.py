"""Pooling kernels: the official node cases plus error paths, types and onnxruntime checks."""

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import cases_for, check_case, run_model
from onnx import helper

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"MaxPool", "AveragePool", "LpPool", "GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool",
       "MaxUnpool", "MaxRoiPool", "RoiAlign"}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- against onnxruntime -------------------------------------------------------------------------


RNG = np.random.default_rng(0)


def compare_with_ort(op, inputs, attrs, opset=22, out_types=None, rtol=1e-5, atol=1e-5):
    names = [f"i{k}" for k in range(len(inputs))]
    out_types = out_types or [inputs[0].dtype]
    outs = [f"o{k}" for k in range(len(out_types))]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in zip(names, inputs)],
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t)), None)
         for n, t in zip(outs, out_types)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, dict(zip(names, inputs)))
    got = run_model(model, inputs)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


POOL_CASES = [
    ((1, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ((2, 2, 10, 11), {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1]}),
    ((1, 2, 10, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (
        (1, 2, 11, 10),
        {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    ),
    ((1, 2, 10, 10), {"kernel_shape": [2, 3], "dilations": [2, 2], "strides": [1, 2]}),
    ((1, 2, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 10, 9), {"kernel_shape": [4, 4], "strides": [3, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}),
    ((2, 3, 13), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),
    # stride-1 windows reaching into the padding at both ends of each row (the rows run as one
    # line, these columns are computed again): inception's pooling branch, dilated, lopsided
    ((2, 3, 7, 8), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ((1, 2, 6, 7), {"kernel_shape": [3, 3], "dilations": [2, 2], "pads": [2, 1, 2, 2]}),
    ((1, 2, 5, 5), {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2], "strides": [1, 2]}),
    ((1, 1, 4, 3), {"kernel_shape": [2, 4], "pads": [0, 3, 1, 0]}),
    ((1, 3, 8, 12), {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ((2, 2, 9, 12), {"kernel_shape": [3, 4], "strides": [2, 3], "pads": [1, 2, 0, 3]}),
    ((1, 2, 6, 10), {"kernel_shape": [3, 3], "strides": [1, 2], "ceil_mode": 1}),
    ((2, 3, 5, 4), {"kernel_shape": [5, 4]}),  # one window over the whole input
    # a kernel wider than the (padded) input, one window by ceil_mode (EfficientNet's pooler)
    ((1, 3, 7, 7), {"kernel_shape": [40, 40], "strides": [40, 40], "ceil_mode": 1}),
    (
        (1, 2, 5, 6),
        {"kernel_shape": [9, 7], "strides": [9, 9], "pads": [1, 0, 1, 1], "ceil_mode": 1},
    ),
    ((1, 2, 5, 4), {"kernel_shape": [3, 4], "dilations": [2, 1]}),  # spans it, skipping rows
    # strides along the last axis: the stride-1 windows over the line, every s-th kept
    ((1, 2, 12, 12), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (
        (2, 2, 9, 13),
        {"kernel_shape": [2, 3], "strides": [2, 3], "dilations": [1, 2], "pads": [0, 2, 1, 2]},
    ),  # fmt: skip
    (
        (1, 2, 5, 6, 7),
        {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [0, 1, 1, 1, 1, 0]},
    ),
]


@pytest.mark.parametrize("shape, attrs", POOL_CASES)
def test_max_pool_matches_ort(shape, attrs):
    compare_with_ort("MaxPool", [rand(*shape)], attrs)


# onnxruntime computes column-major indices (storage_order=1) only in 2-D: no oracle beyond it.
@pytest.mark.parametrize(
    "shape, attrs, storage_order",
    [(shape, attrs, order) for shape, attrs in POOL_CASES if "dilations" not in attrs
     for order in (0, 1) if order == 0 or len(shape) == 4],
)  # fmt: skip
def test_max_pool_indices_match_ort(shape, attrs, storage_order):
    compare_with_ort("MaxPool", [rand(*shape)], dict(attrs, storage_order=storage_order),
                     out_types=[np.float32, np.int64])  # fmt: skip


@pytest.mark.parametrize("shape, attrs", POOL_CASES)
@pytest.mark.parametrize("include", [0, 1])
def test_average_pool_matches_ort(shape, attrs, include):
    compare_with_ort("AveragePool", [rand(*shape)], dict(attrs, count_include_pad=include))


@pytest.mark.parametrize("shape, attrs", POOL_CASES[:3] + POOL_CASES[5:7])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_matches_ort(shape, attrs, p):
    compare_with_ort("LpPool", [rand(*shape)], dict(attrs, p=p), rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int8])
def test_max_pool_types(dtype):
    x = (rand(1, 2, 7, 7) * 40).astype(dtype)
    compare_with_ort(
        "MaxPool", [x], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}
    )


@pytest.mark.parametrize("op", ["GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 4, 7), (1, 2, 3, 4, 5)])
def test_global_pools_match_ort(op, shape):
    compare_with_ort(op, [rand(*shape)], {}, opset=2 if op == "GlobalLpPool" else 22, rtol=1e-4)


def test_max_unpool_inverts_max_pool():
    x = np.abs(rand(1, 2, 6, 6)) + 0.1
    y, idx = lookup("", "MaxPool", 22)(kernel_shape=[2, 2], strides=[2, 2])(x)
    up = lookup("", "MaxUnpool", 22)(y, idx, kernel_shape=[2, 2], strides=[2, 2])
    again, _ = lookup("", "MaxPool", 22)(kernel_shape=[2, 2], strides=[2, 2])(up)
    np.testing.assert_array_equal(again, y)


@pytest.mark.parametrize("attrs", [
    {"mode": "avg", "output_height": 3, "output_width": 4, "sampling_ratio": 2, "spatial_scale": 0.5},
    {"mode": "avg", "output_height": 2, "output_width": 2, "sampling_ratio": 0},
    {"mode": "avg", "coordinate_transformation_mode": "output_half_pixel", "output_height": 3},
    {"mode": "max", "output_height": 2, "output_width": 3, "sampling_ratio": 2},
])  # fmt: skip
def test_roi_align_matches_ort(attrs):
    x = rand(2, 3, 10, 12)
    rois = np.array([[0, 0, 9, 9], [1.5, 2.2, 7.7, 8.1], [-2, -1, 13, 11], [3, 3, 3.5, 3.2]],
                    dtype=np.float32)  # fmt: skip
    compare_with_ort("RoiAlign", [x, rois, np.array([0, 1, 1, 0])], attrs, opset=16, rtol=1e-4,
                     atol=1e-4)  # fmt: skip


def test_roi_align_10_defaults_to_output_half_pixel():
    x = rand(1, 2, 8, 8)
    rois = np.array([[1, 1, 6, 5]], np.float32)
    compare_with_ort("RoiAlign", [x, rois, np.array([0])], {"output_height": 2}, opset=10)


def test_max_roi_pool_matches_ort():
    x = rand(2, 3, 10, 12)
    rois = np.array([[0, 0, 0, 9, 9], [1, 1.5, 2.2, 7.7, 8.1], [1, 3, 3, 3, 3]], np.float32)
    compare_with_ort("MaxRoiPool", [x, rois], {"pooled_shape": [3, 2], "spatial_scale": 0.9},
                     opset=1)  # fmt: skip


@pytest.mark.parametrize("op, attrs, inputs", [
    ("MaxPool", {"kernel_shape": [3, 3]}, [(1, 2, 5)]),  # kernel rank != spatial rank
    ("MaxPool", {"kernel_shape": [7]}, [(1, 2, 5)]),  # kernel larger than input
    ("AveragePool", {"kernel_shape": [2], "storage_order": 0, "auto_pad": "X"}, [(1, 2, 5)]),
    ("LpPool", {"kernel_shape": [2], "strides": [0]}, [(1, 2, 5)]),
    ("GlobalAveragePool", {}, [(2, 3)]),
    ("RoiAlign", {"mode": "min"}, None),
])  # fmt: skip
def test_pool_errors(op, attrs, inputs):
    impl = lookup("", op, 22)
    with pytest.raises((KernelError, TypeError)):
        fn = impl(**attrs) if isinstance(impl, type) else (lambda *a: impl(*a, **attrs))
        fn(*[rand(*s) for s in inputs or [(1, 1, 4, 4)]])


def test_pool_index_errors():
    with pytest.raises(KernelError, match="indices"):
        lookup("", "MaxUnpool", 22)(rand(1, 1, 2, 2), np.array([[[[0, 1], [2, 99]]]]),
                                    kernel_shape=[2, 2], strides=[2, 2])  # fmt: skip
    with pytest.raises(KernelError, match="batch_indices"):
        lookup("", "RoiAlign", 22)()(rand(1, 1, 4, 4), rand(1, 4), np.array([3]))
    with pytest.raises(KernelError, match="batch index"):
        lookup("", "MaxRoiPool", 22)(rand(1, 1, 4, 4), np.array([[2, 0, 0, 1, 1]], np.float32),
                                     pooled_shape=[1, 1])  # fmt: skip
