"""What the tests of the convolutions by a packed weight share (test_conv_packed_weight.py,
test_conv_planes.py): a float64 reference, the activations a graph may end in, the check, a
session, and the count of the paths taken."""

from __future__ import annotations

import numpy as np

import onyx
from onyx.runtime import compiled, threads
from onyx.runtime.kernels import conv as conv_module
from onyx.runtime.session import SessionOptions

PATHS = {
    "pointwise": "conv_packed_pointwise",
    "columns": "conv_packed_columns",
    "planes": "conv_planes",
    "patches": "conv_planes_patches",
}


def reference(x, w, b, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1)):
    """A 2-D convolution with one group in float64, tap by tap."""
    m, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho = (xp.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (xp.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], m, ho, wo))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dilations[0], i * dilations[0] + strides[0] * ho, strides[0])
            cols = slice(j * dilations[1], j * dilations[1] + strides[1] * wo, strides[1])
            window = xp[:, :, rows, cols]
            y += np.einsum("nchw,mc->nmhw", window, w[:, :, i, j].astype(np.float64))
    return y if b is None else y + b.astype(np.float64)[None, :, None, None]


def after(y, kind):
    """``kind``'s activation ("relu", "clip", "swish" or "none") of a float64 result."""
    if kind == "relu":
        return np.maximum(y, 0)
    if kind == "clip":
        return np.clip(y, 0, 6)
    if kind == "swish":
        return y / (1 + np.exp(-y))
    return y


def activation(g, y, kind):
    """``kind``'s activation appended to a GraphBuilder's ``y``."""
    if kind == "relu":
        return g.op.Relu(y)
    if kind == "clip":
        return g.op.Clip(y, np.array(0, np.float32), np.array(6, np.float32))
    if kind == "swish":
        return g.op.Mul(y, g.op.Sigmoid(y))
    return y


def close(got, want):
    """``got`` within 2e-6 of ``want``'s magnitude, compared in float64."""
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=2e-6 * scale)


def new_session(model, threads_count=2):
    return onyx.InferenceSession(model, SessionOptions(intra_op_num_threads=threads_count))


def count_paths(monkeypatch) -> dict:
    """How many convolutions each packed path computed (returned a result for: the keys of
    PATHS), and whether this run may take them at all ("possible": the compiled kernels on
    numba's threads, BLAS held)."""
    count = dict.fromkeys(PATHS, 0)
    for key, name in PATHS.items():
        original = getattr(conv_module, name)

        def counted(*args, _original=original, _key=key, **kwargs):
            y = _original(*args, **kwargs)
            count[_key] += y is not None
            return y

        monkeypatch.setattr(conv_module, name, counted)
    count["possible"] = (
        compiled.enabled and threads._BLAS.controllable() and threads.native() is not None
    )
    return count
