"""Replication benchmarks on three local brokers: failover time, acks=all throughput, follower catch-up.

Run: ``python bench/replication_bench.py [--seconds 10] [--kills 5] [--catchup-mib 1024] [--only NAMES]``
(``NAMES``: comma-separated of ``failover``, ``throughput``, ``latency``, ``catchup``). Each part starts its own
``gafka controller`` and three ``gafka broker --controller-url`` processes on loopback, each broker on a
fixed port that it keeps across restarts (as a pod keeps its name), with data in a temporary directory
in the working tree (the disk the logs would use), removed afterwards.

- failover: a topic with RF 3 and ``min.insync.replicas=2``; a loop sends acks=all binary batches of one
  record to the leader (following ``421`` hints, moving on to another broker when one does not answer);
  the leader is SIGKILLed ``--kills`` times (restarted each time, and back in the ISR before the next);
  result: seconds from the kill to the first acks=all produce acknowledged by another broker. Run with
  Kafka's defaults (heartbeat 2000 ms, session 9000 ms), ``gafka dev``'s (500 / 1500 ms) and the replication
  tests' (200 / 1500 ms).
- throughput: 1 KB records in binary batches of 100, RF 3, ``min.insync.replicas=2``, 6 partitions (two
  led by each broker), acks=all then acks=1 on the same cluster; load from ``wrk`` (one process per broker,
  sending to the partitions that broker leads) and from the SDK ``Producer`` (one process).
- latency: one 1 KB JSON record per request, acks=1 then acks=all, to a 6-partition topic (partitions led
  by every broker) through broker 0, one request at a time; p50 / p95 / max, and how the leaders' parked
  follower fetches ended (``gafka_replica_fetch_waits_total``: woken by an append, or max_wait ran out).
- catch-up: RF 3, ``min.insync.replicas=1``, one partition; a follower is stopped, ``--catchup-mib`` of 1 KB
  records are produced with acks=1 (900 per batch), the follower is restarted; result: seconds from its
  start until the controller has it back in the ISR, and the MB/s that makes.

Output: a Markdown table for docs/benchmarks.md, then the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from gafka import Producer
from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka.records import RecordMetadata

BATCH_MEDIA_TYPE = "application/vnd.gafka.record-batch.v2"
RECORD = 1024
BROKERS = (0, 1, 2)


@dataclass(frozen=True)
class Timings:
    """Broker liveness settings of one cluster."""

    name: str
    heartbeat_ms: int
    session_ms: int
    lag_ms: int


KAFKA_DEFAULTS = Timings("Kafka defaults", 2000, 9000, 30_000)
DEV = Timings("gafka dev", 500, 1500, 10_000)
TESTS = Timings("replication tests", 200, 1500, 2000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; connection errors count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, KeyError, IndexError):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(interval)


class LocalCluster:
    """``gafka controller`` and three brokers, each on a port of its own that survives restarts."""

    def __init__(self, root: Path, timings: Timings, controller_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.timings = timings
        self.controller_url = f"http://127.0.0.1:{free_port()}"
        self.urls = {b: f"http://127.0.0.1:{free_port()}" for b in BROKERS}
        self.processes: dict[int | str, subprocess.Popen[bytes]] = {}
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self._spawn(
            "controller",
            [
                "controller",
                *("--data-dir", str(root / "controller")),
                *("--listen", self.controller_url.removeprefix("http://")),
                *("--broker-session-timeout-ms", str(timings.session_ms)),
                *("--tick-ms", "100"),
                *controller_args,
            ],
        )
        wait_for(self.metadata, 30, "the controller answering")
        for broker_id in BROKERS:
            self.start(broker_id, wait=False)
        for broker_id in BROKERS:
            self.wait_ready(broker_id)

    def _spawn(self, name: int | str, args: list[str]) -> None:
        log = (self.root / "logs" / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "gafka.cli.main", *args], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def start(self, broker_id: int, *, wait: bool = True) -> None:
        self._spawn(
            broker_id,
            [
                "broker",
                *("--data-dir", str(self.root / f"broker-{broker_id}")),
                *("--listen", self.urls[broker_id].removeprefix("http://")),
                *("--broker-id", str(broker_id)),
                *("--controller-url", self.controller_url),
                *("--broker-heartbeat-interval-ms", str(self.timings.heartbeat_ms)),
                *("--broker-session-timeout-ms", str(self.timings.session_ms)),
                *("--replica-lag-time-max-ms", str(self.timings.lag_ms)),
                *("--log-level", "warning"),
            ],
        )
        if wait:
            self.wait_ready(broker_id)

    def wait_ready(self, broker_id: int) -> None:
        process = self.processes[broker_id]

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"broker {broker_id} exited with {process.returncode}; see {self.root}/logs")
            return httpx.get(f"{self.urls[broker_id]}/readyz", timeout=2).status_code == 200

        wait_for(ready, 60, f"broker {broker_id} ready")

    def kill(self, broker_id: int) -> None:
        process = self.processes[broker_id]
        process.kill()
        process.wait(30)

    def stop(self, broker_id: int) -> None:
        process = self.processes[broker_id]
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    def shutdown(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None and name != "controller":
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            if name != "controller":
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
        controller = self.processes["controller"]
        controller.send_signal(signal.SIGTERM)
        try:
            controller.wait(10)
        except subprocess.TimeoutExpired:
            controller.kill()
            controller.wait(10)

    # -- metadata --------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(f"{self.controller_url}/v1/controller/metadata?since=-1", timeout=5).json()
        return document

    def partition(self, topic: str, partition: int) -> dict[str, Any]:
        for entry in self.metadata()["topics"]:
            if entry["name"] == topic:
                state: dict[str, Any] = entry["partitions"][partition]
                return state
        raise KeyError(topic)

    def leader(self, topic: str, partition: int) -> int:
        return int(self.partition(topic, partition)["leader"])

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> None:
        body = {"name": name, "partitions": partitions, "replication_factor": 3, "configs": configs}
        response = httpx.post(f"{self.urls[0]}/v1/topics", json=body, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"cannot create {name}: {response.status_code} {response.text}")
        for broker_id in BROKERS:
            wait_for(partial(self.serves, broker_id, name), 30, f"{name} on broker {broker_id}")

    def serves(self, broker_id: int, topic: str) -> bool:
        """Whether the broker knows ``topic`` and a leader for each of its partitions."""
        document = httpx.get(f"{self.urls[broker_id]}/v1/topics/{topic}", timeout=5).json()
        return all(p["leader"] >= 0 for p in document["partitions"])

    def log_ends(self, broker_id: int, topic: str) -> dict[int, int]:
        """Partition -> log end offset of this broker's replicas of ``topic`` (from /metrics)."""
        found: dict[int, int] = {}
        for line in httpx.get(f"{self.urls[broker_id]}/metrics", timeout=10).text.splitlines():
            if line.startswith("gafka_partition_log_end_offset{") and f'topic="{topic}"' in line:
                partition = int(line.split('partition="', 1)[1].split('"', 1)[0])
                found[partition] = int(float(line.rsplit(" ", 1)[1]))
        return found

    def log_end(self, broker_id: int, topic: str) -> int:
        return self.log_ends(broker_id, topic)[0]

    def wait_replicas_equal(self, topic: str, timeout: float) -> float:
        """Wait until every replica of every partition has the same log end offset (nothing is being
        produced); returns the seconds waited. Being in the ISR is not enough: a follower far behind stays
        in it for up to replica.lag.time.max.ms."""
        started = time.monotonic()
        wait_for(lambda: len({tuple(sorted(self.log_ends(b, topic).items())) for b in BROKERS}) == 1, timeout, "equal")
        return time.monotonic() - started

    def wait_isr(self, topic: str, partitions: int, isr: set[int], timeout: float = 120) -> None:
        wait_for(
            lambda: all(set(self.partition(topic, p)["isr"]) == isr for p in range(partitions)),
            timeout,
            f"ISR of {topic} == {sorted(isr)}",
        )


