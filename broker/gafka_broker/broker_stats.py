"""One broker's own numbers, read on demand: traffic counters, disk, connections and the cluster it sees.

``GET /v1/broker`` answers with them (the console differences two answers into bytes per second) and
``/metrics`` exports them (:class:`gafka_broker.metrics.BrokerCollector`): one reading, two faces.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gafka_broker.cluster_health import ClusterHealth, cluster_health
from gafka_broker.metrics import BYTES_IN, BYTES_OUT, LISTENER_CONNECTIONS, MESSAGES_IN, MESSAGES_OUT, counter_total

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["BrokerSnapshot", "broker_stats", "snapshot"]


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    broker_id: int
    rack: str | None
    controller_id: int
    disk_free_bytes: int
    disk_capacity_bytes: int
    log_size_bytes: int
    connections: dict[str, int]
    health: ClusterHealth | None
    """None until the broker has read the cluster metadata."""
    live_brokers: int
    fenced_brokers: int


def snapshot(broker: Broker) -> BrokerSnapshot:
    free = capacity = 0
    with contextlib.suppress(OSError):  # a data dir that vanished shows as a full disk, not as a crash
        usage = shutil.disk_usage(broker.config.data_dir)
        free, capacity = usage.free, usage.total
    metadata = broker.replica_manager.metadata
    fenced = sum(1 for info in metadata.brokers.values() if info.fenced) if metadata is not None else 0
    return BrokerSnapshot(
        broker_id=broker.meta.broker_id,
        rack=broker.config.rack,
        controller_id=broker.controller_id,
        disk_free_bytes=free,
        disk_capacity_bytes=capacity,
        log_size_bytes=sum(partition.log.size_bytes for partition in broker.partitions()),
        connections={listener: count() for listener, count in LISTENER_CONNECTIONS.items()},
        health=cluster_health(metadata) if metadata is not None else None,
        live_brokers=len(metadata.brokers) - fenced if metadata is not None else 0,
        fenced_brokers=fenced,
    )


def broker_stats(broker: Broker) -> dict[str, Any]:
    """The JSON of ``GET /v1/broker``."""
    stats = snapshot(broker)
    load = stats.health.brokers.get(stats.broker_id) if stats.health is not None else None
    return {
        "id": stats.broker_id,
        "url": broker.url,
        "rack": stats.rack,
        "ready": broker.ready and not broker.stopping,
        "time_ms": int(time.time() * 1000),
        "leaders": load.leaders if load is not None else 0,
        "replicas": load.replicas if load is not None else 0,
        "bytes_in_total": counter_total(BYTES_IN),
        "bytes_out_total": counter_total(BYTES_OUT),
        "messages_in_total": counter_total(MESSAGES_IN),
        "messages_out_total": counter_total(MESSAGES_OUT),
        "log_size_bytes": stats.log_size_bytes,
        "disk_free_bytes": stats.disk_free_bytes,
        "disk_capacity_bytes": stats.disk_capacity_bytes,
        "connections": stats.connections,
    }
