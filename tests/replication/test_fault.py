"""The bounded fault test: acks=all traffic through the SDK while brokers are killed, paused and restarted.

Three brokers, one topic with replication factor 3 and ``min.insync.replicas=2``, an idempotent SDK
``Producer`` sending acks=all continuously with unique values (``p{partition}-{seq}``, partition-pinned, so
the send order per partition is known), and an SDK ``Consumer`` reading every partition from the beginning
(``assign``) at the same time. Faults, bounded in count and time: SIGKILL of the current leader of each
partition in turn (restarted each time), SIGTERM (controlled shutdown) of a leader and of a broker that only
follows, one SIGSTOP of a leader past the broker session timeout then SIGCONT, one SIGKILL of two brokers at
once (then both restarted). After healing, the checks are Jepsen's Kafka checkers (see
``../shared/reference/kafka-design-anchors.md`` §6.4):

- lost write: every acknowledged value is in the log, at the offset it was acknowledged with;
- duplicate: every value is at most at one offset (idempotence across retries and failovers);
- inconsistent offsets: one value per offset: two reads give the same bytes, what the concurrent consumer
  saw at an offset is what the log has there, and every replica's log is byte-identical;
- send order: per partition, the values are in the order they were sent;
- consumer: offsets strictly consecutive per partition (no skip, no going back), and it reaches the end;

and, besides safety, liveness (issue 13):

- high watermark: what every broker reports for every partition (topic describe, ``latest`` offsets), polled
  all through the run, never goes back;
- acknowledgement gaps: how long each partition goes without an acknowledgement, outside the double kill
  (which leaves one broker, below ``min.insync.replicas``, by design), stays below ``FAILOVER_LIMIT_S``; a
  controlled shutdown of a broker that only follows never makes acks=all wait for it (no lag-driven
  ``event=isr_shrink`` while it stops).

Brokers are restarted on the port they had (as a pod keeps its DNS name), so clients that cached a
broker's address can find it again. The failover time (SIGKILL -> first acks=all produce acknowledged by
the new leader, as the producer sees it) of each kill is printed, with a summary line.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from gafka import Consumer, Producer
from gafka.errors import GafkaError
from gafka.protocol.record_batch import decode_batches
from gafka.records import RecordMetadata, TopicPartition

from .conftest import Cluster
from .test_reliability import HighWatermarkWatch
from .test_replication import log_bytes

pytestmark = pytest.mark.timeout(240)

TOPIC = "fault"
PARTITIONS = 3
BROKERS = {0, 1, 2}
BATCH = "application/vnd.gafka.record-batch.v2"
LEADER_KILLS = 6  # each partition's leader twice
FAILOVER_LIMIT_S = 15.0
SEND_INTERVAL_S = 0.005  # per round of one record to each partition: about 600 records/s, a steady stream
MAX_OUTSTANDING = 3000  # sends not yet acknowledged or failed: bounds memory while a partition cannot commit


@dataclass
class Sent:
    """One send: its value, and once done, the acknowledged offset or the error."""

    partition: int
    seq: int
    value: str
    future: Future[RecordMetadata]


@dataclass
class Load:
    """The producer and consumer threads and everything they observed."""

    producer: Producer
    consumer: Consumer
    stop_producing: threading.Event = field(default_factory=threading.Event)
    stop_consuming: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    acks: dict[int, list[tuple[float, float]]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    """Per partition, (when sent, when acknowledged) of each acknowledged record."""
    consumed: dict[int, list[tuple[int, bytes | None]]] = field(
        default_factory=lambda: {p: [] for p in range(PARTITIONS)}
    )
    errors: list[BaseException] = field(default_factory=list)
    outstanding: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_OUTSTANDING))

    def acked_since(self, partition: int, since: float) -> float | None:
        """When the first record sent to ``partition`` after ``since`` was acknowledged, if one was yet.

        Only records sent after ``since`` count: when ``since`` is the moment a leader was dead or stopped,
        their acknowledgement can only come from another broker.
        """
        return next((acked for sent, acked in list(self.acks[partition]) if sent > since), None)

    def longest_gaps(self, excluded: list[tuple[float, float]]) -> dict[int, tuple[float, float]]:
        """Per partition, the longest time without an acknowledgement (and when it began), leaving out gaps that
        overlap an ``excluded`` window (a fault that stops acks=all by design)."""
        gaps: dict[int, tuple[float, float]] = {}
        for partition, acks in self.acks.items():
            times = sorted(acked for _sent, acked in list(acks))
            longest = (0.0, times[0] if times else 0.0)
            for before, after in itertools.pairwise(times):
                if any(before < end and after > start for start, end in excluded):
                    continue
                longest = max(longest, (after - before, before))
            gaps[partition] = longest
        return gaps

    def failures(self) -> dict[str, int]:
        """How many sends failed, by error (the SDK gave up on them), for assertion messages."""
        found: Counter[str] = Counter()
        for sent in list(self.sent):
            if sent.future.done() and sent.future.exception() is not None:
                found[repr(sent.future.exception())[:160]] += 1
        return dict(found.most_common(5))

    def produce(self) -> None:
        """Send one record to each partition per round, in order, until told to stop."""
        try:
            for seq in itertools.count():
                for partition in range(PARTITIONS):
                    while not self.outstanding.acquire(timeout=0.1):
                        if self.stop_producing.is_set():
                            return
                    value = f"p{partition}-{seq:07d}"
                    sent_at = time.monotonic()
                    future = self.producer.send(TOPIC, value, partition=partition)
                    future.add_done_callback(self._done_callback(partition, sent_at))
                    self.sent.append(Sent(partition, seq, value, future))
                if self.stop_producing.wait(SEND_INTERVAL_S):
                    return
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def _done_callback(self, partition: int, sent_at: float) -> Callable[[Future[RecordMetadata]], None]:
        def done(future: Future[RecordMetadata]) -> None:
            self.outstanding.release()
            if future.exception() is None:
                self.acks[partition].append((sent_at, time.monotonic()))

        return done

    def consume(self) -> None:
        """Poll every partition (assigned, from the beginning) and keep what each poll returned, in order."""
        try:
            while not self.stop_consuming.is_set():
                for record in self.consumer.poll(0.2):
                    self.consumed[record.partition].append((record.offset, record.value))
        except BaseException as exc:
            self.errors.append(exc)
            raise


@dataclass
class Failover:
    """One leader loss: seconds to a new leader in the metadata, and to the producer's first ack from it."""

    what: str
    led: list[int]
    elected_s: float
    acked_s: float


