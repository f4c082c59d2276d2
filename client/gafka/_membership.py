"""Consumer-group membership under KIP-848: a background heartbeat that learns the assignment.

The broker computes assignments; the member only heartbeats ``{member_id, member_epoch, topics, owned}``
and receives what it may consume now. A partition taken away must be released before the broker gives
it to anyone else, so every heartbeat reports ``owned`` (what this consumer still holds, including
partitions whose revocation callback has not finished yet); the broker waits for a heartbeat without
them. After any change the member heartbeats quickly for a few rounds so a rebalance settles in
hundreds of milliseconds rather than several heartbeat intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from gafka.errors import (
    FencedMemberEpochError,
    GafkaError,
    UnknownMemberIdError,
)
from gafka.http import AsyncTransport, q
from gafka.metadata import ClusterMetadata
from gafka.records import TopicPartition

__all__ = ["Membership", "encode_partitions"]

log = logging.getLogger("gafka.consumer")

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
_FAST_ROUNDS = 6


def encode_partitions(partitions: Iterable[TopicPartition]) -> list[dict[str, Any]]:
    """``[{topic, partitions: [...]}]``, the API's shape for a set of partitions."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [{"topic": topic, "partitions": sorted(parts)} for topic, parts in sorted(by_topic.items())]


def decode_partitions(assignment: Iterable[dict[str, Any]]) -> frozenset[TopicPartition]:
    return frozenset(
        TopicPartition(str(entry["topic"]), int(partition)) for entry in assignment for partition in entry["partitions"]
    )


class Membership:
    """The member's side of the group protocol; runs as a task on the consumer's loop."""

    def __init__(
        self,
        group_id: str,
        transport: AsyncTransport,
        metadata: ClusterMetadata,
        lock: threading.Lock,
        notify: Callable[[], None],
        *,
        instance_id: str | None,
        rebalance_timeout_ms: int,
        retry_backoff_ms: int,
        request_timeout_ms: int,
        assignor: str | None = None,
    ) -> None:
        self.group_id = group_id
        self.transport = transport
        self.metadata = metadata
        self.lock = lock
        self.notify = notify
        self.instance_id = instance_id
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.retry_backoff_s = retry_backoff_ms / 1000
        self.request_timeout_s = request_timeout_ms / 1000
        self.assignor = assignor
        self.topics: list[str] = []
        self.member_id: str | None = None
        self.member_epoch = 0
        self.target: frozenset[TopicPartition] = frozenset()
        """What the broker last said this member may consume."""
        self.owned: set[TopicPartition] = set()
        """What the consumer holds (kept up to date by the consumer, under ``lock``)."""
        self.lost_generation = 0
        """Bumped when the broker fenced or forgot this member: everything held is lost, not revoked."""
        self.fatal: GafkaError | None = None
        self.interval_s = 5.0
        self.joined = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._fast = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return self.metadata.any_broker()

    def start(self, topics: list[str]) -> None:
        """Subscribe (or change the subscription); starts the heartbeat task on first use. Loop thread only."""
        self.topics = sorted(set(topics))
        self._fast = _FAST_ROUNDS
        if self._task is None:
            self._stopped = False
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    def heartbeat_now(self) -> None:
        """Heartbeat at once (the consumer released partitions). Loop thread only."""
        self._fast = max(self._fast, _FAST_ROUNDS // 2)
        self._wakeup.set()

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"member_epoch": self.member_epoch, "topics": self.topics}
        if self.member_id is not None:
            body["member_id"] = self.member_id
        if self.instance_id is not None:
            body["instance_id"] = self.instance_id
        body["rebalance_timeout_ms"] = self.rebalance_timeout_ms
        if self.member_epoch > 0:
            with self.lock:
                body["owned"] = encode_partitions(self.owned)
        if self.assignor is not None and self.member_epoch == 0:
            body["assignor"] = self.assignor
        return body

    async def _run(self) -> None:
        failures = 0
        while not self._stopped:
            try:
                answer = await self.transport.json(
                    self.url,
                    "POST",
                    f"/v1/groups/{q(self.group_id)}/heartbeat",
                    self._body(),
                    timeout=self.request_timeout_s,
                )
            except (UnknownMemberIdError, FencedMemberEpochError) as exc:
                log.warning("event=member_fenced group=%s error=%r", self.group_id, str(exc))
                with self.lock:
                    self.member_epoch = 0
                    self.target = frozenset()
                    self.lost_generation += 1
                    self.notify()
                continue
            except GafkaError as exc:
                if not exc.retriable:
                    log.error("event=heartbeat_failed group=%s error=%r", self.group_id, str(exc))
                    with self.lock:
                        self.fatal = exc
                        self.notify()
                    self.joined.set()
                    return
                failures += 1
                delay = min(self.retry_backoff_s * 2 ** min(failures, 6), self.interval_s) * random.uniform(0.8, 1.2)
                log.debug("event=heartbeat_retry group=%s error=%r", self.group_id, str(exc))
                await self._sleep(delay)
                continue
            failures = 0
            target = decode_partitions(answer.get("assignment") or [])
            with self.lock:
                self.member_id = str(answer["member_id"])
                self.member_epoch = int(answer["member_epoch"])
                self.interval_s = max(int(answer.get("heartbeat_interval_ms", 5000)), 10) / 1000
                if target != self.target:
                    self.target = target
                    self._fast = _FAST_ROUNDS
                    self.notify()
            self.joined.set()
            if self._fast > 0:
                delay = min(0.05 * 2 ** (_FAST_ROUNDS - self._fast), self.interval_s)
                self._fast -= 1
            else:
                delay = self.interval_s
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()

    async def leave(self) -> None:
        """Leave the group (static members leave temporarily and keep their partitions for a restart)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.member_id is None or self.member_epoch < 0:
            return
        epoch = STATIC_LEAVE_EPOCH if self.instance_id is not None else LEAVE_EPOCH
        body: dict[str, Any] = {"member_id": self.member_id, "member_epoch": epoch, "topics": self.topics}
        if self.instance_id is not None:
            body["instance_id"] = self.instance_id
        try:
            await self.transport.json(
                self.url, "POST", f"/v1/groups/{q(self.group_id)}/heartbeat", body, timeout=self.request_timeout_s
            )
        except GafkaError as exc:
            log.warning("event=leave_failed group=%s error=%r", self.group_id, str(exc))
        with self.lock:
            self.member_epoch = 0
            self.member_id = None
            self.target = frozenset()
