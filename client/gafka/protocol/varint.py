"""Protobuf-style zig-zag varints, as Kafka's ``ByteUtils.writeVarint``/``writeVarlong`` write them.

Record fields inside a RecordBatch v2 use these; one function serves both the 32- and 64-bit forms
because Python integers are unbounded and the zig-zag transform is the same.
"""

from __future__ import annotations


class VarintError(ValueError):
    """A varint ran past the end of its buffer or is longer than 10 bytes."""


def encode_varint(value: int) -> bytes:
    """Zig-zag encode ``value`` and write it as unsigned LEB128."""
    zigzag = (value << 1) ^ (value >> 63)
    if 0 <= zigzag < 0x80:
        return bytes((zigzag,))
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def write_varint(out: bytearray, value: int) -> None:
    """Append the zig-zag varint of ``value`` to ``out`` (no temporary bytes object)."""
    zigzag = (value << 1) ^ (value >> 63)
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode one zig-zag varint at ``pos``; return ``(value, next_pos)``."""
    try:
        byte = buf[pos]
        if byte < 0x80:
            return (byte >> 1) ^ -(byte & 1), pos + 1
        result = byte & 0x7F
        shift = 7
        pos += 1
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 63:
                raise VarintError("varint is longer than 10 bytes")
    except IndexError:
        raise VarintError("varint runs past the end of the buffer") from None
    return (result >> 1) ^ -(result & 1), pos


def size_of_varint(value: int) -> int:
    """Bytes that ``encode_varint(value)`` would take."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag > 0x7F:
        zigzag >>= 7
        size += 1
    return size
