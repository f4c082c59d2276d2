"""Idempotent-producer state: duplicates, sequence gaps, epoch fencing, and rebuilding it from the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gafka.protocol.record_batch import BatchHeader, NewRecord, encode_batch, parse_header
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.partition import BrokerPartition, rebuild_state
from gafka_broker.replication.producer_state import ProducerStateError, ProducerStateManager
from gafka_broker.topic_config import TopicConfig

PID = 1000


def data(seq: int, count: int = 1, *, pid: int = PID, epoch: int = 0) -> bytes:
    return encode_batch(
        [NewRecord(None, f"{pid}-{epoch}-{seq + i}".encode()) for i in range(count)],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


def header(seq: int, count: int = 1, *, pid: int = PID, epoch: int = 0, offset: int = 0) -> BatchHeader:
    return parse_header(data(seq, count, pid=pid, epoch=epoch))._replace(base_offset=offset)


@pytest.fixture
def leader(tmp_path: Path) -> BrokerPartition:
    log = PartitionLog.open(tmp_path / "t-0", TopicConfig())
    return BrokerPartition(log, leader=0, replicas=(0,))


def test_duplicate_is_not_appended_and_gets_the_original_offsets(leader: BrokerPartition) -> None:
    leader.append(encode_batch([NewRecord(None, b"plain")]))  # no producer id: never deduplicated
    first = leader.append(data(0, 3))
    second = leader.append(data(3, 2))
    assert (first.base_offset, first.last_offset) == (1, 3)
    assert (second.base_offset, second.last_offset) == (4, 5)
    end = leader.log_end_offset
    again = leader.append(data(0, 3))
    assert (again.base_offset, again.last_offset, again.size) == (1, 3, 0)
    assert (leader.append(data(3, 2)).base_offset, leader.log_end_offset) == (4, end)
    assert leader.append(data(5, 1)).base_offset == end


def test_only_the_last_five_batches_are_remembered(leader: BrokerPartition) -> None:
    for seq in range(7):
        leader.append(data(seq))
    assert leader.append(data(2)).size == 0  # still retained
    with pytest.raises(ProducerStateError) as error:
        leader.append(data(1))  # forgotten: an old sequence is out of order
    assert error.value.code == "OUT_OF_ORDER_SEQUENCE_NUMBER"


def test_gap_is_out_of_order_and_writes_nothing(leader: BrokerPartition) -> None:
    leader.append(data(0, 2))
    with pytest.raises(ProducerStateError) as error:
        leader.append(data(3))
    assert error.value.code == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert leader.log_end_offset == 2
    assert leader.append(data(2)).base_offset == 2


def test_epochs_fence_older_producers(leader: BrokerPartition) -> None:
    leader.append(data(0, 2, epoch=1))
    with pytest.raises(ProducerStateError) as error:
        leader.append(data(2, epoch=0))
    assert error.value.code == "INVALID_PRODUCER_EPOCH"
    with pytest.raises(ProducerStateError) as error:
        leader.append(data(5, epoch=2))  # a new epoch starts at 0
    assert error.value.code == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert leader.append(data(0, epoch=2)).base_offset == 2
    with pytest.raises(ProducerStateError):
        leader.append(data(2, epoch=1))


def test_unknown_producer_may_start_anywhere_and_sequences_wrap(leader: BrokerPartition) -> None:
    top = (1 << 31) - 1
    leader.append(data(top - 1, 2))
    assert leader.append(data(0)).base_offset == 2


def test_a_request_mixing_duplicates_and_new_batches_is_refused(leader: BrokerPartition) -> None:
    leader.append(data(0))
    with pytest.raises(ProducerStateError):
        leader.append(data(0) + data(1))
    assert leader.append(data(1) + data(2)).record_count == 2


def test_state_follows_leadership_through_follower_appends(tmp_path: Path, leader: BrokerPartition) -> None:
    leader.append(data(0, 2))
    leader.append(data(2, 2, pid=7))
    follower = BrokerPartition(PartitionLog.open(tmp_path / "t-1", TopicConfig()), broker_id=1)
    follower.append_as_follower(leader.log.read(0, 1 << 20).data)
    follower.become_leader(1, replicas=(1,), isr=(1,), partition_epoch=1, now_ms=0)
    assert follower.append(data(0, 2)).size == 0  # the retry after a failover is recognised
    assert follower.append(data(2, 1)).base_offset == 4


def test_rebuilt_from_the_log(tmp_path: Path, leader: BrokerPartition) -> None:
    for seq in range(0, 12, 2):
        leader.append(data(seq, 2))
    leader.append(data(0, 1, pid=5, epoch=3))
    _cache, producers = rebuild_state(leader.log, None, clean=False)
    entry = producers.entry(PID)
    assert entry is not None
    assert [(b.first_seq, b.last_seq, b.first_offset) for b in entry.batches] == [
        (2, 3, 2),
        (4, 5, 4),
        (6, 7, 6),
        (8, 9, 8),
        (10, 11, 10),
    ]
    assert producers.entry(5) is not None and producers.entry(5).producer_epoch == 3  # type: ignore[union-attr]


def test_truncation_rebuilds_the_state(tmp_path: Path) -> None:
    follower = BrokerPartition(PartitionLog.open(tmp_path / "t-0", TopicConfig()), broker_id=1)
    offset = 0
    for seq in range(0, 6, 2):
        follower.append_as_follower(
            encode_batch(
                [NewRecord(None, b"v")] * 2, base_offset=offset, producer_id=PID, producer_epoch=0, base_sequence=seq
            )
        )
        offset += 2
    follower.truncate_to(4)
    follower.become_leader(1, replicas=(1,), isr=(1,), partition_epoch=1, now_ms=0)
    # the truncated batch (sequence 4..5) is new again, not a duplicate
    assert follower.append(data(4, 2)).size > 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["next", "retry", "gap", "old", "bump"]), st.integers(1, 3)), max_size=40))
def test_random_sends_match_a_model(actions: list[tuple[str, int]]) -> None:
    """A producer that sends, retries recent batches, skips sequences or bumps its epoch; against a model."""
    state = ProducerStateManager()
    epoch, next_seq, offset = 0, 0, 0
    sent: list[tuple[int, int, int, int]] = []  # (epoch, first_seq, count, first_offset), newest last
    for action, count in actions:
        if action == "retry" and sent:
            back = min(len(sent), count * 2)  # sometimes beyond the five remembered batches
            e, seq, n, first_offset = sent[-back]
            expected: object = ("dup", first_offset) if e == epoch and back <= 5 else "error"
            batch = header(seq, n, epoch=e)
        elif action == "gap":
            batch, expected = header(next_seq + 1, count, epoch=epoch), ("error" if sent else "ok")
        elif action == "old" and epoch > 0:
            batch, expected = header(next_seq, count, epoch=epoch - 1), "error"
        elif action == "bump":
            epoch, next_seq = epoch + 1, 0
            batch, expected = header(0, count, epoch=epoch), "ok"
        else:
            batch, expected = header(next_seq, count, epoch=epoch), "ok"
        try:
            duplicate = state.check([batch])
        except ProducerStateError:
            assert expected == "error", (action, expected)
            continue
        if duplicate is not None:
            assert expected == ("dup", duplicate[0].first_offset), (action, expected, duplicate)
            continue
        assert expected == "ok", (action, expected)
        state.update(batch._replace(base_offset=offset))
        sent.append((batch.producer_epoch, batch.base_sequence, batch.records_count, offset))
        if batch.producer_epoch == epoch:
            next_seq = batch.base_sequence + batch.records_count
        offset += batch.records_count
