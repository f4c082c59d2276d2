"""Run one broker under uvicorn (uvloop + httptools) and stop it the way the spec asks on SIGTERM.

SIGTERM or Ctrl-C: readiness turns 503 and parked long polls are released at once; uvicorn stops
accepting, finishes in-flight requests (up to ``shutdown_timeout_ms``); then the lifespan flushes every
log, writes the checkpoints and the clean-shutdown marker, and the process exits 0. A second Ctrl-C
forces an immediate exit (no marker: the next start recovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from gafka_broker.app import build_broker, create_app
from gafka_broker.config import BrokerConfig
from gafka_broker.logfmt import configure_logging
from gafka_broker.metadata import DataDirLock, MetadataError
from gafka_broker.metrics import LISTENER_CONNECTIONS

__all__ = ["run"]

log = logging.getLogger("gafka.broker")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server with our signal handling: no re-raised signal (exit 0), and a hook on first signal."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self.exit_code = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._signalled, sig)
        try:
            yield
        finally:
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)

    def _signalled(self, sig: int) -> None:
        if self.should_exit:
            if sig == signal.SIGINT:
                log.warning("event=forced_exit signal=%s", signal.Signals(sig).name)
                self.force_exit = True
            return
        log.info("event=shutdown_requested signal=%s", signal.Signals(sig).name)
        self.should_exit = True
        self._on_signal()

    def fatal(self, _exc: BaseException) -> None:
        """Recovery failed: stop serving and exit non-zero."""
        self.exit_code = 1
        self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def run(config: BrokerConfig) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(config.log_level)
    try:
        sock = _bind(config.listen_host, config.listen_port)
    except OSError as exc:
        log.critical("event=listen_failed listen=%s error=%r", config.listen, exc.strerror or str(exc))
        return 1
    url = config.url(sock.getsockname()[1])
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        with DataDirLock(config.data_dir):
            broker = build_broker(config, url)
            holder: list[_Server] = []
            app = create_app(broker, on_fatal=lambda exc: holder[0].fatal(exc))
            server = _Server(
                uvicorn.Config(
                    app,
                    loop="uvloop",
                    http="httptools",
                    lifespan="on",
                    access_log=config.log_level == "debug",  # one line per request: never at info
                    log_config=None,
                    server_header=False,
                    date_header=False,
                    proxy_headers=False,  # no X-Forwarded-* rewriting: saves a middleware on every request
                    limit_concurrency=config.max_connections,
                    timeout_graceful_shutdown=max(1, -(-config.shutdown_timeout_ms // 1000)),
                    backlog=2048,
                ),
                on_signal=broker.begin_shutdown,
            )
            holder.append(server)
            LISTENER_CONNECTIONS["http"] = lambda: len(server.server_state.connections)
            log.info(
                "event=listening url=%s data_dir=%s broker_id=%d cluster_id=%s",
                url,
                config.data_dir,
                broker.meta.broker_id,
                broker.meta.cluster_id,
            )
            server.run(sockets=[sock])
    except (MetadataError, OSError) as exc:
        log.critical("event=startup_failed data_dir=%s error=%r", config.data_dir, str(exc))
        return 1
    finally:
        sock.close()
    log.info("event=stopped exit_code=%d", server.exit_code)
    return server.exit_code
