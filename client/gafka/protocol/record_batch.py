"""Kafka's RecordBatch v2 (magic 2): encode, decode, validate and patch in place.

The layout is Apache Kafka's own (``DefaultRecordBatch``), so a batch built here is byte for byte what
Kafka's clients send and what its log segments hold::

    0  baseOffset int64          21 attributes int16        43 producerId int64
    8  batchLength int32         23 lastOffsetDelta int32   51 producerEpoch int16
    12 partitionLeaderEpoch i32  27 baseTimestamp int64     53 baseSequence int32
    16 magic int8 (= 2)          35 maxTimestamp int64      57 recordsCount int32
    17 crc uint32 (CRC-32C over attributes .. end)          61 records

baseOffset and partitionLeaderEpoch sit outside the CRC, which is what lets a broker assign offsets and
stamp epochs without re-encoding or recomputing anything.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from enum import IntEnum
from typing import NamedTuple

import crc32c

from gafka.protocol.compression import Compression, CompressionError, compress, decompress
from gafka.protocol.varint import VarintError, read_varint, write_varint

try:  # the record walks in C (built at install time); the pure-Python loops below are the fallback
    from gafka.protocol import _crecords
except ImportError:  # pragma: no cover - a machine without a C compiler
    _crecords = None  # type: ignore[assignment]

SPEEDUPS = _crecords is not None
"""Whether the compiled record walk is in use."""

__all__ = [
    "BATCH_OVERHEAD",
    "SPEEDUPS",
    "BatchHeader",
    "Compression",
    "CorruptRecordError",
    "InvalidRecordError",
    "NewRecord",
    "Record",
    "TimestampType",
    "decode_batch",
    "decode_batches",
    "encode_batch",
    "encode_empty_batch",
    "encode_retained_batch",
    "iter_batches",
    "parse_header",
    "record_keys",
    "set_base_offset",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "validate_batch",
]

MAGIC = 2
BATCH_OVERHEAD = 61
"""Bytes of the batch header before the first record."""
LOG_OVERHEAD = 12
"""baseOffset + batchLength: the bytes not counted by batchLength."""
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_INT64 = struct.Struct(">q")
_UINT32 = struct.Struct(">I")
_LENGTH_OFFSET = 8
_EPOCH_OFFSET = 12
_MAGIC_OFFSET = 16
_CRC_OFFSET = 17
_ATTRIBUTES_OFFSET = 21
_MAX_TIMESTAMP_OFFSET = 35

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_MASK = 0x08
_TRANSACTIONAL_MASK = 0x10
_CONTROL_MASK = 0x20
_DELETE_HORIZON_MASK = 0x40

Buffer = bytes | bytearray | memoryview


class TimestampType(IntEnum):
    """Kafka's ``message.timestamp.type``: who set the timestamp."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1

    @classmethod
    def parse(cls, name: str) -> TimestampType:
        normalized = name.strip().replace("_", "").replace(" ", "").lower()
        if normalized == "createtime":
            return cls.CREATE_TIME
        if normalized == "logappendtime":
            return cls.LOG_APPEND_TIME
        raise ValueError(f"unknown timestamp type {name!r}; expected CreateTime or LogAppendTime")


class CorruptRecordError(ValueError):
    """The bytes are not a whole, intact batch: short, wrong length, wrong magic or a CRC mismatch."""


class InvalidRecordError(ValueError):
    """The batch is intact but its content breaks a rule (bad record layout, counts or sizes)."""


