"""Every partition replica on this broker, kept in step with the cluster metadata.

The cluster metadata (from the controller) is the one source of truth for which partitions this broker
hosts and what role it has in each. :meth:`ReplicaManager.apply` takes every new version at once:
it creates the logs of partitions this broker now hosts (replicas and reassignment additions), deletes
those it no longer hosts (or whose topic was deleted and re-created), pushes config changes into the logs
and switches each partition to leader or follower when its leader or leader epoch changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx

from gafka_broker.controller.client import ControllerClient
from gafka_broker.controller.metadata import NO_LEADER, ClusterMetadata, PartitionState, TopicInfo
from gafka_broker.log.checkpoint import read_offsets, write_offsets
from gafka_broker.log.manager import LogManager
from gafka_broker.partition import BrokerPartition, rebuild_state
from gafka_broker.replication.epoch_cache import CHECKPOINT_FILE, LeaderEpochCache
from gafka_broker.replication.fetcher import FetcherManager, FetcherSettings
from gafka_broker.replication.leader import IsrManager
from gafka_broker.topic_config import TopicConfig, TopicConfigError

__all__ = ["HIGH_WATERMARK_CHECKPOINT", "LeadershipListener", "ReplicaManager"]

logger = logging.getLogger("gafka.broker.replication")

HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"
"""Kafka's file of high watermarks, so a restarted replica does not start from zero."""

LeadershipListener = Callable[[BrokerPartition, bool], None]
"""Called with (partition, leads_now) whenever this broker starts or stops leading a partition."""

Key = tuple[str, int]


def _now_ms() -> int:
    return int(time.time() * 1000)


def topic_config_of(topic: TopicInfo) -> TopicConfig:
    try:
        return TopicConfig.from_configs(topic.configs)
    except TopicConfigError as exc:  # validated before it reached the controller; never fatal here
        logger.error("event=topic_config_invalid topic=%s error=%r", topic.name, str(exc))
        return TopicConfig()


