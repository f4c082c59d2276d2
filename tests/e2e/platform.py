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

import yaml

from gafka import GafkaError
from gafka_operator.kube import KubeApi, ObjectRef
from gafka_operator.manifests import PORT_NAME
from k8s.controlplane import Kube, tail, write_kubeconfig
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
        """The CRDs, the node agent and the operator (watching ``e2e-*`` namespaces) on a local control plane.

        The operator runs as the chart's ServiceAccount with the chart's RBAC (:func:`chart_operator_kubeconfig`),
        as on a cluster where ``helm install`` put it: a permission the chart lacks fails these tests."""
        harness.install_crds(kube)
        agent = AgentProcess(kube, root).start()
        operator = OperatorProcess(
            kube,
            root,
            lease_namespace=None,
            args=("--namespace=e2e-*", "--standalone"),
            env={
                "GAFKA_OPERATOR_NOT_READY_GRACE_SECONDS": "10",
                "KUBECONFIG": str(chart_operator_kubeconfig(kube, root / "operator.kubeconfig")),
            },
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


CHART = TESTS.parent / "charts" / "gafka"
OPERATOR_NAMESPACE = "gafka-system"
CHART_RBAC = ("templates/serviceaccount.yaml", "templates/rbac.yaml")


def chart_operator_kubeconfig(kube: Kube, path: Path) -> Path:
    """A kubeconfig for the chart's operator ServiceAccount: ``helm template`` renders the chart's ServiceAccount
    and RBAC (default values: cluster-wide, rack awareness on), kubectl applies them, and a TokenRequest gives
    the account a token, as the kubelet would mount it into the operator's pod."""
    if kube.helm_path is None or kube.control_plane is None or kube.control_plane.certs is None:
        raise AssertionError("the chart's RBAC needs helm and the local control plane")
    only = [arg for template in CHART_RBAC for arg in ("--show-only", template)]
    rendered = subprocess.run(
        [kube.helm_path, "template", "gafka", str(CHART), "--namespace", OPERATOR_NAMESPACE, *only],
        capture_output=True,
        text=True,
        check=False,
        env=kube.env,
    )
    if rendered.returncode != 0:
        raise AssertionError(f"helm template failed:\n{rendered.stderr}")
    namespace = kube.kubectl("create", "namespace", OPERATOR_NAMESPACE, "--dry-run=client", "-o", "yaml")
    kube.kubectl("apply", "-f", "-", input=namespace)
    kube.kubectl("apply", "-f", "-", input=rendered.stdout)
    account = next(
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(rendered.stdout)
        if doc and doc["kind"] == "ServiceAccount"
    )
    # The one grant beyond the chart's cluster-wide RBAC: kopf lists namespaces to follow the `e2e-*` pattern
    # (the chart grants it with watchNamespaces, whose RoleBindings cannot name a pattern).
    pattern = "gafka-e2e-namespace-pattern"
    grants = {
        "clusterrole": ["--verb=get,list,watch", "--resource=namespaces"],
        "clusterrolebinding": [f"--clusterrole={pattern}", f"--serviceaccount={OPERATOR_NAMESPACE}:{account}"],
    }
    for kind, grant in grants.items():
        kube.kubectl(
            "apply", "-f", "-", input=kube.kubectl("create", kind, pattern, *grant, "--dry-run=client", "-o", "yaml")
        )
    token = kube.kubectl("create", "token", account, "-n", OPERATOR_NAMESPACE, "--duration=24h").strip()
    write_kubeconfig(path, kube.server, kube.control_plane.certs.ca, account, {"token": token}, OPERATOR_NAMESPACE)
    return path


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
        # the HTTP port by name: the Services also carry the Kafka listener's port, in no promised order
        ports = [p for p in item.get("ports") or [] if p.get("port")]
        named = [p["port"] for p in ports if p.get("name") == PORT_NAME]
        target = named[0] if named else (ports[0]["port"] if ports else port)
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                urls += [f"{parts.scheme}://{address}:{target}" for address in endpoint.get("addresses") or []]
    return sorted(urls)
