"""Producer against real brokers: batching, every codec, idempotence fields, key order, retries, errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from gafka import AsyncProducer, Compression, Consumer, Producer, TopicPartition
from gafka.errors import BrokerUnreachableError, UnknownTopicOrPartitionError
from gafka.partitioner import partition_for_key
from gafka.protocol.record_batch import BatchHeader, decode_batches, iter_batches

from .conftest import create

if TYPE_CHECKING:
    from conftest import BrokerProcess

BATCH = "application/vnd.gafka.record-batch.v2"


def stored_batches(url: str, topic: str, partition: int) -> list[tuple[BatchHeader, bytes]]:
    """Every batch of a partition as the broker stores it (raw fetch)."""
    response = httpx.get(
        f"{url}/v1/topics/{topic}/partitions/{partition}/records",
        params={"offset": 0, "max_wait_ms": 0, "max_bytes": 16 * 1024 * 1024},
        headers={"accept": BATCH},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    data = response.content
    return [(header, data[pos : pos + header.size]) for pos, header in iter_batches(data)]


def read_all(
    url: str, topic: str, expected: int, timeout: float = 20.0
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every record, read with a manually assigned consumer."""
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    with Consumer(url, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for(topic)])
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            out.extend((r.partition, r.offset, r.key, r.value) for r in consumer.poll(0.5))
        out.extend((r.partition, r.offset, r.key, r.value) for r in consumer.poll(0.2))
    return out


def test_keyed_records_land_on_murmur2_partitions_in_order(
    shared_broker: BrokerProcess, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=4)
    with Producer(shared_broker.url, linger_ms=20) as producer:
        futures = [producer.send(topic, f"{key}:{i}", key=f"key-{key}") for i in range(50) for key in range(8)]
        producer.flush()
        metadata = [future.result(10) for future in futures]
    for future, meta in zip(futures, metadata, strict=True):
        assert future.done()
        assert meta.topic == topic
    for index, meta in enumerate(metadata):
        key = index % 8
        assert meta.partition == partition_for_key(f"key-{key}".encode(), 4)
    records = read_all(shared_broker.url, topic, 400)
    assert len(records) == 400
    for key in range(8):
        values = [value for _, _, k, value in sorted(records) if k == f"key-{key}".encode()]
        assert values == [f"{key}:{i}".encode() for i in range(50)]  # order per key
    offsets = {(m.partition, m.offset) for m in metadata}
    assert offsets == {(p, o) for p, o, _, _ in records}


def test_batches_carry_producer_id_epoch_and_sequences(
    shared_broker: BrokerProcess, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2)
    with Producer(shared_broker.url, linger_ms=50, batch_size=2048) as producer:
        for i in range(300):
            producer.send(topic, b"v" * 50, key=str(i))
        producer.flush()
    producer_ids = set()
    total = 0
    for partition in (0, 1):
        batches = stored_batches(shared_broker.url, topic, partition)
        assert len(batches) > 1  # batch_size splits them
        expected_sequence = 0
        for header, _ in batches:
            assert header.producer_id > 0
            assert header.producer_epoch == 0
            assert header.base_sequence == expected_sequence
            expected_sequence += header.records_count
            producer_ids.add(header.producer_id)
            total += header.records_count
        assert len(batches) < expected_sequence  # several records per batch: batching happened
    assert len(producer_ids) == 1
    assert total == 300


