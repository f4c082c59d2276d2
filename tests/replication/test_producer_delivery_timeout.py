"""The SDK producer resolves every record within ``delivery_timeout_ms`` through a leader change, without
``flush()``, and keeps sending to the partition afterwards.

The leader is paused (SIGSTOP) while records for its partition are being sent: the request in flight to it
gets no answer, and the producer's ``request_timeout_ms`` (30 s, the default) is longer than its delivery
timeout (6 s). Each record must still be delivered or failed by its deadline, and once another broker
leads, a new record is delivered: the partition is neither stuck behind the lost request nor poisoned by
its sequence numbers (a batch of unknown outcome starts a new producer epoch, KIP-360).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from gafka import Producer

DELIVERY_S = 6.0
SLACK_S = 3.0
"""Beyond the deadline: the sender's loop and a loaded machine, far below the 30 s request timeout."""


def test_records_resolve_within_the_delivery_timeout_across_a_paused_leader(cluster_factory: Any) -> None:
    cluster = cluster_factory(3)
    cluster.create_topic("deliver", partitions=1, replication_factor=3, configs={"min.insync.replicas": "2"})
    leader = cluster.leader("deliver", 0)
    producer = Producer(
        [cluster.url(b) for b in cluster.brokers], acks="all", linger_ms=2, delivery_timeout_ms=int(DELIVERY_S * 1000)
    )
    try:
        producer.send("deliver", b"before", partition=0).result(30)
        cluster.pause(leader)
        try:
            sent: list[tuple[float, concurrent.futures.Future[Any]]] = []
            stop = time.monotonic() + 3
            while time.monotonic() < stop:
                sent.append((time.monotonic(), producer.send("deliver", b"during", partition=0)))
                time.sleep(0.05)
            late = 0
            for sent_at, future in sent:
                try:
                    future.exception(timeout=max(0.0, sent_at + DELIVERY_S + SLACK_S - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    late += 1
            assert late == 0, f"{late} of {len(sent)} records neither delivered nor failed within delivery_timeout_ms"
            cluster.wait_for_leader("deliver", 0, not_in={leader})
            after = producer.send("deliver", b"after", partition=0).result(DELIVERY_S + SLACK_S)
            assert after.offset >= 1
        finally:
            cluster.resume(leader)
    finally:
        producer.close(10)
