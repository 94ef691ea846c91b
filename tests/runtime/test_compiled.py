"""The compiled kernels (numba, a test extra) against the numpy paths they stand in for."""

import math

import numpy as np
import onnxruntime as ort
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.runtime import compiled, threads
from onyx.runtime.epilogue import Epilogue, Extra, Follower, Result, run_chain
from onyx.runtime.kernels import conv as C

RNG = np.random.default_rng(11)


@pytest.fixture
def jit(monkeypatch):
    monkeypatch.setattr(compiled, "enabled", True)
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)  # the tests' small tensors too
    kernels = compiled.kernels(0)
    if kernels is None:
        pytest.fail("the compiled kernels did not load (is numba installed? see the log)")
    return kernels


def test_switched_off_or_small_work_gives_none_until_loaded(monkeypatch):
    """Small work does not load numba; once loaded (by larger work or a session on numba's
    threads), small work takes the kernels too."""
    loaded = compiled.kernels(compiled.MIN_SIZE)
    assert loaded is not None
    monkeypatch.setattr(compiled, "_kernels", None)  # (as in a process that has not loaded them)
    assert compiled.kernels(compiled.MIN_SIZE - 1) is None
    monkeypatch.setattr(compiled, "_kernels", loaded)
    assert compiled.kernels(1) is loaded
    monkeypatch.setattr(compiled, "enabled", False)
    assert compiled.kernels(compiled.MIN_SIZE) is None


