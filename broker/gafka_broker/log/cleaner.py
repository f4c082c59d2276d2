"""Kafka's log cleaner for one partition log: keep the last record per key, offsets unchanged.

One cleaning (Kafka's ``Cleaner.doClean``):

1. Map every key of the *dirty* section ``[first_dirty, first_uncleanable)`` to its last offset.
2. Recopy the log from its first segment up to the end of the mapped section, group by group (a
   group is consecutive segments that fit in one segment), into a ``.cleaned`` segment beside the
   old ones, keeping a record when it is the last of its key, or lies past the mapped section, or is
   a tombstone whose delete horizon has not passed; then swap it in
   (:meth:`PartitionLog.replace_segments`).

Batches keep every field Kafka keeps: a batch whose records all survive is copied byte for byte; one
that loses records is rebuilt around the survivors with the same base offset, last offset delta,
producer id/epoch/sequence, leader epoch, codec and attributes. A batch that keeps tombstones gets a
*delete horizon* (now + ``delete.retention.ms``, KIP-534); once it has passed, the next cleaning
removes them. An emptied batch disappears, except the last batch of a producer (its sequence and
epoch must survive) and the last batch of the cleaned range (the log's last offset must survive).

Transactions, as Kafka's cleaner handles them: batches of an aborted transaction are removed whole
(and never mapped); a commit or abort marker stays while any batch of its transaction does, then gets
a delete horizon and goes after it. Kafka learns which transactions aborted from its ``.txnindex``;
gafka reads the markers themselves while it scans the log's batch headers. Clients cannot write
transactional batches or markers yet (the log refuses them until the transaction coordinator
exists), but a log holding them -- a follower copy, or one written by Kafka -- is cleaned as Kafka
cleans it (tested against Kafka's own cleaner).

Reading happens on the cleaner's thread through its own file descriptors (a segment deleted by
retention meanwhile is still readable, and never confused with a new file); only the swap runs on
the log's owner thread, through ``run_on_owner``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from gafka.protocol.record_batch import (
    BATCH_OVERHEAD,
    NO_PRODUCER_ID,
    BatchHeader,
    RecordKey,
    decode_batch,
    encode_empty_batch,
    encode_retained_batch,
    iter_batches,
    parse_header,
    record_keys,
)
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.log.segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, LogSegment, segment_name
from gafka_broker.topic_config import TopicConfig

logger = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
DEFAULT_MAX_MAP_ENTRIES = 1_000_000
"""Keys one cleaning maps at most, like Kafka's dedupe buffer (128 MiB by default): a million short keys
take about 120 MB in a Python dict. A dirty section with more keys is cleaned in several steps."""


class CleaningAbortedError(Exception):
    """The log changed under the cleaner (segments deleted or truncated) or the cleaner is stopping."""


class Retention(Enum):
    """Kafka's ``BatchRetention``: what happens to a batch before its records are looked at."""

    DELETE = "delete"
    RETAIN_EMPTY = "retain_empty"
    DELETE_EMPTY = "delete_empty"


@dataclass
class CleanerStats:
    """What one cleaning read, kept and spent."""

    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_retained: int = 0
    map_records: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class CleaningRange:
    """Kafka's ``LogToClean``: where the dirty section starts and where cleaning must stop."""

    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    cleanable_bytes: int
    compaction_overdue: bool

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


@dataclass
class OffsetMap:
    """Key -> last offset in the dirty section (Kafka's ``SkimpyOffsetMap``, exact instead of hashed).

    Kafka stops mapping at the record that fills the map; here the check is between batches, so the
    map may exceed ``max_entries`` by one batch and always covers at least one batch (progress)."""

    max_entries: int
    offsets: dict[bytes, int] = field(default_factory=dict)
    latest_offset: int = -1

    @property
    def full(self) -> bool:
        return len(self.offsets) >= self.max_entries

    def get(self, key: bytes) -> int:
        return self.offsets.get(key, -1)


CONTROL_ABORT = 0
CONTROL_COMMIT = 1


class AbortedTxn(NamedTuple):
    """An aborted transaction: its producer, first offset and the offset of its ABORT marker."""

    producer_id: int
    first_offset: int
    last_offset: int


class ProducerScan(NamedTuple):
    """What the cleaner needs to know of the producers in a log (one pass over its batch headers)."""

    last_data_offset: dict[int, int]
    """Producer id -> last offset of its last data batch (kept, empty if need be, for its sequence)."""
    last_epoch: dict[int, int]
    aborted: list[AbortedTxn]

    def is_last_of_producer(self, header: BatchHeader) -> bool:
        """Kafka's rule: the batch holding the producer's last data offset, or, for a producer with no
        data batch, a marker of its current epoch (needed for fencing)."""
        last = self.last_data_offset.get(header.producer_id)
        if last is not None:
            return header.last_offset == last
        return header.is_control and self.last_epoch.get(header.producer_id) == header.producer_epoch


