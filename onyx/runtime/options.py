"""What a session and a run take besides the model: option checking, RunOptions, providers,
thread limits and output buffers the caller provides (used by ``session.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onyx.errors import FeedError, OptionError

__all__ = [
    "ExecutionMode",
    "GraphOptimizationLevel",
    "OptionError",
    "RunOptions",
    "get_available_providers",
]


class GraphOptimizationLevel(enum.IntEnum):
    """onnxruntime's levels, accepted by ``SessionOptions.graph_optimization_level``. onyx has
    two behaviours: 0 runs the graph as written; every other level folds constants and fuses
    steps at build (onyx's optimizations are all of one kind)."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """onnxruntime's modes, accepted by ``SessionOptions.execution_mode``: one step at a time
    (the default), or independent steps at once on ``inter_op_num_threads`` threads."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


def get_available_providers() -> list[str]:
    """The execution providers this installation of onyx can run models with."""
    return ["CPUExecutionProvider"]


def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        try:  # onnxruntime's own enum objects convert with int()
            if isinstance(value, bool) or not hasattr(value, "__int__") or isinstance(value, float):
                raise TypeError
            value = int(value)
        except (TypeError, ValueError):
            raise OptionError(f"option {name}: expected an integer, got {value!r}") from None
    value = int(value)
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"{low}..{high}"
        raise OptionError(f"option {name}: expected {span}, got {value}")
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool | np.bool_) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise OptionError(f"option {name}: expected True or False, got {value!r}")


def check_session_option(name: str, value: Any) -> Any:
    """``value`` as SessionOptions keeps it; OptionError naming the option when it is out of
    range or of the wrong kind. Options this function does not know pass through."""
    if name == "allocation_limit":
        return None if value is None else _int(name, value, 1)
    if name == "graph_optimization_level":
        level = _int(name, value, 0)
        if level not in GraphOptimizationLevel._value2member_map_:
            raise OptionError(
                f"option graph_optimization_level: expected one of onnxruntime's levels 0, 1, 2, "
                f"3 or 99 (GraphOptimizationLevel), got {level}"
            )
        return GraphOptimizationLevel(level)
    if name == "execution_mode":
        mode = _int(name, value, 0, 1)
        return ExecutionMode(mode)
    if name in ("enable_profiling", "enable_cpu_mem_arena", "prepack_weights"):
        return _bool(name, value)
    if name == "profile_file_prefix":
        if not isinstance(value, str | os.PathLike):
            raise OptionError(f"option profile_file_prefix: expected a path prefix, got {value!r}")
        return os.fspath(value)
    if name == "log_severity_level":
        return _int(name, value, 0, 4)
    if name in ("intra_op_num_threads", "inter_op_num_threads"):
        return _int(name, value, 0)
    return value


def reject_unknown(owner: Any, name: str) -> None:
    """TypeError naming ``name`` when the dataclass ``owner`` has no such field."""
    fields = owner.__dataclass_fields__
    if name not in fields and not name.startswith("_"):
        raise TypeError(
            f"{type(owner).__name__} has no option {name!r}; its options are "
            f"{', '.join(sorted(f for f in fields if not f.startswith('_')))}"
        )


@dataclasses.dataclass
class RunOptions:
    """Options of one ``run``: ``logid`` (a tag put in the run's log lines),
    ``log_severity_level`` (0 verbose .. 4 fatal; -1: the session's), and ``terminate``: set it to
    True (from another thread) and the run stops before its next step with an ExecutionError;
    a run started with it set stops before its first. Steps inside a Loop or Scan body run to
    the end of that node. Unknown option names raise TypeError, as SessionOptions' do."""

    logid: str = ""
    log_severity_level: int = -1
    log_verbosity_level: int = 0
    terminate: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        reject_unknown(self, name)
        if name == "logid":
            value = str(value)
        elif name == "log_severity_level":
            value = value if value == -1 else _int(name, value, 0, 4)
        elif name == "log_verbosity_level":
            value = _int(name, value, 0)
        elif name == "terminate":
            value = _bool(name, value)
        object.__setattr__(self, name, value)


# --- threads -------------------------------------------------------------------------------
class ThreadLimit:
    """Holds the BLAS libraries numpy loaded to ``threads`` threads while a run is inside it.

    Done through threadpoolctl when it is installed; without it (or with ``threads`` 0) it
    changes nothing and the setting is advisory.
    """

    def __init__(self, threads: int):
        self.threads, self.controller = threads, None
        if threads > 0:
            try:
                import threadpoolctl
            except ImportError:
                return
            self.controller = threadpoolctl.ThreadpoolController()

    @property
    def active(self) -> bool:
        return self.controller is not None

    def __call__(self):
        if self.controller is None:
            return contextlib.nullcontext()
        return self.controller.limit(limits=self.threads, user_api="blas")


# --- output names and buffers ----------------------------------------------------------------
def check_output_names(names: Any, index: Mapping[str, int]) -> list[int] | None:
    """Positions of the requested outputs (None: all); FeedError for a string or unknown names."""
    if names is None:
        return None
    if isinstance(names, str | bytes):
        raise FeedError(
            f"output_names must be a list of names or None, got the string {names!r}; "
            f"did you mean [{names!r}]?"
        )
    try:
        names = list(names)
    except TypeError:
        raise FeedError(
            f"output_names must be a list of names or None, got {type(names).__name__}"
        ) from None
    unknown = [n for n in names if n not in index]
    if unknown:
        raise FeedError(
            f"unknown output{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the model's outputs are {list(index)}"
        )
    return [index[n] for n in names]


def check_out(out: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The caller's output buffers by output name (``out``: a dict by name, or a list in the
    order of ``names``); FeedError when a buffer is not a writable array or names no output."""
    if isinstance(out, Mapping):
        buffers = dict(out)
        unknown = [n for n in buffers if n not in names]
        if unknown:
            raise FeedError(f"out: {', '.join(map(repr, unknown))} is not among the outputs "
                            f"asked for, {list(names)}")  # fmt: skip
    elif isinstance(out, list | tuple):
        if len(out) != len(names):
            raise FeedError(f"out: {len(out)} buffers for {len(names)} outputs {list(names)}")
        buffers = {n: b for n, b in zip(names, out) if b is not None}
    else:
        raise FeedError(f"out must be a dict of arrays by output name or a list, got "
                        f"{type(out).__name__}")  # fmt: skip
    for name, buf in buffers.items():
        if not isinstance(buf, np.ndarray) or not buf.flags.writeable:
            raise FeedError(f"out[{name!r}] must be a writable numpy array, got "
                            f"{type(buf).__name__}")  # fmt: skip
    return buffers


def write_out(name: str, value: Any, buf: np.ndarray) -> np.ndarray:
    """Copy one output into the caller's buffer (same shape and dtype) and return the buffer."""
    if not isinstance(value, np.ndarray):
        raise FeedError(f"out[{name!r}]: output {name!r} is a {type(value).__name__}, not a tensor")
    if value.shape != buf.shape or value.dtype != buf.dtype:
        raise FeedError(
            f"out[{name!r}]: the output is {value.dtype}{list(value.shape)}, the buffer is "
            f"{buf.dtype}{list(buf.shape)}; they must match"
        )
    np.copyto(buf, value, casting="no")
    return buf
