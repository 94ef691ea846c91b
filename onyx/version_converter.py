"""Convert a model between versions of the ai.onnx opset, one version step at a time.

    m12 = onyx.convert_version(model, 12)

Each step (opset v -> v+1 or v -> v-1) visits every node of the default domain (subgraphs and
model-local functions included). When the step selects another schema of the node's operator,
the adapter registered for (op_type, from since_version, to since_version) rewrites the node --
attributes into inputs and back, inserted helper nodes, renamed operators -- and a generic pass
then moves what stayed the same: it drops attributes the target no longer has (when they hold
their default), writes out defaults that changed, and checks arity, required attributes and the
declared element types against the target schema. What the target cannot express raises
``onyx.UnsupportedError`` naming the node, the operator and both versions.

Constants an adapter needs (an axes list, a roi placeholder) become initializers of the main
graph, or Constant nodes inside subgraphs and functions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterator

import numpy as np

from onyx import defs
from onyx.checker import type_string
from onyx.dtypes import DataType, from_numpy, to_numpy
from onyx.errors import OnyxError, UnsupportedError
from onyx.ir import Attribute, AttrType, Graph, Model, Node, Tensor, TensorType, Value, tensor_type

_IR_TABLE = os.path.join(os.path.dirname(__file__), "defs", "opset_ir.json")
_FLT_MAX = 3.4028234663852886e38


@functools.cache
def _min_ir() -> dict[int, int]:
    with open(_IR_TABLE) as f:
        return {int(k): v for k, v in json.load(f)["ai.onnx"].items()}


def min_ir_version(opset: int) -> int:
    """The lowest IR version a model importing ai.onnx ``opset`` must declare."""
    table = _min_ir()
    return table.get(opset, max(table.values()))


# --- the public entry ----------------------------------------------------------------------
def convert_version(model: Model, target_opset: int) -> Model:
    """A copy of ``model`` with its ai.onnx operators rewritten for opset ``target_opset``.

    ``model`` may also be a path, bytes or a file object (anything ``onyx.load`` reads)."""
    from onyx.serde import as_model

    model = as_model(model)
    first, last = defs.opset_range("") or (1, 28)
    if not isinstance(target_opset, int) or not first <= target_opset <= last:
        raise UnsupportedError(
            f"target opset {target_opset!r} is outside the standard's ai.onnx versions "
            f"{first}..{last}"
        )
    source = model.opset("")
    if source is None:
        raise UnsupportedError("the model imports no ai.onnx opset; nothing to convert from")
    original, model = model, _clone_model(model)
    conv = _Converter(model)
    conv.original = original
    conv.run(model.graph, source, target_opset, in_function=False)
    for fn in model.functions.values():
        version = fn.opset_imports.get("", fn.opset_imports.get("ai.onnx"))
        if version is not None:
            conv.run(fn.graph, version, target_opset, in_function=True)
            fn.opset_imports.pop("ai.onnx", None)
            fn.opset_imports[""] = target_opset
    model.opset_imports.pop("ai.onnx", None)
    model.opset_imports[""] = target_opset
    model.ir_version = max(model.ir_version, min_ir_version(target_opset))
    return model


# --- adapters --------------------------------------------------------------------------------
Adapter = Callable[[Node, "_Step"], Node]
#: (op_type, from since_version, to since_version) -> adapter.
ADAPTERS: dict[tuple[str, int, int], Adapter] = {}


def adapter(ops: str | tuple[str, ...], *steps: tuple[int, int]):
    """Register the decorated function for each (from, to) schema version pair of each op."""
    names = (ops,) if isinstance(ops, str) else ops

    def register(fn: Adapter) -> Adapter:
        for op in names:
            for a, b in steps:
                ADAPTERS[(op, a, b)] = fn
        return fn

    return register


class _Step:
    """One node's move from opset ``src`` to ``dst``, with the helpers adapters share."""

    def __init__(self, conv: _Converter, node: Node, src: int, dst: int, in_function: bool):
        self.conv, self.node, self.src, self.dst = conv, node, src, dst
        self.in_function = in_function
        self.label = _label(node)

    @property
    def up(self) -> bool:
        return self.dst > self.src

    def fail(self, why: str) -> UnsupportedError:
        return UnsupportedError(
            f"{self.label}: cannot convert {self.node.op_type} from opset {self.src} to "
            f"{self.dst}: {why}"
        )

    # --- reading -----------------------------------------------------------------------------
    def attr(self, node: Node, name: str, default=None):
        a = node.attributes.get(name)
        if a is None:
            return default
        if a.is_ref:
            raise self.fail(f"attribute {name!r} refers to function attribute {a.ref_attr_name!r}")
        return a.value

    def const(self, value: Value | None) -> np.ndarray | None:
        """The constant data of ``value`` (an initializer or a Constant's output), else None."""
        if value is None:
            return None
        if value.const_value is not None and id(value) not in self.conv.graph_inputs:
            return np.asarray(value.const_value.numpy())
        node = value.producer
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        for name, a in node.attributes.items():
            if a.is_ref:
                return None
            if name == "value":
                v = a.value
                return np.asarray(v.numpy() if isinstance(v, Tensor) else v)
            if name in ("value_int", "value_ints"):
                return np.asarray(a.value, np.int64)
            if name in ("value_float", "value_floats"):
                return np.asarray(a.value, np.float32)
        return None

    def need_const(self, value: Value, what: str) -> np.ndarray:
        data = self.const(value)
        if data is None:
            raise self.fail(
                f"its {what} input {value.name!r} is not a constant, and opset {self.dst} takes "
                f"{what} as an attribute"
            )
        return data

    def shape(self, value: Value | None) -> tuple | None:
        t = None if value is None else value.type
        if isinstance(t, TensorType) and t.shape is not None:
            return tuple(t.shape.dims)
        t = None if value is None else self.conv.inferred(value.name)  # not declared
        if t is not None and t.shape is not None:
            return tuple(t.shape.dims)
        return None

    def rank(self, value: Value | None) -> int | None:
        s = self.shape(value)
        return None if s is None else len(s)

    def dtype(self, value: Value | None, what: str = "") -> DataType:
        t = None if value is None else value.type
        if isinstance(t, TensorType) and t.dtype != DataType.UNDEFINED:
            return t.dtype
        inferred = None if value is None else self.conv.inferred(value.name)
        if inferred is not None:  # not declared, but inference knows it
            return inferred.dtype
        raise self.fail(f"the element type of {what or 'an input'} is not declared")

    # --- writing -----------------------------------------------------------------------------
    def constant(self, data, dtype: DataType | None = None, base: str = "const") -> Value:
        """A new constant value holding ``data``, placed where the current node can read it."""
        arr = np.asarray(data, dtype=None if dtype is None else to_numpy(dtype))
        dt = dtype if dtype is not None else from_numpy(arr.dtype)
        name = self.conv.fresh(f"{self.node.name or self.node.op_type}_{base}")
        graph = self.node.graph
        vtype = tensor_type(dt, arr.shape)
        if graph is self.conv.model.graph and not self.in_function and self.conv.ir_ok:
            return graph.add_initializer(
                Value(name, vtype, const_value=Tensor(arr, name, dtype=dt))
            )
        out = Value(name, vtype)
        value = Attribute("value", AttrType.TENSOR, Tensor(arr, name, dtype=dt))
        graph.insert_before(self.node, Node("Constant", [], [out], [value]))
        return out

    def helper(self, op_type: str, inputs, n_outputs: int = 1, attrs=None,
               before: bool = True, types=None) -> list[Value]:  # fmt: skip
        """Insert a helper node before (or after) the current node; returns its outputs."""
        outs = [Value(self.conv.fresh(f"{self.node.name or self.node.op_type}_{op_type}"))
                for _ in range(n_outputs)]  # fmt: skip
        for v, t in zip(outs, types or []):
            v.type = t
        node = Node(op_type, inputs, outs, attrs or {}, name=self.conv.fresh(f"{op_type}_conv"))
        graph = self.node.graph
        (graph.insert_before if before else graph.insert_after)(self.node, node)
        return outs

    def rebuild(self, node: Node, *, op_type: str | None = None, inputs=None, outputs=None,
                attrs: dict | None = None) -> Node:  # fmt: skip
        """Replace ``node`` by a node with other inputs, outputs or attributes (same place)."""
        graph = node.graph
        index = graph.nodes.index(node)
        ins = list(node.inputs if inputs is None else inputs)
        outs = list(node.outputs if outputs is None else outputs)
        attributes = dict(node.attributes if attrs is None else attrs)
        while ins and ins[-1] is None:
            ins.pop()
        graph.remove(node, safe=False)
        new = Node(op_type or node.op_type, ins, outs, list(attributes.values()),
                   domain=node.domain, name=node.name, overload=node.overload,
                   doc_string=node.doc_string, metadata_props=node.metadata_props,
                   device_configurations=node.device_configurations)  # fmt: skip
        graph.insert(index, new)
        self.node = new
        return new

    def set_attrs(self, node: Node, **values) -> dict:
        """The node's attributes with ``values`` set (None removes); returned, not applied."""
        attrs = dict(node.attributes)
        for name, v in values.items():
            if v is None:
                attrs.pop(name, None)
            elif isinstance(v, Attribute):
                attrs[name] = v
            else:
                kind = AttrType.INTS if isinstance(v, list) and not v else None
                attrs[name] = Attribute(name, kind or _kind(v), v)
        return attrs


