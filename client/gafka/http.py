"""HTTP transports: ``SyncTransport`` (http.client, keep-alive pool) and ``AsyncTransport`` (aiohttp).

Chosen by measurement against a real broker on loopback (2 shared cores, Python 3.11; client CPU per
request, lower is better; the broker's own time dominates wall-clock throughput):

=========================  ==============  ============
client                     small request   1 MB POST
=========================  ==============  ============
http.client keep-alive     169 us          659 us
urllib3 pool               253 us          960 us
httpx.Client               607 us          1904 us
aiohttp (4 in flight)      169 us          819 us
httpx.AsyncClient          906 us          2074 us
=========================  ==============  ============

So: http.client for blocking calls (admin, CLI: also the fastest import, 16 ms against aiohttp's 160 ms)
and aiohttp for everything that keeps many requests in flight (producer sender, consumer long polls,
heartbeats), where one event loop parks hundreds of long polls without a thread each. httpx is 3-4x
costlier per request in both modes. Both transports return the same :class:`Response` and map
connection failures to the same typed errors.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import orjson

from gafka.errors import (
    BrokerUnreachableError,
    GafkaError,
    NotFoundError,
    RequestTimedOutError,
    error_from_response,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "BATCH_MEDIA_TYPE",
    "JSON_MEDIA_TYPE",
    "AsyncTransport",
    "Response",
    "SyncTransport",
    "normalize_url",
    "q",
]

BATCH_MEDIA_TYPE = "application/vnd.gafka.record-batch.v2"
JSON_MEDIA_TYPE = "application/json"
IDLE_LIMIT_S = 4.0
"""Drop pooled connections idle longer than this: uvicorn closes keep-alive connections after 5 s."""

Params = Mapping[str, str | int] | None


class Response(NamedTuple):
    """A complete answer: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


def q(segment: str) -> str:
    """A path segment, percent-encoded (group ids may hold any character)."""
    return quote(segment, safe="")


def normalize_url(url: str) -> str:
    """``host:port`` or ``http://host:port/`` -> ``http://host:port`` (no trailing slash).

    A ValueError says what is wrong with anything else (another scheme, no host, a bad port, a path)."""
    given = url.strip()
    url = given if "://" in given else "http://" + given
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"broker address {given!r}: gafka speaks http:// or https://, not {parts.scheme}://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"broker address {given!r}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"broker address {given!r} names no host (expected host:port or http://host:port)")
    if port == 0:
        raise ValueError(f"broker address {given!r}: the port must be a number from 1 to 65535")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"broker address {given!r}: give only scheme, host and port (no path)")
    return url.rstrip("/")


def _target(path: str, params: Params) -> str:
    if not params:
        return path
    return f"{path}?{urlencode(params)}"


def _raise_for(status: int, body: bytes, base: str, method: str, path: str) -> None:
    if status >= 400:
        error = error_from_response(status, body)
        if status == 404 and b'"error_code"' not in body:  # no route at all: not a broker's API
            raise NotFoundError(
                f"{base} has no {method} {path.split('?')[0]}: it is not a gafka broker's HTTP API "
                "(the controller's port, or another service?)",
                status=status,
            )
        raise error


