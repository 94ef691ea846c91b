"""Profiling: a Chrome trace with real timestamps, and onnxruntime's end_profiling() contract."""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime
import pytest

import onyx
import onyx.samples
from onyx.runtime.session import SessionOptions

MLP = onyx.samples.path()
FEED = {"x": np.ones((3, 16), np.float32)}


def _events(path: str) -> list[dict]:
    with open(path) as f:
        return json.load(f)


def _profiled(tmp_path, runs: int = 3) -> tuple[onyx.InferenceSession, str]:
    opts = SessionOptions(enable_profiling=True, profile_file_prefix=str(tmp_path / "prof"))
    session = onyx.InferenceSession(MLP, opts)
    for _ in range(runs):
        session.run(None, FEED)
    return session, session.end_profiling()


def test_trace_has_the_build_each_run_and_each_node_with_real_times(tmp_path):
    session, path = _profiled(tmp_path)
    events = _events(path)
    keys = {"ts", "dur", "pid", "tid", "name", "cat"}
    assert all(e["ph"] == "X" and keys <= set(e) for e in events)
    starts = [e["ts"] for e in events]
    assert starts == sorted(starts) and starts[-1] > 0  # ordered, and not all at 0
    build = [e for e in events if e["name"] == "session_initialization"]
    runs = [e for e in events if e["name"] == "model_run"]
    assert len(build) == 1 and build[0]["dur"] > 0 and len(runs) == 3
    assert build[0]["ts"] + build[0]["dur"] <= runs[0]["ts"]
    steps = len(session._plan.steps)
    for index, run in enumerate(runs):
        nodes = [e for e in events if e["cat"] == "Node" and e["args"]["run"] == index]
        assert len(nodes) == steps
        # each node lies inside its run, in order, and together they take at most the run's time
        assert all(run["ts"] <= n["ts"] and n["ts"] + n["dur"] <= run["ts"] + run["dur"] + 1e-3
                   for n in nodes)  # fmt: skip
        ends = [n["ts"] + n["dur"] for n in nodes]
        assert all(e <= s + 1e-3 for e, s in zip(ends, [n["ts"] for n in nodes[1:]]))
        assert sum(n["dur"] for n in nodes) <= run["dur"] + 1e-3
        assert all(n["tid"] == run["tid"] for n in nodes)
    first = next(e for e in events if e["cat"] == "Node")
    assert first["args"]["op_name"] == "MatMul"
    assert first["args"]["input_type_shape"][0] == {"float32": [3, 16]}


def test_profile_by_op_sums_the_node_times(tmp_path):
    opts = SessionOptions(enable_profiling=True, profile_file_prefix=str(tmp_path / "p"))
    session = onyx.InferenceSession(MLP, opts)
    session.run(None, FEED)
    by_op = session.profile_by_op()
    assert set(by_op) <= {"MatMul", "Add", "Relu", "Softmax"} and "Softmax" in by_op
    events = _events(session.end_profiling())
    node_total = sum(e["dur"] for e in events if e["cat"] == "Node") / 1e6
    assert sum(by_op.values()) == pytest.approx(node_total, rel=1e-3, abs=1e-5)


def test_end_profiling_returns_empty_when_off_or_already_ended(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = onyx.InferenceSession(MLP)
    session.run(None, FEED)
    assert session.end_profiling() == ""
    assert os.listdir(tmp_path) == []  # nothing written
    # onnxruntime says the same for a session without profiling
    assert (
        onnxruntime.InferenceSession(MLP, providers=["CPUExecutionProvider"]).end_profiling() == ""
    )
    session, path = _profiled(tmp_path, runs=1)
    size = os.path.getsize(path)
    assert session.end_profiling() == ""  # a second call neither writes nor overwrites
    assert os.path.getsize(path) == size and len(_events(path)) > 2
    session.run(None, FEED)  # profiling has stopped
    assert session.profile_by_op() == {}


def test_two_sessions_started_together_write_two_files(tmp_path):
    opts = SessionOptions(enable_profiling=True, profile_file_prefix=str(tmp_path / "same"))
    a, b = onyx.InferenceSession(MLP, opts), onyx.InferenceSession(MLP, opts)
    a.run(None, FEED)
    b.run(None, FEED)
    b.run(None, FEED)
    path_a, path_b = a.end_profiling(), b.end_profiling()
    assert path_a != path_b and path_a.endswith(".json")
    assert os.path.basename(path_a).startswith("same_")
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (path_a, path_b))
    runs = [sum(e["name"] == "model_run" for e in _events(p)) for p in (path_a, path_b)]
    assert runs == [1, 2]


def test_a_profile_that_cannot_be_written_is_an_onyx_error(tmp_path):
    opts = SessionOptions(enable_profiling=True,
                          profile_file_prefix=str(tmp_path / "no" / "such" / "dir"))  # fmt: skip
    session = onyx.InferenceSession(MLP, opts)
    with pytest.raises(onyx.OnyxError, match="cannot write the profile"):
        session.end_profiling()


