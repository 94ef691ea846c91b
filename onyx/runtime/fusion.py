"""Build-time merges of a plan's steps.

- (Per-channel scalings and shifts after a Conv, Gemm or BatchNormalization with constant
  weights are folded into those weights before the plan is made, by onyx.passes' fold-affine:
  the session runs its plan on a copy of the graph rewritten so.)
- Elementwise steps that alone consume a producer's fresh result (Relu, Clip by constants,
  Swish, BatchNormalization in inference mode, Add/Sub/Mul/Div/Sum by a constant or by another
  tensor) run as the producer's epilogue, in place, region by region (epilogue.py); Conv
  applies it to each band it computes, MatMul and Gemm a bias along the last axis and a ReLU
  or Clip to each part of their product (threads.Finish). These compute exactly what the steps compute, except
  that consecutive per-channel scalings and shifts by constants are merged into one (in
  float64).
- A run of such elementwise steps after any other step runs as one chain: one pass that reads
  the input once and writes one new array.
- A squeeze-excite block (ReduceMean over H and W, 1x1 Conv, Relu or Swish, 1x1 Conv, Sigmoid or
  HardSigmoid, Mul of the block's input by that gate) runs as one step (``SqueezeExcite``), the
  same kernels' values without the per-step costs of its five steps on (N, C, 1, 1) tensors. A
  profile counts its time under the Mul.
- A Concat whose inputs are each a Conv's result that it alone reads (the modules of GoogLeNet
  and SqueezeNet) runs those Convs itself, each writing into its place in the Concat's result
  (``gather_concats``). A profile then counts their time under the Concat.
- A chain of Concats, each joining the one before it and more (DenseNet's blocks), writes into
  one buffer the first of them makes, each only its new inputs (``chain_concats``).
"""

from __future__ import annotations

import collections
import functools
import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from onyx.errors import AllocationError, ExecutionError, OnyxError
from onyx.ir import Node
from onyx.runtime import compiled, threads
from onyx.runtime.compiled import MUL
from onyx.runtime.epilogue import Extra, Follower, Result, run_chain, run_fused, swish
from onyx.runtime.kernels.conv import Conv, channels_last
from onyx.runtime.kernels.registry import SESSION_DOMAIN
from onyx.runtime.kernels.tensor import concat, concat_1

# Producers whose result is a fresh array (or one of their inputs, which run_fused detects).
_FRESH_RESULT = frozenset({
    "Conv", "BatchNormalization", "Add", "Sub", "Mul", "Div", "Gemm", "MatMul", "Sum", "Concat",
    "MaxPool", "AveragePool",
})  # fmt: skip
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Sum": np.add}
_COMMUTATIVE = frozenset({"Add", "Mul", "Sum"})
_OWN_DOMAINS = frozenset({"", "ai.onnx", SESSION_DOMAIN})  # the followers' ops: these only

StepTuple = tuple[Node, Callable, list[int], list[int]]


def fuse(steps: list[StepTuple], template: list[Any], fed: set[int],
         output_slots: list[int]) -> list[StepTuple]:  # fmt: skip
    """The steps with producers and their elementwise consumers merged. ``template`` holds the
    constants by slot."""
    readers = collections.Counter(i for _, _, ins, _ in steps for i in ins if i >= 0)
    outputs = set(output_slots)

    def constant(i: int) -> bool:
        return i >= 0 and i not in fed and template[i] is not None

    fused: list[StepTuple] = []
    chains: dict[int, tuple[list[Follower], list[int]]] = {}  # fused index -> followers, extras
    heads: dict[int, StepTuple] = {}  # fused index -> the step a chain starts with, as it was
    for node, fn, ins, outs in steps:
        host = fused[-1] if fused else None
        position = None
        if host is not None and len(host[3]) == 1 and len(outs) == 1:
            result = host[3][0]
            if result not in outputs and readers[result] == 1 and result in ins:
                position = ins.index(result)
        if position is not None:
            last = len(fused) - 1
            if host[0].op_type in _FRESH_RESULT or last in heads:
                followers, extras = chains.get(last, ([], []))
                follower = _follower(node, fn, ins, position, template, constant, extras)
                if follower is not None:
                    merged = _merged_affine(followers[-1], follower) if followers else None
                    if merged is not None:
                        followers[-1] = merged
                    else:
                        followers.append(follower)
                    chains[last] = (followers, extras)
                    fused[-1] = (host[0], host[1], host[2], outs)
                    continue
        # not merged into the step before: it may start an elementwise chain of its own
        if len(outs) == 1 and ins and ins[0] >= 0 and not constant(ins[0]):
            extras = []
            follower = _follower(node, fn, ins, 0, template, constant, extras)
            if follower is not None:
                chains[len(fused)] = ([follower], extras)
                heads[len(fused)] = (node, fn, ins, outs)
                fused.append((node, fn, [ins[0]], outs))
                continue
        fused.append((node, fn, ins, outs))
    for index, (followers, extras) in chains.items():
        node, fn, ins, outs = fused[index]
        if index in heads:
            if outs == heads[index][3]:  # nothing joined it: the step as it was
                fused[index] = (node, heads[index][1], heads[index][2], outs)
                continue
            run = run_chain(tuple(followers))
        else:
            takes = getattr(getattr(fn, "func", fn), "takes_epilogue", False)  # (or a partial's)
            run = run_fused(fn, tuple(followers), len(ins), takes)
        fused[index] = (node, run, ins + extras, outs)
    return fused


