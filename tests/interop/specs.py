"""Batches described once and built by both sides, and the comparisons the interop tests make.

A :class:`BatchSpec` is encoded by gafka (:meth:`BatchSpec.encode`) or sent to Kafka's
``MemoryRecordsBuilder`` (:meth:`BatchSpec.to_json`); the ``assert_*`` helpers compare what one side
wrote with what the other read, field by field and, where the codec allows, byte by byte.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gafka.protocol.compression import Compression, decompress
from gafka.protocol.record_batch import (
    BATCH_OVERHEAD,
    BatchHeader,
    NewRecord,
    Record,
    TimestampType,
    decode_batch,
    encode_batch,
    set_log_append_time,
    validate_batch,
)

from .kafka_tools import DumpedBatch, DumpedFile, b64, iter_log_files, unb64

CODECS = list(Compression)
FIRST_SEGMENT = "00000000000000000000.log"
KAFKA_CODEC_NAMES = {
    Compression.NONE: "none",
    Compression.GZIP: "gzip",
    Compression.SNAPPY: "snappy",
    Compression.LZ4: "lz4",
    Compression.ZSTD: "zstd",
}
NO_PRODUCER = (-1, -1, -1)


@dataclass(frozen=True)
class BatchSpec:
    """One batch, described once and built by both gafka (:meth:`encode`) and Kafka (:meth:`to_json`)."""

    records: tuple[NewRecord, ...]
    codec: Compression = Compression.NONE
    producer: tuple[int, int, int] = NO_PRODUCER
    """(producer id, producer epoch, base sequence)."""
    partition_leader_epoch: int = 0
    is_transactional: bool = False
    log_append_time: int | None = None

    def encode(self, base_offset: int, codec: Compression | None = None) -> bytes:
        """gafka's bytes for this batch; LogAppendTime is stamped the way a Kafka broker does."""
        producer_id, producer_epoch, base_sequence = self.producer
        data = bytearray(
            encode_batch(
                list(self.records),
                base_offset=base_offset,
                compression=self.codec if codec is None else codec,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                base_sequence=base_sequence,
                partition_leader_epoch=self.partition_leader_epoch,
                is_transactional=self.is_transactional,
                now_ms=0,
            )
        )
        if self.log_append_time is not None:
            set_log_append_time(data, 0, self.log_append_time)
        return bytes(data)

    def to_json(self) -> dict[str, Any]:
        """The request ``KafkaSegmentWriter`` builds this batch from, with Kafka's MemoryRecordsBuilder."""
        producer_id, producer_epoch, base_sequence = self.producer
        return {
            "codec": KAFKA_CODEC_NAMES[self.codec],
            "producer_id": producer_id,
            "producer_epoch": producer_epoch,
            "base_sequence": base_sequence,
            "partition_leader_epoch": self.partition_leader_epoch,
            "is_transactional": self.is_transactional,
            "log_append_time": self.log_append_time,
            "records": [
                {
                    "key": b64(record.key),
                    "value": b64(record.value),
                    "timestamp": record.timestamp,
                    "headers": [[name, b64(value)] for name, value in record.headers],
                }
                for record in self.records
            ],
        }

    def expected(self, base_offset: int) -> list[Record]:
        """The records a reader must see when this batch sits at ``base_offset``."""
        out: list[Record] = []
        for delta, record in enumerate(self.records):
            assert record.timestamp is not None
            timestamp = record.timestamp if self.log_append_time is None else self.log_append_time
            out.append(Record(base_offset + delta, timestamp, record.key, record.value, tuple(record.headers)))
        return out

    @property
    def max_timestamp(self) -> int:
        if self.log_append_time is not None:
            return self.log_append_time
        return max(record.timestamp for record in self.records if record.timestamp is not None)

    def sequence(self, delta: int) -> int:
        base = self.producer[2]
        return -1 if base == -1 else (base + delta) % (1 << 31)


