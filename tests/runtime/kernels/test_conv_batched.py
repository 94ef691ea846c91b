"""Convolutions of a batch of small images, a chunk of images at a time (conv.conv_batched)."""

import numpy as np
import pytest
from onnx import helper, numpy_helper

import onyx
from onyx.runtime import compiled
from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result
from onyx.runtime.kernels import conv as C


@pytest.fixture
def jit(monkeypatch):
    monkeypatch.setattr(compiled, "enabled", True)
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)  # the tests' small tensors too
    if compiled.kernels(0) is None:
        pytest.fail("the compiled kernels did not load (is numba installed? see the log)")


@pytest.fixture
def taken(monkeypatch) -> list:
    """(path, input shape) of each call to the batched paths."""
    calls = []
    for name in ("conv_batched", "conv_winograd_batched"):
        original = getattr(C, name)

        def spy(x, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, x.shape))
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(C, name, spy)
    return calls


def reference(x, w, b, strides, pads, dilations, group):
    """Y in float64, window by window (numpy only)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, _, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    y = np.zeros((n, m, ho, wo))
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilations[0], j * dilations[1]
                patch = xs[:, :, r0 : r0 + (ho - 1) * strides[0] + 1 : strides[0],
                           c0 : c0 + (wo - 1) * strides[1] + 1 : strides[1]]  # fmt: skip
                y[:, g * mg : (g + 1) * mg] += np.einsum(
                    "nchw,mc->nmhw", patch, w[g * mg : (g + 1) * mg, :, i, j]
                )
    return y + b.astype(np.float64).reshape(1, -1, 1, 1)


IM2COL, WINOGRAD = "conv_batched", "conv_winograd_batched"
GEOMETRIES = [
    # (n, c, m, hw, kernel, strides, pads, dilations, group); Winograd from 16 channels on
    (3, 16, 16, 9, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),  # odd width: a cut last tile
    (5, 16, 24, 8, (3, 3), [1, 1], [0, 1, 2, 1], [1, 1], 1),  # asymmetric pads, odd rows out
    (11, 32, 16, 6, (3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),  # no padding
    (3, 3, 16, 32, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),  # the bench CNN's first layer
    (5, 16, 8, 16, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    (7, 4, 6, 15, (3, 3), [2, 2], [1, 0, 2, 1], [1, 1], 1),  # stride 2, asymmetric pads
    (13, 5, 7, 11, (3, 5), [1, 2], [2, 2, 2, 2], [2, 1], 1),  # dilation, rectangular kernel
    (2, 6, 4, 9, (2, 2), [1, 1], [0, 0, 0, 0], [1, 1], 1),  # no padding, even kernel
    (9, 8, 8, 10, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2),  # groups: the grouped path
    (5, 6, 9, 7, (3, 3), [2, 1], [0, 1, 1, 0], [2, 1], 3),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, m, hw, kernel, strides, pads, dilations, group", GEOMETRIES)
def test_batched_conv_with_bias_and_relu_matches_the_reference(
    jit, taken, monkeypatch, n, c, m, hw, kernel, strides, pads, dilations, group, dtype
):
    monkeypatch.setattr(C, "_TILE_BYTES", 4096)  # chunks of one to a few images
    rng = np.random.default_rng(n * 100 + c)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    w = rng.standard_normal((m, c // group, *kernel)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    op = C.Conv(strides=strides, pads=pads, dilations=dilations, group=group)
    relu = Follower(((np.maximum, None, False),), np.maximum, (Result(), 0))
    epilogue = Epilogue((relu,))
    y = op(x, w, b, epilogue=epilogue)
    want = np.maximum(reference(x, w, b, strides, pads, dilations, group), 0)
    assert y.dtype == dtype and y.shape == want.shape
    assert epilogue.applied
    atol, rtol = (5e-4, 1e-4) if dtype == np.float32 else (1e-9, 1e-9)
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=rtol, atol=atol)
    winograd = kernel == (3, 3) and strides == dilations == [1, 1] and min(c, m) >= 16
    assert taken == ([(WINOGRAD if winograd else IM2COL, x.shape)] if group == 1 else [])


@pytest.mark.parametrize("c, m, tile", [(4, 5, 50000), (16, 20, 300000)])  # im2col, Winograd
def test_batched_conv_applies_a_residual_and_a_numpy_epilogue_per_chunk(
    jit, taken, monkeypatch, c, m, tile
):
    monkeypatch.setattr(C, "_TILE_BYTES", tile)  # several chunks, the last one shorter
    rng = np.random.default_rng(4)
    x = rng.standard_normal((11, c, 12, 12)).astype(np.float32)
    w = rng.standard_normal((m, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    plain = reference(x, w, b, [1, 1], [1, 1, 1, 1], [1, 1], 1)
    residual = rng.standard_normal(plain.shape).astype(np.float32)
    add = Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0)))
    relu = Follower(((np.maximum, None, False),), np.maximum, (Result(), 0))
    # fmax is no compiled opcode: the chunks' epilogue runs as numpy passes
    floor = Follower(((np.fmax, np.full((), 0.25, np.float32), False),), np.fmax, (Result(), 0.25))
    op = C.Conv(pads=[1, 1, 1, 1])
    for followers, want in (
        ((add, relu), np.maximum(plain + residual, 0)),
        ((add, floor), np.fmax(plain + residual, 0.25)),
    ):
        epilogue = Epilogue(followers, [residual])
        y = op(x, w, b, epilogue=epilogue)
        assert epilogue.applied
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=1e-4, atol=5e-4)
    assert [path for path, _ in taken] == [IM2COL if c < 16 else WINOGRAD] * 2


def test_batch_of_one_large_planes_and_wide_layers_keep_their_paths(jit, taken):
    rng = np.random.default_rng(6)
    b = np.zeros(4, np.float32)
    op = C.Conv(pads=[1, 1, 1, 1])
    # one image; planes over 32x32; over 64 channels in
    for shape in ((1, 3, 16, 16), (2, 3, 40, 40), (3, 80, 6, 6)):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((4, shape[1], 3, 3)).astype(np.float32)
        want = reference(x, w, b, [1, 1], [1, 1, 1, 1], [1, 1], 1)
        np.testing.assert_allclose(op(x, w).astype(np.float64), want, rtol=1e-4, atol=1e-4)
    assert taken == []


def test_batched_conv_over_two_threads_repeats_bit_for_bit(jit, taken):
    rng = np.random.default_rng(8)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    w3 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], dilations=[2, 2]),
            helper.make_node("Conv", ["c2", "w3"], ["y"], pads=[1, 1, 1, 1]),  # Winograd
        ],
        "small", [helper.make_tensor_value_info("x", 1, ["N", 3, 20, 20])],
        [helper.make_tensor_value_info("y", 1, None)],
        [numpy_helper.from_array(v, k) for k, v in
         (("w1", w1), ("w2", w2), ("w3", w3), ("b1", b1))],
    )  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.standard_normal((9, 3, 20, 20)).astype(np.float32)
    hidden = np.maximum(reference(x, w1, b1, [1, 1], [1, 1, 1, 1], [1, 1], 1), 0)
    hidden = reference(hidden, w2, np.zeros(16), [2, 2], [0, 0, 0, 0], [2, 2], 1)
    want = reference(hidden, w3, np.zeros(16), [1, 1], [1, 1, 1, 1], [1, 1], 1)
    two = onyx.InferenceSession(model, intra_op_num_threads=2)
    first = two.run(None, {"x": x})[0]
    np.testing.assert_allclose(first.astype(np.float64), want, rtol=1e-4, atol=2e-3)
    assert two.run(None, {"x": x})[0].tobytes() == first.tobytes()
    one = onyx.InferenceSession(model, intra_op_num_threads=1).run(None, {"x": x})[0]
    np.testing.assert_allclose(one.astype(np.float64), want, rtol=1e-4, atol=2e-3)
    paths = {path for path, _ in taken}
    assert paths == {IM2COL, WINOGRAD} and len(taken) == 9  # three layers, three runs
