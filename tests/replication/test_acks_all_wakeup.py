"""acks=all is released by the followers' next fetch, never by ``replica.fetch.wait.max.ms`` running out.

A follower fetches every partition it follows from one leader in one request, which the leader parks while
none of them has new data. The brokers here wait 60 s for data (``--replica-fetch-wait-max-ms``), longer than
the produce's own 20 s timeout (and followers stay in the ISR for 30 s, so a loaded machine does not
shrink it): an ``acks=all`` produce can only succeed if its append ends the followers'
parked fetches at once, whichever of the leader's partitions it went to. With six partitions on three
brokers each follower fetches two partitions from each leader, the case that used to wait out the timer.
"""

from __future__ import annotations

import re
from typing import Any

from .conftest import Cluster

_WAITS = re.compile(r'^gafka_replica_fetch_waits_total\{ended_by="(\w+)"\} (\S+)$', re.MULTILINE)


def fetch_waits(cluster: Cluster, ended_by: str) -> float:
    """Parked follower fetches ended by ``ended_by`` (woken / max_wait), summed over the cluster's leaders."""
    total = 0.0
    for broker_id in cluster.brokers:
        with cluster.client(broker_id) as http:
            text = http.get("/metrics").text
        total += sum(float(value) for label, value in _WAITS.findall(text) if label == ended_by)
    return total


def test_every_acks_all_produce_is_released_by_a_follower_fetch(cluster_factory: Any) -> None:
    cluster = cluster_factory(3, "--replica-fetch-wait-max-ms", "60000", "--replica-lag-time-max-ms", "30000")
    cluster.create_topic("wake", partitions=6, replication_factor=3, configs={"min.insync.replicas": "2"})
    woken_before = fetch_waits(cluster, "woken")
    produced = 0
    for round_ in range(3):
        for partition in range(6):
            with cluster.client(cluster.leader("wake", partition)) as http:
                response = http.post(
                    "/v1/topics/wake/records",
                    json={"records": [{"value": f"r{round_}p{partition}", "partition": partition}]},
                    params={"acks": "all", "timeout_ms": "20000"},
                )
            assert response.status_code == 200, (partition, response.text)
            assert response.json()["offsets"][0]["offset"] == round_
            produced += 1
    # the leaders counted the followers' parked fetches that the appends ended (two per produce, at least one)
    assert fetch_waits(cluster, "woken") - woken_before >= produced
