"""TorchExecutionProvider: a session's whole graph runs as one converted torch module."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
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
        # the module's forward itself: nn.Module.__call__ would look for hooks (none are ever
        # set on this private module) and GraphModule's would wrap errors, ~8 us a run
        self.forward = torch.compile(self.module) if options.get("compile") else self.module.forward
        inputs = model.graph.inputs
        inits = model.graph.initializers
        # per fed input, how its (type-checked) array becomes a tensor: most with
        # torch.from_numpy alone; ml_dtypes kinds and unknown types through dtypes.from_numpy
        self.converters = [(i, _converter(v)) for i, v in enumerate(inputs) if v.name not in inits]
        self.on_cpu = self.device.type == "cpu"
        # outputs declared as tensors numpy holds as torch does: handed over by .numpy() alone
        self.plain_outputs = self.on_cpu and all(
            getattr(getattr(v, "type", None), "dtype", None) is not None
            and v.type.dtype.name in _SHARED
            and not v.type.dtype.name.startswith("COMPLEX")
            for v in model.graph.outputs
        )
        # storages an output may share: the module's own (a graph output that is a weight)
        self.owned_storages = {
            t.untyped_storage().data_ptr()
            for t in (*self.module.parameters(), *self.module.buffers())
        }

    def run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """The graph's outputs for ``inputs`` (one per graph input, as the session checked them),
        as arrays the caller owns: copied only where torch returned a weight or a fed tensor.
        (A run's own cost is a few microseconds: a model of a millisecond is measured in
        benchmarks/bench_torch.py against calling the module on tensors.)"""
        with torch.inference_mode():
            args = [None if inputs[i] is None else convert(inputs[i])
                    for i, convert in self.converters]  # fmt: skip
            fed = {a.untyped_storage().data_ptr() for a in args if a is not None}
            if not self.on_cpu:
                args = [None if a is None else a.to(self.device) for a in args]
            outs = self.forward(*args)
            weights = self.owned_storages
            if self.plain_outputs:
                return [_plain_owned(o, weights, fed) for o in outs]
            return [_owned(o, weights, fed) for o in outs]


def _converter(value: Any) -> Callable[[np.ndarray], Any]:
    """numpy array -> tensor for a graph input: torch.from_numpy where the declared element
    type is one torch shares memory with (a copy for read-only and 0-d arrays, which torch
    cannot take as they are), dtypes.from_numpy otherwise."""
    dtype = getattr(getattr(value, "type", None), "dtype", None)
    if dtype is None or dtype.name not in _SHARED:
        return functools.partial(dtypes.from_numpy, widen=False)

    def convert(a: np.ndarray) -> Any:
        if a.ndim == 0 or not a.flags.writeable:
            a = np.array(a, copy=True)
        return torch.from_numpy(a)

    return convert


#: element types torch.from_numpy takes as numpy holds them
_SHARED = frozenset({"FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8",
                     "BOOL", "COMPLEX64", "COMPLEX128"})  # fmt: skip


def _plain_owned(t: Any, weights: set[int], fed: set[int]) -> np.ndarray:
    """``_owned`` for a tensor on the CPU of a dtype numpy shares."""
    ptr = t.untyped_storage().data_ptr()
    return (t.clone() if ptr in weights or ptr in fed else t).numpy()


def _owned(t: Any, weights: set[int], fed: set[int]) -> Any:
    """``t`` as a numpy array that shares memory with nothing the module or the caller keeps
    (lists for sequence outputs, None for an absent optional)."""
    if t is None:
        return None
    if isinstance(t, list | tuple):
        return [_owned(x, weights, fed) for x in t]
    if t.device.type != "cpu" or t.dtype in dtypes.NARROW or t.is_conj() or t.is_neg():
        return dtypes.to_numpy(t)
    return _plain_owned(t, weights, fed)