def control_type(data: bytes, position: int, header: BatchHeader) -> int | None:
    """ABORT (0) or COMMIT (1) from a control batch's record key (version int16, type int16);
    None when the batch holds no record (a marker a cleaning already emptied)."""
    keys = record_keys(data, position, header)
    if not keys or keys[0].key is None or len(keys[0].key) < 4:
        return None
    return int.from_bytes(keys[0].key[2:4], "big", signed=True)


class TransactionRetention:
    """Kafka's ``CleanedTransactionMetadata``: walking batches in offset order, which data batches belong
    to an aborted transaction (discard them) and which markers have no batch of theirs left (discard
    them, after their delete horizon)."""

    def __init__(self, aborted: Sequence[AbortedTxn]) -> None:
        self._pending = deque(sorted(aborted, key=lambda txn: txn.first_offset))
        self._ongoing_committed: set[int] = set()
        self._ongoing_aborted: dict[int, bool] = {}
        """Producer id -> whether a batch of its aborted transaction was seen."""

    def _consume_up_to(self, offset: int) -> None:
        while self._pending and self._pending[0].first_offset <= offset:
            txn = self._pending.popleft()
            self._ongoing_aborted.setdefault(txn.producer_id, False)

    def on_batch(self, header: BatchHeader) -> bool:
        """True when a data batch belongs to an aborted transaction."""
        self._consume_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        if header.producer_id in self._ongoing_aborted:
            self._ongoing_aborted[header.producer_id] = True
            return True
        self._ongoing_committed.add(header.producer_id)
        return False

    def on_control_batch(self, header: BatchHeader, kind: int | None) -> bool:
        """True when a marker's transaction has no batch left, so the marker may go."""
        self._consume_up_to(header.last_offset)
        if kind is None:
            return True  # emptied by an earlier cleaning
        if kind == CONTROL_ABORT:
            seen = self._ongoing_aborted.pop(header.producer_id, None)
            return not seen
        if kind == CONTROL_COMMIT:
            if header.producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(header.producer_id)
                return False
            return True
        return False


class Throttle:
    """Kafka's ``Throttler``: sleep so that the bytes passed through stay under ``rate`` per second."""

    def __init__(self, rate_bytes_per_second: float, *, wait: Callable[[float], object] = time.sleep) -> None:
        self.rate = rate_bytes_per_second
        self._wait = wait
        self._period_start = time.monotonic()
        self._observed = 0.0

    def maybe_throttle(self, observed: int) -> None:
        if self.rate <= 0 or self.rate == float("inf"):
            return
        self._observed += observed
        now = time.monotonic()
        elapsed = now - self._period_start
        if elapsed < 0.05 and self._observed < self.rate * 0.05:
            return
        needed = self._observed / self.rate
        if needed > elapsed:
            self._wait(needed - elapsed)
        self._period_start = time.monotonic()
        self._observed = 0.0


def cleaning_range(log: PartitionLog, first_dirty: int, stable_offset: int, now_ms: int) -> CleaningRange:
    """Kafka's ``LogCleanerManager.cleanableOffsets`` and ``maxCompactionDelay`` for ``log``.

    The dirty section starts at ``first_dirty`` (the checkpoint; the log start when it is out of range)
    and ends at the first of: ``stable_offset`` (never clean what is not committed: a leader change
    could still truncate it), the active segment, and the first segment with a record younger than
    ``min.compaction.lag.ms``. Overdue: a dirty segment's first batch is older than
    ``max.compaction.lag.ms``, which makes the log cleanable whatever its dirty ratio.
    """
    segments = log.segments
    config = log.config
    if not log.log_start_offset <= first_dirty <= log.log_end_offset:
        first_dirty = log.log_start_offset
    active = segments[-1]
    limit = min(stable_offset, active.base_offset)
    dirty_sealed = [s for s in segments[:-1] if s.next_offset > first_dirty or s.base_offset >= first_dirty]
    if config.min_compaction_lag_ms > 0:
        for segment in dirty_sealed:
            if segment.max_timestamp > now_ms - config.min_compaction_lag_ms:
                limit = min(limit, segment.base_offset)
                break
    limit = max(limit, first_dirty)
    first_timestamps = [s.first_batch_timestamp for s in dirty_sealed if (s.first_batch_timestamp or 0) > 0]
    overdue = bool(first_timestamps) and min(t for t in first_timestamps if t is not None) < (
        now_ms - config.max_compaction_lag_ms
    )
    clean_bytes = sum(s.size for s in _overlapping(segments, log.log_start_offset, first_dirty))
    cleanable_bytes = sum(s.size for s in _overlapping(segments, first_dirty, limit))
    return CleaningRange(first_dirty, limit, clean_bytes, cleanable_bytes, overdue)


