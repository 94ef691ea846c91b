"""InferenceSession: run a model with the surface people know from onnxruntime."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onyx import dtypes
from onyx.errors import FeedError
from onyx.ir import MapType, Model, OptionalType, SequenceType, TensorType, Type, Value
from onyx.runtime import memory
from onyx.runtime.plan import Context, Plan

_log = logging.getLogger("onyx")

# numpy's ufuncs copy rows shorter than half their buffer (8192 elements by default) into it
# whenever an operand is broadcast, as a per-channel bias or scale is: a Conv's bias add over
# 64 x 3025 float32 takes 2.3x as long as the same add of a scalar (bench_numpy_layouts.py).
# With a 1024-element buffer rows from 513 elements on are read in place (shorter ones are
# copied as before).
_UFUNC_BUFFER = 1024


@dataclasses.dataclass
class SessionOptions:
    """Options of a session: ``allocation_limit`` in bytes (default: physical memory),
    ``enable_profiling`` to time every node, ``log_severity_level`` (0 verbose .. 4 fatal),
    ``graph_optimization_level`` (0: run the graph as written; above 0, the default: fold
    constants and fuse steps at build, as onnxruntime does), ``enable_cpu_mem_arena`` (the
    default: freed memory stays in the process for the next tensors instead of going back to
    the OS; on glibc this is a setting of malloc, so it holds for the whole process)."""

    allocation_limit: int | None = None
    graph_optimization_level: int = 1
    enable_profiling: bool = False
    profile_file_prefix: str = "onyx_profile"
    log_severity_level: int = 2
    enable_cpu_mem_arena: bool = True


@dataclasses.dataclass(frozen=True)
class NodeArg:
    """A graph input or output: name, shape (ints, symbols, None) and type string."""

    name: str
    shape: list | None
    type: str


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict[str, str]


class InferenceSession:
    """A model prepared to run: ``InferenceSession(path | bytes | ir.Model).run(None, feeds)``."""

    def __init__(self, model: str | os.PathLike | bytes | Model, sess_options: SessionOptions | None = None,
                 providers: Sequence[str] | None = None, **kwargs):  # fmt: skip
        from onyx.serde import load

        self.model = model if isinstance(model, Model) else load(model)
        self.options = sess_options or SessionOptions()
        for key, value in kwargs.items():
            setattr(self.options, key, value)
        self._providers = ["CPUExecutionProvider"]
        if providers:
            unknown = [
                p
                for p in providers
                if (p[0] if isinstance(p, tuple) else p) != "CPUExecutionProvider"
            ]
            if len(unknown) == len(providers):
                from onyx.errors import UnsupportedError

                raise UnsupportedError(
                    f"providers {unknown} are not available; onyx has CPUExecutionProvider"
                )
        graph = self.model.graph
        opsets = dict(self.model.opset_imports)
        if not opsets:
            opsets = {"": 1}
        optimize = self.options.graph_optimization_level > 0
        if self.options.enable_cpu_mem_arena:
            memory.keep_freed_memory()
        self._context = Context(opsets, self.model.functions, optimize)
        self._plan = Plan(graph, self._context)
        self._plan.bind_captures([])
        self._override_plan: Plan | None = None  # built when a feed overrides an initializer
        initialized = set(graph.initializers.values()) | set(graph.sparse_initializers.values())
        # Old exporters list every weight as an input (600 in densenet121): a run checks the
        # feed against the inputs without a value and the weights it overrides, not against
        # all (a pass over all, searching a list for each, took 3.3 ms a run, by timeit).
        self._feed_positions = [(i, v) for i, v in enumerate(graph.inputs) if v not in initialized]
        self._feeds = [v for _, v in self._feed_positions]
        self._overridable = [v for v in graph.inputs if v in initialized]
        self._overridable_names = frozenset(v.name for v in self._overridable)
        self._input_defaults = [
            self._plan.template[self._plan.input_slots[i]] if v in initialized else None
            for i, v in enumerate(graph.inputs)
        ]
        self._input_index = {v.name: i for i, v in enumerate(graph.inputs)}
        self._output_index = {v.name: i for i, v in enumerate(graph.outputs)}
        self._profile: list | None = [] if self.options.enable_profiling else None
        if self.options.log_severity_level <= 1:  # onnxruntime's scale: 0 verbose, 1 info, ...
            _log.info(
                "prepared %d steps from %d nodes (constants folded and steps fused: %d)",
                len(self._plan.steps), len(graph.nodes), len(graph.nodes) - len(self._plan.steps),
            )  # fmt: skip
        self._limit = self.options.allocation_limit or memory.default_limit()

    # --- description -----------------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return [_node_arg(v) for v in self._feeds]

    def get_overridable_initializers(self) -> list[NodeArg]:
        return [_node_arg(v) for v in self._overridable]

    def get_outputs(self) -> list[NodeArg]:
        return [_node_arg(v) for v in self.model.graph.outputs]

    def get_modelmeta(self) -> ModelMetadata:
        m = self.model
        return ModelMetadata(m.producer_name, m.graph.name, m.domain, m.doc_string, m.graph.doc_string,
                             m.model_version, dict(m.metadata_props))  # fmt: skip

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_session_options(self) -> SessionOptions:
        return self.options

    # --- running -----------------------------------------------------------------------------
    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options=None
    ) -> list:
        """Outputs named by ``output_names`` (all, in graph order, when None) for ``input_feed``."""
        inputs = self._check_feeds(input_feed)
        token = memory.LIMIT.set(self._limit)
        bufsize = np.setbufsize(_UFUNC_BUFFER)
        try:
            with np.errstate(all="ignore"):  # inf/NaN results are values here, as in onnxruntime
                outputs = self._plan_for(input_feed).run(inputs, (), self._profile)
        finally:
            np.setbufsize(bufsize)
            memory.LIMIT.reset(token)
        if output_names is None:
            selected = outputs
        else:
            selected = []
            for name in output_names:
                if name not in self._output_index:
                    raise FeedError(
                        f"unknown output {name!r}; the model's outputs are {list(self._output_index)}"
                    )
                selected.append(outputs[self._output_index[name]])
        return [_to_api(v) for v in selected]

    def _plan_for(self, feed: Mapping[str, Any]) -> Plan:
        """The folded plan, or (when a feed overrides an initializer) one that folds none."""
        if self._overridable_names.isdisjoint(feed):
            return self._plan
        if self._override_plan is None:
            self._override_plan = Plan(self.model.graph, self._context, fold_overridable=False)
            self._override_plan.bind_captures([])
        return self._override_plan

    def _check_feeds(self, feed: Mapping[str, Any]) -> list:
        graph = self.model.graph
        unknown = [name for name in feed if name not in self._input_index]
        if unknown:
            raise FeedError(
                f"unknown input {unknown[0]!r}; the model's inputs are {[v.name for v in self._feeds]}"
            )
        inputs = self._input_defaults.copy()
        for i, value in self._feed_positions:
            if value.name in feed:
                inputs[i] = _check_value(value, feed[value.name])
            elif not isinstance(value.type, OptionalType):
                raise FeedError(
                    f"input {value.name!r} ({_type_str(value.type)}) is missing from the feed"
                )
        for name in self._overridable_names.intersection(feed):
            i = self._input_index[name]
            inputs[i] = _check_value(graph.inputs[i], feed[name])
        return inputs

    # --- profiling ---------------------------------------------------------------------------
    def end_profiling(self) -> str:
        """Write the per-node timings as a Chrome trace (like onnxruntime) and return its path."""
        events = [
            {"name": step.node.name or step.node.op_type, "cat": "Node", "ph": "X", "pid": 0, "tid": 0,
             "ts": 0, "dur": seconds * 1e6, "args": {"op_name": step.node.op_type}}
            for step, seconds in (self._profile or [])
        ]  # fmt: skip
        path = f"{self.options.profile_file_prefix}_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
        with open(path, "w") as f:
            json.dump(events, f)
        self._profile = None
        return path

    def profile_by_op(self) -> dict[str, float]:
        """Total seconds spent per op type in the profiled runs so far."""
        totals: dict[str, float] = {}
        for step, seconds in self._profile or []:
            totals[step.node.op_type] = totals.get(step.node.op_type, 0.0) + seconds
        return totals


def _type_str(t: Type | None) -> str:
    return "unknown type" if t is None else str(t)


def _node_arg(v: Value) -> NodeArg:
    shape = None
    if isinstance(v.type, TensorType) and v.type.shape is not None:
        shape = list(v.type.shape.dims)
    return NodeArg(v.name, shape, _type_str(v.type))


def _check_value(value: Value, given: Any) -> Any:
    """Check one fed value against the declared type: kind, element type, rank and fixed dims."""
    t = value.type
    if isinstance(t, OptionalType):
        return None if given is None else _check_value(Value(value.name, t.elem_type), given)
    if isinstance(t, SequenceType):
        if not isinstance(given, list | tuple):
            raise FeedError(
                f"input {value.name!r} expects {t} (a list), got {type(given).__name__}"
            )
        return [_check_value(Value(value.name, t.elem_type), g) for g in given]
    if isinstance(t, MapType):
        if not isinstance(given, dict):
            raise FeedError(
                f"input {value.name!r} expects {t} (a dict), got {type(given).__name__}"
            )
        return given
    if not isinstance(t, TensorType):
        return given
    array = given if isinstance(given, np.ndarray) else np.asarray(given)
    expected = dtypes.to_numpy(t.dtype) if t.dtype else array.dtype
    if array.dtype != expected:
        if t.dtype == dtypes.DataType.STRING and array.dtype.kind in "US":
            array = array.astype(object)
        else:
            raise FeedError(
                f"input {value.name!r} expects tensor({t.dtype.short_name}), got an array of {array.dtype}"
            )
    if t.shape is not None:
        if array.ndim != len(t.shape):
            raise FeedError(
                f"input {value.name!r} expects rank {len(t.shape)} {t.shape}, got shape {list(array.shape)}"
            )
        for axis, (want, got) in enumerate(zip(t.shape.dims, array.shape)):
            if isinstance(want, int) and want != got:
                raise FeedError(
                    f"input {value.name!r}: dim {axis} must be {want} (declared {t.shape}), got shape "
                    f"{list(array.shape)}"
                )
    return array


def _to_api(value: Any) -> Any:
    """Outputs as the user gets them: arrays they own (never a view of a constant or a feed)."""
    if isinstance(value, list):
        return [_to_api(v) for v in value]
    if isinstance(value, dict) or value is None:
        return value
    if not isinstance(value, np.ndarray):
        return np.asarray(value)
    return value if value.flags.owndata and value.flags.writeable else value.copy()
