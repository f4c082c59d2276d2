"""``Consumer`` (blocking) and ``AsyncConsumer`` (asyncio): group membership or manual assignment,
prefetching long-poll fetches, commits, seek/position/pause, rebalance callbacks.

One implementation: every operation is written once in ``_ConsumerCore`` as a generator of effects
(an HTTP request, a metadata refresh, a rebalance callback, a wait for fetched records, ...), and each face
runs those generators its own way: ``AsyncConsumer`` awaits each effect, ``Consumer`` performs it in the
caller's thread with the blocking transport. Fetch loops and heartbeats always run on an event loop (a
private one in a daemon thread for the blocking ``Consumer``), where hundreds of parked long polls cost
nothing. Everything the application calls (``poll``, ``commit``, callbacks) runs in the application's own
thread or task, so a rebalance callback may call ``commit()`` without waiting on the loop it runs beside.

Rebalances follow KIP-848: the broker computes assignments; a partition taken away is first revoked
(``on_revoke`` runs, with auto-commit its position is committed) and released on the next heartbeat,
and only then handed to another member, so two members never read one partition at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from gafka._fetching import Fetcher, FetchSettings, PartitionState
from gafka._loop import LoopThread
from gafka._membership import Membership
from gafka.errors import (
    ClientClosedError,
    CorruptMessageError,
    GafkaError,
    NoOffsetForPartitionError,
    NotFoundError,
    StaleMemberEpochError,
    UnknownTopicOrPartitionError,
)
from gafka.http import AsyncTransport, SyncTransport, q
from gafka.metadata import ClusterMetadata, refresh_async, refresh_sync
from gafka.records import ConsumerRecord, OffsetAndMetadata, TopicPartition

__all__ = ["AsyncConsumer", "Consumer", "ConsumerConfig"]

log = logging.getLogger("gafka.consumer")

Callback = Callable[[set[TopicPartition]], Any]
T = TypeVar("T")
_RESETS = ("earliest", "latest", "none")


@dataclass
class ConsumerConfig:
    """Settings, named as Kafka's consumer configs with ``_`` for ``.``."""

    auto_offset_reset: str = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5_000
    fetch_min_bytes: int = 1
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1024 * 1024
    max_prefetch_bytes: int = 4 * 1024 * 1024
    """Per partition: fetching pauses while this much is buffered and not yet polled."""
    max_poll_records: int = 500
    max_poll_interval_ms: int = 300_000
    """Sent as the member's rebalance timeout: how long a revocation may take before the broker evicts it."""
    group_instance_id: str | None = None
    group_remote_assignor: str | None = None
    request_timeout_ms: int = 30_000
    retry_backoff_ms: int = 100
    metadata_max_age_ms: int = 300_000

    @classmethod
    def from_kwargs(cls, config: Mapping[str, Any]) -> ConsumerConfig:
        known = {field.name for field in fields(cls)}
        normalized = {key.replace(".", "_"): value for key, value in config.items()}
        unknown = sorted(set(normalized) - known)
        if unknown:
            raise ValueError(f"unknown consumer settings: {', '.join(unknown)}")
        settings = cls(**normalized)
        settings.auto_offset_reset = str(settings.auto_offset_reset).lower()
        if settings.auto_offset_reset == "smallest":
            settings.auto_offset_reset = "earliest"
        if settings.auto_offset_reset == "largest":
            settings.auto_offset_reset = "latest"
        if settings.auto_offset_reset not in _RESETS:
            raise ValueError(f"auto_offset_reset must be one of {', '.join(_RESETS)}")
        return settings


def _tp(item: TopicPartition | tuple[str, int]) -> TopicPartition:
    return item if isinstance(item, TopicPartition) else TopicPartition(str(item[0]), int(item[1]))


