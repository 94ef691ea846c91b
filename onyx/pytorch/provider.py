"""TorchExecutionProvider: a session's whole graph runs as one converted torch module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onyx.errors import OptionError, UnsupportedError
from onyx.ir import Model
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.convert import to_torch

_OPTIONS = ("device", "compile")


class TorchProvider:
    """``model`` converted by ``to_torch``, on ``device`` ("cpu", "cuda", "cuda:1", ...),
    optionally through ``torch.compile``; ``run`` takes and returns numpy arrays."""

    name = "TorchExecutionProvider"

    def __init__(self, model: Model, options: Mapping[str, Any] | None = None):
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise OptionError(
                f"TorchExecutionProvider: unknown option(s) {', '.join(unknown)}; it takes "
                f"{', '.join(_OPTIONS)}"
            )
        device = str(options.get("device", "cpu"))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UnsupportedError(
                f"TorchExecutionProvider: device {device!r} asked for, but this torch "
                f"({torch.__version__}) sees no CUDA device"
            )
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise OptionError(f"TorchExecutionProvider: bad device {device!r}: {e}") from None
        self.module = to_torch(model).to(self.device).eval()
        self.forward = torch.compile(self.module) if options.get("compile") else self.module
        inits = model.graph.initializers
        self.positions = [i for i, v in enumerate(model.graph.inputs) if v.name not in inits]
        self.on_cpu = self.device.type == "cpu"
        # storages an output may share: the module's own (a graph output that is a weight)
        self.owned_storages = {
            t.untyped_storage().data_ptr()
            for t in (*self.module.parameters(), *self.module.buffers())
        }

    def run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """The graph's outputs for ``inputs`` (one per graph input, as the session checked them),
        as arrays the caller owns: copied only where torch returned a weight or a fed tensor."""
        with torch.inference_mode():
            args = [None if inputs[i] is None else dtypes.from_numpy(inputs[i], widen=False)
                    for i in self.positions]  # fmt: skip
            fed = {a.untyped_storage().data_ptr() for a in args if a is not None}
            if not self.on_cpu:
                args = [None if a is None else a.to(self.device) for a in args]
            outs = self.forward(*args)
            shared = self.owned_storages | fed
            return [_owned(o, shared) for o in outs]


def _owned(t: Any, shared: set[int]) -> Any:
    """``t`` as a numpy array that shares memory with nothing the module or the caller keeps
    (lists for sequence outputs, None for an absent optional)."""
    if t is None:
        return None
    if isinstance(t, list | tuple):
        return [_owned(x, shared) for x in t]
    if t.device.type == "cpu" and t.untyped_storage().data_ptr() in shared:
        t = t.clone()
    return dtypes.to_numpy(t)