def _follower(node: Node, fn: Callable, ins: list[int], position: int, template: list[Any],
              constant: Callable[[int], bool], extras: list[int]) -> Follower | None:  # fmt: skip
    """``node`` as a Follower of the result at input ``position``, or None where it cannot be
    one. An operand computed at run time is appended to ``extras``."""
    if node.domain not in _OWN_DOMAINS:  # (a custom op may share a standard op's name)
        return None
    op = node.op_type
    if op == "Relu" and len(ins) == 1:
        return Follower(((np.maximum, None, False),), fn, (Result(),))
    if op == "BatchNormalization" and position == 0:
        return _batchnorm_follower(node, fn, ins, template, constant)
    if op == "Clip" and position == 0 and len(ins) > 1:  # (opset 11 on: bounds as inputs)
        return _clip_follower(fn, ins, template, constant)
    if op == "Swish" and len(ins) == 1 and node.attribute("alpha", 1.0) == 1.0:
        return Follower(((swish, None, False),), fn, (Result(),))
    if op not in _BINARY or len(ins) != 2 or (position != 0 and op not in _COMMUTATIVE):
        return None
    other = ins[1 - position]
    if other < 0:
        return None
    if constant(other):
        operand = template[other]
        # (C, 1, ..., 1) and (1, C, 1, ..., 1) read as per channel, for the rank they imply
        rank = _per_channel_rank(operand.shape) if operand.size > 1 else None
        per_channel = rank is not None
        args = [operand, operand]
        args[position] = Result()
        ops = ((_BINARY[op], operand.reshape(-1) if per_channel else operand, per_channel),)
        return Follower(ops, fn, tuple(args), rank)
    operand = Extra(len(extras))
    extras.append(other)
    args = [operand, operand]
    args[position] = Result()
    return Follower(((_BINARY[op], operand, False),), fn, tuple(args))


def _clip_follower(fn, ins, template, constant) -> Follower | None:
    """Clip by constant scalar bounds (ReLU6 after MobileNet's convolutions) as a maximum and
    a minimum: what the Clip kernel computes, NaN kept."""
    bounds = [template[i] if i >= 0 and constant(i) else None for i in ins[1:3]]
    if any(i >= 0 and b is None for i, b in zip(ins[1:3], bounds)) or bounds == [None, None]:
        return None  # a bound computed at run time, or no bound at all
    if any(b is not None and b.size != 1 for b in bounds):
        return None
    ops = tuple((ufunc, b.reshape(()), False)
                for ufunc, b in zip((np.maximum, np.minimum), bounds) if b is not None)  # fmt: skip
    return Follower(ops, fn, (Result(), *bounds))


def _per_channel_rank(shape: tuple[int, ...]) -> int | None:
    """The rank of result for which a constant of ``shape`` holds one value per channel (axis
    1), or None: (C, 1, ..., 1) broadcasts that way against rank len(shape) + 1, and
    (1, C, 1, ..., 1) against rank len(shape). (A vector (C,) is left as numpy broadcasts it,
    along the last axis, whatever the rank.)"""
    if len(shape) >= 2 and all(n == 1 for n in shape[1:]):
        return len(shape) + 1
    if len(shape) >= 2 and shape[0] == 1 and all(n == 1 for n in shape[2:]):
        return len(shape)
    return None


def _batchnorm_constants(node: Node, ins, template, constant) -> tuple | None:
    """(scale, bias, mean, var) of a BatchNormalization in inference mode with constant vectors
    of one length, or None."""
    if len(ins) != 5 or not all(constant(i) for i in ins[1:]):
        return None
    if node.attribute("training_mode", 0) or node.attribute("spatial", 1) != 1:
        return None
    params = tuple(template[i] for i in ins[1:])
    if params[0].ndim != 1 or any(p.shape != params[0].shape for p in params[1:]):
        return None
    return params


def _batchnorm_follower(node, fn, ins, template, constant) -> Follower | None:
    """Inference BatchNormalization as y * mult + shift per channel, with mult and shift
    computed as its kernel computes them (so the result is the same to the bit)."""
    params = _batchnorm_constants(node, ins, template, constant)
    if params is None:
        return None
    scale, bias, mean, var = params
    dtype = scale.dtype
    if dtype not in (np.float32, np.float64) or any(p.dtype != dtype for p in params):
        return None
    mult = scale / np.sqrt(var + dtype.type(node.attribute("epsilon", 1e-5)))
    shift = bias - mean * mult
    ops = ((np.multiply, mult, True), (np.add, shift, True))
    return Follower(ops, fn, (Result(), *params))


