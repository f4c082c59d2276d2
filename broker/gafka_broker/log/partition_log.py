"""The log of one partition replica: an ordered list of segments with one active segment at the end.

Appends, reads, truncation, retention and rolls run on the broker's event-loop thread; only
:meth:`PartitionLog.flush` may run on another thread (it fsyncs duplicated descriptors, so rolls and
deletes never wait on a disk).
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from gafka.protocol.record_batch import (
    BatchHeader,
    InvalidRecordError,
    TimestampType,
    check_records,
    decode_batch,
    iter_batches,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batch,
)
from gafka_broker.log import metrics
from gafka_broker.log.checkpoint import fsync_directory
from gafka_broker.log.errors import OffsetOutOfRangeError, RecordTooLargeError, UnexpectedOffsetError
from gafka_broker.log.segment import LOG_SUFFIX, LogSegment, segment_name
from gafka_broker.topic_config import TopicConfig

logger = logging.getLogger(__name__)

_SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")
_CLEANED_SUFFIX = ".cleaned"
_SWAP_SUFFIX = ".swap"
_DELETED_SUFFIX = ".deleted"
_TEMP_SUFFIXES = (".tmp", _DELETED_SUFFIX, _CLEANED_SUFFIX, _SWAP_SUFFIX)
_MAX_RELATIVE_OFFSET = 0x7FFFFFFF
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


class AppendResult(NamedTuple):
    base_offset: int
    last_offset: int
    max_timestamp: int
    log_append_time: int
    record_count: int
    size: int


class ReadResult(NamedTuple):
    data: bytes
    log_start_offset: int
    log_end_offset: int


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """``orders-3`` -> ``("orders", 3)``; None for anything else."""
    match = _PARTITION_DIR.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def _now_ms() -> int:
    return int(time.time() * 1000)


class PartitionLog:
    """Segments of one partition under ``<data-dir>/<topic>-<partition>/``."""

    def __init__(
        self,
        directory: Path,
        config: TopicConfig,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
    ) -> None:
        parsed = parse_partition_dir(directory.name)
        if parsed is None:
            raise ValueError(f"{directory.name!r} is not a <topic>-<partition> directory name")
        self.topic, self.partition = parsed
        self.directory = directory
        self.config = config
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]
        self._lock = threading.Lock()
        self.log_end_offset = segments[-1].next_offset
        self.log_start_offset = min(max(log_start_offset, segments[0].base_offset), self.log_end_offset)
        self.recovery_point = min(recovery_point, self.log_end_offset)
        self.size_bytes = sum(segment.size for segment in segments)
        self._appended_messages = 0
        self._flushed_messages = 0
        self.last_flush_ms = _now_ms()
        self._closed = False

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        directory: Path,
        config: TopicConfig,
        *,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        clean: bool = False,
        compacted: bool = False,
    ) -> PartitionLog:
        """Open (creating if needed) and, unless the last stop was clean, recover the log in ``directory``.

        A cleaning interrupted by a crash is finished or undone first (:func:`finish_interrupted_swaps`).
        ``compacted``: the log has been cleaned before (or its topic is compacted), so offset gaps
        between batches are expected rather than damage.
        """
        started = time.perf_counter()
        directory.mkdir(parents=True, exist_ok=True)
        allow_gaps = compacted or config.compact
        bases, swapped = _clean_directory(directory)
        interval = config.index_interval_bytes
        segments = [LogSegment(directory, base, interval) for base in bases]
        if not segments:
            segments = [LogSegment(directory, log_start_offset, interval)]
        if clean:
            for segment in segments:
                if segment.base_offset in swapped:
                    segment.recover(allow_gaps=True)
                else:
                    segment.load_clean(allow_gaps=allow_gaps)
        else:
            segments = _recover(directory, segments, recovery_point, allow_gaps=allow_gaps, swapped=swapped)
            metrics.RECOVERY_SECONDS.observe(time.perf_counter() - started)
        return cls(directory, config, segments, log_start_offset, recovery_point)

    # -- appending -----------------------------------------------------------------------------------
    def append_as_leader(
        self,
        data: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        now_ms: int | None = None,
        trusted: bool = False,
    ) -> AppendResult:
        """Validate every batch, assign offsets from the log end, stamp the epoch (and LogAppendTime).

        A ``bytearray`` is stamped in place (the caller hands its buffer over); other buffers are copied.
        ``trusted``: the broker encoded these batches itself (JSON produce), so the CRC check and the
        record walk, which guard against damaged or malformed client bytes, are skipped; sizes still count.
        """
        headers = self._validate(data, check_content=True, trusted=trusted)
        buffer = data if isinstance(data, bytearray) else bytearray(data)
        next_offset = self.log_end_offset
        log_append = self.config.message_timestamp_type is TimestampType.LOG_APPEND_TIME
        now = _now_ms() if now_ms is None else now_ms
        stamped: list[tuple[int, BatchHeader]] = []
        for position, header in headers:
            set_base_offset(buffer, position, next_offset)
            set_partition_leader_epoch(buffer, position, leader_epoch)
            max_timestamp = header.max_timestamp
            if log_append:
                set_log_append_time(buffer, position, now)
                max_timestamp = now
            stamped.append(
                (
                    position,
                    header._replace(
                        base_offset=next_offset, partition_leader_epoch=leader_epoch, max_timestamp=max_timestamp
                    ),
                )
            )
            next_offset += header.last_offset_delta + 1
        return self._append(buffer, stamped, now, log_append_time=now if log_append else -1)

    def append_as_follower(self, data: bytes | bytearray | memoryview) -> AppendResult:
        """Append batches the leader already numbered; they must start at or after this log's end.

        A gap is allowed, as in Kafka: the leader's log may have been compacted, so the batch after the
        one a follower holds may start later.
        """
        headers = self._validate(data, check_content=False)
        expected = self.log_end_offset
        for _position, header in headers:
            if header.base_offset < expected:
                raise UnexpectedOffsetError(f"batch starts at offset {header.base_offset}, the log ends at {expected}")
            expected = header.next_offset
        return self._append(data, headers, _now_ms(), log_append_time=-1)

    def _validate(
        self, data: bytes | bytearray | memoryview, *, check_content: bool, trusted: bool = False
    ) -> list[tuple[int, BatchHeader]]:
        if not len(data):
            raise InvalidRecordError("no record batch in the request")
        limit = self.config.max_message_bytes
        headers: list[tuple[int, BatchHeader]] = []
        position = 0
        while position < len(data):
            header = parse_header(data, position) if trusted else validate_batch(data, position)
            if header.size > limit:
                raise RecordTooLargeError(
                    f"batch of {header.size} bytes exceeds max.message.bytes={limit} of topic {self.topic}"
                )
            if header.size > self.config.segment_bytes:
                raise RecordTooLargeError(f"batch of {header.size} bytes exceeds segment.bytes of topic {self.topic}")
            if check_content:
                if header.is_control:
                    raise InvalidRecordError("control batches are written by the broker, not by clients")
                if header.is_transactional:
                    raise InvalidRecordError("transactional batches are not supported")
                if not trusted or self.config.compact:
                    check_records(data, position, header, require_keys=self.config.compact)
            headers.append((position, header))
            position += header.size
        return headers

    def _append(
        self,
        data: bytes | bytearray | memoryview,
        headers: list[tuple[int, BatchHeader]],
        now: int,
        *,
        log_append_time: int,
    ) -> AppendResult:
        self._ensure_open()
        first, last = headers[0][1], headers[-1][1]
        segment = self._segments[-1]
        max_timestamp = max(header.max_timestamp for _, header in headers)
        if self._should_roll(segment, len(data), last.last_offset, max_timestamp, now):
            segment = self._roll(now)
        segment.append(data, headers)
        self.log_end_offset = segment.next_offset
        self.size_bytes += len(data)
        record_count = last.last_offset - first.base_offset + 1
        self._appended_messages += record_count
        return AppendResult(
            first.base_offset, last.last_offset, max_timestamp, log_append_time, record_count, len(data)
        )

    def _should_roll(
        self, segment: LogSegment, incoming: int, last_offset: int, incoming_timestamp: int, now: int
    ) -> bool:
        """Kafka's ``LogSegment.shouldRoll``: full, old, or out of relative offsets or index room.

        Age is measured in record time when the segment's first batch has a timestamp (the incoming
        batch's timestamp minus it), so replayed historical data does not roll on every append; else
        in wall-clock time since the segment was created.
        """
        if segment.is_empty:
            return False
        config = self.config
        first_timestamp = segment.first_batch_timestamp
        if first_timestamp is not None and first_timestamp >= 0:
            waited = incoming_timestamp - first_timestamp
        else:
            waited = now - segment.created_ms
        return (
            segment.size + incoming > config.segment_bytes
            or waited > config.max_segment_ms
            or last_offset - segment.base_offset > _MAX_RELATIVE_OFFSET
            or len(segment.offset_index) >= config.segment_index_bytes // 8
            or len(segment.time_index) >= config.segment_index_bytes // 12
        )

    def _roll(self, now: int) -> LogSegment:
        """Seal the active segment and start a new one at the log end offset."""
        old = self._segments[-1]
        if old.is_empty:
            return old
        new = LogSegment(self.directory, self.log_end_offset, self.config.index_interval_bytes)
        old.seal()
        with self._lock:
            self._segments.append(new)
            self._bases.append(new.base_offset)
        logger.debug(
            "event=segment_rolled topic=%s partition=%d base_offset=%d", self.topic, self.partition, new.base_offset
        )
        return new

    def roll(self) -> None:
        """Start a new segment now (tests, and retention of an expired active segment)."""
        self._roll(_now_ms())

    # -- reading -------------------------------------------------------------------------------------
    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> ReadResult:
        """Whole batches from the one holding ``offset``; see :meth:`LogSegment.read` for the limits."""
        start, end = self.log_start_offset, self.log_end_offset
        if offset < start or offset > end:
            raise OffsetOutOfRangeError(offset, start, end)
        if offset == end or (max_offset is not None and offset >= max_offset):
            return ReadResult(b"", start, end)
        segments = self._segments
        slot = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        while slot < len(segments):
            data = segments[slot].read(offset, max_bytes, max_offset)
            if data:
                return ReadResult(data, start, end)
            slot += 1
        return ReadResult(b"", start, end)

    def batch_headers(self, from_offset: int | None = None) -> Iterator[BatchHeader]:
        """Headers of every batch from the one holding ``from_offset`` (default: the log start), oldest
        first: what the leader-epoch cache and the producer state are rebuilt from."""
        start = self.log_start_offset if from_offset is None else from_offset
        segments = list(self._segments)
        bases = [segment.base_offset for segment in segments]
        slot = max(bisect.bisect_right(bases, start) - 1, 0)
        for index, segment in enumerate(segments[slot:]):
            position = 0
            if index == 0:
                located = segment.locate(start)
                if located is None:
                    continue
                position = located[0]
            for _position, header in segment.walk(position):
                yield header

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record at or after ``timestamp_ms`` (Kafka's ListOffsets)."""
        for segment in list(self._segments):
            if segment.max_timestamp < timestamp_ms or segment.next_offset <= self.log_start_offset:
                continue
            found = segment.find_timestamp(timestamp_ms)
            if found is None:
                continue
            position, _ = found
            for batch_position, header in segment.walk(position):
                if header.max_timestamp < timestamp_ms or header.last_offset < self.log_start_offset:
                    continue
                raw = segment.read_bytes(batch_position, header.size)
                for record in decode_batch(raw, header=header):
                    if record.timestamp >= timestamp_ms and record.offset >= self.log_start_offset:
                        return record.offset, record.timestamp
        return None

    # -- truncation and retention --------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Remove every batch holding ``offset`` or later (a follower after a leader change)."""
        self._ensure_open()
        if offset >= self.log_end_offset:
            return
        if offset <= self._segments[0].base_offset:
            self._reset_at(offset)
            return
        doomed = [segment for segment in self._segments if segment.base_offset >= offset]
        self._remove_segments(doomed, keep_active=False)
        active = self._segments[-1]
        removed = active.truncate_to(offset)
        self.size_bytes -= removed
        self.log_end_offset = active.next_offset
        self.log_start_offset = min(self.log_start_offset, self.log_end_offset)
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        logger.info(
            "event=log_truncated topic=%s partition=%d log_end_offset=%d",
            self.topic,
            self.partition,
            self.log_end_offset,
        )

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every batch and continue empty at ``offset`` (a follower behind the leader's log start)."""
        self._ensure_open()
        self._reset_at(offset)
        logger.info("event=log_reset topic=%s partition=%d log_start_offset=%d", self.topic, self.partition, offset)

    def _reset_at(self, offset: int) -> None:
        """Delete everything and start empty at ``offset``."""
        self._remove_segments(list(self._segments), keep_active=False)
        fresh = LogSegment(self.directory, offset, self.config.index_interval_bytes)
        with self._lock:
            self._segments = [fresh]
            self._bases = [offset]
        self.size_bytes = 0
        self.log_start_offset = self.log_end_offset = self.recovery_point = offset

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset to ``offset`` (Kafka's DeleteRecords); whole segments below it go."""
        self._ensure_open()
        if offset > self.log_end_offset:
            raise OffsetOutOfRangeError(offset, self.log_start_offset, self.log_end_offset)
        if offset > self.log_start_offset:
            self.log_start_offset = offset
            self._delete_below_start()
        return self.log_start_offset

    def _delete_below_start(self) -> int:
        doomed = [segment for segment in self._segments[:-1] if segment.next_offset <= self.log_start_offset]
        self._remove_segments(doomed)
        return len(doomed)

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole old segments past ``retention.ms`` or ``retention.bytes``; returns how many."""
        self._ensure_open()
        now = _now_ms() if now_ms is None else now_ms
        config = self.config
        doomed: list[LogSegment] = []
        if config.delete and config.retention_ms >= 0:
            active = self._segments[-1]
            for segment in self._segments:
                if segment.is_empty and segment is not active:
                    doomed.append(segment)  # everything in it was cleaned away
                    continue
                if segment.is_empty or segment.max_timestamp >= now - config.retention_ms:
                    break
                doomed.append(segment)
            if doomed and doomed[-1] is active:
                self._roll(now)
        if config.delete and config.retention_bytes >= 0:
            excess = self.size_bytes - config.retention_bytes
            for segment in self._segments[:-1]:
                if segment in doomed:
                    excess -= segment.size
                    continue
                if excess - segment.size < 0:
                    break
                doomed.append(segment)
                excess -= segment.size
        self._remove_segments(doomed)
        self.log_start_offset = max(self.log_start_offset, self._segments[0].base_offset)
        deleted = len(doomed) + self._delete_below_start()
        if deleted:
            logger.info(
                "event=retention_deleted topic=%s partition=%d segments=%d log_start_offset=%d",
                self.topic,
                self.partition,
                deleted,
                self.log_start_offset,
            )
        return deleted

    def _remove_segments(self, doomed: list[LogSegment], *, keep_active: bool = True) -> None:
        if keep_active and doomed and doomed[-1] is self._segments[-1]:
            doomed = doomed[:-1]
        if not doomed:
            return
        doomed_ids = {id(segment) for segment in doomed}
        with self._lock:
            self._segments = [segment for segment in self._segments if id(segment) not in doomed_ids]
            self._bases = [segment.base_offset for segment in self._segments]
        for segment in doomed:
            self.size_bytes -= segment.size
            segment.delete()

    # -- cleaning ------------------------------------------------------------------------------------
    def replace_segments(
        self,
        cleaned: LogSegment,
        old: Sequence[LogSegment],
        old_sizes: Sequence[int],
        *,
        step: Callable[[str], None] | None = None,
    ) -> bool:
        """Swap ``cleaned`` (sealed and fsynced, its files named ``.cleaned``) in for the ``old`` segments.

        Runs on the thread that owns the log. Kafka's crash-safe order: index files ``.cleaned`` ->
        ``.swap``; the log file ``.cleaned`` -> ``.swap`` (the commit point); every old file ->
        ``.deleted``; the swap files -> their final names; the old files are removed. A crash at any
        step is finished or undone on the next open (see :func:`_clean_directory`). ``step`` is called
        after each rename (tests raise from it to simulate a crash there).

        Returns False, deleting ``cleaned``, when the old segments changed while they were being
        cleaned (truncated, deleted by retention, or one became the active segment again).
        """
        self._ensure_open()
        present = {id(segment) for segment in self._segments[:-1]}
        if any(id(segment) not in present for segment in old) or [s.size for s in old] != list(old_sizes):
            cleaned.delete()
            return False
        mark = step or _no_step
        cleaned.rename_index_files(_CLEANED_SUFFIX, _SWAP_SUFFIX)
        mark("index_swap_files")
        cleaned.rename_log_file(_CLEANED_SUFFIX, _SWAP_SUFFIX)
        fsync_directory(self.directory)
        mark("committed")
        for segment in old:
            segment.rename_log_file("", _DELETED_SUFFIX)
            segment.rename_index_files("", _DELETED_SUFFIX)
            mark("old_segment_deleted")
        cleaned.rename_index_files(_SWAP_SUFFIX, "")
        mark("index_files_renamed")
        cleaned.rename_log_file(_SWAP_SUFFIX, "")
        fsync_directory(self.directory)
        mark("swapped")
        doomed = {id(segment) for segment in old}
        with self._lock:
            kept = [segment for segment in self._segments if id(segment) not in doomed]
            kept.insert(bisect.bisect_left([s.base_offset for s in kept], cleaned.base_offset), cleaned)
            self._segments = kept
            self._bases = [segment.base_offset for segment in kept]
        for segment in old:
            self.size_bytes -= segment.size
            segment.delete()
        self.size_bytes += cleaned.size
        return True

    # -- flushing ------------------------------------------------------------------------------------
    @property
    def unflushed_messages(self) -> int:
        return self._appended_messages - self._flushed_messages

    def flush(self) -> None:
        """fsync every segment that may hold unflushed data; safe to call from a worker thread."""
        with self._lock:
            if self._closed:
                return
            target = self.log_end_offset
            appended = self._appended_messages
            first = max(bisect.bisect_right(self._bases, self.recovery_point) - 1, 0)
            descriptors = [fd for segment in self._segments[first:] for fd in segment.dup_fds()]
        started = time.perf_counter()
        try:
            for fd in descriptors:
                os.fsync(fd)
        finally:
            for fd in descriptors:
                os.close(fd)
        metrics.FSYNC_SECONDS.observe(time.perf_counter() - started)
        with self._lock:
            self.recovery_point = min(max(self.recovery_point, target), self.log_end_offset)
            self._flushed_messages = max(self._flushed_messages, appended)
            self.last_flush_ms = _now_ms()

    def flush_sealed(self) -> None:
        """fsync rolled segments the recovery point has not passed, so a crash rescans only the active one."""
        if self.recovery_point < self._segments[-1].base_offset:
            self.flush()

    # -- closing -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and close every file; the log cannot be used afterwards."""
        if self._closed:
            return
        self.flush()
        with self._lock:
            self._closed = True
        for segment in self._segments:
            segment.close()

    def abandon(self) -> None:
        """Drop every file handle without flushing or sealing: what a crash leaves behind (tests)."""
        with self._lock:
            self._closed = True
        for segment in self._segments:
            segment.abandon()

    def delete(self) -> None:
        """Close and remove the partition's directory (topic deletion)."""
        with self._lock:
            self._closed = True
        for segment in self._segments:
            segment.delete()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"log {self.directory.name} is closed")

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._segments)


