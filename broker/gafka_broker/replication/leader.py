"""The leader's side of replication: serving follower fetches and changing the ISR through the controller.

A follower fetch is validated per partition the way Kafka's ``Partition.fetchRecords`` does it: the
follower's ``current_leader_epoch`` must be the leader's (older: ``FENCED_LEADER_EPOCH``, newer:
``UNKNOWN_LEADER_EPOCH``), and its ``last_fetched_epoch`` must end at or after its fetch offset in the
leader's epoch cache, else the answer is a ``diverging_epoch`` telling it where to truncate. A valid fetch
records the follower's log end offset (which may move the high watermark and let it join the ISR) and
returns the leader's batches up to its log end offset. With nothing new it parks until an append.

ISR changes go through the controller's AlterPartition, a compare-and-set on the partition epoch and the
leader epoch: a deposed leader (a paused process, an isolated one) cannot shrink the ISR to itself and
then acknowledge alone. Such a refusal makes the leader fetch fresh metadata, which usually demotes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import httpx
from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import read_body
from gafka_broker.controller.client import ControllerClient
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.log.errors import LogError, OffsetOutOfRangeError
from gafka_broker.partition import BrokerPartition, ReplicaDamagedError
from gafka_broker.replication.epoch_cache import UNDEFINED_EPOCH
from gafka_broker.replication.metrics import FOLLOWER_FETCH_WAITS
from gafka_broker.replication.protocol import (
    MEDIA_TYPE,
    FetchPartition,
    PartitionData,
    ProtocolError,
    decode_request,
    encode_response,
)

__all__ = ["IsrManager", "LeaderFetchHandler", "diverging_epoch"]

logger = logging.getLogger("gafka.broker.replication")

MAX_FETCH_REQUEST_BYTES = 4 * 1024 * 1024
MAX_FETCH_RESPONSE_BYTES = 64 * 1024 * 1024
_ISR_REFUSALS = frozenset({"FENCED_LEADER_EPOCH", "INVALID_UPDATE_VERSION", "UNKNOWN_TOPIC_OR_PARTITION"})


def _now_ms() -> int:
    return int(time.time() * 1000)


def diverging_epoch(partition: BrokerPartition, fetch_offset: int, last_fetched_epoch: int) -> tuple[int, int] | None:
    """Kafka's check: where the follower's last fetched epoch ends on the leader, when that is before the
    follower's fetch offset (or the leader never had that epoch); None when the logs agree so far."""
    if last_fetched_epoch == UNDEFINED_EPOCH:
        return None
    epoch, end = partition.epoch_cache.end_offset_for(last_fetched_epoch, partition.log_end_offset)
    if epoch == UNDEFINED_EPOCH:
        return None
    if end < fetch_offset or epoch < last_fetched_epoch:
        return epoch, end
    return None


