"""Vision kernels: Resize, Upsample, GridSample, AffineGrid, NonMaxSuppression, CenterCropPad,
ImageDecoder."""

import sys

import numpy as np
import pytest
from kernel_harness import bind as _op
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError, UnsupportedError

OPS = {
    "Resize",
    "Upsample",
    "GridSample",
    "AffineGrid",
    "NonMaxSuppression",
    "CenterCropPad",
    "ImageDecoder",
}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- our own checks: error paths, legacy versions, types the official cases miss ----------


X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def test_resize_needs_exactly_one_of_scales_and_sizes():
    resize = _op("Resize", 13)
    with pytest.raises(KernelError, match="exactly one"):
        resize(X, None, None, None)
    with pytest.raises(KernelError, match="exactly one"):
        resize(X, None, np.ones(4, np.float32), np.array([1, 1, 4, 4], np.int64))


def test_resize_bad_lengths_and_attributes():
    with pytest.raises(KernelError, match="'scales' must have 4"):
        _op("Resize", 13)(X, None, np.ones(3, np.float32))
    with pytest.raises(KernelError, match="mode"):
        _op("Resize", 13, mode="bogus")
    with pytest.raises(KernelError, match="out of range"):
        _op("Resize", 18, axes=[5])(X, None, np.ones(1, np.float32))
    with pytest.raises(KernelError, match="roi"):
        _op("Resize", 13, coordinate_transformation_mode="tf_crop_and_resize")(
            X, None, None, np.array([1, 1, 2, 2], np.int64)
        )


def test_resize_linear_on_strings_is_an_error():
    s = np.array([["a", "b"]], dtype=object)
    with pytest.raises(KernelError, match="numeric"):
        _op("Resize", 13, mode="linear")(s, None, np.array([1, 2], np.float32))
    out = _op("Resize", 13)(s, None, np.array([1, 2], np.float32))  # nearest works on strings
    assert out.tolist() == [["a", "a", "b", "b"]]


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int32, np.float64])
def test_resize_keeps_dtype(dtype):
    out = _op("Resize", 13, mode="linear")(
        X.astype(dtype), None, np.array([1, 1, 2, 2], np.float32)
    )
    assert out.dtype == dtype and out.shape == (1, 1, 8, 8)
    ref = _op("Resize", 13, mode="linear")(X, None, np.array([1, 1, 2, 2], np.float32))
    np.testing.assert_allclose(out.astype(np.float32), ref, atol=1.0)


def test_resize_dense_path_keeps_nan_local():
    x = X.copy()
    x[0, 0, 0, 0] = np.nan
    out = _op("Resize", 13, mode="linear")(x, None, np.array([1, 1, 2, 2], np.float32))
    assert np.isnan(out).sum() < out.size / 4


def test_resize_10_and_upsample():
    scales = np.array([1, 1, 2, 1.5], np.float32)
    up9 = _op("Upsample", 9)(X, scales)
    up7 = _op("Upsample", 7, scales=[1, 1, 2, 1.5])(X)
    r10 = _op("Resize", 10)(X, scales)
    assert up9.shape == (1, 1, 8, 6)
    np.testing.assert_array_equal(up9, up7)
    np.testing.assert_array_equal(up9, r10)
    np.testing.assert_array_equal(up9[0, 0, :, 0], [0, 0, 4, 4, 8, 8, 12, 12])
    with pytest.raises(KernelError, match="rank"):
        _op("Upsample", 9)(X, np.array([2, 2], np.float32))
    lin = _op("Upsample", 9, mode="linear")(X, np.array([1, 1, 2, 2], np.float32))
    np.testing.assert_allclose(lin[0, 0, 0, :3], [0, 0.5, 1])


