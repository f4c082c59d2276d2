"""Group state and committed offsets kept as records in an internal topic, like Kafka's ``__consumer_offsets``.

Each record is a key and a value, both JSON, so ``gafka consume __consumer_offsets`` shows them:

- ``{"type": "offset", "group": g, "topic": t, "partition": p}`` -> ``{"offset", "metadata", "commit_timestamp"}``
- ``{"type": "group", "group": g}`` -> the group's epochs, assignor, members and target assignment

A null value is a tombstone. Replaying a partition from its start, last value per key wins, rebuilds
the state. Instead of Kafka's log cleaner the store compacts by snapshot: it appends every live record
once more and then moves the log start offset to where that copy begins, so a crash halfway leaves the
old records in place and replay stays correct.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from gafka.protocol.record_batch import NewRecord, batches_of, decode_batches, encode_batch
from gafka_broker.log.partition_log import PartitionLog

logger = logging.getLogger(__name__)

StoreKey = tuple[Any, ...]
"""("offset", group, topic, partition) or ("group", group)."""

_BATCH_RECORDS = 500
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

    def __init__(
        self,
        log: PartitionLog,
        *,
        compact_after: int = 10_000,
        append: Callable[[bytes], object] | None = None,
    ) -> None:
        """``append`` writes one encoded batch; the broker passes its partition's, so the high watermark
        moves and fetches of ``__consumer_offsets`` see the records (default: straight to the log)."""
        self.log = log
        self.compact_after = compact_after
        self._append = append or log.append_as_leader
        self._live: dict[StoreKey, dict[str, Any]] = {}
        self._since_snapshot = 0

    def load(self) -> dict[StoreKey, dict[str, Any]]:
        """Replay the partition; returns the live value of every key (tombstoned keys are absent)."""
        self._live.clear()
        replayed = 0
        for key, value in self._replay():
            replayed += 1
            if value is None:
                self._live.pop(key, None)
            else:
                self._live[key] = value
        self._since_snapshot = replayed
        return dict(self._live)

    def _replay(self) -> Iterator[tuple[StoreKey, dict[str, Any] | None]]:
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, _READ_BYTES).data
            if not data:
                break
            for record in decode_batches(data):
                if record.offset < offset:
                    continue
                offset = record.offset + 1
                key = _decode_key(record.key) if record.key is not None else None
                if key is None:
                    logger.warning("event=group_store_skipped_record offset=%d", record.offset)
                    continue
                yield key, (orjson.loads(record.value) if record.value is not None else None)

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
        self._since_snapshot += len(records)
        if self._since_snapshot > max(self.compact_after, 2 * len(self._live)):
            self.compact()

    def compact(self) -> None:
        """Copy the live records to the end of the log and drop everything before the copy."""
        snapshot_start = self.log.log_end_offset
        live = [NewRecord(_encode_key(key), orjson.dumps(value)) for key, value in self._live.items()]
        for chunk in batches_of(live, _BATCH_RECORDS):
            self._append(encode_batch(chunk))
        self.log.delete_records_before(snapshot_start)
        self._since_snapshot = len(live)
        logger.info(
            "event=group_store_compacted partition=%s live_records=%d log_start_offset=%d",
            self.log.directory.name,
            len(live),
            self.log.log_start_offset,
        )