def _overlapping(segments: Sequence[LogSegment], start: int, end: int) -> list[LogSegment]:
    """Kafka's ``logSegments(from, to)``: segments holding offsets in ``[start, end)``, the floor one included."""
    if end <= start:
        return []
    chosen: list[LogSegment] = []
    for index, segment in enumerate(segments):
        following = segments[index + 1].base_offset if index + 1 < len(segments) else None
        if segment.base_offset < end and (following is None or following > start):
            chosen.append(segment)
    return chosen


class _SegmentReader:
    """Whole batches of one segment file through the cleaner's own descriptor, up to a fixed size."""

    def __init__(self, segment: LogSegment) -> None:
        self.segment = segment
        self.size = segment.size
        try:
            self._fd = os.open(segment.log_path, os.O_RDONLY)
        except FileNotFoundError:
            raise CleaningAbortedError(f"{segment.log_path.name} vanished before it was cleaned") from None

    def chunks(self, throttle: Throttle, start: int = 0) -> Iterator[tuple[bytes, list[tuple[int, BatchHeader]]]]:
        """``(data, [(position in data, header)])`` in chunks of about 1 MiB of whole batches."""
        position = start
        while position + BATCH_OVERHEAD <= self.size:
            data = os.pread(self._fd, min(_READ_CHUNK, self.size - position), position)
            headers = list(iter_batches(data))
            if not headers:
                length = parse_header(data).size if len(data) >= BATCH_OVERHEAD else 0
                if length <= len(data) or position + length > self.size:
                    return
                data = os.pread(self._fd, length, position)
                headers = list(iter_batches(data))
                if not headers:
                    return
            used = headers[-1][0] + headers[-1][1].size
            throttle.maybe_throttle(used)
            yield data[:used], headers
            position += used

    def close(self) -> None:
        os.close(self._fd)