def _tune(sock: socket.socket, timeout: float | None) -> None:
    """Nagle off (a request's header and body go out in two writes and must not wait for a delayed ACK),
    and a kernel send timeout, so a body written in blocking mode still gives up on a stuck peer."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if timeout:
        with contextlib.suppress(OSError):
            seconds = int(timeout)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
            )


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _tune(self.sock, self.timeout)


class _TlsConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _tune(self.sock, self.timeout)


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


class SyncTransport:
    """Blocking requests over pooled keep-alive connections, safe to share between threads."""

    def __init__(self, *, timeout: float = 30.0, max_idle: int = 8) -> None:
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[str, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _checkout(self, base: str) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        with self._lock:
            pool = self._idle.get(base)
            while pool:
                since, connection = pool.pop()
                if now - since < IDLE_LIMIT_S:
                    return connection, True
                connection.close()
        parts = urlsplit(base)
        host = parts.hostname or "127.0.0.1"
        if parts.scheme == "https":
            return _TlsConnection(host, parts.port or 443, timeout=self.timeout), False
        return _Connection(host, parts.port or 80, timeout=self.timeout), False

    def _checkin(self, base: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(base, [])
            if self._closed or len(pool) >= self.max_idle:
                connection.close()
            else:
                pool.append((time.monotonic(), connection))

    def request(
        self,
        base: str,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
        blocking_send: bool = False,
    ) -> Response:
        """Send one request and read the whole answer; connection failures become typed errors.

        ``blocking_send``: write the body with the socket in blocking mode, so a large body goes out in
        one ``send`` call with the GIL released throughout (with a timeout, CPython sends in chunks and
        re-takes the GIL between them, which starves a sender thread beside a busy application thread).
        The answer is still read under ``timeout``.
        """
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        target = _target(path, params)
        for attempt in (0, 1):
            connection, reused = self._checkout(base)
            connection.timeout = self.timeout if timeout is None else timeout
            try:
                if connection.sock is None:
                    connection.connect()
                connection.sock.settimeout(None if blocking_send else connection.timeout)
                connection.request(method, target, body=body, headers=headers)
                if blocking_send:
                    connection.sock.settimeout(connection.timeout)
                answer = connection.getresponse()
                data = answer.read()
            except _STALE as exc:
                connection.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle connection under us: once more on a fresh one
                raise BrokerUnreachableError(f"connection to {base} lost: {exc or type(exc).__name__}") from None
            except TimeoutError:
                connection.close()
                raise RequestTimedOutError(f"{base} did not answer {method} {path} in time") from None
            except http.client.HTTPException as exc:  # e.g. IncompleteRead: the broker died while answering
                connection.close()
                raise BrokerUnreachableError(f"connection to {base} lost: {exc!r}") from None
            except OSError as exc:
                connection.close()
                raise BrokerUnreachableError(f"cannot reach the broker at {base}: {exc.strerror or exc}") from None
            answer_headers = {key.lower(): value for key, value in answer.getheaders()}
            if answer.will_close:
                connection.close()
            else:
                self._checkin(base, connection)
            return Response(answer.status, answer_headers, data)
        raise AssertionError("unreachable")

    def call(self, base: str, method: str, path: str, **kwargs: Any) -> Response:
        """:meth:`request`, raising the typed error of any 4xx/5xx answer."""
        response = self.request(base, method, path, **kwargs)
        _raise_for(response.status, response.body, base, method, path)
        return response

    def json(self, base: str, method: str, path: str, document: Any = None, **kwargs: Any) -> Any:
        """A JSON call: ``document`` (if any) as the body, the decoded answer returned."""
        body = None if document is None else orjson.dumps(document)
        response = self.call(base, method, path, body=body, content_type=JSON_MEDIA_TYPE if body else None, **kwargs)
        return response.json()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for pool in self._idle.values():
                for _, connection in pool:
                    connection.close()
            self._idle.clear()


class AsyncTransport:
    """aiohttp session with keep-alive, created lazily on the running loop."""

    def __init__(self, *, timeout: float = 30.0, limit: int = 256) -> None:
        self.timeout = timeout
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=IDLE_LIMIT_S - 1, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def request(
        self,
        base: str,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per request, passed on to aiohttp
    ) -> Response:
        import aiohttp

        session = self._get_session()
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        limit = aiohttp.ClientTimeout(total=self.timeout if timeout is None else timeout)
        url = base + _target(path, params)
        try:
            async with session.request(method, url, data=body, headers=headers, timeout=limit) as answer:
                data = await answer.read()
                return Response(answer.status, answer.headers, data)
        except TimeoutError:
            raise RequestTimedOutError(f"{base} did not answer {method} {path} in time") from None
        except aiohttp.ClientConnectorError as exc:
            raise BrokerUnreachableError(f"cannot reach the broker at {base}: {exc.strerror or exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise BrokerUnreachableError(f"connection to {base} lost: {exc or type(exc).__name__}") from None

    async def call(self, base: str, method: str, path: str, **kwargs: Any) -> Response:
        response = await self.request(base, method, path, **kwargs)
        _raise_for(response.status, response.body, base, method, path)
        return response

    async def json(self, base: str, method: str, path: str, document: Any = None, **kwargs: Any) -> Any:
        body = None if document is None else orjson.dumps(document)
        response = await self.call(
            base, method, path, body=body, content_type=JSON_MEDIA_TYPE if body else None, **kwargs
        )
        return response.json()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def is_retriable(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    return isinstance(exc, GafkaError) and exc.retriable
