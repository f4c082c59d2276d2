"""The broker-side partition: the log plus leadership state and the wake-up that long polls wait on.

On one node the high watermark equals the log end offset the moment an append returns; it is still kept as
its own field, advanced by :meth:`BrokerPartition.advance_high_watermark`, because replication will move
it only when followers catch up. Parked fetches are woken by that advance (an asyncio future per fetch,
resolved from the append itself), never by a sleep loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gafka_broker.log.partition_log import AppendResult, PartitionLog, ReadResult

__all__ = ["BrokerPartition"]


class _Waiter:
    """One parked fetch: how many more bytes it needs before it is worth answering."""

    __slots__ = ("future", "remaining")

    def __init__(self, remaining: int, future: asyncio.Future[bool]) -> None:
        self.remaining = remaining
        self.future = future


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class BrokerPartition:
    """One partition this broker leads."""

    __slots__ = ("_waiters", "high_watermark", "leader", "leader_epoch", "log", "partition", "replicas", "topic")

    def __init__(self, log: PartitionLog, *, leader: int, replicas: Sequence[int], leader_epoch: int = 0) -> None:
        self.log = log
        self.topic = log.topic
        self.partition = log.partition
        self.leader = leader
        self.replicas = tuple(replicas)
        self.leader_epoch = leader_epoch
        self.high_watermark = log.log_end_offset
        self._waiters: set[_Waiter] = set()

    @property
    def isr(self) -> tuple[int, ...]:
        """In-sync replicas; on one node, the leader alone."""
        return (self.leader,)

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def parked_fetches(self) -> int:
        return len(self._waiters)

    def append(self, data: bytes | bytearray | memoryview, *, now_ms: int | None = None) -> AppendResult:
        """Append as leader (validates, assigns offsets) and, being alone, commit it at once."""
        result = self.log.append_as_leader(data, leader_epoch=self.leader_epoch, now_ms=now_ms)
        self.advance_high_watermark(self.log.log_end_offset, result.size)
        return result

    def advance_high_watermark(self, offset: int, new_bytes: int) -> None:
        """Move the high watermark to ``offset`` and wake the fetches that now have enough to read."""
        if offset <= self.high_watermark:
            return
        self.high_watermark = offset
        if not self._waiters:
            return
        for waiter in tuple(self._waiters):
            waiter.remaining -= new_bytes
            if waiter.remaining <= 0:
                self._waiters.discard(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(True)

    def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Whole batches from ``offset``, never past the high watermark (raises OffsetOutOfRangeError)."""
        return self.log.read(offset, max_bytes, max_offset=self.high_watermark)

    async def wait_for_data(self, needed_bytes: int, timeout_s: float) -> bool:
        """Park until ``needed_bytes`` more bytes are committed (True) or ``timeout_s`` passes (False)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiter = _Waiter(needed_bytes, future)
        self._waiters.add(waiter)
        handle = loop.call_later(timeout_s, _expire, future)
        try:
            return await future
        finally:
            handle.cancel()
            self._waiters.discard(waiter)

    def wake_all(self) -> None:
        """Release every parked fetch now (shutdown, topic deletion); they answer with what there is."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_result(False)
