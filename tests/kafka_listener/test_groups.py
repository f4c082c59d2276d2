"""Classic consumer groups with real clients: members join and leave, partitions move, offsets carry over."""

from __future__ import annotations

import time

import httpx
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer
from tests.conftest import BrokerProcess, unique_topic


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 3) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(count):
        producer.send(topic, value=str(i).encode(), partition=i % partitions)
    producer.flush()
    producer.close()


def _poll_until(consumers: list[KafkaConsumer], seen: dict[int, list[bytes]], total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in seen.values()) < total:
        assert time.monotonic() < deadline, f"read {sum(len(v) for v in seen.values())} of {total}"
        for index, consumer in enumerate(consumers):
            for records in consumer.poll(timeout_ms=200).values():
                seen.setdefault(index, []).extend(r.value for r in records)


def test_kafka_python_group_rebalances_as_members_join_and_leave(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("grp")
    group = unique_topic("grp-g")
    _produce(bootstrap, topic, 30)
    settings = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 500,
    }
    first = KafkaConsumer(topic, **settings)
    seen: dict[int, list[bytes]] = {}
    _poll_until([first], seen, 30, 120)
    assert sorted(seen[0], key=int) == [str(i).encode() for i in range(30)]
    first.commit()
    second = KafkaConsumer(topic, **settings)
    deadline = time.monotonic() + 120
    while not (first.assignment() and second.assignment()) or (first.assignment() & second.assignment()):
        assert time.monotonic() < deadline, (first.assignment(), second.assignment())
        first.poll(timeout_ms=200)
        second.poll(timeout_ms=200)
    assert len(first.assignment() | second.assignment()) == 3
    _produce(bootstrap, topic, 30)
    more: dict[int, list[bytes]] = {}
    _poll_until([first, second], more, 30, 120)
    assert sorted(more[0] + more[1], key=int) == [str(i).encode() for i in range(30)]  # nothing read twice
    first.commit()
    second.commit()
    second.close()  # LeaveGroup: the first member takes every partition back
    deadline = time.monotonic() + 120
    while len(first.assignment()) != 3:
        assert time.monotonic() < deadline, first.assignment()
        first.poll(timeout_ms=200)
    first.close()
    with httpx.Client(base_url=kafka_broker.url) as http:
        described = http.get(f"/v1/groups/{group}").json()
    lags = {row["partition"]: row["lag"] for row in described["partitions"] if row["topic"] == topic}
    assert lags == {0: 0, 1: 0, 2: 0}, described


def test_librdkafka_cooperative_sticky_and_static_membership(bootstrap: str) -> None:
    topic = unique_topic("coop")
    group = unique_topic("coop-g")
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(60):
        producer.produce(topic, value=str(i).encode(), partition=i % 3)
    assert producer.flush(30) == 0

    def member(instance: str | None) -> Consumer:
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 500,
        }
        if instance is not None:
            settings["group.instance.id"] = instance
        consumer = Consumer(settings)
        consumer.subscribe([topic])
        return consumer

    members = [member("a"), member("b")]
    values: list[bytes] = []
    deadline = time.monotonic() + 120
    while len(values) < 60:
        assert time.monotonic() < deadline, f"read {len(values)} of 60"
        for consumer in members:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
    assert sorted(values, key=int) == [str(i).encode() for i in range(60)]
    assignments = [{tp.partition for tp in consumer.assignment()} for consumer in members]
    assert assignments[0] and assignments[1] and not assignments[0] & assignments[1]
    for consumer in members:
        consumer.commit(asynchronous=False)
    # A static member restarting (same group.instance.id) gets its partitions back without a rebalance.
    members[1].close()
    replacement = member("b")
    deadline = time.monotonic() + 120
    while {tp.partition for tp in replacement.assignment()} != assignments[1]:
        assert time.monotonic() < deadline, replacement.assignment()
        replacement.poll(0.2)
        members[0].poll(0.2)
    assert {tp.partition for tp in members[0].assignment()} == assignments[0]
    replacement.close()
    members[0].close()
