"""One log segment: a ``.log`` file of RecordBatch v2 plus its ``.index`` and ``.timeindex``.

Files are named by the segment's base offset in 20 digits, as Kafka names them. The segment keeps in
memory only what appends and reads need at once (size, next offset, largest timestamp); indexes are
loaded on first lookup.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from gafka.protocol.record_batch import (
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    BatchHeader,
    CorruptRecordError,
    iter_batches,
    parse_header,
    validate_batch,
)
from gafka_broker.log import metrics
from gafka_broker.log.errors import LogCorruptionError, LogError
from gafka_broker.log.offset_index import OffsetIndex
from gafka_broker.log.sparse_index import IndexCorruptError
from gafka_broker.log.time_index import TimeIndex

logger = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
_SCAN_CHUNK = 8 * 1024 * 1024
_HEADER_CHUNK = 64 * 1024
NO_TIMESTAMP = -1


def segment_name(base_offset: int) -> str:
    """Kafka's file name stem: the base offset padded to 20 digits."""
    return f"{base_offset:020d}"


class RecoveryOutcome(NamedTuple):
    """What scanning a segment found: where its valid bytes end and what was cut."""

    valid_bytes: int
    truncated_bytes: int
    reason: str | None


class LogSegment:
    """A ``.log`` file and its two indexes; appends go to the end, reads go anywhere."""

    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int, *, suffix: str = "") -> None:
        """``suffix``: ``.cleaned`` for a segment the log cleaner is writing (Kafka's file naming)."""
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        stem = segment_name(base_offset)
        self.log_path = directory / (stem + LOG_SUFFIX + suffix)
        self.offset_index = OffsetIndex(directory / (stem + INDEX_SUFFIX + suffix), base_offset)
        self.time_index = TimeIndex(directory / (stem + TIME_INDEX_SUFFIX + suffix), base_offset)
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        for index in (self.offset_index, self.time_index):  # Kafka's tools expect all three files
            index.path.touch(exist_ok=True)
        self.created_ms = int(time.time() * 1000)
        self.size = os.fstat(self._fd).st_size
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = base_offset
        self.first_batch_timestamp: int | None = None
        self._bytes_since_index_entry = 0

    # -- appending -----------------------------------------------------------------------------------
    def append(self, data: bytes | bytearray | memoryview, headers: list[tuple[int, BatchHeader]]) -> None:
        """Write whole batches (``headers`` = their positions in ``data``); all or nothing on disk."""
        start = self.size
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            self._undo_append(start)
            raise LogError(f"cannot append to {self.log_path}: {exc}") from exc
        for relative_position, header in headers:
            self._track_batch(start + relative_position, header)
        self.size = start + len(view)

    def _undo_append(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            logger.exception("event=segment_undo_failed path=%s", self.log_path)

    def _track_batch(self, position: int, header: BatchHeader) -> None:
        """Update in-memory state and indexes for a batch now at ``position`` (Kafka's index rule)."""
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = header.max_timestamp
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        if self._bytes_since_index_entry > self.index_interval_bytes:
            self.offset_index.append(header.last_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += header.size
        self.next_offset = header.next_offset

    # -- reading -------------------------------------------------------------------------------------
    def read_bytes(self, position: int, length: int) -> bytes:
        return os.pread(self._fd, length, position)

    def walk(self, position: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of each whole batch from ``position``, reading headers in chunks."""
        end = self.size if end is None else end
        buffer = b""
        buffer_start = position
        while position + BATCH_OVERHEAD <= end:
            relative = position - buffer_start
            if relative + BATCH_OVERHEAD > len(buffer):
                buffer = os.pread(self._fd, min(_HEADER_CHUNK, end - position), position)
                buffer_start, relative = position, 0
                if len(buffer) < BATCH_OVERHEAD:
                    return
            header = parse_header(buffer, relative)
            if header.size < BATCH_OVERHEAD or position + header.size > end:
                return
            yield position, header
            position += header.size

    def locate(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the batch holding ``offset`` (or the first after it), or of the first batch
        whose offsets cannot be right (damaged where the CRC does not reach: base offset, length), so a damaged
        batch is never skipped over silently: :meth:`read` refuses it, truncation cuts there."""
        _, start = self.offset_index.lookup(offset)
        previous_last = self.base_offset - 1
        for position, header in self.walk(start):
            if header.last_offset >= offset or not self._plausible(header, previous_last):
                return position, header
            previous_last = header.last_offset
        return None

    def _plausible(self, header: BatchHeader, previous_last: int) -> bool:
        """Offsets a batch of this segment can have: after the previous batch's, before the segment's end.
        (Kafka's CRC covers neither the base offset nor the length; this catches most damage to them.)"""
        return previous_last < header.base_offset <= header.last_offset < self.next_offset

    def read(self, offset: int, max_bytes: int, max_offset: int | None) -> bytes:
        """Whole batches from the one holding ``offset``: at least one batch, at most ``max_bytes``
        otherwise, and none whose last offset reaches ``max_offset``.

        Every batch is CRC-checked on the way out, so bytes damaged on disk after they were written are
        never served: reading stops before a damaged batch, and raises :class:`LogCorruptionError` when
        the damaged batch is the first one asked for.
        """
        located = self.locate(offset)
        if located is None:
            return b""
        position, first = located
        if not self._plausible(first, min(offset, first.base_offset) - 1) or first.last_offset < offset:
            raise LogCorruptionError(
                f"{self.log_path.name}: batch at position {position} has offsets {first.base_offset}.."
                f"{first.last_offset}, impossible where offset {offset} should be",
                offset,
            )
        if max_offset is not None and first.last_offset >= max_offset:
            return b""
        length = first.size if first.size >= max_bytes else min(max_bytes, self.size - position)
        data = self.read_bytes(position, length)
        cut = 0
        previous_last = first.base_offset - 1
        for relative, header in iter_batches(data):
            if max_offset is not None and header.last_offset >= max_offset:
                break
            if not self._plausible(header, previous_last):
                break  # damaged offsets: served up to here; the next read, starting there, raises
            previous_last = header.last_offset
            try:
                validate_batch(data, relative)
            except (CorruptRecordError, ValueError) as exc:
                if cut:
                    break
                raise LogCorruptionError(
                    f"{self.log_path.name}: batch at offset {first.base_offset} (position {position}) "
                    f"is damaged: {exc}",
                    first.base_offset,
                ) from exc
            cut = relative + header.size
        if not cut and len(data) < first.size:
            raise LogCorruptionError(
                f"{self.log_path.name}: batch at offset {first.base_offset} (position {position}) is cut short",
                first.base_offset,
            )
        return data if cut == len(data) else data[:cut]

    def find_timestamp(self, timestamp: int) -> tuple[int, BatchHeader] | None:
        """First batch whose largest timestamp is >= ``timestamp``."""
        start_offset = self.time_index.lookup(timestamp)
        _, start = self.offset_index.lookup(start_offset)
        for position, header in self.walk(start):
            if header.max_timestamp >= timestamp:
                return position, header
        return None

    # -- loading and recovery ------------------------------------------------------------------------
    def load_clean(self, *, allow_gaps: bool = False) -> None:
        """Open after a clean shutdown: trust the files, rebuild only an index that fails its check."""
        try:
            self.offset_index.sanity_check(self.size)
            self.time_index.sanity_check()
        except IndexCorruptError as exc:
            logger.warning("event=index_rebuild path=%s reason=%s", self.log_path, exc)
            metrics.INDEX_REBUILDS.inc()
            self.recover(allow_gaps=allow_gaps)
            return
        last_offset, position = self.offset_index.last_entry()
        last_time = self.time_index.last_entry()
        if last_time is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time
        self.next_offset = last_offset + 1 if len(self.offset_index) else self.base_offset
        self.first_batch_timestamp = self._first_timestamp()
        for _position, header in self.walk(position):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            self.next_offset = header.next_offset
        self._bytes_since_index_entry = self.size - position if len(self.offset_index) else self.size
        self.offset_index.unload()
        self.time_index.unload()

    def _first_timestamp(self) -> int | None:
        if self.size < BATCH_OVERHEAD:
            return None
        return parse_header(self.read_bytes(0, BATCH_OVERHEAD)).max_timestamp

    def recover(self, expected_offset: int | None = None, *, allow_gaps: bool = False) -> RecoveryOutcome:
        """Scan every batch (size, CRC, offset continuity), rebuild both indexes, cut a bad tail.

        ``expected_offset`` is the offset the first batch must start at: the previous segment's end.
        ``allow_gaps``: the log was compacted, so a batch may start after that (as in Kafka); going
        backwards is damage either way. Without compaction a gap is damage too (a flipped offset bit).
        """
        offset_entries = bytearray()
        time_entries = bytearray()
        self.offset_index.close()
        self.time_index.close()
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self.first_batch_timestamp = None
        valid = 0
        since_entry = 0
        reason: str | None = None
        last_time_entry = NO_TIMESTAMP
        expected = self.base_offset if expected_offset is None else expected_offset
        for position, header, problem in self._scan_validated():
            if problem is None and header is not None:
                if header.base_offset < max(expected, self.base_offset) or (
                    header.base_offset != expected and not allow_gaps
                ):
                    problem = f"offset {header.base_offset} breaks continuity (expected {expected})"
                elif header.last_offset - self.base_offset > 0x7FFFFFFF:
                    problem = f"offset {header.last_offset} does not fit this segment's relative offsets"
            if problem is not None or header is None:
                reason = problem
                break
            if self.first_batch_timestamp is None:
                self.first_batch_timestamp = header.max_timestamp
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            if since_entry > self.index_interval_bytes:
                offset_entries += OffsetIndex.entry_format.pack(header.last_offset - self.base_offset, position)
                if self.max_timestamp > last_time_entry:
                    time_entries += TimeIndex.entry_format.pack(
                        self.max_timestamp, self.offset_of_max_timestamp - self.base_offset
                    )
                    last_time_entry = self.max_timestamp
                since_entry = 0
            since_entry += header.size
            valid = position + header.size
            self.next_offset = header.next_offset
            expected = header.next_offset
        truncated = self.size - valid
        if truncated:
            os.ftruncate(self._fd, valid)
            os.fsync(self._fd)
            self.size = valid
        self.offset_index.rewrite(offset_entries)
        self.time_index.rewrite(time_entries)
        self._bytes_since_index_entry = since_entry
        self.offset_index.unload()
        self.time_index.unload()
        return RecoveryOutcome(valid, truncated, reason if truncated else None)

    def _scan_validated(self) -> Iterator[tuple[int, BatchHeader | None, str | None]]:
        """Yield every batch CRC-checked, reading the file in large chunks; a final item with a
        problem (and no header) marks where the valid data ends."""
        position = 0
        while position < self.size:
            chunk = os.pread(self._fd, min(_SCAN_CHUNK, self.size - position), position)
            cursor = 0
            while cursor < len(chunk):
                if len(chunk) - cursor < LOG_OVERHEAD:
                    break
                length = int.from_bytes(chunk[cursor + 8 : cursor + 12], "big", signed=True)
                size = length + LOG_OVERHEAD
                if size < BATCH_OVERHEAD:
                    yield position + cursor, None, f"batch length {length} is too small"
                    return
                if position + cursor + size > self.size:
                    yield position + cursor, None, f"partial batch: {size} bytes announced, file ends first"
                    return
                if cursor + size > len(chunk):
                    if cursor == 0:  # one batch larger than the chunk: read it whole
                        chunk = os.pread(self._fd, size, position)
                        continue
                    break
                try:
                    header = validate_batch(chunk, cursor)
                except (CorruptRecordError, ValueError) as exc:
                    yield position + cursor, None, str(exc)
                    return
                yield position + cursor, header, None
                cursor += size
            if cursor == 0:
                yield position, None, "unreadable tail"
                return
            position += cursor

    # -- truncation, flushing, closing ---------------------------------------------------------------
    def truncate_to(self, offset: int) -> int:
        """Drop every batch whose last offset is >= ``offset``; returns the bytes removed."""
        located = self.locate(offset)
        if located is None:
            return 0
        position, _ = located
        removed = self.size - position
        os.ftruncate(self._fd, position)
        self.size = position
        self.offset_index.truncate_to_position(position)
        self.time_index.truncate_to(offset)
        self._reload_tail_state()
        return removed

    def _reload_tail_state(self) -> None:
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self.first_batch_timestamp = None
        since = 0
        for _position, header in self.walk(0):
            self.first_batch_timestamp = self.first_batch_timestamp or header.max_timestamp
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            self.next_offset = header.next_offset
            since += header.size
        _, last_position = self.offset_index.last_entry()
        self._bytes_since_index_entry = self.size - last_position if len(self.offset_index) else since

    def rename_index_files(self, old_suffix: str, new_suffix: str) -> None:
        """Rename ``.index``/``.timeindex`` from one suffix to another (open descriptors stay valid)."""
        for index in (self.offset_index, self.time_index):
            index.path = _renamed(index.path, old_suffix, new_suffix)

    def rename_log_file(self, old_suffix: str, new_suffix: str) -> None:
        self.log_path = _renamed(self.log_path, old_suffix, new_suffix)

    def abandon(self) -> None:
        """Close descriptors without flushing or sealing anything: the state a crash leaves."""
        for fd in (self._fd, self.offset_index._fd, self.time_index._fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.offset_index._fd = self.time_index._fd = None

    def dup_fds(self) -> list[int]:
        """Duplicates of the open descriptors, so another thread can fsync while this one rolls or closes."""
        fds = [os.dup(self._fd)]
        for index in (self.offset_index, self.time_index):
            if index._fd is not None:
                fds.append(os.dup(index._fd))
        return fds

    def flush(self) -> None:
        os.fsync(self._fd)
        self.offset_index.flush()
        self.time_index.flush()

    def seal(self) -> None:
        """The segment stops being active: record its largest timestamp in the time index (as Kafka)."""
        if self.max_timestamp != NO_TIMESTAMP:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.offset_index.close()
        self.time_index.close()
        self.offset_index.unload()
        self.time_index.unload()

    def close(self) -> None:
        self.seal()
        os.close(self._fd)

    def delete(self) -> None:
        self.offset_index.delete()
        self.time_index.delete()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self.log_path.unlink(missing_ok=True)

    @property
    def is_empty(self) -> bool:
        return self.size == 0


def _renamed(path: Path, old_suffix: str, new_suffix: str) -> Path:
    if not path.name.endswith(old_suffix):
        raise ValueError(f"{path.name} does not end with {old_suffix!r}")
    target = path.with_name(path.name[: len(path.name) - len(old_suffix)] + new_suffix)
    path.rename(target)
    return target
