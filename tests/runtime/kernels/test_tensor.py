"""Tensor kernels: the official node cases, plus error paths, types and versions they miss."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import bind as op
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError

OPS = {
    "Constant", "ConstantOfShape", "Range", "EyeLike", "Shape", "Size", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements",
    "GatherND", "Scatter", "ScatterElements", "ScatterND", "TensorScatter", "Pad", "Tile",
    "Expand", "Where", "Compress", "NonZero", "Unique", "OneHot", "Trilu", "ReverseSequence",
    "DepthToSpace", "SpaceToDepth", "Identity", "Dropout",
}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- error paths ---------------------------------------------------------------------------
def test_reshape_error_names_both_shapes():
    with pytest.raises(KernelError, match=r"\[2, 3\].*\[4, -1\]"):
        op("Reshape", 14)(np.zeros((2, 3)), np.array([4, -1]))
    with pytest.raises(KernelError, match="at most one -1"):
        op("Reshape", 14)(np.zeros((2, 3)), np.array([-1, -1]))
    with pytest.raises(KernelError):
        op("Reshape", 14, allowzero=1)(np.zeros((0, 3)), np.array([0, -1]))


def test_reshape_rules():
    x = np.arange(24).reshape(2, 3, 4)
    assert op("Reshape", 14)(x, np.array([0, -1])).shape == (2, 12)
    assert op("Reshape", 14, allowzero=1)(np.zeros((0, 3)), np.array([3, 0])).shape == (3, 0)
    assert op("Reshape", 14)(np.zeros((0, 3)), np.array([0, 3])).shape == (0, 3)
    assert op("Reshape", 1, shape=[4, 6])(x).shape == (4, 6)


@pytest.mark.parametrize(
    "op_type, args, attrs",
    [
        ("Gather", (np.arange(5), np.array([0, 5])), {}),
        ("Gather", (np.arange(5), np.array(-6)), {}),
        ("Gather", (np.zeros((2, 3)), np.array([[1, -4]])), {"axis": 1}),
        ("GatherElements", (np.zeros((2, 3)), np.array([[0, 3, 1]])), {"axis": 1}),
        ("GatherND", (np.zeros((2, 3)), np.array([[1, 3]])), {}),
        ("GatherND", (np.zeros((2, 3)), np.array([[-3]])), {}),
        ("ScatterElements", (np.zeros(3), np.array([3]), np.ones(1)), {}),
        ("ScatterElements", (np.zeros(3), np.array([-4]), np.ones(1)), {"reduction": "add"}),
        ("ScatterND", (np.zeros((2, 2)), np.array([[0, 2]]), np.ones(1)), {}),
        ("Scatter", (np.zeros(3), np.array([7]), np.ones(1)), {}),
    ],
)
def test_index_out_of_range_is_kernel_error(op_type, args, attrs):
    with pytest.raises(KernelError, match=r"index -?\d+ is out of range for axis \d of size \d"):
        op(op_type, **attrs)(*args)


@pytest.mark.parametrize(
    "op_type, args, attrs",
    [
        ("Concat", (np.zeros((2, 3)), np.zeros((2, 4))), {"axis": 0}),
        ("Squeeze", (np.zeros((2, 3)), np.array([0])), {}),
        ("Unsqueeze", (np.zeros((2, 3)), np.array([0, 0])), {}),
        ("Transpose", (np.zeros((2, 3)),), {"perm": [0, 0]}),
        ("Split", (np.zeros(5), np.array([2, 2])), {}),
        ("Split", (np.zeros(5),), {"num_outputs": 4}),
        ("Expand", (np.zeros((2, 3)), np.array([4, 3])), {}),
        ("Tile", (np.zeros((2, 3)), np.array([2])), {}),
        ("Flatten", (np.zeros((2, 3)),), {"axis": 3}),
        ("Slice", (np.zeros(3), np.array([0]), np.array([2]), np.array([0]), np.array([0])), {}),
        ("Pad", (np.zeros(3), np.array([1, 1, 1])), {}),
        ("Pad", (np.zeros(3), np.array([-2, -2])), {}),
        ("DepthToSpace", (np.zeros((1, 3, 2, 2)),), {"blocksize": 2}),
        ("ReverseSequence", (np.zeros((3, 2)), np.array([4, 1])), {}),
        ("TensorScatter", (np.zeros((1, 4, 2)), np.ones((1, 2, 2)), np.array([3])), {}),
    ],
)
def test_bad_inputs_raise_kernel_error(op_type, args, attrs):
    with pytest.raises(KernelError):
        op(op_type, **attrs)(*args)


# --- behaviour the official cases miss -----------------------------------------------------
def test_gather_scalar_index_is_a_view_and_zero_d():
    x = np.arange(12).reshape(3, 4)
    y = op("Gather", axis=1)(x, np.array(-1))
    assert np.shares_memory(y, x) and y.tolist() == [3, 7, 11]
    z = op("Gather")(np.arange(3), np.array(2, np.int32))
    assert isinstance(z, np.ndarray) and z.shape == () and z == 2


def test_cheap_ops_return_views():
    x = np.arange(24).reshape(2, 3, 4)
    assert np.shares_memory(op("Reshape")(x, np.array([6, 4])), x)
    assert np.shares_memory(op("Transpose", perm=[2, 0, 1])(x), x)
    assert np.shares_memory(op("Unsqueeze")(x, np.array([0, -1])), x)
    assert op("Unsqueeze")(x, np.array([0, -1])).shape == (1, 2, 3, 4, 1)
    assert op("Concat", axis=0)(x) is x


@pytest.mark.parametrize(
    "dtype", [object, np.bool_, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.int4]
)
def test_type_agnostic(dtype):
    if dtype is object:
        x = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
        zero = ""
    else:
        x = np.array([[1, 0, 1], [0, 1, 1]]).astype(dtype)
        zero = np.zeros((), dtype)

    def same(got, want):
        want = np.asarray(want, dtype=x.dtype)
        return got.dtype == x.dtype and got.shape == want.shape and got.tolist() == want.tolist()

    cond = np.array([True, False, True])
    big = 10**9
    assert same(op("Gather", axis=1)(x, np.array([2, 0])), x[:, [2, 0]])
    assert same(
        op("GatherElements", axis=1)(x, np.array([[2], [0]])), x[:, [2, 0]].diagonal()[:, None]
    )
    assert same(op("Concat", axis=0)(x, x), np.concatenate([x, x]))
    assert same(op("Transpose")(x), x.T)
    assert same(
        op("Slice")(x, np.array([-1]), np.array([-big]), np.array([1]), np.array([-1])), x[:, ::-1]
    )
    assert same(op("Pad", mode="edge")(x, np.array([0, 1, 0, 1])), x[:, [0, 0, 1, 2, 2]])
    padded = op("Pad")(x, np.array([0, 1, 0, 0]))
    assert padded.dtype == x.dtype and padded[:, 0].tolist() == [zero, zero]
    assert same(op("Tile")(x, np.array([1, 2])), np.tile(x, (1, 2)))
    assert same(op("Expand")(x[:1], np.array([2, 3])), np.broadcast_to(x[:1], (2, 3)))
    assert same(op("Where")(cond, x, x[::-1]), np.where(cond, x, x[::-1]))
    assert same(op("ScatterND")(x, np.array([[1]]), x[:1]), np.stack([x[0], x[0]]))
    assert same(
        op("ScatterElements", axis=1)(x, np.array([[0]]), x[1:, 2:]),
        np.array([[x[1, 2], x[0, 1], x[0, 2]], x[1]]),
    )
    assert same(op("GatherND")(x, np.array([[1, 2]])), x[[1], [2]])
    tri = op("Trilu")(x)
    assert tri.dtype == x.dtype and tri[1, 0] == zero and tri[0, 2] == x[0, 2]
    assert same(op("Compress", axis=1)(x, np.array([True, False])), x[:, :1])
    rev = op("ReverseSequence", batch_axis=0, time_axis=1)(x, np.array([3, 2]))
    assert same(rev, np.stack([x[0, ::-1], x[1, [1, 0, 2]]]))
    assert same(op("DepthToSpace", blocksize=1)(x[None, :, :, None]), x[None, :, :, None])
    assert same(op("Identity")(x), x)


def test_pad_strings_and_modes():
    x = np.array(["a", "b", "c"], dtype=object)
    assert op("Pad")(x, np.array([1, 1])).tolist() == ["", "a", "b", "c", ""]
    assert op("Pad")(x, np.array([1, 0]), np.array("z", dtype=object)).tolist() == list("zabc")
    assert op("Pad", mode="reflect")(x, np.array([2, 1])).tolist() == list("cbabcb")
    assert op("Pad", mode="wrap")(x, np.array([1, 2])).tolist() == list("cabcab")
    assert op("Pad", mode="edge")(np.arange(5), np.array([-1, 2])).tolist() == [1, 2, 3, 4, 4, 4]
    y = np.arange(6).reshape(2, 3)
    assert op("Pad")(y, np.array([1, 1]), np.array(9), np.array([-1])).tolist() == [
        [9, 0, 1, 2, 9],
        [9, 3, 4, 5, 9],
    ]
    assert op("Pad", 2, pads=[0, 1, 0, 0], value=1.5)(np.zeros((1, 1), np.float32)).tolist() == [
        [1.5, 0.0]
    ]


def test_slice_negative_steps_and_clamping():
    x = np.arange(5)
    s = op("Slice")
    assert s(x, np.array([-10]), np.array([-20]), None, np.array([-1])).tolist() == [0]
    assert s(x, np.array([10]), np.array([-20]), None, np.array([-2])).tolist() == [4, 2, 0]
    assert s(x, np.array([1]), np.array([2**62]), None, np.array([1])).tolist() == [1, 2, 3, 4]
    assert s(x, np.array([3]), np.array([1]), None, None).tolist() == []
    assert op("Slice", 9, starts=[1], ends=[-1])(x).tolist() == [1, 2, 3]


def test_older_versions():
    x = np.arange(6).reshape(2, 3)
    assert op("Squeeze", 11, axes=[0])(x[None]).shape == (2, 3)
    assert op("Unsqueeze", 11, axes=[1])(x).shape == (2, 1, 3)
    assert op("Concat", 1)(x, x).shape == (2, 6)
    assert [p.shape for p in op("Split", 2, split=[1, 2], axis=1)(x)] == [(2, 1), (2, 2)]
    assert [p.shape for p in op("Split", 1, axis=1)(x, np.array([2, 1]))] == [(2, 2), (2, 1)]
    assert op("Tile", 1)(x, np.array(2), np.array(1)).shape == (2, 6)
    assert op("Pad", 1, paddings=[1, 0, 0, 0], mode="edge")(x).tolist() == [
        [0, 1, 2],
        [0, 1, 2],
        [3, 4, 5],
    ]
    out, mask = op("Dropout", 6, is_test=1)(x.astype(np.float32))
    assert mask.dtype == np.float32 and (out == x).all()
    out, mask = op("Dropout", 10)(x.astype(np.float32))
    assert mask.dtype == bool and mask.all()


def test_split_num_outputs_uneven():
    parts = op("Split", 18, num_outputs=3)(np.arange(7))
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]


def test_dropout_training_and_seed():
    x = np.ones((1000,), np.float16)
    d = op("Dropout", 22, seed=3)
    y, m = d(x, np.array(0.25, np.float32), np.array(True))
    assert y.dtype == np.float16 and m.dtype == bool
    assert np.allclose(y[m].astype(np.float64), 1 / 0.75, rtol=1e-3) and (y[~m] == 0).all()
    assert 0.6 < m.mean() < 0.9
    _y2, m2 = op("Dropout", 22, seed=3)(x, np.array(0.25, np.float32), np.array(True))
    assert (m2 == m).all()  # same seed, same first mask
    y3, _ = op("Dropout", 22, seed=3)(x.astype(ml_dtypes.bfloat16), np.array(0.25), np.array(True))
    assert y3.dtype == ml_dtypes.bfloat16
    y4, m4 = op("Dropout", 22)(x, np.array(0.5), np.array(False))
    assert y4 is x and m4.all()
    with pytest.raises(KernelError):
        op("Dropout", 22)(x, np.array(1.0, np.float32), np.array(True))


def test_scatter_reductions_on_bfloat16_and_duplicates():
    data = np.zeros(3, ml_dtypes.bfloat16)
    upd = np.array([1, 2, 4], ml_dtypes.bfloat16)
    out = op("ScatterElements", reduction="add")(data, np.array([0, 0, 2]), upd)
    assert out.dtype == data.dtype and out.astype(np.float32).tolist() == [3, 0, 4]
    out = op("ScatterND", reduction="max")(
        np.zeros((2, 2)), np.array([[1], [1]]), np.array([[1, 5], [3, 2.0]])
    )
    assert out.tolist() == [[0, 0], [3, 5]]
    assert (data == 0).all()  # inputs untouched


def test_constant_forms():
    assert op("Constant", value_float=1.5)().dtype == np.float32
    assert op("Constant", value_ints=[1, 2])().tolist() == [1, 2]
    assert op("Constant", value_int=3)().shape == ()
    s = op("Constant", value_strings=["a", "bc"])()
    assert s.dtype == object and s.tolist() == ["a", "bc"]
    assert op("Constant", value_string="x")().tolist() == "x"
    dense = op(
        "Constant",
        sparse_value={"values": np.array([5.0, 6.0]), "indices": np.array([1, 4]), "dims": [2, 3]},
    )()
    assert dense.tolist() == [[0, 5, 0], [0, 6, 0]]
    dense = op(
        "Constant",
        sparse_value={"values": np.array([7]), "indices": np.array([[1, 2]]), "dims": [2, 3]},
    )()
    assert dense.tolist() == [[0, 0, 0], [0, 0, 7]]
    with pytest.raises(KernelError):
        op("Constant", value_int=1, value_float=2.0)


def test_unique_strings_axis_and_unsorted():
    x = np.array(["b", "a", "b", "c"], dtype=object)
    y, idx, inv, cnt = op("Unique", sorted=0)(x)
    assert y.tolist() == ["b", "a", "c"] and idx.tolist() == [0, 1, 3]
    assert inv.tolist() == [0, 1, 0, 2] and cnt.tolist() == [2, 1, 1]
    m = np.array([["b", "x"], ["a", "y"], ["b", "x"]], dtype=object)
    y, idx, inv, cnt = op("Unique", axis=0)(m)
    assert y.tolist() == [["a", "y"], ["b", "x"]] and idx.tolist() == [1, 0]
    assert inv.tolist() == [1, 0, 1] and cnt.tolist() == [1, 2]
    assert op("Unique", _outputs=1)(x)[0].tolist() == ["a", "b", "c"]
    y, idx, inv, cnt = op("Unique", axis=0, sorted=0)(m)
    assert y.tolist() == [["b", "x"], ["a", "y"]] and inv.tolist() == [0, 1, 0]


def test_shape_size_nonzero_misc():
    x = np.zeros((2, 3, 4))
    assert op("Shape", start=-2, end=100)(x).tolist() == [3, 4]
    assert op("Shape", 1)(x).dtype == np.int64
    assert op("Size")(x).shape == () and op("Size")(x) == 24
    assert op("NonZero")(np.array(3)).shape == (1, 1)
    assert op("Compress")(np.arange(2), np.array([False, True, True])).tolist() == [1]
    assert op("NonZero")(np.array(["", "a"], dtype=object)).tolist() == [[1]]
    assert op("EyeLike", dtype=9)(np.zeros((2, 3))).dtype == bool
    assert op("Range")(np.array(5), np.array(0), np.array(-2)).tolist() == [5, 3, 1]
    assert op("Range")(np.int32(0), np.int32(0), np.int32(1)).shape == (0,)
    assert op("OneHot", axis=0)(
        np.array([1, -1, 5]), np.array(3.0), np.array(["n", "y"], dtype=object)
    ).tolist() == [["n", "n", "n"], ["y", "n", "n"], ["n", "y", "n"]]
    assert op("ConstantOfShape", value=np.array([True]))(np.array([2], np.int64)).tolist() == [
        True,
        True,
    ]
    assert op("ConstantOfShape")(np.zeros(0, np.int64)).shape == ()


def test_gathernd_batch_dims_and_tensorscatter():
    data = np.arange(24).reshape(2, 3, 4)
    idx = np.array([[[0, 1], [2, 3]], [[1, 0], [-1, -1]]])
    got = op("GatherND", batch_dims=1)(data, idx)
    assert got.tolist() == [[1, 11], [16, 23]]
    cache = np.zeros((2, 5, 1), np.int64)
    upd = np.array([[[1], [2]], [[3], [4]]])
    out = op("TensorScatter", axis=1, mode="circular")(cache, upd, np.array([4, 1]))
    assert out[..., 0].tolist() == [[2, 0, 0, 0, 1], [0, 3, 4, 0, 0]]
    assert (cache == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concat_of_channel_last_views_copies_them_by_tiles_with_numpys_result(
    compiled_calls, monkeypatch, dtype
):
    """Channel-last views (transposed NHWC arrays) joined along the channels go through the
    compiled layout change, tile by tile; the result is np.concatenate's, bit for bit."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit
    from onyx.runtime.kernels import tensor

    monkeypatch.setattr(tensor, "_BLOCKS_MIN", 0)
    tiled = compiled_calls((_jit, "from_channels_last"))
    rng = np.random.default_rng(3)
    last = rng.standard_normal((2, 5, 7, 19)).astype(dtype).transpose(0, 3, 1, 2)
    plain = rng.standard_normal((2, 4, 5, 7)).astype(dtype)
    one = rng.standard_normal((2, 5, 7, 1)).astype(dtype).transpose(0, 3, 1, 2)
    for inputs, axis in [((last, plain), 1), ((plain, last, one, last), -3)]:
        got = op("Concat", axis=axis)(*inputs)
        want = np.concatenate(inputs, axis=axis)
        assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous
        assert got.tobytes() == want.tobytes()
    assert tiled == ["from_channels_last"] * 6  # (an image of a view a call)
    tiled.clear()
    # not the case: no channel-last view, another axis, shapes that do not agree
    assert (
        op("Concat", axis=1)(plain, plain).tobytes() == np.concatenate((plain, plain), 1).tobytes()
    )
    assert op("Concat", axis=0)(last, last).tobytes() == np.concatenate((last, last), 0).tobytes()
    with pytest.raises(KernelError, match="agree in rank"):
        op("Concat", axis=1)(last, last[:, :, :4])
    assert tiled == []


