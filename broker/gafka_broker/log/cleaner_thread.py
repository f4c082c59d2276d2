"""The background log cleaner: one thread cleaning one compacted partition log at a time.

Each round (Kafka's ``CleanerThread.tryCleanFilthiestLog``) looks at every log whose
``cleanup.policy`` includes ``compact``, computes its cleanable range, and cleans the one with the
highest dirty ratio among those above ``min.cleanable.dirty.ratio`` or overdue by
``max.compaction.lag.ms``; with nothing to do it sleeps ``log.cleaner.backoff.ms``. Its I/O is
throttled to ``log.cleaner.io.max.bytes.per.second`` so produce and fetch keep the disk. Where each
log's dirty section starts is checkpointed in ``cleaner-offset-checkpoint`` (Kafka's file), so a
restart does not re-clean what is clean.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gafka_broker.log import metrics
from gafka_broker.log.cleaner import (
    DEFAULT_MAX_MAP_ENTRIES,
    CleanerStats,
    CleaningAbortedError,
    CleaningRange,
    LogCleaning,
    Throttle,
    cleaning_range,
)
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog

logger = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
StableOffset = Callable[[PartitionKey, PartitionLog], int]
OwnerRunner = Callable[[Callable[[], bool]], bool]


_PER_PARTITION = (
    metrics.CLEANER_DIRTY_RATIO,
    metrics.CLEANER_LAST_CLEAN_SECONDS,
    metrics.CLEANER_BYTES_READ,
    metrics.CLEANER_BYTES_WRITTEN,
    metrics.CLEANER_SECONDS,
)


def _log_end(_key: PartitionKey, log: PartitionLog) -> int:
    return log.log_end_offset


def _run_here(job: Callable[[], bool]) -> bool:
    return job()


@dataclass(frozen=True)
class CleanResult:
    """What one round did: which log, from where to where, and the statistics."""

    key: PartitionKey
    cleaning: CleaningRange
    first_dirty_after: int
    stats: CleanerStats


class LogCleaner:
    """Cleans the compacted logs of a :class:`LogManager` in the background."""

    def __init__(
        self,
        manager: LogManager,
        *,
        io_max_bytes_per_second: float = float("inf"),
        backoff_ms: int = 15_000,
        stable_offset: StableOffset = _log_end,
        run_on_owner: OwnerRunner = _run_here,
        max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
    ) -> None:
        """``stable_offset``: the offset below which a partition's records are committed (its high
        watermark); the cleaner never goes past it. ``run_on_owner``: runs the segment swap on the
        thread that owns the logs (the broker's event loop) and returns its result."""
        self.manager = manager
        self.throttle = Throttle(io_max_bytes_per_second, wait=self._sleep)
        self.backoff_ms = backoff_ms
        self.stable_offset = stable_offset
        self.run_on_owner = run_on_owner
        self.max_map_entries = max_map_entries
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._labelled: set[PartitionKey] = set()

    # -- the thread ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gafka-log-cleaner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Abort a cleaning in progress (its ``.cleaned`` files are removed) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.clean_filthiest(int(time.time() * 1000))
            except Exception as exc:
                logger.error("event=log_cleaner_failed error=%r", str(exc), exc_info=exc)
                metrics.CLEANER_RUNS.labels("failed").inc()
                result = None
            if result is None:
                self._stop.wait(self.backoff_ms / 1000)

    # -- one round -----------------------------------------------------------------------------------
    def clean_filthiest(self, now_ms: int, *, swap_step: Callable[[str], None] | None = None) -> CleanResult | None:
        """Clean the dirtiest cleanable log once; None when no log needs it (or it changed meanwhile)."""
        chosen: tuple[PartitionKey, PartitionLog, CleaningRange] | None = None
        logs = self.manager.logs()
        self._forget_metrics({key for key, log in logs.items() if log.config.compact})
        for key, log in logs.items():
            if not log.config.compact:
                continue
            cleaning = cleaning_range(log, self.manager.cleaner_offset(key), self.stable_offset(key, log), now_ms)
            metrics.CLEANER_DIRTY_RATIO.labels(key[0], str(key[1])).set(cleaning.dirty_ratio)
            eligible = cleaning.cleanable_bytes > 0 and (
                cleaning.compaction_overdue or cleaning.dirty_ratio > log.config.min_cleanable_dirty_ratio
            )
            if eligible and (chosen is None or cleaning.dirty_ratio > chosen[2].dirty_ratio):
                chosen = (key, log, cleaning)
        if chosen is None:
            return None
        key, log, cleaning = chosen
        return self.clean(key, log, cleaning, now_ms, swap_step=swap_step)

    def _forget_metrics(self, compacted: set[PartitionKey]) -> None:
        """Drop the per-partition series of logs no longer here (deleted, moved, no longer compacted)."""
        for key in self._labelled - compacted:
            labels = (key[0], str(key[1]))
            for metric in _PER_PARTITION:
                with contextlib.suppress(KeyError):
                    metric.remove(*labels)
        self._labelled = set(compacted)

    def clean(
        self,
        key: PartitionKey,
        log: PartitionLog,
        cleaning: CleaningRange,
        now_ms: int,
        *,
        swap_step: Callable[[str], None] | None = None,
    ) -> CleanResult | None:
        labels = (key[0], str(key[1]))
        bytes_read = metrics.CLEANER_BYTES_READ.labels(*labels)
        bytes_written = metrics.CLEANER_BYTES_WRITTEN.labels(*labels)

        def on_io(read: int, written: int) -> None:
            bytes_read.inc(read)
            bytes_written.inc(written)

        job = LogCleaning(
            log,
            cleaning,
            now_ms=now_ms,
            throttle=self.throttle,
            run_on_owner=self.run_on_owner,
            max_map_entries=self.max_map_entries,
            should_stop=self._stop.is_set,
            swap_step=swap_step,
            on_io=on_io,
        )
        try:
            first_dirty = job.run()
        except CleaningAbortedError as exc:
            logger.info("event=log_cleaning_aborted topic=%s partition=%d reason=%r", key[0], key[1], str(exc))
            metrics.CLEANER_RUNS.labels("aborted").inc()
            return None
        finally:
            metrics.CLEANER_SECONDS.labels(*labels).inc(job.stats.seconds)
        self.manager.set_cleaner_offset(key, first_dirty)
        metrics.CLEANER_RUNS.labels("cleaned").inc()
        metrics.CLEANER_LAST_CLEAN_SECONDS.labels(*labels).set(time.time())
        stats = job.stats
        logger.info(
            "event=log_cleaned topic=%s partition=%d first_dirty=%d next_dirty=%d bytes_read=%d bytes_written=%d "
            "records_read=%d records_kept=%d seconds=%.3f",
            key[0],
            key[1],
            cleaning.first_dirty,
            first_dirty,
            stats.bytes_read,
            stats.bytes_written,
            stats.records_read,
            stats.records_retained,
            stats.seconds,
        )
        return CleanResult(key, cleaning, first_dirty, stats)
