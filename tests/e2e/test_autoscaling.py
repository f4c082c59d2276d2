"""End to end: a real HorizontalPodAutoscaler (kube-controller-manager's HPA controller) drives a GafkaCluster through
its ``/scale`` subresource, on CPU measured from the real broker processes through ``metrics.k8s.io``.

Locally the metrics API is the node agent's (:mod:`e2e.node_agent.metrics_api`) and the HPA controller runs with
short sync and initialisation periods (:data:`k8s.controlplane.HPA_ARGS`); on kind it is metrics-server and the
controller's defaults, hence the generous time-outs. Without a metrics API the module is skipped.

The scenario: a 1-broker cluster with a CPU request, an RF 1 topic, an ``autoscaling/v2`` HPA (target 50% of the
request, 1 to 2 replicas). Idle, the HPA reads the metric and keeps 1 broker; under produce load (acks=all, the
gafka SDK) it scales to 2, the operator starts broker 1 and moves partitions onto it; when the load stops it
scales back to 1, and the operator drains broker 1 before its pod goes; every acknowledged message is still there.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from gafka_operator.drift import parse_quantity
from gafka_operator.kube import ApiException, ObjectRef
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

pytestmark = pytest.mark.timeout(900)

API_SERVICE = "v1beta1.metrics.k8s.io"
HPA = "brokers"
CPU_REQUEST_M = 200
TARGET_UTILIZATION = 50
IDLE_CEILING = 20
"""Idle brokers must stay below this (% of the request): two idle brokers at 20% ask for ceil(2 * 20 / 50) = 1."""
PRODUCERS = 3
"""Acks=all producer threads: together they keep one broker well above the target."""
SCALE_TIMEOUT_S = 300.0
"""Each HPA decision: seconds locally (2 s sync, 10-20 s stabilization), a few minutes on kind (15 s sync,
metrics-server's 15 s resolution)."""

SPEC: dict[str, Any] = {
    "storage": {"size": "1Gi"},
    "resources": {"requests": {"cpu": f"{CPU_REQUEST_M}m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    "listeners": {"addressType": "PodIP"},
    "config": {"default_replication_factor": 1, "min_insync_replicas": 1},
}


# ------------------------------------------------------------------------------------------------- helpers


def broker_cpu(platform: Platform, namespace: str) -> dict[str, float]:
    """Pod -> CPU in millicores, from ``metrics.k8s.io`` with the selector the ``/scale`` subresource gives the HPA."""
    obj = get(platform, "GafkaCluster", namespace, CLUSTER) or {}
    selector = (obj.get("status") or {})["labelSelector"]
    listing = platform.api.request(
        "GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", query={"labelSelector": selector}
    )
    return {
        item["metadata"]["name"]: float(sum(parse_quantity(c["usage"]["cpu"]) for c in item["containers"]) * 1000)
        for item in listing.get("items") or []
    }


def hpa_utilization(hpa: dict[str, Any] | None) -> int | None:
    """The CPU utilisation (% of the request) the HPA controller last computed, if any."""
    for metric in ((hpa or {}).get("status") or {}).get("currentMetrics") or []:
        current = (metric.get("resource") or {}).get("current") or {}
        if metric.get("type") == "Resource" and current.get("averageUtilization") is not None:
            return int(current["averageUtilization"])
    return None


def hpa_condition(hpa: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conditions = ((hpa or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def spec_replicas(platform: Platform, namespace: str) -> int:
    return int(
        platform.api.request("GET", ObjectRef("GafkaCluster", namespace, CLUSTER).path("scale"))["spec"]["replicas"]
    )


def horizontal_pod_autoscaler() -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": HPA},
        "spec": {
            "scaleTargetRef": {"apiVersion": "gafka.dev/v1alpha1", "kind": "GafkaCluster", "name": CLUSTER},
            "minReplicas": 1,
            "maxReplicas": 2,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": TARGET_UTILIZATION},
                    },
                }
            ],
            # Short windows for a test, long enough that a burst (a rebalance, a drain) does not flap the size.
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 10,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 20,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                },
            },
        },
    }


