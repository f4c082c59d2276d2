"""Helpers of the operator tests: the operator as a ``kopf run`` subprocess, waiting, playing kubelet.

The operator runs exactly as the chart runs it (``kopf run --module=gafka_operator.handlers``), as a subprocess
with the test kubeconfig (``KUBECONFIG``), a free controller port on loopback and short resync periods. Its log
goes to a file whose tail is attached to assertion messages.
"""

from __future__ import annotations

import http.server
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

import support
from gafka_operator.kube import ApiException, KubeApi, ObjectRef
from k8s.controlplane import Kube, tail
from support import free_port

T = TypeVar("T")
WAIT_S = 60.0
LONG_SESSION = {"broker_session_timeout_ms": 3_600_000}
"""Brokers played by the tests register once and never heartbeat: keep them live."""
_ids = itertools.count()


REPO = Path(__file__).resolve().parents[2]
CRDS = ("gafkaclusters.gafka.dev", "gafkatopics.gafka.dev", "clusterkopfpeerings.kopf.dev")


def install_crds(kube: Kube) -> None:
    """GafkaCluster, GafkaTopic and kopf's peering CRDs from ``crds/``, applied and established."""
    kube.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    for name in CRDS:
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")


RETRIED: tuple[type[BaseException], ...] = (ApiException, httpx.HTTPError, KeyError, TypeError)
"""What a probe may raise while the thing it waits for is not there yet."""


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = WAIT_S,
    interval: float = 0.2,
    log: Any = None,
    retry_on: tuple[type[BaseException], ...] = RETRIED,
) -> T:
    """:func:`support.wait_for` with this harness's defaults: Kubernetes API errors count as "not yet", and a
    time-out shows ``log.tail()`` (e.g. the operator's log)."""
    explain = (lambda: f"--- log tails:\n{log.tail()}") if log is not None else None
    return support.wait_for(probe, timeout, what, interval=interval, retry_on=retry_on, explain=explain)


