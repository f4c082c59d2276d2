"""The Kafka listener: framed requests over TCP, answered in order, one at a time per connection.

A connection reads its next request only after answering the previous one (Kafka mutes a channel the
same way), so one connection holds at most one request frame and one response in memory. A frame larger
than ``max_request_bytes`` (Kafka's ``socket.request.max.bytes``), one that does not decode, or a request
for an API or version not served closes the connection with a log line; ApiVersions at a version not
served is answered with UNSUPPORTED_VERSION and the supported ranges, as Kafka does, so clients can
negotiate down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode as KafkaErrorCode

from gafka_broker.errors import ApiError
from gafka_broker.kafka.apis import API_VERSIONS_KEY, APIS, supported
from gafka_broker.kafka.codec import (
    DecodeError,
    RequestFrame,
    decode_request,
    encode_response,
    make,
    peek_header,
    response_class,
)
from gafka_broker.kafka.context import KafkaContext
from gafka_broker.metrics import KAFKA_REQUESTS, LISTENER_CONNECTIONS

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["KafkaListener"]

log = logging.getLogger("gafka.broker.kafka")

_SIZE = struct.Struct(">i")
LISTENER = "kafka"


class _CloseConnection(Exception):  # noqa: N818 (a signal, not an error)
    """End this connection (the reason was logged)."""


class KafkaListener:
    """Serves the Kafka protocol on one socket for one broker."""

    def __init__(self, broker: Broker, host: str, port: int, advertised: str | None) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self._advertised = advertised
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.context: KafkaContext | None = None

    async def start(self) -> str:
        """Bind and serve; returns the advertised HOST:PORT (the bound port when the configured one is 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
        port = self._server.sockets[0].getsockname()[1]
        advertised = (
            self._advertised or f"{self.host if self.host not in ('0.0.0.0', '::', '') else '127.0.0.1'}:{port}"
        )
        if ":" in advertised.rsplit(":", 1)[0] and not advertised.startswith("["):
            advertised = f"[{advertised.rsplit(':', 1)[0]}]:{port}"
        self.context = KafkaContext(self.broker, advertised)
        LISTENER_CONNECTIONS[LISTENER] = lambda: len(self._connections)
        log.info("event=kafka_listening listen=%s:%d advertised=%s", self.host, port, advertised)
        return advertised

    async def stop(self) -> None:
        LISTENER_CONNECTIONS.pop(LISTENER, None)
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                frame = await self._read_frame(reader, peer)
                if frame is None:
                    return
                answer = await self._answer(frame, peer)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except _CloseConnection:
            pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a bug must cost this connection only
            log.error("event=kafka_connection_failed peer=%s error=%r", peer, str(exc), exc_info=exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_frame(self, reader: asyncio.StreamReader, peer: object) -> bytes | None:
        try:
            prefix = await reader.readexactly(_SIZE.size)
        except asyncio.IncompleteReadError:
            return None  # the client closed between requests
        (size,) = _SIZE.unpack(prefix)
        limit = self.broker.config.max_request_bytes
        if size < 8 or size > limit:
            log.warning("event=kafka_frame_refused peer=%s size=%d max_request_bytes=%d", peer, size, limit)
            raise _CloseConnection
        return await reader.readexactly(size)

    async def _answer(self, frame: bytes, peer: object) -> bytes | None:
        try:
            head = peek_header(frame)
        except DecodeError as exc:
            log.warning("event=kafka_malformed_request peer=%s error=%r", peer, str(exc))
            raise _CloseConnection from None
        api = APIS.get(head.api_key)
        if api is None or not api.min_version <= head.api_version <= api.max_version:
            if head.api_key == API_VERSIONS_KEY:
                return self._unsupported_api_versions(head)
            log.warning(
                "event=kafka_unsupported_request peer=%s api_key=%d api_version=%d",
                peer,
                head.api_key,
                head.api_version,
            )
            raise _CloseConnection
        try:
            client_id, request = decode_request(frame, head)
        except DecodeError as exc:
            log.warning("event=kafka_malformed_request peer=%s api=%s error=%r", peer, api.name, str(exc))
            raise _CloseConnection from None
        assert self.context is not None
        KAFKA_REQUESTS.labels(api.name).inc()
        try:
            context = self.context.for_client(client_id, peer[0] if isinstance(peer, tuple) else str(peer))
            values = await api.handler(context, request)
            if values is None:
                return None  # Produce with acks=0: no answer
            return encode_response(head, make(response_class(head), values))
        except ApiError as exc:
            log.warning("event=kafka_request_refused api=%s error_code=%s error=%r", api.name, exc.code, exc.message)
            raise _CloseConnection from None
        except Exception as exc:
            log.error("event=kafka_request_failed api=%s error=%r", api.name, str(exc), exc_info=exc)
            raise _CloseConnection from None

    @staticmethod
    def _unsupported_api_versions(head: RequestFrame) -> bytes:
        """Kafka answers an ApiVersions it cannot read with a v0 body: UNSUPPORTED_VERSION and its ranges."""
        values = {"error_code": KafkaErrorCode.unsupported_version, "api_keys": supported(), "throttle_time": 0}
        v0 = RequestFrame(head.api_key, 0, head.correlation_id)
        return encode_response(v0, make(response_class(v0), values))
