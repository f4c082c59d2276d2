"""Every partition log under one data directory, with the clean-shutdown marker and checkpoints.

Start-up: read the checkpoints, open each ``<topic>-<partition>`` directory (recovering it when the
previous stop was not clean), then remove the marker so that a crash from now on counts as unclean.
Shutdown: flush and close everything, write the checkpoints, then the marker.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from gafka_broker.log.checkpoint import fsync_directory, read_offsets, write_atomically, write_offsets
from gafka_broker.log.partition_log import PartitionLog, parse_partition_dir
from gafka_broker.topic_config import TopicConfig

logger = logging.getLogger(__name__)

PARTITION_METADATA_FILE = "partition.metadata"
"""Kafka's per-partition file naming the topic id, so a directory left from a deleted topic of the same
name is never mistaken for the new topic's data."""
CLEAN_SHUTDOWN_MARKER = ".gafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"
"""Kafka's file: where each compacted log's dirty (not yet cleaned) section starts."""
_DELETED_DIR_SUFFIX = "-delete"


def read_topic_id(path: Path) -> str | None:
    """The ``topic_id`` of a ``partition.metadata`` file; None when missing or unreadable."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "topic_id" and value.strip():
            return value.strip()
    return None


class LogManager:
    """Owns the :class:`PartitionLog` of every partition this broker stores."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.clean_shutdown_detected = False
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._cleaner_offsets: dict[tuple[str, int], int] = {}

    # -- lifecycle -----------------------------------------------------------------------------------
    def startup(self, topics: Mapping[str, tuple[int, TopicConfig]]) -> None:
        """Open and recover the logs of ``topics`` (name -> partition count, config); blocking."""
        self.startup_partitions(
            {(topic, index): (config, None) for topic, (count, config) in topics.items() for index in range(count)}
        )

    def startup_partitions(self, hosted: Mapping[tuple[str, int], tuple[TopicConfig, str | None]]) -> None:
        """Open and recover the logs of the ``hosted`` partitions ((topic, partition) -> config and topic id);
        directories of other partitions are left alone, those of an older topic of the same name go."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        self.clean_shutdown_detected = marker.exists()
        recovery_points = read_offsets(self.data_dir / RECOVERY_POINT_CHECKPOINT)
        log_starts = read_offsets(self.data_dir / LOG_START_CHECKPOINT)
        self._cleaner_offsets = read_offsets(self.data_dir / CLEANER_CHECKPOINT)
        started = time.perf_counter()
        for path in sorted(self.data_dir.iterdir()):
            if not path.is_dir():
                continue
            if path.name.endswith(_DELETED_DIR_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
                continue
            parsed = parse_partition_dir(path.name)
            if parsed is None:
                continue
            spec = hosted.get(parsed)
            if spec is None:
                logger.warning("event=orphan_log_dir dir=%s action=ignored", path.name)
                continue
            config, topic_id = spec
            if not self._claim(path, topic_id):
                continue
            self._logs[parsed] = PartitionLog.open(
                path,
                config,
                recovery_point=recovery_points.get(parsed, 0),
                log_start_offset=log_starts.get(parsed, 0),
                clean=self.clean_shutdown_detected,
                compacted=parsed in self._cleaner_offsets,
            )
        for (topic, partition), (config, topic_id) in hosted.items():
            if (topic, partition) not in self._logs:
                self.create_log(topic, partition, config, topic_id=topic_id)
        marker.unlink(missing_ok=True)
        fsync_directory(self.data_dir)
        logger.info(
            "event=logs_loaded count=%d clean_shutdown=%s seconds=%.3f",
            len(self._logs),
            self.clean_shutdown_detected,
            time.perf_counter() - started,
        )

    def shutdown(self) -> None:
        """Flush and close every log, write the checkpoints and the clean-shutdown marker."""
        for log in self._logs.values():
            log.close()
        self.checkpoint()
        write_atomically(self.data_dir / CLEAN_SHUTDOWN_MARKER, b"")
        logger.info("event=logs_closed count=%d", len(self._logs))

    # -- partitions ----------------------------------------------------------------------------------
    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def create_log(
        self, topic: str, partition: int, config: TopicConfig, *, topic_id: str | None = None
    ) -> PartitionLog:
        """The log of a partition, created empty (and stamped with ``topic_id``) if it has none yet."""
        key = (topic, partition)
        existing = self._logs.get(key)
        if existing is not None:
            return existing
        directory = self.data_dir / f"{topic}-{partition}"
        if directory.exists():
            self._claim(directory, topic_id)  # deleted when it holds another topic of the same name
        # an orphan directory left alone at start-up (same topic) is recovered like any unclean log
        log = PartitionLog.open(directory, config, clean=not directory.exists(), compacted=key in self._cleaner_offsets)
        self._claim(directory, topic_id)  # stamps a new directory
        self._logs[key] = log
        return log

    def _claim(self, directory: Path, topic_id: str | None) -> bool:
        """True when ``directory`` holds data of topic ``topic_id`` (stamping it if unstamped); a directory of
        another topic of the same name is deleted and False returned."""
        if topic_id is None:
            return True
        path = directory / PARTITION_METADATA_FILE
        stored = read_topic_id(path)
        if stored is None:
            directory.mkdir(parents=True, exist_ok=True)
            write_atomically(path, f"version: 0\ntopic_id: {topic_id}\n".encode())
            return True
        if stored == topic_id:
            return True
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}{_DELETED_DIR_SUFFIX}")
        directory.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        logger.warning("event=stale_log_dir_deleted dir=%s topic_id=%s expected=%s", directory.name, stored, topic_id)
        return False

    def forget_log(self, topic: str, partition: int) -> None:
        """Stop hosting one partition (it moved to other brokers): its directory is deleted."""
        self._cleaner_offsets.pop((topic, partition), None)
        log = self._logs.pop((topic, partition), None)
        if log is None:
            return
        doomed = log.directory.with_name(f"{log.directory.name}.{uuid.uuid4().hex}{_DELETED_DIR_SUFFIX}")
        log.directory.rename(doomed)
        log.directory = doomed
        log.delete()
        fsync_directory(self.data_dir)

    def delete_logs(self, topic: str) -> None:
        """Close and remove every partition of ``topic``: rename first, so a crash midway finishes the job."""
        for key in [key for key in self._logs if key[0] == topic]:
            self._cleaner_offsets.pop(key, None)
            log = self._logs.pop(key)
            doomed = log.directory.with_name(f"{log.directory.name}.{uuid.uuid4().hex}{_DELETED_DIR_SUFFIX}")
            log.directory.rename(doomed)
            log.directory = doomed
            log.delete()
        fsync_directory(self.data_dir)

    def update_config(self, topic: str, config: TopicConfig) -> None:
        for (name, _partition), log in self._logs.items():
            if name == topic:
                log.config = config

    def logs(self) -> dict[tuple[str, int], PartitionLog]:
        return dict(self._logs)

    # -- the log cleaner's checkpoint ----------------------------------------------------------------
    def cleaner_offset(self, key: tuple[str, int]) -> int:
        """Where the dirty section of a compacted log starts (0, i.e. the log start, if never cleaned)."""
        return self._cleaner_offsets.get(key, 0)

    def set_cleaner_offset(self, key: tuple[str, int], offset: int) -> None:
        """Record a finished cleaning in ``cleaner-offset-checkpoint`` (the cleaner's thread calls this)."""
        self._cleaner_offsets[key] = offset
        write_offsets(self.data_dir / CLEANER_CHECKPOINT, dict(self._cleaner_offsets))

    # -- periodic work -------------------------------------------------------------------------------
    def maintenance(self, now_ms: int) -> None:
        """Retention for every log (``log.retention.check.interval.ms``)."""
        for log in list(self._logs.values()):
            log.apply_retention(now_ms)

    def flush_due(self, now_ms: int) -> None:
        """fsync logs whose ``flush.ms`` has elapsed and segments rolled since the last flush; blocking."""
        for log in list(self._logs.values()):
            if log.unflushed_messages and now_ms - log.last_flush_ms >= log.config.flush_ms:
                log.flush()
            else:
                log.flush_sealed()

    def checkpoint(self) -> None:
        """Write recovery points and log start offsets (every 60 s and at shutdown)."""
        logs = list(self._logs.items())
        write_offsets(self.data_dir / RECOVERY_POINT_CHECKPOINT, {key: log.recovery_point for key, log in logs})
        write_offsets(self.data_dir / LOG_START_CHECKPOINT, {key: log.log_start_offset for key, log in logs})