def _loop_model() -> onyx.ir.Model:
    """y = Loop(3) over a body with two nodes (Add then Mul) and an If nested in it."""
    from onyx import helper

    f = onyx.DataType.FLOAT
    branch = lambda name, op: helper.make_graph(
        [helper.make_node(op, ["s"], [f"{name}_out"], name=f"{name}_neg")], name, [],
        [helper.make_tensor_value_info(f"{name}_out", f, None)],
    )  # fmt: skip
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc", "one"], ["s"], name="add"),
            helper.make_node("Mul", ["s", "two"], ["m"], name="mul"),
            helper.make_node(
                "If",
                ["cond_in"],
                ["out"],
                name="pick",
                then_branch=branch("then", "Identity"),
                else_branch=branch("else", "Neg"),
            ),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", onyx.DataType.INT64, []),
            helper.make_tensor_value_info("cond_in", onyx.DataType.BOOL, []),
            helper.make_tensor_value_info("acc", f, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", onyx.DataType.BOOL, []),
            helper.make_tensor_value_info("out", f, [2]),
            helper.make_tensor_value_info("m", f, [2]),
        ],
        [
            helper.make_tensor("one", f, [2], [1.0, 1.0]),
            helper.make_tensor("two", f, [2], [2.0, 2.0]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "c", "x"], ["y", "ms"], name="loop", body=body)],
        "g",
        [helper.make_tensor_value_info("n", onyx.DataType.INT64, []),
         helper.make_tensor_value_info("c", onyx.DataType.BOOL, []),
         helper.make_tensor_value_info("x", f, [2])],
        [helper.make_tensor_value_info("y", f, [2]), helper.make_tensor_value_info("ms", f, None)],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


LOOP_FEED = {"n": np.array(3, np.int64), "c": np.array(True), "x": np.zeros(2, np.float32)}


def test_nodes_of_subgraphs_are_events_nested_in_their_control_node(tmp_path):
    opts = SessionOptions(enable_profiling=True, profile_file_prefix=str(tmp_path / "loop"))
    session = onyx.InferenceSession(_loop_model(), opts)
    want = session.run(None, LOOP_FEED)
    np.testing.assert_array_equal(want[0], np.full(2, 3.0, np.float32))  # acc + 1, three times
    by_op = session.profile_by_op()
    events = _events(session.end_profiling())
    nodes = [e for e in events if e["cat"] == "Node"]
    loop = [e for e in nodes if e["name"] == "loop"]
    assert len(loop) == 1 and "graph" not in loop[0]["args"]
    inner = [e for e in nodes if e is not loop[0]]
    # one event per body node per iteration, in the order the body runs them, named by path
    body_names = [e["name"] for e in inner if e["args"]["graph"] == "loop.body"]
    assert body_names == ["loop.body > add", "loop.body > mul", "loop.body > pick",
                          "loop.body > keep"] * 3  # fmt: skip
    branch = [e["name"] for e in inner if e["args"]["graph"] != "loop.body"]
    assert branch == ["loop.body > pick.then_branch > then_neg"] * 3
    start, end = loop[0]["ts"], loop[0]["ts"] + loop[0]["dur"]
    assert all(start <= e["ts"] and e["ts"] + e["dur"] <= end + 1e-3 for e in inner)
    assert all(e["tid"] == loop[0]["tid"] for e in inner)
    ts = [e["ts"] for e in inner]
    assert ts == sorted(ts)
    # each If event contains its branch's node
    picks = [e for e in inner if e["name"].endswith("> pick")]
    for pick, neg in zip(picks, [e for e in inner if e["name"].endswith("then_neg")]):
        assert pick["ts"] <= neg["ts"] and neg["ts"] + neg["dur"] <= pick["ts"] + pick["dur"] + 1e-3
    # per-op totals count the top-level Loop only (its body's time is inside it)
    assert set(by_op) == {"Loop"}
    assert by_op["Loop"] == pytest.approx(loop[0]["dur"] / 1e6, rel=1e-3, abs=1e-5)


def test_subgraphs_run_the_same_with_profiling_off_and_leave_no_sink():
    from onyx.runtime.profiler import PROFILING

    session = onyx.InferenceSession(_loop_model())
    out = session.run(None, LOOP_FEED)
    np.testing.assert_array_equal(out[1], np.array([[2, 2], [4, 4], [6, 6]], np.float32))
    assert PROFILING.sink is None
    opts = SessionOptions(enable_profiling=True)
    profiled = onyx.InferenceSession(_loop_model(), opts)
    profiled.run(None, LOOP_FEED)
    assert PROFILING.sink is None  # the run restored it
    profiled._profiler = None  # nothing written