class LogCleaning:
    """One cleaning of one log (Kafka's ``Cleaner.doClean``)."""

    def __init__(
        self,
        log: PartitionLog,
        cleaning: CleaningRange,
        *,
        now_ms: int,
        throttle: Throttle,
        run_on_owner: Callable[[Callable[[], bool]], bool],
        max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
        should_stop: Callable[[], bool] = lambda: False,
        swap_step: Callable[[str], None] | None = None,
        on_io: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_io(read, written)`` is told of every chunk as it is read or written (live metrics)."""
        self.log = log
        self.cleaning = cleaning
        self.now_ms = now_ms
        self.throttle = throttle
        self.run_on_owner = run_on_owner
        self.map = OffsetMap(max_map_entries)
        self.should_stop = should_stop
        self.swap_step = swap_step
        self.on_io = on_io
        self.stats = CleanerStats()
        self.transactions = TransactionRetention(())
        self.delete_retention_ms = log.config.delete_retention_ms

    def run(self) -> int:
        """Clean; returns the new first dirty offset (the end of the mapped section)."""
        started = time.perf_counter()
        try:
            segments = self.log.segments[:-1]
            producers = self._scan_producers()
            self._build_offset_map(segments, producers.aborted)
            end = self.map.latest_offset + 1
            self.transactions = TransactionRetention(producers.aborted)
            groups = _group_segments(_overlapping(segments, 0, end), self.log.config, self.cleaning.first_uncleanable)
            for group in groups:
                self._clean_group(group, producers)
        finally:
            self.stats.seconds = time.perf_counter() - started
        return end

    # -- the offset map ------------------------------------------------------------------------------
    def _build_offset_map(self, segments: Sequence[LogSegment], aborted: Sequence[AbortedTxn]) -> None:
        start, end = self.cleaning.first_dirty, self.cleaning.first_uncleanable
        dirty = _overlapping(segments, start, end)
        in_range = [txn for txn in aborted if txn.last_offset >= start and txn.first_offset < end]
        transactions = TransactionRetention(in_range)
        for index, segment in enumerate(dirty):
            segment_end = dirty[index + 1].base_offset if index + 1 < len(dirty) else end
            if self._map_segment(segment, start, end, transactions):
                return
            self.map.latest_offset = max(self.map.latest_offset, segment_end - 1)

    def _map_segment(self, segment: LogSegment, start: int, end: int, transactions: TransactionRetention) -> bool:
        """Add the keys of ``segment`` in ``[start, end)``; True when the map filled up before its end.

        Unlike Kafka, records past ``end`` in the same segment are not mapped: ``end`` may be the high
        watermark, and a record a leader change can still truncate must not make an older one go."""
        reader = _SegmentReader(segment)
        try:
            for data, headers in reader.chunks(self.throttle, segment.offset_index.lookup(start)[1]):
                self._check_stop()
                for position, header in headers:
                    if self.map.full:  # checked between batches, so every cleaning maps at least one
                        return True
                    if header.is_control:
                        transactions.on_control_batch(header, control_type(data, position, header))
                    elif not transactions.on_batch(header):  # aborted batches are not mapped
                        offsets = self.map.offsets
                        for offset, key, _has_value in record_keys(data, position, header):
                            if key is not None and start <= offset < end:
                                offsets[key] = offset
                        self.stats.map_records += header.records_count
                    if header.last_offset >= start:
                        self.map.latest_offset = max(self.map.latest_offset, min(header.last_offset, end - 1))
                self._count(read=len(data))
        finally:
            reader.close()
        return False

    def _scan_producers(self) -> ProducerScan:
        """One pass over the batch headers of the whole log: each producer's last data batch and epoch
        (Kafka keeps that batch, empty if need be, so the producer's sequence and epoch survive), and
        the aborted transactions (what Kafka reads from its ``.txnindex``)."""
        scan = ProducerScan({}, {}, [])
        open_txns: dict[int, int] = {}
        for segment in self.log.segments:
            reader = _SegmentReader(segment)
            try:
                for data, headers in reader.chunks(_UNTHROTTLED):
                    for position, header in headers:
                        producer = header.producer_id
                        if producer == NO_PRODUCER_ID:
                            continue
                        scan.last_epoch[producer] = header.producer_epoch
                        if header.is_control:
                            first = open_txns.pop(producer, None)
                            if first is not None and control_type(data, position, header) == CONTROL_ABORT:
                                scan.aborted.append(AbortedTxn(producer, first, header.last_offset))
                            continue
                        scan.last_data_offset[producer] = header.last_offset
                        if header.is_transactional:
                            open_txns.setdefault(producer, header.base_offset)
            finally:
                reader.close()
        return scan

    # -- recopying -----------------------------------------------------------------------------------
    def _clean_group(self, group: list[LogSegment], producers: ProducerScan) -> None:
        sizes = [segment.size for segment in group]
        readers = [_SegmentReader(segment) for segment in group]
        stem = segment_name(group[0].base_offset)
        for leftover in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):  # of a cleaning that failed midway
            (self.log.directory / f"{stem}{leftover}.cleaned").unlink(missing_ok=True)
        try:
            cleaned = LogSegment(
                self.log.directory, group[0].base_offset, self.log.config.index_interval_bytes, suffix=".cleaned"
            )
        except FileNotFoundError:
            for reader in readers:
                reader.close()
            raise CleaningAbortedError(f"{self.log.directory.name} was deleted while it was being cleaned") from None
        try:
            for reader in readers:
                for data, headers in reader.chunks(self.throttle):
                    self._check_stop()
                    out = bytearray()
                    kept: list[tuple[int, BatchHeader]] = []
                    for position, header in headers:
                        retained = self._filter_batch(data, position, header, producers)
                        if retained is not None:
                            kept.append((len(out), parse_header(retained)))
                            out += retained
                    self._count(read=len(data))
                    if out:
                        cleaned.append(out, kept)
                        self._count(written=len(out))
                        self.throttle.maybe_throttle(len(out))
            cleaned.seal()
            cleaned.flush()
        except BaseException:
            cleaned.delete()  # nothing was renamed yet: the .cleaned files are simply dropped
            raise
        finally:
            for reader in readers:
                reader.close()

        def swap() -> bool:
            # a failure inside leaves files that the next open finishes or undoes (see _clean_directory)
            return self.log.replace_segments(cleaned, group, sizes, step=self.swap_step)

        if not self.run_on_owner(swap):
            raise CleaningAbortedError(f"{self.log.directory.name} changed while it was being cleaned")

    def _filter_batch(self, data: bytes, position: int, header: BatchHeader, producers: ProducerScan) -> bytes | None:
        """The bytes to keep for one batch (Kafka's ``MemoryRecords.filterTo`` with the cleaner's filter)."""
        retention, discard_records, empty_txn_marker = self._batch_retention(data, position, header, producers)
        if retention is Retention.DELETE:
            return None
        keys = record_keys(data, position, header)
        self.stats.records_read += len(keys)
        kept: set[int] = set()
        if not discard_records:
            kept = {entry.offset for entry in keys if header.is_control or self._retain(header, entry)}
        self.stats.records_retained += len(kept)
        if kept:
            has_tombstone = any(not entry.has_value for entry in keys if entry.offset in kept)
            set_horizon = (has_tombstone or empty_txn_marker) and not header.has_delete_horizon
            if len(kept) == len(keys) and not set_horizon:
                return data[position : position + header.size]
            horizon = self.now_ms + self.delete_retention_ms if set_horizon else header.delete_horizon_ms
            retained = [record for record in decode_batch(data, position, header=header) if record.offset in kept]
            return encode_retained_batch(header, retained, delete_horizon_ms=horizon)
        if retention is Retention.RETAIN_EMPTY:
            return encode_empty_batch(header)
        return None

    def _batch_retention(
        self, data: bytes, position: int, header: BatchHeader, producers: ProducerScan
    ) -> tuple[Retention, bool, bool]:
        """Kafka's ``checkBatchRetention``: the batch's fate, whether all its records go, and whether it
        is a marker whose transaction has nothing left (it then gets a delete horizon)."""
        if header.is_control:
            can_discard = self.transactions.on_control_batch(header, control_type(data, position, header))
            horizon = header.delete_horizon_ms
            discard = can_discard and horizon is not None and horizon <= self.now_ms
        else:
            can_discard = discard = self.transactions.on_batch(header)
        empty_txn_marker = can_discard and header.is_control
        if header.producer_id != NO_PRODUCER_ID and producers.is_last_of_producer(header):
            return Retention.RETAIN_EMPTY, discard, empty_txn_marker
        if header.next_offset == self.cleaning.first_uncleanable:
            return Retention.RETAIN_EMPTY, discard, empty_txn_marker  # the cleaned range's last offset stays
        if discard:
            return Retention.DELETE, discard, empty_txn_marker
        return Retention.DELETE_EMPTY, discard, empty_txn_marker

    def _retain(self, header: BatchHeader, record: RecordKey) -> bool:
        """Kafka's ``shouldRetainRecord``: the last record of its key, past the map, or a young tombstone."""
        if record.offset > self.map.latest_offset:
            return True
        if record.key is None:
            return False
        if record.offset < self.map.get(record.key):
            return False
        if record.has_value:
            return True
        horizon = header.delete_horizon_ms
        return horizon is None or self.now_ms < horizon

    def _count(self, *, read: int = 0, written: int = 0) -> None:
        self.stats.bytes_read += read
        self.stats.bytes_written += written
        if self.on_io is not None:
            self.on_io(read, written)

    def _check_stop(self) -> None:
        if self.should_stop():
            raise CleaningAbortedError("the cleaner is stopping")


_UNTHROTTLED = Throttle(0)


def _group_segments(segments: list[LogSegment], config: TopicConfig, first_uncleanable: int) -> list[list[LogSegment]]:
    """Kafka's ``groupSegmentsBySize``: consecutive segments whose total log size fits ``segment.bytes``,
    whose index files fit ``segment.index.bytes`` and whose offsets fit one segment's relative offsets."""
    groups: list[list[LogSegment]] = []
    remaining = list(segments)
    while remaining:
        group = [remaining.pop(0)]
        log_size = group[0].size
        index_size = _index_bytes(group[0], 8)
        time_index_size = _index_bytes(group[0], 12)
        while remaining:
            candidate = remaining[0]
            last_offset = remaining[1].base_offset - 1 if len(remaining) > 1 else first_uncleanable - 1
            if (
                log_size + candidate.size > config.segment_bytes
                or index_size + _index_bytes(candidate, 8) > config.segment_index_bytes
                or time_index_size + _index_bytes(candidate, 12) > config.segment_index_bytes
                or (candidate.size > 0 and last_offset - group[0].base_offset > 0x7FFFFFFF)
            ):
                break
            group.append(remaining.pop(0))
            log_size += candidate.size
            index_size += _index_bytes(candidate, 8)
            time_index_size += _index_bytes(candidate, 12)
        groups.append(group)
    return groups


def _index_bytes(segment: LogSegment, entry_size: int) -> int:
    index = segment.offset_index if entry_size == 8 else segment.time_index
    try:
        return index.path.stat().st_size
    except FileNotFoundError:
        return 0
