"""Reading for consumers: Kafka's ReplicaManager.fetchMessages for one face or another.

Only a partition's leader serves consumers, and only up to the high watermark. When fewer than
``min_bytes`` are available the fetch parks on the partitions (woken by the append that brings enough
data, by ``max_wait_ms``, shutdown or topic deletion); the number of parked fetches is capped, one more
is refused with THROTTLING_QUOTA_EXCEEDED instead of holding memory without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from gafka.protocol.record_batch import iter_batches
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.log.errors import OffsetOutOfRangeError
from gafka_broker.metrics import LONG_POLLS, topic_metrics
from gafka_broker.partition import BrokerPartition, ReplicaDamagedError

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["FetchedData", "Reader"]


class FetchedData(NamedTuple):
    """Whole batches from the fetch offset, and where the partition stands."""

    data: bytes
    high_watermark: int
    known_high_watermark: int | None
    """What a client may be shown: None while a new leader does not know its high watermark yet (KIP-207)."""
    log_start_offset: int
    next_offset: int
    """The offset after the last record handed out (the fetch offset when nothing was)."""
    record_count: int
    """Records in the batches (a batch may start before the fetch offset)."""


class Reader:
    """Reads for the broker's consumers; every face calls these and nothing else to read records."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def read(self, partition: BrokerPartition, offset: int, max_bytes: int) -> FetchedData:
        """Valid offsets are ``log_start_offset..high_watermark``; anything else is OFFSET_OUT_OF_RANGE.

        A batch damaged on disk is never served: KAFKA_STORAGE_ERROR while another in-sync replica has a good
        copy (leadership is moving there: retry), else CORRUPT_MESSAGE; both name the offset."""
        try:
            if offset > partition.log_end_offset:  # between the two: valid, just not committed yet (empty)
                raise OffsetOutOfRangeError(offset, partition.log_start_offset, partition.log_end_offset)
            result = partition.read(offset, max_bytes)
        except OffsetOutOfRangeError as exc:
            high_watermark = partition.high_watermark
            raise ApiError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"offset {offset} is out of range; valid offsets are {exc.log_start_offset}..{high_watermark}",
                log_start_offset=exc.log_start_offset,
                high_watermark=high_watermark,
                log_end_offset=exc.log_end_offset,
            ) from None
        except ReplicaDamagedError as exc:
            code = ErrorCode.KAFKA_STORAGE_ERROR if exc.healable else ErrorCode.CORRUPT_MESSAGE
            raise ApiError(code, exc.message, status=500, offset=exc.offset) from None
        data = result.data
        high_watermark = partition.high_watermark
        next_offset = offset
        count = 0
        for _position, header in iter_batches(data):
            count += header.records_count
            next_offset = max(next_offset, header.next_offset)
        next_offset = min(next_offset, high_watermark) if data else offset
        topic_metrics(partition.topic).bytes_out.inc(len(data))
        known = partition.visible_high_watermark
        return FetchedData(data, high_watermark, known, result.log_start_offset, next_offset, count)

    def can_park(self, min_bytes: int, available: int, max_wait_ms: int) -> bool:
        return available < min_bytes and max_wait_ms > 0 and not self.broker.stopping

    async def park(self, partitions: Sequence[tuple[BrokerPartition, int]], max_wait_ms: int) -> None:
        """Wait until one of ``partitions`` has its needed bytes committed, or ``max_wait_ms`` passes."""
        broker = self.broker
        limit = broker.config.max_concurrent_long_polls
        if broker.long_polls >= limit:
            raise ApiError(
                ErrorCode.THROTTLING_QUOTA_EXCEEDED,
                f"{broker.long_polls} fetches are already waiting for data "
                f"(max_concurrent_long_polls={limit}); retry, or use max_wait_ms=0",
                headers={"retry-after": "1"},
            )
        broker.long_polls += 1
        LONG_POLLS.inc()
        try:
            if len(partitions) == 1:
                partition, needed = partitions[0]
                await partition.wait_for_data(needed, max_wait_ms / 1000)
                return
            waits = [
                asyncio.ensure_future(partition.wait_for_data(needed, max_wait_ms / 1000))
                for partition, needed in partitions
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        finally:
            broker.long_polls -= 1
            LONG_POLLS.dec()
