"""The group coordinator: every consumer group whose offsets partition this broker holds.

A group lives in partition ``murmur2(group) % N`` of ``__consumer_offsets``; its coordinator is the
leader of that partition (with replication, coordination moves with leadership: load the partition on
becoming leader, drop it on losing it). Membership changes and commits are written to the partition's
:class:`GroupStore` before they are answered, so a restart replays exactly what clients were told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gafka.partitioner import partition_for_key
from gafka_broker.groups.assignors import TopicPartition
from gafka_broker.groups.group import (
    ConsumerGroup,
    GroupError,
    GroupErrorCode,
    HeartbeatRequest,
    HeartbeatResponse,
    Member,
)
from gafka_broker.groups.store import GroupStore, StoreKey, group_key, offset_key

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int
    metadata: str
    commit_timestamp: int


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class CoordinatorSettings:
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    rebalance_timeout_ms: int = 300_000


class GroupCoordinator:
    """Groups and committed offsets in memory, every change written through to the store first."""

    def __init__(
        self,
        store_for: Callable[[int], GroupStore],
        partitions: int,
        settings: CoordinatorSettings | None = None,
    ) -> None:
        self._store_for = store_for
        self.partitions = partitions
        self.settings = settings or CoordinatorSettings()
        self._groups: dict[str, ConsumerGroup] = {}
        self._offsets: dict[str, dict[TopicPartition, CommittedOffset]] = {}
        self._persisted: dict[str, dict[str, Any]] = {}
        self._loaded: set[int] = set()
        self._empty_since: dict[str, int] = {}
        """Wall-clock time each group was first seen without members (offsets retention counts from it)."""

    # -- loading -------------------------------------------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return partition_for_key(group_id.encode(), self.partitions)

    def _store(self, group_id: str) -> GroupStore:
        partition = self.partition_for(group_id)
        store = self._store_for(partition)
        if partition not in self._loaded:
            self._load(partition, store)
        return store

    def load_all(self, now_ms: int) -> None:
        """Replay every offsets partition (start-up)."""
        for partition in range(self.partitions):
            if partition not in self._loaded:
                self._load(partition, self._store_for(partition), now_ms)

    def load(self, partition: int, now_ms: int) -> None:
        """(Re)load one offsets partition from its log: this broker now leads it, so it coordinates its groups."""
        self.unload(partition)
        self._load(partition, self._store_for(partition), now_ms)

    def unload(self, partition: int) -> None:
        """Forget the groups of one offsets partition: another broker leads it now."""
        for group_id in [g for g in {*self._groups, *self._offsets} if self.partition_for(g) == partition]:
            self._groups.pop(group_id, None)
            self._offsets.pop(group_id, None)
            self._persisted.pop(group_id, None)
            self._empty_since.pop(group_id, None)
        self._loaded.discard(partition)

    def _load(self, partition: int, store: GroupStore, now_ms: int = 0) -> None:
        live = store.load()
        for key, value in live.items():
            if key[0] == "group":
                group = self._group_from_record(key[1], value, now_ms)
                self._groups[group.group_id] = group
                self._persisted[group.group_id] = value
            else:
                _, group_id, topic, index = key
                self._offsets.setdefault(group_id, {})[(topic, index)] = CommittedOffset(
                    topic, index, int(value["offset"]), str(value.get("metadata", "")), int(value["commit_timestamp"])
                )
        self._loaded.add(partition)
        logger.debug("event=group_partition_loaded partition=%d records=%d", partition, len(live))

    # -- membership ----------------------------------------------------------------------------------
    def heartbeat(
        self,
        group_id: str,
        request: HeartbeatRequest,
        now_ms: int,
        partition_counts: Mapping[str, int],
        *,
        assignor: str | None = None,
    ) -> HeartbeatResponse:
        store = self._store(group_id)
        group = self._groups.get(group_id)
        if group is None:
            if request.member_epoch != 0:
                raise GroupError(
                    GroupErrorCode.UNKNOWN_MEMBER_ID, f"group {group_id!r} has no member {request.member_id!r}"
                )
            group = self._new_group(group_id)
        if assignor is not None and assignor != group.assignor:
            if group.members:
                raise GroupError(
                    GroupErrorCode.INVALID_REQUEST,
                    f"group {group_id!r} uses assignor {group.assignor!r}; change it only while the group is empty",
                )
            group.set_assignor(assignor)
        response = group.heartbeat(request, now_ms, partition_counts)
        self._groups[group_id] = group
        self._persist(store, group)
        return response

    def _new_group(self, group_id: str) -> ConsumerGroup:
        return ConsumerGroup(
            group_id,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            default_rebalance_timeout_ms=self.settings.rebalance_timeout_ms,
        )

    def expire(self, now_ms: int) -> dict[str, list[str]]:
        """Remove members whose session or rebalance timeout passed; returns group -> removed members."""
        removed: dict[str, list[str]] = {}
        for group_id, group in list(self._groups.items()):
            expired = group.expire(now_ms)
            if expired:
                removed[group_id] = expired
                self._persist(self._store(group_id), group)
                logger.info("event=members_expired group=%s members=%s", group_id, ",".join(expired))
        return removed

    def expire_offsets(self, now_ms: int, retention_ms: int) -> dict[str, int]:
        """Kafka's ``offsets.retention.minutes`` (KIP-211): once a group has had no members for
        ``retention_ms``, each committed offset older than that goes (a tombstone); a group left with
        no offsets is deleted. Groups with members keep everything. Returns group -> offsets removed.

        The empty time is observed by these checks (and restarts at a reload), so an offset lives at
        least ``retention_ms`` after its group emptied, never less."""
        removed: dict[str, int] = {}
        for group_id in sorted({*self._groups, *self._offsets}):
            group = self._groups.get(group_id)
            if group is not None and group.members:
                self._empty_since.pop(group_id, None)
                continue
            since = self._empty_since.setdefault(group_id, now_ms)
            if now_ms - since < retention_ms:
                continue
            stored = self._offsets.get(group_id, {})
            doomed = [tp for tp, c in stored.items() if now_ms - c.commit_timestamp >= retention_ms]
            entries: list[tuple[StoreKey, dict[str, Any] | None]] = [(offset_key(group_id, *tp), None) for tp in doomed]
            gone = len(doomed) == len(stored)
            if gone:
                entries.append((group_key(group_id), None))
            if not entries:
                continue
            self._store(group_id).write(entries)
            for tp in doomed:
                del stored[tp]
            if gone:
                self._groups.pop(group_id, None)
                self._offsets.pop(group_id, None)
                self._persisted.pop(group_id, None)
                self._empty_since.pop(group_id, None)
            removed[group_id] = len(doomed)
            logger.info("event=offsets_expired group=%s offsets=%d group_deleted=%s", group_id, len(doomed), gone)
        return removed

    # -- offsets -------------------------------------------------------------------------------------
    def commit(
        self, group_id: str, member_id: str | None, member_epoch: int, offsets: Iterable[OffsetCommit], now_ms: int
    ) -> None:
        commits = list(offsets)
        for commit in commits:
            if commit.offset < 0:
                raise GroupError(GroupErrorCode.INVALID_REQUEST, f"offset {commit.offset} is negative")
            if len(commit.metadata.encode()) > MAX_METADATA_BYTES:
                raise GroupError(
                    GroupErrorCode.INVALID_REQUEST, f"offset metadata is longer than {MAX_METADATA_BYTES} bytes"
                )
        store = self._store(group_id)
        group = self._groups.get(group_id)
        if group is None:
            if member_id:
                raise GroupError(GroupErrorCode.UNKNOWN_MEMBER_ID, f"group {group_id!r} has no member {member_id!r}")
            group = self._new_group(group_id)
        group.check_commit(member_id, member_epoch, [(c.topic, c.partition) for c in commits])
        entries: list[tuple[StoreKey, dict[str, Any] | None]] = [
            (
                offset_key(group_id, c.topic, c.partition),
                {"offset": c.offset, "metadata": c.metadata, "commit_timestamp": now_ms},
            )
            for c in commits
        ]
        if group_id not in self._groups:
            self._groups[group_id] = group
            entries.append((group_key(group_id), _group_record(group)))
        store.write(entries)
        if group_id not in self._persisted:
            self._persisted[group_id] = _group_record(group)
        stored = self._offsets.setdefault(group_id, {})
        for c in commits:
            stored[(c.topic, c.partition)] = CommittedOffset(c.topic, c.partition, c.offset, c.metadata, now_ms)

    def committed(self, group_id: str) -> list[CommittedOffset]:
        self._store(group_id)
        return sorted(self._offsets.get(group_id, {}).values(), key=lambda c: (c.topic, c.partition))

    def reset_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int], now_ms: int) -> None:
        """Set committed offsets by hand; only while the group has no members (Kafka's rule)."""
        group = self.group(group_id)
        if group is not None and group.members:
            raise GroupError(
                GroupErrorCode.NON_EMPTY_GROUP, f"group {group_id!r} has active members; stop them before a reset"
            )
        self.commit(
            group_id,
            None,
            -1,
            [OffsetCommit(topic, index, offset) for (topic, index), offset in offsets.items()],
            now_ms,
        )

    def forget_topic(self, topic: str) -> None:
        """Drop committed offsets of a deleted topic (tombstones, so they stay gone after a restart)."""
        for group_id, stored in list(self._offsets.items()):
            doomed = [tp for tp in stored if tp[0] == topic]
            if doomed:
                self._store(group_id).write([(offset_key(group_id, *tp), None) for tp in doomed])
                for tp in doomed:
                    del stored[tp]

    # -- admin ---------------------------------------------------------------------------------------
    def group(self, group_id: str) -> ConsumerGroup | None:
        self._store(group_id)
        return self._groups.get(group_id)

    def group_ids(self) -> list[str]:
        return sorted(self._groups)

    def delete_group(self, group_id: str) -> None:
        group = self.group(group_id)
        if group is None:
            raise KeyError(group_id)
        if group.members:
            raise GroupError(GroupErrorCode.NON_EMPTY_GROUP, f"group {group_id!r} has active members")
        entries: list[tuple[StoreKey, dict[str, Any] | None]] = [
            (offset_key(group_id, *tp), None) for tp in self._offsets.get(group_id, {})
        ]
        entries.append((group_key(group_id), None))
        self._store(group_id).write(entries)
        self._groups.pop(group_id, None)
        self._offsets.pop(group_id, None)
        self._persisted.pop(group_id, None)

    # -- persistence ---------------------------------------------------------------------------------
    def _persist(self, store: GroupStore, group: ConsumerGroup) -> None:
        record = _group_record(group)
        if self._persisted.get(group.group_id) != record:
            store.write([(group_key(group.group_id), record)])
            self._persisted[group.group_id] = record

    def _group_from_record(self, group_id: str, record: Mapping[str, Any], now_ms: int) -> ConsumerGroup:
        group = self._new_group(group_id)
        group.assignor = record["assignor"]
        group.epoch = record["epoch"]
        group.assignment_epoch = record["assignment_epoch"]
        group.partition_counts = dict(record["partition_counts"])
        group.target = {member: {(t, p) for t, p in tps} for member, tps in record["target"].items()}
        for data in record["members"]:
            member = Member(
                member_id=data["member_id"],
                instance_id=data["instance_id"],
                subscriptions=frozenset(data["subscriptions"]),
                rebalance_timeout_ms=data["rebalance_timeout_ms"],
                session_timeout_ms=data["session_timeout_ms"],
                last_heartbeat_ms=now_ms,  # a restart gives every member a fresh session
                epoch=data["epoch"],
                previous_epoch=data.get("previous_epoch", -1),
                owned={(t, p) for t, p in data["owned"]},
                revoking={(t, p) for t, p in data["revoking"]},
                revoking_since_ms=now_ms if data["revoking"] else None,
            )
            group.members[member.member_id] = member
        return group


def _group_record(group: ConsumerGroup) -> dict[str, Any]:
    """What survives a restart: everything but liveness timestamps."""
    return {
        "assignor": group.assignor,
        "epoch": group.epoch,
        "assignment_epoch": group.assignment_epoch,
        "partition_counts": dict(sorted(group.partition_counts.items())),
        "target": {member: _pairs(tps) for member, tps in sorted(group.target.items())},
        "members": [
            {
                "member_id": member.member_id,
                "instance_id": member.instance_id,
                "subscriptions": sorted(member.subscriptions),
                "rebalance_timeout_ms": member.rebalance_timeout_ms,
                "session_timeout_ms": member.session_timeout_ms,
                "epoch": member.epoch,
                "previous_epoch": member.previous_epoch,
                "owned": _pairs(member.owned),
                "revoking": _pairs(member.revoking),
            }
            for member in sorted(group.members.values(), key=lambda m: m.member_id)
        ],
    }


def _pairs(partitions: Iterable[TopicPartition]) -> list[list[Any]]:
    """Partitions as JSON-shaped ``[topic, partition]`` lists, sorted, so records compare equal after a reload."""
    return [[topic, partition] for topic, partition in sorted(partitions)]
