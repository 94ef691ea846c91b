"""Signal processing operators: DFT, STFT, window functions and MelWeightMatrix (via np.fft)."""

from __future__ import annotations

import numpy as np

from onyx.dtypes import to_numpy
from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel


def _scalar_int(value, name: str, op: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise KernelError(f"{op}: '{name}' must be an integer scalar, got {arr.dtype} {arr.shape}")
    return int(arr.reshape(-1)[0])


def _complex_work(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex128 if dtype == np.float64 else np.complex64)


def _as_complex(x: np.ndarray, op: str) -> tuple[np.ndarray, bool]:
    """The signal of an input whose last dim holds (real) or (real, imag); and whether real."""
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise KernelError(
            f"{op}: the input's last dimension must be 1 (real) or 2 (complex), got shape {x.shape}"
        )
    work = np.float64 if x.dtype == np.float64 else np.float32
    if x.shape[-1] == 1:
        return x[..., 0].astype(work, copy=False), True
    c = np.empty(x.shape[:-1], _complex_work(x.dtype))
    c.real, c.imag = x[..., 0], x[..., 1]
    return c, False


def _pack(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A complex result as (..., 2) real/imaginary pairs; a real one as (..., 1)."""
    if np.iscomplexobj(y):
        return np.stack([y.real, y.imag], axis=-1).astype(dtype, copy=False)
    return y[..., None].astype(dtype, copy=False)


def _dft(x, dft_length, axis, inverse, onesided):
    op = "DFT"
    r = x.ndim
    if not (-r <= axis <= -2 or 0 <= axis <= r - 2):
        raise KernelError(
            f"DFT: axis must be in [{-r}, -2] or [0, {r - 2}] for an input of rank {r}, got {axis}"
        )
    axis %= r
    if inverse not in (0, 1) or onesided not in (0, 1):
        raise KernelError(f"DFT: inverse and onesided must be 0 or 1, got {inverse}, {onesided}")
    signal, real = _as_complex(x, op)
    if onesided and not inverse and not real:
        raise KernelError(
            "DFT: a one-sided forward DFT needs a real input (last dimension 1), got a complex one"
        )
    size = signal.shape[axis]
    if dft_length is None:
        n = 2 * (size - 1) if (onesided and inverse) else size
    else:
        n = _scalar_int(dft_length, "dft_length", op)
    if n < 1:
        raise KernelError(f"DFT: dft_length must be positive, got {n}")
    if onesided and inverse:
        y = np.fft.irfft(signal, n, axis=axis)
    elif onesided:
        y = np.fft.rfft(signal, n, axis=axis)
    elif inverse:
        y = np.fft.ifft(signal, n, axis=axis)
    else:
        y = np.fft.fft(signal, n, axis=axis)
    if not np.iscomplexobj(y) or not (onesided and inverse):
        y = y.astype(_complex_work(x.dtype), copy=False) if np.iscomplexobj(y) else y
    return _pack(y, x.dtype)


@kernel("DFT", 17)
def dft_17(input, dft_length=None, *, axis=1, inverse=0, onesided=0):
    return _dft(input, dft_length, int(axis), int(inverse), int(onesided))


@kernel("DFT", 20)
def dft_20(input, dft_length=None, axis=None, *, inverse=0, onesided=0):
    axis = -2 if axis is None else _scalar_int(axis, "axis", "DFT")
    return _dft(input, dft_length, axis, int(inverse), int(onesided))


@kernel("STFT", 17)
def stft(signal, frame_step, window=None, frame_length=None, *, onesided=1):
    op = "STFT"
    if signal.ndim != 3:
        raise KernelError(
            f"STFT: signal must have shape (batch, length, 1 or 2), got shape {signal.shape}"
        )
    x, real = _as_complex(signal, op)
    step = _scalar_int(frame_step, "frame_step", op)
    if step < 1:
        raise KernelError(f"STFT: frame_step must be positive, got {step}")
    length = signal.shape[1]
    if frame_length is not None:
        n = _scalar_int(frame_length, "frame_length", op)
    elif window is not None:
        n = window.shape[0] if window.ndim == 1 else -1
    else:
        n = length
    if window is not None and (window.ndim != 1 or window.shape[0] != n):
        raise KernelError(
            f"STFT: window must be 1-D with frame_length={n} values, got shape {window.shape}"
        )
    if not 1 <= n <= length:
        raise KernelError(f"STFT: frame_length must be in [1, {length}] (signal length), got {n}")
    if onesided and not real:
        raise KernelError("STFT: onesided=1 needs a real signal, got a complex one (last dim 2)")
    frames = np.lib.stride_tricks.sliding_window_view(x, n, axis=1)[:, ::step]
    if window is not None:
        frames = frames * window.astype(x.real.dtype, copy=False)
    y = np.fft.rfft(frames, n, axis=-1) if onesided else np.fft.fft(frames, n, axis=-1)
    return _pack(y, signal.dtype)


# --- windows -------------------------------------------------------------------------------
def _window(size, periodic, output_datatype, terms, op):
    """sum_k terms[k] * cos(2 pi k n / N) with N = size (periodic) or size - 1 (symmetric)."""
    n = _scalar_int(size, "size", op)
    if n < 0:
        raise KernelError(f"{op}: size must be non-negative, got {n}")
    dtype = to_numpy(output_datatype)
    if dtype.kind not in "fiu":
        raise KernelError(f"{op}: output_datatype must be a numeric type, got {dtype}")
    denom = n if periodic else n - 1
    if denom <= 0:
        return np.ones(n, dtype)
    phase = 2 * np.pi * np.arange(n) / denom
    w = np.full(n, terms[0])
    for k, c in enumerate(terms[1:], 1):
        w += c * np.cos(k * phase)
    return w.astype(dtype)


@kernel("HannWindow", 17)
def hann_window(size, *, output_datatype=1, periodic=1):
    return _window(size, periodic, output_datatype, (0.5, -0.5), "HannWindow")


@kernel("HammingWindow", 17)
def hamming_window(size, *, output_datatype=1, periodic=1):
    return _window(size, periodic, output_datatype, (25 / 46, -21 / 46), "HammingWindow")


@kernel("BlackmanWindow", 17)
def blackman_window(size, *, output_datatype=1, periodic=1):
    return _window(size, periodic, output_datatype, (0.42, -0.5, 0.08), "BlackmanWindow")


# --- MelWeightMatrix -----------------------------------------------------------------------
@kernel("MelWeightMatrix", 17)
def mel_weight_matrix(
    num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *, output_datatype=1
):
    op = "MelWeightMatrix"
    bands = _scalar_int(num_mel_bins, "num_mel_bins", op)
    n_fft = _scalar_int(dft_length, "dft_length", op)
    rate = _scalar_int(sample_rate, "sample_rate", op)
    low = float(np.asarray(lower_edge_hertz).reshape(-1)[0])
    high = float(np.asarray(upper_edge_hertz).reshape(-1)[0])
    if bands < 1 or n_fft < 1 or rate < 1:
        raise KernelError(
            f"{op}: num_mel_bins, dft_length and sample_rate must be positive, "
            f"got {bands}, {n_fft}, {rate}"
        )
    if not 0 <= low < high:
        raise KernelError(
            f"{op}: need 0 <= lower_edge_hertz < upper_edge_hertz, got {low} and {high}"
        )
    dtype = to_numpy(output_datatype)
    bins = n_fft // 2 + 1
    # band edges: bands + 2 points from the lower edge in steps of (mel span) / (bands + 2) on
    # the mel scale (as the standard's reference and onnxruntime do), floored to spectrogram bins
    low_mel, high_mel = 2595 * np.log10(1 + low / 700), 2595 * np.log10(1 + high / 700)
    mel = low_mel + np.arange(bands + 2) * ((high_mel - low_mel) / (bands + 2))
    hertz = 700 * (10 ** (mel / 2595) - 1)
    edges = np.floor((n_fft + 1) * hertz / rate).astype(np.int64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    k = np.arange(bins)[:, None]
    rise = center - lower
    fall = upper - center
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(rise > 0, (k - lower) / np.where(rise > 0, rise, 1), 0.0)
        down = np.where(fall > 0, (upper - k) / np.where(fall > 0, fall, 1), 0.0)
    w = np.where((k >= lower) & (k < center), up, 0.0)
    w = np.where((k > center) & (k < upper), down, w)
    w = np.where(k == center, 1.0, w)  # each triangle peaks at 1 at its center bin
    return w.astype(dtype)