@contextlib.contextmanager
def local_cluster(timings: Timings, controller_args: tuple[str, ...] = ()) -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix=".gafka-repl-bench-", dir=Path.cwd()))
    cluster = None
    try:
        cluster = LocalCluster(root, timings, controller_args)
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)


# -- (a) failover ------------------------------------------------------------------------------------
class ProduceLoop:
    """acks=all produce requests back to back, to whichever broker leads (``421`` hints, else the next)."""

    def __init__(self, cluster: LocalCluster, topic: str) -> None:
        self.cluster = cluster
        self.path = f"/v1/topics/{topic}/partitions/0/batches"
        self.body = encode_batch([NewRecord(None, b"x" * 100)])
        self.down: set[int] = set()
        self.successes: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        clients = {b: httpx.Client(base_url=self.cluster.urls[b], timeout=3) for b in BROKERS}
        target = 0
        try:
            while not self.stopping.is_set():
                if target in self.down:
                    target = (target + 1) % len(BROKERS)
                    continue
                try:
                    response = clients[target].post(
                        self.path,
                        content=self.body,
                        params={"acks": "all"},
                        headers={"content-type": BATCH_MEDIA_TYPE},
                    )
                except httpx.HTTPError:
                    target = (target + 1) % len(BROKERS)
                    continue
                hint = response.json().get("leader_id", -1) if response.status_code == 421 else -1
                if response.status_code == 200:
                    self.successes.append((time.monotonic(), target))
                elif hint >= 0 and hint not in self.down:
                    target = int(hint)
                else:  # no leader yet, a stale hint, NOT_ENOUGH_REPLICAS, timed out: ask the next broker soon
                    target = (target + 1) % len(BROKERS)
                    self.stopping.wait(0.01)
        finally:
            for client in clients.values():
                client.close()

    def first_success(self, since: float, not_from: int) -> float | None:
        return next((at for at, broker in list(self.successes) if at > since and broker != not_from), None)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)


