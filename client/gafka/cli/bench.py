"""``gafka bench produce|consume|e2e TOPIC``: throughput and latency, like Kafka's perf-test tools.

- ``produce``: sends ``--count`` records of ``--size`` bytes (at ``--rate`` msg/s, 0 = as fast as possible);
  latency is send-to-acknowledgement, sampled on up to 50,000 records so measuring stays cheap.
- ``consume``: reads ``--count`` records from the beginning; latency is the time each poll took.
- ``e2e``: one asyncio producer and one consumer in the same process; every value carries its send time,
  and latency is send-to-poll.

``--json`` prints one JSON object with ``messages``, ``msg_per_s``, ``mb_per_s`` and ``latency_ms``
(p50, p95, p99, p99.9, max, avg); the human form prints the same on one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from gafka.admin import Admin
from gafka.cli.output import DEFAULT_BOOTSTRAP, Bootstrap, cli_command, emit_json, parse_configs
from gafka.errors import GafkaError, TopicAlreadyExistsError

app = typer.Typer(help="Throughput and latency tests (like kafka-producer-perf-test).", no_args_is_help=True)

Count = Annotated[int, typer.Option("--count", "-n", help="Records to send or read.", min=1)]
Size = Annotated[int, typer.Option("--size", "-s", help="Value size in bytes.", min=8)]
Rate = Annotated[float, typer.Option("--rate", help="Records per second; 0 = as fast as possible.", min=0)]
Acks = Annotated[str, typer.Option("--acks", help="0, 1 or all.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr (TTY only).")]
Create = Annotated[
    bool, typer.Option("--create", help="Create the topic first if it does not exist (with --partitions/--config).")
]
Partitions = Annotated[int, typer.Option("--partitions", "-p", help="Partitions when --create makes the topic.")]
Configs = Annotated[list[str] | None, typer.Option("--config", "-c", help="Topic config NAME=VALUE for --create.")]

_TIME = struct.Struct(">q")


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/p99.9/max/avg of latency samples (nearest-rank), rounded to microseconds."""
    if not samples_ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "p99_9": 0.0, "max": 0.0, "avg": 0.0}
    ordered = sorted(samples_ms)
    last = len(ordered) - 1

    def rank(fraction: float) -> float:
        return round(ordered[min(last, int(fraction * len(ordered)))], 3)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "p99_9": rank(0.999),
        "max": round(ordered[-1], 3),
        "avg": round(sum(ordered) / len(ordered), 3),
    }


def summary(
    mode: str, topic: str, messages: int, size: int, seconds: float, latencies: Sequence[float], **extra: Any
) -> dict[str, Any]:
    seconds = max(seconds, 1e-9)
    return {
        "mode": mode,
        "topic": topic,
        "messages": messages,
        "record_size": size,
        "seconds": round(seconds, 3),
        "msg_per_s": round(messages / seconds, 1),
        "mb_per_s": round(messages * size / seconds / 1e6, 2),
        "latency_ms": percentiles(latencies),
        **extra,
    }


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    lat = result["latency_ms"]
    typer.echo(
        f"{result['mode']}: {result['messages']} records of {result['record_size']} B in {result['seconds']} s: "
        f"{result['msg_per_s']:,.0f} msg/s, {result['mb_per_s']:.2f} MB/s"
    )
    typer.echo(
        f"latency ms: p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} p99.9 {lat['p99_9']} "
        f"max {lat['max']} avg {lat['avg']}"
    )
    if result.get("errors"):
        typer.echo(f"errors: {result['errors']} (first: {result.get('first_error')})")


