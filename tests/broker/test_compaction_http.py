"""A compacted topic through a real broker process: keyless records refused, the cleaner compacts in
the background, consumers read the last value per key at unchanged offsets, before and after a restart."""

from __future__ import annotations

from typing import Any

from gafka.protocol.record_batch import NewRecord, encode_batch

from .helpers import BATCH_MEDIA_TYPE, create_topic, fetch_all, metric, produce, wait_for

KEYS = [f"k{index}" for index in range(5)]


def _live(records: list[dict[str, Any]]) -> dict[str, str]:
    view: dict[str, str | None] = {}
    for record in records:
        view[record["key"]] = record["value"]
    return {key: value for key, value in view.items() if value is not None}


def test_compacted_topic_over_http(broker_factory: Any) -> None:
    broker = broker_factory("--log-cleaner-backoff-ms", "50")
    with broker.client() as http:
        create_topic(
            http,
            "state",
            1,
            cleanup_policy="compact",
            segment_bytes=1024,
            min_cleanable_dirty_ratio="0.01",
            delete_retention_ms=0,
        )
        refused = http.post("/v1/topics/state/records", json={"records": [{"key": "a", "value": "1"}, {"value": "x"}]})
        assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_RECORD", refused.text
        batch = encode_batch([NewRecord(None, b"x")])
        refused = http.post(
            "/v1/topics/state/partitions/0/batches", content=batch, headers={"content-type": BATCH_MEDIA_TYPE}
        )
        assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_RECORD", refused.text
        assert fetch_all(http, "state", 0) == []  # nothing of either request was written

        original: list[dict[str, Any]] = []  # what was written, at the offsets the broker answered
        for round_ in range(40):
            records = [{"key": key, "value": f"{key}-{round_}-" + "x" * 40} for key in KEYS]
            if round_ == 30:
                records.append({"key": "gone", "value": None})  # a tombstone, removed (delete.retention.ms=0)
            offsets = produce(http, "state", records)
            original += [{**record, "offset": at["offset"]} for record, at in zip(records, offsets, strict=True)]
        sent = original

        wait_for(lambda: len(fetch_all(http, "state", 0)) < len(original) / 2, timeout=60)
        after = fetch_all(http, "state", 0)
        by_offset = {record["offset"]: (record["key"], record["value"]) for record in original}
        assert all(by_offset[record["offset"]] == (record["key"], record["value"]) for record in after)
        assert _live(after) == _live(original)
        text = http.get("/metrics").text
        assert metric(text, "gafka_log_cleaner_dirty_ratio", topic="state", partition="0") is not None
        assert (metric(text, "gafka_log_cleaner_bytes_read_total", topic="state", partition="0") or 0) > 0
        assert metric(text, "gafka_log_cleaner_last_clean_timestamp_seconds", topic="state", partition="0")
        topic = http.get("/v1/topics/state").json()
        assert topic["configs"]["cleanup.policy"] == "compact"
    assert broker.stop() == 0
    broker.start()
    with broker.client() as http:
        again = fetch_all(http, "state", 0)
        assert _live(again) == _live(original)
        assert {record["offset"] for record in again} <= {record["offset"] for record in after}
        next_offset = produce(http, "state", [{"key": "k0", "value": "last"}])[0]["offset"]
        assert next_offset == len(sent)
