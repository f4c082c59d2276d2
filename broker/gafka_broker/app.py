"""The Starlette application: the route table, and a lifespan that joins the cluster and runs the upkeep.

Start-up runs after the server starts listening, so ``/healthz`` answers and ``/readyz`` says 503 while
the broker reads the cluster metadata, recovers its logs (in a thread) and registers with the controller;
every data endpoint answers ``BROKER_NOT_AVAILABLE`` until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from gafka_broker.api.common import Endpoint, timed
from gafka_broker.api.fetch import FetchHandlers
from gafka_broker.api.groups import GroupHandlers
from gafka_broker.api.http_errors import exception_handlers
from gafka_broker.api.offsets import OffsetHandlers
from gafka_broker.api.ops import OpsHandlers
from gafka_broker.api.produce import ProduceHandlers
from gafka_broker.api.replication import ReplicationHandlers
from gafka_broker.api.topics import TopicHandlers
from gafka_broker.broker import Broker
from gafka_broker.broker_stats import snapshot
from gafka_broker.config import BrokerConfig, parse_listen
from gafka_broker.controller.client import LocalControllerClient, RemoteControllerClient
from gafka_broker.controller.controller import Controller, ControllerSettings
from gafka_broker.controller.service import ControllerService
from gafka_broker.controller.store import FileMetadataStore
from gafka_broker.kafka.server import KafkaListener
from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.group_commit import GroupCommitter
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.metadata import META_FILE, BrokerMeta, load_or_create_meta
from gafka_broker.metrics import BROKER, GROUPS, PARTITIONS
from gafka_broker.peers import PeerClient
from gafka_broker.replication.bootstrap import CLUSTER_METADATA_FILE, import_topic_registry
from gafka_broker.replication.metrics import REPLICATION

__all__ = ["build_broker", "create_app", "route_table"]

log = logging.getLogger("gafka.broker")

GROUP_EXPIRY_INTERVAL_MS = 500
"""How often members past their session or rebalance timeout are removed."""

CONTROLLER_TICK_MS = 200
"""How often a broker that is its own controller checks heartbeats and elects leaders."""

FatalHandler = Callable[[BaseException], None]


def build_broker(config: BrokerConfig, url: str) -> Broker:
    """The broker of ``config.data_dir``, with its controller (in process, or a client of a remote one);
    identity checked, logs not yet opened."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_manager = LogManager(config.data_dir)
    if config.controller_url is not None:
        if (config.data_dir / META_FILE).exists():
            meta = load_or_create_meta(config.data_dir, config.broker_id, config.cluster_id)
        else:  # written on start-up, with the cluster id the controller has
            meta = BrokerMeta(config.broker_id, config.cluster_id or "")
        peers = PeerClient()
        remote = RemoteControllerClient(config.controller_url, http=peers.http)
        return Broker(config, meta, log_manager, remote, url=url, peers=peers)
    meta = load_or_create_meta(config.data_dir, config.broker_id, config.cluster_id)
    store = FileMetadataStore(config.data_dir / CLUSTER_METADATA_FILE)
    import_topic_registry(store, config.data_dir, meta)
    settings = ControllerSettings(
        broker_session_timeout_ms=config.broker_session_timeout_ms,
        leader_imbalance_check_interval_ms=config.leader_imbalance_check_interval_ms,
    )
    controller = Controller(store, settings, meta.cluster_id)
    service = ControllerService(controller, tick_ms=CONTROLLER_TICK_MS)
    client = LocalControllerClient(controller, service.watch)
    return Broker(config, meta, log_manager, client, url=url, controller_service=service)


