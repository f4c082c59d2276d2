"""The group state machine and assignors, without I/O: invariants under random membership changes."""

from __future__ import annotations

from collections.abc import Mapping, Set

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gafka_broker.groups.assignors import TopicPartition, range_, uniform
from gafka_broker.groups.group import (
    ConsumerGroup,
    GroupError,
    GroupErrorCode,
    GroupState,
    HeartbeatRequest,
)

TOPICS = ("a", "b", "c")


def _all(subscriptions: Mapping[str, Set[str]], counts: Mapping[str, int]) -> set[TopicPartition]:
    return {(t, p) for topics in subscriptions.values() for t in topics for p in range(counts.get(t, 0))}


subscriptions_strategy = st.dictionaries(
    st.text("mnopq", min_size=1, max_size=3),
    st.frozensets(st.sampled_from(TOPICS), min_size=1),
    min_size=1,
    max_size=6,
)
counts_strategy = st.fixed_dictionaries({topic: st.integers(min_value=0, max_value=12) for topic in TOPICS})


@given(subscriptions_strategy, counts_strategy, st.data())
def test_uniform_is_complete_exclusive_and_balanced(subscriptions, counts, data) -> None:  # type: ignore[no-untyped-def]
    wanted = _all(subscriptions, counts)
    previous = data.draw(
        st.fixed_dictionaries(
            {m: st.sets(st.sampled_from(sorted(wanted))) if wanted else st.just(set()) for m in subscriptions}
        )
    )
    result = uniform(subscriptions, counts, previous)
    assigned = [tp for tps in result.values() for tp in tps]
    assert sorted(assigned) == sorted(wanted)  # every subscribed partition exactly once
    for member, tps in result.items():
        assert all(topic in subscriptions[member] for topic, _ in tps)
    if len({frozenset(topics) for topics in subscriptions.values()}) == 1:  # same subscriptions: perfect balance
        loads = [len(tps) for tps in result.values()]
        assert max(loads) - min(loads) <= 1


@given(subscriptions_strategy, counts_strategy)
def test_uniform_is_sticky_when_nothing_changes(subscriptions, counts) -> None:  # type: ignore[no-untyped-def]
    first = uniform(subscriptions, counts, {})
    assert uniform(subscriptions, counts, first) == first


def test_uniform_moves_only_what_balance_needs() -> None:
    subscriptions = {"m1": {"a"}, "m2": {"a"}}
    before = uniform(subscriptions, {"a": 6}, {})
    after = uniform({**subscriptions, "m3": {"a"}}, {"a": 6}, before)
    assert [len(after[m]) for m in ("m1", "m2", "m3")] == [2, 2, 2]
    assert after["m1"] <= before["m1"] and after["m2"] <= before["m2"]  # m3 only took, nobody swapped


def test_range_matches_kafka_range_assignor() -> None:
    result = range_({"c1": {"t"}, "c2": {"t"}, "c3": {"t"}}, {"t": 7}, {})
    assert result == {"c1": {("t", 0), ("t", 1), ("t", 2)}, "c2": {("t", 3), ("t", 4)}, "c3": {("t", 5), ("t", 6)}}


def _join(group: ConsumerGroup, topics: set[str], now: int = 0, **kwargs: object) -> tuple[str, int]:
    response = group.heartbeat(
        HeartbeatRequest(None, 0, frozenset(topics), **kwargs),
        now,
        {"a": 4, "b": 2},  # type: ignore[arg-type]
    )
    return response.member_id, response.member_epoch


def _beat(group: ConsumerGroup, member: str, now: int = 0, counts: Mapping[str, int] | None = None):  # type: ignore[no-untyped-def]
    epoch = group.members[member].epoch
    return group.heartbeat(HeartbeatRequest(member, epoch), now, counts or {"a": 4, "b": 2})


def test_revoke_before_assign() -> None:
    group = ConsumerGroup("g")
    first, _ = _join(group, {"a"})
    assert len(group.members[first].owned) == 4
    second, _ = _join(group, {"a"})
    assert group.members[second].owned == set()  # everything is still held by the first member
    response = _beat(group, first)
    assert len(response.assignment) == 2 and len(group.members[first].revoking) == 2
    assert not _beat(group, second).assignment  # the first member has not confirmed the release yet
    _beat(group, first)  # this heartbeat confirms the release
    assert len(_beat(group, second).assignment) == 2
    assert group.state is GroupState.STABLE


