"""Group state and committed offsets kept as records in an internal topic, like Kafka's ``__consumer_offsets``.

Each record is a key and a value, both JSON, so ``gafka consume __consumer_offsets`` shows them:

- ``{"type": "offset", "group": g, "topic": t, "partition": p}`` -> ``{"offset", "metadata", "commit_timestamp"}``
- ``{"type": "group", "group": g}`` -> the group's epochs, assignor, members and target assignment

A null value is a tombstone. Replaying a partition from its start, last value per key wins, rebuilds
the state. The topic is an ordinary compacted topic: the broker's log cleaner keeps the last record per
key (and drops tombstones after ``delete.retention.ms``), as Kafka's does for its ``__consumer_offsets``;
replay reads across the holes cleaning leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from gafka.protocol.record_batch import NewRecord, decode_batch, encode_batch, iter_batches
from gafka_broker.log.partition_log import PartitionLog

logger = logging.getLogger(__name__)

StoreKey = tuple[Any, ...]
"""("offset", group, topic, partition) or ("group", group)."""

_READ_BYTES = 4 * 1024 * 1024


def offset_key(group: str, topic: str, partition: int) -> StoreKey:
    return ("offset", group, topic, partition)


def group_key(group: str) -> StoreKey:
    return ("group", group)


def _encode_key(key: StoreKey) -> bytes:
    if key[0] == "offset":
        return orjson.dumps({"type": "offset", "group": key[1], "topic": key[2], "partition": key[3]})
    return orjson.dumps({"type": "group", "group": key[1]})


def _decode_key(raw: bytes) -> StoreKey | None:
    try:
        data = orjson.loads(raw)
        if data["type"] == "offset":
            return ("offset", str(data["group"]), str(data["topic"]), int(data["partition"]))
        if data["type"] == "group":
            return ("group", str(data["group"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    return None


class GroupStore:
    """The records of the groups that map to one partition of the internal topic."""

    def __init__(self, log: PartitionLog, *, append: Callable[[bytes], object] | None = None) -> None:
        """``append`` writes one encoded batch; the broker passes its partition's, so the high watermark
        moves and fetches of ``__consumer_offsets`` see the records (default: straight to the log)."""
        self.log = log
        self._append = append or log.append_as_leader
        self._live: dict[StoreKey, dict[str, Any]] = {}

    def load(self) -> dict[StoreKey, dict[str, Any]]:
        """Replay the partition; returns the live value of every key (tombstoned keys are absent)."""
        self._live.clear()
        for key, value in self._replay():
            if value is None:
                self._live.pop(key, None)
            else:
                self._live[key] = value
        return dict(self._live)

    def _replay(self) -> Iterator[tuple[StoreKey, dict[str, Any] | None]]:
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, _READ_BYTES).data
            if not data:
                break
            for position, header in iter_batches(data):
                # a cleaned batch may hold fewer records than its offsets, or none: go by its header
                records = [] if header.is_control else decode_batch(data, position, header=header)
                for record in records:
                    if record.offset < offset:
                        continue
                    key = _decode_key(record.key) if record.key is not None else None
                    if key is None:
                        logger.warning("event=group_store_skipped_record offset=%d", record.offset)
                        continue
                    yield key, (orjson.loads(record.value) if record.value is not None else None)
                offset = header.next_offset

    def write(self, entries: Iterable[tuple[StoreKey, dict[str, Any] | None]]) -> None:
        """Append records for ``entries`` (None = delete) in one batch, all or nothing."""
        entries = list(entries)
        records = [
            NewRecord(_encode_key(key), orjson.dumps(value) if value is not None else None) for key, value in entries
        ]
        if not records:
            return
        self._append(encode_batch(records))
        for key, value in entries:
            if value is None:
                self._live.pop(key, None)
            else:
                self._live[key] = value
