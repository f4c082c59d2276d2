"""Two consumers in one group: broker-side assignment, revoke-before-assign callbacks, commits surviving a
rebalance, nothing lost or read twice after commit. Skips only while the broker has no /v1/groups API."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BrokerProcess
from gafka import Admin, AsyncConsumer, Consumer, Producer, TopicPartition
from support import wait_for

from .conftest import create, require_groups_api

GROUP_ARGS = ("--group-heartbeat-interval-ms", "200", "--group-session-timeout-ms", "3000")


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker with short group timeouts, so rebalances settle within a test."""
    root: Path = tmp_path_factory.mktemp("group-broker")
    broker = BrokerProcess(root / "data", root, GROUP_ARGS)
    broker.start()
    try:
        require_groups_api(broker.url)
        yield broker
    finally:
        broker.stop(timeout=20)
        broker.kill()


class Member:
    """A consumer polling in its own thread, recording callbacks and records."""

    def __init__(self, url: str, group: str, topic: str, name: str, events: list[tuple[str, str, set[int]]]) -> None:
        self.name = name
        self.events = events
        self.values: list[bytes] = []
        self.stop = threading.Event()
        self.consumer = Consumer(url, group_id=group, auto_offset_reset="earliest", auto_commit_interval_ms=200)
        self.consumer.subscribe(
            [topic],
            on_assign=lambda tps: events.append((name, "assigned", {tp.partition for tp in tps})),
            on_revoke=self._revoked,
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _revoked(self, partitions: set[TopicPartition]) -> None:
        # the user's chance to commit before the partitions move (auto-commit already did; this must not fail)
        self.consumer.commit()
        self.events.append((self.name, "revoked", {tp.partition for tp in partitions}))

    def _run(self) -> None:
        while not self.stop.is_set():
            self.values.extend(r.value or b"" for r in self.consumer.poll(0.1))

    def owned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def test_two_consumers_rebalance_with_callbacks(group_broker: BrokerProcess) -> None:
    url = group_broker.url
    topic = create(url, partitions=4)
    group = f"g-{topic}"
    events: list[tuple[str, str, set[int]]] = []
    with Producer(url) as producer:
        for i in range(200):
            producer.send(topic, f"a{i}", key=str(i))
    first = Member(url, group, topic, "first", events)
    try:
        wait_for(lambda: first.owned() == {0, 1, 2, 3}, what="the first member to own everything")
        wait_for(lambda: len(first.values) == 200, what="the first 200 records")
        second = Member(url, group, topic, "second", events)
        try:
            wait_for(
                lambda: len(first.owned()) == 2 and len(second.owned()) == 2,
                what="a balanced assignment",
            )
            assert first.owned().isdisjoint(second.owned())
            moved = second.owned()
            revoked = [e for e in events if e[0] == "first" and e[1] == "revoked"]
            assert revoked and set().union(*(e[2] for e in revoked)) == moved
            # revoke-before-assign: first gave the partitions up before second was handed them
            revoke_at = next(i for i, e in enumerate(events) if e[0] == "first" and e[1] == "revoked")
            assign_at = next(i for i, e in enumerate(events) if e[0] == "second" and e[1] == "assigned")
            assert revoke_at < assign_at
            with Producer(url) as producer:
                for i in range(200):
                    producer.send(topic, f"b{i}", key=str(i))
            wait_for(lambda: len(first.values) + len(second.values) >= 400, what="all 400 records")
            time.sleep(0.5)
            values = first.values + second.values
            assert sorted(values) == sorted(
                [f"a{i}".encode() for i in range(200)] + [f"b{i}".encode() for i in range(200)]
            )
            with Admin(url) as admin:
                description = admin.describe_group(group)
                assert description["state"] in ("Stable", "Reconciling")
                assert len(description["members"]) == 2
        finally:
            second.close()
        wait_for(lambda: first.owned() == {0, 1, 2, 3}, what="the first member to take everything back")
    finally:
        first.close()
    with Admin(url) as admin:
        lags = {row["partition"]: row["lag"] for row in admin.group_lag(group)}
        assert lags == {0: 0, 1: 0, 2: 0, 3: 0}  # everything read was committed on revoke/close


def test_restarted_member_resumes_from_commit_and_reset_rules(group_broker: BrokerProcess) -> None:
    url = group_broker.url
    topic = create(url, partitions=1)
    group = f"g-{topic}"
    with Producer(url) as producer:
        for i in range(10):
            producer.send(topic, f"v{i}")
    with Consumer(url, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.subscribe(topic)
        got: list[int] = []
        deadline = time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            got.extend(r.offset for r in consumer.poll(0.2))
        assert got == list(range(10))
        consumer.commit({TopicPartition(topic, 0): 6})
        with Admin(url) as admin, pytest.raises(Exception, match="NON_EMPTY_GROUP"):
            admin.reset_group_offsets(group, topic, "earliest")
    with Consumer(url, group_id=group, auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        again: list[int] = []
        deadline = time.monotonic() + 20
        while len(again) < 4 and time.monotonic() < deadline:
            again.extend(r.offset for r in consumer.poll(0.2))
        assert again == [6, 7, 8, 9]
    with Admin(url) as admin:
        assert admin.reset_group_offsets(group, topic, "earliest") == {TopicPartition(topic, 0): 0}
        assert admin.group_offsets(group) == {TopicPartition(topic, 0): 0}
        admin.delete_group(group)
        assert admin.group_offsets(group) == {}


def test_async_consumers_in_one_group(group_broker: BrokerProcess) -> None:
    url = group_broker.url
    topic = create(url, partitions=2)
    group = f"g-{topic}"
    with Producer(url) as producer:
        for i in range(50):
            producer.send(topic, str(i), key=str(i))

    async def run() -> tuple[set[TopicPartition], set[TopicPartition], int]:
        revoked: list[set[TopicPartition]] = []

        async def on_revoke(partitions: set[TopicPartition]) -> None:
            revoked.append(partitions)

        a = AsyncConsumer(url, group_id=group, auto_offset_reset="earliest")
        b = AsyncConsumer(url, group_id=group, auto_offset_reset="earliest")
        await a.subscribe([topic], on_revoke=on_revoke)
        seen = 0
        deadline = time.monotonic() + 20
        while (seen < 50 or len(a.assignment()) != 2) and time.monotonic() < deadline:
            seen += len(await a.poll(0.1))
        await b.subscribe([topic])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (len(a.assignment()) == 1 and len(b.assignment()) == 1):
            await asyncio.gather(a.poll(0.1), b.poll(0.1))
        result = (a.assignment(), b.assignment(), seen)
        await a.close()
        await b.close()
        assert revoked
        return result

    owned_a, owned_b, seen = asyncio.run(run())
    assert seen == 50
    assert len(owned_a) == len(owned_b) == 1 and owned_a.isdisjoint(owned_b)


def test_subscribe_before_the_topic_exists(group_broker: BrokerProcess) -> None:
    """Kafka's way: a group may subscribe to a topic that does not exist yet and reads it once it does."""
    topic = f"later-{time.monotonic_ns()}"
    with Consumer(group_broker.url, group_id=f"g-{topic}", auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        assert consumer.poll(0.5) == []
        create(group_broker.url, topic, partitions=2)
        with Producer(group_broker.url) as producer:
            for i in range(4):
                producer.send(topic, f"v{i}", partition=i % 2)
        values: list[bytes | None] = []
        deadline = time.monotonic() + 30
        while len(values) < 4 and time.monotonic() < deadline:
            values.extend(record.value for record in consumer.poll(0.5))
        assert sorted(values) == [b"v0", b"v1", b"v2", b"v3"]
        assert consumer.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
