"""What every handler shares: capped body reads, content-type checks, query parsing and the timing wrapper."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.http_errors import api_error_response
from gafka_broker.core.produce import ACKS_ALL
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.metrics import HTTP_ERRORS, REQUEST_LATENCY

__all__ = [
    "BATCH_MEDIA_TYPE",
    "Endpoint",
    "json_response",
    "parse_acks",
    "query_bool",
    "query_int",
    "read_body",
    "read_json_object",
    "require_binary",
    "require_json",
    "timed",
]

Endpoint = Callable[[Request], Awaitable[Response]]

JSON_MEDIA_TYPE = "application/json"
BATCH_MEDIA_TYPE = "application/vnd.gafka.record-batch.v2"
"""Raw RecordBatch v2 bytes, one or more batches back to back (``application/octet-stream`` is accepted too)."""
BINARY_MEDIA_TYPES = frozenset({BATCH_MEDIA_TYPE, "application/octet-stream"})

_ACKS = {"0": 0, "1": 1, "all": ACKS_ALL, "-1": ACKS_ALL}
_CLOSE = {"connection": "close"}


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def _media_type(request: Request) -> str:
    raw = request.headers.get("content-type", "")
    return raw.split(";", 1)[0].strip().lower()


def require_json(request: Request) -> None:
    media = _media_type(request)
    if media != JSON_MEDIA_TYPE and not media.endswith("+json"):
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"expected Content-Type: application/json, got {media or 'none'!r}",
            headers=_CLOSE,
        )


def require_binary(request: Request) -> None:
    media = _media_type(request)
    if media not in BINARY_MEDIA_TYPES:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"expected Content-Type: {BATCH_MEDIA_TYPE} (or application/octet-stream), got {media or 'none'!r}",
            headers=_CLOSE,
        )


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The whole body, refusing (413, connection closed) as soon as it exceeds ``limit`` bytes.

    Nothing past the limit is buffered: a declared Content-Length over the limit is refused before
    reading, and a chunked body is cut off at the first chunk that crosses it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            ErrorCode.RECORD_LIST_TOO_LARGE,
            f"request body of {declared} bytes exceeds max_request_bytes={limit}",
            headers=_CLOSE,
            max_request_bytes=limit,
        )
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # straight from ASGI: cheaper than Request.stream()'s async generator
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ApiError(ErrorCode.INVALID_REQUEST, "the client went away before sending the whole body")
        more = message.get("more_body", False)
        chunk = message.get("body", b"")
        if not chunk:
            continue
        size += len(chunk)
        if size > limit:
            raise ApiError(
                ErrorCode.RECORD_LIST_TOO_LARGE,
                f"request body exceeds max_request_bytes={limit}",
                headers=_CLOSE,
                max_request_bytes=limit,
            )
        chunks.append(chunk)
    if len(chunks) == 1:
        return chunks[0]
    body = bytearray()  # one copy, and a buffer the log can stamp offsets into without copying again
    for chunk in chunks:
        body += chunk
    return body


async def read_json_object(request: Request, allowed: frozenset[str], limit: int) -> dict[str, Any]:
    """A JSON object body of at most ``limit`` bytes whose fields are all in ``allowed``."""
    require_json(request)
    body = await read_body(request, limit)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    unknown = set(document) - allowed
    if unknown:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"unknown fields {', '.join(sorted(unknown))}; expected {', '.join(sorted(allowed))}",
        )
    return document


def query_bool(params: QueryParams, name: str, default: bool) -> bool:
    """``true``/``false`` (also ``1``/``0``); anything else is a 400."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ApiError(ErrorCode.INVALID_REQUEST, f"query parameter {name} must be true or false, got {raw!r}")


def query_int(params: QueryParams, name: str, default: int | None, minimum: int, maximum: int | None = None) -> int:
    """An integer query parameter; a missing required one or a malformed one is a 400."""
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"query parameter {name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"query parameter {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        return maximum
    return value


def parse_acks(request: Request) -> int:
    """``?acks=0|1|all`` (``-1`` = all, as in Kafka); default ``1``."""
    if not request.scope["query_string"]:
        return 1  # the common case, without parsing a query string
    raw = request.query_params.get("acks")
    if raw is None:
        return 1
    acks = _ACKS.get(raw.strip().lower())
    if acks is None:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"acks must be 0, 1 or all, got {raw!r}")
    return acks


def timed(route: str, method: str, handler: Endpoint) -> Endpoint:
    """Wrap a handler: latency into the route's histogram, :class:`ApiError` into its JSON answer."""
    histogram = REQUEST_LATENCY.labels(route, method)

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            HTTP_ERRORS.labels(route, exc.code.value).inc()
            response = api_error_response(exc)
        histogram.observe(time.perf_counter() - started)
        return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
