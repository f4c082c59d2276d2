"""Fetch and offsets against a real broker: JSON and raw, ranges, long polling and its limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gafka.protocol.record_batch import decode_batches

from .helpers import BATCH_MEDIA_TYPE, create_topic, fetch, metric, produce, produce_batch, wait_for

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


def records_url(topic: str, partition: int = 0) -> str:
    return f"/v1/topics/{topic}/partitions/{partition}/records"


def parked_fetches(http: httpx.Client) -> float:
    return metric(http.get("/metrics").text, "gafka_fetch_long_polls") or 0.0


def test_fetch_from_the_middle_of_a_batch(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce_batch(http, topic, 0, [b"r0", b"r1", b"r2", b"r3", b"r4"])
    page = fetch(http, topic, 0, 2)
    assert [(r["offset"], r["value"]) for r in page["records"]] == [(2, "r2"), (3, "r3"), (4, "r4")]
    assert (page["high_watermark"], page["next_offset"], page["log_start_offset"]) == (5, 5, 0)
    assert set(page["records"][0]) == {"offset", "timestamp", "key", "value", "headers"}


def test_fetch_at_the_end_is_empty(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce(http, topic, [{"value": "a"}])
    page = fetch(http, topic, 0, 1)
    assert page == {"records": [], "high_watermark": 1, "log_start_offset": 0, "next_offset": 1}


def test_max_bytes_pages_through_batches(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    for i in range(5):
        produce_batch(http, topic, 0, [f"{i}".encode() * 100])
    page = fetch(http, topic, 0, 0, max_bytes=1)  # at least one batch, even over budget
    assert [r["offset"] for r in page["records"]] == [0]
    assert page["next_offset"] == 1
    values = []
    offset = 0
    while offset < 5:
        page = fetch(http, topic, 0, offset, max_bytes=400)
        assert page["records"]
        values += [r["value"] for r in page["records"]]
        offset = page["next_offset"]
    assert values == [f"{i}" * 100 for i in range(5)]


def test_raw_fetch_returns_stored_batches(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce_batch(http, topic, 0, [b"a", b"b"])
    produce_batch(http, topic, 0, [b"c"])
    response = http.get(
        records_url(topic), params={"offset": 1, "max_wait_ms": 0}, headers={"accept": BATCH_MEDIA_TYPE}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == BATCH_MEDIA_TYPE
    assert response.headers["gafka-high-watermark"] == "3"
    assert response.headers["gafka-next-offset"] == "3"
    assert response.headers["gafka-log-start-offset"] == "0"
    records = list(decode_batches(response.content, validate=True))
    assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c")]  # whole batches
    octet = http.get(
        records_url(topic), params={"offset": 2, "max_wait_ms": 0}, headers={"accept": "application/octet-stream"}
    )
    assert [r.value for r in decode_batches(octet.content)] == [b"c"]


def test_offset_out_of_range_reports_the_valid_range(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce(http, topic, [{"value": "a"}, {"value": "b"}])
    for offset in (3, 1000, -1):
        response = http.get(records_url(topic), params={"offset": offset, "max_wait_ms": 0})
        assert err(response) == (416, "OFFSET_OUT_OF_RANGE")
        body = response.json()
        assert (body["log_start_offset"], body["high_watermark"]) == (0, 2)
        assert "0..2" in body["message"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"offset": "first"},
        {"offset": 0, "max_bytes": 0},
        {"offset": 0, "max_bytes": "lots"},
        {"offset": 0, "max_wait_ms": -1},
        {"offset": 0, "min_bytes": -1},
        {"offset": 0, "value_format": "xml"},
    ],
)
def test_bad_fetch_parameters(http: httpx.Client, topic: str, params: dict[str, Any]) -> None:
    create_topic(http, topic)
    assert err(http.get(records_url(topic), params=params)) == (400, "INVALID_REQUEST")


def test_empty_fetch_waits_max_wait_ms(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    started = time.monotonic()
    page = fetch(http, topic, 0, 0, max_wait_ms=300)
    elapsed = time.monotonic() - started
    assert page["records"] == []
    assert elapsed >= 0.25


def test_long_poll_wakes_on_produce(http: httpx.Client, shared_broker: BrokerProcess, topic: str) -> None:
    create_topic(http, topic)
    max_wait_s = 25
    result: dict[str, Any] = {}

    def parked_fetch() -> None:
        with shared_broker.client() as own:
            started = time.monotonic()
            response = own.get(records_url(topic), params={"offset": 0, "max_wait_ms": max_wait_s * 1000})
            result["elapsed"] = time.monotonic() - started
            result["response"] = response

    baseline = parked_fetches(http)
    thread = threading.Thread(target=parked_fetch)
    thread.start()
    wait_for(lambda: parked_fetches(http) >= baseline + 1)  # it is parked now
    assert "response" not in result
    produced_at = time.monotonic()
    produce(http, topic, [{"value": "wake up"}])
    thread.join(timeout=max_wait_s + 10)
    assert not thread.is_alive()
    response = result["response"]
    assert response.status_code == 200
    assert [r["value"] for r in response.json()["records"]] == ["wake up"]
    # Woken by the append, not by max_wait_ms: it returned with data, long before the deadline.
    assert result["elapsed"] < max_wait_s / 2
    assert time.monotonic() - produced_at < max_wait_s / 2


def test_long_poll_waits_for_min_bytes(http: httpx.Client, shared_broker: BrokerProcess, topic: str) -> None:
    create_topic(http, topic)
    result: dict[str, Any] = {}

    def parked_fetch() -> None:
        with shared_broker.client() as own:
            result["response"] = own.get(
                records_url(topic), params={"offset": 0, "min_bytes": 3000, "max_wait_ms": 25_000}
            )

    baseline = parked_fetches(http)
    thread = threading.Thread(target=parked_fetch)
    thread.start()
    wait_for(lambda: parked_fetches(http) >= baseline + 1)
    produce(http, topic, [{"value": "small"}])  # ~80 bytes: not enough
    time.sleep(0.3)
    assert thread.is_alive() and "response" not in result
    produce(http, topic, [{"value": "x" * 4000}])
    thread.join(timeout=30)
    assert not thread.is_alive()
    values = [r["value"] for r in result["response"].json()["records"]]
    assert values == ["small", "x" * 4000]


def test_offsets_endpoint(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2, **{"retention.ms": "-1"})  # records from 1970: the retention pass must keep them
    url = f"/v1/topics/{topic}/partitions/0/offsets"
    assert http.get(url).json() == {"offset": 0}
    produce(http, topic, [{"value": str(i), "partition": 0, "timestamp": 1000 * (i + 1)} for i in range(5)])
    assert http.get(url, params={"at": "earliest"}).json() == {"offset": 0}
    assert http.get(url, params={"at": "latest"}).json() == {"offset": 5}
    assert http.get(url).json() == {"offset": 5}
    assert http.get(url, params={"at": 2500}).json() == {"offset": 2, "timestamp": 3000}
    assert http.get(url, params={"at": 3000}).json() == {"offset": 2, "timestamp": 3000}
    assert http.get(url, params={"at": 0}).json() == {"offset": 0, "timestamp": 1000}
    assert http.get(url, params={"at": 99_000}).json() == {"offset": 5}  # after every record: the next offset
    assert http.get(f"/v1/topics/{topic}/partitions/1/offsets", params={"at": "latest"}).json() == {"offset": 0}
    for bad in ("soon", "-5", "1.5"):
        assert err(http.get(url, params={"at": bad})) == (400, "INVALID_REQUEST")
    assert err(http.get(f"/v1/topics/{topic}/partitions/2/offsets")) == (404, "UNKNOWN_TOPIC_OR_PARTITION")


def test_deleting_a_topic_releases_parked_fetches(http: httpx.Client, shared_broker: BrokerProcess, topic: str) -> None:
    create_topic(http, topic)
    result: dict[str, Any] = {}

    def parked_fetch() -> None:
        with shared_broker.client() as own:
            result["response"] = own.get(records_url(topic), params={"offset": 0, "max_wait_ms": 25_000})

    baseline = parked_fetches(http)
    thread = threading.Thread(target=parked_fetch)
    thread.start()
    wait_for(lambda: parked_fetches(http) >= baseline + 1)
    assert http.delete(f"/v1/topics/{topic}").status_code == 204
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert err(result["response"]) == (404, "UNKNOWN_TOPIC_OR_PARTITION")


def test_too_many_long_polls_is_429(broker_factory: Any) -> None:
    broker = broker_factory("--max-concurrent-long-polls", "1")
    with broker.client() as http:
        topic = "polls"
        create_topic(http, topic)
        result: dict[str, Any] = {}

        def parked_fetch() -> None:
            with broker.client() as own:
                result["response"] = own.get(records_url(topic), params={"offset": 0, "max_wait_ms": 25_000})

        thread = threading.Thread(target=parked_fetch)
        thread.start()
        wait_for(lambda: parked_fetches(http) == 1)
        second = http.get(records_url(topic), params={"offset": 0, "max_wait_ms": 1000})
        assert err(second) == (429, "THROTTLING_QUOTA_EXCEEDED")
        assert second.headers["retry-after"] == "1"
        # A fetch that does not need to wait is still served.
        assert http.get(records_url(topic), params={"offset": 0, "max_wait_ms": 0}).status_code == 200
        produce(http, topic, [{"value": "v"}])
        thread.join(timeout=30)
        assert result["response"].status_code == 200
        assert parked_fetches(http) == 0
