"""The follower's side of replication: one fetcher task per leader broker, for every partition followed from it.

Each round sends one long-polling fetch for all its partitions (fetch offset = the local log end offset,
last fetched epoch = the newest epoch in the local epoch cache, and the leader epoch the follower believes
current). For each partition in the answer it then either appends the batches and takes the leader's high
watermark, or truncates where the leader says its log diverged: to the smaller of the leader's end offset
for that epoch and its own (KIP-101/279), never to its own high watermark. A partition added to a fetcher
interrupts the fetch in flight, so a new leader is followed at once after a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from gafka.protocol.record_batch import CorruptRecordError, InvalidRecordError
from gafka_broker.log.errors import LogError
from gafka_broker.partition import BrokerPartition, Role
from gafka_broker.replication.epoch_cache import UNDEFINED_EPOCH
from gafka_broker.replication.protocol import (
    MEDIA_TYPE,
    FetchPartition,
    FetchRequest,
    PartitionData,
    ProtocolError,
    decode_response,
    encode_request,
)

__all__ = ["FetcherManager", "FetcherSettings", "truncation_offset"]

logger = logging.getLogger("gafka.broker.replication")

_RETRY_S = 0.1
_UNREACHABLE_RETRY_S = 0.25
_STALE_METADATA = frozenset({"FENCED_LEADER_EPOCH", "NOT_LEADER_OR_FOLLOWER", "UNKNOWN_TOPIC_OR_PARTITION"})


@dataclass(frozen=True, slots=True)
class FetcherSettings:
    broker_id: int
    incarnation: str
    max_wait_ms: int = 500
    """Kafka's ``replica.fetch.wait.max.ms``."""
    max_bytes: int = 1024 * 1024
    """Kafka's ``replica.fetch.max.bytes`` (per partition)."""
    response_max_bytes: int = 10 * 1024 * 1024
    """Kafka's ``replica.fetch.response.max.bytes``."""


def truncation_offset(partition: BrokerPartition, epoch: int, leader_end_offset: int) -> int:
    """Where a follower cuts its log when the leader reports ``(epoch, leader_end_offset)`` as diverging.

    Kafka's ``getOffsetTruncationState``: look up the largest local epoch <= ``epoch``; if it is that epoch,
    keep up to the smaller of both end offsets; if the follower never had that epoch, cut at the end of
    the largest one it has (the next fetch narrows it down further).
    """
    end = partition.log_end_offset
    local_epoch, local_end = partition.epoch_cache.end_offset_for(epoch, end)
    if local_epoch == UNDEFINED_EPOCH:
        return min(leader_end_offset, end)
    if local_epoch != epoch:
        return min(local_end, end)
    return min(local_end, leader_end_offset, end)


