"""``to_torch``: an onyx model becomes a ``torch.fx.GraphModule`` that computes the same outputs.

One pass over the graph in order. Each node's converter (onyx/pytorch/converters/<family>.py)
gets the node's inputs (``fx.Proxy`` for values known only at run time, ``torch.Tensor`` for values
known now, None for omitted ones) and its attributes parsed as the runtime parses them. Facts a
converter needs to choose what to emit (shapes, element types, constant values) come from
``onyx.infer_shapes`` through the context, never from a Proxy. Operations whose inputs are all
known run now (constant folding for free); what they produce becomes a literal or a buffer.
"""

from __future__ import annotations

import inspect
import keyword
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from onyx.custom import converter_hint, install_converters
from onyx.defs import find_schema
from onyx.dtypes import DataType
from onyx.errors import ExecutionError, OnyxError, UnsupportedError, ValidationError
from onyx.ir import AttrType, Graph, Model, Node, OptionalType, SequenceType, TensorType, Value
from onyx.pytorch import converters as _converters  # noqa: F401  (registers every family)
from onyx.pytorch import dtypes
from onyx.pytorch._torch import fx, torch
from onyx.pytorch.registry import CONVERTERS, NeedsValues
from onyx.runtime.plan import _LEGACY_ATTRIBUTES, _attribute_value, _check_signature, _label
from onyx.shapes import _Inference, clone_model

install_converters(CONVERTERS)  # custom operators' converters, registered before and after
_FLOATS = {torch.float16, torch.bfloat16, torch.float32, torch.float64}


class _Tracer(fx.Tracer):
    """Records torch calls on Proxies into ``graph``; known tensors used there become buffers."""

    def __init__(self, root: torch.nn.Module, graph: fx.Graph):
        super().__init__()
        self.root, self.graph = root, graph
        self.tensor_attrs: dict[torch.Tensor, str] = {}
        self.buffer_names: dict[int, str] = {}  # id(tensor) -> buffer holding it
        self._keep: list[torch.Tensor] = []  # keeps ids above unique

    def create_arg(self, a: Any):
        if isinstance(a, torch.Tensor) and not isinstance(a, torch.nn.Parameter):
            name = self.buffer_names.get(id(a))
            if name is None:
                name = _unique(self.root, "_const")
                self.root.register_buffer(name, a)
                self.buffer_names[id(a)] = name
                self._keep.append(a)
            return self.graph.get_attr(name)
        return super().create_arg(a)