def _merged_affine(first: Follower, second: Follower) -> Follower | None:
    """Two per-channel scale-and-shift followers as one (computed in float64), or None."""
    a, b = _follower_affine(first), _follower_affine(second)
    if a is None or b is None:
        return None
    (f1, o1, r1, d1), (f2, o2, r2, d2) = a, b
    if d1 != d2 or (r1 is not None and r2 is not None and r1 != r2):
        return None
    if f1.size > 1 and f2.size > 1 and f1.size != f2.size:
        return None
    factor, offset = f1 * f2, o1 * f2 + o2
    size = max(factor.size, offset.size)
    per_channel = size > 1
    shape = (size,) if per_channel else ()
    factor, offset = (np.broadcast_to(v, shape).astype(d1) for v in (factor, offset))
    ops = ((np.multiply, factor, per_channel), (np.add, offset, per_channel))

    steps = _InSequence(_parts(first) + _parts(second))
    return Follower(ops, steps, (Result(),), r1 if r1 is not None else r2)


class _InSequence:
    """The fallback of merged followers: their own kernels, one after another."""

    def __init__(self, followers: tuple[Follower, ...]):
        self.followers = followers

    def __call__(self, y):
        for follower in self.followers:
            y = follower.kernel(*[y if type(a) is Result else a for a in follower.args])
        return y


def _parts(follower: Follower) -> tuple[Follower, ...]:
    kernel = follower.kernel
    return kernel.followers if isinstance(kernel, _InSequence) else (follower,)


def _follower_affine(follower: Follower):
    """(factor, offset, rank, dtype) of a follower that scales then shifts by constants."""
    ops = follower.ops
    if any(type(operand) is Extra or operand is None for _, operand, _ in ops):
        return None
    if not ops or not all(ufunc in (np.multiply, np.add) for ufunc, _, _ in ops):
        return None
    dtypes = {operand.dtype for _, operand, _ in ops}
    if len(dtypes) != 1:
        return None
    factor, offset = np.ones(()), np.zeros(())
    for ufunc, operand, per_channel in ops:
        v = operand.astype(np.float64)
        if not per_channel and v.ndim != 0:  # (a (1, 1) scalar may raise the result's rank)
            return None
        if ufunc is np.multiply:
            factor, offset = factor * v, offset * v
        else:
            offset = offset + v
    return factor, offset, follower.rank, dtypes.pop()


def _concat_axis(fn: Callable) -> int | None:
    """The axis of a plain Concat step's kernel, or None for any other step."""
    kernel = fn.func if isinstance(fn, functools.partial) else fn
    if kernel not in (concat, concat_1):
        return None
    return fn.keywords.get("axis", 1) if isinstance(fn, functools.partial) else 1


def _conv_of(fn: Callable) -> Conv | None:
    """The Conv a step runs (alone, or with its fused followers), or None."""
    kernel = getattr(fn, "kernel", fn)
    return kernel if isinstance(kernel, Conv) else None


_SQUEEZE_EXCITE_LAST = True  # depthwise Convs before a fused block write channel-last (a
# switch for bench_switch.py --build: False, they write NCHW for it)


def mark_channels_last(
    steps: list[StepTuple], template: list[Any], output_slots: list[int]
) -> None:
    """Let a pointwise Conv whose result only depthwise Convs read, and a depthwise one whose
    result only pointwise or depthwise ones read (or a squeeze-excite block before a pointwise
    one), return it channel-last (``Conv.channels_last``; kernels/conv.py says why): MobileNet's
    and EfficientNet's expansions into their depthwise convolutions and those into their
    projections. (Between two pointwise ones it would only add transposes.)"""

    def kind(fn: Callable, ins: list[int]) -> tuple[Conv | None, str | None]:
        conv = _conv_of(fn)
        weight = template[ins[1]] if conv is not None and len(ins) > 1 and ins[1] >= 0 else None
        if type(weight) is not np.ndarray:
            return None, None
        return conv, conv.channels_last_kind(weight.shape)

    readers: dict[int, list[tuple[Callable, list[int]]]] = collections.defaultdict(list)
    for _, fn, ins, _ in steps:
        for i in set(ins):
            if i >= 0:
                readers[i].append((fn, ins))
    outputs = set(output_slots)
    block_outs = {id(fn): outs for _, fn, _, outs in steps if isinstance(fn, SqueezeExcite)}

    def read_by(slot: int, wanted: set[str]) -> bool:
        """Whether ``slot`` is no output and only Convs of the ``wanted`` kinds read it, each
        as its X and once (or, with "squeeze-excite" wanted, squeeze-excite blocks whose
        results only pointwise Convs read: those blocks keep the layout)."""
        if slot in outputs or not readers[slot]:
            return False
        for reader, used in readers[slot]:
            if used.index(slot) != 0 or used.count(slot) != 1:
                return False
            if isinstance(reader, SqueezeExcite) and "squeeze-excite" in wanted:
                outs = block_outs[id(reader)]
                if len(outs) != 1 or not read_by(outs[0], {"pointwise"}):
                    return False
            elif kind(reader, used)[1] not in wanted:
                return False
        return True

    for _, fn, ins, outs in steps:
        conv, made = kind(fn, ins)
        if made is None or len(outs) != 1:
            continue
        wanted = {"depthwise"} if made == "pointwise" else {"pointwise", "depthwise"}
        if made == "depthwise" and _SQUEEZE_EXCITE_LAST:
            wanted.add("squeeze-excite")
        conv.channels_last = read_by(outs[0], wanted)


