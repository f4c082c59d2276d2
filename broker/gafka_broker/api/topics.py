"""Topic administration: create, list, describe, alter (partitions, configs) and delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response, query_bool, read_json_object
from gafka_broker.broker import Broker
from gafka_broker.errors import ApiError, ErrorCode

__all__ = ["TopicHandlers"]

ADMIN_BODY_LIMIT = 1024 * 1024
"""Topic requests are small; anything bigger is a mistake."""

_CREATE_FIELDS = frozenset({"name", "partitions", "replication_factor", "configs"})
_ALTER_FIELDS = frozenset({"partitions", "configs"})


async def _json_object(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    return await read_json_object(request, allowed, ADMIN_BODY_LIMIT)


class TopicHandlers:
    """``/v1/topics`` and ``/v1/topics/{topic}``, bound to one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def create(self, request: Request) -> Response:
        """``POST /v1/topics`` ``{name, partitions?, replication_factor?, configs?}`` -> 201 and the topic."""
        self.broker.check_ready()
        document = await _json_object(request, _CREATE_FIELDS)
        if "name" not in document:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, "name is required")
        created = await self.broker.create_topic(
            document["name"], document.get("partitions"), document.get("replication_factor"), document.get("configs")
        )
        return json_response(await self.broker.describe_topic(created.name, created=True), status=201)

    async def list(self, request: Request) -> Response:
        """``GET /v1/topics``; internal topics (``__consumer_offsets``) only with ``?internal=true``."""
        broker = self.broker
        broker.check_ready()
        internal = query_bool(request.query_params, "internal", False)
        names = broker.topic_names(internal=internal)
        return json_response({"topics": [broker.topic_summary(name) for name in names]})

    async def describe(self, request: Request) -> Response:
        """``GET /v1/topics/{topic}``."""
        self.broker.check_ready()
        return json_response(await self.broker.describe_topic(request.path_params["topic"]))

    async def alter(self, request: Request) -> Response:
        """``PATCH /v1/topics/{topic}`` ``{partitions?, configs?}``."""
        broker = self.broker
        broker.check_ready()
        topic = request.path_params["topic"]
        document = await _json_object(request, _ALTER_FIELDS)
        await broker.alter_topic(topic, document.get("partitions"), document.get("configs"))
        return json_response(await broker.describe_topic(topic))

    async def delete(self, request: Request) -> Response:
        """``DELETE /v1/topics/{topic}`` -> 204; the topic's data is removed."""
        self.broker.check_ready()
        await self.broker.delete_topic(request.path_params["topic"])
        return Response(status_code=204)