def sample_batches(codec: Compression) -> list[BatchSpec]:
    """Hand-picked batches that cover every corner of the v2 layout, all compressed with ``codec``."""
    rng = random.Random(f"gafka-interop-{codec.name}")
    base_ts = 1_700_000_000_000
    every_byte = bytes(range(256))
    compressible = b"".join(b"gafka record %06d " % i for i in range(9000))  # ~170 KB: several codec blocks
    incompressible = rng.randbytes(70_000)
    return [
        BatchSpec(
            (
                NewRecord(b"user-1", b"first value", [("trace-id", b"abc"), ("empty", b""), ("nil", None)], base_ts),
                NewRecord(b"user-2", b"second", [("dup", b"1"), ("dup", b"2")], base_ts + 7),
                NewRecord(
                    b"user-1",
                    "ünïcødé ✓".encode(),
                    [("ключ", "значение".encode()), ("キー", b"v")],
                    base_ts + 3,
                ),
            ),
            codec,
            producer=(4242, 3, 0),
            partition_leader_epoch=5,
        ),
        BatchSpec(
            (
                NewRecord(None, b"null key", [], base_ts + 100),
                NewRecord(b"null value", None, [], base_ts + 90),  # timestamps need not be monotonic
                NewRecord(b"", b"", [], base_ts + 80),
                NewRecord(None, None, [("", b"empty header key")], base_ts + 110),
                NewRecord(every_byte, every_byte[::-1], [("bin", every_byte)], base_ts - 5_000),
            ),
            codec,
            partition_leader_epoch=5,
        ),
        BatchSpec(
            (
                NewRecord(b"big-compressible", compressible, [], base_ts + 1_000),
                NewRecord(b"big-random", incompressible, [("size", b"70000")], base_ts + 1_001),
            ),
            codec,
            producer=(4242, 3, 3),
            partition_leader_epoch=6,
        ),
        BatchSpec(  # sequence numbers wrap past Int32.MAX_VALUE, as Kafka's DefaultRecordBatch does
            tuple(NewRecord(b"txn-%d" % i, b"v" * i, [], base_ts + 2_000 + i) for i in range(4)),
            codec,
            producer=(9_000_000_000_000, 32_000, 2**31 - 2),
            partition_leader_epoch=6,
            is_transactional=True,
        ),
        BatchSpec(
            (
                NewRecord(b"k", b"appended", [("h", b"x")], base_ts + 3_000),
                NewRecord(b"k2", b"v2", [], base_ts + 2_999),
            ),
            codec,
            partition_leader_epoch=7,
            log_append_time=1_750_000_000_123,
        ),
        BatchSpec(  # 1000 records: multi-byte varint offset deltas; timestamp deltas beyond 32 bits both ways
            tuple(
                NewRecord(
                    b"key-%d" % i,
                    rng.randbytes(rng.randrange(0, 40)),
                    [("i", str(i).encode())] if i % 3 else [],
                    base_ts + (i * 400_000_000 if i % 2 else -i * 300_000_000),
                )
                for i in range(1000)
            ),
            codec,
            partition_leader_epoch=7,
        ),
    ]


def layout(specs: Sequence[BatchSpec], first_offset: int = 0) -> list[int]:
    """Base offset of each batch when the batches are appended back to back from ``first_offset``."""
    offsets: list[int] = []
    next_offset = first_offset
    for spec in specs:
        offsets.append(next_offset)
        next_offset += len(spec.records)
    return offsets


def write_gafka_segment(directory: Path, specs: Sequence[BatchSpec], first_offset: int = 0) -> tuple[Path, list[bytes]]:
    """Write ``specs`` with gafka's encoder into ``<directory>/<first_offset:020d>.log``."""
    directory.mkdir(parents=True, exist_ok=True)
    encoded = [spec.encode(base) for spec, base in zip(specs, layout(specs, first_offset), strict=True)]
    path = directory / f"{first_offset:020d}.log"
    path.write_bytes(b"".join(encoded))
    return path, encoded


def _describe(spec: BatchSpec) -> str:
    text = repr(spec)
    return text if len(text) < 2_000 else text[:2_000] + "..."


def assert_kafka_dump_matches(
    dumped: DumpedFile, specs: Sequence[BatchSpec], encoded: Sequence[bytes], first: int
) -> None:
    """Every batch and record DumpLogSegments printed is exactly what gafka encoded."""
    assert len(dumped.batches) == len(specs), dumped.notes
    assert not [note for note in dumped.notes if "invalid bytes" in note], dumped.notes
    position = 0
    for batch, spec, data, base in zip(dumped.batches, specs, encoded, layout(specs, first), strict=True):
        header = validate_batch(data)
        context = f"batch at offset {base}: {_describe(spec)}"
        producer_id, producer_epoch, base_sequence = spec.producer
        last_sequence = spec.sequence(len(spec.records) - 1)
        assert batch == DumpedBatch(
            base_offset=base,
            last_offset=base + len(spec.records) - 1,
            count=len(spec.records),
            base_sequence=base_sequence,
            last_sequence=last_sequence,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            partition_leader_epoch=spec.partition_leader_epoch,
            is_transactional=spec.is_transactional,
            is_control=False,
            position=position,
            timestamp_type="CreateTime" if spec.log_append_time is None else "LogAppendTime",
            max_timestamp=spec.max_timestamp,
            size=len(data),
            magic=2,
            codec=KAFKA_CODEC_NAMES[spec.codec],
            crc=header.crc,
            is_valid=True,
            records=batch.records,
        ), context
        assert len(batch.records) == len(spec.records), context
        for delta, (dumped_record, expected) in enumerate(zip(batch.records, spec.expected(base), strict=True)):
            assert dumped_record.offset == expected.offset, context
            assert dumped_record.timestamp == expected.timestamp, context
            assert dumped_record.timestamp_type == batch.timestamp_type, context
            assert dumped_record.key == expected.key, context
            assert dumped_record.value == expected.value, context
            assert dumped_record.key_size == (-1 if expected.key is None else len(expected.key)), context
            assert dumped_record.value_size == (-1 if expected.value is None else len(expected.value)), context
            assert dumped_record.header_keys_text == ",".join(name for name, _ in expected.headers), context
            assert dumped_record.sequence == spec.sequence(delta), context
        position += len(data)


