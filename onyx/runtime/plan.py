"""Prepare once, run many: a graph becomes a flat list of steps over numbered slots.

At build time each node gets its kernel (the newest version not above the model's opset), its
attributes parsed and checked against the kernel's signature, its input and output slots, and
the slots to free after it (values no later step needs). ``run`` is then a tight loop.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onyx.defs import find_schema
from onyx.errors import (
    AllocationError,
    ExecutionError,
    OnyxError,
    UnsupportedError,
    ValidationError,
)
from onyx.ir import AttrType, Function, Graph, Model, Node, SparseTensor, Tensor, Value
from onyx.runtime import kernels
from onyx.runtime.fusion import (
    chain_concats,
    fuse,
    fuse_squeeze_excites,
    gather_concats,
    mark_channels_last,
)
from onyx.runtime.kernels.registry import lookup
from onyx.runtime.profiler import PROFILING, shapes_of

# Operators whose result is not a function of their inputs alone: never folded at build time.
_NOT_FOLDABLE = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "Dropout",
})  # fmt: skip
_FOLD_LIMIT = 256 << 20
# Attributes of old operator versions that carry no meaning for inference.
_LEGACY_ATTRIBUTES = frozenset({"consumed_inputs"})


class Context:
    """What building a plan needs to know beyond the graph: opsets and model-local functions."""

    def __init__(self, opsets: dict[str, int], functions: dict[tuple[str, str, str], Function],
                 optimize: bool = True):  # fmt: skip
        self.opsets = {("" if d == "ai.onnx" else d): v for d, v in opsets.items()}
        self.functions = functions
        self.optimize = optimize  # constant folding and fusions at build time

    def opset(self, domain: str) -> int:
        return self.opsets.get("" if domain == "ai.onnx" else domain, 0)


class Step:
    __slots__ = ("fn", "frees", "inputs", "label", "node", "outputs")

    def __init__(self, fn, inputs, outputs, frees, node, label):
        self.fn, self.inputs, self.outputs, self.frees = fn, inputs, outputs, frees
        self.node, self.label = node, label


class Plan:
    """A graph prepared for execution. ``captures`` lists outer-scope values it reads."""

    def __init__(self, graph: Graph, context: Context, path: str = "main",
                 bindings: dict[str, Any] | None = None, *, fold_overridable: bool = True):  # fmt: skip
        self.graph, self.context, self.path = graph, context, path
        self.bindings = bindings or {}  # attribute values for ref_attr_name inside functions
        slots: dict[Value, int] = {}
        self.template: list[Any] = []

        def slot(value: Value) -> int:
            if value not in slots:
                slots[value] = len(self.template)
                self.template.append(None)
            return slots[value]

        self.input_slots = [slot(v) for v in graph.inputs]
        for value in list(graph.initializers.values()) + list(graph.sparse_initializers.values()):
            self.template[slot(value)] = _constant(value.const_value)
        self.captures: list[Value] = []
        defined = (
            set(graph.inputs)
            | set(graph.initializers.values())
            | set(graph.sparse_initializers.values())
        )
        nodes = _in_order(graph)
        for node in nodes:
            defined.update(v for v in node.outputs if v is not None)
        # a multi-output kernel is asked for its outputs up to the last one something reads
        # (not Dropout's mask nobody reads: squeezenet's, 86K ones made every run)
        self._used = _read_values(graph) | set(graph.outputs)

        def read(value: Value) -> int:
            if value not in defined and value not in slots:
                self.captures.append(value)
            return slot(value)

        # Initializers that are also graph inputs may be overridden by a feed; with
        # fold_overridable they are folded like constants (the session keeps a second plan for
        # runs that do override them).
        initializer_slots = {slots[v] for v in graph.initializers.values()}
        fed = {s for s in self.input_slots if not (fold_overridable and s in initializer_slots)}
        steps: list[tuple[Node, Callable, list[int], list[int]]] = []
        for node in nodes:
            fn, captured = self._prepare(node)
            ins = [-1 if v is None else read(v) for v in node.inputs]
            ins += [read(v) for v in captured]
            outs = [slot(v) if v is not None else slot(Value()) for v in node.outputs]
            if self.context.optimize and not captured and self._fold(node, fn, ins, outs, fed):
                continue
            steps.append((node, fn, ins, outs))
        self.output_slots = [read(v) for v in graph.outputs]
        self.capture_slots = [slots[v] for v in self.captures]
        if self.context.optimize:
            steps = fuse_squeeze_excites(steps, self.template, fed, self.output_slots)
            steps = chain_concats(steps, self.output_slots)
            steps = fuse(steps, self.template, fed, self.output_slots)
            steps = gather_concats(steps, self.output_slots, lambda node: _label(node, path))
            mark_channels_last(steps, self.template, self.output_slots)

        # free each slot right after its last reader; keep outputs and constants
        keep = set(self.output_slots) | {i for i, v in enumerate(self.template) if v is not None}
        last: dict[int, int] = {}
        for index, (_, _, ins, outs) in enumerate(steps):
            for s in list(ins) + list(outs):
                if s >= 0:
                    last[s] = index
        frees: list[list[int]] = [[] for _ in steps]
        for s, index in last.items():
            if s not in keep:
                frees[index].append(s)
        self.steps = [
            Step(fn, tuple(ins), tuple(outs), tuple(frees[i]), node, _label(node, path))
            for i, (node, fn, ins, outs) in enumerate(steps)
        ]
        self._fast: Callable | None = None  # the run loop as generated code, at the first run

    # --- build ---------------------------------------------------------------------------
    def _prepare(self, node: Node) -> tuple[Callable, list[Value]]:
        """The callable for one node and the outer values its subgraphs capture."""
        label = _label(node, self.path)
        function = self.context.functions.get((node.domain, node.op_type, node.overload))
        if function is not None:
            return self._function_call(node, function, label), []
        opset = self.context.opset(node.domain)
        impl = lookup(node.domain, node.op_type, opset)
        if impl is None:
            where = f"domain {node.domain!r} " if node.domain else ""
            raise UnsupportedError(
                f"{label}: onyx has no kernel for {where}operator {node.op_type!r} at opset {opset}"
            )
        schema = find_schema(node.op_type, opset, node.domain)
        if schema is not None:
            _check_signature(node, schema, label)
        attrs: dict[str, Any] = {}
        captured: list[Value] = []
        subplans: dict[str, Any] = {}
        for name, attr in node.attributes.items():
            if name in _LEGACY_ATTRIBUTES:
                continue
            if attr.is_ref:
                if attr.ref_attr_name not in self.bindings:
                    continue  # not given at the call site and no default: the kernel's default applies
                attrs[name] = self.bindings[attr.ref_attr_name]
                continue
            if attr.type == AttrType.GRAPH:
                if attr.value is None:
                    raise ValidationError(f"{label}: graph attribute {name!r} has no graph")
                sub = Plan(attr.value, self.context, _subpath(self.path, node, name), self.bindings)
                subplans[name] = sub
                captured += [v for v in sub.captures if v not in captured]
                continue
            attrs[name] = _attribute_value(attr.value)
        for sub in subplans.values():
            sub.bind_captures(captured)
        attrs.update(subplans)
        if getattr(impl, "wants_subgraph_runner", False):
            attrs["_n_inputs"] = len(node.inputs)
        if getattr(impl, "wants_graph", False):  # e.g. Gradient differentiates its own graph
            attrs["_graph"] = self.graph
        used = [i for i, v in enumerate(node.outputs) if v is not None and v in self._used]
        return _bind(impl, attrs, node, label, used[-1] + 1 if used else 1), captured

    def _fold(
        self, node: Node, fn: Callable, ins: list[int], outs: list[int], fed: set[int]
    ) -> bool:
        """Constant folding: run a node whose inputs are all constants once, now, and keep its
        outputs as constants (as onnxruntime does; exporters often compute weights in-graph)."""
        if node.op_type in _NOT_FOLDABLE or any(
            i >= 0 and (i in fed or self.template[i] is None) for i in ins
        ):
            return False
        try:
            with np.errstate(all="ignore"):  # as at run time: inf/NaN results are values
                result = fn(*[self.template[i] if i >= 0 else None for i in ins])
        except Exception:
            return False  # leave the failure to run time, where it is reported with its node
        results = result if type(result) is tuple else (result,)
        if not all(isinstance(r, np.ndarray | np.generic) for r in results):
            return False
        if sum(r.nbytes for r in results) > _FOLD_LIMIT:
            return False
        for s, r in zip(outs, results):
            self.template[s] = _frozen(np.asarray(r))
        return True

    def bind_captures(self, order: list[Value]) -> None:
        """Say where each captured value sits in the list the owner passes to ``run``."""
        self.capture_positions = [order.index(v) for v in self.captures]

    def _function_call(self, node: Node, function: Function, label: str) -> Callable:
        bindings = {name: attr.value for name, attr in function.attribute_defaults.items()}
        for name, attr in node.attributes.items():
            bindings[name] = attr.value
        bindings = {k: _attribute_value(v) for k, v in bindings.items()}
        context = Context({**self.context.opsets, **function.opset_imports}, self.context.functions)
        body = Plan(function.graph, context, _subpath(self.path, node, function.name), bindings)
        body.bind_captures([])

        def call(*inputs):
            return tuple(body.run(list(inputs), ()))

        return call

    # --- run -----------------------------------------------------------------------------
    def run(
        self,
        inputs: Sequence[Any],
        captures: Sequence[Any] = (),
        profile: list | None = None,
        stop: Any = None,
    ) -> list:
        """Run the steps; ``stop`` (a RunOptions) ends the run before the next step once its
        ``terminate`` is set."""
        if profile is None and self.path != "main":
            profile = PROFILING.sink  # a profiled run is in progress: this subgraph's steps too
        if profile is None and stop is None:
            fast = self._fast or self._compile()
            if len(inputs) != len(self.input_slots):
                given = list(inputs)[: len(self.input_slots)]
                inputs = given + [self.template[s] for s in self.input_slots[len(given) :]]
            try:
                return fast(inputs, captures)
            except Exception as e:
                placed = self._placed(e)
                if placed is e:
                    raise
                raise placed from e
        if profile is not None and PROFILING.sink is not profile:
            outer, PROFILING.sink = PROFILING.sink, profile  # subgraphs run now add to it
            try:
                return self.run(inputs, captures, profile, stop)
            finally:
                PROFILING.sink = outer
        regs = self.template.copy()
        for s, v in zip(self.input_slots, inputs):
            regs[s] = v
        if self.capture_slots:
            for s, i in zip(self.capture_slots, self.capture_positions):
                regs[s] = captures[i]
        for step in self.steps:
            if stop is not None and stop.terminate:
                raise ExecutionError(f"run terminated by RunOptions before {step.label}")
            args = [regs[i] if i >= 0 else None for i in step.inputs]
            try:
                if profile is None:
                    result = step.fn(*args)
                else:
                    start = time.perf_counter()
                    result = step.fn(*args)
                    end = time.perf_counter()
                    profile.append((step, start, end, shapes_of(args), self.path))
            except Exception as e:
                placed = _placed(e, step.label)
                if placed is e:
                    raise
                raise placed from e
            if type(result) is tuple:
                for s, r in zip(step.outputs, result):
                    regs[s] = r
            else:
                regs[step.outputs[0]] = result
            for s in step.frees:
                regs[s] = None
        return [regs[s] for s in self.output_slots]

    # --- the run loop, compiled ------------------------------------------------------------
    def _compile(self) -> Callable:
        """The steps as one straight-line Python function over local variables.

        A loop over step objects spends most of a tiny step's time on itself (building the
        argument list, indexing the slot list, storing, freeing): about 0.5 us a step. The
        generated function calls each step's kernel with its arguments by name, stores the
        result in a local and drops each local after its last reader; a failure is placed
        afterwards, from the line it was raised on (``_placed``)."""
        names = {s: f"c{s}" for s, v in enumerate(self.template) if v is not None}
        namespace: dict[str, Any] = {"_spread": _spread, "_tuple": tuple}
        for s, name in names.items():
            namespace[name] = self.template[s]
        assigned: set[int] = set()

        def ref(s: int) -> str:
            if s < 0:
                return "None"
            if s in assigned:
                return f"v{s}"
            return names.get(s, "None")  # a constant, or a value nothing produces

        lines = ["def run(inputs, captures):"]
        targets = [f"v{s}" for s in self.input_slots]
        if targets:
            lines.append(f" {', '.join(targets)}, = inputs")
            assigned.update(self.input_slots)
        for s, i in zip(self.capture_slots, getattr(self, "capture_positions", ())):
            lines.append(f" v{s} = captures[{i}]")
            assigned.add(s)
        self._lines = {}  # line number -> step
        for index, step in enumerate(self.steps):
            fn = f"f{index}"
            namespace[fn] = step.fn
            call = f"{fn}({', '.join(ref(s) for s in step.inputs)})"
            self._lines[len(lines) + 1] = step
            assigned.update(step.outputs)
            if not step.outputs:
                lines.append(f" {call}")
            elif len(step.outputs) == 1:
                out = f"v{step.outputs[0]}"
                lines.append(f" {out} = {call}")
                lines.append(f" if {out}.__class__ is _tuple: {out} = {out}[0]")
            else:
                outs = ", ".join(f"v{s}" for s in step.outputs)
                lines.append(f" {outs}, = _spread({call}, {len(step.outputs)})")
            if step.frees:
                lines.append(f" {' = '.join(f'v{s}' for s in step.frees)} = None")
        lines.append(f" return [{', '.join(ref(s) for s in self.output_slots)}]")
        code = compile("\n".join(lines), f"<onyx plan {self.path}>", "exec")
        exec(code, namespace)  # noqa: S102 - code written here from the plan's own steps
        self._fast = namespace["run"]
        return self._fast

    def _placed(self, e: Exception) -> Exception:
        """``e`` from the compiled run loop as the step loop raises it: naming the step."""
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code is not self._fast.__code__:
            tb = tb.tb_next
        step = None
        if tb is not None:
            step = self._lines.get(tb.tb_lineno) or self._lines.get(tb.tb_lineno - 1)
        if step is None:  # not raised by a step (a short feed, say): as it is
            return e
        return _placed(e, step.label)


def _in_order(graph: Graph) -> list[Node]:
    """The graph's nodes in an order that runs each after the producers of its inputs: the stored
    order where it is one (the standard asks for that), else sorted (as onnxruntime does)."""
    produced = {v for node in graph.nodes for v in node.outputs if v is not None}
    for node in graph.nodes:
        if any(v in produced for v in node.inputs):
            break  # read before it is produced
        produced.difference_update(node.outputs)
    else:
        return graph.nodes
    saved = list(graph.nodes)
    try:
        graph.sort()  # GraphError on a cycle
        return list(graph.nodes)
    finally:
        graph.nodes[:] = saved


_VALUED = (AttrType.TENSOR, AttrType.GRAPH, AttrType.SPARSE_TENSOR, AttrType.TYPE_PROTO)


def check_signatures(model: Model) -> None:
    """Raise ValidationError at the first node, in any graph of ``model``, that breaks what its
    kernel may take for granted (``_check_signature``). The session calls it before the
    build-time passes, which read attributes and inputs as the schemas define them."""
    opsets = {("" if d == "ai.onnx" else d): v for d, v in model.opset_imports.items()} or {"": 1}
    for node in model.graph.all_nodes():
        if (node.domain, node.op_type, node.overload) in model.functions:
            continue
        domain = "" if node.domain == "ai.onnx" else node.domain
        schema = find_schema(node.op_type, opsets.get(domain, 0), domain)
        if schema is not None:
            graph = node.graph
            path = "main" if graph is None or graph is model.graph else graph.path()
            _check_signature(node, schema, _label(node, path))


def _check_signature(node: Node, schema, label: str) -> None:
    """Raise ValidationError where a node breaks what its kernel may take for granted: attributes
    of the schema's kinds, with a value, the required inputs given, as many inputs and outputs
    as the operator allows."""
    for name, attr in node.attributes.items():
        spec = schema.attributes.get(name)
        if spec is None or attr.is_ref:
            continue
        if attr.type != spec.type:
            raise ValidationError(
                f"{label}: attribute {name!r} must be {spec.type.name}, got {attr.type.name}"
            )
        if attr.type in _VALUED and attr.value is None:
            raise ValidationError(f"{label}: attribute {name!r} ({attr.type.name}) has no value")
    n = len(node.inputs)
    for i, param in enumerate(schema.inputs):
        if param.option == "single" and (i >= n or node.inputs[i] is None):
            raise ValidationError(f"{label}: required input {i} ({param.name!r}) is missing")
    if n > schema.max_input:
        raise ValidationError(f"{label}: {n} inputs, the operator takes at most {schema.max_input}")
    if not schema.min_output <= len(node.outputs) <= schema.max_output:
        raise ValidationError(
            f"{label}: {len(node.outputs)} outputs, the operator has {schema.min_output} to "
            f"{schema.max_output}"
        )


def _spread(result: Any, n: int) -> tuple:
    """A multi-output step's result as ``n`` values (missing trailing outputs: None)."""
    if type(result) is not tuple:
        return (result,) + (None,) * (n - 1)
    if len(result) == n:
        return result
    return tuple(result[:n]) + (None,) * (n - len(result))


