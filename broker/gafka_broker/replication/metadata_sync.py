"""This broker's membership in the cluster: register, heartbeat, follow the metadata, leave politely.

- Register once per process start with a fresh incarnation (the controller treats a new incarnation as a
  broker that was away: out of every ISR until it catches up again).
- Heartbeat every ``broker_heartbeat_interval_ms``; a controller that answers ``UNKNOWN_BROKER`` (it
  forgot us, or fenced a previous incarnation) gets a new registration.
- Keep one long poll open on the controller's metadata and apply every newer version at once.
- On SIGTERM, ask for a controlled shutdown and wait (a few seconds at most) until no partition this
  broker leads could still be handed to another in-sync replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gafka_broker.controller.client import ControllerClient
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import ClusterMetadata
from gafka_broker.replication.manager import ReplicaManager

__all__ = ["ClusterLink"]

logger = logging.getLogger("gafka.broker.cluster")

WATCH_WAIT_MS = 10_000
_RETRY_S = 0.2


class ClusterLink:
    """Registration, heartbeats and the metadata long poll of one broker process."""

    def __init__(
        self,
        manager: ReplicaManager,
        controller: ControllerClient,
        *,
        broker_id: int,
        url: str,
        rack: str | None,
        incarnation: str,
        heartbeat_interval_ms: int,
    ) -> None:
        self.manager = manager
        self.controller = controller
        self.broker_id = broker_id
        self.url = url
        self.rack = rack
        self.incarnation = incarnation
        self.kafka_address: str | None = None
        """Set by the Kafka listener before the broker registers (clients learn it from Metadata)."""
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._tasks: list[asyncio.Task[None]] = []
        self._controller_down = False

    async def initial_metadata(self) -> ClusterMetadata:
        """The metadata as it is now, waiting for the controller to be reachable."""
        while True:
            try:
                metadata = await self.controller.watch(-1, 0)
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(_RETRY_S)
                continue
            if metadata is not None:
                self._up()
                return metadata
            await asyncio.sleep(_RETRY_S)

    async def start(self) -> None:
        """Register (retrying until the controller answers), apply the metadata, then keep in touch."""
        await self._register()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeats(), name="gafka-heartbeat"),
            loop.create_task(self._watch(), name="gafka-metadata-watch"),
        ]

    async def _register(self) -> None:
        while True:
            try:
                metadata = await self.controller.register(
                    self.broker_id, self.url, self.rack, self.incarnation, self.kafka_address
                )
            except ControllerError as exc:
                logger.error("event=register_refused error_code=%s error=%r", exc.code, exc.message)
                await asyncio.sleep(_RETRY_S * 5)
                continue
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(_RETRY_S)
                continue
            self._up()
            logger.info(
                "event=registered broker_id=%d incarnation=%s metadata_version=%d",
                self.broker_id,
                self.incarnation,
                metadata.version,
            )
            await self.manager.apply(metadata)
            return

    async def _heartbeats(self) -> None:
        interval = self.heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)  # a period, not a poll: liveness is what the controller measures
            try:
                await self.controller.heartbeat(self.broker_id, self.incarnation, self.manager.caught_up_preferred())
            except ControllerError as exc:
                if exc.code == "UNKNOWN_BROKER":
                    logger.warning("event=reregistering reason=%s", exc.code)
                    await self._register()
                else:
                    logger.warning("event=heartbeat_refused error_code=%s error=%r", exc.code, exc.message)
                continue
            except Exception as exc:
                self._down(exc)
                continue
            self._up()

    async def _watch(self) -> None:
        while True:
            try:
                metadata = await self.controller.watch(self.manager.version, WATCH_WAIT_MS)
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(_RETRY_S)
                continue
            self._up()
            if metadata is not None:
                await self.manager.apply(metadata)

    def _down(self, exc: BaseException) -> None:
        if not self._controller_down:
            self._controller_down = True
            logger.warning("event=controller_unreachable error=%r", str(exc) or type(exc).__name__)

    def _up(self) -> None:
        if self._controller_down:
            self._controller_down = False
            logger.info("event=controller_reachable")

    async def controlled_shutdown(self, timeout_s: float = 5.0) -> None:
        """Hand leaderships to other in-sync replicas before stopping (Kafka's controlled shutdown)."""
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        try:
            metadata = await asyncio.wait_for(self.controller.controlled_shutdown(self.broker_id), timeout_s)
        except Exception as exc:
            logger.warning("event=controlled_shutdown_failed error=%r", str(exc) or type(exc).__name__)
            return
        await self.manager.apply(metadata)
        while self.manager.movable_leaderships() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                newer = await asyncio.wait_for(
                    self.controller.watch(self.manager.version, 200), max(deadline - time.monotonic(), 0.01)
                )
                if newer is not None:
                    await self.manager.apply(newer)
        logger.info(
            "event=controlled_shutdown leaderships_left=%d seconds=%.3f",
            sum(1 for _ in self.manager.leaders()),
            time.monotonic() - started,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
