"""Everything one operator process runs besides kopf itself, assembled from its environment.

:class:`OperatorRuntime` owns the API client, the controller host, the HTTP server of the controllers, the
leadership loop and the reconcilers; kopf's startup handler starts it and its cleanup handler stops it
(:mod:`gafka_operator.handlers`). The environment is what the Helm chart sets (``charts/gafka``):

| variable | default | what |
|---|---|---|
| ``GAFKA_OPERATOR_CONTROLLER_URL`` | required | base URL brokers reach the controllers at |
| ``GAFKA_OPERATOR_BROKER_IMAGE`` | required | image of clusters without ``spec.image`` |
| ``GAFKA_OPERATOR_CLUSTER_DOMAIN`` | empty | for fully-qualified broker URLs |
| ``GAFKA_OPERATOR_CONTROLLER_LISTEN`` | ``0.0.0.0:9093`` | the controllers' HTTP server (also readyz, metrics) |
| ``GAFKA_OPERATOR_WATCH_NAMESPACES`` | empty (all) | namespaces with one KopfPeering each |
| ``GAFKA_OPERATOR_RACK_AWARENESS`` | ``true`` | copy node racks onto broker pods |
| ``POD_NAMESPACE`` | none | where the leader Lease lives; none: no Lease (peering alone decides) |
| ``POD_ID`` | generated | kopf's peering identity, also the Lease holder identity |
| ``GAFKA_OPERATOR_LEASE_NAME`` | ``<peering>-controller`` | |
| ``GAFKA_OPERATOR_LEASE_SECONDS`` | ``15`` | Lease duration (renewed every third of it) |
| ``GAFKA_OPERATOR_RESYNC_SECONDS`` | ``30`` | a cluster's periodic pass (drift correction) |
| ``GAFKA_OPERATOR_NOT_READY_GRACE_SECONDS`` | ``30`` | a broker pod not ready this long is fenced |
| ``GAFKA_OPERATOR_TOPIC_RESYNC_SECONDS`` | ``30`` | a GafkaTopic's periodic status refresh |
| ``GAFKA_OPERATOR_AUTOSCALE_SECONDS`` | ``15`` | how often the built-in autoscaler samples the brokers |
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gafka_operator.controllers import ClusterKey, ControllerHost, ControllerServer, OperatorApp, OperatorMetrics
from gafka_operator.controllers import parse_listen as parse_listen
from gafka_operator.kube import KubeApi
from gafka_operator.leadership import Leadership, LeaseSettings, PeeringSettings
from gafka_operator.manifests import Platform
from gafka_operator.reconcile import ClusterReconciler, Emit, ReconcileSettings
from gafka_operator.topics import TopicReconciler

__all__ = ["OperatorConfig", "OperatorRuntime", "default_identity"]

logger = logging.getLogger(__name__)


def default_identity() -> str:
    """``POD_ID`` if set (the chart sets the pod name), else ``host/pid/random``: unique per process."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    value = float(raw)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    platform: Platform
    listen: tuple[str, int]
    reconcile: ReconcileSettings
    watch_namespaces: tuple[str, ...] = ()
    lease_namespace: str | None = None
    lease_name: str | None = None
    lease_seconds: int = 15
    topic_resync_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorConfig:
        platform = Platform.from_env(env)
        lease_seconds = int(_float(env, "GAFKA_OPERATOR_LEASE_SECONDS", 15))
        return cls(
            platform=platform,
            listen=parse_listen(env.get("GAFKA_OPERATOR_CONTROLLER_LISTEN") or "0.0.0.0:9093"),
            reconcile=ReconcileSettings(
                platform=platform,
                resync_s=_float(env, "GAFKA_OPERATOR_RESYNC_SECONDS", 30.0),
                not_ready_grace_s=_float(env, "GAFKA_OPERATOR_NOT_READY_GRACE_SECONDS", 30.0),
                rack_awareness=(env.get("GAFKA_OPERATOR_RACK_AWARENESS") or "true").lower() != "false",
                autoscale_every_s=_float(env, "GAFKA_OPERATOR_AUTOSCALE_SECONDS", 15.0),
            ),
            watch_namespaces=tuple(
                n.strip() for n in (env.get("GAFKA_OPERATOR_WATCH_NAMESPACES") or "").split(",") if n.strip()
            ),
            lease_namespace=env.get("POD_NAMESPACE") or None,
            lease_name=env.get("GAFKA_OPERATOR_LEASE_NAME") or None,
            lease_seconds=max(lease_seconds, 3),
            topic_resync_s=_float(env, "GAFKA_OPERATOR_TOPIC_RESYNC_SECONDS", 30.0),
        )


class OperatorRuntime:
    def __init__(
        self,
        config: OperatorConfig,
        api: KubeApi,
        *,
        identity: str,
        peering: PeeringSettings,
        emit: Emit,
    ) -> None:
        self.config = config
        self.api = api
        self.emit = emit
        self.metrics = OperatorMetrics()
        self.host = ControllerHost(api, self.metrics)
        lease = None
        if config.lease_namespace is not None:
            seconds = config.lease_seconds
            lease = LeaseSettings(
                namespace=config.lease_namespace,
                name=config.lease_name or f"{peering.name}-controller",
                duration_s=seconds,
                renew_every_s=seconds / 3,
                retry_every_s=max(1.0, seconds / 7),
            )
        self.leadership = Leadership(api, identity, peering, lease, self._leadership_changed)
        self.server = ControllerServer(OperatorApp(self.host, self.is_active), *config.listen)
        self.clusters: dict[ClusterKey, ClusterReconciler] = {}
        self.topics = TopicReconciler(api, self.host, is_active=self.is_active, emit=emit, metrics=self.metrics)
        self._leading: asyncio.Task[None] | None = None

    def is_active(self) -> bool:
        return self.leadership.active

    def cluster(self, key: ClusterKey) -> ClusterReconciler:
        reconciler = self.clusters.get(key)
        if reconciler is None:
            reconciler = ClusterReconciler(
                key, self.api, self.host, self.config.reconcile,
                is_active=self.is_active, emit=self.emit, metrics=self.metrics,
            )  # fmt: skip
            self.clusters[key] = reconciler
        return reconciler

    async def start(self) -> None:
        await self.server.start()
        await self.leadership.evaluate()  # a first verdict before kopf handles anything
        self._leading = asyncio.create_task(self.leadership.run(), name="gafka-leadership")
        logger.info(
            "event=operator_started listen=%s:%d identity=%s lease=%s",
            *self.config.listen,
            self.leadership.identity,
            f"{self.leadership.lease.namespace}/{self.leadership.lease.name}" if self.leadership.lease else "-",
        )

    async def stop(self) -> None:
        if self._leading is not None:
            self._leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leading
        await self.host.remove_all()
        await self.leadership.release()
        await self.server.stop()
        close: Any = self.api.api_client.close
        close()
        logger.info("event=operator_stopped")

    async def _leadership_changed(self, active: bool) -> None:
        self.metrics.active.set(1 if active else 0)
        if not active:
            await self.host.remove_all()
            return
        for reconciler in list(self.clusters.values()):
            reconciler.wake()