def _kind(v) -> AttrType:
    from onyx.ir.attribute import infer_attr_type

    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = v.tolist()
    return infer_attr_type(v)


def _label(node: Node) -> str:
    where = node.graph.path() if node.graph is not None else "main"
    return f"node {node.name or '(unnamed)'!r} ({node.op_type}) in graph {where!r}"


def _ints(data: np.ndarray) -> list[int]:
    return [int(x) for x in np.asarray(data).reshape(-1)]


def _used(value: Value | None, graph: Graph) -> bool:
    return value is not None and (bool(value.uses) or value in graph.outputs)


# --- attribute <-> input moves ------------------------------------------------------------
def _attr_to_input(node: Node, step: _Step, attr: str, index: int,
                   dtype=DataType.INT64, default=None) -> Node:  # fmt: skip
    """Move attribute ``attr`` into input slot ``index`` (as a constant)."""
    value = step.attr(node, attr, default)
    ins = list(node.inputs)
    while len(ins) < index:
        ins.append(None)
    ins = ins[:index] + [None] + ins[index + 1 :]
    if value is not None:
        ins[index] = step.constant(value, dtype, attr)
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, **{attr: None}))


def _input_to_attr(node: Node, step: _Step, index: int, attr: str, kind: AttrType,
                   convert=_ints) -> Node:  # fmt: skip
    """Move the constant input ``index`` into attribute ``attr``."""
    ins = list(node.inputs)
    value = ins[index] if index < len(ins) else None
    attrs = dict(node.attributes)
    if value is not None:
        attrs[attr] = Attribute(attr, kind, convert(step.need_const(value, attr)))
    ins = ins[:index] + ins[index + 1 :]
    return step.rebuild(node, inputs=ins, attrs=attrs)


# Reshape: the shape attribute became an input at 5.
@adapter("Reshape", (1, 5))
def _reshape_up(node, step):
    if step.attr(node, "shape") is None:
        raise step.fail("Reshape-1 without a 'shape' attribute")
    node = step.rebuild(node, attrs=step.set_attrs(node, consumed_inputs=None))
    return _attr_to_input(node, step, "shape", 1)


@adapter("Reshape", (5, 1))
def _reshape_down(node, step):
    return _input_to_attr(node, step, 1, "shape", AttrType.INTS)


@adapter("Reshape", (14, 13))
def _reshape_allowzero_down(node, step):
    if step.attr(node, "allowzero", 0):
        shape = step.const(node.inputs[1])
        if shape is None or 0 in _ints(shape):
            raise step.fail("allowzero=1 with a shape that may hold 0 has no Reshape-13 form")
    return step.rebuild(node, attrs=step.set_attrs(node, allowzero=None))


# Squeeze / Unsqueeze: axes attribute -> input at 13.
@adapter(("Squeeze", "Unsqueeze"), (11, 13))
def _axes_up(node, step):
    return _attr_to_input(node, step, "axes", 1)


@adapter(("Squeeze", "Unsqueeze"), (13, 11))
def _axes_down(node, step):
    return _input_to_attr(node, step, 1, "axes", AttrType.INTS)


# Reduce family: axes attribute -> input (13 for ReduceSum, 18 for the others).
_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
           "ReduceMin", "ReduceProd", "ReduceSumSquare")  # fmt: skip
adapter("ReduceSum", (11, 13))(_axes_up)
adapter(_REDUCE, (13, 18))(_axes_up)


@adapter("ReduceSum", (13, 11))
@adapter(_REDUCE, (18, 13))
def _reduce_down(node, step):
    noop = step.attr(node, "noop_with_empty_axes", 0)
    axes = node.inputs[1] if len(node.inputs) > 1 else None
    attrs = step.set_attrs(node, noop_with_empty_axes=None)
    if axes is None or (step.const(axes) is not None and step.const(axes).size == 0):
        if noop:  # reduce over nothing: the data itself
            return step.rebuild(node, op_type="Identity", inputs=node.inputs[:1], attrs={})
        return step.rebuild(node, inputs=node.inputs[:1], attrs=attrs)
    node = step.rebuild(node, attrs=attrs)
    return _input_to_attr(node, step, 1, "axes", AttrType.INTS)


