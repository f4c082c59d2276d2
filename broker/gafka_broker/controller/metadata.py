"""Cluster metadata: brokers, topics, and for each partition its replicas, leader, leader epoch and ISR.

Plain immutable values with a JSON form. The controller computes new values from old ones; a
:class:`~gafka_broker.controller.store.MetadataStore` keeps them with compare-and-set, so two
controllers (or an operator restarted mid-change) can never both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    broker_id: int
    url: str
    rack: str | None = None
    fenced: bool = True
    """A fenced broker leads nothing; brokers start fenced and are unfenced by their first heartbeat."""
    last_heartbeat_ms: int = 0
    incarnation: str = ""
    """Changes on every broker process start, so a restarted broker is recognised even if it was quick."""
    draining: bool = False
    """Asked to give up its replicas (scale-down): placement avoids it and reassignment moves its replicas away."""
    kafka_address: str | None = None
    """HOST:PORT of its Kafka listener (what Metadata answers clients), None when it has none."""
    shutting_down: bool = False
    """In a controlled shutdown (KIP-841): not live for elections, ISR expansion or placement, though it still
    fetches until it stops, so no ``acks=all`` waits on it; its next registration (a new process) clears it."""


@dataclass(frozen=True, slots=True)
class PartitionState:
    replicas: tuple[int, ...]
    """Assigned replicas; the first is the preferred leader."""
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int = 0
    """Moves on every change (leader or ISR), the compare-and-set token of AlterPartition."""
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()
    """An in-flight reassignment: ``adding`` catch up as extra replicas, then ``removing`` leave."""

    @property
    def preferred_leader(self) -> int:
        return self.replicas[0] if self.replicas else NO_LEADER

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    def with_change(self, **changes: Any) -> PartitionState:
        """A copy with ``changes`` and the partition epoch moved on."""
        return replace(self, partition_epoch=self.partition_epoch + 1, **changes)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: str
    configs: Mapping[str, str]
    partitions: tuple[PartitionState, ...]
    replication_factor: int


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    cluster_id: str
    brokers: Mapping[int, BrokerInfo] = field(default_factory=dict)
    topics: Mapping[str, TopicInfo] = field(default_factory=dict)
    version: int = 0
    """The store's version this value was read at (compare-and-set token)."""
    next_producer_id: int = 0
    """First producer id not yet handed out; brokers take blocks of ids from here (Kafka's AllocateProducerIds)."""

    def live_brokers(self) -> list[int]:
        """Brokers that may lead, join an ISR or get new replicas: unfenced and not shutting down."""
        return sorted(
            broker_id for broker_id, broker in self.brokers.items() if not broker.fenced and not broker.shutting_down
        )

    def partition(self, topic: str, index: int) -> PartitionState | None:
        info = self.topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return None
        return info.partitions[index]

    def with_partition(self, topic: str, index: int, state: PartitionState) -> ClusterMetadata:
        info = self.topics[topic]
        partitions = list(info.partitions)
        partitions[index] = state
        topics = dict(self.topics)
        topics[topic] = replace(info, partitions=tuple(partitions))
        return replace(self, topics=topics)

    def with_broker(self, broker: BrokerInfo) -> ClusterMetadata:
        brokers = dict(self.brokers)
        brokers[broker.broker_id] = broker
        return replace(self, brokers=brokers)

    def with_topic(self, topic: TopicInfo | None, name: str) -> ClusterMetadata:
        topics = dict(self.topics)
        if topic is None:
            topics.pop(name, None)
        else:
            topics[name] = topic
        return replace(self, topics=topics)

    # -- JSON ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "next_producer_id": self.next_producer_id,
            "brokers": [
                {
                    "broker_id": b.broker_id,
                    "url": b.url,
                    "rack": b.rack,
                    "fenced": b.fenced,
                    "last_heartbeat_ms": b.last_heartbeat_ms,
                    "incarnation": b.incarnation,
                    "draining": b.draining,
                    "kafka_address": b.kafka_address,
                    "shutting_down": b.shutting_down,
                }
                for b in sorted(self.brokers.values(), key=lambda b: b.broker_id)
            ],
            "topics": [
                {
                    "name": t.name,
                    "topic_id": t.topic_id,
                    "configs": dict(t.configs),
                    "replication_factor": t.replication_factor,
                    "partitions": [
                        {
                            "replicas": list(p.replicas),
                            "leader": p.leader,
                            "leader_epoch": p.leader_epoch,
                            "isr": list(p.isr),
                            "partition_epoch": p.partition_epoch,
                            "adding": list(p.adding),
                            "removing": list(p.removing),
                        }
                        for p in t.partitions
                    ],
                }
                for t in sorted(self.topics.values(), key=lambda t: t.name)
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], version: int = 0) -> ClusterMetadata:
        brokers = {
            int(b["broker_id"]): BrokerInfo(
                broker_id=int(b["broker_id"]),
                url=b["url"],
                rack=b.get("rack"),
                fenced=bool(b.get("fenced", True)),
                last_heartbeat_ms=int(b.get("last_heartbeat_ms", 0)),
                incarnation=b.get("incarnation", ""),
                draining=bool(b.get("draining", False)),
                kafka_address=b.get("kafka_address"),
                shutting_down=bool(b.get("shutting_down", False)),
            )
            for b in data.get("brokers", [])
        }
        topics = {
            t["name"]: TopicInfo(
                name=t["name"],
                topic_id=t["topic_id"],
                configs=dict(t.get("configs", {})),
                replication_factor=int(t["replication_factor"]),
                partitions=tuple(
                    PartitionState(
                        replicas=tuple(p["replicas"]),
                        leader=int(p["leader"]),
                        leader_epoch=int(p["leader_epoch"]),
                        isr=tuple(p["isr"]),
                        partition_epoch=int(p.get("partition_epoch", 0)),
                        adding=tuple(p.get("adding", ())),
                        removing=tuple(p.get("removing", ())),
                    )
                    for p in t["partitions"]
                ),
            )
            for t in data.get("topics", [])
        }
        return cls(
            cluster_id=data["cluster_id"],
            brokers=brokers,
            topics=topics,
            version=version,
            next_producer_id=int(data.get("next_producer_id", 0)),
        )
