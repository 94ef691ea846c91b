"""A model over 2 GiB, its weights in external data, through onyx.optimize and `onyx optimize`.

Two float32 weights of 1.1 GB each (2.2 GB, past protobuf's 2 GiB), and a third initializer that
names the first one's bytes again (same file, same offset): deduplication merges it, common
subexpressions and Identity go, and the result must be saved with external data, load back and
run. The weights are written straight to their file a slice at a time and stay memory-mapped.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onyx
from onyx import cli

ROWS, COLS = 16_800, 16_384
NBYTES = ROWS * COLS * 4  # 1.1 GB a weight; both: 2.2 GB > 2 GiB


def pattern(start: int, stop: int, sign: int) -> np.ndarray:
    """Rows ``start:stop`` of a weight: (row % 251) * sign + col / 2**14, exact in float32."""
    r = np.arange(start, stop, dtype=np.float32)[:, None] % 251
    c = np.arange(COLS, dtype=np.float32)[None, :] / 16384
    return r * sign + c


def big_model(folder) -> str:
    """The model file (small) and its weights file (2.2 GB) in ``folder``; the model's path."""
    with open(folder / "weights.bin", "wb") as f:
        for sign in (1, -1):
            f.writelines(pattern(start, min(start + 2048, ROWS), sign).tobytes()
                         for start in range(0, ROWS, 2048))  # fmt: skip

    def external(name: str, offset: int) -> TensorProto:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[ROWS, COLS],
                        data_location=TensorProto.EXTERNAL)  # fmt: skip
        for key, value in (("location", "weights.bin"), ("offset", offset), ("length", NBYTES)):
            t.external_data.add(key=key, value=str(value))
        return t

    nodes = [
        helper.make_node("Gather", ["w1", "idx"], ["a"]),
        helper.make_node("Gather", ["w1_again", "idx"], ["b"]),
        helper.make_node("Gather", ["w2", "idx"], ["c"]),
        helper.make_node("Add", ["a", "c"], ["s"]),
        helper.make_node("Add", ["s", "b"], ["t"]),
        helper.make_node("Identity", ["t"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "big",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["k"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k", COLS])],
        initializer=[external("w1", 0), external("w1_again", 0), external("w2", NBYTES)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = folder / "big.onnx"
    path.write_bytes(model.SerializeToString())  # the weights stay where they were written
    return str(path)


def check_result(path: str) -> None:
    """The optimized file: external data, 4 nodes, 2 weights, the right values."""
    proto = onnx.load(path, load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)
    model = onyx.load(path)
    assert sorted(n.op_type for n in model.graph.nodes) == ["Add", "Add", "Gather", "Gather"]
    weights = {k: v.const_value.numpy() for k, v in model.graph.initializers.items()}
    assert sorted(weights) == ["w1", "w2"]
    np.testing.assert_array_equal(weights["w1"][ROWS - 3 :], pattern(ROWS - 3, ROWS, 1))
    np.testing.assert_array_equal(weights["w2"][250:253], pattern(250, 253, -1))
    idx = np.array([0, 250, 251, ROWS - 1], np.int64)
    (y,) = onyx.InferenceSession(path).run(None, {"idx": idx})
    want = 2 * np.concatenate([pattern(i, i + 1, 1) for i in idx]) + np.concatenate(
        [pattern(i, i + 1, -1) for i in idx]
    )
    np.testing.assert_allclose(y.astype(np.float64), want.astype(np.float64), rtol=1e-6)


def anonymous_memory() -> int:
    """Bytes of this process's memory that no file backs (0 where /proc does not say)."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("RssAnon:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


@pytest.mark.slow
def test_over_2gib_with_external_data(tmp_path, capsys):
    if shutil.disk_usage(tmp_path).free < 10 << 30:
        pytest.skip("needs 10 GB free on the temporary folder's disk")
    src = big_model(tmp_path)
    try:
        base = anonymous_memory()
        out = onyx.optimize(onyx.load(src))
        assert len(out.graph.nodes) == 4 and len(out.graph.initializers) == 2
        dst = tmp_path / "api.onnx"
        onyx.save(out, dst)  # past 2 GiB: external data by itself
        assert anonymous_memory() - base < NBYTES // 4  # the weights stayed in their files
        del out
        assert (tmp_path / "api.onnx.data").stat().st_size >= 2 * NBYTES
        check_result(str(dst))
        dst.unlink()
        (tmp_path / "api.onnx.data").unlink()

        dst = tmp_path / "cli.onnx"
        assert cli.main(["optimize", src, str(dst)]) == 0
        table = capsys.readouterr().out
        sizes = next(line for line in table.splitlines() if line.startswith("file size"))
        megabytes = [float(w) for w in sizes.split()[2::2]]  # before, after: with their data
        assert len(megabytes) == 2 and min(megabytes) > 2 * NBYTES / 1e6 - 1
        check_result(str(dst))
    finally:
        for path in tmp_path.iterdir():
            path.unlink()