# Split: split input <-> attribute at 2 and 13, num_outputs at 18.
@adapter("Split", (1, 2))
def _split_1_2(node, step):
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        return _input_to_attr(node, step, 1, "split", AttrType.INTS)
    return node


@adapter("Split", (2, 1))
def _split_2_1(node, step):
    return node


@adapter("Split", (11, 13))
def _split_up(node, step):
    return _attr_to_input(node, step, "split", 1)


@adapter("Split", (13, 11))
def _split_down(node, step):
    return _input_to_attr(node, step, 1, "split", AttrType.INTS)


@adapter("Split", (13, 18))
def _split_num_outputs(node, step):
    if len(node.inputs) < 2 or node.inputs[1] is None:
        n = len(node.outputs)
        return step.rebuild(node, attrs=step.set_attrs(node, num_outputs=n))
    return node


@adapter("Split", (18, 13))
def _split_num_outputs_down(node, step):
    n = step.attr(node, "num_outputs")
    attrs = step.set_attrs(node, num_outputs=None)
    if n is None:
        return step.rebuild(node, attrs=attrs)
    shape = step.shape(node.inputs[0])
    axis = step.attr(node, "axis", 0)
    dim = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None
    if isinstance(dim, int) and dim % n:
        chunk = -(-dim // n)
        sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        split = step.constant(np.asarray(sizes, np.int64), base="split")
        return step.rebuild(node, inputs=[node.inputs[0], split], attrs=attrs)
    # An even split (or an unknown size, which Split-13 checks at run time).
    return step.rebuild(node, attrs=attrs)


# Slice: starts/ends/axes attributes -> inputs at 10.
@adapter("Slice", (1, 10))
def _slice_up(node, step):
    starts, ends = step.attr(node, "starts"), step.attr(node, "ends")
    axes = step.attr(node, "axes")
    ins = [node.inputs[0], step.constant(np.asarray(starts, np.int64), base="starts"),
           step.constant(np.asarray(ends, np.int64), base="ends")]  # fmt: skip
    if axes is not None:
        ins.append(step.constant(np.asarray(axes, np.int64), base="axes"))
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, starts=None, ends=None,
                                                                axes=None))  # fmt: skip


@adapter("Slice", (10, 1))
def _slice_down(node, step):
    ins = list(node.inputs) + [None] * 5
    if ins[4] is not None and any(s != 1 for s in _ints(step.need_const(ins[4], "steps"))):
        raise step.fail("Slice-1 has no steps other than 1")
    attrs = dict(node.attributes)
    for i, name in ((1, "starts"), (2, "ends"), (3, "axes")):
        if ins[i] is not None:
            values = _ints(step.need_const(ins[i], name))
            values = [max(min(v, 2**63 - 1), -(2**63)) for v in values]
            attrs[name] = Attribute(name, AttrType.INTS, values)
    return step.rebuild(node, inputs=ins[:1], attrs=attrs)


# Clip: min/max attributes -> inputs at 11.
@adapter("Clip", (1, 6))
def _drop_consumed(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, consumed_inputs=None))


@adapter("Clip", (6, 11))
def _clip_up(node, step):
    lo, hi = step.attr(node, "min"), step.attr(node, "max")
    ins: list = [node.inputs[0], None, None]
    if lo is not None or hi is not None:
        dt = step.dtype(node.inputs[0], "Clip's input")
        if lo is not None:
            ins[1] = step.constant(np.asarray(lo), dt, "min")
        if hi is not None:
            ins[2] = step.constant(np.asarray(hi), dt, "max")
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, min=None, max=None))


@adapter("Clip", (11, 6))
def _clip_down(node, step):
    ins = list(node.inputs) + [None, None]
    attrs = dict(node.attributes)
    for i, name in ((1, "min"), (2, "max")):
        if ins[i] is not None:
            data = step.need_const(ins[i], name)
            attrs[name] = Attribute(name, AttrType.FLOAT, float(data.reshape(-1)[0]))
    return step.rebuild(node, inputs=ins[:1], attrs=attrs)


# Pad: paddings -> pads at 2, pads/value attributes -> inputs at 11, axes input at 18.
@adapter("Pad", (1, 2))
def _pad_1_2(node, step):
    pads = step.attr(node, "paddings")
    return step.rebuild(node, attrs=step.set_attrs(node, paddings=None, pads=list(pads)))


@adapter("Pad", (2, 1))
def _pad_2_1(node, step):
    pads = step.attr(node, "pads")
    return step.rebuild(node, attrs=step.set_attrs(node, pads=None, paddings=list(pads)))


@adapter("Pad", (2, 11))
def _pad_up(node, step):
    pads = step.attr(node, "pads")
    value = step.attr(node, "value", 0.0)
    ins = [node.inputs[0], step.constant(np.asarray(pads, np.int64), base="pads")]
    if value != 0.0:
        ins.append(step.constant(np.asarray(value), step.dtype(node.inputs[0]), "value"))
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, pads=None, value=None))


@adapter("Pad", (11, 2))
def _pad_down(node, step):
    ins = list(node.inputs) + [None, None]
    attrs = step.set_attrs(node, pads=_ints(step.need_const(ins[1], "pads")))
    if ins[2] is not None:
        data = step.need_const(ins[2], "constant_value").reshape(-1)
        if data.size:
            attrs["value"] = Attribute("value", AttrType.FLOAT, float(data[0]))
    return step.rebuild(node, inputs=ins[:1], attrs=attrs)


@adapter("Pad", (18, 13))
def _pad_axes_down(node, step):
    ins = list(node.inputs) + [None] * 4
    if ins[3] is None:
        return step.rebuild(node, inputs=ins[:3])
    axes = _ints(step.need_const(ins[3], "axes"))
    pads = _ints(step.need_const(ins[1], "pads"))
    rank = step.rank(ins[0])
    if rank is None:
        raise step.fail("Pad with an axes input needs the rank of its data")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        a %= rank
        full[a], full[rank + a] = pads[i], pads[len(axes) + i]
    ins[1] = step.constant(np.asarray(full, np.int64), base="pads")
    return step.rebuild(node, inputs=ins[:3])


@adapter("Pad", (19, 18))
def _pad_wrap_down(node, step):
    if step.attr(node, "mode", "constant") == "wrap":
        raise step.fail("mode 'wrap' does not exist before Pad-19")
    return node


