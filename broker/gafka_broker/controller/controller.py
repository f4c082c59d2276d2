"""The controller: applies the pure decisions of :mod:`.decisions` to a :class:`MetadataStore`.

Every change is read-decide-compare-and-set, retried on a version conflict, so the controller holds no
state of its own: restart it, or run a second one, and it carries on from the store. Callers (the HTTP
service of a broker or of ``gafka dev``, the Kubernetes operator) pass time in, which keeps tests exact.
"""

from __future__ import annotations

import logging
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from gafka_broker.controller import decisions
from gafka_broker.controller.metadata import ClusterMetadata
from gafka_broker.controller.placement import rebalance_targets
from gafka_broker.controller.store import MetadataStore, VersionConflictError

logger = logging.getLogger(__name__)

_MAX_RETRIES = 20


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    broker_session_timeout_ms: int = 9_000
    """Kafka's ``broker.session.timeout.ms``; ``gafka dev`` runs with a shorter one for fast failover."""
    auto_leader_rebalance: bool = True
    leader_imbalance_check_interval_ms: int = 300_000
    """Kafka's ``leader.imbalance.check.interval.seconds`` (300 s): how often preferred replicas that are
    caught up get their leadership back. Not at every tick: a replica that just rejoined the ISR settles first."""


class Controller:
    """Cluster metadata changes, each one atomic against the store."""

    def __init__(self, store: MetadataStore, settings: ControllerSettings | None = None, cluster_id: str | None = None):
        self.store = store
        self.settings = settings or ControllerSettings()
        self._cluster_id = cluster_id
        self._changed = threading.Condition()
        self._listeners: list[Callable[[ClusterMetadata], None]] = []
        self._last_heartbeats: dict[int, int] = {}
        self._caught_up: dict[int, frozenset[tuple[str, int]]] = {}
        """Per broker, the partitions it last reported as a fully caught-up follower (kept in memory, as
        heartbeats are)."""
        self._last_imbalance_check_ms: int | None = None

    # -- reading -------------------------------------------------------------------------------------
    def metadata(self) -> ClusterMetadata:
        current = self.store.load()
        if current is None:
            current = self._apply(lambda metadata: metadata)
        return current

    def on_change(self, listener: Callable[[ClusterMetadata], None]) -> None:
        """Call ``listener`` with the new metadata after every successful change (the HTTP service wakes
        its long polls with it)."""
        self._listeners.append(listener)

    # -- the read-decide-write loop ------------------------------------------------------------------
    def _apply(self, decide: Callable[[ClusterMetadata], ClusterMetadata]) -> ClusterMetadata:
        for _ in range(_MAX_RETRIES):
            current = self.store.load()
            if current is None:
                current = ClusterMetadata(cluster_id=self._cluster_id or uuid.uuid4().hex)
            proposed = decide(current)
            if proposed == current and current.version > 0:
                return current
            try:
                stored = self.store.compare_and_set(current.version, proposed)
            except VersionConflictError:
                continue
            for listener in self._listeners:
                listener(stored)
            return stored
        raise VersionConflictError(f"gave up after {_MAX_RETRIES} conflicting attempts")

    # -- brokers -------------------------------------------------------------------------------------
    def register_broker(
        self,
        broker_id: int,
        url: str,
        rack: str | None,
        incarnation: str,
        now_ms: int,
        kafka_address: str | None = None,
    ) -> ClusterMetadata:
        stored = self._apply(
            lambda m: decisions.register_broker(m, broker_id, url, rack, incarnation, now_ms, kafka_address)
        )
        self._last_heartbeats[broker_id] = now_ms
        self._caught_up.pop(broker_id, None)
        logger.info("event=broker_registered broker=%d url=%s incarnation=%s", broker_id, url, incarnation)
        return stored

    def heartbeat(
        self, broker_id: int, incarnation: str, now_ms: int, caught_up: Iterable[tuple[str, int]] = ()
    ) -> ClusterMetadata:
        """Liveness is kept in memory (as KRaft does): a heartbeat writes to the store only when it
        unfences the broker, so steady heartbeats cost no fsync and publish no new metadata version.
        ``caught_up``: partitions this broker follows fully caught up (see :func:`decisions.elect_preferred`)."""
        current = self.metadata()
        broker = current.brokers.get(broker_id)
        if broker is None or broker.incarnation != incarnation:
            raise decisions.ControllerError("UNKNOWN_BROKER", f"broker {broker_id} ({incarnation}) must register first")
        self._last_heartbeats[broker_id] = now_ms
        self._caught_up[broker_id] = frozenset(caught_up)
        if not broker.fenced:
            return current
        return self._apply(lambda m: decisions.heartbeat(m, broker_id, incarnation, now_ms))

    def tick(self, now_ms: int) -> ClusterMetadata:
        """Periodic work: fence silent brokers, finish reassignments, give preferred leaders back (every
        ``leader_imbalance_check_interval_ms``)."""

        known = self.store.load()
        interval = self.settings.leader_imbalance_check_interval_ms
        if self._last_imbalance_check_ms is None:
            self._last_imbalance_check_ms = now_ms  # a controller that just started lets the brokers settle first
        rebalance = self.settings.auto_leader_rebalance and now_ms - self._last_imbalance_check_ms >= interval
        if rebalance:
            self._last_imbalance_check_ms = now_ms
        caught_up = dict(self._caught_up)
        for broker_id in known.brokers if known is not None else ():
            # a controller that just (re)started gives every broker one full session to check in
            self._last_heartbeats.setdefault(broker_id, now_ms)

        def decide(metadata: ClusterMetadata) -> ClusterMetadata:
            updated = decisions.fence_expired(
                metadata, now_ms, self.settings.broker_session_timeout_ms, self._last_heartbeats
            )
            updated = decisions.advance_reassignments(updated)
            if rebalance:
                updated = decisions.elect_preferred(updated, caught_up)
            return decisions.elect_offline(updated)

        before = known
        after = self._apply(decide)
        if before is not None:
            for broker_id, broker in after.brokers.items():
                if broker.fenced and not before.brokers.get(broker_id, broker).fenced:
                    logger.warning("event=broker_fenced broker=%d", broker_id)
        return after

    def fence_broker(self, broker_id: int) -> ClusterMetadata:
        """Fence at once (Kubernetes saw the pod go), without waiting for the session timeout."""
        return self._apply(lambda m: decisions.fence(m, [broker_id]))

    def controlled_shutdown(self, broker_id: int) -> ClusterMetadata:
        return self._apply(lambda m: decisions.controlled_shutdown(m, broker_id))

    def replica_damaged(self, broker_id: int, topic: str, index: int) -> ClusterMetadata:
        stored = self._apply(lambda m: decisions.replica_damaged(m, broker_id, topic, index))
        logger.warning("event=replica_damaged broker=%d topic=%s partition=%d", broker_id, topic, index)
        return stored

    # -- topics --------------------------------------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> ClusterMetadata:
        start = zlib.crc32(name.encode()) % 1024  # stable across processes, unlike hash()
        return self._apply(
            lambda m: decisions.create_topic(m, name, partitions, replication_factor, configs, placement_start=start)
        )

    def add_partitions(self, name: str, total: int) -> ClusterMetadata:
        return self._apply(lambda m: decisions.add_partitions(m, name, total))

    def alter_configs(self, name: str, configs: Mapping[str, str]) -> ClusterMetadata:
        return self._apply(lambda m: decisions.alter_configs(m, name, configs))

    def delete_topic(self, name: str) -> ClusterMetadata:
        return self._apply(lambda m: decisions.delete_topic(m, name))

    def alter_partition(
        self, topic: str, index: int, *, leader: int, leader_epoch: int, partition_epoch: int, isr: Iterable[int]
    ) -> ClusterMetadata:
        wanted = tuple(isr)
        return self._apply(
            lambda m: decisions.alter_partition(
                m, topic, index, leader=leader, leader_epoch=leader_epoch, partition_epoch=partition_epoch, isr=wanted
            )
        )

    def allocate_producer_ids(self, count: int) -> int:
        """Reserve ``count`` producer ids for a broker; returns the first. Durable before it returns, so an
        id is never handed out twice, even across controller restarts."""
        block: list[int] = []

        def decide(metadata: ClusterMetadata) -> ClusterMetadata:
            updated, start = decisions.allocate_producer_ids(metadata, count)
            block[:] = [start]
            return updated

        self._apply(decide)
        return block[0]

    # -- scaling -------------------------------------------------------------------------------------
    def rebalance(self, brokers: Iterable[int] | None = None) -> ClusterMetadata:
        """Spread replicas evenly over ``brokers`` (default: every live, non-draining broker)."""
        chosen = None if brokers is None else sorted(brokers)

        def decide(metadata: ClusterMetadata) -> ClusterMetadata:
            allowed = chosen or [b for b in metadata.live_brokers() if not metadata.brokers[b].draining]
            current = {
                (name, index): state.replicas
                for name, topic in metadata.topics.items()
                for index, state in enumerate(topic.partitions)
                if not state.adding and not state.removing
            }
            racks = {b: metadata.brokers[b].rack for b in allowed}
            try:
                targets = rebalance_targets(current, allowed, racks)
            except ValueError as exc:
                raise decisions.ControllerError("INVALID_REPLICATION_FACTOR", str(exc)) from None
            return decisions.start_reassignment(metadata, targets)

        return self._apply(decide)

    def drain(self, broker_ids: Iterable[int]) -> ClusterMetadata:
        """Mark brokers for removal and move their replicas to the others (scale-down, step one).
        Refused when the remaining brokers could not hold every partition's replication factor."""
        doomed = set(broker_ids)

        def decide(metadata: ClusterMetadata) -> ClusterMetadata:
            remaining = [b for b in metadata.brokers if b not in doomed]
            needed = max((t.replication_factor for t in metadata.topics.values()), default=0)
            if needed > len(remaining):
                raise decisions.ControllerError(
                    "INVALID_REPLICATION_FACTOR",
                    f"removing brokers {sorted(doomed)} would leave {len(remaining)}, "
                    f"fewer than the replication factor {needed}",
                )
            updated = metadata
            for broker_id in doomed & set(metadata.brokers):
                updated = updated.with_broker(replace(updated.brokers[broker_id], draining=True))
            return updated

        self._apply(decide)
        return self.rebalance([b for b in self.metadata().brokers if b not in doomed])

    def is_drained(self, broker_id: int) -> bool:
        return not decisions.hosted_by(self.metadata(), broker_id)

    def forget_broker(self, broker_id: int) -> ClusterMetadata:
        """Remove a drained broker from the metadata (scale-down, last step)."""

        def decide(metadata: ClusterMetadata) -> ClusterMetadata:
            if decisions.hosted_by(metadata, broker_id):
                raise decisions.ControllerError("INVALID_REQUEST", f"broker {broker_id} still hosts replicas")
            brokers = dict(metadata.brokers)
            brokers.pop(broker_id, None)
            return replace(metadata, brokers=brokers)

        return self._apply(decide)