@pytest.mark.parametrize(
    "c, hw, kernel, strides, dilations, pads",
    [
        (3, (9, 11), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        (2, (16, 16), (7, 7), (2, 2), (1, 1), (3, 3, 3, 3)),
        (4, (8, 13), (3, 5), (2, 3), (1, 1), (0, 2, 1, 0)),
        (2, (10, 10), (3, 3), (1, 1), (2, 3), (2, 0, 1, 3)),
        (1, (5, 4), (1, 1), (2, 2), (1, 1), (0, 0, 0, 0)),
        (2, (3, 3), (3, 3), (1, 1), (1, 1), (4, 4, 4, 4)),  # rows and columns of padding only
        # stride 1 and outputs as wide as the image: each kernel offset copied as one run
        (2, (6, 7), (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
        (3, (5, 6), (3, 3), (1, 1), (1, 1), (0, 2, 2, 0)),
        (2, (4, 5), (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
        (2, (1, 8), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        (2, (3, 2), (1, 5), (1, 1), (1, 1), (0, 2, 0, 2)),  # offsets reaching past the image
        (2, (7, 6), (3, 3), (2, 1), (1, 1), (1, 1, 1, 1)),  # as wide, but every other row
        # stride 2 across an even width: copied from the rows' even and odd columns (float32)
        (3, (9, 10), (3, 3), (1, 2), (1, 1), (1, 1, 1, 1)),
        (2, (12, 14), (3, 5), (2, 2), (2, 2), (2, 3, 1, 2)),
        (2, (9, 9), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),  # an odd width: read every other
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_matches_the_strided_view(jit, c, hw, kernel, strides, dilations, pads, dtype):
    x = RNG.standard_normal((1, c, *hw)).astype(dtype)
    pb, pe = list(pads[:2]), list(pads[2:])
    out, pb, pe = C.output_geometry("Conv", hw, kernel, strides, dilations, pb, pe, "NOTSET")
    view = C.window_view(C.pad_input(x, pb, pe), kernel, strides, dilations, out)
    expected = view.reshape(c * math.prod(kernel), -1)
    cols = np.full_like(expected, np.nan)
    jit.im2col(x[0], cols, *kernel, *strides, *dilations, pb[0], pb[1], 0, out[0], out[1])
    np.testing.assert_array_equal(cols, expected)
    # a band of output rows, as conv_blocked asks for it
    r0, r1 = 1, min(out[0], 3)
    band = np.empty((c * math.prod(kernel), (r1 - r0) * out[1]), dtype)
    jit.im2col(x[0], band, *kernel, *strides, *dilations, pb[0], pb[1], r0, r1, out[1])
    np.testing.assert_array_equal(band, expected[:, r0 * out[1] : r1 * out[1]])


@pytest.mark.parametrize(
    "n, c, h, w",
    [
        (1, 40, 5, 7),  # fewer channels than pixels: by 16 pixels, 8 x 8 blocks, the edges
        (2, 24, 4, 4),  # two images, pixels in one block of 16 only
        (1, 3, 5, 5),  # fewer than 8 channels: value by value
        (1, 96, 3, 5),  # more channels than pixels: by 16 channels, the last block of 8
        (1, 33, 6, 6),  # as many of each but one, remainders on both sides
    ],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layout_moves_put_every_value_in_place(jit, n, c, h, w, dtype):
    """``to_channels_last`` and ``from_channels_last`` (``_jit.transpose_into``: 8 x 8 blocks
    in registers, two side by side where they fit, the edges value by value): every value of
    the buffer written (it starts as NaN), where numpy's transpose puts it."""
    x = RNG.standard_normal((n, c, h, w)).astype(dtype)
    xl = np.full((n, h, w, c), np.nan, dtype)
    jit.to_channels_last(x, xl)
    np.testing.assert_array_equal(xl, x.transpose(0, 2, 3, 1))
    back = np.full_like(x, np.nan)
    jit.from_channels_last(xl, back)
    np.testing.assert_array_equal(back, x)


def test_im2col_matches_the_strided_view_on_random_geometries(jit):
    # the special cases (one run per offset, the even/odd split) against every kind of geometry
    rng = np.random.default_rng(5)
    checked = 0
    for trial in range(400):
        c, h, w = (int(v) for v in rng.integers(1, [4, 12, 12]))
        kernel = tuple(int(v) for v in rng.integers(1, 6, 2))
        strides = tuple(int(v) for v in rng.integers(1, 4, 2))
        dilations = tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = [int(v) for v in rng.integers(0, 5, 4)]
        dtype = (np.float32, np.float64)[trial % 2]
        extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        if extents[0] > h + pads[0] + pads[2] or extents[1] > w + pads[1] + pads[3]:
            continue  # (a Conv refuses these)
        out, pb, pe = C.output_geometry(
            "Conv", (h, w), kernel, strides, dilations, pads[:2], pads[2:], "NOTSET"
        )
        x = rng.standard_normal((1, c, h, w)).astype(dtype)
        view = C.window_view(C.pad_input(x, pb, pe), kernel, strides, dilations, out)
        expected = view.reshape(c * math.prod(kernel), -1)
        r0 = int(rng.integers(0, out[0]))
        r1 = int(rng.integers(r0 + 1, out[0] + 1))
        band = np.full((expected.shape[0], (r1 - r0) * out[1]), np.nan, dtype)
        jit.im2col(x[0], band, *kernel, *strides, *dilations, pb[0], pb[1], r0, r1, out[1])
        geometry = (c, h, w, kernel, strides, dilations, pads, r0, r1)
        np.testing.assert_array_equal(band, expected[:, r0 * out[1] : r1 * out[1]], geometry)
        checked += 1
    assert checked > 300


def _bits_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_values(a, b):
    """Equal bits where not NaN (signed zeros told apart), NaN in the same places: which NaN
    an operation on two NaNs gives is not numpy's to fix either (its vector loops take the
    second operand's, its scalar loop the first's)."""
    nan = np.isnan(a)
    return (
        a.dtype == b.dtype and a.shape == b.shape and np.array_equal(nan, np.isnan(b))
        and a[~nan].tobytes() == b[~nan].tobytes()
    )  # fmt: skip


# (12 values: the grid of pairs fills (2, 4, 18); two NaNs of other bits: numpy keeps the first)
SPECIALS = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, -np.nan, 3e38, -3e38, 7.0, 0.5]


@pytest.mark.parametrize("ufunc", list(compiled.OPCODES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_matches_numpy_bit_for_bit(jit, ufunc, dtype):
    """Every opcode and operand kind, over values that include NaN, infinities, signed zeros
    and division by zero: the same bits as numpy's ufunc, in place and from a source."""
    values = np.array(SPECIALS, dtype)
    grid = np.meshgrid(values, values)
    y, full = (np.ascontiguousarray(g.reshape(2, 4, -1)) for g in grid)  # (N=2, C=4, 16)
    vector = values[:4].copy()
    cases = [  # (the follower's op, the operand as numpy broadcasts it)
        ((ufunc, np.array(-0.0, dtype), False), dtype(-0.0)),
        ((ufunc, np.array([[[2.0]]], dtype), False), np.array([[[2.0]]], dtype)),
        ((ufunc, vector, True), vector.reshape(1, 4, 1)),
        ((ufunc, Extra(0), False), full),
    ]
    for op, operand in cases:
        with np.errstate(all="ignore"):
            expected = ufunc(y, operand)
            epilogue = Epilogue((Follower((op,), ufunc, ()),), [full])
            assert epilogue.prepare(y.shape, dtype)
            assert epilogue._program is not None, op
            got = y.copy()
            epilogue.apply_all(got)
            fresh = np.empty_like(y)
            epilogue.apply_all(fresh, source=y)
        assert _bits_equal(got, expected), op
        assert _bits_equal(fresh, expected), (op, "from a source")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_chains_match_numpy(jit, dtype):
    """Random chains of one to five operations (the fused stages pack them with values that
    must change nothing: y * 1, y + -0.0, the clamps) over the special values, with scalar,
    per-channel and full operands, NaN bounds among them: numpy's values (to the bit, NaN
    payloads aside), in place, from a source, and over a band of rows."""
    rng = np.random.default_rng(5)
    values = np.array(SPECIALS, dtype)
    grid = np.meshgrid(values, values)
    y, full = (np.ascontiguousarray(g.reshape(2, 4, 3, 6)) for g in grid)
    ufuncs = list(compiled.OPCODES)
    fused = 0
    for _ in range(300):
        followers, expected, full_used = [], y, False
        for _ in range(rng.integers(1, 6)):
            ufunc = ufuncs[rng.integers(len(ufuncs))]
            kind = rng.integers(2 if full_used else 3)  # (a program takes one full operand)
            full_used |= kind == 2
            if kind == 0:
                operand = np.array(values[rng.integers(len(values))], dtype)
                follower, broadcast = (ufunc, operand, False), operand
            elif kind == 1:
                vector = values[rng.choice(len(values), 4)]
                follower, broadcast = (ufunc, vector, True), vector.reshape(1, 4, 1, 1)
            else:
                follower, broadcast = (ufunc, Extra(0), False), full
            followers.append(Follower((follower,), ufunc, ()))
            with np.errstate(all="ignore"):
                expected = ufunc(expected, broadcast)
        epilogue = Epilogue(tuple(followers), [full])
        assert epilogue.prepare(y.shape, dtype) and epilogue._program is not None
        fused += int((epilogue._program[0] < 0).any())
        with np.errstate(all="ignore"):
            got = y.copy()
            epilogue.apply_all(got)
            fresh = np.empty_like(y)
            epilogue.apply_all(fresh, source=y)
            band = y.copy()
            epilogue.apply_rows(band, 1, 1, 3)
        chain = [f.ops[0][0].__name__ for f in followers]
        assert _same_values(got, expected), chain
        assert _same_values(fresh, expected), (chain, "from a source")
        banded = y.copy()
        banded[1, :, 1:3] = expected[1, :, 1:3]
        assert _same_values(band, banded), (chain, "a band")
    assert fused > 100


def _residual_relu_epilogue(residual):
    followers = (
        Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0))),
        Follower(((np.maximum, None, False),), np.maximum, (Result(), 0)),
    )
    return Epilogue(followers, [residual])


def test_epilogue_program_covers_scalars_channels_and_one_full_operand(jit):
    shape = (2, 3, 4, 5)
    residual = RNG.standard_normal(shape).astype(np.float32)
    epilogue = _residual_relu_epilogue(residual)
    assert epilogue.prepare(shape, np.float32, np.ones(3, np.float32))
    assert epilogue._program is not None
    y = RNG.standard_normal(shape).astype(np.float32)
    expected = np.maximum(y + np.ones((1, 3, 1, 1), np.float32) + residual, 0)
    epilogue.apply_all(y)
    np.testing.assert_array_equal(y, expected)


def test_epilogue_with_a_run_time_residual_is_prepared_once(jit, monkeypatch):
    """A residual's program is kept across runs with the next run's residual bound into it;
    a residual laid out otherwise (here strided) is prepared afresh, and right."""
    from onyx.runtime import epilogue as E

    built, stages = [], E._stages
    monkeypatch.setattr(E, "_stages", lambda *a: built.append(1) or stages(*a))
    shape, bias, memo = (1, 3, 4, 5), np.ones(3, np.float32), {}
    followers = _residual_relu_epilogue(None).followers
    for residual in (
        RNG.standard_normal(shape).astype(np.float32),
        RNG.standard_normal(shape).astype(np.float32),
        RNG.standard_normal((1, 3, 4, 10)).astype(np.float32)[..., ::2],
    ):
        epilogue = Epilogue(followers, [residual], memo=memo)
        assert epilogue.prepare(shape, np.float32, bias)
        y = RNG.standard_normal(shape).astype(np.float32)
        expected = np.maximum(y + bias.reshape(1, 3, 1, 1) + residual, 0)
        epilogue.apply_all(y)
        np.testing.assert_array_equal(y, expected)
    assert len(built) == 1  # (the strided one has no program: numpy's regions run it)
    assert epilogue._program is None
    _, ops, program, _ = memo[(shape, np.dtype(np.float32))]
    # the memo keeps no run's tensor alive
    assert program[3] is None and sum(operand is None for _, operand in ops) == 1


def test_epilogue_program_declines_what_it_cannot_index(jit):
    """A broadcast operand that is neither per channel nor full, a second full operand, or a
    non-contiguous one: no program, and the numpy regions still compute it."""
    shape = (1, 3, 4, 5)
    row = RNG.standard_normal((1, 1, 1, 5)).astype(np.float32)
    epilogue = Epilogue(
        (Follower(((np.add, Extra(0), False),), np.add, (Result(), Extra(0))),), [row]
    )
    assert epilogue.prepare(shape, np.float32)
    assert epilogue._program is None
    y = RNG.standard_normal(shape).astype(np.float32)
    expected = y + row
    epilogue.apply_all(y)
    np.testing.assert_array_equal(y, expected)

    strided = RNG.standard_normal((1, 3, 4, 10)).astype(np.float32)[..., ::2]
    epilogue = _residual_relu_epilogue(strided)
    assert epilogue.prepare(shape, np.float32) and epilogue._program is None

    a, b = (RNG.standard_normal(shape).astype(np.float32) for _ in range(2))
    followers = tuple(
        Follower(((np.add, Extra(i), False),), np.add, (Result(), Extra(i))) for i in range(2)
    )
    epilogue = Epilogue(followers, [a, b])
    assert epilogue.prepare(shape, np.float32) and epilogue._program is None


def test_epilogue_bands_apply_to_their_rows_only(jit):
    shape = (2, 3, 6, 4)
    residual = RNG.standard_normal(shape).astype(np.float32)
    epilogue = _residual_relu_epilogue(residual)
    assert epilogue.prepare(shape, np.float32)
    y = RNG.standard_normal(shape).astype(np.float32)
    expected = y.copy()
    expected[1, :, 2:5] = np.maximum(y[1, :, 2:5] + residual[1, :, 2:5], 0)
    epilogue.apply_rows(y, 1, 2, 5)
    np.testing.assert_array_equal(y, expected)


def test_chain_reads_its_source_and_leaves_it(jit):
    x = RNG.standard_normal((1, 4, 3, 3)).astype(np.float32)
    kept = x.copy()
    chain = run_chain((Follower(((np.maximum, None, False),), np.maximum, (Result(), 0)),))
    np.testing.assert_array_equal(chain(x), np.maximum(x, 0))
    np.testing.assert_array_equal(x, kept)


def _plain_conv(x, w, pads):
    op = C.Conv(pads=pads)
    plan = op.geom.plan(x.shape, w.shape)
    w_gemm, _ = C.prepare_weight(w, 1, x.dtype)
    return C.conv_forward(x, w_gemm, plan, 1), op, plan


@pytest.mark.parametrize(
    "n, c, m, hw, pads",
    [
        (1, 8, 16, (8, 8), (1, 1, 1, 1)),
        (2, 5, 3, (7, 9), (1, 1, 1, 1)),  # odd sizes: the far tiles are cut
        (1, 4, 6, (6, 5), (0, 0, 0, 0)),
        (1, 3, 4, (5, 6), (2, 0, 1, 2)),
        (1, 2, 2, (1, 1), (1, 1, 1, 1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pooled", [False, True])
def test_winograd_matches_im2col(jit, n, c, m, hw, pads, dtype, pooled):
    # pooled: on numba's threads (_jit_par.winograd_image), float32's products by onyx's GEMM
    # on the packed transformed weight, float64's by BLAS; else numpy's products, one thread
    x = RNG.standard_normal((n, c, *hw)).astype(dtype)
    w = (RNG.standard_normal((m, c, 3, 3)) / 3).astype(dtype)
    expected, _, plan = _plain_conv(x, w, list(pads))
    weights = C.WinogradWeights(w, dtype)
    epilogue = Epilogue()
    epilogue.prepare(expected.shape, dtype)
    with threads.Threads(2 if pooled else 1, native_threads=pooled)() as pool:
        assert (pool.native is not None) == (pooled and threads.native() is not None)
        got = C.conv_winograd(x, weights, plan, epilogue)
    # the float32 products on numba's threads read the packed U alone: U itself is not kept
    assert (weights._u is None) == (pooled and pool.native is not None and dtype == np.float32)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("pooled", [False, True])
def test_conv_takes_winograd_where_it_pays_and_fuses_its_epilogue(jit, monkeypatch, pooled):
    # pooled: bias, residual and ReLU in the output transform's store (_jit.winograd_output)
    x = RNG.standard_normal((1, 64, 28, 28)).astype(np.float32)
    w = (RNG.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    b = RNG.standard_normal(64).astype(np.float32)
    plain, op, plan = _plain_conv(x, w, [1, 1, 1, 1])
    assert C.winograd_pays(plan, 1, w.shape, np.float32)
    assert not C.winograd_pays(plan, 1, (32, 64, 3, 3), np.float32)  # too few outputs
    assert not C.winograd_pays(plan, 1, (64, 32, 3, 3), np.float32)  # too few inputs
    small = op.geom.plan((1, 64, 14, 14), w.shape)
    assert not C.winograd_pays(small, 1, w.shape, np.float32)  # too few tiles for 64 inputs
    calls = _count_winograd(monkeypatch)
    residual = RNG.standard_normal(plain.shape).astype(np.float32)
    epilogue = _residual_relu_epilogue(residual)
    with threads.Threads(2 if pooled else 1, native_threads=pooled)():
        got = op(x, w, b, epilogue=epilogue)
    assert calls and epilogue.applied
    expected = np.maximum(plain + b.reshape(1, -1, 1, 1) + residual, 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _count_winograd(monkeypatch) -> list:
    """A list that grows by one with each conv_winograd call."""
    calls, original = [], C.conv_winograd

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(C, "conv_winograd", counting)
    return calls


def test_a_residual_block_on_winograd_matches_onnxruntime(jit, monkeypatch):
    """A resnet-like block whose 3x3 convolutions take Winograd, with random weights (the light
    zoo's constant weights leave its outputs uniform, so they cannot show a wrong convolution)."""

    def weight(*shape):
        return (RNG.standard_normal(shape) / math.sqrt(math.prod(shape[1:]))).astype(np.float32)

    g = GraphBuilder(opset=21)  # (128 channels: under that the packed path takes them)
    x = g.input("x", "float", [2, 128, 27, 28])
    y = g.op.Conv(x, weight(128, 128, 3, 3), weight(128, 1)[:, 0], pads=[1, 1, 1, 1])
    y = g.op.BatchNormalization(y, *(RNG.random((4, 128)).astype(np.float32) + 0.5))
    y = g.op.Relu(y)
    y = g.op.Conv(y, weight(128, 128, 3, 3), pads=[1, 1, 1, 1])
    g.output(g.op.Relu(g.op.Add(y, x)), "y")
    model = g.model()
    feed = {"x": RNG.standard_normal((2, 128, 27, 28)).astype(np.float32)}
    calls = _count_winograd(monkeypatch)
    (got,) = onyx.InferenceSession(model).run(None, feed)
    (expected,) = ort.InferenceSession(onyx.to_bytes(model)).run(None, feed)
    assert len(calls) == 2
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shift_and_add_compiled_adds_in_numpys_order(jit, dtype, monkeypatch):
    """conv_shifted's compiled shift-and-add sums the kernel offsets' products in the order
    its numpy path does: the same bits."""
    x = RNG.standard_normal((2, 12, 9, 7)).astype(dtype)
    w = RNG.standard_normal((5, 12, 3, 2)).astype(dtype)
    plan = C.Conv(pads=[1, 0, 2, 1], dilations=[2, 1]).geom.plan(x.shape, w.shape)
    w_shift = C.shifted_weight(C.prepare_weight(w, 1, dtype)[0], plan[0])
    fast = C.conv_shifted(x, w_shift, plan)
    monkeypatch.setattr(compiled, "enabled", False)
    assert _bits_equal(fast, C.conv_shifted(x, w_shift, plan))


def test_numba_failing_to_load_leaves_numpy_and_says_so(monkeypatch, caplog):
    import logging
    import sys

    monkeypatch.setattr(compiled, "enabled", True)
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.setattr(compiled, "_failed", False)
    monkeypatch.setitem(sys.modules, "onyx.runtime._jit", None)  # its import raises ImportError
    monkeypatch.delattr(sys.modules["onyx.runtime"], "_jit", raising=False)
    with caplog.at_level(logging.INFO, logger="onyx"):
        assert compiled.kernels(compiled.MIN_SIZE) is None
    assert "compiled kernels unavailable" in caplog.text
    x = RNG.standard_normal((1, 64, 28, 28)).astype(np.float32)
    w = (RNG.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    expected, op, _ = _plain_conv(x, w, [1, 1, 1, 1])
    np.testing.assert_allclose(op(x, w), expected, rtol=1e-5, atol=1e-5)  # on numpy