# TopK: k attribute -> input at 10.
@adapter("TopK", (1, 10))
def _topk_up(node, step):
    k = step.attr(node, "k")
    kv = step.constant(np.asarray([k], np.int64), base="k")
    return step.rebuild(node, inputs=[node.inputs[0], kv], attrs=step.set_attrs(node, k=None))


@adapter("TopK", (10, 1))
def _topk_down(node, step):
    return _input_to_attr(node, step, 1, "k", AttrType.INT, lambda d: int(d.reshape(-1)[0]))


# Cast: 'to' a type name at 1, a type code from 6.
@adapter("Cast", (1, 6))
def _cast_up(node, step):
    to = step.attr(node, "to")
    if isinstance(to, bytes):
        to = to.decode()
    if isinstance(to, str):
        try:
            to = int(DataType[to.upper()])
        except KeyError:
            raise step.fail(f"unknown type name {to!r} in attribute 'to'") from None
    return step.rebuild(node, attrs=step.set_attrs(node, to=Attribute("to", AttrType.INT, to)))


@adapter("Cast", (6, 1))
def _cast_down(node, step):
    name = DataType(step.attr(node, "to")).name
    return step.rebuild(node, attrs=step.set_attrs(node, to=Attribute("to", AttrType.STRING, name)))


# Dropout: is_test removed at 7, ratio attribute -> input at 12.
@adapter("Dropout", (6, 7))
def _dropout_6_7(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, is_test=None))


@adapter("Dropout", (7, 6))
def _dropout_7_6(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, is_test=1))


@adapter("Dropout", (10, 12))
def _dropout_up(node, step):
    ratio = step.attr(node, "ratio")
    ins = [node.inputs[0]]
    if ratio is not None and ratio != 0.5:
        # ratio's type (T1) is its own, not the data's: the data's where known, else float
        t = node.inputs[0].type if node.inputs[0] is not None else None
        dt = t.dtype if isinstance(t, TensorType) else DataType.FLOAT
        if dt not in (DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16):
            dt = DataType.FLOAT
        ins.append(step.constant(np.asarray(ratio), dt, "ratio"))
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, ratio=None))


@adapter("Dropout", (12, 10))
def _dropout_down(node, step):
    ins = list(node.inputs) + [None, None]
    if ins[2] is not None and bool(step.need_const(ins[2], "training_mode").reshape(-1)[0]):
        raise step.fail("training_mode=true has no Dropout-10 form")
    if step.attr(node, "seed") is not None:
        raise step.fail("attribute 'seed' does not exist before Dropout-12")
    attrs = dict(node.attributes)
    if ins[1] is not None:
        ratio = float(step.need_const(ins[1], "ratio").reshape(-1)[0])
        attrs["ratio"] = Attribute("ratio", AttrType.FLOAT, ratio)
    return step.rebuild(node, inputs=ins[:1], attrs=attrs)


# BatchNormalization: consumed_inputs (6), is_test (7), spatial (9), training outputs (14).
@adapter("BatchNormalization", (1, 6))
def _bn_1_6(node, step):
    return _drop_consumed(node, step)


@adapter("BatchNormalization", (6, 7))
def _bn_6_7(node, step):
    attrs = step.set_attrs(node, is_test=None)
    if step.attr(node, "is_test", 0):  # test mode: only Y is meaningful
        if any(_used(v, node.graph) for v in node.outputs[1:]):
            raise step.fail("is_test=1 with used statistics outputs")
        return step.rebuild(node, outputs=node.outputs[:1], attrs=attrs)
    return step.rebuild(node, attrs=attrs)


@adapter("BatchNormalization", (7, 6))
def _bn_7_6(node, step):
    if len(node.outputs) == 1:
        return step.rebuild(node, attrs=step.set_attrs(node, is_test=1))
    return node


@adapter("BatchNormalization", (7, 9))
def _bn_7_9(node, step):
    if step.attr(node, "spatial", 1) != 1:
        raise step.fail("spatial=0 (per-activation statistics) does not exist from opset 9")
    return step.rebuild(node, attrs=step.set_attrs(node, spatial=None))


@adapter("BatchNormalization", (9, 14))
def _bn_9_14(node, step):
    outs = list(node.outputs)
    if len(outs) == 1:
        return node
    if any(_used(v, node.graph) for v in outs[3:]):
        raise step.fail("saved_mean/saved_var outputs do not exist from opset 14")
    return step.rebuild(node, outputs=outs[:3], attrs=step.set_attrs(node, training_mode=1))


@adapter("BatchNormalization", (14, 9))
def _bn_14_9(node, step):
    training = step.attr(node, "training_mode", 0)
    attrs = step.set_attrs(node, training_mode=None)
    outs = list(node.outputs)
    if not training:
        if len(outs) > 1 and any(_used(v, node.graph) for v in outs[1:]):
            raise step.fail("training_mode=0 with used running statistics")
        return step.rebuild(node, outputs=outs[:1], attrs=attrs)
    while len(outs) < 3:  # training is told by the number of outputs before opset 14
        outs.append(Value(step.conv.fresh(f"{node.name or 'bn'}_stat")))
    return step.rebuild(node, outputs=outs, attrs=attrs)


# Softmax / LogSoftmax / Hardmax: 2-D coercion before 13, one axis from 13.
_SOFTMAX = ("Softmax", "LogSoftmax", "Hardmax")


@adapter(_SOFTMAX, (11, 13))
def _softmax_up(node, step):
    x = node.inputs[0]
    axis = step.attr(node, "axis", 1)
    rank = step.rank(x)
    if rank is not None:
        a = axis + rank if axis < 0 else axis
        shape = step.shape(x)
        if a == rank - 1 or all(d == 1 for d in shape[a + 1 :]):
            return step.rebuild(node, attrs=step.set_attrs(node, axis=a))
    # Flatten to 2-D at the axis, normalize the rows, restore the shape.
    flat = step.helper("Flatten", [x], attrs={"axis": axis})[0]
    y = node.outputs[0]
    inner = Value(step.conv.fresh(f"{node.name or node.op_type}_2d"))
    node = step.rebuild(node, inputs=[flat], outputs=[inner],
                        attrs=step.set_attrs(node, axis=1))  # fmt: skip
    shape = step.helper("Shape", [x], before=False)[0]
    step.node.graph.insert_after(
        shape.producer, Node("Reshape", [inner, shape], [y], name=step.conv.fresh("Reshape_conv"))
    )
    return node


