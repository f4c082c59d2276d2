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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from gafka import GafkaError
from gafka_operator.kube import ApiException, KubeApi
from k8s.controlplane import Kube
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
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

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

    @property
    def local(self) -> bool:
        return self.agent is not None

    def diagnostics(self) -> str:
        parts = []
        if self.operator is not None:
            parts.append(f"--- operator log tail:\n{self.operator.tail(40)}")
        if self.agent is not None:
            parts.append(f"--- node agent log tail:\n{self.agent.tail(30)}")
            parts.append(self.agent.container_logs())
        return "\n".join(parts)

    def check(self) -> None:
        if self.agent is not None:
            self.agent.check()
        if self.operator is not None and self.operator.process is not None and self.operator.process.poll() is not None:
            raise AssertionError(f"the operator exited:\n{self.operator.tail()}")


def wait_for(
    platform: Platform, what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.2
) -> T:
    """Poll ``probe`` until it returns something truthy; on time-out fail with the platform's log tails."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        platform.check()
        try:
            value = probe()
            if value:
                return value
        except (ApiException, GafkaError, OSError, KeyError, TypeError, IndexError) as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})\n{platform.diagnostics()}"
            )
        time.sleep(interval)


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
