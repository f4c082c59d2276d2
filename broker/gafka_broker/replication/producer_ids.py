"""Producer ids for idempotent producers: unique across the cluster, taken from the controller in blocks.

Like Kafka's ``AllocateProducerIds``: the controller hands each broker a block of 1000 ids and records the
next free id durably before answering, so no id is ever given out twice, even across restarts of either
side (a restarted broker simply takes a new block; the rest of the old one is skipped).
"""

from __future__ import annotations

import asyncio

from gafka_broker.controller.client import ControllerClient

__all__ = ["BLOCK_SIZE", "ProducerIdAllocator"]

BLOCK_SIZE = 1000


class ProducerIdAllocator:
    def __init__(self, controller: ControllerClient, block_size: int = BLOCK_SIZE) -> None:
        self._controller = controller
        self._block_size = block_size
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def allocate(self) -> int:
        """A producer id nobody else has; the producer starts at epoch 0, sequence 0."""
        async with self._lock:
            if self._next >= self._end:
                first = await self._controller.allocate_producer_ids(self._block_size)
                self._next, self._end = first, first + self._block_size
            producer_id = self._next
            self._next += 1
            return producer_id
