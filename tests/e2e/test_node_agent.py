"""The node agent's pure parts: container paths rewritten to volume directories, volume contents, scheduling,
probe thresholds, the resource metrics API (``/proc`` parsing, CPU rates, label selectors, the documents it serves).
(The agent as a whole is exercised by every end-to-end test.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .node_agent import network
from .node_agent.metrics_api import (
    GROUP_VERSION,
    PodProcesses,
    PodUsage,
    ProcStat,
    Sample,
    Usage,
    answer,
    parse_label_selector,
    parse_stat,
    registration_objects,
    tree_usage,
    usage_over,
)
from .node_agent.probes import ProbeState
from .node_agent.scheduling import choose_node, matches_expressions
from .node_agent.volumes import Mount, configmap_files, downward_files, path_rewriter, write_files

MOUNTS = [
    Mount("/tmp", Path("/h/tmp")),
    Mount("/var/lib/gafka", Path("/h/pv")),
    Mount("/etc/podinfo", Path("/h/podinfo")),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/var/lib/gafka/data", "/h/pv/data"),
        ("/tmp", "/h/tmp"),
        ("--dir=/tmp/x", "--dir=/h/tmp/x"),
        ("while [ ! -s /etc/podinfo/rack ]; do sleep 1; done", "while [ ! -s /h/podinfo/rack ]; do sleep 1; done"),
        ('cat "/etc/podinfo/rack"', 'cat "/h/podinfo/rack"'),
        ("/var/tmp", "/var/tmp"),  # not under a mount point
        ("/tmpfiles", "/tmpfiles"),  # a longer name, not the mount point
        ("http://10.0.0.1:9092/tmp", "http://10.0.0.1:9092/tmp"),  # a URL path, not a file path
    ],
)
def test_container_paths_are_rewritten_to_volume_directories(text: str, expected: str) -> None:
    assert path_rewriter(MOUNTS)(text) == expected


@given(st.text(alphabet="abc/=: -", max_size=30))
def test_text_without_mount_points_is_left_alone(text: str) -> None:
    assert path_rewriter(MOUNTS)(text) == text


def test_volume_contents_and_refresh(tmp_path: Path) -> None:
    configmap = {"data": {"broker.yaml": "a: 1\n", "other": "x"}}
    assert configmap_files(configmap, {"name": "c"}) == {"broker.yaml": b"a: 1\n", "other": b"x"}
    assert configmap_files(configmap, {"name": "c", "items": [{"key": "other", "path": "o/p"}]}) == {"o/p": b"x"}
    pod: dict[str, Any] = {"metadata": {"name": "b-0", "annotations": {"gafka.dev/rack": "zone-a"}}}
    source = {"items": [{"path": "rack", "fieldRef": {"fieldPath": "metadata.annotations['gafka.dev/rack']"}}]}
    assert downward_files(pod, source) == {"rack": b"zone-a"}
    assert write_files(tmp_path, {"rack": b"zone-a"}) is True
    assert write_files(tmp_path, {"rack": b"zone-a"}) is False  # unchanged: not rewritten
    assert write_files(tmp_path, {"rack": b"zone-b"}) is True
    assert (tmp_path / "rack").read_bytes() == b"zone-b"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    anti = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "topology.kubernetes.io/zone",
                        "labelSelector": {"matchLabels": {"app": "broker"}},
                    },
                }
            ]
        }
    }
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "broker"}},
        "spec": {"affinity": anti, **spec},
    }


NODES = {f"n-{z}": {"topology.kubernetes.io/zone": z, "disk": "ssd" if z != "c" else "hdd"} for z in "abc"}


def test_scheduling_spreads_over_zones_and_honours_selectors() -> None:
    placed: list[tuple[str, dict[str, Any]]] = []
    for i in range(3):
        pod = _pod(f"b-{i}")
        node = choose_node(pod, NODES, placed)
        assert node is not None
        placed.append((node, pod))
    assert sorted(n for n, _ in placed) == ["n-a", "n-b", "n-c"]
    assert choose_node(_pod("b-3", nodeSelector={"disk": "hdd"}), NODES, placed) == "n-c"
    required = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd", "hdd"]}]}
            ]
        }
    }
    assert choose_node(_pod("b-4", affinity={"nodeAffinity": required}), NODES, placed) is None


def test_probe_thresholds() -> None:
    state = ProbeState({"periodSeconds": 5, "failureThreshold": 2, "successThreshold": 1}, started_at=0.0)
    assert state.due(0.0) and not state.passing
    state.record(True, now=0.0)
    assert state.passing and not state.due(0.5) and state.due(1.0)  # at most a second apart (not 5)
    state.record(False, now=1.0)
    assert state.passing and not state.failed  # one failure is below the threshold
    state.record(False, now=2.0)
    assert not state.passing and state.failed


# ------------------------------------------------------------------------------------------ resource metrics


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    fields = ["S", "41", "42", "42", "0", "-1", "4194304", "10", "0", "0", "0", "150", "50", "7", "3"]
    fields += ["20", "0", "4", "0", "12345", "1000000", "2500"]  # priority ... vsize, rss (field 24)
    stat = parse_stat(f"4242 (weird) name (x) {' '.join(fields)} 0 0 0")
    assert stat == ProcStat(pid=4242, ppid=41, cpu_ticks=150 + 50 + 7 + 3, rss_pages=2500)


def test_a_containers_usage_covers_its_process_tree() -> None:
    stats = {
        10: ProcStat(10, 1, 100, 10),  # the container's process (a shell)
        11: ProcStat(11, 10, 400, 200),  # what it started
        12: ProcStat(12, 11, 50, 5),  # and what that started
        20: ProcStat(20, 1, 9999, 999),  # another container
    }
    assert tree_usage(stats, 10) == (550, 215)
    assert tree_usage(stats, 20) == (9999, 999)
    assert tree_usage(stats, 30) is None  # exited


def _samples(cpu: list[float], start: float = 100.0, step: float = 1.0) -> list[Sample]:
    return [Sample(start + i * step, 1_700_000_000.0 + i * step, c, 1 << 20) for i, c in enumerate(cpu)]


def test_cpu_rate_over_the_window() -> None:
    # 0.25 CPU-seconds per second for 8 s, then idle for 3: the last 5 s hold 2 busy seconds (0.5 CPU-seconds)
    samples = _samples([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.0, 2.0, 2.0])
    usage = usage_over(samples, window_s=5.0)
    assert usage == Usage(nanocores=100_000_000, memory_bytes=1 << 20, window_s=5.0, timestamp=samples[-1].wall)
    assert usage_over(samples[:6], window_s=5.0) == Usage(250_000_000, 1 << 20, 5.0, samples[5].wall)
    assert usage_over(samples[:2], window_s=5.0, min_window_s=1.5) is None  # one second of history: not yet
    assert usage_over([], window_s=5.0) is None
    assert usage_over(_samples([5.0, 1.0, 1.0]), window_s=5.0, min_window_s=1.0) == Usage(
        0, 1 << 20, 2.0, 1_700_000_002.0
    )


@given(st.floats(0.0, 8.0), st.lists(st.floats(0.5, 1.5), min_size=3, max_size=20))
def test_cpu_rate_of_a_steady_load_is_that_load(cores: float, steps: list[float]) -> None:
    times = [sum(steps[:i]) for i in range(len(steps) + 1)]
    samples = [Sample(t, t, cores * t, 0) for t in times]
    usage = usage_over(samples, window_s=5.0, min_window_s=0.5)
    assert usage is not None
    assert abs(usage.nanocores - cores * 1e9) <= 1e-6 * 1e9
    assert 0.5 <= usage.window_s <= 5.0 + 1e-9


HPA_SELECTOR = "app.kubernetes.io/component=broker,app.kubernetes.io/instance=orders,app.kubernetes.io/name=gafka"
"""What the HPA controller sends: ``labels.Parse(status.labelSelector).String()``, requirements sorted by key."""
BROKER = {
    "app.kubernetes.io/component": "broker",
    "app.kubernetes.io/instance": "orders",
    "app.kubernetes.io/name": "gafka",
}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (HPA_SELECTOR, BROKER, True),
        (HPA_SELECTOR, {**BROKER, "app.kubernetes.io/instance": "other"}, False),
        (HPA_SELECTOR, {"app.kubernetes.io/component": "broker"}, False),
        ("", {}, True),
        ("tier==db", {"tier": "db"}, True),
        ("tier!=db", {"tier": "web"}, True),
        ("tier!=db", {}, True),
        ("tier!=db", {"tier": "db"}, False),
        ("tier in (db, web),env", {"tier": "web", "env": "x"}, True),
        ("tier in (db,web),env", {"tier": "web"}, False),
        ("tier notin (db,web)", {"tier": "cache"}, True),
        ("tier notin (db,web)", {"tier": "db"}, False),
        ("!canary, tier", {"tier": "db"}, True),
        ("!canary", {"canary": "true"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert matches_expressions(labels, parse_label_selector(selector)) is matches


@pytest.mark.parametrize("selector", ["a>1", "a in (b", "a in b)", "=b"])
def test_unsupported_label_selectors_are_refused(selector: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(selector)


def _pod_usage(namespace: str, name: str, node: str, labels: dict[str, str], **millicores: int | None) -> PodUsage:
    pids = {container: 100 + i for i, container in enumerate(millicores)}
    usages = {
        container: Usage(m * 1_000_000, 64 << 20, 4.5, 1_700_000_000.0)
        for container, m in millicores.items()
        if m is not None
    }
    return PodUsage(PodProcesses(namespace, name, f"uid-{name}", node, labels, pids), usages)


ENTRIES = [
    _pod_usage("e2e-1", "orders-0", "n-a", BROKER, broker=250),
    _pod_usage("e2e-1", "orders-1", "n-b", BROKER, broker=None),  # started a moment ago: no usage yet
    _pod_usage("e2e-1", "tools", "n-a", {"app": "tools"}, main=10, sidecar=5),
    _pod_usage("e2e-2", "orders-0", "n-c", BROKER, broker=40),
]
NOW = 1_700_000_010.0


def test_pod_metrics_lists_honour_namespace_selector_and_completeness() -> None:
    status, body = answer(
        "/apis/metrics.k8s.io/v1beta1/namespaces/e2e-1/pods", {"labelSelector": HPA_SELECTOR}, ENTRIES, [], NOW
    )
    assert status == 200 and body["kind"] == "PodMetricsList" and body["apiVersion"] == GROUP_VERSION
    [item] = body["items"]  # orders-1 has no usage yet, tools does not match, e2e-2 is another namespace
    assert item["metadata"]["name"] == "orders-0" and item["metadata"]["namespace"] == "e2e-1"
    assert item["metadata"]["labels"] == BROKER
    assert item["containers"] == [{"name": "broker", "usage": {"cpu": "250000000n", "memory": "65536Ki"}}]
    assert item["timestamp"] == "2023-11-14T22:13:20Z" and item["window"] == "4.500s"

    status, body = answer("/apis/metrics.k8s.io/v1beta1/pods", {}, ENTRIES, [], NOW)  # all namespaces
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("e2e-1", "orders-0"),
        ("e2e-1", "tools"),
        ("e2e-2", "orders-0"),
    ]
    assert [c["name"] for c in body["items"][1]["containers"]] == ["main", "sidecar"]

    status, body = answer("/apis/metrics.k8s.io/v1beta1/namespaces/e2e-2/pods/orders-0", {}, ENTRIES, [], NOW)
    assert status == 200 and body["kind"] == "PodMetrics" and body["containers"][0]["usage"]["cpu"] == "40000000n"
    status, body = answer("/apis/metrics.k8s.io/v1beta1/namespaces/e2e-1/pods/orders-1", {}, ENTRIES, [], NOW)
    assert status == 404 and body["reason"] == "NotFound"
    status, body = answer(
        "/apis/metrics.k8s.io/v1beta1/namespaces/e2e-1/pods", {"labelSelector": "a>1"}, ENTRIES, [], NOW
    )
    assert status == 400 and body["kind"] == "Status"


def test_node_metrics_add_up_the_pods_on_the_node() -> None:
    status, body = answer("/apis/metrics.k8s.io/v1beta1/nodes", {}, ENTRIES, ["n-a", "n-b", "n-c"], NOW)
    assert status == 200 and body["kind"] == "NodeMetricsList"
    cpu = {item["metadata"]["name"]: item["usage"]["cpu"] for item in body["items"]}
    assert cpu == {"n-a": "265000000n", "n-b": "0n", "n-c": "40000000n"}
    status, body = answer("/apis/metrics.k8s.io/v1beta1/nodes/n-c", {}, ENTRIES, ["n-a", "n-b", "n-c"], NOW)
    assert status == 200 and body["kind"] == "NodeMetrics" and body["usage"]["memory"] == "65536Ki"
    assert answer("/apis/metrics.k8s.io/v1beta1/nodes/n-x", {}, ENTRIES, ["n-a"], NOW)[0] == 404


def test_discovery_documents() -> None:
    status, resources = answer("/apis/metrics.k8s.io/v1beta1", {}, [], [], NOW)
    assert status == 200 and resources["kind"] == "APIResourceList" and resources["groupVersion"] == GROUP_VERSION
    assert {(r["name"], r["kind"], r["namespaced"]) for r in resources["resources"]} == {
        ("pods", "PodMetrics", True),
        ("nodes", "NodeMetrics", False),
    }
    status, group = answer("/apis/metrics.k8s.io", {}, [], [], NOW)
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["groupVersion"] == GROUP_VERSION
    status, groups = answer("/apis", {}, [], [], NOW)
    assert groups["kind"] == "APIGroupList" and groups["groups"] == [group]
    assert answer("/openapi/v2", {}, [], [], NOW)[1]["swagger"] == "2.0"
    assert answer("/apis/custom.metrics.k8s.io/v1beta1", {}, [], [], NOW)[0] == 404
    assert answer("/apis/metrics.k8s.io/v1beta1/namespaces/x/pods", {"watch": "true"}, [], [], NOW)[0] == 405


def test_registration_routes_the_apiservice_to_the_agent() -> None:
    service, endpoints, api_service = registration_objects("10.244.250.1", 4443)
    assert api_service["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    ref = api_service["spec"]["service"]
    assert (ref["name"], ref["namespace"]) == (service["metadata"]["name"], service["metadata"]["namespace"])
    assert "selector" not in service["spec"]  # endpoints are ours, not a controller's
    [port] = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
    labels = endpoints["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == service["metadata"]["name"]
    assert labels["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"
    # the aggregator matches the slice's port to the Service's by name, then dials the endpoint's address
    assert endpoints["ports"] == [{"name": port["name"], "port": 4443, "protocol": "TCP"}]
    assert endpoints["endpoints"][0]["addresses"] == ["10.244.250.1"]
    assert api_service["spec"]["insecureSkipTLSVerify"] is True


def test_agents_on_one_host_claim_separate_pod_networks(tmp_path: Path) -> None:
    first, first_lock = network.claim_network(lock_dir=tmp_path)
    second, second_lock = network.claim_network(lock_dir=tmp_path)
    assert (first, second) == ("10.244", "10.245")
    first_lock.close()  # that agent stopped (or died): its network is free again, the other's is not
    third, third_lock = network.claim_network(lock_dir=tmp_path)
    assert third == "10.244"
    with pytest.raises(network.NetworkUnavailableError):
        network.claim_network(count=2, lock_dir=tmp_path)
    second_lock.close()
    third_lock.close()
