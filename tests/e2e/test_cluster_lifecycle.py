"""End to end, through a kubeconfig only: a 3-broker GafkaCluster and an RF 3 GafkaTopic, produce and consume
through the bootstrap address of the status, a leader pod deleted (and lost) while producing with acks=all,
scaling 3 -> 5 -> 3, and kubectl's view of it all.

The tests of this module share one cluster and run in order (each starts by waiting for the cluster to be
healthy again); locally the brokers are processes run by the node agent, on kind they are real pods.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gafka import Consumer, Producer
from gafka_operator.kube import ObjectRef
from operator_k8s.harness import create, gafka_cluster, gafka_topic

from .platform import Platform, wait_for
from .workload import (
    CLUSTER,
    PARTITIONS,
    TOPIC,
    AckedLoad,
    assert_nothing_acked_lost,
    bootstrap,
    cluster_ready,
    condition_status,
    get,
    partitions,
    watching,
)

LEADER_MOVE_S = 5.0
"""The issue's bound: a deleted leader pod's partitions have a new leader within this many seconds."""

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------------- helpers


CLUSTER_SPEC: dict[str, Any] = {
    "storage": {"size": "1Gi"},
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "rack": {"topologyKey": "topology.kubernetes.io/zone"},
    "listeners": {"addressType": "PodIP"},  # pod IPs: what a client outside cluster DNS (this test) can reach
    "config": {"default_replication_factor": 3, "min_insync_replicas": 2},
}


def in_sync(platform: Platform, namespace: str, brokers: set[int] | None = None) -> list[dict[str, Any]] | None:
    """The partitions when every one is fully replicated, no reassignment under way (a partition being moved has
    RF + 1 replicas until the old one is removed), and on ``brokers`` only, when given."""
    parts = partitions(platform, namespace)
    for part in parts:
        if len(part["replicas"]) != 3 or sorted(part["isr"]) != sorted(part["replicas"]):
            return None
        if part["leader"] not in part["replicas"]:
            return None
        if brokers is not None and not set(part["replicas"]) <= brokers:
            return None
    return parts if len(parts) == PARTITIONS else None


def healthy(platform: Platform, namespace: str, replicas: int) -> list[dict[str, Any]]:
    wait_for(
        platform, f"GafkaCluster Ready with {replicas} brokers", lambda: cluster_ready(platform, namespace, replicas)
    )
    return wait_for(
        platform, "every partition in sync", lambda: in_sync(platform, namespace, set(range(replicas))), timeout=120
    )


@pytest.fixture
def load(platform: Platform, e2e_namespace: str) -> Iterator[AckedLoad]:
    running = AckedLoad(bootstrap(platform, e2e_namespace))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_for(platform, "the first acknowledged messages", lambda: running.count() > 50)
    yield running
    running.stop.set()
    thread.join(timeout=90)


# --------------------------------------------------------------------------------------------------- tests


def test_cluster_and_topic_become_ready_and_carry_messages(platform: Platform, e2e_namespace: str) -> None:
    ns = e2e_namespace
    create(platform.api, ns, gafka_cluster(CLUSTER, 3, **CLUSTER_SPEC))
    create(platform.api, ns, gafka_topic(TOPIC, CLUSTER, partitions=PARTITIONS, replicationFactor=3))
    obj = wait_for(platform, "GafkaCluster Ready", lambda: cluster_ready(platform, ns, 3), timeout=180)
    assert obj["status"]["bootstrap"] == f"http://{CLUSTER}.{ns}.svc:9092"
    assert sorted(b["id"] for b in obj["status"]["brokers"]) == [0, 1, 2]

    # the brokers run where the pods were bound, one per zone, and know their rack
    pods = {p["metadata"]["name"]: p for p in platform.api.list(ObjectRef("Pod", ns))}
    zones = set()
    for name in (f"{CLUSTER}-{i}" for i in range(3)):
        node = get(platform, "Node", None, pods[name]["spec"]["nodeName"])  # type: ignore[arg-type]
        zones.add(node["metadata"]["labels"]["topology.kubernetes.io/zone"])  # type: ignore[index]
        assert pods[name]["metadata"]["annotations"]["gafka.dev/rack"].startswith("zone-")
    assert len(zones) == 3, f"brokers not spread over the zones: {zones}"

    def topic_ready() -> dict[str, Any] | None:
        topic = get(platform, "GafkaTopic", ns, TOPIC)
        return topic if condition_status(topic, "Ready") == "True" else None

    topic = wait_for(platform, "GafkaTopic Ready", topic_ready)
    assert len(topic["status"]["partitions"]) == PARTITIONS
    assert all(sorted(p["isr"]) == [0, 1, 2] for p in topic["status"]["partitions"])
    parts = healthy(platform, ns, 3)
    for part in parts:
        assert len(set(part["replicas"])) == 3

    servers = bootstrap(platform, ns)
    with Producer(servers, acks="all") as producer:
        futures = [producer.send(TOPIC, key=f"k{i % 10}".encode(), value=f"v{i}".encode()) for i in range(1000)]
        producer.flush()
        offsets = [f.result(timeout=30) for f in futures]
    per_key: dict[bytes, list[int]] = collections.defaultdict(list)
    with Consumer(servers, group_id="e2e-readers", auto_offset_reset="earliest") as consumer:
        consumer.subscribe([TOPIC])
        deadline = time.monotonic() + 60
        got = 0
        while got < 1000 and time.monotonic() < deadline:
            for record in consumer.poll(1.0):
                per_key[record.key or b""].append(int((record.value or b"v-1")[1:]))
                got += 1
        consumer.commit()
    assert got == 1000 and len(offsets) == 1000
    for key, numbers in per_key.items():
        assert numbers == sorted(numbers), f"key {key!r} out of order"


def test_kubectl_shows_the_columns(platform: Platform, e2e_namespace: str) -> None:
    ns = e2e_namespace
    healthy(platform, ns, 3)
    table = platform.kube.kubectl("get", "gk,gt", "-n", ns)
    lines = [line.split() for line in table.splitlines() if line.strip()]
    header_gk, row_gk = lines[0], lines[1]
    assert header_gk == ["NAME", "DESIRED", "READY", "BOOTSTRAP", "STATUS", "AGE"]
    assert row_gk[:5] == [f"gafkacluster.gafka.dev/{CLUSTER}", "3", "3", f"http://{CLUSTER}.{ns}.svc:9092", "True"]
    header_gt, row_gt = lines[2], lines[3]
    assert header_gt == ["NAME", "CLUSTER", "PARTITIONS", "RF", "READY", "AGE"]
    assert row_gt[:5] == [f"gafkatopic.gafka.dev/{TOPIC}", CLUSTER, str(PARTITIONS), "3", "True"]
    wide = [line.split() for line in platform.kube.kubectl("get", "gt", "-n", ns, "-o", "wide").splitlines()]
    assert wide[0] == ["NAME", "CLUSTER", "PARTITIONS", "RF", "READY", "URP", "AGE"]
    assert wide[1][:6] == [TOPIC, CLUSTER, str(PARTITIONS), "3", "True", "0"]


def _leader_of(platform: Platform, ns: str, partition: int) -> int | None:
    for part in partitions(platform, ns):
        if part["partition"] == partition:
            return int(part["leader"]) if part["leader"] is not None and part["leader"] >= 0 else None
    return None


@pytest.mark.parametrize("how", ["graceful", "force"])
def test_deleting_a_leader_pod_moves_leadership_and_loses_nothing(
    platform: Platform, e2e_namespace: str, load: AckedLoad, how: str
) -> None:
    """``kubectl delete pod`` (controlled shutdown) and ``--grace-period=0 --force`` (a lost pod: the operator
    fences the broker) of the pod leading partition 0, while producing with acks=all."""
    ns = e2e_namespace
    healthy(platform, ns, 3)
    victim = _leader_of(platform, ns, 0)
    assert victim is not None
    led = [p["partition"] for p in partitions(platform, ns) if p["leader"] == victim]
    pod = get(platform, "Pod", ns, f"{CLUSTER}-{victim}")
    assert pod is not None
    old_uid = pod["metadata"]["uid"]
    before = load.count()

    args = ["delete", "pod", f"{CLUSTER}-{victim}", "-n", ns, "--wait=false"]
    if how == "force":
        args += ["--grace-period=0", "--force"]
    started = time.monotonic()
    platform.kube.kubectl(*args)

    def moved() -> bool:
        leaders = {p["partition"]: p["leader"] for p in partitions(platform, ns)}
        return all(leaders[p] not in (victim, None, -1) for p in led)

    wait_for(platform, f"new leaders for partitions {led} of broker {victim}", moved, timeout=30, interval=0.05)
    elapsed = time.monotonic() - started
    assert elapsed <= LEADER_MOVE_S, f"leadership moved after {elapsed:.2f} s (bound {LEADER_MOVE_S} s)"
    wait_for(platform, "acks again after the move", lambda: load.count() > before + 200, timeout=60)

    # the pod comes back (same claim, same log), and the broker rejoins every ISR
    wait_for(
        platform,
        f"a new pod {CLUSTER}-{victim}",
        lambda: (p := get(platform, "Pod", ns, f"{CLUSTER}-{victim}")) and p["metadata"]["uid"] != old_uid,
    )
    parts = healthy(platform, ns, 3)
    assert all(victim in p["isr"] for p in parts)
    load.stop.set()
    time.sleep(1.0)
    assert_nothing_acked_lost(platform, ns, load)
    print(f"\ne2e: leader pod deleted ({how}): partitions {led} had new leaders after {elapsed:.2f} s")


def zones_of_brokers(platform: Platform, ns: str, brokers: range) -> dict[int, str]:
    """Broker id -> the zone of the node its pod runs on."""
    zones = {}
    for broker in brokers:
        pod = get(platform, "Pod", ns, f"{CLUSTER}-{broker}")
        node = get(platform, "Node", None, pod["spec"]["nodeName"])  # type: ignore[arg-type,index]
        zones[broker] = node["metadata"]["labels"]["topology.kubernetes.io/zone"]  # type: ignore[index]
    return zones


def _replicas_by_broker(parts: list[dict[str, Any]]) -> collections.Counter[int]:
    return collections.Counter(b for p in parts for b in p["replicas"])


def test_scale_out_spreads_partitions_and_scale_in_drains_first(
    platform: Platform, e2e_namespace: str, load: AckedLoad
) -> None:
    ns = e2e_namespace
    healthy(platform, ns, 3)
    platform.kube.kubectl("scale", "gk", CLUSTER, "-n", ns, "--replicas=5")
    parts = wait_for(
        platform,
        "partitions spread onto brokers 3 and 4",
        lambda: (p := in_sync(platform, ns)) and {3, 4} <= set(_replicas_by_broker(p)) and p,
        timeout=180,
    )
    wait_for(platform, "GafkaCluster Ready with 5 brokers", lambda: cluster_ready(platform, ns, 5), timeout=180)
    parts = wait_for(platform, "a settled assignment", lambda: in_sync(platform, ns), timeout=120)
    # Rack-aware: every partition keeps one replica per zone; within a zone the brokers share evenly.
    zone = zones_of_brokers(platform, ns, range(5))
    for part in parts:
        assert len({zone[b] for b in part["replicas"]}) == 3, f"partition {part['partition']} not spread: {part}"
    counts = _replicas_by_broker(parts)
    for name in set(zone.values()):
        loads = [counts[b] for b in zone if zone[b] == name]
        assert max(loads) - min(loads) <= 1, f"replicas per broker in {name}: {counts}, zones {zone}"

    # scale in: brokers 3 and 4 hold no replica any more by the time their pods are stopped
    def stopped_while_holding() -> list[str]:
        pods = {p["metadata"]["name"]: p for p in platform.api.list(ObjectRef("Pod", ns))}
        stopping = [
            b
            for b in (3, 4)
            if f"{CLUSTER}-{b}" not in pods or pods[f"{CLUSTER}-{b}"]["metadata"].get("deletionTimestamp")
        ]
        if not stopping:
            return []
        holders = _replicas_by_broker(partitions(platform, ns))
        return [f"broker {b} stopped while holding {holders[b]} replicas" for b in stopping if holders[b]]

    with watching(stopped_while_holding) as violations:
        platform.kube.kubectl("scale", "gk", CLUSTER, "-n", ns, "--replicas=3")
        wait_for(
            platform,
            "pods 3 and 4 gone",
            lambda: not any(get(platform, "Pod", ns, f"{CLUSTER}-{b}") for b in (3, 4)),
            timeout=180,
        )
    assert not violations, violations[:5]
    parts = healthy(platform, ns, 3)
    assert set(_replicas_by_broker(parts)) == {0, 1, 2}
    load.stop.set()
    time.sleep(1.0)
    assert_nothing_acked_lost(platform, ns, load)


def test_config_change_rolls_one_broker_at_a_time(platform: Platform, e2e_namespace: str, load: AckedLoad) -> None:
    """A changed spec.config restarts every broker pod, one at a time: while one is down, the others stay ready,
    and producing with acks=all (min.insync.replicas 2) loses nothing."""
    ns = e2e_namespace
    healthy(platform, ns, 3)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in platform.api.list(ObjectRef("Pod", ns))}

    def more_than_one_down() -> list[str]:
        pods = platform.api.list(ObjectRef("Pod", ns))
        names = {p["metadata"]["name"] for p in pods}
        down = [
            p["metadata"]["name"]
            for p in pods
            if p["metadata"].get("deletionTimestamp")
            or not any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        ]
        down += [f"{CLUSTER}-{i} (missing)" for i in range(3) if f"{CLUSTER}-{i}" not in names]
        replaced = sum(1 for p in pods if before.get(p["metadata"]["name"]) != p["metadata"]["uid"])
        return [f"{replaced} replaced, down at once: {sorted(down)}"] if len(down) > 1 else []

    def rolled() -> bool:
        pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in platform.api.list(ObjectRef("Pod", ns))}
        return len(pods) == 3 and all(pods.get(name) not in (None, uid) for name, uid in before.items())

    with watching(more_than_one_down) as overlaps:
        platform.api.merge_patch(
            ObjectRef("GafkaCluster", ns, CLUSTER), {"spec": {"config": {"max_records_per_request": 20_000}}}
        )
        wait_for(platform, "every broker pod replaced", rolled, timeout=240)
        healthy(platform, ns, 3)
    assert not overlaps, overlaps[:5]
    config = get(platform, "ConfigMap", ns, f"{CLUSTER}-config")
    assert "max_records_per_request: 20000" in config["data"]["broker.yaml"]  # type: ignore[index]
    load.stop.set()
    time.sleep(1.0)
    assert_nothing_acked_lost(platform, ns, load)
