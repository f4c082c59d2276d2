"""The broker's one client to the other gafka processes: forwarding, replica fetches and the controller.

Every inter-broker and broker-to-controller HTTP call goes through :attr:`PeerClient.http`, so pooling,
timeouts, and later TLS and authentication between brokers are set in this one place. Each caller still
passes its own per-request timeout (a parked replica fetch waits much longer than a controller call).
"""

from __future__ import annotations

import httpx

__all__ = ["PeerClient"]

MAX_CONNECTIONS = 256
MAX_KEEPALIVE = 64
CONNECT_TIMEOUT_S = 2.0
DEFAULT_TIMEOUT_S = 60.0


class PeerClient:
    """Pooled HTTP connections to the cluster's other processes; closed once, when the broker stops."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE),
            timeout=httpx.Timeout(DEFAULT_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )

    async def close(self) -> None:
        await self.http.aclose()