@adapter(_SOFTMAX, (13, 11))
def _softmax_down(node, step):
    x = node.inputs[0]
    axis = step.attr(node, "axis", -1)
    rank = step.rank(x)
    if rank is None:
        if axis == -1 and step.dst >= 11:  # coercion at the last axis is the last axis
            return step.rebuild(node, attrs=step.set_attrs(node, axis=-1))
        return _softmax_down_dynamic(node, step, axis)
    a = axis + rank if axis < 0 else axis
    if a == rank - 1:
        return step.rebuild(node, attrs=step.set_attrs(node, axis=a))
    # Move the axis last, normalize there, move it back.
    perm = [i for i in range(rank) if i != a] + [a]
    inverse = [int(i) for i in np.argsort(perm)]
    moved = step.helper("Transpose", [x], attrs={"perm": perm})[0]
    y = node.outputs[0]
    inner = Value(step.conv.fresh(f"{node.name or node.op_type}_moved"))
    node = step.rebuild(node, inputs=[moved], outputs=[inner],
                        attrs=step.set_attrs(node, axis=rank - 1))  # fmt: skip
    back = Node(
        "Transpose", [inner], [y], {"perm": inverse}, name=step.conv.fresh("Transpose_conv")
    )
    node.graph.insert_after(node, back)
    return node


def _softmax_down_dynamic(node: Node, step: _Step, axis: int) -> Node:
    """Softmax over one axis of a tensor of unknown rank: view it as [outer, axis, inner]."""
    if step.dst < 11:
        raise step.fail(f"axis {axis} needs the rank of the input to express before opset 11")
    x, y = node.inputs[0], node.outputs[0]
    end = 2**62

    def piece(lo: int, hi: int, reduce: bool) -> Value:
        bounds = [step.constant(np.asarray([b], np.int64), base="bound") for b in (lo, hi)]
        part = step.helper("Slice", [shape, *bounds])[0]
        return step.helper("ReduceProd", [part], attrs={"keepdims": 1})[0] if reduce else part

    shape = step.helper("Shape", [x])[0]
    dims = [piece(0, axis, True), piece(axis, axis + 1, False), piece(axis + 1, end, True)]
    view = step.helper("Concat", dims, attrs={"axis": 0})[0]
    moved = step.helper("Reshape", [x, view])[0]
    moved = step.helper("Transpose", [moved], attrs={"perm": [0, 2, 1]})[0]
    inner = Value(step.conv.fresh(f"{node.name or node.op_type}_moved"))
    node = step.rebuild(node, inputs=[moved], outputs=[inner], attrs=step.set_attrs(node, axis=2))
    back = Value(step.conv.fresh(f"{node.name or node.op_type}_back"))
    after = [
        Node("Transpose", [inner], [back], {"perm": [0, 2, 1]}, name=step.conv.fresh("T_conv")),
        Node("Reshape", [back, shape], [y], name=step.conv.fresh("Reshape_conv")),
    ]
    node.graph.insert_after(node, after[0])
    node.graph.insert_after(after[0], after[1])
    return node


# Concat: axis became required at 4 (it defaulted to 1).
@adapter("Concat", (1, 4))
def _concat_up(node, step):
    if "axis" not in node.attributes:
        return step.rebuild(node, attrs=step.set_attrs(node, axis=1))
    return node


# Broadcasting: the broadcast/axis attributes of binary ops went away at 7 (numpy rules).
_BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less")


@adapter(_BINARY, (6, 7), (1, 7))
def _broadcast_up(node, step):
    broadcast = step.attr(node, "broadcast", 0)
    axis = step.attr(node, "axis")
    attrs = step.set_attrs(node, broadcast=None, axis=None, consumed_inputs=None)
    if not broadcast or axis is None:
        return step.rebuild(node, attrs=attrs)  # equal shapes, or B aligned to A's trailing dims
    ra, rb = step.rank(node.inputs[0]), step.rank(node.inputs[1])
    if ra is None or rb is None:
        raise step.fail("broadcast with an axis needs the ranks of both inputs")
    axis = axis + ra if axis < 0 else axis
    trailing = ra - axis - rb
    if trailing <= 0:
        return step.rebuild(node, attrs=attrs)
    shape_b = step.shape(node.inputs[1])
    new = np.asarray([*shape_b, *([1] * trailing)], np.int64)
    if any(not isinstance(d, int) for d in shape_b):
        raise step.fail("broadcast with an axis needs the static shape of B")
    target = step.constant(new, base="bshape")
    b = step.helper("Reshape", [node.inputs[1], target])[0]
    return step.rebuild(node, inputs=[node.inputs[0], b], attrs=attrs)


@adapter(_BINARY, (7, 6), (7, 1))
def _broadcast_down(node, step):
    sa, sb = step.shape(node.inputs[0]), step.shape(node.inputs[1])
    if sa is None or sb is None:
        raise step.fail("numpy broadcasting needs known input shapes to express before opset 7")
    if sa == sb:
        return node
    a, b = list(node.inputs)
    if _suffix_broadcast(sa, sb):
        return step.rebuild(node, attrs=step.set_attrs(node, broadcast=1))
    commutative = node.op_type in ("Add", "Mul", "And", "Or", "Xor", "Equal")
    if commutative and _suffix_broadcast(sb, sa):
        return step.rebuild(node, inputs=[b, a], attrs=step.set_attrs(node, broadcast=1))
    raise step.fail(f"shapes {list(sa)} and {list(sb)} broadcast both ways")


def _suffix_broadcast(big: tuple, small: tuple) -> bool:
    """Whether ``small`` broadcasts one-way onto ``big`` by trailing alignment."""
    small = list(small)
    while small and small[0] == 1 and len(small) > len(big):
        small.pop(0)
    if len(small) > len(big):
        return False
    tail = big[len(big) - len(small) :]
    return all(s == 1 or s == t for s, t in zip(small, tail))


# Gemm: broadcast removed at 7, C optional from 11.
@adapter("Gemm", (6, 7))
def _gemm_up(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, broadcast=None))


@adapter("Gemm", (7, 6))
def _gemm_down(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, broadcast=1))


@adapter("Gemm", (11, 9))
def _gemm_c_down(node, step):
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        return node
    zero = step.constant(np.zeros((), to_numpy(step.dtype(node.inputs[0]))), base="C")
    return step.rebuild(node, inputs=[*node.inputs[:2], zero])


# Upsample / Resize.
@adapter("Upsample", (1, 7))
def _upsample_1_7(node, step):
    h, w = step.attr(node, "height_scale", 1.0), step.attr(node, "width_scale", 1.0)
    attrs = step.set_attrs(node, height_scale=None, width_scale=None, scales=[1.0, 1.0, h, w])
    return step.rebuild(node, attrs=attrs)


@adapter("Upsample", (7, 9))
def _upsample_7_9(node, step):
    return _attr_to_input(node, step, "scales", 1, DataType.FLOAT)


