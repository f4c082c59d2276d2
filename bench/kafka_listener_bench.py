"""gafka's Kafka listener and Apache Kafka side by side, with Kafka's own ProducerPerformance and
ConsumerPerformance and the same settings against both, in one run on this machine.

Run: ``python bench/kafka_listener_bench.py [--records 300000] [--rounds 2] [--kafka-libs DIR]``

Apache Kafka's broker and tools come from ``scripts/kafka-tools --server`` (Maven Central, cached), or from
``DIR`` (``org.apache.kafka:kafka_2.13`` and its runtime dependencies). bench/kafka_side_by_side.py compares
gafka's own SDK and HTTP API with Kafka; this one puts Kafka's clients on both, through gafka's Kafka listener.
Each system gets one broker on loopback (Kafka in KRaft combined mode, 1 GB heap; gafka as ``gafka broker
--kafka-listen``), with data in a temporary directory. Per round and system: ProducerPerformance of
``--records`` 1 KB records to a 1-partition topic (acks=1, linger.ms=5, batch.size=1 MB), then
ConsumerPerformance of the same records. Reported: records/s, MB/s, the broker's CPU seconds per GB
moved (utime+stime of the broker process over the run), and the broker's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
JVM = ["java", "-XX:+UseG1GC"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _peak_rss_mb(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def _wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


@contextlib.contextmanager
def apache_kafka(libs: Path, root: Path) -> Iterator[tuple[str, int]]:
    port, controller = _free_port(), _free_port()
    config = root / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={root / 'kafka-logs'}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
            ]
        )
    )
    classpath = f"{libs}/*"
    subprocess.run(
        [*JVM, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", str(uuid.uuid4()), "-c", str(config)],
        check=True,
        capture_output=True,
    )
    log = (root / "kafka.log").open("wb")
    process = subprocess.Popen(
        [*JVM, "-Xmx1G", "-Xms1G", "-cp", classpath, "kafka.Kafka", str(config)], stdout=log, stderr=log
    )
    try:
        _wait_port(port)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(60)


@contextlib.contextmanager
def gafka(root: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    log = (root / "gafka.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gafka.cli.main",
            "broker",
            "--data-dir",
            str(root / "gafka-data"),
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            f"127.0.0.1:{port}",
            "--auto-create-topics",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_port(port)
        time.sleep(1.0)  # ready: logs recovered and registered
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(60)


def _tool(tools: Path, main: str, *args: str) -> str:
    done = subprocess.run(
        [*JVM, "-cp", f"{tools}/*", main, *args], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{main} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _create_topic(tools: Path, bootstrap: str, topic: str) -> None:
    _tool(
        tools,
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    )


def produce(tools: Path, bootstrap: str, topic: str, records: int) -> float:
    out = _tool(
        tools,
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        "1024",
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=1",
        "linger.ms=5",
        "batch.size=1048576",
    )
    last = [line for line in out.splitlines() if "records sent" in line][-1]
    return float(re.search(r"([\d.]+) records/sec", last).group(1))  # type: ignore[union-attr]


def consume(tools: Path, bootstrap: str, topic: str, records: int) -> float:
    out = _tool(
        tools,
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        str(records),
        "--timeout",
        "60000",
    )
    row = out.strip().splitlines()[-1].split(",")
    return float(row[5])  # nMsg.sec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka-libs", type=Path, default=None)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tools = Path(
        subprocess.run(
            ["bash", str(REPO / "scripts" / "kafka-tools")], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    gigabytes = args.records * 1024 / 1e9
    rows = []
    for round_ in range(args.rounds):
        for name, system in (
            ("Apache Kafka 4.3.1", lambda root: apache_kafka(args.kafka_libs, root)),
            ("gafka", gafka),
        ):
            root = Path(tempfile.mkdtemp(prefix="kafka-bench-", dir=REPO))
            try:
                with system(root) as (bootstrap, pid):
                    topic = f"bench-{round_}"
                    _create_topic(tools, bootstrap, topic)
                    cpu = _cpu_seconds(pid)
                    produced = produce(tools, bootstrap, topic, args.records)
                    produce_cpu = _cpu_seconds(pid) - cpu
                    cpu = _cpu_seconds(pid)
                    consumed = consume(tools, bootstrap, topic, args.records)
                    consume_cpu = _cpu_seconds(pid) - cpu
                    rows.append(
                        (
                            round_,
                            name,
                            produced,
                            produce_cpu / gigabytes,
                            consumed,
                            consume_cpu / gigabytes,
                            _peak_rss_mb(pid),
                        )
                    )
            finally:
                shutil.rmtree(root, ignore_errors=True)
    print(
        "| round | system | produce rec/s | produce MB/s | broker CPU-s/GB in | consume rec/s | "
        "broker CPU-s/GB out | broker peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for round_, name, produced, pcpu, consumed, ccpu, rss in rows:
        print(
            f"| {round_ + 1} | {name} | {produced:,.0f} | {produced * 1024 / 1e6:.1f} | {pcpu:.2f} | "
            f"{consumed:,.0f} | {ccpu:.2f} | {rss:.0f} |"
        )
    print(
        f"\nMachine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
