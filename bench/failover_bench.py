"""Failover as a client sees it, under load, for every single-broker fault kind (issue 13 §5).

Run: ``python bench/failover_bench.py [--rounds 3] [--partitions 4] [--session-ms 1500] [--heartbeat-ms 200]``

A ``gafka controller`` and three brokers on loopback (``replication_bench.LocalCluster``: fixed ports kept
across restarts, data in a temporary directory of the working tree); one topic, RF 3,
``min.insync.replicas=2``. An idempotent SDK ``Producer`` sends acks=all records to every partition
continuously (partition-pinned, one record per partition every 5 ms: about 800 records/s on four partitions)
and keeps, per partition, when each record was sent and when it was acknowledged.

Faults, each ``--rounds`` times, always on the broker that leads the most partitions at that moment:

- ``SIGKILL``: the process dies; the controller fences it after ``broker.session.timeout.ms``;
- ``SIGTERM``: controlled shutdown (leaderships and ISR membership handed over first);
- ``SIGSTOP``: the process freezes past the session timeout (fenced, replaced), then SIGCONT.

Measured, per partition the faulted broker led: from the fault to the first acks=all acknowledgement of a
record *sent after the fault* (the client's view: detection, election, metadata refresh, retry and commit).
After each fault the broker is restarted (or resumed) and every partition is back to a full ISR before the
next. Preferred leaders come back after a 1 s imbalance check, so the victim always leads something.

Four partitions, not more: the SDK producer caps in-flight requests at ``max_in_flight_requests`` (5) over
all partitions together and always offers the slots to the partitions in the same order, so with more
continuously busy partitions than that, the last ones starve (seen: a sixth partition with no acknowledgement
at all while the five others flowed); Kafka's cap is per connection and its drain rotates.

Output: a Markdown table for docs/benchmarks.md (median and max per fault kind, over every sample), and the
machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gafka import Producer
from gafka.records import RecordMetadata
from replication_bench import BROKERS, LocalCluster, Timings, cpu_model, local_cluster, wait_for

TOPIC = "failover"
SEND_INTERVAL_S = 0.005
MAX_OUTSTANDING = 5000


class Load:
    """The producer thread and, per partition, (sent, acknowledged) of every acknowledged record."""

    def __init__(self, producer: Producer, partitions: int) -> None:
        self.producer = producer
        self.partitions = partitions
        self.acks: dict[int, list[tuple[float, float]]] = {p: [] for p in range(partitions)}
        self.failures: Counter[str] = Counter()
        self.stop = threading.Event()
        self.outstanding = threading.BoundedSemaphore(MAX_OUTSTANDING)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        sequence = 0
        while not self.stop.is_set():
            for partition in range(self.partitions):
                while not self.outstanding.acquire(timeout=0.1):
                    if self.stop.is_set():
                        return
                sent = time.monotonic()
                future = self.producer.send(TOPIC, f"{partition}-{sequence}", partition=partition)
                future.add_done_callback(self._done(partition, sent))
            sequence += 1
            self.stop.wait(SEND_INTERVAL_S)

    def _done(self, partition: int, sent: float) -> Callable[[Future[RecordMetadata]], None]:
        def done(future: Future[RecordMetadata]) -> None:
            self.outstanding.release()
            error = future.exception()
            if error is None:
                self.acks[partition].append((sent, time.monotonic()))
            else:
                self.failures[repr(error)[:100]] += 1

        return done

    def first_ack_after(self, partition: int, since: float) -> float | None:
        return next((acked for sent, acked in list(self.acks[partition]) if sent > since), None)


def led_by(cluster: LocalCluster, broker_id: int, partitions: int) -> list[int]:
    return [p for p in range(partitions) if cluster.leader(TOPIC, p) == broker_id]


def busiest(cluster: LocalCluster, partitions: int) -> int:
    counts = Counter(cluster.leader(TOPIC, p) for p in range(partitions))
    return max(BROKERS, key=lambda b: counts.get(b, 0))


def inject(cluster: LocalCluster, kind: str, victim: int) -> None:
    process = cluster.processes[victim]
    if kind == "SIGKILL":
        cluster.kill(victim)
    elif kind == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:
        process.send_signal(signal.SIGSTOP)


def heal(cluster: LocalCluster, kind: str, victim: int, partitions: int) -> None:
    if kind == "SIGSTOP":
        wait_for(lambda: victim not in led_now(cluster, partitions), 60, "the paused broker replaced")
        cluster.processes[victim].send_signal(signal.SIGCONT)
    else:
        cluster.processes[victim].wait(60)
        cluster.start(victim)
    cluster.wait_isr(TOPIC, partitions, set(BROKERS), timeout=120)


def led_now(cluster: LocalCluster, partitions: int) -> set[int]:
    return {cluster.leader(TOPIC, p) for p in range(partitions)}


def measure(kind: str, rounds: int, partitions: int, timings: Timings, request_timeout_ms: int) -> dict[str, object]:
    samples: list[float] = []
    with local_cluster(timings, ("--leader-imbalance-check-interval-ms", "1000")) as cluster:
        cluster.create_topic(TOPIC, partitions, {"min.insync.replicas": "2"})
        producer = Producer(
            [cluster.urls[b] for b in BROKERS],
            acks="all",
            linger_ms=2,
            retry_backoff_max_ms=250,
            request_timeout_ms=request_timeout_ms,
        )
        load = Load(producer, partitions)
        try:
            wait_for(lambda: all(load.acks.values()), 30, "acknowledgements on every partition")
            for _round in range(rounds):
                wait_for(lambda: len(led_now(cluster, partitions)) == len(BROKERS), 30, "balanced leaders")
                victim = busiest(cluster, partitions)
                led = led_by(cluster, victim, partitions)
                fault = time.monotonic()
                inject(cluster, kind, victim)
                for partition in led:
                    acked = wait_for(partial(load.first_ack_after, partition, fault), 60, f"acks on p{partition}", 0.01)
                    samples.append(acked - fault)
                heal(cluster, kind, victim, partitions)
                print(f"{kind} of broker {victim} (led {led}): {[round(s, 2) for s in samples[-len(led) :]]}")
        finally:
            load.stop.set()
            load.thread.join(30)
            producer.close(10)
    return {
        "samples": len(samples),
        "min_s": min(samples),
        "median_s": statistics.median(samples),
        "max_s": max(samples),
        "failed_sends": sum(load.failures.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="faults of each kind")
    parser.add_argument(
        "--partitions", type=int, default=4, help="at most max_in_flight_requests (5): see the module docstring"
    )
    parser.add_argument("--heartbeat-ms", type=int, default=200)
    parser.add_argument("--session-ms", type=int, default=1500)
    parser.add_argument("--kinds", default="SIGTERM,SIGKILL,SIGSTOP")
    parser.add_argument(
        "--request-timeout-ms",
        type=int,
        default=30_000,
        help="the producer's request_timeout_ms: how long a request to a paused leader is waited for",
    )
    args = parser.parse_args()
    timings = Timings("bench", args.heartbeat_ms, args.session_ms, 2 * args.session_ms)
    results = {
        kind: measure(kind, args.rounds, args.partitions, timings, args.request_timeout_ms)
        for kind in args.kinds.split(",")
    }
    print(
        f"\n| fault (heartbeat {args.heartbeat_ms} ms, session {args.session_ms} ms, "
        f"producer request_timeout_ms {args.request_timeout_ms}) | samples | min | median | max "
        "| sends failed |\n|---|---|---|---|---|---|"
    )
    for kind, result in results.items():
        print(
            f"| {kind} | {result['samples']} | {result['min_s']:.2f} s | **{result['median_s']:.2f} s** "
            f"| {result['max_s']:.2f} s | {result['failed_sends']} |"
        )
    print(
        f"\nmachine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"command: python bench/failover_bench.py {' '.join(sys.argv[1:])}"
    )


if __name__ == "__main__":
    main()