@adapter("Upsample", (9, 7))
def _upsample_9_7(node, step):
    return _input_to_attr(node, step, 1, "scales", AttrType.FLOATS,
                          lambda d: [float(x) for x in d.reshape(-1)])  # fmt: skip


@adapter("Upsample", (9, 10))
def _upsample_to_resize(node, step):
    # Resize-10 shrinks with a ceil where Upsample floors; Upsample only grows, so they agree.
    return step.rebuild(node, op_type="Resize")


@adapter("Resize", (10, 9))
def _resize_to_upsample(node, step):
    scales = step.const(node.inputs[1])
    if scales is not None and np.any(scales < 1):
        raise step.fail("Upsample cannot shrink (a scale below 1)")
    return step.rebuild(node, op_type="Upsample")


@adapter("Resize", (10, 11))
def _resize_10_11(node, step):
    mode = step.attr(node, "mode", "nearest")
    extra = {"coordinate_transformation_mode": "asymmetric"}
    if mode == "nearest":
        scales = step.const(node.inputs[1])
        if scales is None:
            raise step.fail("nearest rounding of Resize-10 depends on constant scales")
        if np.all(scales >= 1):
            extra["nearest_mode"] = "floor"
        elif np.all(scales <= 1):
            extra["nearest_mode"] = "ceil"
        else:
            raise step.fail("scales that both grow and shrink round differently in Resize-11")
    roi = step.constant(np.zeros(0, np.float32), base="roi")
    return step.rebuild(node, inputs=[node.inputs[0], roi, node.inputs[1]],
                        attrs=step.set_attrs(node, **extra))  # fmt: skip


@adapter("Resize", (11, 10))
def _resize_11_10(node, step):
    ins = list(node.inputs) + [None] * 4
    mode = step.attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise step.fail(f"mode {mode!r} does not exist in Resize-10")
    if step.attr(node, "coordinate_transformation_mode", "half_pixel") != "asymmetric":
        raise step.fail("Resize-10 only has the asymmetric coordinate transformation")
    if ins[3] is not None:
        raise step.fail("Resize-10 takes scales, not sizes")
    scales = step.need_const(ins[2], "scales")
    if mode == "nearest":
        want = "floor" if np.all(scales >= 1) else "ceil" if np.all(scales <= 1) else None
        if step.attr(node, "nearest_mode", "round_prefer_floor") != want:
            raise step.fail("its nearest_mode has no Resize-10 form")
    attrs = {k: v for k, v in node.attributes.items() if k == "mode"}
    return step.rebuild(node, inputs=[ins[0], ins[2]], attrs=attrs)


@adapter("Resize", (13, 11))
def _resize_13_11(node, step):
    ins = list(node.inputs) + [None] * 4
    if ins[1] is None:
        ins[1] = step.constant(np.zeros(0, np.float32), base="roi")
    if ins[2] is None:
        ins[2] = step.constant(np.zeros(0, np.float32), base="scales")
    return step.rebuild(node, inputs=ins[:4])


@adapter("Resize", (19, 18))
def _resize_19_18(node, step):
    if step.attr(node, "coordinate_transformation_mode") == "half_pixel_symmetric":
        raise step.fail("coordinate_transformation_mode 'half_pixel_symmetric' came in Resize-19")
    return node


# Scatter became ScatterElements at 11.
@adapter("Scatter", (9, 11))
def _scatter_up(node, step):
    return step.rebuild(node, op_type="ScatterElements")


@adapter("ScatterElements", (11, 9))
def _scatter_down(node, step):
    return step.rebuild(node, op_type="Scatter")


# Constant: value_* attributes from 12, sparse_value from 11.
@adapter("Constant", (12, 11), (11, 9))
def _constant_down(node, step):
    if "sparse_value" in node.attributes:
        raise step.fail("sparse constants came in Constant-11")
    if "value" in node.attributes:
        return node
    data = step.const(node.outputs[0])
    if data is None or data.dtype == object:
        raise step.fail("only numeric Constant values have a tensor form before Constant-12")
    return step.rebuild(node, attrs={"value": Attribute("value", AttrType.TENSOR, Tensor(data))})


# DFT: axis attribute -> input at 20 (and its default moved from 1 to -2).
@adapter("DFT", (17, 20))
def _dft_up(node, step):
    axis = step.attr(node, "axis", 1)
    ins = list(node.inputs) + [None]
    ins = [ins[0], ins[1], step.constant(np.asarray(axis, np.int64), base="axis")]
    return step.rebuild(node, inputs=ins, attrs=step.set_attrs(node, axis=None))


@adapter("DFT", (20, 17))
def _dft_down(node, step):
    ins = list(node.inputs) + [None, None]
    attrs = dict(node.attributes)
    axis = -2 if ins[2] is None else int(step.need_const(ins[2], "axis").reshape(-1)[0])
    if axis < 0:
        rank = step.rank(ins[0])
        if rank is None:
            raise step.fail("a negative DFT axis needs the rank of the input before opset 20")
        axis += rank
    attrs["axis"] = Attribute("axis", AttrType.INT, axis)
    return step.rebuild(node, inputs=ins[:2], attrs=attrs)


# GridSample: mode values renamed at 20.
_GRID_MODES = {"bilinear": "linear", "bicubic": "cubic"}


@adapter("GridSample", (16, 20))
def _grid_up(node, step):
    mode = step.attr(node, "mode", "bilinear")
    return step.rebuild(node, attrs=step.set_attrs(node, mode=_GRID_MODES.get(mode, mode)))


@adapter("GridSample", (20, 16))
def _grid_down(node, step):
    back = {v: k for k, v in _GRID_MODES.items()}
    mode = step.attr(node, "mode", "linear")
    return step.rebuild(node, attrs=step.set_attrs(node, mode=back.get(mode, mode)))


# Recurrent ops: output_sequence removed at 7.
@adapter(("RNN", "GRU", "LSTM"), (1, 7), (3, 7))
def _rnn_up(node, step):
    return step.rebuild(node, attrs=step.set_attrs(node, output_sequence=None))


# MaxPool: the Indices output came at 8.
@adapter("MaxPool", (8, 1))
def _maxpool_down(node, step):
    if len(node.outputs) > 1 and _used(node.outputs[1], node.graph):
        raise step.fail("the Indices output came in MaxPool-8")
    if step.attr(node, "storage_order", 0):
        raise step.fail("storage_order came in MaxPool-8")
    return step.rebuild(node, outputs=node.outputs[:1],
                        attrs=step.set_attrs(node, storage_order=None))  # fmt: skip


