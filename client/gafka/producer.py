"""``Producer`` (blocking API, ``concurrent.futures`` results) and ``AsyncProducer`` (asyncio).

Both share one asyncio sender: it drains the accumulator into one binary request per partition (every
ready batch of that partition back to back, up to the broker's request limits), keeps at most one
request in flight per partition (so retries never reorder a partition) and up to
``max_in_flight_requests`` across partitions, and retries retriable failures with exponential backoff
until ``delivery_timeout_ms``. The blocking ``Producer`` runs that sender on a private loop thread.

``delivery_timeout_ms`` bounds everything a record goes through, as Kafka's KIP-91: a batch still queued
at its deadline fails (whatever its partition waits for), and a request or the metadata refresh after a
failure never waits past the deadline of the oldest batch it concerns, so every send resolves in time.

Idempotence: every batch carries a producer id, epoch and per-partition base sequence, kept across
retries, so once the broker deduplicates (the replication issue) a retry never duplicates. The id comes
from ``POST /v1/producers`` when the broker has it, else it is a random positive 63-bit number chosen here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import partial
from types import TracebackType
from typing import Any

from gafka._batching import ProducerBatch, RecordAccumulator, StickyPartitioner, resolve_sync
from gafka._loop import LoopThread
from gafka.errors import (
    BrokerUnreachableError,
    ClientClosedError,
    GafkaError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    error_from_response,
)
from gafka.http import BATCH_MEDIA_TYPE, AsyncTransport, SyncTransport, q
from gafka.metadata import ClusterMetadata, refresh_async, refresh_sync
from gafka.partitioner import partition_for_key
from gafka.protocol.compression import Compression
from gafka.records import RecordMetadata

_time = time.time

__all__ = ["AsyncProducer", "Producer", "ProducerConfig"]

log = logging.getLogger("gafka.producer")

Headers = Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]] | None
_STALE_LEADER = (NotLeaderOrFollowerError, UnknownTopicOrPartitionError, BrokerUnreachableError, RequestTimedOutError)
_ACKS = {"0": "0", "1": "1", "all": "all", "-1": "all"}
_MAX_EPOCH = 0x7FFF


@dataclass
class ProducerConfig:
    """Settings, named as Kafka's producer configs with ``_`` for ``.`` (``linger_ms`` = ``linger.ms``)."""

    acks: int | str = "all"
    linger_ms: float = 5
    batch_size: int = 16_384
    buffer_memory: int = 32 * 1024 * 1024
    max_block_ms: int = 60_000
    compression_type: str | int | Compression | None = "none"
    retries: int = 2_147_483_647
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1_000
    delivery_timeout_ms: int = 120_000
    request_timeout_ms: int = 30_000
    max_in_flight_requests: int = 5
    max_request_size: int = 8 * 1024 * 1024
    enable_idempotence: bool = True
    metadata_max_age_ms: int = 300_000
    partitioner: Callable[[bytes, int], int] | None = None
    """For keyed records: ``(key, partition_count) -> partition``; default Kafka's murmur2."""

    @classmethod
    def from_kwargs(cls, config: Mapping[str, Any]) -> ProducerConfig:
        known = {field.name for field in fields(cls)}
        normalized = {key.replace(".", "_"): value for key, value in config.items()}
        unknown = sorted(set(normalized) - known)
        if unknown:
            raise ValueError(f"unknown producer settings: {', '.join(unknown)}")
        settings = cls(**normalized)
        settings.acks = _ACKS.get(str(settings.acks).strip().lower(), "")
        if not settings.acks:
            raise ValueError(f"acks must be 0, 1 or all, got {config.get('acks')!r}")
        settings.compression_type = Compression.parse(settings.compression_type)
        if settings.batch_size <= 0 or settings.buffer_memory <= 0 or settings.max_in_flight_requests <= 0:
            raise ValueError("batch_size, buffer_memory and max_in_flight_requests must be positive")
        return settings

    @property
    def compression(self) -> Compression:
        return Compression.parse(self.compression_type)


def _as_bytes(data: bytes | str | None, what: str) -> bytes | None:
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes, str or None, got {type(data).__name__}")


def _headers(headers: Headers) -> list[tuple[str, bytes | None]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), _as_bytes(value, "a header value")) for name, value in items]


