"""``gafka consume TOPIC``: print records, one per line, like Kafka's console consumer."""

from __future__ import annotations

import base64
import sys
import time
from enum import StrEnum
from typing import Annotated, BinaryIO

import orjson
import typer

from gafka.cli.output import DEFAULT_BOOTSTRAP, Bootstrap, cli_command
from gafka.consumer import Consumer
from gafka.records import ConsumerRecord, TopicPartition


class Format(StrEnum):
    VALUE = "value"
    KV = "kv"
    JSON = "json"


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def _write(out: BinaryIO, record: ConsumerRecord, fmt: Format, separator: bytes) -> None:
    if fmt is Format.VALUE:
        out.write((record.value or b"") + b"\n")
    elif fmt is Format.KV:
        out.write((record.key or b"") + separator + (record.value or b"") + b"\n")
    else:
        document = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": _text(record.key),
            "value": _text(record.value),
            "headers": {name: _text(value) for name, value in record.headers},
        }
        out.write(orjson.dumps(document) + b"\n")


@cli_command
def consume(
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    group: Annotated[str | None, typer.Option("--group", "-g", help="Consume as a member of this group.")] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the earliest offset (when nothing is committed).")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", "-n", help="Exit after this many records.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="value, kv (key SEP value) or json.")] = Format.VALUE,
    key_separator: Annotated[str, typer.Option("--key-separator", help="Separator for --format kv.")] = "\t",
    partition: Annotated[
        list[int] | None, typer.Option("--partition", "-p", help="Read only these partitions (no group).")
    ] = None,
    offset: Annotated[
        int | None, typer.Option("--offset", help="Start each chosen partition at this offset (no group).")
    ] = None,
    timeout_ms: Annotated[
        int | None, typer.Option("--timeout-ms", help="Exit when no record arrives for this long.")
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Print each record (by default its value) on its own line."""
    if group is not None and (partition or offset is not None):
        raise ValueError("--partition and --offset read without a group; drop --group")
    # an --offset outside the log is the user's mistake, reported with the valid range, not silently reset
    reset = "none" if offset is not None else "earliest" if from_beginning else "latest"
    out = sys.stdout.buffer
    separator = key_separator.encode()
    count = 0
    with Consumer(bootstrap, group_id=group, auto_offset_reset=reset) as consumer:
        if group is not None:
            consumer.subscribe([topic])
        else:
            chosen = partition if partition else consumer.partitions_for(topic)
            consumer.assign([TopicPartition(topic, p) for p in chosen])
            if offset is not None:
                for p in chosen:
                    consumer.seek(TopicPartition(topic, p), offset)
        last = time.monotonic()
        while max_messages is None or count < max_messages:
            wait = 1.0 if timeout_ms is None else max(min(1.0, timeout_ms / 1000 - (time.monotonic() - last)), 0.0)
            limit = None if max_messages is None else max_messages - count
            records = consumer.poll(wait, max_records=limit)
            if records:
                last = time.monotonic()
                for record in records:
                    _write(out, record, fmt, separator)
                count += len(records)
                out.flush()
            elif timeout_ms is not None and (time.monotonic() - last) * 1000 >= timeout_ms:
                break
        if group is not None:
            consumer.commit()
    out.flush()
