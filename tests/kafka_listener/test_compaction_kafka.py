"""A compacted topic through the Kafka listener: kafka-python's keyless record is refused with Kafka's
INVALID_RECORD (87), the same rule as on HTTP, and a consumer reads the cleaned log across its holes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import InvalidRecordError
from tests.broker.helpers import create_topic, fetch_all, wait_for

from .conftest import kafka_bootstrap, start_kafka_broker


def test_compacted_topic_over_the_kafka_protocol(tmp_path: Path) -> None:
    broker = start_kafka_broker(tmp_path, "--log-cleaner-backoff-ms", "50")
    try:
        bootstrap = kafka_bootstrap(broker)
        with broker.client() as http:
            create_topic(http, "table", 1, cleanup_policy="compact", segment_bytes=2048, min_cleanable_dirty_ratio=0.01)
        refused = KafkaProducer(bootstrap_servers=bootstrap, acks=1, retries=0)
        with pytest.raises(InvalidRecordError):
            refused.send("table", value=b"no key", partition=0).get(timeout=10)
        refused.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1)
        sent = [(key, b"%s-%d-" % (key, round_) + b"x" * 60) for round_ in range(30) for key in (b"a", b"b", b"c")]
        futures = [producer.send("table", key=key, value=value, partition=0) for key, value in sent]
        # a retried batch may land after later ones: the log's order is what the offsets say
        written = sorted(
            (future.get(timeout=30).offset, key, value) for future, (key, value) in zip(futures, sent, strict=True)
        )
        producer.close()
        with broker.client() as http:
            wait_for(lambda: len(fetch_all(http, "table", 0)) < 30, timeout=60)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
        consumer.assign([TopicPartition("table", 0)])
        records = list(consumer)
        consumer.close()
        offsets = [record.offset for record in records]
        assert offsets == sorted(offsets) and len(offsets) < 90 and offsets[0] > 0  # holes, order kept
        latest = {record.key: record.value for record in records}
        assert latest == {key: value for _offset, key, value in written}
        assert all((r.offset, r.key, r.value) in written for r in records)  # originals at their offsets
    finally:
        with contextlib.suppress(Exception):
            broker.stop(timeout=20)
        broker.kill()
