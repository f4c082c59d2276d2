"""Smoke tests proving the test control plane is a real Kubernetes: API machinery, CRDs with the ``/status`` and
``/scale`` subresources, controllers (StatefulSet -> Pods, owner-reference garbage collection, namespaces), RBAC
and ServiceAccount tokens, kubectl. They run unchanged against an existing cluster (``GAFKA_KUBECONFIG``).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import support

from .controlplane import Kube

T = TypeVar("T")

GROUP = "smoke.gafka.dev"
PLURAL = "widgets"
WAIT_S = 60.0
_ids = itertools.count()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S, interval: float = 0.2) -> T:
    """:func:`support.wait_for`, with Kubernetes API errors counting as "not yet"."""
    return support.wait_for(probe, timeout, what, interval=interval, retry_on=(ApiException,))


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards without waiting)."""
    core = client.CoreV1Api(kube.api_client)
    name = f"smoke-{os.getpid()}-{next(_ids)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"gafka.dev/test": "smoke"}}})
    yield name
    core.delete_namespace(name)


# ---------------------------------------------------------------------------------------------------------
# API server


def test_server_version_and_health(kube: Kube) -> None:
    version = client.VersionApi(kube.api_client).get_code()
    assert version.major == "1" and int(version.minor.rstrip("+")) >= 30, version
    if kube.control_plane is not None:
        assert version.git_version == kube.control_plane.tools.kube_bin.parent.name  # stamped by k8s-tools
    readyz = kube.kubectl("get", "--raw", "/readyz?verbose")
    assert "[+]etcd ok" in readyz and "readyz check passed" in readyz, readyz


def test_namespace_lifecycle(kube: Kube) -> None:
    core = client.CoreV1Api(kube.api_client)
    name = f"smoke-ns-{os.getpid()}-{next(_ids)}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "content"}, "data": {"k": "v"}})
    # the serviceaccount controller gives every namespace its "default" ServiceAccount
    wait_for("the default ServiceAccount", lambda: core.read_namespaced_service_account("default", name))
    core.delete_namespace(name)
    # the namespace controller empties it and removes its "kubernetes" finalizer
    wait_for(f"namespace {name} to disappear", lambda: gone(lambda: core.read_namespace(name)))


# ---------------------------------------------------------------------------------------------------------
# CRDs and the /status and /scale subresources

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                                    "colour": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer"},
                                    "selector": {"type": "string"},
                                    "phase": {"type": "string"},
                                },
                            },
                        },
                    }
                },
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widget_crd(kube: Kube) -> Iterator[str]:
    ext = client.ApiextensionsV1Api(kube.api_client)
    name = WIDGET_CRD["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as error:
        if error.status != 409:  # left over from an interrupted run against an existing cluster
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or ())

    wait_for(f"CRD {name} to be Established", established)
    # discovery and the storage behind it may lag Established by a moment
    objects = client.CustomObjectsApi(kube.api_client)
    wait_for("the widgets endpoint", lambda: objects.list_cluster_custom_object(GROUP, "v1", PLURAL) is not None)
    yield name
    ext.delete_custom_resource_definition(name)


def test_custom_resource_status_and_scale(kube: Kube, widget_crd: str, namespace: str) -> None:
    objects = client.CustomObjectsApi(kube.api_client)
    args = (GROUP, "v1", namespace, PLURAL)
    created = objects.create_namespaced_custom_object(
        *args, {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 2}}
    )
    assert created["spec"] == {"replicas": 2, "colour": "red"}  # structural-schema defaulting
    assert created["metadata"]["generation"] == 1

    # validation
    with pytest.raises(ApiException) as invalid:
        objects.patch_namespaced_custom_object(*args, "w", {"spec": {"colour": "green"}})
    assert invalid.value.status == 422

    # /status: the main resource ignores status, the subresource ignores spec; status does not bump generation
    objects.patch_namespaced_custom_object(*args, "w", {"status": {"phase": "ignored"}})
    status = {"replicas": 2, "selector": "app=w", "phase": "Running"}
    after_status = objects.patch_namespaced_custom_object_status(
        *args, "w", {"spec": {"replicas": 9}, "status": status}
    )
    assert after_status["status"] == status
    assert after_status["spec"]["replicas"] == 2
    assert after_status["metadata"]["generation"] == 1

    # /scale reads spec/status replicas and the selector, and writes spec.replicas
    scale = objects.get_namespaced_custom_object_scale(*args, "w")
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 2, "selector": "app=w"}
    objects.patch_namespaced_custom_object_scale(*args, "w", {"spec": {"replicas": 4}})
    widget = objects.get_namespaced_custom_object(*args, "w")
    assert widget["spec"]["replicas"] == 4
    assert widget["metadata"]["generation"] == 2

    # kubectl drives the same subresource and shows the printer columns
    kube.kubectl("-n", namespace, "scale", f"{PLURAL}.{GROUP}/w", "--replicas=5")
    assert objects.get_namespaced_custom_object(*args, "w")["spec"]["replicas"] == 5
    table = kube.kubectl("-n", namespace, "get", "wdg")
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "DESIRED", "PHASE"], table
    assert row.split()[:3] == ["w", "5", "Running"], table


