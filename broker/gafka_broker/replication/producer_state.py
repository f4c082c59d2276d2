"""Idempotent-producer state of one partition replica: Kafka's ``ProducerStateManager``, minus transactions.

Per producer id it keeps the producer epoch and the last five batches (first/last sequence and offsets).
The leader checks every batch against it before appending: a batch equal to a retained one is a
duplicate (not appended; the original offsets are answered), a gap in the sequence is
``OUT_OF_ORDER_SEQUENCE_NUMBER`` and an older epoch is ``INVALID_PRODUCER_EPOCH``. Followers apply the
same updates as they copy the leader's batches, so the state follows leadership; after a restart or a
truncation it is rebuilt from the batch headers of the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from gafka.protocol.record_batch import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, BatchHeader

__all__ = [
    "NUM_BATCHES_TO_RETAIN",
    "BatchMetadata",
    "ProducerEntry",
    "ProducerStateError",
    "ProducerStateManager",
]

NUM_BATCHES_TO_RETAIN = 5
"""Kafka's ``ProducerStateEntry.NUM_BATCHES_TO_RETAIN`` (a producer has at most 5 requests in flight)."""
_MAX_SEQUENCE = (1 << 31) - 1


class ProducerStateError(Exception):
    """A batch breaks the producer's sequence or epoch; ``code`` is Kafka's error name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.producer_epoch, deque(self.batches, maxlen=NUM_BATCHES_TO_RETAIN))


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == _MAX_SEQUENCE)


def _is_idempotent(header: BatchHeader) -> bool:
    return header.producer_id != NO_PRODUCER_ID and header.base_sequence != NO_SEQUENCE


class ProducerStateManager:
    """Producer id -> :class:`ProducerEntry` for one partition."""

    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    # -- the leader's check --------------------------------------------------------------------------
    def check(self, headers: Iterable[BatchHeader]) -> list[BatchMetadata] | None:
        """Validate a request's batches in order (before they get offsets).

        Returns the original batches when every idempotent batch of the request is a duplicate (then
        nothing is appended), None when all are new and in sequence; raises :class:`ProducerStateError`.
        """
        staged: dict[int, ProducerEntry] = {}
        duplicates: list[BatchMetadata] = []
        fresh = 0
        for header in headers:
            if not _is_idempotent(header):
                fresh += 1
                continue
            pid = header.producer_id
            current = staged.get(pid) or self._producers.get(pid)
            if current is not None:
                duplicate = current.find_duplicate(header.producer_epoch, header.base_sequence, header.last_sequence)
                if duplicate is not None:
                    duplicates.append(duplicate)
                    continue
            self._check_batch(current, header)
            fresh += 1
            updated = current.copy() if current is not None else ProducerEntry()
            updated.producer_epoch = header.producer_epoch
            # Offsets are not known yet: only the sequences matter for the batches that follow.
            updated.batches.append(BatchMetadata(header.base_sequence, header.last_sequence, -1, -1))
            staged[pid] = updated
        if duplicates and fresh:
            raise ProducerStateError(
                "OUT_OF_ORDER_SEQUENCE_NUMBER",
                "the request mixes batches already written (duplicates) with new ones; send them separately",
            )
        return duplicates or None

    @staticmethod
    def _check_batch(current: ProducerEntry | None, header: BatchHeader) -> None:
        """Kafka's ``ProducerAppendInfo.checkProducerEpoch`` and ``checkSequence`` for client appends."""
        epoch, first_seq = header.producer_epoch, header.base_sequence
        if current is None or current.producer_epoch == NO_PRODUCER_EPOCH:
            return  # unknown producer (new, or its batches are gone): any sequence starts it
        if epoch < current.producer_epoch:
            raise ProducerStateError(
                "INVALID_PRODUCER_EPOCH",
                f"producer {header.producer_id} epoch {epoch} is older than the current epoch {current.producer_epoch}",
            )
        if epoch > current.producer_epoch:
            if first_seq != 0:
                raise ProducerStateError(
                    "OUT_OF_ORDER_SEQUENCE_NUMBER",
                    f"producer {header.producer_id} starts epoch {epoch} at sequence {first_seq}; a new epoch "
                    "starts at 0",
                )
            return
        last_seq = current.last_seq
        if last_seq != NO_SEQUENCE and not in_sequence(last_seq, first_seq):
            raise ProducerStateError(
                "OUT_OF_ORDER_SEQUENCE_NUMBER",
                f"producer {header.producer_id} epoch {epoch}: expected sequence {(last_seq + 1) & _MAX_SEQUENCE}, "
                f"got {first_seq}",
            )

    # -- every append, leader or follower ------------------------------------------------------------
    def update(self, header: BatchHeader) -> None:
        """Record a batch now in the log (``header`` carries its final offsets)."""
        if not _is_idempotent(header):
            return
        entry = self._producers.get(header.producer_id)
        if entry is None:
            entry = self._producers[header.producer_id] = ProducerEntry()
        if header.producer_epoch != entry.producer_epoch:
            entry.producer_epoch = header.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(header.base_sequence, header.last_sequence, header.base_offset, header.last_offset)
        )

    def rebuild(self, headers: Iterable[BatchHeader]) -> None:
        """Forget everything and replay ``headers`` (the log's batches, oldest first)."""
        self._producers.clear()
        for header in headers:
            self.update(header)

    def producers(self) -> Iterator[tuple[int, ProducerEntry]]:
        yield from self._producers.items()
