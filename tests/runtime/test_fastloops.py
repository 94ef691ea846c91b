"""clamp: the same values (bits included) as numpy's own maximum/minimum by a scalar, on every
layout and dtype it takes or hands back."""

import numpy as np
import pytest

from onyx.runtime import fastloops
from onyx.runtime.fastloops import clamp


def _bits_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "dtype, bound",
    [(t, b) for t in (np.float32, np.float64, np.float16) for b in (0, -0.0, 1.5, np.nan)]
    + [(np.int32, 0), (np.int32, -3)],
)
@pytest.mark.parametrize("ufunc", [np.maximum, np.minimum])
def test_contiguous_matches_numpy(dtype, ufunc, bound):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 5, 7)) * 4).astype(dtype)
    x.flat[:4] = [0, -0.0, np.inf, -np.inf] if x.dtype.kind == "f" else [0, 1, -1, 2]
    if x.dtype.kind == "f":
        x.flat[5] = np.nan
    expected = ufunc(x, np.dtype(dtype).type(bound))
    assert _bits_equal(clamp(ufunc, x, bound, np.empty_like(x)), expected)


def test_longer_than_the_buffer(monkeypatch):
    # several chunks and a partial last one
    monkeypatch.setattr(fastloops, "_BOUND_CHUNK", 64)
    fastloops._bound_buffer.cache_clear()
    try:
        x = np.random.default_rng(1).standard_normal(64 * 3 + 5).astype(np.float32)
        out = x.copy()
        clamp(np.maximum, out, 0.25, out)  # in place
        assert _bits_equal(out, np.maximum(x, np.float32(0.25)))
    finally:
        fastloops._bound_buffer.cache_clear()


@pytest.mark.parametrize(
    "region",
    [
        (slice(None), slice(None), slice(2, 30)),  # a band of rows: 840-value contiguous runs
        (slice(None), slice(None), slice(2, 9)),  # a short band (210 values): the scalar loop
        (slice(None), slice(None), slice(None), slice(1, 3)),  # short runs: the scalar loop
        (slice(None, None, 2),),  # every other image
    ],
)
def test_views_write_only_their_region(region):
    y = np.random.default_rng(2).standard_normal((2, 3, 40, 30)).astype(np.float32)
    expected = y.copy()
    expected[region] = np.minimum(expected[region], np.float32(-0.5))
    clamp(np.minimum, y[region], -0.5, y[region])
    assert _bits_equal(y, expected)


def test_zero_d_and_empty():
    assert _bits_equal(clamp(np.maximum, np.float32(-2.0) * np.ones((), np.float32), 0,
                             np.empty((), np.float32)), np.zeros((), np.float32))  # fmt: skip
    empty = np.zeros((0, 4), np.float64)
    assert clamp(np.maximum, empty, 0, np.empty_like(empty)).shape == (0, 4)
