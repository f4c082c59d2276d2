"""Helpers for the log-cleaner tests: keyed appends, reading a log with holes, and the live view."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from gafka.protocol.record_batch import NewRecord, decode_batch, encode_batch, iter_batches, validate_batch
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

T0 = int(time.time() * 1000) // 1000 * 1000
COMPACTED = TopicConfig.from_configs(
    {
        "cleanup.policy": "compact",
        "segment.bytes": "1024",
        "index.interval.bytes": "128",
        "min.cleanable.dirty.ratio": "0",
    }
)


class Entry(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def append_entries(log: PartitionLog, pairs: Sequence[tuple[bytes, bytes | None]], timestamp: int) -> None:
    """One batch of keyed records (None = tombstone), all at ``timestamp``."""
    log.append_as_leader(encode_batch([NewRecord(key, value, (), timestamp) for key, value in pairs]))


def log_entries(log: PartitionLog) -> list[Entry]:
    """Every record of the log through its public read path, batch by batch (holes and empty batches
    included), each batch CRC-checked."""
    entries: list[Entry] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 64 * 1024).data
        if not data:
            break
        for position, header in iter_batches(data):
            validate_batch(data, position)
            entries += [
                Entry(r.offset, r.key, r.value, r.timestamp)
                for r in decode_batch(data, position, header=header)
                if r.offset >= offset
            ]
            offset = header.next_offset
    return entries


def live_view(entries: Sequence[Entry]) -> dict[bytes | None, bytes]:
    """What a compacted topic means: the last value per key, tombstoned keys absent."""
    view: dict[bytes | None, bytes | None] = {}
    for entry in entries:
        view[entry.key] = entry.value
    return {key: value for key, value in view.items() if value is not None}


def open_manager(data_dir: Path, config: TopicConfig) -> tuple[LogManager, PartitionLog]:
    """A log manager over ``data_dir`` hosting partition ``t-0`` with ``config``."""
    manager = LogManager(data_dir)
    manager.startup({"t": (1, config)})
    log = manager.get_log("t", 0)
    assert log is not None
    return manager, log
