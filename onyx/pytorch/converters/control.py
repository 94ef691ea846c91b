"""Control flow: If, Loop, Scan (mirroring runtime/kernels/control.py).

Each graph attribute becomes a module of its own (``cx.graph_module``: forward takes the body's
inputs, then the outer values it reads that are known only at run time) and the node one call
of a small driver module holding it: Python control flow around the body, run when the module
runs. An If whose condition is known now converts only the branch taken, in place.
"""

from __future__ import annotations

from typing import Any

from onyx.ir import Graph, TensorType
from onyx.pytorch import dtypes
from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


def _outputs(out: Any, n: int) -> tuple:
    """The ``n`` results of a module call (a Proxy of a tuple, or a tuple now)."""
    return tuple(out[i] for i in range(n))


def _empty_scan_output(cx, graph: Graph, index: int) -> torch.Tensor:
    """The scan output of a loop that ran zero times: empty, typed as the body declares."""
    t = graph.outputs[index].type
    dtype = dtypes.compute(t.dtype, cx.label) if isinstance(t, TensorType) and t.dtype else None
    return torch.zeros((0,), dtype=dtype or torch.float32)


# --- If ------------------------------------------------------------------------------------
class OnnxIf(torch.nn.Module):
    """Runs ``then_branch`` or ``else_branch`` by a one-element condition."""

    def __init__(self, then_branch, else_branch, n_then: int):
        super().__init__()
        self.then_branch, self.else_branch, self.n_then = then_branch, else_branch, n_then

    def forward(self, cond, *captures):
        if cond.numel() != 1:
            raise ValueError(f"If condition must hold one element, got shape {list(cond.shape)}")
        if bool(cond.reshape(())):
            return self.then_branch(*captures[: self.n_then])
        return self.else_branch(*captures[self.n_then :])


@converter("If", 1)
def if_(cx, cond, *, then_branch: Graph, else_branch: Graph):
    known = cx.const(cond)
    if known is not None:
        if known.size != 1:
            raise cx.fail(f"the condition must hold one element, got shape {list(known.shape)}")
        taken, name = (then_branch, "then_branch") if known.reshape(()) else (else_branch,
                                                                              "else_branch")  # fmt: skip
        return tuple(cx.inline_graph(taken, name))
    then_module, then_captures = cx.graph_module(then_branch, "then_branch")
    else_module, else_captures = cx.graph_module(else_branch, "else_branch")
    module = OnnxIf(then_module, else_module, len(then_captures))
    out = cx.call_module(module, "onnx_if", cond, *then_captures, *else_captures)
    return _outputs(out, cx.n_outputs)


# --- Loop ----------------------------------------------------------------------------------
class OnnxLoop(torch.nn.Module):
    """``body(i, cond, *carried, *captures) -> (cond, *carried, *scan values)`` while the
    condition holds and ``i`` is below the trip count; scan values stacked along a new axis 0."""

    def __init__(self, body, n_carried: int, empty_scans: list[torch.Tensor]):
        super().__init__()
        self.body, self.n_carried = body, n_carried
        for k, e in enumerate(empty_scans):
            self.register_buffer(f"empty_{k}", e)
        self.n_scans = len(empty_scans)

    def forward(self, max_trip, cond, *rest):
        carried, captures = list(rest[: self.n_carried]), rest[self.n_carried :]
        limit = None if max_trip is None else int(max_trip.reshape(()))
        keep_going = True if cond is None else bool(cond.reshape(()))
        scans: list[list] = [[] for _ in range(self.n_scans)]
        i = 0
        while keep_going and (limit is None or i < limit):
            flag = torch.tensor(keep_going)
            outs = self.body(torch.tensor(i, dtype=torch.int64), flag, *carried, *captures)
            keep_going = bool(outs[0].reshape(()))
            carried = list(outs[1 : 1 + self.n_carried])
            for bucket, value in zip(scans, outs[1 + self.n_carried :]):
                bucket.append(value)
            i += 1
        stacked = [torch.stack(b) if b else getattr(self, f"empty_{k}") for k, b in
                   enumerate(scans)]  # fmt: skip
        return (*carried, *stacked)


@converter("Loop", 1)
def loop(cx, max_trip=None, cond=None, *carried, body: Graph):
    n_carried = len(carried)
    n_scans = len(body.outputs) - 1 - n_carried
    empty = [_empty_scan_output(cx, body, 1 + n_carried + k) for k in range(n_scans)]
    module, captures = cx.graph_module(body, "body")
    out = cx.call_module(OnnxLoop(module, n_carried, empty), "onnx_loop", max_trip, cond,
                         *carried, *captures)  # fmt: skip
    return _outputs(out, n_carried + n_scans)


