"""The resource metrics API (``metrics.k8s.io/v1beta1``) of the agent's pods: the agent as kubelet + metrics-server.

A HorizontalPodAutoscaler (kube-controller-manager's HPA controller) reads pod CPU through the API server's
aggregation layer, so the agent serves that API itself, over HTTPS on an address of its own on ``lo``, and
registers it the way metrics-server's manifests do: a Service without selector, an EndpointSlice pointing at
that address, and the ``APIService`` ``v1beta1.metrics.k8s.io`` (``insecureSkipTLSVerify``). The API server
reaches the endpoint directly with ``--enable-aggregator-routing`` (there is no kube-proxy here).

What is measured, per running container: CPU is the rate of ``utime + stime`` (plus the reaped children's
``cutime + cstime``) of the container's process and its descendants, read from ``/proc`` every
:data:`SAMPLE_S` and taken over the last :data:`WINDOW_S` (reported as ``window``, with the newest sample's
``timestamp``, as metrics-server does: the HPA uses both); memory is their RSS. A node's usage is the sum of the
agent's pods on it (no other process counts). Pods in namespaces the agent does not run are simply not listed.

The pure parts (``/proc`` parsing, the rate, label selectors, the JSON documents, the routing) take no I/O and
are unit-tested in ``tests/e2e/test_node_agent.py``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import logging
import os
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gafka_operator.kube import ApiException, KubeApi

from . import network
from .scheduling import matches_expressions

__all__ = [
    "API_SERVICE",
    "GROUP",
    "GROUP_VERSION",
    "MANAGED_BY",
    "PodProcesses",
    "ProcStat",
    "ResourceMetricsApi",
    "Sample",
    "Usage",
    "answer",
    "node_metrics",
    "parse_label_selector",
    "parse_stat",
    "pod_metrics",
    "registration_objects",
    "tree_usage",
    "usage_over",
]

log = logging.getLogger("node_agent")

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
API_SERVICE = f"{VERSION}.{GROUP}"
MANAGED_BY = "e2e-node-agent.gafka.dev"
"""``endpointslice.kubernetes.io/managed-by`` of our EndpointSlice and ``app.kubernetes.io/managed-by`` of the
Service and APIService: the agent only ever updates or deletes objects carrying it (on kind, metrics-server's
APIService is left alone)."""
NAMESPACE = "kube-system"
SERVICE = "e2e-node-agent-metrics"
SERVICE_PORT = 443
SAMPLE_S = 1.0
WINDOW_S = 5.0
"""CPU is averaged over this much (metrics-server: its scrape interval, 15 s by default)."""
MIN_WINDOW_S = 1.5
"""A container is listed once its samples span at least this much (metrics-server: two scrapes)."""
KEEP_S = WINDOW_S + 3 * SAMPLE_S
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------ /proc, pure parts


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says about one process."""

    pid: int
    ppid: int
    cpu_ticks: int
    """utime + stime + cutime + cstime: its own CPU and that of its children it has reaped (so a short-lived
    child's CPU is not lost when it exits)."""
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line (the command name, in parentheses, may hold spaces and parentheses)."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()  # fields[0] is field 3 (state): field n is fields[n - 3]
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return ProcStat(pid, ppid, utime + stime + cutime + cstime, int(fields[21]))


def tree_usage(stats: Mapping[int, ProcStat], root: int) -> tuple[int, int] | None:
    """(CPU ticks, RSS pages) of ``root`` and its descendants, None when ``root`` is gone."""
    if root not in stats:
        return None
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in stats.values():
        children[stat.ppid].append(stat.pid)
    ticks = pages = 0
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ticks += stats[pid].cpu_ticks
        pages += stats[pid].rss_pages
        todo.extend(children.get(pid, ()))
    return ticks, pages


