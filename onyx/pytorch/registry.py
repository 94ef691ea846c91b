"""The table of converters: (domain, op_type) -> functions by the opset version they start at.

A converter is ``fn(cx, *inputs, **attributes) -> output | tuple``: ``cx`` is the conversion's
context (static facts from shape inference, see ``onyx.pytorch.convert.Context``), inputs are
``torch.fx.Proxy`` (values known only when the module runs) or ``torch.Tensor`` (values known
now: operations on them fold at conversion) or None (an omitted optional input); attributes are
keyword-only, parsed as the runtime parses them, with the standard's defaults in the signature.
Bodies read like eager torch; they never branch on a Proxy.
"""

from __future__ import annotations

from onyx.runtime.kernels.registry import OpTable

CONVERTERS = OpTable()
converter = CONVERTERS.register


class NeedsValues(Exception):
    """Raised by a converter that needs values known only when the module runs (``cx.need``):
    the node then becomes one step of the module, its converter called on the real tensors."""


__all__ = ["CONVERTERS", "NeedsValues", "converter"]
