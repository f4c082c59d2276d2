"""The broker's side of consumer groups: the internal topic, its stores, the clocks, expiry and offsets.

Everything about *where* groups live is kept here so replication can move it: a group's coordinator is
the leader of the group's ``__consumer_offsets`` partition. Becoming a partition's leader loads its groups
from the log, losing it drops them; :meth:`GroupService.route` tells the API whether a group is
coordinated here or where to forward its requests. The topic is created on the first group write, with
replication factor ``min(3, brokers)``; a write is answered once the partition's in-sync replicas have it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import httpx

from gafka.partitioner import partition_for_key
from gafka_broker.core.offsets import LATEST, list_offset
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.assignors import TopicPartition
from gafka_broker.groups.classic import ClassicGroups
from gafka_broker.groups.coordinator import (
    OFFSETS_TOPIC,
    CommittedOffset,
    CoordinatorSettings,
    GroupCoordinator,
    OffsetCommit,
)
from gafka_broker.groups.group import ConsumerGroup, HeartbeatRequest, HeartbeatResponse
from gafka_broker.groups.store import GroupStore
from gafka_broker.metrics import GroupStats
from gafka_broker.partition import CommitError
from gafka_broker.replication.forwarding import RemoteLeader

if TYPE_CHECKING:
    from gafka_broker.broker import Broker
    from gafka_broker.partition import BrokerPartition

__all__ = ["OFFSETS_TOPIC", "OFFSETS_TOPIC_CONFIGS", "GroupService", "ResetTarget"]

log = logging.getLogger("gafka.broker.groups")

OFFSETS_TOPIC_CONFIGS: Mapping[str, str] = {
    # an ordinary compacted topic: the log cleaner keeps the last record per key (Kafka's settings)
    "cleanup.policy": "compact",
    "segment.bytes": str(100 * 1024 * 1024),  # Kafka's offsets.topic.segment.bytes
    # a commit or a group's state is one batch: allow big ones (a commit is bounded by max_request_bytes)
    "max.message.bytes": str(32 * 1024 * 1024),
}
OFFSETS_TOPIC_REPLICATION_FACTOR = 3
"""Kafka's offsets.topic.replication.factor, lowered to the number of brokers."""

ResetTarget = tuple[str, int]
"""``("earliest", 0)``, ``("latest", 0)``, ``("timestamp", ms)`` or ``("offset", n)``."""


def liveness_ms() -> int:
    """Sessions are measured on the monotonic clock, so a wall-clock jump never expires a whole group."""
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    """Commit timestamps are wall-clock time, as in Kafka."""
    return time.time_ns() // 1_000_000