def _no_step(_name: str) -> None:
    return None


def _clean_directory(directory: Path) -> tuple[list[int], set[int]]:
    """Finish or undo an interrupted cleaning, remove temp files and orphaned indexes.

    Returns the base offsets of the ``.log`` files and those of segments swapped in here (their
    indexes must be rebuilt). The swap protocol (:meth:`PartitionLog.replace_segments`) makes the
    rename of ``<base>.log.cleaned`` to ``<base>.log.swap`` its commit point, as Kafka's does:

    - no ``.log.swap``: the cleaning never committed; ``.cleaned`` and index ``.swap`` files go, the
      old segments are intact;
    - a ``.log.swap`` of next offset N: it replaces every old segment whose base offset lies in
      ``[base, N)`` (some may already be ``.deleted``); those go and the swap becomes the ``.log``. An
      old segment of the cleaned group at or past N keeps its records, all of which the cleaning had
      removed as superseded (Kafka's ``LogLoader`` does the same; the next cleaning removes them again).
    """
    log_swaps: list[Path] = []
    for path in list(directory.iterdir()):
        if path.name.endswith(LOG_SUFFIX + _SWAP_SUFFIX):
            log_swaps.append(path)
        elif path.name.endswith(_TEMP_SUFFIXES):
            path.unlink(missing_ok=True)  # .cleaned, index .swap, .deleted, .tmp
    swapped: set[int] = set()
    for swap in sorted(log_swaps):
        base = int(swap.name.split(".")[0])
        end = max(_next_offset_of(swap, base), base + 1)
        for path in list(directory.iterdir()):
            match = _SEGMENT_FILE.match(path.name)
            if match is not None and base <= int(match.group(1)) < end:
                path.unlink()
        swap.rename(directory / (segment_name(base) + LOG_SUFFIX))
        swapped.add(base)
        logger.warning(
            "event=cleaning_swap_completed dir=%s base_offset=%d replaced_below=%d", directory.name, base, end
        )
    if log_swaps:
        fsync_directory(directory)
    bases: set[int] = set()
    index_files: list[tuple[int, Path]] = []
    for path in directory.iterdir():
        match = _SEGMENT_FILE.match(path.name)
        if match is None:
            continue
        base = int(match.group(1))
        if path.suffix == LOG_SUFFIX:
            bases.add(base)
        else:
            index_files.append((base, path))
    for base, path in index_files:
        if base not in bases:
            path.unlink(missing_ok=True)
    return sorted(bases), swapped


