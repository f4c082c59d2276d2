"""The accumulator and batch framing as pure logic: bytes identical to the reference codec, batch limits,
sticky partitioning and bounded memory."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gafka._batching import MAX_BATCHES_PER_REQUEST, RecordAccumulator, StickyPartitioner, resolve_sync
from gafka.errors import BufferFullError
from gafka.protocol.compression import Compression
from gafka.protocol.record_batch import NewRecord, decode_batch, encode_batch, validate_batch
from gafka_broker.replication.producer_state import NUM_BATCHES_TO_RETAIN

records = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=300),
        st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)), max_size=3),
        st.integers(min_value=0, max_value=2_000_000_000_000),
    ),
    min_size=1,
    max_size=30,
)


def accumulator(**overrides: int) -> RecordAccumulator:
    settings_ = {"batch_size": 1 << 20, "linger_ms": 0, "buffer_memory": 1 << 30, "max_block_ms": 0}
    settings_.update(overrides)
    return RecordAccumulator(wakeup=lambda: None, **settings_)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(records, st.sampled_from(list(Compression)))
def test_frames_are_byte_identical_to_the_reference_encoder(
    items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]], codec: Compression
) -> None:
    acc = accumulator()
    for key, value, headers, timestamp in items:
        acc.append("t", 0, key, value, headers, timestamp)
    (batch,) = acc.drain(("t", 0), 1 << 30, 1 << 30)
    framed = bytes(batch.frame(1234, 5, 77, codec))
    reference = encode_batch(
        [NewRecord(k, v, h, ts) for k, v, h, ts in items],
        compression=codec,
        producer_id=1234,
        producer_epoch=5,
        base_sequence=77,
    )
    if codec is Compression.NONE:
        assert framed == reference
    header = validate_batch(framed)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (1234, 5, 77)
    decoded = decode_batch(framed)
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in decoded] == [(k, v, h, ts) for k, v, h, ts in items]


def test_batch_size_closes_batches_and_drain_respects_request_limits() -> None:
    acc = accumulator(batch_size=1000)
    for _ in range(30):
        acc.append("t", 0, None, b"x" * 100, None, 1)
    queue = acc.queues[("t", 0)]
    assert len(queue) > 3
    assert all(batch.closed for batch in list(queue)[:-1])
    first = acc.drain(("t", 0), 1500, 1 << 30)
    assert len(first) == 1  # a second batch would exceed max_bytes
    rest = acc.drain(("t", 0), 1 << 30, 1 << 30)
    assert sum(b.count for b in first + rest) == 30


def test_a_request_holds_at_most_the_brokers_duplicate_window_of_batches() -> None:
    """A retried request goes one batch at a time; each must still be among the broker's last five."""
    acc = accumulator(batch_size=200)
    for _ in range(12):
        acc.append("t", 0, None, b"x" * 150, None, 1)
    sizes = []
    while acc.queues[("t", 0)]:
        sizes.append(len(acc.drain(("t", 0), 1 << 30, 1 << 30)))
    assert sizes == [MAX_BATCHES_PER_REQUEST, MAX_BATCHES_PER_REQUEST, 2] and MAX_BATCHES_PER_REQUEST == 5
    assert MAX_BATCHES_PER_REQUEST == NUM_BATCHES_TO_RETAIN


def test_ready_waits_for_linger_unless_full_or_flushing() -> None:
    acc = accumulator(linger_ms=50)
    acc.append("t", 0, None, b"x", None, 1)
    ready, wait = acc.ready(time.monotonic(), set(), {})
    assert ready == [] and wait is not None and 0 < wait <= 0.05
    acc.flushing += 1
    ready, _ = acc.ready(time.monotonic(), set(), {})
    assert ready == [("t", 0)]
    acc.flushing -= 1
    assert acc.ready(time.monotonic(), {("t", 0)}, {})[0] == []  # muted: a request is in flight
    assert acc.ready(time.monotonic() + 1, set(), {})[0] == [("t", 0)]


def test_expire_takes_queued_batches_past_the_delivery_timeout_whatever_their_partition_waits_for() -> None:
    acc = accumulator(batch_size=200)
    for _ in range(3):
        acc.append("t", 0, None, b"x" * 100, None, 1)  # three batches, the last one still open
    acc.append("t", 1, None, b"y", None, 1)
    old, middle, young = acc.queues[("t", 0)]
    (other,) = acc.queues[("t", 1)]
    old.created, middle.created, young.created, other.created = 10.0, 11.0, 20.0, 20.0
    assert acc.expire(12.0, 5.0) == ([], 15.0)
    assert acc.expire(16.5, 5.0) == ([old, middle], 25.0)
    assert list(acc.queues[("t", 0)]) == [young] and acc.open[("t", 0)] is young
    expired, next_expiry = acc.expire(25.0, 5.0)
    assert set(expired) == {young, other} and next_expiry is None
    assert not acc.open and not any(acc.queues.values())
    acc.append("t", 0, None, b"z", None, 2)  # a new record opens a new batch
    assert acc.open[("t", 0)] is not young


