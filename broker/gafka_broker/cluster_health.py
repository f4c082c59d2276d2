"""Cluster health from one metadata snapshot: leaderships per broker, under-replicated and offline partitions.

One place for the counts that ``GET /v1/cluster`` shows (the console's overview) and ``/metrics`` exports
(the dashboards and alerts), so a number on the screen and the number an alert fires on cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gafka_broker.controller.metadata import NO_LEADER, ClusterMetadata

__all__ = ["BrokerLoad", "ClusterHealth", "cluster_health"]

MIN_ISR_CONFIG = "min.insync.replicas"


@dataclass(slots=True)
class BrokerLoad:
    """What one broker carries: partitions it leads and replicas it hosts."""

    leaders: int = 0
    replicas: int = 0


@dataclass(slots=True)
class ClusterHealth:
    partitions: int = 0
    under_replicated: int = 0
    """Fewer in-sync replicas than replicas."""
    under_min_isr: int = 0
    """Fewer in-sync replicas than the topic's ``min.insync.replicas``: ``acks=all`` produces are refused."""
    offline: int = 0
    """No leader: nobody can read or write the partition."""
    brokers: dict[int, BrokerLoad] = field(default_factory=dict)

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.partitions,
            "under_replicated": self.under_replicated,
            "under_min_isr": self.under_min_isr,
            "offline": self.offline,
        }


def cluster_health(metadata: ClusterMetadata) -> ClusterHealth:
    """Count every partition of every topic (internal ones included: a group coordinator down is an outage)."""
    health = ClusterHealth(brokers={broker_id: BrokerLoad() for broker_id in metadata.brokers})
    for topic in metadata.topics.values():
        min_isr = int(topic.configs.get(MIN_ISR_CONFIG, "1"))
        for state in topic.partitions:
            health.partitions += 1
            if state.leader == NO_LEADER:
                health.offline += 1
            else:
                health.brokers.setdefault(state.leader, BrokerLoad()).leaders += 1
            if state.under_replicated:
                health.under_replicated += 1
            if len(state.isr) < min_isr:
                health.under_min_isr += 1
            for replica in state.replicas:
                health.brokers.setdefault(replica, BrokerLoad()).replicas += 1
    return health
