"""ApiError as the HTTP API answers it: a JSON error body with the code's status, also for Starlette's own errors.

No client ever sees an HTML page or a bare 500 for its own mistake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.errors import ApiError, ErrorCode, error_body

__all__ = ["api_error_response", "error_response", "exception_handlers"]

log = logging.getLogger("gafka.broker.http")

_BY_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.RECORD_LIST_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.THROTTLING_QUOTA_EXCEEDED,
    503: ErrorCode.BROKER_NOT_AVAILABLE,
}


def error_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def api_error_response(exc: ApiError) -> Response:
    return error_response(exc.status, exc.body(), exc.headers)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _http_exception(_request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) in our error format."""
    assert isinstance(exc, HTTPException)
    code = _BY_STATUS.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    if exc.status_code >= 500:
        code = ErrorCode.UNKNOWN_SERVER_ERROR
    return error_response(exc.status_code, error_body(code, str(exc.detail)), exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error(
        "event=unhandled_error method=%s path=%s error=%s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
    )
    return error_response(500, error_body(ErrorCode.UNKNOWN_SERVER_ERROR, "internal error; see the broker log"))


exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
"""Pass to ``Starlette(exception_handlers=...)``."""
