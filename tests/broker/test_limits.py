"""Request limits: body size, records per request, fetch size and wait are bounded; the broker stays healthy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gafka.protocol.record_batch import NewRecord, encode_batch

from .helpers import BATCH_MEDIA_TYPE, create_topic, fetch, produce_batch

if TYPE_CHECKING:
    from conftest import BrokerProcess


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    from conftest import BrokerProcess

    root = tmp_path_factory.mktemp("limited")
    broker = BrokerProcess(
        root / "data",
        root,
        (
            "--max-request-bytes",
            "2048",
            "--max-records-per-request",
            "5",
            "--max-fetch-bytes",
            "1024",
            "--max-wait-ms",
            "200",
        ),
    )
    broker.start()
    with broker.client() as http:
        create_topic(http, "limits")
    yield broker
    broker.stop()
    broker.kill()


def err(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error_code"]


def hw(http: httpx.Client) -> int:
    return int(http.get("/v1/topics/limits").json()["partitions"][0]["high_watermark"])


def test_body_over_max_request_bytes(limited: BrokerProcess) -> None:
    with limited.client() as http:
        before = hw(http)
        response = http.post("/v1/topics/limits/records", json={"records": [{"value": "x" * 3000}]})
        assert err(response) == (413, "RECORD_LIST_TOO_LARGE")
        assert response.json()["max_request_bytes"] == 2048
        assert response.headers["connection"] == "close"
        batch = encode_batch([NewRecord(None, b"y" * 3000)])
        response = http.post(
            "/v1/topics/limits/partitions/0/batches", content=batch, headers={"content-type": BATCH_MEDIA_TYPE}
        )
        assert err(response) == (413, "RECORD_LIST_TOO_LARGE")
        assert hw(http) == before
        assert http.get("/healthz").status_code == 200


def test_chunked_body_is_cut_off(limited: BrokerProcess) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"records": [{"value": "'
        for _ in range(100):
            yield b"z" * 1000
        yield b'"}]}'

    with limited.client() as http:
        before = hw(http)
        response = http.post("/v1/topics/limits/records", content=body(), headers={"content-type": "application/json"})
        assert err(response) == (413, "RECORD_LIST_TOO_LARGE")
        assert hw(http) == before


def test_too_many_records(limited: BrokerProcess) -> None:
    with limited.client() as http:
        before = hw(http)
        response = http.post("/v1/topics/limits/records", json={"records": [{"value": str(i)} for i in range(6)]})
        assert err(response) == (413, "RECORD_LIST_TOO_LARGE")
        batch = encode_batch([NewRecord(None, b"v") for _ in range(6)])
        response = http.post(
            "/v1/topics/limits/partitions/0/batches", content=batch, headers={"content-type": BATCH_MEDIA_TYPE}
        )
        assert err(response) == (413, "RECORD_LIST_TOO_LARGE")
        assert hw(http) == before
        assert http.post("/v1/topics/limits/records", json={"records": [{"value": "ok"}] * 5}).status_code == 200


def test_fetch_bytes_and_wait_are_capped(limited: BrokerProcess) -> None:
    with limited.client() as http:
        create_topic(http, "capped")
        for i in range(3):
            produce_batch(http, "capped", 0, [str(i).encode() * 700])
        page = fetch(http, "capped", 0, 0, max_bytes=10**9)
        assert [r["offset"] for r in page["records"]] == [0]  # 1024-byte cap: one ~770-byte batch
        started = time.monotonic()
        page = fetch(http, "capped", 0, 3, max_wait_ms=60_000)
        assert page["records"] == []
        assert time.monotonic() - started < 10  # waited at most --max-wait-ms (200 ms), not 60 s
