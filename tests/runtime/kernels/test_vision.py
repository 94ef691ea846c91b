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
