"""torch, imported once for the bridge, with an error that names the extra when it is missing."""

from __future__ import annotations

from onyx.errors import UnsupportedError

try:
    import torch
    from torch import fx
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise UnsupportedError(
        f"the PyTorch bridge needs torch (pip install 'onyx[torch]'); importing it failed: {e}"
    ) from e

__all__ = ["fx", "torch"]
