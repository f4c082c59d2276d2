"""The leader-epoch cache: assignment, truncation, Kafka's endOffsetFor, the checkpoint file and rebuilding."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.partition import BrokerPartition, rebuild_state
from gafka_broker.replication.epoch_cache import CHECKPOINT_FILE, EpochEntry, LeaderEpochCache
from gafka_broker.topic_config import TopicConfig


def cache_of(*entries: tuple[int, int]) -> LeaderEpochCache:
    return LeaderEpochCache(None, [EpochEntry(*entry) for entry in entries])


def test_assign_keeps_epochs_and_offsets_increasing() -> None:
    cache = LeaderEpochCache()
    assert cache.latest_epoch == -1
    assert cache.assign(0, 0)
    assert not cache.assign(0, 5)  # same epoch, later offset: nothing new
    assert cache.assign(2, 10)
    assert not cache.assign(-1, 12)  # batches without an epoch are not tracked
    assert cache.entries == [(0, 0), (2, 10)]
    # A smaller start for the latest epoch, or an older epoch, replaces what contradicts it.
    assert cache.assign(2, 8)
    assert cache.entries == [(0, 0), (2, 8)]
    assert cache.assign(1, 6)
    assert cache.entries == [(0, 0), (1, 6)]


def test_truncation_from_both_ends() -> None:
    cache = cache_of((0, 0), (2, 10), (5, 20))
    cache.truncate_from_end(20)
    assert cache.entries == [(0, 0), (2, 10)]
    cache.truncate_from_end(11)
    assert cache.entries == [(0, 0), (2, 10)]
    cache = cache_of((0, 0), (2, 10), (5, 20))
    cache.truncate_from_start(15)
    assert cache.entries == [(2, 15), (5, 20)]
    cache.truncate_from_start(3)
    assert cache.entries == [(2, 15), (5, 20)]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (5, (5, 42)),  # the latest epoch ends at the log end offset
        (2, (2, 20)),  # ends where the next known epoch starts
        (3, (2, 20)),  # unknown epoch between two known ones: the largest epoch below it
        (4, (2, 20)),
        (0, (0, 10)),
        (-1, (-1, -1)),  # undefined
        (9, (-1, -1)),  # larger than any known
    ],
)
def test_end_offset_for(requested: int, expected: tuple[int, int]) -> None:
    cache = cache_of((0, 0), (2, 10), (5, 20))
    assert tuple(cache.end_offset_for(requested, 42)) == expected


def test_end_offset_for_epoch_below_every_known_one() -> None:
    assert tuple(cache_of((3, 10), (4, 20)).end_offset_for(1, 30)) == (1, 10)
    assert tuple(LeaderEpochCache().end_offset_for(1, 30)) == (-1, -1)


def test_checkpoint_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    cache = LeaderEpochCache(path)
    cache.assign(0, 0)
    cache.assign(3, 1200)
    assert path.read_text() == "0\n2\n0 0\n3 1200\n"  # Kafka's LeaderEpochCheckpointFile
    loaded = LeaderEpochCache.load(path)
    assert loaded is not None
    assert loaded.entries == [(0, 0), (3, 1200)]
    cache.truncate_from_end(1200)
    assert LeaderEpochCache.load(path) is not None
    assert LeaderEpochCache.load(path).entries == [(0, 0)]  # type: ignore[union-attr]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("content", ["", "1\n0\n", "0\n2\n0 0\n", "0\n1\nx y\n", "0\n2\n3 10\n2 20\n"])
def test_unreadable_checkpoint_reads_as_missing(tmp_path: Path, content: str) -> None:
    path = tmp_path / CHECKPOINT_FILE
    path.write_text(content)
    assert LeaderEpochCache.load(path) is None
    assert LeaderEpochCache.load(tmp_path / "absent") is None


def _log(tmp_path: Path) -> PartitionLog:
    return PartitionLog.open(tmp_path / "t-0", TopicConfig.from_configs({"segment.bytes": 2048}))


def _append(log: PartitionLog, epoch: int, count: int) -> None:
    log.append_as_leader(encode_batch([NewRecord(None, b"x" * 300) for _ in range(count)]), leader_epoch=epoch)


def test_rebuild_from_the_log_when_the_checkpoint_is_missing(tmp_path: Path) -> None:
    log = _log(tmp_path)
    for epoch, count in [(0, 3), (0, 2), (2, 4), (7, 1), (7, 5)]:
        _append(log, epoch, count)
    assert log.segment_count > 1
    cache, producers = rebuild_state(log, None, clean=True)
    assert cache.entries == [(0, 0), (2, 5), (7, 9)]
    assert len(producers) == 0
    assert LeaderEpochCache.load(log.directory / CHECKPOINT_FILE).entries == cache.entries  # type: ignore[union-attr]


def test_unclean_start_rebuilds_the_tail_past_the_recovery_point(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _append(log, 0, 3)
    log.flush()  # recovery point 3
    _append(log, 4, 2)
    stale = LeaderEpochCache(log.directory / CHECKPOINT_FILE, [EpochEntry(0, 0), EpochEntry(9, 50)])
    cache, _ = rebuild_state(log, stale, clean=False)
    assert cache.entries == [(0, 0), (4, 3)]


def test_partition_keeps_the_cache_in_step_with_appends_and_truncation(tmp_path: Path) -> None:
    log = _log(tmp_path)
    cache = LeaderEpochCache(log.directory / CHECKPOINT_FILE)
    leader = BrokerPartition(log, leader=1, replicas=(1,), leader_epoch=3, epoch_cache=cache)
    assert cache.entries == [(3, 0)]  # assigned on election, before any append (KIP-279)
    leader.append(encode_batch([NewRecord(None, b"a")] * 4))
    follower_log = PartitionLog.open(tmp_path / "t-1", TopicConfig())
    follower = BrokerPartition(follower_log, broker_id=2)
    data = log.read(0, 1 << 20).data
    follower.append_as_follower(data)
    assert follower.epoch_cache.entries == [(3, 0)]
    follower.truncate_to(2)
    assert follower.log_end_offset == 0  # one batch of four records: truncation drops it whole
    assert follower.epoch_cache.entries == []


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 4)), max_size=30), st.integers(0, 60))
def test_end_offset_for_matches_a_model(appends: list[tuple[int, int]], cut: int) -> None:
    """Against a list of per-offset epochs: endOffsetFor(e) is where the first epoch > e starts."""
    cache = LeaderEpochCache()
    epochs: list[int] = []
    for epoch, count in sorted(appends):  # epochs only grow in a log
        cache.assign(epoch, len(epochs))
        epochs.extend([epoch] * count)
    end = len(epochs)
    cache.truncate_from_end(min(cut, end))
    epochs = epochs[: min(cut, end)]
    for requested in range(0, 8):
        got = cache.end_offset_for(requested, len(epochs))
        known = sorted(set(epochs))
        if not known or requested > known[-1]:
            expected = (requested, len(epochs)) if known and requested == known[-1] else (-1, -1)
        elif requested == known[-1]:
            expected = (requested, len(epochs))
        else:
            below = [e for e in known if e <= requested]
            next_start = next(i for i, e in enumerate(epochs) if e > requested)
            expected = ((below[-1] if below else requested), next_start)
        assert tuple(got) == expected, (epochs, requested)
