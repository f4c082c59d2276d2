"""Replication metrics: the replicas' state, read when Prometheus scrapes, and one counter of parked follower
fetches by how their wait ended (counted once per wait, not per request)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gafka_broker.partition import BrokerPartition

__all__ = ["FOLLOWER_FETCH_WAITS", "REPLICATION"]

FOLLOWER_FETCH_WAITS = Counter(
    "gafka_replica_fetch_waits",
    "Follower fetches the leader parked for lack of new data, by what ended the wait: woken (an append to "
    "one of their partitions, or a role change) or max_wait (replica.fetch.wait.max.ms passed). A follower "
    "moves the high watermark only by fetching again, so acks=all waits on the first kind.",
    ["ended_by"],
)


class ReplicationCollector(Collector):
    """Leadership, ISR and follower lag of every replica this broker hosts."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[BrokerPartition]] = tuple

    def collect(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        leader = GaugeMetricFamily("gafka_partition_leader", "1 when this broker leads the partition.", labels=labels)
        epoch = GaugeMetricFamily("gafka_partition_leader_epoch", "The leader epoch this replica knows.", labels=labels)
        isr = GaugeMetricFamily(
            "gafka_partition_in_sync_replicas", "Size of the ISR (reported by the leader).", labels=labels
        )
        under = GaugeMetricFamily(
            "gafka_partition_under_replicated",
            "1 when the ISR is smaller than the replica set (reported by the leader).",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "gafka_replica_lag_offsets",
            "How many offsets a follower is behind the leader's log end (reported by the leader).",
            labels=[*labels, "replica"],
        )
        for partition in self.source():
            values = [partition.topic, str(partition.partition)]
            leader.add_metric(values, 1 if partition.is_leader else 0)
            epoch.add_metric(values, partition.leader_epoch)
            if not partition.is_leader:
                continue
            isr.add_metric(values, len(partition.isr))
            under.add_metric(values, 1 if len(partition.isr) < len(partition.replicas) else 0)
            end = partition.log_end_offset
            for broker_id, state in partition.followers.items():
                behind = end - state.log_end_offset if state.log_end_offset >= 0 else end
                lag.add_metric([*values, str(broker_id)], behind)
        yield from (leader, epoch, isr, under, lag)


REPLICATION = ReplicationCollector()
REGISTRY.register(REPLICATION)
