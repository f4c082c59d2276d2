"""Operator tests against a real API server: the ``kube`` fixture of ``tests/k8s`` (etcd + kube-apiserver +
kube-controller-manager, no scheduler, no kubelet), the gafka CRDs applied once, a namespace per test, and an
``operator`` (``kopf run`` as a subprocess) per test module.

The hooks of ``tests/k8s/conftest.py`` are re-exported too: a first build of the binaries gets its time budget,
and a failing test gets the tails of the control plane's logs in its report.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from gafka_operator.kube import KubeApi, ObjectRef
from k8s.conftest import pytest_collection_modifyitems, pytest_runtest_makereport
from k8s.controlplane import Kube, kube

from .harness import OperatorProcess, install_crds, wait_for

__all__ = [
    "crds",
    "kube",
    "kube_api",
    "namespace",
    "operator",
    "pytest_collection_modifyitems",
    "pytest_runtest_makereport",
]

_ids = itertools.count()


@pytest.fixture(scope="session")
def kube_api(kube: Kube) -> KubeApi:
    return KubeApi(kube.api_client)


@pytest.fixture(scope="session")
def crds(kube: Kube) -> None:
    """GafkaCluster, GafkaTopic and kopf's peering CRDs, established before any test uses them."""
    install_crds(kube)


@pytest.fixture(scope="module")
def operator(
    kube: Kube, kube_api: KubeApi, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    lease_namespace = f"gafka-system-{os.getpid()}"
    if kube_api.get(ObjectRef("Namespace", None, lease_namespace)) is None:
        kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lease_namespace}})
    op = OperatorProcess(kube, tmp_path_factory.mktemp("operator"), lease_namespace=lease_namespace).start()
    wait_for("the operator to become active", lambda: op.status("/readyz") == 200, log=op)
    yield op
    op.stop()


@pytest.fixture
def namespace(kube_api: KubeApi) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"gk-{os.getpid()}-{next(_ids)}"
    kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube_api.delete(ObjectRef("Namespace", None, name))
