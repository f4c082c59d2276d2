"""Compression codecs of RecordBatch v2, in the framings Kafka's own clients read and write.

- gzip: RFC 1952 (Java's GZIPOutputStream).
- snappy: the xerial block framing Kafka's Java client writes; plain snappy is also accepted on read.
- lz4: the LZ4 frame format with independent blocks (Kafka rejects linked blocks).
- zstd: standard zstd frames.
"""

from __future__ import annotations

import gzip
import struct
from enum import IntEnum

import cramjam
import lz4.frame


class Compression(IntEnum):
    """The codec id kept in bits 0-2 of a batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def parse(cls, name: str | int | Compression | None) -> Compression:
        """Accept Kafka's ``compression.type`` names (``none``, ``gzip``, ...) or a codec id."""
        if name is None:
            return cls.NONE
        if isinstance(name, int):
            return cls(name)
        try:
            return cls[name.strip().upper()]
        except KeyError:
            valid = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"unknown compression type {name!r}; expected one of {valid}") from None


class CompressionError(ValueError):
    """A compressed payload could not be decompressed."""


_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, compatible version 1
_XERIAL_BLOCK = 32 * 1024


def _snappy_xerial_compress(data: bytes | bytearray | memoryview) -> bytes:
    out = bytearray(_XERIAL_HEADER)
    view = memoryview(data)
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
        out += struct.pack(">i", len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data: bytes | memoryview) -> bytes:
    raw = bytes(data)
    if not raw.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(raw))
    out = bytearray()
    pos = len(_XERIAL_HEADER)
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise CompressionError("truncated xerial snappy block length")
        (length,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        if length < 0 or pos + length > len(raw):
            raise CompressionError("truncated xerial snappy block")
        out += bytes(cramjam.snappy.decompress_raw(raw[pos : pos + length]))
        pos += length
    return bytes(out)


def compress(codec: Compression, data: bytes | bytearray | memoryview) -> bytes:
    """Compress the records section of a batch with ``codec``."""
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return gzip.compress(bytes(data), compresslevel=6, mtime=0)
    if codec is Compression.SNAPPY:
        return _snappy_xerial_compress(data)
    if codec is Compression.LZ4:
        return bytes(lz4.frame.compress(bytes(data), block_linked=False, content_checksum=False))
    if codec is Compression.ZSTD:
        return bytes(cramjam.zstd.compress(bytes(data), level=3))
    raise CompressionError(f"unsupported codec {codec!r}")


def decompress(codec: Compression, data: bytes | memoryview) -> bytes:
    """Inverse of :func:`compress`; raises :class:`CompressionError` on a damaged payload."""
    try:
        if codec is Compression.NONE:
            return bytes(data)
        if codec is Compression.GZIP:
            return gzip.decompress(bytes(data))
        if codec is Compression.SNAPPY:
            return _snappy_decompress(data)
        if codec is Compression.LZ4:
            return bytes(lz4.frame.decompress(bytes(data)))
        if codec is Compression.ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except CompressionError:
        raise
    except Exception as exc:  # each library raises its own types; all mean a damaged payload
        raise CompressionError(f"cannot decompress {codec.name.lower()} payload: {exc}") from exc
    raise CompressionError(f"unsupported codec {codec!r}")
