"""The log cleaner against real partition logs: Kafka's compaction rules and a crash-safe swap."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gafka.protocol.record_batch import NewRecord, encode_batch, iter_batches, parse_header
from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.errors import InvalidRecordError
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .compaction import (
    COMPACTED,
    T0,
    Entry,
    append_entries,
    live_view,
    log_entries,
    open_manager,
)

DAY = 24 * 60 * 60 * 1000


def _cleaner(manager: LogManager) -> LogCleaner:
    return LogCleaner(manager, backoff_ms=10)


def test_keeps_the_last_value_per_key_with_offsets_unchanged(tmp_path: Path) -> None:
    manager, log = open_manager(tmp_path, COMPACTED)
    append_entries(log, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1")], T0)
    append_entries(log, [(b"b", b"2"), (b"a", b"3")], T0 + 1)
    log.roll()
    append_entries(log, [(b"d", b"1")], T0 + 2)  # the active segment: never cleaned
    before = log_entries(log)
    result = _cleaner(manager).clean_filthiest(T0 + 10)
    assert result is not None and result.first_dirty_after == 6
    after = log_entries(log)
    assert [(e.offset, e.key, e.value) for e in after] == [
        (3, b"c", b"1"),
        (4, b"b", b"2"),
        (5, b"a", b"3"),
        (6, b"d", b"1"),
    ]
    assert live_view(after) == live_view(before)
    assert log.log_end_offset == 7 and log.log_start_offset == 0
    assert _cleaner(manager).clean_filthiest(T0 + 20) is None  # nothing dirty any more
    manager.shutdown()


def test_tombstones_live_for_delete_retention_then_go(tmp_path: Path) -> None:
    config = TopicConfig.from_configs({**COMPACTED.overrides, "delete.retention.ms": str(DAY)})
    manager, log = open_manager(tmp_path, config)
    append_entries(log, [(b"a", b"1"), (b"b", b"1")], T0)
    append_entries(log, [(b"a", None)], T0)
    log.roll()
    append_entries(log, [(b"x", b"1")], T0)
    cleaner = _cleaner(manager)
    assert cleaner.clean_filthiest(T0 + 1000) is not None
    entries = log_entries(log)
    assert [(e.offset, e.key, e.value) for e in entries[:2]] == [(1, b"b", b"1"), (2, b"a", None)]
    tombstone_batch = next(h for h in _headers(log) if h.base_offset == 2)
    assert tombstone_batch.delete_horizon_ms == T0 + 1000 + DAY
    # more dirt so the log is cleanable again; the tombstone stays until its horizon...
    append_entries(log, [(b"x", b"2")], T0)
    log.roll()
    append_entries(log, [(b"y", b"1")], T0)
    assert cleaner.clean_filthiest(T0 + DAY) is not None
    assert (2, b"a", None) in [(e.offset, e.key, e.value) for e in log_entries(log)]
    append_entries(log, [(b"x", b"3")], T0)
    log.roll()
    append_entries(log, [(b"y", b"2")], T0)
    assert cleaner.clean_filthiest(T0 + 1000 + DAY) is not None  # ...and goes once it has passed
    assert b"a" not in {e.key for e in log_entries(log)}
    manager.shutdown()


def test_keyless_records_are_refused_on_a_compacted_topic(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", COMPACTED)
    keyed = encode_batch([NewRecord(b"k", b"v", (), T0)])
    keyless = encode_batch([NewRecord(b"k", b"v", (), T0), NewRecord(None, b"v", (), T0)])
    log.append_as_leader(keyed)
    with pytest.raises(InvalidRecordError, match="no key"):
        log.append_as_leader(keyed + keyless)
    with pytest.raises(InvalidRecordError, match="no key"):
        log.append_as_leader(bytearray(keyless), trusted=True)
    assert log.log_end_offset == 1  # nothing of the refused requests was written
    plain = PartitionLog.open(tmp_path / "p-0", TopicConfig())
    plain.append_as_leader(keyless)
    log.close()
    plain.close()


def test_cleaning_stops_below_the_stable_offset_and_the_compaction_lag(tmp_path: Path) -> None:
    config = TopicConfig.from_configs({**COMPACTED.overrides, "min.compaction.lag.ms": "5000"})
    manager, log = open_manager(tmp_path, config)
    append_entries(log, [(b"a", b"1")] * 3, T0)
    log.roll()
    append_entries(log, [(b"a", b"2")] * 3, T0 + 10_000)
    log.roll()
    append_entries(log, [(b"z", b"1")], T0 + 10_000)
    cleaner = _cleaner(manager)
    # at T0 + 12 s the second segment is younger than the lag: only the first is cleanable
    result = cleaner.clean_filthiest(T0 + 12_000)
    assert result is not None and result.cleaning.first_uncleanable == 3
    assert [e.offset for e in log_entries(log)] == [2, 3, 4, 5, 6]
    held = LogCleaner(manager, stable_offset=lambda _key, _log: 4)
    result = held.clean_filthiest(T0 + 60_000)
    assert result is not None and result.cleaning.first_uncleanable == 4
    assert [e.offset for e in log_entries(log)] == [3, 4, 5, 6]  # 4 and 5 lie past the stable offset
    manager.shutdown()


def test_active_segment_rolls_at_max_compaction_lag(tmp_path: Path) -> None:
    config = TopicConfig.from_configs({**COMPACTED.overrides, "max.compaction.lag.ms": "1000"})
    assert config.max_segment_ms == 1000
    log = PartitionLog.open(tmp_path / "t-0", config)
    append_entries(log, [(b"a", b"1")], T0)
    append_entries(log, [(b"a", b"2")], T0 + 2000)
    assert log.segment_count == 2
    log.close()


def test_empty_producer_batch_is_kept_and_retention_respects_policy(tmp_path: Path) -> None:
    manager, log = open_manager(tmp_path, COMPACTED)
    log.append_as_leader(
        encode_batch([NewRecord(b"a", b"1", (), T0)], producer_id=7, producer_epoch=2, base_sequence=0)
    )
    append_entries(log, [(b"a", b"2")], T0)
    log.roll()
    append_entries(log, [(b"z", b"1")], T0)
    assert _cleaner(manager).clean_filthiest(T0 + 5) is not None
    first = _headers(log)[0]
    assert (first.base_offset, first.records_count, first.producer_id, first.producer_epoch) == (0, 0, 7, 2)
    assert first.base_sequence == 0 and first.last_offset_delta == 0
    # compact only: retention.ms does not delete anything
    assert log.apply_retention(T0 + 100 * DAY) == 0
    manager.shutdown()


def test_crash_before_the_commit_leaves_the_old_segments(tmp_path: Path) -> None:
    manager, log = open_manager(tmp_path, COMPACTED)
    append_entries(log, [(b"a", b"1"), (b"a", b"2")], T0)
    log.roll()
    append_entries(log, [(b"z", b"1")], T0)
    before = log_entries(log)

    def crash(step: str) -> None:
        if step == "index_swap_files":
            raise _CrashError(step)

    with pytest.raises(_CrashError):
        _cleaner(manager).clean_filthiest(T0 + 5, swap_step=crash)
    assert any(path.name.endswith(".swap") for path in log.directory.iterdir())
    log.abandon()
    reopened = LogManager(tmp_path)
    reopened.startup({"t": (1, COMPACTED)})
    recovered = reopened.get_log("t", 0)
    assert recovered is not None
    assert log_entries(recovered) == before
    assert not any(p.name.endswith((".swap", ".cleaned", ".deleted")) for p in log.directory.iterdir())
    reopened.shutdown()


class _CrashError(Exception):
    pass


def _headers(log: PartitionLog) -> list:  # type: ignore[type-arg]
    headers = []
    for segment in log.segments:
        data = segment.log_path.read_bytes()
        headers += [parse_header(data, position) for position, _ in iter_batches(data)]
    return headers


__all__ = ["Entry"]


def test_metrics_per_partition_and_forgotten_with_the_log(tmp_path: Path) -> None:
    manager, log = open_manager(tmp_path, COMPACTED)
    append_entries(log, [(b"a", b"1"), (b"a", b"2")], T0)
    log.roll()
    append_entries(log, [(b"z", b"1")], T0)
    cleaner = _cleaner(manager)
    assert cleaner.clean_filthiest(T0 + 5) is not None
    labels = {"topic": "t", "partition": "0"}
    assert REGISTRY.get_sample_value("gafka_log_cleaner_dirty_ratio", labels) is not None
    assert (REGISTRY.get_sample_value("gafka_log_cleaner_bytes_read_total", labels) or 0) > 0
    assert REGISTRY.get_sample_value("gafka_log_cleaner_last_clean_timestamp_seconds", labels)
    manager.delete_logs("t")
    assert cleaner.clean_filthiest(T0 + 10) is None
    assert REGISTRY.get_sample_value("gafka_log_cleaner_dirty_ratio", labels) is None
    assert REGISTRY.get_sample_value("gafka_log_cleaner_bytes_read_total", labels) is None
    manager.shutdown()
