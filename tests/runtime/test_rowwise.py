"""Squeeze-excite's steps, compiled: Mul of a tensor by one value per row of its leading axes
((N, C, H, W) by (N, C, 1, 1)) and the mean over trailing axes (ReduceMean, GlobalAveragePool).
The product gives numpy's bits (one rounding; Add, Sub and Div keep numpy's own loop); the
means agree with numpy's to rounding (their sums are reassociated), NaN and infinities as
numpy's."""

from __future__ import annotations

import numpy as np
import pytest

from onyx.runtime.kernels.registry import lookup

pytestmark = pytest.mark.usefixtures("both_paths")  # numpy and compiled kernels

RNG = np.random.default_rng(53)


def _tensor(shape, dtype):
    x = (RNG.standard_normal(shape) * 3).astype(dtype)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "big, small",
    [
        ((1, 672, 14, 14), (1, 672, 1, 1)),  # EfficientNet's gate
        ((2, 40, 28, 28), (2, 40, 1, 1)),  # a batch of two
        ((3, 5, 7), (3, 1, 1)),  # one value per leading row
        ((1, 64, 9, 9), (1, 64, 9, 1)),  # one value per (channel, row)
        ((1, 64, 9, 9), (1, 1, 9, 9)),  # not per row: numpy's broadcast
        ((1, 64, 9, 9), (64, 1, 1)),  # of lower rank: numpy's broadcast
    ],
)
def test_mul_by_one_value_a_row_gives_numpys_bits(dtype, big, small):
    a, b = _tensor(big, dtype), _tensor(small, dtype)
    b.reshape(-1)[-1] = 0  # (infinities times zero: NaN)
    mul = lookup("", "Mul", 14)
    with np.errstate(all="ignore"):  # (as a session runs its steps)
        np.testing.assert_array_equal(mul(a, b), np.multiply(a, b))
        np.testing.assert_array_equal(mul(b, a), np.multiply(b, a))  # (the small one first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((1, 672, 14, 14), [2, 3]),  # a squeeze
        ((2, 1280, 7, 7), [3, 2]),  # axes in another order
        ((4, 96, 300), [-1]),  # the last axis
        ((3, 5, 7, 11), [1, 2, 3]),  # all but the first
    ],
)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_mean_over_trailing_axes_agrees_with_numpy(dtype, shape, axes, keepdims):
    x = _tensor(shape, dtype)
    x[-1] = 1e37 if dtype == np.float32 else 1e307  # (sums past the type's range: inf)
    with np.errstate(all="ignore"):  # (as a session runs its steps)
        got = lookup("", "ReduceMean", 18)(x, np.array(axes, np.int64), keepdims=keepdims)
        want = np.mean(x, axis=tuple(axes), keepdims=bool(keepdims))
        precise = np.mean(x.astype(np.float64), axis=tuple(axes), keepdims=bool(keepdims))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    np.testing.assert_allclose(got[finite], precise[finite], rtol=1e-5, atol=1e-6)


def test_global_average_pool_agrees_with_numpy():
    x = _tensor((2, 1280, 7, 7), np.float32)
    got = lookup("", "GlobalAveragePool", 22)(x)
    want = np.mean(x.astype(np.float64), axis=(2, 3), keepdims=True)
    assert got.shape == (2, 1280, 1, 1) and got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6)
