"""Forwarding: a JSON request for a partition this broker does not lead goes to the broker that does.

So ``curl`` behind a load balancer works against any broker. One hop at most: a forwarded request carries
``gafka-forwarded-by``, and a broker that receives one for something it does not lead answers
``NOT_LEADER_OR_FOLLOWER`` instead of forwarding again (metadata in flux must not bounce requests
around). The SDK never relies on this: it sends to leaders, and binary requests are never forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gafka_broker.errors import ApiError, ErrorCode

__all__ = ["FORWARDED_HEADER", "Forwarder", "RemoteLeader", "is_forwarded"]

logger = logging.getLogger("gafka.broker.forwarding")

FORWARDED_HEADER = "gafka-forwarded-by"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


class RemoteLeader:
    """Where a partition led by another broker lives."""

    __slots__ = ("broker_id", "url")

    def __init__(self, broker_id: int, url: str) -> None:
        self.broker_id = broker_id
        self.url = url


def is_forwarded(request: Request) -> bool:
    return FORWARDED_HEADER in request.headers


def _unreachable(leader: int, url: str, exc: Exception) -> ApiError:
    return ApiError(
        ErrorCode.BROKER_NOT_AVAILABLE,
        f"the partition's leader (broker {leader} at {url}) did not answer: {exc or type(exc).__name__}; retry",
        leader_id=leader,
        leader_url=url,
    )


class Forwarder:
    """An HTTP client to the other brokers, with pooled connections."""

    def __init__(self, broker_id: int, http: httpx.AsyncClient | None = None) -> None:
        self.broker_id = broker_id
        self._stopping = asyncio.Event()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            timeout=httpx.Timeout(60.0, connect=2.0),
        )

    def _headers(self, request: Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers[FORWARDED_HEADER] = str(self.broker_id)
        return headers

    def release_long_polls(self) -> None:
        """Shutdown: forwarded long polls waiting on another broker answer BROKER_NOT_AVAILABLE now (their clients
        retry elsewhere) instead of holding this broker's connections open until the leader answers."""
        self._stopping.set()

    async def proxy(
        self,
        request: Request,
        leader: int,
        url: str,
        *,
        body: bytes | None = None,
        timeout_s: float = 60.0,
        long_poll: bool = False,
    ) -> Response:
        """Send ``request`` as it is to ``url`` and stream the answer back (status, headers and body).
        ``long_poll``: the leader may park it; given up at shutdown (:meth:`release_long_polls`)."""
        target = url.rstrip("/") + request.url.path
        if body is not None:
            content: Any = body
        elif "content-length" in request.headers or "transfer-encoding" in request.headers:
            content = request.stream()  # streamed through, never buffered here
        else:
            content = b""
        outgoing = self._http.build_request(
            request.method,
            target,
            params=str(request.query_params),
            headers=self._headers(request),
            content=content,
            timeout=timeout_s,
        )
        try:
            if long_poll:
                upstream = await self._send_unless_stopping(outgoing)
            else:
                upstream = await self._http.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            raise _unreachable(leader, url, exc) from None
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )

    async def _send_unless_stopping(self, outgoing: httpx.Request) -> httpx.Response:
        stopped = ApiError(
            ErrorCode.BROKER_NOT_AVAILABLE,
            "this broker is shutting down; retry (on the partition's leader)",
            headers={"connection": "close", "retry-after": "1"},
        )
        if self._stopping.is_set():
            raise stopped
        send = asyncio.ensure_future(self._http.send(outgoing, stream=True))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({send, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not send.done():
            send.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await send
            raise stopped
        return send.result()

    async def post_json(
        self,
        leader: int,
        url: str,
        path: str,
        document: Any,
        *,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> tuple[int, Any]:
        """POST ``document`` to another broker (marked as forwarded); returns (status, decoded JSON)."""
        try:
            response = await self._http.post(
                url.rstrip("/") + path,
                content=orjson.dumps(document),
                params=params,
                headers={"content-type": "application/json", FORWARDED_HEADER: str(self.broker_id)},
                timeout=timeout_s,
            )
        except httpx.HTTPError as exc:
            raise _unreachable(leader, url, exc) from None
        try:
            return response.status_code, orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ApiError(
                ErrorCode.UNKNOWN_SERVER_ERROR,
                f"broker {leader} answered HTTP {response.status_code} without JSON",
                status=502,
            ) from None

    async def get_json(self, url: str, path: str, *, timeout_s: float) -> Any:
        """GET JSON from another broker; raises ``httpx.HTTPError`` (callers decide what unreachable means)."""
        response = await self._http.get(
            url.rstrip("/") + path, headers={FORWARDED_HEADER: str(self.broker_id)}, timeout=timeout_s
        )
        response.raise_for_status()
        return orjson.loads(response.content)

    async def close(self) -> None:
        if self._owns_http:  # a shared client (the broker's PeerClient) is closed by its owner
            await self._http.aclose()
