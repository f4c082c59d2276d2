"""Small HTTP helpers for the broker tests."""

from __future__ import annotations

import re
from typing import Any

import httpx

from gafka.protocol.record_batch import NewRecord, encode_batch
from support import wait_for

__all__ = [
    "BATCH_MEDIA_TYPE",
    "create_topic",
    "fetch",
    "fetch_all",
    "metric",
    "produce",
    "produce_batch",
    "wait_for",
]

BATCH_MEDIA_TYPE = "application/vnd.gafka.record-batch.v2"


def create_topic(http: httpx.Client, name: str, partitions: int = 1, **configs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "partitions": partitions}
    if configs:
        body["configs"] = {key.replace("_", "."): value for key, value in configs.items()}
    response = http.post("/v1/topics", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def produce(http: httpx.Client, topic: str, records: list[dict[str, Any]], **params: Any) -> list[dict[str, Any]]:
    response = http.post(f"/v1/topics/{topic}/records", json={"records": records}, params=params)
    assert response.status_code == 200, response.text
    offsets: list[dict[str, Any]] = response.json()["offsets"]
    return offsets


def produce_batch(http: httpx.Client, topic: str, partition: int, values: list[bytes], **params: Any) -> dict[str, Any]:
    data = encode_batch([NewRecord(None, value) for value in values])
    response = http.post(
        f"/v1/topics/{topic}/partitions/{partition}/batches",
        content=data,
        headers={"content-type": BATCH_MEDIA_TYPE},
        params=params,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def fetch(http: httpx.Client, topic: str, partition: int, offset: int, **params: Any) -> dict[str, Any]:
    params.setdefault("max_wait_ms", 0)
    response = http.get(f"/v1/topics/{topic}/partitions/{partition}/records", params={"offset": offset, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def fetch_all(http: httpx.Client, topic: str, partition: int, start: int = 0) -> list[dict[str, Any]]:
    """Every record from ``start`` to the high watermark, following next_offset."""
    records: list[dict[str, Any]] = []
    offset = start
    while True:
        page = fetch(http, topic, partition, offset)
        records.extend(page["records"])
        if page["next_offset"] >= page["high_watermark"]:
            return records
        assert page["next_offset"] > offset, page
        offset = page["next_offset"]


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(4))
    return None
