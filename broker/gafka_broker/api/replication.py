"""Replication endpoints: the follower fetch, per-leader offsets, and producer ids.

- ``POST /v1/replication/fetch``: followers pull from leaders (see :mod:`gafka_broker.replication.protocol`);
- ``GET /v1/replication/offsets/{topic}``: offsets of the partitions of ``topic`` this broker leads, what
  ``GET /v1/topics/{topic}`` on another broker asks for;
- ``POST /v1/producers``: a new idempotent producer id (epoch 0), unique across the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["ReplicationHandlers"]


class ReplicationHandlers:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def fetch(self, request: Request) -> Response:
        """``POST /v1/replication/fetch``."""
        self.broker.check_ready()
        return await self.broker.leader_fetch.fetch(request)

    async def offsets(self, request: Request) -> Response:
        """``GET /v1/replication/offsets/{topic}``: ``{"partitions": [{partition, leader_epoch, offsets}]}``."""
        self.broker.check_ready()
        topic = request.path_params["topic"]
        return json_response(
            {
                "partitions": [
                    {
                        "partition": partition.partition,
                        "leader_epoch": partition.leader_epoch,
                        "log_start_offset": partition.log_start_offset,
                        "high_watermark": partition.visible_high_watermark,
                        "log_end_offset": partition.log_end_offset,
                        "size_bytes": partition.log.size_bytes,
                    }
                    for partition in self.broker.replica_manager.leaders()
                    if partition.topic == topic
                ]
            }
        )

    async def producer_id(self, _request: Request) -> Response:
        """``POST /v1/producers`` -> ``{"producer_id": n, "producer_epoch": 0}``."""
        self.broker.check_ready()
        producer_id = await self.broker.producer_ids.allocate()
        return json_response({"producer_id": producer_id, "producer_epoch": 0}, status=201)
