"""Where the end-to-end tests run: a local control plane with the node agent and the operator as processes, or an
existing cluster (kind) reached through a kubeconfig, where the chart installed the operator.

The tests only use what both have: the Kubernetes API (through the kubeconfig), ``kubectl``, and the brokers'
HTTP API at the addresses the cluster publishes (:func:`reachable_bootstrap`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from gafka import GafkaError
from gafka_operator.kube import KubeApi, ObjectRef
from k8s.controlplane import Kube, tail
from operator_k8s import harness
from operator_k8s.harness import OperatorProcess

__all__ = ["AgentProcess", "Platform", "reachable_bootstrap", "wait_for"]

T = TypeVar("T")
TESTS = Path(__file__).resolve().parents[1]
NAMESPACE_LABELS = {"e2e.gafka.dev/node-agent": "true"}
"""On every end-to-end namespace: the node agent runs only the pods of namespaces labelled so."""


class AgentProcess:
    """``python -m e2e.node_agent`` against the test control plane."""

    def __init__(self, kube: Kube, root: Path) -> None:
        self.kube = kube
        self.root = root
        self.log_path = root / "node-agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        argv = [
            sys.executable,
            "-m",
            "e2e.node_agent",
            "--kubeconfig",
            str(self.kube.kubeconfig),
            "--root",
            str(self.root),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the node agent exited with {self.process.returncode}:\n{self.tail()}")

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def container_logs(self, lines: int = 15) -> str:
        """The tails of the broker containers' logs (``<root>/pods/<ns>_<pod>_<uid>/<container>.log``)."""
        parts = []
        for path in sorted((self.root / "pods").glob("*/*.log"), key=lambda p: p.stat().st_mtime)[-8:]:
            text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"--- {path.parent.name}/{path.name}\n{text}")
        return "\n".join(parts)


@dataclass
class Platform:
    kube: Kube
    api: KubeApi
    operator: OperatorProcess | None = None
    agent: AgentProcess | None = None

    def tail(self) -> str:
        """The operator's, the agent's and the latest brokers' log tails (what a failed wait shows)."""
        parts = []
        if self.operator is not None:
            parts.append(f"--- operator log tail:\n{self.operator.tail(40)}")
        if self.agent is not None:
            parts.append(f"--- node agent log tail:\n{self.agent.tail(30)}")
            parts.append(self.agent.container_logs())
        return "\n".join(parts)

    @classmethod
    def start_local(cls, kube: Kube, root: Path) -> Platform:
        """The CRDs, the node agent and the operator (watching ``e2e-*`` namespaces) on a local control plane."""
        harness.install_crds(kube)
        agent = AgentProcess(kube, root).start()
        operator = OperatorProcess(
            kube,
            root,
            lease_namespace=None,
            args=("--namespace=e2e-*", "--standalone"),
            env={"GAFKA_OPERATOR_NOT_READY_GRACE_SECONDS": "10"},
        )
        platform = cls(kube, KubeApi(kube.api_client), operator=operator, agent=agent)
        try:
            operator.start()
            wait_for(platform, "the agent's nodes", lambda: len(platform.api.list(ObjectRef("Node", None))) >= 3)
        except BaseException:
            platform.stop()
            raise
        return platform

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if self.agent is not None:
            self.agent.stop()

    def check(self) -> None:
        if self.agent is not None:
            self.agent.check()
        if self.operator is not None and self.operator.process is not None and self.operator.process.poll() is not None:
            raise AssertionError(f"the operator exited:\n{self.operator.tail()}")


RETRIED = (*harness.RETRIED, GafkaError, OSError, IndexError)
"""Besides the API's: brokers still starting or moving (the SDK's errors, refused connections)."""


def wait_for(
    platform: Platform, what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.2
) -> T:
    """:func:`operator_k8s.harness.wait_for`, failing at once when the agent or the operator died, and with the
    platform's log tails on a time-out."""

    def checked() -> T | None:
        platform.check()
        return probe()

    return harness.wait_for(what, checked, timeout, interval, log=platform, retry_on=RETRIED)


def reachable_bootstrap(api: KubeApi, url: str) -> list[str]:
    """Broker URLs for ``status.bootstrap``: the URL itself where its host resolves (inside the cluster), else the
    ready endpoints of its Service, read from the EndpointSlices as cluster DNS and kube-proxy would."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    with contextlib.suppress(socket.gaierror):
        socket.getaddrinfo(host, port)
        return [url]
    labels = host.split(".")
    if len(labels) < 3 or labels[2] != "svc":
        raise AssertionError(f"bootstrap host {host!r} neither resolves nor names a Service (<svc>.<ns>.svc)")
    service, namespace = labels[0], labels[1]
    slices = api.request(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        query={"labelSelector": f"kubernetes.io/service-name={service}"},
    )
    urls = []
    for item in slices.get("items") or []:
        target = next((p["port"] for p in item.get("ports") or [] if p.get("port")), port)
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                urls += [f"{parts.scheme}://{address}:{target}" for address in endpoint.get("addresses") or []]
    return sorted(urls)