@dataclass
class HpaWatch:
    """The HPA's status every second in a thread: (seconds since start, spec.replicas of the target, the
    utilisation the HPA saw, its desired replicas)."""

    platform: Platform
    namespace: str
    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, int | None, int | None, int | None]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                hpa = get(self.platform, "HorizontalPodAutoscaler", self.namespace, HPA)
                status = (hpa or {}).get("status") or {}
                replicas = spec_replicas(self.platform, self.namespace)
                self.samples.append(
                    (time.monotonic() - self.started, replicas, hpa_utilization(hpa), status.get("desiredReplicas"))
                )
            except (ApiException, OSError):
                pass
            self.done.wait(1.0)

    def utilizations(self, since: float, until: float) -> list[int]:
        return [u for t, _, u, _ in self.samples if since <= t <= until and u is not None]


def hpa_controller_runs(platform: Platform) -> bool:
    """False when the local control plane runs without the HPA controller (``GAFKA_KUBE_CONTROLLERS``)."""
    plane = platform.kube.control_plane
    if plane is None:
        return True  # an existing cluster: its kube-controller-manager runs every default controller
    named = "horizontal-pod-autoscaler-controller"
    return named in plane.controllers or ("*" in plane.controllers and f"-{named}" not in plane.controllers)


def rescale_events(platform: Platform, namespace: str) -> list[str]:
    """The messages of the HPA's ``SuccessfulRescale`` Events (``New size: N; reason: ...``)."""
    events = platform.api.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        query={"fieldSelector": f"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={HPA}"},
    )
    return [e.get("message", "") for e in events.get("items") or [] if e.get("reason") == "SuccessfulRescale"]


