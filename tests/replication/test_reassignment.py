"""Scaling at the controller: rebalance onto a new broker (add, catch up, switch, remove) and drain one,
with every acknowledged record still readable and every replica complete."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import Cluster
from .test_replication import read_values

DURABLE = {"min.insync.replicas": "2"}


def _produce(http: httpx.Client, topic: str, partition: int, values: list[str]) -> httpx.Response:
    records = [{"value": value, "partition": partition} for value in values]
    return http.post(f"/v1/topics/{topic}/records", json={"records": records}, params={"acks": "all"})


def _replica_ends(cluster: Cluster, topic: str) -> dict[int, list[int]]:
    """Per partition, the log end offset each of its assigned replicas reports."""
    ends: dict[int, list[int]] = {}
    metadata = cluster.metadata()
    for broker_id in cluster.brokers:
        hosted = set(_hosts(metadata, topic, broker_id))
        with cluster.client(broker_id, timeout=5) as http:
            text = http.get("/metrics").text
        for line in text.splitlines():
            if line.startswith("gafka_partition_log_end_offset{") and f'topic="{topic}"' in line:
                partition = int(line.split('partition="', 1)[1].split('"', 1)[0])
                if partition in hosted:
                    ends.setdefault(partition, []).append(int(float(line.rsplit(" ", 1)[1])))
    return ends


def _settled(metadata: dict[str, Any], topic: str) -> bool:
    partitions = next(t for t in metadata["topics"] if t["name"] == topic)["partitions"]
    return all(not p["adding"] and not p["removing"] and set(p["isr"]) == set(p["replicas"]) for p in partitions)


def _hosts(metadata: dict[str, Any], topic: str, broker: int) -> list[int]:
    partitions = next(t for t in metadata["topics"] if t["name"] == topic)["partitions"]
    return [index for index, p in enumerate(partitions) if broker in p["replicas"]]


def test_rebalance_onto_a_new_broker_then_drain_it(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(4)
    cluster.stop(3)  # the fourth broker joins later, as after `kubectl scale`
    cluster.wait_for(lambda: cluster.metadata()["brokers"][3]["fenced"], what="broker 3 fenced")
    cluster.create_topic("orders", 4, 2, DURABLE)
    assert not _hosts(cluster.metadata(), "orders", 3)
    expected: dict[int, list[str]] = {}
    for partition in range(4):
        values = [f"p{partition}-{index}" for index in range(20)]
        with cluster.client(cluster.leader("orders", partition)) as http:
            assert _produce(http, "orders", partition, values).status_code == 200
        expected[partition] = values

    cluster.start(3)
    cluster.wait_for(lambda: not cluster.metadata()["brokers"][3]["fenced"], what="broker 3 back")
    answer = httpx.post(f"{cluster.controller.url}/v1/controller/rebalance", json={}, timeout=10)
    assert answer.status_code == 200, answer.text
    cluster.wait_for(lambda: _settled(cluster.metadata(), "orders"), timeout=60, what="rebalance done")
    moved = _hosts(cluster.metadata(), "orders", 3)
    assert moved, "the new broker got no replica"
    loads = [len(_hosts(cluster.metadata(), "orders", broker)) for broker in range(4)]
    assert max(loads) - min(loads) <= 1, loads
    cluster.wait_for(
        lambda: all(ends == [20, 20] for ends in _replica_ends(cluster, "orders").values()),
        what="both replicas of every partition complete, the new broker's included",
    )

    answer = httpx.post(f"{cluster.controller.url}/v1/controller/drain", json={"brokers": [3]}, timeout=10)
    assert answer.status_code == 200, answer.text
    cluster.wait_for(
        lambda: _settled(cluster.metadata(), "orders") and not _hosts(cluster.metadata(), "orders", 3),
        timeout=60,
        what="broker 3 drained",
    )
    for partition, values in expected.items():
        with cluster.client(cluster.leader("orders", partition)) as http:
            assert read_values(http, "orders", partition) == values


def test_drain_below_the_replication_factor_is_refused(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 2, 3, DURABLE)
    answer = httpx.post(f"{cluster.controller.url}/v1/controller/drain", json={"brokers": [2]}, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_REPLICATION_FACTOR"
    assert all(not b.get("draining") for b in cluster.metadata()["brokers"])
