"""The table of kernels: (domain, op_type) -> implementations by the opset version they start at.

A kernel is a function ``fn(*inputs, **attributes)`` or a class whose ``__init__`` takes the
attributes and whose ``__call__`` takes the inputs. Inputs are numpy arrays (None for an omitted
optional input); attributes arrive parsed (int, float, str, lists, numpy arrays for tensors) and
the signature's defaults are the standard's. A kernel returns one array or a tuple of arrays.

The table class, ``OpTable``, is shared: the PyTorch bridge keeps its converters in one too
(onyx/pytorch/registry.py), so both dispatch by the same rule.
"""

from __future__ import annotations

from collections.abc import Callable


class OpTable(dict[tuple[str, str], dict[int, Callable]]):
    """Implementations of operators: (domain, op_type) -> {since_version: implementation}.

    ``lookup`` picks the newest since_version not above the model's opset; "" and "ai.onnx"
    are the same domain.
    """

    def register(self, op_type: str, *since_versions: int, domain: str = ""):
        """A decorator registering its target for ``op_type`` from each given opset version on."""
        if not since_versions:
            raise TypeError(f"register({op_type!r}) needs at least one since_version")
        key = ("" if domain == "ai.onnx" else domain, op_type)

        def register(impl):
            versions = self.setdefault(key, {})
            for version in since_versions:
                versions[version] = impl
            return impl

        return register

    def lookup(self, domain: str, op_type: str, opset: int) -> Callable | None:
        """The implementation with the newest since_version not above ``opset`` (None if none)."""
        versions = self.get(("" if domain == "ai.onnx" else domain, op_type))
        if not versions:
            return None
        usable = [v for v in versions if v <= opset]
        return versions[max(usable)] if usable else None


KERNELS = OpTable()

#: The domain of the session's own plan where it runs fused operators that the model's opset
#: predates (onyx.passes.optimize_for_session): version 1 of each op there is the standard
#: operator's semantics (Attention-23, Gelu-20, LayerNormalization-17, RMSNormalization-23).
#: No model is ever written with it.
SESSION_DOMAIN = "onyx.session"


def kernel(op_type: str, *since_versions: int, domain: str = ""):
    """Register the decorated function or class for ``op_type`` from each given opset version on."""
    if not since_versions:
        raise TypeError(f"kernel({op_type!r}) needs at least one since_version")
    return KERNELS.register(op_type, *since_versions, domain=domain)


def lookup(domain: str, op_type: str, opset: int) -> Callable | None:
    """The implementation with the newest since_version not above ``opset`` (None if none)."""
    return KERNELS.lookup(domain, op_type, opset)


def session_ops() -> frozenset[str]:
    """The operators with a kernel in SESSION_DOMAIN (what the session's fusions may emit there)."""
    return frozenset(op for domain, op in KERNELS if domain == SESSION_DOMAIN)
