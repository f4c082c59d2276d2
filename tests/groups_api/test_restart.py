"""Group state and committed offsets live in __consumer_offsets and survive SIGTERM and SIGKILL."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

from .helpers import Member, committed, describe, error, settle, unique_group


def _topic(http: httpx.Client, name: str, partitions: int) -> None:
    assert http.post("/v1/topics", json={"name": name, "partitions": partitions}).status_code == 201


def _internal_topics(http: httpx.Client) -> list[dict[str, Any]]:
    topics: list[dict[str, Any]] = http.get("/v1/topics", params={"internal": "true"}).json()["topics"]
    return [t for t in topics if t.get("internal")]


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_groups_and_offsets_survive_a_restart(broker_factory: Any, stop: str) -> None:
    broker = broker_factory("--offsets-topic-num-partitions", "4")
    group, other = unique_group(), unique_group()
    with broker.client() as http:
        _topic(http, "orders", 4)
        _topic(http, "audit", 1)
        assert http.get("/v1/groups").json() == {"groups": []}
        assert _internal_topics(http) == []  # nothing is created until a group writes
        members = [Member(http, group, ["orders"]) for _ in range(2)]
        for member in members:
            member.join()
        settle(members)
        for member in members:
            assert member.commit({tp: 10 + tp[1] for tp in member.assignment}).status_code == 200
        admin = http.post(
            f"/v1/groups/{other}/offsets", json={"offsets": [{"topic": "audit", "partition": 0, "offset": 3}]}
        )
        assert admin.status_code == 200
        assert [t["partitions"] for t in _internal_topics(http)] == [4]
        before = describe(http, group)
        offsets = committed(http, group)
    if stop == "SIGTERM":
        assert broker.stop() == 0
    else:
        broker.signal(signal.SIGKILL)
        broker.wait()
    broker.start()
    with broker.client() as http:
        assert describe(http, group) == before
        assert committed(http, group) == offsets == {("orders", p): 10 + p for p in range(4)}
        assert committed(http, other) == {("audit", 0): 3}
        # members carry on with the epochs and assignments they had: no rejoin, no rebalance
        for member in members:
            member.http = http  # the broker came back on another port
            owned = set(member.assignment)
            member.heartbeat()
            assert member.assignment == owned
        assert describe(http, group)["group_epoch"] == before["group_epoch"]
        assert members[0].commit({min(members[0].assignment): 99}).status_code == 200


def test_deleted_topic_takes_its_offsets_along_for_good(broker_factory: Any) -> None:
    broker = broker_factory("--offsets-topic-num-partitions", "2")
    group = unique_group()
    with broker.client() as http:
        _topic(http, "gone", 2)
        _topic(http, "kept", 1)
        body = {
            "offsets": [
                {"topic": "gone", "partition": 0, "offset": 5},
                {"topic": "gone", "partition": 1, "offset": 6},
                {"topic": "kept", "partition": 0, "offset": 7},
            ]
        }
        assert http.post(f"/v1/groups/{group}/offsets", json=body).status_code == 200
        assert http.delete("/v1/topics/gone").status_code == 204
        assert committed(http, group) == {("kept", 0): 7}
        _topic(http, "gone", 2)  # a new topic of the same name starts without the old offsets
        assert committed(http, group) == {("kept", 0): 7}
    broker.signal(signal.SIGKILL)
    broker.wait()
    broker.start()
    with broker.client() as http:
        assert committed(http, group) == {("kept", 0): 7}


def test_internal_topic_is_readable_but_not_writable(broker_factory: Any) -> None:
    broker = broker_factory("--offsets-topic-num-partitions", "3")
    group = unique_group()
    with broker.client() as http:
        refused = http.post("/v1/topics", json={"name": "__consumer_offsets", "partitions": 1})
        assert error(refused) == (400, "INVALID_TOPIC_EXCEPTION")
        assert error(http.post("/v1/topics", json={"name": "__consumer.offsets"})) == (400, "INVALID_TOPIC_EXCEPTION")
        _topic(http, "orders", 1)
        member = Member(http, group, ["orders"])
        member.join()
        assert member.commit({("orders", 0): 42}).status_code == 200
        assert "__consumer_offsets" not in [t["name"] for t in http.get("/v1/topics").json()["topics"]]
        [internal] = _internal_topics(http)
        assert internal == {"name": "__consumer_offsets", "partitions": 3, "replication_factor": 1, "internal": True}
        described = http.get("/v1/topics/__consumer_offsets").json()
        assert described["internal"] is True
        # compacted only: time and size retention never remove live group records, the cleaner keeps them
        assert described["configs"]["cleanup.policy"] == "compact"

        partition = describe(http, group)["offsets_partition"]
        records = http.get(
            f"/v1/topics/__consumer_offsets/partitions/{partition}/records", params={"offset": 0, "max_wait_ms": 0}
        ).json()["records"]
        keys = [record["key"] for record in records]
        assert f'{{"type":"group","group":"{group}"}}' in keys
        assert f'{{"type":"offset","group":"{group}","topic":"orders","partition":0}}' in keys

        produce = http.post("/v1/topics/__consumer_offsets/records", json={"records": [{"value": "x"}]})
        assert error(produce) == (400, "INVALID_TOPIC_EXCEPTION")
        batches = http.post(
            "/v1/topics/__consumer_offsets/partitions/0/batches",
            content=b"x",
            headers={"content-type": "application/vnd.gafka.record-batch.v2"},
        )
        assert error(batches) == (400, "INVALID_TOPIC_EXCEPTION")
        assert error(http.patch("/v1/topics/__consumer_offsets", json={"partitions": 9})) == (
            400,
            "INVALID_TOPIC_EXCEPTION",
        )
        assert error(http.delete("/v1/topics/__consumer_offsets")) == (400, "INVALID_TOPIC_EXCEPTION")
        assert committed(http, group) == {("orders", 0): 42}
