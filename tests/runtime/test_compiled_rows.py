"""Compiled row kernels against their numpy paths: LayerNormalization and RMSNormalization
(``_jit.layer_norm``, ``_jit.rms_norm``; numba, a test extra), where each applies, and the
compiled softmax inside Attention."""

import numpy as np
import pytest

from onyx.runtime import _jit, compiled, threads
from onyx.runtime.kernels.norm import LayerNormalization, RMSNormalization

RNG = np.random.default_rng(11)


@pytest.fixture
def calls(compiled_calls):
    """The compiled kernels on for small tensors; a list of the kernels' names, one per call."""
    return compiled_calls((_jit, "layer_norm"), (_jit, "rms_norm"))


def numpy_path(op, *args):
    compiled.enabled = False
    try:
        return op(*args)
    finally:
        compiled.enabled = True


def _close(got, want, dtype):
    """Equal to a few ulps of the type, NaN where numpy has NaN (widened before comparing)."""
    tol = 2e-6 if dtype == np.float32 else 1e-14
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((64, 32, 64), -1), ((3, 5, 768), 2),
                                             ((2, 7, 4, 6), 2), ((5, 3), 0), ((1, 4097), 1)])  # fmt: skip
def test_layer_norm_matches_numpy(calls, dtype, shape, axis):
    x = (RNG.standard_normal(shape) * 3 + 1).astype(dtype)
    normalized = shape[axis:]
    scale = RNG.standard_normal(normalized).astype(dtype)
    bias = RNG.standard_normal(normalized).astype(dtype)
    op = LayerNormalization(axis=axis, epsilon=1e-5)
    for b in (bias, None):
        _close(op(x, scale, b), numpy_path(op, x, scale, b), dtype)
    assert calls == ["layer_norm"] * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_matches_numpy(calls, dtype):
    x = RNG.standard_normal((6, 10, 96)).astype(dtype)
    scale = RNG.standard_normal(96).astype(dtype)
    op = RMSNormalization(epsilon=1e-6)
    _close([op(x, scale)], [numpy_path(op, x, scale)], dtype)
    assert calls == ["rms_norm"]


def test_rows_with_nan_or_infinity_come_out_as_numpy(calls):
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    x[1, 3], x[2, 0], x[3, 5] = np.nan, np.inf, -np.inf
    scale, bias = np.ones(16, np.float32), np.zeros(16, np.float32)
    op = LayerNormalization()
    got, want = op(x, scale, bias), numpy_path(op, x, scale, bias)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    _close([got[0][0]], [want[0][0]], np.float32)
    rms = RMSNormalization()
    np.testing.assert_array_equal(np.isnan(rms(x, scale)), np.isnan(numpy_path(rms, x, scale)))
    assert calls == ["layer_norm", "rms_norm"]


def test_split_over_the_pool_gives_the_same_bits(calls):
    x = RNG.standard_normal((512, 256)).astype(np.float32)
    scale, bias = RNG.standard_normal(256).astype(np.float32), np.ones(256, np.float32)
    op = LayerNormalization()
    alone = op(x, scale, bias)
    with threads.Threads(2, native_threads=False)():
        split = op(x, scale, bias)
    for a, s in zip(alone, split, strict=True):
        np.testing.assert_array_equal(a, s)
    assert calls == ["layer_norm"] * 3  # once alone, in two bands on the pool


def test_numpy_where_the_kernel_does_not_apply(calls):
    x = RNG.standard_normal((4, 8, 6)).astype(np.float32)
    op = LayerNormalization(axis=-1)
    cases = [
        (x, np.ones((1, 6), np.float32)),  # a scale that broadcasts
        (x, np.ones(6, np.float64)),  # a scale of another type
        (x.astype(np.float16), np.ones(6, np.float16)),  # computed in float32, stored in float16
    ]
    for xs, scale in cases:
        _close(op(xs, scale), numpy_path(op, xs, scale), np.float32)
    assert calls == []


def test_attention_softmax_compiled_keeps_fully_masked_rows_zero(monkeypatch):
    """Attention's softmax runs compiled for float32; a row masked entirely is zeros there as
    in the numpy path, a row with a NaN is NaN, the rest agree within 1e-6."""
    from onyx.runtime.kernels.attention import _softmax_rows

    monkeypatch.setattr(compiled, "enabled", True)
    threads.native()  # (numba's threads' kernels bound to the kernels before they are wrapped)
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    s = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    s[0, 1, 2, :] = -np.inf
    s[1, 0, 4, 3] = np.nan
    s[1, 2, 0, :4] = -np.inf
    got = _softmax_rows(s.copy(), guard=True)
    want = numpy_path(lambda a: _softmax_rows(a, guard=True), s.copy())
    np.testing.assert_array_equal(got[0, 1, 2], np.zeros(7, np.float32))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[1, 0, 4]).all()
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=1e-6)


def test_a_view_in_another_order_is_copied_once_and_runs_compiled(calls):
    """ConvNeXt's LayerNormalization reads a channel-last view of a convolution's output."""
    x = RNG.standard_normal((2, 6, 5, 7)).astype(np.float32).transpose(0, 2, 3, 1)
    scale, bias = RNG.standard_normal(6).astype(np.float32), np.ones(6, np.float32)
    op = LayerNormalization()
    _close(op(x, scale, bias), numpy_path(op, x, scale, bias), np.float32)
    rms = RMSNormalization()
    _close([rms(x, scale)], [numpy_path(rms, x, scale)], np.float32)
    assert calls == ["layer_norm", "rms_norm"]


