"""The sparse ``.timeindex``: 8-byte timestamp + 4-byte offset relative to the segment's base.

Entries carry the largest timestamp seen so far in the segment and the offset of the batch holding it,
so timestamps in the file only grow; a lookup gives the offset to start scanning from.
"""

from __future__ import annotations

import struct

from gafka_broker.log.sparse_index import IndexCorruptError, SparseIndex


class TimeIndex(SparseIndex):
    entry_format = struct.Struct(">qi")

    def maybe_append(self, timestamp: int, offset: int) -> None:
        if len(self):
            last_timestamp, last_relative = self.entry(len(self) - 1)
            if timestamp <= last_timestamp or offset - self.base_offset < last_relative:
                return
        self._append_entry(timestamp, offset - self.base_offset)

    def lookup(self, timestamp: int) -> int:
        """Offset of the last entry whose timestamp is <= ``timestamp``; the base offset if none."""
        slot = self._floor_slot(timestamp)
        if slot < 0:
            return self.base_offset
        return self.base_offset + self.entry(slot)[1]

    def last_entry(self) -> tuple[int, int] | None:
        """``(timestamp, offset)`` of the newest entry."""
        if not len(self):
            return None
        timestamp, relative = self.entry(len(self) - 1)
        return timestamp, self.base_offset + relative

    def truncate_to(self, offset: int) -> None:
        """Remove every entry pointing at ``offset`` or later."""
        keep = 0
        while keep < len(self) and self.base_offset + self.entry(keep)[1] < offset:
            keep += 1
        self._truncate_slots(keep)

    def sanity_check(self) -> None:
        if len(self.entries) % self.entry_format.size:
            raise IndexCorruptError(f"{self.path.name}: size {len(self.entries)} is not a multiple of 12")
        previous = None
        for slot in range(len(self)):
            entry = self.entry(slot)
            if previous is not None and (entry[0] < previous[0] or entry[1] < previous[1]):
                raise IndexCorruptError(f"{self.path.name}: entry {slot} is out of order")
            previous = entry
