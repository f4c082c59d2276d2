"""The controller's HTTP service on a real loopback port, driven through RemoteControllerClient."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from gafka_broker.controller.client import RemoteControllerClient
from gafka_broker.controller.controller import Controller, ControllerSettings
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.service import ControllerService, create_app
from gafka_broker.controller.store import FileMetadataStore


@pytest.fixture
def controller_url(tmp_path: Path) -> Iterator[str]:
    controller = Controller(
        FileMetadataStore(tmp_path / "cluster.json"), ControllerSettings(broker_session_timeout_ms=600), "test-cluster"
    )
    service = ControllerService(controller, tick_ms=50)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the kernel's port, handed to the server already bound: nothing can take it
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "controller did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_register_create_watch_and_fence(controller_url: str) -> None:
    async def scenario() -> None:
        client = RemoteControllerClient(controller_url)
        for broker_id in range(3):
            await client.register(broker_id, f"http://127.0.0.1:{9000 + broker_id}", None, f"i{broker_id}")
        metadata = await client.create_topic("orders", 2, 3, {"min.insync.replicas": "2"})
        state = metadata.partition("orders", 0)
        assert state is not None and set(state.isr) == {0, 1, 2}

        # a watcher parked on the current version wakes as soon as something changes
        parked = asyncio.create_task(client.watch(metadata.version, 5000))
        await asyncio.sleep(0.1)
        assert not parked.done()
        started = time.monotonic()
        await client.alter_topic("orders", partitions=3)
        woken = await parked
        assert woken is not None and len(woken.topics["orders"].partitions) == 3
        assert time.monotonic() - started < 1.0
        assert await client.watch(woken.version, 100) is None  # nothing newer: 204 after the wait

        # only brokers 1 and 2 keep heartbeating: broker 0 is fenced and loses its leaderships
        leader = woken.partition("orders", 0)
        assert leader is not None
        for _ in range(15):
            for broker_id in (1, 2):
                await client.heartbeat(broker_id, f"i{broker_id}")
            await asyncio.sleep(0.1)
        after = await client.watch(-1, 0)
        assert after is not None and after.brokers[0].fenced
        assert all(s.leader != 0 and 0 not in s.isr for s in after.topics["orders"].partitions)

        with pytest.raises(ControllerError) as error:
            await client.heartbeat(7, "nobody")
        assert error.value.code == "UNKNOWN_BROKER"
        state = after.partition("orders", 1)
        assert state is not None
        with pytest.raises(ControllerError) as error:
            await client.alter_partition(
                "orders",
                1,
                leader=state.leader,
                leader_epoch=state.leader_epoch - 1,
                partition_epoch=state.partition_epoch,
                isr=list(state.isr),
            )
        assert error.value.code == "FENCED_LEADER_EPOCH"
        with pytest.raises(ControllerError) as error:
            await client.create_topic("orders", 1, 1, {})
        assert error.value.code == "TOPIC_ALREADY_EXISTS"
        first = await client.allocate_producer_ids(1000)
        assert await client.allocate_producer_ids(5) == first + 1000
        await client.close()

    asyncio.run(scenario())


def test_stopping_the_service_releases_parked_metadata_polls(tmp_path: Path) -> None:
    """A parked long poll returns "nothing newer" the moment the controller stops, instead of holding the HTTP
    server's graceful shutdown until it cancels the request (the operator unloads controllers this way)."""

    async def scenario() -> None:
        controller = Controller(FileMetadataStore(tmp_path / "cluster.json"), ControllerSettings(), "test-cluster")
        service = ControllerService(controller, tick_ms=50)
        await service.start()
        assert service.watch.latest is not None
        parked = asyncio.create_task(service.watch.wait_newer(service.watch.latest.version, 30))
        await asyncio.sleep(0.1)
        assert not parked.done()
        await service.stop()
        assert await asyncio.wait_for(parked, 1) is None
        # and a poll arriving after the stop does not park at all
        assert await asyncio.wait_for(service.watch.wait_newer(service.watch.latest.version, 30), 1) is None

    asyncio.run(scenario())
