"""The node agent's pure parts: container paths rewritten to volume directories, volume contents, scheduling,
probe thresholds. (The agent as a whole is exercised by every end-to-end test.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .node_agent.probes import ProbeState
from .node_agent.scheduling import choose_node
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
