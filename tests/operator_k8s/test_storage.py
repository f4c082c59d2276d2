"""Growing broker volumes (spec.storage.size) against a real API server: claims patched, the StatefulSet replaced
with the new claim template while its pods keep running, a shrink refused, a class that cannot expand reported.

There is no CSI driver here: the tests bind each claim to a hostPath PersistentVolume they make (the
persistentvolume-binder controller does the binding), so the API server's ``PersistentVolumeClaimResize``
admission plugin (on by default, as in real clusters) judges each resize by the claim's StorageClass. Nothing
grows the volumes afterwards, so claims stay at "requested", which is what the operator reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gafka_operator.drift import parse_quantity
from gafka_operator.kube import KubeApi, ObjectRef
from k8s.controlplane import Kube

from .harness import (
    LONG_SESSION,
    OperatorProcess,
    condition,
    create,
    gafka_cluster,
    play_ready,
    pod_names,
    wait_for,
    warning,
)


@pytest.fixture
def storage_classes(kube_api: KubeApi, namespace: str) -> Iterator[dict[bool, str]]:
    """Two StorageClasses for this test (cluster-scoped, so named after its namespace): one that allows volume
    expansion, one that does not. The PersistentVolumes the test makes are deleted with them."""
    names = {expandable: f"{namespace}-{'expandable' if expandable else 'fixed'}" for expandable in (True, False)}
    for expandable, name in names.items():
        kube_api.create(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name},
                "provisioner": "example.com/fake",
                "allowVolumeExpansion": expandable,
                "reclaimPolicy": "Retain",
                "volumeBindingMode": "Immediate",
            }
        )
    yield names
    for volume in kube_api.list(ObjectRef("PersistentVolume", None)):
        if volume["spec"].get("storageClassName") in names.values():
            kube_api.delete(ObjectRef("PersistentVolume", None, volume["metadata"]["name"]))
    for name in names.values():
        kube_api.delete(ObjectRef("StorageClass", None, name))


def _get(api: KubeApi, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return api.get(ObjectRef(kind, namespace, name))


def _claims(api: KubeApi, namespace: str, cluster: str, replicas: int) -> dict[str, dict[str, Any]]:
    found = {
        f"data-{cluster}-{i}": _get(api, "PersistentVolumeClaim", namespace, f"data-{cluster}-{i}")
        for i in range(replicas)
    }
    return {name: claim for name, claim in found.items() if claim is not None}


def _requested(claim: dict[str, Any]) -> str:
    return str(claim["spec"]["resources"]["requests"]["storage"])


def _bound_cluster(
    kube_api: KubeApi, op: OperatorProcess, namespace: str, name: str, replicas: int, storage_class: str
) -> None:
    """A ready cluster of 1Gi claims, each bound to a hostPath PersistentVolume of ``storage_class``."""
    storage = {"size": "1Gi", "storageClassName": storage_class}
    create(kube_api, namespace, gafka_cluster(name, replicas, config=LONG_SESSION, storage=storage))
    pods = {f"{name}-{i}" for i in range(replicas)}
    wait_for(f"{replicas} pods", lambda: pod_names(kube_api, namespace, name) == pods, log=op)
    wait_for(f"{replicas} claims", lambda: len(_claims(kube_api, namespace, name, replicas)) == replicas, log=op)
    for claim in _claims(kube_api, namespace, name, replicas):
        kube_api.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-{claim}"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": storage_class,
                    "hostPath": {"path": f"/tmp/{namespace}/{claim}"},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            }
        )
    wait_for(
        "the claims bound",
        lambda: all(
            c.get("status", {}).get("phase") == "Bound" for c in _claims(kube_api, namespace, name, replicas).values()
        ),
        log=op,
    )
    play_ready(kube_api, op, namespace, name, replicas)


def _pods(api: KubeApi, namespace: str, cluster: str) -> dict[str, dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={cluster}"
    return {p["metadata"]["name"]: p for p in api.list(ObjectRef("Pod", namespace), label_selector=selector)}


def _reasons(kube: Kube, namespace: str) -> dict[str, list[str]]:
    events = json.loads(kube.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    found: dict[str, list[str]] = {}
    for event in events:
        if event["involvedObject"]["kind"] == "GafkaCluster":
            found.setdefault(event["reason"], []).append(event["message"])
    return found


def test_growing_storage_resizes_claims_and_replaces_the_statefulset(
    kube: Kube, kube_api: KubeApi, operator: OperatorProcess, namespace: str, storage_classes: dict[bool, str]
) -> None:
    _bound_cluster(kube_api, operator, namespace, "grow", 2, storage_classes[True])
    sts = _get(kube_api, "StatefulSet", namespace, "grow")
    assert sts is not None
    pods_before = {name: pod["metadata"]["uid"] for name, pod in _pods(kube_api, namespace, "grow").items()}
    assert len(pods_before) == 2

    kube_api.merge_patch(ObjectRef("GafkaCluster", namespace, "grow"), {"spec": {"storage": {"size": "2Gi"}}})

    # every claim asks for 2Gi
    wait_for(
        "the claims patched to 2Gi",
        lambda: all(parse_quantity(_requested(c)) == 2 << 30 for c in _claims(kube_api, namespace, "grow", 2).values()),
        log=operator,
    )
    # the StatefulSet was replaced (new uid) and has the new claim template
    replaced = wait_for(
        "a new StatefulSet with claim size 2Gi",
        lambda: (
            (s := _get(kube_api, "StatefulSet", namespace, "grow"))
            and s["metadata"]["uid"] != sts["metadata"]["uid"]
            and s
        ),
        log=operator,
    )
    [template] = replaced["spec"]["volumeClaimTemplates"]
    assert parse_quantity(template["spec"]["resources"]["requests"]["storage"]) == 2 << 30
    assert template["spec"]["storageClassName"] == storage_classes[True]
    assert replaced["spec"]["replicas"] == 2
    assert replaced["metadata"]["annotations"]["gafka.dev/balanced-replicas"] == "2"

    # the same pods, adopted by the new StatefulSet, on its current revision (nothing to roll)
    def adopted() -> dict[str, dict[str, Any]] | None:
        pods = _pods(kube_api, namespace, "grow")
        owners = {
            name: [o["uid"] for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")]
            for name, pod in pods.items()
        }
        ok = all(uids == [replaced["metadata"]["uid"]] for uids in owners.values()) and len(pods) == 2
        return pods if ok else None

    pods = wait_for("the pods adopted by the new StatefulSet", adopted, log=operator)
    assert {name: pod["metadata"]["uid"] for name, pod in pods.items()} == pods_before
    current = wait_for(
        "the new StatefulSet's status",
        lambda: (
            (s := _get(kube_api, "StatefulSet", namespace, "grow"))
            and s["status"].get("observedGeneration")
            and s["status"].get("updateRevision")
            and s
        ),
        log=operator,
    )
    revisions = {pod["metadata"]["labels"]["controller-revision-hash"] for pod in pods.values()}
    assert revisions == {current["status"]["updateRevision"]}

    # progress: the claims say the resize was requested (no CSI driver here); readiness never waits for it
    def resizing() -> dict[str, Any] | None:
        obj = _get(kube_api, "GafkaCluster", namespace, "grow")
        found, busy = condition(obj, "StorageResizing"), condition(obj, "Reconciling")
        settled = busy is not None and busy["status"] == "False"
        return dict(found) if found and found["status"] == "True" and settled else None

    progress = wait_for("StorageResizing=True and Reconciling=False", resizing, log=operator)
    assert progress["reason"] == "ResizeRequested"
    assert "data-grow-0: 1Gi of 2Gi (Requested)" in progress["message"]
    obj = _get(kube_api, "GafkaCluster", namespace, "grow")
    ready = condition(obj, "Ready")
    assert ready is not None and ready["status"] == "True"
    assert condition(obj, "Warning") is None
    reasons = wait_for(
        "the events",
        lambda: (r := _reasons(kube, namespace)) and {"VolumeExpansion", "ReplacingStatefulSet"} <= set(r) and r,
        log=operator,
    )
    assert any("data-grow-0, data-grow-1" in m and "2Gi" in m for m in reasons["VolumeExpansion"])
    assert any("Orphan" in m for m in reasons["ReplacingStatefulSet"])
    assert "VolumesResizing" in reasons
    # nothing restarted a broker after all
    assert {n: p["metadata"]["uid"] for n, p in _pods(kube_api, namespace, "grow").items()} == pods_before

    # a smaller size: refused, nothing changes
    kube_api.merge_patch(ObjectRef("GafkaCluster", namespace, "grow"), {"spec": {"storage": {"size": "1536Mi"}}})
    refused = wait_for(
        "Warning VolumeShrinkRefused",
        lambda: warning(kube_api, namespace, "grow", "VolumeShrinkRefused"),
        log=operator,
    )
    assert "cannot shrink" in refused["message"] and "2Gi" in refused["message"]
    after = _get(kube_api, "StatefulSet", namespace, "grow")
    assert after is not None and after["metadata"]["uid"] == replaced["metadata"]["uid"]
    [template] = after["spec"]["volumeClaimTemplates"]
    assert parse_quantity(template["spec"]["resources"]["requests"]["storage"]) == 2 << 30
    assert all(parse_quantity(_requested(c)) == 2 << 30 for c in _claims(kube_api, namespace, "grow", 2).values())

    # back to the size the volumes have: the warning clears
    kube_api.merge_patch(ObjectRef("GafkaCluster", namespace, "grow"), {"spec": {"storage": {"size": "2Gi"}}})
    wait_for(
        "the Warning condition to clear",
        lambda: condition(_get(kube_api, "GafkaCluster", namespace, "grow"), "Warning") is None,
        log=operator,
    )


def test_a_class_without_volume_expansion_is_reported(
    kube: Kube, kube_api: KubeApi, operator: OperatorProcess, namespace: str, storage_classes: dict[bool, str]
) -> None:
    _bound_cluster(kube_api, operator, namespace, "fixed", 1, storage_classes[False])
    sts = _get(kube_api, "StatefulSet", namespace, "fixed")
    assert sts is not None

    kube_api.merge_patch(ObjectRef("GafkaCluster", namespace, "fixed"), {"spec": {"storage": {"size": "2Gi"}}})
    found = wait_for(
        "Warning VolumeExpansionUnsupported",
        lambda: warning(kube_api, namespace, "fixed", "VolumeExpansionUnsupported"),
        log=operator,
    )
    # the API server's own words, about the claim
    assert "data-fixed-0" in found["message"] and "storageclass" in found["message"].lower()
    events = kube.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=VolumeExpansionUnsupported", "-o", "name"
    )
    assert events.strip()
    # nothing changed: the claim, and the StatefulSet (not replaced, still the old template)
    [claim] = _claims(kube_api, namespace, "fixed", 1).values()
    assert parse_quantity(_requested(claim)) == 1 << 30
    after = _get(kube_api, "StatefulSet", namespace, "fixed")
    assert after is not None and after["metadata"]["uid"] == sts["metadata"]["uid"]
    [template] = after["spec"]["volumeClaimTemplates"]
    assert parse_quantity(template["spec"]["resources"]["requests"]["storage"]) == 1 << 30
    assert "ReplacingStatefulSet" not in _reasons(kube, namespace)
    ready = condition(_get(kube_api, "GafkaCluster", namespace, "fixed"), "Ready")
    assert ready is not None and ready["status"] == "True"