def test_futures_resolve_per_batch() -> None:
    acc = accumulator()
    futures = [acc.append("t", 2, None, b"v", None, 100 + i) for i in range(3)]
    (batch,) = acc.drain(("t", 2), 1 << 30, 1 << 30)
    assert not futures[0].done()
    resolve_sync(batch, 40, -1, None)
    assert [f.result(0).offset for f in futures] == [40, 41, 42]
    assert [f.result(0).timestamp for f in futures] == [100, 101, 102]
    assert futures[1].result(0).partition == 2


def test_buffer_full_raises_at_once_or_after_max_block() -> None:
    acc = accumulator(buffer_memory=2000)
    with pytest.raises(BufferFullError):
        for _ in range(14):
            acc.append("t", 0, None, b"x" * 150, None, 1)
    assert 1700 < acc.used <= 2000
    blocking = accumulator(buffer_memory=2000, max_block_ms=200)
    for _ in range(12):
        blocking.append("t", 0, None, b"x" * 150, None, 1)
    started = time.monotonic()
    with pytest.raises(BufferFullError):
        blocking.append("t", 0, None, b"x" * 150, None, 1)
    assert 0.15 < time.monotonic() - started < 2


def test_a_blocked_append_proceeds_once_memory_is_released() -> None:
    acc = accumulator(buffer_memory=2000, max_block_ms=5000, batch_size=400)
    for _ in range(12):
        acc.append("t", 0, None, b"x" * 150, None, 1)
    done = threading.Event()

    def blocked() -> None:
        acc.append("t", 0, None, b"x" * 150, None, 1)
        done.set()

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.1)
    assert not done.is_set()
    for batch in acc.drain(("t", 0), 1 << 30, 1 << 30):
        acc.release(batch)
    assert done.wait(5)
    thread.join()


def test_sticky_partitioner_moves_to_another_partition() -> None:
    sticky = StickyPartitioner()
    first = sticky.partition("t", 4)
    assert sticky.partition("t", 4) == first
    nxt = sticky.next("t", 4, first)
    assert nxt != first and 0 <= nxt < 4
    assert sticky.partition("t", 4) == nxt
    assert sticky.next("t", 1, 0) == 0


def test_keyless_records_stick_until_the_batch_fills() -> None:
    acc = accumulator(batch_size=1000)
    sticky = StickyPartitioner()
    chosen = []
    for _ in range(40):
        partition = sticky.partition("t", 3)
        if acc.append("t", partition, None, b"x" * 90, None, 1, abort_on_new_batch=True) is None:
            partition = sticky.next("t", 3, partition)
            acc.append("t", partition, None, b"x" * 90, None, 1)
        chosen.append(partition)
    switches = sum(1 for a, b in itertools.pairwise(chosen) if a != b)
    assert 2 <= switches <= 6  # about one switch per ~10 records (a full batch), not per record


def test_partitions_that_always_have_data_cannot_starve_the_others() -> None:
    """The sender fills its ``max_in_flight_requests`` slots from ``ready()`` in order. Five partitions that
    always have data and two slots: in a fixed partition order the front two took every freed slot and
    partitions 2-5 never sent (seen with six busy partitions and five slots); oldest batch first, each
    partition is drained within a few turns."""
    acc = accumulator(batch_size=200)
    for partition in range(6):
        acc.append("t", partition, None, b"x" * 150, None, 1)
    in_flight: list[tuple[str, int]] = []
    drained: dict[int, int] = {}
    for turn in range(30):
        if len(in_flight) == 2:  # a request completes, freeing its slot
            in_flight.pop(0)
        for hot in range(2):  # the front partitions keep getting records
            acc.append("t", hot, None, b"y" * 150, None, 2 + turn)
        ready, _wait = acc.ready(time.monotonic(), set(in_flight), {})
        for tp in ready:
            if len(in_flight) >= 2:
                break
            if acc.drain(tp, 1 << 30, 1 << 30):
                in_flight.append(tp)
                drained.setdefault(tp[1], turn)
    assert sorted(drained) == [0, 1, 2, 3, 4, 5], drained
    assert max(drained.values()) <= 6, drained
