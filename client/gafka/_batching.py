"""The producer's record accumulator: per-partition batches, linger, bounded memory, sticky partitioning.

Pure logic, no I/O. ``send()`` encodes each record straight into its partition's open batch (a
``bytearray``) with a handful of Python operations, so a batch is ready to frame the moment the sender
drains it; the sender frames (header, compression, CRC-32C) outside the lock. The layout is Kafka's
RecordBatch v2, so the bytes are exactly what ``gafka.protocol.record_batch.encode_batch`` would produce.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import crc32c

from gafka.errors import BufferFullError, MessageTooLargeError
from gafka.protocol.compression import Compression, compress
from gafka.records import RecordMetadata

__all__ = [
    "MAX_BATCHES_PER_REQUEST",
    "ProducerBatch",
    "RecordAccumulator",
    "RecordFuture",
    "StickyPartitioner",
    "frame_batch",
    "resolve_sync",
    "varint",
]

_TABLE_SIZE = 1 << 14
_VARINTS: list[bytes] = []
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC = struct.Struct(">I")
_BATCH_OVERHEAD = 61
_RECORD_OVERHEAD = 24
"""Upper bound of the per-record bytes besides key, value and headers (length, attributes, deltas, lengths)."""
MAX_BATCHES_PER_REQUEST = 5
"""Batches of one partition in one produce request: the broker's duplicate window (see ``drain``)."""
_HEADERLESS = b"\x00"
_NULL = b"\x01"


def _build_table() -> None:
    if not _VARINTS:
        _VARINTS.extend(_slow_varint(n) for n in range(_TABLE_SIZE))


def _slow_varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def varint(value: int) -> bytes:
    """Zig-zag varint of ``value``; a table lookup for the small non-negative values records are made of."""
    if 0 <= value < _TABLE_SIZE:
        return _VARINTS[value]
    return _slow_varint(value)


def _headers_bytes(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    out = bytearray(varint(len(headers)))
    for name, value in headers:
        encoded = name.encode()
        out += varint(len(encoded))
        out += encoded
        if value is None:
            out += _NULL
        else:
            out += varint(len(value))
            out += value
    return bytes(out)


# -- futures ---------------------------------------------------------------------------------------
_PENDING = "PENDING"
_FINISHED = "FINISHED"


class RecordFuture(Future[RecordMetadata]):
    """A ``concurrent.futures.Future`` whose state lives in its batch: two attribute writes to create.

    A plain ``Future()`` allocates a Condition and two lists per send and needs a ``set_result`` call
    (lock, notify, callbacks) per record. Here the batch holds the Condition, the state and the offsets,
    so a whole batch resolves with one assignment and one ``notify_all``; the RecordMetadata is built
    when ``result()`` asks for it. The standard API (``result``, ``exception``, ``add_done_callback``,
    ``concurrent.futures.wait``/``as_completed``) works unchanged; sends are not cancellable.
    """

    def __init__(self, batch: ProducerBatch, index: int) -> None:  # no super().__init__(): that is the cost
        self._batch = batch
        self._index = index

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        condition = self._batch.condition
        assert condition is not None
        return condition

    @property
    def _state(self) -> str:  # type: ignore[override]
        return self._batch.state

    @property
    def _result(self) -> RecordMetadata | None:  # type: ignore[override]
        batch = self._batch
        if batch.state != _FINISHED or batch.error is not None:
            return None
        index = self._index
        timestamp = batch.append_time if batch.append_time >= 0 else batch.timestamps[index]
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + index, timestamp)

    @property
    def _exception(self) -> BaseException | None:  # type: ignore[override]
        return self._batch.error

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        waiters: list[Any] | None = self.__dict__.get("_w")
        if waiters is None:
            waiters = self.__dict__["_w"] = []
            self._batch.watched.append(self)
        return waiters

    @property
    def _done_callbacks(self) -> list[Callable[[Future[RecordMetadata]], object]]:
        callbacks: list[Callable[[Future[RecordMetadata]], object]] | None = self.__dict__.get("_cb")
        if callbacks is None:
            callbacks = self.__dict__["_cb"] = []
            self._batch.watched.append(self)
        return callbacks

    def cancel(self) -> bool:
        return False

    def _notify(self) -> None:
        """Called with the batch's Condition held, once the batch is done."""
        for waiter in self.__dict__.get("_w") or ():
            if self._batch.error is None:
                waiter.add_result(self)
            else:
                waiter.add_exception(self)

    def _run_callbacks(self) -> None:
        for callback in self.__dict__.get("_cb") or ():
            try:
                callback(self)
            except Exception:  # a user callback must not break the sender
                import logging

                logging.getLogger("gafka.producer").exception("event=send_callback_failed")


