"""spec.rack on nodes without the topology label (common on kind, minikube and on-premises): no rack and a
Warning condition, never a broker pod whose init container gives up."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fakekube import FakeKubeApi

from gafka_broker.config import load_config
from gafka_operator.kube import ObjectRef
from gafka_operator.manifests import (
    RACK_ANNOTATION,
    RACK_SOURCE_ANNOTATION,
    RACK_WAIT_SECONDS,
    ClusterRef,
    Platform,
    rack_wait_script,
    stateful_set,
)
from gafka_operator.reconcile import ClusterReconciler, PassResult, ReconcileSettings
from gafka_operator.spec import ClusterSpec

ZONE = "topology.kubernetes.io/zone"
PLATFORM = Platform(controller_url="http://op:8080", default_image="gafka/broker:1")


def _init_script() -> str:
    spec = ClusterSpec.from_mapping({"replicas": 3, "rack": {"topologyKey": ZONE}})
    sts = stateful_set(ClusterRef("demo", "ns", "uid-1"), spec, PLATFORM)
    [init] = sts["spec"]["template"]["spec"]["initContainers"]
    script: str = init["command"][2]
    return script


def _run_wait(podinfo: Path) -> subprocess.CompletedProcess[str]:
    script = rack_wait_script(ZONE, str(podinfo), RACK_WAIT_SECONDS)
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env={"NODE_NAME": "node-a"}, timeout=10, check=False
    )


def test_the_init_container_accepts_a_node_without_the_label(tmp_path: Path) -> None:
    assert _init_script() == rack_wait_script(ZONE, "/etc/podinfo", RACK_WAIT_SECONDS)
    (tmp_path / "rack").write_text("")
    (tmp_path / "rack-source").write_text("missing-label")
    result = _run_wait(tmp_path)
    assert result.returncode == 0 and f"no rack: node node-a has no label {ZONE}" in result.stdout
    (tmp_path / "rack").write_text("zone-b")
    (tmp_path / "rack-source").write_text("node-label")
    assert _run_wait(tmp_path).stdout.strip() == "rack: zone-b"
    assert load_config({}, {"GAFKA_DATA_DIR": str(tmp_path), "GAFKA_RACK": ""}).rack is None


def _reconciler(api: FakeKubeApi) -> Any:
    host = SimpleNamespace(metrics=None)
    return ClusterReconciler(
        ("ns", "demo"), api, host, ReconcileSettings(platform=PLATFORM), is_active=lambda: True, emit=lambda *a: None
    )


def _pod(name: str, node: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "annotations": {}},
        "spec": {"nodeName": node},
    }


def test_a_node_without_the_label_means_no_rack_and_a_warning() -> None:
    api = FakeKubeApi()
    api.create({"kind": "Node", "metadata": {"name": "labelled", "labels": {ZONE: "zone-a"}}})
    api.create({"kind": "Node", "metadata": {"name": "bare", "labels": {}}})
    pods = [_pod("demo-0", "labelled"), _pod("demo-1", "bare")]
    for pod in pods:
        api.create(pod)
    spec = ClusterSpec.from_mapping({"replicas": 2, "rack": {"topologyKey": ZONE}})
    result = PassResult()
    racks = _reconciler(api)._copy_racks(spec, pods, result)
    assert racks == {"demo-0": "zone-a"}
    annotations = {
        name: api.get(ObjectRef("Pod", "ns", name))["metadata"]["annotations"] for name in ("demo-0", "demo-1")
    }
    assert annotations["demo-0"] == {RACK_ANNOTATION: "zone-a", RACK_SOURCE_ANNOTATION: "node-label"}
    assert annotations["demo-1"] == {RACK_ANNOTATION: "", RACK_SOURCE_ANNOTATION: "missing-label"}
    [(reason, message)] = result.warnings
    assert reason == "RackLabelMissing" and "bare" in message and ZONE in message
    # the next pass sees the annotations: nothing is patched again and the warning stays while it is true
    again = PassResult()
    seen = [api.get(ObjectRef("Pod", "ns", name)) for name in ("demo-0", "demo-1")]
    assert _reconciler(api)._copy_racks(spec, seen, again) == {"demo-0": "zone-a"}
    assert [reason for reason, _ in again.warnings] == ["RackLabelMissing"] and not again.actions