def read_proc(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat (one pass over ``/proc``; processes that exit meanwhile are skipped)."""
    stats = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = parse_stat(Path(entry.path, "stat").read_text())
            stats[stat.pid] = stat
    return stats


# ------------------------------------------------------------------------------------------ rates, pure parts


@dataclass(frozen=True, slots=True)
class Sample:
    monotonic: float
    wall: float
    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class Usage:
    """One container's (or pod's, node's) usage as metrics-server reports it."""

    nanocores: int
    memory_bytes: int
    window_s: float
    timestamp: float
    """Wall-clock time of the newest sample: the end of the window."""


def usage_over(
    samples: Sequence[Sample], window_s: float = WINDOW_S, min_window_s: float = MIN_WINDOW_S
) -> Usage | None:
    """CPU rate between the newest sample and the oldest one at most ``window_s`` before it (None while they span
    less than ``min_window_s``); memory of the newest. A counter that went back (a descendant reaped by init)
    counts as idle rather than negative."""
    if not samples:
        return None
    newest = samples[-1]
    base = next((s for s in samples if newest.monotonic - s.monotonic <= window_s + 1e-9), newest)
    span = newest.monotonic - base.monotonic
    if span < min_window_s:
        return None
    rate = max(0.0, newest.cpu_seconds - base.cpu_seconds) / span
    return Usage(round(rate * 1e9), newest.memory_bytes, span, newest.wall)


def total(usages: Iterable[Usage], *, default_timestamp: float) -> Usage:
    """Usages added up (a pod's containers, a node's pods): the newest timestamp, the longest window."""
    items = list(usages)
    if not items:
        return Usage(0, 0, WINDOW_S, default_timestamp)
    return Usage(
        sum(u.nanocores for u in items),
        sum(u.memory_bytes for u in items),
        max(u.window_s for u in items),
        max(u.timestamp for u in items),
    )


# ------------------------------------------------------------------------------------- selectors, pure parts

_KEY = r"([A-Za-z0-9][-A-Za-z0-9_./]*)"
_VALUE = r"([-A-Za-z0-9_.]*)"
_SET = re.compile(rf"^{_KEY}\s+(in|notin)\s*\(([-A-Za-z0-9_.,\s]*)\)$")
_NOT_EXISTS = re.compile(rf"^!\s*{_KEY}$")
_EQUALITY = re.compile(rf"^{_KEY}\s*(==|=|!=)\s*{_VALUE}$")
_EXISTS = re.compile(rf"^{_KEY}$")


def _terms(text: str) -> list[str]:
    """Split at the commas that separate requirements (not those inside ``in (a,b)``)."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text!r}")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    terms.append("".join(current))
    return [term.strip() for term in terms if term.strip()]


def parse_label_selector(text: str) -> list[dict[str, Any]]:
    """A ``labelSelector`` query string (``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
    ``!k``, comma-separated: what the HPA controller and kubectl send) as LabelSelector ``matchExpressions``.
    Raises ValueError for anything else (e.g. ``k>1``)."""
    expressions: list[dict[str, Any]] = []
    for term in _terms(text):
        if match := _SET.match(term):
            values = [v.strip() for v in match[3].split(",") if v.strip()]
            expressions.append({"key": match[1], "operator": "In" if match[2] == "in" else "NotIn", "values": values})
        elif match := _NOT_EXISTS.match(term):
            expressions.append({"key": match[1], "operator": "DoesNotExist"})
        elif match := _EQUALITY.match(term):
            operator = "NotIn" if match[2] == "!=" else "In"
            expressions.append({"key": match[1], "operator": operator, "values": [match[3]]})
        elif match := _EXISTS.match(term):
            expressions.append({"key": match[1], "operator": "Exists"})
        else:
            raise ValueError(f"unsupported label selector requirement {term!r}")
    return expressions


# ------------------------------------------------------------------------------------------ JSON, pure parts


@dataclass(frozen=True)
class PodProcesses:
    """A pod the agent runs, as the metrics see it: where it runs and its running containers' process ids."""

    namespace: str
    name: str
    uid: str
    node: str
    labels: Mapping[str, str]
    containers: Mapping[str, int]


@dataclass(frozen=True)
class PodUsage:
    pod: PodProcesses
    containers: Mapping[str, Usage]
    """Only the containers with enough samples."""

    @property
    def complete(self) -> bool:
        """Every running container has a usage (metrics-server lists a pod only then; so does this API)."""
        return bool(self.pod.containers) and set(self.containers) >= set(self.pod.containers)


def rfc3339(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_quantity(nanocores: int) -> str:
    return f"{nanocores}n"


def memory_quantity(memory_bytes: int) -> str:
    return f"{memory_bytes // 1024}Ki"


def window_duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _usage(usage: Usage) -> dict[str, str]:
    return {"cpu": cpu_quantity(usage.nanocores), "memory": memory_quantity(usage.memory_bytes)}


def pod_metrics(entry: PodUsage, now: float) -> dict[str, Any] | None:
    """A ``PodMetrics`` (None while a container has too few samples)."""
    if not entry.complete:
        return None
    pod = entry.pod
    names = sorted(pod.containers)
    whole = total((entry.containers[n] for n in names), default_timestamp=now)
    return {
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "labels": dict(pod.labels),
            "creationTimestamp": rfc3339(now),
        },
        "timestamp": rfc3339(whole.timestamp),
        "window": window_duration(whole.window_s),
        "containers": [{"name": name, "usage": _usage(entry.containers[name])} for name in names],
    }


def node_metrics(node: str, entries: Iterable[PodUsage], now: float) -> dict[str, Any]:
    """A ``NodeMetrics``: the sum of the agent's complete pods on ``node``."""
    usages = [total(e.containers.values(), default_timestamp=now) for e in entries if e.pod.node == node and e.complete]
    whole = total(usages, default_timestamp=now)
    return {
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {"name": node, "creationTimestamp": rfc3339(now)},
        "timestamp": rfc3339(whole.timestamp),
        "window": window_duration(whole.window_s),
        "usage": _usage(whole),
    }


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


API_GROUP = {
    "kind": "APIGroup",
    "apiVersion": "v1",
    "name": GROUP,
    "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
    "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
}
API_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ],
}


OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "e2e node agent metrics", "version": VERSION}, "paths": {}}
"""An empty OpenAPI document: the aggregator downloads one from every APIService (a 404 makes it log an error and
retry); metrics-server's is not needed by anything here."""


def answer(
    path: str, query: Mapping[str, str], entries: Sequence[PodUsage], nodes: Sequence[str], now: float
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for a GET of ``path``: discovery, pod and node metrics, or a ``Status``.

    ``/apis`` answers with the legacy ``APIGroupList`` (the aggregator then falls back from aggregated discovery
    to ``/apis/metrics.k8s.io/v1beta1``, as it does for any server not offering it).
    """
    parts = [p for p in path.split("/") if p]
    if parts == ["openapi", "v2"]:
        return 200, OPENAPI_V2
    if parts == ["apis"]:
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [API_GROUP]}
    if parts == ["apis", GROUP]:
        return 200, API_GROUP
    if parts[:3] != ["apis", GROUP, VERSION]:
        return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
    rest = parts[3:]
    if not rest:
        return 200, API_RESOURCES
    if query.get("watch") in ("true", "1"):
        return 405, _status(405, "MethodNotAllowed", "watch is not supported by this metrics API")
    try:
        expressions = parse_label_selector(query.get("labelSelector", ""))
    except ValueError as error:
        return 400, _status(400, "BadRequest", str(error))
    if rest[0] == "nodes" and len(rest) <= 2:
        wanted = [n for n in nodes if len(rest) == 1 or n == rest[1]]
        if len(rest) == 2 and not wanted:
            return 404, _status(404, "NotFound", f'nodemetrics.{GROUP} "{rest[1]}" not found')
        items = [node_metrics(n, entries, now) for n in wanted]
        return 200, items[0] if len(rest) == 2 else _list("NodeMetricsList", items)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if rest[0] != "pods" or len(rest) > 2:
        return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
    items = []
    for entry in sorted(entries, key=lambda e: (e.pod.namespace, e.pod.name)):
        pod = entry.pod
        if namespace is not None and pod.namespace != namespace:
            continue
        if len(rest) == 2 and pod.name != rest[1]:
            continue
        if not matches_expressions(pod.labels, expressions):
            continue
        metrics = pod_metrics(entry, now)
        if metrics is not None:
            items.append(metrics)
    if len(rest) == 2:
        if not items:
            return 404, _status(404, "NotFound", f'podmetrics.{GROUP} "{rest[1]}" not found')
        return 200, items[0]
    return 200, _list("PodMetricsList", items)


def registration_objects(ip: str, port: int) -> list[dict[str, Any]]:
    """The Service (no selector), its EndpointSlice (``ip:port``) and the APIService, as metrics-server's
    manifests register it (except that a controller-less EndpointSlice stands in for its pods)."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
            "spec": {"ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": SERVICE,
                "namespace": NAMESPACE,
                "labels": {
                    **labels,
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE, "labels": labels},
            "spec": {
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": SERVICE_PORT},
                "group": GROUP,
                "version": VERSION,
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


# ------------------------------------------------------------------------------------------------ sampling


class Sampler:
    """Samples every running container's process tree each :data:`SAMPLE_S` (one pass over ``/proc`` for all of
    them) and keeps the last :data:`KEEP_S` of samples per container run."""

    def __init__(self, pods: Callable[[], Sequence[PodProcesses]]) -> None:
        self._pods = pods
        self._guard = threading.Lock()
        self._history: dict[tuple[str, str, int], collections.deque[Sample]] = {}
        self._current: list[PodProcesses] = []

    def sample(self) -> None:
        pods = list(self._pods())
        stats = read_proc()
        now_mono, now_wall = time.monotonic(), time.time()
        seen = set()
        with self._guard:
            for pod in pods:
                for container, pid in pod.containers.items():
                    usage = tree_usage(stats, pid)
                    if usage is None:
                        continue
                    key = (pod.uid, container, pid)  # a restarted container starts a new history
                    seen.add(key)
                    ticks, pages = usage
                    history = self._history.setdefault(key, collections.deque())
                    history.append(Sample(now_mono, now_wall, ticks / CLK_TCK, pages * PAGE_SIZE))
                    while history and now_mono - history[0].monotonic > KEEP_S:
                        history.popleft()
            for key in set(self._history) - seen:
                del self._history[key]
            self._current = pods

    def snapshot(self) -> list[PodUsage]:
        with self._guard:
            entries = []
            for pod in self._current:
                usages = {}
                for container, pid in pod.containers.items():
                    history = self._history.get((pod.uid, container, pid))
                    usage = usage_over(list(history)) if history else None
                    if usage is not None:
                        usages[container] = usage
                entries.append(PodUsage(pod, usages))
            return entries


# ---------------------------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    """HTTPS, with each TLS handshake in its connection's thread (a slow client never blocks ``accept``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, api: ResourceMetricsApi) -> None:
        self.context = context
        self.api = api
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(10.0)
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError as error:  # ssl.SSLError included: a probe, a client giving up
            log.debug("event=metrics_tls_failed client=%s error=%r", client_address, error)
            return
        try:
            tls.settimeout(60.0)  # idle keep-alive connections end
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("event=metrics_request_failed client=%s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, body = self.server.api.answer(parts.path, dict(parse_qsl(parts.query)))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        level = logging.DEBUG if status == 200 else logging.INFO
        log.log(
            level,
            "event=metrics_request path=%s status=%d user=%s",
            self.path,
            status,
            self.headers.get("X-Remote-User", "-"),
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by :meth:`do_GET` (structured)."""


def _self_signed(directory: Path, ip: str) -> tuple[Path, Path]:
    """A throw-away serving certificate (the APIService skips verification, as metrics-server's does)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "serving.crt", directory / "serving.key"
    done = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "7",
            "-subj", "/CN=e2e-node-agent-metrics",
            "-addext", f"subjectAltName=IP:{ip},DNS:{SERVICE}.{NAMESPACE}.svc",
            "-keyout", str(key), "-out", str(crt),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"openssl could not make the metrics API's certificate: {done.stderr.strip()}")
    return crt, key


@dataclass
class ResourceMetricsApi:
    """The sampler, the HTTPS server and the API registration, started and stopped with the agent."""

    api: KubeApi
    pods: Callable[[], Sequence[PodProcesses]]
    nodes: Sequence[str]
    directory: Path
    ip: str
    port: int = 4443
    registered: bool = False
    owned: bool = False
    """The APIService is ours (False when another metrics server, e.g. metrics-server, registered it first)."""
    _sampler: Sampler = field(init=False)
    _server: _Server | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._sampler = Sampler(self.pods)

    def answer(self, path: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        return answer(path, query, self._sampler.snapshot(), self.nodes, time.time())

    def start(self) -> None:
        crt, key = _self_signed(self.directory, self.ip)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(crt), str(key))
        network.add_address(self.ip)
        self._server = _Server((self.ip, self.port), context, self)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="metrics-api", daemon=True),
            threading.Thread(target=self._sample_loop, name="metrics-sampler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("event=metrics_api_listening address=https://%s:%d window_s=%.0f", self.ip, self.port, WINDOW_S)

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._sampler.sample()
            except Exception:  # never let one bad pass end the sampling
                log.exception("event=metrics_sample_failed")
            self._stop.wait(max(0.05, SAMPLE_S - (time.monotonic() - started)))

    def register(self) -> None:
        """Create or update the Service, EndpointSlice and APIService, unless another server owns the APIService."""
        service, endpoints, api_service = registration_objects(self.ip, self.port)
        try:
            current = self.api.request("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
        except ApiException as error:
            if error.status != 404:
                raise
            current = None
        owner = ((current or {}).get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/managed-by")
        if current is not None and owner != MANAGED_BY:
            log.info("event=metrics_api_present apiservice=%s service=%s", API_SERVICE, current["spec"].get("service"))
            self.registered, self.owned = True, False
            return
        for obj in (service, endpoints, api_service):
            self._apply(obj)
        self.registered, self.owned = True, True
        log.info("event=metrics_api_registered apiservice=%s endpoint=%s:%d", API_SERVICE, self.ip, self.port)

    def _apply(self, obj: Mapping[str, Any]) -> None:
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        namespace = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        plural = {"Service": "services", "EndpointSlice": "endpointslices", "APIService": "apiservices"}[kind]
        self.api.request(
            "PATCH",
            f"{prefix}{namespace}/{plural}/{meta['name']}",
            query={"fieldManager": "e2e-node-agent", "force": "true"},
            body=dict(obj),
            content_type="application/apply-patch+yaml",
        )

    def unregister(self) -> None:
        if not self.owned:
            return
        for path in (
            f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}",
            f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/{SERVICE}",
            f"/api/v1/namespaces/{NAMESPACE}/services/{SERVICE}",
        ):
            try:
                self.api.request("DELETE", path)
            except ApiException as error:
                if error.status != 404:
                    log.warning("event=metrics_unregister_failed path=%s status=%s", path, error.status)
            except OSError as error:
                log.warning("event=metrics_unregister_failed path=%s error=%r", path, error)
        self.owned = self.registered = False
        log.info("event=metrics_api_unregistered apiservice=%s", API_SERVICE)

    def stop(self) -> None:
        self.unregister()
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        network.remove_address(self.ip)