def gather_concats(steps: list[StepTuple], output_slots: list[int],
                   label: Callable[[Node], str]) -> list[StepTuple]:  # fmt: skip
    """The steps with each Concat whose inputs all come from Convs that only it reads running
    those Convs itself (``GatheredConcat``). The Convs move to the Concat's place in the order:
    read by it alone, they are needed nowhere before it. ``label`` names a node in errors."""
    made_by = {outs[0]: index for index, (_, _, _, outs) in enumerate(steps) if len(outs) == 1}
    readers = collections.Counter(i for _, _, ins, _ in steps for i in ins if i >= 0)
    outputs = set(output_slots)
    gathered: dict[int, list[int]] = {}  # Concat step index -> its Convs' step indices
    for index, (_, fn, ins, outs) in enumerate(steps):
        if _concat_axis(fn) is None or len(outs) != 1 or len(ins) < 2 or len(set(ins)) < len(ins):
            continue
        convs = [made_by.get(i) for i in ins]
        if all(
            j is not None and _conv_of(steps[j][1]) is not None
            and readers[i] == 1 and i not in outputs
            for i, j in zip(ins, convs)
        ):  # fmt: skip
            gathered[index] = convs

    def merged(step: StepTuple, parts: list[StepTuple]) -> StepTuple:
        node, fn, _, outs = step
        fn = GatheredConcat(_concat_axis(fn), [(p[1], len(p[2]), label(p[0])) for p in parts])
        return node, fn, [i for p in parts for i in p[2]], outs

    return _merge_groups(steps, gathered, merged)


_CHAIN_CONCATS = True  # a switch for bench_switch.py --build: False, each Concat copies all


def chain_concats(steps: list[StepTuple], output_slots: list[int]) -> list[StepTuple]:
    """The steps with each chain of Concats, each joining the one before it (its first input,
    which no other Concat takes first and which is no graph output) and more along the same
    axis, as ``ChainedConcat`` steps: DenseNet's blocks, where each layer's Concat copied all
    the block's channels so far again (light_densenet121: 1.6 ms of Concat a run on one
    thread, onnxruntime's 1.0; 1.0 so)."""
    if not _CHAIN_CONCATS:
        return steps
    outputs = set(output_slots)
    axes = {index: _concat_axis(fn) for index, (_, fn, _, _) in enumerate(steps)}
    concats = [i for i, axis in axes.items() if axis is not None
               and len(steps[i][3]) == 1 and len(steps[i][2]) >= 2]  # fmt: skip
    made_by = {steps[i][3][0]: i for i in concats}
    firsts = collections.Counter(steps[i][2][0] for i in concats)
    after: dict[int, int] = {}  # a chained Concat's step index -> the next one's
    for i in concats:
        head, rest = steps[i][2][0], steps[i][2][1:]
        before = made_by.get(head)
        if (before is not None and axes[before] == axes[i] and firsts[head] == 1
                and head not in outputs and head not in rest):  # fmt: skip
            after[before] = i
    last_read = {i: index for index, (_, _, ins, _) in enumerate(steps) for i in ins if i >= 0}
    chained = list(steps)
    for start in set(after) - set(after.values()):
        members = [start]
        while members[-1] in after:
            members.append(after[members[-1]])
        # (the last result may be the whole buffer, which a follower may then change in place,
        # where no earlier result of the chain is read after it)
        whole = all(last_read[steps[i][3][0]] <= members[-1] for i in members[:-1])
        chain = ConcatChain()
        for index in members:
            node, fn, ins, outs = steps[index]
            last = index == members[-1]
            member = ChainedConcat(fn, axes[index], chain, first=index == start, last=last,
                                   whole=last and whole)  # fmt: skip
            chained[index] = (node, member, ins, outs)
    return chained