def _placed(e: Exception, label: str) -> Exception:
    """The error a failure inside step ``label`` is reported as (``e`` itself: as it is)."""
    if isinstance(e, AllocationError):
        if str(e).startswith("node "):  # already placed by a subgraph's own plan
            return e
        return AllocationError(f"{label}: {e}")
    if isinstance(e, ExecutionError):
        return e
    if isinstance(e, MemoryError):
        return AllocationError(f"{label}: out of memory: {e}")
    return ExecutionError(f"{label} failed: {_describe(e)}")


def _describe(e: Exception) -> str:
    if isinstance(e, OnyxError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def _label(node: Node, path: str) -> str:
    name = f"{node.name!r} " if node.name else ""
    where = f" in {path}" if path != "main" else ""
    return f"node {name}({node.op_type}){where}"


def _subpath(path: str, node: Node, part: str) -> str:
    """Where a subgraph sits, readable when nested: ``If_1.then_branch > If_4.else_branch``."""
    here = f"{node.name or node.op_type}.{part}"
    return here if path == "main" else f"{path} > {here}"


def _constant(value: Tensor | SparseTensor):
    if isinstance(value, SparseTensor):
        return value.to_dense()
    array = value.numpy()
    # raw_data inside a protobuf file often starts at an odd offset: numpy and BLAS would copy
    # such an unaligned view on every use, so copy it once here instead.
    return _frozen(array if array.flags.aligned else array.copy())


def _frozen(array):
    """A read-only view: constants are shared by every run and must not be changed by anyone."""
    if not isinstance(array, np.ndarray):
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def _attribute_value(value) -> Any:
    """An attribute's value as kernels take it: tensors as numpy arrays (sparse ones densified)."""
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, SparseTensor):
        return value.to_dense()
    if isinstance(value, list) and value and isinstance(value[0], Tensor | SparseTensor):
        return [_attribute_value(v) for v in value]
    return value


