"""Produce, JSON and binary, against a real broker: partitioning, formats, acks, limits and rejections."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import crc32c
import httpx
import pytest

from gafka.partitioner import partition_for_key
from gafka.protocol.record_batch import Compression, NewRecord, decode_batches, encode_batch

from .helpers import BATCH_MEDIA_TYPE, create_topic, fetch, fetch_all, produce

if TYPE_CHECKING:
    from conftest import BrokerProcess


@pytest.fixture
def http(shared_broker: BrokerProcess) -> Iterator[httpx.Client]:
    with shared_broker.client() as client:
        yield client


def err(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    assert body["message"], body
    return response.status_code, body["error_code"]


def high_watermarks(http: httpx.Client, topic: str) -> list[int]:
    return [p["high_watermark"] for p in http.get(f"/v1/topics/{topic}").json()["partitions"]]


def test_offsets_in_request_order(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    before = int(time.time() * 1000)
    offsets = produce(http, topic, [{"value": f"v{i}"} for i in range(5)])
    assert [(o["partition"], o["offset"]) for o in offsets] == [(0, i) for i in range(5)]
    assert all(before <= o["timestamp"] <= int(time.time() * 1000) for o in offsets)
    records = fetch_all(http, topic, 0)
    assert [r["value"] for r in records] == [f"v{i}" for i in range(5)]
    assert [r["offset"] for r in records] == list(range(5))


def test_keys_use_kafkas_partitioner(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 7)
    keys = [f"user-{i}" for i in range(40)]
    offsets = produce(http, topic, [{"key": key, "value": "v"} for key in keys])
    expected = [partition_for_key(key.encode(), 7) for key in keys]
    assert [o["partition"] for o in offsets] == expected
    assert len(set(expected)) > 1
    # Same key, same partition, on every request.
    again = produce(http, topic, [{"key": keys[0], "value": "w"}])
    assert again[0]["partition"] == expected[0]


def test_base64_keys_hash_their_bytes(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 5)
    raw = b"\x00\xffkey"
    response = http.post(
        f"/v1/topics/{topic}/records",
        json={"key_format": "base64", "records": [{"key": base64.b64encode(raw).decode(), "value": "v"}]},
    )
    assert response.json()["offsets"][0]["partition"] == partition_for_key(raw, 5)


def test_explicit_partition_wins_over_key(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 4)
    key = "k"
    chosen = (partition_for_key(b"k", 4) + 1) % 4
    offsets = produce(http, topic, [{"key": key, "value": "v", "partition": chosen}])
    assert offsets[0]["partition"] == chosen


def test_keyless_records_are_spread(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 4)
    offsets = produce(http, topic, [{"value": i} for i in range(8)])
    assert sorted({o["partition"] for o in offsets}) == [0, 1, 2, 3]
    one_by_one = {produce(http, topic, [{"value": "x"}])[0]["partition"] for _ in range(8)}
    assert one_by_one == {0, 1, 2, 3}


def test_formats_headers_and_timestamps_round_trip(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    response = http.post(
        f"/v1/topics/{topic}/records",
        json={
            "key_format": "json",
            "value_format": "json",
            "records": [
                {"key": {"id": 1}, "value": [1, "two"], "timestamp": 1_600_000_000_000, "headers": {"h": "v"}},
                {"key": None, "value": None, "headers": [{"key": "b", "value": "/wA=", "format": "base64"}]},
            ],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["offsets"][0]["timestamp"] == 1_600_000_000_000
    page = fetch(http, topic, 0, 0, key_format="json", value_format="json")
    first, second = page["records"]
    assert (first["key"], first["value"], first["timestamp"]) == ({"id": 1}, [1, "two"], 1_600_000_000_000)
    assert first["headers"] == [{"key": "h", "value": "v"}]
    assert (second["key"], second["value"]) == (None, None)
    assert second["headers"] == [{"key": "b", "value": "/wA=", "format": "base64"}]
    as_strings = fetch(http, topic, 0, 0)["records"]
    assert as_strings[0]["key"] == '{"id":1}'
    as_base64 = fetch(http, topic, 0, 0, value_format="base64")["records"]
    assert base64.b64decode(as_base64[0]["value"]) == b'[1,"two"]'


def test_log_append_time_topic_stamps_the_broker_time(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1, message_timestamp_type="LogAppendTime")
    before = int(time.time() * 1000)
    [offset] = produce(http, topic, [{"value": "v", "timestamp": 1000}])
    assert offset["timestamp"] >= before
    assert fetch(http, topic, 0, 0)["records"][0]["timestamp"] == offset["timestamp"]


@pytest.mark.parametrize("acks", ["0", "1", "all", "-1"])
def test_acks(http: httpx.Client, topic: str, acks: str) -> None:
    create_topic(http, topic, 1)
    offsets = produce(http, topic, [{"value": "v"}], acks=acks)
    assert offsets[0]["offset"] == 0
    assert fetch(http, topic, 0, 0)["records"][0]["value"] == "v"


def test_acks_all_checks_min_insync_replicas(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1, min_insync_replicas=2)
    response = http.post(f"/v1/topics/{topic}/records", json={"records": [{"value": "v"}]}, params={"acks": "all"})
    assert err(response) == (503, "NOT_ENOUGH_REPLICAS")
    batch = encode_batch([NewRecord(None, b"v")])
    response = http.post(
        f"/v1/topics/{topic}/partitions/0/batches",
        content=batch,
        headers={"content-type": BATCH_MEDIA_TYPE},
        params={"acks": "all"},
    )
    assert err(response) == (503, "NOT_ENOUGH_REPLICAS")
    assert high_watermarks(http, topic) == [0]
    # acks=1 does not need the in-sync replicas.
    assert produce(http, topic, [{"value": "v"}], acks="1")[0]["offset"] == 0


def test_bad_acks(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    response = http.post(f"/v1/topics/{topic}/records", json={"records": [{"value": "v"}]}, params={"acks": "2"})
    assert err(response) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"records": [', "INVALID_REQUEST"),
        (b"[]", "INVALID_REQUEST"),
        (b'{"records": []}', "INVALID_REQUEST"),
        (b'{"records": [{"value": "ok"}, {"value": "v", "timestamp": "noon"}]}', "INVALID_TIMESTAMP"),
        (b'{"records": [{"value": "ok"}, {"value": 1}], "value_format": "base64"}', "INVALID_RECORD"),
        (b'{"records": [{"value": "ok"}], "key_format": "yaml"}', "INVALID_REQUEST"),
        (b'{"records": [{"value": "ok"}, {"value": "v", "partition": "0"}]}', "INVALID_RECORD"),
        (b"\xff\xfe", "INVALID_REQUEST"),
        (b'{"records": [{"value": "ok"}, {"val": "x"}]}', "INVALID_REQUEST"),
        (b'{"records": [{"value": "ok"}], "value_fromat": "base64"}', "INVALID_REQUEST"),
    ],
)
def test_malformed_produce_is_400_and_writes_nothing(http: httpx.Client, topic: str, content: bytes, code: str) -> None:
    create_topic(http, topic, 2)
    response = http.post(f"/v1/topics/{topic}/records", content=content, headers={"content-type": "application/json"})
    assert err(response) == (400, code)
    assert high_watermarks(http, topic) == [0, 0]


def test_produce_content_type(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    body = b'{"records": [{"value": "v"}]}'
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", BATCH_MEDIA_TYPE):
        headers = {} if content_type is None else {"content-type": content_type}
        response = http.post(f"/v1/topics/{topic}/records", content=body, headers=headers)
        assert err(response) == (415, "UNSUPPORTED_MEDIA_TYPE")
    ok = http.post(
        f"/v1/topics/{topic}/records", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200
    response = http.post(
        f"/v1/topics/{topic}/partitions/0/batches",
        content=encode_batch([NewRecord(None, b"v")]),
        headers={"content-type": "application/json"},
    )
    assert err(response) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert high_watermarks(http, topic) == [1]


def test_record_too_large_for_the_topic(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2, max_message_bytes=1000)
    response = http.post(
        f"/v1/topics/{topic}/records",
        json={"records": [{"value": "small", "partition": 0}, {"value": "x" * 2000, "partition": 1}]},
    )
    assert err(response) == (413, "MESSAGE_TOO_LARGE")
    assert response.json()["record_index"] == 1
    assert high_watermarks(http, topic) == [0, 0]
    # Many small records that together exceed it are split into several batches, not refused.
    offsets = produce(http, topic, [{"value": "y" * 300, "partition": 0} for _ in range(10)])
    assert [o["offset"] for o in offsets] == list(range(10))
    big_batch = encode_batch([NewRecord(None, b"z" * 2000)])
    response = http.post(
        f"/v1/topics/{topic}/partitions/1/batches", content=big_batch, headers={"content-type": BATCH_MEDIA_TYPE}
    )
    assert err(response) == (413, "MESSAGE_TOO_LARGE")
    assert high_watermarks(http, topic) == [10, 0]


def test_binary_batches_append_as_sent(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2)
    first = encode_batch([NewRecord(b"k", b"a", (("h", b"1"),), 111), NewRecord(None, b"b", (), 112)])
    second = encode_batch([NewRecord(None, b"c")], compression=Compression.GZIP)
    response = http.post(
        f"/v1/topics/{topic}/partitions/1/batches", content=first + second, headers={"content-type": BATCH_MEDIA_TYPE}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "partition": 1,
        "base_offset": 0,
        "last_offset": 2,
        "record_count": 3,
        "log_append_time": -1,
    }
    raw = http.get(
        f"/v1/topics/{topic}/partitions/1/records",
        params={"offset": 0, "max_wait_ms": 0},
        headers={"accept": BATCH_MEDIA_TYPE},
    )
    assert raw.status_code == 200
    # Appended without re-encoding: the stored bytes are the sent bytes but for offsets and epoch.
    assert raw.content[12:16] == b"\x00\x00\x00\x00"  # leader epoch 0 stamped
    assert len(raw.content) == len(first) + len(second)
    assert raw.content[16 : len(first)] == first[16:]
    assert raw.content[len(first) + 16 :] == second[16:]
    records = list(decode_batches(raw.content, validate=True))
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [
        (0, b"k", b"a", 111),
        (1, None, b"b", 112),
        (2, None, b"c", records[2].timestamp),
    ]
    assert records[0].headers == (("h", b"1"),)


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_compressed_batches(http: httpx.Client, topic: str, codec: Compression) -> None:
    create_topic(http, topic, 1)
    batch = encode_batch([NewRecord(None, f"value-{i}".encode()) for i in range(50)], compression=codec)
    response = http.post(
        f"/v1/topics/{topic}/partitions/0/batches",
        content=batch,
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert [r["value"] for r in fetch_all(http, topic, 0)] == [f"value-{i}" for i in range(50)]


def test_corrupt_batches_are_rejected_and_write_nothing(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    good = encode_batch([NewRecord(None, b"good")])
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    truncated = good[:-3]
    for body, code in (
        (good + bytes(flipped), "CORRUPT_MESSAGE"),
        (good + truncated, "CORRUPT_MESSAGE"),
        (b"definitely not a batch" * 4, "CORRUPT_MESSAGE"),
        (good[:16] + b"\x01" + good[17:], "CORRUPT_MESSAGE"),
    ):
        response = http.post(
            f"/v1/topics/{topic}/partitions/0/batches", content=body, headers={"content-type": BATCH_MEDIA_TYPE}
        )
        assert err(response) == (400, code)
    empty = http.post(
        f"/v1/topics/{topic}/partitions/0/batches", content=b"", headers={"content-type": BATCH_MEDIA_TYPE}
    )
    assert err(empty) == (400, "INVALID_REQUEST")
    assert high_watermarks(http, topic) == [0]


def test_invalid_record_layout_is_rejected(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    batch = bytearray(encode_batch([NewRecord(None, b"a"), NewRecord(None, b"b")]))
    # Claim three records while holding two: intact CRC (recomputed), broken content.
    struct.pack_into(">i", batch, 57, 3)
    struct.pack_into(">i", batch, 23, 2)
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[21:])))
    response = http.post(
        f"/v1/topics/{topic}/partitions/0/batches", content=bytes(batch), headers={"content-type": BATCH_MEDIA_TYPE}
    )
    assert err(response) == (400, "INVALID_RECORD")
    assert high_watermarks(http, topic) == [0]


def test_auto_create_on_first_produce(broker_factory: Any) -> None:
    broker = broker_factory("--auto-create-topics", "--default-partitions", "3")
    with broker.client() as http:
        offsets = produce(http, "fresh", [{"key": "k", "value": "v"}])
        assert offsets[0]["partition"] == partition_for_key(b"k", 3)
        topic = http.get("/v1/topics/fresh").json()
        assert len(topic["partitions"]) == 3
        assert topic["config_overrides"] == {}
        batch = encode_batch([NewRecord(None, b"v")])
        response = http.post(
            "/v1/topics/fresh2/partitions/1/batches", content=batch, headers={"content-type": BATCH_MEDIA_TYPE}
        )
        assert response.status_code == 200
        assert err(http.post("/v1/topics/bad name!/records", json={"records": [{"value": "v"}]})) == (
            400,
            "INVALID_TOPIC_EXCEPTION",
        )


def test_unknown_record_field_is_named(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1)
    response = http.post(f"/v1/topics/{topic}/records", json={"records": [{"val": "x"}]})
    assert err(response) == (400, "INVALID_REQUEST")
    assert "'val'" in response.json()["message"]
    assert high_watermarks(http, topic) == [0]
