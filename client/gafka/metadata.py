"""Cluster and topic metadata cache: which broker leads each partition, and where brokers live.

Pure bookkeeping; the clients do the I/O (``GET /v1/cluster``, ``GET /v1/topics/{t}``) and feed the answers
in. A topic's entry is dropped (so the next use refetches it) when a broker answers
NOT_LEADER_OR_FOLLOWER or UNKNOWN_TOPIC_OR_PARTITION, and entries older than ``max_age_ms`` are refetched
anyway, as Kafka's ``metadata.max.age.ms``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gafka.errors import GafkaError, UnknownTopicOrPartitionError
from gafka.http import AsyncTransport, SyncTransport, normalize_url, q

STAGGER_S = 0.25
"""How long a metadata refresh waits for one broker before asking the next one as well."""

__all__ = ["ClusterMetadata", "PartitionInfo", "TopicInfo", "parse_bootstrap", "refresh_async", "refresh_sync"]


def parse_bootstrap(bootstrap: str | Sequence[str]) -> list[str]:
    """``"a:9092,b:9092"`` or a list of URLs -> normalized URLs."""
    items: Iterable[str] = bootstrap.split(",") if isinstance(bootstrap, str) else bootstrap
    urls = [normalize_url(item) for item in items if item.strip()]
    if not urls:
        raise ValueError("bootstrap needs at least one broker URL")
    return urls


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    leader_epoch: int = 0


@dataclass(slots=True)
class TopicInfo:
    name: str
    partitions: list[PartitionInfo]
    fetched_at: float = field(default_factory=time.monotonic)


class ClusterMetadata:
    """What the client knows about brokers and topic leaders."""

    def __init__(self, bootstrap: str | Sequence[str], *, max_age_ms: int = 300_000) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.max_age_s = max_age_ms / 1000
        self.brokers: dict[int, str] = {}
        self.limits: dict[str, int] = {}
        self.topics: dict[str, TopicInfo] = {}
        self._rotation = itertools.cycle(range(len(self.bootstrap)))

    # -- feeding -------------------------------------------------------------------------------------
    def apply_cluster(self, document: Mapping[str, Any]) -> None:
        """Apply a ``GET /v1/cluster`` answer."""
        self.brokers = {int(b["id"]): normalize_url(str(b["url"])) for b in document.get("brokers", [])}
        limits = document.get("limits") or {}
        self.limits = {str(key): int(value) for key, value in limits.items() if isinstance(value, int)}

    def apply_topic(self, document: Mapping[str, Any]) -> TopicInfo:
        """Apply a ``GET /v1/topics/{topic}`` answer."""
        partitions = sorted(
            (
                PartitionInfo(
                    int(p["partition"]),
                    int(p.get("leader", -1)),
                    tuple(p.get("replicas", ())),
                    tuple(p.get("isr", ())),
                    int(p.get("leader_epoch", 0)),
                )
                for p in document.get("partitions", [])
            ),
            key=lambda info: info.partition,
        )
        info = TopicInfo(str(document["name"]), partitions)
        self.topics[info.name] = info
        return info

    def invalidate(self, topic: str | None = None) -> None:
        """Forget a topic (or everything) so the next use refetches it."""
        if topic is None:
            self.topics.clear()
        else:
            self.topics.pop(topic, None)

    # -- queries -------------------------------------------------------------------------------------
    def topic(self, name: str) -> TopicInfo | None:
        """The cached topic, or None when unknown or older than ``max_age_ms``."""
        info = self.topics.get(name)
        if info is not None and time.monotonic() - info.fetched_at > self.max_age_s:
            return None
        return info

    def partition_count(self, name: str) -> int | None:
        info = self.topics.get(name)
        return None if info is None else len(info.partitions)

    def any_broker(self) -> str:
        """A broker to ask about the cluster: a known one, else the next bootstrap URL (round-robin)."""
        if self.brokers:
            return next(iter(self.brokers.values()))
        return self.bootstrap[next(self._rotation)]

    def candidates(self) -> list[str]:
        """Every URL worth trying for a cluster-wide request, known brokers first."""
        seen = dict.fromkeys([*self.brokers.values(), *self.bootstrap])
        return list(seen)

    def leader_url(self, topic: str, partition: int) -> str:
        """The URL of the partition's leader; a bootstrap broker when the leader is not known."""
        info = self.topics.get(topic)
        if info is not None and 0 <= partition < len(info.partitions):
            url = self.brokers.get(info.partitions[partition].leader)
            if url is not None:
                return url
        return self.any_broker()

    def limit(self, name: str, default: int) -> int:
        return self.limits.get(name, default)


# -- I/O helpers: the same lookups for blocking and asyncio callers ----------------------------------
def refresh_sync(transport: SyncTransport, metadata: ClusterMetadata, topic: str | None = None) -> TopicInfo | None:
    """Fetch the cluster and ``topic``; tries every known URL in turn.

    The broker list is fetched every time: brokers join (a scale-up) and come back on new addresses (a
    recreated pod gets a new IP), and a refresh is what follows a failed request to a stale address."""
    last: GafkaError | None = None
    for url in metadata.candidates():
        try:
            metadata.apply_cluster(transport.json(url, "GET", "/v1/cluster"))
            if topic is None:
                return None
            return metadata.apply_topic(transport.json(url, "GET", f"/v1/topics/{q(topic)}"))
        except GafkaError as exc:
            if not exc.retriable or isinstance(exc, UnknownTopicOrPartitionError):
                raise
            last = exc
    assert last is not None
    raise last


async def refresh_async(
    transport: AsyncTransport,
    metadata: ClusterMetadata,
    topic: str | None = None,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - per request, passed on to the transport
    last: str | None = None,
    stagger_s: float = STAGGER_S,
) -> TopicInfo | None:
    """:func:`refresh_sync` for asyncio callers, staggered: when a broker has not answered within
    ``stagger_s`` (paused, or partitioned away) the next one is asked too, and the first answer wins, so
    one silent broker never holds the refresh for a whole request timeout. ``timeout`` is per request;
    ``last`` (a URL that just failed) is asked after every other."""
    candidates = metadata.candidates()
    if last in candidates:
        candidates.remove(last)
        candidates.append(last)

    async def ask(url: str) -> tuple[Any, Any]:
        cluster = await transport.json(url, "GET", "/v1/cluster", timeout=timeout)
        if topic is None:
            return cluster, None
        return cluster, await transport.json(url, "GET", f"/v1/topics/{q(topic)}", timeout=timeout)

    failure: BaseException | None = None
    pending: set[asyncio.Task[tuple[Any, Any]]] = set()
    try:
        while candidates or pending:
            if candidates:
                task = asyncio.ensure_future(ask(candidates.pop(0)))
                task.add_done_callback(_retrieve)
                pending.add(task)
            done, pending = await asyncio.wait(
                pending, timeout=stagger_s if candidates else None, return_when=asyncio.FIRST_COMPLETED
            )
            for finished in done:
                error = finished.exception()
                if error is None:
                    cluster, document = finished.result()
                    metadata.apply_cluster(cluster)
                    return None if topic is None else metadata.apply_topic(document)
                if not isinstance(error, GafkaError) or not error.retriable:
                    raise error
                if isinstance(error, UnknownTopicOrPartitionError):
                    raise error
                failure = error
    finally:
        for task in pending:
            task.cancel()
    assert failure is not None
    raise failure


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a losing request's failure is expected, not "never retrieved"
