"""The broker behind the HTTP API: topics as the cluster metadata has them, and the replicas it hosts.

The controller's cluster metadata is the one source of truth for topics, partitions, leaders and ISRs.
Topic changes are validated here, then made by the controller, then applied locally before the answer
(other brokers apply them from their metadata long poll a moment later). A broker started without
``controller_url`` is its own controller: the same code, with the controller in process.

Everything here runs on the event loop except :meth:`Broker.recover`, which opens the logs in a thread
before the broker registers and becomes ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from gafka_broker.config import BrokerConfig
from gafka_broker.controller.client import ControllerClient
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import NO_LEADER, ClusterMetadata, PartitionState, TopicInfo
from gafka_broker.controller.service import ControllerService
from gafka_broker.core.fetch import Reader
from gafka_broker.core.produce import Appender
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.service import OFFSETS_TOPIC, GroupService
from gafka_broker.log.group_commit import GroupCommitter
from gafka_broker.log.manager import LogManager
from gafka_broker.metadata import (
    BrokerMeta,
    InvalidTopicNameError,
    colliding_topic,
    load_or_create_meta,
    validate_topic_name,
)
from gafka_broker.metrics import forget_topic
from gafka_broker.partition import BrokerPartition
from gafka_broker.peers import PeerClient
from gafka_broker.replication.fetcher import FetcherSettings
from gafka_broker.replication.forwarding import Forwarder, RemoteLeader
from gafka_broker.replication.leader import LeaderFetchHandler
from gafka_broker.replication.manager import ReplicaManager, topic_config_of
from gafka_broker.replication.metadata_sync import ClusterLink
from gafka_broker.replication.producer_ids import ProducerIdAllocator
from gafka_broker.topic_config import TopicConfig, TopicConfigError

__all__ = ["INTERNAL_TOPICS", "MAX_PARTITIONS", "Broker", "RemoteLeader", "is_internal_topic"]

log = logging.getLogger("gafka.broker")

MAX_PARTITIONS = 10_000
"""Most partitions one topic may have (each is a directory with open files)."""
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC})
"""Topics the broker writes itself (Kafka's ``Topic.isInternal``): readable, never written by clients."""
REMOTE_OFFSETS_TIMEOUT_S = 1.0
"""How long ``GET /v1/topics/{topic}`` waits for another leader's offsets before showing null."""


def is_internal_topic(name: str) -> bool:
    return name in INTERNAL_TOPICS


def _positive_int(raw: object, what: str, code: ErrorCode, maximum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ApiError(code, f"{what} must be an integer, got {raw!r}")
    if not 1 <= raw <= maximum:
        raise ApiError(code, f"{what} must be between 1 and {maximum}, got {raw}")
    return raw


def _controller_error(exc: Exception) -> ApiError:
    """A refusal or failure of the controller, as the API answers it."""
    if isinstance(exc, ControllerError):
        try:
            code = ErrorCode(exc.code)
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR if exc.code != "INVALID_REQUEST" else ErrorCode.INVALID_REQUEST
        return ApiError(code, exc.message)
    return ApiError(ErrorCode.BROKER_NOT_AVAILABLE, f"the controller did not answer: {exc or type(exc).__name__}")


class Broker:
    """The broker's state: the cluster metadata it follows, the replicas it hosts, and its links to others."""

    def __init__(
        self,
        config: BrokerConfig,
        meta: BrokerMeta,
        log_manager: LogManager,
        controller: ControllerClient,
        *,
        url: str,
        controller_service: ControllerService | None = None,
        incarnation: str | None = None,
        peers: PeerClient | None = None,
    ) -> None:
        self.config = config
        self.meta = meta
        self.url = url
        self.log_manager = log_manager
        self.controller = controller
        self.controller_service = controller_service
        """Set when this broker is its own controller (it then serves the controller routes too)."""
        self.incarnation = incarnation or uuid.uuid4().hex
        self.peers = peers or PeerClient()
        """The one HTTP client to other brokers and the controller (forwarding, replica fetches, controller)."""
        self.committer: GroupCommitter | None = None
        self.ready = False
        self.stopping = False
        self.long_polls = 0
        self._spread: dict[str, int] = {}
        self._leaving: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[None] | None = None
        broker_id = config.broker_id
        self.replica_manager = ReplicaManager(
            broker_id,
            log_manager,
            controller,
            FetcherSettings(
                broker_id=broker_id,
                incarnation=self.incarnation,
                max_wait_ms=config.replica_fetch_wait_max_ms,
                max_bytes=config.replica_fetch_max_bytes,
            ),
            replica_lag_time_max_ms=config.replica_lag_time_max_ms,
            after_append=self._after_follower_append,
            http=self.peers.http,
        )
        self.replica_manager.topic_deleted_listeners.append(self._topic_deleted)
        self.isr = self.replica_manager.isr
        self.link = ClusterLink(
            self.replica_manager,
            controller,
            broker_id=broker_id,
            url=url,
            rack=config.rack,
            incarnation=self.incarnation,
            heartbeat_interval_ms=config.broker_heartbeat_interval_ms,
        )
        self.leader_fetch = LeaderFetchHandler(
            self.replica_manager.get, self._incarnation_of, self.isr, lambda: self.stopping
        )
        self.forwarder = Forwarder(broker_id, self.peers.http)
        self.producer_ids = ProducerIdAllocator(controller)
        self.appender = Appender(self)
        """Appends for every face (see :mod:`gafka_broker.core.produce`)."""
        self.reader = Reader(self)
        """Reads for every face (see :mod:`gafka_broker.core.fetch`)."""
        self.groups = GroupService(self)
        """The group coordinator and everything it needs (see :mod:`gafka_broker.groups.service`)."""

    # -- the cluster ---------------------------------------------------------------------------------
    @property
    def metadata(self) -> ClusterMetadata:
        metadata = self.replica_manager.metadata
        if metadata is None:
            raise ApiError(ErrorCode.BROKER_NOT_AVAILABLE, "the broker has not joined the cluster yet; retry shortly")
        return metadata

    @property
    def broker_ids(self) -> tuple[int, ...]:
        """Live (unfenced) brokers."""
        metadata = self.replica_manager.metadata
        if metadata is None:
            return (self.meta.broker_id,)
        return tuple(metadata.live_brokers()) or (self.meta.broker_id,)

    @property
    def controller_id(self) -> int:
        """This broker's id when it is its own controller; -1 when the controller is a process of its own."""
        return self.meta.broker_id if self.controller_service is not None else -1

    def _incarnation_of(self, broker_id: int) -> str | None:
        metadata = self.replica_manager.metadata
        broker = metadata.brokers.get(broker_id) if metadata is not None else None
        return broker.incarnation if broker is not None else None

    def broker_url(self, broker_id: int) -> str | None:
        metadata = self.replica_manager.metadata
        broker = metadata.brokers.get(broker_id) if metadata is not None else None
        return broker.url if broker is not None else None

    # -- start-up ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the cluster: read the metadata, recover the hosted logs (in a thread), register."""
        metadata = await self.link.initial_metadata()
        if self.controller_service is None:
            # The controller names the cluster: adopt its id on a first start, refuse another cluster later.
            self.meta = await asyncio.to_thread(
                load_or_create_meta, self.config.data_dir, self.meta.broker_id, metadata.cluster_id
            )
        self.replica_manager.cluster_id = self.meta.cluster_id
        self._opening = asyncio.ensure_future(asyncio.to_thread(self.recover, metadata))
        await asyncio.shield(self._opening)
        await self.link.start()

    async def logs_opened(self) -> bool:
        """Wait for a recovery in progress; True when every hosted log is open (so it may be marked clean)."""
        if self._opening is None:
            return False
        try:
            await self._opening
        except Exception:
            return False
        return True

    def recover(self, metadata: ClusterMetadata) -> None:
        """Open and recover the logs this broker hosts; blocking, run in a thread before :attr:`ready`."""
        started = time.perf_counter()
        self.replica_manager.open(metadata)
        log.info(
            "event=recovered partitions=%d clean_shutdown=%s seconds=%.3f",
            len(self.replica_manager.replicas),
            self.log_manager.clean_shutdown_detected,
            time.perf_counter() - started,
        )

    def check_ready(self) -> None:
        if not self.ready:
            raise ApiError(ErrorCode.BROKER_NOT_AVAILABLE, "the broker is still recovering its logs; retry shortly")

    async def _after_follower_append(self, partition: BrokerPartition) -> None:
        if self.committer is not None:
            await self.committer.after_append(partition.log)

    # -- stopping ------------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """SIGTERM: stop parking fetches, release the parked ones, and start handing leaderships over."""
        self.stopping = True
        for partition in self.partitions():
            partition.wake_all()
        self.forwarder.release_long_polls()
        if self._leaving is None and self.ready:
            with contextlib.suppress(RuntimeError):
                self._leaving = asyncio.get_running_loop().create_task(self._leave(), name="gafka-leave")

    async def _leave(self) -> None:
        """Controlled shutdown. The fetchers keep running until :meth:`close`: a leader that has not applied
        the new ISR yet still gets this replica's fetches, so its ``acks=all`` requests never wait for us."""
        self.replica_manager.stopping = True
        await self.link.controlled_shutdown()

    async def close(self) -> None:
        """After the server drained: finish the controlled shutdown, then stop every link to the cluster."""
        self.begin_shutdown()
        if self._leaving is not None:
            with contextlib.suppress(Exception):
                await self._leaving
        await self.link.stop()
        await self.replica_manager.close()
        await self.forwarder.close()

    # -- lookups -------------------------------------------------------------------------------------
    def partitions(self) -> Iterator[BrokerPartition]:
        """The replicas this broker hosts (leaders and followers)."""
        return iter(list(self.replica_manager.replicas.values()))

    def topic_names(self, *, internal: bool = True) -> list[str]:
        metadata = self.replica_manager.metadata
        names = metadata.topics if metadata is not None else {}
        return sorted(name for name in names if internal or not is_internal_topic(name))

    def has_topic(self, topic: str) -> bool:
        metadata = self.replica_manager.metadata
        return metadata is not None and topic in metadata.topics

    def topic_info(self, topic: str) -> TopicInfo:
        info = self.metadata.topics.get(topic)
        if info is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic!r} does not exist")
        return info

    def partition_counts(self) -> dict[str, int]:
        """Topic -> partition count, what group assignment is computed from."""
        metadata = self.replica_manager.metadata
        if metadata is None:
            return {}
        return {name: len(topic.partitions) for name, topic in metadata.topics.items()}

    def check_writable(self, topic: str) -> None:
        """Clients may read internal topics but never produce to them (Kafka answers the same code)."""
        if is_internal_topic(topic):
            raise ApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"cannot produce to internal topic {topic!r}: only the group coordinator writes it",
            )

    def partition_state(self, topic: str, partition: str | int) -> tuple[int, PartitionState]:
        """The index and the metadata of one partition; 404 when the topic or the partition does not exist."""
        info = self.topic_info(topic)
        try:
            index = int(partition)
        except ValueError:
            index = -1
        if not 0 <= index < len(info.partitions):
            raise ApiError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"topic {topic!r} has no partition {partition}; it has partitions 0..{len(info.partitions) - 1}",
            )
        return index, info.partitions[index]

    def route(self, topic: str, partition: str | int) -> BrokerPartition | RemoteLeader:
        """The local leader replica, or where the leader is; ``LEADER_NOT_AVAILABLE`` when there is none."""
        index, state = self.partition_state(topic, partition)
        local = self.replica_manager.get(topic, index)
        if local is not None and local.is_leader:
            return local
        leader = state.leader
        url = self.broker_url(leader) if leader != NO_LEADER else None
        if leader == self.meta.broker_id or url is None:
            raise ApiError(
                ErrorCode.LEADER_NOT_AVAILABLE,
                f"partition {index} of {topic!r} has no leader right now (epoch {state.leader_epoch}); retry shortly",
            )
        return RemoteLeader(leader, url)

    def not_leader(self, topic: str, index: int, leader: RemoteLeader) -> ApiError:
        return ApiError(
            ErrorCode.NOT_LEADER_OR_FOLLOWER,
            f"broker {self.meta.broker_id} does not lead partition {index} of {topic!r}; broker "
            f"{leader.broker_id} does, at {leader.url}",
            leader_id=leader.broker_id,
            leader_url=leader.url,
        )

    def partition(self, topic: str, partition: str | int) -> BrokerPartition:
        """The partition's replica when this broker leads it; otherwise ``NOT_LEADER_OR_FOLLOWER`` (421) with
        the leader's id and URL, or 404 when it does not exist."""
        routed = self.route(topic, partition)
        if isinstance(routed, RemoteLeader):
            index, _state = self.partition_state(topic, partition)
            raise self.not_leader(topic, index, routed)
        return routed

    def local_replica(self, topic: str, partition: int) -> BrokerPartition | None:
        return self.replica_manager.get(topic, partition)

    def topic_config(self, topic: str) -> TopicConfig:
        config = self.replica_manager.topic_configs.get(topic)
        return config if config is not None else topic_config_of(self.topic_info(topic))

    def spread_partition(self, topic: str, count: int) -> int:
        """Round-robin over the partitions for records with neither key nor partition."""
        current = self._spread.get(topic)
        if current is None:
            current = random.randrange(count)
        self._spread[topic] = current + 1
        return current % count

    async def ensure_topic(self, topic: str, *, auto_create: bool) -> TopicInfo:
        """The topic; created with the defaults when it does not exist and ``auto_create`` allows."""
        if self.has_topic(topic):
            return self.topic_info(topic)
        await self.replica_manager.refresh()  # created through another broker a moment ago?
        if self.has_topic(topic) or not (auto_create and self.config.auto_create_topics):
            return self.topic_info(topic)
        try:
            await self.create_topic(topic, None, None, None)
            log.info("event=topic_auto_created topic=%s", topic)
        except ApiError as exc:
            if exc.code is not ErrorCode.TOPIC_ALREADY_EXISTS:  # another broker created it just now
                raise
            await self.replica_manager.refresh()
        return self.topic_info(topic)

    # -- topic administration ------------------------------------------------------------------------
    def _validated_name(self, name: object) -> str:
        try:
            topic = validate_topic_name(name)
        except InvalidTopicNameError as exc:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, str(exc)) from None
        return topic

    @staticmethod
    def _refuse_internal_name(topic: str) -> None:
        """Internal names, and names that collide with them, are reserved even before the topic exists."""
        folded = topic.replace(".", "_")
        for internal in INTERNAL_TOPICS:
            if folded == internal.replace(".", "_"):
                raise ApiError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                    f"topic name {topic!r} is reserved for the internal topic {internal!r}",
                )

    @staticmethod
    def _refuse_internal(topic: str, action: str) -> None:
        if is_internal_topic(topic):
            raise ApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION, f"cannot {action} internal topic {topic!r}: the broker manages it"
            )

    @staticmethod
    def _parse_configs(raw: object, base: TopicConfig | None = None) -> TopicConfig:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ApiError(ErrorCode.INVALID_CONFIG, 'configs must be an object of {"name": "value"}')
        for name, value in raw.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ApiError(ErrorCode.INVALID_CONFIG, f"{name} must be a string or a number, got {value!r}")
        try:
            return TopicConfig.from_configs(raw, base=base)
        except TopicConfigError as exc:
            raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None

    def _with_default_min_isr(self, configs: object, factor: int) -> object:
        """The broker's default min.insync.replicas (capped at ``factor``) unless the topic names its own;
        kept as an override, so every broker applies the same value whatever its own setting."""
        default = min(self.config.default_min_insync_replicas, factor)
        if default <= 1 or not isinstance(configs, Mapping | None):  # a malformed value is refused as it is
            return configs
        if configs is not None and "min.insync.replicas" in configs:
            return configs
        return {**(configs or {}), "min.insync.replicas": str(default)}

    async def _controller_call(self, call: Any) -> ClusterMetadata:
        try:
            metadata: ClusterMetadata = await call
        except (ControllerError, httpx.HTTPError, OSError) as exc:
            raise _controller_error(exc) from None
        await self.replica_manager.apply(metadata)
        return metadata

    async def create_topic(
        self, name: object, partitions: object, replication_factor: object, configs: object, *, internal: bool = False
    ) -> TopicInfo:
        """Validate everything, then have the controller place it; its logs here exist when this returns."""
        topic = self._validated_name(name)
        if not internal:
            self._refuse_internal_name(topic)
        metadata = self.metadata
        if topic in metadata.topics:
            raise ApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {topic!r} already exists")
        other = colliding_topic(topic, metadata.topics)
        if other is not None:
            raise ApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"topic {topic!r} collides with existing topic {other!r} ('.' and '_' are treated alike)",
            )
        count = _positive_int(
            self.config.default_partitions if partitions is None else partitions,
            "partitions",
            ErrorCode.INVALID_PARTITIONS,
            MAX_PARTITIONS,
        )
        factor = _positive_int(
            self.config.default_replication_factor if replication_factor is None else replication_factor,
            "replication_factor",
            ErrorCode.INVALID_REPLICATION_FACTOR,
            1 << 15,
        )
        live = len(metadata.live_brokers())
        if factor > live:
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"replication factor {factor} is larger than the number of brokers ({live})",
            )
        topic_config = self._parse_configs(self._with_default_min_isr(configs, factor))
        updated = await self._controller_call(
            self.controller.create_topic(topic, count, factor, dict(topic_config.overrides))
        )
        log.info("event=topic_created topic=%s partitions=%d replication_factor=%d", topic, count, factor)
        return updated.topics[topic]

    async def alter_topic(self, name: str, partitions: object, configs: object) -> TopicInfo:
        """Add partitions and/or change config overrides (``null`` removes one); validated before any change."""
        self._refuse_internal(name, "alter")
        current = self.topic_info(name)
        existing = len(current.partitions)
        count = existing
        if partitions is not None:
            count = _positive_int(partitions, "partitions", ErrorCode.INVALID_PARTITIONS, MAX_PARTITIONS)
            if count < existing:
                raise ApiError(
                    ErrorCode.INVALID_PARTITIONS,
                    f"topic {name!r} has {existing} partitions; the count can only grow",
                )
        topic_config = self.topic_config(name)
        if configs is not None:
            topic_config = self._parse_configs(configs, base=topic_config)
        updated = await self._controller_call(
            self.controller.alter_topic(
                name,
                partitions=count if count > existing else None,
                configs=dict(topic_config.overrides) if configs is not None else None,
            )
        )
        log.info(
            "event=topic_altered topic=%s partitions=%d configs=%s",
            name,
            count,
            ",".join(f"{key}={value}" for key, value in topic_config.overrides.items()) or "-",
        )
        return updated.topics[name]

    async def delete_topic(self, name: str) -> None:
        """Delete the topic everywhere: its data, its parked fetches and its committed offsets go."""
        info = self.topic_info(name)
        self._refuse_internal(name, "delete")
        await self._controller_call(self.controller.delete_topic(name))
        log.info("event=topic_deleted topic=%s partitions=%d", name, len(info.partitions))

    def _topic_deleted(self, name: str) -> None:
        self._spread.pop(name, None)
        forget_topic(name)
        self.groups.forget_topic(name)

    # -- describing ----------------------------------------------------------------------------------
    _UNKNOWN_OFFSETS: ClassVar[dict[str, None]] = dict.fromkeys(
        ("log_start_offset", "high_watermark", "log_end_offset", "size_bytes")
    )

    async def describe_topic(self, name: str, *, created: bool = False) -> dict[str, Any]:
        """``GET /v1/topics/{topic}``: replicas, leader and ISR from the metadata, offsets from the leaders
        (null for a leader that does not answer within a second; the high watermark is null while a new leader
        does not know it yet, KIP-207); ``created``: a new topic, all zero."""
        info = self.topic_info(name)
        offsets: dict[int, dict[str, int | None] | None] = {}
        remote: dict[int, list[int]] = {}
        for index, state in enumerate(info.partitions):
            local = self.replica_manager.get(name, index)
            if created:
                offsets[index] = {"log_start_offset": 0, "high_watermark": 0, "log_end_offset": 0, "size_bytes": 0}
            elif local is not None and local.is_leader:
                offsets[index] = {
                    "log_start_offset": local.log_start_offset,
                    "high_watermark": local.visible_high_watermark,
                    "log_end_offset": local.log_end_offset,
                    "size_bytes": local.log.size_bytes,
                }
            elif state.leader != NO_LEADER and self.broker_url(state.leader) is not None:
                remote.setdefault(state.leader, []).append(index)
        if remote:
            answers = await asyncio.gather(*(self.remote_offsets(leader, name) for leader in remote))
            for leader, found in zip(remote, answers, strict=True):
                for index in remote[leader]:
                    offsets[index] = found.get(index)
        described: dict[str, Any] = {
            "name": name,
            "topic_id": info.topic_id,
            "replication_factor": info.replication_factor,
            "partitions": [
                {
                    "partition": index,
                    "leader": state.leader,
                    "replicas": list(state.replicas),
                    "isr": list(state.isr),
                    "leader_epoch": state.leader_epoch,
                    **(offsets.get(index) or self._UNKNOWN_OFFSETS),
                }
                for index, state in enumerate(info.partitions)
            ],
            "configs": topic_config_of(info).to_configs(),
            "config_overrides": dict(info.configs),
        }
        if is_internal_topic(name):
            described["internal"] = True
        return described

    async def remote_offsets(self, leader: int, topic: str) -> dict[int, dict[str, int | None]]:
        """Offsets of the partitions of ``topic`` that ``leader`` leads, as it answers ({} if it does not)."""
        url = self.broker_url(leader)
        if url is None:
            return {}
        try:
            data = await self.forwarder.get_json(
                url, f"/v1/replication/offsets/{topic}", timeout_s=REMOTE_OFFSETS_TIMEOUT_S
            )
        except (httpx.HTTPError, ValueError):
            return {}
        return {
            int(entry["partition"]): {
                "log_start_offset": int(entry["log_start_offset"]),
                "high_watermark": None if entry["high_watermark"] is None else int(entry["high_watermark"]),
                "log_end_offset": int(entry["log_end_offset"]),
                "size_bytes": int(entry.get("size_bytes", 0)),  # a leader of an older version does not say
            }
            for entry in data.get("partitions", [])
        }

    def topic_summary(self, name: str) -> dict[str, Any]:
        info = self.topic_info(name)
        summary: dict[str, Any] = {
            "name": name,
            "partitions": len(info.partitions),
            "replication_factor": info.replication_factor,
        }
        if is_internal_topic(name):
            summary["internal"] = True
        return summary

    def wake_all(self) -> None:
        for partition in self.partitions():
            partition.wake_all()
