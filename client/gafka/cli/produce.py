"""``gafka produce TOPIC``: one record per stdin line, like Kafka's console producer."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from gafka.cli.output import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, cli_command, emit_json, fail
from gafka.errors import GafkaError
from gafka.producer import Producer


@cli_command
def produce(
    topic: Annotated[str, typer.Argument(help="Topic to write to.")],
    key_separator: Annotated[
        str | None,
        typer.Option("--key-separator", "-k", help="Split each line at the first SEP into key and value."),
    ] = None,
    acks: Annotated[str, typer.Option("--acks", help="0, 1 or all.")] = "all",
    partition: Annotated[int | None, typer.Option("--partition", "-p", help="Write every record here.")] = None,
    compression: Annotated[str, typer.Option("--compression", help="none, gzip, snappy, lz4 or zstd.")] = "none",
    linger_ms: Annotated[float, typer.Option("--linger-ms", help="How long a batch waits for more records.")] = 5,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="NAME=VALUE header on every record (repeatable).")
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Read stdin and send one record per line (the line without its newline is the value)."""
    headers: list[tuple[str, bytes | None]] = []
    for pair in header or ():
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--header expects NAME=VALUE, got {pair!r}")
        headers.append((name, value.encode()))
    separator = key_separator.encode() if key_separator else None
    sent = 0
    failed: list[BaseException] = []

    def on_done(future: object) -> None:
        error = future.exception()  # type: ignore[attr-defined]
        if error is not None and len(failed) < 1:
            failed.append(error)

    with Producer(bootstrap, acks=acks, compression_type=compression, linger_ms=linger_ms) as producer:
        producer.partitions_for(topic)  # an unknown topic or a dead broker fails here, before reading stdin
        for raw in sys.stdin.buffer:
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            key = None
            if separator is not None:
                found, hit, rest = line.partition(separator)
                if hit:
                    key, line = found, rest
            future = producer.send(topic, line, key=key, headers=headers or None, partition=partition)
            future.add_done_callback(on_done)
            sent += 1
            if failed:
                break
        try:
            producer.flush()
        except GafkaError as exc:
            failed.append(exc)
    if failed:
        fail(f"{failed[0]} (records sent before the failure may have been written)")
    if output is OutputFormat.JSON:
        emit_json({"topic": topic, "records": sent})