def test_commit_fencing() -> None:
    group = ConsumerGroup("g")
    member, epoch = _join(group, {"a"})
    group.check_commit(member, epoch, [("a", 0)])
    with pytest.raises(GroupError) as error:
        group.check_commit(member, epoch - 1, [("a", 0)])
    assert error.value.code is GroupErrorCode.STALE_MEMBER_EPOCH
    with pytest.raises(GroupError) as error:
        group.check_commit(member, epoch + 1, [("a", 0)])
    assert error.value.code is GroupErrorCode.FENCED_MEMBER_EPOCH
    with pytest.raises(GroupError) as error:
        group.check_commit("ghost", epoch, [("a", 0)])
    assert error.value.code is GroupErrorCode.UNKNOWN_MEMBER_ID
    with pytest.raises(GroupError) as error:
        group.check_commit(member, epoch, [("b", 0)])
    assert error.value.code is GroupErrorCode.STALE_MEMBER_EPOCH
    with pytest.raises(GroupError):
        group.check_commit(None, -1, [("a", 0)])  # the group has members
    empty = ConsumerGroup("manual")
    empty.check_commit(None, -1, [("a", 0)])


def test_session_expiry_frees_partitions() -> None:
    group = ConsumerGroup("g", session_timeout_ms=1000)
    first, _ = _join(group, {"a"}, now=0)
    second, _ = _join(group, {"a"}, now=0)
    for now in (100, 200, 300):
        _beat(group, first, now)
        _beat(group, second, now)
    assert group.expire(900) == []
    _beat(group, second, 1200)
    assert group.expire(1500) == [first]
    assert len(_beat(group, second, 1600).assignment) == 4


def test_static_member_keeps_partitions_across_restart() -> None:
    group = ConsumerGroup("g")
    first, _ = _join(group, {"a"}, instance_id="pod-0")
    _join(group, {"a"}, instance_id="pod-1")
    for _ in range(3):
        for member_id in list(group.members):
            _beat(group, member_id)
    owned_before = set(group.members[first].owned)
    epoch_before = group.epoch
    group.heartbeat(HeartbeatRequest(first, -2), 10, {"a": 4, "b": 2})  # leaves for a restart
    restarted, _ = _join(group, {"a"}, now=20, instance_id="pod-0")
    assert group.members[restarted].owned == owned_before
    assert first not in group.members and group.epoch == epoch_before  # no rebalance
    with pytest.raises(GroupError) as error:
        group.check_commit(first, 1, [("a", 0)])
    assert error.value.code is GroupErrorCode.UNKNOWN_MEMBER_ID


def test_stale_heartbeat_is_fenced() -> None:
    group = ConsumerGroup("g")
    member, epoch = _join(group, {"a"})
    with pytest.raises(GroupError) as error:
        group.heartbeat(HeartbeatRequest(member, epoch + 5), 0, {"a": 4})
    assert error.value.code is GroupErrorCode.FENCED_MEMBER_EPOCH


def test_a_retry_after_a_lost_answer_is_accepted_with_the_previous_epoch() -> None:
    """The answer that moved a member to a new epoch was lost: its retry carries the previous epoch. Kafka accepts
    it when the member owns nothing it should not (fencing would make it drop everything and rejoin)."""
    group = ConsumerGroup("g")
    first, _ = _join(group, {"a"})
    second, _ = _join(group, {"a"})
    third, _ = _join(group, {"a"})  # a second rebalance: the members' previous epochs are real ones, not 0
    for _ in range(3):
        for member_id in (first, second, third):
            _beat(group, member_id)
    member = group.members[second]
    assert member.owned and 0 < member.previous_epoch < member.epoch
    old_epoch, owned = member.previous_epoch, frozenset(member.owned)
    # the retry reports what it held before the lost answer: a subset of what it owns now (nothing, here)
    response = group.heartbeat(HeartbeatRequest(second, old_epoch, owned=frozenset()), 0, {"a": 4})
    assert response.member_epoch == member.epoch and response.assignment == owned
    # reporting a partition it does not own, or no report at all, is still fenced
    for report in (frozenset({("b", 0)}), None):
        with pytest.raises(GroupError) as error:
            group.heartbeat(HeartbeatRequest(second, old_epoch, owned=report), 0, {"a": 4})
        assert error.value.code is GroupErrorCode.FENCED_MEMBER_EPOCH
    with pytest.raises(GroupError) as error:  # an epoch older than the previous one
        group.heartbeat(HeartbeatRequest(second, old_epoch - 1, owned=frozenset()), 0, {"a": 4})
    assert error.value.code is GroupErrorCode.FENCED_MEMBER_EPOCH


