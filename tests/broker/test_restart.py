"""Restarts: data intact after SIGTERM (clean) and after SIGKILL for a flush.messages=1 topic."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from .helpers import create_topic, fetch, fetch_all, produce, wait_for


def test_sigterm_flushes_marks_clean_and_exits_0(broker_factory: Any) -> None:
    broker = broker_factory()
    with broker.client() as http:
        cluster_id = http.get("/v1/cluster").json()["cluster_id"]
        create_topic(http, "orders", 3, retention_ms=3_600_000)
        create_topic(http, "audit", 1)
        sent = [{"key": f"k{i}", "value": f"v{i}"} for i in range(200)]
        offsets = produce(http, "orders", sent)
        produce(http, "audit", [{"value": "a"}])
        described = http.get("/v1/topics/orders").json()
    assert broker.stop() == 0
    assert (broker.data_dir / ".gafka_cleanshutdown").exists()
    assert "event=clean_shutdown" in broker.log_text()

    broker.start()
    assert "clean_shutdown=True" in broker.log_text()
    with broker.client() as http:
        assert http.get("/v1/cluster").json()["cluster_id"] == cluster_id
        after = http.get("/v1/topics/orders").json()
        # A restart is a new incarnation: the controller re-elects the broker with a new leader epoch.
        for old, new in zip(described["partitions"], after["partitions"], strict=True):
            assert new.pop("leader_epoch") > old.pop("leader_epoch")
        assert after == described
        stored = {p: fetch_all(http, "orders", p) for p in range(3)}
        for record, offset in zip(sent, offsets, strict=True):
            found = stored[offset["partition"]][offset["offset"]]
            assert (found["key"], found["value"]) == (record["key"], record["value"])
        assert sum(len(records) for records in stored.values()) == 200
        assert [r["value"] for r in fetch_all(http, "audit", 0)] == ["a"]
        # The log continues where it stopped.
        assert produce(http, "audit", [{"value": "b"}])[0]["offset"] == 1


def test_sigkill_keeps_every_acknowledged_record_with_flush_messages_1(broker_factory: Any) -> None:
    broker = broker_factory()
    with broker.client() as http:
        create_topic(http, "durable", 2, flush_messages=1)
    acknowledged: list[tuple[int, int, str]] = []
    stop = threading.Event()

    def producer() -> None:
        with broker.client() as http:
            n = 0
            while not stop.is_set():
                try:
                    response = http.post("/v1/topics/durable/records", json={"records": [{"value": f"r{n}"}]})
                except Exception:
                    return  # the broker was killed mid-request: that record was never acknowledged
                if response.status_code != 200:
                    return
                offset = response.json()["offsets"][0]
                acknowledged.append((offset["partition"], offset["offset"], f"r{n}"))
                n += 1

    thread = threading.Thread(target=producer)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 150, timeout=60)
    broker.kill()  # SIGKILL while producing
    stop.set()
    thread.join(timeout=30)
    assert not (broker.data_dir / ".gafka_cleanshutdown").exists()

    broker.start()
    assert "clean_shutdown=False" in broker.log_text()
    with broker.client() as http:
        stored = {p: {r["offset"]: r["value"] for r in fetch_all(http, "durable", p)} for p in range(2)}
    for partition, offset, value in acknowledged:
        assert stored[partition].get(offset) == value, f"acknowledged record {value} lost"


def test_sigterm_releases_long_polls_and_finishes_in_flight(broker_factory: Any) -> None:
    broker = broker_factory()
    with broker.client() as http:
        create_topic(http, "t")
    result: dict[str, Any] = {}

    def parked_fetch() -> None:
        with broker.client() as http:
            started = time.monotonic()
            result["response"] = http.get(
                "/v1/topics/t/partitions/0/records", params={"offset": 0, "max_wait_ms": 30_000}
            )
            result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=parked_fetch)
    thread.start()
    with broker.client() as http:
        wait_for(lambda: "gafka_fetch_long_polls 1.0" in http.get("/metrics").text)
    broker.signal(signal.SIGTERM)
    assert broker.wait(timeout=25) == 0
    thread.join(timeout=5)
    # The parked fetch was answered (empty) instead of being cut off or holding the shutdown for 30 s.
    assert result["response"].status_code == 200
    assert result["response"].json()["records"] == []
    assert result["elapsed"] < 20


def test_restart_keeps_topics_and_data(
    broker_factory: Any,
) -> None:
    broker = broker_factory("--default-partitions", "2")
    with broker.client() as http:
        create_topic(http, "x", 2)
        produce(http, "x", [{"value": "1", "partition": 1}])
    broker.restart()
    with broker.client() as http:
        assert fetch(http, "x", 1, 0)["records"][0]["value"] == "1"
        assert len(http.get("/v1/topics/x").json()["partitions"]) == 2