# -- the sender, shared by both producers ------------------------------------------------------------
class _Sender:
    """Drains the accumulator into HTTP requests; lives on one event loop."""

    def __init__(
        self,
        config: ProducerConfig,
        metadata: ClusterMetadata,
        transport: AsyncTransport,
        accumulator: RecordAccumulator,
        resolve: Callable[[ProducerBatch, int, int], None],
        fail: Callable[[ProducerBatch, BaseException], None],
        blocking: SyncTransport | None = None,
    ) -> None:
        self.config = config
        self.blocking = blocking
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        if blocking is not None:
            self.executor = concurrent.futures.ThreadPoolExecutor(
                config.max_in_flight_requests, thread_name_prefix="gafka-send"
            )
        self.metadata = metadata
        self.transport = transport
        self.acc = accumulator
        self.resolve = resolve
        self.fail = fail
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.event = asyncio.Event()
        self.wake_scheduled = False
        self.stopping = False
        self.in_flight: set[tuple[str, int]] = set()
        self.backoff: dict[tuple[str, int], float] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.idempotent = config.enable_idempotence
        self.producer_id = (random.getrandbits(63) or 1) if self.idempotent else -1
        self.producer_epoch = 0 if self.idempotent else -1
        self.sequences: dict[tuple[str, int], int] = {}
        self.epochs: dict[tuple[str, int], int] = {}
        """Partitions whose producer epoch was bumped past ``producer_epoch`` (see :meth:`_fail_sent`)."""
        self.params = {"acks": str(config.acks)}
        self.compression = config.compression
        self.delivery_s = config.delivery_timeout_ms / 1000
        self.request_s = config.request_timeout_ms / 1000
        self.next_expiry: float | None = None
        """When the oldest queued batch reaches ``delivery_timeout_ms`` (None: look again)."""

    def wake(self) -> None:
        """Thread-safe: make the sender look at the accumulator again."""
        if self.wake_scheduled:
            return
        self.wake_scheduled = True
        loop = self.loop
        if loop is None:
            return
        if threading.get_ident() == self.loop_thread:
            self.event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self.event.set)

    async def _init_producer_id(self) -> None:
        """Ask the cluster for a producer id (``POST /v1/producers``); keep the random one if it cannot give one."""
        try:
            answer = await self.transport.json(self.metadata.any_broker(), "POST", "/v1/producers", {}, timeout=5)
            self.producer_id = int(answer["producer_id"])
            self.producer_epoch = int(answer.get("producer_epoch", 0))
        except (GafkaError, KeyError, TypeError, ValueError) as exc:
            log.debug("event=producer_id_fallback error=%r", str(exc))

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.wake_scheduled = False
        if self.idempotent:
            await self._init_producer_id()
        config = self.config
        max_in_flight = config.max_in_flight_requests
        try:
            while True:
                max_bytes = min(config.max_request_size, self.metadata.limit("max_request_bytes", 8 * 1024 * 1024))
                max_records = self.metadata.limit("max_records_per_request", 10_000)
                now = time.monotonic()
                if self.next_expiry is None or now >= self.next_expiry:
                    expired, self.next_expiry = self.acc.expire(now, self.delivery_s)
                    if expired:
                        self._expire(expired)
                ready, wait = self.acc.ready(now, self.in_flight, self.backoff)
                for tp in ready:
                    if len(self.in_flight) >= max_in_flight:
                        break
                    batches = self.acc.drain(tp, max_bytes, max_records)
                    if batches:
                        self.in_flight.add(tp)
                        task = asyncio.get_running_loop().create_task(self._send(tp, batches))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                if self.stopping and not self.in_flight and not self.acc.has_data():
                    return
                if len(self.in_flight) >= max_in_flight:
                    wait = None
                if self.next_expiry is not None:
                    until = max(self.next_expiry - now, 0.0)
                    wait = until if wait is None else min(wait, until)
                if wait is None:
                    await self.event.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self.event.wait()
                self.event.clear()
                self.wake_scheduled = False
        finally:
            self.loop = None

    def _frame(self, tp: tuple[str, int], batch: ProducerBatch) -> bytes:
        if batch.framed is not None:
            return batch.framed
        sequence = -1
        if self.idempotent:
            sequence = self.sequences.get(tp, 0)
            self.sequences[tp] = (sequence + batch.count) & 0x7FFFFFFF
        epoch = self.epochs.get(tp, self.producer_epoch)
        return batch.frame(self.producer_id, epoch, sequence, self.compression)

    def _expire(self, batches: list[ProducerBatch]) -> None:
        """Fail queued batches that reached ``delivery_timeout_ms`` before they could be (re)sent."""
        for batch in batches:
            log.warning(
                "event=produce_expired topic=%s partition=%d records=%d attempts=%d",
                batch.topic,
                batch.partition,
                batch.count,
                batch.attempts,
            )
            sent = " (it was sent before; it may have been written)" if batch.attempts else ""
            error = RequestTimedOutError(
                f"records to {batch.topic}-{batch.partition} not delivered within delivery_timeout_ms="
                f"{self.config.delivery_timeout_ms}{sent}"
            )
            self._fail_sent((batch.topic, batch.partition), [batch], error)

    async def _send(self, tp: tuple[str, int], batches: list[ProducerBatch]) -> None:
        topic, partition = tp
        url = ""
        try:
            # the request may not outlive the oldest batch's delivery timeout (batches drain oldest first)
            timeout = min(self.request_s, batches[0].created + self.delivery_s - time.monotonic())
            if timeout <= 0:
                raise RequestTimedOutError("the delivery timeout passed before the records could be sent")
            parts = [self._frame(tp, batch) for batch in batches]
            for batch in batches:
                batch.attempts += 1
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            url = self.metadata.leader_url(topic, partition)
            path = f"/v1/topics/{q(topic)}/partitions/{partition}/batches"
            params = self.params
            if self.config.acks == "all":  # the broker's wait for the in-sync replicas ends in time too
                params = {**params, "timeout_ms": str(max(1, int(timeout * 1000)))}
            if self.blocking is not None:
                response = await asyncio.get_running_loop().run_in_executor(
                    self.executor,
                    partial(
                        self.blocking.request,
                        url,
                        "POST",
                        path,
                        params=params,
                        body=body,
                        content_type=BATCH_MEDIA_TYPE,
                        timeout=timeout,
                        blocking_send=True,
                    ),
                )
            else:
                response = await self.transport.request(
                    url, "POST", path, params=params, body=body, content_type=BATCH_MEDIA_TYPE, timeout=timeout
                )
            if response.status != 200:
                raise error_from_response(response.status, response.body)
            answer = response.json()
            base = int(answer["base_offset"])
            append_time = int(answer.get("log_append_time", -1))
            self.backoff.pop(tp, None)
            for batch in batches:
                self.resolve(batch, base, append_time)
                base += batch.count
                self.acc.release(batch)
        except GafkaError as exc:
            await self._failed(tp, batches, exc, url)
        except Exception as exc:  # a bug or an unexpected answer: fail the records, keep the sender alive
            log.exception("event=send_failed topic=%s partition=%d", topic, partition)
            self._fail_sent(tp, batches, UnknownServerError(f"unexpected error while sending: {exc!r}"))
        finally:
            self.in_flight.discard(tp)
            self.wake_scheduled = False
            self.event.set()

    async def _failed(self, tp: tuple[str, int], batches: list[ProducerBatch], error: GafkaError, url: str) -> None:
        topic, partition = tp
        first = batches[0]
        config = self.config
        deadline = first.created + self.delivery_s
        now = time.monotonic()
        retry = error.retriable and not self.stopping_hard and first.attempts <= config.retries and now < deadline
        stale = isinstance(error, _STALE_LEADER) and bool(url)  # (no url: it was never sent)
        if not retry:
            if error.retriable and now >= deadline:
                error = RequestTimedOutError(
                    f"records to {topic}-{partition} not delivered within delivery_timeout_ms="
                    f"{config.delivery_timeout_ms}; last error: {error}"
                )
            self._fail_sent(tp, batches, error)
        if stale:
            # the leader moved, or its broker is gone: ask again (the broker that just failed last, as it
            # may hang), never past the delivery timeout of records still waiting for this answer
            self.metadata.invalidate(topic)
            bound = min(self.request_s, deadline - now) if retry else self.request_s
            try:
                async with asyncio.timeout(bound):
                    await refresh_async(self.transport, self.metadata, topic, timeout=bound, last=url)
            except UnknownTopicOrPartitionError as gone:
                if retry:
                    self._fail_sent(tp, batches, gone)  # the topic no longer exists: retrying cannot help
                return
            except (GafkaError, TimeoutError):
                pass
        if not retry:
            return
        now = time.monotonic()
        delay = min(config.retry_backoff_ms * 2 ** (first.attempts - 1), config.retry_backoff_max_ms)
        delay = delay * random.uniform(0.8, 1.2) / 1000
        self.backoff[tp] = now + delay
        log.warning(
            "event=produce_retry topic=%s partition=%d attempt=%d error=%r",
            topic,
            partition,
            first.attempts,
            str(error),
        )
        self.acc.requeue(batches)
        self.next_expiry = None  # older than what the last look at the queues saw

    stopping_hard = False

    def _fail_all(self, batches: Iterable[ProducerBatch], error: BaseException) -> None:
        for batch in batches:
            self.fail(batch, error)
            self.acc.release(batch)

    def _fail_sent(self, tp: tuple[str, int], batches: list[ProducerBatch], error: BaseException) -> None:
        """Fail batches of ``tp``; when one of them had a sequence number, start a new producer epoch there.

        The broker expects the next sequence after the last batch it wrote; whether a failed batch was
        written is unknown (a timeout) or it was not (then every later sequence is a gap). Kafka's answer
        (KIP-360): bump the epoch and restart at sequence 0. Batches of ``tp`` that already carry a
        sequence of the old epoch (sent before, outcome unknown) fail with it: resending them in the new
        epoch could write them twice.
        """
        framed = [batch for batch in batches if batch.framed is not None]
        if framed:
            framed += self.acc.take_framed(tp)
        self._fail_all(dict.fromkeys([*batches, *framed]), error)
        if framed and self.idempotent:
            epoch = self.epochs.get(tp, self.producer_epoch)
            if epoch < _MAX_EPOCH:
                self.epochs[tp] = epoch + 1
                self.sequences[tp] = 0
                log.warning(
                    "event=producer_epoch_bumped topic=%s partition=%d producer_id=%d epoch=%d",
                    tp[0],
                    tp[1],
                    self.producer_id,
                    epoch + 1,
                )

    async def abort(self, error: BaseException) -> None:
        """Stop now: cancel requests in flight and fail every record not yet acknowledged."""
        self.stopping_hard = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self._fail_all(self.acc.abort_all(), error)
        for batch in list(self.acc.incomplete):
            self._fail_all([batch], error)