def pin_ports(cluster: Cluster) -> None:
    """Restart every broker on the address it has now (as a pod keeps its name), not on a fresh port."""
    for broker in cluster.brokers.values():
        broker.listen = broker.url.removeprefix("http://")


def stopped(cluster: Cluster, broker_id: int) -> bool:
    """Whether the broker's process is in the stopped state (``T`` in /proc), i.e. SIGSTOP has landed."""
    process = cluster.brokers[broker_id].process
    assert process is not None
    stat = Path(f"/proc/{process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def leaders(cluster: Cluster) -> dict[int, int]:
    return {p: cluster.leader(TOPIC, p) for p in range(PARTITIONS)}


def wait_healthy(cluster: Cluster, timeout: float = 30) -> None:
    """Every partition has a leader and a full ISR, so the next fault starts from a healthy cluster."""
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(TOPIC, partition, BROKERS, timeout)


def wait_elected(cluster: Cluster, down: set[int], led: list[int], started: float) -> float:
    """Seconds from ``started`` until every partition in ``led`` has a leader outside ``down``."""
    for partition in led:
        cluster.wait_for_leader(TOPIC, partition, not_in=down, timeout=FAILOVER_LIMIT_S)
    return time.monotonic() - started


def wait_acked(cluster: Cluster, load: Load, led: list[int], started: float, down_at: float, what: str) -> float:
    """Seconds from ``started`` until a record sent after ``down_at`` was acknowledged on every partition in ``led``."""
    acked: list[float] = []
    for partition in led:
        try:
            acked.append(
                cluster.wait_for(
                    partial(load.acked_since, partition, down_at),
                    FAILOVER_LIMIT_S,
                    f"an acks=all produce to {TOPIC}-{partition} acknowledged by a new leader after {what}",
                )
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the producer's failed sends so far: {load.failures()}") from None
    return max(acked, default=started) - started


def report(what: str, down: set[int], led: list[int], elected_s: float, acked_s: float) -> Failover:
    print(
        f"{what}: partitions {led} led by {sorted(down)}: new leader elected after {elected_s:.2f} s, "
        f"first acks=all produce acknowledged by it after {acked_s:.2f} s"
    )
    return Failover(what, led, elected_s, acked_s)


def read_partition(http: httpx.Client, partition: int) -> tuple[bytes, list[tuple[int, bytes | None]]]:
    """Everything below the high watermark of ``partition``, raw (as stored) and decoded."""
    raw = bytearray()
    records: list[tuple[int, bytes | None]] = []
    offset = 0
    while True:
        response = http.get(
            f"/v1/topics/{TOPIC}/partitions/{partition}/records",
            params={"offset": offset, "max_wait_ms": 0},
            headers={"accept": BATCH},
        )
        assert response.status_code == 200, response.text
        raw += response.content
        records += [(r.offset, r.value) for r in decode_batches(response.content) if r.offset >= offset]
        next_offset = int(response.headers["gafka-next-offset"])
        if next_offset >= int(response.headers["gafka-high-watermark"]) or next_offset == offset:
            return bytes(raw), records
        offset = next_offset


def replica_offsets(cluster: Cluster) -> dict[tuple[int, int], tuple[int, int]]:
    """(high watermark, log end offset) of every replica, from each broker's /metrics."""
    found: dict[tuple[int, int], tuple[int, int]] = {}
    for broker_id in cluster.brokers:
        with cluster.client(broker_id, timeout=5) as http:
            text = http.get("/metrics").text
        values: dict[tuple[str, int], int] = {}
        for line in text.splitlines():
            name = line.split("{", 1)[0]
            if name in ("gafka_partition_high_watermark", "gafka_partition_log_end_offset") and (
                f'topic="{TOPIC}"' in line
            ):
                partition = int(line.split('partition="', 1)[1].split('"', 1)[0])
                values[(name, partition)] = int(float(line.rsplit(" ", 1)[1]))
        for partition in range(PARTITIONS):
            found[(broker_id, partition)] = (
                values[("gafka_partition_high_watermark", partition)],
                values[("gafka_partition_log_end_offset", partition)],
            )
    return found


def replicas_equal(cluster: Cluster) -> dict[int, int] | None:
    """The end of each partition once every replica has the same high watermark and log end offset."""
    offsets = replica_offsets(cluster)
    ends: dict[int, int] = {}
    for partition in range(PARTITIONS):
        seen = {offsets[(broker_id, partition)] for broker_id in cluster.brokers}
        if len(seen) != 1:
            return None
        [(high_watermark, log_end)] = seen
        if high_watermark != log_end:
            return None
        ends[partition] = high_watermark
    return ends


def test_acks_all_survives_kills_pauses_and_double_failures(cluster_factory: Any) -> None:
    began = time.monotonic()
    cluster: Cluster = cluster_factory(3)
    pin_ports(cluster)
    cluster.create_topic(TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
    bootstrap = [cluster.url(b) for b in sorted(cluster.brokers)]
    producer = Producer(bootstrap, acks="all", linger_ms=2, retry_backoff_max_ms=250, delivery_timeout_ms=120_000)
    consumer = Consumer(bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=200)
    consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    load = Load(producer, consumer)
    threads = [threading.Thread(target=load.produce, daemon=True), threading.Thread(target=load.consume, daemon=True)]
    for thread in threads:
        thread.start()
    failovers: list[Failover] = []
    faults_done = False
    double_kill = (0.0, 0.0)
    watch = HighWatermarkWatch(cluster, TOPIC, PARTITIONS, pause_s=0.05)
    watch.start()
    try:
        cluster.wait_for(lambda: all(load.acks.values()), 20, "first acknowledgements on every partition")

        # 1. SIGKILL the leader of each partition in turn; restart it; wait until it is back in every ISR.
        for kill in range(LEADER_KILLS):
            partition = kill % PARTITIONS
            victim = cluster.leader(TOPIC, partition)
            led = [p for p, leader in leaders(cluster).items() if leader == victim]
            started = time.monotonic()
            cluster.kill(victim)  # returns once the process is gone
            dead = time.monotonic()
            what = f"kill #{kill + 1} (SIGKILL)"
            elected_s = wait_elected(cluster, {victim}, led, started)
            print(f"{what}: new leader of {led} elected after {elected_s:.2f} s")
            acked_s = wait_acked(cluster, load, led, started, dead, what)
            failovers.append(report(what, {victim}, led, elected_s, acked_s))
            cluster.start(victim)
            wait_healthy(cluster)

        # 1b. SIGTERM (controlled shutdown) of the leader of partition 0, measured on the partitions it led (its
        # leaderships move first), then of another broker, measured on the partitions it only follows (it leaves
        # their ISRs first, so acks=all never waits for it).
        for kind in ("leader", "follower"):
            current = leaders(cluster)
            victim = current[0] if kind == "leader" else next(b for b in sorted(BROKERS) if b != current[0])
            led = [p for p, leader in current.items() if (leader == victim) == (kind == "leader")]
            started = time.monotonic()
            assert cluster.stop(victim) == 0
            what = "SIGTERM (leader)" if kind == "leader" else "SIGTERM (follower, measured where it follows)"
            shrinks = "event=isr_shrink" in "".join(cluster.brokers[b].log_text() for b in BROKERS - {victim})
            assert not shrinks, f"{what}: a leader shrank an ISR because broker {victim} went quiet"
            elected_s = wait_elected(cluster, {victim}, led, started)
            acked_s = wait_acked(cluster, load, led, started, started, what)
            failovers.append(report(what, {victim}, led, elected_s, acked_s))
            cluster.start(victim)
            wait_healthy(cluster)

        # 2. SIGSTOP a leader past the session timeout: it is fenced and replaced; SIGCONT it once a new leader
        # is elected, so it wakes up as a zombie with requests in its socket that it must not acknowledge.
        # (The producer's request to it only gets an answer then, as a Kafka client waits out request.timeout.ms.)
        victim = cluster.leader(TOPIC, 0)
        led = [p for p, leader in leaders(cluster).items() if leader == victim]
        started = time.monotonic()
        cluster.pause(victim)
        cluster.wait_for(partial(stopped, cluster, victim), 5, f"broker {victim} stopped by SIGSTOP")
        frozen = time.monotonic()
        elected_s = wait_elected(cluster, {victim}, led, started)
        cluster.resume(victim)
        failovers.append(
            report(
                "pause (SIGSTOP)",
                {victim},
                led,
                elected_s,
                wait_acked(cluster, load, led, started, frozen, "the pause"),
            )
        )
        wait_healthy(cluster)

        # 3. SIGKILL two brokers at once: the survivor alone is below min.insync.replicas, so acks=all is
        # refused (the producer retries) until the two are restarted and have caught up.
        victims = {cluster.leader(TOPIC, 1)}
        victims.add(next(b for b in sorted(BROKERS) if b not in victims))
        [survivor] = BROKERS - victims
        started = time.monotonic()
        for broker_id in victims:
            cluster.kill(broker_id)
        dead = time.monotonic()
        for partition in range(PARTITIONS):  # fenced: the survivor leads everything, alone in every ISR
            cluster.wait_for_isr(TOPIC, partition, {survivor}, FAILOVER_LIMIT_S)
        below_min_isr = time.monotonic()
        for broker_id in victims:
            cluster.start(broker_id)
        for partition in range(PARTITIONS):
            cluster.wait_for(
                partial(load.acked_since, partition, dead),
                30,
                f"acks=all on {TOPIC}-{partition} again after the double kill",
            )
        double_kill = (started, time.monotonic())
        print(
            f"double kill of {sorted(victims)}: ISR = [{survivor}] everywhere after {below_min_isr - started:.2f} s; "
            f"acks=all on every partition again {time.monotonic() - started:.2f} s after the kill"
        )
        wait_healthy(cluster)
        faults_done = True
    finally:
        load.stop_producing.set()
        threads[0].join(30)
        with contextlib.suppress(GafkaError):  # what is still unacknowledged is checked as such below
            producer.flush(30 if faults_done else 0)
        producer.close(10 if faults_done else 0)

    # Drain: the consumer reaches the high watermark of every partition.
    try:
        assert not load.errors, load.errors
        wait_healthy(cluster)
        ends = cluster.wait_for(partial(replicas_equal, cluster), 30, "every replica at the same high watermark")
        cluster.wait_for(
            lambda: all((load.consumed[p][-1][0] + 1 if load.consumed[p] else 0) >= ends[p] for p in ends),
            30,
            f"the consumer at the end of every partition {ends}",
        )
    finally:
        load.stop_consuming.set()
        threads[1].join(30)
        consumer.close(autocommit=False)
        watch.stop()

    # Read every partition twice from its leader; then stop the brokers and compare the replicas on disk.
    problems: list[str] = []
    logs: dict[int, list[tuple[int, bytes | None]]] = {}
    for partition in range(PARTITIONS):
        with cluster.client(cluster.leader(TOPIC, partition)) as http:
            first_raw, logs[partition] = read_partition(http, partition)
            second_raw, _ = read_partition(http, partition)
        if first_raw != second_raw:
            problems.append(f"inconsistent offsets: p{partition}: two reads of the same offsets differ")
    for broker_id in sorted(cluster.brokers):
        cluster.stop(broker_id)
    for partition in range(PARTITIONS):
        stored = {b: log_bytes(broker.data_dir, TOPIC, partition) for b, broker in cluster.brokers.items()}
        if len(set(stored.values())) != 1:
            sizes = {b: len(data) for b, data in stored.items()}
            problems.append(f"inconsistent offsets: p{partition}: the replicas' logs differ (bytes: {sizes})")
    problems += check(load, logs)
    problems += watch.backwards()
    gaps = load.longest_gaps([double_kill])
    for partition, (gap, began_at) in gaps.items():
        if gap >= FAILOVER_LIMIT_S:
            problems.append(f"liveness: p{partition} went {gap:.1f} s without an acknowledgement from {began_at:.1f}")
    failed = load.failures()
    if failed:
        print(f"sends the producer gave up on (allowed: not acknowledged, may or may not be in the log): {failed}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    acked = sum(1 for s in load.sent if s.future.done() and s.future.exception() is None)
    kills = [f.acked_s for f in failovers if "SIGKILL" in f.what]
    assert kills, "no failover measured"
    print(
        "longest time without an acknowledgement per partition (double kill excluded): "
        + ", ".join(f"p{p} {gap:.2f} s" for p, (gap, _at) in sorted(gaps.items()))
        + f"; {len(watch.seen)} high watermarks observed, {watch.unavailable} OFFSET_NOT_AVAILABLE answers"
    )
    print(
        f"fault test: {len(load.sent)} sent, {acked} acknowledged, "
        f"{sum(len(v) for v in logs.values())} in the log, {sum(len(v) for v in load.consumed.values())} consumed; "
        f"{len(kills)} leader kills (SIGKILL -> first acks=all produce on the new leader): "
        f"min {min(kills):.2f} s, median {statistics.median(kills):.2f} s, max {max(kills):.2f} s; "
        f"session timeout {cluster.controller.session_timeout_ms} ms; whole test {time.monotonic() - began:.1f} s"
    )


def check(load: Load, logs: dict[int, list[tuple[int, bytes | None]]]) -> list[str]:
    """Jepsen's Kafka checkers over what was sent, acknowledged, consumed and finally stored."""
    problems: list[str] = []
    sent_values = {s.value: s for s in load.sent}
    for partition in range(PARTITIONS):
        log = logs[partition]
        where: dict[str, int] = {}
        offsets = [offset for offset, _ in log]
        if offsets != list(range(len(log))):
            problems.append(f"p{partition}: log offsets are not 0..{len(log) - 1}: {offsets[:10]}...")
        for offset, raw in log:
            value = (raw or b"").decode()
            if value in where:
                problems.append(f"duplicate: {value!r} at offsets {where[value]} and {offset}")
            where[value] = offset
            if value not in sent_values or sent_values[value].partition != partition:
                problems.append(f"p{partition}: offset {offset} holds {value!r}, which was never sent there")
        seqs = [sent_values[(raw or b"").decode()].seq for _, raw in log if (raw or b"").decode() in sent_values]
        disorder = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
        if disorder:
            problems.append(f"p{partition}: not in send order, e.g. seq {disorder[0][1]} after {disorder[0][0]}")
        for sent in (s for s in load.sent if s.partition == partition):
            if not sent.future.done() or sent.future.exception() is not None:
                continue
            offset = sent.future.result().offset
            if sent.value not in where:
                problems.append(f"lost write: {sent.value!r} acknowledged at offset {offset} is not in the log")
            elif where[sent.value] != offset:
                problems.append(f"{sent.value!r} acknowledged at offset {offset} but stored at {where[sent.value]}")
        seen = load.consumed[partition]
        consumed_offsets = [offset for offset, _ in seen]
        if consumed_offsets != list(range(len(seen))):
            skips = [(a, b) for a, b in itertools.pairwise(consumed_offsets) if b != a + 1]
            problems.append(f"p{partition}: consumer offsets not consecutive from 0, e.g. {skips[:3]}")
        by_offset = dict(log)
        for offset, read in seen:
            if offset in by_offset and by_offset[offset] != read:
                problems.append(f"p{partition}: consumer read {read!r} at {offset}, the log has {by_offset[offset]!r}")
            elif offset not in by_offset:
                problems.append(f"p{partition}: consumer read {read!r} at {offset}, beyond the log's end")
    return problems
