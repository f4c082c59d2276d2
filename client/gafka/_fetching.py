"""The consumer's fetcher: one long-poll loop per assigned partition, prefetching into a bounded buffer.

Each partition has at most one fetch in flight, to its leader, for raw RecordBatch v2 bytes; records land
in the partition's buffer and ``poll`` takes them from there. A partition whose buffer holds more than
``max_prefetch_bytes`` stops fetching until ``poll`` drains it, so a slow application bounds memory.
A seek or a revocation bumps the partition's state object, so an answer to an older fetch is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from gafka.errors import (
    BrokerUnreachableError,
    CorruptMessageError,
    GafkaError,
    NoOffsetForPartitionError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
    error_from_response,
)
from gafka.http import BATCH_MEDIA_TYPE, AsyncTransport, q
from gafka.metadata import ClusterMetadata, refresh_async
from gafka.protocol.record_batch import decode_batches
from gafka.records import ConsumerRecord, TopicPartition

if TYPE_CHECKING:
    import threading

__all__ = ["FetchSettings", "Fetcher", "PartitionState", "decode_records"]

log = logging.getLogger("gafka.consumer")


class FetchSettings:
    def __init__(
        self,
        *,
        min_bytes: int,
        max_wait_ms: int,
        max_partition_fetch_bytes: int,
        max_prefetch_bytes: int,
        request_timeout_ms: int,
        retry_backoff_ms: int,
    ) -> None:
        self.min_bytes = min_bytes
        self.max_wait_ms = max_wait_ms
        self.max_bytes = max_partition_fetch_bytes
        self.max_prefetch_bytes = max_prefetch_bytes
        self.request_timeout_s = request_timeout_ms / 1000
        self.retry_backoff_s = retry_backoff_ms / 1000


class PartitionState:
    """One assigned partition: where the application is, where fetching is, and what is buffered."""

    __slots__ = (
        "buffered",
        "chunks",
        "error",
        "fetch_offset",
        "high_watermark",
        "paused",
        "position",
        "sizes",
        "task",
        "tp",
        "wakeup",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None
        """Next offset ``poll`` returns (None until initialized from a commit or the reset policy)."""
        self.fetch_offset: int | None = None
        self.chunks: deque[list[ConsumerRecord]] = deque()
        self.sizes: deque[int] = deque()
        self.buffered = 0
        self.high_watermark = -1
        self.paused = False
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.wakeup: asyncio.Event | None = None

    def reset(self, offset: int) -> None:
        """Move to ``offset``: drop the buffer; a fetch in flight for the old offset is ignored."""
        self.position = offset
        self.fetch_offset = offset
        self.chunks.clear()
        self.sizes.clear()
        self.buffered = 0
        self.error = None

    def take(self, limit: int) -> list[ConsumerRecord]:
        """Up to ``limit`` buffered records from ``position`` on (caller holds the consumer's lock)."""
        out: list[ConsumerRecord] = []
        chunks = self.chunks
        while chunks and len(out) < limit:
            chunk = chunks[0]
            room = limit - len(out)
            if len(chunk) <= room:
                out.extend(chunk)
                chunks.popleft()
                self.buffered -= self.sizes.popleft()
            else:
                out.extend(chunk[:room])
                chunks[0] = chunk[room:]
        if out:
            self.position = out[-1].offset + 1
        return out

    def has_records(self) -> bool:
        return bool(self.chunks)


def decode_records(tp: TopicPartition, data: bytes, offset: int) -> list[ConsumerRecord]:
    """Records at or after ``offset`` from a raw fetch answer (a batch may begin before ``offset``)."""
    topic, partition = tp
    return [
        ConsumerRecord(topic, partition, record.offset, record.timestamp, record.key, record.value, record.headers)
        for record in decode_batches(data)
        if record.offset >= offset
    ]


def _valid_range(error: OffsetOutOfRangeError) -> str:
    """``valid offsets are 0..12`` from the broker's answer (it names both ends)."""
    start, end = error.extra.get("log_start_offset"), error.extra.get("high_watermark")
    return f"valid offsets are {start}..{end}" if start is not None and end is not None else error.message


class Fetcher:
    """Runs the per-partition fetch loops on one event loop."""

    def __init__(
        self,
        settings: FetchSettings,
        metadata: ClusterMetadata,
        transport: AsyncTransport,
        lock: threading.Lock,
        notify: Callable[[], None],
        reset_offset: Callable[[TopicPartition], asyncio.Future[int | None]],
    ) -> None:
        self.settings = settings
        self.metadata = metadata
        self.transport = transport
        self.lock = lock
        self.notify = notify
        self.reset_offset = reset_offset
        self.states: dict[TopicPartition, PartitionState] = {}
        self.closed = False

    # -- control (on the loop) -----------------------------------------------------------------------
    def start(self, state: PartitionState) -> None:
        """Begin fetching ``state`` (it is already in ``states``)."""
        if state.task is None:
            state.wakeup = asyncio.Event()
            state.task = asyncio.get_running_loop().create_task(self._run(state))

    def stop(self, state: PartitionState) -> None:
        if state.task is not None:
            state.task.cancel()
            state.task = None

    def poke(self, state: PartitionState) -> None:
        """Re-check a partition that was idle (resumed, drained below the prefetch limit, seeked)."""
        if state.wakeup is not None:
            state.wakeup.set()

    # -- the loop ------------------------------------------------------------------------------------
    def _idle(self, state: PartitionState) -> bool:
        return (
            state.paused
            or state.fetch_offset is None
            or state.error is not None
            or state.buffered >= self.settings.max_prefetch_bytes
        )

    async def _run(self, state: PartitionState) -> None:
        tp = state.tp
        settings = self.settings
        failures = 0
        wakeup = state.wakeup
        assert wakeup is not None
        while not self.closed and self.states.get(tp) is state:
            with self.lock:
                idle = self._idle(state)
                offset = state.fetch_offset
            if idle or offset is None:
                wakeup.clear()
                with self.lock:
                    idle = self._idle(state)
                if idle:
                    await wakeup.wait()
                continue
            try:
                response = await self.transport.request(
                    self.metadata.leader_url(tp.topic, tp.partition),
                    "GET",
                    f"/v1/topics/{q(tp.topic)}/partitions/{tp.partition}/records",
                    params={
                        "offset": offset,
                        "max_bytes": settings.max_bytes,
                        "min_bytes": settings.min_bytes,
                        "max_wait_ms": settings.max_wait_ms,
                    },
                    accept=BATCH_MEDIA_TYPE,
                    timeout=settings.max_wait_ms / 1000 + settings.request_timeout_s,
                )
                if response.status != 200:
                    raise error_from_response(response.status, response.body)
            except OffsetOutOfRangeError as exc:
                new_offset = await self.reset_offset(tp)
                with self.lock:
                    if self.states.get(tp) is state and state.fetch_offset == offset:
                        if new_offset is None:
                            state.error = NoOffsetForPartitionError(
                                f"offset {offset} of {tp.topic}-{tp.partition} is out of range "
                                f"({_valid_range(exc)}) and auto_offset_reset is none",
                                extra=exc.extra,
                            )
                            self.notify()
                        else:
                            state.reset(new_offset)
                continue
            except GafkaError as exc:
                failures += 1
                if isinstance(exc, (NotLeaderOrFollowerError, UnknownTopicOrPartitionError, BrokerUnreachableError)):
                    self.metadata.invalidate(tp.topic)
                    with contextlib.suppress(GafkaError):
                        await refresh_async(self.transport, self.metadata, tp.topic)
                if not exc.retriable or isinstance(exc, CorruptMessageError):
                    # CORRUPT_MESSAGE on a fetch: the stored batch at the offset it names is damaged and no
                    # replica has a good copy; retrying would stall silently, so poll() raises it
                    with self.lock:
                        if self.states.get(tp) is state and state.fetch_offset == offset:
                            state.error = exc
                            self.notify()
                    continue
                delay = min(settings.retry_backoff_s * 2 ** min(failures, 6), 2.0) * random.uniform(0.8, 1.2)
                log.debug("event=fetch_retry topic=%s partition=%d error=%r", tp.topic, tp.partition, str(exc))
                await asyncio.sleep(delay)
                continue
            failures = 0
            data = response.body
            records = decode_records(tp, data, offset) if data else []
            headers = response.headers
            next_raw = headers.get("gafka-next-offset")
            next_offset = int(next_raw) if next_raw else (records[-1].offset + 1 if records else offset)
            high_watermark = int(headers.get("gafka-high-watermark", "-1"))
            with self.lock:
                if self.states.get(tp) is not state or state.fetch_offset != offset:
                    continue  # seeked or revoked while the fetch was out
                state.high_watermark = high_watermark
                state.fetch_offset = max(next_offset, offset)
                if records:
                    state.chunks.append(records)
                    state.sizes.append(len(data))
                    state.buffered += len(data)
                    self.notify()
