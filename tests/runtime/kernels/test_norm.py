"""Normalization kernels against the official node cases, plus error paths and extra types."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import bind as _k
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError

OPS = {
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "RMSNormalization", "LpNormalization", "LRN", "MeanVarianceNormalization",
}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def _layer_norm_ref(x, scale, b, axis, eps):
    axes = tuple(range(axis, x.ndim))
    m = x.mean(axes, keepdims=True)
    v = ((x - m) ** 2).mean(axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * scale + b


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_layer_norm_types(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8)).astype(dtype)
    s = rng.standard_normal(8).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y, mean, _inv = _k("LayerNormalization", 17)(x, s, b)
    assert y.dtype == x.dtype and mean.dtype == np.float32 and mean.shape == (2, 3, 1)
    ref = _layer_norm_ref(x.astype(np.float64), s.astype(np.float64), b.astype(np.float64), 2, 1e-5)
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2e-2, atol=3e-2)


def test_layer_norm_no_bias_and_bad_scale():
    x = np.ones((2, 4), np.float32)
    y, _, _ = _k("LayerNormalization", 17)(x, np.ones(4, np.float32))
    assert y.shape == (2, 4)
    with pytest.raises(KernelError):
        _k("LayerNormalization", 17)(x, np.ones(3, np.float32))
    with pytest.raises(KernelError):
        _k("LayerNormalization", 17, axis=2)(x, np.ones(4, np.float32))


def test_group_norm_versions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y18 = _k("GroupNormalization", 18, num_groups=2)(
        x, np.array([2.0, 3.0], np.float32), np.array([0.5, 1.0], np.float32)
    )
    y21 = _k("GroupNormalization", 21, num_groups=2)(
        x, np.array([2, 2, 3, 3], np.float32), np.array([0.5, 0.5, 1, 1], np.float32)
    )
    np.testing.assert_allclose(y18, y21, rtol=1e-6)
    with pytest.raises(KernelError):
        _k("GroupNormalization", 21, num_groups=3)(
            x, np.ones(4, np.float32), np.ones(4, np.float32)
        )


def test_batchnorm_legacy_and_errors():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4)).astype(np.float16)
    p = [
        np.ones(3, np.float16),
        np.zeros(3, np.float16),
        np.zeros(3, np.float16),
        np.ones(3, np.float16),
    ]
    y = _k("BatchNormalization", 7)(x, *p)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-5), rtol=1e-3)
    # non-spatial: parameters per feature (C, D1)
    q = [np.ones((3, 4)), np.zeros((3, 4)), np.zeros((3, 4)), np.ones((3, 4))]
    y = _k("BatchNormalization", 6, spatial=0)(x.astype(np.float64), *q)
    assert y.shape == x.shape
    with pytest.raises(KernelError):
        _k("BatchNormalization", 15)(x, np.ones(2, np.float16), *p[1:])


def test_rms_norm_bf16_and_lp_zero():
    x = np.arange(8, dtype=np.float32).reshape(2, 4).astype(ml_dtypes.bfloat16)
    y = _k("RMSNormalization", 23)(x, np.ones(4, ml_dtypes.bfloat16))
    assert y.dtype == x.dtype
    z = _k("LpNormalization", 22, p=2)(np.zeros((2, 3), np.float32))
    assert not np.isnan(z).any()
    with pytest.raises(KernelError):
        _k("LpNormalization", 22, p=3)(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("beta", [0.5, 0.75, 1.0, 0.6])
def test_lrn_matches_direct_sum(size, beta):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 3, 2)).astype(np.float32)
    alpha, bias = 0.3, 1.5
    y = _k("LRN", 13, size=size, alpha=alpha, beta=beta, bias=bias)(x)
    x64 = x.astype(np.float64)
    below, above = (size - 1) // 2, size // 2
    sq = np.zeros_like(x64)
    for c in range(5):
        sq[:, c] = (x64[:, max(0, c - below) : c + above + 1] ** 2).sum(1)
    np.testing.assert_allclose(y, x64 / (bias + alpha / size * sq) ** beta, rtol=2e-6)
