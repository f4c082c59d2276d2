"""The controllers the operator hosts: one :class:`Controller` + :class:`ControllerService` per GafkaCluster,
served by one HTTP server on the operator's controller port (default 9093).

Routes:

- ``/clusters/<namespace>/<name>/v1/controller/...``: that cluster's controller (the routes of
  :mod:`gafka_broker.controller.service`); ``503 NOT_CONTROLLER`` when this replica does not host it (a standby,
  or a cluster this replica has not loaded yet). Brokers retry, as they do while a controller restarts.
- ``/readyz``: 200 only while this replica is the active one (:mod:`gafka_operator.leadership`), so the
  controller Service sends brokers to it alone; 503 otherwise.
- ``/healthz``: 200 while the process serves (kopf's own liveness endpoint is separate).
- ``/metrics``: Prometheus text format.

**Where it runs.** The server is a uvicorn ``Server`` task on kopf's own event loop, started by a kopf startup
handler and stopped by a cleanup handler (:class:`ControllerServer`). One loop means the kopf handlers, the
per-cluster tick tasks and the HTTP handlers share the same objects without cross-thread hand-offs
(``MetadataWatch`` wakes long polls with ``call_soon_threadsafe`` on the loop it was bound to); everything that
blocks (the metadata store's API calls, the controller's decisions) already runs in worker threads via
``asyncio.to_thread``, so neither side starves the other. A separate thread with its own loop would only add
a second place for deadlocks and a shutdown order to get right. uvicorn's signal handling is switched off:
SIGTERM belongs to kopf, whose cleanup handler then stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gafka_broker.controller.controller import Controller, ControllerSettings
from gafka_broker.controller.service import ControllerService
from gafka_operator.kube import KubeApi
from gafka_operator.kube_store import KubeMetadataStore, metadata_config_map_name

__all__ = [
    "ClusterKey",
    "ControllerHost",
    "ControllerServer",
    "HostedController",
    "OperatorApp",
    "OperatorMetrics",
    "parse_listen",
]

logger = logging.getLogger(__name__)

ClusterKey = tuple[str, str]
"""(namespace, name) of a GafkaCluster."""


class OperatorMetrics:
    """The operator's own Prometheus metrics (a private registry: nothing else of the process leaks in)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.active = Gauge(
            "gafka_operator_active", "1 while this replica is the active one (hosts the controllers).", [],
            registry=self.registry,
        )  # fmt: skip
        self.controllers = Gauge(
            "gafka_operator_controllers", "Cluster controllers hosted by this replica.", registry=self.registry
        )
        self.reconciles = Counter(
            "gafka_operator_reconciles", "Reconcile passes by kind and result.", ["kind", "result"],
            registry=self.registry,
        )  # fmt: skip
        self.actions = Counter(
            "gafka_operator_actions", "Actions taken on clusters (apply, scale, drain, roll, fence...).", ["action"],
            registry=self.registry,
        )  # fmt: skip
        self.under_replicated = Gauge(
            "gafka_operator_under_replicated_partitions",
            "Partitions with fewer in-sync replicas than replicas, per cluster.",
            ["namespace", "cluster"],
            registry=self.registry,
        )
        self.ready_brokers = Gauge(
            "gafka_operator_ready_brokers", "Ready broker pods, per cluster.", ["namespace", "cluster"],
            registry=self.registry,
        )  # fmt: skip

    def forget(self, key: ClusterKey) -> None:
        for gauge in (self.under_replicated, self.ready_brokers):
            with contextlib.suppress(KeyError):
                gauge.remove(*key)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class HostedController:
    key: ClusterKey
    cluster_id: str
    store: KubeMetadataStore
    controller: Controller
    service: ControllerService
    app: Starlette