# ---------------------------------------------------------------------------------------------------------
# controllers


def _statefulset(name: str, replicas: int, policy: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }


def _mark_ready(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    """Play kubelet: report the pod Running and Ready (only on the local control plane, which has none)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    core.patch_namespaced_pod_status(
        pod, namespace, {"status": {"phase": "Running", "conditions": conditions, "startTime": now}}
    )


def test_statefulset_controller_creates_pods(kube: Kube, namespace: str) -> None:
    apps, core = client.AppsV1Api(kube.api_client), client.CoreV1Api(kube.api_client)
    sts = apps.create_namespaced_stateful_set(namespace, _statefulset("ordered", 2, "OrderedReady"))

    pod0 = wait_for("pod ordered-0", lambda: core.read_namespaced_pod("ordered-0", namespace))
    owner = pod0.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("StatefulSet", "ordered", sts.metadata.uid, True)
    assert pod0.metadata.labels["statefulset.kubernetes.io/pod-name"] == "ordered-0"
    # OrderedReady: ordered-1 only once ordered-0 is Running and Ready
    if not kube.existing:
        time.sleep(1.0)
        assert gone(lambda: core.read_namespaced_pod("ordered-1", namespace))
        _mark_ready(core, namespace, "ordered-0")
    wait_for("pod ordered-1", lambda: core.read_namespaced_pod("ordered-1", namespace))

    # Parallel: all replicas at once; scaling through the StatefulSet's /scale subresource
    apps.create_namespaced_stateful_set(namespace, _statefulset("parallel", 3, "Parallel"))
    names = {f"parallel-{i}" for i in range(3)}

    def pods_named() -> set[str]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=parallel").items
        return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None}

    wait_for("3 parallel pods", lambda: pods_named() == names)
    apps.patch_namespaced_stateful_set_scale("parallel", namespace, {"spec": {"replicas": 1}})
    wait_for("scale-down to parallel-0", lambda: pods_named() == {"parallel-0"})
    observed = wait_for(
        "StatefulSet status",
        lambda: (s := apps.read_namespaced_stateful_set("parallel", namespace)).status.replicas == 1 and s,
    )
    assert observed.status.observed_generation == observed.metadata.generation


def test_garbage_collector_deletes_dependents(kube: Kube, namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dependent", "ownerReferences": [reference]}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    wait_for(
        "the dependent ConfigMap to be collected",
        lambda: gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
    )
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"

    # foreground deletion: the owner waits (finalizer "foregroundDeletion") until its dependents are gone
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner2"}})
    reference = {**reference, "name": "owner2", "uid": owner.metadata.uid, "blockOwnerDeletion": True}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dependent2", "ownerReferences": [reference]}})
    core.delete_namespaced_config_map("owner2", namespace, propagation_policy="Foreground")
    wait_for("the foreground-deleted owner", lambda: gone(lambda: core.read_namespaced_config_map("owner2", namespace)))
    assert gone(lambda: core.read_namespaced_config_map("dependent2", namespace))


# ---------------------------------------------------------------------------------------------------------
# authn / authz and kubectl


def test_rbac_and_service_account_tokens(kube: Kube, namespace: str) -> None:
    core, rbac = client.CoreV1Api(kube.api_client), client.RbacAuthorizationV1Api(kube.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    configuration = copy.copy(kube.api_client.configuration)
    configuration.cert_file = configuration.key_file = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.api_key_prefix = {}
    with client.ApiClient(configuration) as as_reader:
        reader = client.CoreV1Api(as_reader)
        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_config_map(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in str(denied.value.body)

        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )
        wait_for("the RoleBinding to take effect", lambda: reader.list_namespaced_config_map(namespace).items)
        with pytest.raises(ApiException) as still_denied:
            reader.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def test_kubectl_with_the_kubeconfig(kube: Kube, namespace: str) -> None:
    assert kube.kubeconfig.is_file()
    version = json.loads(kube.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["major"] == "1"
    assert kube.kubectl("auth", "can-i", "*", "*").strip() == "yes"
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    )
    kube.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)
    assert kube.kubectl("-n", namespace, "get", "configmap", "applied", "-o", "jsonpath={.data.a}") == "1"
    names = kube.kubectl("get", "namespaces", "-o", "name").split()
    assert f"namespace/{namespace}" in names and "namespace/kube-system" in names
    # the same kubeconfig through $KUBECONFIG (how kopf, helm and the e2e tests see the cluster)
    assert kube.env["KUBECONFIG"] == str(kube.kubeconfig)
    resources = kube.kubectl("api-resources", "--api-group=apps", "-o", "name").split()
    assert "statefulsets.apps" in resources