def _next_offset_of(path: Path, base: int) -> int:
    """The offset after the last whole batch of a segment file (``base`` when it holds none)."""
    next_offset = base
    with path.open("rb") as handle:
        data = handle.read()
    for _position, header in iter_batches(data):
        next_offset = header.next_offset
    return next_offset


def _recover(
    directory: Path, segments: list[LogSegment], recovery_point: int, *, allow_gaps: bool, swapped: set[int]
) -> list[LogSegment]:
    """Kafka's unclean-start recovery: trust segments wholly below the recovery point, scan the rest,
    cut at the first bad batch and delete every segment after it. A segment a cleaning just swapped in
    was fsynced before its commit: it is trusted, but its indexes are rebuilt."""
    metrics.RECOVERIES.inc()
    bases = [segment.base_offset for segment in segments]
    first_unflushed = max(bisect.bisect_right(bases, recovery_point) - 1, 0)
    for segment in segments[:first_unflushed]:
        if segment.base_offset in swapped:
            segment.recover(allow_gaps=True)
        else:
            segment.load_clean(allow_gaps=allow_gaps)
    expected = segments[first_unflushed - 1].next_offset if first_unflushed else None
    for slot in range(first_unflushed, len(segments)):
        segment = segments[slot]
        outcome = segment.recover(expected, allow_gaps=allow_gaps or segment.base_offset in swapped)
        if outcome.truncated_bytes:
            metrics.RECOVERY_TRUNCATED_BYTES.inc(outcome.truncated_bytes)
            dropped = segments[slot + 1 :]
            if dropped:
                metrics.RECOVERY_DROPPED_SEGMENTS.inc(len(dropped))
            logger.warning(
                "event=log_recovery_truncated dir=%s segment=%d valid_bytes=%d truncated_bytes=%d "
                "dropped_segments=%d reason=%r",
                directory.name,
                segment.base_offset,
                outcome.valid_bytes,
                outcome.truncated_bytes,
                len(dropped),
                outcome.reason,
            )
            for later in dropped:
                later.delete()
            return segments[: slot + 1]
        expected = segment.next_offset
    return segments
