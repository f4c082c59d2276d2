"""The console's Starlette application: the pages (package data) and the API proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gafka_broker.console.proxy import BrokerUnavailableError, ClusterProxy, ProxiedResponse, allowed_path

__all__ = ["STATIC_DIR", "create_console_app"]

STATIC_DIR = Path(__file__).parent / "static"
_METHODS = ["GET", "POST", "PATCH", "DELETE"]


def _error(status: int, code: str, message: str) -> Response:
    return Response(
        orjson.dumps({"error_code": code, "message": message}), status_code=status, media_type="application/json"
    )


def _answer(proxied: ProxiedResponse) -> Response:
    return Response(proxied.body, status_code=proxied.status, headers=dict(proxied.headers))


def create_console_app(bootstrap: Sequence[str], proxy: ClusterProxy | None = None) -> Starlette:
    cluster = proxy or ClusterProxy(bootstrap)

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    async def to_cluster(request: Request) -> Response:
        path = request.path_params["path"]
        if not allowed_path(path):
            return _error(404, "NOT_FOUND", f"the console does not forward /{path}")
        try:
            proxied = await cluster.forward_any(
                request.method, path, await request.body(), request.query_params, request.headers
            )
        except BrokerUnavailableError as exc:
            return _error(503, "BROKER_NOT_AVAILABLE", str(exc))
        return _answer(proxied)

    async def to_broker(request: Request) -> Response:
        path = request.path_params["path"]
        if not allowed_path(path):
            return _error(404, "NOT_FOUND", f"the console does not forward /{path}")
        try:
            proxied = await cluster.forward_to(
                request.path_params["broker_id"],
                request.method,
                path,
                await request.body(),
                request.query_params,
                request.headers,
            )
        except BrokerUnavailableError as exc:
            if exc.unknown:
                return _error(404, "BROKER_NOT_FOUND", str(exc))
            return _error(502, "BROKER_NOT_AVAILABLE", str(exc))
        return _answer(proxied)

    async def healthz(_request: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await cluster.close()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/api/cluster/{path:path}", to_cluster, methods=_METHODS),
            Route("/api/brokers/{broker_id:int}/{path:path}", to_broker, methods=_METHODS),
            Mount("/static", StaticFiles(directory=STATIC_DIR)),
        ],
        lifespan=lifespan,
    )
