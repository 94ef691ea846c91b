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
    OptionError,
    ParseError,
    PassError,
    RegistrationError,
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
    "CustomOp",
    "DataType",
    "ExecutionError",
    "ExecutionMode",
    "ExternalDataError",
    "FeedError",
    "FormatError",
    "GraphError",
    "GraphOptimizationLevel",
    "InferenceSession",
    "KernelError",
    "OnyxError",
    "OptionError",
    "ParseError",
    "PassError",
    "RegistrationError",
    "RunOptions",
    "SessionOptions",
    "TensorDataError",
    "UnknownDataTypeError",
    "UnsupportedError",
    "ValidationError",
    "check",
    "convert_version",
    "export",
    "get_available_providers",
    "helper",
    "infer_shapes",
    "ir",
    "load",
    "load_tensor",
    "numpy_helper",
    "optimize",
    "register_op",
    "registered_ops",
    "save",
    "to_bytes",
    "to_torch",
    "unregister_op",
    "utils",
]  # fmt: skip

# Loaded on first use (name -> module), so `import onyx` stays quick.
_LAZY = {
    "InferenceSession": "onyx.runtime.session", "SessionOptions": "onyx.runtime.session",
    "RunOptions": "onyx.runtime.options", "GraphOptimizationLevel": "onyx.runtime.options",
    "ExecutionMode": "onyx.runtime.options",
    "get_available_providers": "onyx.runtime.options",
    "CustomOp": "onyx.custom", "register_op": "onyx.custom", "unregister_op": "onyx.custom",
    "registered_ops": "onyx.custom",
    "optimize": "onyx.passes",  # the graph optimizer
    "to_torch": "onyx.pytorch", "export": "onyx.pytorch",  # the PyTorch bridge (onyx[torch])
}  # fmt: skip
_SUBMODULES = frozenset({"helper", "numpy_helper", "utils"})


def __getattr__(name):
    # The runtime (and its kernel tables) loads on first use, so `import onyx` stays quick.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"onyx.{name}")
    raise AttributeError(f"module 'onyx' has no attribute {name!r}")