class ConcatChain:
    """What the Concats of one chain share: the buffers they made (weakly held), each with room
    along the axis for the whole chain's result, and that result's shape at the last run."""

    def __init__(self):
        self.shape: tuple[int, ...] | None = None
        self._made: dict[int, weakref.ref] = {}

    def make(self, shape: tuple[int, ...], axis: int, dtype) -> np.ndarray:
        """A buffer for a result of ``shape``, with room along ``axis`` for the last run's
        whole result where the other axes agree."""
        room = list(shape)
        if self.shape is not None and len(self.shape) == len(shape):
            rest = self.shape[:axis] + self.shape[axis + 1 :]
            if rest == shape[:axis] + shape[axis + 1 :]:
                room[axis] = max(room[axis], self.shape[axis])
        buffer = np.empty(room, dtype)
        # (a copy of the items first: a run in another thread may add to them meanwhile)
        for key, ref in list(self._made.items()):
            if ref() is None:
                self._made.pop(key, None)
        self._made[id(buffer)] = weakref.ref(buffer)
        return buffer

    def room_after(self, head: np.ndarray, axis: int, total: int) -> np.ndarray | None:
        """The buffer ``head`` begins where ``head`` is a leading part of one this chain made
        (along ``axis``) with room up to ``total``; else None."""
        base = head.base
        if type(base) is not np.ndarray:
            return None
        ref = self._made.get(id(base))
        if ref is None or ref() is not base:
            return None
        fits = (
            base.ndim == head.ndim
            and base.dtype == head.dtype
            and head.ctypes.data == base.ctypes.data
            and head.strides == base.strides
            and base.shape[axis] >= total
            and base.shape[:axis] + base.shape[axis + 1 :] == head.shape[:axis] + head.shape[axis + 1 :]
        )  # fmt: skip
        return base if fits else None


class ChainedConcat:
    """A Concat of a chain (``chain_concats``), where every axis before the joined one has size
    1 (batch 1 along the channels: each part one block of memory): its result is the leading
    part of a buffer with room for the whole chain's, made by the chain's first Concat (sized
    at the run before), so a later Concat whose first input is that part writes only its other
    inputs after it. Where that does not hold (other shapes, a first run, a head made
    elsewhere), a buffer is made and the head copied into it; anything else runs the plain
    Concat. The results are views, which no later step changes in place (run_fused leaves
    views alone), but for the chain's last where ``whole`` (no earlier result read after it):
    the buffer itself, where it is the result's size."""

    def __init__(self, plain: Callable, axis: int, chain: ConcatChain, first: bool, last: bool,
                 whole: bool = False):  # fmt: skip
        self.plain, self.axis, self.chain = plain, axis, chain
        self.first, self.last, self.whole = first, last, whole

    def __call__(self, *inputs):
        head = inputs[0]
        rank = getattr(head, "ndim", 0)
        if not (type(head) is np.ndarray and -rank <= self.axis < rank):
            return self.plain(*inputs)
        axis = self.axis % rank
        rest = head.shape[:axis] + head.shape[axis + 1 :]
        if math.prod(head.shape[:axis]) != 1 or not all(
            type(x) is np.ndarray and x.dtype == head.dtype and x.ndim == rank
            and x.shape[:axis] + x.shape[axis + 1 :] == rest and x.flags.c_contiguous
            for x in inputs
        ):  # fmt: skip
            return self.plain(*inputs)  # (which reports what is wrong, if anything)
        total = sum(x.shape[axis] for x in inputs)
        shape = (*head.shape[:axis], total, *head.shape[axis + 1 :])
        buffer = None if self.first else self.chain.room_after(head, axis, total)
        start = head.shape[axis]
        if buffer is None:
            buffer = self.chain.make(shape, axis, head.dtype)
            start = 0
        inner = math.prod(head.shape[axis + 1 :])
        flat = buffer.reshape(-1)
        for x in inputs if start == 0 else inputs[1:]:
            stop = start + x.shape[axis]
            threads.copy(x, flat[start * inner : stop * inner])
            start = stop
        if self.last:
            self.chain.shape = shape
            if self.whole and buffer.shape[axis] == total:
                return buffer  # (its own data: a fused follower may work in place on it)
        return buffer[(slice(None),) * axis + (slice(0, total),)]


def _merge_groups(steps: list[StepTuple], groups: dict[int, list[int]],
                  merge: Callable[[StepTuple, list[StepTuple]], StepTuple]) -> list[StepTuple]:  # fmt: skip
    """The steps with each of ``groups`` (a step's index -> the indices of the steps it takes
    in) made one step, ``merge(step, the steps taken in)``, at that step's place: the steps
    taken in are read by their group alone, so nothing before it needs them."""
    taken = {j for group in groups.values() for j in group}
    return [
        merge(step, [steps[j] for j in groups[index]]) if index in groups else step
        for index, step in enumerate(steps)
        if index not in taken
    ]


