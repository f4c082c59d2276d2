"""Validation of consumer-group request bodies and path ids: every malformed field is a 400 naming it.

Parsing is kept apart from the handlers so the handlers read as the protocol: parse, call the
coordinator, answer. Kafka's own limits are used where it has them (4096 bytes of offset metadata).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.assignors import ASSIGNORS, TopicPartition
from gafka_broker.groups.coordinator import OffsetCommit
from gafka_broker.groups.group import STATIC_LEAVE_EPOCH, HeartbeatRequest
from gafka_broker.groups.service import ResetTarget
from gafka_broker.metadata import InvalidTopicNameError, validate_topic_name

__all__ = [
    "COMMIT_FIELDS",
    "HEARTBEAT_FIELDS",
    "RESET_FIELDS",
    "ParsedHeartbeat",
    "parse_commit",
    "parse_heartbeat",
    "parse_reset",
    "validate_group_id",
]

MAX_GROUP_ID_LENGTH = 249
_GROUP_ID = re.compile(r"[a-zA-Z0-9._:-]+")
_MEMBER_ID = re.compile(r"[\x21-\x7e]{1,249}")
"""Member and instance ids: 1..249 printable ASCII characters (UUIDs, pod names)."""
MAX_TOPICS = 10_000
MAX_PARTITIONS_LISTED = 100_000
MAX_COMMIT_OFFSETS = 10_000
MAX_EPOCH = (1 << 31) - 1
MAX_TIMEOUT_MS = (1 << 31) - 1

HEARTBEAT_FIELDS = frozenset(
    {"member_id", "member_epoch", "topics", "instance_id", "rebalance_timeout_ms", "owned", "assignor"}
)
COMMIT_FIELDS = frozenset({"member_id", "member_epoch", "offsets"})
RESET_FIELDS = frozenset({"to", "topics", "dry_run"})
_OFFSET_FIELDS = frozenset({"topic", "partition", "offset", "metadata"})
_TOPIC_PARTITIONS_FIELDS = frozenset({"topic", "partitions"})


def _bad(message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message)


def validate_group_id(raw: str) -> str:
    """1..249 characters of ``[a-zA-Z0-9._:-]``: safe in a URL path and in a log line."""
    if not raw or len(raw) > MAX_GROUP_ID_LENGTH or not _GROUP_ID.fullmatch(raw):
        raise ApiError(
            ErrorCode.INVALID_GROUP_ID,
            f"group id {raw[:300]!r} is invalid: use 1 to {MAX_GROUP_ID_LENGTH} ASCII letters, digits, "
            "'.', '_', ':' and '-'",
        )
    return raw


def _int(document: Mapping[str, Any], name: str, minimum: int, maximum: int) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise _bad(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _id(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _MEMBER_ID.fullmatch(value):
        raise _bad(f"{name} must be 1 to 249 printable ASCII characters, got {value!r}")
    return value


def _topic(raw: object, where: str) -> str:
    try:
        return validate_topic_name(raw)
    except InvalidTopicNameError as exc:
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"{where}: {exc}") from None


def _list(raw: object, name: str, limit: int) -> list[Any]:
    if not isinstance(raw, list):
        raise _bad(f"{name} must be a list, got {raw!r}")
    if len(raw) > limit:
        raise _bad(f"{name} has {len(raw)} entries; the limit is {limit}")
    return raw


def _partition_list(raw: object, where: str) -> list[int]:
    partitions = _list(raw, f"{where}.partitions", MAX_PARTITIONS_LISTED)
    for index in partitions:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise _bad(f"{where}.partitions must hold partition numbers >= 0, got {index!r}")
    return partitions


def _topic_partitions(raw: object, where: str) -> tuple[str, list[int] | None]:
    """``{"topic": name, "partitions": [0, 1]}``, KIP-848's TopicPartitions (partitions None when left out)."""
    if not isinstance(raw, dict) or set(raw) - _TOPIC_PARTITIONS_FIELDS or "topic" not in raw:
        raise _bad(f'{where} must be {{"topic": name, "partitions": [...]}}, got {raw!r}')
    partitions = raw.get("partitions")
    return _topic(raw["topic"], where), None if partitions is None else _partition_list(partitions, where)


@dataclass(frozen=True, slots=True)
class ParsedHeartbeat:
    request: HeartbeatRequest
    assignor: str | None


