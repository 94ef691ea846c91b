"""Signal kernels: DFT, STFT, windows, MelWeightMatrix."""

import numpy as np
import pytest
from kernel_harness import bind as _op
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError

OPS = {"DFT", "STFT", "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- our own checks: error paths and types the official cases miss ------------------------


def test_dft_matches_numpy_in_both_versions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 3, 2))
    c = x[..., 0] + 1j * x[..., 1]
    y17 = _op("DFT", 17, axis=1)(x)
    y20 = _op("DFT", 20)(x, None, np.array(1))
    ref = np.fft.fft(c, axis=1)
    np.testing.assert_allclose(y17[..., 0] + 1j * y17[..., 1], ref, atol=1e-9)
    np.testing.assert_array_equal(y17, y20)
    assert y17.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dft_low_precision_dtype(dtype):
    x = np.ones((1, 4, 1), dtype)
    y = _op("DFT", 20, onesided=1)(x)
    assert y.dtype == dtype and y.shape == (1, 3, 2)
    np.testing.assert_allclose(y[0, :, 0].astype(np.float32), [4, 0, 0], atol=1e-3)


def test_dft_errors():
    with pytest.raises(KernelError, match="axis"):
        _op("DFT", 20)(np.ones((1, 4, 1), np.float32), None, np.array(2))
    with pytest.raises(KernelError, match="last dimension"):
        _op("DFT", 20)(np.ones((1, 4, 3), np.float32))
    with pytest.raises(KernelError, match="real input"):
        _op("DFT", 20, onesided=1)(np.ones((1, 4, 2), np.float32))


def test_stft_errors():
    sig = np.ones((1, 16, 1), np.float32)
    with pytest.raises(KernelError, match="window"):
        _op("STFT", 17)(sig, np.array(4), np.ones(5, np.float32), np.array(8))
    with pytest.raises(KernelError, match="frame_step"):
        _op("STFT", 17)(sig, np.array(0), None, np.array(8))
    with pytest.raises(KernelError, match="frame_length"):
        _op("STFT", 17)(sig, np.array(1), None, np.array(32))


def test_windows_types_and_edges():
    w = _op("HannWindow", 17, output_datatype=11)(np.array(8, np.int64))
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, np.hanning(9)[:8], atol=1e-12)
    assert _op("HammingWindow", 17, periodic=0)(np.array(1, np.int32)).tolist() == [1.0]
    assert _op("BlackmanWindow", 17)(np.array(0, np.int64)).shape == (0,)
    with pytest.raises(KernelError, match="non-negative"):
        _op("HannWindow", 17)(np.array(-1, np.int64))


def test_mel_weight_matrix_errors():
    args = [np.array(8), np.array(16), np.array(8192), np.float32(4096), np.float32(0)]
    with pytest.raises(KernelError, match="lower_edge_hertz"):
        _op("MelWeightMatrix", 17)(*args)