class ControllerHost:
    """The controllers this replica hosts, by cluster. ``ensure``/``remove`` are idempotent."""

    def __init__(self, api: KubeApi, metrics: OperatorMetrics | None = None, *, tick_ms: int = 200) -> None:
        self.api = api
        self.metrics = metrics or OperatorMetrics()
        self.tick_ms = tick_ms
        self._hosted: dict[ClusterKey, HostedController] = {}
        self._locks: dict[ClusterKey, asyncio.Lock] = {}

    def get(self, key: ClusterKey) -> HostedController | None:
        return self._hosted.get(key)

    def keys(self) -> list[ClusterKey]:
        return sorted(self._hosted)

    def _lock(self, key: ClusterKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def ensure(
        self,
        key: ClusterKey,
        *,
        cluster_id: str,
        settings: ControllerSettings,
        labels: Mapping[str, str],
        owner: Mapping[str, Any] | None,
    ) -> HostedController:
        """Load (or keep) the cluster's controller. Raises
        :class:`~gafka_operator.kube_store.ForeignMetadataError` when its ConfigMap belongs to another cluster id."""
        async with self._lock(key):
            hosted = self._hosted.get(key)
            if hosted is not None and hosted.cluster_id == cluster_id:
                hosted.controller.settings = settings
                hosted.store.owner = dict(owner) if owner is not None else None
                return hosted
            if hosted is not None:
                await self._stop(hosted)
            namespace, name = key
            store = KubeMetadataStore(
                self.api,
                namespace,
                metadata_config_map_name(name),
                cluster_id=cluster_id,
                labels=labels,
                owner=owner,
            )
            await asyncio.to_thread(store.load)  # ForeignMetadataError before anything starts
            controller = Controller(store, settings, cluster_id)
            service = ControllerService(controller, tick_ms=self.tick_ms)
            await service.start()  # writes the first metadata when the ConfigMap does not exist yet
            hosted = HostedController(key, cluster_id, store, controller, service, Starlette(routes=service.routes()))
            self._hosted[key] = hosted
            self.metrics.controllers.set(len(self._hosted))
            logger.info("event=controller_loaded namespace=%s cluster=%s cluster_id=%s", namespace, name, cluster_id)
            return hosted

    async def remove(self, key: ClusterKey) -> None:
        async with self._lock(key):
            hosted = self._hosted.pop(key, None)
            if hosted is not None:
                await self._stop(hosted)
                logger.info("event=controller_unloaded namespace=%s cluster=%s", *key)
            self.metrics.controllers.set(len(self._hosted))

    async def remove_all(self) -> None:
        for key in self.keys():
            await self.remove(key)

    @staticmethod
    async def _stop(hosted: HostedController) -> None:
        await hosted.service.stop()


def _json(data: Any, status: int) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


class OperatorApp:
    """The ASGI app: per-cluster controllers under ``/clusters/<ns>/<name>``, plus readyz/healthz/metrics."""

    def __init__(self, host: ControllerHost, is_active: Callable[[], bool]) -> None:
        self.host = host
        self.is_active = is_active
        self._base = Starlette(
            routes=[
                Route("/readyz", self._readyz),
                Route("/healthz", self._healthz),
                Route("/metrics", self._metrics),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or not path.startswith("/clusters/"):
            await self._base(scope, receive, send)
            return
        parts = path.split("/", 4)  # "", "clusters", namespace, name, rest
        if len(parts) < 4 or not parts[2] or not parts[3]:
            await _json({"error_code": "INVALID_REQUEST", "message": "use /clusters/<ns>/<name>/..."}, 404)(
                scope, receive, send
            )
            return
        key = (parts[2], parts[3])
        hosted = self.host.get(key) if self.is_active() else None
        if hosted is None:
            message = f"this operator replica does not host the controller of {key[0]}/{key[1]}" + (
                "" if self.is_active() else " (it is on standby)"
            )
            await _json({"error_code": "NOT_CONTROLLER", "message": message}, 503)(scope, receive, send)
            return
        child = dict(scope)
        child["root_path"] = scope.get("root_path", "") + f"/clusters/{key[0]}/{key[1]}"
        await hosted.app(child, receive, send)

    async def _readyz(self, request: Request) -> Response:
        if self.is_active():
            return PlainTextResponse(f"active: {len(self.host.keys())} controllers\n")
        return PlainTextResponse("standby\n", status_code=503)

    async def _healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def _metrics(self, request: Request) -> Response:
        self.host.metrics.active.set(1 if self.is_active() else 0)
        return Response(self.host.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: kopf owns SIGTERM/SIGINT and stops us from its cleanup handler."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ControllerServer:
    """The HTTP server as a task on the current (kopf's) event loop."""

    def __init__(self, app: OperatorApp, host: str, port: int) -> None:
        self.server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                lifespan="off",
                access_log=False,
                log_config=None,
                server_header=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind (an OSError here if the port is taken: uvicorn would ``sys.exit`` inside the task) and serve."""
        config = self.server.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self._socket = socket.create_server((config.host, config.port), family=family, backlog=1024)
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]), name="gafka-controller-server")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
                raise RuntimeError("the controller server exited at start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._socket is not None:
            self._socket.close()
