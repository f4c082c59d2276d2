"""The controller's cluster metadata kept in Kubernetes: one ConfigMap per GafkaCluster.

:class:`KubeMetadataStore` implements :class:`gafka_broker.controller.store.MetadataStore`, so the same
:class:`~gafka_broker.controller.controller.Controller` that runs inside a lone broker or ``gafka dev`` runs in
the operator, and survives operator restarts and fail-over to a standby replica.

- **Object:** ConfigMap ``<cluster>-metadata`` with ``metadata.json`` (the JSON of
  :class:`~gafka_broker.controller.metadata.ClusterMetadata`) and ``version``.
- **Compare-and-set:** a write is a PUT carrying the ``resourceVersion`` the metadata was read at; the API
  server answers 409 Conflict when anybody wrote in between, which becomes :class:`VersionConflictError`
  (the controller then re-reads and decides again). The first write is a POST (409 AlreadyExists: conflict).
- **``version``** is the controller's own counter (brokers long-poll ``since=version``), one more on every
  write; ``resourceVersion`` is only the compare-and-set token and is never shown to brokers.
- **Reads are cached** for ``max_staleness_s``: the controller reads the metadata on every heartbeat and
  every tick (5 times a second), and only one operator replica writes. A stale read can never win a write,
  because the write carries the stale ``resourceVersion``; a conflict drops the cache.
- **Deleted under our feet** (someone deleted the ConfigMap): the last metadata this process knew is
  written back with the next version, so brokers never see the counter go backwards.
- **Ownership:** with ``owner`` the ConfigMap is garbage-collected with its GafkaCluster. Without (a cluster
  that keeps its claims, ``deleteClaim: false``) it outlives the cluster, so a new GafkaCluster with the same
  name and ``spec.clusterId`` adopts the old topics together with the old data; metadata of another cluster
  id is refused (:class:`ForeignMetadataError`) rather than overwritten.
- **Size:** a ConfigMap holds at most 1 MiB, roughly 5,000 partitions of metadata at three replicas.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from gafka_broker.controller.metadata import ClusterMetadata
from gafka_broker.controller.store import VersionConflictError
from gafka_operator.kube import ApiException, KubeApi, ObjectRef

__all__ = [
    "DATA_KEY",
    "MAX_BYTES",
    "VERSION_KEY",
    "ForeignMetadataError",
    "KubeMetadataStore",
    "metadata_config_map_name",
]

logger = logging.getLogger(__name__)

DATA_KEY = "metadata.json"
VERSION_KEY = "version"
MAX_BYTES = 1_000_000
"""The API server refuses ConfigMaps over 1 MiB (etcd's request limit); fail clearly before that."""


def metadata_config_map_name(cluster: str) -> str:
    return f"{cluster}-metadata"


class ForeignMetadataError(RuntimeError):
    """The ConfigMap holds the metadata of another cluster id (a deleted cluster of the same name)."""


@dataclass(frozen=True, slots=True)
class _Read:
    resource_version: str
    metadata: ClusterMetadata
    at: float


class KubeMetadataStore:
    """A :class:`~gafka_broker.controller.store.MetadataStore` in a ConfigMap (see the module docstring)."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        *,
        cluster_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, Any] | None = None,
        max_staleness_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.ref = ObjectRef("ConfigMap", namespace, name)
        self.cluster_id = cluster_id
        self.labels = dict(labels or {})
        self.owner = dict(owner) if owner is not None else None
        self.max_staleness_s = max_staleness_s
        self._clock = clock
        self._lock = threading.Lock()
        self._read: _Read | None = None

    # -- MetadataStore -------------------------------------------------------------------------------
    def load(self) -> ClusterMetadata | None:
        read = self._read
        if read is not None and self._clock() - read.at < self.max_staleness_s:
            return read.metadata
        with self._lock:
            fresh = self._fetch()
        return fresh.metadata if fresh is not None else None

    def compare_and_set(self, expected_version: int, metadata: ClusterMetadata) -> ClusterMetadata:
        with self._lock:
            read = self._read
            if read is None or read.metadata.version != expected_version:
                read = self._fetch()  # our cache may be behind (a restart, a standby that took over)
            current_version = read.metadata.version if read is not None else 0
            if current_version != expected_version:
                raise VersionConflictError(f"expected version {expected_version}, found {current_version}")
            stored = replace(metadata, version=expected_version + 1)
            body = self._object(stored, read.resource_version if read is not None else None)
            try:
                written = self.api.create(body) if read is None else self._replace(body)
            except ApiException as error:
                if error.status == 409:
                    self._read = None
                    raise VersionConflictError(f"{self.ref.name} changed since version {expected_version}") from None
                raise
            self._read = _Read(str(written["metadata"]["resourceVersion"]), stored, self._clock())
            return stored

    # -- helpers -------------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget the cached read (the next load asks the API server)."""
        self._read = None

    def _replace(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.api.replace(body)
        except ApiException as error:
            if error.status != 404:
                raise
        logger.warning("event=metadata_recreated configmap=%s/%s", self.ref.namespace, self.ref.name)
        body["metadata"].pop("resourceVersion", None)
        return self.api.create(body)

    def _fetch(self) -> _Read | None:
        """Read the ConfigMap (caller holds the lock). A deleted ConfigMap keeps the last known metadata."""
        obj = self.api.get(self.ref)
        if obj is None:
            if self._read is not None:
                self._read = replace(self._read, at=self._clock())
            return self._read
        data = obj.get("data") or {}
        try:
            raw = orjson.loads(data[DATA_KEY])
            metadata = ClusterMetadata.from_json(raw, version=int(data[VERSION_KEY]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ForeignMetadataError(f"ConfigMap {self.ref.name} does not hold gafka metadata: {exc!r}") from None
        if self.cluster_id is not None and metadata.cluster_id != self.cluster_id:
            raise ForeignMetadataError(
                f"ConfigMap {self.ref.namespace}/{self.ref.name} holds the metadata of cluster id "
                f"{metadata.cluster_id}, not {self.cluster_id}: delete it, or set spec.clusterId to adopt it"
            )
        self._read = _Read(str(obj["metadata"]["resourceVersion"]), metadata, self._clock())
        return self._read

    def _object(self, metadata: ClusterMetadata, resource_version: str | None) -> dict[str, Any]:
        payload = orjson.dumps(metadata.to_json()).decode()
        if len(payload) > MAX_BYTES:
            raise ValueError(
                f"cluster metadata is {len(payload)} bytes, over the {MAX_BYTES} a ConfigMap holds "
                f"({sum(len(t.partitions) for t in metadata.topics.values())} partitions)"
            )
        meta: dict[str, Any] = {"name": self.ref.name, "namespace": self.ref.namespace, "labels": self.labels}
        if self.owner is not None:
            meta["ownerReferences"] = [self.owner]
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {VERSION_KEY: str(metadata.version), DATA_KEY: payload},
        }