class NewRecord(NamedTuple):
    """A record to be encoded; offsets are assigned by position in the batch."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp: int | None = None


class Record(NamedTuple):
    """A decoded record with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class BatchHeader(NamedTuple):
    """The 61-byte header of one batch, decoded."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch takes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _COMPRESSION_MASK)

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType.LOG_APPEND_TIME if self.attributes & _TIMESTAMP_TYPE_MASK else TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        """Set by a log cleaner that kept tombstones (or markers): ``base_timestamp`` is then the time
        after which they may be removed (Kafka's KIP-534)."""
        return bool(self.attributes & _DELETE_HORIZON_MASK)

    @property
    def delete_horizon_ms(self) -> int | None:
        return self.base_timestamp if self.attributes & _DELETE_HORIZON_MASK else None

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


def parse_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Decode the header at ``pos`` without checking anything beyond its presence."""
    if len(buf) - pos < BATCH_OVERHEAD:
        raise CorruptRecordError(f"need {BATCH_OVERHEAD} bytes for a batch header, have {len(buf) - pos}")
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def _compute_crc(buf: Buffer, pos: int, size: int) -> int:
    view = memoryview(buf)[pos + _ATTRIBUTES_OFFSET : pos + size]
    return int(crc32c.crc32c(view))


def validate_batch(buf: Buffer, pos: int = 0, *, max_batch_size: int | None = None) -> BatchHeader:
    """Check that a whole, intact v2 batch starts at ``pos``: sizes, magic and CRC-32C.

    Raises :class:`CorruptRecordError` for damage (what recovery truncates at) and
    :class:`InvalidRecordError` for an intact batch that breaks a size rule.
    """
    available = len(buf) - pos
    if available < LOG_OVERHEAD:
        raise CorruptRecordError(f"truncated batch: {available} bytes left, a batch needs {BATCH_OVERHEAD}")
    (batch_length,) = _INT32.unpack_from(buf, pos + _LENGTH_OFFSET)
    size = batch_length + LOG_OVERHEAD
    if size < BATCH_OVERHEAD:
        raise CorruptRecordError(f"batch length {batch_length} is smaller than the v2 header")
    if size > available:
        raise CorruptRecordError(f"truncated batch: header says {size} bytes, only {available} present")
    if buf[pos + _MAGIC_OFFSET] != MAGIC:
        raise CorruptRecordError(f"unsupported magic {buf[pos + _MAGIC_OFFSET]}; only RecordBatch v2 is accepted")
    header = BatchHeader._make(_HEADER.unpack_from(buf, pos))
    actual_crc = _compute_crc(buf, pos, size)
    if actual_crc != header.crc:
        raise CorruptRecordError(f"CRC-32C mismatch: stored {header.crc:#010x}, computed {actual_crc:#010x}")
    if max_batch_size is not None and size > max_batch_size:
        raise InvalidRecordError(f"batch of {size} bytes exceeds the limit of {max_batch_size} bytes")
    if header.records_count < 0 or header.last_offset_delta < 0:
        raise InvalidRecordError("negative record count or last offset delta")
    if header.attributes & _COMPRESSION_MASK > Compression.ZSTD:
        raise InvalidRecordError(f"unknown compression codec id {header.attributes & _COMPRESSION_MASK}")
    return header


def iter_batches(buf: Buffer, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each whole batch in ``buf[pos:end]``; stop at a partial tail.

    Checks only framing, not CRCs: this is the walk for trusted bytes (our own log) and for counting.
    """
    end = len(buf) if end is None else end
    while end - pos >= BATCH_OVERHEAD:
        header = BatchHeader._make(_HEADER.unpack_from(buf, pos))
        size = header.batch_length + LOG_OVERHEAD
        if size < BATCH_OVERHEAD or pos + size > end:
            return
        yield pos, header
        pos += size


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Stamp the batch's base offset in place (outside the CRC)."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Stamp the leader epoch in place (outside the CRC)."""
    _INT32.pack_into(buf, pos + _EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp_ms: int) -> None:
    """Mark the batch LogAppendTime with ``timestamp_ms`` and recompute its CRC, as Kafka's broker does."""
    (attributes,) = _INT16.unpack_from(buf, pos + _ATTRIBUTES_OFFSET)
    _INT16.pack_into(buf, pos + _ATTRIBUTES_OFFSET, attributes | _TIMESTAMP_TYPE_MASK)
    _INT64.pack_into(buf, pos + _MAX_TIMESTAMP_OFFSET, timestamp_ms)
    (batch_length,) = _INT32.unpack_from(buf, pos + _LENGTH_OFFSET)
    _UINT32.pack_into(buf, pos + _CRC_OFFSET, _compute_crc(buf, pos, batch_length + LOG_OVERHEAD))


def _encode_record(out: bytearray, offset_delta: int, timestamp_delta: int, record: NewRecord) -> None:
    body = bytearray(b"\x00")  # record attributes: unused, always 0
    write_varint(body, timestamp_delta)
    write_varint(body, offset_delta)
    key = record.key
    if key is None:
        body.append(1)  # zig-zag(-1)
    else:
        write_varint(body, len(key))
        body += key
    value = record.value
    if value is None:
        body.append(1)
    else:
        write_varint(body, len(value))
        body += value
    headers = record.headers
    write_varint(body, len(headers))
    for header_key, header_value in headers:
        encoded_key = header_key.encode()
        write_varint(body, len(encoded_key))
        body += encoded_key
        if header_value is None:
            body.append(1)
        else:
            write_varint(body, len(header_value))
            body += header_value
    write_varint(out, len(body))
    out += body


def encode_batch(
    records: Sequence[NewRecord],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    is_transactional: bool = False,
    is_control: bool = False,
    now_ms: int | None = None,
) -> bytes:
    """Build one batch from ``records``; records without a timestamp get ``now_ms`` (default: now)."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    timestamps = [now if record.timestamp is None else record.timestamp for record in records]
    base_timestamp = timestamps[0]
    max_timestamp = max(timestamps)
    body = bytearray()
    for offset_delta, (record, timestamp) in enumerate(zip(records, timestamps, strict=True)):
        _encode_record(body, offset_delta, timestamp - base_timestamp, record)
    payload = compress(compression, body) if compression is not Compression.NONE else body
    attributes = int(compression) | (timestamp_type << 3) | (_TRANSACTIONAL_MASK if is_transactional else 0)
    if is_control:
        attributes |= _CONTROL_MASK
    size = BATCH_OVERHEAD + len(payload)
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        size - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        len(records) - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    out[BATCH_OVERHEAD:] = payload
    _UINT32.pack_into(out, _CRC_OFFSET, _compute_crc(out, 0, size))
    return bytes(out)


def encode_retained_batch(original: BatchHeader, records: Sequence[Record], *, delete_horizon_ms: int | None) -> bytes:
    """Rebuild ``original`` holding only ``records`` (a non-empty subset of its own), as Kafka's cleaner does.

    Every batch field survives: base offset and last offset delta (so the producer's last sequence is
    kept), producer id, epoch and base sequence, partition leader epoch, compression codec, timestamp
    type and the transactional/control bits. Records keep their offsets and timestamps. With
    ``delete_horizon_ms`` the batch carries it in ``base_timestamp`` (attribute bit 6) and the record
    timestamps become deltas from it, as Kafka's ``MemoryRecordsBuilder`` writes them.
    """
    if not records:
        raise ValueError("a retained batch needs at least one record; use encode_empty_batch")
    log_append = original.timestamp_type is TimestampType.LOG_APPEND_TIME
    base_timestamp = delete_horizon_ms if delete_horizon_ms is not None else records[0].timestamp
    max_timestamp = original.max_timestamp if log_append else max(record.timestamp for record in records)
    body = bytearray()
    for record in records:
        _encode_record(
            body,
            record.offset - original.base_offset,
            record.timestamp - base_timestamp,
            NewRecord(record.key, record.value, record.headers),
        )
    codec = original.compression
    payload = compress(codec, body) if codec is not Compression.NONE else body
    keep = _TIMESTAMP_TYPE_MASK | _TRANSACTIONAL_MASK | _CONTROL_MASK
    attributes = int(codec) | (original.attributes & keep)
    if delete_horizon_ms is not None:
        attributes |= _DELETE_HORIZON_MASK
    return _pack_batch(
        original,
        payload,
        attributes=attributes,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        records_count=len(records),
    )


def encode_empty_batch(original: BatchHeader) -> bytes:
    """The header of ``original`` with no records left (Kafka's ``writeEmptyHeader``): kept by a cleaner
    so a producer's last sequence and epoch survive. No compression, no base timestamp."""
    keep = _TIMESTAMP_TYPE_MASK | _TRANSACTIONAL_MASK | _CONTROL_MASK
    return _pack_batch(
        original,
        b"",
        attributes=original.attributes & keep,
        base_timestamp=NO_TIMESTAMP,
        max_timestamp=original.max_timestamp,
        records_count=0,
    )


def _pack_batch(
    original: BatchHeader,
    payload: Buffer,
    *,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    records_count: int,
) -> bytes:
    size = BATCH_OVERHEAD + len(payload)
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        original.base_offset,
        size - LOG_OVERHEAD,
        original.partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        original.last_offset_delta,
        base_timestamp,
        max_timestamp,
        original.producer_id,
        original.producer_epoch,
        original.base_sequence,
        records_count,
    )
    out[BATCH_OVERHEAD:] = payload
    _UINT32.pack_into(out, _CRC_OFFSET, _compute_crc(out, 0, size))
    return bytes(out)


def _read_bytes(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_varint(buf, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise InvalidRecordError("record field runs past the end of the batch")
    return bytes(buf[pos:end]), end


def _records_section(buf: Buffer, pos: int, header: BatchHeader) -> Buffer:
    section = memoryview(buf)[pos + BATCH_OVERHEAD : pos + header.size]
    codec = header.compression
    if codec is Compression.NONE:
        return section
    try:
        return decompress(codec, section)
    except CompressionError as exc:
        raise InvalidRecordError(str(exc)) from exc


def decode_batch(buf: Buffer, pos: int = 0, *, header: BatchHeader | None = None) -> list[Record]:
    """Decode every record of the batch at ``pos``; offsets and timestamps are made absolute.

    The caller validates first (:func:`validate_batch`) when the bytes are untrusted; this checks the
    record layout and raises :class:`InvalidRecordError` if it does not add up.
    """
    if header is None:
        header = parse_header(buf, pos)
    section = _records_section(buf, pos, header)
    log_append_time = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    return _decode_records(
        section, header.records_count, header.base_offset, header.base_timestamp, header.max_timestamp, log_append_time
    )


def _decode_records(
    section: Buffer, count: int, base_offset: int, base_timestamp: int, max_timestamp: int, log_append_time: bool
) -> list[Record]:
    """The records of a batch's (decompressed) records section: in C when built, else in Python."""
    if _crecords is not None:
        try:
            records: list[Record] = _crecords.decode_records(
                section, count, base_offset, base_timestamp, max_timestamp, log_append_time, Record
            )
            return records
        except ValueError as exc:
            raise InvalidRecordError(str(exc)) from None
        except OverflowError:
            pass  # a value past int64: the reference below handles it exactly
    return _py_decode_records(section, count, base_offset, base_timestamp, max_timestamp, log_append_time)


def _py_decode_records(
    section: Buffer, count: int, base_offset: int, base_timestamp: int, max_timestamp: int, log_append_time: bool
) -> list[Record]:
    """The pure-Python record walk of :func:`decode_batch` (the reference the C one is tested against)."""
    records: list[Record] = []
    cursor = 0
    end = len(section)
    try:
        for _ in range(count):
            length, cursor = read_varint(section, cursor)
            record_end = cursor + length
            if length < 0 or record_end > end:
                raise InvalidRecordError("record length runs past the end of the batch")
            cursor += 1  # attributes
            timestamp_delta, cursor = read_varint(section, cursor)
            offset_delta, cursor = read_varint(section, cursor)
            key, cursor = _read_bytes(section, cursor)
            value, cursor = _read_bytes(section, cursor)
            header_count, cursor = read_varint(section, cursor)
            if header_count < 0:
                raise InvalidRecordError("negative header count")
            headers: list[tuple[str, bytes | None]] = []
            for _h in range(header_count):
                header_key, cursor = _read_bytes(section, cursor)
                if header_key is None:
                    raise InvalidRecordError("null header key")
                header_value, cursor = _read_bytes(section, cursor)
                headers.append((header_key.decode("utf-8", errors="replace"), header_value))
            if cursor != record_end:
                raise InvalidRecordError("record length does not match its fields")
            timestamp = max_timestamp if log_append_time else base_timestamp + timestamp_delta
            records.append(Record(base_offset + offset_delta, timestamp, key, value, tuple(headers)))
    except VarintError as exc:
        raise InvalidRecordError(str(exc)) from exc
    if cursor != end:
        raise InvalidRecordError(f"{end - cursor} stray bytes after {count} records")
    return records


class RecordKey(NamedTuple):
    """What a log cleaner needs of a record: its offset, key and whether it has a value."""

    offset: int
    key: bytes | None
    has_value: bool


def record_keys(buf: Buffer, pos: int, header: BatchHeader) -> list[RecordKey]:
    """Offset, key and value presence of every record of the batch at ``pos``, copying only the keys
    (cheaper than :func:`decode_batch` when values and headers are not needed)."""
    section = _records_section(buf, pos, header)
    keys: list[RecordKey] = []
    cursor = 0
    end = len(section)
    base_offset = header.base_offset
    try:
        for _ in range(header.records_count):
            length, body = read_varint(section, cursor)
            record_end = body + length
            if length <= 0 or record_end > end:
                raise InvalidRecordError("record length runs past the end of the batch")
            _timestamp_delta, after = read_varint(section, body + 1)
            offset_delta, after = read_varint(section, after)
            key_length, after = read_varint(section, after)
            key = None
            if key_length >= 0:
                key = bytes(section[after : after + key_length])
                after += key_length
            value_length, _ = read_varint(section, after)
            keys.append(RecordKey(base_offset + offset_delta, key, value_length >= 0))
            cursor = record_end
    except VarintError as exc:
        raise InvalidRecordError(str(exc)) from exc
    return keys


def check_records(buf: Buffer, pos: int, header: BatchHeader, *, require_keys: bool = False) -> None:
    """Walk the records of an intact batch and check the counts and offset deltas a leader relies on.

    Cheaper than :func:`decode_batch` (nothing is copied out), and enough to guarantee that whatever
    the log stores can later be decoded for a consumer. ``require_keys``: a record without a key is
    refused (a compacted topic keeps the last record per key, so a keyless one has no meaning there).
    """
    if header.records_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            f"record count {header.records_count} does not match last offset delta {header.last_offset_delta}"
        )
    _check_section(_records_section(buf, pos, header), header.records_count, require_keys)


def _check_section(section: Buffer, count: int, require_keys: bool = False) -> None:
    """:func:`check_records` on a records section: in C when built, else in Python (the key check of
    compacted topics has no C path yet, so those batches take the Python walk)."""
    if _crecords is not None and not require_keys:
        try:
            _crecords.check_records(section, count)
            return
        except ValueError as exc:
            raise InvalidRecordError(str(exc)) from None
        except OverflowError:
            pass  # a value past int64: the reference below handles it exactly
    _py_check_records(section, count, require_keys)


def _py_check_records(section: Buffer, count: int, require_keys: bool = False) -> None:
    """The pure-Python record walk of :func:`check_records` (the reference the C one is tested against)."""
    cursor = 0
    end = len(section)
    try:
        for expected_delta in range(count):
            length, body = read_varint(section, cursor)
            if length <= 0 or body + length > end:
                raise InvalidRecordError("record length runs past the end of the batch")
            _timestamp_delta, after = read_varint(section, body + 1)
            offset_delta, after = read_varint(section, after)
            if offset_delta != expected_delta:
                raise InvalidRecordError(f"record offset delta {offset_delta}, expected {expected_delta}")
            if require_keys and read_varint(section, after)[0] < 0:
                raise InvalidRecordError(
                    f"record {expected_delta} of the batch has no key: a compacted topic only takes records with keys"
                )
            cursor = body + length
    except VarintError as exc:
        raise InvalidRecordError(str(exc)) from exc
    if cursor != end:
        raise InvalidRecordError(f"{end - cursor} stray bytes after {count} records")


def decode_batches(buf: Buffer, *, validate: bool = False) -> Iterator[Record]:
    """Decode every record of every whole batch in ``buf`` (a fetch response or a segment slice)."""
    pos = 0
    while len(buf) - pos >= BATCH_OVERHEAD:
        header = validate_batch(buf, pos) if validate else parse_header(buf, pos)
        if pos + header.size > len(buf):
            return
        if not header.is_control:
            yield from decode_batch(buf, pos, header=header)
        pos += header.size


def batches_of(records: Iterable[NewRecord], max_records: int) -> Iterator[list[NewRecord]]:
    """Split ``records`` into lists of at most ``max_records``, for callers building several batches."""
    chunk: list[NewRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= max_records:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
