"""gafka's partition log directories are Kafka's: segments, ``.index`` and ``.timeindex``, both ways.

- gafka -> Kafka: a multi-segment log written by :class:`PartitionLog` is read by Kafka's
  ``DumpLogSegments`` (records, index entries, its index verification and sanity checks), then opened by
  Kafka's ``UnifiedLog`` as after a clean shutdown (Kafka uses gafka's index files as they are: every
  offset and timestamp lookup must land right) and as after a crash (Kafka rebuilds the indexes, which
  must come out byte-identical to gafka's).
- Kafka -> gafka: a multi-segment directory written by Kafka's ``UnifiedLog`` opens as a
  :class:`PartitionLog`, cleanly (gafka uses Kafka's indexes) and with recovery (gafka rebuilds them,
  byte-identical to Kafka's), and every record reads back.

- Both: the same uncompressed batches written by Kafka's ``UnifiedLog`` and by gafka's ``PartitionLog``
  give identical directories, every ``.log``, ``.index`` and ``.timeindex`` byte for byte.

Five JVM starts in all: two Kafka writes, two DumpLogSegments runs, one UnifiedLog open (two jobs).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from gafka.protocol.compression import Compression
from gafka.protocol.record_batch import NewRecord, Record, decode_batch, iter_batches
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .kafka_tools import DumpOutput, KafkaTools, iter_log_files, unb64
from .specs import (
    CODECS,
    BatchSpec,
    assert_kafka_dump_matches,
    layout,
    split_by_segment,
)

pytestmark = pytest.mark.kafka_tools

SEGMENT_BYTES = 64 * 1024
INDEX_INTERVAL_BYTES = 1024
BATCHES = 160
INDEX_SUFFIXES = (".index", ".timeindex")


def log_batches(seed: str, start_ms: int | None = None) -> list[BatchSpec]:
    """Batches of 1-12 records, every codec, values up to 2.5 KB (so ~12 segments of 64 KiB).

    Record timestamps strictly increase across the log (from an hour ago, so no time-based roll), which
    makes "first offset at or after a timestamp" exact for Kafka's and gafka's time index lookups alike.
    Leader epochs only grow, as in a real log, and change every 40 batches.
    """
    rng = random.Random(seed)
    timestamp = int(time.time() * 1000) - 3_600_000 if start_ms is None else start_ms
    specs: list[BatchSpec] = []
    for index in range(BATCHES):
        records: list[NewRecord] = []
        for _ in range(rng.randint(1, 12)):
            size = rng.choice((0, 10, 100, 600, 2500))
            key = None if rng.random() < 0.2 else b"key-%d" % rng.randrange(1000)
            value = None if rng.random() < 0.05 else rng.randbytes(size)
            headers = [(f"h{i}", rng.randbytes(rng.randrange(8))) for i in range(rng.randrange(3))]
            records.append(NewRecord(key, value, headers, timestamp))
            timestamp += rng.randint(1, 50)
        specs.append(BatchSpec(tuple(records), CODECS[index % len(CODECS)], partition_leader_epoch=index // 40))
    return specs


def expected_records(specs: Sequence[BatchSpec]) -> list[Record]:
    return [record for spec, base in zip(specs, layout(specs), strict=True) for record in spec.expected(base)]


def batch_positions(directory: Path) -> dict[int, tuple[int, int, int]]:
    """Every batch of the directory: last offset -> (segment base offset, position, base offset)."""
    found: dict[int, tuple[int, int, int]] = {}
    for path in iter_log_files(directory):
        for position, header in iter_batches(path.read_bytes()):
            found[header.last_offset] = (int(path.stem), position, header.base_offset)
    return found


def expected_position(directory: Path, offset: int) -> int:
    """Position of the batch holding ``offset``."""
    for last_offset, (_, position, base_offset) in batch_positions(directory).items():
        if base_offset <= offset <= last_offset:
            return position
    raise AssertionError(f"no batch holds offset {offset}")


def index_files(directory: Path) -> dict[str, bytes]:
    """The ``.index`` and ``.timeindex`` of every segment; a missing one reads as empty."""
    files: dict[str, bytes] = {}
    for log in iter_log_files(directory):
        for suffix in INDEX_SUFFIXES:
            path = log.with_suffix(suffix)
            files[path.name] = path.read_bytes() if path.exists() else b""
    return files


def config() -> TopicConfig:
    return TopicConfig.from_configs({"segment.bytes": SEGMENT_BYTES, "index.interval.bytes": INDEX_INTERVAL_BYTES})


def kafka_job(directory: Path, **extra: Any) -> dict[str, Any]:
    return {
        "dir": str(directory),
        "segment_bytes": SEGMENT_BYTES,
        "index_interval_bytes": INDEX_INTERVAL_BYTES,
        **extra,
    }


def kafka_records(answer: dict[str, Any]) -> list[Record]:
    return [
        Record(
            r["offset"],
            r["timestamp"],
            unb64(r["key"]),
            unb64(r["value"]),
            tuple((name, unb64(value)) for name, value in r["headers"]),
        )
        for r in answer["records"]
    ]


def read_all(log: PartitionLog) -> list[Record]:
    """Every record of ``log`` through :meth:`PartitionLog.read`, from the log start to the log end."""
    records: list[Record] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 256 * 1024).data
        next_offset = offset
        for position, header in iter_batches(data):
            records += [r for r in decode_batch(data, position, header=header) if r.offset >= offset]
            next_offset = header.next_offset
        assert next_offset > offset, f"read made no progress at offset {offset}"
        offset = next_offset
    return records


# --------------------------------------------------------------------------------------------------
# gafka -> Kafka


@dataclass
class GafkaLog:
    directory: Path
    specs: list[BatchSpec]
    indexes: dict[str, bytes]
    dump: DumpOutput
    sanity: DumpOutput
    kafka_clean: dict[str, Any]
    kafka_recovered: dict[str, Any]
    clean_copy: Path
    recovered_copy: Path


@pytest.fixture(scope="module")
def gafka_log(kafka_tools: KafkaTools, tmp_path_factory: pytest.TempPathFactory) -> GafkaLog:
    root = tmp_path_factory.mktemp("gafka-log")
    directory = root / "orders-0"
    specs = log_batches("gafka-partition-log")
    log = PartitionLog.open(directory, config())
    # Appends of one to three batches, as produce requests carry them; a leader stamps offsets and epochs.
    rng = random.Random(7)
    index = 0
    while index < len(specs) - 1:
        count = rng.randint(1, 3)
        epoch = specs[index].partition_leader_epoch
        group = [s for s in specs[index : min(index + count, len(specs) - 1)] if s.partition_leader_epoch == epoch]
        log.append_as_leader(b"".join(spec.encode(0) for spec in group), leader_epoch=group[0].partition_leader_epoch)
        index += len(group)
    # The last batch alone in a segment rolled by hand: a segment too small for any index entry.
    log.roll()
    log.append_as_leader(specs[-1].encode(0), leader_epoch=specs[-1].partition_leader_epoch)
    log.close()

    clean_copy = root / "clean-0"
    recovered_copy = root / "recovered-0"
    shutil.copytree(directory, clean_copy)
    shutil.copytree(directory, recovered_copy)
    # Kafka's DumpLogSegments cannot dump a .timeindex whose .index is missing (it crashes), so the index
    # pair of a segment is dumped only when both exist; test_gafka_segments_have_kafka_file_set checks that.
    files: list[Path] = []
    for log_file in iter_log_files(directory):
        files.append(log_file)
        pair = [log_file.with_suffix(suffix) for suffix in INDEX_SUFFIXES]
        if all(path.exists() for path in pair):
            files += pair
    # A tampered copy of the first segment rides along in the same run, to show the checks can fail:
    # its second .index entry points at the first entry's batch, its first .timeindex timestamp is off by one.
    tampered = root / "tampered-0"
    tampered.mkdir()
    first = next(iter_log_files(directory))
    for suffix in (".log", *INDEX_SUFFIXES):
        shutil.copy(first.with_suffix(suffix), tampered / first.with_suffix(suffix).name)
    index_bytes = bytearray((tampered / first.with_suffix(".index").name).read_bytes())
    index_bytes[12:16] = index_bytes[4:8]
    (tampered / first.with_suffix(".index").name).write_bytes(index_bytes)
    time_index = bytearray((tampered / first.with_suffix(".timeindex").name).read_bytes())
    time_index[0:8] = (int.from_bytes(time_index[0:8], "big") + 1).to_bytes(8, "big")
    (tampered / first.with_suffix(".timeindex").name).write_bytes(time_index)
    dump = kafka_tools.dump_log_segments(
        [*files, *(tampered / first.with_suffix(suffix).name for suffix in INDEX_SUFFIXES)]
    )
    sanity = kafka_tools.dump_log_segments(
        [path for path in files if path.suffix in INDEX_SUFFIXES], index_sanity_check=True
    )
    kafka_clean, kafka_recovered = kafka_tools.open_logs(
        [kafka_job(clean_copy, clean=True), kafka_job(recovered_copy, clean=False)]
    )
    return GafkaLog(
        directory,
        specs,
        index_files(directory),
        dump,
        sanity,
        kafka_clean,
        kafka_recovered,
        clean_copy,
        recovered_copy,
    )


def test_gafka_log_has_several_segments_with_index_entries(gafka_log: GafkaLog) -> None:
    logs = list(iter_log_files(gafka_log.directory))
    assert len(logs) >= 5
    assert sum(len(data) for name, data in gafka_log.indexes.items() if name.endswith(".index")) >= 8 * 100


def test_dump_log_segments_reads_every_gafka_segment(gafka_log: GafkaLog) -> None:
    segments = split_by_segment(gafka_log.directory, gafka_log.specs)
    assert sum(len(specs) for _, specs, _ in segments) == len(gafka_log.specs)
    for path, specs, start in segments:
        stored = path.read_bytes()
        encoded = [stored[position : position + header.size] for position, header in iter_batches(stored)]
        # A leader stores the producer's bytes, only offset and leader epoch stamped (outside the CRC).
        assert encoded == [spec.encode(base) for spec, base in zip(specs, layout(specs, start), strict=True)]
        dumped = gafka_log.dump.file(path)
        assert dumped.notes == [f"Log starting offset: {start}"]
        assert_kafka_dump_matches(dumped, specs, encoded, start)
    assert gafka_log.dump.offset_gaps == []


def test_kafka_finds_no_mismatch_in_gafka_indexes(gafka_log: GafkaLog) -> None:
    dump = gafka_log.dump
    # (DumpLogSegments makes the --verify-index-only checks in this printing run too, only more verbosely.)
    problems = {path: lines for path, lines in dump.index_problems.items() if "tampered-0" not in path}
    assert problems == {}, dump.stderr
    batches = batch_positions(gafka_log.directory)
    timestamps = {
        base + len(spec.records) - 1: spec.max_timestamp
        for spec, base in zip(gafka_log.specs, layout(gafka_log.specs), strict=True)
    }
    entries = 0
    dumped = [Path(name) for name in dump.files if Path(name).parent == gafka_log.directory]
    dumped_indexes = [path for path in dumped if path.suffix == ".index"]
    assert len(dumped_indexes) >= len(list(iter_log_files(gafka_log.directory))) - 1
    for path in dumped_indexes:
        for offset, position in dump.file(path).index_entries:
            # Kafka's rule: an entry maps a batch's *last* offset to the position where that batch starts.
            assert batches[offset][:2] == (int(path.stem), position)
            entries += 1
    assert entries > 0
    for path in [path for path in dumped if path.suffix == ".timeindex"]:
        time_entries = dump.file(path).time_index_entries
        assert time_entries, f"{path.name} has no entry: a sealed segment records its largest timestamp"
        for timestamp, offset in time_entries:
            assert batches[offset][0] == int(path.stem)
            assert timestamps[offset] == timestamp


def test_dump_log_segments_flags_the_tampered_indexes(gafka_log: GafkaLog) -> None:
    first = next(iter_log_files(gafka_log.directory))
    tampered = first.parent.parent / "tampered-0"
    entries = gafka_log.dump.file(first.with_suffix(".index")).index_entries
    (first_timestamp, _), *_ = gafka_log.dump.file(first.with_suffix(".timeindex")).time_index_entries
    problems = gafka_log.dump.index_problems
    assert problems[str(tampered / first.with_suffix(".index").name)] == [
        "Mismatches",
        f"Index offset: {entries[1][0]}, log offset: {entries[0][0]}",
    ]
    assert problems[str(tampered / first.with_suffix(".timeindex").name)] == [
        "Found timestamp mismatch",
        f"Index timestamp: {first_timestamp + 1}, log timestamp: {first_timestamp}",
    ]


def test_kafka_index_sanity_check_passes_on_gafka_indexes(gafka_log: GafkaLog) -> None:
    for path, dumped in gafka_log.sanity.files.items():
        assert dumped.notes in ([f"{path} passed sanity check."], [f"{path} is empty."]), dumped.notes
    assert gafka_log.sanity.stderr.strip() == ""


def test_gafka_segments_have_kafka_file_set(gafka_log: GafkaLog) -> None:
    """Kafka expects every ``.log`` to have its ``.index`` and ``.timeindex``, even empty: after a clean
    shutdown a missing ``.index`` makes UnifiedLog log an error and rebuild the segment, and
    DumpLogSegments crashes on the ``.timeindex`` ("Invalid max index size: -1")."""
    for log in iter_log_files(gafka_log.directory):
        for suffix in INDEX_SUFFIXES:
            assert log.with_suffix(suffix).exists(), f"{log.with_suffix(suffix).name} is missing"


def test_kafka_opens_gafka_log_after_clean_shutdown(gafka_log: GafkaLog) -> None:
    answer = gafka_log.kafka_clean
    total = sum(len(spec.records) for spec in gafka_log.specs)
    assert (answer["log_start_offset"], answer["log_end_offset"]) == (0, total)
    assert [s["base_offset"] for s in answer["segments"]] == [
        int(path.stem) for path in iter_log_files(gafka_log.directory)
    ]
    assert kafka_records(answer) == expected_records(gafka_log.specs)
    # Kafka's offset index lookups (translateOffset) over gafka's .index land on the right batch...
    for segment in answer["segments"]:
        for offset, position in segment["offset_lookups"]:
            assert position == expected_position(gafka_log.directory, offset), f"offset {offset}"
    # ...and its time index lookups over gafka's .timeindex find the first record at that timestamp.
    offset_of_timestamp = {record.timestamp: record.offset for record in expected_records(gafka_log.specs)}
    for segment in answer["segments"]:
        for timestamp, offset in segment["timestamp_lookups"]:
            assert offset == offset_of_timestamp[timestamp], f"timestamp {timestamp}"
    # Kafka used gafka's indexes as they were: nothing rewritten.
    assert index_files(gafka_log.clean_copy) == gafka_log.indexes


def test_kafka_recovery_rebuilds_gafka_indexes_byte_for_byte(gafka_log: GafkaLog) -> None:
    answer = gafka_log.kafka_recovered
    assert answer["log_end_offset"] == sum(len(spec.records) for spec in gafka_log.specs)
    assert kafka_records(answer) == expected_records(gafka_log.specs)
    assert index_files(gafka_log.recovered_copy) == gafka_log.indexes


# --------------------------------------------------------------------------------------------------
# Kafka -> gafka


@dataclass
class KafkaLog:
    directory: Path
    specs: list[BatchSpec]
    indexes: dict[str, bytes]


@pytest.fixture(scope="module")
def kafka_log(kafka_tools: KafkaTools, tmp_path_factory: pytest.TempPathFactory) -> KafkaLog:
    directory = tmp_path_factory.mktemp("kafka-log") / "payments-3"
    specs = log_batches("kafka-partition-log")
    (answer,) = kafka_tools.write_logs([kafka_job(directory, batches=[spec.to_json() for spec in specs])])
    assert answer["log_end_offset"] == sum(len(spec.records) for spec in specs)
    return KafkaLog(directory, specs, index_files(directory))


def test_kafka_log_has_several_segments_with_index_entries(kafka_log: KafkaLog) -> None:
    assert len(list(iter_log_files(kafka_log.directory))) >= 5
    assert all(kafka_log.indexes[name] for name in kafka_log.indexes if name.endswith(".timeindex"))


@pytest.mark.parametrize("clean", [True, False], ids=["clean-shutdown", "recovery"])
def test_gafka_opens_kafka_log(kafka_log: KafkaLog, tmp_path: Path, clean: bool) -> None:
    directory = tmp_path / kafka_log.directory.name
    shutil.copytree(kafka_log.directory, directory)
    log = PartitionLog.open(directory, config(), clean=clean)
    try:
        expected = expected_records(kafka_log.specs)
        assert (log.log_start_offset, log.log_end_offset) == (0, len(expected))
        assert log.segment_count == len(list(iter_log_files(kafka_log.directory)))
        assert read_all(log) == expected
        # Every offset found through the index: the first batch returned is the one holding it.
        for spec, base in zip(kafka_log.specs, layout(kafka_log.specs), strict=True):
            for offset in (base, base + len(spec.records) - 1):
                data = log.read(offset, 1).data
                _, header = next(iter_batches(data))
                assert header.base_offset == base, f"offset {offset}"
            assert log.offset_for_timestamp(spec.max_timestamp) == (
                base + len(spec.records) - 1,
                spec.max_timestamp,
            )
    finally:
        log.close()
    # Clean: gafka used Kafka's index files untouched. Recovery: gafka rebuilt them, byte for byte Kafka's.
    assert index_files(directory) == kafka_log.indexes


# --------------------------------------------------------------------------------------------------
# The same log written by both: uncompressed batches leave nothing to chance, so every file must match.

HISTORICAL_MS = 978_307_200_000  # 2001-01-01: a replay of old data, far beyond segment.ms (7 days)


def same_batches(start_ms: int) -> list[BatchSpec]:
    """Uncompressed batches (compressors may differ bit for bit; the record layout may not)."""
    return [replace(spec, codec=Compression.NONE) for spec in log_batches("same", start_ms)]


@pytest.fixture(scope="module")
def written_by_both(kafka_tools: KafkaTools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """For each timestamp era, the directory Kafka wrote and the one gafka wrote from the same batches."""
    root = tmp_path_factory.mktemp("both")
    eras = {"recent": int(time.time() * 1000) - 3_600_000, "historical": HISTORICAL_MS}
    jobs = [
        kafka_job(root / f"kafka-{era}" / "t-0", batches=[spec.to_json() for spec in same_batches(start)])
        for era, start in eras.items()
    ]
    kafka_tools.write_logs(jobs)
    directories: dict[str, Path] = {}
    for era, start in eras.items():
        specs = same_batches(start)
        log = PartitionLog.open(root / f"gafka-{era}" / "t-0", config())
        for spec, base in zip(specs, layout(specs), strict=True):
            log.append_as_follower(spec.encode(base))  # one batch per append, as the Java writer does
        log.close()
        directories[f"kafka-{era}"] = root / f"kafka-{era}" / "t-0"
        directories[f"gafka-{era}"] = root / f"gafka-{era}" / "t-0"
    return directories


@pytest.mark.parametrize("era", ["recent", "historical"])
def test_kafka_and_gafka_write_identical_segment_files(written_by_both: dict[str, Path], era: str) -> None:
    """Same batches, same segment.bytes and index.interval.bytes: the same .log, .index and .timeindex
    files, byte for byte. With historical timestamps this also checks the time-based roll rule: Kafka
    compares the incoming batch's timestamp with the segment's first batch timestamp, not the wall clock."""
    kafka_dir, gafka_dir = written_by_both[f"kafka-{era}"], written_by_both[f"gafka-{era}"]
    kafka_segments = [path.name for path in iter_log_files(kafka_dir)]
    gafka_segments = [path.name for path in iter_log_files(gafka_dir)]
    assert gafka_segments == kafka_segments
    for name in kafka_segments:
        assert (gafka_dir / name).read_bytes() == (kafka_dir / name).read_bytes(), name
    assert index_files(gafka_dir) == index_files(kafka_dir)
