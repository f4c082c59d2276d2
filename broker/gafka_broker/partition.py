"""One partition replica on this broker: its log, its role (leader or follower) and everything that waits on it.

The leader appends client batches (after the idempotent-producer check), tracks what each follower has
fetched and moves the high watermark to the smallest log end offset of the ISR; a follower appends the
leader's batches as they are and takes the high watermark from the leader. Both keep the leader-epoch
cache and the producer state in step with the log, so either can take over.

Three kinds of waiters park here, each woken by the event it needs, never by a sleep loop:

- consumer fetches, woken when the high watermark passes enough new bytes;
- ``acks=all`` produces, woken when the high watermark passes their last offset (or failed when this
  replica stops leading, or the ISR shrinks below ``min.insync.replicas``);
- follower fetches on the leader, woken by any append.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence

from gafka.protocol.record_batch import BatchHeader, iter_batches, validate_batch
from gafka_broker.log.errors import LogCorruptionError
from gafka_broker.log.metrics import CORRUPT_READS
from gafka_broker.log.partition_log import AppendResult, PartitionLog, ReadResult
from gafka_broker.replication.epoch_cache import LeaderEpochCache
from gafka_broker.replication.producer_state import ProducerStateError, ProducerStateManager
from gafka_broker.replication.replica_state import (
    ReplicaState,
    eligible_to_join,
    high_watermark,
    out_of_sync,
)

__all__ = [
    "NO_LEADER",
    "BrokerPartition",
    "CommitError",
    "NotLeaderError",
    "OffsetNotAvailableError",
    "ReplicaDamagedError",
    "Role",
]

logger = logging.getLogger("gafka.broker.partition")

NO_LEADER = -1


class Role(enum.Enum):
    NONE = "none"
    """No leader known (offline partition, or metadata not applied yet)."""
    LEADER = "leader"
    FOLLOWER = "follower"


class NotLeaderError(Exception):
    """This replica does not lead the partition (any more)."""


class CommitError(Exception):
    """An ``acks=all`` wait ended without the records being committed; ``code`` is Kafka's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReplicaDamagedError(Exception):
    """A read found the batch at ``offset`` of this replica damaged on disk (a byte flipped after it was written).

    ``healable``: another live in-sync replica holds a good copy; the controller is told, leadership moves
    there and this replica truncates to ``offset`` and fetches again (clients retry: KAFKA_STORAGE_ERROR).
    Otherwise no good copy is left in the ISR and the records there are lost (CORRUPT_MESSAGE)."""

    def __init__(self, topic: str, partition: int, offset: int, healable: bool, detail: str) -> None:
        where = f"{topic}-{partition}"
        if healable:
            message = (
                f"the batch at offset {offset} of {where} is damaged on this broker's disk; "
                "leadership is moving to a healthy replica, retry shortly"
            )
        else:
            message = (
                f"the batch at offset {offset} of {where} is damaged on disk and no other in-sync replica has it; "
                f"seek past offset {offset} to continue ({detail})"
            )
        super().__init__(message)
        self.offset = offset
        self.healable = healable
        self.message = message


class OffsetNotAvailableError(Exception):
    """KIP-207: this new leader does not know its high watermark yet; the client retries in a moment."""

    def __init__(self, topic: str, partition: int, leader_epoch: int) -> None:
        self.message = (
            f"the new leader of {topic}-{partition} (epoch {leader_epoch}) does not know its high watermark yet; "
            "retry shortly"
        )
        super().__init__(self.message)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Waiter:
    """One parked consumer fetch: how many more committed bytes it needs before it is worth answering."""

    __slots__ = ("future", "remaining")

    def __init__(self, remaining: int, future: asyncio.Future[bool]) -> None:
        self.remaining = remaining
        self.future = future


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


_commit_sequence = itertools.count()


