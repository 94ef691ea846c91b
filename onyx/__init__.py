"""onyx: the ONNX standard in Python.

import onyx
m = onyx.load("model.onnx")
onyx.save(m, "out.onnx")
"""

from onyx import ir
from onyx.checker import check
from onyx.dtypes import DataType
from onyx.errors import (
    AllocationError,
    ExecutionError,
    ExternalDataError,
    FeedError,
    FormatError,
    GraphError,
    KernelError,
    OnyxError,
    ParseError,
    TensorDataError,
    UnknownDataTypeError,
    UnsupportedError,
    ValidationError,
)  # fmt: skip
from onyx.serde import load, load_tensor, save, to_bytes
from onyx.shapes import infer_shapes
from onyx.version_converter import convert_version

__version__ = "0.1.0"

__all__ = [
    "AllocationError",
    "DataType",
    "ExecutionError",
    "ExternalDataError",
    "FeedError",
    "FormatError",
    "InferenceSession",
    "GraphError",
    "KernelError",
    "OnyxError",
    "ParseError",
    "SessionOptions",
    "TensorDataError",
    "UnknownDataTypeError",
    "UnsupportedError",
    "ValidationError",
    "check",
    "convert_version",
    "infer_shapes",
    "ir",
    "load",
    "load_tensor",
    "save",
    "to_bytes",
]  # fmt: skip


def __getattr__(name):
    # The runtime (and its kernel tables) loads on first use, so `import onyx` stays quick.
    if name in ("InferenceSession", "SessionOptions"):
        from onyx.runtime import session

        return getattr(session, name)
    raise AttributeError(f"module 'onyx' has no attribute {name!r}")
