"""kafka-python against a real broker's Kafka listener: produce, consume, offsets, timestamps, headers."""

from __future__ import annotations

import time

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.partitioner.default import murmur2
from tests.conftest import BrokerProcess, unique_topic


def _consume(bootstrap: str, topic: str, partitions: int, expected: int, **kwargs: object) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000, **kwargs
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    records = []
    for record in consumer:
        records.append(record)
        if len(records) == expected:
            break
    consumer.close()
    return records


def test_keys_land_on_kafkas_partitions_with_headers(bootstrap: str) -> None:
    topic = unique_topic("kp")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1)
    keys = [f"key-{i}".encode() for i in range(30)]
    futures = [
        producer.send(topic, key=key, value=b"value-" + key, headers=[("h", key)], timestamp_ms=1_700_000_000_000 + i)
        for i, key in enumerate(keys)
    ]
    producer.flush()
    sent = [future.get(timeout=10) for future in futures]
    producer.close()
    for key, metadata in zip(keys, sent, strict=True):
        assert metadata.partition == (murmur2(key) & 0x7FFFFFFF) % 3
    records = _consume(bootstrap, topic, 3, len(keys))
    assert sorted(r.key for r in records) == sorted(keys)
    for record in records:
        assert record.value == b"value-" + record.key
        assert record.headers == [("h", record.key)]
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 3


def test_every_compression_codec(bootstrap: str) -> None:
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        topic = unique_topic(f"codec-{codec}")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec)
        for i in range(50):
            producer.send(topic, key=b"k", value=f"{codec}-{i}".encode() * 20)
        producer.flush()
        producer.close()
        partition = (murmur2(b"k") & 0x7FFFFFFF) % 3
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
        consumer.assign([TopicPartition(topic, partition)])
        values = [record.value for _, record in zip(range(50), consumer, strict=False)]
        consumer.close()
        assert values == [f"{codec}-{i}".encode() * 20 for i in range(50)], codec


def test_commit_and_fetch_offsets_and_seek_by_timestamp(bootstrap: str) -> None:
    topic = unique_topic("offsets")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    base = int(time.time() * 1000) - 60_000  # recent: retention must not delete them mid-test
    for i in range(10):
        producer.send(topic, value=str(i).encode(), partition=1, timestamp_ms=base + i * 1000)
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 1)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=unique_topic("g"), enable_auto_commit=False)
    consumer.assign([tp])
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 10}
    found = consumer.offsets_for_times({tp: base + 4_500})[tp]
    assert (found.offset, found.timestamp) == (5, base + 5_000)
    assert consumer.offsets_for_times({tp: base + 60_000})[tp] is None
    consumer.seek(tp, found.offset)
    batch = consumer.poll(timeout_ms=5000)
    assert batch[tp][0].value == b"5"
    assert consumer.committed(tp) is None
    consumer.commit({tp: OffsetAndMetadata(7, "meta", -1)})
    assert consumer.committed(tp) == 7
    consumer.close()


def test_long_poll_woken_by_append(bootstrap: str) -> None:
    topic = unique_topic("poll")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, value=b"first", partition=0).get(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20_000, auto_offset_reset="latest")
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 1)
    producer.send(topic, value=b"second", partition=0).get(timeout=10)
    producer.close()
    records = consumer.poll(timeout_ms=15_000)
    assert [r.value for r in records.get(tp, [])] == [b"second"]
    consumer.close()


def test_idempotent_producer_and_metadata(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("idem")
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    for i in range(20):
        producer.send(topic, value=str(i).encode(), partition=2)
    producer.flush()
    producer.close()
    with httpx.Client(base_url=kafka_broker.url) as http:
        fetched = http.get(f"/v1/topics/{topic}/partitions/2/records", params={"offset": 0}).json()
    assert [r["value"] for r in fetched["records"]] == [str(i) for i in range(20)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    assert topic in admin.list_topics()
    admin.close()