def bench_failover(timings: Timings, kills: int) -> dict[str, float]:
    topic = "failover"
    with local_cluster(timings) as cluster:
        cluster.create_topic(topic, 1, {"min.insync.replicas": "2"})
        loop = ProduceLoop(cluster, topic)
        times: list[float] = []
        elections: list[float] = []
        try:
            wait_for(lambda: loop.successes, 30, "first acks=all produce")
            for _ in range(kills):
                victim = cluster.leader(topic, 0)
                loop.down.add(victim)
                killed = time.monotonic()
                cluster.kill(victim)
                wait_for(partial(new_leader, cluster, topic, victim), 60, "a new leader", 0.01)
                elections.append(time.monotonic() - killed)
                acked = wait_for(partial(loop.first_success, killed, victim), 60, "acks=all on the new leader", 0.01)
                times.append(acked - killed)
                cluster.start(victim)
                loop.down.discard(victim)
                cluster.wait_isr(topic, 1, set(BROKERS))
        finally:
            loop.stop()
    return {
        "heartbeat_ms": timings.heartbeat_ms,
        "session_ms": timings.session_ms,
        "kills": len(times),
        "election_median_s": statistics.median(elections),
        "min_s": min(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
    }


def new_leader(cluster: LocalCluster, topic: str, old: int) -> bool:
    return cluster.leader(topic, 0) not in (old, -1)


# -- (b) throughput ----------------------------------------------------------------------------------
def wrk(url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    """One ``wrk`` run (one thread); requests/s and non-2xx answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        output = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", path, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(path).unlink()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    p99_ms = float("nan")
    if p99 is not None:
        value, unit = float(p99.group(1)), p99.group(2)
        p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "p99_ms": p99_ms,
    }


def bench_wrk(cluster: LocalCluster, topic: str, partitions: int, acks: str, seconds: int) -> dict[str, float]:
    """One ``wrk`` per broker, each rotating over the partitions that broker leads, all at once."""
    records = 100
    batch = encode_batch([NewRecord(None, os.urandom(RECORD)) for _ in range(records)])
    with tempfile.NamedTemporaryFile("wb", suffix=".bin", delete=False) as handle:
        handle.write(batch)
        batch_path = handle.name
    led: dict[int, list[int]] = {b: [] for b in BROKERS}
    for partition in range(partitions):
        led[cluster.leader(topic, partition)].append(partition)
    results: dict[int, dict[str, float]] = {}

    def run(broker_id: int) -> None:
        paths = ", ".join(f'"/v1/topics/{topic}/partitions/{p}/batches?acks={acks}"' for p in led[broker_id])
        script = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "{BATCH_MEDIA_TYPE}"
local f = io.open("{batch_path}", "rb")
wrk.body = f:read("*all")
f:close()
local paths = {{{paths}}}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
"""
        results[broker_id] = wrk(cluster.urls[broker_id], script, seconds, 4 * len(led[broker_id]))

    try:
        threads = [threading.Thread(target=run, args=(b,)) for b in BROKERS if led[b]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        Path(batch_path).unlink()
    rps = sum(r["requests_per_s"] for r in results.values())
    return {
        "msg_per_s": rps * records,
        "mb_per_s": rps * len(batch) / 1e6,
        "requests_per_s": rps,
        "non_2xx": sum(r["non_2xx"] for r in results.values()),
        "worst_p99_ms": max(r["p99_ms"] for r in results.values()),
    }


def bench_sdk(cluster: LocalCluster, topic: str, partitions: int, acks: str, seconds: int) -> dict[str, float]:
    """The SDK ``Producer`` sending 1 KB records round-robin over the partitions as fast as it can."""
    value = os.urandom(RECORD)
    producer = Producer(
        [cluster.urls[b] for b in BROKERS], acks=acks, linger_ms=5, batch_size=256 * 1024, compression_type="none"
    )
    try:
        for partition in range(partitions):
            producer.send(topic, value, partition=partition).result(30)
        futures: list[Future[RecordMetadata]] = []
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            for _ in range(1000):
                futures.append(producer.send(topic, value, partition=len(futures) % partitions))
        producer.flush(120)
        elapsed = time.monotonic() - started
    finally:
        producer.close(30)
    acked = sum(1 for future in futures if future.done() and future.exception() is None)
    return {
        "msg_per_s": acked / elapsed,
        "mb_per_s": acked * RECORD / elapsed / 1e6,
        "failed": float(len(futures) - acked),
    }


def bench_throughput(seconds: int) -> dict[str, dict[str, float]]:
    partitions = 6
    results: dict[str, dict[str, float]] = {}
    with local_cluster(DEV) as cluster:
        cluster.create_topic("throughput", partitions, {"min.insync.replicas": "2"})
        runs: list[tuple[str, Callable[[LocalCluster, str, int, str, int], dict[str, float]], str]] = [
            (f"binary produce (wrk), 100 x 1 KB per batch, RF 3, {partitions} partitions", bench_wrk, "all"),
            (f"binary produce (wrk), 100 x 1 KB per batch, RF 3, {partitions} partitions", bench_wrk, "1"),
            (f"SDK Producer, 1 KB records, RF 3, {partitions} partitions", bench_sdk, "all"),
            (f"SDK Producer, 1 KB records, RF 3, {partitions} partitions", bench_sdk, "1"),
        ]
        for name, run, acks in runs:
            values = run(cluster, "throughput", partitions, acks, seconds)
            # the next run starts with every follower caught up and in the ISR; how long that takes shows
            # whether the followers kept up (with acks=1 they need not)
            values["followers_caught_up_after_s"] = cluster.wait_replicas_equal("throughput", 900)
            cluster.wait_isr("throughput", partitions, set(BROKERS), 300)
            results[f"{name}, acks={acks}"] = values
    return results


# -- (c) latency of single records -------------------------------------------------------------------
_FETCH_WAITS = re.compile(r'^gafka_replica_fetch_waits_total\{ended_by="(\w+)"\} (\S+)$', re.MULTILINE)


def fetch_waits(cluster: LocalCluster) -> dict[str, float]:
    """Parked follower fetches over the cluster by what ended them (woken / max_wait)."""
    totals: dict[str, float] = {}
    for broker_id in BROKERS:
        text = httpx.get(f"{cluster.urls[broker_id]}/metrics", timeout=10).text
        for ended_by, value in _FETCH_WAITS.findall(text):
            totals[ended_by] = totals.get(ended_by, 0.0) + float(value)
    return totals


def bench_latency(requests: int = 300) -> dict[str, dict[str, float]]:
    partitions = 6
    results: dict[str, dict[str, float]] = {}
    value = "x" * RECORD
    with local_cluster(DEV) as cluster, httpx.Client(base_url=cluster.urls[0], timeout=30) as http:
        cluster.create_topic("latency", partitions, {"min.insync.replicas": "2"})
        for acks in ("1", "all"):
            before = fetch_waits(cluster)
            took: list[float] = []
            for index in range(requests):
                body = {"records": [{"value": value, "partition": index % partitions}]}
                started = time.perf_counter()
                response = http.post("/v1/topics/latency/records", json=body, params={"acks": acks})
                took.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"produce failed: {response.status_code} {response.text}")
            after = fetch_waits(cluster)
            took.sort()
            name = f"JSON produce, one 1 KB record per request, {partitions} partitions led by 3 brokers, acks={acks}"
            results[name] = {
                "p50_ms": statistics.median(took),
                "p95_ms": took[int(len(took) * 0.95)],
                "max_ms": took[-1],
                "fetch_waits_woken": after.get("woken", 0.0) - before.get("woken", 0.0),
                "fetch_waits_max_wait": after.get("max_wait", 0.0) - before.get("max_wait", 0.0),
            }
    return results


# -- (d) catch-up ------------------------------------------------------------------------------------
async def produce_bytes(url: str, topic: str, total: int, records: int = 900) -> float:
    """Send ``total`` bytes of 1 KB records to partition 0 with acks=1 over 4 connections; seconds taken."""
    batch = encode_batch([NewRecord(None, os.urandom(RECORD)) for _ in range(records)])
    count = -(-total // (records * RECORD))
    claimed = 0
    started = time.monotonic()

    async def sender() -> None:
        nonlocal claimed
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while claimed < count:
                claimed += 1
                response = await client.post(
                    f"/v1/topics/{topic}/partitions/0/batches",
                    content=batch,
                    params={"acks": "1"},
                    headers={"content-type": BATCH_MEDIA_TYPE},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"produce failed: {response.status_code} {response.text}")

    await asyncio.gather(*(sender() for _ in range(4)))
    return time.monotonic() - started


def bench_catchup(mib: int) -> dict[str, float]:
    topic = "catchup"
    total = mib * 1024 * 1024
    with local_cluster(DEV) as cluster:
        cluster.create_topic(topic, 1, {"min.insync.replicas": "1"})
        leader = cluster.leader(topic, 0)
        follower, other = (b for b in BROKERS if b != leader)
        cluster.stop(follower)
        cluster.wait_isr(topic, 1, {leader, other}, 60)
        produce_s = asyncio.run(produce_bytes(cluster.urls[leader], topic, total))
        end = cluster.log_end(leader, topic)
        # the other follower has everything first, so only one replica is catching up below
        wait_for(lambda: cluster.log_end(other, topic) == end, 300, "the other follower caught up")
        started = time.monotonic()
        cluster.start(follower, wait=False)
        cluster.wait_ready(follower)
        ready_s = time.monotonic() - started
        cluster.wait_isr(topic, 1, set(BROKERS), 900)
        caught_up_s = time.monotonic() - started
    return {
        "bytes_mib": mib,
        "records": end,
        "produce_mb_per_s": total / produce_s / 1e6,
        "restart_to_ready_s": ready_s,
        "restart_to_isr_s": caught_up_s,
        "catch_up_mb_per_s": total / caught_up_s / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each throughput run")
    parser.add_argument("--kills", type=int, default=5, help="leader kills per failover setting")
    parser.add_argument("--catchup-mib", type=int, default=1024, help="how far behind the restarted follower is")
    parser.add_argument("--only", default="failover,throughput,latency,catchup")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if "throughput" in parts and shutil.which("wrk") is None:
        sys.exit("replication_bench: wrk is not installed (apt-get install wrk)")
    results: dict[str, dict[str, float]] = {}
    if "failover" in parts:
        for timings in (TESTS, DEV, KAFKA_DEFAULTS):
            name = (
                f"failover: SIGKILL leader -> first acks=all produce on the new leader, {timings.name} "
                f"(heartbeat {timings.heartbeat_ms} ms, session {timings.session_ms} ms)"
            )
            results[name] = bench_failover(timings, args.kills)
            print(f"{name}: {results[name]}", file=sys.stderr)
    if "throughput" in parts:
        for name, values in bench_throughput(args.seconds).items():
            results[name] = values
            print(f"{name}: {values}", file=sys.stderr)
    if "latency" in parts:
        for name, values in bench_latency().items():
            results[name] = values
            print(f"{name}: {values}", file=sys.stderr)
    if "catchup" in parts:
        name = f"catch-up of a follower restarted {args.catchup_mib} MiB behind (1 KB records, RF 3)"
        results[name] = bench_catchup(args.catchup_mib)
        print(f"{name}: {results[name]}", file=sys.stderr)
    print("| benchmark | result |\n|---|---|")
    for name, values in results.items():
        shown = ", ".join(
            f"{key} {value:,.2f}" if isinstance(value, float) else f"{key} {value}" for key, value in values.items()
        )
        print(f"| {name} | {shown} |")
    print(
        f"\nmachine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"command: python bench/replication_bench.py {' '.join(sys.argv[1:])}"
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
