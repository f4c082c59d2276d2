"""The sparse ``.index``: 4-byte offset relative to the segment's base + 4-byte byte position in ``.log``.

An entry maps the last offset of a batch to the position where that batch starts, written whenever more
than ``index.interval.bytes`` were appended since the previous entry (Kafka's rule), so a lookup lands at
most that many bytes before the wanted batch.
"""

from __future__ import annotations

import struct

from gafka_broker.log.sparse_index import IndexCorruptError, SparseIndex


class OffsetIndex(SparseIndex):
    entry_format = struct.Struct(">ii")

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        if len(self) and self.entry(len(self) - 1)[0] >= relative:
            return
        self._append_entry(relative, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """``(offset, position)`` of the last entry at or before ``offset``, else ``(base_offset, 0)``."""
        slot = self._floor_slot(offset - self.base_offset)
        if slot < 0:
            return self.base_offset, 0
        relative, position = self.entry(slot)
        return self.base_offset + relative, position

    def last_entry(self) -> tuple[int, int]:
        if not len(self):
            return self.base_offset, 0
        relative, position = self.entry(len(self) - 1)
        return self.base_offset + relative, position

    def truncate_to(self, offset: int) -> None:
        """Remove every entry for ``offset`` and later."""
        self._truncate_slots(self._floor_slot(offset - self.base_offset - 1) + 1)

    def truncate_to_position(self, position: int) -> None:
        """Remove every entry pointing at ``position`` or beyond (the log was cut there)."""
        keep = 0
        while keep < len(self) and self.entry(keep)[1] < position:
            keep += 1
        self._truncate_slots(keep)

    def sanity_check(self, segment_size: int) -> None:
        if len(self.entries) % self.entry_format.size:
            raise IndexCorruptError(f"{self.path.name}: size {len(self.entries)} is not a multiple of 8")
        previous_offset, previous_position = -1, -1
        for slot in range(len(self)):
            relative, position = self.entry(slot)
            if relative <= previous_offset or position <= previous_position or position >= segment_size:
                raise IndexCorruptError(f"{self.path.name}: entry {slot} ({relative}, {position}) is out of order")
            previous_offset, previous_position = relative, position
