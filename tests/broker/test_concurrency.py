"""Concurrent producers: every acknowledged record is stored once, at the offset reported, in send order."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson

from gafka.protocol.record_batch import NewRecord, encode_batch

from .helpers import BATCH_MEDIA_TYPE, create_topic, fetch_all

if TYPE_CHECKING:
    from conftest import BrokerProcess

PRODUCERS = 6
REQUESTS = 60


def run_threads(target: Any, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_concurrent_json_producers_keep_per_partition_order(shared_broker: BrokerProcess, topic: str) -> None:
    with shared_broker.client() as http:
        create_topic(http, topic, 3)
    acknowledged: dict[tuple[int, int], tuple[int, int]] = {}  # (producer, seq) -> (partition, offset)
    lock = threading.Lock()

    def producer(index: int) -> None:
        with shared_broker.client() as http:
            seq = 0
            for request in range(REQUESTS):
                size = 1 if request % 3 else 4  # mostly one record per request, some batches
                records = []
                for _ in range(size):
                    records.append({"key": f"p{index}-k{seq % 5}", "value": {"producer": index, "seq": seq}})
                    seq += 1
                response = http.post(f"/v1/topics/{topic}/records", json={"records": records})
                assert response.status_code == 200, response.text
                with lock:
                    for record, offset in zip(records, response.json()["offsets"], strict=True):
                        acknowledged[(index, record["value"]["seq"])] = (offset["partition"], offset["offset"])

    assert run_threads(producer, PRODUCERS) == []
    stored: dict[tuple[int, int], tuple[int, int]] = {}
    with shared_broker.client() as http:
        for partition in range(3):
            records = fetch_all(http, topic, partition)
            assert [r["offset"] for r in records] == list(range(len(records)))  # contiguous, no gaps
            last_seq: dict[int, int] = defaultdict(lambda: -1)
            for record in records:
                value = orjson.loads(record["value"])
                producer_id, seq = value["producer"], value["seq"]
                assert seq > last_seq[producer_id], f"producer {producer_id} out of order in partition {partition}"
                last_seq[producer_id] = seq
                assert (producer_id, seq) not in stored, "duplicate record"
                stored[(producer_id, seq)] = (partition, record["offset"])
    assert stored == acknowledged  # every acknowledged record, exactly where the broker said


def test_concurrent_batch_producers_on_one_partition(shared_broker: BrokerProcess, topic: str) -> None:
    with shared_broker.client() as http:
        create_topic(http, topic, 1)
    bases: dict[int, list[int]] = defaultdict(list)

    def producer(index: int) -> None:
        with shared_broker.client() as http:
            for batch_no in range(REQUESTS // 2):
                values = [f"{index}:{batch_no}:{i}".encode() for i in range(10)]
                response = http.post(
                    f"/v1/topics/{topic}/partitions/0/batches",
                    content=encode_batch([NewRecord(None, value) for value in values]),
                    headers={"content-type": BATCH_MEDIA_TYPE},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["last_offset"] - body["base_offset"] == 9
                bases[index].append(body["base_offset"])

    assert run_threads(producer, PRODUCERS) == []
    with shared_broker.client() as http:
        records = fetch_all(http, topic, 0)
    assert len(records) == PRODUCERS * (REQUESTS // 2) * 10
    by_offset = {r["offset"]: r["value"] for r in records}
    for index, offsets in bases.items():
        assert offsets == sorted(offsets)
        for batch_no, base in enumerate(offsets):
            # Each batch is contiguous and unsplit.
            assert [by_offset[base + i] for i in range(10)] == [f"{index}:{batch_no}:{i}" for i in range(10)]
