"""A minimal walker over the protobuf wire format.

serde uses it to keep large ``raw_data`` payloads out of the protobuf parser on load (they stay
views of the memory-mapped file) and to stream them straight to disk on save.
"""

from __future__ import annotations

from collections.abc import Iterator

from onyx.errors import FormatError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise FormatError(f"truncated data: a varint runs past byte {end}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError(f"malformed data: a varint longer than 10 bytes at byte {pos}")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return encode_varint(field << 3 | wire_type)


def fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield (field number, wire type, field start, value start, value end) for one message."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise FormatError(f"malformed data: field number 0 at byte {field_start}")
        if wire_type == VARINT:
            value_start = pos
            _, pos = read_varint(buf, pos, end)
        elif wire_type == LENGTH:
            length, value_start = read_varint(buf, pos, end)
            pos = value_start + length
        elif wire_type == FIXED64:
            value_start, pos = pos, pos + 8
        elif wire_type == FIXED32:
            value_start, pos = pos, pos + 4
        else:
            raise FormatError(f"malformed data: wire type {wire_type} at byte {field_start}")
        if pos > end:
            raise FormatError(f"truncated data: a field at byte {field_start} runs past byte {end}")
        yield number, wire_type, field_start, value_start, pos
