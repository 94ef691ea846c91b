"""InferenceSession: run a model with the surface people know from onnxruntime."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onyx import dtypes
from onyx.errors import FeedError, OnyxError, OptionError
from onyx.ir import MapType, Model, OptionalType, SequenceType, TensorType, Type, Value
from onyx.runtime import interop, memory, threads
from onyx.runtime.kernels.registry import SESSION_DOMAIN, session_ops
from onyx.runtime.options import (
    ExecutionMode,
    RunOptions,
    check_out,
    check_output_names,
    check_session_option,
    reject_unknown,
    write_out,
)  # fmt: skip
from onyx.runtime.plan import Context, Plan, check_signatures
from onyx.runtime.profiler import Profiler

_log = logging.getLogger("onyx")

# numpy's ufuncs copy rows shorter than half their buffer (8192 elements by default) into it
# whenever an operand is broadcast, as a per-channel bias or scale is: a Conv's bias add over
# 64 x 3025 float32 takes 2.3x as long as the same add of a scalar (bench_numpy_layouts.py).
# With a 1024-element buffer rows from 513 elements on are read in place (shorter ones are
# copied as before).
_UFUNC_BUFFER = 1024


@dataclasses.dataclass
class SessionOptions:
    """Options of a session: ``allocation_limit`` in bytes (default: physical memory; see
    below), ``enable_profiling`` to time every node, ``log_severity_level`` (0 verbose .. 4 fatal),
    ``graph_optimization_level`` (0: run the graph as written; above 0, the default: fold
    constants and fuse steps at build, as onnxruntime does), ``enable_cpu_mem_arena`` (the
    default: freed memory stays in the process for the next tensors instead of going back to
    the OS; on glibc this is a setting of malloc, so it holds for the whole process),
    ``free_dimension_overrides`` (symbolic dim name -> size, filled by
    ``add_free_dimension_override_by_name``), ``intra_op_num_threads`` (N: the threads of the
    session's pool, which kernels split their work over, BLAS held to one thread per call
    meanwhile, through threadpoolctl when it is installed, its GEMMs parts of the pool's work;
    the pool's threads are numba's where its threading layer allows, else Python threads, N = 1
    included: numba's kernels on the calling thread; 0,
    the default: numba's threads on the machine's physical cores, or, without them, no pool:
    BLAS's own threads run the GEMMs and the rest runs on the calling thread, which measured
    faster than Python threads on 2 cores; see ``onyx/runtime/threads.py``) and
    ``execution_mode`` (``ExecutionMode.ORT_SEQUENTIAL``, the default: one step at a time;
    ``ORT_PARALLEL``: steps whose inputs are ready run at once, on ``inter_op_num_threads``
    threads, 0 for the machine's physical cores; see ``onyx/runtime/interop.py``; a profiled
    session runs one step at a time) and ``prepack_weights`` (the default: MatMul, Gemm and
    channel-last pointwise Conv keep a packed copy of their float32 weight for onyx's own
    GEMM, faster, at the cost of that copy's memory; False: BLAS reads the weights as they
    are, onnxruntime's ``session.disable_prepacking``).

    ``allocation_limit`` guards against tensors whose size comes from the *values* of inputs,
    which a bad or hostile input can make huge: the kernels that build a tensor from a shape
    or count they read (ConstantOfShape, Expand, Tile, Pad, Range, Resize-like upsampling,
    the random generators, ...) raise ``AllocationError`` naming the node before allocating
    more than this many bytes. Other allocations (a MatMul's output, intermediates that follow
    from the fed shapes) are not counted against it; the limit is per tensor, not a total.

    Every option is checked when set: an unknown name raises ``TypeError`` naming it, a value
    out of range (e.g. ``graph_optimization_level=5``; onnxruntime's levels 0, 1, 2, 3 and 99
    are accepted) raises ``OptionError``."""

    allocation_limit: int | None = None
    graph_optimization_level: int = 1
    enable_profiling: bool = False
    profile_file_prefix: str = "onyx_profile"
    log_severity_level: int = 2
    enable_cpu_mem_arena: bool = True
    free_dimension_overrides: dict[str, int] = dataclasses.field(default_factory=dict)
    intra_op_num_threads: int = 0
    inter_op_num_threads: int = 0
    execution_mode: int = 0
    prepack_weights: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        reject_unknown(self, name)
        object.__setattr__(self, name, check_session_option(name, value))

    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Fix the symbolic dim ``dim_name`` of the model's inputs to ``dim_value``.

        As in onnxruntime: get_inputs() (and get_outputs()) show the size in place of the
        symbol, a feed of another size is refused, a name no input uses changes nothing, and the
        first size given for a name is the one that holds."""
        if not isinstance(dim_name, str) or not dim_name:
            raise OptionError(
                f"free dimension override: expected the name of a symbolic dim, got {dim_name!r}"
            )
        if isinstance(dim_value, bool) or not isinstance(dim_value, int | np.integer):
            raise OptionError(
                f"free dimension override {dim_name!r}: expected an integer size, got {dim_value!r}"
            )
        if dim_value < 0:
            raise OptionError(
                f"free dimension override {dim_name!r}: expected a size >= 0, got {dim_value}"
            )
        self.free_dimension_overrides.setdefault(dim_name, int(dim_value))


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
        from onyx.serde import as_model

        started = time.perf_counter()
        self.model = as_model(model)  # also an onnx ModelProto
        torch_options = _torch_options(providers, kwargs.get("provider_options"))
        self.options = _session_options(sess_options, providers, kwargs)
        self._providers = ["CPUExecutionProvider"]
        if providers:
            unknown = [
                p
                for p in providers
                if (p[0] if isinstance(p, tuple) else p)
                not in ("CPUExecutionProvider", "TorchExecutionProvider")
            ]
            if len(unknown) == len(providers):
                from onyx.errors import UnsupportedError

                raise UnsupportedError(
                    f"providers {unknown} are not available; onyx has CPUExecutionProvider"
                )
        self._torch = None  # TorchExecutionProvider: the whole graph as one torch module
        if torch_options is not None:
            from onyx.pytorch.provider import TorchProvider

            self._torch = TorchProvider(self.model, torch_options)
            self._providers = [TorchProvider.name, "CPUExecutionProvider"]
        graph = self.model.graph
        opsets = dict(self.model.opset_imports)
        if not opsets:
            opsets = {"": 1}
        optimize = self.options.graph_optimization_level > 0
        if self.options.enable_cpu_mem_arena:
            memory.keep_freed_memory()
        # above level 0 the plan runs a copy rewritten by onyx.passes (weights folded); the
        # model as given stays in self.model, for runs whose feed overrides an initializer
        prepared = None
        if optimize and self._torch is None:
            from onyx.passes import optimize_for_session

            check_signatures(self.model)  # the passes trust attribute kinds and input counts
            # fused operators the model's opset predates run in the plan's own domain: the
            # plan is internal, and their kernels implement the standard operators' semantics
            prepared = optimize_for_session(self.model, SESSION_DOMAIN, session_ops())
            if prepared is not None:
                opsets = dict(prepared.opset_imports) or opsets
        functions = (self.model if prepared is None else prepared).functions
        self._context = Context(opsets, functions, optimize)
        self._plan = Plan(graph if prepared is None else prepared.graph, self._context)
        self._plan.bind_captures([])
        self._override_plan: Plan | None = None  # built when a feed overrides an initializer
        initialized = set(graph.initializers.values()) | set(graph.sparse_initializers.values())
        # Old exporters list every weight as an input (600 in densenet121): a run checks the
        # feed against the inputs without a value and the weights it overrides, not against
        # all (a pass over all, searching a list for each, took 3.3 ms a run, by timeit).
        self._feed_positions = [(i, v) for i, v in enumerate(graph.inputs) if v not in initialized]
        self._feeds = [v for _, v in self._feed_positions]
        # free dimension overrides: input name -> [(axis, symbol, size)] for the dims they fix
        self._dim_sizes = dict(self.options.free_dimension_overrides)
        self._fixed_dims = _fixed_dims(graph.inputs, self._dim_sizes)
        self._overridable = [v for v in graph.inputs if v in initialized]
        self._overridable_names = frozenset(v.name for v in self._overridable)
        self._input_defaults = [
            self._plan.template[self._plan.input_slots[i]] if v in initialized else None
            for i, v in enumerate(graph.inputs)
        ]
        self._input_index = {v.name: i for i, v in enumerate(graph.inputs)}
        self._output_index = {v.name: i for i, v in enumerate(graph.outputs)}
        self._plain_feeds = _plain_feeds(self._feed_positions, self._fixed_dims,
                                         self._overridable_names)  # fmt: skip
        self._profiler = (
            Profiler(self.options.profile_file_prefix, started, time.perf_counter())
            if self.options.enable_profiling
            else None
        )
        if self.options.log_severity_level <= 1:  # onnxruntime's scale: 0 verbose, 1 info, ...
            _log.info(
                "prepared %d steps from %d nodes (constants folded and steps fused: %d)",
                len(self._plan.steps), len(graph.nodes), len(graph.nodes) - len(self._plan.steps),
            )  # fmt: skip
        self._limit = self.options.allocation_limit or memory.default_limit()
        # the session's thread pool (onyx/runtime/threads.py), BLAS held to one thread in runs
        self._threads = threads.Threads(
            self.options.intra_op_num_threads, prepack_weights=self.options.prepack_weights
        )
        self._interop = None  # ORT_PARALLEL: the pool independent steps run on at once
        if self.options.execution_mode == ExecutionMode.ORT_PARALLEL:
            self._interop = interop.executor(self.options.inter_op_num_threads)

    # --- description -----------------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return [_node_arg(v, self._dim_sizes) for v in self._feeds]

    def get_overridable_initializers(self) -> list[NodeArg]:
        return [_node_arg(v, self._dim_sizes) for v in self._overridable]

    def get_outputs(self) -> list[NodeArg]:
        return [_node_arg(v, self._dim_sizes) for v in self.model.graph.outputs]

    def get_modelmeta(self) -> ModelMetadata:
        """The model's metadata, field by field as onnxruntime's ``get_modelmeta`` gives it
        (``version`` is 2**63 - 1 when the model does not set model_version, as there)."""
        m = self.model
        version = m.model_version if m.model_version or "model_version" in m.present else 2**63 - 1
        return ModelMetadata(m.producer_name, m.graph.name, m.domain, m.doc_string, m.graph.doc_string,
                             version, dict(m.metadata_props))  # fmt: skip

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_session_options(self) -> SessionOptions:
        return self.options

    # --- running -----------------------------------------------------------------------------
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: RunOptions | None = None, *,
            out: Mapping[str, np.ndarray] | Sequence[np.ndarray | None] | None = None) -> list:  # fmt: skip
        """Outputs named by ``output_names`` (all, in graph order, when None) for ``input_feed``.
        Several threads may run one session at once (``onyx.batch`` does).

        ``run_options`` (an ``onyx.RunOptions``, or any object with ``terminate`` and ``logid``,
        such as onnxruntime's) tags the run's log lines and can stop it between steps.

        ``out`` gives buffers of the caller's for outputs to be written into: a dict by output
        name, or a list in the order of ``output_names`` (None entries: no buffer). Each must
        be a writable array of exactly the output's shape and dtype (FeedError otherwise);
        the result is copied into it (once, where a plain run would hand over a new array)
        and the returned list holds the buffer itself. Outputs without a buffer come back as
        usual. Use it to keep results in memory you manage (preallocated, shared, pinned).
        """
        if (self._torch is not None and output_names is None and out is None
                and run_options is None and input_feed.__class__ is dict
                and self.options.log_severity_level > 1):  # fmt: skip
            # the provider's common call, kept short: on a module of half a millisecond each
            # microsecond here is 0.2% of the run (benchmarks/bench_torch.py)
            return self._torch.run(self._check_feeds(input_feed))
        positions = check_output_names(output_names, self._output_index)
        names = list(self._output_index) if positions is None else list(output_names)
        buffers = check_out(out, names) if out is not None else None
        if run_options is not None and not hasattr(run_options, "terminate"):
            raise TypeError(
                f"run_options must be an onyx.RunOptions, got {type(run_options).__name__}"
            )
        if not isinstance(input_feed, Mapping):
            raise FeedError(
                f"input_feed must be a dict of input name -> value, got {type(input_feed).__name__}"
            )
        started = time.perf_counter()
        inputs = self._check_feeds(input_feed)
        owned = self._torch is not None  # its outputs share memory with nothing kept
        if owned:  # torch keeps its own threads, limits and error state
            outputs = self._torch.run(inputs)
        else:
            outputs = self._run_plan(input_feed, inputs, run_options)
        selected = outputs if positions is None else [outputs[i] for i in positions]
        level = getattr(run_options, "log_severity_level", -1)
        if (self.options.log_severity_level if level == -1 else level) <= 1:
            tag = getattr(run_options, "logid", "")
            _log.info("run%s: %.3f ms", f" {tag!r}" if tag else "",
                      (time.perf_counter() - started) * 1e3)  # fmt: skip
        if owned and buffers is None:
            return list(selected)
        feeds = [a for v in inputs for a in (v if isinstance(v, list) else [v])]
        taken = [_root(a) for a in feeds if isinstance(a, np.ndarray)]
        if buffers is None:
            return [_to_api(v, taken) for v in selected]
        return [write_out(n, v, buffers[n]) if n in buffers else _to_api(v, taken)
                for n, v in zip(names, selected)]  # fmt: skip

    def _run_plan(self, feed: Mapping[str, Any], inputs: list, run_options) -> list:
        """The plan's outputs, run in the session's pool, under its limits and error state."""
        token = memory.LIMIT.set(self._limit)
        bufsize = np.getbufsize()
        if bufsize != _UFUNC_BUFFER:  # (set only where it differs: a few us a run)
            np.setbufsize(_UFUNC_BUFFER)
        try:
            # inf/NaN results are values here, as in onnxruntime
            with np.errstate(all="ignore"), self._threads():
                if self._profiler is None and self._interop is not None:
                    return interop.run(self._plan_for(feed), inputs, self._interop, run_options)
                if self._profiler is None:
                    return self._plan_for(feed).run(inputs, (), stop=run_options)
                start, steps = self._profiler.run_started()
                outputs = self._plan_for(feed).run(inputs, (), steps, stop=run_options)
                self._profiler.run_ended(start, steps)
                return outputs
        finally:
            if bufsize != _UFUNC_BUFFER:
                np.setbufsize(bufsize)
            memory.LIMIT.reset(token)

    def _plan_for(self, feed: Mapping[str, Any]) -> Plan:
        """The folded plan, or (when a feed overrides an initializer) one that folds none."""
        if self._overridable_names.isdisjoint(feed):
            return self._plan
        if self._override_plan is None:
            self._override_plan = Plan(self.model.graph, self._context, fold_overridable=False)
            self._override_plan.bind_captures([])
        return self._override_plan

    def _check_feeds(self, feed: Mapping[str, Any]) -> list:
        plain = self._plain_feeds
        if plain is not None and len(feed) == len(plain):
            # the common case, checked in one pass: each input an array of its declared type,
            # rank and static dims (anything else takes the general checks, which name it)
            inputs = self._input_defaults.copy()
            for name, i, dtype, rank, dims in plain:
                a = feed.get(name)
                if a.__class__ is not np.ndarray or a.dtype != dtype or a.ndim != rank:
                    break
                shape = a.shape
                if dims and any(shape[axis] != size for axis, size in dims):
                    break
                inputs[i] = a
            else:
                return inputs
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
        for name, fixed in self._fixed_dims.items():
            if name in feed:
                _check_fixed(name, inputs[self._input_index[name]], fixed)
        return inputs

    # --- profiling ---------------------------------------------------------------------------
    def end_profiling(self) -> str:
        """Write the profile as a Chrome trace and return its path (as onnxruntime does).

        Profiling stops here: a second call, or a session without ``enable_profiling``,
        writes nothing and returns "". Each file gets a new name (prefix, start time to the
        microsecond, process id), so sessions never overwrite each other's profiles."""
        if self._profiler is None:
            return ""
        profiler, self._profiler = self._profiler, None
        return profiler.write()

    def profile_by_op(self) -> dict[str, float]:
        """Total seconds spent per op type in the profiled runs so far ({} when not profiling)."""
        return {} if self._profiler is None else self._profiler.by_op()


