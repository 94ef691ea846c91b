"""The table of kernels: (domain, op_type) -> implementations by the opset version they start at.

A kernel is a function ``fn(*inputs, **attributes)`` or a class whose ``__init__`` takes the
attributes and whose ``__call__`` takes the inputs. Inputs are numpy arrays (None for an omitted
optional input); attributes arrive parsed (int, float, str, lists, numpy arrays for tensors) and
the signature's defaults are the standard's. A kernel returns one array or a tuple of arrays.
"""

from __future__ import annotations

from collections.abc import Callable

KERNELS: dict[tuple[str, str], dict[int, Callable]] = {}


def kernel(op_type: str, *since_versions: int, domain: str = ""):
    """Register the decorated function or class for ``op_type`` from each given opset version on."""
    if not since_versions:
        raise TypeError(f"kernel({op_type!r}) needs at least one since_version")

    def register(impl):
        table = KERNELS.setdefault((domain, op_type), {})
        for version in since_versions:
            table[version] = impl
        return impl

    return register


def lookup(domain: str, op_type: str, opset: int) -> Callable | None:
    """The implementation with the newest since_version not above ``opset`` (None if none)."""
    table = KERNELS.get(("" if domain == "ai.onnx" else domain, op_type))
    if not table:
        return None
    versions = [v for v in table if v <= opset]
    return table[max(versions)] if versions else None