@functools.cache
def _signature(impl) -> tuple[set[str], set[str], bool]:
    """(accepted keyword names, required keyword names, takes **kwargs) of a kernel."""
    target = impl.__init__ if isinstance(impl, type) else impl
    params = inspect.signature(target).parameters.values()
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    required = {p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty}
    return names, required, any(p.kind == p.VAR_KEYWORD for p in params)


def _read_values(graph: Graph) -> set[Value]:
    """The values the nodes of ``graph`` and of its subgraphs read."""
    read: set[Value] = set()
    for node in graph:
        read.update(v for v in node.inputs if v is not None)
        for attr in node.attributes.values():
            if attr.type == AttrType.GRAPH and attr.value is not None:
                read |= _read_values(attr.value) | set(attr.value.outputs)
            elif attr.type == AttrType.GRAPHS and attr.value:
                for sub in attr.value:
                    read |= _read_values(sub) | set(sub.outputs)
    return read


def _bind(impl, attrs: dict[str, Any], node: Node, label: str, outputs: int) -> Callable:
    """The kernel ``impl`` bound to ``attrs``; one that takes ``_outputs`` is told to compute
    ``outputs`` of them."""
    names, required, var_kw = _signature(impl)
    if "_outputs" in names:
        attrs["_outputs"] = outputs
    if not var_kw:
        unknown = sorted(set(attrs) - names)
        if unknown:
            raise UnsupportedError(f"{label}: attribute(s) {', '.join(unknown)} not supported")
    missing = sorted(required - set(attrs))
    if missing:
        raise ValidationError(f"{label}: required attribute(s) {', '.join(missing)} missing")
    try:
        return (
            impl(**attrs)
            if isinstance(impl, type)
            else functools.partial(impl, **attrs)
            if attrs
            else impl
        )
    except OnyxError as e:
        raise type(e)(f"{label}: {e}") from e
    except Exception as e:
        raise ValidationError(f"{label}: invalid attributes: {_describe(e)}") from e


__all__ = ["Context", "Plan", "kernels"]
