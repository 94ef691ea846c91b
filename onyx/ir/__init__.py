"""The graph model people read and edit."""

from onyx.ir.attribute import Attribute, AttrType
from onyx.ir.graph import Graph, Node, Scope, Value
from onyx.ir.model import Function, Model, TrainingInfo
from onyx.ir.tensor import ExternalData, SparseTensor, Tensor
from onyx.ir.types import (
    Dim,
    MapType,
    OpaqueType,
    OptionalType,
    SequenceType,
    Shape,
    SparseTensorType,
    TensorType,
    Type,
    UnknownType,
    tensor_type,
)  # fmt: skip

__all__ = [
    "AttrType",
    "Attribute",
    "Dim",
    "ExternalData",
    "Function",
    "Graph",
    "MapType",
    "Model",
    "Node",
    "OpaqueType",
    "OptionalType",
    "Scope",
    "SequenceType",
    "Shape",
    "SparseTensor",
    "SparseTensorType",
    "Tensor",
    "TensorType",
    "TrainingInfo",
    "Type",
    "UnknownType",
    "Value",
    "tensor_type",
]  # fmt: skip