class GroupService:
    """The group coordinator of one broker, created with the internal topic on first use."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._coordinator: GroupCoordinator | None = None
        self._stores: dict[int, GroupStore] = {}
        self.commits: dict[str, int] = {}
        """Accepted commit requests per group since start-up (a metric)."""
        self.classic = ClassicGroups(liveness_ms)
        """Groups of Kafka's classic protocol (JoinGroup/SyncGroup), spoken by the Kafka listener."""
        broker.replica_manager.leadership_listeners.append(self._leadership_changed)

    # -- loading -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start-up: the offsets partitions this broker leads were loaded when it took their leadership."""

    def _leadership_changed(self, partition: BrokerPartition, leads: bool) -> None:
        """Coordination follows leadership of the offsets partitions."""
        if partition.topic != OFFSETS_TOPIC:
            return
        self._stores.pop(partition.partition, None)
        if leads:
            (self._coordinator or self._open()).load(partition.partition, liveness_ms())
            log.debug("event=group_partition_loaded partition=%d", partition.partition)
        else:
            self._drop_classic(partition.partition)
        if not leads and self._coordinator is not None:
            self._coordinator.unload(partition.partition)
            log.debug("event=group_partition_unloaded partition=%d", partition.partition)

    def _drop_classic(self, partition: int) -> None:
        """Classic members of groups coordinated elsewhere now rejoin there (they are told UNKNOWN_MEMBER_ID)."""
        count = self.broker.partition_counts().get(OFFSETS_TOPIC)
        for group_id in list(self.classic.groups):
            if count is None or partition_for_key(group_id.encode(), count) == partition:
                self.classic.forget(group_id)

    def _open(self) -> GroupCoordinator:
        broker = self.broker
        count = broker.partition_counts()[OFFSETS_TOPIC]
        configured = broker.config.offsets_topic_num_partitions
        if count != configured:
            # the partition of a group is murmur2(group) % count: changing it would lose every group
            log.warning(
                "event=offsets_topic_partitions_differ partitions=%d offsets_topic_num_partitions=%d action=kept",
                count,
                configured,
            )
        config = broker.config
        settings = CoordinatorSettings(
            session_timeout_ms=config.group_session_timeout_ms,
            heartbeat_interval_ms=config.group_heartbeat_interval_ms,
        )
        self._coordinator = GroupCoordinator(self._store_for, count, settings)
        return self._coordinator

    def _store_for(self, partition: int) -> GroupStore:
        store = self._stores.get(partition)
        if store is None:
            target = self.broker.partition(OFFSETS_TOPIC, partition)
            store = self._stores[partition] = GroupStore(target.log, append=target.append)
        return store

    @property
    def loaded(self) -> GroupCoordinator | None:
        """The coordinator if any group was ever written; reads use it without creating the topic."""
        return self._coordinator

    def coordinator(self) -> GroupCoordinator:
        """The coordinator (call :meth:`route` first: it makes sure the topic exists and is led here)."""
        return self._coordinator or self._open()

    async def route(self, group_id: str, *, create: bool) -> RemoteLeader | None:
        """None when this broker coordinates ``group_id`` (or, without ``create``, when no group exists at all);
        else the coordinator to forward to. ``create`` makes ``__consumer_offsets`` on the first group write."""
        broker = self.broker
        if not broker.has_topic(OFFSETS_TOPIC):
            if not create:
                return None
            try:
                await broker.create_topic(
                    OFFSETS_TOPIC,
                    broker.config.offsets_topic_num_partitions,
                    min(OFFSETS_TOPIC_REPLICATION_FACTOR, len(broker.broker_ids)),
                    dict(OFFSETS_TOPIC_CONFIGS),
                    internal=True,
                )
            except ApiError as exc:
                if exc.code is not ErrorCode.TOPIC_ALREADY_EXISTS:
                    raise
                await broker.replica_manager.refresh()
        index = partition_for_key(group_id.encode(), broker.partition_counts()[OFFSETS_TOPIC])
        routed = broker.route(OFFSETS_TOPIC, index)
        if isinstance(routed, RemoteLeader):
            return routed
        self.coordinator()
        return None

    async def durable(self, group_id: str) -> None:
        """Wait until what this broker wrote for ``group_id`` is on the in-sync replicas (Kafka commits offsets
        with acks=all); raises like an ``acks=all`` produce when it cannot be."""
        count = self.broker.partition_counts().get(OFFSETS_TOPIC)
        if count is None:
            return
        partition = self.broker.local_replica(OFFSETS_TOPIC, partition_for_key(group_id.encode(), count))
        if partition is None:
            return
        try:
            await partition.wait_committed(partition.log_end_offset, self.broker.config.request_timeout_ms / 1000)
        except CommitError as exc:
            raise ApiError(ErrorCode(exc.code), exc.message) from None

    # -- members and offsets -------------------------------------------------------------------------
    def heartbeat(self, group_id: str, request: HeartbeatRequest, assignor: str | None) -> HeartbeatResponse:
        return self.coordinator().heartbeat(
            group_id, request, liveness_ms(), self.broker.partition_counts(), assignor=assignor
        )

    def expire(self) -> None:
        """Remove members whose session or rebalance timeout ran out (the upkeep task, every 500 ms)."""
        if self._coordinator is not None:
            self._coordinator.expire(liveness_ms())
        self.classic.expire(liveness_ms())

    def expire_offsets(self) -> None:
        """Remove the committed offsets of groups that stayed empty for ``offsets_retention_minutes``
        (the upkeep task, every ``offsets_retention_check_interval_ms``)."""
        if self._coordinator is not None:
            self._coordinator.expire_offsets(wall_ms(), self.broker.config.offsets_retention_minutes * 60_000)

    def commit(self, group_id: str, member_id: str | None, member_epoch: int, offsets: list[OffsetCommit]) -> None:
        for commit in offsets:
            self.broker.partition_state(commit.topic, commit.partition)  # 404 for an unknown topic or partition
        self.coordinator().commit(group_id, member_id, member_epoch, offsets, wall_ms())
        self.commits[group_id] = self.commits.get(group_id, 0) + 1

    def committed(self, group_id: str) -> list[CommittedOffset]:
        coordinator = self._coordinator
        return coordinator.committed(group_id) if coordinator is not None else []

    def group(self, group_id: str) -> ConsumerGroup | None:
        coordinator = self._coordinator
        return coordinator.group(group_id) if coordinator is not None else None

    def group_ids(self) -> list[str]:
        coordinator = self._coordinator
        return coordinator.group_ids() if coordinator is not None else []

    def delete(self, group_id: str) -> None:
        """Delete an empty group and its offsets; ``GROUP_ID_NOT_FOUND`` when there is none."""
        coordinator = self._coordinator
        if coordinator is None or coordinator.group(group_id) is None:
            raise ApiError(ErrorCode.GROUP_ID_NOT_FOUND, f"group {group_id!r} does not exist")
        coordinator.delete_group(group_id)
        self.commits.pop(group_id, None)
        log.info("event=group_deleted group=%s", group_id)

    async def reset(
        self, group_id: str, target: ResetTarget, topics: Mapping[str, Iterable[int] | None] | None
    ) -> list[CommittedOffset]:
        """Move committed offsets of an empty group to ``target``; ``topics`` None = what it has committed.

        ``topics`` maps a topic to the partitions to reset (None: all of them).
        """
        offsets = await self.plan_reset(group_id, target, topics)
        self.coordinator().reset_offsets(group_id, offsets, wall_ms())
        log.info("event=group_offsets_reset group=%s partitions=%d", group_id, len(offsets))
        wanted = set(offsets)
        return [c for c in self.committed(group_id) if (c.topic, c.partition) in wanted]

    async def plan_reset(
        self, group_id: str, target: ResetTarget, topics: Mapping[str, Iterable[int] | None] | None
    ) -> dict[TopicPartition, int]:
        """What :meth:`reset` would commit, with the same checks, writing nothing (its dry run)."""
        group = self.group(group_id)
        if group is not None and group.members:
            raise ApiError(
                ErrorCode.NON_EMPTY_GROUP, f"group {group_id!r} has active members; stop them before a reset"
            )
        if topics is None:
            partitions = [(c.topic, c.partition) for c in self.committed(group_id)]
            if not partitions:
                if group is None:
                    raise ApiError(ErrorCode.GROUP_ID_NOT_FOUND, f"group {group_id!r} does not exist")
                raise ApiError(
                    ErrorCode.INVALID_REQUEST, f"group {group_id!r} has no committed offsets; name the topics to reset"
                )
        else:
            partitions = self._expand(topics)
        return {tp: await self.resolve(tp, target) for tp in partitions}

    def _expand(self, topics: Mapping[str, Iterable[int] | None]) -> list[TopicPartition]:
        partitions: list[TopicPartition] = []
        for topic, indexes in topics.items():
            count = len(self.broker.topic_info(topic).partitions)
            chosen = range(count) if indexes is None else indexes
            for index in chosen:
                self.broker.partition_state(topic, index)  # 404 for a partition out of range
                partitions.append((topic, index))
        return partitions

    async def resolve(self, tp: TopicPartition, target: ResetTarget) -> int:
        """The offset ``target`` means on one partition, within ``log_start_offset..high_watermark``
        (asked of the partition's leader when that is another broker)."""
        routed = self.broker.route(*tp)
        kind, value = target
        if isinstance(routed, RemoteLeader):
            start = await self._remote_offset(routed, tp, "earliest")
            end = await self._remote_offset(routed, tp, "latest")
            found_at = await self._remote_offset(routed, tp, str(value)) if kind == "timestamp" else end
        else:
            start, end = routed.log_start_offset, list_offset(routed, LATEST).offset  # KIP-207: never back
            found = routed.log.offset_for_timestamp(value) if kind == "timestamp" else None
            found_at = end if found is None else found[0]
        if kind == "earliest":
            return start
        if kind == "latest":
            return end
        if kind == "offset":
            return min(max(value, start), end)
        return min(max(found_at, start), end)

    async def _remote_offset(self, leader: RemoteLeader, tp: TopicPartition, at: str) -> int:
        try:
            data = await self.broker.forwarder.get_json(
                leader.url, f"/v1/topics/{tp[0]}/partitions/{tp[1]}/offsets?at={at}", timeout_s=5
            )
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(
                ErrorCode.BROKER_NOT_AVAILABLE, f"the leader of {tp[0]}-{tp[1]} did not answer: {exc}"
            ) from None
        return int(data["offset"])

    async def remote_summaries(self) -> list[dict[str, object]]:
        """The groups other brokers coordinate (``GET /v1/groups`` on each, marked as forwarded)."""
        broker = self.broker
        metadata = broker.replica_manager.metadata
        if metadata is None or not broker.has_topic(OFFSETS_TOPIC):
            return []
        others = [b for b in metadata.brokers.values() if b.broker_id != broker.meta.broker_id and not b.fenced]

        async def ask(url: str) -> list[dict[str, object]]:
            try:
                data = await broker.forwarder.get_json(url, "/v1/groups", timeout_s=2)
            except (httpx.HTTPError, ValueError):
                return []
            return list(data.get("groups", []))

        found: list[dict[str, object]] = []
        for answer in await asyncio.gather(*(ask(other.url) for other in others)):
            found.extend(answer)
        return found

    # -- lag -----------------------------------------------------------------------------------------
    def high_watermark(self, topic: str, partition: int) -> int | None:
        """What a consumer of ``topic``/``partition`` can read up to; None if it does not exist (any more), or
        while a new leader does not know it yet (KIP-207: never a value below one shown before)."""
        replica = self.broker.local_replica(topic, partition)
        if replica is None or not replica.is_leader:
            return None  # led elsewhere: this broker's copy may be behind
        return replica.visible_high_watermark

    async def log_end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """What a consumer can read up to on each partition, wherever it is led: the local leader's high
        watermark, or asked of the leader; None where there is no leader or it did not answer."""

        async def one(tp: TopicPartition) -> int | None:
            try:
                routed = self.broker.route(*tp)
                if isinstance(routed, RemoteLeader):
                    return await self._remote_offset(routed, tp, "latest")
                return routed.high_watermark
            except ApiError:
                return None

        wanted = list(partitions)
        return dict(zip(wanted, await asyncio.gather(*(one(tp) for tp in wanted)), strict=True))

    def stats(self) -> Iterator[GroupStats]:
        """Every group for /metrics; lag is computed here, at scrape time, from in-memory offsets."""
        coordinator = self._coordinator
        if coordinator is None:
            return
        for group_id in coordinator.group_ids():
            group = coordinator.group(group_id)
            if group is None:
                continue
            lag = []
            offsets = coordinator.committed(group_id)
            for committed in offsets:
                end = self.high_watermark(committed.topic, committed.partition)
                if end is not None:
                    lag.append((committed.topic, committed.partition, end - committed.offset))
            yield GroupStats(
                group_id,
                len(group.members),
                group.epoch,
                group.rebalances,
                self.commits.get(group_id, 0),
                lag,
                [(c.topic, c.partition, c.offset) for c in offsets],
            )

    def forget_topic(self, topic: str) -> None:
        """A deleted topic's committed offsets go too (tombstones), so a new topic of that name starts clean."""
        if self._coordinator is not None:
            self._coordinator.forget_topic(topic)
