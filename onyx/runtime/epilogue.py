"""Elementwise steps applied in place to a fresh result, a cache-sized region at a time.

The plan's fusion (fusion.py) hands the elementwise steps that follow a producer (Relu, a
BatchNormalization in inference mode, Add/Sub/Mul/Div by a constant or by another tensor) to
an ``Epilogue``. Applied one after another over a whole tensor, each of them streams it through
memory; applied region by region, the region stays in cache between them. A producer that
computes its result in bands (Conv) applies the epilogue to each band as soon as it is written.

An epilogue only runs in place when that is exact: float32/float64 results, operands of the
same dtype that broadcast to the result's shape. Otherwise the fused steps' own kernels run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

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

    __slots__ = ("_ops", "applied", "extras", "followers")

    def __init__(self, followers: Sequence[Follower] = (), extras: Sequence[Any] = ()):
        self.followers = followers
        self.extras = extras
        self.applied = False  # set by a producer that applied it itself
        self._ops: list[tuple[np.ufunc, Any]] = []

    def _operand(self, operand):
        return self.extras[operand.index] if type(operand) is Extra else operand

    def prepare(self, shape: tuple[int, ...], dtype: np.dtype, bias=None) -> bool:
        """Bind the operands to a result of ``shape`` and ``dtype``; False where in place would
        not be exact. ``bias``, a per-channel vector, is added first (a producer's own bias)."""
        dtype = np.dtype(dtype)
        if self.followers and dtype not in _EXACT:
            return False
        ops = [] if bias is None else [(np.add, _per_channel(bias, shape))]
        for follower in self.followers:
            if follower.rank is not None and follower.rank != len(shape):
                return False
            for ufunc, operand, per_channel in follower.ops:
                if operand is None:
                    ops.append((ufunc, dtype.type(0)))
                    continue
                operand = self._operand(operand)
                if type(operand) is not np.ndarray or operand.dtype != dtype:
                    return False
                if per_channel:
                    if len(shape) < 2 or operand.shape != (shape[1],):
                        return False
                    operand = _per_channel(operand, shape)
                else:
                    if operand.ndim > len(shape):
                        return False
                    operand = operand.reshape((1,) * (len(shape) - operand.ndim) + operand.shape)
                    if any(o not in (1, s) for o, s in zip(operand.shape, shape)):
                        return False
                ops.append((ufunc, operand))
        self._ops = ops
        return True

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
            if type(operand) is not np.ndarray and (ufunc is np.maximum or ufunc is np.minimum):
                clamp(ufunc, current, operand, target)
            else:
                ufunc(current, operand, out=target)
            current = target

    def apply_all(self, y: np.ndarray, source=None) -> None:
        """``apply`` over all of ``y``, a cache-sized region at a time."""
        if not self._ops:
            return
        for region in regions(y.shape, y.dtype.itemsize):
            self.apply(y, region, source)

    def fallback(self, y):
        """The followers' own kernels, one after another (not in place)."""
        for follower in self.followers:
            args = [
                y if type(a) is Result else self._operand(a) if type(a) is Extra else a
                for a in follower.args
            ]
            y = follower.kernel(*args)
        return y


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
    """A step running ``kernel`` on its first ``n_inputs`` inputs, then ``followers``."""

    def run(*args):
        inputs = args[:n_inputs]
        epilogue = Epilogue(followers, args[n_inputs:])
        y = kernel(*inputs, epilogue=epilogue) if takes_epilogue else kernel(*inputs)
        if epilogue.applied:
            return y
        # in place only on a result no one else holds: not a view, not one of the inputs
        fresh = (
            type(y) is np.ndarray
            and y.flags.owndata
            and y.flags.writeable
            and not any(y is a for a in inputs)
        )
        if fresh and epilogue.prepare(y.shape, y.dtype):
            epilogue.apply_all(y)
            return y
        return epilogue.fallback(y)

    return run


def run_chain(followers: tuple[Follower, ...]) -> Callable:
    """A step running ``followers`` on its first input out of place, in one pass over it: the
    first follower reads the input, the rest work in place on the new array."""

    def run(x, *extras):
        epilogue = Epilogue(followers, extras)
        if type(x) is np.ndarray and epilogue.prepare(x.shape, x.dtype):
            y = np.empty_like(x)
            epilogue.apply_all(y, source=x)
            return y
        return epilogue.fallback(x)

    return run
