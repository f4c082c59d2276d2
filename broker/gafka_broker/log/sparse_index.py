"""An append-only file of fixed-size entries, kept sorted: the shape shared by ``.index`` and ``.timeindex``.

Kafka preallocates and mmaps these files; gafka appends entries with plain writes and keeps a copy of the
entries in memory, loaded on first use, so an index costs nothing until a read needs it. The files hold
exactly the entries (no preallocated tail), which Kafka's own tools read as they are.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path


class IndexCorruptError(Exception):
    """An index file failed its sanity check; the caller rebuilds it from the segment."""


class SparseIndex:
    """Sorted fixed-size entries whose first field is the search key."""

    entry_format: struct.Struct

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._entries: bytearray | None = None
        self._fd: int | None = None

    # -- loading -------------------------------------------------------------------------------------
    @property
    def entries(self) -> bytearray:
        if self._entries is None:
            try:
                self._entries = bytearray(self.path.read_bytes())
            except FileNotFoundError:
                self._entries = bytearray()
        return self._entries

    def __len__(self) -> int:
        return len(self.entries) // self.entry_format.size

    def entry(self, index: int) -> tuple[int, int]:
        first, second = self.entry_format.unpack_from(self.entries, index * self.entry_format.size)
        return int(first), int(second)

    def unload(self) -> None:
        """Drop the in-memory copy of a sealed segment's index (reloaded on the next lookup)."""
        if self._fd is None:
            self._entries = None

    # -- writing -------------------------------------------------------------------------------------
    def open_for_append(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _append_entry(self, first: int, second: int) -> None:
        packed = self.entry_format.pack(first, second)
        self.entries.extend(packed)
        if self._fd is None:
            self.open_for_append()
        assert self._fd is not None
        os.write(self._fd, packed)

    def rewrite(self, entries: bytes | bytearray) -> None:
        """Replace the file's content (after a rebuild or a truncation)."""
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(entries)
        tmp.replace(self.path)
        self._entries = bytearray(entries)

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self._entries = bytearray()

    # -- searching -----------------------------------------------------------------------------------
    def _floor_slot(self, key: int) -> int:
        """Index of the last entry whose key is <= ``key``; -1 if there is none."""
        entries = self.entries
        size = self.entry_format.size
        unpack = self.entry_format.unpack_from
        low, high = 0, len(entries) // size - 1
        found = -1
        while low <= high:
            mid = (low + high) >> 1
            if unpack(entries, mid * size)[0] <= key:
                found = mid
                low = mid + 1
            else:
                high = mid - 1
        return found

    def _truncate_slots(self, keep: int) -> None:
        if keep < len(self):
            self.rewrite(bytes(self.entries[: keep * self.entry_format.size]))
