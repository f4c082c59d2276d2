"""gafka's log cleaner against Apache Kafka's own, and Kafka's tools reading a log gafka cleaned.

One partition directory is written by Kafka's ``UnifiedLog`` (keys reused many times, tombstones, every
codec, an idempotent producer whose batches carry sequences) and copied. Kafka's ``Cleaner`` cleans one
copy, gafka's cleaner the other, twice: once now (tombstones kept, stamped with a delete horizon), once
after ``delete.retention.ms`` (tombstones gone). After each round both hold the same records at the same
offsets, and the same batches field by field (uncompressed ones byte for byte, CRC included).

Then Kafka's ``DumpLogSegments`` reads gafka's cleaned segments (valid batches, indexes that pass its
verification) and Kafka's ``UnifiedLog`` opens the directory after a crash (rebuilding the indexes) and
reads every record gafka has.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from gafka.protocol.compression import Compression
from gafka.protocol.record_batch import NewRecord, decode_batches
from gafka_broker.log.cleaner import CleaningRange
from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .kafka_tools import KafkaTools, b64, iter_log_files
from .specs import BatchSpec

pytestmark = pytest.mark.kafka_tools

SEGMENT_BYTES = 4096
INDEX_INTERVAL_BYTES = 256
RETENTION_MS = 60_000
CONFIG = TopicConfig.from_configs(
    {
        "cleanup.policy": "compact",
        "segment.bytes": SEGMENT_BYTES,
        "index.interval.bytes": INDEX_INTERVAL_BYTES,
        "delete.retention.ms": RETENTION_MS,
    }
)
BATCH_FIELDS = (
    "base_offset",
    "last_offset",
    "magic",
    "codec",
    "timestamp_type",
    "max_timestamp",
    "producer_id",
    "producer_epoch",
    "base_sequence",
    "last_sequence",
    "partition_leader_epoch",
    "is_transactional",
    "is_control",
    "records",
)


def _specs(seed: int) -> tuple[list[BatchSpec], int]:
    """The batches, and the last sequence number of the idempotent producer among them."""
    rng = random.Random(seed)
    timestamp = int(time.time() * 1000) - 600_000
    sequence = 0
    specs: list[BatchSpec] = []
    for index in range(120):
        records = []
        for _ in range(rng.randint(1, 6)):
            key = b"key-%d" % rng.randrange(15)
            value = None if rng.random() < 0.15 else rng.randbytes(rng.choice((5, 40, 200)))
            headers = [("h", rng.randbytes(3))] if rng.random() < 0.3 else []
            records.append(NewRecord(key, value, headers, timestamp))
            timestamp += rng.randint(0, 20)
        producer = (-1, -1, -1)
        if index % 3 == 0 and index < 60:  # an idempotent producer: its last batch survives, empty if need be
            producer = (4242, 1, sequence)
            sequence += len(records)
        specs.append(BatchSpec(tuple(records), list(Compression)[index % 5], producer, partition_leader_epoch=2))
    return specs, sequence - 1


def _gafka_clean(data_dir: Path, now_ms: int) -> PartitionLog:
    manager = LogManager(data_dir)
    manager.startup({"t": (1, CONFIG)})
    log = manager.get_log("t", 0)
    assert log is not None
    everything = CleaningRange(0, log.segments[-1].base_offset, 0, 1, False)  # as the Kafka side: from 0
    assert LogCleaner(manager).clean(("t", 0), log, everything, now_ms) is not None
    manager.shutdown()
    return log


def _batches(kafka_tools: KafkaTools, directory: Path) -> list[dict[str, Any]]:
    files = kafka_tools.read_segments(iter_log_files(directory))
    return [batch for name in sorted(files) for batch in files[name]]


def _comparable(batch: dict[str, Any]) -> dict[str, Any]:
    fields = {name: batch[name] for name in BATCH_FIELDS}
    if batch["codec"] == "none":  # compressed bytes depend on the compressor; plain ones must be identical
        fields.update(crc=batch["crc"], size=batch["size"])
    return fields


def test_gafka_cleaner_matches_kafka_cleaner_and_kafka_reads_the_result(
    kafka_tools: KafkaTools, tmp_path: Path
) -> None:
    specs, producer_last_sequence = _specs(17)
    kafka_dir = tmp_path / "kafka" / "t-0"
    gafka_dir = tmp_path / "gafka" / "t-0"
    job = {
        "dir": str(kafka_dir),
        "segment_bytes": SEGMENT_BYTES,
        "index_interval_bytes": INDEX_INTERVAL_BYTES,
        "batches": [spec.to_json() for spec in specs],
    }
    kafka_tools.write_logs([job])
    shutil.copytree(kafka_dir, gafka_dir)
    now = int(time.time() * 1000)
    rounds = [now, now + RETENTION_MS + 1]
    clean_job = {
        "dir": str(kafka_dir),
        "segment_bytes": SEGMENT_BYTES,
        "index_interval_bytes": INDEX_INTERVAL_BYTES,
        "delete_retention_ms": RETENTION_MS,
    }
    for round_, now_ms in enumerate(rounds):
        (kafka,) = kafka_tools.clean_logs([{**clean_job, "now_ms": now_ms}])
        _gafka_clean(gafka_dir.parent, now_ms)
        kafka_batches = [batch for segment in kafka["segments"] for batch in segment["batches"]]
        gafka_batches = _batches(kafka_tools, gafka_dir)
        assert [_comparable(b) for b in gafka_batches] == [_comparable(b) for b in kafka_batches], f"round {round_}"
        tombstones = [r for b in gafka_batches for r in b["records"] if r["value"] is None]
        assert bool(tombstones) == (round_ == 0), "tombstones are kept first, removed after delete.retention.ms"
        last_sequence = max(b["last_sequence"] for b in gafka_batches if b["producer_id"] == 4242)
        assert last_sequence == producer_last_sequence, "the producer's last batch (its sequence) survived cleaning"
        assert sum(len(b["records"]) for b in gafka_batches) < sum(len(s.records) for s in specs) / 3

    gafka_log = PartitionLog.open(gafka_dir, CONFIG, clean=True)
    gafka_records = []
    for segment in gafka_log.segments:
        data = segment.log_path.read_bytes()
        gafka_records += [
            {"offset": r.offset, "key": b64(r.key), "value": b64(r.value)} for r in decode_batches(data, validate=True)
        ]
    gafka_log.close()

    files = [path for path in sorted(gafka_dir.iterdir()) if path.suffix in (".log", ".index", ".timeindex")]
    dump = kafka_tools.dump_log_segments(files)
    assert dump.index_problems == {}
    dumped = [batch for path in files if path.suffix == ".log" for batch in dump.file(path).batches]
    assert dumped and all(batch.is_valid for batch in dumped)
    verified = kafka_tools.dump_log_segments(
        [path for path in files if path.suffix != ".log"], verify_index_only=True, print_data=False
    )
    assert verified.index_problems == {}
    (opened,) = kafka_tools.open_logs(
        [
            {
                "dir": str(gafka_dir),
                "clean": False,
                "segment_bytes": SEGMENT_BYTES,
                "index_interval_bytes": INDEX_INTERVAL_BYTES,
            }
        ]
    )
    kafka_read = [{"offset": r["offset"], "key": r["key"], "value": r["value"]} for r in opened["records"]]
    assert kafka_read == gafka_records
