"""Helpers for partition-log tests: build batches and read a whole log back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gafka.protocol.record_batch import NewRecord, Record, decode_batches, encode_batch
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig


def batch(values: list[bytes], *, timestamp: int | None = None, key: bytes | None = None) -> bytes:
    now = int(time.time() * 1000) if timestamp is None else timestamp
    return encode_batch([NewRecord(key, value, (), now) for value in values])


def read_all(log: PartitionLog, start: int | None = None, max_bytes: int = 64 * 1024) -> list[Record]:
    """Every record from ``start`` (default: the log start) to the end, through the public read path."""
    offset = log.log_start_offset if start is None else start
    records: list[Record] = []
    while offset < log.log_end_offset:
        result = log.read(offset, max_bytes)
        assert result.data, f"read at {offset} returned nothing before the log end {log.log_end_offset}"
        fresh = [record for record in decode_batches(result.data, validate=True) if record.offset >= offset]
        assert fresh, f"read at {offset} returned only older records"
        records.extend(fresh)
        offset = fresh[-1].offset + 1
    return records


@pytest.fixture
def small_config() -> TopicConfig:
    return TopicConfig.from_configs({"segment.bytes": 4096, "index.interval.bytes": 256})


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "orders-0"