class GatheredConcat:
    """Concat of Conv results, running the Convs: each computes into its own block of the
    result where the layout allows (every axis before the concatenation axis of size 1: batch 1
    along channels, where each input is one block of the result's memory); otherwise the Convs
    run as they would and their results are concatenated."""

    def __init__(self, axis: int, parts: list[tuple[Callable, int, str]]):
        self.axis = axis
        self.parts = parts  # (step function, its number of inputs, its label)

    def __call__(self, *args):
        inputs, start = [], 0
        for _, count, _ in self.parts:
            inputs.append(args[start : start + count])
            start += count
        shapes = self._shapes(inputs)
        if shapes is None:
            results = [self._run(k, part) for k, part in enumerate(inputs)]
            return concat(*results, axis=self.axis)
        axis = self.axis % len(shapes[0])
        total = list(shapes[0])
        total[axis] = sum(shape[axis] for shape in shapes)
        y = np.empty(total, inputs[0][0].dtype)
        flat, offset = y.reshape(-1), 0
        for k, (part, shape) in enumerate(zip(inputs, shapes)):
            size = math.prod(shape)
            block = flat[offset : offset + size].reshape(shape)
            result = self._run(k, part, block)
            if result is not block:  # (a path that cannot compute into it)
                block[...] = result
            offset += size
        return y

    def _shapes(self, inputs) -> list[tuple[int, ...]] | None:
        """The Convs' result shapes, where they can all compute into blocks of one array."""
        first = inputs[0][0]
        if type(first) is not np.ndarray or first.dtype.kind != "f":
            return None
        shapes = []
        for (fn, _, _), part in zip(self.parts, inputs):
            x, w = part[0], part[1]
            if type(x) is not np.ndarray or x.dtype != first.dtype or type(w) is not np.ndarray:
                return None
            try:
                shapes.append(_conv_of(fn).output_shape(x, w))
            except (OnyxError, ValueError, TypeError):
                return None  # (the Conv itself reports it, when run)
        rank, axis = len(shapes[0]), self.axis
        if not -rank <= axis < rank:
            return None
        axis %= rank
        rest = [shape[:axis] + shape[axis + 1 :] for shape in shapes]
        if math.prod(shapes[0][:axis]) != 1 or any(r != rest[0] for r in rest):
            return None
        return shapes

    def _run(self, k: int, part, out=None):
        """Conv ``k`` on its inputs, into ``out`` where given; its errors named by its node."""
        fn, _, label = self.parts[k]
        try:
            return fn(*part) if out is None else fn(*part, out=out)
        except ExecutionError as e:
            if str(e).startswith("node "):
                raise
            raise type(e)(f"{label}: {e}") from e
        except MemoryError as e:
            raise AllocationError(f"{label}: out of memory: {e}") from e
        except Exception as e:
            message = str(e) if isinstance(e, OnyxError) else f"{type(e).__name__}: {e}"
            raise ExecutionError(f"{label} failed: {message}") from e


# The activations between a squeeze-excite's two convolutions and the gates after them.
_SQUEEZE_ACTIVATIONS = frozenset({"Relu", "Swish"})
_GATES = frozenset({"Sigmoid", "HardSigmoid"})


