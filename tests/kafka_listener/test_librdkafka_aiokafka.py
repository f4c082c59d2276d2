"""librdkafka (confluent-kafka's wheel) and aiokafka against a real broker's Kafka listener."""

from __future__ import annotations

import asyncio
import base64

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.partitioner.default import murmur2
from tests.conftest import BrokerProcess, unique_topic


def _kafka_partition(key: bytes, count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % count


def test_librdkafka_idempotent_produce_consume_and_commit(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("rdk")
    delivered: list[tuple[bytes, int, int]] = []

    def on_delivery(error: object, message: object) -> None:
        assert error is None, error
        delivered.append((message.key(), message.partition(), message.offset()))  # type: ignore[attr-defined]

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "partitioner": "murmur2_random",  # the Java client's partitioner
        }
    )
    for i in range(40):
        key = f"key-{i}".encode()
        producer.produce(topic, key=key, value=b"v-" + key, headers=[("n", str(i).encode())], on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(delivered) == 40
    for key, partition, _offset in delivered:
        assert partition == _kafka_partition(key, 3)

    group = unique_topic("rdk-group")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    seen = []
    while len(seen) < 40:
        message = consumer.poll(10)
        assert message is not None, f"only {len(seen)} records"
        assert message.error() is None, message.error()
        seen.append(message)
    assert sorted(m.key() for m in seen) == sorted(k for k, _p, _o in delivered)
    assert all(m.value() == b"v-" + m.key() for m in seen)
    last = {m.partition(): m.offset() for m in seen}
    consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in last], timeout=10)
    assert {tp.partition: tp.offset for tp in committed} == {p: o + 1 for p, o in last.items()}
    consumer.close()
    # The same offsets over HTTP: one group, two faces.
    with httpx.Client(base_url=kafka_broker.url) as http:
        offsets = http.get(f"/v1/groups/{group}/offsets").json()["offsets"]
    assert {o["partition"]: o["offset"] for o in offsets if o["topic"] == topic} == {p: o + 1 for p, o in last.items()}


def test_aiokafka_produce_and_consume(bootstrap: str) -> None:
    topic = unique_topic("aio")

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
        await producer.start()
        try:
            for i in range(25):
                await producer.send_and_wait(topic, value=f"aio-{i}".encode(), partition=1)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 1)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            values: list[bytes] = []
            while len(values) < 25:
                batch = await consumer.getmany(tp, timeout_ms=5000)
                assert batch, f"only {len(values)} records"
                values.extend(record.value for record in batch[tp])
            return values
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [f"aio-{i}".encode() for i in range(25)]


def test_http_produce_reads_back_over_kafka_byte_for_byte(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("cross")
    values = [bytes(range(256)) * 3, b"", b"\x00plain"]
    with httpx.Client(base_url=kafka_broker.url) as http:
        answer = http.post(
            f"/v1/topics/{topic}/records",
            json={
                "value_format": "base64",
                "records": [{"value": base64.b64encode(v).decode(), "partition": 0} for v in values],
            },
        )
        assert answer.status_code == 200, answer.text
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("x"), "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < len(values):
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        got.append(message.value() or b"")
    consumer.close()
    assert got == values
