"""Types of values: tensors with shapes of (possibly symbolic) dims, sequences, maps, optionals."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from onyx.dtypes import DataType

Dim = int | str | None
"""A dimension: a known size, a symbolic name (``"N"``), or None when nothing is known."""


@dataclasses.dataclass(frozen=True)
class Shape:
    """A tensor shape; each dim is an int, a symbol or None. Denotations ride alongside."""

    dims: tuple[Dim, ...]
    denotations: tuple[str, ...] | None = None

    def __init__(self, dims: Iterable[Dim], denotations: Sequence[str] | None = None):
        object.__setattr__(self, "dims", tuple(dims))
        if denotations is not None and any(denotations):
            object.__setattr__(self, "denotations", tuple(denotations))

    def __len__(self) -> int:
        return len(self.dims)

    def __iter__(self):
        return iter(self.dims)

    def __getitem__(self, index):
        return self.dims[index]

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def __str__(self) -> str:
        return "[" + ",".join("?" if d is None else str(d) for d in self.dims) + "]"


class Type:
    """Base of value types. ``denotation`` is the standard's optional type denotation."""

    denotation: str | None


@dataclasses.dataclass(frozen=True)
class TensorType(Type):
    dtype: DataType
    shape: Shape | None = None  # None: rank unknown
    denotation: str | None = None

    def __str__(self) -> str:
        return f"tensor({self.dtype.short_name})"


@dataclasses.dataclass(frozen=True)
class SparseTensorType(Type):
    dtype: DataType
    shape: Shape | None = None
    denotation: str | None = None

    def __str__(self) -> str:
        return f"sparse_tensor({self.dtype.short_name})"


@dataclasses.dataclass(frozen=True)
class SequenceType(Type):
    elem_type: Type | None
    denotation: str | None = None

    def __str__(self) -> str:
        return f"seq({self.elem_type})"


@dataclasses.dataclass(frozen=True)
class MapType(Type):
    key_type: DataType
    value_type: Type | None
    denotation: str | None = None

    def __str__(self) -> str:
        return f"map({self.key_type.short_name},{self.value_type})"


@dataclasses.dataclass(frozen=True)
class OptionalType(Type):
    elem_type: Type | None
    denotation: str | None = None

    def __str__(self) -> str:
        return f"optional({self.elem_type})"


@dataclasses.dataclass(frozen=True)
class OpaqueType(Type):
    domain: str = ""
    name: str = ""
    denotation: str | None = None

    def __str__(self) -> str:
        return f"opaque({self.domain},{self.name})"


@dataclasses.dataclass(frozen=True)
class UnknownType(Type):
    """A TypeProto with no value set (the standard allows it, e.g. in attribute type protos)."""

    denotation: str | None = None

    def __str__(self) -> str:
        return "unknown"


def tensor_type(dtype: DataType | int | str, shape: Iterable[Dim] | None = None) -> TensorType:
    """A TensorType from a type code or name and an optional list of dims."""
    from onyx.dtypes import data_type

    return TensorType(data_type(dtype), None if shape is None else Shape(shape))
