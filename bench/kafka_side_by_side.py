"""gafka and Apache Kafka 4.3.1 side by side on this machine: the same workloads, interleaved, with ratios.

Run: ``python bench/kafka_side_by_side.py [--rounds 2] [--records 300000] [--consume 1000000] [--seconds 10]``

Kafka's jars (the broker, ``kafka_2.13``, and its tools) come from Maven Central through
``scripts/kafka-tools --server`` into ``~/.cache/gafka``. Both systems run three combined nodes on
loopback, up at the same time: Kafka in KRaft mode (each node broker and controller, 512 MB heap),
gafka as a ``gafka controller`` and three brokers with default settings (Kafka's liveness timings too:
heartbeat 2 s, session 9 s, replica lag 30 s, so a loaded machine does not move leaderships mid-run).
Every workload runs on Kafka, then on gafka, ``--rounds`` times; the table shows medians and gafka / Kafka.

- RF 3, ``min.insync.replicas=2``, 6 partitions, acks=all, 1 KB records: Kafka's ``ProducerPerformance``
  against ``gafka bench produce`` (linger 5 ms, 1 MB batches, each in its own process);
- the same with ``wrk`` sending 100 x 1 KB binary batches to gafka (no Kafka counterpart: HTTP);
- one partition, RF 1, acks=1: the same two producers;
- consume ``--consume`` records of that partition: ``ConsumerPerformance`` against ``gafka bench consume``;
- end to end at 5,000 msg/s: ``gafka bench e2e``; Kafka's ``EndToEndLatency`` sends one record at a time
  (its only end-to-end tool), so its row is labelled as such;
- JSON produce, one 1 KB record per request (``wrk``, gafka only);
- broker CPU-seconds per GB of record values written, from ``/proc/<pid>/stat`` of every broker process
  over each producer run (all replicas included).

Output: a Markdown table for docs/benchmarks.md, then the machine. Data lives in a temporary directory
on the working tree's disk, removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replication_bench import BROKERS, KAFKA_DEFAULTS, LocalCluster, bench_wrk, cpu_model, local_cluster, wait_for, wrk

ROOT = Path(__file__).resolve().parents[1]
RECORD = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


# -- Apache Kafka --------------------------------------------------------------------------------------
def kafka_libs() -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka-tools"), "--server"], capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


class KafkaCluster:
    """Three KRaft nodes, each broker and controller (``kafka.Kafka``), on loopback."""

    def __init__(self, root: Path, libs: Path, size: int = 3) -> None:
        self.root = root
        self.libs = libs
        self.ports = {node: free_port() for node in range(1, size + 1)}
        controllers = {node: free_port() for node in self.ports}
        voters = ",".join(f"{node}@127.0.0.1:{port}" for node, port in controllers.items())
        cluster_id = self.tool_output("kafka.tools.StorageTool", "random-uuid").strip().splitlines()[-1]
        self.processes: list[subprocess.Popen[bytes]] = []
        for node, port in self.ports.items():
            config = root / f"kafka-{node}.properties"
            config.write_text(
                "\n".join(
                    [
                        "process.roles=broker,controller",
                        f"node.id={node}",
                        f"controller.quorum.voters={voters}",
                        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controllers[node]}",
                        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                        "controller.listener.names=CONTROLLER",
                        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                        "inter.broker.listener.name=PLAINTEXT",
                        f"log.dirs={root / f'kafka-data-{node}'}",
                        "offsets.topic.replication.factor=3",
                        "transaction.state.log.replication.factor=3",
                        "group.initial.rebalance.delay.ms=0",
                    ]
                )
                + "\n"
            )
            self.tool_output("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config))
            log = (root / f"kafka-{node}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    ["java", "-Xms512m", "-Xmx512m", "-cp", f"{libs}/*", "kafka.Kafka", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        wait_for(self.answers, 120, "Kafka answering")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports.values())

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def tool_output(self, main: str, *args: str) -> str:
        command = ["java", "-Xmx256m", "-cp", f"{self.libs}/*", main, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{main} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def answers(self) -> bool:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a Kafka node exited with {process.returncode}; see {self.root}")
        try:
            listed = self.tool_output(
                "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", self.bootstrap, "--list"
            )
        except RuntimeError:
            return False
        return listed is not None

    def create_topic(self, name: str, partitions: int, replication: int, configs: dict[str, str]) -> None:
        args = ["--bootstrap-server", self.bootstrap, "--create", "--if-not-exists", "--topic", name]
        args += ["--partitions", str(partitions), "--replication-factor", str(replication)]
        for key, value in configs.items():
            args += ["--config", f"{key}={value}"]
        self.tool_output("org.apache.kafka.tools.TopicCommand", *args)

    def shutdown(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def kafka_cluster(libs: Path) -> Iterator[KafkaCluster]:
    root = Path(tempfile.mkdtemp(prefix=".gafka-kafka-bench-", dir=Path.cwd()))
    cluster = None
    try:
        cluster = KafkaCluster(root, libs)
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def kafka_produce(cluster: KafkaCluster, topic: str, records: int, acks: str) -> dict[str, float]:
    props = [f"bootstrap.servers={cluster.bootstrap}", f"acks={acks}", "linger.ms=5", "batch.size=1048576"]
    output = cluster.tool_output(
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", topic, "--num-records", str(records), "--record-size", str(RECORD), "--throughput", "-1"),
        "--producer-props",
        *props,
    )
    last = output.strip().splitlines()[-1]
    match = re.search(r"([\d.]+) records/sec.*?([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th", last)
    if match is None:
        raise RuntimeError(f"ProducerPerformance said: {last}")
    return {"msg_per_s": float(match.group(1)), "p50_ms": float(match.group(2)), "p99_ms": float(match.group(4))}


def kafka_consume(cluster: KafkaCluster, topic: str, records: int) -> dict[str, float]:
    output = cluster.tool_output(
        "org.apache.kafka.tools.ConsumerPerformance",
        *("--bootstrap-server", cluster.bootstrap, "--topic", topic, "--num-records", str(records)),
        *("--timeout", "60000", "--group", f"perf-{uuid.uuid4().hex[:8]}"),
    )
    header, values = None, None
    for line in output.strip().splitlines():
        if line.startswith("start.time"):
            header = [part.strip() for part in line.split(",")]
        elif header is not None:
            values = [part.strip() for part in line.split(",")]
    if header is None or values is None:
        raise RuntimeError(f"ConsumerPerformance said: {output[-500:]}")
    row = dict(zip(header, values, strict=False))
    return {"msg_per_s": float(row["fetch.nMsg.sec"]), "records": float(row["data.consumed.in.nMsg"])}


def kafka_e2e(cluster: KafkaCluster, topic: str, records: int) -> dict[str, float]:
    output = cluster.tool_output(
        "org.apache.kafka.tools.EndToEndLatency", cluster.bootstrap, topic, str(records), "1", str(RECORD)
    )
    match = re.search(r"50th = ([\d.]+), 99th = ([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"EndToEndLatency said: {output[-500:]}")
    return {"p50_ms": float(match.group(1)), "p99_ms": float(match.group(2))}


# -- gafka ---------------------------------------------------------------------------------------------
def gafka_cli(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    bootstrap = ",".join(cluster.urls[b] for b in BROKERS)
    done = subprocess.run(
        [sys.executable, "-m", "gafka.cli.main", "bench", *args, "--json", "--no-progress", "-b", bootstrap],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 and not done.stdout.lstrip().startswith("{"):  # (exit 1 with a result: errors)
        raise RuntimeError(f"gafka bench {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{") :])
    return result


def gafka_produce(cluster: LocalCluster, topic: str, records: int, acks: str) -> dict[str, float]:
    result = gafka_cli(
        cluster, "produce", topic, "-n", str(records), "--acks", acks, "--batch-size", "1048576", "--linger-ms", "5"
    )
    if result.get("errors"):
        print(f"gafka bench produce: {result['errors']} errors, first {result.get('first_error')}", file=sys.stderr)
    latency = result["latency_ms"]
    return {
        "msg_per_s": float(result["msg_per_s"]),
        "p50_ms": float(latency["p50"]),
        "p99_ms": float(latency["p99"]),
        "errors": float(result.get("errors", 0)),
    }


def gafka_consume(cluster: LocalCluster, topic: str, records: int) -> dict[str, float]:
    result = gafka_cli(cluster, "consume", topic, "-n", str(records))
    return {"msg_per_s": float(result["msg_per_s"]), "records": float(result["messages"])}


def gafka_e2e(cluster: LocalCluster, topic: str, records: int) -> dict[str, float]:
    result = gafka_cli(cluster, "e2e", topic, "--rate", "5000", "-n", str(records), "--acks", "1")
    latency = result["latency_ms"]
    return {"p50_ms": float(latency["p50"]), "p99_ms": float(latency["p99"]), "msg_per_s": float(result["msg_per_s"])}


def gafka_json(cluster: LocalCluster, topic: str, seconds: int) -> dict[str, float]:
    leader = cluster.urls[cluster.leader(topic, 0)]
    body = json.dumps({"records": [{"value": "x" * RECORD, "partition": 0}]})
    script = f"""
