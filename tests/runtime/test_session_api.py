"""The onnxruntime-like surface of InferenceSession: options checked when set, output_names
checked, RunOptions, providers, thread limits, get_modelmeta parity, caller-provided outputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import onyx
from onyx import helper
from onyx.errors import OptionError


def _model(**fields) -> bytes:
    x = helper.make_tensor_value_info("x", 1, ["N", 4])
    outs = [helper.make_tensor_value_info(n, 1, ["N", 4]) for n in ("y", "z")]
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["y"], ["z"])]
    g = helper.make_graph(nodes, "graph-name", [x], outs, doc_string="graph doc")
    fields.setdefault("opset_imports", [helper.make_opsetid("", 21)])
    return onyx.to_bytes(helper.make_model(g, ir_version=10, **fields))


X = np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], np.float32)


def test_unknown_options_name_the_field():
    with pytest.raises(TypeError, match="'intra_op_threads'"):
        onyx.SessionOptions(intra_op_threads=2)
    options = onyx.SessionOptions()
    with pytest.raises(
        TypeError, match="no option 'graph_optimisation_level'.*graph_optimization_level"
    ):
        options.graph_optimisation_level = 0
    with pytest.raises(TypeError, match="unknown keyword argument\\(s\\) 'foo'"):
        onyx.InferenceSession(_model(), foo=1)
    with pytest.raises(TypeError, match="no option 'nope'"):
        onyx.RunOptions().nope = 1


@pytest.mark.parametrize(
    "field, value",
    [("graph_optimization_level", 5), ("graph_optimization_level", -1), ("graph_optimization_level", "all"),
     ("intra_op_num_threads", -1), ("inter_op_num_threads", 1.5), ("log_severity_level", 9),
     ("allocation_limit", 0), ("enable_profiling", "yes")],
)  # fmt: skip
def test_out_of_range_values_are_refused(field, value):
    with pytest.raises(OptionError, match=f"option {field}"):
        onyx.SessionOptions(**{field: value})
    with pytest.raises(OptionError, match=f"option {field}"):
        setattr(onyx.SessionOptions(), field, value)


def test_onnxruntime_levels_are_accepted():
    for level in ort.GraphOptimizationLevel.__members__.values():
        assert onyx.SessionOptions(graph_optimization_level=level).graph_optimization_level == int(
            level
        )
    assert onyx.GraphOptimizationLevel.ORT_ENABLE_ALL == int(
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )


def test_keywords_do_not_change_the_callers_options():
    options = onyx.SessionOptions()
    s = onyx.InferenceSession(_model(), options, graph_optimization_level=0)
    assert s.get_session_options().graph_optimization_level == 0
    assert options.graph_optimization_level == 1


def test_output_names_are_checked():
    s = onyx.InferenceSession(_model())
    with pytest.raises(onyx.FeedError, match="got the string 'z'; did you mean \\['z'\\]"):
        s.run("z", {"x": X})
    with pytest.raises(onyx.FeedError, match="unknown outputs 'q', 'w'.*\\['y', 'z'\\]"):
        s.run(["q", "z", "w"], {"x": X})
    with pytest.raises(onyx.FeedError, match="input_feed must be a dict"):
        s.run(None, [X])
    np.testing.assert_array_equal(s.run(["z", "y"], {"x": X})[0], -np.maximum(X, 0))


def test_allocation_limit_guards_sizes_read_from_values():
    """The documented meaning: sizes that come from input *values* are checked, per tensor."""
    shape = helper.make_tensor_value_info("shape", 7, [2])
    big = helper.make_tensor_value_info("x", 1, ["N", "M"])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"]),
             helper.make_node("Relu", ["x"], ["r"])]  # fmt: skip
    outs = [
        helper.make_tensor_value_info("c", 1, None),
        helper.make_tensor_value_info("r", 1, None),
    ]
    m = helper.make_model(helper.make_graph(nodes, "g", [shape, big], outs),
                          opset_imports=[helper.make_opsetid("", 21)])  # fmt: skip
    s = onyx.InferenceSession(m, allocation_limit=4096)
    ok = s.run(None, {"shape": np.array([32, 32], np.int64), "x": np.ones((64, 64), np.float32)})
    assert ok[0].nbytes == 4096 and ok[1].nbytes == 16384  # the Relu output is not counted
    with pytest.raises(onyx.AllocationError, match="ConstantOfShape.*exceeds.*4,096 bytes"):
        s.run(
            None,
            {"shape": np.array([1 << 20, 1 << 20], np.int64), "x": np.ones((1, 1), np.float32)},
        )


def test_terminate_before_the_first_step():
    s = onyx.InferenceSession(_model())
    with pytest.raises(onyx.ExecutionError, match="terminated by RunOptions"):
        s.run(None, {"x": X}, onyx.RunOptions(terminate=True))
    ort_options = ort.RunOptions()  # onnxruntime's own RunOptions work too
    ort_options.logid = "tag"
    assert len(s.run(None, {"x": X}, ort_options)) == 2
    with pytest.raises(TypeError, match="run_options"):
        s.run(None, {"x": X}, {"terminate": True})


def test_providers():
    assert onyx.get_available_providers() == ["CPUExecutionProvider"]
    assert set(onyx.get_available_providers()) <= set(ort.get_available_providers())
    s = onyx.InferenceSession(_model(), providers=["CPUExecutionProvider"], provider_options=[{}])
    assert s.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(TypeError, match="provider_options has 2 entries for 1 providers"):
        onyx.InferenceSession(
            _model(), providers=["CPUExecutionProvider"], provider_options=[{}, {}]
        )


@pytest.mark.parametrize(
    "fields",
    [{"producer_name": "prod", "producer_version": "2", "domain": "dom", "model_version": 7,
          "doc_string": "model doc", "metadata_props": {"k": "v", "a": "b"}}, {}],
)  # fmt: skip
def test_modelmeta_matches_onnxruntime(fields):
    model = _model(**fields)
    theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_modelmeta()
    ours = onyx.InferenceSession(model).get_modelmeta()
    for name in ("producer_name", "graph_name", "domain", "description", "graph_description",
                 "version", "custom_metadata_map"):  # fmt: skip
        assert getattr(ours, name) == getattr(theirs, name), name


def test_outputs_into_caller_buffers():
    s = onyx.InferenceSession(_model())
    z = np.full((2, 4), np.nan, np.float32)
    got = s.run(None, {"x": X}, out={"z": z})
    assert got[1] is z and got[0] is not z
    np.testing.assert_array_equal(z, -np.maximum(X, 0))
    y = np.empty((2, 4), np.float32)
    got = s.run(["y"], {"x": X}, out=[y])
    assert got[0] is y
    np.testing.assert_array_equal(y, np.maximum(X, 0))
    with pytest.raises(
        onyx.FeedError, match="the output is float32\\[2, 4\\], the buffer is float64"
    ):
        s.run(None, {"x": X}, out={"z": np.empty((2, 4))})
    with pytest.raises(onyx.FeedError, match="'q' is not among the outputs"):
        s.run(None, {"x": X}, out={"q": y})
    frozen = np.empty((2, 4), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(onyx.FeedError, match="writable numpy array"):
        s.run(None, {"x": X}, out={"y": frozen})


def test_outputs_never_share_memory_with_feeds_constants_or_each_other():
    """Views of the run's own results come back as they are (no copy); views of a feed, of a
    constant or of another output are copied."""
    shape = helper.make_tensor("shape", 7, [1], [-1])
    c = helper.make_tensor("c", 1, [2, 2], [1, 2, 3, 4])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["of_feed"]),
        helper.make_node("Identity", ["x"], ["feed"]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["of_result"]),
        helper.make_node("Identity", ["r"], ["same_result"]),
        helper.make_node("Reshape", ["c", "shape"], ["of_constant"]),
    ]
    names = ["of_feed", "feed", "of_result", "same_result", "of_constant"]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 4])],
                          [helper.make_tensor_value_info(n, 1, None) for n in names], [shape, c])  # fmt: skip
    s = onyx.InferenceSession(onyx.to_bytes(helper.make_model(g, ir_version=10)))
    x = X.copy()
    of_feed, feed, of_result, same_result, of_constant = s.run(None, {"x": x})
    assert not np.shares_memory(of_feed, x) and not np.shares_memory(feed, x)
    assert of_result.base is not None  # a view of Relu's result: not copied
    assert not np.shares_memory(of_result, same_result)
    assert of_constant.flags.writeable
    of_constant[:] = 0  # changes nothing the session keeps
    np.testing.assert_array_equal(s.run(["of_constant"], {"x": x})[0], [1, 2, 3, 4])
    for got in (of_feed, feed, same_result):
        np.testing.assert_array_equal(got.reshape(2, 4), np.maximum(X, 0) if got is same_result
                                      else X)  # fmt: skip


def test_intra_op_threads_hold_blas_threads_during_runs():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not threadpoolctl.threadpool_info():
        pytest.skip("no BLAS library with a thread pool is loaded")
    seen = []

    def probe(x):
        seen.append(max(info["num_threads"] for info in threadpoolctl.threadpool_info()
                        if info["user_api"] == "blas"))  # fmt: skip
        return x

    with onyx.register_op("Probe", "test.threads", inputs=[("X", "tensor(float)")],
                          outputs=[("Y", "tensor(float)")], kernel=probe):  # fmt: skip
        g = helper.make_graph([helper.make_node("Probe", ["x"], ["y"], domain="test.threads")], "g",
                              [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])])  # fmt: skip
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("test.threads", 1)])
        before = max(i["num_threads"] for i in threadpoolctl.threadpool_info())
        onyx.InferenceSession(m, intra_op_num_threads=1).run(None, {"x": np.ones(1, np.float32)})
        assert seen == [1]
        assert max(i["num_threads"] for i in threadpoolctl.threadpool_info()) == before


def test_run_log_lines_carry_the_run_tag(caplog):
    s = onyx.InferenceSession(_model())
    with caplog.at_level("INFO", logger="onyx"):
        s.run(None, {"x": X}, onyx.RunOptions(logid="batch-7", log_severity_level=0))
        s.run(None, {"x": X}, onyx.RunOptions(logid="quiet"))  # the session's level: warnings
    assert "batch-7" in caplog.text and "quiet" not in caplog.text


def test_an_onnx_model_proto_is_taken():
    import onnx

    proto = onnx.load_from_string(_model())
    assert len(onyx.InferenceSession(proto).run(None, {"x": X})) == 2
