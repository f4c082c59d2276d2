"""OffsetCommit and OffsetFetch: the same group coordinator and ``__consumer_offsets`` as the HTTP API."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode as KafkaErrorCode

from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.classic import ClassicError
from gafka_broker.groups.coordinator import OffsetCommit
from gafka_broker.groups.group import GroupError
from gafka_broker.kafka.codec import kafka_error
from gafka_broker.kafka.context import KafkaContext

__all__ = ["offset_commit", "offset_fetch"]

_CLASSIC_CODES = {code.name.upper(): code for code in KafkaErrorCode}


async def _coordinates(context: KafkaContext, group_id: str, *, create: bool) -> None:
    context.broker.check_ready()
    remote = await context.broker.groups.route(group_id, create=create)
    if remote is not None:
        raise ApiError(ErrorCode.NOT_COORDINATOR, f"broker {context.broker_id} does not coordinate group {group_id!r}")


async def offset_commit(context: KafkaContext, request: Any) -> dict[str, Any]:
    """All offsets or none, fenced by the member and its generation (-1 and no member: a standalone commit)."""
    group_id = request.group_id
    generation = getattr(request, "generation_id_or_member_epoch", getattr(request, "generation_id", -1))
    member_id = request.member_id or None
    offsets = [
        OffsetCommit(topic.name, part.partition_index, part.committed_offset, part.committed_metadata or "")
        for topic in request.topics
        for part in topic.partitions
    ]
    code = kafka_error(None)
    try:
        await _coordinates(context, group_id, create=True)
        classic = context.broker.groups.classic.get(group_id)
        try:
            if classic is not None:  # a classic group fences commits by its generation; offsets are shared
                classic.check_commit(member_id or "", int(generation))
                member_id, generation = None, -1
            context.broker.groups.commit(group_id, member_id, int(generation), offsets)
        except GroupError as exc:
            raise ApiError(ErrorCode(exc.code.value), exc.message) from None
        except ClassicError as exc:
            return _commit_answer(request, _CLASSIC_CODES.get(exc.code, KafkaErrorCode.unknown_server_error))
        await context.broker.groups.durable(group_id)
    except ApiError as exc:
        code = kafka_error(exc.code)
    return _commit_answer(request, code)


def _commit_answer(request: Any, code: KafkaErrorCode) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "topics": [
            {
                "name": topic.name,
                "partitions": [{"partition_index": p.partition_index, "error_code": code} for p in topic.partitions],
            }
            for topic in request.topics
        ],
    }


async def offset_fetch(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Committed offsets of the asked partitions (-1 where none), or of every partition when topics is null."""
    group_id = request.group_id
    try:
        await _coordinates(context, group_id, create=False)
    except ApiError as exc:
        return {"throttle_time": 0, "topics": [], "error_code": kafka_error(exc.code)}
    committed = {(c.topic, c.partition): c for c in context.broker.groups.committed(group_id)}
    wanted: dict[str, list[int]] = {}
    if request.topics is None:
        for topic, index in sorted(committed):
            wanted.setdefault(topic, []).append(index)
    else:
        for topic in request.topics:
            wanted[topic.name] = list(topic.partition_indexes)
    topics = []
    for name, indexes in wanted.items():
        parts = []
        for index in indexes:
            found = committed.get((name, index))
            parts.append(
                {
                    "partition_index": index,
                    "committed_offset": found.offset if found else -1,
                    "committed_leader_epoch": -1,
                    "metadata": found.metadata if found else "",
                    "error_code": 0,
                }
            )
        topics.append({"name": name, "partitions": parts})
    return {"throttle_time": 0, "topics": topics, "error_code": 0}