def _retrieve(future: asyncio.Future[httpx.Response]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class _Followed:
    partition: BrokerPartition
    leader_epoch: int
    retry_at: float = 0.0


class ReplicaFetcher:
    """Fetches every partition this broker follows from one leader broker."""

    def __init__(
        self,
        leader_id: int,
        url: str,
        http: httpx.AsyncClient,
        settings: FetcherSettings,
        after_append: Callable[[BrokerPartition], Awaitable[None]],
        refresh_metadata: Callable[[], Awaitable[None]],
    ) -> None:
        self.leader_id = leader_id
        self.url = url
        self._http = http
        self._settings = settings
        self._after_append = after_append
        self._refresh = refresh_metadata
        self.partitions: dict[tuple[str, int], _Followed] = {}
        self._changed = asyncio.Event()
        self._unreachable = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"gafka-fetcher-{leader_id}")

    def add(self, partition: BrokerPartition, leader_epoch: int) -> None:
        self.partitions[(partition.topic, partition.partition)] = _Followed(partition, leader_epoch)
        self._changed.set()

    def remove(self, partition: BrokerPartition) -> None:
        followed = self.partitions.get((partition.topic, partition.partition))
        if followed is not None and followed.partition is partition:
            del self.partitions[(partition.topic, partition.partition)]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # -- the loop ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            now = loop.time()
            ready = [f for f in self.partitions.values() if f.retry_at <= now]
            if not ready:
                wake = min((f.retry_at for f in self.partitions.values()), default=None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), None if wake is None else max(wake - now, 0.001))
                continue
            try:
                answer = await self._send(ready)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_unreachable(exc)
                for followed in ready:
                    followed.retry_at = loop.time() + _UNREACHABLE_RETRY_S
                continue
            if answer is None:
                continue  # interrupted by a change: fetch again with the new partition set
            self._note_reachable()
            await self._handle(ready, answer)

    async def _send(self, ready: list[_Followed]) -> tuple[str | None, list[PartitionData]] | None:
        settings = self._settings
        request = FetchRequest(
            replica_id=settings.broker_id,
            incarnation=settings.incarnation,
            max_wait_ms=settings.max_wait_ms,
            min_bytes=1,
            max_bytes=settings.response_max_bytes,
            partitions=tuple(
                FetchPartition(
                    f.partition.topic,
                    f.partition.partition,
                    f.partition.log_end_offset,
                    f.partition.epoch_cache.latest_epoch,
                    f.leader_epoch,
                    settings.max_bytes,
                )
                for f in ready
            ),
        )
        send = asyncio.ensure_future(
            self._http.post(
                f"{self.url}/v1/replication/fetch",
                content=encode_request(request),
                headers={"content-type": "application/json", "accept": MEDIA_TYPE},
                timeout=settings.max_wait_ms / 1000 + 10,
            )
        )
        send.add_done_callback(_retrieve)  # an abandoned fetch's failure is expected, not an unhandled error
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({send, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            if not send.done():
                send.cancel()
        if not send.done() or send.cancelled():
            return None
        response = send.result()
        if response.status_code != 200:
            raise ProtocolError(f"HTTP {response.status_code}: {response.text[:200]}")
        return decode_response(response.content)

    def _note_unreachable(self, exc: Exception) -> None:
        if not self._unreachable:
            self._unreachable = True
            logger.warning("event=leader_unreachable leader=%d url=%s error=%r", self.leader_id, self.url, str(exc))

    def _note_reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            logger.info("event=leader_reachable leader=%d url=%s", self.leader_id, self.url)

    async def _handle(self, sent: list[_Followed], answer: tuple[str | None, list[PartitionData]]) -> None:
        loop = asyncio.get_running_loop()
        error, results = answer
        if error is not None:
            for followed in sent:
                followed.retry_at = loop.time() + _RETRY_S
            return
        by_key = {(f.partition.topic, f.partition.partition): f for f in sent}
        stale = False
        for data in results:
            entry = by_key.get((data.topic, data.partition))
            if entry is None or self.partitions.get((data.topic, data.partition)) is not entry:
                continue  # no longer followed from here
            partition = entry.partition
            if partition.role is not Role.FOLLOWER or partition.leader_epoch != entry.leader_epoch:
                continue
            if data.error is None:
                await self._apply(partition, data)
            elif data.error == "OFFSET_OUT_OF_RANGE":
                self._out_of_range(partition, data)
            else:
                entry.retry_at = loop.time() + _RETRY_S
                stale = stale or data.error in _STALE_METADATA
                logger.debug(
                    "event=follower_fetch_error topic=%s partition=%d error_code=%s",
                    data.topic,
                    data.partition,
                    data.error,
                )
        if stale:
            await self._refresh()

    async def _apply(self, partition: BrokerPartition, data: PartitionData) -> None:
        if data.diverging_epoch is not None:
            epoch, end = data.diverging_epoch
            before = partition.log_end_offset
            offset = truncation_offset(partition, epoch, end)
            partition.truncate_to(offset)
            logger.info(
                "event=follower_truncated topic=%s partition=%d leader=%d diverging_epoch=%d leader_end_offset=%d "
                "log_end_offset_before=%d log_end_offset=%d",
                partition.topic,
                partition.partition,
                self.leader_id,
                epoch,
                end,
                before,
                partition.log_end_offset,
            )
            return
        if data.records:
            try:
                partition.append_as_follower(data.records)
            except (CorruptRecordError, InvalidRecordError, LogError, OSError) as exc:
                logger.error(
                    "event=follower_append_failed topic=%s partition=%d error=%r",
                    partition.topic,
                    partition.partition,
                    str(exc),
                )
                return
        partition.update_follower_high_watermark(data.high_watermark)
        partition.caught_up = (
            partition.log_end_offset >= data.log_end_offset and partition.high_watermark >= data.high_watermark
        )
        if partition.log_start_offset < data.log_start_offset <= partition.log_end_offset:
            partition.log.delete_records_before(data.log_start_offset)
        if data.records:
            await self._after_append(partition)

    def _out_of_range(self, partition: BrokerPartition, data: PartitionData) -> None:
        """Kafka's ``handleOutOfRangeError``: behind the leader's log start, start over there; ahead of its end,
        cut back to it."""
        end = partition.log_end_offset
        if end < data.log_start_offset:
            partition.truncate_fully_and_start_at(data.log_start_offset)
        elif end > data.log_end_offset >= 0:
            partition.truncate_to(data.log_end_offset)
        else:
            return
        logger.warning(
            "event=follower_out_of_range topic=%s partition=%d leader=%d log_end_offset_before=%d log_end_offset=%d",
            partition.topic,
            partition.partition,
            self.leader_id,
            end,
            partition.log_end_offset,
        )


class FetcherManager:
    """The fetcher per leader broker; partitions move between them as leadership moves."""

    def __init__(
        self,
        settings: FetcherSettings,
        after_append: Callable[[BrokerPartition], Awaitable[None]],
        refresh_metadata: Callable[[], Awaitable[None]],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self._after_append = after_append
        self._refresh = refresh_metadata
        self._fetchers: dict[int, ReplicaFetcher] = {}
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            timeout=httpx.Timeout(30.0, connect=2.0),
        )

    def follow(self, partition: BrokerPartition, leader_id: int, url: str, leader_epoch: int) -> None:
        self.unfollow(partition)
        fetcher = self._fetchers.get(leader_id)
        if fetcher is None or fetcher.url != url:
            if fetcher is not None:
                asyncio.get_running_loop().create_task(fetcher.close())
                moved = list(fetcher.partitions.values())
            else:
                moved = []
            fetcher = ReplicaFetcher(leader_id, url, self._http, self.settings, self._after_append, self._refresh)
            self._fetchers[leader_id] = fetcher
            for followed in moved:
                fetcher.add(followed.partition, followed.leader_epoch)
        fetcher.add(partition, leader_epoch)

    def unfollow(self, partition: BrokerPartition) -> None:
        for fetcher in self._fetchers.values():
            fetcher.remove(partition)

    def following(self) -> dict[int, int]:
        """Leader id -> number of partitions fetched from it."""
        return {leader: len(fetcher.partitions) for leader, fetcher in self._fetchers.items()}

    async def close(self) -> None:
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        for fetcher in fetchers:
            await fetcher.close()
        if self._owns_http:  # a shared client (the broker's PeerClient) is closed by its owner
            await self._http.aclose()
