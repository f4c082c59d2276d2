"""The follower fetch, on the wire: ``POST /v1/replication/fetch``.

Request (JSON, small)::

    {"replica_id": 2, "incarnation": "…", "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 10485760,
     "partitions": [{"topic": "t", "partition": 0, "fetch_offset": 120, "last_fetched_epoch": 3,
                     "current_leader_epoch": 4, "max_bytes": 1048576}]}

Response (``application/vnd.gafka.replication.v1``): a big-endian u32 header length, the JSON header,
then the record bytes of every partition back to back in header order::

    {"error": null,
     "partitions": [{"topic": "t", "partition": 0, "error": null, "high_watermark": 118,
                     "log_start_offset": 0, "log_end_offset": 130,
                     "diverging_epoch": null | {"epoch": 3, "end_offset": 125}, "records": 4096}]}

Record bytes are Kafka RecordBatch v2 exactly as stored on the leader, so the follower appends them
without re-encoding; JSON keeps the header readable with curl. Errors use Kafka's names.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "MEDIA_TYPE",
    "FetchPartition",
    "FetchRequest",
    "PartitionData",
    "ProtocolError",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

MEDIA_TYPE = "application/vnd.gafka.replication.v1"
_LENGTH = struct.Struct(">I")
NO_EPOCH = -1


class ProtocolError(ValueError):
    """A malformed replication request or response."""


@dataclass(frozen=True, slots=True)
class FetchPartition:
    topic: str
    partition: int
    fetch_offset: int
    last_fetched_epoch: int
    current_leader_epoch: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class FetchRequest:
    replica_id: int
    incarnation: str
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    partitions: tuple[FetchPartition, ...]


@dataclass(slots=True)
class PartitionData:
    topic: str
    partition: int
    error: str | None = None
    high_watermark: int = -1
    log_start_offset: int = -1
    log_end_offset: int = -1
    diverging_epoch: tuple[int, int] | None = None
    """(epoch, end offset) when the follower's log diverged from the leader's at its last fetched epoch."""
    records: bytes = field(default=b"", repr=False)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key} must be an integer")
    return value


def encode_request(request: FetchRequest) -> bytes:
    return orjson.dumps(
        {
            "replica_id": request.replica_id,
            "incarnation": request.incarnation,
            "max_wait_ms": request.max_wait_ms,
            "min_bytes": request.min_bytes,
            "max_bytes": request.max_bytes,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "fetch_offset": p.fetch_offset,
                    "last_fetched_epoch": p.last_fetched_epoch,
                    "current_leader_epoch": p.current_leader_epoch,
                    "max_bytes": p.max_bytes,
                }
                for p in request.partitions
            ],
        }
    )


def decode_request(body: bytes | bytearray) -> FetchRequest:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("partitions"), list):
        raise ProtocolError("expected an object with a partitions list")
    partitions = []
    for entry in data["partitions"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
            raise ProtocolError("every partition needs a topic")
        partitions.append(
            FetchPartition(
                entry["topic"],
                _int(entry, "partition"),
                _int(entry, "fetch_offset"),
                _int(entry, "last_fetched_epoch"),
                _int(entry, "current_leader_epoch"),
                _int(entry, "max_bytes"),
            )
        )
    incarnation = data.get("incarnation")
    if not isinstance(incarnation, str):
        raise ProtocolError("incarnation must be a string")
    return FetchRequest(
        _int(data, "replica_id"),
        incarnation,
        _int(data, "max_wait_ms"),
        _int(data, "min_bytes"),
        _int(data, "max_bytes"),
        tuple(partitions),
    )


def encode_response(partitions: Sequence[PartitionData], error: str | None = None) -> bytes:
    header = orjson.dumps(
        {
            "error": error,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "error": p.error,
                    "high_watermark": p.high_watermark,
                    "log_start_offset": p.log_start_offset,
                    "log_end_offset": p.log_end_offset,
                    "diverging_epoch": (
                        None
                        if p.diverging_epoch is None
                        else {"epoch": p.diverging_epoch[0], "end_offset": p.diverging_epoch[1]}
                    ),
                    "records": len(p.records),
                }
                for p in partitions
            ],
        }
    )
    return b"".join([_LENGTH.pack(len(header)), header, *(p.records for p in partitions)])


def decode_response(body: bytes) -> tuple[str | None, list[PartitionData]]:
    """The response's top-level error and its partitions (record bytes sliced out of ``body``)."""
    if len(body) < _LENGTH.size:
        raise ProtocolError("response shorter than its length prefix")
    (length,) = _LENGTH.unpack_from(body)
    start = _LENGTH.size + length
    if start > len(body):
        raise ProtocolError("response header is cut short")
    try:
        header = orjson.loads(body[_LENGTH.size : start])
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"response header is not JSON: {exc}") from None
    view = memoryview(body)
    partitions = []
    position = start
    for entry in header.get("partitions", []):
        size = _int(entry, "records")
        if position + size > len(body):
            raise ProtocolError("record bytes are cut short")
        diverging = entry.get("diverging_epoch")
        partitions.append(
            PartitionData(
                topic=str(entry["topic"]),
                partition=_int(entry, "partition"),
                error=entry.get("error"),
                high_watermark=_int(entry, "high_watermark"),
                log_start_offset=_int(entry, "log_start_offset"),
                log_end_offset=_int(entry, "log_end_offset"),
                diverging_epoch=(
                    None if diverging is None else (_int(diverging, "epoch"), _int(diverging, "end_offset"))
                ),
                records=bytes(view[position : position + size]),
            )
        )
        position += size
    error = header.get("error")
    return (None if error is None else str(error)), partitions