def resolve_sync(batch: ProducerBatch, base_offset: int, append_time: int, error: BaseException | None) -> None:
    """Finish every future of a batch at once (``error`` None: acknowledged at ``base_offset``)."""
    condition = batch.condition
    assert condition is not None
    with condition:
        batch.base_offset = base_offset
        batch.append_time = append_time
        batch.error = error
        batch.state = _FINISHED
        watched = list(dict.fromkeys(batch.watched))
        for future in watched:
            future._notify()
        condition.notify_all()
    for future in watched:
        future._run_callbacks()


# -- batches ---------------------------------------------------------------------------------------
class ProducerBatch:
    """Records for one partition, encoded as they arrive; framed once, at the first send attempt."""

    __slots__ = (
        "append_time",
        "attempts",
        "base_offset",
        "base_sequence",
        "base_timestamp",
        "buf",
        "closed",
        "condition",
        "count",
        "created",
        "error",
        "framed",
        "futures",
        "max_timestamp",
        "partition",
        "size",
        "state",
        "timestamps",
        "topic",
        "watched",
    )

    def __init__(self, topic: str, partition: int, base_timestamp: int, condition: threading.Condition | None) -> None:
        self.topic = topic
        self.partition = partition
        self.base_timestamp = base_timestamp
        self.max_timestamp = base_timestamp
        self.buf = bytearray(_BATCH_OVERHEAD)
        self.count = 0
        self.size = 0
        self.futures: list[Any] = []
        self.timestamps: list[int] = []
        self.created = time.monotonic()
        self.closed = False
        self.condition = condition
        self.framed: bytes | None = None
        self.base_sequence = -1
        self.attempts = 0
        self.state = _PENDING
        self.base_offset = -1
        self.append_time = -1
        self.error: BaseException | None = None
        self.watched: list[RecordFuture] = []

    def frame(self, producer_id: int, producer_epoch: int, base_sequence: int, compression: Compression) -> bytes:
        """The whole RecordBatch v2, cached so a retry resends the same bytes and sequence.

        Records were written after 61 reserved bytes, so an uncompressed batch is framed in place:
        the header is packed into the reserved bytes and nothing is copied.
        """
        if self.framed is None:
            self.base_sequence = base_sequence
            self.framed = frame_batch(
                self.buf,
                self.count,
                self.base_timestamp,
                self.max_timestamp,
                producer_id,
                producer_epoch,
                base_sequence,
                compression,
            )
            self.buf = _EMPTY
        return self.framed


_EMPTY = bytearray()


