"""Produce, Fetch and ListOffsets: thin faces over :mod:`gafka_broker.core` (the HTTP API calls the same)."""

from __future__ import annotations

import asyncio
from typing import Any

from gafka_broker.core.offsets import list_offset
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.kafka.codec import kafka_error
from gafka_broker.kafka.context import KafkaContext
from gafka_broker.partition import BrokerPartition

__all__ = ["fetch", "list_offsets", "local_leader", "produce"]

_NO_TIMESTAMP = -1


def local_leader(context: KafkaContext, topic: str, partition: int) -> BrokerPartition:
    """The partition's replica when this broker leads it; NOT_LEADER_OR_FOLLOWER sends the client to refresh."""
    broker = context.broker
    broker.check_ready()
    broker.partition_state(topic, partition)  # UNKNOWN_TOPIC_OR_PARTITION
    local = broker.local_replica(topic, partition)
    if local is None or not local.is_leader:
        raise context.not_leader(topic, partition)
    return local


def _ms(value: Any) -> int:
    """kio gives Kafka's millisecond durations as timedelta."""
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value) / 1000
    return max(0, int(seconds * 1000))


async def _produce_partition(
    context: KafkaContext, topic: str, index: int, records: bytes | None, acks: int, timeout_s: float
) -> dict[str, Any]:
    appender = context.broker.appender
    try:
        if records is None:
            raise ApiError(ErrorCode.INVALID_RECORD, "the partition's records are null")
        context.broker.check_writable(topic)
        target = local_leader(context, topic, index)
        result = await appender.append(
            target,
            records,
            acks=acks,
            timeout_s=timeout_s,
            max_records=context.broker.config.max_records_per_request,
        )
    except ApiError as exc:
        return {
            "index": index,
            "error_code": kafka_error(exc.code),
            "error_message": exc.message,
            "base_offset": -1,
            "log_append_time": -1,
            "log_append_time_ms": -1,
            "log_start_offset": -1,
        }
    return {
        "index": index,
        "error_code": 0,
        "base_offset": result.base_offset,
        "log_append_time": result.log_append_time,
        "log_append_time_ms": result.log_append_time,
        "log_start_offset": target.log_start_offset,
    }


async def produce(context: KafkaContext, request: Any) -> dict[str, Any] | None:
    """Every partition appended through the core; acks=0 gets no answer at all (as Kafka)."""
    acks = int(request.acks)
    if acks not in (0, 1, -1):
        code = kafka_error(ErrorCode.INVALID_REQUEST)  # Kafka: INVALID_REQUIRED_ACKS
        return {
            "throttle_time": 0,
            "responses": [
                {
                    "name": t.name,
                    "partition_responses": [{"index": p.index, "error_code": code} for p in t.partition_data],
                }
                for t in request.topic_data
            ],
        }
    timeout_s = min(_ms(request.timeout), context.broker.config.request_timeout_ms) / 1000
    jobs = [
        (topic.name, _produce_partition(context, topic.name, part.index, part.records, acks, timeout_s))
        for topic in request.topic_data
        for part in topic.partition_data
    ]
    answers = await asyncio.gather(*(job for _name, job in jobs))
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, _job), answer in zip(jobs, answers, strict=True):
        by_topic.setdefault(name, []).append(answer)
    if acks == 0:
        return None
    return {
        "throttle_time": 0,
        "responses": [{"name": name, "partition_responses": parts} for name, parts in by_topic.items()],
    }


def _fetch_error(index: int, exc: ApiError) -> dict[str, Any]:
    return {
        "partition_index": index,
        "error_code": kafka_error(exc.code),
        "high_watermark": int(exc.extra.get("high_watermark", -1)),
        "last_stable_offset": int(exc.extra.get("high_watermark", -1)),
        "log_start_offset": int(exc.extra.get("log_start_offset", -1)),
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": b"",
    }


def _read_all(context: KafkaContext, request: Any) -> tuple[list[tuple[str, list[dict[str, Any]]]], int, list[Any]]:
    """One pass over the asked partitions within the request's ``max_bytes``; also the local leaders read."""
    reader = context.broker.reader
    budget = int(request.max_bytes)
    total = 0
    read: list[Any] = []
    topics: list[tuple[str, list[dict[str, Any]]]] = []
    for topic in request.topics:
        parts: list[dict[str, Any]] = []
        for part in topic.partitions:
            index = part.partition
            try:
                leader = local_leader(context, topic.topic, index)
                limit = min(int(part.partition_max_bytes), budget - total)
                if limit <= 0 and total > 0:
                    fetched = reader.read(leader, part.fetch_offset, 1)._replace(data=b"")
                else:
                    fetched = reader.read(leader, part.fetch_offset, max(limit, 1))
            except ApiError as exc:
                parts.append(_fetch_error(index, exc))
                continue
            total += len(fetched.data)
            read.append(leader)
            parts.append(
                {
                    "partition_index": index,
                    "error_code": 0,
                    "high_watermark": fetched.high_watermark,
                    "last_stable_offset": fetched.high_watermark,
                    "log_start_offset": fetched.log_start_offset,
                    "aborted_transactions": None,
                    "preferred_read_replica": -1,
                    "records": fetched.data,
                }
            )
        topics.append((topic.topic, parts))
    return topics, total, read


async def fetch(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Full fetches (no KIP-227 sessions: session id 0 tells the client so); parks on the asked partitions
    until ``min_bytes`` arrive or ``max_wait`` passes, woken by appends."""
    reader = context.broker.reader
    max_wait_ms = min(_ms(request.max_wait), context.broker.config.max_wait_ms)
    min_bytes = int(request.min_bytes)
    topics, total, leaders = _read_all(context, request)
    if leaders and reader.can_park(min_bytes, total, max_wait_ms):
        try:
            await reader.park([(leader, min_bytes - total) for leader in leaders], max_wait_ms)
        except ApiError:
            pass  # too many parked fetches: answer what there is now, as an empty fetch
        else:
            topics, total, leaders = _read_all(context, request)
    return {
        "throttle_time": 0,
        "error_code": 0,
        "session_id": 0,
        "responses": [{"topic": name, "partitions": parts} for name, parts in topics],
    }


async def list_offsets(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Earliest (-2), latest (-1) or the first offset at a timestamp, per partition, from the leader."""
    topics = []
    for topic in request.topics:
        parts = []
        for part in topic.partitions:
            index = part.partition_index
            try:
                leader = local_leader(context, topic.name, index)
                if part.timestamp < -2:
                    raise ApiError(ErrorCode.INVALID_REQUEST, f"timestamp {part.timestamp} is not supported")
                found = list_offset(leader, part.timestamp)
                if part.timestamp >= 0 and found.timestamp is None:  # no record at or after it: Kafka says -1
                    found = found._replace(offset=-1)
            except ApiError as exc:
                parts.append(
                    {
                        "partition_index": index,
                        "error_code": kafka_error(exc.code),
                        "timestamp": _NO_TIMESTAMP,
                        "offset": -1,
                        "leader_epoch": -1,
                    }
                )
                continue
            parts.append(
                {
                    "partition_index": index,
                    "error_code": 0,
                    "timestamp": _NO_TIMESTAMP if found.timestamp is None else found.timestamp,
                    "offset": found.offset,
                    "leader_epoch": leader.leader_epoch,
                }
            )
        topics.append({"name": topic.name, "partitions": parts})
    return {"throttle_time": 0, "topics": topics}
