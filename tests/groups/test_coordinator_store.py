"""The coordinator writes through to a real partition log and replays it after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gafka_broker.groups.coordinator import OFFSETS_TOPIC, GroupCoordinator, OffsetCommit
from gafka_broker.groups.group import GroupError, GroupErrorCode, HeartbeatRequest
from gafka_broker.groups.service import OFFSETS_TOPIC_CONFIGS
from gafka_broker.groups.store import GroupStore
from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.manager import LogManager
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

COUNTS = {"orders": 4}


class Logs:
    """Opens ``__consumer_offsets-N`` logs under a directory, reopening them cleanly on restart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs: dict[int, PartitionLog] = {}

    def store(self, partition: int) -> GroupStore:
        if partition not in self.logs:
            self.logs[partition] = PartitionLog.open(
                self.root / f"__consumer_offsets-{partition}", TopicConfig(), clean=True
            )
        return GroupStore(self.logs[partition])

    def restart(self) -> Logs:
        for log in self.logs.values():
            log.close()
        return Logs(self.root)


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


def test_the_log_cleaner_compacts_the_offsets_partition_and_replay_gives_the_same(tmp_path: Path) -> None:
    config = TopicConfig.from_configs({**OFFSETS_TOPIC_CONFIGS, "segment.bytes": "4096"})
    manager = LogManager(tmp_path)
    manager.startup({OFFSETS_TOPIC: (1, config)})
    log = manager.get_log(OFFSETS_TOPIC, 0)
    assert log is not None
    coordinator = GroupCoordinator(lambda _p: GroupStore(log), partitions=1)
    for round_ in range(100):
        coordinator.commit("g", None, -1, [OffsetCommit("orders", p, round_ * 10 + p) for p in range(4)], round_)
    coordinator.commit("other", None, -1, [OffsetCommit("orders", 0, 7)], 0)
    coordinator.delete_group("other")  # tombstones
    log.roll()
    before = log.size_bytes
    assert LogCleaner(manager).clean_filthiest(int(time.time() * 1000)) is not None
    assert log.size_bytes < before / 10
    assert log.log_start_offset == 0
    manager.shutdown()
    manager = LogManager(tmp_path)
    manager.startup({OFFSETS_TOPIC: (1, config)})
    reopened = manager.get_log(OFFSETS_TOPIC, 0)
    assert reopened is not None
    again = GroupCoordinator(lambda _p: GroupStore(reopened), partitions=1)
    again.load_all(0)
    assert [c.offset for c in again.committed("g")] == [990, 991, 992, 993]
    assert again.group("other") is None and again.committed("other") == []
    manager.shutdown()


def test_offsets_of_a_group_empty_for_the_retention_expire(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    coordinator = GroupCoordinator(_stores(logs), partitions=1)  # type: ignore[arg-type]
    joined = coordinator.heartbeat("live", HeartbeatRequest(None, 0, frozenset({"orders"})), 0, COUNTS)
    coordinator.commit("live", joined.member_id, joined.member_epoch, [OffsetCommit("orders", 0, 5)], 1_000)
    coordinator.commit("idle", None, -1, [OffsetCommit("orders", 0, 9), OffsetCommit("orders", 1, 3)], 1_000)
    retention = 60_000
    assert coordinator.expire_offsets(2_000, retention) == {}  # "idle" is seen empty from now on
    coordinator.commit("idle", None, -1, [OffsetCommit("orders", 1, 4)], 30_000)
    assert coordinator.expire_offsets(61_999, retention) == {}  # empty for less than the retention
    assert coordinator.expire_offsets(62_000, retention) == {"idle": 1}  # only the old commit goes
    assert [(c.partition, c.offset) for c in coordinator.committed("idle")] == [(1, 4)]
    assert coordinator.expire_offsets(90_000, retention) == {"idle": 1}
    assert coordinator.group("idle") is None and coordinator.committed("idle") == []
    assert [c.offset for c in coordinator.committed("live")] == [5]  # a group with members keeps them
    logs = logs.restart()
    again = GroupCoordinator(_stores(logs), partitions=1)  # type: ignore[arg-type]
    again.load_all(0)
    assert again.group("idle") is None and again.committed("idle") == []
    assert [c.offset for c in again.committed("live")] == [5]