def assert_kafka_read_matches(batches: Sequence[dict[str, Any]], specs: Sequence[BatchSpec], first: int) -> None:
    """Kafka's FileRecords sees every header value (DumpLogSegments prints only header keys)."""
    assert len(batches) == len(specs)
    for batch, spec, base in zip(batches, specs, layout(specs, first), strict=True):
        context = f"batch at offset {base}: {_describe(spec)}"
        assert batch["valid"] is True, context
        assert batch["magic"] == 2, context
        records = [
            Record(
                r["offset"],
                r["timestamp"],
                unb64(r["key"]),
                unb64(r["value"]),
                tuple((name, unb64(value)) for name, value in r["headers"]),
            )
            for r in batch["records"]
        ]
        assert records == spec.expected(base), context


def assert_gafka_reads(data: bytes, specs: Sequence[BatchSpec], first: int) -> list[tuple[int, BatchHeader]]:
    """gafka validates (size, magic, CRC-32C) and decodes every batch of a Kafka-written segment."""
    found: list[tuple[int, BatchHeader]] = []
    position = 0
    for spec, base in zip(specs, layout(specs, first), strict=True):
        context = f"batch at offset {base}: {_describe(spec)}"
        header = validate_batch(data, position)
        assert header.base_offset == base, context
        assert header.records_count == len(spec.records), context
        assert header.compression is spec.codec, context
        assert (header.producer_id, header.producer_epoch, header.base_sequence) == spec.producer, context
        assert header.partition_leader_epoch == spec.partition_leader_epoch, context
        assert header.is_transactional == spec.is_transactional, context
        assert header.max_timestamp == spec.max_timestamp, context
        expected_type = TimestampType.CREATE_TIME if spec.log_append_time is None else TimestampType.LOG_APPEND_TIME
        assert header.timestamp_type is expected_type, context
        assert decode_batch(data, position, header=header) == spec.expected(base), context
        found.append((position, header))
        position += header.size
    assert position == len(data), "bytes left after the last expected batch"
    return found


def assert_same_bytes_as_gafka(kafka_bytes: bytes, spec: BatchSpec, base: int) -> None:
    """Kafka's batch is gafka's, byte for byte; for compressed batches, once the records are decompressed."""
    ours = spec.encode(base)
    if spec.codec is Compression.NONE:
        assert kafka_bytes == ours, f"batch at offset {base}"
        return
    kafka_header = validate_batch(kafka_bytes)
    # Everything but batchLength and the CRC (which cover the compressed bytes) is identical...
    assert kafka_bytes[:8] == ours[:8]
    assert kafka_bytes[12:17] == ours[12:17]
    assert kafka_bytes[21:BATCH_OVERHEAD] == ours[21:BATCH_OVERHEAD]
    # ...and the records section Kafka compressed is exactly what gafka writes uncompressed.
    uncompressed = spec.encode(base, Compression.NONE)
    assert decompress(kafka_header.compression, kafka_bytes[BATCH_OVERHEAD:]) == uncompressed[BATCH_OVERHEAD:]


def split_by_segment(directory: Path, specs: Sequence[BatchSpec]) -> list[tuple[Path, list[BatchSpec], int]]:
    """Split ``specs`` over the directory's segments by their base offsets (file names)."""
    offsets = layout(specs)
    out: list[tuple[Path, list[BatchSpec], int]] = []
    for path in iter_log_files(directory):
        start = int(path.stem)
        out.append((path, [spec for spec, base in zip(specs, offsets, strict=True) if base >= start], start))
    for index in range(len(out) - 1):
        next_start = out[index + 1][2]
        path, segment_specs, start = out[index]
        kept = [s for s, b in zip(segment_specs, layout(segment_specs, start), strict=True) if b < next_start]
        out[index] = (path, kept, start)
    return out
