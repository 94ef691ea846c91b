"""Types of values: tensors with shapes of (possibly symbolic) dims, sequences, maps, optionals.

Unknown is None throughout: a Value whose type is unknown has ``type is None`` (whether its file
left the type out or wrote an empty one), as does an unknown element type of a sequence, optional
or map, an unknown shape (rank unknown) and an unknown dim. (An empty type that carries a
denotation reads as an UnknownType, to keep the denotation.)

What serde needs to write a loaded model back byte for byte, and that the IR does not show, rides
beside the values and never takes part in comparisons: ``present`` on types (and on values, nodes,
graphs, ...) names fields that a file set explicitly although empty (``"elem_type"``) or left out
although the writer would write them (``"-elem_type"``), and ``Shape.written`` keeps what a file
wrote for dims that read as unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from onyx.dtypes import DataType

Dim = int | str | None
"""A dimension: a known size (>= 0), a symbolic name (``"N"``), or None when nothing is known."""


def _present() -> dataclasses.Field:
    return dataclasses.field(default=frozenset(), compare=False, repr=False, kw_only=True)


@dataclasses.dataclass(frozen=True)
class Shape:
    """A tensor shape; each dim is an int, a symbol or None. Denotations ride alongside.

    A negative size (some exporters write -1 for "unknown") and an empty symbol are unknown dims:
    the Shape shows them as None and keeps what was given in ``written`` (dim index -> the
    negative int or ""), from which serde writes them back and the checker warns. A denotation
    is a string, or None where there is none ("" is a denotation a file set to the empty string).
    """

    dims: tuple[Dim, ...]
    denotations: tuple[str | None, ...] | None = None
    written: Mapping[int, int | str] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __init__(self, dims: Iterable[Dim], denotations: Sequence[str | None] | None = None):
        dims = tuple(dims)
        written = {i: d for i, d in enumerate(dims) if d == "" or (isinstance(d, int) and d < 0)}
        if written:
            dims = tuple(None if i in written else d for i, d in enumerate(dims))
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "written", written)
        if denotations is not None and any(d is not None for d in denotations):
            object.__setattr__(self, "denotations", tuple(denotations))
        else:
            object.__setattr__(self, "denotations", None)

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
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"tensor({self.dtype.short_name})"


@dataclasses.dataclass(frozen=True)
class SparseTensorType(Type):
    dtype: DataType
    shape: Shape | None = None
    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"sparse_tensor({self.dtype.short_name})"


@dataclasses.dataclass(frozen=True)
class SequenceType(Type):
    elem_type: Type | None
    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"seq({self.elem_type})"


@dataclasses.dataclass(frozen=True)
class MapType(Type):
    key_type: DataType
    value_type: Type | None
    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"map({self.key_type.short_name},{self.value_type})"


@dataclasses.dataclass(frozen=True)
class OptionalType(Type):
    elem_type: Type | None
    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"optional({self.elem_type})"


@dataclasses.dataclass(frozen=True)
class OpaqueType(Type):
    domain: str = ""
    name: str = ""
    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return f"opaque({self.domain},{self.name})"


@dataclasses.dataclass(frozen=True)
class UnknownType(Type):
    """A TypeProto with no value set where the IR needs a Type: an attribute's type proto, or
    one that carries only a denotation. An empty TypeProto of a value or an element reads as None.
    """

    denotation: str | None = None
    present: frozenset[str] = _present()

    def __str__(self) -> str:
        return "unknown"


def tensor_type(dtype: DataType | int | str, shape: Iterable[Dim] | None = None) -> TensorType:
    """A TensorType from a type code or name and an optional list of dims."""
    from onyx.dtypes import data_type

    return TensorType(data_type(dtype), None if shape is None else Shape(shape))