def _commit_document(
    member_id: str | None, member_epoch: int, offsets: Mapping[TopicPartition, OffsetAndMetadata]
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "member_epoch": member_epoch,
        "offsets": [
            {"topic": tp.topic, "partition": tp.partition, "offset": meta.offset, "metadata": meta.metadata}
            for tp, meta in sorted(offsets.items())
        ],
    }


def _parse_committed(document: Any, wanted: Iterable[TopicPartition] | None) -> dict[TopicPartition, OffsetAndMetadata]:
    found = {
        TopicPartition(str(entry["topic"]), int(entry["partition"])): OffsetAndMetadata(
            int(entry["offset"]), str(entry.get("metadata") or "")
        )
        for entry in (document or {}).get("offsets", [])
    }
    if wanted is None:
        return found
    return {tp: found[tp] for tp in wanted if tp in found}


def _offsets_path(tp: TopicPartition) -> str:
    return f"/v1/topics/{q(tp.topic)}/partitions/{tp.partition}/offsets"


def _offsets_arg(offsets: Mapping[Any, OffsetAndMetadata | int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        _tp(tp): meta if isinstance(meta, OffsetAndMetadata) else OffsetAndMetadata(int(meta))
        for tp, meta in offsets.items()
    }


def _log_commit_failure(future: concurrent.futures.Future[None] | asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.warning("event=auto_commit_failed error=%r", str(error))


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


# -- effects: what an operation asks its face to do ---------------------------------------------------
class _Request(NamedTuple):
    """An HTTP request answered with JSON; the result is the decoded document."""

    url: str
    method: str
    path: str
    document: Any = None
    params: dict[str, Any] | None = None


class _Refresh(NamedTuple):
    """Learn the cluster and ``topic``; the result is its TopicInfo."""

    topic: str


class _Call(NamedTuple):
    """Run an application callback (a rebalance listener) where the application runs."""

    callback: Callback
    partitions: set[TopicPartition]


class _Sleep(NamedTuple):
    seconds: float


class _Wait(NamedTuple):
    """Wait up to ``timeout`` seconds unless something was notified since notification number ``seen``."""

    seen: int
    timeout: float


class _Await(NamedTuple):
    """Run a coroutine of the loop-side machinery (membership) and wait for it."""

    coroutine: Callable[[], Coroutine[Any, Any, None]]
    timeout: float | None = None


class _Spawn(NamedTuple):
    """Run an operation in the background on the loop (auto-commit); failures are logged."""

    steps: Generator[Any, Any, None]


_Effect = _Request | _Refresh | _Call | _Sleep | _Wait | _Await | _Spawn
Steps = Generator[_Effect, Any, T]


class _ConsumerCore:
    """The consumer, written once: state, rules, and every operation as a generator of effects."""

    def __init__(self, bootstrap: str | Sequence[str], group_id: str | None, config: Mapping[str, Any]) -> None:
        self.config = ConsumerConfig.from_kwargs(config)
        self.group_id = group_id
        self._metadata = ClusterMetadata(bootstrap, max_age_ms=self.config.metadata_max_age_ms)
        self._transport = AsyncTransport(timeout=self.config.request_timeout_ms / 1000)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._notified = 0
        self._async_event: asyncio.Event | None = None
        self._background: set[asyncio.Task[None]] = set()
        config_ = self.config
        settings = FetchSettings(
            min_bytes=config_.fetch_min_bytes,
            max_wait_ms=config_.fetch_max_wait_ms,
            max_partition_fetch_bytes=config_.max_partition_fetch_bytes,
            max_prefetch_bytes=config_.max_prefetch_bytes,
            request_timeout_ms=config_.request_timeout_ms,
            retry_backoff_ms=config_.retry_backoff_ms,
        )
        self._fetcher = Fetcher(settings, self._metadata, self._transport, self._lock, self._notify, self._reset_task)
        self._states = self._fetcher.states
        self._membership: Membership | None = None
        if group_id is not None:
            self._membership = Membership(
                group_id,
                self._transport,
                self._metadata,
                self._lock,
                self._notify,
                instance_id=config_.group_instance_id,
                rebalance_timeout_ms=config_.max_poll_interval_ms,
                retry_backoff_ms=config_.retry_backoff_ms,
                request_timeout_ms=config_.request_timeout_ms,
                assignor=config_.group_remote_assignor,
            )
        self._subscription: list[str] = []
        self._manual = False
        self._on_assign: Callback | None = None
        self._on_revoke: Callback | None = None
        self._on_lost: Callback | None = None
        self._lost_seen = 0
        self._rotation = 0
        self._next_auto_commit = time.monotonic() + config_.auto_commit_interval_ms / 1000
        self._closed = False

    # -- what each face provides ----------------------------------------------------------------------
    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a plain callback of the loop-side machinery (fetcher, membership) on its loop."""
        raise NotImplementedError

    async def _drive_async(self, steps: Steps[T]) -> T:
        """Run an operation on the event loop, awaiting each effect (the asyncio face; background work)."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            value, error = None, None
            try:
                value = await self._perform_async(effect)
            except BaseException as exc:  # handed back to the operation (its finally blocks run in order)
                error = exc

    async def _perform_async(self, effect: _Effect) -> Any:
        match effect:
            case _Request(url, method, path, document, params):
                return await self._transport.json(url, method, path, document, params=params)
            case _Refresh(topic):
                return await refresh_async(self._transport, self._metadata, topic)
            case _Call(callback, partitions):
                await _maybe_await(callback(partitions))
            case _Sleep(seconds):
                await asyncio.sleep(seconds)
            case _Wait(seen, timeout):
                event = self._event()
                if self._notified == seen:
                    event.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await event.wait()
            case _Await(coroutine, timeout):
                async with asyncio.timeout(timeout):
                    await coroutine()
            case _Spawn(steps):
                task = asyncio.get_running_loop().create_task(self._drive_async(steps))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(_log_commit_failure)
        return None

    def _event(self) -> asyncio.Event:
        if self._async_event is None:
            self._async_event = asyncio.Event()
        return self._async_event

    # -- notification (called with the lock held) ---------------------------------------------------
    def _notify(self) -> None:
        self._notified += 1
        self._cond.notify_all()
        if self._async_event is not None:
            self._async_event.set()

    def _reset_task(self, tp: TopicPartition) -> asyncio.Future[int | None]:
        return asyncio.ensure_future(self._reset_offset_async(tp))

    async def _reset_offset_async(self, tp: TopicPartition) -> int | None:
        policy = self.config.auto_offset_reset
        if policy == "none":
            return None
        try:
            answer = await self._transport.json(
                self._metadata.leader_url(tp.topic, tp.partition), "GET", _offsets_path(tp), params={"at": policy}
            )
        except GafkaError as exc:
            log.warning("event=offset_reset_failed topic=%s partition=%d error=%r", tp.topic, tp.partition, str(exc))
            await asyncio.sleep(self.config.retry_backoff_ms / 1000)
            return await self._reset_offset_async(tp) if exc.retriable and not self._closed else None
        return int(answer["offset"])

    # -- checks --------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the consumer is closed")

    def _check_subscribe(self, topics: Iterable[str]) -> list[str]:
        self._check_open()
        if self._membership is None:
            raise ValueError("subscribe() needs a group_id; use assign() without one")
        if self._manual:
            raise ValueError("this consumer uses assign(); call unassign() first")
        names = sorted({str(topic) for topic in ([topics] if isinstance(topics, str) else topics)})
        if not names:
            raise ValueError("subscribe to at least one topic")
        return names

    # -- what a poll does, under the lock --------------------------------------------------------------
    def _changes_locked(self) -> tuple[set[TopicPartition], set[TopicPartition], set[TopicPartition]]:
        """(lost, revoked, added) between what the broker says and what this consumer holds."""
        membership = self._membership
        if membership is None or self._manual or not self._subscription:
            return set(), set(), set()
        held = set(self._states)
        if membership.lost_generation != self._lost_seen:
            self._lost_seen = membership.lost_generation
            return held, set(), set()
        target = membership.target
        return set(), held - target, set(target) - held

    def _pending_locked(self) -> bool:
        membership = self._membership
        if membership is None or self._manual or not self._subscription:
            return False
        return (
            membership.fatal is not None
            or membership.lost_generation != self._lost_seen
            or membership.target != set(self._states)
        )

    def _raise_errors_locked(self) -> None:
        membership = self._membership
        if membership is not None and membership.fatal is not None:
            raise membership.fatal
        for state in self._states.values():
            if state.error is not None and not state.paused and not state.has_records():
                error = state.error
                if not isinstance(error, CorruptMessageError):  # damaged data: raised until seeked past
                    state.error = None
                raise error

    def _take_locked(self, limit: int) -> tuple[list[ConsumerRecord], list[PartitionState]]:
        """Up to ``limit`` records round-robin over unpaused partitions; also the partitions to re-poke."""
        states = [state for state in self._states.values() if not state.paused and state.has_records()]
        if not states:
            return [], []
        self._rotation = (self._rotation + 1) % len(states)
        states = states[self._rotation :] + states[: self._rotation]
        out: list[ConsumerRecord] = []
        poke: list[PartitionState] = []
        prefetch = self.config.max_prefetch_bytes
        for state in states:
            if len(out) >= limit:
                break
            was_full = state.buffered >= prefetch
            out.extend(state.take(limit - len(out)))
            if was_full and state.buffered < prefetch:
                poke.append(state)
        return out, poke

    def _positions(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, OffsetAndMetadata]:
        with self._lock:
            chosen = (
                self._states
                if partitions is None
                else {tp: self._states[tp] for tp in partitions if tp in self._states}
            )
            return {tp: OffsetAndMetadata(state.position) for tp, state in chosen.items() if state.position is not None}

    def _member(self) -> tuple[str | None, int]:
        """Who commits: the member id and epoch, or (None, -1) for a consumer outside the group protocol."""
        membership = self._membership
        if membership is None or self._manual or membership.member_id is None:
            return None, -1
        return membership.member_id, membership.member_epoch

    def _auto_commit_due(self) -> bool:
        if not (self.config.enable_auto_commit and self.group_id is not None):
            return False
        now = time.monotonic()
        if now < self._next_auto_commit:
            return False
        self._next_auto_commit = now + self.config.auto_commit_interval_ms / 1000
        return True

    def _assigned_state(self, partition: TopicPartition | tuple[str, int]) -> PartitionState:
        """The fetch state of an assigned partition; a ValueError for any other (call with the lock held)."""
        tp = _tp(partition)
        state = self._states.get(tp)
        if state is None:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        return state

    # -- queries -------------------------------------------------------------------------------------
    def assignment(self) -> set[TopicPartition]:
        with self._lock:
            return set(self._states)

    def subscription(self) -> list[str]:
        return list(self._subscription)

    def paused(self) -> set[TopicPartition]:
        with self._lock:
            return {tp for tp, state in self._states.items() if state.paused}

    def highwater(self, partition: TopicPartition | tuple[str, int]) -> int | None:
        """The high watermark seen in the last fetch of ``partition`` (None before the first)."""
        with self._lock:
            state = self._states.get(_tp(partition))
            return None if state is None or state.high_watermark < 0 else state.high_watermark

    @property
    def member_id(self) -> str | None:
        return None if self._membership is None else self._membership.member_id

    def position(self, partition: TopicPartition | tuple[str, int]) -> int:
        """The offset of the next record ``poll`` returns for ``partition``."""
        with self._lock:
            state = self._assigned_state(partition)
            if state.error is not None and state.position is None:
                raise state.error
            assert state.position is not None
            return state.position

    # -- local control (no I/O) ------------------------------------------------------------------------
    def seek(self, partition: TopicPartition | tuple[str, int], offset: int) -> None:
        """Read ``partition`` from ``offset`` on the next poll (buffered records are dropped)."""
        with self._lock:
            state = self._assigned_state(partition)
            state.reset(offset)
        self._on_loop(self._fetcher.poke, state)

    def pause(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Stop fetching and returning these partitions until :meth:`resume`."""
        with self._lock:
            for item in partitions:
                state = self._states.get(_tp(item))
                if state is not None:
                    state.paused = True

    def resume(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        with self._lock:
            states = [self._states[_tp(item)] for item in partitions if _tp(item) in self._states]
            for state in states:
                state.paused = False
        for state in states:
            self._on_loop(self._fetcher.poke, state)

    # -- operations (generators of effects; each face runs them) --------------------------------------
    def _subscribe(
        self,
        topics: Iterable[str] | str,
        on_assign: Callback | None,
        on_revoke: Callback | None,
        on_lost: Callback | None,
    ) -> Steps[None]:
        names = self._check_subscribe(topics)
        for name in names:
            # Kafka's way: the group waits for a topic that does not exist yet and assigns it once it does
            with contextlib.suppress(UnknownTopicOrPartitionError):
                yield _Refresh(name)
        self._subscription = names
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        assert self._membership is not None
        self._on_loop(self._membership.start, names)

    def _unsubscribe(self) -> Steps[None]:
        if self._membership is not None and self._subscription:
            yield from self._revoke(self.assignment(), lost=False)
            membership = self._membership
            yield _Await(membership.leave)
        self._subscription = []

    def _assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> Steps[None]:
        self._check_open()
        if self._subscription:
            raise ValueError("this consumer is subscribed; call unsubscribe() first")
        wanted = {_tp(item) for item in partitions}
        for topic in {tp.topic for tp in wanted}:
            info = yield _Refresh(topic)
            assert info is not None
            for tp in wanted:
                if tp.topic == topic and not 0 <= tp.partition < len(info.partitions):
                    raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {tp.partition}")
        self._manual = bool(wanted)
        self._drop(self.assignment() - wanted)
        yield from self._add(wanted - self.assignment(), callback=False)

    def _partitions_for(self, topic: str) -> Steps[list[int]]:
        info = yield _Refresh(topic)
        assert info is not None
        return [p.partition for p in info.partitions]

    def _reset_offset(self, tp: TopicPartition, policy: str | None = None) -> Steps[int]:
        policy = policy or self.config.auto_offset_reset
        if policy == "none":
            raise NoOffsetForPartitionError(
                f"{tp.topic}-{tp.partition} has no committed offset and auto_offset_reset is none"
            )
        answer = yield _Request(
            self._metadata.leader_url(tp.topic, tp.partition), "GET", _offsets_path(tp), params={"at": policy}
        )
        return int(answer["offset"])

    def _offsets_at(self, partitions: Iterable[Any], policy: str) -> Steps[dict[TopicPartition, int]]:
        found: dict[TopicPartition, int] = {}
        for item in partitions:
            found[_tp(item)] = yield from self._reset_offset(_tp(item), policy)
        return found

    def _offsets_for_times(self, timestamps: Mapping[TopicPartition, int]) -> Steps[dict[TopicPartition, int]]:
        found: dict[TopicPartition, int] = {}
        for item, timestamp in timestamps.items():
            found[_tp(item)] = yield from self._reset_offset(_tp(item), str(int(timestamp)))
        return found

    def _seek_to(self, partitions: Iterable[TopicPartition] | None, policy: str) -> Steps[None]:
        for item in list(self.assignment() if partitions is None else partitions):
            offset = yield from self._reset_offset(_tp(item), policy)
            self.seek(item, offset)

    def _add(self, partitions: set[TopicPartition], *, callback: bool) -> Steps[None]:
        if not partitions:
            return
        committed = (yield from self._committed_offsets(partitions)) if self.group_id is not None else {}
        states: list[PartitionState] = []
        for tp in sorted(partitions):
            state = PartitionState(tp)
            if tp in committed:
                state.reset(committed[tp].offset)
            else:
                try:
                    state.reset((yield from self._reset_offset(tp)))
                except NoOffsetForPartitionError as exc:
                    state.error = exc
            states.append(state)
        with self._lock:
            for state in states:
                self._states[state.tp] = state
            if self._membership is not None:
                self._membership.owned |= partitions
        if callback and self._on_assign is not None:
            yield _Call(self._on_assign, set(partitions))
        for state in states:
            self._on_loop(self._fetcher.start, state)

    def _drop(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            states = [self._states.pop(tp) for tp in partitions if tp in self._states]
            if self._membership is not None:
                self._membership.owned -= partitions
        for state in states:
            self._on_loop(self._fetcher.stop, state)

    def _revoke(self, partitions: set[TopicPartition], *, lost: bool) -> Steps[None]:
        if not partitions:
            return
        if lost:
            callback = self._on_lost or self._on_revoke
        else:
            callback = self._on_revoke
            if self.config.enable_auto_commit:
                try:
                    yield from self._commit(self._positions(partitions))
                except GafkaError as exc:
                    log.warning("event=commit_on_revoke_failed error=%r", str(exc))
        with self._lock:
            for tp in partitions:  # stop handing out records of partitions on their way out
                state = self._states.get(tp)
                if state is not None:
                    state.paused = True
        if callback is not None:
            yield _Call(callback, set(partitions))
        self._drop(partitions)
        if self._membership is not None and not lost:
            self._on_loop(self._membership.heartbeat_now)

    def _reconcile(self) -> Steps[None]:
        with self._lock:
            lost, revoked, added = self._changes_locked()
        yield from self._revoke(lost, lost=True)
        yield from self._revoke(revoked, lost=False)
        yield from self._add(added, callback=True)

    def _poll(self, timeout: float, max_records: int | None) -> Steps[list[ConsumerRecord]]:
        self._check_open()
        deadline = time.monotonic() + max(timeout, 0)
        limit = max_records or self.config.max_poll_records
        while True:
            yield from self._reconcile()
            if self._auto_commit_due():
                offsets = self._positions()
                if offsets:
                    yield _Spawn(self._commit(offsets, retry=False))
            with self._lock:
                self._raise_errors_locked()
                seen = self._notified
                records, poke = self._take_locked(limit)
                pending = self._pending_locked()
            for state in poke:
                self._on_loop(self._fetcher.poke, state)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if not pending:
                yield _Wait(seen, remaining)

    def _commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None, *, retry: bool = True
    ) -> Steps[None]:
        if self.group_id is None:
            raise ValueError("commit() needs a group_id")
        chosen = self._positions() if offsets is None else _offsets_arg(offsets)
        if not chosen:
            return
        path = f"/v1/groups/{q(self.group_id)}/offsets"
        for attempt in range(3):
            member_id, epoch = self._member()
            try:
                yield _Request(self._metadata.any_broker(), "POST", path, _commit_document(member_id, epoch, chosen))
                return
            except StaleMemberEpochError:
                if not retry or attempt == 2 or self._member()[1] == epoch:
                    raise  # not a race with a heartbeat: the partitions really moved
                yield _Sleep(0.01)

    def _committed_offsets(
        self, partitions: Iterable[TopicPartition | tuple[str, int]] | None = None
    ) -> Steps[dict[TopicPartition, OffsetAndMetadata]]:
        if self.group_id is None:
            raise ValueError("committed offsets need a group_id")
        try:
            answer = yield _Request(self._metadata.any_broker(), "GET", f"/v1/groups/{q(self.group_id)}/offsets")
        except NotFoundError:
            return {}
        return _parse_committed(answer, None if partitions is None else [_tp(tp) for tp in partitions])

    def _committed(self, partition: TopicPartition | tuple[str, int]) -> Steps[int | None]:
        meta = (yield from self._committed_offsets([partition])).get(_tp(partition))
        return None if meta is None else meta.offset

    def _close(self, autocommit: bool, leave_timeout: float | None) -> Steps[None]:
        if self._closed:
            return
        try:
            if self._membership is not None and self._subscription:
                if not autocommit:
                    self.config.enable_auto_commit = False
                yield from self._revoke(self.assignment(), lost=False)
                yield _Await(self._membership.leave, leave_timeout)
            elif autocommit and self.config.enable_auto_commit and self.group_id is not None and self._manual:
                try:
                    yield from self._commit()
                except GafkaError as exc:
                    log.warning("event=commit_on_close_failed error=%r", str(exc))
        finally:
            self._closed = True
            self._fetcher.closed = True
            with self._lock:
                states = list(self._states.values())
                self._states.clear()
                self._notify()
            for state in states:
                self._on_loop(self._fetcher.stop, state)


class Consumer(_ConsumerCore):
    """A blocking consumer. ``poll(timeout)`` returns a list of :class:`ConsumerRecord`.

    ``Consumer(bootstrap, group_id="g", auto_offset_reset="earliest")`` then ``subscribe(["t"])`` joins
    group ``g``; without a group, ``assign([("t", 0)])`` reads chosen partitions. Each method runs the
    shared operation in the calling thread: requests go out on a blocking transport and rebalance
    callbacks run here, inside ``poll``.
    """

    def __init__(
        self, bootstrap: str | Sequence[str] = "http://127.0.0.1:9092", group_id: str | None = None, **config: Any
    ):
        super().__init__(bootstrap, group_id, config)
        self._http = SyncTransport(timeout=self.config.request_timeout_ms / 1000)
        self._loop = LoopThread("gafka-consumer")

    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        self._loop.call(callback, *args)

    def _run(self, steps: Steps[T]) -> T:
        """Run an operation in this thread, performing each effect with blocking calls."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            value, error = None, None
            try:
                value = self._perform(effect)
            except BaseException as exc:  # handed back to the operation (its finally blocks run in order)
                error = exc

    def _perform(self, effect: _Effect) -> Any:
        match effect:
            case _Request(url, method, path, document, params):
                return self._http.json(url, method, path, document, params=params)
            case _Refresh(topic):
                return refresh_sync(self._http, self._metadata, topic)
            case _Call(callback, partitions):
                callback(partitions)
            case _Sleep(seconds):
                time.sleep(seconds)
            case _Wait(seen, timeout):
                with self._cond:
                    if self._notified == seen:
                        self._cond.wait(timeout)
            case _Await(coroutine, timeout):
                self._loop.run(coroutine(), timeout)
            case _Spawn(steps):
                self._loop.submit(self._drive_async(steps)).add_done_callback(_log_commit_failure)
        return None

    # -- assignment ----------------------------------------------------------------------------------
    def subscribe(
        self,
        topics: Iterable[str] | str,
        *,
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
    ) -> None:
        """Join the group for ``topics``; callbacks get a set of TopicPartition and run inside ``poll``."""
        self._run(self._subscribe(topics, on_assign, on_revoke, on_lost))

    def unsubscribe(self) -> None:
        """Leave the group (revoking everything) and forget the subscription."""
        self._run(self._unsubscribe())

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Read exactly these partitions (no group membership; commits still go to ``group_id`` if set)."""
        self._run(self._assign(partitions))

    def unassign(self) -> None:
        self.assign([])

    def partitions_for(self, topic: str) -> list[int]:
        """The partition numbers of ``topic`` (raises UnknownTopicOrPartitionError)."""
        return self._run(self._partitions_for(topic))

    # -- positions -----------------------------------------------------------------------------------
    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The first offset at or after each timestamp (ms); the end offset when every record is older."""
        return self._run(self._offsets_for_times(timestamps))

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._offsets_at(partitions, "earliest"))

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._offsets_at(partitions, "latest"))

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._run(self._seek_to(partitions, "earliest"))

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._run(self._seek_to(partitions, "latest"))

    # -- polling -------------------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Records available within ``timeout`` seconds (an empty list if none); runs rebalance callbacks."""
        return self._run(self._poll(timeout, max_records))

    def __iter__(self) -> Iterator[ConsumerRecord]:
        while not self._closed:
            yield from self.poll(1.0)

    # -- commits -------------------------------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Commit ``offsets`` (default: the position of every assigned partition) and wait for the answer."""
        self._run(self._commit(offsets))

    def commit_async(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None
    ) -> concurrent.futures.Future[None]:
        """Commit in the background; the future fails with the typed error if the broker refuses."""
        if self.group_id is None:
            raise ValueError("commit_async() needs a group_id")
        chosen = self._positions() if offsets is None else _offsets_arg(offsets)
        return self._loop.submit(self._drive_async(self._commit(chosen, retry=False)))

    def committed_offsets(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (of ``partitions``, default all)."""
        return self._run(self._committed_offsets(partitions))

    def committed(self, partition: TopicPartition | tuple[str, int]) -> int | None:
        """The committed offset of one partition (None if the group never committed it)."""
        return self._run(self._committed(partition))

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self, autocommit: bool = True) -> None:
        """Commit (with auto-commit), revoke, leave the group, stop fetching."""
        if self._closed:
            return
        try:
            self._run(self._close(autocommit, self.config.request_timeout_ms / 1000))
        finally:
            with contextlib.suppress(Exception):  # closing must not fail
                self._loop.run(self._transport.close(), 5)
            self._loop.stop()
            self._http.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- asyncio consumer --------------------------------------------------------------------------------
class AsyncConsumer(_ConsumerCore):
    """The asyncio consumer: the same API with ``await`` (callbacks may be coroutine functions)."""

    def __init__(
        self, bootstrap: str | Sequence[str] = "http://127.0.0.1:9092", group_id: str | None = None, **config: Any
    ):
        super().__init__(bootstrap, group_id, config)

    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        callback(*args)  # this consumer lives on the loop

    async def subscribe(
        self,
        topics: Iterable[str] | str,
        *,
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
    ) -> None:
        self._event()
        await self._drive_async(self._subscribe(topics, on_assign, on_revoke, on_lost))

    async def unsubscribe(self) -> None:
        await self._drive_async(self._unsubscribe())

    async def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        self._event()
        await self._drive_async(self._assign(partitions))

    async def unassign(self) -> None:
        await self.assign([])

    async def partitions_for(self, topic: str) -> list[int]:
        return await self._drive_async(self._partitions_for(topic))

    async def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        return await self._drive_async(self._offsets_for_times(timestamps))

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._drive_async(self._offsets_at(partitions, "earliest"))

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._drive_async(self._offsets_at(partitions, "latest"))

    async def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        await self._drive_async(self._seek_to(partitions, "earliest"))

    async def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        await self._drive_async(self._seek_to(partitions, "latest"))

    async def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[ConsumerRecord]:  # noqa: ASYNC109
        self._event()
        return await self._drive_async(self._poll(timeout, max_records))

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ConsumerRecord]:
        while not self._closed:
            for record in await self.poll(1.0):
                yield record

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        await self._drive_async(self._commit(offsets))

    async def committed_offsets(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        return await self._drive_async(self._committed_offsets(partitions))

    async def committed(self, partition: TopicPartition | tuple[str, int]) -> int | None:
        return await self._drive_async(self._committed(partition))

    async def close(self, autocommit: bool = True) -> None:
        if self._closed:
            return
        try:
            await self._drive_async(self._close(autocommit, None))
        finally:
            await self._transport.close()

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
