"""A broker for the group API tests: few offsets partitions (fast to create and replay) and quick retention."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import BrokerProcess

OFFSETS_PARTITIONS = 5


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    from conftest import BrokerProcess

    root = tmp_path_factory.mktemp("group-broker")
    broker = BrokerProcess(
        root / "data",
        root,
        ("--offsets-topic-num-partitions", str(OFFSETS_PARTITIONS), "--retention-check-interval-ms", "200"),
    )
    broker.start()
    yield broker
    broker.stop()
    broker.kill()


@pytest.fixture
def http(group_broker: BrokerProcess) -> Iterator[httpx.Client]:
    with group_broker.client() as client:
        yield client
