"""API error codes (named after Kafka's where one exists), their HTTP statuses, and the one exception type.

Every face answers :class:`ApiError` in its own way: the HTTP API as ``{"error_code": "NAME", "message":
"...", ...extra}`` with the code's status (:mod:`gafka_broker.api.http_errors`), the Kafka listener as
Kafka's numeric error code of the same name. Nothing here knows about a protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["ApiError", "ErrorCode", "error_body"]


class ErrorCode(StrEnum):
    """Error names; :attr:`status` is the HTTP status each is answered with."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_TOPIC_EXCEPTION = "INVALID_TOPIC_EXCEPTION"
    INVALID_CONFIG = "INVALID_CONFIG"
    INVALID_PARTITIONS = "INVALID_PARTITIONS"
    INVALID_REPLICATION_FACTOR = "INVALID_REPLICATION_FACTOR"
    CORRUPT_MESSAGE = "CORRUPT_MESSAGE"
    INVALID_RECORD = "INVALID_RECORD"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    TOPIC_ALREADY_EXISTS = "TOPIC_ALREADY_EXISTS"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    RECORD_LIST_TOO_LARGE = "RECORD_LIST_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
    OFFSET_NOT_AVAILABLE = "OFFSET_NOT_AVAILABLE"
    THROTTLING_QUOTA_EXCEEDED = "THROTTLING_QUOTA_EXCEEDED"
    UNKNOWN_SERVER_ERROR = "UNKNOWN_SERVER_ERROR"
    KAFKA_STORAGE_ERROR = "KAFKA_STORAGE_ERROR"
    NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
    BROKER_NOT_AVAILABLE = "BROKER_NOT_AVAILABLE"
    NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
    LEADER_NOT_AVAILABLE = "LEADER_NOT_AVAILABLE"
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
    REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
    OUT_OF_ORDER_SEQUENCE_NUMBER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
    INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
    NOT_COORDINATOR = "NOT_COORDINATOR"
    INVALID_GROUP_ID = "INVALID_GROUP_ID"
    UNSUPPORTED_ASSIGNOR = "UNSUPPORTED_ASSIGNOR"
    GROUP_ID_NOT_FOUND = "GROUP_ID_NOT_FOUND"
    UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
    FENCED_MEMBER_EPOCH = "FENCED_MEMBER_EPOCH"
    STALE_MEMBER_EPOCH = "STALE_MEMBER_EPOCH"
    UNRELEASED_INSTANCE_ID = "UNRELEASED_INSTANCE_ID"
    NON_EMPTY_GROUP = "NON_EMPTY_GROUP"

    @property
    def status(self) -> int:
        return HTTP_STATUS[self]


HTTP_STATUS: Mapping[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_TOPIC_EXCEPTION: 400,
    ErrorCode.INVALID_CONFIG: 400,
    ErrorCode.INVALID_PARTITIONS: 400,
    ErrorCode.INVALID_REPLICATION_FACTOR: 400,
    ErrorCode.CORRUPT_MESSAGE: 400,
    ErrorCode.INVALID_RECORD: 400,
    ErrorCode.INVALID_TIMESTAMP: 400,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.RECORD_LIST_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.OFFSET_OUT_OF_RANGE: 416,
    ErrorCode.OFFSET_NOT_AVAILABLE: 503,
    ErrorCode.THROTTLING_QUOTA_EXCEEDED: 429,
    ErrorCode.UNKNOWN_SERVER_ERROR: 500,
    ErrorCode.KAFKA_STORAGE_ERROR: 500,
    ErrorCode.NOT_ENOUGH_REPLICAS: 503,
    ErrorCode.BROKER_NOT_AVAILABLE: 503,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: 421,
    ErrorCode.LEADER_NOT_AVAILABLE: 503,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: 503,
    ErrorCode.REQUEST_TIMED_OUT: 504,
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: 409,
    ErrorCode.INVALID_PRODUCER_EPOCH: 409,
    ErrorCode.NOT_COORDINATOR: 421,
    ErrorCode.INVALID_GROUP_ID: 400,
    ErrorCode.UNSUPPORTED_ASSIGNOR: 400,
    ErrorCode.GROUP_ID_NOT_FOUND: 404,
    ErrorCode.UNKNOWN_MEMBER_ID: 404,
    ErrorCode.FENCED_MEMBER_EPOCH: 409,
    ErrorCode.STALE_MEMBER_EPOCH: 409,
    ErrorCode.UNRELEASED_INSTANCE_ID: 409,
    ErrorCode.NON_EMPTY_GROUP: 409,
}
"""The HTTP status of every code (the table in docs/api.md)."""


class ApiError(Exception):
    """A request the broker answers with an error body; ``extra`` fields join ``error_code`` and ``message``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = code.status if status is None else status
        self.message = message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)


def error_body(code: ErrorCode, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON object of one error, also used for per-record errors inside a 207."""
    body: dict[str, Any] = {"error_code": code.value, "message": message}
    body.update(extra)
    return body
