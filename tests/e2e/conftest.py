"""Fixtures of the end-to-end tests: ``platform`` (package scope) and ``e2e_namespace`` (module scope).

Locally (no existing cluster) ``platform`` starts, on the ``kube`` control plane of ``tests/k8s``: the gafka
CRDs, the node agent (:mod:`e2e.node_agent`) and the operator (``kopf run``, watching ``e2e-*`` namespaces
only, so it never competes with the operator tests' own operators). Against an existing cluster
(``USE_EXISTING_CLUSTER=true`` / ``GAFKA_KUBECONFIG``, see ``scripts/kind-e2e``) it starts nothing: the chart
installed the CRDs and the operator, and kubelets run the pods.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from gafka_operator.kube import KubeApi, ObjectRef
from k8s.conftest import pytest_collection_modifyitems, pytest_runtest_makereport
from k8s.controlplane import Kube, kube
from operator_k8s.harness import CRDS

from .node_agent import network
from .platform import NAMESPACE_LABELS, Platform, wait_for

__all__ = ["e2e_namespace", "kube", "platform", "pytest_collection_modifyitems", "pytest_runtest_makereport"]

_ids = itertools.count()


@pytest.fixture(scope="package")
def platform(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if kube.existing:
        for name in CRDS[:2]:  # the chart installed them (and the operator)
            kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
        yield Platform(kube, KubeApi(kube.api_client))
        return
    unavailable = network.check()
    if unavailable is not None:  # e.g. not root: the reason shows in pytest's summary (-ra)
        pytest.skip(f"the node agent cannot give pods addresses here: {unavailable}")
    platform = Platform.start_local(kube, tmp_path_factory.mktemp("e2e"))
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def e2e_namespace(platform: Platform) -> Iterator[str]:
    """A namespace per test module, labelled for the node agent; deleted afterwards, pods stopped first."""
    name = f"e2e-{os.getpid()}-{next(_ids)}"
    platform.api.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(NAMESPACE_LABELS)}}
    )
    yield name
    platform.api.delete(ObjectRef("Namespace", None, name))
    # Wait for the pods to stop while the agent still runs (their processes end with them).
    wait_for(
        platform, f"the pods of {name} to stop", lambda: not platform.api.list(ObjectRef("Pod", name)), timeout=120
    )
