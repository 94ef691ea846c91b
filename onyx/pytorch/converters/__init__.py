"""Converters, one module per operator family (mirroring onyx/runtime/kernels); importing this
package registers them all in ``onyx.pytorch.registry.CONVERTERS``."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