def parse_heartbeat(document: Mapping[str, Any], min_rebalance_timeout_ms: int) -> ParsedHeartbeat:
    """The body of ``POST /v1/groups/{group}/heartbeat``."""
    epoch = _int(document, "member_epoch", STATIC_LEAVE_EPOCH, MAX_EPOCH)
    if epoch is None:
        raise _bad("member_epoch is required: 0 to join, -1 to leave, -2 for a static member's restart")
    member_id = _id(document, "member_id")
    if member_id is None and epoch != 0:
        raise _bad("member_id is required unless member_epoch is 0 (join)")
    topics: frozenset[str] | None = None
    if document.get("topics") is not None:
        names = _list(document["topics"], "topics", MAX_TOPICS)
        topics = frozenset(_topic(name, "topics") for name in names)
    owned: frozenset[TopicPartition] | None = None
    if document.get("owned") is not None:
        entries = [_topic_partitions(raw, "owned") for raw in _list(document["owned"], "owned", MAX_TOPICS)]
        owned = frozenset((topic, index) for topic, indexes in entries for index in indexes or ())
    assignor = document.get("assignor")
    if assignor is not None and (not isinstance(assignor, str) or assignor not in ASSIGNORS):
        raise ApiError(
            ErrorCode.UNSUPPORTED_ASSIGNOR, f"unknown assignor {assignor!r}; expected one of {sorted(ASSIGNORS)}"
        )
    request = HeartbeatRequest(
        member_id=member_id,
        member_epoch=epoch,
        topics=topics,
        instance_id=_id(document, "instance_id"),
        rebalance_timeout_ms=_int(document, "rebalance_timeout_ms", min_rebalance_timeout_ms, MAX_TIMEOUT_MS),
        owned=owned,
    )
    return ParsedHeartbeat(request, assignor)


def _offset_commit(raw: object, index: int) -> OffsetCommit:
    where = f"offsets[{index}]"
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object {{topic, partition, offset, metadata?}}")
    unknown = set(raw) - _OFFSET_FIELDS
    if unknown:
        raise _bad(f"{where} has unknown fields {', '.join(sorted(unknown))}")
    partition = _int(raw, "partition", 0, MAX_EPOCH)
    offset = _int(raw, "offset", 0, (1 << 63) - 1)
    if partition is None or offset is None:
        raise _bad(f"{where} needs partition and offset (the next offset to read)")
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise _bad(f"{where}.metadata must be a string, got {metadata!r}")
    return OffsetCommit(_topic(raw.get("topic"), where), partition, offset, metadata or "")


def parse_commit(document: Mapping[str, Any]) -> tuple[str | None, int, list[OffsetCommit]]:
    """The body of ``POST /v1/groups/{group}/offsets``: member id, member epoch and the offsets."""
    member_id = _id(document, "member_id")
    epoch = _int(document, "member_epoch", -1, MAX_EPOCH)
    if epoch is None:
        if member_id is not None:
            raise _bad("member_epoch is required with member_id")
        epoch = -1
    if "offsets" not in document:
        raise _bad("offsets is required")
    entries = _list(document["offsets"], "offsets", MAX_COMMIT_OFFSETS)
    if not entries:
        raise _bad("offsets must not be empty")
    commits = [_offset_commit(raw, index) for index, raw in enumerate(entries)]
    seen: set[TopicPartition] = set()
    for commit in commits:
        key = (commit.topic, commit.partition)
        if key in seen:
            raise _bad(f"partition {commit.partition} of {commit.topic!r} appears twice")
        seen.add(key)
    return member_id, epoch, commits


def _reset_target(raw: object) -> ResetTarget:
    if raw in ("earliest", "latest"):
        return (str(raw), 0)
    if isinstance(raw, dict) and len(raw) == 1:
        [(kind, value)] = raw.items()
        if kind in ("timestamp", "offset") and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return (kind, value)
    raise _bad(f'to must be "earliest", "latest", {{"timestamp": ms}} or {{"offset": n}} (>= 0), got {raw!r}')


def parse_reset(document: Mapping[str, Any]) -> tuple[ResetTarget, dict[str, list[int] | None] | None]:
    """The body of ``POST /v1/groups/{group}/offsets/reset``: the target and the topics (None: committed)."""
    if "to" not in document:
        raise _bad("to is required")
    target = _reset_target(document["to"])
    if document.get("topics") is None:
        return target, None
    topics: dict[str, list[int] | None] = {}
    for raw in _list(document["topics"], "topics", MAX_TOPICS):
        if isinstance(raw, str):
            topics[_topic(raw, "topics")] = None
        else:
            topic, partitions = _topic_partitions(raw, "topics")
            topics[topic] = partitions
    if not topics:
        raise _bad("topics must not be empty; leave it out to reset every committed partition")
    return target, topics
