"""KubeMetadataStore against a real API server: compare-and-set through resourceVersion, restarts, conflicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gafka_broker.controller.controller import Controller
from gafka_broker.controller.metadata import BrokerInfo, ClusterMetadata
from gafka_broker.controller.store import VersionConflictError
from gafka_operator.kube import KubeApi, ObjectRef
from gafka_operator.kube_store import DATA_KEY, ForeignMetadataError, KubeMetadataStore


def _store(api: KubeApi, namespace: str, **kwargs: object) -> KubeMetadataStore:
    return KubeMetadataStore(api, namespace, "demo-metadata", cluster_id="c1", max_staleness_s=0.0, **kwargs)  # type: ignore[arg-type]


def test_first_write_creates_and_versions_count_up(kube_api: KubeApi, namespace: str) -> None:
    store = _store(kube_api, namespace, labels={"gafka.dev/cluster": "demo"})
    assert store.load() is None
    first = store.compare_and_set(0, ClusterMetadata(cluster_id="c1"))
    assert first.version == 1
    second = store.compare_and_set(1, first.with_broker(BrokerInfo(0, "http://b0:9092")))
    assert second.version == 2

    # a new store (an operator restart, the standby taking over) reads the same metadata
    reread = _store(kube_api, namespace).load()
    assert reread == second
    cm = kube_api.get(ObjectRef("ConfigMap", namespace, "demo-metadata"))
    assert cm is not None
    assert cm["data"]["version"] == "2"
    assert cm["metadata"]["labels"] == {"gafka.dev/cluster": "demo"}
    assert '"broker_id":0' in cm["data"][DATA_KEY]


def test_compare_and_set_conflicts(kube_api: KubeApi, namespace: str) -> None:
    a, b = _store(kube_api, namespace), _store(kube_api, namespace)
    base = a.compare_and_set(0, ClusterMetadata(cluster_id="c1"))
    with pytest.raises(VersionConflictError):
        b.compare_and_set(0, ClusterMetadata(cluster_id="c1"))  # AlreadyExists

    seen_by_b = b.load()
    assert seen_by_b == base
    a.compare_and_set(1, replace(base, next_producer_id=10))
    with pytest.raises(VersionConflictError):
        b.compare_and_set(1, replace(base, next_producer_id=20))  # stale version
    assert b.load() == replace(base, next_producer_id=10, version=2)


def test_conflict_detected_by_resource_version_even_with_a_stale_cache(kube_api: KubeApi, namespace: str) -> None:
    """Both stores believe they are at version 1 (cached): the API server's 409 decides."""
    a = KubeMetadataStore(kube_api, namespace, "demo-metadata", cluster_id="c1", max_staleness_s=3600)
    b = KubeMetadataStore(kube_api, namespace, "demo-metadata", cluster_id="c1", max_staleness_s=3600)
    a.compare_and_set(0, ClusterMetadata(cluster_id="c1"))
    cached = b.load()
    assert cached is not None and cached.version == 1
    a.compare_and_set(1, replace(cached, next_producer_id=1))
    assert b.load() == cached  # still the cached read
    with pytest.raises(VersionConflictError):
        b.compare_and_set(1, replace(cached, next_producer_id=2))
    reread = b.load()
    assert reread is not None and (reread.version, reread.next_producer_id) == (2, 1)


def test_controller_over_the_store_and_a_deleted_configmap(kube_api: KubeApi, namespace: str) -> None:
    store = _store(kube_api, namespace)
    controller = Controller(store, cluster_id="c1")
    controller.register_broker(0, "http://b0", None, "inc-0", now_ms=1)
    before = controller.metadata()
    kube_api.delete(ObjectRef("ConfigMap", namespace, "demo-metadata"))
    # the last known metadata comes back with the next version: brokers never see the counter go backwards
    after = controller.fence_broker(0)
    assert after.version == before.version + 1
    assert after.brokers[0].fenced
    assert _store(kube_api, namespace).load() == after


def test_foreign_metadata_is_refused(kube_api: KubeApi, namespace: str) -> None:
    _store(kube_api, namespace).compare_and_set(0, ClusterMetadata(cluster_id="c1"))
    other = KubeMetadataStore(kube_api, namespace, "demo-metadata", cluster_id="c2")
    with pytest.raises(ForeignMetadataError, match="cluster id c1"):
        other.load()
