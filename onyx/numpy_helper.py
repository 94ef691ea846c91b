"""Between numpy values and the standard's serialized values, with ``onnx.numpy_helper``'s names.

Tensors convert to and from ``ir.Tensor``; sequences, maps and optionals (which the IR holds
only as a session's values: lists, dicts, None or the value) convert to and from the bytes of
a serialized SequenceProto, MapProto or OptionalProto, as found in the backend test data
(``input_0.pb``). Every reader also takes a path or a binary file object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onyx import serde
from onyx.errors import TensorDataError
from onyx.ir import SparseTensor, Tensor

__all__ = [
    "from_array", "from_dict", "from_list", "from_optional", "to_array", "to_dict", "to_list",
    "to_optional",
]  # fmt: skip

# The element kinds of SequenceProto and OptionalProto (``dtype`` of from_list / from_optional).
UNDEFINED, TENSOR, SPARSE_TENSOR, SEQUENCE, MAP, OPTIONAL = range(6)


def to_array(tensor: Tensor | SparseTensor | serde.Source) -> np.ndarray:
    """The data of a tensor (an ``ir.Tensor``, or a serialized TensorProto) as a numpy array of
    its own (writable, not a view of the model's file)."""
    if isinstance(tensor, SparseTensor):
        return tensor.to_dense()
    if not isinstance(tensor, Tensor):
        tensor = serde.load_tensor(tensor)
    return np.array(tensor.numpy(), copy=True)


def from_array(array: Any, /, name: str | None = None) -> Tensor:
    """A tensor holding ``array`` (strings: an array of str or bytes; its dtype decides the
    element type). Saved, it is written as raw_data, like onnx's."""
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind in "US":
        flat = arr.reshape(-1)
        bad = [v for v in flat if not isinstance(v, str | bytes)]
        if bad:
            raise TensorDataError(
                f"tensor {name or ''!r}: a string tensor holds only str or bytes, got "
                f"{type(bad[0]).__name__}"
            )
        strings = np.empty(flat.shape, object)
        strings[:] = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                      for v in flat]  # fmt: skip
        arr = strings.reshape(arr.shape)
    t = Tensor(arr, name or "")
    if name:
        t.present.add("name")
    return t


def to_list(sequence: bytes | serde.Source) -> list:
    """The list held by a serialized SequenceProto (tensors as arrays, nested lists, dicts)."""
    return serde.load_value(sequence, "sequence")


def from_list(lst: list, name: str | None = None, dtype: int | None = None) -> bytes:
    """The serialized SequenceProto of a list of arrays, lists or dicts; ``dtype`` (TENSOR,
    SEQUENCE or MAP of this module) types an empty list."""
    return serde.value_to_bytes(lst, "sequence", name or "", dtype)


def to_dict(map_proto: bytes | serde.Source) -> dict:
    """The dict held by a serialized MapProto."""
    return serde.load_value(map_proto, "map")


def from_dict(dict_: dict, name: str | None = None) -> bytes:
    """The serialized MapProto of a non-empty dict with integer or string keys."""
    return serde.value_to_bytes(dict_, "map", name or "")


def to_optional(optional: bytes | serde.Source) -> Any:
    """The value held by a serialized OptionalProto (None when it holds nothing)."""
    return serde.load_value(optional, "optional")


def from_optional(opt: Any, name: str | None = None, dtype: int | None = None) -> bytes:
    """The serialized OptionalProto of a value (None: an empty optional); ``dtype`` (a kind of
    this module) types an empty one."""
    return serde.value_to_bytes(opt, "optional", name or "", dtype)