def fuse_squeeze_excites(steps: list[StepTuple], template: list[Any], fed: set[int],
                         output_slots: list[int]) -> list[StepTuple]:  # fmt: skip
    """The steps with each squeeze-excite block (EfficientNet's, MobileNetV3's) as one step:
    ReduceMean of x over its two spatial axes (keepdims), a 1x1 Conv, Relu or Swish, a 1x1
    Conv, Sigmoid or HardSigmoid, then Mul of x by that gate, each intermediate read by the
    next step alone. Five of those six steps work on (N, C, 1, 1) tensors, where each costs its
    kernel's Python overhead (the Convs' ~8 us each) for a few hundred values
    (``SqueezeExcite``). Runs before ``fuse``, on the unfused steps."""
    made_by = {outs[0]: index for index, (_, _, _, outs) in enumerate(steps) if len(outs) == 1}
    readers = collections.Counter(i for _, _, ins, _ in steps for i in ins if i >= 0)
    outputs = set(output_slots)

    def constant(i: int) -> bool:
        return i >= 0 and i not in fed and template[i] is not None

    def single(slot: int, ops: frozenset[str]) -> int | None:
        """The step making ``slot``, one of ``ops`` in a standard domain, where only one step
        reads slot and it is no output."""
        index = made_by.get(slot)
        if index is None or readers[slot] != 1 or slot in outputs:
            return None
        node = steps[index][0]
        return index if node.op_type in ops and node.domain in _OWN_DOMAINS else None

    blocks: dict[int, list[int]] = {}  # Mul step index -> the block's other step indices
    for index, (node, _, ins, outs) in enumerate(steps):
        if (node.op_type != "Mul" or node.domain not in _OWN_DOMAINS or len(ins) != 2
                or len(outs) != 1 or any(i < 0 or constant(i) for i in ins)):  # fmt: skip
            continue
        for position in (0, 1):
            x, gate = ins[1 - position], ins[position]
            found = [single(gate, _GATES)]
            for ops in ({"Conv"}, _SQUEEZE_ACTIVATIONS, {"Conv"}, {"ReduceMean"}):
                found.append(None if found[-1] is None else single(steps[found[-1]][2][0], ops))
            if None in found:
                continue
            gate_step, expand, activation, squeeze, reduce = found
            if steps[reduce][2][0] == x and _squeezes(steps, template, constant, reduce, squeeze,
                                                      activation, expand):  # fmt: skip
                blocks[index] = [reduce, squeeze, activation, expand, gate_step]
                break

    def merged(step: StepTuple, parts: list[StepTuple]) -> StepTuple:
        node, fn, ins, outs = step
        reduce, squeeze, activation, expand, gate = parts
        x = reduce[2][0]
        # (each step's constant arguments; None where it reads a value made at run time)
        arguments = [[template[i] if i >= 0 else None for i in part[2]] for part in parts]
        gate_node = gate[0]
        kinds = (activation[0].op_type, gate_node.op_type, gate_node.attribute("alpha", 0.2),
                 gate_node.attribute("beta", 0.5))  # fmt: skip
        fn = SqueezeExcite(
            kinds=kinds,
            reduce=(reduce[1], arguments[0]),
            squeeze=_weight_and_bias(squeeze, template),
            activation=activation[1],
            expand=_weight_and_bias(expand, template),
            gate=gate[1],
            multiply=(fn, ins.index(x)),
            steps=[(part[1], args, part[2], part[3][0]) for part, args in zip(parts, arguments)],
            source=x,
        )
        return node, fn, [x], outs

    return _merge_groups(steps, blocks, merged)


def _weight_and_bias(step: StepTuple, template: list[Any]) -> tuple[np.ndarray, Any]:
    """A Conv step's constant weight and bias (None where it has none)."""
    ins = step[2]
    return template[ins[1]], template[ins[2]] if len(ins) > 2 and ins[2] >= 0 else None


