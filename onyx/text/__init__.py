"""The standard's textual syntax (as ``onnx.parser`` / ``onnx.printer`` write it): parse and print.

<ir_version: 10, opset_import: ["" : 21]>
agraph (float[N] X) => (float[N] Y) { Y = Relu(X) }
"""

from onyx.text.parser import parse_function, parse_graph, parse_model
from onyx.text.printer import print_function, print_graph, print_model

__all__ = [
    "parse_function", "parse_graph", "parse_model", "print_function", "print_graph", "print_model",
]  # fmt: skip
