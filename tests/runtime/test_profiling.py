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