def _torch_options(providers: Any, provider_options: Any) -> dict | None:
    """The options of TorchExecutionProvider when it comes first in ``providers``, else None."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers or ()]
    if not names or names[0] != "TorchExecutionProvider":
        return None
    first = providers[0]
    options = dict(first[1]) if isinstance(first, tuple) and len(first) > 1 else {}
    if isinstance(provider_options, list | tuple) and provider_options:
        options.update(provider_options[0])
    return options


def _session_options(
    options: SessionOptions | None, providers: Any, kwargs: dict
) -> SessionOptions:
    """The session's options: ``options`` (a copy, when keywords change fields of it).

    Keywords name SessionOptions fields, or ``provider_options`` (one dict per provider, as
    onnxruntime takes; the CPU provider has none to set); any other raises TypeError."""
    if options is not None and not isinstance(options, SessionOptions):
        raise TypeError(
            f"sess_options must be an onyx.SessionOptions, got {type(options).__name__}"
        )
    provider_options = kwargs.pop("provider_options", None)
    if provider_options is not None:
        if not isinstance(provider_options, list | tuple) or not all(
            isinstance(o, Mapping) for o in provider_options
        ):
            raise TypeError("provider_options must be a list of dicts, one per provider")
        if len(provider_options) != len(providers or ()):
            raise TypeError(
                f"provider_options has {len(provider_options)} entries for "
                f"{len(providers or ())} providers"
            )
    fields = SessionOptions.__dataclass_fields__
    unknown = sorted(k for k in kwargs if k not in fields)
    if unknown:
        raise TypeError(
            f"InferenceSession got unknown keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"it takes sess_options, providers, provider_options and the SessionOptions fields "
            f"{', '.join(sorted(fields))}"
        )
    options = options if options is not None else SessionOptions()
    return dataclasses.replace(options, **kwargs) if kwargs else options


def _type_str(t: Type | None) -> str:
    return "unknown type" if t is None else str(t)


def _node_arg(v: Value, sizes: Mapping[str, int]) -> NodeArg:
    shape = None
    if isinstance(v.type, TensorType) and v.type.shape is not None:
        shape = [sizes.get(d, d) if isinstance(d, str) else d for d in v.type.shape.dims]
    return NodeArg(v.name, shape, _type_str(v.type))


def _fixed_dims(
    inputs: Sequence[Value], sizes: Mapping[str, int]
) -> dict[str, list[tuple[int, str, int]]]:
    """For each tensor input with symbolic dims that ``sizes`` fixes: (axis, symbol, size)."""
    fixed = {}
    for v in inputs if sizes else ():
        if isinstance(v.type, TensorType) and v.type.shape is not None:
            dims = [(axis, d, sizes[d]) for axis, d in enumerate(v.type.shape.dims) if d in sizes]
            if dims:
                fixed[v.name] = dims
    return fixed


def _check_fixed(name: str, array: Any, fixed: list[tuple[int, str, int]]) -> None:
    """Refuse a fed array whose dims differ from the sizes the session fixed for its symbols."""
    shape = getattr(array, "shape", None)
    if shape is None:
        return
    for axis, symbol, size in fixed:
        if shape[axis] != size:
            raise FeedError(
                f"input {name!r}: dim {axis} ({symbol!r}) is fixed to {size} by the session's "
                f"free dimension override, got shape {list(shape)}"
            )


def _plain_feeds(positions: list, fixed: dict, overridable: frozenset) -> list | None:
    """(name, position, numpy dtype, rank, static dims) per fed input, where every fed input is
    a tensor of a known numeric type and shape and no free-dimension override or overridable
    initializer needs the general checks; else None."""
    if fixed or overridable:
        return None
    plain = []
    for i, v in positions:
        t = v.type
        if not isinstance(t, TensorType) or not t.dtype or t.shape is None:
            return None
        try:
            dtype = dtypes.to_numpy(t.dtype)
        except OnyxError:  # a type code no numpy dtype holds: the general checks report it
            return None
        if dtype.kind in "OV":  # strings convert, ml_dtypes kinds compare by more than ==
            return None
        dims = tuple((axis, d) for axis, d in enumerate(t.shape.dims) if isinstance(d, int))
        plain.append((v.name, i, dtype, len(t.shape.dims), dims))
    return plain


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


def _to_api(value: Any, taken: list | None = None) -> Any:
    """Outputs as the user gets them: arrays they own, in C order, never a view of a constant,
    of a feed or of another output. ``taken``: the memory (``_root``) of the feeds and of the
    outputs handed over so far, added to. A view of the run's own result (a Reshape's at the
    end of a model) is handed over as it is: copying it cost a pass over the output a run."""
    taken = [] if taken is None else taken
    if isinstance(value, list):
        return [_to_api(v, taken) for v in value]
    if isinstance(value, dict) or value is None:
        return value
    if not isinstance(value, np.ndarray):
        return np.asarray(value)
    root = _root(value)
    # (constants are read-only, and so are views of them; C order, as onnxruntime gives)
    flags = value.flags
    if not (flags.writeable and flags.c_contiguous and root.flags.owndata) or any(
        root is t for t in taken
    ):
        value = root = value.copy()  # (in C order)
    taken.append(root)
    return value


def _root(array: np.ndarray) -> np.ndarray:
    """The array whose memory ``array`` views (itself where it owns its data)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array
