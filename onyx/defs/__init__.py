"""Operator schemas for every domain and opset version of the standard (data, loaded lazily)."""

from onyx.defs.schemas import (
    DOMAINS,
    AttributeDef,
    FormalParameter,
    Schema,
    attribute_defaults,
    find_schema,
    get_schema,
    has_schema,
    opset_range,
    schemas,
    versions,
)  # fmt: skip

__all__ = [
    "DOMAINS", "AttributeDef", "FormalParameter", "Schema", "attribute_defaults", "find_schema",
    "get_schema", "has_schema", "opset_range", "schemas", "versions",
]  # fmt: skip
