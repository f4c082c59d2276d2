"""gafka's on-disk format is Apache Kafka's, byte for byte, checked with Kafka's own code.

- gafka -> Kafka: batches from :func:`encode_batch`, written into ``00000000000000000000.log`` files, are
  read by Kafka's ``DumpLogSegments`` (the tool behind ``kafka-dump-log.sh``) and Kafka's ``FileRecords``:
  every offset, key, value, header, timestamp and producer field matches and the CRC is valid.
- Kafka -> gafka: partition directories written by Kafka's ``UnifiedLog``/``LogSegment``
  (``java/KafkaSegmentWriter.java``) decode in gafka (:func:`validate_batch` + :func:`decode_batch`), and
  re-encoding their records with gafka gives Kafka's bytes exactly (uncompressed) or exactly Kafka's
  records section once decompressed (compressed codecs, whose compressors may differ bit for bit).
- Random batches drawn by hypothesis, many per file, so each direction costs one or two JVM starts.

JVM runs are shared through module-scoped fixtures: the whole file starts six JVMs (and javac once).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gafka.protocol.compression import Compression
from gafka.protocol.record_batch import (
    CorruptRecordError,
    NewRecord,
    iter_batches,
    validate_batch,
)

from .kafka_tools import DumpOutput, KafkaTools
from .specs import (
    CODECS,
    FIRST_SEGMENT,
    NO_PRODUCER,
    BatchSpec,
    assert_gafka_reads,
    assert_kafka_dump_matches,
    assert_kafka_read_matches,
    assert_same_bytes_as_gafka,
    layout,
    sample_batches,
    split_by_segment,
    write_gafka_segment,
)

pytestmark = pytest.mark.kafka_tools

# --------------------------------------------------------------------------------------------------
# (a) gafka -> Kafka, hand-picked batches, every codec: one DumpLogSegments run and one FileRecords run


@dataclass
class GafkaWritten:
    segments: dict[Compression, tuple[Path, list[bytes]]]
    corrupted: Path
    dump: DumpOutput
    read: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def gafka_written(kafka_tools: KafkaTools, tmp_path_factory: pytest.TempPathFactory) -> GafkaWritten:
    root = tmp_path_factory.mktemp("gafka-written")
    segments = {codec: write_gafka_segment(root / f"{codec.name.lower()}-0", sample_batches(codec)) for codec in CODECS}
    # A copy of the uncompressed segment with one flipped bit in the second batch's last header value:
    # the layout still parses, only the CRC can tell.
    path, encoded = segments[Compression.NONE]
    damaged = bytearray(path.read_bytes())
    damaged[len(encoded[0]) + len(encoded[1]) - 10] ^= 0x40
    corrupted = root / "corrupted-0" / FIRST_SEGMENT
    corrupted.parent.mkdir()
    corrupted.write_bytes(damaged)
    logs = [path for path, _ in segments.values()]
    dump = kafka_tools.dump_log_segments([*logs, corrupted])
    read = kafka_tools.read_segments(logs)
    return GafkaWritten(segments, corrupted, dump, read)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_dump_log_segments_decodes_gafka_batches(gafka_written: GafkaWritten, codec: Compression) -> None:
    path, encoded = gafka_written.segments[codec]
    dumped = gafka_written.dump.file(path)
    assert dumped.notes == ["Log starting offset: 0"]
    assert_kafka_dump_matches(dumped, sample_batches(codec), encoded, 0)
    assert gafka_written.dump.offset_gaps == []


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_kafka_file_records_reads_gafka_headers(gafka_written: GafkaWritten, codec: Compression) -> None:
    path, _ = gafka_written.segments[codec]
    assert_kafka_read_matches(gafka_written.read[str(path)], sample_batches(codec), 0)


def test_kafka_and_gafka_both_reject_a_flipped_byte(gafka_written: GafkaWritten) -> None:
    dumped = gafka_written.dump.file(gafka_written.corrupted)
    assert [batch.is_valid for batch in dumped.batches] == [True, False, True, True, True, True]
    data = gafka_written.corrupted.read_bytes()
    positions = [position for position, _ in iter_batches(data)]
    validate_batch(data, positions[0])
    with pytest.raises(CorruptRecordError, match="CRC-32C mismatch"):
        validate_batch(data, positions[1])


# --------------------------------------------------------------------------------------------------
# (b) Kafka -> gafka: partition directories written by Kafka's UnifiedLog, every codec, one JVM run


@dataclass
class KafkaWritten:
    directories: dict[Compression, Path]
    answers: dict[Compression, dict[str, Any]]


KAFKA_SEGMENT_BYTES = 256 * 1024
"""Above the largest sample batch (Kafka refuses a batch bigger than a segment), small enough to roll."""


@pytest.fixture(scope="module")
def kafka_written(kafka_tools: KafkaTools, tmp_path_factory: pytest.TempPathFactory) -> KafkaWritten:
    root = tmp_path_factory.mktemp("kafka-written")
    directories = {codec: root / f"{codec.name.lower()}-0" for codec in CODECS}
    jobs = [
        {
            "dir": str(directories[codec]),
            "segment_bytes": KAFKA_SEGMENT_BYTES,
            "index_interval_bytes": 4096,
            "batches": [spec.to_json() for spec in sample_batches(codec)],
        }
        for codec in CODECS
    ]
    answers = kafka_tools.write_logs(jobs)
    return KafkaWritten(directories, dict(zip(CODECS, answers, strict=True)))


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_gafka_decodes_kafka_written_segments(kafka_written: KafkaWritten, codec: Compression) -> None:
    directory = kafka_written.directories[codec]
    specs = sample_batches(codec)
    answer = kafka_written.answers[codec]
    assert answer["log_end_offset"] == sum(len(spec.records) for spec in specs)
    segments = split_by_segment(directory, specs)
    assert sum(len(segment_specs) for _, segment_specs, _ in segments) == len(specs)
    assert {".log", ".index", ".timeindex"} <= {Path(name).suffix for name in answer["files"]}
    for path, segment_specs, start in segments:
        assert_gafka_reads(path.read_bytes(), segment_specs, start)
        # Kafka read back what it was asked to write (guards the Java helper itself).
        kafka_view = next(segment["batches"] for segment in answer["segments"] if segment["file"] == path.name)
        assert_kafka_read_matches(kafka_view, segment_specs, start)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_kafka_batches_are_gafka_batches_byte_for_byte(kafka_written: KafkaWritten, codec: Compression) -> None:
    for path, segment_specs, start in split_by_segment(kafka_written.directories[codec], sample_batches(codec)):
        data = path.read_bytes()
        walked = list(iter_batches(data))
        assert len(walked) == len(segment_specs)
        for (position, header), spec, base in zip(walked, segment_specs, layout(segment_specs, start), strict=True):
            assert_same_bytes_as_gafka(data[position : position + header.size], spec, base)


# --------------------------------------------------------------------------------------------------
# (c) random batches drawn by hypothesis, hundreds per file, one JVM run per direction

_HEADER_KEY = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
    max_size=12,
)
_BYTES = st.binary(max_size=300) | st.binary(min_size=1000, max_size=9000)
_TIMESTAMP = st.integers(min_value=0, max_value=2**45)
_RECORD = st.builds(
    NewRecord,
    key=st.none() | st.binary(max_size=64),
    value=st.none() | _BYTES,
    headers=st.lists(st.tuples(_HEADER_KEY, st.none() | st.binary(max_size=40)), max_size=4),
    timestamp=_TIMESTAMP,
)
_PRODUCER = st.just(NO_PRODUCER) | st.tuples(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**15 - 1),
    st.integers(min_value=0, max_value=2**31 - 1),
)


@st.composite
def batch_specs(draw: st.DrawFn) -> BatchSpec:
    producer = draw(_PRODUCER)
    return BatchSpec(
        records=tuple(draw(st.lists(_RECORD, min_size=1, max_size=25))),
        codec=draw(st.sampled_from(CODECS)),
        producer=producer,
        partition_leader_epoch=draw(st.integers(min_value=-1, max_value=2**31 - 1)),
        is_transactional=producer != NO_PRODUCER and draw(st.booleans()),
        log_append_time=draw(st.none() | _TIMESTAMP),
    )


def draw_batches(count: int) -> list[BatchSpec]:
    """``count`` random batches from hypothesis' generator (no shrinking: the JVM checks them all at once)."""
    drawn: list[BatchSpec] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch_specs())
    def collect(spec: BatchSpec) -> None:
        drawn.append(spec)

    collect()
    return drawn


