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


def _clean_both(
    kafka_tools: KafkaTools, tmp_path: Path, batches: list[dict[str, Any]], rounds: list[int]
) -> list[list[dict[str, Any]]]:
    """Write ``batches`` with Kafka's UnifiedLog, copy the directory, clean one copy with Kafka's cleaner
    and the other with gafka's at each time of ``rounds``; after each round both must hold the same
    batches. Returns gafka's batches after each round (as Kafka's FileRecords reads them)."""
    kafka_dir = tmp_path / "kafka" / "t-0"
    gafka_dir = tmp_path / "gafka" / "t-0"
    job = {"dir": str(kafka_dir), "segment_bytes": SEGMENT_BYTES, "index_interval_bytes": INDEX_INTERVAL_BYTES}
    kafka_tools.write_logs([{**job, "batches": batches}])
    shutil.copytree(kafka_dir, gafka_dir)
    after: list[list[dict[str, Any]]] = []
    for round_, now_ms in enumerate(rounds):
        (kafka,) = kafka_tools.clean_logs([{**job, "delete_retention_ms": RETENTION_MS, "now_ms": now_ms}])
        _gafka_clean(gafka_dir.parent, now_ms)
        kafka_batches = [batch for segment in kafka["segments"] for batch in segment["batches"]]
        gafka_batches = _batches(kafka_tools, gafka_dir)
        assert [_comparable(b) for b in gafka_batches] == [_comparable(b) for b in kafka_batches], f"round {round_}"
        after.append(gafka_batches)
    return after


def test_gafka_cleaner_matches_kafka_cleaner_and_kafka_reads_the_result(
    kafka_tools: KafkaTools, tmp_path: Path
) -> None:
    specs, producer_last_sequence = _specs(17)
    gafka_dir = tmp_path / "gafka" / "t-0"
    now = int(time.time() * 1000)
    rounds = _clean_both(kafka_tools, tmp_path, [spec.to_json() for spec in specs], [now, now + RETENTION_MS + 1])
    for round_, gafka_batches in enumerate(rounds):
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


def _transactional_batches(seed: int) -> list[dict[str, Any]]:
    """Plain keyed batches interleaved with transactions of three producers: committed ones, aborted
    ones, and ones whose records later writes supersede (so their markers outlive them)."""
    rng = random.Random(seed)
    timestamp = int(time.time() * 1000) - 600_000
    sequences: dict[int, int] = {}
    batches: list[dict[str, Any]] = []

    def data(producer: int | None) -> dict[str, Any]:
        nonlocal timestamp
        records = []
        for _ in range(rng.randint(1, 4)):
            value = None if rng.random() < 0.1 else b64(rng.randbytes(rng.choice((5, 60))))
            records.append({"key": b64(b"key-%d" % rng.randrange(12)), "value": value, "timestamp": timestamp})
            timestamp += rng.randint(0, 5)
        spec: dict[str, Any] = {"codec": "none", "partition_leader_epoch": 3, "records": records}
        if producer is not None:
            sequence = sequences.get(producer, 0)
            sequences[producer] = sequence + len(records)
            spec.update(producer_id=producer, producer_epoch=0, base_sequence=sequence, is_transactional=True)
        return spec

    open_txns: set[int] = set()
    for _ in range(150):
        roll = rng.random()
        producer = rng.choice((501, 502, 503))
        if roll < 0.5:
            batches.append(data(None))
        elif roll < 0.8:
            batches.append(data(producer))
            open_txns.add(producer)
        elif producer in open_txns:
            marker = "abort" if rng.random() < 0.4 else "commit"
            batches.append({"control": marker, "producer_id": producer, "producer_epoch": 0, "timestamp": timestamp})
            open_txns.discard(producer)
    for producer in sorted(open_txns):
        batches.append({"control": "commit", "producer_id": producer, "producer_epoch": 0, "timestamp": timestamp})
    batches += [data(None) for _ in range(20)]  # so the markers lie below the active segment
    return batches


def test_transactions_are_cleaned_as_kafka_cleans_them(kafka_tools: KafkaTools, tmp_path: Path) -> None:
    batches = _transactional_batches(5)
    now = int(time.time() * 1000)
    rounds = [now, now + RETENTION_MS + 1, now + 2 * RETENTION_MS + 2]
    after = _clean_both(kafka_tools, tmp_path, batches, rounds)
    aborted_values = _aborted_values(batches)
    assert aborted_values, "the input has aborted transactions"
    for round_, cleaned in enumerate(after):
        kept = {r["value"] for b in cleaned for r in b["records"] if not b["is_control"]}
        assert not kept & aborted_values, f"round {round_}: records of aborted transactions survived"
    markers = [sum(1 for b in cleaned if b["is_control"] and b["records"]) for cleaned in after]
    written = sum(1 for b in batches if "control" in b)
    assert markers[-1] < markers[0] <= written, f"markers outlive their transactions, then go: {markers}"
    assert any(b["is_control"] and b["records"] for b in after[-1]) or markers[-1] == 0


def _aborted_values(batches: list[dict[str, Any]]) -> set[str]:
    """Values (base64) of the records written in transactions that ended with an abort marker."""
    pending: dict[int, list[str]] = {}
    aborted: set[str] = set()
    for batch in batches:
        producer = batch.get("producer_id")
        if "control" in batch:
            values = pending.pop(producer, [])
            if batch["control"] == "abort":
                aborted.update(values)
        elif producer is not None:
            pending.setdefault(producer, []).extend(r["value"] for r in batch["records"] if r["value"] is not None)
    return aborted