def test_concat_in_a_session_with_threads_copies_each_block_over_them(compiled_calls):
    """A large Concat (densenet121's) copies each input's block over numba's threads, as
    bytes (``threads.copy``); small ones stay one np.concatenate."""
    pytest.importorskip("numba")
    from onnx import TensorProto, helper

    import onyx
    from onyx.runtime import _jit_par

    copied = compiled_calls((_jit_par, "copy_bands"))
    shapes = [(1, 64, 64, 64), (1, 32, 64, 64), (1, 1, 64, 64)]
    node = helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1)
    graph = helper.make_graph(
        [node], "concat",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip("abc", shapes)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 97, 64, 64])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onyx.SessionOptions()
    options.intra_op_num_threads = 2
    session = onyx.InferenceSession(model.SerializeToString(), options)
    rng = np.random.default_rng(5)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in zip("abc", shapes)}
    (got,) = session.run(None, feeds)
    assert got.tobytes() == np.concatenate(list(feeds.values()), axis=1).tobytes()
    assert copied == ["copy_bands"] * 2  # (the third input, 16 KB: one thread)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reshape_of_a_view_with_short_runs_gathers_it_with_numpys_result(
    compiled_calls, monkeypatch, dtype
):
    """A Reshape that must copy a view whose last axis steps by one element (MobileViT's
    unfolding and folding of patches: runs of 2 values) copies it by the compiled gather; the
    result is numpy's reshape, bit for bit. A reshape numpy makes as a view stays one, and a
    view read across its last axis (a transpose), of more than 4 distinct axes or of integers
    goes through numpy's copy."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit, threads

    monkeypatch.setattr(threads, "GATHER_MIN", 0)
    gathered = compiled_calls((_jit, "gather"))
    rng = np.random.default_rng(7)
    image = rng.standard_normal((1, 12, 8, 6)).astype(dtype)
    unfold = image.reshape(48, 2, 3, 2).transpose(0, 2, 1, 3)  # (48, 3, 2, 2)
    fold = np.ascontiguousarray(unfold).transpose(0, 2, 1, 3)  # back, as a view
    sliced = rng.standard_normal((5, 9, 4)).astype(dtype)[::2, 1:, :3]
    for view, target in [(unfold, [1, 12, 24, 2]), (fold, [1, 12, 8, 6]),
                         (unfold, [-1]), (sliced, [3, -1]), (sliced[None], [0, 0, 24])]:  # fmt: skip
        got = op("Reshape", 14)(view, np.array(target))
        want = view.reshape([d if d else view.shape[i] for i, d in enumerate(target)])
        assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous
        assert got.tobytes() == np.ascontiguousarray(want).tobytes()
    assert gathered == ["gather"] * 5
    gathered.clear()
    # a view will do: the data's runs end where the target's axes do
    heads = rng.standard_normal((4, 6, 8)).astype(dtype).transpose(1, 0, 2)  # (6, 4, 8)
    assert np.shares_memory(op("Reshape", 14)(heads[None], np.array([6, 4, 8])), heads)
    # not gathered: a transpose, more than 4 distinct axes, integers
    many = rng.standard_normal((2, 3, 3, 3, 3, 4)).astype(dtype)[:, :2, :2, :2, :2, :3]
    ints = np.arange(96).reshape(4, 6, 4).transpose(1, 0, 2)
    for view in (image[0].transpose(2, 1, 0), many, ints):
        got = op("Reshape", 14)(view, np.array([-1]))
        assert got.tobytes() == np.ascontiguousarray(view).reshape(-1).tobytes()
    assert gathered == []
    # an invalid target still gets the Reshape's own error
    with pytest.raises(KernelError, match="cannot reshape"):
        op("Reshape", 14)(unfold, np.array([5, -1]))


def test_concat_of_strided_views_copies_each_whole_into_its_part(compiled_calls, monkeypatch):
    """Views joined (Swin's roll: column slices of a channel-last image; its patch merging:
    every other row and column; views of runs of 2 values) are each copied whole into their
    part of the result, whatever the axis and however many blocks they make: by the compiled
    gather where their runs are short, else by numpy (a transposed view too). The result is
    np.concatenate's."""
    pytest.importorskip("numba")
    from onyx.runtime import _jit, threads
    from onyx.runtime.kernels import tensor

    monkeypatch.setattr(threads, "GATHER_MIN", 0)
    monkeypatch.setattr(tensor, "_BLOCKS_MIN", 0)
    gathered = compiled_calls((_jit, "gather"))
    rng = np.random.default_rng(11)
    image = rng.standard_normal((1, 16, 16, 24)).astype(np.float32)  # (N, H, W, C)
    rolled = (image[:, :, 13:], image[:, :, :13])
    merged = tuple(image[:, i::2, j::2] for i in (0, 1) for j in (0, 1))
    across = rng.standard_normal((1, 24, 16, 16)).astype(np.float32).transpose(0, 2, 3, 1)
    patches = image.reshape(192, 2, 8, 2).transpose(0, 2, 1, 3)  # runs of 2
    for inputs, axis in [(rolled, 2), (merged, -1), ((image[:, :, :5], across[:, :, :7]), 2)]:
        got = op("Concat", axis=axis)(*inputs)
        want = np.concatenate(inputs, axis=axis)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()
    assert gathered == []
    for inputs, axis in [((patches, patches[:, :3]), 1), ((patches[:7], patches), 0)]:
        got = op("Concat", axis=axis)(*inputs)
        want = np.concatenate(inputs, axis=axis)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()
    assert gathered == ["gather"] * 4