class OperatorProcess:
    """``kopf run --module=gafka_operator.handlers`` against the test cluster."""

    def __init__(
        self,
        kube: Kube,
        log_dir: Path,
        *,
        lease_namespace: str | None,
        args: tuple[str, ...] = ("--all-namespaces", "--standalone"),
        env: Mapping[str, str] | None = None,
        identity: str | None = None,
    ) -> None:
        self.kube = kube
        self.port = free_port()
        self.identity = identity or f"op-{os.getpid()}-{next(_ids)}"
        self.log_path = log_dir / f"{self.identity}.log"
        self.args = args
        self.env = {
            **kube.env,
            "GAFKA_OPERATOR_CONTROLLER_URL": f"http://127.0.0.1:{self.port}",
            "GAFKA_OPERATOR_CONTROLLER_LISTEN": f"127.0.0.1:{self.port}",
            "GAFKA_OPERATOR_BROKER_IMAGE": "gafka/broker:test",
            "GAFKA_OPERATOR_RESYNC_SECONDS": "2",
            "GAFKA_OPERATOR_TOPIC_RESYNC_SECONDS": "2",
            "GAFKA_OPERATOR_NOT_READY_GRACE_SECONDS": "5",
            "GAFKA_OPERATOR_LEASE_SECONDS": "6",
            "GAFKA_OPERATOR_AUTOSCALE_SECONDS": "1",
            "POD_ID": self.identity,
            **(env or {}),
        }
        if lease_namespace is not None:
            self.env["POD_NAMESPACE"] = lease_namespace
        else:
            self.env.pop("POD_NAMESPACE", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OperatorProcess:
        argv = [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--module=gafka_operator.handlers",
            "--log-format=plain",
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        wait_for("the operator's controller server", lambda: self.status("/healthz") == 200, log=self)
        return self

    def status(self, path: str) -> int:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, ConnectionError):
            return 0

    def controller(self, namespace: str, cluster: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/clusters/{namespace}/{cluster}/v1/controller", timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (kopf's graceful exit: cleanup handlers run), then SIGKILL after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


# ------------------------------------------------------------------------------------------------- objects


def gafka_cluster(name: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gafka.dev/v1alpha1",
        "kind": "GafkaCluster",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, **spec},
    }


def gafka_topic(name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gafka.dev/v1alpha1",
        "kind": "GafkaTopic",
        "metadata": {"name": name},
        "spec": {"cluster": cluster, **spec},
    }


def create(api: KubeApi, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    return api.create(obj)


def condition(obj: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def mark_ready(api: KubeApi, namespace: str, pod: str, ready: bool = True) -> None:
    """Play kubelet: report the pod Running and (not) Ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    flag = "True" if ready else "False"
    conditions = [
        {"type": kind, "status": "True" if kind in ("PodScheduled", "Initialized") else flag, "lastTransitionTime": now}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    api.merge_patch(
        ObjectRef("Pod", namespace, pod),
        {"status": {"phase": "Running", "conditions": conditions, "startTime": now}},
        "status",
    )


def pod_names(api: KubeApi, namespace: str, cluster: str) -> set[str]:
    pods = api.list(ObjectRef("Pod", namespace), label_selector=f"app.kubernetes.io/instance={cluster}")
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def register_brokers(
    op: OperatorProcess,
    namespace: str,
    cluster: str,
    ids: range | list[int],
    tag: str = "a",
    urls: Mapping[int, str] | None = None,
) -> None:
    """Play brokers: register them with the cluster's controller (they stay live as long as the session
    timeout of the cluster's spec allows: tests set it long)."""
    with op.controller(namespace, cluster) as http:
        for broker_id in ids:
            url = (urls or {}).get(broker_id, f"http://{cluster}-{broker_id}.test:9092")
            response = http.post(
                f"/brokers/{broker_id}/register", json={"url": url, "incarnation": f"{tag}-{broker_id}"}
            )
            assert response.status_code == 200, response.text


def play_ready(api: KubeApi, op: OperatorProcess, namespace: str, cluster: str, replicas: int) -> None:
    """Play brokers and kubelet for a cluster whose pods exist: register every broker with the cluster's
    controller, report every pod ready, and wait for the cluster's Ready=True."""
    config_map = ObjectRef("ConfigMap", namespace, f"{cluster}-metadata")
    wait_for("the metadata ConfigMap", lambda: api.get(config_map), log=op)
    register_brokers(op, namespace, cluster, range(replicas))
    for index in range(replicas):
        mark_ready(api, namespace, f"{cluster}-{index}")
    ref = ObjectRef("GafkaCluster", namespace, cluster)
    wait_for("Ready=True", lambda: (c := condition(api.get(ref), "Ready")) and c["status"] == "True", log=op)


def warning(api: KubeApi, namespace: str, cluster: str, reason: str) -> dict[str, Any] | None:
    """The cluster's Warning condition, when it is True for ``reason`` (a probe for :func:`wait_for`)."""
    found = condition(api.get(ObjectRef("GafkaCluster", namespace, cluster)), "Warning")
    return dict(found) if found and found["status"] == "True" and found["reason"] == reason else None


def controller_metadata(op: OperatorProcess, namespace: str, cluster: str) -> dict[str, Any]:
    with op.controller(namespace, cluster) as http:
        response = http.get("/metadata", params={"since": -1})
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


class FakeBrokerMetrics:
    """A broker's /metrics only: byte counters growing at ``rate`` bytes per second and, when ``cpu`` is given,
    ``process_cpu_seconds_total`` growing at ``cpu`` cores (for the autoscaler)."""

    def __init__(self, rate: float, cpu: float | None = None) -> None:
        self._rate = rate
        self._base = 0.0
        self._since = time.monotonic()
        self._cpu, self._cpu_base, self._cpu_since = cpu, 0.0, self._since
        metrics = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.exposition().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def total(self) -> float:
        return self._base + self._rate * (time.monotonic() - self._since)

    def set_rate(self, rate: float) -> None:
        self._base, self._since, self._rate = self.total(), time.monotonic(), rate

    def cpu_seconds(self) -> float:
        return self._cpu_base + (self._cpu or 0.0) * (time.monotonic() - self._cpu_since)

    def set_cpu(self, cores: float) -> None:
        self._cpu_base, self._cpu_since, self._cpu = self.cpu_seconds(), time.monotonic(), cores

    def exposition(self) -> str:
        half = self.total() / 2
        text = (
            "# TYPE gafka_topic_bytes_in_total counter\n"
            f'gafka_topic_bytes_in_total{{topic="t"}} {half}\n'
            "# TYPE gafka_topic_bytes_out_total counter\n"
            f'gafka_topic_bytes_out_total{{topic="t"}} {half}\n'
        )
        if self._cpu is not None:
            text += f"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {self.cpu_seconds()}\n"
        return text

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
