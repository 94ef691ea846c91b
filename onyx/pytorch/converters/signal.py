"""Signal processing: DFT, STFT (torch.fft), the window functions and MelWeightMatrix.

Signals carry (real) or (real, imaginary) in their last dimension, as the standard lays them out;
inside they are complex tensors. Windows and mel matrices depend only on their (scalar) inputs:
they are computed once at conversion, by the runtime's kernels, and become constants.
"""

from __future__ import annotations

from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter
from onyx.runtime.kernels import signal as _rt


def _work(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _signal(cx, x):
    """(the signal as a real or complex tensor without the last dim, whether it is real)."""
    shape = cx.shape(x)
    if shape is None or len(shape) < 2 or shape[-1] not in (1, 2):
        raise cx.fail(f"the input's last dimension must be 1 (real) or 2 (complex), got {shape}")
    work = _work(cx.dtype(x))
    if shape[-1] == 1:
        return x[..., 0].to(work), True
    return torch.complex(x[..., 0].to(work), x[..., 1].to(work)), False


def _pack(y, complex_out: bool, dtype: torch.dtype):
    """A complex result as (..., 2) real/imaginary pairs; a real one as (..., 1)."""
    if complex_out:
        return torch.view_as_real(y).to(dtype)
    return y.unsqueeze(-1).to(dtype)


def _dft(cx, x, dft_length, axis: int, inverse: int, onesided: int):
    rank = cx.rank(x)
    if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
        raise cx.fail(f"axis must be in [{-rank}, -2] or [0, {rank - 2}], got {axis}")
    axis %= rank
    signal, real = _signal(cx, x)
    if onesided and not inverse and not real:
        raise cx.fail("a one-sided forward DFT needs a real input (last dimension 1)")
    size = cx.shape(x)[axis]
    if dft_length is None:
        n = 2 * (size - 1) if (onesided and inverse) and isinstance(size, int) else size
        n = n if isinstance(n, int) else None
    else:
        (n,) = cx.need(dft_length)
    if onesided and inverse:
        return _pack(torch.fft.irfft(signal, n, dim=axis), False, cx.dtype(x))
    if onesided:
        y = torch.fft.rfft(signal, n, dim=axis)
    elif inverse:
        y = torch.fft.ifft(signal, n, dim=axis)
    else:
        y = torch.fft.fft(signal, n, dim=axis)
    return _pack(y, True, cx.dtype(x))


@converter("DFT", 17)
def dft_17(cx, x, dft_length=None, *, axis: int = 1, inverse: int = 0, onesided: int = 0):
    return _dft(cx, x, dft_length, axis, inverse, onesided)


@converter("DFT", 20)
def dft_20(cx, x, dft_length=None, axis=None, *, inverse: int = 0, onesided: int = 0):
    a = -2 if axis is None else cx.need(axis)[0]
    return _dft(cx, x, dft_length, a, inverse, onesided)


@converter("STFT", 17)
def stft(cx, signal, frame_step, window=None, frame_length=None, *, onesided: int = 1):
    if cx.rank(signal) != 3:
        raise cx.fail(f"signal must have shape (batch, length, 1 or 2), got {cx.shape(signal)}")
    x, real = _signal(cx, signal)
    (step,) = cx.need(frame_step)
    if frame_length is not None:
        (n,) = cx.need(frame_length)
    elif window is not None:
        n = cx.shape(window)[0]
    else:
        n = cx.shape(signal)[1]
    if not isinstance(n, int) or step < 1:
        raise cx.fail(f"frame_length ({n}) and frame_step ({step}) must be known positive ints")
    if onesided and not real:
        raise cx.fail("onesided=1 needs a real signal, got a complex one (last dim 2)")
    frames = x.unfold(1, n, step)  # (batch, frames, n)
    if window is not None:
        frames = frames * window.to(_work(cx.dtype(signal)))
    y = torch.fft.rfft(frames, n, dim=-1) if onesided else torch.fft.fft(frames, n, dim=-1)
    return _pack(y, True, cx.dtype(signal))


# --- constants of their inputs -------------------------------------------------------------
def _window(cx, size, periodic, output_datatype, terms, op):
    n = cx.need(size)
    w = _rt._window(n[0], periodic, output_datatype, terms, op)  # KernelError names the op
    return dtypes.from_numpy(w)


@converter("HannWindow", 17)
def hann_window(cx, size, *, output_datatype: int = 1, periodic: int = 1):
    return _window(cx, size, periodic, output_datatype, (0.5, -0.5), "HannWindow")


@converter("HammingWindow", 17)
def hamming_window(cx, size, *, output_datatype: int = 1, periodic: int = 1):
    return _window(cx, size, periodic, output_datatype, (25 / 46, -21 / 46), "HammingWindow")


@converter("BlackmanWindow", 17)
def blackman_window(cx, size, *, output_datatype: int = 1, periodic: int = 1):
    return _window(cx, size, periodic, output_datatype, (0.42, -0.5, 0.08), "BlackmanWindow")


@converter("MelWeightMatrix", 17)
def mel_weight_matrix(cx, num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
                      upper_edge_hertz, *, output_datatype: int = 1):  # fmt: skip
    args = [cx.need_const(v) for v in (num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
                                       upper_edge_hertz)]  # fmt: skip
    w = _rt.mel_weight_matrix(*args, output_datatype=output_datatype)
    return dtypes.from_numpy(w)