def test_idempotence_off_sends_no_producer_id(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    with Producer(shared_broker.url, enable_idempotence=False) as producer:
        producer.send(topic, b"x").result(10)
    (header, _), *_ = stored_batches(shared_broker.url, topic, 0)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_codec_round_trips(shared_broker: BrokerProcess, new_topic: Callable[..., str], codec: str) -> None:
    topic = new_topic()
    values = [f"record {i} ".encode() * 20 for i in range(200)]
    with Producer(shared_broker.url, compression_type=codec, linger_ms=20) as producer:
        for value in values:
            producer.send(topic, value, headers={"h": b"1", "none": None})
        producer.flush()
    batches = stored_batches(shared_broker.url, topic, 0)
    assert {header.compression for header, _ in batches} == {Compression.parse(codec)}
    decoded = [record for _, data in batches for record in decode_batches(data, validate=True)]
    assert [record.value for record in decoded] == values
    assert decoded[0].headers == (("h", b"1"), ("none", None))
    assert [value for *_, value in read_all(shared_broker.url, topic, 200)] == values


def test_future_api_works_with_wait_callbacks_and_as_completed(
    shared_broker: BrokerProcess, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    called: list[int] = []
    with Producer(shared_broker.url, linger_ms=10) as producer:
        futures = [producer.send(topic, str(i)) for i in range(20)]
        futures[3].add_done_callback(lambda f: called.append(f.result().offset))
        done, not_done = concurrent.futures.wait(futures, timeout=10)
        assert not not_done and len(done) == 20
        assert sorted(f.result().offset for f in concurrent.futures.as_completed(futures, timeout=10)) == list(
            range(20)
        )
        assert not futures[0].cancel()
        late = producer.send(topic, "late").result(10)
        futures[0].add_done_callback(lambda f: called.append(-1))  # already done: runs at once
    assert called == [3, -1]
    assert late.offset == 20
    assert late.timestamp > 0


def test_unknown_topic_is_a_typed_error(shared_broker: BrokerProcess) -> None:
    with Producer(shared_broker.url) as producer:
        with pytest.raises(UnknownTopicOrPartitionError) as info:
            producer.send("no-such-topic-anywhere", b"x")
        assert info.value.code == "UNKNOWN_TOPIC_OR_PARTITION"
        assert info.value.retriable


def test_unknown_partition_is_a_typed_error(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=2)
    with Producer(shared_broker.url) as producer, pytest.raises(UnknownTopicOrPartitionError):
        producer.send(topic, b"x", partition=2)


def test_broker_down_is_a_clear_error() -> None:
    with Producer("http://127.0.0.1:1") as producer, pytest.raises(BrokerUnreachableError) as info:
        producer.send("t", b"x")
    assert "cannot reach the broker at http://127.0.0.1:1" in str(info.value)


def test_retries_across_a_broker_restart(restartable_broker: BrokerProcess) -> None:
    url = restartable_broker.url
    topic = create(url, partitions=2)
    with Producer(url, linger_ms=5, retry_backoff_ms=50, retry_backoff_max_ms=200, request_timeout_ms=5000) as producer:
        first = [producer.send(topic, f"before-{i}", key=str(i)) for i in range(20)]
        producer.flush()
        restartable_broker.stop()
        second = [producer.send(topic, f"during-{i}", key=str(i)) for i in range(20)]
        time.sleep(0.5)  # the sender is retrying against a dead port
        assert not any(f.done() for f in second)
        restartable_broker.start()
        producer.flush(timeout=60)
        results = [f.result(1) for f in first + second]
    assert len({(r.partition, r.offset) for r in results}) == 40
    values = sorted(value or b"" for *_, value in read_all(url, topic, 40))
    assert values == sorted([f"before-{i}".encode() for i in range(20)] + [f"during-{i}".encode() for i in range(20)])


def test_delivery_timeout_fails_the_futures(restartable_broker: BrokerProcess) -> None:
    url = restartable_broker.url
    topic = create(url)
    producer = Producer(url, delivery_timeout_ms=800, retry_backoff_ms=50, request_timeout_ms=500)
    try:
        producer.send(topic, b"ok").result(10)
        restartable_broker.stop()
        future = producer.send(topic, b"lost")
        error = future.exception(timeout=20)
        assert error is not None
        assert "delivery_timeout_ms" in str(error)
    finally:
        producer.close(timeout=5)


def test_async_producer(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=3)

    async def run() -> list[int]:
        async with AsyncProducer(shared_broker.url, linger_ms=5, compression_type="lz4") as producer:
            futures = [producer.send(topic, f"a{i}", key=str(i % 5)) for i in range(100)]
            metas = await asyncio.gather(*futures)
            one = await producer.send_and_wait(topic, "last", partition=1)
            assert one.partition == 1
            with pytest.raises(UnknownTopicOrPartitionError):
                await producer.send("no-such-topic-here", b"x")
            return [m.offset for m in metas]

    offsets = asyncio.run(run())
    assert len(offsets) == 100
    assert len(read_all(shared_broker.url, topic, 101)) == 101


def test_acks_zero_and_all(shared_broker: BrokerProcess, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    for acks in ("0", "1", "all"):
        with Producer(shared_broker.url, acks=acks) as producer:
            producer.send(topic, acks).result(10)
    assert [value for *_, value in read_all(shared_broker.url, topic, 3)] == [b"0", b"1", b"all"]
    with pytest.raises(ValueError, match="acks"):
        Producer(shared_broker.url, acks="2")
