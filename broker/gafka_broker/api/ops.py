"""Operations: cluster description, health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response
from gafka_broker.broker import Broker
from gafka_broker.broker_stats import broker_stats
from gafka_broker.cluster_health import cluster_health
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.openapi import openapi_document

__all__ = ["OpsHandlers"]


class OpsHandlers:
    """Endpoints that answer even while the broker recovers its logs (readiness says whether it is done)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._openapi = json_response(openapi_document()).body

    async def cluster(self, _request: Request) -> Response:
        """``GET /v1/cluster``: who is in the cluster (every broker the metadata knows, ``fenced`` when its
        session expired), who controls it, and the request limits."""
        broker = self.broker
        config = broker.config
        metadata = broker.replica_manager.metadata
        if metadata is None:
            brokers = [
                {"id": broker.meta.broker_id, "url": broker.url, "fenced": True, "rack": config.rack, "leaders": 0}
            ]
            partitions = None
        else:
            health = cluster_health(metadata)
            brokers = [
                {
                    "id": info.broker_id,
                    "url": info.url,
                    "fenced": info.fenced,
                    "rack": info.rack,
                    "leaders": health.brokers[info.broker_id].leaders,
                    "replicas": health.brokers[info.broker_id].replicas,
                }
                for info in sorted(metadata.brokers.values(), key=lambda info: info.broker_id)
            ]
            partitions = health.to_json()
        controller_url = broker.url if broker.controller_service is not None else broker.config.controller_url
        return json_response(
            {
                "cluster_id": metadata.cluster_id if metadata is not None else broker.meta.cluster_id,
                "brokers": brokers,
                "controller": broker.controller_id,
                "controller_url": controller_url,
                "partitions": partitions,
                "limits": {
                    "max_request_bytes": config.max_request_bytes,
                    "max_records_per_request": config.max_records_per_request,
                    "max_fetch_bytes": config.max_fetch_bytes,
                    "max_wait_ms": config.max_wait_ms,
                    "max_concurrent_long_polls": config.max_concurrent_long_polls,
                },
            }
        )

    async def broker_stats(self, _request: Request) -> Response:
        """``GET /v1/broker``: this broker's own counters and disk (the console turns them into rates)."""
        return json_response(broker_stats(self.broker))

    async def healthz(self, _request: Request) -> Response:
        """Liveness: the process serves HTTP."""
        return json_response({"status": "ok"})

    async def readyz(self, _request: Request) -> Response:
        """Readiness: logs recovered and not shutting down."""
        broker = self.broker
        if broker.stopping:
            raise ApiError(ErrorCode.BROKER_NOT_AVAILABLE, "the broker is shutting down")
        broker.check_ready()
        return json_response({"status": "ready"})

    async def metrics(self, _request: Request) -> Response:
        """Prometheus text format: the default registry (the log's metrics and ours)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, _request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")
