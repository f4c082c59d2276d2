"""A thin, typed layer over the ``kubernetes`` client: JSON in, JSON out, one REST path per object.

The operator reads and writes a handful of kinds (its own CRs, the objects of :mod:`gafka_operator.manifests`,
pods, Leases, Events). Going through the generic REST call instead of the generated per-kind classes keeps
every object a plain dict (what :mod:`gafka_operator.manifests` builds and :mod:`gafka_operator.drift`
compares), gives one code path for create / replace / merge patch / server-side apply, and keeps the
untyped generated client out of the typed code. Calls are synchronous (urllib3): async callers run them
with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from gafka_operator import CLUSTER_PLURAL, GROUP_VERSION, TOPIC_PLURAL

__all__ = [
    "FIELD_MANAGER",
    "KINDS",
    "ApiException",
    "KubeApi",
    "ObjectRef",
    "is_conflict",
    "is_not_found",
    "new_api_client",
]

FIELD_MANAGER = "gafka-operator"
"""Server-side apply field manager: fields the operator stopped setting are removed on the next apply."""

KINDS: Mapping[str, tuple[str, str]] = {
    "Namespace": ("v1", "namespaces"),
    "ServiceAccount": ("v1", "serviceaccounts"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
    "Pod": ("v1", "pods"),
    "Node": ("v1", "nodes"),
    "Event": ("v1", "events"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "PersistentVolume": ("v1", "persistentvolumes"),
    "StorageClass": ("storage.k8s.io/v1", "storageclasses"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "Deployment": ("apps/v1", "deployments"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
    "Lease": ("coordination.k8s.io/v1", "leases"),
    "ClusterKopfPeering": ("kopf.dev/v1", "clusterkopfpeerings"),
    "KopfPeering": ("kopf.dev/v1", "kopfpeerings"),
    "GafkaCluster": (GROUP_VERSION, CLUSTER_PLURAL),
    "GafkaTopic": (GROUP_VERSION, TOPIC_PLURAL),
}
"""apiVersion and plural of every kind the operator touches."""

_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for one request; kopf retries handlers, the daemons retry on their next pass."""


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 404


def is_conflict(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 409


def new_api_client(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """In a pod: its ServiceAccount; elsewhere: ``kubeconfig``, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s_client.Configuration()
        load_incluster: Callable[..., None] = k8s_config.load_incluster_config
        load_incluster(client_configuration=configuration)
        return k8s_client.ApiClient(configuration)
    from_file: Callable[..., k8s_client.ApiClient] = k8s_config.new_client_from_config
    return from_file(config_file=kubeconfig, persist_config=False)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Enough to address one object: its kind, namespace (None for cluster-scoped kinds) and name."""

    kind: str
    namespace: str | None
    name: str | None = None

    def path(self, subresource: str | None = None) -> str:
        api_version, plural = KINDS[self.kind]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = prefix
        if self.namespace is not None:
            path += f"/namespaces/{self.namespace}"
        path += f"/{plural}"
        if self.name is not None:
            path += f"/{self.name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj["metadata"]
        return cls(str(obj["kind"]), meta.get("namespace"), meta["name"])


class KubeApi:
    """Plain-dict REST calls over one :class:`kubernetes.client.ApiClient` (thread-safe: urllib3 pools)."""

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One call; raises :class:`ApiException` (``.status``) unless the answer is 2xx."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=list(query.items()) if query else None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(method, url, header_params=headers, body=body, _request_timeout=_TIMEOUT)
        read: Callable[[], bytes] = response.read
        raw = read()
        if not 200 <= int(response.status) <= 299:
            raise ApiException(http_resp=response)
        if not raw:
            return {}
        data = json.loads(raw)
        return data if isinstance(data, dict) else {"value": data}

    # -- reading -------------------------------------------------------------------------------------
    def get(self, ref: ObjectRef, subresource: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", ref.path(subresource))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, ref: ObjectRef, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of ``ref.kind`` in ``ref.namespace`` (``ref.name`` must be None)."""
        query = {"labelSelector": label_selector} if label_selector else None
        items = self.request("GET", ref.path(), query=query).get("items") or []
        api_version, _ = KINDS[ref.kind]
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", ref.kind)
        return list(items)

    # -- writing -------------------------------------------------------------------------------------
    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        return self.request("POST", ObjectRef(ref.kind, ref.namespace).path(), body=dict(obj))

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: compare-and-set when ``metadata.resourceVersion`` is set (409 if it moved on)."""
        return self.request("PUT", ObjectRef.of(obj).path(), body=dict(obj))

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any], subresource: str | None = None) -> dict[str, Any]:
        return self.request(
            "PATCH", ref.path(subresource), body=dict(patch), content_type="application/merge-patch+json"
        )

    def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply under :data:`FIELD_MANAGER`: creates the object or makes our fields match."""
        return self.request(
            "PATCH",
            ObjectRef.of(obj).path(),
            query={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"},
            body=dict(obj),
            content_type="application/apply-patch+yaml",
        )

    def delete(self, ref: ObjectRef, *, uid: str | None = None, propagation: str = "Background") -> bool:
        """Delete (background propagation, or ``Orphan``: dependents stay); with ``uid``, only that incarnation.
        False if it was gone."""
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", ref.path(), body=body)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True