class BrokerPartition:
    """One partition replica hosted by this broker."""

    __slots__ = (
        "_append_waiters",
        "_appended",
        "_commit_waiters",
        "_committed_bytes",
        "_waiters",
        "adding",
        "broker_id",
        "caught_up",
        "damaged_at",
        "epoch_cache",
        "followers",
        "high_watermark",
        "isr",
        "isr_change_pending",
        "leader",
        "leader_epoch",
        "live_brokers",
        "log",
        "max_lag_ms",
        "on_damage",
        "partition",
        "partition_epoch",
        "producers",
        "replicas",
        "role",
        "topic",
    )

    def __init__(
        self,
        log: PartitionLog,
        *,
        leader: int = NO_LEADER,
        replicas: Sequence[int] = (),
        leader_epoch: int = 0,
        broker_id: int | None = None,
        epoch_cache: LeaderEpochCache | None = None,
        producers: ProducerStateManager | None = None,
        high_watermark: int | None = None,
        max_lag_ms: int = 30_000,
    ) -> None:
        """A replica that leads at once when ``leader`` is this broker (one-node clusters and tests)."""
        self.log = log
        self.topic = log.topic
        self.partition = log.partition
        self.broker_id = leader if broker_id is None else broker_id
        self.epoch_cache = epoch_cache if epoch_cache is not None else LeaderEpochCache()
        self.producers = producers if producers is not None else ProducerStateManager()
        self.max_lag_ms = max_lag_ms
        self.role = Role.NONE
        self.leader = NO_LEADER
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.replicas: tuple[int, ...] = tuple(replicas)
        self.isr: tuple[int, ...] = ()
        self.adding: tuple[int, ...] = ()
        self.live_brokers: frozenset[int] = frozenset(replicas)
        self.isr_change_pending = False
        self.followers: dict[int, ReplicaState] = {}
        self.caught_up = False
        """As a follower: the last fetch reached the leader's log end offset and high watermark (the controller
        gives preferred leadership back only to such a replica)."""
        self.damaged_at: int | None = None
        """Base offset of a batch found damaged on disk: this replica truncates there before it follows again."""
        self.on_damage: Callable[[BrokerPartition], None] | None = None
        """Told once when damage is found (the replica manager asks the controller to move leadership away)."""
        end = log.log_end_offset
        self.high_watermark = end if high_watermark is None else max(min(high_watermark, end), log.log_start_offset)
        self._waiters: set[_Waiter] = set()
        self._commit_waiters: list[tuple[int, int, asyncio.Future[str | None]]] = []
        self._append_waiters: set[asyncio.Future[bool]] = set()
        self._appended: deque[tuple[int, int]] = deque()
        """(log end offset after an append, bytes appended so far) since the high watermark, as leader."""
        self._committed_bytes = 0
        if leader == self.broker_id and leader != NO_LEADER:
            self.become_leader(
                leader_epoch, replicas=replicas or (leader,), isr=(leader,), partition_epoch=0, now_ms=_now_ms()
            )

    # -- reading -------------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def parked_fetches(self) -> int:
        return len(self._waiters)

    @property
    def min_insync_replicas(self) -> int:
        return self.log.config.min_insync_replicas

    @property
    def high_watermark_known(self) -> bool:
        """KIP-207: a new leader's high watermark is only known once it reaches the start of its own epoch.

        Until then it may be below what the previous leader already reported (this replica learnt the high
        watermark one fetch late), so latest-offset lookups answer OFFSET_NOT_AVAILABLE rather than go back."""
        if self.role is not Role.LEADER:
            return True
        start = self.epoch_cache.start_offset_of(self.leader_epoch)
        return start is None or self.high_watermark >= start

    @property
    def visible_high_watermark(self) -> int | None:
        """The high watermark a client may be shown: None while it is not known (never one that went back)."""
        return self.high_watermark if self.high_watermark_known else None

    def latest_offset(self) -> int:
        """ListOffsets ``latest``: the high watermark, or :class:`OffsetNotAvailableError` while it is not known."""
        if not self.high_watermark_known:
            raise OffsetNotAvailableError(self.topic, self.partition, self.leader_epoch)
        return self.high_watermark

    def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Whole batches from ``offset``, never past the high watermark (raises OffsetOutOfRangeError, and
        :class:`ReplicaDamagedError` for a batch damaged on disk)."""
        return self.read_log(offset, max_bytes, max_offset=self.high_watermark)

    def read_log(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> ReadResult:
        """Read for a consumer or a follower; damage on disk is reported once and raised as
        :class:`ReplicaDamagedError`."""
        try:
            return self.log.read(offset, max_bytes, max_offset=max_offset)
        except LogCorruptionError as exc:
            damaged = offset if exc.offset is None else exc.offset
            healable = self._damage_found(damaged, str(exc))
            raise ReplicaDamagedError(self.topic, self.partition, damaged, healable, str(exc)) from exc

    def _damage_found(self, offset: int, detail: str) -> bool:
        others = [r for r in self.isr if r != self.broker_id and r in self.live_brokers]
        healable = self.role is Role.LEADER and bool(others)
        if self.damaged_at is None or offset < self.damaged_at:
            first = self.damaged_at is None
            self.damaged_at = offset
            CORRUPT_READS.inc()
            logger.error(
                "event=replica_damaged topic=%s partition=%d offset=%d healable=%s error=%r",
                self.topic,
                self.partition,
                offset,
                healable,
                detail,
            )
            if first and healable and self.on_damage is not None:
                self.on_damage(self)
        return healable

    # -- appending -----------------------------------------------------------------------------------
    def append(
        self, data: bytes | bytearray | memoryview, *, now_ms: int | None = None, trusted: bool = False
    ) -> AppendResult:
        """Append a client's batches as leader. A batch the producer already wrote is not appended again:
        its original offsets are answered (with ``size`` 0). ``trusted``: the broker encoded the batches."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(f"broker {self.broker_id} does not lead {self.topic}-{self.partition}")
        headers = [header for _position, header in iter_batches(data)]
        try:
            duplicates = self.producers.check(headers)
        except ProducerStateError:
            for position, _header in iter_batches(data):
                validate_batch(data, position)  # damaged bytes are reported as such, not as a sequence error
            raise
        if duplicates is not None:
            first, last = duplicates[0], duplicates[-1]
            return AppendResult(
                first.first_offset, last.last_offset, -1, -1, last.last_offset - first.first_offset + 1, 0
            )
        if self.epoch_cache.latest_epoch != self.leader_epoch:
            self.epoch_cache.assign(self.leader_epoch, self.log.log_end_offset)
        result = self.log.append_as_leader(data, leader_epoch=self.leader_epoch, now_ms=now_ms, trusted=trusted)
        offset = result.base_offset
        for header in headers:
            self.producers.update(header._replace(base_offset=offset))
            offset += header.last_offset_delta + 1
        self._committed_bytes_pending(result.size)
        self._wake_appends()
        self.maybe_advance_high_watermark(_now_ms() if now_ms is None else now_ms)
        return result

    def append_as_follower(self, data: bytes | bytearray | memoryview) -> AppendResult:
        """Append the leader's batches unchanged (they must continue this log exactly)."""
        headers = [header for _position, header in iter_batches(data)]
        cache = self.epoch_cache
        for header in headers:
            if header.partition_leader_epoch > cache.latest_epoch:
                cache.assign(header.partition_leader_epoch, header.base_offset)
        try:
            result = self.log.append_as_follower(data)
        except Exception:
            cache.truncate_from_end(self.log.log_end_offset)
            raise
        for header in headers:
            self.producers.update(header)
        return result

    def _committed_bytes_pending(self, size: int) -> None:
        total = self._appended[-1][1] if self._appended else self._committed_bytes
        self._appended.append((self.log.log_end_offset, total + size))

    # -- truncation (followers) ----------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Drop every batch at ``offset`` and later; the epoch cache and producer state follow.

        The epoch cache is cut even when the log has nothing past ``offset`` (as Kafka's truncateTo
        does): an epoch this replica started as a short-lived leader, without writing, must go too, or
        the leader keeps reporting the same divergence and the follower never catches up.
        """
        if offset >= self.log.log_end_offset:
            self.epoch_cache.truncate_from_end(offset)
            return
        self.log.truncate_to(offset)
        end = self.log.log_end_offset
        self.caught_up = False
        if self.damaged_at is not None and self.damaged_at >= end:
            self.damaged_at = None
        self.epoch_cache.truncate_from_end(end)
        self.producers.rebuild(self.log.batch_headers())
        self.high_watermark = min(self.high_watermark, end)
        self._appended.clear()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.damaged_at = None
        self.caught_up = False
        self.log.truncate_fully_and_start_at(offset)
        self.epoch_cache.clear()
        self.producers.rebuild(())
        self.high_watermark = offset
        self._appended.clear()

    def update_follower_high_watermark(self, leader_high_watermark: int) -> None:
        """Take the leader's high watermark, never going back: a committed offset stays committed, and a new
        leader that has not learnt its high watermark yet (KIP-207) may report a smaller one for a moment.
        Only truncation lowers it (:meth:`truncate_to`)."""
        end = self.log.log_end_offset
        self.high_watermark = max(min(leader_high_watermark, end), min(self.high_watermark, end), self.log_start_offset)

    # -- roles ---------------------------------------------------------------------------------------
    def become_leader(
        self,
        leader_epoch: int,
        *,
        replicas: Sequence[int],
        isr: Sequence[int],
        partition_epoch: int,
        adding: Sequence[int] = (),
        now_ms: int,
    ) -> bool:
        """Lead at ``leader_epoch`` (returns True when that is new) or take the ISR the controller now has."""
        is_new = self.role is not Role.LEADER or leader_epoch != self.leader_epoch
        self.role = Role.LEADER
        self.leader = self.broker_id
        self.leader_epoch = leader_epoch
        self.replicas = tuple(replicas)
        self.adding = tuple(adding)
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        others = [b for b in dict.fromkeys((*self.replicas, *self.adding)) if b != self.broker_id]
        end = self.log.log_end_offset
        self.caught_up = False
        if is_new:
            self.epoch_cache.assign(leader_epoch, end)  # KIP-279: the new epoch starts here, appended or not
            self.followers = {}
            self._appended.clear()
            self._committed_bytes = 0
            self.isr_change_pending = False
        for broker_id in others:
            if broker_id not in self.followers:
                state = ReplicaState(broker_id)
                state.reset(now_ms, end, in_isr=broker_id in self.isr)
                self.followers[broker_id] = state
        for broker_id in [b for b in self.followers if b not in others]:
            del self.followers[broker_id]
        self.maybe_advance_high_watermark(now_ms)
        self._check_commit_waiters()
        return is_new

    def become_follower(self, leader: int, leader_epoch: int, *, replicas: Sequence[int], isr: Sequence[int]) -> bool:
        """Follow ``leader`` (or nobody, when it is -1); returns True when leader or epoch changed.
        A deposed leader's ``acks=all`` waiters fail: its high watermark can no longer move."""
        changed = self.role is Role.LEADER or leader != self.leader or leader_epoch != self.leader_epoch
        was_leader = self.role is Role.LEADER
        self.role = Role.FOLLOWER if leader != NO_LEADER else Role.NONE
        self.leader = leader
        self.leader_epoch = leader_epoch
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.adding = ()
        self.followers = {}
        self.isr_change_pending = False
        if changed:
            self.caught_up = False
        if was_leader:
            self.fail_commit_waiters(
                "NOT_LEADER_OR_FOLLOWER", f"broker {self.broker_id} no longer leads this partition"
            )
            self.wake_all()
        self._appended.clear()
        return changed

    def set_isr(self, isr: Sequence[int], partition_epoch: int, now_ms: int) -> None:
        """The controller accepted an ISR change."""
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        for broker_id, state in self.followers.items():
            if broker_id in self.isr and state.last_caught_up_ms == 0:
                state.last_caught_up_ms = now_ms
        self.maybe_advance_high_watermark(now_ms)
        self._check_commit_waiters()

    # -- the leader's view of its followers ----------------------------------------------------------
    def record_follower_fetch(self, broker_id: int, fetch_offset: int, now_ms: int) -> ReplicaState | None:
        """A follower fetched from ``fetch_offset``: it has everything before it."""
        state = self.followers.get(broker_id)
        if state is None:
            return None
        state.record_fetch(fetch_offset, self.log.log_end_offset, now_ms)
        self.maybe_advance_high_watermark(now_ms)
        return state

    def should_expand_isr(self, broker_id: int) -> bool:
        state = self.followers.get(broker_id)
        if state is None or broker_id in self.isr or broker_id not in self.live_brokers:
            return False
        epoch_start = self.epoch_cache.start_offset_of(self.leader_epoch)
        return eligible_to_join(state, self.high_watermark, epoch_start if epoch_start is not None else 0)

    def out_of_sync_replicas(self, now_ms: int) -> list[int]:
        return out_of_sync(self.isr, self.broker_id, self.followers, self.log.log_end_offset, now_ms, self.max_lag_ms)

    def maybe_advance_high_watermark(self, now_ms: int) -> bool:
        if self.role is not Role.LEADER:
            return False
        new = high_watermark(
            self.high_watermark,
            self.broker_id,
            self.log.log_end_offset,
            self.isr,
            self.followers,
            min_isr=min(self.min_insync_replicas, max(len(self.replicas), 1)),
            now_ms=now_ms,
            max_lag_ms=self.max_lag_ms,
            eligible=self.live_brokers,
        )
        if new <= self.high_watermark:
            return False
        self._advance_to(new)
        return True

    def _advance_to(self, offset: int) -> None:
        self.high_watermark = offset
        appended = self._appended
        committed = self._committed_bytes
        while appended and appended[0][0] <= offset:
            committed = appended.popleft()[1]
        new_bytes = max(committed - self._committed_bytes, 1)
        self._committed_bytes = committed
        self._wake_consumers(new_bytes)
        self._check_commit_waiters()

    def advance_high_watermark(self, offset: int, new_bytes: int) -> None:
        """Move the high watermark to ``offset`` directly (tests of the fetch path)."""
        if offset > self.high_watermark:
            self.high_watermark = offset
            self._wake_consumers(new_bytes)
            self._check_commit_waiters()

    # -- consumer long polls -------------------------------------------------------------------------
    def _wake_consumers(self, new_bytes: int) -> None:
        if not self._waiters:
            return
        for waiter in tuple(self._waiters):
            waiter.remaining -= new_bytes
            if waiter.remaining <= 0:
                self._waiters.discard(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(True)

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
        """Release every parked fetch now (shutdown, topic deletion, lost leadership)."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_result(False)
        self._wake_appends()

    # -- acks=all ------------------------------------------------------------------------------------
    async def wait_committed(self, offset: int, timeout_s: float) -> None:
        """Return once the high watermark reaches ``offset``; raise :class:`CommitError` otherwise."""
        if self.high_watermark >= offset:
            return
        if self.role is not Role.LEADER:
            raise CommitError("NOT_LEADER_OR_FOLLOWER", f"broker {self.broker_id} no longer leads this partition")
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        entry = (offset, next(_commit_sequence), future)
        heapq.heappush(self._commit_waiters, entry)
        try:
            code = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise CommitError(
                "REQUEST_TIMED_OUT",
                f"the in-sync replicas did not confirm offset {offset - 1} within {timeout_s * 1000:.0f} ms",
            ) from None
        finally:
            if not future.done():
                future.cancel()
        if code is not None:
            raise CommitError(code, self._failure_message(code))

    def _failure_message(self, code: str) -> str:
        if code == "NOT_ENOUGH_REPLICAS_AFTER_APPEND":
            return (
                f"the records were written but the ISR shrank to {len(self.isr)}, below "
                f"min.insync.replicas={self.min_insync_replicas}; they may or may not be committed"
            )
        return f"broker {self.broker_id} stopped leading {self.topic}-{self.partition}; retry on the new leader"

    def _check_commit_waiters(self) -> None:
        waiters = self._commit_waiters
        while waiters and waiters[0][0] <= self.high_watermark:
            _offset, _seq, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)
        if waiters and self.role is Role.LEADER and len(self.isr) < self.min_insync_replicas:
            self.fail_commit_waiters("NOT_ENOUGH_REPLICAS_AFTER_APPEND", "")

    def fail_commit_waiters(self, code: str, _message: str) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        for _offset, _seq, future in waiters:
            if not future.done():
                future.set_result(code)

    @property
    def pending_commits(self) -> int:
        return len(self._commit_waiters)

    # -- follower fetches waiting on the leader ------------------------------------------------------
    def add_append_waiter(self, future: asyncio.Future[bool]) -> None:
        """Resolve ``future`` with True at the next append (or role change). One future may wait on several
        partitions at once: a follower fetch must return as soon as any of them has data."""
        self._append_waiters.add(future)

    def discard_append_waiter(self, future: asyncio.Future[bool]) -> None:
        self._append_waiters.discard(future)

    def _wake_appends(self) -> None:
        if not self._append_waiters:
            return
        waiters, self._append_waiters = self._append_waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(True)


def rebuild_state(
    log: PartitionLog, cache: LeaderEpochCache | None, *, clean: bool
) -> tuple[LeaderEpochCache, ProducerStateManager]:
    """The epoch cache and producer state of a just-opened log.

    The checkpointed epoch cache is trusted up to the log's recovery point after a clean start; after an
    unclean one, or when the checkpoint is missing, the part the checkpoint may not cover is rebuilt from
    the batch headers. Producer state always comes from the headers.
    """
    path = log.directory / "leader-epoch-checkpoint"
    if cache is None:
        cache = LeaderEpochCache(path)
        rebuild_from: int | None = log.log_start_offset
    elif clean:
        rebuild_from = None
    else:
        rebuild_from = min(log.recovery_point, log.log_end_offset)
    cache.truncate_from_end(log.log_end_offset)
    producers = ProducerStateManager()
    headers: Iterable[BatchHeader] = log.batch_headers()
    for header in headers:
        producers.update(header)
        if (
            rebuild_from is not None
            and header.last_offset >= rebuild_from
            and header.partition_leader_epoch > cache.latest_epoch
        ):
            cache.assign(header.partition_leader_epoch, header.base_offset)
    return cache, producers


def hosted_replicas(replicas: Collection[int], adding: Collection[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys((*replicas, *adding)))
