"""What the end-to-end modules share: the cluster and topic they create (each module in its own namespace), how
they reach the brokers, an acks=all producer that remembers what was acknowledged, and the check that nothing
acknowledged was lost."""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gafka import Admin, Consumer, GafkaError, Producer, RecordMetadata
from gafka_operator.kube import ApiException, ObjectRef
from operator_k8s.harness import condition

from .platform import Platform, reachable_bootstrap, wait_for

__all__ = [
    "CLUSTER",
    "PARTITIONS",
    "TOPIC",
    "AckedLoad",
    "assert_nothing_acked_lost",
    "bootstrap",
    "cluster_ready",
    "condition_status",
    "describe",
    "get",
    "partitions",
    "read_all",
    "watching",
]

CLUSTER = "orders"
TOPIC = "payments"
PARTITIONS = 6


def get(platform: Platform, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return platform.api.get(ObjectRef(kind, namespace, name))


def condition_status(obj: dict[str, Any] | None, kind: str) -> str | None:
    return (condition(obj, kind) or {}).get("status")


@contextlib.contextmanager
def watching(check: Callable[[], Iterable[str]]) -> Iterator[list[str]]:
    """Run ``check`` every 0.1 s in a thread while the block runs, collecting the violations it returns. A sample
    that meets a transient error (the API, a broker moving) is skipped."""
    violations: list[str] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            with contextlib.suppress(ApiException, GafkaError, OSError):
                violations.extend(check())
            done.wait(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield violations
    finally:
        done.set()
        thread.join()


def cluster_ready(platform: Platform, namespace: str, replicas: int) -> dict[str, Any] | None:
    obj = get(platform, "GafkaCluster", namespace, CLUSTER)
    status = (obj or {}).get("status") or {}
    ready = condition_status(obj, "Ready") == "True"
    settled = condition_status(obj, "Reconciling") == "False"
    return obj if ready and settled and status.get("readyReplicas") == replicas else None


def bootstrap(platform: Platform, namespace: str) -> list[str]:
    obj = get(platform, "GafkaCluster", namespace, CLUSTER)
    url = ((obj or {}).get("status") or {}).get("bootstrap")
    assert url, f"no status.bootstrap yet: {obj}"
    return wait_for(platform, f"ready endpoints behind {url}", lambda: reachable_bootstrap(platform.api, url))


def describe(platform: Platform, namespace: str) -> dict[str, Any]:
    with Admin(bootstrap(platform, namespace)) as admin:
        return admin.describe_topic(TOPIC)


def partitions(platform: Platform, namespace: str) -> list[dict[str, Any]]:
    return list(describe(platform, namespace)["partitions"])


@dataclass
class AckedLoad:
    """A producer sending numbered messages with acks=all in a thread, remembering which ones were acknowledged."""

    servers: list[str]
    acked: dict[int, list[tuple[int, bytes]]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    guard: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0

    def run(self) -> None:
        with Producer(self.servers, acks="all", linger_ms=2, retries=1_000_000, delivery_timeout_ms=60_000) as producer:
            for n in itertools.count():
                if self.stop.is_set():
                    break
                value = f"m-{n:08d}".encode()
                future = producer.send(TOPIC, value=value, key=str(n).encode())
                future.add_done_callback(self._done(value))
                self.sent += 1
                time.sleep(0.002)
            producer.flush()

    def _done(self, value: bytes) -> Any:
        def done(future: Future[RecordMetadata]) -> None:
            error = future.exception()
            with self.guard:
                if error is not None:
                    self.errors[type(error).__name__] += 1
                    return
                meta = future.result()
                self.acked[meta.partition].append((meta.offset, value))

        return done

    def count(self) -> int:
        with self.guard:
            return sum(len(v) for v in self.acked.values())


def read_all(servers: list[str], expected: int) -> dict[int, list[tuple[int, bytes]]]:
    """Every message of the topic, per partition in offset order."""
    seen: dict[int, list[tuple[int, bytes]]] = collections.defaultdict(list)
    with Consumer(servers, auto_offset_reset="earliest") as consumer:
        consumer.assign([(TOPIC, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 60
        total = 0
        while total < expected and time.monotonic() < deadline:
            for record in consumer.poll(1.0):
                seen[record.partition].append((record.offset, record.value or b""))
                total += 1
    return seen


def assert_nothing_acked_lost(platform: Platform, namespace: str, load: AckedLoad) -> None:
    with load.guard:
        acked = {p: sorted(v) for p, v in load.acked.items()}
    ends = {}
    with Admin(bootstrap(platform, namespace)) as admin:
        for p in range(PARTITIONS):
            ends[p] = admin.offset(TOPIC, p, "latest")
    stored = read_all(bootstrap(platform, namespace), sum(ends.values()))
    for p, messages in acked.items():
        log = dict(stored.get(p, []))
        missing = [(offset, value) for offset, value in messages if log.get(offset) != value]
        assert not missing, f"partition {p}: {len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
        offsets = [offset for offset, _ in stored.get(p, [])]
        assert offsets == sorted(offsets), f"partition {p} out of order"
