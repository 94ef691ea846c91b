"""The session's thread pool (onyx/runtime/threads.py) and the compiled run loop (plan.py)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onyx
from onyx.runtime import plan as plan_module
from onyx.runtime import threads


def _cnn() -> bytes:
    """Conv (banded, with a ReLU epilogue) -> MaxPool -> MatMul by a 2-D weight on 3-D rows:
    each splits its work over a pool of 2 threads at these sizes."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")
    m = numpy_helper.from_array(rng.standard_normal((32, 256)).astype(np.float32), "m")
    shape = numpy_helper.from_array(np.array([1, 2048, 32], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["q"]),
        helper.make_node("MatMul", ["q", "m"], ["y"], name="matmul"),
    ]
    x = helper.make_tensor_value_info("x", 1, [1, 16, 128, 128])
    y = helper.make_tensor_value_info("y", 1, None)
    g = helper.make_graph(nodes, "cnn", [x], [y], [w, b, m, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


X = np.random.default_rng(1).standard_normal((1, 16, 128, 128)).astype(np.float32)


def _reference(model: bytes) -> np.ndarray:
    """The model's output in float64, by numpy, from the same weights."""
    from onnx import load_from_string

    inits = {t.name: numpy_helper.to_array(t) for t in load_from_string(model).graph.initializer}
    x = np.pad(X.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = inits["w"].astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # (1,16,128,128,3,3)
    c = np.einsum("nchwij,mcij->nmhw", windows, w) + inits["b"].reshape(1, -1, 1, 1)
    r = np.maximum(c, 0)
    p = r.reshape(1, 16, 64, 2, 64, 2).max(axis=(3, 5))
    return p.reshape(1, 2048, 32) @ inits["m"].astype(np.float64)


def test_pooled_runs_agree_with_numpy_and_repeat_bit_for_bit():
    model = _cnn()
    want = _reference(model)
    two = onyx.InferenceSession(model, intra_op_num_threads=2)
    first = two.run(None, {"x": X})[0]
    np.testing.assert_allclose(first.astype(np.float64), want, rtol=1e-4, atol=1e-3)
    for _ in range(3):
        again = two.run(None, {"x": X})[0]
        assert again.tobytes() == first.tobytes()
    one = onyx.InferenceSession(model, intra_op_num_threads=1).run(None, {"x": X})[0]
    np.testing.assert_allclose(one.astype(np.float64), first.astype(np.float64), rtol=1e-5,
                               atol=1e-4)  # fmt: skip


def _runs_at_once(runs: list) -> list[list[bytes]]:
    """Each of ``runs`` (a callable giving an array) called 4 times on a thread of its own,
    the threads started together; each one's results as bytes, failing on any error or on a
    thread that does not finish."""
    results: list[list[bytes]] = [[] for _ in runs]
    errors: list[BaseException] = []
    start = threading.Barrier(len(runs))

    def work(k: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                results[k].append(runs[k]().tobytes())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads_ = [threading.Thread(target=work, args=(k,)) for k in range(len(runs))]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads_), "a run did not finish (deadlock?)"
    assert not errors
    return results


def test_two_sessions_in_two_python_threads_finish_with_the_same_results():
    model = _cnn()
    expected = onyx.InferenceSession(model, intra_op_num_threads=2).run(None, {"x": X})[0]
    sessions = [onyx.InferenceSession(model, intra_op_num_threads=2) for _ in range(2)]
    results = _runs_at_once([lambda s=s: s.run(None, {"x": X})[0] for s in sessions])
    assert results[0] == results[1] == [expected.tobytes()] * 4


def _rows_model() -> bytes:
    """A transformer block's kinds of step on (N, 8, 16) rows: a linear layer with bias and
    ReLU, LayerNormalization, a second product with a residual Add, Softmax."""
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("w1", (16, 48)), ("b1", (48,)), ("g", (48,)), ("w2", (48, 16)))
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("LayerNormalization", ["r", "g"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "w2"], ["m"]),
        helper.make_node("Add", ["m", "x"], ["a"]),
        helper.make_node("Softmax", ["a"], ["y"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", 1, ["N", 8, 16])
    y = helper.make_tensor_value_info("y", 1, None)
    g = helper.make_graph(nodes, "rows", [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("intra", [1, 2])
@pytest.mark.parametrize("model_name", ["cnn", "rows"])
def test_one_session_run_from_several_threads_at_once(intra, model_name):
    """onyx.batch runs batches side by side on one session: each run gets what it gets alone."""
    model = _cnn() if model_name == "cnn" else _rows_model()
    rng = np.random.default_rng(3)
    if model_name == "cnn":
        feeds = [X + k for k in range(3)]
    else:  # two threads on one batch size, one on another: per-shape memos filled at once
        feeds = [rng.standard_normal((n, 8, 16)).astype(np.float32) for n in (5, 64, 64)]
    alone = onyx.InferenceSession(model, intra_op_num_threads=intra)
    expected = [alone.run(None, {"x": f})[0].tobytes() for f in feeds]
    shared = onyx.InferenceSession(model, intra_op_num_threads=intra)
    results = _runs_at_once([lambda f=f: shared.run(None, {"x": f})[0] for f in feeds])
    assert results == [[e] * 4 for e in expected]


def test_blas_threads_are_restored_after_runs():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library with a thread pool is loaded")
    before = [i["num_threads"] for i in blas]
    onyx.InferenceSession(_cnn(), intra_op_num_threads=2).run(None, {"x": X})
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before


def test_pool_runs_each_part_once_and_reraises_a_failure():
    pool = threads.Pool(3)
    seen: list[int] = []
    lock = threading.Lock()

    def part(i):
        with lock:
            seen.append(i)

    pool.run(part, [(i,) for i in range(50)])
    assert sorted(seen) == list(range(50))

    def failing(i):
        if i == 7:
            raise ValueError("part 7")

    with pytest.raises(ValueError, match="part 7"):
        pool.run(failing, [(i,) for i in range(20)])
    pool.run(part, [(i,) for i in range(3)])  # still serving after a failure
    assert len(seen) == 53


def test_bands_cover_the_range_in_order():
    for count in (1, 5, 64, 101):
        for parts in (1, 2, 3, 8):
            b = threads.bands(count, parts)
            assert b[0][0] == 0 and b[-1][1] == count
            assert all(lo < hi for lo, hi in b)
            assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))
    assert threads.physical_cores() >= 1


def _loop_model() -> bytes:
    """A Loop of 5 iterations whose body holds an If: y = sum over i of (x + i or x - i)."""
    then = helper.make_graph([helper.make_node("Add", ["acc_in", "xi"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", 1, [2])])  # fmt: skip
    other = helper.make_graph([helper.make_node("Sub", ["acc_in", "xi"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", 1, [2])])  # fmt: skip
    body = helper.make_graph(
        [
            helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["x", "fi"], ["xi"]),
            helper.make_node("Greater", ["fi", "two"], ["big"]),
            helper.make_node("If", ["big"], ["acc_out"], then_branch=then, else_branch=other),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
        ],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", 1, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", 1, [2])],
    )  # fmt: skip
    g = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "zero"], ["y"], body=body)],
        "loop",
        [helper.make_tensor_value_info("x", 1, [2])],
        [helper.make_tensor_value_info("y", 1, [2])],
        [numpy_helper.from_array(np.array(5, np.int64), "n"),
         numpy_helper.from_array(np.zeros(2, np.float32), "zero"),
         numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_loop_and_if_bodies_are_prepared_once_per_session(monkeypatch):
    session = onyx.InferenceSession(_loop_model())
    built = []
    original = plan_module.Plan.__init__

    def counting(self, *args, **kwargs):
        built.append(args[0].name if args else "?")
        original(self, *args, **kwargs)

    monkeypatch.setattr(plan_module.Plan, "__init__", counting)
    x = np.array([1.0, -2.0], np.float32)
    for _ in range(3):
        y = session.run(None, {"x": x})[0]
    # i = 0, 1, 2: acc - (x + i); i = 3, 4: acc + (x + i)
    want = sum((x + i) if i > 2 else -(x + i) for i in range(5))
    np.testing.assert_array_equal(y, want.astype(np.float32))
    assert built == []


def test_the_compiled_run_loop_names_the_failing_node_and_frees_values():
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="first"),
         helper.make_node("Reshape", ["r", "bad"], ["y"], name="the_reshape")],
        "g", [helper.make_tensor_value_info("x", 1, [4]),
              helper.make_tensor_value_info("bad", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", 1, None)],
    )  # fmt: skip
    s = onyx.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    x = np.array([1, -2, 3, -4], np.float32)
    np.testing.assert_array_equal(s.run(None, {"x": x, "bad": np.array([4], np.int64)})[0],
                                  np.maximum(x, 0))  # fmt: skip
    with pytest.raises(onyx.ExecutionError, match="the_reshape.*Reshape"):
        s.run(None, {"x": x, "bad": np.array([3], np.int64)})


def test_matmul_of_n_d_rows_by_a_2_d_weight_is_numpys_product():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 7, 5, 24)).astype(np.float32)
    w = rng.standard_normal((24, 10)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", 1, None),
                           helper.make_tensor_value_info("w", 1, None)],
                          [helper.make_tensor_value_info("y", 1, None)])  # fmt: skip
    s = onyx.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    for left, right in ((a, w), (a[:, :, ::2], w), (a, rng.standard_normal((2, 7, 24, 3)))):
        right = right.astype(np.float32)
        y = s.run(None, {"a": np.ascontiguousarray(left) if left is a else left, "w": right})[0]
        want = np.matmul(left.astype(np.float64), right.astype(np.float64))
        assert y.shape == want.shape
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("c", "hw"), [(32, 64), (256, 14)])  # the plane and channel-last kernels
def test_depthwise_conv_split_by_channels_gives_the_serial_bits(c, hw):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=c, pads=[1, 1, 1, 1], strides=[2, 2])],
        "dw", [helper.make_tensor_value_info("x", 1, [1, c, hw, hw])],
        [helper.make_tensor_value_info("y", 1, None)], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
    one = onyx.InferenceSession(model, intra_op_num_threads=1).run(None, {"x": x})[0]
    two = onyx.InferenceSession(model, intra_op_num_threads=2).run(None, {"x": x})[0]
    assert two.tobytes() == one.tobytes()
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    want = np.einsum("nchwij,cij->nchw", windows, w[:, 0].astype(np.float64))
    np.testing.assert_allclose(two.astype(np.float64), want, rtol=1e-5, atol=1e-5)


