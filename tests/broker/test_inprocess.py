"""Paths a real process cannot be pushed into from outside, exercised on the ASGI app in-process.

- ``BROKER_NOT_AVAILABLE`` while the logs are still being recovered (recovery of a test log is too quick
  to catch from outside);
- a partition whose append fails after the request was validated (a disk failure), which must give a
  207 with per-record errors, never a 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gafka_broker.app import build_broker, create_app
from gafka_broker.broker import Broker
from gafka_broker.config import BrokerConfig
from gafka_broker.log.errors import LogError
from gafka_broker.log.partition_log import AppendResult
from gafka_broker.partition import BrokerPartition


class FailingPartition(BrokerPartition):
    """A partition whose disk has gone away."""

    def append(
        self, data: bytes | bytearray | memoryview, *, now_ms: int | None = None, trusted: bool = False
    ) -> AppendResult:
        raise LogError("No space left on device")


@pytest.fixture
def broker(tmp_path: Path) -> Broker:
    return build_broker(BrokerConfig(data_dir=tmp_path), "http://gafka")


@asynccontextmanager
async def client(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://gafka") as http:
        yield http


async def start(broker: Broker) -> None:
    """What the lifespan does: the in-process controller, then joining the cluster (recovery included)."""
    assert broker.controller_service is not None
    await broker.controller_service.start()
    await broker.start()
    broker.ready = True


async def stop(broker: Broker) -> None:
    await broker.close()
    broker.log_manager.shutdown()
    assert broker.controller_service is not None
    await broker.controller_service.stop()


def test_not_ready_until_recovered(broker: Broker) -> None:
    async def scenario() -> None:
        async with client(broker) as http:
            assert (await http.get("/healthz")).status_code == 200
            for method, url in (
                ("GET", "/readyz"),
                ("GET", "/v1/topics"),
                ("POST", "/v1/topics/t/records"),
                ("GET", "/v1/topics/t/partitions/0/records?offset=0"),
            ):
                response = await http.request(method, url)
                assert response.status_code == 503, url
                assert response.json()["error_code"] == "BROKER_NOT_AVAILABLE"
            await start(broker)
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get("/v1/topics")).json() == {"topics": []}
        await stop(broker)

    asyncio.run(scenario())


async def ready(broker: Broker, partitions: int) -> None:
    await start(broker)
    await broker.create_topic("t", partitions, 1, None)


def break_partition(broker: Broker, index: int) -> None:
    healthy = broker.partition("t", index)
    broker.replica_manager.replicas[("t", index)] = FailingPartition(healthy.log, leader=0, replicas=(0,))


def test_partial_append_failure_is_207_with_per_record_errors(broker: Broker) -> None:
    async def scenario() -> None:
        await ready(broker, 2)
        healthy = broker.partition("t", 0)
        break_partition(broker, 1)
        records = [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}, {"value": "c", "partition": 0}]
        async with client(broker) as http:
            response = await http.post("/v1/topics/t/records", json={"records": records})
        assert response.status_code == 207
        offsets = response.json()["offsets"]
        assert [o.get("offset") for o in offsets] == [0, None, 1]
        assert offsets[1]["partition"] == 1
        assert offsets[1]["error_code"] == "KAFKA_STORAGE_ERROR"
        assert "No space left" in offsets[1]["message"]
        assert healthy.high_watermark == 2
        await stop(broker)

    asyncio.run(scenario())


def test_total_append_failure_is_an_error_status(broker: Broker) -> None:
    async def scenario() -> None:
        await ready(broker, 1)
        break_partition(broker, 0)
        async with client(broker) as http:
            response = await http.post("/v1/topics/t/records", json={"records": [{"value": "a"}, {"value": "b"}]})
            assert response.status_code == 500
            body = response.json()
            assert body["error_code"] == "KAFKA_STORAGE_ERROR"
            assert [o["error_code"] for o in body["offsets"]] == ["KAFKA_STORAGE_ERROR"] * 2
            batch = await http.post(
                "/v1/topics/t/partitions/0/batches",
                content=b"x" * 100,
                headers={"content-type": "application/octet-stream"},
            )
        assert batch.status_code == 500
        assert batch.json()["error_code"] == "KAFKA_STORAGE_ERROR"
        await stop(broker)

    asyncio.run(scenario())
