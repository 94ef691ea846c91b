"""Control flow: If, Loop, Scan and SequenceMap over prepared subgraph plans.

The plan compiles each graph attribute once into a ``Plan`` and passes it in place of the graph.
The values a subgraph reads from enclosing scopes arrive after the node's declared inputs
(``_n_inputs`` of them) and are handed to the subgraph as its captures.
"""

from __future__ import annotations

import numpy as np

from onyx.errors import KernelError
from onyx.ir import TensorType
from onyx.runtime.kernels.registry import kernel


def _empty_like_output(plan, index: int) -> np.ndarray:
    """An empty scan output for a loop that ran zero times, typed from the body's declaration."""
    t = plan.graph.outputs[index].type
    dtype = t.dtype.numpy if isinstance(t, TensorType) and t.dtype else np.float32
    return np.zeros((0,), dtype)


@kernel("If", 1)
class If:
    wants_subgraph_runner = True

    def __init__(self, *, then_branch, else_branch, _n_inputs=1):
        self.then_branch, self.else_branch = then_branch, else_branch

    def __call__(self, cond, *captures):
        flag = np.asarray(cond)
        if flag.size != 1:
            raise KernelError(f"If condition must hold one element, got shape {list(flag.shape)}")
        branch = self.then_branch if flag.reshape(()) else self.else_branch
        return tuple(branch.run((), captures))


@kernel("Loop", 1)
class Loop:
    wants_subgraph_runner = True

    def __init__(self, *, body, _n_inputs=2):
        self.body = body
        self.n_carried = _n_inputs - 2

    def __call__(self, max_trip=None, cond=None, *rest):
        carried, captures = list(rest[: self.n_carried]), rest[self.n_carried :]
        limit = None if max_trip is None else int(np.asarray(max_trip).reshape(()))
        keep_going = True if cond is None else bool(np.asarray(cond).reshape(()))
        scans: list[list] | None = None
        i = 0
        while keep_going and (limit is None or i < limit):
            outs = self.body.run([np.array(i, np.int64), np.array(keep_going), *carried], captures)
            keep_going = bool(np.asarray(outs[0]).reshape(()))
            carried = outs[1 : 1 + self.n_carried]
            if scans is None:
                scans = [[] for _ in outs[1 + self.n_carried :]]
            for bucket, value in zip(scans, outs[1 + self.n_carried :]):
                bucket.append(value)
            i += 1
        n_scan = len(self.body.graph.outputs) - 1 - self.n_carried
        if scans is None:
            stacked = [_empty_like_output(self.body, 1 + self.n_carried + k) for k in range(n_scan)]
        else:
            stacked = [np.stack(bucket) for bucket in scans]
        return tuple(carried) + tuple(stacked)


@kernel("Scan", 9)
class Scan:
    wants_subgraph_runner = True

    def __init__(self, *, body, num_scan_inputs, scan_input_directions=None, scan_output_directions=None,
                 scan_input_axes=None, scan_output_axes=None, _n_inputs=0):  # fmt: skip
        if not 0 < num_scan_inputs <= _n_inputs:
            raise KernelError(
                f"num_scan_inputs must be between 1 and the number of inputs ({_n_inputs}), got "
                f"{num_scan_inputs}"
            )  # a huge one made the lists below exhaust memory
        self.body, self.m = body, num_scan_inputs
        self.n_state = _n_inputs - num_scan_inputs
        self.in_dirs = scan_input_directions or [0] * self.m
        self.in_axes = scan_input_axes or [0] * self.m
        self.k = len(body.graph.outputs) - self.n_state
        self.out_dirs = scan_output_directions or [0] * self.k
        self.out_axes = scan_output_axes or [0] * self.k

    def __call__(self, *args):
        states = list(args[: self.n_state])
        scan_inputs = args[self.n_state : self.n_state + self.m]
        captures = args[self.n_state + self.m :]
        sequences = []
        for x, axis, direction in zip(scan_inputs, self.in_axes, self.in_dirs):
            x = np.moveaxis(x, axis % x.ndim, 0)
            sequences.append(x[::-1] if direction else x)
        lengths = {len(s) for s in sequences}
        if len(lengths) > 1:
            raise KernelError(f"scan inputs have different sequence lengths {sorted(lengths)}")
        steps = lengths.pop() if lengths else 0
        buckets: list[list] = [[] for _ in range(self.k)]
        for t in range(steps):
            outs = self.body.run([*states, *(s[t] for s in sequences)], captures)
            states = outs[: self.n_state]
            for bucket, value in zip(buckets, outs[self.n_state :]):
                bucket.append(value)
        results = []
        for k, bucket in enumerate(buckets):
            if not bucket:
                results.append(_empty_like_output(self.body, self.n_state + k))
                continue
            stacked = np.stack(bucket)
            if self.out_dirs[k]:
                stacked = stacked[::-1]
            results.append(np.moveaxis(stacked, 0, self.out_axes[k] % stacked.ndim))
        return tuple(states) + tuple(results)


@kernel("Scan", 8)
class ScanWithBatch:
    """Scan-8: a leading batch axis and an optional sequence_lens input."""

    wants_subgraph_runner = True

    def __init__(self, *, body, num_scan_inputs, directions=None, _n_inputs=0):
        self.inner = Scan(body=body, num_scan_inputs=num_scan_inputs,
                          scan_input_directions=directions, _n_inputs=_n_inputs - 1)  # fmt: skip
        self.n_state = _n_inputs - 1 - num_scan_inputs
        self.m = num_scan_inputs

    def __call__(self, sequence_lens, *args):
        states = args[: self.n_state]
        scans = args[self.n_state : self.n_state + self.m]
        captures = args[self.n_state + self.m :]
        batch = (states or scans)[0].shape[0]
        per_batch = []
        for b in range(batch):
            n = None if sequence_lens is None else int(sequence_lens[b])
            inputs = [s[b] for s in states] + [x[b][:n] for x in scans]
            per_batch.append(self.inner(*inputs, *captures))
        return tuple(np.stack([r[i] for r in per_batch]) for i in range(len(per_batch[0])))


@kernel("SequenceMap", 17)
class SequenceMap:
    wants_subgraph_runner = True

    def __init__(self, *, body, _n_inputs=1):
        self.body, self.n = body, _n_inputs

    def __call__(self, *args):
        inputs, captures = args[: self.n], args[self.n :]
        length = len(inputs[0])
        for extra in inputs[1:]:
            if isinstance(extra, list) and len(extra) != length:
                raise KernelError(f"SequenceMap inputs have lengths {length} and {len(extra)}")
        outputs: list[list] = [[] for _ in self.body.graph.outputs]
        for i in range(length):
            step = [x[i] if isinstance(x, list) else x for x in inputs]
            for bucket, value in zip(outputs, self.body.run(step, captures)):
                bucket.append(value)
        return tuple(outputs)
