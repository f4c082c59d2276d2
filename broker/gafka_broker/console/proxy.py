"""The console's only way to the cluster: forward a browser's API call to a broker, unchanged.

The browser talks to one origin (the console), and the console to the brokers' existing HTTP API: no
produce, fetch, group or admin rule lives here. A call to ``/api/cluster/...`` goes to any broker that
answers (JSON requests are forwarded by the brokers themselves to the partition leader or the group
coordinator); ``/api/brokers/{id}/...`` goes to that one broker (its own counters, its own groups). Broker
addresses come from ``GET /v1/cluster``, so brokers that move (a restart on a new port, a new pod) are found.
Only the public API is reachable: never the replication or controller routes, never another host.
When authentication lands, credentials are passed on here, in one place.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
import orjson

__all__ = ["BrokerUnavailableError", "ClusterProxy", "ProxiedResponse", "allowed_path"]

log = logging.getLogger("gafka.console")

METADATA_TTL_S = 2.0
"""How long a broker list is trusted before ``/v1/cluster`` is asked again."""
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 45.0
"""Above the brokers' longest long poll (``max_wait_ms`` is capped at 30 s by default)."""

_FORWARDED_REQUEST_HEADERS = ("content-type", "accept")
_FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after")
_INTERNAL_PREFIXES = ("v1/replication/", "v1/controller", "v1/producers")


def allowed_path(path: str) -> bool:
    """The public API only: ``v1/...`` (not the brokers' internal routes) and readiness."""
    if path in ("readyz", "healthz"):
        return True
    return path.startswith("v1/") and not path.startswith(_INTERNAL_PREFIXES) and ".." not in path.split("/")


@dataclass(frozen=True, slots=True)
class ProxiedResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]


class BrokerUnavailableError(Exception):
    """No broker (or not the one asked for) answered."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


class ClusterProxy:
    def __init__(self, bootstrap: Sequence[str], client: httpx.AsyncClient | None = None) -> None:
        if not bootstrap:
            raise ValueError("at least one bootstrap URL is needed")
        self.bootstrap = [url.rstrip("/") for url in bootstrap]
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S), follow_redirects=False
        )
        self._brokers: dict[int, str] = {}
        self._brokers_at = 0.0
        self._preferred = self.bootstrap[0]

    async def close(self) -> None:
        await self._client.aclose()

    def _candidates(self) -> list[str]:
        urls = [self._preferred, *self._brokers.values(), *self.bootstrap]
        return list(dict.fromkeys(urls))

    async def brokers(self) -> dict[int, str]:
        """Broker id -> URL from the cluster metadata (cached for a moment)."""
        if time.monotonic() - self._brokers_at > METADATA_TTL_S or not self._brokers:
            with contextlib.suppress(BrokerUnavailableError):
                response = await self.forward_any("GET", "v1/cluster", b"", {}, {})
                if response.status == 200:
                    data = orjson.loads(response.body)
                    self._brokers = {int(b["id"]): str(b["url"]).rstrip("/") for b in data.get("brokers", [])}
                    self._brokers_at = time.monotonic()
        return dict(self._brokers)

    async def forward_any(
        self, method: str, path: str, body: bytes, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> ProxiedResponse:
        """To the first broker that accepts the connection (a request that reached a broker is not resent)."""
        tried = []
        for url in self._candidates():
            try:
                response = await self._send(url, method, path, body, query, headers)
            except httpx.ConnectError:
                tried.append(url)
                continue
            self._preferred = url
            return response
        raise BrokerUnavailableError(f"no broker of the cluster answers (tried {', '.join(tried)})")

    async def forward_to(
        self,
        broker_id: int,
        method: str,
        path: str,
        body: bytes,
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ProxiedResponse:
        url = (await self.brokers()).get(broker_id)
        if url is None:
            raise BrokerUnavailableError(f"the cluster has no broker {broker_id}", unknown=True)
        try:
            return await self._send(url, method, path, body, query, headers)
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            raise BrokerUnavailableError(f"broker {broker_id} at {url} does not answer ({reason})") from None

    async def _send(
        self, url: str, method: str, path: str, body: bytes, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> ProxiedResponse:
        forwarded = {name: headers[name] for name in _FORWARDED_REQUEST_HEADERS if name in headers}
        response = await self._client.request(
            method, f"{url}/{path}", content=body or None, params=dict(query), headers=forwarded
        )
        kept = {name: response.headers[name] for name in _FORWARDED_RESPONSE_HEADERS if name in response.headers}
        return ProxiedResponse(response.status_code, response.content, kept)