def _choose_partition(
    config: ProducerConfig,
    topic: str,
    key: bytes | None,
    partition: int | None,
    count: int,
) -> int | None:
    """The partition of a record, or None for a keyless record (the sticky partitioner decides)."""
    if partition is not None:
        if not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {partition} (it has {count})")
        return partition
    if key is None:
        return None
    if config.partitioner is not None:
        return config.partitioner(key, count)
    return partition_for_key(key, count)


# -- blocking producer -------------------------------------------------------------------------------
class Producer:
    """Sends records in batches; ``send`` returns a ``concurrent.futures.Future[RecordMetadata]``.

    ``bootstrap`` is a URL, a comma-separated list or a list of URLs; ``config`` are
    :class:`ProducerConfig` fields (Kafka's names with ``_``).
    """

    def __init__(self, bootstrap: str | Sequence[str] = "http://127.0.0.1:9092", **config: Any) -> None:
        self.config = ProducerConfig.from_kwargs(config)
        self._metadata = ClusterMetadata(bootstrap, max_age_ms=self.config.metadata_max_age_ms)
        self._http = SyncTransport(timeout=self.config.request_timeout_ms / 1000)
        self._sticky = StickyPartitioner()
        self._sticky_of = self._sticky.current
        self._counts: dict[str, tuple[int, float]] = {}
        self._closed = False
        self._acc = RecordAccumulator(
            batch_size=self.config.batch_size,
            linger_ms=self.config.linger_ms,
            buffer_memory=self.config.buffer_memory,
            max_block_ms=self.config.max_block_ms,
            wakeup=self._wake,
        )
        self._transport = AsyncTransport(timeout=self.config.request_timeout_ms / 1000)
        # produce requests go out from worker threads over blocking sockets (see SyncTransport.request)
        self._sender = _Sender(
            self.config, self._metadata, self._transport, self._acc, _resolve_sync, _fail_sync, blocking=self._http
        )
        self._loop = LoopThread("gafka-producer")
        self._run = self._loop.submit(self._sender.run())

    def _wake(self) -> None:
        self._sender.wake()

    def _partition_count(self, topic: str) -> int:
        info = self._metadata.topic(topic)
        if info is None:
            info = refresh_sync(self._http, self._metadata, topic)
            assert info is not None
        return len(info.partitions)

    def partitions_for(self, topic: str) -> list[int]:
        """The partition numbers of ``topic`` (raises UnknownTopicOrPartitionError)."""
        return list(range(self._partition_count(topic)))

    def send(
        self,
        topic: str,
        value: bytes | str | None = None,
        key: bytes | str | None = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> concurrent.futures.Future[RecordMetadata]:
        """Queue one record; the future resolves once the broker has it (or fails with a GafkaError)."""
        if self._closed:
            raise ClientClosedError("the producer is closed")
        # the hot path: a handful of operations per record, no helper calls in the common case
        now = _time()
        cached = self._counts.get(topic)
        if cached is None or now > cached[1]:
            count = self._partition_count(topic)
            self._counts[topic] = (count, now + self._metadata.max_age_s)
        else:
            count = cached[0]
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value")
        if key is not None and type(key) is not bytes:
            key = _as_bytes(key, "key")
        header_list = _headers(headers) if headers else None
        timestamp = int(now * 1000) if timestamp_ms is None else timestamp_ms
        append = self._acc.append
        if partition is None:
            if key is None:
                sticky = self._sticky_of.get(topic)
                if sticky is None or sticky >= count:
                    sticky = self._sticky.partition(topic, count)
                future = append(topic, sticky, None, value, header_list, timestamp, abort_on_new_batch=True)
                if future is None:
                    sticky = self._sticky.next(topic, count, sticky)
                    future = append(topic, sticky, None, value, header_list, timestamp)
                return future  # type: ignore[no-any-return]
            partitioner = self.config.partitioner
            partition = partitioner(key, count) if partitioner else partition_for_key(key, count)
        elif not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {partition} (it has {count})")
        return append(topic, partition, key, value, header_list, timestamp)  # type: ignore[no-any-return]

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued so far and wait until each record is acknowledged or failed."""
        acc = self._acc
        with acc.lock:
            acc.flushing += 1
            pending = list(acc.incomplete)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sender.wake_scheduled = False
            self._wake()
            for batch in pending:
                condition = batch.condition
                assert condition is not None
                with condition:
                    while batch.state != "FINISHED":
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise RequestTimedOutError(f"records not acknowledged within {timeout}s")
                        condition.wait(remaining)
        finally:
            with acc.lock:
                acc.flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting up to ``timeout``; None = until delivered or timed out), then stop."""
        if self._closed:
            return
        self._closed = True
        with self._acc.lock:
            self._acc.closing = True
        self._sender.stopping = True
        self._sender.wake_scheduled = False
        self._wake()
        try:
            self._run.result(timeout)
        except concurrent.futures.TimeoutError:
            self._loop.run(self._sender.abort(ClientClosedError("the producer was closed before delivery")))
        except Exception:
            log.exception("event=sender_crashed")
        with contextlib.suppress(Exception):
            self._loop.run(self._transport.close(), 5)
        self._loop.stop()
        if self._sender.executor is not None:
            self._sender.executor.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _resolve_sync(batch: ProducerBatch, base_offset: int, append_time: int) -> None:
    resolve_sync(batch, base_offset, append_time, None)


def _fail_sync(batch: ProducerBatch, error: BaseException) -> None:
    resolve_sync(batch, -1, -1, error)


def _resolve_async(batch: ProducerBatch, base_offset: int, append_time: int) -> None:
    topic = batch.topic
    partition = batch.partition
    timestamps = batch.timestamps
    for index, future in enumerate(batch.futures):
        if not future.done():
            timestamp = append_time if append_time >= 0 else timestamps[index]
            future.set_result(RecordMetadata(topic, partition, base_offset + index, timestamp))
    batch.state = "FINISHED"


def _fail_async(batch: ProducerBatch, error: BaseException) -> None:
    for future in batch.futures:
        if not future.done():
            future.set_exception(error)
    batch.state = "FINISHED"


def _chain(outer: asyncio.Future[RecordMetadata], inner: asyncio.Future[RecordMetadata]) -> None:
    if outer.done():
        return
    error = inner.exception()
    if error is not None:
        outer.set_exception(error)
    else:
        outer.set_result(inner.result())


# -- asyncio producer --------------------------------------------------------------------------------
class AsyncProducer:
    """The asyncio producer: ``send`` returns an ``asyncio.Future[RecordMetadata]`` at once.

    An event loop cannot block, so when ``buffer_memory`` is full ``send`` raises BufferFullError;
    ``send_and_wait`` instead waits (up to ``max_block_ms``) for room and then for the acknowledgement.
    """

    def __init__(self, bootstrap: str | Sequence[str] = "http://127.0.0.1:9092", **config: Any) -> None:
        self.config = ProducerConfig.from_kwargs(config)
        self._metadata = ClusterMetadata(bootstrap, max_age_ms=self.config.metadata_max_age_ms)
        self._transport = AsyncTransport(timeout=self.config.request_timeout_ms / 1000)
        self._sticky = StickyPartitioner()
        self._acc = RecordAccumulator(
            batch_size=self.config.batch_size,
            linger_ms=self.config.linger_ms,
            buffer_memory=self.config.buffer_memory,
            max_block_ms=0,
            wakeup=self._wake,
            future_factory=self._new_future,
        )
        self._sender = _Sender(self.config, self._metadata, self._transport, self._acc, _resolve_async, _fail_async)
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, list[tuple[tuple[Any, ...], asyncio.Future[RecordMetadata]]]] = {}
        self._closed = False
        self._lookups: set[asyncio.Task[None]] = set()

    def _wake(self) -> None:
        self._sender.wake()

    async def _metadata_lookups(self) -> None:
        """Wait for records queued behind a metadata lookup to reach the accumulator."""
        while self._lookups:
            await asyncio.gather(*self._lookups, return_exceptions=True)

    @staticmethod
    def _new_future() -> asyncio.Future[RecordMetadata]:
        return asyncio.get_running_loop().create_future()

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sender.run())

    async def start(self) -> None:
        """Start the sender and learn the cluster (optional: the first ``send`` starts it too)."""
        self._ensure_started()
        await refresh_async(self._transport, self._metadata)

    def send(
        self,
        topic: str,
        value: bytes | str | None = None,
        key: bytes | str | None = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        if self._closed:
            raise ClientClosedError("the producer is closed")
        self._ensure_started()
        args = (
            topic,
            _as_bytes(key, "key"),
            _as_bytes(value, "value"),
            _headers(headers),
            partition,
            int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        )
        info = self._metadata.topic(topic)
        if info is None or topic in self._pending:
            # metadata first; records queue here in order, so a later send cannot overtake them
            future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
            waiting = self._pending.get(topic)
            if waiting is None:
                self._pending[topic] = [(args, future)]
                task = asyncio.get_running_loop().create_task(self._resolve_topic(topic))
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
            else:
                waiting.append((args, future))
            return future
        return self._append(args, len(info.partitions))

    async def _resolve_topic(self, topic: str) -> None:
        error: BaseException | None = None
        count = 0
        try:
            info = await refresh_async(self._transport, self._metadata, topic)
            assert info is not None
            count = len(info.partitions)
        except GafkaError as exc:
            error = exc
        for args, future in self._pending.pop(topic, []):
            if error is not None:
                future.set_exception(error)
                continue
            try:
                inner = self._append(args, count)
            except GafkaError as exc:
                future.set_exception(exc)
                continue
            inner.add_done_callback(partial(_chain, future))

    def _append(self, args: tuple[Any, ...], count: int) -> asyncio.Future[RecordMetadata]:
        topic, key, value, headers, partition, timestamp = args
        chosen = _choose_partition(self.config, topic, key, partition, count)
        acc = self._acc
        if chosen is None:
            sticky = self._sticky.partition(topic, count)
            future = acc.append(topic, sticky, None, value, headers, timestamp, abort_on_new_batch=True)
            if future is None:
                sticky = self._sticky.next(topic, count, sticky)
                future = acc.append(topic, sticky, None, value, headers, timestamp)
            return future  # type: ignore[no-any-return]
        return acc.append(topic, chosen, key, value, headers, timestamp)  # type: ignore[no-any-return]

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | str | None = None,
        key: bytes | str | None = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Send one record, waiting for buffer room (up to ``max_block_ms``) and then for its acknowledgement."""
        from gafka.errors import BufferFullError

        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while True:
            try:
                future = self.send(topic, value, key, headers, partition, timestamp_ms)
                break
            except BufferFullError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.002)
        return await future

    async def flush(self) -> None:
        """Send everything queued and wait for the acknowledgements."""
        await self._metadata_lookups()
        acc = self._acc
        with acc.lock:
            acc.flushing += 1
            pending = [batch.futures[0] for batch in acc.incomplete if batch.futures]
        try:
            self._sender.wake_scheduled = False
            self._wake()
            if pending:
                await asyncio.wait(pending)
        finally:
            with acc.lock:
                acc.flushing -= 1

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - Kafka's close(timeout)
        if self._closed:
            return
        self._closed = True
        await self._metadata_lookups()
        with self._acc.lock:
            self._acc.closing = True
        self._sender.stopping = True
        self._sender.wake_scheduled = False
        self._wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                await self._sender.abort(ClientClosedError("the producer was closed before delivery"))
                self._task.cancel()
        await self._transport.close()

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
