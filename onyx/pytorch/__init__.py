"""The PyTorch bridge (``pip install 'onyx[torch]'``): ONNX models as torch modules and back.

``to_torch(model)`` turns a model into a trainable ``torch.fx.GraphModule``; ``export(module,
args)`` runs ``torch.onnx.export`` and checks the result under onyx; ``TorchProvider`` runs a
session's model through the converted module (``providers=["TorchExecutionProvider"]``).
Only this subpackage imports torch.
"""

from onyx.pytorch._torch import torch  # noqa: F401  (fails with the extra's name when missing)
from onyx.pytorch.convert import to_torch, unsupported_nodes
from onyx.pytorch.exporter import ExportMismatchError, export, verify_export
from onyx.pytorch.registry import CONVERTERS, converter

__all__ = ["CONVERTERS", "ExportMismatchError", "converter", "export", "to_torch",
           "unsupported_nodes", "verify_export"]  # fmt: skip


def __getattr__(name):
    if name == "TorchProvider":
        from onyx.pytorch.provider import TorchProvider

        return TorchProvider
    raise AttributeError(f"module 'onyx.pytorch' has no attribute {name!r}")
