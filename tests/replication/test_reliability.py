"""Reliability under faults (issue 13), against real processes: what clients see while leadership moves.

- the high watermark never goes back as any client sees it (KIP-207), and preferred leadership returns only
  to a caught-up replica;
- a controlled shutdown (SIGTERM) takes the broker out of every ISR before it stops, so no ``acks=all``
  request waits for it, and a rolling restart of every broker shows no fencing and no lag-driven ISR shrink;
- a batch damaged on disk after a clean stop is answered with a named error, logged and counted, and the
  cluster heals (the damaged replica leaves the ISR, loses its leadership, truncates and fetches again).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gafka import Consumer, Producer
from gafka.errors import CorruptMessageError
from gafka.records import TopicPartition

from .conftest import Cluster
from .test_replication import DURABLE, log_bytes, produce_json, produce_to_leader, read_values

pytestmark = pytest.mark.timeout(180)

_BECAME_LEADER = re.compile(r"event=became_leader topic=(\S+) partition=(\d+) .*high_watermark=(\d+)")


class HighWatermarkWatch:
    """Polls every live broker for the high watermark of each partition of ``topic`` (topic describe, and the
    ``latest`` offset lookup) and keeps every value seen, in order; None (unknown) and 503s are fine, a value
    below one seen before is not (the fault test uses it too)."""

    def __init__(self, cluster: Cluster, topic: str, partitions: int = 1, pause_s: float = 0.0) -> None:
        self.cluster = cluster
        self.topic = topic
        self.partitions = partitions
        self.pause_s = pause_s
        self.seen: list[tuple[float, int, str, int, int]] = []
        """(time, broker asked, how, partition, high watermark)."""
        self.unavailable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        clients: dict[int, httpx.Client] = {}
        try:
            while not self._stop.wait(self.pause_s):
                for broker_id in list(self.cluster.brokers):
                    if not self.cluster.alive(broker_id):
                        clients.pop(broker_id, None)
                        continue
                    http = clients.get(broker_id)
                    if http is None or str(http.base_url).rstrip("/") != self.cluster.url(broker_id).rstrip("/"):
                        http = clients[broker_id] = self.cluster.client(broker_id, timeout=2)
                    self._ask(broker_id, http)
        finally:
            for http in clients.values():
                http.close()

    def _ask(self, broker_id: int, http: httpx.Client) -> None:
        try:
            described = http.get(f"/v1/topics/{self.topic}")
            now = time.monotonic()
            if described.status_code == 200:
                for entry in described.json()["partitions"]:
                    if entry["high_watermark"] is not None:
                        self.seen.append((now, broker_id, "describe", entry["partition"], int(entry["high_watermark"])))
            for partition in range(self.partitions):
                latest = http.get(f"/v1/topics/{self.topic}/partitions/{partition}/offsets", params={"at": "latest"})
                if latest.status_code == 200:
                    self.seen.append((time.monotonic(), broker_id, "latest", partition, int(latest.json()["offset"])))
                elif latest.status_code == 503 and latest.json().get("error_code") == "OFFSET_NOT_AVAILABLE":
                    self.unavailable += 1
        except (httpx.TransportError, ValueError):
            return

    def backwards(self) -> list[str]:
        """Every observation below the largest one seen before it on the same partition."""
        found: list[str] = []
        highest: dict[int, int] = {}
        for when, broker_id, how, partition, value in self.seen:
            if value < highest.get(partition, -1):
                found.append(
                    f"high watermark went back: p{partition} {how} on broker {broker_id} at {when:.3f}: "
                    f"{value} after {highest[partition]}"
                )
            highest[partition] = max(highest.get(partition, -1), value)
        return found

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @contextmanager
    def running(self) -> Iterator[HighWatermarkWatch]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _became_leader(cluster: Cluster, broker_id: int, topic: str) -> list[int]:
    """The high watermark each ``event=became_leader`` line of ``broker_id`` (its current process) logged."""
    return [
        int(match.group(3))
        for match in _BECAME_LEADER.finditer(cluster.brokers[broker_id].log_text())
        if match.group(1) == topic and match.group(2) == "0"
    ]


# -- §2 the high watermark never goes back ----------------------------------------------------------
def test_preferred_leader_comes_back_caught_up_and_the_high_watermark_never_goes_back(
    cluster_factory: Any,
) -> None:
    """The issue's case: a restarted preferred replica, fully caught up in its log, rejoins the ISR while its
    fetch is parked on the leader (so it has not learnt the high watermark), and used to get leadership at the
    next controller tick with the high watermark of its checkpoint (0): describe, lag and ``latest`` jumped back.
    Now it gets leadership only after it reported itself caught up (log end offset *and* high watermark) at an
    imbalance check, and whatever any broker reports never goes back."""
    cluster = cluster_factory(3)
    topic = "hw-back"
    cluster.create_topic(topic, partitions=1, replication_factor=3, configs=DURABLE)
    preferred = cluster.partition_state(topic, 0)["replicas"][0]
    assert cluster.leader(topic, 0) == preferred
    response = produce_to_leader(cluster, topic, [f"v{i}" for i in range(50)])
    assert response.status_code == 200, response.text
    cluster.wait_for_isr(topic, 0, {0, 1, 2})
    cluster.kill(preferred)  # long before the 60 s high-watermark checkpoint: it restarts knowing 0
    other = cluster.wait_for_leader(topic, 0, not_in={preferred})
    with HighWatermarkWatch(cluster, topic).running() as watch:
        cluster.start(preferred)
        cluster.wait_for(lambda: cluster.leader(topic, 0) == preferred, 30, "the preferred replica leading again")
        time.sleep(1.0)  # keep watching the new leader for a while
    assert _became_leader(cluster, preferred, topic) == [50], cluster.brokers[preferred].log_text()[-3000:]
    assert watch.seen, "nothing observed"
    assert not watch.backwards(), watch.backwards()[:10]
    assert max(value for *_rest, value in watch.seen) == 50
    print(f"{len(watch.seen)} high watermarks observed, {watch.unavailable} OFFSET_NOT_AVAILABLE answers")
    with cluster.client(other) as http:
        assert read_values(http, topic) == [f"v{i}" for i in range(50)]


# -- §3 controlled shutdown --------------------------------------------------------------------------
def test_rolling_restart_under_acks_all_never_waits_for_a_stopping_broker(cluster_factory: Any) -> None:
    """SIGTERM each broker in turn (and start it again) while an idempotent SDK producer sends acks=all to six
    partitions. A controlled shutdown moves leaderships and takes the broker out of every ISR at once, and the
    broker keeps fetching until it stops, so: no leader ever shrinks an ISR because a stopping follower went
    quiet (``event=isr_shrink``), no send fails, and no broker waits a connection out until its graceful-shutdown
    timeout. (The gaps between acknowledgements are printed; bench/failover_bench.py measures them.)"""
    cluster = cluster_factory(3)
    topic = "rolling"
    partitions = 6
    cluster.create_topic(topic, partitions=partitions, replication_factor=3, configs=DURABLE)
    producer = Producer(
        [cluster.url(b) for b in cluster.brokers],
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        delivery_timeout_ms=60_000,
    )
    stop = threading.Event()
    acked: dict[int, list[float]] = {p: [] for p in range(partitions)}
    failed: list[BaseException] = []

    def produce() -> None:
        sequence = 0
        while not stop.is_set():
            futures = [(p, producer.send(topic, f"{p}-{sequence}", partition=p)) for p in range(partitions)]
            for partition, future in futures:
                try:
                    future.result(timeout=60)
                except Exception as exc:
                    failed.append(exc)
                    continue
                acked[partition].append(time.monotonic())
            sequence += 1

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    try:
        cluster.wait_for(lambda: all(len(acked[p]) > 20 for p in acked), 30, "traffic flowing")
        windows: list[tuple[int, float, float]] = []
        for broker_id in sorted(cluster.brokers):
            started = time.monotonic()
            assert cluster.stop(broker_id) == 0
            windows.append((broker_id, started, time.monotonic()))
            stopped_log = cluster.brokers[broker_id].log_text()
            assert "event=controlled_shutdown" in stopped_log
            assert "timeout graceful shutdown exceeded" not in stopped_log, stopped_log[-2000:]
            cluster.start(broker_id)
            for partition in range(partitions):
                cluster.wait_for_isr(topic, partition, {0, 1, 2}, timeout=30)
        stopped_at = time.monotonic()
        cluster.wait_for(lambda: all(a and a[-1] > stopped_at for a in acked.values()), 30, "acks after the restarts")
    finally:
        stop.set()
        sender.join(60)
        producer.close()
    assert not failed, failed[:5]
    logs = "".join(
        path.read_text(errors="replace") for path in (cluster.root / "logs").rglob("*.log") if path.is_file()
    )
    assert "event=isr_shrink" not in logs, re.findall(r".*event=isr_shrink.*", logs)[:5]
    gaps = {p: max((b - a for a, b in itertools.pairwise(t)), default=0.0) for p, t in acked.items()}
    print(
        "stop seconds:",
        [round(ended - started, 2) for _b, started, ended in windows],
        "longest gap between acknowledgements per partition:",
        {p: round(gap, 2) for p, gap in gaps.items()},
    )


# -- §4 a batch damaged on disk -----------------------------------------------------------------------
def _flip_a_byte(data_dir: Path, topic: str, at_fraction: float = 0.5) -> None:
    """Flip one byte inside a record batch's payload, about ``at_fraction`` into the partition's last segment."""
    segment = sorted((data_dir / f"{topic}-0").glob("*.log"))[-1]
    raw = bytearray(segment.read_bytes())
    position = int(len(raw) * at_fraction)
    raw[position] ^= 0xFF
    segment.write_bytes(bytes(raw))


def _metric(http: httpx.Client, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_damaged_replica_is_detected_named_and_healed(cluster_factory: Any) -> None:
    """Damage one byte of the preferred leader's last segment while it is cleanly stopped; it starts without
    noticing (clean shutdown: no recovery scan, as in Kafka). Once it leads again, the first read of the damaged
    batch answers ``KAFKA_STORAGE_ERROR`` naming the offset (never a 500 UNKNOWN_SERVER_ERROR), is logged and
    counted, leadership moves to a healthy replica, the damaged one truncates to before the damage and fetches
    it again, and every replica ends byte-identical with every record readable."""
    cluster = cluster_factory(3)
    topic = "damaged"
    cluster.create_topic(topic, partitions=1, replication_factor=3, configs=DURABLE)
    damaged = cluster.partition_state(topic, 0)["replicas"][0]
    values = [f"value-{i:04d}" for i in range(200)]
    for start in range(0, len(values), 10):
        assert produce_to_leader(cluster, topic, values[start : start + 10]).status_code == 200
    cluster.wait_for_isr(topic, 0, {0, 1, 2})
    assert cluster.stop(damaged) == 0
    _flip_a_byte(cluster.brokers[damaged].data_dir, topic)
    cluster.start(damaged)
    cluster.wait_for(lambda: cluster.leader(topic, 0) == damaged, 30, "the damaged replica leading again")
    with cluster.client(damaged) as http:
        offset, answers = 0, []
        while True:
            page = http.get(f"/v1/topics/{topic}/partitions/0/records", params={"offset": offset, "max_wait_ms": 0})
            answers.append(page)
            if page.status_code != 200 or page.json()["next_offset"] >= page.json()["high_watermark"]:
                break
            offset = page.json()["next_offset"]
        error = answers[-1]
        assert error.status_code == 500, error.text
        assert error.json()["error_code"] == "KAFKA_STORAGE_ERROR", error.text
        assert error.json()["offset"] == offset, error.text
        raw = http.get(
            f"/v1/topics/{topic}/partitions/0/records",
            params={"offset": offset, "max_wait_ms": 0},
            headers={"accept": "application/vnd.gafka.record-batch.v2"},
        )
        assert raw.status_code in (421, 500), raw.text  # refused, or already moved away
        assert _metric(http, "gafka_log_corrupt_reads_total") >= 1
    assert "event=replica_damaged" in cluster.brokers[damaged].log_text()
    healthy = cluster.wait_for_leader(topic, 0, not_in={damaged})
    cluster.wait_for(lambda: "event=replica_truncated_after_damage" in cluster.brokers[damaged].log_text(), 20)
    cluster.wait_for_isr(topic, 0, {0, 1, 2}, timeout=30)
    with cluster.client(healthy) as http:
        assert read_values(http, topic) == values
    consumer = Consumer([cluster.url(b) for b in cluster.brokers], auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition(topic, 0)])
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while len(seen) < len(values) and time.monotonic() < deadline:
            seen.extend(bytes(record.value or b"").decode() for record in consumer.poll(0.5))
        assert seen == values
    finally:
        consumer.close()
    for broker_id in cluster.brokers:
        assert cluster.stop(broker_id) == 0
    copies = {broker_id: log_bytes(cluster.brokers[broker_id].data_dir, topic) for broker_id in cluster.brokers}
    assert len(set(copies.values())) == 1, {b: len(c) for b, c in copies.items()}


def test_a_damaged_batch_without_a_replica_names_the_offset_and_the_consumer_says_so(broker_factory: Any) -> None:
    """Replication factor 1: no good copy anywhere. The fetch answers ``CORRUPT_MESSAGE`` with the offset (raw
    and JSON), and the SDK consumer raises it on every poll, naming the offset, until the application seeks
    past it; the records after the damaged batch are then read."""
    broker = broker_factory()
    topic = "lonely"
    with broker.client() as http:
        assert http.post("/v1/topics", json={"name": topic, "partitions": 1}).status_code == 201
        for batch in range(10):
            assert produce_json(http, topic, [f"b{batch}-{i}" for i in range(10)], acks="all").status_code == 200
    assert broker.stop() == 0
    _flip_a_byte(broker.data_dir, topic, at_fraction=0.45)
    broker.start()
    with broker.client() as http:
        offset = 0
        while True:
            page = http.get(f"/v1/topics/{topic}/partitions/0/records", params={"offset": offset, "max_wait_ms": 0})
            if page.status_code != 200:
                break
            offset = page.json()["next_offset"]
        assert page.status_code == 500 and page.json()["error_code"] == "CORRUPT_MESSAGE", page.text
        damaged_at = page.json()["offset"]
        assert damaged_at == offset and damaged_at % 10 == 0
        assert str(damaged_at) in page.json()["message"]
        raw = http.get(
            f"/v1/topics/{topic}/partitions/0/records",
            params={"offset": damaged_at, "max_wait_ms": 0},
            headers={"accept": "application/vnd.gafka.record-batch.v2"},
        )
        assert raw.status_code == 500 and raw.json()["error_code"] == "CORRUPT_MESSAGE"
        assert _metric(http, "gafka_log_corrupt_reads_total") >= 1
    consumer = Consumer([broker.url], auto_offset_reset="earliest", retry_backoff_ms=50)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        before: list[int] = []
        for _attempt in range(2):  # raised again on the next poll: never a silent stall
            with pytest.raises(CorruptMessageError) as raised:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    before.extend(record.offset for record in consumer.poll(0.5))
            assert str(damaged_at) in str(raised.value)
        assert before == list(range(damaged_at))
        consumer.seek(tp, damaged_at + 10)
        after: list[int] = []
        deadline = time.monotonic() + 20
        while len(after) < 100 - damaged_at - 10 and time.monotonic() < deadline:
            after.extend(record.offset for record in consumer.poll(0.5))
        assert after == list(range(damaged_at + 10, 100))
    finally:
        consumer.close()
    assert "event=replica_damaged" in broker.log_text()


def test_sigterm_does_not_wait_out_forwarded_long_polls_or_idle_connections(cluster_factory: Any) -> None:
    """A JSON consumer long-polling through a broker that does not lead the partition (its fetch is forwarded
    and parked on the leader for up to 20 s) and an idle keep-alive connection: SIGTERM answers the parked
    fetch at once (503 BROKER_NOT_AVAILABLE, ``Connection: close``) and closes the idle connection, so uvicorn
    never waits a connection out until its graceful-shutdown timeout and cancels it (it was answered 500)."""
    cluster = cluster_factory(3)
    topic = "parked"
    cluster.create_topic(topic, partitions=1, replication_factor=3, configs=DURABLE)
    leader = cluster.leader(topic, 0)
    relay = next(b for b in cluster.brokers if b != leader)
    answers: list[httpx.Response] = []

    def long_poll() -> None:
        with cluster.client(relay, timeout=60) as http:
            answers.append(
                http.get(f"/v1/topics/{topic}/partitions/0/records", params={"offset": 0, "max_wait_ms": 20_000})
            )

    idle = cluster.client(relay)
    assert idle.get("/healthz").status_code == 200  # now an idle keep-alive connection
    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    with cluster.client(leader) as http:
        cluster.wait_for(lambda: _metric(http, "gafka_fetch_long_polls") >= 1, 10, "the forwarded fetch parked")
    assert cluster.stop(relay) == 0
    poller.join(30)
    idle.close()
    assert answers and answers[0].status_code == 503, answers
    assert answers[0].json()["error_code"] == "BROKER_NOT_AVAILABLE"
    log = cluster.brokers[relay].log_text()
    assert "timeout graceful shutdown exceeded" not in log, log[-2000:]
