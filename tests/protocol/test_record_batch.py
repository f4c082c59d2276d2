"""RecordBatch v2 codec: hand-checked byte layouts, damage detection, round trips, kafka-python interop."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from gafka.protocol.record_batch import (
    BATCH_OVERHEAD,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    NewRecord,
    TimestampType,
    check_records,
    decode_batch,
    decode_batches,
    encode_batch,
    iter_batches,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batch,
)
from gafka.protocol.varint import VarintError, encode_varint, read_varint, size_of_varint


def test_varint_zigzag_matches_protobuf() -> None:
    # zig-zag: 0->0, -1->1, 1->2, -2->3, 63->126, -64->127, 64->128 (two bytes 0x80 0x01)
    assert encode_varint(0) == b"\x00"
    assert encode_varint(-1) == b"\x01"
    assert encode_varint(1) == b"\x02"
    assert encode_varint(-2) == b"\x03"
    assert encode_varint(63) == b"\x7e"
    assert encode_varint(-64) == b"\x7f"
    assert encode_varint(64) == b"\x80\x01"
    assert encode_varint(300) == b"\xd8\x04"
    assert read_varint(b"\xd8\x04", 0) == (300, 2)


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == size_of_varint(value)
    assert read_varint(encoded, 0) == (value, len(encoded))


def test_varint_rejects_truncation() -> None:
    with pytest.raises(VarintError):
        read_varint(b"\x80\x80", 0)


def test_single_record_batch_layout_is_kafkas() -> None:
    """One record, key b"k", value b"v", no headers, at base offset 5 and timestamp 1000: every byte checked."""
    raw = encode_batch([NewRecord(b"k", b"v", (), 1000)], base_offset=5, now_ms=1000)
    record = bytes([0x00, 0x00, 0x00, 0x02]) + b"k" + bytes([0x02]) + b"v" + bytes([0x00])
    record = bytes([len(record) * 2]) + record  # length varint (zig-zag of 9 = 18)
    assert record == b"\x10\x00\x00\x00\x02k\x02v\x00"
    expected_after_crc = struct.pack(">hiqqqhii", 0, 0, 1000, 1000, -1, -1, -1, 1) + record
    expected = (
        struct.pack(">qiib", 5, len(raw) - 12, -1, 2)
        + struct.pack(">I", crc32c.crc32c(expected_after_crc))
        + expected_after_crc
    )
    assert raw == expected
    assert len(raw) == BATCH_OVERHEAD + len(record)


def test_null_key_and_value_are_minus_one() -> None:
    raw = encode_batch([NewRecord(None, None, [("h", None)], 7)], now_ms=7)
    # length, attributes, ts delta, offset delta, key len -1, value len -1, 1 header, "h", value len -1
    assert raw[BATCH_OVERHEAD:] == b"\x12\x00\x00\x00\x01\x01\x02\x02h\x01"
    (record,) = decode_batch(raw)
    assert record.key is None and record.value is None and record.headers == (("h", None),)


def test_header_fields_and_properties() -> None:
    raw = encode_batch(
        [NewRecord(b"a", b"1", (), 10), NewRecord(b"b", b"2", (), 30), NewRecord(b"c", b"3", (), 20)],
        compression=Compression.LZ4,
        producer_id=42,
        producer_epoch=3,
        base_sequence=100,
        partition_leader_epoch=9,
    )
    header = validate_batch(raw)
    assert header.records_count == 3 and header.last_offset_delta == 2
    assert header.base_timestamp == 10 and header.max_timestamp == 30
    assert header.compression is Compression.LZ4
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 100)
    assert header.last_sequence == 102
    assert header.partition_leader_epoch == 9
    assert [record.timestamp for record in decode_batch(raw)] == [10, 30, 20]


def test_offset_and_epoch_patch_keep_crc_valid() -> None:
    raw = bytearray(encode_batch([NewRecord(None, b"x")]))
    set_base_offset(raw, 0, 1234)
    set_partition_leader_epoch(raw, 0, 77)
    header = validate_batch(raw)
    assert header.base_offset == 1234 and header.partition_leader_epoch == 77
    assert decode_batch(raw)[0].offset == 1234


def test_log_append_time_rewrites_timestamps_and_crc() -> None:
    raw = bytearray(encode_batch([NewRecord(None, b"x", (), 5), NewRecord(None, b"y", (), 6)]))
    set_log_append_time(raw, 0, 999_999)
    header = validate_batch(raw)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [record.timestamp for record in decode_batch(raw)] == [999_999, 999_999]


@pytest.mark.parametrize("position", [0, 8, 11, 16, 17, 21, 40, 60, 61, 70])
def test_every_damaged_byte_outside_offset_and_epoch_is_detected(position: int) -> None:
    raw = bytearray(encode_batch([NewRecord(b"key", b"value" * 3, [("h", b"v")])]))
    raw[position] ^= 0x40
    if position < 8:  # the base offset is outside the CRC by design (the broker assigns it)
        validate_batch(raw)
        return
    with pytest.raises((CorruptRecordError, InvalidRecordError)):
        validate_batch(raw)


def test_truncated_batch_is_corrupt() -> None:
    raw = encode_batch([NewRecord(None, b"x" * 100)])
    for cut in (0, 5, 12, 60, len(raw) - 1):
        with pytest.raises(CorruptRecordError):
            validate_batch(raw[:cut])


def test_wrong_magic_is_rejected() -> None:
    raw = bytearray(encode_batch([NewRecord(None, b"x")]))
    raw[16] = 1
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_batch(raw)


def test_check_records_catches_lying_counts() -> None:
    raw = bytearray(encode_batch([NewRecord(None, b"x"), NewRecord(None, b"y")]))
    struct.pack_into(">i", raw, 57, 3)  # records count says 3, there are 2
    struct.pack_into(">I", raw, 17, crc32c.crc32c(bytes(raw[21:])))
    header = validate_batch(raw)
    with pytest.raises(InvalidRecordError):
        check_records(raw, 0, header)


def test_iter_batches_stops_at_partial_tail() -> None:
    one = encode_batch([NewRecord(None, b"a")])
    two = encode_batch([NewRecord(None, b"b")], base_offset=1)
    stream = one + two + two[:20]
    assert [header.base_offset for _, header in iter_batches(stream)] == [0, 1]
    assert [record.value for record in decode_batches(stream)] == [b"a", b"b"]


record_strategy = st.builds(
    NewRecord,
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=300),
    headers=st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=3),
    timestamp=st.integers(min_value=0, max_value=1 << 42),
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=20),
    codec=st.sampled_from(list(Compression)),
    base_offset=st.integers(min_value=0, max_value=1 << 40),
)
def test_round_trip_for_every_codec(records: list[NewRecord], codec: Compression, base_offset: int) -> None:
    raw = encode_batch(records, base_offset=base_offset, compression=codec)
    header = validate_batch(raw)
    check_records(raw, 0, header)
    decoded = decode_batch(raw)
    assert [r.offset for r in decoded] == list(range(base_offset, base_offset + len(records)))
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in decoded] == [
        (r.key, r.value, list(r.headers), r.timestamp) for r in records
    ]


@settings(max_examples=40, deadline=None)
@given(records=st.lists(record_strategy, min_size=1, max_size=10), codec=st.sampled_from(list(Compression)))
def test_kafka_python_decodes_ours(records: list[NewRecord], codec: Compression) -> None:
    raw = encode_batch(records, base_offset=3, compression=codec, producer_id=7, producer_epoch=1, base_sequence=0)
    theirs = DefaultRecordBatch(raw)
    assert theirs.validate_crc()
    decoded = list(theirs)
    assert [r.offset for r in decoded] == list(range(3, 3 + len(records)))
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in decoded] == [
        (r.key, r.value, list(r.headers), r.timestamp) for r in records
    ]


@settings(max_examples=40, deadline=None)
@given(records=st.lists(record_strategy, min_size=1, max_size=10), codec=st.sampled_from(list(Compression)))
def test_ours_decodes_kafka_pythons(records: list[NewRecord], codec: Compression) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 24,
    )
    for offset, record in enumerate(records):
        builder.append(offset, timestamp=record.timestamp, key=record.key, value=record.value, headers=record.headers)
    raw = bytes(builder.build())
    header = validate_batch(raw)
    check_records(raw, 0, header)
    assert header.compression in (codec, Compression.NONE)  # kafka-python skips compression that does not pay
    decoded = decode_batch(raw)
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in decoded] == [
        (r.key, r.value, list(r.headers), r.timestamp) for r in records
    ]


def test_parse_header_needs_61_bytes() -> None:
    with pytest.raises(CorruptRecordError):
        parse_header(b"\x00" * 60)


def test_compression_names() -> None:
    assert Compression.parse("zstd") is Compression.ZSTD
    assert Compression.parse(None) is Compression.NONE
    with pytest.raises(ValueError, match="unknown compression"):
        Compression.parse("brotli")
