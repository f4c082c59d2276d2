"""The Python SDK and Kafka clients on one broker: the same records, byte for byte, whichever face wrote them."""

from __future__ import annotations

import os

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from tests.conftest import BrokerProcess, unique_topic

from gafka import Consumer, Producer


def test_kafka_and_sdk_read_each_others_records_byte_for_byte(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("sdk")
    kafka_written = [(os.urandom(8), os.urandom(300), [("h", os.urandom(5))]) for _ in range(20)]
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "compression.type": "lz4"})
    for key, value, headers in kafka_written:
        producer.produce(topic, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0
    sdk_written = [(os.urandom(8), os.urandom(300), {"h": os.urandom(5)}) for _ in range(20)]
    with Producer(kafka_broker.url) as sdk:
        for key, value, headers in sdk_written:
            sdk.send(topic, value, key=key, headers=headers, partition=0).result(timeout=30)

    with Consumer(kafka_broker.url) as sdk_consumer:
        sdk_consumer.assign([(topic, 0)])
        sdk_consumer.seek((topic, 0), 0)
        read = []
        while len(read) < 40:
            batch = sdk_consumer.poll(timeout=5)
            assert batch, f"the SDK read {len(read)} of 40"
            read.extend(batch)
    assert [(r.key, r.value, [(k, v) for k, v in r.headers]) for r in read[:20]] == kafka_written
    assert [(r.key, r.value, dict(r.headers)) for r in read[20:]] == sdk_written

    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("sdk-g")})
    consumer.assign([KafkaTopicPartition(topic, 0, 0)])
    seen = []
    while len(seen) < 40:
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        seen.append(message)
    consumer.close()
    assert [(m.key(), m.value(), m.headers()) for m in seen[:20]] == kafka_written
    assert [(m.key(), m.value(), dict(m.headers())) for m in seen[20:]] == sdk_written
    assert [m.offset() for m in seen] == [r.offset for r in read] == list(range(40))