def test_partition_growth_reaches_members() -> None:
    group = ConsumerGroup("g")
    member, _ = _join(group, {"a"})
    assert len(_beat(group, member, counts={"a": 6}).assignment) == 6


class GroupMachine(RuleBasedStateMachine):
    """Members join, heartbeat, leave and die in random order; partitions grow."""

    def __init__(self) -> None:
        super().__init__()
        self.group = ConsumerGroup("g", session_timeout_ms=1000)
        self.now = 0
        self.counts = {"a": 3, "b": 5, "c": 1}
        self.joined = 0

    def _request(self, member_id: str) -> HeartbeatRequest:
        return HeartbeatRequest(member_id, self.group.members[member_id].epoch)

    @rule(topics=st.frozensets(st.sampled_from(TOPICS), min_size=1), static=st.booleans())
    def join(self, topics: frozenset[str], static: bool) -> None:
        instance = f"i{len(self.group.members)}" if static else None
        self.joined += 1  # client-chosen member ids (as KIP-848 clients send them) keep the run reproducible
        request = HeartbeatRequest(f"m{self.joined}", 0, topics, instance_id=instance)
        self.group.heartbeat(request, self.now, self.counts)

    @precondition(lambda self: self.group.members)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.group.members)))
        self.group.heartbeat(self._request(member_id), self.now, self.counts)

    @precondition(lambda self: self.group.members)
    @rule(data=st.data(), topics=st.frozensets(st.sampled_from(TOPICS), min_size=1))
    def resubscribe(self, data: st.DataObject, topics: frozenset[str]) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.group.members)))
        request = HeartbeatRequest(member_id, self.group.members[member_id].epoch, topics)
        self.group.heartbeat(request, self.now, self.counts)

    @precondition(lambda self: self.group.members)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.group.members)))
        self.group.heartbeat(HeartbeatRequest(member_id, -1), self.now, self.counts)

    @precondition(lambda self: self.group.members)
    @rule(data=st.data())
    def stale_heartbeat_is_refused(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.group.members)))
        epoch = self.group.members[member_id].epoch
        with pytest.raises(GroupError):
            self.group.heartbeat(HeartbeatRequest(member_id, epoch + 1), self.now, self.counts)

    @rule(step=st.integers(min_value=1, max_value=1500))
    def time_passes(self, step: int) -> None:
        self.now += step
        self.group.expire(self.now)

    @rule(topic=st.sampled_from(TOPICS))
    def add_partition(self, topic: str) -> None:
        self.counts[topic] += 1

    @invariant()
    def at_most_one_owner(self) -> None:
        for tp, holders in self.group.owners().items():
            assert len(holders) == 1, f"{tp} held by {holders}"

    @invariant()
    def stable_after_everyone_heartbeats(self) -> None:
        probe = ConsumerGroup("probe")
        probe.__dict__.update({**self.group.__dict__, "members": {k: _copy(v) for k, v in self.group.members.items()}})
        probe.target = {k: set(v) for k, v in self.group.target.items()}
        for _ in range(4):
            for member_id in sorted(probe.members):
                probe.heartbeat(HeartbeatRequest(member_id, probe.members[member_id].epoch), self.now, self.counts)
            for _tp, holders in probe.owners().items():
                assert len(holders) == 1
        if probe.members:
            assert probe.state is GroupState.STABLE
            subscriptions = {m: member.subscriptions for m, member in probe.members.items()}
            owned = sorted(tp for member in probe.members.values() for tp in member.owned)
            assert owned == sorted(_all(subscriptions, self.counts))


def _copy(member):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(member, owned=set(member.owned), revoking=set(member.revoking))


GroupMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestGroupMachine = GroupMachine.TestCase
