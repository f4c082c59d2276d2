"""Client metadata refreshes: what a producer or consumer learns when it asks the cluster again."""

from __future__ import annotations

from typing import Any

from gafka.metadata import ClusterMetadata, refresh_sync


class ScriptedTransport:
    """Answers GET /v1/cluster and GET /v1/topics/<t> from a dict that the test changes between refreshes."""

    def __init__(self, brokers: dict[int, str], leader: int) -> None:
        self.brokers = brokers
        self.leader = leader
        self.asked: list[str] = []

    def json(self, url: str, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.asked.append(f"{url}{path}")
        if path == "/v1/cluster":
            return {"brokers": [{"id": b, "url": u} for b, u in self.brokers.items()]}
        return {"name": "t", "partitions": [{"partition": 0, "leader": self.leader, "replicas": [0, 1], "isr": [0, 1]}]}


def test_a_refresh_learns_new_brokers_and_new_addresses() -> None:
    """A scale-up adds brokers and a recreated pod comes back on a new IP: the broker list must follow, or the
    client keeps sending to an address that is gone (or never finds the new leader)."""
    transport = ScriptedTransport({0: "http://10.0.0.1:9092"}, leader=0)
    metadata = ClusterMetadata("http://bootstrap:9092")
    refresh_sync(transport, metadata, "t")  # type: ignore[arg-type]
    assert metadata.leader_url("t", 0) == "http://10.0.0.1:9092"

    transport.brokers = {0: "http://10.0.0.1:9092", 4: "http://10.0.0.5:9092"}
    transport.leader = 4
    refresh_sync(transport, metadata, "t")  # type: ignore[arg-type]
    assert metadata.leader_url("t", 0) == "http://10.0.0.5:9092"

    transport.brokers = {0: "http://10.0.0.1:9092", 4: "http://10.0.0.9:9092"}  # broker 4's pod was recreated
    refresh_sync(transport, metadata, "t")  # type: ignore[arg-type]
    assert metadata.leader_url("t", 0) == "http://10.0.0.9:9092"
