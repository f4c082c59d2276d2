"""Consumer against a real broker: manual assignment, positions, seek, pause/resume, offset reset, commits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from gafka import AsyncConsumer, Consumer, ConsumerRecord, Producer, TopicPartition
from gafka.errors import NoOffsetForPartitionError, UnknownTopicOrPartitionError

from .conftest import require_groups_api

if TYPE_CHECKING:
    from conftest import BrokerProcess


def fill(url: str, topic: str, count: int, partition: int = 0) -> None:
    with Producer(url, linger_ms=5) as producer:
        for i in range(count):
            producer.send(topic, f"m{i}", key=f"k{i}", partition=partition, headers=[("n", str(i).encode())])
        producer.flush()


def poll_until(consumer: Consumer, count: int, timeout: float = 15.0) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records.extend(consumer.poll(0.5))
    return records


def test_assign_poll_position_seek(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    fill(shared_broker.url, topic, 50)
    tp = TopicPartition(topic, 0)
    with Consumer(shared_broker.url, auto_offset_reset="earliest", max_poll_records=20) as consumer:
        consumer.assign([tp])
        assert consumer.assignment() == {tp}
        first = consumer.poll(10)
        assert 0 < len(first) <= 20
        assert first[0] == ConsumerRecord(topic, 0, 0, first[0].timestamp, b"k0", b"m0", (("n", b"0"),))
        records = first + poll_until(consumer, 50 - len(first))
        assert [r.offset for r in records] == list(range(50))
        assert consumer.position(tp) == 50
        assert consumer.highwater(tp) == 50
        consumer.seek(tp, 45)
        again = poll_until(consumer, 5)
        assert [r.value for r in again] == [f"m{i}".encode() for i in range(45, 50)]
        consumer.seek_to_beginning()
        assert consumer.poll(10)[0].offset == 0


def test_latest_reset_sees_only_new_records(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    fill(shared_broker.url, topic, 5)
    with Consumer(shared_broker.url, auto_offset_reset="latest") as consumer:
        consumer.assign([(topic, 0)])
        assert consumer.position((topic, 0)) == 5
        assert consumer.poll(0.3) == []
        fill(shared_broker.url, topic, 3)
        assert [r.offset for r in poll_until(consumer, 3)] == [5, 6, 7]


def test_none_reset_without_commit_raises(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    with Consumer(shared_broker.url, auto_offset_reset="none") as consumer:
        consumer.assign([(topic, 0)])
        with pytest.raises(NoOffsetForPartitionError):
            consumer.poll(1)


def test_out_of_range_offset_resets_by_policy(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    fill(shared_broker.url, topic, 4)
    with Consumer(shared_broker.url, auto_offset_reset="earliest") as consumer:
        consumer.assign([(topic, 0)])
        consumer.seek((topic, 0), 1000)
        assert [r.offset for r in poll_until(consumer, 4)] == [0, 1, 2, 3]


def test_pause_and_resume(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=2)
    fill(shared_broker.url, topic, 5, partition=0)
    fill(shared_broker.url, topic, 5, partition=1)
    with Consumer(shared_broker.url, auto_offset_reset="earliest") as consumer:
        consumer.assign([(topic, 0), (topic, 1)])
        consumer.pause([(topic, 1)])
        assert consumer.paused() == {TopicPartition(topic, 1)}
        records = poll_until(consumer, 5, timeout=3)
        records += consumer.poll(0.5)
        assert {r.partition for r in records} == {0}
        consumer.resume([(topic, 1)])
        assert {r.partition for r in poll_until(consumer, 5)} == {1}


def test_unknown_topic_on_assign(shared_broker: BrokerProcess) -> None:
    with Consumer(shared_broker.url) as consumer, pytest.raises(UnknownTopicOrPartitionError):
        consumer.assign([("no-such-topic-at-all", 0)])


def test_manual_commit_and_committed(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    require_groups_api(shared_broker.url)
    topic = new_topic()
    fill(shared_broker.url, topic, 10)
    group = f"manual-{topic}"
    tp = TopicPartition(topic, 0)
    with Consumer(shared_broker.url, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        c.assign([tp])
        assert c.committed(tp) is None
        assert len(poll_until(c, 10)) == 10
        c.commit({tp: 7})
        assert c.committed(tp) == 7
        c.commit_async().result(10)
        assert c.committed(tp) == 10
    with Consumer(shared_broker.url, group_id=group, auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert c.position(tp) == 10  # resumes from the commit


def test_async_consumer(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=2)
    fill(shared_broker.url, topic, 20, partition=1)

    async def run() -> list[int]:
        async with AsyncConsumer(shared_broker.url, auto_offset_reset="earliest") as consumer:
            await consumer.assign([(topic, p) for p in await consumer.partitions_for(topic)])
            offsets: list[int] = []
            deadline = time.monotonic() + 15
            while len(offsets) < 20 and time.monotonic() < deadline:
                offsets.extend(r.offset for r in await consumer.poll(0.5))
            consumer.seek((topic, 1), 18)
            offsets.extend(r.offset for r in await consumer.poll(5))
            return offsets

    assert asyncio.run(run()) == [*range(20), 18, 19]


def _public_operations(face: type) -> set[str]:
    return {name for name in dir(face) if not name.startswith("_")}


def test_both_consumers_offer_the_same_operations() -> None:
    """One implementation, two faces: every operation exists on both (blocking-only extras named here)."""
    blocking_only = {"commit_async"}
    assert _public_operations(Consumer) - blocking_only == _public_operations(AsyncConsumer)


def test_async_consumer_offsets_for_times_and_unassign(
    shared_broker: BrokerProcess, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    fill(shared_broker.url, topic, 5)
    tp = TopicPartition(topic, 0)

    async def run() -> tuple[dict[TopicPartition, int], set[TopicPartition]]:
        async with AsyncConsumer(shared_broker.url) as consumer:
            await consumer.assign([tp])
            found = await consumer.offsets_for_times({tp: 0})
            await consumer.unassign()
            return found, consumer.assignment()

    assert asyncio.run(run()) == ({tp: 0}, set())
