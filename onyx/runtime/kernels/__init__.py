"""Kernels, one module per operator family; importing this package registers them all."""

import importlib
import pkgutil

from onyx.runtime.kernels.registry import KERNELS, kernel, lookup

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KERNELS", "kernel", "lookup"]
