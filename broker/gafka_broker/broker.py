"""The one-node cluster behind the HTTP API: topics, their partitions and their logs.

Topic changes go registry first, logs second, so a crash in between leaves a state the next start repairs
(start-up creates missing partition logs; a deleted topic's directories are renamed away by the log
manager). Everything here runs on the event loop except :meth:`Broker.recover`, which runs in a thread
before the broker is ready.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

from gafka_broker.config import BrokerConfig
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.log.group_commit import GroupCommitter
from gafka_broker.log.manager import LogManager
from gafka_broker.metadata import (
    BrokerMeta,
    InvalidTopicNameError,
    TopicMetadata,
    TopicRegistry,
    colliding_topic,
    validate_topic_name,
)
from gafka_broker.metrics import forget_topic
from gafka_broker.partition import BrokerPartition
from gafka_broker.topic_config import TopicConfig, TopicConfigError

__all__ = ["MAX_PARTITIONS", "Broker"]

log = logging.getLogger("gafka.broker")

MAX_PARTITIONS = 10_000
"""Most partitions one topic may have (each is a directory with open files)."""


def _positive_int(raw: object, what: str, code: ErrorCode, maximum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ApiError(code, f"{what} must be an integer, got {raw!r}")
    if not 1 <= raw <= maximum:
        raise ApiError(code, f"{what} must be between 1 and {maximum}, got {raw}")
    return raw


class Broker:
    """The broker's state: which topics exist, their configs, and the partition of each log."""

    def __init__(
        self,
        config: BrokerConfig,
        meta: BrokerMeta,
        registry: TopicRegistry,
        log_manager: LogManager,
        *,
        url: str,
    ) -> None:
        self.config = config
        self.meta = meta
        self.url = url
        self.registry = registry
        self.log_manager = log_manager
        self.committer: GroupCommitter | None = None
        self.ready = False
        self.stopping = False
        self.long_polls = 0
        self._partitions: dict[str, list[BrokerPartition]] = {}
        self._configs: dict[str, TopicConfig] = {}
        self._spread: dict[str, int] = {}

    @property
    def broker_ids(self) -> tuple[int, ...]:
        return (self.meta.broker_id,)

    @property
    def controller_id(self) -> int:
        """Alone, this broker is its own controller."""
        return self.meta.broker_id

    # -- start-up ------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Open and recover every partition log; blocking, run in a thread before :attr:`ready`."""
        started = time.perf_counter()
        specs: dict[str, tuple[int, TopicConfig]] = {}
        for name, topic in self.registry.topics().items():
            specs[name] = (topic.partitions, TopicConfig.from_configs(topic.configs))
        self.log_manager.startup(specs)
        partitions = {
            name: [self._open_partition(name, index, topic_config) for index in range(count)]
            for name, (count, topic_config) in specs.items()
        }
        self._configs.update((name, topic_config) for name, (_count, topic_config) in specs.items())
        self._partitions.update(partitions)  # in one step: /metrics may be scraped from the loop meanwhile
        log.info(
            "event=recovered topics=%d partitions=%d clean_shutdown=%s seconds=%.3f",
            len(specs),
            sum(count for count, _ in specs.values()),
            self.log_manager.clean_shutdown_detected,
            time.perf_counter() - started,
        )

    def _open_partition(self, topic: str, index: int, topic_config: TopicConfig) -> BrokerPartition:
        partition_log = self.log_manager.get_log(topic, index)
        if partition_log is None:
            partition_log = self.log_manager.create_log(topic, index, topic_config)
        return BrokerPartition(partition_log, leader=self.meta.broker_id, replicas=self.broker_ids)

    def check_ready(self) -> None:
        if not self.ready:
            raise ApiError(ErrorCode.BROKER_NOT_AVAILABLE, "the broker is still recovering its logs; retry shortly")

    def begin_shutdown(self) -> None:
        """Stop parking fetches and release the parked ones, so SIGTERM is not held up by long polls."""
        self.stopping = True
        for partitions in self._partitions.values():
            for partition in partitions:
                partition.wake_all()

    # -- lookups -------------------------------------------------------------------------------------
    def partitions(self) -> Iterator[BrokerPartition]:
        for partitions in list(self._partitions.values()):
            yield from partitions

    def topic_names(self) -> list[str]:
        return sorted(self._partitions)

    def topic_partitions(self, topic: str, *, auto_create: bool = False) -> list[BrokerPartition]:
        """The partitions of ``topic``; creates it with the defaults when ``auto_create`` allows."""
        partitions = self._partitions.get(topic)
        if partitions is not None:
            return partitions
        if auto_create and self.config.auto_create_topics:
            self.create_topic(topic, None, None, None)
            log.info("event=topic_auto_created topic=%s", topic)
            return self._partitions[topic]
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic!r} does not exist")

    def partition(self, topic: str, partition: str | int, *, auto_create: bool = False) -> BrokerPartition:
        partitions = self.topic_partitions(topic, auto_create=auto_create)
        try:
            index = int(partition)
        except ValueError:
            index = -1
        if not 0 <= index < len(partitions):
            raise ApiError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"topic {topic!r} has no partition {partition}; it has partitions 0..{len(partitions) - 1}",
            )
        return partitions[index]

    def topic_config(self, topic: str) -> TopicConfig:
        return self._configs[topic]

    def spread_partition(self, topic: str, count: int) -> int:
        """Round-robin over the partitions for records with neither key nor partition."""
        current = self._spread.get(topic)
        if current is None:
            current = random.randrange(count)
        self._spread[topic] = current + 1
        return current % count

    # -- topic administration ------------------------------------------------------------------------
    def _validated_name(self, name: object) -> str:
        try:
            topic = validate_topic_name(name)
        except InvalidTopicNameError as exc:
            raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, str(exc)) from None
        return topic

    @staticmethod
    def _parse_configs(raw: object, base: TopicConfig | None = None) -> TopicConfig:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ApiError(ErrorCode.INVALID_CONFIG, 'configs must be an object of {"name": "value"}')
        for name, value in raw.items():
            if value is not None and not isinstance(value, (str, int, bool)):
                raise ApiError(ErrorCode.INVALID_CONFIG, f"{name} must be a string or a number, got {value!r}")
        try:
            return TopicConfig.from_configs(raw, base=base)
        except TopicConfigError as exc:
            raise ApiError(ErrorCode.INVALID_CONFIG, str(exc)) from None

    def create_topic(
        self, name: object, partitions: object, replication_factor: object, configs: object
    ) -> TopicMetadata:
        """Validate everything, then record the topic and create its logs."""
        topic = self._validated_name(name)
        if topic in self._partitions:
            raise ApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {topic!r} already exists")
        other = colliding_topic(topic, self._partitions)
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
        if factor > len(self.broker_ids):
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"replication factor {factor} is larger than the number of brokers ({len(self.broker_ids)})",
            )
        topic_config = self._parse_configs(configs)
        metadata = TopicMetadata(topic, count, factor, topic_config.overrides)
        self.registry.create(metadata)
        try:
            logs = [self.log_manager.create_log(topic, index, topic_config) for index in range(count)]
        except OSError as exc:
            self.registry.delete(topic)
            self.log_manager.delete_logs(topic)
            log.error("event=topic_create_failed topic=%s error=%r", topic, str(exc))
            raise ApiError(ErrorCode.KAFKA_STORAGE_ERROR, f"cannot create the logs of {topic!r}: {exc}") from None
        self._configs[topic] = topic_config
        self._partitions[topic] = [
            BrokerPartition(partition_log, leader=self.meta.broker_id, replicas=self.broker_ids[:factor])
            for partition_log in logs
        ]
        log.info("event=topic_created topic=%s partitions=%d replication_factor=%d", topic, count, factor)
        return metadata

    def alter_topic(self, name: str, partitions: object, configs: object) -> TopicMetadata:
        """Add partitions and/or change config overrides (``null`` removes one); all or nothing."""
        current = self.registry.get(name)
        if current is None or name not in self._partitions:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        count = current.partitions
        if partitions is not None:
            count = _positive_int(partitions, "partitions", ErrorCode.INVALID_PARTITIONS, MAX_PARTITIONS)
            if count < current.partitions:
                raise ApiError(
                    ErrorCode.INVALID_PARTITIONS,
                    f"topic {name!r} has {current.partitions} partitions; the count can only grow",
                )
        topic_config = self._configs[name]
        if configs is not None:
            topic_config = self._parse_configs(configs, base=topic_config)
        updated = current.with_changes(partitions=count, configs=topic_config.overrides)
        self.registry.update(updated)
        if configs is not None:
            self.log_manager.update_config(name, topic_config)
            self._configs[name] = topic_config
        existing = self._partitions[name]
        for index in range(len(existing), count):
            existing.append(self._open_partition(name, index, topic_config))
        log.info(
            "event=topic_altered topic=%s partitions=%d configs=%s",
            name,
            count,
            ",".join(f"{key}={value}" for key, value in topic_config.overrides.items()) or "-",
        )
        return updated

    def delete_topic(self, name: str) -> None:
        """Forget the topic, release its parked fetches and remove its data."""
        if name not in self._partitions:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        self.registry.delete(name)
        partitions = self._partitions.pop(name)
        self._configs.pop(name, None)
        self._spread.pop(name, None)
        for partition in partitions:
            partition.wake_all()
        forget_topic(name)
        try:
            self.log_manager.delete_logs(name)
        except OSError as exc:
            log.error("event=topic_delete_failed topic=%s error=%r", name, str(exc))
            raise ApiError(
                ErrorCode.KAFKA_STORAGE_ERROR, f"topic {name!r} is gone but its data was not: {exc}"
            ) from None
        log.info("event=topic_deleted topic=%s partitions=%d", name, len(partitions))

    def describe_topic(self, name: str) -> dict[str, Any]:
        """``GET /v1/topics/{topic}``: partitions with their offsets, and every effective config."""
        metadata = self.registry.get(name)
        partitions = self._partitions.get(name)
        if metadata is None or partitions is None:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        return {
            "name": name,
            "topic_id": metadata.topic_id,
            "replication_factor": metadata.replication_factor,
            "partitions": [
                {
                    "partition": partition.partition,
                    "leader": partition.leader,
                    "replicas": list(partition.replicas),
                    "isr": list(partition.isr),
                    "leader_epoch": partition.leader_epoch,
                    "log_start_offset": partition.log_start_offset,
                    "high_watermark": partition.high_watermark,
                    "log_end_offset": partition.log_end_offset,
                }
                for partition in partitions
            ],
            "configs": self._configs[name].to_configs(),
            "config_overrides": dict(metadata.configs),
        }

    def topic_summary(self, name: str) -> dict[str, Any]:
        metadata = self.registry.get(name)
        assert metadata is not None
        return {
            "name": name,
            "partitions": len(self._partitions[name]),
            "replication_factor": metadata.replication_factor,
        }

    def wake_all(self) -> None:
        for partition in self.partitions():
            partition.wake_all()
