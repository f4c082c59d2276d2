"""Where a follower truncates (KIP-101/279), and the follower-fetch wire format."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.partition import BrokerPartition
from gafka_broker.replication.fetcher import truncation_offset
from gafka_broker.replication.leader import diverging_epoch
from gafka_broker.replication.protocol import (
    FetchPartition,
    FetchRequest,
    PartitionData,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from gafka_broker.topic_config import TopicConfig


def replica(tmp_path: Path, name: str, epochs: list[int]) -> BrokerPartition:
    """A replica whose log holds one one-record batch per entry of ``epochs`` (the batch's leader epoch)."""
    partition = BrokerPartition(PartitionLog.open(tmp_path / f"{name}-0", TopicConfig()), broker_id=9)
    for offset, epoch in enumerate(epochs):
        data = encode_batch([NewRecord(None, b"v")], base_offset=offset, partition_leader_epoch=epoch)
        partition.append_as_follower(data)
    return partition


def converge(leader: BrokerPartition, follower: BrokerPartition) -> int:
    """Fetch rounds until the leader finds no divergence; returns where the follower's log ends."""
    for _ in range(10):
        diverging = diverging_epoch(leader, follower.log_end_offset, follower.epoch_cache.latest_epoch)
        if diverging is None:
            return follower.log_end_offset
        follower.truncate_to(truncation_offset(follower, *diverging))
    raise AssertionError("no convergence")


def test_an_old_leaders_unreplicated_tail_is_cut(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader", [0] * 10 + [3] * 5)
    old = replica(tmp_path, "old", [0] * 12)  # offsets 10, 11 were written by it as leader and never replicated
    assert diverging_epoch(leader, 12, 0) == (0, 10)
    assert converge(leader, old) == 10


def test_an_epoch_led_without_writing_is_forgotten_when_following_again(tmp_path: Path) -> None:
    # Seen in gafka dev: a broker led briefly at epoch 2 (cache entry (2, 5)) without writing, then
    # followed again. The leader never had epoch 2 and reports epoch 0 ending at 5 = the follower's log
    # end: the truncation cuts no batch, but the epoch entry must still go, or the divergence repeats
    # forever and the follower drops out of the ISR.
    leader = replica(tmp_path, "leader", [0] * 5)
    leader.epoch_cache.assign(3, 5)
    follower = replica(tmp_path, "follower", [0] * 5)
    follower.epoch_cache.assign(2, 5)
    assert diverging_epoch(leader, 5, 2) == (0, 5)
    assert converge(leader, follower) == 5
    assert follower.epoch_cache.latest_epoch == 0


def test_a_follower_with_an_epoch_the_leader_never_had(tmp_path: Path) -> None:
    # KIP-279: two quick leader changes; the follower wrote in epoch 2, which the leader never saw.
    leader = replica(tmp_path, "leader", [0] * 5 + [1] * 5 + [4] * 3)
    follower = replica(tmp_path, "follower", [0] * 5 + [1] * 3 + [2] * 4)
    assert diverging_epoch(leader, 12, 2) == (1, 10)
    assert converge(leader, follower) == 8  # its epoch 1 ends at 8: nothing after that is the leader's


def test_no_truncation_by_the_high_watermark(tmp_path: Path) -> None:
    leader = replica(tmp_path, "leader", [0] * 10)
    follower = replica(tmp_path, "follower", [0] * 8)
    follower.update_follower_high_watermark(2)
    assert diverging_epoch(leader, 8, 0) is None
    assert converge(leader, follower) == 8  # everything up to its end is the leader's: kept


@given(
    leader_runs=st.lists(st.tuples(st.integers(1, 2), st.integers(1, 4)), min_size=1, max_size=5),
    shared=st.integers(0, 16),
    tail=st.integers(0, 3),
    follower_runs=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), max_size=4),
)
def test_a_follower_converges_to_the_longest_prefix_it_shares_with_the_leader(
    leader_runs: list[tuple[int, int]], shared: int, tail: int, follower_runs: list[tuple[int, int]]
) -> None:
    """Histories that can happen: the logs agree up to some offset; then the follower may still have more of
    the last common epoch (an old leader's unreplicated tail) and batches of epochs whose leaders the current
    leader never followed (odd epochs here; the leader's are even, so no epoch means two things)."""
    leader_epochs: list[int] = []
    epoch = 0
    for step, count in leader_runs:
        leader_epochs += [epoch] * count
        epoch += 2 * step
    leader_epochs.append(epoch)  # the current leader's epoch: above anything the follower saw
    common = leader_epochs[: min(shared, len(leader_epochs) - 1)]
    follower_epochs = list(common)
    if common:
        follower_epochs += [common[-1]] * tail
    last = common[-1] if common else 0
    for step, count in follower_runs:
        last = (last | 1) + 2 * step  # odd, increasing
        if last >= epoch:
            break
        follower_epochs += [last] * count
    expected = 0
    while expected < min(len(leader_epochs), len(follower_epochs)) and (
        leader_epochs[expected] == follower_epochs[expected]
    ):
        expected += 1
    with tempfile.TemporaryDirectory() as directory:
        leader = replica(Path(directory), "leader", leader_epochs)
        follower = replica(Path(directory), "follower", follower_epochs)
        assert converge(leader, follower) == expected


def test_fetch_request_and_response_round_trip() -> None:
    request = FetchRequest(2, "inc", 500, 1, 1 << 20, (FetchPartition("t", 3, 120, 4, 5, 4096),))
    assert decode_request(encode_request(request)) == request
    data = encode_batch([NewRecord(b"k", b"v")], base_offset=7)
    parts = [
        PartitionData("t", 0, None, 10, 0, 12, None, data),
        PartitionData("t", 1, "FENCED_LEADER_EPOCH", 5, 0, 5),
        PartitionData("u", 0, None, 3, 1, 4, (2, 3), b""),
    ]
    error, decoded = decode_response(encode_response(parts))
    assert error is None
    assert decoded == parts
    assert decode_response(encode_response([], "STALE_BROKER_EPOCH")) == ("STALE_BROKER_EPOCH", [])
