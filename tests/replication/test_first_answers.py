"""What a newcomer sees first on a three-broker cluster: every partition's lag in a group's description,
the controller in ``gafka cluster status``, and one shape for a refused produce wherever it is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gafka import Consumer, TopicPartition

from .conftest import SESSION_MS, Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("first-answers")
    cluster = Cluster(root, 3, (), SESSION_MS)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.shutdown()


def gafka_json(*args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "gafka.cli.main", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "-o" in args else result.stdout


def test_group_lag_is_shown_for_every_partition_wherever_it_is_led(cluster: Cluster) -> None:
    cluster.create_topic("lagging", partitions=6, replication_factor=2)
    with cluster.client(0) as http:
        for partition in range(6):
            records = [{"value": f"v{i}", "partition": partition} for i in range(3)]
            answer = http.post("/v1/topics/lagging/records", json={"records": records}, params={"acks": "all"})
            assert answer.status_code == 200, answer.text
    partitions = [TopicPartition("lagging", p) for p in range(6)]
    with Consumer(cluster.url(1), group_id="laggards", enable_auto_commit=False) as consumer:
        consumer.assign(partitions)
        consumer.commit({tp: 1 for tp in partitions})
    leaders = {cluster.leader("lagging", p) for p in range(6)}
    assert len(leaders) > 1  # some partitions are led by brokers other than the coordinator
    for broker_id in cluster.brokers:
        with cluster.client(broker_id) as http:
            described = http.get("/v1/groups/laggards").json()
        rows = {row["partition"]: row for row in described["partitions"] if row["topic"] == "lagging"}
        assert {p: (row["log_end_offset"], row["lag"]) for p, row in rows.items()} == {p: (3, 2) for p in range(6)}


def test_cluster_status_names_the_controller(cluster: Cluster) -> None:
    document = gafka_json("cluster", "status", "-o", "json", "-b", cluster.url(0))
    assert document["controller_url"] == cluster.controller.url
    table = gafka_json("cluster", "status", "-b", cluster.url(0))
    assert f"controller {cluster.controller.url}" in table
    controller_rows = [line for line in table.splitlines() if cluster.controller.url in line]
    assert any("controller" in line.split(cluster.controller.url, 1)[1] for line in controller_rows), table
    for broker_id in cluster.brokers:
        row = next(line for line in table.splitlines() if cluster.url(broker_id) in line)
        assert "broker" in row.split(cluster.url(broker_id), 1)[1], table


def test_a_refused_produce_has_one_shape_direct_or_forwarded(cluster: Cluster) -> None:
    cluster.create_topic("small", partitions=3, replication_factor=1, configs={"max.message.bytes": "1000"})
    leader = cluster.leader("small", 0)
    follower = next(broker_id for broker_id in cluster.brokers if broker_id != leader)
    body = {"records": [{"value": "x" * 2000, "partition": 0}]}
    answers = []
    for broker_id in (leader, follower):
        with cluster.client(broker_id) as http:
            response = http.post("/v1/topics/small/records", json=body)
        answers.append((response.status_code, sorted(response.json())))
    assert answers[0] == answers[1] == (413, ["error_code", "message", "record_index"])
