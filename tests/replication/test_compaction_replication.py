"""A compacted topic across brokers: a follower catching up copies the leader's cleaned log across its
holes, joins the ISR, and serves the same records once it leads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.broker.helpers import fetch_all, produce

from .conftest import Cluster


def _live(records: list[dict[str, Any]]) -> dict[str, str]:
    view: dict[str, str | None] = {}
    for record in records:
        view[record["key"]] = record["value"]
    return {key: value for key, value in view.items() if value is not None}


def test_follower_copies_a_cleaned_log_and_serves_it_as_leader(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(2, "--log-cleaner-backoff-ms", "50")
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "1024",
        "min.cleanable.dirty.ratio": "0.01",
        "min.insync.replicas": "1",
    }
    cluster.create_topic("state", 1, 2, configs)
    leader = cluster.leader("state", 0)
    follower = 1 - leader
    cluster.stop(follower)
    written: list[dict[str, Any]] = []
    with cluster.client(leader) as http:
        cluster.wait_for(lambda: set(cluster.partition_state("state", 0)["isr"]) == {leader}, 30, "ISR shrink")
        for round_ in range(40):
            records = [{"key": f"k{i}", "value": f"{round_}-" + "v" * 30} for i in range(4)]
            offsets = produce(http, "state", records)
            written += [{**r, "offset": o["offset"]} for r, o in zip(records, offsets, strict=True)]
        cluster.wait_for(lambda: len(fetch_all(http, "state", 0)) < len(written) / 2, 60, "the leader to clean")
        on_leader = fetch_all(http, "state", 0)
    assert on_leader[0]["offset"] > 0  # holes at the start: the follower must fetch across them
    cluster.start(follower)
    cluster.wait_for_isr("state", 0, {leader, follower}, timeout=60)
    cluster.stop(leader)
    assert cluster.wait_for_leader("state", 0, not_in={leader}, timeout=30) == follower
    with cluster.client(follower) as http:
        copied = fetch_all(http, "state", 0)
    originals = {r["offset"]: (r["key"], r["value"]) for r in written}
    assert all(originals[r["offset"]] == (r["key"], r["value"]) for r in copied)
    assert _live(copied) == _live(written)
