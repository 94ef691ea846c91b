"""Models and model-local functions."""

from __future__ import annotations

import dataclasses
from typing import Any

from onyx.ir.attribute import Attribute
from onyx.ir.graph import Graph


@dataclasses.dataclass
class Function:
    """A model-local function: a body graph (inputs and outputs carry no types) plus attributes.

    ``attributes`` lists the attribute names the body may reference; ``attribute_defaults`` holds
    those declared with a default value (the standard's attribute_proto).
    """

    domain: str
    name: str
    graph: Graph
    attributes: list[str] = dataclasses.field(default_factory=list)
    attribute_defaults: dict[str, Attribute] = dataclasses.field(default_factory=dict)
    opset_imports: dict[str, int] = dataclasses.field(default_factory=dict)
    overload: str = ""
    doc_string: str = ""
    metadata_props: dict[str, str] = dataclasses.field(default_factory=dict)
    present: set[str] = dataclasses.field(default_factory=set, repr=False)

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.domain, self.name, self.overload)


@dataclasses.dataclass
class TrainingInfo:
    """The standard's TrainingInfoProto: an initialization and an algorithm graph with bindings."""

    initialization: Graph | None = None
    algorithm: Graph | None = None
    initialization_binding: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    update_binding: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Model:
    """A model: one main graph, the opsets it imports, functions, and metadata."""

    graph: Graph
    ir_version: int = 10
    opset_imports: dict[str, int] = dataclasses.field(default_factory=dict)
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata_props: dict[str, str] = dataclasses.field(default_factory=dict)
    functions: dict[tuple[str, str, str], Function] = dataclasses.field(default_factory=dict)
    training_info: list[TrainingInfo] = dataclasses.field(default_factory=list)
    configuration: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Which optional scalar fields the file set explicitly (kept so a saved file says the same).
    present: set[str] = dataclasses.field(default_factory=set, repr=False)

    def opset(self, domain: str = "") -> int | None:
        """The imported version of ``domain`` ('' and 'ai.onnx' are the same domain)."""
        if domain in ("", "ai.onnx"):
            return self.opset_imports.get("", self.opset_imports.get("ai.onnx"))
        return self.opset_imports.get(domain)

    def __str__(self) -> str:
        from onyx.text import print_model

        return print_model(self, max_elements=16)  # for reading: big tensors abbreviated
