"""Kafka's classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup): the members assign.

The coordinator only keeps the barrier: a rebalance collects every member's JoinGroup (or gives up on a
member after the rebalance timeout), picks the protocol all members support, makes the first member to
join the leader and hands it everyone's subscription metadata; the leader's SyncGroup carries every
member's assignment, which the others receive from their own SyncGroup. Assignments are opaque bytes
(eager and cooperative-sticky rebalancing are both the clients' business). Members missing heartbeats
for their session timeout are removed, which starts a rebalance. Static members (``group.instance.id``)
keep their place across restarts: a rejoin with the same instance id replaces the old member id without
a rebalance unless the leader returns.

Membership lives in the coordinator's memory; committed offsets go to ``__consumer_offsets`` like every
group's. When the coordinator moves, members are told NOT_COORDINATOR / UNKNOWN_MEMBER_ID and rejoin.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["ClassicError", "ClassicGroup", "ClassicGroups", "ClassicState", "JoinRequest", "JoinResult"]

log = logging.getLogger("gafka.broker.groups.classic")

INITIAL_REBALANCE_DELAY_MS = 300
"""Kafka's group.initial.rebalance.delay.ms (3 s there): a new group waits this long for more members."""


class ClassicState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class ClassicError(Exception):
    """A refusal under Kafka's error name (``code``), e.g. ILLEGAL_GENERATION."""

    def __init__(self, code: str, message: str, member_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.member_id = member_id


@dataclass(frozen=True)
class JoinResult:
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader: str
    member_id: str
    members: tuple[tuple[str, str | None, bytes], ...]
    """(member id, instance id, metadata) of every member, for the leader only."""


@dataclass(frozen=True)
class JoinRequest:
    """A JoinGroup's plain values."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int


@dataclass
class ClassicMember:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    last_heartbeat_ms: int
    assignment: bytes = b""
    in_generation: bool = False
    """Part of the group's current generation (a member that only learnt its id is not yet)."""
    joining: asyncio.Future[JoinResult] | None = None
    syncing: asyncio.Future[bytes] | None = None

    def metadata_for(self, protocol: str) -> bytes:
        return next((metadata for name, metadata in self.protocols if name == protocol), b"")


@dataclass
class ClassicGroup:
    group_id: str
    now: Callable[[], int]
    state: ClassicState = ClassicState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str | None = None
    members: dict[str, ClassicMember] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)
    """Instance id -> member id of the static members."""
    _rebalance: asyncio.TimerHandle | None = None

    # -- joining -------------------------------------------------------------------------------------
    async def join(self, request: JoinRequest, *, require_known_member_id: bool) -> JoinResult:
        if not request.protocols:
            raise ClassicError("INCONSISTENT_GROUP_PROTOCOL", "the member offers no assignment protocol")
        if self.members and (
            request.protocol_type != self.protocol_type
            or not self._common_protocols({name for name, _ in request.protocols})
        ):
            raise ClassicError(
                "INCONSISTENT_GROUP_PROTOCOL", f"group {self.group_id!r} members speak other assignment protocols"
            )
        if request.instance_id is not None and request.instance_id in self.static:
            return await self._static_rejoin(request, request.instance_id)
        member_id = request.member_id
        if member_id and member_id not in self.members:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {self.group_id!r} has no member {member_id!r}")
        if not member_id:
            member_id = self._new_member_id(request)
            if require_known_member_id and request.instance_id is None:
                # KIP-394: the member learns its id first and joins again with it.
                self._add(self._new_member(request, member_id))
                raise ClassicError("MEMBER_ID_REQUIRED", "join again with the member id given", member_id)
        member = self.members.get(member_id)
        if member is None:
            member = self._add(self._new_member(request, member_id))
        else:
            changed = request.protocols != member.protocols
            member.protocols = request.protocols
            member.session_timeout_ms = request.session_timeout_ms
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
            member.last_heartbeat_ms = self.now()
            if self.state is ClassicState.STABLE and not changed and member.in_generation and member_id != self.leader:
                # A follower rejoining without changes (e.g. after a lost answer): nothing to rebalance.
                return self._result_for(member)
        return await self._rebalance_with(member)

    @staticmethod
    def _new_member_id(request: JoinRequest) -> str:
        return f"{request.client_id or 'member'}-{uuid.uuid4()}"

    def _new_member(self, request: JoinRequest, member_id: str) -> ClassicMember:
        return ClassicMember(
            member_id,
            request.instance_id,
            request.client_id,
            request.client_host,
            request.protocol_type,
            request.protocols,
            request.session_timeout_ms,
            request.rebalance_timeout_ms,
            self.now(),
        )

    def _add(self, member: ClassicMember) -> ClassicMember:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static[member.instance_id] = member.member_id
        if self.protocol_type is None or len(self.members) == 1:
            self.protocol_type = member.protocol_type
        return member

    async def _rebalance_with(self, member: ClassicMember) -> JoinResult:
        """Wait in the join barrier (starting a rebalance if none runs) until the generation completes."""
        if member.joining is not None and not member.joining.done():
            member.joining.cancel()
        member.joining = asyncio.get_running_loop().create_future()
        self._prepare_rebalance()
        self._maybe_complete_join()
        return await asyncio.shield(member.joining)

    async def _static_rejoin(self, request: JoinRequest, instance_id: str) -> JoinResult:
        old_id = self.static[instance_id]
        if request.member_id and request.member_id != old_id:
            raise ClassicError("FENCED_INSTANCE_ID", f"instance {instance_id!r} is now member {old_id!r}")
        old = self.members.pop(old_id)
        member = self._add(self._new_member(request, request.member_id or self._new_member_id(request)))
        member.assignment, member.in_generation = old.assignment, old.in_generation
        for waiting in (old.joining, old.syncing):
            if waiting is not None and not waiting.done():
                waiting.set_exception(ClassicError("FENCED_INSTANCE_ID", "replaced by a newer instance"))
        was_leader = self.leader == old_id
        if was_leader:
            self.leader = member.member_id
        if self.state is ClassicState.STABLE and not was_leader and request.protocols == old.protocols:
            log.info(
                "event=static_member_replaced group=%s instance=%s member=%s",
                self.group_id,
                instance_id,
                member.member_id,
            )
            return self._result_for(member)
        return await self._rebalance_with(member)

    def _common_protocols(self, offered: set[str] | None = None) -> list[str]:
        """Protocols every member (and the newcomer's ``offered``) supports, in the first member's order."""
        members = list(self.members.values())
        if not members:
            return sorted(offered or ())
        common = [name for name, _ in members[0].protocols]
        for member in members[1:]:
            names = {name for name, _ in member.protocols}
            common = [name for name in common if name in names]
        if offered is not None:
            common = [name for name in common if name in offered]
        return common

    def _prepare_rebalance(self) -> None:
        if self.state is ClassicState.PREPARING_REBALANCE:
            return
        for member in self.members.values():  # a rebalance ends every pending sync
            if member.syncing is not None and not member.syncing.done():
                member.syncing.set_exception(ClassicError("REBALANCE_IN_PROGRESS", "the group is rebalancing"))
        first = self.state is ClassicState.EMPTY
        self.state = ClassicState.PREPARING_REBALANCE
        timeout_ms = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        delay_ms = min(INITIAL_REBALANCE_DELAY_MS, timeout_ms) if first else timeout_ms
        if self._rebalance is not None:
            self._rebalance.cancel()
        self._rebalance = asyncio.get_running_loop().call_later(delay_ms / 1000, self._rebalance_due, first)
        log.info("event=rebalance_started group=%s members=%d", self.group_id, len(self.members))

    def _rebalance_due(self, initial: bool) -> None:
        """The rebalance timeout passed (or the initial delay): members that did not rejoin are out."""
        self._rebalance = None
        if self.state is not ClassicState.PREPARING_REBALANCE:
            return
        if initial:
            waiting = [m for m in self.members.values() if m.joining is None or m.joining.done()]
            if waiting:  # members still expected: give them the rest of the rebalance timeout
                timeout_ms = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
                self._rebalance = asyncio.get_running_loop().call_later(
                    max(timeout_ms - INITIAL_REBALANCE_DELAY_MS, 0) / 1000, self._rebalance_due, False
                )
                return
        for member in [m for m in self.members.values() if m.joining is None or m.joining.done()]:
            self._remove(member.member_id, "rebalance_timeout")
        self._complete_join()

    def _maybe_complete_join(self) -> None:
        if self.state is not ClassicState.PREPARING_REBALANCE:
            return
        if self._rebalance is not None and self.generation_id == 0 and len(self.members) == 1:
            return  # a brand-new group waits out the initial delay for its other members
        if all(m.joining is not None and not m.joining.done() for m in self.members.values()):
            self._complete_join()

    def _complete_join(self) -> None:
        if self._rebalance is not None:
            self._rebalance.cancel()
            self._rebalance = None
        if not self.members:
            self._empty()
            return
        self.generation_id += 1
        common = self._common_protocols()
        self.protocol_name = common[0] if common else None
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        self.state = ClassicState.COMPLETING_REBALANCE
        log.info(
            "event=rebalance_completed group=%s generation=%d members=%d protocol=%s",
            self.group_id,
            self.generation_id,
            len(self.members),
            self.protocol_name,
        )
        for member in self.members.values():
            member.in_generation = True
            if member.joining is not None and not member.joining.done():
                member.joining.set_result(self._result_for(member))

    def _result_for(self, member: ClassicMember) -> JoinResult:
        is_leader = member.member_id == self.leader
        protocol = self.protocol_name or ""
        return JoinResult(
            self.generation_id,
            self.protocol_type,
            self.protocol_name,
            self.leader or "",
            member.member_id,
            tuple((m.member_id, m.instance_id, m.metadata_for(protocol)) for m in self.members.values())
            if is_leader
            else (),
        )

    # -- syncing, heartbeats, leaving ----------------------------------------------------------------
    def _member(self, member_id: str, generation_id: int) -> ClassicMember:
        member = self.members.get(member_id)
        if member is None:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {self.group_id!r} has no member {member_id!r}")
        if generation_id != self.generation_id:
            raise ClassicError(
                "ILLEGAL_GENERATION", f"generation {generation_id} is not the group's ({self.generation_id})"
            )
        return member

    async def sync(self, member_id: str, generation_id: int, assignments: dict[str, bytes]) -> bytes:
        member = self._member(member_id, generation_id)
        member.last_heartbeat_ms = self.now()
        if self.state is ClassicState.PREPARING_REBALANCE:
            raise ClassicError("REBALANCE_IN_PROGRESS", "the group is rebalancing; join again")
        if self.state is ClassicState.STABLE:
            return member.assignment
        if member_id == self.leader:
            for other in self.members.values():
                other.assignment = assignments.get(other.member_id, b"")
            self.state = ClassicState.STABLE
            for other in self.members.values():
                if other.syncing is not None and not other.syncing.done():
                    other.syncing.set_result(other.assignment)
            return member.assignment
        member.syncing = asyncio.get_running_loop().create_future()
        return await asyncio.shield(member.syncing)

    def heartbeat(self, member_id: str, generation_id: int) -> None:
        member = self.members.get(member_id)
        if member is None:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {self.group_id!r} has no member {member_id!r}")
        member.last_heartbeat_ms = self.now()
        if self.state is ClassicState.PREPARING_REBALANCE:
            raise ClassicError("REBALANCE_IN_PROGRESS", "the group is rebalancing; join again")
        if generation_id != self.generation_id:
            raise ClassicError(
                "ILLEGAL_GENERATION", f"generation {generation_id} is not the group's ({self.generation_id})"
            )

    def leave(self, member_id: str, instance_id: str | None) -> None:
        if instance_id is not None and instance_id in self.static:
            known = self.static[instance_id]
            if member_id and member_id != known:
                raise ClassicError("FENCED_INSTANCE_ID", f"instance {instance_id!r} is member {known!r}")
            member_id = known
        if member_id not in self.members:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {self.group_id!r} has no member {member_id!r}")
        self._remove(member_id, "left")
        self._after_removal()

    def check_commit(self, member_id: str, generation_id: int) -> None:
        """Offsets from a member of this generation; a standalone commit (-1, no member) only while empty."""
        if generation_id < 0 and not member_id:
            if self.members:
                raise ClassicError("UNKNOWN_MEMBER_ID", f"group {self.group_id!r} has members; commit as one")
            return
        self._member(member_id, generation_id)
        if self.state is ClassicState.PREPARING_REBALANCE:
            raise ClassicError("REBALANCE_IN_PROGRESS", "the group is rebalancing; join again")

    def expire(self, now_ms: int) -> list[str]:
        """Remove members silent past their session timeout (those waiting in a join are alive)."""
        expired = [
            m.member_id
            for m in self.members.values()
            if (m.joining is None or m.joining.done())
            and (m.syncing is None or m.syncing.done())
            and now_ms - m.last_heartbeat_ms > m.session_timeout_ms
        ]
        for member_id in expired:
            self._remove(member_id, "session_timeout")
        if expired:
            self._after_removal()
        return expired

    def _remove(self, member_id: str, reason: str) -> None:
        member = self.members.pop(member_id)
        if member.instance_id is not None and self.static.get(member.instance_id) == member_id:
            del self.static[member.instance_id]
        for waiting in (member.joining, member.syncing):
            if waiting is not None and not waiting.done():
                waiting.set_exception(ClassicError("UNKNOWN_MEMBER_ID", f"member removed ({reason})"))
        log.info("event=member_removed group=%s member=%s reason=%s", self.group_id, member_id, reason)

    def _after_removal(self) -> None:
        if not self.members:
            self._empty()
        elif self.state is ClassicState.PREPARING_REBALANCE:
            self._maybe_complete_join()
        else:
            self._prepare_rebalance()

    def _empty(self) -> None:
        if self._rebalance is not None:
            self._rebalance.cancel()
            self._rebalance = None
        self.state = ClassicState.EMPTY
        self.leader = None
        self.protocol_name = None


class ClassicGroups:
    """The classic groups this coordinator holds, by group id."""

    def __init__(self, now: Callable[[], int]) -> None:
        self.now = now
        self.groups: dict[str, ClassicGroup] = {}

    def get(self, group_id: str) -> ClassicGroup | None:
        return self.groups.get(group_id)

    def get_or_create(self, group_id: str) -> ClassicGroup:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = ClassicGroup(group_id, self.now)
        return group

    def expire(self, now_ms: int) -> None:
        for group_id, group in list(self.groups.items()):
            group.expire(now_ms)
            if group.state is ClassicState.EMPTY and not group.members:
                del self.groups[group_id]

    def forget(self, group_id: str) -> None:
        self.groups.pop(group_id, None)
