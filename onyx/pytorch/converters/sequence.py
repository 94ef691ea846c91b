"""Sequences (Python lists of tensors) and optionals (None or the value).

A sequence built inside the graph is a Python list at conversion: its length is known, its
elements are Proxies or tensors, and operations on it are list operations that leave nothing in
the module (converters return it inside a 1-tuple: a bare list would read as several
outputs). A sequence that arrives as a graph input (or whose length depends on run-time
values) is one Proxy standing for a list; operations on it are calls of the small eager
functions below.
"""

from __future__ import annotations

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


def _index(n: int, p: int, inserting: bool = False) -> int:
    high = n if inserting else n - 1
    if not -n <= p <= high:
        raise IndexError(f"position {p} is outside [{-n}, {high}] for a sequence of length {n}")
    return p + n if p < 0 else p


def _pos(position) -> int:
    return int(position.reshape(()).item())


def onnx_sequence_at(seq: list, position):
    return seq[_index(len(seq), _pos(position))]


def onnx_sequence_insert(seq: list, tensor, position=None) -> list:
    out = list(seq)
    if position is None:
        out.append(tensor)
    else:
        out.insert(_index(len(seq), _pos(position), inserting=True), tensor)
    return out


def onnx_sequence_erase(seq: list, position=None) -> list:
    out = list(seq)
    if not out:
        raise IndexError("cannot erase from an empty sequence")
    del out[-1 if position is None else _index(len(seq), _pos(position))]
    return out


def onnx_sequence_length(seq: list):
    return torch.tensor(len(seq), dtype=torch.int64)


def onnx_concat(seq: list, axis: int, new_axis: int):
    if not seq:
        raise ValueError("ConcatFromSequence needs a non-empty sequence")
    return torch.stack(seq, axis) if new_axis else torch.cat(seq, axis)


def onnx_split(x, split, axis: int, keepdims: int) -> list:
    if split is None:
        parts = list(torch.split(x, 1, axis))
        return [p.squeeze(axis) for p in parts] if not keepdims else parts
    sizes = split.reshape(-1).tolist() if split.dim() else int(split)
    return list(torch.split(x, sizes, axis))


def _known(cx, x) -> int | None:
    """The position ``x`` holds when known now, else None."""
    c = cx.ints(x) if x is not None else None
    return None if c is None else c[0]


@converter("SequenceEmpty", 11)
def sequence_empty(cx, *, dtype: int = 1):
    return ([],)


@converter("SequenceConstruct", 11)
def sequence_construct(cx, *inputs):
    return (list(inputs),)


@converter("SequenceAt", 11)
def sequence_at(cx, seq, position):
    p = _known(cx, position)
    if isinstance(seq, list) and p is not None:
        try:
            return seq[_index(len(seq), p)]
        except IndexError as e:
            raise cx.fail(str(e)) from None
    return cx.call(onnx_sequence_at, seq, position)


@converter("SequenceInsert", 11)
def sequence_insert(cx, seq, tensor, position=None):
    p = _known(cx, position)
    if isinstance(seq, list) and (position is None or p is not None):
        out = list(seq)
        try:
            out.insert(len(out) if position is None else _index(len(seq), p, True), tensor)
        except IndexError as e:
            raise cx.fail(str(e)) from None
        return (out,)
    return cx.call(onnx_sequence_insert, seq, tensor, position)


@converter("SequenceErase", 11)
def sequence_erase(cx, seq, position=None):
    p = _known(cx, position)
    if isinstance(seq, list) and (position is None or p is not None):
        if not seq:
            raise cx.fail("cannot erase from an empty sequence")
        out = list(seq)
        try:
            del out[-1 if position is None else _index(len(seq), p)]
        except IndexError as e:
            raise cx.fail(str(e)) from None
        return (out,)
    return cx.call(onnx_sequence_erase, seq, position)


@converter("SequenceLength", 11)
def sequence_length(cx, seq):
    if isinstance(seq, list):
        return torch.tensor(len(seq), dtype=torch.int64)
    return cx.call(onnx_sequence_length, seq)


@converter("ConcatFromSequence", 11)
def concat_from_sequence(cx, seq, *, axis: int, new_axis: int = 0):
    if isinstance(seq, list):
        if not seq:
            raise cx.fail("ConcatFromSequence needs a non-empty sequence")
        return torch.stack(seq, axis) if new_axis else torch.cat(seq, axis)
    return cx.call(onnx_concat, seq, axis, new_axis)


@converter("SplitToSequence", 11)
def split_to_sequence(cx, x, split=None, *, axis: int = 0, keepdims: int = 1):
    shape = cx.shape(x)
    rank = cx.rank(x)
    axis = axis + rank if axis < 0 else axis
    length = shape[axis]
    sizes = cx.ints(split) if split is not None else None
    if not isinstance(length, int) or (split is not None and sizes is None):
        return cx.call(onnx_split, x, split, axis, keepdims)
    if split is None:
        parts = [x.narrow(axis, i, 1) for i in range(length)]
        return ([p.squeeze(axis) for p in parts] if not keepdims else parts,)
    if len(cx.shape(split)) == 0:
        size = sizes[0]
        if size <= 0:
            raise cx.fail(f"split size must be positive, got {size}")
        sizes = [min(size, length - s) for s in range(0, length, size)]
    elif sum(sizes) != length:
        raise cx.fail(f"split sizes {sizes} do not add up to dim {length} of axis {axis}")
    out, start = [], 0
    for s in sizes:
        out.append(x.narrow(axis, start, s))
        start += s
    return (out,)


# --- optionals -----------------------------------------------------------------------------
def onnx_has_element(value):
    return torch.tensor(value is not None)


def onnx_get_element(value):
    if value is None:
        raise ValueError("OptionalGetElement on an empty optional")
    return value


@converter("Optional", 15)
def optional(cx, value=None, *, type=None):
    return (value,)


@converter("OptionalHasElement", 15, 18)
def optional_has_element(cx, value=None):
    if value is None:
        return torch.tensor(False)
    if cx.is_proxy(value):  # a graph input: None or a value when the module runs
        return cx.call(onnx_has_element, value)
    return torch.tensor(True)


@converter("OptionalGetElement", 15, 18)
def optional_get_element(cx, value):
    if value is None:
        raise cx.fail("OptionalGetElement on an empty optional")
    if cx.is_proxy(value):
        return cx.call(onnx_get_element, value)
    return (value,)