wrk.method = "POST"
wrk.path = "/v1/topics/{topic}/records?acks=1"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {json.dumps(body)}
"""
    result = wrk(leader, script, seconds, 32)
    return {"msg_per_s": result["requests_per_s"], "p99_ms": result["p99_ms"]}


def gafka_create(cluster: LocalCluster, topic: str, partitions: int, replication: int, configs: dict[str, str]) -> None:
    body = {"name": topic, "partitions": partitions, "replication_factor": replication, "configs": configs}
    response = httpx.post(f"{cluster.urls[0]}/v1/topics", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"cannot create {topic}: {response.status_code} {response.text}")
    for broker_id in BROKERS:
        wait_for(partial(cluster.serves, broker_id, topic), 30, f"{topic} on broker {broker_id}")


# -- the run -------------------------------------------------------------------------------------------
def with_cpu(pids: list[int], records: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    before = cpu_seconds(pids)
    result = run()
    result["broker_cpu_s_per_gb"] = (cpu_seconds(pids) - before) / (records * RECORD / 1e9)
    return result


UNITS = (
    ("msg_per_s", "msg/s"),
    ("p50_ms", " ms p50"),
    ("p99_ms", " ms p99"),
    ("broker_cpu_s_per_gb", " CPU-s/GB"),
    ("errors", " failed records"),
)


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "msg/s":
        return f"{value / 1000:,.1f}k msg/s"
    return f"{value:,.2f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=300_000, help="records per producer run")
    parser.add_argument("--consume", type=int, default=1_000_000, help="records per consumer run")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("kafka_side_by_side: wrk is not installed (apt-get install wrk)")
    libs = kafka_libs()
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}

    def record(row: str, system: str, result: dict[str, float]) -> None:
        rows.setdefault(row, {}).setdefault(system, []).append(result)
        print(f"{row} [{system}]: {result}", file=sys.stderr)

    with kafka_cluster(libs) as kafka, local_cluster(KAFKA_DEFAULTS) as gafka:
        gafka_pids = [gafka.processes[b].pid for b in BROKERS]
        durable = {"min.insync.replicas": "2"}
        kafka.create_topic("rf3", 6, 3, durable)
        gafka_create(gafka, "rf3", 6, 3, durable)
        kafka.create_topic("one", 1, 1, {})
        gafka_create(gafka, "one", 1, 1, {})
        gafka_create(gafka, "wrk", 6, 3, durable)
        gafka_create(gafka, "json", 1, 1, {})
        kafka.create_topic("e2e", 1, 1, {})
        gafka_create(gafka, "e2e", 1, 1, {})
        one_partition = max(args.consume // args.rounds, args.records)
        for _round in range(args.rounds):
            n = args.records
            row = "3 brokers, RF 3, acks=all, 6 partitions: SDK vs ProducerPerformance (linger 5 ms, 1 MB batches)"
            record(row, "kafka", with_cpu(kafka.pids, n, partial(kafka_produce, kafka, "rf3", n, "all")))
            record(row, "gafka", with_cpu(gafka_pids, n, partial(gafka_produce, gafka, "rf3", n, "all")))
            row = "one partition, RF 1, acks=1: SDK vs ProducerPerformance (linger 5 ms, 1 MB batches)"
            m = one_partition
            record(row, "kafka", with_cpu(kafka.pids, m, partial(kafka_produce, kafka, "one", m, "1")))
            record(row, "gafka", with_cpu(gafka_pids, m, partial(gafka_produce, gafka, "one", m, "1")))
            row = "3 brokers, RF 3, acks=all, 6 partitions: binary batches of 100 x 1 KB via wrk (gafka only)"
            before = cpu_seconds(gafka_pids)
            result = bench_wrk(gafka, "wrk", 6, "all", args.seconds)
            written = result["msg_per_s"] * args.seconds
            result["broker_cpu_s_per_gb"] = (cpu_seconds(gafka_pids) - before) / (written * RECORD / 1e9)
            result["p99_ms"] = result.pop("worst_p99_ms")
            record(row, "gafka", {k: result[k] for k in ("msg_per_s", "p99_ms", "broker_cpu_s_per_gb")})
            row = "JSON produce, one 1 KB record per request, acks=1, 32 connections (wrk, gafka only)"
            record(row, "gafka", gafka_json(gafka, "json", args.seconds))
        for _round in range(args.rounds):
            row = f"consume {args.consume:,} records of one partition: SDK vs ConsumerPerformance"
            record(row, "kafka", kafka_consume(kafka, "one", args.consume))
            record(row, "gafka", gafka_consume(gafka, "one", args.consume))
            row = "end to end: gafka at 5,000 msg/s (send -> consume); Kafka's EndToEndLatency, one record at a time"
            record(row, "kafka", kafka_e2e(kafka, "e2e", 5000))
            record(row, "gafka", gafka_e2e(gafka, "e2e", 25_000))

    print(f"| figure (1 KB records, medians of {args.rounds} rounds) | Kafka 4.3.1 | gafka | gafka / Kafka |")
    print("|---|---|---|---|")
    for row, systems in rows.items():
        kafka_result = median_of(systems["kafka"]) if "kafka" in systems else None
        gafka_result = median_of(systems["gafka"])
        for key, unit in UNITS:
            if key not in gafka_result:
                continue
            k = None if kafka_result is None else kafka_result.get(key)
            g = gafka_result[key]
            ratio = "—" if not k else f"{g / k:.2f}x"
            print(f"| {row}: {key} | {fmt(k, unit)} | {fmt(g, unit)} | {ratio} |")
    print(
        f"\nmachine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"load average at the end {os.getloadavg()[0]:.1f}; command: python bench/kafka_side_by_side.py "
        f"{' '.join(sys.argv[1:])}"
    )


if __name__ == "__main__":
    main()