# -------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def metrics_api(platform: Platform) -> dict[str, Any]:
    """The ``metrics.k8s.io`` APIService once Available (skips when the cluster has none, e.g. kind without
    metrics-server, or when no HPA controller runs)."""
    if not hpa_controller_runs(platform):
        pytest.skip("GAFKA_KUBE_CONTROLLERS leaves out kube-controller-manager's horizontal-pod-autoscaler-controller")
    path = f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}"
    try:
        platform.api.request("GET", path)
    except ApiException as error:
        if error.status != 404:
            raise
        if platform.kube.existing:
            pytest.skip(f"the cluster has no resource metrics API (APIService {API_SERVICE}): install metrics-server")
        # Locally the node agent registers it once its first loop ran: wait for that below.

    def available() -> dict[str, Any] | None:
        service = platform.api.request("GET", path)
        conditions = (service.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Available" and c["status"] == "True" for c in conditions)
        return service if ok else None

    return wait_for(platform, f"APIService {API_SERVICE} Available", available, timeout=180, interval=1.0)


@pytest.fixture(scope="module")
def cluster(platform: Platform, e2e_namespace: str, metrics_api: dict[str, Any]) -> str:
    """A 1-broker GafkaCluster with a CPU request and a 6-partition RF 1 topic, Ready; yields the namespace."""
    ns = e2e_namespace
    create(platform.api, ns, gafka_cluster(CLUSTER, 1, **SPEC))
    create(platform.api, ns, gafka_topic(TOPIC, CLUSTER, partitions=PARTITIONS, replicationFactor=1))
    wait_for(platform, "GafkaCluster Ready with 1 broker", lambda: cluster_ready(platform, ns, 1), timeout=180)
    wait_for(
        platform,
        "GafkaTopic Ready",
        lambda: condition_status(get(platform, "GafkaTopic", ns, TOPIC), "Ready") == "True",
        timeout=120,
    )
    return ns


# ----------------------------------------------------------------------------------------------------- tests


def test_metrics_api_reports_the_brokers_cpu(platform: Platform, cluster: str) -> None:
    """Discovery, PodMetrics of the broker under the /scale selector, ``kubectl top``; and an idle broker well
    below the target (else the HPA could never scale back in)."""
    ns = cluster
    resources = platform.api.request("GET", "/apis/metrics.k8s.io/v1beta1")
    assert {r["name"] for r in resources["resources"]} >= {"pods", "nodes"}, resources
    usage = wait_for(platform, "PodMetrics of the broker", lambda: broker_cpu(platform, ns), timeout=120)
    assert set(usage) == {f"{CLUSTER}-0"}, usage
    table = platform.kube.kubectl("top", "pod", "-n", ns, "--no-headers")
    assert table.split()[0] == f"{CLUSTER}-0", table

    readings: list[float] = []

    def settled() -> bool:
        readings.append(broker_cpu(platform, ns)[f"{CLUSTER}-0"])
        return len(readings) >= 3 and all(r * 100 / CPU_REQUEST_M < IDLE_CEILING for r in readings[-3:])

    # Just Ready, a broker is still busy (start-up, the topic's creation): wait until three readings, one whole
    # window, are idle.
    try:
        wait_for(platform, "the idle broker's CPU", settled, timeout=120, interval=2.0)
    except AssertionError as error:
        raise AssertionError(
            f"the idle broker's CPU never stayed below {IDLE_CEILING}% of its request: {readings} millicores"
        ) from error
    idle = readings[-1] * 100 / CPU_REQUEST_M
    print(
        f"\ne2e: broker CPU after Ready {[round(r, 1) for r in readings]} millicores: "
        f"idle at {idle:.0f}% of the request"
    )


def test_hpa_scales_out_under_load_and_back_in_when_idle(platform: Platform, cluster: str) -> None:
    ns = cluster
    create(platform.api, ns, horizontal_pod_autoscaler())

    def active() -> dict[str, Any] | None:
        hpa = get(platform, "HorizontalPodAutoscaler", ns, HPA)
        ok = hpa_condition(hpa, "ScalingActive").get("status") == "True" and hpa_utilization(hpa) is not None
        return hpa if ok else None

    hpa = wait_for(platform, "the HPA reading the brokers' CPU (ScalingActive)", active, timeout=SCALE_TIMEOUT_S)
    idle_seen = hpa_utilization(hpa)
    assert idle_seen is not None and idle_seen < TARGET_UTILIZATION, hpa["status"]
    assert spec_replicas(platform, ns) == 1

    watch = HpaWatch(platform, ns)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    servers = bootstrap(platform, ns)
    loads = [AckedLoad(servers) for _ in range(PRODUCERS)]
    producers = [threading.Thread(target=load.run, daemon=True) for load in loads]
    try:
        # -- under load: out to 2 brokers, partitions moved onto broker 1
        load_started = time.monotonic() - watch.started
        for thread in producers:
            thread.start()
        wait_for(platform, "acknowledged messages", lambda: sum(load.count() for load in loads) > 100, timeout=60)
        wait_for(platform, "the HPA to scale out to 2", lambda: spec_replicas(platform, ns) == 2, SCALE_TIMEOUT_S)
        scaled_out = time.monotonic() - watch.started
        wait_for(platform, "GafkaCluster Ready with 2 brokers", lambda: cluster_ready(platform, ns, 2), timeout=240)

        def rebalanced() -> list[dict[str, Any]] | None:
            parts = partitions(platform, ns)
            moved = [p for p in parts if p["replicas"] == [1] and p["leader"] == 1]
            settled = all(len(p["replicas"]) == 1 and p["leader"] in p["replicas"] for p in parts)
            return parts if moved and settled and len(parts) == PARTITIONS else None

        parts = wait_for(platform, "partitions moved onto broker 1", rebalanced, timeout=180)

        def status_shows_broker_1() -> bool:
            topic = (get(platform, "GafkaTopic", ns, TOPIC) or {}).get("status") or {}
            brokers = ((get(platform, "GafkaCluster", ns, CLUSTER) or {}).get("status") or {}).get("brokers") or []
            in_topic = any(1 in p["replicas"] for p in topic.get("partitions") or [])
            return in_topic and any(b["id"] == 1 and b["ready"] and b.get("replicas") for b in brokers)

        wait_for(platform, "the GafkaTopic's and GafkaCluster's status showing broker 1", status_shows_broker_1)
        rebalanced_at = time.monotonic() - watch.started
        on_new = sum(1 for p in parts if p["replicas"] == [1])
        # what the HPA makes of the same load on two brokers (one sync period later; the sampling thread's view)
        at_two = wait_for(
            platform,
            "an HPA reading of both brokers under load",
            lambda: watch.utilizations(rebalanced_at + 3, float("inf")),
            timeout=SCALE_TIMEOUT_S,
        )

        # -- idle again: back in to 1 broker, broker 1 drained before its pod goes
        load_stopped = time.monotonic() - watch.started
        for load in loads:
            load.stop.set()
        for thread in producers:
            thread.join(timeout=90)

        def stopped_while_holding() -> list[str]:
            pod = get(platform, "Pod", ns, f"{CLUSTER}-1")
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                return []
            held = sum(1 for p in partitions(platform, ns) if 1 in p["replicas"])
            return [f"broker 1's pod stopped while it held {held} replicas"] if held else []

        with watching(stopped_while_holding) as violations:
            wait_for(platform, "the HPA to scale in to 1", lambda: spec_replicas(platform, ns) == 1, SCALE_TIMEOUT_S)
            scaled_in = time.monotonic() - watch.started
            wait_for(platform, f"pod {CLUSTER}-1 gone", lambda: get(platform, "Pod", ns, f"{CLUSTER}-1") is None, 240)
            pod_gone = time.monotonic() - watch.started
        assert not violations, violations[:5]
        wait_for(platform, "GafkaCluster Ready with 1 broker", lambda: cluster_ready(platform, ns, 1), timeout=180)
        assert all(p["replicas"] == [0] for p in partitions(platform, ns))
    finally:
        for load in loads:
            load.stop.set()
        watch.done.set()
        watcher.join(timeout=10)

    # nothing acknowledged by any producer is lost
    everything = AckedLoad(servers)
    for load in loads:
        for partition, messages in load.acked.items():
            everything.acked[partition].extend(messages)
    assert_nothing_acked_lost(platform, ns, everything)

    # the HPA itself did it: its Events, and the utilisation it saw under load and idle
    rescales = wait_for(platform, "the HPA's rescale Events", lambda: rescale_events(platform, ns) or None, 60)
    assert any("New size: 2" in m for m in rescales) and any("New size: 1" in m for m in rescales), rescales
    under_load = watch.utilizations(load_started, load_stopped)
    idle_after = watch.utilizations(load_stopped, scaled_in)
    assert under_load and max(under_load) > TARGET_UTILIZATION, watch.samples
    sizes = [r for _, r, _, _ in watch.samples if r is not None]
    changes = [r for i, r in enumerate(sizes) if i == 0 or r != sizes[i - 1]]
    assert changes == [1, 2, 1], f"spec.replicas went {changes} (no flapping expected): {watch.samples}"
    acked = sum(len(v) for v in everything.acked.values())
    errors = sum((load.errors for load in loads), collections.Counter[str]())
    print(
        f"\ne2e: HPA idle {idle_seen}% (target {TARGET_UTILIZATION}% of {CPU_REQUEST_M}m); load started: out to 2 "
        f"after {scaled_out - load_started:.0f} s (HPA saw up to {max(under_load)}%, then {at_two[0]}% at 2 brokers), "
        f"{on_new}/{PARTITIONS} partitions on broker 1 after {rebalanced_at - load_started:.0f} s; "
        f"load stopped: in to 1 after "
        f"{scaled_in - load_stopped:.0f} s (HPA saw down to {min(idle_after, default=None)}%), pod gone after "
        f"{pod_gone - load_stopped:.0f} s; {acked} messages acknowledged, none lost; send errors {dict(errors)}"
    )
