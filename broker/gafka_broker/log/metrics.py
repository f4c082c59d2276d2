"""Prometheus metrics of the log layer, registered in the default registry the broker exposes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FSYNC_SECONDS = Histogram(
    "gafka_log_fsync_seconds",
    "Time one fsync of a partition log took (one fsync may cover many appends).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RECOVERIES = Counter(
    "gafka_log_recoveries_total",
    "Partition logs scanned at start-up because the previous stop was not clean.",
)
RECOVERY_TRUNCATED_BYTES = Counter(
    "gafka_log_recovery_truncated_bytes_total",
    "Bytes cut from segments during recovery (torn or corrupt tails).",
)
RECOVERY_DROPPED_SEGMENTS = Counter(
    "gafka_log_recovery_dropped_segments_total",
    "Whole segments deleted during recovery because they followed a corrupt batch.",
)
RECOVERY_SECONDS = Histogram(
    "gafka_log_recovery_seconds",
    "Time spent recovering one partition log at start-up.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INDEX_REBUILDS = Counter(
    "gafka_log_index_rebuilds_total",
    "Offset/time indexes rebuilt from their segment because they were missing or failed a sanity check.",
)

# -- the log cleaner (labels: topic, partition) -------------------------------------------------------
CLEANER_DIRTY_RATIO = Gauge(
    "gafka_log_cleaner_dirty_ratio",
    "Cleanable (dirty) bytes over all bytes of a compacted partition log, as of the cleaner's last look.",
    ["topic", "partition"],
)
CLEANER_LAST_CLEAN_SECONDS = Gauge(
    "gafka_log_cleaner_last_clean_timestamp_seconds",
    "Wall-clock time the cleaner last finished cleaning a partition log.",
    ["topic", "partition"],
)
CLEANER_BYTES_READ = Counter(
    "gafka_log_cleaner_bytes_read_total",
    "Bytes of log the cleaner read (offset map and recopy).",
    ["topic", "partition"],
)
CLEANER_BYTES_WRITTEN = Counter(
    "gafka_log_cleaner_bytes_written_total",
    "Bytes the cleaner wrote into cleaned segments.",
    ["topic", "partition"],
)
CLEANER_SECONDS = Counter(
    "gafka_log_cleaner_seconds_total",
    "Time the cleaner spent cleaning a partition log (throttling included).",
    ["topic", "partition"],
)
CLEANER_RUNS = Counter(
    "gafka_log_cleaner_runs_total",
    "Cleanings by outcome: cleaned, aborted (the log changed underneath) or failed.",
    ["outcome"],
)
CORRUPT_READS = Counter(
    "gafka_log_corrupt_reads_total",
    "Reads that found a batch damaged on disk (CRC mismatch or cut short); the replica then heals from another.",
)