@adapter("Upsample", (7, 1))
def _upsample_7_1(node, step):
    scales = list(step.attr(node, "scales"))
    if len(scales) != 4 or scales[:2] != [1.0, 1.0]:
        raise step.fail("Upsample-1 scales only the last two axes of a 4-D input")
    attrs = step.set_attrs(node, scales=None, height_scale=scales[2], width_scale=scales[3])
    return step.rebuild(node, attrs=attrs)


@adapter("Scan", (8, 9), (9, 8))
@adapter("Tile", (1, 6), (6, 1))
def _refuse(node, step):
    raise step.fail(f"{node.op_type} changed its inputs' meaning; no adapter rewrites it")


# Pooling: from 22 a ceil-mode window that would start inside the end padding is dropped.
@adapter("MaxPool", (22, 12))
@adapter("AveragePool", (22, 19))
@adapter("LpPool", (22, 18))
def _pool_ceil_down(node, step):
    if not step.attr(node, "ceil_mode", 0):
        return node
    shape = step.shape(node.inputs[0])
    kernel = step.attr(node, "kernel_shape")
    if shape is None or kernel is None or step.attr(node, "auto_pad", "NOTSET") != "NOTSET":
        return node
    n = len(kernel)
    pads = step.attr(node, "pads") or [0] * (2 * n)
    strides = step.attr(node, "strides") or [1] * n
    dilations = step.attr(node, "dilations") or [1] * n
    for i, size in enumerate(shape[-n:]):
        if not isinstance(size, int):
            continue
        span = size + pads[i] + pads[n + i] - dilations[i] * (kernel[i] - 1) - 1
        out = -(-span // strides[i]) + 1
        if (out - 1) * strides[i] >= size + pads[i]:
            raise step.fail("with ceil_mode its last window starts in the padding, which "
                            f"{node.op_type} before opset 22 keeps and opset 22 drops")  # fmt: skip
    return node


# Operators whose negative axes came at opset 11: normalize them going down when the rank is known.
_AXIS_11 = ("ArgMax", "ArgMin", "Compress", "Concat", "Flatten", "Gather", "Hardmax", "LogSoftmax",
            "OneHot", "Softmax", "Split", "Squeeze", "Unsqueeze", "TopK", "Scatter",
            "ScatterElements", "GatherElements", "ReduceSum", *_REDUCE)  # fmt: skip


def _negative_axes_down(node: Node, step: _Step) -> Node:
    changed = {}
    for name in ("axis", "axes"):
        v = step.attr(node, name)
        if v is None:
            continue
        values = v if isinstance(v, list) else [v]
        if all(x >= 0 for x in values):
            continue
        rank = step.rank(node.inputs[0])
        if node.op_type == "Unsqueeze" and rank is not None:
            rank += len(values)
        if node.op_type == "Concat" and rank is None:
            rank = next((step.rank(i) for i in node.inputs if step.rank(i) is not None), None)
        if rank is None:
            raise step.fail(f"negative {name} {v} needs the input rank before opset 11")
        fixed = [x + rank if x < 0 else x for x in values]
        changed[name] = fixed if isinstance(v, list) else fixed[0]
    if not changed:
        return node
    return step.rebuild(node, attrs=step.set_attrs(node, **changed))


# --- the converter -------------------------------------------------------------------------
class _Converter:
    def __init__(self, model: Model):
        self.model = model
        self.names = {v.name for v in _all_values(model)}
        self.graph_inputs = {id(v) for g in _all_graphs(model) for v in g.inputs}
        self.ir_ok = model.ir_version >= 4
        self.counter = 0
        self.original: Model | None = None  # the model as given, for types it does not declare
        self._inferred: dict[str, TensorType] | None = None

    def inferred(self, name: str) -> TensorType | None:
        """The tensor type shape inference gives value ``name`` of the model as given."""
        if self._inferred is None:
            self._inferred = {}
            if self.original is not None:
                from onyx.shapes import infer_shapes

                try:
                    typed = infer_shapes(self.original)
                except OnyxError:
                    typed = None
                for v in _all_values(typed) if typed is not None else ():
                    if isinstance(v.type, TensorType) and v.type.dtype != DataType.UNDEFINED:
                        self._inferred.setdefault(v.name, v.type)
        return self._inferred.get(name)

    def fresh(self, base: str) -> str:
        while True:
            self.counter += 1
            name = f"{base}_{self.counter}"
            if name not in self.names:
                self.names.add(name)
                return name

    def run(self, graph: Graph, source: int, target: int, in_function: bool) -> None:
        step = 1 if target > source else -1
        for v in range(source, target, step):
            self.step(graph, v, v + step, in_function)

    def step(self, graph: Graph, src: int, dst: int, in_function: bool) -> None:
        for node in list(graph.nodes):
            for sub in node.subgraphs():
                self.step(sub, src, dst, in_function)
            if node.domain not in ("", "ai.onnx"):
                continue
            self.node(node, src, dst, in_function)

    def node(self, node: Node, src: int, dst: int, in_function: bool) -> None:
        step = _Step(self, node, src, dst, in_function)
        old = defs.find_schema(node.op_type, src)
        new = defs.find_schema(node.op_type, dst)
        if old is None:
            known = defs.versions(node.op_type)
            raise UnsupportedError(
                f"{step.label}: operator {node.op_type} does not exist in opset {src}"
                + (f" (it came in opset {known[0]})" if known else " (not a standard operator)")
            )
        if new is None and dst < src:  # an operator that replaced an older one (Resize, ...)
            fn = next((f for (op, a, b), f in ADAPTERS.items()
                       if op == node.op_type and a == old.since_version and b < a), None)  # fmt: skip
            if fn is not None:
                _generic(fn(node, step), old, step)
                return
        if new is None:
            raise UnsupportedError(
                f"{step.label}: operator {node.op_type} does not exist in opset {dst} (it came "
                f"in opset {defs.versions(node.op_type)[0]}); cannot convert from opset {src}"
            )
        if old.since_version == new.since_version:
            return
        if dst < src and dst < 11 <= src and node.op_type in _AXIS_11:
            node = _negative_axes_down(node, step)
        fn = ADAPTERS.get((node.op_type, old.since_version, new.since_version))
        if fn is not None:
            node = fn(node, step)
        _generic(node, old, step)


def _generic(node: Node, old: defs.Schema, step: _Step) -> None:
    """Move what is left unchanged; refuse what the target schema cannot hold."""
    new = defs.find_schema(node.op_type, step.dst, node.domain)
    if new is None:
        raise step.fail(f"{node.op_type} does not exist in opset {step.dst}")
    if new.deprecated:
        raise step.fail(f"{node.op_type} is deprecated in opset {step.dst}")
    same_op = old.name == new.name
    attrs = dict(node.attributes)
    changed = False
    for name, a in list(attrs.items()):
        if name in new.attributes:
            want = new.attributes[name].type
            if a.type != want and not a.is_ref:
                attrs[name] = Attribute(name, want, _retype(a, want, step))
                changed = True
            continue
        was = old.attributes.get(name) if same_op else None
        if name == "consumed_inputs" or (was is not None and not a.is_ref and
                                          was.default is not None and a.value == was.default):  # fmt: skip
            del attrs[name]
            changed = True
        else:
            raise step.fail(f"attribute {name!r} does not exist in {new.name}-{new.since_version}")
    if same_op and node.op_type not in ("GRU", "Softmax", "LogSoftmax", "Hardmax"):
        for name, d in new.attributes.items():
            was = old.attributes.get(name)
            if name in attrs or was is None or was.default is None or was.default == d.default:
                continue
            if was.type != d.type:
                continue
            attrs[name] = Attribute(name, was.type, was.default)
            changed = True
    for name, d in new.attributes.items():
        if d.required and name not in attrs:
            raise step.fail(f"{new.name}-{new.since_version} requires attribute {name!r}")
    # Arity: drop trailing omitted optional inputs and unused extra outputs.
    ins, outs = list(node.inputs), list(node.outputs)
    while ins and ins[-1] is None:
        ins.pop()
        changed = True
    if len(ins) > new.max_input:
        raise step.fail(f"{new.name}-{new.since_version} takes at most {new.max_input} inputs")
    if len(outs) > new.max_output:
        if any(_used(v, node.graph) for v in outs[new.max_output :]):
            raise step.fail(f"{new.name}-{new.since_version} has at most {new.max_output} outputs")
        outs = outs[: new.max_output]
        changed = True
    if changed:
        node = step.rebuild(node, inputs=ins, outputs=outs, attrs=attrs)
    _check_types(node, new, step)


def _retype(a: Attribute, want: AttrType, step: _Step):
    """An attribute value in another numeric kind (a float p of LpPool-1 as the int of LpPool-2)."""
    if want == AttrType.INT and a.type == AttrType.FLOAT and float(a.value).is_integer():
        return int(a.value)
    if want == AttrType.FLOAT and a.type == AttrType.INT:
        return float(a.value)
    raise step.fail(f"attribute {a.name!r} is a {a.type.name}, the target takes a {want.name}")


def _check_types(node: Node, schema: defs.Schema, step: _Step) -> None:
    for values, params in ((node.inputs, schema.inputs), (node.outputs, schema.outputs)):
        for value, param in _bind(values, params):
            ts = None if value is None else type_string(value.type)
            allowed = schema.allowed_types(param.type_str)
            if ts is not None and ts not in allowed:
                raise step.fail(
                    f"{param.name} {value.name!r} has type {ts}, which "
                    f"{schema.name}-{schema.since_version} does not accept"
                )


def _bind(values, params) -> Iterator:
    for i, value in enumerate(values):
        if not params:
            return
        if i < len(params):
            yield value, params[i]
        elif params[-1].is_variadic:
            yield value, params[-1]


# --- copying (a walk, not deepcopy: long chains of use-def links overflow its recursion) -----
def _clone_model(model: Model) -> Model:
    """A copy of ``model`` whose graphs, nodes and values are new; tensor data is shared."""
    values: dict[int, Value] = {}

    def val(v: Value | None) -> Value | None:
        if v is None:
            return None
        new = values.get(id(v))
        if new is None:
            new = Value(v.name, v.type, doc_string=v.doc_string, metadata_props=v.metadata_props,
                        const_value=v.const_value)  # fmt: skip
            new.present = set(v.present)
            values[id(v)] = new
        return new

    def attr(a: Attribute) -> Attribute:
        value = a.value
        if a.type == AttrType.GRAPH and value is not None:
            value = graph(value)
        elif a.type == AttrType.GRAPHS and value:
            value = [graph(g) for g in value]
        elif isinstance(value, list):
            value = list(value)
        return dataclasses.replace(a, value=value, present=set(a.present))

    def graph(g: Graph) -> Graph:
        new = Graph([val(v) for v in g.inputs], [], [], name=g.name, doc_string=g.doc_string,
                    metadata_props=g.metadata_props)  # fmt: skip
        for v in [*g.initializers.values(), *g.sparse_initializers.values()]:
            new.add_initializer(val(v))
        for n in g.nodes:
            new.append(
                Node(
                    n.op_type,
                    [val(v) for v in n.inputs],
                    [val(v) for v in n.outputs],
                    [attr(a) for a in n.attributes.values()],
                    domain=n.domain,
                    name=n.name,
                    overload=n.overload,
                    doc_string=n.doc_string,
                    metadata_props=n.metadata_props,
                    device_configurations=n.device_configurations,
                )
            )
            new.nodes[-1].present = set(n.present)
        new.outputs = [val(v) for v in g.outputs]
        new.value_info = [val(v) for v in g.value_info]
        new.quantization_annotation = [(t, dict(p)) for t, p in g.quantization_annotation]
        new.present = set(g.present)
        return new

    def maybe(g: Graph | None) -> Graph | None:
        return None if g is None else graph(g)

    return dataclasses.replace(
        model,
        graph=graph(model.graph),
        opset_imports=dict(model.opset_imports),
        metadata_props=dict(model.metadata_props),
        functions={
            key: dataclasses.replace(
                fn,
                graph=graph(fn.graph),
                attributes=list(fn.attributes),
                attribute_defaults={k: attr(a) for k, a in fn.attribute_defaults.items()},
                opset_imports=dict(fn.opset_imports),
                metadata_props=dict(fn.metadata_props),
                present=set(fn.present),
            )
            for key, fn in model.functions.items()
        },
        training_info=[
            dataclasses.replace(
                t,
                initialization=maybe(t.initialization),
                algorithm=maybe(t.algorithm),
                initialization_binding=list(t.initialization_binding),
                update_binding=list(t.update_binding),
            )
            for t in model.training_info
        ],
        configuration=[dict(c) for c in model.configuration],
        present=set(model.present),
    )


def _all_graphs(model: Model) -> Iterator[Graph]:
    def walk(g: Graph) -> Iterator[Graph]:
        yield g
        for node in g.nodes:
            for sub in node.subgraphs():
                yield from walk(sub)

    yield from walk(model.graph)
    for fn in model.functions.values():
        yield from walk(fn.graph)


def _all_values(model: Model) -> Iterator[Value]:
    for g in _all_graphs(model):
        yield from g.inputs
        yield from g.initializers.values()
        for node in g.nodes:
            yield from (v for v in node.outputs if v is not None)
