"""Typed errors of the SDK, one class per broker error code (Kafka's names), retriable ones marked.

The broker answers every error as ``{"error_code": "NAME", "message": "...", ...}``; :func:`error_from_body`
turns that into the matching class so callers can ``except UnknownTopicOrPartitionError`` instead of
parsing strings, and the producer/consumer can ask ``exc.retriable`` to decide whether to try again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "BrokerNotAvailableError",
    "BrokerUnreachableError",
    "BufferFullError",
    "ClientClosedError",
    "CommitFailedError",
    "CorruptMessageError",
    "FencedMemberEpochError",
    "GafkaError",
    "GroupIdNotFoundError",
    "InvalidConfigError",
    "InvalidGroupIdError",
    "InvalidPartitionsError",
    "InvalidRecordError",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "KafkaStorageError",
    "MessageTooLargeError",
    "NoOffsetForPartitionError",
    "NonEmptyGroupError",
    "NotCoordinatorError",
    "NotEnoughReplicasError",
    "NotFoundError",
    "NotLeaderOrFollowerError",
    "OffsetNotAvailableError",
    "OffsetOutOfRangeError",
    "RecordListTooLargeError",
    "RequestTimedOutError",
    "StaleMemberEpochError",
    "ThrottlingQuotaExceededError",
    "TopicAlreadyExistsError",
    "UnknownMemberIdError",
    "UnknownServerError",
    "UnknownTopicOrPartitionError",
    "UnreleasedInstanceIdError",
    "UnsupportedAssignorError",
    "UnsupportedMediaTypeError",
    "error_from_body",
    "error_from_response",
]


class GafkaError(Exception):
    """Base of every SDK error: ``code`` is the broker's (or Kafka's) name; ``retriable``: a retry may help."""

    code: ClassVar[str] = "UNKNOWN_SERVER_ERROR"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra: dict[str, Any] = dict(extra or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class _RetriableError(GafkaError):
    retriable = True


# -- client-side conditions ------------------------------------------------------------------------
class BrokerUnreachableError(_RetriableError):
    """No TCP connection to the broker (refused, reset, DNS): it is down, restarting or the URL is wrong."""

    code = "BROKER_UNREACHABLE"


class RequestTimedOutError(_RetriableError):
    """The broker did not answer in time (Kafka's REQUEST_TIMED_OUT)."""

    code = "REQUEST_TIMED_OUT"


class BufferFullError(GafkaError):
    """The producer's buffer memory is full and ``max_block_ms`` passed without room being freed."""

    code = "BUFFER_FULL"


class ClientClosedError(GafkaError):
    """The producer or consumer was closed; nothing more can be sent or polled."""

    code = "CLIENT_CLOSED"


class NoOffsetForPartitionError(GafkaError):
    """``auto_offset_reset='none'`` and a partition has no committed offset (or its offset is out of range)."""

    code = "NO_OFFSET_FOR_PARTITION"


class CommitFailedError(GafkaError):
    """A commit could not be completed because the member no longer owns the partitions (a rebalance moved them)."""

    code = "COMMIT_FAILED"


# -- broker error codes ----------------------------------------------------------------------------
class InvalidRequestError(GafkaError):
    code = "INVALID_REQUEST"


class InvalidTopicError(GafkaError):
    code = "INVALID_TOPIC_EXCEPTION"


class InvalidConfigError(GafkaError):
    code = "INVALID_CONFIG"


class InvalidPartitionsError(GafkaError):
    code = "INVALID_PARTITIONS"


class InvalidReplicationFactorError(GafkaError):
    code = "INVALID_REPLICATION_FACTOR"


class CorruptMessageError(_RetriableError):
    """Kafka treats a CRC failure as retriable: the bytes may have been damaged on the way."""

    code = "CORRUPT_MESSAGE"


class InvalidRecordError(GafkaError):
    code = "INVALID_RECORD"


class InvalidTimestampError(GafkaError):
    code = "INVALID_TIMESTAMP"


class UnknownTopicOrPartitionError(_RetriableError):
    """Retriable as in Kafka (metadata may be behind); callers that know the topic is gone stop retrying."""

    code = "UNKNOWN_TOPIC_OR_PARTITION"


class NotFoundError(GafkaError):
    code = "NOT_FOUND"


class TopicAlreadyExistsError(GafkaError):
    code = "TOPIC_ALREADY_EXISTS"


class MessageTooLargeError(GafkaError):
    code = "MESSAGE_TOO_LARGE"


class RecordListTooLargeError(GafkaError):
    code = "RECORD_LIST_TOO_LARGE"


class UnsupportedMediaTypeError(GafkaError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class OffsetOutOfRangeError(GafkaError):
    code = "OFFSET_OUT_OF_RANGE"


class OffsetNotAvailableError(_RetriableError):
    """A new leader does not know its high watermark yet (KIP-207); it will in a moment."""

    code = "OFFSET_NOT_AVAILABLE"


class ThrottlingQuotaExceededError(_RetriableError):
    code = "THROTTLING_QUOTA_EXCEEDED"


class UnknownServerError(GafkaError):
    code = "UNKNOWN_SERVER_ERROR"


class KafkaStorageError(_RetriableError):
    code = "KAFKA_STORAGE_ERROR"


class NotEnoughReplicasAfterAppendError(_RetriableError):
    """Written, but the ISR shrank below min.insync.replicas while waiting: an idempotent retry is safe."""

    code = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"


class LeaderNotAvailableError(_RetriableError):
    """The partition has no leader at the moment (an election is under way)."""

    code = "LEADER_NOT_AVAILABLE"


class NotEnoughReplicasError(_RetriableError):
    code = "NOT_ENOUGH_REPLICAS"


class BrokerNotAvailableError(_RetriableError):
    """The broker is recovering its logs or shutting down (HTTP 503)."""

    code = "BROKER_NOT_AVAILABLE"


class NotLeaderOrFollowerError(_RetriableError):
    """The broker does not lead the partition: refresh metadata and go to the leader."""

    code = "NOT_LEADER_OR_FOLLOWER"


class NotCoordinatorError(_RetriableError):
    code = "NOT_COORDINATOR"


class UnknownMemberIdError(GafkaError):
    code = "UNKNOWN_MEMBER_ID"


class FencedMemberEpochError(GafkaError):
    code = "FENCED_MEMBER_EPOCH"


class StaleMemberEpochError(GafkaError):
    code = "STALE_MEMBER_EPOCH"


class NonEmptyGroupError(GafkaError):
    code = "NON_EMPTY_GROUP"


class GroupIdNotFoundError(GafkaError):
    code = "GROUP_ID_NOT_FOUND"


class InvalidGroupIdError(GafkaError):
    code = "INVALID_GROUP_ID"


class UnsupportedAssignorError(GafkaError):
    code = "UNSUPPORTED_ASSIGNOR"


class UnreleasedInstanceIdError(GafkaError):
    code = "UNRELEASED_INSTANCE_ID"


_CLASSES: dict[str, type[GafkaError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        InvalidTopicError,
        InvalidConfigError,
        InvalidPartitionsError,
        InvalidReplicationFactorError,
        CorruptMessageError,
        InvalidRecordError,
        InvalidTimestampError,
        UnknownTopicOrPartitionError,
        NotFoundError,
        TopicAlreadyExistsError,
        MessageTooLargeError,
        RecordListTooLargeError,
        UnsupportedMediaTypeError,
        OffsetOutOfRangeError,
        OffsetNotAvailableError,
        ThrottlingQuotaExceededError,
        UnknownServerError,
        KafkaStorageError,
        NotEnoughReplicasError,
        NotEnoughReplicasAfterAppendError,
        LeaderNotAvailableError,
        BrokerNotAvailableError,
        NotLeaderOrFollowerError,
        NotCoordinatorError,
        UnknownMemberIdError,
        FencedMemberEpochError,
        StaleMemberEpochError,
        NonEmptyGroupError,
        GroupIdNotFoundError,
        InvalidGroupIdError,
        UnsupportedAssignorError,
        UnreleasedInstanceIdError,
        RequestTimedOutError,
    )
}
_RETRIABLE_STATUS = frozenset({429, 502, 503, 504})


def error_from_body(status: int, body: Any) -> GafkaError:
    """The typed error for one error answer (``body`` is the decoded JSON, or anything else for a non-JSON answer)."""
    if isinstance(body, Mapping) and isinstance(body.get("error_code"), str):
        code = str(body["error_code"])
        message = str(body.get("message", ""))
        extra = {key: value for key, value in body.items() if key not in ("error_code", "message")}
        cls = _CLASSES.get(code)
        if cls is None:  # a code from a newer broker: a class of its own, so ``exc.code`` keeps the name
            cls = type(f"{code.title().replace('_', '')}Error", (GafkaError,), {"code": code})
            _CLASSES[code] = cls
        return cls(message, status=status, extra=extra)
    text = body if isinstance(body, str) else ""
    if status in _RETRIABLE_STATUS:
        return BrokerNotAvailableError(f"HTTP {status} {text[:200]}".strip(), status=status)
    if status == 404:
        return NotFoundError(f"HTTP 404 {text[:200]}".strip(), status=status)
    if status >= 500:
        return UnknownServerError(f"HTTP {status} {text[:200]}".strip(), status=status)
    return InvalidRequestError(f"HTTP {status} {text[:200]}".strip(), status=status)


def error_from_response(status: int, content: bytes) -> GafkaError:
    """:func:`error_from_body` from raw bytes (JSON or not)."""
    import orjson

    try:
        body: Any = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        body = content.decode("utf-8", "replace")
    return error_from_body(status, body)
