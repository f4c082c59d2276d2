"""How a broker talks to the controller: in process when it is its own controller, over HTTP otherwise.

Both implementations answer with :class:`ClusterMetadata` and raise :class:`ControllerError` with the
controller's error code, so the broker's code is the same for a one-node cluster and for ``gafka dev``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import httpx

from gafka_broker.controller.controller import Controller
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import ClusterMetadata
from gafka_broker.controller.service import MetadataWatch


def _now_ms() -> int:
    return int(time.time() * 1000)


class ControllerClient(Protocol):
    async def register(
        self, broker_id: int, url: str, rack: str | None, incarnation: str, kafka_address: str | None = None
    ) -> ClusterMetadata: ...

    async def heartbeat(self, broker_id: int, incarnation: str, caught_up: Iterable[tuple[str, int]] = ()) -> int:
        """Returns the metadata version the controller is at; ``caught_up``: partitions followed fully caught up."""
        ...

    async def replica_damaged(self, broker_id: int, topic: str, partition: int) -> ClusterMetadata:
        """This broker found its replica of ``topic``-``partition`` damaged on disk."""
        ...

    async def watch(self, since: int, max_wait_ms: int) -> ClusterMetadata | None:
        """Metadata newer than ``since``, or None when nothing changed within ``max_wait_ms``."""
        ...

    async def controlled_shutdown(self, broker_id: int) -> ClusterMetadata: ...

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> ClusterMetadata: ...

    async def alter_topic(
        self, name: str, *, partitions: int | None = None, configs: Mapping[str, str] | None = None
    ) -> ClusterMetadata: ...

    async def delete_topic(self, name: str) -> ClusterMetadata: ...

    async def alter_partition(
        self, topic: str, partition: int, *, leader: int, leader_epoch: int, partition_epoch: int, isr: Iterable[int]
    ) -> tuple[tuple[int, ...], int]:
        """Returns the ISR and partition epoch now stored."""
        ...

    async def allocate_producer_ids(self, count: int) -> int:
        """Reserve ``count`` cluster-unique producer ids; returns the first."""
        ...

    async def close(self) -> None: ...


class LocalControllerClient:
    """The broker is its own controller: calls go straight to the :class:`Controller` (in a thread,
    since stores write files)."""

    def __init__(self, controller: Controller, watch: MetadataWatch) -> None:
        self.controller = controller
        self._watch = watch

    async def register(
        self, broker_id: int, url: str, rack: str | None, incarnation: str, kafka_address: str | None = None
    ) -> ClusterMetadata:
        return await asyncio.to_thread(
            self.controller.register_broker, broker_id, url, rack, incarnation, _now_ms(), kafka_address
        )

    async def heartbeat(self, broker_id: int, incarnation: str, caught_up: Iterable[tuple[str, int]] = ()) -> int:
        reported = tuple(caught_up)
        metadata = await asyncio.to_thread(self.controller.heartbeat, broker_id, incarnation, _now_ms(), reported)
        return metadata.version

    async def replica_damaged(self, broker_id: int, topic: str, partition: int) -> ClusterMetadata:
        return await asyncio.to_thread(self.controller.replica_damaged, broker_id, topic, partition)

    async def watch(self, since: int, max_wait_ms: int) -> ClusterMetadata | None:
        return await self._watch.wait_newer(since, max_wait_ms / 1000)

    async def controlled_shutdown(self, broker_id: int) -> ClusterMetadata:
        return await asyncio.to_thread(self.controller.controlled_shutdown, broker_id)

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> ClusterMetadata:
        return await asyncio.to_thread(self.controller.create_topic, name, partitions, replication_factor, configs)

    async def alter_topic(
        self, name: str, *, partitions: int | None = None, configs: Mapping[str, str] | None = None
    ) -> ClusterMetadata:
        metadata: ClusterMetadata | None = None
        if partitions is not None:
            metadata = await asyncio.to_thread(self.controller.add_partitions, name, partitions)
        if configs is not None:
            metadata = await asyncio.to_thread(self.controller.alter_configs, name, configs)
        return metadata if metadata is not None else await asyncio.to_thread(self.controller.metadata)

    async def delete_topic(self, name: str) -> ClusterMetadata:
        return await asyncio.to_thread(self.controller.delete_topic, name)

    async def alter_partition(
        self, topic: str, partition: int, *, leader: int, leader_epoch: int, partition_epoch: int, isr: Iterable[int]
    ) -> tuple[tuple[int, ...], int]:
        wanted = tuple(isr)
        metadata = await asyncio.to_thread(
            lambda: self.controller.alter_partition(
                topic, partition, leader=leader, leader_epoch=leader_epoch, partition_epoch=partition_epoch, isr=wanted
            )
        )
        state = metadata.partition(topic, partition)
        assert state is not None
        return state.isr, state.partition_epoch

    async def allocate_producer_ids(self, count: int) -> int:
        return await asyncio.to_thread(self.controller.allocate_producer_ids, count)

    async def close(self) -> None:
        return None


class RemoteControllerClient:
    """The controller runs elsewhere (``gafka dev``'s supervisor, the Kubernetes operator)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, http: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    async def _call(self, method: str, path: str, body: Any = None, timeout_s: float | None = None) -> Any:
        response = await self._http.request(
            method, self.url + path, json=body, timeout=timeout_s if timeout_s is not None else self.timeout_s
        )
        if response.status_code == 204:
            return None
        data = response.json()
        if response.status_code >= 400:
            raise ControllerError(data.get("error_code", "UNKNOWN_SERVER_ERROR"), data.get("message", response.text))
        return data

    @staticmethod
    def _metadata(data: Mapping[str, Any]) -> ClusterMetadata:
        return ClusterMetadata.from_json(data, version=int(data["version"]))

    async def register(
        self, broker_id: int, url: str, rack: str | None, incarnation: str, kafka_address: str | None = None
    ) -> ClusterMetadata:
        data = await self._call(
            "POST",
            f"/v1/controller/brokers/{broker_id}/register",
            {"url": url, "rack": rack, "incarnation": incarnation, "kafka_address": kafka_address},
        )
        return self._metadata(data)

    async def heartbeat(self, broker_id: int, incarnation: str, caught_up: Iterable[tuple[str, int]] = ()) -> int:
        body: dict[str, Any] = {"incarnation": incarnation}
        reported = [[topic, partition] for topic, partition in caught_up]
        if reported:
            body["caught_up"] = reported
        data = await self._call("POST", f"/v1/controller/brokers/{broker_id}/heartbeat", body)
        return int(data["version"])

    async def replica_damaged(self, broker_id: int, topic: str, partition: int) -> ClusterMetadata:
        body = {"topic": topic, "partition": partition}
        return self._metadata(await self._call("POST", f"/v1/controller/brokers/{broker_id}/damaged", body))

    async def watch(self, since: int, max_wait_ms: int) -> ClusterMetadata | None:
        data = await self._call(
            "GET",
            f"/v1/controller/metadata?since={since}&max_wait_ms={max_wait_ms}",
            timeout_s=max_wait_ms / 1000 + 5,
        )
        return None if data is None else self._metadata(data)

    async def controlled_shutdown(self, broker_id: int) -> ClusterMetadata:
        return self._metadata(await self._call("POST", f"/v1/controller/brokers/{broker_id}/shutdown"))

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> ClusterMetadata:
        body = {"name": name, "partitions": partitions, "replication_factor": replication_factor, "configs": configs}
        return self._metadata(await self._call("POST", "/v1/controller/topics", body))

    async def alter_topic(
        self, name: str, *, partitions: int | None = None, configs: Mapping[str, str] | None = None
    ) -> ClusterMetadata:
        body: dict[str, Any] = {}
        if partitions is not None:
            body["partitions"] = partitions
        if configs is not None:
            body["configs"] = dict(configs)
        return self._metadata(await self._call("PATCH", f"/v1/controller/topics/{name}", body))

    async def delete_topic(self, name: str) -> ClusterMetadata:
        return self._metadata(await self._call("DELETE", f"/v1/controller/topics/{name}"))

    async def alter_partition(
        self, topic: str, partition: int, *, leader: int, leader_epoch: int, partition_epoch: int, isr: Iterable[int]
    ) -> tuple[tuple[int, ...], int]:
        data = await self._call(
            "POST",
            "/v1/controller/alter-partition",
            {
                "topic": topic,
                "partition": partition,
                "leader": leader,
                "leader_epoch": leader_epoch,
                "partition_epoch": partition_epoch,
                "isr": list(isr),
            },
        )
        return tuple(data["isr"]), int(data["partition_epoch"])

    async def allocate_producer_ids(self, count: int) -> int:
        data = await self._call("POST", "/v1/controller/producer-ids", {"count": count})
        return int(data["first"])

    async def close(self) -> None:
        if self._owns_http:  # a shared client (the broker's PeerClient) is closed by its owner
            await self._http.aclose()