class Context:
    """What a converter may ask about the values it handles: static facts, never run-time ones."""

    def __init__(self, tracer: _Tracer, model: Model, converter: Converter | None = None):
        self.tracer, self.model = tracer, model
        self.converter = converter  # for converters of subgraphs (control flow); None at run time
        self.path = "main"  # where the node being converted sits (for subgraph labels)
        self.bindings: dict[str, Any] = {}  # attribute values for ref_attr_name in functions
        self.opsets = {("" if d == "ai.onnx" else d): v for d, v in model.opset_imports.items()}
        self.values: dict[int, Value] = {}  # id(proxy or tensor) -> the onyx value it carries
        self.node: Node | None = None
        self.label = ""
        self.known: dict[Value, np.ndarray] = {}  # data propagation's values (with symbols)
        self.symbols: dict[str, tuple[Any, int]] = {}  # symbol -> (graph input, axis)
        self._sizes: dict[str, Any] = {}

    # --- facts about inputs ------------------------------------------------------------------
    @staticmethod
    def is_proxy(x: Any) -> bool:
        return isinstance(x, fx.Proxy)

    def value(self, x: Any) -> Value | None:
        return self.values.get(id(x))

    def shape(self, x: Any) -> tuple | None:
        """Dims of ``x`` (ints, symbols or None); where inference left even the rank open, the
        node runs as one step of the module (NeedsValues)."""
        if isinstance(x, torch.Tensor):
            return tuple(x.shape)
        v = self.value(x)
        t = v.type if v is not None else None
        if isinstance(t, TensorType) and t.shape is not None:
            return tuple(t.shape.dims)
        if v is not None and v.const_value is not None:  # an initializer no value_info types
            return tuple(v.const_value.shape)
        raise NeedsValues()  # inference left the rank open: the node runs as one step

    def static_shape(self, x: Any) -> tuple[int, ...] | None:
        """Dims of ``x`` when all are known now, else None."""
        s = self.shape(x)
        return s if s is not None and all(isinstance(d, int) for d in s) else None

    def rank(self, x: Any) -> int:
        s = self.shape(x)
        if s is None:
            raise UnsupportedError(f"{self.label}: the rank of an input is unknown after inference")
        return len(s)

    def onnx_dtype(self, x: Any) -> DataType | None:
        v = self.value(x)
        if v is not None and isinstance(v.type, TensorType):
            return v.type.dtype
        if v is not None and v.const_value is not None:
            return v.const_value.dtype
        return None

    def dtype(self, x: Any) -> torch.dtype:
        """The torch type ``x`` computes in."""
        if isinstance(x, torch.Tensor):
            return x.dtype
        t = self.onnx_dtype(x)
        if t is None:
            raise NeedsValues()
        return dtypes.compute(t, self.label)

    def const(self, x: Any) -> np.ndarray | None:
        """The values of ``x`` when known now (a numpy array), else None."""
        if isinstance(x, torch.Tensor) and not isinstance(x, torch.nn.Parameter):
            return dtypes.to_numpy(x)
        return None

    def ints(self, x: Any) -> list[int] | None:
        """The values of a known integer tensor as a list of Python ints, else None."""
        c = self.const(x)
        return None if c is None else [int(i) for i in c.reshape(-1)]

    def need(self, x: Any) -> list[int]:
        """``ints(x)``; when the values are known only at run time the node runs as one step."""
        c = self.ints(x)
        if c is None:
            raise NeedsValues()
        return c

    def need_const(self, x: Any) -> np.ndarray:
        """``const(x)``; when the values are known only at run time the node runs as one step."""
        c = self.const(x)
        if c is None:
            raise NeedsValues()
        return c

    def sizes(self, x: Any) -> list | None:
        """The values of a shape-like integer vector: ints, and for a symbolic dim of a graph
        input the Proxy of its size; None when not known now."""
        ints = self.ints(x)
        if ints is not None:
            return ints
        v = self.value(x)
        known = self.known.get(v) if v is not None else None
        if known is None:
            return None
        out = []
        for item in np.asarray(known).reshape(-1).tolist():
            if isinstance(item, int | np.integer):
                out.append(int(item))
            elif isinstance(item, str) and item in self.symbols:
                if item not in self._sizes:
                    source, axis = self.symbols[item]
                    self._sizes[item] = source.size(axis)
                out.append(self._sizes[item])
            else:
                return None
        return out

    # --- facts about outputs -----------------------------------------------------------------
    def out_dtype(self, i: int = 0) -> torch.dtype:
        v = self.node.outputs[i]
        if v is None or not isinstance(v.type, TensorType):
            raise UnsupportedError(f"{self.label}: the element type of output {i} is unknown")
        return dtypes.compute(v.type.dtype, self.label)

    def out_shape(self, i: int = 0) -> tuple | None:
        v = self.node.outputs[i]
        if v is not None and isinstance(v.type, TensorType) and v.type.shape is not None:
            return tuple(v.type.shape.dims)
        return None

    @property
    def n_outputs(self) -> int:
        return len(self.node.outputs)

    def opset(self, domain: str = "") -> int:
        return self.opsets.get("" if domain == "ai.onnx" else domain, 0)

    # --- building ----------------------------------------------------------------------------
    def call(self, fn: Callable, *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` now if every argument is known, else one node in the graph
        (the function runs as a whole when the module runs: for what torch can't trace)."""
        if not _has_proxy(args) and not _has_proxy(kwargs):
            return fn(*args, **kwargs)
        return self.tracer.create_proxy("call_function", fn, args, kwargs)

    def fail(self, message: str) -> UnsupportedError:
        return UnsupportedError(f"{self.label}: {message}")

    # --- subgraphs (If, Loop, Scan, FlexAttention's modifiers) -------------------------------
    def _owner(self) -> Converter:
        if self.converter is None:
            raise self.fail("subgraphs are converted before the module runs, not in a step")
        return self.converter

    def _sub_path(self, name: str) -> str:
        return f"{self.node.name or self.node.op_type}.{name}"

    def inline_graph(self, graph: Graph, name: str) -> list[Any]:
        """Convert ``graph`` (a subgraph without inputs, e.g. the branch an If takes when its
        condition is known now) into the module in place; its outputs."""
        owner = self._owner()
        node, label, opsets = self.node, self.label, self.opsets
        owner.bind_initializers(graph)
        owner.convert_graph(graph, self._sub_path(name), opsets, self.bindings)
        self.node, self.label, self.opsets = node, label, opsets
        return [owner.lookup(v, label) for v in graph.outputs]

    def graph_module(self, graph: Graph, name: str) -> tuple[fx.GraphModule, list[Any]]:
        """``graph`` as a module of its own, ``forward(*graph inputs, *captures) -> tuple``, and
        the captures to pass: the outer values it reads that are known only at run time (those
        known now fold into it)."""
        return self._owner().subgraph(graph, self._sub_path(name), self.opsets, self.bindings)

    def call_module(self, module: torch.nn.Module, name: str, *args) -> Any:
        """``module(*args)`` now when every argument is known and it holds no parameters, else
        a call of it (registered on the module being built) in the graph."""
        if not _has_proxy(args) and not any(True for _ in module.parameters()):
            return module(*args)
        root = self.tracer.root
        target = _unique(root, name)
        root.add_module(target, module)
        return self.tracer.create_proxy("call_module", target, args, {})


def _has_proxy(a: Any) -> bool:
    if isinstance(a, fx.Proxy):
        return True
    if isinstance(a, list | tuple):
        return any(_has_proxy(i) for i in a)
    if isinstance(a, dict):
        return any(_has_proxy(i) for i in a.values())
    return False


def _unique(root: torch.nn.Module, name: str) -> str:
    base = re.sub(r"\W", "_", name) or "_"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = "_" + base
    candidate, n = base, 0
    while hasattr(root, candidate) or candidate in root._parameters or candidate in root._buffers:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _load(model: str | os.PathLike | bytes | Model) -> Model:
    if isinstance(model, Model):
        return model
    from onyx.serde import load

    return load(model)


def _signature(fn: Callable) -> tuple[set[str], set[str], bool]:
    cached = getattr(fn, "_onyx_signature", None)
    if cached is None:
        params = inspect.signature(fn).parameters.values()
        names = {p.name for p in params if p.kind == p.KEYWORD_ONLY}
        required = {p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty}
        cached = (names, required, any(p.kind == p.VAR_KEYWORD for p in params))
        fn._onyx_signature = cached
    return cached


def _value_problem(v: Value | None) -> str | None:
    if v is None or v.type is None:
        return None
    t = v.type
    while isinstance(t, SequenceType | OptionalType):  # Python lists / None-or-value
        t = t.elem_type
    if t is None:
        return None
    if isinstance(t, TensorType):
        if t.dtype and not dtypes.supported(t.dtype):
            return f"{v.name!r} is {v.type}, which torch lacks"
        return None
    return f"{v.name!r} is {v.type}, not a tensor"


def free_values(graph: Graph) -> list[Value]:
    """The outer-scope values ``graph`` reads (its nested subgraphs' too), in order of use."""
    defined = set(graph.inputs) | set(graph.initializers.values())
    defined |= set(graph.sparse_initializers.values())
    for node in graph.nodes:
        defined.update(v for v in node.outputs if v is not None)
    free: dict[Value, None] = {}
    for node in graph.nodes:
        reads = [v for v in node.inputs if v is not None]
        for attr in node.attributes.values():
            if attr.type == AttrType.GRAPH and attr.value is not None:
                reads += free_values(attr.value)
        free.update((v, None) for v in reads if v not in defined)
    free.update((v, None) for v in graph.outputs if v not in defined)
    return list(free)


def unsupported_nodes(model: Model) -> list[str]:
    """One line for every node to_torch cannot convert (no converter, or a type torch lacks)."""
    problems = []
    opsets = {("" if d == "ai.onnx" else d): v for d, v in model.opset_imports.items()}

    def visit(graph: Graph, path: str, opsets: dict[str, int]):
        for v in graph.inputs + graph.outputs:
            problem = _value_problem(v)
            if problem and graph is model.graph:
                problems.append(f"graph {'input' if v in graph.inputs else 'output'} {problem}")
        for node in graph.nodes:
            label = _label(node, path)
            function = model.functions.get((node.domain, node.op_type, node.overload))
            if function is not None:
                inner = {**opsets, **function.opset_imports}
                visit(function.graph, f"{node.name or node.op_type}.{function.name}", inner)
            # a type torch lacks is the deeper reason: it is named before a missing converter
            problem = next(filter(None, map(_value_problem, [*node.inputs, *node.outputs])), None)
            if problem:
                problems.append(f"{label}: {problem}")
            elif function is None:
                opset = opsets.get("" if node.domain == "ai.onnx" else node.domain, 0)
                if CONVERTERS.lookup(node.domain, node.op_type, opset) is None:
                    where = f"{node.domain}." if node.domain else ""
                    hint = converter_hint(node.domain, node.op_type)
                    problems.append(
                        f"{label}: no converter for {where}{node.op_type}-{opset}{hint}"
                    )
                    continue
            for name, attr in node.attributes.items():
                if attr.type == AttrType.GRAPH and attr.value is not None:
                    visit(attr.value, f"{node.name or node.op_type}.{name}", opsets)

    visit(model.graph, "main", opsets)
    return problems


class Converter:
    """One conversion: the module being filled, its graph, and the value environment."""

    def __init__(self, model: Model):
        self.model = model
        self.root = torch.nn.Module()
        self.graph = fx.Graph()
        self.tracer = _Tracer(self.root, self.graph)
        self.cx = Context(self.tracer, model, self)
        self.env: dict[Value, Any] = {}
        self.names: dict[str, str] = {}  # onnx initializer / input name -> name in the module

    def bind(self, value: Value, x: Any) -> None:
        self.env[value] = x
        if x is not None:
            self.cx.values[id(x)] = value

    def inputs_and_weights(self) -> None:
        graph = self.model.graph
        for v in graph.inputs:
            if v.name in graph.initializers:
                continue
            name = _unique(self.root, v.name)
            self.names[v.name] = name
            self.root.__dict__.setdefault("_placeholder_names", set()).add(name)
            proxy = self.tracer.create_proxy("placeholder", name, (), {})
            t = v.type
            if isinstance(t, TensorType) and t.shape is not None:
                for axis, d in enumerate(t.shape.dims):
                    if isinstance(d, str):
                        self.cx.symbols.setdefault(d, (proxy, axis))
            if isinstance(t, TensorType) and t.dtype and dtypes.STORAGE[t.dtype] in dtypes.WIDER:
                proxy = proxy.to(dtypes.compute(t.dtype))
            self.bind(v, proxy)
        for v in list(graph.initializers.values()) + list(graph.sparse_initializers.values()):
            tensor = v.const_value
            array = tensor.to_dense() if hasattr(tensor, "to_dense") else tensor.numpy()
            data = dtypes.from_numpy(array)
            name = _unique(self.root, v.name)
            self.names[v.name] = name
            if data.dtype in _FLOATS:
                self.root.register_parameter(name, torch.nn.Parameter(data))
                self.bind(v, self.tracer.create_proxy("get_attr", name, (), {}))
            else:
                self.root.register_buffer(name, data)
                self.tracer.buffer_names[id(data)] = name
                self.tracer._keep.append(data)
                self.bind(v, data)

    def bind_initializers(self, graph: Graph) -> None:
        """A subgraph's own initializers, as values known now."""
        for v in list(graph.initializers.values()) + list(graph.sparse_initializers.values()):
            tensor = v.const_value
            array = tensor.to_dense() if hasattr(tensor, "to_dense") else tensor.numpy()
            self.bind(v, dtypes.from_numpy(array))

    def subgraph(self, graph: Graph, path: str, opsets: dict[str, int],
                 bindings: dict[str, Any]) -> tuple[fx.GraphModule, list[Any]]:  # fmt: skip
        """``graph`` converted by a converter of its own into a module taking the graph's inputs
        then the outer values it reads that are known only at run time (returned, in order, for
        the caller to pass); those known now become its constants. See Context.graph_module."""
        sub = Converter(self.model)
        sub.cx.known = self.cx.known

        def placeholder(v: Value):
            name = f"in{len(sub.graph.nodes)}_{re.sub(r'[^0-9A-Za-z_]', '_', v.name)}"
            return sub.tracer.create_proxy("placeholder", name, (), {})

        for v in graph.inputs:
            sub.bind(v, placeholder(v))
        captures = []
        for v in free_values(graph):
            x = self.lookup(v, f"{path} (reading {v.name!r} from an enclosing graph)")
            if _has_proxy(x):
                captures.append(x)
                x = placeholder(v)
            sub.bind(v, x)
        sub.bind_initializers(graph)
        sub.convert_graph(graph, path, opsets, bindings)
        outs = [sub.tracer.create_arg(sub.lookup(v, f"{path} output")) for v in graph.outputs]
        sub.graph.output(tuple(outs))
        return fx.GraphModule(sub.root, sub.graph, class_name="OnnxSubgraph"), captures

    def convert_graph(self, graph: Graph, path: str, opsets: dict[str, int],
                      bindings: dict[str, Any] | None = None) -> None:  # fmt: skip
        for node in graph.nodes:
            self.convert_node(node, path, opsets, bindings or {})

    def convert_node(self, node: Node, path: str, opsets: dict[str, int],
                     bindings: dict[str, Any]) -> None:  # fmt: skip
        label = _label(node, path)
        function = self.model.functions.get((node.domain, node.op_type, node.overload))
        if function is not None:
            return self.inline(node, function, path, opsets, bindings)
        opset = opsets.get("" if node.domain == "ai.onnx" else node.domain, 0)
        fn = CONVERTERS.lookup(node.domain, node.op_type, opset)
        if fn is None:
            raise UnsupportedError(f"{label}: no converter for {node.op_type} at opset {opset}")
        schema = find_schema(node.op_type, opset, node.domain)
        if schema is not None:
            _check_signature(node, schema, label)
        attrs = self.attributes(node, fn, label, bindings)
        args = [None if v is None else self.lookup(v, label) for v in node.inputs]
        cx = self.cx
        saved = cx.node, cx.label, cx.opsets, cx.path, cx.bindings
        cx.node, cx.label, cx.opsets, cx.path, cx.bindings = node, label, opsets, path, bindings
        try:
            try:
                result = fn(cx, *args, **attrs)
            except NeedsValues:
                result = self.run_time_step(fn, args, attrs)
        except OnyxError as e:
            raise type(e)(str(e) if str(e).startswith(label) else f"{label}: {e}") from e
        except Exception as e:
            raise ExecutionError(f"{label}: conversion failed: {type(e).__name__}: {e}") from e
        finally:
            cx.node, cx.label, cx.opsets, cx.path, cx.bindings = saved
        results = result if isinstance(result, tuple | list) else (result,)
        for v, r in zip(node.outputs, results):
            if v is None:
                continue
            if isinstance(r, torch.Tensor) and isinstance(v.type, TensorType) and v.type.dtype:
                want = dtypes.compute(v.type.dtype, label)
                if r.dtype != want:
                    r = r.to(want)
            self.bind(v, r)

    def run_time_step(self, fn: Callable, args: list, attrs: dict) -> Any:
        """The node as one call in the module: its converter runs on the real tensors then."""
        node, label, opsets = self.cx.node, self.cx.label, self.cx.opsets
        model = self.model

        def step(*xs):
            cx = Context(None, model)
            cx.node, cx.label, cx.opsets = node, label, opsets
            for x, v in zip(xs, node.inputs):
                if x is not None:
                    cx.values[id(x)] = v
            return fn(cx, *xs, **attrs)

        step.__name__ = f"onnx_{node.op_type.lower()}_step"
        out = self.tracer.create_proxy("call_function", step, tuple(args), {})
        n = len(node.outputs)
        return tuple(out[i] for i in range(n)) if n > 1 else out

    def lookup(self, v: Value, label: str) -> Any:
        try:
            return self.env[v]
        except KeyError:
            raise ValidationError(f"{label}: input {v.name!r} is not defined before it") from None

    def attributes(self, node: Node, fn: Callable, label: str, bindings: dict[str, Any]) -> dict:
        attrs: dict[str, Any] = {}
        for name, attr in node.attributes.items():
            if name in _LEGACY_ATTRIBUTES:
                continue
            if attr.is_ref:
                if attr.ref_attr_name in bindings:
                    attrs[name] = bindings[attr.ref_attr_name]
                continue
            if attr.type == AttrType.GRAPH:
                if attr.value is None:
                    raise ValidationError(f"{label}: graph attribute {name!r} has no graph")
                attrs[name] = attr.value
                continue
            attrs[name] = _attribute_value(attr.value)
        names, required, var_kw = _signature(fn)
        if "_outputs" in names:
            attrs["_outputs"] = len(node.outputs)
        if not var_kw:
            unknown = sorted(set(attrs) - names)
            if unknown:
                raise UnsupportedError(f"{label}: attribute(s) {', '.join(unknown)} not supported")
        missing = sorted(required - set(attrs))
        if missing:
            raise ValidationError(f"{label}: required attribute(s) {', '.join(missing)} missing")
        return attrs

    def inline(self, node: Node, function, path: str, opsets: dict[str, int],
               bindings: dict[str, Any]) -> None:  # fmt: skip
        """A call of a model-local function: its body converted in place."""
        values = {name: a.value for name, a in function.attribute_defaults.items()}
        for name, attr in node.attributes.items():
            values[name] = bindings.get(attr.ref_attr_name) if attr.is_ref else attr.value
        values = {k: _attribute_value(v) for k, v in values.items() if v is not None}
        body = function.graph
        label = _label(node, path)
        for formal, actual in zip(body.inputs, node.inputs):
            self.bind(formal, None if actual is None else self.lookup(actual, label))
        inner = {**opsets, **{("" if d == "ai.onnx" else d): v
                              for d, v in function.opset_imports.items()}}  # fmt: skip
        self.convert_graph(body, f"{node.name or node.op_type}.{function.name}", inner, values)
        for formal, actual in zip(body.outputs, node.outputs):
            if actual is not None:
                self.bind(actual, self.lookup(formal, label))

    def finish(self) -> fx.GraphModule:
        outs = []
        for v in self.model.graph.outputs:
            x = self.lookup(v, "graph output")
            if isinstance(v.type, TensorType) and v.type.dtype:
                store = dtypes.storage(v.type.dtype)
                if store in dtypes.WIDER:
                    x = self.cx.call(torch.Tensor.to, x, store)
            outs.append(self.tracer.create_arg(x))
        self.graph.output(tuple(outs))
        module = fx.GraphModule(self.root, self.graph, class_name="OnnxModule")
        module.onnx_names = {k: v for k, v in self.names.items() if _has_attr(module, v)}
        module.onnx_inputs = [v.name for v in self.model.graph.inputs
                              if v.name not in self.model.graph.initializers]  # fmt: skip
        module.onnx_outputs = [v.name for v in self.model.graph.outputs]
        return module


def _has_attr(module: torch.nn.Module, name: str) -> bool:
    return (
        name in module._parameters
        or name in module._buffers
        or name in (module.__dict__.get("_placeholder_names") or ())
    )


def to_torch(model: str | os.PathLike | bytes | Model) -> fx.GraphModule:
    """A ``torch.fx.GraphModule`` computing ``model``: ``forward(*inputs) -> tuple(outputs)``.

    ``model`` is a path, bytes or an ``onyx.ir.Model``. forward takes the graph's inputs that are
    not initializers, in order, and returns a tuple of the graph's outputs. Floating-point
    initializers become ``nn.Parameter`` (trainable), others buffers, both named after the
    initializer (made a Python identifier; ``module.onnx_names`` maps the original names).
    Dims the model leaves symbolic stay symbolic. Operators or types torch cannot express
    raise one ``UnsupportedError`` listing every such node.
    """
    model = _load(model)
    # infer_shapes, keeping what data propagation learned of small integer values (shapes,
    # possibly with symbols) for converters to read
    inferred = clone_model(model)
    inference = _Inference(inferred, False, True, [])
    inference.run()
    unsupported = unsupported_nodes(inferred)
    if unsupported:
        listing = "\n  ".join(unsupported)
        raise UnsupportedError(f"to_torch cannot convert {len(unsupported)} node(s):\n  {listing}")
    conv = Converter(inferred)
    conv.cx.known = inference.known
    conv.inputs_and_weights()
    conv.convert_graph(inferred.graph, "main", conv.cx.opsets)
    return conv.finish()


__all__ = ["Context", "free_values", "to_torch", "unsupported_nodes"]
