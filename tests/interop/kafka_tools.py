"""Run Apache Kafka's own code against gafka's files: DumpLogSegments and a small writer/reader in Java.

``scripts/kafka-tools`` fetches Kafka's jars from Maven Central into a cache outside the repo
(``${GAFKA_CACHE:-~/.cache/gafka}/kafka-<version>/libs``); the Java sources in ``java/`` are compiled
against them into the same cache, keyed by a hash of the sources, so a session compiles at most once.

Every call here starts one JVM (about 0.3-1 s), so callers put all their files or jobs into one call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "DUMP_LOG_SEGMENTS",
    "DumpOutput",
    "DumpedBatch",
    "DumpedFile",
    "DumpedRecord",
    "KafkaTools",
    "KafkaToolsError",
    "b64",
    "fetch_kafka_libs",
    "iter_log_files",
    "kafka_libs",
    "kafka_tools",
    "unb64",
]

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "scripts" / "kafka-tools"
JAVA_SOURCES = Path(__file__).resolve().parent / "java"
DUMP_LOG_SEGMENTS = "org.apache.kafka.tools.DumpLogSegments"
WRITER_MAIN = "gafka.interop.KafkaSegmentWriter"
BASE64_DECODER = "gafka.interop.Base64Decoder"
CLEANER_MAIN = "gafka.interop.KafkaLogCleaner"
JVM_OPTIONS = (
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Dfile.encoding=UTF-8",
    "-Dsun.stdout.encoding=UTF-8",
    "-Dsun.stderr.encoding=UTF-8",
    "-Dstdout.encoding=UTF-8",
    "-Dstderr.encoding=UTF-8",
)
"""Fast start for short runs (C1 only, serial collector) and UTF-8 output whatever the locale."""
JVM_TIMEOUT_S = 180


class KafkaToolsError(RuntimeError):
    """Fetching the jars, compiling the helpers or a Kafka tool run failed."""


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def fetch_kafka_libs() -> Path:
    """Run ``scripts/kafka-tools`` (a no-op once cached) and return Kafka's libs directory."""
    try:
        done = subprocess.run(
            ["bash", str(FETCH_SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaToolsError(f"{FETCH_SCRIPT} did not finish in {exc.timeout} s") from exc
    if done.returncode != 0:
        raise KafkaToolsError(f"{FETCH_SCRIPT} failed with exit code {done.returncode}:\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    libs = Path(lines[-1]) if lines else Path()
    if not lines or not libs.is_dir() or not any(libs.glob("kafka-clients-*.jar")):
        raise KafkaToolsError(f"{FETCH_SCRIPT} printed {done.stdout!r}, not a directory of Kafka jars")
    return libs


def _compile_helpers(libs: Path) -> Path:
    """Compile ``java/*.java`` against ``libs`` once per source hash; return the classes directory."""
    sources = sorted(JAVA_SOURCES.glob("*.java"))
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    classes = libs.parent / "interop-classes" / digest.hexdigest()[:16]
    if (classes / ".complete").is_file():
        return classes
    javac = shutil.which("javac")
    if javac is None:
        raise KafkaToolsError("java is installed but javac is not: the interop helpers need a JDK")
    classes.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="classes-", dir=classes.parent))
    try:
        done = subprocess.run(
            [
                javac,
                "-nowarn",
                "-encoding",
                "UTF-8",
                "-d",
                str(staging),
                "-cp",
                f"{libs}/*",
                *map(str, sources),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=JVM_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise KafkaToolsError(f"javac failed:\n{done.stdout}{done.stderr}")
        (staging / ".complete").touch()
        try:
            staging.rename(classes)
        except OSError:
            if not (classes / ".complete").is_file():  # not a concurrent compile that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return classes


@dataclass(frozen=True)
class DumpedRecord:
    """One ``| offset: ...`` line of DumpLogSegments (keys and values decoded from base64)."""

    offset: int
    timestamp_type: str
    timestamp: int
    key_size: int
    value_size: int
    sequence: int
    header_keys_text: str
    """The header keys as printed, joined by commas (``[a,b]`` -> ``a,b``): keys may hold commas."""
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DumpedBatch:
    """One ``baseOffset: ...`` line of DumpLogSegments, with its records under deep iteration."""

    base_offset: int
    last_offset: int
    count: int
    base_sequence: int
    last_sequence: int
    producer_id: int
    producer_epoch: int
    partition_leader_epoch: int
    is_transactional: bool
    is_control: bool
    position: int
    timestamp_type: str
    max_timestamp: int
    size: int
    magic: int
    codec: str
    crc: int
    is_valid: bool
    records: list[DumpedRecord] = field(default_factory=list)


@dataclass
class DumpedFile:
    """What DumpLogSegments printed under ``Dumping <path>``."""

    path: str
    batches: list[DumpedBatch] = field(default_factory=list)
    index_entries: list[tuple[int, int]] = field(default_factory=list)
    """``.index``: (offset, position) pairs."""
    time_index_entries: list[tuple[int, int]] = field(default_factory=list)
    """``.timeindex``: (timestamp, offset) pairs."""
    notes: list[str] = field(default_factory=list)
    """Any other line: ``passed sanity check``, ``is empty``, ``Found N invalid bytes at the end``..."""


@dataclass
class DumpOutput:
    """A parsed DumpLogSegments run; ``stderr`` carries its verdicts on indexes and offsets."""

    stdout: str
    stderr: str
    files: dict[str, DumpedFile]

    def file(self, path: Path | str) -> DumpedFile:
        return self.files[str(path)]

    @property
    def index_problems(self) -> dict[str, list[str]]:
        """DumpLogSegments' complaints about ``.index``/``.timeindex`` files, by absolute path (empty: none).

        Each list holds the complaint (``Mismatches``, ``Found timestamp mismatch``, ...) followed by its
        detail lines (``Index offset: 5, log offset: 3``, ...).
        """
        problems: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in self.stderr.splitlines():
            match = _INDEX_COMPLAINT.fullmatch(line)
            if match is not None:
                current = problems.setdefault(match.group("path"), [])
                current.append(match.group("what"))
            elif current is not None and line.strip().startswith(("Index ", "Indexed ")):
                current.append(line.strip())
            else:
                current = None
        return problems

    @property
    def offset_gaps(self) -> list[str]:
        """Non-consecutive offsets inside a ``.log``.

        DumpLogSegments counts from -1 in every file, so a segment whose first offset is N > 0 always
        reports ``-1 is followed by N``; that line is dropped here, any other gap is kept.
        """
        gaps: list[str] = []
        current = ""
        for line in self.stderr.splitlines():
            if line.startswith("Non-consecutive offsets in "):
                current = line.removeprefix("Non-consecutive offsets in ")
                continue
            match = re.fullmatch(r"\s+(-?\d+) is followed by (-?\d+)", line)
            if match and current:
                first = int(match.group(1))
                base = int(Path(current).name.split(".")[0])
                if first == -1 and int(match.group(2)) == base:
                    continue
                gaps.append(f"{current}: {line.strip()}")
        return gaps


_PAIR = re.compile(r"(\w+): (\S*)")
_INDEX_COMPLAINT = re.compile(
    r"(?P<what>Mismatches|Found timestamp mismatch|Found out of order timestamp"
    r"|The following indexed offsets are not found) in :(?P<path>.*)"
)
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime", "NoTimestampType")


def _fields(line: str) -> dict[str, str]:
    return dict(_PAIR.findall(line))


def _timestamp(fields: Mapping[str, str]) -> tuple[str, int]:
    for name in _TIMESTAMP_TYPES:
        if name in fields:
            return name, int(fields[name])
    raise KafkaToolsError(f"no timestamp in {fields}")


def _parse_batch(line: str) -> DumpedBatch:
    f = _fields(line)
    timestamp_type, max_timestamp = _timestamp(f)
    return DumpedBatch(
        base_offset=int(f["baseOffset"]),
        last_offset=int(f["lastOffset"]),
        count=int(f["count"]),
        base_sequence=int(f["baseSequence"]),
        last_sequence=int(f["lastSequence"]),
        producer_id=int(f["producerId"]),
        producer_epoch=int(f["producerEpoch"]),
        partition_leader_epoch=int(f["partitionLeaderEpoch"]),
        is_transactional=f["isTransactional"] == "true",
        is_control=f["isControl"] == "true",
        position=int(f["position"]),
        timestamp_type=timestamp_type,
        max_timestamp=max_timestamp,
        size=int(f["size"]),
        magic=int(f["magic"]),
        codec=f["compresscodec"],
        crc=int(f["crc"]),
        is_valid=f["isvalid"] == "true",
    )


_RECORD_LINE = re.compile(r"\| (?P<meta>.*?) headerKeys: \[(?P<keys>.*)\](?P<data>(?: key: \S*)?(?: payload: \S*)?)")


def _parse_record(line: str) -> DumpedRecord:
    # Header keys are printed raw and may contain anything but a line break, so they are cut out by
    # position: the metadata before them never contains "headerKeys: [", and the key and payload
    # after them are base64 (no "]"), so the last "]" followed by only those closes the list.
    match = _RECORD_LINE.fullmatch(line)
    if match is None:
        raise KafkaToolsError(f"unexpected record line: {line!r}")
    meta = _fields(match.group("meta"))
    data = _fields(match.group("data"))
    timestamp_type, timestamp = _timestamp(meta)
    return DumpedRecord(
        offset=int(meta["offset"]),
        timestamp_type=timestamp_type,
        timestamp=timestamp,
        key_size=int(meta["keySize"]),
        value_size=int(meta["valueSize"]),
        sequence=int(meta["sequence"]),
        header_keys_text=match.group("keys"),
        key=unb64(data["key"]) if "key" in data else None,
        value=unb64(data["payload"]) if "payload" in data else None,
    )


def parse_dump(stdout: str, stderr: str) -> DumpOutput:
    """Parse DumpLogSegments' stdout (run with the base64 decoders) into per-file structures."""
    files: dict[str, DumpedFile] = {}
    current: DumpedFile | None = None
    for line in stdout.splitlines():
        if line.startswith("Dumping "):
            path = line.removeprefix("Dumping ")
            current = files.setdefault(path, DumpedFile(path))
            continue
        if current is None or not line.strip():
            continue
        if line.startswith("baseOffset: "):
            current.batches.append(_parse_batch(line))
        elif line.startswith("| offset: "):
            if not current.batches:
                raise KafkaToolsError(f"record line before any batch: {line!r}")
            current.batches[-1].records.append(_parse_record(line))
        elif re.fullmatch(r"offset: \d+ position: \d+", line):
            f = _fields(line)
            current.index_entries.append((int(f["offset"]), int(f["position"])))
        elif re.fullmatch(r"timestamp: -?\d+ offset: \d+", line):
            f = _fields(line)
            current.time_index_entries.append((int(f["timestamp"]), int(f["offset"])))
        else:
            current.notes.append(line)
    return DumpOutput(stdout, stderr, files)


@dataclass(frozen=True)
class KafkaTools:
    """Kafka's jars plus gafka's compiled Java helpers."""

    libs: Path
    classes: Path

    @property
    def classpath(self) -> str:
        return f"{self.classes}{os.pathsep}{self.libs}/*"

    def run_java(self, main: str, args: Sequence[str] = (), *, stdin: str | None = None) -> tuple[str, str]:
        """Run ``main`` on Kafka's classpath; return (stdout, stderr); raise on a non-zero exit."""
        java = shutil.which("java")
        if java is None:
            raise KafkaToolsError("java is not on PATH")
        command = [java, *JVM_OPTIONS, "-cp", self.classpath, main, *args]
        try:
            done = subprocess.run(
                command,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=JVM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaToolsError(f"{main} did not finish in {exc.timeout} s") from exc
        if done.returncode != 0:
            raise KafkaToolsError(
                f"{main} exited with {done.returncode}\n"
                f"stdout (end):\n{done.stdout[-1500:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        return done.stdout, done.stderr

    def dump_log_segments(
        self,
        files: Iterable[Path | str],
        *,
        print_data: bool = True,
        verify_index_only: bool = False,
        index_sanity_check: bool = False,
    ) -> DumpOutput:
        """Run Kafka's ``DumpLogSegments`` over ``files`` (``.log``, ``.index``, ``.timeindex``) in one JVM.

        Keys and values are printed as base64 (``Base64Decoder``), so the parsed records carry exact bytes.
        """
        names = [str(path) for path in files]
        if not names:
            raise ValueError("no files to dump")
        if any("," in name for name in names):
            raise ValueError("DumpLogSegments takes a comma-separated list: paths must not contain commas")
        args = ["--files", ",".join(names)]
        if verify_index_only:
            args.append("--verify-index-only")
        elif index_sanity_check:
            args.append("--index-sanity-check")
        elif print_data:
            args += [
                "--deep-iteration",
                "--print-data-log",
                "--key-decoder-class",
                BASE64_DECODER,
                "--value-decoder-class",
                BASE64_DECODER,
            ]
        else:
            args.append("--deep-iteration")
        stdout, stderr = self.run_java(DUMP_LOG_SEGMENTS, args)
        return parse_dump(stdout, stderr)

    def write_logs(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Write partition directories with Kafka's ``UnifiedLog`` (see ``KafkaSegmentWriter.java``)."""
        stdout, _ = self.run_java(WRITER_MAIN, stdin=json.dumps({"command": "write", "jobs": list(jobs)}))
        answer: dict[str, Any] = json.loads(stdout)
        jobs_out: list[dict[str, Any]] = answer["jobs"]
        return jobs_out

    def open_logs(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Open existing partition directories with Kafka's ``UnifiedLog`` and report what Kafka sees.

        Each job: ``dir``, ``clean`` (True: load as after a clean shutdown, trusting the index files;
        False: recover every segment, rebuilding the indexes), ``segment_bytes``, ``index_interval_bytes``.
        """
        stdout, _ = self.run_java(WRITER_MAIN, stdin=json.dumps({"command": "open", "jobs": list(jobs)}))
        answer: dict[str, Any] = json.loads(stdout)
        jobs_out: list[dict[str, Any]] = answer["jobs"]
        return jobs_out

    def read_segments(self, files: Iterable[Path | str]) -> dict[str, list[dict[str, Any]]]:
        """Batches and records of each ``.log`` as Kafka's ``FileRecords`` reads them, headers included."""
        request = {"command": "read", "files": [str(path) for path in files]}
        stdout, _ = self.run_java(WRITER_MAIN, stdin=json.dumps(request))
        answer: dict[str, Any] = json.loads(stdout)
        return {entry["file"]: entry["batches"] for entry in answer["files"]}

    def clean_logs(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Clean partition directories with Kafka's own ``Cleaner`` (see ``KafkaLogCleaner.java``)."""
        stdout, _ = self.run_java(CLEANER_MAIN, stdin=json.dumps({"jobs": list(jobs)}))
        answer: dict[str, Any] = json.loads(stdout)
        jobs_out: list[dict[str, Any]] = answer["jobs"]
        return jobs_out


def iter_log_files(directory: Path) -> Iterator[Path]:
    """The ``.log`` segments of a partition directory in offset order."""
    yield from sorted(directory.glob("*.log"))


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """Kafka's libs directory; skips only when java is missing, fails when the fetch fails."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed: the Kafka interop tests run Apache Kafka's own jars on a JVM")
    try:
        return fetch_kafka_libs()
    except KafkaToolsError as exc:
        pytest.fail(f"could not fetch Apache Kafka's jars with scripts/kafka-tools: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_tools(kafka_libs: Path) -> KafkaTools:
    """Kafka's jars with the compiled Java helpers of ``tests/interop/java``."""
    try:
        return KafkaTools(kafka_libs, _compile_helpers(kafka_libs))
    except KafkaToolsError as exc:
        pytest.fail(f"could not compile the Kafka interop helpers: {exc}", pytrace=False)
