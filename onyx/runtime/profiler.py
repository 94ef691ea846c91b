"""Profiling of a session as a Chrome trace (open it in Perfetto or chrome://tracing).

The trace is a JSON array of complete events (``"ph": "X"``) with ``ts`` and ``dur`` in
microseconds from the start of the session's build: one ``session_initialization`` event, one
``model_run`` event per run, and one event per step of each run (named after its node, with the
op type and the input shapes in ``args``), as onnxruntime writes its profiles.

Nodes inside subgraphs (If branches, Loop and Scan bodies, function bodies) are events of their
own, one per time their subgraph runs, named after the path to them (``loop.body > add``) and
lying within the event of the node that ran them, so a trace viewer draws them nested beneath
it. A run that profiles sets ``PROFILING.sink`` (per thread) for the subgraph plans it runs to
read; when profiling is off no step pays anything for this.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from typing import Any

from onyx.errors import OnyxError


class _Active(threading.local):
    sink: list | None = None  # the step list of the profiled run in progress on this thread


PROFILING = _Active()


class Profiler:
    """The timings of one session: its build, each run, each step of each run."""

    def __init__(self, prefix: str, started: float, built: float):
        self.prefix = prefix
        self.origin = started  # perf_counter() at the start of the build: ts 0 of the trace
        self.wall = datetime.datetime.now()
        self.build = (started, built)
        # per run: (start, end, thread id, [(step, start, end, input shapes, graph path), ...])
        self.runs: list[tuple[float, float, int, list]] = []

    def run_started(self) -> tuple[float, list]:
        """The start time and the list ``Plan.run`` fills with the steps of one run."""
        return time.perf_counter(), []

    def run_ended(self, start: float, steps: list) -> None:
        self.runs.append((start, time.perf_counter(), threading.get_native_id(), steps))

    def by_op(self) -> dict[str, float]:
        """Seconds per op type over the runs so far (top-level nodes: a subgraph's time counts
        for the If, Loop or Scan that ran it)."""
        totals: dict[str, float] = {}
        for *_, steps in self.runs:
            for step, start, end, _, path in steps:
                if path != "main":
                    continue
                op = step.node.op_type
                totals[op] = totals.get(op, 0.0) + (end - start)
        return totals

    def events(self) -> list[dict[str, Any]]:
        """The Chrome trace events, ordered by start time."""
        pid = os.getpid()

        def event(cat: str, name: str, start: float, end: float, tid: int, args: dict) -> dict:
            return {"cat": cat, "name": name, "ph": "X", "pid": pid, "tid": tid,
                    "ts": round((start - self.origin) * 1e6, 3),
                    "dur": round((end - start) * 1e6, 3), "args": args}  # fmt: skip

        out = [
            event("Session", "session_initialization", *self.build, threading.get_native_id(), {})
        ]
        for index, (start, end, tid, steps) in enumerate(self.runs):
            out.append(event("Session", "model_run", start, end, tid, {"run": index}))
            for step, s, e, shapes, path in steps:
                node = step.node
                name = node.name or node.op_type
                args = {"op_name": node.op_type, "run": index, "input_type_shape": shapes}
                if path != "main":
                    name, args["graph"] = f"{path} > {name}", path
                out.append(event("Node", name, s, e, tid, args))
        out.sort(key=lambda ev: ev["ts"])  # stable: a run before its first step
        return out

    def write(self) -> str:
        """Write the trace to a new file named after the prefix and the start time; its path."""
        stamp = self.wall.strftime("%Y-%m-%d_%H-%M-%S_%f")
        base = f"{self.prefix}_{stamp}_{os.getpid()}"
        text = json.dumps(self.events())
        for attempt in range(1000):
            path = f"{base}.json" if attempt == 0 else f"{base}_{attempt}.json"
            try:
                with open(path, "x") as f:  # never overwrite another session's profile
                    f.write(text)
                return path
            except FileExistsError:
                continue
            except OSError as e:
                raise OnyxError(f"cannot write the profile {path!r}: {e.strerror}") from None
        raise OnyxError(f"cannot write the profile: {base}.json and 999 variants exist")


def shapes_of(args: list) -> list[dict[str, list[int]]]:
    """The element type and shape of each step input, as onnxruntime's ``input_type_shape``."""
    out = []
    for a in args:
        shape = getattr(a, "shape", None)
        if shape is None:
            out.append({type(a).__name__: []})
        else:
            out.append({str(a.dtype): list(shape)})
    return out
