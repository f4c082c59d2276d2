"""``gafka controller``: the cluster controller as a process of its own (``gafka dev`` runs one).

It serves the controller routes over HTTP with the metadata in ``DATA_DIR/cluster-metadata.json`` and
ticks every ``tick_ms`` (fencing silent brokers, electing leaders). SIGTERM or Ctrl-C stops it; every
change is already durable when it is answered, so there is nothing to flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from gafka_broker.controller.controller import Controller, ControllerSettings
from gafka_broker.controller.service import ControllerService, create_app
from gafka_broker.controller.store import FileMetadataStore
from gafka_broker.logfmt import configure_logging

__all__ = ["METADATA_FILE", "StandaloneSettings", "run"]

log = logging.getLogger("gafka.controller")

METADATA_FILE = "cluster-metadata.json"


@dataclass(frozen=True, slots=True)
class StandaloneSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9093
    broker_session_timeout_ms: int = 9000
    tick_ms: int = 200
    leader_imbalance_check_interval_ms: int = 300_000
    cluster_id: str | None = None
    log_level: str = "info"


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM ends it with exit code 0 instead of re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        if self.should_exit:
            self.force_exit = True
            return
        log.info("event=shutdown_requested signal=%s", signal.Signals(sig).name)
        self.should_exit = True


def run(settings: StandaloneSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(settings.data_dir / "controller.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.critical("event=startup_failed data_dir=%s error='in use by another controller'", settings.data_dir)
        os.close(lock_fd)
        return 1
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.create_server((settings.host, settings.port), family=family, backlog=1024)
    except OSError as exc:
        log.critical("event=listen_failed host=%s port=%d error=%r", settings.host, settings.port, exc.strerror)
        os.close(lock_fd)
        return 1
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    controller = Controller(
        FileMetadataStore(settings.data_dir / METADATA_FILE),
        ControllerSettings(
            broker_session_timeout_ms=settings.broker_session_timeout_ms,
            leader_imbalance_check_interval_ms=settings.leader_imbalance_check_interval_ms,
        ),
        settings.cluster_id,
    )
    service = ControllerService(controller, tick_ms=settings.tick_ms)
    server = _Server(
        uvicorn.Config(
            create_app(service),
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=settings.log_level == "debug",
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
    )
    log.info(
        "event=listening url=%s data_dir=%s broker_session_timeout_ms=%d",
        url,
        settings.data_dir,
        settings.broker_session_timeout_ms,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        os.close(lock_fd)
    log.info("event=stopped")
    return 0
