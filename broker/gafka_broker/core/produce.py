"""Appending to a partition this broker leads: Kafka's ReplicaManager.appendRecords for one face or another.

The rules live here once: internal topics are never written, ``acks=all`` needs ``min.insync.replicas``
in-sync replicas before anything is appended, the idempotent-producer check and the append happen on
the leader only, the topic's ``flush.messages`` fsync is awaited (acks 1/all) or left to run (acks 0),
and ``acks=all`` answers once the high watermark passes the records (or with Kafka's reason it did not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gafka.protocol.record_batch import CorruptRecordError, InvalidRecordError, iter_batches
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.log.errors import LogError, RecordTooLargeError
from gafka_broker.log.partition_log import AppendResult
from gafka_broker.metrics import topic_metrics
from gafka_broker.partition import BrokerPartition, CommitError, NotLeaderError
from gafka_broker.replication.producer_state import ProducerStateError

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["ACKS_ALL", "APPEND_ERRORS", "Appender", "append_error"]

log = logging.getLogger("gafka.broker.produce")

ACKS_ALL = -1

APPEND_ERRORS = (CorruptRecordError, InvalidRecordError, LogError, OSError, NotLeaderError, ProducerStateError)
"""What an append may raise for a reason of the request or the disk (anything else is a bug)."""


def append_error(exc: Exception) -> ApiError:
    """What an append failure means for the client."""
    if isinstance(exc, RecordTooLargeError):
        return ApiError(ErrorCode.MESSAGE_TOO_LARGE, str(exc))
    if isinstance(exc, CorruptRecordError):
        return ApiError(ErrorCode.CORRUPT_MESSAGE, str(exc))
    if isinstance(exc, InvalidRecordError):
        return ApiError(ErrorCode.INVALID_RECORD, str(exc))
    if isinstance(exc, NotLeaderError):
        return ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"{exc}; refresh metadata and retry on the new leader")
    if isinstance(exc, ProducerStateError):
        return ApiError(ErrorCode(exc.code), exc.message)
    return ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"the log could not store the records: {exc}")


def commit_error(exc: CommitError) -> ApiError:
    return ApiError(ErrorCode(exc.code), exc.message)


class Appender:
    """Appends for the broker's clients; every face calls these and nothing else to write records."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._background: set[asyncio.Task[None]] = set()

    async def leader_for_append(self, topic: str, partition: str | int, *, auto_create: bool) -> BrokerPartition:
        """The local leader of a partition clients may write; NOT_LEADER_OR_FOLLOWER when another broker leads."""
        broker = self.broker
        broker.check_ready()
        broker.check_writable(topic)
        await broker.ensure_topic(topic, auto_create=auto_create)
        return broker.partition(topic, partition)

    def check_acks(self, acks: int, partitions: Sequence[BrokerPartition], min_isr: int) -> None:
        """acks=all refuses before appending when the ISR is already below ``min.insync.replicas``."""
        if acks != ACKS_ALL:
            return
        for partition in partitions:
            if len(partition.isr) < min_isr:
                raise ApiError(
                    ErrorCode.NOT_ENOUGH_REPLICAS,
                    f"acks=all needs min.insync.replicas={min_isr} in-sync replicas; partition "
                    f"{partition.partition} of {partition.topic!r} has {len(partition.isr)}",
                )

    def append_now(
        self, target: BrokerPartition, data: bytes | bytearray | memoryview, *, now_ms: int | None, trusted: bool
    ) -> AppendResult:
        """Append as leader and count it; raises :class:`ApiError` (nothing written) on a refusal."""
        try:
            result = target.append(data, now_ms=now_ms, trusted=trusted)
        except APPEND_ERRORS as exc:
            raise append_error(exc) from None
        metrics = topic_metrics(target.topic)
        metrics.bytes_in.inc(result.size)
        metrics.messages_in.inc(result.record_count)
        return result

    async def durable(self, acks: int, partitions: Sequence[BrokerPartition]) -> None:
        """Wait for the fsync the topic's ``flush.messages`` asks for; with acks=0 let it run on its own."""
        committer = self.broker.committer
        if committer is None or not partitions:
            return
        try:
            if acks == 0:
                for partition in partitions:
                    task = asyncio.get_running_loop().create_task(committer.after_append(partition.log))
                    self._background.add(task)
                    task.add_done_callback(self._background_done)
                return
            if len(partitions) == 1:
                await committer.after_append(partitions[0].log)
            else:
                await asyncio.gather(*(committer.after_append(partition.log) for partition in partitions))
        except (LogError, OSError) as exc:
            raise ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"the records were appended but not flushed: {exc}") from None

    async def committed(self, target: BrokerPartition, result: AppendResult, timeout_s: float) -> None:
        """acks=all: return once the in-sync replicas have the records; raise Kafka's reason otherwise."""
        try:
            await target.wait_committed(result.last_offset + 1, timeout_s)
        except CommitError as exc:
            raise commit_error(exc) from None

    async def append(
        self,
        target: BrokerPartition,
        data: bytes | bytearray | memoryview,
        *,
        acks: int,
        timeout_s: float,
        max_records: int | None = None,
        now_ms: int | None = None,
        trusted: bool = False,
    ) -> AppendResult:
        """One partition's batches, start to finish: acks check, record limit, append, fsync, ISR wait."""
        self.check_acks(acks, [target], self.broker.topic_config(target.topic).min_insync_replicas)
        if not data:
            raise ApiError(ErrorCode.INVALID_REQUEST, "the request holds no record batch")
        if max_records is not None:
            count = 0
            for _position, header in iter_batches(data):
                count += header.records_count
            if count > max_records:
                raise ApiError(
                    ErrorCode.RECORD_LIST_TOO_LARGE, f"{count} records in one request; the limit is {max_records}"
                )
        result = self.append_now(target, data, now_ms=now_ms, trusted=trusted)
        await self.durable(acks, [target])
        if acks == ACKS_ALL:
            await self.committed(target, result, timeout_s)
        return result

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=background_flush_failed error=%r", str(task.exception()))
