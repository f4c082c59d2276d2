"""The log cleaner against a model of what compaction means, with crashes injected into the swap.

Model: the live view (last value per key, tombstoned keys absent) never changes by cleaning; every
record left is an original one at its original offset; below where the cleaner has mapped, each key
appears at most once; a tombstone lives at least ``delete.retention.ms`` after the first cleaning
that saw it, and is gone after a full cleaning past that.

Crash: the real cleaner runs with a hook that raises at a chosen step of a chosen group's swap; the
log is abandoned as a crash leaves it and reopened. The same cleaning without the crash, on a copy,
gives the cleaned records: the recovered log must lie between the two (cleaned records subset of
recovered subset of original) with the same live view.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .compaction import COMPACTED, T0, Entry, append_entries, live_view, log_entries

RETENTION = 1000
CONFIG = TopicConfig.from_configs({**COMPACTED.overrides, "delete.retention.ms": str(RETENTION)})
STEPS = ("index_swap_files", "committed", "old_segment_deleted", "index_files_renamed", "swapped")

keys = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"])
values = st.one_of(st.none(), st.binary(min_size=1, max_size=200))
batches = st.lists(st.tuples(keys, values), min_size=1, max_size=6)
appends = st.tuples(st.just("append"), batches)
operation = st.one_of(
    appends,
    appends,
    appends,
    st.tuples(st.just("roll"), st.none()),
    st.tuples(st.just("clean"), st.integers(min_value=0, max_value=3 * RETENTION)),
    st.tuples(st.just("crash"), st.tuples(st.integers(0, 1), st.sampled_from(STEPS), st.integers(0, 2 * RETENTION))),
)


class _CrashError(Exception):
    pass


def _open(data_dir: Path) -> tuple[LogManager, PartitionLog]:
    manager = LogManager(data_dir)
    manager.startup({"t": (1, CONFIG)})
    log = manager.get_log("t", 0)
    assert log is not None
    return manager, log


def _subset(small: list[Entry], big: list[Entry]) -> bool:
    return set(small) <= set(big)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25), map_entries=st.sampled_from([2, 5, 1000]))
def test_cleaner_keeps_the_model(operations: list[tuple[str, object]], map_entries: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="cleaner-model-"))
    try:
        _run(root, operations, map_entries)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(root: Path, operations: list[tuple[str, object]], map_entries: int) -> None:
    data_dir = root / "data"
    manager, log = _open(data_dir)
    originals: set[Entry] = set()
    first_seen: dict[int, int] = {}  # tombstone offset -> time of the first cleaning that mapped past it
    clock = T0
    for kind, argument in operations:
        if kind == "append":
            assert isinstance(argument, list)
            append_entries(log, argument, clock)
            originals |= set(log_entries(log))
            continue
        if kind == "roll":
            log.roll()
            continue
        before = log_entries(log)
        if kind == "clean":
            assert isinstance(argument, int)
            clock += argument
            result = LogCleaner(manager, max_map_entries=map_entries).clean_filthiest(clock)
            after = log_entries(log)
            _check_clean(before, after, originals)
            if result is not None:
                _check_tombstones(before, after, first_seen, clock, result.cleaning.first_uncleanable)
                _check_unique_keys(after, result.first_dirty_after)
            continue
        assert isinstance(argument, tuple)
        group, step, advance = argument
        clock += advance
        copy = root / f"copy-{clock}-{len(before)}"
        shutil.copytree(data_dir, copy)
        copy_manager, copy_log = _open(copy)
        finished = LogCleaner(copy_manager, max_map_entries=map_entries).clean_filthiest(clock)
        cleaned = log_entries(copy_log)
        if finished is not None:
            _check_tombstones(before, cleaned, first_seen, clock, finished.cleaning.first_uncleanable)
        copy_manager.shutdown()
        shutil.rmtree(copy)
        swaps = {"seen": 0}

        def crash(name: str, *, _group: int = group, _step: str = step, _swaps: dict[str, int] = swaps) -> None:
            current = _swaps["seen"]  # the group being swapped: one "swapped" step per finished group
            if name == "swapped":
                _swaps["seen"] += 1
            if current == _group and name == _step:
                raise _CrashError(name)

        crashed = False
        try:
            LogCleaner(manager, max_map_entries=map_entries).clean_filthiest(clock, swap_step=crash)
        except _CrashError:
            crashed = True
        if crashed:
            log.abandon()
            manager, log = _open(data_dir)
        recovered = log_entries(log)
        assert _subset(cleaned, recovered), "records of the finished cleaning are missing after the crash"
        assert _subset(recovered, before), "the recovered log holds records that were never there"
        assert live_view(recovered) == live_view(before)
        assert not [p.name for p in log.directory.iterdir() if p.name.endswith((".cleaned", ".swap", ".deleted"))]
    manager.shutdown()


def _check_clean(before: list[Entry], after: list[Entry], originals: set[Entry]) -> None:
    assert set(after) <= set(before) <= originals
    assert live_view(after) == live_view(before)
    assert [entry.offset for entry in after] == sorted({entry.offset for entry in after})


def _check_unique_keys(after: list[Entry], mapped_end: int) -> None:
    keys_below = [entry.key for entry in after if entry.offset < mapped_end]
    assert len(keys_below) == len(set(keys_below)), "a key appears twice in the cleaned section"


def _check_tombstones(
    before: list[Entry], after: list[Entry], first_seen: dict[int, int], now: int, cleaned_below: int
) -> None:
    """A tombstone that was the last of its key goes only ``delete.retention.ms`` after a cleaning first
    kept it (the model notes that time for every tombstone a cleaning kept below ``cleaned_below``)."""
    kept = {entry.offset for entry in after}
    latest: dict[bytes | None, int] = {}
    for entry in before:
        latest[entry.key] = entry.offset
    for entry in before:
        if entry.value is not None or entry.offset >= cleaned_below:
            continue
        seen = first_seen.get(entry.offset)
        if entry.offset not in kept and latest[entry.key] == entry.offset:
            # a tombstone that was still the last of its key went: its time must have come
            assert seen is not None and now >= seen + RETENTION, f"tombstone {entry.offset} removed too early"
        if entry.offset in kept and seen is None:
            first_seen[entry.offset] = now
