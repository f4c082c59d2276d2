"""Group commit: one fsync covers every append that is waiting for it.

With ``flush.messages=1`` an append is acknowledged only once it is on disk. Appends keep running on the
event loop while a worker thread fsyncs; everyone who appended before an fsync started is covered by it,
and everyone who arrived during it shares the next one. So fsyncs per second stay bounded by disk
latency, not by request rate (Kafka's ``flush.messages=1``, done the way databases do it).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from gafka_broker.log.partition_log import PartitionLog


class GroupCommitter:
    """Runs fsyncs on a small thread pool, at most one at a time per log."""

    def __init__(self, max_workers: int = 4) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gafka-fsync")
        self._running: dict[int, asyncio.Future[None]] = {}

    async def after_append(self, log: PartitionLog) -> None:
        """Wait for durability when the topic's ``flush.messages`` asks for it; otherwise return at once."""
        if log.unflushed_messages >= log.config.flush_messages:
            await self.sync(log)

    async def sync(self, log: PartitionLog) -> None:
        """Return once everything appended to ``log`` before this call is fsynced."""
        target = log.log_end_offset
        key = id(log)
        loop = asyncio.get_running_loop()
        while log.recovery_point < target:
            running = self._running.get(key)
            if running is None or running.done():
                running = loop.run_in_executor(self._executor, log.flush)
                self._running[key] = running
                running.add_done_callback(functools.partial(self._forget, key))
            await asyncio.shield(running)

    def _forget(self, key: int, done: asyncio.Future[None]) -> None:
        if self._running.get(key) is done:
            del self._running[key]

    async def close(self) -> None:
        pending = [future for future in self._running.values() if not future.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._executor.shutdown(wait=True)