class LeaderFetchHandler:
    """``POST /v1/replication/fetch``: the follower fetch, answered by the leader of each partition."""

    def __init__(
        self,
        lookup: Callable[[str, int], BrokerPartition | None],
        incarnation_of: Callable[[int], str | None],
        isr: IsrManager,
        stopping: Callable[[], bool],
    ) -> None:
        self._lookup = lookup
        self._incarnation_of = incarnation_of
        self._isr = isr
        self._stopping = stopping

    async def fetch(self, request: Request) -> Response:
        try:
            fetch = decode_request(await read_body(request, MAX_FETCH_REQUEST_BYTES))
        except ProtocolError as exc:
            return Response(encode_response([], f"INVALID_REQUEST: {exc}"), status_code=400, media_type=MEDIA_TYPE)
        known = self._incarnation_of(fetch.replica_id)
        if known != fetch.incarnation:
            # the follower restarted and we have not seen it re-register yet (or it is unknown): it retries
            return Response(encode_response([], "STALE_BROKER_EPOCH"), media_type=MEDIA_TYPE)
        now = _now_ms()
        valid: list[tuple[FetchPartition, BrokerPartition]] = []
        results: list[PartitionData] = []
        for wanted in fetch.partitions:
            data, partition = self._validate(fetch.replica_id, wanted, now)
            results.append(data)
            if partition is not None:
                valid.append((wanted, partition))
        total = self._read_all(valid, results, fetch.max_bytes)
        if total < fetch.min_bytes and fetch.max_wait_ms > 0 and valid and not self._stopping():
            await self._park([partition for _wanted, partition in valid], fetch.max_wait_ms)
            self._read_all(valid, results, fetch.max_bytes)
        return Response(encode_response(results), media_type=MEDIA_TYPE)

    def _validate(
        self, replica_id: int, wanted: FetchPartition, now_ms: int
    ) -> tuple[PartitionData, BrokerPartition | None]:
        data = PartitionData(wanted.topic, wanted.partition)
        partition = self._lookup(wanted.topic, wanted.partition)
        if partition is None:
            data.error = "UNKNOWN_TOPIC_OR_PARTITION"
            return data, None
        data.high_watermark = partition.high_watermark
        data.log_start_offset = partition.log_start_offset
        data.log_end_offset = partition.log_end_offset
        if not partition.is_leader:
            data.error = "NOT_LEADER_OR_FOLLOWER"
            return data, None
        if wanted.current_leader_epoch < partition.leader_epoch:
            data.error = "FENCED_LEADER_EPOCH"
            return data, None
        if wanted.current_leader_epoch > partition.leader_epoch:
            data.error = "UNKNOWN_LEADER_EPOCH"
            self._isr.metadata_is_stale()  # a follower knows a newer epoch: this leader may be deposed
            return data, None
        if replica_id not in partition.followers:
            data.error = "NOT_LEADER_OR_FOLLOWER"  # not a replica as far as this leader knows (yet)
            return data, None
        diverging = diverging_epoch(partition, wanted.fetch_offset, wanted.last_fetched_epoch)
        if diverging is not None:
            data.diverging_epoch = diverging
            return data, None
        if not partition.log_start_offset <= wanted.fetch_offset <= partition.log_end_offset:
            data.error = "OFFSET_OUT_OF_RANGE"
            return data, None
        partition.record_follower_fetch(replica_id, wanted.fetch_offset, now_ms)
        if partition.should_expand_isr(replica_id):
            self._isr.expand(partition, replica_id)
        data.high_watermark = partition.high_watermark
        return data, partition

    @staticmethod
    def _read_all(valid: list[tuple[FetchPartition, BrokerPartition]], results: list[PartitionData], limit: int) -> int:
        by_key = {(data.topic, data.partition): data for data in results}
        budget = min(limit, MAX_FETCH_RESPONSE_BYTES)
        total = 0
        for wanted, partition in valid:
            data = by_key[(wanted.topic, wanted.partition)]
            data.high_watermark = partition.high_watermark
            data.log_start_offset = partition.log_start_offset
            data.log_end_offset = partition.log_end_offset
            if not partition.is_leader:
                data.error = "NOT_LEADER_OR_FOLLOWER"
                data.records = b""
                continue
            if total >= budget and total > 0:
                continue
            try:
                records = partition.read_log(wanted.fetch_offset, min(wanted.max_bytes, budget - total)).data
            except OffsetOutOfRangeError:
                data.error = "OFFSET_OUT_OF_RANGE"
                continue
            except ReplicaDamagedError:
                data.error = "KAFKA_STORAGE_ERROR"  # logged and reported by the partition; leadership moves
                continue
            except (LogError, OSError) as exc:
                logger.error(
                    "event=replica_read_failed topic=%s partition=%d error=%r", data.topic, data.partition, str(exc)
                )
                data.error = "KAFKA_STORAGE_ERROR"
                continue
            data.records = records
            total += len(records)
        return total

    @staticmethod
    async def _park(partitions: list[BrokerPartition], max_wait_ms: int) -> None:
        """Wait until any of ``partitions`` gets an append, or ``max_wait_ms`` (Kafka's DelayedFetch).

        One future is shared by every partition of the fetch, so the first append ends the wait: a fetch
        for several partitions must not sit out ``replica.fetch.wait.max.ms`` while one of them has data
        (that held every ``acks=all`` produce to a partition whose leader leads others too)."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool] = loop.create_future()
        for partition in partitions:
            partition.add_append_waiter(woken)
        timer = loop.call_later(max_wait_ms / 1000, _expire, woken)
        try:
            ended_by = "woken" if await woken else "max_wait"
        finally:
            timer.cancel()
            for partition in partitions:
                partition.discard_append_waiter(woken)
        FOLLOWER_FETCH_WAITS.labels(ended_by).inc()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class IsrManager:
    """Shrinks and expands the ISR of the partitions this broker leads, one change per partition at a time."""

    def __init__(
        self,
        broker_id: int,
        controller: ControllerClient,
        refresh_metadata: Callable[[], Awaitable[None]],
        leaders: Callable[[], Iterable[BrokerPartition]],
    ) -> None:
        self.broker_id = broker_id
        self.controller = controller
        self._refresh = refresh_metadata
        self._leaders = leaders
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Future[None] | None = None

    def metadata_is_stale(self) -> None:
        """Fetch newer metadata soon (once, however many callers noticed)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())

    def expand(self, partition: BrokerPartition, replica_id: int) -> None:
        if partition.isr_change_pending:
            return
        self._submit(partition, (*partition.isr, replica_id), "expand")

    def check_shrink(self, now_ms: int) -> None:
        """Kafka's ``maybeShrinkIsr``, run every ``replica.lag.time.max.ms / 2``."""
        for partition in self._leaders():
            if partition.isr_change_pending or not partition.is_leader:
                continue
            lagging = partition.out_of_sync_replicas(now_ms)
            if lagging:
                self._submit(partition, tuple(b for b in partition.isr if b not in lagging), "shrink")

    def _submit(self, partition: BrokerPartition, isr: tuple[int, ...], kind: str) -> None:
        partition.isr_change_pending = True
        task = asyncio.get_running_loop().create_task(self._alter(partition, isr, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alter(self, partition: BrokerPartition, isr: tuple[int, ...], kind: str) -> None:
        leader_epoch, partition_epoch, before = partition.leader_epoch, partition.partition_epoch, partition.isr
        refresh = False
        try:
            stored, new_epoch = await self.controller.alter_partition(
                partition.topic,
                partition.partition,
                leader=self.broker_id,
                leader_epoch=leader_epoch,
                partition_epoch=partition_epoch,
                isr=isr,
            )
        except ControllerError as exc:
            logger.warning(
                "event=isr_change_refused topic=%s partition=%d kind=%s error_code=%s leader_epoch=%d",
                partition.topic,
                partition.partition,
                kind,
                exc.code,
                leader_epoch,
            )
            refresh = exc.code in _ISR_REFUSALS
        except (httpx.HTTPError, OSError) as exc:
            logger.warning(
                "event=isr_change_failed topic=%s partition=%d kind=%s error=%r",
                partition.topic,
                partition.partition,
                kind,
                str(exc),
            )
        else:
            if partition.is_leader and partition.leader_epoch == leader_epoch and new_epoch > partition.partition_epoch:
                partition.set_isr(stored, new_epoch, _now_ms())
                logger.info(
                    "event=isr_%s topic=%s partition=%d isr=%s was=%s leader_epoch=%d",
                    kind,
                    partition.topic,
                    partition.partition,
                    ",".join(map(str, stored)),
                    ",".join(map(str, before)),
                    leader_epoch,
                )
        finally:
            partition.isr_change_pending = False
        if refresh:
            await self._refresh()

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
