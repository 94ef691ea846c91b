"""Node attributes: a name, a kind, and a Python value."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np


class AttrType(enum.IntEnum):
    """Attribute kinds, numbered as the standard numbers them."""

    UNDEFINED = 0
    FLOAT = 1
    INT = 2
    STRING = 3
    TENSOR = 4
    GRAPH = 5
    FLOATS = 6
    INTS = 7
    STRINGS = 8
    TENSORS = 9
    GRAPHS = 10
    SPARSE_TENSOR = 11
    SPARSE_TENSORS = 12
    TYPE_PROTO = 13
    TYPE_PROTOS = 14


@dataclasses.dataclass
class Attribute:
    """A node attribute. ``value`` is int, float, str, Tensor, Graph, SparseTensor, Type or a list.

    A reference attribute inside a function body has ``ref_attr_name`` set (and usually no value).
    """

    name: str
    type: AttrType
    value: Any = None
    ref_attr_name: str = ""
    doc_string: str = ""
    present: set[str] = dataclasses.field(default_factory=set, repr=False, compare=False)

    @property
    def is_ref(self) -> bool:
        return bool(self.ref_attr_name)


def infer_attr_type(value: Any) -> AttrType:
    """The attribute kind a Python value maps to (used by the builder)."""
    from onyx.ir.graph import Graph
    from onyx.ir.tensor import SparseTensor, Tensor
    from onyx.ir.types import Type

    if isinstance(value, bool | int | np.integer):
        return AttrType.INT
    if isinstance(value, float | np.floating):
        return AttrType.FLOAT
    if isinstance(value, str | bytes):
        return AttrType.STRING
    if isinstance(value, Tensor | np.ndarray):
        return AttrType.TENSOR
    if isinstance(value, Graph):
        return AttrType.GRAPH
    if isinstance(value, SparseTensor):
        return AttrType.SPARSE_TENSOR
    if isinstance(value, Type):
        return AttrType.TYPE_PROTO
    if isinstance(value, list | tuple):
        if not value:
            raise TypeError("cannot tell the kind of an empty list attribute; pass an Attribute")
        kind = infer_attr_type(value[0])
        if kind == AttrType.INT and any(isinstance(v, float | np.floating) for v in value):
            kind = AttrType.FLOAT
        return {
            AttrType.INT: AttrType.INTS, AttrType.FLOAT: AttrType.FLOATS,
            AttrType.STRING: AttrType.STRINGS, AttrType.TENSOR: AttrType.TENSORS,
            AttrType.GRAPH: AttrType.GRAPHS, AttrType.SPARSE_TENSOR: AttrType.SPARSE_TENSORS,
            AttrType.TYPE_PROTO: AttrType.TYPE_PROTOS,
        }[kind]  # fmt: skip
    raise TypeError(f"no attribute kind for a {type(value).__name__}")