# --- Scan ----------------------------------------------------------------------------------
class OnnxScan(torch.nn.Module):
    """Scan-9+: ``body(*states, *slices, *captures) -> (*states, *scan values)`` along the scan
    axes of the scan inputs, in their directions; scan values stacked along the output axes."""

    def __init__(self, body, n_state: int, m: int, in_dirs, in_axes, out_dirs, out_axes,
                 empty_scans: list[torch.Tensor]):  # fmt: skip
        super().__init__()
        self.body, self.n_state, self.m = body, n_state, m
        self.in_dirs, self.in_axes, self.out_dirs, self.out_axes = in_dirs, in_axes, out_dirs, \
            out_axes  # fmt: skip
        for k, e in enumerate(empty_scans):
            self.register_buffer(f"empty_{k}", e)
        self.k = len(empty_scans)

    def forward(self, *args):
        states = list(args[: self.n_state])
        scan_inputs = args[self.n_state : self.n_state + self.m]
        captures = args[self.n_state + self.m :]
        sequences = []
        for x, axis, direction in zip(scan_inputs, self.in_axes, self.in_dirs):
            x = torch.movedim(x, axis % x.dim(), 0)
            sequences.append(torch.flip(x, [0]) if direction else x)
        lengths = {len(s) for s in sequences}
        if len(lengths) > 1:
            raise ValueError(f"scan inputs have different sequence lengths {sorted(lengths)}")
        steps = lengths.pop() if lengths else 0
        buckets: list[list] = [[] for _ in range(self.k)]
        for t in range(steps):
            outs = self.body(*states, *(s[t] for s in sequences), *captures)
            states = list(outs[: self.n_state])
            for bucket, value in zip(buckets, outs[self.n_state :]):
                bucket.append(value)
        results = []
        for k, bucket in enumerate(buckets):
            if not bucket:
                results.append(getattr(self, f"empty_{k}"))
                continue
            stacked = torch.stack(bucket)
            if self.out_dirs[k]:
                stacked = torch.flip(stacked, [0])
            results.append(torch.movedim(stacked, 0, self.out_axes[k] % stacked.dim()))
        return (*states, *results)


def _scan_module(cx, body: Graph, n_inputs: int, num_scan_inputs: int, in_dirs, in_axes,
                 out_dirs, out_axes) -> tuple[OnnxScan, list]:  # fmt: skip
    if not 0 < num_scan_inputs <= n_inputs:
        raise cx.fail(f"num_scan_inputs must be between 1 and the number of inputs ({n_inputs}),"
                      f" got {num_scan_inputs}")  # fmt: skip
    n_state = n_inputs - num_scan_inputs
    k = len(body.outputs) - n_state
    empty = [_empty_scan_output(cx, body, n_state + i) for i in range(k)]
    module, captures = cx.graph_module(body, "body")
    scan = OnnxScan(module, n_state, num_scan_inputs, in_dirs or [0] * num_scan_inputs,
                    in_axes or [0] * num_scan_inputs, out_dirs or [0] * k, out_axes or [0] * k,
                    empty)  # fmt: skip
    return scan, captures


@converter("Scan", 9)
def scan(cx, *inputs, body: Graph, num_scan_inputs: int,
         scan_input_directions: list[int] | None = None,
         scan_output_directions: list[int] | None = None,
         scan_input_axes: list[int] | None = None,
         scan_output_axes: list[int] | None = None):  # fmt: skip
    module, captures = _scan_module(cx, body, len(inputs), num_scan_inputs, scan_input_directions,
                                    scan_input_axes, scan_output_directions, scan_output_axes)  # fmt: skip
    out = cx.call_module(module, "onnx_scan", *inputs, *captures)
    return _outputs(out, len(body.outputs))


class OnnxScan8(torch.nn.Module):
    """Scan-8: a leading batch axis (each batch entry scanned alone) and sequence lengths."""

    def __init__(self, inner: OnnxScan):
        super().__init__()
        self.inner = inner

    def forward(self, sequence_lens, *args):
        n_state, m = self.inner.n_state, self.inner.m
        states, scans = args[:n_state], args[n_state : n_state + m]
        captures = args[n_state + m :]
        batch = (states or scans)[0].shape[0]
        per_batch = []
        for b in range(batch):
            n = None if sequence_lens is None else int(sequence_lens[b])
            inputs = [s[b] for s in states] + [x[b][:n] for x in scans]
            per_batch.append(self.inner(*inputs, *captures))
        return tuple(torch.stack([r[i] for r in per_batch]) for i in range(len(per_batch[0])))


@converter("Scan", 8)
def scan8(cx, sequence_lens, *inputs, body: Graph, num_scan_inputs: int,
          directions: list[int] | None = None):  # fmt: skip
    inner, captures = _scan_module(cx, body, len(inputs), num_scan_inputs, directions, None,
                                   None, None)  # fmt: skip
    out = cx.call_module(OnnxScan8(inner), "onnx_scan", sequence_lens, *inputs, *captures)
    return _outputs(out, len(body.outputs))


# --- SequenceMap ---------------------------------------------------------------------------
class OnnxSequenceMap(torch.nn.Module):
    """``body`` on the i-th element of each sequence input (tensor inputs passed whole); one
    output sequence per body output."""

    def __init__(self, body, n_inputs: int, n_outputs: int):
        super().__init__()
        self.body, self.n, self.n_outputs = body, n_inputs, n_outputs

    def forward(self, *args):
        inputs, captures = args[: self.n], args[self.n :]
        length = len(inputs[0])
        for extra in inputs[1:]:
            if isinstance(extra, list | tuple) and len(extra) != length:
                raise ValueError(f"SequenceMap inputs have lengths {length} and {len(extra)}")
        outputs: list[list] = [[] for _ in range(self.n_outputs)]
        for i in range(length):
            step = [x[i] if isinstance(x, list | tuple) else x for x in inputs]
            for bucket, value in zip(outputs, self.body(*step, *captures)):
                bucket.append(value)
        return tuple(outputs)


@converter("SequenceMap", 17)
def sequence_map(cx, input_sequence, *additional_inputs, body: Graph):
    inputs = (input_sequence, *additional_inputs)
    module, captures = cx.graph_module(body, "body")
    n = len(body.outputs)
    out = cx.call_module(OnnxSequenceMap(module, len(inputs), n), "onnx_sequence_map", *inputs,
                         *captures)  # fmt: skip
    return _outputs(out, n)
