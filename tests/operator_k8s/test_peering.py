"""Two operator replicas: kopf peering picks the active one, a Lease makes it exclusive, and only the active
replica hosts the controllers and answers /readyz with 200. Stopping it hands everything to the standby.

Both replicas watch one namespace (a KopfPeering there), so they do not meet the operator of the other tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gafka_operator.kube import KubeApi, ObjectRef
from k8s.controlplane import Kube

from .harness import OperatorProcess, create, gafka_cluster, wait_for

PEERING = "gafka-peers"


@pytest.fixture
def replicas(
    kube: Kube, kube_api: KubeApi, crds: None, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    kube_api.create(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING, "namespace": namespace}}
    )
    log_dir = tmp_path_factory.mktemp("peering")

    def replica(priority: int, name: str) -> OperatorProcess:
        return OperatorProcess(
            kube,
            log_dir,
            lease_namespace=namespace,
            args=("--namespace", namespace, "--peering", PEERING, "--priority", str(priority)),
            # as behind the chart's controller Service: one URL for both (it is part of every broker's config)
            env={
                "GAFKA_OPERATOR_WATCH_NAMESPACES": namespace,
                "GAFKA_OPERATOR_CONTROLLER_URL": "http://controller.test:9093",
            },
            identity=f"{name}-{namespace}",
        )

    high, low = replica(200, "high"), replica(100, "low")
    try:
        yield high, low
    finally:
        for op in (high, low):
            op.stop()


def _lease_holder(api: KubeApi, namespace: str) -> str | None:
    lease = api.get(ObjectRef("Lease", namespace, f"{PEERING}-controller"))
    return None if lease is None else lease["spec"].get("holderIdentity")


def test_only_the_active_replica_serves_and_the_standby_takes_over(
    kube_api: KubeApi, namespace: str, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    high, low = replicas
    high.start()
    wait_for("the first replica to become active", lambda: high.status("/readyz") == 200, log=high)
    low.start()
    time.sleep(3)  # a few rounds of the standby's leadership loop
    assert low.status("/readyz") == 503
    assert high.status("/readyz") == 200
    assert _lease_holder(kube_api, namespace) == high.identity

    create(kube_api, namespace, gafka_cluster("ha", 3))
    wait_for("the StatefulSet", lambda: kube_api.get(ObjectRef("StatefulSet", namespace, "ha")), log=high)

    def metadata_version(op: OperatorProcess) -> int | None:
        with op.controller(namespace, "ha") as http:
            response = http.get("/metadata", params={"since": -1})
            return int(response.json()["version"]) if response.status_code == 200 else None

    version = wait_for("the active replica's controller", lambda: metadata_version(high), log=high)
    sts = kube_api.get(ObjectRef("StatefulSet", namespace, "ha"))
    assert sts is not None
    with low.controller(namespace, "ha") as http:
        refused = http.get("/metadata", params={"since": -1})
    assert refused.status_code == 503 and refused.json()["error_code"] == "NOT_CONTROLLER"
    metrics = low.status("/metrics")
    assert metrics == 200

    # the active replica stops (a rolling update of the operator, a node drain): the standby takes over
    assert high.stop() == 0
    wait_for("the standby to become active", lambda: low.status("/readyz") == 200, timeout=60, log=low)
    assert _lease_holder(kube_api, namespace) == low.identity
    taken_over = wait_for("the standby's controller", lambda: metadata_version(low), log=low)
    assert taken_over >= version  # the same metadata, carried on from the ConfigMap
    after = kube_api.get(ObjectRef("StatefulSet", namespace, "ha"))
    assert after is not None and after["metadata"]["generation"] == sts["metadata"]["generation"]  # nothing rolls
