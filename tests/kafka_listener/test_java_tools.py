"""Apache Kafka's own command-line tools (from the jars scripts/kafka-tools caches) against the listener."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.conftest import unique_topic
from tests.interop.kafka_tools import JVM_OPTIONS, kafka_libs

__all__ = ["kafka_libs"]

pytestmark = pytest.mark.kafka_tools

TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def _run(libs: Path, main: str, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        ["java", *JVM_OPTIONS, "-cp", f"{libs}/*", main, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{main} {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_kafka_topics_console_clients_and_consumer_groups(kafka_libs: Path, bootstrap: str) -> None:
    topic = unique_topic("java")
    server = ("--bootstrap-server", bootstrap)
    _run(
        kafka_libs,
        TOPICS,
        *server,
        "--create",
        "--topic",
        topic,
        "--partitions",
        "2",
        "--config",
        "retention.ms=86400000",
    )
    described = _run(kafka_libs, TOPICS, *server, "--describe", "--topic", topic)
    assert "PartitionCount: 2" in described and "retention.ms=86400000" in described, described
    _run(kafka_libs, TOPICS, *server, "--alter", "--topic", topic, "--partitions", "3")
    assert "PartitionCount: 3" in _run(kafka_libs, TOPICS, *server, "--describe", "--topic", topic)
    assert topic in _run(kafka_libs, TOPICS, *server, "--list").split()

    lines = [f"key-{i}:value-{i}" for i in range(12)]
    _run(
        kafka_libs,
        PRODUCER,
        *server,
        "--topic",
        topic,
        "--reader-property",
        "parse.key=true",
        "--reader-property",
        "key.separator=:",
        stdin="\n".join(lines) + "\n",
    )
    group = unique_topic("java-group")
    consumed = _run(
        kafka_libs,
        CONSUMER,
        *server,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        "12",
        "--formatter-property",
        "print.key=true",
        "--formatter-property",
        "key.separator=:",
    )
    assert sorted(consumed.split()) == sorted(lines)

    assert group in _run(kafka_libs, GROUPS, *server, "--list").split()
    described = _run(kafka_libs, GROUPS, *server, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert len(rows) == 3, described  # one row per partition
    header = next(line.split() for line in described.splitlines() if "LAG" in line)
    lag = header.index("LAG")
    assert sum(int(row[lag]) for row in rows) == 0, described
    reset = _run(
        kafka_libs, GROUPS, *server, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute"
    )
    assert "NEW-OFFSET" in reset
    described = _run(kafka_libs, GROUPS, *server, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert sum(int(row[lag]) for row in rows) == 12, described

    _run(kafka_libs, TOPICS, *server, "--delete", "--topic", topic)
    assert topic not in _run(kafka_libs, TOPICS, *server, "--list").split()