RANDOM_BATCHES = 300


def test_random_gafka_batches_read_by_kafka(kafka_tools: KafkaTools, tmp_path: Path) -> None:
    specs = draw_batches(RANDOM_BATCHES)
    first = random.randrange(0, 2**40)  # the segment is named after its first offset, as in a real log
    path, encoded = write_gafka_segment(tmp_path / "random-0", specs, first)
    dump = kafka_tools.dump_log_segments([path])
    assert_kafka_dump_matches(dump.file(path), specs, encoded, first)
    assert dump.offset_gaps == []
    assert_kafka_read_matches(kafka_tools.read_segments([path])[str(path)], specs, first)


def test_random_kafka_batches_read_by_gafka(kafka_tools: KafkaTools, tmp_path: Path) -> None:
    drawn = draw_batches(RANDOM_BATCHES)
    # A replica's log only takes leader epochs that never go down, and one producer's batches must keep
    # its epoch order: give each batch its own producer id and sort the epochs.
    epochs = sorted(max(spec.partition_leader_epoch, 0) for spec in drawn)
    specs = [
        replace(
            spec,
            partition_leader_epoch=epoch,
            producer=spec.producer if spec.producer == NO_PRODUCER else (index + 1, *spec.producer[1:]),
        )
        for index, (spec, epoch) in enumerate(zip(drawn, epochs, strict=True))
    ]
    directory = tmp_path / "random-0"
    (answer,) = kafka_tools.write_logs(
        [
            {
                "dir": str(directory),
                "segment_bytes": 1024 * 1024,
                "index_interval_bytes": 4096,
                "batches": [spec.to_json() for spec in specs],
            }
        ]
    )
    assert answer["log_end_offset"] == sum(len(spec.records) for spec in specs)
    for path, segment_specs, start in split_by_segment(directory, specs):
        assert_gafka_reads(path.read_bytes(), segment_specs, start)
        for (position, header), spec, base in zip(
            iter_batches(path.read_bytes()), segment_specs, layout(segment_specs, start), strict=True
        ):
            assert_same_bytes_as_gafka(path.read_bytes()[position : position + header.size], spec, base)


