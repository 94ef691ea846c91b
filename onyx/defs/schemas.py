"""Operator schemas: the facts of every operator of the standard, for every version.

The data (``schemas.json.gz``) is generated from the standard by ``tools/gen_defs.py`` and loaded
on first use. Lookup follows the standard's rule: an opset version selects the newest schema of
the operator whose ``since_version`` is not above it.
"""

from __future__ import annotations

import bisect
import dataclasses
import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

from onyx.errors import UnsupportedError
from onyx.ir.attribute import AttrType

DATA = os.path.join(os.path.dirname(__file__), "schemas.json.gz")
INFINITE = 2147483647
#: Domains with schemas here ('' is ai.onnx).
DOMAINS = ("", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training")


@dataclasses.dataclass(frozen=True)
class FormalParameter:
    """One input or output of an operator."""

    name: str
    type_str: str  # a type parameter ('T') or a concrete type string ('tensor(int64)')
    option: str  # 'single', 'optional' or 'variadic'
    is_homogeneous: bool = True
    min_arity: int = 1

    @property
    def is_optional(self) -> bool:
        return self.option == "optional"

    @property
    def is_variadic(self) -> bool:
        return self.option == "variadic"


@dataclasses.dataclass(frozen=True)
class AttributeDef:
    """An attribute an operator accepts: its kind, whether required, its default (plain data).

    A tensor default is a dict ``{dims, dtype, values}``; no default is None.
    """

    name: str
    type: AttrType
    required: bool = False
    default: Any = None


@dataclasses.dataclass(frozen=True)
class Schema:
    """One version of one operator."""

    domain: str
    name: str
    since_version: int
    deprecated: bool
    inputs: tuple[FormalParameter, ...]
    outputs: tuple[FormalParameter, ...]
    attributes: dict[str, AttributeDef]
    type_constraints: dict[str, tuple[str, ...]]
    min_input: int
    max_input: int
    min_output: int
    max_output: int

    def allowed_types(self, type_str: str) -> tuple[str, ...]:
        """The type strings a formal parameter's type_str admits."""
        return self.type_constraints.get(type_str, (type_str,))

    def __repr__(self) -> str:
        where = f"{self.domain}::" if self.domain else ""
        return f"Schema({where}{self.name}-{self.since_version})"


def _norm(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _param(row: list) -> FormalParameter:
    return FormalParameter(*row)


def _schema(d: dict) -> Schema:
    return Schema(
        domain=d["domain"], name=d["name"], since_version=d["since_version"],
        deprecated=d["deprecated"],
        inputs=tuple(map(_param, d["inputs"])), outputs=tuple(map(_param, d["outputs"])),
        attributes={n: AttributeDef(n, AttrType(t), r, v) for n, t, r, v in d["attributes"]},
        type_constraints={k: tuple(v) for k, v in d["type_constraints"]},
        min_input=d["min_input"], max_input=d["max_input"],
        min_output=d["min_output"], max_output=d["max_output"],
    )  # fmt: skip


_TABLE: dict[tuple[str, str], tuple[list[int], list[Schema]]] | None = None
_DOMAINS: dict[str, tuple[int, int]] = {}


def _table() -> dict[tuple[str, str], tuple[list[int], list[Schema]]]:
    global _TABLE
    if _TABLE is None:
        with gzip.open(DATA, "rb") as f:
            data = json.loads(f.read())
        _DOMAINS.update({d: tuple(r) for d, r in data["domains"].items()})
        rows = data["schemas"]
        table: dict[tuple[str, str], tuple[list[int], list[Schema]]] = {}
        for row in rows:  # sorted by (domain, name, since_version)
            versions, schemas = table.setdefault((row["domain"], row["name"]), ([], []))
            versions.append(row["since_version"])
            schemas.append(_schema(row))
        _TABLE = table
    return _TABLE


def opset_range(domain: str = "") -> tuple[int, int] | None:
    """The (first, last) opset version the standard defines for ``domain``; None if unknown."""
    _table()
    return _DOMAINS.get(_norm(domain))


def find_schema(op_type: str, opset: int, domain: str = "") -> Schema | None:
    """The schema of ``op_type`` that opset ``opset`` of ``domain`` selects, or None."""
    entry = _table().get((_norm(domain), op_type))
    if entry is None:
        return None
    versions, schemas = entry
    i = bisect.bisect_right(versions, opset)
    return schemas[i - 1] if i else None


def get_schema(op_type: str, opset: int, domain: str = "") -> Schema:
    """The newest schema of ``op_type`` with since_version <= ``opset``; UnsupportedError if none."""
    schema = find_schema(op_type, opset, domain)
    if schema is None:
        where = f"{domain}::" if _norm(domain) else ""
        known = _table().get((_norm(domain), op_type))
        if known is None:
            raise UnsupportedError(f"no operator {where}{op_type} in the standard")
        raise UnsupportedError(
            f"operator {where}{op_type} does not exist in opset {opset}: it was introduced in "
            f"version {known[0][0]}"
        )
    return schema


def has_schema(op_type: str, opset: int | None = None, domain: str = "") -> bool:
    """Whether ``op_type`` exists in ``domain`` (at ``opset``, when given)."""
    if opset is None:
        return (_norm(domain), op_type) in _table()
    return find_schema(op_type, opset, domain) is not None


def versions(op_type: str, domain: str = "") -> list[int]:
    """The since_versions of every schema of ``op_type`` (empty if unknown)."""
    entry = _table().get((_norm(domain), op_type))
    return list(entry[0]) if entry else []


def schemas(domain: str | None = None) -> Iterator[Schema]:
    """Every schema (every version), sorted by domain, name and since_version."""
    for (d, _), (_, items) in sorted(_table().items()):
        if domain is None or d == _norm(domain):
            yield from items


def attribute_defaults(op_type: str, opset: int, domain: str = "") -> dict[str, Any]:
    """Attribute name -> default value for the selected schema (attributes with a default)."""
    schema = get_schema(op_type, opset, domain)
    return {n: a.default for n, a in schema.attributes.items() if a.default is not None}


# --- schemas added at run time (custom operators; see onyx.custom) -----------------------------
_RETIRED: list[Schema] = []  # removed schemas stay alive: caches elsewhere key on id(schema)


def register_schema(schema: Schema) -> None:
    """Add ``schema`` to the table; ``find_schema`` and everything built on it then know it.

    Raises ``ValueError`` when the table already holds that (domain, name, since_version).
    """
    key = (_norm(schema.domain), schema.name)
    versions, items = _table().setdefault(key, ([], []))
    if schema.since_version in versions:
        raise ValueError(f"{schema!r} is already registered")
    i = bisect.bisect_left(versions, schema.since_version)
    versions.insert(i, schema.since_version)
    items.insert(i, schema)


def deregister_schema(op_type: str, since_version: int, domain: str = "") -> None:
    """Remove a schema ``register_schema`` added (KeyError when there is none)."""
    key = (_norm(domain), op_type)
    versions, items = _table().get(key, ([], []))
    if since_version not in versions:
        raise KeyError(f"{domain}::{op_type}-{since_version}")
    i = versions.index(since_version)
    _RETIRED.append(items.pop(i))
    versions.pop(i)
    if not versions:
        del _table()[key]
