"""A real ``gafka broker`` with its Kafka listener on a free loopback port, shared by a test module."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import BrokerProcess

_KAFKA_LISTENING = re.compile(r"event=kafka_listening listen=\S+ advertised=(\S+)")


def kafka_bootstrap(broker: BrokerProcess, timeout: float = 30.0) -> str:
    """The advertised Kafka address from the broker's log line."""
    deadline = time.monotonic() + timeout
    while True:
        match = _KAFKA_LISTENING.search(broker.log_text())
        if match:
            return match.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no Kafka listener:\n{broker.log_text()}")
        time.sleep(0.02)


def start_kafka_broker(root: Path, *args: str) -> BrokerProcess:
    broker = BrokerProcess(root / "data", root, ("--kafka-listen", "127.0.0.1:0", *args))
    broker.start()
    return broker


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker with auto-created topics (3 partitions) and the Kafka listener on."""
    broker = start_kafka_broker(
        tmp_path_factory.mktemp("kafka-broker"), "--auto-create-topics", "--default-partitions", "3"
    )
    yield broker
    with contextlib.suppress(Exception):
        broker.stop(timeout=20)
    broker.kill()


@pytest.fixture(scope="module")
def bootstrap(kafka_broker: BrokerProcess) -> str:
    return kafka_bootstrap(kafka_broker)
