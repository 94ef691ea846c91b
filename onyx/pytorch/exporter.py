"""``export``: a torch module to an ``onyx.ir.Model`` through ``torch.onnx.export``, verified."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onyx.errors import OnyxError, UnsupportedError, ValidationError
from onyx.ir import Model
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch


class ExportMismatchError(ValidationError):
    """The exported model's outputs differ from eager PyTorch's; ``report`` has one line each."""

    report: list[dict]


def _leaves(tree: Any) -> list:
    from torch.utils._pytree import tree_flatten

    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


def export(module: torch.nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None,
           *, dynamic_shapes: Any = None, opset: int | None = None, optimize: bool = True,
           verify: bool = True, rtol: float = 1e-4) -> Model:  # fmt: skip
    """``module`` as an onyx model: ``torch.onnx.export(dynamo=True)``, loaded and checked.

    ``args``/``kwargs`` are example inputs, ``dynamic_shapes`` as ``torch.export`` takes them,
    ``opset`` the ai.onnx version to target (torch's default when None). With ``verify`` the
    model runs under onyx on the example inputs and each output is compared with eager
    PyTorch's: a scaled difference (max |onyx - torch| / max(1, max |torch|)) above ``rtol``
    (ten times that for 16-bit floats) raises ``ExportMismatchError`` with a per-output report
    (max abs and relative difference). With ``optimize`` the model goes through
    ``onyx.optimize`` first (standard fused ops only: LayerNormalization, Gelu, Attention...;
    shape bookkeeping folded), so what is verified is what is returned.
    """
    import onyx

    kwargs = dict(kwargs or {})
    args = tuple(args)
    try:
        program = torch.onnx.export(module, args, kwargs=kwargs, dynamo=True,
                                    dynamic_shapes=dynamic_shapes, opset_version=opset,
                                    verbose=False)  # fmt: skip
    except ImportError as e:
        raise UnsupportedError(f"onyx.export needs onnxscript next to torch: {e}") from e
    except Exception as e:
        raise OnyxError(f"torch.onnx.export failed on {type(module).__name__}: {e}") from e
    model = onyx.load(program.model_proto.SerializeToString())
    if optimize:
        model = onyx.optimize(model)
    if verify:
        verify_export(model, module, args, kwargs, rtol)
    return model


def verify_export(model: Model, module: torch.nn.Module, args: tuple, kwargs: dict,
                  rtol: float = 1e-4) -> list[dict]:  # fmt: skip
    """Run ``model`` under onyx and ``module`` eagerly on the same inputs; the per-output report
    (raises ExportMismatchError when an output differs beyond tolerance)."""
    import onyx

    session = onyx.InferenceSession(model)
    inputs = _leaves((args, kwargs))
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ValidationError(
            f"export verification: the model takes {len(names)} inputs, the example has "
            f"{len(inputs)} tensors"
        )
    feeds = {n: dtypes.to_numpy(t) for n, t in zip(names, inputs)}
    got = session.run(None, feeds)
    with torch.no_grad():
        want = [dtypes.to_numpy(t) for t in _leaves(module(*args, **kwargs))]
    if len(got) != len(want):
        raise ExportMismatchError(
            f"export verification: onyx gives {len(got)} outputs, torch {len(want)}"
        )
    report, bad = [], []
    for name, g, w in zip([o.name for o in session.get_outputs()], got, want):
        entry = {"output": name, "shape": list(w.shape), "dtype": str(w.dtype)}
        if g.shape != w.shape:
            entry["problem"] = f"shape {list(g.shape)} != torch's {list(w.shape)}"
            bad.append(entry)
            report.append(entry)
            continue
        gf, wf = np.asarray(g, np.float64), np.asarray(w, np.float64)
        diff = np.abs(gf - wf)
        finite = np.isfinite(wf)
        entry["max_abs"] = float(diff[finite].max()) if finite.any() else 0.0
        scale = max(1.0, float(np.abs(wf[finite]).max())) if finite.any() else 1.0
        entry["max_rel"] = entry["max_abs"] / scale
        tol = rtol * (10 if w.dtype.itemsize <= 2 and w.dtype.kind not in "iub" else 1)
        same_special = np.array_equal(np.isnan(gf), np.isnan(wf)) and np.array_equal(
            gf[np.isinf(wf)], wf[np.isinf(wf)]
        )
        if entry["max_rel"] > tol or not same_special:
            entry["problem"] = f"scaled difference {entry['max_rel']:.3g} > {tol:.3g}"
            bad.append(entry)
        report.append(entry)
    if bad:
        lines = "\n".join(
            f"  {e['output']}: {e['problem']}" + (f" (max abs {e['max_abs']:.3g})" if
                                                   "max_abs" in e else "")
            for e in bad
        )  # fmt: skip
        err = ExportMismatchError(f"exported model differs from eager PyTorch:\n{lines}")
        err.report = report
        raise err
    return report


__all__ = ["ExportMismatchError", "export", "verify_export"]