def test_gridsample_errors_and_strings():
    with pytest.raises(KernelError, match="grid"):
        _op("GridSample", 20)(X, np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(KernelError, match="padding_mode"):
        _op("GridSample", 20, padding_mode="wrap")
    s = np.array([[[["a", "b"], ["c", "d"]]]], dtype=object)
    grid = np.array([[[[-0.5, -0.5], [0.5, 0.5], [3, 3]]]], np.float32)
    out = _op("GridSample", 20, mode="nearest")(s, grid)
    assert out.tolist() == [[[["a", "d", ""]]]]


def test_gridsample_16_old_mode_names():
    grid = np.zeros((1, 1, 1, 2), np.float32)
    a = _op("GridSample", 16, mode="bilinear")(X, grid)
    b = _op("GridSample", 20, mode="linear")(X, grid)
    np.testing.assert_array_equal(a, b)


def test_affine_grid_bad_theta():
    with pytest.raises(KernelError, match="theta"):
        _op("AffineGrid", 20)(np.zeros((1, 3, 4), np.float32), np.array([1, 1, 4, 4], np.int64))


def test_nms_errors_and_empty():
    nms = _op("NonMaxSuppression", 11)
    boxes = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(KernelError, match="scores"):
        nms(boxes, np.zeros((1, 1, 4), np.float32))
    out = nms(boxes, np.zeros((1, 1, 3), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.int64


def test_center_crop_pad_errors_and_types():
    with pytest.raises(KernelError, match="one per axis"):
        _op("CenterCropPad", 18)(X, np.array([2, 2], np.int64))
    s = np.array(["a", "b", "c"], dtype=object)
    assert _op("CenterCropPad", 18)(s, np.array([5], np.int64)).tolist() == ["", "a", "b", "c", ""]


def test_image_decoder_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UnsupportedError, match=r"pip install onyx\[image\]"):
        _op("ImageDecoder", 20)(np.zeros(10, np.uint8))


def test_image_decoder_garbage_gives_empty_image():
    pytest.importorskip("PIL")
    out = _op("ImageDecoder", 20, pixel_format="Grayscale")(
        np.frombuffer(b"not an image", np.uint8)
    )
    assert out.shape == (0, 0, 1) and out.dtype == np.uint8


@pytest.fixture
def planes_calls(compiled_calls):
    """The names of the resampling kernels called from Python (one thread: ``resample_planes``;
    numba's threads: ``resample_bands``)."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit, _jit_par

    return compiled_calls((_jit, "resample_planes"), (_jit_par, "resample_bands"))


def _numpy_path(fn):
    from onyx.runtime import compiled

    compiled.enabled = False
    try:
        return fn()
    finally:
        compiled.enabled = True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize(
    "transform", ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"]
)
@pytest.mark.parametrize("antialias", [0, 1])
def test_resize_of_the_last_two_axes_compiled_agrees_with_the_numpy_path(
    planes_calls, dtype, mode, transform, antialias
):
    """Up and down, both axes, rank 3 and 4, a channel-last view (Segformer's), infinities and a
    NaN staying where the numpy path puts them; values to rounding (another order of sums)."""
    op = _op("Resize", 19, mode=mode, coordinate_transformation_mode=transform, antialias=antialias)
    rng = np.random.default_rng(7)
    last = rng.standard_normal((2, 9, 11, 5)).astype(dtype).transpose(0, 3, 1, 2)
    special = rng.standard_normal((1, 3, 8, 8)).astype(dtype)
    special[0, 1, 2, 3], special[0, 2, 5, 5], special[0, 0, 0, 0] = np.inf, -np.inf, np.nan
    cases = [(rng.standard_normal((1, 3, 7, 9)).astype(dtype), (1, 3, 14, 18)),
             (rng.standard_normal((2, 40, 30)).astype(dtype), (2, 17, 11)),
             (last, (2, 5, 20, 6)), (special, (1, 3, 16, 12))]  # fmt: skip
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for x, out in cases:
        sizes = np.array(out, np.int64)
        before = len(planes_calls)
        got = op(x, None, None, sizes)
        assert planes_calls[before:] == ["resample_planes"]
        with np.errstate(invalid="ignore"):
            want = _numpy_path(lambda x=x, sizes=sizes: op(x, None, None, sizes))
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        scale = np.abs(want[finite]).max()
        np.testing.assert_allclose(got[finite] / scale, want[finite] / scale, rtol=0, atol=tol)


def test_resize_that_the_planes_kernel_does_not_take_keeps_the_numpy_path(planes_calls):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    _op("Resize", 19, mode="nearest")(x, None, None, np.array([1, 2, 12, 12], np.int64))
    _op("Resize", 19, mode="linear")(x, None, None, np.array([1, 4, 12, 12], np.int64))  # 3 axes
    _op("Resize", 19, mode="linear")(x.astype(np.float16), None, None, np.array([1, 2, 3, 3]))
    crop = _op("Resize", 19, mode="linear", coordinate_transformation_mode="tf_crop_and_resize")
    crop(x, np.array([0, 0, -0.5, -0.5, 1, 1, 1.5, 1.5], np.float32), None, np.array([1, 2, 4, 4]))
    assert planes_calls == []


def test_resize_in_a_session_splits_its_planes_over_numbas_threads(planes_calls):
    from onnx import TensorProto, helper

    import onyx

    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")
    graph = helper.make_graph(
        [node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 64, 56, 56])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    options = onyx.SessionOptions()
    options.intra_op_num_threads = 2
    session = onyx.InferenceSession(model.SerializeToString(), options)
    x = np.random.default_rng(9).standard_normal((1, 64, 28, 28)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    assert planes_calls == ["resample_bands"]
    (want,) = _numpy_path(lambda: session.run(None, {"x": x}))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
