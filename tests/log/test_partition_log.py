"""PartitionLog behaviour on real files: append, read, indexes, rolls, timestamps, truncation, retention."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from gafka.protocol.record_batch import (
    CorruptRecordError,
    InvalidRecordError,
    NewRecord,
    TimestampType,
    decode_batches,
    encode_batch,
    iter_batches,
    validate_batch,
)
from gafka_broker.log.errors import (
    LogCorruptionError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnexpectedOffsetError,
)
from gafka_broker.log.manager import CLEAN_SHUTDOWN_MARKER, LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig, TopicConfigError

from .conftest import batch, read_all


def test_leader_append_assigns_offsets_and_epoch(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    first = log.append_as_leader(batch([b"a", b"b"]), leader_epoch=4)
    second = log.append_as_leader(batch([b"c"]) + batch([b"d", b"e"]), leader_epoch=5)
    assert (first.base_offset, first.last_offset, first.record_count) == (0, 1, 2)
    assert (second.base_offset, second.last_offset, second.record_count) == (2, 4, 3)
    assert log.log_end_offset == 5
    raw = log.read(0, 1 << 20).data
    epochs = [header.partition_leader_epoch for _, header in iter_batches(raw)]
    assert epochs == [4, 5, 5]
    assert [record.value for record in read_all(log)] == [b"a", b"b", b"c", b"d", b"e"]


def test_segment_files_use_kafka_names(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for _ in range(40):
        log.append_as_leader(batch([b"x" * 200]))
    names = sorted(path.name for path in log_dir.iterdir())
    assert "00000000000000000000.log" in names
    assert "00000000000000000000.index" in names
    assert "00000000000000000000.timeindex" in names
    bases = sorted(int(name[:20]) for name in names if name.endswith(".log"))
    assert len(bases) > 1 and bases == [segment.base_offset for segment in log.segments]


def test_rejected_append_writes_nothing(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    log.append_as_leader(batch([b"ok"]))
    good = batch([b"fine"])
    damaged = bytearray(batch([b"bad"]))
    damaged[-1] ^= 1
    size_before = log.size_bytes
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(good + bytes(damaged))
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(good + good[:30])
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(b"")
    assert log.size_bytes == size_before and log.log_end_offset == 1
    assert sum(path.stat().st_size for path in log_dir.glob("*.log")) == size_before


def test_max_message_bytes_is_enforced(log_dir: Path) -> None:
    config = TopicConfig.from_configs({"max.message.bytes": 1000})
    log = PartitionLog.open(log_dir, config)
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(batch([b"x" * 2000]))
    log.append_as_leader(batch([b"x" * 500]))
    assert log.log_end_offset == 1


def test_client_control_and_transactional_batches_are_refused(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    with pytest.raises(InvalidRecordError, match="transactional"):
        log.append_as_leader(encode_batch([NewRecord(None, b"x")], is_transactional=True, producer_id=1))
    assert log.log_end_offset == 0


def test_log_append_time_is_stamped(log_dir: Path) -> None:
    config = TopicConfig.from_configs({"message.timestamp.type": "LogAppendTime"})
    log = PartitionLog.open(log_dir, config)
    result = log.append_as_leader(batch([b"a", b"b"], timestamp=5), now_ms=1_700_000_000_000)
    assert result.log_append_time == 1_700_000_000_000
    records = read_all(log)
    assert [record.timestamp for record in records] == [1_700_000_000_000] * 2
    validate_batch(log.read(0, 1 << 20).data)


def test_follower_append_keeps_offsets_and_checks_continuity(log_dir: Path, small_config: TopicConfig) -> None:
    leader = PartitionLog.open(log_dir.with_name("leader-0"), small_config)
    for index in range(5):
        leader.append_as_leader(batch([b"v%d" % index]), leader_epoch=2)
    follower = PartitionLog.open(log_dir, small_config)
    follower.append_as_follower(leader.read(0, 1 << 20).data)
    assert follower.log_end_offset == 5
    assert read_all(follower) == read_all(leader)
    with pytest.raises(UnexpectedOffsetError):
        follower.append_as_follower(leader.read(2, 1 << 20).data)
    assert follower.log_end_offset == 5


def test_read_respects_max_bytes_max_offset_and_whole_batches(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for index in range(30):
        log.append_as_leader(batch([b"%03d" % index, b"%03d!" % index]))
    one = log.read(7, 1).data  # smaller than any batch: still one whole batch
    headers = [header for _, header in iter_batches(one)]
    assert len(headers) == 1 and headers[0].base_offset == 6 and len(one) == headers[0].size
    capped = log.read(0, 1 << 20, max_offset=10).data
    assert max(record.offset for record in decode_batches(capped)) == 9
    assert log.read(10, 1 << 20, max_offset=10).data == b""
    assert log.read(60, 100).data == b""
    with pytest.raises(OffsetOutOfRangeError) as error:
        log.read(61, 100)
    assert (error.value.log_start_offset, error.value.log_end_offset) == (0, 60)


def test_reads_across_many_segments_use_the_index(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    values = [os.urandom(50) for _ in range(600)]
    for start in range(0, 600, 3):
        log.append_as_leader(batch(values[start : start + 3]))
    assert log.segment_count > 5
    for offset in (0, 1, 299, 300, 301, 599):
        first = next(record for record in decode_batches(log.read(offset, 100).data) if record.offset >= offset)
        assert first.offset == offset and first.value == values[offset]
    assert [record.value for record in read_all(log)] == values


def test_offset_for_timestamp(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    base = int(time.time() * 1000)
    for index in range(200):
        log.append_as_leader(encode_batch([NewRecord(None, b"x" * 40, (), base + index * 10)]))
    assert log.offset_for_timestamp(base) == (0, base)
    assert log.offset_for_timestamp(base + 1) == (1, base + 10)
    assert log.offset_for_timestamp(base + 1005) == (101, base + 1010)
    assert log.offset_for_timestamp(base + 1990) == (199, base + 1990)
    assert log.offset_for_timestamp(base + 1991) is None


def test_truncate_to_mid_log_and_continue(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for index in range(100):
        log.append_as_leader(batch([b"v%d" % index] * 2))
    log.truncate_to(101)  # offset 101 sits inside the batch 100-101: the whole batch goes
    assert log.log_end_offset == 100
    log.append_as_leader(batch([b"new"]))
    records = read_all(log)
    assert len(records) == 101 and records[-1].value == b"new" and records[-1].offset == 100
    log.close()
    reopened = PartitionLog.open(log_dir, small_config, clean=True)
    assert read_all(reopened) == records


def test_truncate_below_first_segment_resets_the_log(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for _ in range(10):
        log.append_as_leader(batch([b"x"]))
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    log.append_as_leader(batch([b"again"]))
    assert [record.offset for record in read_all(log)] == [0]


def test_delete_records_before_moves_the_start(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for _ in range(100):
        log.append_as_leader(batch([b"x" * 100]))
    segments_before = log.segment_count
    assert log.delete_records_before(50) == 50
    assert log.segment_count < segments_before
    assert next(record.offset for record in read_all(log)) == 50
    with pytest.raises(OffsetOutOfRangeError):
        log.read(49, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(101)


def test_retention_by_time_deletes_whole_old_segments(log_dir: Path, small_config: TopicConfig) -> None:
    config = TopicConfig.from_configs({"retention.ms": 60_000}, base=small_config)
    log = PartitionLog.open(log_dir, config)
    now = int(time.time() * 1000)
    for index in range(60):
        log.append_as_leader(batch([b"x" * 200], timestamp=now - 3_600_000 + index))
    old_segments = log.segment_count
    for _ in range(5):
        log.append_as_leader(batch([b"y" * 200], timestamp=now))
    deleted = log.apply_retention(now)
    assert deleted >= old_segments - 1
    remaining = read_all(log)
    assert all(record.value == b"y" * 200 for record in remaining if record.offset >= 60)
    assert log.log_start_offset == log.segments[0].base_offset
    assert len([record for record in remaining if record.value.startswith(b"y")]) == 5


def test_retention_of_an_expired_active_segment_rolls_first(log_dir: Path, small_config: TopicConfig) -> None:
    config = TopicConfig.from_configs({"retention.ms": 1000}, base=small_config)
    log = PartitionLog.open(log_dir, config)
    log.append_as_leader(batch([b"old"], timestamp=1_000))
    assert log.apply_retention(now_ms=int(time.time() * 1000)) == 1
    assert (log.log_start_offset, log.log_end_offset) == (1, 1)
    log.append_as_leader(batch([b"new"]))
    assert [record.offset for record in read_all(log)] == [1]


def test_retention_by_bytes_keeps_the_newest(log_dir: Path, small_config: TopicConfig) -> None:
    config = TopicConfig.from_configs({"retention.bytes": 10_000}, base=small_config)
    log = PartitionLog.open(log_dir, config)
    for _ in range(200):
        log.append_as_leader(batch([b"z" * 150]))
    log.apply_retention()
    # Kafka's rule: delete the oldest segment only while what remains is still >= retention.bytes
    assert log.size_bytes >= 10_000
    assert log.size_bytes - log.segments[0].size < 10_000
    assert read_all(log)[-1].offset == 199


def test_segment_ms_rolls_by_age(log_dir: Path) -> None:
    config = TopicConfig.from_configs({"segment.ms": 1000})
    log = PartitionLog.open(log_dir, config)
    now = int(time.time() * 1000)
    log.append_as_leader(batch([b"a"], timestamp=now - 5000), now_ms=now)
    log.append_as_leader(batch([b"b"], timestamp=now - 4500), now_ms=now)
    assert log.segment_count == 1, "age is record time: 500 ms between the batches"
    log.append_as_leader(batch([b"c"], timestamp=now), now_ms=now)
    assert log.segment_count == 2


def test_replayed_old_data_does_not_roll_every_append(log_dir: Path) -> None:
    log = PartitionLog.open(log_dir, TopicConfig.from_configs({"segment.ms": 60_000}))
    for index in range(20):
        log.append_as_leader(batch([b"x"], timestamp=978_307_200_000 + index))  # 2001
    assert log.segment_count == 1


def test_clean_reopen_trusts_files_and_keeps_everything(tmp_path: Path, small_config: TopicConfig) -> None:
    manager = LogManager(tmp_path)
    manager.startup({"orders": (2, small_config)})
    for index in range(50):
        manager.get_log("orders", index % 2).append_as_leader(batch([b"%d" % index]))  # type: ignore[union-attr]
    expected = {key: read_all(log) for key, log in manager.logs().items()}
    manager.shutdown()
    assert (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    again = LogManager(tmp_path)
    again.startup({"orders": (2, small_config)})
    assert again.clean_shutdown_detected
    assert not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    assert {key: read_all(log) for key, log in again.logs().items()} == expected


def test_corrupt_index_is_rebuilt_on_clean_open(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for index in range(100):
        log.append_as_leader(batch([b"%d" % index * 20]))
    expected = read_all(log)
    log.close()
    index_file = log_dir / "00000000000000000000.index"
    index_file.write_bytes(struct.pack(">ii", 5, 999_999) + b"\x01")
    reopened = PartitionLog.open(log_dir, small_config, clean=True)
    assert read_all(reopened) == expected


def test_manager_deletes_topics_and_leaves_other_dirs(tmp_path: Path, small_config: TopicConfig) -> None:
    manager = LogManager(tmp_path)
    manager.startup({"a": (1, small_config), "b": (1, small_config)})
    manager.get_log("a", 0).append_as_leader(batch([b"x"]))  # type: ignore[union-attr]
    manager.delete_logs("a")
    assert manager.get_log("a", 0) is None
    assert not any(path.name.startswith("a-") for path in tmp_path.iterdir())
    assert (tmp_path / "b-0").is_dir()


def test_topic_config_validation() -> None:
    with pytest.raises(TopicConfigError, match=r"retention\.ms"):
        TopicConfig.from_configs({"retention.ms": "soon"})
    with pytest.raises(TopicConfigError, match="unknown topic config"):
        TopicConfig.from_configs({"retention.hours": 1})
    with pytest.raises(TopicConfigError, match=r"cleanup\.policy"):
        TopicConfig.from_configs({"cleanup.policy": "archive"})
    config = TopicConfig.from_configs({"message.timestamp.type": "LogAppendTime", "flush.messages": "1"})
    assert config.message_timestamp_type is TimestampType.LOG_APPEND_TIME and config.flush_every_append
    assert config.to_configs()["message.timestamp.type"] == "LogAppendTime"
    assert config.overrides == {"message.timestamp.type": "LogAppendTime", "flush.messages": "1"}


def test_bytes_damaged_on_disk_are_never_served(log_dir: Path, small_config: TopicConfig) -> None:
    log = PartitionLog.open(log_dir, small_config)
    for index in range(10):
        log.append_as_leader(batch([b"value-%d" % index]))
    segment = log.segments[0]
    positions = [position for position, _ in segment.walk()]
    with segment.log_path.open("r+b") as handle:  # bit rot in the payload of the 6th batch
        handle.seek(positions[5] + 70)
        byte = handle.read(1)
        handle.seek(positions[5] + 70)
        handle.write(bytes([byte[0] ^ 0xFF]))
    served = list(decode_batches(log.read(0, 1 << 20).data))
    assert [record.offset for record in served] == [0, 1, 2, 3, 4]
    with pytest.raises(LogCorruptionError):
        log.read(5, 1 << 20)
    assert [record.offset for record in decode_batches(log.read(6, 1 << 20).data)] == [6, 7, 8, 9]