def test_softmax_bits_do_not_depend_on_where_its_arrays_lie():
    """The compiled softmax's sum runs the same loop wherever its output and scratch rows lie:
    a loop that also wrote the output ran its scalar version (another order of additions)
    where the output lay just before the scratch rows, changing the last bit of some rows."""
    from onyx.runtime import _jit_exp

    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(200):
        n, rows = int(rng.integers(3, 40)), int(rng.integers(1, 8))
        x = (rng.standard_normal(rows * n) * 3).astype(np.float32)
        alone = np.empty_like(x)
        scratch = np.empty(n, np.int32)
        _jit_exp.softmax_rows(x, alone, n, np.empty(n, np.float32), scratch,
                              scratch.view(np.float32))  # fmt: skip
        exact = np.exp(x.reshape(rows, n).astype(np.float64) - x.reshape(rows, n).max(1)[:, None])
        exact /= exact.sum(1, keepdims=True)
        np.testing.assert_allclose(alone.reshape(rows, n), exact, rtol=1e-5, atol=1e-7)
        block = np.empty(rows * n + 2 * n + 8, np.float32)  # output, then its scratch rows
        for shift in range(8):
            y = block[shift : shift + rows * n]
            p = block[shift + rows * n : shift + rows * n + n]
            bits = block[shift + rows * n + n : shift + rows * n + 2 * n].view(np.int32)
            _jit_exp.softmax_rows(x, y, n, p, bits, bits.view(np.float32))
            changed += not np.array_equal(y, alone)
    assert changed == 0


def test_softmax_gives_equal_inputs_equal_outputs():
    """Equal entries of a row come out equal, wherever they lie in it (a row's first product by
    1/sum was a division under numba 0.60 and the rest not: 0.13944662 beside 0.13944663,
    which turned a tie in a TopK after it)."""
    from onyx.runtime import _jit_exp

    for n in range(2, 70):
        for v in (-1.6431054, -0.3, -7.0):
            x = np.zeros((5, n), np.float32)
            x[:, -1] = -v
            y = _jit_exp.softmax(x)
            assert (y[:, :-1] == y[:, :1]).all(), (n, v)


@pytest.fixture
def lrn_calls(compiled_calls):
    """The names of the LRN kernels called from Python (one thread: ``lrn``; numba's threads:
    ``lrn_bands``, which calls ``lrn`` inside)."""
    from onyx.runtime import _jit_par

    return compiled_calls((_jit, "lrn"), (_jit_par, "lrn_bands"))


def _lrn_input(shape, dtype):
    """Normal values, with zeros, infinities and a NaN among them."""
    x = RNG.standard_normal(shape) * 4
    flat = x.reshape(-1)
    at = RNG.permutation(flat.size)
    flat[at[:3]], flat[at[3]], flat[at[4]], flat[at[5]] = 0.0, np.inf, -np.inf, np.nan
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 6, 9])
@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0])
def test_lrn_compiled_gives_the_numpy_paths_bits(lrn_calls, dtype, size, beta):
    """One pass per pixel chunk, the numpy path's order of additions and roots: the same bits,
    NaN and infinities included, channels fewer than the window too (4 here, window 9)."""
    from onyx.runtime.kernels.norm import lrn

    for shape in [(2, 4, 5, 7), (1, 7, 3000), (3, 5), (1, 6, 2, 3, 4)]:
        x = _lrn_input(shape, dtype)
        before = len(lrn_calls)
        got = lrn(x, size=size, alpha=0.03, beta=beta, bias=0.5)
        assert lrn_calls[before:] == ["lrn"]
        with np.errstate(invalid="ignore"):  # (inf / inf: NaN, as the kernel gives)
            want = numpy_path(lambda a: lrn(a, size=size, alpha=0.03, beta=beta, bias=0.5), x)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), (shape, size, beta)


def test_lrn_other_exponents_and_narrow_types_keep_the_numpy_path(lrn_calls):
    from onyx.runtime.kernels.norm import lrn

    x = _lrn_input((1, 6, 4, 4), np.float32)
    with np.errstate(invalid="ignore"):
        lrn(x, size=3, beta=0.6)
        lrn(x.astype(np.float16), size=3)
    assert lrn_calls == []
    assert lrn(np.zeros((0, 3, 2, 2), np.float32), size=3).shape == (0, 3, 2, 2)


def test_lrn_in_a_session_splits_over_numbas_threads_with_the_same_bits(lrn_calls):
    """inception v1's LRN: by bands of pixels over the session's two threads."""
    from onnx import TensorProto, helper

    import onyx

    node = helper.make_node("LRN", ["x"], ["y"], size=5, alpha=1e-4, beta=0.75, bias=1.0)
    graph = helper.make_graph(
        [node], "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onyx.SessionOptions()
    options.intra_op_num_threads = 2
    session = onyx.InferenceSession(model.SerializeToString(), options)
    x = _lrn_input((1, 64, 56, 56), np.float32)
    (got,) = session.run(None, {"x": x})
    assert lrn_calls == ["lrn_bands"]
    (want,) = numpy_path(lambda feed: session.run(None, feed), {"x": x})
    assert got.tobytes() == want.tobytes()
