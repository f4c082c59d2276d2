"""Property-based tests of the partition log against a simple in-memory model, and of crash recovery.

Crash model: a process crash keeps what reached the page cache, an OS crash or power loss may tear the
unflushed tail. We simulate both by abandoning the log (no flush, no seal, no marker) and then cutting or
damaging bytes at or after what the last fsync covered.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gafka.protocol.record_batch import iter_batches
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .conftest import batch, read_all

CONFIG = TopicConfig.from_configs({"segment.bytes": 1024, "index.interval.bytes": 128})
NOW = int(time.time() * 1000)


@dataclass
class Model:
    """The log as a list of batches of values; offsets are positions."""

    batches: list[tuple[int, list[bytes]]] = field(default_factory=list)  # (base offset, values)
    start: int = 0
    end: int = 0

    def append(self, values: list[bytes]) -> None:
        self.batches.append((self.end, values))
        self.end += len(values)

    def truncate(self, offset: int, *, reset: bool) -> None:
        """Remove every batch whose last offset is >= ``offset`` (whole batches, as the log does);
        ``reset`` when the offset is at or below the first segment: the log then restarts empty there."""
        if reset:
            self.batches, self.start, self.end = [], offset, offset
            return
        removed = [base for base, values in self.batches if base + len(values) - 1 >= offset]
        self.batches = [(base, values) for base, values in self.batches if base + len(values) - 1 < offset]
        self.end = removed[0]
        self.start = min(self.start, self.end)

    def records(self) -> list[tuple[int, bytes]]:
        return [
            (base + index, value)
            for base, values in self.batches
            for index, value in enumerate(values)
            if base + index >= self.start
        ]


values_strategy = st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=6)


class LogMachine(RuleBasedStateMachine):
    """Random appends, rolls, truncations, deletions, retention and restarts agree with :class:`Model`."""

    def __init__(self) -> None:
        super().__init__()
        self.workdir = Path(tempfile.mkdtemp(prefix="gafka-model-"))
        self.directory = self.workdir / "model-0"
        self.model = Model()
        self.log = PartitionLog.open(self.directory, CONFIG)

    @initialize()
    def start(self) -> None:
        self.log.append_as_leader(batch([b"first"], timestamp=NOW))
        self.model.append([b"first"])

    @rule(values=values_strategy)
    def append(self, values: list[bytes]) -> None:
        result = self.log.append_as_leader(batch(values, timestamp=NOW))
        assert result.base_offset == self.model.end
        self.model.append(values)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=self.model.start, max_value=self.model.end))
        reset = offset <= self.log.segments[0].base_offset
        self.log.truncate_to(offset)
        if offset < self.model.end:
            self.model.truncate(offset, reset=reset)

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=self.model.start, max_value=self.model.end))
        self.log.delete_records_before(offset)
        self.model.start = max(self.model.start, offset)

    @rule(limit=st.integers(min_value=0, max_value=3000))
    def retention_by_bytes(self, limit: int) -> None:
        self.log.config = TopicConfig.from_configs({"retention.bytes": limit}, base=CONFIG)
        self.log.apply_retention(NOW)
        self.log.config = CONFIG
        active_base = self.log.segments[-1].base_offset
        assert self.log.log_start_offset <= max(active_base, self.model.start)
        assert self.log.size_bytes >= min(limit, sum(segment.size for segment in self.log.segments))
        self.model.start = max(self.model.start, self.log.log_start_offset)

    @rule()
    def restart_clean(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.directory, CONFIG, clean=True, log_start_offset=self.log.log_start_offset)

    @rule(flush=st.booleans())
    def restart_after_crash(self, flush: bool) -> None:
        if flush:
            self.log.flush()
        recovery_point, start = self.log.recovery_point, self.log.log_start_offset
        self.log.abandon()
        self.log = PartitionLog.open(self.directory, CONFIG, recovery_point=recovery_point, log_start_offset=start)

    @precondition(lambda self: self.model.end > self.model.start)
    @rule(data=st.data())
    def read_from_anywhere(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=self.model.start, max_value=self.model.end - 1))
        expected = [record for record in self.model.records() if record[0] >= offset]
        assert [(record.offset, record.value) for record in read_all(self.log, offset)] == expected

    @invariant()
    def agrees_with_model(self) -> None:
        assert self.log.log_end_offset == self.model.end
        assert self.log.log_start_offset == self.model.start
        assert [(record.offset, record.value) for record in read_all(self.log)] == self.model.records()
        assert self.log.size_bytes == sum(path.stat().st_size for path in self.directory.glob("*.log"))

    def teardown(self) -> None:
        self.log.abandon()
        shutil.rmtree(self.workdir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLogAgainstModel = LogMachine.TestCase


# -- crash recovery ----------------------------------------------------------------------------------


def _build(
    directory: Path, batches: list[list[bytes]], flushed: int
) -> tuple[PartitionLog, list[tuple[int, int, int]]]:
    """Append ``batches``, fsync after the first ``flushed`` of them, then crash; return the batch map
    as ``(segment base, position, size)`` per batch in order."""
    log = PartitionLog.open(directory, CONFIG)
    for index, values in enumerate(batches):
        if index == flushed:
            log.flush()
        log.append_as_leader(batch(values, timestamp=NOW))
    if flushed >= len(batches):
        log.flush()
    layout = [
        (segment.base_offset, position, header.size)
        for segment in log.segments
        for position, header in iter_batches(segment.log_path.read_bytes())
    ]
    log.abandon()
    return log, layout


def _expected(batches: list[list[bytes]], surviving: int) -> list[tuple[int, bytes]]:
    records: list[tuple[int, bytes]] = []
    for values in batches[:surviving]:
        records.extend((len(records), value) for value in values)
    return records


batches_strategy = st.lists(values_strategy, min_size=1, max_size=40)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches_strategy, data=st.data())
def test_torn_tail_keeps_exactly_the_valid_prefix(tmp_path_factory, batches: list[list[bytes]], data) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("torn") / "torn-0"
    flushed = data.draw(st.integers(min_value=0, max_value=len(batches)), label="flushed batches")
    crashed, layout = _build(directory, batches, flushed)
    unflushed = layout[flushed:]
    assume(unflushed)
    # the crash cuts somewhere inside the unflushed part of the segment holding the first unflushed batch
    victim = data.draw(st.integers(min_value=0, max_value=len(unflushed) - 1), label="victim batch")
    base, position, size = unflushed[victim]
    cut = data.draw(st.integers(min_value=position, max_value=position + size - 1), label="cut")
    segment_file = directory / f"{base:020d}.log"
    with segment_file.open("r+b") as handle:
        handle.truncate(cut)
    for later_base in {entry[0] for entry in layout if entry[0] > base}:  # later segments vanish too
        (directory / f"{later_base:020d}.log").unlink(missing_ok=True)
    survivors = flushed + victim
    log = PartitionLog.open(directory, CONFIG, recovery_point=crashed.recovery_point)
    assert [(record.offset, record.value) for record in read_all(log)] == _expected(batches, survivors)
    log.append_as_leader(batch([b"after"], timestamp=NOW))
    log.close()
    again = PartitionLog.open(directory, CONFIG, clean=True)
    assert [record.value for record in read_all(again)][-1] == b"after"
    again.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches_strategy, data=st.data())
def test_flipped_bit_keeps_exactly_the_valid_prefix(tmp_path_factory, batches: list[list[bytes]], data) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("flip") / "flip-0"
    flushed = data.draw(st.integers(min_value=0, max_value=len(batches) - 1), label="flushed batches")
    crashed, layout = _build(directory, batches, flushed)
    victim = data.draw(st.integers(min_value=flushed, max_value=len(layout) - 1), label="victim batch")
    base, position, size = layout[victim]
    # partitionLeaderEpoch (bytes 12-15) is outside the CRC in Kafka's format, so a flip there is
    # undetectable by design; every other byte of a batch is covered by the CRC or by offset continuity
    byte = data.draw(
        st.integers(min_value=0, max_value=size - 1).filter(lambda b: not 12 <= b < 16), label="byte in batch"
    )
    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    segment_file = directory / f"{base:020d}.log"
    content = bytearray(segment_file.read_bytes())
    content[position + byte] ^= 1 << bit
    segment_file.write_bytes(content)
    log = PartitionLog.open(directory, CONFIG, recovery_point=crashed.recovery_point)
    assert [(record.offset, record.value) for record in read_all(log)] == _expected(batches, victim)
    assert log.log_end_offset == sum(len(values) for values in batches[:victim])
    # the damaged segment was cut and every later segment deleted
    assert [segment.base_offset for segment in log.segments] == sorted({entry[0] for entry in layout[:victim]} | {base})
    log.close()


def test_fsynced_batches_survive_any_damage_after_them(tmp_path: Path) -> None:
    batches = [[b"v%03d" % index] * 3 for index in range(60)]
    directory = tmp_path / "durable-0"
    crashed, layout = _build(directory, batches, flushed=40)
    base, position, _ = layout[40]
    segment_file = directory / f"{base:020d}.log"
    content = bytearray(segment_file.read_bytes())
    content[position:] = b"\x00" * (len(content) - position)  # garbage after the fsync point
    segment_file.write_bytes(content)
    log = PartitionLog.open(directory, CONFIG, recovery_point=crashed.recovery_point)
    assert log.log_end_offset == 120
    assert [(record.offset, record.value) for record in read_all(log)] == _expected(batches, 40)


def test_recovery_of_thousands_of_batches_across_many_segments(tmp_path: Path) -> None:
    directory = tmp_path / "big-0"
    config = TopicConfig.from_configs({"segment.bytes": 8 * 1024, "index.interval.bytes": 1024})
    log = PartitionLog.open(directory, config)
    for index in range(5000):
        log.append_as_leader(batch([b"%05d" % index, b"x" * 40], timestamp=NOW + index))
    expected = read_all(log, max_bytes=1 << 20)
    segments = log.segment_count
    assert segments > 50
    log.abandon()  # no checkpoint, no marker: everything is scanned
    recovered = PartitionLog.open(directory, config)
    assert recovered.segment_count == segments
    assert read_all(recovered, max_bytes=1 << 20) == expected
    for offset in (0, 4999, 7777, 9999):
        assert recovered.read(offset, 1).data
    assert recovered.offset_for_timestamp(NOW + 2500) == (5000, NOW + 2500)
    recovered.close()
