"""The ``kube`` fixture (a real etcd + kube-apiserver + kube-controller-manager) and its pytest plumbing.

- ``kube`` (session scope, from :mod:`.controlplane`): builds the binaries with ``scripts/k8s-tools`` when they
  are missing, starts the control plane, yields a :class:`~.controlplane.Kube` (``kubeconfig``, ``server``,
  ``api_client``, ``kubectl()``, ``env``) and stops it at the end of the session. With ``GAFKA_KUBECONFIG`` or
  ``USE_EXISTING_CLUSTER=true`` it uses that cluster instead (kind).
- a first build takes much longer than the per-test timeout, so the first test to use ``kube`` gets the
  build's time budget when the binaries are missing.
- when a test that uses ``kube`` fails, the tail of each component's log is attached to its report.
"""

from __future__ import annotations

import subprocess
from collections.abc import Generator

import pytest

from .controlplane import BUILD_TIMEOUT_S, K8S_TOOLS, KUBE_KEY, existing_cluster_kubeconfig, kube

__all__ = ["kube"]


def _tools_missing() -> bool:
    check = subprocess.run(["bash", str(K8S_TOOLS), "--check"], capture_output=True, check=False)
    return check.returncode != 0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    users = [item for item in items if "kube" in getattr(item, "fixturenames", ())]
    if not users or existing_cluster_kubeconfig() is not None or not _tools_missing():
        return
    # pytest-timeout counts fixture set-up: give the test that triggers the build the build's budget.
    users[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 600))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "kube" in getattr(item, "fixturenames", ()):
        cluster = item.config.stash.get(KUBE_KEY, None)
        if cluster is not None and cluster.control_plane is not None:
            report.sections.append(("kube control plane logs (tails)", cluster.control_plane.logs(25)))
    return report
