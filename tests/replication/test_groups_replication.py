"""Consumer groups on a replicated cluster: the coordinator is the leader of the group's offsets partition.

Any broker takes group requests (forwarding them to the coordinator), ``__consumer_offsets`` is created
with replication factor 3, and committed offsets survive the coordinator's death: the new leader of the
partition loads them.
"""

from __future__ import annotations

from typing import Any

from gafka.partitioner import partition_for_key

from .conftest import Cluster

OFFSETS_TOPIC = "__consumer_offsets"


def test_groups_are_coordinated_by_the_offsets_leader_and_survive_its_death(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3, "--offsets-topic-num-partitions", "3")
    cluster.create_topic("orders", 2, 3)
    group = "payments"
    with cluster.client(0) as http:
        joined = http.post(
            f"/v1/groups/{group}/heartbeat", json={"member_id": "m-1", "member_epoch": 0, "topics": ["orders"]}
        )
        assert joined.status_code == 200, joined.text
        epoch = joined.json()["member_epoch"]
    state = cluster.partition_state(OFFSETS_TOPIC, partition_for_key(group.encode(), 3))
    assert len(state["replicas"]) == 3
    coordinator = state["leader"]
    for broker_id in cluster.brokers:  # every broker answers for the group, whoever coordinates it
        with cluster.client(broker_id) as http:
            commit = http.post(
                f"/v1/groups/{group}/offsets",
                json={
                    "member_id": "m-1",
                    "member_epoch": epoch,
                    "offsets": [{"topic": "orders", "partition": 0, "offset": 10 + broker_id}],
                },
            )
            assert commit.status_code == 200, commit.text
            described = http.get(f"/v1/groups/{group}").json()
            assert described["coordinator"] == coordinator
            assert [g["group"] for g in http.get("/v1/groups").json()["groups"]] == [group]
    cluster.kill(coordinator)
    new = cluster.wait_for_leader(OFFSETS_TOPIC, partition_for_key(group.encode(), 3), not_in={coordinator})
    survivor = next(b for b in cluster.brokers if b not in (coordinator, new))

    def committed() -> list[dict[str, Any]] | None:
        with cluster.client(survivor, timeout=5) as http:
            response = http.get(f"/v1/groups/{group}/offsets")
        return response.json()["offsets"] if response.status_code == 200 and response.json()["offsets"] else None

    offsets = cluster.wait_for(committed, 20, "committed offsets from the new coordinator")
    assert [(o["topic"], o["partition"], o["offset"]) for o in offsets] == [("orders", 0, 12)]
    with cluster.client(survivor) as http:
        assert http.get(f"/v1/groups/{group}").json()["coordinator"] == new


def test_group_lag_is_known_on_partitions_led_by_other_brokers(cluster_factory: Any) -> None:
    """The coordinator asks the other leaders for their high watermarks (describe), and /metrics exports every
    committed offset, so lag is known on every partition however leaderships are spread."""
    cluster: Cluster = cluster_factory(3, "--offsets-topic-num-partitions", "1")
    cluster.create_topic("orders", 3, 1)
    leaders = {cluster.leader("orders", p) for p in range(3)}
    group = "spread"
    with cluster.client(0) as http:
        for p in range(3):
            records = [{"value": f"v{i}", "partition": p} for i in range(5)]
            assert http.post("/v1/topics/orders/records", json={"records": records}).status_code == 200

        def join() -> Any:
            # the first heartbeat creates __consumer_offsets; its partition has no leader for a moment (503
            # LEADER_NOT_AVAILABLE, retriable), as a client would retry
            answer = http.post(f"/v1/groups/{group}/heartbeat", json={"member_epoch": 0, "topics": ["orders"]})
            return answer if answer.status_code != 503 else None

        joined = cluster.wait_for(join, 20, "the group's coordinator")
        assert joined.status_code == 200, joined.text
        member, epoch = joined.json()["member_id"], joined.json()["member_epoch"]
        offsets = [{"topic": "orders", "partition": p, "offset": 2} for p in range(3)]
        commit = http.post(
            f"/v1/groups/{group}/offsets", json={"member_id": member, "member_epoch": epoch, "offsets": offsets}
        )
        assert commit.status_code == 200, commit.text
        described = http.get(f"/v1/groups/{group}").json()
    coordinator = described["coordinator"]
    assert leaders - {coordinator}, "some partition is led by another broker than the coordinator"
    assert [(p["partition"], p["log_end_offset"], p["lag"]) for p in described["partitions"]] == [
        (0, 5, 3),
        (1, 5, 3),
        (2, 5, 3),
    ]
    with cluster.client(coordinator) as http:
        text = http.get("/metrics").text
    for p in range(3):
        line = f'gafka_group_committed_offset{{group="{group}",partition="{p}",topic="orders"}} 2.0'
        assert line in text, line
