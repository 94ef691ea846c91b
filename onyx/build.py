"""Concise construction of models from Python.

    b = GraphBuilder(opset=21)
    x = b.input("x", "float", ["N", 4])
    w = b.initializer("w", np.ones((4, 3), np.float32))
    y = b.op.Relu(b.op.MatMul(x, w))
    b.output(y, "y", "float", ["N", 3])
    model = b.model(producer_name="me")

``b.op.OpType(*inputs, **attributes)`` adds a node and returns its output Value (a tuple with
``outputs=n``); ``b.op("com.domain", "OpType", *inputs, ...)`` does the same in another domain.
Inputs may be Values, None (an omitted optional input), or numpy arrays and Python scalars, which
become initializers (Python floats as float32, ints as int64).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from onyx.dtypes import DataType, data_type
from onyx.errors import GraphError
from onyx.ir import Attribute, Graph, Model, Node, Tensor, Value, tensor_type
from onyx.ir.attribute import infer_attr_type
from onyx.ir.types import Dim, Type

#: The newest IR version each opset range needs (the standard's release table, abridged).
_IR_FOR_OPSET = ((21, 10), (23, 11), (25, 12))


class _Ops:
    """``b.op.Relu(x)`` for the default domain, ``b.op("com.x", "Op", x)`` for any other."""

    def __init__(self, builder: GraphBuilder):
        self._builder = builder

    def __getattr__(self, op_type: str):
        if op_type.startswith("_"):
            raise AttributeError(op_type)
        return lambda *inputs, **kwargs: self._builder.node(op_type, inputs, **kwargs)

    def __call__(self, domain: str, op_type: str, *inputs, **kwargs):
        return self._builder.node(op_type, inputs, domain=domain, **kwargs)


class GraphBuilder:
    """Builds one graph (and the model around it) node by node; names are made unique."""

    def __init__(self, opset: int = 21, *, name: str = "main", opsets: dict[str, int] | None = None,
                 ir_version: int | None = None):  # fmt: skip
        self.graph = Graph(name=name)
        self.opsets: dict[str, int] = {"": opset, **(opsets or {})}
        self.ir_version = ir_version
        self.op = _Ops(self)
        self._names: set[str] = set()
        self._counts: dict[str, int] = {}

    # --- names -----------------------------------------------------------------------------
    def unique_name(self, hint: str) -> str:
        """``hint`` if unused, else ``hint_1``, ``hint_2``, ..."""
        name, k = hint, self._counts.get(hint, 0)
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._counts[hint] = k
        self._names.add(name)
        return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise GraphError(f"value name {name!r} is already used in graph {self.graph.name!r}")
        self._names.add(name)
        return name

    # --- graph interface -------------------------------------------------------------------
    def input(self, name: str, dtype: DataType | int | str | None = None,
              shape: Iterable[Dim] | None = None, *, type: Type | None = None) -> Value:  # fmt: skip
        """A graph input of element type ``dtype`` (a name like 'float' or a code) and ``shape``."""
        value = Value(self._claim(name), _type(dtype, shape, type))
        self.graph.inputs.append(value)
        return value

    def initializer(
        self, name: str | None, array: Any, dtype: DataType | int | str | None = None
    ) -> Value:
        """A constant initializer holding ``array`` (auto-named when ``name`` is None)."""
        if isinstance(array, Tensor):
            tensor = array
        else:
            arr = _as_array(array)
            tensor = Tensor(arr, dtype=None if dtype is None else data_type(dtype))
        name = self._claim(name) if name else self.unique_name(tensor.name or "const")
        tensor.name = name
        value = Value(name, tensor_type(tensor.dtype, tensor.dims), const_value=tensor)
        return self.graph.add_initializer(value)

    def output(self, value: Value, name: str | None = None, dtype: DataType | int | str | None = None,
               shape: Iterable[Dim] | None = None, *, type: Type | None = None) -> Value:  # fmt: skip
        """Make ``value`` a graph output, renamed to ``name`` and typed when those are given."""
        if name and name != value.name:
            if value.producer is None or value in self.graph.outputs:
                value = self.node("Identity", (value,))  # inputs and initializers keep their names
            self._names.discard(value.name)
            value.name = self._claim(name)
        if dtype is not None or type is not None:
            value.type = _type(dtype, shape, type)
        self.graph.outputs.append(value)
        return value

    def node(self, op_type: str, inputs: Sequence[Any] = (), *, domain: str = "", outputs: int = 1,
             name: str | None = None, output_names: Sequence[str] | None = None,
             **attributes: Any) -> Value | tuple[Value, ...]:  # fmt: skip
        """Add a node; return its output (or a tuple of them when ``outputs`` != 1)."""
        if domain not in self.opsets and not (domain == "ai.onnx" and "" in self.opsets):
            self.opsets[domain] = 1
        ins = [self._input(v) for v in inputs]
        count = len(output_names) if output_names else outputs
        base = op_type.lower()
        outs = [Value(self._claim(output_names[i]) if output_names else self.unique_name(base))
                for i in range(count)]  # fmt: skip
        attrs = [Attribute(k, infer_attr_type(v), _attr_value(v)) for k, v in attributes.items()
                 if v is not None]  # fmt: skip
        node = Node(
            op_type,
            ins,
            outs,
            attrs,
            domain=domain,
            name=name or self.unique_name(f"{op_type}_node"),
        )
        self.graph.append(node)
        return outs[0] if count == 1 and not output_names else tuple(outs)

    def _input(self, value: Any) -> Value | None:
        if value is None or isinstance(value, Value):
            return value
        return self.initializer(None, value)

    # --- result ----------------------------------------------------------------------------
    def model(self, **fields: Any) -> Model:
        """The model: this graph, the opsets used, and any Model field given as keyword."""
        opset = self.opsets.get("", 1)
        ir = self.ir_version
        if ir is None:
            ir = next((ir for top, ir in _IR_FOR_OPSET if opset <= top), _IR_FOR_OPSET[-1][1])
        return Model(self.graph, ir_version=ir, opset_imports=dict(self.opsets), **fields)


def _type(dtype, shape, type: Type | None) -> Type | None:
    if type is not None:
        return type
    if dtype is None:
        return None
    return tensor_type(dtype, None if shape is None else list(shape))


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, float):
        return np.asarray(value, np.float32)
    if isinstance(value, int):
        return np.asarray(value, np.int64)
    if isinstance(value, list | tuple) and value and all(isinstance(v, float | int) for v in value):
        kind = np.float32 if any(isinstance(v, float) for v in value) else np.int64
        return np.asarray(value, kind)
    return np.asarray(value)


def _attr_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return Tensor(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
