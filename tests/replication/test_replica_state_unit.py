"""The leader's view of its followers: caught-up time, high watermark, ISR shrink and expand (pure rules)."""

from __future__ import annotations

from pathlib import Path

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.partition import BrokerPartition
from gafka_broker.replication.replica_state import (
    UNKNOWN_OFFSET,
    ReplicaState,
    eligible_to_join,
    high_watermark,
    out_of_sync,
)
from gafka_broker.topic_config import TopicConfig

LAG = 10_000


def test_caught_up_time_follows_kafka() -> None:
    state = ReplicaState(2)
    state.reset(now_ms=1000, leader_leo=50, in_isr=True)
    assert state.log_end_offset == UNKNOWN_OFFSET
    assert state.last_caught_up_ms == 1000
    state.record_fetch(50, leader_leo=50, now_ms=2000)  # reached the leader's end: caught up now
    assert state.last_caught_up_ms == 2000
    state.record_fetch(55, leader_leo=80, now_ms=3000)  # passed the end as of the previous fetch (50)
    assert state.last_caught_up_ms == 2000
    state.record_fetch(80, leader_leo=90, now_ms=4000)  # reached 80, the leader's end at the fetch before
    assert state.last_caught_up_ms == 3000
    state.record_fetch(85, leader_leo=100, now_ms=5000)  # still short of 90: no credit
    assert state.last_caught_up_ms == 3000
    assert state.is_caught_up(100, now_ms=3000 + LAG, max_lag_ms=LAG)
    assert not state.is_caught_up(100, now_ms=3001 + LAG, max_lag_ms=LAG)
    assert state.is_caught_up(85, now_ms=10**9, max_lag_ms=LAG)  # at the end right now


def test_out_of_sync_replicas() -> None:
    a, b = ReplicaState(2), ReplicaState(3)
    a.reset(0, 10, in_isr=True)
    b.reset(0, 10, in_isr=True)
    a.record_fetch(10, 10, 5000)
    assert out_of_sync((1, 2, 3), 1, {2: a, 3: b}, 10, LAG, LAG) == []
    assert out_of_sync((1, 2, 3), 1, {2: a, 3: b}, 10, LAG + 1, LAG) == [3]
    assert out_of_sync((1, 2, 3), 1, {2: a}, 10, 0, LAG) == [3]  # an ISR member we know nothing of


def test_high_watermark_is_the_smallest_isr_end_and_waits_for_min_isr() -> None:
    a, b = ReplicaState(2), ReplicaState(3)
    for state in (a, b):
        state.reset(0, 100, in_isr=True)
    followers = {2: a, 3: b}
    # the followers' log end offsets are not known yet
    assert high_watermark(40, 1, 100, (1, 2, 3), followers, min_isr=1, now_ms=0, max_lag_ms=LAG) == 40
    a.record_fetch(90, 100, 0)
    b.record_fetch(70, 100, 0)
    assert high_watermark(40, 1, 100, (1, 2, 3), followers, min_isr=2, now_ms=0, max_lag_ms=LAG) == 70
    assert high_watermark(40, 1, 100, (1, 2), followers, min_isr=2, now_ms=0, max_lag_ms=LAG) == 90
    assert high_watermark(40, 1, 100, (1,), followers, min_isr=2, now_ms=0, max_lag_ms=LAG) == 40  # ISR too small
    assert high_watermark(95, 1, 100, (1, 2), followers, min_isr=1, now_ms=0, max_lag_ms=LAG) == 95  # never backwards
    # A caught-up follower about to join holds the high watermark for itself.
    b.record_fetch(100, 100, 0)
    b.record_fetch(80, 120, 1)
    assert high_watermark(40, 1, 120, (1, 2), {2: a, 3: b}, min_isr=1, eligible={3}, now_ms=0, max_lag_ms=LAG) == 80
    assert high_watermark(40, 1, 120, (1, 2), {2: a, 3: b}, min_isr=1, eligible=(), now_ms=0, max_lag_ms=LAG) == 90


def test_eligible_to_join_needs_the_high_watermark_and_the_epoch_start() -> None:
    state = ReplicaState(2)
    state.record_fetch(50, 60, 0)
    assert eligible_to_join(state, 50, 40)
    assert not eligible_to_join(state, 51, 40)
    assert not eligible_to_join(state, 50, 55)


def test_leader_partition_commits_when_the_isr_has_fetched(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", TopicConfig.from_configs({"min.insync.replicas": 2}))
    leader = BrokerPartition(log, broker_id=1, max_lag_ms=LAG)
    leader.live_brokers = frozenset({1, 2, 3})
    leader.become_leader(4, replicas=(1, 2, 3), isr=(1, 2, 3), partition_epoch=7, now_ms=0)
    leader.append(encode_batch([NewRecord(None, b"v")] * 5))
    assert leader.high_watermark == 0
    leader.record_follower_fetch(2, 5, now_ms=1)
    assert leader.high_watermark == 0  # broker 3 has not fetched
    leader.record_follower_fetch(3, 3, now_ms=1)
    assert leader.high_watermark == 3
    leader.set_isr((1, 2), 8, now_ms=2)
    assert leader.high_watermark == 3  # broker 3 is still caught up and may rejoin: it holds it back
    leader.set_isr((1, 2), 8, now_ms=LAG + 10)
    assert leader.high_watermark == 5  # lagging for longer than the lag time: no longer waited for
    leader.set_isr((1,), 9, now_ms=LAG + 11)
    leader.append(encode_batch([NewRecord(None, b"w")]))
    assert leader.high_watermark == 5  # below min.insync.replicas nothing more is committed
    assert leader.should_expand_isr(2)
    leader.record_follower_fetch(3, 4, now_ms=LAG + 12)
    assert not leader.should_expand_isr(3)  # behind the high watermark
    assert leader.out_of_sync_replicas(now_ms=LAG + 13) == []