class _Bar:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.progress: Any = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.progress.add_task(label, total=total)
            self.progress.start()

    def update(self, done: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def _bar(total: int, label: str, enabled: bool) -> Iterator[_Bar]:
    bar = _Bar(total, label, enabled)
    try:
        yield bar
    finally:
        bar.close()


def _ensure_topic(bootstrap: str, topic: str, create: bool, partitions: int, configs: list[str] | None) -> None:
    with Admin(bootstrap) as admin:
        if create:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topic(topic, partitions, None, parse_configs(configs))
        else:
            admin.describe_topic(topic)


@app.command("produce")
@cli_command
def produce(
    topic: Annotated[str, typer.Argument(help="Topic to write.")],
    count: Count = 1_000_000,
    size: Size = 1024,
    rate: Rate = 0,
    acks: Acks = "1",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Producer batch.size in bytes.")] = 1024 * 1024,
    linger_ms: Annotated[float, typer.Option("--linger-ms", help="Producer linger.ms.")] = 5,
    compression: Annotated[str, typer.Option("--compression", help="none, gzip, snappy, lz4, zstd.")] = "none",
    create: Create = False,
    partitions: Partitions = 1,
    config: Configs = None,
    as_json: Json = False,
    progress: Progress = True,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Send COUNT records as fast as possible (or at RATE) and report throughput and latency."""
    from gafka.producer import Producer

    _ensure_topic(bootstrap, topic, create, partitions, config)
    value = os.urandom(size)
    sample_every = max(1, count // 50_000)
    latencies: list[float] = []
    errors: list[BaseException] = []
    perf = time.perf_counter

    def sampled(started: float) -> Any:
        def done(future: Any) -> None:
            error = future.exception()
            if error is not None:
                errors.append(error)
            else:
                latencies.append((perf() - started) * 1000)

        return done

    with (
        Producer(
            bootstrap,
            acks=acks,
            batch_size=batch_size,
            linger_ms=linger_ms,
            compression_type=compression,
            buffer_memory=max(64 * 1024 * 1024, 4 * batch_size),
        ) as producer,
        _bar(count, f"produce {topic}", progress) as bar,
    ):
        producer.send(topic, value).result()  # warm up: metadata and connections
        send = producer.send
        start = perf()
        for i in range(count):
            if rate:
                ahead = start + i / rate - perf()
                if ahead > 0:
                    time.sleep(ahead)
            if i % sample_every:
                send(topic, value)
            else:
                send(topic, value).add_done_callback(sampled(perf()))
            if not i % 50_000:
                bar.update(i)
        producer.flush()
        elapsed = perf() - start
    extra: dict[str, Any] = {"acks": acks, "batch_size": batch_size, "linger_ms": linger_ms, "compression": compression}
    if errors:
        extra.update(errors=len(errors), first_error=str(errors[0]))
    report(summary("produce", topic, count, size, elapsed, latencies, **extra), as_json)
    if errors:
        raise typer.Exit(1)


@app.command("consume")
@cli_command
def consume(
    topic: Annotated[str, typer.Argument(help="Topic to read (from the beginning).")],
    count: Count = 1_000_000,
    as_json: Json = False,
    progress: Progress = True,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Give up after this long without records.")] = 10.0,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Read COUNT records from the beginning of every partition and report throughput."""
    from gafka.consumer import Consumer
    from gafka.records import TopicPartition

    latencies: list[float] = []
    received = 0
    size_total = 0
    perf = time.perf_counter
    with (
        Consumer(bootstrap, auto_offset_reset="earliest", max_poll_records=10_000) as consumer,
        _bar(count, f"consume {topic}", progress) as bar,
    ):
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for(topic)])
        start = perf()
        last = start
        while received < count:
            began = perf()
            records = consumer.poll(0.5, max_records=count - received)
            now = perf()
            if not records:
                if now - last > timeout_s:
                    break
                continue
            latencies.append((now - began) * 1000)
            last = now
            received += len(records)
            size_total += sum(len(r.value or b"") for r in records)
            bar.update(received)
        elapsed = (last if received else perf()) - start
    size = size_total // received if received else 0
    result = summary("consume", topic, received, size, elapsed, latencies)
    report(result, as_json)
    if received < count:
        raise typer.Exit(1)


@app.command("e2e")
@cli_command
def e2e(
    topic: Annotated[str, typer.Argument(help="Topic to write and read.")],
    count: Count = 50_000,
    size: Size = 1024,
    rate: Rate = 5_000,
    acks: Acks = "1",
    create: Create = False,
    partitions: Partitions = 1,
    config: Configs = None,
    as_json: Json = False,
    progress: Progress = True,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Produce at RATE and consume in the same process; latency is from send to poll."""
    _ensure_topic(bootstrap, topic, create, partitions, config)
    runner = _runner()
    try:
        result = runner.run(_e2e(bootstrap, topic, count, size, rate, acks, progress))
    finally:
        runner.close()
    report(result, as_json)
    if result["messages"] < count:
        raise typer.Exit(1)


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def _e2e(
    bootstrap: str, topic: str, count: int, size: int, rate: float, acks: str, progress: bool
) -> dict[str, Any]:
    from gafka.consumer import AsyncConsumer
    from gafka.producer import AsyncProducer
    from gafka.records import TopicPartition

    padding = os.urandom(size - _TIME.size)
    latencies: list[float] = []
    clock = time.perf_counter_ns
    done = asyncio.Event()
    errors: list[BaseException] = []
    consumer = AsyncConsumer(bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=500, max_poll_records=10_000)
    producer = AsyncProducer(bootstrap, acks=acks, linger_ms=0)
    try:
        partitions = await consumer.partitions_for(topic)
        await consumer.assign([TopicPartition(topic, p) for p in partitions])
        await producer.start()
        await producer.send_and_wait(topic, _TIME.pack(clock()) + padding)  # warm-up, not counted
        await asyncio.sleep(0.3)
        await consumer.poll(0.5)

        async def consume() -> None:
            with _bar(count, f"e2e {topic}", progress) as bar:
                while len(latencies) < count:
                    records = await consumer.poll(1.0)
                    now = clock()
                    for record in records:
                        value = record.value or b""
                        latencies.append((now - _TIME.unpack_from(value)[0]) / 1e6)
                    bar.update(len(latencies))
                    if not records and done.is_set():
                        return

        def note_error(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is not None:
                errors.append(future.exception())  # type: ignore[arg-type]

        reader = asyncio.get_running_loop().create_task(consume())
        start = time.perf_counter()
        interval = 1 / rate if rate else 0.0
        sent = 0
        while sent < count:
            if interval:
                due = min(count, int((time.perf_counter() - start) / interval) + 1)
                if due <= sent:
                    await asyncio.sleep(max(interval * (sent + 1) - (time.perf_counter() - start), 0))
                    continue
            else:
                due = min(count, sent + 1000)
            for _ in range(due - sent):
                future = producer.send(topic, _TIME.pack(clock()) + padding)
                future.add_done_callback(note_error)
            sent = due
            if not interval:
                await asyncio.sleep(0)
        await producer.flush()
        done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, timeout=30)
        elapsed = time.perf_counter() - start
    except GafkaError:
        raise
    finally:
        await producer.close()
        await consumer.close()
    extra: dict[str, Any] = {"acks": acks, "target_rate": rate}
    if errors:
        extra.update(errors=len(errors), first_error=str(errors[0]))
    return summary("e2e", topic, len(latencies), size, elapsed, latencies, **extra)
