"""Sequences (Python lists of arrays) and optionals (None or the value)."""

from __future__ import annotations

import numpy as np

from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel


def _position(seq: list, pos, *, inserting: bool = False) -> int:
    n = len(seq)
    p = int(np.asarray(pos).reshape(()))
    high = n if inserting else n - 1
    if not -n <= p <= high:
        raise KernelError(f"position {p} is outside [{-n}, {high}] for a sequence of length {n}")
    return p + n if p < 0 else p


@kernel("SequenceEmpty", 11)
def sequence_empty(*, dtype=1):
    return []


@kernel("SequenceConstruct", 11)
def sequence_construct(*inputs):
    return list(inputs)


@kernel("SequenceAt", 11)
def sequence_at(seq, position):
    return seq[_position(seq, position)]


@kernel("SequenceInsert", 11)
def sequence_insert(seq, tensor, position=None):
    out = list(seq)
    if position is None:
        out.append(tensor)
    else:
        out.insert(_position(seq, position, inserting=True), tensor)
    return out


@kernel("SequenceErase", 11)
def sequence_erase(seq, position=None):
    out = list(seq)
    if not out:
        raise KernelError("cannot erase from an empty sequence")
    del out[-1 if position is None else _position(seq, position)]
    return out


@kernel("SequenceLength", 11)
def sequence_length(seq):
    return np.array(len(seq), np.int64)


@kernel("SplitToSequence", 11)
def split_to_sequence(x, split=None, *, axis=0, keepdims=1):
    axis = axis + x.ndim if axis < 0 else axis
    length = x.shape[axis]
    if split is None:
        parts = np.split(x, length, axis=axis) if length else []
        return [np.squeeze(p, axis) for p in parts] if not keepdims else parts
    split = np.asarray(split, np.int64)
    if split.ndim == 0:
        size = int(split)
        if size <= 0:
            raise KernelError(f"split size must be positive, got {size}")
        bounds = list(range(size, length, size))
    else:
        if split.sum() != length:
            raise KernelError(
                f"split sizes {split.tolist()} do not add up to dim {length} of axis {axis}"
            )
        bounds = np.cumsum(split)[:-1].tolist()
    return np.split(x, bounds, axis=axis)


@kernel("ConcatFromSequence", 11)
def concat_from_sequence(seq, *, axis, new_axis=0):
    if not seq:
        raise KernelError("ConcatFromSequence needs a non-empty sequence")
    if new_axis:
        return np.stack(seq, axis=axis)
    return np.concatenate(seq, axis=axis)


@kernel("Optional", 15)
def optional(value=None, *, type=None):
    return value


@kernel("OptionalHasElement", 15)
def optional_has_element(value=None):
    return np.array(value is not None)


@kernel("OptionalGetElement", 15)
def optional_get_element(value):
    if value is None:
        raise KernelError("OptionalGetElement on an empty optional")
    return value