def route_table(broker: Broker) -> list[tuple[str, str, Endpoint]]:
    """Every endpoint as (path, method, handler); docs/api.md and openapi.py describe the same list."""
    ops = OpsHandlers(broker)
    topics = TopicHandlers(broker)
    produce = ProduceHandlers(broker)
    fetch = FetchHandlers(broker)
    offsets = OffsetHandlers(broker)
    groups = GroupHandlers(broker)
    replication = ReplicationHandlers(broker)
    partition = "/v1/topics/{topic}/partitions/{partition}"
    return [
        ("/v1/cluster", "GET", ops.cluster),
        ("/v1/broker", "GET", ops.broker_stats),
        ("/v1/topics", "GET", topics.list),
        ("/v1/topics", "POST", topics.create),
        ("/v1/topics/{topic}", "GET", topics.describe),
        ("/v1/topics/{topic}", "PATCH", topics.alter),
        ("/v1/topics/{topic}", "DELETE", topics.delete),
        ("/v1/topics/{topic}/records", "POST", produce.produce_records),
        (f"{partition}/batches", "POST", produce.produce_batches),
        (f"{partition}/records", "GET", fetch.fetch),
        (f"{partition}/offsets", "GET", offsets.offsets),
        ("/v1/groups", "GET", groups.list),
        ("/v1/groups/{group}", "GET", groups.describe),
        ("/v1/groups/{group}", "DELETE", groups.delete),
        ("/v1/groups/{group}/heartbeat", "POST", groups.heartbeat),
        ("/v1/groups/{group}/offsets", "GET", groups.offsets),
        ("/v1/groups/{group}/offsets", "POST", groups.commit),
        ("/v1/groups/{group}/offsets/reset", "POST", groups.reset),
        ("/v1/producers", "POST", replication.producer_id),
        ("/v1/replication/fetch", "POST", replication.fetch),
        ("/v1/replication/offsets/{topic}", "GET", replication.offsets),
        ("/metrics", "GET", ops.metrics),
        ("/healthz", "GET", ops.healthz),
        ("/readyz", "GET", ops.readyz),
        ("/openapi.json", "GET", ops.openapi),
    ]


