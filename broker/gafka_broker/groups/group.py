"""A consumer group under KIP-848's rules: the broker assigns, members heartbeat, nobody waits on anybody.

Three epochs drive it. The *group epoch* moves whenever membership, subscriptions or partition counts
change; the *assignment epoch* says which group epoch the target assignment was computed for; each
member's *member epoch* says which target it has caught up with. A member moving to a new target first
gives up what it must lose (revocation), and only then receives what it gains, and a partition is handed
out only once no other member holds it, so two members never own one partition at the same time.

Pure logic: time comes in as ``now_ms``; persistence and HTTP live elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gafka_broker.groups.assignors import ASSIGNORS, DEFAULT_ASSIGNOR, TopicPartition

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class GroupErrorCode(StrEnum):
    UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
    FENCED_MEMBER_EPOCH = "FENCED_MEMBER_EPOCH"
    STALE_MEMBER_EPOCH = "STALE_MEMBER_EPOCH"
    UNRELEASED_INSTANCE_ID = "UNRELEASED_INSTANCE_ID"
    INVALID_REQUEST = "INVALID_REQUEST"
    NON_EMPTY_GROUP = "NON_EMPTY_GROUP"
    UNSUPPORTED_ASSIGNOR = "UNSUPPORTED_ASSIGNOR"


class GroupError(Exception):
    """A heartbeat or commit the group refuses; ``code`` is Kafka's name for the reason."""

    def __init__(self, code: GroupErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GroupState(StrEnum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"


@dataclass
class Member:
    member_id: str
    instance_id: str | None
    subscriptions: frozenset[str]
    rebalance_timeout_ms: int
    session_timeout_ms: int
    last_heartbeat_ms: int
    epoch: int = 0
    previous_epoch: int = -1
    """The epoch before the last bump: a member whose answer was lost comes back with it (accepted, as Kafka does,
    when what it reports owning is a subset of what it owns now)."""
    owned: set[TopicPartition] = field(default_factory=set)
    revoking: set[TopicPartition] = field(default_factory=set)
    revoking_since_ms: int | None = None
    left_temporarily: bool = False

    @property
    def held(self) -> set[TopicPartition]:
        """Everything this member may still be reading: owned plus not yet released."""
        return self.owned | self.revoking


@dataclass(frozen=True)
class HeartbeatRequest:
    member_id: str | None
    member_epoch: int
    topics: frozenset[str] | None = None
    instance_id: str | None = None
    rebalance_timeout_ms: int | None = None
    owned: frozenset[TopicPartition] | None = None
    """Partitions the member still holds (KIP-848's TopicPartitions); None: not reported."""


@dataclass(frozen=True)
class HeartbeatResponse:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: frozenset[TopicPartition]


@dataclass
class ConsumerGroup:
    """One group's members, target assignment and epochs."""

    group_id: str
    assignor: str = DEFAULT_ASSIGNOR
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    default_rebalance_timeout_ms: int = 300_000
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    target: dict[str, set[TopicPartition]] = field(default_factory=dict)
    partition_counts: dict[str, int] = field(default_factory=dict)
    rebalances: int = 0

    # -- membership ----------------------------------------------------------------------------------
    def heartbeat(
        self, request: HeartbeatRequest, now_ms: int, partition_counts: Mapping[str, int]
    ) -> HeartbeatResponse:
        """Apply one heartbeat and return what the member may consume now."""
        if request.member_epoch == JOIN_EPOCH:
            member = self._join(request, now_ms)
        else:
            member = self._known_member(request)
            if request.member_epoch == LEAVE_EPOCH:
                self.remove_member(member.member_id)
                return HeartbeatResponse(member.member_id, LEAVE_EPOCH, self.heartbeat_interval_ms, frozenset())
            if request.member_epoch == STATIC_LEAVE_EPOCH:
                if member.instance_id is None:
                    raise GroupError(GroupErrorCode.INVALID_REQUEST, "epoch -2 is for static members only")
                member.left_temporarily = True
                member.last_heartbeat_ms = now_ms
                return HeartbeatResponse(member.member_id, STATIC_LEAVE_EPOCH, self.heartbeat_interval_ms, frozenset())
            if request.member_epoch != member.epoch and not _answer_was_lost(member, request):
                raise GroupError(
                    GroupErrorCode.FENCED_MEMBER_EPOCH,
                    f"member epoch {request.member_epoch} is not the current {member.epoch}; rejoin with epoch 0",
                )
            if request.topics is not None and request.topics != member.subscriptions:
                member.subscriptions = request.topics
                self._bump_epoch()
        member.last_heartbeat_ms = now_ms
        member.left_temporarily = False
        if request.rebalance_timeout_ms is not None:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        self._refresh_partition_counts(partition_counts)
        self._refresh_target()
        self._reconcile(member, request, now_ms)
        return HeartbeatResponse(member.member_id, member.epoch, self.heartbeat_interval_ms, frozenset(member.owned))

    def _join(self, request: HeartbeatRequest, now_ms: int) -> Member:
        if request.topics is None:
            raise GroupError(GroupErrorCode.INVALID_REQUEST, "a joining member must name the topics it subscribes to")
        rebalance_timeout = request.rebalance_timeout_ms or self.default_rebalance_timeout_ms
        if request.instance_id is not None:
            previous = self._static_member(request.instance_id)
            if previous is not None:
                # A restarted static member takes over its predecessor: same partitions, new member id,
                # and the predecessor is fenced (its id is gone). Kafka answers UNRELEASED_INSTANCE_ID
                # unless the predecessor left with epoch -2; gafka lets a crashed member's successor in.
                del self.members[previous.member_id]
                successor = Member(
                    member_id=request.member_id or _new_member_id(),
                    instance_id=request.instance_id,
                    subscriptions=request.topics,
                    rebalance_timeout_ms=rebalance_timeout,
                    session_timeout_ms=self.session_timeout_ms,
                    last_heartbeat_ms=now_ms,
                    epoch=previous.epoch,
                    owned=previous.owned,
                    revoking=previous.revoking,
                    revoking_since_ms=previous.revoking_since_ms,
                )
                self.members[successor.member_id] = successor
                if previous.member_id in self.target:
                    self.target[successor.member_id] = self.target.pop(previous.member_id)
                if successor.subscriptions != previous.subscriptions:
                    self._bump_epoch()
                return successor
        member_id = request.member_id or _new_member_id()
        if member_id in self.members:
            existing = self.members[member_id]
            # a member re-joining after losing its state gives up everything it held
            existing.owned.clear()
            existing.revoking.clear()
            existing.epoch = 0
            existing.subscriptions = request.topics
            self._bump_epoch()
            return existing
        member = Member(
            member_id=member_id,
            instance_id=request.instance_id,
            subscriptions=request.topics,
            rebalance_timeout_ms=rebalance_timeout,
            session_timeout_ms=self.session_timeout_ms,
            last_heartbeat_ms=now_ms,
        )
        self.members[member_id] = member
        self._bump_epoch()
        return member

    def _known_member(self, request: HeartbeatRequest) -> Member:
        member = self.members.get(request.member_id or "")
        if member is None:
            raise GroupError(
                GroupErrorCode.UNKNOWN_MEMBER_ID,
                f"member {request.member_id!r} is not in group {self.group_id!r}; rejoin with epoch 0",
            )
        return member

    def _static_member(self, instance_id: str) -> Member | None:
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def remove_member(self, member_id: str) -> None:
        """Drop a member (leave, expiry, fencing); whatever it held becomes free at once."""
        if self.members.pop(member_id, None) is not None:
            self.target.pop(member_id, None)
            self._bump_epoch()

    def expire(self, now_ms: int) -> list[str]:
        """Remove members whose session ran out or who did not release partitions in time."""
        expired = [
            member.member_id
            for member in self.members.values()
            if now_ms - member.last_heartbeat_ms > member.session_timeout_ms
            or (
                member.revoking_since_ms is not None
                and member.revoking
                and now_ms - member.revoking_since_ms > member.rebalance_timeout_ms
            )
        ]
        for member_id in expired:
            self.remove_member(member_id)
        return expired

    # -- assignment ----------------------------------------------------------------------------------
    def _bump_epoch(self) -> None:
        self.epoch += 1

    def _refresh_partition_counts(self, partition_counts: Mapping[str, int]) -> None:
        subscribed = {topic for member in self.members.values() for topic in member.subscriptions}
        relevant = {topic: count for topic, count in partition_counts.items() if topic in subscribed}
        if relevant != self.partition_counts:
            self.partition_counts = dict(relevant)
            self._bump_epoch()

    def _refresh_target(self) -> None:
        if self.assignment_epoch == self.epoch:
            return
        assignor = ASSIGNORS[self.assignor]
        subscriptions = {member_id: member.subscriptions for member_id, member in self.members.items()}
        self.target = assignor(subscriptions, self.partition_counts, self.target)
        self.assignment_epoch = self.epoch
        self.rebalances += 1

    def _reconcile(self, member: Member, request: HeartbeatRequest, now_ms: int) -> None:
        # 1. a heartbeat after we asked for a revocation acknowledges it (or reports what is still held)
        if member.revoking:
            still_held = member.revoking & request.owned if request.owned is not None else set()
            member.revoking = set(still_held)
            if not member.revoking:
                member.revoking_since_ms = None
        target = self.target.get(member.member_id, set())
        # 2. give up what the new target takes away; the member's epoch waits until that is done
        lost = member.owned - target
        if lost:
            member.owned -= lost
            member.revoking |= lost
            member.revoking_since_ms = now_ms
        if member.revoking:
            return
        # 3. caught up: take the new epoch and every target partition nobody else still holds
        if member.epoch != self.assignment_epoch:
            member.previous_epoch, member.epoch = member.epoch, self.assignment_epoch
        held_by_others = {tp for other in self.members.values() if other is not member for tp in other.held}
        member.owned |= {tp for tp in target if tp not in held_by_others}

    # -- offsets -------------------------------------------------------------------------------------
    def check_commit(self, member_id: str | None, member_epoch: int, partitions: Iterable[TopicPartition]) -> None:
        """Refuse commits from unknown, fenced or stale members, and for partitions the member does not hold.

        A group without members accepts commits that name no member (manual assignment, admin tools).
        """
        if not member_id and member_epoch < 0:
            if self.members:
                raise GroupError(
                    GroupErrorCode.UNKNOWN_MEMBER_ID,
                    f"group {self.group_id!r} has members; commits must come from one of them",
                )
            return
        member = self.members.get(member_id or "")
        if member is None:
            raise GroupError(
                GroupErrorCode.UNKNOWN_MEMBER_ID, f"member {member_id!r} is not in group {self.group_id!r}"
            )
        if member_epoch > member.epoch:
            raise GroupError(
                GroupErrorCode.FENCED_MEMBER_EPOCH,
                f"member epoch {member_epoch} is ahead of the group's {member.epoch}",
            )
        if member_epoch < member.epoch:
            raise GroupError(
                GroupErrorCode.STALE_MEMBER_EPOCH,
                f"member epoch {member_epoch} is older than the current {member.epoch}",
            )
        held = member.held
        foreign = sorted(tp for tp in partitions if tp not in held)
        if foreign:
            names = ", ".join(f"{topic}-{partition}" for topic, partition in foreign)
            raise GroupError(
                GroupErrorCode.STALE_MEMBER_EPOCH, f"member {member_id!r} does not own {names}; heartbeat to refresh"
            )

    # -- views ---------------------------------------------------------------------------------------
    @property
    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        if self.assignment_epoch != self.epoch:
            return GroupState.ASSIGNING
        if any(
            member.epoch != self.assignment_epoch
            or member.revoking
            or member.owned != self.target.get(member_id, set())
            for member_id, member in self.members.items()
        ):
            return GroupState.RECONCILING
        return GroupState.STABLE

    def owners(self) -> dict[TopicPartition, list[str]]:
        """Who holds each partition right now (for invariant checks and describe)."""
        held: dict[TopicPartition, list[str]] = {}
        for member_id, member in self.members.items():
            for tp in member.held:
                held.setdefault(tp, []).append(member_id)
        return held

    def set_assignor(self, name: str) -> None:
        if name not in ASSIGNORS:
            raise GroupError(
                GroupErrorCode.UNSUPPORTED_ASSIGNOR, f"unknown assignor {name!r}; expected one of {sorted(ASSIGNORS)}"
            )
        if name != self.assignor:
            self.assignor = name
            self._bump_epoch()


def _new_member_id() -> str:
    return uuid.uuid4().hex


def _answer_was_lost(member: Member, request: HeartbeatRequest) -> bool:
    """A heartbeat with the member's previous epoch: the answer that moved it on was lost (a timeout, a broken
    connection) and this is the retry. Kafka accepts it when the member reports owning nothing it no longer owns;
    fencing it instead would make it give up and rejoin for nothing."""
    return (
        request.member_epoch == member.previous_epoch
        and request.member_epoch < member.epoch
        and request.owned is not None
        and set(request.owned) <= member.owned
    )
