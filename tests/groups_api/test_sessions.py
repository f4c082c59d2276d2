"""Sessions: a silent member is removed after the session timeout; static members survive a restart.

The broker runs with a 2 s session timeout. Waits use generous bounds (the expiry task runs every
500 ms); what is asserted is the outcome, not how fast it came.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from support import wait_for

from .helpers import Member, as_assignment, describe, error, settle, unique_group

if TYPE_CHECKING:
    from conftest import BrokerProcess

SESSION_MS = 2000
HEARTBEAT_MS = 200


@pytest.fixture(scope="module")
def short_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    from conftest import BrokerProcess

    root = tmp_path_factory.mktemp("short-sessions")
    broker = BrokerProcess(
        root / "data",
        root,
        (
            "--offsets-topic-num-partitions",
            "3",
            "--group-session-timeout-ms",
            str(SESSION_MS),
            "--group-heartbeat-interval-ms",
            str(HEARTBEAT_MS),
        ),
    )
    broker.start()
    yield broker
    broker.stop()
    broker.kill()


@pytest.fixture
def http(short_sessions: BrokerProcess) -> Iterator[httpx.Client]:
    with short_sessions.client() as client:
        yield client


def _topic(http: httpx.Client, partitions: int) -> str:
    from conftest import unique_topic

    name = unique_topic("sess")
    assert http.post("/v1/topics", json={"name": name, "partitions": partitions}).status_code == 201
    return name


def _keep_alive(members: list[Member], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for member in members:
            member.heartbeat()
        time.sleep(HEARTBEAT_MS / 1000)


def test_heartbeat_interval_and_session_come_from_the_broker(http: httpx.Client) -> None:
    topic, group = _topic(http, 1), unique_group()
    answer = Member(http, group, [topic]).join()
    assert answer["heartbeat_interval_ms"] == HEARTBEAT_MS
    assert describe(http, group)["members"][0]["session_timeout_ms"] == SESSION_MS


def test_silent_member_expires_and_its_partitions_move(http: httpx.Client) -> None:
    topic, group = _topic(http, 4), unique_group()
    alive, silent = Member(http, group, [topic]), Member(http, group, [topic])
    alive.join()
    silent.join()
    settle([alive, silent])
    assert len(alive.assignment) == len(silent.assignment) == 2
    _keep_alive([alive, silent], 2 * SESSION_MS / 1000)  # heartbeats keep both sessions open past the timeout
    assert len(describe(http, group)["members"]) == 2
    epoch = describe(http, group)["group_epoch"]

    def alone() -> bool:
        alive.heartbeat()
        return len(describe(http, group)["members"]) == 1

    wait_for(alone, timeout=15, interval=HEARTBEAT_MS / 1000)
    group_state = describe(http, group)
    assert group_state["group_epoch"] > epoch
    assert [m["member_id"] for m in group_state["members"]] == [alive.member_id]
    settle([alive])
    assert alive.assignment == {(topic, p) for p in range(4)}
    response = silent.send({"member_id": silent.member_id, "member_epoch": silent.epoch})
    assert error(response) == (404, "UNKNOWN_MEMBER_ID")  # it must rejoin with epoch 0
    assert error(silent.commit({(topic, 0): 1})) == (404, "UNKNOWN_MEMBER_ID")
    assert silent.join()["assignment"] == []  # a rejoining member gets nothing another still owns


def test_member_slow_to_release_is_removed_after_its_rebalance_timeout(http: httpx.Client) -> None:
    topic, group = _topic(http, 2), unique_group()
    slow = Member(http, group, [topic])
    slow.join(rebalance_timeout_ms=HEARTBEAT_MS * 3)
    newcomer = Member(http, group, [topic])
    newcomer.join()
    slow.heartbeat(release=False)  # told to give one partition up; keeps reading it
    assert len(slow.assignment) == 1 and len(slow.holding) == 2
    newcomer.heartbeat()
    assert newcomer.assignment == set()  # not while the slow member still reads it

    def taken_over() -> bool:
        # the slow member stays alive (its session is fine) but keeps reporting the partition as held
        held = slow.send(
            {"member_id": slow.member_id, "member_epoch": slow.epoch, "owned": as_assignment(slow.holding)}
        )
        newcomer.heartbeat()
        return held.status_code == 404 and len(newcomer.assignment) == 2

    wait_for(taken_over, timeout=15, interval=HEARTBEAT_MS / 1000)
    assert [m["member_id"] for m in describe(http, group)["members"]] == [newcomer.member_id]


def test_static_member_restart_keeps_partitions_without_a_rebalance(http: httpx.Client) -> None:
    topic, group = _topic(http, 6), unique_group()
    first, second = Member(http, group, [topic], "pod-0"), Member(http, group, [topic], "pod-1")
    first.join()
    second.join()
    settle([first, second])
    before = describe(http, group)
    owned, epoch = set(first.assignment), first.epoch
    assert len(owned) == 3

    assert first.leave(epoch=-2)["member_epoch"] == -2  # graceful stop for a restart
    paused = describe(http, group)
    assert paused["group_epoch"] == before["group_epoch"]
    [entry] = [m for m in paused["members"] if m["instance_id"] == "pod-0"]
    assert entry["left_temporarily"] is True
    second.heartbeat()
    assert len(second.assignment) == 3  # nobody takes the paused member's partitions

    restarted = Member(http, group, [topic], "pod-0")
    answer = restarted.join()
    assert restarted.assignment == owned and answer["member_epoch"] == epoch
    assert restarted.member_id != first.member_id
    after = describe(http, group)
    assert after["group_epoch"] == before["group_epoch"] and after["state"] == "Stable"
    assert error(first.send({"member_id": first.member_id, "member_epoch": epoch})) == (404, "UNKNOWN_MEMBER_ID")
    assert error(first.commit({(topic, min(owned)[1]): 1})) == (404, "UNKNOWN_MEMBER_ID")
    assert restarted.commit({(topic, min(owned)[1]): 1}).status_code == 200

    # a crash (no -2) followed by a restart within the session: the newcomer takes over the same way
    crashed = Member(http, group, [topic], "pod-0")
    crashed.join()
    assert crashed.assignment == owned and describe(http, group)["group_epoch"] == before["group_epoch"]


def test_static_member_gone_longer_than_the_session_is_removed(http: httpx.Client) -> None:
    topic, group = _topic(http, 2), unique_group()
    static, other = Member(http, group, [topic], "pod-a"), Member(http, group, [topic])
    static.join()
    other.join()
    settle([static, other])
    static.leave(epoch=-2)

    def reassigned() -> bool:
        other.heartbeat()
        return len(other.assignment) == 2

    wait_for(reassigned, timeout=15, interval=HEARTBEAT_MS / 1000)
    assert [m["member_id"] for m in describe(http, group)["members"]] == [other.member_id]