class _Runtime:
    """Recovery, the periodic upkeep of the logs, and the orderly stop."""

    def __init__(self, broker: Broker, on_fatal: FatalHandler | None) -> None:
        self.broker = broker
        self.on_fatal = on_fatal
        self.recovered = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self.kafka: KafkaListener | None = None
        self._cleaner: LogCleaner | None = None

    async def start(self) -> None:
        self.broker.committer = GroupCommitter()
        PARTITIONS.source = self.broker.partitions
        REPLICATION.source = self.broker.partitions
        GROUPS.source = self.broker.groups.stats
        BROKER.source = lambda: snapshot(self.broker)
        if self.broker.controller_service is not None:
            await self.broker.controller_service.start()
        config = self.broker.config
        if config.kafka_listen is not None:  # before registering: the controller learns its address
            host, port = parse_listen(config.kafka_listen)
            self.kafka = KafkaListener(self.broker, host, port, config.kafka_advertised)
            self.broker.link.kafka_address = await self.kafka.start()
        self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        broker = self.broker
        try:
            await broker.start()
            await asyncio.to_thread(broker.groups.start)  # replays __consumer_offsets before anyone asks
        except asyncio.CancelledError:
            return  # stopped before the broker joined the cluster
        except Exception as exc:
            log.critical("event=recovery_failed error=%r", str(exc), exc_info=exc)
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        self.recovered = True
        if broker.stopping:
            return
        broker.ready = True
        log.info(
            "event=ready url=%s broker_id=%d cluster_id=%s", broker.url, broker.meta.broker_id, broker.meta.cluster_id
        )
        manager = broker.log_manager
        config = broker.config
        self._every("retention", config.retention_check_interval_ms, manager.maintenance, threaded=False)
        self._every("flush", config.flush_check_interval_ms, manager.flush_due, threaded=True)
        self._every("checkpoint", config.checkpoint_interval_ms, lambda _now: self._checkpoint(), threaded=True)
        self._every("isr-expiry", max(config.replica_lag_time_max_ms // 2, 10), broker.isr.check_shrink, threaded=False)
        self._every("group-expiry", GROUP_EXPIRY_INTERVAL_MS, lambda _now: broker.groups.expire(), threaded=False)
        self._every(
            "offsets-expiry",
            config.offsets_retention_check_interval_ms,
            lambda _now: broker.groups.expire_offsets(),
            threaded=False,
        )
        if config.log_cleaner_enable:
            self._start_cleaner(asyncio.get_running_loop())

    def _start_cleaner(self, loop: asyncio.AbstractEventLoop) -> None:
        """The log cleaner's thread; its segment swaps run on this event loop, which owns the logs."""
        broker = self.broker

        def stable_offset(key: tuple[str, int], log: PartitionLog) -> int:
            replica = broker.local_replica(*key)
            return replica.high_watermark if replica is not None else log.log_start_offset

        def run_on_owner(job: Callable[[], bool]) -> bool:
            async def run() -> bool:
                return job()

            return asyncio.run_coroutine_threadsafe(run(), loop).result()

        rate = broker.config.log_cleaner_io_max_bytes_per_second
        self._cleaner = LogCleaner(
            broker.log_manager,
            io_max_bytes_per_second=rate if rate > 0 else float("inf"),
            backoff_ms=broker.config.log_cleaner_backoff_ms,
            stable_offset=stable_offset,
            run_on_owner=run_on_owner,
        )
        self._cleaner.start()

    def _checkpoint(self) -> None:
        self.broker.log_manager.checkpoint()
        self.broker.replica_manager.checkpoint_high_watermarks()

    def _every(self, name: str, interval_ms: int, job: Callable[[int], None], *, threaded: bool) -> None:
        """Run ``job(now_ms)`` every ``interval_ms`` until stopped; a failing run is logged, not fatal."""

        async def loop() -> None:
            while True:
                try:
                    await asyncio.wait_for(self._stop.wait(), interval_ms / 1000)
                    return
                except TimeoutError:
                    pass
                now_ms = int(time.time() * 1000)
                try:
                    if threaded:
                        await asyncio.to_thread(job, now_ms)
                    else:
                        job(now_ms)
                except Exception as exc:
                    log.error("event=upkeep_failed job=%s error=%r", name, str(exc), exc_info=exc)

        self._tasks.append(asyncio.get_running_loop().create_task(loop(), name=f"gafka-{name}"))

    async def stop(self) -> None:
        """After the server drained: stop upkeep, finish fsyncs, then flush, checkpoint and mark clean."""
        broker = self.broker
        broker.begin_shutdown()
        self._stop.set()
        if self.kafka is not None:
            await self.kafka.stop()
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()  # waiting for the controller, or registering: give up
        if self._recovery is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        logs_open = await broker.logs_opened()  # a recovery thread cannot be interrupted: wait for it
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._cleaner is not None:
            await asyncio.to_thread(self._cleaner.stop)  # its swap may still need this loop: do not block it
        await broker.close()  # hands leaderships over first (controlled shutdown)
        broker.ready = False
        if broker.committer is not None:
            await broker.committer.close()
        if logs_open:
            await asyncio.to_thread(broker.replica_manager.checkpoint_high_watermarks)
            await asyncio.to_thread(broker.log_manager.shutdown)  # a half-recovered log is never marked clean
            log.info("event=clean_shutdown data_dir=%s", broker.config.data_dir)
        if broker.controller_service is not None:
            await broker.controller_service.stop()
        await broker.controller.close()
        await broker.peers.close()  # last: the controlled shutdown and the controller client used it
        PARTITIONS.source = tuple
        REPLICATION.source = tuple
        GROUPS.source = tuple
        BROKER.source = lambda: None


def create_app(broker: Broker, *, on_fatal: FatalHandler | None = None) -> Starlette:
    """The ASGI application serving ``broker``; ``on_fatal`` is called if recovery fails."""
    routes = [
        Route(path, timed(path, method, handler), methods=[method], include_in_schema=False)
        for path, method, handler in route_table(broker)
    ]
    if broker.controller_service is not None:
        routes += broker.controller_service.routes()  # its own controller: other brokers may join it

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime = _Runtime(broker, on_fatal)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = Starlette(routes=routes, exception_handlers=exception_handlers, lifespan=lifespan)
    app.state.broker = broker
    return app