def _squeezes(steps, template, constant, reduce, squeeze, activation, expand) -> bool:
    """Whether the matched steps compute a squeeze-excite's gate: the mean over axes 2 and 3
    kept as (N, C, 1, 1), two 1x1 Convs of one group with constant weights (and biases, where
    given) and no padding, C -> R -> C channels, a Swish of alpha 1."""
    node, _, ins, _ = steps[reduce]
    if node.attribute("keepdims", 1) != 1:
        return False
    axes = node.attribute("axes")
    if len(ins) > 1 and ins[1] >= 0:
        axes = template[ins[1]] if constant(ins[1]) else None
    if axes is None or sorted(int(a) % 4 for a in np.asarray(axes).reshape(-1)) != [2, 3]:
        return False
    weights = []
    for index in (squeeze, expand):
        node, _, ins, _ = steps[index]
        weight = template[ins[1]] if len(ins) > 1 and constant(ins[1]) else None
        if (
            weight is None
            or weight.ndim != 4
            or weight.shape[2:] != (1, 1)
            or node.attribute("group", 1) != 1
            or any(node.attribute("pads", None) or ())
            or node.attribute("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
            or (len(ins) > 2 and ins[2] >= 0 and not constant(ins[2]))
            or weight.dtype not in (np.float32, np.float64)
        ):
            return False
        weights.append(weight)
    first, second = weights
    node = steps[activation][0]
    if node.op_type == "Swish" and node.attribute("alpha", 1.0) != 1.0:
        return False
    return first.shape[0] == second.shape[1] and second.shape[0] == first.shape[1]


class SqueezeExcite:
    """A squeeze-excite block as one step (``fuse_squeeze_excites``). With the compiled kernels
    (a C-contiguous float input): the means of x's rows, the gates from them in one compiled
    call (``_jit.squeeze_excite_gates``: both products, the activation and the gate), then x
    times each row's gate, the first and last over the session's threads. Else: the mean by
    the ReduceMean's kernel, the two 1x1 convolutions as the products by a vector that Conv
    computes for one pixel (the same numpy calls, without Conv's bookkeeping), the activation
    and the gate by their kernels, then the Mul's kernel. (Each of those kernels' calls cost
    5-15 us on EfficientNet-B0's blocks, a block 50-100 us; timings noted on issue 17.) Any
    input the block was not matched for (another rank, channel count or dtype) runs the steps
    as they were. ``kinds``: the activation's and the gate's op types, and the HardSigmoid's
    alpha and beta."""

    def __init__(self, *, reduce, squeeze, activation, expand, gate, multiply, steps, source,
                 kinds):  # fmt: skip
        self.reduce, self.activation, self.gate, self.multiply = reduce, activation, gate, multiply
        (w1, b1), (w2, b2) = squeeze, expand
        self.w1 = w1.reshape(w1.shape[0], -1).T  # (C, R): Conv's one-pixel product reads W so
        self.w2 = w2.reshape(w2.shape[0], -1).T
        self.b1, self.b2 = b1, b2
        self.steps, self.source = steps, source
        dtype = w1.dtype.type
        activation_kind, gate_kind, alpha, beta = kinds
        self.gates_args = (  # (the compiled gates' weights and settings, x's dtype)
            np.ascontiguousarray(self.w1),
            np.asarray(b1 if b1 is not None else (), w1.dtype).reshape(-1),
            np.ascontiguousarray(self.w2),
            np.asarray(b2 if b2 is not None else (), w1.dtype).reshape(-1),
            activation_kind == "Swish",
            gate_kind == "HardSigmoid",
            dtype(alpha),
            dtype(beta),
            dtype(88.7 if dtype is np.float32 else 709.7),  # (math.sigmoid's cap)
        )

    def __call__(self, x):
        w1, w2 = self.w1, self.w2
        if not (type(x) is np.ndarray and x.ndim == 4 and x.shape[1] == w1.shape[0]
                and x.dtype == w1.dtype):  # fmt: skip
            return self._as_steps(x)
        jit = compiled.kernels(x.size) if x.dtype in compiled.DTYPES else None
        if jit is not None and x.size:
            if x.flags.c_contiguous:
                return self._compiled(jit, x)
            xl = channels_last(x) if x.dtype == np.float32 else None
            if xl is not None:
                return self._channels_last(jit, xl)
        n = x.shape[0]
        kernel, args = self.reduce
        mean = kernel(x, *args[1:])
        hidden = np.matmul(mean.reshape(n, -1), w1)
        if self.b1 is not None:
            hidden += self.b1
        hidden = self.activation(hidden.reshape(n, -1, 1, 1))
        gate = np.matmul(hidden.reshape(n, -1), w2)
        if self.b2 is not None:
            gate += self.b2
        gate = self.gate(gate.reshape(n, -1, 1, 1))
        kernel, position = self.multiply
        return kernel(gate, x) if position == 1 else kernel(x, gate)

    def _compiled(self, jit, x):
        n, c = x.shape[:2]
        rows = n * c
        width = x.size // rows
        flat, x2 = x.reshape(-1), x.reshape(rows, width)
        means = np.empty(rows, x.dtype)
        count = x.dtype.type(width)
        threads.rows(rows, x.size, lambda r0, r1: jit.row_means(flat, means, width, count, r0, r1),
                     native=lambda par, parts: par.row_means_bands(flat, means, width, count,
                                                                   parts))  # fmt: skip
        gates = np.empty(rows, x.dtype)
        jit.squeeze_excite_gates(means.reshape(n, c), *self.gates_args, gates.reshape(n, c))
        y = np.empty_like(x)
        y2 = y.reshape(rows, width)
        threads.rows(rows, x.size, lambda r0, r1: jit.by_rows(x2, gates, y2, MUL, r0, r1),
                     native=lambda par, parts: par.by_rows_bands(x2, gates, y2, MUL, parts))  # fmt: skip
        return y

    def _channels_last(self, jit, xl):
        """The block on a channel-last ``xl`` (N, H, W, C) (a depthwise Conv's result, marked so
        by ``mark_channels_last``), its result channel-last too, as an (N, C, H, W) view: the
        means down each channel's column, the gates as in ``_compiled``, each pixel's row times
        them (EfficientNet-B0's blocks at 14x14 and 7x7, where the depthwise Conv moved its
        result to NCHW row by row for the NCHW path)."""
        n, h, w, c = xl.shape
        pixels = xl.reshape(n, h * w, c)
        means = np.empty((n, c), xl.dtype)
        count = xl.dtype.type(h * w)
        threads.rows(c, xl.size, lambda c0, c1: jit.column_means(pixels, means, count, c0, c1),
                     native=lambda par, parts: par.column_means_bands(pixels, means, count,
                                                                      parts))  # fmt: skip
        gates = np.empty((n, c), xl.dtype)
        jit.squeeze_excite_gates(means, *self.gates_args, gates)
        y = np.empty_like(pixels)
        threads.rows(n * h * w, xl.size, lambda r0, r1: jit.by_columns(pixels, gates, y, r0, r1),
                     native=lambda par, parts: par.by_columns_bands(pixels, gates, y, parts))  # fmt: skip
        return y.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    def _as_steps(self, x):
        values = {self.source: x}
        for fn, args, ins, out in self.steps:
            values[out] = fn(*[values.get(i, a) if i >= 0 else a for i, a in zip(ins, args)])
        kernel, position = self.multiply
        gate = values[self.steps[-1][3]]
        return kernel(gate, x) if position == 1 else kernel(x, gate)