def test_elementwise_works_on_a_transposed_view_in_its_memory_order():
    """A transposed view of a dense array reaches the kernel contiguous (its compiled path),
    and the result has the view's shape and values; any other layout reaches it as it is."""
    seen = []

    def double(part):
        seen.append(part.flags.c_contiguous)
        return part * 2

    base = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    view = base.transpose(0, 2, 1)
    y = threads.elementwise(double, view)
    assert y.shape == view.shape and seen == [True]
    np.testing.assert_array_equal(y, view * 2)
    strided = base[:, ::2]
    np.testing.assert_array_equal(threads.elementwise(double, strided), strided * 2)
    assert seen == [True, False]
    sess_x = np.random.default_rng(0).standard_normal((1, 64, 300)).astype(np.float32)
    gelu = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Gelu", ["t"], ["y"])],
        "g", [helper.make_tensor_value_info("x", 1, [1, 64, 300])],
        [helper.make_tensor_value_info("y", 1, None)],
    )  # fmt: skip
    model = helper.make_model(gelu, opset_imports=[helper.make_opsetid("", 20)])
    (got,) = onyx.InferenceSession(model.SerializeToString()).run(None, {"x": sess_x})
    t = sess_x.transpose(0, 2, 1).astype(np.float64)
    want = 0.5 * t * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))
    assert got.flags.c_contiguous and got.shape == (1, 300, 64)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_packed_weight_is_packed_once_per_array_and_again_for_another_view():
    """``PackedWeight`` keeps one packing: the same array, or a view of the whole of the same
    base made afresh at each call (a convolution's weight reshaped), finds it; a view of
    another part of the base, another layout of it, or another array packs anew; a writeable
    array is never packed."""
    packs = []
    cache = threads.PackedWeight(lambda b: packs.append(b.copy()) or packs[-1])
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    base.flags.writeable = False
    for _ in range(3):
        np.testing.assert_array_equal(cache.get(base.reshape(6, 4)), base.reshape(6, 4))
    assert len(packs) == 1
    np.testing.assert_array_equal(cache.get(base.reshape(6, 4).T), base.reshape(6, 4).T)
    assert len(packs) == 2  # (the transposed layout)
    np.testing.assert_array_equal(cache.get(base[1].reshape(3, 4)), base[1])  # (part of it)
    np.testing.assert_array_equal(cache.get(base[0].reshape(3, 4)), base[0])
    assert len(packs) == 4
    np.testing.assert_array_equal(cache.get(base.view(np.int32).reshape(6, 4)),
                                  base.view(np.int32).reshape(6, 4))  # fmt: skip
    assert len(packs) == 5  # (another dtype over the same bytes)
    assert cache.get(np.zeros((6, 4), np.float32)) is None
    assert len(packs) == 5