class ReplicaManager:
    """Partition replicas, their roles, the fetchers that feed followers and the ISR changes of leaders."""

    def __init__(
        self,
        broker_id: int,
        log_manager: LogManager,
        controller: ControllerClient,
        fetcher_settings: FetcherSettings,
        *,
        replica_lag_time_max_ms: int,
        after_append: Callable[[BrokerPartition], Awaitable[None]],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.log_manager = log_manager
        self.controller = controller
        self.max_lag_ms = replica_lag_time_max_ms
        self.metadata: ClusterMetadata | None = None
        self.cluster_id: str | None = None
        """Metadata of another cluster is never applied (it would delete every log of this one)."""
        self._ignored_version = -1
        self.replicas: dict[Key, BrokerPartition] = {}
        self.topic_configs: dict[str, TopicConfig] = {}
        self._topic_ids: dict[str, str] = {}
        self._applied: dict[Key, PartitionState] = {}
        self._live: frozenset[int] = frozenset()
        self._lock = asyncio.Lock()
        self.fetchers = FetcherManager(fetcher_settings, after_append, self.refresh, http)
        self.isr = IsrManager(broker_id, controller, self.refresh, self.leaders)
        self.stopping = False
        """Set at controlled shutdown: follow nobody any more (no fetches that could put us back in an ISR)."""
        self.leadership_listeners: list[LeadershipListener] = []
        self.topic_deleted_listeners: list[Callable[[str], None]] = []
        self._reports: set[asyncio.Task[None]] = set()

    @property
    def version(self) -> int:
        return max(self.metadata.version if self.metadata is not None else -1, self._ignored_version)

    @property
    def data_dir(self) -> Path:
        return self.log_manager.data_dir

    # -- lookups -------------------------------------------------------------------------------------
    def get(self, topic: str, partition: int) -> BrokerPartition | None:
        return self.replicas.get((topic, partition))

    def leaders(self) -> Iterator[BrokerPartition]:
        return (partition for partition in list(self.replicas.values()) if partition.is_leader)

    def caught_up_preferred(self) -> list[Key]:
        """Partitions this broker is the preferred replica of, follows, and has fully caught up on: what the
        controller may give back to it at its next imbalance check."""
        return [
            key
            for key, partition in list(self.replicas.items())
            if partition.caught_up
            and not partition.is_leader
            and partition.replicas[:1] == (self.broker_id,)
            and self.broker_id in partition.isr
        ]

    def hosted(self, metadata: ClusterMetadata) -> dict[Key, tuple[TopicInfo, PartitionState]]:
        me = self.broker_id
        return {
            (name, index): (topic, state)
            for name, topic in metadata.topics.items()
            for index, state in enumerate(topic.partitions)
            if me in state.replicas or me in state.adding
        }

    # -- start-up (in a thread, before the broker registers) ----------------------------------------
    def open(self, metadata: ClusterMetadata) -> None:
        """Open and recover the logs this broker hosts and rebuild their epoch caches and producer state."""
        hosted = self.hosted(metadata)
        self.log_manager.startup_partitions(
            {key: (topic_config_of(topic), topic.topic_id) for key, (topic, _state) in hosted.items()}
        )
        clean = self.log_manager.clean_shutdown_detected
        high_watermarks = read_offsets(self.data_dir / HIGH_WATERMARK_CHECKPOINT)
        for key, (topic, _state) in hosted.items():
            log = self.log_manager.get_log(*key)
            assert log is not None
            cache, producers = rebuild_state(log, LeaderEpochCache.load(log.directory / CHECKPOINT_FILE), clean=clean)
            self.replicas[key] = BrokerPartition(
                log,
                broker_id=self.broker_id,
                epoch_cache=cache,
                producers=producers,
                high_watermark=high_watermarks.get(key, 0),
                max_lag_ms=self.max_lag_ms,
            )
            self.replicas[key].on_damage = self._damage_found
            self.topic_configs[topic.name] = topic_config_of(topic)
            self._topic_ids[topic.name] = topic.topic_id

    def checkpoint_high_watermarks(self) -> None:
        """Write every replica's high watermark (with the other checkpoints, and at shutdown); blocking."""
        write_offsets(
            self.data_dir / HIGH_WATERMARK_CHECKPOINT,
            {key: partition.high_watermark for key, partition in list(self.replicas.items())},
        )

    # -- following the metadata ----------------------------------------------------------------------
    async def refresh(self) -> None:
        """Fetch newer metadata now (after a controller or a leader said ours is stale) and apply it."""
        try:
            newer = await self.controller.watch(self.version, 0)
        except Exception as exc:
            logger.warning("event=metadata_refresh_failed error=%r", str(exc))
            return
        if newer is not None:
            await self.apply(newer)

    async def apply(self, metadata: ClusterMetadata) -> None:
        """Make this broker's replicas match ``metadata`` (ignored when not newer than what was applied)."""
        async with self._lock:
            if self.metadata is not None and metadata.version <= self.metadata.version:
                return
            if self.cluster_id is not None and metadata.cluster_id != self.cluster_id:
                if self._ignored_version < 0:
                    logger.error(
                        "event=foreign_metadata_ignored cluster_id=%s expected=%s", metadata.cluster_id, self.cluster_id
                    )
                self._ignored_version = metadata.version
                return
            previous = self.metadata
            self.metadata = metadata
            hosted = self.hosted(metadata)
            await self._drop_gone(metadata, hosted)
            if previous is not None:
                for name in previous.topics.keys() - metadata.topics.keys():
                    for listener in self.topic_deleted_listeners:
                        listener(name)
            self._update_configs(metadata)
            await self._create_new(hosted)
            live = frozenset(metadata.live_brokers())
            live_changed = live != self._live
            self._live = live
            now = _now_ms()
            for key, (_topic, state) in hosted.items():
                partition = self.replicas[key]
                if not live_changed and self._applied.get(key) == state:
                    continue
                partition.live_brokers = live
                self._apply_role(partition, state, metadata, now)
                self._applied[key] = state

    async def _drop_gone(self, metadata: ClusterMetadata, hosted: dict[Key, tuple[TopicInfo, PartitionState]]) -> None:
        gone = []
        for key, partition in list(self.replicas.items()):
            topic = metadata.topics.get(key[0])
            if key not in hosted or topic is None or topic.topic_id != self._topic_ids.get(key[0]):
                gone.append(key)
                del self.replicas[key]
                self._applied.pop(key, None)
                self.fetchers.unfollow(partition)
                was_leader = partition.is_leader
                partition.become_follower(NO_LEADER, partition.leader_epoch + 1, replicas=(), isr=())
                partition.wake_all()
                if was_leader:
                    self._notify(partition, False)
        if not gone:
            return
        await asyncio.to_thread(self._forget_logs, gone)
        for key in gone:
            logger.info("event=replica_removed topic=%s partition=%d", *key)

    def _forget_logs(self, keys: list[Key]) -> None:
        for topic, index in keys:
            try:
                self.log_manager.forget_log(topic, index)
            except OSError as exc:
                logger.error("event=replica_delete_failed topic=%s partition=%d error=%r", topic, index, str(exc))

    def _update_configs(self, metadata: ClusterMetadata) -> None:
        for name in list(self.topic_configs):
            if name not in metadata.topics:
                del self.topic_configs[name]
                self._topic_ids.pop(name, None)
        for name, topic in metadata.topics.items():
            current = self.topic_configs.get(name)
            if current is not None and current.overrides == topic.configs:
                continue  # the usual case: every heartbeat is a new metadata version, configs rarely change
            config = topic_config_of(topic)
            if current is None or current.overrides != config.overrides:
                self.topic_configs[name] = config
                if current is not None:
                    self.log_manager.update_config(name, config)

    async def _create_new(self, hosted: dict[Key, tuple[TopicInfo, PartitionState]]) -> None:
        missing = {key: topic for key, (topic, _state) in hosted.items() if key not in self.replicas}
        if not missing:
            return
        created = await asyncio.to_thread(self._create_logs, missing)
        for key, partition in created.items():
            partition.on_damage = self._damage_found
            self.replicas[key] = partition
            self._topic_ids[key[0]] = missing[key].topic_id
        logger.info("event=replicas_created count=%d", len(created))

    def _create_logs(self, missing: dict[Key, TopicInfo]) -> dict[Key, BrokerPartition]:
        created = {}
        for (name, index), topic in missing.items():
            log = self.log_manager.create_log(name, index, topic_config_of(topic), topic_id=topic.topic_id)
            cache, producers = rebuild_state(log, LeaderEpochCache.load(log.directory / CHECKPOINT_FILE), clean=False)
            created[(name, index)] = BrokerPartition(
                log,
                broker_id=self.broker_id,
                epoch_cache=cache,
                producers=producers,
                high_watermark=0,
                max_lag_ms=self.max_lag_ms,
            )
        return created

    def _apply_role(
        self, partition: BrokerPartition, state: PartitionState, metadata: ClusterMetadata, now_ms: int
    ) -> None:
        me = self.broker_id
        if state.leader == me:
            if partition.is_leader and state.leader_epoch == partition.leader_epoch:
                if state.partition_epoch >= partition.partition_epoch:
                    partition.become_leader(
                        state.leader_epoch,
                        replicas=state.replicas,
                        isr=state.isr,
                        partition_epoch=state.partition_epoch,
                        adding=state.adding,
                        now_ms=now_ms,
                    )
                return
            self.fetchers.unfollow(partition)
            partition.become_leader(
                state.leader_epoch,
                replicas=state.replicas,
                isr=state.isr,
                partition_epoch=state.partition_epoch,
                adding=state.adding,
                now_ms=now_ms,
            )
            logger.info(
                "event=became_leader topic=%s partition=%d leader_epoch=%d isr=%s log_end_offset=%d high_watermark=%d",
                partition.topic,
                partition.partition,
                state.leader_epoch,
                ",".join(map(str, state.isr)),
                partition.log_end_offset,
                partition.high_watermark,
            )
            self._notify(partition, True)
            return
        was_leader = partition.is_leader
        changed = partition.become_follower(state.leader, state.leader_epoch, replicas=state.replicas, isr=state.isr)
        if not changed:
            return
        self.fetchers.unfollow(partition)
        if partition.damaged_at is not None:
            self._truncate_damaged(partition)
        leader = metadata.brokers.get(state.leader)
        if state.leader != NO_LEADER and leader is not None and not self.stopping:
            self.fetchers.follow(partition, state.leader, leader.url, state.leader_epoch)
        logger.info(
            "event=became_follower topic=%s partition=%d leader=%d leader_epoch=%d log_end_offset=%d",
            partition.topic,
            partition.partition,
            state.leader,
            state.leader_epoch,
            partition.log_end_offset,
        )
        if was_leader:
            self._notify(partition, False)

    # -- damage on disk ------------------------------------------------------------------------------
    def _damage_found(self, partition: BrokerPartition) -> None:
        """A read found this leader's replica damaged and another in-sync replica has it: ask the controller to
        move leadership there (this replica then truncates and fetches it again)."""
        task = asyncio.get_running_loop().create_task(self._report_damage(partition))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report_damage(self, partition: BrokerPartition) -> None:
        try:
            metadata = await self.controller.replica_damaged(self.broker_id, partition.topic, partition.partition)
        except Exception as exc:
            logger.error(
                "event=replica_damage_report_failed topic=%s partition=%d error=%r",
                partition.topic,
                partition.partition,
                str(exc),
            )
            return
        await self.apply(metadata)

    @staticmethod
    def _truncate_damaged(partition: BrokerPartition) -> None:
        """Cut a damaged replica back to before the damage, so its next fetches bring a good copy."""
        damaged, before = partition.damaged_at, partition.log_end_offset
        assert damaged is not None
        try:
            partition.truncate_to(damaged)
        except Exception as exc:
            logger.error(
                "event=replica_heal_failed topic=%s partition=%d offset=%d error=%r",
                partition.topic,
                partition.partition,
                damaged,
                str(exc),
            )
            return
        partition.damaged_at = None
        logger.warning(
            "event=replica_truncated_after_damage topic=%s partition=%d offset=%d log_end_offset_before=%d",
            partition.topic,
            partition.partition,
            damaged,
            before,
        )

    def _notify(self, partition: BrokerPartition, leads: bool) -> None:
        for listener in self.leadership_listeners:
            try:
                listener(partition, leads)
            except Exception:
                logger.exception(
                    "event=leadership_listener_failed topic=%s partition=%d", partition.topic, partition.partition
                )

    # -- stopping ------------------------------------------------------------------------------------
    def movable_leaderships(self) -> int:
        """Partitions this broker leads that another live in-sync replica could take over."""
        metadata = self.metadata
        if metadata is None:
            return 0
        live = set(metadata.live_brokers())
        count = 0
        for topic in metadata.topics.values():
            for state in topic.partitions:
                if state.leader == self.broker_id and any(r != self.broker_id and r in live for r in state.isr):
                    count += 1
        return count

    async def close(self) -> None:
        for task in list(self._reports):
            task.cancel()
        await self.isr.close()
        await self.fetchers.close()
