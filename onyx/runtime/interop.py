"""Inter-op parallelism: a plan's independent steps run at the same time (ORT_PARALLEL).

``SessionOptions.execution_mode = ExecutionMode.ORT_PARALLEL`` runs a plan as a dataflow graph:
each step starts as soon as the steps producing its inputs have finished, on a pool of
``inter_op_num_threads`` threads (0: the machine's physical cores). Branches that do not depend
on each other (an inception module's four towers, a detector's heads) then overlap; numpy and
BLAS release the GIL inside their loops, so the overlap is real. A thread that finishes a step
goes on with one of the steps it made ready and hands the others to the pool, so a chain of
steps stays on one thread without a hand-off per step.

Each step computes the same values from the same inputs as in a sequential run, so outputs are
bit for bit those of the sequential mode; only the order of independent steps changes. Kernels
never write into their inputs (in-place work is on results they own), which is what makes that
safe. While a parallel run is in progress BLAS is held to one thread per call, as in pooled runs
(threads.py): two GEMMs of two branches each wanting every core would oversubscribe them. A
value is freed when its last reader has finished, whatever the order.

As in onnxruntime, the mode is opt-in: a chain-shaped model (most CNNs and transformers) gains
nothing and pays a hand-off per branch; see docs/runtime.md for what it measured.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from onyx.errors import ExecutionError
from onyx.runtime import threads
from onyx.runtime.plan import _placed

_EXECUTORS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()


def _worker_setup() -> None:
    # as in a sequential run: inf and NaN results are values, numpy's ufunc buffer is small
    np.seterr(all="ignore")
    np.setbufsize(1024)


def executor(size: int) -> concurrent.futures.ThreadPoolExecutor:
    """The process's inter-op pool of ``size`` threads (0: physical cores), shared by sessions."""
    size = size or threads.physical_cores()
    with _EXECUTORS_LOCK:
        found = _EXECUTORS.get(size)
        if found is None:
            found = _EXECUTORS[size] = concurrent.futures.ThreadPoolExecutor(
                size, thread_name_prefix="onyx-interop", initializer=_worker_setup
            )
        return found


class Dependencies:
    """The dependencies between a plan's steps, worked out once per plan (kept on the plan)."""

    def __init__(self, plan: Any):
        steps = plan.steps
        producer = {s: i for i, step in enumerate(steps) for s in step.outputs}
        self.waits = []  # how many distinct steps each step waits for
        self.readers = [[] for _ in steps]  # the steps waiting for each step
        self.reads: dict[int, int] = {}  # slot -> how many steps read it
        for i, step in enumerate(steps):
            before = {producer[s] for s in step.inputs if s in producer}
            self.waits.append(len(before))
            for j in before:
                self.readers[j].append(i)
            for s in set(step.inputs):
                if s >= 0:
                    self.reads[s] = self.reads.get(s, 0) + 1
        template = plan.template
        self.keep = set(plan.output_slots) | {i for i, v in enumerate(template) if v is not None}
        self.starts = [i for i, w in enumerate(self.waits) if w == 0]


def run(plan: Any, inputs: Sequence[Any], pool: concurrent.futures.ThreadPoolExecutor,
        stop: Any = None) -> list:  # fmt: skip
    """``plan``'s outputs for ``inputs``, its independent steps run at once on ``pool``."""
    graph = plan.__dict__.get("_dependencies")
    if graph is None:
        graph = plan._dependencies = Dependencies(plan)
    steps = plan.steps
    regs = plan.template.copy()
    for s, v in zip(plan.input_slots, inputs):
        regs[s] = v
    waits = graph.waits.copy()
    reads = graph.reads.copy()
    lock = threading.Lock()
    finished = threading.Event()
    state = {"running": 0, "error": None}

    def start(i: int) -> None:
        pool.submit(contextvars.copy_context().run, work, i)

    def work(i: int | None) -> None:
        while i is not None:
            step = steps[i]
            try:
                if stop is not None and stop.terminate:
                    raise ExecutionError(f"run terminated by RunOptions before {step.label}")
                result = step.fn(*[regs[s] if s >= 0 else None for s in step.inputs])
                if len(step.outputs) == 1:
                    regs[step.outputs[0]] = result[0] if type(result) is tuple else result
                elif step.outputs:
                    for s, r in zip(step.outputs, result):
                        regs[s] = r
            except BaseException as e:  # noqa: BLE001 - re-raised by the run, placed
                with lock:
                    if state["error"] is None:
                        state["error"] = (e, step.label)
                    state["running"] -= 1
                    if state["running"] == 0:
                        finished.set()
                return
            following = None
            with lock:
                for s in set(step.inputs):
                    if s >= 0:
                        reads[s] -= 1
                        if reads[s] == 0 and s not in graph.keep:
                            regs[s] = None
                if state["error"] is None:
                    for j in graph.readers[i]:
                        waits[j] -= 1
                        if waits[j] == 0:
                            if following is None:
                                following = j  # this thread goes on with it
                            else:
                                state["running"] += 1
                                start(j)
                if following is None:
                    state["running"] -= 1
                    if state["running"] == 0:
                        finished.set()
            i = following

    with threads.blas_held():
        with lock:
            state["running"] = len(graph.starts)
            if not graph.starts:
                finished.set()
            for i in graph.starts:
                start(i)
        finished.wait()
    if state["error"] is not None:
        error, label = state["error"]
        placed = _placed(error, label) if isinstance(error, Exception) else error
        if placed is error:
            raise error
        raise placed from error
    return [regs[s] for s in plan.output_slots]