def test_the_comparison_catches_a_difference(gafka_written: GafkaWritten) -> None:
    """The checks above can fail: the same dump compared with slightly different batches does not pass."""
    specs = sample_batches(Compression.NONE)
    path, encoded = gafka_written.segments[Compression.NONE]
    dumped = gafka_written.dump.file(path)
    first = specs[0].records[0]
    other_value = [
        replace(specs[0], records=(first._replace(value=b"other"), *specs[0].records[1:])),
        *specs[1:],
    ]
    other_headers = [
        replace(specs[0], records=(first._replace(headers=[("x", b"1")]), *specs[0].records[1:])),
        *specs[1:],
    ]
    other_epoch = [replace(specs[0], partition_leader_epoch=4), *specs[1:]]
    for wrong in (other_value, other_headers, other_epoch):
        with pytest.raises(AssertionError):
            assert_kafka_dump_matches(dumped, wrong, encoded, 0)
    with pytest.raises(AssertionError):
        assert_kafka_read_matches(gafka_written.read[str(path)], other_headers, 0)


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD], ids=lambda codec: codec.name.lower())
def test_the_byte_comparison_catches_a_difference(kafka_written: KafkaWritten, codec: Compression) -> None:
    specs = sample_batches(codec)
    path, segment_specs, start = split_by_segment(kafka_written.directories[codec], specs)[0]
    data = path.read_bytes()
    position, header = next(iter_batches(data))
    kafka_batch = data[position : position + header.size]
    assert_same_bytes_as_gafka(kafka_batch, segment_specs[0], start)
    first = segment_specs[0].records[0]
    assert first.timestamp is not None
    later = replace(
        segment_specs[0],
        records=(first._replace(timestamp=first.timestamp + 1), *segment_specs[0].records[1:]),
    )
    with pytest.raises(AssertionError):
        assert_same_bytes_as_gafka(kafka_batch, later, start)
    with pytest.raises(AssertionError):
        assert_same_bytes_as_gafka(kafka_batch, replace(segment_specs[0], producer=(4242, 3, 1)), start)
