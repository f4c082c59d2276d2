"""The controller over HTTP: brokers register, heartbeat and long-poll metadata; admins change topics.

Routes (all JSON, errors as ``{"error_code", "message"}``):

- ``POST /v1/controller/brokers/{id}/register`` ``{url, rack?, incarnation, kafka_address?}`` -> metadata
- ``POST /v1/controller/brokers/{id}/heartbeat`` ``{incarnation}`` -> ``{version, fenced}``; 409 UNKNOWN_BROKER
- ``POST /v1/controller/brokers/{id}/heartbeat`` may carry ``caught_up: [[topic, partition], ...]``
- ``POST /v1/controller/brokers/{id}/shutdown`` -> metadata with its leaderships handed over
- ``POST /v1/controller/brokers/{id}/damaged`` ``{topic, partition}`` -> metadata with the replica out of the ISR
- ``GET  /v1/controller/metadata?since=V&max_wait_ms=W`` -> metadata once its version is above V (long poll)
- ``POST /v1/controller/topics``, ``PATCH|DELETE /v1/controller/topics/{topic}``
- ``POST /v1/controller/alter-partition`` ``{topic, partition, leader, leader_epoch, partition_epoch, isr}``
- ``POST /v1/controller/rebalance`` ``{brokers?}`` and ``POST /v1/controller/drain`` ``{brokers}``

A background task ticks the controller (fencing, reassignment, preferred leaders) every ``tick_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gafka_broker.controller.controller import Controller
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import ClusterMetadata

logger = logging.getLogger(__name__)

_STATUS = {
    "UNKNOWN_BROKER": 409,
    "TOPIC_ALREADY_EXISTS": 409,
    "UNKNOWN_TOPIC_OR_PARTITION": 404,
    "FENCED_LEADER_EPOCH": 409,
    "INVALID_UPDATE_VERSION": 409,
    "INELIGIBLE_REPLICA": 409,
}
MAX_LONG_POLL_MS = 30_000


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int | None = None) -> Response:
    return _json({"error_code": code, "message": message}, status or _STATUS.get(code, 400))


def now_ms() -> int:
    return int(time.time() * 1000)


class MetadataWatch:
    """Wakes long polls the moment the metadata version moves."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.latest: ClusterMetadata | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, metadata: ClusterMetadata) -> None:
        self.latest = metadata
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def close(self) -> None:
        """The controller stops (shutdown, or the operator unloads it): parked polls return now, "nothing newer",
        rather than hold the HTTP server's graceful shutdown until it cancels them."""
        self.closed = True
        self._wake()

    async def wait_newer(self, version: int, timeout_s: float) -> ClusterMetadata | None:
        deadline = time.monotonic() + timeout_s
        while self.latest is None or self.latest.version <= version:
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)
        return self.latest


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ControllerError("INVALID_REQUEST", f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ControllerError("INVALID_REQUEST", "request body must be a JSON object")
    return data


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControllerError("INVALID_REQUEST", f"{what} must be an integer")
    return value


Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except ControllerError as exc:
            return _error(exc.code, exc.message)

    return guarded


class ControllerService:
    """Routes and the tick loop around one :class:`Controller`."""

    def __init__(self, controller: Controller, *, tick_ms: int = 200) -> None:
        self.controller = controller
        self.tick_ms = tick_ms
        self.watch = MetadataWatch()
        controller.on_change(self.watch.publish)
        self._ticker: asyncio.Task[None] | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/controller/brokers/{broker_id:int}/register", _guard(self.register), methods=["POST"]),
            Route("/v1/controller/brokers/{broker_id:int}/heartbeat", _guard(self.heartbeat), methods=["POST"]),
            Route("/v1/controller/brokers/{broker_id:int}/shutdown", _guard(self.shutdown), methods=["POST"]),
            Route("/v1/controller/brokers/{broker_id:int}/damaged", _guard(self.damaged), methods=["POST"]),
            Route("/v1/controller/metadata", _guard(self.metadata), methods=["GET"]),
            Route("/v1/controller/topics", _guard(self.create_topic), methods=["POST"]),
            Route("/v1/controller/topics/{topic}", _guard(self.alter_topic), methods=["PATCH"]),
            Route("/v1/controller/topics/{topic}", _guard(self.delete_topic), methods=["DELETE"]),
            Route("/v1/controller/alter-partition", _guard(self.alter_partition), methods=["POST"]),
            Route("/v1/controller/rebalance", _guard(self.rebalance), methods=["POST"]),
            Route("/v1/controller/drain", _guard(self.drain), methods=["POST"]),
            Route("/v1/controller/producer-ids", _guard(self.producer_ids), methods=["POST"]),
        ]

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.watch.bind(asyncio.get_running_loop())
        self.watch.publish(await asyncio.to_thread(self.controller.metadata))
        self._ticker = asyncio.create_task(self._tick_forever(), name="controller-tick")

    async def stop(self) -> None:
        self.watch.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_ms / 1000)
            try:
                await asyncio.to_thread(self.controller.tick, now_ms())
            except Exception:
                logger.exception("event=controller_tick_failed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- handlers ------------------------------------------------------------------------------------
    async def register(self, request: Request) -> Response:
        body = await _body(request)
        broker_id = request.path_params["broker_id"]
        url, incarnation = body.get("url"), body.get("incarnation")
        if not isinstance(url, str) or not isinstance(incarnation, str):
            raise ControllerError("INVALID_REQUEST", "url and incarnation are required strings")
        rack = body.get("rack")
        kafka_address = body.get("kafka_address")
        metadata = await asyncio.to_thread(
            self.controller.register_broker,
            broker_id,
            url,
            rack if isinstance(rack, str) else None,
            incarnation,
            now_ms(),
            kafka_address if isinstance(kafka_address, str) else None,
        )
        return _json(metadata.to_json() | {"version": metadata.version})

    async def heartbeat(self, request: Request) -> Response:
        body = await _body(request)
        incarnation = body.get("incarnation")
        if not isinstance(incarnation, str):
            raise ControllerError("INVALID_REQUEST", "incarnation is a required string")
        raw = body.get("caught_up") or []
        if not isinstance(raw, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], int) for e in raw
        ):
            raise ControllerError("INVALID_REQUEST", "caught_up must be a list of [topic, partition]")
        metadata = await asyncio.to_thread(
            self.controller.heartbeat,
            request.path_params["broker_id"],
            incarnation,
            now_ms(),
            [(topic, index) for topic, index in raw],
        )
        broker = metadata.brokers[request.path_params["broker_id"]]
        return _json({"version": metadata.version, "fenced": broker.fenced})

    async def shutdown(self, request: Request) -> Response:
        metadata = await asyncio.to_thread(self.controller.controlled_shutdown, request.path_params["broker_id"])
        return _json(metadata.to_json() | {"version": metadata.version})

    async def damaged(self, request: Request) -> Response:
        body = await _body(request)
        topic = body.get("topic")
        if not isinstance(topic, str):
            raise ControllerError("INVALID_REQUEST", "topic is a required string")
        metadata = await asyncio.to_thread(
            self.controller.replica_damaged,
            request.path_params["broker_id"],
            topic,
            _int(body.get("partition"), "partition"),
        )
        return _json(metadata.to_json() | {"version": metadata.version})

    async def metadata(self, request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "-1"))
            max_wait_ms = min(int(request.query_params.get("max_wait_ms", "0")), MAX_LONG_POLL_MS)
        except ValueError:
            raise ControllerError("INVALID_REQUEST", "since and max_wait_ms must be integers") from None
        newer = await self.watch.wait_newer(since, max_wait_ms / 1000)
        if newer is None:
            return Response(status_code=204)
        return _json(newer.to_json() | {"version": newer.version})

    async def create_topic(self, request: Request) -> Response:
        body = await _body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise ControllerError("INVALID_REQUEST", "name is a required string")
        configs = body.get("configs") or {}
        if not isinstance(configs, dict):
            raise ControllerError("INVALID_REQUEST", "configs must be an object")
        metadata = await asyncio.to_thread(
            self.controller.create_topic,
            name,
            _int(body.get("partitions", 1), "partitions"),
            _int(body.get("replication_factor", 1), "replication_factor"),
            {str(k): str(v) for k, v in configs.items()},
        )
        return _json(metadata.to_json() | {"version": metadata.version}, 201)

    async def alter_topic(self, request: Request) -> Response:
        body = await _body(request)
        topic = request.path_params["topic"]
        metadata: ClusterMetadata | None = None
        if "partitions" in body:
            metadata = await asyncio.to_thread(
                self.controller.add_partitions, topic, _int(body["partitions"], "partitions")
            )
        if "configs" in body:
            configs = body["configs"]
            if not isinstance(configs, dict):
                raise ControllerError("INVALID_REQUEST", "configs must be an object")
            metadata = await asyncio.to_thread(
                self.controller.alter_configs, topic, {str(k): str(v) for k, v in configs.items()}
            )
        if metadata is None:
            metadata = await asyncio.to_thread(self.controller.metadata)
        return _json(metadata.to_json() | {"version": metadata.version})

    async def delete_topic(self, request: Request) -> Response:
        metadata = await asyncio.to_thread(self.controller.delete_topic, request.path_params["topic"])
        return _json(metadata.to_json() | {"version": metadata.version})

    async def alter_partition(self, request: Request) -> Response:
        body = await _body(request)
        topic = body.get("topic")
        isr = body.get("isr")
        if not isinstance(topic, str) or not isinstance(isr, list):
            raise ControllerError("INVALID_REQUEST", "topic (string) and isr (list) are required")
        metadata = await asyncio.to_thread(
            lambda: self.controller.alter_partition(
                topic,
                _int(body.get("partition"), "partition"),
                leader=_int(body.get("leader"), "leader"),
                leader_epoch=_int(body.get("leader_epoch"), "leader_epoch"),
                partition_epoch=_int(body.get("partition_epoch"), "partition_epoch"),
                isr=[_int(b, "isr member") for b in isr],
            )
        )
        state = metadata.partition(topic, body["partition"])
        assert state is not None
        return _json({"version": metadata.version, "isr": list(state.isr), "partition_epoch": state.partition_epoch})

    async def rebalance(self, request: Request) -> Response:
        body = await _body(request) if await request.body() else {}
        brokers = body.get("brokers")
        chosen = [_int(b, "broker") for b in brokers] if isinstance(brokers, list) else None
        metadata = await asyncio.to_thread(self.controller.rebalance, chosen)
        return _json(metadata.to_json() | {"version": metadata.version})

    async def drain(self, request: Request) -> Response:
        body = await _body(request)
        brokers = body.get("brokers")
        if not isinstance(brokers, list):
            raise ControllerError("INVALID_REQUEST", "brokers (list of ids) is required")
        metadata = await asyncio.to_thread(self.controller.drain, [_int(b, "broker") for b in brokers])
        return _json(metadata.to_json() | {"version": metadata.version})

    async def producer_ids(self, request: Request) -> Response:
        """``POST /v1/controller/producer-ids`` ``{"count": n}`` -> ``{"first": id, "count": n}``."""
        body = await _body(request)
        count = _int(body.get("count", 1000), "count")
        first = await asyncio.to_thread(self.controller.allocate_producer_ids, count)
        return _json({"first": first, "count": count})


def create_app(service: ControllerService) -> Starlette:
    """A standalone controller (``gafka dev`` runs one beside its brokers)."""
    return Starlette(routes=service.routes(), lifespan=service.lifespan)
