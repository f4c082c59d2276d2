"""The leader-epoch cache of one partition replica (KIP-101/279), kept as Kafka's ``leader-epoch-checkpoint``.

It maps each leader epoch to the first offset written in it. A follower asks the leader where its last
fetched epoch ends and truncates there, instead of at its own (possibly stale) high watermark: the fix
for the data loss and divergence that high-watermark truncation allowed.

File format (Kafka's ``LeaderEpochCheckpointFile``), replaced atomically on every change::

    0            <- version
    2            <- entry count
    0 0          <- epoch start_offset
    3 1200
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from gafka_broker.log.checkpoint import write_atomically

__all__ = ["CHECKPOINT_FILE", "UNDEFINED_EPOCH", "UNDEFINED_OFFSET", "EpochEntry", "LeaderEpochCache"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = 0


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    """Epoch -> start offset, both strictly increasing; persisted after every change when ``path`` is set."""

    def __init__(self, path: Path | None = None, entries: Iterable[EpochEntry] = ()) -> None:
        self.path = path
        self._entries: list[EpochEntry] = list(entries)

    # -- persistence ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache | None:
        """The cache stored at ``path``; None when the file is missing or unreadable (rebuild it then)."""
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        try:
            if int(lines[0]) != _VERSION:
                raise ValueError(f"unknown version {lines[0]}")
            count = int(lines[1])
            entries = []
            for line in lines[2 : 2 + count]:
                epoch, start = line.split()
                entries.append(EpochEntry(int(epoch), int(start)))
            if len(entries) != count:
                raise ValueError(f"expected {count} entries, found {len(entries)}")
            for earlier, later in itertools.pairwise(entries):
                if later.epoch <= earlier.epoch or later.start_offset < earlier.start_offset:
                    raise ValueError("entries are not increasing")
        except (IndexError, ValueError) as exc:
            logger.warning("event=epoch_checkpoint_unreadable path=%s reason=%s", path, exc)
            return None
        return cls(path, entries)

    def flush(self) -> None:
        if self.path is None:
            return
        lines = [str(_VERSION), str(len(self._entries))]
        lines += [f"{entry.epoch} {entry.start_offset}" for entry in self._entries]
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())

    # -- reading -------------------------------------------------------------------------------------
    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    def start_offset_of(self, epoch: int) -> int | None:
        for entry in self._entries:
            if entry.epoch == epoch:
                return entry.start_offset
        return None

    def end_offset_for(self, requested: int, log_end_offset: int) -> EpochEntry:
        """Kafka's ``endOffsetFor``: ``(largest epoch <= requested, where the next epoch starts)``.

        For the latest epoch the end is the log end offset. A requested epoch below every known one
        answers ``(requested, start of the first epoch)``; an undefined or unknown-larger epoch answers
        ``(-1, -1)``.
        """
        entries = self._entries
        if requested == UNDEFINED_EPOCH or not entries:
            return EpochEntry(UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        if entries[-1].epoch == requested:
            return EpochEntry(requested, log_end_offset)
        higher = next((entry for entry in entries if entry.epoch > requested), None)
        if higher is None:
            return EpochEntry(UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        floor = None
        for entry in entries:
            if entry.epoch > requested:
                break
            floor = entry
        if floor is None:
            return EpochEntry(requested, higher.start_offset)
        return EpochEntry(floor.epoch, higher.start_offset)

    # -- changing ------------------------------------------------------------------------------------
    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; entries it contradicts go. True if it changed."""
        if epoch < 0:
            return False
        if self._entries:
            latest = self._entries[-1]
            if latest.epoch == epoch and latest.start_offset <= start_offset:
                return False
        kept = [entry for entry in self._entries if entry.epoch < epoch and entry.start_offset < start_offset]
        if len(kept) != len(self._entries):
            dropped = self._entries[len(kept) :]
            if dropped and not (len(dropped) == 1 and dropped[0].epoch == epoch):
                logger.warning(
                    "event=epoch_cache_conflict path=%s epoch=%d start_offset=%d dropped=%s",
                    self.path,
                    epoch,
                    start_offset,
                    ",".join(f"{e.epoch}:{e.start_offset}" for e in dropped),
                )
        kept.append(EpochEntry(epoch, start_offset))
        self._entries = kept
        self.flush()
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """The log was cut at ``end_offset``: forget epochs that start there or later."""
        kept = [entry for entry in self._entries if entry.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs wholly before it, move the one spanning it."""
        entries = self._entries
        floor_index = -1
        for index, entry in enumerate(entries):
            if entry.start_offset <= start_offset:
                floor_index = index
        if floor_index < 0 or (floor_index == 0 and entries[0].start_offset == start_offset):
            return
        kept = [EpochEntry(entries[floor_index].epoch, start_offset), *entries[floor_index + 1 :]]
        if kept != entries:
            self._entries = kept
            self.flush()

    def clear(self) -> None:
        if self._entries:
            self._entries = []
            self.flush()
