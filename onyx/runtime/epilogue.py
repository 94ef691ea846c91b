"""Elementwise steps applied in place to a fresh result, a cache-sized region at a time.

The plan's fusion (fusion.py) hands the elementwise steps that follow a producer (Relu, Clip,
Swish, a BatchNormalization in inference mode, Add/Sub/Mul/Div by a constant or by another
tensor) to an ``Epilogue``. Applied one after another over a whole tensor, each of them streams it through
memory; applied region by region, the region stays in cache between them. A producer that
computes its result in bands (Conv) applies the epilogue to each band as soon as it is written.

An epilogue only runs in place when that is exact: float32/float64 results, operands of the
same dtype that broadcast to the result's shape. Otherwise the fused steps' own kernels run.
Where the compiled kernels are available (compiled.py) and every operand is a scalar, a
per-channel vector or an array of the result's shape, all steps run as one compiled pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from onyx.runtime import compiled, threads
from onyx.runtime.fastloops import clamp

_EXACT = (np.dtype(np.float32), np.dtype(np.float64))
_REGION_BYTES = 1 << 20  # what a region of the result may hold: about half of L2


class Extra(NamedTuple):
    """An operand read at run time: the ``index``-th extra input of the fused step."""

    index: int


class Result(NamedTuple):
    """Where the producer's result goes in a follower's own input list (for its fallback)."""


class Follower(NamedTuple):
    """One fused elementwise step.

    ``ops``: (ufunc, operand, per_channel) applied as ``y = ufunc(y, operand)``; the operand is
    a constant, an ``Extra``, or None for the scalar 0 (Relu). A per-channel operand is a
    vector over axis 1 of the result. ``kernel`` and ``args`` are the step as it was (``args``
    holds ``Result()``, constants and ``Extra``s), run when in place would not be exact.
    ``rank``: the only rank of result the ops are right for (None: any).
    """

    ops: tuple[tuple[np.ufunc, Any, bool], ...]
    kernel: Callable
    args: tuple
    rank: int | None = None


class Epilogue:
    """The followers of one step, bound to one call's extra inputs."""

    __slots__ = ("_kind", "_memo", "_ops", "_program", "applied", "extras", "followers")

    def __init__(self, followers: Sequence[Follower] = (), extras: Sequence[Any] = (),
                 memo: dict | None = None):  # fmt: skip
        """``memo``: a dict the step keeps across runs, where ``prepare`` keeps its work."""
        self.followers = followers
        self.extras = extras
        self.applied = False  # set by a producer that applied it itself
        self._ops: list[tuple[np.ufunc, Any]] = []
        self._program: tuple | None = None  # the ops for compiled.elementwise, where they fit
        # the ops list that _ops follows, run-time operands apart (the memo's, or _ops itself):
        # what the steps are, for the memos of the forms they take
        self._kind: list | None = None
        self._memo = memo

    def _operand(self, operand):
        return self.extras[operand.index] if type(operand) is Extra else operand

    def prepare(self, shape: tuple[int, ...], dtype: np.dtype, bias=None) -> bool:
        """Bind the operands to a result of ``shape`` and ``dtype``; False where in place would
        not be exact. ``bias``, a per-channel vector, is added first (a producer's own bias)."""
        dtype = np.dtype(dtype)
        # The outcome depends on shape, dtype and bias only, and on the run-time operands'
        # layouts where each is the program's one full-shape operand (a residual): kept in the
        # memo, it is not rebuilt on every run (~10 us a step, timed alone; densenet121 has
        # some 180 such steps, resnet50 16 residuals).
        memo, key = self._memo, (shape, dtype)
        if memo is not None:
            known = memo.get(key)
            # (a program is kept only while the compiled kernels stay on: tests switch them)
            if (
                known is not None
                and known[0] is bias
                and (known[2] is None or compiled.kernels(math.prod(shape)) is not None)
                and self._rebind(known, shape, dtype)
            ):
                return self._ops is not None
        ready, from_extras = self._prepare(shape, dtype, bias)
        if memo is not None and not from_extras:
            memo[key] = (bias, self._ops if ready else None, self._program, from_extras)
        elif memo is not None and self._full_only(from_extras):
            # (kept without this run's operand: the memo must not hold a tensor alive)
            ops = list(self._ops)
            for i, _ in from_extras:
                ops[i] = (ops[i][0], None)
            memo[key] = (bias, ops, (*self._program[:3], None), from_extras)
        return ready

    def _full_only(self, from_extras) -> bool:
        """Whether each run-time operand is the program's full-shape one (its layout alone,
        not its values, shaped the program)."""
        full = self._program[3] if self._program is not None else None
        return full is not None and all(self._ops[i][1] is full for i, _ in from_extras)

    def _rebind(self, known, shape, dtype) -> bool:
        """Take a memo entry, with this call's run-time operands in it where it has them;
        False where they are not laid out as the entry's were."""
        _, ops, program, from_extras = known
        self._kind = ops
        if not from_extras:
            self._ops, self._program = ops, program
            return True
        ops = list(ops)
        for i, j in from_extras:
            e = self.extras[j]
            if not (
                type(e) is np.ndarray
                and e.shape == shape
                and e.dtype == dtype
                and e.flags.c_contiguous
            ):
                return False
            ops[i] = (ops[i][0], e)
        self._ops, self._program = ops, (*program[:3], e)
        return True

    def _prepare(self, shape, dtype, bias) -> tuple[bool, list[tuple[int, int]]]:
        """(ready, (op position, extra index) of each run-time operand)."""
        from_extras: list[tuple[int, int]] = []
        if self.followers and dtype not in _EXACT:
            return False, from_extras
        ops = [] if bias is None else [(np.add, _per_channel(bias, shape))]
        for follower in self.followers:
            if follower.rank is not None and follower.rank != len(shape):
                return False, from_extras
            for ufunc, operand, per_channel in follower.ops:
                if operand is None:
                    ops.append((ufunc, dtype.type(0)))
                    continue
                if type(operand) is Extra:
                    from_extras.append((len(ops), operand.index))
                operand = self._operand(operand)
                if type(operand) is not np.ndarray or operand.dtype != dtype:
                    return False, from_extras
                if per_channel:
                    if len(shape) < 2 or operand.shape != (shape[1],):
                        return False, from_extras
                    operand = _per_channel(operand, shape)
                else:
                    if operand.ndim > len(shape):
                        return False, from_extras
                    operand = operand.reshape((1,) * (len(shape) - operand.ndim) + operand.shape)
                    if any(o not in (1, s) for o, s in zip(operand.shape, shape)):
                        return False, from_extras
                ops.append((ufunc, operand))
        self._ops = self._kind = ops
        self._program = _program(ops, shape, dtype) if ops else None
        return True, from_extras

    def apply(self, y: np.ndarray, region: tuple[slice, ...] = (), source=None) -> None:
        """Apply the prepared operations to ``y[region]`` in place; with a ``source`` (of y's
        shape), the first one reads ``source[region]`` instead."""
        target = y[region] if region else y  # (indexing a 0-d array with () gives a scalar)
        current = target if source is None else source[region] if region else source
        for ufunc, operand in self._ops:
            if type(operand) is np.ndarray and region:
                operand = operand[
                    tuple(r if n != 1 else slice(None) for r, n in zip(region, operand.shape))
                ]
            if (ufunc is np.maximum or ufunc is np.minimum) and (
                type(operand) is not np.ndarray or operand.size == 1
            ):  # (by a scalar: numpy's own loop for that is slow, see clamp)
                clamp(ufunc, current, operand.reshape(()) if type(operand) is np.ndarray
                      else operand, target)  # fmt: skip
            else:
                ufunc(current, operand, out=target)
            current = target

    def apply_rows(self, y: np.ndarray, sample: int, r0: int, r1: int) -> None:
        """``apply`` to rows r0..r1 of sample ``sample`` of a 4-D ``y`` (N, C, H, W)."""
        if self._program is not None and y.flags.c_contiguous:
            channels, width = y.shape[1], y.shape[3]
            self._run_program(y, None, sample * channels, (sample + 1) * channels,
                              r0 * width, r1 * width)  # fmt: skip
        else:
            self.apply(y, (slice(sample, sample + 1), slice(None), slice(r0, r1)))

    def apply_images(self, y: np.ndarray, n0: int, n1: int) -> None:
        """``apply`` to images n0..n1 of ``y`` (N, C, *S), in one compiled call where it can."""
        if not self._ops:
            return
        if self._program is not None and y.flags.c_contiguous:
            channels = y.shape[1]
            width = y.size // (y.shape[0] * channels) if y.size else 0
            self._run_program(y, None, n0 * channels, n1 * channels, 0, width)
        else:
            self.apply(y, (slice(n0, n1),))

    def apply_all(self, y: np.ndarray, source=None) -> None:
        """``apply`` over all of ``y``: compiled, a row at a time; else a cache-sized region at a
        time."""
        if not self._ops:
            return
        if (
            self._program is not None
            and y.flags.c_contiguous
            and (source is None or source.flags.c_contiguous)
        ):
            rows = y.shape[0] * y.shape[1]
            width = y.size // rows if rows else 0
            pool = threads.current()
            # (numba's threads for enough work only: a squeeze-excite's (1, C, 1, 1) steps
            # spent ~5 us launching them)
            if (
                pool is not None
                and pool.native is not None
                and rows > 1
                and y.size >= 2 * threads.NATIVE_MIN_ELEMENTS
            ):
                codes, with_full, params, full = self.native_program(y)
                y2d = y.reshape(rows, width)
                source2d = y2d if source is None else source.reshape(rows, width)
                parts = min(rows, pool.size * max(1, y.nbytes // _REGION_BYTES))
                pool.native.kernels.program_bands(y2d, source2d, source is not None, full,
                                                  y.shape[1], codes, with_full, params, parts)  # fmt: skip
                return
            threads.rows(rows, y.size,
                         lambda r0, r1: self._run_program(y, source, r0, r1, 0, width))  # fmt: skip
            return
        parts = [(region,) for region in regions(y.shape, y.dtype.itemsize)]
        pool = threads.current()
        if pool is None or len(parts) < 2:
            for (region,) in parts:
                self.apply(y, region, source)
        else:
            pool.run(lambda region: self.apply(y, region, source), parts)

    def native_program(self, y: np.ndarray) -> tuple | None:
        """The prepared steps as arguments for the kernels of _jit_par.py (codes, with_full,
        params, the full operand as (rows, width)), for a C-contiguous ``y`` (N, C, ...);
        no stages where there are no steps; None where the steps are not one compiled
        program."""
        if not y.flags.c_contiguous or y.ndim < 2:
            return None
        rows = y.shape[0] * y.shape[1]
        if not self._ops:
            flat = y.reshape(rows, -1)
            return (_NO_CODES, _NO_FULL, np.zeros((0, 4, y.shape[1]), y.dtype), flat)
        if self._program is None:
            return None
        codes, with_full, params, full = self._program
        return codes, with_full, params, (y if full is None else full).reshape(rows, -1)

    def _run_program(self, y, source, row0, row1, col0, col1) -> None:
        codes, with_full, params, full = self._program
        rows = y.shape[0] * y.shape[1]
        y2d = y.reshape(rows, -1)
        source2d = y2d if source is None else source.reshape(rows, -1)
        full2d = y2d if full is None else full.reshape(rows, -1)
        compiled.kernels(y.size).elementwise(y2d, source2d, source is not None, full2d, row0, row1,
                                             col0, col1, y.shape[1], codes, with_full, params)  # fmt: skip

    def channel_steps(self) -> tuple[np.ndarray | None, float, float, bool] | None:
        """The prepared steps as (a per-channel bias (C,) or None, lo, hi, then Swish): an Add
        of a per-channel vector, a maximum and a minimum by a value that is not NaN (a
        convolution's bias and ReLU or Clip), then a Swish, each optional; None where they are
        anything else. For a producer that applies them itself, in that order: the first
        three as ``threads.Finish``, the Swish in whatever layout its result has. (Kept in
        the memo with the ops it was read from: a run's ``prepare`` hands back the same ops.)"""
        known = self._memo.get(_CHANNEL_STEPS) if self._memo is not None else None
        if known is not None and known[0] is self._kind:
            return known[1]
        found = self._store_steps()
        found = found[:4] if found is not None else None
        if self._memo is not None:
            self._memo[_CHANNEL_STEPS] = (self._kind, found)
        return found

    def store_finish(self, shape: tuple[int, ...]) -> tuple[threads.Finish | None, bool]:
        """The prepared steps, for a result of ``shape``, as a producer applies them in its
        stores (onyx's packed products): (a ``threads.Finish``, then whether a Swish follows
        it); (None, False) where they do not fit. The steps of ``channel_steps``, with an Add
        of a tensor of the result's shape, C-contiguous (a residual connection's) after the
        bias, where there is one."""
        known = self._memo.get(_STORE_STEPS) if self._memo is not None else None
        if known is None or known[0] is not self._kind:
            known = (self._kind, self._store_steps(shape))
            if self._memo is not None:
                self._memo[_STORE_STEPS] = known
        if known[1] is None:
            return None, False
        bias, lo, hi, swish_after, at = known[1]
        # (a run-time residual is this run's, laid out as the memo's was: ``_rebind`` checked)
        residual = None if at is None else self._ops[at][1]
        return threads.Finish(bias, lo, hi, residual), swish_after

    def _store_steps(self, shape=None) -> tuple | None:
        """(bias or None, lo, hi, Swish after, the residual's place in the ops or None) of
        the prepared steps, in this order, each optional: an Add of a per-channel vector, an
        Add of a tensor of ``shape`` (where given), a maximum and a minimum by a value that is
        not NaN, a Swish; None where they are anything else."""
        bias, at = None, None
        lo, hi, stage = -np.inf, np.inf, 0
        for i, (ufunc, operand) in enumerate(self._ops):
            values = operand if type(operand) is np.ndarray else np.asarray(operand)
            if ufunc is swish and stage < 5:
                stage = 5
            elif ufunc is np.add and stage < 2 and shape is not None and values.shape == shape:
                if not values.flags.c_contiguous:
                    return None
                at, stage = i, 2
            elif ufunc is np.add and stage == 0:
                if values.ndim < 2 or values.shape[0] != 1 or any(v != 1 for v in values.shape[2:]):
                    return None
                bias, stage = values.reshape(-1), 1
            elif ufunc is np.maximum and stage < 3 and values.size == 1 and not np.isnan(values):
                lo, stage = float(values.reshape(())), 3
            elif ufunc is np.minimum and stage < 4 and values.size == 1 and not np.isnan(values):
                hi, stage = float(values.reshape(())), 4
            else:
                return None
        return bias, lo, hi, stage == 5, at

    def fallback(self, y):
        """The followers' own kernels, one after another (not in place)."""
        for follower in self.followers:
            args = [
                y if type(a) is Result else self._operand(a) if type(a) is Extra else a
                for a in follower.args
            ]
            y = follower.kernel(*args)
        return y


_CHANNEL_STEPS = "channel steps"  # (memo keys beside prepare's (shape, dtype) ones)
_STORE_STEPS = "store steps"


def swish(x: np.ndarray, _operand: Any, out: np.ndarray) -> None:
    """out = x · sigmoid(x): the Swish step (alpha 1) as an epilogue's operation, computed as the
    Swish kernel computes each part it is given (compiled for float32 parts where it pays)."""
    from onyx.runtime.kernels.math import swish_part

    out[...] = swish_part(x)


def _program(ops, shape: tuple[int, ...], dtype: np.dtype) -> tuple | None:
    """``ops`` as stages for compiled.elementwise (codes, with_full, params: see ``_stages``),
    with the one full-shape operand or None; None where they do not fit it or it is
    unavailable."""
    if len(shape) < 2 or dtype not in compiled.DTYPES or compiled.kernels(math.prod(shape)) is None:
        return None
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    full, steps = None, []
    for ufunc, operand in ops:  # (classified before anything is allocated: most fit or not)
        if ufunc is swish and dtype == np.float32:  # (the compiled Swish is float32's)
            steps.append((compiled.SWISH, dtype.type(0)))
            continue
        if ufunc not in compiled.OPCODES:
            return None
        if type(operand) is not np.ndarray or operand.size == 1:
            values = dtype.type(np.asarray(operand).reshape(()))
        elif operand.shape == per_channel:
            values = operand.reshape(-1)
        elif (
            operand.shape == shape
            and operand.flags.c_contiguous
            and (full is None or full is operand)
        ):
            values, full = None, operand
        else:
            return None
        steps.append((compiled.OPCODES[ufunc], values))
    return (*_stages(steps, shape[1], dtype), full)


# A fused stage's slots, in the order it applies them; an operation fills one where it comes
# after the stage's last filled slot, else it starts a stage.
_SLOTS = {(compiled.MUL, False): 0, (compiled.ADD, False): 1, (compiled.SUB, False): 1,
          (compiled.ADD, True): 2, (compiled.MAX, False): 3, (compiled.MIN, False): 4}  # fmt: skip
_PARAM = (0, 1, None, 2, 3)  # a slot's row of params (the full addend has none)


def _stages(steps, channels: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (opcode, a value or per-channel values, or None for the full operand) ``steps``
    packed into stages, as (codes, with_full, params (stages, 4, channels)).

    A fused stage (code -1) computes min(max(y * m + a [+ full], lo), hi): the common
    epilogues (bias, ReLU; a BatchNormalization's scale and shift; a residual) in one pass
    over the row, not one per operation. The slots an operation leaves empty hold values that
    change nothing, bit for bit (y * 1, y + -0.0, max with -inf, min with +inf, NaN kept),
    and subtracting c is adding -c, so the result is the operations' own, each rounded in
    turn. A division, a full operand other than an addend, or a NaN bound is a stage of its
    own (code: its opcode).
    """
    n = len(steps)  # (at most a stage each)
    codes, with_full = np.full(n, -1, np.int8), np.zeros(n, np.bool_)
    params = np.empty((n, 4, channels), dtype)
    count, last = 0, 5
    for code, values in steps:
        slot = _SLOTS.get((code, values is None))
        if slot is not None and slot > 2 and _any_nan(values):
            slot = None  # (the fused stage's clamp assumes bounds that are not NaN)
        if slot is None:  # an operation alone
            codes[count], with_full[count] = code, values is None
            params[count, 1] = 0 if values is None else values
            count, last = count + 1, 5
            continue
        if slot <= last:
            params[count] = _IDENTITY
            count += 1
        last = slot
        if slot == 2:
            with_full[count - 1] = True
        else:
            params[count - 1, _PARAM[slot]] = -values if code == compiled.SUB else values
    return codes[:count], with_full[:count], params[:count]


_NO_CODES, _NO_FULL = np.zeros(0, np.int8), np.zeros(0, np.bool_)  # a program of no stages
_IDENTITY = np.array([[1.0], [-0.0], [-np.inf], [np.inf]])  # (m, a, lo, hi) that change nothing


def _any_nan(values) -> bool:
    """Whether ``values`` (an array, or one value) hold a NaN (for one value, without numpy's
    array machinery, ~20x faster: a program whose run-time operands are not all its residual
    is built on every run)."""
    if type(values) is np.ndarray:
        return bool(np.isnan(values).any())
    return values != values  # noqa: PLR0124 (x != x: x is NaN)


def _per_channel(vector: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return vector.reshape((1, -1) + (1,) * (len(shape) - 2))


def regions(shape: tuple[int, ...], itemsize: int):
    """Slices of the leading axes that cut a C-contiguous array of ``shape`` into pieces of
    about ``_REGION_BYTES`` (along the first axis longer than 1)."""
    nbytes = itemsize
    for n in shape:
        nbytes *= n
    axis = next((i for i, n in enumerate(shape) if n > 1), None)
    if axis is None or nbytes <= 2 * _REGION_BYTES:
        yield ()
        return
    length = shape[axis]
    step = max(1, length * _REGION_BYTES // nbytes)
    lead = (slice(None),) * axis
    for start in range(0, length, step):
        yield lead + (slice(start, start + step),)


def run_fused(kernel: Callable, followers: tuple[Follower, ...], n_inputs: int,
              takes_epilogue: bool) -> Callable:  # fmt: skip
    """A step running ``kernel`` on its first ``n_inputs`` inputs, then ``followers``. Called
    with ``out=`` (a kernel that takes an epilogue and ``out``: Conv), the result goes there
    where the kernel can put it."""
    memo: dict = {}

    def run(*args, out=None):
        inputs = args[:n_inputs]
        epilogue = Epilogue(followers, args[n_inputs:], memo)
        if out is not None:
            y = kernel(*inputs, epilogue=epilogue, out=out)
        else:
            y = kernel(*inputs, epilogue=epilogue) if takes_epilogue else kernel(*inputs)
        if epilogue.applied:
            return y
        # in place only on a result no one else holds: not a view, not one of the inputs
        fresh = (out is not None and y is out) or (
            type(y) is np.ndarray
            and y.flags.owndata
            and y.flags.writeable
            and not any(y is a for a in inputs)
        )
        if fresh and epilogue.prepare(y.shape, y.dtype):
            epilogue.apply_all(y)
            return y
        return epilogue.fallback(y)

    run.kernel = kernel  # (for the plan's fusion, which looks for Convs)
    return run


def run_chain(followers: tuple[Follower, ...]) -> Callable:
    """A step running ``followers`` on its first input out of place, in one pass over it: the
    first follower reads the input, the rest work in place on the new array."""
    memo: dict = {}

    def run(x, *extras):
        epilogue = Epilogue(followers, extras, memo)
        if type(x) is np.ndarray and epilogue.prepare(x.shape, x.dtype):
            y = np.empty_like(x)
            epilogue.apply_all(y, source=x)
            return y
        return epilogue.fallback(x)

    return run
