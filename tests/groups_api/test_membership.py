"""Members join, heartbeat, release slowly, resubscribe, pause, crash and leave in random order, over HTTP.

Invariants checked after every step, from the clients' side and from the broker's:

- at most one owner per partition: what the live members are reading (their latest assignment, plus
  revoked partitions a slow member still reads and reports in ``owned``) never overlaps, and the broker
  accounts every such partition to that member (its assignment or its pending revocations);
- each member's latest heartbeat answer is what the broker says it owns;

and, after a few heartbeat rounds in which everyone releases promptly, the group is Stable and every
partition of every subscribed topic is owned by exactly one member subscribed to it (evenly, with the
uniform assignor and equal subscriptions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .helpers import Member, TopicPartition, describe, partitions_of, unique_group

_http: httpx.Client | None = None


@pytest.fixture(autouse=True)
def _client(http: httpx.Client) -> Iterator[None]:
    global _http
    _http = http
    yield
    _http = None


class GroupOverHttp(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from conftest import unique_topic

        assert _http is not None
        self.http = _http
        self.group = unique_group("machine")
        self.counts = {unique_topic("ta"): 3, unique_topic("tb"): 2}
        for topic, count in self.counts.items():
            response = self.http.post("/v1/topics", json={"name": topic, "partitions": count})
            assert response.status_code == 201, response.text
        self.topics = sorted(self.counts)
        self.assignor = "uniform"
        self.live: list[Member] = []
        self.paused: list[Member] = []
        self.instances = 0
        self.joins = 0

    @initialize(assignor=st.sampled_from(["uniform", "range"]), static=st.lists(st.booleans(), min_size=2, max_size=2))
    def start_two_members(self, assignor: str, static: list[bool]) -> None:
        self.assignor = assignor
        for is_static in static:  # the second finds everything taken by the first: revocations follow
            self.join({0, 1}, is_static)

    # -- membership ----------------------------------------------------------------------------------
    @rule(which=st.sets(st.integers(0, 1), min_size=1), static=st.booleans())
    def join(self, which: set[int], static: bool) -> None:
        instance = None
        if static:
            self.instances += 1
            instance = f"pod-{self.instances}"
        member = Member(self.http, self.group, [self.topics[i] for i in which], instance)
        member.join(assignor=self.assignor, member_id=self._new_member_id())
        self.live.append(member)

    def _new_member_id(self) -> str:
        """Client-chosen ids (as KIP-848 clients send them) keep a failing run replayable: ties between
        members are broken by id, so broker-made random ids would change the assignment on every replay."""
        self.joins += 1
        return f"m{self.joins:03d}"

    @precondition(lambda self: self.live)
    @rule(data=st.data(), release=st.booleans(), report_owned=st.booleans())
    def heartbeat(self, data: st.DataObject, release: bool, report_owned: bool) -> None:
        self._beat(data.draw(st.sampled_from(self.live)), release, report_owned)

    @precondition(lambda self: self.live)
    @rule(releases=st.lists(st.booleans(), min_size=8, max_size=8))
    def heartbeat_round(self, releases: list[bool]) -> None:
        """Everyone heartbeats once, some of them slow to let go of what they lose."""
        for member, release in zip(self.live, releases, strict=False):
            self._beat(member, release, report_owned=True)

    def _beat(self, member: Member, release: bool = True, report_owned: bool = True) -> None:
        before = set(member.assignment)
        member.heartbeat(release=release, report_owned=report_owned)
        if before - member.assignment:
            event("a heartbeat revoked partitions")
        if member.assignment - before:
            event("a heartbeat assigned partitions")
        if not release and member.holding - member.assignment:
            event("a slow member still reads revoked partitions")
        self.one_reader_per_partition()  # after every single heartbeat, not only between steps

    @precondition(lambda self: self.live)
    @rule(data=st.data(), which=st.sets(st.integers(0, 1), min_size=1))
    def resubscribe(self, data: st.DataObject, which: set[int]) -> None:
        member = data.draw(st.sampled_from(self.live))
        member.topics = [self.topics[i] for i in sorted(which)]
        member.heartbeat(topics=member.topics)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(self.live))
        answer = member.leave()
        assert (answer["member_epoch"], answer["assignment"]) == (-1, [])
        self.live.remove(member)

    @precondition(lambda self: any(m.instance_id for m in self.live))
    @rule(data=st.data())
    def static_pause(self, data: st.DataObject) -> None:
        """A static member stops for a restart (epoch -2): it keeps its partitions, nobody else gets them."""
        member = data.draw(st.sampled_from([m for m in self.live if m.instance_id]))
        assert member.leave(epoch=-2)["member_epoch"] == -2
        self.live.remove(member)
        self.paused.append(member)

    @precondition(lambda self: self.paused)
    @rule(data=st.data())
    def static_return(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(self.paused))
        self.paused.remove(member)
        self._restart(member)

    @precondition(lambda self: any(m.instance_id for m in self.live))
    @rule(data=st.data())
    def static_crash_and_restart(self, data: st.DataObject) -> None:
        """The process dies without a word and a new one with the same instance id joins at once."""
        member = data.draw(st.sampled_from([m for m in self.live if m.instance_id]))
        self.live.remove(member)
        self._restart(member)

    def _restart(self, old: Member) -> None:
        new = Member(self.http, self.group, old.topics, old.instance_id)
        new.join(assignor=self.assignor, member_id=self._new_member_id())
        assert new.member_id != old.member_id
        stale = self.http.post(
            f"/v1/groups/{self.group}/heartbeat", json={"member_id": old.member_id, "member_epoch": old.epoch}
        )
        assert stale.status_code == 404 and stale.json()["error_code"] == "UNKNOWN_MEMBER_ID"
        self.live.append(new)

    @precondition(lambda self: max(self.counts.values()) < 6)
    @rule(index=st.integers(0, 1))
    def add_partition(self, index: int) -> None:
        topic = self.topics[index]
        self.counts[topic] += 1
        response = self.http.patch(f"/v1/topics/{topic}", json={"partitions": self.counts[topic]})
        assert response.status_code == 200, response.text

    # -- stability -----------------------------------------------------------------------------------
    @rule()
    def settle_and_check_coverage(self) -> None:
        for member in list(self.paused):
            self.paused.remove(member)
            self._restart(member)
        if not self.live:
            return
        for _ in range(10):
            for member in self.live:
                self._beat(member)
            if describe(self.http, self.group)["state"] == "Stable":
                break
        group = describe(self.http, self.group)
        assert group["state"] == "Stable", group
        owners: dict[TopicPartition, str] = {}
        for member in self.live:
            for tp in member.assignment:
                assert tp not in owners, f"{tp} owned by {owners[tp]} and {member.member_id}"
                assert tp[0] in member.topics, f"{member.member_id} owns {tp} without subscribing to it"
                assert member.member_id is not None
                owners[tp] = member.member_id
        subscribed = {topic for member in self.live for topic in member.topics}
        wanted = {(topic, p) for topic in subscribed for p in range(self.counts[topic])}
        assert set(owners) == wanted, f"unowned: {sorted(wanted - set(owners))}"
        if self.assignor == "uniform" and len({tuple(m.topics) for m in self.live}) == 1:
            loads = [len(m.assignment) for m in self.live]
            assert max(loads) - min(loads) <= 1, loads

    # -- invariants ----------------------------------------------------------------------------------
    @invariant()
    def one_reader_per_partition(self) -> None:
        seen: dict[TopicPartition, str | None] = {}
        for member in self.live:
            for tp in member.holding:
                assert tp not in seen, f"{tp} read by {seen[tp]} and {member.member_id}"
                seen[tp] = member.member_id

    @invariant()
    def broker_agrees(self) -> None:
        if not self.live and not self.paused:
            return
        group = describe(self.http, self.group)
        by_id: dict[str, dict[str, Any]] = {m["member_id"]: m for m in group["members"]}
        held: dict[TopicPartition, str] = {}
        for member_id, entry in by_id.items():
            for tp in partitions_of(entry["assignment"]) | partitions_of(entry["pending_revocation"]):
                assert tp not in held, f"the broker lets {held[tp]} and {member_id} hold {tp}"
                held[tp] = member_id
        assert len(by_id) == len(self.live) + len(self.paused)
        for member in self.live:
            assert member.member_id in by_id, f"{member.member_id} is missing from the group"
            entry = by_id[member.member_id]
            assert partitions_of(entry["assignment"]) == member.assignment
            assert entry["member_epoch"] == member.epoch
            assert all(held.get(tp) == member.member_id for tp in member.holding), (member.holding, entry)


# No shrinking: every replay is a whole HTTP conversation, and shrinking one would outlast the test timeout.
# A failure prints its steps unshrunk; they replay as they are (member ids are chosen by the test).
GroupOverHttp.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate)
)
TestGroupOverHttp = GroupOverHttp.TestCase