def frame_batch(
    buf: bytearray,
    count: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    compression: Compression,
) -> bytes:
    """Fill in the header reserved at the start of ``buf`` (records follow it), compressing if asked,
    with the CRC-32C over attributes..end, as Kafka's DefaultRecordBatch."""
    if compression is not Compression.NONE:
        payload = compress(compression, memoryview(buf)[_BATCH_OVERHEAD:])
        buf = bytearray(_BATCH_OVERHEAD) + payload
    _HEADER.pack_into(
        buf,
        0,
        0,
        len(buf) - 12,
        -1,
        2,
        0,
        int(compression),
        count - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    _CRC.pack_into(buf, 17, crc32c.crc32c(memoryview(buf)[21:]))
    return buf  # type: ignore[return-value]  # a bytearray: every consumer of it takes any buffer


class StickyPartitioner:
    """Kafka's sticky partitioning for keyless records (KIP-480): stay on a partition until its batch fills."""

    def __init__(self) -> None:
        self.current: dict[str, int] = {}
        """topic -> its sticky partition (read directly by the producer's hot path)."""

    def partition(self, topic: str, count: int) -> int:
        current = self.current.get(topic)
        if current is None or current >= count:
            current = random.randrange(count)
            self.current[topic] = current
        return current

    def next(self, topic: str, count: int, previous: int) -> int:
        """Move to another partition (any other one, chosen at random) after ``previous`` filled a batch."""
        chosen = random.randrange(count - 1) if count > 1 else 0
        if count > 1 and chosen >= previous:
            chosen += 1
        self.current[topic] = chosen
        return chosen


class RecordAccumulator:
    """Open and closed batches per partition, and the memory they hold.

    Thread-safe: ``append`` runs in the caller's thread, ``ready``/``drain``/``release`` in the sender's.
    ``wakeup`` (called outside the lock) tells the sender a batch became sendable or a linger timer started.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        linger_ms: float,
        buffer_memory: int,
        max_block_ms: int,
        wakeup: Callable[[], None],
        future_factory: Callable[[], Any] | None = None,
    ) -> None:
        _build_table()
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.max_block_s = max_block_ms / 1000
        self.wakeup = wakeup
        self.sync_futures = future_factory is None
        self.future_factory: Callable[[], Any] = future_factory or object
        self.lock = threading.Lock()
        self._space = threading.Condition(self.lock)
        self.queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        self.open: dict[tuple[str, int], ProducerBatch] = {}
        """The batch of each partition that still takes records."""
        self.used = 0
        self.flushing = 0
        self.closing = False
        self.incomplete: set[ProducerBatch] = set()
        self._memory_waiters = 0

    # -- the caller's side ---------------------------------------------------------------------------
    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        timestamp: int,
        *,
        abort_on_new_batch: bool = False,
    ) -> Any:
        """Encode one record into ``(topic, partition)``'s open batch and return its future; None (nothing
        done) when ``abort_on_new_batch`` and the record would need a new batch (the sticky partitioner
        then moves on).
        """
        value_len = 0 if value is None else len(value)
        key_len = 0 if key is None else len(key)
        header_part = _headers_bytes(headers) if headers else _HEADERLESS
        estimate = key_len + value_len + len(header_part) + _RECORD_OVERHEAD
        wake = False
        table = _VARINTS
        with self.lock:
            if self.closing:
                from gafka.errors import ClientClosedError

                raise ClientClosedError("the producer is closed")
            if self.used + estimate > self.buffer_memory:
                self._wait_for_memory(estimate)
            tp = (topic, partition)
            batch = self.open.get(tp)
            if batch is None or (len(batch.buf) + estimate > self.batch_size and batch.count):
                if batch is not None:
                    if abort_on_new_batch:
                        return None
                    batch.closed = True
                batch = self._new_batch(tp, timestamp)
                wake = True
            count = batch.count
            delta = timestamp - batch.base_timestamp
            if timestamp > batch.max_timestamp:
                batch.max_timestamp = timestamp
            if 0 <= delta < _TABLE_SIZE and count < _TABLE_SIZE and value_len < _TABLE_SIZE and key_len < _TABLE_SIZE:
                head = table[delta] + table[count]  # the common case: four table lookups
                key_part = _NULL if key is None else table[key_len] + key
                value_head = _NULL if value is None else table[value_len]
            else:
                head = varint(delta) + varint(count)
                key_part = _NULL if key is None else varint(key_len) + key
                value_head = _NULL if value is None else varint(value_len)
            head += key_part
            head += value_head
            length = 1 + len(head) + value_len + len(header_part)
            buf = batch.buf
            before = len(buf)
            buf += varint(length) + b"\x00" + head
            if value:
                buf += value
            buf += header_part
            size = len(buf) - before
            batch.size += size
            self.used += size
            batch.timestamps.append(timestamp)
            if self.sync_futures:
                future: Any = RecordFuture(batch, count)
            else:
                future = self.future_factory()
                batch.futures.append(future)
            batch.count = count + 1
            if len(buf) >= self.batch_size:
                batch.closed = True
                del self.open[tp]
                wake = True
        if wake:
            self.wakeup()
        return future

    def _new_batch(self, tp: tuple[str, int], timestamp: int) -> ProducerBatch:
        """Open a batch for ``tp`` (lock held); the previous open one is closed by the caller."""
        batch = ProducerBatch(tp[0], tp[1], timestamp, threading.Condition() if self.sync_futures else None)
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        queue.append(batch)
        self.open[tp] = batch
        self.incomplete.add(batch)
        return batch

    def _wait_for_memory(self, needed: int) -> None:
        if needed > self.buffer_memory:
            raise MessageTooLargeError(f"a record of ~{needed} bytes is larger than buffer_memory={self.buffer_memory}")
        deadline = time.monotonic() + self.max_block_s
        self._memory_waiters += 1
        try:
            while self.used + needed > self.buffer_memory:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.max_block_s <= 0:
                    raise BufferFullError(
                        f"buffer_memory={self.buffer_memory} bytes are full and none was freed within "
                        f"max_block_ms={int(self.max_block_s * 1000)}"
                    )
                self.lock.release()
                try:
                    self.wakeup()  # full buffers want sending now, not after linger
                finally:
                    self.lock.acquire()
                self._space.wait(min(remaining, 0.05))
        finally:
            self._memory_waiters -= 1

    # -- the sender's side ---------------------------------------------------------------------------
    def ready(
        self, now: float, muted: set[tuple[str, int]], backoff: dict[tuple[str, int], float]
    ) -> tuple[list[tuple[str, int]], float | None]:
        """Partitions with a batch to send now, oldest first, and how long until the next one lingers out (None:
        nothing waits).

        Oldest first because the sender fills only ``max_in_flight_requests`` slots from this list: in a fixed
        order, the partitions at its front took every freed slot while they had data, and the rest never sent."""
        ready: list[tuple[str, int]] = []
        created: dict[tuple[str, int], float] = {}
        wait: float | None = None
        linger = self.linger_s
        with self.lock:
            urgent = self.flushing > 0 or self.closing or self._memory_waiters > 0
            for tp, queue in self.queues.items():
                if not queue or tp in muted:
                    continue
                until = backoff.get(tp)
                if until is not None and until > now:
                    wait = until - now if wait is None else min(wait, until - now)
                    continue
                first = queue[0]
                if urgent or first.closed or len(queue) > 1:
                    ready.append(tp)
                    created[tp] = first.created
                    continue
                due = first.created + linger - now
                if due <= 0:
                    ready.append(tp)
                    created[tp] = first.created
                else:
                    wait = due if wait is None else min(wait, due)
        ready.sort(key=created.__getitem__)
        return ready, wait

    def drain(
        self, tp: tuple[str, int], max_bytes: int, max_records: int, max_batches: int = MAX_BATCHES_PER_REQUEST
    ) -> list[ProducerBatch]:
        """Take batches off the front of ``tp``'s queue, up to one request's worth (at least one).

        At most ``max_batches``: a broker recognises a retried batch as a duplicate only among the last
        five batches of a producer (Kafka's ``NUM_BATCHES_TO_RETAIN``); a request of more, written by a
        leader that then lost leadership, would be retried one batch at a time and the first retry would
        fall outside that window (``OUT_OF_ORDER_SEQUENCE_NUMBER`` instead of its original offsets).
        """
        taken: list[ProducerBatch] = []
        size = 0
        records = 0
        with self.lock:
            queue = self.queues.get(tp)
            while queue:
                batch = queue[0]
                if taken and (
                    size + batch.size > max_bytes or records + batch.count > max_records or len(taken) >= max_batches
                ):
                    break
                if taken and (taken[0].attempts or batch.attempts):
                    break  # a retry goes alone: the broker refuses requests mixing written and new batches
                queue.popleft()
                if not batch.closed:
                    batch.closed = True
                    del self.open[tp]
                taken.append(batch)
                size += batch.size + _BATCH_OVERHEAD
                records += batch.count
        return taken

    def expire(self, now: float, delivery_s: float) -> tuple[list[ProducerBatch], float | None]:
        """Take every queued batch created ``delivery_s`` or more before ``now`` off its queue (Kafka's
        ``expiredBatches``), and return them with the moment the next queued batch expires (None: none
        queued). Queues are in creation order, so only their fronts are looked at."""
        expired: list[ProducerBatch] = []
        next_expiry: float | None = None
        with self.lock:
            for tp, queue in self.queues.items():
                while queue and queue[0].created + delivery_s <= now:
                    batch = queue.popleft()
                    if not batch.closed:
                        batch.closed = True
                        del self.open[tp]
                    expired.append(batch)
                if queue:
                    due = queue[0].created + delivery_s
                    next_expiry = due if next_expiry is None else min(next_expiry, due)
        return expired, next_expiry

    def take_framed(self, tp: tuple[str, int]) -> list[ProducerBatch]:
        """Remove the batches of ``tp`` that were sent before (retries wait at the front of the queue)."""
        taken: list[ProducerBatch] = []
        with self.lock:
            queue = self.queues.get(tp)
            while queue and queue[0].framed is not None:
                taken.append(queue.popleft())
        return taken

    def requeue(self, batches: Sequence[ProducerBatch]) -> None:
        """Put batches back at the front (a retry), in their order."""
        with self.lock:
            tp = (batches[0].topic, batches[0].partition)
            queue = self.queues.setdefault(tp, deque())
            queue.extendleft(reversed(batches))

    def release(self, batch: ProducerBatch) -> None:
        """The batch is done (acknowledged or failed): free its memory."""
        with self.lock:
            self.used -= batch.size
            self.incomplete.discard(batch)
            if self._memory_waiters:
                self._space.notify_all()

    def has_data(self) -> bool:
        with self.lock:
            return any(self.queues.values())

    def abort_all(self) -> list[ProducerBatch]:
        """Remove every queued batch (close without waiting); the caller fails their futures."""
        with self.lock:
            batches = [batch for queue in self.queues.values() for batch in queue]
            self.queues.clear()
            self.open.clear()
        return batches
