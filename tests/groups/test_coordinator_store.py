"""The coordinator writes through to a real partition log and replays it after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gafka_broker.groups.coordinator import GroupCoordinator, OffsetCommit
from gafka_broker.groups.group import GroupError, GroupErrorCode, HeartbeatRequest
from gafka_broker.groups.store import GroupStore
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

COUNTS = {"orders": 4}


class Logs:
    """Opens ``__consumer_offsets-N`` logs under a directory, reopening them cleanly on restart."""

    def __init__(self, root: Path, compact_after: int = 10_000) -> None:
        self.root = root
        self.compact_after = compact_after
        self.logs: dict[int, PartitionLog] = {}

    def store(self, partition: int) -> GroupStore:
        if partition not in self.logs:
            self.logs[partition] = PartitionLog.open(
                self.root / f"__consumer_offsets-{partition}", TopicConfig(), clean=True
            )
        return GroupStore(self.logs[partition], compact_after=self.compact_after)

    def restart(self) -> Logs:
        for log in self.logs.values():
            log.close()
        return Logs(self.root, self.compact_after)


def _stores(logs: Logs) -> object:
    cache: dict[int, GroupStore] = {}

    def store_for(partition: int) -> GroupStore:
        if partition not in cache:
            cache[partition] = logs.store(partition)
        return cache[partition]

    return store_for


def test_state_and_offsets_survive_a_restart(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    coordinator = GroupCoordinator(_stores(logs), partitions=5)  # type: ignore[arg-type]
    joined = coordinator.heartbeat("g", HeartbeatRequest(None, 0, frozenset({"orders"})), 0, COUNTS)
    coordinator.commit("g", joined.member_id, joined.member_epoch, [OffsetCommit("orders", 1, 42, "m")], 10)
    logs = logs.restart()
    again = GroupCoordinator(_stores(logs), partitions=5)  # type: ignore[arg-type]
    again.load_all(now_ms=100)
    group = again.group("g")
    assert group is not None and joined.member_id in group.members
    assert group.members[joined.member_id].owned == set(joined.assignment)
    [committed] = again.committed("g")
    assert (committed.topic, committed.partition, committed.offset, committed.metadata) == ("orders", 1, 42, "m")
    # the member carries on with its epoch, no rejoin needed
    response = again.heartbeat("g", HeartbeatRequest(joined.member_id, joined.member_epoch), 200, COUNTS)
    assert response.assignment == joined.assignment


def test_delete_and_reset_need_an_empty_group(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    coordinator = GroupCoordinator(_stores(logs), partitions=3)  # type: ignore[arg-type]
    joined = coordinator.heartbeat("g", HeartbeatRequest(None, 0, frozenset({"orders"})), 0, COUNTS)
    with pytest.raises(GroupError) as error:
        coordinator.reset_offsets("g", {("orders", 0): 5}, 0)
    assert error.value.code is GroupErrorCode.NON_EMPTY_GROUP
    with pytest.raises(GroupError):
        coordinator.delete_group("g")
    coordinator.heartbeat("g", HeartbeatRequest(joined.member_id, -1), 1, COUNTS)
    coordinator.reset_offsets("g", {("orders", 0): 5}, 2)
    assert [c.offset for c in coordinator.committed("g")] == [5]
    coordinator.delete_group("g")
    logs = logs.restart()
    again = GroupCoordinator(_stores(logs), partitions=3)  # type: ignore[arg-type]
    again.load_all(0)
    assert again.group("g") is None and again.committed("g") == []


def test_store_compacts_by_snapshot_and_replays_the_same(tmp_path: Path) -> None:
    logs = Logs(tmp_path, compact_after=50)
    coordinator = GroupCoordinator(_stores(logs), partitions=1)  # type: ignore[arg-type]
    for round_ in range(100):
        coordinator.commit("g", None, -1, [OffsetCommit("orders", p, round_ * 10 + p) for p in range(4)], round_)
    log = logs.logs[0]
    assert log.log_start_offset > 0, "the store never compacted"
    live = log.log_end_offset - log.log_start_offset
    assert live < 100
    logs = logs.restart()
    again = GroupCoordinator(_stores(logs), partitions=1)  # type: ignore[arg-type]
    again.load_all(0)
    assert [c.offset for c in again.committed("g")] == [990, 991, 992, 993]
