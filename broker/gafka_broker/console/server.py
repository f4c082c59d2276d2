"""``gafka console``: serve the web console on a port of its own, in front of a cluster."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import uvicorn

from gafka_broker.console.app import create_console_app
from gafka_broker.logfmt import configure_logging

__all__ = ["run"]

log = logging.getLogger("gafka.console")


def run(bootstrap: Sequence[str], host: str, port: int, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(log_level)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        log.critical("event=listen_failed listen=%s:%d error=%r", host, port, exc.strerror or str(exc))
        return 1
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("event=console_listening url=http://%s:%d bootstrap=%s", shown, bound, ",".join(bootstrap))
    server = uvicorn.Server(
        uvicorn.Config(
            create_console_app(bootstrap),
            lifespan="on",
            access_log=log_level == "debug",
            log_config=None,
            server_header=False,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
